package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is an ext_proc server under measurement.
type Target struct {
	// Name labels the server in reports: "tollgate" or "echo".
	Name string
	// Addr is its gRPC address, "host:port" or "unix:/path".
	Addr string
	// PID is its process, for CPU time and RSS from /proc; 0 measures neither.
	// The process should hold nothing but the server, or the figures include
	// whatever else runs in it.
	PID int
	// MetricsURL is its Prometheus endpoint with the Go collector, for
	// allocations and the GC; empty measures none.
	MetricsURL string
	// Strict checks the replies as Tollgate's (expected denials, a
	// decision in dynamic metadata, no immediate response elsewhere).
	Strict bool
	// BallastURL, when set (the echo processor's), is posted the live heap of
	// the first target with metrics before every round, and the server resizes
	// a ballast to hold as much. Garbage collection then paces the same in both
	// processes, as it does for the same live heap and the same garbage; without
	// it the echo's tiny heap collects several times as often, and the floor
	// carries GC work that is not the protocol's.
	BallastURL string
	// Redis, when set, is the Redis server this target uses: its CPU and
	// commands over the measured windows are reported beside the target's.
	Redis *RedisProbe

	scrapeMallocs, scrapeBytes float64 // what one scrape of MetricsURL allocates
	calibrated                 bool
}

// Options configure a run. The zero value of a field takes its default.
type Options struct {
	Rate        float64       // open-loop requests per second for scenarios without a rate (200)
	Duration    time.Duration // measured open-loop window (10s)
	Warmup      time.Duration // unmeasured open loop before it (2s)
	Closed      time.Duration // closed loop at concurrency 1 after it (2s; negative skips)
	Conns       int           // HTTP/2 connections per server (2, as Envoy's two workers on two cores)
	MaxInFlight int           // requests in flight before scheduled ones are dropped (10000)
	HoldStreams int           // streams for scenarios with a hold section (1000; negative skips)
	// Rounds splits each window (and warm-up) into rounds that alternate the
	// order of the targets, ABBA, so that drift in the machine's state is
	// shared between them (2).
	Rounds int
	// Policy and Adapter are the ext_proc filters to replay; DefaultFilters when
	// both are zero.
	Policy, Adapter Filter
	// Progress receives one line per step; nil is silent.
	Progress io.Writer
	// Observe, when set, is called as each open-loop measurement window starts,
	// and the function it returns when the window ends (the bench command takes
	// CPU profiles with it).
	Observe func(ctx context.Context, s *Scenario, t *Target, window time.Duration) (done func())
}

func (o Options) withDefaults() Options {
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Closed == 0 {
		o.Closed = 2 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = 2
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10000
	}
	if o.HoldStreams == 0 {
		o.HoldStreams = 1000
	}
	if o.Rounds <= 0 {
		o.Rounds = 2
	}
	if o.Policy.Mode == nil && o.Adapter.Mode == nil {
		o.Policy, o.Adapter = DefaultFilters()
	}
	return o
}

// Settings returns the conditions a report should state for these options.
func (o Options) Settings(servers string) Settings {
	o = o.withDefaults()
	return Settings{DefaultRate: o.Rate, DurationSeconds: o.Duration.Seconds(), WarmupSeconds: max(o.Warmup, 0).Seconds(),
		ClosedSeconds: max(o.Closed, 0).Seconds(), Conns: o.Conns, HoldStreams: max(o.HoldStreams, 0), Rounds: o.Rounds, Servers: servers}
}

func (o Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Run runs every scenario against the same targets and evaluates the DESIGN.md
// targets. The targets are measured in the order given, per scenario and loop;
// put echo first.
func Run(ctx context.Context, scenarios []*Scenario, targets []*Target, o Options) (*Report, error) {
	rep := &Report{Machine: ThisMachine(time.Now()), Settings: o.Settings("given")}
	for _, s := range scenarios {
		sr, err := RunScenario(ctx, s, targets, o)
		if err != nil {
			return rep, err
		}
		rep.Scenarios = append(rep.Scenarios, sr)
		if s.Hold != nil && s.Ready() && o.HoldStreams >= 0 {
			mr, err := RunMemory(ctx, s, targets, o)
			if err != nil {
				return rep, err
			}
			rep.Memory = append(rep.Memory, mr)
		}
	}
	rep.Evaluate()
	return rep, nil
}

// RunScenario measures one scenario on every target: open loop at the
// scenario's rate after a warm-up, then closed loop at concurrency 1. A
// scenario that is not ready is reported without running.
func RunScenario(ctx context.Context, s *Scenario, targets []*Target, o Options) (*ScenarioReport, error) {
	o = o.withDefaults()
	rate := s.Rate
	if rate <= 0 {
		rate = o.Rate
	}
	sr := &ScenarioReport{Name: s.Name, Description: s.Description, Status: s.Status, Reason: s.Reason, Rate: rate,
		BodyBytes: s.Request.BodyBytes}
	if !s.Ready() {
		o.logf("bench: %s: not yet (%s)", s.Name, s.Reason)
		return sr, nil
	}
	p, err := prepare(s)
	if err != nil {
		return nil, err
	}
	if !s.Deny() && !s.CacheHit() {
		sr.Chunks = p.responseMessages()
	}
	players := make([]*player, len(targets))
	for i, t := range targets {
		pool, err := Dial(t.Addr, o.Conns)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		if players[i], err = newPlayer(pool, p, o.Policy, o.Adapter, t.Strict); err != nil {
			return nil, err
		}
	}
	rounds := o.Rounds
	window, warm := o.Duration/time.Duration(rounds), max(o.Warmup, 0)/time.Duration(rounds)
	open := make([]tally, len(targets))
	for r := range rounds {
		ballast, err := matchHeaps(ctx, targets)
		if err != nil {
			return nil, err
		}
		sr.EchoBallastBytes = max(sr.EchoBallastBytes, ballast)
		for _, i := range roundOrder(len(targets), r) {
			t := targets[i]
			o.logf("bench: %s on %s: round %d/%d, open loop at %.0f req/s, %v warm-up, %v measured", s.Name, t.Name, r+1, rounds, rate, warm, window)
			if err := openWindow(ctx, s, t, players[i], rate, warm, window, &open[i], o); err != nil {
				return nil, err
			}
		}
	}
	for i, t := range targets {
		sr.Runs = append(sr.Runs, open[i].report(t, LoopOpen, rate))
	}
	if o.Closed > 0 {
		closed := make([]tally, len(targets))
		for r := range rounds {
			for _, i := range roundOrder(len(targets), r) {
				t := targets[i]
				o.logf("bench: %s on %s: round %d/%d, closed loop at concurrency 1 for %v", s.Name, t.Name, r+1, rounds, o.Closed/time.Duration(rounds))
				if err := closedWindow(ctx, t, players[i], o.Closed/time.Duration(rounds), &closed[i]); err != nil {
					return nil, err
				}
			}
		}
		for i, t := range targets {
			sr.Runs = append(sr.Runs, closed[i].report(t, LoopClosed, 0))
		}
	}
	return sr, nil
}

// roundOrder is the order of n targets in round r: as given in even rounds,
// reversed in odd ones.
func roundOrder(n, r int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
		if r%2 == 1 {
			out[i] = n - 1 - i
		}
	}
	return out
}

// matchHeaps posts the reference target's live heap to every target with a
// BallastURL, and returns the largest ballast they report holding.
func matchHeaps(ctx context.Context, targets []*Target) (float64, error) {
	var ref *Target
	for _, t := range targets {
		if t.MetricsURL != "" && t.BallastURL == "" {
			ref = t
			break
		}
	}
	if ref == nil {
		return 0, nil
	}
	var live, ballast float64
	for _, t := range targets {
		if t.BallastURL == "" {
			continue
		}
		if live == 0 {
			m, err := Scrape(ctx, ref.MetricsURL)
			if err != nil {
				return 0, err
			}
			live = liveHeap(m)
		}
		b, err := postBallast(ctx, t.BallastURL, live)
		if err != nil {
			return 0, err
		}
		ballast = max(ballast, b)
	}
	return ballast, nil
}

// liveHeap estimates the live heap at the last collection from the heap goal,
// which Go sets to live + (live + stacks + globals) at GOGC=100.
func liveHeap(m Metrics) float64 {
	goal, _ := m.Get("go_memstats_next_gc_bytes")
	stack, _ := m.Get("go_memstats_stack_inuse_bytes")
	return max(goal-stack, 0) / 2
}

func postBallast(ctx context.Context, url string, live float64) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"?live="+strconv.FormatFloat(live, 'f', 0, 64), nil)
	if err != nil {
		return 0, fmt.Errorf("bench: ballast: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("bench: ballast: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: ballast %s: %s %s %v", url, resp.Status, b, err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0, fmt.Errorf("bench: ballast answer %q: %w", b, err)
	}
	return v, nil
}

// tally sums one target's figures over the rounds of a loop.
type tally struct {
	rec                 recorder
	dropped             int
	elapsed             time.Duration
	userTicks, sysTicks uint64
	hasProc             bool
	mallocs, bytes, gcs float64
	hasMetrics          bool
	phaseSum, phaseN    map[[2]string]float64
	redis               redisTally
	last                snapshot
	rounds              []RoundStats
}

// add counts one measured window of t: its samples, and what the server did
// between two snapshots.
func (ty *tally) add(t *Target, rec *recorder, before, after snapshot, elapsed time.Duration) {
	ty.rec.merge(rec)
	ty.elapsed += elapsed
	ty.last = after
	rs := RoundStats{Requests: rec.requests, P50US: us(rec.h[PhaseTotal].Quantile(0.5)), P99US: us(rec.h[PhaseTotal].Quantile(0.99))}
	if before.hasProc && after.hasProc {
		ty.hasProc = true
		u, sy := after.proc.UserTicks-before.proc.UserTicks, after.proc.SysTicks-before.proc.SysTicks
		ty.userTicks += u
		ty.sysTicks += sy
		if n := rec.requests + rec.errors; n > 0 {
			rs.UserUS = float64(u) * 1e6 / clockTicksPerSecond / float64(n)
			rs.SysUS = float64(sy) * 1e6 / clockTicksPerSecond / float64(n)
		}
	}
	if before.redis != nil && after.redis != nil {
		var one redisTally
		one.add(before.redis, after.redis)
		if r := one.report(float64(rec.requests + rec.errors)); r != nil {
			rs.RedisCommands = r.CommandsPerRequest
			if r.CPUPerRequestUS != nil {
				rs.RedisCPUUS = *r.CPUPerRequestUS
			}
		}
		ty.redis.add(before.redis, after.redis)
	}
	ty.rounds = append(ty.rounds, rs)
	if before.metrics != nil && after.metrics != nil {
		ty.hasMetrics = true
		ty.mallocs += delta(before.metrics, after.metrics, "go_memstats_mallocs_total") - t.scrapeMallocs
		ty.bytes += delta(before.metrics, after.metrics, "go_memstats_alloc_bytes_total") - t.scrapeBytes
		ty.gcs += delta(before.metrics, after.metrics, "go_gc_duration_seconds_count")
		if ty.phaseSum == nil {
			ty.phaseSum, ty.phaseN = map[[2]string]float64{}, map[[2]string]float64{}
		}
		for _, sp := range serverPhases(before.metrics, after.metrics) {
			k := [2]string{sp.Role, sp.Phase}
			ty.phaseSum[k] += sp.MeanUS * sp.Count
			ty.phaseN[k] += sp.Count
		}
	}
}

func (ty *tally) report(t *Target, loop string, rate float64) *RunReport {
	r := &RunReport{Target: t.Name, Loop: loop, Rate: rate, Seconds: ty.elapsed.Seconds(), Requests: ty.rec.requests,
		Errors: ty.rec.errors, Dropped: ty.dropped, ErrorSamples: ty.rec.errSamples, Phases: ty.rec.phases(), Rounds: ty.rounds}
	n := float64(r.Requests + r.Errors)
	if ty.hasProc && n > 0 {
		user := float64(ty.userTicks) / clockTicksPerSecond
		sys := float64(ty.sysTicks) / clockTicksPerSecond
		r.CPU = &CPUStats{UserSeconds: user, SysSeconds: sys, PerRequestUS: (user + sys) * 1e6 / n,
			ResolutionUS: 1e6 / clockTicksPerSecond / n}
		r.RSSBytes, r.PeakRSSBytes = ty.last.proc.RSSBytes, ty.last.proc.PeakRSSBytes
	}
	if ty.hasMetrics && n > 0 {
		r.Allocs = &AllocStats{PerRequest: ty.mallocs / n, BytesPerRequest: ty.bytes / n, GCCycles: ty.gcs}
		for k, sum := range ty.phaseSum {
			r.ServerPhases = append(r.ServerPhases, ServerPhase{Role: k[0], Phase: k[1], Count: ty.phaseN[k], MeanUS: sum / ty.phaseN[k]})
		}
		sortServerPhases(r.ServerPhases)
	}
	r.Redis = ty.redis.report(n)
	return r
}

// recorder collects the samples of many concurrent requests.
type recorder struct {
	mu         sync.Mutex
	h          [numPhases]Histogram
	requests   int
	errors     int
	errSamples []string
}

func (r *recorder) add(samples []sample, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		msg := err.Error()
		if len(r.errSamples) < 5 && !slices.Contains(r.errSamples, msg) {
			r.errSamples = append(r.errSamples, msg)
		}
		return
	}
	r.requests++
	var total time.Duration
	for _, s := range samples {
		r.h[s.phase].Record(s.d)
		if s.phase != PhaseLateness {
			total += s.d
		}
	}
	r.h[PhaseTotal].Record(total)
}

// merge adds o's samples and counts to r.
func (r *recorder) merge(o *recorder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.h {
		r.h[p].Merge(&o.h[p])
	}
	r.requests += o.requests
	r.errors += o.errors
	for _, e := range o.errSamples {
		if len(r.errSamples) < 5 && !slices.Contains(r.errSamples, e) {
			r.errSamples = append(r.errSamples, e)
		}
	}
}

func (r *recorder) phases() []PhaseStats {
	var out []PhaseStats
	for p := range numPhases {
		h := &r.h[p]
		if h.Count() == 0 {
			continue
		}
		out = append(out, PhaseStats{Phase: p.String(), Count: h.Count(), Mean: us(h.Mean()),
			P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)),
			Max: us(h.Quantile(1))})
	}
	return out
}

// schedule starts play at a fixed rate for d: request i is due at start+i/rate
// whatever happened to the requests before it (open loop), and its latency is
// counted from that due time. It returns how many were dropped for exceeding
// maxInFlight.
func schedule(ctx context.Context, rate float64, d time.Duration, maxInFlight int, play func(due time.Time)) int {
	// The schedule runs on a thread of its own so that it can sleep precisely.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	var inFlight atomic.Int64
	dropped := 0
	for i := 0; ctx.Err() == nil; i++ {
		off := time.Duration(i) * interval
		if off >= d {
			break
		}
		due := start.Add(off)
		sleepUntil(due)
		if inFlight.Load() >= int64(maxInFlight) {
			dropped++
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			play(due)
		}()
	}
	wg.Wait()
	return dropped
}

// openWindow warms t up, then measures it for one window of the open loop.
func openWindow(ctx context.Context, s *Scenario, t *Target, pl *player, rate float64, warm, window time.Duration, ty *tally, o Options) error {
	if warm > 0 {
		var w recorder
		schedule(ctx, rate, warm, o.MaxInFlight, func(due time.Time) {
			w.add(pl.play(ctx, due, hooks{}))
		})
		if w.requests == 0 && w.errors > 0 {
			return fmt.Errorf("bench: %s on %s: every warm-up request failed: %s", s.Name, t.Name, w.errSamples[0])
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	before, err := t.snapshot(ctx)
	if err != nil {
		return err
	}
	var done func()
	if o.Observe != nil {
		done = o.Observe(ctx, s, t, window)
	}
	var rec recorder
	start := time.Now()
	ty.dropped += schedule(ctx, rate, window, o.MaxInFlight, func(due time.Time) {
		rec.add(pl.play(ctx, due, hooks{}))
	})
	elapsed := time.Since(start)
	if done != nil {
		done()
	}
	after, err := t.snapshot(ctx)
	if err != nil {
		return err
	}
	ty.add(t, &rec, before, after, elapsed)
	return ctx.Err()
}

// closedWindow runs requests one after another for d.
func closedWindow(ctx context.Context, t *Target, pl *player, d time.Duration, ty *tally) error {
	before, err := t.snapshot(ctx)
	if err != nil {
		return err
	}
	var rec recorder
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		rec.add(pl.play(ctx, time.Now(), hooks{}))
	}
	elapsed := time.Since(start)
	after, err := t.snapshot(ctx)
	if err != nil {
		return err
	}
	ty.add(t, &rec, before, after, elapsed)
	return ctx.Err()
}

// snapshot is a reading of a target's process and metrics.
type snapshot struct {
	proc    ProcStat
	hasProc bool
	metrics Metrics
	redis   *redisSnapshot
}

func (t *Target) snapshot(ctx context.Context) (snapshot, error) {
	var s snapshot
	if t.PID > 0 {
		p, err := ReadProcStat(t.PID)
		if err != nil {
			return s, err
		}
		s.proc, s.hasProc = p, true
	}
	if t.MetricsURL != "" {
		if !t.calibrated {
			if err := t.calibrate(ctx); err != nil {
				return s, err
			}
		}
		m, err := Scrape(ctx, t.MetricsURL)
		if err != nil {
			return s, err
		}
		s.metrics = m
	}
	if t.Redis != nil {
		r, err := t.Redis.snapshot(ctx)
		if err != nil {
			return s, err
		}
		s.redis = r
	}
	return s, nil
}

// calibrate measures what one scrape of the metrics endpoint allocates in the
// server, to take it out of per-request allocations.
func (t *Target) calibrate(ctx context.Context) error {
	const n = 4
	var first, last Metrics
	for i := range n + 1 {
		m, err := Scrape(ctx, t.MetricsURL)
		if err != nil {
			return err
		}
		if _, ok := m.Get("go_memstats_mallocs_total"); !ok {
			return fmt.Errorf("bench: %s serves no go_memstats_mallocs_total (the Go collector)", t.MetricsURL)
		}
		if i == 0 {
			first = m
		}
		last = m
	}
	t.scrapeMallocs = (delta(first, last, "go_memstats_mallocs_total")) / n
	t.scrapeBytes = (delta(first, last, "go_memstats_alloc_bytes_total")) / n
	t.calibrated = true
	return nil
}

func delta(a, b Metrics, name string, labels ...string) float64 {
	x, _ := a.Get(name, labels...)
	y, _ := b.Get(name, labels...)
	return y - x
}

// serverPhases reads tollgate_phase_duration_seconds, if the server has it.
func serverPhases(before, after Metrics) []ServerPhase {
	const prefix = "tollgate_phase_duration_seconds_count{"
	var out []ServerPhase
	for key, v := range after {
		labels, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		role, phase := label(labels, "role"), label(labels, "phase")
		count := v - before[key]
		if count <= 0 {
			continue
		}
		sumKey := "tollgate_phase_duration_seconds_sum{" + labels
		sum := after[sumKey] - before[sumKey]
		out = append(out, ServerPhase{Role: role, Phase: phase, Count: count, MeanUS: sum / count * 1e6})
	}
	sortServerPhases(out)
	return out
}

// sortServerPhases puts phases in the order Envoy plays them.
func sortServerPhases(out []ServerPhase) {
	order := func(p ServerPhase) int {
		for i, name := range phaseNames {
			if name == p.Role+" "+p.Phase || (p.Phase == "response_body" && i == int(PhaseResponseChunk) && p.Role == "policy") {
				return i
			}
		}
		return len(phaseNames)
	}
	slices.SortFunc(out, func(a, b ServerPhase) int {
		if d := order(a) - order(b); d != 0 {
			return d
		}
		return strings.Compare(a.Role+a.Phase, b.Role+b.Phase)
	})
}

// label reads one label value from `a="x",b="y"}`.
func label(labels, name string) string {
	for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// RunMemory holds many streams of a scenario open in the middle of their
// response, on each target in turn, and reads the server's memory at each hold
// point: with N streams held after At[0] chunks, then after At[1] chunks.
func RunMemory(ctx context.Context, s *Scenario, targets []*Target, o Options) (*MemoryReport, error) {
	o = o.withDefaults()
	n := s.Hold.Streams
	if n == 0 {
		n = o.HoldStreams
	}
	mr := &MemoryReport{Scenario: s.Name, Streams: n}
	p, err := prepare(s)
	if err != nil {
		return nil, err
	}
	// Nudge requests make the server collect garbage, so the heap goal reflects
	// what the held streams keep alive. They run one at a time with small
	// bodies, so that what they hold themselves when a collection marks is
	// small against 1000 held streams.
	nudge := &Scenario{Name: "gc-nudge", Status: StatusReady, Request: s.Request, Adapter: s.Adapter,
		Response: ResponseSpec{Kind: "sse", Events: 11}}
	nudge.Request.BodyBytes = 32 << 10
	if err := nudge.defaults(); err != nil {
		return nil, err
	}
	np, err := prepare(nudge)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		if t.PID == 0 && t.MetricsURL == "" {
			continue
		}
		pool, err := Dial(t.Addr, o.Conns)
		if err != nil {
			return nil, err
		}
		mt, err := holdOn(ctx, t, pool, p, np, n, o)
		pool.Close()
		if err != nil {
			return nil, err
		}
		mr.Targets = append(mr.Targets, mt)
	}
	return mr, nil
}

func holdOn(ctx context.Context, t *Target, pool *Pool, p, np *prepared, n int, o Options) (*MemoryTarget, error) {
	s := p.s
	at := s.Hold.At
	o.logf("bench: %s on %s: holding %d streams after %v chunks", s.Name, t.Name, n, at)
	pl, err := newPlayer(pool, p, o.Policy, o.Adapter, t.Strict)
	if err != nil {
		return nil, err
	}
	npl, err := newPlayer(pool, np, o.Policy, o.Adapter, t.Strict)
	if err != nil {
		return nil, err
	}
	mt := &MemoryTarget{Target: t.Name}
	base, _, err := memoryPoint(ctx, t, npl)
	if err != nil {
		return nil, err
	}
	mt.Base = base

	reached := make([]sync.WaitGroup, len(at))
	release := make([]chan struct{}, len(at))
	for i := range at {
		reached[i].Add(n)
		release[i] = make(chan struct{})
	}
	// Streams open 64 at a time: a burst of n at once is not what the test
	// is about.
	sem := make(chan struct{}, 64)
	var rec recorder
	var all sync.WaitGroup
	for range n {
		sem <- struct{}{}
		all.Add(1)
		go func() {
			defer all.Done()
			next := 0
			freed := false
			free := func() {
				if !freed {
					freed = true
					<-sem
				}
			}
			hk := hooks{beforeChunk: func(i int) {
				if next < len(at) && i == at[next] {
					k := next
					next++
					reached[k].Done()
					free()
					<-release[k]
				}
			}}
			samples, err := pl.play(ctx, time.Now(), hk)
			free()
			for ; next < len(at); next++ {
				reached[next].Done() // a failed stream must not block the test
			}
			rec.add(samples, err)
		}()
	}
	released := 0
	releaseRest := func() {
		for ; released < len(at); released++ {
			close(release[released])
		}
	}
	var first pointReadings
	for i := range at {
		reached[i].Wait()
		time.Sleep(200 * time.Millisecond)
		pt, rd, err := memoryPoint(ctx, t, npl)
		if err != nil {
			releaseRest()
			all.Wait()
			return nil, err
		}
		pt.AfterChunks = at[i]
		per := func(v, b int64) float64 { return float64(v-b) / float64(n) * 1000 }
		pt.RSSPer1000 = per(pt.RSSBytes, base.RSSBytes)
		pt.HeapPer1000 = per(pt.HeapLiveBytes, base.HeapLiveBytes)
		pt.StackPer1000 = per(pt.StackBytes, base.StackBytes)
		pt.GoroutinesPerSt = (pt.Goroutines - base.Goroutines) / float64(n)
		mt.Points = append(mt.Points, pt)
		if i == 0 {
			first = rd
		} else if i == len(at)-1 {
			// Between the end of the first point and the start of this one,
			// the server did nothing but move every held stream on by
			// at[i]-at[0] chunks (and answer one scrape).
			chunks := float64(n * (at[i] - at[0]))
			if first.after.metrics != nil && rd.before.metrics != nil {
				mt.AllocsPerChunk = (delta(first.after.metrics, rd.before.metrics, "go_memstats_mallocs_total") - t.scrapeMallocs) / chunks
			}
			if first.after.hasProc && rd.before.hasProc {
				ticks := rd.before.proc.UserTicks + rd.before.proc.SysTicks - first.after.proc.UserTicks - first.after.proc.SysTicks
				mt.CPUPerChunkUS = float64(ticks) * 1e6 / clockTicksPerSecond / chunks
			}
		}
		close(release[i])
		released++
	}
	all.Wait()
	mt.Errors = rec.errors
	if t.PID > 0 {
		if ps, err := ReadProcStat(t.PID); err == nil {
			mt.PeakRSSBytes = ps.PeakRSSBytes
		}
	}
	if rec.errors > 0 {
		o.logf("bench: %s on %s: %d held streams failed: %v", s.Name, t.Name, rec.errors, rec.errSamples)
	}
	return mt, nil
}

// pointReadings are a target's readings before and after a memory point's
// garbage-collection nudge.
type pointReadings struct{ before, after snapshot }

// memoryPoint reads RSS, then nudges the server into two garbage collections
// (with requests that complete, one at a time) and reads the heap goal, stacks
// and goroutines.
func memoryPoint(ctx context.Context, t *Target, nudge *player) (MemoryPoint, pointReadings, error) {
	var pt MemoryPoint
	var rd pointReadings
	s0, err := t.snapshot(ctx)
	if err != nil {
		return pt, rd, err
	}
	rd.before, rd.after = s0, s0
	if s0.hasProc {
		pt.RSSBytes = s0.proc.RSSBytes
	}
	if s0.metrics == nil {
		return pt, rd, nil
	}
	gc0, _ := s0.metrics.Get("go_gc_duration_seconds_count")
	deadline := time.Now().Add(30 * time.Second)
	var last Metrics
	for i := 0; ; i++ {
		if i%20 == 0 {
			m, err := t.snapshot(ctx)
			if err != nil {
				return pt, rd, err
			}
			last, rd.after = m.metrics, m
			if gc, _ := last.Get("go_gc_duration_seconds_count"); gc >= gc0+2 {
				break
			}
			if time.Now().After(deadline) {
				return pt, rd, errors.New("bench: the server ran no garbage collection within 30s of nudging")
			}
		}
		if _, err := nudge.play(ctx, time.Now(), hooks{}); err != nil {
			return pt, rd, fmt.Errorf("bench: gc nudge: %w", err)
		}
	}
	stack, _ := last.Get("go_memstats_stack_inuse_bytes")
	pt.Goroutines, _ = last.Get("go_goroutines")
	pt.StackBytes = int64(stack)
	pt.HeapLiveBytes = int64(liveHeap(last))
	return pt, rd, nil
}
