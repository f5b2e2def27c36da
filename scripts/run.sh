#!/usr/bin/env bash
# Start the sidecar on examples/mcpwarden.json in the foreground and say how to reach it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p .warden-run/state .warden-run/files
config=${MCPWARDEN_CONFIG:-examples/mcpwarden.json}
build/rel/mcpwarden --check-config "$config" >/dev/null
port=$(sed -n 's/.*"listen": *"[^"]*:\([0-9]*\)".*/\1/p' "$config" | head -1)
cat <<TXT

mcpwarden is starting on http://127.0.0.1:${port}/mcp in front of server-everything,
server-memory and server-filesystem (config: $config). Try it from another shell:

  curl -si http://127.0.0.1:${port}/mcp -H 'Content-Type: application/json' \\
       -H 'Accept: application/json, text/event-stream' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

then repeat with -H 'Mcp-Session-Id: <the id it returned>' and a body such as
  {"jsonrpc":"2.0","id":2,"method":"tools/list"}
Stop with Ctrl-C.

TXT
exec build/rel/mcpwarden -c "$config"
