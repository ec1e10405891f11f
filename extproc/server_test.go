package extproc

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/policy"
)

const testPolicy = `version: 1
providers:
  demo:
    type: anthropic
    base_url: http://fake-provider:8080/prefix
    api_key: ${DEMO_KEY}
    models: {claude-sonnet-4-5: claude-sonnet-4-5-20250929}
  other:
    type: anthropic
    api_key: ${DEMO_KEY}
routes:
  demo: {chain: [demo], cluster: chain_demo, models: {sonnet: claude-sonnet-4-5}}
  other: {chain: [other]}
default_route: demo
keys:
  - {id: alice, sha256: ` + "%s" + `, user: alice, team: platform}
`

type staticPolicies struct{ p *policy.Policy }

func (s staticPolicies) Current() *policy.Policy { return s.p }

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	return newTestServerWithClock(t, func() time.Time { return testNow })
}

// newTestServerWithClock is newTestServer with the server's clock.
func newTestServerWithClock(t *testing.T, now func() time.Time) *Server {
	t.Helper()
	src := strings.Replace(testPolicy, "%s", policy.HashKey("tg-alice"), 1)
	p, err := policy.Parse("test.yaml", []byte(src), policy.LoadOptions{
		RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) {
			if k == "DEMO_KEY" {
				return "provider-secret", true
			}
			return "", false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Options{Policies: staticPolicies{p}, ClientFormats: testFormats(), Translation: translations, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decisionOf reads the decision a policy-role reply hands to the adapter.
func decisionOf(t *testing.T, resp *extprocv3.ProcessingResponse) Decision {
	t.Helper()
	ns := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue()
	if len(resp.GetDynamicMetadata().GetFields()) != 1 {
		t.Errorf("dynamic metadata writes namespaces other than %q: %v", metadataNamespace, resp.GetDynamicMetadata())
	}
	d, err := decisionFrom(&extprocv3.ProcessingRequest{MetadataContext: &corev3.Metadata{
		FilterMetadata: map[string]*structpb.Struct{metadataNamespace: ns}}})
	if err != nil {
		t.Fatalf("decision in %v: %v", resp.GetDynamicMetadata(), err)
	}
	return d
}

// withDecision puts d where Envoy gives it to the adapter filter: the
// forwarded namespace of the message's metadata_context.
func withDecision(req *extprocv3.ProcessingRequest, d Decision) *extprocv3.ProcessingRequest {
	req.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		metadataNamespace: d.metadata().GetFields()[metadataNamespace].GetStructValue()}}
	return req
}

// stream opens a real gRPC stream to s over loopback with the given role.
func stream(t *testing.T, s *Server, role string) extprocv3.ExternalProcessor_ProcessClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, s)
	go gs.Serve(lis) //nolint:errcheck
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), hdrRole, role))
	t.Cleanup(cancel)
	c, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func roundTrip(t *testing.T, c extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func headerMap(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func reqHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: eos}}}
}

func reqBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

// sets flattens a header mutation into name -> raw value, failing on any set
// that uses `value` (Envoy reads only raw_value) or appends.
func sets(t *testing.T, m *extprocv3.HeaderMutation) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range m.GetSetHeaders() {
		if o.GetHeader().GetValue() != "" {
			t.Errorf("header %s set through value, not raw_value", o.GetHeader().GetKey())
		}
		if o.GetAppend().GetValue() {
			t.Errorf("header %s appended", o.GetHeader().GetKey())
		}
		out[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	return out
}

func anthropicError(t *testing.T, ir *extprocv3.ImmediateResponse) (status int, typ, msg string) {
	t.Helper()
	var body struct {
		Type  string `json:"type"`
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(ir.GetBody(), &body); err != nil || body.Type != "error" {
		t.Fatalf("immediate response body is not an Anthropic error: %s", ir.GetBody())
	}
	return int(ir.GetStatus().GetCode()), body.Error.Type, body.Error.Message
}

func TestPolicyRoleRoutesByModelPrefix(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, rolePolicy)
	resp := roundTrip(t, c, reqHeaders(false, ":method", "POST", ":path", "/v1/messages?beta=true",
		"x-request-id", "rid-1", "authorization", "Bearer tg-alice", "x-api-key", "tg-alice",
		"accept-encoding", "gzip", "x-tollgate-internal-cluster", "evil", "anthropic-beta", "a,b"))
	hr := resp.GetRequestHeaders().GetResponse()
	if hr == nil {
		t.Fatalf("want a request_headers reply, got %v", resp)
	}
	removed := strings.Join(hr.GetHeaderMutation().GetRemoveHeaders(), ",")
	for _, h := range []string{"authorization", "x-api-key", "accept-encoding", "x-tollgate-internal-cluster"} {
		if !strings.Contains(removed, h) {
			t.Errorf("%s not removed (removed: %s)", h, removed)
		}
	}
	if strings.Contains(removed, "anthropic-beta") {
		t.Error("anthropic-beta removed")
	}

	body := `{"model":"@other/claude-opus-4-8","max_tokens":10,"context_management":{"edits":[]},"messages":[]}`
	resp = roundTrip(t, c, reqBody(body))
	br := resp.GetRequestBody().GetResponse()
	if br == nil || !br.GetClearRouteCache() {
		t.Fatalf("want a request_body reply clearing the route cache, got %v", resp)
	}
	got := sets(t, br.GetHeaderMutation())
	wantBody := `{"model":"claude-opus-4-8","max_tokens":10,"context_management":{"edits":[]},"messages":[]}`
	if b := string(br.GetBodyMutation().GetBody()); b != wantBody {
		t.Errorf("body = %s; want %s", b, wantBody)
	}
	if got["content-length"] != "91" || len(wantBody) != 91 {
		t.Errorf("content-length = %q; body is %d bytes", got["content-length"], len(wantBody))
	}
	if got[hdrCluster] != "chain_other" {
		t.Errorf("cluster = %q", got[hdrCluster])
	}
	// The decision travels in dynamic metadata, never in a header.
	d := decisionOf(t, resp)
	if d.Route != "other" || d.Path != "/v1/messages?beta=true" || d.KeyID != "alice" || d.Model != "claude-opus-4-8" || d.ClientFormat != "anthropic" {
		t.Errorf("decision = %+v", d)
	}
	// The decision names the record, never the client's x-request-id.
	if d.RecordID == "" || d.RecordID == "rid-1" {
		t.Errorf("decision names record %q", d.RecordID)
	}
	for k := range got {
		if strings.HasPrefix(k, internalPrefix) && k != hdrCluster {
			t.Errorf("internal header %s set", k)
		}
	}

	// Response headers of a message pass with no override; other endpoints skip bodies.
	resp = roundTrip(t, c, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")}}})
	if resp.GetResponseHeaders() == nil || resp.GetModeOverride() != nil {
		t.Errorf("response headers reply = %v", resp)
	}
}

func TestPolicyRoleDefaultRouteAndHeaderRoute(t *testing.T) {
	s := newTestServer(t)
	for _, tt := range []struct {
		name, header, route string
	}{
		{"default", "", "demo"},
		{"x-tollgate-provider", "@other", "other"},
		{"portkey alias", "other", "other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := stream(t, s, rolePolicy)
			kv := []string{":method", "GET", ":path", "/v1/models", "x-tollgate-api-key", "tg-alice"}
			if tt.header != "" {
				name := hdrRoute
				if tt.name == "portkey alias" {
					name = hdrPortkeyRoute
				}
				kv = append(kv, name, tt.header)
			}
			resp := roundTrip(t, c, reqHeaders(true, kv...))
			hr := resp.GetRequestHeaders().GetResponse()
			if !hr.GetClearRouteCache() {
				t.Fatalf("route cache not cleared: %v", resp)
			}
			if d := decisionOf(t, resp); d.Route != tt.route {
				t.Fatalf("decision %+v; want route %s", d, tt.route)
			}
			resp = roundTrip(t, c, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
				ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")}}})
			mo := resp.GetModeOverride()
			if mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_NONE || mo.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
				t.Errorf("models response should skip the body and echo the request mode: %v", mo)
			}
		})
	}
}

func TestPolicyRoleRejections(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name    string
		headers []string
		body    string // sent when the headers pass
		status  int
		typ     string
		msg     string
	}{
		{"no key", []string{":method", "POST", ":path", "/v1/messages"}, "", 401, "authentication_error", "missing gateway key"},
		{"bad key", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "nope"}, "", 401, "authentication_error", "invalid gateway key"},
		{"basic auth is no key", []string{":method", "POST", ":path", "/v1/messages", "authorization", "Basic tg-alice"}, "", 401, "authentication_error", "missing"},
		{"unknown path", []string{":method", "POST", ":path", "/v1/complete", "x-api-key", "tg-alice"}, "", 404, "not_found_error", "/v1/complete"},
		{"wrong method", []string{":method", "GET", ":path", "/v1/messages"}, "", 404, "not_found_error", "GET /v1/messages"},
		{"unknown route header", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice", "x-tollgate-provider", "@nope"}, `{"model":"m","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", `unknown route "@nope"`},
		{"unknown route in model", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":"@nope/m","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", `unknown route "nope"`},
		{"conflicting routes", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice", "x-tollgate-provider", "demo"}, `{"model":"@other/m","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", "names route"},
		{"malformed json", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":`, 400, "invalid_request_error", "malformed JSON"},
		{"no model", []string{":method", "POST", ":path", "/v1/messages/count_tokens", "x-api-key", "tg-alice"}, `{"messages":[]}`, 400, "invalid_request_error", "model: field required"},
		{"model too long", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":"` + strings.Repeat("m", 257) + `","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", "at most 256"},
		{"model with a line break", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":"claude\nx-evil: 1","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", "control characters"},
		{"bad routed model", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg-alice"}, `{"model":"@other","max_tokens":1,"messages":[]}`, 400, "invalid_request_error", "@route/model-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stream(t, s, rolePolicy)
			resp := roundTrip(t, c, reqHeaders(false, tt.headers...))
			if tt.body != "" {
				if resp.GetRequestHeaders() == nil {
					t.Fatalf("headers refused: %v", resp)
				}
				resp = roundTrip(t, c, reqBody(tt.body))
			}
			ir := resp.GetImmediateResponse()
			if ir == nil {
				t.Fatalf("want an immediate response, got %v", resp)
			}
			st, typ, msg := anthropicError(t, ir)
			if st != tt.status || typ != tt.typ || !strings.Contains(msg, tt.msg) {
				t.Errorf("got %d %s %q; want %d %s containing %q", st, typ, msg, tt.status, tt.typ, tt.msg)
			}
			if strings.Contains(msg, "tg-alice") {
				t.Error("error message echoes the credential")
			}
		})
	}
}

func TestPolicyRoleWarmUpProbe(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/", "/api/hello"} {
		c := stream(t, s, rolePolicy)
		resp := roundTrip(t, c, reqHeaders(true, ":method", "HEAD", ":path", path))
		if ir := resp.GetImmediateResponse(); ir == nil || ir.GetStatus().GetCode() != 200 || len(ir.GetBody()) != 0 {
			t.Errorf("HEAD %s: %v", path, resp)
		}
	}
}

func adapterAttrs(provider string, attempt float64) map[string]*structpb.Struct {
	fields := map[string]*structpb.Value{attrAttemptCount: structpb.NewNumberValue(attempt)}
	if provider != "" {
		fields[attrProvider] = structpb.NewStringValue(provider)
	}
	return map[string]*structpb.Struct{attrNamespace: {Fields: fields}}
}

func TestAdapterRole(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, roleAdapter)
	req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages?beta=true", ":authority", "localhost:10000",
		"x-request-id", "rid-1", hdrCluster, "chain_demo", "x-tollgate-internal-other", "x",
		"anthropic-beta", "context-management-2025-06-27", "content-length", "40")
	req.Attributes = adapterAttrs("demo", 1)
	withDecision(req, Decision{Route: "demo", Path: "/v1/messages?beta=true", KeyID: "alice", RecordID: "rec-1"})
	resp := roundTrip(t, c, req)
	hm := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
	got := sets(t, hm)
	want := map[string]string{
		":authority": "fake-provider:8080", ":path": "/prefix/v1/messages?beta=true",
		"x-api-key": "provider-secret", "anthropic-version": "2023-06-01",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	if _, ok := got["anthropic-beta"]; ok {
		t.Error("anthropic-beta rewritten")
	}
	removed := strings.Join(hm.GetRemoveHeaders(), ",")
	for _, h := range []string{hdrCluster, "x-tollgate-internal-other", "authorization"} {
		if !strings.Contains(removed, h) {
			t.Errorf("%s not removed", h)
		}
	}

	// The attempt joins the request's trail in dynamic metadata: the decision
	// names no model, so none is recorded.
	att := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()[metadataAttempts].GetStringValue()
	if att != "1\tdemo\t" || len(resp.GetDynamicMetadata().GetFields()) != 1 {
		t.Errorf("attempt metadata = %v", resp.GetDynamicMetadata())
	}

	// The route maps sonnet -> claude-sonnet-4-5, the provider maps that on.
	resp = roundTrip(t, c, reqBody(`{"model":"sonnet","max_tokens":1}`))
	br := resp.GetRequestBody().GetResponse()
	wantBody := `{"model":"claude-sonnet-4-5-20250929","max_tokens":1}`
	if string(br.GetBodyMutation().GetBody()) != wantBody {
		t.Errorf("body = %s", br.GetBodyMutation().GetBody())
	}
	if cl := sets(t, br.GetHeaderMutation())["content-length"]; cl != "53" || len(wantBody) != 53 {
		t.Errorf("content-length = %s, body %d bytes", cl, len(wantBody))
	}

	resp = roundTrip(t, c, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")}}})
	got = sets(t, resp.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if got["x-tollgate-provider"] != "demo" || got["x-tollgate-attempts"] != "1" {
		t.Errorf("served-by headers = %v", got)
	}
}

func TestAdapterRoleFailsClosed(t *testing.T) {
	s := newTestServer(t)
	good := Decision{Route: "demo", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1"}
	malformed := func(req *extprocv3.ProcessingRequest) {
		withDecision(req, good)
		req.MetadataContext.FilterMetadata[metadataNamespace].Fields[metadataDecision] = structpb.NewStringValue("x")
	}
	noRoute := good
	noRoute.Route = ""
	tests := []struct {
		name     string
		set      func(*extprocv3.ProcessingRequest)
		provider string
		msg      string
	}{
		{"missing", func(*extprocv3.ProcessingRequest) {}, "demo", "no routing decision"},
		{"another namespace", func(req *extprocv3.ProcessingRequest) {
			withDecision(req, good)
			md := req.MetadataContext.FilterMetadata
			md["envoy.lb"], md[metadataNamespace] = md[metadataNamespace], nil
		}, "demo", "no routing decision"},
		{"malformed", malformed, "demo", "malformed"},
		{"without a route", func(req *extprocv3.ProcessingRequest) { withDecision(req, noRoute) }, "demo", "malformed"},
		{"no provider metadata", func(req *extprocv3.ProcessingRequest) { withDecision(req, good) }, "", "filter_metadata.tollgate.provider"},
		{"provider outside the chain", func(req *extprocv3.ProcessingRequest) { withDecision(req, good) }, "other", "not in the chain"},
		{"route gone", func(req *extprocv3.ProcessingRequest) {
			d := good
			d.Route = "gone"
			withDecision(req, d)
		}, "demo", "no longer in the policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stream(t, s, roleAdapter)
			req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1")
			req.Attributes = adapterAttrs(tt.provider, 1)
			tt.set(req)
			ir := roundTrip(t, c, req).GetImmediateResponse()
			if ir == nil {
				t.Fatal("request was let through")
			}
			st, typ, msg := anthropicError(t, ir)
			if st != 403 || typ != "permission_error" || !strings.Contains(msg, tt.msg) {
				t.Errorf("got %d %s %q; want 403 containing %q", st, typ, msg, tt.msg)
			}
			// The body names the record of a request whose decision was read,
			// and never the client's x-request-id.
			var body struct {
				RequestID string `json:"request_id"`
			}
			json.Unmarshal(ir.GetBody(), &body) //nolint:errcheck // anthropicError checked it
			want := "rec-1"
			if tt.provider == "demo" && tt.name != "route gone" {
				want = ""
			}
			if body.RequestID != want {
				t.Errorf("request_id %q; want %q", body.RequestID, want)
			}
		})
	}
}

func TestUnknownRoleIsAnError(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, "")
	// The server may end the stream before the message is sent; Send then
	// reports io.EOF and Recv carries the status.
	c.Send(reqHeaders(true, ":method", "GET", ":path", "/")) //nolint:errcheck
	if _, err := c.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v; want InvalidArgument", err)
	}
}

// At its response headers the adapter rewrites its own line of the trail
// (read from the message's metadata_context) with the attempt's status and
// the time since its request headers, on the server's clock; earlier
// attempts' lines stay as they are.
func TestAdapterRecordsStatusAndTimeToHeaders(t *testing.T) {
	clock := testNow
	s := newTestServerWithClock(t, func() time.Time { return clock })
	c := stream(t, s, roleAdapter)
	req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1")
	req.Attributes = adapterAttrs("demo", 2)
	d := Decision{Route: "demo", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1", Model: "sonnet"}
	withDecision(req, d)
	earlier := "1\tdemo\tclaude-sonnet-4-5-20250929\t529\t12.0"
	req.MetadataContext.FilterMetadata[metadataNamespace].Fields[metadataAttempts] = structpb.NewStringValue(earlier)
	trailOf := func(resp *extprocv3.ProcessingResponse) string {
		return resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()[metadataAttempts].GetStringValue()
	}
	own := "2\tdemo\tclaude-sonnet-4-5-20250929"
	if got := trailOf(roundTrip(t, c, req)); got != earlier+"\n"+own {
		t.Fatalf("trail at request headers %q", got)
	}
	roundTrip(t, c, reqBody(`{"model":"sonnet","max_tokens":1}`))

	clock = clock.Add(1234500 * time.Microsecond)
	rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")}}}
	withDecision(rh, d)
	rh.MetadataContext.FilterMetadata[metadataNamespace].Fields[metadataAttempts] = structpb.NewStringValue(earlier + "\n" + own)
	resp := roundTrip(t, c, rh)
	if got, want := trailOf(resp), earlier+"\n"+own+"\t200\t1234.5"; got != want {
		t.Errorf("trail at response headers %q; want %q", got, want)
	}
	if got := sets(t, resp.GetResponseHeaders().GetResponse().GetHeaderMutation()); got["x-tollgate-attempts"] != "2" {
		t.Errorf("served-by headers = %v", got)
	}
}

// A retry reads the body even when it leaves it as it is, and sets its
// content-length: Envoy's header map still holds the one an earlier
// attempt's rewrite set, while the router replays the original body. Attempt
// 1 of the same request skips the body.
func TestAdapterRetryRestoresContentLength(t *testing.T) {
	s := newTestServer(t)
	body := `{"model":"claude-sonnet-4-5","max_tokens":1}`
	for _, attempt := range []float64{1, 2} {
		c := stream(t, s, roleAdapter)
		req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1", "content-length", "99")
		req.Attributes = adapterAttrs("other", attempt)
		withDecision(req, Decision{Route: "other", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1", Model: "claude-sonnet-4-5"})
		resp := roundTrip(t, c, req)
		skips := resp.GetModeOverride().GetRequestBodyMode() == extprocfilterv3.ProcessingMode_NONE && resp.GetModeOverride() != nil
		if skips != (attempt == 1) {
			t.Errorf("attempt %v: mode override %v", attempt, resp.GetModeOverride())
		}
		br := roundTrip(t, c, reqBody(body)).GetRequestBody().GetResponse()
		cl, set := sets(t, br.GetHeaderMutation())["content-length"]
		if want := attempt == 2; set != want || (set && cl != strconv.Itoa(len(body))) || br.GetBodyMutation() != nil {
			t.Errorf("attempt %v: content-length %q (set %v), body mutation %v", attempt, cl, set, br.GetBodyMutation())
		}
	}
}

// A retry whose decision carries the body's length restores content-length at
// its request headers and still skips the body it does not rewrite: no copy of
// the body per retry.
func TestAdapterRetryRestoresContentLengthFromDecision(t *testing.T) {
	s := newTestServer(t)
	c := stream(t, s, roleAdapter)
	req := reqHeaders(false, ":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1", "content-length", "99")
	req.Attributes = adapterAttrs("other", 2)
	withDecision(req, Decision{Route: "other", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1", Model: "claude-sonnet-4-5", BodyBytes: 44})
	resp := roundTrip(t, c, req)
	if resp.GetModeOverride().GetRequestBodyMode() != extprocfilterv3.ProcessingMode_NONE || resp.GetModeOverride() == nil {
		t.Errorf("retry reads a body it does not rewrite: mode override %v", resp.GetModeOverride())
	}
	if cl := sets(t, resp.GetRequestHeaders().GetResponse().GetHeaderMutation())["content-length"]; cl != "44" {
		t.Errorf("content-length %q; want the decision's 44", cl)
	}
}
