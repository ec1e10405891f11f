package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStart loads a page from a loopback server in the browser, runs its
// script, and screenshots it.
func TestStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!DOCTYPE html><p id="p">static</p><script>document.getElementById("p").textContent = "scripted"</script>`)
	}))
	defer srv.Close()
	ctx := Start(t, time.Minute)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("#p"))); err != nil {
		t.Fatal(err)
	}
	if text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#p"))); err != nil || text != "scripted" {
		t.Fatalf("text %q, %v", text, err)
	}
	Screenshot(t, ctx, t.TempDir(), "page")
}
