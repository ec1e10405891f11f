package envoytest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FakeVertexConfig configures a FakeVertex.
type FakeVertexConfig struct {
	// Project and Region are the project and location requests must name
	// in their path (required).
	Project, Region string
	// TokenLifetime is how long the access tokens the fake token endpoint
	// issues stay valid, in whole seconds (expires_in), at least one.
	// Default: an hour.
	TokenLifetime time.Duration
	// ForbiddenHeaders must never arrive, besides those that never may
	// (see alwaysForbidden; authorization is Vertex AI's own credential).
	ForbiddenHeaders []string
	// TestdataDir is FakeAnthropicConfig's: the same fixtures answer.
	TestdataDir string
}

// FakeVertex is a fake Google Vertex AI for Anthropic models, with its own
// fake OAuth2 token endpoint. It is a front (FakeAnthropicConfig.Front) on a
// FakeAnthropic, whose server, fixtures and failures by model suffix it
// reuses: it checks a request as Vertex AI would, then hands it to the
// Anthropic fake as an Anthropic request.
//
// POST /token is the token endpoint of the service-account key that
// ServiceAccountJSON returns: it verifies the RS256 JWT assertion with the
// key's public half (issuer, audience, scope, expiry) and issues an opaque
// access token valid for TokenLifetime, so golang.org/x/oauth2/google's own
// service-account flow runs against it. POST /sts exchanges
// FakeSubjectToken for an access token (workload identity federation, the
// configuration WorkloadIdentityJSON returns), and GET
// /computeMetadata/v1/instance/service-accounts/default/token issues one as
// the metadata server of GCE and GKE does (with GCE_METADATA_HOST set to
// Addr).
//
// POST /v1/projects/{Project}/locations/{Region}/publishers/anthropic/models/{model}:rawPredict
// (or :streamRawPredict) must carry authorization: Bearer with a token the
// endpoint issued and that has not expired (else a 401 UNAUTHENTICATED, in
// Google's error shape), and the body Vertex AI takes:
// anthropic_version vertex-2023-10-16, no model, stream true exactly for
// :streamRawPredict, and none of what Vertex AI rejects of what Anthropic
// clients send (checkVertexFeatures: an unknown beta in the anthropic-beta
// header, a role "system" message, a beta body field without its beta, the
// fields Vertex AI does not take); else a 400, recorded as a violation. It answers as
// FakeAnthropic does for the model of the path: messages.json, or
// messages_stream.sse event by event, and Anthropic-shaped errors for its
// failing suffixes ("-overloaded" a 529, as Vertex AI passes the model's
// own errors). Model ids ending in "-exhausted" get Google's 429
// RESOURCE_EXHAUSTED, "-unavailable" a 503 UNAVAILABLE, "-denied" a 403
// PERMISSION_DENIED. .../models/count-tokens:rawPredict takes the
// count_tokens body with anthropic_version and its model and answers
// {"input_tokens":N}.
type FakeVertex struct {
	cfg       FakeVertexConfig
	anthropic *FakeAnthropic
	apiKey    string // between the front and the Anthropic fake
	forbidden map[string]bool

	key   *rsa.PrivateKey
	keyID string

	mu         sync.Mutex
	requests   []RecordedRequest
	violations []string
	tokens     map[string]time.Time // access token -> expiry
	issued     int
	rejected   int
}

// The service account of a FakeVertex's key.
const fakeVertexClientEmail = "tollgate-test@fake-project.iam.gserviceaccount.com"

// NewFakeVertex returns a fake Vertex AI with a fresh service-account key;
// call Start.
func NewFakeVertex(cfg FakeVertexConfig) (*FakeVertex, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fake vertex: key: %w", err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	v := &FakeVertex{cfg: cfg, key: key, keyID: hex.EncodeToString(id), apiKey: "fake-vertex-inner-" + hex.EncodeToString(id),
		tokens: map[string]time.Time{}, forbidden: map[string]bool{}}
	for _, h := range cfg.ForbiddenHeaders {
		v.forbidden[strings.ToLower(h)] = true
	}
	v.anthropic = NewFakeAnthropic(FakeAnthropicConfig{APIKey: v.apiKey, TestdataDir: cfg.TestdataDir, Front: v.front})
	return v, nil
}

// Start serves on addr ("127.0.0.1:0" typically) until Close.
func (v *FakeVertex) Start(addr string) error { return v.anthropic.Start(addr) }

// Close stops the server and waits for in-flight handlers.
func (v *FakeVertex) Close() error { return v.anthropic.Close() }

// Addr is the listener address (after Start).
func (v *FakeVertex) Addr() string { return v.anthropic.Addr() }

// URL is "http://" plus Addr.
func (v *FakeVertex) URL() string { return v.anthropic.URL() }

// TokenURL is the token endpoint's URL (after Start).
func (v *FakeVertex) TokenURL() string { return v.URL() + "/token" }

// ServiceAccountJSON returns a service-account key file whose token_uri is
// the fake's token endpoint (after Start), as Google issues them.
func (v *FakeVertex) ServiceAccountJSON() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(v.key) // an RSA key always marshals
	b, _ := json.MarshalIndent(map[string]string{
		"type":           "service_account",
		"project_id":     v.cfg.Project,
		"private_key_id": v.keyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   fakeVertexClientEmail,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      v.TokenURL(),
	}, "", "  ")
	return b
}

// Requests returns a copy of every Vertex AI request received so far (the
// token endpoint's excluded), as received.
func (v *FakeVertex) Requests() []RecordedRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]RecordedRequest, len(v.requests))
	for i, r := range v.requests {
		out[i] = RecordedRequest{Method: r.Method, Path: r.Path, Host: r.Host, Header: r.Header.Clone(), Body: bytes.Clone(r.Body)}
	}
	return out
}

// Violations returns the assertion failures seen so far, the Anthropic
// fake's behind it included. A bad or expired token is not one: tests
// provoke it on purpose.
func (v *FakeVertex) Violations() []string {
	v.mu.Lock()
	out := append([]string(nil), v.violations...)
	v.mu.Unlock()
	return append(out, v.anthropic.Violations()...)
}

// TokensIssued counts the access tokens the token endpoint issued.
func (v *FakeVertex) TokensIssued() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.issued
}

// TokensRejected counts the requests refused for a missing, unknown or
// expired token.
func (v *FakeVertex) TokensRejected() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rejected
}

// Cancellations counts streams whose client went away before the end.
func (v *FakeVertex) Cancellations() int { return v.anthropic.Cancellations() }

// googleError answers in Google's API error shape.
func googleError(w http.ResponseWriter, code int, status, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	w.Header().Set("content-type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (v *FakeVertex) violation(w http.ResponseWriter, msg string) {
	v.mu.Lock()
	v.violations = append(v.violations, msg)
	v.mu.Unlock()
	googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "fake vertex: "+msg)
}

// front is the FakeAnthropic's Front: the token endpoint and the Vertex AI
// API, which hands checked requests to next as Anthropic requests.
func (v *FakeVertex) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := readAll(r)
		switch {
		case r.URL.Path == "/token":
			v.token(w, r, body)
			return
		case r.URL.Path == "/sts":
			v.exchange(w, r, body)
			return
		case strings.HasPrefix(r.URL.Path, "/computeMetadata/"):
			v.metadata(w, r)
			return
		}
		v.mu.Lock()
		v.requests = append(v.requests, RecordedRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body})
		v.mu.Unlock()
		if err != nil {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "reading body: "+err.Error())
			return
		}
		for k := range r.Header {
			if lk := strings.ToLower(k); lk == "x-api-key" || v.forbidden[lk] || (lk != "authorization" && alwaysForbidden(lk)) {
				v.violation(w, "forbidden header "+lk+" reached the provider")
				return
			}
		}
		if !v.authenticated(r.Header.Get("authorization"), time.Now()) {
			googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. "+
				"Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		}
		v.predict(w, r, body, next)
	})
}

// predict serves the rawPredict methods.
func (v *FakeVertex) predict(w http.ResponseWriter, r *http.Request, body []byte, next http.Handler) {
	prefix := "/v1/projects/" + v.cfg.Project + "/locations/" + v.cfg.Region + "/publishers/anthropic/models/"
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	seg, method, ok2 := strings.Cut(rest, ":")
	model, err := url.PathUnescape(seg)
	if !ok || !ok2 || err != nil || r.Method != http.MethodPost || strings.Contains(seg, "/") {
		v.violation(w, "no such method "+r.Method+" "+r.URL.EscapedPath())
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		v.violation(w, "body is not a JSON object: "+err.Error())
		return
	}
	if string(fields["anthropic_version"]) != `"vertex-2023-10-16"` {
		v.violation(w, fmt.Sprintf("anthropic_version is %s, want \"vertex-2023-10-16\"", fields["anthropic_version"]))
		return
	}
	delete(fields, "anthropic_version")
	if msg := checkVertexFeatures(r.Header.Values("anthropic-beta"), fields); msg != "" {
		v.violation(w, msg)
		return
	}
	path := "/v1/messages"
	switch {
	case model == "count-tokens" && method == "rawPredict":
		var m string
		if json.Unmarshal(fields["model"], &m) != nil || m == "" || strings.Contains(m, "@default") || strings.Contains(m, "@latest") {
			v.violation(w, fmt.Sprintf("count-tokens: the body's model is %s", fields["model"]))
			return
		}
		path = "/v1/messages/count_tokens"
	case method == "rawPredict" || method == "streamRawPredict":
		if _, ok := fields["model"]; ok {
			v.violation(w, "the body has model, which Vertex AI takes only in the path")
			return
		}
		if stream := string(fields["stream"]) == "true"; stream != (method == "streamRawPredict") {
			v.violation(w, fmt.Sprintf("stream %s sent to :%s", fields["stream"], method))
			return
		}
		switch {
		case strings.HasSuffix(model, "-exhausted"):
			googleError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "+
				"with base model: anthropic-claude. Please submit a quota increase request.")
			return
		case strings.HasSuffix(model, "-unavailable"):
			googleError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.")
			return
		case strings.HasSuffix(model, "-denied"):
			googleError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'aiplatform.endpoints.predict' denied on resource (or it may not exist).")
			return
		}
		fields["model"], _ = json.Marshal(model) // a string always marshals
	default:
		v.violation(w, "no such method :"+method+" of model "+model)
		return
	}
	// The Anthropic request the fake behind answers.
	out, _ := json.Marshal(fields) // raw messages always marshal
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(out)), int64(len(out))
	r2.Header.Del("authorization")
	r2.Header.Set("x-api-key", v.apiKey)
	r2.Header.Set("content-length", strconv.Itoa(len(out)))
	if r2.Header.Get("anthropic-version") == "" {
		r2.Header.Set("anthropic-version", "2023-06-01")
	}
	next.ServeHTTP(w, r2)
}

// vertexBetas are the anthropic-beta values the fake accepts: the ones
// Vertex AI takes per the sources of package cloudcompat
// (provider/internal/cloudcompat), written out here on their own so that a
// table that forgot one fails the tests. Any other value is rejected, as
// Vertex AI rejects the whole request on a beta it does not take.
var vertexBetas = []string{
	"context-1m-2025-08-07", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "compact-2026-01-12",
	"per-turn-control-2026-07-01", "tool-search-tool-2025-10-19", "web-search-2025-03-05",
	"computer-use-2025-01-24", "computer-use-2025-11-24", "thinking-display-updates-2026-08-18", "thinking-binding-controls-2026-08-01",
}

// checkVertexFeatures returns what Vertex AI rejects in a rawPredict request
// (its anthropic-beta header values, its body decoded into v) for the
// models the fake serves, or "": an unknown beta; a role other than user
// and assistant; context_management or a tool's defer_loading without its
// beta; output_config's effort or format, a tool's strict or
// eager_input_streaming, which Vertex AI does not take.
func checkVertexFeatures(header []string, v map[string]json.RawMessage) string {
	var betas []string
	for _, h := range header {
		for b := range strings.SplitSeq(h, ",") {
			if b = strings.TrimSpace(b); b != "" {
				betas = append(betas, b)
			}
		}
	}
	for _, b := range betas {
		if !slices.Contains(vertexBetas, b) {
			return "Unexpected value(s) `" + b + "` for the `anthropic-beta` header"
		}
	}
	var msgs []struct {
		Role string `json:"role"`
	}
	if raw, ok := v["messages"]; ok {
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return "messages is not a list of messages"
		}
	}
	for i, m := range msgs {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
	}
	if _, ok := v["context_management"]; ok && !slices.Contains(betas, "context-management-2025-06-27") && !slices.Contains(betas, "compact-2026-01-12") {
		return "context_management: Extra inputs are not permitted"
	}
	var oc map[string]json.RawMessage
	if raw, ok := v["output_config"]; ok && json.Unmarshal(raw, &oc) == nil {
		for _, k := range []string{"effort", "format"} {
			if _, ok := oc[k]; ok {
				return "output_config." + k + ": Extra inputs are not permitted"
			}
		}
	}
	var tools []map[string]json.RawMessage
	if raw, ok := v["tools"]; ok {
		if err := json.Unmarshal(raw, &tools); err != nil {
			return "tools is not a list of objects"
		}
	}
	for i, tool := range tools {
		for _, k := range []string{"strict", "eager_input_streaming"} {
			if _, ok := tool[k]; ok {
				return fmt.Sprintf("tools.%d.custom.%s: Extra inputs are not permitted", i, k)
			}
		}
		if _, ok := tool["defer_loading"]; ok && !slices.Contains(betas, "tool-search-tool-2025-10-19") {
			return fmt.Sprintf("tools.%d.custom.defer_loading: Extra inputs are not permitted", i)
		}
	}
	return ""
}

// authenticated reports whether auth is Bearer with a token the endpoint
// issued that is still valid at now, and counts a rejection otherwise.
func (v *FakeVertex) authenticated(auth string, now time.Time) bool {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	v.mu.Lock()
	defer v.mu.Unlock()
	exp, known := v.tokens[tok]
	if ok && known && now.Before(exp) {
		return true
	}
	v.rejected++
	return false
}

// token serves the token endpoint: the JWT-bearer grant of a service account.
func (v *FakeVertex) token(w http.ResponseWriter, r *http.Request, body []byte) {
	refuse := func(msg string) {
		v.mu.Lock()
		v.violations = append(v.violations, "token endpoint: "+msg)
		v.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		b, _ := json.Marshal(map[string]string{"error": "invalid_grant", "error_description": msg})
		_, _ = w.Write(b)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Method != http.MethodPost {
		refuse("not a form POST")
		return
	}
	if g := form.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		refuse("grant_type " + g)
		return
	}
	now := time.Now()
	if msg := v.checkAssertion(form.Get("assertion"), now); msg != "" {
		refuse(msg)
		return
	}
	v.issue(w, now, nil)
}

// issue answers a new access token valid for TokenLifetime from now, with
// the extra members of the answer.
func (v *FakeVertex) issue(w http.ResponseWriter, now time.Time, extra map[string]any) {
	life := max(v.cfg.TokenLifetime, time.Second).Round(time.Second)
	if v.cfg.TokenLifetime == 0 {
		life = time.Hour
	}
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	v.mu.Lock()
	v.issued++
	tok := fmt.Sprintf("ya29.fake-%d-%s", v.issued, hex.EncodeToString(raw))
	v.tokens[tok] = now.Add(life)
	v.mu.Unlock()
	answer := map[string]any{"access_token": tok, "expires_in": int(life / time.Second), "token_type": "Bearer"}
	for k, x := range extra {
		answer[k] = x
	}
	w.Header().Set("content-type", "application/json")
	b, _ := json.Marshal(answer)
	_, _ = w.Write(b)
}

// FakeSubjectToken is the workload's own token (an OIDC token of another
// identity provider, in life) that WorkloadIdentityJSON's credential source
// file must hold: the fake STS exchanges it, and nothing else.
const FakeSubjectToken = "fake-oidc-subject-token"

// fakeAudience is the workload identity provider of WorkloadIdentityJSON.
const fakeAudience = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/fake"

// WorkloadIdentityJSON returns the credential configuration of workload
// identity federation (type external_account, as gcloud iam
// workload-identity-pools create-cred-config writes it) whose subject token
// is read from subjectTokenFile and exchanged at the fake's STS endpoint
// (after Start).
func (v *FakeVertex) WorkloadIdentityJSON(subjectTokenFile string) []byte {
	b, _ := json.MarshalIndent(map[string]any{
		"type":               "external_account",
		"audience":           fakeAudience,
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
		"token_url":          v.URL() + "/sts",
		"credential_source":  map[string]string{"file": subjectTokenFile},
	}, "", "  ")
	return b
}

// exchange serves the STS endpoint: the token exchange of workload
// identity federation.
func (v *FakeVertex) exchange(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	switch {
	case err != nil || r.Method != http.MethodPost:
		err = fmt.Errorf("not a form POST")
	case form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
		err = fmt.Errorf("grant_type %s", form.Get("grant_type"))
	case form.Get("audience") != fakeAudience || form.Get("subject_token") != FakeSubjectToken:
		err = fmt.Errorf("audience %s, subject token %s", form.Get("audience"), redact(form.Get("subject_token")))
	case !strings.Contains(" "+form.Get("scope")+" ", " https://www.googleapis.com/auth/cloud-platform "):
		err = fmt.Errorf("scope %s", form.Get("scope"))
	}
	if err != nil {
		v.mu.Lock()
		v.violations = append(v.violations, "sts: "+err.Error())
		v.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		b, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": err.Error()})
		_, _ = w.Write(b)
		return
	}
	v.issue(w, time.Now(), map[string]any{"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
}

// metadata serves what Google's libraries ask the metadata server of GCE
// (and of GKE workload identity) for, with GCE_METADATA_HOST set to the
// fake's address: the default service account's token and the project id.
func (v *FakeVertex) metadata(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor: Google", http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/service-accounts/default/token":
		if !strings.Contains(","+r.URL.Query().Get("scopes")+",", ",https://www.googleapis.com/auth/cloud-platform,") {
			v.mu.Lock()
			v.violations = append(v.violations, "metadata: token scopes "+r.URL.Query().Get("scopes"))
			v.mu.Unlock()
		}
		v.issue(w, time.Now(), nil)
	case "/computeMetadata/v1/project/project-id":
		_, _ = io.WriteString(w, v.cfg.Project)
	default:
		http.NotFound(w, r)
	}
}

// checkAssertion returns what is wrong with a service account's JWT
// assertion at now, or "": an RS256 signature by the fake's key, its key
// id, and the claims Google checks (issuer, audience, scope, times).
func (v *FakeVertex) checkAssertion(jwt string, now time.Time) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "the assertion is not a JWT"
	}
	dec := base64.RawURLEncoding
	var header struct{ Alg, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	h, err1 := dec.DecodeString(parts[0])
	c, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(h, &header) != nil || json.Unmarshal(c, &claims) != nil {
		return "the assertion does not decode"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch {
	case header.Alg != "RS256" || header.Kid != v.keyID:
		return fmt.Sprintf("alg %s kid %s", header.Alg, header.Kid)
	case rsa.VerifyPKCS1v15(&v.key.PublicKey, crypto.SHA256, sum[:], sig) != nil:
		return "invalid JWT signature"
	case claims.Iss != fakeVertexClientEmail || claims.Aud != v.TokenURL():
		return fmt.Sprintf("iss %s aud %s", claims.Iss, claims.Aud)
	case !strings.Contains(" "+claims.Scope+" ", " https://www.googleapis.com/auth/cloud-platform "):
		return "scope " + claims.Scope
	case claims.Exp <= now.Unix() || claims.Iat > now.Add(time.Minute).Unix() || claims.Exp-claims.Iat > 3600:
		return fmt.Sprintf("iat %d exp %d at %d", claims.Iat, claims.Exp, now.Unix())
	}
	return ""
}
