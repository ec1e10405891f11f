// Command envoytest runs the Envoy stand-in harness and the fake Anthropic
// provider as standalone processes, so a developer without Docker or Envoy
// can point Claude Code at a local Tollgate stack. It is a development and
// test aid, not a production proxy.
//
// Usage:
//
//	envoytest harness --config envoy.yaml [--listen 127.0.0.1:10000] [--cluster NAME=ADDR]... [-v]
//	envoytest fake-provider [--addr 127.0.0.1:8080] [--api-key KEY]
//	envoytest dev --config envoy.yaml [--listen 127.0.0.1:10000] [--tollgate 127.0.0.1:50051] [--fake-addr 127.0.0.1:8080] [-v]
//
// ADDR is "host:port" or "unix:/path". The fake provider's key defaults to
// $TOLLGATE_DEMO_PROVIDER_KEY, else demo-provider-key. dev runs both, with
// the tollgate cluster at --tollgate and prov_demo at the in-process fake.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tollgate-dev/tollgate/internal/envoytest"
)

const banner = "envoytest: development and test aid standing in for Envoy; not a production proxy"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "envoytest:", err)
		os.Exit(2)
	}
}

// clusterFlags collects repeated --cluster NAME=ADDR flags.
type clusterFlags map[string]string

func (c clusterFlags) String() string { return fmt.Sprint(map[string]string(c)) }

func (c clusterFlags) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" || addr == "" {
		return fmt.Errorf("want NAME=ADDR, got %q", v)
	}
	c[name] = addr
	return nil
}

// options is the parsed command line.
type options struct {
	cmd      string
	config   string
	listen   string
	clusters clusterFlags
	fakeAddr string
	apiKey   string
	tollgate string
	verbose  bool
}

func parse(args []string, stderr io.Writer) (*options, error) {
	if len(args) == 0 {
		return nil, errors.New("usage: envoytest harness|fake-provider|dev [flags]")
	}
	o := &options{cmd: args[0], clusters: clusterFlags{}}
	fs := flag.NewFlagSet("envoytest "+o.cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultKey := os.Getenv("TOLLGATE_DEMO_PROVIDER_KEY")
	if defaultKey == "" {
		defaultKey = "demo-provider-key"
	}
	switch o.cmd {
	case "harness", "dev":
		fs.StringVar(&o.config, "config", "envoy.yaml", "path of the Envoy bootstrap")
		fs.StringVar(&o.listen, "listen", "127.0.0.1:10000", "listener address (replaces the file's)")
		fs.BoolVar(&o.verbose, "v", false, "log local replies, resets and processor errors")
		if o.cmd == "harness" {
			fs.Var(o.clusters, "cluster", "NAME=ADDR cluster override (repeatable)")
		} else {
			fs.StringVar(&o.tollgate, "tollgate", "127.0.0.1:50051", "address of the Tollgate ext_proc server (the tollgate cluster)")
			fs.StringVar(&o.fakeAddr, "fake-addr", "127.0.0.1:8080", "address of the fake provider (the prov_demo cluster)")
			fs.StringVar(&o.apiKey, "api-key", defaultKey, "x-api-key the fake provider requires")
		}
	case "fake-provider":
		fs.StringVar(&o.fakeAddr, "addr", "127.0.0.1:8080", "listen address")
		fs.StringVar(&o.apiKey, "api-key", defaultKey, "x-api-key the fake provider requires")
	default:
		return nil, fmt.Errorf("unknown command %q (want harness, fake-provider or dev)", o.cmd)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, banner)
	var logf func(string, ...any)
	if o.verbose {
		logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()
	if o.cmd == "fake-provider" || o.cmd == "dev" {
		fake := envoytest.NewFakeAnthropic(envoytest.FakeAnthropicConfig{
			APIKey:           o.apiKey,
			ForbiddenHeaders: []string{"x-tollgate-api-key", "x-portkey-api-key"},
		})
		if err := fake.Start(o.fakeAddr); err != nil {
			return err
		}
		closers = append(closers, fake.Close)
		fmt.Fprintf(stdout, "fake Anthropic provider on %s\n", fake.URL())
		if o.cmd == "dev" {
			o.clusters["tollgate"] = o.tollgate
			o.clusters["prov_demo"] = fake.Addr()
		}
	}
	if o.cmd == "harness" || o.cmd == "dev" {
		h, err := envoytest.Start(envoytest.Config{EnvoyYAML: o.config, Listen: o.listen, Clusters: o.clusters, Logf: logf})
		if err != nil {
			return err
		}
		closers = append(closers, h.Close)
		fmt.Fprintf(stdout, "harness (envoy stand-in) on %s, clusters %v\n", h.URL(), map[string]string(o.clusters))
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return nil
}
