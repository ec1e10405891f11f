package envoytest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config configures a Harness.
type Config struct {
	// EnvoyYAML is the path of the Envoy bootstrap to reproduce (required).
	EnvoyYAML string
	// Listen is the listener address; default "127.0.0.1:0". The file's
	// listener port is ignored.
	Listen string
	// Clusters maps a cluster name to "host:port" (or "unix:/path") and
	// overrides the file's endpoint. Overridden clusters are reached in
	// plaintext (their TLS settings are skipped).
	Clusters map[string]string
	// Logf, if set, receives a line for every notable event (local replies,
	// resets, processor errors).
	Logf func(format string, args ...any)
}

// Stats are the harness's counters, named after Envoy's where one exists.
type Stats struct {
	Requests                        int64 // downstream requests
	ExtProcStreams                  int64 // ext_proc gRPC streams opened (downstream and upstream)
	ExtProcMessages                 int64 // messages sent to processors
	ExtProcStreamErrors             int64 // streams that failed to open or ended with a non-OK status
	ExtProcStreamsClosedByProcessor int64 // streams the processor ended with OK before Envoy was done
	SpuriousMessages                int64 // replies of the wrong type or out of order
	MessageTimeouts                 int64 // message_timeout expiries
	FailureModeAllowed              int64 // failures passed over thanks to failure_mode_allow
	RejectedHeaderMutations         int64 // disallowed mutations silently ignored (rejected_header_mutations)
	RouteCacheCleared               int64 // honoured clear_route_cache
	ClearRouteCacheIgnored          int64 // clear_route_cache without a header_mutation
	ClearRouteCacheDisabled         int64 // clear_route_cache under RETAIN / disable_clear_route_cache
	ClearRouteCacheUpstreamIgnored  int64 // clear_route_cache from an upstream filter
	UpstreamAttempts                int64 // upstream tries, retries included
	UpstreamRetries                 int64 // retries scheduled (upstream_rq_retry)
	UpstreamRetryOverflow           int64 // retries refused by the circuit breaker's retries resource (upstream_rq_retry_overflow)
	UpstreamRetryLimitExceeded      int64 // retries refused because num_retries were used (upstream_rq_retry_limit_exceeded)
	UpstreamPerTryTimeouts          int64 // upstream_rq_per_try_timeout
	UpstreamPerTryIdleTimeouts      int64 // upstream_rq_per_try_idle_timeout
	UpstreamConnectFailures         int64
	OutlierEjections                int64         // enforced ejections (outlier_detection.ejections_enforced_total)
	OutlierEjectionsOverflow        int64         // ejections refused by max_ejection_percent (outlier_detection.ejections_overflow)
	DownstreamResets                int64         // downstream streams reset (client gone, or a reply after headers were sent)
	DynamicMetadataDropped          int64         // namespaces of replies' dynamic_metadata outside receiving_namespaces, dropped
	AccessLogEntries                int64         // access-log entries written (passed their filter)
	AccessLogMessages               int64         // StreamAccessLogsMessages sent
	AccessLogEntriesDropped         int64         // entries lost to a failed stream (logs_dropped)
	AccessLogStreamsClosed          int64         // access-log streams that ended
	LocalReplies                    map[int]int64 // local replies by status code, before local_reply_config
}

// Harness is a running stand-in for Envoy built from envoy.yaml.
type Harness struct {
	conf   *config
	logf   func(string, ...any)
	ln     net.Listener
	srv    *http.Server
	ctx    context.Context
	cancel context.CancelFunc
	active sync.WaitGroup

	mu         sync.Mutex
	stats      Stats
	grpcConns  map[string]*grpc.ClientConn
	transports map[string]*http.Transport
	upstreams  map[string]*upstreamState // per cluster, built at Start, never changed after
	accessLogs []*accessLogger           // the HTTP connection manager's access logs
	closed     bool
	serveErr   chan error
}

// Start loads cfg.EnvoyYAML, listens on cfg.Listen and returns once the
// harness accepts connections. Configuration the harness cannot reproduce
// makes it fail rather than run differently from Envoy.
func Start(cfg Config) (*Harness, error) {
	if cfg.EnvoyYAML == "" {
		return nil, errors.New("envoytest: Config.EnvoyYAML is required")
	}
	conf, err := loadConfig(cfg.EnvoyYAML, cfg.Clusters)
	if err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	h := &Harness{conf: conf, logf: cfg.Logf, grpcConns: map[string]*grpc.ClientConn{}, transports: map[string]*http.Transport{},
		serveErr: make(chan error, 1)}
	if h.logf == nil {
		h.logf = func(string, ...any) {}
	}
	h.upstreams = map[string]*upstreamState{}
	for name, cl := range conf.clusters {
		h.upstreams[name] = newUpstreamState(cl, h.count, h.logf)
	}
	for _, c := range conf.accessLogs {
		h.accessLogs = append(h.accessLogs, newAccessLogger(h, c))
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.ln, err = net.Listen("tcp", listen)
	if err != nil {
		h.cancel()
		h.stopUpstreams()
		h.closeAccessLogs()
		return nil, fmt.Errorf("envoytest: listen %s: %w", listen, err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	h.srv = &http.Server{Handler: h, Protocols: &protocols, ReadHeaderTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return h.ctx }}
	go func() { h.serveErr <- h.srv.Serve(h.ln) }()
	return h, nil
}

// URL returns "http://" plus the listener address.
func (h *Harness) URL() string { return "http://" + h.Addr() }

// Addr returns the listener address.
func (h *Harness) Addr() string { return h.ln.Addr().String() }

// Close stops the listener, resets in-flight requests (closing their ext_proc
// streams), closes gRPC connections and waits for every goroutine it started.
func (h *Harness) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.stopUpstreams()
	err := h.srv.Close()
	<-h.serveErr
	h.active.Wait()
	h.closeAccessLogs()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.grpcConns {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	for _, t := range h.transports {
		t.CloseIdleConnections()
	}
	return err
}

func (h *Harness) closeAccessLogs() {
	for _, l := range h.accessLogs {
		l.close()
	}
}

func (h *Harness) stopUpstreams() {
	for _, u := range h.upstreams {
		u.stop()
	}
}

// Stats returns a snapshot of the counters.
func (h *Harness) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.LocalReplies = maps.Clone(h.stats.LocalReplies)
	if s.LocalReplies == nil {
		s.LocalReplies = map[int]int64{}
	}
	return s
}

func (h *Harness) count(fn func(*Stats)) {
	h.mu.Lock()
	fn(&h.stats)
	h.mu.Unlock()
}

// ServeHTTP runs one downstream request through the filter chain.
func (h *Harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	h.active.Add(1)
	h.mu.Unlock()
	defer h.active.Done()
	h.count(func(s *Stats) { s.Requests++ })
	s := &requestStream{h: h, w: w, r: r, rc: http.NewResponseController(w),
		events: make(chan func(), 64), done: make(chan struct{})}
	s.serve()
}

// grpcConn returns the shared connection to a gRPC cluster.
func (h *Harness) grpcConn(name, authority string) (*grpc.ClientConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := name + "\x00" + authority
	if c, ok := h.grpcConns[key]; ok {
		return c, nil
	}
	if h.closed {
		return nil, errors.New("envoytest: harness closed")
	}
	cl, ok := h.conf.clusters[name]
	if !ok {
		return nil, fmt.Errorf("envoytest: unknown gRPC cluster %q", name)
	}
	target := cl.addr
	if !strings.HasPrefix(target, "unix:") {
		target = "passthrough:///" + target
	}
	creds := insecure.NewCredentials()
	if cl.tls != nil {
		creds = credentials.NewTLS(cl.tls.Clone())
	}
	c, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority(authority),
		// Envoy's max_receive_message_length 0 means unlimited.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("envoytest: gRPC cluster %q: %w", name, err)
	}
	h.grpcConns[key] = c
	return c, nil
}

// transport returns the HTTP transport for an upstream cluster.
func (h *Harness) transport(cl *cluster) (*http.Transport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.transports[cl.name]; ok {
		return t, nil
	}
	dialer := &net.Dialer{Timeout: cl.connectTimeout}
	addr := cl.addr
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if p, ok := strings.CutPrefix(addr, "unix:"); ok {
				return dialer.DialContext(ctx, "unix", p)
			}
			return dialer.DialContext(ctx, "tcp", addr)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}
	var protocols http.Protocols
	switch {
	case cl.tls != nil:
		t.TLSClientConfig = cl.tls.Clone()
		if t.TLSClientConfig.ServerName == "" {
			t.TLSClientConfig.ServerName, _, _ = net.SplitHostPort(addr)
		}
		if cl.http2 {
			protocols.SetHTTP2(true)
			t.TLSClientConfig.NextProtos = []string{"h2"}
		} else {
			protocols.SetHTTP1(true)
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
	case cl.http2:
		protocols.SetUnencryptedHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	t.Protocols = &protocols
	h.transports[cl.name] = t
	return t, nil
}

// perRoute returns the most specific ExtProcPerRoute for a filter on the
// current route.
func (s *requestStream) perRoute(name string) *extprocv3.ExtProcPerRoute {
	if s.route == nil {
		return nil
	}
	if pr, ok := s.route.perFilter[name]; ok {
		return pr
	}
	return s.route.vhost.perFilter[name]
}
