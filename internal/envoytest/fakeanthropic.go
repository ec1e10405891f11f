package envoytest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

//go:embed testdata/messages.json testdata/messages_stream.sse
var defaultTestdata embed.FS

// FakeAnthropicConfig configures a FakeAnthropic.
type FakeAnthropicConfig struct {
	// APIKey is the x-api-key every API request must carry (required).
	APIKey string
	// ForbiddenHeaders must never arrive, in addition to those that never
	// may (see alwaysForbidden).
	ForbiddenHeaders []string
	// TestdataDir holds messages.json and messages_stream.sse. Default: the
	// copies embedded from this package's testdata directory.
	TestdataDir string
	// BasePath is the path the API is served under, for a provider whose
	// base_url has a path ("/second" serves POST /second/v1/messages); the
	// paths below it are a 404. /healthz stays at the root. Default: "".
	BasePath string
	// MidBodyRelease, when set, holds a "-midreset" response after its
	// partial body until it is closed (or the client goes away), so that a
	// test can let the reset come once the client has what came before.
	MidBodyRelease <-chan struct{}
	// Front, when set, wraps the fake's handler in Start: another
	// provider's fake (FakeVertex) sees each request first and hands the
	// ones it has checked and rewritten to the Anthropic fake behind it.
	Front func(http.Handler) http.Handler
	// SplitSeed, when not zero, writes the streams of "-tools" models in
	// pieces cut at random offsets seeded with it.
	SplitSeed uint64
}

// RecordedRequest is one request the fake received.
type RecordedRequest struct {
	Method string
	Path   string // with the query string
	Host   string // the Host header (HTTP/1.1) or :authority (HTTP/2)
	Header http.Header
	Body   []byte
}

// FakeAnthropic is a fake Anthropic API upstream that asserts what it
// received: the provider key, anthropic-version, and no gateway credential,
// cookie or gateway header. Violations are recorded and answered with a 400
// Anthropic error naming them.
//
// POST /v1/messages (under BasePath) answers from messages.json, or with stream:true from
// messages_stream.sse event by event, with the request's model. Models ending
// in "-slow" stream a delta every 20 ms for up to 60 s; models ending in
// "-dense" answer (without streaming) with a usage of one input token per
// byte of the request body and all of max_tokens; models ending in "-cut"
// end the stream cleanly before message_delta; "fake-error-500" and
// "fake-error-429" answer with that error. Failures by suffix, streaming or
// not: "-overloaded" is a 529 overloaded_error with retry-after: 3 and
// x-should-retry: true, "-invalid" a 400 invalid_request_error, "-reset"
// closes the connection before any response header, and "-stall" sends no
// response header until the client goes away (counted as a cancellation) or
// 60 s pass. Failures after the response started: "-midreset" sends the
// headers and part of the body (streaming: message_start and the text deltas,
// up to content_block_stop; not: half the JSON, under a content-length for
// all of it), then resets the connection; "-midstall" sends the same, then
// nothing more until the client goes away or 60 s pass; "-midoverloaded"
// (streaming) sends the same start, then an overloaded_error event, and ends.
// Models containing "-tools" answer tool calls (toolsAnswer).
// POST /v1/messages/count_tokens,
// GET /v1/models, GET /v1/models/claude-sonnet-4-5 and GET /healthz (no auth)
// are served too; anything else is
// a 404 Anthropic error.
type FakeAnthropic struct {
	fakeServer
	cfg       FakeAnthropicConfig
	forbidden map[string]bool

	// cancellations and seq are guarded by fakeServer's mu.
	cancellations int
	seq           int
}

// NewFakeAnthropic returns a fake provider; call Start or mount Handler.
func NewFakeAnthropic(cfg FakeAnthropicConfig) *FakeAnthropic {
	f := &FakeAnthropic{cfg: cfg, forbidden: map[string]bool{}}
	for _, h := range cfg.ForbiddenHeaders {
		f.forbidden[strings.ToLower(h)] = true
	}
	return f
}

// Start serves on addr ("127.0.0.1:0" typically) until Close.
func (f *FakeAnthropic) Start(addr string) error {
	h := f.Handler()
	if f.cfg.Front != nil {
		h = f.cfg.Front(h)
	}
	return f.listen("fake anthropic", addr, h)
}

// Cancellations counts streams whose client went away before the end.
func (f *FakeAnthropic) Cancellations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancellations
}

// Handler returns the fake's HTTP handler.
func (f *FakeAnthropic) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.active.enter() {
			http.Error(w, "fake anthropic: shutting down", http.StatusServiceUnavailable)
			return
		}
		defer f.active.exit()
		f.serve(w, r)
	})
}

func (f *FakeAnthropic) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := readAll(r)
	f.mu.Lock()
	f.seq++
	reqID := fmt.Sprintf("req_fake_%06d", f.seq)
	f.requests = append(f.requests, RecordedRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
	w.Header().Set("request-id", reqID)
	if err != nil {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "reading body: "+err.Error())
		return
	}
	if v := f.check(r); len(v) > 0 {
		f.mu.Lock()
		f.violations = append(f.violations, v...)
		f.mu.Unlock()
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "fake provider: "+strings.Join(v, "; "))
		return
	}
	path, underBase := strings.CutPrefix(r.URL.Path, strings.TrimSuffix(f.cfg.BasePath, "/"))
	if !underBase || !strings.HasPrefix(path, "/") {
		path = ""
	}
	switch {
	case r.Method == http.MethodPost && path == "/v1/messages":
		f.messages(w, r, body)
	case r.Method == http.MethodPost && path == "/v1/messages/count_tokens":
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"input_tokens":%d}`, max(1, len(body)/4))
	case r.Method == http.MethodGet && path == "/v1/models":
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write([]byte(fakeModels))
	case r.Method == http.MethodGet && path == "/v1/models/claude-sonnet-4-5":
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write([]byte(fakeModel))
	default:
		anthropicError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.Method+" "+r.URL.Path)
	}
}

const fakeModels = `{"data":[` +
	`{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},` +
	`{"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5","created_at":"2025-10-15T00:00:00Z"}],` +
	`"first_id":"claude-sonnet-4-5","last_id":"claude-haiku-4-5","has_more":false}`

// fakeModel is GET /v1/models/claude-sonnet-4-5's answer, the first model of
// fakeModels.
const fakeModel = `{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}`

func readAll(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// check returns the violations of the provider contract in r.
func (f *FakeAnthropic) check(r *http.Request) []string {
	var v []string
	if got := r.Header.Get("x-api-key"); got != f.cfg.APIKey {
		v = append(v, fmt.Sprintf("x-api-key is %q, want the provider key", redact(got)))
	}
	if r.Header.Get("anthropic-version") == "" {
		v = append(v, "anthropic-version is missing")
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if f.forbidden[lk] || alwaysForbidden(lk) {
			v = append(v, fmt.Sprintf("forbidden header %s reached the provider", lk))
		}
	}
	return v
}

// alwaysForbidden reports whether no request may carry the (lowercase)
// header name to a provider: the client's gateway credentials (authorization;
// proxy-authorization, which clients have used for the gateway key), its
// cookies, and every gateway header, Tollgate's and Portkey's, internal or not
// (x-portkey-config can hold provider secrets).
func alwaysForbidden(name string) bool {
	switch name {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	return strings.HasPrefix(name, "x-tollgate-") || strings.HasPrefix(name, "x-portkey-")
}

func redact(s string) string {
	if len(s) <= 4 {
		return s
	}
	return s[:4] + "…"
}

func anthropicError(w http.ResponseWriter, code int, typ, msg string) {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

var modelField = regexp.MustCompile(`"model":\s*"(?:[^"\\]|\\.)*"`)

// withModel replaces the first "model" field of a response with model.
func withModel(data []byte, model string) []byte {
	q, _ := json.Marshal(model)
	done := false
	return modelField.ReplaceAllFunc(data, func(m []byte) []byte {
		if done {
			return m
		}
		done = true
		return append([]byte(`"model":`), q...)
	})
}

func (f *FakeAnthropic) testdata(name string) ([]byte, error) {
	if f.cfg.TestdataDir != "" {
		return os.ReadFile(filepath.Join(f.cfg.TestdataDir, name))
	}
	return defaultTestdata.ReadFile("testdata/" + name)
}

func (f *FakeAnthropic) messages(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model     string `json:"model"`
		Stream    bool   `json:"stream"`
		MaxTokens int64  `json:"max_tokens"`
		Thinking  *struct {
			Type         string `json:"type"`
			BudgetTokens int64  `json:"budget_tokens"`
		} `json:"thinking"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.mu.Lock()
		f.violations = append(f.violations, "request body is not valid JSON: "+err.Error())
		f.mu.Unlock()
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "fake provider: body is not valid JSON")
		return
	}
	// Anthropic's rule for extended thinking (without the interleaved
	// thinking beta): 1024 <= budget_tokens < max_tokens. A gateway that
	// lowers max_tokens must lower the budget with it.
	if t := req.Thinking; t != nil && t.Type == "enabled" && !strings.Contains(r.Header.Get("anthropic-beta"), "interleaved-thinking") &&
		(t.BudgetTokens < 1024 || t.BudgetTokens >= req.MaxTokens) {
		msg := fmt.Sprintf("thinking.budget_tokens %d must be at least 1024 and less than max_tokens %d", t.BudgetTokens, req.MaxTokens)
		f.mu.Lock()
		f.violations = append(f.violations, msg)
		f.mu.Unlock()
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	if f.failure(w, r, req.Model) {
		return
	}
	switch req.Model {
	case "fake-error-500":
		anthropicError(w, http.StatusInternalServerError, "api_error", "Internal server error (fake)")
		return
	case "fake-error-429":
		w.Header().Set("retry-after", "1")
		anthropicError(w, http.StatusTooManyRequests, "rate_limit_error", "Rate limited (fake)")
		return
	}
	if strings.Contains(req.Model, "-tools") {
		f.toolsAnswer(w, body) // fakeanthropic_tools.go
		return
	}
	if !req.Stream && strings.HasSuffix(req.Model, "-dense") {
		// The densest usage a request can honestly have: one input token
		// per byte of its body (a token covers at least one byte of UTF-8),
		// and all of max_tokens.
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_dense","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"x"}],`+
			`"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`, req.Model, len(body), req.MaxTokens)
		return
	}
	if !req.Stream {
		data, err := f.testdata("messages.json")
		if err != nil {
			anthropicError(w, http.StatusInternalServerError, "api_error", err.Error())
			return
		}
		data = withModel(data, req.Model)
		w.Header().Set("content-type", "application/json")
		if failsMidBody(req.Model) {
			// Headers announce the whole body; half of it comes, then the
			// failure.
			w.Header().Set("content-length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(data[:len(data)/2])
			_ = http.NewResponseController(w).Flush()
			f.failMidBody(r, req.Model)
			return
		}
		_, _ = w.Write(data)
		return
	}
	data, err := f.testdata("messages_stream.sse")
	if err != nil {
		anthropicError(w, http.StatusInternalServerError, "api_error", err.Error())
		return
	}
	events := splitEvents(withModel(data, req.Model))
	w.Header().Set("content-type", "text/event-stream")
	w.Header().Set("cache-control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(ev []byte) bool {
		if _, err := w.Write(ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	ok := true
	switch {
	case strings.HasSuffix(req.Model, "-slow"):
		ok = f.slowStream(r.Context(), events, write)
	case strings.HasSuffix(req.Model, "-cut"):
		// The provider ends the response cleanly but early: everything before
		// message_delta, then the end of the body (a cut the gateway can see).
		for _, ev := range events {
			if bytes.Contains(ev, []byte("event: message_delta")) {
				break
			}
			if ok = write(ev); !ok {
				break
			}
		}
	case req.Stream && strings.HasSuffix(req.Model, "-midoverloaded"):
		// Anthropic's mid-stream error: the stream's start, then an
		// overloaded_error event, and the end of the body.
		ok = writeUntilBlockStop(events, write)
		if ok {
			ok = write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded (fake)\"}}\n\n"))
		}
	case failsMidBody(req.Model):
		// The response has started: message_start and the text deltas, up
		// to content_block_stop, then the failure.
		ok = writeUntilBlockStop(events, write)
		if ok {
			f.failMidBody(r, req.Model)
			return
		}
	default:
		for _, ev := range events {
			if ok = write(ev); !ok {
				break
			}
		}
	}
	if !ok || r.Context().Err() != nil {
		f.mu.Lock()
		f.cancellations++
		f.mu.Unlock()
	}
}

// Retry-after the fake's 529 gives, in seconds.
const fakeOverloadedRetryAfter = "3"

// failure answers the failing behaviours that model's suffix asks for and
// reports whether it did: "-overloaded" a 529 overloaded_error with
// retry-after and x-should-retry: true, "-invalid" a 400
// invalid_request_error, "-reset" a connection reset before any response
// header, "-stall" no response header until the client goes away (or 60 s).
func (f *FakeAnthropic) failure(w http.ResponseWriter, r *http.Request, model string) bool {
	switch {
	case strings.HasSuffix(model, "-overloaded"):
		w.Header().Set("retry-after", fakeOverloadedRetryAfter)
		w.Header().Set("x-should-retry", "true")
		anthropicError(w, 529, "overloaded_error", "Overloaded (fake)")
	case strings.HasSuffix(model, "-invalid"):
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "Invalid request (fake)")
	case strings.HasSuffix(model, "-reset"):
		// net/http closes the connection (HTTP/1.1) or resets the stream
		// (HTTP/2) of a handler that panics with ErrAbortHandler, without
		// writing a response or logging.
		panic(http.ErrAbortHandler)
	case strings.HasSuffix(model, "-stall"):
		t := time.NewTimer(60 * time.Second)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			f.mu.Lock()
			f.cancellations++
			f.mu.Unlock()
		case <-t.C:
			anthropicError(w, http.StatusGatewayTimeout, "api_error", "Stalled for 60 s (fake)")
		}
	default:
		return false
	}
	return true
}

// Suffixes of the models whose response fails after its headers.
const (
	suffixMidReset = "-midreset"
	suffixMidStall = "-midstall"
)

// failsMidBody reports whether model asks for a failure after the response
// headers and part of the body.
func failsMidBody(model string) bool {
	return strings.HasSuffix(model, suffixMidReset) || strings.HasSuffix(model, suffixMidStall)
}

// failMidBody ends a response that has started: "-midreset" resets the
// connection (HTTP/1.1: closed before the body's end; HTTP/2: RST_STREAM),
// once MidBodyRelease (if set) is closed,
// "-midstall" sends nothing more until the client goes away (counted as a
// cancellation) or 60 s pass.
func (f *FakeAnthropic) failMidBody(r *http.Request, model string) {
	if strings.HasSuffix(model, suffixMidReset) {
		if f.cfg.MidBodyRelease != nil {
			select {
			case <-f.cfg.MidBodyRelease:
			case <-r.Context().Done():
			}
		}
		panic(http.ErrAbortHandler)
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		f.mu.Lock()
		f.cancellations++
		f.mu.Unlock()
	case <-t.C:
	}
}

// slowStream sends message_start and content_block_start, then a delta every
// 20 ms for up to 60 s, then the normal ending. It reports false when the
// client went away first.
func (f *FakeAnthropic) slowStream(ctx context.Context, events [][]byte, write func([]byte) bool) bool {
	var head, tail [][]byte
	for _, ev := range events {
		switch {
		case bytes.Contains(ev, []byte("event: message_start")), bytes.Contains(ev, []byte("event: content_block_start")):
			head = append(head, ev)
		case bytes.Contains(ev, []byte("event: content_block_delta")), bytes.Contains(ev, []byte("event: ping")):
		default:
			tail = append(tail, ev)
		}
	}
	for _, ev := range head {
		if !write(ev) {
			return false
		}
	}
	delta := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tick \"}}\n\n")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			break loop
		case <-tick.C:
			if !write(delta) {
				return false
			}
		}
	}
	for _, ev := range tail {
		if !write(ev) {
			return false
		}
	}
	return true
}

// splitEvents splits an SSE file into events, each ending with a blank line.
func splitEvents(data []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(bytes.TrimSpace(data), []byte("\n\n")) {
		if len(bytes.TrimSpace(part)) == 0 {
			continue
		}
		out = append(out, append(append([]byte(nil), part...), '\n', '\n'))
	}
	return out
}

// writeUntilBlockStop writes events up to the first content_block_stop (the
// stream's start and its text deltas) and reports whether every write went
// through.
func writeUntilBlockStop(events [][]byte, write func([]byte) bool) bool {
	for _, ev := range events {
		if bytes.Contains(ev, []byte("event: content_block_stop")) {
			return true
		}
		if !write(ev) {
			return false
		}
	}
	return true
}
