package extproc

import (
	"bytes"
	"sync"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// DefaultPingInterval is how long a translated stream may stay silent
// before the adapter sends the client a ping: well under the idle watchdogs
// of clients (Claude Code aborts a stream after 300 s without a byte).
const DefaultPingInterval = 15 * time.Second

// DefaultPingMaxIdle is how long the adapter keeps pinging a stream whose
// provider sends nothing. Pings reach Envoy's router as upstream data, so
// they re-arm per_try_idle_timeout and the route's idle_timeout
// (UpstreamRequest::decodeData, resetPerTryIdleTimer): without a bound a
// provider that went silent for good would hold the stream open forever.
// Past it Envoy's own idle timeouts end the stream.
const DefaultPingMaxIdle = 10 * time.Minute

// AfterFunc starts a timer that calls f in its own goroutine after d, as
// time.AfterFunc does; tests inject a clock of their own.
type AfterFunc func(d time.Duration, f func()) Timer

// Timer is a timer AfterFunc started.
type Timer interface {
	// Stop stops the timer; false when it already fired or was stopped.
	Stop() bool
}

func realAfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// IdlePings is implemented by a Translation whose provider's streams carry
// no pings and reach the client translated (Bedrock's event streams, an
// OpenAI-compatible provider's chunks): a client's idle watchdog sees only
// what the translation emits. IdlePings reports whether the adapter should
// ping such a stream while its provider is silent.
type IdlePings interface {
	IdlePings() bool
}

// Bytes of a ping: Anthropic's own event for Anthropic clients, an SSE
// comment (which every SSE reader skips) for the other formats.
var (
	pingAnthropic = []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n")
	pingComment   = []byte(": ping\n\n")
)

// duplexResponseBody is the adapter's mode_override, in the request headers
// reply, for an attempt whose response it may ping: the response body in
// FULL_DUPLEX_STREAMED mode, with response trailers SEND (which that mode
// needs: config.cc rejects a config without it, and without it trailers
// would overtake the body), and the request body as the attempt needs it.
//
// FULL_DUPLEX_STREAMED is the one mode in which Envoy takes body data from
// the processor that answers no chunk (processor_state.cc
// ProcessorState::handleStreamedBodyCallback and
// handleDuplexStreamedBodyResponse: any number of streamed_response
// messages, each injected at once, the state staying StreamedBodyCallback
// until end_of_stream); in STREAMED each reply answers one chunk of the
// provider's. It is set here, not at the response headers: a response body
// chunk that arrives while the response headers reply is awaited in mode
// NONE is buffered by the filter manager, and after a switch to
// FULL_DUPLEX_STREAMED handleHeadersResponse ("There is no buffered data in
// this mode") continues it unprocessed, the provider's own bytes reaching
// the client. Set at the request headers, the mode is in force before the
// response arrives (ext_proc.cc Filter::onReceiveMessage honours an override
// in any headers reply while the filter's configured modes are not
// FULL_DUPLEX_STREAMED, and sets both directions). Not configured statically
// either: that would disable mode_override on the filter (same function),
// so every attempt, Anthropic's included, would pass its bodies through the
// adapter.
func duplexResponseBody(requestBody extprocfilterv3.ProcessingMode_BodySendMode) *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestBodyMode:     requestBody,
		ResponseBodyMode:    extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SEND,
	}
}

func streamedBody(b []byte, end bool) *extprocv3.ProcessingResponse {
	return continueResponseBody(&extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
		Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: b, EndOfStream: end}}}})
}

// duplexBody is the response side of an attempt in FULL_DUPLEX_STREAMED
// mode: every chunk of the provider's answered with a streamed_response of
// what the translation made of it (or the chunk itself), and, when the
// client gets an event stream, a ping after each interval in which the
// provider sent nothing, between whole events only. Envoy accepts a body
// message from the processor only once a chunk was sent to it and until
// end_of_stream (handleBodyResponse, isValidBodyCallbackState), so pings
// start after the first chunk and end with the stream.
type duplexBody struct {
	send      func(*extprocv3.ProcessingResponse) error
	afterFunc AfterFunc
	interval  time.Duration
	maxPings  int    // pings in a row before giving up on a silent provider
	ping      []byte // nil: no pings (not an event stream)
	onPing    func()

	mu       sync.Mutex // serializes replies and pings, and guards what follows
	timer    Timer
	gen      uint64 // counts timers started; a timer fires only if it is the last
	pings    int    // since the provider's last chunk
	boundary bool   // what was sent so far ends between two events
	ended    bool
}

func newDuplexBody(send func(*extprocv3.ProcessingResponse) error, afterFunc AfterFunc, interval, maxIdle time.Duration, ping []byte, onPing func()) *duplexBody {
	d := &duplexBody{send: send, afterFunc: afterFunc, interval: interval, ping: ping, onPing: onPing}
	if interval > 0 {
		d.maxPings = int(maxIdle / interval)
	}
	return d
}

// chunk sends out, what the provider's chunk became, and re-arms the ping
// timer. The reply is sent here, under the lock, so that a ping never
// overtakes it.
func (d *duplexBody) chunk(out []byte, end bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ended {
		return nil
	}
	if len(out) > 0 {
		d.boundary = bytes.HasSuffix(out, []byte("\n\n"))
	}
	if end {
		d.ended = true
	}
	if len(out) == 0 && !end {
		// Nothing to send (part of a frame): Envoy injects no empty body.
	} else if err := d.send(streamedBody(out, end)); err != nil {
		d.ended = true
		return err
	}
	d.pings = 0
	d.arm()
	return nil
}

// arm starts the ping timer, when pings are due; d.mu is held.
func (d *duplexBody) arm() {
	if d.ended || d.ping == nil || d.interval <= 0 || d.pings >= d.maxPings {
		return
	}
	d.gen++
	gen := d.gen
	d.timer = d.afterFunc(d.interval, func() { d.fire(gen) })
}

// fire sends a ping if the provider stayed silent, the stream is between
// two events, and the timer gen is still the current one.
func (d *duplexBody) fire(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended || d.timer == nil || d.gen != gen {
		return
	}
	d.timer = nil
	d.pings++
	if d.boundary {
		if err := d.send(streamedBody(d.ping, false)); err != nil {
			d.ended = true
			return
		}
		if d.onPing != nil {
			d.onPing()
		}
	}
	d.arm()
}

// end stops the pings: the stream ended (trailers, or the stream itself).
func (d *duplexBody) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ended = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
