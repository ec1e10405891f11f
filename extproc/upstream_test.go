package extproc

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/provider"
)

// translations is Options.Translation as the wiring sets it.
func translations(clientFormat, providerType string) (Translation, bool) {
	return provider.Translation(clientFormat, providerType)
}

// TestProviderTypesAreUpstreams checks that the settings of every registered
// provider type can be sent requests: a policy that loads never names a
// provider the adapter cannot serve.
func TestProviderTypesAreUpstreams(t *testing.T) {
	for _, pt := range policy.ProviderTypes() {
		if _, ok := pt.NewSettings().(Upstream); !ok {
			t.Errorf("provider type %s: settings %T do not implement Upstream", pt.Name(), pt.NewSettings())
		}
	}
}

// chainPolicy has a route whose chain holds two providers, as in a fallback.
const chainPolicy = `version: 1
providers:
  first: {type: anthropic, base_url: 'http://first:8080', api_key: '${FIRST_KEY}'}
  second: {type: anthropic, base_url: 'http://second:8080/v', api_key: '${SECOND_KEY}', models: {sonnet: second-sonnet}}
routes:
  chain: {chain: [first, second]}
keys: []
`

// adapterServer returns a Server on chainPolicy with the given translations.
func adapterServer(t *testing.T, tr func(clientFormat, providerType string) (Translation, bool)) *Server {
	t.Helper()
	p, err := policy.Parse("chain.yaml", []byte(chainPolicy), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { return strings.ToLower(k), true }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Options{Policies: staticPolicies{p}, ClientFormats: testFormats(), Translation: tr, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attemptTo sends the request headers of an attempt to provider.
func attemptTo(t *testing.T, c extprocv3.ExternalProcessor_ProcessClient, provider string, attempt float64, kv ...string) *extprocv3.ProcessingResponse {
	t.Helper()
	req := reqHeaders(false, append([]string{":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1"}, kv...)...)
	req.Attributes = adapterAttrs(provider, attempt)
	withDecision(req, Decision{Route: "chain", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1"})
	return roundTrip(t, c, req)
}

// TestAttemptRemovesTheOtherProvidersCredentials checks that an attempt
// removes the credential headers of the other providers of the chain, which
// an earlier attempt may have left in Envoy's one header map, and sets its
// own host, path and key.
func TestAttemptRemovesTheOtherProvidersCredentials(t *testing.T) {
	s := adapterServer(t, translations)
	c := stream(t, s, roleAdapter)
	// The header map as attempt 1 (to first) left it.
	hm := attemptTo(t, c, "second", 2, ":authority", "first:8080", "x-api-key", "first_key", "anthropic-version", "2023-06-01").
		GetRequestHeaders().GetResponse().GetHeaderMutation()
	if !slices.Contains(hm.GetRemoveHeaders(), "x-api-key") {
		t.Errorf("removed %v; want x-api-key among them", hm.GetRemoveHeaders())
	}
	got := sets(t, hm)
	want := map[string]string{":authority": "second:8080", ":path": "/v/v1/messages", "x-api-key": "second_key"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	if _, ok := got["anthropic-version"]; ok {
		t.Error("anthropic-version set although the request carries one")
	}
}

// refusingTranslation is a Translation whose every body is refused.
type refusingTranslation struct{}

func (refusingTranslation) NeedsBody(bool) bool { return true }
func (refusingTranslation) RequestBody([]byte, func(string) string) ([]byte, bool, error) {
	return nil, false, errors.New("no such thing in this format")
}

// TestAdapterRefusesWhatItCannotTranslate checks the refusals of an attempt
// without a translation for its (client format, provider type) pair, a
// misconfiguration answered like the adapter's others (403 permission_error),
// and of a body its translation cannot send (400 invalid_request_error).
func TestAdapterRefusesWhatItCannotTranslate(t *testing.T) {
	none := func(string, string) (Translation, bool) { return nil, false }
	c := stream(t, adapterServer(t, none), roleAdapter)
	ir := attemptTo(t, c, "first", 1).GetImmediateResponse()
	if ir == nil {
		t.Fatal("attempt without a translation let through")
	}
	if st, typ, msg := anthropicError(t, ir); st != 403 || typ != "permission_error" ||
		!strings.Contains(msg, `provider "first" of type "anthropic" cannot serve requests in the anthropic format`) {
		t.Errorf("got %d %s %q", st, typ, msg)
	}

	refusing := func(string, string) (Translation, bool) { return refusingTranslation{}, true }
	c = stream(t, adapterServer(t, refusing), roleAdapter)
	if resp := attemptTo(t, c, "second", 1); resp.GetRequestHeaders() == nil || resp.GetModeOverride() != nil {
		t.Fatalf("headers of an attempt whose body is needed: %v", resp)
	}
	ir = roundTrip(t, c, reqBody(`{"model":"sonnet"}`)).GetImmediateResponse()
	if ir == nil {
		t.Fatal("body that cannot be translated let through")
	}
	if st, typ, msg := anthropicError(t, ir); st != 400 || typ != "invalid_request_error" ||
		msg != `the request cannot be sent to provider "second": no such thing in this format` {
		t.Errorf("got %d %s %q", st, typ, msg)
	}
}

func TestNewServerRequiresTranslation(t *testing.T) {
	if _, err := NewServer(Options{Policies: staticPolicies{&policy.Policy{}}, ClientFormats: testFormats()}); err == nil {
		t.Error("NewServer without Translation succeeded")
	}
}

// stubTranslation translates requests to a path of its own and answers
// with a status and body of its own, like a provider of another format.
type stubTranslation struct{}

func (stubTranslation) NeedsBody(bool) bool { return true }
func (stubTranslation) RequestBody(body []byte, _ func(string) string) ([]byte, bool, error) {
	return body, false, nil
}
func (stubTranslation) TranslateRequest(clientPath string, header func(string) string, body []byte, mapModel func(string) string) ([]byte, string, error) {
	return append([]byte("translated:"+mapModel("sonnet")+":"+header("x-request-id")+":"), body...), "/stub" + clientPath, nil
}
func (stubTranslation) TranslateResponse(clientPath string, status int, header func(string) string,
	set func(name, value string), remove func(name string), warn func(kind, msg string)) func([]byte, bool) []byte {
	if status != 503 || clientPath != "/v1/messages" || header("x-kind") != "stub" {
		return nil
	}
	warn("stub_kind", "noticed")
	set(":status", "529")
	remove("content-length")
	return func(chunk []byte, end bool) []byte {
		if end {
			return append([]byte("last:"), chunk...)
		}
		return nil
	}
}

// TestAdapterTranslatesRequestAndResponse drives an attempt whose
// translation chooses the path at the body and translates the response: the
// body reply carries the path and content-length beside the new body; the
// response headers reply the new status and the STREAMED override, and the
// trail the new status; each body chunk's reply its translation.
func TestAdapterTranslatesRequestAndResponse(t *testing.T) {
	stub := func(string, string) (Translation, bool) { return stubTranslation{}, true }
	s := adapterServer(t, stub)
	c := stream(t, s, roleAdapter)
	if resp := attemptTo(t, c, "second", 1); resp.GetModeOverride() != nil {
		t.Fatalf("the body is skipped: %v", resp)
	}
	br := roundTrip(t, c, reqBody(`{"model":"sonnet"}`)).GetRequestBody().GetResponse()
	want := `translated:second-sonnet:rid-1:{"model":"sonnet"}`
	if got := string(br.GetBodyMutation().GetBody()); got != want {
		t.Errorf("body %q; want %q", got, want)
	}
	if got := sets(t, br.GetHeaderMutation()); got[":path"] != "/stub/v1/messages" || got["content-length"] != strconv.Itoa(len(want)) {
		t.Errorf("body reply headers %v", got)
	}

	rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "503", "x-kind", "stub", "content-length", "9")}}}
	withDecision(rh, Decision{Route: "chain", Path: "/v1/messages", KeyID: "alice", RecordID: "rec-1"})
	resp := roundTrip(t, c, rh)
	hm := resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
	if got := sets(t, hm); got[":status"] != "529" || !slices.Contains(hm.GetRemoveHeaders(), "content-length") {
		t.Errorf("response headers mutation %v", hm)
	}
	var counted dto.Metric
	if err := s.metrics.translationWarnings.WithLabelValues("second", "stub_kind").Write(&counted); err != nil || counted.GetCounter().GetValue() != 1 {
		t.Errorf("translation warnings counted: %v (%v)", counted.GetCounter().GetValue(), err)
	}
	if mo := resp.GetModeOverride(); mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_STREAMED {
		t.Errorf("mode_override %v", mo)
	}
	if trail := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()[metadataAttempts].GetStringValue(); !strings.Contains(trail, "\t529\t") {
		t.Errorf("trail %q", trail)
	}
	for _, c2 := range []struct {
		in   string
		end  bool
		want string
	}{{"part", false, ""}, {"end", true, "last:end"}} {
		body := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(c2.in), EndOfStream: c2.end}}}
		m := roundTrip(t, c, body).GetResponseBody().GetResponse().GetBodyMutation()
		if _, ok := m.GetMutation().(*extprocv3.BodyMutation_Body); !ok || string(m.GetBody()) != c2.want {
			t.Errorf("chunk %q: mutation %v", c2.in, m)
		}
	}
}
