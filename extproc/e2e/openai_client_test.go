package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// openAIClient returns an openai-go client of the stack's harness, with the
// gateway key as its bearer token (or key when given).
func (s *openAIStack) openAIClient(key string) openai.Client {
	if key == "" {
		key = gatewayKey
	}
	return openai.NewClient(option.WithBaseURL(s.harness.URL()+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// chatParams asks model for an answer, with a tool when tools is set.
func chatParams(model string, tools bool) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:               shared.ChatModel(model),
		MaxCompletionTokens: openai.Int(256),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Be brief."),
			openai.UserMessage("What is the weather in Paris?"),
		},
	}
	if tools {
		p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name:        "get_weather",
			Description: openai.String("The weather of a city."),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
				"city": map[string]any{"type": "string"}, "days": map[string]any{"type": "integer"}}},
		})}
	}
	return p
}

// chat sends p with openai-go, streaming (accumulated) or not, and returns
// the completion the SDK has.
func chat(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams, stream bool) openai.ChatCompletion {
	t.Helper()
	if !stream {
		cc, err := c.Chat.Completions.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return *cc
	}
	st := c.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return acc.ChatCompletion
}

// checkChatUsage checks the usage the client sees (OpenAI's own, passed
// through) and the record's usage and cost, the same as an Anthropic
// client's through the translation.
func checkChatUsage(t *testing.T, cc openai.ChatCompletion, rec records.Record) {
	t.Helper()
	u := cc.Usage
	if u.PromptTokens != envoytest.FakeOpenAIPromptTokens || u.PromptTokensDetails.CachedTokens != envoytest.FakeOpenAICachedTokens ||
		u.CompletionTokens != envoytest.FakeOpenAICompletionTokens {
		t.Errorf("client usage %+v", u)
	}
	want := pricing.Usage{InputTokens: wantInput, CacheReadTokens: wantCacheRead, OutputTokens: wantOutput,
		ReasoningTokens: envoytest.FakeOpenAIReasoningTokens}
	if rec.Outcome != records.OutcomeOK || rec.Usage != want || rec.CostPicoUSD != wantCostPicoUSD || rec.PriceEstimated || rec.ResponseModel == "" {
		t.Errorf("record outcome %q usage %+v cost %d (want %d) estimated %v model %q", rec.Outcome, rec.Usage, rec.CostPicoUSD, int64(wantCostPicoUSD),
			rec.PriceEstimated, rec.ResponseModel)
	}
}

// Through the harness with openai-go, streaming and not, text and tool
// calls from the fake OpenAI reach the client natively (the model mapped,
// include_usage asked for the stream); the SDK accumulates the right
// completion, and the record has the usage split (input and cache read) and
// the catalog's cost. Streams are also split at random seeded offsets.
func TestOpenAIClientNative(t *testing.T) {
	for _, seed := range []uint64{0, 7} {
		s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{SplitSeed: seed})
		c := s.openAIClient("")
		n := 0
		for _, stream := range []bool{false, true} {
			cc := chat(t, c, chatParams("claude-sonnet-4-5", false), stream)
			n++
			if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != "Hello from the fake OpenAI." || cc.Choices[0].FinishReason != "stop" {
				t.Fatalf("seed %d stream %v: completion %+v", seed, stream, cc.Choices)
			}
			checkChatUsage(t, cc, s.recs.wait(t, n)[n-1])

			cc = chat(t, c, chatParams("claude-tools", true), stream)
			n++
			if len(cc.Choices) != 1 {
				t.Fatalf("choices %+v", cc.Choices)
			}
			calls := cc.Choices[0].Message.ToolCalls
			if cc.Choices[0].FinishReason != "tool_calls" || len(calls) != 2 || calls[0].Function.Name != "get_weather" {
				t.Fatalf("seed %d stream %v: tool calls %+v", seed, stream, calls)
			}
			var args struct {
				City string `json:"city"`
				Days int    `json:"days"`
			}
			if err := json.Unmarshal([]byte(calls[0].Function.Arguments), &args); err != nil || args.City != "Paris" || args.Days != 3 {
				t.Errorf("arguments %q: %v", calls[0].Function.Arguments, err)
			}
			checkChatUsage(t, cc, s.recs.wait(t, n)[n-1])
		}
	}
}

// Errors reach openai-go as *openai.Error with the right status and
// OpenAI's shape: the gateway's own refusals (a wrong key, a malformed
// body) and the provider's (a rate limit, passed through).
func TestOpenAIClientErrors(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	for _, tc := range []struct {
		name, key, model string
		status           int
		typ              string
	}{
		{"wrong key", "tg-wrong", "claude-sonnet-4-5", 401, "invalid_request_error"},
		{"provider rate limit", "", "claude-x-ratelimited", 429, ""},
	} {
		for _, stream := range []bool{false, true} {
			c := s.openAIClient(tc.key)
			var err error
			if stream {
				st := c.Chat.Completions.NewStreaming(context.Background(), chatParams(tc.model, false))
				for st.Next() {
				}
				err = st.Err()
			} else {
				_, err = c.Chat.Completions.New(context.Background(), chatParams(tc.model, false))
			}
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.StatusCode != tc.status || oe.Message == "" || (tc.typ != "" && oe.Type != tc.typ) {
				t.Errorf("%s (stream %v): %v", tc.name, stream, err)
			}
		}
	}
	// A body that is not JSON is the gateway's 400, in OpenAI's shape.
	postChat(t, s.harness, "malformed body", `{"model":`, "")
}

// GET /v1/models to a provider of type openai (sent to its base URL's
// /models) answers in the client's format: openai-go gets the provider's
// list and model natively; an Anthropic client gets them in the Anthropic
// API's shape.
func TestModelsFromOpenAIProvider(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	oc := s.openAIClient("")
	page, err := oc.Models.List(context.Background())
	if err != nil || len(page.Data) != 2 || page.Data[0].ID != "gpt-4.1" || page.Data[0].OwnedBy != "system" {
		t.Fatalf("openai-go list %v: %+v", err, page)
	}
	if m, err := oc.Models.Get(context.Background(), "gpt-4.1"); err != nil || m.Created != 1744316542 {
		t.Errorf("openai-go model %+v %v", m, err)
	}
	ap, err := s.client.Models.List(context.Background(), anthropic.ModelListParams{})
	if err != nil || len(ap.Data) != 2 || ap.Data[0].ID != "gpt-4.1" || ap.Data[0].CreatedAt.Unix() != 1744316542 || ap.HasMore {
		t.Fatalf("anthropic-sdk-go list %v: %+v", err, ap)
	}
	if m, err := s.client.Models.Get(context.Background(), "gpt-4.1", anthropic.ModelGetParams{}); err != nil || m.ID != "gpt-4.1" || m.Type != "model" {
		t.Errorf("anthropic-sdk-go model %+v %v", m, err)
	}
	for _, r := range s.openai.Requests() {
		if !strings.HasPrefix(r.Path, "/v1/models") {
			t.Errorf("provider request %s", r.Path)
		}
	}
}
