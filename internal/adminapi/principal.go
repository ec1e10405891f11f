package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Principal is who a request on the admin port comes from: the admin token
// (Team empty: every team) or a viewer token (read-only, its Team's records
// and totals only).
type Principal struct {
	// Name names the token in logs: "admin", or the viewer's name.
	Name string
	// Team is the one team a viewer token sees; empty for the admin token.
	Team string
}

// Admin reports whether p is the admin token.
func (p Principal) Admin() bool { return p.Team == "" }

// Viewer is a read-only token of one team (a team lead's), known by the
// SHA-256 of the token.
type Viewer struct {
	Name   string
	Team   string
	SHA256 [32]byte
}

// Tokens authenticates the admin token and the viewer tokens. Only their
// SHA-256 digests are kept, and a presented token is compared with every one
// of them in constant time.
type Tokens struct {
	admin   []byte // SHA-256 of the admin token; nil when none is configured
	viewers []Viewer
}

// NewTokens returns the tokens of the admin port: adminToken (empty: none)
// and viewers.
func NewTokens(adminToken string, viewers []Viewer) *Tokens {
	t := &Tokens{viewers: viewers}
	if adminToken != "" {
		sum := sha256.Sum256([]byte(adminToken))
		t.admin = sum[:]
	}
	return t
}

// Enabled reports whether any token can authenticate: without an admin
// token the admin APIs are disabled, whatever viewers exist.
func (t *Tokens) Enabled() bool { return t != nil && t.admin != nil }

// Authenticate returns the principal whose token is token. Every digest is
// compared, so the time taken does not tell which one matched.
func (t *Tokens) Authenticate(token string) (Principal, bool) {
	if !t.Enabled() || token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	var p Principal
	found := subtle.ConstantTimeCompare(sum[:], t.admin)
	if found == 1 {
		p = Principal{Name: "admin"}
	}
	for _, v := range t.viewers {
		if subtle.ConstantTimeCompare(sum[:], v.SHA256[:]) == 1 && found == 0 {
			p, found = Principal{Name: v.Name, Team: v.Team}, 1
		}
	}
	return p, found == 1
}

// Bearer returns the token of an "Authorization: Bearer <token>" header.
func Bearer(r *http.Request) (string, bool) {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(got), true
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal a request was authenticated as.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// ProtectTokens serves h to requests whose "Authorization: Bearer <token>"
// is the admin token or a viewer token of tokens(), with the Principal in the
// request's context (PrincipalFrom). tokens is called once per request, so a
// reloaded policy's viewers apply at once; it may return nil. Without an
// admin token the API named name is disabled and answers 403 api_disabled; a
// missing or unknown token is 401 authentication_error. Every answer is
// marked no-store.
//
// A viewer may read only its team's records and totals: each handler behind
// ProtectTokens enforces that with TeamFilter. An API that viewers must not
// read at all stays behind Protect (the admin token alone), where a viewer
// token is just a wrong token.
func ProtectTokens(name string, tokens func() *Tokens, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		t := tokens()
		if !t.Enabled() {
			WriteError(w, http.StatusForbidden, "api_disabled", "the "+name+" API is disabled: no admin token is configured")
			return
		}
		token, _ := Bearer(r)
		p, ok := t.Authenticate(token)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
			WriteError(w, http.StatusUnauthorized, "authentication_error", "a valid admin or viewer token is required as Authorization: Bearer <token>")
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// TeamFilter returns the team a request of p that asked for team asked
// ("" for every team) may read: asked itself for the admin token; for a
// viewer its own team, whether it asked for that team or for none. It
// returns false when a viewer asked for another team, which the handler
// answers with Forbidden, never with an empty result.
func (p Principal) TeamFilter(asked string) (string, bool) {
	if p.Admin() {
		return asked, true
	}
	if asked != "" && asked != p.Team {
		return "", false
	}
	return p.Team, true
}

// Forbidden answers 403 permission_error: a viewer asked for what its team
// may not read.
func Forbidden(w http.ResponseWriter, p Principal, what string) {
	WriteError(w, http.StatusForbidden, "permission_error",
		fmt.Sprintf("the viewer token %q reads only team %q; %s", p.Name, p.Team, what))
}

// RequestPrincipal returns the principal of r. A request that reached a
// handler without ProtectTokens (a handler tested alone) is nobody's and
// gets a principal that sees nothing: a viewer of no existing team.
func RequestPrincipal(r *http.Request) Principal {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p
	}
	return Principal{Name: "unknown", Team: "\x00none"}
}
