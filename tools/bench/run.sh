#!/usr/bin/env bash
# Run every benchmark built in $1 (default build/rel): each prints its own ratios against a
# baseline measured in the same run. Benchmarks that need root say SKIP without it.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
status=0
for b in "$build"/bench/*; do
	[ -x "$b" ] || continue
	echo "=== $(basename "$b")"
	"$b" || status=1
done
exit $status
