package records

// NewTrace sorts recs, the records of one trace, in start order and adds them
// up, for a [Store] outside this package. It returns an error wrapping
// ErrNotFound when recs is empty.
func NewTrace(traceID string, recs []Record) (Trace, error) { return newTrace(traceID, recs) }
