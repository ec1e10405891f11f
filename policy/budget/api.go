package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

// maxResetBody bounds the body of POST /v1/budgets/reset.
const maxResetBody = 4 << 10

// NewAPIHandler serves the budgets API, for the admin port:
//
//	GET  /v1/budgets?scope=key:alice-laptop   the current window of every limit of the scope
//	POST /v1/budgets/reset                    {"scope": "key:alice-laptop", "unit": "usd", "per": "day"}
//
// A scope is kind:name (key, user, team, project, provider, session) or
// global; a session scope shows the limits every session has. budgets
// returns the current policy's budgets; it is called once per request, so a
// reloaded policy applies at once. A reset empties the current window of one
// limit (per is omitted for a concurrency limit), is logged to log as an
// audit line ("budget reset", with the scope, the limit, what was used and
// the caller's address), and answers with the window before and after.
//
// Every request needs "Authorization: Bearer <adminToken>"; with no admin
// token the API is disabled and answers 403. Errors are JSON,
// {"error": {"type": ..., "message": ...}}: 400 invalid_request, 401
// authentication_error, 403 api_disabled, 404 not_found (no such limit), 405
// method_not_allowed, 503 ledger_unavailable.
func NewAPIHandler(ledger Ledger, budgets func() *Config, adminToken string, log *zap.Logger) http.Handler {
	return newAPIHandler(ledger, budgets, adminToken, log, time.Now)
}

// newAPIHandler is NewAPIHandler with the clock passed in.
func newAPIHandler(ledger Ledger, budgets func() *Config, adminToken string, log *zap.Logger, now func() time.Time) http.Handler {
	if log == nil {
		log = zap.NewNop()
	}
	h := &apiHandler{ledger: ledger, budgets: budgets, log: log, now: now}
	return adminapi.NewAPI("budgets", adminToken,
		adminapi.Route{Method: http.MethodGet, Path: "/v1/budgets", Handler: h.get},
		adminapi.Route{Method: http.MethodPost, Path: "/v1/budgets/reset", Handler: h.reset})
}

type apiHandler struct {
	ledger  Ledger
	budgets func() *Config
	log     *zap.Logger
	now     func() time.Time
}

// windowJSON is one limit's current window. Amounts are strings in the
// limit's unit: USD as a decimal ("18.75"), the others as integers.
type windowJSON struct {
	Unit        string     `json:"unit"`
	Per         string     `json:"per,omitempty"`
	Limit       string     `json:"limit"`
	Used        string     `json:"used"`
	Held        string     `json:"held"`
	Remaining   string     `json:"remaining"`
	WindowStart *time.Time `json:"window_start,omitempty"`
	ResetsAt    *time.Time `json:"resets_at,omitempty"`
}

func toJSON(b Balance) windowJSON {
	u := b.Limit.Unit
	w := windowJSON{
		Unit: u.String(), Per: b.Limit.Per.String(),
		Limit: u.Format(b.Limit.Max), Used: u.Format(b.Used), Held: u.Format(b.Held), Remaining: u.Format(b.Remaining()),
	}
	if !b.Start.IsZero() {
		w.WindowStart = &b.Start
	}
	if !b.ResetAt.IsZero() {
		w.ResetsAt = &b.ResetAt
	}
	return w
}

type scopeJSON struct {
	Scope    string       `json:"scope"`
	Timezone string       `json:"timezone"`
	Windows  []windowJSON `json:"windows"`
}

func (h *apiHandler) get(w http.ResponseWriter, r *http.Request) {
	params, err := adminapi.Params(r.URL.Query(), "scope")
	if err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", "GET /v1/budgets takes one parameter, scope (such as key:alice-laptop, team:platform or global)")
		return
	}
	scope, err := ParseScope(params["scope"])
	if err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	cfg := h.budgets()
	query := cfg.Query(scope)
	if len(query.Limits) == 0 {
		adminapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("the policy sets no budget for %s", scope))
		return
	}
	balances, err := h.ledger.Read(r.Context(), query, h.now())
	if err != nil {
		h.ledgerError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, h.scopeJSON(scope, query, balances))
}

func (h *apiHandler) scopeJSON(s Scope, q Query, bs []Balance) scopeJSON {
	out := scopeJSON{Scope: s.String(), Timezone: location(q.Location).String(), Windows: make([]windowJSON, len(bs))}
	for i, b := range bs {
		out.Windows[i] = toJSON(b)
	}
	return out
}

type resetRequest struct {
	Scope string `json:"scope"`
	Unit  string `json:"unit"`
	Per   string `json:"per"`
}

func (h *apiHandler) reset(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResetBody+1))
	if err != nil || len(body) > maxResetBody {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", "the body must be a small JSON object")
		return
	}
	var req resetRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", `the body must be {"scope": "key:ID", "unit": "usd|tokens|requests|concurrent", "per": "minute|hour|day|week|month|session"}`)
		return
	}
	scope, err := ParseScope(req.Scope)
	if err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	unit, err := ParseUnit(req.Unit)
	if err != nil {
		adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	per := NoWindow
	if req.Per != "" {
		if per, err = ParseWindow(req.Per); err != nil {
			adminapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	query := h.budgets().Query(scope)
	var lim *Limit
	for i := range query.Limits {
		if l := query.Limits[i]; l.Unit == unit && l.Per == per {
			lim = &query.Limits[i]
		}
	}
	if lim == nil {
		what := unit.String()
		if per != NoWindow {
			what += " per " + per.String()
		}
		adminapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("the policy sets no %s budget for %s", what, scope))
		return
	}
	query.Limits = []Limit{*lim}
	now := h.now()
	before, err := h.ledger.Read(r.Context(), query, now)
	if err != nil {
		h.ledgerError(w, err)
		return
	}
	if err := h.ledger.Reset(r.Context(), query, now); err != nil {
		h.ledgerError(w, err)
		return
	}
	after, err := h.ledger.Read(r.Context(), query, now)
	if err != nil {
		h.ledgerError(w, err)
		return
	}
	h.log.Info("budget reset",
		zap.String("scope", scope.String()), zap.String("limit", lim.String()),
		zap.String("used_before", unit.Format(before[0].Used)), zap.String("used_after", unit.Format(after[0].Used)),
		zap.Time("window_start", before[0].Start), zap.String("remote_addr", r.RemoteAddr))
	adminapi.WriteJSON(w, http.StatusOK, struct {
		Scope  string     `json:"scope"`
		Before windowJSON `json:"before"`
		After  windowJSON `json:"after"`
	}{scope.String(), toJSON(before[0]), toJSON(after[0])})
}

func (h *apiHandler) ledgerError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrUnavailable) {
		adminapi.WriteError(w, http.StatusServiceUnavailable, "ledger_unavailable", err.Error())
		return
	}
	adminapi.WriteError(w, http.StatusInternalServerError, "ledger_error", err.Error())
}
