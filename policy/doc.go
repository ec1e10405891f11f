// Package policy loads, validates and serves Tollgate's policy file: the
// providers requests are sent to, the routes that chain them, and the gateway
// keys that may use them.
//
// # Loading
//
// A policy is loaded strictly. An unknown field (with a "did you mean" hint),
// a value of the wrong type, a dangling reference or a duplicate is an error
// that carries the file, line and column, and every problem in the file is
// reported at once, sorted by line, in a [*LoadError]. A loaded [Policy] is an
// immutable snapshot; [Watcher] swaps snapshots atomically when the file
// changes and keeps the last good one when a change does not load.
//
// The package knows nothing of gRPC or Envoy. The environment and the file
// system are reached through [LoadOptions], so tests inject them.
//
// # File format, version 1
//
//	version: 1                          # required
//	providers:                          # at least one, by name
//	  anthropic:
//	    type: anthropic                 # required; the only type for now
//	    base_url: https://api.anthropic.com  # optional for anthropic
//	    api_key: ${ANTHROPIC_API_KEY}   # or api_key_file: /run/secrets/anthropic
//	    models: {claude-sonnet-4-5: claude-sonnet-4-5-20250929}  # optional
//	    budgets: [{usd: 2000, per: month}]  # optional, see Budgets
//	routes:                             # at least one, by slug
//	  anthropic:                        # "@anthropic" is accepted too
//	    chain: [anthropic]              # providers in fallback order
//	    cluster: chain_anthropic        # optional; default "chain_" + slug
//	    models: {sonnet: claude-sonnet-4-5}  # optional
//	    capture_bodies: {max_bytes: 65536}   # optional: bodies in cost records
//	    fallback_on: [429, 500, 502, 503, 504, 529, connect-failure, reset, stall]  # the default
//	    max_attempts: 1                 # optional; default the chain's length
//	    per_try_timeout: 60s            # optional; default none
//	    per_try_idle_timeout: 120s      # optional; the default with stall
//	default_route: anthropic            # optional when there is one route
//	keys:
//	  - {id: alice-laptop, sha256: "<64 lowercase hex>", user: alice, team: platform,
//	     project: web, metadata: {cost_center: "42"},
//	     budgets: [{usd: 20, per: day}, {tokens: 5000000, per: day}, {concurrent: 8}]}
//	pricing:                            # optional
//	  unknown_models: estimate          # or deny; default estimate
//	  models:                           # USD per million tokens, exact decimals
//	    claude-opus-4-8: {input: 5, output: 25, cache_read: 0.5, cache_write_5m: 6.25, cache_write_1h: 10}
//	    my-model: {input: 1, output: 2, web_search_per_1k: 10,
//	               long_context: {threshold: 200000, input: 2, output: 3}}
//	budget_timezone: Europe/Berlin      # optional; IANA name, default UTC
//	budget_fail_mode: closed            # or open; default closed
//	budget_when_short: refuse           # or fit; a budget may say its own
//	budget_fit_floor: 1024              # the smallest max_tokens fit leaves
//	budget_exempt: [count_tokens, models]  # the default
//	teams:                              # optional, by team name
//	  platform: {budgets: [{usd: 500, per: month}, {requests: 600, per: minute}],
//	             capture_bodies: {max_bytes: 65536}}
//	users: {alice: {budgets: [{usd: 100, per: week}]}}
//	projects: {web: {budgets: [{tokens: 50000000, per: month}]}}
//	sessions: {ttl: 24h, budgets: [{usd: 5, per: session}]}
//	global: {budgets: [{requests: 10000, per: minute}]}
//
// Provider names and route slugs are letters, digits, '.', '_' and '-'. A
// model is mapped first by the route, then by the provider; an id the
// provider's models do not name gets the default mapping of the provider's
// type, if it has one ([ModelMapper]: Bedrock's inference profile ids from
// the price catalog; see [Policy.MapModel]). Keys are stored as the SHA-256 of the key ([HashKey]).
//
// # Fallback
//
// A route's request goes to the first provider of its chain; fallback_on
// says which failures of an attempt send it on to the next one, and
// [Route.Fallback] holds them for the Envoy configuration, whose retry policy
// carries them out (previous_priorities over the route's aggregate cluster).
// fallback_on lists status codes, 429 and 500 to 599 (another 4xx is the
// client's error, which no other provider can fix), and the words
// connect-failure, reset and stall. Envoy retries every reset of an attempt,
// a failed connection and its own reset at a timeout included, so reset
// requires connect-failure, stall requires reset, and per_try_idle_timeout
// must be 0 when reset is without stall. max_attempts counts the first
// attempt; it defaults to the chain's length and may not exceed it, since
// Envoy sends an attempt beyond the chain to its first healthy provider
// again; on a chain of one provider it may be up to
// [MaxSameProviderAttempts], each retry going to that provider.
// per_try_timeout bounds an attempt's wait for response headers;
// per_try_idle_timeout is the silence that makes a stall (default
// [DefaultPerTryIdleTimeout] when stall is listed). Both are Go durations of
// whole milliseconds. A failure after the response started reaching the
// client is never retried.
//
// # Pricing
//
// Requests are priced from the catalog compiled into package pricing. The
// pricing section adds prices of its own, which override the catalog under
// every provider; model ids are matched after [pricing.NormalizeModel]. Rates
// are parsed exactly from their decimal text, never as floats, and a rate
// more precise than 1 pico-USD per token is an error. input and output are
// required; omitted cache rates follow Anthropic's multipliers of input
// (read 0.1×, 5-minute write 1.25×, 1-hour write 2×). A model that neither
// prices is estimated by its family or, with unknown_models: deny, refused.
// [Policy.Catalog] is the catalog with the policy's prices, built at load.
//
// # Budgets
//
// A budget has exactly one unit: usd (an exact decimal, stored as pico-USD),
// tokens, requests, or concurrent (requests in flight, without per). per is
// day, week (from Monday) or month, calendar windows in budget_timezone;
// minute or hour, rolling windows for requests and tokens; or session, only
// under sessions. Amounts are positive; one scope has at most one budget of
// each unit and window. Every scope that applies to a request (its key,
// user, team, project, the providers of its route, its session, global) is
// checked and charged, and none overrides another: a team's budgets are a
// pool shared by its keys, on top of each key's own. when_short, globally
// (budget_when_short) or on a usd or tokens budget, says whether a request
// that does not fit is refused or fitted by lowering its max_tokens, down to
// budget_fit_floor ([Policy.FitMaxTokens]). [Policy.BudgetRequest]
// turns a request into the ledger request of package budget; Budgets holds
// the limits by scope.
//
// capture_bodies, on a route or a team, opts requests in to having their
// bodies in cost records, cut at max_bytes; [Policy.CaptureLimit] takes the
// larger of the two, at most 1 MiB.
//
// # Provider types
//
// type, models and budgets are fields of every provider; the others belong to
// its type. Each type is a package under provider/ (provider/anthropic has
// base_url, api_key and api_key_file) registered once in package provider,
// the only list of types. The decoder hands a provider's own fields to its
// type ([ProviderType], [ProviderSettings]), rejects a field the type does not
// have at its line, and keeps what the type decoded in [Provider.Settings].
//
// # Secrets
//
// Provider keys never appear in the file. api_key must be exactly ${VAR},
// resolved from the environment (unset or empty means unresolved), or
// ${VAR:-default}, where default applies when VAR is unset or empty; the
// default exists for non-secret demo values and must never hold a real key.
// api_key_file names a file whose content, without trailing white space, is
// the key; a relative path is relative to the policy file's directory.
//
// An unresolved secret is a warning, unless [LoadOptions.RequireSecrets] is
// set and a route uses the provider, in which case it is a load error at the
// line of the api_key or api_key_file field.
package policy
