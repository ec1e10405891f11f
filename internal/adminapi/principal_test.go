package adminapi

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProtectTokens(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		WriteJSON(w, 200, map[string]any{"name": p.Name, "team": p.Team, "ok": ok})
	})
	viewers := []Viewer{{Name: "lead-alice", Team: "platform", SHA256: sha256.Sum256([]byte("v-secret"))}}
	enabled := NewTokens("secret", viewers)
	disabled := NewTokens("", viewers)
	for _, tt := range []struct {
		name   string
		tokens *Tokens
		auth   string
		status int
		body   string
	}{
		{"admin", enabled, "Bearer secret", 200, `{"name":"admin","ok":true,"team":""}`},
		{"viewer", enabled, "Bearer v-secret", 200, `{"name":"lead-alice","ok":true,"team":"platform"}`},
		{"unknown", enabled, "Bearer nope", 401, `"authentication_error"`},
		{"none", enabled, "", 401, `"authentication_error"`},
		{"nil tokens", nil, "Bearer secret", 403, `"api_disabled"`},
		{"viewer without admin token", disabled, "Bearer v-secret", 403, `"api_disabled"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/v1/x", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			ProtectTokens("test", func() *Tokens { return tt.tokens }, echo).ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("got %d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestTeamFilter(t *testing.T) {
	admin, viewer := Principal{Name: "admin"}, Principal{Name: "lead", Team: "platform"}
	for _, tt := range []struct {
		p           Principal
		asked, want string
		ok          bool
	}{
		{admin, "", "", true},
		{admin, "research", "research", true},
		{viewer, "", "platform", true},
		{viewer, "platform", "platform", true},
		{viewer, "research", "", false},
	} {
		got, ok := tt.p.TeamFilter(tt.asked)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%+v asked %q: %q %v, want %q %v", tt.p, tt.asked, got, ok, tt.want, tt.ok)
		}
	}
	if p := RequestPrincipal(httptest.NewRequest("GET", "/", nil)); p.Admin() {
		t.Error("a request without a principal reads as the admin")
	}
}
