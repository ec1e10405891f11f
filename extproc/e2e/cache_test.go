package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// carolKey is the key of the cache tests of another team than alice's and
// bob's (platform; bobKey is leak_test.go's).
const carolKey = "tg-e2e-carol"

// cacheTeams caches the responses of both teams for an hour (team
// sections, which apply on every route); extra is added to each team's
// cache section.
func cacheTeams(extra string) string {
	return "teams:\n  platform: {cache: {ttl: 1h" + extra + "}}\n  data: {cache: {ttl: 1h" + extra + "}}\n"
}

const cacheKeys = "  - {id: bob, sha256: " + "%s" + ", user: bob, team: platform}\n  - {id: carol, sha256: %s, user: carol, team: data}\n"

// newCacheStack is a stack whose teams cache responses in a memory store
// unless o names another.
func newCacheStack(t *testing.T, o stackOptions, extra string) *stack {
	t.Helper()
	if o.cache == nil {
		o.cache = cache.NewMemory(cache.MemoryOptions{})
	}
	o.extraKeys = fmt.Sprintf(cacheKeys, policy.HashKey(bobKey), policy.HashKey(carolKey))
	o.policyTail = cacheTeams(extra) + o.policyTail
	return newStackWith(t, o)
}

// reply is a response as the client received it.
type reply struct {
	status      int
	cacheStatus string
	contentType string
	body        []byte
}

// cacheSend posts body to /v1/messages with key and the extra headers.
func cacheSend(t *testing.T, s *stack, key, body string, hdr map[string]string) reply {
	t.Helper()
	h := map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
	for k, v := range hdr {
		h[k] = v
	}
	resp := post(t, s, "/v1/messages", body, h)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header.Get("x-tollgate-cache-status"), resp.Header.Get("content-type"), b}
}

func cacheBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":64,"stream":%v,"messages":[{"role":"user","content":"cache me"}],"metadata":{"user_id":"user_x_account_y_session_%d"}}`,
		model, stream, time.Now().UnixNano())
}

func wantStatuses(t *testing.T, got []reply, want ...string) {
	t.Helper()
	for i, r := range got {
		if r.status != 200 || r.cacheStatus != want[i] {
			t.Errorf("request %d: status %d, cache %q; want 200 %s (body %.200s)", i+1, r.status, r.cacheStatus, want[i], r.body)
		}
	}
}

// TestCacheTenantIsolation: the same request from keys of two teams is a
// MISS each time; from a second key of the first team it is a HIT with
// the identical body, and the provider is not asked again. The session
// part of metadata.user_id, which differs on every request here, is not
// part of the key.
func TestCacheTenantIsolation(t *testing.T) {
	s := newCacheStack(t, stackOptions{}, "")
	model := "claude-sonnet-4-5"
	a := cacheSend(t, s, gatewayKey, cacheBody(model, false), nil)
	c := cacheSend(t, s, carolKey, cacheBody(model, false), nil)
	b := cacheSend(t, s, bobKey, cacheBody(model, false), nil)
	wantStatuses(t, []reply{a, c, b}, "MISS", "MISS", "HIT")
	if string(b.body) != string(a.body) || b.contentType != a.contentType {
		t.Errorf("the HIT differs from the response it replays:\n%s\n%s", b.body, a.body)
	}
	if n := len(s.fake.Requests()); n != 2 {
		t.Errorf("the provider saw %d requests; want 2", n)
	}
	// Records are written as each stream ends, after its client has the
	// answer, so they may come in another order than the requests: each is
	// found by its key.
	statuses := map[string]string{}
	for _, r := range s.records.wait(t, 3) {
		statuses[r.KeyID] = r.CacheStatus
	}
	if want := map[string]string{"alice": "MISS", "carol": "MISS", "bob": "HIT"}; !maps.Equal(statuses, want) {
		t.Errorf("record cache statuses by key %v; want %v", statuses, want)
	}
}

// TestCacheSDK: anthropic-sdk-go gets, from a streamed HIT, events that
// accumulate into the Message of the MISS, under text/event-stream; a
// non-streamed HIT is the same Message too, and a request in the other
// mode of a cached answer is a MISS.
func TestCacheSDK(t *testing.T) {
	s := newCacheStack(t, stackOptions{}, "")
	ctx := context.Background()
	params := hello("claude-sonnet-4-5")
	stream := func() (anthropic.Message, *http.Response) {
		var resp *http.Response
		st := s.client.Messages.NewStreaming(ctx, params, option.WithResponseInto(&resp))
		var msg anthropic.Message
		for st.Next() {
			if err := msg.Accumulate(st.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		return msg, resp
	}
	miss, resp := stream()
	if got := resp.Header.Get("x-tollgate-cache-status"); got != "MISS" {
		t.Fatalf("first stream: cache status %q", got)
	}
	hit, resp := stream()
	if got := resp.Header.Get("x-tollgate-cache-status"); got != "HIT" {
		t.Fatalf("second stream: cache status %q", got)
	}
	if ct := resp.Header.Get("content-type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("replayed stream content-type %q", ct)
	}
	if a, b := mustJSON(t, miss), mustJSON(t, hit); a != b || len(miss.Content) == 0 {
		t.Errorf("the replayed stream accumulates differently:\n%s\n%s", b, a)
	}

	// Not streamed: the cached stream does not answer it.
	var r1, r2 *http.Response
	m1, err := s.client.Messages.New(ctx, params, option.WithResponseInto(&r1))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.client.Messages.New(ctx, params, option.WithResponseInto(&r2))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := r1.Header.Get("x-tollgate-cache-status"), r2.Header.Get("x-tollgate-cache-status"); a != "MISS" || b != "HIT" {
		t.Errorf("non-streamed: %s then %s; want MISS then HIT", a, b)
	}
	if m1.RawJSON() != m2.RawJSON() {
		t.Errorf("non-streamed HIT differs:\n%s\n%s", m2.RawJSON(), m1.RawJSON())
	}
	if n := len(s.fake.Requests()); n != 2 {
		t.Errorf("the provider saw %d requests; want 2", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCacheNeverStores: a cut stream, a stream ending in an error event, a
// 5xx, a 4xx and a response over max_entry_bytes are never replayed: the
// same request again is a MISS and reaches the provider.
func TestCacheNeverStores(t *testing.T) {
	s := newCacheStack(t, stackOptions{}, "")
	for _, tt := range []struct {
		name, model string
		stream      bool
		status      int
	}{
		{"cut stream", "claude-sonnet-4-5-cut", true, 200},
		{"error event", "claude-sonnet-4-5-midoverloaded", true, 200},
		{"5xx", "fake-error-500", false, 500},
		{"4xx", "claude-sonnet-4-5-invalid", false, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.fake.Requests())
			for i := range 2 {
				r := cacheSend(t, s, gatewayKey, cacheBody(tt.model, tt.stream), nil)
				if r.status != tt.status || r.cacheStatus != "MISS" {
					t.Errorf("request %d: status %d cache %q; want %d MISS", i+1, r.status, r.cacheStatus, tt.status)
				}
			}
			if n := len(s.fake.Requests()) - before; n != 2 {
				t.Errorf("the provider saw %d requests; want 2", n)
			}
		})
	}

	t.Run("over max_entry_bytes", func(t *testing.T) {
		s := newCacheStack(t, stackOptions{}, ", max_entry_bytes: 100")
		for i := range 2 {
			for _, stream := range []bool{false, true} {
				if r := cacheSend(t, s, gatewayKey, cacheBody("claude-sonnet-4-5", stream), nil); r.status != 200 || r.cacheStatus != "MISS" || len(r.body) <= 100 {
					t.Errorf("request %d stream %v: status %d cache %q, %d bytes; want 200 MISS above 100 bytes", i+1, stream, r.status, r.cacheStatus, len(r.body))
				}
			}
		}
	})
}

// offsetClock is time.Now moved on by what a test adds.
type offsetClock struct{ d atomic.Int64 }

func (c *offsetClock) now() time.Time      { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *offsetClock) add(d time.Duration) { c.d.Add(int64(d)) }

// TestCacheTTLAndControls: an entry is served until its TTL ends, then the
// request is a MISS and stored again; x-tollgate-cache: refresh and its
// aliases skip the lookup and store the new answer (REFRESH);
// x-tollgate-cache: no-store and cache-control: no-store neither read nor
// store (BYPASS). None of these headers reaches the provider.
func TestCacheTTLAndControls(t *testing.T) {
	var clock offsetClock
	s := newCacheStack(t, stackOptions{now: clock.now}, "")
	body := cacheBody("claude-sonnet-4-5", false)
	var got []reply
	do := func(hdr map[string]string) { got = append(got, cacheSend(t, s, gatewayKey, body, hdr)) }
	do(nil)
	do(nil)
	clock.add(59 * time.Minute)
	do(nil)
	clock.add(2 * time.Minute) // past the hour: expired
	do(nil)
	do(nil)
	do(map[string]string{"x-tollgate-cache": "refresh"})
	do(map[string]string{"x-portkey-cache-force-refresh": "true"})
	do(map[string]string{"cache-control": "no-cache"})
	do(map[string]string{"x-tollgate-cache": "no-store"})
	do(map[string]string{"cache-control": "no-store"})
	do(nil)
	wantStatuses(t, got, "MISS", "HIT", "HIT", "MISS", "HIT", "REFRESH", "REFRESH", "REFRESH", "BYPASS", "BYPASS", "HIT")
	reqs := s.fake.Requests()
	if len(reqs) != 7 {
		t.Errorf("the provider saw %d requests; want 7 (2 misses, 3 refreshes, 2 bypasses)", len(reqs))
	}
	for _, r := range reqs {
		for _, h := range []string{"cache-control", "x-tollgate-cache", "x-portkey-cache-force-refresh"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("the provider got %s: %s", h, v)
			}
		}
	}
	if r := cacheSend(t, s, gatewayKey, body, map[string]string{"x-tollgate-cache": "sometimes"}); r.status != 400 {
		t.Errorf("an unknown x-tollgate-cache value: status %d, want 400", r.status)
	}
}

// TestCacheRedisOutage: with the Redis store, a HIT is served from Redis;
// with Redis stopped, the request is a MISS answered by the provider, never
// an error.
func TestCacheRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	store, err := cache.NewRedis(rdb, cache.RedisOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := newCacheStack(t, stackOptions{cache: store}, "")
	body := cacheBody("claude-sonnet-4-5", true)
	got := []reply{cacheSend(t, s, gatewayKey, body, nil), cacheSend(t, s, gatewayKey, body, nil)}
	srv.Stop()
	got = append(got, cacheSend(t, s, gatewayKey, body, nil), cacheSend(t, s, gatewayKey, body, nil))
	wantStatuses(t, got, "MISS", "HIT", "MISS", "MISS")
	if string(got[1].body) != string(got[0].body) || !strings.HasPrefix(got[1].contentType, "text/event-stream") {
		t.Errorf("the HIT from Redis differs:\n%s\n%s", got[1].body, got[0].body)
	}
	if n := len(s.fake.Requests()); n != 3 {
		t.Errorf("the provider saw %d requests; want 3", n)
	}
}

// TestCacheHitBudgets: a HIT costs $0 and is not held to USD or token
// budgets, even spent ones, but counts against the request rate; its
// record says HIT and what it saved, the MISS's cost at today's prices.
// The USD budget here admits the MISS (its worst case fits) and is spent by
// it (the fake's usage costs $0.0219432), so that any other request is
// refused. With the Redis ledger, requests reserve early, at their headers,
// from the key's previous request: a HIT gives back such a guess (or
// replaces it) and reserves request rates only.
func TestCacheHitBudgets(t *testing.T) {
	t.Run("memory ledger", func(t *testing.T) { testCacheHitBudgets(t, budget.NewMemoryLedger(0)) })
	t.Run("redis ledger", func(t *testing.T) {
		srv := redistest.Start(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		l, err := budget.NewRedisLedger(rdb, budget.RedisOptions{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		testCacheHitBudgets(t, l)
	})
}

func testCacheHitBudgets(t *testing.T, ledger budget.Ledger) {
	s := newCacheStack(t, stackOptions{ledger: ledger,
		keyBudgets: `[{usd: 0.022, per: day}, {tokens: 1000000, per: day}, {requests: 4, per: minute}]`}, "")
	limits := []budget.Limit{
		{Unit: budget.USD, Per: budget.Day, Max: 22_000_000_000},
		{Unit: budget.Tokens, Per: budget.Day, Max: 1_000_000},
		{Unit: budget.Requests, Per: budget.Minute, Max: 4},
	}
	body := cacheBody("claude-sonnet-4-5", false)
	miss := cacheSend(t, s, gatewayKey, body, nil)
	recs := s.records.wait(t, 1)
	afterMiss := used(t, ledger, limits...)
	if afterMiss[0] != recs[0].CostPicoUSD || afterMiss[0] < 21_000_000_000 || afterMiss[1] == 0 || afterMiss[2] != 1 {
		t.Fatalf("after the MISS: used %v; want its cost %d, tokens and 1 request", afterMiss, recs[0].CostPicoUSD)
	}
	hits := []reply{cacheSend(t, s, gatewayKey, body, nil), cacheSend(t, s, gatewayKey, body, nil)}
	wantStatuses(t, append([]reply{miss}, hits...), "MISS", "HIT", "HIT")
	recs = s.records.wait(t, 3)
	afterHits := used(t, ledger, limits...)
	if afterHits[0] != afterMiss[0] || afterHits[1] != afterMiss[1] || afterHits[2] != 3 {
		t.Errorf("after two HITs: used %v; want USD and tokens as after the MISS %v, and 3 requests", afterHits, afterMiss)
	}
	for _, r := range recs[1:] {
		if r.CacheStatus != "HIT" || r.CostPicoUSD != 0 || r.Cost != pricing.FormatUSD(0) || r.CostSavedPicoUSD != recs[0].CostPicoUSD ||
			r.Outcome != records.OutcomeOK || r.Status != 200 || r.BudgetOutcome != "allowed" || r.Usage.TotalTokens() != 0 || r.ReservedPicoUSD != 0 {
			t.Errorf("HIT record: status %d outcome %s cache %s cost %d %q saved %d (MISS cost %d) budget %s reserved %d usage %+v",
				r.Status, r.Outcome, r.CacheStatus, r.CostPicoUSD, r.Cost, r.CostSavedPicoUSD, recs[0].CostPicoUSD, r.BudgetOutcome, r.ReservedPicoUSD, r.Usage)
		}
	}
	if recs[0].CacheStatus != "MISS" || recs[0].CostSavedPicoUSD != 0 {
		t.Errorf("MISS record: cache %s saved %d", recs[0].CacheStatus, recs[0].CostSavedPicoUSD)
	}
	// Another request is held to the spent USD budget (a refusal counts no
	// request); the cached one is not, until the request rate is spent.
	if r := cacheSend(t, s, gatewayKey, cacheBody("claude-sonnet-4-5", true), nil); r.status != 429 || !strings.Contains(string(r.body), "budget") {
		t.Errorf("a request not cached: status %d %s; want 429 for the spent USD budget", r.status, r.body)
	}
	if r := cacheSend(t, s, gatewayKey, body, nil); r.status != 200 || r.cacheStatus != "HIT" {
		t.Errorf("fourth request: status %d %s; want a HIT", r.status, r.cacheStatus)
	}
	if r := cacheSend(t, s, gatewayKey, body, nil); r.status != 429 || !strings.Contains(string(r.body), "rate limit") {
		t.Errorf("fifth request: status %d %s; want 429 (requests: 4 per minute)", r.status, r.body)
	}
}
