#!/usr/bin/env bash
# Records per second into the fleet's log store on PostgreSQL (tools/bench/logship_bench.c):
# a PostgreSQL in a temp dir (Unix socket only, as nobody when root), a logs.db of 200,000
# decision records (logstore_bench --fill), shipped at several batch sizes. $1: the build dir.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
pgbin=${MCPWARDEN_PG_BIN:-/usr/lib/postgresql/15/bin}
n=${LOGSHIP_RECORDS:-200000}
if [ ! -x "$pgbin/initdb" ]; then
	echo "SKIP: no PostgreSQL server in $pgbin (Debian: postgresql)"
	exit 0
fi
dir=$(mktemp -d /tmp/mcpwarden-logship-XXXXXX)
chmod 755 "$dir"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
	chown nobody "$dir"
	as_pg=(runuser -u nobody --)
fi
port=$((20000 + RANDOM % 20000))
cleanup() {
	"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -U warden --auth=trust --no-sync >/dev/null || exit 1
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null || exit 1
mkdir "$dir/state"
"$build/bench/logstore_bench" --fill "$dir/state/logs.db" "$n" >/dev/null || exit 1
MCPWARDEN_BENCH_PG="host=$dir port=$port user=warden dbname=postgres" \
MCPWARDEN_BENCH_LOGSDB="$dir/state/logs.db" "$build/bench/logship_bench"
