package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
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

	"github.com/tollgate-dev/tollgate/cache"
	"github.com/tollgate-dev/tollgate/clientformat/anthropic"
	openaifmt "github.com/tollgate-dev/tollgate/clientformat/openai"
	"github.com/tollgate-dev/tollgate/dashboard"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/provider"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/records/pgstore"
	"github.com/tollgate-dev/tollgate/spend"
)

// Config is everything Run needs. The tollgate command fills it from its
// flags and TOLLGATE_* variables (README "Configuration of tollgate serve"
// names each); a field's comment names its flag where errors mention it.
// DefaultConfig holds the defaults.
type Config struct {
	// GRPCAddr is the ext_proc gRPC listen address, host:port or unix:/path.
	GRPCAddr string
	// AdminAddr is the admin HTTP listen address (/healthz, /readyz,
	// /metrics and the admin APIs).
	AdminAddr string
	// PolicyPath is the policy file; empty runs the embedded demo policy.
	PolicyPath string
	// PolicyPoll is how often the policy file is checked for changes.
	PolicyPoll time.Duration
	// ShutdownTimeout is how long in-flight streams may finish once ctx ends.
	ShutdownTimeout time.Duration
	// DrainDelay is how long to keep serving with /readyz failing once ctx
	// ends, so that load balancers move new streams away first.
	DrainDelay time.Duration
	// LogLevel is debug, info, warn or error (--log-level).
	LogLevel string
	// LogFormat is json or console.
	LogFormat string

	// RedisURL is the Redis of records and budgets (--redis-url); empty keeps
	// both in memory.
	RedisURL string
	// PostgresURL is the PostgreSQL database of cost records
	// (--postgres-url), which the records API then reads; empty keeps none.
	PostgresURL string
	// RecordsRetention is how long PostgreSQL keeps records
	// (--records-retention): older days' partitions are dropped whole.
	RecordsRetention time.Duration
	// RecordsStream is the Redis stream of cost records.
	RecordsStream string
	// RecordsStreamMaxLen is the approximate cap on its length.
	RecordsStreamMaxLen int64
	// SpendMemoryRecords bounds the spend API's in-memory ring of this
	// process's latest records, used without PostgreSQL
	// (--spend-memory-records).
	SpendMemoryRecords int
	// RecordsFile, when set, also receives records as JSON lines
	// (--records-file), rotated at RecordsFileMaxBytes.
	RecordsFile         string
	RecordsFileMaxBytes int64
	// RecordsLog is auto, true or false: whether every record is logged; auto
	// logs them only when there is no Redis and no records file.
	RecordsLog string
	// SpoolDir is where records wait on disk while a sink is down.
	SpoolDir string
	// AdminToken is the bearer token of the admin APIs; when empty it is read
	// from AdminTokenFile; with neither, the admin APIs are disabled.
	AdminToken     string
	AdminTokenFile string
	// DashboardSecureCookie marks the dashboard's cookies Secure, for a
	// dashboard reached over HTTPS through a proxy that terminates TLS.
	DashboardSecureCookie bool
	// BudgetTimeout is how long a budget check may wait for Redis before the
	// policy's budget_fail_mode applies.
	BudgetTimeout time.Duration
	// BudgetBlocks is the most requests one budget block of this replica
	// admits (budget.RedisOptions.Blocks; --budget-blocks); 0 checks every
	// request in Redis. Only with Redis.
	BudgetBlocks int
	// BudgetEarlyReserve starts the budget check at the request headers.
	BudgetEarlyReserve bool
	// BudgetEarlyBodyTimeout is how long an early reservation waits for the
	// request's body.
	BudgetEarlyBodyTimeout time.Duration
	// EndingWait is how long the record of a response cut after its
	// headers waits for Envoy's access log to say who cut it (--ending-wait).
	EndingWait time.Duration
	// StreamPingInterval is how long a translated stream (Bedrock, an
	// OpenAI-compatible provider) may stay silent before the client gets a
	// ping (--stream-ping-interval); 0 sends none.
	StreamPingInterval time.Duration

	// Version is logged in the "tollgate serving" line.
	Version string
	// Warnings are logged once at start, after the policy's own warnings
	// (the command's deprecation notices).
	Warnings []string
}

// pingInterval is extproc's PingInterval for --stream-ping-interval: 0
// (or less) turns the pings off.
func pingInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// DefaultConfig returns the defaults of every setting; the tollgate command's
// flags show them.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:               ":50051",
		AdminAddr:              ":9090",
		PolicyPoll:             2 * time.Second,
		ShutdownTimeout:        30 * time.Second,
		LogLevel:               "info",
		LogFormat:              "json",
		RecordsRetention:       pgstore.DefaultRetention,
		RecordsStream:          records.DefaultRedisStream,
		RecordsStreamMaxLen:    1_000_000,
		SpendMemoryRecords:     spend.DefaultMemoryRecords,
		RecordsFileMaxBytes:    100 << 20,
		RecordsLog:             "auto",
		SpoolDir:               filepath.Join(os.TempDir(), "tollgate-spool"),
		BudgetTimeout:          budget.DefaultRedisTimeout,
		BudgetBlocks:           budget.DefaultBlocks,
		BudgetEarlyReserve:     true,
		BudgetEarlyBodyTimeout: extproc.DefaultEarlyBodyTimeout,
		EndingWait:             extproc.DefaultEndingWait,
		StreamPingInterval:     extproc.DefaultPingInterval,
		Version:                "dev",
	}
}

// Run serves the ext_proc gRPC service and the admin HTTP server of c until
// ctx ends, logging to logOut, then drains: readiness fails at once, new
// streams are refused, and in-flight streams get up to c.ShutdownTimeout to
// finish. It returns nil after a drain that ctx started, or the error that
// stopped a server; it never exits the process. SIGHUP reloads the policy
// while Run runs.
func Run(ctx context.Context, c Config, logOut io.Writer) error {
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

	for _, w := range c.Warnings {
		log.Warn(w)
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
	tokens := &adminTokens{admin: token, current: watcher.Current}
	rec, err := openRecords(c, rdb, tokens.get, log, reg)
	if err != nil {
		return err
	}
	defer rec.close(log)
	ledger, ledgerKind, closeLedger, err := openLedger(c, rdb, log, reg)
	if err != nil {
		return err
	}
	defer closeLedger()
	store, storeKind, err := openCache(rdb, reg)
	if err != nil {
		return err
	}
	budgets := func() *budget.Config { return watcher.Current().Budgets }
	budgetAPI := budget.NewAPIHandler(ledger, budgets, token, log.Named("budget"))
	spendAPI := spend.NewAPIHandler(spend.Options{
		Store: rec.spend, Tokens: tokens.get, Budgets: budgets, KeyTeam: keyTeam(watcher.Current),
	})

	// The dashboard's Overview and Budgets read the spend API's store with
	// its queries.
	dash, err := dashboard.New(dashboard.Options{
		Tokens: tokens.get, Records: rec.store,
		Insights:     dashboard.SpendInsights{Store: rec.spend, BudgetConfig: budgets, KeyTeam: keyTeam(watcher.Current)},
		SecureCookie: c.DashboardSecureCookie, Logger: log.Named("dashboard"),
	})
	if err != nil {
		return err
	}

	srv, err := extproc.NewServer(extproc.Options{
		Policies: watcher, Logger: log, Metrics: extproc.NewMetrics(reg), Recorder: rec.writer, Ledger: ledger, Cache: store,
		ClientFormats:  []extproc.ClientFormat{anthropic.Format{}, openaifmt.Format{}},
		NoEarlyReserve: !c.BudgetEarlyReserve, EarlyBodyTimeout: c.BudgetEarlyBodyTimeout,
		Endings: openEndings(rdb), EndingWait: c.EndingWait,
		PingInterval: pingInterval(c.StreamPingInterval),
		Translation:  func(c, p string) (extproc.Translation, bool) { return provider.Translation(c, p) },
	})
	if err != nil {
		return err
	}

	grpcLis, err := Listen(c.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	adminLis, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("admin listen: %w", err)
	}

	gs := grpc.NewServer(grpc.MaxRecvMsgSize(MaxGRPCMessage), grpc.MaxSendMsgSize(MaxGRPCMessage))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	// Envoy's access log (envoy.yaml: access_log tollgate.endings) reaches the
	// same port as ext_proc, over the same cluster.
	accesslogv3.RegisterAccessLogServiceServer(gs, srv.AccessLogServer())
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(accesslogv3.AccessLogService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var draining atomic.Bool
	admin := &http.Server{Handler: adminHandler(reg, &draining, rec.api, budgetAPI, spendAPI, dash), ReadHeaderTimeout: 5 * time.Second}

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
	log.Info("tollgate serving", zap.String("version", c.Version), zap.String("grpc", grpcLis.Addr().String()),
		zap.String("admin", adminLis.Addr().String()), zap.String("policy", pol.Source), zap.String("records", rec.describe), zap.String("budgets", ledgerKind), zap.String("cache", storeKind))

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

func adminHandler(reg *prometheus.Registry, draining *atomic.Bool, recordsAPI, budgetAPI, spendAPI, dash http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, dash)
	mux.Handle("/v1/", recordsAPI)
	mux.Handle("/v1/spend/", spendAPI)
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

// newLogger builds the logger of c.LogLevel and c.LogFormat, writing to w.
func newLogger(c Config, w io.Writer) (*zap.Logger, error) {
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

// openCache returns the response cache store: in Redis when there is one
// (shared by every replica), else in memory (an LRU of
// cache.DefaultMemoryBytes). It caches only for the routes and teams whose
// policy says so.
func openCache(rdb *redis.Client, reg prometheus.Registerer) (extproc.ResponseCache, string, error) {
	m := cache.NewMetrics(reg)
	if rdb == nil {
		return cache.NewMemory(cache.MemoryOptions{Metrics: m}), "memory", nil
	}
	r, err := cache.NewRedis(rdb, cache.RedisOptions{Metrics: m})
	if err != nil {
		return nil, "", err
	}
	return r, "redis", nil
}
