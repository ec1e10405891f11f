package main

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

	"github.com/tollgate-dev/tollgate/records"
)

// memoryRecords is how many records the in-memory store keeps for the records
// API when no Redis is configured.
const memoryRecords = 10_000

// recordsSetup is the cost-record pipeline of a serving process: a Writer fanning
// out to the sinks, and the store the records API reads.
type recordsSetup struct {
	writer   *records.Writer
	api      http.Handler
	redis    *redis.Client
	describe string
}

func openRecords(c serveConfig, log *zap.Logger, reg prometheus.Registerer) (*recordsSetup, error) {
	token, err := adminToken(c)
	if err != nil {
		return nil, err
	}
	rs := &recordsSetup{}
	var sinks []records.Sink
	var store records.Store
	var parts []string
	if c.RedisURL != "" {
		opt, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		// Record writes are asynchronous and spooled on failure, so short
		// timeouts only make a Redis outage visible sooner.
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, time.Second, time.Second
		rs.redis = redis.NewClient(opt)
		sinks = append(sinks, records.NewRedisSink(rs.redis, c.RecordsStream, c.RecordsStreamMaxLen))
		store = records.NewRedisStore(rs.redis, c.RecordsStream)
		parts = append(parts, "redis stream "+records.RedisStreamKey(c.RecordsStream))
	} else {
		mem := records.NewMemoryStore(memoryRecords)
		sinks = append(sinks, mem)
		store = mem
		parts = append(parts, fmt.Sprintf("memory (last %d)", memoryRecords))
	}
	if c.RecordsFile != "" {
		fs, err := records.NewFileSink(c.RecordsFile, c.RecordsFileMaxBytes, 5)
		if err != nil {
			rs.closeRedis()
			return nil, fmt.Errorf("--records-file: %w", err)
		}
		sinks = append(sinks, fs)
		parts = append(parts, "file "+c.RecordsFile)
	}
	if c.RecordsLog {
		sinks = append(sinks, records.NewLogSink(log.Named("record")))
		parts = append(parts, "log")
	}
	rs.writer, err = records.NewWriter(records.WriterOptions{
		Sinks: sinks, SpoolDir: c.SpoolDir, Logger: log.Named("records"), Registerer: reg,
	})
	if err != nil {
		rs.closeRedis()
		return nil, fmt.Errorf("records: %w", err)
	}
	rs.api = records.NewAPIHandler(store, token)
	rs.describe = strings.Join(parts, ", ")
	if token == "" {
		log.Info("admin API disabled: set TOLLGATE_ADMIN_TOKEN or --admin-token-file to read records over HTTP")
	}
	return rs, nil
}

func adminToken(c serveConfig) (string, error) {
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

// close flushes the records queue (spooling what cannot be written in time) and
// closes Redis. It runs after the gRPC server stopped, so no record comes later.
func (rs *recordsSetup) close(log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.writer.Close(ctx); err != nil {
		log.Error("records: closing", zap.Error(err))
	}
	rs.closeRedis()
}

func (rs *recordsSetup) closeRedis() {
	if rs.redis != nil {
		rs.redis.Close()
	}
}
