package extproc

import (
	"time"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// maxJSONResponse caps how much of a non-streaming response body is kept to read
// its usage or error. Message responses are bounded by max_tokens and stay far
// below it; a larger body is passed on but not metered (and says so).
const maxJSONResponse = 16 << 20

// meter follows one response as it streams back through the policy role. A
// response the client format reads as it streams goes through the format's
// StreamMeter, whose memory does not grow with the length of the response;
// any other is kept whole, up to maxJSONResponse, for the format's
// ParseResponse.
type meter struct {
	format      ClientFormat
	stream      clientformat.StreamMeter // nil: the response is read whole
	json        []byte
	jsonTooBig  bool
	firstByte   time.Time
	bodyDone    bool
	injectedCut bool
	capture     capture // the response body, when the policy opts in
}

// start prepares the meter for a response of format with this content type.
func (m *meter) start(format ClientFormat, contentType string) {
	m.format = format
	m.stream = format.NewStreamMeter(contentType)
}

// chunk records one response body chunk. At the end of a stream that was cut
// before its own end it returns a replacement for the chunk that appends what
// the format says (an Anthropic error event), so the client sees an error
// rather than a silent end.
func (m *meter) chunk(b []byte, endOfStream bool, now time.Time) (replacement []byte) {
	if m.firstByte.IsZero() && (len(b) > 0 || endOfStream) {
		m.firstByte = now
	}
	m.capture.write(b)
	if m.stream != nil {
		m.stream.Write(b)
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
	if m.stream == nil {
		return nil
	}
	cut := m.stream.Cut()
	if cut == nil {
		return nil
	}
	m.injectedCut = true
	out := make([]byte, 0, len(b)+len(cut))
	return append(append(out, b...), cut...)
}

// result is what the response said about usage and errors: a stream's as
// far as it went, a whole body's once it is complete. A stream is complete
// once its format saw the stream's own end (message_stop, data: [DONE]),
// whether or not the end of the body reached this role: clients close the
// response as soon as they read that end (openai-go and the openai SDKs do
// at data: [DONE]), often before Envoy's end_of_stream comes, and the
// client then had the whole response.
func (m *meter) result(status int) clientformat.ResponseUsage {
	if m.stream != nil {
		return m.stream.Usage()
	}
	if !m.bodyDone || m.jsonTooBig || len(m.json) == 0 {
		return clientformat.ResponseUsage{Complete: m.bodyDone}
	}
	r := m.format.ParseResponse(status, m.json)
	r.Complete = true
	return r
}
