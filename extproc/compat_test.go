package extproc

import (
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-dev/tollgate/policy"
)

// plainTranslation needs no body and edits none: only a provider's
// compatibility table (RequestAdapter) changes the request.
type plainTranslation struct{}

func (plainTranslation) NeedsBody(bool) bool { return false }
func (plainTranslation) RequestBody(body []byte, _ func(string) string) ([]byte, bool, error) {
	return body, false, nil
}

// headerTranslation reports the anthropic-beta value it is given in its
// body.
type headerTranslation struct{ plainTranslation }

func (headerTranslation) TranslateRequest(_ string, header func(string) string, body []byte, _ func(string) string) ([]byte, string, error) {
	return append([]byte(header("anthropic-beta")+"|"), body...), "/p", nil
}

// TestAdapterAppliesCompatibilityTable: an attempt to a provider whose
// settings adapt requests (bedrock's compatibility table) asks for the body
// even when its translation needs none, sends the adapted body with its
// length, gives a request translation the adapted betas, and counts each
// change by provider type, key and action.
func TestAdapterAppliesCompatibilityTable(t *testing.T) {
	p, err := policy.Parse("aws.yaml", []byte(`version: 1
providers:
  aws: {type: bedrock, region: us-east-1, api_key: '${K}', compat: {claude-code-20250219: pass}}
routes:
  chain: {chain: [aws]}
keys: []
`), policy.LoadOptions{RequireSecrets: true, LookupEnv: func(k string) (string, bool) { return "k", true }})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"system","content":"s"}]}`
	adapted := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"<system-reminder>\ns\n</system-reminder>"}]}]}`
	for _, c := range []struct {
		name string
		tr   Translation
		want string
	}{
		{"body", plainTranslation{}, adapted},
		{"request", headerTranslation{}, "claude-code-20250219|" + adapted},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewServer(Options{Policies: staticPolicies{p}, ClientFormats: testFormats(),
				Translation: func(string, string) (Translation, bool) { return c.tr, true }, Now: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			st := stream(t, s, roleAdapter)
			if resp := attemptTo(t, st, "aws", 1, "anthropic-beta", "claude-code-20250219,prompt-caching-scope-2026-01-05"); resp.GetModeOverride() != nil {
				t.Fatalf("the body is skipped: %v", resp)
			}
			br := roundTrip(t, st, reqBody(body)).GetRequestBody().GetResponse()
			if got := string(br.GetBodyMutation().GetBody()); got != c.want {
				t.Errorf("body %s\nwant %s", got, c.want)
			}
			if got := sets(t, br.GetHeaderMutation()); got["content-length"] != strconv.Itoa(len(c.want)) {
				t.Errorf("headers %v", got)
			}
			for _, k := range [][2]string{{"messages.system", "adapt"}, {"prompt-caching-scope-2026-01-05", "drop"}} {
				var m dto.Metric
				if err := s.metrics.compatActions.WithLabelValues("bedrock", k[0], k[1]).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
					t.Errorf("%s %s counted %v", k[0], k[1], m.GetCounter().GetValue())
				}
			}
		})
	}
}
