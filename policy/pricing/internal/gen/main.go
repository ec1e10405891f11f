// Command gen generates the embedded price catalog of package pricing from
// LiteLLM's model price table, cross-checked against Portkey's pricing files,
// and writes a report of what it changed and where the two sources disagree.
//
// It runs from policy/pricing through go generate (see generate.go there):
//
//	go run ./internal/gen -litellm ../../../shared/data/pricing/litellm-model-prices.json \
//	    -portkey ../../../shared/data/pricing/portkey -out catalog.json.gz -report disagreements.txt
//
// The catalog holds every LiteLLM entry priced per token whose mode is chat,
// responses or completion, or that has no mode, with these changes:
//
//   - the corrections of corrections.go, each with its source;
//   - Anthropic's published prices (anthropic.go), which replace the tables'
//     base rates of the Claude models under provider anthropic that they
//     list, and add the models the tables lack;
//   - for Claude models of anthropic, bedrock and vertex_ai, cache rates the
//     table lacks derived from the input rate by Anthropic's published
//     multipliers (read 0.1×, 5-minute write 1.25×, 1-hour write 2×), also in
//     the long-context tier;
//   - rates that are not a whole number of pico-USD per token rounded to the
//     nearest one;
//
// plus the token-priced chat models of Portkey's anthropic, bedrock,
// vertex-ai and openai files that LiteLLM lacks. Every change is listed in the
// report.
//
// The output depends only on the input files and the flags.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// config is the generator's command line.
type config struct {
	litellm, portkey       string // inputs
	out, report            string // outputs
	litellmVer, portkeyVer string // source versions, for the catalog version
	show                   int    // disagreements printed to stderr
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.litellm, "litellm", "", "LiteLLM model_prices_and_context_window.json")
	fs.StringVar(&c.portkey, "portkey", "", "directory with Portkey's pricing/ and general/ files")
	fs.StringVar(&c.out, "out", "catalog.json.gz", "catalog file to write")
	fs.StringVar(&c.report, "report", "disagreements.txt", "report file to write")
	fs.StringVar(&c.litellmVer, "litellm-version", "", "version of the LiteLLM table, such as its date")
	fs.StringVar(&c.portkeyVer, "portkey-version", "", "version of the Portkey files, such as a commit")
	fs.IntVar(&c.show, "show", 15, "how many disagreements to print to stderr")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.litellm == "" || c.portkey == "" || c.litellmVer == "" || c.portkeyVer == "" || fs.NArg() > 0 {
		return c, fmt.Errorf("-litellm, -portkey, -litellm-version and -portkey-version are required, and there are no arguments")
	}
	return c, nil
}

// run generates the catalog and the report.
func run(args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	g, err := generate(c, corrections, anthropicPrices)
	if err != nil {
		return err
	}
	var cat, rep bytes.Buffer
	if err := g.writeCatalog(&cat); err != nil {
		return err
	}
	g.writeReport(&rep)
	if err := writeFile(c.out, cat.Bytes()); err != nil {
		return err
	}
	if err := writeFile(c.report, rep.Bytes()); err != nil {
		return err
	}
	g.summary(stderr, c.show)
	return nil
}

// writeFile replaces path with data through a temporary file, so that an
// interrupted run never leaves a truncated catalog behind.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
