package bench

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/redistest"
)

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=3000,usec=327000,usec_per_call=109.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_XADD:calls=1000,usec=9000.5,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n"
	got, err := ParseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]CommandStat{"evalsha": {3000, 327000}, "client|setinfo": {2, 3}, "xadd": {1000, 9000.5}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %+v, want %+v", k, got[k], v)
		}
	}
	if _, err := ParseCommandStats("cmdstat_get:calls=x,usec=1\r\n"); err == nil {
		t.Error("a bad number parsed")
	}
	if _, err := ParseCommandStats("cmdstat_get\r\n"); err == nil {
		t.Error("a line without fields parsed")
	}
}

func TestRedisTallyPerRequest(t *testing.T) {
	snap := func(ticks uint64, cmds map[string]CommandStat) *redisSnapshot {
		return &redisSnapshot{proc: ProcStat{UserTicks: ticks, SysTicks: ticks / 2}, hasProc: true, commands: cmds}
	}
	var rt redisTally
	// Two windows of 100 requests each: 3 EVALSHA and 1 XADD per request;
	// the probe's INFO and a command that did not run are left out.
	rt.add(snap(10, map[string]CommandStat{"evalsha": {100, 10000}, "xadd": {0, 0}, "info": {5, 50}, "get": {7, 7}}),
		snap(30, map[string]CommandStat{"evalsha": {400, 40000}, "xadd": {100, 1000}, "info": {6, 60}, "get": {7, 7}}))
	b2, a2 := snap(30, map[string]CommandStat{"evalsha": {400, 40000}, "xadd": {100, 1000}}),
		snap(50, map[string]CommandStat{"evalsha": {700, 70000}, "xadd": {200, 2000}})
	b2.reads, a2.reads, b2.hasReads, a2.hasReads = 1000, 1202, true, true // 200 reads, and the probe's 2
	rt.add(b2, a2)
	r := rt.report(200)
	if r == nil || r.CPUPerRequestUS == nil {
		t.Fatalf("report %+v", r)
	}
	// 40 user + 20 sys ticks of 10 ms over 200 requests: 3000 µs.
	if math.Abs(*r.CPUPerRequestUS-3000) > 1e-9 || r.CPUResolutionUS != 50 {
		t.Errorf("CPU %v µs (±%v)", *r.CPUPerRequestUS, r.CPUResolutionUS)
	}
	if r.CommandsPerRequest != 4 || r.USecPerRequest != 310 || r.ScriptsPerRequest != 3 || r.ScriptUSecPerRequest != 300 {
		t.Errorf("commands %v, usec %v, scripts %v, script usec %v", r.CommandsPerRequest, r.USecPerRequest, r.ScriptsPerRequest, r.ScriptUSecPerRequest)
	}
	if len(r.Commands) != 2 || r.Commands[0] != (RedisCommand{"evalsha", 3, 100}) || r.Commands[1] != (RedisCommand{"xadd", 1, 10}) {
		t.Errorf("commands %+v", r.Commands)
	}
	if r.ReadsPerRequest != 1 {
		t.Errorf("reads %v", r.ReadsPerRequest)
	}
	if v, ok := ParseReadsProcessed("# Stats\r\ntotal_commands_processed:9\r\ntotal_reads_processed:42\r\n"); !ok || v != 42 {
		t.Errorf("total_reads_processed %v %v", v, ok)
	}
	var none redisTally
	if none.report(100) != nil {
		t.Error("a report without readings")
	}
}

// TestRedisProbe reads a real redis-server: the commands a client sends
// between two snapshots, without the probe's own.
func TestRedisProbe(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewRedisProbe(srv.URL(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before, err := p.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := c.Get(ctx, "k").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Incr(ctx, "n").Err(); err != nil {
			t.Fatal(err)
		}
	}
	after, err := p.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rt redisTally
	rt.add(before, after)
	r := rt.report(10)
	if r == nil || r.CPUPerRequestUS != nil || r.CommandsPerRequest != 2 || len(r.Commands) != 2 || r.ReadsPerRequest != 2 {
		t.Fatalf("report %+v", r)
	}
	var b strings.Builder
	writeRedis(&b, &RunReport{Redis: r})
	if !strings.Contains(b.String(), "2.00 commands in all") || !strings.Contains(b.String(), "get 1.00 ×") {
		t.Errorf("text %q", b.String())
	}
}

// TestSoakProcs: a soak watches each process once, and knows how many of its
// scenarios each serves (the Redis shared by two here).
func TestSoakProcs(t *testing.T) {
	redisProbe := &RedisProbe{PID: 9}
	a, b := &Target{Name: "tollgate", PID: 1, Redis: redisProbe}, &Target{Name: "tollgate-1", PID: 2, Redis: redisProbe}
	parts := []SoakPart{{&Scenario{Name: "x"}, a}, {&Scenario{Name: "y"}, a}, {&Scenario{Name: "z"}, b}, {&Scenario{Name: "e"}, &Target{Name: "ext"}}}
	got := soakProcs(parts)
	want := []soakProc{{"tollgate (x)", 1, 2}, {"redis-server", 9, 3}, {"tollgate-1 (z)", 2, 1}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
