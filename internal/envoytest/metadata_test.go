package envoytest

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Rule 10 (ENVOY-EXTPROC section 13): metadata_options. These tests pin what
// ext_proc's Filter::setDynamicMetadata and Filter::addDynamicMetadata
// (source/extensions/filters/http/ext_proc/ext_proc.cc) do with a request's
// dynamic metadata, and that upstream filters share the downstream
// StreamInfo (source/common/router/upstream_request.cc, UpstreamFilterManager).

// extProcAs is extProc with the initial metadata x-test-filter: name, so that
// a script serving several filters can tell their streams apart.
func extProcAs(name, fields string) string {
	if fields != "" {
		fields = ", " + fields
	}
	return fmt.Sprintf(`{name: %s, typed_config: {%s, grpc_service: {envoy_grpc: {cluster_name: proc}, initial_metadata: [{key: x-test-filter, value: %s}]}, message_timeout: 5s%s}}`,
		name, extProcType, name, fields)
}

// byFilter runs the script of the filter that opened the stream.
func byFilter(scripts map[string]script) script {
	return func(ps *scriptStream) error {
		name := ""
		if v := ps.md.Get("x-test-filter"); len(v) > 0 {
			name = v[0]
		}
		sc, ok := scripts[name]
		if !ok {
			return fmt.Errorf("no script for filter %q", name)
		}
		return sc(ps)
	}
}

// streamsOf returns what each stream of the named filter received, in the
// order the streams were opened.
func (p *procServer) streamsOf(name string) [][]*extprocsvc.ProcessingRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]*extprocsvc.ProcessingRequest
	for _, s := range p.streams {
		if v := s.md.Get("x-test-filter"); len(v) > 0 && v[0] == name {
			out = append(out, append([]*extprocsvc.ProcessingRequest(nil), s.received...))
		}
	}
	return out
}

// dynMeta builds a reply's dynamic_metadata from a Go value.
func dynMeta(t *testing.T, v map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forwarded returns a message's metadata_context.filter_metadata as Go
// values; it fails the test when metadata_context is missing, which Envoy
// never does.
func forwarded(t *testing.T, m *extprocsvc.ProcessingRequest) map[string]any {
	t.Helper()
	if m.GetMetadataContext() == nil {
		t.Fatalf("%s: metadata_context missing", kind(m))
	}
	out := map[string]any{}
	for k, v := range m.GetMetadataContext().GetFilterMetadata() {
		out[k] = v.AsMap()
	}
	return out
}

// metaScript answers every message with a pass-through reply; write, if it
// returns a Go value for a message, is put in that reply's dynamic_metadata.
func metaScript(t *testing.T, write func(m *extprocsvc.ProcessingRequest) map[string]any) script {
	return func(ps *scriptStream) error {
		return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := echoReply(m)
			if v := write(m); v != nil {
				r.DynamicMetadata = dynMeta(t, v)
			}
			return r
		})
	}
}

// A reply may write only the namespaces its filter receives: other
// namespaces are dropped, and a filter without receiving namespaces writes
// nothing at all.
func TestRule10_ReceivingNamespacesFilterWrites(t *testing.T) {
	proc := startProc(t, byFilter(map[string]script{
		"p": metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
			if m.GetRequestHeaders() != nil {
				return map[string]any{"a": map[string]any{"from": "p"}, "b": map[string]any{"from": "p"}}
			}
			return nil
		}),
		"q": metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
			if m.GetRequestHeaders() != nil {
				return map[string]any{"a": map[string]any{"from": "q"}, "c": map[string]any{"from": "q"}}
			}
			return nil
		}),
	}))
	up := startUpstream(t, nil)
	cfg := testConfig{filters: []string{
		extProcAs("p", `processing_mode: {request_body_mode: BUFFERED}, metadata_options: {receiving_namespaces: {untyped: [a]}, forwarding_namespaces: {untyped: [a, b, c]}}`),
		extProcAs("q", `metadata_options: {forwarding_namespaces: {untyped: [a, b, c]}}`),
	}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, body := do(t, h, "POST", "/", "hello"); code != 200 || body != "upstream says hi" {
		t.Fatalf("status %d body %q", code, body)
	}
	fromP := map[string]any{"a": map[string]any{"from": "p"}}
	p, q := proc.streamsOf("p"), proc.streamsOf("q")
	if len(p) != 1 || len(q) != 1 {
		t.Fatalf("%d streams of p, %d of q", len(p), len(q))
	}
	want := map[string][]map[string]any{
		"p": {{}, fromP, fromP},
		"q": {fromP, fromP},
	}
	got := map[string][]map[string]any{}
	for name, msgs := range map[string][]*extprocsvc.ProcessingRequest{"p": p[0], "q": q[0]} {
		for _, m := range msgs {
			got[name] = append(got[name], forwarded(t, m))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forwarded metadata per message (-want +got):\n%s\np: %v\nq: %v", diff, kinds(p[0]), kinds(q[0]))
	}
	// b from p, a and c from q.
	if n := h.Stats().DynamicMetadataDropped; n != 3 {
		t.Errorf("DynamicMetadataDropped = %d, want 3", n)
	}
}

// Writes to one namespace merge into it as protobuf's Struct MergeFrom does:
// field by field at the top level of the namespace, a nested Struct replaced
// whole; a value that is not a Struct writes an empty one.
func TestRule10_WritesMergeFieldByField(t *testing.T) {
	proc := startProc(t, metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
		switch {
		case m.GetRequestHeaders() != nil:
			return map[string]any{"ns": map[string]any{"a": 1, "keep": "k", "nested": map[string]any{"x": 1}}}
		case m.GetRequestBody() != nil:
			return map[string]any{"ns": map[string]any{"a": "one", "b": 2, "nested": map[string]any{"y": 2}}, "other": "not a struct"}
		}
		return nil
	}))
	up := startUpstream(t, nil)
	cfg := testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED}, `+
		`metadata_options: {receiving_namespaces: {untyped: [ns, other]}, forwarding_namespaces: {untyped: [ns, other]}}`)}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "POST", "/", "hello"); code != 200 {
		t.Fatalf("status %d", code)
	}
	msgs := proc.messages(0)
	if got := kinds(msgs); len(got) != 3 || got[2] != "response_headers(eos=false)" {
		t.Fatalf("messages %v", got)
	}
	want := map[string]any{
		"ns":    map[string]any{"a": "one", "b": 2.0, "keep": "k", "nested": map[string]any{"y": 2.0}},
		"other": map[string]any{},
	}
	if diff := cmp.Diff(want, forwarded(t, msgs[2])); diff != "" {
		t.Errorf("response_headers metadata_context (-want +got):\n%s", diff)
	}
}

// Envoy adds metadata_context to every message it builds (headers, and each
// body message, BUFFERED or STREAMED chunk), with the forwarding namespaces
// as they are when the message is built; a filter that forwards nothing gets
// an empty Metadata on every message.
func TestRule10_ForwardedOnEveryMessage(t *testing.T) {
	proc := startProc(t, byFilter(map[string]script{
		"p": metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
			switch {
			case m.GetRequestHeaders() != nil:
				return map[string]any{"ns": map[string]any{"step": "headers"}}
			case m.GetRequestBody() != nil:
				return map[string]any{"ns": map[string]any{"step": "body"}}
			}
			return nil
		}),
		"q": (*scriptStream).echo,
	}))
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			_ = rc.Flush()
		}
	})
	const mode = `processing_mode: {request_body_mode: BUFFERED, response_body_mode: STREAMED}`
	cfg := testConfig{filters: []string{
		extProcAs("p", mode+`, metadata_options: {receiving_namespaces: {untyped: [ns]}, forwarding_namespaces: {untyped: [ns]}}`),
		extProcAs("q", mode),
	}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, body := do(t, h, "POST", "/", "hello"); code != 200 || body != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Fatalf("status %d body %q", code, body)
	}
	p, q := proc.streamsOf("p")[0], proc.streamsOf("q")[0]
	for name, msgs := range map[string][]*extprocsvc.ProcessingRequest{"p": p, "q": q} {
		k := kinds(msgs)
		if len(k) < 4 || k[0] != "request_headers(eos=false)" || k[1] != "request_body(eos=true)" ||
			k[2] != "response_headers(eos=false)" || k[len(k)-1] != "response_body(eos=true)" {
			t.Fatalf("%s messages %v", name, k)
		}
	}
	step := func(s string) map[string]any { return map[string]any{"ns": map[string]any{"step": s}} }
	for i, m := range p {
		want := step("body")
		switch i {
		case 0:
			want = map[string]any{}
		case 1:
			want = step("headers")
		}
		if diff := cmp.Diff(want, forwarded(t, m)); diff != "" {
			t.Errorf("p %s (message %d) metadata_context (-want +got):\n%s", kind(m), i, diff)
		}
	}
	for i, m := range q {
		if got := forwarded(t, m); len(got) != 0 {
			t.Errorf("q %s (message %d) forwards nothing but got %v", kind(m), i, got)
		}
	}
}

// Which replies write: every headers and body reply, a spurious one too
// (the write comes before the check), an immediate_response; not a message
// that only carries override_message_timeout, nor an immediate_response that
// disable_immediate_response turns spurious.
func TestRule10_WhichRepliesWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields string
		first  func(m *extprocsvc.ProcessingRequest) []*extprocsvc.ProcessingResponse
		writes bool
	}{
		{"spurious reply", "", func(m *extprocsvc.ProcessingRequest) []*extprocsvc.ProcessingResponse {
			return []*extprocsvc.ProcessingResponse{{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvc.HeadersResponse{}}}}
		}, true},
		{"override_message_timeout alone", "max_message_timeout: 10s", func(m *extprocsvc.ProcessingRequest) []*extprocsvc.ProcessingResponse {
			return []*extprocsvc.ProcessingResponse{{OverrideMessageTimeout: durationpb.New(8e9)}, echoReply(m)}
		}, false},
		{"immediate_response under disable_immediate_response", "disable_immediate_response: true", func(m *extprocsvc.ProcessingRequest) []*extprocsvc.ProcessingResponse {
			return []*extprocsvc.ProcessingResponse{immediate(typev3.StatusCode_Forbidden, "no")}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, byFilter(map[string]script{
				"p": func(ps *scriptStream) error {
					m, err := ps.recv()
					if err != nil {
						return nil
					}
					rs := tc.first(m)
					rs[0].DynamicMetadata = dynMeta(t, map[string]any{"ns": map[string]any{"written": true}})
					for _, r := range rs {
						if ps.send(r) != nil {
							return nil
						}
					}
					return ps.echo()
				},
				"q": (*scriptStream).echo,
			}))
			up := startUpstream(t, nil)
			cfg := testConfig{filters: []string{
				extProcAs("p", `failure_mode_allow: true, metadata_options: {receiving_namespaces: {untyped: [ns]}}, `+tc.fields),
				extProcAs("q", `metadata_options: {forwarding_namespaces: {untyped: [ns]}}`),
			}}
			h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			if code, _, _ := do(t, h, "GET", "/", ""); code != 200 {
				t.Fatalf("status %d", code)
			}
			q := proc.streamsOf("q")
			if len(q) != 1 || len(q[0]) == 0 {
				t.Fatalf("q streams %v", q)
			}
			_, wrote := forwarded(t, q[0][0])["ns"]
			if wrote != tc.writes {
				t.Errorf("q's request_headers carries ns: %v, want %v", wrote, tc.writes)
			}
		})
	}
}

// metaChain is a bootstrap with a downstream policy-like filter and an
// aggregate cluster "chain" over up and up2 whose adapter-like upstream
// filter sees the request and response headers of each attempt; a 5xx is
// retried once on the next child (previous_priorities), as in
// extproc/e2e/fallback_test.go's withFallback.
func metaChain(policyFields, adapterFields string) testConfig {
	adapter := extProcAs("adapter", `request_attributes: [upstream.request_attempt_count], `+
		`processing_mode: {request_header_mode: SEND, request_body_mode: BUFFERED, response_header_mode: SEND, response_body_mode: NONE}, `+adapterFields)
	cfg := chainConfig("5xx")
	cfg.filters = []string{extProcAs("policy", `processing_mode: {request_body_mode: BUFFERED, response_header_mode: SEND}, `+policyFields)}
	cfg.extra = chainCluster(adapter)
	return cfg
}

// attemptOf reads upstream.request_attempt_count from a request_headers
// message.
func attemptOf(m *extprocsvc.ProcessingRequest) int {
	return int(m.GetAttributes()[extProcAttributesKey].GetFields()["upstream.request_attempt_count"].GetNumberValue())
}

// Upstream filters read and write the downstream StreamInfo on every
// attempt: the policy filter's body reply is visible to the adapter of
// attempts 1 and 2, and what each attempt's adapter writes (it receives the
// namespace) is visible to the next attempt and to the policy filter's
// response headers. Nothing of it reaches a provider.
func TestRule10_UpstreamFiltersShareDownstreamStreamInfo(t *testing.T) {
	const both = `metadata_options: {receiving_namespaces: {untyped: [tollgate]}, forwarding_namespaces: {untyped: [tollgate]}}`
	proc := startProc(t, byFilter(map[string]script{
		"policy": metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
			if m.GetRequestBody() != nil {
				return map[string]any{"tollgate": map[string]any{"decision": "decision-Q"}}
			}
			return nil
		}),
		"adapter": func(ps *scriptStream) error {
			n := 0
			return metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
				if m.GetRequestHeaders() != nil {
					n = attemptOf(m)
				}
				if rh := m.GetResponseHeaders(); rh != nil {
					st, _ := headerValue(rh.GetHeaders(), ":status")
					return map[string]any{"tollgate": map[string]any{"attempt_" + strconv.Itoa(n): st}}
				}
				return nil
			})(ps)
		},
	}))
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	up2 := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served by up2") })
	h := startHarness(t, metaChain(both, both).write(t), map[string]string{"proc": proc.addr, "up": up.addr, "up2": up2.addr})
	if code, _, body := do(t, h, "POST", "/v1/messages", "original body"); code != 200 || body != "served by up2" {
		t.Fatalf("status %d body %q", code, body)
	}

	tg := func(kv ...string) map[string]any {
		ns := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			ns[kv[i]] = kv[i+1]
		}
		return map[string]any{"tollgate": ns}
	}
	adapters := proc.streamsOf("adapter")
	if len(adapters) != 2 {
		t.Fatalf("%d adapter streams, want 2", len(adapters))
	}
	wantAdapter := [][]map[string]any{
		{tg("decision", "decision-Q"), tg("decision", "decision-Q"), tg("decision", "decision-Q")},
		{tg("decision", "decision-Q", "attempt_1", "500"), tg("decision", "decision-Q", "attempt_1", "500"), tg("decision", "decision-Q", "attempt_1", "500")},
	}
	for i, msgs := range adapters {
		if k := kinds(msgs); len(k) != 3 || k[0] != "request_headers(eos=false)" || k[1] != "request_body(eos=true)" || !strings.HasPrefix(k[2], "response_headers") {
			t.Fatalf("attempt %d adapter messages %v", i+1, k)
		}
		if n := attemptOf(msgs[0]); n != i+1 {
			t.Fatalf("adapter stream %d is attempt %d", i, n)
		}
		var got []map[string]any
		for _, m := range msgs {
			got = append(got, forwarded(t, m))
		}
		if diff := cmp.Diff(wantAdapter[i], got); diff != "" {
			t.Errorf("attempt %d adapter metadata_context (-want +got):\n%s", i+1, diff)
		}
	}
	policy := proc.streamsOf("policy")[0]
	if k := kinds(policy); len(k) != 3 || k[2] != "response_headers(eos=false)" {
		t.Fatalf("policy messages %v", k)
	}
	if diff := cmp.Diff(tg("decision", "decision-Q", "attempt_1", "500", "attempt_2", "200"), forwarded(t, policy[2])); diff != "" {
		t.Errorf("policy response_headers metadata_context (-want +got):\n%s", diff)
	}
	for _, rr := range append(up.requests(), up2.requests()...) {
		for k, vs := range rr.Header {
			for _, v := range vs {
				if strings.Contains(v, "decision-Q") {
					t.Errorf("a provider saw the decision in header %s: %q", k, v)
				}
			}
		}
	}
}

// An immediate_response writes its dynamic_metadata before the local reply:
// an adapter's refusal is visible to the policy filter's response headers,
// which see the local reply.
func TestRule10_ImmediateResponseWrites(t *testing.T) {
	proc := startProc(t, byFilter(map[string]script{
		"policy": (*scriptStream).echo,
		"adapter": func(ps *scriptStream) error {
			if _, err := ps.recv(); err != nil {
				return nil
			}
			r := immediate(typev3.StatusCode_Forbidden, "no decision")
			r.DynamicMetadata = dynMeta(t, map[string]any{"tollgate": map[string]any{"refused": "no decision"}})
			_ = ps.send(r)
			return silent(ps)
		},
	}))
	up := startUpstream(t, nil)
	up2 := startUpstream(t, nil)
	h := startHarness(t, metaChain(`metadata_options: {forwarding_namespaces: {untyped: [tollgate]}}`,
		`metadata_options: {receiving_namespaces: {untyped: [tollgate]}}`).write(t),
		map[string]string{"proc": proc.addr, "up": up.addr, "up2": up2.addr})
	if code, _, body := do(t, h, "POST", "/", "x"); code != 403 || body != "no decision" {
		t.Fatalf("status %d body %q", code, body)
	}
	policy := proc.streamsOf("policy")[0]
	if k := kinds(policy); len(k) != 3 || k[2] != "response_headers(eos=false)" {
		t.Fatalf("policy messages %v", k)
	}
	want := map[string]any{"tollgate": map[string]any{"refused": "no decision"}}
	if diff := cmp.Diff(want, forwarded(t, policy[2])); diff != "" {
		t.Errorf("policy response_headers metadata_context (-want +got):\n%s", diff)
	}
}

// Dynamic metadata read as an attribute: Envoy evaluates each attribute as a
// CEL expression against the live StreamInfo once per direction, for its first
// message, and sends a string leaf as a string, a number as its printed
// double, a Struct as "CelMap value"; a missing key is left out
// (ExpressionManager::evaluateAttributes, ext_proc/matching_utils.cc).
func TestRule10_DynamicMetadataAsAttribute(t *testing.T) {
	proc := startProc(t, metaScript(t, func(m *extprocsvc.ProcessingRequest) map[string]any {
		if m.GetRequestHeaders() != nil {
			return map[string]any{"ns": map[string]any{"s": "a\tb\nc", "n": 3, "m": map[string]any{"x": 1}}}
		}
		return nil
	}))
	up := startUpstream(t, nil)
	names := []string{"metadata.filter_metadata['ns']['s']", "metadata.filter_metadata['ns']['n']",
		"metadata.filter_metadata['ns']['m']", "metadata.filter_metadata['ns']", "metadata.filter_metadata['ns']['absent']",
		"metadata.filter_metadata['none']['s']"}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + n + `"`
	}
	cfg := testConfig{filters: []string{extProcAs("p", `metadata_options: {receiving_namespaces: {untyped: [ns]}}, response_attributes: [`+strings.Join(quoted, ", ")+`]`)}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "POST", "/", "hello"); code != 200 {
		t.Fatalf("status %d", code)
	}
	streams := proc.streamsOf("p")
	if len(streams) != 1 {
		t.Fatalf("%d streams", len(streams))
	}
	var got map[string]*structpb.Value
	for _, m := range streams[0] {
		if m.GetResponseHeaders() != nil {
			got = m.GetAttributes()["envoy.filters.http.ext_proc"].GetFields()
		} else if m.GetResponseBody() != nil && len(m.GetAttributes()) > 0 {
			t.Errorf("response attributes sent again with a body chunk")
		}
	}
	want := map[string]string{names[0]: "a\tb\nc", names[1]: "3", names[2]: "CelMap value", names[3]: "CelMap value"}
	if len(got) != len(want) {
		t.Errorf("attributes %v; want the keys of %v", got, want)
	}
	for k, v := range want {
		if got[k].GetStringValue() != v {
			t.Errorf("%s = %v; want %q", k, got[k], v)
		}
	}
}
