package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/records"
)

// Failures after the response headers went to the client. Envoy retries an
// attempt only before then: Router::Filter::maybeRetryReset
// (source/common/router/router.cc) returns false once
// downstream_response_started_ is set (Router::Filter::onUpstreamHeaders sets
// it as it passes the headers on, and drops retry_state_ there too), so
// neither an upstream reset (Router::Filter::onUpstreamReset) nor a per-try
// idle timeout (Router::Filter::onPerTryTimeoutCommon; the timer,
// UpstreamRequest::resetPerTryIdleTimer in upstream_request.cc, is re-armed
// by every chunk and stays armed after the headers) moves the request to the
// next provider. Both end in Router::Filter::onUpstreamAbort, whose
// sendLocalReply, with the response headers already encoded, resets the
// downstream stream instead (DownstreamFilterManager::sendLocalReply,
// source/common/http/filter_manager.cc): an HTTP/1.1 client sees its
// connection close before the chunked body's end, an HTTP/2 client a
// RST_STREAM. No filter runs after that, so no processor can add bytes: the
// client gets the cut stream, which the SDK reports as an error. The policy
// role's ext_proc stream is reset with it (half close, then reset).

// afterHeaders sends one request for model through chain c, whose first
// provider fails after its headers, and returns what the SDK saw: the event
// types (streaming) and the error. release, when not nil, lets a
// "-midreset" provider reset (FakeAnthropicConfig.MidBodyRelease) once the
// client has what came before: the response headers (a message), or the
// stream's two text deltas. Envoy would retry a reset that beat the
// headers to the router (the adapter holds them for its round trip), which
// is not the case under test.
func afterHeaders(t *testing.T, c *chain, model string, stream bool, release func()) ([]string, error) {
	t.Helper()
	if release == nil {
		release = func() {}
	}
	if !stream {
		_, err := c.client.Messages.New(context.Background(), hello(model),
			option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
				resp, err := next(r)
				release()
				return resp, err
			}))
		return nil, err
	}
	s := c.client.Messages.NewStreaming(context.Background(), hello(model))
	var types []string
	deltas := 0
	for s.Next() {
		types = append(types, s.Current().Type)
		if s.Current().Type == "content_block_delta" {
			if deltas++; deltas == 2 {
				release()
			}
		}
	}
	return types, s.Err()
}

// checkNotRetried checks that the second provider was never asked and that
// the record has the one attempt, answered 200 by the first provider.
func checkNotRetried(t *testing.T, c *chain, rec records.Record) {
	t.Helper()
	if n := len(c.b.Requests()); n != 0 {
		t.Errorf("the second provider got %d requests; a failure after the headers is never retried", n)
	}
	if as := rec.Attempts; len(as) != 1 || as[0].Provider != "demo" || as[0].Status != http.StatusOK {
		t.Errorf("attempts %+v; want demo's 200 alone", as)
	}
	if rec.Status != http.StatusOK || rec.Provider != "demo" {
		t.Errorf("record status %d provider %q", rec.Status, rec.Provider)
	}
}

// A provider that ends its stream early but cleanly (no message_delta, no
// message_stop): the policy role sees the end of the body and appends an
// Anthropic error event, which the SDK reports; the record is incomplete,
// with the attempt trail and the usage streamed so far.
func TestStreamEndedEarlyGetsAnErrorEvent(t *testing.T) {
	c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-cut"})
	types, err := afterHeaders(t, c, "claude-sonnet-4-5", true, nil)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.Type() != "api_error" {
		t.Fatalf("SDK error %v; want the api_error event", err)
	}
	if len(types) == 0 || types[0] != "message_start" {
		t.Errorf("events %v", types)
	}
	rec := c.recs.wait(t, 1)[0]
	checkNotRetried(t, c, rec)
	if rec.Outcome != records.OutcomeIncomplete || rec.Usage.InputTokens != 12 || !rec.UsageEstimated || rec.CostPicoUSD <= 0 {
		t.Errorf("record outcome %q usage %+v estimated %v cost %d", rec.Outcome, rec.Usage, rec.UsageEstimated, rec.CostPicoUSD)
	}
}

// A provider's own error event inside its 200 stream reaches the client as
// it is, unretried; the record is a provider error of its type.
func TestStreamErrorEventPassesThrough(t *testing.T) {
	c := newChain(t, chainOptions{aModel: "claude-sonnet-4-5-midoverloaded"})
	types, err := afterHeaders(t, c, "claude-sonnet-4-5", true, nil)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.Type() != "overloaded_error" {
		t.Fatalf("SDK error %v; want the provider's overloaded_error event", err)
	}
	if len(types) == 0 || types[0] != "message_start" {
		t.Errorf("events %v", types)
	}
	rec := c.recs.wait(t, 1)[0]
	checkNotRetried(t, c, rec)
	if rec.Outcome != records.OutcomeProviderError || rec.ErrorType != "overloaded_error" || rec.Usage.InputTokens != 12 {
		t.Errorf("record outcome %q error type %q usage %+v", rec.Outcome, rec.ErrorType, rec.Usage)
	}
}

// A provider whose connection is reset, or that stalls past
// per_try_idle_timeout, after the headers and part of the stream: Envoy
// resets the client's stream (see above), never the next provider.
func TestFailureAfterHeaders(t *testing.T) {
	for _, tt := range []struct {
		name    string
		model   string
		stream  bool
		errType string
	}{
		{"stream reset", "claude-sonnet-4-5-midreset", true, "provider_reset"},
		{"stream stall", "claude-sonnet-4-5-midstall", true, "provider_stalled"},
		{"message reset", "claude-sonnet-4-5-midreset", false, "provider_reset"},
		{"message stall", "claude-sonnet-4-5-midstall", false, "provider_stalled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			c := newChain(t, chainOptions{aModel: tt.model, aRelease: gate})
			var once sync.Once
			types, err := afterHeaders(t, c, "claude-sonnet-4-5", tt.stream, func() { once.Do(func() { close(gate) }) })
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("SDK error %v; want the cut body's unexpected EOF", err)
			}
			if got := strings.Join(types, " "); tt.stream && got != "message_start content_block_start content_block_delta content_block_delta" {
				t.Errorf("events %s; want the stream's start (the SDK skips pings)", got)
			}
			rec := c.recs.wait(t, 1)[0]
			checkNotRetried(t, c, rec)
			if rec.Outcome != records.OutcomeIncomplete || rec.ErrorType != tt.errType {
				t.Errorf("outcome %q error type %q, want incomplete %q", rec.Outcome, rec.ErrorType, tt.errType)
			}
			// Told by Envoy's access log, not by timing.
			if n := endingWaits(t, c.reg, "found"); n != 1 {
				t.Errorf("endings found in the access log: %v, want 1", n)
			}
			if tt.stream && (rec.Usage.InputTokens != 12 || rec.Usage.CacheReadTokens != 30500 || rec.CostPicoUSD <= 0) {
				t.Errorf("usage %+v cost %d; want message_start's input metered", rec.Usage, rec.CostPicoUSD)
			}
		})
	}
}

// A client that leaves mid-stream is recorded as cancelled, not as a stall,
// on a route whose per_try_idle_timeout is short (1 s): the provider never
// went quiet.
func TestClientLeavingIsNotAStall(t *testing.T) {
	c := newChain(t, chainOptions{aModel: "claude-fake-slow"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := c.client.Messages.NewStreaming(ctx, hello("claude-sonnet-4-5"))
	deltas := 0
	for deltas < 3 && s.Next() {
		if s.Current().Type == "content_block_delta" {
			deltas++
		}
	}
	if deltas < 3 {
		t.Fatalf("stream ended after %d deltas: %v", deltas, s.Err())
	}
	cancel()
	s.Close()
	rec := c.recs.wait(t, 1)[0]
	if rec.Outcome != records.OutcomeCancelled || rec.ErrorType != "" {
		t.Errorf("outcome %q error type %q; want cancelled", rec.Outcome, rec.ErrorType)
	}
	// Envoy's access log said DC (the SDK speaks HTTP/1.1 and closed its
	// connection).
	if n := endingWaits(t, c.reg, "found"); n != 1 {
		t.Errorf("endings found in the access log: %v, want 1", n)
	}
}

// endingWaits is tollgate_ending_waits_total{result} of a server.
func endingWaits(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return metricValue(t, reg, "tollgate_ending_waits_total", map[string]string{"result": result})
}

// cutStream streams one request through a chain built from o whose first
// provider, sent model, fails after the stream's start, and returns the
// chain and the record.
func cutStream(t *testing.T, o chainOptions, model string) (*chain, records.Record) {
	t.Helper()
	gate := make(chan struct{})
	o.aModel, o.aRelease = model, gate
	c := newChain(t, o)
	var once sync.Once
	if _, err := afterHeaders(t, c, "claude-sonnet-4-5", true, func() { once.Do(func() { close(gate) }) }); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("SDK error %v; want the cut body's unexpected EOF", err)
	}
	return c, c.recs.wait(t, 1)[0]
}

// The access-log stream of a request may reach another replica than its
// policy stream: that replica stores the ending in Redis, where the policy
// role's replica reads it.
func TestEndingFromAnotherReplica(t *testing.T) {
	rdb := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: rdb.Addr()})
	t.Cleanup(func() { rc.Close() })
	c, rec := cutStream(t, chainOptions{split: true, accessLogOnAdapter: true, endings: endings.NewRedis(rc, 0)},
		"claude-sonnet-4-5-midreset")
	checkNotRetried(t, c, rec)
	if rec.Outcome != records.OutcomeIncomplete || rec.ErrorType != "provider_reset" {
		t.Errorf("outcome %q error type %q; want incomplete provider_reset", rec.Outcome, rec.ErrorType)
	}
	stored := func(reg *prometheus.Registry) float64 {
		return metricValue(t, reg, "tollgate_access_log_entries_total", map[string]string{"result": "stored"})
	}
	if p, a := stored(c.reg), stored(c.regAdapter); p != 0 || a != 1 {
		t.Errorf("endings stored by the policy replica %v, by the other %v; want 0 and 1", p, a)
	}
	if n := endingWaits(t, c.reg, "found"); n != 1 {
		t.Errorf("endings found: %v, want 1", n)
	}
}

// When the ending does not come within the wait (here: it went to a replica
// that keeps it in its own memory), the record is written by timing, as
// before the access log: a reset looks like a client that left, a long
// silence like a stall; the miss is counted.
func TestEndingNotInTime(t *testing.T) {
	for _, tt := range []struct {
		model     string
		outcome   records.Outcome
		errorType string
	}{
		{"claude-sonnet-4-5-midreset", records.OutcomeCancelled, ""},
		{"claude-sonnet-4-5-midstall", records.OutcomeIncomplete, "provider_stalled"},
	} {
		t.Run(tt.model, func(t *testing.T) {
			c, rec := cutStream(t, chainOptions{split: true, accessLogOnAdapter: true, endingWait: 300 * time.Millisecond}, tt.model)
			if rec.Outcome != tt.outcome || rec.ErrorType != tt.errorType {
				t.Errorf("outcome %q error type %q; want %q %q", rec.Outcome, rec.ErrorType, tt.outcome, tt.errorType)
			}
			if found, missed := endingWaits(t, c.reg, "found"), endingWaits(t, c.reg, "missed"); found != 0 || missed != 1 {
				t.Errorf("endings found %v, missed %v; want 0 and 1", found, missed)
			}
		})
	}
}
