package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

var _ spend.Store = (*DB)(nil)

// classSQL is spend.Class in SQL.
const classSQL = `CASE WHEN request_class <> '' THEN request_class WHEN session_id = '' THEN '` + spend.ClassNone + `' WHEN agent_id = '' THEN '` +
	spend.ClassMain + `' ELSE '` + spend.ClassSubagent + `' END`

// dimSQL is the column or expression of each dimension.
var dimSQL = map[spend.Dim]string{
	spend.DimTeam: "team", spend.DimUser: "user_name", spend.DimKey: "key_id", spend.DimProject: "project",
	spend.DimRoute: "route", spend.DimProvider: "provider", spend.DimModel: "model", spend.DimClass: classSQL,
}

// metricsSQL computes spend.Metrics; scanMetrics reads it. The percentiles
// are percentile_disc, as spend.Percentile.
var metricsSQL = strings.Join([]string{
	"count(*)",
	"count(*) FILTER (WHERE outcome IN ('" + string(records.OutcomeProviderError) + "', '" + string(records.OutcomeIncomplete) + "', '" + string(records.OutcomeUnavailable) + "'))",
	"count(*) FILTER (WHERE outcome IN ('" + string(records.OutcomeDenied) + "', '" + string(records.OutcomeInvalid) + "'))",
	"count(*) FILTER (WHERE budget_outcome = '" + spend.BudgetAllowed + "')",
	"coalesce(sum(cost_pico_usd), 0)::bigint",
	"coalesce(sum(cost_saved_pico_usd), 0)::bigint",
	"count(*) FILTER (WHERE cache_status = 'HIT')",
	"coalesce(sum(input_tokens), 0)::bigint",
	"coalesce(sum(output_tokens), 0)::bigint",
	"coalesce(sum(cache_read_tokens), 0)::bigint",
	"coalesce(sum(cache_write_5m_tokens + cache_write_1h_tokens), 0)::bigint",
}, ", ")

var percentilesSQL = strings.Join([]string{
	"percentile_disc(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'ok' AND latency_ms > 0)",
	"count(*) FILTER (WHERE outcome = 'ok' AND latency_ms > 0)",
	"percentile_disc(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE outcome = 'ok' AND ttft_ms > 0)",
	"count(*) FILTER (WHERE outcome = 'ok' AND ttft_ms > 0)",
}, ", ")

func metricsDest(m *spend.Metrics) []any {
	return []any{&m.Requests, &m.Errors, &m.Refused, &m.Admitted, &m.CostPicoUSD, &m.CostSavedPicoUSD, &m.CacheHits,
		&m.InputTokens, &m.OutputTokens, &m.CacheReadTokens, &m.CacheWriteTokens}
}

// where is the condition of a time range and a filter, with its arguments.
func where(from, to time.Time, f spend.Filter, args []any) (string, []any) {
	args = append(args, from, to)
	conds := []string{"start_time >= $" + strconv.Itoa(len(args)-1), "start_time < $" + strconv.Itoa(len(args))}
	for _, d := range spend.Dims { // a fixed order, for stable statements
		if v, ok := f[d]; ok {
			args = append(args, v)
			conds = append(conds, dimSQL[d]+" = $"+strconv.Itoa(len(args)))
		}
	}
	return strings.Join(conds, " AND "), args
}

// Aggregate implements spend.Store with one GROUP BY query, with
// GROUPING SETS for a Rollup. Buckets are date_trunc in the query's time
// zone.
func (d *DB) Aggregate(ctx context.Context, q spend.Query) ([]spend.Row, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	var args []any
	var cols []string
	step := q.Step != spend.NoStep
	if step {
		args = append(args, string(q.Step), q.Loc().String())
		cols = append(cols, "date_trunc($1, start_time, $2)")
	}
	for _, dim := range q.GroupBy {
		expr, ok := dimSQL[dim]
		if !ok {
			return nil, fmt.Errorf("pgstore: unknown dimension %q", dim)
		}
		cols = append(cols, expr)
	}
	// The column numbers of the bucket and of the dimensions.
	var bucketCol, dimCols []string
	for i := range cols {
		if step && i == 0 {
			bucketCol = []string{"1"}
		} else {
			dimCols = append(dimCols, strconv.Itoa(i+1))
		}
	}
	var sets []string
	for _, l := range q.Levels() {
		switch l {
		case spend.LevelBucketGroup:
			sets = append(sets, "("+strings.Join(append(slices.Clone(bucketCol), dimCols...), ", ")+")")
		case spend.LevelGroup:
			sets = append(sets, "("+strings.Join(dimCols, ", ")+")")
		case spend.LevelBucket:
			sets = append(sets, "("+strings.Join(bucketCol, ", ")+")")
		case spend.LevelAll:
			sets = append(sets, "()")
		}
	}
	cond, args := where(q.From, q.To, q.Filter, args)
	sel := append(slices.Clone(cols), metricsSQL)
	if q.Percentiles {
		sel = append(sel, percentilesSQL)
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM records WHERE " + cond
	if len(sets) > 1 {
		sql += " GROUP BY GROUPING SETS (" + strings.Join(sets, ", ") + ")"
	} else if len(cols) > 0 {
		sql += " GROUP BY " + strings.Join(append(slices.Clone(bucketCol), dimCols...), ", ")
	}
	sql += " HAVING count(*) > 0"
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: aggregate records: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (spend.Row, error) {
		var r spend.Row
		var start *time.Time
		var lat, ttft []float64
		dest := make([]any, 0, 20)
		if step {
			dest = append(dest, &start)
		}
		group := make([]*string, len(q.GroupBy))
		for i := range group {
			dest = append(dest, &group[i])
		}
		dest = append(dest, metricsDest(&r.Metrics)...)
		if q.Percentiles {
			dest = append(dest, &lat, &r.LatencyN, &ttft, &r.TTFTN)
		}
		if err := row.Scan(dest...); err != nil {
			return r, err
		}
		// A NULL bucket or dimension is one a grouping set left out.
		allBuckets, allGroups := step && start == nil, len(group) > 0 && group[0] == nil
		switch {
		case allBuckets && (allGroups || len(group) == 0), allGroups && !step:
			r.Level = spend.LevelAll
		case allBuckets:
			r.Level = spend.LevelGroup
		case allGroups:
			r.Level = spend.LevelBucket
		}
		if start != nil {
			r.Start = start.In(q.Loc())
		}
		if !allGroups {
			r.Group = make([]string, len(group))
			for i, v := range group {
				r.Group[i] = *v
			}
		}
		if len(lat) == 2 {
			r.LatencyP50, r.LatencyP95 = lat[0], lat[1]
		}
		if len(ttft) == 2 {
			r.TTFTP50, r.TTFTP95 = ttft[0], ttft[1]
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: aggregate records: %w", err)
	}
	return out, nil
}

// Sessions implements spend.Store.
func (d *DB) Sessions(ctx context.Context, q spend.SessionQuery) ([]spend.Session, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	cond, args := where(q.From, q.To, q.Filter, nil)
	least := func(col string) string { return "coalesce(min(NULLIF(" + col + `, '') COLLATE "C"), '')` }
	sql := "SELECT session_id, " + least("team") + ", " + least("user_name") + ", " + least("key_id") + ", " + least("project") +
		", min(start_time), max(start_time), count(DISTINCT agent_id) FILTER (WHERE agent_id <> '')" +
		`, coalesce(array_agg(DISTINCT model COLLATE "C" ORDER BY model COLLATE "C") FILTER (WHERE model <> ''), '{}'), ` + metricsSQL +
		" FROM records WHERE session_id <> '' AND " + cond +
		` GROUP BY session_id ORDER BY coalesce(sum(cost_pico_usd), 0) DESC, session_id COLLATE "C"`
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := d.pool.Query(ctx, sql, args...)
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
