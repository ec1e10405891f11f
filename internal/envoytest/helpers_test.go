package envoytest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// script is one ext_proc stream's behaviour in a test: it reads with recv
// and answers with send, and its return value is the RPC status.
type script func(ps *scriptStream) error

// scriptStream wraps the server side of one Process stream and records
// everything received.
type scriptStream struct {
	srv      *procServer
	stream   extprocsvc.ExternalProcessor_ProcessServer
	md       metadata.MD
	received []*extprocsvc.ProcessingRequest
}

// recv returns the next message, or the error that ended the stream.
func (s *scriptStream) recv() (*extprocsvc.ProcessingRequest, error) {
	m, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	s.srv.mu.Lock()
	s.received = append(s.received, m)
	s.srv.mu.Unlock()
	return m, nil
}

func (s *scriptStream) send(r *extprocsvc.ProcessingResponse) error { return s.stream.Send(r) }

// echo answers every message with an empty reply of the matching type until
// the stream ends.
func (s *scriptStream) echo() error { return s.answer(echoReply) }

// answer answers every message with respond(m) until the stream ends or a
// send fails.
func (s *scriptStream) answer(respond func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse) error {
	for {
		m, err := s.recv()
		if err != nil {
			return nil
		}
		if s.send(respond(m)) != nil {
			return nil
		}
	}
}

// echoReply is the pass-through reply to m.
func echoReply(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return reply(m, &extprocsvc.CommonResponse{})
}

// reply answers m with cr in the matching oneof.
func reply(m *extprocsvc.ProcessingRequest, cr *extprocsvc.CommonResponse) *extprocsvc.ProcessingResponse {
	switch m.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_RequestBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestBody{RequestBody: &extprocsvc.BodyResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvc.BodyResponse{Response: cr}}}
	}
	panic(fmt.Sprintf("no reply for %T", m.GetRequest()))
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

// kind names a request message for order assertions.
func kind(m *extprocsvc.ProcessingRequest) string {
	switch r := m.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return fmt.Sprintf("request_headers(eos=%v)", r.RequestHeaders.GetEndOfStream())
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return fmt.Sprintf("response_headers(eos=%v)", r.ResponseHeaders.GetEndOfStream())
	case *extprocsvc.ProcessingRequest_RequestBody:
		return fmt.Sprintf("request_body(eos=%v)", r.RequestBody.GetEndOfStream())
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return fmt.Sprintf("response_body(eos=%v)", r.ResponseBody.GetEndOfStream())
	}
	return fmt.Sprintf("%T", m.GetRequest())
}

func kinds(ms []*extprocsvc.ProcessingRequest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, kind(m))
	}
	return out
}

// headerValue reads a header of a processor message as Envoy sends it.
func headerValue(hm *corev3.HeaderMap, k string) (string, bool) {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == k {
			return string(h.GetRawValue()), true
		}
	}
	return "", false
}

// procServer is a scripted ext_proc server on a loopback listener.
type procServer struct {
	extprocsvc.UnimplementedExternalProcessorServer
	script script
	addr   string
	srv    *grpc.Server

	mu      sync.Mutex
	streams []*scriptStream
}

func startProc(t *testing.T, sc script) *procServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &procServer{script: sc, addr: ln.Addr().String(), srv: grpc.NewServer()}
	extprocsvc.RegisterExternalProcessorServer(p.srv, p)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { p.srv.Stop(); <-done })
	return p
}

func (p *procServer) Process(stream extprocsvc.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	ss := &scriptStream{srv: p, stream: stream, md: md}
	p.mu.Lock()
	p.streams = append(p.streams, ss)
	p.mu.Unlock()
	return p.script(ss)
}

// messages returns what the i-th stream received.
func (p *procServer) messages(i int) []*extprocsvc.ProcessingRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.streams) {
		return nil
	}
	return append([]*extprocsvc.ProcessingRequest(nil), p.streams[i].received...)
}

func (p *procServer) streamCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// testConfig builds a small bootstrap around ext_proc filters written in YAML
// flow style, one per line, with a proc cluster and two upstream clusters.
type testConfig struct {
	filters     []string // e.g. `{name: p, typed_config: {...}}`
	routes      []string // default: prefix "/" to cluster up
	bufferLimit int
	extra       string // extra cluster entries
	upFilters   string // upstream http_filters YAML (flow) for cluster up
	upExtra     string // extra fields of cluster up, one per line, indented by four spaces
	accessLog   string // the HTTP connection manager's access_log list (flow style)
}

const extProcType = `"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`

// extProc returns one ext_proc filter line with the given extra fields.
func extProc(name, fields string) string {
	if fields != "" {
		fields = ", " + fields
	}
	return fmt.Sprintf(`{name: %s, typed_config: {%s, grpc_service: {envoy_grpc: {cluster_name: proc}}, message_timeout: 5s%s}}`, name, extProcType, fields)
}

func (c testConfig) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	limit := ""
	if c.bufferLimit > 0 {
		limit = fmt.Sprintf("\n    per_connection_buffer_limit_bytes: %d", c.bufferLimit)
	}
	routes := c.routes
	if len(routes) == 0 {
		routes = []string{`{match: {prefix: "/"}, route: {cluster: up, timeout: 0s}}`}
	}
	fmt.Fprintf(&b, `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}%s
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t%s
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
`, limit, accessLog(c.accessLog))
	for _, r := range routes {
		fmt.Fprintf(&b, "              - %s\n", r)
	}
	b.WriteString(`          local_reply_config:
            mappers:
            - filter: {status_code_filter: {comparison: {op: GE, value: {default_value: 500, runtime_key: k}}}}
              body_format_override:
                json_format: {type: error, error: {type: api_error, message: "%LOCAL_REPLY_BODY%"}, code: "%RESPONSE_CODE%", details: "%RESPONSE_CODE_DETAILS%"}
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 413, runtime_key: k}}}}
              body_format_override:
                json_format: {type: error, error: {type: request_too_large, message: "%LOCAL_REPLY_BODY%"}}
          http_filters:
`)
	for _, f := range c.filters {
		fmt.Fprintf(&b, "          - %s\n", f)
	}
	b.WriteString(`          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: proc
    type: STATIC
    load_assignment: {cluster_name: proc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
  - name: up
    type: STATIC
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}, metadata: {filter_metadata: {tollgate: {provider: up}}}}]}]}
`)
	b.WriteString(c.upExtra)
	if c.upFilters != "" {
		fmt.Fprintf(&b, `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {}}
        http_filters: %s
`, c.upFilters)
	}
	b.WriteString(`  - name: up2
    type: STATIC
    load_assignment: {cluster_name: up2, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}, metadata: {filter_metadata: {tollgate: {provider: up2}}}}]}]}
`)
	b.WriteString(c.extra)
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func accessLog(list string) string {
	if list == "" {
		return ""
	}
	return "\n          access_log: " + list
}

// startHarness starts a harness on yamlPath with the clusters overridden and
// closes it when the test ends.
func startHarness(t *testing.T, yamlPath string, clusters map[string]string) *Harness {
	t.Helper()
	h, err := Start(Config{EnvoyYAML: yamlPath, Clusters: clusters, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// upstream is a plain HTTP upstream that records requests.
type upstream struct {
	addr    string
	mu      sync.Mutex
	reqs    []RecordedRequest
	handler http.HandlerFunc
}

func startUpstream(t *testing.T, handler http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{handler: handler}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	var active handlerGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !active.enter() {
			return
		}
		defer active.exit()
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		hdr := r.Header.Clone()
		hdr.Set("X-Test-Host", r.Host) // net/http moves Host out of the header map
		u.reqs = append(u.reqs, RecordedRequest{Method: r.Method, Path: r.URL.RequestURI(), Header: hdr, Body: body})
		u.mu.Unlock()
		if u.handler != nil {
			u.handler(w, r)
			return
		}
		w.Header().Set("content-type", "text/plain")
		_, _ = io.WriteString(w, "upstream says hi")
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done; active.wait() })
	return u
}

func (u *upstream) requests() []RecordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]RecordedRequest(nil), u.reqs...)
}

// runtimeGosched yields while a test polls for a state the harness must
// reach; it is not a timed assertion.
func runtimeGosched() { time.Sleep(time.Millisecond) }

// do sends a request through the harness and returns status, headers and body.
func do(t *testing.T, h *Harness, method, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
