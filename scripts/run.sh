#!/usr/bin/env bash
# Start the sidecar on examples/mcpwarden.json in the foreground with a freshly generated demo
# key (only its hash goes into the run config), and say how to reach it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p .warden-run/state .warden-run/files
chmod 700 .warden-run
base=${MCPWARDEN_CONFIG:-examples/mcpwarden.json}
run=.warden-run/mcpwarden.json
key="mcpw_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
admin_token=$(openssl rand -hex 24)
printf '%s\n' "$admin_token" > .warden-run/admin.token
chmod 600 .warden-run/admin.token
node -e '
	const fs = require("fs");
	const [base, run, hash, token] = process.argv.slice(1);
	const c = JSON.parse(fs.readFileSync(base, "utf8"));
	c.keys = [{ id: "demo", name: "make run demo key", policy: "demo", hash: "sha256:" + hash }];
	c.admin = c.admin ?? { listen: "127.0.0.1:8081", token };
	fs.writeFileSync(run, JSON.stringify(c, null, 2), { mode: 0o600 });
' "$base" "$run" "$hash" "$admin_token"
printf '%s\n' "$key" > .warden-run/demo.key
chmod 600 .warden-run/demo.key
build/rel/mcpwarden --check-config "$run" >/dev/null
port=$(node -e 'const c = require(process.argv[1]); console.log(c.listen.split(":").pop())' "$top/$run")
cat <<TXT

mcpwarden is starting on http://127.0.0.1:${port}/mcp in front of server-everything,
server-memory and server-filesystem. Demo key (also in .warden-run/demo.key):

  ${key}

Try it from another shell:

  KEY=\$(cat .warden-run/demo.key)
  curl -si http://127.0.0.1:${port}/mcp -H "Authorization: Bearer \$KEY" \\
       -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

then send {"jsonrpc":"2.0","id":2,"method":"tools/list"} with -H 'Mcp-Session-Id: <the id above>'
added. Any MCP client works: point it at the URL with the header Authorization: Bearer <key>.
Operators use the admin plane on 127.0.0.1:8081 (token in .warden-run/admin.token):

  build/rel/wardenctl keys create --name my-agent --policy read-only --token-file .warden-run/admin.token
  build/rel/wardenctl usage --token-file .warden-run/admin.token

Decisions are printed below as JSON lines. Stop with Ctrl-C.

TXT
exec build/rel/mcpwarden -c "$run"
