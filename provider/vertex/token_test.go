package vertex

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// fakeSource issues tok-1, tok-2, ... each valid for life from the time the
// test sets in at; a fetch waits for release when it is set.
type fakeSource struct {
	life    time.Duration
	at      atomic.Pointer[time.Time]
	n       atomic.Int32
	release chan struct{}
	fail    atomic.Bool
}

func (s *fakeSource) Token() (*oauth2.Token, error) {
	if s.release != nil {
		<-s.release
	}
	if s.fail.Load() {
		return nil, errors.New("token endpoint down")
	}
	n := s.n.Add(1)
	return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer", Expiry: s.at.Load().Add(s.life)}, nil
}

func (s *fakeSource) set(t time.Time) { s.at.Store(&t) }

// waitFetches polls until the source issued n tokens (a background refresh).
func waitFetches(t *testing.T, s *fakeSource, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.n.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches; want %d", s.n.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTokenCacheLifecycle walks one token's life with an injected clock: one
// fetch serves every request; from refreshBefore its expiry a request starts
// one background refresh and still gets the current token; once the token
// is within stopBefore of its expiry, requests wait for a fresh one.
func TestTokenCacheLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{life: time.Hour}
	src.set(t0)
	c := newTokenCache(src)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if h, err := c.header(ctx, t0.Add(time.Duration(i)*time.Minute)); err != nil || h != "Bearer tok-1" {
			t.Fatalf("request %d: %q, %v", i, h, err)
		}
	}
	if n := src.n.Load(); n != 1 {
		t.Fatalf("%d fetches for one token", n)
	}
	// Within 30 s of expiry: a background refresh, the current token used
	// meanwhile. The source (a cache of its own) may hand the same token
	// out; here it issues tok-2, valid an hour from then.
	src.release = make(chan struct{})
	at := t0.Add(time.Hour - 20*time.Second)
	src.set(at)
	if h, err := c.header(ctx, at); err != nil || h != "Bearer tok-1" {
		t.Fatalf("near expiry: %q, %v", h, err)
	}
	// A second request meanwhile starts no second fetch, and does not wait.
	if h, err := c.header(ctx, at.Add(2*time.Second)); err != nil || h != "Bearer tok-1" {
		t.Fatalf("near expiry, refresh in flight: %q, %v", h, err)
	}
	close(src.release)
	waitFetches(t, src, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := c.header(ctx, at.Add(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if h == "Bearer tok-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %q after the refresh", h)
		}
		time.Sleep(time.Millisecond)
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("%d fetches", n)
	}

	// A token whose refreshes all failed is not sent within stopBefore of
	// its expiry: the request waits for a fetch, and gets its error.
	src.release = nil
	src.fail.Store(true)
	end := at.Add(time.Hour)
	if _, err := c.header(ctx, end.Add(-2*time.Second)); err == nil {
		t.Error("a token 2 s from expiry was sent, or a failed fetch gave no error")
	}
	src.fail.Store(false)
	src.set(end)
	if h, err := c.header(ctx, end.Add(-2*time.Second)); err != nil || h != "Bearer tok-3" {
		t.Errorf("after the failure: %q, %v", h, err)
	}
}

// A short-lived token's margins are fractions of its lifetime: a 1 s token
// is refreshed from 0.5 s before its expiry and not sent in its last 0.25 s.
func TestTokenCacheShortLived(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{life: time.Second}
	src.set(t0)
	c := newTokenCache(src)
	ctx := context.Background()
	if h, _ := c.header(ctx, t0); h != "Bearer tok-1" {
		t.Fatal(h)
	}
	if h, _ := c.header(ctx, t0.Add(400*time.Millisecond)); h != "Bearer tok-1" || src.n.Load() != 1 {
		t.Fatalf("%s after %d fetches", h, src.n.Load())
	}
	src.set(t0.Add(800 * time.Millisecond))
	if h, err := c.header(ctx, t0.Add(800*time.Millisecond)); err != nil || h != "Bearer tok-2" {
		t.Errorf("in the last quarter: %q, %v; want a fresh token", h, err)
	}
}

// Concurrent first requests share one fetch; a request that goes away stops
// waiting without cancelling it.
func TestTokenCacheSharedFetch(t *testing.T) {
	t0 := time.Now()
	src := &fakeSource{life: time.Hour, release: make(chan struct{})}
	src.set(t0)
	c := newTokenCache(src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.header(ctx, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h, err := c.header(context.Background(), t0); err != nil || h != "Bearer tok-1" {
				errs <- fmt.Errorf("%q, %v", h, err)
			}
		}()
	}
	close(src.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d fetches for concurrent first requests", n)
	}
}

// A token without expiry is fetched once.
func TestTokenCacheNoExpiry(t *testing.T) {
	var n atomic.Int32
	c := newTokenCache(sourceFunc(func() (*oauth2.Token, error) {
		n.Add(1)
		return &oauth2.Token{AccessToken: "forever"}, nil
	}))
	for i := 0; i < 3; i++ {
		if h, err := c.header(context.Background(), time.Now().Add(time.Duration(i)*24*time.Hour)); err != nil || h != "Bearer forever" {
			t.Fatalf("%q, %v", h, err)
		}
	}
	if n.Load() != 1 {
		t.Errorf("%d fetches", n.Load())
	}
}

type sourceFunc func() (*oauth2.Token, error)

func (f sourceFunc) Token() (*oauth2.Token, error) { return f() }
