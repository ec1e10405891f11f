package openai

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// charsPerToken is the number of output characters a token is assumed to
// cover at least, for the output of a stream cut before its usage chunk: a
// floor estimate, as the Anthropic format's.
const charsPerToken = 4

// maxLine bounds the line a stream meter keeps: a longer data line (a chunk
// that is not OpenAI's) is skipped, so memory does not grow with the
// response.
const maxLine = 1 << 20

// chatUsage is OpenAI's usage object.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// CacheCreation and CacheCreationSplit are the tokens written to the
	// prompt cache, under Anthropic's names, which OpenAI's usage has no
	// field for: a translation from the Messages API adds them (they are
	// part of prompt_tokens).
	CacheCreation      int64 `json:"cache_creation_input_tokens"`
	CacheCreationSplit *struct {
		FiveMin int64 `json:"ephemeral_5m_input_tokens"`
		OneHour int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// usage normalises u: prompt_tokens holds the cached tokens, which become
// cache read tokens, and the cache writes a translation reports, which
// become cache write tokens (5-minute unless split); reasoning tokens are
// part of the output tokens.
func (u *chatUsage) usage() pricing.Usage {
	p := u.openAI()
	if w := min(max(u.CacheCreation, 0), p.InputTokens); w > 0 {
		p.InputTokens -= w
		if s := u.CacheCreationSplit; s != nil && s.FiveMin >= 0 && s.OneHour >= 0 && s.FiveMin+s.OneHour == w {
			p.CacheWrite5mTokens, p.CacheWrite1hTokens = s.FiveMin, s.OneHour
		} else {
			p.CacheWrite5mTokens = w
		}
	}
	return p
}

// openAI is usage for OpenAI's own fields.
func (u *chatUsage) openAI() pricing.Usage {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(max(u.PromptTokensDetails.CachedTokens, 0), max(u.PromptTokens, 0))
	}
	if u.CompletionTokensDetails != nil {
		reasoning = max(u.CompletionTokensDetails.ReasoningTokens, 0)
	}
	return pricing.Usage{InputTokens: max(u.PromptTokens-cached, 0), CacheReadTokens: cached,
		OutputTokens: max(u.CompletionTokens, 0), ReasoningTokens: reasoning}
}

// chunk is what a meter reads of a chat.completion.chunk, or of an error.
type chunk struct {
	Model   string     `json:"model"`
	Usage   *chatUsage `json:"usage"`
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			Refusal          string `json:"refusal"`
			ToolCalls        []struct {
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Error *struct {
		Type string `json:"type"`
	} `json:"error"`
}

// NewStreamMeter returns the meter of a response whose content type is
// text/event-stream (any case and parameters); nil for any other response,
// which is read whole by ParseResponse.
func (Format) NewStreamMeter(contentType string) clientformat.StreamMeter {
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream") {
		return nil
	}
	return &streamMeter{}
}

// streamMeter implements clientformat.StreamMeter for a stream of
// chat.completion.chunk events, which ends with data: [DONE].
type streamMeter struct {
	line     []byte
	skipping bool // the current line is over maxLine
	lastByte byte // the last byte seen, to end an injected event cleanly
	prevByte byte

	started, done bool
	model         string
	usage         pricing.Usage
	reported      bool // a chunk carried usage
	chars         int64
	errType       string
	failed        bool
}

// Write implements [clientformat.StreamMeter.Write].
func (m *streamMeter) Write(b []byte) {
	if n := len(b); n > 0 {
		m.prevByte, m.lastByte = m.lastByte, b[n-1]
		if n > 1 {
			m.prevByte = b[n-2]
		}
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		if !m.skipping {
			if len(m.line)+len(part) > maxLine {
				m.skipping, m.line = true, m.line[:0]
			} else {
				m.line = append(m.line, part...)
			}
		}
		if i < 0 {
			break
		}
		if !m.skipping {
			m.handleLine(bytes.TrimSuffix(m.line, []byte("\r")))
		}
		m.line, m.skipping = m.line[:0], false
		b = b[i+1:]
	}
}

// handleLine reads one line of the stream: only data lines matter.
func (m *streamMeter) handleLine(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		m.done = true
		return
	}
	var c chunk
	if json.Unmarshal(data, &c) != nil {
		return
	}
	if c.Error != nil {
		m.failed, m.errType = true, c.Error.Type
		return
	}
	m.started = true
	if c.Model != "" {
		m.model = c.Model
	}
	if c.Usage != nil {
		m.usage, m.reported = c.Usage.usage(), true
	}
	for _, ch := range c.Choices {
		d := &ch.Delta
		m.chars += int64(len([]rune(d.Content)) + len([]rune(d.ReasoningContent)) + len([]rune(d.Refusal)))
		for _, tc := range d.ToolCalls {
			m.chars += int64(len([]rune(tc.Function.Name)) + len([]rune(tc.Function.Arguments)))
		}
	}
}

// cutStreamEvent is the event Cut appends: an error chunk, which OpenAI's
// SDKs raise as an error of the stream.
const cutStreamEvent = `data: {"error":{"message":"the provider's stream ended before data: [DONE]; the response is incomplete","type":"server_error","param":null,"code":null}}` + "\n\n"

// Cut implements [clientformat.StreamMeter.Cut]: a stream that ended before
// data: [DONE], and without an error chunk of the provider's, gets an error
// chunk, after a blank line when the bytes so far do not end one.
func (m *streamMeter) Cut() []byte {
	if m.done || m.failed {
		return nil
	}
	var out []byte
	if len(m.line) > 0 || m.skipping || (m.lastByte != 0 && !(m.lastByte == '\n' && m.prevByte == '\n')) {
		out = append(out, "\n\n"...)
	}
	return append(out, cutStreamEvent...)
}

// Usage implements [clientformat.StreamMeter.Usage]. A stream cut before
// its usage chunk is billed for the output relayed so far, estimated.
func (m *streamMeter) Usage() clientformat.ResponseUsage {
	r := clientformat.ResponseUsage{Usage: m.usage, Model: m.model, Metered: m.started, Complete: m.done, ErrorType: m.errType}
	if !m.reported && m.chars > 0 {
		r.Usage.OutputTokens = (m.chars + charsPerToken - 1) / charsPerToken
		r.Estimated = true
	}
	return r
}

// ParseResponse reads a whole (non-streamed) response body: with a status of
// 400 or above the error.type of an OpenAI error body, otherwise the usage
// and model of a chat.completion. Usage is not Metered when it cannot be
// read.
func (Format) ParseResponse(status int, body []byte) clientformat.ResponseUsage {
	r := clientformat.ResponseUsage{Complete: true}
	if status >= 400 {
		var e struct {
			Error struct {
				Type string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil {
			r.ErrorType = e.Error.Type
		}
		return r
	}
	var c struct {
		Model string     `json:"model"`
		Usage *chatUsage `json:"usage"`
	}
	if json.Unmarshal(body, &c) == nil && c.Usage != nil {
		r.Usage, r.Model, r.Metered = c.Usage.usage(), c.Model, true
	}
	return r
}
