package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/provider"
)

func TestClaudeCodeBodyShape(t *testing.T) {
	for _, size := range []int{minBodyBytes, 2048, 100 << 10, 1 << 20} {
		b, err := ClaudeCodeBody(size, "claude-opus-4-8", true, 7)
		if err != nil {
			t.Fatalf("%d: %v", size, err)
		}
		if len(b) != size {
			t.Errorf("%d: got %d bytes", size, len(b))
		}
		if !json.Valid(b) {
			t.Fatalf("%d: not valid JSON: %.200s", size, b)
		}
		f, err := reqbody.Scan(b)
		if err != nil || f.Model != "claude-opus-4-8" || !f.Stream || f.MaxTokens != 64000 {
			t.Errorf("%d: scanned %+v, %v", size, f, err)
		}
		// The keys in Claude Code's order, so the fields the gateway reads come
		// after the bulk.
		var keys []string
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.Token() //nolint:errcheck // the opening brace
		for dec.More() {
			k, _ := dec.Token()
			keys = append(keys, k.(string))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"model", "messages", "system", "tools", "metadata", "max_tokens", "thinking", "context_management", "output_config", "stream"}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("%d: keys (-want +got):\n%s", size, diff)
		}
		again, _ := ClaudeCodeBody(size, "claude-opus-4-8", true, 7)
		if !bytes.Equal(b, again) {
			t.Errorf("%d: not deterministic", size)
		}
	}
	var v struct {
		Tools    []json.RawMessage
		Messages []struct{ Role string }
		System   []json.RawMessage
	}
	b, _ := ClaudeCodeBody(100<<10, "m", false, 1)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	for _, m := range v.Messages {
		roles[m.Role] = true
	}
	if len(v.Tools) < 20 || len(v.System) != 3 || !roles["system"] || !roles["assistant"] {
		t.Errorf("100 KB body: %d tools, %d system blocks, roles %v", len(v.Tools), len(v.System), roles)
	}
	if _, err := ClaudeCodeBody(minBodyBytes-1, "m", true, 1); err == nil {
		t.Error("a body below the minimum was built")
	}
}

func TestAnthropicSSEParses(t *testing.T) {
	for _, n := range []int{11, 50, 500} {
		events, err := AnthropicSSE(n, "claude-opus-4-8", 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != n {
			t.Fatalf("%d events, want %d", len(events), n)
		}
		var p anthropic.StreamParser
		for _, e := range events {
			if !bytes.HasSuffix(e, []byte("\n\n")) || bytes.Count(e, []byte("\n\n")) != 1 {
				t.Fatalf("not one event: %q", e)
			}
			p.Write(e)
		}
		if !p.Done() || p.Model() != "claude-opus-4-8" {
			t.Errorf("%d events: done %v, model %q", n, p.Done(), p.Model())
		}
		if u := p.Usage(); u.InputTokens != 12 || u.CacheReadTokens != 30500 || u.OutputTokens != int64(3*(n-11)+20) {
			t.Errorf("%d events: usage %+v", n, u)
		}
	}
	if _, err := AnthropicSSE(10, "m", 1); err == nil {
		t.Error("a stream below the minimum was built")
	}
	u, model, err := anthropic.ParseMessage(AnthropicMessage("claude-opus-4-8", 1500, 1))
	if err != nil || model != "claude-opus-4-8" || u.OutputTokens != 503 {
		t.Errorf("JSON response: %+v %q %v", u, model, err)
	}
}

func TestScenarioFilesLoad(t *testing.T) {
	scs, err := LoadScenarios(DefaultScenarios())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Scenario{}
	for _, s := range scs {
		byName[s.Name] = s
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
	}
	ref, long := byName[ReferenceScenario], byName[LongStreamScenario]
	if ref == nil || ref.Request.BodyBytes != 102400 || ref.Response.Events != 50 || ref.Rate != 200 {
		t.Errorf("reference scenario: %+v", ref)
	}
	if long == nil || long.Request.BodyBytes != 102400 || long.Response.Events != 500 || long.Hold == nil {
		t.Errorf("long-stream scenario: %+v", long)
	}
	for _, name := range []string{"2k-json", "2k-sse50", "1m-sse50", "deny-bad-key", "budget-memory", "budget-redis", "cache-hit", "fallback"} {
		if byName[name] == nil {
			t.Errorf("scenario %s missing", name)
		}
	}
	if !byName["budget-redis"].Ready() || byName["budget-redis"].Server.Policy == "" || byName["budget-redis"].Server.Default() ||
		!byName["cache-hit"].Ready() || !byName["cache-hit"].CacheHit() || !strings.Contains(byName["cache-hit"].Server.Policy, "cache: {ttl: 1h}") ||
		!byName["deny-bad-key"].Deny() {
		t.Error("statuses or expectations wrong")
	}
	// The fallback scenario: attempt 1 to demo fails with 529, attempt 2 to
	// backup, both in the chain of its policy's route.
	if fb := byName["fallback"]; !fb.Ready() || fb.Adapter.Attempts != 2 || fb.Adapter.FailStatus != 529 ||
		fb.Adapter.provider(1) != "demo" || fb.Adapter.provider(2) != "backup" || !strings.Contains(fb.Server.Policy, "chain: [demo, backup]") {
		t.Error("statuses or expectations wrong")
	}
}

func TestParseScenarioRejects(t *testing.T) {
	for name, src := range map[string]string{
		"unknown field":   "name: x\nresponse: {kind: sse}\nspeed: 3\n",
		"bad kind":        "name: x\nresponse: {kind: xml}\n",
		"few events":      "name: x\nresponse: {kind: sse, events: 5}\n",
		"small body":      "name: x\nrequest: {body_bytes: 100}\nresponse: {kind: sse}\n",
		"not-yet reason":  "name: x\nstatus: not-yet\nresponse: {kind: sse}\n",
		"hold past end":   "name: x\nresponse: {kind: sse, events: 50}\nhold: {at: [3, 60]}\n",
		"hold json":       "name: x\nresponse: {kind: json}\nhold: {}\n",
		"bad key header":  "name: x\nrequest: {key_header: cookie}\nresponse: {kind: sse}\n",
		"unknown service": "name: x\nneeds: [postgres]\nresponse: {kind: sse}\n",
	} {
		if _, err := ParseScenario(name+".yaml", []byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dup := fstest.MapFS{
		"a.yaml": {Data: []byte("name: x\nresponse: {kind: sse}\n")},
		"b.yaml": {Data: []byte("name: x\nresponse: {kind: json}\n")},
	}
	if _, err := LoadScenarios(dup); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("duplicate names: %v", err)
	}
}

// The filters the bench replays by default are envoy.yaml's.
func TestDefaultFiltersMatchEnvoyYAML(t *testing.T) {
	bs, err := envoyconfig.LoadFile("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := envoyconfig.NewModel(bs)
	if err != nil {
		t.Fatal(err)
	}
	policy, adapter, err := FiltersFromEnvoy(m)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy, wantAdapter := DefaultFilters()
	for _, c := range []struct{ got, want Filter }{{policy, wantPolicy}, {adapter, wantAdapter}} {
		if diff := cmp.Diff(c.want, c.got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-default +envoy.yaml):\n%s", c.want.Name, diff)
		}
	}
}

// Section 2's merge: DEFAULT header and trailer modes keep the current ones,
// body modes always replace both, and nothing changes without
// allow_mode_override.
func TestModeOverrideMerge(t *testing.T) {
	_, adapter := DefaultFilters()
	got := adapter.override(adapter.Mode, &extprocfilterv3.ProcessingMode{RequestHeaderMode: extprocfilterv3.ProcessingMode_SKIP})
	want := proto.Clone(adapter.Mode).(*extprocfilterv3.ProcessingMode)
	want.RequestBodyMode = extprocfilterv3.ProcessingMode_NONE
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = adapter.override(adapter.Mode, &extprocfilterv3.ProcessingMode{
		ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP, RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED})
	if got.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP || got.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
		t.Errorf("explicit modes: %v", got)
	}
	adapter.AllowModeOverride = false
	if got := adapter.override(adapter.Mode, &extprocfilterv3.ProcessingMode{}); got != adapter.Mode {
		t.Errorf("override honoured without allow_mode_override: %v", got)
	}
}

func TestHeaderListApply(t *testing.T) {
	h := headerList{{":path", "/v1/messages"}, {"authorization", "Bearer k"}, {"x-a", "1"}, {"x-a", "2"}}
	var m mutationBuilder
	m.remove("authorization")
	m.set("x-a", "3", false)
	m.set("x-b", "4", true)
	h.apply(m.proto())
	want := headerList{{":path", "/v1/messages"}, {"x-a", "3"}, {"x-b", "4"}}
	if diff := cmp.Diff(want, h, cmp.AllowUnexported(header{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("q%v = %v, want %v within 1%%", c.q, got, c.want)
		}
	}
	if h.Count() != 10000 || h.Mean() != 5000500*time.Nanosecond {
		t.Errorf("count %d mean %v", h.Count(), h.Mean())
	}
	var g Histogram
	g.Merge(&h)
	g.Record(time.Hour)
	if g.Count() != 10001 || g.Quantile(1) != time.Hour || g.Quantile(0) != time.Microsecond {
		t.Errorf("merged: count %d max %v min %v", g.Count(), g.Quantile(1), g.Quantile(0))
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader("# HELP x y\ngo_memstats_mallocs_total 1.5e+06\n" +
		`tollgate_phase_duration_seconds_sum{phase="request_body",role="policy"} 0.25` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("go_memstats_mallocs_total"); !ok || v != 1.5e6 {
		t.Errorf("mallocs = %v %v", v, ok)
	}
	if v, ok := m.Get("tollgate_phase_duration_seconds_sum", "phase", "request_body", "role", "policy"); !ok || v != 0.25 {
		t.Errorf("phase sum = %v %v", v, ok)
	}
	if _, err := ParseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Error("a line without a value was accepted")
	}
}

func TestReadProcStat(t *testing.T) {
	s, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if s.RSSBytes <= 0 || s.PeakRSSBytes < s.RSSBytes {
		t.Errorf("stat %+v", s)
	}
}

// servers starts Tollgate (the embedded demo policy) and Echo in this process,
// each on its own loopback gRPC listener, with one metrics endpoint.
func servers(t *testing.T) (tollgate, echo *Target) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	pol, err := policy.Default(policy.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extproc.NewServer(extproc.Options{Policies: staticPolicy{pol}, ClientFormats: []extproc.ClientFormat{anthropic.Format{}},
		Translation: func(c, p string) (extproc.Translation, bool) { return provider.Translation(c, p) }, Metrics: extproc.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(metrics.Close)
	serve := func(impl extprocv3.ExternalProcessorServer) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		extprocv3.RegisterExternalProcessorServer(gs, impl)
		go gs.Serve(lis) //nolint:errcheck // ends with Stop
		t.Cleanup(gs.Stop)
		return lis.Addr().String()
	}
	tollgate = &Target{Name: "tollgate", Addr: serve(srv), PID: os.Getpid(), MetricsURL: metrics.URL, Strict: true}
	echo = &Target{Name: "echo", Addr: serve(Echo{}), PID: os.Getpid(), MetricsURL: metrics.URL}
	return tollgate, echo
}

type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Current() *policy.Policy { return s.p }

// A short run over every kind of scenario: the report has the structure the
// README and `--json` consumers rely on. Nothing here looks at how fast.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and runs load for a few seconds")
	}
	tollgate, echo := servers(t)
	src := map[string]string{
		"a.yaml": "name: " + ReferenceScenario + "\ndescription: d\nrate: 20\nrequest: {body_bytes: 4096}\nresponse: {kind: sse, events: 12}\n",
		"b.yaml": "name: " + LongStreamScenario + "\ndescription: d\nrate: 10\nrequest: {body_bytes: 4096}\nresponse: {kind: sse, events: 30}\nhold: {streams: 8, at: [2, 20]}\n",
		"c.yaml": "name: json\ndescription: d\nrate: 20\nrequest: {body_bytes: 2048, model: \"@demo/claude-opus-4-8\"}\nresponse: {kind: json, chunks: 2, end_stream: with_last}\n",
		"d.yaml": "name: deny\ndescription: d\nrate: 20\nrequest: {key: nope}\nresponse: {kind: sse}\nexpect: deny\n",
		"e.yaml": "name: later\ndescription: d\nstatus: not-yet\nreason: not built\nresponse: {kind: sse}\n",
	}
	fsys := fstest.MapFS{}
	for k, v := range src {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	scs, err := LoadScenarios(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	observed := 0
	rep, err := Run(context.Background(), scs, []*Target{echo, tollgate}, Options{
		Duration: 250 * time.Millisecond, Warmup: 50 * time.Millisecond, Closed: 100 * time.Millisecond, Progress: &progress,
		Observe: func(context.Context, *Scenario, *Target, time.Duration) func() { observed++; return func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 5 || observed != 4*2*2 { // scenarios × targets × rounds
		t.Fatalf("%d scenarios, %d observed windows", len(rep.Scenarios), observed)
	}
	for _, sc := range rep.Scenarios {
		if sc.Name == "later" {
			if sc.Status != StatusNotYet || len(sc.Runs) != 0 {
				t.Errorf("not-yet scenario ran: %+v", sc)
			}
			continue
		}
		for _, target := range []string{"tollgate", "echo"} {
			for _, loop := range []string{LoopOpen, LoopClosed} {
				r := sc.Run(target, loop)
				if r == nil {
					t.Fatalf("%s: no %s %s run", sc.Name, target, loop)
				}
				if r.Errors != 0 || r.Requests == 0 {
					t.Errorf("%s %s %s: %d requests, %d errors %v", sc.Name, target, loop, r.Requests, r.Errors, r.ErrorSamples)
				}
				if r.CPU == nil || r.Allocs == nil || r.Phase(PhaseTotal) == nil || r.Phase(PhasePolicyRequestHeaders) == nil {
					t.Errorf("%s %s %s: missing figures: %+v", sc.Name, target, loop, r)
				}
				if sc.Name != "deny" && r.Phase(PhaseResponseChunk) == nil {
					t.Errorf("%s %s %s: no chunk phase", sc.Name, target, loop)
				}
			}
		}
		if sc.Name == "deny" && sc.Run("tollgate", LoopOpen).Phase(PhasePolicyRequestBody) != nil {
			t.Error("a denied request sent its body")
		}
		if sc.Name == ReferenceScenario {
			// The demo policy maps no model, so Tollgate's adapter switches its
			// body off (mode_override); the echo never does.
			if sc.Run("tollgate", LoopOpen).Phase(PhaseAdapterRequestBody) != nil {
				t.Error("the adapter was sent a body it asked not to get")
			}
			if sc.Run("echo", LoopOpen).Phase(PhaseAdapterRequestBody) == nil {
				t.Error("the echo's adapter stream got no body")
			}
		}
	}
	if got := rep.Scenario("json").Run("tollgate", LoopOpen).Phase(PhaseResponseChunk); got == nil || got.Count%2 != 0 {
		t.Errorf("json scenario chunks: %+v", got)
	}
	if len(rep.Memory) != 1 || len(rep.Memory[0].Targets) != 2 || len(rep.Memory[0].Targets[0].Points) != 2 || rep.Memory[0].Targets[1].Errors != 0 {
		t.Errorf("memory report: %+v", rep.Memory)
	}
	if len(rep.Targets) != 7 {
		t.Errorf("%d targets evaluated", len(rep.Targets))
	}
	for _, tc := range rep.Targets {
		// Every input exists in this run. The per-chunk CPU may round to no
		// clock tick over so few chunks, so it alone may be missing.
		if tc.Met == notMeasured && !strings.HasPrefix(tc.Target, "Per response chunk") {
			t.Errorf("target not measured: %+v", tc)
		}
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Summary", "== " + ReferenceScenario, "policy response_body chunk", "request total", "DESIGN.md targets", "Held streams", "later", "not-yet"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Scenarios) != 5 {
		t.Errorf("JSON round trip: %v", err)
	}
	if testing.Verbose() {
		t.Log("\n" + text.String())
	}
	if !strings.Contains(progress.String(), "open loop") {
		t.Errorf("progress: %q", progress.String())
	}
}

// Replies are checked: a processor that lets a bad key through fails the
// request instead of being measured as a fast Tollgate.
func TestStrictChecksCatchAWrongAnswer(t *testing.T) {
	_, echo := servers(t)
	s, err := ParseScenario("deny.yaml", []byte("name: deny\nrequest: {key: nope}\nresponse: {kind: sse}\nexpect: deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := prepare(s)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := Dial(echo.Addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pol, ad := DefaultFilters()
	pl, err := newPlayer(pool, p, pol, ad, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.play(context.Background(), time.Now(), hooks{}); err == nil || !strings.Contains(err.Error(), "must deny") {
		t.Errorf("err = %v", err)
	}
	s2, _ := ParseScenario("ok.yaml", []byte("name: ok\nresponse: {kind: sse}\n"))
	p2, _ := prepare(s2)
	pl2, _ := newPlayer(pool, p2, pol, ad, true)
	if _, err := pl2.play(context.Background(), time.Now(), hooks{}); err == nil || !strings.Contains(err.Error(), "decision") {
		t.Errorf("err = %v", err)
	}
}

// mutationBuilder builds header mutations for tests.
type mutationBuilder struct{ m extprocv3.HeaderMutation }

func (b *mutationBuilder) remove(k string) { b.m.RemoveHeaders = append(b.m.RemoveHeaders, k) }

func (b *mutationBuilder) set(k, v string, appendValue bool) {
	b.m.SetHeaders = append(b.m.SetHeaders, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}, Append: wrapperspb.Bool(appendValue)})
}

func (b *mutationBuilder) proto() *extprocv3.HeaderMutation { return &b.m }

func TestRoundSummary(t *testing.T) {
	got := rounds([]float64{-1311, 524, 754, 688, 1016, 721})
	want := "-1311 +524 +754 +688 +1016 +721 (mean +399 ± 894, median +704)"
	if got != want {
		t.Errorf("rounds = %q, want %q", got, want)
	}
	if got := rounds([]float64{5}); got != "+5.00" {
		t.Errorf("one round: %q", got)
	}
}
