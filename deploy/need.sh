#!/usr/bin/env bash
# need.sh COMMAND[=PACKAGE]...: makes sure each command is on PATH, installing
# its Debian package when it is missing (PACKAGE defaults to COMMAND). A COMMAND
# with a '/' is a path pattern instead, such as /usr/lib/postgresql/*/bin/postgres
# for a binary Debian keeps off PATH. Installing
# needs root; as another user it says what to install and fails. Used by
# .ci/run (redis-server, postgresql and chromium for the tests), `make bench` (redis-server for the
# budget benchmarks) and deploy/bench.sh (wrk).
set -euo pipefail

missing=()
for spec in "$@"; do
	cmd=${spec%%=*}
	pkg=${spec#*=}
	if [[ $cmd == */* ]]; then
		compgen -G "$cmd" >/dev/null || missing+=("$pkg")
	else
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "need.sh: missing ${missing[*]}: run as root to install, or apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "need.sh: installing ${missing[*]} from Debian packages" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
