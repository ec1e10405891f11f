package extproc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// Headers that group requests and annotate records. The Portkey names are
// accepted as aliases so Portkey and Conductor setups work unchanged. These are
// consumed by the gateway and not forwarded; x-claude-code-* headers are
// forwarded as the client sent them.
const (
	hdrTraceID        = "x-tollgate-trace-id"
	hdrPortkeyTraceID = "x-portkey-trace-id"
	hdrMetadata       = "x-tollgate-metadata"
	hdrPortkeyMeta    = "x-portkey-metadata"
	hdrSessionID      = "x-claude-code-session-id"
	hdrAgentID        = "x-claude-code-agent-id"
	hdrParentAgentID  = "x-claude-code-parent-agent-id"
	// hdrRequestClass is a hint Claude Code sends to a custom base URL with
	// CLAUDE_CODE_GATEWAY_HINT_HEADERS=1: main, subagent, workflow,
	// compaction or auxiliary.
	hdrRequestClass = "x-claude-code-request-class"
)

// maxRequestClassBytes bounds the request class a record keeps.
const maxRequestClassBytes = 32

// Limits on x-tollgate-metadata, which lands in every record of the request.
const (
	maxMetadataBytes    = 4096
	maxMetadataKeys     = 32
	maxMetadataKeyBytes = 64
	maxMetadataValBytes = 512
	maxTraceIDBytes     = 128
)

// traceInfo is how a request is grouped in records.
type traceInfo struct {
	TraceID, SessionID, AgentID, ParentAgentID string
	// RequestClass is Claude Code's request class hint, or "" (see
	// requestClass).
	RequestClass string
	Metadata     map[string]string
}

// readTrace picks the trace id (x-tollgate-trace-id, x-portkey-trace-id, then
// Claude Code's session id, else a new one) and validates the metadata header.
// Claude Code's session, agent and parent agent ids are held to the trace id's
// rule, at most 128 printable ASCII bytes, and refused with a 400 otherwise:
// they land in every record, and a cut id would group requests wrongly. Even
// when it refuses the request, what it returns is bounded, as the request's
// record holds it.
func readTrace(h headers) (traceInfo, *ClientError) {
	var t traceInfo
	for _, id := range []struct {
		name string
		dst  *string
	}{{hdrSessionID, &t.SessionID}, {hdrAgentID, &t.AgentID}, {hdrParentAgentID, &t.ParentAgentID}} {
		v, e := idHeader(h, id.name)
		if e != nil {
			return traceInfo{}, e
		}
		*id.dst = v
	}
	for _, k := range []string{hdrTraceID, hdrPortkeyTraceID, hdrSessionID} {
		v, e := idHeader(h, k)
		if e != nil {
			return traceInfo{}, e
		}
		if v != "" {
			t.TraceID = v
			break
		}
	}
	if t.TraceID == "" {
		t.TraceID = newTraceID()
	}
	t.RequestClass = requestClass(h.get(hdrRequestClass))
	name, raw := hdrMetadata, h.get(hdrMetadata)
	if raw == "" {
		name, raw = hdrPortkeyMeta, h.get(hdrPortkeyMeta)
	}
	if raw != "" {
		md, err := parseMetadata(raw)
		if err != nil {
			return t, invalidRequest("%s: %s", name, err.Message)
		}
		t.Metadata = md
	}
	return t, nil
}

// idHeader returns header name, an id that lands in records: at most
// maxTraceIDBytes printable ASCII bytes, else a 400.
func idHeader(h headers, name string) (string, *ClientError) {
	v := h.get(name)
	if len(v) > maxTraceIDBytes || !printable(v) {
		return "", invalidRequest("%s: at most %d printable characters", name, maxTraceIDBytes)
	}
	return v, nil
}

func parseMetadata(raw string) (map[string]string, *ClientError) {
	if len(raw) > maxMetadataBytes {
		return nil, invalidRequest("larger than %d bytes", maxMetadataBytes)
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return nil, invalidRequest(`must be a JSON object of string values, like {"ticket":"ENG-42"}`)
	}
	if len(md) > maxMetadataKeys {
		return nil, invalidRequest("at most %d keys", maxMetadataKeys)
	}
	for k, v := range md {
		if k == "" || len(k) > maxMetadataKeyBytes || len(v) > maxMetadataValBytes || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, invalidRequest("keys must be 1 to %d bytes and values at most %d bytes of UTF-8", maxMetadataKeyBytes, maxMetadataValBytes)
		}
	}
	return md, nil
}

// requestClass returns the request class hint v when it is 1 to
// maxRequestClassBytes of lowercase letters, digits, '_' and '-', else "":
// a hint never refuses a request, and a malformed one is dropped.
func requestClass(v string) string {
	if v == "" || len(v) > maxRequestClassBytes {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return v
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func newTraceID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
