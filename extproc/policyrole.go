package extproc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// gatewayKeyHeaders lists where a client may put its gateway key, in the order
// they are tried: the first one present (authorization only with the Bearer
// scheme) is the key, whatever the others hold. All of them are removed before
// the request goes upstream.
var gatewayKeyHeaders = []string{hdrGatewayKey, hdrPortkeyKey, hdrAuthorization, hdrAPIKey}

// gatewayKey returns the client's gateway key and the header it was read from
// ("" when none is present).
func gatewayKey(h headers) (key, header string) {
	for _, k := range gatewayKeyHeaders {
		v := strings.TrimSpace(h.get(k))
		if v == "" {
			continue
		}
		if k == hdrAuthorization {
			scheme, token, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				continue
			}
			v = strings.TrimSpace(token)
		}
		return v, k
	}
	return "", ""
}

// invalidKey is the 401 for a key the policy does not know. It names the header
// the key was read from and the other key headers the request carried, so a
// stale key in a header that comes first is easy to find; never a key.
func invalidKey(h headers, read string) *ClientError {
	var ignored []string
	for _, k := range gatewayKeyHeaders {
		if k != read && strings.TrimSpace(h.get(k)) != "" {
			ignored = append(ignored, k)
		}
	}
	msg := "invalid gateway key in " + read + " (the key is read from the first of " +
		strings.Join(gatewayKeyHeaders, ", ") + " that is present; authorization only as Bearer)"
	if len(ignored) > 0 {
		msg += "; also sent, and not read: " + strings.Join(ignored, ", ")
	}
	return authenticationError("%s", msg)
}

// removeClientOnly removes the request headers that are for the gateway, not
// the provider: the client's credentials (the gateway key in any of its
// headers, and proxy-authorization, which has carried it), its cookies, every
// Tollgate and Portkey header (steering, trace and metadata headers, anything
// posing as an internal one, and Portkey's x-portkey-config, which can hold
// provider secrets), and accept-encoding (responses must stay readable).
//
// It is a deny list, not an allow list: anthropic-* headers and body fields are
// an open list that must reach Anthropic untouched (CLAUDE-CODE-GATEWAY section
// 2), as must x-claude-code-* and the headers a user adds through
// ANTHROPIC_CUSTOM_HEADERS, which are the user's business; an allow list would
// break each new one the day it ships. Client-sent x-forwarded-* headers pass
// as Envoy leaves them: they hold what the client chose to say, not a secret.
func removeClientOnly(m *mutation, h headers) {
	m.Remove(hdrAuthorization, hdrAPIKey, "proxy-authorization", "cookie", "accept-encoding")
	m.Remove(h.withPrefix(gatewayPrefix)...)
	m.Remove(h.withPrefix(portkeyPrefix)...)
}

// policyProcessor is the downstream role: one per client request. It
// authenticates, picks the route, and hands the decision to the adapter in
// dynamic metadata (decision.go).
type policyProcessor struct {
	s         *Server
	pol       *policy.Policy
	start     time.Time
	requestID string // the record id, Tollgate's own (records.NewID), never the client's x-request-id
	method    string
	path      string
	betas     string       // the client's anthropic-beta, for every attempt
	hasBetas  bool         // whether the client sent one
	format    ClientFormat // the request's client format; set at the request headers
	endpoint  clientformat.Endpoint
	key       *policy.Key
	trace     traceInfo
	// envoyRequestID is the x-request-id header, which Envoy gives both filters
	// of a request alike; the record keeps it as client_request_id.
	envoyRequestID string
	// slug is the route named in a header, if any.
	slug  string
	route *policy.Route

	requestedModel string // as the client sent it
	model          string // without a "@route/" prefix
	stream         bool

	rejected *ClientError // set when Tollgate answered the request itself
	released time.Time    // when the request went on to the provider
	// requestCapture is the captured request body, when the policy opts in.
	requestCapture string
	// cache is the response cache's part (cache.go).
	cache cacheState

	// Budgets.
	reservation   *budget.Reservation
	early         *earlyReserve // started at the request headers, until the body decides
	remaining     *budget.Remaining
	budgetOutcome string
	renewing      atomic.Bool
	// reserved is what the reservation holds, for checkAboveReserved.
	reserved actualCost
	// fitted is what fit changed to make the request fit a budget.
	fitted fitted

	// Response side.
	respHeaders bool
	status      int
	servedBy    string
	attempts    []records.Attempt // the upstream attempts, from dynamic metadata
	// lastResponse is when the response's headers or latest body chunk
	// arrived, for stalled.
	lastResponse time.Time
	bodyBytes    int // the length of the body released to the router
	meter        meter
	// cut is set by buildRecord for a response stream reset after its
	// headers, whose outcome Envoy's access log tells (endings.go).
	cut bool
}

func newPolicyProcessor(s *Server) *policyProcessor { return &policyProcessor{s: s} }

// finish writes the request's cost record, once, whichever way the stream
// ended: a complete response, an error, a rejection, or a client that went away.
func (p *policyProcessor) finish(ctx context.Context, _ error) {
	p.cancelEarly(ctx)
	if p.endpoint.Name == "" || p.endpoint.Probe {
		return // a warm-up probe or a stream with no request: nothing to record
	}
	if p.cache.hit != nil {
		p.finishHit(ctx)
		return
	}

	r, modelLabel := p.buildRecord(p.s.now())
	p.settle(ctx, actualCost{costPicoUSD: r.CostPicoUSD, tokens: r.Usage.TotalTokens(), provider: r.Provider})
	if p.cut && p.s.endings != nil {
		// Who cut the stream changes the outcome, never the cost: the
		// reservation is settled first, and the record waits.
		if e, ok := p.s.waitEnding(ctx, p.requestID); ok {
			if o, errorType, ok := e.outcome(); ok {
				r.Outcome, r.ErrorType = o, errorType
			}
		}
	}
	p.s.record(r, modelLabel)
}

func (p *policyProcessor) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(ctx, r.RequestHeaders), nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(ctx, r.RequestBody), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.responseHeaders(req, r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return p.responseBody(ctx, r.ResponseBody), nil
	}
	return passThrough(req)
}

func (p *policyProcessor) reject(e *ClientError) *extprocv3.ProcessingResponse {
	p.s.metrics.rejections.WithLabelValues(rolePolicy, string(e.Code)).Inc()
	p.rejected = e
	fields := []zap.Field{zap.String("request_id", p.requestID), zap.Int("status", e.Status),
		zap.String("error_type", string(e.Code)), zap.String("reason", e.Message), zap.String("path", clip(p.path, maxRecordPathBytes))}
	if p.key != nil {
		fields = append(fields, zap.String("key_id", p.key.ID))
	}
	p.s.log.Info("request rejected", fields...)
	resp := immediate(p.format, e, p.requestID)
	if p.trace.TraceID != "" {
		ir := resp.GetImmediateResponse()
		var m mutation
		m.Set(hdrTraceID, p.trace.TraceID)
		ir.Headers.SetHeaders = append(ir.Headers.SetHeaders, m.set...)
	}
	return resp
}

func (p *policyProcessor) requestHeaders(ctx context.Context, hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := readHeaders(hh.GetHeaders())
	p.pol = p.s.policies.Current()
	p.start = p.s.now()
	p.envoyRequestID, p.method, p.path = h.get(hdrRequestID), h.get(":method"), h.get(":path")
	p.betas, p.hasBetas = h.get(hdrBeta), h.has(hdrBeta)
	p.requestID = records.NewID(p.start)

	format, ep, cerr := p.s.formats.classify(p.method, p.path, h.get)
	p.format, p.endpoint = format, ep
	if cerr != nil {
		return p.reject(cerr)
	}
	if ep.Probe {
		return emptyImmediate(200, "tollgate_probe")
	}
	trace, cerr := readTrace(h)
	p.trace = trace
	if cerr != nil {
		return p.reject(cerr)
	}

	key, keyHeader := gatewayKey(h)
	if key == "" {
		return p.reject(authenticationError("missing gateway key: send it as x-api-key, Authorization: Bearer, or x-tollgate-api-key"))
	}
	k, ok := p.pol.Authenticate(key)
	if !ok {
		return p.reject(invalidKey(h, keyHeader))
	}
	p.key = k

	p.slug = h.get(hdrRoute)
	if p.slug == "" {
		p.slug = h.get(hdrPortkeyRoute)
	}

	if hh.GetEndOfStream() && ep.Body {
		// Content-Length: 0, or no body at all: nothing to route or price.
		return p.reject(invalidRequest("request body: empty; %s %s takes a JSON body with a model", p.method, strings.SplitN(p.path, "?", 2)[0]))
	}

	var m mutation
	removeClientOnly(&m, h)
	if e := p.readCacheHeaders(&m, h); e != nil {
		return p.reject(e)
	}
	if !hh.GetEndOfStream() {
		// The body decides the rest. In BUFFERED mode Envoy holds the headers until
		// the body reply, so routing set there still reaches the router. The
		// budget check starts now, while the body is on its way.
		p.startEarlyReserve(ctx, h)
		return continueRequestHeaders(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	}
	if e := p.resolveRoute(p.slug); e != nil {
		return p.reject(e)
	}
	if e := p.reserve(ctx, nil, 0); e != nil {
		return p.reject(e)
	}
	p.routeTo(&m)
	p.released = p.s.now()
	p.admit()
	resp := continueRequestHeaders(&extprocv3.CommonResponse{HeaderMutation: m.proto(), ClearRouteCache: true})
	resp.DynamicMetadata = p.decision().metadata()
	return resp
}

func (p *policyProcessor) requestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := b.GetBody()
	// The input bound of a metered request needs what its body holds beyond
	// text (images, documents, tools): read in the same pass.
	req, err := p.format.ReadRequest(p.endpoint, p.path, body, p.endpoint.Metered && p.budgeted())
	if err != nil {
		return p.reject(invalidBody("request body: ", err))
	}
	requested, ok := req.Model()
	if !ok || requested == "" {
		return p.reject(invalidField("model", "model: field required"))
	}
	if len(requested) > maxModelLen {
		return p.reject(invalidField("model", "model: %d bytes long; a model id has at most %d", len(requested), maxModelLen))
	}
	if strings.ContainsFunc(requested, unicode.IsControl) {
		return p.reject(invalidField("model", "model: %q contains control characters", requested))
	}

	p.requestedModel, p.model, p.stream = requested, requested, req.Stream()
	slug := p.slug
	if strings.HasPrefix(requested, "@") {
		// "@slug/model" names the route in the body; the provider sees the plain id.
		bodySlug, model, ok := strings.Cut(requested[1:], "/")
		if !ok || bodySlug == "" || model == "" {
			return p.reject(invalidField("model", "model %q: the routed form is \"@route/model-id\"", requested))
		}
		if slug != "" && strings.TrimPrefix(slug, "@") != bodySlug {
			return p.reject(invalidRequest("the %s header names route %q but the model names route %q", hdrRoute, slug, "@"+bodySlug))
		}
		slug, p.model = bodySlug, model
		req.SetModel(model)
	}
	if e := p.resolveRoute(slug); e != nil {
		return p.reject(e)
	}
	if e := p.checkPriced(); e != nil {
		return p.reject(e)
	}
	if e := p.checkTranslations(body); e != nil {
		return p.reject(e)
	}
	if resp := p.cacheLookup(ctx, req, body); resp != nil {
		return resp
	}
	if e := p.reserve(ctx, req, len(body)); e != nil {
		return p.reject(e)
	}
	if limit := p.pol.CaptureLimit(p.route, p.key.Team); limit > 0 {
		p.requestCapture = captureBody(body, len(body), limit)
		p.meter.capture.limit = limit
	}

	var m mutation
	p.routeTo(&m)
	p.released = p.s.now()
	p.admit()
	c := &extprocv3.CommonResponse{ClearRouteCache: true}
	p.bodyBytes = len(body)
	if newBody, edited := req.Body(); edited {
		p.bodyBytes = len(newBody)
		// Envoy keeps content-length in BUFFERED mode and rejects a mismatch.
		m.Set("content-length", strconv.Itoa(len(newBody)))
		c.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: newBody}}
	}
	c.HeaderMutation = m.proto()
	resp := continueRequestBody(c)
	resp.DynamicMetadata = p.decision().metadata()
	return resp
}

// maxModelLen bounds the model id a request may name. The longest real ids,
// Bedrock inference-profile ARNs, are about 100 bytes; the id travels in the
// decision, to every attempt.
const maxModelLen = 256

func (p *policyProcessor) resolveRoute(slug string) *ClientError {
	r, ok := p.pol.Route(slug)
	if !ok {
		if slug == "" {
			return invalidRequest("no route given and the policy has no default route; name one with the %s header or a model of the form \"@route/model-id\"", hdrRoute)
		}
		return invalidRequest("unknown route %q", slug)
	}
	p.route = r
	return nil
}

// checkPriced refuses a model the catalog cannot price when the policy says
// unpriced models are denied. By default they are priced by a family estimate
// and flagged in records, so Claude Code keeps working the day a model ships.
func (p *policyProcessor) checkPriced() *ClientError {
	if !p.endpoint.Metered || p.pol.Pricing.Unknown != pricing.Deny || len(p.route.Chain) == 0 {
		return nil
	}
	if model, _, err := p.pol.PriceAt(p.route, p.route.Chain[0], p.model, pricing.Deny); err != nil {
		return invalidRequest("model %q has no price in the gateway's catalog, and the policy denies unpriced models (pricing.unknown_models: deny)", model)
	}
	return nil
}

// checkTranslations refuses a request that the translation to a provider
// of the route's chain says it cannot send (RequestCheck), before anything
// is reserved or forwarded: whichever attempt would send it, the client
// gets the same 400 at once. Each provider type is asked once; a type that
// does not serve the client's format is left to the adapter's refusal.
func (p *policyProcessor) checkTranslations(body []byte) *ClientError {
	var asked []string
	for _, name := range p.route.Chain {
		prov, ok := p.pol.Providers[name]
		if !ok || slices.Contains(asked, prov.Type) {
			continue
		}
		asked = append(asked, prov.Type)
		tr, ok := p.s.translation(p.format.Name(), prov.Type)
		if !ok {
			continue
		}
		if rc, ok := tr.(RequestCheck); ok {
			if err := rc.CheckRequest(p.path, body); err != nil {
				return invalidBody(fmt.Sprintf("the request cannot be sent to provider %q: ", name), err)
			}
		}
	}
	return nil
}

// routeTo sets the header that routes the request to its chain's cluster.
func (p *policyProcessor) routeTo(m *mutation) { m.Set(hdrCluster, p.route.Cluster) }

// decision is what the adapter of every attempt needs from this role; the
// reply that releases the request carries it in dynamic metadata.
func (p *policyProcessor) decision() Decision {
	return Decision{RecordID: p.requestID, Route: p.route.Slug, Path: p.path, KeyID: p.key.ID, Model: p.model,
		ClientFormat: p.format.Name(), BodyBytes: p.bodyBytes, Betas: p.betas, HasBetas: p.hasBetas, betasKnown: true}
}

func (p *policyProcessor) responseHeaders(req *extprocv3.ProcessingRequest, hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := readHeaders(hh.GetHeaders())
	p.respHeaders = true
	p.lastResponse = p.s.now()
	p.attempts = attemptsFrom(req)
	p.status, _ = strconv.Atoi(h.get(":status"))
	p.servedBy = h.get(hdrServingProvider)
	p.meter.start(p.format, h.get("content-type"))
	if hh.GetEndOfStream() {
		p.meter.chunk(nil, true, p.s.now())
	}
	var m mutation
	if p.trace.TraceID != "" {
		m.Set(hdrTraceID, p.trace.TraceID)
	}
	if p.remaining != nil {
		m.Set(hdrBudgetRemaining, p.remaining.Header())
	}
	p.cacheResponseHeaders(&m, h)
	resp := continueResponseHeaders(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	if !p.endpoint.Metered {
		// Only metered responses carry usage; spare the other bodies a round trip
		// per chunk. Body modes in an override always replace both, so echo the
		// request's (ENVOY-EXTPROC section 2).
		resp.ModeOverride = &extprocfilterv3.ProcessingMode{
			RequestBodyMode:  extprocfilterv3.ProcessingMode_BUFFERED,
			ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE,
		}
	}
	return resp
}

// responseBody passes each chunk on at once and meters it on the way.
func (p *policyProcessor) responseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	now := p.s.now()
	p.lastResponse = now
	p.renewIfDue(ctx, now)
	repl := p.meter.chunk(b.GetBody(), b.GetEndOfStream(), now)
	p.cacheChunk(ctx, b.GetBody(), b.GetEndOfStream(), repl != nil)
	if repl != nil {
		return continueResponseBody(&extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: repl}},
		})
	}
	return continueResponseBody(nil)
}
