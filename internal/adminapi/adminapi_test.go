package adminapi

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
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

func TestNewAPI(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
	}
	h := NewAPI("things", "secret",
		Route{Method: http.MethodGet, Path: "/v1/things", Handler: ok},
		Route{Method: http.MethodGet, Path: "/v1/things/{id}", Handler: ok},
		Route{Method: http.MethodPost, Path: "/v1/things/reset", Handler: ok},
		Route{Method: http.MethodPost, Path: "/v1/batch", Handler: ok},
		Route{Method: http.MethodDelete, Path: "/v1/batch", Handler: ok})
	for _, tt := range []struct {
		method, target, auth string
		status               int
		allow, body          string
	}{
		{"GET", "/v1/things", "Bearer secret", 200, "", `{"id":""}`},
		{"HEAD", "/v1/things", "Bearer secret", 200, "", ""},
		{"GET", "/v1/things/a", "Bearer secret", 200, "", `{"id":"a"}`},
		{"POST", "/v1/things/reset", "Bearer secret", 200, "", `{"id":""}`},
		{"DELETE", "/v1/things", "Bearer secret", 405, "GET, HEAD", `"DELETE is not allowed here; use GET"`},
		{"POST", "/v1/things/a", "Bearer secret", 405, "GET, HEAD", `"method_not_allowed"`},
		// A GET route whose path takes this one serves it, as http.ServeMux decides.
		{"GET", "/v1/things/reset", "Bearer secret", 200, "", `{"id":"reset"}`},
		{"PUT", "/v1/things/reset", "Bearer secret", 405, "POST", `"PUT is not allowed here; use POST"`},
		{"GET", "/v1/batch", "Bearer secret", 405, "POST, DELETE", `"GET is not allowed here; use POST or DELETE"`},
		{"GET", "/v1/other", "Bearer secret", 404, "",
			`{"error":{"type":"not_found","message":"no such endpoint; the things API serves GET /v1/things, GET /v1/things/{id}, POST /v1/things/reset, POST /v1/batch and DELETE /v1/batch"}}`},
		{"GET", "/v1/things/a/b", "Bearer secret", 404, "", `"not_found"`},
		{"GET", "/v1/other", "", 401, "", `"authentication_error"`},
		{"DELETE", "/v1/things", "Bearer nope", 401, "", `"authentication_error"`},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tt.method, tt.target, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tt.status || rec.Header().Get("Allow") != tt.allow || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s %s: %d, Allow %q, %s", tt.method, tt.target, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
}

func TestParams(t *testing.T) {
	for _, tt := range []struct {
		query string
		names []string
		want  map[string]string
		err   string
	}{
		{"", []string{"a"}, map[string]string{}, ""},
		{"a=1&b=", []string{"a", "b"}, map[string]string{"a": "1", "b": ""}, ""},
		{"a=1&a=2", []string{"a"}, nil, "parameter a is given 2 times"},
		{"c=1", []string{"a", "b", "limit"}, nil, `unknown parameter "c": want a, b or limit`},
		{"c=1", nil, nil, `unknown parameter "c": none is taken`},
	} {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Params(v, tt.names...)
		if errText := fmt.Sprint(err); (tt.err == "" && err != nil) || (tt.err != "" && errText != tt.err) {
			t.Errorf("%q: error %v, want %q", tt.query, err, tt.err)
		}
		if tt.err == "" && !maps.Equal(got, tt.want) {
			t.Errorf("%q: %v, want %v", tt.query, got, tt.want)
		}
	}
}
