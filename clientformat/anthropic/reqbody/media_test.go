package reqbody

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScanMedia(t *testing.T) {
	b64 := strings.Repeat("iVBORw0KGgo", 100) // 1,100 bytes
	tests := []struct {
		name string
		body string
		want Media
	}{
		{"text only", `{"model":"m","messages":[{"role":"user","content":"an image of a document"}]}`, Media{}},
		{"base64 image", `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + b64 + `"}},{"type":"text","text":"what is it?"}]}]}`,
			Media{Images: 1, Base64Bytes: len(b64) + 2}},
		{"URL and file images, keys in any order, spaces", `{"messages": [{"content": [{"source": {"type": "url", "url": "https://x/y.png"}, "type": "image"}, {"type": "image", "source": {"type": "file", "file_id": "file_1"}}], "role": "user"}]}`,
			Media{Images: 2}},
		{"escaped type", `{"messages":[{"role":"user","content":[{"type":"\u0069mage","source":{"type":"url","url":"u"}}]}]}`, Media{Images: 1}},
		{"image in a tool result", `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + b64 + `"}}]}]}]}`,
			Media{Images: 1, Base64Bytes: len(b64) + 2}},
		{"document", `{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0"}}]}]}`, Media{Documents: 1}},
		// A tool's input is text the model reads: an "image" there is not one,
		// and its "data" is not taken off the text.
		{"image-shaped tool input", `{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{"type":"image","source":{"type":"base64","data":"` + b64 + `"}}}]}]}`, Media{}},
		{"tools", `{"tools":[{"name":"Read","input_schema":{"type":"object"}},{"type":"bash_20250124","name":"bash"},{"type":"custom","name":"x","input_schema":{}}],"messages":[]}`,
			Media{Tools: 3, TypedTools: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			f, err := Scan(body)
			if err != nil {
				t.Fatal(err)
			}
			got := ScanMedia(body, f)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("media (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetMaxTokensAndThinking(t *testing.T) {
	body := []byte(`{"model":"@r/claude-opus-5-5","max_tokens":128000,"thinking":{"type":"enabled","budget_tokens":31999},"messages":[]}`)
	f, err := Scan(body)
	if err != nil {
		t.Fatal(err)
	}
	n, at, ok := ThinkingBudget(body, f)
	if !ok || n != 31999 {
		t.Fatalf("thinking budget %d %v", n, ok)
	}
	out := Apply(body, IntEdit(at, 2000), IntEdit(Span{f.MaxTokensStart, f.MaxTokensEnd}, 8000), ModelEdit(f, "claude-opus-5-5"))
	want := `{"model":"claude-opus-5-5","max_tokens":8000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	for _, b := range []string{`{"thinking":{"type":"adaptive"}}`, `{"thinking":{"type":"disabled"}}`, `{"max_tokens":5}`} {
		f, _ := Scan([]byte(b))
		if _, _, ok := ThinkingBudget([]byte(b), f); ok {
			t.Errorf("%s: thinking budget found", b)
		}
	}
}

// TestScanWithMedia: one pass gives what Scan and ScanMedia give, and
// malformed bodies are errors, never panics.
func TestScanWithMedia(t *testing.T) {
	body := []byte(`{"model":"m","tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"u"}}]}],"max_tokens":5}`)
	f, m, err := ScanWithMedia(body)
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := Scan(body)
	m2 := ScanMedia(body, f2)
	if diff := cmp.Diff(f2, f); diff != "" {
		t.Errorf("fields (-Scan +ScanWithMedia):\n%s", diff)
	}
	if m != m2 || m != (Media{Images: 1, Tools: 1, TypedTools: 1}) {
		t.Errorf("media %+v, ScanMedia %+v", m, m2)
	}
	for i := range body {
		_, _, _ = ScanWithMedia(body[:i]) // must not panic
	}
	for _, bad := range []string{`{"messages":[{"content":[}]}`, `{"messages":[{"content":[{"type":"image"}]}`, `{"tools":[{"type":}`, `{"messages":`} {
		if _, _, err := ScanWithMedia([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
