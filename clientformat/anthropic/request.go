package anthropic

import (
	"errors"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// minThinkingBudget is Anthropic's smallest thinking budget_tokens; it must
// also be below max_tokens.
const minThinkingBudget = 1024

// ReadRequest reads a Messages or count_tokens request body with reqbody:
// model, stream and max_tokens, and with withMedia the images, documents and
// tools of the input bound, in the same pass. Errors are reqbody's (a
// *reqbody.SyntaxError, reqbody.ErrNotObject), for the client's 400; a
// field of the wrong type, or a Messages request (endpoint "messages")
// without messages (an array) or max_tokens, which the Messages API
// requires, is a *clientformat.FieldError.
func (Format) ReadRequest(ep clientformat.Endpoint, _ string, body []byte, withMedia bool) (clientformat.Request, error) {
	r := &request{body: body}
	var err error
	if withMedia {
		var m reqbody.Media
		r.f, m, err = reqbody.ScanWithMedia(body)
		r.media = budget.Media{Images: m.Images, Documents: m.Documents, Base64Bytes: m.Base64Bytes,
			Tools: m.Tools, TypedTools: m.TypedTools}
	} else {
		r.f, err = reqbody.Scan(body)
	}
	if err != nil {
		var fe *reqbody.FieldError
		if errors.As(err, &fe) {
			return nil, &clientformat.FieldError{Param: fe.Field, Message: fe.Msg}
		}
		return nil, err
	}
	if ep.Name == messagesEndpoint().Name {
		switch {
		case !r.f.Messages.Present() || string(body[r.f.Messages.Start:r.f.Messages.End]) == "null":
			return nil, &clientformat.FieldError{Param: "messages", Message: "field required; a Messages request takes an array of messages"}
		case body[r.f.Messages.Start] != '[':
			return nil, &clientformat.FieldError{Param: "messages", Message: "must be an array of messages"}
		case !r.f.HasMaxTokens:
			return nil, &clientformat.FieldError{Param: "max_tokens", Message: "field required; a Messages request sets the most output tokens it may use"}
		}
	}
	return r, nil
}

// request implements clientformat.Request for an Anthropic body. Edits are
// kept as values and made by Body, in one copy of the body.
type request struct {
	body  []byte
	f     reqbody.Fields
	media budget.Media

	model     string // the new model; set when modelSet
	modelSet  bool
	maxTokens int64 // the new max_tokens; 0 when unchanged
	thinking  int64 // the new thinking budget_tokens; 0 when unchanged

	// The enabled thinking budget, read at the first need.
	thinkingRead   bool
	thinkingBudget int64
	thinkingAt     reqbody.Span
	hasThinking    bool
}

// Model implements [clientformat.Request.Model].
func (r *request) Model() (string, bool) { return r.f.Model, r.f.HasModel }

// Stream implements [clientformat.Request.Stream].
func (r *request) Stream() bool { return r.f.Stream }

// MaxTokens implements [clientformat.Request.MaxTokens].
func (r *request) MaxTokens() (int64, bool) { return r.f.MaxTokens, r.f.HasMaxTokens }

// Media implements [clientformat.Request.Media].
func (r *request) Media() budget.Media { return r.media }

// readThinking reads the thinking budget once.
func (r *request) readThinking() {
	if !r.thinkingRead {
		r.thinkingRead = true
		r.thinkingBudget, r.thinkingAt, r.hasThinking = reqbody.ThinkingBudget(r.body, r.f)
	}
}

// MinMaxTokens implements [clientformat.Request.MinMaxTokens]: with an
// enabled thinking budget, max_tokens must stay above the smallest budget.
func (r *request) MinMaxTokens() int64 {
	r.readThinking()
	if r.hasThinking {
		return minThinkingBudget + 1
	}
	return 0
}

// SetModel implements [clientformat.Request.SetModel]. A body that names no
// model is left as it is.
func (r *request) SetModel(model string) {
	if r.f.HasModel {
		r.model, r.modelSet = model, true
	}
}

// SetMaxTokens implements [clientformat.Request.SetMaxTokens]. A thinking
// budget that would not stay below the new max_tokens is lowered in the
// proportion of max_tokens the client gave thinking, at least to
// minThinkingBudget (see fitThinking). A body without max_tokens is left as
// it is.
func (r *request) SetMaxTokens(n int64) (thinkingBudget int64) {
	if !r.f.HasMaxTokens {
		return 0
	}
	r.maxTokens, r.thinking = n, 0
	r.readThinking()
	if r.hasThinking && r.thinkingBudget >= n {
		r.thinking = fitThinking(r.thinkingBudget, r.f.MaxTokens, n)
	}
	return r.thinking
}

// fitThinking returns the thinking budget of a request whose max_tokens was
// lowered from asked to m (m > minThinkingBudget): the share of max_tokens
// the client gave thinking, at least minThinkingBudget and below m.
func fitThinking(think, asked, m int64) int64 {
	return max(minThinkingBudget, min(m*think/max(asked, 1), m-1))
}

// Body implements [clientformat.Request.Body].
func (r *request) Body() ([]byte, bool) {
	var edits []reqbody.Edit
	if r.modelSet {
		edits = append(edits, reqbody.ModelEdit(r.f, r.model))
	}
	if r.maxTokens > 0 {
		edits = append(edits, reqbody.IntEdit(reqbody.Span{Start: r.f.MaxTokensStart, End: r.f.MaxTokensEnd}, r.maxTokens))
	}
	if r.thinking > 0 {
		edits = append(edits, reqbody.IntEdit(r.thinkingAt, r.thinking))
	}
	if len(edits) == 0 {
		return r.body, false
	}
	return reqbody.Apply(r.body, edits...), true
}
