package bedrock

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/provider/internal/claudeids"
	"github.com/tollgate-dev/tollgate/provider/internal/openaichat"
	"github.com/tollgate-dev/tollgate/translate"
)

// AnthropicVersion is the anthropic_version Bedrock requires in the body of
// an Anthropic model's request.
const AnthropicVersion = "bedrock-2023-05-31"

// The client paths an Anthropic client sends to Bedrock, query excluded.
const (
	pathMessages    = "/v1/messages"
	pathCountTokens = "/v1/messages/count_tokens"
)

// Translator returns the translation of requests written in clientFormat to
// a provider of this type, or false when a client of that format cannot be
// served by one: Anthropic Messages clients, and OpenAI Chat Completions
// clients through the Messages API (package openaichat: their request
// becomes a Messages request, which then goes as an Anthropic client's
// would, and the answer comes back as Chat Completions).
func (Type) Translator(clientFormat string) (translate.Translator, bool) {
	switch clientFormat {
	case translate.ClientAnthropic:
		return fromAnthropic{}, true
	case translate.ClientOpenAI:
		return &openaichat.Via{Inner: fromAnthropic{}}, true
	}
	return nil, false
}

// fromAnthropic sends an Anthropic Messages request to Bedrock's InvokeModel
// API and turns Bedrock's answers back into the Messages API's.
type fromAnthropic struct{}

// NeedsBody implements [translate.Translator.NeedsBody]: every request to
// Bedrock has its body translated, since the model leaves it for the path.
func (fromAnthropic) NeedsBody(bool) bool { return true }

// RequestBody implements [translate.Translator.RequestBody] for a Messages
// request without betas. The adapter calls TranslateRequest, which also
// returns the path; this is for callers of the plain contract.
func (fromAnthropic) RequestBody(body []byte, mapModel func(string) string) ([]byte, bool, error) {
	out, _, err := translateBody(body, mapModel, "", false)
	return out, err == nil, err
}

// TranslateRequest implements [translate.RequestTranslator]: the body for
// Bedrock (see translateBody) and the path under the provider's base, with
// the model URL-encoded into it: /model/{id}/invoke, or
// /invoke-with-response-stream for stream:true, or /count-tokens for
// count_tokens, whose body wraps the translated one as
// {"input":{"invokeModel":{"body":"<base64>"}}}, with "max_tokens":1 added
// when the client sent none (count_tokens takes none, an InvokeModel body
// requires it, and the count does not depend on it). The anthropic-beta header's
// values go to the body's anthropic_beta; the header itself is left for
// Bedrock to ignore, since a later attempt to Anthropic shares the header
// map and needs it.
func (fromAnthropic) TranslateRequest(clientPath string, header func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	p, _, _ := strings.Cut(clientPath, "?")
	if p != pathMessages && p != pathCountTokens {
		return nil, "", errors.New("Bedrock serves only POST /v1/messages and /v1/messages/count_tokens")
	}
	out, f, err := translateBody(body, mapModel, header("anthropic-beta"), p == pathCountTokens)
	if err != nil {
		return nil, "", err
	}
	model := escapeModel(mapModel(f.Model))
	if p == pathCountTokens {
		// CountTokens takes a foundation model, not an inference profile.
		model = escapeModel(claudeids.FoundationModel(mapModel(f.Model)))
		wrapped, _ := json.Marshal(map[string]any{"input": map[string]any{"invokeModel": map[string]string{
			"body": base64.StdEncoding.EncodeToString(out)}}}) // a map of strings always marshals
		return wrapped, "/model/" + model + "/count-tokens", nil
	}
	if f.Stream {
		return out, "/model/" + model + "/invoke-with-response-stream", nil
	}
	return out, "/model/" + model + "/invoke", nil
}

// translateBody returns the InvokeModel body for an Anthropic Messages body:
// model, stream and any anthropic_version removed, and
// "anthropic_version":"bedrock-2023-05-31" inserted first, followed by
// "anthropic_beta" with the values of betas (the anthropic-beta header, comma
// separated) unless the body has its own anthropic_beta, and with
// maxTokens "max_tokens":1 when the body has no max_tokens. Every other
// byte is kept as it was. The body must name a model.
func translateBody(body []byte, mapModel func(string) string, betas string, maxTokens bool) ([]byte, reqbody.Fields, error) {
	f, ms, err := reqbody.Members(body)
	if err != nil {
		return nil, f, err
	}
	if !f.HasModel || mapModel(f.Model) == "" {
		return nil, f, errors.New("the request names no model")
	}
	hasBeta := false
	edits := reqbody.RemoveMembers(ms, func(m reqbody.Member) bool {
		hasBeta = hasBeta || m.Key == "anthropic_beta"
		return m.Key == "model" || m.Key == "stream" || m.Key == "anthropic_version"
	})
	ins := make([]byte, 0, 64+len(betas))
	ins = append(ins, `"anthropic_version":"`+AnthropicVersion+`"`...)
	if list := splitBetas(betas); len(list) > 0 && !hasBeta {
		b, _ := json.Marshal(list) // strings always marshal
		ins = append(ins, `,"anthropic_beta":`...)
		ins = append(ins, b...)
	}
	if maxTokens && !f.HasMaxTokens {
		ins = append(ins, `,"max_tokens":1`...)
	}
	kept := len(ms) - removedCount(ms)
	if kept > 0 {
		ins = append(ins, ',')
	}
	edits = append([]reqbody.Edit{reqbody.InsertAt(ms[0].KeySpan.Start, ins)}, edits...)
	return reqbody.Apply(body, edits...), f, nil
}

func removedCount(ms []reqbody.Member) int {
	n := 0
	for _, m := range ms {
		if m.Key == "model" || m.Key == "stream" || m.Key == "anthropic_version" {
			n++
		}
	}
	return n
}

// splitBetas returns the values of an anthropic-beta header, trimmed, empty
// ones and repeats left out, in order.
func splitBetas(h string) []string {
	var out []string
	for _, v := range strings.Split(h, ",") {
		v = strings.TrimSpace(v)
		if v != "" && !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// escapeModel URL-encodes a model id for a path segment the way AWS SDKs do:
// every byte but the unreserved ones (letters, digits, "-", "_", ".", "~")
// is percent-encoded, so an inference profile ARN's ":" and "/" stay in
// its segment.
func escapeModel(id string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
