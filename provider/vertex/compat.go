package vertex

// adapt returns an Anthropic client's request body (Messages or
// count_tokens) as Vertex AI accepts it, given the request headers header
// reads (anthropic-beta among them). It is the place of issue 12 item 4, the
// table of the betas and body fields Vertex AI takes, adapts or refuses,
// which travel in pairs (a beta and its field); until then every body passes
// as it is, and Vertex AI itself refuses what it does not take.
// TranslateRequest calls it before the model and anthropic_version edits, so
// it sees the client's body.
func adapt(body []byte, _ func(name string) string) []byte { return body }
