package extproc

import (
	"strings"
	"testing"
)

func TestCaptureBodyRedacts(t *testing.T) {
	body := `{"messages":[{"role":"user","content":"my key is sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv and AKIAIOSFODNN7EXAMPLE, header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"}],` +
		`"tool":{"api_key":"plain-secret-value","password":"hunter2","name":"keep me"},"gateway":"tg-AbCdEfGhIjKlMnOpQrStUvWx"}`
	got := captureBody([]byte(body), len(body), 1<<20)
	for _, secret := range []string{"sk-ant-api03", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9", "plain-secret-value", "hunter2", "tg-AbCdEf"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q survived: %s", secret, got)
		}
	}
	for _, keep := range []string{`"api_key":"[REDACTED]"`, `"name":"keep me"`, `"role":"user"`} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q lost: %s", keep, got)
		}
	}
}

func TestCaptureBodyTruncates(t *testing.T) {
	body := []byte("héllo wörld")
	got := captureBody(body, len(body), 2) // cuts inside "é"
	if got != "h…[truncated 12 bytes]" {
		t.Errorf("got %q", got)
	}
	if captureBody(body, len(body), 0) != "" {
		t.Error("limit 0 must capture nothing")
	}
	var c capture
	c.limit = 5
	c.write([]byte("abc"))
	c.write([]byte("defgh"))
	if c.String() != "abcde…[truncated 3 bytes]" {
		t.Errorf("streamed capture = %q", c.String())
	}
}
