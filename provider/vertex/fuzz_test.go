package vertex

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzTranslateRequest checks both body rewrites on arbitrary JSON objects:
// the output is JSON with anthropic_version first; a Messages body loses
// model, a count_tokens body keeps it; every other member but
// anthropic_version keeps its bytes.
func FuzzTranslateRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream":true,"max_tokens":1}`), false)
	f.Add([]byte(`{"x":1,"model":"m"}`), true)
	f.Add([]byte(`{"model":"m"}`), false)
	f.Add([]byte(`{"anthropic_version":"v","model":"m@default","stream":false}`), true)
	f.Fuzz(func(t *testing.T, body []byte, count bool) {
		var in map[string]json.RawMessage
		if json.Unmarshal(body, &in) != nil || !json.Valid(body) {
			return
		}
		var model string
		if json.Unmarshal(in["model"], &model) != nil || model == "" {
			return
		}
		path := map[bool]string{false: pathMessages, true: pathCountTokens}[count]
		out, _, err := fromAnthropic{}.TranslateRequest(path, noHeaders, body, func(m string) string { return m })
		if err != nil {
			return // the scanner is stricter about duplicates and literals than encoding/json
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s -> %s: %v", body, out, err)
		}
		if !bytes.HasPrefix(out, []byte(`{"anthropic_version":"vertex-2023-10-16"`)) {
			t.Fatalf("%s -> %s", body, out)
		}
		for k, v := range in {
			switch {
			case k == "anthropic_version":
			case k == "model" && !count:
				if _, ok := got[k]; ok {
					t.Fatalf("%s -> %s: model kept", body, out)
				}
			case k == "model":
				if _, ok := got[k]; !ok {
					t.Fatalf("%s -> %s: count_tokens lost its model", body, out)
				}
			case !bytes.Equal(got[k], v):
				t.Fatalf("%s -> %s: %s changed", body, out, k)
			}
		}
	})
}
