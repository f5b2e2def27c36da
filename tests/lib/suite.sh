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
