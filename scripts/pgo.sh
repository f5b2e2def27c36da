#!/usr/bin/env bash
# Build the profile-guided release build in build/pgo (`make pgo`; make bench and make image
# use it). docs/performance.md says why: the request path runs through enough code that the
# instruction cache misses on it; laid out from a profile, the hot code sits together.
#
#   1. an instrumented build (MODE=pgo PGO_PHASE=gen) in build/pgo;
#   2. a training run: the proxy benchmark's own workload (tools/bench/proxy_bench.sh, short:
#      sessions opened, tools/call with every governance step on, at 1, 16 and 64
#      connections), which leaves a profile (.gcda) beside each object when mcpwarden exits;
#   3. the objects removed, the profiles kept, and the same tree built again from them
#      (PGO_PHASE=use): the daemon, wardenctl, the BPF object, the benchmarks.
# The training needs what make bench needs (wrk, nginx, node, curl: make deps installs them).
# Environment: PGO_SECONDS (2), the length of each training run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
b=build/pgo
secs=${PGO_SECONDS:-2}
# A make of our own, with its own jobs: the caller's jobserver is not ours to share.
mk() { env -u MAKEFLAGS -u MFLAGS make --no-print-directory -j"$(nproc)" MODE=pgo "$@"; }

rm -rf "$b"
mkdir -p "$b"
echo "pgo: instrumented build in $b"
mk PGO_PHASE=gen "$b/mcpwarden" "$b/bench-bin/mcp_upstream" >"$b/gen.log" 2>&1 ||
	{ tail -30 "$b/gen.log"; echo "pgo: the instrumented build failed" >&2; exit 1; }

echo "pgo: training run (tools/bench/proxy_bench.sh, ${secs}s at 1, 16 and 64 connections)"
BENCH_CONNECTIONS="1 16 64" BENCH_ROUNDS=1 BENCH_SECONDS="$secs" BENCH_STORE_COST=0 \
	BENCH_MEMORY=0 BENCH_INSTRUCTIONS=0 tools/bench/proxy_bench.sh "$b" >"$b/train.log" 2>&1 ||
	{ tail -30 "$b/train.log"; echo "pgo: the training run failed" >&2; exit 1; }
grep -q '^| 64 |' "$b/train.log" ||
	{ tail -30 "$b/train.log"; echo "pgo: the training run measured nothing" >&2; exit 1; }
profiles=$(find "$b/obj" -name '*.gcda' | wc -l)
[ "$profiles" -gt 0 ] || { echo "pgo: mcpwarden left no profile" >&2; exit 1; }

# The daemon is what is measured: the benchmark's upstream gets no profile of its own.
find "$b" -name '*.o' -delete
find "$b/bench-bin" -name '*.gcda' -delete
rm -f "$b/libwarden.a" "$b/mcpwarden" "$b"/bench-bin/* "$b/train.log"
echo "pgo: build from $profiles profiles"
mk PGO_PHASE=use all bench-build >"$b/use.log" 2>&1 ||
	{ tail -30 "$b/use.log"; echo "pgo: the build from the profile failed" >&2; exit 1; }
echo "pgo: $b/mcpwarden built"
