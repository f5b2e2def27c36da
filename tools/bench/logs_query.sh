#!/usr/bin/env bash
# GET /api/logs over 1M stored records (tools/bench/logs-query.mjs); $1: the build directory.
top=$(cd "$(dirname "$0")/../.." && pwd)
node=$top/tests/node_modules/node/bin/node
[ -x "$node" ] || node=node
exec "$node" --no-warnings "$top/tools/bench/logs-query.mjs" "${1:-$top/build/rel}"
