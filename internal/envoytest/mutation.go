package envoytest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// mutationRules is a resolved HeaderMutationRules, applied as Envoy's
// mutation_rules Checker does.
type mutationRules struct {
	allowAllRouting bool
	allowEnvoy      bool
	disallowSystem  bool
	disallowAll     bool
	disallowIsError bool
	allowExpr       *regexp.Regexp
	disallowExpr    *regexp.Regexp
}

type mutationOp int

const (
	opSet mutationOp = iota
	opAppend
	opRemove
)

// allowed reports whether op on name with value passes the rules, in the
// order of Envoy's Checker::isAllowed (ENVOY-EXTPROC section 4).
func (r *mutationRules) allowed(op mutationOp, name, value string) bool {
	if op == opRemove && (name == "host" || strings.HasPrefix(name, ":")) {
		return false
	}
	ok := r.nameAllowed(op, name)
	if !ok || op == opRemove {
		return ok
	}
	// Invalid values of routing and status headers count as disallowed.
	switch name {
	case ":authority", "host":
		return value != "" && !strings.ContainsAny(value, " /?#@")
	case ":scheme":
		return value == "http" || value == "https"
	case ":status":
		n, err := strconv.Atoi(value)
		return err == nil && n >= 200 && n <= 999
	}
	return true
}

func (r *mutationRules) nameAllowed(op mutationOp, name string) bool {
	if r.disallowExpr != nil && r.disallowExpr.MatchString(name) {
		return false
	}
	if r.allowExpr != nil && r.allowExpr.MatchString(name) {
		return true
	}
	if r.disallowAll {
		return false
	}
	switch name {
	case ":authority", "host", ":method", ":scheme":
		return r.allowAllRouting
	}
	if strings.HasPrefix(name, ":") {
		return op != opAppend && !r.disallowSystem
	}
	if strings.HasPrefix(name, envoyHeaderPrefix) {
		return r.allowEnvoy
	}
	return true
}

// mutationResult tells the caller what applyMutation did.
type mutationResult struct {
	rejected int // disallowed operations silently ignored
}

// errMutation is an invalid mutation: it always fails the request with
// status_on_error, even with failure_mode_allow.
type errMutation struct{ msg string }

func (e *errMutation) Error() string { return e.msg }

// applyMutation applies m to h as Envoy's mutation_utils does: removals first,
// then sets; only raw_value is read; append is the BoolValue, default
// overwrite. skipContentLength drops any content-length the processor sets
// (STREAMED and similar modes). A disallowed operation is ignored and counted,
// or an error with disallow_is_error.
func applyMutation(h *headerMap, m *extprocsvc.HeaderMutation, rules *mutationRules, skipContentLength bool) (mutationResult, error) {
	var res mutationResult
	if m == nil {
		return res, nil
	}
	for _, name := range m.GetRemoveHeaders() {
		if !validHeaderName(name) {
			return res, &errMutation{fmt.Sprintf("invalid character in remove_headers mutation %q", name)}
		}
		name = strings.ToLower(name)
		if !rules.allowed(opRemove, name, "") {
			if rules.disallowIsError {
				return res, &errMutation{fmt.Sprintf("header mutation removing %q is not allowed", name)}
			}
			res.rejected++
			continue
		}
		h.del(name)
	}
	for _, opt := range m.GetSetHeaders() {
		hv := opt.GetHeader()
		name := strings.ToLower(hv.GetKey())
		value := string(hv.GetRawValue()) // hv.Value is ignored, as Envoy does.
		if !validHeaderName(name) || !validHeaderValue(value) {
			return res, &errMutation{fmt.Sprintf("invalid character in set_headers mutation %q", name)}
		}
		if name == "content-length" && skipContentLength {
			continue
		}
		op := opSet
		if opt.GetAppend().GetValue() {
			op = opAppend
		}
		if !rules.allowed(op, name, value) {
			if rules.disallowIsError {
				return res, &errMutation{fmt.Sprintf("header mutation setting %q is not allowed", name)}
			}
			res.rejected++
			continue
		}
		if op == opAppend {
			h.add(name, value)
		} else {
			h.set(name, value)
		}
	}
	return res, nil
}
