package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/translate"
)

// maxGRPCMessage bounds one ext_proc message. BUFFERED request bodies arrive whole
// and may be 32 MB (Anthropic's limit); grpc-go's default is 4 MiB.
const maxGRPCMessage = 64 << 20

// serveConfig is everything "serve" needs, from flags or TOLLGATE_* variables.
type serveConfig struct {
	GRPCAddr           string
	AdminAddr          string
	PolicyPath         string
	PolicyPoll         time.Duration
	DecisionSecretFile string
	DecisionSecret     string // only from the environment, never a flag
	ShutdownTimeout    time.Duration
	DrainDelay         time.Duration
	LogLevel           string
	LogFormat          string

	RedisURL            string
	RecordsStream       string
	RecordsStreamMaxLen int64
	RecordsFile         string
	RecordsFileMaxBytes int64
	RecordsLog          string // auto, true or false
	SpoolDir            string
	AdminTokenFile      string
	AdminToken          string // only from the environment, never a flag
	BudgetTimeout       time.Duration
	BudgetEarlyReserve  bool
	// BudgetEarlyBodyTimeout is how long an early reservation waits for the
	// request's body.
	BudgetEarlyBodyTimeout time.Duration
}

// parseServeFlags reads flags; each flag's default comes from its TOLLGATE_*
// variable, so the environment configures and flags override.
func parseServeFlags(args []string, lookup func(string) (string, bool), stderr io.Writer) (serveConfig, error) {
	env := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	var c serveConfig
	var errs []error
	integer := func(name string, def int64) int64 {
		v, ok := lookup(name)
		if !ok || v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return n
	}
	dur := func(name, def string) time.Duration {
		d, err := time.ParseDuration(env(name, def))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("TOLLGATE_GRPC_ADDR", ":50051"), "ext_proc gRPC listen address, host:port or unix:/path (TOLLGATE_GRPC_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("TOLLGATE_ADMIN_ADDR", ":9090"), "admin HTTP listen address for /healthz, /readyz, /metrics (TOLLGATE_ADMIN_ADDR)")
	fs.StringVar(&c.PolicyPath, "policy", env("TOLLGATE_POLICY", ""), "policy file; empty runs the embedded demo policy (TOLLGATE_POLICY)")
	fs.DurationVar(&c.PolicyPoll, "policy-poll", dur("TOLLGATE_POLICY_POLL", "2s"), "how often the policy file is checked for changes (TOLLGATE_POLICY_POLL)")
	fs.StringVar(&c.DecisionSecretFile, "decision-secret-file", env("TOLLGATE_DECISION_SECRET_FILE", ""), "deprecated and ignored: routing decisions travel in Envoy dynamic metadata, unsigned (TOLLGATE_DECISION_SECRET_FILE; TOLLGATE_DECISION_SECRET is ignored too); removed in the next release")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", dur("TOLLGATE_SHUTDOWN_TIMEOUT", "30s"), "how long in-flight streams may finish after a stop signal (TOLLGATE_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", dur("TOLLGATE_DRAIN_DELAY", "0s"), "after a stop signal, how long to keep serving with /readyz failing so load balancers move new streams away first (TOLLGATE_DRAIN_DELAY; 5s suits Kubernetes)")
	fs.StringVar(&c.LogLevel, "log-level", env("TOLLGATE_LOG_LEVEL", "info"), "debug, info, warn or error (TOLLGATE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("TOLLGATE_LOG_FORMAT", "json"), "json or console (TOLLGATE_LOG_FORMAT)")
	fs.StringVar(&c.RedisURL, "redis-url", env("TOLLGATE_REDIS_URL", ""), "Redis for records (and, later, budgets and cache), e.g. redis://redis:6379/0; empty keeps records in memory (TOLLGATE_REDIS_URL)")
	fs.StringVar(&c.RecordsStream, "records-stream", env("TOLLGATE_RECORDS_STREAM", records.DefaultRedisStream), "Redis stream of cost records (TOLLGATE_RECORDS_STREAM)")
	fs.Int64Var(&c.RecordsStreamMaxLen, "records-stream-maxlen", integer("TOLLGATE_RECORDS_STREAM_MAXLEN", 1_000_000), "approximate cap on the records stream length (TOLLGATE_RECORDS_STREAM_MAXLEN)")
	fs.StringVar(&c.RecordsFile, "records-file", env("TOLLGATE_RECORDS_FILE", ""), "also write records as JSON lines to this file, rotated by size (TOLLGATE_RECORDS_FILE)")
	fs.Int64Var(&c.RecordsFileMaxBytes, "records-file-max-bytes", integer("TOLLGATE_RECORDS_FILE_MAX_BYTES", 100<<20), "rotate the records file at this size; 5 old files are kept (TOLLGATE_RECORDS_FILE_MAX_BYTES)")
	fs.StringVar(&c.RecordsLog, "records-log", env("TOLLGATE_RECORDS_LOG", "auto"), "log every record: true, false, or auto = only when there is no Redis and no records file (TOLLGATE_RECORDS_LOG)")
	fs.StringVar(&c.SpoolDir, "spool-dir", env("TOLLGATE_SPOOL_DIR", filepath.Join(os.TempDir(), "tollgate-spool")), "where records wait on disk while a sink is down (TOLLGATE_SPOOL_DIR)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", env("TOLLGATE_ADMIN_TOKEN_FILE", ""), "file holding the bearer token of the admin API (/v1/records, /v1/traces); or the token itself in TOLLGATE_ADMIN_TOKEN; none disables the API (TOLLGATE_ADMIN_TOKEN_FILE)")
	fs.DurationVar(&c.BudgetTimeout, "budget-timeout", dur("TOLLGATE_BUDGET_TIMEOUT", budget.DefaultRedisTimeout.String()), "how long a budget check may wait for Redis before the policy's budget_fail_mode applies (TOLLGATE_BUDGET_TIMEOUT)")
	early, err := strconv.ParseBool(env("TOLLGATE_BUDGET_EARLY_RESERVE", "true"))
	if err != nil {
		errs = append(errs, fmt.Errorf("TOLLGATE_BUDGET_EARLY_RESERVE: %w", err))
	}
	fs.BoolVar(&c.BudgetEarlyReserve, "budget-early-reserve", early, "start the budget check at the request headers from the key's previous request, so that its Redis round trip overlaps the body's upload; false checks at the body only (TOLLGATE_BUDGET_EARLY_RESERVE)")
	fs.DurationVar(&c.BudgetEarlyBodyTimeout, "budget-early-body-timeout", dur("TOLLGATE_BUDGET_EARLY_BODY_TIMEOUT", extproc.DefaultEarlyBodyTimeout.String()), "how long a budget reservation made at the request headers waits for the body before it is given back; a body that comes later is checked then (TOLLGATE_BUDGET_EARLY_BODY_TIMEOUT)")
	c.DecisionSecret = env("TOLLGATE_DECISION_SECRET", "")
	c.AdminToken = env("TOLLGATE_ADMIN_TOKEN", "")
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, "tollgate serve:", err)
		return c, errUsage
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return c, errUsage
	}
	if c.RecordsLog != "auto" && c.RecordsLog != "true" && c.RecordsLog != "false" {
		fmt.Fprintf(stderr, "tollgate serve: --records-log %q: want auto, true or false\n", c.RecordsLog)
		return c, errUsage
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		fmt.Fprintf(stderr, "tollgate serve: --log-format %q: want json or console\n", c.LogFormat)
		return c, errUsage
	}
	return c, nil
}

func newLogger(c serveConfig, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder = zapcore.NewJSONEncoder(encCfg)
	if c.LogFormat == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

// redisLogger writes go-redis's log lines as zap warnings. go-redis has no
// levels of its own for them; what it logs is trouble (dial failures, broken
// connections, recovered panics).
type redisLogger struct{ log *zap.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")))
}

func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A stale socket from a crashed run would block the bind.
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

// serve runs the ext_proc gRPC service and the admin HTTP server until ctx ends,
// then drains: readiness fails at once, new streams are refused, and in-flight
// streams get up to ShutdownTimeout to finish.
func serve(ctx context.Context, c serveConfig, logOut io.Writer) error {
	log, err := newLogger(c, logOut)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit
	// go-redis writes its own lines (a failed dial, a bad connection) through
	// one package-level logger, plain text on stderr by default. Process-wide
	// state cannot be avoided there: set it once, here, to this logger.
	redis.SetLogger(redisLogger{log.Named("redis")})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_policy_reloads_total",
		Help: "Policy file reloads by result (ok, error). A failed reload keeps the last good policy.",
	}, []string{"result"})
	reg.MustRegister(reloads)

	watcher, err := policy.NewWatcher(c.PolicyPath, policy.LoadOptions{RequireSecrets: true}, c.PolicyPoll,
		func(p *policy.Policy, err error) {
			if err != nil {
				reloads.WithLabelValues("error").Inc()
				log.Error("policy reload failed; keeping the last good policy", zap.Error(err))
				return
			}
			reloads.WithLabelValues("ok").Inc()
			log.Info("policy reloaded", zap.String("source", p.Source))
		})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	pol := watcher.Current()
	for _, w := range pol.Warnings {
		log.Warn("policy warning", zap.String("problem", w.String()))
	}
	if c.PolicyPath == "" {
		log.Warn("no policy file given: running the embedded demo policy (gateway key tg-demo-key, provider demo); set TOLLGATE_POLICY for real use")
	}

	if c.DecisionSecretFile != "" || c.DecisionSecret != "" {
		// Kept for one release so that existing deployments still start.
		log.Warn("--decision-secret-file, TOLLGATE_DECISION_SECRET_FILE and TOLLGATE_DECISION_SECRET are deprecated and ignored: " +
			"the routing decision travels in Envoy dynamic metadata (namespace tollgate), which clients cannot write and providers never see; remove the setting")
	}

	rdb, err := openRedis(c)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	token, err := adminToken(c)
	if err != nil {
		return err
	}
	rec, err := openRecords(c, rdb, token, log, reg)
	if err != nil {
		return err
	}
	defer rec.close(log)
	ledger, ledgerKind, closeLedger, err := openLedger(c, rdb, log, reg)
	if err != nil {
		return err
	}
	defer closeLedger()
	budgetAPI := budget.NewAPIHandler(ledger, func() *budget.Config { return watcher.Current().Budgets }, token, log.Named("budget"))

	srv, err := extproc.NewServer(extproc.Options{
		Policies: watcher, Translation: func(c, p string) (extproc.Translation, bool) { return translate.Lookup(c, p) },
		Logger: log, Metrics: extproc.NewMetrics(reg), Recorder: rec.writer, Ledger: ledger,
		NoEarlyReserve: !c.BudgetEarlyReserve, EarlyBodyTimeout: c.BudgetEarlyBodyTimeout,
	})
	if err != nil {
		return err
	}

	grpcLis, err := listen(c.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	adminLis, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("admin listen: %w", err)
	}

	gs := grpc.NewServer(grpc.MaxRecvMsgSize(maxGRPCMessage), grpc.MaxSendMsgSize(maxGRPCMessage))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var draining atomic.Bool
	admin := &http.Server{Handler: adminHandler(reg, &draining, rec.api, budgetAPI), ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watcher.Run(ctx)
	// Registered before anything serves, so an early SIGHUP reloads rather than
	// killing the process (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, hup, watcher, log)

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(grpcLis) }()
	go func() {
		if err := admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	log.Info("tollgate serving", zap.String("version", version), zap.String("grpc", grpcLis.Addr().String()),
		zap.String("admin", adminLis.Addr().String()), zap.String("policy", pol.Source), zap.String("records", rec.describe), zap.String("budgets", ledgerKind))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}

	log.Info("draining", zap.Duration("delay", c.DrainDelay), zap.Duration("deadline", c.ShutdownTimeout))
	draining.Store(true)
	hs.Shutdown()
	if runErr == nil && c.DrainDelay > 0 {
		time.Sleep(c.DrainDelay)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(c.ShutdownTimeout):
		log.Warn("shutdown deadline passed; cancelling the remaining streams")
		gs.Stop()
		<-stopped
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shutCancel()
	admin.Shutdown(shutCtx) //nolint:errcheck // best effort at exit
	log.Info("stopped")
	return runErr
}

func adminHandler(reg *prometheus.Registry, draining *atomic.Bool, recordsAPI, budgetAPI http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", recordsAPI)
	mux.Handle("/v1/budgets", budgetAPI)
	mux.Handle("/v1/budgets/", budgetAPI)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n")) //nolint:errcheck
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// reloadOnHUP re-reads the policy on SIGHUP, for operators who want a reload now.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, w *policy.Watcher, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := w.Reload(); err != nil {
				log.Error("policy reload on SIGHUP failed", zap.Error(err))
			}
		}
	}
}
