package openai

import (
	"bytes"
	"strconv"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// ReadRequest reads a Chat Completions request body with reqbody's scanner:
// model, stream, max_completion_tokens or max_tokens, stream_options, and
// with withMedia the images (image_url parts) and tools of the input bound.
// The body is not decoded: every other byte goes as the client sent it.
// Errors are reqbody's for malformed JSON or a body that is not an object;
// a field the request cannot go with is a *clientformat.FieldError, whose
// Param is OpenAI's name for it: a model, stream, max_tokens or
// max_completion_tokens of the wrong type, messages missing, not an array,
// empty or with a message without one of OpenAI's roles, an n that is not a
// positive integer (validate).
func (Format) ReadRequest(_ clientformat.Endpoint, _ string, body []byte, withMedia bool) (clientformat.Request, error) {
	f, ms, err := reqbody.Members(body)
	if err != nil {
		return nil, asFieldError(err)
	}
	r := &request{body: body, f: ms, fields: f}
	for _, m := range ms {
		switch m.Key {
		case "max_completion_tokens":
			v := bytes.TrimSpace(body[m.Value.Start:m.Value.End])
			if string(v) == "null" {
				continue
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fieldError("max_completion_tokens", "must be an integer")
			}
			r.maxCompletion, r.hasMaxCompletion, r.maxCompletionAt = n, true, m.Value
		case "stream_options":
			r.streamOptions = m.Value
		case "messages":
			r.messages = m.Value
		case "tools":
			r.tools = m.Value
		case "n":
			r.n = m.Value
		}
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if withMedia {
		r.media = readMedia(body, r.messages, r.tools)
	}
	return r, nil
}

// request implements clientformat.Request for a Chat Completions body. Edits
// are kept as values and made by Body, in one copy of the body.
type request struct {
	body   []byte
	f      []reqbody.Member
	fields reqbody.Fields
	media  budget.Media

	maxCompletion    int64
	hasMaxCompletion bool
	maxCompletionAt  reqbody.Span
	streamOptions    reqbody.Span
	messages, tools  reqbody.Span
	n                reqbody.Span // the number of choices asked for
	choices          int64        // n's value; 0 when absent or null

	model     string // the new model; set when modelSet
	modelSet  bool
	maxTokens int64 // the new output limit; 0 when unchanged
}

// Model implements [clientformat.Request.Model].
func (r *request) Model() (string, bool) { return r.fields.Model, r.fields.HasModel }

// Stream implements [clientformat.Request.Stream].
func (r *request) Stream() bool { return r.fields.Stream }

// MaxTokens implements [clientformat.Request.MaxTokens]:
// max_completion_tokens, OpenAI's current field, or else the older
// max_tokens.
func (r *request) MaxTokens() (int64, bool) {
	if r.hasMaxCompletion {
		return r.maxCompletion, true
	}
	return r.fields.MaxTokens, r.fields.HasMaxTokens
}

// maxChoices is the largest n a request may ask for, OpenAI's own bound.
const maxChoices = 128

// Choices returns the number of choices the request asks for (n), at least
// 1. Each choice may produce up to the output limit, so a budget reserves
// the output of every one.
func (r *request) Choices() int64 { return max(r.choices, 1) }

// MinMaxTokens implements [clientformat.Request.MinMaxTokens]: any positive
// limit is valid.
func (*request) MinMaxTokens() int64 { return 0 }

// Media implements [clientformat.Request.Media].
func (r *request) Media() budget.Media { return r.media }

// SetModel implements [clientformat.Request.SetModel]. A body that names no
// model is left as it is.
func (r *request) SetModel(model string) {
	if r.fields.HasModel {
		r.model, r.modelSet = model, true
	}
}

// SetMaxTokens implements [clientformat.Request.SetMaxTokens]: both limit
// fields the body has are lowered. A body without either is left as it is.
// There is no thinking budget to lower.
func (r *request) SetMaxTokens(n int64) int64 {
	if _, ok := r.MaxTokens(); ok {
		r.maxTokens = n
	}
	return 0
}

// includeUsage is the stream_options Body inserts in a stream that has none.
const includeUsage = `"stream_options":{"include_usage":true}`

// Body implements [clientformat.Request.Body]: the model and output limit
// set, and in a stream stream_options.include_usage made true, since without
// it a stream carries no usage to meter.
func (r *request) Body() ([]byte, bool) {
	var edits []reqbody.Edit
	if r.modelSet && r.model != r.fields.Model {
		edits = append(edits, reqbody.ModelEdit(r.fields, r.model))
	}
	if r.maxTokens > 0 {
		if r.fields.HasMaxTokens {
			edits = append(edits, reqbody.IntEdit(reqbody.Span{Start: r.fields.MaxTokensStart, End: r.fields.MaxTokensEnd}, r.maxTokens))
		}
		if r.hasMaxCompletion {
			edits = append(edits, reqbody.IntEdit(r.maxCompletionAt, r.maxTokens))
		}
	}
	if r.fields.Stream {
		if e, ok := r.usageEdit(); ok {
			edits = append(edits, e)
		}
	}
	if len(edits) == 0 {
		return r.body, false
	}
	return reqbody.Apply(r.body, edits...), true
}

// usageEdit returns the edit that makes stream_options.include_usage true,
// or false when it already is: stream_options inserted first in the body
// when absent, replaced when null or not an object, include_usage inserted
// first in it when absent, and its value replaced when not true.
func (r *request) usageEdit() (reqbody.Edit, bool) {
	so := r.streamOptions
	if !so.Present() {
		open := bytes.IndexByte(r.body, '{') // the body scanned as an object
		v := includeUsage
		if len(r.f) > 0 {
			v += ","
		}
		return reqbody.InsertAt(open+1, []byte(v)), true
	}
	ms, err := reqbody.ObjectMembers(r.body, so)
	if err != nil { // null, or not an object: OpenAI would refuse it anyway
		return reqbody.Edit{Span: so, Value: []byte(`{"include_usage":true}`)}, true
	}
	for _, m := range ms {
		if m.Key == "include_usage" {
			if string(r.body[m.Value.Start:m.Value.End]) == "true" {
				return reqbody.Edit{}, false
			}
			return reqbody.Edit{Span: m.Value, Value: []byte("true")}, true
		}
	}
	v := `"include_usage":true`
	if len(ms) > 0 {
		v += ","
	}
	return reqbody.InsertAt(so.Start+1, []byte(v)), true
}

// readMedia counts the image parts of messages (type image_url; the length
// of a data: URL is base64 data) and the tools, for the budget's input
// bound. What does not have the expected shape is not counted: the provider
// refuses it.
func readMedia(body []byte, messages, tools reqbody.Span) budget.Media {
	var m budget.Media
	if tools.Present() {
		if es, err := reqbody.Elements(body, tools); err == nil {
			m.Tools = len(es)
		}
	}
	if !messages.Present() {
		return m
	}
	msgs, err := reqbody.Elements(body, messages)
	if err != nil {
		return m
	}
	for _, msg := range msgs {
		ms, err := reqbody.ObjectMembers(body, msg)
		if err != nil {
			continue
		}
		for _, mm := range ms {
			if mm.Key != "content" || body[mm.Value.Start] != '[' {
				continue
			}
			parts, err := reqbody.Elements(body, mm.Value)
			if err != nil {
				continue
			}
			for _, p := range parts {
				countPart(body, p, &m)
			}
		}
	}
	return m
}

// countPart counts one content part into m when it is an image.
func countPart(body []byte, p reqbody.Span, m *budget.Media) {
	ps, err := reqbody.ObjectMembers(body, p)
	if err != nil {
		return
	}
	var image bool
	var url reqbody.Span
	for _, pm := range ps {
		switch pm.Key {
		case "type":
			t, _ := reqbody.String(body, pm.Value)
			image = t == "image_url"
		case "image_url":
			if body[pm.Value.Start] != '{' {
				continue
			}
			ims, err := reqbody.ObjectMembers(body, pm.Value)
			if err != nil {
				continue
			}
			for _, im := range ims {
				if im.Key == "url" {
					url = im.Value
				}
			}
		}
	}
	if !image {
		return
	}
	m.Images++
	if url.Present() && bytes.HasPrefix(body[url.Start:url.End], []byte(`"data:`)) {
		if i := bytes.Index(body[url.Start:url.End], []byte(";base64,")); i >= 0 {
			m.Base64Bytes += url.End - 1 - (url.Start + i + len(";base64,"))
		}
	}
}
