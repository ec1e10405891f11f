package dashboard

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
)

// PageSize is how many rows a list page shows.
const PageSize = 50

// sessionRange is how far back the Sessions page looks by default.
const sessionRange = 7 * 24 * time.Hour

var pageNames = []string{"login", "error", "overview", "budgets", "records", "record", "sessions", "session"}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"usd":   usd,
		"exact": pricing.FormatUSD,
		"ms":    func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " ms" },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		// day and at format a time in its own location (the budgets'
		// timezone on the Overview and Budgets pages).
		"day": func(t time.Time) string { return t.Format("2006-01-02") },
		"at": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.Format("2006-01-02 15:04 MST")
		},
		"rfc3339": func(t time.Time) string { return t.Format(time.RFC3339) },
		"pct":     pct,
		"bar":     func(v, of int64) int { return int(min(100, pct100(v, of))) },
		"add":     func(a, b int) int { return a + b },
		"status":  statusText,
		"amount":  amount,
		// scale is the amount a budget's bars are drawn against: its
		// limit, or its forecast or use when they are over it.
		"scale": func(b Budget) int64 { return max(b.Limit, b.Forecast, b.Used) },
		"spend": func(label, id string, s Spend) any {
			return struct {
				Label, ID string
				S         Spend
			}{label, id, s}
		},
		"top": func(label, id string, rows []Top, max int64) any {
			return struct {
				Label, ID string
				Rows      []Top
				Max       int64
			}{label, id, rows, max}
		},
		"tokens": func(u pricing.Usage) int64 {
			return u.InputTokens + u.CacheReadTokens + u.CacheWrite5mTokens + u.CacheWrite1hTokens + u.OutputTokens
		},
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// usd formats pico-USD for people: cents, or four decimals below a dollar.
func usd(pico int64) string {
	v := float64(pico) / 1e12
	if v != 0 && v < 1 && v > -1 {
		return "$" + strconv.FormatFloat(v, 'f', 4, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}

// amount formats an amount of a budget's unit: usd as usd does, the others
// as integers with their unit.
func amount(unit string, v int64) string {
	if unit == "usd" {
		return usd(v)
	}
	return strconv.FormatInt(v, 10) + " " + unit
}

func pct100(v, of int64) float64 {
	if of <= 0 {
		return 0
	}
	return float64(v) * 100 / float64(of)
}

func pct(v, of int64) string {
	return strconv.FormatFloat(pct100(v, of), 'f', 1, 64) + "%"
}

// page renders page for the request's principal, buffered so that a
// template error answers 500 rather than half a page.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request, s session, page, title string, data any) {
	var buf bytes.Buffer
	err := d.pages[page].ExecuteTemplate(&buf, "layout", view{Title: title, Nav: page, Principal: s.principal, CSRF: s.csrf, Data: data})
	if err != nil {
		d.opt.Logger.Error("dashboard render", zap.String("page", page), zap.Error(err))
		d.fail(w, r, http.StatusInternalServerError, "The page could not be rendered.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes()) //nolint:errcheck
}

func (d *Dashboard) storeError(w http.ResponseWriter, r *http.Request, err error) {
	d.opt.Logger.Warn("dashboard store", zap.Error(err))
	d.fail(w, r, http.StatusInternalServerError, "The records store failed: "+err.Error())
}

// chartData is the Overview chart, as app.js reads it: days as unix seconds,
// USD per group per day (and the exact pico-USD, for tests and tools).
type chartData struct {
	Days   []int64     `json:"days"`
	Groups []string    `json:"groups"`
	USD    [][]float64 `json:"usd"`
	Pico   [][]int64   `json:"pico"`
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, s session) {
	o, err := d.insights.Overview(r.Context(), s.principal, d.opt.Now())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	var c chartData
	for _, t := range o.ByTeam.Days {
		c.Days = append(c.Days, t.Unix())
	}
	c.Groups, c.Pico = o.ByTeam.Groups, o.ByTeam.CostPicoUSD
	for _, row := range o.ByTeam.CostPicoUSD {
		usdRow := make([]float64, len(row))
		for i, v := range row {
			usdRow[i] = float64(v) / 1e12
		}
		c.USD = append(c.USD, usdRow)
	}
	topUser, topModel := int64(0), int64(0)
	if len(o.TopUsers) > 0 {
		topUser = o.TopUsers[0].CostPicoUSD
	}
	if len(o.TopModels) > 0 {
		topModel = o.TopModels[0].CostPicoUSD
	}
	d.page(w, r, s, "overview", "Overview", struct {
		O                 Overview
		Chart             chartData
		TopUser, TopModel int64
	}{o, c, topUser, topModel})
}

func (d *Dashboard) budgets(w http.ResponseWriter, r *http.Request, s session) {
	bs, err := d.insights.Budgets(r.Context(), s.principal, d.opt.Now())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	d.page(w, r, s, "budgets", "Budgets", struct{ Budgets []Budget }{bs})
}

// recordFilter is the Records page's filter: the records API's parameters
// (trace_id, key, since) and session_id, until, team, user, model and
// outcome.
type recordFilter struct {
	TraceID, Key, Session, Team, User, Model, Outcome string
	Project, Route, Provider, Class                   string
	Since, Until                                      time.Time
	SinceText, UntilText                              string
	Page                                              int
}

var recordParams = []string{"trace_id", "key", "session_id", "since", "until", "team", "user", "model", "outcome",
	"project", "route", "provider", "request_class", "page"}

func parseRecordFilter(v url.Values, p adminapi.Principal) (recordFilter, error) {
	params, err := adminapi.Params(v, recordParams...)
	if err != nil {
		return recordFilter{}, err
	}
	f := recordFilter{TraceID: params["trace_id"], Key: params["key"], Session: params["session_id"], Team: params["team"], User: params["user"],
		Model: params["model"], Outcome: params["outcome"], SinceText: params["since"], UntilText: params["until"], Page: 1,
		Project: params["project"], Route: params["route"], Provider: params["provider"], Class: params["request_class"]}
	for _, s := range []string{f.TraceID, f.Key, f.Session, f.Team, f.User, f.Model, f.Outcome, f.Project, f.Route, f.Provider, f.Class} {
		if len(s) > 256 {
			return recordFilter{}, errors.New("a filter is longer than 256 bytes")
		}
	}
	if f.Since, err = parseTime("since", f.SinceText); err != nil {
		return recordFilter{}, err
	}
	if f.Until, err = parseTime("until", f.UntilText); err != nil {
		return recordFilter{}, err
	}
	if s := params["page"]; s != "" {
		if f.Page, err = strconv.Atoi(s); err != nil || f.Page < 1 || f.Page > records.MaxQueryLimit/PageSize {
			return recordFilter{}, fmt.Errorf("page %q: want 1 to %d", s, records.MaxQueryLimit/PageSize)
		}
	}
	if !p.Admin() {
		if f.Team != "" && f.Team != p.Team {
			return recordFilter{}, errForbidden
		}
		f.Team = p.Team
	}
	return f, nil
}

var errForbidden = errors.New("forbidden")

// parseTime reads an empty string (no bound), RFC 3339, or the
// "2006-01-02T15:04" of a datetime-local input, as UTC.
func parseTime(what, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want a time such as 2026-05-01T12:00 (UTC) or RFC 3339", what, s)
}

func (f recordFilter) match(r *records.Record) bool {
	return (f.Team == "" || r.Team == f.Team) && (f.User == "" || r.User == f.User) &&
		(f.Session == "" || r.SessionID == f.Session) &&
		(f.Model == "" || r.Model == f.Model) && (f.Outcome == "" || string(r.Outcome) == f.Outcome) &&
		(f.Project == "" || r.Project == f.Project) && (f.Route == "" || r.Route == f.Route) &&
		(f.Provider == "" || r.Provider == f.Provider) && (f.Class == "" || r.RequestClass == f.Class) &&
		(f.Until.IsZero() || r.Start.Before(f.Until))
}

// query returns the URL query of f at page n.
func (f recordFilter) query(n int) string {
	v := url.Values{}
	for k, val := range map[string]string{"trace_id": f.TraceID, "key": f.Key, "session_id": f.Session, "since": f.SinceText, "until": f.UntilText,
		"team": f.Team, "user": f.User, "model": f.Model, "outcome": f.Outcome,
		"project": f.Project, "route": f.Route, "provider": f.Provider, "request_class": f.Class} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if n > 1 {
		v.Set("page", strconv.Itoa(n))
	}
	return v.Encode()
}

// pager is a list page's position.
type pager struct {
	Page, Pages, From, To, Total int
	Prev, Next                   string // URL queries; empty when none
	// PrevText and NextText name the links (Newer and Older when empty).
	PrevText, NextText string
	// Capped says the store's limit may have cut the list.
	Capped bool
}

func newPager(total, page int, capped bool, q func(int) string) pager {
	p := pager{Page: page, Total: total, Pages: max(1, (total+PageSize-1)/PageSize), Capped: capped}
	p.From = min(total, (page-1)*PageSize)
	p.To = min(total, page*PageSize)
	if page > 1 {
		p.Prev = "?" + q(page-1)
	}
	if page < p.Pages {
		p.Next = "?" + q(page+1)
	}
	return p
}

// recordList is the Records explorer. The store answers the filters of
// records.Query (trace_id, key, team, session_id, since, until; a viewer's
// team always) with its newest records.MaxQueryLimit; the page applies the
// rest (user, model, outcome, project, route, provider, request class) and
// shows PageSize a page.
func (d *Dashboard) recordList(w http.ResponseWriter, r *http.Request, s session) {
	f, err := parseRecordFilter(r.URL.Query(), s.principal)
	if errors.Is(err, errForbidden) {
		d.fail(w, r, http.StatusForbidden, "A viewer token sees its own team only.")
		return
	}
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := d.opt.Records.Query(r.Context(), records.Query{TraceID: f.TraceID, KeyID: f.Key, Team: f.Team, SessionID: f.Session,
		Since: f.Since, Until: f.Until, Limit: records.MaxQueryLimit})
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	capped := len(recs) >= records.MaxQueryLimit
	kept := recs[:0]
	for i := range recs {
		if f.match(&recs[i]) {
			kept = append(kept, recs[i])
		}
	}
	pg := newPager(len(kept), f.Page, capped, f.query)
	d.page(w, r, s, "records", "Records", struct {
		F        recordFilter
		Records  []records.Record
		P        pager
		Outcomes []records.Outcome
	}{f, kept[pg.From:pg.To], pg, outcomes})
}

var outcomes = []records.Outcome{records.OutcomeOK, records.OutcomeProviderError, records.OutcomeDenied, records.OutcomeInvalid,
	records.OutcomeCancelled, records.OutcomeIncomplete, records.OutcomeUnavailable}

// visible reports whether p may see r.
func visible(p adminapi.Principal, r *records.Record) bool { return p.Admin() || r.Team == p.Team }

// recordOne shows one record in full. Records are found through their
// trace (?trace=), which every record has and every store indexes.
func (d *Dashboard) recordOne(w http.ResponseWriter, r *http.Request, s session) {
	params, err := adminapi.Params(r.URL.Query(), "trace")
	if err != nil || params["trace"] == "" {
		d.fail(w, r, http.StatusBadRequest, "A record's page needs its trace: ?trace=<trace id>.")
		return
	}
	t, err := d.opt.Records.Trace(r.Context(), params["trace"])
	if err != nil && !errors.Is(err, records.ErrNotFound) {
		d.storeError(w, r, err)
		return
	}
	i := slices.IndexFunc(t.Requests, func(rec records.Record) bool { return rec.ID == r.PathValue("id") })
	if i < 0 {
		d.fail(w, r, http.StatusNotFound, "No such record.")
		return
	}
	rec := t.Requests[i]
	if !visible(s.principal, &rec) {
		d.fail(w, r, http.StatusForbidden, "This record belongs to another team.")
		return
	}
	full, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	d.page(w, r, s, "record", "Record "+rec.ID, struct {
		R    records.Record
		JSON string
	}{rec, string(full)})
}

// MaxSessions is the most sessions the Sessions page lists (the spend
// API's limit): the dearest of the range.
const MaxSessions = spend.MaxSessions

// sessionList lists the Claude Code sessions with records since the
// filter's time (the last 7 days by default), the dearest first, from the
// spend store: every record of the range, PageSize sessions a page.
func (d *Dashboard) sessionList(w http.ResponseWriter, r *http.Request, s session) {
	params, err := adminapi.Params(r.URL.Query(), "since", "page")
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	since, err := parseTime("since", params["since"])
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	now := d.opt.Now()
	sinceText := params["since"]
	if since.IsZero() {
		since = now.UTC().Add(-sessionRange).Truncate(time.Hour)
		sinceText = since.Format("2006-01-02T15:04")
	}
	page := 1
	if v := params["page"]; v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 || page > MaxSessions/PageSize {
			d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("page: want 1 to %d", MaxSessions/PageSize))
			return
		}
	}
	var rows []SessionSummary
	if since.Before(now) {
		if rows, err = d.insights.Sessions(r.Context(), s.principal, since, now, MaxSessions); err != nil {
			d.storeError(w, r, err)
			return
		}
	}
	q := func(n int) string {
		v := url.Values{"since": {sinceText}}
		if n > 1 {
			v.Set("page", strconv.Itoa(n))
		}
		return v.Encode()
	}
	pg := newPager(len(rows), page, false, q)
	pg.PrevText, pg.NextText = "Dearer", "Cheaper"
	d.page(w, r, s, "sessions", "Sessions", struct {
		Since string
		Rows  []SessionSummary
		P     pager
		All   bool
	}{sinceText, rows[pg.From:pg.To], pg, len(rows) < MaxSessions})
}

// agentNode is one agent of a session: its requests and its subagents,
// merged in start order.
type agentNode struct {
	ID    string
	Items []agentItem
	// CostPicoUSD and Requests add up the agent and its subagents.
	CostPicoUSD int64
	Requests    int
}

// agentItem is a request of an agent, or one of its subagents (at the
// place of the subagent's first request).
type agentItem struct {
	Record *records.Record
	Agent  *agentNode
	N      int // the request's number in the session, from 1
}

func (d *Dashboard) sessionOne(w http.ResponseWriter, r *http.Request, s session) {
	if len(r.URL.Query()) > 0 {
		d.fail(w, r, http.StatusBadRequest, "A session's page takes no parameters.")
		return
	}
	id := r.PathValue("id")
	t, err := d.opt.Records.Trace(r.Context(), id)
	if errors.Is(err, records.ErrNotFound) {
		// A Claude Code session whose requests carried their own trace ids.
		var recs []records.Record
		if recs, err = d.opt.Records.Query(r.Context(), records.Query{SessionID: id, Limit: records.MaxQueryLimit}); err == nil {
			t, err = records.NewTrace(id, recs)
		}
	}
	if errors.Is(err, records.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, "No records of this session.")
		return
	}
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	mine := t.Requests[:0]
	for i := range t.Requests {
		if visible(s.principal, &t.Requests[i]) {
			mine = append(mine, t.Requests[i])
		}
	}
	if len(mine) == 0 {
		d.fail(w, r, http.StatusForbidden, "This session belongs to another team.")
		return
	}
	t, _ = records.NewTrace(t.ID, mine)
	var sessionID string
	for _, rec := range t.Requests {
		sessionID = cmp.Or(sessionID, rec.SessionID)
	}
	d.page(w, r, s, "session", "Session "+t.ID, struct {
		T         records.Trace
		SessionID string
		Root      *agentNode
	}{t, sessionID, agentTree(t.Requests)})
}

// agentTree nests the requests of a session (in start order) by agent: the
// requests of an agent whose parent (ParentAgentID) made requests in the
// session nest under it; every other agent's, including those without an
// agent id, are the root's.
func agentTree(recs []records.Record) *agentNode {
	parent := map[string]string{}
	for _, r := range recs {
		if r.AgentID != "" && r.ParentAgentID != "" && r.ParentAgentID != r.AgentID {
			parent[r.AgentID] = cmp.Or(parent[r.AgentID], r.ParentAgentID)
		}
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.AgentID] = true
	}
	// owner returns the node an agent's requests go to: itself when it is a
	// subagent of a known agent (without a loop), else the root.
	root := &agentNode{}
	nodes := map[string]*agentNode{}
	var node func(agent string, depth int) *agentNode
	node = func(agent string, depth int) *agentNode {
		p, ok := parent[agent]
		if agent == "" || !ok || !known[p] || depth > 16 {
			return root
		}
		if n := nodes[agent]; n != nil {
			return n
		}
		n := &agentNode{ID: agent}
		nodes[agent] = n
		up := node(p, depth+1)
		up.Items = append(up.Items, agentItem{Agent: n})
		return n
	}
	for i := range recs {
		n := node(recs[i].AgentID, 0)
		n.Items = append(n.Items, agentItem{Record: &recs[i], N: i + 1})
	}
	sumAgent(root)
	return root
}

func sumAgent(n *agentNode) {
	for _, it := range n.Items {
		if it.Record != nil {
			n.Requests++
			n.CostPicoUSD += it.Record.CostPicoUSD
			continue
		}
		sumAgent(it.Agent)
		n.Requests += it.Agent.Requests
		n.CostPicoUSD += it.Agent.CostPicoUSD
	}
}

// statusText is a record's status for a table cell.
func statusText(r records.Record) string {
	s := string(r.Outcome)
	if r.Status != 0 {
		s = strconv.Itoa(r.Status) + " " + s
	}
	if r.CacheStatus == "HIT" {
		s += " · cache hit"
	}
	return s
}
