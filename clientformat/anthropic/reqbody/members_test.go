package reqbody

import (
	"encoding/json"
	"testing"
)

func TestMembers(t *testing.T) {
	body := []byte(`{ "model" : "m", "a\"b":[1,{"x":"}"}], "stream":true }`)
	f, ms, err := Members(body)
	if err != nil {
		t.Fatal(err)
	}
	if !f.HasModel || f.Model != "m" || !f.Stream {
		t.Errorf("fields %+v", f)
	}
	want := []struct{ key, keyText, val string }{
		{"model", `"model"`, `"m"`}, {`a"b`, `"a\"b"`, `[1,{"x":"}"}]`}, {"stream", `"stream"`, `true`},
	}
	if len(ms) != len(want) {
		t.Fatalf("members %+v", ms)
	}
	for i, w := range want {
		m := ms[i]
		if m.Key != w.key || string(body[m.KeySpan.Start:m.KeySpan.End]) != w.keyText || string(body[m.Value.Start:m.Value.End]) != w.val {
			t.Errorf("member %d: %q %q %q", i, m.Key, body[m.KeySpan.Start:m.KeySpan.End], body[m.Value.Start:m.Value.End])
		}
	}
}

// TestRemoveMembers removes every subset of the members of a few bodies and
// checks that what is left is valid JSON with exactly the kept members, each
// byte of theirs as it was.
func TestRemoveMembers(t *testing.T) {
	for _, body := range []string{
		`{"a":1,"b":"x","c":[2],"d":{"e":3}}`,
		"{ \"a\" : 1 ,\n \"b\":2 }",
		`{"only":true}`,
	} {
		_, ms, err := Members([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		for set := 0; set < 1<<len(ms); set++ {
			removed := map[string]bool{}
			for i, m := range ms {
				if set&(1<<i) != 0 {
					removed[m.Key] = true
				}
			}
			edits := RemoveMembers(ms, func(m Member) bool { return removed[m.Key] })
			edits = append([]Edit{InsertAt(ms[0].KeySpan.Start, nil)}, edits...)
			out := Apply([]byte(body), edits...)
			var got map[string]json.RawMessage
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s minus %v: %s is not JSON: %v", body, removed, out, err)
			}
			for _, m := range ms {
				v, ok := got[m.Key]
				if ok == removed[m.Key] || (ok && string(v) != body[m.Value.Start:m.Value.End]) {
					t.Errorf("%s minus %v: %s", body, removed, out)
				}
			}
		}
	}
}
