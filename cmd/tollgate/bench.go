package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/bench/benchcmd"
)

// benchCommand is `tollgate bench`, a tool over package benchcmd: `bench serve`
// runs this binary's serve with a profiling listener beside it.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := benchcmd.Run(ctx, args, stdout, stderr, func(args []string, stderr io.Writer) (func(context.Context) error, error) {
		cfg, err := parseServeFlags(args, os.LookupEnv, stderr)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return gateway.Run(ctx, cfg, stderr) }, nil
	})
	if errors.Is(err, benchcmd.ErrUsage) {
		return errUsage
	}
	return err
}
