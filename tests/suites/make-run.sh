#!/usr/bin/env bash
# `make run` as a new user meets it: scripts/run.sh for real (release build), then the commands
# it prints, run as printed:
#   - the shell inside the demo agent cgroup, and in it the same tool call straight to the
#     protected demo MCP server (refused by the kernel: "Operation not permitted") and through
#     the sidecar (answered);
#   - wardenctl status and maps against the demo pins;
#   - the official SDK client (declaring roots) calls a tool on every demo server, memory's
#     create_entities included, and server-everything's get-roots-list returns its roots;
# then stops it with SIGTERM (what Ctrl-C does) and asserts that the daemon and the demo
# server are gone and no pins or demo cgroup are left. Ports, run folder and names are the
# test's own, so a `make run` of the user's is not disturbed.
set -uo pipefail
top=${MCPWARDEN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
rel=${MCPWARDEN_REL:-$top/build/rel}
node=$top/tests/node_modules/node/bin/node
[ -x "$node" ] || node=$(command -v node)
t0=$SECONDS

skip() { echo "make-run: SKIP: $*"; exit 0; }
fail() { echo "make-run: FAIL: $*"; [ -f "$out" ] && { echo "--- run.sh output (last 40 lines)"; tail -40 "$out"; }; exit 1; }
ok() { echo "make-run: ok: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (BPF and cgroups)"
cgroot=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	[ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] && { cgroot=$d; break; }
done
[ -n "$cgroot" ] || skip "no cgroup v2 hierarchy"
[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || skip "no BPF filesystem at /sys/fs/bpf"
bpftool prog show >/dev/null 2>&1 || skip "the bpf() system call is refused here"
[ -x "$rel/mcpwarden" ] && [ -x "$rel/wardenctl" ] || skip "no release build in $rel (make)"
[ -x "$top/tests/node_modules/.bin/mcp-server-memory" ] || skip "npm test tools missing (scripts/deps.sh)"

name=mcpwarden-demo-test-$$
pins=/sys/fs/bpf/$name
rundir=$(mktemp -d "${TMPDIR:-/tmp}/mcpwarden-make-run.XXXXXX") || exit 1
out=$rundir/run.out
run_pid=
read -r port admin_port demo_port < <("$node" -e '
	const net = require("net");
	const s = [0, 1, 2].map(() => net.createServer().listen(0, "127.0.0.1"));
	Promise.all(s.map((x) => new Promise((r) => x.on("listening", r)))).then(() => {
		console.log(s.map((x) => x.address().port).join(" "));
		s.forEach((x) => x.close());
	});')

cleanup() {
	if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
		kill -TERM "$run_pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$run_pid" 2>/dev/null
	fi
	[ -d "$pins" ] && "$rel/wardenctl" uninstall --yes --pin-dir "$pins" >/dev/null 2>&1
	rmdir "$cgroot/$name/agent" "$cgroot/$name" 2>/dev/null
	rm -rf "$rundir"
}
trap cleanup EXIT

# A local OpenAI-compatible provider for the LLM route (tests/integration/llm-provider.mjs):
# make run enables it from OPENAI_API_KEY and OPENAI_BASE_URL as it would api.openai.com.
"$node" --input-type=module -e "
	import { startProvider } from '$top/tests/integration/llm-provider.mjs';
	const p = await startProvider({ key: 'sk-make-run' });
	console.log(p.url);
	process.on('SIGTERM', async () => { await p.close(); process.exit(0); });
" > "$rundir/provider.out" 2>&1 &
provider_pid=$!
for _ in $(seq 50); do grep -q '^http' "$rundir/provider.out" && break; sleep 0.1; done
provider_url=$(head -1 "$rundir/provider.out")
trap 'kill -TERM "$provider_pid" 2>/dev/null; cleanup' EXIT

# Its own session (setsid): the test can end the whole group if run.sh fails to.
OPENAI_API_KEY=sk-make-run OPENAI_BASE_URL=$provider_url OPENAI_MODEL=gpt-ok \
MCPWARDEN_RUN_DIR=$rundir MCPWARDEN_LISTEN=127.0.0.1:$port MCPWARDEN_ADMIN=127.0.0.1:$admin_port \
MCPWARDEN_DEMO_PORT=$demo_port MCPWARDEN_DEMO_NAME=$name MCPWARDEN_BIN=$rel \
	setsid "$top/scripts/run.sh" > "$out" 2>&1 &
run_pid=$!
for _ in $(seq 600); do
	grep -q '^Decisions are printed below' "$out" && break
	kill -0 "$run_pid" 2>/dev/null || fail "scripts/run.sh exited early"
	sleep 0.1
done
grep -q '^Decisions are printed below' "$out" || fail "scripts/run.sh did not get ready within 60 s"
grep -q '^Kernel enforcement is ON' "$out" || fail "enforcement is not on: $(grep '^Kernel enforcement' "$out")"
ok "started in $((SECONDS - t0)) s, kernel enforcement on"

# The dashboard, as printed: its login page, and the admin token signs in.
dash_url=$(grep -m1 "^  http://127.0.0.1:$admin_port/logs$" "$out" | sed 's/^  //')
[ -n "$dash_url" ] || fail "the /logs dashboard URL is not printed"
curl -fsS "$dash_url" | grep -q 'Sign in with the admin token' || fail "no login page at $dash_url"
login=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -D "$rundir/login.headers" \
	--data-urlencode "token=$(cat "$rundir/admin.token")" "${dash_url}/login")
[ "$login" = "303 http://127.0.0.1:$admin_port/logs" ] && grep -qi '^set-cookie: mcpwarden_admin=' "$rundir/login.headers" ||
	fail "the printed admin token does not sign in to the dashboard: $login"
ok "the /logs dashboard is printed, and its token signs in"

# The printed commands, as printed (two-space indented lines).
shell_cmd=$(grep "^  sh -c 'echo \$\$ > .*/cgroup.procs && exec bash'$" "$out")
direct_cmd=$(grep "^  .*/scripts/mcp-call.sh http://127.0.0.1:$demo_port/mcp test_simple_text$" "$out" | sed 's/^  //')
via_cmd=$(grep "^  KEY=.*/scripts/mcp-call.sh http://127.0.0.1:$port/mcp http-demo__test_simple_text$" "$out" | sed 's/^  //')
status_cmd=$(grep "^  .*/wardenctl status --pin-dir $pins$" "$out" | sed 's/^  //')
maps_cmd=$(grep "^  .*/wardenctl maps --pin-dir $pins$" "$out" | sed 's/^  //')
[ -n "$shell_cmd" ] && [ -n "$direct_cmd" ] && [ -n "$via_cmd" ] && [ -n "$status_cmd" ] &&
	[ -n "$maps_cmd" ] || fail "a command is missing from the printed instructions"

# The shell inside the demo agent cgroup runs the two calls instead of an interactive bash.
cat > "$rundir/in-cgroup.sh" <<SH
echo "cgroup: \$(cat /proc/self/cgroup | grep '^0::')"
$direct_cmd > "$rundir/direct.out" 2>&1; echo "direct exit \$?" >> "$rundir/direct.out"
$via_cmd > "$rundir/via.out" 2>&1; echo "via exit \$?" >> "$rundir/via.out"
SH
eval "${shell_cmd/exec bash/exec bash $rundir/in-cgroup.sh}" > "$rundir/shell.out" 2>&1
grep -q "^cgroup: 0::/$name/agent$" "$rundir/shell.out" ||
	fail "the printed shell command did not run in the demo cgroup: $(cat "$rundir/shell.out")"
grep -q 'Operation not permitted' "$rundir/direct.out" && grep -q '^direct exit 7$' "$rundir/direct.out" ||
	fail "the direct call was not refused by the kernel: $(cat "$rundir/direct.out")"
ok "direct call from the demo cgroup refused: $(grep -m1 'Operation not permitted' "$rundir/direct.out")"
grep -q 'This is a simple text response for testing.' "$rundir/via.out" && grep -q '^via exit 0$' "$rundir/via.out" ||
	fail "the call through the sidecar did not work: $(cat "$rundir/via.out")"
ok "the same call through the sidecar answered"
# Records leave through the daemon's writer thread a moment after the answer: wait for them.
on_record() {
	for _ in $(seq 100); do grep -q "$1" "$out" && return 0; sleep 0.05; done
	return 1
}
on_record '"type":"kernel_deny".*"cgroup":"'"$cgroot/$name/agent"'".*"dport":'"$demo_port" ||
	fail "no kernel_deny record for the demo cgroup"
on_record '"type":"decision".*"target":"http-demo__test_simple_text","decision":"allow"' ||
	fail "no allow record for the call through the sidecar"
ok "the refusal and the allowed call are on record"

# The dashboard's kernel view: the enrolment and the protected server, read from the maps.
curl -fsS -H "Authorization: Bearer $(cat "$rundir/admin.token")" \
	"http://127.0.0.1:$admin_port/api/kernel" > "$rundir/kernel.json" || fail "GET /api/kernel failed"
"$node" -e '
	const k = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
	const [cg, dest] = process.argv.slice(2);
	if (k.enforcement !== true) throw new Error("enforcement not on");
	if (!k.enrolled.some((e) => e.cgroup === cg && e.mode === "protect")) throw new Error("no enrolment of " + cg);
	if (!k.protected.some((p) => p.dest === dest)) throw new Error("no protected " + dest);
	if (!Array.isArray(k.recent_denials)) throw new Error("no recent_denials");
' "$rundir/kernel.json" "$cgroot/$name/agent" "127.0.0.1/32:$demo_port" 2> "$rundir/kernel.check" ||
	fail "/api/kernel: $(cat "$rundir/kernel.check") in $(cat "$rundir/kernel.json")"
ok "/api/kernel shows the demo enrolment (protect) and the protected server"

# wardenctl, as printed.
eval "$status_cmd" > "$rundir/status.out" 2>&1 || fail "wardenctl status failed: $(cat "$rundir/status.out")"
grep -q 'enrolled .*1 protect' "$rundir/status.out" || fail "status shows no protect enrolment: $(cat "$rundir/status.out")"
eval "$maps_cmd" > "$rundir/maps.out" 2>&1 || fail "wardenctl maps failed: $(cat "$rundir/maps.out")"
grep -q "$cgroot/$name/agent" "$rundir/maps.out" && grep -q "127.0.0.1/32:$demo_port" "$rundir/maps.out" ||
	fail "maps shows neither the demo cgroup nor the protected server: $(cat "$rundir/maps.out")"
ok "wardenctl status and maps show the demo enrolment and the protected server"

# The official SDK client on every demo server.
key=$(cat "$rundir/demo.key")
NODE_PATH=$top/tests/node_modules "$node" "$top/tests/fixtures/demo-client.mjs" \
	"http://127.0.0.1:$port/mcp" "$key" "file://$rundir/files" > "$rundir/client.out" 2>&1 ||
	fail "the SDK client failed: $(cat "$rundir/client.out")"
"$node" -e '
	const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
	const bad = Object.entries(r.calls).filter(([, c]) => !c.ok);
	if (bad.length) { console.log("failed calls: " + JSON.stringify(bad)); process.exit(1); }
	if (!r.calls["everything__get-roots-list"].text.includes(process.argv[2])) {
		console.log("get-roots-list did not return the client root: " + r.calls["everything__get-roots-list"].text);
		process.exit(1);
	}
	console.log(`${r.tools.length} tools; ${Object.keys(r.calls).join(", ")} answered`);
' "$rundir/client.out" "file://$rundir/files" > "$rundir/client.check" 2>&1 ||
	fail "SDK client: $(cat "$rundir/client.check")"
ok "SDK client: $(cat "$rundir/client.check")"
grep -q '"name":"demo-' "$rundir/state/memory.jsonl" ||
	fail "memory's file is not in the state folder"
ok "memory__create_entities wrote $rundir/state/memory.jsonl"

# The LLM route, with the curl line as printed.
llm_cmd=$(grep -A2 "^  curl -s http://127.0.0.1:$port/v1/chat/completions" "$out" | sed 's/^  //')
[ -n "$llm_cmd" ] || fail "no curl line for the LLM route"
eval "$llm_cmd" > "$rundir/llm.out" 2>&1
grep -q '"content":"Hello there"' "$rundir/llm.out" || fail "the LLM route did not answer: $(cat "$rundir/llm.out")"
on_record '"type":"llm","key":"demo".*"status":200' || fail "no llm record for the demo key"
grep -q 'sk-make-run' "$out" "$rundir/mcpwarden.json" && fail "the provider key was written out"
ok "the LLM route answered the printed curl line with the demo key"

# Stop it as Ctrl-C would, and check that nothing is left.
kill -TERM "$run_pid"
for _ in $(seq 200); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$run_pid" 2>/dev/null && fail "scripts/run.sh did not stop within 20 s of SIGTERM"
wait "$run_pid"
rc=$?
run_pid=
[ "$rc" -eq 0 ] || fail "scripts/run.sh exited $rc on SIGTERM"
[ -e "$pins" ] && fail "pins left in $pins"
[ -e "$cgroot/$name" ] && fail "demo cgroup left: $cgroot/$name"
pgrep -f "$rundir/mcpwarden.json" >/dev/null && fail "the daemon still runs"
(exec 3<>"/dev/tcp/127.0.0.1/$demo_port") 2>/dev/null && fail "the demo server still listens on $demo_port"
grep -q 'make run: stopped' "$out" || fail "no stop message"
ok "stopped: daemon and demo server gone, no pins, no demo cgroup ($((SECONDS - t0)) s)"
echo "make-run: PASS"
