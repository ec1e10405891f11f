package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	anthropicfmt "github.com/tollgate-dev/tollgate/clientformat/anthropic"
	openaifmt "github.com/tollgate-dev/tollgate/clientformat/openai"
	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// cloudsBedrockModel is the Bedrock id claude-sonnet-4-5 maps to in the
// clouds chain: a US inference profile, which the catalog prices 10% above
// the Claude API, so a cost at the wrong provider's price shows.
const cloudsBedrockModel = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

// cloudsStack is one route, claude, whose chain is anthropic (a fake
// Anthropic) → bedrock (a fake Bedrock, SigV4) → vertex (a fake Vertex AI,
// service-account key), on the configuration rendered from its policy, and
// a Tollgate serving both client formats. The models each provider is sent
// for claude-sonnet-4-5 choose which ones fail (the fakes' suffixes).
type cloudsStack struct {
	anthropic *envoytest.FakeAnthropic
	bedrock   *envoytest.FakeBedrock
	vertex    *envoytest.FakeVertex
	recs      *collector
	oc        openai.Client
	ac        anthropic.Client
	n         int // records so far
}

// newCloudsStack starts the chain; aSuffix, bSuffix and vSuffix are appended
// to the model each provider is sent ("" for an answer, "-overloaded",
// "-unavailable" and the like for a failure).
func newCloudsStack(t *testing.T, aSuffix, bSuffix, vSuffix string) *cloudsStack {
	t.Helper()
	s := &cloudsStack{recs: &collector{}}
	s.anthropic = envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{APIKey: providerKey,
		ForbiddenHeaders: []string{"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}})
	if err := s.anthropic.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.anthropic.Close() })
	s.bedrock = envoytest.NewFakeBedrock(envoytest.FakeBedrockConfig{Region: "us-east-1",
		AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, SessionToken: awsToken})
	if err := s.bedrock.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.bedrock.Close() })
	s.vertex = newFakeVertex(t, 0)
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(keyFile, s.vertex.ServiceAccountJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `version: 1
providers:
  anthropic:
    type: anthropic
    base_url: ` + s.anthropic.URL() + `
    api_key: ${ANTHROPIC_KEY}
    models: {claude-sonnet-4-5: "claude-sonnet-4-5` + aSuffix + `"}
  bedrock:
    type: bedrock
    region: us-east-1
    base_url: ` + s.bedrock.URL() + `
    access_key_id: ${AWS_ID}
    secret_access_key: ${AWS_SECRET}
    session_token: ${AWS_TOKEN}
    models: {claude-sonnet-4-5: "` + cloudsBedrockModel + bSuffix + `"}
  vertex:
    type: vertex
    project: ` + vertexProject + `
    region: ` + vertexRegion + `
    base_url: ` + s.vertex.URL() + `
    credentials_file: ` + keyFile + `
    models: {claude-sonnet-4-5: "` + vertexModel + vSuffix + `"}
routes:
  claude: {chain: [anthropic, bedrock, vertex], cluster: chain_claude, per_try_idle_timeout: 5s}
default_route: claude
keys:
  - {id: alice, sha256: ` + policy.HashKey(gatewayKey) + `, team: platform}
`
	env := map[string]string{"AWS_ID": awsKeyID, "AWS_SECRET": awsSecret, "AWS_TOKEN": awsToken, "ANTHROPIC_KEY": providerKey}
	p, err := policy.Parse("clouds.yaml", []byte(src), policy.LoadOptions{RequireSecrets: true,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extproc.NewServer(extproc.Options{Policies: fixedPolicy{p},
		ClientFormats: []extproc.ClientFormat{anthropicfmt.Format{}, openaifmt.Format{}},
		Translation:   translations, Recorder: s.recs, Metrics: extproc.NewMetrics(prometheus.NewRegistry()),
		Endings: endings.NewMemory(0, nil)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	accesslogv3.RegisterAccessLogServiceServer(gs, srv.AccessLogServer())
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	h, err := envoytest.Start(envoytest.Config{EnvoyYAML: renderEnvoyFile(t, p),
		Clusters: map[string]string{"tollgate": lis.Addr().String()}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.oc = openai.NewClient(option.WithBaseURL(h.URL()+"/v1"), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
	s.ac = anthropic.NewClient(anthropicoption.WithBaseURL(h.URL()), anthropicoption.WithAPIKey(gatewayKey), anthropicoption.WithMaxRetries(0))
	t.Cleanup(func() {
		for name, v := range map[string][]string{"anthropic": s.anthropic.Violations(), "bedrock": s.bedrock.Violations(),
			"vertex": s.vertex.Violations()} {
			if len(v) > 0 {
				t.Errorf("the fake %s received what it must not: %v", name, v)
			}
		}
	})
	return s
}

// next waits for the next record.
func (s *cloudsStack) next(t *testing.T) records.Record {
	t.Helper()
	s.n++
	return s.recs.wait(t, s.n)[s.n-1]
}

// anthropicMessage sends hello with anthropic-sdk-go, streaming or not.
func (s *cloudsStack) anthropicMessage(t *testing.T, stream bool) anthropic.Message {
	t.Helper()
	p := hello("claude-sonnet-4-5")
	if !stream {
		m, err := s.ac.Messages.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return *m
	}
	st := s.ac.Messages.NewStreaming(context.Background(), p)
	var m anthropic.Message
	for st.Next() {
		if err := m.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// An OpenAI client is served on any attempt of a chain anthropic → bedrock
// → vertex, streaming and not: Anthropic failing (529), Bedrock answers
// (its InvokeModel body, signed, at its inference profile's path; its event
// stream translated to chunks); Bedrock failing too (503
// ServiceUnavailableException), Vertex AI answers (rawPredict with a bearer
// token). openai-go gets the text, the finish reason and the usage of the
// Anthropic answer, and the record the same usage and cost as an Anthropic
// client's through the same chain: the serving provider's price, exactly.
func TestOpenAIClientToBedrockAndVertex(t *testing.T) {
	for _, tt := range []struct {
		name             string
		bSuffix, attempt string
		trail            string // the OpenAI client's attempts
		price            func(t *testing.T) pricing.Price
	}{
		{"bedrock", "", "2", "anthropic:Service Unavailable;bedrock:OK;", func(t *testing.T) pricing.Price {
			p, ok := pricing.Embedded().Lookup("bedrock", cloudsBedrockModel)
			if !ok || p.Estimated {
				t.Fatalf("no Bedrock price for %s", cloudsBedrockModel)
			}
			return p
		}},
		{"vertex", "-unavailable", "3", "anthropic:Service Unavailable;bedrock:Service Unavailable;vertex:OK;", func(t *testing.T) pricing.Price {
			p, ok := pricing.Embedded().Lookup("vertex", vertexModel)
			if !ok || p.Estimated {
				t.Fatalf("no Vertex AI price for %s", vertexModel)
			}
			return p
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newCloudsStack(t, "-overloaded", tt.bSuffix, "")
			serving := tt.name
			price := tt.price(t)
			for _, stream := range []bool{false, true} {
				want := s.anthropicMessage(t, stream)
				ref := s.next(t)
				if ref.Provider != serving {
					t.Fatalf("stream %v: the Anthropic client was served by %q", stream, ref.Provider)
				}
				var resp *http.Response
				p := chatParams("claude-sonnet-4-5", false)
				var cc openai.ChatCompletion
				if stream {
					st := s.oc.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&resp))
					var acc openai.ChatCompletionAccumulator
					for st.Next() {
						acc.AddChunk(st.Current())
					}
					if err := st.Err(); err != nil {
						t.Fatalf("stream: %v", err)
					}
					cc = acc.ChatCompletion
				} else {
					got, err := s.oc.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&resp))
					if err != nil {
						t.Fatal(err)
					}
					cc = *got
				}
				rec := s.next(t)
				if h := resp.Header; h.Get("x-tollgate-provider") != serving || h.Get("x-tollgate-attempts") != tt.attempt {
					t.Errorf("stream %v: served by %q on attempt %q", stream, h.Get("x-tollgate-provider"), h.Get("x-tollgate-attempts"))
				}
				if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != want.Content[0].Text || cc.Choices[0].FinishReason != "stop" ||
					cc.Model != string(want.Model) {
					t.Errorf("stream %v: completion model %q %+v; want %q %q", stream, cc.Model, cc.Choices, want.Model, want.Content[0].Text)
				}
				u := want.Usage
				if cc.Usage.PromptTokens != u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens ||
					cc.Usage.PromptTokensDetails.CachedTokens != u.CacheReadInputTokens || cc.Usage.CompletionTokens != u.OutputTokens {
					t.Errorf("stream %v: client usage %+v, the Anthropic client's %+v", stream, cc.Usage, u)
				}
				if got := attemptsOf(rec.Attempts); got != tt.trail {
					t.Errorf("stream %v: attempts %s; want %s", stream, got, tt.trail)
				}
				if rec.Provider != serving || rec.Outcome != records.OutcomeOK || rec.Stream != stream || rec.Usage != ref.Usage ||
					rec.CostPicoUSD != ref.CostPicoUSD || rec.PriceEstimated || rec.CostPicoUSD != pricing.Cost(rec.Usage, price) || rec.CostPicoUSD == 0 {
					t.Errorf("stream %v: record provider %q outcome %q usage %+v cost %d (at %s's price: %d); the Anthropic client's %+v %d",
						stream, rec.Provider, rec.Outcome, rec.Usage, rec.CostPicoUSD, serving, pricing.Cost(rec.Usage, price), ref.Usage, ref.CostPicoUSD)
				}
			}
			// What the serving provider got from the OpenAI client: its
			// own body, path and credentials, as an Anthropic client's; the
			// system message in the top-level system (the compatibility
			// table, applied to the Messages request, leaves it there; had
			// it seen the Chat Completions body, it would have folded the
			// role "system" message into the user turn).
			switch serving {
			case "bedrock":
				reqs := s.bedrock.Requests()
				if len(reqs) != 4 {
					t.Fatalf("bedrock got %d requests; want 4", len(reqs))
				}
				for i, op := range []string{"invoke", "invoke-with-response-stream"} {
					r := reqs[2*i+1] // the OpenAI client's
					if want := "/model/" + strings.ReplaceAll(cloudsBedrockModel, ":", "%3A") + "/" + op; r.Path != want {
						t.Errorf("path %s; want %s", r.Path, want)
					}
					if a := r.Header.Get("authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential="+awsKeyID+"/") {
						t.Errorf("authorization %q", a)
					}
					var body map[string]any
					if err := json.Unmarshal(r.Body, &body); err != nil || body["anthropic_version"] != "bedrock-2023-05-31" ||
						body["model"] != nil || body["stream"] != nil || body["system"] != "Be brief." || body["max_tokens"] != float64(256) {
						t.Errorf("bedrock body %s (%v)", r.Body, err)
					}
				}
			case "vertex":
				reqs := s.vertex.Requests()
				if len(reqs) != 4 {
					t.Fatalf("vertex got %d requests; want 4", len(reqs))
				}
				for i, method := range []string{"rawPredict", "streamRawPredict"} {
					r := reqs[2*i+1]
					checkVertexRequest(t, r, method)
					if !bytes.HasPrefix(r.Body, []byte(`{"anthropic_version":"vertex-2023-10-16",`)) || bytes.Contains(r.Body, []byte(`"model"`)) ||
						!bytes.Contains(r.Body, []byte(`"system":"Be brief."`)) {
						t.Errorf("vertex body %s", r.Body)
					}
				}
			}
		})
	}
}

// Bedrock's errors and a Bedrock exception mid-stream reach openai-go in
// OpenAI's shape: a chain whose every provider fails ends with Vertex AI's
// error as a *openai.Error; an exception frame after the first delta is an
// error chunk the SDK raises, after the text so far.
func TestOpenAIClientCloudErrors(t *testing.T) {
	s := newCloudsStack(t, "-overloaded", "-throttled", "-exhausted")
	_, err := s.oc.Chat.Completions.New(context.Background(), chatParams("claude-sonnet-4-5", false))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 429 || oe.Type != "requests" || oe.Code != "rate_limit_error" {
		t.Fatalf("err %v", err)
	}
	rec := s.next(t)
	if got := attemptsOf(rec.Attempts); got != "anthropic:Service Unavailable;bedrock:Too Many Requests;vertex:Too Many Requests;" {
		t.Errorf("attempts %s", got)
	}

	s = newCloudsStack(t, "-overloaded", "-exception", "")
	st := s.oc.Chat.Completions.NewStreaming(context.Background(), chatParams("claude-sonnet-4-5", false))
	var text string
	for st.Next() {
		if c := st.Current(); len(c.Choices) > 0 {
			text += c.Choices[0].Delta.Content
		}
	}
	if err := st.Err(); err == nil || text == "" {
		t.Fatalf("text %q, err %v; want the text so far, then the exception's error", text, err)
	}
	rec = s.next(t)
	if rec.Provider != "bedrock" || rec.Outcome == records.OutcomeOK {
		t.Errorf("record provider %q outcome %q", rec.Provider, rec.Outcome)
	}
}

// The compatibility table applies to an OpenAI client's request as it does
// to an Anthropic client's, after the request became a Messages request:
// betas Bedrock and Vertex AI refuse (claude-code, oauth) are dropped, so
// neither fake records a violation, and Vertex AI gets no anthropic-beta.
func TestOpenAIClientCloudCompat(t *testing.T) {
	for _, tt := range []struct{ name, bSuffix string }{{"bedrock", ""}, {"vertex", "-unavailable"}} {
		t.Run(tt.name, func(t *testing.T) {
			s := newCloudsStack(t, "-overloaded", tt.bSuffix, "")
			_, err := s.oc.Chat.Completions.New(context.Background(), chatParams("claude-sonnet-4-5", false),
				option.WithHeader("anthropic-beta", "claude-code-20250219,oauth-2025-04-20"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "vertex" {
				reqs := s.vertex.Requests()
				if r := reqs[len(reqs)-1]; r.Header.Get("anthropic-beta") != "" {
					t.Errorf("vertex got anthropic-beta %q", r.Header.Get("anthropic-beta"))
				}
			} else {
				reqs := s.bedrock.Requests()
				if r := reqs[len(reqs)-1]; bytes.Contains(r.Body, []byte("anthropic_beta")) {
					t.Errorf("bedrock body %s", r.Body)
				}
			}
		})
	}
}
