package openaichat

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got, indented when it is JSON, with the file name under
// testdata, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var ind bytes.Buffer
	if json.Valid(got) {
		if err := json.Indent(&ind, got, "", "  "); err != nil {
			t.Fatal(err)
		}
		ind.WriteByte('\n')
		got = ind.Bytes()
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestRequestGolden translates every testdata/request/*.openai.json (one or
// more per row of the WIRE-FORMATS section 6 mapping table, in the reverse
// direction; testdata/README.md says which) and compares with its
// .anthropic.json.
func TestRequestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/request/*.openai.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".openai.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, model, err := Request(body, func(m string) string { return m + "-mapped" })
			if err != nil {
				t.Fatal(err)
			}
			if model != "claude-sonnet-4-5" {
				t.Errorf("model %q; want the client's", model)
			}
			golden(t, "request/"+name+".anthropic.json", out)
		})
	}
}

// Requests with no Messages API equivalent are refused, with the reason.
func TestRequestRefusals(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`[]`, "does not decode"},
		{`{"model":"m","messages":[{"role":"function","content":"x"}]}`, `role "function"`},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{"}}]}]}`, "arguments are not JSON"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "input_audio"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "base64"},
		{`{"model":"m","messages":[],"stop":3}`, "stop must be"},
		{`{"model":"m","messages":[],"tools":[{"type":"custom"}]}`, `tool type "custom"`},
		{`{"model":"m","messages":[],"tool_choice":"sometimes"}`, `"sometimes"`},
	} {
		if _, _, err := Request([]byte(tt.body), identity); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.body, err, tt.want)
		}
	}
}

// errorStatus returns the status a response golden's name gives
// (error_NNN), or 200.
func errorStatus(name string) int {
	if rest, ok := strings.CutPrefix(name, "error_"); ok {
		if n, err := strconv.Atoi(rest); err == nil {
			return n
		}
	}
	return 200
}

// respond runs Response over body, in chunks of size n (all at once when
// n is 0), and returns the output, the headers set (":status" included) and
// those removed.
func respond(t *testing.T, contentType string, status int, body []byte, n int) ([]byte, map[string]string, []string) {
	t.Helper()
	hdr := map[string]string{"content-type": contentType, "date": "Fri, 04 Dec 2026 09:00:00 GMT", "content-length": "1"}
	set := map[string]string{}
	var removed []string
	fn := Response(PathChat, "claude-sonnet-4-5", status, func(k string) string { return hdr[k] },
		func(k, v string) { set[k] = v }, func(k string) { removed = append(removed, k) })
	if fn == nil {
		t.Fatalf("%s %d: the body would pass untranslated", contentType, status)
	}
	if n == 0 {
		n = len(body)
	}
	var out []byte
	for len(body) > n {
		out = append(out, fn(body[:n], false)...)
		body = body[n:]
	}
	return append(out, fn(body, true)...), set, removed
}

// TestResponseJSONGolden translates every testdata/response/*.anthropic.json
// (a Message, or an error body for a name error_NNN with that status) into
// its .openai.json: the rows Stop → finish and Usage of the mapping table,
// tool_use as tool_calls, thinking left out, errors in OpenAI's shape.
func TestResponseJSONGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/response/*.anthropic.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	wantStatus := map[int]string{529: "503"} // the others keep theirs
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".anthropic.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			status := errorStatus(name)
			out, set, removed := respond(t, "application/json", status, body, 0)
			if set[":status"] != wantStatus[status] || len(removed) != 1 || removed[0] != "content-length" {
				t.Errorf("status set %q, removed %v", set[":status"], removed)
			}
			golden(t, "response/"+name+".openai.json", out)
		})
	}
}

// TestResponseSSEGolden translates every testdata/response/*.anthropic.sse
// into its .openai.sse, whole and in chunks of every size from 1 to 64
// bytes (the same output each time): the role first, text as content
// deltas, tool_use as tool_calls with their index and argument fragments,
// the finish_reason, a usage chunk and data: [DONE]; thinking left out,
// pings as SSE comments; an error event as an error chunk.
func TestResponseSSEGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/response/*.anthropic.sse")
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".anthropic.sse")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			whole, _, _ := respond(t, "text/event-stream; charset=utf-8", 200, body, 0)
			golden(t, "response/"+name+".openai.sse", whole)
			// openai-go accumulates the chunks, and every tool call's
			// arguments parse (a tool called without input included).
			var acc openai.ChatCompletionAccumulator
			for _, line := range strings.Split(string(whole), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || data == "[DONE]" || strings.HasPrefix(data, `{"error"`) {
					continue
				}
				var c openai.ChatCompletionChunk
				if err := json.Unmarshal([]byte(data), &c); err != nil || !acc.AddChunk(c) {
					t.Fatalf("chunk %s: %v", data, err)
				}
			}
			for _, ch := range acc.Choices {
				for _, tc := range ch.Message.ToolCalls {
					if !json.Valid([]byte(tc.Function.Arguments)) {
						t.Errorf("tool call %s: arguments %q do not parse", tc.ID, tc.Function.Arguments)
					}
				}
			}
			for n := 1; n <= 64; n++ {
				if got, _, _ := respond(t, "text/event-stream", 200, body, n); !bytes.Equal(got, whole) {
					t.Fatalf("in chunks of %d bytes:\n%s\nwhole:\n%s", n, got, whole)
				}
			}
		})
	}
}

// The models answers of the Anthropic API become OpenAI's: the list as
// {"object":"list","data":[...]}, one model as a model object (created from
// created_at, owned_by anthropic); an error in OpenAI's shape; another
// content type passes.
func TestModelsResponse(t *testing.T) {
	call := func(path string, status int, ct, body string) (string, bool) {
		fn := Response(path, "", status, func(k string) string { return map[string]string{"content-type": ct}[k] },
			func(string, string) {}, func(string) {})
		if fn == nil {
			return "", false
		}
		return string(fn([]byte(body), true)), true
	}
	list := `{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},` +
		`{"type":"model","id":"claude-x","display_name":"X"}],"first_id":"claude-sonnet-4-5","last_id":"claude-x","has_more":false}`
	for _, tt := range []struct{ path, ct, body, want string }{
		{"/v1/models?limit=100", "application/json", list, `{"data":[{"created":1759104000,"id":"claude-sonnet-4-5","object":"model","owned_by":"anthropic"},` +
			`{"created":0,"id":"claude-x","object":"model","owned_by":"anthropic"}],"object":"list"}`},
		{"/v1/models/", "application/json", `{"data":[]}`, `{"data":[],"object":"list"}`},
		{"/v1/models/claude-sonnet-4-5", "application/json; charset=utf-8", `{"type":"model","id":"claude-sonnet-4-5","created_at":"2025-09-29T00:00:00Z"}`,
			`{"created":1759104000,"id":"claude-sonnet-4-5","object":"model","owned_by":"anthropic"}`},
		{"/v1/models/claude-sonnet-4-5", "application/json", `{}`, `{"error":{"code":"api_error","message":"the provider's model answer does not decode","param":null,"type":"server_error"}}`},
	} {
		if got, ok := call(tt.path, 200, tt.ct, tt.body); !ok || got != tt.want {
			t.Errorf("%s: %s; want %s", tt.path, got, tt.want)
		}
	}
	if got, _ := call("/v1/models/x", 404, "application/json", `{"type":"error","error":{"type":"not_found_error","message":"no x"}}`); got !=
		`{"error":{"code":"not_found_error","message":"no x","param":null,"type":"invalid_request_error"}}` {
		t.Errorf("404: %s", got)
	}
	if _, ok := call("/v1/models", 200, "text/plain", "x"); ok {
		t.Error("text/plain translated")
	}
}

// A content_block_delta read without decoding (type first, the usual form)
// gives the chunk encoding/json's path gives for the same event with its
// members in another order: text and arguments with escapes, unicode and
// quotes included.
func TestDeltaFastPathAgrees(t *testing.T) {
	start := `event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}}` + "\n\n" +
		`data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}` + "\n\n"
	for _, d := range []string{
		`{"type":"text_delta","text":"plain"}`,
		`{"type":"text_delta","text":"line\nbreak \"quoted\" \u00e9 é 🙂 \\ \/ \t"}`,
		`{"type":"text_delta","text":""}`,
		`{"type":"input_json_delta","partial_json":"{\"a\": \"x\\ny\u00e9\""}`,
		`{"type":"thinking_delta","thinking":"hm"}`,
		`{"type":"signature_delta","signature":"s"}`,
	} {
		index := "0"
		if strings.Contains(d, "input_json") {
			index = "1"
		}
		fast := `data: {"type":"content_block_delta","index":` + index + `,"delta":` + d + "}\n\n"
		slow := `data: {"index":` + index + `,"delta":` + d + `,"type":"content_block_delta"}` + "\n\n"
		got := func(ev string) string {
			out, _, _ := respond(t, "text/event-stream", 200, []byte(start+ev), 0)
			return string(out)
		}
		decoded := func(out string) []any {
			var chunks []any
			for _, line := range strings.Split(out, "\n") {
				if data, ok := strings.CutPrefix(line, "data: "); ok {
					var v any
					if err := json.Unmarshal([]byte(data), &v); err != nil {
						t.Errorf("%s: invalid chunk %s", d, data)
					}
					chunks = append(chunks, v)
				}
			}
			return chunks
		}
		f, s := got(fast), got(slow)
		if !reflect.DeepEqual(decoded(f), decoded(s)) {
			t.Errorf("%s:\nfast %s\nslow %s", d, f, s)
		}
	}
}
