package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/clientformat"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// ResponseCache stores complete responses under their cache key.
// *cache.Memory and *cache.Redis implement it (see package cache for the
// contract). An error never fails a request: a failed Get is a miss, a
// failed Put stores nothing.
type ResponseCache interface {
	Get(ctx context.Context, k cache.Key, now time.Time) (cache.Entry, bool, error)
	Put(ctx context.Context, k cache.Key, e cache.Entry, ttl time.Duration, now time.Time) error
}

// Request and response headers of the response cache.
const (
	// hdrCache is the client's control: no-store (neither read nor store)
	// or refresh (do not read, store the new response).
	hdrCache = "x-tollgate-cache"
	// hdrPortkeyRefresh is Portkey's "true" for refresh.
	hdrPortkeyRefresh = "x-portkey-cache-force-refresh"
	// hdrCacheControl's no-cache means refresh and no-store no-store.
	hdrCacheControl = "cache-control"
	// hdrCacheStatus tells the client what the cache did.
	hdrCacheStatus = "x-tollgate-cache-status"
)

// Cache statuses: the x-tollgate-cache-status header and the record's
// cache_status.
const (
	cacheHit     = "HIT"
	cacheMiss    = "MISS"
	cacheRefresh = "REFRESH"
	cacheBypass  = "BYPASS"
)

// cacheKeyHeaders are the request headers that change an answer, and so
// enter the cache key (anthropic-beta with its list sorted).
var cacheKeyHeaders = []string{"anthropic-version", "anthropic-beta"}

// cachePutTimeout bounds the store of a response; it runs before the last
// chunk goes on, so that the next identical request finds it.
const cachePutTimeout = time.Second

// cacheMode is what the client asked of the cache.
type cacheMode uint8

const (
	cacheNormal cacheMode = iota
	cacheRefreshMode
	cacheNoStore
)

// cacheState is the response cache's part of a policy processor.
type cacheState struct {
	mode    cacheMode
	headers []cache.Header
	cfg     *policy.Cache
	status  string    // HIT, MISS, REFRESH, BYPASS; "" when the route does not cache
	key     cache.Key // set when the response may be stored
	store   bool      // the response is to be stored if it qualifies
	// The response being followed for the store.
	contentType string
	body        []byte
	tooBig      bool
	// hit is the entry's info on a hit.
	hit *cacheInfo
}

// cacheInfo is what an entry keeps beside the body: what prices the
// response again, so that a hit's record can say what it saved at today's
// prices.
type cacheInfo struct {
	Provider      string        `json:"provider"`
	ProviderType  string        `json:"provider_type"`
	Model         string        `json:"model"`
	ResponseModel string        `json:"response_model,omitempty"`
	Usage         pricing.Usage `json:"usage"`
}

// readCacheHeaders reads the client's cache control and the headers of the
// key at the request headers, and removes cache-control: it is a directive
// for caches, which Tollgate is, never for the provider (the x-tollgate-*
// and x-portkey-* ones go with removeClientOnly).
func (p *policyProcessor) readCacheHeaders(m *mutation, h headers) *ClientError {
	c := &p.cache
	switch v := strings.ToLower(strings.TrimSpace(h.get(hdrCache))); v {
	case "":
	case "no-store":
		c.mode = cacheNoStore
	case "refresh":
		c.mode = cacheRefreshMode
	default:
		return invalidRequest("%s: %q; use no-store or refresh", hdrCache, v)
	}
	if strings.EqualFold(strings.TrimSpace(h.get(hdrPortkeyRefresh)), "true") && c.mode == cacheNormal {
		c.mode = cacheRefreshMode
	}
	if h.has(hdrCacheControl) {
		m.Remove(hdrCacheControl)
		for _, d := range strings.Split(strings.ToLower(h.get(hdrCacheControl)), ",") {
			switch strings.TrimSpace(d) {
			case "no-store":
				c.mode = cacheNoStore
			case "no-cache":
				if c.mode == cacheNormal {
					c.mode = cacheRefreshMode
				}
			}
		}
	}
	for _, name := range cacheKeyHeaders {
		if !h.has(name) {
			continue
		}
		v := h.get(name)
		if name == "anthropic-beta" {
			v = sortedList(v)
		}
		c.headers = append(c.headers, cache.Header{Name: name, Value: v})
	}
	return nil
}

// sortedList returns a comma-separated list with its items trimmed,
// sorted and without duplicates: the order of betas does not change an
// answer.
func sortedList(v string) string {
	var items []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	slices.Sort(items)
	return strings.Join(slices.Compact(items), ",")
}

// cacheScope is the tenant part of the key.
func (p *policyProcessor) cacheScope(s policy.CacheScope) string {
	switch {
	case s == policy.CacheScopeGlobal:
		return "global"
	case s == policy.CacheScopeTeam && p.key.Team != "":
		return "team:" + p.key.Team
	}
	return "key:" + p.key.ID
}

// cacheLookup looks the request up in the response cache once its route,
// model and key are known, before its budget reservation. On a hit it
// returns the reply: the cached response, or the refusal of a request-rate
// limit. Otherwise it returns nil and the request goes on, marked to be
// stored when the route caches. req is the request as its format read it,
// and body the request body as the client sent it.
func (p *policyProcessor) cacheLookup(ctx context.Context, req clientformat.Request, body []byte) *extprocv3.ProcessingResponse {
	c := &p.cache
	if p.s.cache == nil || !p.endpoint.Metered {
		return nil
	}
	if c.cfg = p.pol.CacheFor(p.route, p.key.Team); c.cfg == nil {
		return nil
	}
	if c.mode == cacheNoStore {
		c.status = cacheBypass
		return nil
	}
	k, err := p.s.cacheKeys.NewKey(cache.KeyInput{
		Body: body, Exclude: c.cfg.ExcludeFields,
		Endpoint: p.method + " " + p.path, ClientFormat: p.format.Name(),
		Route: p.route.Slug, Model: p.sentModel(""), Scope: p.cacheScope(c.cfg.Scope), Headers: c.headers,
	})
	if err != nil {
		c.status = cacheBypass
		p.s.log.Debug("response cache: no key", zap.String("request_id", p.requestID), zap.Error(err))
		return nil
	}
	c.key, c.store = k, true
	if c.mode == cacheRefreshMode {
		c.status = cacheRefresh
		return nil
	}
	c.status = cacheMiss
	e, found, err := p.s.cache.Get(ledgerContext(ctx), k, p.s.now())
	if err != nil {
		p.s.log.Warn("response cache lookup failed; a miss", zap.String("request_id", p.requestID), zap.Error(err))
	}
	if !found {
		return nil
	}
	var info cacheInfo
	if err := json.Unmarshal(e.Info, &info); err != nil {
		p.s.log.Warn("response cache entry without info; a miss", zap.String("request_id", p.requestID), zap.Error(err))
		return nil
	}
	c.status, c.store, c.hit = cacheHit, false, &info
	if e := p.reserve(ctx, req, len(body)); e != nil {
		c.status, c.hit = "", nil
		return p.reject(e)
	}
	return p.hitReply(e)
}

// rateOnly returns req for a cache hit: only its request and concurrency
// limits, at no cost and no tokens. A hit costs nothing, so it is held to
// request rates, never to USD or token budgets, spent or not.
func rateOnly(req budget.Request) budget.Request {
	scopes := make([]budget.ScopeLimits, 0, len(req.Scopes))
	for _, sl := range req.Scopes {
		var limits []budget.Limit
		for _, l := range sl.Limits {
			if l.Unit == budget.Requests || l.Unit == budget.Concurrent {
				limits = append(limits, l)
			}
		}
		if len(limits) > 0 {
			scopes = append(scopes, budget.ScopeLimits{Scope: sl.Scope, Limits: limits})
		}
	}
	req.Scopes, req.CostPicoUSD, req.Tokens = scopes, 0, 0
	return req
}

// hitReply is the immediate response that replays a cached entry: its body
// byte for byte under its content-type (text/event-stream for a stream,
// which the client reads as the events the provider sent). Envoy keeps a
// content-type that the reply's header mutation sets: in
// Utility::prepareLocalReply (source/common/http/utility.cc) the mutation
// (modify_headers) runs first, and text/plain is set only when no
// content-type is there or local_reply_config rewrote the body, which none
// of envoy.yaml's mappers does for a 200.
func (p *policyProcessor) hitReply(e cache.Entry) *extprocv3.ProcessingResponse {
	var m mutation
	m.Set("content-type", e.ContentType)
	m.Set("content-length", strconv.Itoa(len(e.Body)))
	m.Set(hdrCacheStatus, cacheHit)
	if p.trace.TraceID != "" {
		m.Set(hdrTraceID, p.trace.TraceID)
	}
	if p.remaining != nil {
		m.Set(hdrBudgetRemaining, p.remaining.Header())
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_OK},
			Headers: m.proto(),
			Body:    e.Body,
			Details: "tollgate_cache_hit",
		}}}
}

// cacheResponseHeaders tells the client what the cache did and starts
// following a response that may be stored.
func (p *policyProcessor) cacheResponseHeaders(m *mutation, h headers) {
	c := &p.cache
	if c.status != "" {
		m.Set(hdrCacheStatus, c.status)
	}
	c.contentType = h.get("content-type")
	if c.store && (p.status != 200 || p.servedBy == "") {
		c.store = false // only a provider's success is stored
	}
}

// cacheChunk follows a response body chunk; at the end of the body it
// stores the response if it qualifies. cut is set when the stream was cut
// and the meter appended an error event.
func (p *policyProcessor) cacheChunk(ctx context.Context, b []byte, end, cut bool) {
	c := &p.cache
	if !c.store {
		return
	}
	if !c.tooBig {
		if len(c.body)+len(b) > c.cfg.MaxEntryBytes {
			c.tooBig, c.body = true, nil
		} else {
			c.body = append(c.body, b...)
		}
	}
	if !end {
		return
	}
	c.store = false
	res := p.meter.result(p.status)
	if c.tooBig || cut || !res.Complete || !res.Metered || res.ErrorType != "" || p.fitted.maxTokens > 0 {
		// Over the size cap, cut, ended in an error, or answered to a
		// max_tokens the budget lowered: never replayed.
		return
	}
	info, err := json.Marshal(cacheInfo{Provider: p.servedBy, ProviderType: p.pol.ProviderType(p.servedBy),
		Model: p.sentModel(p.servedBy), ResponseModel: res.Model, Usage: res.Usage})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ledgerContext(ctx), cachePutTimeout)
	defer cancel()
	err = p.s.cache.Put(ctx, c.key, cache.Entry{ContentType: c.contentType, Body: c.body, Info: info}, c.cfg.TTL, p.s.now())
	c.body = nil
	switch {
	case errors.Is(err, cache.ErrTooLarge):
	case err != nil:
		p.s.log.Warn("response cache store failed; not cached", zap.String("request_id", p.requestID), zap.Error(err))
	}
}

// finishHit settles and records a request answered from the cache: no
// cost, no tokens.
func (p *policyProcessor) finishHit(ctx context.Context) {
	r, modelLabel := p.hitRecord(p.s.now())
	p.settle(ctx, actualCost{})
	p.s.record(r, modelLabel)
}

// hitRecord is the record of a request answered from the cache: status
// 200, no cost, and the cost saved, the cached usage priced at today's
// prices. It returns the record and its model label.
func (p *policyProcessor) hitRecord(end time.Time) (records.Record, string) {
	r := p.baseRecord(end)
	info := p.cache.hit
	r.Status, r.Outcome, r.CacheStatus = 200, records.OutcomeOK, cacheHit
	r.Cost = pricing.FormatUSD(0)
	r.ResponseModel = info.ResponseModel
	model := info.ResponseModel
	if model == "" {
		model = info.Model
	}
	cat := p.pol.Catalog()
	price, err := cat.Resolve(info.ProviderType, model, p.pol.Pricing.Unknown)
	if err != nil {
		return r, labelUnpriced
	}
	r.PriceCatalog = cat.Version()
	r.CostSavedPicoUSD = pricing.Cost(info.Usage, price)
	r.CostSaved = pricing.FormatUSD(r.CostSavedPicoUSD)
	return r, priceLabel(model, price, nil)
}
