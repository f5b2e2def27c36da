#!/usr/bin/env bash
# proxy_workers: the proxy benchmark with more than one loop (docs/performance.md, `workers: N`):
# mcpwarden with `workers: 2`, a session on each loop, against nginx with 2 workers, wrk with 2
# threads (thread i on loop i's session). proxy_bench.sh, which run.sh runs before it, is the
# one-loop side of the 1 -> 2 comparison. Latency and throughput only: the memory, instruction
# and log store parts are proxy_bench's.
#
#   tools/bench/proxy_workers.sh [BUILD_DIR]      (default build/rel; run by `make bench`)
#
# Environment: BENCH_WORKERS_N (2), BENCH_WORKERS_CONNECTIONS ("16 64"); the rest as
# proxy_bench.sh reads it (BENCH_ROUNDS, BENCH_SECONDS, ...).
set -uo pipefail
BENCH_WORKERS=${BENCH_WORKERS_N:-2} BENCH_CONNECTIONS=${BENCH_WORKERS_CONNECTIONS:-16 64} \
	BENCH_MEMORY=0 BENCH_INSTRUCTIONS=0 BENCH_STORE_COST=0 \
	exec "$(dirname "$0")/proxy_bench.sh" "$@"
