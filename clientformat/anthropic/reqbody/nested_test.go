package reqbody

import (
	"testing"
)

func TestObjectMembersAndElements(t *testing.T) {
	body := []byte(`{"a": { "k" : [1, {"x":2} ,"s"] , "e\u0073c":{} }, "b":[ ]}`)
	_, ms, err := Members(body)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := ObjectMembers(body, ms[0].Value)
	if err != nil || len(inner) != 2 || inner[0].Key != "k" || inner[1].Key != "esc" || string(body[inner[1].Value.Start:inner[1].Value.End]) != "{}" {
		t.Fatalf("members %+v %v", inner, err)
	}
	elems, err := Elements(body, inner[0].Value)
	if err != nil || len(elems) != 3 || string(body[elems[1].Start:elems[1].End]) != `{"x":2}` {
		t.Fatalf("elements %+v %v", elems, err)
	}
	if got := string(Apply(body, RemoveElements(elems, func(i int) bool { return i == 1 })...)); got != `{"a": { "k" : [1, "s"] , "e\u0073c":{} }, "b":[ ]}` {
		t.Errorf("remove middle: %s", got)
	}
	if got := string(Apply(body, RemoveElements(elems, func(i int) bool { return i > 0 })...)); got != `{"a": { "k" : [1] , "e\u0073c":{} }, "b":[ ]}` {
		t.Errorf("remove tail: %s", got)
	}
	if got := string(Apply(body, RemoveElements(elems, func(int) bool { return true })...)); got != `{"a": { "k" : [] , "e\u0073c":{} }, "b":[ ]}` {
		t.Errorf("remove all: %s", got)
	}
	if e, err := Elements(body, ms[1].Value); err != nil || len(e) != 0 {
		t.Errorf("empty array: %v %v", e, err)
	}
	if m, err := ObjectMembers(body, inner[1].Value); err != nil || len(m) != 0 {
		t.Errorf("empty object: %v %v", m, err)
	}
	if _, err := ObjectMembers(body, elems[0]); err == nil {
		t.Error("a number is an object")
	}
	if _, err := Elements(body, ms[0].Value); err == nil {
		t.Error("an object is an array")
	}
	if _, err := ObjectMembers([]byte(`{"a":1,}`), Span{0, 8}); err == nil {
		t.Error("malformed object accepted")
	}
	if _, err := Elements([]byte(`[1 2]`), Span{0, 5}); err == nil {
		t.Error("malformed array accepted")
	}
	if v, ok := String([]byte(`"\u00e9"`), Span{0, 8}); !ok || v != "é" {
		t.Errorf("String %q %v", v, ok)
	}
	if _, ok := String([]byte(`12`), Span{0, 2}); ok {
		t.Error("a number is a string")
	}
}
