// Package browsertest starts a real headless Chromium (Debian's chromium
// package) for tests and drives it with chromedp. Tests that need it skip
// with a clear message when no Chromium is installed, except in CI (CI set,
// and not to false or 0, as internal/pgtest reads it), where a missing
// browser fails them: .ci/run installs chromium.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path returns the Chromium to run: $CHROMIUM when set, else the first
// Chromium or Chrome on PATH, or "" when there is none.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	// Debian's name first.
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// Flags returns the Chromium flags a test browser runs with: headless, and
// with every connection Chromium would make on its own turned off (the test
// machines have no network besides loopback, and the background networking
// would otherwise retry refused connections many at a time). --no-sandbox
// lets it run as root, as CI does.
func Flags() []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
	}
}

// Start starts a fresh headless Chromium, with an empty profile in a
// temporary directory, and returns a chromedp context of one tab in it. The
// browser ends with the test. Without Chromium the test is skipped, or fails
// in CI. timeout bounds everything the test does
// in the browser.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		msg := "no Chromium: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM to run the browser tests"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	for _, f := range Flags() {
		opts = append(opts, chromedp.Flag(f[2:], true))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return bctx
}

// Screenshot saves a full-page PNG of the current page as name.png in dir
// and logs where it is.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
	return path
}

// inCI reports whether the tests run in CI: CI set, and not to false or 0.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}
