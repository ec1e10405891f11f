// Package anthropic is the Anthropic Messages client format: what a client
// speaking Anthropic's API sends to the gateway and reads back. It knows the
// endpoints (POST /v1/messages, POST /v1/messages/count_tokens, GET
// /v1/models, and Claude Code's warm-up probe), reads and edits the request
// fields the gateway acts on (through reqbody), reads usage from the
// responses (StreamParser for SSE, ParseMessage for JSON), estimates the
// output of a cut stream, and renders the gateway's refusals in Anthropic's
// error shape.
//
// Format plugs all of it into extproc (see extproc.ClientFormat); the
// upstream side of Anthropic (host, path, authentication) is the provider's,
// in another package.
package anthropic
