package records

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"
)

// Sink stores cost records somewhere durable. A Writer calls Write with batches of
// records from its own goroutines, so implementations must be safe for concurrent
// use. Write must not keep recs once it returns: the Writer reuses the slice.
//
// Write either stores every record of the batch or returns an error; after an
// error the Writer spools the whole batch and writes it again later. A sink that
// may have stored part of a failed batch therefore sees those records twice,
// unless it skips record ids it already holds (the Redis sink does; the file and
// log sinks are at-least-once, and readers dedupe by Record.ID).
//
// The one exception is a [*RejectedError] (possibly wrapped): the sink stored
// every record of the batch but those it names, which it can never store,
// whatever the retry. The Writer moves those to the sink's dead-letter file
// rather than spooling them, so that they never hold up the records behind
// them.
type Sink interface {
	// Name identifies the sink in metrics and in the spool file name. It is short,
	// constant, and made of lower-case letters, digits, '-' and '_'.
	Name() string
	Write(ctx context.Context, recs []Record) error
	Close() error
}

// RejectedError is the error of a Sink's Write that stored every record of the
// batch except the ones it names: records that the sink will never accept (the
// Redis sink, for one, refuses a record without an id). Any other error means
// the sink may store the whole batch on a later try.
type RejectedError struct {
	// Records are the refused records, by their index in the batch given to
	// Write, in ascending order, each with the reason.
	Records []Rejection
}

// Rejection is one record a sink refused for good.
type Rejection struct {
	Index  int   // in the batch given to Write
	Reason error // why the sink cannot store it
}

// Error implements error. It names the first refused record's reason.
func (e *RejectedError) Error() string {
	switch len(e.Records) {
	case 0:
		return "records: sink refused no record"
	case 1:
		return fmt.Sprintf("records: sink refused record %d of the batch: %v", e.Records[0].Index, e.Records[0].Reason)
	}
	return fmt.Sprintf("records: sink refused %d records of the batch, the first (%d) because: %v",
		len(e.Records), e.Records[0].Index, e.Records[0].Reason)
}

// appendJSONLine appends r as one line of JSON.
func appendJSONLine(dst []byte, r *Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return dst, fmt.Errorf("encode record %q: %w", r.ID, err)
	}
	return append(append(dst, b...), '\n'), nil
}

// logSink writes each record as one structured log line.
type logSink struct{ log *zap.Logger }

// NewLogSink returns a sink that logs one structured line per record, at info
// level with the message "cost record". The line carries the ids, principal,
// route, model, status, usage, cost and timings. Captured bodies are left out, as
// logs are read more widely than records; a record holds no credentials (keys
// appear by id only).
func NewLogSink(log *zap.Logger) Sink { return logSink{log: log} }

// Name implements [Sink.Name].
func (logSink) Name() string { return "log" }

// Write implements [Sink.Write]. It never fails.
func (s logSink) Write(_ context.Context, recs []Record) error {
	for i := range recs {
		r := &recs[i]
		fields := []zap.Field{
			zap.String("request_id", r.ID),
			zap.String("trace_id", r.TraceID),
			zap.Time("start", r.Start),
			zap.Time("end", r.End),
			zap.String("key_id", r.KeyID),
			zap.String("user", r.User),
			zap.String("team", r.Team),
			zap.String("project", r.Project),
			zap.String("route", r.Route),
			zap.String("provider", r.Provider),
			zap.String("endpoint", r.Endpoint),
			zap.String("model", r.Model),
			zap.Bool("stream", r.Stream),
			zap.Int("status", r.Status),
			zap.String("outcome", string(r.Outcome)),
			zap.Int64("input_tokens", r.Usage.InputTokens),
			zap.Int64("cache_read_tokens", r.Usage.CacheReadTokens),
			zap.Int64("cache_write_5m_tokens", r.Usage.CacheWrite5mTokens),
			zap.Int64("cache_write_1h_tokens", r.Usage.CacheWrite1hTokens),
			zap.Int64("output_tokens", r.Usage.OutputTokens),
			zap.Int64("cost_pico_usd", r.CostPicoUSD),
			zap.String("cost_usd", r.Cost),
			zap.Float64("latency_ms", r.LatencyMS),
		}
		if r.ClientRequestID != "" {
			fields = append(fields, zap.String("client_request_id", r.ClientRequestID))
		}
		if r.SessionID != "" {
			fields = append(fields, zap.String("session_id", r.SessionID))
		}
		if r.AgentID != "" {
			fields = append(fields, zap.String("agent_id", r.AgentID))
		}
		if r.ParentAgentID != "" {
			fields = append(fields, zap.String("parent_agent_id", r.ParentAgentID))
		}
		if len(r.Metadata) > 0 {
			fields = append(fields, zap.Any("metadata", r.Metadata))
		}
		if r.RequestedModel != "" && r.RequestedModel != r.Model {
			fields = append(fields, zap.String("requested_model", r.RequestedModel))
		}
		if r.ResponseModel != "" && r.ResponseModel != r.Model {
			fields = append(fields, zap.String("response_model", r.ResponseModel))
		}
		if r.ErrorType != "" {
			fields = append(fields, zap.String("error_type", r.ErrorType))
		}
		if r.Usage.ReasoningTokens != 0 {
			fields = append(fields, zap.Int64("reasoning_tokens", r.Usage.ReasoningTokens))
		}
		if r.Usage.WebSearchRequests != 0 {
			fields = append(fields, zap.Int64("web_search_requests", r.Usage.WebSearchRequests))
		}
		if r.Usage.WebFetchRequests != 0 {
			fields = append(fields, zap.Int64("web_fetch_requests", r.Usage.WebFetchRequests))
		}
		if r.PriceEstimated {
			fields = append(fields, zap.Bool("price_estimated", true))
		}
		if r.TTFTMS != 0 {
			fields = append(fields, zap.Float64("ttft_ms", r.TTFTMS))
		}
		if r.CacheStatus != "" {
			fields = append(fields, zap.String("cache_status", r.CacheStatus))
		}
		if r.CostSaved != "" {
			fields = append(fields, zap.String("cost_saved_usd", r.CostSaved))
		}
		if r.BudgetOutcome != "" {
			fields = append(fields, zap.String("budget_outcome", r.BudgetOutcome))
		}
		if r.MaxTokensFitted != 0 {
			fields = append(fields, zap.Int64("max_tokens_fitted", r.MaxTokensFitted))
		}
		if r.ThinkingBudgetFitted != 0 {
			fields = append(fields, zap.Int64("thinking_budget_fitted", r.ThinkingBudgetFitted))
		}
		s.log.Info("cost record", fields...)
	}
	return nil
}

// Close implements [Sink.Close]. The logger belongs to the caller, who syncs it.
func (logSink) Close() error { return nil }
