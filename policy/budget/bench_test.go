package budget

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

// benchRequest is the reference decision of the benchmarks: 3 scopes and 6
// windows (a key's daily spend and tokens and its concurrency, a team's
// monthly spend and per-minute requests, a global per-minute request rate).
// The limits are high enough that nothing is denied.
func benchRequest(id string) Request {
	return Request{
		ID: id,
		Scopes: []ScopeLimits{
			{Scope: keyA, Limits: []Limit{{USD, Day, usd("1000000")}, {Tokens, Day, 1 << 50}, {Concurrent, NoWindow, 1 << 30}}},
			{Scope: teamP, Limits: []Limit{{USD, Month, usd("1000000")}, {Requests, Minute, 1 << 40}}},
			{Scope: Global, Limits: []Limit{{Requests, Minute, 1 << 40}}},
		},
		Location:    berlin,
		CostPicoUSD: usd("0.42"),
		Tokens:      40_000,
	}
}

var benchActual = Actual{CostPicoUSD: usd("0.05"), Tokens: 30_000}

// BenchmarkMemoryReserve measures Reserve alone; the clock advances 1 ms per
// call and reservations are never settled, so their leases expire (1 s)
// inside later calls, as after crashes.
func BenchmarkMemoryReserve(b *testing.B) {
	l := NewMemoryLedger(time.Second)
	req := benchRequest("bench")
	b.ReportAllocs()
	now := t0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if _, err := l.Reserve(bg, req, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryReserveSettle measures a request's two calls.
func BenchmarkMemoryReserveSettle(b *testing.B) {
	l := NewMemoryLedger(0)
	benchReserveSettle(b, l)
}

// benchReserveSettle reserves and settles one request per iteration, a
// millisecond apart.
func benchReserveSettle(b *testing.B, l Ledger) {
	req := benchRequest("bench")
	b.ReportAllocs()
	now := t0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		d, err := l.Reserve(bg, req, now)
		if err != nil || !d.Allowed {
			b.Fatal(err, d.Denial)
		}
		if err := l.Settle(bg, d.Reservation, benchActual, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryReserveSettleParallel is BenchmarkMemoryReserveSettle from
// GOMAXPROCS goroutines on one ledger.
func BenchmarkMemoryReserveSettleParallel(b *testing.B) {
	l := NewMemoryLedger(0)
	b.ReportAllocs()
	var clock atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		req := benchRequest("bench")
		for pb.Next() {
			now := t0.Add(time.Duration(clock.Add(1)) * time.Microsecond)
			d, err := l.Reserve(bg, req, now)
			if err != nil || !d.Allowed {
				b.Fatal(err, d.Denial)
			}
			if err := l.Settle(bg, d.Reservation, benchActual, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRedisPing(b *testing.B) {
	srv := redistest.Start(b)
	c := newRedisClient(b, srv.Addr())
	for b.Loop() {
		if err := c.Ping(bg).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisReserveSettle also reports what Redis spent per reserve and
// settle: the scripts' execution time and the commands they ran, from INFO
// commandstats (redis-µs/op, redis-cmds/op), which a busy machine disturbs
// less than wall time.
func BenchmarkRedisReserveSettle(b *testing.B) {
	srv := redistest.Start(b)
	c := newRedisClient(b, srv.Addr())
	l := newRedisLedger(b, c, RedisOptions{Timeout: time.Second})
	if err := c.ConfigResetStat(bg).Err(); err != nil {
		b.Fatal(err)
	}
	benchReserveSettle(b, l)
	reportCommandStats(b, c)
}

// reportCommandStats reports the scripts' execution time and the commands
// run per op since the last CONFIG RESETSTAT (redis-µs/op, redis-cmds/op).
func reportCommandStats(b *testing.B, c *redis.Client) {
	b.Helper()
	info, err := c.Info(bg, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var usec, cmds float64
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok || name == "info" || name == "config|resetstat" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, kv := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch {
			case k == "calls":
				cmds += f
			case k == "usec" && strings.HasPrefix(name, "eval"):
				usec += f
			}
		}
	}
	b.ReportMetric(usec/float64(b.N), "redis-µs/op")
	b.ReportMetric(cmds/float64(b.N), "redis-cmds/op")
}

// BenchmarkRedisRequestIdle replays the budget-redis scenario's Redis
// traffic: a request every 5 ms (200 req/s), each reserved and then settled
// while the next one is reserved, with settles batched as `tollgate serve`
// batches them (DefaultSettleBatch). A Redis that sleeps between requests
// runs each script with cold caches, which a tight loop never shows. Besides
// the commandstats figures it reports redis-server's own CPU time per op
// (redis-cpu-µs/op, utime+stime from /proc at a 10 ms tick: run at least
// 1000 ops) and its reads (round trips) per op. Run it with -benchtime=1000x.
// Sub-benchmark per-request checks every request in Redis; blocks admits
// them from budget blocks (RedisOptions.Blocks, as `tollgate serve` does).
func BenchmarkRedisRequestIdle(b *testing.B) {
	b.Run("per-request", func(b *testing.B) { benchRequestIdle(b, RedisOptions{}) })
	b.Run("blocks", func(b *testing.B) { benchRequestIdle(b, RedisOptions{Blocks: DefaultBlocks}) })
}

func benchRequestIdle(b *testing.B, opts RedisOptions) {
	srv := redistest.Start(b)
	c := newRedisClient(b, srv.Addr())
	opts.Timeout, opts.SettleBatch = time.Second, DefaultSettleBatch
	l := newRedisLedger(b, c, opts)
	info, err := c.Info(bg, "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	pid := regexp.MustCompile(`process_id:(\d+)`).FindStringSubmatch(info)
	if pid == nil {
		b.Fatal("no process_id in INFO server")
	}
	readStats := func() (cpuTicks, reads float64) {
		stat, err := os.ReadFile("/proc/" + pid[1] + "/stat")
		if err == nil {
			s := string(stat)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			cpuTicks = u + st
		}
		stats, _ := c.Info(bg, "stats").Result()
		if m := regexp.MustCompile(`total_reads_processed:(\d+)`).FindStringSubmatch(stats); m != nil {
			reads, _ = strconv.ParseFloat(m[1], 64)
		}
		return cpuTicks, reads
	}
	req := benchRequest("bench")
	if err := c.ConfigResetStat(bg).Err(); err != nil {
		b.Fatal(err)
	}
	ticks0, reads0 := readStats()
	now := t0
	var wg sync.WaitGroup
	b.ReportAllocs()
	for b.Loop() {
		time.Sleep(5 * time.Millisecond)
		now = now.Add(5 * time.Millisecond)
		d, err := l.Reserve(bg, req, now)
		if err != nil || !d.Allowed {
			b.Fatal(err, d.Denial)
		}
		wg.Go(func() {
			if err := l.Settle(bg, d.Reservation, benchActual, now); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	ticks1, reads1 := readStats()
	reportCommandStats(b, c)
	// 100 ticks a second on Linux; the probe's two INFO calls are reads.
	b.ReportMetric((ticks1-ticks0)*1e4/float64(b.N), "redis-cpu-µs/op")
	b.ReportMetric((reads1-reads0-3)/float64(b.N), "redis-reads/op")
}

// TestReserveLatencyReport measures the latency distribution of Reserve and
// Settle on a loopback Redis beside a bare PING in the same run, interleaved
// so that all three see the same machine, then PING and Reserve each after 5 ms
// of idleness, and the throughput of concurrent clients. It is a measurement,
// not a test: it runs only with TOLLGATE_LATENCY_REPORT=1 (go test -run
// TestReserveLatencyReport -v ./policy/budget), and prints a table.
func TestReserveLatencyReport(t *testing.T) {
	if os.Getenv("TOLLGATE_LATENCY_REPORT") == "" {
		t.Skip("set TOLLGATE_LATENCY_REPORT=1 to measure")
	}
	rounds := 20_000
	if s := os.Getenv("TOLLGATE_LATENCY_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	l := newRedisLedger(t, c, RedisOptions{Timeout: time.Second})
	mem := NewMemoryLedger(0)
	req := benchRequest("report")

	var ping, res, set, mres, mset []time.Duration
	now := t0
	for i := range rounds + 1000 {
		now = now.Add(time.Millisecond)
		s := time.Now()
		if err := c.Ping(bg).Err(); err != nil {
			t.Fatal(err)
		}
		p := time.Since(s)
		s = time.Now()
		d, err := l.Reserve(bg, req, now)
		r := time.Since(s)
		if err != nil || !d.Allowed {
			t.Fatal(err, d.Denial)
		}
		s = time.Now()
		if err := l.Settle(bg, d.Reservation, benchActual, now); err != nil {
			t.Fatal(err)
		}
		st := time.Since(s)
		s = time.Now()
		md, _ := mem.Reserve(bg, req, now)
		mr := time.Since(s)
		s = time.Now()
		mem.Settle(bg, md.Reservation, benchActual, now) //nolint:errcheck // never fails
		ms := time.Since(s)
		if i >= 1000 { // warm-up excluded
			ping, res, set, mres, mset = append(ping, p), append(res, r), append(set, st), append(mres, mr), append(mset, ms)
		}
	}

	// Server-side time of each script, from Redis's command statistics.
	scriptTime := func(name string, fn func()) {
		if err := c.ConfigResetStat(bg).Err(); err != nil {
			t.Fatal(err)
		}
		fn()
		info, _ := c.Info(bg, "commandstats").Result()
		if m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)`).FindStringSubmatch(info); m != nil {
			t.Logf("server side: %s %s calls, %s µs per call", name, m[1], m[2])
		}
	}
	// The same after 5 ms of idleness, the gap between two requests at the
	// bench's 200 req/s: on a VM, a sleeping redis-server and a sleeping client
	// each pay a wake-up that a busy loop never sees.
	idleRounds := 1000
	if s := os.Getenv("TOLLGATE_LATENCY_IDLE_ROUNDS"); s != "" {
		idleRounds, _ = strconv.Atoi(s)
	}
	var idlePing, idleRes []time.Duration
	idleHeld := make([]*Reservation, 0, idleRounds)
	// Settled afterwards, so that only the cold reserves are in the script time.
	scriptTime("reserve script after 5 ms idle", func() {
		for range idleRounds {
			now = now.Add(time.Millisecond)
			time.Sleep(5 * time.Millisecond)
			s := time.Now()
			if err := c.Ping(bg).Err(); err != nil {
				t.Fatal(err)
			}
			idlePing = append(idlePing, time.Since(s))
			time.Sleep(5 * time.Millisecond)
			s = time.Now()
			d, err := l.Reserve(bg, req, now)
			idleRes = append(idleRes, time.Since(s))
			if err != nil || !d.Allowed {
				t.Fatal(err, d.Denial)
			}
			idleHeld = append(idleHeld, d.Reservation)
		}
	})
	for _, r := range idleHeld {
		if err := l.Settle(bg, r, benchActual, now); err != nil {
			t.Fatal(err)
		}
	}

	held := make([]*Reservation, 5000)
	scriptTime("reserve script", func() {
		for i := range held {
			now = now.Add(time.Millisecond)
			d, err := l.Reserve(bg, req, now)
			if err != nil {
				t.Fatal(err)
			}
			held[i] = d.Reservation
		}
	})
	scriptTime("settle script", func() {
		for _, r := range held {
			if err := l.Settle(bg, r, benchActual, now); err != nil {
				t.Fatal(err)
			}
		}
	})

	// Throughput: reserve+settle pairs from 16 clients for two seconds.
	var pairs atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := benchRequest(fmt.Sprint(g))
			for time.Now().Before(deadline) {
				n := time.Now()
				d, err := l.Reserve(bg, r, n)
				if err != nil || !d.Allowed {
					t.Error(err)
					return
				}
				if err := l.Settle(bg, d.Reservation, benchActual, n); err != nil {
					t.Error(err)
					return
				}
				pairs.Add(1)
			}
		}()
	}
	wg.Wait()

	t.Logf("%d rounds, 3 scopes and 6 windows per decision, loopback redis-server, GOMAXPROCS=%d", rounds, runtimeProcs())
	t.Logf("%-22s %9s %9s %9s %9s %10s", "operation", "p50", "p90", "p99", "p99.9", "ops/s")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"redis PING", ping}, {"redis Reserve", res}, {"redis Settle", set}, {"memory Reserve", mres}, {"memory Settle", mset},
		{"PING, 5 ms idle", idlePing}, {"Reserve, 5 ms idle", idleRes}} {
		if len(row.d) == 0 {
			continue
		}
		slices.Sort(row.d)
		var sum time.Duration
		for _, d := range row.d {
			sum += d
		}
		t.Logf("%-22s %9v %9v %9v %9v %10.0f", row.name, pct(row.d, 50), pct(row.d, 90), pct(row.d, 99), pct(row.d, 99.9),
			float64(len(row.d))/sum.Seconds())
	}
	t.Logf("redis Reserve+Settle pairs from 16 clients: %.0f pairs/s", float64(pairs.Load())/2)
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i].Round(100 * time.Nanosecond)
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// TestRedisInstructionsReport counts the instructions redis-server executes
// per request of the budget-redis pattern (BenchmarkRedisRequestIdle's: a
// reserve every 5 ms, each carrying the previous request's settle), and per
// PING for comparison, by running redis-server under valgrind's callgrind.
// Unlike CPU time, the count does not move with the machine's load, so two
// commits compare on a busy machine. It is a measurement, not a test: it
// runs only with TOLLGATE_CALLGRIND=1 and needs valgrind (go test -run
// TestRedisInstructionsReport -v ./policy/budget).
func TestRedisInstructionsReport(t *testing.T) {
	if os.Getenv("TOLLGATE_CALLGRIND") == "" {
		t.Skip("set TOLLGATE_CALLGRIND=1 to measure (needs valgrind)")
	}
	real, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatal(err)
		}
	}
	// A redis-server first in PATH that runs the real one under callgrind.
	dir := t.TempDir()
	wrapper := "#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=" + dir + "/cg.%p " + real + " \"$@\" 2>>" + dir + "/valgrind.log\n"
	if err := os.WriteFile(filepath.Join(dir, "redis-server"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	srv := redistest.Start(t)
	c := newRedisClient(t, srv.Addr())
	info, err := c.Info(bg, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid := regexp.MustCompile(`process_id:(\d+)`).FindStringSubmatch(info)[1]
	// Few timer events, so that the count is the requests' (valgrind makes
	// each request take far longer than it would).
	for _, kv := range [][2]string{{"dynamic-hz", "no"}, {"hz", "1"}} {
		if err := c.ConfigSet(bg, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	l := newRedisLedger(t, c, RedisOptions{Timeout: 10 * time.Second, SettleBatch: DefaultSettleBatch})
	lb := newRedisLedger(t, c, RedisOptions{Prefix: "blocks", Timeout: 10 * time.Second, SettleBatch: DefaultSettleBatch, Blocks: DefaultBlocks})
	req := benchRequest("bench")
	now := t0
	var wg sync.WaitGroup
	var ledger *RedisLedger
	request := func() {
		time.Sleep(5 * time.Millisecond)
		now = now.Add(5 * time.Millisecond)
		d, err := ledger.Reserve(bg, req, now)
		if err != nil || !d.Allowed {
			t.Fatal(err, d.Denial)
		}
		wg.Go(func() {
			if err := ledger.Settle(bg, d.Reservation, benchActual, now); err != nil {
				t.Error(err)
			}
		})
	}
	ping := func() {
		time.Sleep(5 * time.Millisecond)
		if err := c.Ping(bg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dumps := 0
	count := func(name string, n int, op func()) {
		for range 50 { // warm-up, not counted
			op()
		}
		wg.Wait()
		if out, err := exec.Command("callgrind_control", "-z", pid).CombinedOutput(); err != nil {
			t.Fatal(err, string(out))
		}
		for range n {
			op()
		}
		wg.Wait()
		if out, err := exec.Command("callgrind_control", "-d", pid).CombinedOutput(); err != nil {
			t.Fatal(err, string(out))
		}
		dumps++
		b, err := os.ReadFile(filepath.Join(dir, "cg."+pid+"."+strconv.Itoa(dumps)))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^(?:summary|totals): (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no totals in the callgrind dump")
		}
		total, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%-36s %9.0f instructions per op (%d ops)", name, total/float64(n), n)
	}
	count("PING after 5 ms", 200, ping)
	ledger = l
	count("request (reserve + a settle) after 5 ms", 200, request)
	ledger = lb
	count("request with blocks after 5 ms", 640, request)
}
