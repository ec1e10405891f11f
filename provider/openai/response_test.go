package openai

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// longName is the tool name long_tool_name.anthropic.json shortens; the
// response goldens answer with its short form.
const longName = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository"

// attempt returns a translation for one attempt that sent a request with
// the long tool name.
func attempt(t *testing.T) *fromAnthropic {
	t.Helper()
	tr := (&fromAnthropic{}).ForAttempt(newSettings()).(*fromAnthropic)
	body := `{"model":"gpt-4o","max_tokens":5,"tools":[{"name":"` + longName + `","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"x"}]}`
	if _, _, err := tr.TranslateRequest("/v1/messages", nil, []byte(body), func(m string) string { return m }); err != nil {
		t.Fatal(err)
	}
	return tr
}

// respond runs TranslateResponse for a response with status and content
// type, feeding body in the given pieces; it returns the status and
// headers set, the translated body and the warnings.
func respond(t *testing.T, tr *fromAnthropic, status int, ct string, pieces [][]byte) (map[string]string, []byte, []string) {
	t.Helper()
	set := map[string]string{}
	var warns []string
	fn := tr.TranslateResponse("/v1/messages", status, func(n string) string {
		if n == "content-type" {
			return ct
		}
		return ""
	}, func(n, v string) { set[n] = v }, func(n string) { set[n] = "<removed>" }, func(k, m string) { warns = append(warns, k) })
	if fn == nil {
		t.Fatalf("no body translation for %d %s", status, ct)
	}
	var out []byte
	for i, p := range pieces {
		out = append(out, fn(p, i == len(pieces)-1)...)
	}
	return set, out, warns
}

// TestResponseJSONGolden translates each testdata/response/*.openai.json
// answer and compares with its .anthropic.json.
func TestResponseJSONGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/response/*.openai.json")
	if len(files) == 0 {
		t.Fatal("no goldens")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".openai.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			hdr, out, warns := respond(t, attempt(t), 200, "application/json", [][]byte{body[:len(body)/2], body[len(body)/2:]})
			if hdr["content-length"] != "<removed>" || hdr[":status"] != "" {
				t.Errorf("headers %v", hdr)
			}
			if name == "bad_arguments" != (len(warns) == 1) {
				t.Errorf("warnings %v", warns)
			}
			golden(t, "response/"+name+".anthropic.json", out)
		})
	}
}

// TestResponseErrors maps HTTP errors in OpenAI's shape (and others) to
// Anthropic's shape and status.
func TestResponseErrors(t *testing.T) {
	oai := func(msg, typ, code string) string {
		return `{"error":{"message":"` + msg + `","type":"` + typ + `","param":null,"code":` + code + `}}`
	}
	for _, tt := range []struct {
		status     int
		body, want string
		wantStatus string
	}{
		{400, oai("This model's maximum context length is 128000 tokens.", "invalid_request_error", `"context_length_exceeded"`),
			`{"type":"error","error":{"type":"invalid_request_error","message":"This model's maximum context length is 128000 tokens."}}`, "400"},
		{401, oai("Incorrect API key provided: sk-abc.", "invalid_request_error", `"invalid_api_key"`),
			`{"type":"error","error":{"type":"permission_error","message":"Incorrect API key provided: sk-abc."}}`, "403"},
		{404, oai("The model `gpt-9` does not exist", "invalid_request_error", `"model_not_found"`),
			`{"type":"error","error":{"type":"not_found_error","message":"The model ` + "`gpt-9`" + ` does not exist"}}`, "404"},
		{429, oai("Rate limit reached for gpt-4o.", "tokens", `"rate_limit_exceeded"`),
			`{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached for gpt-4o."}}`, "429"},
		{429, oai("You exceeded your current quota.", "insufficient_quota", `"insufficient_quota"`),
			`{"type":"error","error":{"type":"rate_limit_error","message":"You exceeded your current quota."}}`, "429"},
		{500, oai("The server had an error.", "server_error", "null"),
			`{"type":"error","error":{"type":"api_error","message":"The server had an error."}}`, "500"},
		{503, oai("The engine is currently overloaded.", "server_error", "null"),
			`{"type":"error","error":{"type":"overloaded_error","message":"The engine is currently overloaded."}}`, "529"},
		{504, `upstream request timeout`, `{"type":"error","error":{"type":"timeout_error","message":"upstream request timeout"}}`, "504"},
		{400, `{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens is too large"}}`, "400"},
		{422, `{"detail":"field required"}`, `{"type":"error","error":{"type":"invalid_request_error","message":"field required"}}`, "400"},
		{502, `{"error":"bad gateway"}`, `{"type":"error","error":{"type":"overloaded_error","message":"bad gateway"}}`, "529"},
		{418, ``, `{"type":"error","error":{"type":"invalid_request_error","message":"the provider answered 418 with no message"}}`, "400"},
	} {
		hdr, out, _ := respond(t, attempt(t), tt.status, "application/json", [][]byte{[]byte(tt.body)})
		if string(out) != tt.want || hdr[":status"] != tt.wantStatus || hdr["content-type"] != "application/json" || hdr["content-length"] != "<removed>" {
			t.Errorf("%d %s:\n got %s %s\nwant %s %s", tt.status, tt.body, hdr[":status"], out, tt.wantStatus, tt.want)
		}
	}
}

// TestResponseSSEGolden translates each testdata/response/*.openai.sse
// stream and compares with its .anthropic.sse; then again with the stream
// split at random offsets (seeded), and at every offset into two pieces,
// which must give the same bytes.
func TestResponseSSEGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/response/*.openai.sse")
	if len(files) == 0 {
		t.Fatal("no goldens")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".openai.sse")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			hdr, want, _ := respond(t, attempt(t), 200, "text/event-stream; charset=utf-8", [][]byte{body})
			if hdr["content-length"] != "<removed>" || hdr["content-type"] != "text/event-stream" || hdr["openai-organization"] != "<removed>" {
				t.Errorf("headers %v", hdr)
			}
			golden(t, "response/"+name+".anthropic.sse", want)
			for i := 0; i <= len(body); i++ {
				_, got, _ := respond(t, attempt(t), 200, "text/event-stream", [][]byte{body[:i], body[i:]})
				if !bytes.Equal(got, want) {
					t.Fatalf("split at %d:\n%s\nwant\n%s", i, got, want)
				}
			}
			rng := rand.New(rand.NewPCG(13, uint64(len(body))))
			for round := 0; round < 50; round++ {
				got := string(mustOK(respond(t, attempt(t), 200, "text/event-stream", randomSplit(rng, body))))
				if got != string(want) {
					t.Fatalf("round %d:\n%s\nwant\n%s", round, got, want)
				}
			}
		})
	}
}

func mustOK(_ map[string]string, out []byte, _ []string) []byte { return out }

// randomSplit cuts b at random offsets into 1 to 20 pieces, some empty.
func randomSplit(rng *rand.Rand, b []byte) [][]byte {
	n := 1 + rng.IntN(20)
	cuts := make([]int, 0, n+1)
	for range n - 1 {
		cuts = append(cuts, rng.IntN(len(b)+1))
	}
	cuts = append(cuts, len(b))
	slicesSort(cuts)
	var out [][]byte
	prev := 0
	for _, c := range cuts {
		out = append(out, b[prev:c])
		prev = c
	}
	return out
}

func slicesSort(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// TestStreamIsIncremental checks that each line's events come out with the
// chunk that completes it, not at the end.
func TestStreamIsIncremental(t *testing.T) {
	body, err := os.ReadFile("testdata/response/tools.openai.sse")
	if err != nil {
		t.Fatal(err)
	}
	fn := attempt(t).TranslateResponse("/v1/messages", 200, func(string) string { return "text/event-stream" },
		func(string, string) {}, func(string) {}, nil)
	lines := bytes.SplitAfter(body, []byte("\n\n"))
	var events []string
	for i, l := range lines[:len(lines)-1] {
		out := fn(l, false)
		events = append(events, fmt.Sprintf("%d:%d", i, bytes.Count(out, []byte("event: "))))
	}
	want := "0:3 1:2 2:1 3:1 4:3 5:1 6:2"
	if got := strings.Join(events, " "); got != want {
		t.Errorf("events per line %s; want %s", got, want)
	}
	if out := fn(nil, true); len(out) != 0 {
		t.Errorf("at the end: %s", out)
	}
}

// An answer without a content type is read as JSON; one of another type
// passes as it is.
func TestResponseContentTypes(t *testing.T) {
	body, err := os.ReadFile("testdata/response/text.openai.json")
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := respond(t, attempt(t), 200, "", [][]byte{body})
	if !bytes.HasPrefix(out, []byte(`{"id":"chatcmpl-1","type":"message"`)) {
		t.Errorf("no content type: %s", out)
	}
	if fn := attempt(t).TranslateResponse("/v1/messages", 200, func(string) string { return "text/plain" },
		func(string, string) {}, func(string) {}, nil); fn != nil {
		t.Error("text/plain is translated")
	}
}
