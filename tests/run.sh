#!/usr/bin/env bash
# Run every test suite against the build in $1 (default build/test) and print one closing line.
#   unit      build/test/tests/test_*      CUnit, no privilege
#   kernel    build/test/tests/ktest_*     CUnit, real kernel (root); skip with reasons when not
#   node      tests/integration/*.test.mjs the daemon in front of real MCP servers, SDK client
# Set TESTS=<glob> to run a subset (e.g. TESTS='test_jsonrpc*').
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

run_suite() { # name, command...
	local name=$1; shift
	echo "=== $name"
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
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
