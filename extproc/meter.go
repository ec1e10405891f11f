package extproc

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// maxJSONResponse caps how much of a non-streaming response body is kept to read
// its usage or error. Message responses are bounded by max_tokens and stay far
// below it; a larger body is passed on but not metered (and says so).
const maxJSONResponse = 16 << 20

// meter follows one response as it streams back through the policy role. Its
// memory does not grow with the length of a streamed response: the SSE parser
// keeps only the events that carry usage.
type meter struct {
	sse         bool
	parser      anthropic.StreamParser
	json        []byte
	jsonTooBig  bool
	firstByte   time.Time
	bodyDone    bool
	tail        [4]byte // the last bytes seen, to end an injected event cleanly
	tailLen     int
	injectedCut bool
	capture     capture // the response body, when the policy opts in
}

func (m *meter) start(contentType string) {
	m.sse = strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream")
}

// chunk records one response body chunk. At the end of a stream that was cut
// before message_stop it returns a replacement for the chunk that appends an
// Anthropic error event, so the client sees an error rather than a silent end.
func (m *meter) chunk(b []byte, endOfStream bool, now time.Time) (replacement []byte) {
	if m.firstByte.IsZero() && (len(b) > 0 || endOfStream) {
		m.firstByte = now
	}
	m.capture.write(b)
	if m.sse {
		m.parser.Write(b)
		m.remember(b)
	} else if !m.jsonTooBig {
		if len(m.json)+len(b) > maxJSONResponse {
			m.jsonTooBig, m.json = true, nil
		} else {
			m.json = append(m.json, b...)
		}
	}
	if !endOfStream {
		return nil
	}
	m.bodyDone = true
	if !m.sse || m.parser.Done() {
		return nil
	}
	if _, _, failed := m.parser.Err(); failed {
		return nil // the provider already said what went wrong
	}
	m.injectedCut = true
	var out bytes.Buffer
	out.Write(b)
	if !m.endsEvent() {
		out.WriteString("\n\n")
	}
	out.WriteString("event: error\ndata: ")
	out.Write(cutStreamEvent)
	out.WriteString("\n\n")
	return out.Bytes()
}

var cutStreamEvent = func() []byte {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{
		"type": "api_error", "message": "the provider's stream ended before message_stop; the response is incomplete",
	}})
	return b
}()

func (m *meter) remember(b []byte) {
	for _, c := range b[max(0, len(b)-len(m.tail)):] {
		copy(m.tail[:], m.tail[1:])
		m.tail[len(m.tail)-1] = c
		m.tailLen = min(m.tailLen+1, len(m.tail))
	}
}

// endsEvent reports whether the bytes so far end on an event boundary (a blank
// line), or nothing was sent at all.
func (m *meter) endsEvent() bool {
	t := string(m.tail[len(m.tail)-m.tailLen:])
	return t == "" || strings.HasSuffix(t, "\n\n") || strings.HasSuffix(t, "\r\n\r\n")
}

// result is what the response said about usage and errors.
type meterResult struct {
	usage     pricing.Usage
	estimated bool // usage.OutputTokens is the floor estimate of a cut stream
	model     string
	errorType string // from an error body or an SSE error event
	complete  bool   // the response ended normally
	metered   bool   // usage could be read
}

func (m *meter) result(status int) meterResult {
	var r meterResult
	if m.sse {
		// A stream cut before message_delta (the client left, or the
		// provider ended it) is billed for the output relayed so far.
		r.usage, r.estimated = m.parser.BilledUsage()
		r.model = m.parser.Model()
		r.metered = m.parser.Started()
		r.complete = m.bodyDone && m.parser.Done()
		if typ, _, ok := m.parser.Err(); ok {
			r.errorType = typ
		}
		return r
	}
	r.complete = m.bodyDone
	if !m.bodyDone || m.jsonTooBig || len(m.json) == 0 {
		return r
	}
	if status >= 400 {
		var e struct {
			Error struct {
				Type string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal(m.json, &e) == nil {
			r.errorType = e.Error.Type
		}
		return r
	}
	u, model, err := anthropic.ParseMessage(m.json)
	if err == nil {
		r.usage, r.model, r.metered = u, model, true
	}
	return r
}
