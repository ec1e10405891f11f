package openai

import (
	"crypto/sha256"
	"encoding/hex"
)

// hashSuffixLen is the length of a shortened tool name's suffix: "_" and 8
// hex digits of the SHA-256 of the whole name.
const hashSuffixLen = 9

// toolNames shortens the tool names of one attempt's request that exceed
// the provider's limit, and restores them in its answer. A shortened name
// is the name's first limit-9 bytes, "_" and 8 hex digits of its SHA-256:
// stable across the turns of a conversation, and distinct for names that
// share a prefix. The zero value with limit 0 shortens nothing.
type toolNames struct {
	limit int
	// short maps each shortened name to the name it stands for.
	short map[string]string
}

// shorten returns the name to send for name.
func (t *toolNames) shorten(name string) string {
	if t.limit == 0 || len(name) <= t.limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	s := name[:t.limit-hashSuffixLen] + "_" + hex.EncodeToString(sum[:4])
	if t.short == nil {
		t.short = map[string]string{}
	}
	t.short[s] = name
	return s
}

// restore returns the name a name in the provider's answer stands for.
func (t *toolNames) restore(name string) string {
	if orig, ok := t.short[name]; ok {
		return orig
	}
	return name
}
