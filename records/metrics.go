package records

import "github.com/prometheus/client_golang/prometheus"

// writerMetrics are a Writer's collectors. The only label is the sink name, of
// which there are a handful.
type writerMetrics struct {
	queueDepth prometheus.GaugeFunc
	written    *prometheus.CounterVec
	errors     *prometheus.CounterVec
	spooled    *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	dead       *prometheus.CounterVec
	spoolBytes *prometheus.GaugeVec
}

func newWriterMetrics(queueDepth func() float64) *writerMetrics {
	sink := []string{"sink"}
	return &writerMetrics{
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_record_queue_depth",
			Help: "Cost records waiting in memory for the sinks.",
		}, queueDepth),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_records_written_total",
			Help: "Cost records a sink stored, directly or replayed from its spool.",
		}, sink),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_record_sink_errors_total",
			Help: "Failed writes to a sink (one per failed batch, direct or replayed).",
		}, sink),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_records_spooled_total",
			Help: "Cost records appended to a sink's spool on disk: the sink failed or was recovering, the queue was full, or shutdown ran out of time.",
		}, sink),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_records_dropped_total",
			Help: "Cost records lost for a sink: the spool could not be written or read back, or the record was emitted after shutdown.",
		}, sink),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_records_dead_lettered_total",
			Help: "Cost records a sink refused for good (a record without an id, say), moved to its dead-letter file NAME.dead in the spool directory instead of holding up the records behind them.",
		}, sink),
		spoolBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_record_spool_bytes",
			Help: "Size of a sink's spool on disk.",
		}, sink),
	}
}

// forSink returns the series of one sink, created at zero so that they are
// exported before anything happens.
func (m *writerMetrics) forSink(name string) sinkMetrics {
	return sinkMetrics{
		written:    m.written.WithLabelValues(name),
		errors:     m.errors.WithLabelValues(name),
		spooled:    m.spooled.WithLabelValues(name),
		dropped:    m.dropped.WithLabelValues(name),
		dead:       m.dead.WithLabelValues(name),
		spoolBytes: m.spoolBytes.WithLabelValues(name),
	}
}

func (m *writerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queueDepth, m.written, m.errors, m.spooled, m.dropped, m.dead, m.spoolBytes}
}
