package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // budget_timezone must load the same everywhere, also in a distroless image

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/policy/budget"
)

// The fields of the budget sections.
var (
	teamFields     = []string{"budgets", "capture_bodies", "cache", "viewers"}
	scopeFields    = []string{"budgets"}
	sessionFields  = []string{"budgets", "ttl"}
	budgetFields   = []string{"usd", "tokens", "requests", "concurrent", "per", "when_short"}
	whenShorts     = []string{"refuse", "fit"}
	budgetUnits    = []string{"usd", "tokens", "requests", "concurrent"}
	captureFields  = []string{"max_bytes"}
	failModes      = []string{"closed", "open"}
	exemptible     = []string{EndpointCountTokens, EndpointModels}
	windowNames    = []string{"minute", "hour", "day", "week", "month", "session"}
	defaultExempts = []string{EndpointCountTokens, EndpointModels}
)

// Endpoint names for BudgetExempt and BudgetInput.Endpoint.
const (
	EndpointMessages    = "messages"
	EndpointCountTokens = "count_tokens"
	EndpointModels      = "models"
)

// MaxCaptureBytes caps capture_bodies.max_bytes: 1 MiB.
const MaxCaptureBytes = 1 << 20

// maxCount bounds token, request and concurrency limits, so that the Redis
// ledger's Lua arithmetic on them stays exact.
const maxCount = 1_000_000_000_000_000

// minSessionTTL bounds sessions.ttl from below.
const minSessionTTL = time.Minute

// budgetSections remembers the root-level budget sections for the checks
// that need the keys.
type budgetSections struct {
	exempt bool                  // budget_exempt was given
	named  map[string][]namedRef // teams, users, projects: the entries, for warnings
	// viewers are the teams' viewer tokens decoded so far.
	viewers viewerSeen
}

// namedRef is an entry of teams, users or projects.
type namedRef struct {
	name string
	key  *yaml.Node
}

// budgetSection decodes a root field of the budget sections. It reports
// whether name was one of them.
func (d *decoder) budgetSection(p *Policy, s *budgetSections, name string, key, val *yaml.Node) bool {
	switch name {
	case "budget_timezone":
		p.Budgets.Location = d.timezone(val)
	case "budget_fail_mode":
		if v, ok := d.nonEmptyStr(val, name); ok {
			m, err := budget.ParseFailMode(v)
			if err != nil {
				d.errorf(deref(val), name, "must be closed or open, not %q%s", v, didYouMean(v, failModes))
				return true
			}
			p.Budgets.FailMode = m
		}
	case "budget_when_short":
		p.Budgets.WhenShort = d.whenShortValue(val, name)
	case "budget_fit_floor":
		p.Budgets.FitFloor = d.fitFloor(val)
	case "budget_exempt":
		s.exempt = true
		p.BudgetExempt = d.exemptList(val)
	case "teams":
		p.Teams = map[string]*Team{}
		d.named(s, name, val, teamFields, budget.ScopeTeam, func(entry string, field string, fv *yaml.Node, path string) {
			t := p.Teams[entry]
			if t == nil {
				t = &Team{Name: entry}
				p.Teams[entry] = t
			}
			switch field {
			case "capture_bodies":
				t.CaptureBodies = d.captureBodies(fv, path)
			case "cache":
				t.Cache, t.CacheSet = d.cache(fv, path), true
			case "viewers":
				p.Viewers = append(p.Viewers, d.viewers(fv, path, entry, &s.viewers)...)
			}
		})
	case "users":
		d.named(s, name, val, scopeFields, budget.ScopeUser, nil)
	case "projects":
		d.named(s, name, val, scopeFields, budget.ScopeProject, nil)
	case "sessions":
		d.fields(val, name, sessionFields, func(field string, fk, fv *yaml.Node) {
			switch field {
			case "budgets":
				d.setBudgets(budget.Scope{Kind: budget.ScopeSession}, fv, "sessions.budgets", true)
			case "ttl":
				p.Budgets.SessionTTL = d.sessionTTL(fv)
			}
		})
	case "global":
		d.fields(val, name, scopeFields, func(field string, fk, fv *yaml.Node) {
			d.setBudgets(budget.Global, fv, "global.budgets", false)
		})
	default:
		return false
	}
	return true
}

// named walks teams, users or projects: a mapping of names to entries with
// budgets and, for teams, more fields, which fn decodes.
func (d *decoder) named(s *budgetSections, section string, n *yaml.Node, known []string, kind budget.ScopeKind,
	fn func(entry, field string, fv *yaml.Node, path string)) {
	if s.named == nil {
		s.named = map[string][]namedRef{}
	}
	d.entries(n, section, func(name string, key, val *yaml.Node) {
		path := section + "." + name
		if name == "" {
			d.errorf(key, path, "must not be empty")
			return
		}
		s.named[section] = append(s.named[section], namedRef{name: name, key: key})
		if fn != nil {
			fn(name, "", nil, path)
		}
		d.fields(val, path, known, func(field string, fk, fv *yaml.Node) {
			if field == "budgets" {
				d.setBudgets(budget.Scope{Kind: kind, Name: name}, fv, path+".budgets", false)
				return
			}
			if fn != nil {
				fn(name, field, fv, path+"."+field)
			}
		})
	})
}

// setBudgets decodes and records the limits of a scope.
func (d *decoder) setBudgets(s budget.Scope, n *yaml.Node, path string, session bool) {
	limits, whens := d.budgetList(n, path, session)
	d.recordBudgets(s, limits, whens)
}

// recordBudgets records the limits of a scope and their when_short.
func (d *decoder) recordBudgets(s budget.Scope, limits []budget.Limit, whens []budget.WhenShort) {
	if len(limits) == 0 {
		return
	}
	for i, w := range whens {
		if w != budget.Inherit {
			if d.whenShort == nil {
				d.whenShort = map[budget.LimitRef]budget.WhenShort{}
			}
			d.whenShort[budget.LimitRef{Scope: s, Unit: limits[i].Unit, Per: limits[i].Per}] = w
		}
	}
	if d.budgets == nil {
		d.budgets = map[budget.Scope][]budget.Limit{}
	}
	d.budgets[s] = limits
}

// finishBudgets fills the policy's budget configuration once every section
// is decoded, and warns about teams, users and projects no key names.
func (d *decoder) finishBudgets(p *Policy, s *budgetSections) {
	p.Budgets.Limits = d.budgets
	p.Budgets.LimitWhenShort = d.whenShort
	d.checkViewers(p, &s.viewers)
	if !s.exempt {
		p.BudgetExempt = slices.Clone(defaultExempts)
	}
	used := map[string]map[string]bool{"teams": {}, "users": {}, "projects": {}}
	for _, k := range p.Keys {
		used["teams"][k.Team] = true
		used["users"][k.User] = true
		used["projects"][k.Project] = true
	}
	field := map[string]string{"teams": "team", "users": "user", "projects": "project"}
	for _, section := range []string{"teams", "users", "projects"} {
		for _, ref := range s.named[section] {
			if !used[section][ref.name] {
				d.warnf(ref.key, section+"."+ref.name, "no key has %s: %s, so this entry applies to no request", field[section], ref.name)
			}
		}
	}
}

// budgetList decodes a sequence of budgets, and each one's when_short.
// session allows per: session.
func (d *decoder) budgetList(n *yaml.Node, path string, session bool) ([]budget.Limit, []budget.WhenShort) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a sequence of budgets, such as [{usd: 20, per: day}, {concurrent: 8}], got %s", describe(n))
		return nil, nil
	}
	var out []budget.Limit
	var whens []budget.WhenShort
	first := map[budget.Limit]*yaml.Node{} // by unit and window, Max zero
	for i, item := range n.Content {
		item = deref(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		l, when, ok := d.budgetItem(item, ipath, session)
		if !ok {
			continue
		}
		id := budget.Limit{Unit: l.Unit, Per: l.Per}
		if prev, dup := first[id]; dup {
			what := l.Unit.String()
			if l.Per != budget.NoWindow {
				what += " per " + l.Per.String()
			}
			d.errorf(item, ipath, "a second %s budget in this scope (the first is at line %d); keep one", what, prev.Line)
			continue
		}
		first[id] = item
		out = append(out, l)
		whens = append(whens, when)
	}
	return out, whens
}

// budgetItem decodes one budget: one unit with its amount, and per.
func (d *decoder) budgetItem(n *yaml.Node, path string, session bool) (budget.Limit, budget.WhenShort, bool) {
	var (
		l                  budget.Limit
		when               budget.WhenShort
		unitKeys           []*yaml.Node
		unitVal, perKey    *yaml.Node
		perVal, whenKey    *yaml.Node
		whenVal            *yaml.Node
		errs               = len(d.errs)
		unitName, perValue string
	)
	ok := d.fields(n, path, budgetFields, func(field string, fk, fv *yaml.Node) {
		if field == "per" {
			perKey, perVal = fk, deref(fv)
			return
		}
		if field == "when_short" {
			whenKey, whenVal = fk, fv
			return
		}
		unitKeys = append(unitKeys, fk)
		if len(unitKeys) == 1 {
			unitName, unitVal = field, deref(fv)
		}
	})
	if !ok || len(d.errs) > errs {
		return l, when, false
	}
	switch len(unitKeys) {
	case 0:
		d.errorf(n, path, "a budget needs a unit: one of usd, tokens, requests or concurrent, as in {usd: 20, per: day} or {concurrent: 8}")
		return l, when, false
	case 1:
	default:
		d.errorf(unitKeys[1], path, "a budget has one unit, but this one has %s and %s; write one budget for each, as in [{%s: ..., per: day}, {%s: ..., per: day}]",
			unitKeys[0].Value, unitKeys[1].Value, unitKeys[0].Value, unitKeys[1].Value)
		return l, when, false
	}
	l.Unit, _ = budget.ParseUnit(unitName)
	upath := path + "." + unitName
	if l.Unit == budget.USD {
		l.Max, ok = d.usdAmount(unitVal, upath)
	} else {
		l.Max, ok = d.countAmount(unitVal, upath, l.Unit)
	}
	if !ok {
		return l, when, false
	}
	if whenKey != nil {
		if l.Unit != budget.USD && l.Unit != budget.Tokens {
			d.errorf(whenKey, path+".when_short", "when_short applies to usd and tokens budgets, which a lower max_tokens can fit; a %s budget always refuses", l.Unit)
			return l, when, false
		}
		if when = d.whenShortValue(whenVal, path+".when_short"); when == budget.Inherit {
			return l, when, false
		}
	}

	windows := budget.Windows(l.Unit)
	var allowed []string
	for _, w := range windows {
		if w != budget.Session || session {
			allowed = append(allowed, w.String())
		}
	}
	switch {
	case l.Unit == budget.Concurrent && perKey != nil:
		d.errorf(perKey, path+".per", "a concurrent budget limits the requests in flight at once and takes no per; remove it")
		return l, when, false
	case l.Unit == budget.Concurrent:
		return l, when, true
	case perKey == nil:
		d.errorf(n, path, "per is required for a %s budget: one of %s", l.Unit, strings.Join(allowed, ", "))
		return l, when, false
	}
	perValue, ok = d.nonEmptyStr(perVal, path+".per")
	if !ok {
		return l, when, false
	}
	w, err := budget.ParseWindow(perValue)
	if err != nil {
		d.errorf(perVal, path+".per", "unknown window %q%s", perValue,
			didYouMeanOr(perValue, windowNames, "; use one of "+strings.Join(allowed, ", ")))
		return l, when, false
	}
	l.Per = w
	switch {
	case w == budget.Session && !session:
		d.errorf(perVal, path+".per", "per: session belongs under sessions: (sessions: {budgets: [{usd: 5, per: session}]}); here use one of %s", strings.Join(allowed, ", "))
		return l, when, false
	case !slices.Contains(windows, w):
		d.errorf(perVal, path+".per", "%s budgets cannot be per %s: rolling minute and hour windows exist for requests and tokens; use one of %s",
			l.Unit, w, strings.Join(allowed, ", "))
		return l, when, false
	}
	return l, when, true
}

// usdAmount decodes a positive number of USD, exactly.
func (d *decoder) usdAmount(n *yaml.Node, path string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" && n.ShortTag() != "!!float" {
		d.errorf(n, path, "expected a number of USD, such as 20 or 0.50, got %s", describe(n))
		return 0, false
	}
	v, err := budget.ParseUSD(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil {
		d.errorf(n, path, "%v", err)
		return 0, false
	}
	return v, true
}

// countAmount decodes a positive whole number of tokens, requests or
// concurrent requests.
func (d *decoder) countAmount(n *yaml.Node, path string, u budget.Unit) (int64, bool) {
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil:
		d.errorf(n, path, "expected a whole number of %s, such as %s, got %s", u, map[budget.Unit]string{
			budget.Tokens: "5000000", budget.Requests: "600", budget.Concurrent: "8"}[u], describe(n))
		return 0, false
	case v <= 0:
		d.errorf(n, path, "must be positive")
		return 0, false
	case v > maxCount:
		d.errorf(n, path, "is too large; the limit is %d", int64(maxCount))
		return 0, false
	}
	return v, true
}

// timezone decodes budget_timezone: an IANA zone name.
func (d *decoder) timezone(n *yaml.Node) *time.Location {
	s, ok := d.nonEmptyStr(n, "budget_timezone")
	if !ok {
		return nil
	}
	n = deref(n)
	if s == "Local" {
		d.errorf(n, "budget_timezone", "Local depends on the machine; name the zone, such as Europe/Berlin or UTC")
		return nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		d.errorf(n, "budget_timezone", "unknown time zone %q; use an IANA name such as Europe/Berlin, America/New_York or UTC", s)
		return nil
	}
	if loc == time.UTC {
		return nil // nil is UTC, the default
	}
	return loc
}

// exemptList decodes budget_exempt: endpoints that no budget counts.
func (d *decoder) exemptList(n *yaml.Node) []string {
	n = deref(n)
	out := []string{}
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "budget_exempt", "expected a sequence of endpoints (%s), got %s", strings.Join(exemptible, ", "), describe(n))
		return out
	}
	for _, item := range n.Content {
		item = deref(item)
		s, ok := d.nonEmptyStr(item, "budget_exempt")
		switch {
		case !ok:
		case s == EndpointMessages:
			d.errorf(item, "budget_exempt", "messages cannot be exempt: it is what budgets are for")
		case !slices.Contains(exemptible, s):
			d.errorf(item, "budget_exempt", "unknown endpoint %q%s", s, didYouMeanOr(s, exemptible, "; exemptible endpoints: "+strings.Join(exemptible, ", ")))
		case slices.Contains(out, s):
			d.errorf(item, "budget_exempt", "%s appears more than once", s)
		default:
			out = append(out, s)
		}
	}
	return out
}

// sessionTTL decodes sessions.ttl, a duration such as 24h.
func (d *decoder) sessionTTL(n *yaml.Node) time.Duration {
	s, ok := d.nonEmptyStr(n, "sessions.ttl")
	if !ok {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < minSessionTTL {
		d.errorf(deref(n), "sessions.ttl", "expected a duration of at least a minute, such as 24h or 90m, got %q", s)
		return 0
	}
	return v
}

// captureBodies decodes {max_bytes: N}.
func (d *decoder) captureBodies(n *yaml.Node, path string) int {
	var max int
	seen := false
	ok := d.fields(n, path, captureFields, func(field string, fk, fv *yaml.Node) {
		seen = true
		fv = deref(fv)
		v, err := strconv.Atoi(strings.ReplaceAll(fv.Value, "_", ""))
		switch {
		case fv.Kind != yaml.ScalarNode || fv.ShortTag() != "!!int" || err != nil:
			d.errorf(fv, path+".max_bytes", "expected a whole number of bytes, such as 65536, got %s", describe(fv))
		case v < 0:
			d.errorf(fv, path+".max_bytes", "must not be negative; 0 captures nothing")
		case v > MaxCaptureBytes:
			d.warnf(fv, path+".max_bytes", "%d is above the cap of %d bytes (1 MiB); %d applies", v, MaxCaptureBytes, MaxCaptureBytes)
			max = MaxCaptureBytes
		default:
			max = v
		}
	})
	if ok && !seen {
		d.errorf(deref(n), path, "max_bytes is required: the size cap of each captured body, such as {max_bytes: 65536}")
	}
	return max
}

// whenShortValue decodes refuse or fit; Inherit after an error.
func (d *decoder) whenShortValue(n *yaml.Node, path string) budget.WhenShort {
	v, ok := d.nonEmptyStr(n, path)
	if !ok {
		return budget.Inherit
	}
	w, err := budget.ParseWhenShort(v)
	if err != nil {
		d.errorf(deref(n), path, "must be refuse or fit, not %q%s", v, didYouMean(v, whenShorts))
		return budget.Inherit
	}
	return w
}

// maxFitFloor bounds budget_fit_floor: the largest output of current models.
const maxFitFloor = 128_000

// fitFloor decodes budget_fit_floor: a whole number of output tokens.
func (d *decoder) fitFloor(n *yaml.Node) int64 {
	n = deref(n)
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil:
		d.errorf(n, "budget_fit_floor", "expected a whole number of output tokens, such as 1024, got %s", describe(n))
	case v < 1 || v > maxFitFloor:
		d.errorf(n, "budget_fit_floor", "must be between 1 and %d output tokens", maxFitFloor)
	default:
		return v
	}
	return 0
}
