package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/tollgate-dev/tollgate/gateway"
)

// serveCommand is `tollgate serve`: flags and TOLLGATE_* variables into a
// gateway.Config, then gateway.Run until ctx ends.
func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	return gateway.Run(ctx, cfg, stderr)
}

// parseServeFlags reads flags; each flag's default comes from its TOLLGATE_*
// variable, so the environment configures and flags override.
func parseServeFlags(args []string, lookup func(string) (string, bool), stderr io.Writer) (gateway.Config, error) {
	env := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	c := gateway.DefaultConfig()
	def := gateway.DefaultConfig()
	var decisionSecretFile string
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
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("TOLLGATE_GRPC_ADDR", def.GRPCAddr), "ext_proc gRPC listen address, host:port or unix:/path (TOLLGATE_GRPC_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("TOLLGATE_ADMIN_ADDR", def.AdminAddr), "admin HTTP listen address for /healthz, /readyz, /metrics (TOLLGATE_ADMIN_ADDR)")
	fs.StringVar(&c.PolicyPath, "policy", env("TOLLGATE_POLICY", def.PolicyPath), "policy file; empty runs the embedded demo policy (TOLLGATE_POLICY)")
	fs.DurationVar(&c.PolicyPoll, "policy-poll", dur("TOLLGATE_POLICY_POLL", def.PolicyPoll.String()), "how often the policy file is checked for changes (TOLLGATE_POLICY_POLL)")
	fs.StringVar(&decisionSecretFile, "decision-secret-file", env("TOLLGATE_DECISION_SECRET_FILE", ""), "deprecated and ignored: routing decisions travel in Envoy dynamic metadata, unsigned (TOLLGATE_DECISION_SECRET_FILE; TOLLGATE_DECISION_SECRET is ignored too); removed in the next release")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", dur("TOLLGATE_SHUTDOWN_TIMEOUT", def.ShutdownTimeout.String()), "how long in-flight streams may finish after a stop signal (TOLLGATE_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", dur("TOLLGATE_DRAIN_DELAY", def.DrainDelay.String()), "after a stop signal, how long to keep serving with /readyz failing so load balancers move new streams away first (TOLLGATE_DRAIN_DELAY; 5s suits Kubernetes)")
	fs.StringVar(&c.LogLevel, "log-level", env("TOLLGATE_LOG_LEVEL", def.LogLevel), "debug, info, warn or error (TOLLGATE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("TOLLGATE_LOG_FORMAT", def.LogFormat), "json or console (TOLLGATE_LOG_FORMAT)")
	fs.StringVar(&c.RedisURL, "redis-url", env("TOLLGATE_REDIS_URL", def.RedisURL), "Redis for records (and, later, budgets and cache), e.g. redis://redis:6379/0; empty keeps records in memory (TOLLGATE_REDIS_URL)")
	fs.StringVar(&c.PostgresURL, "postgres-url", env("TOLLGATE_POSTGRES_URL", def.PostgresURL), "PostgreSQL for cost records, e.g. postgres://tollgate:secret@postgres:5432/tollgate; migrated at start; the records API then reads it (TOLLGATE_POSTGRES_URL)")
	retention, err := parseRetention(env("TOLLGATE_RECORDS_RETENTION", formatRetention(def.RecordsRetention)))
	if err != nil {
		errs = append(errs, fmt.Errorf("TOLLGATE_RECORDS_RETENTION: %w", err))
	}
	c.RecordsRetention = retention
	fs.Func("records-retention", "how long PostgreSQL keeps records, in days (90d) or a Go duration; older days are dropped whole (default "+formatRetention(def.RecordsRetention)+", TOLLGATE_RECORDS_RETENTION)", func(v string) error {
		d, err := parseRetention(v)
		c.RecordsRetention = d
		return err
	})
	fs.StringVar(&c.RecordsStream, "records-stream", env("TOLLGATE_RECORDS_STREAM", def.RecordsStream), "Redis stream of cost records (TOLLGATE_RECORDS_STREAM)")
	fs.IntVar(&c.SpendMemoryRecords, "spend-memory-records", int(integer("TOLLGATE_SPEND_MEMORY_RECORDS", int64(def.SpendMemoryRecords))), "without PostgreSQL, how many of this process's latest records the spend API and dashboard aggregate (TOLLGATE_SPEND_MEMORY_RECORDS)")
	fs.Int64Var(&c.RecordsStreamMaxLen, "records-stream-maxlen", integer("TOLLGATE_RECORDS_STREAM_MAXLEN", def.RecordsStreamMaxLen), "approximate cap on the records stream length (TOLLGATE_RECORDS_STREAM_MAXLEN)")
	fs.StringVar(&c.RecordsFile, "records-file", env("TOLLGATE_RECORDS_FILE", def.RecordsFile), "also write records as JSON lines to this file, rotated by size (TOLLGATE_RECORDS_FILE)")
	fs.Int64Var(&c.RecordsFileMaxBytes, "records-file-max-bytes", integer("TOLLGATE_RECORDS_FILE_MAX_BYTES", def.RecordsFileMaxBytes), "rotate the records file at this size; 5 old files are kept (TOLLGATE_RECORDS_FILE_MAX_BYTES)")
	fs.StringVar(&c.RecordsLog, "records-log", env("TOLLGATE_RECORDS_LOG", def.RecordsLog), "log every record: true, false, or auto = only when there is no Redis and no records file (TOLLGATE_RECORDS_LOG)")
	fs.StringVar(&c.SpoolDir, "spool-dir", env("TOLLGATE_SPOOL_DIR", def.SpoolDir), "where records wait on disk while a sink is down (TOLLGATE_SPOOL_DIR)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", env("TOLLGATE_ADMIN_TOKEN_FILE", def.AdminTokenFile), "file holding the bearer token of the admin API (/v1/records, /v1/traces); or the token itself in TOLLGATE_ADMIN_TOKEN; none disables the API (TOLLGATE_ADMIN_TOKEN_FILE)")
	secureCookie, err := strconv.ParseBool(env("TOLLGATE_DASHBOARD_SECURE_COOKIE", strconv.FormatBool(def.DashboardSecureCookie)))
	if err != nil {
		errs = append(errs, fmt.Errorf("TOLLGATE_DASHBOARD_SECURE_COOKIE: %w", err))
	}
	fs.BoolVar(&c.DashboardSecureCookie, "dashboard-secure-cookie", secureCookie, "mark the dashboard's session cookies Secure, for a dashboard reached over HTTPS through a proxy that terminates TLS (TOLLGATE_DASHBOARD_SECURE_COOKIE)")
	fs.DurationVar(&c.BudgetTimeout, "budget-timeout", dur("TOLLGATE_BUDGET_TIMEOUT", def.BudgetTimeout.String()), "how long a budget check may wait for Redis before the policy's budget_fail_mode applies (TOLLGATE_BUDGET_TIMEOUT)")
	fs.IntVar(&c.BudgetBlocks, "budget-blocks", int(integer("TOLLGATE_BUDGET_BLOCKS", int64(def.BudgetBlocks))), "with Redis, the most requests one budget block admits: each replica reserves budget ahead in blocks and admits and settles requests from them in memory, one Redis script per block; near a limit blocks shrink to one request; 0 checks every request in Redis (TOLLGATE_BUDGET_BLOCKS)")
	early, err := strconv.ParseBool(env("TOLLGATE_BUDGET_EARLY_RESERVE", strconv.FormatBool(def.BudgetEarlyReserve)))
	if err != nil {
		errs = append(errs, fmt.Errorf("TOLLGATE_BUDGET_EARLY_RESERVE: %w", err))
	}
	fs.BoolVar(&c.BudgetEarlyReserve, "budget-early-reserve", early, "start the budget check at the request headers from the key's previous request, so that its Redis round trip overlaps the body's upload; false checks at the body only (TOLLGATE_BUDGET_EARLY_RESERVE)")
	fs.DurationVar(&c.BudgetEarlyBodyTimeout, "budget-early-body-timeout", dur("TOLLGATE_BUDGET_EARLY_BODY_TIMEOUT", def.BudgetEarlyBodyTimeout.String()), "how long a budget reservation made at the request headers waits for the body before it is given back; a body that comes later is checked then (TOLLGATE_BUDGET_EARLY_BODY_TIMEOUT)")
	fs.DurationVar(&c.EndingWait, "ending-wait", dur("TOLLGATE_ENDING_WAIT", def.EndingWait.String()), "how long the record of a response cut after its headers waits for Envoy's access log to say who cut it (provider reset, stall, or client gone); past it, timing decides (TOLLGATE_ENDING_WAIT)")
	fs.DurationVar(&c.StreamPingInterval, "stream-ping-interval", dur("TOLLGATE_STREAM_PING_INTERVAL", def.StreamPingInterval.String()), "how long a translated stream (Bedrock, OpenAI-compatible providers: they send no pings) may stay silent before the client gets a ping, so that clients' idle watchdogs (Claude Code's 300 s) do not fire during long thinking; 0 sends none (TOLLGATE_STREAM_PING_INTERVAL)")
	decisionSecret := env("TOLLGATE_DECISION_SECRET", "")
	c.AdminToken = env("TOLLGATE_ADMIN_TOKEN", def.AdminToken)
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
	if decisionSecretFile != "" || decisionSecret != "" {
		// Kept for one release so that existing deployments still start.
		c.Warnings = append(c.Warnings, "--decision-secret-file, TOLLGATE_DECISION_SECRET_FILE and TOLLGATE_DECISION_SECRET are deprecated and ignored: "+
			"the routing decision travels in Envoy dynamic metadata (namespace tollgate), which clients cannot write and providers never see; remove the setting")
	}
	c.Version = version
	return c, nil
}
