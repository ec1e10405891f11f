package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func execSQL(t *testing.T, url, sql string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func TestStartDatabaseStopRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want a loopback address", s.Addr())
	}
	a, b := s.Database(t), s.Database(t)
	if a == b {
		t.Fatalf("two databases share %s", a)
	}
	if err := execSQL(t, a, "CREATE TABLE kept AS SELECT 'x'::text AS v"); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, b, "SELECT v FROM kept"); err == nil {
		t.Error("a table of one database is visible in another")
	}
	user, err := query(t, a, "SELECT current_setting('is_superuser')")
	if err != nil || user != "on" {
		t.Errorf("is_superuser = %q, %v", user, err)
	}

	s.Stop()
	if _, err := query(t, a, "SELECT 'x'"); err == nil {
		t.Fatal("the server answered after Stop")
	}
	s.Stop() // a second Stop does nothing
	s.Restart()
	if v, err := query(t, a, "SELECT v FROM kept"); err != nil || v != "x" {
		t.Errorf("after Restart: %q, %v; want the data kept", v, err)
	}
}
