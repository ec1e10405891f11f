package records

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

// maxIDLen bounds the trace and key ids the API accepts.
const maxIDLen = 256

// NewAPIHandler serves the records API, for the admin port:
//
//	GET /v1/records?trace_id=&key=&team=&session=&since=&limit=   {"records": [...]}, newest first
//	GET /v1/traces/{id}                                          {"id", "requests", "totals"}
//
// key is a key id; session a Claude Code session id; since is RFC 3339 or
// unix seconds; limit is 1 to 1000 (default 100). Every request needs
// "Authorization: Bearer <adminToken>". With no admin token configured the
// API is disabled and answers 403. Errors are JSON,
// {"error": {"type": ..., "message": ...}}: 400 invalid_request (an
// unknown, repeated or malformed parameter), 401 authentication_error, 403
// api_disabled, 404 not_found, 405 method_not_allowed, 500 store_error.
func NewAPIHandler(store Store, adminToken string) http.Handler {
	tokens := adminapi.NewTokens(adminToken, nil)
	return NewScopedAPIHandler(store, func() *adminapi.Tokens { return tokens })
}

// NewScopedAPIHandler is NewAPIHandler for the admin token and the viewer
// tokens of tokens() (adminapi.ProtectTokens). A viewer reads only its team's
// records: GET /v1/records is filtered to its team, and asking for another
// team (team=) is 403 permission_error; GET /v1/traces/{id} returns the
// trace's records of its team, and 403 when the trace has none of them.
func NewScopedAPIHandler(store Store, tokens func() *adminapi.Tokens) http.Handler {
	return adminapi.NewScopedAPI("records", tokens, APIRoutes(store)...)
}

// APIRoutes are the records API's routes without authentication, for a
// server that authenticates its own way (the dashboard's cookie session):
// each handler reads the principal that adminapi.WithPrincipal put in the
// request's context, and a request without one sees nothing.
func APIRoutes(store Store) []adminapi.Route {
	h := &apiHandler{store: store}
	return []adminapi.Route{
		{Method: http.MethodGet, Path: "/v1/records", Handler: h.records},
		{Method: http.MethodGet, Path: "/v1/traces/{id}", Handler: h.trace},
	}
}

type apiHandler struct {
	store Store
}

func (h *apiHandler) records(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	p := adminapi.RequestPrincipal(r)
	team, ok := p.TeamFilter(q.Team)
	if !ok {
		adminapi.Forbidden(w, p, fmt.Sprintf("it cannot read the records of team %q", q.Team))
		return
	}
	q.Team = team
	recs, err := h.store.Query(r.Context(), q)
	if err != nil {
		adminapi.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
		return
	}
	if recs == nil {
		recs = []Record{}
	}
	adminapi.WriteJSON(w, http.StatusOK, struct {
		Records []Record `json:"records"`
	}{recs})
}

func (h *apiHandler) trace(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", "GET /v1/traces/{id} takes no parameters")
		return
	}
	id := r.PathValue("id")
	if err := checkID("trace id", id); err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	t, err := h.store.Trace(r.Context(), id)
	if p := adminapi.RequestPrincipal(r); err == nil && !p.Admin() {
		var ok bool
		if t, ok = teamTrace(t, p.Team); !ok {
			adminapi.Forbidden(w, p, fmt.Sprintf("trace %q has no record of that team", id))
			return
		}
	}
	switch {
	case errors.Is(err, ErrNotFound):
		adminapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no records of trace %q", id))
	case err != nil:
		adminapi.WriteError(w, http.StatusInternalServerError, "store_error", err.Error())
	default:
		adminapi.WriteJSON(w, http.StatusOK, t)
	}
}

// parseQuery reads the parameters of GET /v1/records. Unknown and repeated
// parameters are errors, so that a typo never widens a query silently.
func parseQuery(v url.Values) (Query, error) {
	params, err := adminapi.Params(v, "trace_id", "key", "team", "session", "since", "limit")
	if err != nil {
		return Query{}, err
	}
	var q Query
	if val, ok := params["trace_id"]; ok {
		if err := checkID("trace_id", val); err != nil {
			return Query{}, err
		}
		q.TraceID = val
	}
	if val, ok := params["key"]; ok {
		if err := checkID("key", val); err != nil {
			return Query{}, err
		}
		q.KeyID = val
	}
	if val, ok := params["team"]; ok {
		if err := checkID("team", val); err != nil {
			return Query{}, err
		}
		q.Team = val
	}
	if val, ok := params["session"]; ok {
		if err := checkID("session", val); err != nil {
			return Query{}, err
		}
		q.SessionID = val
	}
	if val, ok := params["since"]; ok {
		if q.Since, err = parseSince(val); err != nil {
			return Query{}, err
		}
	}
	if val, ok := params["limit"]; ok {
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > MaxQueryLimit {
			return Query{}, fmt.Errorf("limit %q: want an integer from 1 to %d", val, MaxQueryLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// parseSince reads RFC 3339 ("2026-05-01T12:00:00Z") or unix seconds.
func parseSince(s string) (time.Time, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err == nil && secs <= 253402300799 { // 9999-12-31T23:59:59Z
			return time.Unix(secs, 0).UTC(), nil
		}
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: want RFC 3339 (2026-05-01T12:00:00Z) or unix seconds", s)
}

// checkID accepts a non-empty id of printable characters, at most maxIDLen
// bytes.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%s is longer than %d bytes", what, maxIDLen)
	}
	for _, c := range id {
		if !unicode.IsPrint(c) || c == unicode.ReplacementChar {
			return fmt.Errorf("%s %q has a character that is not printable", what, id)
		}
	}
	return nil
}

// teamTrace keeps the records of t that belong to team, with their totals;
// false when none does.
func teamTrace(t Trace, team string) (Trace, bool) {
	var recs []Record
	for _, r := range t.Requests {
		if r.Team == team {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return Trace{}, false
	}
	if len(recs) == len(t.Requests) {
		return t, true
	}
	out, err := newTrace(t.ID, recs)
	return out, err == nil
}
