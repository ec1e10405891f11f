// Package adminapi holds what every API on Tollgate's admin port shares: the
// skeleton of an API (NewAPI: its routes behind the admin token check, with
// 405 and 404 answers for the rest), strict query parameters (Params) and the
// JSON error shape (WriteError).
package adminapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Route is one endpoint of an admin API: Method and Path as in an
// http.ServeMux pattern ("GET", "/v1/traces/{id}"), served by Handler.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// NewAPI serves the routes of the admin API named name behind Protect(name,
// token). A request for a route's path with a method no route serves there
// answers 405 method_not_allowed with an Allow header (a GET route also
// serves HEAD); any other path answers 404 not_found, listing the routes.
func NewAPI(name, token string, routes ...Route) http.Handler {
	return Protect(name, token, newMux(name, routes))
}

// NewScopedAPI is NewAPI for an API that viewer tokens may read too: its
// routes are served behind ProtectTokens(name, tokens), so each handler finds
// the request's Principal with PrincipalFrom and must hold a viewer to its
// team.
func NewScopedAPI(name string, tokens func() *Tokens, routes ...Route) http.Handler {
	return ProtectTokens(name, tokens, newMux(name, routes))
}

// newMux serves routes, with 405 and 404 answers for the rest.
func newMux(name string, routes []Route) http.Handler {
	mux := http.NewServeMux()
	// paths holds each route's path without its method; it tells a wrong
	// method on a served path (405) from a path no route serves (404).
	paths := http.NewServeMux()
	methods := map[string][]string{} // path -> methods, in route order
	var served []string
	for _, rt := range routes {
		mux.HandleFunc(rt.Method+" "+rt.Path, rt.Handler)
		if _, ok := methods[rt.Path]; !ok {
			paths.HandleFunc(rt.Path, http.NotFound)
		}
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
		served = append(served, rt.Method+" "+rt.Path)
	}
	notFound := "no such endpoint; the " + name + " API serves " + list(served, "and")
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, path := paths.Handler(r)
		use, ok := methods[path]
		if !ok {
			WriteError(w, http.StatusNotFound, "not_found", notFound)
			return
		}
		allow := use
		if slices.Contains(use, http.MethodGet) && !slices.Contains(use, http.MethodHead) {
			allow = append(slices.Clip(use), http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+strings.Join(use, " or "))
	})
	return mux
}

// Params returns the query parameters of v, each of which must be one of
// names and given once, so that a typo or a repeat never widens a query
// silently. A parameter given with an empty value is present, as "".
func Params(v url.Values, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(v))
	for name, vals := range v {
		if !slices.Contains(names, name) {
			if len(names) == 0 {
				return nil, fmt.Errorf("unknown parameter %q: none is taken", name)
			}
			return nil, fmt.Errorf("unknown parameter %q: want %s", name, list(names, "or"))
		}
		if len(vals) != 1 {
			return nil, fmt.Errorf("parameter %s is given %d times", name, len(vals))
		}
		out[name] = vals[0]
	}
	return out, nil
}

// list joins words as "a", "a and b" or "a, b and c", with and the
// conjunction.
func list(words []string, and string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + and + " " + words[len(words)-1]
}

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
