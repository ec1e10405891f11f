// Package gateway wires a serving Tollgate together: the policy watcher, the
// Redis client, the cost-record pipeline, the budget ledger, the metrics
// registry, the ext_proc gRPC server and the admin HTTP server, with a graceful
// drain when the context ends. The tollgate command parses flags and the
// environment into a Config and calls Run; nothing else lives here.
package gateway
