// Package adminapi holds what every API on Tollgate's admin port shares: the
// admin token check and the JSON error shape.
package adminapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Protect serves h only to requests carrying "Authorization: Bearer <token>".
// With an empty token the API named name is disabled and answers 403
// api_disabled; a missing or wrong token is 401 authentication_error. Tokens
// are compared as SHA-256 digests in constant time, so neither their bytes nor
// their length leak through timing. Every answer is marked no-store.
func Protect(name, token string, h http.Handler) http.Handler {
	var want []byte
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		want = sum[:]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if want == nil {
			WriteError(w, http.StatusForbidden, "api_disabled", "the "+name+" API is disabled: no admin token is configured")
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
			WriteError(w, http.StatusUnauthorized, "authentication_error", "a valid admin token is required as Authorization: Bearer <token>")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteError answers with {"error": {"type": typ, "message": msg}}.
func WriteError(w http.ResponseWriter, status int, typ, msg string) {
	type body struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	WriteJSON(w, status, struct {
		Error body `json:"error"`
	}{body{typ, msg}})
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"internal_error","message":"cannot encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
