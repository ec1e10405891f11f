package extproc

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Header names Tollgate reads or writes. The one internal header routes a
// request to its chain's cluster (the decision travels in dynamic metadata,
// decision.go); internal headers start with internalPrefix, the policy role
// strips any a client sends, and the adapter removes them all before a request
// leaves for a provider.
const (
	gatewayPrefix      = "x-tollgate-" // every Tollgate header; none reaches a provider
	portkeyPrefix      = "x-portkey-"  // Portkey's aliases and config; none reaches a provider
	internalPrefix     = "x-tollgate-internal-"
	hdrCluster         = internalPrefix + "cluster"
	hdrRole            = "x-tollgate-role"
	hdrGatewayKey      = "x-tollgate-api-key"
	hdrPortkeyKey      = "x-portkey-api-key"
	hdrRoute           = "x-tollgate-provider" // on requests: the route ("@slug") the client picks
	hdrPortkeyRoute    = "x-portkey-provider"  // Portkey's name for hdrRoute
	hdrRequestID       = "x-request-id"
	hdrServingProvider = "x-tollgate-provider" // on responses: the provider that served
	hdrAttempts        = "x-tollgate-attempts" // on responses: the attempt that served
	hdrAPIKey          = "x-api-key"
	hdrAuthorization   = "authorization"
	hdrShouldRetry     = "x-should-retry" // on refusals: "false" when a retry cannot pass
)

// headers is a read view of an Envoy header map. Envoy sends lowercase keys and
// puts values in raw_value; value is read only as a fallback for other
// clients. Lookups scan the list: a role reads about a dozen names from some
// thirty headers, which costs less than building a map of all of them (bench,
// issue 5), and a value is copied only when it is read.
type headers []*corev3.HeaderValue

func readHeaders(m *corev3.HeaderMap) headers { return m.GetHeaders() }

// get returns the value of name; repeated headers fold the way HTTP defines
// for list values.
func (h headers) get(name string) string {
	var v string
	found := false
	for _, hv := range h {
		if hv.GetKey() != name {
			continue
		}
		val := headerValue(hv)
		if found {
			v += "," + val
			continue
		}
		v, found = val, true
	}
	return v
}

// has reports whether name is present, even with an empty value.
func (h headers) has(name string) bool {
	for _, hv := range h {
		if hv.GetKey() == name {
			return true
		}
	}
	return false
}

// withPrefix returns the names that start with prefix.
func (h headers) withPrefix(prefix string) []string {
	var out []string
	for _, hv := range h {
		if strings.HasPrefix(hv.GetKey(), prefix) {
			out = append(out, hv.GetKey())
		}
	}
	return out
}

func headerValue(hv *corev3.HeaderValue) string {
	if raw := hv.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return hv.GetValue()
}

// mutation accumulates header edits for one CommonResponse. Every set is an
// overwrite (append false) carried in raw_value, the only field Envoy reads; a
// helper builds them all so no caller can set `value` by mistake (Envoy #31555).
type mutation struct {
	set    []*corev3.HeaderValueOption
	remove []string
}

func (m *mutation) Set(key, value string) {
	m.set = append(m.set, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
		Append: wrapperspb.Bool(false),
	})
}

func (m *mutation) Remove(keys ...string) { m.remove = append(m.remove, keys...) }

func (m *mutation) empty() bool { return len(m.set) == 0 && len(m.remove) == 0 }

// proto returns the HeaderMutation, or nil when there is nothing to change.
func (m *mutation) proto() *extprocv3.HeaderMutation {
	if m.empty() {
		return nil
	}
	return &extprocv3.HeaderMutation{SetHeaders: m.set, RemoveHeaders: m.remove}
}

func continueRequestHeaders(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: c}}}
}

func continueRequestBody(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{Response: c}}}
}

func continueResponseHeaders(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: c}}}
}

func continueResponseBody(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: c}}}
}
