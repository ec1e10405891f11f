package cache

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, in string
		exclude  []string
		want     string
	}{
		{"sorted and compact", "{ \"b\" : 1 ,\n\t\"a\" : [ 2 , {\"z\":null,\"y\":true} ] }", nil, `{"a":[2,{"y":true,"z":null}],"b":1}`},
		{"nested unsorted", `{"b":{"d":{"f":1,"e":2},"c":3},"a":[{"y":1,"x":{"q":1,"p":2}},{"k":{}}]}`, nil, `{"a":[{"x":{"p":2,"q":1},"y":1},{"k":{}}],"b":{"c":3,"d":{"e":2,"f":1}}}`},
		{"exclude in an unsorted nest", `{"z":1,"metadata":{"user_id":"x","b":{"d":1,"c":2},"a":0}}`, []string{"metadata.user_id", "metadata.b.d"}, `{"metadata":{"a":0,"b":{"c":2}},"z":1}`},
		{"numbers as written", `{"x":1.0,"y":1e3,"z":-0}`, nil, `{"x":1.0,"y":1e3,"z":-0}`},
		{"strings as written", `{"s":"a\u0041\"b"}`, nil, `{"s":"a\u0041\"b"}`},
		{"empty containers", `{"a":{},"b":[]}`, nil, `{"a":{},"b":[]}`},
		{"exclude nested", `{"metadata":{"user_id":"u_session_1","x":1},"model":"m"}`, []string{"metadata.user_id"}, `{"metadata":{"x":1},"model":"m"}`},
		{"exclude first and last", `{"a":1,"b":2,"c":3}`, []string{"a", "c"}, `{"b":2}`},
		{"exclude only in objects", `{"a":[{"b":1}]}`, []string{"a.b"}, `{"a":[{"b":1}]}`},
		{"exclude absent", `{"a":1}`, []string{"metadata.user_id"}, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in), tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestCanonicalAmbiguous: repeated member names, or names with escapes
// (which could repeat a name in another spelling), are refused, since
// parsers disagree on their meaning; a repeated excluded member is dropped.
func TestCanonicalAmbiguous(t *testing.T) {
	for _, in := range []string{`{"b":1,"a":2,"b":3}`, `{"a":1,"\u0061":2}`, `{"x":[{"k":1,"k":1}]}`, `{"a":{},"a":{}}`} {
		if got, err := Canonical([]byte(in), nil); !errors.Is(err, ErrAmbiguousNames) {
			t.Errorf("Canonical(%s) = %s, %v; want ErrAmbiguousNames", in, got, err)
		}
	}
	if got, err := Canonical([]byte(`{"m":{"u":1,"u":2},"a":1}`), []string{"m.u"}); err != nil || string(got) != `{"a":1,"m":{}}` {
		t.Errorf("repeated excluded member: %s, %v", got, err)
	}
}

func TestCanonicalRejects(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1 2]`, `"abc`, `{"a":01x}`, `{} {}`, `tru`, strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)} {
		if got, err := Canonical([]byte(in), nil); err == nil {
			t.Errorf("Canonical(%q) = %q, want an error", in, got)
		}
	}
}

func baseKey() KeyInput {
	return KeyInput{
		Body:     []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"user_abc_account_def_session_1"}}`),
		Exclude:  []string{"metadata.user_id"},
		Endpoint: "POST /v1/messages?beta=true", ClientFormat: "anthropic",
		Route: "default", Model: "claude-sonnet-4-5", Scope: "team:platform",
		Headers: []Header{{"anthropic-version", "2023-06-01"}, {"anthropic-beta", "a,b"}},
	}
}

func mustKey(t *testing.T, in KeyInput) Key {
	t.Helper()
	k, err := NewKey(in)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeySame lists inputs that must give the base key: the body's member
// order and whitespace, an excluded field, the order of the headers.
func TestKeySame(t *testing.T) {
	base := mustKey(t, baseKey())
	for name, edit := range map[string]func(*KeyInput){
		"member order": func(in *KeyInput) {
			in.Body = []byte(`{"metadata":{"user_id":"user_abc_account_def_session_1"},"messages":[{"content":"hi","role":"user"}],"max_tokens":1024,"model":"claude-sonnet-4-5"}`)
		},
		"whitespace": func(in *KeyInput) {
			in.Body = []byte("{\n  \"model\": \"claude-sonnet-4-5\",\n  \"max_tokens\": 1024,\n  \"messages\": [ {\"role\": \"user\", \"content\": \"hi\"} ],\n  \"metadata\": {\"user_id\": \"user_abc_account_def_session_1\"}\n}\n")
		},
		"excluded field differs": func(in *KeyInput) {
			in.Body = []byte(strings.Replace(string(in.Body), "session_1", "session_2", 1))
		},
		"header order": func(in *KeyInput) { in.Headers[0], in.Headers[1] = in.Headers[1], in.Headers[0] },
	} {
		in := baseKey()
		edit(&in)
		if got := mustKey(t, in); got != base {
			t.Errorf("%s: the key changed", name)
		}
	}
}

// TestKeyDiffers lists inputs that must change the key: the model, a beta
// header, the team, one byte of the body, and each other field.
func TestKeyDiffers(t *testing.T) {
	base := mustKey(t, baseKey())
	seen := map[Key]string{base: "base"}
	for name, edit := range map[string]func(*KeyInput){
		"model":            func(in *KeyInput) { in.Model = "claude-opus-4-5" },
		"beta header":      func(in *KeyInput) { in.Headers[1].Value = "a,b,c" },
		"no beta header":   func(in *KeyInput) { in.Headers = in.Headers[:1] },
		"version header":   func(in *KeyInput) { in.Headers[0].Value = "2024-01-01" },
		"team":             func(in *KeyInput) { in.Scope = "team:research" },
		"key scope":        func(in *KeyInput) { in.Scope = "key:platform" },
		"route":            func(in *KeyInput) { in.Route = "other" },
		"endpoint":         func(in *KeyInput) { in.Endpoint = "POST /v1/messages" },
		"client format":    func(in *KeyInput) { in.ClientFormat = "openai" },
		"one byte of body": func(in *KeyInput) { in.Body = []byte(strings.Replace(string(in.Body), `"hi"`, `"hj"`, 1)) },
		"stream": func(in *KeyInput) {
			in.Body = []byte(strings.Replace(string(in.Body), `{"model"`, `{"stream":true,"model"`, 1))
		},
		"user_id kept":      func(in *KeyInput) { in.Exclude = nil },
		"number spelling":   func(in *KeyInput) { in.Body = []byte(strings.Replace(string(in.Body), "1024", "1024.0", 1)) },
		"fields run across": func(in *KeyInput) { in.Route, in.Model = "defaultclaude", "-sonnet-4-5" },
	} {
		in := baseKey()
		edit(&in)
		got := mustKey(t, in)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: same key as %s", name, prev)
		}
		seen[got] = name
	}
}

func TestKeyNotJSON(t *testing.T) {
	in := baseKey()
	in.Body = []byte(`{"model":`)
	if _, err := NewKey(in); err == nil {
		t.Fatal("NewKey accepted a body that is not JSON")
	}
}

func BenchmarkCanonical100KB(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"system":[{"type":"text","text":"You are Claude Code."}],"messages":[`)
	for i := 0; sb.Len() < 100<<10; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"role":"user","content":[{"type":"text","text":"` + strings.Repeat("lorem ipsum dolor sit amet ", 40) + `"}]}`)
	}
	sb.WriteString(`],"metadata":{"user_id":"user_x_account_y_session_z"}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewKey(KeyInput{Body: body, Exclude: []string{"metadata.user_id"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKeyLongStrings checks the key over pieces longer than its gathering
// buffer: member order still does not matter, the last byte still does.
func TestKeyLongStrings(t *testing.T) {
	long := strings.Repeat("abcdefgh", 2000)
	in := KeyInput{Body: []byte(`{"a":"` + long + `","b":[1,"` + long[:3000] + `"]}`)}
	a := mustKey(t, in)
	in.Body = []byte(`{"b":[1,"` + long[:3000] + `"],"a":"` + long + `"}`)
	if mustKey(t, in) != a {
		t.Error("member order changed the key")
	}
	in.Body = []byte(`{"b":[1,"` + long[:3000] + `"],"a":"` + long[:len(long)-1] + `X"}`)
	if mustKey(t, in) == a {
		t.Error("the last byte of a long string did not change the key")
	}
}
