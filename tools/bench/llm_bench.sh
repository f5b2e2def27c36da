#!/usr/bin/env bash
# llm_bench: what the LLM route adds to a chat completion (key, policy, rate limits, budget
# reservation, the durable charge, the record), against nginx as a plain keep-alive reverse
# proxy in front of the same provider, side by side in one run (docs/performance.md). It
# reports; it never fails on a number.
#
#   tools/bench/llm_bench.sh [BUILD_DIR]        (default build/rel; run by `make bench`)
#
#   direct     wrk -> provider                        the baseline
#   nginx      wrk -> nginx (1 worker) -> provider    a bare reverse proxy
#   mcpwarden  wrk -> mcpwarden /v1 -> provider       governed: priced model, budget, limits
# Interleaved rounds per connection count; medians. Environment: BENCH_CONNECTIONS ("1 16 64"),
# BENCH_ROUNDS (3), BENCH_SECONDS (5).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
here="$top/tools/bench"
. "$top/tools/bench/lib.sh"
bench_require "$build/mcpwarden" "$build/bench-bin/llm_upstream"
bench_tmp mcpwarden-llm-bench
start_upstream "$build/bench-bin/llm_upstream" provider
start_nginx /v1/chat/completions '{}'

key="mcpw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
mkdir -p "$tmp/warden/state"
cat >"$tmp/warden/mcpwarden.json" <<JSON
{"listen": "127.0.0.1:0", "state_dir": "$tmp/warden/state", "upstreams": [],
 "keys": [{"id": "bench", "hash": "sha256:$hash", "policy": "bench"}],
 "policies": {"bench": {"llm": {"providers": {"allow": ["p"]}}}},
 "budgets": {"key:bench": [{"name": "bench", "limit": "1000000", "period": "monthly"}]},
 "llm": {"rate_limits": {"default": {"key": {"requests": 1000000, "per": "second"}}}},
 "providers": [{"name": "p", "base_url": "http://127.0.0.1:$up_port/v1",
   "models": {"bench": {"input": "0.15", "output": "0.60"}}}]}
JSON
"$build/mcpwarden" -c "$tmp/warden/mcpwarden.json" >"$tmp/warden/records.jsonl" 2>"$tmp/warden/log" &
pids+=($!)
wait_for 30 grep -q 'listening on http' "$tmp/warden/log" ||
	{ echo "mcpwarden did not start:"; cat "$tmp/warden/log"; exit 1; }
w_base=$(sed -n 's|.*listening on \(http://[^ /]*\).*|\1|p' "$tmp/warden/log" | head -1)

declare -A url k
url[direct]="http://127.0.0.1:$up_port"
url[nginx]="http://127.0.0.1:$ng_port"
url[mcpwarden]=$w_base
k[mcpwarden]=$key
code=$(curl -s -o "$tmp/check" -w '%{http_code}' "$w_base/v1/chat/completions" -H "Authorization: Bearer $key" \
	-H 'Content-Type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"x"}]}')
[ "$code" = 200 ] || { echo "mcpwarden /v1/chat/completions: HTTP $code: $(head -c 300 "$tmp/check")"; exit 1; }

bench() {
	LLM_KEY=${k[$1]:-} wrk -t1 -c"$2" -d"$3"s --timeout 10s -s "$here/llm/chat.lua" "${url[$1]}" 2>&1 |
		sed -n 's/^RESULT //p'
}

echo "llm_bench: $(nproc) cores; provider :$up_port, nginx :$ng_port, mcpwarden $w_base"
echo "llm_bench: connections: $conns; $rounds interleaved rounds of ${secs}s each, medians"
declare -A res
for c in $conns; do
	for t in direct nginx mcpwarden; do bench $t "$c" 1 >/dev/null; done   # warm-up
	for ((r = 0; r < rounds; r++)); do
		for t in direct nginx mcpwarden; do
			out=$(bench $t "$c" "$secs")
			for m in rps p50 p99; do res[$t,$c,$m]+="$(field $m "$out") "; done
			bad=$(field bad "$out"); errs=$(field errors "$out")
			[ "${bad:-0}" = 0 ] && [ "${errs:-0}" = 0 ] || echo "  warning: $t c=$c: bad=$bad errors=$errs"
		done
	done
done
printf '%-6s %-10s %10s %10s %10s %14s\n' conns target req/s p50_us p99_us "p50 added_us"
for c in $conns; do
	base=$(median <<<"${res[direct,$c,p50]}")
	for t in direct nginx mcpwarden; do
		p50=$(median <<<"${res[$t,$c,p50]}")
		printf '%-6s %-10s %10s %10s %10s %14s\n' "$c" "$t" "$(median '%.0f' <<<"${res[$t,$c,rps]}")" \
			"$p50" "$(median <<<"${res[$t,$c,p99]}")" \
			"$([ "$p50" != n/a ] && [ "$base" != n/a ] && echo $((p50 - base)) || echo n/a)"
	done
done
