// Command tollgate is the Tollgate LLM gateway's ext_proc service and its tools.
//
//	tollgate serve                 run the ext_proc gRPC service and the admin HTTP server
//	tollgate policy check FILE     validate a policy file
//	tollgate envoy render          write the Envoy configuration for a policy
//	tollgate hash-key [--generate] hash a gateway key read from stdin, or make a new one
//	tollgate pricing show|list     print the price catalog's rates
//	tollgate db migrate            migrate the PostgreSQL records schema
//	tollgate healthcheck --url U   probe an HTTP health endpoint (for container healthchecks)
//	tollgate bench                 measure Tollgate against an echo processor (a tool)
//	tollgate version               print the version
//
// The command only reads flags and the environment: serve hands a
// gateway.Config to gateway.Run, and bench calls package benchcmd.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command-line mistake; main exits 2 for it.
var errUsage = errors.New("usage")

const usage = `usage: tollgate <command> [flags]

commands:
  serve                    run the ext_proc gRPC service and the admin HTTP server
  policy check FILE        validate a policy file; prints file:line: message for each problem
  envoy render --policy F  write the Envoy configuration (envoy.yaml) for a policy
  hash-key [--generate]    print the sha256 of a gateway key read from stdin (or of a new key)
  pricing show MODEL|list  print a model's rates in USD per million tokens, or every priced model
  db migrate               apply the PostgreSQL records schema's migrations (TOLLGATE_POSTGRES_URL)
  healthcheck --url URL    exit 0 if URL answers 200 (for container healthchecks)
  bench [flags]            measure Tollgate's ext_proc overhead against an echo processor
  version                  print the version

Run 'tollgate <command> -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

// run dispatches a command line. It never exits the process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serveCommand(ctx, rest, stderr)
	case "policy":
		return policyCommand(rest, stdout, stderr)
	case "envoy":
		return envoyCommand(rest, stdout, stderr)
	case "hash-key":
		return hashKey(rest, stdin, stdout, stderr)
	case "pricing":
		return pricingCommand(rest, stdout, stderr)
	case "db":
		return dbCommand(ctx, rest, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, stderr)
	case "bench":
		return benchCommand(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "tollgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
