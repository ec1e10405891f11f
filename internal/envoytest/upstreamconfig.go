package envoytest

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's defaults for the settings below (circuit_breaker.proto,
// outlier_detection.proto, route_components.proto RetryBackOff and
// source/common/upstream/outlier_detection_impl.h).
const (
	defaultMaxRetries            = 3
	defaultBudgetPercent         = 20.0
	defaultMinRetryConcurrency   = 3
	defaultBackOffBase           = 25 * time.Millisecond
	defaultODInterval            = 10 * time.Second
	defaultODBaseEjectionTime    = 30 * time.Second
	defaultODMaxEjectionTime     = 300 * time.Second
	defaultODMaxEjectionPercent  = 10
	defaultODConsecutive         = 5
	defaultODEnforcingConsec5xx  = 100
	defaultODEnforcingGateway    = 0
	defaultODEnforcingLocal      = 100
	defaultODSuccessRateMinHosts = 5
	defaultODFailurePctMinHosts  = 5
)

// retryLimit is the routed cluster's retries resource: the DEFAULT priority
// threshold's max_retries, or its retry_budget, which overrides max_retries
// (ResourceManagerImpl::RetryBudgetImpl, source/common/upstream/resource_manager_impl.h).
type retryLimit struct {
	maxRetries          int
	budget              bool
	budgetPercent       float64
	minRetryConcurrency int
}

// buildCircuitBreakers reads the DEFAULT priority thresholds (the first one
// listed wins, as in Envoy). The harness enforces only the retries
// resource; max_connections, max_pending_requests and max_requests are
// accepted and not enforced (see the package doc).
func buildCircuitBreakers(cb *clusterv3.CircuitBreakers) (retryLimit, error) {
	rl := retryLimit{maxRetries: defaultMaxRetries}
	if cb == nil {
		return rl, nil
	}
	if err := onlyFields("circuit_breakers", cb, "thresholds"); err != nil {
		return rl, err
	}
	seen := false
	for _, t := range cb.GetThresholds() {
		if err := onlyFields("circuit_breakers threshold", t, "priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget", "track_remaining"); err != nil {
			return rl, err
		}
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT || seen {
			continue
		}
		seen = true
		if v := t.GetMaxRetries(); v != nil {
			rl.maxRetries = int(v.GetValue())
		}
		if b := t.GetRetryBudget(); b != nil {
			if err := onlyFields("retry_budget", b, "budget_percent", "min_retry_concurrency"); err != nil {
				return rl, err
			}
			rl.budget, rl.budgetPercent, rl.minRetryConcurrency = true, defaultBudgetPercent, defaultMinRetryConcurrency
			if p := b.GetBudgetPercent(); p != nil {
				rl.budgetPercent = p.GetValue()
			}
			if v := b.GetMinRetryConcurrency(); v != nil {
				rl.minRetryConcurrency = int(v.GetValue())
			}
		}
	}
	return rl, nil
}

// max is RetryBudgetImpl::max: with a budget, budget_percent of the
// cluster's active and pending requests, never below
// min_retry_concurrency; otherwise max_retries.
func (rl retryLimit) max(requests int) int {
	if !rl.budget {
		return rl.maxRetries
	}
	return max(int(rl.budgetPercent/100*float64(requests)), rl.minRetryConcurrency)
}

// outlierConfig is the part of a cluster's outlier_detection the harness
// implements (DetectorConfig, source/common/upstream/outlier_detection_impl.cc).
type outlierConfig struct {
	interval                 time.Duration
	baseEjectionTime         time.Duration
	maxEjectionTime          time.Duration
	maxEjectionTimeJitter    time.Duration
	maxEjectionPercent       int
	alwaysEjectOneHost       bool
	consecutive5xx           int
	consecutiveGateway       int
	consecutiveLocal         int
	enforcing5xx             int
	enforcingGateway         int
	enforcingLocal           int
	splitExternalLocalOrigin bool
}

// buildOutlierDetection reads outlier_detection for a cluster of one
// endpoint. Success-rate and failure-percentage detection are accepted only
// while their minimum host counts exceed the one host the harness uses, so
// they provably never fire; extension monitors are refused.
func buildOutlierDetection(od *clusterv3.OutlierDetection) (*outlierConfig, error) {
	if od == nil {
		return nil, nil
	}
	if err := onlyFields("outlier_detection", od,
		"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
		"enforcing_success_rate", "success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor",
		"consecutive_gateway_failure", "enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
		"consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate",
		"failure_percentage_threshold", "enforcing_failure_percentage", "enforcing_failure_percentage_local_origin",
		"failure_percentage_minimum_hosts", "failure_percentage_request_volume", "max_ejection_time", "max_ejection_time_jitter",
		"successful_active_health_check_uneject_host", "always_eject_one_host"); err != nil {
		return nil, err
	}
	u32 := func(v *wrapperspb.UInt32Value, def int) int {
		if v == nil {
			return def
		}
		return int(v.GetValue())
	}
	if n := u32(od.GetSuccessRateMinimumHosts(), defaultODSuccessRateMinHosts); n <= 1 {
		return nil, fmt.Errorf("outlier_detection: success_rate_minimum_hosts %d would enable success-rate ejection, which envoytest does not implement", n)
	}
	if n := u32(od.GetFailurePercentageMinimumHosts(), defaultODFailurePctMinHosts); n <= 1 {
		return nil, fmt.Errorf("outlier_detection: failure_percentage_minimum_hosts %d would enable failure-percentage ejection, which envoytest does not implement", n)
	}
	c := &outlierConfig{
		interval:                 durationOr(od.GetInterval(), defaultODInterval),
		baseEjectionTime:         durationOr(od.GetBaseEjectionTime(), defaultODBaseEjectionTime),
		maxEjectionTimeJitter:    durationOr(od.GetMaxEjectionTimeJitter(), 0),
		maxEjectionPercent:       min(u32(od.GetMaxEjectionPercent(), defaultODMaxEjectionPercent), 100),
		alwaysEjectOneHost:       od.GetAlwaysEjectOneHost().GetValue(),
		consecutive5xx:           u32(od.GetConsecutive_5Xx(), defaultODConsecutive),
		consecutiveGateway:       u32(od.GetConsecutiveGatewayFailure(), defaultODConsecutive),
		consecutiveLocal:         u32(od.GetConsecutiveLocalOriginFailure(), defaultODConsecutive),
		enforcing5xx:             u32(od.GetEnforcingConsecutive_5Xx(), defaultODEnforcingConsec5xx),
		enforcingGateway:         u32(od.GetEnforcingConsecutiveGatewayFailure(), defaultODEnforcingGateway),
		enforcingLocal:           u32(od.GetEnforcingConsecutiveLocalOriginFailure(), defaultODEnforcingLocal),
		splitExternalLocalOrigin: od.GetSplitExternalLocalOriginErrors(),
	}
	// If max_ejection_time is unset, the default or base_ejection_time,
	// whichever is larger; a smaller explicit value is a config error.
	c.maxEjectionTime = durationOr(od.GetMaxEjectionTime(), max(defaultODMaxEjectionTime, c.baseEjectionTime))
	if c.maxEjectionTime < c.baseEjectionTime {
		return nil, fmt.Errorf("outlier_detection: max_ejection_time cannot be smaller than base_ejection_time")
	}
	if c.interval <= 0 {
		return nil, fmt.Errorf("outlier_detection: interval must be positive")
	}
	return c, nil
}

// checkLoadAssignment refuses load-assignment settings that would change
// priority loads (a child cluster's overprovisioning factor, endpoint
// priorities, weights the harness does not balance by).
func checkLoadAssignment(la *endpointv3.ClusterLoadAssignment) error {
	if la == nil {
		return nil
	}
	if err := onlyFields("load_assignment", la, "cluster_name", "endpoints"); err != nil {
		return err
	}
	for _, lle := range la.GetEndpoints() {
		if err := onlyFields("load_assignment endpoints", lle, "lb_endpoints", "locality"); err != nil {
			return err
		}
	}
	return nil
}

// retryBackOff reads retry_back_off: base_interval (Envoy's default 25 ms,
// runtime upstream.base_retry_backoff_ms) and max_interval (default ten
// times the base), as RetryStateImpl's constructor does.
func retryBackOff(bo *routev3.RetryPolicy_RetryBackOff) (base, maxInterval time.Duration, err error) {
	base = defaultBackOffBase
	if bo == nil {
		return base, 10 * base, nil
	}
	if err := onlyFields("retry_back_off", bo, "base_interval", "max_interval"); err != nil {
		return 0, 0, err
	}
	if d := bo.GetBaseInterval(); d != nil {
		base = d.AsDuration()
	}
	if base <= 0 {
		return 0, 0, fmt.Errorf("retry_back_off: base_interval must be positive")
	}
	if base < time.Millisecond {
		base = time.Millisecond // "values less than 1 ms are rounded up to 1 ms"
	}
	maxInterval = 10 * base
	if d := bo.GetMaxInterval(); d != nil {
		maxInterval = d.AsDuration()
		if maxInterval < base {
			return 0, 0, fmt.Errorf("retry_back_off: max_interval must be greater than or equal to base_interval")
		}
	}
	return base, maxInterval, nil
}
