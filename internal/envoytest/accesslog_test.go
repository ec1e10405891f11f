package envoytest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// alServer is an AccessLogService that keeps every message, by stream.
// failFirst makes it end each stream with an error after its first message.
type alServer struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	addr      string
	failFirst bool

	mu      sync.Mutex
	streams [][]*accesslogv3.StreamAccessLogsMessage
}

func startALS(t *testing.T, failFirst bool) *alServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &alServer{addr: ln.Addr().String(), failFirst: failFirst}
	gs := grpc.NewServer()
	accesslogv3.RegisterAccessLogServiceServer(gs, a)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return a
}

func (a *alServer) StreamAccessLogs(st accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	a.mu.Lock()
	i := len(a.streams)
	a.streams = append(a.streams, nil)
	a.mu.Unlock()
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		a.mu.Lock()
		a.streams[i] = append(a.streams[i], m)
		a.mu.Unlock()
		if a.failFirst {
			return errors.New("test: stream refused")
		}
	}
}

// messages returns the messages received so far, by stream.
func (a *alServer) messages() [][]*accesslogv3.StreamAccessLogsMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([][]*accesslogv3.StreamAccessLogsMessage, len(a.streams))
	for i, s := range a.streams {
		out[i] = append([]*accesslogv3.StreamAccessLogsMessage(nil), s...)
	}
	return out
}

func (a *alServer) entries() int {
	n := 0
	for _, s := range a.messages() {
		for _, m := range s {
			n += len(m.GetHttpLogs().GetLogEntry())
		}
	}
	return n
}

// alConfig is a config whose route to cluster up has per_try_idle_timeout
// 0.2 s and no retries, a downstream ext_proc filter p that writes dynamic
// metadata namespace tollgate, and a gRPC access log to cluster als with
// the given filter ("" for none) and common_config fields.
func alConfig(filter, common string) testConfig {
	if filter != "" {
		filter = "filter: " + filter + ", "
	}
	return testConfig{
		filters: []string{extProc("p", `processing_mode: {response_header_mode: SKIP}, metadata_options: {receiving_namespaces: {untyped: [tollgate]}}`)},
		routes:  []string{`{match: {prefix: "/"}, route: {cluster: up, timeout: 0s, retry_policy: {retry_on: "reset", num_retries: 0, per_try_idle_timeout: 0.2s}}}`},
		accessLog: `[{name: endings, ` + filter + `typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig, ` +
			`common_config: {log_name: endings, transport_api_version: V3, grpc_service: {envoy_grpc: {cluster_name: als}}` + common + `}}}]`,
		extra: `  - name: als
    type: STATIC
    load_assignment: {cluster_name: als, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
`,
	}
}

// writesDecision answers the request headers with dynamic metadata
// {tollgate: {decision: {record_id: rec-1}}}, and echoes the rest.
func writesDecision(t *testing.T) script {
	return func(ps *scriptStream) error {
		return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := echoReply(m)
			if m.GetRequestHeaders() != nil {
				r.DynamicMetadata = dynMeta(t, map[string]any{"tollgate": map[string]any{"decision": map[string]any{"record_id": "rec-1"}}})
			}
			return r
		})
	}
}

// The access log (section 10, how requests end): an entry per request at
// its end, with the response flags Envoy sets where it sets them, the
// StreamInfo's dynamic metadata, the status and details.
//
//   - A reset of the provider's HTTP/1 connection after the headers: UC
//     (Router::Filter::onUpstreamReset, streamResetReasonToResponseFlag of
//     ConnectionTermination), details upstream_reset_after_response_started.
//   - A stall past per_try_idle_timeout after the headers: UT
//     (onPerTryTimeoutCommon -> onUpstreamTimeoutAbort), details
//     upstream_per_try_idle_timeout.
//   - A client that closes its HTTP/1 connection: DC
//     (ConnectionManagerImpl::ActiveStream::completeRequest on remote_close_);
//     one that resets its HTTP/2 stream: DR (ActiveStream::onResetStream).
//   - A connect failure: UF, with the 503.
//   - A complete response sets no flag; the response_flag_filter drops it.
func TestAccessLogFlags(t *testing.T) {
	partThen := func(then func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "part")
			_ = http.NewResponseController(w).Flush()
			then(w, r)
		}
	}
	for _, tt := range []struct {
		name     string
		upstream http.HandlerFunc // nil: connect failure
		leave    bool             // the client goes away after "part"
		h2c      bool             // the client speaks HTTP/2 (h2c)
		flag     string           // "" : no entry
		code     uint32
		details  string
	}{
		{"provider reset", partThen(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }), false,
			false, "UC", 200, "upstream_reset_after_response_started{connection_termination}"},
		{"provider stall", partThen(stall), false, false, "UT", 200, "upstream_per_try_idle_timeout"},
		{"client leaves", partThen(stall), true, false, "DC", 200, "downstream_remote_disconnect"},
		{"HTTP/2 client resets its stream", partThen(stall), true, true, "DR", 200, "http2.remote_reset"},
		{"connect failure", nil, false, false, "UF", 503, "upstream_reset_before_response_started{connection_failure}"},
		{"complete", served("up"), false, false, "", 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			als := startALS(t, false)
			proc := startProc(t, writesDecision(t))
			clusters := map[string]string{"proc": proc.addr, "als": als.addr, "up": "127.0.0.1:1"}
			if tt.upstream != nil {
				clusters["up"] = startUpstream(t, tt.upstream).addr
			}
			h := startHarness(t, alConfig(`{response_flag_filter: {flags: [UC, UT, UF, DC, DR]}}`, `, buffer_flush_interval: 0.05s`).write(t), clusters)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", h.URL()+"/x", strings.NewReader("body"))
			req.Header.Set("x-request-id", "rid-1")
			var p http.Protocols
			p.SetHTTP1(!tt.h2c)
			p.SetUnencryptedHTTP2(tt.h2c)
			client := &http.Client{Transport: &http.Transport{Protocols: &p}}
			defer client.CloseIdleConnections()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.leave {
				buf := make([]byte, 4)
				_, _ = io.ReadFull(resp.Body, buf)
				cancel()
			} else {
				_, _ = io.ReadAll(resp.Body)
			}
			resp.Body.Close()
			waitFor(t, "the request's end", func() bool {
				s := h.Stats()
				return s.Requests == 1 && s.AccessLogMessages+s.AccessLogEntriesDropped == s.AccessLogEntries
			})
			if tt.flag == "" {
				waitFor(t, "the filter", func() bool { return h.Stats().AccessLogEntries == 0 })
				if als.entries() != 0 {
					t.Errorf("%d entries; a request with no flag passes no response_flag_filter", als.entries())
				}
				return
			}
			waitFor(t, "the entry", func() bool { return als.entries() == 1 })
			e := als.messages()[0][0].GetHttpLogs().GetLogEntry()[0]
			cp := e.GetCommonProperties()
			if got := strings.Join(responseFlagNames(cp.GetResponseFlags()), ","); got != tt.flag {
				t.Errorf("flags %s, want %s", got, tt.flag)
			}
			if got := e.GetResponse().GetResponseCode().GetValue(); got != tt.code {
				t.Errorf("response code %d, want %d", got, tt.code)
			}
			if tt.details != "" && e.GetResponse().GetResponseCodeDetails() != tt.details {
				t.Errorf("details %q, want %q", e.GetResponse().GetResponseCodeDetails(), tt.details)
			}
			id := cp.GetMetadata().GetFilterMetadata()["tollgate"].GetFields()["decision"].GetStructValue().GetFields()["record_id"].GetStringValue()
			if id != "rec-1" || e.GetRequest().GetRequestId() != "rid-1" || e.GetRequest().GetPath() != "/x" {
				t.Errorf("record id %q request id %q path %q", id, e.GetRequest().GetRequestId(), e.GetRequest().GetPath())
			}
		})
	}
}

// responseFlagNames lists the short names of the flags the harness sets.
func responseFlagNames(f interface {
	GetUpstreamConnectionFailure() bool
	GetUpstreamConnectionTermination() bool
	GetUpstreamRemoteReset() bool
	GetUpstreamRequestTimeout() bool
	GetDownstreamConnectionTermination() bool
	GetDownstreamRemoteReset() bool
}) []string {
	var out []string
	for _, x := range []struct {
		name string
		set  bool
	}{
		{"UF", f.GetUpstreamConnectionFailure()}, {"UC", f.GetUpstreamConnectionTermination()},
		{"UR", f.GetUpstreamRemoteReset()}, {"UT", f.GetUpstreamRequestTimeout()},
		{"DC", f.GetDownstreamConnectionTermination()}, {"DR", f.GetDownstreamRemoteReset()},
	} {
		if x.set {
			out = append(out, x.name)
		}
	}
	return out
}

// The access log's buffering (GrpcAccessLogger, grpc_access_logger.h):
// entries are flushed once buffer_size_bytes is reached, on one stream whose
// first message alone carries the identifier; once the server ends a
// stream, the next flush opens a new one, with the identifier again.
// Without a filter every request is logged.
func TestAccessLogBuffering(t *testing.T) {
	for _, broken := range []bool{false, true} {
		t.Run(map[bool]string{false: "one stream", true: "broken streams"}[broken], func(t *testing.T) {
			als := startALS(t, broken)
			proc := startProc(t, (*scriptStream).echo)
			up := startUpstream(t, served("up"))
			// A flush per entry (buffer_size_bytes 1); the timer never fires.
			h := startHarness(t, alConfig("", `, buffer_size_bytes: 1, buffer_flush_interval: 3600s`).write(t),
				map[string]string{"proc": proc.addr, "als": als.addr, "up": up.addr})
			for i := 0; i < 3; i++ {
				if code, _, _ := do(t, h, "POST", "/", "x"); code != 200 {
					t.Fatalf("status %d", code)
				}
				want := i + 1
				waitFor(t, "the entry", func() bool { return countMessages(als.messages()) == want })
				if broken {
					waitFor(t, "the stream's end", func() bool { return h.Stats().AccessLogStreamsClosed == int64(want) })
				}
			}
			ms := als.messages()
			if !broken && len(ms) != 1 {
				t.Fatalf("%d streams; want one", len(ms))
			}
			for si, s := range ms {
				for mi, m := range s {
					if hasID := m.GetIdentifier().GetLogName() == "endings"; hasID != (mi == 0) {
						t.Errorf("stream %d message %d: identifier %v", si, mi, m.GetIdentifier())
					}
				}
			}
			if broken && len(ms) != 3 {
				t.Errorf("%d streams; want one per entry", len(ms))
			}
		})
	}
}

func countMessages(ms [][]*accesslogv3.StreamAccessLogsMessage) int {
	n := 0
	for _, s := range ms {
		n += len(s)
	}
	return n
}
