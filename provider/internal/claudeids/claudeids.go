// Package claudeids maps Anthropic's Claude model ids to the ids the clouds
// serve the same models under: Bedrock's model and inference profile ids
// ("us.anthropic.claude-sonnet-4-5-20250929-v1:0") and Vertex AI's
// ("claude-sonnet-4-5@20250929"). The mappings are built from the ids a price
// catalog lists under each cloud (see [Catalog]), so that a model the
// catalog knows is sent under an id the catalog also prices.
//
// Everything here is a pure function of its arguments; the values it builds
// are immutable and safe for concurrent use. Provider types call it when a
// policy loads (to build the mapping) and on each attempt (to map a model).
//
// A provider type offers the mapping to the policy as the DefaultModel
// method of its settings (policy.ModelMapper), built once in Resolve. Bedrock
// does (provider/bedrock/models.go); a Vertex AI type does the same with
// [NewVertex]:
//
//	// in Settings: models *claudeids.Vertex
//	// in Resolve:  s.models = claudeids.NewVertex(claudeids.Catalog("vertex_ai"))
//	func (s *Settings) DefaultModel(model string) (string, bool) { return s.models.Map(model) }
//
// The policy then sends the mapped id (unless the provider's models field
// names the client's id) and prices a request the provider served by the id
// sent, at the catalog's price under the provider's type.
package claudeids

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// Catalog returns the model ids the price catalog compiled into Tollgate
// lists under provider ("bedrock" or "vertex_ai"; Tollgate's type names are
// accepted too), in catalog order.
func Catalog(provider string) []string {
	provider = pricing.ProviderName(provider)
	var ids []string
	for _, p := range pricing.Embedded().Models() {
		if p.Provider == provider {
			ids = append(ids, p.Model)
		}
	}
	return ids
}

// anthropicID is an Anthropic model id split into its model name and its
// snapshot date.
type anthropicID struct {
	name string // "claude-sonnet-4-5"
	date string // "20250929", or "" for an alias
}

// parseAnthropic splits an Anthropic model id: "claude-" and a name, then an
// optional snapshot date ("-20250929") or "-latest". The aliases of the
// Claude 4 models, "claude-opus-4-0" and "claude-sonnet-4-0", are the names
// "claude-opus-4" and "claude-sonnet-4" (their snapshots are
// claude-opus-4-20250514 and claude-sonnet-4-20250514). An id holding any of
// ".", "/", "@" or ":" is already some provider's own id (an inference
// profile, an ARN, a Vertex version) and is not an Anthropic id.
func parseAnthropic(model string) (anthropicID, bool) {
	model = lower(model)
	if !strings.HasPrefix(model, "claude-") || strings.ContainsAny(model, "./@: ") {
		return anthropicID{}, false
	}
	id := anthropicID{name: model}
	if n, ok := strings.CutSuffix(model, "-latest"); ok {
		id.name = n
	} else if n, d, ok := cutDate(model); ok {
		id.name, id.date = n, d
	}
	if n, ok := strings.CutSuffix(id.name, "-0"); ok && isDigit(n[len(n)-1]) {
		id.name = n
	}
	if id.name == "claude-" || strings.HasSuffix(id.name, "-") {
		return anthropicID{}, false
	}
	return id, true
}

// cutDate removes a snapshot date, "-YYYYMMDD", from the end of s.
func cutDate(s string) (rest, date string, ok bool) {
	n := len(s)
	if n < 10 || s[n-9] != '-' || s[n-8] != '2' || !allDigits(s[n-8:]) {
		return s, "", false
	}
	return s[:n-9], s[n-8:], true
}

// cutVersion removes a Bedrock model version, "-v1" or "-v2:0", from the end
// of s when it follows a digit (so "claude-v2:1", a model of its own, keeps
// it), and returns it as major and minor numbers; a missing minor is -1.
func cutVersion(s string) (rest string, major, minor int, ok bool) {
	i := strings.LastIndex(s, "-v")
	if i <= 0 || !isDigit(s[i-1]) {
		return s, 0, 0, false
	}
	maj, min, hasMin := strings.Cut(s[i+2:], ":")
	if !allDigits(maj) || (hasMin && !allDigits(min)) {
		return s, 0, 0, false
	}
	major, minor = atoi(maj), -1
	if hasMin {
		minor = atoi(min)
	}
	return s[:i], major, minor, true
}

// snapshot is one id a cloud lists for a model name.
type snapshot struct {
	id     string // as the catalog lists it
	date   string // "" when the id names no snapshot date
	prefix string // Bedrock: the inference profile prefix with its dot ("us."), "" for a model id
	// Bedrock: the model version ("-v1:0" is 1, 0; "-v1" is 1, -1), and
	// whether the id has one. Vertex: the "-v2" of claude-3-5-sonnet-v2.
	versioned    bool
	major, minor int
	// Vertex: the id is "<name>@default", the alias of an unnamed version.
	atDefault bool
}

// pick returns the snapshot of snaps that serves a request for date ("" for
// the current one): the snapshot of that date, or, for no date, the newest
// dated snapshot; failing that an undated id (which serves every date). Only
// the snapshots usable keeps are considered. Of several, better decides (a
// positive result when its first argument is better), then the id's order,
// so that the choice does not depend on the catalog's order. It returns
// false when snaps has nothing for date.
func pick(snaps []snapshot, date string, usable func(snapshot) bool, better func(a, b snapshot) int) (snapshot, bool) {
	var best snapshot
	found := false
	for _, s := range snaps {
		if (date != "" && s.date != "" && s.date != date) || !usable(s) {
			continue
		}
		if !found {
			best, found = s, true
			continue
		}
		// A dated snapshot before an undated id; the newer date first.
		c := cmp.Compare(s.date, best.date)
		if c == 0 {
			c = better(s, best)
		}
		if c == 0 {
			c = strings.Compare(best.id, s.id)
		}
		if c > 0 {
			best = s
		}
	}
	return best, found
}

// Bedrock maps Anthropic model ids to the Bedrock ids of a provider in one
// region. It is immutable and safe for concurrent use; the zero value maps
// nothing.
type Bedrock struct {
	byName map[string][]snapshot
	// prefixes lists the inference profile prefixes in order of preference,
	// "" (the in-region model id) last.
	prefixes []string
}

// NewBedrock returns the mapping for a Bedrock provider in region, from ids,
// the model ids a catalog lists under Bedrock (see [Catalog]). Only ids of
// the shape Bedrock's API takes are used: an optional inference profile
// prefix ("us.", "global.", ...), "anthropic.", the model name, an optional
// snapshot date and an optional version ("-v1:0"); the catalog's other
// spellings ("us-east-1/anthropic.…", unqualified "claude-…") are ignored.
func NewBedrock(ids []string, region string) *Bedrock {
	b := &Bedrock{byName: map[string][]snapshot{}, prefixes: append(ProfilePrefixes(region), "global.", "")}
	for _, id := range ids {
		name, s, ok := parseBedrock(lower(id))
		if ok {
			s.id = id
			b.byName[name] = append(b.byName[name], s)
		}
	}
	return b
}

// parseBedrock splits a Bedrock model or inference profile id.
func parseBedrock(id string) (name string, s snapshot, ok bool) {
	rest := id
	if p, r, found := strings.Cut(id, "."); found && strings.HasPrefix(r, "anthropic.") && p != "anthropic" {
		s.prefix, rest = p+".", r
	}
	rest, ok = strings.CutPrefix(rest, "anthropic.")
	if !ok || !strings.HasPrefix(rest, "claude-") || strings.ContainsAny(rest, "./@ ") {
		return "", snapshot{}, false
	}
	rest, s.major, s.minor, s.versioned = cutVersion(rest)
	if strings.Contains(rest, ":") {
		return "", snapshot{}, false
	}
	rest, s.date, _ = cutDate(rest)
	return rest, s, true
}

// FoundationModel returns the foundation model id of a Bedrock cross-region
// inference profile id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" is
// "anthropic.claude-sonnet-4-5-20250929-v1:0". Other ids, ARNs included, are
// returned as they are. Bedrock's CountTokens takes the foundation model
// ("The unique identifier or ARN of the foundation model", CountTokens in the
// Bedrock API reference) and refuses a profile id.
func FoundationModel(id string) string {
	if p, rest, ok := strings.Cut(id, "."); ok && p != "" && !strings.ContainsAny(p, ":/") && strings.HasPrefix(lower(rest), "anthropic.") {
		return rest
	}
	return id
}

// ProfilePrefixes returns the prefixes of the geographic cross-region
// inference profiles a Bedrock client in region calls, in order of
// preference: "us." in us-*, "us-gov." in us-gov-*, "eu." in eu-*, "jp." then
// "apac." in Tokyo and Osaka, "au." then "apac." in Sydney and Melbourne,
// "apac." in the other ap-* regions, "ca." in ca-*; none elsewhere.
func ProfilePrefixes(region string) []string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return []string{"us-gov."}
	case strings.HasPrefix(region, "us-"):
		return []string{"us."}
	case strings.HasPrefix(region, "eu-"):
		return []string{"eu."}
	case region == "ap-northeast-1" || region == "ap-northeast-3":
		return []string{"jp.", "apac."}
	case region == "ap-southeast-2" || region == "ap-southeast-4":
		return []string{"au.", "apac."}
	case strings.HasPrefix(region, "ap-"):
		return []string{"apac."}
	case strings.HasPrefix(region, "ca-"):
		return []string{"ca."}
	}
	return nil
}

// Map returns the Bedrock id to send for model, an Anthropic model id (see
// below), or false when model is not one or the catalog has no Bedrock id
// for it; the caller then sends model as it is.
//
// The id is the catalog's for the same model name and snapshot (for an
// alias such as "claude-sonnet-4-5" or "claude-3-7-sonnet-latest", the newest
// snapshot; an id without a date serves every snapshot), through the first
// of these the catalog lists: the region's geographic inference profile
// (ProfilePrefixes), the global profile ("global."), the in-region model id.
// Of several versions the highest is taken ("-v1:0" before an id without
// one). So in us-east-1, "claude-sonnet-4-5" is
// "us.anthropic.claude-sonnet-4-5-20250929-v1:0".
//
// An id that holds ".", "/", "@" or ":" is some provider's own (an
// inference profile id, an ARN, a Vertex id) and is never mapped.
func (b *Bedrock) Map(model string) (string, bool) {
	id, ok := parseAnthropic(model)
	if !ok || b == nil {
		return "", false
	}
	snaps := b.byName[id.name]
	usable := func(s snapshot) bool { return b.rank(s.prefix) < len(b.prefixes) }
	best, ok := pick(snaps, id.date, usable, func(x, y snapshot) int {
		if c := cmp.Compare(b.rank(y.prefix), b.rank(x.prefix)); c != 0 {
			return c
		}
		if x.versioned != y.versioned {
			if x.versioned {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(x.major, y.major), cmp.Compare(x.minor, y.minor))
	})
	if !ok {
		return "", false
	}
	return best.id, true
}

// rank is the place of prefix in the order of preference; a prefix of
// another geography ranks after all of them and is never used.
func (b *Bedrock) rank(prefix string) int {
	if i := slices.Index(b.prefixes, prefix); i >= 0 {
		return i
	}
	return len(b.prefixes)
}

// Vertex maps Anthropic model ids to Vertex AI model ids. It is immutable and
// safe for concurrent use; the zero value maps nothing.
type Vertex struct {
	byName map[string][]snapshot
}

// NewVertex returns the mapping from ids, the model ids a catalog lists under
// Vertex AI (see [Catalog]). Only ids of the shape Vertex's API takes are
// used: the model name, optionally "@" and a snapshot date or "default";
// ids with "." or "/" are ignored. A name ending in a version ("-v2", as
// claude-3-5-sonnet-v2@20241022) also serves the name without it.
func NewVertex(ids []string) *Vertex {
	v := &Vertex{byName: map[string][]snapshot{}}
	for _, id := range ids {
		l := lower(id)
		if !strings.HasPrefix(l, "claude-") || strings.ContainsAny(l, "./: ") {
			continue
		}
		name, ver, hasAt := strings.Cut(l, "@")
		s := snapshot{id: id}
		switch {
		case !hasAt:
		case ver == "default":
			s.atDefault = true
		case len(ver) == 8 && ver[0] == '2' && allDigits(ver):
			s.date = ver
		default:
			continue
		}
		v.byName[name] = append(v.byName[name], s)
		if i := strings.LastIndex(name, "-v"); i > 0 && allDigits(name[i+2:]) {
			s.versioned, s.major = true, atoi(name[i+2:])
			v.byName[name[:i]] = append(v.byName[name[:i]], s)
		}
	}
	return v
}

// Map returns the Vertex AI id to send for model, an Anthropic model id, or
// false when model is not one or the catalog has no Vertex id for it; the
// caller then sends model as it is.
//
// The id is the catalog's "<name>@<date>" for the model's snapshot (for an
// alias, the newest snapshot, a later "-v2" name included: the alias
// claude-3-5-sonnet-latest is claude-3-5-sonnet-v2@20241022), failing that
// the bare "<name>", then "<name>@default". So "claude-sonnet-4-5" and
// "claude-sonnet-4-5-20250929" are "claude-sonnet-4-5@20250929". The rule
// for ids that are not Anthropic's is Bedrock.Map's.
func (v *Vertex) Map(model string) (string, bool) {
	id, ok := parseAnthropic(model)
	if !ok || v == nil {
		return "", false
	}
	all := func(snapshot) bool { return true }
	best, ok := pick(v.byName[id.name], id.date, all, func(x, y snapshot) int {
		if x.atDefault != y.atDefault { // a bare name before @default
			if y.atDefault {
				return 1
			}
			return -1
		}
		if x.versioned != y.versioned { // the exact name before a -vN variant
			if y.versioned {
				return 1
			}
			return -1
		}
		return cmp.Compare(x.major, y.major)
	})
	if !ok {
		return "", false
	}
	return best.id, true
}

// lower lower-cases ASCII letters, allocating only when there are some.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// atoi returns the value of a string of digits (capped, never negative).
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 30
	}
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
