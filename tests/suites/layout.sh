#!/usr/bin/env bash
# The shape of the tree (docs/architecture.md): no include cycle between modules, and no C
# file that grew a second job (over 1,000 lines).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
fail=0
if ! python3 scripts/include-cycles.py; then
	fail=1
fi
while read -r n f; do
	[ "$f" = total ] && continue
	if [ "$n" -gt 1000 ]; then
		echo "layout: $f has $n lines (over 1,000: split it by job)"
		fail=1
	fi
done < <(find userspace tools bpf -name '*.c' -print0 | xargs -0 wc -l)
[ $fail -eq 0 ] && echo "layout: no include cycle; every C file under 1,000 lines"
exit $fail
