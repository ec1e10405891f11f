package extproc

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/policy"
)

// These benchmarks time Tollgate's handlers without gRPC: what each phase costs
// above an echo processor, which pays the same transport. `tollgate bench`
// measures the same phases end to end (README "Performance").

// benchServer is the server `tollgate bench` measures: the embedded demo
// policy, metrics registered, records discarded.
func benchServer(b *testing.B) *Server {
	b.Helper()
	p, err := policy.Default(policy.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServer(Options{Policies: staticPolicies{p}, ClientFormats: testFormats(), Translation: translations, Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// claudeCodeHeaders are the request headers of a Claude Code request as the
// policy filter receives them (see internal/bench for their sources).
func claudeCodeHeaders(bodyLen int) *corev3.HeaderMap {
	return headerMap(
		":authority", "gateway.example.com:10000", ":path", "/v1/messages?beta=true", ":method", "POST", ":scheme", "http",
		"accept", "application/json", "accept-encoding", "gzip, deflate, br, zstd",
		"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05,effort-2025-11-24",
		"anthropic-dangerous-direct-browser-access", "true", "anthropic-version", "2023-06-01",
		"authorization", "Bearer tg-demo-key", "content-length", strconv.Itoa(bodyLen), "content-type", "application/json",
		"user-agent", "claude-cli/2.1.332 (external, cli)", "x-app", "cli",
		"x-claude-code-session-id", "0b1f6a52-3c1e-4d7a-9f0e-8d2b7c4e5a61",
		"x-stainless-arch", "x64", "x-stainless-lang", "js", "x-stainless-os", "Linux", "x-stainless-package-version", "0.70.0",
		"x-stainless-retry-count", "0", "x-stainless-runtime", "node", "x-stainless-runtime-version", "v24.3.0", "x-stainless-timeout", "600",
		"x-forwarded-for", "10.0.3.17", "x-forwarded-proto", "http", "x-envoy-external-address", "10.0.3.17",
		"x-request-id", "5f0c2a3e-8a41-4c4e-b1f7-0f5b8f1d2c3a",
	)
}

func claudeCodeBody(b *testing.B, size int) []byte {
	b.Helper()
	body, err := bench.ClaudeCodeBody(size, "claude-opus-4-8", true, 1)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func sseChunks(b *testing.B, events int) []*extprocv3.ProcessingRequest {
	b.Helper()
	evs, err := bench.AnthropicSSE(events, "claude-opus-4-8", 1)
	if err != nil {
		b.Fatal(err)
	}
	var out []*extprocv3.ProcessingRequest
	for _, e := range evs {
		out = append(out, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: e}}})
	}
	return append(out, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{EndOfStream: true}}})
}

func sseResponseHeaders() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200", "content-type", "text/event-stream; charset=utf-8",
			"request-id", "req_011CSHnwNk8sy5m3iLJdEG4v", hdrServingProvider, "demo", hdrAttempts, "1")}}}
}

func mustHandle(b *testing.B, p processor, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	resp, err := p.handle(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.GetImmediateResponse() != nil {
		b.Fatalf("immediate response: %s", resp.GetImmediateResponse().GetBody())
	}
	return resp
}

// BenchmarkMutation builds the policy role's request-headers mutation: eleven
// removals, one overwrite, rendered as the proto Envoy reads.
func BenchmarkMutation(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m mutation
		m.Remove(hdrGatewayKey, hdrPortkeyKey, hdrAuthorization, hdrAPIKey, hdrRoute, hdrPortkeyRoute,
			hdrTraceID, hdrPortkeyTraceID, hdrMetadata, hdrPortkeyMeta, "accept-encoding")
		m.Set(hdrCluster, "chain_demo")
		if m.proto() == nil {
			b.Fatal("empty mutation")
		}
	}
}

// BenchmarkPolicyRequestHeaders is the policy role's first phase on a Claude
// Code request: read 28 headers, classify, authenticate (SHA-256 of the key),
// pick the trace id, build the mutation.
func BenchmarkPolicyRequestHeaders(b *testing.B) {
	s := benchServer(b)
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: claudeCodeHeaders(102400)}}}
	b.ReportAllocs()
	for b.Loop() {
		mustHandle(b, newPolicyProcessor(s), req)
	}
}

// BenchmarkPolicyRequestBody is the body phase DESIGN.md budgets at 60 µs CPU
// above echo for 100 KB: scan the Claude Code-shaped body for model, stream and
// max_tokens, resolve the route, write the decision.
func BenchmarkPolicyRequestBody(b *testing.B) {
	for _, size := range []int{2 << 10, 100 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			s := benchServer(b)
			hdrs := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
				RequestHeaders: &extprocv3.HttpHeaders{Headers: claudeCodeHeaders(size)}}}
			body := reqBody(string(claudeCodeBody(b, size)))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				p := newPolicyProcessor(s)
				mustHandle(b, p, hdrs)
				b.StartTimer()
				mustHandle(b, p, body)
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n>>10)
}

// adapterInput returns the adapter's request headers as Envoy sends them after
// the policy role: the client's, less what the policy removed, plus the
// cluster, and the policy role's decision in metadata_context.
func adapterInput(b *testing.B, s *Server, size int) (*extprocv3.ProcessingRequest, *extprocv3.ProcessingRequest) {
	b.Helper()
	p := newPolicyProcessor(s)
	h := claudeCodeHeaders(size)
	mustHandle(b, p, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: h}}})
	body := reqBody(string(claudeCodeBody(b, size)))
	resp := mustHandle(b, p, body)
	kept := &corev3.HeaderMap{}
	for _, hv := range h.GetHeaders() {
		if hv.GetKey() != hdrAuthorization && hv.GetKey() != "accept-encoding" {
			kept.Headers = append(kept.Headers, hv)
		}
	}
	for _, o := range resp.GetRequestBody().GetResponse().GetHeaderMutation().GetSetHeaders() {
		kept.Headers = append(kept.Headers, o.GetHeader())
	}
	attrs := map[string]*structpb.Struct{attrNamespace: {Fields: map[string]*structpb.Value{
		attrProvider:     structpb.NewStringValue("demo"),
		attrAttemptCount: structpb.NewNumberValue(1),
	}}}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		metadataNamespace: resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue()}}
	return &extprocv3.ProcessingRequest{Attributes: attrs, MetadataContext: md, Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: kept}}}, body
}

// BenchmarkAdapterRequestHeaders reads the decision from metadata_context and
// writes the provider's host, path and key.
func BenchmarkAdapterRequestHeaders(b *testing.B) {
	s := benchServer(b)
	hdrs, _ := adapterInput(b, s, 100<<10)
	b.ReportAllocs()
	for b.Loop() {
		mustHandle(b, newAdapterProcessor(s), hdrs)
	}
}

// BenchmarkAdapterRequestBody is the adapter's body phase on a route without
// model mapping: it scans the body a second time to find out.
func BenchmarkAdapterRequestBody(b *testing.B) {
	for _, size := range []int{2 << 10, 100 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			s := benchServer(b)
			hdrs, body := adapterInput(b, s, size)
			a := newAdapterProcessor(s)
			mustHandle(b, a, hdrs)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				mustHandle(b, a, body)
			}
		})
	}
}

// startedStream returns a policy processor that has let a request through and
// seen its SSE response headers.
func startedStream(b *testing.B, s *Server) *policyProcessor {
	b.Helper()
	p := newPolicyProcessor(s)
	mustHandle(b, p, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: claudeCodeHeaders(2048)}}})
	mustHandle(b, p, reqBody(string(claudeCodeBody(b, 2048))))
	mustHandle(b, p, sseResponseHeaders())
	return p
}

// BenchmarkPolicyResponseChunk is one SSE chunk through the policy role (the
// usage meter), early in a 500-event stream and late in it: the per-chunk cost
// DESIGN.md budgets at 5 µs above echo, and the allocations that must not grow
// with the stream.
func BenchmarkPolicyResponseChunk(b *testing.B) {
	chunks := sseChunks(b, 500)
	for _, c := range []struct {
		name string
		at   int
	}{{"early", 5}, {"late", 450}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchServer(b)
			p := startedStream(b, s)
			for _, ch := range chunks[:c.at] {
				mustHandle(b, p, ch)
			}
			// A text delta, replayed: the meter's state stays that of chunk at.
			chunk := chunks[c.at]
			b.SetBytes(int64(len(chunk.GetResponseBody().GetBody())))
			b.ReportAllocs()
			for b.Loop() {
				mustHandle(b, p, chunk)
			}
		})
	}
}

// BenchmarkPolicyStream is a whole 50-event response through the policy role,
// from response headers to the end of stream and the cost record.
func BenchmarkPolicyStream(b *testing.B) {
	s := benchServer(b)
	chunks := sseChunks(b, 50)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := newPolicyProcessor(s)
		mustHandle(b, p, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
			RequestHeaders: &extprocv3.HttpHeaders{Headers: claudeCodeHeaders(2048)}}})
		mustHandle(b, p, reqBody(`{"model":"claude-opus-4-8","max_tokens":1,"messages":[],"stream":true}`))
		b.StartTimer()
		mustHandle(b, p, sseResponseHeaders())
		for _, c := range chunks {
			mustHandle(b, p, c)
		}
		p.finish(context.Background(), nil)
	}
}

// BenchmarkPolicyStreamMemory reports the heap a policy processor keeps alive
// in the middle of a streamed response, after 3 chunks and after 450: memory
// per in-flight stream must not depend on the response's length. Each op holds
// 200 streams; the B/stream figures count each processor and what it retains
// (not gRPC's share, which `tollgate bench` measures end to end).
func BenchmarkPolicyStreamMemory(b *testing.B) {
	const streams = 200
	chunks := sseChunks(b, 500)
	s := benchServer(b)
	heap := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc)
	}
	var early, late float64
	n := 0
	for b.Loop() {
		base := heap()
		held := make([]*policyProcessor, streams)
		for i := range held {
			held[i] = startedStream(b, s)
			for _, c := range chunks[:3] {
				mustHandle(b, held[i], c)
			}
		}
		at3 := heap()
		for _, p := range held {
			for _, c := range chunks[3:450] {
				mustHandle(b, p, c)
			}
		}
		at450 := heap()
		runtime.KeepAlive(held)
		early += (at3 - base) / streams
		late += (at450 - base) / streams
		n++
	}
	b.ReportMetric(early/float64(n), "B/stream@3")
	b.ReportMetric(late/float64(n), "B/stream@450")
}
