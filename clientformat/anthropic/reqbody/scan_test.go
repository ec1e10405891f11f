package reqbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		model     string
		stream    bool
		maxTokens int64
		hasMax    bool
	}{
		{"minimal", `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}`, "claude-sonnet-4-5", false, 1024, true},
		{"stream last", `{"messages":[{"role":"user","content":"hi \"there\" {]"}],"system":[{"type":"text","text":"x"}],"max_tokens":64000,"model":"claude-opus-4-8","stream":true}`, "claude-opus-4-8", true, 64000, true},
		{"whitespace", " {\n \"model\" : \"m\" ,\t\"stream\" : false } \n", "m", false, 0, false},
		{"escaped model", `{"model":"@demo\/claude-\u0041"}`, "@demo/claude-A", false, 0, false},
		{"escaped key", `{"mod\u0065l":"x"}`, "x", false, 0, false},
		{"backslash at end of string", `{"a":"\\","model":"m"}`, "m", false, 0, false},
		{"nested model ignored", `{"metadata":{"model":"inner"},"model":"outer"}`, "outer", false, 0, false},
		{"null stream", `{"model":"m","stream":null}`, "m", false, 0, false},
		{"empty object", `{}`, "", false, 0, false},
		{"zero max tokens", `{"model":"m","max_tokens":0}`, "m", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Scan([]byte(tt.body))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if f.Model != tt.model || f.Stream != tt.stream || f.MaxTokens != tt.maxTokens || f.HasMaxTokens != tt.hasMax {
				t.Errorf("got model=%q stream=%v max=%d/%v; want %q %v %d/%v", f.Model, f.Stream, f.MaxTokens, f.HasMaxTokens, tt.model, tt.stream, tt.maxTokens, tt.hasMax)
			}
			if tt.model != "" {
				var check string
				if err := json.Unmarshal([]byte(tt.body[f.ModelStart:f.ModelEnd]), &check); err != nil || check != tt.model {
					t.Errorf("model range %d:%d = %q", f.ModelStart, f.ModelEnd, tt.body[f.ModelStart:f.ModelEnd])
				}
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "empty body"},
		{"array", `[1,2]`, "JSON object"},
		{"unterminated string", `{"model":"abc`, "unterminated string"},
		{"unterminated object", `{"model":"abc"`, "unterminated object"},
		{"unbalanced", `{"messages":[{"a":1]}`, "unexpected"},
		{"missing colon", `{"model" "x"}`, "expected ':'"},
		{"trailing data", `{"model":"x"} {}`, "data after"},
		{"model not string", `{"model":42}`, "model: must be a string"},
		{"stream not bool", `{"stream":"yes"}`, "stream: must be a boolean"},
		{"max_tokens float", `{"max_tokens":1.5}`, "max_tokens: must be an integer"},
		{"bare key", `{model:"x"}`, "expected a string key"},
		{"missing value", `{"model":}`, "unexpected"},
		{"trailing comma", `{"model":"x",}`, "expected a string key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Scan([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Scan(%q) error = %v; want it to contain %q", tt.body, err, tt.want)
			}
		})
	}
	var se *SyntaxError
	if _, err := Scan([]byte(`{"a":`)); !errors.As(err, &se) {
		t.Errorf("want *SyntaxError, got %T", err)
	}
}

func TestReplaceModelKeepsEveryOtherByte(t *testing.T) {
	body := []byte(`{"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1"}],  "model" : "@demo/claude-opus-4-8" ,"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},"unknown_future_field":[1, 2.50, true]}`)
	f, err := Scan(body)
	if err != nil {
		t.Fatal(err)
	}
	got := ReplaceModel(body, f, "claude-opus-4-8")
	want := bytes.Replace(body, []byte(`"@demo/claude-opus-4-8"`), []byte(`"claude-opus-4-8"`), 1)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// claudeCodeBody builds a body shaped like Claude Code's first turn: a large
// system prompt and tools before max_tokens and model (WIRE-FORMATS section 8).
func claudeCodeBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"messages":[{"role":"user","content":[{"type":"text","text":"`)
	for b.Len() < size/2 {
		b.WriteString(`Refactor the parser so it streams; keep \"quotes\" and {braces} intact. `)
	}
	b.WriteString(`"}]}],"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332"},{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],"tools":[`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"Tool","description":"Runs a tool with a long description that goes on and on","input_schema":{"type":"object","properties":{"a":{"type":"string"}}},"defer_loading":true}`)
	}
	b.WriteString(`],"metadata":{"user_id":"{\"session_id\":\"abc\"}"},"max_tokens":64000,"thinking":{"type":"adaptive"},"context_management":{"edits":[]},"output_config":{"effort":"high"},"stream":true,"model":"claude-opus-4-8"}`)
	return b.Bytes()
}

func TestClaudeCodeShapedBody(t *testing.T) {
	body := claudeCodeBody(100 << 10)
	if !json.Valid(body) {
		t.Fatal("test body is not valid JSON")
	}
	f, err := Scan(body)
	if err != nil {
		t.Fatal(err)
	}
	if f.Model != "claude-opus-4-8" || !f.Stream || f.MaxTokens != 64000 {
		t.Fatalf("got %+v", f)
	}
}

func BenchmarkScan100KB(b *testing.B) {
	body := claudeCodeBody(100 << 10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(body); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream":true,"max_tokens":5}`))
	f.Add([]byte(`{"a":[{"b":"\\\""}],"model":"x"}`))
	f.Add(claudeCodeBody(2 << 10))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AAAA"}},{"type":"tool_result","content":[{"type":"document"}]}]}],"tools":[{"type":"bash_20250124"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := Scan(body)
		// The one-pass scan with media agrees with Scan, and so does the
		// media walk after it.
		f2, m2, err2 := ScanWithMedia(body)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Scan: %v, ScanWithMedia: %v", err, err2)
		}
		if err != nil {
			return
		}
		if f2 != fields {
			t.Fatalf("fields %+v, ScanWithMedia %+v", fields, f2)
		}
		if m := ScanMedia(body, fields); m != m2 {
			t.Fatalf("ScanMedia %+v; ScanWithMedia %+v", m, m2)
		}
		// Whatever Scan accepts with a model must agree with encoding/json when the
		// body is valid JSON.
		if !json.Valid(body) || !fields.HasModel {
			return
		}
		var v map[string]json.RawMessage
		if json.Unmarshal(body, &v) != nil {
			return
		}
		var m string
		if json.Unmarshal(v["model"], &m) == nil && m != fields.Model {
			t.Fatalf("model %q, encoding/json says %q", fields.Model, m)
		}
	})
}
