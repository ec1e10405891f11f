package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
