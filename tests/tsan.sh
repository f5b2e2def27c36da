#!/usr/bin/env bash
# ThreadSanitizer run (make tsan): the suites that exercise mcpwarden's threads, against the
# build in $1 (default build/tsan). What runs threads: the store's writer and checkpointer
# (store/store_writer.c), the log writer (base/log.c), the log store's writer
# (observe/logstore.c), the logs API's reader (observe/logquery.c), the span exporter
# (observe/trace_export.c), the resolver's DNS thread (enforce/resolver.c) and the reload's
# validation thread (main.c), and loops on several threads side by side (test_loops: what
# `workers: N` will share; test_gate: their admissions; test_epoch: frees deferred past
# them; test_trace: spans while tracing restarts; test_router: the catalogue and what the
# gate makes of it read while it is refreshed; workers.test.mjs: the daemon with `workers: 2`). Any report fails the suite: TSAN's exit code for the unit tests, and for the daemon
# the integration tests' clean-exit checks (exit code 66 and "ThreadSanitizer" on stderr,
# tests/integration/lib.mjs).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/tsan}
# halt_on_error=0: report every race of a run, then exit 66; second_deadlock_stack for locks.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:second_deadlock_stack=1:suppressions=$top/tests/tsan.supp}
suites=(test_store test_store_durability test_budget test_gate test_logstore test_logquery test_loops test_epoch
	test_trace test_router test_router_loops test_integrity test_http_handoff ktest_enforcer
	reload.test.mjs durability.test.mjs slow-log-reader.test.mjs faults-disk.test.mjs
	enforcement.test.mjs logstore.test.mjs logs-api.test.mjs tracing.test.mjs workers.test.mjs)
# And gateway suites with two loops (MCPWARDEN_TEST_WORKERS, tests/integration/lib.mjs: the
# daemons whose configuration more than one loop serves): listed as workers2:SUITE.
for w in gateway-httpup gateway-splice gateway-faults tool-integrity stateless-pool tasks oauth; do
	suites+=("workers2:$w.test.mjs")
done
failed=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for s in "${suites[@]}"; do
	n=
	case "$s" in workers2:*) n=2 s=${s#workers2:} ;; esac
	if MCPWARDEN_TEST_WORKERS=$n TESTS="$s" "$top/tests/run.sh" "$build" > "$out" 2>&1; then
		tail -n 40 "$out"
	else
		failed+=("${n:+workers$n:}$s")
		# The whole output of a failing suite: the assertion or the sanitizer's report is
		# rarely in its last lines.
		cat "$out"
	fi
done
echo
[ ${#failed[@]} -gt 0 ] && echo "tsan: failed suites: ${failed[*]}"
echo "tsan: ${#suites[@]} suites, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
