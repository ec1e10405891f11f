package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/pricing"
)

const pricingUsage = `usage: tollgate pricing show MODEL [--provider P] [--policy FILE]
       tollgate pricing list [--provider P] [--policy FILE]

show prints a model's rates in USD per million tokens; list prints one priced
model per line. --provider is anthropic, bedrock, vertex, openai or another
catalog provider (default: search them all). --policy adds that policy file's
prices and applies its unknown_models rule.
`

// pricingCommand runs "pricing show" and "pricing list".
func pricingCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, pricingUsage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("pricing "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pricingUsage) }
	provider := fs.String("provider", "", "provider: anthropic, bedrock, vertex, openai, ...")
	policyPath := fs.String("policy", "", "policy file whose pricing section applies")
	// Flags may come before or after the model.
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}

	cat, unknown := pricing.Embedded(), pricing.EstimateByFamily
	if *policyPath != "" {
		p, err := policy.LoadFile(*policyPath, policy.LoadOptions{})
		if err != nil {
			var le *policy.LoadError
			if errors.As(err, &le) {
				for _, pr := range le.Problems {
					fmt.Fprintln(stderr, pr.String())
				}
				return fmt.Errorf("%s: %d problem(s)", *policyPath, len(le.Problems))
			}
			return err
		}
		cat, unknown = p.Catalog(), p.Pricing.Unknown
	}

	switch {
	case sub == "show" && len(positional) == 1:
		return pricingShow(stdout, cat, *provider, positional[0], unknown)
	case sub == "list" && len(positional) == 0:
		return pricingList(stdout, cat, *provider)
	}
	fmt.Fprint(stderr, pricingUsage)
	return errUsage
}

// pricingShow prints one model's price.
func pricingShow(w io.Writer, cat *pricing.Catalog, provider, model string, unknown pricing.UnknownModels) error {
	p, err := cat.Resolve(provider, model, unknown)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model:\t%s\n", model)
	if p.Model != model {
		fmt.Fprintf(tw, "priced as:\t%s\n", p.Model)
	}
	prov := p.Provider
	if prov == "" {
		prov = "any"
	}
	fmt.Fprintf(tw, "provider:\t%s\n", prov)
	source := p.Source
	if p.EstimatedFrom != "" {
		source += " (priced as " + p.EstimatedFrom + ", its newest priced model)"
	}
	fmt.Fprintf(tw, "source:\t%s\n", source)
	estimated := "no"
	if p.Estimated {
		estimated = "yes"
	}
	fmt.Fprintf(tw, "estimated:\t%s\n", estimated)
	fmt.Fprintf(tw, "catalog:\t%s\n", cat.Version())
	tw.Flush()

	fmt.Fprintln(w, "\nUSD per million tokens:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tinput\toutput\tcache read\tcache write 5m\tcache write 1h")
	fmt.Fprintf(tw, "  %s\t%s\n", "base", rateCells(p.Rates, "\t"))
	if p.LongContext != nil {
		fmt.Fprintf(tw, "  above %d input tokens\t%s\n", p.LongContextThreshold, rateCells(*p.LongContext, "\t"))
	}
	tw.Flush()
	if p.WebSearchPerRequest != 0 {
		fmt.Fprintf(w, "\nweb search: %s USD per search\n", pricing.FormatUSD(p.WebSearchPerRequest))
	}
	if p.Note != "" {
		fmt.Fprintf(w, "\nnote: %s\n", p.Note)
	}
	for _, n := range cat.Notes() {
		fmt.Fprintf(w, "\ncatalog note: %s\n", n)
	}
	return nil
}

// pricingList prints one priced model per line.
func pricingList(w io.Writer, cat *pricing.Catalog, provider string) error {
	// Tollgate's names ("vertex") become the catalog's ("vertex_ai").
	want := pricing.ProviderName(provider)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tMODEL\tINPUT\tOUTPUT\tCACHE READ\tWRITE 5M\tWRITE 1H\tLONG CONTEXT\tSOURCE")
	n := 0
	for _, p := range cat.Models() {
		prov := p.Provider
		if prov == "" {
			prov = "*"
		} else if want != "" && prov != want {
			continue
		}
		long := "-"
		if p.LongContext != nil {
			long = fmt.Sprintf(">%d: %s", p.LongContextThreshold, rateCells(*p.LongContext, "/"))
		}
		source := p.Source
		if p.Estimated {
			source += " (estimated)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", prov, p.Model, rateCells(p.Rates, "\t"), long, source)
		n++
	}
	if n == 0 {
		return fmt.Errorf("no models for provider %q", provider)
	}
	return tw.Flush()
}

// rateCells formats rates in USD per million tokens, joined by sep.
func rateCells(r pricing.Rates, sep string) string {
	return strings.Join([]string{
		pricing.FormatUSDPerMTok(r.Input),
		pricing.FormatUSDPerMTok(r.Output),
		pricing.FormatUSDPerMTok(r.CacheRead),
		pricing.FormatUSDPerMTok(r.CacheWrite5m),
		pricing.FormatUSDPerMTok(r.CacheWrite1h),
	}, sep)
}
