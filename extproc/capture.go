package extproc

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Body capture puts request and response bodies into cost records when the
// policy opts in for a route or team. Bodies are cut at the policy's limit and
// scrubbed of anything that looks like a credential before they leave the
// process. Scrubbing is best effort: it knows the common key shapes, not every
// secret a prompt may contain, which is why capture is off by default.

// tokenPatterns match credentials by their shape, as they appear in prompts,
// tool results and config files pasted into a conversation.
var tokenPatterns = regexp.MustCompile(`(?:` + strings.Join([]string{
	`sk-ant-[A-Za-z0-9_\-]{10,}`,                   // Anthropic keys
	`sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{20,}`, // OpenAI-style keys
	`tg-[A-Za-z0-9]{20,}`,                          // Tollgate gateway keys
	`(?:AKIA|ASIA)[0-9A-Z]{16}`,                    // AWS access key ids
	`AIza[0-9A-Za-z_\-]{35}`,                       // Google API keys
	`gh[pousr]_[A-Za-z0-9]{36,}`,                   // GitHub tokens
	`xox[abprs]-[A-Za-z0-9\-]{10,}`,                // Slack tokens
	`(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*`,      // bearer tokens
	`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`,
}, `)|(?:`) + `)`)

// secretFields match JSON members whose names say they hold a secret; the name
// is kept and the value replaced.
var secretFields = regexp.MustCompile(`(?i)("(?:api[_-]?key|secret|password|passwd|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

const redacted = "[REDACTED]"

// captureBody returns the first limit bytes of body (cut on a UTF-8 boundary)
// with credentials replaced. total is the full size of the body, so a cut is
// marked and readers know the text is partial.
func captureBody(body []byte, total, limit int) string {
	if limit <= 0 || len(body) == 0 {
		return ""
	}
	cut := body[:min(len(body), limit)]
	// Drop an incomplete rune at the cut (at most 3 bytes).
	for i := 0; i < utf8.UTFMax-1 && len(cut) > 0; i++ {
		if r, size := utf8.DecodeLastRune(cut); r != utf8.RuneError || size > 1 {
			break
		}
		cut = cut[:len(cut)-1]
	}
	out := tokenPatterns.ReplaceAllString(string(cut), redacted)
	out = secretFields.ReplaceAllString(out, `${1}"`+redacted+`"`)
	if total > len(cut) {
		out += fmt.Sprintf("…[truncated %d bytes]", total-len(cut))
	}
	return out
}

// capture keeps the first bytes of a streamed body, up to its limit.
type capture struct {
	limit int
	buf   []byte
	total int
}

func (c *capture) write(b []byte) {
	if c.limit <= 0 {
		return
	}
	c.total += len(b)
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, b[:min(len(b), room)]...)
	}
}

func (c *capture) String() string { return captureBody(c.buf, c.total, c.limit) }
