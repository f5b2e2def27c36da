#!/usr/bin/env bash
# Run every benchmark: each program built in $1/bench (default build/rel) and each
# tools/bench/*.sh (given the build directory). Each prints its own ratios against a baseline
# measured in the same run. Benchmarks that need root or a missing tool say SKIP.
# Programs that benchmarks drive (servers, clients) are built in $1/bench-bin, not run here.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
status=0
for b in "$build"/bench/*; do
	[ -x "$b" ] || continue
	echo "=== $(basename "$b")"
	"$b" || status=1
done
for s in "$top"/tools/bench/*.sh; do
	case "$(basename "$s")" in run.sh|lib.sh) continue ;; esac   # this runner; a sourced library
	echo "=== $(basename "$s" .sh)"
	"$s" "$build" || status=1
done
exit $status
