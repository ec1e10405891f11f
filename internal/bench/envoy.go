package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
)

// attributesKey is where Envoy puts request and response attributes in a
// ProcessingRequest, whatever the filter is named (ENVOY-EXTPROC section 1.2).
const attributesKey = "envoy.filters.http.ext_proc"

// Filter is what the bench needs of one ext_proc filter of envoy.yaml: the
// gRPC initial metadata it sends, its processing mode and its attributes.
type Filter struct {
	Name               string
	Metadata           [][2]string
	Mode               *extprocfilterv3.ProcessingMode
	AllowModeOverride  bool
	RequestAttributes  []string
	ResponseAttributes []string
	// Receive and Forward are metadata_options' untyped receiving and
	// forwarding namespaces: which namespaces of a reply's dynamic_metadata
	// are kept, and which the filter's messages carry in metadata_context.
	Receive, Forward []string
}

// NewFilter reads a Filter from an ext_proc filter config, and fails on the
// modes the bench cannot replay (trailers, BUFFERED_PARTIAL, FULL_DUPLEX_STREAMED,
// GRPC).
func NewFilter(name string, c *extprocfilterv3.ExternalProcessor) (Filter, error) {
	f := Filter{Name: name, Mode: c.GetProcessingMode(), AllowModeOverride: c.GetAllowModeOverride(),
		RequestAttributes: c.GetRequestAttributes(), ResponseAttributes: c.GetResponseAttributes(),
		Receive: c.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(),
		Forward: c.GetMetadataOptions().GetForwardingNamespaces().GetUntyped()}
	if f.Mode == nil {
		f.Mode = &extprocfilterv3.ProcessingMode{}
	}
	for _, hv := range c.GetGrpcService().GetInitialMetadata() {
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		f.Metadata = append(f.Metadata, [2]string{strings.ToLower(hv.GetKey()), v})
	}
	var errs []error
	for _, m := range []extprocfilterv3.ProcessingMode_BodySendMode{f.Mode.GetRequestBodyMode(), f.Mode.GetResponseBodyMode()} {
		switch m {
		case extprocfilterv3.ProcessingMode_NONE, extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_STREAMED:
		default:
			errs = append(errs, fmt.Errorf("bench: filter %s: body mode %s is not replayed", name, m))
		}
	}
	for _, m := range []extprocfilterv3.ProcessingMode_HeaderSendMode{f.Mode.GetRequestTrailerMode(), f.Mode.GetResponseTrailerMode()} {
		if m == extprocfilterv3.ProcessingMode_SEND {
			errs = append(errs, fmt.Errorf("bench: filter %s: trailer mode SEND is not replayed", name))
		}
	}
	return f, errors.Join(errs...)
}

// role returns the x-tollgate-role the filter sends.
func (f Filter) role() string {
	for _, kv := range f.Metadata {
		if kv[0] == envoyconfig.RoleMetadataKey {
			return kv[1]
		}
	}
	return ""
}

// override returns the mode in effect after a headers reply carried
// mode_override o: the merge of envoyconfig.MergeModeOverride, honoured only
// with allow_mode_override and no FULL_DUPLEX_STREAMED body configured
// (ENVOY-EXTPROC section 2).
func (f Filter) override(cur, o *extprocfilterv3.ProcessingMode) *extprocfilterv3.ProcessingMode {
	if o == nil || !f.AllowModeOverride ||
		f.Mode.GetRequestBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		f.Mode.GetResponseBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED {
		return cur
	}
	return envoyconfig.MergeModeOverride(cur, o)
}

func sends(m extprocfilterv3.ProcessingMode_HeaderSendMode) bool {
	return m != extprocfilterv3.ProcessingMode_SKIP
}

// DefaultFilters returns the two filters as this repository's envoy.yaml
// configures them (a test keeps the two in agreement): tollgate.policy with
// request headers SEND, request body BUFFERED, response headers SEND, response
// body STREAMED and allow_mode_override; tollgate.adapter with request headers
// SEND, request body BUFFERED, response headers SEND, response body NONE,
// allow_mode_override and the provider and attempt-count request attributes;
// the policy filter receives dynamic metadata namespace tollgate and reads the
// attempt trail as a response attribute; the adapter forwards and receives it.
func DefaultFilters() (policy, adapter Filter) {
	policy = Filter{
		Name:     "tollgate.policy",
		Metadata: [][2]string{{envoyconfig.RoleMetadataKey, envoyconfig.RolePolicy}},
		Mode: &extprocfilterv3.ProcessingMode{
			RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocfilterv3.ProcessingMode_BUFFERED,
			RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
			ResponseBodyMode:    extprocfilterv3.ProcessingMode_STREAMED,
			ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
		},
		AllowModeOverride:  true,
		Receive:            []string{"tollgate"},
		ResponseAttributes: []string{envoyconfig.AttemptsAttribute},
	}
	adapter = Filter{
		Name:     "tollgate.adapter",
		Metadata: [][2]string{{envoyconfig.RoleMetadataKey, envoyconfig.RoleAdapter}},
		Mode: &extprocfilterv3.ProcessingMode{
			RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocfilterv3.ProcessingMode_BUFFERED,
			RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
			ResponseBodyMode:    extprocfilterv3.ProcessingMode_NONE,
			ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
		},
		AllowModeOverride: true,
		RequestAttributes: []string{envoyconfig.ProviderAttribute, "upstream.request_attempt_count"},
		Receive:           []string{"tollgate"},
		Forward:           []string{"tollgate"},
	}
	return policy, adapter
}

// FiltersFromEnvoy finds the policy filter (downstream, role policy) and the
// adapter filter (upstream, role adapter) of an envoy.yaml model.
func FiltersFromEnvoy(m *envoyconfig.Model) (policy, adapter Filter, err error) {
	var foundPolicy, foundAdapter bool
	var errs []error
	for _, ep := range m.ExtProcFilters() {
		f, ferr := NewFilter(ep.Proto.GetName(), ep.Config)
		switch {
		case f.role() == envoyconfig.RolePolicy && !ep.Upstream && !foundPolicy:
			policy, foundPolicy = f, true
			errs = append(errs, ferr)
		case f.role() == envoyconfig.RoleAdapter && ep.Upstream && !foundAdapter:
			adapter, foundAdapter = f, true
			errs = append(errs, ferr)
		}
	}
	if !foundPolicy {
		errs = append(errs, errors.New("bench: envoy config has no downstream ext_proc filter with x-tollgate-role: policy"))
	}
	if !foundAdapter {
		errs = append(errs, errors.New("bench: envoy config has no upstream ext_proc filter with x-tollgate-role: adapter"))
	}
	return policy, adapter, errors.Join(errs...)
}

// header is one entry of an ordered header map with lowercase keys.
type header struct{ key, value string }

// headerList is an HTTP header map as Envoy keeps it: ordered, lowercase keys,
// pseudo-headers first.
type headerList []header

func (h headerList) clone() headerList { return append(headerList(nil), h...) }

func (h headerList) get(key string) (string, bool) {
	for _, e := range h {
		if e.key == key {
			return e.value, true
		}
	}
	return "", false
}

func (h *headerList) del(key string) {
	out := (*h)[:0]
	for _, e := range *h {
		if e.key != key {
			out = append(out, e)
		}
	}
	*h = out
}

// set replaces every value of key by value, the first occurrence keeping its
// place (Envoy's setCopy), or appends it.
func (h *headerList) set(key, value string) {
	out := (*h)[:0]
	done := false
	for _, e := range *h {
		if e.key != key {
			out = append(out, e)
			continue
		}
		if !done {
			out = append(out, header{key, value})
			done = true
		}
	}
	if !done {
		out = append(out, header{key, value})
	}
	*h = out
}

// apply applies a header mutation the way Envoy does: removals first, then
// sets, honouring append and append_action.
func (h *headerList) apply(m *extprocv3.HeaderMutation) {
	for _, k := range m.GetRemoveHeaders() {
		h.del(strings.ToLower(k))
	}
	for _, o := range m.GetSetHeaders() {
		k := strings.ToLower(o.GetHeader().GetKey())
		v := string(o.GetHeader().GetRawValue())
		if v == "" {
			v = o.GetHeader().GetValue()
		}
		_, exists := h.get(k)
		action := o.GetAppendAction()
		if o.GetAppend() != nil {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if o.GetAppend().GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		switch action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			*h = append(*h, header{k, v})
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				*h = append(*h, header{k, v})
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.set(k, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h.set(k, v)
			}
		}
	}
}

// proto renders h as Envoy sends it: the value in raw_value, value empty.
func (h headerList) proto() *corev3.HeaderMap {
	m := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, len(h))}
	for i, e := range h {
		m.Headers[i] = &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)}
	}
	return m
}

// clientHeaders are the request headers the policy filter sees for a Claude Code
// request (WIRE-FORMATS.md section 8) after Envoy's edge processing: hop-by-hop
// headers gone, x-forwarded-for and x-envoy-external-address set
// (use_remote_address), x-forwarded-proto and a generated x-request-id.
func clientHeaders(s *Scenario, bodyLen int, requestID, sessionID string) headerList {
	r := s.Request
	h := headerList{
		{":authority", "gateway.example.com:10000"},
		{":path", r.Path},
		{":method", "POST"},
		{":scheme", "http"},
		{"accept", "application/json"},
		{"accept-encoding", "gzip, deflate, br, zstd"},
		{"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05,effort-2025-11-24,mid-conversation-system-2026-04-07"},
		{"anthropic-dangerous-direct-browser-access", "true"},
		{"anthropic-version", "2023-06-01"},
	}
	switch r.KeyHeader {
	case "authorization":
		h = append(h, header{"authorization", "Bearer " + r.Key})
	default:
		h = append(h, header{r.KeyHeader, r.Key})
	}
	h = append(h, headerList{
		{"content-length", strconv.Itoa(bodyLen)},
		{"content-type", "application/json"},
		{"user-agent", "claude-cli/2.1.332 (external, cli)"},
		{"x-app", "cli"},
		{"x-claude-code-session-id", sessionID},
		{"x-stainless-arch", "x64"},
		{"x-stainless-lang", "js"},
		{"x-stainless-os", "Linux"},
		{"x-stainless-package-version", "0.70.0"},
		{"x-stainless-retry-count", "0"},
		{"x-stainless-runtime", "node"},
		{"x-stainless-runtime-version", "v24.3.0"},
		{"x-stainless-timeout", "600"},
	}...)
	if r.Route != "" {
		h = append(h, header{"x-tollgate-provider", r.Route})
	}
	for k, v := range r.Headers {
		h.set(strings.ToLower(k), v)
	}
	h = append(h, headerList{
		{"x-forwarded-for", "10.0.3.17"},
		{"x-forwarded-proto", "http"},
		{"x-envoy-external-address", "10.0.3.17"},
		{"x-request-id", requestID},
	}...)
	return h
}

// providerResponseHeaders are the headers an Anthropic provider answers with.
func providerResponseHeaders(s *Scenario, status int, bodyLen int) headerList {
	h := headerList{{":status", strconv.Itoa(status)}}
	switch {
	case status >= 400:
		h = append(h, header{"content-type", "application/json"})
	case s.Streaming():
		h = append(h, headerList{{"content-type", "text/event-stream; charset=utf-8"}, {"cache-control", "no-cache"}}...)
	default:
		h = append(h, headerList{{"content-type", "application/json"}, {"content-length", strconv.Itoa(bodyLen)}}...)
	}
	return append(h, headerList{
		{"date", "Thu, 26 Nov 2026 12:00:00 GMT"},
		{"request-id", "req_011CSHnwNk8sy5m3iLJdEG4v"},
		{"anthropic-organization-id", "0e6a2ea5-7c3e-4c0e-9d8b-6f2d3c1a4b5e"},
		{"anthropic-ratelimit-input-tokens-limit", "2000000"},
		{"anthropic-ratelimit-input-tokens-remaining", "1998000"},
		{"anthropic-ratelimit-input-tokens-reset", "2026-11-26T12:00:01Z"},
		{"anthropic-ratelimit-output-tokens-limit", "400000"},
		{"anthropic-ratelimit-output-tokens-remaining", "400000"},
		{"anthropic-ratelimit-output-tokens-reset", "2026-11-26T12:00:00Z"},
		{"anthropic-ratelimit-requests-limit", "4000"},
		{"anthropic-ratelimit-requests-remaining", "3999"},
		{"anthropic-ratelimit-requests-reset", "2026-11-26T12:00:00Z"},
		{"via", "1.1 google"},
		{"cf-cache-status", "DYNAMIC"},
		{"server", "cloudflare"},
	}...)
}

// attributes evaluates the configured attribute names for the first message of
// a direction, keyed as Envoy keys them. Names the bench cannot evaluate are
// left out, as Envoy leaves out an attribute whose expression fails.
func attributes(names []string, h headerList, provider string, attempt int) map[string]*structpb.Struct {
	if len(names) == 0 {
		return nil
	}
	fields := map[string]*structpb.Value{}
	for _, n := range names {
		var v *structpb.Value
		switch n {
		case envoyconfig.ProviderAttribute:
			v = structpb.NewStringValue(provider)
		case "upstream.request_attempt_count":
			v = structpb.NewNumberValue(float64(attempt))
		case "request.path":
			p, _ := h.get(":path")
			v = structpb.NewStringValue(p)
		case "request.method":
			p, _ := h.get(":method")
			v = structpb.NewStringValue(p)
		case "request.id":
			p, _ := h.get("x-request-id")
			v = structpb.NewStringValue(p)
		default:
			continue
		}
		fields[n] = v
	}
	return map[string]*structpb.Struct{attributesKey: {Fields: fields}}
}

func headersRequest(response bool, h headerList, eos bool) *extprocv3.ProcessingRequest {
	hh := &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: eos}
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}}
}

func bodyRequest(response bool, b []byte, eos bool) *extprocv3.ProcessingRequest {
	hb := &extprocv3.HttpBody{Body: b, EndOfStream: eos}
	m := &extprocv3.ProcessingRequest{MetadataContext: &corev3.Metadata{}}
	if response {
		m.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}
	} else {
		m.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}
	}
	return m
}
