// Package budget enforces Tollgate's budgets and rate limits: hard ceilings
// on spend (USD), tokens, requests and concurrent requests, per key, user,
// team, project, provider, session and globally, that hold under concurrency
// and across replicas.
//
// # Reserve, then settle
//
// Before a request is forwarded, [Ledger.Reserve] checks every limit that
// applies and, only if all admit it, counts it in all of them at once: its
// worst-case cost ([WorstCaseCost] of [InputBound] plus max_tokens)
// and tokens are held, one request is counted, and a concurrency lease is
// taken. When the request ends, [Ledger.Settle] replaces what was held by what
// the request actually cost, in the windows chosen at Reserve, and frees the
// lease. So concurrent requests cannot together exceed a spend ceiling as
// long as reservations are not under-estimates, and a denied request changes
// no counter.
//
// A reservation made ahead of its request, from a guess, is given back with
// [Ledger.Cancel] (request counts included) when the request turns out not to
// use it, or exchanged for the request's own with [Ledger.Replace], which
// cancels and reserves in one round trip.
//
// Leases expire after a TTL ([DefaultLeaseTTL], renewable with
// [Ledger.Renew]), so a request whose process died gives back its slot and
// its held spend: between the crash and the expiry the ledger over-counts,
// never under-counts.
//
// # Windows
//
// Calendar windows (day, week from Monday, month) follow the policy's
// timezone and reset at local midnight, DST changes included. Rolling
// windows (minute, hour; for requests and tokens) keep a log of what they
// admitted, so that no more than the limit is admitted in any window of
// that length; the log is stamped with the caller's clock, at Reserve.
// Session windows last as long as a session (trace) id is in use, until it
// has been idle for the session TTL.
//
// # Implementations
//
// [MemoryLedger] is for a single instance. [RedisLedger] shares the
// counters between replicas: each method is one Lua script, one round trip,
// atomic across every scope and window of the request (Replace's cancel and
// reserve are one script; with RedisOptions.SettleBatch, settles and cancels
// that come within a few milliseconds of each other share one script call,
// which the next reserve carries when it comes first). With
// RedisOptions.Blocks, a replica reserves budget ahead in blocks of several
// requests' worth, held in Redis like reservations, and admits and settles
// the requests of a limit set from its block in memory (blocks.go). Both
// ledgers, and the Redis ledger with blocks, pass one contract test suite.
// Time is a parameter of every method.
//
// [NewAPIHandler] serves the admin API: GET /v1/budgets and
// POST /v1/budgets/reset.
package budget
