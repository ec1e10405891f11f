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
//	routes:                             # at least one, by slug
//	  anthropic:                        # "@anthropic" is accepted too
//	    chain: [anthropic]              # providers in fallback order
//	    cluster: chain_anthropic        # optional; default "chain_" + slug
//	    models: {sonnet: claude-sonnet-4-5}  # optional
//	default_route: anthropic            # optional when there is one route
//	keys:
//	  - {id: alice-laptop, sha256: "<64 lowercase hex>", user: alice, team: platform,
//	     project: web, metadata: {cost_center: "42"}}
//
// Provider names and route slugs are letters, digits, '.', '_' and '-'. A
// model is mapped first by the route, then by the provider (see
// [Policy.MapModel]). Keys are stored as the SHA-256 of the key ([HashKey]).
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
