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
# redis-server (AOF on, appendfsync everysec, as a production Redis runs), and "cluster" with
# "counters": {"backend": "redis", "cluster": [...]} against three redis-servers made a Redis
# Cluster of three masters (no replicas; AOF as the standalone one). Interleaved rounds after a
# warm-up, medians. Redis's CPU time over a backend's rounds (summed over the cluster's nodes)
# / the calls they made is its cost per call (one EVALSHA to reserve and take tokens, one to
# commit; on a cluster a call's keys may live on two masters: the team's and the key's).
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

# start_redis DIR PORT [ARGS...]: a redis-server (AOF everysec) in $tmp/DIR; its pid in $rpid.
start_redis() {
	local dir="$tmp/$1" port=$2
	shift 2
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
		--appendonly yes --appendfsync everysec "$@" >"$dir/log" 2>&1 &
	rpid=$!
	pids+=($rpid)
	wait_for 5 grep -q 'Ready to accept connections' "$dir/log" ||
		{ echo "redis-server ($1) did not start:"; cat "$dir/log"; exit 1; }
}
# A free port whose cluster bus port (+10000) is free too.
cluster_port() {
	local p
	for _ in $(seq 20); do
		p=$(free_port)
		[ "$p" -lt 55535 ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null &&
			{ echo "$p"; return 0; }
	done
	return 1
}
declare -A rpids        # backend -> the redis-server pids whose CPU time is its cost
redis_port=$(free_port)
start_redis redis "$redis_port"
rpids[redis]=$rpid

backends="sqlite redis"
cluster_seeds=()
if command -v redis-cli >/dev/null; then
	for i in 1 2 3; do
		p=$(cluster_port) || { echo "no free port pair for the cluster"; exit 1; }
		start_redis "cluster$i" "$p" --cluster-enabled yes --cluster-config-file nodes.conf
		rpids[cluster]+=" $rpid"
		cluster_seeds+=("127.0.0.1:$p")
	done
	redis-cli --cluster create "${cluster_seeds[@]}" --cluster-replicas 0 --cluster-yes \
		>"$tmp/cluster-create.log" 2>&1 ||
		{ echo "redis-cli --cluster create failed:"; cat "$tmp/cluster-create.log"; exit 1; }
	cluster_ok() {
		local s
		for s in "${cluster_seeds[@]}"; do
			redis-cli -p "${s##*:}" cluster info | grep -q 'cluster_state:ok' || return 1
		done
	}
	wait_for 20 cluster_ok || { echo "the cluster did not come up"; exit 1; }
	backends+=" cluster"
else
	echo "counters_bench: redis-cli is not installed: no cluster column (make deps installs it)"
fi

bench_key="mcpw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
key_hash=$(printf %s "$bench_key" | sha256sum | cut -d' ' -f1)

# start_warden NAME COUNTERS_JSON -> url[NAME], wpid[NAME]
declare -A url sid key wpid
start_warden() {
	local name=$1 dir="$tmp/$1"
	mkdir -p "$dir/state"
	sed -e "s|@STATE_DIR@|$dir/state|" -e "s|@UPSTREAM_PORT@|$up_port|" \
	    -e "s|@KEY_HASH@|$key_hash|" -e "s|@MAX_SESSIONS@|100|" -e "s|@LOGS@|true|" \
	    -e "s|@WORKERS@|1|" \
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
# /readyz (start_warden waits for it) fails under fail_closed until every slot has a master up.
case " $backends " in *" cluster "*)
	start_warden cluster "{\"backend\": \"redis\", \"cluster\": [$(printf '"%s",' "${cluster_seeds[@]}" | sed 's/,$//')]}"
esac

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
for t in $backends; do
	sid[$t]=$(open_session "${url[$t]}" "${key[$t]}") ||
		{ echo "no session on $t:"; tail -5 "$tmp/$t/mcpwarden.log"; exit 1; }
done

bench() {
	MCP_SESSION=${sid[$1]} MCP_KEY=${key[$1]} MCP_PATH=/mcp \
		wrk -t1 -c"$2" -d"$3"s --timeout 10s -s "$here/call.lua" "${url[$1]}" 2>&1 |
		sed -n 's/^RESULT //p'
}
# cpu_ticks PID...: their user + system time, summed (clock ticks)
cpu_ticks() {
	local p t=0
	for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }'))); done
	echo "$t"
}

echo "counters_bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); sqlite ${url[sqlite]}, redis ${url[redis]} (redis-server :$redis_port)${url[cluster]:+, cluster ${url[cluster]} (${cluster_seeds[*]})}"
echo "counters_bench: connections: $conns; $rounds interleaved rounds of ${secs}s each, medians"
declare -A res
warn=()
for c in $conns; do
	echo "--- $c connection(s)"
	for t in $backends; do bench "$t" "$c" 1 >/dev/null; done
	for r in $(seq "$rounds"); do
		for t in $backends; do
			[ $t = sqlite ] || r0=$(cpu_ticks ${rpids[$t]})
			out=$(bench "$t" "$c" "$secs")
			[ -n "$out" ] || { warn+=("$t, $c connections, round $r: no result"); continue; }
			bad=$(( $(field errors "$out") + $(field status "$out") + $(field bad "$out") ))
			[ "$bad" = 0 ] || warn+=("$t, $c connections, round $r: $bad failed answers")
			printf '  round %d %-7s %9.0f req/s  p50 %6d µs  p99 %6d µs\n' "$r" "$t" \
				"$(field rps "$out")" "$(field p50 "$out")" "$(field p99 "$out")"
			for m in p50 p99 rps; do res[$t,$c,$m]+=" $(field $m "$out")"; done
			if [ $t != sqlite ]; then
				r1=$(cpu_ticks ${rpids[$t]})
				res[$t,$c,cpu]+=" $(awk -v a="$r0" -v b="$r1" -v n="$(field requests "$out")" \
					-v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz / n * 1e6 }')"
			fi
		done
	done
done

echo
echo "counters_bench: medians (µs; added = backend - sqlite; Redis µs/call summed over its nodes)"
printf '%-7s %6s | %8s %8s %9s | %8s %8s %9s | %9s %8s | %13s %14s\n' backend conns "sql p50" \
	"sql p99" "sql req/s" "p50" "p99" "req/s" "added p50" "req/s" "Redis µs/call" "calls/s/core"
last=$(for c in $conns; do :; done; echo "$c")
declare -A lastcpu
for t in $backends; do
	[ $t = sqlite ] && continue
	for c in $conns; do
		sp=$(median <<<"${res[sqlite,$c,p50]:-}"); s9=$(median <<<"${res[sqlite,$c,p99]:-}")
		sr=$(median <<<"${res[sqlite,$c,rps]:-}")
		rp=$(median <<<"${res[$t,$c,p50]:-}"); r9=$(median <<<"${res[$t,$c,p99]:-}")
		rr=$(median <<<"${res[$t,$c,rps]:-}")
		cu=$(median %.2f <<<"${res[$t,$c,cpu]:-}")
		[ "$c" = "$last" ] && lastcpu[$t]=$cu
		printf '%-7s %6s | %8s %8s %9s | %8s %8s %9s | %9s %8s | %13s %14s\n' "$t" "$c" "$sp" \
			"$s9" "$sr" "$rp" "$r9" "$rr" \
			"$(awk -v a="$rp" -v b="$sp" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')" \
			"$(awk -v a="$rr" -v b="$sr" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "n/a" }')" \
			"$cu" "$(awk -v u="$cu" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "n/a" }')"
	done
done
echo
awk -v u="${lastcpu[redis]:-}" -v r="$rate" 'BEGIN { if (u + 0 > 0)
	printf "counters_bench: one Redis core serves about %.0f governed calls/s: about %.0f sidecars at %d calls/s each\n", 1e6 / u, 1e6 / u / r, r;
	else print "counters_bench: no Redis cost measured" }'
# A master is one core (Redis runs commands on one thread): three masters, three cores.
[ -n "${lastcpu[cluster]:-}" ] && awk -v u="${lastcpu[cluster]}" -v r="$rate" 'BEGIN { if (u + 0 > 0)
	printf "counters_bench: a 3-master cluster (a core each) serves about %.0f governed calls/s: about %.0f sidecars at %d calls/s each, at %.2f µs of Redis CPU per call\n", 3e6 / u, 3e6 / u / r, r, u;
	else print "counters_bench: no cluster cost measured" }'
for w in "${warn[@]}"; do echo "WARN: $w"; done
exit 0
