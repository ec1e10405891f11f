// Package modelid normalises model ids and provider names for the price
// catalog, and extracts model families. The catalog generator and the catalog
// itself share it, so that a model id is keyed the same way when the catalog is
// built and when it is looked up.
//
// Every function here is allocation-free unless its input contains upper-case
// ASCII letters, which Key lower-cases.
package modelid

import "strings"

// The canonical provider names of the catalog. They follow LiteLLM's provider
// keys, so that entries of every other provider keep LiteLLM's name.
const (
	Anthropic = "anthropic"
	Bedrock   = "bedrock"
	Vertex    = "vertex_ai"
	OpenAI    = "openai"
)

// Provider returns the catalog's name for a provider name as Tollgate, LiteLLM
// or Portkey spells it: "vertex", "vertex-ai" and LiteLLM's "vertex_ai-*"
// groups are "vertex_ai"; "bedrock_converse" is "bedrock"; LiteLLM's
// "text-completion-openai" is "openai". Other names are returned unchanged.
func Provider(name string) string {
	switch name {
	case Anthropic, Bedrock, Vertex, OpenAI:
		return name
	case "vertex", "vertex-ai", "google-vertex-ai", "google":
		return Vertex
	case "bedrock_converse", "aws-bedrock":
		return Bedrock
	case "text-completion-openai":
		return OpenAI
	case "azure_text":
		return "azure"
	case "text-completion-codestral":
		return "codestral"
	case "cohere_chat":
		return "cohere"
	case "fireworks_ai-embedding-models":
		return "fireworks_ai"
	}
	if strings.HasPrefix(name, "vertex_ai-") {
		return Vertex
	}
	return name
}

// Key returns the catalog key of a model id under a canonical provider:
//
//   - ASCII letters are lower-cased;
//   - an AWS ARN is reduced to its resource id, the part after the last '/'
//     (arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-… →
//     us.anthropic.claude-…);
//   - a leading path segment that names the provider itself is removed
//     ("vertex_ai/claude-sonnet-4@20250514" → "claude-sonnet-4@20250514"), and
//     for Bedrock so are LiteLLM's "invoke/" and "converse/" route segments.
//
// Key keeps regional prefixes and version suffixes: the catalog has distinct
// prices for some of them. See Candidates for the looser forms.
func Key(provider, id string) string {
	id = lower(id)
	if strings.HasPrefix(id, "arn:") {
		if i := strings.LastIndexByte(id, '/'); i >= 0 {
			id = id[i+1:]
		}
	}
	for {
		i := strings.IndexByte(id, '/')
		if i <= 0 {
			return id
		}
		seg := id[:i]
		if Provider(seg) != provider && !(provider == Bedrock && (seg == "invoke" || seg == "converse")) {
			return id
		}
		id = id[i+1:]
	}
}

// Candidates returns the keys under which a model id, already passed through
// Key, is looked up, most exact first: the key itself, its Base, the key
// without a Bedrock regional prefix (NoRegion), and that without its suffixes.
// Empty strings and repeats are left out by setting them to "".
func Candidates(key string) [4]string {
	var c [4]string
	c[0] = key
	if b := Base(key); b != key {
		c[1] = b
	}
	if r := NoRegion(key); r != key {
		c[2] = r
		if b := Base(r); b != r {
			c[3] = b
		}
	}
	return c
}

// regions are the prefixes of Bedrock cross-region inference profiles.
var regions = [...]string{"us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov."}

// NoRegion removes a Bedrock cross-region inference profile prefix ("us.",
// "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.") from a key whose
// remainder is a vendor-qualified id such as "anthropic.claude-…".
func NoRegion(key string) string {
	for _, r := range regions {
		if strings.HasPrefix(key, r) && strings.IndexByte(key[len(r):], '.') > 0 {
			return key[len(r):]
		}
	}
	return key
}

// Base removes, repeatedly, the suffixes that name a snapshot or version of a
// model rather than the model itself:
//
//   - a Vertex version after '@' ("claude-sonnet-4@20250514", "…@default");
//   - "-latest";
//   - a Bedrock version "-v1", "-v2:0" when it follows a digit (so that
//     "anthropic.claude-v2:1" and "claude-3-5-sonnet-v2" keep theirs);
//   - a date, "-20250514" or "-2024-08-06".
//
// So "anthropic.claude-sonnet-4-20250514-v1:0" has the base
// "anthropic.claude-sonnet-4" and "gpt-4o-2024-08-06" has "gpt-4o".
func Base(key string) string {
	for {
		b := trimSuffixOnce(key)
		if b == key {
			return key
		}
		key = b
	}
}

func trimSuffixOnce(s string) string {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		return s[:i]
	}
	if t, ok := strings.CutSuffix(s, "-latest"); ok && t != "" {
		return t
	}
	// -vN or -vN:M after a digit.
	if i := strings.LastIndex(s, "-v"); i > 0 && isDigit(s[i-1]) {
		rest := s[i+2:]
		major, minor, hasMinor := strings.Cut(rest, ":")
		if allDigits(major) && (!hasMinor || allDigits(minor)) {
			return s[:i]
		}
	}
	// -YYYYMMDD.
	if n := len(s); n > 9 && s[n-9] == '-' && allDigits(s[n-8:]) && s[n-8] == '2' {
		return s[:n-9]
	}
	// -YYYY-MM-DD.
	if n := len(s); n > 11 && s[n-11] == '-' && allDigits(s[n-10:n-6]) && s[n-6] == '-' &&
		allDigits(s[n-5:n-3]) && s[n-3] == '-' && allDigits(s[n-2:]) && s[n-10] == '2' {
		return s[:n-11]
	}
	return s
}

// vendors are the vendor qualifiers that Neutral removes.
var vendors = [...]string{"anthropic.", "anthropic/", "openai.", "openai/"}

// Neutral returns the provider-neutral form of a key: NoRegion, then without
// an "anthropic." or "openai." vendor qualifier (Bedrock) or an "anthropic/" or
// "openai/" path segment (routers such as OpenRouter), then Base. The Anthropic
// id "claude-sonnet-4-20250514", the Bedrock id
// "us.anthropic.claude-sonnet-4-20250514-v1:0" and the Vertex id
// "claude-sonnet-4@20250514" all have the neutral form "claude-sonnet-4".
// Policy prices and model families are keyed by it.
func Neutral(key string) string {
	key = NoRegion(key)
	for _, v := range vendors {
		if strings.HasPrefix(key, v) {
			key = key[len(v):]
			break
		}
	}
	return Base(key)
}

// Family returns the family of a neutral model id, or "" when it has none.
//
//   - A Claude id ("claude-…") belongs to "claude-" followed by its first
//     dash-separated word made of letters only: "claude-opus-4-8",
//     "claude-3-opus" and "claude-opus-5-5" are "claude-opus";
//     "claude-3-5-sonnet-v2" is "claude-sonnet"; "claude-2.1" has no family.
//   - A GPT id ("gpt-<version>[-<words>]") belongs to "gpt-" followed by the
//     major version (the version up to its first '.') and the words that
//     contain a letter, except "latest" and "preview": "gpt-5.4-mini" is
//     "gpt-5-mini", "gpt-4.1" is "gpt-4", "gpt-4o-mini" is "gpt-4o-mini",
//     "gpt-4-0613" is "gpt-4".
//   - Other ids have no family.
//
// Only the last '/'-separated segment of the id is looked at, so that
// "anthropic/claude-…" under a router is a Claude id too.
func Family(neutral string) string {
	var buf [64]byte
	return string(AppendFamily(buf[:0], neutral))
}

// AppendFamily appends the Family of neutral to dst. It does not allocate when
// dst has room, so the catalog can find a family on the hot path.
func AppendFamily(dst []byte, neutral string) []byte {
	if i := strings.LastIndexByte(neutral, '/'); i >= 0 {
		neutral = neutral[i+1:]
	}
	switch {
	case strings.HasPrefix(neutral, "claude-"):
		for w := range strings.SplitSeq(neutral[len("claude-"):], "-") {
			if w != "" && allLetters(w) && w != "latest" {
				dst = append(dst, "claude-"...)
				return append(dst, w...)
			}
		}
	case strings.HasPrefix(neutral, "gpt-"):
		rest := neutral[len("gpt-"):]
		version, words, _ := strings.Cut(rest, "-")
		if version == "" || !isDigit(version[0]) {
			return dst
		}
		major, _, _ := strings.Cut(version, ".")
		dst = append(dst, "gpt-"...)
		dst = append(dst, major...)
		for w := range strings.SplitSeq(words, "-") {
			if hasLetter(w) && w != "latest" && w != "preview" {
				dst = append(dst, '-')
				dst = append(dst, w...)
			}
		}
	}
	return dst
}

// lower lower-cases ASCII letters, allocating only when there are some.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' {
			return true
		}
	}
	return false
}
