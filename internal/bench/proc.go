package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// ProcStat is a reading of a process's CPU time and memory from /proc.
type ProcStat struct {
	UserTicks, SysTicks uint64 // utime and stime, in clock ticks (10 ms)
	RSSBytes            int64  // VmRSS
	PeakRSSBytes        int64  // VmHWM
}

// CPU is the process's total CPU time.
func (s ProcStat) CPU() time.Duration {
	return time.Duration(s.UserTicks+s.SysTicks) * time.Second / clockTicksPerSecond
}

// ReadProcStat reads /proc/<pid>/stat and /proc/<pid>/status. utime and stime
// cover every thread of the process, including threads that have exited.
func ReadProcStat(pid int) (ProcStat, error) {
	var s ProcStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: process stats: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces, so
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("bench: /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid(4) ... utime(14) stime(15).
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return s, errors.New("bench: /proc stat: too few fields")
	}
	if s.UserTicks, err = strconv.ParseUint(f[utime], 10, 64); err != nil {
		return s, fmt.Errorf("bench: /proc stat utime: %w", err)
	}
	if s.SysTicks, err = strconv.ParseUint(f[stime], 10, 64); err != nil {
		return s, fmt.Errorf("bench: /proc stat stime: %w", err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: process status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(st))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSSBytes
		case "VmHWM":
			dst = &s.PeakRSSBytes
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("bench: /proc status %s: %w", k, err)
		}
		*dst = kb << 10
	}
	return s, nil
}

// Metrics is one scrape of a Prometheus text endpoint: every sample by its
// series, written as name{label="value",...} exactly as the endpoint printed it.
type Metrics map[string]float64

// Get returns a sample by name and labels given as alternating keys and values,
// in the order the endpoint prints them (client_golang sorts labels by name).
func (m Metrics) Get(name string, labels ...string) (float64, bool) {
	key := name
	if len(labels) > 0 {
		var b strings.Builder
		b.WriteString(name)
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
		}
		b.WriteByte('}')
		key = b.String()
	}
	v, ok := m[key]
	return v, ok
}

// ParseMetrics reads the Prometheus text exposition format. It keeps samples
// and skips comments; timestamps are not expected (client_golang writes none).
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bench: metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bench: metrics line %q: %w", line, err)
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: reading metrics: %w", err)
	}
	return m, nil
}

// Scrape fetches and parses a Prometheus text endpoint.
func Scrape(ctx context.Context, url string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: scrape %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}
