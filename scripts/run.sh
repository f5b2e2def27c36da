#!/usr/bin/env bash
# `make run`: the sidecar in front of real MCP servers, with the kernel half when the machine
# allows it, and everything a new user needs to see both halves work.
#
#   - three stdio servers from npm (examples/mcpwarden.json) and a demo MCP server over
#     Streamable HTTP on loopback (tests/fixtures/conformance-server.mjs): that one has an
#     address, so the daemon protects it in the kernel;
#   - a freshly generated demo key (only its hash goes into the run config) and admin token,
#     which also signs in to the /logs dashboard on the admin listener (its URL is printed);
#   - when root, BPF and cgroup v2 are there: an `enforcement` section with its own pin dir and
#     a demo agent cgroup enrolled in protect mode, and the commands that show a direct call
#     refused by the kernel while the same call through the sidecar works.
#
# Stops on Ctrl-C or SIGTERM and removes what it made: the daemon, the demo server, the pins
# (wardenctl uninstall), the demo cgroup (processes still in it are moved to the root first).
#
# Environment (the defaults are what `make run` uses; tests/suites/make-run.sh changes them):
#   MCPWARDEN_CONFIG       base config                       examples/mcpwarden.json
#   MCPWARDEN_RUN_DIR      run folder (config, keys, state)  .warden-run
#   MCPWARDEN_LISTEN       the sidecar's address             the base config's listen
#   MCPWARDEN_ADMIN        the admin plane's address         127.0.0.1:8081
#   MCPWARDEN_DEMO_PORT    the demo HTTP MCP server's port   8090
#   MCPWARDEN_DEMO_NAME    pin dir and cgroup name           mcpwarden-demo
#   MCPWARDEN_ENFORCE      0: do not try kernel enforcement  1
#   MCPWARDEN_BIN          where mcpwarden and wardenctl are build/rel
#   OPENAI_API_KEY         set: the LLM route gets an OpenAI(-compatible) provider "openai"
#                          (the key stays in the environment, never in the run config)
#   OPENAI_BASE_URL        its base URL                      https://api.openai.com/v1
#   OPENAI_MODEL           the model the demo key may use    gpt-4o-mini
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
base=${MCPWARDEN_CONFIG:-examples/mcpwarden.json}
rundir=${MCPWARDEN_RUN_DIR:-.warden-run}
mkdir -p "$rundir/state" "$rundir/files" || exit 1
chmod 700 "$rundir"
rundir=$(cd "$rundir" && pwd)
bin=$(cd "${MCPWARDEN_BIN:-build/rel}" && pwd) || exit 1
admin_listen=${MCPWARDEN_ADMIN:-127.0.0.1:8081}
demo_port=${MCPWARDEN_DEMO_PORT:-8090}
name=${MCPWARDEN_DEMO_NAME:-mcpwarden-demo}
node=$top/tests/node_modules/node/bin/node
[ -x "$node" ] || node=$(command -v node)
run=$rundir/mcpwarden.json
say() { printf 'make run: %s\n' "$*" >&2; }

# --- can this machine enforce? ------------------------------------------------------------
cgroot=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then
		cgroot=$d
		break
	fi
done
why_not=
if [ "${MCPWARDEN_ENFORCE:-1}" = 0 ]; then
	why_not="turned off (MCPWARDEN_ENFORCE=0)"
elif [ "$(id -u)" -ne 0 ]; then
	why_not="not root (loading BPF programs and making cgroups needs root)"
elif [ -z "$cgroot" ]; then
	why_not="no cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified)"
elif [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	why_not="no BPF filesystem at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"
elif command -v bpftool >/dev/null && ! bpftool prog show >/dev/null 2>&1; then
	why_not="the bpf() system call is refused here ($(bpftool prog show 2>&1 | head -1))"
fi
pins=/sys/fs/bpf/$name
agent_cg=${cgroot:+$cgroot/$name/agent}
if [ -z "$why_not" ] && ! mkdir -p "$agent_cg" 2>/dev/null; then
	why_not="cannot create the demo cgroup $agent_cg"
fi
enforce=1
[ -z "$why_not" ] || enforce=0

# --- cleanup, whichever way we end ------------------------------------------------------------
daemon_pid= demo_pid=
cleanup() {
	trap '' INT TERM HUP
	[ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$demo_pid" ] && kill -TERM "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
	if [ "$enforce" = 1 ]; then
		[ -d "$pins" ] && "$bin/wardenctl" uninstall --yes --pin-dir "$pins" >/dev/null 2>&1
		# A demo shell may still be inside: it goes back to the root cgroup, unenforced.
		local p moved=0
		for p in $(cat "$agent_cg/cgroup.procs" 2>/dev/null); do
			echo "$p" > "$cgroot/cgroup.procs" 2>/dev/null && moved=$((moved + 1))
		done
		[ "$moved" -gt 0 ] && say "moved $moved process(es) out of the demo cgroup"
		rmdir "$agent_cg" "$cgroot/$name" 2>/dev/null
		[ -d "$pins" ] && say "pins left in $pins"
		[ -d "$cgroot/$name" ] && say "cgroup left: $cgroot/$name"
	fi
	say "stopped; demo cgroup, pins and demo server removed"
}
trap 'cleanup; exit 0' INT TERM HUP

# --- the run config -----------------------------------------------------------------------------
key="mcpw_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
admin_token=$(openssl rand -hex 24)
( umask 077
  printf '%s\n' "$admin_token" > "$rundir/admin.token"
  printf '%s\n' "$key" > "$rundir/demo.key" )
# Paths under .warden-run/ in the base config become absolute paths in the run folder: a
# server resolves a relative path where it likes (server-memory: in its own install folder).
"$node" -e '
	const fs = require("fs");
	const [base, run, hash, token, rundir, listen, admin, demoPort, enforce, pins, agentCg] =
		process.argv.slice(1);
	const abs = (v) => typeof v === "string" && v.startsWith(".warden-run/")
		? rundir + v.slice(".warden-run".length) : v;
	const c = JSON.parse(fs.readFileSync(base, "utf8"));
	if (listen) c.listen = listen;
	if (c.state_dir) c.state_dir = abs(c.state_dir);
	for (const u of c.upstreams ?? []) {
		if (u.command) u.command = u.command.map(abs);
		for (const [k, v] of Object.entries(u.env ?? {})) u.env[k] = abs(v);
	}
	c.upstreams = (c.upstreams ?? []).concat([{ name: "http-demo", transport: "http",
		url: `http://127.0.0.1:${demoPort}/mcp` }]);
	c.keys = [{ id: "demo", name: "make run demo key", policy: "demo", hash: "sha256:" + hash }];
	c.admin = c.admin ?? { listen: admin, token };
	// The LLM route: a provider when the usual OpenAI variables are set; its key is read
	// from the environment by the daemon (api_key_env), so it is never written here.
	if (process.env.OPENAI_API_KEY) {
		const model = process.env.OPENAI_MODEL || "gpt-4o-mini";
		c.providers = [{ name: "openai", kind: "openai",
			base_url: process.env.OPENAI_BASE_URL || "https://api.openai.com/v1",
			api_key_env: "OPENAI_API_KEY",
			models: { [model]: { input: "0.15", output: "0.60" } } }];
		c.llm = { default_provider: "openai" };
		c.policies = c.policies ?? {};
		c.policies.demo = { ...(c.policies.demo ?? {}), llm: { providers: { allow: ["openai"] } } };
	}
	if (enforce === "1")
		c.enforcement = { enabled: true, pin_dir: pins,
				  enroll: [{ cgroup: agentCg, mode: "protect" }] };
	fs.writeFileSync(run, JSON.stringify(c, null, 2), { mode: 0o600 });
' "$base" "$run" "$hash" "$admin_token" "$rundir" "${MCPWARDEN_LISTEN:-}" "$admin_listen" \
  "$demo_port" "$enforce" "$pins" "$agent_cg" || exit 1
"$bin/mcpwarden" --check-config "$run" >/dev/null || exit 1
listen=$("$node" -e 'console.log(require(process.argv[1]).listen)' "$run")
port=${listen##*:}
url=http://127.0.0.1:$port/mcp
demo_url=http://127.0.0.1:$demo_port/mcp

# --- the demo HTTP MCP server, then the daemon -------------------------------------------------
"$node" tests/fixtures/conformance-server.mjs --port "$demo_port" > "$rundir/demo-server.out" 2>&1 &
demo_pid=$!
for _ in $(seq 100); do
	grep -q '^READY' "$rundir/demo-server.out" 2>/dev/null && break
	kill -0 "$demo_pid" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q '^READY' "$rundir/demo-server.out" 2>/dev/null; then
	say "the demo MCP server did not start: $(tail -3 "$rundir/demo-server.out")"
	cleanup
	exit 1
fi
"$bin/mcpwarden" -c "$run" &
daemon_pid=$!
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.1
done
if ! kill -0 "$daemon_pid" 2>/dev/null; then
	wait "$daemon_pid"
	say "mcpwarden exited (status $?)"
	daemon_pid=
	cleanup
	exit 1
fi
if [ "$enforce" = 1 ] && ! "$bin/wardenctl" status --pin-dir "$pins" >/dev/null 2>&1; then
	enforce_note="the daemon could not turn enforcement on: see its log above"
fi

# --- what to try ----------------------------------------------------------------------------
# The dashboard is on the admin listener (loopback): its URL as a browser on this host uses it.
case "$admin_listen" in
\[*) dashboard_url="http://${admin_listen}/logs" ;;
*:*:*) dashboard_url="http://[${admin_listen%:*}]:${admin_listen##*:}/logs" ;;
*) dashboard_url="http://${admin_listen}/logs" ;;
esac
cat <<TXT

mcpwarden is serving on ${url} in front of server-everything, server-memory and
server-filesystem (stdio) and a demo MCP server over Streamable HTTP at ${demo_url}
(upstream "http-demo"). Demo key (also in ${rundir}/demo.key):

  ${key}

Any MCP client works: point it at the URL with the header Authorization: Bearer <key>. One tool
call with curl alone:

  KEY=\$(cat ${rundir}/demo.key) ${top}/scripts/mcp-call.sh ${url} everything__echo '{"message":"hi"}'

Every call, live, with its cost and latency, in the /logs dashboard: open

  ${dashboard_url}

and sign in with the admin token (in ${rundir}/admin.token):

  $(cat "$rundir/admin.token")

TXT
if [ -n "${OPENAI_API_KEY:-}" ]; then
	cat <<TXT
The LLM route is on: provider "openai" (${OPENAI_BASE_URL:-https://api.openai.com/v1}), model
${OPENAI_MODEL:-gpt-4o-mini}, governed by the same demo key (any OpenAI SDK works with base URL
http://127.0.0.1:${port}/v1 and the demo key as its API key):

  curl -s http://127.0.0.1:${port}/v1/chat/completions -H "Authorization: Bearer \$(cat ${rundir}/demo.key)" \\
    -H 'Content-Type: application/json' \\
    -d '{"model": "openai/${OPENAI_MODEL:-gpt-4o-mini}", "messages": [{"role": "user", "content": "Say hi"}]}'

TXT
else
	echo "The LLM route (/v1/chat/completions) has no provider: set OPENAI_API_KEY (and"
	echo "OPENAI_BASE_URL for any OpenAI-compatible server, OPENAI_MODEL for its model) and run"
	echo "make run again; the demo key may then use that model (docs/llm.md)."
	echo
fi
if [ "$enforce" = 1 ] && [ -z "${enforce_note:-}" ]; then
	cat <<TXT
Kernel enforcement is ON (pins in ${pins}). The demo agent cgroup
${agent_cg} is enrolled in protect mode: from inside it the protected MCP
server (${demo_url}) is reachable only through the sidecar.

1. A shell inside the demo agent cgroup (from another terminal, as root):

  sh -c 'echo \$\$ > ${agent_cg}/cgroup.procs && exec bash'

2. In that shell, the same tool call straight to the protected server (the kernel refuses it:
   "Operation not permitted"), then through the sidecar (it works, and is on record below):

  ${top}/scripts/mcp-call.sh ${demo_url} test_simple_text
  KEY=\$(cat ${rundir}/demo.key) ${top}/scripts/mcp-call.sh ${url} http-demo__test_simple_text

3. The kernel half, from any root shell (the daemon need not run):

  ${bin}/wardenctl status --pin-dir ${pins}
  ${bin}/wardenctl maps --pin-dir ${pins}
  ${bin}/wardenctl events --follow --pin-dir ${pins}

TXT
else
	echo "Kernel enforcement is OFF: ${why_not:-${enforce_note:-}}."
	echo "(As root on a machine with BPF and cgroup v2, make run shows an agent refused a direct"
	echo "connection to a protected MCP server while the same call through the sidecar works.)"
	echo
fi
cat <<TXT
Operators use the admin plane on ${admin_listen} (token in ${rundir}/admin.token):

  ${bin}/wardenctl keys create --name my-agent --policy read-only --token-file ${rundir}/admin.token
  ${bin}/wardenctl usage --token-file ${rundir}/admin.token

Decisions are printed below as JSON lines. Stop with Ctrl-C: the demo cgroup, the pins and the
demo server are removed.

TXT
wait "$daemon_pid"
status=$?
daemon_pid=
say "mcpwarden exited (status $status)"
cleanup
exit "$status"
