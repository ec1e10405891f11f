package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/records"
)

var _ records.Store = (*DB)(nil)

// Query implements records.Store: the matching records, newest start first,
// ties by id.
func (d *DB) Query(ctx context.Context, q records.Query) ([]records.Record, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.TraceID != "" {
		add("trace_id = ?", q.TraceID)
	}
	if q.KeyID != "" {
		add("key_id = ?", q.KeyID)
	}
	if q.Team != "" {
		add("team = ?", q.Team)
	}
	if q.SessionID != "" {
		add("session_id = ?", q.SessionID)
	}
	if !q.Since.IsZero() {
		add("start_time >= ?", q.Since)
	}
	if !q.Until.IsZero() {
		add("start_time < ?", q.Until)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = records.DefaultQueryLimit
	case limit > records.MaxQueryLimit:
		limit = records.MaxQueryLimit
	}
	sql := "SELECT " + columnList() + " FROM records"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY start_time DESC, id DESC LIMIT " + strconv.Itoa(limit)
	return d.query(ctx, sql, args...)
}

// Trace implements records.Store.
func (d *DB) Trace(ctx context.Context, traceID string) (records.Trace, error) {
	if err := d.ready(ctx); err != nil {
		return records.Trace{}, err
	}
	recs, err := d.query(ctx, "SELECT "+columnList()+" FROM records WHERE trace_id = $1 ORDER BY start_time, id", traceID)
	if err != nil {
		return records.Trace{}, err
	}
	return records.NewTrace(traceID, recs)
}

func (d *DB) query(ctx context.Context, sql string, args ...any) ([]records.Record, error) {
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: query records: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (records.Record, error) { return scan(row) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: query records: %w", err)
	}
	return recs, nil
}
