package envoytest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
)

// streamed answers a FULL_DUPLEX_STREAMED body message with body.
func streamed(m *extprocsvc.ProcessingRequest, body string, eos bool) *extprocsvc.ProcessingResponse {
	return reply(m, &extprocsvc.CommonResponse{BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_StreamedResponse{
		StreamedResponse: &extprocsvc.StreamedBodyResponse{Body: []byte(body), EndOfStream: eos}}}})
}

// duplexUpstream answers "one", then waits for gate, then "two".
func duplexUpstream(t *testing.T, gate chan struct{}) *upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Header().Set("content-length", "6")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "one")
		_ = rc.Flush()
		<-gate
		_, _ = io.WriteString(w, "two")
	})
}

const duplexFilter = `[{name: a, typed_config: {` + extProcType + `, grpc_service: {envoy_grpc: {cluster_name: proc}}, message_timeout: 5s, %s}}, ` +
	`{name: envoy.filters.http.upstream_codec, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec}}]`

// Sections 2 and 7, FULL_DUPLEX_STREAMED on an upstream filter's response,
// as Envoy's source has it: each chunk goes to the processor and Envoy's copy
// is drained (ext_proc.cc Filter::handleDataStreamedModeBase); only what the
// processor sends back as streamed_response continues, and it may send any
// number of them, unsolicited, between chunks, once a chunk was sent and
// until end_of_stream (processor_state.cc handleStreamedBodyCallback and
// handleDuplexStreamedBodyResponse, which keeps the state
// StreamedBodyCallback). The headers continue at the headers reply
// (handleHeadersResponse, continueIfNecessary) and lose content-length.
// The mode comes from the config, or from a mode_override in the request
// headers reply on a filter configured without it.
func TestRule3_FullDuplexStreamedResponse(t *testing.T) {
	for _, tc := range []struct {
		name, fields string
		override     bool
	}{
		{"static", `processing_mode: {response_body_mode: FULL_DUPLEX_STREAMED, response_trailer_mode: SEND}`, false},
		{"mode_override at request headers", `allow_mode_override: true`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startProc(t, func(ps *scriptStream) error {
				for {
					m, err := ps.recv()
					if err != nil {
						return nil
					}
					switch {
					case m.GetRequestHeaders() != nil && tc.override:
						r := echoReply(m)
						r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED,
							ResponseTrailerMode: extprocv3.ProcessingMode_SEND}
						_ = ps.send(r)
					case m.GetResponseBody() != nil:
						b := m.GetResponseBody()
						_ = ps.send(streamed(m, "<"+string(b.GetBody())+">", b.GetEndOfStream()))
						if string(b.GetBody()) == "one" {
							// Unsolicited, while the upstream is idle.
							_ = ps.send(streamed(m, "ping", false))
						}
					default:
						_ = ps.send(echoReply(m))
					}
				}
			})
			gate := make(chan struct{})
			up := duplexUpstream(t, gate)
			cfg := testConfig{upFilters: strings.Replace(duplexFilter, "%s", tc.fields, 1)}
			h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			resp, err := http.Get(h.URL() + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ContentLength != -1 {
				t.Errorf("content-length %d kept in FULL_DUPLEX_STREAMED", resp.ContentLength)
			}
			first := make([]byte, len("<one>ping"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "<one>ping" {
				t.Fatalf("read %q, %v before the upstream went on", first, err)
			}
			close(gate)
			rest, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(rest), "<two>") || strings.Count(string(rest), "<") != strings.Count(string(rest), ">") {
				t.Errorf("rest %q", rest)
			}
		})
	}
}

// Sections 2 and 5: in FULL_DUPLEX_STREAMED a body reply without
// streamed_response is spurious (processor_state.cc
// handleStreamedBodyCallback), and failure_mode_allow no longer applies once
// a body chunk was sent (ext_proc.cc Filter::failureModeAllow); a configured
// FULL_DUPLEX_STREAMED disables mode_override altogether (ext_proc.cc
// Filter::onReceiveMessage).
func TestRule2_FullDuplexRules(t *testing.T) {
	t.Run("plain body reply is spurious, even failing open", func(t *testing.T) {
		// A static FULL_DUPLEX_STREAMED with failure_mode_allow is refused
		// (config.cc); a mode_override sets it on a filter that fails open.
		proc := startProc(t, func(ps *scriptStream) error {
			for {
				m, err := ps.recv()
				if err != nil {
					return nil
				}
				r := echoReply(m)
				if m.GetRequestHeaders() != nil {
					r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED,
						ResponseTrailerMode: extprocv3.ProcessingMode_SEND}
				}
				_ = ps.send(r)
			}
		})
		gate := make(chan struct{})
		close(gate)
		up := duplexUpstream(t, gate)
		cfg := testConfig{upFilters: strings.Replace(duplexFilter, "%s",
			`failure_mode_allow: true, allow_mode_override: true`, 1)}
		h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
		resp, err := http.Get(h.URL() + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "onetwo" {
				t.Fatalf("status %d body %q: the processor's plain reply let the body through", resp.StatusCode, b)
			}
		}
		if st := h.Stats(); st.SpuriousMessages != 1 || st.FailureModeAllowed != 0 {
			t.Errorf("spurious %d, failure mode allowed %d", st.SpuriousMessages, st.FailureModeAllowed)
		}
	})
	t.Run("mode_override ignored when configured", func(t *testing.T) {
		proc := startProc(t, func(ps *scriptStream) error {
			for {
				m, err := ps.recv()
				if err != nil {
					return nil
				}
				r := echoReply(m)
				switch {
				case m.GetRequestHeaders() != nil:
					r.ModeOverride = &extprocv3.ProcessingMode{} // body modes NONE, if honoured
				case m.GetResponseBody() != nil:
					r = streamed(m, string(m.GetResponseBody().GetBody()), m.GetResponseBody().GetEndOfStream())
				}
				_ = ps.send(r)
			}
		})
		gate := make(chan struct{})
		close(gate)
		up := duplexUpstream(t, gate)
		cfg := testConfig{upFilters: strings.Replace(duplexFilter, "%s",
			`allow_mode_override: true, processing_mode: {response_body_mode: FULL_DUPLEX_STREAMED, response_trailer_mode: SEND}`, 1)}
		h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
		code, _, body := do(t, h, "GET", "/", "")
		if code != 200 || body != "onetwo" {
			t.Fatalf("status %d body %q", code, body)
		}
		got := kinds(proc.messages(0))
		if len(got) < 3 || got[2] != "response_body(eos=false)" {
			t.Errorf("messages %v: the response body was not sent", got)
		}
	})
}

// Section 7: a body complete during the headers wait in FULL_DUPLEX_STREAMED
// keeps the headers held past the headers reply (processor_state.cc
// handleHeadersResponse returns without continuing in StreamedBodyCallback)
// until the processor's end_of_stream, and then continues with what it sent.
func TestRule3_FullDuplexWholeBodyBeforeHeadersReply(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		var hdrs *extprocsvc.ProcessingRequest
		var body string
		for {
			m, err := ps.recv()
			if err != nil {
				return nil
			}
			switch {
			case m.GetResponseHeaders() != nil:
				hdrs = m // answered once the whole body is here
			case m.GetResponseBody() != nil:
				body += string(m.GetResponseBody().GetBody())
				if m.GetResponseBody().GetEndOfStream() {
					_ = ps.send(echoReply(hdrs))
					_ = ps.send(streamed(m, "["+body, false))
					_ = ps.send(streamed(m, "]", true))
				}
			default:
				_ = ps.send(echoReply(m))
			}
		}
	})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "xyz") })
	cfg := testConfig{upFilters: strings.Replace(duplexFilter, "%s",
		`processing_mode: {response_body_mode: FULL_DUPLEX_STREAMED, response_trailer_mode: SEND}`, 1)}
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
	code, _, body := do(t, h, "GET", "/", "")
	if code != 200 || body != "[xyz]" {
		t.Fatalf("status %d body %q", code, body)
	}
	want := []string{"request_headers(eos=true)", "response_headers(eos=false)"}
	if got := kinds(proc.messages(0)); len(got) < 3 || !cmp.Equal(got[:2], want) {
		t.Errorf("messages %v", got)
	}
}
