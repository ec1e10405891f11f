package vertex

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Margins of the token cache, for a token whose lifetime (from when it was
// asked for to its expiry) is long; a short-lived token gets the fractions
// of its lifetime in parentheses instead, when smaller.
const (
	// refreshBefore: from this long before expiry (half the lifetime), a
	// request that uses the token also starts a refresh in the background.
	refreshBefore = 30 * time.Second
	// retryEvery: background refreshes start at most this often (a tenth),
	// since Google's token sources keep returning their cached token until
	// 10 s before its expiry, and a failed refresh is tried again.
	retryEvery = time.Second
	// stopBefore: a token this close to expiry (a quarter) is not sent
	// any more; requests wait for a fresh one.
	stopBefore = 5 * time.Second
)

// tokenCache hands out the access token of one provider to every stream.
// The token is read with one atomic load; it is refreshed in the background
// by the requests that find it near its expiry, one fetch at a time, so a
// request never waits on the network while a usable token is at hand, and no
// lock is held across a fetch. Requests wait, on a channel and with their
// context, only when there is no usable token: the first ones, or after
// refreshes failed until the token is too close to its expiry. It is safe
// for concurrent use.
type tokenCache struct {
	src oauth2.TokenSource

	cur       atomic.Pointer[cachedToken]
	nextRetry atomic.Int64 // unix ns before which no background refresh starts

	mu       sync.Mutex // guards inflight, never held across a fetch
	inflight *tokenFetch
}

// cachedToken is a token as requests use it.
type cachedToken struct {
	header string // "Bearer <access token>"
	// refreshAt, stopAt and retry follow from the token's expiry and its
	// lifetime (the margins above); all zero for a token without expiry.
	refreshAt, stopAt time.Time
	retry             time.Duration
}

// tokenFetch is one fetch in flight; done closes when err is set.
type tokenFetch struct {
	done chan struct{}
	err  error
}

func newTokenCache(src oauth2.TokenSource) *tokenCache { return &tokenCache{src: src} }

// header returns the authorization header value of a token usable at now,
// fetching one first when there is none (until ctx ends).
func (c *tokenCache) header(ctx context.Context, now time.Time) (string, error) {
	if t := c.cur.Load(); t != nil && (t.stopAt.IsZero() || now.Before(t.stopAt)) {
		if !t.refreshAt.IsZero() && !now.Before(t.refreshAt) && now.UnixNano() >= c.nextRetry.Load() {
			c.nextRetry.Store(now.Add(t.retry).UnixNano())
			c.fetch(now)
		}
		return t.header, nil
	}
	f := c.fetch(now)
	select {
	case <-f.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if f.err != nil {
		return "", f.err
	}
	return c.cur.Load().header, nil
}

// fetch returns the fetch in flight, starting one if there is none. The
// fetch runs in its own goroutine: a request that goes away does not cancel
// what other requests wait for.
func (c *tokenCache) fetch(now time.Time) *tokenFetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil {
		return c.inflight
	}
	f := &tokenFetch{done: make(chan struct{})}
	c.inflight = f
	go func() {
		tok, err := c.src.Token()
		if err == nil {
			// The same token again (a source's own cache) keeps the
			// margins measured from when it was first asked for.
			if t := newCachedToken(tok, now); c.cur.Load() == nil || c.cur.Load().header != t.header {
				c.cur.Store(t)
			}
		}
		f.err = err
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// newCachedToken returns tok as requests use it; asked is when the fetch
// started, from which its lifetime is measured.
func newCachedToken(tok *oauth2.Token, asked time.Time) *cachedToken {
	t := &cachedToken{header: tok.Type() + " " + tok.AccessToken}
	if tok.Expiry.IsZero() {
		return t
	}
	life := tok.Expiry.Sub(asked)
	t.refreshAt = tok.Expiry.Add(-min(refreshBefore, life/2))
	t.stopAt = tok.Expiry.Add(-min(stopBefore, life/4))
	t.retry = max(min(retryEvery, life/10), time.Millisecond)
	return t
}
