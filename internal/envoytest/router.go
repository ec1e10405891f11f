package envoytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// router is the terminal downstream filter: it resolves the route (again,
// if a filter cleared the route cache), picks the cluster and runs upstream
// attempts, each through the cluster's upstream filter chain.
type router struct {
	s *requestStream

	headers    *headerMap // the request header map; upstream filters mutate it and the mutations carry over between attempts
	headersEOS bool
	eos        bool   // the downstream request is complete at the router
	body       []byte // copy of the original body kept for retries
	bodyTooBig bool   // the copy exceeded the buffer limit: retries are abandoned

	rt      *route
	cluster *cluster // the routed cluster (for an aggregate, the aggregate itself)

	attempts  int
	att       *attempt // nil while a retry waits for its back-off
	rs        *retryState
	pp        previousPriorities
	timeout   *loopTimer
	backOff   *loopTimer
	eosAt     time.Time // when the downstream request completed
	forwarded bool      // upstream response headers were passed to the encoder chain
	aborted   bool
}

func (r *router) decodeHeaders(h *headerMap, eos bool) {
	s := r.s
	if !s.routeValid {
		s.resolveRoute()
	}
	rt := s.route
	if rt == nil {
		s.sendLocalReply(len(s.chain.filters), true, http.StatusNotFound, "", nil, "route_not_found")
		return
	}
	name := rt.cluster
	if rt.clusterHeader != "" {
		name, _ = h.get(rt.clusterHeader)
	}
	cl, ok := s.h.conf.clusters[name]
	if !ok {
		s.sendLocalReply(len(s.chain.filters), true, rt.notFoundCode, "", nil, "cluster_not_found")
		return
	}
	r.rt, r.cluster, r.headers, r.headersEOS, r.eos = rt, cl, h, eos, eos
	for _, k := range rt.headersToRemove {
		h.del(strings.ToLower(k))
	}
	for _, opt := range rt.headersToAdd {
		hv := opt.GetHeader()
		k, v := strings.ToLower(hv.GetKey()), hv.GetValue()
		if opt.GetAppend() != nil && !opt.GetAppend().GetValue() {
			h.set(k, v)
		} else {
			h.add(k, v)
		}
	}
	if rt.retry != nil {
		r.rs = newRetryState(rt.retry, s.h.upstreams[cl.name])
	}
	if eos {
		r.eosAt = time.Now()
		if rt.timeout > 0 {
			r.startTimeout()
		}
	}
	r.setExpectedTimeout()
	r.startAttempt()
}

// setExpectedTimeout is FilterUtility::setTimeoutHeaders: the per-try
// timeout if set, else the route timeout, capped by what remains of the
// route timeout since the request completed (1 ms once it is used up).
func (r *router) setExpectedTimeout() {
	global := r.rt.timeout
	expected := global
	if p := r.rt.retry; p != nil && p.perTryTimeout > 0 {
		expected = p.perTryTimeout
	}
	if expected <= 0 {
		return
	}
	if global > 0 && !r.eosAt.IsZero() {
		if elapsed := time.Since(r.eosAt); elapsed >= global {
			expected = time.Millisecond
		} else {
			expected = min(expected, global-elapsed)
		}
	}
	r.headers.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(expected.Milliseconds(), 10))
}

func (r *router) decodeData(b []byte, eos bool) {
	if !r.bodyTooBig {
		r.body = append(r.body, b...)
		if uint64(len(r.body)) > r.s.bufferLimit {
			r.s.h.logf("envoytest: request body exceeds the buffer limit; retries abandoned")
			r.body, r.bodyTooBig = nil, true
		}
	}
	r.eos = eos
	if eos {
		r.eosAt = time.Now()
		if r.rt.timeout > 0 {
			r.startTimeout()
		}
	}
	if r.att != nil {
		r.att.chain.decodeDataAt(0, b, eos)
		if eos {
			r.att.startPerTryTimers()
		}
	}
}

// startTimeout arms the route timeout, which runs from the end of the
// request until the upstream response headers.
func (r *router) startTimeout() {
	r.timeout = r.s.afterFunc(r.rt.timeout, func() {
		if r.forwarded || r.aborted {
			return
		}
		// Router::Filter::onResponseTimeout: an attempt awaiting headers
		// counts as a local-origin timeout for outlier detection.
		if r.att != nil {
			r.att.state.putResult(localOriginTimeout)
		}
		r.s.sendLocalReply(len(r.s.chain.filters), true, http.StatusGatewayTimeout, "upstream request timeout", nil, "upstream_response_timeout")
	})
}

// startAttempt creates the next upstream request (Router::Filter::doRetry
// for retries): the aggregate child chosen by pickPriority, a new upstream
// filter chain, the shared header map and a copy of the original body.
func (r *router) startAttempt() {
	s := r.s
	r.attempts++
	host := r.cluster
	if r.cluster.aggregate != nil {
		prio := r.pickPriority()
		r.pp.attempted = append(r.pp.attempted, prio)
		host = s.h.conf.clusters[r.cluster.aggregate[prio]]
	}
	s.h.count(func(st *Stats) { st.UpstreamAttempts++ })
	a := &attempt{r: r, number: r.attempts, host: host, state: s.h.upstreams[host.name], started: time.Now()}
	a.state.addRequests(1)
	a.codec = &upstreamCodec{a: a}
	a.chain = &filterChain{s: s, att: a, upstream: true, tail: a.codec, head: a}
	for i, fc := range r.cluster.upstreamFilters {
		a.chain.filters = append(a.chain.filters, newExtProcFilter(fc, a.chain, i, nil))
	}
	r.att = a
	if r.attempts > 1 {
		r.setExpectedTimeout()
	}
	if r.eos {
		a.startPerTryTimers()
	}
	if r.attempts == 1 {
		a.chain.decodeHeadersAt(0, r.headers, r.headersEOS)
		return
	}
	// A retry: the same header map (with the previous attempt's mutations)
	// and the original body.
	a.chain.decodeHeadersAt(0, r.headers, r.headersEOS)
	if !a.done && !r.headersEOS && (len(r.body) > 0 || r.eos) {
		a.chain.decodeDataAt(0, slices.Clone(r.body), r.eos)
	}
}

// resetKind is the Http::StreamResetReason class that matters for retries.
type resetKind int

const (
	resetConnectFailure resetKind = iota // LocalConnectionFailure, RemoteConnectionFailure, ConnectionTimeout
	resetRemote                          // RemoteReset, ConnectionTermination
	resetLocal                           // LocalReset: the router reset the stream after a per-try (idle) timeout
)

// wouldRetryFromReset is RetryStateImpl::wouldRetryFromReset: a connect
// failure is retried on connect-failure; any reset (a connect failure too)
// on reset, 5xx or gateway-error. refused-stream needs an HTTP/2
// REFUSED_STREAM, which the harness never sees.
func (r *router) wouldRetryFromReset(k resetKind) bool {
	p := r.rt.retry
	if p == nil {
		return false
	}
	if k == resetConnectFailure && p.retryOn["connect-failure"] {
		return true
	}
	return p.retryOn["reset"] || p.retryOn["5xx"] || p.retryOn["gateway-error"]
}

// wouldRetryFromHeaders is RetryStateImpl::wouldRetryFromHeaders for the
// retry_on values the harness accepts.
func (r *router) wouldRetryFromHeaders(code int) bool {
	p := r.rt.retry
	if p == nil {
		return false
	}
	switch {
	case p.retryOn["5xx"] && code >= 500 && code < 600:
		return true
	case p.retryOn["gateway-error"] && (code == 502 || code == 503 || code == 504):
		return true
	case p.retryOn["retriable-status-codes"] && slices.Contains(p.retriableCodes, code):
		return true
	}
	return false
}

// shouldRetry runs RetryStateImpl::shouldRetry for an attempt's outcome and
// reports whether a retry was scheduled. The harness retries only once the
// downstream request is complete and its body was kept (Envoy drops the
// retry state when the body exceeds the buffer limit).
func (r *router) shouldRetry(would bool) bool {
	rs := r.rs
	if rs == nil || r.bodyTooBig || r.aborted {
		return false
	}
	switch rs.decide(would && r.eos) {
	case retryYes:
		r.s.h.count(func(st *Stats) { st.UpstreamRetries++ })
		r.scheduleRetry()
		return true
	case retryOverflow:
		r.s.h.logf("envoytest: retry refused: the retries circuit breaker of cluster %s is open", r.cluster.name)
		r.s.h.count(func(st *Stats) { st.UpstreamRetryOverflow++ })
		// Router::Filter::maybeRetryReset and onUpstreamHeaders on NoOverflow.
		r.s.setFlag(flagUpstreamOverflow)
	case retryLimitExceeded:
		r.s.h.count(func(st *Stats) { st.UpstreamRetryLimitExceeded++ })
		// Likewise on NoRetryLimitExceeded.
		r.s.setFlag(flagUpstreamRetryLimitExceeded)
	}
	return false
}

// scheduleRetry ends the current attempt and starts the next one after the
// back-off (RetryStateImpl::enableBackoffTimer).
func (r *router) scheduleRetry() {
	r.att.abort()
	r.att = nil
	r.backOff = r.s.afterFunc(r.rs.backOff.next(), func() {
		if !r.aborted && !r.forwarded {
			r.startAttempt()
		}
	})
}

// onResponseHeaders receives an attempt's response after its upstream
// filters: either it is retried or it goes down the encoder chain.
func (r *router) onResponseHeaders(a *attempt, h *headerMap, eos bool) {
	if a != r.att || r.aborted {
		return
	}
	a.touchIdle()
	code, _ := strconv.Atoi(firstValue(h, ":status"))
	a.state.putHTTPCode(code)
	if r.shouldRetry(r.wouldRetryFromHeaders(code)) {
		return
	}
	r.timeout.stop()
	a.perTry.stop()
	r.rs.release()
	r.rs = nil
	r.forwarded = true
	h.set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(a.started).Milliseconds(), 10))
	s := r.s
	s.encodeStarted = true
	s.chain.encodeHeadersAt(len(s.chain.filters)-1, h, eos)
}

func (r *router) onResponseData(a *attempt, b []byte, eos bool) {
	if a != r.att || r.aborted {
		return
	}
	a.touchIdle()
	if eos {
		a.perTryIdle.stop()
	}
	r.s.chain.encodeDataAt(len(r.s.chain.filters)-1, b, eos)
}

// onUpstreamFailure handles a connection failure or a reset of the attempt.
func (r *router) onUpstreamFailure(a *attempt, err error, connectFailure bool) {
	if a != r.att || r.aborted {
		return
	}
	s := r.s
	s.h.logf("envoytest: upstream %s: %v", a.host.name, err)
	if connectFailure {
		s.h.count(func(st *Stats) { st.UpstreamConnectFailures++ })
	}
	// Router::Filter::onUpstreamReset reports every reset but an overflow
	// as a local-origin connect failure.
	a.state.putResult(localOriginConnectFailed)
	// The flag Router::Filter::onUpstreamReset passes to onUpstreamAbort
	// (streamResetReasonToResponseFlag, source/common/router/router.cc),
	// which sets it whether it then sends a local reply or, the response
	// having started, resets the downstream stream: a connect failure is
	// UF; a reset after connecting is ConnectionTermination (UC) over
	// HTTP/1, where the provider closed its connection, and RemoteReset (UR)
	// over HTTP/2, an RST_STREAM.
	flag, lateReason := flagUpstreamConnectionTermination, "connection_termination"
	switch {
	case connectFailure:
		flag = flagUpstreamConnectionFailure
	case a.host.http2:
		flag, lateReason = flagUpstreamRemoteReset, "remote_reset"
	}
	if r.forwarded {
		// The downstream response has started: reset it, with the details
		// onUpstreamReset gives (LateUpstreamReset).
		a.abort()
		s.setFlag(flag)
		s.details = "upstream_reset_after_response_started{" + lateReason + "}"
		s.resetDownstream()
		return
	}
	kind, reason, detail := resetRemote, "connection termination", "connection_termination"
	if connectFailure {
		kind, reason, detail = resetConnectFailure, "connection failure", "connection_failure"
	}
	if r.shouldRetry(r.wouldRetryFromReset(kind)) {
		return
	}
	s.setFlag(flag)
	retried := ""
	if r.attempts > 1 {
		retried = "retried and the latest "
	}
	r.timeout.stop()
	s.sendLocalReply(len(s.chain.filters), true, http.StatusServiceUnavailable,
		"upstream connect error or disconnect/reset before headers. "+retried+"reset reason: "+reason, nil,
		"upstream_reset_before_response_started{"+detail+"}")
}

// onPerTryTimeout is Router::Filter::onPerTryTimeoutCommon. per_try_timeout
// is ignored once the response started downstream (UpstreamRequest::
// onPerTryTimeout); per_try_idle_timeout is not. The attempt is reset and
// counted as a local-origin timeout; before the response started it is
// retried like a local reset, otherwise (or when no retry is left) the
// client gets 504 "upstream request timeout", or a reset once the response
// headers were sent.
func (r *router) onPerTryTimeout(a *attempt, idle bool) {
	if a != r.att || r.aborted || (!idle && r.forwarded) {
		return
	}
	s := r.s
	details := "upstream_per_try_timeout"
	if idle {
		details = "upstream_per_try_idle_timeout"
		s.h.count(func(st *Stats) { st.UpstreamPerTryIdleTimeouts++ })
	} else {
		s.h.count(func(st *Stats) { st.UpstreamPerTryTimeouts++ })
	}
	s.h.logf("envoytest: upstream %s: %s", a.host.name, details)
	a.abort()
	a.state.putResult(localOriginTimeout)
	if !r.forwarded && r.shouldRetry(r.wouldRetryFromReset(resetLocal)) {
		return
	}
	r.timeout.stop()
	// onPerTryTimeoutCommon -> onUpstreamTimeoutAbort(UpstreamRequestTimeout),
	// whose onUpstreamAbort sets UT before the reply or the reset.
	s.setFlag(flagUpstreamRequestTimeout)
	s.sendLocalReply(len(s.chain.filters), true, http.StatusGatewayTimeout, "upstream request timeout", nil, details)
}

// abort ends the router's work: the current attempt is cancelled.
func (r *router) abort() {
	if r.aborted {
		return
	}
	r.aborted = true
	r.timeout.stop()
	r.backOff.stop()
	r.rs.release()
	if r.att != nil {
		r.att.abort()
	}
}

// attempt is one upstream try: its own upstream filter chain (new ext_proc
// streams) and its own connection to the chosen host.
type attempt struct {
	r          *router
	number     int
	host       *cluster
	state      *upstreamState // the host cluster's shared state
	chain      *filterChain
	codec      *upstreamCodec
	started    time.Time
	done       bool
	perTry     *loopTimer
	perTryIdle *loopTimer
	timersOn   bool
}

// startPerTryTimers arms per_try_timeout and per_try_idle_timeout
// (UpstreamRequest::setupPerTryTimeout). Envoy arms them when the
// connection pool is ready, or when the downstream request completes if
// that is later; the harness arms them when the attempt starts with the
// request complete, or when it completes, so connect time counts too.
func (a *attempt) startPerTryTimers() {
	p := a.r.rt.retry
	if a.timersOn || a.done || p == nil {
		return
	}
	a.timersOn = true
	if p.perTryTimeout > 0 {
		a.perTry = a.r.s.afterFunc(p.perTryTimeout, func() { a.r.onPerTryTimeout(a, false) })
	}
	if p.perTryIdleTimeout > 0 {
		a.perTryIdle = a.r.s.afterFunc(p.perTryIdleTimeout, func() { a.r.onPerTryTimeout(a, true) })
	}
}

// touchIdle re-arms per_try_idle_timeout when response headers or data
// reach the router (UpstreamRequest::resetPerTryIdleTimer).
func (a *attempt) touchIdle() {
	if a.perTryIdle == nil || a.perTryIdle.stopped {
		return
	}
	a.perTryIdle.stop()
	a.perTryIdle = a.r.s.afterFunc(a.r.rt.retry.perTryIdleTimeout, func() { a.r.onPerTryTimeout(a, true) })
}

func (a *attempt) encodeHeaders(h *headerMap, eos bool) { a.r.onResponseHeaders(a, h, eos) }
func (a *attempt) encodeData(b []byte, eos bool)        { a.r.onResponseData(a, b, eos) }

// localReply is a local reply from an upstream filter: final, never retried.
func (a *attempt) localReply(code int, body string, hdrs *headerMap, details string) {
	a.abort()
	s := a.r.s
	s.sendLocalReply(len(s.chain.filters), true, code, body, hdrs, details)
}

func (a *attempt) abort() {
	if a.done {
		return
	}
	a.done = true
	a.perTry.stop()
	a.perTryIdle.stop()
	a.state.addRequests(-1)
	a.chain.stop()
	a.codec.abort()
}

// upstreamCodec is the upstream_codec filter: it sends the request over a
// real socket with net/http and streams the response back chunk by chunk.
type upstreamCodec struct {
	a      *attempt
	cancel context.CancelFunc
	pr     *io.PipeReader

	mu     sync.Mutex
	queue  []chunk
	wake   chan struct{}
	closed bool
}

var errAttemptAborted = errors.New("envoytest: upstream attempt aborted")

func (c *upstreamCodec) decodeHeaders(h *headerMap, eos bool) {
	a := c.a
	s := a.r.s
	host := a.host
	tr, err := s.h.transport(host)
	if err != nil {
		s.later(func() { a.r.onUpstreamFailure(a, err, true) })
		return
	}
	u, err := url.ParseRequestURI(firstValue(h, ":path"))
	if err != nil {
		s.later(func() { a.r.onUpstreamFailure(a, fmt.Errorf("bad :path: %w", err), false) })
		return
	}
	u.Scheme = "http"
	if host.tls != nil {
		u.Scheme = "https"
	}
	u.Host = host.addr
	if strings.HasPrefix(host.addr, "unix:") {
		u.Host = "localhost"
	}
	ctx, cancel := context.WithCancel(s.h.ctx)
	c.cancel = cancel
	// UpstreamRequest::onPoolReady reports a connect success to the host's
	// outlier detector.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		a.state.putResult(localOriginConnectSuccess)
	}})
	var body io.Reader = http.NoBody
	if !eos {
		pr, pw := io.Pipe()
		c.pr = pr
		c.wake = make(chan struct{}, 1)
		body = pr
		s.wg.Add(1)
		go c.writeBody(pw)
	}
	req, err := http.NewRequestWithContext(ctx, firstValue(h, ":method"), u.String(), body)
	if err != nil {
		cancel()
		s.later(func() { a.r.onUpstreamFailure(a, err, false) })
		return
	}
	req.Host = firstValue(h, ":authority")
	req.Header = http.Header{}
	h.toHTTP(req.Header)
	if req.Header.Get("User-Agent") == "" {
		req.Header["User-Agent"] = []string{""} // keep net/http from adding its own
	}
	req.ContentLength = -1
	if eos {
		req.ContentLength = 0
	} else if v := req.Header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			req.ContentLength = n
		}
	}
	req.Header.Del("Content-Length")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		resp, err := tr.RoundTrip(req)
		if !s.post(func() { c.onResponse(resp, err) }) && resp != nil {
			resp.Body.Close()
		}
	}()
}

func (c *upstreamCodec) decodeData(b []byte, eos bool) {
	if c.wake == nil {
		return
	}
	c.mu.Lock()
	c.queue = append(c.queue, chunk{b, eos})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeBody copies queued request chunks into the request body pipe.
func (c *upstreamCodec) writeBody(pw *io.PipeWriter) {
	defer c.a.r.s.wg.Done()
	for {
		c.mu.Lock()
		q, closed := c.queue, c.closed
		c.queue = nil
		c.mu.Unlock()
		if closed {
			pw.CloseWithError(errAttemptAborted)
			return
		}
		for _, ch := range q {
			if len(ch.data) > 0 {
				if _, err := pw.Write(ch.data); err != nil {
					return
				}
			}
			if ch.eos {
				pw.Close()
				return
			}
		}
		<-c.wake
	}
}

func (c *upstreamCodec) onResponse(resp *http.Response, err error) {
	a := c.a
	if a.done {
		if resp != nil {
			resp.Body.Close()
		}
		return
	}
	if err != nil {
		var op *net.OpError
		connect := errors.As(err, &op) && op.Op == "dial"
		a.r.onUpstreamFailure(a, err, connect)
		return
	}
	h := &headerMap{}
	h.add(":status", strconv.Itoa(resp.StatusCode))
	for _, e := range fromHTTP(resp.Header).entries {
		h.add(e.key, e.value)
	}
	eos := resp.Body == http.NoBody
	s := a.r.s
	if !eos {
		s.wg.Add(1)
		go c.readBody(resp)
	} else {
		resp.Body.Close()
	}
	a.chain.encodeHeadersAt(len(a.chain.filters)-1, h, eos)
}

// readBody posts one chunk per read, as Envoy's codec calls its filters
// once per socket read, and an empty end-of-stream chunk at the end.
func (c *upstreamCodec) readBody(resp *http.Response) {
	a := c.a
	s := a.r.s
	defer s.wg.Done()
	defer resp.Body.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			if !s.post(func() { s.touch(); a.chain.encodeDataAt(len(a.chain.filters)-1, b, false) }) {
				return
			}
		}
		if err == io.EOF {
			s.post(func() { a.chain.encodeDataAt(len(a.chain.filters)-1, nil, true) })
			return
		}
		if err != nil {
			s.post(func() { a.r.onUpstreamFailure(a, err, false) })
			return
		}
	}
}

func (c *upstreamCodec) abort() {
	if c.cancel != nil {
		c.cancel()
	}
	if c.pr != nil {
		c.pr.CloseWithError(errAttemptAborted)
	}
	if c.wake != nil {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
