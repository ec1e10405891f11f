package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report as tables: the conditions, a summary of every
// scenario, each scenario's latency per phase (Tollgate, echo and the
// difference side by side), the held-streams memory test and the DESIGN.md
// targets.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	m, s := r.Machine, r.Settings
	fmt.Fprintf(&b, "tollgate bench: %s, %d cores (GOMAXPROCS %d), %s, kernel %s, %s\n", m.CPU, m.Cores, m.GOMAXPROCS, m.GoVersion, m.Kernel, m.Started)
	fmt.Fprintf(&b, "servers: %s\n", s.Servers)
	fmt.Fprintf(&b, "open loop %.0f s after %.0f s warm-up (default %.0f req/s), closed loop c=1 %.0f s, %d HTTP/2 connections per server\n",
		s.DurationSeconds, s.WarmupSeconds, s.DefaultRate, s.ClosedSeconds, s.Conns)
	if s.Notes != "" {
		fmt.Fprintf(&b, "notes: %s\n", s.Notes)
	}
	b.WriteString("latencies in µs, from the scheduled start; T = tollgate, E = echo, Δ = T - E\n\n")

	if len(r.Scenarios) > 0 {
		r.writeSummary(&b)
	}
	for _, sc := range r.Scenarios {
		if len(sc.Runs) > 0 {
			b.WriteByte('\n')
			writeScenario(&b, sc)
		}
	}
	if len(r.Memory) > 0 {
		b.WriteByte('\n')
		r.writeMemory(&b)
	}
	if len(r.Targets) > 0 {
		b.WriteByte('\n')
		r.writeTargets(&b)
	}
	if r.Soak != nil {
		b.WriteByte('\n')
		r.Soak.WriteText(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func table(b *strings.Builder) *tabwriter.Writer {
	return tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func num(v float64) string {
	switch a := abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func signed(v float64) string {
	s := num(v)
	if v >= 0 {
		return "+" + s
	}
	return s
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func bytesIEC(v float64) string {
	switch a := abs(v); {
	case a >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

func (r *Report) writeSummary(b *strings.Builder) {
	b.WriteString("Summary (open loop)\n")
	tw := table(b)
	fmt.Fprintln(tw, "scenario\trate\treqs T/E\terr T/E\tp50 T\tp50 E\tΔ p50\tp99 T\tp99 E\tΔ p99\tCPU/req T\tCPU/req E\tΔ CPU\tallocs/req T\tallocs/req E\tΔ allocs\tRedis cmd/req\tRedis CPU/req\t")
	for _, sc := range r.Scenarios {
		if len(sc.Runs) == 0 {
			fmt.Fprintf(tw, "%s\t%s: %s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", sc.Name, sc.Status, sc.Reason)
			continue
		}
		t, e := sc.Run("tollgate", LoopOpen), sc.Run("echo", LoopOpen)
		cols := []string{sc.Name, num(sc.Rate), counts(t, e, func(r *RunReport) int { return r.Requests }),
			counts(t, e, func(r *RunReport) int { return r.Errors + r.Dropped })}
		pt, pe := t.Phase(PhaseTotal), e.Phase(PhaseTotal)
		for _, q := range []func(*PhaseStats) float64{
			func(p *PhaseStats) float64 { return p.P50 },
			func(p *PhaseStats) float64 { return p.P99 },
		} {
			cols = append(cols, triple(pt != nil, pe != nil, func() float64 { return q(pt) }, func() float64 { return q(pe) })...)
		}
		cols = append(cols, triple(t != nil && t.CPU != nil, e != nil && e.CPU != nil,
			func() float64 { return t.CPU.PerRequestUS }, func() float64 { return e.CPU.PerRequestUS })...)
		cols = append(cols, triple(t != nil && t.Allocs != nil, e != nil && e.Allocs != nil,
			func() float64 { return t.Allocs.PerRequest }, func() float64 { return e.Allocs.PerRequest })...)
		rcmd, rcpu := "-", "-"
		if t != nil && t.Redis != nil {
			rcmd = num(t.Redis.CommandsPerRequest)
			if t.Redis.CPUPerRequestUS != nil {
				rcpu = num(*t.Redis.CPUPerRequestUS)
			}
		}
		cols = append(cols, rcmd, rcpu)
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	tw.Flush()
}

func counts(t, e *RunReport, f func(*RunReport) int) string {
	get := func(r *RunReport) string {
		if r == nil {
			return "-"
		}
		return fmt.Sprint(f(r))
	}
	return get(t) + "/" + get(e)
}

// triple formats a Tollgate value, an echo value and their difference.
func triple(hasT, hasE bool, t, e func() float64) []string {
	out := []string{"-", "-", "-"}
	if hasT {
		out[0] = num(t())
	}
	if hasE {
		out[1] = num(e())
	}
	if hasT && hasE {
		out[2] = signed(t() - e())
	}
	return out
}

func writeScenario(b *strings.Builder, sc *ScenarioReport) {
	fmt.Fprintf(b, "== %s: %s\n", sc.Name, sc.Description)
	if sc.EchoBallastBytes > 0 {
		fmt.Fprintf(b, "echo held a %s ballast to match Tollgate's live heap\n", bytesIEC(sc.EchoBallastBytes))
	}
	t, e := sc.Run("tollgate", LoopOpen), sc.Run("echo", LoopOpen)
	for _, r := range []*RunReport{t, e} {
		if r == nil {
			continue
		}
		fmt.Fprintf(b, "%s: open loop %.0f req/s, %.1f s, %d requests, %d errors", r.Target, r.Rate, r.Seconds, r.Requests, r.Errors)
		if r.Dropped > 0 {
			fmt.Fprintf(b, ", %d dropped (too many in flight)", r.Dropped)
		}
		b.WriteByte('\n')
		for _, msg := range r.ErrorSamples {
			fmt.Fprintf(b, "  error: %s\n", msg)
		}
	}
	tw := table(b)
	fmt.Fprintln(tw, "phase\tn/req\tT p50\tp90\tp99\tp99.9\t\tE p50\tp90\tp99\tp99.9\t\tΔ p50\tp90\tp99\tp99.9\t")
	for p := range numPhases {
		pt, pe := t.Phase(p), e.Phase(p)
		if pt == nil && pe == nil {
			continue
		}
		perReq := "1"
		if ref := firstOf(pt, pe); ref != nil && t != nil && t.Requests > 0 && p != PhaseTotal {
			perReq = num(float64(ref.Count) / float64(max(t.Requests, 1)))
		}
		cols := []string{p.String(), perReq}
		cols = append(cols, quantiles(pt)...)
		cols = append(cols, "")
		cols = append(cols, quantiles(pe)...)
		cols = append(cols, "")
		if pt != nil && pe != nil {
			cols = append(cols, signed(pt.P50-pe.P50), signed(pt.P90-pe.P90), signed(pt.P99-pe.P99), signed(pt.P999-pe.P999))
		} else {
			cols = append(cols, "-", "-", "-", "-")
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	tw.Flush()

	tw = table(b)
	fmt.Fprintln(tw, "server, per request\ttollgate\techo\tΔ\t")
	if t != nil && e != nil {
		if t.CPU != nil && e.CPU != nil {
			fmt.Fprintf(tw, "CPU µs (user+sys; tick ±%s µs)\t%s\t%s\t%s\t\n", num(max(t.CPU.ResolutionUS, e.CPU.ResolutionUS)),
				num(t.CPU.PerRequestUS), num(e.CPU.PerRequestUS), signed(t.CPU.PerRequestUS-e.CPU.PerRequestUS))
			tu := t.CPU.UserSeconds * 1e6 / float64(max(t.Requests+t.Errors, 1))
			eu := e.CPU.UserSeconds * 1e6 / float64(max(e.Requests+e.Errors, 1))
			fmt.Fprintf(tw, "  of which user\t%s\t%s\t%s\t\n", num(tu), num(eu), signed(tu-eu))
		}
		if t.Allocs != nil && e.Allocs != nil {
			fmt.Fprintf(tw, "allocations\t%s\t%s\t%s\t\n", num(t.Allocs.PerRequest), num(e.Allocs.PerRequest), signed(t.Allocs.PerRequest-e.Allocs.PerRequest))
			fmt.Fprintf(tw, "allocated bytes\t%s\t%s\t%s\t\n", bytesIEC(t.Allocs.BytesPerRequest), bytesIEC(e.Allocs.BytesPerRequest),
				bytesIEC(t.Allocs.BytesPerRequest-e.Allocs.BytesPerRequest))
			fmt.Fprintf(tw, "GC cycles in the run\t%.0f\t%.0f\t\t\n", t.Allocs.GCCycles, e.Allocs.GCCycles)
		}
		if t.RSSBytes > 0 && e.RSSBytes > 0 {
			fmt.Fprintf(tw, "RSS after the run (peak)\t%s (%s)\t%s (%s)\t\t\n", bytesIEC(float64(t.RSSBytes)), bytesIEC(float64(t.PeakRSSBytes)),
				bytesIEC(float64(e.RSSBytes)), bytesIEC(float64(e.PeakRSSBytes)))
		}
	}
	tw.Flush()
	if t != nil && t.Redis != nil {
		writeRedis(b, t)
	}
	if t != nil && e != nil && len(t.Rounds) > 1 && len(t.Rounds) == len(e.Rounds) {
		cpu := roundDeltas(t.Rounds, e.Rounds, func(r RoundStats) float64 { return r.UserUS + r.SysUS })
		p50 := roundDeltas(t.Rounds, e.Rounds, func(r RoundStats) float64 { return r.P50US })
		fmt.Fprintf(b, "per round, Δ CPU µs/req: %s; Δ p50 µs: %s\n", rounds(cpu), rounds(p50))
	}
	if t != nil && len(t.ServerPhases) > 0 {
		var parts []string
		for _, sp := range t.ServerPhases {
			parts = append(parts, fmt.Sprintf("%s %s %s", sp.Role, sp.Phase, num(sp.MeanUS)))
		}
		fmt.Fprintf(b, "Tollgate handler time per message, mean µs: %s\n", strings.Join(parts, ", "))
	}
	ct, ce := sc.Run("tollgate", LoopClosed), sc.Run("echo", LoopClosed)
	if pt, pe := ct.Phase(PhaseTotal), ce.Phase(PhaseTotal); pt != nil && pe != nil {
		fmt.Fprintf(b, "closed loop c=1: request total p50 %s / %s (Δ %s), p99 %s / %s (Δ %s) µs over %d / %d requests",
			num(pt.P50), num(pe.P50), signed(pt.P50-pe.P50), num(pt.P99), num(pe.P99), signed(pt.P99-pe.P99), ct.Requests, ce.Requests)
		if ct.CPU != nil && ce.CPU != nil {
			fmt.Fprintf(b, "; CPU/req %s / %s µs", num(ct.CPU.PerRequestUS), num(ce.CPU.PerRequestUS))
		}
		b.WriteByte('\n')
	}
}

func firstOf(a, b *PhaseStats) *PhaseStats {
	if a != nil {
		return a
	}
	return b
}

func quantiles(p *PhaseStats) []string {
	if p == nil {
		return []string{"-", "-", "-", "-"}
	}
	return []string{num(p.P50), num(p.P90), num(p.P99), num(p.P999)}
}

func (r *Report) writeMemory(b *strings.Builder) {
	b.WriteString("Held streams: memory per in-flight stream (differences from the server with none open)\n")
	tw := table(b)
	fmt.Fprintln(tw, "scenario\ttarget\tstreams\tafter chunks\tRSS per 1000\tlive heap per 1000\tstacks per 1000\tgoroutines/stream\tCPU µs/chunk\tallocs/chunk\tpeak RSS\terrors\t")
	for _, m := range r.Memory {
		for _, t := range m.Targets {
			for i, p := range t.Points {
				cpc, apc, peak, errs := "", "", "", ""
				if i == len(t.Points)-1 {
					cpc, apc, peak, errs = num(t.CPUPerChunkUS), num(t.AllocsPerChunk), bytesIEC(float64(t.PeakRSSBytes)), fmt.Sprint(t.Errors)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Scenario, t.Target, m.Streams, p.AfterChunks,
					bytesIEC(p.RSSPer1000), bytesIEC(p.HeapPer1000), bytesIEC(p.StackPer1000), num(p.GoroutinesPerSt), cpc, apc, peak, errs)
			}
		}
	}
	tw.Flush()
}

func (r *Report) writeTargets(b *strings.Builder) {
	b.WriteString("DESIGN.md targets\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tlimit\tmeasured\t")
	for _, t := range r.Targets {
		m := t.Measured
		if m == "" {
			m = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s: %s\t\n", t.Target, t.Limit, strings.ToUpper(t.Met), m)
	}
	tw.Flush()
}

// rounds lists per-round differences, then their mean with its 95 % interval
// and their median, the figure a single stalled round moves least.
func rounds(ds []float64) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = signed(d)
	}
	out := strings.Join(parts, " ")
	if mean, half, ok := meanCI(ds); ok {
		out += fmt.Sprintf(" (mean %s ± %.0f, median %s)", signed(mean), half, signed(median(slices.Clone(ds))))
	}
	return out
}

// writeRedis prints the Redis server's work per request beside Tollgate's CPU.
func writeRedis(b *strings.Builder, t *RunReport) {
	rs := t.Redis
	b.WriteString("Redis, per request:")
	if rs.CPUPerRequestUS != nil {
		fmt.Fprintf(b, " CPU %s µs (tick ±%s)", num(*rs.CPUPerRequestUS), num(rs.CPUResolutionUS))
		if t.CPU != nil {
			fmt.Fprintf(b, ", Tollgate + Redis %s µs", num(t.CPU.PerRequestUS+*rs.CPUPerRequestUS))
		}
		b.WriteByte(';')
	}
	fmt.Fprintf(b, " %s reads (round trips), %s scripts (%s µs executing them), %s commands in all, scripts' included (commandstats)\n",
		num(rs.ReadsPerRequest), num(rs.ScriptsPerRequest), num(rs.ScriptUSecPerRequest), num(rs.CommandsPerRequest))
	if len(rs.Commands) > 0 {
		parts := make([]string, len(rs.Commands))
		for i, c := range rs.Commands {
			parts[i] = fmt.Sprintf("%s %s × %s µs", c.Name, num(c.PerRequest), num(c.USecPerCall))
		}
		fmt.Fprintf(b, "  commands per request: %s\n", strings.Join(parts, ", "))
	}
	if len(t.Rounds) > 1 {
		parts := make([]string, len(t.Rounds))
		for i, r := range t.Rounds {
			parts[i] = fmt.Sprintf("%s cmd/%s µs", num(r.RedisCommands), num(r.RedisCPUUS))
		}
		fmt.Fprintf(b, "  per round (commands / Redis CPU µs): %s\n", strings.Join(parts, ", "))
	}
}
