package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// partitionPrefix starts the name of every daily partition.
const partitionPrefix = "records_p"

// partitionLock is the advisory lock key that serializes partition changes
// across replicas (an arbitrary constant).
const partitionLock = 7_415_002_016

// day is the UTC day t falls in, at midnight.
func day(t time.Time) time.Time {
	y, m, dd := t.UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// partitionName is the partition of the day starting at d.
func partitionName(d time.Time) string { return partitionPrefix + d.Format("20060102") }

// partitionDay reads the day back from a partition's name.
func partitionDay(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok || len(s) != 8 {
		return time.Time{}, false
	}
	d, err := time.Parse("20060102", s)
	return d, err == nil
}

// ensurePartitions creates the partitions of days that are not known to
// exist yet.
func (d *DB) ensurePartitions(ctx context.Context, days []time.Time) error {
	var missing []time.Time
	d.partMu.Lock()
	for _, dd := range days {
		if !d.parts[partitionName(dd)] {
			missing = append(missing, dd)
		}
	}
	d.partMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	var created []string
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLock)); err != nil {
			return err
		}
		for _, dd := range missing {
			name := partitionName(dd)
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			// Bounds as UTC literals, whatever the session's time zone.
			sql := fmt.Sprintf("CREATE TABLE %s PARTITION OF records FOR VALUES FROM ('%s') TO ('%s')",
				pgx.Identifier{name}.Sanitize(), dd.Format("2006-01-02 15:04:05Z07:00"), dd.AddDate(0, 0, 1).Format("2006-01-02 15:04:05Z07:00"))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
			created = append(created, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: create partitions: %w", err)
	}
	for _, name := range created {
		d.log.Info("records partition created", zap.String("partition", name))
	}
	d.partMu.Lock()
	for _, dd := range missing {
		d.parts[partitionName(dd)] = true
	}
	d.partMu.Unlock()
	return nil
}

// forgetPartitions empties the cache of partitions known to exist, after a
// write found one missing.
func (d *DB) forgetPartitions() {
	d.partMu.Lock()
	clear(d.parts)
	d.partMu.Unlock()
}

// Partitions lists the names of the records table's partitions, oldest first.
func (d *DB) Partitions(ctx context.Context) ([]string, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx,
		`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'records'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: list partitions: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Maintain does the partitions' upkeep as of now: it creates the partitions
// of today and the AheadDays after it, and drops the partitions whose whole
// day is older than the retention (a day ending at or before now minus
// Retention), each with its day's rows of the hourly rollup, in one
// transaction. It returns the partitions it dropped.
//
// A record older than the retention that arrives late (replayed from a spool
// after a long outage) gets its partition back, until the next Maintain.
func (d *DB) Maintain(ctx context.Context, now time.Time) (dropped []string, err error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	today := day(now)
	days := make([]time.Time, 0, d.opt.AheadDays+1)
	for i := range d.opt.AheadDays + 1 {
		days = append(days, today.AddDate(0, 0, i))
	}
	if err := d.ensurePartitions(ctx, days); err != nil {
		return nil, err
	}
	names, err := d.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-d.opt.Retention)
	for _, name := range names {
		dd, ok := partitionDay(name)
		if !ok || dd.AddDate(0, 0, 1).After(cutoff) {
			continue
		}
		err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLock)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
				return err
			}
			// The day's hourly rollup goes with it, in the same transaction.
			_, err := tx.Exec(ctx, "DELETE FROM records_hourly WHERE hour >= $1 AND hour < $2", dd, dd.AddDate(0, 0, 1))
			return err
		})
		if err != nil {
			return dropped, fmt.Errorf("pgstore: drop partition %s: %w", name, err)
		}
		d.partMu.Lock()
		delete(d.parts, name)
		d.partMu.Unlock()
		d.log.Info("records partition dropped (retention)", zap.String("partition", name), zap.Duration("retention", d.opt.Retention))
		dropped = append(dropped, name)
	}
	return dropped, nil
}

// RunMaintenance runs Maintain at once and then every interval until ctx
// ends, with the time now returns, logging failures.
func (d *DB) RunMaintenance(ctx context.Context, every time.Duration, now func() time.Time) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := d.Maintain(mctx, now()); err != nil && ctx.Err() == nil {
			d.log.Warn("records partitions upkeep failed; retried later", zap.Error(err))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
