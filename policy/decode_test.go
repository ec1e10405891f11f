package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseRules checks each validation rule, with the exact position and
// message of every problem it reports.
func TestParseRules(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{
			name: "unknown root field with a hint",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"defualt_route: r",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:4:1: unknown field "defualt_route" (did you mean "default_route"?)`},
		},
		{
			name: "unknown field without a close match lists the known fields",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  r:",
				"    chain: [a]",
				"    retries: 3",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:6:5: routes.r: unknown field "retries"; known fields: chain, cluster, models, capture_bodies, cache, fallback_on, max_attempts, per_try_timeout, per_try_idle_timeout`},
		},
		{
			name: "unknown provider field",
			data: doc(
				"version: 1",
				"providers:",
				"  a:",
				"    type: anthropic",
				"    apikey: ${K}",
				"    api_key: ${K}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:5:5: providers.a: unknown field "apikey" (did you mean "api_key"?)`},
		},
		{
			name: "unknown key field",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys:",
				"  - id: k",
				"    sha256: "+hashK,
				"    teams: platform",
			),
			want: []string{`p.yaml:7:5: keys[0]: unknown field "teams" (did you mean "team"?)`},
		},
		{
			name: "wrong types",
			data: doc(
				"version: 1",
				"providers:",
				"  a:",
				"    type: anthropic",
				"    api_key: ${K}",
				"    models: {m: 4}",
				"routes:",
				"  r: {chain: a, cluster: 7}",
				"  s: [a]",
				"default_route: r",
				"keys:",
				"  - {id: k, sha256: "+hashK+", user: true, metadata: [x]}",
			),
			want: []string{
				`p.yaml:6:17: providers.a.models.m: expected a string, got an integer; quote it if it is meant as text`,
				`p.yaml:8:7: routes.r.chain: must name at least one provider`,
				`p.yaml:8:14: routes.r.chain: expected a sequence of provider names, got a string`,
				`p.yaml:8:26: routes.r.cluster: expected a string, got an integer; quote it if it is meant as text`,
				`p.yaml:9:6: routes.s: expected a mapping with fields chain, cluster, models, capture_bodies, cache, fallback_on, max_attempts, per_try_timeout, per_try_idle_timeout, got a sequence`,
				`p.yaml:12:93: keys[0].user: expected a string, got a boolean; quote it if it is meant as text`,
				`p.yaml:12:109: keys[0].metadata: expected a mapping, got a sequence`,
			},
		},
		{
			name: "sections of the wrong type",
			data: doc(
				"version: '1'",
				"providers: [a]",
				"routes: r",
				"keys: {id: k}",
			),
			want: []string{
				`p.yaml:1:10: version: expected the integer 1, got a string`,
				`p.yaml:2:12: providers: expected a mapping, got a sequence`,
				`p.yaml:3:9: routes: expected a mapping, got a string`,
				`p.yaml:4:7: keys: expected a sequence of keys, got a mapping`,
			},
		},
		{
			name: "empty sections",
			data: doc(
				"version: 1",
				"providers: {}",
				"routes:",
				"keys: []",
			),
			want: []string{
				`p.yaml:2:1: providers: at least one provider is required`,
				`p.yaml:3:1: routes: at least one route is required`,
			},
		},
		{
			name: "missing sections",
			data: doc("version: 1"),
			want: []string{
				`p.yaml:1:1: providers: at least one provider is required`,
				`p.yaml:1:1: routes: at least one route is required`,
			},
		},
		{
			name: "chain naming an unknown provider",
			data: doc(
				"version: 1",
				"providers: {anthropic: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  r:",
				"    chain:",
				"      - anthropic",
				"      - antropic",
				"      - bedrock",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:7:9: routes.r.chain: unknown provider "antropic" (did you mean "anthropic"?)`,
				`p.yaml:8:9: routes.r.chain: unknown provider "bedrock"`,
			},
		},
		{
			name: "empty, missing and repetitive chains",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  r: {chain: []}",
				"  s: {cluster: chain_s}",
				"  t: {chain: [a, a]}",
				"  u: {chain: }",
				"default_route: t",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:4:7: routes.r.chain: must name at least one provider`,
				`p.yaml:5:3: routes.s: chain is required: the providers of the route in fallback order`,
				`p.yaml:6:18: routes.t.chain: provider "a" appears more than once`,
				`p.yaml:7:7: routes.u.chain: must name at least one provider`,
			},
		},
		{
			name: "duplicate route slugs after '@' normalization",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  a: {chain: [a]}",
				"  '@a': {chain: [a]}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:5:3: routes.a: duplicate route "a" (also defined at line 4)`},
		},
		{
			name: "duplicate YAML keys",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropic, api_key: '${K}'}",
				"  a: {type: anthropic, api_key: '${K}'}",
				"routes: {r: {chain: [a], chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
				"version: 1",
			),
			want: []string{
				`p.yaml:4:3: providers: duplicate key "a" (first at line 3)`,
				`p.yaml:5:26: routes.r: duplicate field "chain" (first at line 5)`,
				`p.yaml:7:1: duplicate field "version" (first at line 1)`,
			},
		},
		{
			name: "invalid names",
			data: doc(
				"version: 1",
				"providers: {a/b: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  '@': {chain: [a/b]}",
				"  x y: {chain: [a/b], cluster: chain x}",
				"default_route: '@'",
				"keys: [{id: k y, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:2:13: providers.a/b: invalid provider name; use letters, digits, '.', '_' and '-', starting with a letter or digit`,
				`p.yaml:4:3: routes.: invalid route slug; use letters, digits, '.', '_' and '-', starting with a letter or digit, optionally after '@'`,
				`p.yaml:5:3: routes.x y: invalid route slug; use letters, digits, '.', '_' and '-', starting with a letter or digit, optionally after '@'`,
				`p.yaml:5:32: routes.x y.cluster: invalid cluster name; use at most 128 printable characters without spaces`,
				`p.yaml:7:13: keys[0].id: invalid key id; use at most 128 printable characters without spaces`,
			},
		},
		{
			name: "duplicate key ids and hashes",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys:",
				"  - {id: k, sha256: "+hashK+"}",
				"  - {id: k, sha256: "+hashJ+"}",
				"  - {id: j, sha256: "+hashK+"}",
			),
			want: []string{
				`p.yaml:6:10: keys[1].id: duplicate key id "k" (also at line 5)`,
				`p.yaml:7:21: keys[2].sha256: duplicate sha256: the same key is already listed at line 5`,
			},
		},
		{
			name: "sha256 not 64 lowercase hex digits",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys:",
				"  - {id: upper, sha256: 8254C329A92850F6D539DD376F4816EE2764517DA5E0235514AF433164480D7A}",
				"  - {id: short, sha256: 8254c329}",
				"  - {id: key, sha256: tg-demo-key}",
				"  - {id: number, sha256: 1234}",
				"  - {id: missing}",
				"  - {sha256: "+hashK+"}",
			),
			want: []string{
				"p.yaml:5:25: keys[0].sha256: must be 64 lowercase hex digits (the output of `tollgate hash-key`)",
				"p.yaml:6:25: keys[1].sha256: must be 64 lowercase hex digits (the output of `tollgate hash-key`)",
				"p.yaml:7:23: keys[2].sha256: must be 64 lowercase hex digits (this looks like a key, not its hash; paste the output of `tollgate hash-key` instead)",
				"p.yaml:8:26: keys[3].sha256: expected a string, got an integer; quote it if it is meant as text",
				"p.yaml:9:5: keys[4]: sha256 is required (the output of `tollgate hash-key`)",
				"p.yaml:10:5: keys[5]: id is required",
			},
		},
		{
			name: "provider type unknown or missing",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropik, api_key: '${K}'}",
				"  b: {type: cohere, api_key: '${K}'}",
				"  c: {api_key: '${K}'}",
				"  d: {type: '', api_key: '${K}'}",
				"routes: {r: {chain: [a, b, c, d]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:13: providers.a.type: unknown provider type "anthropik" (did you mean "anthropic"?)`,
				`p.yaml:4:13: providers.b.type: unknown provider type "cohere"; known types: anthropic, bedrock, openai, vertex`,
				`p.yaml:5:3: providers.c: type is required (one of: anthropic, bedrock, openai, vertex)`,
				`p.yaml:6:13: providers.d.type: must not be empty`,
			},
		},
		{
			name: "bad base_url",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropic, api_key: '${K}', base_url: api.anthropic.com}",
				"  b: {type: anthropic, api_key: '${K}', base_url: 'ftp://api.anthropic.com'}",
				"  c: {type: anthropic, api_key: '${K}', base_url: 'https://'}",
				"  d: {type: anthropic, api_key: '${K}', base_url: 'https://user:pw@api.anthropic.com'}",
				"  e: {type: anthropic, api_key: '${K}', base_url: 'https://api.anthropic.com/?x=1'}",
				"  f: {type: anthropic, api_key: '${K}', base_url: 'https://api.anthropic.com/%zz'}",
				"routes: {r: {chain: [a, b, c, d, e, f]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:51: providers.a.base_url: must be an absolute http or https URL, such as https://api.anthropic.com`,
				`p.yaml:4:51: providers.b.base_url: must be an absolute http or https URL, such as https://api.anthropic.com`,
				`p.yaml:5:51: providers.c.base_url: must be an absolute http or https URL with a host`,
				`p.yaml:6:51: providers.d.base_url: must not contain credentials; use api_key or api_key_file`,
				`p.yaml:7:51: providers.e.base_url: must not have a query or fragment`,
				`p.yaml:8:51: providers.f.base_url: invalid URL: invalid URL escape "%zz"`,
			},
		},
		{
			name: "default_route naming no route",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {anthropic: {chain: [a]}}",
				"default_route: '@antropic'",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:4:16: default_route: no route "antropic" (did you mean "anthropic"?)`},
		},
		{
			name: "default_route missing with several routes",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes:",
				"  r: {chain: [a]}",
				"  s: {chain: [a]}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:3:1: default_route: required when more than one route is defined`},
		},
		{
			name: "missing version",
			data: doc(
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:1:1: version is required; add version: 1`},
		},
		{
			name: "unsupported version",
			data: doc(
				"# A comment first.",
				"version: 2",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{`p.yaml:2:10: version: unsupported version 2; this Tollgate reads version 1`},
		},
		{
			name: "api_key given as a literal or a malformed reference",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropic, api_key: sk-ant-api03-secret}",
				"  b: {type: anthropic, api_key: $ANTHROPIC_API_KEY}",
				"  c: {type: anthropic, api_key: '${1X}'}",
				"  d: {type: anthropic, api_key: 'prefix-${K}'}",
				"  e: {type: anthropic, api_key: '${K}-suffix'}",
				"  f: {type: anthropic, api_key: ''}",
				"routes: {r: {chain: [a, b, c, d, e, f]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:3:33: providers.a.api_key: must be a ${VAR} reference to an environment variable, or use api_key_file; provider keys are never written into the policy (value not shown)`,
				`p.yaml:4:33: providers.b.api_key: must be written ${ANTHROPIC_API_KEY}, with braces`,
				`p.yaml:5:33: providers.c.api_key: malformed reference; want ${VAR} or ${VAR:-default} where VAR is letters, digits and underscores`,
				`p.yaml:6:33: providers.d.api_key: must be a ${VAR} reference to an environment variable, or use api_key_file; provider keys are never written into the policy (value not shown)`,
				`p.yaml:7:33: providers.e.api_key: malformed reference; want ${VAR} or ${VAR:-default} where VAR is letters, digits and underscores`,
				`p.yaml:8:33: providers.f.api_key: must be a ${VAR} reference to an environment variable, or use api_key_file; provider keys are never written into the policy (value not shown)`,
			},
		},
		{
			name: "both api_key and api_key_file, or neither",
			data: doc(
				"version: 1",
				"providers:",
				"  a:",
				"    type: anthropic",
				"    api_key_file: /run/secrets/a",
				"    api_key: ${K}",
				"  b: {type: anthropic}",
				"routes: {r: {chain: [a, b]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				`p.yaml:6:5: providers.a: api_key and api_key_file are mutually exclusive; keep one`,
				`p.yaml:7:3: providers.b: api_key or api_key_file is required`,
			},
		},
		{
			name: "merge keys",
			data: doc(
				"version: 1",
				"providers:",
				"  a: &base {type: anthropic, api_key: '${K}'}",
				"  b: {<<: *base}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
			),
			want: []string{
				// Which other fields are required depends on the type.
				`p.yaml:4:3: providers.b: type is required (one of: anthropic, bedrock, openai, vertex)`,
				`p.yaml:4:7: providers.b: merge keys (<<) are not supported; write the fields out`,
			},
		},
		{
			name: "YAML syntax error",
			data: doc(
				"version: 1",
				"providers:",
				"  a: {type: anthropic",
				"routes: {}",
			),
			want: []string{`p.yaml:3: invalid YAML: did not find expected ',' or '}'`},
		},
		{
			name: "unquoted ${VAR} in a flow mapping",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: ${K}}}",
				"routes: {r: {chain: [a]}}",
			),
			want: []string{`p.yaml:2: invalid YAML: did not find expected ',' or '}'; a ${VAR} reference inside {...} or [...] must be quoted, as in {api_key: '${VAR}'}`},
		},
		{
			name: "YAML scanner error",
			data: doc(
				"version: 1",
				"providers:",
				"  a",
				"  b: 2",
			),
			want: []string{`p.yaml:4: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "several documents",
			data: doc(
				"version: 1",
				"providers: {a: {type: anthropic, api_key: '${K}'}}",
				"routes: {r: {chain: [a]}}",
				"keys: [{id: k, sha256: "+hashK+"}]",
				"---",
				"version: 1",
			),
			want: []string{`p.yaml:5:1: a policy file holds one YAML document; remove the second one`},
		},
		{
			name: "empty file",
			data: doc("# Nothing but a comment."),
			want: []string{`p.yaml: the policy is empty; it must be a mapping starting with version: 1`},
		},
		{
			name: "root not a mapping",
			data: doc("- version: 1"),
			want: []string{`p.yaml:1:1: expected a mapping with fields version, providers, routes, default_route, keys, pricing, budget_timezone, budget_fail_mode, budget_when_short, budget_fit_floor, budget_exempt, teams, users, projects, sessions, global, got a sequence`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", tt.data, LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if err == nil {
				t.Fatalf("Parse succeeded with warnings %q; want errors", strs(p.Warnings))
			}
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
