package policy

import (
	"fmt"
	"slices"

	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// CaptureLimit returns how many bytes of a request's and its response's
// bodies its cost record captures: the larger of the route's and the team's
// capture_bodies.max_bytes, at most MaxCaptureBytes; 0 captures nothing.
// route may be nil and team empty.
func (p *Policy) CaptureLimit(route *Route, team string) int {
	n := 0
	if route != nil {
		n = route.CaptureBodies
	}
	if t, ok := p.Teams[team]; ok && team != "" {
		n = max(n, t.CaptureBodies)
	}
	return min(n, MaxCaptureBytes)
}

// BudgetInput is what the policy needs to know of a request to charge it.
type BudgetInput struct {
	// RequestID names the reservation in the ledger (x-request-id).
	RequestID string
	// Key is the authenticated key; Route the request's route, whose chain
	// names the providers that may serve it.
	Key   *Key
	Route *Route
	// Session is the request's session or trace id.
	Session string
	// Endpoint is EndpointMessages, EndpointCountTokens or EndpointModels.
	Endpoint string
	// Model is the model as the client named it, without a "@route/" prefix;
	// it is mapped for each provider of the chain before pricing.
	Model string
	// BodyBytes is the size of the request body.
	BodyBytes int
	// Media is what the body holds beyond text (images, documents, tools),
	// for budget.InputBound.
	Media budget.Media
	// MaxTokens is the request's max_tokens; 0 when absent.
	MaxTokens int64
	// Choices is the number of answers the request asks for (OpenAI's n),
	// each up to MaxTokens; 0 or 1 for one.
	Choices int64
}

// choices returns in.Choices, at least 1.
func (in BudgetInput) choices() int64 { return max(in.Choices, 1) }

// BudgetRequest returns the ledger request of a request: every scope that
// applies (the key, its user, team and project, the providers of the
// route's chain, the session, global) with its limits, and, for messages,
// the worst case reserved in them: budget.InputBound of the body
// plus max_tokens (budget.UnknownMaxTokens when absent), priced with the
// policy's catalog for each provider of the chain, the dearest of them. The
// endpoints of BudgetExempt give an Exempt request, which the ledger admits
// without counting; the other endpoints reserve one request and no cost.
//
// The error wraps pricing.ErrUnpriced when a USD budget applies and the
// model has no price for some provider of the chain: such a request must be
// refused, or it would escape the budget.
func (p *Policy) BudgetRequest(in BudgetInput) (budget.Request, error) {
	sub := budget.Subject{Session: in.Session}
	if in.Key != nil {
		sub.Key, sub.User, sub.Team, sub.Project = in.Key.ID, in.Key.User, in.Key.Team, in.Key.Project
	}
	if in.Route != nil {
		sub.Providers = in.Route.Chain
	}
	req := p.Budgets.Request(in.RequestID, sub)
	if slices.Contains(p.BudgetExempt, in.Endpoint) {
		req.Exempt = true
		return req, nil
	}
	if in.Endpoint != EndpointMessages || len(req.Scopes) == 0 {
		return req, nil
	}
	maxTokens := in.MaxTokens
	if maxTokens <= 0 {
		maxTokens = budget.UnknownMaxTokens
	}
	input := budget.InputBound(in.BodyBytes, in.Media)
	n := in.choices()
	req.Tokens = input + min(maxTokens, budget.MaxEstimatedOutputTokens)*n
	if !req.Limited(budget.USD) || in.Route == nil {
		return req, nil
	}
	err := p.eachChainPrice(in, func(price pricing.Price) {
		req.CostPicoUSD = max(req.CostPicoUSD, budget.WorstCaseCost(price, input, maxTokens*n))
	})
	if err != nil {
		return req, fmt.Errorf("budget: cannot reserve the cost of the request: %w", err)
	}
	return req, nil
}

// eachChainPrice calls f with the price of in.Model at every provider of
// in.Route's chain, each with its own model mapping.
func (p *Policy) eachChainPrice(in BudgetInput, f func(pricing.Price)) error {
	for _, name := range in.Route.Chain {
		_, price, err := p.PriceAt(in.Route, name, in.Model, p.Pricing.Unknown)
		if err != nil {
			return err
		}
		f(price)
	}
	return nil
}

// FitMaxTokens returns the largest max_tokens, below in.MaxTokens, whose
// worst case fits what limit d.Limit has left (d.Limit.Max minus d.Used): for
// a USD limit, budget.FitOutput at every provider of the route's chain, the
// smallest of them; for a token limit, what is left minus the input bound. It
// returns -1 when nothing fits (not even the input) and 0 when d is not a USD
// or token denial or in has no max_tokens to lower.
func (p *Policy) FitMaxTokens(in BudgetInput, d *budget.Denial) (int64, error) {
	if in.MaxTokens <= 0 || d == nil {
		return 0, nil
	}
	room := d.Limit.Max - d.Used
	input := budget.InputBound(in.BodyBytes, in.Media)
	want := min(in.MaxTokens-1, budget.MaxEstimatedOutputTokens)
	n := in.choices()
	switch d.Limit.Unit {
	case budget.Tokens:
		if room < input {
			return -1, nil
		}
		return min((room-input)/n, want), nil
	case budget.USD:
	default:
		return 0, nil
	}
	if in.Route == nil {
		return 0, nil
	}
	fit := want * n
	err := p.eachChainPrice(in, func(price pricing.Price) {
		fit = min(fit, budget.FitOutput(price, input, want*n, room))
	})
	if err != nil {
		return 0, fmt.Errorf("budget: cannot fit the request: %w", err)
	}
	if fit < 0 {
		return -1, nil
	}
	return fit / n, nil // the output each of the n choices may take
}
