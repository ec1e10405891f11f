package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/policy"
)

// TestServeSpendAPIAndViewers wires the spend API and the viewer tokens of
// the policy file: a team lead's token reads its team's totals and records
// and gets 403 for another team's, and never reads the budgets API, which
// stays admin-only; a request's record reaches the in-memory spend store.
func TestServeSpendAPIAndViewers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	os.WriteFile(path, []byte("version: 1\nproviders:\n  demo: {type: anthropic, base_url: 'http://127.0.0.1:1', api_key: '${X:-k}'}\n"+
		"routes:\n  demo: {chain: [demo]}\n"+
		"keys:\n  - {id: a, sha256: "+policy.HashKey("tg-a")+", team: platform}\n  - {id: b, sha256: "+policy.HashKey("tg-b")+", team: research}\n"+
		"teams:\n  platform:\n    budgets: [{usd: 100, per: month}]\n    viewers: [{name: lead-alice, sha256: "+policy.HashKey("viewer-secret")+"}]\n"+
		"  research: {budgets: [{usd: 50, per: month}]}\n"), 0o600)
	_, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.PolicyPath, c.AdminToken = path, "admin-secret" })
	defer func() { cancel(); <-done }()

	call := func(token, target string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+target, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\nlogs:\n%s", target, err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tt := range []struct {
		token, target string
		status        int
		body          string
	}{
		{"viewer-secret", "/v1/spend/totals", 200, `"filter":{"team":"platform"}`},
		{"viewer-secret", "/v1/spend/totals?team=research", 403, `"permission_error"`},
		{"viewer-secret", "/v1/records?team=research", 403, `"permission_error"`},
		{"viewer-secret", "/v1/records", 200, `{"records":[]}`},
		{"viewer-secret", "/v1/spend/budgets", 200, `"scope":"team:platform"`},
		{"viewer-secret", "/v1/spend/budgets?scope=team:research", 403, `"permission_error"`},
		{"viewer-secret", "/v1/budgets?scope=team:platform", 401, `"authentication_error"`},
		{"admin-secret", "/v1/budgets?scope=team:platform", 200, `"scope":"team:platform"`},
		{"admin-secret", "/v1/spend/budgets", 200, `"scope":"team:research"`},
		{"wrong", "/v1/spend/totals", 401, `"authentication_error"`},
	} {
		if status, body := call(tt.token, tt.target); status != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s GET %s: %d %s, want %d with %s", tt.token, tt.target, status, body, tt.status, tt.body)
		}
	}
	if _, body := call("viewer-secret", "/v1/spend/budgets"); strings.Contains(body, "research") {
		t.Errorf("the viewer sees another team's budget: %s", body)
	}
}

// TestServeSpendCountsRecords: a refused request's record reaches the
// spend API's in-memory store.
func TestServeSpendCountsRecords(t *testing.T) {
	grpcAddr, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.AdminToken = "admin-secret" })
	defer func() { cancel(); <-done }()
	stream := policyStream(t, grpcAddr)
	if err := stream.Send(headers(":method", "POST", ":path", "/v1/messages", "x-api-key", "wrong")); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetImmediateResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("want a 401, got %v %v", resp, err)
	}
	stream.CloseSend()
	stream.Recv() //nolint:errcheck // the end of the stream
	var body struct {
		Total struct {
			Requests int `json:"requests"`
			Refused  int `json:"refused"`
		} `json:"total"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for body.Total.Requests == 0 && time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/spend/totals", nil)
		req.Header.Set("Authorization", "Bearer admin-secret")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&body) //nolint:errcheck // retried
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body.Total.Requests != 1 || body.Total.Refused != 1 {
		t.Errorf("spend totals: %+v\nlogs:\n%s", body.Total, logs.String())
	}
}
