package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

var _ spend.Store = (*DB)(nil)

// classSQL is spend.Class in SQL (migration 00003 has it too).
const classSQL = `CASE WHEN request_class <> '' THEN request_class WHEN session_id = '' THEN '` + spend.ClassNone + `' WHEN agent_id = '' THEN '` +
	spend.ClassMain + `' ELSE '` + spend.ClassSubagent + `' END`

// dimSQL is the column of each dimension in the rows of source: the
// rollup's columns, which the records' part names alike.
var dimSQL = map[spend.Dim]string{
	spend.DimTeam: "team", spend.DimUser: "user_name", spend.DimKey: "key_id", spend.DimProject: "project",
	spend.DimRoute: "route", spend.DimProvider: "provider", spend.DimModel: "model", spend.DimClass: "class",
}

// rawDimSQL is the column or expression of each dimension in records.
var rawDimSQL = map[spend.Dim]string{
	spend.DimTeam: "team", spend.DimUser: "user_name", spend.DimKey: "key_id", spend.DimProject: "project",
	spend.DimRoute: "route", spend.DimProvider: "provider", spend.DimModel: "model", spend.DimClass: classSQL,
}

// The outcome classes of spend.Metrics in SQL.
const (
	errorSQL = "outcome IN ('" + string(records.OutcomeProviderError) + "', '" + string(records.OutcomeIncomplete) + "', '" +
		string(records.OutcomeUnavailable) + "')"
	refusedSQL = "outcome IN ('" + string(records.OutcomeDenied) + "', '" + string(records.OutcomeInvalid) + "')"
)

// rollupColumns are the columns of records_hourly that source selects, and
// rawColumns the same of records, one record a row. The samples are 8
// bytes each (float8send), concatenated.
const (
	rollupColumns = "hour AS t, team, user_name, key_id, project, route, provider, model, class, session_id, " +
		"requests, errors, refused, admitted, cache_hits, cost_pico_usd, cost_saved_pico_usd, " +
		"input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, latency_samples, ttft_samples"
	rawColumns = "start_time AS t, team, user_name, key_id, project, route, provider, model, " + classSQL + " AS class, session_id, " +
		"1::bigint AS requests, (" + errorSQL + ")::int::bigint AS errors, (" + refusedSQL + ")::int::bigint AS refused, " +
		"(budget_outcome = '" + spend.BudgetAllowed + "')::int::bigint AS admitted, (cache_status = 'HIT')::int::bigint AS cache_hits, " +
		"cost_pico_usd, cost_saved_pico_usd, input_tokens, output_tokens, cache_read_tokens, " +
		"cache_write_5m_tokens + cache_write_1h_tokens AS cache_write_tokens, " +
		"CASE WHEN outcome = 'ok' AND latency_ms > 0 THEN float8send(latency_ms) ELSE ''::bytea END AS latency_samples, " +
		"CASE WHEN outcome = 'ok' AND ttft_ms > 0 THEN float8send(ttft_ms) ELSE ''::bytea END AS ttft_samples"
)

// sumsSQL adds up spend.Metrics over the rows of source, and samplesSQL
// concatenates their samples; metricsDest reads the sums.
const (
	sumsSQL = "sum(requests)::bigint, sum(errors)::bigint, sum(refused)::bigint, sum(admitted)::bigint, " +
		"sum(cost_pico_usd)::bigint, sum(cost_saved_pico_usd)::bigint, sum(cache_hits)::bigint, " +
		"sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint, sum(cache_write_tokens)::bigint"
	samplesSQL = "string_agg(latency_samples, ''::bytea), string_agg(ttft_samples, ''::bytea)"
)

// recordsMetricsSQL computes spend.Metrics (without percentiles) from
// records; metricsDest reads it.
const recordsMetricsSQL = "count(*), count(*) FILTER (WHERE " + errorSQL + "), count(*) FILTER (WHERE " + refusedSQL + "), " +
	"count(*) FILTER (WHERE budget_outcome = '" + spend.BudgetAllowed + "'), " +
	"coalesce(sum(cost_pico_usd), 0)::bigint, coalesce(sum(cost_saved_pico_usd), 0)::bigint, count(*) FILTER (WHERE cache_status = 'HIT'), " +
	"coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint, coalesce(sum(cache_read_tokens), 0)::bigint, " +
	"coalesce(sum(cache_write_5m_tokens + cache_write_1h_tokens), 0)::bigint"

func metricsDest(m *spend.Metrics) []any {
	return []any{&m.Requests, &m.Errors, &m.Refused, &m.Admitted, &m.CostPicoUSD, &m.CostSavedPicoUSD, &m.CacheHits,
		&m.InputTokens, &m.OutputTokens, &m.CacheReadTokens, &m.CacheWriteTokens}
}

// floorHour and ceilHour round t down and up to a whole UTC hour.
func floorHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func ceilHour(t time.Time) time.Time {
	f := floorHour(t)
	if f.Equal(t) {
		return f
	}
	return f.Add(time.Hour)
}

// span is a time range [from, to).
type span struct{ from, to time.Time }

// split cuts [from, to) into the whole UTC hours the hourly rollup answers
// for (roll, maybe empty) and the rest, which the records answer for: the
// edges of a range not on the hour. When a boundary of step's buckets in loc
// falls inside an hour (the days of Asia/Kolkata, UTC+05:30), an hour's
// rollup rows would straddle two buckets, and the records answer for it
// all.
func split(from, to time.Time, step spend.Step, loc *time.Location) (roll span, raw []span) {
	a, b := ceilHour(from), floorHour(to)
	aligned := a.Before(b)
	if aligned && step != spend.NoStep {
		for t := step.Next(step.Truncate(a, loc), loc); t.Before(b); t = step.Next(t, loc) {
			if !floorHour(t).Equal(t) {
				aligned = false
				break
			}
		}
	}
	if !aligned {
		return span{}, []span{{from, to}}
	}
	if from.Before(a) {
		raw = append(raw, span{from, a})
	}
	if b.Before(to) {
		raw = append(raw, span{b, to})
	}
	return span{a, b}, raw
}

// source is the rows of [from, to) that match f, for the aggregates: the
// hourly rollup's for the hours split gives it, and the records' (one a
// row, with the rollup's columns) for the rest. It appends its arguments to
// args.
func source(from, to time.Time, step spend.Step, loc *time.Location, f spend.Filter, args []any) (string, []any) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	filter := func(conds []string, cols map[spend.Dim]string) string {
		for _, d := range spend.Dims { // a fixed order, for stable statements
			if v, ok := f[d]; ok {
				conds = append(conds, cols[d]+" = "+arg(v))
			}
		}
		return strings.Join(conds, " AND ")
	}
	roll, raw := split(from, to, step, loc)
	var parts []string
	if roll.from.Before(roll.to) {
		parts = append(parts, "SELECT "+rollupColumns+" FROM records_hourly WHERE "+
			filter([]string{"hour >= " + arg(roll.from), "hour < " + arg(roll.to)}, dimSQL))
	}
	for _, r := range raw {
		parts = append(parts, "SELECT "+rawColumns+" FROM records WHERE "+
			filter([]string{"start_time >= " + arg(r.from), "start_time < " + arg(r.to)}, rawDimSQL))
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ") s", args
}

// Aggregate implements spend.Store with one GROUP BY query for the cells of
// q over the hourly rollup, and the records at the edges of a range not on
// the hour (see split); spend.Finish adds the levels of a Rollup and the
// percentiles. Buckets are date_trunc in the query's time zone.
func (d *DB) Aggregate(ctx context.Context, q spend.Query) ([]spend.Row, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	var args []any
	var cols []string
	step := q.Step != spend.NoStep
	if step {
		args = append(args, string(q.Step), q.Loc().String())
		cols = append(cols, "date_trunc($1, t, $2)")
	}
	for _, dim := range q.GroupBy {
		col, ok := dimSQL[dim]
		if !ok {
			return nil, fmt.Errorf("pgstore: unknown dimension %q", dim)
		}
		cols = append(cols, col)
	}
	src, args := source(q.From, q.To, q.Step, q.Loc(), q.Filter, args)
	sel := append(slices.Clone(cols), sumsSQL)
	if q.Percentiles {
		sel = append(sel, samplesSQL)
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + src
	if len(cols) > 0 {
		nums := make([]string, len(cols))
		for i := range cols {
			nums[i] = strconv.Itoa(i + 1)
		}
		sql += " GROUP BY " + strings.Join(nums, ", ")
	}
	sql += " HAVING count(*) > 0"
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: aggregate records: %w", err)
	}
	cells, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (spend.Cell, error) {
		var c spend.Cell
		var start time.Time
		var lat, ttft []byte
		dest := make([]any, 0, 20)
		if step {
			dest = append(dest, &start)
		}
		c.Group = make([]string, len(q.GroupBy))
		for i := range c.Group {
			dest = append(dest, &c.Group[i])
		}
		dest = append(dest, metricsDest(&c.Metrics)...)
		if q.Percentiles {
			dest = append(dest, &lat, &ttft)
		}
		if err := row.Scan(dest...); err != nil {
			return c, err
		}
		if step {
			c.Start = start.In(q.Loc())
		}
		c.Latency, c.TTFT = samples(lat), samples(ttft)
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: aggregate records: %w", err)
	}
	return spend.Finish(q, cells), nil
}

// samples decodes concatenated float8send values.
func samples(b []byte) []float64 {
	out := make([]float64, len(b)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.BigEndian.Uint64(b[8*i:]))
	}
	return out
}

// Sessions implements spend.Store with two queries: the ids of the sessions
// of highest cost, from the hourly rollup (and the records at the edges of
// a range not on the hour), then those sessions' details from their
// records, through the session_id index.
func (d *DB) Sessions(ctx context.Context, q spend.SessionQuery) ([]spend.Session, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	src, args := source(q.From, q.To, spend.NoStep, time.UTC, q.Filter, nil)
	sql := "SELECT session_id FROM " + src + ` WHERE session_id <> '' GROUP BY session_id ORDER BY sum(cost_pico_usd) DESC, session_id COLLATE "C"`
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: sessions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: sessions: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	args = []any{q.From, q.To, ids}
	conds := []string{"session_id = ANY($3)", "start_time >= $1", "start_time < $2"}
	for _, dm := range spend.Dims {
		if v, ok := q.Filter[dm]; ok {
			args = append(args, v)
			conds = append(conds, rawDimSQL[dm]+" = $"+strconv.Itoa(len(args)))
		}
	}
	least := func(col string) string { return "coalesce(min(NULLIF(" + col + `, '') COLLATE "C"), '')` }
	sql = "SELECT session_id, " + least("team") + ", " + least("user_name") + ", " + least("key_id") + ", " + least("project") +
		", min(start_time), max(start_time), count(DISTINCT agent_id) FILTER (WHERE agent_id <> '')" +
		`, coalesce(array_agg(DISTINCT model COLLATE "C" ORDER BY model COLLATE "C") FILTER (WHERE model <> ''), '{}'), ` + recordsMetricsSQL +
		" FROM records WHERE session_id <> '' AND " + strings.Join(conds, " AND ") +
		` GROUP BY session_id ORDER BY coalesce(sum(cost_pico_usd), 0) DESC, session_id COLLATE "C"`
	rows, err = d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (spend.Session, error) {
		var s spend.Session
		dest := []any{&s.ID, &s.Team, &s.User, &s.Key, &s.Project, &s.First, &s.Last, &s.Subagents, &s.Models}
		if err := row.Scan(append(dest, metricsDest(&s.Metrics)...)...); err != nil {
			return s, err
		}
		s.First, s.Last = s.First.UTC(), s.Last.UTC()
		if len(s.Models) == 0 {
			s.Models = nil
		}
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: sessions: %w", err)
	}
	return out, nil
}
