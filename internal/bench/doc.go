// Package bench measures Tollgate's share of every request: what it costs above
// the bare ext_proc protocol that Envoy imposes on any processor.
//
// The driver plays Envoy's side of ext_proc over real gRPC connections, replaying
// the message sequences Envoy sends for a request as envoy.yaml configures the two
// filters (DefaultFilters, or FiltersFromEnvoy): the policy role's request headers,
// buffered body, response headers and streamed response chunks, and per upstream
// attempt the adapter role's headers (with the provider and attempt-count
// attributes, and in metadata_context the decision the policy role wrote into
// the request's dynamic metadata), body
// (unless the headers reply switched it off with a mode_override, as Envoy
// honours when the filter allows it) and response headers. Scenarios are YAML files (LoadScenarios; the repository's are
// compiled in, DefaultScenarios) that generate deterministic Claude Code-shaped
// bodies (ClaudeCodeBody) and Anthropic responses (AnthropicSSE,
// AnthropicMessage).
//
// RunScenario drives each Target in an open loop at a fixed arrival rate, with
// latency counted from each request's due time so that stalls are never omitted,
// then in a closed loop at concurrency 1, in rounds that alternate the targets.
// Every figure is reported for Tollgate beside Echo, a processor that answers
// CONTINUE to everything, measured in the same run: CPU per request from
// /proc/<pid>/stat, allocations from the server's Prometheus Go collector, and,
// with RunMemory, the memory of many streams held open mid-response. A Report
// prints as tables (WriteText) or JSON (WriteJSON) and evaluates the targets of
// DESIGN.md "Performance budget" (Evaluate).
//
// The bench is a measuring tool: nothing in it runs in `tollgate serve`.
package bench
