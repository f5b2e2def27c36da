// Identity from the kernel. Keys bound to workloads: a key bound to cgroup A works from a
// process in A and is refused (401, an auth record naming the caller's cgroup, the counter)
// from a process in a sibling cgroup B — whatever the request carries — over IPv4 and IPv6
// loopback. Keyless workloads: no key from A (enrolled in lockdown: the sidecar is all it can
// reach) is governed by A's workload policy (records keyed "wl:<name>"), no key from B is
// refused. The unix-socket listener names callers by SO_PEERCRED, and its per-peer connection
// cap counts each caller cgroup apart. The cgroups and pins made here carry this pid and are
// removed at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
	cleanUpAfter, enforcementSkip, eventually, gatewayConfig, httpUpstream, INIT_BODY, makeKey,
	makeTempDir, paths, postFromCgroup, skipNotice, startDaemon, startFixture, startProcess,
	stopDaemonChecked, testCgroups
} from './lib.mjs';

const skip = skipNotice('identity.test.mjs', enforcementSkip());

const ADMIN_TOKEN = `adm_${process.pid}_identity_token_for_the_metrics`;

function callFrom(cgdir, url, key) {
	return postFromCgroup(cgdir, url, key).status;
}

/** argv run in cgroup directory cgdir, through the command prefix user (setpriv) when given. */
function runIn(cgdir, argv, user = []) {
	return spawnSync('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$@"`, 'sh', ...user, ...argv],
		{ encoding: 'utf8', timeout: 15000 });
}

/** An initialize POSTed over the unix socket sock by curl in cgdir: its status, 0 for none. */
function overUnix(sock, cgdir, key, user = []) {
	const r = runIn(cgdir, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', sock,
		'-X', 'POST', 'http://localhost/mcp', ...(key ? ['-H', `Authorization: Bearer ${key}`] : []),
		'-H', 'Content-Type: application/json', '-H', 'Accept: application/json, text/event-stream',
		'--data', INIT_BODY], user);
	return Number(r.stdout);
}

/**
 * A connection to sock from cgdir that sends nothing: what the daemon wrote on it before
 * closing it, or null when it kept it open for 5 s (admitted). A refusal is read this way, not
 * with curl: the daemon closes at once, and a client still sending sees a reset.
 */
function refusalIn(sock, cgdir, user = []) {
	const probe = `const s = require('node:net').connect(process.argv[1]);
		let got = '';
		s.on('data', (b) => { got += b; });
		s.on('error', () => {});
		s.on('close', () => { console.log(JSON.stringify(got)); process.exit(0); });
		setTimeout(() => { console.log('null'); process.exit(0); }, 5000);`;
	return JSON.parse(runIn(cgdir, [paths.node, '-e', probe, sock], user).stdout);
}

/**
 * A process in cgdir holding n connections to the unix socket sock, each answered once (GET
 * /healthz) and kept open; stop() lets them go. Resolves once all n are answered: its
 * stdout's first line is then "held <status>,<status>...".
 */
function holdFrom(cgdir, sock, n) {
	const hold = `const net = require('node:net');
		const [sock, n] = process.argv.slice(1);
		const codes = [];
		for (let i = 0; i < Number(n); i++) {
			const s = net.connect(sock);
			let got = '';
			s.on('connect', () => s.write('GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n'));
			s.on('data', (b) => {
				const m = /^HTTP\\/1\\.1 (\\d+)/.exec(got += b);
				if (m && !s.answered && (s.answered = true) && codes.push(m[1]) === Number(n))
					console.log('held ' + codes.join(','));
			});
			s.on('error', (e) => console.log('error ' + e.message));
		}
		setInterval(() => {}, 60000);`;
	return startProcess('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$0" "$@"`,
		paths.node, '-e', hold, sock, String(n)], { ready: /^(held|error) /, readyOn: 'stdout', name: 'holder' });
}

/** startDaemon's wrap for a daemon without CAP_DAC_READ_SEARCH (open_by_handle_at refused). */
const NO_DAC_READ_SEARCH = { wrap: ['setpriv', '--bounding-set=-dac_read_search', '--inh-caps=-dac_read_search', '--'] };

/**
 * A test's world: cgroups <tag>/agent (cgA) and <tag>/other (cgB), tag mcpwarden-<name>-<pid>,
 * and the fixture. config(extra) is a gateway config in front of the fixture; start(extra,
 * opts) starts the daemon on it and waits for the fixture to be ready; stopClean() stops it
 * and asserts it ran clean. At the test's end what others() returns is stopped, then the
 * daemon if still running, the fixture, the pins in /sys/fs/bpf/<tag> when it made them
 * (pins), the cgroups.
 */
async function agentAndOther(t, name, { pins = false, others = () => [] } = {}) {
	const tag = `mcpwarden-${name}-${process.pid}`;
	const cg = testCgroups(tag, ['agent', 'other']);
	const fixture = await startFixture();
	const pinDir = `/sys/fs/bpf/${tag}`;
	const env = {
		tag, cgA: cg.dirs.agent, cgB: cg.dirs.other, fixture, pinDir, daemon: null,
		config: (extra) => gatewayConfig([httpUpstream(fixture.url)], extra),
		async start(extra, opts) {
			env.daemon = await startDaemon(env.config(extra), opts);
			await env.daemon.waitForStderr(/upstream fixture: ready/, 15000);
			return env.daemon;
		},
		async stopClean() {
			const d = env.daemon;
			env.daemon = null;
			assert.deepEqual(await stopDaemonChecked(d), []);
		},
	};
	cleanUpAfter(t, () => [...others(), env.daemon, fixture], { pinDir: pins ? pinDir : null, cg });
	return env;
}

async function bound(t, listen) {
	const env = await agentAndOther(t, `ident${listen.startsWith('[') ? 6 : 4}`);
	const { tag, cgA, cgB } = env;
	const k = makeKey();
	const daemon = await env.start({
		listen,
		auth: { required: true },
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		keys: [{ id: 'agentkey', policy: 'all', hash: k.hash, workloads: [`cgroup:/${tag}/agent*`] }],
	});

	assert.equal(callFrom(cgA, daemon.url, k.key), 200, 'the key works from its own workload');
	assert.equal(callFrom(cgB, daemon.url, k.key), 401, 'the same key from another cgroup is refused');
	const rec = await daemon.waitForRecord((r) => r.type === 'auth'
		&& r.reason === 'key used outside its workload', 5000);
	assert.equal(rec.key, 'agentkey');
	assert.equal(rec.workload, `/${tag}/other`);
	// Again from its workload: the refusal did not hold the key or the peer off.
	assert.equal(callFrom(cgA, daemon.url, k.key), 200);
	await daemon.waitForStderr(/admin (listening )?on/, 5000);
	const admin = async (method, path, body) => {
		const r = await fetch(`${daemon.adminUrl}${path}`, { method,
			headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
			body: body === undefined ? undefined : JSON.stringify(body) });
		const text = await r.text();
		return { status: r.status, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
	};
	const m = await admin('GET', '/metrics');
	assert.equal(m.status, 200);
	assert.match(m.text, /mcpwarden_auth_refused_total\{reason="workload"\} 1\n/);

	// The admin API binds keys too: create bound to B, then patch the binding away.
	const bad = await admin('POST', '/v1/keys', { policy: 'all', workloads: ['pod:ns/x'] });
	assert.equal(bad.status, 400);
	const made = await admin('POST', '/v1/keys', { policy: 'all', workloads: [`cgroup:/${tag}/other`] });
	assert.equal(made.status, 201, made.text);
	assert.deepEqual(made.json.record.workloads, [`cgroup:/${tag}/other`]);
	assert.equal(callFrom(cgB, daemon.url, made.json.key), 200);
	assert.equal(callFrom(cgA, daemon.url, made.json.key), 401);
	const patched = await admin('PATCH', `/v1/keys/${made.json.record.id}`, { workloads: null });
	assert.equal(patched.status, 200, patched.text);
	const shown = await admin('GET', `/v1/keys/${made.json.record.id}`);
	assert.equal(shown.json.workloads, null, shown.text);
	assert.equal(callFrom(cgA, daemon.url, made.json.key), 200);
	await env.stopClean();
}

test('a key bound to a cgroup is usable only from it (IPv4 loopback)', { skip, timeout: 60000 },
	(t) => bound(t, '127.0.0.1:0'));
test('a key bound to a cgroup is usable only from it (IPv6 loopback)', { skip, timeout: 60000 },
	(t) => bound(t, '[::1]:0'));

// Without CAP_DAC_READ_SEARCH (open_by_handle_at refused) the daemon names callers by walking
// the cgroup tree: the bound key still works from its cgroup only.
test('without CAP_DAC_READ_SEARCH a bound key still tells its workload from another', { skip, timeout: 60000 }, async (t) => {
	const env = await agentAndOther(t, 'identcap');
	const { tag, cgA, cgB } = env;
	const k = makeKey();
	const daemon = await env.start({
		auth: { required: true },
		policies: { all: { tools: { allow: ['*/*'] } } },
		keys: [{ id: 'agentkey', policy: 'all', hash: k.hash, workloads: [`cgroup:/${tag}/agent`] }],
	}, NO_DAC_READ_SEARCH);
	// The daemon really runs without the capability (bit 2 of CapEff).
	const status = readFileSync(`/proc/${daemon.proc.pid}/status`, 'utf8');
	const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)[1]}`);
	assert.equal(eff & 4n, 0n, 'CAP_DAC_READ_SEARCH is dropped');
	assert.equal(callFrom(cgA, daemon.url, k.key), 200, 'the key works from its own workload');
	assert.equal(callFrom(cgB, daemon.url, k.key), 401, 'the same key from another cgroup is refused');
	const rec = await daemon.waitForRecord((r) => r.type === 'auth'
		&& r.reason === 'key used outside its workload', 5000);
	assert.equal(rec.workload, `/${tag}/other`, 'the refused caller is named');
	await daemon.waitForStderr(/callers are named by walking the cgroup tree/, 5000);
	await env.stopClean();
});

// The unix-socket listener: SO_PEERCRED names the caller (no BPF, no CAP_DAC_READ_SEARCH:
// the daemon runs without it), the socket file's mode and group decide who may connect.
test('the unix-socket listener names its callers by SO_PEERCRED', { skip, timeout: 60000 }, async (t) => {
	const env = await agentAndOther(t, 'identunix');
	const { tag, cgA, cgB } = env;
	const dir = makeTempDir('mcpwarden-unix-');
	chmodSync(dir, 0o755);
	let sock = join(dir, 'agent.sock');
	const k = makeKey();
	const extra = (listenUnix) => ({
		listen_unix: listenUnix,
		auth: { required: true },
		policies: { all: { tools: { allow: ['*/*'] } }, simple: { tools: { allow: ['fixture/test_simple_text'] } } },
		keys: [{ id: 'agentkey', policy: 'all', hash: k.hash, workloads: [`cgroup:/${tag}/agent`] }],
		workloads: [{ name: 'other', cgroup: `/${tag}/other`, policy: 'simple' }],
	});
	const daemon = await env.start(extra({ path: sock, group: 4242, mode: '0660' }), NO_DAC_READ_SEARCH);
	const st = statSync(sock);
	assert.ok(st.isSocket());
	assert.equal(st.mode & 0o777, 0o660);
	assert.equal(st.gid, 4242);
	const over = (cgdir, key, user = []) => overUnix(sock, cgdir, key, user);
	assert.equal(over(cgA, k.key), 200, 'the key works from its workload over the socket');
	assert.equal(over(cgB, k.key), 401, 'and not from another cgroup');
	const rec = await daemon.waitForRecord((r) => r.type === 'auth'
		&& r.reason === 'key used outside its workload', 5000);
	assert.equal(rec.workload, `/${tag}/other`);
	assert.equal(over(cgB, null), 200, 'a keyless workload over the socket');
	// Who may connect is the file's group: a user in group 4242 may, one outside it may not.
	const as = (gid) => ['setpriv', '--reuid=65534', `--regid=${gid}`, '--clear-groups', '--'];
	assert.equal(over(cgA, k.key, as(4242)), 200, 'a member of the socket\'s group');
	assert.equal(over(cgA, k.key, as(65534)), 0, 'not a member: connect is refused');
	// A reload that changes the socket: the new one serves, the old file is gone.
	const sock2 = join(dir, 'agent2.sock');
	const r = await daemon.reload(env.config(extra(sock2)));
	assert.equal(r.ok, true, JSON.stringify(r.errors));
	assert.equal(existsSync(sock), false, 'the old socket file is removed');
	assert.equal(statSync(sock2).mode & 0o777, 0o660);
	const wasSock = sock;
	sock = sock2;
	assert.equal(over(cgA, k.key), 200, 'the new socket serves');
	assert.equal(existsSync(wasSock), false);
	await env.stopClean();
	assert.equal(existsSync(sock), false, 'the socket file is removed at exit');
});

// limits.max_connections_per_peer on the unix socket, where every client has the same (no)
// address: a peer is the caller's cgroup, the identity it is governed as. An agent holding its
// share is refused one more connection from any of its processes, whatever their uid, while
// an agent in another cgroup is still served; once it lets its connections go it is served.
test('the unix-socket listener caps connections per caller cgroup', { skip, timeout: 60000 }, async (t) => {
	let holder;
	const env = await agentAndOther(t, 'identpeercap', { others: () => [holder] });
	const { cgA, cgB } = env;
	const dir = makeTempDir('mcpwarden-unix-');
	chmodSync(dir, 0o755);
	const sock = join(dir, 'agent.sock');
	const daemon = await env.start({
		listen_unix: { path: sock, group: 4242, mode: '0660' },
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		limits: { max_connections_per_peer: 2 },
		timeouts: { header_ms: 60000 },	/* the held connections stay idle */
	});
	holder = await holdFrom(cgA, sock, 2);
	assert.equal(holder.stdoutLines[0], 'held 200,200', 'the agent holds its share');
	const refused = refusalIn(sock, cgA);
	assert.match(refused ?? '', /^HTTP\/1\.1 503 /, 'one more from its cgroup is refused');
	assert.match(refused, /\r\nRetry-After: 1\r\n/);
	assert.equal(JSON.parse(refused.split('\r\n\r\n')[1]).error.message,
		'too many connections from this peer (limits.max_connections_per_peer)');
	const otherUid = ['setpriv', '--reuid=65534', '--regid=4242', '--clear-groups', '--'];
	assert.match(refusalIn(sock, cgA, otherUid) ?? '', /^HTTP\/1\.1 503 /, 'from another uid in it too');
	assert.equal(overUnix(sock, cgB, null), 200, 'an agent in another cgroup is served');
	assert.equal(overUnix(sock, cgB, null, otherUid), 200);
	const m = await fetch(`${daemon.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
	assert.match(await m.text(), /^mcpwarden_connections_refused_total\{listener="agent",reason="peer_cap"\} 2$/m);
	await holder.stop(3000);
	holder = null;
	await eventually(() => overUnix(sock, cgA, null) === 200,
		{ ms: 5000, what: 'the agent is served once its connections are gone' });
	await env.stopClean();
});

test('a keyless workload is governed by its own policy; other cgroups need a key', { skip, timeout: 60000 }, async (t) => {
	const env = await agentAndOther(t, 'identwl', { pins: true });
	const { tag, cgA, cgB, fixture, pinDir } = env;
	// The agent's cgroup is enrolled in lockdown: the sidecar is the only place it can reach.
	const daemon = await env.start({
		auth: { required: true },
		policies: { simple: { tools: { allow: ['fixture/test_simple_text'] } } },
		workloads: [{ name: 'agents', cgroup: `/${tag}/agent`, policy: 'simple' }],
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		enforcement: { enabled: true, pin_dir: pinDir, enroll: [{ cgroup: cgA, mode: 'lockdown' }] },
	});
	await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
	// Straight to the upstream, the enrolled agent is refused by the kernel.
	const direct = spawnSync('sh', ['-c', `echo $$ > '${cgA}/cgroup.procs' && exec curl -s -o /dev/null -w '%{http_code}' -X POST ${fixture.url}`],
		{ encoding: 'utf8', timeout: 15000 });
	assert.equal(direct.stdout, '000', 'lockdown must refuse the direct connection');

	assert.equal(postFromCgroup(cgB, daemon.url, null).status, 401, 'no key and no workload: refused');
	const init = postFromCgroup(cgA, daemon.url, null);
	assert.equal(init.status, 200, init.text);
	const call = (name) => JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call',
		params: { name, arguments: {} } });
	const ok = postFromCgroup(cgA, daemon.url, null, call('test_simple_text'), init.session);
	assert.equal(ok.status, 200, ok.text);
	assert.match(ok.text, /simple text response/);
	const denied = postFromCgroup(cgA, daemon.url, null, call('test_error_handling'), init.session);
	assert.match(denied.text, /-32003/, 'refused by the workload\'s policy');
	const rec = await daemon.waitForRecord((r) => r.type === 'decision' && r.target === 'test_error_handling', 5000);
	assert.equal(rec.key, 'wl:agents');
	assert.equal(rec.decision, 'deny');
	const allowed = await daemon.waitForRecord((r) => r.type === 'decision' && r.target === 'test_simple_text', 5000);
	assert.equal(allowed.key, 'wl:agents');
	// Every call's record names the caller's cgroup as the kernel did.
	assert.equal(allowed.workload, `/${tag}/agent`);
	assert.equal(rec.workload, `/${tag}/agent`);
	// With the programs installed every caller (enrolled or not) was named from warden_conns,
	// with no sock_diag round trip: four connections, four answers from memory.
	await daemon.waitForStderr(/admin (listening )?on/, 5000);
	const m = await fetch(`${daemon.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
	const text = await m.text();
	assert.match(text, /mcpwarden_identity_lookups_total\{path="warden_conns"\} 4\n/, text);
	assert.match(text, /mcpwarden_identity_lookups_total\{path="sock_diag"\} 0\n/);

	// wardenctl identities names the same cgroups from the same config.
	const out = spawnSync(join(paths.build, 'wardenctl'), ['identities', '--config', daemon.configPath, '--json'],
		{ encoding: 'utf8' });
	assert.equal(out.status, 0, out.stderr);
	const rows = JSON.parse(out.stdout).identities.filter((r) => r.cgroup.startsWith(`/${tag}/`));
	assert.deepEqual(rows, [{ cgroup: `/${tag}/agent`, keys: '', workload: 'wl:agents' }]);
	await env.stopClean();
});
