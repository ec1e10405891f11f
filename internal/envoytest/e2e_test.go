package envoytest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
)

const demoProviderKey = "demo-provider-key"

// tollgateScript plays both Tollgate roles against the committed envoy.yaml:
// the policy routes on the body and clears the route cache; the adapter
// injects credentials, drops internal headers and maps the model.
func tollgateScript(ps *scriptStream) error {
	if r := ps.md.Get("x-tollgate-role"); len(r) == 1 && r[0] == "adapter" {
		return adapterScript(ps)
	}
	return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		cr := &extprocsvc.CommonResponse{}
		switch m.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			cr.HeaderMutation = &extprocsvc.HeaderMutation{RemoveHeaders: []string{"x-tollgate-api-key", "accept-encoding"}}
		case *extprocsvc.ProcessingRequest_RequestBody:
			cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("x-tollgate-internal-cluster", "chain_demo"),
				setHeader("x-tollgate-internal-decision", "signed"),
			}}
			cr.ClearRouteCache = true
		}
		return reply(m, cr)
	})
}

func adapterScript(ps *scriptStream) error {
	return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		cr := &extprocsvc.CommonResponse{}
		switch r := m.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			cr.HeaderMutation = &extprocsvc.HeaderMutation{
				RemoveHeaders: []string{"x-tollgate-internal-cluster", "x-tollgate-internal-decision"},
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-api-key", demoProviderKey), setHeader("anthropic-version", "2023-06-01")},
			}
		case *extprocsvc.ProcessingRequest_RequestBody:
			body := bytes.Replace(r.RequestBody.GetBody(), []byte(`"@demo/claude-x"`), []byte(`"claude-mapped"`), 1)
			cr.BodyMutation = &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: body}}
			cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(body)))}}
		}
		return reply(m, cr)
	})
}

// TestRule1_MessageOrder runs the committed envoy.yaml end to end (section
// 1.1 order, one stream per request and per attempt) with both roles.
func TestRule1_MessageOrder(t *testing.T) {
	proc := startProc(t, tollgateScript)
	fake := NewFakeAnthropic(FakeAnthropicConfig{APIKey: demoProviderKey, ForbiddenHeaders: []string{"x-tollgate-api-key"}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	h := startHarness(t, "../../envoy.yaml", map[string]string{"tollgate": proc.addr, "prov_demo": fake.Addr()})

	code, hdr, body := do(t, h, "POST", "/v1/messages?beta=true", `{"model":"@demo/claude-x","stream":true,"max_tokens":5}`,
		"x-tollgate-api-key", "tg-demo-key", "content-type", "application/json", "accept-encoding", "gzip")
	if code != 200 || hdr.Get("content-type") != "text/event-stream" {
		t.Fatalf("status %d content-type %q body %s", code, hdr.Get("content-type"), body)
	}
	if !strings.Contains(body, `"model":"claude-mapped"`) || !strings.Contains(body, "event: message_stop") {
		t.Errorf("body does not carry the mapped model and the whole stream:\n%s", body)
	}
	if v := fake.Violations(); len(v) > 0 {
		t.Errorf("provider violations: %v", v)
	}
	if n := proc.streamCount(); n != 2 {
		t.Fatalf("got %d ext_proc streams, want 2 (policy, adapter)", n)
	}
	policy, adapter := proc.messages(0), proc.messages(1)
	if role := proc.streams[1].md.Get("x-tollgate-role"); len(role) != 1 || role[0] != "adapter" {
		policy, adapter = adapter, policy
	}
	got := kinds(policy)
	if len(got) < 4 {
		t.Fatalf("policy messages %v", got)
	}
	want := []string{"request_headers(eos=false)", "request_body(eos=true)", "response_headers(eos=false)"}
	if diff := cmp.Diff(want, got[:3]); diff != "" {
		t.Errorf("policy order (-want +got):\n%s", diff)
	}
	for i, k := range got[3:] {
		last := i == len(got)-4
		if k != "response_body(eos="+strconv.FormatBool(last)+")" {
			t.Errorf("policy message %d = %s", i+3, k)
		}
	}
	if diff := cmp.Diff([]string{"request_headers(eos=false)", "request_body(eos=true)", "response_headers(eos=false)"}, kinds(adapter)); diff != "" {
		t.Errorf("adapter order (-want +got):\n%s", diff)
	}
	// Attributes: provider metadata and attempt count, only in the first
	// message of the request direction.
	attrs := adapter[0].GetAttributes()["envoy.filters.http.ext_proc"].GetFields()
	if p := attrs["xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"].GetStringValue(); p != "demo" {
		t.Errorf("provider attribute = %q, want demo", p)
	}
	if n := attrs["upstream.request_attempt_count"].GetNumberValue(); n != 1 {
		t.Errorf("attempt count attribute = %v, want 1", n)
	}
	if adapter[1].GetAttributes() != nil {
		t.Errorf("attributes repeated on the second message")
	}
	// protocol_config only on each stream's first message.
	for name, ms := range map[string][]*extprocsvc.ProcessingRequest{"policy": policy, "adapter": adapter} {
		for i, m := range ms {
			if (m.GetProtocolConfig() != nil) != (i == 0) {
				t.Errorf("%s message %d: protocol_config present=%v", name, i, m.GetProtocolConfig() != nil)
			}
			if m.GetMetadataContext() == nil {
				t.Errorf("%s message %d: metadata_context missing", name, i)
			}
		}
	}
	// Headers: lowercase, raw_value, pseudo-headers; x-request-id generated.
	rh := policy[0].GetRequestHeaders().GetHeaders()
	for _, k := range []string{":method", ":path", ":authority", ":scheme", "x-request-id", "content-type"} {
		if v, ok := headerValue(rh, k); !ok || v == "" {
			t.Errorf("request header %s missing from the policy's request_headers", k)
		}
	}
	for _, hv := range rh.GetHeaders() {
		if hv.GetValue() != "" || hv.GetKey() != strings.ToLower(hv.GetKey()) {
			t.Errorf("header %q: value %q should be empty and key lowercase", hv.GetKey(), hv.GetValue())
		}
	}
	if p, _ := headerValue(rh, ":path"); p != "/v1/messages?beta=true" {
		t.Errorf(":path = %q", p)
	}
	if s, _ := headerValue(policy[2].GetResponseHeaders().GetHeaders(), ":status"); s != "200" {
		t.Errorf("response :status = %q", s)
	}
	// What the provider received.
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("provider got %d requests", len(reqs))
	}
	var sent map[string]any
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil || sent["model"] != "claude-mapped" {
		t.Errorf("provider body %s (err %v)", reqs[0].Body, err)
	}
	if reqs[0].Header.Get("accept-encoding") != "" {
		t.Errorf("accept-encoding reached the provider")
	}
	st := h.Stats()
	if st.ExtProcStreams != 2 || st.UpstreamAttempts != 1 || st.RouteCacheCleared != 1 {
		t.Errorf("stats %+v", st)
	}
}
