package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestNeverPrinted checks that a Secret's value shows through no formatting
// or encoding path, alone or inside a struct.
func TestNeverPrinted(t *testing.T) {
	const value = "sk-ant-very-secret"
	s := Secret(value)
	holder := struct {
		Name string
		Key  Secret
	}{"a", s}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", s, "holder", holder)
	js, _ := json.Marshal(s)
	holderJS, _ := json.Marshal(holder)
	text, _ := s.MarshalText()
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%+v": fmt.Sprintf("%+v", s),
		"%#v": fmt.Sprintf("%#v", s), "%q": fmt.Sprintf("%q", s), "%x": fmt.Sprintf("%x", s),
		"%d": fmt.Sprintf("%d", s), "%10.3s": fmt.Sprintf("%10.3s", s),
		"Sprint": fmt.Sprint(s), "String": s.String(), "GoString": s.GoString(),
		"holder %v": fmt.Sprintf("%v", holder), "holder %+v": fmt.Sprintf("%+v", holder),
		"holder %#v": fmt.Sprintf("%#v", holder),
		"json":       string(js), "holder json": string(holderJS), "text": string(text),
		"slog": logged.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", []byte(value))) {
			t.Errorf("%s prints the secret: %s", how, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s = %s, want [redacted] in it", how, out)
		}
	}
	if got := s.Reveal(); got != value {
		t.Errorf("Reveal() = %q, want %q", got, value)
	}
	if string(js) != `"[redacted]"` {
		t.Errorf("json = %s, want \"[redacted]\"", js)
	}
}
