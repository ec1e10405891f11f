package envoytest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// requestStream is one downstream HTTP request: Envoy's filter manager for it.
// All of its state is owned by one goroutine (the handler's) running an event
// loop, like an Envoy worker; helper goroutines (body readers, gRPC streams,
// the upstream request, timers) only post closures to it.
type requestStream struct {
	h  *Harness
	w  http.ResponseWriter
	r  *http.Request
	rc *http.ResponseController

	events chan func()
	done   chan struct{} // closed when the loop has exited
	wg     sync.WaitGroup
	timers map[*loopTimer]struct{} // armed timers, stopped at cleanup
	// deferred holds work queued by the loop for itself, run after the
	// current event (never posted, which could block the loop).
	deferred []func()

	reqHeaders  *headerMap // Envoy's one request header map, shared by filters, router and upstream filters
	route       *route     // the cached route; nil with routeValid means no route matched
	routeValid  bool
	bufferLimit uint64
	chain       *filterChain
	router      *router
	meta        dynamicMetadata // the StreamInfo's dynamic metadata, shared with every attempt's upstream filters

	finished      bool // the response is complete, or the stream was reset
	reset         bool // the downstream stream must be reset (connection closed)
	encodeStarted bool // response headers entered the encoder filter chain
	headersSent   bool // response headers were written downstream
	responseCode  int
	details       string
	flags         []string  // the StreamInfo's response flags, short names (setFlag)
	started       time.Time // the StreamInfo's start time

	bodyReading  bool
	idleTimer    *loopTimer
	idleTimeout  time.Duration
	lastActivity time.Time
}

// loopTimer is a timer whose callback runs on the request's event loop.
type loopTimer struct {
	s       *requestStream
	t       *time.Timer
	stopped bool
}

func (s *requestStream) afterFunc(d time.Duration, fn func()) *loopTimer {
	lt := &loopTimer{s: s}
	s.wg.Add(1)
	lt.t = time.AfterFunc(d, func() {
		defer s.wg.Done()
		s.post(func() {
			if !lt.stopped {
				lt.stopped = true
				delete(s.timers, lt)
				fn()
			}
		})
	})
	if s.timers == nil {
		s.timers = map[*loopTimer]struct{}{}
	}
	s.timers[lt] = struct{}{}
	return lt
}

func (lt *loopTimer) stop() {
	if lt == nil || lt.stopped {
		return
	}
	lt.stopped = true
	delete(lt.s.timers, lt)
	if lt.t.Stop() {
		lt.s.wg.Done()
	}
}

// later queues fn to run on the loop after the current event.
func (s *requestStream) later(fn func()) { s.deferred = append(s.deferred, fn) }

// post runs fn on the event loop. It reports false once the loop has exited.
func (s *requestStream) post(fn func()) bool {
	select {
	case s.events <- fn:
		return true
	case <-s.done:
		return false
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// serve runs the request to completion. It returns only when every helper
// goroutine of the request has exited.
func (s *requestStream) serve() {
	defer func() {
		close(s.done)
		s.cleanup()
		s.writeAccessLogs()
		if s.reset {
			// Resetting the stream: net/http closes an HTTP/1.1 connection
			// mid-body and sends RST_STREAM on HTTP/2.
			panic(http.ErrAbortHandler)
		}
	}()
	s.start()
	s.runDeferred()
	for !s.finished {
		select {
		case fn := <-s.events:
			fn()
			s.runDeferred()
		case <-s.r.Context().Done():
			s.onDownstreamReset()
		case <-s.h.ctx.Done():
			s.onDownstreamReset()
		}
	}
}

func (s *requestStream) runDeferred() {
	for len(s.deferred) > 0 && !s.finished {
		next := s.deferred[0]
		s.deferred = s.deferred[1:]
		next()
	}
}

// cleanup closes every ext_proc stream (half-close then reset), aborts the
// upstream request and waits for the helper goroutines.
func (s *requestStream) cleanup() {
	for lt := range s.timers {
		lt.stop()
	}
	s.chain.closeStreams()
	if s.router != nil {
		s.router.abort()
	}
	if s.bodyReading {
		// Unblock a pending read of the request body.
		_ = s.rc.SetReadDeadline(time.Now())
	}
	s.wg.Wait()
}

func (s *requestStream) onDownstreamReset() {
	if s.finished {
		return
	}
	s.h.logf("envoytest: downstream went away: %v", s.r.Context().Err())
	s.h.count(func(st *Stats) { st.DownstreamResets++ })
	s.setFlag(downstreamResetFlag(s.r))
	s.details = downstreamResetDetails(s.r)
	s.finished = true
}

func (s *requestStream) start() {
	r := s.r
	s.started = time.Now()
	h := fromHTTP(r.Header)
	h.add(":method", r.Method)
	h.add(":scheme", "http")
	h.add(":authority", r.Host)
	h.add(":path", r.RequestURI)
	if !h.has("x-forwarded-proto") {
		h.set("x-forwarded-proto", "http")
	}
	if s.h.conf.generateRequestID && !h.has("x-request-id") {
		h.set("x-request-id", newRequestID())
	}
	s.reqHeaders = h
	s.idleTimeout = s.h.conf.streamIdleTimeout
	s.bufferLimit = s.h.conf.bufferLimit
	// The HCM resolves the route before the filters run; per-route filter
	// config and the buffer limit come from it.
	s.resolveRoute()
	if rt := s.route; rt != nil {
		if rt.idleTimeout != nil {
			s.idleTimeout = *rt.idleTimeout
		}
	}
	s.touch()
	if s.idleTimeout > 0 {
		s.idleTimer = s.afterFunc(s.idleTimeout, s.onIdleTimeout)
	}
	s.router = &router{s: s}
	s.chain = newDownstreamChain(s)
	if h.byteSize() > s.h.conf.maxHeadersBytes {
		s.sendLocalReply(0, false, 431, "", nil, "request_headers_too_large")
		return
	}
	eos := r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0)
	if !eos {
		s.startBodyReader()
	}
	s.chain.decodeHeadersAt(0, h, eos)
}

// resolveRoute matches the route on the current request headers and raises
// the buffer limit as refreshBufferLimit does (it never lowers it).
func (s *requestStream) resolveRoute() {
	s.route = s.h.conf.routes.match(s.reqHeaders)
	s.routeValid = true
	if s.route != nil {
		for _, l := range []uint64{s.route.vhost.bufferLimit, s.route.bufferLimit} {
			if l > s.bufferLimit {
				s.bufferLimit = l
			}
		}
	}
}

func (s *requestStream) startBodyReader() {
	s.bodyReading = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 64*1024)
		for {
			n, err := s.r.Body.Read(buf)
			if n > 0 {
				chunk := append([]byte(nil), buf[:n]...)
				if !s.post(func() { s.onDownstreamData(chunk, false) }) {
					return
				}
			}
			if err == io.EOF {
				// Like Envoy's HTTP/1 codec: an empty end-of-stream callback
				// after the last body bytes.
				s.post(func() { s.bodyReading = false; s.onDownstreamData(nil, true) })
				return
			}
			if err != nil {
				s.post(func() { s.bodyReading = false; s.onDownstreamReset() })
				return
			}
		}
	}()
}

func (s *requestStream) onDownstreamData(b []byte, eos bool) {
	s.touch()
	s.chain.decodeDataAt(0, b, eos)
}

// touch records stream activity for the idle timer (route idle_timeout or
// the HCM's stream_idle_timeout).
func (s *requestStream) touch() { s.lastActivity = time.Now() }

func (s *requestStream) onIdleTimeout() {
	if rest := s.idleTimeout - time.Since(s.lastActivity); rest > 0 {
		s.idleTimer = s.afterFunc(rest, s.onIdleTimeout)
		return
	}
	// ConnectionManagerImpl::ActiveStream::onIdleTimeout sets StreamIdleTimeout.
	s.setFlag(flagStreamIdleTimeout)
	s.sendLocalReply(len(s.chain.filters), true, http.StatusRequestTimeout, "stream timeout", nil, "stream_idle_timeout")
}

// sendLocalReply is Envoy's sendLocalReply. origin is the chain position of
// the sender (len(filters) for the router or the connection manager);
// includeSelf says whether the sender's own encoder runs (true for the router
// and for buffer overflows, false for an ext_proc filter that has finished).
//
// Before any response reached the encoder chain, the reply is formatted by
// local_reply_config and encoded through the filters the request went
// through. Once the response is in the encoder chain but its headers have
// not been sent, it goes straight to the client. After that the stream is
// reset.
func (s *requestStream) sendLocalReply(origin int, includeSelf bool, code int, body string, extra *headerMap, details string) {
	if s.finished {
		return
	}
	s.h.logf("envoytest: local reply %d (%s)", code, details)
	s.h.count(func(st *Stats) {
		if st.LocalReplies == nil {
			st.LocalReplies = map[int]int64{}
		}
		st.LocalReplies[code]++
	})
	s.details = details
	if s.headersSent {
		s.resetDownstream()
		return
	}
	s.chain.decodeStopped = true
	s.router.abort()
	h, b := s.buildLocalReply(code, body, extra, details)
	if s.encodeStarted {
		s.chain.encodeStopped = true
		s.writeHeaders(h, len(b) == 0)
		if len(b) > 0 {
			s.writeData(b, true)
		}
		return
	}
	s.encodeStarted = true
	start := origin - 1
	if includeSelf {
		start = origin
	}
	if start >= len(s.chain.filters) {
		start = len(s.chain.filters) - 1
	}
	s.chain.encodeHeadersAt(start, h, len(b) == 0)
	if len(b) > 0 && !s.finished {
		s.chain.encodeDataAt(start, b, true)
	}
}

// buildLocalReply renders a local reply as Envoy's Utility::sendLocalReply.
func (s *requestStream) buildLocalReply(code int, body string, extra *headerMap, details string) (*headerMap, []byte) {
	h := &headerMap{}
	h.add(":status", strconv.Itoa(code))
	if extra != nil {
		for _, e := range extra.entries {
			h.add(e.key, e.value)
		}
	}
	rc := &replyContext{code: code, body: body, details: details, req: s.reqHeaders}
	ctype, formatted := s.h.conf.localReply.rewrite(rc, h)
	if rc.body != "" {
		h.set("content-length", strconv.Itoa(len(rc.body)))
		if formatted || !h.has("content-type") {
			h.set("content-type", ctype)
		}
	}
	return h, []byte(rc.body)
}

func (s *requestStream) resetDownstream() {
	if s.finished {
		return
	}
	s.h.logf("envoytest: resetting the downstream stream (%s)", s.details)
	s.h.count(func(st *Stats) { st.DownstreamResets++ })
	s.reset = true
	s.finished = true
}

// writeHeaders is the downstream codec: it sends the response headers.
func (s *requestStream) writeHeaders(h *headerMap, eos bool) {
	if s.finished || s.headersSent {
		return
	}
	s.touch()
	code, err := strconv.Atoi(firstValue(h, ":status"))
	if err != nil || code < 100 || code > 999 {
		code = http.StatusBadGateway
	}
	s.responseCode = code
	hdr := s.w.Header()
	h.toHTTP(hdr)
	hdr.Set("Server", "envoy")
	if s.bodyReading && s.r.ProtoMajor == 1 {
		// The response starts before the request body was read to its end (a
		// local reply at request headers, say): like Envoy's HTTP/1 codec, close
		// the connection after it rather than reuse a connection whose request
		// body was left half read.
		hdr.Set("Connection", "close")
	}
	s.headersSent = true
	s.w.WriteHeader(code)
	if eos {
		s.finished = true
		return
	}
	_ = s.rc.Flush()
}

// writeData is the downstream codec: each chunk is flushed at once, so
// streamed responses reach the client event by event.
func (s *requestStream) writeData(b []byte, eos bool) {
	if s.finished {
		return
	}
	s.touch()
	if len(b) > 0 && s.r.Method != http.MethodHead {
		if _, err := s.w.Write(b); err != nil {
			s.onDownstreamReset()
			return
		}
		_ = s.rc.Flush()
	}
	if eos {
		s.finished = true
	}
}

func firstValue(h *headerMap, k string) string {
	v, _ := h.get(k)
	return v
}

// downstreamSink receives what leaves the first encoder filter.
type downstreamSink struct{ s *requestStream }

func (d downstreamSink) encodeHeaders(h *headerMap, eos bool) { d.s.writeHeaders(h, eos) }
func (d downstreamSink) encodeData(b []byte, eos bool)        { d.s.writeData(b, eos) }
