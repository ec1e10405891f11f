package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/records"
)

// fakeClock is an injected clock for the adapter's ping timers: a timer
// fires, in its own goroutine, when advance moves the clock past it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Duration
	f    func()
	done bool // fired or stopped
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) extproc.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// live counts the timers neither fired nor stopped.
func (c *fakeClock) live() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// waitLive polls until n timers are live, with a generous deadline.
func (c *fakeClock) waitLive(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); c.live() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d live ping timers, want %d", c.live(), n)
		}
	}
}

// advance moves the clock by d and fires the timers due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
	for _, t := range c.timers {
		if !t.done && t.at <= c.now {
			t.done = true
			go t.f()
		}
	}
}

// Issue 12: a Bedrock stream that goes silent mid-stream gets an Anthropic
// ping after each ping interval without a byte from Bedrock (clock
// injected), between whole events; the stream is otherwise the Anthropic
// fixture's, and its record is complete. Envoy accepts these bytes because
// the adapter takes such an attempt's response body in FULL_DUPLEX_STREAMED
// mode (ping.go, duplexResponseBody), where the processor may send body
// data that answers no chunk.
func TestBedrockIdleStreamIsPinged(t *testing.T) {
	clock := &fakeClock{}
	paused := make(chan struct{})
	resume := make(chan struct{})
	s := newBedrockStack(t, bedrockOptions{bModel: "anthropic.claude-sonnet-4-5-idle", afterFunc: clock.AfterFunc, pingInterval: 15 * time.Second,
		pause: func(ctx context.Context) {
			close(paused)
			select {
			case <-resume:
			case <-ctx.Done():
			}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a missing ping fails, never hangs
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", gatewayKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" {
		t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}
	r := bufio.NewReader(resp.Body)
	var got []byte
	event := func() string {
		t.Helper()
		var ev []byte
		for !bytes.HasSuffix(ev, []byte("\n\n")) {
			line, err := r.ReadBytes('\n')
			ev = append(ev, line...)
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
		}
		got = append(got, ev...)
		return string(ev)
	}
	for !strings.HasPrefix(event(), "event: content_block_delta") {
	}
	<-paused
	// Bedrock is silent. The reply to its last chunk re-armed the ping
	// timer (one live timer); an interval later comes a ping.
	clock.waitLive(t, 1)
	clock.advance(15 * time.Second)
	if ev := event(); ev != "event: ping\ndata: {\"type\": \"ping\"}\n\n" {
		t.Fatalf("after an idle interval: %q, want a ping", ev)
	}
	// And another one an interval later.
	clock.waitLive(t, 1)
	clock.advance(15 * time.Second)
	if ev := event(); !strings.HasPrefix(ev, "event: ping\n") {
		t.Fatalf("after a second idle interval: %q, want a ping", ev)
	}
	if n := metricValue(t, s.reg, "tollgate_stream_pings_total", map[string]string{"provider": "demo"}); n != 2 {
		t.Errorf("tollgate_stream_pings_total %v, want 2", n)
	}
	close(resume)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)

	fixture, err := os.ReadFile("../../internal/envoytest/testdata/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	deltas := 0
	for _, ev := range bytes.SplitAfter(fixture, []byte("\n\n")) {
		if bytes.HasPrefix(ev, []byte("event: ping")) {
			continue
		}
		want = append(want, ev...)
		if bytes.HasPrefix(ev, []byte("event: content_block_delta")) {
			if deltas++; deltas == 1 {
				want = append(want, "event: ping\ndata: {\"type\": \"ping\"}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"...)
			}
		}
	}
	want = bytes.Replace(want, []byte(`"model":"claude-sonnet-4-5"`), []byte(`"model":"anthropic.claude-sonnet-4-5-idle"`), 1)
	want = bytes.Replace(want, []byte(`data: {"type":"message_stop"}`), []byte(`data: {"type":"message_stop","amazon-bedrock-invocationMetrics":`+
		`{"inputTokenCount":12,"outputTokenCount":15,"invocationLatency":1234,"firstByteLatency":321,"cacheReadInputTokenCount":30500,"cacheWriteInputTokenCount":2048}}`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("stream:\n%s\nwant:\n%s", got, want)
	}
	rec := s.recs.wait(t, 1)[0]
	if rec.Outcome != records.OutcomeOK || !rec.Stream || rec.Usage.OutputTokens != 15 || rec.CostPicoUSD <= 0 {
		t.Errorf("record outcome %q stream %v usage %+v cost %d", rec.Outcome, rec.Stream, rec.Usage, rec.CostPicoUSD)
	}
}
