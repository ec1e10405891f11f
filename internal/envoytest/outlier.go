package envoytest

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// outlierResult is Upstream::Outlier::Result: what the router reports to a
// host's outlier monitor besides response codes.
type outlierResult int

const (
	localOriginConnectSuccess outlierResult = iota
	localOriginConnectFailed
	localOriginTimeout
)

// ejectionType names the consecutive detectors (OutlierEjectionType).
type ejectionType int

const (
	consecutive5xx ejectionType = iota
	consecutiveGatewayFailure
	consecutiveLocalOriginFailure
)

// upstreamState is what the harness shares between requests for one
// cluster: the retries resource of its circuit breakers, the upstream
// requests in flight on it, and the outlier detector of its one host
// (DetectorImpl and DetectorHostMonitorImpl,
// source/common/upstream/outlier_detection_impl.cc).
type upstreamState struct {
	cl    *cluster
	count func(func(*Stats))
	logf  func(string, ...any)

	mu       sync.Mutex
	retries  int // retries holding the retries resource
	requests int // upstream requests in flight to this cluster

	// Outlier detection, when cl.outlier is set.
	consec5xx, consecGateway, consecLocal int
	ejected                               bool
	lastEjection, lastUnejection          time.Time
	ejectTimeBackoff                      int
	jitter                                time.Duration
	timer                                 *time.Timer
	stopped                               bool
}

func newUpstreamState(cl *cluster, count func(func(*Stats)), logf func(string, ...any)) *upstreamState {
	u := &upstreamState{cl: cl, count: count, logf: logf}
	if cl.outlier != nil && cl.aggregate == nil {
		u.timer = time.AfterFunc(cl.outlier.interval, u.onIntervalTimer)
	}
	return u
}

// stop disarms the interval timer.
func (u *upstreamState) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stopped = true
	if u.timer != nil {
		u.timer.Stop()
	}
}

// tryRetry is RetryStateImpl::shouldRetry's retries().canCreate() and
// inc(): it takes the retries resource if the limit allows.
func (u *upstreamState) tryRetry() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.retries >= u.cl.retryLimit.max(u.requests) {
		return false
	}
	u.retries++
	return true
}

// releaseRetry is RetryStateImpl::resetRetry's retries().dec().
func (u *upstreamState) releaseRetry() {
	u.mu.Lock()
	u.retries--
	u.mu.Unlock()
}

func (u *upstreamState) addRequests(n int) {
	u.mu.Lock()
	u.requests += n
	u.mu.Unlock()
}

// healthy reports whether the host is not ejected.
func (u *upstreamState) healthy() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.ejected
}

// putHTTPCode is DetectorHostMonitorImpl::putHttpResponseCode.
func (u *upstreamState) putHTTPCode(code int) {
	if u.cl.outlier == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.putHTTPCodeLocked(code)
}

func (u *upstreamState) putHTTPCodeLocked(code int) {
	od := u.cl.outlier
	if code >= 500 && code < 600 {
		if code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
			u.consecGateway++
			if u.consecGateway == od.consecutiveGateway {
				u.onConsecutiveError(consecutiveGatewayFailure)
			}
		} else {
			u.consecGateway = 0
		}
		u.consec5xx++
		if u.consec5xx == od.consecutive5xx {
			u.onConsecutiveError(consecutive5xx)
		}
		return
	}
	u.consec5xx, u.consecGateway = 0, 0
}

// putResult is DetectorHostMonitorImpl::putResult: without
// split_external_local_origin_errors a failure counts as its HTTP code (503
// for a connect failure or reset, the timeout code 504 for a timeout) and
// a connect success counts for nothing; with it, local-origin events have
// their own consecutive counter, which a connect success resets.
func (u *upstreamState) putResult(r outlierResult) {
	od := u.cl.outlier
	if od == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !od.splitExternalLocalOrigin {
		switch r {
		case localOriginConnectFailed:
			u.putHTTPCodeLocked(http.StatusServiceUnavailable)
		case localOriginTimeout:
			u.putHTTPCodeLocked(http.StatusGatewayTimeout)
		}
		return
	}
	if r == localOriginConnectSuccess {
		u.consecLocal = 0
		return
	}
	u.consecLocal++
	if u.consecLocal == od.consecutiveLocal {
		u.onConsecutiveError(consecutiveLocalOriginFailure)
	}
}

// onConsecutiveError is DetectorImpl::onConsecutiveErrorWorker, run at
// once rather than posted to the main thread: an ejected host is left
// alone (its counters keep counting until unejected); otherwise ejectHost,
// then the detector's counter is reset.
func (u *upstreamState) onConsecutiveError(t ejectionType) {
	if u.ejected {
		return
	}
	u.ejectHost(t)
	switch t {
	case consecutive5xx:
		u.consec5xx = 0
	case consecutiveGatewayFailure:
		u.consecGateway = 0
	case consecutiveLocalOriginFailure:
		u.consecLocal = 0
	}
}

// ejectHost is DetectorImpl::ejectHost for a cluster of one host: the
// ejected share would be 100%, so it ejects only when max_ejection_percent
// is 100 or always_eject_one_host is set; then the enforcing_* percentage
// decides; the ejection lasts base_ejection_time times the ejection
// backoff, capped by max_ejection_time, plus jitter.
func (u *upstreamState) ejectHost(t ejectionType) {
	od := u.cl.outlier
	if od.maxEjectionPercent < 100 && !od.alwaysEjectOneHost {
		u.count(func(st *Stats) { st.OutlierEjectionsOverflow++ })
		return
	}
	enforcing := map[ejectionType]int{consecutive5xx: od.enforcing5xx, consecutiveGatewayFailure: od.enforcingGateway,
		consecutiveLocalOriginFailure: od.enforcingLocal}[t]
	if enforcing < 100 && rand.IntN(100) >= enforcing {
		return
	}
	u.ejected = true
	u.lastEjection = time.Now()
	u.jitter = time.Duration(rand.Int64N(od.maxEjectionTimeJitter.Milliseconds()+1)) * time.Millisecond
	if time.Duration(u.ejectTimeBackoff)*od.baseEjectionTime < od.maxEjectionTime+od.baseEjectionTime {
		u.ejectTimeBackoff++
	}
	u.logf("envoytest: outlier detection ejected the host of cluster %s", u.cl.name)
	u.count(func(st *Stats) { st.OutlierEjections++ })
}

// onIntervalTimer is DetectorImpl::onIntervalTimer: unejection happens
// only on these ticks, once min(base_ejection_time × backoff,
// max_ejection_time) + jitter has passed; a host that stayed unejected for
// an interval gets its backoff decremented.
func (u *upstreamState) onIntervalTimer() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return
	}
	od := u.cl.outlier
	now := time.Now()
	if u.ejected && min(time.Duration(u.ejectTimeBackoff)*od.baseEjectionTime, od.maxEjectionTime)+u.jitter <= now.Sub(u.lastEjection) {
		u.ejected = false
		u.consec5xx, u.consecGateway, u.consecLocal = 0, 0, 0
		u.lastUnejection = now
		u.logf("envoytest: outlier detection unejected the host of cluster %s", u.cl.name)
	}
	if !u.ejected && !u.lastUnejection.IsZero() && now.Sub(u.lastUnejection) >= od.interval && u.ejectTimeBackoff > 0 {
		u.ejectTimeBackoff--
	}
	u.timer.Reset(od.interval)
}
