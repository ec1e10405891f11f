// Package dashboard serves Tollgate's web dashboard on the admin port under
// /dashboard/: the Overview, Budgets, Sessions and Records pages, rendered on
// the server with html/template, with a little plain JavaScript for the
// charts (uPlot, vendored in static/vendor). Everything is embedded in the
// binary; there is no build step.
//
// A browser logs in with the admin token or a team's viewer token
// (adminapi.Tokens) and gets a cookie naming a server-side session. Every
// POST carries the session's CSRF token (the login form a cookie-bound one)
// and an Origin (or Referer) of the dashboard's own host, and the cookies are
// SameSite=Strict. A viewer sees its own team's records and numbers only; a
// page of another team's record or session answers 403.
package dashboard

import (
	"cmp"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/records"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is the path the dashboard is served under.
const Prefix = "/dashboard/"

// Cookie names.
const (
	sessionCookie = "tollgate_session"
	loginCookie   = "tollgate_login"
)

// Defaults of [Options].
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultMaxSessions = 1000
)

// Options configure [New].
type Options struct {
	// Tokens returns the tokens of the admin port, as they are now (the
	// viewers of the current policy). They authenticate the login form, and
	// every request of a session again, so that a token removed or changed
	// ends its sessions at once. Without an admin token the dashboard is
	// disabled (every page answers 403).
	Tokens func() *adminapi.Tokens
	// Records is the store the Records page and a session's page read.
	Records records.Store
	// Insights gives the numbers of the Overview and Budgets pages and the
	// Sessions list: SpendInsights over the spend API's store.
	Insights Insights
	// SecureCookie marks the cookies Secure, for a dashboard reached over
	// TLS (through a proxy that terminates it): browsers then send them over
	// HTTPS only.
	SecureCookie bool
	// SessionTTL is how long a login lasts (DefaultSessionTTL when zero);
	// MaxSessions bounds the session store (DefaultMaxSessions when zero).
	SessionTTL  time.Duration
	MaxSessions int
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *zap.Logger
}

// Dashboard is the dashboard's handler, to mount at [Prefix].
type Dashboard struct {
	opt      Options
	insights Insights
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New returns the dashboard of opt.
func New(opt Options) (*Dashboard, error) {
	opt.SessionTTL = cmp.Or(opt.SessionTTL, DefaultSessionTTL)
	opt.MaxSessions = cmp.Or(opt.MaxSessions, DefaultMaxSessions)
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Records == nil || opt.Tokens == nil || opt.Insights == nil {
		return nil, errors.New("dashboard: no records store, insights or tokens")
	}
	d := &Dashboard{opt: opt, insights: opt.Insights, sessions: newSessions(opt.SessionTTL, opt.MaxSessions), mux: http.NewServeMux()}
	var err error
	if d.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	d.mux.HandleFunc("GET "+Prefix+"static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			d.fail(w, r, http.StatusNotFound, "No such page.")
			return
		}
		files.ServeHTTP(w, r)
	})
	d.mux.HandleFunc("GET "+Prefix+"login", d.loginForm)
	d.mux.HandleFunc("POST "+Prefix+"login", d.login)
	d.mux.HandleFunc("POST "+Prefix+"logout", d.authed(d.logout))
	d.mux.HandleFunc("GET "+Prefix+"{$}", d.authed(d.overview))
	d.mux.HandleFunc("GET "+Prefix+"budgets", d.authed(d.budgets))
	d.mux.HandleFunc("GET "+Prefix+"records", d.authed(d.recordList))
	d.mux.HandleFunc("GET "+Prefix+"records/{id}", d.authed(d.recordOne))
	d.mux.HandleFunc("GET "+Prefix+"sessions", d.authed(d.sessionList))
	d.mux.HandleFunc("GET "+Prefix+"sessions/{id}", d.authed(d.sessionOne))
	d.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "No such page.")
	})
	return d, nil
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !d.opt.Tokens().Enabled() {
		d.fail(w, r, http.StatusForbidden, "The dashboard is disabled: no admin token is configured.")
		return
	}
	if r.Method == http.MethodPost && !sameOrigin(r) {
		d.fail(w, r, http.StatusForbidden, "Cross-origin request refused.")
		return
	}
	d.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether a POST comes from a page of this host: its
// Origin header (or, without one, its Referer) names r.Host. Browsers send
// Origin on every POST; a request with neither is refused.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	return err == nil && u.Host != "" && u.Host == r.Host && (u.Scheme == "http" || u.Scheme == "https")
}

// view is what every page template gets.
type view struct {
	Title     string
	Nav       string
	Principal adminapi.Principal
	CSRF      string
	Data      any
}

type pageFunc func(w http.ResponseWriter, r *http.Request, s session)

// authed serves h to a request with a live session; a page without one
// redirects to the login form, and a POST must carry the session's CSRF
// token in the form field csrf.
func (d *Dashboard) authed(h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s session
		var ok bool
		if c, err := r.Cookie(sessionCookie); err == nil {
			if s, ok = d.sessions.get(c.Value, d.opt.Now()); ok {
				// The token must still be valid, and still the same principal.
				if p, valid := d.opt.Tokens().Authenticate(s.token); !valid || p != s.principal {
					d.sessions.remove(c.Value)
					ok = false
				}
			}
		}
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
				return
			}
			d.fail(w, r, http.StatusUnauthorized, "Log in first.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			d.fail(w, r, http.StatusForbidden, "Missing or wrong CSRF token: reload the page and try again.")
			return
		}
		ctx := context.WithValue(adminapi.WithPrincipal(r.Context(), s.principal), sessionKey{}, s)
		h(w, r.WithContext(ctx), s)
	}
}

// maxFormBytes bounds a login or logout form.
const maxFormBytes = 4096

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.showLogin(w, r, http.StatusOK, "")
}

// showLogin renders the login form with a fresh login CSRF token, bound to
// the browser by a cookie (double submit): a login only succeeds from the
// form this browser was given.
func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, d.cookie(loginCookie, tok, 600))
	d.render(w, r, status, "login", view{Title: "Log in", CSRF: tok, Data: msg})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.Value)) != 1 {
		d.fail(w, r, http.StatusForbidden, "Missing or wrong CSRF token: reload the login page and try again.")
		return
	}
	token := r.PostFormValue("token")
	p, ok := d.opt.Tokens().Authenticate(token)
	if !ok {
		d.opt.Logger.Info("dashboard login refused", zap.String("remote", r.RemoteAddr))
		d.showLogin(w, r, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	id, _ := d.sessions.create(p, token, d.opt.Now())
	d.opt.Logger.Info("dashboard login", zap.String("principal", p.Name), zap.String("team", p.Team))
	http.SetCookie(w, d.cookie(loginCookie, "", -1))
	http.SetCookie(w, d.cookie(sessionCookie, id, int(d.opt.SessionTTL/time.Second)))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		d.sessions.remove(c.Value)
	}
	http.SetCookie(w, d.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// cookie returns a dashboard cookie; maxAge < 0 deletes it.
func (d *Dashboard) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true, Secure: d.opt.SecureCookie, SameSite: http.SameSiteStrictMode}
}

// sessionKey is the context key of the request's session.
type sessionKey struct{}

// fail answers with an error page, with the navigation and the logout
// button when the request has a session.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s, _ := r.Context().Value(sessionKey{}).(session)
	d.render(w, r, status, "error", view{Title: http.StatusText(status), Principal: s.principal, CSRF: s.csrf, Data: msg})
}

// render executes page with v.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t := d.pages[page]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		d.opt.Logger.Warn("dashboard render", zap.String("page", page), zap.Error(err))
	}
}
