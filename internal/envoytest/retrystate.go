package envoytest

import (
	"math/rand/v2"
	"time"
)

// retryStatus is Router::RetryStatus.
type retryStatus int

const (
	retryNo retryStatus = iota
	retryYes
	retryOverflow
	retryLimitExceeded
)

// retryState is RetryStateImpl (source/common/router/retry_state_impl.cc)
// for one request: the retries left, the back-off, and whether a scheduled
// retry holds the routed cluster's retries resource.
type retryState struct {
	remaining int
	backOff   backOff
	res       *upstreamState // the routed cluster (the aggregate for an aggregate route)
	holding   bool
}

func newRetryState(p *retryPolicy, res *upstreamState) *retryState {
	return &retryState{remaining: p.numRetries, res: res,
		backOff: backOff{base: p.backOffBase, maxInterval: p.backOffMax, next_: p.backOffBase}}
}

// decide is RetryStateImpl::shouldRetry: the resource a previous retry
// held is released (resetRetry); then no retry, the retry limit
// (num_retries), the retries resource (max_retries or retry_budget), in
// that order.
func (rs *retryState) decide(would bool) retryStatus {
	rs.release()
	if !would {
		return retryNo
	}
	if rs.remaining == 0 {
		return retryLimitExceeded
	}
	rs.remaining--
	if !rs.res.tryRetry() {
		return retryOverflow
	}
	rs.holding = true
	return retryYes
}

// release gives the retries resource back; RetryStateImpl does so at the
// next shouldRetry and when the router drops its retry state (the response
// goes downstream, or the request ends).
func (rs *retryState) release() {
	if rs == nil || !rs.holding {
		return
	}
	rs.holding = false
	rs.res.releaseRetry()
}

// backOff is JitteredExponentialBackOffStrategy
// (source/common/common/backoff_strategy.cc): a uniform wait in
// [0, interval), the interval doubling from base_interval while it is
// below half of max_interval and then staying at max_interval.
type backOff struct {
	base, maxInterval, next_ time.Duration
}

func (b *backOff) next() time.Duration {
	cur := b.next_
	if b.next_ < b.maxInterval/2 {
		b.next_ *= 2
	} else {
		b.next_ = b.maxInterval
	}
	ms := cur.Milliseconds()
	if ms <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(ms)) * time.Millisecond
}

// previousPriorities is PreviousPrioritiesRetryPriority
// (source/extensions/retry/priority/previous_priorities/previous_priorities.cc)
// over the linearized priorities of an aggregate cluster, one per child.
type previousPriorities struct {
	attempted []int  // attempted_hosts_, as their linearized priorities
	excluded  []bool // excluded_priorities_
	last      int    // the priority per_priority_load_ sends everything to; -1 when never computed
	computed  bool
}

// pickPriority chooses the aggregate child of the next attempt.
//
// The aggregate load balancer (AggregateClusterLoadBalancer::
// LoadBalancerImpl::chooseHost, source/extensions/clusters/aggregate/
// cluster.cc) linearizes the children's priorities and computes the load
// as LoadBalancerBase::recalculatePerPriorityState does: each priority's
// health is min(100, overprovisioning factor 1.4 × healthy/total hosts).
// With one host per child that is 100, or 0 once outlier detection ejected
// it, so all load goes to the first child whose host is not ejected. When
// every host is ejected, each priority is below the 50% panic threshold
// and the load is spread by host count (recalculateLoadInTotalPanic): a
// random child, 100/n percent each with the remainder on the first. The
// chosen child's own load balancer then uses its only host even when
// ejected (panic mode).
//
// On a retry the router asks the retry priority first
// (Router::Filter::determinePriorityLoad). previous_priorities with
// update_frequency F keeps the original load until F hosts were
// attempted; every F attempts it excludes the priorities attempted so far
// and sends the load to the first healthy priority left. When none is
// left it clears the attempted hosts but (Envoy's loop assigns a copy)
// leaves the exclusions set, so that retry and later ones use the original
// load. Between updates the last computed load is reused.
func (r *router) pickPriority() int {
	children := r.cluster.aggregate
	healthy := make([]bool, len(children))
	for i, name := range children {
		healthy[i] = r.s.h.upstreams[name].healthy()
	}
	original := func() int {
		for i, ok := range healthy {
			if ok {
				return i
			}
		}
		n := len(children)
		pick, share := rand.IntN(100), 100/n
		first := share + 100%n
		if pick < first {
			return 0
		}
		return 1 + (pick-first)/share
	}
	p := r.rt.retry
	if r.attempts == 1 || p == nil || p.updateFrequency <= 0 {
		return original()
	}
	pp := &r.pp
	k, f := len(pp.attempted), p.updateFrequency
	if k < f {
		return original()
	}
	if k%f != 0 {
		if !pp.computed {
			return original()
		}
		return pp.last
	}
	if len(pp.excluded) < len(children) {
		pp.excluded = append(pp.excluded, make([]bool, len(children)-len(pp.excluded))...)
	}
	for _, prio := range pp.attempted {
		pp.excluded[prio] = true
	}
	for i := range children {
		if !pp.excluded[i] && healthy[i] {
			pp.last, pp.computed = i, true
			return i
		}
	}
	pp.attempted = nil
	return original()
}
