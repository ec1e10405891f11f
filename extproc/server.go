// Package extproc is Tollgate's Envoy external processor: the gRPC service Envoy
// consults for every client request (the policy role, a downstream HTTP filter)
// and for every upstream attempt (the adapter role, an upstream HTTP filter). The
// role of a stream comes from the x-tollgate-role gRPC metadata that envoy.yaml
// sets per filter.
//
// Nothing is shared in memory between streams: the two roles of one request may
// run on different replicas, so the policy role hands its decision to the adapter
// in Envoy's dynamic metadata (decision.go).
package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// Policies yields the current policy snapshot. *policy.Watcher implements it.
type Policies interface {
	Current() *policy.Policy
}

// Options configure a Server. Policies, ClientFormats and Translation are
// required.
type Options struct {
	Policies Policies
	// ClientFormats are the APIs clients may speak (clientformat/anthropic's
	// Format, ...). Each request belongs to the first whose Classify owns its
	// method and path; the first also renders the refusals of requests that
	// none owns, and the adapter's.
	ClientFormats []ClientFormat
	// Translation returns the translation of requests from a client format
	// to a provider type, or false when there is none; the adapter refuses
	// an attempt without one. The wiring sets it to package provider's
	// Translation.
	Translation func(clientFormat, providerType string) (Translation, bool)
	Logger      *zap.Logger   // default: no logging
	Metrics     *Metrics      // default: metrics not exported
	Recorder    Recorder      // default: records discarded
	Ledger      budget.Ledger // default: no budgets are enforced
	// Cache stores responses for the routes whose policy caches them
	// (default: nothing is cached).
	Cache ResponseCache
	Now   func() time.Time // default: time.Now
	// NoEarlyReserve turns off early reservations (early.go): every budget
	// check then waits for the body and makes its ledger round trip there.
	NoEarlyReserve bool
	// EarlyBodyTimeout is how long an early reservation waits for the
	// request's body before it is given back; default
	// DefaultEarlyBodyTimeout.
	EarlyBodyTimeout time.Duration
	// Endings carries how Envoy ended each request from the access-log
	// receiver (AccessLogServer) to the policy role, across replicas when
	// it is shared (endings.go). Nil: no access log is read, and a stream
	// reset after its response headers is told apart by timing alone.
	Endings Endings
	// EndingWait bounds how long the policy role waits for the ending of
	// a stream reset after its response headers; default
	// DefaultEndingWait.
	EndingWait time.Duration
	// PingInterval is how long a translated stream whose provider sends
	// no pings (IdlePings) may stay silent before the adapter pings the
	// client; default DefaultPingInterval, negative: no pings, and such
	// attempts' responses take the STREAMED path.
	PingInterval time.Duration
	// PingMaxIdle is how long the adapter pings a stream whose provider
	// stays silent; default DefaultPingMaxIdle.
	PingMaxIdle time.Duration
	// AfterFunc starts the ping timers; default time.AfterFunc.
	AfterFunc AfterFunc
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	policies    Policies
	formats     clientFormats
	translation func(clientFormat, providerType string) (Translation, bool)
	log         *zap.Logger
	metrics     *Metrics
	recorder    Recorder
	ledger      budget.Ledger
	cache       ResponseCache
	cacheKeys   cache.Keyer // makes the cache keys, its memory reused
	now         func() time.Time

	noEarlyReserve   bool
	earlyBodyTimeout time.Duration
	endings          Endings
	endingWait       time.Duration
	guesses          sync.Map // guessKey → guess: each key's last message request, by body size class

	pingInterval, pingMaxIdle time.Duration
	afterFunc                 AfterFunc
}

// NewServer returns a Server, or an error when a required option is missing.
func NewServer(o Options) (*Server, error) {
	if o.Policies == nil || o.Translation == nil {
		return nil, errors.New("extproc: Policies and Translation are required")
	}
	if err := checkFormats(o.ClientFormats); err != nil {
		return nil, err
	}
	s := &Server{policies: o.Policies, formats: clientFormats(slices.Clone(o.ClientFormats)), translation: o.Translation,
		log: o.Logger, metrics: o.Metrics, recorder: o.Recorder, ledger: o.Ledger, now: o.Now,
		noEarlyReserve: o.NoEarlyReserve, earlyBodyTimeout: o.EarlyBodyTimeout,
		endings: o.Endings, endingWait: o.EndingWait,
		pingInterval: o.PingInterval, pingMaxIdle: o.PingMaxIdle, afterFunc: o.AfterFunc}
	if s.pingInterval == 0 {
		s.pingInterval = DefaultPingInterval
	}
	if s.pingMaxIdle <= 0 {
		s.pingMaxIdle = DefaultPingMaxIdle
	}
	if s.afterFunc == nil {
		s.afterFunc = realAfterFunc
	}
	if s.recorder == nil {
		s.recorder = discardRecorder{}
	}
	s.cache = o.Cache
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.earlyBodyTimeout <= 0 {
		s.earlyBodyTimeout = DefaultEarlyBodyTimeout
	}
	if s.endingWait <= 0 {
		s.endingWait = DefaultEndingWait
	}
	if _, inMemory := o.Ledger.(*budget.MemoryLedger); inMemory {
		// A reserve in memory takes microseconds: nothing to overlap.
		s.noEarlyReserve = true
	}
	return s, nil
}

// Roles, as sent by envoy.yaml in the x-tollgate-role gRPC metadata.
const (
	rolePolicy  = "policy"
	roleAdapter = "adapter"
)

// processor handles the messages of one ext_proc stream. It returns exactly one
// response per message, of the matching type or an immediate response, except
// a sender, which may answer a message itself and return nil. ctx is
// the stream's context: it ends when Envoy resets the stream.
type processor interface {
	handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error)
	// finish is called once when the stream ends, for whatever reason, with
	// the stream's context (done by then: work it does must not inherit the
	// cancellation, see ledgerContext).
	finish(ctx context.Context, err error)
}

// sender is implemented by a processor that sends messages of its own
// besides its replies (the adapter's pings, in FULL_DUPLEX_STREAMED). The
// stream calls setSend once, before the first message, with a send that is
// safe to call from any goroutine; handle then returns a nil response for a
// message it answered itself.
type sender interface {
	setSend(send func(*extprocv3.ProcessingResponse) error)
}

// Process implements [extprocv3.ExternalProcessorServer.Process].
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	role := roleOf(stream)
	var p processor
	switch role {
	case rolePolicy:
		p = newPolicyProcessor(s)
	case roleAdapter:
		p = newAdapterProcessor(s)
	default:
		return status.Errorf(codes.InvalidArgument, "x-tollgate-role is %q; want %q or %q", role, rolePolicy, roleAdapter)
	}
	s.metrics.streams.WithLabelValues(role).Inc()
	err := s.serve(stream, s.metrics.phaseObservers(role), p)
	p.finish(stream.Context(), err)
	return err
}

func (s *Server) serve(stream extprocv3.ExternalProcessor_ProcessServer, phases map[string]prometheus.Observer, p processor) error {
	send := stream.Send
	if sp, ok := p.(sender); ok {
		var mu sync.Mutex
		send = func(r *extprocv3.ProcessingResponse) error {
			mu.Lock()
			defer mu.Unlock()
			return stream.Send(r)
		}
		sp.setSend(send)
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			// Envoy ends a stream by half-closing and then resetting it, so Canceled
			// is as normal an end as EOF (ENVOY-EXTPROC section 1.1).
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		start := time.Now()
		resp, err := p.handle(stream.Context(), req)
		if err != nil {
			return err
		}
		if o := phases[phaseOf(req)]; o != nil {
			o.Observe(time.Since(start).Seconds())
		}
		if resp == nil {
			continue // answered by the processor itself (sender)
		}
		if err := send(resp); err != nil {
			return err
		}
	}
}

func roleOf(stream extprocv3.ExternalProcessor_ProcessServer) string {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if v := md.Get(hdrRole); len(v) > 0 {
		return v[0]
	}
	return ""
}

func phaseOf(req *extprocv3.ProcessingRequest) string {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return "request_trailers"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	}
	return "unknown"
}

// passThrough answers any message with a CONTINUE of the matching type. Roles use
// it for phases they do not act on.
func passThrough(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return continueRequestHeaders(nil), nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return continueRequestBody(nil), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return continueResponseHeaders(nil), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return continueResponseBody(nil), nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	}
	return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("unsupported ext_proc message %T", req.Request))
}
