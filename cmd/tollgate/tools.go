package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/policy"
)

// policyCommand runs "policy check FILE".
func policyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: tollgate policy check FILE")
		return errUsage
	}
	path := args[1]
	// Secrets are only warned about here: the machine that checks a policy often
	// lacks the production environment. serve refuses unresolved secrets in use.
	p, err := policy.LoadFile(path, policy.LoadOptions{})
	if err != nil {
		var le *policy.LoadError
		if errors.As(err, &le) {
			for _, pr := range le.Problems {
				fmt.Fprintln(stdout, pr.String())
			}
			return fmt.Errorf("%s: %d problem(s)", path, len(le.Problems))
		}
		return err
	}
	for _, w := range p.Warnings {
		fmt.Fprintln(stdout, w.String()+" (warning)")
	}
	fmt.Fprintf(stdout, "%s: ok (%d providers, %d routes, default route %q)\n", path, len(p.Providers), len(p.Routes), p.DefaultRoute)
	return nil
}

// hashKey prints the hash of the gateway key on stdin, or with --generate a new
// key and its hash. Keys are read from stdin, not arguments, to keep them out of
// shell history and process listings.
func hashKey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	generate := fs.Bool("generate", false, "generate a new gateway key and print it with its hash")
	fs.Usage = func() {
		io.WriteString(stderr, "usage: printf '%s' \"$KEY\" | tollgate hash-key\n       tollgate hash-key --generate\n") //nolint:errcheck
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if *generate {
		key, err := policy.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key:    %s\nsha256: %s\n", key, policy.HashKey(key))
		return nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	key := strings.TrimRight(line, "\r\n")
	if key == "" {
		fs.Usage()
		return errUsage
	}
	fmt.Fprintln(stdout, policy.HashKey(key))
	return nil
}

// healthcheck GETs a URL and succeeds on 200. Distroless images have no curl, so
// container healthchecks call the binary itself.
func healthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9090/readyz", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	return nil
}
