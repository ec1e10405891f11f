package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
)

// Phase is one kind of ext_proc message exchange of a request.
type Phase int

// The phases of a request, in the order Envoy plays them. PhaseResponseChunk is
// one sample per response body chunk; PhaseTotal is the sum of every round trip
// of a request: the time the request's bytes were held waiting for a processor.
const (
	// PhaseLateness is how late the driver started a request after its due
	// time. It is part of the first phase's latency (which counts from the due
	// time) and is shown apart only to tell driver delay from server delay.
	PhaseLateness Phase = iota
	PhasePolicyRequestHeaders
	PhasePolicyRequestBody
	PhaseAdapterRequestHeaders
	PhaseAdapterRequestBody
	PhaseAdapterResponseHeaders
	PhasePolicyResponseHeaders
	PhaseResponseChunk
	PhaseTotal
	numPhases
)

var phaseNames = [numPhases]string{
	"(driver start lateness)",
	"policy request_headers", "policy request_body",
	"adapter request_headers", "adapter request_body", "adapter response_headers",
	"policy response_headers", "policy response_body chunk", "request total",
}

func (p Phase) String() string { return phaseNames[p] }

// Pool is a fixed set of HTTP/2 connections to one ext_proc server, shared by
// both roles the way Envoy's per-worker connection pools to the tollgate cluster
// are. Streams are spread over the connections in turn.
type Pool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

// Dial opens n connections to addr ("host:port" or "unix:/path").
func Dial(addr string, n int) (*Pool, error) {
	if n < 1 {
		n = 1
	}
	target := addr
	if !strings.HasPrefix(target, "unix:") {
		target = "passthrough:///" + target
	}
	p := &Pool{}
	for range n {
		c, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Envoy's max_receive_message_length 0 means unlimited.
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("bench: dial %s: %w", addr, err)
		}
		c.Connect()
		p.conns = append(p.conns, c)
	}
	return p, nil
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *Pool) conn() *grpc.ClientConn {
	return p.conns[(p.next.Add(1)-1)%uint64(len(p.conns))]
}

// prepared is a scenario with its payloads generated, shared read-only by every
// request that replays it.
type prepared struct {
	s              *Scenario
	body           []byte
	bodyMsg        *extprocv3.ProcessingRequest // the request body, BUFFERED: whole, end_of_stream
	response       []byte                       // the whole response body
	chunks         [][]byte                     // response body chunks as Envoy delivers them
	chunkMsgs      []*extprocv3.ProcessingRequest
	wholeResponse  *extprocv3.ProcessingRequest // for a BUFFERED response body
	respHeaders    headerList
	failHeaders    headerList // a failed attempt's response headers
	sessionID      string
	requestIDStart string
	requestSeq     atomic.Uint64
}

func prepare(s *Scenario) (*prepared, error) {
	body, err := ClaudeCodeBody(s.Request.BodyBytes, s.Request.Model, *s.Request.Stream, s.Seed)
	if err != nil {
		return nil, err
	}
	p := &prepared{s: s, body: body, bodyMsg: bodyRequest(false, body, true)}
	switch s.Response.Kind {
	case "sse":
		if p.chunks, err = AnthropicSSE(s.Response.Events, s.Request.Model, s.Seed); err != nil {
			return nil, err
		}
	case "json":
		msg := AnthropicMessage(s.Request.Model, s.Response.TextBytes, s.Seed)
		n := s.Response.Chunks
		for i := range n {
			p.chunks = append(p.chunks, msg[i*len(msg)/n:(i+1)*len(msg)/n])
		}
	}
	for _, c := range p.chunks {
		p.response = append(p.response, c...)
	}
	for i, c := range p.chunks {
		last := i == len(p.chunks)-1
		p.chunkMsgs = append(p.chunkMsgs, bodyRequest(true, c, last && s.Response.EndStream == "with_last"))
	}
	if s.Response.EndStream == "separate" {
		p.chunkMsgs = append(p.chunkMsgs, bodyRequest(true, nil, true))
	}
	p.wholeResponse = bodyRequest(true, p.response, true)
	p.respHeaders = providerResponseHeaders(s, 200, len(p.response))
	p.failHeaders = providerResponseHeaders(s, s.Adapter.FailStatus, 0)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("bench: request ids: %w", err)
	}
	p.requestIDStart = hex.EncodeToString(rnd[:])
	p.sessionID = "0b1f6a52-3c1e-4d7a-9f0e-" + hex.EncodeToString(rnd[:6])
	return p, nil
}

// responseMessages is how many response body messages the policy role gets in
// STREAMED mode.
func (p *prepared) responseMessages() int { return len(p.chunkMsgs) }

func (p *prepared) requestID() string {
	n := p.requestSeq.Add(1)
	return fmt.Sprintf("%s-%012d", p.requestIDStart, n)
}

// player replays a prepared scenario against one server.
type player struct {
	pool            *Pool
	p               *prepared
	policy, adapter Filter
	policyMD        metadata.MD
	adapterMD       metadata.MD
	// strict checks the replies as Tollgate's: the expected denial, a
	// decision in dynamic metadata, no immediate response elsewhere. Every target is checked for
	// replies of the matching type.
	strict bool
}

func newPlayer(pool *Pool, p *prepared, policy, adapter Filter, strict bool) (*player, error) {
	for _, f := range []Filter{policy, adapter} {
		if !sends(f.Mode.GetRequestHeaderMode()) {
			return nil, fmt.Errorf("bench: filter %s: request_header_mode SKIP is not replayed", f.Name)
		}
		if !sends(f.Mode.GetResponseHeaderMode()) && len(f.ResponseAttributes) > 0 {
			return nil, fmt.Errorf("bench: filter %s: response attributes without response headers are not replayed", f.Name)
		}
	}
	md := func(f Filter) metadata.MD {
		m := metadata.MD{}
		for _, kv := range f.Metadata {
			m.Append(kv[0], kv[1])
		}
		return m
	}
	return &player{pool: pool, p: p, policy: policy, adapter: adapter, policyMD: md(policy), adapterMD: md(adapter), strict: strict}, nil
}

// sample is one timed exchange.
type sample struct {
	phase Phase
	d     time.Duration
}

// hooks let the memory test stop a request in the middle of its response.
type hooks struct {
	// beforeChunk is called before the i-th response body message is sent.
	beforeChunk func(i int)
}

// procStream is one ext_proc stream, opened the way Envoy opens it: lazily, with
// the filter's initial metadata.
type procStream struct {
	f         Filter
	cli       extprocv3.ExternalProcessor_ProcessClient
	cancel    context.CancelFunc
	sentFirst bool
	// dyn is the request's dynamic metadata: every message carries the
	// namespaces the filter forwards, and every reply writes those it
	// receives (ENVOY-EXTPROC; ext_proc Filter::addDynamicMetadata and
	// Filter::setDynamicMetadata).
	dyn *dynamicMetadata
}

func (pl *player) open(ctx context.Context, f Filter, md metadata.MD, dyn *dynamicMetadata) (*procStream, error) {
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, md))
	cli, err := extprocv3.NewExternalProcessorClient(pl.pool.conn()).Process(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: open stream: %w", f.Name, err)
	}
	return &procStream{f: f, cli: cli, cancel: cancel, dyn: dyn}, nil
}

// first adds what Envoy puts on a stream's first message and on the first
// message of each direction: protocol_config, attributes, metadata_context.
func (ps *procStream) first(m *extprocv3.ProcessingRequest, attrs []string, h headerList, provider string, attempt int) *extprocv3.ProcessingRequest {
	m.MetadataContext = &corev3.Metadata{}
	if !ps.sentFirst {
		ps.sentFirst = true
		m.ProtocolConfig = &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  ps.f.Mode.GetRequestBodyMode(),
			ResponseBodyMode: ps.f.Mode.GetResponseBodyMode(),
		}
	}
	m.Attributes = attributes(attrs, h, provider, attempt)
	ps.dyn.attributes(attrs, m.Attributes)
	return m
}

// roundTrip sends m and waits for its reply. The latency counts from `from`,
// the time the message was due (for a request's first message, its scheduled
// start), so a late driver is charged to the measurement, never hidden.
func (ps *procStream) roundTrip(m *extprocv3.ProcessingRequest, from time.Time) (*extprocv3.ProcessingResponse, time.Duration, time.Time, error) {
	if len(ps.f.Forward) > 0 {
		// Prepared messages are shared by concurrent requests: a copy
		// carries this request's metadata.
		m = &extprocv3.ProcessingRequest{Request: m.Request, Attributes: m.Attributes,
			ProtocolConfig: m.ProtocolConfig, MetadataContext: ps.dyn.forward(ps.f)}
	}
	if err := ps.cli.Send(m); err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("%s: send: %w", ps.f.Name, err)
	}
	resp, err := ps.cli.Recv()
	now := time.Now()
	if err != nil {
		return nil, 0, now, fmt.Errorf("%s: receive: %w", ps.f.Name, err)
	}
	if err := matches(m, resp); err != nil {
		return resp, 0, now, fmt.Errorf("%s: %w", ps.f.Name, err)
	}
	ps.dyn.receive(ps.f, resp)
	return resp, now.Sub(from), now, nil
}

// close ends the stream as Envoy does: half-close, then reset.
func (ps *procStream) close() {
	_ = ps.cli.CloseSend()
	ps.cancel()
}

// matches checks that resp is the reply to m: the same oneof case, or an
// immediate response.
func matches(m *extprocv3.ProcessingRequest, resp *extprocv3.ProcessingResponse) error {
	var ok bool
	switch m.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		_, ok = resp.Response.(*extprocv3.ProcessingResponse_RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		_, ok = resp.Response.(*extprocv3.ProcessingResponse_RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		_, ok = resp.Response.(*extprocv3.ProcessingResponse_ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		_, ok = resp.Response.(*extprocv3.ProcessingResponse_ResponseBody)
	}
	if _, imm := resp.Response.(*extprocv3.ProcessingResponse_ImmediateResponse); ok || imm {
		return nil
	}
	return fmt.Errorf("reply %T to %T: a spurious message to Envoy", resp.Response, m.Request)
}

func immediateError(resp *extprocv3.ProcessingResponse, what string) error {
	ir := resp.GetImmediateResponse()
	if ir == nil {
		return nil
	}
	body := string(ir.GetBody())
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return fmt.Errorf("%s: immediate response %d: %s", what, ir.GetStatus().GetCode(), body)
}

// play replays one request, from the policy role's request headers to its last
// response chunk, and returns its samples. start is when the request was due.
func (pl *player) play(ctx context.Context, start time.Time, hk hooks) ([]sample, error) {
	p, s := pl.p, pl.p.s
	samples := make([]sample, 0, 8+len(p.chunkMsgs))
	samples = append(samples, sample{PhaseLateness, time.Since(start)})
	h := clientHeaders(s, len(p.body), p.requestID(), p.sessionID)

	// The request's dynamic metadata (its StreamInfo's), which the upstream
	// filters of every attempt share with the downstream ones.
	var dyn dynamicMetadata
	ps, err := pl.open(ctx, pl.policy, pl.policyMD, &dyn)
	if err != nil {
		return nil, err
	}
	defer ps.close()

	// Request headers. The body follows, so end_of_stream is false.
	msg := ps.first(headersRequest(false, h, false), pl.policy.RequestAttributes, h, s.Adapter.Provider, 0)
	resp, d, at, err := ps.roundTrip(msg, start)
	if err != nil {
		return nil, err
	}
	samples = append(samples, sample{PhasePolicyRequestHeaders, d})
	if s.Deny() {
		if pl.strict {
			ir := resp.GetImmediateResponse()
			if ir == nil {
				return nil, errors.New("policy request_headers: Tollgate let a request through that it must deny")
			}
			if int(ir.GetStatus().GetCode()) != s.DenyStatus {
				return nil, fmt.Errorf("policy request_headers: denied with %d, want %d", ir.GetStatus().GetCode(), s.DenyStatus)
			}
		} else if err := immediateError(resp, "policy request_headers"); err != nil {
			return nil, err
		}
		// Envoy sends its local reply and closes the stream: nothing more.
		return samples, nil
	}
	if err := immediateError(resp, "policy request_headers"); err != nil {
		return nil, err
	}
	h.apply(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())

	// Request body, BUFFERED: the whole body in one message.
	bodyMsg := p.bodyMsg
	if pl.policy.Mode.GetRequestBodyMode() == extprocfilterv3.ProcessingMode_BUFFERED {
		resp, d, at, err = ps.roundTrip(bodyMsg, at)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sample{PhasePolicyRequestBody, d})
		if s.CacheHit() {
			done, err := pl.cacheHit(resp)
			if err != nil {
				return nil, err
			}
			if done {
				return samples, nil
			}
		}
		if err := immediateError(resp, "policy request_body"); err != nil {
			return nil, err
		}
		c := resp.GetRequestBody().GetResponse()
		h.apply(c.GetHeaderMutation())
		if nb := c.GetBodyMutation().GetBody(); nb != nil {
			// The router replays the mutated downstream buffer to every attempt.
			bodyMsg = bodyRequest(false, nb, true)
		}
		if pl.strict && dyn["tollgate"].GetFields()["decision"] == nil {
			return nil, errors.New("policy request_body: no decision in the reply's dynamic metadata (namespace tollgate)")
		}
	}

	// Upstream attempts. Envoy keeps one header map across attempts, so each
	// adapter's mutations carry over to the next attempt.
	uh := h.clone()
	var respHeaders headerList
	for attempt := 1; attempt <= s.Adapter.Attempts; attempt++ {
		final := attempt == s.Adapter.Attempts
		as, err := pl.open(ctx, pl.adapter, pl.adapterMD, &dyn)
		if err != nil {
			return nil, err
		}
		// The request has a body, so its headers never end the stream, whatever
		// the body mode.
		msg := as.first(headersRequest(false, uh, false), pl.adapter.RequestAttributes, uh, s.Adapter.provider(attempt), attempt)
		resp, d, at, err = as.roundTrip(msg, at)
		if err != nil {
			as.close()
			return nil, err
		}
		samples = append(samples, sample{PhaseAdapterRequestHeaders, d})
		if err := immediateError(resp, "adapter request_headers"); err != nil {
			as.close()
			return nil, err
		}
		uh.apply(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
		// The adapter may switch its body off for this attempt.
		mode := pl.adapter.override(pl.adapter.Mode, resp.GetModeOverride())
		if mode.GetRequestBodyMode() == extprocfilterv3.ProcessingMode_BUFFERED {
			resp, d, at, err = as.roundTrip(bodyMsg, at)
			if err != nil {
				as.close()
				return nil, err
			}
			samples = append(samples, sample{PhaseAdapterRequestBody, d})
			if err := immediateError(resp, "adapter request_body"); err != nil {
				as.close()
				return nil, err
			}
		}
		rh := p.failHeaders.clone()
		if final {
			rh = p.respHeaders.clone()
		}
		if sends(mode.GetResponseHeaderMode()) {
			msg := as.first(headersRequest(true, rh, false), pl.adapter.ResponseAttributes, uh, s.Adapter.provider(attempt), attempt)
			resp, d, at, err = as.roundTrip(msg, at)
			if err != nil {
				as.close()
				return nil, err
			}
			samples = append(samples, sample{PhaseAdapterResponseHeaders, d})
			if err := immediateError(resp, "adapter response_headers"); err != nil {
				as.close()
				return nil, err
			}
			rh.apply(resp.GetResponseHeaders().GetResponse().GetHeaderMutation())
		}
		// The adapter's response body mode is NONE: no further message is
		// expected, and Envoy closes the stream.
		as.close()
		respHeaders = rh
	}
	respHeaders = append(respHeaders, header{"x-envoy-upstream-service-time", "412"})

	// Response headers to the policy role.
	mode := pl.policy.Mode.GetResponseBodyMode()
	if sends(pl.policy.Mode.GetResponseHeaderMode()) {
		msg := ps.first(headersRequest(true, respHeaders, false), pl.policy.ResponseAttributes, h, s.Adapter.Provider, 0)
		resp, d, at, err = ps.roundTrip(msg, at)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sample{PhasePolicyResponseHeaders, d})
		if err := immediateError(resp, "policy response_headers"); err != nil {
			return nil, err
		}
		mode = pl.policy.override(pl.policy.Mode, resp.GetModeOverride()).GetResponseBodyMode()
	}

	// Response body.
	switch mode {
	case extprocfilterv3.ProcessingMode_STREAMED:
		for i, m := range p.chunkMsgs {
			if hk.beforeChunk != nil {
				hk.beforeChunk(i)
			}
			resp, d, at, err = ps.roundTrip(m, at)
			if err != nil {
				return nil, fmt.Errorf("chunk %d: %w", i, err)
			}
			samples = append(samples, sample{PhaseResponseChunk, d})
			if err := immediateError(resp, "policy response_body chunk "+strconv.Itoa(i)); err != nil {
				return nil, err
			}
		}
	case extprocfilterv3.ProcessingMode_BUFFERED:
		resp, d, _, err = ps.roundTrip(p.wholeResponse, at)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sample{PhaseResponseChunk, d})
		if err := immediateError(resp, "policy response_body"); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// dynamicMetadata is a request's dynamic metadata by namespace, as Envoy keeps
// it in the request's StreamInfo.
type dynamicMetadata map[string]*structpb.Struct

// receive merges a reply's dynamic_metadata into d, for the namespaces the
// filter receives: each namespace's fields replace those of the same name
// (StreamInfoImpl::setDynamicMetadata's MergeFrom).
func (d *dynamicMetadata) receive(f Filter, resp *extprocv3.ProcessingResponse) {
	for ns, v := range resp.GetDynamicMetadata().GetFields() {
		if !slices.Contains(f.Receive, ns) {
			continue
		}
		if *d == nil {
			*d = dynamicMetadata{}
		}
		cur := (*d)[ns]
		if cur == nil {
			cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			(*d)[ns] = cur
		}
		for k, fv := range v.GetStructValue().GetFields() {
			cur.Fields[k] = fv
		}
	}
}

// metadataAttr matches the attribute metadata.filter_metadata['ns']['key'].
var metadataAttr = regexp.MustCompile(`^metadata\.filter_metadata\[['"]([^'"]+)['"]\]\[['"]([^'"]+)['"]\]$`)

// attributes adds to attrs (the ext_proc key's Struct) the dynamic metadata
// attributes among names that d holds as strings, as Envoy's CEL evaluation
// sends a string leaf; the harness (internal/envoytest) covers the other
// kinds.
func (d dynamicMetadata) attributes(names []string, attrs map[string]*structpb.Struct) {
	for _, n := range names {
		m := metadataAttr.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		if v, ok := d[m[1]].GetFields()[m[2]]; ok && v.GetKind() != nil {
			if _, isStr := v.GetKind().(*structpb.Value_StringValue); isStr {
				attrs[attributesKey].Fields[n] = v
			}
		}
	}
}

// forward returns the metadata_context of a message of filter f: the
// namespaces it forwards.
func (d dynamicMetadata) forward(f Filter) *corev3.Metadata {
	md := &corev3.Metadata{}
	for _, ns := range f.Forward {
		if v, ok := d[ns]; ok {
			if md.FilterMetadata == nil {
				md.FilterMetadata = map[string]*structpb.Struct{}
			}
			md.FilterMetadata[ns] = v
		}
	}
	return md
}

// cacheHit checks the policy role's reply to the request body of a
// cache_hit scenario and reports whether the request ends there, as Envoy
// ends it after an immediate response (a local reply; the stream closes).
// Tollgate's reply must be a 200 with x-tollgate-cache-status: HIT, except
// for a reply that continues: one of the first requests, a miss, which is
// played through and fills the cache. A target that continues and is not
// checked (the echo) ends there too, so that both play the same messages.
func (pl *player) cacheHit(resp *extprocv3.ProcessingResponse) (done bool, err error) {
	ir := resp.GetImmediateResponse()
	if ir == nil {
		return !pl.strict, nil
	}
	if !pl.strict {
		return true, nil
	}
	hit := false
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == "x-tollgate-cache-status" && string(h.GetHeader().GetRawValue()) == "HIT" {
			hit = true
		}
	}
	if ir.GetStatus().GetCode() != 200 || !hit {
		return true, fmt.Errorf("policy request_body: immediate response %d without x-tollgate-cache-status: HIT: %.200s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	return true, nil
}
