package extproc

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors of the ext_proc service. Labels have low
// cardinality: no key ids or request ids (those belong in cost records).
type Metrics struct {
	streams    *prometheus.CounterVec
	requests   *prometheus.CounterVec
	rejections *prometheus.CounterVec
	phase      *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_extproc_streams_total",
			Help: "ext_proc streams opened by Envoy, by role.",
		}, []string{"role"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_total",
			Help: "Client requests by route, endpoint and final HTTP status (seen by the policy role).",
		}, []string{"route", "endpoint", "status"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_rejections_total",
			Help: "Requests Tollgate answered itself with an error, by role and error type.",
		}, []string{"role", "type"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_phase_duration_seconds",
			Help:    "Time Tollgate spends on one ext_proc message, by role and phase.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2},
		}, []string{"role", "phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.requests, m.rejections, m.phase)
	}
	return m
}
