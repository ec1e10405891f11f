package extproc

import (
	"context"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy"
)

// cacheBenchPolicy is the bench's cache-hit policy
// (internal/bench/scenarios/92-cache-hit.yaml): the demo route cached.
const cacheBenchPolicy = `version: 1
providers:
  demo: {type: anthropic, base_url: "http://fake-provider:8080", api_key: "${TOLLGATE_DEMO_PROVIDER_KEY:-demo-provider-key}"}
routes:
  demo: {chain: [demo], cluster: chain_demo, cache: {ttl: 1h}}
default_route: demo
keys:
  - {id: demo, sha256: e7aab4b439baa8c615eb31e352f5b4259085813fbcd95a65a5a346a6bdfb1bb3, user: demo, team: demo}
`

// cacheBenchServer is the bench's server for the cache-hit scenario with
// store as its response cache, and that cache filled: the 100 KB request's
// answer (a JSON message) played through once, a MISS.
func cacheBenchServer(b *testing.B, store ResponseCache) (*Server, []*extprocv3.ProcessingRequest) {
	b.Helper()
	pol, err := policy.Parse("cache-hit.yaml", []byte(cacheBenchPolicy), policy.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServer(Options{Policies: staticPolicies{pol}, ClientFormats: testFormats(), Translation: translations,
		Metrics: NewMetrics(prometheus.NewRegistry()), Cache: store})
	if err != nil {
		b.Fatal(err)
	}
	body := claudeCodeBody(b, 100<<10)
	reqs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: claudeCodeHeaders(len(body))}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
	}
	msg := bench.AnthropicMessage("claude-opus-4-8", 1500, 92)
	p := newPolicyProcessor(s)
	for _, r := range append(reqs,
		&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":status", "200", "content-type", "application/json", hdrServingProvider, "demo", hdrAttempts, "1")}}},
		&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: msg, EndOfStream: true}}},
	) {
		mustHandle(b, p, r)
	}
	p.finish(context.Background(), nil)
	if resp := cacheHit1(b, s, reqs); string(resp.GetBody()) != string(msg) {
		b.Fatalf("the hit replays %q", resp.GetBody())
	}
	return s, reqs
}

// cacheHit1 plays one request that the cache answers, and returns its
// immediate response.
func cacheHit1(b *testing.B, s *Server, reqs []*extprocv3.ProcessingRequest) *extprocv3.ImmediateResponse {
	p := newPolicyProcessor(s)
	mustHandle(b, p, reqs[0])
	resp, err := p.handle(context.Background(), reqs[1])
	if err != nil {
		b.Fatal(err)
	}
	ir := resp.GetImmediateResponse()
	if ir == nil || len(ir.GetBody()) == 0 {
		b.Fatalf("not a hit: %v", resp)
	}
	p.finish(context.Background(), nil)
	return ir
}

// BenchmarkPolicyCacheHit is the bench's cache-hit scenario at the policy
// role, without gRPC: the request headers and the 100 KB body of a request
// whose answer is cached, answered with the immediate response, and its
// record, with the memory store and with the Redis store on a real
// redis-server.
func BenchmarkPolicyCacheHit(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		s, reqs := cacheBenchServer(b, cache.NewMemory(cache.MemoryOptions{}))
		b.ReportAllocs()
		for b.Loop() {
			cacheHit1(b, s, reqs)
		}
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
		b.Cleanup(func() { rdb.Close() })
		store, err := cache.NewRedis(rdb, cache.RedisOptions{Timeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		s, reqs := cacheBenchServer(b, store)
		b.ReportAllocs()
		for b.Loop() {
			cacheHit1(b, s, reqs)
		}
	})
}
