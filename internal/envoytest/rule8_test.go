package envoytest

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// retryChain routes everything to the aggregate cluster "chain" (up, then
// up2) with a pass-through adapter, a retry policy made of retryFields plus
// previous_priorities, chainExtra added to the chain cluster and upExtra to
// the cluster up.
func retryChain(retryFields, chainExtra, upExtra string) testConfig {
	adapter := `{name: adapter, typed_config: {` + extProcType + `, grpc_service: {envoy_grpc: {cluster_name: proc}}, message_timeout: 5s, ` +
		`processing_mode: {request_header_mode: SEND, response_header_mode: SKIP}}}`
	return testConfig{
		routes: []string{`{match: {prefix: "/"}, route: {cluster: chain, timeout: 0s, retry_policy: {` + retryFields +
			`, retry_priority: {name: envoy.retry_priorities.previous_priorities, typed_config: ` +
			`{"@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 1}}}}}`},
		extra:   chainClusterWith(adapter, chainExtra),
		upExtra: upExtra,
	}
}

// stall never answers; it returns when the harness gives up on the attempt.
func stall(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func served(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served by "+name) }
}

func answerStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

// startChain starts the harness on cfg with up and up2 served by the given
// handlers (an empty address for up means a connect failure).
func startChain(t *testing.T, cfg testConfig, upH, up2H http.HandlerFunc) (*Harness, *upstream, *upstream) {
	t.Helper()
	proc := startProc(t, (*scriptStream).echo)
	up := startUpstream(t, upH)
	up2 := startUpstream(t, up2H)
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": up.addr, "up2": up2.addr})
	return h, up, up2
}

// waitFor polls cond with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtimeGosched()
	}
}

// Rule 8, per_try_timeout (Router::Filter::onPerTryTimeoutCommon): the
// attempt is reset like a local reset, so reset, 5xx and gateway-error retry
// it and connect-failure or retriable-status-codes (even listing 504) do
// not; without a retry the client gets 504 "upstream request timeout" with
// details upstream_per_try_timeout.
func TestRule8_PerTryTimeout(t *testing.T) {
	for _, tc := range []struct {
		retryOn string
		retried bool
	}{
		{"5xx", true},
		{"gateway-error", true},
		{"reset", true},
		{"connect-failure", false},
		{"retriable-status-codes", false},
	} {
		t.Run(tc.retryOn, func(t *testing.T) {
			cfg := retryChain(`retry_on: "`+tc.retryOn+`", retriable_status_codes: [504], num_retries: 1, per_try_timeout: 0.2s, retry_back_off: {base_interval: 0.001s}`, "", "")
			h, up, up2 := startChain(t, cfg, stall, served("up2"))
			code, _, body := do(t, h, "POST", "/v1/messages", "x")
			if tc.retried {
				if code != 200 || body != "served by up2" {
					t.Fatalf("status %d body %q", code, body)
				}
			} else {
				if code != 504 || !strings.Contains(body, "upstream request timeout") || !strings.Contains(body, "upstream_per_try_timeout") {
					t.Fatalf("status %d body %q", code, body)
				}
				if len(up2.requests()) != 0 {
					t.Error("up2 reached without a retry")
				}
			}
			if n := len(up.requests()); n != 1 {
				t.Errorf("up reached %d times", n)
			}
			if st := h.Stats(); st.UpstreamPerTryTimeouts != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	t.Run("last attempt times out", func(t *testing.T) {
		cfg := retryChain(`retry_on: "5xx", num_retries: 1, per_try_timeout: 0.2s, retry_back_off: {base_interval: 0.001s}`, "", "")
		h, _, _ := startChain(t, cfg, stall, stall)
		code, _, body := do(t, h, "POST", "/", "x")
		if code != 504 || !strings.Contains(body, "upstream_per_try_timeout") {
			t.Fatalf("status %d body %q", code, body)
		}
		if st := h.Stats(); st.UpstreamPerTryTimeouts != 2 || st.UpstreamAttempts != 2 || st.UpstreamRetryLimitExceeded != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// Rule 8, per_try_idle_timeout (UpstreamRequest::resetPerTryIdleTimer,
// onPerTryIdleTimeout): before the response headers a stall is retried like
// per_try_timeout; after them the attempt cannot be retried and the
// downstream stream is reset; data arriving within the timeout re-arms it,
// and per_try_timeout no longer applies once the response started.
func TestRule8_PerTryIdleTimeout(t *testing.T) {
	t.Run("stall before headers moves to the next provider", func(t *testing.T) {
		cfg := retryChain(`retry_on: "reset", num_retries: 1, per_try_idle_timeout: 0.2s, retry_back_off: {base_interval: 0.001s}`, "", "")
		h, _, _ := startChain(t, cfg, stall, served("up2"))
		code, _, body := do(t, h, "POST", "/", "x")
		if code != 200 || body != "served by up2" {
			t.Fatalf("status %d body %q", code, body)
		}
		if st := h.Stats(); st.UpstreamPerTryIdleTimeouts != 1 || st.UpstreamRetries != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("stall after headers resets the client", func(t *testing.T) {
		cfg := retryChain(`retry_on: "reset,5xx", num_retries: 1, per_try_idle_timeout: 0.2s`, "", "")
		h, _, up2 := startChain(t, cfg, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "part")
			_ = http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}, served("up2"))
		resp, err := http.Post(h.URL()+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "part" || err == nil {
			t.Fatalf("status %d body %q err %v, want 200, \"part\" and a reset", resp.StatusCode, b, err)
		}
		waitFor(t, "the reset to be counted", func() bool { return h.Stats().DownstreamResets == 1 })
		if st := h.Stats(); st.UpstreamPerTryIdleTimeouts != 1 || st.UpstreamAttempts != 1 || len(up2.requests()) != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("a trickle longer than both timeouts completes", func(t *testing.T) {
		cfg := retryChain(`retry_on: "reset", num_retries: 1, per_try_timeout: 0.3s, per_try_idle_timeout: 0.4s`, "", "")
		h, _, _ := startChain(t, cfg, func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for i := range 6 {
				_, _ = io.WriteString(w, strings.Repeat("x", i+1))
				_ = rc.Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}, served("up2"))
		code, _, body := do(t, h, "POST", "/", "x")
		if code != 200 || len(body) != 21 {
			t.Fatalf("status %d body %q", code, body)
		}
		if st := h.Stats(); st.UpstreamPerTryIdleTimeouts != 0 || st.UpstreamPerTryTimeouts != 0 || st.UpstreamAttempts != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// Rule 8, retry_back_off (JitteredExponentialBackOffStrategy): each wait is
// uniform below an interval that doubles from base_interval while below
// half of max_interval (default ten times the base), then stays at
// max_interval.
func TestRule8_BackOff(t *testing.T) {
	b := backOff{base: 25 * time.Millisecond, maxInterval: 250 * time.Millisecond, next_: 25 * time.Millisecond}
	var intervals []time.Duration
	for range 6 {
		cur := b.next_
		if d := b.next(); d < 0 || d >= cur {
			t.Errorf("wait %v outside [0, %v)", d, cur)
		}
		intervals = append(intervals, cur)
	}
	want := []time.Duration{25, 50, 100, 200, 250, 250}
	for i := range want {
		if intervals[i] != want[i]*time.Millisecond {
			t.Fatalf("intervals %v, want %v ms", intervals, want)
		}
	}
	base, maxInterval, err := retryBackOff(nil)
	if err != nil || base != 25*time.Millisecond || maxInterval != 250*time.Millisecond {
		t.Errorf("defaults %v %v %v", base, maxInterval, err)
	}
}

// Rule 8, retry budget (RetryStateImpl::shouldRetry, ResourceManagerImpl::
// RetryBudgetImpl): the routed cluster's retries resource is held from the
// retry's scheduling until that retry's outcome; once it is full a
// retriable response goes to the client as it is. On an aggregate cluster
// requests count on the children, so a retry_budget allows exactly
// min_retry_concurrency (budget_percent of zero active requests).
func TestRule8_RetryBudget(t *testing.T) {
	t.Run("max_retries 0", func(t *testing.T) {
		cfg := retryChain(`retry_on: "5xx", num_retries: 1`, "    circuit_breakers: {thresholds: [{max_retries: 0}]}\n", "")
		h, _, up2 := startChain(t, cfg, answerStatus(500), served("up2"))
		if code, _, _ := do(t, h, "POST", "/", "x"); code != 500 {
			t.Fatalf("status %d", code)
		}
		if st := h.Stats(); st.UpstreamRetryOverflow != 1 || st.UpstreamRetries != 0 || len(up2.requests()) != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	for name, cb := range map[string]string{
		"max_retries 1":           "{max_retries: 1}",
		"retry_budget 100% min 1": "{retry_budget: {budget_percent: {value: 100}, min_retry_concurrency: 1}}",
	} {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			defer once.Do(func() { close(release) })
			cfg := retryChain(`retry_on: "5xx", num_retries: 1, retry_back_off: {base_interval: 0.001s}`,
				"    circuit_breakers: {thresholds: ["+cb+"]}\n", "")
			h, _, up2 := startChain(t, cfg, answerStatus(500), func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = io.WriteString(w, "served by up2")
			})
			first := make(chan string, 1)
			go func() {
				resp, err := http.Post(h.URL()+"/", "text/plain", strings.NewReader("x"))
				if err != nil {
					first <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				first <- string(b)
			}()
			waitFor(t, "the first request's retry to reach up2", func() bool { return len(up2.requests()) == 1 })
			if code, _, _ := do(t, h, "POST", "/", "x"); code != 500 {
				t.Errorf("second request: status %d, want the first attempt's 500", code)
			}
			once.Do(func() { close(release) })
			if got := <-first; got != "served by up2" {
				t.Errorf("first request got %q", got)
			}
			if st := h.Stats(); st.UpstreamRetryOverflow != 1 || st.UpstreamRetries != 1 {
				t.Errorf("stats %+v", st)
			}
			// The resource is free again once the retry's response went
			// downstream.
			if code, _, body := do(t, h, "POST", "/", "x"); code != 200 || body != "served by up2" {
				t.Errorf("third request: status %d body %q", code, body)
			}
		})
	}
}

// Rule 8, outlier detection on a provider cluster
// (source/common/upstream/outlier_detection_impl.cc) and the aggregate
// load balancer: once consecutive_5xx is reached the host is ejected, the
// aggregate's first healthy child takes the first attempt, and the host is
// unejected on an interval tick after base_ejection_time. With the default
// max_ejection_percent (10) the only host of a cluster is never ejected.
func TestRule8_OutlierDetection(t *testing.T) {
	const od = "    outlier_detection: {consecutive_5xx: 2, interval: 0.02s, base_ejection_time: 0.3s, max_ejection_percent: 100}\n"
	t.Run("ejected then back", func(t *testing.T) {
		cfg := retryChain(`retry_on: "5xx", num_retries: 1, retry_back_off: {base_interval: 0.001s}`, "", od)
		h, up, up2 := startChain(t, cfg, answerStatus(500), served("up2"))
		for i := range 3 {
			if code, _, body := do(t, h, "POST", "/", "x"); code != 200 || body != "served by up2" {
				t.Fatalf("request %d: status %d body %q", i, code, body)
			}
		}
		if n := len(up.requests()); n != 2 {
			t.Fatalf("up reached %d times, want 2 (ejected after the second 500)", n)
		}
		if st := h.Stats(); st.OutlierEjections != 1 || st.UpstreamAttempts != 5 {
			t.Errorf("stats %+v", st)
		}
		waitFor(t, "up to be unejected", func() bool {
			time.Sleep(10 * time.Millisecond)
			do(t, h, "POST", "/", "x")
			return len(up.requests()) == 3
		})
		_ = up2
	})
	t.Run("default max_ejection_percent never ejects the only host", func(t *testing.T) {
		cfg := retryChain(`retry_on: "5xx", num_retries: 1, retry_back_off: {base_interval: 0.001s}`, "",
			"    outlier_detection: {consecutive_5xx: 2}\n")
		h, up, _ := startChain(t, cfg, answerStatus(500), served("up2"))
		for range 3 {
			do(t, h, "POST", "/", "x")
		}
		if st := h.Stats(); len(up.requests()) != 3 || st.OutlierEjections != 0 || st.OutlierEjectionsOverflow != 1 {
			t.Errorf("up reached %d times; stats %+v", len(up.requests()), st)
		}
	})
	t.Run("local-origin failures with split errors", func(t *testing.T) {
		cfg := retryChain(`retry_on: "connect-failure", num_retries: 1, retry_back_off: {base_interval: 0.001s}`, "",
			"    outlier_detection: {split_external_local_origin_errors: true, consecutive_local_origin_failure: 2, always_eject_one_host: true}\n")
		proc := startProc(t, (*scriptStream).echo)
		up2 := startUpstream(t, served("up2"))
		h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": "127.0.0.1:1", "up2": up2.addr})
		for range 3 {
			if code, _, body := do(t, h, "POST", "/", "x"); code != 200 || body != "served by up2" {
				t.Fatalf("status %d body %q", code, body)
			}
		}
		if st := h.Stats(); st.UpstreamConnectFailures != 2 || st.OutlierEjections != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// The ejection time is base_ejection_time times the ejection backoff,
// capped by max_ejection_time (DetectorImpl::ejectHost,
// checkHostForUneject); counters reset on unejection.
func TestRule8_EjectionTimeGrows(t *testing.T) {
	cl := &cluster{name: "c", outlier: &outlierConfig{interval: time.Hour, baseEjectionTime: time.Second, maxEjectionTime: 3 * time.Second,
		maxEjectionPercent: 100, consecutive5xx: 1, consecutiveGateway: 5, consecutiveLocal: 5, enforcing5xx: 100}}
	u := newUpstreamState(cl, func(func(*Stats)) {}, func(string, ...any) {})
	defer u.stop()
	ejectedFor := func(d time.Duration) bool {
		u.mu.Lock()
		u.lastEjection = time.Now().Add(-d)
		u.mu.Unlock()
		u.onIntervalTimer()
		return !u.healthy()
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		u.putHTTPCode(500)
		if u.healthy() {
			t.Fatalf("ejection %d: not ejected", i+1)
		}
		if !ejectedFor(want - 10*time.Millisecond) {
			t.Errorf("ejection %d: unejected before %v", i+1, want)
		}
		if ejectedFor(want + 10*time.Millisecond) {
			t.Errorf("ejection %d: still ejected after %v", i+1, want)
		}
	}
}

// Envoy's wouldRetryFromReset lets retry_on reset retry a connect failure
// too, and the last reset's body says the request was retried.
func TestRule8_ResetRetriesConnectFailure(t *testing.T) {
	cfg := retryChain(`retry_on: "reset", num_retries: 1, retry_back_off: {base_interval: 0.001s}`, "", "")
	proc := startProc(t, (*scriptStream).echo)
	up2 := startUpstream(t, served("up2"))
	h := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": "127.0.0.1:1", "up2": up2.addr})
	if code, _, body := do(t, h, "POST", "/", "x"); code != 200 || body != "served by up2" {
		t.Fatalf("status %d body %q", code, body)
	}
	h2 := startHarness(t, cfg.write(t), map[string]string{"proc": proc.addr, "up": "127.0.0.1:1", "up2": "127.0.0.1:1"})
	code, _, body := do(t, h2, "POST", "/", "x")
	if code != 503 || !strings.Contains(body, "disconnect/reset before headers. retried and the latest reset reason: connection failure") {
		t.Fatalf("status %d body %q", code, body)
	}
}

// previous_priorities over two children with two retries: the second retry
// finds every priority excluded and falls back to the original load, which
// is the first child (PreviousPrioritiesRetryPriority::
// adjustForAttemptedPriorities).
func TestRule8_PreviousPrioritiesExhausted(t *testing.T) {
	cfg := retryChain(`retry_on: "5xx", num_retries: 2, retry_back_off: {base_interval: 0.001s}`, "", "")
	h, up, up2 := startChain(t, cfg, answerStatus(500), answerStatus(503))
	if code, _, _ := do(t, h, "POST", "/", "x"); code != 500 {
		t.Fatalf("status %d, want the last attempt's 500", code)
	}
	if len(up.requests()) != 2 || len(up2.requests()) != 1 {
		t.Errorf("up reached %d times, up2 %d times; want 2 and 1", len(up.requests()), len(up2.requests()))
	}
	if st := h.Stats(); st.UpstreamRetries != 2 || st.UpstreamRetryLimitExceeded != 1 {
		t.Errorf("stats %+v", st)
	}
}
