#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, active server
# scenarios) through the gateway. Each scenario is first run directly against our fixture
# upstream (tests/fixtures/conformance-server.mjs); then mcpwarden is started in test mode
# (loopback, ephemeral port, one upstream, prefix "never", auth off) in front of the fixture and
# the suite runs again through it. Fails when a scenario that passed directly fails through the
# gateway, when one fails directly (the fixture is ours: that is a bug too), or when the daemon
# dies or does not exit cleanly (status 0, i.e. no sanitizer report) on SIGTERM.
#
# Variants (the fixture as the daemon's upstream):
#   http       Streamable HTTP, SSE responses
#   http-json  Streamable HTTP, application/json responses (server-to-client traffic on GET)
#   stdio      a child the daemon spawns (`node conformance-server.mjs --stdio`)
# CONFORMANCE_VARIANTS="http stdio" runs a subset. Results stay in $CONFORMANCE_KEEP if set.
set -uo pipefail
top=${MCPWARDEN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MCPWARDEN_BUILD:-$top/build/test}
node=$top/tests/node_modules/node/bin/node
conformance=$top/tests/node_modules/.bin/conformance
fixture=$top/tests/fixtures/conformance-server.mjs
daemon=$build/mcpwarden
variants=${CONFORMANCE_VARIANTS:-http http-json stdio}
run_timeout=300        # seconds for one whole conformance run

. "$top/tests/lib/suite.sh"   # wait_for, stop_all, require_files, suite_scratch
require_files conformance "run scripts/deps.sh and make MODE=test all" "$node" "$conformance" "$fixture" "$daemon"
suite_scratch conformance "${CONFORMANCE_KEEP:-}"

# The one place the gateway's test-mode config is written. $1 file, $2 variant, $3 fixture URL.
write_config() {
	"$node" -e '
		const [file, variant, url, node, fixture, state] = process.argv.slice(1);
		const upstream = variant === "stdio"
			? { name: "fixture", transport: "stdio", command: [node, fixture, "--stdio"] }
			: { name: "fixture", transport: "http", url };
		const config = { listen: "127.0.0.1:0", prefix: "never", auth: { required: false },
			state_dir: state, upstreams: [upstream] };
		require("fs").writeFileSync(file, JSON.stringify(config, null, 2) + "\n");
	' "$1" "$2" "$3" "$node" "$fixture" "$(dirname "$1")/state"
}

# results DIR: one "<scenario> PASS|FAIL <first failure>" line per scenario run with -o DIR.
results() {
	"$node" -e '
		const fs = require("fs"), path = require("path");
		const dir = process.argv[1];
		const rows = [];
		for (const d of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
			const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(d);
			if (!m)
				continue;
			let checks;
			try {
				checks = JSON.parse(fs.readFileSync(path.join(dir, d, "checks.json"), "utf8"));
			} catch {
				rows.push(`${m[1]} FAIL no readable checks.json`);
				continue;
			}
			const bad = checks.find((c) => c.status === "FAILURE");
			rows.push(bad ? `${m[1]} FAIL [${bad.id}] ${bad.errorMessage ?? bad.description}`
				: `${m[1]} PASS`);
		}
		console.log(rows.sort().join("\n"));
	' "$1"
}

# run_suite URL NAME: run the active suite against URL, results in $tmp/NAME.{log,results}.
run_suite() {
	local url=$1 name=$2
	timeout "$run_timeout" "$node" "$conformance" server --url "$url" -o "$tmp/$name" \
		>"$tmp/$name.log" 2>&1
	local rc=$?
	[ "$rc" -eq 124 ] && echo "conformance: $name: the run timed out after ${run_timeout}s" >&2
	results "$tmp/$name" >"$tmp/$name.results"
}

# start_fixture NAME ARGS...: start the fixture over HTTP; sets fixture_url.
start_fixture() {
	local name=$1
	shift
	"$node" "$fixture" --port 0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	fixture_pid=$!
	fixture_url=$(wait_for "$tmp/$name.out" 'http://127\.0\.0\.1:[0-9]+/mcp' "$fixture_pid") || {
		echo "conformance: the fixture did not start:" >&2
		cat "$tmp/$name.err" >&2
		return 1
	}
}

# show_stderr FILE: a sanitizer report from its start, else the last lines.
show_stderr() {
	local at
	at=$(grep -n -m1 -E 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$1" | cut -d: -f1)
	if [ -n "$at" ]; then
		tail -n "+$at" "$1" | head -40
	else
		tail -40 "$1"
	fi | sed 's/^/  /'
}

stop_upstream() {
	if [ -n "$upstream_url" ]; then
		kill -TERM "$fixture_pid" 2>/dev/null
		wait "$fixture_pid" 2>/dev/null
	fi
}

failed=0
declare -A baseline_done

# baseline FIXTURE-ARGS-NAME ARGS...: direct run against a fresh fixture, once per mode.
baseline() {
	local name=$1
	shift
	[ -n "${baseline_done[$name]:-}" ] && return 0
	start_fixture "fixture-$name" "$@" || return 1
	run_suite "$fixture_url" "direct-$name"
	kill -TERM "$fixture_pid" 2>/dev/null
	wait "$fixture_pid" 2>/dev/null
	local pass total
	pass=$(grep -c ' PASS$' "$tmp/direct-$name.results")
	total=$(grep -c . "$tmp/direct-$name.results")
	echo "conformance: fixture directly ($name): $pass/$total scenarios pass"
	if [ "$total" -eq 0 ]; then
		echo "conformance: no scenario ran; the log says:" >&2
		tail -20 "$tmp/direct-$name.log" >&2
		return 1
	fi
	if grep -q ' FAIL ' "$tmp/direct-$name.results"; then
		echo "conformance: the fixture itself fails (fix tests/fixtures/conformance-server.mjs):"
		grep ' FAIL ' "$tmp/direct-$name.results" | sed 's/^/  /'
		failed=1
	fi
	baseline_done[$name]=1
}

for variant in $variants; do
	case "$variant" in
	http|stdio) mode=sse; fargs=() ;;
	http-json) mode=json; fargs=(--json) ;;
	*) echo "conformance: unknown variant $variant" >&2; exit 2 ;;
	esac
	baseline "$mode" "${fargs[@]}" || exit 1

	vdir=$tmp/gateway-$variant
	mkdir -p "$vdir/state"
	upstream_url=
	if [ "$variant" != stdio ]; then
		start_fixture "upstream-$variant" "${fargs[@]}" || exit 1
		upstream_url=$fixture_url
	fi
	write_config "$vdir/config.json" "$variant" "$upstream_url" || exit 1
	"$daemon" -c "$vdir/config.json" >"$vdir/daemon.out" 2>"$vdir/daemon.err" &
	dpid=$!
	pids+=("$dpid")
	if ! gw_url=$(wait_for "$vdir/daemon.err" \
			'mcpwarden: listening on http://[^ ]+' "$dpid"); then
		echo "conformance ($variant): the daemon did not start; its stderr:"
		show_stderr "$vdir/daemon.err"
		failed=1
		stop_upstream
		continue
	fi
	gw_url=${gw_url#mcpwarden: listening on }
	# The catalogue fills in after the listener is up: start once the upstream is listed.
	if ! wait_for "$vdir/daemon.err" 'upstream fixture: ready' "$dpid" >/dev/null; then
		echo "conformance ($variant): the daemon never reported its upstream ready; its stderr:"
		show_stderr "$vdir/daemon.err"
		failed=1
		kill -TERM "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
		stop_upstream
		continue
	fi

	run_suite "$gw_url" "via-$variant"
	alive=1
	kill -0 "$dpid" 2>/dev/null || alive=0

	# Every scenario that passed directly must pass through the gateway.
	regressions=$(grep ' PASS$' "$tmp/direct-$mode.results" | while read -r s _; do
		line=$(grep -m1 "^$s " "$tmp/via-$variant.results")
		case "$line" in
		*" PASS") ;;
		"") echo "$s (did not run)" ;;
		*) echo "${line/ FAIL / }" ;;
		esac
	done)
	pass=$(grep -c ' PASS$' "$tmp/via-$variant.results")
	want=$(grep -c ' PASS$' "$tmp/direct-$mode.results")
	echo "conformance: through mcpwarden ($variant upstream): $pass/$want scenarios pass"
	if [ -n "$regressions" ]; then
		echo "conformance ($variant): scenarios that pass directly but fail through mcpwarden:"
		echo "$regressions" | sed 's/^/  /'
		failed=1
	fi

	if [ "$alive" -eq 0 ]; then
		wait "$dpid" 2>/dev/null
		echo "conformance ($variant): the daemon died during the run (status $?); its stderr:"
		show_stderr "$vdir/daemon.err"
		failed=1
	else
		kill -TERM "$dpid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$dpid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$dpid" 2>/dev/null && echo "conformance ($variant): SIGTERM did not stop the daemon in 10 s"
		wait "$dpid"
		st=$?
		if [ "$st" -ne 0 ]; then
			echo "conformance ($variant): the daemon exited with status $st after SIGTERM:"
			show_stderr "$vdir/daemon.err"
			failed=1
		fi
	fi
	stop_upstream
done

[ "$failed" -eq 0 ] && echo "conformance: OK"
exit "$failed"
