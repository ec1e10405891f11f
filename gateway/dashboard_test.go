package gateway

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDashboard: tollgate serve mounts the dashboard on the admin port;
// the admin token logs in and the Records page reads the records store.
func TestServeDashboard(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("admin-secret\n"), 0o600)
	_, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.AdminTokenFile = tokenFile })
	defer func() { cancel(); <-done }()
	base := "http://" + adminAddr
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var status int
	var page string
	for i := 0; i < 200; i++ { // until the admin port serves
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if status, page = get("/dashboard"); status != 200 || !strings.Contains(page, `name="token"`) {
		t.Fatalf("/dashboard: %d, want the login form\n%s\nlogs:\n%s", status, page, logs.String())
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no csrf field: %s", page)
	}
	req, _ := http.NewRequest("POST", base+"/dashboard/login", strings.NewReader(url.Values{"csrf": {csrf[1]}, "token": {"admin-secret"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `id="spend-today"`) {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	if status, page = get("/dashboard/records"); status != 200 || !strings.Contains(page, `id="records"`) {
		t.Fatalf("records page: %d %s", status, page)
	}
}
