package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/policy/budget"
)

// The fields each mapping of the policy file accepts, in documentation order.
var (
	rootFields = []string{"version", "providers", "routes", "default_route", "keys", "pricing",
		"budget_timezone", "budget_fail_mode", "budget_when_short", "budget_fit_floor", "budget_exempt", "teams", "users", "projects", "sessions", "global"}
	routeFields   = []string{"chain", "cluster", "models", "capture_bodies", "cache", "fallback_on", "max_attempts", "per_try_timeout", "per_try_idle_timeout"}
	keyFields     = []string{"id", "sha256", "user", "team", "project", "metadata", "budgets"}
	pricingFields = []string{"unknown_models", "models"}
	priceFields   = []string{"input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "long_context", "web_search_per_1k"}
	longFields    = []string{"threshold", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h"}
	unknownModels = []string{"estimate", "deny"}
)

// validName matches provider names and route slugs. They end up in Envoy
// cluster names, header values and "@slug/model" model names, so they are
// kept to letters, digits, '.', '_' and '-', and never contain '/' or '@'.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// maxTokenBytes bounds key ids and cluster names.
const maxTokenBytes = 128

// yamlLine extracts the line from the YAML parser's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decoder walks a parsed YAML document, builds a Policy and collects every
// problem with its position.
type decoder struct {
	file  string
	opts  LoadOptions
	errs  []Problem
	warns []Problem

	// budgets collects the limits of every scope as they are decoded.
	budgets map[budget.Scope][]budget.Limit
	// whenShort holds the budgets that name their own when_short.
	whenShort map[budget.LimitRef]budget.WhenShort
}

// providerDraft is a provider under construction with what validation needs.
type providerDraft struct {
	name     *yaml.Node
	typ      *yaml.Node
	fields   map[string]fieldNodes // the type's own fields, by name
	settings ProviderSettings      // nil when the type is missing or unknown
	// undecoded is set when a field of the type had a value of the wrong
	// kind (already reported), so the settings are not resolved.
	undecoded bool
	p         *Provider
}

// fieldNodes locates one field of a mapping and holds its string value.
type fieldNodes struct {
	key, val *yaml.Node
	value    string
}

// routeDraft is a route under construction with what validation needs.
type routeDraft struct {
	chain []*yaml.Node // The nodes of r.Chain, for positions.
	r     *Route
}

func (d *decoder) problem(n *yaml.Node, path, format string, args ...any) Problem {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p := Problem{File: d.file, Message: msg}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}

// errorf records a load error at node n; path names the place in the
// document, such as "providers.anthropic".
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, d.problem(n, path, format, args...))
}

// warnf records a warning at node n.
func (d *decoder) warnf(n *yaml.Node, path, format string, args ...any) {
	d.warns = append(d.warns, d.problem(n, path, format, args...))
}

// parse decodes data. The returned policy is meaningful only if no error was
// recorded.
func (d *decoder) parse(data []byte) *Policy {
	root := d.document(data)
	if root == nil {
		return nil
	}
	return d.policy(root)
}

// document parses data as a single YAML document and returns its root node,
// or nil after recording why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "", "the policy is empty; it must be a mapping starting with version: 1")
		} else {
			d.syntaxError(data, err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
		return nil
	default:
		d.errorf(&extra, "", "a policy file holds one YAML document; remove the second one")
	}
	if len(doc.Content) == 0 {
		d.errorf(&doc, "", "the policy is empty; it must be a mapping starting with version: 1")
		return nil
	}
	return doc.Content[0]
}

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). For these, yaml.v3 reports a 0-based line in "yaml: line N:", and
// no line at all for the first one, so syntaxError adds one.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// syntaxError records a YAML syntax error with the best line it can recover.
func (d *decoder) syntaxError(data []byte, err error) {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if slices.Contains(parserProblems, msg) {
		line++
	}
	if strings.HasPrefix(msg, "did not find expected ',' or ") && bytes.Contains(data, []byte("${")) {
		msg += "; a ${VAR} reference inside {...} or [...] must be quoted, as in {api_key: '${VAR}'}"
	}
	d.errs = append(d.errs, Problem{File: d.file, Line: line, Message: "invalid YAML: " + msg})
}

// policy walks the root mapping and cross-checks references.
func (d *decoder) policy(root *yaml.Node) *Policy {
	p := &Policy{
		Source:    d.file,
		Providers: map[string]*Provider{},
		Routes:    map[string]*Route{},
		Budgets:   &budget.Config{},
		keyIndex:  map[[sha256.Size]byte]keyEntry{},
	}
	var (
		providers                           []*providerDraft
		routes                              []*routeDraft
		versionKey, providersKey, routesKey *yaml.Node
		keysKey, defaultRouteNode           *yaml.Node
		defaultRoute                        string
		providersOK, routesOK               = true, true // false if reported as malformed
		sections                            budgetSections
	)
	ok := d.fields(root, "", rootFields, func(name string, key, val *yaml.Node) {
		switch name {
		case "version":
			versionKey = key
			p.Version = d.version(val)
		case "providers":
			providersKey = key
			providers, providersOK = d.providers(val)
		case "routes":
			routesKey = key
			routes, routesOK = d.routes(val)
		case "default_route":
			defaultRouteNode = deref(val)
			defaultRoute, _ = d.nonEmptyStr(val, "default_route")
		case "keys":
			keysKey = key
			p.Keys = d.keys(val, p.keyIndex)
		case "pricing":
			p.Pricing = d.pricing(val)
		default:
			d.budgetSection(p, &sections, name, key, val)
		}
	})
	if !ok {
		return p
	}
	if versionKey == nil {
		d.errorf(root, "", "version is required; add version: 1")
	}

	// Providers.
	if len(providers) == 0 && providersOK {
		d.errorf(orNode(providersKey, root), "providers", "at least one provider is required")
	}
	var names []string
	for _, pd := range providers {
		p.Providers[pd.p.Name] = pd.p
		names = append(names, pd.p.Name)
	}
	sort.Strings(names)

	// Routes and their chains.
	if len(routes) == 0 && routesOK {
		d.errorf(orNode(routesKey, root), "routes", "at least one route is required")
	}
	used := map[string]bool{}
	for _, rd := range routes {
		p.Routes[rd.r.Slug] = rd.r
		for i, n := range rd.chain {
			name := rd.r.Chain[i]
			if _, ok := p.Providers[name]; !ok {
				d.errorf(n, "routes."+rd.r.Slug+".chain", "unknown provider %q%s", name, didYouMean(name, names))
				continue
			}
			used[name] = true
		}
	}

	// The default route.
	switch {
	case defaultRouteNode != nil:
		if defaultRoute == "" {
			break // Already reported.
		}
		slug := strings.TrimPrefix(defaultRoute, "@")
		if _, ok := p.Routes[slug]; !ok {
			d.errorf(defaultRouteNode, "default_route", "no route %q%s", slug, didYouMean(slug, sortedKeys(p.Routes)))
			break
		}
		p.DefaultRoute = slug
	case len(routes) == 1:
		p.DefaultRoute = routes[0].r.Slug
	case len(routes) > 1:
		d.errorf(routesKey, "default_route", "required when more than one route is defined")
	}

	// Settings, their secrets, and unused providers.
	for _, pd := range providers {
		if !used[pd.p.Name] {
			d.warnf(pd.name, "providers."+pd.p.Name, "not used by any route")
		}
		if pd.settings != nil && !pd.undecoded {
			d.resolveSettings(pd, used[pd.p.Name])
		}
		pd.p.Settings = pd.settings
	}

	if len(p.Keys) == 0 {
		d.warnf(orNode(keysKey, root), "keys", "no keys are defined; every request will be rejected")
	}
	d.finishBudgets(p, &sections)
	return p
}

// version decodes the version field.
func (d *decoder) version(n *yaml.Node) int {
	n = deref(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.errorf(n, "version", "expected the integer 1, got %s", describe(n))
		return 0
	}
	if v != 1 {
		d.errorf(n, "version", "unsupported version %d; this Tollgate reads version 1", v)
	}
	return v
}

// providers walks the providers mapping. It returns false if n is not a
// mapping.
func (d *decoder) providers(n *yaml.Node) ([]*providerDraft, bool) {
	var out []*providerDraft
	ok := d.entries(n, "providers", func(name string, key, val *yaml.Node) {
		path := "providers." + name
		if !validName.MatchString(name) {
			d.errorf(key, path, "invalid provider name; use letters, digits, '.', '_' and '-', starting with a letter or digit")
		}
		pd := &providerDraft{name: key, p: &Provider{Name: name}, fields: map[string]fieldNodes{}}
		// The type decides the other fields, wherever it is in the mapping.
		typ := lookupType(val)
		if typ != nil {
			pd.p.Type = typ.Name()
			pd.settings = d.newSettings(typ, val, path)
		}
		ok := d.fields(val, path, providerFields(typ), func(field string, fk, fv *yaml.Node) {
			switch field {
			case "type":
				pd.typ = fk
				name, _ := d.nonEmptyStr(fv, path+".type")
				if name != "" && typ == nil {
					names := providerTypeNames()
					d.errorf(fv, path+".type", "unknown provider type %q%s", name,
						didYouMeanOr(name, names, "; known types: "+strings.Join(names, ", ")))
				}
			case "models":
				pd.p.Models = d.stringMap(fv, path+".models")
			case "budgets":
				d.setBudgets(budget.Scope{Kind: budget.ScopeProvider, Name: name}, fv, path+".budgets", false)
			default:
				if es, ok := pd.settings.(ProviderEntrySettings); ok && deref(fv).Kind == yaml.MappingNode {
					// A field whose value is a mapping (bedrock's compat).
					d.settingEntries(es, fv, path+"."+field, field)
					return
				}
				// A field of the type (or, when the type is missing or
				// unknown, of some type: nothing more can be checked). A
				// number or boolean is taken as its text, which the type
				// checks (max_output_tokens: 16384, stream_options: false).
				s, ok := d.scalar(fv, path+"."+field)
				if !ok {
					// The settings cannot be checked as a whole without it.
					pd.undecoded = true
				}
				if !ok || pd.settings == nil {
					return
				}
				pd.fields[field] = fieldNodes{key: fk, val: deref(fv), value: s}
				if err := pd.settings.Set(field, s); err != nil {
					d.errorf(deref(fv), path+"."+field, "%v", err)
				}
			}
		})
		if ok && pd.typ == nil {
			d.errorf(key, path, "type is required (one of: %s)", strings.Join(providerTypeNames(), ", "))
		}
		out = append(out, pd)
	})
	return out, ok
}

// settingEntries passes each entry of the mapping n, the value of field, to
// es in document order; an entry's error is reported at its value, under
// path and its key.
func (d *decoder) settingEntries(es ProviderEntrySettings, n *yaml.Node, path, field string) {
	d.entries(n, path, func(key string, _, val *yaml.Node) {
		v, ok := d.str(val, path+"."+key)
		if !ok {
			return
		}
		if err := es.SetEntry(field, key, v); err != nil {
			d.errorf(deref(val), path+"."+key, "%v", err)
		}
	})
}

// lookupType returns the registered type that the provider mapping n names in
// its type field, or nil when it names none (d.fields reports why).
func lookupType(n *yaml.Node) ProviderType {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!str" && k.Value == "type" {
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				return nil
			}
			t, _ := providerType(v.Value)
			return t
		}
	}
	return nil
}

// newSettings returns fresh settings of type t for the provider at path.
func (d *decoder) newSettings(t ProviderType, n *yaml.Node, path string) ProviderSettings {
	v := t.NewSettings()
	s, ok := v.(ProviderSettings)
	if !ok {
		// A registration mistake, which TestProviderTypes catches.
		d.errorf(n, path, "provider type %q cannot be decoded: its settings %T lack Set or Resolve", t.Name(), v)
	}
	return s
}

// routes walks the routes mapping. It returns false if n is not a mapping.
func (d *decoder) routes(n *yaml.Node) ([]*routeDraft, bool) {
	var out []*routeDraft
	seen := map[string]*yaml.Node{}
	ok := d.entries(n, "routes", func(name string, key, val *yaml.Node) {
		slug := strings.TrimPrefix(name, "@")
		path := "routes." + slug
		if !validName.MatchString(slug) {
			d.errorf(key, path, "invalid route slug; use letters, digits, '.', '_' and '-', starting with a letter or digit, optionally after '@'")
		}
		if first, dup := seen[slug]; dup {
			d.errorf(key, path, "duplicate route %q (also defined at line %d)", slug, first.Line)
			return
		}
		seen[slug] = key
		rd := &routeDraft{r: &Route{Slug: slug, Cluster: "chain_" + slug}}
		var chainKey *yaml.Node
		var fd fallbackDraft
		chainOK := true
		ok := d.fields(val, path, routeFields, func(field string, fk, fv *yaml.Node) {
			switch field {
			case "chain":
				chainKey = fk
				chainOK = d.chain(fv, path+".chain", rd)
				if len(rd.chain) == 0 {
					d.errorf(fk, path+".chain", "must name at least one provider")
				}
			case "cluster":
				if s, ok := d.nonEmptyStr(fv, path+".cluster"); ok {
					if !validToken(s) {
						d.errorf(fv, path+".cluster", "invalid cluster name; use at most %d printable characters without spaces", maxTokenBytes)
						return
					}
					rd.r.Cluster = s
				}
			case "models":
				rd.r.Models = d.stringMap(fv, path+".models")
			case "capture_bodies":
				rd.r.CaptureBodies = d.captureBodies(fv, path+".capture_bodies")
			case "cache":
				rd.r.Cache = d.cache(fv, path+".cache")
			case "fallback_on":
				d.fallbackOn(fv, path+".fallback_on", &fd)
			case "max_attempts":
				d.maxAttempts(fv, path+".max_attempts", &fd)
			case "per_try_timeout":
				fd.f.PerTryTimeout, _ = d.tryTimeout(fv, path+".per_try_timeout", false)
			case "per_try_idle_timeout":
				fd.idleVal = deref(fv)
				fd.f.PerTryIdleTimeout, fd.idleOK = d.tryTimeout(fv, path+".per_try_idle_timeout", true)
			}
		})
		if ok && chainKey == nil {
			d.errorf(key, path, "chain is required: the providers of the route in fallback order")
		}
		if ok {
			d.finishFallback(path, &fd, rd, chainOK && chainKey != nil)
		}
		out = append(out, rd)
	})
	return out, ok
}

// chain walks a route's chain sequence. It returns false when it reported a
// problem, so that the chain's length proves nothing.
func (d *decoder) chain(n *yaml.Node, path string, rd *routeDraft) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a sequence of provider names, got %s", describe(n))
		return false
	}
	ok := true
	seen := map[string]bool{}
	for _, item := range n.Content {
		item = deref(item)
		name, good := d.nonEmptyStr(item, path)
		if !good {
			ok = false
			continue
		}
		if seen[name] {
			d.errorf(item, path, "provider %q appears more than once", name)
			ok = false
			continue
		}
		seen[name] = true
		rd.chain = append(rd.chain, item)
		rd.r.Chain = append(rd.r.Chain, name)
	}
	return ok
}

// keys walks the keys sequence and fills index.
func (d *decoder) keys(n *yaml.Node, index map[[sha256.Size]byte]keyEntry) []*Key {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "keys", "expected a sequence of keys, got %s", describe(n))
		return nil
	}
	var out []*Key
	ids := map[string]*yaml.Node{}
	digests := map[string]*yaml.Node{}
	for i, item := range n.Content {
		item = deref(item)
		path := fmt.Sprintf("keys[%d]", i)
		k := &Key{}
		var idNode, shaNode *yaml.Node
		var sum string
		var limits []budget.Limit
		var whens []budget.WhenShort
		ok := d.fields(item, path, keyFields, func(field string, fk, fv *yaml.Node) {
			switch field {
			case "id":
				idNode = fk
				if s, ok := d.nonEmptyStr(fv, path+".id"); ok {
					if !validToken(s) {
						d.errorf(fv, path+".id", "invalid key id; use at most %d printable characters without spaces", maxTokenBytes)
						return
					}
					if first, dup := ids[s]; dup {
						d.errorf(fv, path+".id", "duplicate key id %q (also at line %d)", s, first.Line)
						return
					}
					ids[s] = fv
					k.ID = s
				}
			case "sha256":
				shaNode = fk
				s, ok := d.str(fv, path+".sha256")
				if !ok {
					return
				}
				if !validSHA256(s) {
					hint := "the output of `tollgate hash-key`"
					if strings.HasPrefix(s, keyPrefix) {
						hint = "this looks like a key, not its hash; paste the output of `tollgate hash-key` instead"
					}
					d.errorf(fv, path+".sha256", "must be 64 lowercase hex digits (%s)", hint)
					return
				}
				if first, dup := digests[s]; dup {
					d.errorf(fv, path+".sha256", "duplicate sha256: the same key is already listed at line %d", first.Line)
					return
				}
				digests[s] = fv
				sum = s
			case "user":
				k.User, _ = d.str(fv, path+".user")
			case "team":
				k.Team, _ = d.str(fv, path+".team")
			case "project":
				k.Project, _ = d.str(fv, path+".project")
			case "metadata":
				k.Metadata = d.stringMap(fv, path+".metadata")
			case "budgets":
				limits, whens = d.budgetList(fv, path+".budgets", false)
			}
		})
		if !ok {
			continue
		}
		if idNode == nil {
			d.errorf(item, path, "id is required")
		}
		if shaNode == nil {
			d.errorf(item, path, "sha256 is required (the output of `tollgate hash-key`)")
		}
		if k.ID == "" || sum == "" {
			continue
		}
		d.recordBudgets(budget.Scope{Kind: budget.ScopeKey, Name: k.ID}, limits, whens)
		var digest [sha256.Size]byte
		_, _ = hex.Decode(digest[:], []byte(sum))
		index[digest] = keyEntry{digest: digest, key: k}
		out = append(out, k)
	}
	return out
}

// validToken reports whether s, a key id or a cluster name, is short,
// printable and free of spaces. Both end up in headers, logs and store keys.
func validToken(s string) bool {
	if len(s) > maxTokenBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// stringMap walks a mapping of non-empty strings to non-empty strings, such as
// a model mapping or key metadata. A null value is an empty map.
func (d *decoder) stringMap(n *yaml.Node, path string) map[string]string {
	var out map[string]string
	d.entries(n, path, func(name string, key, val *yaml.Node) {
		if s, ok := d.nonEmptyStr(val, path+"."+name); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = s
		}
	})
	return out
}

// fields walks the mapping n, whose allowed fields are known, and calls fn for
// each of them. It reports a non-mapping, duplicate fields, merge keys and
// unknown fields, and returns false if n is not a mapping.
func (d *decoder) fields(n *yaml.Node, path string, known []string, fn func(name string, key, val *yaml.Node)) bool {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping with fields %s, got %s", strings.Join(known, ", "), describe(n))
		return false
	}
	d.pairs(n, path, "field", func(name string, key, val *yaml.Node) {
		if !slices.Contains(known, name) {
			d.errorf(key, path, "unknown field %q%s", name,
				didYouMeanOr(name, known, "; known fields: "+strings.Join(known, ", ")))
			return
		}
		fn(name, key, val)
	})
	return true
}

// entries walks a mapping with names chosen by the user (providers, routes,
// model maps). A null value has no entries. It returns false after reporting
// a value that is not a mapping.
func (d *decoder) entries(n *yaml.Node, path string, fn func(name string, key, val *yaml.Node)) bool {
	n = deref(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return false
	}
	d.pairs(n, path, "key", fn)
	return true
}

// pairs calls fn for each key of the mapping n that is a string seen for the
// first time; what names keys in messages ("field" or "key").
func (d *decoder) pairs(n *yaml.Node, path, what string, fn func(name string, key, val *yaml.Node)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := deref(n.Content[i]), n.Content[i+1]
		if key.Kind == yaml.ScalarNode && key.ShortTag() == "!!merge" {
			d.errorf(key, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		if key.Kind != yaml.ScalarNode || key.ShortTag() != "!!str" {
			d.errorf(key, path, "a %s must be a string, got %s", what, describe(key))
			continue
		}
		if first, dup := seen[key.Value]; dup {
			d.errorf(key, path, "duplicate %s %q (first at line %d)", what, key.Value, first.Line)
			continue
		}
		seen[key.Value] = key
		fn(key.Value, key, val)
	}
}

// str returns the string value of n, reporting any other kind of value.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			hint = "; quote it if it is meant as text"
		}
		d.errorf(n, path, "expected a string, got %s%s", describe(n), hint)
		return "", false
	}
	return n.Value, true
}

// scalar returns the text of n, a string, number or boolean, reporting any
// other kind of value.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if m := deref(n); m.Kind == yaml.ScalarNode {
		switch m.ShortTag() {
		case "!!int", "!!float", "!!bool":
			return m.Value, true
		}
	}
	return d.str(n, path)
}

// nonEmptyStr is str that also rejects the empty string.
func (d *decoder) nonEmptyStr(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if ok && s == "" {
		d.errorf(deref(n), path, "must not be empty")
		return "", false
	}
	return s, ok
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of value n holds, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		switch t := n.ShortTag(); t {
		case "!!null":
			return "nothing (null)"
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		default:
			return "a value tagged " + t
		}
	}
	return "an unexpected YAML node"
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// didYouMean returns ` (did you mean "x"?)` for the candidate closest to
// name, or "" when none is close.
func didYouMean(name string, candidates []string) string {
	return didYouMeanOr(name, candidates, "")
}

// didYouMeanOr is didYouMean returning otherwise when no candidate is close.
func didYouMeanOr(name string, candidates []string, otherwise string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		dist := editDistance(strings.ToLower(name), strings.ToLower(c))
		if dist <= maxTypos(c) && (best == "" || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return otherwise
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// maxTypos is how many edits still make a word a likely misspelling of s.
func maxTypos(s string) int {
	switch n := utf8.RuneCountInString(s); {
	case n < 3:
		return 0
	case n < 5:
		return 1
	case n < 8:
		return 2
	default:
		return 3
	}
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
