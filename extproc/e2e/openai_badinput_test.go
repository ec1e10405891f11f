package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
)

// userHi is a valid messages value.
const userHi = `[{"role":"user","content":"Hi"}]`

// badChats are Chat Completions bodies every target refuses, with the param
// the 400 names ("" for null).
var badChats = []struct{ name, body, param string }{
	{"malformed JSON", `{"model":"claude-sonnet-4-5","messages":[`, ""},
	{"not an object", `["claude-sonnet-4-5"]`, ""},
	{"no messages", `{"model":"claude-sonnet-4-5","max_completion_tokens":16}`, "messages"},
	{"null messages", `{"model":"claude-sonnet-4-5","messages":null}`, "messages"},
	{"empty messages", `{"model":"claude-sonnet-4-5","messages":[]}`, "messages"},
	{"messages not an array", `{"model":"claude-sonnet-4-5","messages":"Hi"}`, "messages"},
	{"message not an object", `{"model":"claude-sonnet-4-5","messages":["Hi"]}`, "messages[0]"},
	{"message without a role", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"a"},{"content":"b"}]}`, "messages[1].role"},
	{"unknown role", `{"model":"claude-sonnet-4-5","messages":[{"role":"human","content":"Hi"}]}`, "messages[0].role"},
	{"role not a string", `{"model":"claude-sonnet-4-5","messages":[{"role":1,"content":"Hi"}]}`, "messages[0].role"},
	{"no model", `{"messages":` + userHi + `}`, "model"},
	{"empty model", `{"model":"","messages":` + userHi + `}`, "model"},
	{"model not a string", `{"model":42,"messages":` + userHi + `}`, "model"},
	{"n zero", `{"model":"claude-sonnet-4-5","n":0,"messages":` + userHi + `}`, "n"},
	{"n not a number", `{"model":"claude-sonnet-4-5","n":"2","messages":` + userHi + `}`, "n"},
	{"max_completion_tokens not a number", `{"model":"claude-sonnet-4-5","max_completion_tokens":"16","messages":` + userHi + `}`, "max_completion_tokens"},
}

// postChat posts body to POST /v1/chat/completions of harness with the
// gateway key as a bearer token, and checks the answer is a 400 in OpenAI's
// error shape, every member present, naming param (null when "").
func postChat(t *testing.T, harness *envoytest.Harness, name, body, param string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, harness.URL()+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("authorization", "Bearer "+gatewayKey)
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("content-type"), "application/json") || json.Unmarshal(b, &e) != nil {
		t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		return
	}
	want := "null"
	if param != "" {
		want = `"` + param + `"`
	}
	if len(e.Error) != 4 || string(e.Error["type"]) != `"invalid_request_error"` || string(e.Error["param"]) != want ||
		len(e.Error["message"]) < 10 || e.Error["code"] == nil {
		t.Errorf("%s: error %s; want type invalid_request_error, param %s, a message and a code", name, b, want)
	}
}

// checkRefused checks that n refused requests left a record each, of a
// client error with nothing reserved, and reached no provider.
func checkRefused(t *testing.T, recs []records.Record, provided ...interface {
	Requests() []envoytest.RecordedRequest
}) {
	t.Helper()
	for _, r := range recs {
		if r.Status != 400 || r.Outcome != records.OutcomeInvalid || r.ReservationID != "" || r.CostPicoUSD != 0 || len(r.Attempts) != 0 {
			t.Errorf("record of a refused request: status %d outcome %s reservation %q cost %d attempts %v",
				r.Status, r.Outcome, r.ReservationID, r.CostPicoUSD, r.Attempts)
		}
	}
	for _, p := range provided {
		if n := len(p.Requests()); n != 0 {
			t.Errorf("a provider received %d requests: %+v", n, p.Requests())
		}
	}
}

// Natively to an OpenAI-compatible provider: every bad body is a 400 in
// OpenAI's shape naming the field, recorded as invalid, and the provider
// gets nothing; openai-go raises it as an *openai.Error with the param.
func TestOpenAIBadInputNative(t *testing.T) {
	s := newOpenAIStack(t, envoytest.FakeOpenAIConfig{})
	for _, tc := range badChats {
		postChat(t, s.harness, tc.name, tc.body, tc.param)
	}
	p := chatParams("claude-sonnet-4-5", false)
	p.Messages = nil
	oc := s.openAIClient("")
	_, err := oc.Chat.Completions.New(context.Background(), p)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 400 || oe.Param != "messages" || oe.Type != "invalid_request_error" {
		t.Errorf("openai-go without messages: %v", err)
	}
	checkRefused(t, s.recs.wait(t, len(badChats)+1), s.openai)
}

// Through the reverse translation to the Messages API: the same refusals,
// and n above 1, which the Messages API cannot answer, is refused too
// (param "n") rather than answered with one choice; nothing is reserved
// (the early reservation of the alike requests is given back) and the
// provider gets nothing. n: 1 is served.
func TestOpenAIBadInputToAnthropic(t *testing.T) {
	ledger := budget.NewMemoryLedger(0)
	s := newStackWith(t, stackOptions{openAIFormat: true, ledger: ledger,
		keyBudgets: `[{requests: 100, per: minute}, {usd: 100, per: day}, {concurrent: 2}]`})
	oc := openAIClientOf(s)
	p := chatParams("claude-sonnet-4-5", false)
	p.N = openai.Int(1)
	if cc := chat(t, oc, p, false); len(cc.Choices) != 1 {
		t.Fatalf("n: 1: %+v", cc.Choices)
	}
	s.records.wait(t, 1)

	for _, tc := range badChats {
		postChat(t, s.harness, tc.name, tc.body, tc.param)
	}
	postChat(t, s.harness, "n 2", `{"model":"claude-sonnet-4-5","n":2,"messages":`+userHi+`}`, "n")
	for _, stream := range []bool{false, true} {
		p.N = openai.Int(3)
		var err error
		if stream {
			st := oc.Chat.Completions.NewStreaming(context.Background(), p)
			for st.Next() {
			}
			err = st.Err()
		} else {
			_, err = oc.Chat.Completions.New(context.Background(), p)
		}
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.StatusCode != 400 || oe.Param != "n" || !strings.Contains(oe.Message, "one choice") {
			t.Errorf("openai-go with n: 3 (stream %v): %v", stream, err)
		}
	}
	refused := len(badChats) + 3
	checkRefused(t, s.records.wait(t, 1+refused)[1:])
	if n := len(s.fake.Requests()); n != 1 {
		t.Errorf("the provider received %d requests, want the one served", n)
	}
	perMinute := budget.Limit{Unit: budget.Requests, Per: budget.Minute, Max: 100}
	usd := budget.Limit{Unit: budget.USD, Per: budget.Day, Max: 100e12}
	concurrent := budget.Limit{Unit: budget.Concurrent, Max: 2}
	waitFor(t, func() bool {
		bs := read(t, ledger, perMinute, usd, concurrent)
		return bs[0].Used == 1 && bs[1].Held == 0 && bs[2].Used == 0
	})
}

// A chain whose first provider is an Anthropic one and whose fallback is
// OpenAI-compatible refuses n above 1 before any attempt: whichever
// provider would answer, the client gets the same answer.
func TestOpenAIBadInputChain(t *testing.T) {
	s := newOpenAIChain(t, envoytest.FakeOpenAIConfig{}, "claude-sonnet-4-5")
	postChat(t, s.harness, "n 2", `{"model":"claude-sonnet-4-5","n":2,"messages":`+userHi+`}`, "n")
	checkRefused(t, s.recs.wait(t, 1), s.openai, s.anthropic)
}

// The Messages API entry refuses a request without messages or max_tokens,
// in the Anthropic error shape, before anything reaches the provider.
func TestMessagesRequiredFields(t *testing.T) {
	s := newStack(t)
	for _, body := range []string{
		`{"model":"claude-sonnet-4-5","max_tokens":16}`,
		`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":"Hi"}`,
		`{"model":"claude-sonnet-4-5","messages":` + userHi + `}`,
	} {
		resp := post(t, s, "/v1/messages", body, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type, Message string
			} `json:"error"`
			RequestID string `json:"request_id"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(b, &e) != nil || e.Type != "error" || e.Error.Type != "invalid_request_error" ||
			e.RequestID == "" || !(strings.Contains(e.Error.Message, "messages") || strings.Contains(e.Error.Message, "max_tokens")) {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	checkRefused(t, s.records.wait(t, 3), s.fake)
}

// A chain anthropic → bedrock → vertex, each served through the Messages
// API, refuses n above 1 from openai-go before any of the three is tried.
func TestOpenAIBadInputClouds(t *testing.T) {
	s := newCloudsStack(t, "", "", "")
	p := chatParams("claude-sonnet-4-5", false)
	p.N = openai.Int(2)
	_, err := s.oc.Chat.Completions.New(context.Background(), p)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 400 || oe.Param != "n" {
		t.Errorf("n: 2: %v", err)
	}
	checkRefused(t, []records.Record{s.next(t)}, s.anthropic, s.bedrock)
	for _, r := range s.vertex.Requests() {
		if strings.Contains(r.Path, "Predict") {
			t.Errorf("vertex was sent %s %s", r.Method, r.Path)
		}
	}
}
