#!/usr/bin/env bash
# Call one MCP tool over Streamable HTTP with nothing but curl: initialize, initialized,
# tools/call, DELETE. The `make run` demo uses it to make the same call twice — straight to a
# protected MCP server (refused by the kernel from an enrolled cgroup) and through the sidecar.
#
#   scripts/mcp-call.sh URL TOOL [ARGUMENTS_JSON]
#
# $KEY, when set, is sent as "Authorization: Bearer $KEY". Prints the tools/call response;
# exits with curl's status when a request cannot be made (7: could not connect).
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 URL TOOL [ARGUMENTS_JSON]" >&2; exit 2; }
url=$1 tool=$2 args=${3:-'{}'}
hdrs=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
[ -n "${KEY:-}" ] && hdrs+=(-H "Authorization: Bearer $KEY")
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# One POST; the body of the answer (an SSE stream or plain JSON) goes to $tmp/body.
post() {
	curl -sS --max-time 30 -D "$tmp/headers" -o "$tmp/body" "${hdrs[@]}" "$@" "$url"
}
# The JSON-RPC message of an answer: the data of an SSE event, else the body itself.
message() {
	if grep -q '^data:' "$tmp/body"; then
		sed -n 's/^data: \{0,1\}//p' "$tmp/body" | grep '"id"' | tail -1
	else
		cat "$tmp/body"
	fi
}

# Verbose, so a refused connect shows the system's reason (curl's summary line hides it).
post -v -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcp-call.sh","version":"1"}}}' 2> "$tmp/trace"
rc=$?
if [ $rc -ne 0 ]; then
	sed -n 's/^\* \(.*connect fail.*\)/mcp-call: \1/p' "$tmp/trace" >&2
	grep '^curl:' "$tmp/trace" >&2
	echo "mcp-call: cannot reach $url (curl exit $rc)" >&2
	exit $rc
fi
sid=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$tmp/headers")
if [ -z "$sid" ]; then
	echo "mcp-call: initialize failed: $(head -1 "$tmp/headers") $(message)" >&2
	exit 1
fi
hdrs+=(-H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25')
post -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' || exit $?
post -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":$args}}" || exit $?
message; echo
curl -sS --max-time 5 -o /dev/null -X DELETE "${hdrs[@]}" "$url" || true
