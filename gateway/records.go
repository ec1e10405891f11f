package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/endings"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/records/pgstore"
	"github.com/tollgate-dev/tollgate/spend"
)

// memoryRecords is how many records the in-memory store keeps for the records
// API when no Redis is configured.
const memoryRecords = 10_000

// recordsSetup is the cost-record pipeline of a serving process: a Writer fanning
// out to the sinks, and the store the records API reads.
type recordsSetup struct {
	writer   *records.Writer
	api      http.Handler
	describe string
	// spend is the store the spend API aggregates.
	spend spend.Store
	// store is what the records API and the dashboard read.
	store records.Store

	// pg is the PostgreSQL store of --postgres-url, or nil; stopUpkeep ends
	// its partitions' upkeep and waits for it.
	pg         *pgstore.DB
	stopUpkeep func()
}

// partitionUpkeep is how often the PostgreSQL records partitions are created
// ahead and dropped past the retention.
const partitionUpkeep = time.Hour

// openPostgres opens the records database of --postgres-url and migrates its
// schema. A Postgres that does not answer at start is logged, not fatal:
// records spool meanwhile, and the sink migrates before its first write.
func openPostgres(c Config, log *zap.Logger) (*pgstore.DB, error) {
	db, err := pgstore.Open(c.PostgresURL, pgstore.Options{Retention: c.RecordsRetention, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Migrate(ctx); err != nil {
		log.Warn("records: PostgreSQL not ready at start; records spool until it is", zap.Error(err))
	}
	return db, nil
}

// openRedis returns the Redis client of --redis-url, or nil without one. Its
// timeouts are short: record writes are spooled on failure, and budget checks
// apply the policy's fail mode, so a slow Redis only needs to be noticed fast.
// Context deadlines bound every call (the budget ledger requires it).
func openRedis(c Config) (*redis.Client, error) {
	if c.RedisURL == "" {
		return nil, nil
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, time.Second, time.Second
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

func openRecords(c Config, rdb *redis.Client, tokens func() *adminapi.Tokens, log *zap.Logger, reg prometheus.Registerer) (*recordsSetup, error) {
	rs := &recordsSetup{}
	var sinks []records.Sink
	var store records.Store
	var parts []string
	if c.PostgresURL != "" {
		db, err := openPostgres(c, log.Named("postgres"))
		if err != nil {
			return nil, err
		}
		rs.pg = db
		sinks = append(sinks, db.Sink())
		store = db
		parts = append(parts, "postgres")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			db.RunMaintenance(ctx, partitionUpkeep, time.Now)
		}()
		rs.stopUpkeep = func() { cancel(); <-done }
	}
	if rdb != nil {
		sinks = append(sinks, records.NewRedisSink(rdb, c.RecordsStream, c.RecordsStreamMaxLen))
		if store == nil {
			store = records.NewRedisStore(rdb, c.RecordsStream)
		}
		parts = append(parts, "redis stream "+records.RedisStreamKey(c.RecordsStream))
	} else if store == nil {
		mem := records.NewMemoryStore(memoryRecords)
		sinks = append(sinks, mem)
		store = mem
		parts = append(parts, fmt.Sprintf("memory (last %d)", memoryRecords))
	}
	// The spend API aggregates PostgreSQL, or else a bounded ring of this
	// process's latest records.
	if rs.pg != nil {
		rs.spend = rs.pg
	} else {
		mem := spend.NewMemory(c.SpendMemoryRecords)
		sinks = append(sinks, mem)
		rs.spend = mem
	}
	if c.RecordsFile != "" {
		fs, err := records.NewFileSink(c.RecordsFile, c.RecordsFileMaxBytes, 5)
		if err != nil {
			rs.closePostgres()
			return nil, fmt.Errorf("--records-file: %w", err)
		}
		sinks = append(sinks, fs)
		parts = append(parts, "file "+c.RecordsFile)
	}
	// Logging a record costs about 80 µs of CPU (bench, issue 5), so by default
	// records are logged only when the log is their one durable home.
	if c.RecordsLog == "true" || (c.RecordsLog == "auto" && rdb == nil && c.PostgresURL == "" && c.RecordsFile == "") {
		sinks = append(sinks, records.NewLogSink(log.Named("record")))
		parts = append(parts, "log")
	}
	var err error
	rs.writer, err = records.NewWriter(records.WriterOptions{
		Sinks: sinks, SpoolDir: c.SpoolDir, Logger: log.Named("records"), Registerer: reg,
	})
	if err != nil {
		rs.closePostgres()
		return nil, fmt.Errorf("records: %w", err)
	}
	rs.api = records.NewScopedAPIHandler(store, tokens)
	rs.store = store
	rs.describe = strings.Join(parts, ", ")
	if !tokens().Enabled() {
		log.Info("admin API disabled: set TOLLGATE_ADMIN_TOKEN or --admin-token-file to read records over HTTP")
	}
	return rs, nil
}

func adminToken(c Config) (string, error) {
	if c.AdminToken != "" {
		return c.AdminToken, nil
	}
	if c.AdminTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("admin token file is empty")
	}
	return t, nil
}

// close flushes the records queue, spooling what cannot be written in time.
// It runs after the gRPC server stopped, so no record comes later.
func (rs *recordsSetup) close(log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.writer.Close(ctx); err != nil {
		log.Error("records: closing", zap.Error(err))
	}
	rs.closePostgres()
}

// closePostgres stops the partitions' upkeep and closes the database, after
// the Writer is closed.
func (rs *recordsSetup) closePostgres() {
	if rs.pg == nil {
		return
	}
	rs.stopUpkeep()
	rs.pg.Close()
}

// openLedger returns the budget ledger: in Redis, shared by every replica on
// it, when there is one; in memory otherwise, for a single instance.
//
// closeLedger ends the Redis ledger's retries of failed settles and cancels (each
// is tried once more); call it after the gRPC server stopped and before the
// Redis client is closed.
func openLedger(c Config, rdb *redis.Client, log *zap.Logger, reg prometheus.Registerer) (ledger budget.Ledger, kind string, closeLedger func(), err error) {
	if rdb == nil {
		return budget.NewMemoryLedger(0), "memory", func() {}, nil
	}
	l, err := budget.NewRedisLedger(rdb, budget.RedisOptions{Timeout: c.BudgetTimeout, SettleBatch: budget.DefaultSettleBatch, Blocks: c.BudgetBlocks, Logger: log.Named("budget"), Registerer: reg})
	if err != nil {
		return nil, "", nil, err
	}
	closeLedger = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			log.Error("budget ledger: retries of failed settles still pending at exit; their reservations are held until their leases expire", zap.Error(err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Load(ctx); err != nil {
		// The ledger loads its scripts again on first use; until Redis answers,
		// requests get the policy's budget_fail_mode.
		log.Warn("budget ledger: Redis not reachable at start", zap.Error(err))
	}
	return l, "redis", closeLedger, nil
}

// openEndings returns the store of request endings (extproc.Endings): in
// Redis, where every replica reads what the one that received Envoy's
// access-log entry wrote, when there is one; in memory otherwise, for a
// single instance.
func openEndings(rdb *redis.Client) extproc.Endings {
	if rdb == nil {
		return endings.NewMemory(0, nil)
	}
	return endings.NewRedis(rdb, 0)
}
