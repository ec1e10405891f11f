package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/records"
)

// Attributes the adapter filter requests in envoy.yaml. Envoy delivers them under
// the fixed key "envoy.filters.http.ext_proc", in the first message only.
const (
	attrNamespace    = "envoy.filters.http.ext_proc"
	attrProvider     = "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"
	attrAttemptCount = "upstream.request_attempt_count"
)

// adapterProcessor is the upstream role: one per attempt. It reads the policy
// role's decision from dynamic metadata and adapts the request to the provider
// Envoy picked.
type adapterProcessor struct {
	s         *Server
	pol       *policy.Policy
	requestID string // the x-request-id header, for logs
	recordID  string // the request's own id, from the decision
	route     *policy.Route
	provider  *policy.Provider
	format    ClientFormat // the request's, from the decision; nil before it is read
	tr        Translation  // from the client's format to the provider's
	up        Upstream     // the provider's settings
	attempt   int
	// clientPath, method and reqHeaders are the request's, for a translation
	// at the body and at the response.
	clientPath string
	method     string
	reqHeaders headers
	// betas and hasBetas are the client's anthropic-beta header, from the
	// decision: the header map may hold an earlier attempt's value.
	betas    string
	hasBetas bool
	// setBetas, when not nil, is the anthropic-beta value this attempt's body
	// reply sends ("" removes the header): a provider that reads betas in
	// the header (HeaderBetas) gets its compatibility table's.
	setBetas *string
	// respBody translates the response body, when the translation asked
	// for it at the response headers; nil otherwise.
	respBody func(chunk []byte, end bool) []byte
	// att is this attempt's entry in the trail and started the time of its
	// request headers (s.now), for the time to response headers.
	att     records.Attempt
	started time.Time
	// send sends on the stream from any goroutine (sender); duplex says
	// this attempt asked for its response body in FULL_DUPLEX_STREAMED
	// mode, which body then answers and pings (ping.go).
	send   func(*extprocv3.ProcessingResponse) error
	duplex bool
	body   *duplexBody
	// held is set while the response headers reply waits for the first
	// event of a translated stream (firstEvent): the mutation, the trail
	// and this attempt's line to send then.
	held *heldHeaders
}

// heldHeaders is a response headers reply not sent yet.
type heldHeaders struct {
	m     mutation
	trail string
	att   records.Attempt
}

func (a *adapterProcessor) setSend(send func(*extprocv3.ProcessingResponse) error) { a.send = send }

func newAdapterProcessor(s *Server) *adapterProcessor { return &adapterProcessor{s: s} }

func (a *adapterProcessor) finish(context.Context, error) {
	if a.body != nil {
		a.body.end()
	}
}

func (a *adapterProcessor) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return a.requestHeaders(req, r.RequestHeaders), nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return a.requestBody(ctx, r.RequestBody), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return a.responseHeaders(req, r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return a.responseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		if a.body != nil {
			a.body.end() // FULL_DUPLEX_STREAMED sends them (response_trailer_mode SEND)
		}
	}
	return passThrough(req)
}

// responseHeaders names the provider and attempt on the response. Only the final
// attempt's response reaches the policy role and the client, so these headers
// say who actually served, whatever fallbacks came before. The attempt's line
// of the trail gains its status and time to headers; the trail comes from this
// message's metadata_context (the adapter forwards the namespace), so it holds
// the earlier attempts' lines and this one's.
func (a *adapterProcessor) responseHeaders(req *extprocv3.ProcessingRequest, hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if a.provider == nil {
		return continueResponseHeaders(nil)
	}
	var m mutation
	m.Set(hdrServingProvider, a.provider.Name)
	m.Set(hdrAttempts, strconv.Itoa(max(a.attempt, 1)))
	h := readHeaders(hh.GetHeaders())
	status := h.get(":status")
	var override *extprocfilterv3.ProcessingMode
	contentType := h.get("content-type")
	if rt, ok := a.tr.(ResponseTranslation); ok {
		code, _ := strconv.Atoi(status)
		set := func(name, value string) {
			switch name {
			case ":status":
				status = value // the router, the trail and the client see it
			case "content-type":
				contentType = value
			}
			m.Set(name, value)
		}
		remove := func(name string) { m.Remove(name) }
		if a.respBody = rt.TranslateResponse(a.clientPath, code, h.get, set, remove, a.warn); a.respBody != nil && !a.duplex {
			override = streamResponseBody()
		}
	}
	if a.duplex {
		// The body comes in FULL_DUPLEX_STREAMED mode (set at the request
		// headers): an override here would replace it.
		var ping []byte
		if a.respBody != nil && strings.HasPrefix(contentType, "text/event-stream") {
			ping = pingComment
			if a.format != nil && a.format.Name() == "anthropic" {
				ping = pingAnthropic
			}
		}
		pings := a.s.metrics.streamPings.WithLabelValues(a.provider.Name)
		a.body = newDuplexBody(a.send, a.s.afterFunc, a.s.pingInterval, a.s.pingMaxIdle, ping, pings.Inc)
		if ping != nil && status == "200" && a.format != nil && a.format.Name() == "anthropic" {
			// Hold the headers until the stream's first event (firstEvent):
			// Envoy sends FULL_DUPLEX_STREAMED body chunks while the headers
			// reply is awaited (ext_proc.cc Filter::onData, "Sending body
			// data even though header processing is still in progress"), so
			// a stream that fails at once can still become an HTTP error the
			// router retries.
			a.held = &heldHeaders{m: m, trail: trailFrom(req), att: a.att}
			a.held.att.TimeToHeadersMS = max(float64(a.s.now().Sub(a.started).Microseconds())/1000, 0)
			return nil
		}
	}
	resp := continueResponseHeaders(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	resp.ModeOverride = override
	att := a.att
	if st, err := strconv.Atoi(status); err == nil && st > 0 {
		att.Status = st
		att.TimeToHeadersMS = max(float64(a.s.now().Sub(a.started).Microseconds())/1000, 0)
		resp.DynamicMetadata = attemptMetadata(trailFrom(req), att)
	}
	return resp
}

// firstEvent sends the held response headers reply once the translated
// stream produced its first bytes, out. When these are an Anthropic error
// event (a Bedrock stream whose first frame is an exception), the reply
// carries the error's HTTP status and out becomes its JSON body: the router
// then sees, say, a 429 and falls back as for an error Bedrock answered
// with a status. It returns the bytes to send as the body.
func (a *adapterProcessor) firstEvent(out []byte) ([]byte, error) {
	h := a.held
	a.held = nil
	h.att.Status = 200
	if data, ok := bytes.CutPrefix(out, []byte("event: error\ndata: ")); ok && bytes.HasSuffix(data, []byte("\n\n")) &&
		!bytes.Contains(data[:len(data)-2], []byte("\n\n")) {
		body := bytes.TrimSuffix(data, []byte("\n\n"))
		var e struct {
			Error struct {
				Type string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
			h.att.Status = anthropicErrorStatus(e.Error.Type)
			h.m.Set(":status", strconv.Itoa(h.att.Status))
			h.m.Set("content-type", "application/json")
			h.m.Remove("cache-control")
			out = body
		}
	}
	resp := continueResponseHeaders(&extprocv3.CommonResponse{HeaderMutation: h.m.proto()})
	resp.DynamicMetadata = attemptMetadata(h.trail, h.att)
	return out, a.send(resp)
}

// anthropicErrorStatus is the HTTP status Anthropic's API answers an error
// of type typ with.
func anthropicErrorStatus(typ string) int {
	switch typ {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error":
		return 429
	case "timeout_error":
		return 504
	case "overloaded_error":
		return 529
	}
	return 500
}

func (a *adapterProcessor) reject(e *ClientError) *extprocv3.ProcessingResponse {
	a.s.metrics.rejections.WithLabelValues(roleAdapter, string(e.Code)).Inc()
	a.s.log.Warn("attempt refused", zap.String("request_id", a.recordID),
		zap.String("client_request_id", clip(a.requestID, maxClientRequestIDBytes)), zap.Int("attempt", a.attempt),
		zap.Int("status", e.Status), zap.String("reason", e.Message))
	f := a.format
	if f == nil {
		f = a.s.formats.byDefault() // no decision, no format: the default's shape
	}
	return immediate(f, e, a.recordID)
}

func attribute(attrs map[string]*structpb.Struct, name string) *structpb.Value {
	return attrs[attrNamespace].GetFields()[name]
}

func (a *adapterProcessor) requestHeaders(req *extprocv3.ProcessingRequest, hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := readHeaders(hh.GetHeaders())
	attrs := req.GetAttributes()
	a.requestID = h.get(hdrRequestID)
	a.started = a.s.now()
	a.attempt = int(attribute(attrs, attrAttemptCount).GetNumberValue())
	if a.attempt == 0 {
		if n, err := strconv.Atoi(attribute(attrs, attrAttemptCount).GetStringValue()); err == nil {
			a.attempt = n
		}
	}

	// Fail closed: without the policy role's decision nothing leaves.
	d, err := decisionFrom(req)
	if err != nil {
		return a.reject(permissionError("%v", err))
	}
	a.recordID, a.format = d.RecordID, a.s.formats.named(d.ClientFormat)
	a.pol = a.s.policies.Current()
	route, ok := a.pol.Route(d.Route)
	if !ok {
		return a.reject(permissionError("route %q is no longer in the policy", d.Route))
	}
	name := attribute(attrs, attrProvider).GetStringValue()
	if name == "" {
		return a.reject(permissionError("the upstream endpoint carries no filter_metadata.tollgate.provider; see envoy.yaml"))
	}
	prov, ok := a.pol.Providers[name]
	if !ok || !inChain(route, name) {
		return a.reject(permissionError("provider %q is not in the chain of route %q", name, route.Slug))
	}
	up, ok := prov.Settings.(Upstream)
	if !ok {
		return a.reject(permissionError("provider %q of type %q cannot be sent requests", name, prov.Type))
	}
	tr, ok := a.s.translation(a.format.Name(), prov.Type)
	if !ok {
		return a.reject(permissionError("provider %q of type %q cannot serve requests in the %s format", name, prov.Type, a.format.Name()))
	}
	if at, ok := tr.(AttemptTranslation); ok {
		tr = at.ForAttempt(prov.Settings) // this attempt's own
	}
	a.route, a.provider, a.tr, a.up = route, prov, tr, up
	a.clientPath, a.method, a.reqHeaders = d.Path, h.get(":method"), h
	a.betas, a.hasBetas = h.get(hdrBeta), h.has(hdrBeta)
	if d.betasKnown {
		a.betas, a.hasBetas = d.Betas, d.HasBetas
	}

	// Envoy keeps one header map across attempts, so every header is written as
	// an overwrite and every credential another provider's adapter may have set is
	// removed (ENVOY-EXTPROC section 12). The routing header has done its work.
	var m mutation
	m.Remove(hdrAuthorization)
	m.Remove(h.withPrefix(internalPrefix)...)
	for _, other := range route.Chain {
		if other == name {
			continue
		}
		if o, ok := a.pol.Providers[other].Settings.(Upstream); ok {
			m.Remove(o.CredentialHeaders()...)
		}
	}
	// The client's anthropic-beta, in case an earlier attempt sent another
	// (HeaderBetas); this attempt's provider may change it at the body.
	if a.betas != h.get(hdrBeta) || a.hasBetas != h.has(hdrBeta) {
		if a.hasBetas {
			m.Set(hdrBeta, a.betas)
		} else {
			m.Remove(hdrBeta)
		}
	}
	up.SetRequestHeaders(d.Path, h.has, m.Set)
	if a.retry() && d.BodyBytes > 0 {
		// The router replays the policy role's body; an earlier attempt's
		// rewrite left its own length in the shared header map. An attempt
		// that rewrites the body sets its length again at the body.
		m.Set("content-length", strconv.Itoa(d.BodyBytes))
	}
	resp := continueRequestHeaders(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	// The attempt joins the request's trail (decision.go), for its record.
	att := records.Attempt{N: max(a.attempt, 1), Provider: name}
	if d.Model != "" {
		att.Model = a.mapModel(d.Model)
	}
	a.att = att
	resp.DynamicMetadata = attemptMetadata(trailFrom(req), att)
	if ip, ok := tr.(IdlePings); ok && ip.IdlePings() && a.s.pingInterval > 0 && a.send != nil {
		a.duplex = true
	}
	_, adapts := up.(RequestAdapter)
	skip := (!a.retry() || d.BodyBytes > 0) && !adapts && !tr.NeedsBody(a.mayMapModel(d.Model))
	switch {
	case a.duplex && skip:
		resp.ModeOverride = duplexResponseBody(extprocfilterv3.ProcessingMode_NONE)
	case a.duplex:
		// envoy.yaml's request body mode, echoed: body modes in an
		// override always replace the configured ones.
		resp.ModeOverride = duplexResponseBody(extprocfilterv3.ProcessingMode_BUFFERED)
	case skip:
		// Nothing in the body changes for this attempt: ask Envoy not to send
		// it (envoy.yaml allows the override). Body modes in an override replace
		// both configured ones, so the response body's NONE is echoed
		// (ENVOY-EXTPROC section 2); without allow_mode_override Envoy ignores
		// this and requestBody passes the body through.
		resp.ModeOverride = skipRequestBody()
	}
	return resp
}

// skipRequestBody is the adapter's mode_override for an attempt whose body it
// leaves as it is. Header and trailer modes stay DEFAULT, which keeps the
// configured ones. A new message each time: gRPC marshals responses
// concurrently.
func skipRequestBody() *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestBodyMode:  extprocfilterv3.ProcessingMode_NONE,
		ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE,
	}
}

// mapsModels reports whether the policy maps model ids for this attempt's
// route or provider, the one reason the adapter reads an Anthropic body.
func (a *adapterProcessor) mapsModels() bool {
	return a.pol.MapsModels(a.route, a.provider.Name)
}

// mayMapModel reports whether this attempt may change the model id of a
// request for model (from the decision; empty when the policy role did not
// name one).
func (a *adapterProcessor) mayMapModel(model string) bool {
	if !a.mapsModels() {
		return false
	}
	return model == "" || a.mapModel(model) != model
}

// mapModel returns the model id this attempt sends for a client's model.
func (a *adapterProcessor) mapModel(model string) string {
	return a.pol.MapModel(a.route, a.provider.Name, model)
}

// retry reports whether this attempt follows another: Envoy's header map
// then holds the content-length an earlier attempt's adapter may have set for
// its rewritten body, while the router replays the original body, so a retry
// sets the content-length again: from the decision's BodyBytes at its
// headers, or from the body when it reads it (ENVOY-EXTPROC section 12).
func (a *adapterProcessor) retry() bool { return a.attempt > 1 }

func inChain(r *policy.Route, provider string) bool {
	for _, p := range r.Chain {
		if p == provider {
			return true
		}
	}
	return false
}

// streamResponseBody is the adapter's mode_override for an attempt whose
// response body it translates: the body comes chunk by chunk (STREAMED), so
// a translated stream reaches the client event by event. Envoy honours an
// override in the response headers reply for the response body
// (ext_proc.cc Filter::onReceiveMessage sets both directions' modes while a
// headers reply is awaited); the request body's mode no longer matters.
func streamResponseBody() *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestBodyMode:  extprocfilterv3.ProcessingMode_NONE,
		ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED,
	}
}

// warn logs and counts what a response translation noticed.
func (a *adapterProcessor) warn(kind, msg string) {
	a.s.metrics.translationWarnings.WithLabelValues(a.provider.Name, kind).Inc()
	a.s.log.Warn("response translation", zap.String("request_id", a.recordID), zap.String("provider", a.provider.Name),
		zap.Int("attempt", a.attempt), zap.String("kind", kind), zap.String("detail", msg))
}

// compatNote returns the function that counts what the provider's
// compatibility table adapted or dropped in this attempt's request
// (RequestAdapter), and the one that then logs it all in one line, with no
// body content.
func (a *adapterProcessor) compatNote() (note func(key, action, detail string), flush func()) {
	var seen []string
	note = func(key, action, detail string) {
		a.s.metrics.compatActions.WithLabelValues(a.provider.Type, key, action).Inc()
		e := key + ":" + action
		if detail != "" {
			e += " (" + detail + ")"
		}
		seen = append(seen, e)
	}
	flush = func() {
		if len(seen) > 0 {
			a.s.log.Info("compatibility table applied", zap.String("request_id", a.recordID), zap.String("provider", a.provider.Name),
				zap.String("provider_type", a.provider.Type), zap.Int("attempt", a.attempt), zap.Strings("changes", seen))
		}
	}
	return note, flush
}

// responseBody translates one chunk of the response body, when the
// translation asked for it at the response headers. In FULL_DUPLEX_STREAMED
// mode every chunk comes, translated or not, and the reply goes out through
// a.body (nil response).
func (a *adapterProcessor) responseBody(b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	if a.duplex && a.body != nil {
		out := b.GetBody()
		if a.respBody != nil {
			out = a.respBody(out, b.GetEndOfStream())
		}
		if a.held != nil {
			if len(out) == 0 && !b.GetEndOfStream() {
				return nil, nil // part of a frame: the headers wait on
			}
			var err error
			if out, err = a.firstEvent(out); err != nil {
				return nil, err
			}
		}
		return nil, a.body.chunk(out, b.GetEndOfStream())
	}
	if a.respBody == nil {
		return continueResponseBody(nil), nil
	}
	out := a.respBody(b.GetBody(), b.GetEndOfStream())
	return continueResponseBody(&extprocv3.CommonResponse{
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
	}), nil
}

func (a *adapterProcessor) requestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if a.provider == nil {
		// Headers were refused; Envoy sends nothing more, but stay correct anyway.
		return continueRequestBody(nil)
	}
	ra, adapts := a.up.(RequestAdapter)
	if !adapts && !a.tr.NeedsBody(a.mapsModels()) {
		// Nothing can change (Envoy ignored the override): spare the scan of
		// a body the policy role read.
		return a.keepBody(b.GetBody())
	}
	body, betas, adapted := b.GetBody(), a.betas, false
	clientPath := a.clientPath
	rt, translates := a.tr.(RequestTranslation)
	if mt, ok := a.tr.(MessagesTranslation); ok && translates {
		// Another format's request becomes a Messages request first: the
		// compatibility table and the translation take that.
		out, p, err := mt.ToMessages(a.clientPath, body)
		if err != nil {
			return a.reject(invalidRequest("the request cannot be sent to provider %q: %v", a.provider.Name, err))
		}
		body, clientPath, adapted = out, p, true
	}
	if adapts {
		note, flush := a.compatNote()
		out, outBetas, err := ra.AdaptRequest(body, a.betas, note)
		flush()
		if err != nil {
			return a.reject(invalidRequest("the request cannot be sent to provider %q: %v", a.provider.Name, err))
		}
		adapted = adapted || len(out) != len(body) || (len(out) > 0 && &out[0] != &body[0])
		body, betas = out, outBetas
		if hb, ok := a.up.(HeaderBetas); ok && hb.BetasInHeader() && betas != a.betas {
			a.setBetas = &betas
		}
	}
	// The translation reads the betas this attempt sends, never an earlier
	// attempt's value the shared header map may hold.
	header := func(name string) string {
		if name == hdrBeta {
			return betas
		}
		return a.reqHeaders.get(name)
	}
	if translates {
		return a.translateRequest(ctx, rt, clientPath, body, header)
	}
	newBody, changed, err := a.tr.RequestBody(body, a.mapModel)
	if err != nil {
		return a.reject(invalidRequest("the request cannot be sent to provider %q: %v", a.provider.Name, err))
	}
	if !changed && !adapted && a.setBetas == nil {
		return a.keepBody(b.GetBody())
	}
	var m mutation
	m.Set("content-length", strconv.Itoa(len(newBody)))
	a.betasHeader(&m)
	return continueRequestBody(&extprocv3.CommonResponse{
		HeaderMutation: m.proto(),
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: newBody}},
	})
}

// betasHeader adds to m the anthropic-beta value this attempt sends, when
// its provider reads betas in the header and its compatibility table changed
// them: the body reply's header mutation reaches the request before it goes
// upstream (see translateRequest). An empty value removes the header.
func (a *adapterProcessor) betasHeader(m *mutation) {
	switch {
	case a.setBetas == nil:
	case *a.setBetas == "":
		m.Remove(hdrBeta)
	default:
		m.Set(hdrBeta, *a.setBetas)
	}
}

// keepBody lets the original body through. On a retry it also restores its
// content-length, which an earlier attempt's rewrite may have changed.
func (a *adapterProcessor) keepBody(body []byte) *extprocv3.ProcessingResponse {
	if !a.retry() {
		return continueRequestBody(nil)
	}
	var m mutation
	m.Set("content-length", strconv.Itoa(len(body)))
	return continueRequestBody(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
}

// translateRequest sends the body of a translation that also chooses the
// path, for a request to clientPath (the client's, or the Messages path of
// a MessagesTranslation): the body, its length, and then the path and credentials the
// provider's settings derive from them (BodyHeaders), all in the body reply.
// Envoy applies a header mutation in the reply to a BUFFERED body before the
// request goes upstream (processor_state.cc ProcessorState::handleBodyResponse,
// "Applying header mutations to buffered body message").
func (a *adapterProcessor) translateRequest(ctx context.Context, rt RequestTranslation, clientPath string, body []byte,
	header func(string) string) *extprocv3.ProcessingResponse {
	out, path, err := rt.TranslateRequest(clientPath, header, body, a.mapModel)
	if err != nil {
		return a.reject(invalidRequest("the request cannot be sent to provider %q: %v", a.provider.Name, err))
	}
	var m mutation
	m.Set("content-length", strconv.Itoa(len(out)))
	a.betasHeader(&m)
	if bh, ok := a.up.(BodyHeaders); ok {
		if err := bh.SetBodyHeaders(ctx, a.s.now(), a.method, path, out, m.Set); err != nil {
			return a.reject(errorf(503, clientformat.CodeOverloaded, "provider %q cannot be sent the request: %v", a.provider.Name, err))
		}
	} else if path != "" {
		m.Set(":path", path)
	}
	return continueRequestBody(&extprocv3.CommonResponse{
		HeaderMutation: m.proto(),
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
	})
}
