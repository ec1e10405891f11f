package budget

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// startSentinel runs a Redis Sentinel that monitors the master at
// masterAddr as "tollgate", and returns its address.
func startSentinel(t *testing.T, masterAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	host, mport, _ := net.SplitHostPort(masterAddr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor tollgate %s %s 1\nsentinel down-after-milliseconds tollgate 1000\n", port, dir, host, mport)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		cmd.Wait()         //nolint:errcheck
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if a, err := c.GetMasterAddrByName(bg, "tollgate").Result(); err == nil && len(a) == 2 {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("sentinel did not come up")
		}
	}
}

// TestRedisLedgerThroughSentinel runs the ledger on a client that finds its
// master through Sentinel (redis.NewFailoverClient), and across a restart of
// that master, which empties its script cache.
func TestRedisLedgerThroughSentinel(t *testing.T) {
	srv := redistest.Start(t)
	sentinel := startSentinel(t, srv.Addr())
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "tollgate",
		SentinelAddrs:         []string{sentinel},
		ContextTimeoutEnabled: true,
	})
	defer c.Close()
	l := newRedisLedger(t, c, RedisOptions{Timeout: 5 * time.Second})
	conc := Limit{Concurrent, NoWindow, 1}
	day := Limit{USD, Day, usd("1")}
	req := Request{Scopes: one(keyA, conc, day), CostPicoUSD: usd("0.6")}
	r := mustAllow(t, l, req, t0)
	mustDeny(t, l, req, t0)
	settle(t, l, r, Actual{CostPicoUSD: usd("0.5")}, t0)
	if u, _ := used(t, l, keyA, day, nil, t0); u != usd("0.5") {
		t.Errorf("used %d", u)
	}
	srv.Restart()
	mustAllow(t, l, Request{Scopes: one(keyA, conc, day), CostPicoUSD: usd("0.6")}, t0)
}
