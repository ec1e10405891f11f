package reqbody

// ObjectMembers returns the members of the object whose value is at s in
// body (a Member's Value, or an element from Elements), in document order,
// with their key and value spans, for an edit inside a nested object
// (RemoveMembers, InsertAt). It returns a *SyntaxError when the value at s is
// not an object.
func ObjectMembers(body []byte, s Span) ([]Member, error) {
	if !s.Present() || s.End > len(body) || body[s.Start] != '{' {
		return nil, &SyntaxError{Offset: s.Start, Msg: "expected an object"}
	}
	var ms []Member
	i := skipSpace(body, s.Start+1)
	if i < len(body) && body[i] == '}' {
		return nil, nil
	}
	for i < s.End {
		if body[i] != '"' {
			return nil, &SyntaxError{Offset: i, Msg: "expected a string key"}
		}
		end, escaped, err := skipString(body, i)
		if err != nil {
			return nil, err
		}
		key := body[i+1 : end-1]
		if escaped {
			key = unescapeKey(body[i:end])
		}
		keySpan := Span{i, end}
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return nil, &SyntaxError{Offset: i, Msg: "expected ':' after key"}
		}
		i = skipSpace(body, i+1)
		vend, err := skipValue(body, i)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Member{Key: string(key), KeySpan: keySpan, Value: Span{i, vend}})
		i = skipSpace(body, vend)
		if i >= len(body) {
			break
		}
		switch body[i] {
		case '}':
			return ms, nil
		case ',':
			i = skipSpace(body, i+1)
		default:
			return nil, &SyntaxError{Offset: i, Msg: "expected ',' or '}'"}
		}
	}
	return nil, &SyntaxError{Offset: s.Start, Msg: "unterminated object"}
}

// Elements returns the spans of the elements of the array whose value is at
// s in body, in order. It returns a *SyntaxError when the value at s is not
// an array.
func Elements(body []byte, s Span) ([]Span, error) {
	if !s.Present() || s.End > len(body) || body[s.Start] != '[' {
		return nil, &SyntaxError{Offset: s.Start, Msg: "expected an array"}
	}
	var out []Span
	i := skipSpace(body, s.Start+1)
	if i < len(body) && body[i] == ']' {
		return nil, nil
	}
	for i < s.End {
		end, err := skipValue(body, i)
		if err != nil {
			return nil, err
		}
		out = append(out, Span{i, end})
		i = skipSpace(body, end)
		if i >= len(body) {
			break
		}
		switch body[i] {
		case ']':
			return out, nil
		case ',':
			i = skipSpace(body, i+1)
		default:
			return nil, &SyntaxError{Offset: i, Msg: "expected ',' or ']'"}
		}
	}
	return nil, &SyntaxError{Offset: s.Start, Msg: "unterminated array"}
}

// RemoveElements returns the edits that remove the elements of an array
// (from Elements) that remove reports true for, each with the comma that
// joined it to its neighbours, like RemoveMembers for members.
func RemoveElements(elems []Span, remove func(i int) bool) []Edit {
	ms := make([]Member, len(elems))
	for i, e := range elems {
		// An element is its own key: RemoveMembers cuts from a key's
		// start to the next key's, or from the previous value's end.
		ms[i] = Member{KeySpan: e, Value: e}
	}
	at := make(map[int]int, len(elems))
	for i, e := range elems {
		at[e.Start] = i
	}
	return RemoveMembers(ms, func(m Member) bool { return remove(at[m.Value.Start]) })
}

// String returns the decoded value of the JSON string at s in body; ok is
// false when the value there is not a string.
func String(body []byte, s Span) (v string, ok bool) {
	if !s.Present() || s.End > len(body) || body[s.Start] != '"' {
		return "", false
	}
	v, err := decodeString(body[s.Start:s.End])
	return v, err == nil
}

// EachMember calls fn with each key (unescaped) and value span of the object
// whose value is at s in body, in document order, without allocating for
// keys that have no escapes; an error from fn stops the walk and is
// returned. It returns a *SyntaxError when the value at s is not an object.
func EachMember(body []byte, s Span, fn func(key []byte, val Span) error) error {
	if !s.Present() || s.End > len(body) || body[s.Start] != '{' {
		return &SyntaxError{Offset: s.Start, Msg: "expected an object"}
	}
	_, err := members(body, s.Start, fn)
	return err
}
