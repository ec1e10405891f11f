package benchcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/bench"
)

func echoCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:50052", "gRPC listen address, host:port or unix:/path")
	admin := fs.String("admin-addr", "", "HTTP listen address for /metrics (Go and process collectors, as serve exports); empty serves none")
	pprofAddr := fs.String("pprof-addr", "", "HTTP listen address for CPU and heap profiles; empty serves none")
	ballastMiB := fs.Float64("ballast-mib", 0, "MiB of never-touched heap to hold, so that the garbage collector paces as in a server with that much live data")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *ballastMiB < 0 {
		return ErrUsage
	}
	bl := &ballast{}
	bl.resize(int64(*ballastMiB * (1 << 20)))
	return serveEcho(ctx, *addr, *admin, *pprofAddr, bl, stderr)
}

// ballast is heap the echo processor holds so that its garbage collector paces
// as in a server with that much live data: a pointer-free allocation the
// collector counts as live but never scans, and whose pages are never written,
// so it costs no resident memory.
type ballast struct {
	mu sync.Mutex
	b  []byte
}

func (bl *ballast) resize(n int64) {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	bl.b = nil
	runtime.GC()
	bl.b = make([]byte, max(n, 0))
}

// match resizes the ballast so that the live heap after a collection is live
// bytes, and returns the ballast's size.
func (bl *ballast) match(live int64) int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	bl.mu.Lock()
	own := int64(ms.HeapAlloc) - int64(len(bl.b))
	bl.mu.Unlock()
	n := max(live-own, 0)
	bl.resize(n)
	runtime.GC() // the heap goal follows the new live heap at once
	return n
}

// ServeHTTP answers POST ?live=N with the new ballast size.
func (bl *ballast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	live, err := strconv.ParseInt(r.URL.Query().Get("live"), 10, 64)
	if err != nil || live < 0 {
		http.Error(w, "live: want a byte count", http.StatusBadRequest)
		return
	}
	fmt.Fprintln(w, bl.match(live))
}

// serveEcho runs the echo processor with the gRPC options serve uses, and an
// admin listener with the same collectors (and POST /ballast), until ctx ends. It prints one JSON line
// with its addresses to stderr, as serve's "tollgate serving" line does.
func serveEcho(ctx context.Context, addr, adminAddr, pprofAddr string, bl *ballast, stderr io.Writer) error {
	lis, err := gateway.Listen(addr)
	if err != nil {
		return fmt.Errorf("echo listen: %w", err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(gateway.MaxGRPCMessage), grpc.MaxSendMsgSize(gateway.MaxGRPCMessage))
	extprocv3.RegisterExternalProcessorServer(gs, bench.Echo{})
	line := map[string]string{"msg": "echo serving", "grpc": lis.Addr().String()}
	var servers []*http.Server
	if adminAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("POST /ballast", bl)
		a, err := startHTTP(adminAddr, mux)
		if err != nil {
			gs.Stop()
			return fmt.Errorf("echo admin: %w", err)
		}
		servers = append(servers, a.srv)
		line["admin"] = a.addr
	}
	if pprofAddr != "" {
		p, err := startHTTP(pprofAddr, profileHandler())
		if err != nil {
			gs.Stop()
			return fmt.Errorf("pprof: %w", err)
		}
		servers = append(servers, p.srv)
		line["pprof"] = p.addr
	}
	b, _ := json.Marshal(line)
	fmt.Fprintf(stderr, "%s\n", b)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		gs.Stop()
		err = nil
	case err = <-errc:
	}
	for _, s := range servers {
		s.Close()
	}
	return err
}

type httpListener struct {
	srv  *http.Server
	addr string
}

func startHTTP(addr string, h http.Handler) (httpListener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return httpListener{}, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis) //nolint:errcheck // ends with Close
	return httpListener{srv: srv, addr: lis.Addr().String()}, nil
}

// profileHandler serves CPU, heap and allocation profiles for the bench's
// children. It is never part of `tollgate serve`; `tollgate bench serve` runs it
// beside serve on a loopback port of its own, so production has no debug
// endpoint.
func profileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err != nil || secs <= 0 {
			secs = 10
		}
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	})
	for _, name := range []string{"heap", "allocs", "goroutine"} {
		mux.HandleFunc("GET /debug/pprof/"+name, func(w http.ResponseWriter, _ *http.Request) {
			pprof.Lookup(name).WriteTo(w, 0) //nolint:errcheck // the client sees a short profile
		})
	}
	return mux
}

// benchServe is `tollgate bench serve`: serve, plus a profiling listener.
func benchServe(ctx context.Context, args []string, stderr io.Writer, serve ServeFunc) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pprofAddr := fs.String("pprof-addr", "127.0.0.1:0", "HTTP listen address for CPU and heap profiles")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	run, err := serve(fs.Args(), stderr)
	if err != nil {
		return err
	}
	p, err := startHTTP(*pprofAddr, profileHandler())
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	defer p.srv.Close()
	b, _ := json.Marshal(map[string]string{"msg": "bench pprof", "pprof": p.addr})
	fmt.Fprintf(stderr, "%s\n", b)
	return run(ctx)
}

// bodyCommand is `tollgate bench body`: one Claude Code-shaped request body, as
// the scenarios generate them, on stdout (deploy/bench.sh posts it with wrk).
func bodyCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench body", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int("bytes", 102400, "exact size of the body")
	model := fs.String("model", "claude-opus-4-8", "model field")
	stream := fs.Bool("stream", true, "stream field")
	seed := fs.Uint64("seed", 1, "same seed, same bytes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return ErrUsage
	}
	b, err := bench.ClaudeCodeBody(*size, *model, *stream, *seed)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
