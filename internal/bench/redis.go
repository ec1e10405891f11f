package bench

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisProbe reads what a Redis server did while a target used it: its
// process CPU time (when its PID is known) and INFO commandstats.
type RedisProbe struct {
	// PID is the redis-server process, for CPU time from /proc; 0 (an
	// external Redis) measures commands only.
	PID    int
	client *redis.Client
}

// NewRedisProbe connects to the Redis at url (redis://host:port/db). Close it
// when done.
func NewRedisProbe(url string, pid int) (*RedisProbe, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("bench: redis url: %w", err)
	}
	opt.PoolSize = 1
	return &RedisProbe{PID: pid, client: redis.NewClient(opt)}, nil
}

// Close closes the probe's connection.
func (p *RedisProbe) Close() error { return p.client.Close() }

// CommandStat is one line of INFO commandstats: the calls of a command and
// the microseconds Redis spent executing them.
type CommandStat struct {
	Calls float64
	USec  float64
}

// ParseCommandStats reads the reply to INFO commandstats
// ("cmdstat_evalsha:calls=3,usec=327,usec_per_call=109.00,..."), by command
// name in lower case ("evalsha", "client|setinfo").
func ParseCommandStats(info string) (map[string]CommandStat, error) {
	out := map[string]CommandStat{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("bench: commandstats line %q: no fields", line)
		}
		var cs CommandStat
		for _, kv := range strings.Split(fields, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			var dst *float64
			switch k {
			case "calls":
				dst = &cs.Calls
			case "usec":
				dst = &cs.USec
			default:
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("bench: commandstats line %q: %s: %w", line, k, err)
			}
			*dst = f
		}
		out[strings.ToLower(name)] = cs
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: commandstats: %w", err)
	}
	return out, nil
}

// redisSnapshot is one reading of a RedisProbe.
type redisSnapshot struct {
	proc     ProcStat
	hasProc  bool
	commands map[string]CommandStat
	reads    float64 // INFO stats total_reads_processed: read events, about one per round trip
	hasReads bool
}

// ParseReadsProcessed reads total_reads_processed from the reply to INFO
// stats (Redis 6 and later): how many times Redis read from a client, about
// once per round trip, whatever a pipeline or script carries.
func ParseReadsProcessed(info string) (float64, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func (p *RedisProbe) snapshot(ctx context.Context) (*redisSnapshot, error) {
	s := &redisSnapshot{}
	if p.PID > 0 {
		ps, err := ReadProcStat(p.PID)
		if err != nil {
			return nil, err
		}
		s.proc, s.hasProc = ps, true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := p.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("bench: redis INFO commandstats: %w", err)
	}
	if s.commands, err = ParseCommandStats(info); err != nil {
		return nil, err
	}
	stats, err := p.client.Info(ctx, "stats").Result()
	if err != nil {
		return nil, fmt.Errorf("bench: redis INFO stats: %w", err)
	}
	s.reads, s.hasReads = ParseReadsProcessed(stats)
	return s, nil
}

// probeCommand reports whether a command is one the probe itself sends (or a
// client sends on connecting), left out of the per-request figures.
func probeCommand(name string) bool {
	switch name {
	case "info", "client|setinfo", "hello", "ping":
		return true
	}
	return false
}

// scriptCommand reports whether a command runs a script.
func scriptCommand(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// redisTally adds up a RedisProbe's readings over the measured windows.
type redisTally struct {
	ticks    uint64
	hasProc  bool
	commands map[string]CommandStat
	reads    float64
	hasReads bool
}

// add counts the Redis work between two snapshots.
func (rt *redisTally) add(before, after *redisSnapshot) {
	if before == nil || after == nil {
		return
	}
	if before.hasProc && after.hasProc {
		rt.hasProc = true
		rt.ticks += (after.proc.UserTicks + after.proc.SysTicks) - (before.proc.UserTicks + before.proc.SysTicks)
	}
	if before.hasReads && after.hasReads {
		rt.hasReads = true
		// The probe's own two INFO calls of the later snapshot are reads too.
		rt.reads += after.reads - before.reads - 2
	}
	if rt.commands == nil {
		rt.commands = map[string]CommandStat{}
	}
	for name, a := range after.commands {
		if probeCommand(name) {
			continue
		}
		b := before.commands[name]
		d := CommandStat{Calls: a.Calls - b.Calls, USec: a.USec - b.USec}
		if d.Calls <= 0 {
			continue
		}
		c := rt.commands[name]
		c.Calls += d.Calls
		c.USec += d.USec
		rt.commands[name] = c
	}
}

// report divides the tally by n requests.
func (rt *redisTally) report(n float64) *RedisStats {
	if rt.commands == nil || n <= 0 {
		return nil
	}
	r := &RedisStats{}
	if rt.hasReads {
		r.ReadsPerRequest = max(rt.reads, 0) / n
	}
	if rt.hasProc {
		cpu := float64(rt.ticks) * 1e6 / clockTicksPerSecond / n
		r.CPUPerRequestUS = &cpu
		r.CPUResolutionUS = 1e6 / clockTicksPerSecond / n
	}
	for name, c := range rt.commands {
		r.CommandsPerRequest += c.Calls / n
		r.USecPerRequest += c.USec / n
		if scriptCommand(name) {
			r.ScriptsPerRequest += c.Calls / n
			r.ScriptUSecPerRequest += c.USec / n
		}
		r.Commands = append(r.Commands, RedisCommand{Name: name, PerRequest: c.Calls / n, USecPerCall: c.USec / c.Calls})
	}
	slices.SortFunc(r.Commands, func(a, b RedisCommand) int {
		if a.PerRequest != b.PerRequest {
			if a.PerRequest > b.PerRequest {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return r
}

// RedisStats is the Redis server's work per request over a run of a target
// that uses it: its process CPU, and the commands it executed (INFO
// commandstats deltas, less the probe's own INFO).
type RedisStats struct {
	// CPUPerRequestUS is redis-server's utime+stime over the measured windows
	// per request; absent for an external Redis.
	CPUPerRequestUS *float64 `json:"cpu_per_request_us,omitempty"`
	CPUResolutionUS float64  `json:"cpu_resolution_us,omitempty"`
	// CommandsPerRequest counts every command executed: a script's EVALSHA
	// and, again, each command the script runs (commandstats counts both).
	CommandsPerRequest float64 `json:"commands_per_request"`
	// ReadsPerRequest is Redis's reads from its clients (INFO stats
	// total_reads_processed), about one per round trip: a pipeline of
	// several scripts is one.
	ReadsPerRequest float64 `json:"reads_per_request"`
	// ScriptsPerRequest counts the scripts (EVAL, EVALSHA, FCALL and their
	// read-only forms): each is one round trip.
	ScriptsPerRequest float64 `json:"scripts_per_request"`
	// USecPerRequest is the time Redis spent executing commands (commandstats
	// usec: execution only, without reading and parsing requests or writing
	// replies, which the process CPU includes). It is an upper bound: a
	// command run inside a script counts in the script's time and again in
	// its own.
	USecPerRequest float64 `json:"usec_per_request"`
	// ScriptUSecPerRequest is the scripts' share, the commands they ran
	// included.
	ScriptUSecPerRequest float64        `json:"script_usec_per_request"`
	Commands             []RedisCommand `json:"commands"`
}

// RedisCommand is one command's share of RedisStats.
type RedisCommand struct {
	Name        string  `json:"name"`
	PerRequest  float64 `json:"per_request"`
	USecPerCall float64 `json:"usec_per_call"`
}
