// Transparent redirect, end to end on the real kernel: an unmodified SDK client started in an
// enrolled cgroup and configured with an upstream's real URL is sent to the gateway by the
// kernel, sees only that upstream's tools under their own names, is governed by its
// workload's policy (an allowed tool works, a denied one is refused) and recorded with the
// original destination; getpeername() still shows the upstream's address. IPv4, IPv6 and
// v4-mapped. A protected destination that is not a plain-HTTP upstream stays refused, and a
// cgroup enrolled without redirect keeps being refused. initialize answers as the upstream
// the agent meant (its capabilities and serverInfo: two upstreams that declare different
// ones), and connects made while the daemon reloads again and again are all redirected.
// Cgroups and pins carry this pid and are removed at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
	cleanUpAfter, enforcementSkip, gatewayConfig, httpUpstream, paths, skipNotice, startDaemon,
	startFixture, stopDaemonChecked, testCgroups
} from './lib.mjs';

const skip = skipNotice('redirect.test.mjs', enforcementSkip());

/** Connect to host:port again and again (one at a time) until stdin ends: how many
 * connected, the errors by code, and how many distinct peers getpeername() showed. */
const CONNECT_LOOP = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const failed = {}, peers = new Set();
let ok = 0, done = false;
process.stdin.on('data', () => {}).on('end', () => { done = true; });
const one = () => new Promise((resolve) => {
	const s = net.connect({ host, port: Number(port) }, () => {
		ok++; peers.add(s.remoteAddress + ':' + s.remotePort); s.destroy(); resolve();
	});
	s.on('error', (e) => { failed[e.code] = (failed[e.code] ?? 0) + 1; resolve(); });
});
(async () => {
	while (!done)
		await one();
	console.log(JSON.stringify({ ok, failed, peers: peers.size }));
})();
`;

/** Run the redirect agent in cgdir against url: what it printed. */
function agent(cgdir, url, allowed, denied) {
	const probe = join(paths.top, 'tests', 'fixtures', 'redirect-agent.mjs');
	const r = spawnSync('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$0" "$@"`,
		paths.node, probe, url, allowed, denied],
	{ encoding: 'utf8', timeout: 30000, env: { ...process.env, NODE_PATH: join(paths.top, 'tests', 'node_modules') } });
	const line = r.stdout.trim().split('\n').pop();
	if (!line)
		throw new Error(`agent printed nothing (stderr: ${r.stderr})`);
	return JSON.parse(line);
}

test('an SDK client with the upstream\'s real URL is redirected, governed and recorded', { skip, timeout: 90000 }, async (t) => {
	const tag = `mcpwarden-redir-${process.pid}`;
	const cg = testCgroups(tag, ['agent', 'plain']), { agent: cgA, plain: cgPlain } = cg.dirs;
	const pinDir = `/sys/fs/bpf/${tag}`;
	// beta declares tools only, under another serverInfo: what a redirected agent must see.
	const alpha = await startFixture(), beta = await startFixture({ env: { FIXTURE_TOOLS_ONLY: '1' } });
	const six = await startFixture({ host: '::1' });
	// A protected address that is no plain-HTTP upstream (as an https:// one): not redirected.
	const other = createServer(() => {});
	await new Promise((r) => other.listen(0, '127.0.0.1', r));
	const otherPort = other.address().port;
	let daemon;
	cleanUpAfter(t, () => [daemon, alpha, beta, six, { stop: async () => other.close() }],
		{ pinDir, cg });
	const config = (allow = []) => gatewayConfig([httpUpstream(alpha.url, 'alpha'),
		httpUpstream(beta.url, 'beta'), httpUpstream(six.url, 'six')], {
		prefix: 'always',
		auth: { required: true },
		policies: { agents: { tools: { allow: ['alpha/test_simple_text', 'beta/test_simple_text',
			'six/test_simple_text'] } } },
		workloads: [{ name: 'agents', cgroup: `/${tag}/agent`, policy: 'agents' }],
		admin: { listen: '127.0.0.1:0', token: `adm_${process.pid}_redirect_token_for_metrics` },
		enforcement: {
			enabled: true, pin_dir: pinDir, protect: [`127.0.0.1:${otherPort}`], allow,
			enroll: [{ cgroup: cgA, mode: 'protect', redirect: true },
				{ cgroup: cgPlain, mode: 'protect' }],
		},
	});
	daemon = await startDaemon(config());
	await daemon.waitForStderr(/transparent redirect to 127\.0\.0\.1:\d+/, 10000);
	for (const n of ['alpha', 'beta', 'six'])
		await daemon.waitForStderr(new RegExp(`upstream ${n}: ready`), 15000);

	const check = async (url, server, wantPeer, from) => {
		const r = agent(cgA, url, 'test_simple_text', 'test_error_handling');
		assert.equal(r.ok, true, JSON.stringify(r));
		// Only that upstream, under its own names (the gateway prefixes for everyone else).
		assert.ok(r.tools.includes('test_simple_text'), r.tools.join(','));
		assert.ok(r.tools.every((n) => !n.includes('__')), r.tools.join(','));
		assert.match(JSON.stringify(r.allowed.content), /simple text response/);
		const denied = JSON.stringify(r.denied);
		assert.match(denied, /-32003|not allowed|denied/i, denied);
		// named as the upstream names it, not as the gateway exposes it (alpha__...)
		assert.match(denied, /test_error_handling/, denied);
		assert.ok(!denied.includes('__'), denied);
		assert.deepEqual(r.peer, wantPeer, 'getpeername shows the original address');
		const rec = await daemon.waitForRecord((x) => x.type === 'decision' && x.decision === 'allow'
			&& x.server === server && x.original_destination === from, 5000);
		assert.equal(rec.redirected, true);
		assert.equal(rec.key, 'wl:agents');
		assert.equal(rec.workload, `/${tag}/agent`);
		const deny = await daemon.waitForRecord((x) => x.type === 'decision' && x.decision === 'deny'
			&& x.server === server && x.original_destination === from, 5000);
		assert.equal(deny.target, 'test_error_handling');
		return r;
	};
	const pa = Number(new URL(alpha.url).port), p6 = Number(new URL(six.url).port);
	const pb = Number(new URL(beta.url).port);
	const ra = await check(alpha.url, 'alpha', { address: '127.0.0.1', port: pa }, `127.0.0.1:${pa}`);
	// initialize answers as the upstream the agent meant: its capabilities and serverInfo.
	assert.equal(ra.info.name, 'mcpwarden-conformance-fixture');
	for (const c of ['tools', 'resources', 'prompts', 'logging', 'completions'])
		assert.ok(ra.caps[c], `alpha declares ${c}: ${JSON.stringify(ra.caps)}`);
	assert.equal(ra.caps.resources.subscribe, true);
	const rb = await check(beta.url, 'beta', { address: '127.0.0.1', port: pb }, `127.0.0.1:${pb}`);
	assert.deepEqual(rb.info, { name: 'mcpwarden-conformance-fixture-tools-only', version: '1.0.1' });
	assert.deepEqual(Object.keys(rb.caps), ['tools'], JSON.stringify(rb.caps));
	await check(six.url, 'six', { address: '::1', port: p6 }, `[::1]:${p6}`);
	await check(`http://[::ffff:127.0.0.1]:${pa}/mcp`, 'alpha', { address: '::ffff:127.0.0.1', port: pa },
		`[::ffff:127.0.0.1]:${pa}`);
	// Every redirected connection was named and routed from warden_conns (IPv4, IPv6,
	// v4-mapped): no sock_diag round trip, no bpf() lookup.
	await daemon.waitForStderr(/admin (listening )?on/, 5000);
	const mt = await (await fetch(`${daemon.adminUrl}/metrics`, {
		headers: { Authorization: `Bearer adm_${process.pid}_redirect_token_for_metrics` } })).text();
	const fast = Number(/mcpwarden_identity_lookups_total\{path="warden_conns"\} (\d+)/.exec(mt)?.[1]);
	assert.ok(fast >= 4, mt);
	assert.match(mt, /mcpwarden_identity_lookups_total\{path="sock_diag"\} 0\n/);

	// Not redirectable: refused by the kernel as before.
	const refused = agent(cgA, `http://127.0.0.1:${otherPort}/mcp`, 'x', 'y');
	assert.equal(refused.ok, false);
	assert.equal(refused.code, 'EPERM', JSON.stringify(refused));
	// Enrolled without redirect: today's behaviour.
	const plain = agent(cgPlain, alpha.url, 'test_simple_text', 'test_error_handling');
	assert.equal(plain.ok, false);
	assert.equal(plain.code, 'EPERM', JSON.stringify(plain));

	// Reloads keep the redirect port: an agent connecting all through them is always sent
	// to the listener (before, each reload wrote port 0 for a moment: EPERM).
	const loop = spawn('sh', ['-c', `echo $$ > '${cgA}/cgroup.procs' && exec "$0" "$@"`, paths.node,
		'-e', CONNECT_LOOP, '127.0.0.1', String(pa)], { stdio: ['pipe', 'pipe', 'pipe'] });
	let loopOut = '';
	loop.stdout.on('data', (b) => { loopOut += b; });
	const loopDone = new Promise((r) => loop.on('exit', r));
	await new Promise((r) => setTimeout(r, 300));	// connecting already
	const reloads = 4;
	for (let i = 0; i < reloads; i++) {
		// An enforcement change: the whole router and the guard are replaced, not only rules.
		const r = await daemon.reload(config(i % 2 ? [] : ['192.0.2.1/32:9']));
		assert.equal(r.ok, true, JSON.stringify(r));
	}
	loop.stdin.end();
	await loopDone;
	const lr = JSON.parse(loopOut.trim().split('\n').pop());
	assert.ok(lr.ok > 50, JSON.stringify(lr));
	assert.deepEqual(lr.failed, {}, `connects refused during ${reloads} reloads: ${JSON.stringify(lr)}`);
	assert.equal(lr.peers, 1, 'every connect saw the original address');
	for (const n of ['alpha', 'beta', 'six'])
		await daemon.waitForStderr(new RegExp(`upstream ${n}: ready`), 15000);
	await check(alpha.url, 'alpha', { address: '127.0.0.1', port: pa }, `127.0.0.1:${pa}`);

	const d = daemon;
	daemon = null;
	assert.deepEqual(await stopDaemonChecked(d), []);
});
