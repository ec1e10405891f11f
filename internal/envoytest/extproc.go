package envoytest

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
)

type direction int

const (
	dirRequest direction = iota
	dirResponse
)

func (d direction) String() string {
	if d == dirRequest {
		return "request"
	}
	return "response"
}

type chunk struct {
	data []byte
	eos  bool
}

// dirState is one direction of an ext_proc filter: Envoy's decoding or
// encoding ProcessorState.
type dirState struct {
	dir        direction
	headerMode extprocv3.ProcessingMode_HeaderSendMode
	bodyMode   extprocv3.ProcessingMode_BodySendMode

	started    bool       // headers arrived at this filter
	inputDone  bool       // end of stream arrived at this filter
	headers    *headerMap // the direction's header map
	headersEOS bool
	held       bool // headers are held by this filter

	awaitingHeaders bool    // a headers message is outstanding
	awaitingBody    bool    // a BUFFERED or BUFFERED_PARTIAL body message is outstanding
	queue           []chunk // STREAMED chunks sent and not yet answered, in order

	buffer    []byte // data not yet sent to the processor
	hasBuffer bool
	bufferEOS bool

	pending     []chunk // data that arrived after a BUFFERED_PARTIAL message was sent
	partialDone bool    // the BUFFERED_PARTIAL message was answered; the rest streams through
	replaced    bool    // CONTINUE_AND_REPLACE replaced the body; the original is drained

	// FULL_DUPLEX_STREAMED: duplexSent is Envoy's bodyReceived (a chunk
	// went to the processor, so streamed responses are expected); duplexDone
	// says a streamed_response with end_of_stream arrived; duplexHeld holds
	// streamed responses that came while the headers were still held (a body
	// complete during the headers wait).
	duplexSent bool
	duplexDone bool
	duplexHeld []chunk

	sentAny           bool // the direction's first message (with attributes) was sent
	timer             *loopTimer
	timeoutOverridden bool
}

// duplex reports whether the direction's body mode is FULL_DUPLEX_STREAMED.
func (st *dirState) duplex() bool {
	return st.bodyMode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
}

func (st *dirState) outstanding() int {
	n := len(st.queue)
	if st.awaitingHeaders {
		n++
	}
	if st.awaitingBody {
		n++
	}
	return n
}

// extProcFilter is one ext_proc filter instance for one request (downstream)
// or one attempt (upstream).
type extProcFilter struct {
	cfg      *extProcConfig
	chain    *filterChain
	idx      int
	mode     *extprocv3.ProcessingMode // effective mode, after per-route config and mode_override
	failOpen bool
	grpc     grpcTarget
	disabled bool // ExtProcPerRoute disabled: every phase skipped
	done     bool // processing is complete; everything passes through

	ps        *procStream
	sentFirst bool
	dec, enc  dirState
}

func newExtProcFilter(cfg *extProcConfig, chain *filterChain, idx int, pr *extprocv3.ExtProcPerRoute) *extProcFilter {
	f := &extProcFilter{cfg: cfg, chain: chain, idx: idx, failOpen: cfg.failureModeAllow, grpc: cfg.grpc,
		mode: proto.Clone(cfg.mode).(*extprocv3.ProcessingMode)}
	if pr != nil {
		f.disabled = pr.GetDisabled()
		if o := pr.GetOverrides(); o != nil {
			if o.GetProcessingMode() != nil {
				// The per-route mode replaces the whole mode (validated at Start).
				f.mode, _ = normalizeMode(cfg.name, o.GetProcessingMode())
			}
			if o.GetFailureModeAllow() != nil {
				f.failOpen = o.GetFailureModeAllow().GetValue()
			}
			if gs := o.GetGrpcService(); gs != nil {
				if t, err := buildGRPCTarget(cfg.name, gs); err == nil {
					f.grpc = t
				}
			}
			f.grpc.metadata = mergeMetadata(f.grpc.metadata, o.GetGrpcInitialMetadata())
		}
	}
	f.dec = dirState{dir: dirRequest, headerMode: f.mode.RequestHeaderMode, bodyMode: f.mode.RequestBodyMode}
	f.enc = dirState{dir: dirResponse, headerMode: f.mode.ResponseHeaderMode, bodyMode: f.mode.ResponseBodyMode}
	return f
}

func mergeMetadata(base [][2]string, extra []*corev3.HeaderValue) [][2]string {
	out := append([][2]string(nil), base...)
	for _, hv := range extra {
		k, v := strings.ToLower(hv.GetKey()), hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		replaced := false
		for i := range out {
			if out[i][0] == k {
				out[i][1], replaced = v, true
			}
		}
		if !replaced {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func (f *extProcFilter) s() *requestStream { return f.chain.s }

func (f *extProcFilter) state(d direction) *dirState {
	if d == dirRequest {
		return &f.dec
	}
	return &f.enc
}

func (f *extProcFilter) stopped(st *dirState) bool {
	if st.dir == dirRequest {
		return f.chain.decodeStopped
	}
	return f.chain.encodeStopped
}

func (f *extProcFilter) decodeHeaders(h *headerMap, eos bool) { f.onHeaders(&f.dec, h, eos) }
func (f *extProcFilter) decodeData(b []byte, eos bool)        { f.onData(&f.dec, b, eos) }
func (f *extProcFilter) encodeHeaders(h *headerMap, eos bool) { f.onHeaders(&f.enc, h, eos) }
func (f *extProcFilter) encodeData(b []byte, eos bool)        { f.onData(&f.enc, b, eos) }

func (f *extProcFilter) emitHeaders(st *dirState, h *headerMap, eos bool) {
	if st.dir == dirRequest {
		f.chain.decodeHeadersAt(f.idx+1, h, eos)
	} else {
		f.chain.encodeHeadersAt(f.idx-1, h, eos)
	}
}

func (f *extProcFilter) emitData(st *dirState, b []byte, eos bool) {
	if st.dir == dirRequest {
		f.chain.decodeDataAt(f.idx+1, b, eos)
	} else {
		f.chain.encodeDataAt(f.idx-1, b, eos)
	}
}

// contentLengthRemoved reports whether Envoy drops content-length at header
// time in this direction's mode (ENVOY-EXTPROC section 4).
func (f *extProcFilter) contentLengthRemoved(st *dirState) bool {
	if f.cfg.allowContentLengthHeader {
		return false
	}
	switch st.bodyMode {
	case extprocv3.ProcessingMode_STREAMED, extprocv3.ProcessingMode_BUFFERED_PARTIAL, extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED:
		return true
	case extprocv3.ProcessingMode_BUFFERED:
		return st.headerMode == extprocv3.ProcessingMode_SKIP
	}
	return false
}

func (f *extProcFilter) onHeaders(st *dirState, h *headerMap, eos bool) {
	if f.stopped(st) {
		return
	}
	st.started, st.inputDone = true, eos
	st.headers, st.headersEOS = h, eos
	if f.done || f.disabled {
		f.emitHeaders(st, h, eos)
		return
	}
	st.held = true
	if st.headerMode == extprocv3.ProcessingMode_SEND {
		msg := &extprocsvc.HttpHeaders{Headers: h.proto(), EndOfStream: eos}
		if f.contentLengthRemoved(st) {
			h.del("content-length") // the processor still saw it
		}
		st.awaitingHeaders = true
		if st.dir == dirRequest {
			f.send(st, &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: msg}})
		} else {
			f.send(st, &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseHeaders{ResponseHeaders: msg}})
		}
		return
	}
	if f.contentLengthRemoved(st) {
		h.del("content-length")
	}
	if st.bodyMode == extprocv3.ProcessingMode_STREAMED || st.bodyMode == extprocv3.ProcessingMode_NONE || st.duplex() {
		// Nothing will mutate the headers: they continue at once.
		f.releaseHeaders(st)
	}
	f.continueAfterHeaders(st)
}

// releaseHeaders passes the held headers to the next filter.
func (f *extProcFilter) releaseHeaders(st *dirState) {
	if !st.held {
		return
	}
	st.held = false
	f.emitHeaders(st, st.headers, st.headersEOS)
}

// continueAfterHeaders runs once the headers were answered (or skipped): it
// releases or keeps holding them per body mode and processes body data that
// arrived in the meantime.
func (f *extProcFilter) continueAfterHeaders(st *dirState) {
	if st.headersEOS {
		f.releaseHeaders(st)
		return
	}
	switch st.bodyMode {
	case extprocv3.ProcessingMode_NONE:
		f.releaseHeaders(st)
		f.flushBuffer(st)
	case extprocv3.ProcessingMode_STREAMED:
		// Envoy's processor_state.cc ProcessorState::handleHeadersResponse:
		// when the whole body arrived while the headers reply was awaited
		// (complete_body_available_), it goes to the processor as one
		// BufferedBodyCallback message and the headers stay held until its
		// reply, which may still mutate them (handleBufferedBodyCallback).
		// Otherwise, body_mode_ == STREAMED: sendBufferedDataInStreamedMode
		// sends what was buffered as the first chunk, then
		// continueIfNecessary() releases the headers (the filter paused in
		// ext_proc.cc Filter::onHeaders, which returns StopIteration): the
		// headers go on at the headers reply, before any chunk's reply and
		// whether or not any body data arrived yet. This corrects
		// ENVOY-EXTPROC section 7 ("headers reach the client only after the
		// first chunk's reply").
		if st.hasBuffer && st.bufferEOS {
			f.sendBuffered(st)
			return
		}
		if st.hasBuffer {
			b := st.buffer
			st.buffer, st.hasBuffer, st.bufferEOS = nil, false, false
			f.sendChunk(st, b, false)
		}
		f.releaseHeaders(st)
	case extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED:
		// processor_state.cc ProcessorState::handleHeadersResponse: with the
		// whole body received during the headers wait and a chunk sent
		// (getCallbackStateAfterHeaderResp: StreamedBodyCallback), it returns
		// without continuing, so the headers wait for the processor's
		// end_of_stream. Otherwise, "There is no buffered data in this mode":
		// continueIfNecessary() releases the headers. Data Envoy buffered
		// while another mode was in force (a response-headers mode_override
		// to FULL_DUPLEX_STREAMED) then continues unprocessed, as the filter
		// manager passes the buffer on with the headers.
		if st.inputDone && st.duplexSent {
			return
		}
		f.releaseHeaders(st)
		f.flushBuffer(st)
	case extprocv3.ProcessingMode_BUFFERED:
		if f.overLimit(st) {
			return
		}
		if st.hasBuffer && st.bufferEOS {
			f.sendBuffered(st)
		}
	case extprocv3.ProcessingMode_BUFFERED_PARTIAL:
		if st.hasBuffer && (st.bufferEOS || uint64(len(st.buffer)) >= f.s().bufferLimit) {
			f.sendBuffered(st)
		}
	}
}

func (f *extProcFilter) flushBuffer(st *dirState) {
	if st.hasBuffer {
		b, eos := st.buffer, st.bufferEOS
		st.buffer, st.hasBuffer, st.bufferEOS = nil, false, false
		f.emitData(st, b, eos)
	}
}

func (f *extProcFilter) bufferData(st *dirState, b []byte, eos bool) {
	st.buffer = append(st.buffer, b...)
	st.hasBuffer = true
	st.bufferEOS = eos
}

// overLimit enforces the stream buffer limit on a BUFFERED body: a 413 local
// reply on requests, a 500 (or a reset) on responses.
func (f *extProcFilter) overLimit(st *dirState) bool {
	if st.bodyMode != extprocv3.ProcessingMode_BUFFERED || uint64(len(st.buffer)) <= f.s().bufferLimit {
		return false
	}
	st.buffer, st.hasBuffer = nil, false
	if st.dir == dirRequest {
		f.localReply(413, "Payload Too Large", nil, "request_payload_too_large", true)
	} else {
		f.localReply(500, "Internal Server Error", nil, "response_payload_too_large", true)
	}
	return true
}

func (f *extProcFilter) onData(st *dirState, b []byte, eos bool) {
	if f.stopped(st) || (st.inputDone && !st.replaced) {
		return
	}
	st.inputDone = eos
	if st.replaced {
		return // CONTINUE_AND_REPLACE: the original body is drained
	}
	if f.done || f.disabled {
		f.emitData(st, b, eos)
		return
	}
	if st.duplex() {
		// ext_proc.cc Filter::onData and handleDataStreamedModeBase: in
		// FULL_DUPLEX_STREAMED a chunk goes to the processor at once, even
		// while the headers reply is awaited, and Envoy drains its own copy:
		// only what the processor sends back (streamed_response) continues.
		if len(b) == 0 && !eos {
			return
		}
		st.duplexSent = true
		f.send(st, bodyRequest(st.dir, b, eos))
		return
	}
	if st.awaitingHeaders {
		f.bufferData(st, b, eos)
		f.overLimit(st)
		return
	}
	switch st.bodyMode {
	case extprocv3.ProcessingMode_NONE:
		f.emitData(st, b, eos)
	case extprocv3.ProcessingMode_STREAMED:
		if len(b) == 0 && !eos {
			return
		}
		f.sendChunk(st, b, eos)
	case extprocv3.ProcessingMode_BUFFERED:
		f.bufferData(st, b, eos)
		if !f.overLimit(st) && eos {
			f.sendBuffered(st)
		}
	case extprocv3.ProcessingMode_BUFFERED_PARTIAL:
		switch {
		case st.partialDone:
			f.emitData(st, b, eos)
		case st.awaitingBody:
			st.pending = append(st.pending, chunk{b, eos})
		default:
			f.bufferData(st, b, eos)
			if eos || uint64(len(st.buffer)) >= f.s().bufferLimit {
				f.sendBuffered(st)
			}
		}
	}
}

func bodyRequest(d direction, b []byte, eos bool) *extprocsvc.ProcessingRequest {
	body := &extprocsvc.HttpBody{Body: b, EndOfStream: eos}
	if d == dirRequest {
		return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestBody{RequestBody: body}}
	}
	return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseBody{ResponseBody: body}}
}

func (f *extProcFilter) sendChunk(st *dirState, b []byte, eos bool) {
	st.queue = append(st.queue, chunk{b, eos})
	f.send(st, bodyRequest(st.dir, b, eos))
}

func (f *extProcFilter) sendBuffered(st *dirState) {
	st.awaitingBody = true
	f.send(st, bodyRequest(st.dir, st.buffer, st.bufferEOS))
}

// send opens the stream if needed and queues m with the first-message
// extras: protocol_config on the stream's first message, attributes on each
// direction's first message, and metadata_context always, holding the
// forwarding namespaces as the store has them now (every headers and body
// message, as Envoy's buildHeaderRequest and setupBodyChunk both call
// addDynamicMetadata).
func (f *extProcFilter) send(st *dirState, m *extprocsvc.ProcessingRequest) {
	if !f.ensureStream() {
		return
	}
	m.MetadataContext = f.s().meta.forward(f.cfg.forwardingNamespaces)
	if !f.sentFirst {
		f.sentFirst = true
		m.ProtocolConfig = &extprocsvc.ProtocolConfiguration{
			RequestBodyMode:  f.mode.RequestBodyMode,
			ResponseBodyMode: f.mode.ResponseBodyMode,
		}
	}
	if !st.sentAny {
		st.sentAny = true
		if a := f.attributes(st.dir); a != nil {
			m.Attributes = a
		}
	}
	f.ps.send(m)
	f.armTimer(st)
}

func (f *extProcFilter) ensureStream() bool {
	if f.ps != nil {
		return true
	}
	conn, err := f.s().h.grpcConn(f.grpc.cluster, f.grpc.authority)
	if err == nil {
		f.ps, err = openProcStream(f.s(), f, conn, f.grpc.metadata)
	}
	if err != nil {
		f.s().h.count(func(st *Stats) { st.ExtProcStreamErrors++ })
		f.onFailure(f.cfg.statusOnError, grpcErrorDetails(err), true)
		return false
	}
	return true
}

func grpcErrorDetails(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", int(st.Code()), strings.Join(strings.Fields(st.Message()), "_"))
}

func (f *extProcFilter) armTimer(st *dirState) {
	// processor_state.cc ProcessorState::onStartProcessorCall starts no
	// message timer in a FULL_DUPLEX_STREAMED direction, headers included.
	if st.duplex() || st.outstanding() == 0 || (st.timer != nil && !st.timer.stopped) {
		return
	}
	st.timer = f.s().afterFunc(f.cfg.messageTimeout, func() { f.onTimeout(st) })
}

func (f *extProcFilter) onTimeout(st *dirState) {
	if f.done || f.stopped(st) || st.outstanding() == 0 {
		return
	}
	f.s().h.count(func(s *Stats) { s.MessageTimeouts++ })
	f.s().h.logf("envoytest: ext_proc %s: %s message timed out after %v", f.cfg.name, st.dir, f.cfg.messageTimeout)
	// A timeout is always a 504, not status_on_error.
	f.onFailure(504, "ext_proc_error_per-message_timeout_exceeded", true)
}

// overrideTimeout handles override_message_timeout: honoured once per
// pending message, only within (0, max_message_timeout].
func (f *extProcFilter) overrideTimeout(d *extprocsvc.ProcessingResponse) {
	dur := d.GetOverrideMessageTimeout().AsDuration()
	if f.cfg.maxMessageTimeout == 0 || dur < 1e6 || dur > f.cfg.maxMessageTimeout {
		return
	}
	for _, st := range []*dirState{&f.dec, &f.enc} {
		if st.outstanding() > 0 && !st.timeoutOverridden && st.timer != nil && !st.timer.stopped {
			st.timeoutOverridden = true
			st.timer.stop()
			st.timer = f.s().afterFunc(dur, func() { f.onTimeout(st) })
			return
		}
	}
}

// onReply handles one message from the processor, on the event loop.
func (f *extProcFilter) onReply(ps *procStream, resp *extprocsvc.ProcessingResponse) {
	if ps != f.ps || ps.closed || f.done {
		return
	}
	if resp.GetOverrideMessageTimeout() != nil {
		f.overrideTimeout(resp) // consumed for that purpose alone
		return
	}
	// Written before the reply is checked, as Envoy does.
	f.receiveMetadata(resp)
	var st *dirState
	isHeaders := false
	switch r := resp.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		f.onImmediate(r.ImmediateResponse)
		return
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		st, isHeaders = &f.dec, true
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		st, isHeaders = &f.enc, true
	case *extprocsvc.ProcessingResponse_RequestBody:
		st = &f.dec
	case *extprocsvc.ProcessingResponse_ResponseBody:
		st = &f.enc
	default:
		f.onSpurious(fmt.Sprintf("unexpected reply %T", r))
		return
	}
	if f.stopped(st) {
		return // that direction was abandoned (a local reply is under way)
	}
	var valid bool
	switch {
	case isHeaders:
		valid = st.awaitingHeaders
	case st.duplex():
		// processor_state.cc ProcessorState::handleBodyResponse accepts a
		// body reply in StreamedBodyCallback only: after the headers reply,
		// once a chunk was sent, until an end_of_stream. Any number of
		// replies may come, unsolicited, in between.
		valid = !st.awaitingHeaders && st.duplexSent && !st.duplexDone
	default:
		valid = !st.awaitingHeaders && (st.awaitingBody || len(st.queue) > 0)
	}
	if !valid {
		f.onSpurious(fmt.Sprintf("%s reply while no such %s message is pending", replyName(resp), st.dir))
		return
	}
	st.timer.stop()
	st.timeoutOverridden = false
	var err error
	if isHeaders {
		var hr *extprocsvc.HeadersResponse
		if st.dir == dirRequest {
			hr = resp.GetRequestHeaders()
		} else {
			hr = resp.GetResponseHeaders()
		}
		err = f.onHeadersReply(st, hr, resp.GetModeOverride())
	} else {
		var br *extprocsvc.BodyResponse
		if st.dir == dirRequest {
			br = resp.GetRequestBody()
		} else {
			br = resp.GetResponseBody()
		}
		err = f.onBodyReply(st, br)
	}
	if err != nil {
		f.onProcessingError(err)
		return
	}
	if !f.done {
		f.armTimer(st)
		f.maybeCloseEarly()
	}
}

func replyName(resp *extprocsvc.ProcessingResponse) string {
	switch resp.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		return "request_headers"
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		return "response_headers"
	case *extprocsvc.ProcessingResponse_RequestBody:
		return "request_body"
	case *extprocsvc.ProcessingResponse_ResponseBody:
		return "response_body"
	}
	return "unknown"
}

// errSpurious marks a reply that is not valid at this point.
var errSpurious = errors.New("spurious message")

// errContentLength is Envoy's BUFFERED content-length check after a body
// mutation.
var errContentLength = errors.New("mismatch_between_content_length_and_the_length_of_the_mutated_body")

func (f *extProcFilter) applyHeaderMutation(st *dirState, cr *extprocsvc.CommonResponse) error {
	res, err := applyMutation(st.headers, cr.GetHeaderMutation(), f.cfg.rules, f.contentLengthRemoved(st))
	if res.rejected > 0 {
		f.s().h.count(func(s *Stats) { s.RejectedHeaderMutations += int64(res.rejected) })
	}
	return err
}

func (f *extProcFilter) onHeadersReply(st *dirState, hr *extprocsvc.HeadersResponse, override *extprocv3.ProcessingMode) error {
	st.awaitingHeaders = false
	cr := hr.GetResponse()
	if cr.GetBodyMutation().GetStreamedResponse() != nil {
		return errSpurious
	}
	if err := f.applyHeaderMutation(st, cr); err != nil {
		return err
	}
	if st.dir == dirRequest {
		f.routeCache(cr)
	}
	if cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE {
		// Body mode becomes NONE; a body mutation replaces the whole body.
		st.bodyMode = extprocv3.ProcessingMode_NONE
		if bm := cr.GetBodyMutation(); bm != nil && bm.GetMutation() != nil {
			body := bm.GetBody()
			st.headers.del("content-length")
			st.replaced = true
			st.buffer, st.hasBuffer, st.bufferEOS = nil, false, false
			st.headersEOS = false
			f.releaseHeaders(st)
			f.emitData(st, body, true)
			return nil
		}
	}
	if override != nil {
		f.applyModeOverride(st, override)
	}
	if f.contentLengthRemoved(st) {
		st.headers.del("content-length")
	}
	f.continueAfterHeaders(st)
	return nil
}

// applyModeOverride merges mode_override per ENVOY-EXTPROC section 2.
func (f *extProcFilter) applyModeOverride(st *dirState, o *extprocv3.ProcessingMode) {
	if !f.cfg.allowModeOverride {
		return
	}
	for _, b := range []extprocv3.ProcessingMode_BodySendMode{f.cfg.mode.RequestBodyMode, f.cfg.mode.ResponseBodyMode} {
		if b == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED {
			return
		}
	}
	merged := envoyconfig.MergeModeOverride(f.mode, o)
	if len(f.cfg.allowedOverrideModes) > 0 && !modeAllowed(merged, f.cfg.allowedOverrideModes) {
		f.s().h.logf("envoytest: ext_proc %s: mode_override not in allowed_override_modes; ignored", f.cfg.name)
		return
	}
	if err := checkMode(f.cfg.name+" mode_override", merged, false); err != nil {
		f.s().h.logf("envoytest: %v; ignored", err)
		return
	}
	f.mode = merged
	if st.dir == dirRequest {
		f.dec.bodyMode = merged.RequestBodyMode
	}
	if !f.enc.started {
		f.enc.headerMode = merged.ResponseHeaderMode
	}
	if !f.enc.started || st.dir == dirResponse {
		f.enc.bodyMode = merged.ResponseBodyMode
	}
}

func modeAllowed(m *extprocv3.ProcessingMode, allowed []*extprocv3.ProcessingMode) bool {
	want := proto.Clone(m).(*extprocv3.ProcessingMode)
	want.RequestHeaderMode = 0
	for _, a := range allowed {
		n, err := normalizeMode("", a)
		if err != nil {
			continue
		}
		n.RequestHeaderMode = 0
		if proto.Equal(n, want) {
			return true
		}
	}
	return false
}

// routeCache applies clear_route_cache: request path of a downstream filter
// only, and only with a header_mutation in the same CommonResponse.
func (f *extProcFilter) routeCache(cr *extprocsvc.CommonResponse) {
	h := f.s().h
	if f.chain.upstream {
		if cr.GetClearRouteCache() {
			h.count(func(s *Stats) { s.ClearRouteCacheUpstreamIgnored++ })
		}
		return
	}
	switch f.cfg.routeCacheAction {
	case extprocv3.ExternalProcessor_RETAIN:
		if cr.GetClearRouteCache() {
			h.count(func(s *Stats) { s.ClearRouteCacheDisabled++ })
		}
		return
	case extprocv3.ExternalProcessor_CLEAR:
		if cr.GetHeaderMutation() == nil {
			return
		}
	default:
		if !cr.GetClearRouteCache() {
			return
		}
		if cr.GetHeaderMutation() == nil {
			h.count(func(s *Stats) { s.ClearRouteCacheIgnored++ })
			return
		}
	}
	h.count(func(s *Stats) { s.RouteCacheCleared++ })
	f.s().routeValid = false
}

func bodyAfterMutation(bm *extprocsvc.BodyMutation, orig []byte) ([]byte, bool, error) {
	switch m := bm.GetMutation().(type) {
	case *extprocsvc.BodyMutation_Body:
		return m.Body, true, nil
	case *extprocsvc.BodyMutation_ClearBody:
		if m.ClearBody {
			return nil, true, nil
		}
	case *extprocsvc.BodyMutation_StreamedResponse:
		return nil, false, errSpurious // only valid in FULL_DUPLEX_STREAMED
	}
	return orig, false, nil
}

func (f *extProcFilter) onBodyReply(st *dirState, br *extprocsvc.BodyResponse) error {
	cr := br.GetResponse()
	if st.duplex() {
		return f.onDuplexReply(st, cr)
	}
	if len(st.queue) > 0 {
		// STREAMED: the head of the FIFO is answered and re-injected.
		c := st.queue[0]
		st.queue = st.queue[1:]
		data, _, err := bodyAfterMutation(cr.GetBodyMutation(), c.data)
		if err != nil {
			return err
		}
		if st.dir == dirRequest && st.held {
			f.routeCache(cr)
		}
		f.releaseHeaders(st)
		f.emitData(st, data, c.eos)
		return nil
	}
	// BUFFERED or BUFFERED_PARTIAL: the headers are still held, so a header
	// mutation in the body reply applies.
	st.awaitingBody = false
	if err := f.applyHeaderMutation(st, cr); err != nil {
		return err
	}
	data, mutated, err := bodyAfterMutation(cr.GetBodyMutation(), st.buffer)
	if err != nil {
		return err
	}
	if mutated && !f.contentLengthRemoved(st) {
		if cl, ok := st.headers.get("content-length"); ok && cl != strconv.Itoa(len(data)) {
			return errContentLength
		}
	}
	if st.dir == dirRequest {
		f.routeCache(cr)
	}
	eos := st.bufferEOS
	st.buffer, st.hasBuffer, st.bufferEOS = nil, false, false
	f.releaseHeaders(st)
	f.emitData(st, data, eos)
	if st.bodyMode == extprocv3.ProcessingMode_BUFFERED_PARTIAL {
		st.partialDone = true
		for _, c := range st.pending {
			f.emitData(st, c.data, c.eos)
		}
		st.pending = nil
	}
	return nil
}

// onDuplexReply handles a body reply in FULL_DUPLEX_STREAMED mode
// (processor_state.cc ProcessorState::handleStreamedBodyCallback): only a
// streamed_response is valid, anything else (an empty reply or a whole-body
// mutation) is spurious. handleDuplexStreamedBodyResponse injects its body,
// if any, with its end_of_stream; at end_of_stream the filter continues
// (finalizeBodyResponse, continueIfNecessary), which also releases headers
// still held: what was sent before then follows them, in order (Envoy's
// integration test ServerWaitForBodyBeforeSendsHeaderRespDuplexStreamed,
// test/extensions/filters/http/ext_proc: headers reply after the whole body,
// then the body replies, and the upstream gets the headers and all of them).
func (f *extProcFilter) onDuplexReply(st *dirState, cr *extprocsvc.CommonResponse) error {
	sr := cr.GetBodyMutation().GetStreamedResponse()
	if sr == nil {
		return errSpurious
	}
	body, eos := sr.GetBody(), sr.GetEndOfStream()
	if eos {
		st.duplexDone = true
	}
	if st.held {
		if len(body) > 0 || eos {
			st.duplexHeld = append(st.duplexHeld, chunk{body, eos})
		}
		if !eos {
			return nil
		}
		f.releaseHeaders(st)
		held := st.duplexHeld
		st.duplexHeld = nil
		for _, c := range held {
			f.emitData(st, c.data, c.eos)
		}
		return nil
	}
	if len(body) > 0 || eos {
		f.emitData(st, body, eos)
	}
	return nil
}

// onImmediate handles an immediate_response: valid at any point, it ends
// processing and becomes a local reply.
func (f *extProcFilter) onImmediate(ir *extprocsvc.ImmediateResponse) {
	if f.cfg.disableImmediateResponse {
		f.onSpurious("immediate_response with disable_immediate_response")
		return
	}
	code := int(ir.GetStatus().GetCode())
	if code < 200 {
		code = 200
	}
	hdrs := &headerMap{}
	if _, err := applyMutation(hdrs, ir.GetHeaders(), f.cfg.rules, false); err != nil {
		f.onProcessingError(err)
		return
	}
	details := strings.Join(strings.Fields(ir.GetDetails()), "_")
	f.finish()
	f.localReply(code, string(ir.GetBody()), hdrs, details, false)
}

func (f *extProcFilter) onSpurious(why string) {
	f.s().h.count(func(s *Stats) { s.SpuriousMessages++ })
	f.s().h.logf("envoytest: ext_proc %s: spurious message: %s", f.cfg.name, why)
	f.onFailure(f.cfg.statusOnError, "ext_proc_error_spurious_message", true)
}

// onProcessingError handles an invalid reply: invalid mutations and
// content-length mismatches fail the request even with failure_mode_allow.
func (f *extProcFilter) onProcessingError(err error) {
	if errors.Is(err, errSpurious) {
		f.onSpurious("body mutation not valid in this mode")
		return
	}
	f.s().h.logf("envoytest: ext_proc %s: %v", f.cfg.name, err)
	details := "ext_proc_error_invalid_mutation"
	if errors.Is(err, errContentLength) {
		details = errContentLength.Error()
	}
	f.finish()
	f.localReply(f.cfg.statusOnError, "", nil, details, false)
}

// onStreamEnd handles the end of the gRPC stream from the processor's side.
func (f *extProcFilter) onStreamEnd(ps *procStream, err error) {
	if ps != f.ps || ps.closed || f.done {
		return
	}
	if errors.Is(err, io.EOF) {
		// Closing with OK: continue without the processor.
		f.s().h.count(func(s *Stats) { s.ExtProcStreamsClosedByProcessor++ })
		f.finish()
		f.releaseAll()
		return
	}
	f.s().h.count(func(s *Stats) { s.ExtProcStreamErrors++ })
	f.s().h.logf("envoytest: ext_proc %s: stream failed: %v", f.cfg.name, err)
	if status.Code(err) == codes.OK {
		f.finish()
		f.releaseAll()
		return
	}
	f.onFailure(f.cfg.statusOnError, grpcErrorDetails(err), true)
}

// onFailure fails the request with code, or continues without the processor
// when failure_mode_allow is set.
func (f *extProcFilter) onFailure(code int, details string, failOpenAllowed bool) {
	if f.done {
		return
	}
	if f.failOpen && failOpenAllowed && !f.dec.duplexSent && !f.enc.duplexSent {
		// ext_proc.cc Filter::failureModeAllow: never once a
		// FULL_DUPLEX_STREAMED body was received, as Envoy drained it.
		f.s().h.count(func(s *Stats) { s.FailureModeAllowed++ })
		f.finish()
		f.releaseAll()
		return
	}
	f.finish()
	f.localReply(code, "", nil, details, false)
}

// finish ends processing: the stream is closed and everything passes through.
func (f *extProcFilter) finish() {
	f.done = true
	f.dec.timer.stop()
	f.enc.timer.stop()
	f.closeStream(false)
}

// releaseAll lets everything the filter holds continue unmodified, in order.
func (f *extProcFilter) releaseAll() {
	for _, st := range []*dirState{&f.dec, &f.enc} {
		if !st.started || st.replaced || f.stopped(st) {
			continue
		}
		st.awaitingHeaders, st.awaitingBody = false, false
		f.releaseHeaders(st)
		q := st.queue
		st.queue = nil
		for _, c := range q {
			f.emitData(st, c.data, c.eos)
		}
		f.flushBuffer(st)
		p := append(st.pending, st.duplexHeld...)
		st.pending, st.duplexHeld = nil, nil
		for _, c := range p {
			f.emitData(st, c.data, c.eos)
		}
	}
}

func (f *extProcFilter) localReply(code int, body string, hdrs *headerMap, details string, includeSelf bool) {
	if f.chain.upstream {
		f.chain.att.localReply(code, body, hdrs, details)
		return
	}
	f.s().sendLocalReply(f.idx, includeSelf, code, body, hdrs, details)
}

// willSendMore reports whether the direction can still produce a message.
func (f *extProcFilter) willSendMore(st *dirState) bool {
	if st.outstanding() > 0 {
		return true
	}
	if !st.started {
		return st.headerMode == extprocv3.ProcessingMode_SEND || st.bodyMode != extprocv3.ProcessingMode_NONE
	}
	if st.replaced {
		return false
	}
	if st.duplex() {
		return !st.duplexDone && !st.headersEOS
	}
	if st.inputDone {
		return st.hasBuffer && st.bodyMode != extprocv3.ProcessingMode_NONE
	}
	switch st.bodyMode {
	case extprocv3.ProcessingMode_NONE:
		return false
	case extprocv3.ProcessingMode_BUFFERED_PARTIAL:
		return !st.partialDone
	}
	return true
}

// maybeCloseEarly closes the stream once no further message can be sent, as
// Envoy's ext_proc_stream_close_optimization does.
func (f *extProcFilter) maybeCloseEarly() {
	if f.ps == nil || f.ps.closed || f.willSendMore(&f.dec) || f.willSendMore(&f.enc) {
		return
	}
	f.done = true
	f.closeStream(false)
}

// closeStream half-closes the stream; reset also cancels it at once.
func (f *extProcFilter) closeStream(reset bool) {
	if f.ps == nil {
		return
	}
	f.ps.close()
	if reset {
		f.ps.cancel()
	}
}
