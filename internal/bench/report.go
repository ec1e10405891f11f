package bench

import (
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Report is the result of a bench run. It is printed as tables (WriteText) and
// as JSON for machines; the JSON field names are stable.
type Report struct {
	Machine   Machine           `json:"machine"`
	Settings  Settings          `json:"settings"`
	Scenarios []*ScenarioReport `json:"scenarios"`
	Memory    []*MemoryReport   `json:"memory,omitempty"`
	Targets   []TargetCheck     `json:"targets,omitempty"`
	// Soak is the long mixed run of `tollgate bench --soak`, when asked.
	Soak *SoakReport `json:"soak,omitempty"`
}

// Machine describes where the bench ran.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	Kernel     string `json:"kernel,omitempty"`
	Started    string `json:"started"`
}

// Settings are the run's conditions.
type Settings struct {
	DefaultRate     float64 `json:"default_rate_rps"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	ClosedSeconds   float64 `json:"closed_loop_seconds"`
	Conns           int     `json:"connections"`
	HoldStreams     int     `json:"hold_streams"`
	Rounds          int     `json:"rounds"`
	// Servers says how the servers ran (child processes, in-process, external).
	Servers string `json:"servers"`
	Notes   string `json:"notes,omitempty"`
}

// ScenarioReport holds every run of one scenario.
type ScenarioReport struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Status      string  `json:"status"`
	Reason      string  `json:"reason,omitempty"`
	Rate        float64 `json:"rate_rps"`
	BodyBytes   int     `json:"body_bytes"`
	Chunks      int     `json:"response_messages"`
	// EchoBallastBytes is the ballast the echo processor held to match
	// Tollgate's live heap (see Target.BallastURL).
	EchoBallastBytes float64      `json:"echo_ballast_bytes,omitempty"`
	Runs             []*RunReport `json:"runs,omitempty"`
}

// Loops.
const (
	LoopOpen   = "open"
	LoopClosed = "closed"
)

// RunReport is one scenario against one server, in one loop.
type RunReport struct {
	Target   string  `json:"target"`
	Loop     string  `json:"loop"`
	Rate     float64 `json:"rate_rps,omitempty"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	// Dropped counts scheduled requests not started because too many were in
	// flight: the server (or the driver) could not keep up with the rate.
	Dropped      int           `json:"dropped,omitempty"`
	ErrorSamples []string      `json:"error_samples,omitempty"`
	Phases       []PhaseStats  `json:"phases"`
	CPU          *CPUStats     `json:"cpu,omitempty"`
	Allocs       *AllocStats   `json:"allocs,omitempty"`
	ServerPhases []ServerPhase `json:"server_phases,omitempty"`
	RSSBytes     int64         `json:"rss_bytes,omitempty"`
	PeakRSSBytes int64         `json:"peak_rss_bytes,omitempty"`
	// Redis is the work of the Redis server the target used, per request.
	Redis *RedisStats `json:"redis,omitempty"`
	// Rounds are the figures of each round alone, to show their spread.
	Rounds []RoundStats `json:"rounds,omitempty"`
}

// RoundStats are one round's figures.
type RoundStats struct {
	Requests int     `json:"requests"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	UserUS   float64 `json:"user_cpu_per_request_us"`
	SysUS    float64 `json:"sys_cpu_per_request_us"`
	// RedisCPUUS and RedisCommands are the Redis server's CPU and commands
	// per request in this round, for a target that uses Redis.
	RedisCPUUS    float64 `json:"redis_cpu_per_request_us,omitempty"`
	RedisCommands float64 `json:"redis_commands_per_request,omitempty"`
}

// PhaseStats are latencies of one phase in microseconds.
type PhaseStats struct {
	Phase string  `json:"phase"`
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// CPUStats is the server process's CPU time over a run, from /proc/<pid>/stat.
type CPUStats struct {
	UserSeconds  float64 `json:"user_seconds"`
	SysSeconds   float64 `json:"sys_seconds"`
	PerRequestUS float64 `json:"per_request_us"`
	// ResolutionUS is one clock tick divided by the requests: the smallest
	// per-request difference the run can show.
	ResolutionUS float64 `json:"resolution_us"`
}

// AllocStats are the server's heap allocations over a run, from its /metrics
// (go_memstats_mallocs_total and go_memstats_alloc_bytes_total, which the Go
// collector reads from runtime/metrics), less the cost of the scrapes.
type AllocStats struct {
	PerRequest      float64 `json:"per_request"`
	BytesPerRequest float64 `json:"bytes_per_request"`
	GCCycles        float64 `json:"gc_cycles"`
}

// ServerPhase is Tollgate's own time per message of one role and phase, the mean
// of tollgate_phase_duration_seconds over the run: handler time, without gRPC.
type ServerPhase struct {
	Role   string  `json:"role"`
	Phase  string  `json:"phase"`
	Count  float64 `json:"count"`
	MeanUS float64 `json:"mean_us"`
}

// MemoryReport is the held-streams test of one scenario.
type MemoryReport struct {
	Scenario string          `json:"scenario"`
	Streams  int             `json:"streams"`
	Targets  []*MemoryTarget `json:"targets"`
}

// MemoryTarget is the held-streams test against one server.
type MemoryTarget struct {
	Target string `json:"target"`
	Errors int    `json:"errors"`
	// Base is the server with no stream open; Points[i] with Streams streams
	// held after At[i] response chunks.
	Base   MemoryPoint   `json:"base"`
	Points []MemoryPoint `json:"points"`
	// AllocsPerChunk is the allocations per response chunk between the first
	// and the last hold point, across all held streams.
	AllocsPerChunk float64 `json:"allocs_per_chunk"`
	// CPUPerChunkUS is the server's CPU time per chunk over the same span:
	// 1000 streams moving on together, as many streams do through one Envoy.
	CPUPerChunkUS float64 `json:"cpu_per_chunk_us"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
}

// MemoryPoint is the server's memory at one point of the held-streams test.
// Per-1000-stream figures are differences from Base.
type MemoryPoint struct {
	AfterChunks int   `json:"after_chunks"`
	RSSBytes    int64 `json:"rss_bytes"`
	// HeapLiveBytes estimates the live heap from the GC's heap goal after a
	// collection: (go_memstats_next_gc_bytes - go_memstats_stack_inuse_bytes)/2
	// at GOGC=100.
	HeapLiveBytes   int64   `json:"heap_live_bytes"`
	StackBytes      int64   `json:"stack_bytes"`
	Goroutines      float64 `json:"goroutines"`
	RSSPer1000      float64 `json:"rss_per_1000_streams_bytes"`
	HeapPer1000     float64 `json:"heap_live_per_1000_streams_bytes"`
	StackPer1000    float64 `json:"stack_per_1000_streams_bytes"`
	GoroutinesPerSt float64 `json:"goroutines_per_stream"`
}

// TargetCheck is one DESIGN.md performance target, evaluated.
type TargetCheck struct {
	Target   string  `json:"target"`
	Limit    string  `json:"limit"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	// Met is "met", "not met" or "not measured".
	Met    string `json:"met"`
	Method string `json:"method"`
}

// Run returns the run of target in loop, or nil.
func (s *ScenarioReport) Run(target, loop string) *RunReport {
	for _, r := range s.Runs {
		if r.Target == target && r.Loop == loop {
			return r
		}
	}
	return nil
}

// Phase returns the stats of a phase, or nil.
func (r *RunReport) Phase(p Phase) *PhaseStats {
	if r == nil {
		return nil
	}
	for i := range r.Phases {
		if r.Phases[i].Phase == p.String() {
			return &r.Phases[i]
		}
	}
	return nil
}

// Scenario returns the report of a scenario by name, or nil.
func (r *Report) Scenario(name string) *ScenarioReport {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ThisMachine describes the machine the bench runs on.
func ThisMachine(now time.Time) Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		Started: now.UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
