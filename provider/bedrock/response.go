package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// contentTypeEventStream is the content type of Bedrock's streamed answers.
const contentTypeEventStream = "application/vnd.amazon.eventstream"

// TranslateResponse implements [translate.ResponseTranslator]. An error
// (status 300 and up) gets the Anthropic status and error type its
// x-amzn-errortype maps to (errorFor), and its {"message"} body becomes
// Anthropic's error shape. An event stream becomes Anthropic SSE, event by
// event (eventStream). A count_tokens answer, {"inputTokens":N}, becomes
// {"input_tokens":N}. Anything else, such as InvokeModel's JSON (already an
// Anthropic Message), passes as it is. A stream whose
// amazon-bedrock-invocationMetrics disagree with the usage of its events is
// reported through warn ("usage_mismatch"); the events' usage is what is
// billed.
func (fromAnthropic) TranslateResponse(clientPath string, status int, header func(string) string,
	set func(name, value string), remove func(name string), warn func(kind, msg string)) func([]byte, bool) []byte {
	switch {
	case status >= 300:
		st, typ := errorFor(header("x-amzn-errortype"), status)
		set(":status", strconv.Itoa(st))
		set("content-type", "application/json")
		remove("content-length")
		return whole(func(body []byte) []byte { return errorJSON(typ, messageOf(body)) })
	case strings.HasPrefix(header("content-type"), contentTypeEventStream):
		set("content-type", "text/event-stream")
		set("cache-control", "no-cache")
		remove("content-length")
		s := newEventStream()
		s.warn = warn
		return s.chunk
	case strings.HasPrefix(clientPath, pathCountTokens):
		remove("content-length")
		return whole(countTokens)
	}
	return nil
}

// IdlePings tells the adapter (extproc.IdlePings) to ping the client while
// Bedrock is silent: its event streams carry no ping, and a long thinking
// pause would otherwise trip clients' idle watchdogs (Claude Code's 300 s).
func (fromAnthropic) IdlePings() bool { return true }

// whole collects a body and returns fn of it at its end.
func whole(fn func(body []byte) []byte) func([]byte, bool) []byte {
	var buf []byte
	return func(chunk []byte, end bool) []byte {
		buf = append(buf, chunk...)
		if !end {
			return nil
		}
		return fn(buf)
	}
}

// countTokens turns Bedrock's CountTokens answer into Anthropic's.
func countTokens(body []byte) []byte {
	var v struct {
		InputTokens *int64 `json:"inputTokens"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.InputTokens == nil {
		return errorJSON("api_error", "Bedrock's count-tokens answer has no inputTokens")
	}
	return []byte(`{"input_tokens":` + strconv.FormatInt(*v.InputTokens, 10) + `}`)
}

// messageOf returns the message of a Bedrock error body ({"message":...} or
// {"Message":...}), or the body itself when it has none.
func messageOf(body []byte) string {
	var v struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil && v.Message != "" {
		return v.Message
	}
	if len(body) == 0 {
		return "Bedrock answered with an error and no message"
	}
	return string(body)
}

// errorJSON renders an Anthropic error body.
func errorJSON(typ, msg string) []byte {
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}{Type: "error", Error: struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}{typ, msg}}) // strings always marshal
	return b
}

// errorFor maps a Bedrock error (x-amzn-errortype, or an exception frame's
// :exception-type; any ":..." suffix ignored, case ignored) and its HTTP
// status to the Anthropic status and error type. The table is in the README.
func errorFor(errType string, status int) (int, string) {
	name, _, _ := strings.Cut(errType, ":")
	switch strings.ToLower(name) {
	case "throttlingexception", "servicequotaexceededexception":
		return 429, "rate_limit_error"
	case "serviceunavailableexception", "modelnotreadyexception":
		return 529, "overloaded_error"
	case "validationexception":
		return 400, "invalid_request_error"
	case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
		"expiredtokenexception", "missingauthenticationtokenexception":
		return 403, "permission_error"
	case "resourcenotfoundexception":
		return 404, "not_found_error"
	case "modeltimeoutexception":
		return 504, "timeout_error"
	case "internalserverexception", "modelerrorexception", "modelstreamerrorexception":
		return 500, "api_error"
	}
	switch {
	case status == 429:
		return 429, "rate_limit_error"
	case status == 503:
		return 529, "overloaded_error"
	case status == 400, status == 413, status == 422:
		return 400, "invalid_request_error"
	case status == 401, status == 403:
		return 403, "permission_error"
	case status == 404:
		return 404, "not_found_error"
	case status >= 300 && status < 500:
		return 400, "invalid_request_error"
	}
	return 500, "api_error"
}

// Sizes of the event stream framing: the prelude (total length, headers
// length, prelude CRC) and the message CRC.
const (
	preludeLen = 12
	crcLen     = 4
	// maxFrame bounds one frame; Bedrock's are a few KB.
	maxFrame = 16 << 20
)

// eventStream turns Bedrock's event stream into Anthropic SSE, frame by
// frame as they complete: a frame may arrive split over chunks, or several
// in one. Each chunk frame's payload is {"bytes":"<base64 event JSON>"},
// which becomes "event: <its type>\ndata: <JSON>\n\n". An exception frame
// becomes an Anthropic error event, and so does a stream that breaks (a bad
// frame, or one cut at the end); nothing is emitted after it.
type eventStream struct {
	buf     []byte
	dec     *eventstream.Decoder
	payload []byte // reused for each frame's payload
	event   []byte // reused for each frame's decoded event
	done    bool   // an error event was emitted
	// usage is the latest usage of the events (message_start, then
	// message_delta), for the cross-check at message_stop; warn reports a
	// mismatch.
	usage eventUsage
	warn  func(kind, msg string)
}

// eventUsage is the usage an Anthropic stream's events report.
type eventUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
}

// merge takes the fields u reports over the earlier ones.
func (e *eventUsage) merge(u eventUsage) {
	for _, f := range []struct{ dst, src **int64 }{{&e.InputTokens, &u.InputTokens}, {&e.OutputTokens, &u.OutputTokens},
		{&e.CacheCreationInputTokens, &u.CacheCreationInputTokens}, {&e.CacheReadInputTokens, &u.CacheReadInputTokens}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
}

// observe reads the usage of the events that carry it and, at
// message_stop, compares Bedrock's invocation metrics with it. It decodes
// only those three events, a few per stream.
func (s *eventStream) observe(typ string, ev []byte) {
	switch typ {
	case "message_start":
		var v struct {
			Message struct {
				Usage eventUsage `json:"usage"`
			} `json:"message"`
		}
		if json.Unmarshal(ev, &v) == nil {
			s.usage.merge(v.Message.Usage)
		}
	case "message_delta":
		var v struct {
			Usage eventUsage `json:"usage"`
		}
		if json.Unmarshal(ev, &v) == nil {
			s.usage.merge(v.Usage)
		}
	case "message_stop":
		var v struct {
			Metrics *struct {
				InputTokenCount           *int64 `json:"inputTokenCount"`
				OutputTokenCount          *int64 `json:"outputTokenCount"`
				CacheReadInputTokenCount  *int64 `json:"cacheReadInputTokenCount"`
				CacheWriteInputTokenCount *int64 `json:"cacheWriteInputTokenCount"`
			} `json:"amazon-bedrock-invocationMetrics"`
		}
		if json.Unmarshal(ev, &v) != nil || v.Metrics == nil || s.warn == nil {
			return
		}
		m := v.Metrics
		var diffs []string
		for _, c := range []struct {
			name         string
			bedrock, evs *int64
		}{{"input", m.InputTokenCount, s.usage.InputTokens}, {"output", m.OutputTokenCount, s.usage.OutputTokens},
			{"cache read", m.CacheReadInputTokenCount, s.usage.CacheReadInputTokens},
			{"cache write", m.CacheWriteInputTokenCount, s.usage.CacheCreationInputTokens}} {
			if c.bedrock == nil || *c.bedrock == value(c.evs) {
				continue
			}
			diffs = append(diffs, fmt.Sprintf("%s %d (events: %d)", c.name, *c.bedrock, value(c.evs)))
		}
		if len(diffs) > 0 {
			s.warn("usage_mismatch", "amazon-bedrock-invocationMetrics disagree with the events' usage, which is billed: "+strings.Join(diffs, ", "))
		}
	}
}

func value(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func newEventStream() *eventStream { return &eventStream{dec: eventstream.NewDecoder()} }

// chunk returns the SSE for the frames chunk completes.
func (s *eventStream) chunk(chunk []byte, end bool) []byte {
	if s.done {
		return nil
	}
	s.buf = append(s.buf, chunk...)
	var out []byte
	for len(s.buf) >= preludeLen {
		total := int(binary.BigEndian.Uint32(s.buf))
		if total < preludeLen+crcLen || total > maxFrame {
			return s.fail(out, "Bedrock's event stream is malformed")
		}
		if len(s.buf) < total {
			break
		}
		msg, err := s.dec.Decode(bytes.NewReader(s.buf[:total]), s.payload)
		if err != nil {
			return s.fail(out, "Bedrock's event stream is malformed: "+err.Error())
		}
		s.payload = msg.Payload[:0]
		var ok bool
		if out, ok = s.frame(out, msg); !ok {
			s.done = true
			return out
		}
		s.buf = s.buf[total:]
	}
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0] // release a large buffer once drained
	}
	if end && len(s.buf) > 0 {
		return s.fail(out, "Bedrock's event stream ended inside a frame")
	}
	return out
}

// fail appends an api_error event and ends the translation.
func (s *eventStream) fail(out []byte, msg string) []byte {
	s.done = true
	return appendEvent(out, "error", errorJSON("api_error", msg))
}

// frame appends the SSE for one frame; false means the stream ended with an
// error event.
func (s *eventStream) frame(out []byte, msg eventstream.Message) ([]byte, bool) {
	switch headerString(msg.Headers, ":message-type") {
	case "event":
		if headerString(msg.Headers, ":event-type") != "chunk" {
			return out, true // other events carry no Anthropic event
		}
		data, ok := s.eventJSON(msg.Payload)
		if !ok {
			return appendEvent(out, "error", errorJSON("api_error", "Bedrock sent a chunk that is not JSON")), false
		}
		typ, ok := eventType(data)
		if !ok {
			return appendEvent(out, "error", errorJSON("api_error", "Bedrock sent a chunk that is no Anthropic event")), false
		}
		if bytes.IndexByte(data, '\n') >= 0 { // one data line per event
			var c bytes.Buffer
			if json.Compact(&c, data) == nil {
				data = c.Bytes()
			}
		}
		if typ == "message_start" || typ == "message_delta" || typ == "message_stop" {
			s.observe(typ, data)
		}
		// An Anthropic error event ends the stream as an exception does.
		return appendEvent(out, typ, data), typ != "error"
	case "exception":
		_, typ := errorFor(headerString(msg.Headers, ":exception-type"), 500)
		return appendEvent(out, "error", errorJSON(typ, messageOf(msg.Payload))), false
	default: // "error": :error-code and :error-message
		m := headerString(msg.Headers, ":error-message")
		if m == "" {
			m = "Bedrock's event stream failed: " + headerString(msg.Headers, ":error-code")
		}
		return appendEvent(out, "error", errorJSON("api_error", m)), false
	}
}

// appendEvent appends one SSE event.
func appendEvent(out []byte, typ string, data []byte) []byte {
	out = append(out, "event: "...)
	out = append(out, typ...)
	out = append(out, "\ndata: "...)
	out = append(out, data...)
	return append(out, "\n\n"...)
}

func headerString(h eventstream.Headers, name string) string {
	if v, ok := h.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// eventJSON returns the Anthropic event a chunk payload carries base64 in
// its bytes field: {"bytes":"<base64>","p":"<padding>"}. The usual shape is
// read without decoding the JSON, into a buffer reused across frames;
// anything else goes through encoding/json.
func (s *eventStream) eventJSON(payload []byte) ([]byte, bool) {
	const prefix = `{"bytes":"`
	if rest, ok := bytes.CutPrefix(payload, []byte(prefix)); ok {
		if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			enc := rest[:end]
			s.event = slices.Grow(s.event[:0], base64.StdEncoding.DecodedLen(len(enc)))[:base64.StdEncoding.DecodedLen(len(enc))]
			if n, err := base64.StdEncoding.Decode(s.event, enc); err == nil {
				return s.event[:n], true
			}
		}
	}
	var p struct {
		Bytes []byte `json:"bytes"` // base64 in the JSON
	}
	if err := json.Unmarshal(payload, &p); err != nil || p.Bytes == nil {
		return nil, false
	}
	return p.Bytes, true
}

// eventType returns the type of an Anthropic event: read off the usual
// {"type":"..." start, or else decoded.
func eventType(ev []byte) (string, bool) {
	const prefix = `{"type":"`
	if rest, ok := bytes.CutPrefix(ev, []byte(prefix)); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			return string(rest[:end]), true
		}
	}
	var v struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(ev, &v); err != nil || v.Type == "" {
		return "", false
	}
	return v.Type, true
}
