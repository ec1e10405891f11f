package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// budgetDoc is a valid policy with two providers, a route over both, two
// keys, and the given lines appended.
func budgetDoc(lines ...string) []byte {
	return doc(append([]string{
		"version: 1",
		"providers:",
		"  a: {type: anthropic, api_key: '${K}'}",
		"  b: {type: anthropic, api_key: '${K}', budgets: [{usd: 2000, per: month}]}",
		"routes:",
		"  r: {chain: [a, b], capture_bodies: {max_bytes: 4096}}",
		"keys:",
		"  - {id: k, sha256: " + hashK + ", user: alice, team: platform, project: web,",
		"     budgets: [{usd: 20, per: day}, {tokens: 5_000_000, per: day}, {concurrent: 8}]}",
		"  - {id: j, sha256: " + hashJ + ", team: data}",
	}, lines...)...)
}

func parseBudgets(t *testing.T, lines ...string) *Policy {
	t.Helper()
	p, err := Parse("p.yaml", budgetDoc(lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func usd(s string) int64 {
	v, err := budget.ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestBudgetsSection(t *testing.T) {
	p := parseBudgets(t,
		"budget_timezone: Europe/Berlin",
		"budget_fail_mode: open",
		"budget_exempt: [count_tokens]",
		"teams:",
		"  platform:",
		"    budgets: [{usd: 500, per: month}, {requests: 600, per: minute}, {concurrent: 50}]",
		"    capture_bodies: {max_bytes: 65536}",
		"  research: {capture_bodies: {max_bytes: 2000000}}",
		"users: {alice: {budgets: [{usd: 0.5, per: week}]}}",
		"projects: {web: {budgets: [{tokens: 100000, per: hour}]}}",
		"sessions: {ttl: 12h, budgets: [{usd: 5, per: session}, {requests: 100, per: minute}]}",
		"global: {budgets: [{requests: 10000, per: minute}]}",
	)
	want := map[budget.Scope][]budget.Limit{
		{Kind: budget.ScopeKey, Name: "k"}: {
			{Unit: budget.USD, Per: budget.Day, Max: usd("20")},
			{Unit: budget.Tokens, Per: budget.Day, Max: 5_000_000},
			{Unit: budget.Concurrent, Max: 8},
		},
		{Kind: budget.ScopeProvider, Name: "b"}: {{Unit: budget.USD, Per: budget.Month, Max: usd("2000")}},
		{Kind: budget.ScopeTeam, Name: "platform"}: {
			{Unit: budget.USD, Per: budget.Month, Max: usd("500")},
			{Unit: budget.Requests, Per: budget.Minute, Max: 600},
			{Unit: budget.Concurrent, Max: 50},
		},
		{Kind: budget.ScopeUser, Name: "alice"}:  {{Unit: budget.USD, Per: budget.Week, Max: usd("0.5")}},
		{Kind: budget.ScopeProject, Name: "web"}: {{Unit: budget.Tokens, Per: budget.Hour, Max: 100_000}},
		{Kind: budget.ScopeSession}:              {{Unit: budget.USD, Per: budget.Session, Max: usd("5")}, {Unit: budget.Requests, Per: budget.Minute, Max: 100}},
		budget.Global:                            {{Unit: budget.Requests, Per: budget.Minute, Max: 10_000}},
	}
	if diff := cmp.Diff(want, p.Budgets.Limits); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
	if p.Budgets.Location.String() != "Europe/Berlin" || p.Budgets.FailMode != budget.FailOpen || p.Budgets.SessionTTL != 12*time.Hour {
		t.Errorf("Budgets = %+v", p.Budgets)
	}
	if diff := cmp.Diff([]string{"count_tokens"}, p.BudgetExempt); diff != "" {
		t.Errorf("BudgetExempt (-want +got):\n%s", diff)
	}
	if got := strs(p.Warnings); !cmp.Equal(got, []string{
		"p.yaml:18:3: teams.research: no key has team: research, so this entry applies to no request",
		"p.yaml:18:42: teams.research.capture_bodies.max_bytes: 2000000 is above the cap of 1048576 bytes (1 MiB); 1048576 applies",
	}) {
		t.Errorf("warnings: %q", got)
	}

	// Capture: the larger of route and team, capped.
	r := p.Routes["r"]
	for _, tt := range []struct {
		route *Route
		team  string
		want  int
	}{
		{r, "platform", 65536}, {r, "data", 4096}, {r, "", 4096}, {nil, "platform", 65536},
		{nil, "research", MaxCaptureBytes}, {nil, "nobody", 0}, {&Route{CaptureBodies: 5 << 20}, "", MaxCaptureBytes},
	} {
		if got := p.CaptureLimit(tt.route, tt.team); got != tt.want {
			t.Errorf("CaptureLimit(%v, %q) = %d, want %d", tt.route, tt.team, got, tt.want)
		}
	}
}

func TestBudgetsDefaults(t *testing.T) {
	p := parseBudgets(t)
	if p.Budgets.Location != nil || p.Budgets.FailMode != budget.FailClosed || p.Budgets.SessionTTL != 0 {
		t.Errorf("Budgets = %+v; want UTC, closed, the default TTL", p.Budgets)
	}
	if diff := cmp.Diff([]string{"count_tokens", "models"}, p.BudgetExempt); diff != "" {
		t.Errorf("BudgetExempt (-want +got):\n%s", diff)
	}
	if p := parseBudgets(t, "budget_exempt: []", "budget_timezone: UTC"); len(p.BudgetExempt) != 0 || p.Budgets.Location != nil {
		t.Errorf("empty budget_exempt: %q, UTC: %v", p.BudgetExempt, p.Budgets.Location)
	}
	def, err := Default(LoadOptions{LookupEnv: anyEnv})
	if err != nil || len(def.Budgets.Limits) != 0 {
		t.Errorf("the default policy has budgets: %v %v", def.Budgets.Limits, err)
	}
}

func TestBudgetsErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{
			"no unit",
			[]string{"global: {budgets: [{per: day}]}"},
			[]string{"p.yaml:11:20: global.budgets[0]: a budget needs a unit: one of usd, tokens, requests or concurrent, as in {usd: 20, per: day} or {concurrent: 8}"},
		},
		{
			"two units",
			[]string{"global: {budgets: [{usd: 5, tokens: 100, per: day}]}"},
			[]string{"p.yaml:11:29: global.budgets[0]: a budget has one unit, but this one has usd and tokens; write one budget for each, as in [{usd: ..., per: day}, {tokens: ..., per: day}]"},
		},
		{
			"window not valid for the unit",
			[]string{"teams: {platform: {budgets: [{usd: 5, per: minute}]}}"},
			[]string{"p.yaml:11:44: teams.platform.budgets[0].per: usd budgets cannot be per minute: rolling minute and hour windows exist for requests and tokens; use one of day, week, month"},
		},
		{
			"session outside sessions",
			[]string{"users: {alice: {budgets: [{requests: 5, per: session}]}}"},
			[]string{"p.yaml:11:46: users.alice.budgets[0].per: per: session belongs under sessions: (sessions: {budgets: [{usd: 5, per: session}]}); here use one of minute, hour, day, week, month"},
		},
		{
			"unknown window with a hint",
			[]string{"global: {budgets: [{requests: 5, per: mintue}]}"},
			[]string{`p.yaml:11:39: global.budgets[0].per: unknown window "mintue" (did you mean "minute"?)`},
		},
		{
			"per missing and per on concurrent",
			[]string{"global: {budgets: [{tokens: 5}, {concurrent: 2, per: day}]}"},
			[]string{
				"p.yaml:11:20: global.budgets[0]: per is required for a tokens budget: one of minute, hour, day, week, month",
				"p.yaml:11:49: global.budgets[1].per: a concurrent budget limits the requests in flight at once and takes no per; remove it",
			},
		},
		{
			"amounts",
			[]string{"global:", "  budgets:", "    - {usd: 0, per: day}", "    - {usd: -1, per: week}", "    - {usd: 0.0000000000001, per: month}",
				"    - {usd: '5', per: day}", "    - {tokens: 1.5, per: day}", "    - {requests: 0, per: day}", "    - {concurrent: 1e3}"},
			[]string{
				"p.yaml:13:13: global.budgets[0].usd: 0: an amount of USD must be positive",
				"p.yaml:14:13: global.budgets[1].usd: -1: an amount of USD must be positive",
				"p.yaml:15:13: global.budgets[2].usd: 0.0000000000001 USD is more precise than one pico-USD (twelve decimals)",
				"p.yaml:16:13: global.budgets[3].usd: expected a number of USD, such as 20 or 0.50, got a string",
				"p.yaml:17:16: global.budgets[4].tokens: expected a whole number of tokens, such as 5000000, got a number",
				"p.yaml:18:18: global.budgets[5].requests: must be positive",
				"p.yaml:19:20: global.budgets[6].concurrent: expected a whole number of concurrent, such as 8, got a number",
			},
		},
		{
			"duplicate unit and window",
			[]string{"global: {budgets: [{usd: 5, per: day}, {usd: 6, per: day}, {usd: 7, per: week}]}"},
			[]string{"p.yaml:11:40: global.budgets[1]: a second usd per day budget in this scope (the first is at line 11); keep one"},
		},
		{
			"unknown budget field",
			[]string{"global: {budgets: [{dollars: 5, per: day}]}"},
			[]string{`p.yaml:11:21: global.budgets[0]: unknown field "dollars"; known fields: usd, tokens, requests, concurrent, per, when_short`},
		},
		{
			"timezone, fail mode, exempt, ttl",
			[]string{"budget_timezone: Europe/Berlln", "budget_fail_mode: opne", "budget_exempt: [messages, models, models, cont_tokens]",
				"sessions: {ttl: 10s}"},
			[]string{
				`p.yaml:11:18: budget_timezone: unknown time zone "Europe/Berlln"; use an IANA name such as Europe/Berlin, America/New_York or UTC`,
				`p.yaml:12:19: budget_fail_mode: must be closed or open, not "opne" (did you mean "open"?)`,
				"p.yaml:13:17: budget_exempt: messages cannot be exempt: it is what budgets are for",
				"p.yaml:13:35: budget_exempt: models appears more than once",
				`p.yaml:13:43: budget_exempt: unknown endpoint "cont_tokens" (did you mean "count_tokens"?)`,
				`p.yaml:14:17: sessions.ttl: expected a duration of at least a minute, such as 24h or 90m, got "10s"`,
			},
		},
		{
			"local timezone",
			[]string{"budget_timezone: Local"},
			[]string{"p.yaml:11:18: budget_timezone: Local depends on the machine; name the zone, such as Europe/Berlin or UTC"},
		},
		{
			"capture_bodies",
			[]string{"teams: {data: {capture_bodies: {max_bytes: -1}}, platform: {capture_bodies: {}}, x: {capture_bodies: 5}}"},
			[]string{
				"p.yaml:11:44: teams.data.capture_bodies.max_bytes: must not be negative; 0 captures nothing",
				"p.yaml:11:77: teams.platform.capture_bodies: max_bytes is required: the size cap of each captured body, such as {max_bytes: 65536}",
				"p.yaml:11:102: teams.x.capture_bodies: expected a mapping with fields max_bytes, got an integer",
			},
		},
		{
			"when_short",
			[]string{"budget_when_short: fitt", "budget_fit_floor: 0",
				"global: {budgets: [{usd: 5, per: day, when_short: shrink}, {requests: 5, per: day, when_short: fit}, {tokens: 5, per: day, when_short: [fit]}]}"},
			[]string{
				`p.yaml:11:20: budget_when_short: must be refuse or fit, not "fitt" (did you mean "fit"?)`,
				"p.yaml:12:19: budget_fit_floor: must be between 1 and 128000 output tokens",
				`p.yaml:13:51: global.budgets[0].when_short: must be refuse or fit, not "shrink"`,
				"p.yaml:13:84: global.budgets[1].when_short: when_short applies to usd and tokens budgets, which a lower max_tokens can fit; a requests budget always refuses",
				"p.yaml:13:136: global.budgets[2].when_short: expected a string, got a sequence",
			},
		},
		{
			"budgets not a sequence",
			[]string{"teams: {platform: {budgets: {usd: 5, per: day}}}"},
			[]string{"p.yaml:11:29: teams.platform.budgets: expected a sequence of budgets, such as [{usd: 20, per: day}, {concurrent: 8}], got a mapping"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", budgetDoc(tt.lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBudgetRequest(t *testing.T) {
	p := parseBudgets(t,
		"teams: {platform: {budgets: [{usd: 500, per: month}]}}",
		"sessions: {budgets: [{requests: 100, per: minute}]}",
		"global: {budgets: [{requests: 10000, per: minute}]}",
	)
	k, _ := p.Authenticate("k")
	in := BudgetInput{RequestID: "req-1", Key: k, Route: p.Routes["r"], Session: "sess", Endpoint: EndpointMessages,
		Model: "claude-sonnet-4-5", BodyBytes: 30_000, MaxTokens: 4_000}
	req, err := p.BudgetRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	var scopes []string
	for _, sl := range req.Scopes {
		scopes = append(scopes, sl.Scope.String())
	}
	if diff := cmp.Diff([]string{"key:k", "team:platform", "provider:b", "session:sess", "global"}, scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	price, _ := pricing.Embedded().Lookup("anthropic", "claude-sonnet-4-5")
	if want := budget.WorstCaseCost(price, 30_000, 4_000); req.CostPicoUSD != want || req.Tokens != 34_000 || req.Exempt || req.ID != "req-1" {
		t.Errorf("request = cost %d tokens %d exempt %v; want cost %d, 34000 tokens", req.CostPicoUSD, req.Tokens, req.Exempt, want)
	}
	// Images and tools count by Anthropic's sizing, not by their bytes.
	in2 := in
	in2.Media = budget.Media{Images: 2, Base64Bytes: 20_000, Tools: 3}
	if req, _ := p.BudgetRequest(in2); req.Tokens != 10_000+2*budget.MaxImageTokens+budget.ToolPromptTokens+4_000 {
		t.Errorf("media: %d tokens", req.Tokens)
	}

	// Without max_tokens, the largest output is reserved.
	in2 = in
	in2.MaxTokens = 0
	if req, _ := p.BudgetRequest(in2); req.Tokens != 30_000+budget.UnknownMaxTokens {
		t.Errorf("no max_tokens: %d tokens", req.Tokens)
	}
	// n choices (OpenAI's n): each may take max_tokens of output, the input
	// counts once.
	in2 = in
	in2.Choices = 3
	if req, _ := p.BudgetRequest(in2); req.Tokens != 30_000+3*4_000 || req.CostPicoUSD != budget.WorstCaseCost(price, 30_000, 12_000) {
		t.Errorf("3 choices: %d tokens, cost %d", req.Tokens, req.CostPicoUSD)
	}
	// Exempt endpoints and free endpoints.
	for ep, exempt := range map[string]bool{EndpointCountTokens: true, EndpointModels: true} {
		in2 := in
		in2.Endpoint = ep
		if req, err := p.BudgetRequest(in2); err != nil || req.Exempt != exempt || req.CostPicoUSD != 0 {
			t.Errorf("%s: %+v, %v", ep, req, err)
		}
	}
	p2 := parseBudgets(t, "budget_exempt: []")
	in2 = in
	in2.Endpoint, in2.Key = EndpointCountTokens, k
	if req, err := p2.BudgetRequest(in2); err != nil || req.Exempt || req.CostPicoUSD != 0 || len(req.Scopes) == 0 {
		t.Errorf("count_tokens, not exempt: %+v, %v", req, err)
	}

	// An unpriced model is refused when a USD budget applies, not otherwise.
	in2 = in
	in2.Model = "my-secret-model"
	if _, err := p.BudgetRequest(in2); !errors.Is(err, pricing.ErrUnpriced) {
		t.Errorf("unpriced model with a USD budget: %v, want ErrUnpriced", err)
	}
	j, _ := p.Authenticate("j")
	in2.Key, in2.Route = j, &Route{Slug: "x", Chain: []string{"a"}}
	if req, err := p.BudgetRequest(in2); err != nil || req.CostPicoUSD != 0 || req.Limited(budget.USD) {
		t.Errorf("unpriced model without a USD budget: %+v, %v", req, err)
	}
}

// TestWhenShort decodes the global when_short and the per-budget override,
// and the floor.
func TestWhenShort(t *testing.T) {
	p := parseBudgets(t,
		"budget_when_short: fit",
		"budget_fit_floor: 2_048",
		"sessions: {budgets: [{usd: 5, per: session}, {tokens: 100000, per: session, when_short: refuse}, {requests: 10, per: minute}]}",
		"global: {budgets: [{usd: 100, per: day, when_short: fit}]}",
	)
	b := p.Budgets
	if b.WhenShort != budget.Fit || b.Floor() != 2048 {
		t.Errorf("when_short %v, floor %d", b.WhenShort, b.Floor())
	}
	s := b.Limits[budget.Scope{Kind: budget.ScopeSession}]
	sess := budget.Scope{Kind: budget.ScopeSession, Name: "abc"}
	if !b.Fits(sess, s[0]) || b.Fits(sess, s[1]) || b.Fits(sess, s[2]) || !b.Fits(budget.Global, b.Limits[budget.Global][0]) {
		t.Errorf("fits: session usd %v, session tokens %v, session requests %v, global %v",
			b.Fits(sess, s[0]), b.Fits(sess, s[1]), b.Fits(sess, s[2]), b.Fits(budget.Global, b.Limits[budget.Global][0]))
	}
	// By default nothing is fitted, and the floor is 1,024.
	p = parseBudgets(t, "global: {budgets: [{usd: 100, per: day}, {tokens: 5, per: day, when_short: fit}]}")
	b = p.Budgets
	g := b.Limits[budget.Global]
	if b.Fits(budget.Global, g[0]) || !b.Fits(budget.Global, g[1]) || b.Floor() != budget.DefaultFitFloor {
		t.Errorf("defaults: %v %v %d", b.Fits(budget.Global, g[0]), b.Fits(budget.Global, g[1]), b.Floor())
	}
}

// TestFitMaxTokens: the largest max_tokens whose worst case fits what a
// denying limit has left, at the dearest provider of the chain.
func TestFitMaxTokens(t *testing.T) {
	p := parseBudgets(t)
	k, _ := p.Authenticate("k")
	in := BudgetInput{RequestID: "req-1", Key: k, Route: p.Routes["r"], Endpoint: EndpointMessages,
		Model: "claude-opus-4-5", BodyBytes: 20_000, MaxTokens: 128_000}
	price, _ := pricing.Embedded().Lookup("anthropic", "claude-opus-4-5")
	five := usd("5")
	d := &budget.Denial{Limit: budget.Limit{Unit: budget.USD, Per: budget.Session, Max: five}, Used: usd("3")}
	got, err := p.FitMaxTokens(in, d)
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got >= in.MaxTokens || budget.WorstCaseCost(price, 20_000, got) > usd("2") || budget.WorstCaseCost(price, 20_000, got+1) <= usd("2") {
		t.Errorf("usd: fitted %d", got)
	}
	req, _ := p.BudgetRequest(BudgetInput{Key: k, Route: in.Route, Endpoint: EndpointMessages, Model: in.Model, BodyBytes: in.BodyBytes, MaxTokens: got})
	if req.CostPicoUSD > usd("2") {
		t.Errorf("the fitted request reserves %d, above the $2 left", req.CostPicoUSD)
	}
	// Tokens: what is left minus the input bound.
	d = &budget.Denial{Limit: budget.Limit{Unit: budget.Tokens, Per: budget.Day, Max: 50_000}, Used: 10_000}
	if got, _ := p.FitMaxTokens(in, d); got != 20_000 {
		t.Errorf("tokens: fitted %d, want 20000", got)
	}
	// Nothing left for the input.
	d.Used = 40_000
	if got, _ := p.FitMaxTokens(in, d); got != -1 {
		t.Errorf("no room: fitted %d, want -1", got)
	}
	// With 4 choices every one gets a quarter of the output that fits.
	d = &budget.Denial{Limit: budget.Limit{Unit: budget.Tokens, Per: budget.Day, Max: 50_000}, Used: 10_000}
	in4 := in
	in4.Choices = 4
	if got, _ := p.FitMaxTokens(in4, d); got != 5_000 {
		t.Errorf("tokens, 4 choices: fitted %d, want 5000", got)
	}
	d = &budget.Denial{Limit: budget.Limit{Unit: budget.USD, Per: budget.Session, Max: five}, Used: usd("3")}
	got4, _ := p.FitMaxTokens(in4, d)
	if got4 <= 0 || budget.WorstCaseCost(price, 20_000, 4*got4) > usd("2") || budget.WorstCaseCost(price, 20_000, 4*(got4+1)) <= usd("2") {
		t.Errorf("usd, 4 choices: fitted %d each", got4)
	}
	// Requests and concurrency are never fitted.
	d = &budget.Denial{Limit: budget.Limit{Unit: budget.Concurrent, Max: 1}, Used: 1}
	if got, _ := p.FitMaxTokens(in, d); got != 0 {
		t.Errorf("concurrency: fitted %d", got)
	}
}

// TestExamplePolicyBudgets checks the budget sections of the documented
// example policy.
func TestExamplePolicyBudgets(t *testing.T) {
	p, err := LoadFile("../deploy/policy.example.yaml", LoadOptions{LookupEnv: anyEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", strs(p.Warnings))
	}
	if p.Budgets.Location.String() != "Europe/Berlin" || p.Budgets.FailMode != budget.FailClosed || p.Budgets.SessionTTL != 24*time.Hour {
		t.Errorf("Budgets = %+v", p.Budgets)
	}
	req := p.Budgets.Request("r", budget.Subject{Key: "alice-laptop", User: "alice", Team: "platform", Project: "web",
		Providers: []string{"anthropic"}, Session: "s"})
	var scopes []string
	n := 0
	for _, sl := range req.Scopes {
		scopes = append(scopes, sl.Scope.String())
		n += len(sl.Limits)
	}
	want := []string{"key:alice-laptop", "user:alice", "team:platform", "provider:anthropic", "session:s", "global"}
	if diff := cmp.Diff(want, scopes); diff != "" || n != 10 {
		t.Errorf("alice's scopes (-want +got):\n%s(%d limits)", diff, n)
	}
	if got := p.CaptureLimit(p.Routes["demo"], "research"); got != 65536 {
		t.Errorf("CaptureLimit(demo, research) = %d", got)
	}
	if got := p.CaptureLimit(p.Routes["anthropic"], "research"); got != 16384 {
		t.Errorf("CaptureLimit(anthropic, research) = %d", got)
	}
}
