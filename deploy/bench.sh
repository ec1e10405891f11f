#!/usr/bin/env bash
# HTTP-level load through the Envoy stand-in (issue 5, item 7): wrk posts
# Claude Code-shaped bodies to /v1/messages on the Go test harness
# (bin/envoytest dev: envoy.yaml's filters in Go, plus the fake Anthropic
# provider), which calls `tollgate serve` over ext_proc as Envoy would. Then the
# same load straight at the fake provider, the floor without a gateway.
#
# This is a Go stand-in for Envoy, not Envoy: the harness's own cost (HTTP
# parsing, buffering, its ext_proc client) is in every figure, and Envoy's is
# not. Use it as an end-to-end view; Tollgate's own share is what
# `tollgate bench` measures.
#
# Loopback only, bounded in time. Needs bin/tollgate and bin/envoytest
# (make build). Installs wrk from Debian packages when it is missing (as root,
# apt-get update first). Settings, from the environment:
#   BENCH_HTTP_DURATION  wrk duration per run (default 15s)
#   BENCH_HTTP_CONNS     wrk connections (default 8)
#   BENCH_HTTP_THREADS   wrk threads (default 2)
#   BENCH_HTTP_BYTES     request body size (default 102400)
#   BENCH_HTTP_STREAM    true (SSE response) or false (JSON) (default true)
#   BENCH_HTTP_PORT_BASE first of the 4 loopback ports used (default 18500)
set -euo pipefail

cd "$(dirname "$0")/.."
duration=${BENCH_HTTP_DURATION:-15s}
conns=${BENCH_HTTP_CONNS:-8}
threads=${BENCH_HTTP_THREADS:-2}
bytes=${BENCH_HTTP_BYTES:-102400}
stream=${BENCH_HTTP_STREAM:-true}
base=${BENCH_HTTP_PORT_BASE:-18500}
grpc=127.0.0.1:$base
admin=127.0.0.1:$((base + 1))
listen=127.0.0.1:$((base + 2))
fake=127.0.0.1:$((base + 3))

for b in bin/tollgate bin/envoytest; do
	[ -x "$b" ] || { echo "bench.sh: $b missing: run make build" >&2; exit 1; }
done

deploy/need.sh wrk

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

bin/tollgate bench body --bytes "$bytes" --stream="$stream" >"$work/body.json"
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
local f = assert(io.open("$work/body.json", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
-- wrk prints "Non-2xx or 3xx responses" when any answer was not a success.
EOF

# The demo policy's key and provider; records and logs as serve's defaults
# (records in memory, logged: no Redis).
bin/tollgate serve --grpc-addr "$grpc" --admin-addr "$admin" --shutdown-timeout 2s \
	--spool-dir "$work/spool" >"$work/tollgate.log" 2>&1 &
pids+=($!)
bin/envoytest dev --config envoy.yaml --listen "$listen" --tollgate "$grpc" --fake-addr "$fake" \
	>"$work/envoytest.log" 2>&1 &
pids+=($!)

ready() { curl -fsS -o /dev/null "$1" 2>/dev/null; }
for _ in $(seq 100); do
	if ready "http://$admin/readyz" && (exec 3<>"/dev/tcp/${listen%:*}/${listen#*:}") 2>/dev/null &&
		(exec 3<>"/dev/tcp/${fake%:*}/${fake#*:}") 2>/dev/null; then
		break
	fi
	sleep 0.1
done
if ! ready "http://$admin/readyz"; then
	echo "bench.sh: the stack did not come up; logs:" >&2
	tail -20 "$work/tollgate.log" "$work/envoytest.log" >&2
	exit 1
fi

# One request first: the whole path must answer 200.
code=$(curl -sS -o "$work/first.out" -w '%{http_code}' "http://$listen/v1/messages" \
	-H 'authorization: Bearer tg-demo-key' -H 'anthropic-version: 2023-06-01' \
	-H 'content-type: application/json' --data-binary "@$work/body.json")
if [ "$code" != 200 ]; then
	echo "bench.sh: a request through the harness answered $code:" >&2
	head -c 500 "$work/first.out" >&2
	exit 1
fi

echo "== HTTP-level load: wrk -t$threads -c$conns -d$duration, POST /v1/messages, ${bytes}-byte body, stream=$stream"
echo "   machine: $(nproc) cores, $(uname -sr); everything on loopback, sharing the cores with wrk"
echo
echo "-- through the Go Envoy stand-in (bin/envoytest dev) and Tollgate (key tg-demo-key)"
wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/post.lua" \
	-H 'authorization: Bearer tg-demo-key' "http://$listen/v1/messages"
echo
echo "-- straight to the fake provider (no gateway: the floor)"
wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/post.lua" \
	-H "x-api-key: ${TOLLGATE_DEMO_PROVIDER_KEY:-demo-provider-key}" "http://$fake/v1/messages"
echo
echo "(a Go stand-in for Envoy, not Envoy: see README, Performance)"
