package envoytest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFakeAnthropic(t *testing.T) {
	f := NewFakeAnthropic(FakeAnthropicConfig{APIKey: "k", ForbiddenHeaders: []string{"x-tollgate-api-key"}})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	call := func(method, path, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.URL()+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	good := []string{"x-api-key", "k", "anthropic-version", "2023-06-01"}

	if code, _, _ := call("GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	code, hdr, body := call("POST", "/v1/messages?beta=true", `{"model":"m1","max_tokens":1}`, good...)
	var msg struct {
		Model string `json:"model"`
		Usage struct {
			CacheCreation struct {
				FiveM int `json:"ephemeral_5m_input_tokens"`
			} `json:"cache_creation"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil || code != 200 || msg.Model != "m1" || msg.Usage.CacheCreation.FiveM == 0 || hdr.Get("content-type") != "application/json" {
		t.Errorf("messages: %d %q %v", code, body, err)
	}
	code, hdr, body = call("POST", "/v1/messages", `{"model":"m2","stream":true}`, good...)
	if code != 200 || hdr.Get("content-type") != "text/event-stream" || !strings.Contains(body, `"model":"m2"`) ||
		!strings.Contains(body, "event: ping") || !strings.HasSuffix(body, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Errorf("stream: %d %q", code, body)
	}
	if code, _, body := call("POST", "/v1/messages/count_tokens?beta=true", `{"model":"m","messages":[]}`, good...); code != 200 || !strings.HasPrefix(body, `{"input_tokens":`) {
		t.Errorf("count_tokens: %d %q", code, body)
	}
	if code, _, body := call("GET", "/v1/models", "", good...); code != 200 || !strings.Contains(body, `"claude-sonnet-4-5"`) {
		t.Errorf("models: %d %q", code, body)
	}
	if code, _, body := call("POST", "/v1/messages", `{"model":"fake-error-429"}`, good...); code != 429 || !strings.Contains(body, "rate_limit_error") {
		t.Errorf("429: %d %q", code, body)
	}
	if code, _, body := call("POST", "/v1/messages", `{"model":"fake-error-500"}`, good...); code != 500 || !strings.Contains(body, "api_error") {
		t.Errorf("500: %d %q", code, body)
	}
	if code, _, body := call("GET", "/v1/nope", "", good...); code != 404 || !strings.Contains(body, "not_found_error") {
		t.Errorf("404: %d %q", code, body)
	}
	if len(f.Violations()) != 0 {
		t.Fatalf("violations before the bad requests: %v", f.Violations())
	}
	// Each bad request is a recorded violation and a 400 naming it.
	for _, bad := range [][]string{
		{"x-api-key", "wrong", "anthropic-version", "v"},
		{"x-api-key", "k"},
		{"x-api-key", "k", "anthropic-version", "v", "authorization", "Bearer tg"},
		{"x-api-key", "k", "anthropic-version", "v", "x-tollgate-internal-cluster", "c"},
		{"x-api-key", "k", "anthropic-version", "v", "x-tollgate-api-key", "tg"},
		{"x-api-key", "k", "anthropic-version", "v", "x-tollgate-trace-id", "t"},
		{"x-api-key", "k", "anthropic-version", "v", "x-portkey-config", "{}"},
		{"x-api-key", "k", "anthropic-version", "v", "proxy-authorization", "Bearer tg"},
		{"x-api-key", "k", "anthropic-version", "v", "cookie", "session=1"},
	} {
		if code, _, body := call("POST", "/v1/messages", `{"model":"m"}`, bad...); code != 400 || !strings.Contains(body, "fake provider:") {
			t.Errorf("%v: %d %q", bad, code, body)
		}
	}
	if got := len(f.Violations()); got != 9 {
		t.Errorf("violations %v", f.Violations())
	}
	if got := len(f.Requests()); got != 16 {
		t.Errorf("recorded %d requests, want 16 (healthz is not recorded)", got)
	}
}

// A provider whose base_url has a path is served under it, and only there.
func TestFakeAnthropicBasePath(t *testing.T) {
	f := NewFakeAnthropic(FakeAnthropicConfig{APIKey: "k", BasePath: "/second"})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for path, want := range map[string]int{"/second/v1/messages": 200, "/v1/messages": 404, "/secondv1/messages": 404, "/second/v1/messagesx": 404} {
		req, _ := http.NewRequest("POST", f.URL()+path, strings.NewReader(`{"model":"m","max_tokens":1}`))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if got := f.Requests(); len(got) != 4 {
		t.Errorf("%d requests recorded", len(got))
	}
}

// The failing behaviours by model suffix: 529 and 400 Anthropic errors, a
// reset before headers, and a stall that ends when the client goes away.
func TestFakeAnthropicFailures(t *testing.T) {
	f := NewFakeAnthropic(FakeAnthropicConfig{APIKey: "k"})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	post := func(ctx context.Context, model string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", f.URL()+"/v1/messages", strings.NewReader(`{"model":"`+model+`","max_tokens":1}`))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	resp, body, err := post(context.Background(), "m-overloaded")
	if err != nil || resp.StatusCode != 529 || resp.Header.Get("retry-after") != "3" || resp.Header.Get("x-should-retry") != "true" ||
		!strings.Contains(body, `"type":"overloaded_error"`) {
		t.Errorf("overloaded: %v %v %q", resp, err, body)
	}
	resp, body, err = post(context.Background(), "m-invalid")
	if err != nil || resp.StatusCode != 400 || !strings.Contains(body, `"type":"invalid_request_error"`) {
		t.Errorf("invalid: %v %v %q", resp, err, body)
	}
	if resp, _, err := post(context.Background(), "m-reset"); err == nil {
		t.Errorf("reset: got %d", resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := post(ctx, "m-stall"); done <- err }()
	for deadline := time.Now().Add(10 * time.Second); len(f.Requests()) < 4; {
		if time.Now().After(deadline) {
			t.Fatal("the stalled request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("stall answered: %v", err)
	default:
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("stall: no error after cancel")
	}
	for deadline := time.Now().Add(10 * time.Second); f.Cancellations() != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("stall cancellations %d", f.Cancellations())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
