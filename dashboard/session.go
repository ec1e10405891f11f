package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

// session is one logged-in browser: who it is, the token it logged in with
// (checked again on every request, so that a revoked token ends it), the
// CSRF token every POST of its pages carries, and when it ends.
type session struct {
	principal adminapi.Principal
	token     string
	csrf      string
	expires   time.Time
}

// sessions is the server-side session store: at most max sessions, each
// ending ttl after its login. It is safe for concurrent use. The cookie holds
// only a random id; a session dies with the process, so a restart logs every
// browser out.
type sessions struct {
	mu   sync.Mutex
	byID map[string]session
	ttl  time.Duration
	max  int
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{byID: map[string]session{}, ttl: ttl, max: max}
}

// create starts a session of p, logged in with token, at now and returns its
// id. When the store is
// full it first drops the expired sessions, then the one ending soonest, so a
// flood of logins can neither grow memory nor lock everyone out for long.
func (s *sessions) create(p adminapi.Principal, token string, now time.Time) (id string, sess session) {
	id, csrf := randomToken(), randomToken()
	sess = session{principal: p, token: token, csrf: csrf, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		s.sweepLocked(now)
	}
	for len(s.byID) >= s.max {
		var oldest string
		for k, v := range s.byID {
			if oldest == "" || v.expires.Before(s.byID[oldest].expires) {
				oldest = k
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[id] = sess
	return id, sess
}

// get returns the live session id names at now.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if !now.Before(sess.expires) {
		delete(s.byID, id)
		return session{}, false
	}
	return sess, true
}

// remove ends session id.
func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// len returns how many sessions the store holds, expired ones included.
func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

func (s *sessions) sweepLocked(now time.Time) {
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
		}
	}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
