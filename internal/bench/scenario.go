package bench

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed scenarios/*.yaml
var embedded embed.FS

// DefaultScenarios returns the scenario files kept in the repository
// (internal/bench/scenarios), compiled into the binary so that `tollgate bench`
// reproduces the README's numbers on any machine.
func DefaultScenarios() fs.FS {
	sub, err := fs.Sub(embedded, "scenarios")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Scenario statuses.
const (
	StatusReady  = "ready"
	StatusNotYet = "not-yet" // the feature it measures does not exist yet
)

// Scenario is one kind of request, replayed the way Envoy plays it to both ext_proc
// filters of envoy.yaml. Scenarios are YAML files, one per file; see
// internal/bench/scenarios for the ones the README reports.
type Scenario struct {
	// Name identifies the scenario in tables and on the command line.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Status is "ready" (the default) or "not-yet": a scenario for a feature that
	// is still being built, listed in reports but not run.
	Status string `yaml:"status"`
	Reason string `yaml:"reason"`
	// Rate is the open-loop arrival rate in requests per second; 0 takes the
	// bench's default.
	Rate float64 `yaml:"rate"`
	// Seed makes generated payloads differ between scenarios; same seed, same bytes.
	Seed     uint64       `yaml:"seed"`
	Request  RequestSpec  `yaml:"request"`
	Adapter  AdapterSpec  `yaml:"adapter"`
	Response ResponseSpec `yaml:"response"`
	// Expect is what Tollgate must answer: "continue" (the request goes to the
	// provider; the default), "deny" (an immediate response to the request
	// headers, e.g. a bad key) or "cache_hit" (an immediate 200 to the
	// request body with x-tollgate-cache-status: HIT, once the first
	// requests, played through as misses, have filled the cache). Replies
	// are checked for Tollgate only.
	Expect string `yaml:"expect"`
	// DenyStatus is the HTTP status an expected denial carries (default 401).
	DenyStatus int `yaml:"deny_status"`
	// Hold, when set, also measures memory with many streams held open in the
	// middle of this scenario's response.
	Hold *HoldSpec `yaml:"hold"`
	// Server asks for a Tollgate started with different flags or environment
	// (a policy with budgets, a Redis URL) for this scenario alone.
	Server ServerSpec `yaml:"server"`
	// Needs lists external services the scenario requires: "redis" (the bench's
	// --redis-url, or a redis-server the bench starts on a free loopback port,
	// is passed to Tollgate as TOLLGATE_REDIS_URL).
	Needs []string `yaml:"needs"`

	file string
}

// RequestSpec is the client request as Envoy hands it to the policy role.
type RequestSpec struct {
	// BodyBytes is the exact size of the generated Claude Code-shaped body.
	BodyBytes int    `yaml:"body_bytes"`
	Model     string `yaml:"model"` // default claude-opus-4-8
	Stream    *bool  `yaml:"stream"`
	Path      string `yaml:"path"` // default /v1/messages?beta=true
	// Key is the gateway key (default tg-demo-key, the embedded policy's), sent
	// in KeyHeader: "authorization" (as a Bearer token; the default, as
	// ANTHROPIC_AUTH_TOKEN does), "x-api-key" or "x-tollgate-api-key".
	Key       string `yaml:"key"`
	KeyHeader string `yaml:"key_header"`
	// Route, when set, is sent as x-tollgate-provider.
	Route string `yaml:"route"`
	// Headers are added to the client's headers.
	Headers map[string]string `yaml:"headers"`
}

// AdapterSpec is what Envoy's upstream filter sends for each attempt.
type AdapterSpec struct {
	// Provider is the endpoint metadata filter_metadata.tollgate.provider of the
	// host Envoy picked (default demo, the embedded policy's provider).
	Provider string `yaml:"provider"`
	// Attempts is how many upstream attempts the request makes (default 1). Every
	// attempt but the last gets FailStatus from its provider; only the last
	// response reaches the policy role.
	Attempts   int `yaml:"attempts"`
	FailStatus int `yaml:"fail_status"`
	// Providers, when set, names the provider of each attempt in order (a
	// fallback chain moves to the next provider on each retry); attempts
	// beyond the list, and every attempt without one, go to Provider.
	Providers []string `yaml:"providers"`
}

// provider returns the provider of attempt n (from 1).
func (a AdapterSpec) provider(n int) string {
	if n >= 1 && n <= len(a.Providers) && a.Providers[n-1] != "" {
		return a.Providers[n-1]
	}
	return a.Provider
}

// ResponseSpec is the provider's response.
type ResponseSpec struct {
	// Kind is "sse" (a streamed Messages response) or "json" (non-streaming).
	Kind string `yaml:"kind"`
	// Events is the number of SSE events, each its own body chunk (a provider
	// flushes one event per write); at least 11.
	Events int `yaml:"events"`
	// TextBytes sizes the text of a JSON response (default 1500).
	TextBytes int `yaml:"text_bytes"`
	// Chunks splits a JSON response into this many chunks (default 1).
	Chunks int `yaml:"chunks"`
	// EndStream says how the end of the response reaches the processor: "separate"
	// (the default: an empty last chunk with end_of_stream, as Envoy's HTTP/1.1
	// codec delivers the terminating zero-length chunk) or "with_last" (on the
	// last data chunk).
	EndStream string `yaml:"end_stream"`
}

// HoldSpec holds Streams requests open in the middle of their response, first
// after At[0] chunks and then after At[1], and reads the server's memory at each
// point: the memory per in-flight stream, and whether it grows with the length of
// the response.
type HoldSpec struct {
	Streams int   `yaml:"streams"` // default: the bench's --hold
	At      []int `yaml:"at"`      // chunk counts, increasing; default [3, 100]
}

// ServerSpec is how a scenario's Tollgate differs from the default one.
type ServerSpec struct {
	Args []string          `yaml:"args"`
	Env  map[string]string `yaml:"env"`
	// Policy, when set, is a whole policy file (YAML) that the bench writes next
	// to the servers' logs and passes to this scenario's Tollgate as --policy.
	// It must accept the scenario's key and route to its provider, as the
	// embedded demo policy does.
	Policy string `yaml:"policy"`
}

// Default returns whether s runs on the bench's shared Tollgate.
func (s ServerSpec) Default() bool { return len(s.Args) == 0 && len(s.Env) == 0 && s.Policy == "" }

// Key identifies a server configuration, to share one Tollgate between the
// scenarios that ask for the same.
func (s ServerSpec) Key() string {
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, a := range s.Args {
		b.WriteString(a + "\x00")
	}
	for _, k := range keys {
		b.WriteString(k + "=" + s.Env[k] + "\x00")
	}
	b.WriteString("policy=" + s.Policy)
	return b.String()
}

// Ready reports whether the scenario can run.
func (s *Scenario) Ready() bool { return s.Status == StatusReady }

// Streaming reports whether the response is SSE.
func (s *Scenario) Streaming() bool { return s.Response.Kind == "sse" }

// Deny reports whether Tollgate is expected to refuse the request at its headers.
func (s *Scenario) Deny() bool { return s.Expect == "deny" }

// expectCacheHit is the Expect of a scenario answered from the response cache.
const expectCacheHit = "cache_hit"

// CacheHit reports whether Tollgate is expected to answer the request's body
// from its response cache.
func (s *Scenario) CacheHit() bool { return s.Expect == expectCacheHit }

// LoadScenarios reads every *.yaml file of fsys, in file name order. Unknown
// fields are errors.
func LoadScenarios(fsys fs.FS) ([]*Scenario, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("bench: scenarios: %w", err)
	}
	slices.Sort(names)
	var out []*Scenario
	var errs []error
	seen := map[string]string{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("bench: %w", err))
			continue
		}
		s, err := ParseScenario(name, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[s.Name]; dup {
			errs = append(errs, fmt.Errorf("bench: %s: scenario name %q is already used by %s", name, s.Name, prev))
			continue
		}
		seen[s.Name] = name
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("bench: no scenario files (*.yaml)")
	}
	return out, nil
}

// ParseScenario decodes one scenario file strictly and fills in the defaults.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	s := &Scenario{file: file}
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", file, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(path.Base(file), path.Ext(file))
	}
	if err := s.defaults(); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", file, err)
	}
	return s, nil
}

func (s *Scenario) defaults() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch s.Status {
	case "":
		s.Status = StatusReady
	case StatusReady, StatusNotYet:
	default:
		bad("status %q: want %q or %q", s.Status, StatusReady, StatusNotYet)
	}
	if s.Status == StatusNotYet && s.Reason == "" {
		bad("a not-yet scenario needs a reason")
	}
	if s.Rate < 0 {
		bad("rate %v: must not be negative", s.Rate)
	}
	r := &s.Request
	if r.BodyBytes == 0 {
		r.BodyBytes = 2048
	}
	if r.BodyBytes < minBodyBytes {
		bad("request.body_bytes %d: at least %d", r.BodyBytes, minBodyBytes)
	}
	if r.Model == "" {
		r.Model = "claude-opus-4-8"
	}
	if r.Stream == nil {
		st := s.Response.Kind != "json"
		r.Stream = &st
	}
	if r.Path == "" {
		r.Path = "/v1/messages?beta=true"
	}
	if r.Key == "" {
		r.Key = "tg-demo-key"
	}
	switch r.KeyHeader {
	case "":
		r.KeyHeader = "authorization"
	case "authorization", "x-api-key", "x-tollgate-api-key":
	default:
		bad("request.key_header %q: want authorization, x-api-key or x-tollgate-api-key", r.KeyHeader)
	}
	a := &s.Adapter
	if a.Provider == "" {
		a.Provider = "demo"
	}
	if a.Attempts == 0 {
		a.Attempts = 1
	}
	if a.Attempts < 1 || a.Attempts > 5 {
		bad("adapter.attempts %d: 1 to 5", a.Attempts)
	}
	if a.FailStatus == 0 {
		a.FailStatus = 503
	}
	p := &s.Response
	switch p.Kind {
	case "sse":
		if p.Events == 0 {
			p.Events = 50
		}
		if p.Events < 11 {
			bad("response.events %d: at least 11", p.Events)
		}
	case "json":
		if p.TextBytes == 0 {
			p.TextBytes = 1500
		}
		if p.Chunks == 0 {
			p.Chunks = 1
		}
		if p.Chunks < 1 {
			bad("response.chunks %d: at least 1", p.Chunks)
		}
	default:
		bad("response.kind %q: want sse or json", p.Kind)
	}
	switch p.EndStream {
	case "":
		p.EndStream = "separate"
	case "separate", "with_last":
	default:
		bad("response.end_stream %q: want separate or with_last", p.EndStream)
	}
	switch s.Expect {
	case "":
		s.Expect = "continue"
	case "continue", "deny", expectCacheHit:
	default:
		bad("expect %q: want continue, deny or %s", s.Expect, expectCacheHit)
	}
	if s.DenyStatus == 0 {
		s.DenyStatus = 401
	}
	if h := s.Hold; h != nil {
		if len(h.At) == 0 {
			h.At = []int{3, 100}
		}
		if !slices.IsSorted(h.At) || h.At[0] < 1 {
			bad("hold.at %v: increasing chunk counts, from 1", h.At)
		}
		if s.Deny() || s.CacheHit() || !s.Streaming() {
			bad("hold needs an SSE response that Tollgate lets through")
		} else if last := h.At[len(h.At)-1]; last >= s.Response.Events {
			bad("hold.at %d: the response has only %d events", last, s.Response.Events)
		}
		if h.Streams < 0 {
			bad("hold.streams %d: must not be negative", h.Streams)
		}
	}
	for _, n := range s.Needs {
		if n != "redis" {
			bad("needs %q: only redis is known", n)
		}
	}
	return errors.Join(errs...)
}
