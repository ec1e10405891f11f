package policy

import (
	"testing"

	"github.com/tollgate-dev/tollgate/provider/openai"
)

// A provider type's field takes a number or a boolean as its text, as the
// README and the example policy write them (max_output_tokens: 16384,
// stream_options: false); the type checks the text.
func TestProviderFieldScalars(t *testing.T) {
	src := "version: 1\nproviders:\n  o: {type: openai, base_url: http://x/v1, auth: none, max_output_tokens: 16384, stream_options: false, tool_name_limit: 40}\n" +
		"routes: {r: {chain: [o]}}\nkeys: [{id: k, sha256: " + HashKey("k") + "}]\n"
	p, err := Parse("p.yaml", []byte(src), LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Providers["o"].Settings.(*openai.Settings)
	if s.MaxOutputTokens != 16384 || s.StreamOptions || s.ToolNameLimit != 40 {
		t.Errorf("settings %+v", s)
	}
}
