package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/pgtest"
)

// TestDBMigrateTwice runs `tollgate db migrate` twice on a real PostgreSQL:
// the first applies the schema, the second finds it current.
func TestDBMigrateTwice(t *testing.T) {
	url := pgtest.Start(t).Database(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"db", "migrate", "--postgres-url", url}, nil, &out, io.Discard); err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if !strings.Contains(out.String(), "applied migration 1\n") {
		t.Errorf("first migrate said %q", out.String())
	}
	out.Reset()
	t.Setenv("TOLLGATE_POSTGRES_URL", url)
	if err := run(context.Background(), []string{"db", "migrate"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if out.String() != "records schema is up to date\n" {
		t.Errorf("second migrate said %q", out.String())
	}
}

func TestDBUsage(t *testing.T) {
	t.Setenv("TOLLGATE_POSTGRES_URL", "")
	for _, args := range [][]string{{"db"}, {"db", "upgrade"}, {"db", "migrate"}, {"db", "migrate", "extra"}} {
		if err := run(context.Background(), args, nil, io.Discard, io.Discard); err != errUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func TestRecordsRetentionFlag(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	c, err := parseServeFlags(nil, none, io.Discard)
	if err != nil || c.RecordsRetention != 90*24*time.Hour || c.PostgresURL != "" {
		t.Fatalf("defaults: %v, %v, %q", err, c.RecordsRetention, c.PostgresURL)
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"TOLLGATE_RECORDS_RETENTION": "30d", "TOLLGATE_POSTGRES_URL": "postgres://db/x"}[k]
		return v, ok
	}
	if c, err := parseServeFlags(nil, env, io.Discard); err != nil || c.RecordsRetention != 30*24*time.Hour || c.PostgresURL != "postgres://db/x" {
		t.Errorf("from the environment: %v, %v, %q", err, c.RecordsRetention, c.PostgresURL)
	}
	if c, err := parseServeFlags([]string{"--records-retention", "36h"}, env, io.Discard); err != nil || c.RecordsRetention != 36*time.Hour {
		t.Errorf("--records-retention 36h: %v, %v", err, c.RecordsRetention)
	}
	for _, bad := range []string{"0d", "-1d", "ninety", "1.5d", "0s"} {
		if _, err := parseServeFlags([]string{"--records-retention", bad}, none, io.Discard); err != errUsage {
			t.Errorf("--records-retention %s: %v, want a usage error", bad, err)
		}
	}
}
