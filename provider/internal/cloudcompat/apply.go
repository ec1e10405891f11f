package cloudcompat

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat/anthropic/reqbody"
)

// Folded system messages are wrapped in these tags inside the user turn, the
// way Claude Code marks the system text it puts in user turns itself. They
// are written inside a JSON string, so the newline is its escape.
const (
	foldOpen  = `<system-reminder>\n`
	foldClose = `\n</system-reminder>`
)

// Apply returns body and betas (an anthropic-beta header's value, comma
// separated) as the configured table sends them: each beta passed, renamed
// or dropped, and each body field present passed, adapted or dropped with
// its beta. Every byte of body outside the edited members is kept; out is
// body itself when nothing in it changed. outBetas are the betas to send,
// in the client's order, without repeats. note is called once for each beta
// or field not passed as it was: key is the table's key (a beta, a field,
// or unlisted_betas, whose beta is then in detail), action what happened to
// it, detail a short description with no body content. An error means the
// body is not a JSON object.
func (c *Config) Apply(body []byte, betas string, note func(key string, action Action, detail string)) (out []byte, outBetas []string, err error) {
	fields := map[string]Action{}
	for i, r := range c.table.Rows {
		for _, f := range r.Fields {
			fields[f] = c.actions[i]
		}
	}
	for _, b := range splitBetas(betas) {
		i := -1
		for j, r := range c.table.Rows {
			if r.Beta == b {
				i = j
				break
			}
		}
		if i < 0 {
			if c.unlisted == Drop {
				note(KeyUnlistedBetas, Drop, b)
				continue
			}
			outBetas = appendNew(outBetas, b)
			continue
		}
		r := c.table.Rows[i]
		switch a := c.actions[i]; {
		case a == Pass:
			outBetas = appendNew(outBetas, b)
		case a == Adapt && r.RenameTo != "":
			note(b, Adapt, "sent as "+r.RenameTo)
			outBetas = appendNew(outBetas, r.RenameTo)
		case a == Adapt:
			note(b, Drop, "its fields are adapted")
		default:
			note(b, Drop, "")
		}
	}
	out, err = c.editBody(body, fields, note)
	return out, outBetas, err
}

// editBody makes the field edits: fields maps each listed field to its row's
// action (a renamed beta's fields pass).
func (c *Config) editBody(body []byte, fields map[string]Action, note func(string, Action, string)) ([]byte, error) {
	drop := func(f string) bool { return fields[f] == Drop }
	_, ms, err := reqbody.Members(body)
	if err != nil {
		return nil, err
	}
	var edits []reqbody.Edit
	var removeTop []string
	for _, m := range ms {
		switch m.Key {
		case "context_management":
			if drop(FieldContextManagement) {
				removeTop = append(removeTop, m.Key)
				note(FieldContextManagement, Drop, "")
			}
		case "output_config":
			e, all := c.memberEdits(body, m.Value, map[string]string{"effort": FieldEffort, "format": FieldFormat}, drop, note)
			if all {
				removeTop = append(removeTop, m.Key)
			} else {
				edits = append(edits, e...)
			}
		case "tools":
			names := map[string]string{"defer_loading": FieldDeferLoading, "strict": FieldStrict, "eager_input_streaming": FieldEagerInputStreaming}
			if !mentions(body[m.Value.Start:m.Value.End], names, drop) {
				continue // spare walking every tool
			}
			elems, err := reqbody.Elements(body, m.Value)
			if err != nil {
				continue // not an array: the provider says what is wrong
			}
			counts := map[string]int{}
			for _, el := range elems {
				e, all := c.memberEdits(body, el, names, drop, func(f string, _ Action, _ string) { counts[f]++ })
				if !all { // a tool is never emptied: a tool has a name
					edits = append(edits, e...)
				}
			}
			for _, f := range []string{FieldDeferLoading, FieldStrict, FieldEagerInputStreaming} {
				if counts[f] > 0 {
					note(f, Drop, strconv.Itoa(counts[f])+" tools")
				}
			}
		case "messages":
			switch fields[FieldSystemMessages] {
			case Drop, Adapt:
				if !bytes.Contains(body[m.Value.Start:m.Value.End], []byte(`"system"`)) {
					break // no role "system": spare walking every message
				}
				e, n := systemMessages(body, m.Value, fields[FieldSystemMessages] == Adapt)
				if n > 0 {
					edits = append(edits, e...)
					note(FieldSystemMessages, fields[FieldSystemMessages], strconv.Itoa(n)+" messages")
				}
			}
		}
	}
	if len(removeTop) > 0 {
		edits = append(edits, reqbody.RemoveMembers(ms, func(m reqbody.Member) bool { return slices.Contains(removeTop, m.Key) })...)
	}
	if len(edits) == 0 {
		return body, nil
	}
	return reqbody.Apply(body, edits...), nil
}

// mentions reports whether v holds, as a quoted string, a key of names
// whose field is dropped: a cheap test before a walk.
func mentions(v []byte, names map[string]string, drop func(string) bool) bool {
	for k, f := range names {
		if drop(f) && bytes.Contains(v, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return false
}

// memberEdits returns the edits that remove the members of the object at s
// that names maps to a dropped field, noting each; all reports that every
// member of the object would go (no edits are returned then).
func (c *Config) memberEdits(body []byte, s reqbody.Span, names map[string]string, drop func(string) bool, note func(string, Action, string)) (edits []reqbody.Edit, all bool) {
	ms, err := reqbody.ObjectMembers(body, s)
	if err != nil || len(ms) == 0 {
		return nil, false
	}
	n := 0
	gone := func(m reqbody.Member) bool { f, ok := names[m.Key]; return ok && drop(f) }
	for _, m := range ms {
		if gone(m) {
			n++
			note(names[m.Key], Drop, "")
		}
	}
	if n == 0 {
		return nil, false
	}
	if n == len(ms) {
		return nil, true
	}
	return reqbody.RemoveMembers(ms, gone), false
}

// message is one messages[] entry.
type message struct {
	span    reqbody.Span
	role    string
	content reqbody.Span
	members []reqbody.Member
}

// foldable reports whether m is a user message whose content (a string or
// an array) can take folded blocks.
func (m message) foldable(body []byte) bool {
	return m.role == "user" && m.content.Present() && (body[m.content.Start] == '"' || body[m.content.Start] == '[')
}

// systemMessages returns the edits that remove every role "system" entry of
// the messages array at s and, with fold, carry its text into the adjacent
// user turn: appended to the user message before it, or else put first in
// the user message after it, or else (no user turn next to it) the entry
// becomes a user message itself. Text is wrapped in <system-reminder> tags;
// each text block keeps its other members (cache_control), and a
// message-level cache_control goes to the last block that has none. n is the
// number of system messages.
func systemMessages(body []byte, s reqbody.Span, fold bool) (edits []reqbody.Edit, n int) {
	elems, err := reqbody.Elements(body, s)
	if err != nil {
		return nil, 0
	}
	msgs := make([]message, len(elems))
	for i, el := range elems {
		msgs[i].span = el
		_ = reqbody.EachMember(body, el, func(key []byte, v reqbody.Span) error {
			switch string(key) {
			case "role":
				msgs[i].role = roleOf(body, v)
			case "content":
				msgs[i].content = v
			}
			return nil
		})
		if msgs[i].role == "system" {
			msgs[i].members, _ = reqbody.ObjectMembers(body, el)
		}
	}
	before := map[int][][]byte{} // user message index → blocks to put first
	after := map[int][][]byte{}  // user message index → blocks to append
	var removed []int
	for i, m := range msgs {
		if m.role != "system" {
			continue
		}
		n++
		if !fold {
			removed = append(removed, i)
			continue
		}
		blocks := foldedBlocks(body, m)
		switch {
		case i > 0 && msgs[i-1].foldable(body):
			after[i-1] = append(after[i-1], blocks...)
			removed = append(removed, i)
		case i+1 < len(msgs) && msgs[i+1].foldable(body):
			before[i+1] = append(before[i+1], blocks...)
			removed = append(removed, i)
		default:
			edits = append(edits, asUserMessage(body, m, blocks)...)
		}
	}
	edits = append(edits, reqbody.RemoveElements(elems, func(i int) bool { return slices.Contains(removed, i) })...)
	for i, m := range msgs {
		if len(before[i]) > 0 || len(after[i]) > 0 {
			edits = append(edits, intoContent(body, m.content, before[i], after[i])...)
		}
	}
	return edits, n
}

// roleOf returns the role at v, without allocating for the usual ones.
func roleOf(body []byte, v reqbody.Span) string {
	switch string(body[v.Start:v.End]) {
	case `"user"`:
		return "user"
	case `"assistant"`:
		return "assistant"
	case `"system"`:
		return "system"
	}
	r, _ := reqbody.String(body, v)
	return r
}

// foldedBlocks returns the text blocks a system message becomes.
func foldedBlocks(body []byte, m message) [][]byte {
	var msgCache []byte
	for _, mm := range m.members {
		if mm.Key == "cache_control" {
			msgCache = body[mm.Value.Start:mm.Value.End]
		}
	}
	var blocks [][]byte
	hasCache := false
	switch {
	case !m.content.Present():
	case body[m.content.Start] == '"':
		blocks = append(blocks, textBlock(body[m.content.Start+1:m.content.End-1]))
	case body[m.content.Start] == '[':
		elems, _ := reqbody.Elements(body, m.content)
		for _, el := range elems {
			ms, err := reqbody.ObjectMembers(body, el)
			if err != nil {
				blocks = append(blocks, bytes.Clone(body[el.Start:el.End]))
				continue
			}
			block := bytes.Clone(body[el.Start:el.End])
			hasCache = false
			for _, bm := range ms {
				if bm.Key == "cache_control" {
					hasCache = true
				}
			}
			for _, bm := range ms {
				if bm.Key == "text" && body[bm.Value.Start] == '"' {
					open, close := bm.Value.Start+1-el.Start, bm.Value.End-1-el.Start
					block = slices.Concat(block[:open], []byte(foldOpen), block[open:close], []byte(foldClose), block[close:])
					break
				}
			}
			blocks = append(blocks, block)
		}
	}
	if msgCache != nil && len(blocks) > 0 && !hasCache {
		last := blocks[len(blocks)-1]
		if end := bytes.LastIndexByte(last, '}'); end > 0 {
			sep := []byte(`,"cache_control":`)
			if t := bytes.TrimRight(last[:end], " \t\r\n"); len(t) > 0 && t[len(t)-1] == '{' {
				sep = sep[1:] // an empty block
			}
			blocks[len(blocks)-1] = slices.Concat(last[:end], sep, msgCache, last[end:])
		}
	}
	return blocks
}

// textBlock returns a text block whose text is the JSON string contents
// inner (escapes as they are), wrapped.
func textBlock(inner []byte) []byte {
	return slices.Concat([]byte(`{"type":"text","text":"`+foldOpen), inner, []byte(foldClose+`"}`))
}

// intoContent returns the edits that put blocks first and last in the
// content at s of a user message: inserted inside an array, or around a
// string made a text block of its own.
func intoContent(body []byte, s reqbody.Span, first, last [][]byte) []reqbody.Edit {
	join := func(bs [][]byte) []byte { return bytes.Join(bs, []byte(",")) }
	if body[s.Start] == '"' {
		parts := append(append(slices.Clone(first), slices.Concat([]byte(`{"type":"text","text":`), body[s.Start:s.End], []byte(`}`))), last...)
		return []reqbody.Edit{{Span: s, Value: slices.Concat([]byte("["), join(parts), []byte("]"))}}
	}
	elems, err := reqbody.Elements(body, s)
	if err != nil || body[s.Start] != '[' {
		return nil
	}
	var edits []reqbody.Edit
	if len(first) > 0 {
		v := join(first)
		if len(elems) > 0 {
			v = append(v, ',')
		}
		edits = append(edits, reqbody.InsertAt(s.Start+1, v))
	}
	if len(last) > 0 {
		v := join(last)
		if len(elems) > 0 || len(first) > 0 {
			v = append([]byte(","), v...)
		}
		at := s.End - 1
		if len(elems) > 0 {
			at = elems[len(elems)-1].End
		}
		edits = append(edits, reqbody.InsertAt(at, v))
	}
	return edits
}

// asUserMessage returns the edits that turn a system message with no user
// turn beside it into a user message of the folded blocks.
func asUserMessage(body []byte, m message, blocks [][]byte) []reqbody.Edit {
	var edits []reqbody.Edit
	for _, mm := range m.members {
		switch mm.Key {
		case "role":
			edits = append(edits, reqbody.Edit{Span: mm.Value, Value: []byte(`"user"`)})
		case "content":
			edits = append(edits, reqbody.Edit{Span: mm.Value, Value: slices.Concat([]byte("["), bytes.Join(blocks, []byte(",")), []byte("]"))})
		}
	}
	var cache []reqbody.Member
	for _, mm := range m.members {
		if mm.Key == "cache_control" {
			cache = append(cache, mm)
		}
	}
	if len(cache) > 0 { // now on the last block
		edits = append(edits, reqbody.RemoveMembers(m.members, func(mm reqbody.Member) bool { return mm.Key == "cache_control" })...)
	}
	return edits
}

// splitBetas returns the values of an anthropic-beta header, trimmed, empty
// ones and repeats left out, in order.
func splitBetas(h string) []string {
	var out []string
	for _, v := range strings.Split(h, ",") {
		out = appendNew(out, strings.TrimSpace(v))
	}
	return out
}

func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// AdaptRequest is Apply in the form a provider's settings offer the adapter
// (extproc.RequestAdapter): the betas in and out as an anthropic-beta
// header's value, the action as a string. A provider type's settings hold a
// *Config and delegate to it in one line.
func (c *Config) AdaptRequest(body []byte, betas string, note func(key, action, detail string)) ([]byte, string, error) {
	out, list, err := c.Apply(body, betas, func(k string, a Action, d string) { note(k, string(a), d) })
	return out, strings.Join(list, ","), err
}
