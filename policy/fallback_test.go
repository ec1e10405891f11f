package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// defaultFallback is the Fallback of a route with a chain of n providers
// whose file says nothing about fallback.
func defaultFallback(n int) Fallback {
	return Fallback{
		On:               []int{429, 500, 502, 503, 504, 529},
		OnConnectFailure: true, OnReset: true, OnStall: true,
		MaxAttempts:       n,
		PerTryIdleTimeout: 120 * time.Second,
	}
}

// fallbackPolicy is a policy whose route r has a chain of chain and the
// given extra route lines.
func fallbackPolicy(chain string, route ...string) []byte {
	lines := []string{
		"version: 1",
		"providers:",
		"  a: {type: anthropic, api_key: '${K}'}",
		"  b: {type: anthropic, api_key: '${K}'}",
		"  c: {type: anthropic, api_key: '${K}'}",
		"routes:",
		"  r:",
		"    chain: " + chain,
	}
	lines = append(lines, route...)
	lines = append(lines, "keys: [{id: k, sha256: "+hashK+"}]")
	return doc(lines...)
}

// TestFallback checks the fallback fields of a route that loads, the
// defaults included.
func TestFallback(t *testing.T) {
	tests := []struct {
		name  string
		chain string
		route []string
		want  Fallback
	}{
		{name: "defaults, one provider", chain: "[a]", want: defaultFallback(1)},
		{name: "defaults, three providers", chain: "[a, b, c]", want: defaultFallback(3)},
		{
			name:  "every field",
			chain: "[a, b]",
			route: []string{
				"    fallback_on: [529, 503, connect-failure, reset, stall, 429]",
				"    max_attempts: 2",
				"    per_try_timeout: 30s",
				"    per_try_idle_timeout: 2m30s",
			},
			want: Fallback{
				On:               []int{429, 503, 529},
				OnConnectFailure: true, OnReset: true, OnStall: true,
				MaxAttempts: 2, PerTryTimeout: 30 * time.Second, PerTryIdleTimeout: 150 * time.Second,
			},
		},
		{
			name:  "codes only: no stall, so no idle timeout by default",
			chain: "[a, b]",
			route: []string{"    fallback_on: [529]"},
			want:  Fallback{On: []int{529}, MaxAttempts: 2},
		},
		{
			name:  "never fall back, but cut stalls",
			chain: "[a, b]",
			route: []string{"    fallback_on: []", "    per_try_idle_timeout: 500ms"},
			want:  Fallback{MaxAttempts: 2, PerTryIdleTimeout: 500 * time.Millisecond},
		},
		{
			name:  "reset without stall and the idle timeout off",
			chain: "[a, b]",
			route: []string{"    fallback_on: [connect-failure, reset]", "    per_try_idle_timeout: 0"},
			want:  Fallback{OnConnectFailure: true, OnReset: true, MaxAttempts: 2},
		},
		{
			name:  "one attempt on a longer chain",
			chain: "[a, b, c]",
			route: []string{"    max_attempts: 1"},
			want:  Fallback{On: defaultFallbackCodes, OnConnectFailure: true, OnReset: true, OnStall: true, MaxAttempts: 1, PerTryIdleTimeout: 2 * time.Minute},
		},
		{
			name:  "retries on the same provider",
			chain: "[a]",
			route: []string{"    fallback_on: [529, connect-failure]", "    max_attempts: 3", "    per_try_timeout: '0.25s'"},
			want:  Fallback{On: []int{529}, OnConnectFailure: true, MaxAttempts: 3, PerTryTimeout: 250 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "p.yaml", fallbackPolicy(tt.chain, tt.route...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if diff := cmp.Diff(tt.want, p.Routes["r"].Fallback); diff != "" {
				t.Errorf("Fallback (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFallbackRules checks each refusal of the fallback fields, with its
// position and message.
func TestFallbackRules(t *testing.T) {
	tests := []struct {
		name  string
		chain string
		route []string
		want  []string
	}{
		{
			name:  "a client error",
			chain: "[a, b]",
			route: []string{"    fallback_on: [429, 400, 404]"},
			want: []string{
				`p.yaml:9:24: routes.r.fallback_on: 400: a 4xx other than 429 is the client's error; retrying it on another provider cannot help`,
				`p.yaml:9:29: routes.r.fallback_on: 404: a 4xx other than 429 is the client's error; retrying it on another provider cannot help`,
			},
		},
		{
			name:  "codes that are not errors",
			chain: "[a, b]",
			route: []string{"    fallback_on: [200, 302, 600, 0x1F7]"},
			want: []string{
				`p.yaml:9:19: routes.r.fallback_on: 200 is not an error status; fallback_on takes 429 and codes from 500 to 599`,
				`p.yaml:9:24: routes.r.fallback_on: 302 is not an error status; fallback_on takes 429 and codes from 500 to 599`,
				`p.yaml:9:29: routes.r.fallback_on: 600 is not an error status; fallback_on takes 429 and codes from 500 to 599`,
				`p.yaml:9:34: routes.r.fallback_on: expected a status code such as 503, got 0x1F7`,
			},
		},
		{
			name:  "duplicates",
			chain: "[a, b]",
			route: []string{
				"    fallback_on:",
				"      - 503",
				"      - connect-failure",
				"      - 503",
				"      - connect-failure",
			},
			want: []string{
				`p.yaml:12:9: routes.r.fallback_on: 503 appears more than once (first at line 10)`,
				`p.yaml:13:9: routes.r.fallback_on: connect-failure appears more than once (first at line 11)`,
			},
		},
		{
			name:  "unknown words and wrong kinds",
			chain: "[a, b]",
			route: []string{"    fallback_on: [timeout, conect-failure, '503', [502], 5.0]"},
			want: []string{
				`p.yaml:9:19: routes.r.fallback_on: unknown condition "timeout"; use a status code such as 503 or one of connect-failure, reset, stall`,
				`p.yaml:9:28: routes.r.fallback_on: unknown condition "conect-failure" (did you mean "connect-failure"?)`,
				`p.yaml:9:44: routes.r.fallback_on: unknown condition "503"; use a status code such as 503 or one of connect-failure, reset, stall`,
				`p.yaml:9:51: routes.r.fallback_on: expected a status code such as 503 or one of connect-failure, reset, stall, got a sequence`,
				`p.yaml:9:58: routes.r.fallback_on: expected a status code such as 503 or one of connect-failure, reset, stall, got a number`,
			},
		},
		{
			name:  "not a sequence",
			chain: "[a, b]",
			route: []string{"    fallback_on: 503"},
			want:  []string{`p.yaml:9:18: routes.r.fallback_on: expected a sequence of status codes and connect-failure, reset, stall, got an integer`},
		},
		{
			name:  "null",
			chain: "[a, b]",
			route: []string{"    fallback_on:"},
			want:  []string{`p.yaml:9:17: routes.r.fallback_on: expected a sequence of status codes and connect-failure, reset, stall, got nothing (null); write [] to never fall back`},
		},
		{
			name:  "reset without connect-failure",
			chain: "[a, b]",
			route: []string{"    fallback_on: [503, reset, stall]"},
			want:  []string{`p.yaml:9:18: routes.r.fallback_on: reset includes connect-failure (Envoy retries every reset, a failed connection too); add connect-failure`},
		},
		{
			name:  "stall without reset",
			chain: "[a, b]",
			route: []string{"    fallback_on: [503, connect-failure, stall]"},
			want:  []string{`p.yaml:9:18: routes.r.fallback_on: stall needs reset (Envoy retries a stalled attempt as a reset it made itself); add reset`},
		},
		{
			name:  "reset, no stall, and an idle timeout",
			chain: "[a, b]",
			route: []string{"    fallback_on: [connect-failure, reset]", "    per_try_idle_timeout: 60s"},
			want:  []string{`p.yaml:10:27: routes.r.per_try_idle_timeout: with reset and without stall in fallback_on, Envoy would still retry a stalled attempt (as a reset it made itself); add stall to fallback_on or set 0`},
		},
		{
			name:  "stall with the idle timeout off",
			chain: "[a, b]",
			route: []string{"    per_try_idle_timeout: 0s"},
			want:  []string{`p.yaml:9:27: routes.r.per_try_idle_timeout: must be positive while stall is in fallback_on: it is what makes a stall`},
		},
		{
			name:  "bad durations",
			chain: "[a, b]",
			route: []string{
				"    per_try_timeout: 30",
				"    per_try_idle_timeout: soon",
			},
			want: []string{
				`p.yaml:9:22: routes.r.per_try_timeout: expected a duration such as 30s or 2m, got an integer`,
				`p.yaml:10:27: routes.r.per_try_idle_timeout: expected a duration such as 30s or 2m, got "soon"`,
			},
		},
		{
			name:  "durations out of range",
			chain: "[a]",
			route: []string{
				"    per_try_timeout: 0s",
				"    per_try_idle_timeout: -1s",
			},
			want: []string{
				`p.yaml:9:22: routes.r.per_try_timeout: must be positive, got "0s"; leave it out for no timeout`,
				`p.yaml:10:27: routes.r.per_try_idle_timeout: must be positive, got "-1s"; leave it out for no timeout`,
			},
		},
		{
			name:  "below Envoy's precision",
			chain: "[a]",
			route: []string{"    per_try_timeout: 1500us"},
			want:  []string{`p.yaml:9:22: routes.r.per_try_timeout: must be whole milliseconds (Envoy's precision), got "1500us"`},
		},
		{
			name:  "more attempts than providers",
			chain: "[a, b]",
			route: []string{"    max_attempts: 3"},
			want:  []string{`p.yaml:9:19: routes.r.max_attempts: at most 2, the chain's length: once every provider was tried, Envoy (previous_priorities) sends a further attempt to the chain's first healthy provider, not the last`},
		},
		{
			name:  "too many attempts on one provider",
			chain: "[a]",
			route: []string{"    max_attempts: 4"},
			want:  []string{`p.yaml:9:19: routes.r.max_attempts: at most 3 on a chain of one provider: every retry goes to that provider again`},
		},
		{
			name:  "attempts not a positive number",
			chain: "[a, b]",
			route: []string{"    max_attempts: 0"},
			want:  []string{`p.yaml:9:19: routes.r.max_attempts: must be at least 1 (the first attempt counts)`},
		},
		{
			name:  "attempts not a number",
			chain: "[a, b]",
			route: []string{"    max_attempts: two"},
			want:  []string{`p.yaml:9:19: routes.r.max_attempts: expected a whole number of attempts, such as 2, got a string`},
		},
		{
			name:  "a broken chain proves no bound",
			chain: "[a, a]",
			route: []string{"    max_attempts: 2"},
			want:  []string{`p.yaml:8:16: routes.r.chain: provider "a" appears more than once`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", fallbackPolicy(tt.chain, tt.route...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if err == nil {
				t.Fatalf("Parse succeeded with fallback %+v; want errors", p.Routes["r"].Fallback)
			}
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
