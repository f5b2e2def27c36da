#!/usr/bin/env bash
# counters_bench: what fleet-wide counters in Redis (docs/counters.md) add to a governed
# tools/call, against the default SQLite counters, measured side by side in one run; and what
# one Redis core spends per governed call, hence how many sidecars it serves. It reports; it
# never fails on a number.
#
#   tools/bench/counters_bench.sh [BUILD_DIR]      (default build/rel; run by `make bench`)
#
# Two mcpwardens with the proxy bench's config (tools/bench/proxy/mcpwarden.json.in: every
# governance step on, a budget and rate limits on all three levels) in front of the same
# upstream: "sqlite" as it is, "redis" with "counters": {"backend": "redis"} against a local
# redis-server (AOF on, appendfsync everysec, as a production Redis runs). Interleaved rounds
# after a warm-up, medians. Redis's CPU time over the redis rounds / the calls they made is its
# cost per call (one EVALSHA to reserve and take tokens, one to commit).
#
# Environment: BENCH_CONNECTIONS ("1 16 64"), BENCH_ROUNDS (3), BENCH_SECONDS (5),
# BENCH_SIDECAR_RATE (100: governed calls per second one sidecar makes, for the estimate).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
here="$top/tools/bench/proxy"
rate=${BENCH_SIDECAR_RATE:-100}

. "$top/tools/bench/lib.sh"
bench_require "$build/mcpwarden" "$build/bench-bin/mcp_upstream"
command -v redis-server >/dev/null || skip "redis-server is not installed (make deps installs it)"
bench_tmp mcpwarden-counters

start_upstream "$build/bench-bin/mcp_upstream" upstream

mkdir -p "$tmp/redis"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save '' \
	--appendonly yes --appendfsync everysec >"$tmp/redis/log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
wait_for 5 grep -q 'Ready to accept connections' "$tmp/redis/log" ||
	{ echo "redis-server did not start:"; cat "$tmp/redis/log"; exit 1; }

bench_key="mcpw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
key_hash=$(printf %s "$bench_key" | sha256sum | cut -d' ' -f1)

# start_warden NAME COUNTERS_JSON -> url[NAME], wpid[NAME]
declare -A url sid key wpid
start_warden() {
	local name=$1 dir="$tmp/$1"
	mkdir -p "$dir/state"
	sed -e "s|@STATE_DIR@|$dir/state|" -e "s|@UPSTREAM_PORT@|$up_port|" \
	    -e "s|@KEY_HASH@|$key_hash|" -e "s|@MAX_SESSIONS@|100|" -e "s|@LOGS@|true|" \
	    -e "s|@MORE_KEYS@||" "$here/mcpwarden.json.in" | sed '$d' >"$dir/mcpwarden.json"
	printf '  ,"counters": %s\n}\n' "$2" >>"$dir/mcpwarden.json"
	"$build/mcpwarden" -c "$dir/mcpwarden.json" >"$dir/records.jsonl" 2>"$dir/mcpwarden.log" &
	wpid[$name]=$!
	pids+=($!)
	wait_for 30 grep -q 'listening on http' "$dir/mcpwarden.log" ||
		{ echo "mcpwarden ($name) did not start:"; cat "$dir/mcpwarden.log"; exit 1; }
	url[$name]=$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1|p' "$dir/mcpwarden.log" | head -1)
	wait_for 15 curl -sf -o /dev/null "${url[$name]%/mcp}/readyz" ||
		{ echo "mcpwarden ($name) not ready:"; cat "$dir/mcpwarden.log"; exit 1; }
	key[$name]=$bench_key
}
start_warden sqlite '{"backend": "sqlite"}'
start_warden redis "{\"backend\": \"redis\", \"url\": \"redis://127.0.0.1:$redis_port/0\"}"

# open_session URL KEY -> session id (initialize, initialized, one checked tools/call)
open_session() {
	local h=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
		 -H "Authorization: Bearer $2") s
	s=$(curl -s -D - -o /dev/null "${h[@]}" -X POST "$1" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"counters_bench","version":"1"}}}' |
		sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^[:space:]]*\).*/\1/p')
	[ -n "$s" ] || return 1
	h+=(-H "Mcp-Session-Id: $s" -H 'MCP-Protocol-Version: 2025-06-18')
	curl -s -o /dev/null "${h[@]}" -X POST "$1" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
	curl -s "${h[@]}" -X POST "$1" -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"check"}}}' |
		grep -q '"result"' || return 1
	echo "$s"
}
for t in sqlite redis; do
	sid[$t]=$(open_session "${url[$t]}" "${key[$t]}") ||
		{ echo "no session on $t:"; tail -5 "$tmp/$t/mcpwarden.log"; exit 1; }
done

bench() {
	MCP_SESSION=${sid[$1]} MCP_KEY=${key[$1]} MCP_PATH=/mcp \
		wrk -t1 -c"$2" -d"$3"s --timeout 10s -s "$here/call.lua" "${url[$1]}" 2>&1 |
		sed -n 's/^RESULT //p'
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

echo "counters_bench: $(nproc) cores; sqlite ${url[sqlite]}, redis ${url[redis]} (redis-server :$redis_port)"
echo "counters_bench: connections: $conns; $rounds interleaved rounds of ${secs}s each, medians"
declare -A res
warn=()
for c in $conns; do
	echo "--- $c connection(s)"
	for t in sqlite redis; do bench "$t" "$c" 1 >/dev/null; done
	for r in $(seq "$rounds"); do
		for t in sqlite redis; do
			[ $t = redis ] && r0=$(cpu_ticks "$redis_pid")
			out=$(bench "$t" "$c" "$secs")
			[ -n "$out" ] || { warn+=("$t, $c connections, round $r: no result"); continue; }
			bad=$(( $(field errors "$out") + $(field status "$out") + $(field bad "$out") ))
			[ "$bad" = 0 ] || warn+=("$t, $c connections, round $r: $bad failed answers")
			printf '  round %d %-6s %9.0f req/s  p50 %6d µs  p99 %6d µs\n' "$r" "$t" \
				"$(field rps "$out")" "$(field p50 "$out")" "$(field p99 "$out")"
			for m in p50 p99 rps; do res[$t,$c,$m]+=" $(field $m "$out")"; done
			if [ $t = redis ]; then
				r1=$(cpu_ticks "$redis_pid")
				res[redis,$c,cpu]+=" $(awk -v a="$r0" -v b="$r1" -v n="$(field requests "$out")" \
					-v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz / n * 1e6 }')"
			fi
		done
	done
done

echo
echo "counters_bench: medians (µs; added = redis - sqlite, per round medians)"
printf '%6s | %8s %8s %9s | %8s %8s %9s | %9s %8s | %12s %14s\n' conns "sql p50" "sql p99" "sql req/s" \
	"red p50" "red p99" "red req/s" "added p50" "req/s" "redis µs/call" "calls/s/core"
for c in $conns; do
	sp=$(median <<<"${res[sqlite,$c,p50]:-}"); s9=$(median <<<"${res[sqlite,$c,p99]:-}")
	sr=$(median <<<"${res[sqlite,$c,rps]:-}")
	rp=$(median <<<"${res[redis,$c,p50]:-}"); r9=$(median <<<"${res[redis,$c,p99]:-}")
	rr=$(median <<<"${res[redis,$c,rps]:-}")
	cu=$(median %.2f <<<"${res[redis,$c,cpu]:-}")
	printf '%6s | %8s %8s %9s | %8s %8s %9s | %9s %8s | %12s %14s\n' "$c" "$sp" "$s9" "$sr" \
		"$rp" "$r9" "$rr" "$(awk -v a="$rp" -v b="$sp" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')" \
		"$(awk -v a="$rr" -v b="$sr" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "n/a" }')" \
		"$cu" "$(awk -v u="$cu" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "n/a" }')"
done
last=$(for c in $conns; do :; done; echo "$c")
cu=$(median %.2f <<<"${res[redis,$last,cpu]:-}")
echo
awk -v u="$cu" -v r="$rate" 'BEGIN { if (u + 0 > 0)
	printf "counters_bench: one Redis core serves about %.0f governed calls/s: about %.0f sidecars at %d calls/s each\n", 1e6 / u, 1e6 / u / r, r;
	else print "counters_bench: no Redis cost measured" }'
for w in "${warn[@]}"; do echo "WARN: $w"; done
exit 0
