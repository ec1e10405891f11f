package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/policy/pricing"
	"github.com/tollgate-dev/tollgate/records"
)

// openAIClientOf returns an openai-go client of the stack's harness.
func openAIClientOf(s *stack) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.harness.URL()+"/v1"), option.WithAPIKey(gatewayKey), option.WithMaxRetries(0))
}

// Through the harness with openai-go to the fake Anthropic, streaming and
// not: the Chat Completions request is translated to the Messages API (the
// fake checks its key and body), the answer back to a chat.completion or
// chunk stream that the SDK accumulates, and the usage and cost recorded are
// exactly those of the same answer to an Anthropic client (cache writes
// included).
func TestOpenAIClientToAnthropic(t *testing.T) {
	s := newStackWith(t, stackOptions{openAIFormat: true})
	oc := openAIClientOf(s)
	n := 0
	for _, stream := range []bool{false, true} {
		// The Anthropic client's record is the reference.
		p := anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 256,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))}}
		var want anthropic.Message
		if stream {
			st := s.client.Messages.NewStreaming(context.Background(), p)
			for st.Next() {
				if err := want.Accumulate(st.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
		} else {
			m, err := s.client.Messages.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			want = *m
		}
		n++
		ref := s.records.wait(t, n)[n-1]

		cc := chat(t, oc, chatParams("claude-sonnet-4-5", false), stream)
		n++
		rec := s.records.wait(t, n)[n-1]
		if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != want.Content[0].Text || cc.Choices[0].FinishReason != "stop" {
			t.Fatalf("stream %v: completion %+v, want the text %q", stream, cc.Choices, want.Content[0].Text)
		}
		u := want.Usage
		if cc.Usage.PromptTokens != u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens ||
			cc.Usage.PromptTokensDetails.CachedTokens != u.CacheReadInputTokens || cc.Usage.CompletionTokens != u.OutputTokens {
			t.Errorf("stream %v: client usage %+v, Anthropic's %+v", stream, cc.Usage, u)
		}
		if rec.Usage != ref.Usage || rec.CostPicoUSD != ref.CostPicoUSD || rec.CostPicoUSD == 0 || rec.Outcome != ref.Outcome {
			t.Errorf("stream %v: record usage %+v cost %d outcome %q; the Anthropic client's %+v %d %q", stream,
				rec.Usage, rec.CostPicoUSD, rec.Outcome, ref.Usage, ref.CostPicoUSD, ref.Outcome)
		}
	}
	// The provider's errors reach openai-go in OpenAI's shape.
	for _, stream := range []bool{false, true} {
		var err error
		if stream {
			st := oc.Chat.Completions.NewStreaming(context.Background(), chatParams("fake-error-429", false))
			for st.Next() {
			}
			err = st.Err()
		} else {
			_, err = oc.Chat.Completions.New(context.Background(), chatParams("fake-error-429", false))
		}
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.StatusCode != 429 || oe.Type != "requests" || oe.Code != "rate_limit_error" {
			t.Errorf("stream %v: %v", stream, err)
		}
	}
}

// A budget's refusal reaches openai-go as a 429 *openai.Error in OpenAI's
// shape, and nothing reaches the provider.
func TestOpenAIClientBudgetRefusal(t *testing.T) {
	s := newStackWith(t, stackOptions{openAIFormat: true, ledger: budget.NewMemoryLedger(0), keyBudgets: `[{requests: 1, per: minute}]`})
	oc := openAIClientOf(s)
	chat(t, oc, chatParams("claude-sonnet-4-5", false), false)
	_, err := oc.Chat.Completions.New(context.Background(), chatParams("claude-sonnet-4-5", false))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 429 || oe.Type != "requests" || oe.Code != "rate_limit_exceeded" || oe.Message == "" {
		t.Fatalf("second request: %v", err)
	}
}

// A stream the provider cuts before its end (the fake's "-cut": no
// message_delta) ends with an error chunk that openai-go raises, and is
// recorded as cut, its output estimated from what was relayed.
func TestOpenAIClientCutStream(t *testing.T) {
	s := newStackWith(t, stackOptions{openAIFormat: true})
	oc := openAIClientOf(s)
	st := oc.Chat.Completions.NewStreaming(context.Background(), chatParams("claude-sonnet-4-5-cut", false))
	var text string
	for st.Next() {
		if c := st.Current(); len(c.Choices) > 0 {
			text += c.Choices[0].Delta.Content
		}
	}
	if err := st.Err(); err == nil || !strings.Contains(err.Error(), "incomplete") || text == "" {
		t.Fatalf("text %q, err %v; want the text so far and the cut's error", text, err)
	}
	rec := s.records.wait(t, 1)[0]
	if rec.Outcome == records.OutcomeOK || rec.Usage.OutputTokens == 0 {
		t.Errorf("record outcome %q usage %+v", rec.Outcome, rec.Usage)
	}
}

// GET /v1/models answers in the client's format: openai-go (a bearer key,
// no anthropic-version) gets OpenAI's list and model objects, translated
// from the Anthropic provider's answers; an Anthropic client gets the
// provider's list as it is, with x-api-key or with a bearer key and
// anthropic-version, as the Anthropic SDKs and Claude Code send it.
func TestModelsInTheClientFormat(t *testing.T) {
	s := newStackWith(t, stackOptions{openAIFormat: true})
	oc := openAIClientOf(s)
	page, err := oc.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Object != "list" || page.Data[0].ID != "claude-sonnet-4-5" || page.Data[0].Object != "model" ||
		page.Data[0].OwnedBy != "anthropic" || page.Data[0].Created != 1759104000 || page.Data[1].ID != "claude-haiku-4-5" {
		t.Errorf("list %s", page.RawJSON())
	}
	m, err := oc.Models.Get(context.Background(), "claude-sonnet-4-5")
	if err != nil || m.ID != "claude-sonnet-4-5" || m.Object != "model" || m.Created != 1759104000 {
		t.Errorf("model %+v, %v", m, err)
	}
	// An unknown model is the provider's 404, in OpenAI's shape.
	_, err = oc.Models.Get(context.Background(), "claude-none")
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 404 || oe.Code != "not_found_error" {
		t.Errorf("unknown model: %v", err)
	}
	// A malformed id is the gateway's 404, in OpenAI's shape.
	_, err = oc.Models.Get(context.Background(), "..%2ffiles")
	if !errors.As(err, &oe) || oe.StatusCode != 404 || oe.Type != "invalid_request_error" {
		t.Errorf("malformed id: %v", err)
	}
	for _, hdr := range [][]string{{"x-api-key", gatewayKey}, {"authorization", "Bearer " + gatewayKey, "anthropic-version", "2023-06-01"}} {
		resp, body := rawRequest(t, s, "GET", "/v1/models", hdr...)
		if resp.StatusCode != 200 || !strings.Contains(body, `"type":"model"`) || strings.Contains(body, `"object"`) {
			t.Errorf("%v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	for _, r := range s.fake.Requests() {
		if !strings.HasPrefix(r.Path, "/v1/models") || r.Header.Get("authorization") != "" {
			t.Errorf("provider request %s, authorization %q", r.Path, r.Header.Get("authorization"))
		}
	}
}

// openai-go with tools through the harness to the fake Anthropic, streaming
// and not, its streams also cut at random seeded offsets: the tool_use
// blocks reach the SDK as tool_calls with their ids and arguments that
// parse, the usage and cost are exact (cache reads and writes included),
// and the tool loop round-trips: the assistant message and the tool results
// openai-go sends back become tool_use and tool_result blocks the provider
// answers.
func TestOpenAIClientToolLoopToAnthropic(t *testing.T) {
	for _, seed := range []uint64{0, 7} {
		s := newStackWith(t, stackOptions{openAIFormat: true, splitSeed: seed})
		oc := openAIClientOf(s)
		n := 0
		for _, stream := range []bool{false, true} {
			p := chatParams("claude-sonnet-4-5-tools", true)
			cc := chat(t, oc, p, stream)
			n++
			rec := s.records.wait(t, n)[n-1]
			if len(cc.Choices) != 1 || cc.Choices[0].FinishReason != "tool_calls" || cc.Choices[0].Message.Content != "Let me check." {
				t.Fatalf("seed %d stream %v: %+v", seed, stream, cc.Choices)
			}
			calls := cc.Choices[0].Message.ToolCalls
			var args struct {
				City string `json:"city"`
				Days int    `json:"days"`
			}
			if len(calls) != 2 || calls[0].ID != "toolu_fake_1" || calls[0].Function.Name != "get_weather" ||
				json.Unmarshal([]byte(calls[0].Function.Arguments), &args) != nil || args.City != "Paris" || args.Days != 3 ||
				calls[1].Function.Arguments != `{"city":"Oslo"}` {
				t.Fatalf("seed %d stream %v: tool calls %+v", seed, stream, calls)
			}
			u := cc.Usage
			if u.PromptTokens != envoytest.FakeAnthropicToolsInput+envoytest.FakeAnthropicToolsCacheRead+envoytest.FakeAnthropicToolsCacheWrite ||
				u.PromptTokensDetails.CachedTokens != envoytest.FakeAnthropicToolsCacheRead || u.CompletionTokens != envoytest.FakeAnthropicToolsOutput {
				t.Errorf("seed %d stream %v: client usage %+v", seed, stream, u)
			}
			want := pricing.Usage{InputTokens: envoytest.FakeAnthropicToolsInput, CacheReadTokens: envoytest.FakeAnthropicToolsCacheRead,
				CacheWrite5mTokens: envoytest.FakeAnthropicToolsCacheWrite, OutputTokens: envoytest.FakeAnthropicToolsOutput}
			if rec.Usage != want || rec.CostPicoUSD != sonnetCost(want) || rec.PriceEstimated || rec.Outcome != records.OutcomeOK {
				t.Errorf("seed %d stream %v: record usage %+v cost %d (want %d) estimated %v outcome %q", seed, stream,
					rec.Usage, rec.CostPicoUSD, sonnetCost(want), rec.PriceEstimated, rec.Outcome)
			}

			// The loop: the assistant message and both results go back.
			p.Messages = append(p.Messages, cc.Choices[0].Message.ToParam(),
				openai.ToolMessage("sunny", calls[0].ID), openai.ToolMessage("rain", calls[1].ID))
			reply := chat(t, oc, p, stream)
			n++
			s.records.wait(t, n)
			if len(reply.Choices) != 1 || reply.Choices[0].Message.Content != "Tool said: rain" || reply.Choices[0].FinishReason != "stop" {
				t.Errorf("seed %d stream %v: reply %+v", seed, stream, reply.Choices)
			}
			var sent struct {
				Messages []struct {
					Role    string `json:"role"`
					Content []struct {
						Type      string          `json:"type"`
						ID        string          `json:"id"`
						Input     json.RawMessage `json:"input"`
						ToolUseID string          `json:"tool_use_id"`
						Content   string          `json:"content"`
					} `json:"content"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(s.lastRequest(t).Body, &sent); err != nil || len(sent.Messages) != 3 {
				t.Fatalf("seed %d stream %v: provider body %s (%v)", seed, stream, s.lastRequest(t).Body, err)
			}
			a, r := sent.Messages[1], sent.Messages[2]
			if a.Role != "assistant" || len(a.Content) != 3 || a.Content[1].ID != "toolu_fake_1" || string(a.Content[1].Input) != `{"city":"Paris","days":3}` ||
				r.Role != "user" || len(r.Content) != 2 || r.Content[0].ToolUseID != "toolu_fake_1" || r.Content[1].Content != "rain" {
				t.Errorf("seed %d stream %v: provider body %s", seed, stream, s.lastRequest(t).Body)
			}
		}
	}
}

// An OpenAI client's answers are cached like an Anthropic client's: the
// second identical request, streaming or not, is a HIT that openai-go reads
// as the first (the translated answer is what is stored), and the provider
// is asked once per shape.
func TestOpenAIClientCached(t *testing.T) {
	s := newCacheStack(t, stackOptions{openAIFormat: true}, "")
	oc := openAIClientOf(s)
	for _, stream := range []bool{false, true} {
		var got [2]openai.ChatCompletion
		for i := range got {
			var resp *http.Response
			p := chatParams("claude-sonnet-4-5", false)
			if stream {
				st := oc.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&resp))
				var acc openai.ChatCompletionAccumulator
				for st.Next() {
					acc.AddChunk(st.Current())
				}
				if err := st.Err(); err != nil {
					t.Fatal(err)
				}
				got[i] = acc.ChatCompletion
			} else {
				cc, err := oc.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&resp))
				if err != nil {
					t.Fatal(err)
				}
				got[i] = *cc
			}
			if want := []string{"MISS", "HIT"}[i]; resp.Header.Get("x-tollgate-cache-status") != want {
				t.Errorf("stream %v request %d: cache %q; want %s", stream, i+1, resp.Header.Get("x-tollgate-cache-status"), want)
			}
		}
		if len(got[1].Choices) != 1 || got[1].Choices[0].Message.Content != got[0].Choices[0].Message.Content || got[1].Usage.RawJSON() != got[0].Usage.RawJSON() || got[1].Usage.PromptTokens == 0 {
			t.Errorf("stream %v: the HIT reads %+v; the MISS %+v", stream, got[1], got[0])
		}
	}
	if n := len(s.fake.Requests()); n != 2 {
		t.Errorf("the provider saw %d requests; want 2", n)
	}
}
