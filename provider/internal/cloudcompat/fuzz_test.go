package cloudcompat

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzApply: whatever valid JSON object comes in, what Bedrock's and
// Vertex's tables send is valid JSON, and a body with nothing to adapt comes
// back as it was.
func FuzzApply(f *testing.F) {
	if b, err := os.ReadFile("../../../extproc/e2e/testdata/claude-code-request.json"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{"messages":[{"role":"system","content":null},{"role":"user","content":null}]}`,
		`{"messages":[{"role":"user","content":[]},{"role":"system","content":[1,{"text":"a"}],"cache_control":{}}]}`,
		`{"messages":[{"role":"system","content":"a"}],"tools":[{"strict":true,"eager_input_streaming":1}],"output_config":{"format":1,"effort":2}}`,
		`{"tools":[1,[],{}],"output_config":[],"messages":{},"context_management":null}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v map[string]any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		for _, tb := range []Table{Bedrock(), Vertex()} {
			out, _, err := New(tb).Apply(body, "effort-2025-11-24", func(string, Action, string) {})
			if err != nil {
				return // the scanner's stricter view of a body encoding/json takes
			}
			if !json.Valid(out) {
				t.Fatalf("%s: invalid JSON from %s:\n%s", tb.Provider, body, out)
			}
			var in, got map[string]json.RawMessage
			_ = json.Unmarshal(body, &in)
			_ = json.Unmarshal(out, &got)
			if !bytes.Equal(in["system"], got["system"]) {
				t.Fatalf("%s: system %s became %s", tb.Provider, in["system"], got["system"])
			}
		}
	})
}
