package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// SoakPart is one scenario of a soak and the Tollgate it runs on.
type SoakPart struct {
	Scenario *Scenario
	Target   *Target
}

// SoakReport is a long open-loop run of mixed scenarios: whether the servers'
// memory and CPU per request stay flat from its start to its end.
type SoakReport struct {
	Requests  int      `json:"requests"`
	Rate      float64  `json:"rate_rps"`
	Seconds   float64  `json:"seconds"`
	Scenarios []string `json:"scenarios"`
	Errors    int      `json:"errors"`
	Dropped   int      `json:"dropped,omitempty"`
	// ErrorSamples are a few of the errors.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Processes are every Tollgate and Redis the soak used.
	Processes []SoakProcess `json:"processes"`
}

// SoakProcess is one server process over a soak: its RSS at the start, after
// the first tenth (warm), before the last tenth and at the end, and its CPU
// per request it served (a Tollgate the requests of its
// scenarios, Redis those of every scenario that uses it) over the first and
// the last tenth of the soak.
type SoakProcess struct {
	Name                 string  `json:"name"`
	PID                  int     `json:"pid"`
	StartRSSBytes        int64   `json:"start_rss_bytes"`
	WarmRSSBytes         int64   `json:"first_tenth_rss_bytes"`
	LastTenthRSSBytes    int64   `json:"last_tenth_start_rss_bytes"`
	EndRSSBytes          int64   `json:"end_rss_bytes"`
	FirstCPUPerRequestUS float64 `json:"first_tenth_cpu_per_request_us"`
	LastCPUPerRequestUS  float64 `json:"last_tenth_cpu_per_request_us"`
}

// soakProc is a process a soak watches, and how many of the soak's parts
// it serves.
type soakProc struct {
	name  string
	pid   int
	parts int
}

// soakProcs lists the distinct processes of parts: each Tollgate and the
// Redis it uses, once each.
func soakProcs(parts []SoakPart) []soakProc {
	var out []soakProc
	seen := map[int]int{}
	add := func(name string, pid int) {
		if pid <= 0 {
			return
		}
		if i, ok := seen[pid]; ok {
			out[i].parts++
			return
		}
		seen[pid] = len(out)
		out = append(out, soakProc{name, pid, 1})
	}
	for _, p := range parts {
		add(p.Target.Name+" ("+p.Scenario.Name+")", p.Target.PID)
		if p.Target.Redis != nil {
			add("redis-server", p.Target.Redis.PID)
		}
	}
	return out
}

// RunSoak plays requests requests at rate in an open loop, request i from
// parts[i % len(parts)], and reads every process's CPU and RSS at the start,
// after the first tenth of the requests, before the last tenth and at the end.
func RunSoak(ctx context.Context, parts []SoakPart, requests int, rate float64, o Options) (*SoakReport, error) {
	o = o.withDefaults()
	if len(parts) == 0 || requests <= 0 || rate <= 0 {
		return nil, fmt.Errorf("bench: soak: %d scenarios, %d requests at %g req/s", len(parts), requests, rate)
	}
	rep := &SoakReport{Requests: requests, Rate: rate}
	players := make([]*player, len(parts))
	for i, part := range parts {
		rep.Scenarios = append(rep.Scenarios, part.Scenario.Name)
		p, err := prepare(part.Scenario)
		if err != nil {
			return nil, err
		}
		pool, err := Dial(part.Target.Addr, o.Conns)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		if players[i], err = newPlayer(pool, p, o.Policy, o.Adapter, part.Target.Strict); err != nil {
			return nil, err
		}
	}
	procs := soakProcs(parts)
	read := func() ([]ProcStat, error) {
		out := make([]ProcStat, len(procs))
		for i, p := range procs {
			s, err := ReadProcStat(p.pid)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}

	var mu sync.Mutex
	next := 0
	play := func(due time.Time) {
		mu.Lock()
		i := next % len(players)
		next++
		mu.Unlock()
		if _, err := players[i].play(ctx, due, hooks{}); err != nil {
			mu.Lock()
			rep.Errors++
			if len(rep.ErrorSamples) < 5 {
				rep.ErrorSamples = append(rep.ErrorSamples, parts[i].Scenario.Name+": "+err.Error())
			}
			mu.Unlock()
		}
	}
	tenth := max(requests/10, 1)
	segments := []int{tenth, max(requests-2*tenth, 0), tenth}
	readings := make([][]ProcStat, 0, len(segments)+1)
	start := time.Now()
	s, err := read()
	if err != nil {
		return nil, err
	}
	readings = append(readings, s)
	for i, n := range segments {
		o.logf("bench: soak: part %d/%d, %d requests at %.0f req/s", i+1, len(segments), n, rate)
		if n > 0 {
			rep.Dropped += schedule(ctx, rate, time.Duration(float64(n)/rate*float64(time.Second)), o.MaxInFlight, play)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := read()
		if err != nil {
			return nil, err
		}
		readings = append(readings, s)
	}
	rep.Seconds = time.Since(start).Seconds()
	perReq := func(a, b ProcStat, n float64) float64 {
		return float64((b.UserTicks+b.SysTicks)-(a.UserTicks+a.SysTicks)) * 1e6 / clockTicksPerSecond / n
	}
	for i, p := range procs {
		// Round-robin: the process served its parts' share of each tenth.
		tenth := float64(tenth) * float64(p.parts) / float64(len(parts))
		rep.Processes = append(rep.Processes, SoakProcess{Name: p.name, PID: p.pid,
			StartRSSBytes: readings[0][i].RSSBytes, WarmRSSBytes: readings[1][i].RSSBytes,
			LastTenthRSSBytes: readings[2][i].RSSBytes, EndRSSBytes: readings[3][i].RSSBytes,
			FirstCPUPerRequestUS: perReq(readings[0][i], readings[1][i], tenth), LastCPUPerRequestUS: perReq(readings[2][i], readings[3][i], tenth)})
	}
	return rep, nil
}

// WriteText prints the soak as a table.
func (r *SoakReport) WriteText(b *strings.Builder) {
	fmt.Fprintf(b, "Soak: %d requests at %.0f req/s open loop in %.0f s, mixed round-robin: %s; %d errors, %d dropped\n",
		r.Requests, r.Rate, r.Seconds, strings.Join(r.Scenarios, ", "), r.Errors, r.Dropped)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(b, "  error: %s\n", e)
	}
	tw := table(b)
	fmt.Fprintln(tw, "process\tpid\tRSS start\tafter 1st tenth\tbefore last tenth\tend\tCPU µs/req, first tenth\tlast tenth\t")
	for _, p := range r.Processes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, p.PID, bytesIEC(float64(p.StartRSSBytes)),
			bytesIEC(float64(p.WarmRSSBytes)), bytesIEC(float64(p.LastTenthRSSBytes)), bytesIEC(float64(p.EndRSSBytes)),
			num(p.FirstCPUPerRequestUS), num(p.LastCPUPerRequestUS))
	}
	tw.Flush()
}
