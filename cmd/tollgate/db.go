package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/records/pgstore"
)

// dbCommand is `tollgate db migrate`: it applies the records schema's
// migrations that the PostgreSQL database lacks (serve does it too, at start).
func dbCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintln(stderr, "usage: tollgate db migrate [--postgres-url URL]")
		return errUsage
	}
	fs := flag.NewFlagSet("db migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("postgres-url", os.Getenv("TOLLGATE_POSTGRES_URL"), "PostgreSQL database of cost records (TOLLGATE_POSTGRES_URL)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if *url == "" {
		fmt.Fprintln(stderr, "tollgate db migrate: no database: set --postgres-url or TOLLGATE_POSTGRES_URL")
		return errUsage
	}
	db, err := pgstore.Open(*url, pgstore.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	applied, err := db.Migrate(ctx)
	for _, v := range applied {
		fmt.Fprintf(stdout, "applied migration %d\n", v)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "records schema is up to date")
	}
	return nil
}

// parseRetention reads a retention: whole days ("90d") or a Go duration
// ("2160h"); it must be positive.
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("retention %q: want days (90d) or a Go duration (2160h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("retention %q: want days (90d) or a Go duration (2160h)", s)
		}
	}
	if d <= 0 {
		return 0, errors.New("retention " + strconv.Quote(s) + " is not positive")
	}
	return d, nil
}

// formatRetention writes d in days when it is whole days.
func formatRetention(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
