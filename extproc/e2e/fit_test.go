package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/tollgate-dev/tollgate/policy/budget"
)

// opusThinking is Claude Code 2.1.332's request shape that issue 9 item 9
// saw refused: max_tokens 128000 of claude-opus-5-5 with a thinking budget.
func opusThinking() anthropic.MessageNewParams {
	p := hello("claude-opus-5-5")
	p.MaxTokens = 128_000
	p.Thinking = anthropic.ThinkingConfigParamOfEnabled(31_999)
	return p
}

// streamed sends p as a stream, as Claude Code does (the SDK refuses a
// non-streaming request with so large a max_tokens), and reads it to the end.
func streamed(s *stack, p anthropic.MessageNewParams, opts ...option.RequestOption) error {
	st := s.client.Messages.NewStreaming(context.Background(), p, opts...)
	defer st.Close()
	for st.Next() {
	}
	return st.Err()
}

// sentLimits reads max_tokens and the thinking budget of what the provider
// received last.
func sentLimits(t *testing.T, s *stack) (maxTokens, thinking int64) {
	t.Helper()
	var b struct {
		MaxTokens int64 `json:"max_tokens"`
		Thinking  struct {
			BudgetTokens int64 `json:"budget_tokens"`
		} `json:"thinking"`
	}
	if err := json.Unmarshal(s.lastRequest(t).Body, &b); err != nil {
		t.Fatal(err)
	}
	return b.MaxTokens, b.Thinking.BudgetTokens
}

// TestFitServesWhatTheBudgetHolds is issue 9 item 9: with a $5 session
// budget, a request whose worst case is above $5 (128,000 output tokens of
// an Opus model at $75 per million) was refused before anything ran. Here
// the budget is $0.50, so that the worst case is above it at any Opus
// price ($25 or $75 per million output tokens): refused by default, and
// with when_short: fit served with a lower max_tokens and a thinking budget
// below it, which the provider sees, and the record says so.
func TestFitServesWhatTheBudgetHolds(t *testing.T) {
	session := option.WithHeader("x-claude-code-session-id", "fit-session")

	refuse := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0),
		policyTail: "sessions: {budgets: [{usd: 0.5, per: session}]}\n"})
	err := streamed(refuse, opusThinking(), session)
	if e := apiError(t, err); e.StatusCode != 429 {
		t.Fatalf("refuse: got %d %q, want 429", e.StatusCode, e.Message)
	}

	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{ledger: ledger,
		policyTail: "sessions: {budgets: [{usd: 0.5, per: session, when_short: fit}]}\n"})
	if err := streamed(s, opusThinking(), session); err != nil {
		t.Fatalf("fit: %v", err)
	}
	maxTokens, thinking := sentLimits(t, s)
	if maxTokens >= 128_000 || maxTokens < budget.DefaultFitFloor {
		t.Errorf("the provider saw max_tokens %d", maxTokens)
	}
	// The thinking budget keeps its share of max_tokens (31999/128000).
	if want := max(1024, maxTokens*31_999/128_000); thinking != want || thinking >= maxTokens {
		t.Errorf("the provider saw thinking budget %d with max_tokens %d; want %d", thinking, maxTokens, want)
	}
	r := s.records.wait(t, 1)[0]
	if r.MaxTokensFitted != maxTokens || r.ThinkingBudgetFitted != thinking || r.BudgetOutcome != "allowed" {
		t.Errorf("record: fitted %d, thinking %d, outcome %q; sent %d, %d", r.MaxTokensFitted, r.ThinkingBudgetFitted, r.BudgetOutcome, maxTokens, thinking)
	}
	// The fitted request's worst case fitted in $5: the whole session used
	// no more (the ledger checked it; here, what was settled).
	sess := budget.Scope{Kind: budget.ScopeSession, Name: "fit-session"}
	bs, err := ledger.Read(context.Background(), budget.Query{Scope: sess,
		Limits: []budget.Limit{{Unit: budget.USD, Per: budget.Session, Max: 500_000_000_000}}}, time.Now())
	if err != nil || len(bs) != 1 || bs[0].Used != r.CostPicoUSD {
		t.Errorf("session used %+v, %v; the record cost %d", bs, err, r.CostPicoUSD)
	}
}

// TestFitRefusesBelowTheFloor: when what is left cannot hold even the floor
// of output tokens, fit refuses, and says why.
func TestFitRefusesBelowTheFloor(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0),
		policyTail: "budget_when_short: fit\nsessions: {budgets: [{usd: 0.01, per: session}]}\n"})
	err := streamed(s, opusThinking(), option.WithHeader("x-claude-code-session-id", "floor"))
	e := apiError(t, err)
	if e.StatusCode != 429 || !strings.Contains(e.Message, "would leave fewer than 1025 output tokens") {
		t.Errorf("got %d %q", e.StatusCode, e.Message)
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the provider received %d requests", n)
	}
	if r := s.records.wait(t, 1)[0]; r.MaxTokensFitted != 0 || !strings.HasPrefix(r.BudgetOutcome, "denied") {
		t.Errorf("record: fitted %d, outcome %q", r.MaxTokensFitted, r.BudgetOutcome)
	}
}

// TestDenseInputStaysWithinTheCeiling is issue 9 item 7: a provider
// reporting more input than body bytes / 3 (the previous estimate) settled
// above the reservation, so spend could overshoot its ceiling. The fake's
// "-dense" model reports the most a request can honestly use: one input
// token per byte of its body, and all of max_tokens. Requests are sent until
// the budget refuses: none settles above its reservation, and the day's
// spend stays within the ceiling.
func TestDenseInputStaysWithinTheCeiling(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 0.2, per: day}, {tokens: 60000, per: day}]`})
	p := hello("claude-sonnet-4-5-dense")
	p.MaxTokens = 100
	p.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(strings.Repeat("0123456789", 300)))}
	served := 0
	for served < 100 {
		if _, err := s.client.Messages.New(context.Background(), p); err != nil {
			if e := apiError(t, err); e.StatusCode != 429 {
				t.Fatalf("request %d: %v", served, err)
			}
			break
		}
		served++
	}
	if served == 0 || served == 100 {
		t.Fatalf("%d requests served; the test wants some, then a refusal", served)
	}
	s.records.wait(t, served+1)
	got := used(t, ledger, budget.Limit{Unit: budget.USD, Per: budget.Day, Max: 200_000_000_000},
		budget.Limit{Unit: budget.Tokens, Per: budget.Day, Max: 60_000})
	if got[0] > 200_000_000_000 || got[1] > 60_000 {
		t.Errorf("after %d requests the day used %d pico-USD and %d tokens, above the ceilings", served, got[0], got[1])
	}
	for _, unit := range []string{"usd", "tokens"} {
		if n := metricValue(t, s.reg, "tollgate_budget_settled_above_reserved_total", map[string]string{"unit": unit}); n != 0 {
			t.Errorf("%s: %v requests settled above their reservation", unit, n)
		}
	}

	// The regular fake reports 5,170 input tokens whatever it is sent: more
	// than a "Hello" can be, which the metric shows.
	s2 := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{usd: 10, per: day}, {tokens: 1000000, per: day}]`})
	if _, err := s2.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err != nil {
		t.Fatal(err)
	}
	s2.records.wait(t, 1)
	for _, unit := range []string{"usd", "tokens"} {
		if n := metricValue(t, s2.reg, "tollgate_budget_settled_above_reserved_total", map[string]string{"unit": unit}); n != 1 {
			t.Errorf("%s: settled above reserved %v, want 1", unit, n)
		}
	}
	if v := metricValue(t, s2.reg, "tollgate_budget_settled_above_reserved_usd_total", nil); v <= 0 {
		t.Errorf("excess USD %v", v)
	}
}
