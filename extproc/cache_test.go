package extproc

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// TestReadCacheHeaders checks the client's cache controls, their aliases
// and precedence (no-store wins), the removal of cache-control, and the
// headers that enter the key.
func TestReadCacheHeaders(t *testing.T) {
	tests := []struct {
		name   string
		kv     []string
		mode   cacheMode
		remove bool
		err    bool
	}{
		{"none", nil, cacheNormal, false, false},
		{"refresh", []string{"x-tollgate-cache", "Refresh"}, cacheRefreshMode, false, false},
		{"no-store", []string{"x-tollgate-cache", "no-store"}, cacheNoStore, false, false},
		{"portkey refresh", []string{"x-portkey-cache-force-refresh", "true"}, cacheRefreshMode, false, false},
		{"portkey false", []string{"x-portkey-cache-force-refresh", "false"}, cacheNormal, false, false},
		{"cache-control no-cache", []string{"cache-control", "max-age=0, no-cache"}, cacheRefreshMode, true, false},
		{"cache-control no-store", []string{"cache-control", "no-store"}, cacheNoStore, true, false},
		{"cache-control other", []string{"cache-control", "max-age=60"}, cacheNormal, true, false},
		{"no-store wins", []string{"x-tollgate-cache", "refresh", "cache-control", "no-store"}, cacheNoStore, true, false},
		{"unknown value", []string{"x-tollgate-cache", "later"}, cacheNormal, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &policyProcessor{}
			var m mutation
			err := p.readCacheHeaders(&m, readHeaders(headerMap(tt.kv...)))
			if (err != nil) != tt.err || p.cache.mode != tt.mode || slices.Contains(m.remove, "cache-control") != tt.remove {
				t.Errorf("err %v mode %d removes %v; want err %v mode %d removes cache-control %v", err, p.cache.mode, m.remove, tt.err, tt.mode, tt.remove)
			}
		})
	}
	p := &policyProcessor{}
	var m mutation
	p.readCacheHeaders(&m, readHeaders(headerMap("anthropic-version", "2023-06-01", "anthropic-beta", "b, a", "anthropic-beta", "a,c", "x-other", "1")))
	want := []cache.Header{{Name: "anthropic-version", Value: "2023-06-01"}, {Name: "anthropic-beta", Value: "a,b,c"}}
	if diff := cmp.Diff(want, p.cache.headers); diff != "" {
		t.Errorf("key headers (-want +got):\n%s", diff)
	}
}

// TestRateOnly checks what a cache hit reserves: its request and
// concurrency limits only, no cost, no tokens.
func TestRateOnly(t *testing.T) {
	key := budget.Scope{Kind: budget.ScopeKey, Name: "k"}
	team := budget.Scope{Kind: budget.ScopeTeam, Name: "t"}
	req := budget.Request{ID: "r", CostPicoUSD: 5, Tokens: 7, Scopes: []budget.ScopeLimits{
		{Scope: key, Limits: []budget.Limit{{Unit: budget.USD, Per: budget.Day, Max: 1}, {Unit: budget.Requests, Per: budget.Minute, Max: 3}, {Unit: budget.Concurrent, Max: 2}}},
		{Scope: team, Limits: []budget.Limit{{Unit: budget.Tokens, Per: budget.Day, Max: 9}}},
	}}
	got := rateOnly(req)
	want := budget.Request{ID: "r", Scopes: []budget.ScopeLimits{
		{Scope: key, Limits: []budget.Limit{{Unit: budget.Requests, Per: budget.Minute, Max: 3}, {Unit: budget.Concurrent, Max: 2}}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rateOnly (-want +got):\n%s", diff)
	}
	if len(req.Scopes[0].Limits) != 3 {
		t.Error("rateOnly changed the policy's limits")
	}
}
