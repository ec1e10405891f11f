package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
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
	// Strict checks the replies as Tollgate's (expected denials, a signed
	// decision, no immediate response elsewhere).
	Strict bool

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
	if o.Policy.Mode == nil && o.Adapter.Mode == nil {
		o.Policy, o.Adapter = DefaultFilters()
	}
	return o
}

// Settings returns the conditions a report should state for these options.
func (o Options) Settings(servers string) Settings {
	o = o.withDefaults()
	return Settings{DefaultRate: o.Rate, DurationSeconds: o.Duration.Seconds(), WarmupSeconds: max(o.Warmup, 0).Seconds(),
		ClosedSeconds: max(o.Closed, 0).Seconds(), Conns: o.Conns, HoldStreams: max(o.HoldStreams, 0), Servers: servers}
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
	if !s.Deny() {
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
	for i, t := range targets {
		o.logf("bench: %s on %s: open loop at %.0f req/s, %v warm-up, %v measured", s.Name, t.Name, rate, max(o.Warmup, 0), o.Duration)
		r, err := openLoop(ctx, s, t, players[i], rate, o)
		if err != nil {
			return nil, err
		}
		sr.Runs = append(sr.Runs, r)
	}
	if o.Closed > 0 {
		for i, t := range targets {
			o.logf("bench: %s on %s: closed loop at concurrency 1 for %v", s.Name, t.Name, o.Closed)
			r, err := closedLoop(ctx, t, players[i], o)
			if err != nil {
				return nil, err
			}
			sr.Runs = append(sr.Runs, r)
		}
	}
	return sr, nil
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

func openLoop(ctx context.Context, s *Scenario, t *Target, pl *player, rate float64, o Options) (*RunReport, error) {
	if o.Warmup > 0 {
		var warm recorder
		schedule(ctx, rate, o.Warmup, o.MaxInFlight, func(due time.Time) {
			warm.add(pl.play(ctx, due, hooks{}))
		})
		if warm.requests == 0 && warm.errors > 0 {
			return nil, fmt.Errorf("bench: %s on %s: every warm-up request failed: %s", s.Name, t.Name, warm.errSamples[0])
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	before, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var done func()
	if o.Observe != nil {
		done = o.Observe(ctx, s, t, o.Duration)
	}
	var rec recorder
	start := time.Now()
	dropped := schedule(ctx, rate, o.Duration, o.MaxInFlight, func(due time.Time) {
		rec.add(pl.play(ctx, due, hooks{}))
	})
	elapsed := time.Since(start)
	if done != nil {
		done()
	}
	after, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	r := &RunReport{Target: t.Name, Loop: LoopOpen, Rate: rate, Seconds: elapsed.Seconds(), Requests: rec.requests,
		Errors: rec.errors, Dropped: dropped, ErrorSamples: rec.errSamples, Phases: rec.phases()}
	t.fill(r, before, after)
	return r, ctx.Err()
}

func closedLoop(ctx context.Context, t *Target, pl *player, o Options) (*RunReport, error) {
	before, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var rec recorder
	start := time.Now()
	for time.Since(start) < o.Closed && ctx.Err() == nil {
		rec.add(pl.play(ctx, time.Now(), hooks{}))
	}
	elapsed := time.Since(start)
	after, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	r := &RunReport{Target: t.Name, Loop: LoopClosed, Seconds: elapsed.Seconds(), Requests: rec.requests,
		Errors: rec.errors, ErrorSamples: rec.errSamples, Phases: rec.phases()}
	t.fill(r, before, after)
	return r, ctx.Err()
}

// snapshot is a reading of a target's process and metrics.
type snapshot struct {
	proc    ProcStat
	hasProc bool
	metrics Metrics
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

// fill adds the server-side figures of a run.
func (t *Target) fill(r *RunReport, before, after snapshot) {
	n := float64(r.Requests + r.Errors)
	if before.hasProc && after.hasProc && n > 0 {
		user := float64(after.proc.UserTicks-before.proc.UserTicks) / clockTicksPerSecond
		sys := float64(after.proc.SysTicks-before.proc.SysTicks) / clockTicksPerSecond
		r.CPU = &CPUStats{UserSeconds: user, SysSeconds: sys, PerRequestUS: (user + sys) * 1e6 / n,
			ResolutionUS: 1e6 / clockTicksPerSecond / n}
		r.RSSBytes, r.PeakRSSBytes = after.proc.RSSBytes, after.proc.PeakRSSBytes
	}
	if before.metrics != nil && after.metrics != nil && n > 0 {
		r.Allocs = &AllocStats{
			PerRequest:      (delta(before.metrics, after.metrics, "go_memstats_mallocs_total") - t.scrapeMallocs) / n,
			BytesPerRequest: (delta(before.metrics, after.metrics, "go_memstats_alloc_bytes_total") - t.scrapeBytes) / n,
			GCCycles:        delta(before.metrics, after.metrics, "go_gc_duration_seconds_count"),
		}
		r.ServerPhases = serverPhases(before.metrics, after.metrics)
	}
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
	return out
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
	// what the held streams keep alive.
	nudge := &Scenario{Name: "gc-nudge", Status: StatusReady, Request: s.Request, Adapter: s.Adapter,
		Response: ResponseSpec{Kind: "sse", Events: 11}}
	nudge.Request.BodyBytes = 1 << 20
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
	var first mallocCounts
	for i := range at {
		reached[i].Wait()
		time.Sleep(200 * time.Millisecond)
		pt, mc, err := memoryPoint(ctx, t, npl)
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
			first = mc
		} else if i == len(at)-1 && mc.before > 0 {
			// Between the last scrape at the first point and the first scrape
			// at this one, the server did nothing but move every held stream
			// on by at[i]-at[0] chunks (and answer that one scrape).
			chunks := float64(n * (at[i] - at[0]))
			mt.AllocsPerChunk = (mc.before - first.after - t.scrapeMallocs) / chunks
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

// mallocCounts are the server's allocation counter before and after a memory
// point's garbage-collection nudge.
type mallocCounts struct{ before, after float64 }

// memoryPoint reads RSS, then nudges the server into two garbage collections
// (with requests that complete, carrying 1 MB bodies) and reads the heap goal,
// stacks and goroutines.
func memoryPoint(ctx context.Context, t *Target, nudge *player) (MemoryPoint, mallocCounts, error) {
	var pt MemoryPoint
	var mc mallocCounts
	s0, err := t.snapshot(ctx)
	if err != nil {
		return pt, mc, err
	}
	if s0.hasProc {
		pt.RSSBytes = s0.proc.RSSBytes
	}
	if s0.metrics == nil {
		return pt, mc, nil
	}
	mc.before, _ = s0.metrics.Get("go_memstats_mallocs_total")
	gc0, _ := s0.metrics.Get("go_gc_duration_seconds_count")
	deadline := time.Now().Add(20 * time.Second)
	var last Metrics
	for i := 0; ; i++ {
		if i%10 == 0 {
			m, err := Scrape(ctx, t.MetricsURL)
			if err != nil {
				return pt, mc, err
			}
			last = m
			if gc, _ := m.Get("go_gc_duration_seconds_count"); gc >= gc0+2 {
				break
			}
			if time.Now().After(deadline) {
				return pt, mc, errors.New("bench: the server ran no garbage collection within 20s of nudging")
			}
		}
		if _, err := nudge.play(ctx, time.Now(), hooks{}); err != nil {
			return pt, mc, fmt.Errorf("bench: gc nudge: %w", err)
		}
	}
	mc.after, _ = last.Get("go_memstats_mallocs_total")
	goal, _ := last.Get("go_memstats_next_gc_bytes")
	stack, _ := last.Get("go_memstats_stack_inuse_bytes")
	pt.Goroutines, _ = last.Get("go_goroutines")
	pt.StackBytes = int64(stack)
	pt.HeapLiveBytes = int64((goal - stack) / 2)
	return pt, mc, nil
}
