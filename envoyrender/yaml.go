package envoyrender

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Small constructors for the YAML nodes the renderer writes.

func str(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func num(v int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
}

// duration writes d in seconds, as protojson requires of a Duration ("0.2s",
// "120s"), with at most millisecond precision.
func duration(d time.Duration) *yaml.Node {
	s := strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return str(s + "s")
}

// mapping returns a block mapping of the key-value pairs kv (keys are
// strings, values nodes).
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

// flow returns n in flow style ({a: 1} or [1, 2]).
func flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

func seq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

// typed returns a mapping that starts with "@type": type.googleapis.com/t.
func typed(t string, kv ...any) *yaml.Node {
	key := str("@type")
	key.Style = yaml.DoubleQuotedStyle
	n := mapping(kv...)
	n.Content = append([]*yaml.Node{key, str("type.googleapis.com/" + t)}, n.Content...)
	return n
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// path follows keys from m through nested mappings.
func path(m *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		m = get(m, k)
	}
	return m
}

// set puts key: v into mapping m, replacing an existing value in place or
// appending.
func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, str(key), v)
}

// remove deletes key from mapping m and returns its value, or nil.
func remove(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return v
		}
	}
	return nil
}

// copier deep-copies template nodes into the output. The first copy of an
// anchored node keeps the anchor, later copies become aliases of it, so a
// template shared by several clusters is written once. Comments are kept on
// the first copy of each template only.
type copier struct {
	anchors map[string]*yaml.Node // anchor name -> its node in the output
	used    map[*yaml.Node]bool   // templates copied once already
}

func newCopier() *copier {
	return &copier{anchors: map[string]*yaml.Node{}, used: map[*yaml.Node]bool{}}
}

// template returns a copy of the template t.
func (c *copier) template(t *yaml.Node) *yaml.Node {
	comments := !c.used[t]
	c.used[t] = true
	return c.copy(t, comments)
}

func (c *copier) copy(n *yaml.Node, comments bool) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return c.copy(n.Alias, comments)
	}
	if n.Anchor != "" {
		if a, ok := c.anchors[n.Anchor]; ok {
			return &yaml.Node{Kind: yaml.AliasNode, Value: n.Anchor, Alias: a}
		}
	}
	out := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Anchor: n.Anchor}
	if comments {
		out.HeadComment, out.LineComment, out.FootComment = n.HeadComment, n.LineComment, n.FootComment
	}
	if n.Anchor != "" {
		c.anchors[n.Anchor] = out
	}
	for _, ch := range n.Content {
		out.Content = append(out.Content, c.copy(ch, comments))
	}
	return out
}

// encode writes the document in the layout of the hand-written file: two
// spaces, sequences not indented under their key, a blank line before each
// top-level key and each listener and cluster (with the comments above it).
func encode(doc *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	e := yaml.NewEncoder(&b)
	e.SetIndent(2)
	e.CompactSeqIndent()
	if err := e.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := e.Close(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return spaceOut(b.Bytes()), nil
}

// spaceOut inserts the blank lines yaml.v3 drops: before a top-level key, and
// before a key or list item at the second level ("  clusters:", "  - name:"),
// each with the comment lines just above it, unless it comes first under its
// parent.
func spaceOut(src []byte) []byte {
	lines := strings.SplitAfter(string(src), "\n")
	blankBefore := make([]bool, len(lines))
	for i, l := range lines {
		var indent string
		switch {
		case l == "" || l == "\n" || strings.HasPrefix(l, "#"):
			continue
		case !strings.HasPrefix(l, " "):
			indent = ""
		case strings.HasPrefix(l, "  ") && len(l) > 2 && l[2] != ' ' && l[2] != '#':
			indent = "  "
		default:
			continue
		}
		j := i
		for j > 0 && strings.HasPrefix(lines[j-1], indent+"#") {
			j--
		}
		switch {
		case j == 0 && i > 0:
			// The file's opening comment stands apart from the first key.
			blankBefore[i] = true
		case j > 0 && !strings.HasSuffix(strings.TrimRight(lines[j-1], "\n"), ":"):
			blankBefore[j] = true
		}
	}
	var b strings.Builder
	for i, l := range lines {
		if blankBefore[i] {
			b.WriteString("\n")
		}
		b.WriteString(l)
	}
	return []byte(b.String())
}
