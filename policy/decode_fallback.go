package policy

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The words fallback_on accepts besides status codes.
const (
	onConnectFailure = "connect-failure"
	onReset          = "reset"
	onStall          = "stall"
)

var fallbackWords = []string{onConnectFailure, onReset, onStall}

// Defaults and bounds of a route's fallback fields.
const (
	// DefaultPerTryIdleTimeout is how long an attempt may go without a byte
	// from its provider before it counts as stalled, when stall is in
	// fallback_on and per_try_idle_timeout is not given. Claude Code's long
	// thinking pauses stay well below it.
	DefaultPerTryIdleTimeout = 120 * time.Second
	// MaxSameProviderAttempts bounds max_attempts on a route whose chain has
	// a single provider, where every retry lands on that provider again.
	MaxSameProviderAttempts = 3
)

// defaultFallbackCodes are the status codes a route falls back on by default:
// rate limited, and the server errors that say the provider, not the
// request, failed (529 is Anthropic's "overloaded").
var defaultFallbackCodes = []int{429, 500, 502, 503, 504, 529}

// fallbackDraft holds the fallback fields of a route as they are read, for
// the checks that need all of them and the chain.
type fallbackDraft struct {
	on          *yaml.Node // fallback_on value, nil when absent
	attemptsVal *yaml.Node // max_attempts value, nil when absent
	idleVal     *yaml.Node // per_try_idle_timeout value, nil when absent
	f           Fallback
	// onOK, attemptsOK and idleOK say that the field decoded.
	onOK, attemptsOK, idleOK bool
}

// fallbackOn decodes fallback_on into fd.
func (d *decoder) fallbackOn(n *yaml.Node, path string, fd *fallbackDraft) {
	fd.on = deref(n)
	n = fd.on
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a sequence of status codes and %s, got %s%s",
			strings.Join(fallbackWords, ", "), describe(n), nullHint(n, "; write [] to never fall back"))
		return
	}
	fd.onOK = true
	seen := map[string]*yaml.Node{}
	for _, item := range n.Content {
		item = deref(item)
		if item.Kind != yaml.ScalarNode || (item.ShortTag() != "!!int" && item.ShortTag() != "!!str") {
			d.errorf(item, path, "expected a status code such as 503 or one of %s, got %s", strings.Join(fallbackWords, ", "), describe(item))
			continue
		}
		name := item.Value
		if item.ShortTag() == "!!int" {
			code, err := strconv.Atoi(item.Value)
			if err != nil {
				d.errorf(item, path, "expected a status code such as 503, got %s", item.Value)
				continue
			}
			name = strconv.Itoa(code)
			switch {
			case code < 400 || code > 599:
				d.errorf(item, path, "%d is not an error status; fallback_on takes 429 and codes from 500 to 599", code)
				continue
			case code < 500 && code != 429:
				d.errorf(item, path, "%d: a 4xx other than 429 is the client's error; retrying it on another provider cannot help", code)
				continue
			}
			if first, dup := seen[name]; dup {
				d.errorf(item, path, "%s appears more than once (first at line %d)", name, first.Line)
				continue
			}
			fd.f.On = append(fd.f.On, code)
		} else {
			if first, dup := seen[name]; dup {
				d.errorf(item, path, "%s appears more than once (first at line %d)", name, first.Line)
				continue
			}
			switch name {
			case onConnectFailure:
				fd.f.OnConnectFailure = true
			case onReset:
				fd.f.OnReset = true
			case onStall:
				fd.f.OnStall = true
			default:
				d.errorf(item, path, "unknown condition %q%s", name,
					didYouMeanOr(name, fallbackWords, "; use a status code such as 503 or one of "+strings.Join(fallbackWords, ", ")))
				continue
			}
		}
		seen[name] = item
	}
	slices.Sort(fd.f.On)
}

// maxAttempts decodes max_attempts into fd; the bound that depends on the
// chain is checked by finishFallback.
func (d *decoder) maxAttempts(n *yaml.Node, path string, fd *fallbackDraft) {
	n = deref(n)
	fd.attemptsVal = n
	v, err := strconv.Atoi(strings.ReplaceAll(n.Value, "_", ""))
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil {
		d.errorf(n, path, "expected a whole number of attempts, such as 2, got %s", describe(n))
		return
	}
	if v < 1 {
		d.errorf(n, path, "must be at least 1 (the first attempt counts)")
		return
	}
	fd.f.MaxAttempts = v
	fd.attemptsOK = true
}

// tryTimeout decodes per_try_timeout or per_try_idle_timeout, a Go duration
// of whole milliseconds. zeroOK allows 0, which turns the timeout off.
func (d *decoder) tryTimeout(n *yaml.Node, path string, zeroOK bool) (time.Duration, bool) {
	n = deref(n)
	s := n.Value
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && s == "0" && zeroOK {
		return 0, true
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "expected a duration such as 30s or 2m, got %s", describe(n))
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(n, path, "expected a duration such as 30s or 2m, got %q", s)
		return 0, false
	case v < 0, v == 0 && !zeroOK:
		d.errorf(n, path, "must be positive, got %q; leave it out for no timeout", s)
		return 0, false
	case v%time.Millisecond != 0:
		d.errorf(n, path, "must be whole milliseconds (Envoy's precision), got %q", s)
		return 0, false
	}
	return v, true
}

// finishFallback applies the defaults and the checks that involve several
// fields or the chain, and stores the result in the route. chainOK is false
// when the chain was reported as wrong, so its length proves nothing.
func (d *decoder) finishFallback(path string, fd *fallbackDraft, rd *routeDraft, chainOK bool) {
	f := fd.f
	if fd.on == nil {
		f.On = slices.Clone(defaultFallbackCodes)
		f.OnConnectFailure, f.OnReset, f.OnStall = true, true, true
	} else if fd.onOK {
		// Envoy's retry_on reset retries every reset of an attempt: a failed
		// connection, and the reset Envoy makes itself when a per-try or
		// per-try idle timeout fires (RetryStateImpl::wouldRetryFromReset).
		// Refuse the combinations it cannot keep apart.
		switch {
		case f.OnReset && !f.OnConnectFailure:
			d.errorf(fd.on, path+".fallback_on", "reset includes connect-failure (Envoy retries every reset, a failed connection too); add connect-failure")
		case f.OnStall && !f.OnReset:
			d.errorf(fd.on, path+".fallback_on", "stall needs reset (Envoy retries a stalled attempt as a reset it made itself); add reset")
		}
	}
	if fd.idleVal == nil {
		if f.OnStall {
			f.PerTryIdleTimeout = DefaultPerTryIdleTimeout
		}
	} else if fd.idleOK {
		switch {
		case f.OnStall && f.PerTryIdleTimeout == 0:
			d.errorf(fd.idleVal, path+".per_try_idle_timeout", "must be positive while stall is in fallback_on: it is what makes a stall")
		case !f.OnStall && f.OnReset && f.PerTryIdleTimeout > 0:
			d.errorf(fd.idleVal, path+".per_try_idle_timeout", "with reset and without stall in fallback_on, Envoy would still retry a stalled attempt (as a reset it made itself); add stall to fallback_on or set 0")
		}
	}
	n := len(rd.r.Chain)
	switch {
	case fd.attemptsVal == nil:
		f.MaxAttempts = max(n, 1)
	case fd.attemptsOK && chainOK && n == 1 && f.MaxAttempts > MaxSameProviderAttempts:
		d.errorf(fd.attemptsVal, path+".max_attempts", "at most %d on a chain of one provider: every retry goes to that provider again", MaxSameProviderAttempts)
	case fd.attemptsOK && chainOK && n > 1 && f.MaxAttempts > n:
		d.errorf(fd.attemptsVal, path+".max_attempts", "at most %d, the chain's length: once every provider was tried, Envoy (previous_priorities) sends a further attempt to the chain's first healthy provider, not the last", n)
	}
	rd.r.Fallback = f
}

// nullHint returns hint when n is null, else "".
func nullHint(n *yaml.Node, hint string) string {
	if isNull(n) {
		return hint
	}
	return ""
}
