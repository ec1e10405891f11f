package openai

import (
	"strings"
	"testing"
)

// TestParseChunk reads the fields a translation needs, as escaped string
// contents, and refuses what is not JSON, or a string whose content could
// not be copied into another JSON string.
func TestParseChunk(t *testing.T) {
	var d chunkDoc
	err := parseChunk([]byte(` {"id":"c1","model":"m\/1","choices":[{"index":1,"delta":{"content":"other"}},`+
		`{"index":0,"delta":{"content":"a\"b\u00e9\n","tool_calls":[{"index":2,"id":"t","function":{"name":"n","arguments":"{\"x\":1}"}}]},"finish_reason":null}],`+
		`"usage":{"prompt_tokens":3},"x":[1,-2.5e3,true,false,null,{}]} `), &d)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join([]string{string(d.id), string(d.model), string(d.content), string(d.finish), string(d.usage),
		string(d.tools[0].name), string(d.tools[0].args)}, "|")
	want := `c1|m\/1|a\"b\u00e9\n||{"prompt_tokens":3}|n|{\"x\":1}`
	if got != want || !d.choice || len(d.tools) != 1 || d.tools[0].index != 2 || !d.tools[0].hasIndex {
		t.Errorf("got %s\nwant %s (%+v)", got, want, d)
	}
	if unescape(d.model) != "m/1" {
		t.Errorf("unescape: %q", unescape(d.model))
	}
	for _, bad := range []string{`{"id":"a`, `{"id":"a\x"}`, "{\"id\":\"a\tb\"}", `{"id":"a"} x`, `{"id" "a"}`, `{"a":[1,}`, `{"a":tru}`,
		`{"a":"\u12G4"}`, `[]`, `{"a":1,}`} {
		if err := parseChunk([]byte(bad), &d); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
