#!/usr/bin/env bash
# Run every test suite against the build in $1 (default build/test) and print one closing line.
#   unit      build/test/tests/test_*      CUnit, no privilege
#   kernel    build/test/tests/ktest_*     CUnit, real kernel (root); skip with reasons when not
#   node      tests/integration/*.test.mjs the daemon in front of real MCP servers, SDK client
# Set TESTS=<glob> to run a subset (e.g. TESTS='test_jsonrpc*').
# A suite gets SUITE_TIMEOUT seconds (900; the longest takes a few minutes): one that hangs is
# stopped, with its process group, and counted failed, and the rest still run within CI's time.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
export MCPWARDEN_BUILD="$build" MCPWARDEN_TOP="$top"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
node22="$top/tests/node_modules/node/bin/node"
[ -x "$node22" ] || node22=node
pat=${TESTS:-*}
passed=0 failed=0 failures=()

suite_timeout=${SUITE_TIMEOUT:-900}
suite_pid=
# timeout runs each suite in a process group of its own: an interrupt of this script stops it
# (and what it started) there, as a stopped suite's group is stopped whole.
trap '[ -n "$suite_pid" ] && kill -TERM -- "-$suite_pid" 2>/dev/null; exit 130' INT TERM

run_suite() { # name, command...
	local name=$1 rc; shift
	echo "=== $name"
	timeout --kill-after=10 "$suite_timeout" "$@" &
	suite_pid=$!
	wait "$suite_pid"
	rc=$?
	suite_pid=
	case $rc in
	124) echo "$name: stopped after ${suite_timeout}s" ;;
	137) echo "$name: killed (SIGKILL: ${suite_timeout}s and 10 more, or from outside)" ;;
	esac
	if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

for t in "$build"/tests/test_* "$build"/tests/ktest_*; do
	[ -x "$t" ] || continue
	case "$(basename "$t")" in $pat) ;; *) continue ;; esac
	run_suite "$(basename "$t")" "$t"
done
for t in "$top"/tests/integration/*.test.mjs; do
	[ -f "$t" ] || continue
	case "$(basename "$t")" in $pat) ;; *) continue ;; esac
	run_suite "$(basename "$t")" "$node22" --test --test-reporter=spec "$t"
done
for t in "$top"/tests/suites/*.sh; do
	[ -x "$t" ] || continue
	case "$(basename "$t")" in $pat) ;; *) continue ;; esac
	run_suite "$(basename "$t")" "$t"
done

echo
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
