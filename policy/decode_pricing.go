package policy

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// pricing walks the pricing section.
func (d *decoder) pricing(n *yaml.Node) PricingPolicy {
	var pp PricingPolicy
	if isNull(deref(n)) {
		return pp
	}
	d.fields(n, "pricing", pricingFields, func(field string, fk, fv *yaml.Node) {
		switch field {
		case "unknown_models":
			s, ok := d.nonEmptyStr(fv, "pricing.unknown_models")
			if !ok {
				return
			}
			u, err := pricing.ParseUnknownModels(s)
			if err != nil {
				d.errorf(deref(fv), "pricing.unknown_models", "must be estimate or deny, not %q%s", s, didYouMean(s, unknownModels))
				return
			}
			pp.Unknown = u
		case "models":
			pp.Models = d.priceModels(fv)
		}
	})
	return pp
}

// priceModels walks pricing.models, keyed by model id. Ids are normalised with
// pricing.NormalizeModel, and two ids for the same model are an error.
func (d *decoder) priceModels(n *yaml.Node) map[string]pricing.Price {
	out := map[string]pricing.Price{}
	seen := map[string]*yaml.Node{}
	d.entries(n, "pricing.models", func(name string, key, val *yaml.Node) {
		path := "pricing.models." + name
		if name == "" || strings.IndexFunc(name, unicode.IsSpace) >= 0 || !validToken(name) {
			d.errorf(key, path, "invalid model id; use at most %d printable characters without spaces", maxTokenBytes)
			return
		}
		norm := pricing.NormalizeModel(name)
		if first, dup := seen[norm]; dup {
			d.errorf(key, path, "the same model as %q at line %d (both are %q once provider, region and version are set aside)", first.Value, first.Line, norm)
			return
		}
		seen[norm] = key
		p, ok := d.price(key, val, path)
		if ok {
			out[norm] = p
		}
	})
	return out
}

// price walks one model's price. Rates are USD per million tokens. input and
// output are required; omitted cache rates follow Anthropic's multipliers of
// the input rate.
func (d *decoder) price(key, n *yaml.Node, path string) (pricing.Price, bool) {
	var p pricing.Price
	var set rateSet
	errs := len(d.errs)
	ok := d.fields(n, path, priceFields, func(field string, fk, fv *yaml.Node) {
		fpath := path + "." + field
		switch field {
		case "long_context":
			p.LongContextThreshold, p.LongContext = d.longContext(fk, fv, fpath)
		case "web_search_per_1k":
			// USD per 1,000 searches is pico-USD per search / 1e9, the same
			// scaling as USD per million tokens to pico-USD per token, times
			// 1,000.
			if v, ok := d.rate(fv, fpath, "USD per 1,000 searches"); ok {
				p.WebSearchPerRequest = v * 1000
			}
		default:
			if v, ok := d.rate(fv, fpath, "USD per million tokens"); ok {
				set.set(&p.Rates, field, v)
			}
		}
	})
	if !ok || len(d.errs) > errs {
		return p, false
	}
	if !set.has("input") || !set.has("output") {
		d.errorf(key, path, "input and output are required (USD per million tokens)")
		return p, false
	}
	set.defaults(&p.Rates)
	return p, true
}

// longContext walks a long_context tier.
func (d *decoder) longContext(key, n *yaml.Node, path string) (int64, *pricing.Rates) {
	var r pricing.Rates
	var set rateSet
	var threshold int64
	errs := len(d.errs)
	ok := d.fields(n, path, longFields, func(field string, fk, fv *yaml.Node) {
		fpath := path + "." + field
		if field == "threshold" {
			threshold = d.threshold(fv, fpath)
			return
		}
		if v, ok := d.rate(fv, fpath, "USD per million tokens"); ok {
			set.set(&r, field, v)
		}
	})
	if !ok || len(d.errs) > errs {
		return 0, nil
	}
	if threshold == 0 || !set.has("input") || !set.has("output") {
		d.errorf(key, path, "threshold (input tokens above which the tier applies), input and output are required")
		return 0, nil
	}
	set.defaults(&r)
	return threshold, &r
}

// threshold decodes a positive number of tokens.
func (d *decoder) threshold(n *yaml.Node, path string) int64 {
	n = deref(n)
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil:
		d.errorf(n, path, "expected a whole number of input tokens, such as 200000, got %s", describe(n))
		return 0
	case v <= 0:
		d.errorf(n, path, "must be a positive number of input tokens, such as 200000")
		return 0
	}
	return v
}

// rate decodes a price written as a plain decimal number, exactly: the text is
// parsed, never a float.
func (d *decoder) rate(n *yaml.Node, path, unit string) (int64, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		d.errorf(n, path, "expected a number of %s, such as 3 or 0.30, got %s", unit, describe(n))
		return 0, false
	}
	v, err := pricing.ParseUSDPerMTok(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil {
		d.errorf(n, path, "%v", err)
		return 0, false
	}
	return v, true
}

// rateSet records which rates a price gives.
type rateSet []string

func (s *rateSet) set(r *pricing.Rates, field string, v int64) {
	switch field {
	case "input":
		r.Input = v
	case "output":
		r.Output = v
	case "cache_read":
		r.CacheRead = v
	case "cache_write_5m":
		r.CacheWrite5m = v
	case "cache_write_1h":
		r.CacheWrite1h = v
	}
	*s = append(*s, field)
}

func (s rateSet) has(field string) bool { return slices.Contains(s, field) }

// defaults fills the cache rates a price omits from its input rate by
// Anthropic's published multipliers (read 0.1×, 5-minute write 1.25×, 1-hour
// write 2×), rounding up so that a default never undercharges.
func (s rateSet) defaults(r *pricing.Rates) {
	if !s.has("cache_read") {
		r.CacheRead = ceilDiv(r.Input, 10)
	}
	if !s.has("cache_write_5m") {
		r.CacheWrite5m = ceilDiv(r.Input*5, 4)
	}
	if !s.has("cache_write_1h") {
		r.CacheWrite1h = r.Input * 2
	}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
