# lib.sh: what the wrk benches (proxy_bench.sh, llm_bench.sh) share. Sourced, not run; the
# script has set -uo pipefail, $top and $build.

conns=${BENCH_CONNECTIONS:-1 16 64}
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECONDS:-5}

skip() { echo "SKIP: $*"; exit 0; }

# bench_require BIN...: skip unless the tools every bench drives and the binaries are there.
bench_require() {
	local tool bin
	for tool in wrk nginx node curl sha256sum; do
		command -v "$tool" >/dev/null || skip "$tool is not installed (make deps installs it)"
	done
	for bin in "$@"; do
		[ -x "$bin" ] || skip "$bin is not built (make bench builds it)"
	done
}

# bench_tmp NAME: $tmp, a fresh directory (under $TMPDIR, else /tmp: TMPDIR=/dev/shm puts the
# state, the log store's too, in memory), and $pids, the processes started; both go at exit.
bench_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}
bench_cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}

# A free loopback port, for nginx (which cannot report one it picked itself).
free_port() {
	node -e 'const s = require("net").createServer().listen(0, "127.0.0.1",
		() => { console.log(s.address().port); s.close(); });'
}

# wait_for TIMEOUT_S CMD...: retry CMD every 50 ms until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# start_upstream BIN WHAT: run a bench-bin server on port 0; $up_port is the one it took.
start_upstream() {
	"$1" 0 >"$tmp/upstream.port" 2>"$tmp/upstream.log" &
	up_pid=$!
	pids+=($up_pid)
	wait_for 5 test -s "$tmp/upstream.port" || { echo "$2 did not start"; exit 1; }
	up_port=$(cat "$tmp/upstream.port")
}

# start_nginx PATH BODY: nginx (BENCH_WORKERS workers, 1 by default, proxy/nginx.conf.in) in front of $up_port; $ng_port
# and $ng_pid once a POST of BODY to PATH through it answers.
start_nginx() {
	mkdir -p "$tmp/nginx"
	ng_port=$(free_port)
	sed -e "s|@PREFIX@|$tmp/nginx|g" -e "s|@PORT@|$ng_port|g" -e "s|@UPSTREAM_PORT@|$up_port|g" \
		-e "s|@WORKERS@|${BENCH_WORKERS:-1}|g" \
		"$top/tools/bench/proxy/nginx.conf.in" >"$tmp/nginx/nginx.conf"
	nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" \
		2>>"$tmp/nginx/error.log" &
	ng_pid=$!
	pids+=($ng_pid)
	wait_for 5 curl -sf -o /dev/null -X POST -d "$2" "http://127.0.0.1:$ng_port$1" ||
		{ echo "nginx did not start:"; cat "$tmp/nginx/error.log"; exit 1; }
}

# field NAME "k=v k=v ..." -> v
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# quartiles < values -> "MEDIAN (quartiles Q1-Q3, N runs)", each %.3f, or n/a when none
# (Q1 and Q3: the medians of the lower and upper halves).
quartiles() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 }
	function med(a, b,   n) {
		n = b - a + 1
		if (n % 2) return v[a + (n - 1) / 2]
		return (v[a + n / 2 - 1] + v[a + n / 2]) / 2
	}
	END { if (NR == 0) { print "n/a"; exit }
	      h = int(NR / 2);
	      printf "%.3f (quartiles %.3f-%.3f, %d pairs)\n", med(1, NR),
		      h ? med(1, h) : v[1], h ? med(NR - h + 1, NR) : v[NR], NR }'; }

# median [FORMAT] < values -> their median (printf FORMAT, default %.0f), or n/a when none.
median() { tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.0f}" '{ v[NR] = $1 } END {
	if (NR == 0) print "n/a"; else if (NR % 2) printf f "\n", v[(NR + 1) / 2];
	else printf f "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
