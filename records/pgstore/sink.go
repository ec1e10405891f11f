package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/records"
)

// columns are the records table's columns, in the order of values and scan.
var columns = []string{
	"id", "start_time", "end_time", "client_request_id", "trace_id",
	"session_id", "agent_id", "parent_agent_id", "request_class",
	"key_id", "user_name", "team", "project", "metadata",
	"route", "provider", "attempts", "endpoint", "method", "path",
	"requested_model", "model", "response_model", "stream",
	"status", "error_type", "outcome",
	"input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
	"output_tokens", "reasoning_tokens", "web_search_requests", "web_fetch_requests",
	"cost_pico_usd", "cost_usd", "price_estimated", "usage_estimated", "price_catalog",
	"latency_ms", "ttft_ms", "cache_status", "cost_saved_pico_usd", "cost_saved_usd",
	"budget_outcome", "reservation_id", "reserved_pico_usd", "max_tokens_fitted", "thinking_budget_fitted",
	"request_body", "response_body",
}

// columnList is columns joined for SQL.
func columnList() string { return strings.Join(columns, ", ") }

// values is r as the row of columns. Empty maps and lists are NULL.
func values(r *records.Record) ([]any, error) {
	var metadata, attempts []byte
	var err error
	if len(r.Metadata) > 0 {
		if metadata, err = json.Marshal(r.Metadata); err != nil {
			return nil, err
		}
	}
	if len(r.Attempts) > 0 {
		if attempts, err = json.Marshal(r.Attempts); err != nil {
			return nil, err
		}
	}
	u := &r.Usage
	return []any{
		r.ID, r.Start, r.End, r.ClientRequestID, r.TraceID,
		r.SessionID, r.AgentID, r.ParentAgentID, r.RequestClass,
		r.KeyID, r.User, r.Team, r.Project, metadata,
		r.Route, r.Provider, attempts, r.Endpoint, r.Method, r.Path,
		r.RequestedModel, r.Model, r.ResponseModel, r.Stream,
		int32(r.Status), r.ErrorType, string(r.Outcome),
		u.InputTokens, u.CacheReadTokens, u.CacheWrite5mTokens, u.CacheWrite1hTokens,
		u.OutputTokens, u.ReasoningTokens, u.WebSearchRequests, u.WebFetchRequests,
		r.CostPicoUSD, r.Cost, r.PriceEstimated, r.UsageEstimated, r.PriceCatalog,
		r.LatencyMS, r.TTFTMS, r.CacheStatus, r.CostSavedPicoUSD, r.CostSaved,
		r.BudgetOutcome, r.ReservationID, r.ReservedPicoUSD, r.MaxTokensFitted, r.ThinkingBudgetFitted,
		r.RequestBody, r.ResponseBody,
	}, nil
}

// scan reads one row of columns.
func scan(row pgx.Row) (records.Record, error) {
	var r records.Record
	var metadata, attempts []byte
	var status int32
	var outcome string
	u := &r.Usage
	err := row.Scan(
		&r.ID, &r.Start, &r.End, &r.ClientRequestID, &r.TraceID,
		&r.SessionID, &r.AgentID, &r.ParentAgentID, &r.RequestClass,
		&r.KeyID, &r.User, &r.Team, &r.Project, &metadata,
		&r.Route, &r.Provider, &attempts, &r.Endpoint, &r.Method, &r.Path,
		&r.RequestedModel, &r.Model, &r.ResponseModel, &r.Stream,
		&status, &r.ErrorType, &outcome,
		&u.InputTokens, &u.CacheReadTokens, &u.CacheWrite5mTokens, &u.CacheWrite1hTokens,
		&u.OutputTokens, &u.ReasoningTokens, &u.WebSearchRequests, &u.WebFetchRequests,
		&r.CostPicoUSD, &r.Cost, &r.PriceEstimated, &r.UsageEstimated, &r.PriceCatalog,
		&r.LatencyMS, &r.TTFTMS, &r.CacheStatus, &r.CostSavedPicoUSD, &r.CostSaved,
		&r.BudgetOutcome, &r.ReservationID, &r.ReservedPicoUSD, &r.MaxTokensFitted, &r.ThinkingBudgetFitted,
		&r.RequestBody, &r.ResponseBody,
	)
	if err != nil {
		return r, err
	}
	r.Status, r.Outcome = int(status), records.Outcome(outcome)
	r.Start, r.End = r.Start.UTC(), r.End.UTC()
	if metadata != nil {
		if err := json.Unmarshal(metadata, &r.Metadata); err != nil {
			return r, fmt.Errorf("record %q metadata: %w", r.ID, err)
		}
	}
	if attempts != nil {
		if err := json.Unmarshal(attempts, &r.Attempts); err != nil {
			return r, fmt.Errorf("record %q attempts: %w", r.ID, err)
		}
	}
	return r, nil
}

// sink writes records to the DB.
type sink struct{ d *DB }

// Sink returns the records sink of the DB, named "postgres", for a
// records.Writer.
//
// Write copies a batch with one COPY into a temporary staging table, then
// moves it into records with INSERT ... ON CONFLICT DO NOTHING, in one
// transaction: a record whose id (and start) the table already holds is
// skipped, so a batch the Writer retries after an outage, or replays from its
// spool after a crash, stores each record exactly once. (COPY alone cannot
// skip duplicates: one would fail the whole batch, forever.) The partitions
// of the batch's days are created first when missing, and the schema is
// migrated before the first write. Close does nothing: the DB's owner closes
// it after the Writer.
func (d *DB) Sink() records.Sink { return sink{d} }

// Name implements records.Sink.
func (sink) Name() string { return "postgres" }

// Close implements records.Sink.
func (sink) Close() error { return nil }

// Write implements records.Sink. A record without an id or a start, or with
// a NUL byte in a string (Postgres text cannot hold one), can never be stored:
// Write stores the others and returns a *records.RejectedError naming it.
func (s sink) Write(ctx context.Context, recs []records.Record) error {
	d := s.d
	if err := d.ready(ctx); err != nil {
		return err
	}
	var rejected []records.Rejection
	rows := make([][]any, 0, len(recs))
	var days []time.Time
	seen := make(map[time.Time]bool)
	for i := range recs {
		r := &recs[i]
		if err := storable(r); err != nil {
			rejected = append(rejected, records.Rejection{Index: i, Reason: err})
			continue
		}
		v, err := values(r)
		if err != nil {
			rejected = append(rejected, records.Rejection{Index: i, Reason: fmt.Errorf("record %q: %w", r.ID, err)})
			continue
		}
		rows = append(rows, v)
		if dd := day(r.Start); !seen[dd] {
			seen[dd] = true
			days = append(days, dd)
		}
	}
	if len(rows) > 0 {
		if err := d.ensurePartitions(ctx, days); err != nil {
			return err
		}
		if err := d.insert(ctx, rows); err != nil {
			if isNoPartition(err) {
				d.forgetPartitions()
			}
			return fmt.Errorf("pgstore: write %d records: %w", len(rows), err)
		}
	}
	if len(rejected) > 0 {
		return &records.RejectedError{Records: rejected}
	}
	return nil
}

// insert copies rows into the staging table and moves the new ones into
// records, in one transaction.
func (d *DB) insert(ctx context.Context, rows [][]any) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// One staging table per connection, emptied at every commit.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS records_staging
			(LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"records_staging"}, columns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		cols := columnList()
		_, err := tx.Exec(ctx, "INSERT INTO records ("+cols+") SELECT "+cols+
			" FROM records_staging ON CONFLICT (id, start_time) DO NOTHING")
		return err
	})
}

// storable says why r can never be stored, or nil.
func storable(r *records.Record) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("record without an id (trace %q)", r.TraceID)
	case r.Start.IsZero():
		return fmt.Errorf("record %q without a start time", r.ID)
	}
	strs := []string{
		r.ID, r.ClientRequestID, r.TraceID, r.SessionID, r.AgentID, r.ParentAgentID, r.RequestClass,
		r.KeyID, r.User, r.Team, r.Project, r.Route, r.Provider, r.Endpoint, r.Method, r.Path,
		r.RequestedModel, r.Model, r.ResponseModel, r.ErrorType, string(r.Outcome), r.Cost,
		r.PriceCatalog, r.CacheStatus, r.CostSaved, r.BudgetOutcome, r.ReservationID,
		r.RequestBody, r.ResponseBody,
	}
	for k, v := range r.Metadata {
		strs = append(strs, k, v)
	}
	for _, a := range r.Attempts {
		strs = append(strs, a.Provider, a.Model)
	}
	for _, s := range strs {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("record %q has a NUL byte in a text field", r.ID)
		}
	}
	return nil
}
