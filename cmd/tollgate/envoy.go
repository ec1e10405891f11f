package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tollgate-dev/tollgate/envoyrender"
	"github.com/tollgate-dev/tollgate/policy"
)

// envoyCommand runs "envoy render": it writes the Envoy configuration for a
// policy (package envoyrender) to stdout or --out.
func envoyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "render" {
		fmt.Fprintln(stderr, "usage: tollgate envoy render --policy FILE [--base envoy.base.yaml] [--out FILE]")
		return errUsage
	}
	fs := flag.NewFlagSet("envoy render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyFile := fs.String("policy", "", "the policy file whose routes and providers to render (required)")
	baseFile := fs.String("base", "envoy.base.yaml", "the hand-written part of the Envoy configuration")
	outFile := fs.String("out", "", "write the configuration to this file instead of stdout")
	fs.Usage = func() {
		io.WriteString(stderr, "usage: tollgate envoy render --policy FILE [--base envoy.base.yaml] [--out FILE]\n") //nolint:errcheck
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *policyFile == "" {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	// Secrets play no part in the Envoy configuration: they are never
	// resolved (no variable is looked up, no key file read), so rendering
	// works without provider keys.
	noEnv := func(string) (string, bool) { return "", false }
	onlyPolicy := func(name string) ([]byte, error) {
		if name != *policyFile {
			return nil, errors.New("not read: rendering needs no secrets")
		}
		return os.ReadFile(name)
	}
	p, err := policy.LoadFile(*policyFile, policy.LoadOptions{LookupEnv: noEnv, ReadFile: onlyPolicy})
	if err != nil {
		var le *policy.LoadError
		if errors.As(err, &le) {
			for _, pr := range le.Problems {
				fmt.Fprintln(stderr, pr.String())
			}
			return fmt.Errorf("%s: %d problem(s)", *policyFile, len(le.Problems))
		}
		return err
	}
	base, err := os.ReadFile(*baseFile)
	if err != nil {
		return err
	}
	out, err := envoyrender.Render(p, base, envoyrender.Options{PolicyFile: *policyFile, BaseFile: *baseFile})
	if err != nil {
		return err
	}
	if *outFile == "" {
		_, err = stdout.Write(out)
		return err
	}
	return os.WriteFile(*outFile, out, 0o644)
}
