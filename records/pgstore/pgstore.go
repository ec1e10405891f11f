// Package pgstore keeps cost records in PostgreSQL: a sink for the records
// Writer (batched COPY, exactly once by record id), a Store the records API
// reads, the schema's versioned migrations, and the daily partitions'
// upkeep (created ahead of time and on demand, dropped whole past the
// retention).
//
// The records table is partitioned by day of the record's start (UTC), one
// partition per day named records_pYYYYMMDD. Times are kept to the
// microsecond, Postgres's precision.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"
)

// migrations are the schema's versioned migrations, NNNNN_name.sql, applied
// in order by goose and recorded in the table tollgate_schema_version.
//
//go:embed migrations/*.sql
var migrations embed.FS

// VersionTable is the table where goose records the migrations applied.
const VersionTable = "tollgate_schema_version"

// WorkMem is the work_mem of Tollgate's connections, unless the URL sets
// one (options=-c%20work_mem%3D...): the memory of each sort or hash of a
// query before it spills to disk.
const WorkMem = "64MB"

// Defaults of Options.
const (
	DefaultRetention = 90 * 24 * time.Hour
	DefaultAheadDays = 3
)

// Options configure a DB. Zero values take the defaults.
type Options struct {
	// Retention is how long records are kept (DefaultRetention): a day's
	// partition is dropped once the whole day is older than Retention.
	Retention time.Duration
	// AheadDays is how many days after today have their partition created by
	// Maintain (DefaultAheadDays).
	AheadDays int
	// Logger receives migrations and partition changes (nothing when nil).
	Logger *zap.Logger
}

// DB is a PostgreSQL database of cost records. Its methods are safe for
// concurrent use.
type DB struct {
	pool *pgxpool.Pool
	opt  Options
	log  *zap.Logger

	migrateMu sync.Mutex
	migrated  bool

	partMu sync.Mutex
	parts  map[string]bool // partitions known to exist, by name
}

// Open returns a DB on the database at url (postgres://user:pass@host:port/db,
// or key=value settings). It does not connect: the first use does, so a
// Postgres that is down at start only delays the records, which the Writer
// spools meanwhile.
func Open(url string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	// The spend API's GROUP BY over the hourly rollup holds each group's
	// latency samples: with Postgres's default 4 MB it sorts on disk.
	if _, ok := cfg.ConnConfig.RuntimeParams["work_mem"]; !ok {
		cfg.ConnConfig.RuntimeParams["work_mem"] = WorkMem
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.AheadDays <= 0 {
		opt.AheadDays = DefaultAheadDays
	}
	d := &DB{pool: pool, opt: opt, log: opt.Logger, parts: make(map[string]bool)}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	return d, nil
}

// Close closes the connections. Call it after the Writer using the DB's sink
// is closed.
func (d *DB) Close() { d.pool.Close() }

// Migrate applies the migrations the database lacks, in order, and returns
// the versions it applied (none when the schema is current). A Postgres
// advisory lock lets one replica migrate at a time.
func (d *DB) Migrate(ctx context.Context) ([]int64, error) {
	d.migrateMu.Lock()
	defer d.migrateMu.Unlock()
	applied, err := d.migrate(ctx)
	if err == nil {
		d.migrated = true
	}
	return applied, err
}

func (d *DB) migrate(ctx context.Context) ([]int64, error) {
	return d.migrateTo(ctx, math.MaxInt64)
}

// migrateTo applies the migrations up to version.
func (d *DB) migrateTo(ctx context.Context, version int64) ([]int64, error) {
	db := stdlib.OpenDBFromPool(d.pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate: %w", err)
	}
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir,
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("pgstore: migrate: %w", err)
	}
	results, err := p.UpTo(ctx, version)
	var versions []int64
	for _, r := range results {
		if r.Error == nil {
			versions = append(versions, r.Source.Version)
			d.log.Info("records schema migrated", zap.Int64("version", r.Source.Version), zap.String("file", r.Source.Path))
		}
	}
	if err != nil {
		return versions, fmt.Errorf("pgstore: migrate: %w", err)
	}
	return versions, nil
}

// ready migrates the schema once per DB, before the first write or read.
func (d *DB) ready(ctx context.Context) error {
	d.migrateMu.Lock()
	defer d.migrateMu.Unlock()
	if d.migrated {
		return nil
	}
	if _, err := d.migrate(ctx); err != nil {
		return err
	}
	d.migrated = true
	return nil
}

// isNoPartition tells whether err is Postgres's "no partition of relation
// found for row", which a partition dropped behind the cache's back causes.
func isNoPartition(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "23514"
}
