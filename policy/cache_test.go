package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cacheDoc is a valid policy with two routes and two teams' keys, the
// route lines given, and the given lines appended.
func cacheDoc(routes []string, lines ...string) []byte {
	out := []string{
		"version: 1",
		"providers:",
		"  a: {type: anthropic, api_key: '${K}'}",
		"routes:",
	}
	out = append(out, routes...)
	out = append(out,
		"default_route: r",
		"keys:",
		"  - {id: k, sha256: "+hashK+", team: platform}",
		"  - {id: j, sha256: "+hashJ+", team: data}",
	)
	return doc(append(out, lines...)...)
}

func TestCacheSection(t *testing.T) {
	p, err := Parse("p.yaml", cacheDoc([]string{
		"  r: {chain: [a], cache: {ttl: 1h}}",
		"  s: {chain: [a], cache: {ttl: 90s, max_entry_bytes: 65536, scope: global, exclude_fields: []}}",
		"  plain: {chain: [a]}",
	},
		"teams:",
		"  data: {cache: off}",
		"  research: {cache: {ttl: 10m, scope: key, exclude_fields: [metadata.user_id, temperature]}}",
	), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
	if err != nil {
		t.Fatal(err)
	}
	want := &Cache{TTL: time.Hour, MaxEntryBytes: DefaultCacheMaxEntryBytes, Scope: CacheScopeTeam, ExcludeFields: []string{"metadata.user_id"}}
	if diff := cmp.Diff(want, p.CacheFor(p.Routes["r"], "platform")); diff != "" {
		t.Errorf("route r, team platform (-want +got):\n%s", diff)
	}
	want = &Cache{TTL: 90 * time.Second, MaxEntryBytes: 65536, Scope: CacheScopeGlobal, ExcludeFields: []string{}}
	if diff := cmp.Diff(want, p.CacheFor(p.Routes["s"], "")); diff != "" {
		t.Errorf("route s, no team (-want +got):\n%s", diff)
	}
	if c := p.CacheFor(p.Routes["plain"], "platform"); c != nil {
		t.Errorf("route without cache: %+v", c)
	}
	if c := p.CacheFor(p.Routes["r"], "data"); c != nil {
		t.Errorf("team with cache: off on a cached route: %+v", c)
	}
	want = &Cache{TTL: 10 * time.Minute, MaxEntryBytes: DefaultCacheMaxEntryBytes, Scope: CacheScopeKey, ExcludeFields: []string{"metadata.user_id", "temperature"}}
	if diff := cmp.Diff(want, p.CacheFor(p.Routes["plain"], "research")); diff != "" {
		t.Errorf("team research on an uncached route (-want +got):\n%s", diff)
	}
}

func TestCacheSectionErrors(t *testing.T) {
	tests := []struct {
		name   string
		routes []string
		lines  []string
		want   []string
	}{
		{
			"route fields",
			[]string{
				"  r: {chain: [a], cache: {ttl: 500ms, max_entry_bytes: 0, scope: tem}}",
				"  s: {chain: [a], cache: {max_entry_bytes: 5000000, exclude_fields: [metadata..user_id, '']}}",
				"  u: {chain: [a], cache: {ttl: 1h, exclude_fields: metadata.user_id, sizes: 1}}",
				"  v: {chain: [a], cache: {ttl: 1000h}}",
				"  w: {chain: [a], cache: 5}",
			},
			nil,
			[]string{
				`p.yaml:5:32: routes.r.cache.ttl: must be at least 1s, got "500ms"`,
				"p.yaml:5:56: routes.r.cache.max_entry_bytes: must be positive; leave the cache out to cache nothing",
				`p.yaml:5:66: routes.r.cache.scope: must be team, key or global, not "tem" (did you mean "team"?)`,
				"p.yaml:6:26: routes.s.cache: ttl is required: how long a response is served from the cache, such as {ttl: 1h}",
				"p.yaml:6:44: routes.s.cache.max_entry_bytes: 5000000 is above the cap of 4194304 bytes (4 MiB)",
				`p.yaml:6:70: routes.s.cache.exclude_fields: "metadata..user_id": a field path is member names joined by '.', such as metadata.user_id`,
				"p.yaml:6:89: routes.s.cache.exclude_fields: must not be empty",
				"p.yaml:7:52: routes.u.cache.exclude_fields: expected a sequence of body fields such as [metadata.user_id], got a string",
				`p.yaml:7:70: routes.u.cache: unknown field "sizes"; known fields: ttl, max_entry_bytes, scope, exclude_fields`,
				`p.yaml:8:32: routes.v.cache.ttl: must be at most 720h (30 days), got "1000h"`,
				"p.yaml:9:26: routes.w.cache: expected a mapping with fields ttl, max_entry_bytes, scope, exclude_fields, got an integer",
			},
		},
		{
			"team",
			[]string{"  r: {chain: [a]}"},
			[]string{"teams: {data: {cache: {ttl: soon}}}"},
			[]string{`p.yaml:10:29: teams.data.cache.ttl: expected a duration such as 10m or 1h, got "soon"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", cacheDoc(tt.routes, tt.lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
