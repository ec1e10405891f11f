package adminapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProtect(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, 200, map[string]bool{"ok": true}) })
	for _, tt := range []struct {
		name, token, auth string
		status            int
		body              string
	}{
		{"disabled", "", "Bearer x", 403, `"api_disabled"`},
		{"no header", "secret", "", 401, `"authentication_error"`},
		{"wrong token", "secret", "Bearer nope", 401, `"authentication_error"`},
		{"basic scheme", "secret", "Basic secret", 401, `"authentication_error"`},
		{"right token", "secret", "bearer  secret ", 200, `{"ok":true}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/v1/x", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			Protect("test", tt.token, ok).ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("got %d %s %v", rec.Code, rec.Body, rec.Header())
			}
		})
	}
}
