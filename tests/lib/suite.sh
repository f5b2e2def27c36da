# Shell helpers the suites in tests/suites/ source (not a suite itself).

# wait_for FILE ERE PID: print the first match of ERE in FILE once it appears; fail if PID exits
# first or after 20 s.
wait_for() {
	local file=$1 re=$2 pid=$3 i m
	for ((i = 0; i < 200; i++)); do
		m=$(grep -m1 -oE "$re" "$file" 2>/dev/null)
		if [ -n "$m" ]; then
			echo "$m"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stop_all PID...: TERM each, then reap each (a suite's cleanup: nothing it started outlives it).
stop_all() {
	local p
	for p in "$@"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "$@"; do
		wait "$p" 2>/dev/null
	done
	return 0
}

# require_files NAME HINT FILE...: exit 1 naming the first FILE that does not exist.
require_files() {
	local name=$1 hint=$2 f
	shift 2
	for f in "$@"; do
		if [ ! -e "$f" ]; then
			echo "$name: missing $f ($hint)" >&2
			exit 1
		fi
	done
}

# suite_scratch NAME [KEEP]: a scratch folder in $tmp and an empty $pids; on exit every pid in
# $pids is stopped and $tmp removed, first copied into the folder KEEP if one is given.
suite_scratch() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcpwarden-$1.XXXXXX") || exit 1
	suite_keep=${2:-}
	pids=()
	trap suite_cleanup EXIT
	trap 'exit 130' INT TERM
}

suite_cleanup() {
	stop_all "${pids[@]}"
	if [ -n "$suite_keep" ]; then
		mkdir -p "$suite_keep" && cp -r "$tmp"/. "$suite_keep"/
	fi
	rm -rf "$tmp"
}
