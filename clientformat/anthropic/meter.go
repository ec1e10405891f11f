package anthropic

import (
	"encoding/json"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// NewStreamMeter returns the meter of a response whose content type is
// text/event-stream (any case and parameters), read as it streams by a
// StreamParser; nil for any other response, which is read whole by
// ParseResponse.
func (Format) NewStreamMeter(contentType string) clientformat.StreamMeter {
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream") {
		return nil
	}
	return &streamMeter{}
}

// streamMeter implements clientformat.StreamMeter for a Messages stream.
type streamMeter struct {
	parser  StreamParser
	tail    [4]byte // the last bytes seen, to end an injected event cleanly
	tailLen int
}

// Write implements [clientformat.StreamMeter.Write].
func (m *streamMeter) Write(b []byte) {
	m.parser.Write(b)
	for _, c := range b[max(0, len(b)-len(m.tail)):] {
		copy(m.tail[:], m.tail[1:])
		m.tail[len(m.tail)-1] = c
		m.tailLen = min(m.tailLen+1, len(m.tail))
	}
}

// cutStreamEvent is the data of the error event Cut appends: an api_error,
// as Anthropic sends mid-stream errors (WIRE-FORMATS section 1.3).
const cutStreamEvent = `{"error":{"message":"the provider's stream ended before message_stop; the response is incomplete","type":"api_error"},"type":"error"}`

// Cut implements [clientformat.StreamMeter.Cut]: a stream that ended before
// message_stop, and without an error event of the provider's, gets an
// Anthropic error event, after a blank line when the bytes so far do not end
// on an event boundary.
func (m *streamMeter) Cut() []byte {
	if m.parser.Done() {
		return nil
	}
	if _, _, failed := m.parser.Err(); failed {
		return nil // the provider already said what went wrong
	}
	var out []byte
	if !m.endsEvent() {
		out = append(out, "\n\n"...)
	}
	out = append(out, "event: error\ndata: "...)
	out = append(out, cutStreamEvent...)
	return append(out, "\n\n"...)
}

// endsEvent reports whether the bytes so far end on an event boundary (a blank
// line), or nothing was sent at all.
func (m *streamMeter) endsEvent() bool {
	t := string(m.tail[len(m.tail)-m.tailLen:])
	return t == "" || strings.HasSuffix(t, "\n\n") || strings.HasSuffix(t, "\r\n\r\n")
}

// Usage implements [clientformat.StreamMeter.Usage]. A stream cut before
// message_delta (the client left, or the provider ended it) is billed for
// the output relayed so far (StreamParser.BilledUsage).
func (m *streamMeter) Usage() clientformat.ResponseUsage {
	var r clientformat.ResponseUsage
	r.Usage, r.Estimated = m.parser.BilledUsage()
	r.Model = m.parser.Model()
	r.Metered = m.parser.Started()
	r.Complete = m.parser.Done()
	if typ, _, ok := m.parser.Err(); ok {
		r.ErrorType = typ
	}
	return r
}

// ParseResponse reads a whole (non-streamed) response body: with a status of
// 400 or above the error.type of an Anthropic error body, otherwise the usage
// and model of a Messages response (ParseMessage). Usage is not Metered when
// it cannot be read.
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
	u, model, err := ParseMessage(body)
	if err == nil {
		r.Usage, r.Model, r.Metered = u, model, true
	}
	return r
}
