package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// budgetWindows reads a scope's windows through the admin budgets API.
func budgetWindows(t *testing.T, api, scope string) map[string]map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api+"/v1/budgets?scope="+scope, nil)
	req.Header.Set("authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Windows []map[string]any `json:"windows"`
	}
	if resp.StatusCode != 200 {
		return nil // the ledger may not answer yet
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	w := map[string]map[string]string{}
	for _, win := range out.Windows {
		m := map[string]string{}
		for k, v := range win {
			m[k] = fmt.Sprint(v)
		}
		w[m["unit"]] = m
	}
	return w
}

// TestRedisPauseLeaksNoSlot is issue 9's outage, through the gateway: Redis
// is paused (SIGSTOP) for longer than the budget timeout while five streams
// end (their settles fail) and three new requests arrive (their reserves
// time out, refused by fail_mode closed, and run in Redis when it resumes).
// Once Redis is back, the admin budgets API shows no slot and no hold left,
// well before the 10-minute lease would have freed them.
func TestRedisPauseLeaksNoSlot(t *testing.T) {
	rdb := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: rdb.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	ledger, err := budget.NewRedisLedger(client, budget.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close(context.Background()) //nolint:errcheck // retries end with the test
	s := newStackWith(t, stackOptions{ledger: ledger, keyBudgets: `[{concurrent: 5}, {usd: 100, per: day}]`})
	api := httptest.NewServer(budget.NewAPIHandler(ledger, func() *budget.Config { return s.pol.Budgets }, "admin", nil))
	defer api.Close()

	// Five streams take the five slots.
	var streams []*http.Response
	var cancels []context.CancelFunc
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.harness.URL()+"/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5-slow","max_tokens":10,"stream":true,"messages":[]}`))
		req.Header.Set("x-api-key", gatewayKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", resp, err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: content_block_delta") {
		}
		streams, cancels = append(streams, resp), append(cancels, cancel)
	}
	if w := budgetWindows(t, api.URL, "key:alice"); w["concurrent"]["used"] != "5" {
		t.Fatalf("before the pause: %v", w)
	}

	rdb.Pause()
	for i := range streams {
		cancels[i]()
		streams[i].Body.Close()
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5"))
			if e := apiError(t, err); e.StatusCode != 503 {
				t.Errorf("with Redis paused: %d, want 503 (fail_mode closed)", e.StatusCode)
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool {
		return metricValue(t, s.reg, "tollgate_budget_ledger_errors_total", map[string]string{"op": "settle"}) == 5
	})
	rdb.Resume()

	resumed := time.Now()
	var w map[string]map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		w = budgetWindows(t, api.URL, "key:alice")
		if w != nil && w["concurrent"]["used"] == "0" && w["usd"]["held"] == "0.00" && ledger.PendingRepairs() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after Redis resumed: %v, %d repairs pending", w, ledger.PendingRepairs())
		}
	}
	t.Logf("no slot or hold left %v after Redis resumed: %v", time.Since(resumed), w)
}

// stall opens a connection to the gateway and sends the headers of a
// message request announcing contentLength bytes, and no body.
func stall(t *testing.T, s *stack, key string, contentLength int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.harness.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n", key, contentLength)
	return conn
}

const bobKey = "tg-e2e-bob"

// TestStalledBodiesHoldLittle is issue 9, item 6: connections that send the
// headers of a message request announcing 32 MB and no body. Their early
// reservations are sized by the key's previous request, not by the
// content-length, so they do not exhaust the team's budget for its other
// keys; closing them gives everything back.
func TestStalledBodiesHoldLittle(t *testing.T) {
	ledger := redisLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, earlyBodyTimeout: time.Minute,
		extraKeys:  "  - {id: bob, sha256: " + policyHash(bobKey) + ", user: bob, team: platform}\n",
		policyTail: "teams: {platform: {budgets: [{usd: 12.3, per: day}, {requests: 1000, per: day}]}}\n"})
	api := httptest.NewServer(budget.NewAPIHandler(ledger, func() *budget.Config { return s.pol.Budgets }, "admin", nil))
	defer api.Close()

	// Alice's previous request is what her next ones are guessed from.
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var conns []net.Conn
	for range n {
		conns = append(conns, stall(t, s, gatewayKey, 32<<20))
	}
	// Wait until the early reservations are made (each counts a request);
	// before the fix most are refused, and the wait gives up after 5 s.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if w := budgetWindows(t, api.URL, "team:platform"); w != nil && w["requests"]["used"] == fmt.Sprint(n+1) {
			break
		}
	}
	w := budgetWindows(t, api.URL, "team:platform")
	t.Logf("team with %d stalled requests: %v", n, w["usd"])

	bob := anthropic.NewClient(clientOptions(s, bobKey)...)
	p := hello("claude-sonnet-4-5")
	p.MaxTokens = 20000 // $0.30 at most
	if _, err := bob.Messages.New(context.Background(), p); err != nil {
		t.Fatalf("bob, with alice's %d stalled requests holding %s of the team's $12.30: %v", n, w["usd"]["held"], err)
	}

	for _, c := range conns {
		c.Close()
	}
	waitFor(t, func() bool {
		w := budgetWindows(t, api.URL, "team:platform")
		return w != nil && w["usd"]["held"] == "0.00" && w["requests"]["used"] == "2"
	})
}

// TestStalledBodyTimesOut: an early reservation whose body does not come
// within the body timeout is given back while the connection stays open; a
// body that comes after all is reserved at the body and served.
func TestStalledBodyTimesOut(t *testing.T) {
	ledger := redisLedger(t)
	s := newStackWith(t, stackOptions{ledger: ledger, earlyBodyTimeout: 50 * time.Millisecond,
		keyBudgets: `[{usd: 100, per: day}, {concurrent: 8}]`})
	if _, err := s.client.Messages.New(context.Background(), hello("claude-sonnet-4-5")); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]}`
	late := stall(t, s, gatewayKey, len(body))
	for range 3 {
		stall(t, s, gatewayKey, 32<<20)
	}
	waitFor(t, func() bool {
		return metricValue(t, s.reg, "tollgate_budget_early_reservations_total", map[string]string{"outcome": "timed_out"}) == 4
	})
	usd, conc := budget.Limit{Unit: budget.USD, Per: budget.Day, Max: 100e12}, budget.Limit{Unit: budget.Concurrent, Max: 8}
	// The metric counts a timed-out early reservation when its timer fires;
	// the ledger gives it back just after, so poll until it has.
	var bs []budget.Balance
	if !poll(func() bool { bs = read(t, ledger, usd, conc); return bs[0].Held == 0 && bs[1].Used == 0 }) {
		t.Errorf("after the body timeout: %d held, %d slots; want none", bs[0].Held, bs[1].Used)
	}

	if _, err := io.WriteString(late, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(late), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the late body: status %d, want 200", resp.StatusCode)
	}
	waitFor(t, func() bool { return len(s.fake.Requests()) == 2 })
	waitFor(t, func() bool { bs := read(t, ledger, usd, conc); return bs[0].Held == 0 && bs[1].Used == 0 })
}

func policyHash(key string) string { return policy.HashKey(key) }

// clientOptions are the options of an SDK client of the stack with key.
func clientOptions(s *stack, key string) []option.RequestOption {
	return []option.RequestOption{option.WithBaseURL(s.harness.URL()), option.WithAPIKey(key), option.WithMaxRetries(0)}
}

// read returns the key's balances of limits.
func read(t *testing.T, l budget.Ledger, limits ...budget.Limit) []budget.Balance {
	t.Helper()
	bs, err := l.Read(context.Background(), budget.Query{Scope: aliceKey, Limits: limits}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return bs
}
