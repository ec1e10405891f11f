package envoytest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
)

// chainConfig is a bootstrap with no downstream filter and an aggregate
// cluster "chain" over up and up2 carrying an adapter-like upstream ext_proc
// filter, routed with a retry policy using previous_priorities.
func chainConfig(retryOn string) testConfig {
	adapter := `{name: adapter, typed_config: {` + extProcType + `, grpc_service: {envoy_grpc: {cluster_name: proc}}, message_timeout: 5s, ` +
		`mutation_rules: {allow_all_routing: true}, ` +
		`request_attributes: ["xds.upstream_host_metadata.filter_metadata['tollgate']['provider']", upstream.request_attempt_count, xds.cluster_name], ` +
		`processing_mode: {request_header_mode: SEND, request_body_mode: BUFFERED, response_header_mode: SKIP}}}`
	return testConfig{
		routes: []string{`{match: {prefix: "/"}, route: {cluster: chain, timeout: 0s, retry_policy: {retry_on: "` + retryOn + `", ` +
			`retriable_status_codes: [429, 403], num_retries: 1, retry_priority: {name: envoy.retry_priorities.previous_priorities, typed_config: ` +
			`{"@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 1}}}}}`},
		extra: chainCluster(adapter),
	}
}

// chainCluster is the aggregate cluster "chain" over up and up2 whose
// upstream HTTP filters are adapter followed by the upstream codec.
func chainCluster(adapter string) string { return chainClusterWith(adapter, "") }

// chainClusterWith is chainCluster with extra cluster fields, one per line
// indented by four spaces.
func chainClusterWith(adapter, extra string) string {
	codec := `{name: envoy.filters.http.upstream_codec, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec}}`
	return `  - name: chain
    lb_policy: CLUSTER_PROVIDED
    cluster_type: {name: envoy.clusters.aggregate, typed_config: {"@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig, clusters: [up, up2]}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {}}
        http_filters: [` + adapter + `, ` + codec + `]
` + extra
}

// attemptRecord is what the adapter saw on one attempt.
type attemptRecord struct {
	provider      string
	attempt       float64
	cluster       string
	sawPrevHeader bool
	body          string
}

// adapterRecorder answers like an adapter: per attempt it sets
// x-attempt-<n>, rewrites the body with a matching content-length, and
// records what it saw.
type adapterRecorder struct {
	mu       sync.Mutex
	attempts []attemptRecord
}

func (a *adapterRecorder) script(ps *scriptStream) error {
	var rec attemptRecord
	return ps.answer(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		cr := &extprocsvc.CommonResponse{}
		switch r := m.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			f := m.GetAttributes()[extProcAttributesKey].GetFields()
			rec.provider = f["xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"].GetStringValue()
			rec.attempt = f["upstream.request_attempt_count"].GetNumberValue()
			rec.cluster = f["xds.cluster_name"].GetStringValue()
			_, rec.sawPrevHeader = headerValue(r.RequestHeaders.GetHeaders(), "x-attempt-1")
			cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader(fmt.Sprintf("x-attempt-%d", int(rec.attempt)), "yes"),
			}}
		case *extprocsvc.ProcessingRequest_RequestBody:
			rec.body = string(r.RequestBody.GetBody())
			body := fmt.Sprintf("mutated-by-attempt-%d", int(rec.attempt))
			cr.BodyMutation = &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(body)}}
			cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(body)))}}
			a.mu.Lock()
			a.attempts = append(a.attempts, rec)
			a.mu.Unlock()
		}
		return reply(m, cr)
	})
}

func (a *adapterRecorder) records() []attemptRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attemptRecord(nil), a.attempts...)
}

// Sections 6 and 12: the upstream filter runs once per attempt on a new
// stream, with that attempt's endpoint metadata and attempt count; retries
// use previous_priorities to move to the next aggregate child; the original
// body is replayed while the header map carries over.
func TestRule8_UpstreamFiltersPerAttemptWithRetries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   func(t *testing.T) string // address of the first child
		retryOn string
	}{
		{"500 from the first provider", func(t *testing.T) string {
			return startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }).addr
		}, "5xx"},
		{"429 from the first provider", func(t *testing.T) string {
			return startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) }).addr
		}, "retriable-status-codes"},
		{"connect failure", func(t *testing.T) string { return "127.0.0.1:1" }, "connect-failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &adapterRecorder{}
			proc := startProc(t, rec.script)
			up2 := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served by up2") })
			h := startHarness(t, chainConfig(tc.retryOn).write(t), map[string]string{"proc": proc.addr, "up": tc.first(t), "up2": up2.addr})
			code, _, body := do(t, h, "POST", "/v1/messages", "original body")
			if code != 200 || body != "served by up2" {
				t.Fatalf("status %d body %q", code, body)
			}
			want := []attemptRecord{
				{provider: "up", attempt: 1, cluster: "chain", body: "original body"},
				{provider: "up2", attempt: 2, cluster: "chain", sawPrevHeader: true, body: "original body"},
			}
			if diff := cmp.Diff(want, rec.records(), cmp.AllowUnexported(attemptRecord{})); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
			got := up2.requests()[0]
			if string(got.Body) != "mutated-by-attempt-2" || got.Header.Get("x-attempt-1") != "yes" || got.Header.Get("x-attempt-2") != "yes" {
				t.Errorf("up2 got body %q headers %v", got.Body, got.Header)
			}
			if st := h.Stats(); st.UpstreamAttempts != 2 || st.UpstreamRetries != 1 || st.ExtProcStreams != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Section 5: an immediate response from an upstream filter is a final local
// reply, never retried, even for a status the retry policy retries.
func TestRule8_UpstreamImmediateResponseIsFinal(t *testing.T) {
	proc := startProc(t, func(ps *scriptStream) error {
		if _, err := ps.recv(); err != nil {
			return nil
		}
		_ = ps.send(immediate(typev3.StatusCode_Forbidden, "no decision"))
		return silent(ps)
	})
	up := startUpstream(t, nil)
	up2 := startUpstream(t, nil)
	h := startHarness(t, chainConfig("5xx,retriable-status-codes").write(t), map[string]string{"proc": proc.addr, "up": up.addr, "up2": up2.addr})
	code, _, body := do(t, h, "POST", "/", "x")
	if code != 403 || body != "no decision" {
		t.Fatalf("status %d body %q", code, body)
	}
	if len(up.requests())+len(up2.requests()) != 0 || h.Stats().UpstreamAttempts != 1 {
		t.Errorf("upstreams reached; stats %+v", h.Stats())
	}
}

// Section 7 and rule 9: real sockets on both sides; a streamed response
// reaches the client event by event (the upstream sends the next event only
// after the client has read the previous one), over HTTP/1.1 and h2c, through
// a STREAMED ext_proc filter.
func TestRule9_StreamsEventByEvent(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			proc := startProc(t, (*scriptStream).echo)
			const events = 3
			read := make(chan struct{})
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("content-type", "text/event-stream")
				rc := http.NewResponseController(w)
				for i := range events {
					fmt.Fprintf(w, "event: e\ndata: %d\n\n", i)
					_ = rc.Flush()
					select {
					case <-read:
					case <-r.Context().Done():
						return
					}
				}
			})
			cfg := testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: BUFFERED, response_body_mode: STREAMED}`)}}
			h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr})
			var p http.Protocols
			if proto == "h2c" {
				p.SetUnencryptedHTTP2(true)
			} else {
				p.SetHTTP1(true)
			}
			client := &http.Client{Transport: &http.Transport{Protocols: &p}}
			defer client.CloseIdleConnections()
			resp, err := client.Post(h.URL()+"/v1/messages", "application/json", strings.NewReader(`{"stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Proto != map[string]string{"HTTP/1.1": "HTTP/1.1", "h2c": "HTTP/2.0"}[proto] {
				t.Errorf("protocol %s", resp.Proto)
			}
			br := bufio.NewReader(resp.Body)
			for i := range events {
				var ev strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					ev.WriteString(line)
					if line == "\n" {
						break
					}
				}
				if want := fmt.Sprintf("event: e\ndata: %d\n\n", i); ev.String() != want {
					t.Errorf("event %d = %q, want %q", i, ev.String(), want)
				}
				read <- struct{}{}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("trailing %q, %v", rest, err)
			}
		})
	}
}

// Start fails loudly on configuration the harness would otherwise run
// differently from Envoy.
func TestStartRejectsUnsupportedConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  testConfig
		over map[string]string
		want string
	}{
		{"full duplex failing open", testConfig{filters: []string{extProc("p", `failure_mode_allow: true, processing_mode: {response_body_mode: FULL_DUPLEX_STREAMED, response_trailer_mode: SEND}`)}}, nil, "failure_mode_allow false"},
		{"full duplex without trailer SEND", testConfig{filters: []string{extProc("p", `processing_mode: {request_body_mode: FULL_DUPLEX_STREAMED}`)}}, nil, "requires request_trailer_mode SEND"},
		{"trailers", testConfig{filters: []string{extProc("p", `processing_mode: {response_trailer_mode: SEND}`)}}, nil, "trailer mode SEND"},
		{"unknown attribute", testConfig{filters: []string{extProc("p", `request_attributes: [connection.mtls]`)}}, nil, "connection.mtls"},
		{"observability mode", testConfig{filters: []string{extProc("p", `observability_mode: true`)}}, nil, "observability_mode"},
		{"unknown override", testConfig{}, map[string]string{"nope": "127.0.0.1:1"}, `"nope"`},
		{"both route cache settings", testConfig{filters: []string{extProc("p", `disable_clear_route_cache: true, route_cache_action: CLEAR`)}}, nil, "mutually exclusive"},
		{"typed forwarding namespaces", testConfig{filters: []string{extProc("p", `metadata_options: {forwarding_namespaces: {typed: [t]}}`)}}, nil, "forwarding_namespaces: field(s) typed"},
		{"typed receiving namespaces", testConfig{filters: []string{extProc("p", `metadata_options: {receiving_namespaces: {untyped: [u], typed: [t]}}`)}}, nil, "receiving_namespaces: field(s) typed"},
		{"cluster metadata forwarding", testConfig{filters: []string{extProc("p", `metadata_options: {cluster_metadata_forwarding_namespaces: {untyped: [c]}}`)}}, nil, "cluster_metadata_forwarding_namespaces"},
		{"back-off max below base", retryChain(`retry_on: "5xx", retry_back_off: {base_interval: 1s, max_interval: 0.5s}`, "", ""), nil, "max_interval"},
		{"retry budget interval", retryChain(`retry_on: "5xx"`, "    circuit_breakers: {thresholds: [{retry_budget: {budget_interval: 1s}}]}\n", ""), nil, "budget_interval"},
		{"per-host thresholds", retryChain(`retry_on: "5xx"`, "    circuit_breakers: {per_host_thresholds: [{max_connections: 1}]}\n", ""), nil, "per_host_thresholds"},
		{"success-rate ejection", retryChain(`retry_on: "5xx"`, "", "    outlier_detection: {success_rate_minimum_hosts: 1}\n"), nil, "success_rate_minimum_hosts"},
		{"outlier monitors", retryChain(`retry_on: "5xx"`, "", "    outlier_detection: {monitors: [{name: m}]}\n"), nil, "monitors"},
		{"overprovisioning factor", testConfig{extra: "  - name: op\n    type: STATIC\n    load_assignment: {cluster_name: op, policy: {overprovisioning_factor: 100}, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}\n"}, nil, "policy"},
		{"max_ejection_time below base", retryChain(`retry_on: "5xx"`, "", "    outlier_detection: {base_ejection_time: 10s, max_ejection_time: 1s}\n"), nil, "max_ejection_time"},
		{"per-route metadata_options", testConfig{filters: []string{extProc("p", "")}, routes: []string{`{match: {prefix: "/"}, route: {cluster: up}, typed_per_filter_config: {p: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute, overrides: {metadata_options: {receiving_namespaces: {untyped: [u]}}}}}}`}}, nil, "field(s) metadata_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Start(Config{EnvoyYAML: tc.cfg.write(t), Clusters: tc.over})
			if err == nil {
				_ = h.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
