package pgstore

import (
	"context"
	"encoding/binary"
	"errors"
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

// maxHoles bounds the hours split cuts out of the rollup (a month of days
// in a zone off the hour); beyond, the records answer for the whole range.
const maxHoles = 64

// split cuts [from, to) into the whole UTC hours the hourly rollup answers
// for (roll, maybe empty, but for the holes) and the rest, which the records
// answer for (raw): the edges of a range not on the hour, and the holes, the
// hours a boundary of step's buckets in loc falls inside of (the days of
// Asia/Kolkata, UTC+05:30, begin at 18:30 UTC), whose rollup rows would
// straddle two buckets.
func split(from, to time.Time, step spend.Step, loc *time.Location) (roll span, holes []time.Time, raw []span) {
	a, b := ceilHour(from), floorHour(to)
	all := []span{{from, to}}
	if !a.Before(b) {
		return span{}, nil, all
	}
	if step != spend.NoStep {
		for t := step.Next(step.Truncate(a, loc), loc); t.Before(b); t = step.Next(t, loc) {
			h := floorHour(t)
			if h.Equal(t) || len(holes) > 0 && holes[len(holes)-1].Equal(h) {
				continue
			}
			if len(holes) == maxHoles {
				return span{}, nil, all
			}
			holes = append(holes, h)
		}
	}
	if from.Before(a) {
		raw = append(raw, span{from, a})
	}
	for _, h := range holes {
		raw = append(raw, span{h, h.Add(time.Hour)})
	}
	if b.Before(to) {
		raw = append(raw, span{b, to})
	}
	return span{a, b}, holes, raw
}

// filterSQL appends to conds the conditions of filter f on cols, and their
// arguments to args.
func filterSQL(f spend.Filter, cols map[spend.Dim]string, conds []string, args []any) (string, []any) {
	for _, d := range spend.Dims { // a fixed order, for stable statements
		if v, ok := f[d]; ok {
			args = append(args, v)
			conds = append(conds, cols[d]+" = $"+strconv.Itoa(len(args)))
		}
	}
	return strings.Join(conds, " AND "), args
}

// source is the rows of [from, to) that match f, without buckets: the
// hourly rollup's for the hours split gives it, and the records' (one a
// row, with the rollup's columns) for the rest, in one UNION ALL. It appends
// its arguments to args.
func source(from, to time.Time, f spend.Filter, args []any) (string, []any) {
	roll, _, raw := split(from, to, spend.NoStep, time.UTC)
	var parts []string
	var cond string
	if roll.from.Before(roll.to) {
		args = append(args, roll.from, roll.to)
		cond, args = filterSQL(f, dimSQL, []string{"hour >= $" + strconv.Itoa(len(args)-1), "hour < $" + strconv.Itoa(len(args))}, args)
		parts = append(parts, "SELECT "+rollupColumns+" FROM records_hourly WHERE "+cond)
	}
	for _, r := range raw {
		args = append(args, r.from, r.to)
		cond, args = filterSQL(f, rawDimSQL, []string{"start_time >= $" + strconv.Itoa(len(args)-1), "start_time < $" + strconv.Itoa(len(args))}, args)
		parts = append(parts, "SELECT "+rawColumns+" FROM records WHERE "+cond)
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ") s", args
}

// rawSamplesSQL concatenates the samples of records.
const rawSamplesSQL = "coalesce(string_agg(float8send(latency_ms), ''::bytea) FILTER (WHERE outcome = 'ok' AND latency_ms > 0), ''::bytea), " +
	"coalesce(string_agg(float8send(ttft_ms), ''::bytea) FILTER (WHERE outcome = 'ok' AND ttft_ms > 0), ''::bytea)"

// Aggregate implements spend.Store: the cells of q from one GROUP BY query
// over the hourly rollup and one over the records for each range split
// leaves them (the edges of a range off the hour, the hours a bucket
// boundary cuts), sent together in one batch and merged; spend.Finish adds
// the levels of a Rollup and the percentiles. Buckets are date_trunc in the
// query's time zone.
//
// A range of the records within one UTC day (an edge, an hour) is read from
// that day's partition by name, which Postgres plans in well under a
// millisecond, where planning over the partitioned table costs tens (and a
// day without a partition holds no records). Should retention drop the
// partition meanwhile, the query runs again over the partitioned table.
func (d *DB) Aggregate(ctx context.Context, q spend.Query) ([]spend.Row, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := d.aggregate(ctx, q, true)
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "42P01" { // undefined_table
		rows, err = d.aggregate(ctx, q, false)
	}
	return rows, err
}

// aggregate is Aggregate, reading the partitions of days by name when
// byName.
func (d *DB) aggregate(ctx context.Context, q spend.Query, byName bool) ([]spend.Row, error) {
	for _, dim := range q.GroupBy {
		if _, ok := dimSQL[dim]; !ok {
			return nil, fmt.Errorf("pgstore: unknown dimension %q", dim)
		}
	}
	step := q.Step != spend.NoStep
	// query is the GROUP BY over table of the rows of time column tcol in
	// [from, to), but for the hours of holes.
	query := func(table, tcol string, dims map[spend.Dim]string, metrics, samples string, r span, holes []time.Time) (string, []any) {
		var args []any
		var cols []string
		if step {
			args = append(args, string(q.Step), q.Loc().String())
			cols = append(cols, "date_trunc($1, "+tcol+", $2)")
		}
		for _, dim := range q.GroupBy {
			cols = append(cols, dims[dim])
		}
		args = append(args, r.from, r.to)
		conds := []string{tcol + " >= $" + strconv.Itoa(len(args)-1), tcol + " < $" + strconv.Itoa(len(args))}
		if len(holes) > 0 {
			args = append(args, holes)
			conds = append(conds, tcol+" <> ALL($"+strconv.Itoa(len(args))+"::timestamptz[])")
		}
		cond, args := filterSQL(q.Filter, dims, conds, args)
		sel := append(slices.Clone(cols), metrics)
		if q.Percentiles {
			sel = append(sel, samples)
		}
		sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + table + " WHERE " + cond
		if len(cols) > 0 {
			nums := make([]string, len(cols))
			for i := range cols {
				nums[i] = strconv.Itoa(i + 1)
			}
			sql += " GROUP BY " + strings.Join(nums, ", ")
		}
		return sql + " HAVING count(*) > 0", args
	}
	roll, holes, raw := split(q.From, q.To, q.Step, q.Loc())
	batch := &pgx.Batch{}
	if roll.from.Before(roll.to) {
		sql, args := query("records_hourly", "hour", dimSQL, sumsSQL, samplesSQL, roll, holes)
		batch.Queue(sql, args...)
	}
	var parts map[string]bool
	if byName && len(raw) > 0 {
		names, err := d.Partitions(ctx)
		if err != nil {
			return nil, err
		}
		parts = make(map[string]bool, len(names))
		for _, n := range names {
			parts[n] = true
		}
	}
	for _, r := range raw {
		table := "records"
		if dd := day(r.from); parts != nil && !r.to.After(dd.AddDate(0, 0, 1)) {
			name := partitionName(dd)
			if !parts[name] {
				continue
			}
			table = pgx.Identifier{name}.Sanitize()
		}
		sql, args := query(table, "start_time", rawDimSQL, recordsMetricsSQL, rawSamplesSQL, r, nil)
		batch.Queue(sql, args...)
	}
	if batch.Len() == 0 {
		return nil, nil
	}
	type key struct {
		start int64
		group string
	}
	index := map[key]int{}
	var cells []spend.Cell
	br := d.pool.SendBatch(ctx, batch)
	defer br.Close()
	for range batch.Len() {
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("pgstore: aggregate records: %w", err)
		}
		part, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (spend.Cell, error) {
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
		for i := range part {
			k := key{part[i].Start.UnixMicro(), strings.Join(part[i].Group, "\x00")}
			if j, ok := index[k]; ok {
				cells[j].Add(&part[i])
				continue
			}
			index[k] = len(cells)
			cells = append(cells, part[i])
		}
	}
	if err := br.Close(); err != nil {
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
	src, args := source(q.From, q.To, q.Filter, nil)
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
