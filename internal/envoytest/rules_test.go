package envoytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// localReplyBody decodes the test config's local_reply_config JSON body.
type localReplyBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Code    float64 `json:"code"`
	Details string  `json:"details"`
}

func decodeLocalReply(t *testing.T, body string) localReplyBody {
	t.Helper()
	var lr localReplyBody
	if err := json.Unmarshal([]byte(body), &lr); err != nil {
		t.Fatalf("local reply body %q is not JSON: %v", body, err)
	}
	return lr
}

// Section 1.1 / section 5: a reply of the wrong type is spurious: 500.
func TestRule1_WrongReplyType500(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		if _, err := ps.recv(); err != nil {
			return nil
		}
		// A response_headers reply to a request_headers message.
		_ = ps.send(&extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvc.HeadersResponse{}}})
		return ps.echo()
	})
	up := startUpstream(t, nil)
	h := startHarness(t, testConfig{filters: []string{extProc("p", "")}}.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	code, _, body := do(t, h, "GET", "/", "")
	if code != 500 {
		t.Fatalf("status %d, want 500", code)
	}
	if lr := decodeLocalReply(t, body); lr.Error.Type != "api_error" || lr.Details != "ext_proc_error_spurious_message" {
		t.Errorf("local reply %+v", lr)
	}
	if len(up.requests()) != 0 || h.Stats().SpuriousMessages != 1 {
		t.Errorf("upstream reached %d times; stats %+v", len(up.requests()), h.Stats())
	}
}

// Section 1.1: exactly one reply per message; a second reply is spurious.
func TestRule1_ExtraReply500(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		m, err := ps.recv()
		if err != nil {
			return nil
		}
		_ = ps.send(echoReply(m))
		_ = ps.send(echoReply(m)) // the extra reply
		for {
			if _, err := ps.recv(); err != nil { // never answer the body
				return nil
			}
		}
	})
	up := startUpstream(t, nil)
	h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED}`)}}.write(t),
		map[string]string{"proc": proc.addr, "up": up.addr})
	code, _, _ := do(t, h, "POST", "/", "hello")
	if code != 500 || h.Stats().SpuriousMessages != 1 {
		t.Fatalf("status %d, stats %+v", code, h.Stats())
	}
}

// Section 2: mode_override merge rules. Unset body modes become NONE; DEFAULT
// header modes keep the configured value; without allow_mode_override the
// override is ignored.
func TestRule2_ModeOverrideMerge(t *testing.T) {
	override := func(ps *scriptStream) error {
		return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := echoReply(m)
			if m.GetRequestHeaders() != nil {
				// Only response_trailer_mode is set: both body modes become NONE.
				r.ModeOverride = &extprocv3.ProcessingMode{ResponseTrailerMode: extprocv3.ProcessingMode_SKIP}
			}
			return r
		})
	}
	const mode = `processing_mode: {request_header_mode: SEND, response_header_mode: SEND, response_body_mode: STREAMED}`
	for _, tc := range []struct {
		name     string
		fields   string
		wantBody bool // response_body messages are sent
	}{
		{"allowed", mode + `, allow_mode_override: true`, false},
		{"not allowed", mode, true},
		{"not in allowed_override_modes", mode + `, allow_mode_override: true, allowed_override_modes: [{response_body_mode: BUFFERED}]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, override)
			up := startUpstream(t, nil)
			h := startHarness(t, testConfig{filters: []string{extProc("p", tc.fields)}}.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			code, _, body := do(t, h, "GET", "/", "")
			if code != 200 || body != "upstream says hi" {
				t.Fatalf("status %d body %q", code, body)
			}
			got := kinds(proc.messages(0))
			if diff := cmp.Diff([]string{"request_headers(eos=true)", "response_headers(eos=false)"}, got[:2]); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if sawBody := len(got) > 2; sawBody != tc.wantBody || (sawBody && got[len(got)-1] != "response_body(eos=true)") {
				t.Errorf("messages %v, want response_body messages: %v", got, tc.wantBody)
			}
		})
	}
}

// Section 3: ExtProcPerRoute under the filter's name: disabled skips every
// phase; overrides.processing_mode replaces the whole mode.
func TestRule2_PerRouteOverrides(t *testing.T) {
	proc := startProc(t, (*scriptStream).echo)
	up := startUpstream(t, nil)
	perRoute := `"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute`
	cfg := testConfig{
		filters: []string{extProc("p", `processing_mode: {response_header_mode: SEND}`)},
		routes: []string{
			fmt.Sprintf(`{match: {prefix: "/off"}, route: {cluster: up}, typed_per_filter_config: {p: {%s, disabled: true}}}`, perRoute),
			fmt.Sprintf(`{match: {prefix: "/buffered"}, route: {cluster: up}, typed_per_filter_config: {p: {%s, overrides: {processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}}}}}`, perRoute),
			`{match: {prefix: "/"}, route: {cluster: up}}`,
		},
	}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "POST", "/off", "x"); code != 200 || proc.streamCount() != 0 {
		t.Fatalf("disabled route: status %d, %d streams", code, proc.streamCount())
	}
	if code, _, _ := do(t, h, "POST", "/buffered", "x"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if diff := cmp.Diff([]string{"request_headers(eos=false)", "request_body(eos=true)"}, kinds(proc.messages(0))); diff != "" {
		t.Errorf("overridden route (-want +got):\n%s", diff)
	}
	if code, _, _ := do(t, h, "GET", "/other", ""); code != 200 {
		t.Fatalf("status %d", code)
	}
	if diff := cmp.Diff([]string{"request_headers(eos=true)", "response_headers(eos=false)"}, kinds(proc.messages(1))); diff != "" {
		t.Errorf("default route (-want +got):\n%s", diff)
	}
}

// Section 1.2: initial_metadata as gRPC headers; attributes under
// envoy.filters.http.ext_proc only in the first message of each direction.
func TestRule2_InitialMetadataAndAttributes(t *testing.T) {
	proc := startProc(t, (*scriptStream).echo)
	up := startUpstream(t, nil)
	fields := `initial_metadata: [{key: x-role, value: tester}], request_attributes: [request.path, request.method, xds.route_name], ` +
		`response_attributes: [response.code], processing_mode: {request_body_mode: STREAMED, response_body_mode: STREAMED}`
	f := strings.Replace(extProc("p", fields), "grpc_service: {envoy_grpc: {cluster_name: proc}}", "grpc_service: {envoy_grpc: {cluster_name: proc}, initial_metadata: [{key: x-role, value: tester}]}", 1)
	f = strings.Replace(f, "initial_metadata: [{key: x-role, value: tester}], request_attributes", "request_attributes", 1)
	cfg := testConfig{filters: []string{f}, routes: []string{`{name: main, match: {prefix: "/"}, route: {cluster: up}}`}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "POST", "/a?b=c", "request body"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if got := proc.streams[0].md.Get("x-role"); len(got) != 1 || got[0] != "tester" {
		t.Errorf("initial metadata x-role = %v", got)
	}
	if got := proc.streams[0].md.Get(":authority"); len(got) != 1 || got[0] != "proc" {
		t.Errorf(":authority = %v, want the cluster name", got)
	}
	ms := proc.messages(0)
	firstReq, firstResp := -1, -1
	for i, m := range ms {
		a := m.GetAttributes()
		isReq := m.GetRequestHeaders() != nil || m.GetRequestBody() != nil
		switch {
		case isReq && firstReq < 0:
			firstReq = i
			fields := a[extProcAttributesKey].GetFields()
			if fields["request.path"].GetStringValue() != "/a?b=c" || fields["request.method"].GetStringValue() != "POST" || fields["xds.route_name"].GetStringValue() != "main" {
				t.Errorf("request attributes %v", fields)
			}
		case !isReq && firstResp < 0:
			firstResp = i
			if c := a[extProcAttributesKey].GetFields()["response.code"].GetNumberValue(); c != 200 {
				t.Errorf("response.code = %v", c)
			}
		default:
			if a != nil {
				t.Errorf("message %d (%s) repeats attributes", i, kind(m))
			}
		}
	}
	if firstReq != 0 || firstResp < 0 || len(ms) < 4 {
		t.Errorf("messages %v", kinds(ms))
	}
}

// Section 2: BUFFERED over the buffer limit is a 413 on requests (formatted
// by local_reply_config); request_body_buffer_limit raises the limit.
func TestRule3_BufferedOverLimit413(t *testing.T) {
	proc := startProc(t, (*scriptStream).echo)
	up := startUpstream(t, nil)
	cfg := testConfig{
		bufferLimit: 1024,
		filters:     []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}`)},
		routes: []string{
			`{match: {prefix: "/big"}, route: {cluster: up}, request_body_buffer_limit: 8192}`,
			`{match: {prefix: "/"}, route: {cluster: up}}`,
		},
	}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	body := strings.Repeat("x", 4096)
	code, _, rb := do(t, h, "POST", "/", body)
	if code != 413 {
		t.Fatalf("status %d, want 413", code)
	}
	if lr := decodeLocalReply(t, rb); lr.Error.Type != "request_too_large" || lr.Error.Message != "Payload Too Large" {
		t.Errorf("413 body %s", rb)
	}
	if len(up.requests()) != 0 {
		t.Errorf("upstream reached")
	}
	if code, _, _ := do(t, h, "POST", "/big", body); code != 200 {
		t.Errorf("raised limit: status %d", code)
	}
	if got := up.requests(); len(got) != 1 || len(got[0].Body) != 4096 {
		t.Errorf("upstream requests %d", len(got))
	}
}

// Section 2: BUFFERED response over the limit is a 500.
func TestRule3_BufferedResponseOverLimit500(t *testing.T) {
	proc := startProc(t, (*scriptStream).echo)
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, strings.Repeat("y", 4096)) })
	cfg := testConfig{bufferLimit: 1024, filters: []string{extProc("p", `processing_mode: {response_body_mode: BUFFERED}`)}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	code, _, body := do(t, h, "GET", "/", "")
	if code != 500 {
		t.Fatalf("status %d body %q", code, body)
	}
	if lr := decodeLocalReply(t, body); lr.Details != "response_payload_too_large" {
		t.Errorf("details %q", lr.Details)
	}
}

// Section 7, as Envoy's source has it: STREAMED response chunks are
// pipelined (chunk 2 is sent before chunk 1 is answered) and re-injected FIFO,
// and the response headers reach the client at the headers reply, before any
// chunk's reply and before any body data arrived (processor_state.cc
// ProcessorState::handleHeadersResponse: body_mode_ STREAMED runs
// sendBufferedDataInStreamedMode, then continueIfNecessary). This corrects
// ENVOY-EXTPROC section 7, which says the headers wait for the first chunk's
// reply.
func TestRule3_StreamedFIFOAndHeadersAtHeadersReply(t *testing.T) {
	secondChunkSeen := make(chan struct{})
	releaseFirst := make(chan struct{})
	proc := startProc(t, func(ps *scriptStream) error {
		var held []*extprocsvc.ProcessingRequest
		for {
			m, err := ps.recv()
			if err != nil {
				return nil
			}
			if m.GetResponseBody() == nil {
				_ = ps.send(echoReply(m))
				continue
			}
			held = append(held, m)
			if len(held) == 2 {
				close(secondChunkSeen)
				<-releaseFirst
				for i, hm := range held {
					// Mark each chunk so the client can check the order.
					b := append([]byte(fmt.Sprintf("[%d]", i)), hm.GetResponseBody().GetBody()...)
					_ = ps.send(reply(hm, &extprocsvc.CommonResponse{BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: b}}}))
				}
			}
			if len(held) > 2 {
				_ = ps.send(echoReply(m))
			}
		}
	})
	gate := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.WriteHeader(200)
		_ = rc.Flush()
		<-gate // the client has the response headers
		_, _ = io.WriteString(w, "one")
		_ = rc.Flush()
		<-gate
		_, _ = io.WriteString(w, "two")
		_ = rc.Flush()
	})
	cfg := testConfig{filters: []string{extProc("p", `processing_mode: {response_body_mode: STREAMED}`)}}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})

	resp, err := http.Get(h.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The headers arrived with no body chunk sent to the processor, let
	// alone answered.
	if n := len(proc.messages(0)); n != 2 {
		t.Fatalf("%d messages before the body, want request and response headers", n)
	}
	gate <- struct{}{}
	for len(proc.messages(0)) < 3 {
		runtimeGosched()
	}
	gate <- struct{}{}
	<-secondChunkSeen
	close(releaseFirst)
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "[0]one[1]two" {
		t.Errorf("body %q, want chunks in FIFO order", b)
	}
	if resp.ContentLength != -1 {
		t.Errorf("content-length kept in STREAMED mode")
	}
}

// Section 4: raw_value only, the append bool, removals before sets, routing
// and pseudo-header restrictions, x-envoy-*, silently ignored and counted.
func TestRule4_HeaderMutationRules(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		m, err := ps.recv()
		if err != nil {
			return nil
		}
		hm := &extprocsvc.HeaderMutation{
			RemoveHeaders: []string{"x-remove-me", "host", ":method", "x-both"},
			SetHeaders: []*corev3.HeaderValueOption{
				setHeader("x-raw", "r"),
				{Header: &corev3.HeaderValue{Key: "x-value-only", Value: "ignored"}},
				{Header: &corev3.HeaderValue{Key: "x-append", RawValue: []byte("2")}, Append: wrapperspb.Bool(true)},
				setHeader("x-over", "new"),
				setHeader(":authority", "evil.example"),
				setHeader("x-envoy-foo", "1"),
				setHeader(":path", "/rewritten"),
				setHeader("X-Both", "b"),
			},
		}
		_ = ps.send(reply(m, &extprocsvc.CommonResponse{HeaderMutation: hm}))
		return ps.echo()
	})
	up := startUpstream(t, nil)
	h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {response_header_mode: SKIP}`)}}.write(t),
		map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "GET", "/orig", "", "x-append", "1", "x-over", "old", "x-remove-me", "1", "x-both", "a"); code != 200 {
		t.Fatalf("status %d", code)
	}
	r := up.requests()[0]
	checks := []struct {
		name string
		got  []string
		want []string
	}{
		{"x-raw", r.Header.Values("x-raw"), []string{"r"}},
		{"x-value-only (value ignored)", r.Header.Values("x-value-only"), []string{""}},
		{"x-append", r.Header.Values("x-append"), []string{"1", "2"}},
		{"x-over", r.Header.Values("x-over"), []string{"new"}},
		{"x-envoy-foo", r.Header.Values("x-envoy-foo"), nil},
		{"x-remove-me", r.Header.Values("x-remove-me"), nil},
		{"x-both (removal before set)", r.Header.Values("x-both"), []string{"b"}},
		{"path", []string{r.Path}, []string{"/rewritten"}},
		{"method", []string{r.Method}, []string{"GET"}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if got := h.Stats().RejectedHeaderMutations; got != 4 {
		t.Errorf("RejectedHeaderMutations = %d, want 4 (:authority, x-envoy-foo, remove host, remove :method)", got)
	}
}

// Section 4: :authority needs allow_all_routing; disallow_is_error turns a
// disallowed mutation into a 500; invalid characters are a 500 even with
// failure_mode_allow.
func TestRule4_RoutingHeadersAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name, fields string
		set          *corev3.HeaderValueOption
		wantCode     int
		wantHost     string
	}{
		{"authority without allow_all_routing is ignored", "", setHeader(":authority", "other.example"), 200, ""},
		{"authority with allow_all_routing", `mutation_rules: {allow_all_routing: true}`, setHeader(":authority", "other.example"), 200, "other.example"},
		{"disallow_is_error", `mutation_rules: {disallow_is_error: true}`, setHeader(":authority", "other.example"), 500, ""},
		{"invalid value with failure_mode_allow", `failure_mode_allow: true`, setHeader("x-bad", "a\r\nb"), 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, func(ps *scriptStream) error {
				m, err := ps.recv()
				if err != nil {
					return nil
				}
				_ = ps.send(reply(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{tc.set}}}))
				return ps.echo()
			})
			up := startUpstream(t, nil)
			fields := `processing_mode: {response_header_mode: SKIP}`
			if tc.fields != "" {
				fields += ", " + tc.fields
			}
			h := startHarness(t, testConfig{filters: []string{extProc("p", fields)}}.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			code, _, _ := do(t, h, "GET", "/", "")
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d", code, tc.wantCode)
			}
			if tc.wantCode != 200 {
				return
			}
			host := up.requests()[0].Header.Get("X-Test-Host")
			if tc.wantHost != "" && host != tc.wantHost {
				t.Errorf("upstream host %q, want %q", host, tc.wantHost)
			}
			if tc.wantHost == "" && host == "other.example" {
				t.Errorf("disallowed :authority applied")
			}
		})
	}
}

// Section 4: content-length in BUFFERED mode with header SEND is kept and not
// fixed up: a body mutation with a stale content-length is a 500.
func TestRule5_ContentLengthMismatch500(t *testing.T) {
	const newBody = "a longer replacement body"
	for _, tc := range []struct {
		name     string
		hm       *extprocsvc.HeaderMutation
		wantCode int
	}{
		{"stale content-length", nil, 500},
		{"content-length set", &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(newBody)))}}, 200},
		{"content-length removed", &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, func(ps *scriptStream) error {
				return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					cr := &extprocsvc.CommonResponse{}
					if m.GetRequestBody() != nil {
						cr.HeaderMutation = tc.hm
						cr.BodyMutation = &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(newBody)}}
					}
					return reply(m, cr)
				})
			})
			up := startUpstream(t, nil)
			h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}`)}}.write(t),
				map[string]string{"proc": proc.addr, "up": up.addr})
			code, _, body := do(t, h, "POST", "/", "short")
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (%s)", code, tc.wantCode, body)
			}
			if code == 500 {
				if lr := decodeLocalReply(t, body); lr.Details != "mismatch_between_content_length_and_the_length_of_the_mutated_body" {
					t.Errorf("details %q", lr.Details)
				}
				return
			}
			if got := string(up.requests()[0].Body); got != newBody {
				t.Errorf("upstream body %q", got)
			}
		})
	}
}

// Section 4: STREAMED removes content-length at header time (the processor
// still sees it) and ignores a content-length the processor sets.
func TestRule5_StreamedRemovesContentLength(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			cr := &extprocsvc.CommonResponse{}
			if m.GetRequestHeaders() != nil {
				cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", "5")}}
			}
			return reply(m, cr)
		})
	})
	var gotCL int64
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { gotCL = r.ContentLength })
	h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: STREAMED, response_header_mode: SKIP}`)}}.write(t),
		map[string]string{"proc": proc.addr, "up": up.addr})
	if code, _, _ := do(t, h, "POST", "/", "hello"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if cl, ok := headerValue(proc.messages(0)[0].GetRequestHeaders().GetHeaders(), "content-length"); !ok || cl != "5" {
		t.Errorf("processor did not see content-length: %q", cl)
	}
	if gotCL != -1 || string(up.requests()[0].Body) != "hello" {
		t.Errorf("upstream content-length %d (want chunked), body %q", gotCL, up.requests()[0].Body)
	}
}

// Section 4: clear_route_cache is honoured only with a header_mutation in the
// same response; the route is re-matched on the new headers (here in the
// request-body reply, as Tollgate does).
func TestRule6_ClearRouteCache(t *testing.T) {
	route := &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-route", "b")}}
	for _, tc := range []struct {
		name         string
		cr           *extprocsvc.CommonResponse
		wantUpstream string
		wantIgnored  int64
	}{
		{"with header mutation", &extprocsvc.CommonResponse{HeaderMutation: route, ClearRouteCache: true}, "up2", 0},
		{"without header mutation", &extprocsvc.CommonResponse{ClearRouteCache: true}, "up", 1},
		{"mutation without clear", &extprocsvc.CommonResponse{HeaderMutation: route}, "up", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, func(ps *scriptStream) error {
				return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					cr := &extprocsvc.CommonResponse{}
					if m.GetRequestBody() != nil {
						cr = tc.cr
					}
					return reply(m, cr)
				})
			})
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "up") })
			up2 := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "up2") })
			cfg := testConfig{
				filters: []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}`)},
				routes: []string{
					`{match: {prefix: "/", headers: [{name: x-route, string_match: {exact: b}}]}, route: {cluster: up2}}`,
					`{match: {prefix: "/"}, route: {cluster: up}}`,
				},
			}
			h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr, "up2": up2.addr})
			code, _, body := do(t, h, "POST", "/", "{}")
			if code != 200 || body != tc.wantUpstream {
				t.Fatalf("status %d, routed to %q, want %q", code, body, tc.wantUpstream)
			}
			if got := h.Stats().ClearRouteCacheIgnored; got != tc.wantIgnored {
				t.Errorf("ClearRouteCacheIgnored = %d, want %d", got, tc.wantIgnored)
			}
		})
	}
}

// realYAMLWithTimeout writes a copy of the committed envoy.yaml with a small
// message_timeout.
func realYAMLWithTimeout(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "message_timeout: 10s", "message_timeout: 0.05s")
	if s == string(data) {
		t.Fatal("envoy.yaml has no message_timeout: 10s to shorten")
	}
	p := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// silent reads everything and never answers.
func silent(ps *scriptStream) error {
	for {
		if _, err := ps.recv(); err != nil {
			return nil
		}
	}
}

// Section 5: no reply within message_timeout is a 504 with
// ext_proc_error_per-message_timeout_exceeded; the committed
// local_reply_config turns it into an Anthropic timeout_error.
func TestRule7_MessageTimeout504(t *testing.T) {
	proc := startProc(t, silent)
	h := startHarness(t, realYAMLWithTimeout(t), map[string]string{"tollgate": proc.addr})
	code, hdr, body := do(t, h, "POST", "/v1/messages", `{}`)
	if code != 504 || hdr.Get("content-type") != "application/json" {
		t.Fatalf("status %d content-type %q", code, hdr.Get("content-type"))
	}
	if want := `{"error":{"message":" (envoy: ext_proc_error_per-message_timeout_exceeded)","type":"timeout_error"},"type":"error"}` + "\n"; body != want {
		t.Errorf("body %q, want %q", body, want)
	}
	if h.Stats().MessageTimeouts != 1 {
		t.Errorf("stats %+v", h.Stats())
	}
}

// Section 5: failure_mode_allow lets the request continue past a timeout and
// a gRPC error; without it a gRPC error is status_on_error.
func TestRule7_FailureModes(t *testing.T) {
	grpcError := func(ps *scriptStream) error {
		_, _ = ps.recv()
		return status.Error(codes.Internal, "boom")
	}
	for _, tc := range []struct {
		name     string
		sc       script
		fields   string
		wantCode int
		details  string
	}{
		{"gRPC error", grpcError, "", 500, "ext_proc_error_gRPC_error_13{boom}"},
		{"gRPC error with status_on_error", grpcError, `status_on_error: {code: 503}`, 503, "ext_proc_error_gRPC_error_13{boom}"},
		{"gRPC error with failure_mode_allow", grpcError, `failure_mode_allow: true`, 200, ""},
		{"timeout with failure_mode_allow", silent, `failure_mode_allow: true, message_timeout: 0.05s`, 200, ""},
		{"processor closes with OK", func(ps *scriptStream) error { _, _ = ps.recv(); return nil }, "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, tc.sc)
			up := startUpstream(t, nil)
			f := extProc("p", tc.fields)
			if strings.Contains(tc.fields, "message_timeout") {
				f = strings.Replace(f, "message_timeout: 5s, ", "", 1)
			}
			h := startHarness(t, testConfig{filters: []string{f}}.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			code, _, body := do(t, h, "POST", "/", "x")
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (%s)", code, tc.wantCode, body)
			}
			if tc.details != "" {
				if lr := decodeLocalReply(t, body); lr.Details != tc.details {
					t.Errorf("details %q, want %q", lr.Details, tc.details)
				}
			}
			if (code == 200) != (len(up.requests()) == 1) {
				t.Errorf("upstream requests %d", len(up.requests()))
			}
		})
	}
}

// Section 1.1: a client disconnect resets the ext_proc stream; the processor
// sees codes.Canceled, and the upstream request is cancelled too.
func TestRule7_ClientDisconnectCancelsStream(t *testing.T) {
	ended := make(chan codes.Code, 1)
	proc := startProc(t, func(ps *scriptStream) error {
		for {
			m, err := ps.recv()
			if err == nil {
				err = ps.send(echoReply(m))
			}
			if err != nil {
				// Envoy half-closes then resets: Recv may report either;
				// the stream's context says how it ended.
				<-ps.stream.Context().Done()
				ended <- status.FromContextError(ps.stream.Context().Err()).Code()
				return nil
			}
		}
	})
	fake := NewFakeAnthropic(FakeAnthropicConfig{APIKey: "k"})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {response_body_mode: STREAMED}`)}}.write(t),
		map[string]string{"proc": proc.addr, "up": fake.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.URL()+"/v1/messages", strings.NewReader(`{"model":"m-slow","stream":true}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: message_start\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	resp.Body.Close()
	if code := <-ended; code != codes.Canceled {
		t.Errorf("processor saw %v, want Canceled", code)
	}
	if err := fake.Close(); err != nil {
		t.Fatal(err)
	}
	if fake.Cancellations() != 1 {
		t.Errorf("fake cancellations = %d, want 1", fake.Cancellations())
	}
}

func immediate(code typev3.StatusCode, body string, hdrs ...*corev3.HeaderValueOption) *extprocsvc.ProcessingResponse {
	return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocsvc.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: code}, Body: []byte(body), Headers: &extprocsvc.HeaderMutation{SetHeaders: hdrs}, Details: "denied by test",
	}}}
}

// Section 5: an immediate response before response headers were sent is a
// local reply: its status, headers and body, with local_reply_config applied
// (which the committed envoy.yaml only does for Envoy's own status codes).
func TestRule7_ImmediateResponseBeforeHeaders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     typev3.StatusCode
		wantBody string
	}{
		{"401 kept as sent", typev3.StatusCode_Unauthorized, `{"type":"error","error":{"type":"authentication_error","message":"bad key"}}`},
		{"504 shaped by local_reply_config", typev3.StatusCode_GatewayTimeout, `{"error":{"message":"{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad key\"}} (envoy: denied_by_test)","type":"timeout_error"},"type":"error"}` + "\n"},
		// The 503 mapper also requires a response flag, which only Envoy's own
		// replies carry (Tollgate answers 503 itself when its budget ledger is down).
		{"503 without a response flag kept as sent", typev3.StatusCode_ServiceUnavailable, `{"type":"error","error":{"type":"authentication_error","message":"bad key"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, func(ps *scriptStream) error {
				if _, err := ps.recv(); err != nil {
					return nil
				}
				_ = ps.send(immediate(tc.code, `{"type":"error","error":{"type":"authentication_error","message":"bad key"}}`, setHeader("content-type", "application/json")))
				return silent(ps)
			})
			h := startHarness(t, "../../envoy.yaml", map[string]string{"tollgate": proc.addr})
			code, hdr, body := do(t, h, "POST", "/v1/messages", `{}`)
			if code != int(tc.code) || body != tc.wantBody || hdr.Get("content-type") != "application/json" {
				t.Errorf("got %d %q %q, want %d %q", code, hdr.Get("content-type"), body, tc.code, tc.wantBody)
			}
		})
	}
}

// Section 5: an immediate response after the response headers were sent
// resets the stream: the client keeps the 200 and gets a truncated body.
func TestRule7_ImmediateResponseAfterHeadersSent(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		for {
			m, err := ps.recv()
			if err != nil {
				return nil
			}
			if b := m.GetResponseBody(); b != nil && strings.Contains(string(b.GetBody()), "second") {
				_ = ps.send(immediate(typev3.StatusCode_InternalServerError, "too late"))
				continue
			}
			_ = ps.send(echoReply(m))
		}
	})
	next := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "first;")
		_ = rc.Flush()
		<-next
		_, _ = io.WriteString(w, "second;")
		_ = rc.Flush()
		<-r.Context().Done()
	})
	h := startHarness(t, testConfig{filters: []string{extProc("p", `processing_mode: {response_body_mode: STREAMED}`)}}.write(t),
		map[string]string{"proc": proc.addr, "up": up.addr})
	resp, err := http.Get(h.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	buf := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first;" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(next)
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("body completed normally (%q); want a reset", rest)
	}
	if len(rest) != 0 {
		t.Errorf("got %q after the reset", rest)
	}
	if h.Stats().DownstreamResets != 1 {
		t.Errorf("stats %+v", h.Stats())
	}
}

// Section 5 and the committed local_reply_config: an upstream connect failure
// is a 503 whose body is an Anthropic api_error carrying Envoy's message.
func TestRule7_LocalReplyConfig503(t *testing.T) {
	proc := startProc(t, tollgateScript)
	h := startHarness(t, "../../envoy.yaml", map[string]string{"tollgate": proc.addr, "prov_demo": "127.0.0.1:1"})
	code, hdr, body := do(t, h, "POST", "/v1/messages", `{"model":"@demo/claude-x"}`)
	want := `{"error":{"message":"upstream connect error or disconnect/reset before headers. reset reason: connection failure (envoy: upstream_reset_before_response_started{connection_failure})","type":"api_error"},"type":"error"}` + "\n"
	if code != 503 || body != want || hdr.Get("content-type") != "application/json" {
		t.Errorf("got %d %q %q", code, hdr.Get("content-type"), body)
	}
	if h.Stats().UpstreamConnectFailures != 1 {
		t.Errorf("stats %+v", h.Stats())
	}
}
