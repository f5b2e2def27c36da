#!/usr/bin/env bash
# proxy_bench: what mcpwarden adds to a governed tools/call, against nginx as a plain keep-alive
# reverse proxy in front of the same upstream, measured side by side in one run
# (docs/performance.md). It reports; it never fails on a number.
#
#   tools/bench/proxy_bench.sh [BUILD_DIR]      (default build/rel; run by `make bench`)
#
# Three targets, all in front of (or being) build/rel/bench-bin/mcp_upstream:
#   direct     wrk -> upstream                        the baseline
#   nginx      wrk -> nginx (1 worker) -> upstream    the floor: a bare reverse proxy
#   mcpwarden  wrk -> mcpwarden -> upstream           every governance step on
# For each connection count, interleaved rounds (direct, nginx, mcpwarden, again ...) after a
# warm-up; medians of the rounds. Then one extra run per proxy, not timed, to count system
# calls (perf) and context switches (/proc) per call. Then the memory part: mcpwarden with a
# 100k-key config and 10k open sessions, before and after SIGHUP reloads.
#
# Environment: BENCH_CONNECTIONS ("1 16 64"), BENCH_ROUNDS (5), BENCH_SECONDS (5),
# BENCH_MEMORY (1; 0 skips the memory part), BENCH_KEYS (100000), BENCH_SESSIONS (10000),
# BENCH_TRACING (0; 1: mcpwarden exports a span per call and per upstream call, every call
# sampled, to a local OTLP receiver that counts and discards them: docs/tracing.md).
# BENCH_LOGS (1: the log store on, as by default; 0: off),
# BENCH_STORE_COST (1; with the store on, a fourth target "nostore": a second mcpwarden, the
# same but with the log store off, in the same interleaved rounds, and then in
# BENCH_STORE_PAIRS (12) pairs of short runs of BENCH_STORE_SECONDS (2) each, in ABBA order,
# so that what the store costs is a ratio of paired runs (issue 11: <= 5% req/s); 0 skips it;
# BENCH_STORE_AA=1 turns the store off in both: the method's own spread, an A/A control),
# BENCH_PROFILE (a file: one more untimed run of each proxy at the last connection count under
# `perf record -g`, mcpwarden's report written there and nginx's to FILE.nginx, each
# recording beside it as .data; where the CPU of a call goes),
# BENCH_INSTRUCTIONS (1; 0 skips it: one more mcpwarden under valgrind's callgrind, 16
# connections, counting the instructions its event loop runs per call: a figure that does
# not move with the machine's load, for comparing two builds; BENCH_INSTRUCTIONS=FILE also
# keeps callgrind's output there, for callgrind_annotate), BENCH_INSTRUCTIONS_CONNECTIONS (16:
# the connections of that run), BENCH_CACHE_SIM (0; 1: callgrind also simulates the host's
# first-level caches and the line gives the misses per call: instruction fetches, data reads,
# data writes; valgrind runs about twice as slow then), BENCH_TEXT_BYTES (0: the echo's text
# is "hello from wrk"; N: N bytes of words, sent as the argument and answered back, for a
# tool's larger answer), BENCH_WORKERS (1: one loop, nginx one worker; N: mcpwarden with
# `workers: N` and a session on each loop, nginx with N workers, wrk with N threads, thread i
# on loop i's session: the 1 -> N loops comparison; docs/performance.md).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
here="$top/tools/bench/proxy"
memory=${BENCH_MEMORY:-1}
workers=${BENCH_WORKERS:-1}
nkeys=${BENCH_KEYS:-100000}
nsessions=${BENCH_SESSIONS:-10000}
tracing=${BENCH_TRACING:-0}
logs=$([ "${BENCH_LOGS:-1}" = 0 ] && echo false || echo true)
profile=${BENCH_PROFILE:-}
instructions=${BENCH_INSTRUCTIONS:-1}
instr_conns=${BENCH_INSTRUCTIONS_CONNECTIONS:-16}
cache_sim=${BENCH_CACHE_SIM:-0}
store_cost=$([ "$logs" = true ] && [ "${BENCH_STORE_COST:-1}" != 0 ] && echo 1 || echo 0)
store_pairs=${BENCH_STORE_PAIRS:-12}
store_secs=${BENCH_STORE_SECONDS:-2}
store_aa=${BENCH_STORE_AA:-0}

# Five rounds, not lib.sh's three: one round's added p50 here spreads by a fifth either way
# (docs/performance.md), and a median of three moved with it.
: "${BENCH_ROUNDS:=5}"
. "$top/tools/bench/lib.sh"
bench_require "$build/mcpwarden" "$build/bench-bin/mcp_upstream"
bench_tmp mcpwarden-bench

# ---------------------------------------------------------------- helpers

# post URL BODY [SESSION [KEY]] -> writes $tmp/h (headers) and $tmp/b (body), prints the status.
post() {
	local args=(-s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' -X POST "$1" -d "$2"
		    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
	[ -n "${3:-}" ] && args+=(-H "Mcp-Session-Id: $3" -H 'MCP-Protocol-Version: 2025-06-18')
	[ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
	curl "${args[@]}"
}

# open_session URL [KEY] -> prints the session id, after initialize, notifications/initialized
# and one tools/call that must answer with a result.
open_session() {
	local url=$1 key=${2:-} sid code
	code=$(post "$url" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"proxy_bench","version":"1"}}}' "" "$key")
	sid=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$tmp/h")
	if [ "$code" != 200 ] || [ -z "$sid" ]; then
		echo "initialize on $url: HTTP $code: $(head -c 300 "$tmp/b")" >&2
		return 1
	fi
	code=$(post "$url" '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$sid" "$key")
	[ "$code" = 202 ] || { echo "notifications/initialized on $url: HTTP $code" >&2; return 1; }
	code=$(post "$url" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"check"}}}' "$sid" "$key")
	if [ "$code" != 200 ] || ! grep -q '"result"' "$tmp/b"; then
		echo "tools/call on $url: HTTP $code: $(head -c 300 "$tmp/b")" >&2
		return 1
	fi
	echo "$sid"
}

# status_kb PID FIELD -> the field of /proc/PID/status in kB (VmRSS, VmHWM).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# ctxt PID -> voluntary + involuntary context switches of every thread of PID.
ctxt() {
	cat /proc/"$1"/task/*/status 2>/dev/null |
		awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# bench NAME CONNS SECONDS -> runs wrk on target NAME, prints its RESULT line's fields.
declare -A url sid key
bench() {
	MCP_SESSION=${sid[$1]} MCP_KEY=${key[$1]:-} MCP_PATH=/mcp MCP_TEXT_BYTES=${BENCH_TEXT_BYTES:-0} \
		"${timed[@]}" wrk -t"$workers" -c"$2" -d"$3"s --timeout 10s -s "$here/call.lua" "${url[$1]}" 2>&1 |
		sed -n 's/^RESULT //p'
}

# ---------------------------------------------------------------- start the three targets

start_upstream "$build/bench-bin/mcp_upstream" upstream
url[direct]="http://127.0.0.1:$up_port/mcp"
start_nginx /mcp '{"jsonrpc":"2.0","method":"notifications/x"}'
url[nginx]="http://127.0.0.1:$ng_port/mcp"
ng_worker=$(pgrep -P "$ng_pid" | head -1)

# A key as an agent gets one (docs/policy.md); the config holds only its hash.
bench_key="mcpw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
key_hash=$(printf %s "$bench_key" | sha256sum | cut -d' ' -f1)

# start_warden NAME CONFIG_DIR MORE_KEYS MAX_SESSIONS [ARGS...] -> sets w_pid and w_url
start_warden() {
	local name=$1 dir=$2 more=$3 max=$4
	shift 4
	mkdir -p "$dir/state"
	sed -e "s|@STATE_DIR@|$dir/state|" -e "s|@UPSTREAM_PORT@|$up_port|" \
	    -e "s|@KEY_HASH@|$key_hash|" -e "s|@MAX_SESSIONS@|$max|" -e "s|@LOGS@|${w_logs:-$logs}|" \
	    -e "s|@WORKERS@|${w_workers:-$workers}|" \
	    -e "/@MORE_KEYS@/{
		s|@MORE_KEYS@||
		r $more
	    }" "$here/mcpwarden.json.in" >"$dir/mcpwarden.json"
	# Decision records (stdout) go to a file, as a deployment ships them to its log pipeline.
	env "${warden_env[@]}" ${warden_wrap[@]+"${warden_wrap[@]}"} "$build/mcpwarden" -c "$dir/mcpwarden.json" "$@" \
		>"$dir/records.jsonl" 2>"$dir/mcpwarden.log" &
	w_pid=$!
	pids+=($w_pid)
	if ! wait_for 30 grep -q 'listening on http' "$dir/mcpwarden.log"; then
		echo "mcpwarden ($name) did not start:"; cat "$dir/mcpwarden.log"; return 1
	fi
	w_url=$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1|p' "$dir/mcpwarden.log" | head -1)
	wait_for 15 curl -sf -o /dev/null "${w_url%/mcp}/readyz" ||
		{ echo "mcpwarden ($name) not ready:"; cat "$dir/mcpwarden.log"; return 1; }
}

# BENCH_TRACING=1: an OTLP/HTTP receiver that discards what it gets, counting requests and bytes.
warden_env=()
if [ "$tracing" = 1 ]; then
	otlp_port=$(free_port)
	node -e 'const [port, out] = process.argv.slice(1); let n = 0, bytes = 0;
		require("http").createServer((q, r) => { q.on("data", (d) => { bytes += d.length; });
			q.on("end", () => { n++; require("fs").writeFileSync(out, `${n} ${bytes}`);
				r.writeHead(200, { "Content-Type": "application/x-protobuf" }); r.end(); });
		}).listen(port, "127.0.0.1");' "$otlp_port" "$tmp/otlp-count" &
	pids+=($!)
	wait_for 5 curl -sf -o /dev/null -X POST "http://127.0.0.1:$otlp_port/v1/traces" ||
		{ echo "the OTLP receiver did not start"; exit 1; }
	warden_env=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port"
		OTEL_TRACES_SAMPLER=always_on OTEL_SERVICE_NAME=proxy-bench)
fi

: >"$tmp/nokeys"
# BENCH_STORE_AA: the "mcpwarden" target without the store too; its pairs with "nostore" then
# measure how far two identical instances differ here.
main_logs=$logs
[ "$store_cost" = 1 ] && [ "$store_aa" = 1 ] && main_logs=false
w_logs=$main_logs start_warden proxy "$tmp/warden" "$tmp/nokeys" 10000 || exit 1
warden_pid=$w_pid
url[mcpwarden]=$w_url
key[mcpwarden]=$bench_key

targets="direct nginx mcpwarden"
if [ "$store_cost" = 1 ]; then
	w_logs=false start_warden nostore "$tmp/nostore" "$tmp/nokeys" 10000 || exit 1
	nostore_pid=$w_pid
	url[nostore]=$w_url
	key[nostore]=$bench_key
	targets+=" nostore"
fi
# loop_sessions URL KEY -> one session on each of the $workers loops, comma-separated in loop
# order (a session's id ends with its loop's two hex digits; the kernel picks the loop).
loop_sessions() {
	local -a by
	local s n=0 i
	for ((i = 0; i < 40 * workers && n < workers; i++)); do
		s=$(open_session "$1" "$2") || return 1
		local l=$((16#${s: -2}))
		[ -z "${by[$l]:-}" ] && by[$l]=$s && n=$((n + 1))
	done
	[ "$n" = "$workers" ] || { echo "no session on every one of $workers loops" >&2; return 1; }
	(IFS=,; echo "${by[*]}")
}
for t in $targets; do
	if [ "$workers" -gt 1 ] && [ "$t" != direct ] && [ "$t" != nginx ]; then
		sid[$t]=$(loop_sessions "${url[$t]}" "${key[$t]:-}") || exit 1
	else
		sid[$t]=$(open_session "${url[$t]}" "${key[$t]:-}") || exit 1
	fi
done

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "proxy_bench: $(nproc) cores; upstream :$up_port, nginx :$ng_port ($workers worker(s)), mcpwarden ${url[mcpwarden]} ($workers loop(s)); wrk $workers thread(s)"
echo "proxy_bench: connections: $conns; $rounds interleaved rounds of ${secs}s each, medians"

# ---------------------------------------------------------------- latency and throughput

declare -A res                 # res[target,conns,metric]: space-separated values, one per round
declare -A cost                # cost[target,conns] = "syscalls/call ctxt/call"
declare -A cpu                 # cpu[target,conns] = CPU µs per call, all the process's threads
declare -A loopcpu             # loopcpu[target,conns] = the same, the event loop's thread alone
declare -A usercpu             # usercpu[target,conns] = the user-space part of cpu[]
declare -A hostcpu             # hostcpu[target,conns] = "wrk µs, upstream µs" per call beside it
timed=()                       # bench's wrk under /usr/bin/time (measure_cost)
declare -A threadcpu           # threadcpu[target,conns] = "name µs, ..." per thread name
warn=()
have_perf=0
if command -v perf >/dev/null &&
   perf stat -e raw_syscalls:sys_enter -x, -o /dev/null -- true >/dev/null 2>&1; then
	have_perf=1
fi

# measure_cost TARGET PID CONNS -> cost[TARGET,CONNS]: an untimed run with perf attached.
measure_cost() {
	local t=$1 pid=$2 c=$3 c0 c1 out n sys=n/a perf_pid= u0 u1 l0 l1 th0 th1 s0 s1 up0 up1 w=n/a
	c0=$(ctxt "$pid")
	u0=$(cpu_ticks "/proc/$pid")
	s0=$(user_ticks "/proc/$pid")
	up0=$(cpu_ticks "/proc/$up_pid")
	[ -x /usr/bin/time ] && timed=(/usr/bin/time -o "$tmp/wrk.time" -f "%U %S")
	l0=$(cpu_ticks "/proc/$pid/task/$pid")
	th0=$(thread_ticks "$pid")
	if [ $have_perf = 1 ]; then
		perf stat -e raw_syscalls:sys_enter -x, -o "$tmp/perf.out" -p "$pid" &
		perf_pid=$!
		pids+=($perf_pid)       # stopped on exit too, if interrupted
		sleep 0.2
	fi
	out=$(bench "$t" "$c" "$secs")
	timed=()
	up1=$(cpu_ticks "/proc/$up_pid")
	c1=$(ctxt "$pid")
	u1=$(cpu_ticks "/proc/$pid")
	s1=$(user_ticks "/proc/$pid")
	l1=$(cpu_ticks "/proc/$pid/task/$pid")
	th1=$(thread_ticks "$pid")
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null
		wait "$perf_pid" 2>/dev/null
	fi
	n=$(field requests "$out")
	[ -n "$n" ] && [ "$n" -gt 0 ] || { cost[$t,$c]="n/a n/a"; return; }
	if [ -n "$perf_pid" ]; then
		sys=$(awk -F, -v n="$n" '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {
			printf "%.1f", $1 / n }' "$tmp/perf.out")
		[ -n "$sys" ] || sys=n/a
	fi
	cost[$t,$c]="$sys $(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')"
	cpu[$t,$c]=$(per_call "$u0" "$u1" "$n")
	usercpu[$t,$c]=$(per_call "$s0" "$s1" "$n")
	# the last line: time puts "Command exited with non-zero status" before it, if so
	[ -s "$tmp/wrk.time" ] && w=$(awk -v n="$n" '{ t = $1 + $2 } END { printf "%.1f", t / n * 1e6 }' \
		"$tmp/wrk.time")
	rm -f "$tmp/wrk.time"
	hostcpu[$t,$c]="wrk $w µs, upstream $(per_call "$up0" "$up1" "$n") µs"
	loopcpu[$t,$c]=$(per_call "$l0" "$l1" "$n")
	threadcpu[$t,$c]=$(threads_per_call "$th0" "$th1" "$n")
}

# thread_ticks PID -> a line "TID NAME TICKS" per thread (mcpwarden names its threads
# "mcpw-..."; the event loop keeps the process's name).
thread_ticks() {
	local t
	for t in /proc/"$1"/task/*; do
		printf '%s %s %s\n' "${t##*/}" "$(tr -c '[:alnum:]_\n-' _ <"$t/comm")" "$(cpu_ticks "$t")"
	done 2>/dev/null
}

# threads_per_call BEFORE AFTER CALLS -> "NAME µs, ..." per thread name, CPU µs per call, the
# busiest first; threads that used none are left out.
threads_per_call() {
	awk -v n="$3" -v hz="$(getconf CLK_TCK)" 'NR == FNR { t0[$1] = $3; next }
		{ d[$2] += $3 - ($1 in t0 ? t0[$1] : 0) }
		END { for (k in d) if (d[k] > 0) printf "%.1f %s\n", d[k] / hz / n * 1e6, k }' \
		<(printf '%s\n' "$1") <(printf '%s\n' "$2") |
		sort -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }'
}

# cpu_ticks /proc/PID -> user + system time of every thread of PID, in clock ticks;
# cpu_ticks /proc/PID/task/TID -> the same for one thread (for a process's first, its loop).
cpu_ticks() { sed 's/.*) //' "$1/stat" | awk '{ print $12 + $13 }'; }
# user_ticks /proc/PID -> the user-space part alone (the kernel's is the rest)
user_ticks() { sed 's/.*) //' "$1/stat" | awk '{ print $12 }'; }

# per_call TICKS0 TICKS1 CALLS -> CPU µs per call
per_call() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.1f", (b - a) / hz / n * 1e6 }'; }

# ratio A B [FORMAT] -> A / B, or n/a when B is not positive (nothing to compare against).
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN {
	if (a == "n/a" || b == "n/a" || b <= 0) print "n/a"; else printf f "\n", a / b }'; }

declare -A rss hwm
for c in $conns; do
	echo "--- $c connection(s)"
	for t in $targets; do bench "$t" "$c" 1 >/dev/null; done   # warm-up
	for r in $(seq "$rounds"); do
		declare -A cur=()
		order=$targets
		# The store's pair alternates its order, so that neither always runs first.
		[ "$store_cost" = 1 ] && [ $((r % 2)) = 0 ] && order="direct nginx nostore mcpwarden"
		for t in $order; do
			out=$(bench "$t" "$c" "$secs")
			if [ -z "$out" ]; then
				warn+=("$t, $c connections, round $r: wrk printed no result")
				continue
			fi
			printf '  round %d %-9s %9.0f req/s  p50 %6d µs  p99 %6d µs\n' "$r" "$t" \
				"$(field rps "$out")" "$(field p50 "$out")" "$(field p99 "$out")"
			bad=$(( $(field errors "$out") + $(field status "$out") + $(field bad "$out") ))
			[ "$bad" = 0 ] || warn+=("$t, $c connections, round $r: $bad failed answers of $(field requests "$out")")
			for m in p50 p99 rps; do
				cur[$t,$m]=$(field $m "$out")
				res[$t,$c,$m]+=" ${cur[$t,$m]}"
			done
		done
		# Paired within the round: the three ran back to back, under the same conditions
		# (this machine is shared; a round's background load hits all three alike).
		[ -n "${cur[direct,p50]:-}" ] || continue
		for t in nginx mcpwarden; do
			[ -n "${cur[$t,p50]:-}" ] || continue
			res[$t,$c,a50]+=" $((cur[$t,p50] - cur[direct,p50]))"
			res[$t,$c,a99]+=" $((cur[$t,p99] - cur[direct,p99]))"
		done
		[ -n "${cur[nginx,rps]:-}" ] && [ -n "${cur[mcpwarden,rps]:-}" ] &&
			res[ratio,$c,rps]+=" $(ratio "${cur[mcpwarden,rps]}" "${cur[nginx,rps]}" %.3f)"
		# the round's own added-p50 ratio: not the table's figure (a ratio of medians),
		# but its spread shows how far one round may stray on this machine
		[ -n "${cur[nginx,p50]:-}" ] && [ -n "${cur[mcpwarden,p50]:-}" ] &&
			res[ratio,$c,a50]+=" $(ratio $((cur[mcpwarden,p50] - cur[direct,p50])) \
				$((cur[nginx,p50] - cur[direct,p50])) %.2f)"
		[ -n "${cur[mcpwarden,rps]:-}" ] && [ -n "${cur[nostore,rps]:-}" ] &&
			res[store,$c,rps]+=" $(ratio "${cur[mcpwarden,rps]}" "${cur[nostore,rps]}" %.3f)"
	done
	measure_cost nginx "${ng_worker:-$ng_pid}" "$c"
	measure_cost mcpwarden "$warden_pid" "$c"
	[ "$store_cost" = 1 ] && measure_cost nostore "$nostore_pid" "$c"
	# What the store costs, from short runs of the two right after each other: the shorter
	# the runs, the more alike the conditions a pair meets on a shared machine. ABBA: the
	# order flips at every pair, so neither instance always runs first.
	if [ "$store_cost" = 1 ]; then
		for p in $(seq "$store_pairs"); do
			declare -A pr=()
			order="mcpwarden nostore"
			[ $((p % 2)) = 0 ] && order="nostore mcpwarden"
			for t in $order; do
				out=$(bench "$t" "$c" "$store_secs")
				pr[$t]=$(field rps "$out")
			done
			[ -n "${pr[mcpwarden]:-}" ] && [ -n "${pr[nostore]:-}" ] &&
				res[pairs,$c,rps]+=" $(ratio "${pr[mcpwarden]}" "${pr[nostore]}" %.3f)"
		done
	fi
	rss[$c]=$(status_kb "$warden_pid" VmRSS)
	hwm[$c]=$(status_kb "$warden_pid" VmHWM)
done

# BENCH_PROFILE: where each proxy's CPU goes, per function, all threads, callers folded in:
# mcpwarden's in FILE, nginx's worker in FILE.nginx, each run alone at the last connection
# count, so that the two kernels' shares can be set side by side.
# profile_target NAME PID OUT
profile_target() {
	perf record -q --call-graph dwarf,16384 -o "$tmp/perf.data" -p "$2" 2>/dev/null &
	perf_pid=$!
	pids+=($perf_pid)
	sleep 0.2
	bench "$1" "$c" "$secs" >/dev/null
	kill -INT "$perf_pid" 2>/dev/null
	wait "$perf_pid" 2>/dev/null
	{
		perf report -i "$tmp/perf.data" --no-children --sort dso,symbol --percent-limit 0.3 \
			--stdio -g none 2>/dev/null
		echo "### per thread"
		perf report -i "$tmp/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null
		echo "### per shared object"
		perf report -i "$tmp/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null
		echo "### with callees (children)"
		perf report -i "$tmp/perf.data" --children --sort symbol --percent-limit 2 \
			--stdio -g none 2>/dev/null
	} >"$3"
	mv "$tmp/perf.data" "$3.data"     # for `perf report -i` by hand
	echo "proxy_bench: profile of $1 at $c connection(s) in $3"
}
if [ -n "$profile" ] && [ $have_perf = 1 ]; then
	profile_target mcpwarden "$warden_pid" "$profile"
	profile_target nginx "${ng_worker:-$ng_pid}" "$profile.nginx"
elif [ -n "$profile" ]; then
	echo "proxy_bench: BENCH_PROFILE: perf cannot record here"
fi

# BENCH_INSTRUCTIONS: the event loop's instructions per call, counted by callgrind (user space
# only; the loop's thread, from event_base_loop down). Load on the machine changes the time a
# call takes, not this count, so two builds compare within a percent.
instr_line=""
if [ "$instructions" != 0 ] && command -v valgrind >/dev/null; then
	warden_wrap=(valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out"
		--toggle-collect=event_base_loop)
	[ "$cache_sim" != 0 ] && warden_wrap+=(--cache-sim=yes)
	if start_warden callgrind "$tmp/callgrind" "$tmp/nokeys" 100; then
		cg_pid=$w_pid
		url[callgrind]=$w_url
		key[callgrind]=$bench_key
		if sid[callgrind]=$(open_session "$w_url" "$bench_key"); then
			bench callgrind "$instr_conns" "$secs" >/dev/null
		fi
		kill "$cg_pid" 2>/dev/null
		wait "$cg_pid" 2>/dev/null
		n=$(grep -c '"type":"decision"' "$tmp/callgrind/records.jsonl")
		# totals: Ir, and with the simulation Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
		read -r -a tot <<<"$(sed -n 's/^totals: *//p' "$tmp/callgrind.out" 2>/dev/null)"
		ir=${tot[0]:-}
		if [ -n "$ir" ] && [ "$n" -gt 0 ]; then
			instr_line="instructions per call on mcpwarden's event loop (callgrind, $instr_conns connections, $n calls): $((ir / n))"
			[ "${#tot[@]}" -ge 6 ] && instr_line+="; first-level cache misses per call: $((tot[3] / n)) instruction, $((tot[4] / n)) data read, $((tot[5] / n)) data write"
			[ "$instructions" != 1 ] && cp "$tmp/callgrind.out" "$instructions"
		else
			instr_line="instructions per call: callgrind gave no count"
		fi
	else
		instr_line="instructions per call: mcpwarden did not start under valgrind"
	fi
	warden_wrap=()
elif [ "$instructions" != 0 ]; then
	instr_line="instructions per call: skipped (no valgrind; apt-get install valgrind)"
fi

# ---------------------------------------------------------------- the table


echo
echo "proxy_bench: medians of $rounds rounds; latencies in µs; added = proxy − direct in the same round"
echo "proxy_bench: load average before: $load0; after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
	connections "direct p50/p99" "nginx added p50/p99" "mcpwarden added p50/p99" \
	"added p50 ratio" "direct req/s" "nginx req/s" "mcpwarden req/s" "req/s ratio" \
	"syscalls/call nginx/mcpwarden" "ctx switches/call nginx/mcpwarden" "mcpwarden RSS/HWM MiB"
echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
declare -A med
for c in $conns; do
	for k in direct,p50 direct,p99 direct,rps nginx,rps mcpwarden,rps nginx,a50 nginx,a99 \
		 mcpwarden,a50 mcpwarden,a99 ratio,rps; do
		med[$k]=$(median "$([ "$k" = ratio,rps ] && echo %.3f)" <<<"${res[${k%,*},$c,${k#*,}]:-}")
	done
	read -r ngsys ngcs <<<"${cost[nginx,$c]:-n/a n/a}"
	read -r wsys wcs <<<"${cost[mcpwarden,$c]:-n/a n/a}"
	printf '| %s | %s / %s | %s / %s | %s / %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |\n' \
		"$c" "${med[direct,p50]}" "${med[direct,p99]}" "${med[nginx,a50]}" "${med[nginx,a99]}" \
		"${med[mcpwarden,a50]}" "${med[mcpwarden,a99]}" "$(ratio "${med[mcpwarden,a50]}" "${med[nginx,a50]}")" \
		"${med[direct,rps]}" "${med[nginx,rps]}" "${med[mcpwarden,rps]}" \
		"$(ratio "${med[ratio,rps]}" 1)" "$ngsys" "$wsys" "$ngcs" "$wcs" \
		"$(awk -v k="${rss[$c]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" \
		"$(awk -v k="${hwm[$c]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
done
[ $have_perf = 1 ] || echo "(system calls: n/a, perf cannot count raw_syscalls:sys_enter here)"
# CPU time per call does not depend on what else the machine runs, as req/s does: compare runs
# with it (e.g. BENCH_LOGS=0 against the default).
for c in $conns; do
	echo "CPU per call at $c connection(s): nginx ${cpu[nginx,$c]:-n/a} µs, mcpwarden ${cpu[mcpwarden,$c]:-n/a} µs (all threads; ${loopcpu[mcpwarden,$c]:-n/a} on the loop's; log store $([ "$main_logs" = true ] && echo on || echo off))"
	echo "  of which in user space: nginx ${usercpu[nginx,$c]:-n/a} µs, mcpwarden ${usercpu[mcpwarden,$c]:-n/a} µs (the rest in the kernel)"
	echo "  beside it, per call: with nginx ${hostcpu[nginx,$c]:-n/a}; with mcpwarden ${hostcpu[mcpwarden,$c]:-n/a}"
	echo "  mcpwarden's threads, µs per call: ${threadcpu[mcpwarden,$c]:-n/a}"
done
for c in $conns; do
	echo "added p50 ratio round by round at $c connection(s):${res[ratio,$c,a50]:- n/a}"
done
echo "(goal, issue 9: added p50 ratio <= 1.0 and req/s ratio >= 0.8 at 16 and 64 connections)"
if [ "$store_cost" = 1 ]; then
	what="log store"
	[ "$store_aa" = 1 ] && what="A/A control (BENCH_STORE_AA=1: the store off in both)"
	for c in $conns; do
		r=$(median %.3f <<<"${res[store,$c,rps]:-}")
		pq=$(quartiles <<<"${res[pairs,$c,rps]:-}")
		echo "$what at $c connection(s): req/s with it ÷ without, $store_pairs ABBA pairs of" \
			"${store_secs}s runs: median $pq; median of the paired rounds above: $r" \
			"(rounds:${res[store,$c,rps]:-}); CPU per call ${cpu[mcpwarden,$c]:-n/a} µs with," \
			"${cpu[nostore,$c]:-n/a} µs without; on the loop's thread" \
			"${loopcpu[mcpwarden,$c]:-n/a} µs with, ${loopcpu[nostore,$c]:-n/a} µs without"
	done
	echo "(goal, issue 11: the store costs <= 5% req/s, a ratio >= 0.95)"
fi
records=$(grep -c '"type":"decision"' "$tmp/warden/records.jsonl")
echo "mcpwarden wrote $records decision records"
[ -n "$instr_line" ] && echo "$instr_line"
# CPU time (all threads, user + system) per call over the whole run: steadier than wall-clock
# numbers on a shared machine.
read -r -a st < <(sed 's/^.*) //' "/proc/$warden_pid/stat")
echo "mcpwarden CPU per call: $(awk -v t=$((st[11] + st[12])) -v hz="$(getconf CLK_TCK)" \
	-v n="$records" 'BEGIN { printf "%.1f µs", n ? t / hz / n * 1e6 : 0 }')"
if [ "$tracing" = 1 ]; then
	# Stopped now so that its exporter flushes and reports what it sent and dropped.
	kill "$warden_pid" 2>/dev/null
	wait "$warden_pid" 2>/dev/null
	read -r otlp_n otlp_bytes <"$tmp/otlp-count" 2>/dev/null
	echo "tracing: the receiver got ${otlp_n:-0} export requests (${otlp_bytes:-0} bytes);" \
		"$(grep -ho 'tracing: [0-9]* spans exported.*' "$tmp/warden/mcpwarden.log" | tail -1)"
fi
for w in "${warn[@]+"${warn[@]}"}"; do echo "WARNING: $w"; done

# ---------------------------------------------------------------- memory at scale

if [ "$memory" = 0 ]; then
	echo "memory at scale: skipped (BENCH_MEMORY=0)"
	exit 0
fi
echo
echo "--- memory at scale: $nkeys keys (hashes only), $nsessions open sessions"
# The throughput instance is done: stop it so that the two do not share the 2 cores' memory
# bandwidth and page cache.
for p in "$warden_pid" ${nostore_pid:-}; do
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
done
node "$here/keys.js" $((nkeys - 1)) >"$tmp/morekeys" || exit 1
mb() { awk -v k="$(status_kb "$1" "$2")" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
ms() { date +%s%3N; }
# cpu_ms PID -> CPU time of all its threads so far, ms: steadier than wall time when shared.
cpu_ms() { awk -v t="$(cpu_ticks "/proc/$1")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%d", t * 1000 / hz }'; }
t0=$(ms)
start_warden memory "$tmp/memory" "$tmp/morekeys" $((nsessions + 100)) --log-level info || exit 1
m_pid=$w_pid
echo "  started on $nkeys keys in $(($(ms) - t0)) ms ($(cpu_ms "$m_pid") ms of CPU):" \
	"RSS $(mb "$m_pid" VmRSS) (peak $(mb "$m_pid" VmHWM))"
if ! node "$here/sessions.js" "$w_url" "$bench_key" "$nsessions" | sed 's/^/  /'; then
	echo "  WARNING: opening the sessions failed; RSS below is with fewer sessions"
fi
echo "  with $nsessions sessions: RSS $(mb "$m_pid" VmRSS) (peak $(mb "$m_pid" VmHWM))"
reloads() { grep -c 'configuration reloaded' "$tmp/memory/mcpwarden.log"; }
# The rules a reload replaces are freed once every loop has passed a turn after it
# (base/epoch.h): a moment after the line. Wait (3 s at most) until RSS stops falling.
settle_rss() {
	local prev cur
	prev=$(status_kb "$1" VmRSS)
	for _ in $(seq 30); do
		sleep 0.1
		cur=$(status_kb "$1" VmRSS)
		[ "$cur" -ge "$prev" ] && return 0
		prev=$cur
	done
}
more_reloads_than() { [ "$(reloads)" -gt "$1" ]; }
for i in 1 2 3; do
	before=$(reloads)
	t1=$(ms)
	c1=$(cpu_ms "$m_pid")
	kill -HUP "$m_pid"
	if ! wait_for 60 more_reloads_than "$before"; then
		echo "  WARNING: reload $i not confirmed within 60 s"
		tail -3 "$tmp/memory/mcpwarden.log" | sed 's/^/  /'
		break
	fi
	took="$(($(ms) - t1)) ms, $(($(cpu_ms "$m_pid") - c1)) ms of CPU"
	settle_rss "$m_pid"
	echo "  after SIGHUP reload $i ($took):" \
		"RSS $(mb "$m_pid" VmRSS) (peak $(mb "$m_pid" VmHWM))"
done
echo "(goal, issue 9: <= 48 MiB at 100k keys and 10k open sessions; RSS back to its level after each reload)"
exit 0
