// Package recordgen generates realistic cost records for tests and
// benchmarks: teams of users working in Claude Code sessions (a main agent
// and subagents) on working days, plus scripts calling the API without a
// session, over a mix of models priced from the embedded catalog, with the
// outcomes, cache hits, latencies and budget outcomes a gateway sees.
//
// Generate is deterministic: the same Options give the same records.
package recordgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// Options say what to generate. Zero values take the defaults.
type Options struct {
	// Seed picks the records (0 is a seed like any other).
	Seed uint64
	// Records is how many records to make (default 1,000).
	Records int
	// End is when the last record may start (default 2026-06-01T00:00:00Z);
	// records start in the Days before it.
	End time.Time
	// Days is the span of the records (default 30).
	Days int
	// Users and Teams (defaults 200 and 10): user i is in team i mod Teams.
	Users, Teams int
}

// teamNames are the first teams' names; more are team-NN.
var teamNames = []string{"platform", "data", "research", "mobile", "web", "infra", "security", "ml", "payments", "growth"}

// TeamName is the name of team i.
func TeamName(i int) string {
	if i < len(teamNames) {
		return teamNames[i]
	}
	return fmt.Sprintf("team-%02d", i)
}

// UserName is the name of user i, KeyID its key's id.
func UserName(i int) string { return fmt.Sprintf("user-%03d", i) }

// KeyID is the key id of user i.
func KeyID(i int) string { return fmt.Sprintf("key-%03d", i) }

// model is a model with its share of requests and its usage profile.
type model struct {
	id        string
	share     float64
	maxOutput int64
}

var models = []model{
	{"claude-sonnet-4-5", 0.55, 8000},
	{"claude-haiku-4-5", 0.30, 2000},
	{"claude-opus-4-1", 0.15, 6000},
}

// routes are the routes and the provider serving each.
var routes = []struct{ route, provider string }{
	{"anthropic", "anthropic"}, {"anthropic", "anthropic"}, {"anthropic", "anthropic"},
	{"bedrock", "bedrock"}, {"vertex", "vertex"},
}

// Generate returns o.Records records, sorted by nothing in particular (as
// sessions were generated), with unique ids rec-NNNNNNN.
func Generate(o Options) []records.Record {
	if o.Records <= 0 {
		o.Records = 1000
	}
	if o.End.IsZero() {
		o.End = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Days <= 0 {
		o.Days = 30
	}
	if o.Users <= 0 {
		o.Users = 200
	}
	if o.Teams <= 0 {
		o.Teams = 10
	}
	g := &gen{o: o, rnd: rand.New(rand.NewPCG(o.Seed, 0x5eed_0016)), catalog: pricing.Embedded(), out: make([]records.Record, 0, o.Records)}
	start := o.End.Add(-time.Duration(o.Days) * 24 * time.Hour)
	for runs := 0; len(g.out) < o.Records; runs++ {
		// Every user works at least once, then users at random.
		user := runs
		if runs >= o.Users {
			user = g.rnd.IntN(o.Users)
		}
		t := g.sessionStart(start)
		if g.rnd.Float64() < 0.1 {
			g.script(user, t)
		} else {
			g.session(user, t)
		}
	}
	return g.out
}

type gen struct {
	o       Options
	rnd     *rand.Rand
	catalog *pricing.Catalog
	out     []records.Record
	seq     int
	hints   bool // the session sends request class hints
}

// sessionStart picks a start: working days five times as likely as
// weekends, and mostly working hours (UTC).
func (g *gen) sessionStart(start time.Time) time.Time {
	for {
		day := start.Add(time.Duration(g.rnd.IntN(g.o.Days)) * 24 * time.Hour)
		if wd := day.Weekday(); (wd == time.Saturday || wd == time.Sunday) && g.rnd.Float64() > 0.2 {
			continue
		}
		hour := 7 + g.rnd.Float64()*11 // 07:00 to 18:00
		if g.rnd.Float64() < 0.1 {
			hour = g.rnd.Float64() * 24
		}
		t := day.Truncate(24 * time.Hour).Add(time.Duration(hour * float64(time.Hour)))
		if t.Before(g.o.End) && !t.Before(start) {
			return t
		}
	}
}

// session adds the requests of one Claude Code session: the main agent's
// turns, some of which run subagents (some nested).
func (g *gen) session(user int, t time.Time) {
	sid := fmt.Sprintf("sess-%07d", len(g.out))
	// Half the users set CLAUDE_CODE_GATEWAY_HINT_HEADERS=1, and their
	// requests carry x-claude-code-request-class.
	g.hints = user%2 == 0
	turns := 5 + g.rnd.IntN(50)
	agents := 0
	for range turns {
		if !g.add(user, t, sid, "", "", g.pickModel()) {
			return
		}
		t = t.Add(time.Duration(5+g.rnd.IntN(90)) * time.Second)
		if g.rnd.Float64() < 0.15 { // a subagent's run
			agents++
			agent := fmt.Sprintf("%s-agent-%d", sid, agents)
			parent := ""
			if agents > 1 && g.rnd.Float64() < 0.3 {
				parent = fmt.Sprintf("%s-agent-%d", sid, agents-1)
			}
			for range 2 + g.rnd.IntN(8) {
				m := "claude-haiku-4-5"
				if g.rnd.Float64() < 0.5 {
					m = "claude-sonnet-4-5"
				}
				if !g.add(user, t, sid, agent, parent, m) {
					return
				}
				t = t.Add(time.Duration(2+g.rnd.IntN(30)) * time.Second)
			}
		}
	}
}

// script adds a run of API calls without a session.
func (g *gen) script(user int, t time.Time) {
	g.hints = false
	for range 1 + g.rnd.IntN(20) {
		if !g.add(user, t, "", "", "", g.pickModel()) {
			return
		}
		t = t.Add(time.Duration(1+g.rnd.IntN(20)) * time.Second)
	}
}

func (g *gen) pickModel() string {
	x := g.rnd.Float64()
	for _, m := range models {
		if x < m.share {
			return m.id
		}
		x -= m.share
	}
	return models[0].id
}

// add appends one record, or returns false when enough are made or t is
// past the end.
func (g *gen) add(user int, t time.Time, session, agent, parent, modelID string) bool {
	if len(g.out) >= g.o.Records || !t.Before(g.o.End) {
		return false
	}
	g.seq++
	team := TeamName(user % g.o.Teams)
	rt := routes[g.rnd.IntN(len(routes))]
	trace := session
	if trace == "" {
		trace = fmt.Sprintf("trace-%07d", g.seq)
	}
	r := records.Record{
		ID: fmt.Sprintf("rec-%07d", g.seq), Start: t.Truncate(time.Microsecond),
		TraceID: trace, SessionID: session, AgentID: agent, ParentAgentID: parent,
		KeyID: KeyID(user), User: UserName(user), Team: team, Project: "proj-" + team,
		Route: rt.route, Provider: rt.provider, Endpoint: "messages", Method: "POST", Path: "/v1/messages",
		RequestedModel: modelID, Model: modelID, Stream: session != "",
		Status: 200, Outcome: records.OutcomeOK, BudgetOutcome: "allowed", PriceCatalog: g.catalog.Version(),
	}
	var maxOut int64 = 4000
	for _, m := range models {
		if m.id == modelID {
			maxOut = m.maxOutput
		}
	}
	u := pricing.Usage{
		InputTokens:     int64(20 + g.rnd.IntN(3000)),
		CacheReadTokens: int64(g.rnd.IntN(120_000)),
		OutputTokens:    int64(30 + g.rnd.Int64N(maxOut)),
	}
	if g.rnd.Float64() < 0.3 {
		u.CacheWrite5mTokens = int64(g.rnd.IntN(20_000))
	}
	if g.rnd.Float64() < 0.05 {
		u.CacheWrite1hTokens = int64(g.rnd.IntN(40_000))
	}
	latency := 400 + math.Exp(g.rnd.NormFloat64()*0.8+8) // about 3 s, long tail
	x := g.rnd.Float64()
	switch {
	case x < 0.015: // the provider failed
		r.Status, r.Outcome, r.ErrorType = 529, records.OutcomeProviderError, "overloaded_error"
		u = pricing.Usage{}
		latency = 50 + g.rnd.Float64()*2000
	case x < 0.025: // a budget refused it
		r.Status, r.Outcome, r.ErrorType = 429, records.OutcomeDenied, "rate_limit_error"
		r.BudgetOutcome = "denied:team:" + team
		u = pricing.Usage{}
		latency = 0.2 + g.rnd.Float64()
	case x < 0.03:
		r.Status, r.Outcome, r.ErrorType = 400, records.OutcomeInvalid, "invalid_request_error"
		r.BudgetOutcome = ""
		u = pricing.Usage{}
		latency = 0.1 + g.rnd.Float64()
	case x < 0.035: // the client left
		r.Outcome, r.UsageEstimated = records.OutcomeCancelled, true
		u.OutputTokens /= 3
		latency /= 2
	case x < 0.04:
		r.Outcome, r.ErrorType = records.OutcomeIncomplete, "provider_reset"
		u.OutputTokens /= 2
	}
	price, _ := g.catalog.Lookup("anthropic", modelID)
	r.Usage = u
	r.CostPicoUSD = pricing.Cost(u, price)
	if r.Outcome == records.OutcomeOK && session == "" && g.rnd.Float64() < 0.2 {
		// A script's repeated request, answered by the response cache.
		r.CacheStatus, r.CostSavedPicoUSD, r.CostPicoUSD = "HIT", r.CostPicoUSD, 0
		r.CostSaved = pricing.FormatUSD(r.CostSavedPicoUSD)
		latency = 2 + g.rnd.Float64()*10
	}
	r.Cost = pricing.FormatUSD(r.CostPicoUSD)
	r.LatencyMS = math.Round(latency*1000) / 1000
	if r.Stream && r.Status == 200 {
		r.TTFTMS = math.Round(min(latency, 250+g.rnd.Float64()*2500)*1000) / 1000
	}
	r.End = r.Start.Add(time.Duration(r.LatencyMS * float64(time.Millisecond))).Truncate(time.Microsecond)
	if g.hints && session != "" {
		switch {
		case agent != "":
			r.RequestClass = "subagent"
		case modelID == "claude-haiku-4-5":
			r.RequestClass = "auxiliary"
		case g.rnd.Float64() < 0.05:
			r.RequestClass = "compaction"
		default:
			r.RequestClass = "main"
		}
	}
	g.out = append(g.out, r)
	return true
}
