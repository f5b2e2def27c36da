#!/usr/bin/env bash
# Run every libFuzzer target in $1/fuzz (make MODE=fuzz fuzz-build) for $2 seconds each (0:
# replay the seed corpus only, the CI smoke). New inputs go to a scratch corpus under $1, never
# into the tree's seeds; a crash leaves its input in $1/fuzz-crashes/<target>/ and fails the run.
#   tests/fuzz/run.sh build/fuzz 20      what `make fuzz` does
#   FUZZ_TARGETS='fuzz_sse' ...           only some targets (glob)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/fuzz}" && pwd)
secs=${2:-20}
pat=${FUZZ_TARGETS:-fuzz_*}
fail=0 ran=0
for t in "$build"/fuzz/fuzz_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	case "$name" in $pat) ;; *) continue ;; esac
	seeds="$top/tests/fuzz/corpus/${name#fuzz_}"
	work="$build/fuzz-corpus/${name#fuzz_}"
	crashes="$build/fuzz-crashes/${name#fuzz_}"
	mkdir -p "$work" "$crashes"
	if [ "$secs" -eq 0 ]; then
		args=(-runs=0 "$seeds")
	else
		args=(-max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048
		      -print_final_stats=1 "$work" "$seeds")
	fi
	echo "=== $name (${secs}s)"
	# Leaks are crashes too: the daemon runs for months.
	if ASAN_OPTIONS=detect_leaks=1 "$t" -artifact_prefix="$crashes/" "${args[@]}" \
		> "$build/$name.log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$build/$name.log" | tail -1
	else
		fail=1
		# The report: from the sanitizer's or libFuzzer's first word to the end.
		sed -n '/^==[0-9]*==\|runtime error\|^INFO: libFuzzer.*failed\|deadly signal/,$p' \
			"$build/$name.log" | head -60
		echo "$name: FAILED (input in $crashes/, log $build/$name.log)"
	fi
	ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "no fuzz target in $build/fuzz"; exit 1; }
exit $fail
