#!/usr/bin/env bash
# CI smoke of the libFuzzer targets (docs/fuzzing.md): build them with clang in build/fuzz,
# replay every seed corpus (the regressions of crashes found before included), then fuzz each
# target for FUZZ_SMOKE_SECONDS (default 5). A crash or a leak fails the suite.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${FUZZ_SMOKE_SECONDS:-5}
if ! command -v "${CLANG:-clang}" >/dev/null; then
	echo "SKIP: fuzz-smoke: no clang (apt-get install clang)"
	exit 0
fi
if ! make -s -j2 MODE=fuzz fuzz-build >/tmp/fuzz-smoke-build.$$ 2>&1; then
	cat /tmp/fuzz-smoke-build.$$
	rm -f /tmp/fuzz-smoke-build.$$
	echo "fuzz-smoke: the fuzz targets do not build"
	exit 1
fi
rm -f /tmp/fuzz-smoke-build.$$
tests/fuzz/run.sh build/fuzz 0 || exit 1
[ "$secs" -gt 0 ] && { tests/fuzz/run.sh build/fuzz "$secs" || exit 1; }
echo "fuzz-smoke: every target replayed its corpus and ran ${secs}s without a crash"
