// Package clientformat holds what passes between the gateway's ext_proc
// server (extproc) and a client format: the API a client speaks to the
// gateway (Anthropic Messages today; OpenAI Chat and the Bedrock and Vertex
// entry formats later), one package per format under this directory.
//
// extproc declares the interface a format implements (extproc.ClientFormat)
// and consumes it; this package has the values and the per-request and
// per-response objects that interface hands over, so that a format package
// needs neither extproc nor any other format. It knows no format itself.
//
// A format answers four questions for extproc: which endpoints exist
// (Endpoint), what a request asks for and how it is edited (Request), what a
// response used (StreamMeter, ResponseUsage), and how a refusal looks to its
// clients (Error, ErrorReply).
package clientformat

import (
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Code is the stable code of a refusal by the gateway: the label of the
// tollgate_rejections_total metric and the error_type of its cost record,
// whatever format renders it. The values are Anthropic's error types, which
// the gateway used before it had other formats, so dashboards keep working;
// each format maps them to its own shape.
type Code string

// The codes of the gateway's refusals.
const (
	CodeInvalidRequest Code = "invalid_request_error" // 400: the request is malformed or names what the policy lacks
	CodeAuthentication Code = "authentication_error"  // 401: no gateway key, or one the policy does not know
	CodePermission     Code = "permission_error"      // 403: the routing decision is missing or does not fit
	CodeNotFound       Code = "not_found_error"       // 404: no endpoint of any format
	CodeRateLimit      Code = "rate_limit_error"      // 429: a budget or rate limit
	CodeOverloaded     Code = "overloaded_error"      // 503: the budget ledger is down and the policy fails closed
)

// Endpoint is an endpoint of a client format, as the format's Classify
// reports it. Its flags tell extproc what to do with the request; nothing
// else about the endpoint is extproc's business.
type Endpoint struct {
	// Name names the endpoint in cost records, in the budget input and in
	// the policy's budget_exempt list ("messages", "count_tokens",
	// "models"). Formats that share an endpoint's meaning share its name.
	Name string
	// Metered marks the endpoint whose requests are priced (model,
	// max_tokens, the input bound) and whose responses carry usage: the
	// budget reserves their worst case, the response meter reads their
	// bodies, and the early reservation guesses them.
	Metered bool
	// Body marks an endpoint that takes a request body naming a model; an
	// empty body is refused at once.
	Body bool
	// Probe marks a warm-up probe (Claude Code's HEAD /): answered at once
	// with an empty 200, never forwarded, recorded or authenticated.
	Probe bool
}

// Request is one request body as its client format reads it: the fields the
// gateway acts on, and the edits it may make. A Request is used by one
// stream only; it is not safe for concurrent use.
type Request interface {
	// Model returns the model the request names, and whether it names one.
	Model() (model string, ok bool)
	// Stream reports whether the client asked for a streamed response.
	Stream() bool
	// MaxTokens returns the output limit the request sets, and whether it
	// sets one.
	MaxTokens() (n int64, ok bool)
	// MinMaxTokens returns the smallest output limit the request stays
	// valid with once lowered (an Anthropic request with a thinking budget
	// needs one above the smallest budget), or 0 when any positive one is.
	MinMaxTokens() int64
	// Media returns what the body holds that costs input tokens out of
	// proportion to its bytes, for the budget's input bound; zero unless
	// the request was read with media.
	Media() budget.Media
	// SetModel replaces the model the request names.
	SetModel(model string)
	// SetMaxTokens lowers the output limit to n, at or above MinMaxTokens,
	// and what must stay below it: it returns the thinking budget it lowered
	// with it, or 0 when it left it as it was.
	SetMaxTokens(n int64) (thinkingBudget int64)
	// Body returns the body with the edits made, and whether it differs
	// from the body read. A format may edit on its own account too (as
	// asking for usage in a stream that does not send it by default).
	Body() (body []byte, edited bool)
}

// StreamMeter reads the usage of one streamed response as it passes, chunk
// by chunk as Envoy delivers them; chunks need not be aligned to events. Its
// memory must not grow with the length of the response. It is not safe for
// concurrent use.
type StreamMeter interface {
	// Write feeds the next chunk. It never fails and does not retain chunk.
	Write(chunk []byte)
	// Cut returns what to append to a stream whose body ended before the
	// stream's own end (the provider cut it), so that the client sees an
	// error rather than a silent end; nil when the stream ended as it
	// should, or already carries the provider's error.
	Cut() []byte
	// Usage returns what the stream said so far. A stream cut before its
	// final usage is billed for the output relayed so far: then
	// Usage.Estimated may be set.
	Usage() ResponseUsage
}

// ResponseUsage is what a response said about usage and errors.
type ResponseUsage struct {
	Usage pricing.Usage
	// Estimated marks Usage.OutputTokens as a floor estimate from the output
	// relayed, for a stream cut before it reported its output.
	Estimated bool
	// Model is the model the response names.
	Model string
	// ErrorType is the provider's error type, from an error body or an error
	// event, in the client format's own terms.
	ErrorType string
	// Complete reports whether a stream reached its own end (a JSON body is
	// complete when its body is).
	Complete bool
	// Metered reports whether usage could be read.
	Metered bool
}

// Error is a refusal of the gateway's, to render in a client format.
type Error struct {
	Status  int // the HTTP status extproc chose for Code
	Code    Code
	Message string // for the client; never a credential
	// Param names the request field the refusal is about, in the terms of
	// the client's API ("messages", "messages[0].role", "n"), for formats
	// whose error body names one (OpenAI's param); empty when none does.
	Param string
	// RequestID is the gateway's id of the request, which formats that
	// carry one in their error body show.
	RequestID string
}

// ErrorReply is a refusal rendered in a client format: the response the
// client gets. extproc adds content-length, retry-after and x-should-retry.
type ErrorReply struct {
	Status      int
	ContentType string
	Body        []byte
	// Headers are further response headers the format's clients read (none
	// for Anthropic; AWS clients read x-amzn-errortype, for instance).
	Headers []Header
}

// Header is one response header.
type Header struct{ Key, Value string }

// FieldError is a request body refused for one of its fields, as a
// format's Request reader returns it: extproc refuses the request with a
// 400 whose Error.Param is Param.
type FieldError struct {
	// Param names the field as the client's API does: "messages",
	// "messages[2].role", "n".
	Param string
	// Message says what is wrong with it, for the client.
	Message string
}

func (e *FieldError) Error() string { return e.Param + ": " + e.Message }
