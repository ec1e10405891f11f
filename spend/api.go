package spend

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// API limits.
const (
	// DefaultRangeDays is the range of a query without from: the 30 days up
	// to now, from local midnight 29 days before today.
	DefaultRangeDays = 30
	// MaxBuckets bounds the buckets of a series.
	MaxBuckets = 10_000
	// MaxGroupBy bounds the dimensions of group_by.
	MaxGroupBy = 3
	// Default and maximum limit of each endpoint.
	DefaultSeriesGroups, MaxSeriesGroups = 10, 100
	DefaultTotalsGroups, MaxTotalsGroups = 100, 1000
	DefaultSessions, MaxSessions         = 20, 1000
)

// Options configure the spend API.
type Options struct {
	Store Store
	// Tokens returns the admin and viewer tokens (called per request).
	Tokens func() *adminapi.Tokens
	// Budgets returns the current policy's budgets; nil, or returning nil,
	// has none. Their timezone is also the default tz of every query.
	Budgets func() *budget.Config
	// KeyTeam returns the team of a gateway key id ("" when unknown), so that
	// a viewer sees the budgets of its team's keys; nil shows viewers their
	// team's budgets only.
	KeyTeam func(keyID string) string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NewAPIHandler serves the spend API on the admin port (README "Spend
// API" documents every field):
//
//	GET /v1/spend/series    metrics per time bucket (step hour, day, week), per group
//	GET /v1/spend/totals    metrics per group over the range, highest cost first
//	GET /v1/spend/sessions  the Claude Code sessions of highest cost
//	GET /v1/spend/budgets   every calendar budget's use, forecast and exhaustion
//
// Each takes format=csv for CSV instead of JSON. The admin token reads
// everything; a viewer token reads its team's records only (a team filter
// is forced, and asking for another team is 403 permission_error). Errors
// are {"error": {"type", "message"}}: 400 invalid_request, 401
// authentication_error, 403 api_disabled or permission_error, 404, 405, 500
// store_error.
func NewAPIHandler(o Options) http.Handler {
	return adminapi.NewScopedAPI("spend", o.Tokens, Routes(o)...)
}

// Routes are the spend API's routes without authentication, for a server
// that authenticates its own way (the dashboard's cookie session): each
// handler reads the principal that adminapi.WithPrincipal put in the
// request's context, and a request without one sees nothing (a viewer of no
// team). o.Tokens is not used.
func Routes(o Options) []adminapi.Route {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budgets == nil {
		o.Budgets = func() *budget.Config { return nil }
	}
	h := &api{o: o}
	return []adminapi.Route{
		{Method: http.MethodGet, Path: "/v1/spend/series", Handler: h.series},
		{Method: http.MethodGet, Path: "/v1/spend/totals", Handler: h.totals},
		{Method: http.MethodGet, Path: "/v1/spend/sessions", Handler: h.sessions},
		{Method: http.MethodGet, Path: "/v1/spend/budgets", Handler: h.budgets},
	}
}

type api struct{ o Options }

// request is the parsed parameters common to the endpoints.
type request struct {
	from, to time.Time
	loc      *time.Location
	filter   Filter
	groupBy  []Dim
	step     Step
	limit    int
	order    string
	csv      bool
	// latency asks for the latency and TTFT percentiles (latency=false
	// skips them: a sort less per row of the answer).
	latency bool
	params  map[string]string
}

// errForbidden is a viewer asking for another team.
var errForbidden = errors.New("forbidden")

// parse reads the parameters of an endpoint: the common ones (from, to, tz,
// format and a filter per dimension) and extra.
func (h *api) parse(r *http.Request, extra ...string) (*request, error) {
	names := []string{"from", "to", "tz", "format"}
	for _, d := range Dims {
		names = append(names, string(d))
	}
	params, err := adminapi.Params(r.URL.Query(), append(names, extra...)...)
	if err != nil {
		return nil, err
	}
	req := &request{params: params, filter: Filter{}, loc: time.UTC}
	if cfg := h.o.Budgets(); cfg != nil && cfg.Location != nil {
		req.loc = cfg.Location
	}
	if tz, ok := params["tz"]; ok {
		if req.loc, err = time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
			return nil, fmt.Errorf("tz %q: want an IANA time zone such as UTC or Europe/Berlin", tz)
		}
	}
	switch params["format"] {
	case "", "json":
	case "csv":
		req.csv = true
	default:
		return nil, fmt.Errorf("format %q: want json or csv", params["format"])
	}
	switch params["latency"] {
	case "", "true":
		req.latency = true
	case "false":
	default:
		return nil, fmt.Errorf("latency %q: want true or false", params["latency"])
	}
	now := h.o.Now()
	req.to = now
	if v, ok := params["to"]; ok {
		if req.to, err = parseTime("to", v, req.loc); err != nil {
			return nil, err
		}
	}
	y, m, d := req.to.In(req.loc).Date()
	req.from = midnight(y, m, d-(DefaultRangeDays-1), req.loc)
	if v, ok := params["from"]; ok {
		if req.from, err = parseTime("from", v, req.loc); err != nil {
			return nil, err
		}
	}
	if !req.from.Before(req.to) {
		return nil, fmt.Errorf("from (%s) must be before to (%s)", req.from.Format(time.RFC3339), req.to.Format(time.RFC3339))
	}
	for _, d := range Dims {
		if v, ok := params[string(d)]; ok {
			if v == "" || len(v) > 256 {
				return nil, fmt.Errorf("%s: want a value of 1 to 256 bytes", d)
			}
			req.filter[d] = v
		}
	}
	p := adminapi.RequestPrincipal(r)
	team, ok := p.TeamFilter(req.filter[DimTeam])
	if !ok {
		return nil, errForbidden
	}
	if team != "" {
		req.filter[DimTeam] = team
	}
	return req, nil
}

// parseTime reads RFC 3339, unix seconds, or a date (local midnight in loc).
func parseTime(name, s string, loc *time.Location) (time.Time, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		if secs, err := strconv.ParseInt(s, 10, 64); err == nil && secs <= 253402300799 {
			return time.Unix(secs, 0).UTC(), nil
		}
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	} else if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return midnight(t.Year(), t.Month(), t.Day(), loc), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-05-01T12:00:00Z), a date (2026-05-01, midnight in tz) or unix seconds", name, s)
}

func (req *request) parseGroupBy() error {
	v, ok := req.params["group_by"]
	if !ok || v == "" {
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		d, err := ParseDim(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("group_by: %w", err)
		}
		if slices.Contains(req.groupBy, d) {
			return fmt.Errorf("group_by names %s twice", d)
		}
		req.groupBy = append(req.groupBy, d)
	}
	if len(req.groupBy) > MaxGroupBy {
		return fmt.Errorf("group_by: at most %d dimensions", MaxGroupBy)
	}
	return nil
}

func (req *request) parseLimit(def, maxN int) error {
	req.limit = def
	v, ok := req.params["limit"]
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxN {
		return fmt.Errorf("limit %q: want an integer from 1 to %d", v, maxN)
	}
	req.limit = n
	return nil
}

// fail answers a parse error: 403 for a viewer asking for another team,
// else 400.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errForbidden) {
		adminapi.Forbidden(w, adminapi.RequestPrincipal(r), "it cannot read another team's totals")
		return
	}
	adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
}

func storeError(w http.ResponseWriter, err error) {
	adminapi.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
}

// metricsJSON is the JSON of Metrics. Amounts of money are exact decimal
// USD strings, beside their integer pico-USD.
type metricsJSON struct {
	Requests         int64      `json:"requests"`
	Errors           int64      `json:"errors"`
	Refused          int64      `json:"refused"`
	CostUSD          string     `json:"cost_usd"`
	CostPicoUSD      int64      `json:"cost_pico_usd"`
	CostSavedUSD     string     `json:"cost_saved_usd"`
	CostSavedPicoUSD int64      `json:"cost_saved_pico_usd"`
	CacheHits        int64      `json:"cache_hits"`
	Tokens           tokensJSON `json:"tokens"`
	LatencyMS        *pctJSON   `json:"latency_ms"`
	TTFTMS           *pctJSON   `json:"ttft_ms"`
}

type tokensJSON struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	CacheRead  int64 `json:"cache_read"`
	CacheWrite int64 `json:"cache_write"`
	Total      int64 `json:"total"`
}

type pctJSON struct {
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	Samples int64   `json:"samples"`
}

func toMetricsJSON(m *Metrics) metricsJSON {
	j := metricsJSON{
		Requests: m.Requests, Errors: m.Errors, Refused: m.Refused,
		CostUSD: pricing.FormatUSD(m.CostPicoUSD), CostPicoUSD: m.CostPicoUSD,
		CostSavedUSD: pricing.FormatUSD(m.CostSavedPicoUSD), CostSavedPicoUSD: m.CostSavedPicoUSD,
		CacheHits: m.CacheHits,
		Tokens:    tokensJSON{m.InputTokens, m.OutputTokens, m.CacheReadTokens, m.CacheWriteTokens, m.Tokens()},
	}
	if m.LatencyN > 0 {
		j.LatencyMS = &pctJSON{m.LatencyP50, m.LatencyP95, m.LatencyN}
	}
	if m.TTFTN > 0 {
		j.TTFTMS = &pctJSON{m.TTFTP50, m.TTFTP95, m.TTFTN}
	}
	return j
}

// metricsHeader and metricsCSV are Metrics as CSV columns.
var metricsHeader = []string{"requests", "errors", "refused", "cost_usd", "cost_saved_usd", "cache_hits",
	"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
	"latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms"}

func metricsCSV(m *Metrics) []string {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64, n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return []string{i(m.Requests), i(m.Errors), i(m.Refused), pricing.FormatUSD(m.CostPicoUSD), pricing.FormatUSD(m.CostSavedPicoUSD), i(m.CacheHits),
		i(m.InputTokens), i(m.OutputTokens), i(m.CacheReadTokens), i(m.CacheWriteTokens),
		f(m.LatencyP50, m.LatencyN), f(m.LatencyP95, m.LatencyN), f(m.TTFTP50, m.TTFTN), f(m.TTFTP95, m.TTFTN)}
}

// writeCSV answers with rows as CSV, named name.csv.
func writeCSV(w http.ResponseWriter, name string, rows [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.WriteAll(rows) // the client went away: nothing to do
}

func groupMap(dims []Dim, vals []string) map[string]string {
	g := make(map[string]string, len(dims))
	for i, d := range dims {
		g[string(d)] = vals[i]
	}
	return g
}

func dimNames(dims []Dim) []string {
	out := make([]string, len(dims))
	for i, d := range dims {
		out[i] = string(d)
	}
	return out
}

type rangeJSON struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Timezone string    `json:"timezone"`
	Filter   Filter    `json:"filter"`
}

func (req *request) rangeJSON() rangeJSON {
	return rangeJSON{From: req.from.In(req.loc), To: req.to.In(req.loc), Timezone: req.loc.String(), Filter: req.filter}
}

type pointJSON struct {
	Start time.Time `json:"start"`
	metricsJSON
}

type seriesJSON struct {
	Group  map[string]string `json:"group"`
	Total  metricsJSON       `json:"total"`
	Points []pointJSON       `json:"points"`
}

func (h *api) series(w http.ResponseWriter, r *http.Request) {
	req, err := h.parse(r, "step", "group_by", "limit", "latency")
	if err == nil {
		err = req.parseGroupBy()
	}
	if err == nil {
		err = req.parseLimit(DefaultSeriesGroups, MaxSeriesGroups)
	}
	if err == nil {
		req.step = Day
		if v, ok := req.params["step"]; ok {
			req.step, err = ParseStep(v)
		}
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	var buckets []time.Time
	for b := req.step.Truncate(req.from, req.loc); b.Before(req.to); b = req.step.Next(b, req.loc) {
		if len(buckets) == MaxBuckets {
			fail(w, r, fmt.Errorf("more than %d buckets of a %s from %s to %s: narrow the range or take a longer step", MaxBuckets, req.step, req.from.Format(time.RFC3339), req.to.Format(time.RFC3339)))
			return
		}
		buckets = append(buckets, b)
	}
	q := Query{From: req.from, To: req.to, Step: req.step, Location: req.loc, GroupBy: req.groupBy, Filter: req.filter, Percentiles: req.latency}
	if req.csv {
		rows, err := h.o.Store.Aggregate(r.Context(), q)
		if err != nil {
			storeError(w, err)
			return
		}
		sortRows(rows)
		out := [][]string{append(append([]string{"start"}, dimNames(req.groupBy)...), metricsHeader...)}
		for i := range rows {
			line := append([]string{rows[i].Start.In(req.loc).Format(time.RFC3339)}, rows[i].Group...)
			out = append(out, append(line, metricsCSV(&rows[i].Metrics)...))
		}
		writeCSV(w, "spend-series", out)
		return
	}
	// One pass: the cells, each group's total (which ranks the groups),
	// each bucket's total and the grand total, each with its percentiles.
	q.Rollup = true
	rows, err := h.o.Store.Aggregate(r.Context(), q)
	if err != nil {
		storeError(w, err)
		return
	}
	grouped := len(req.groupBy) > 0
	var totals, all []Row
	var grand Metrics
	byGroup := map[string][]Row{}
	for _, row := range rows {
		switch {
		case row.Level == LevelAll:
			grand = row.Metrics
		case !grouped || row.Level == LevelBucket:
			all = append(all, row)
		case row.Level == LevelGroup:
			totals = append(totals, row)
		default:
			k := strings.Join(row.Group, "\x00")
			byGroup[k] = append(byGroup[k], row)
		}
	}
	rank(totals, "cost")
	index := map[int64]int{}
	for i, b := range buckets {
		index[b.UnixMicro()] = i
	}
	dense := func(rows []Row) []pointJSON {
		pts := make([]pointJSON, len(buckets))
		for i, b := range buckets {
			pts[i] = pointJSON{Start: b.In(req.loc), metricsJSON: toMetricsJSON(&Metrics{})}
		}
		for i := range rows {
			if j, ok := index[rows[i].Start.UnixMicro()]; ok {
				pts[j].metricsJSON = toMetricsJSON(&rows[i].Metrics)
			}
		}
		return pts
	}
	shown := totals[:min(len(totals), req.limit)]
	series := make([]seriesJSON, 0, len(shown))
	for i := range shown {
		series = append(series, seriesJSON{
			Group:  groupMap(req.groupBy, shown[i].Group),
			Total:  toMetricsJSON(&shown[i].Metrics),
			Points: dense(byGroup[strings.Join(shown[i].Group, "\x00")]),
		})
	}
	for i := range buckets {
		buckets[i] = buckets[i].In(req.loc)
	}
	adminapi.WriteJSON(w, http.StatusOK, struct {
		rangeJSON
		Step        Step         `json:"step"`
		GroupBy     []string     `json:"group_by"`
		Buckets     []time.Time  `json:"buckets"`
		Series      []seriesJSON `json:"series"`
		OtherGroups int          `json:"other_groups"`
		Total       seriesJSON   `json:"total"`
	}{req.rangeJSON(), req.step, dimNames(req.groupBy), buckets, series, len(totals) - len(shown),
		seriesJSON{Group: map[string]string{}, Total: toMetricsJSON(&grand), Points: dense(all)}})
}

// sortRows orders rows by start, then group, for CSV.
func sortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(a.Start.Compare(b.Start), slices.Compare(a.Group, b.Group))
	})
}

// rank orders rows by order (cost, requests, tokens or errors), highest
// first, ties by group.
func rank(rows []Row, order string) {
	key := func(m *Metrics) int64 {
		switch order {
		case "requests":
			return m.Requests
		case "tokens":
			return m.Tokens()
		case "errors":
			return m.Errors
		}
		return m.CostPicoUSD
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(key(&b.Metrics), key(&a.Metrics)), slices.Compare(a.Group, b.Group))
	})
}

type groupJSON struct {
	Group map[string]string `json:"group"`
	metricsJSON
}

func (h *api) totals(w http.ResponseWriter, r *http.Request) {
	req, err := h.parse(r, "group_by", "limit", "order", "latency")
	if err == nil {
		err = req.parseGroupBy()
	}
	if err == nil {
		err = req.parseLimit(DefaultTotalsGroups, MaxTotalsGroups)
	}
	if err == nil {
		switch req.order = cmp.Or(req.params["order"], "cost"); req.order {
		case "cost", "requests", "tokens", "errors":
		default:
			err = fmt.Errorf("order %q: want cost, requests, tokens or errors", req.order)
		}
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	q := Query{From: req.from, To: req.to, Location: req.loc, GroupBy: req.groupBy, Filter: req.filter, Percentiles: req.latency, Rollup: !req.csv}
	rows, err := h.o.Store.Aggregate(r.Context(), q)
	if err != nil {
		storeError(w, err)
		return
	}
	var grand Metrics
	if len(req.groupBy) > 0 {
		rows = slices.DeleteFunc(rows, func(r Row) bool {
			if r.Level == LevelAll {
				grand = r.Metrics
				return true
			}
			return false
		})
	} else if len(rows) > 0 {
		grand = rows[0].Metrics
	}
	rank(rows, req.order)
	if req.csv {
		out := [][]string{append(dimNames(req.groupBy), metricsHeader...)}
		for i := range rows {
			out = append(out, append(slices.Clone(rows[i].Group), metricsCSV(&rows[i].Metrics)...))
		}
		writeCSV(w, "spend-totals", out)
		return
	}
	shown := rows[:min(len(rows), req.limit)]
	groups := make([]groupJSON, len(shown))
	for i := range shown {
		groups[i] = groupJSON{groupMap(req.groupBy, shown[i].Group), toMetricsJSON(&shown[i].Metrics)}
	}
	if len(req.groupBy) == 0 {
		groups = groups[:0]
	}
	adminapi.WriteJSON(w, http.StatusOK, struct {
		rangeJSON
		GroupBy     []string    `json:"group_by"`
		Order       string      `json:"order"`
		Groups      []groupJSON `json:"groups"`
		OtherGroups int         `json:"other_groups"`
		Total       metricsJSON `json:"total"`
	}{req.rangeJSON(), dimNames(req.groupBy), req.order, groups, max(len(rows)-len(shown), 0), toMetricsJSON(&grand)})
}

type sessionJSON struct {
	SessionID        string     `json:"session_id"`
	Team             string     `json:"team"`
	User             string     `json:"user"`
	Key              string     `json:"key"`
	Project          string     `json:"project"`
	First            time.Time  `json:"first"`
	Last             time.Time  `json:"last"`
	Requests         int64      `json:"requests"`
	Errors           int64      `json:"errors"`
	Refused          int64      `json:"refused"`
	Subagents        int64      `json:"subagents"`
	Models           []string   `json:"models"`
	CostUSD          string     `json:"cost_usd"`
	CostPicoUSD      int64      `json:"cost_pico_usd"`
	CostSavedUSD     string     `json:"cost_saved_usd"`
	CostSavedPicoUSD int64      `json:"cost_saved_pico_usd"`
	Tokens           tokensJSON `json:"tokens"`
}

func (h *api) sessions(w http.ResponseWriter, r *http.Request) {
	req, err := h.parse(r, "limit")
	if err == nil {
		err = req.parseLimit(DefaultSessions, MaxSessions)
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	ss, err := h.o.Store.Sessions(r.Context(), SessionQuery{From: req.from, To: req.to, Filter: req.filter, Limit: req.limit})
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]sessionJSON, len(ss))
	for i, s := range ss {
		m := toMetricsJSON(&s.Metrics)
		out[i] = sessionJSON{
			SessionID: s.ID, Team: s.Team, User: s.User, Key: s.Key, Project: s.Project,
			First: s.First.In(req.loc), Last: s.Last.In(req.loc),
			Requests: s.Requests, Errors: s.Errors, Refused: s.Refused, Subagents: s.Subagents, Models: s.Models,
			CostUSD: m.CostUSD, CostPicoUSD: m.CostPicoUSD, CostSavedUSD: m.CostSavedUSD, CostSavedPicoUSD: m.CostSavedPicoUSD,
			Tokens: m.Tokens,
		}
		if out[i].Models == nil {
			out[i].Models = []string{}
		}
	}
	if req.csv {
		rows := [][]string{{"session_id", "team", "user", "key", "project", "first", "last", "requests", "errors", "refused", "subagents", "models",
			"cost_usd", "cost_saved_usd", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}}
		i := func(v int64) string { return strconv.FormatInt(v, 10) }
		for _, s := range out {
			rows = append(rows, []string{s.SessionID, s.Team, s.User, s.Key, s.Project, s.First.Format(time.RFC3339Nano), s.Last.Format(time.RFC3339Nano),
				i(s.Requests), i(s.Errors), i(s.Refused), i(s.Subagents), strings.Join(s.Models, " "),
				s.CostUSD, s.CostSavedUSD, i(s.Tokens.Input), i(s.Tokens.Output), i(s.Tokens.CacheRead), i(s.Tokens.CacheWrite)})
		}
		writeCSV(w, "spend-sessions", rows)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, struct {
		rangeJSON
		Sessions []sessionJSON `json:"sessions"`
	}{req.rangeJSON(), out})
}

type budgetJSON struct {
	Scope            string     `json:"scope"`
	Unit             string     `json:"unit"`
	Per              string     `json:"per"`
	Limit            string     `json:"limit"`
	Used             string     `json:"used"`
	Remaining        string     `json:"remaining"`
	UsedFraction     float64    `json:"used_fraction"`
	WindowStart      time.Time  `json:"window_start"`
	WindowEnd        time.Time  `json:"window_end"`
	Forecast         string     `json:"forecast"`
	ForecastFraction float64    `json:"forecast_fraction"`
	ForecastMethod   string     `json:"forecast_method"`
	ForecastLinear   string     `json:"forecast_linear"`
	ForecastProfile  *string    `json:"forecast_weekday_profile"`
	Exhausted        bool       `json:"exhausted"`
	ExhaustsAt       *time.Time `json:"exhausts_at"`
	AtRisk           bool       `json:"at_risk"`
}

// format writes an amount of unit u: USD as exact decimal dollars, the
// others as integers.
func format(u budget.Unit, v int64) string {
	if u == budget.USD {
		return pricing.FormatUSD(v)
	}
	return strconv.FormatInt(v, 10)
}

func (h *api) budgets(w http.ResponseWriter, r *http.Request) {
	params, err := adminapi.Params(r.URL.Query(), "scope", "format")
	if err != nil {
		fail(w, r, err)
		return
	}
	var only *budget.Scope
	if v, ok := params["scope"]; ok {
		s, err := budget.ParseScope(v)
		if err != nil {
			fail(w, r, err)
			return
		}
		only = &s
	}
	asCSV := false
	switch params["format"] {
	case "", "json":
	case "csv":
		asCSV = true
	default:
		fail(w, r, fmt.Errorf("format %q: want json or csv", params["format"]))
		return
	}
	p := adminapi.RequestPrincipal(r)
	visible := BudgetVisible(p, h.o.KeyTeam)
	if only != nil && !visible(*only) {
		adminapi.Forbidden(w, p, fmt.Sprintf("it cannot read the budgets of %s", only))
		return
	}
	keep := visible
	if only != nil {
		keep = func(s budget.Scope) bool { return s == *only }
	}
	cfg := h.o.Budgets()
	now := h.o.Now()
	uses, err := Budgets(r.Context(), h.o.Store, cfg, now, keep)
	if err != nil {
		storeError(w, err)
		return
	}
	SortBudgets(uses)
	loc := time.UTC
	if cfg != nil && cfg.Location != nil {
		loc = cfg.Location
	}
	out := make([]budgetJSON, len(uses))
	for i := range uses {
		u := &uses[i]
		unit := u.Limit.Unit
		b := budgetJSON{
			Scope: u.Scope.String(), Unit: unit.String(), Per: u.Limit.Per.String(),
			Limit: format(unit, u.Limit.Max), Used: format(unit, u.Used), Remaining: format(unit, max(u.Limit.Max-u.Used, 0)),
			UsedFraction: u.Fraction(u.Used), WindowStart: u.WindowStart.In(loc), WindowEnd: u.WindowEnd.In(loc),
			Forecast: format(unit, u.Forecast), ForecastFraction: u.Fraction(u.Forecast), ForecastMethod: u.Method,
			ForecastLinear: format(unit, u.Linear), Exhausted: u.Exhausted, AtRisk: u.AtRisk(),
		}
		if u.Profile != nil {
			s := format(unit, *u.Profile)
			b.ForecastProfile = &s
		}
		if u.ExhaustsAt != nil {
			t := u.ExhaustsAt.In(loc)
			b.ExhaustsAt = &t
		}
		out[i] = b
	}
	if asCSV {
		rows := [][]string{{"scope", "unit", "per", "limit", "used", "remaining", "window_start", "window_end",
			"forecast", "forecast_method", "forecast_linear", "forecast_weekday_profile", "exhausted", "exhausts_at", "at_risk"}}
		for _, b := range out {
			prof, at := "", ""
			if b.ForecastProfile != nil {
				prof = *b.ForecastProfile
			}
			if b.ExhaustsAt != nil {
				at = b.ExhaustsAt.Format(time.RFC3339)
			}
			rows = append(rows, []string{b.Scope, b.Unit, b.Per, b.Limit, b.Used, b.Remaining,
				b.WindowStart.Format(time.RFC3339), b.WindowEnd.Format(time.RFC3339),
				b.Forecast, b.ForecastMethod, b.ForecastLinear, prof, strconv.FormatBool(b.Exhausted), at, strconv.FormatBool(b.AtRisk)})
		}
		writeCSV(w, "spend-budgets", rows)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, struct {
		Now      time.Time    `json:"now"`
		Timezone string       `json:"timezone"`
		Budgets  []budgetJSON `json:"budgets"`
	}{now.In(loc), loc.String(), out})
}
