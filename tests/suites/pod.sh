#!/usr/bin/env bash
# The sidecar image in a podman pod, with the kernel half on the host, as issue 10 deploys it:
#
#   host:  a protected MCP server (tests/fixtures/conformance-server.mjs, HTTP on 127.0.0.1)
#          the node enforcer: the daemon under test with an "enforcement" section and its own
#          pin dir; it protects its upstream (that server) automatically
#   pod:   sidecar  the image from scripts/image.sh (release build), config mounted read-only,
#                   upstream = the protected server, one key
#          agent    busybox in a FROM scratch image (offline), enrolled by its container id
#                   with `wardenctl enroll --container ID --mode protect`
#
# Asserts, from inside the agent container: a direct TCP connect to the protected server fails
# with EPERM and the enforcer records the denial for the agent's cgroup; the same tools/call
# through the sidecar (with the key) succeeds and the sidecar records an allow decision. Then
# the pod is removed: the enforcer drops the enrolment of the gone cgroup by itself, and after
# `wardenctl uninstall` no pin is left. Everything the test made is removed (pod, containers,
# its images, pins, processes, files).
#
# Pods use --network host: 127.0.0.1 is the host's loopback in both containers, and the fixture
# answers only loopback Hosts (DNS-rebinding protection). The kernel path is the same as in a
# pod network namespace (the hooks judge the calling cgroup, not the namespace).
# Podman on hybrid-cgroup hosts needs: vfs storage, cgroupfs manager, runc, and a
# containers.conf without default ulimits (deploy/container/containers.conf).
set -uo pipefail
top=${MCPWARDEN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MCPWARDEN_BUILD:-$top/build/test}
rel=${MCPWARDEN_REL:-$top/build/rel}
node=$top/tests/node_modules/node/bin/node
[ -x "$node" ] || node=$(command -v node)
fixture=$top/tests/fixtures/conformance-server.mjs
daemon=$build/mcpwarden
ctl=$build/wardenctl
export CONTAINERS_CONF=${CONTAINERS_CONF:-$top/deploy/container/containers.conf}
P=(podman --storage-driver vfs --cgroup-manager cgroupfs --runtime runc)
B=(buildah --storage-driver vfs)
t0=$SECONDS

skip() { echo "pod: SKIP: $*"; exit 0; }
fail() { echo "pod: FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (BPF, cgroups, podman)"
for c in podman buildah runc catatonit busybox; do
	command -v "$c" >/dev/null || skip "$c is missing (scripts/deps.sh installs it)"
done
[ -x "$rel/mcpwarden" ] || skip "no release build in $rel (make MODE=rel all)"
for f in "$daemon" "$ctl" "$fixture" "$node"; do
	[ -e "$f" ] || fail "missing $f (make MODE=test check-build; scripts/deps.sh)"
done
cgroot=/sys/fs/cgroup/unified
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] && cgroot=/sys/fs/cgroup
[ "$(stat -f -c %T "$cgroot" 2>/dev/null)" = cgroup2fs ] || skip "no cgroup v2 mount"
"${P[@]}" info >/dev/null 2>&1 || skip "podman cannot run here: $("${P[@]}" info 2>&1 | tail -1)"

tag=podtest-$$
pod=mcpwarden-$tag
sidecar_image=localhost/mcpwarden-$tag:test
agent_image=localhost/mcpwarden-$tag-agent:test
pins=/sys/fs/bpf/mcpwarden-$tag
. "$top/tests/lib/suite.sh"   # wait_for, stop_all
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcpwarden-pod.XXXXXX") || exit 1
# podman builds its pause image (from catatonit) on the first pod; remove it only if we did.
pause_before=$("${P[@]}" images -q --filter reference=localhost/podman-pause 2>/dev/null)
pids=()
# libpod_parent is podman's parent of every pod cgroup: remove it too if it came with us.
parent_before=()
for d in "$cgroot" /sys/fs/cgroup/systemd; do
	[ -d "$d/libpod_parent" ] && parent_before+=("$d")
done

# podman 4.3 with the cgroupfs manager leaves the pod's own (empty) cgroup behind in the
# unified and name=systemd hierarchies: remove ours (rmdir only removes an empty one).
rm_pod_cgroups() {
	local d
	[ -n "${pod_id:-}" ] || return 0
	for d in "$cgroot" /sys/fs/cgroup/systemd; do
		[ -d "$d/libpod_parent/$pod_id" ] && rmdir "$d/libpod_parent/$pod_id" 2>/dev/null
		case " ${parent_before[*]} " in *" $d "*) ;; *)
			[ -d "$d/libpod_parent" ] && rmdir "$d/libpod_parent" 2>/dev/null ;;
		esac
	done
	return 0
}

cleanup() {
	"${P[@]}" pod rm -f -t 0 "$pod" >/dev/null 2>&1
	rm_pod_cgroups
	"${P[@]}" rmi -f "$sidecar_image" "$agent_image" >/dev/null 2>&1
	if [ -z "$pause_before" ]; then
		"${P[@]}" rmi $("${P[@]}" images -q --filter reference=localhost/podman-pause) \
			>/dev/null 2>&1
	fi
	stop_all "${pids[@]}"
	[ -d "$pins" ] && "$ctl" --pin-dir "$pins" uninstall --yes >/dev/null 2>&1
	[ -n "${POD_KEEP:-}" ] && mkdir -p "$POD_KEEP" && cp -r "$tmp"/. "$POD_KEEP"/
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- images: the sidecar from the release build, the agent from busybox-static ---------------
STAGE=$tmp/stage IMAGE=${sidecar_image%:*} TAG_LATEST=0 \
	"$top/scripts/image.sh" "$rel" test >"$tmp/image.log" 2>&1 ||
	{ cat "$tmp/image.log"; fail "the image did not build"; }
sed 's/^/  /' "$tmp/image.log" | tail -1
mkdir -p "$tmp/agent/rootfs/bin" "$tmp/agent/rootfs/tmp"
cp /usr/bin/busybox "$tmp/agent/rootfs/bin/busybox"
printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/bin/busybox"]\n' >"$tmp/agent/Containerfile"
"${B[@]}" bud -q -t "$agent_image" "$tmp/agent" >/dev/null 2>"$tmp/agent.err" ||
	{ cat "$tmp/agent.err"; fail "the agent image did not build"; }

# --- host: the protected MCP server and the enforcer ------------------------------------------
"$node" "$fixture" --port 0 >"$tmp/server.out" 2>"$tmp/server.err" &
pids+=($!)
server_url=$(wait_for "$tmp/server.out" 'http://127\.0\.0\.1:[0-9]+/mcp' $!) ||
	{ cat "$tmp/server.err"; fail "the MCP server did not start"; }
server_port=${server_url##*:}
server_port=${server_port%%/*}

mkdir -p "$tmp/enforcer-state"
cat >"$tmp/enforcer.json" <<JSON
{
  "listen": "127.0.0.1:0", "auth": { "required": false }, "state_dir": "$tmp/enforcer-state",
  "upstreams": [ { "name": "protected", "transport": "http", "url": "$server_url" } ],
  "enforcement": { "enabled": true, "pin_dir": "$pins", "errno": "EPERM" }
}
JSON
"$daemon" -c "$tmp/enforcer.json" >"$tmp/enforcer.out" 2>"$tmp/enforcer.err" &
enforcer_pid=$!
pids+=("$enforcer_pid")
if ! wait_for "$tmp/enforcer.err" 'kernel enforcement (is ON|could NOT start)[^)]*' \
		"$enforcer_pid" >"$tmp/enforcer.state" || grep -q 'NOT' "$tmp/enforcer.state"; then
	grep -q 'Operation not supported\|BPF' "$tmp/enforcer.err" &&
		skip "no BPF cgroup enforcement here: $(grep -m1 enforcement "$tmp/enforcer.err")"
	tail -20 "$tmp/enforcer.err"
	fail "the enforcer did not start"
fi

# --- the pod -----------------------------------------------------------------------------------
key="mcpw_${tag}_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
cat >"$tmp/sidecar.json" <<JSON
{
  "listen": "127.0.0.1:0", "state_dir": "/var/lib/mcpwarden",
  "upstreams": [ { "name": "protected", "transport": "http", "url": "$server_url" } ],
  "keys": [ { "id": "agent", "policy": "agent", "hash": "sha256:$hash" } ],
  "policies": { "agent": { "tools": { "allow": ["*/*"] } } }
}
JSON
chmod 0644 "$tmp/sidecar.json"
pod_id=$("${P[@]}" pod create --name "$pod" --network host 2>"$tmp/pod.err") ||
	{ cat "$tmp/pod.err"; fail "podman pod create failed"; }
"${P[@]}" run -d --pod "$pod" --name "$pod-sidecar" --read-only --cap-drop all \
	-v "$tmp/sidecar.json:/etc/mcpwarden/mcpwarden.json:ro" \
	--tmpfs /var/lib/mcpwarden:rw,mode=0700,U \
	"$sidecar_image" >/dev/null 2>"$tmp/sidecar.err" ||
	{ cat "$tmp/sidecar.err"; fail "the sidecar container did not start"; }
agent_id=$("${P[@]}" run -d --pod "$pod" --name "$pod-agent" "$agent_image" sleep 600 \
	2>"$tmp/agent-run.err") || { cat "$tmp/agent-run.err"; fail "the agent did not start"; }

sidecar_url=
for ((i = 0; i < 100; i++)); do
	sidecar_url=$("${P[@]}" logs "$pod-sidecar" 2>&1 |
		grep -m1 -oE 'listening on http://127\.0\.0\.1:[0-9]+/mcp' | cut -d' ' -f3)
	[ -n "$sidecar_url" ] && "${P[@]}" logs "$pod-sidecar" 2>&1 | grep -q 'upstream protected: ready' &&
		break
	sleep 0.1
done
[ -n "$sidecar_url" ] || { "${P[@]}" logs "$pod-sidecar" | tail; fail "the sidecar did not come up"; }
echo "pod: sidecar (user $("${P[@]}" inspect -f '{{.Config.User}}' "$pod-sidecar"), read-only root) \
on $sidecar_url; protected server on 127.0.0.1:$server_port"

# The agent's cgroup as the kernel sees it: exec runs in the container's cgroup.
agent_cg=$("${P[@]}" exec "$pod-agent" busybox cat /proc/self/cgroup | sed -n 's/^0:://p')
case "$agent_cg" in
*libpod-"$agent_id"*) ;;
*) fail "the agent's exec is not in its container cgroup (0::$agent_cg)" ;;
esac

"$ctl" --pin-dir "$pins" enroll --container "${agent_id:0:12}" --mode protect >"$tmp/enroll.out" \
	2>&1 || { cat "$tmp/enroll.out"; fail "wardenctl enroll --container failed"; }
grep -q "libpod-$agent_id" "$tmp/enroll.out" || { cat "$tmp/enroll.out"; fail "enrolled the wrong cgroup"; }
agent_cgid=$(stat -c %i "$cgroot$agent_cg")
echo "pod: $(cat "$tmp/enroll.out")"

# --- from inside the agent --------------------------------------------------------------------
# A direct connection to the protected server: refused by the kernel with EPERM.
direct=$("${P[@]}" exec "$pod-agent" busybox nc -w 3 127.0.0.1 "$server_port" </dev/null 2>&1)
case "$direct" in
*"Operation not permitted"*) echo "pod: direct connect from the agent: refused (EPERM)" ;;
*) fail "a direct connection from the enrolled agent was not refused with EPERM: '$direct'" ;;
esac
for ((i = 0; i < 50; i++)); do
	grep -q "\"decision\":\"deny\".*\"dport\":$server_port" "$tmp/enforcer.out" && break
	sleep 0.1
done
deny=$(grep -m1 "\"decision\":\"deny\".*\"dport\":$server_port" "$tmp/enforcer.out")
[[ "$deny" == *"\"cgroup_id\":$agent_cgid"* && "$deny" == *'"reason":"protected"'* ]] ||
	fail "the enforcer did not record the agent's refused connect: '${deny:-nothing}'"
echo "pod: the enforcer recorded it: ${deny:0:160}..."

# The same server through the sidecar, with the key: initialize, initialized, tools/call.
cat >"$tmp/agent.sh" <<'SH'
url=$1 key=$2
post() { # session body
	busybox timeout 15 busybox wget -S -q -O- --header 'Content-Type: application/json' \
		--header 'Accept: application/json, text/event-stream' \
		--header "Authorization: Bearer $key" ${1:+--header "Mcp-Session-Id: $1"} \
		--post-data "$2" "$url" 2>/tmp/headers || { busybox cat /tmp/headers >&2; return 1; }
}
post "" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"podtest-agent","version":"1"}}}' >/dev/null || exit 11
sid=$(busybox sed -n 's/^ *[Mm][Cc][Pp]-[Ss]ession-[Ii][Dd]: *\([^ \r]*\).*/\1/p' /tmp/headers)
[ -n "$sid" ] || exit 12
post "$sid" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
post "$sid" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}'
SH
"${P[@]}" cp "$tmp/agent.sh" "$pod-agent:/tmp/agent.sh" >/dev/null 2>&1 ||
	fail "could not copy the agent's script into the container"
answer=$("${P[@]}" exec "$pod-agent" busybox sh /tmp/agent.sh "$sidecar_url" "$key" 2>&1)
rc=$?
[ $rc -eq 0 ] && [[ "$answer" == *'"result"'*'"text"'* ]] ||
	fail "the call through the sidecar failed (status $rc): '$answer'"
echo "pod: the same server through the sidecar: tools/call answered ${answer:0:100}..."
allow=
for ((i = 0; i < 30; i++)); do
	"${P[@]}" logs "$pod-sidecar" >"$tmp/sidecar.log" 2>&1
	allow=$(grep '"target":"test_simple_text"' "$tmp/sidecar.log" | grep -m1 '"decision":"allow"')
	[ -n "$allow" ] && break
	sleep 0.1
done
[[ "$allow" == *'"key":"agent"'* ]] ||
	{ tail -5 "$tmp/sidecar.log"; fail "the sidecar did not record the call: '${allow:-nothing}'"; }
echo "pod: the sidecar recorded it: ${allow:0:160}..."

# --- the pod goes: nothing of it stays in the kernel ------------------------------------------
"${P[@]}" pod rm -f -t 0 "$pod" >/dev/null 2>&1 || fail "podman pod rm failed"
rm_pod_cgroups
[ -d "$cgroot$agent_cg" ] && fail "the agent's cgroup outlived the pod"
left=
for ((i = 0; i < 150; i++)); do
	left=$("$ctl" --pin-dir "$pins" maps --json | "$node" -e '
		const m = JSON.parse(require("fs").readFileSync(0, "utf8")).maps.warden_enrolled;
		const rows = Array.isArray(m) ? m : m.entries;
		console.log(rows.filter((r) => String(r.cgroup_id ?? r.id) === process.argv[1]).length)' \
		"$agent_cgid")
	[ "$left" = 0 ] && break
	sleep 0.1
done
[ "$left" = 0 ] || fail "the enrolment of the removed pod's agent stayed in warden_enrolled"
grep -q "cgroup $agent_cgid" "$tmp/enforcer.err" && echo "pod: $(grep -m1 "cgroup $agent_cgid" \
	"$tmp/enforcer.err" | sed 's/^.*enforcement: //')"
echo "pod: pod removed; its enrolment is gone from warden_enrolled"

kill -TERM "$enforcer_pid"
wait "$enforcer_pid"
st=$?
[ $st -eq 0 ] || { tail -30 "$tmp/enforcer.err"; fail "the enforcer exited with status $st"; }
pids=("${pids[@]/$enforcer_pid/}")
"$ctl" --pin-dir "$pins" uninstall --yes >/dev/null || fail "wardenctl uninstall failed"
[ -e "$pins" ] && fail "pins left in $pins after uninstall"
echo "pod: no pins left in $pins"
echo "pod: OK ($((SECONDS - t0)) s)"
