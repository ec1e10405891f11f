package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/policy/budget"
)

// cliMaxRetries is how often Claude Code retries a request (CLAUDE-CODE-GATEWAY
// section 6).
const cliMaxRetries = 10

// claudeCodeRetry applies Claude Code's published retry rule to one response
// (CLAUDE-CODE-GATEWAY section 6, from Anthropic's errors and gateway pages):
// x-should-retry: false stops at once (and true retries); otherwise 408, 409,
// 429 and 5xx are retried. retry-after is read in whole seconds; above 60 the
// CLI does not retry. A retry-after that is not whole seconds is an error of
// the gateway. wait is the retry-after, or 0 when the CLI's own backoff applies.
func claudeCodeRetry(resp *http.Response) (retry bool, wait time.Duration, err error) {
	switch resp.Header.Get("x-should-retry") {
	case "false":
		return false, 0, nil
	case "true":
		retry = true
	case "":
		s := resp.StatusCode
		retry = s == 408 || s == 409 || s == 429 || s >= 500
	default:
		return false, 0, fmt.Errorf("x-should-retry %q is neither true nor false", resp.Header.Get("x-should-retry"))
	}
	if ra := resp.Header.Get("retry-after"); ra != "" {
		n, err := strconv.Atoi(ra)
		if err != nil || n < 0 {
			return false, 0, fmt.Errorf("retry-after %q is not whole seconds", ra)
		}
		if n > 60 {
			return false, 0, nil
		}
		wait = time.Duration(n) * time.Second
	}
	return retry, wait, nil
}

// cliRun is what a client following claudeCodeRetry went through.
type cliRun struct {
	attempts int
	waits    []time.Duration // the retry-after of each retry (0: the CLI's backoff)
	last     *http.Response  // its body read into lastBody
	lastBody string
}

// followClaudeCode sends a request the way Claude Code does: again after each
// retryable answer, waiting the retry-after (or a short backoff instead of the
// CLI's 0.5 s doubling, which would only slow the test), at most 1 +
// cliMaxRetries times. beforeRetry, when set, runs before each retry.
func followClaudeCode(t *testing.T, send func() *http.Response, beforeRetry func()) cliRun {
	t.Helper()
	var run cliRun
	for {
		resp := send()
		run.attempts++
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		run.last, run.lastBody = resp, string(body)
		retry, wait, err := claudeCodeRetry(resp)
		if err != nil {
			t.Fatalf("attempt %d: %v (status %d, body %s)", run.attempts, err, resp.StatusCode, body)
		}
		if !retry || run.attempts > cliMaxRetries {
			return run
		}
		run.waits = append(run.waits, wait)
		if beforeRetry != nil {
			beforeRetry()
		}
		if wait == 0 {
			wait = 10 * time.Millisecond
		}
		time.Sleep(wait)
	}
}

func errorType(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Type != "error" {
		t.Fatalf("not an Anthropic error: %s", body)
	}
	return e.Error.Type
}

const helloBody = `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]}`

// TestFinalRefusalsStopClaudeCode: every refusal that cannot pass on retry
// stops a client following Claude Code's retry rule after one attempt, with
// Anthropic's error (issue 9, item 11: a 401 and a spend-budget 429 were
// retried ten times over three minutes).
func TestFinalRefusalsStopClaudeCode(t *testing.T) {
	tests := []struct {
		name    string
		budgets string
		warmups int // successful requests before the refused one
		path    string
		body    string
		hdr     map[string]string
		status  int
		typ     string
	}{
		{name: "bad key", path: "/v1/messages", body: helloBody, hdr: map[string]string{"x-api-key": "tg-wrong"}, status: 401, typ: "authentication_error"},
		{name: "no key", path: "/v1/messages", body: helloBody, hdr: map[string]string{"x-api-key": ""}, status: 401, typ: "authentication_error"},
		{name: "malformed body", path: "/v1/messages", body: `{"model":`, status: 400, typ: "invalid_request_error"},
		{name: "empty body", path: "/v1/messages", body: "", status: 400, typ: "invalid_request_error"},
		{name: "unknown route", path: "/v1/messages", body: `{"model":"@nope/claude","max_tokens":1}`, status: 400, typ: "invalid_request_error"},
		{name: "unknown path", path: "/v1/complete", body: `{}`, status: 404, typ: "not_found_error"},
		{name: "spend budget", budgets: `[{usd: 0.01, per: day}]`, path: "/v1/messages", body: helloBody, status: 429, typ: "rate_limit_error"},
		{name: "token budget", budgets: `[{tokens: 500, per: day}]`, path: "/v1/messages", body: helloBody, status: 429, typ: "rate_limit_error"},
		{name: "hourly rate limit", budgets: `[{requests: 1, per: hour}]`, warmups: 1, path: "/v1/messages", body: helloBody, status: 429, typ: "rate_limit_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: tt.budgets})
			for i := 0; i < tt.warmups; i++ {
				resp := post(t, s, tt.path, tt.body, tt.hdr)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("warm-up request: %d", resp.StatusCode)
				}
			}
			run := followClaudeCode(t, func() *http.Response { return post(t, s, tt.path, tt.body, tt.hdr) }, nil)
			if run.attempts != 1 || run.last.StatusCode != tt.status || errorType(t, run.lastBody) != tt.typ {
				t.Errorf("%d attempts, last %d %s; want one attempt, %d %s", run.attempts, run.last.StatusCode, run.lastBody, tt.status, tt.typ)
			}
			if got := run.last.Header.Get("x-should-retry"); got != "false" {
				t.Errorf("x-should-retry %q; want false", got)
			}
			if n := len(s.fake.Requests()); n != tt.warmups {
				t.Errorf("the provider saw %d requests; want %d", n, tt.warmups)
			}
		})
	}
}

// TestRateLimitIsRetriedAfterItsSeconds: a per-minute rate limit keeps its
// retry-after, in whole seconds and at most 60, and nothing that stops the CLI.
func TestRateLimitIsRetriedAfterItsSeconds(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{requests: 1, per: minute}]`})
	resp := post(t, s, "/v1/messages", helloBody, nil)
	resp.Body.Close()
	resp = post(t, s, "/v1/messages", helloBody, nil)
	resp.Body.Close()
	retry, wait, err := claudeCodeRetry(resp)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 || !retry || wait < time.Second || wait > time.Minute {
		t.Errorf("status %d, retry %v after %v; want a 429 retried after 1 to 60 s", resp.StatusCode, retry, wait)
	}
	if got := resp.Header.Get("x-should-retry"); got != "" {
		t.Errorf("x-should-retry %q on a rate limit", got)
	}
}

// TestConcurrencyLimitIsRetried: with the one concurrency slot taken by a
// stream, Claude Code's rule retries after the retry-after; once the stream
// ends, the retry is served.
func TestConcurrencyLimitIsRetried(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{concurrent: 1}]`})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5-slow","max_tokens":10,"stream":true,"messages":[]}`))
	req.Header.Set("x-api-key", gatewayKey)
	slow, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	sc := bufio.NewScanner(slow.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: content_block_delta") {
	}

	run := followClaudeCode(t, func() *http.Response { return post(t, s, "/v1/messages", helloBody, nil) }, cancel)
	if run.attempts < 2 || run.last.StatusCode != 200 {
		t.Fatalf("%d attempts, last %d %s; want a refusal, then the request served", run.attempts, run.last.StatusCode, run.lastBody)
	}
	if run.waits[0] != time.Second {
		t.Errorf("first retry after %v; want the concurrency limit's 1 s", run.waits[0])
	}
}

// TestFailClosedLedgerIsRetryable: the 503 of a budget ledger that is down
// (fail mode closed) is not final: Claude Code retries it.
func TestFailClosedLedgerIsRetryable(t *testing.T) {
	ledger := downLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{usd: 5, per: day}]`, policyTail: "budget_fail_mode: closed\n"})
	resp := post(t, s, "/v1/messages", helloBody, nil)
	resp.Body.Close()
	retry, _, err := claudeCodeRetry(resp)
	if err != nil || resp.StatusCode != 503 || !retry {
		t.Errorf("status %d, retry %v, %v; want a retryable 503", resp.StatusCode, retry, err)
	}
}

// TestClientOnlyHeadersNeverReachTheProvider sends every header that is for the
// gateway, not the provider, on each endpoint; the fake provider fails any
// request that carries one of them (issue 9, item 12). anthropic-*,
// x-claude-code-* and custom headers arrive as sent.
func TestClientOnlyHeadersNeverReachTheProvider(t *testing.T) {
	s := newStack(t)
	hdr := map[string]string{
		"proxy-authorization":      "Bearer " + gatewayKey,
		"cookie":                   "session=abc",
		"x-portkey-config":         `{"provider":"anthropic","api_key":"sk-from-config"}`,
		"x-portkey-virtual-key":    "vk-1",
		"x-portkey-trace-id":       "pk-trace",
		"x-tollgate-trace-id":      "tg-trace",
		"x-tollgate-whatever":      "1",
		"x-tollgate-provider":      "@demo",
		"anthropic-beta":           "claude-code-20250219",
		"x-claude-code-session-id": "sess-1",
		"x-team":                   "web",
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/messages", helloBody},
		{"POST", "/v1/messages/count_tokens", `{"model":"claude-sonnet-4-5","messages":[]}`},
		{"GET", "/v1/models", ""},
		{"GET", "/v1/models/claude-sonnet-4-5", ""},
	} {
		req, err := http.NewRequest(c.method, s.harness.URL()+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("authorization", "Bearer "+gatewayKey)
		req.Header.Set("content-type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "fake provider:") {
			t.Errorf("%s %s: %s", c.method, c.path, body)
		}
		got := s.lastRequest(t).Header
		for _, k := range []string{"anthropic-beta", "x-claude-code-session-id", "x-team"} {
			if got.Get(k) != hdr[k] {
				t.Errorf("%s %s: %s = %q at the provider; want %q", c.method, c.path, k, got.Get(k), hdr[k])
			}
		}
	}
	if v := s.fake.Violations(); len(v) > 0 {
		t.Errorf("the provider received: %v", v)
	}
}

// rawRequest writes a request line and headers as they are on a TCP connection,
// so the path reaches the gateway with no client-side cleaning, and returns the
// response.
func rawRequest(t *testing.T, s *stack, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.harness.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n", method, path)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestModelsPathTraversalIs404: a models path that is not one model id never
// reaches the provider, which would get it with the provider key (issue 9,
// item 13); a real id does.
func TestModelsPathTraversalIs404(t *testing.T) {
	s := newStack(t)
	for _, path := range []string{
		"/v1/models/%2e%2e/files", "/v1/models/%2E%2E/files", "/v1/models/../files", "/v1/models/..%2ffiles",
		"/v1/models/claude%2F..%2F..%2Fv1%2Ffiles", "/v1/models/..%5cfiles", "/v1/models//files",
		"/v1/models/claude-sonnet-4-5/files",
	} {
		resp, body := rawRequest(t, s, "GET", path, "x-api-key", gatewayKey)
		if resp.StatusCode != 404 || errorType(t, body) != "not_found_error" || resp.Header.Get("x-should-retry") != "false" {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the provider saw %d requests: %+v", n, s.fake.Requests())
	}
	resp, body := rawRequest(t, s, "GET", "/v1/models/claude-sonnet-4-5-20250929", "x-api-key", gatewayKey)
	if n := len(s.fake.Requests()); n != 1 || s.fake.Requests()[0].Path != "/v1/models/claude-sonnet-4-5-20250929" {
		t.Errorf("a real model id: %d %s; the provider saw %+v", resp.StatusCode, body, s.fake.Requests())
	}
}

// TestEmptyMessageBodyIs400: POST /v1/messages with Content-Length: 0 is
// refused at once and never forwarded (issue 9, item 14).
func TestEmptyMessageBodyIs400(t *testing.T) {
	s := newStackWith(t, stackOptions{ledger: budget.NewMemoryLedger(0), keyBudgets: `[{usd: 5, per: day}]`})
	for _, path := range []string{"/v1/messages?beta=true", "/v1/messages/count_tokens"} {
		resp, body := rawRequest(t, s, "POST", path, "x-api-key", gatewayKey, "content-type", "application/json", "content-length", "0")
		if resp.StatusCode != 400 || errorType(t, body) != "invalid_request_error" || !strings.Contains(body, "empty") {
			t.Errorf("POST %s: %d %s", path, resp.StatusCode, body)
		}
	}
	if n := len(s.fake.Requests()); n != 0 {
		t.Errorf("the provider saw %d requests", n)
	}
}

// TestEnvoyTooLargeIsFinal: Envoy's own 413 (a body over the buffer limit)
// says x-should-retry: false, from envoy.yaml's local_reply_config, since the
// same body is refused again. envoy.yaml is used with its 32 MiB limits
// lowered to 64 KiB, so that a small body crosses them.
func TestEnvoyTooLargeIsFinal(t *testing.T) {
	src, err := os.ReadFile("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	small := strings.ReplaceAll(string(src), "33554432", "65536")
	if small == string(src) {
		t.Fatal("envoy.yaml has no 33554432 buffer limit to lower")
	}
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, []byte(small), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, stackOptions{envoyYAML: path})
	big := `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"` +
		strings.Repeat("x", 100<<10) + `"}]}`
	run := followClaudeCode(t, func() *http.Response { return post(t, s, "/v1/messages", big, nil) }, nil)
	if run.attempts != 1 || run.last.StatusCode != 413 || errorType(t, run.lastBody) != "request_too_large" {
		t.Errorf("%d attempts, last %d %s", run.attempts, run.last.StatusCode, run.lastBody)
	}
	if got := run.last.Header.Get("x-should-retry"); got != "false" {
		t.Errorf("x-should-retry %q on Envoy's 413; want false", got)
	}
}
