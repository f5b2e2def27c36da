// Transparent redirect, end to end on the real kernel: an unmodified SDK client started in an
// enrolled cgroup and configured with an upstream's real URL is sent to the gateway by the
// kernel, sees only that upstream's tools under their own names, is governed by its
// workload's policy (an allowed tool works, a denied one is refused) and recorded with the
// original destination; getpeername() still shows the upstream's address. IPv4, IPv6 and
// v4-mapped. A protected destination that is not a plain-HTTP upstream stays refused, and a
// cgroup enrolled without redirect keeps being refused. Cgroups and pins carry this pid and
// are removed at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
	cgroupRoot, enforcementSkip, gatewayConfig, httpUpstream, paths, startDaemon, startFixture,
	stopDaemonChecked,
} from './lib.mjs';

const skip = enforcementSkip();
if (skip)
	console.log(`# SKIP redirect.test.mjs: ${skip}`);

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
	const base = join(cgroupRoot, tag);
	const cgA = join(base, 'agent'), cgPlain = join(base, 'plain');
	const pinDir = `/sys/fs/bpf/${tag}`;
	for (const d of [base, cgA, cgPlain])
		mkdirSync(d);
	const alpha = await startFixture(), beta = await startFixture();
	const six = await startFixture({ host: '::1' });
	// A protected address that is no plain-HTTP upstream (as an https:// one): not redirected.
	const other = createServer(() => {});
	await new Promise((r) => other.listen(0, '127.0.0.1', r));
	const otherPort = other.address().port;
	let daemon;
	t.after(async () => {
		await daemon?.stop(3000);
		for (const f of [alpha, beta, six])
			await f.stop(3000);
		other.close();
		spawnSync(join(paths.build, 'wardenctl'), ['uninstall', '--yes', '--pin-dir', pinDir]);
		for (const d of [cgA, cgPlain, base])
			try { rmdirSync(d); } catch { /* the agents exited: empty */ }
	});
	daemon = await startDaemon(gatewayConfig([httpUpstream(alpha.url, 'alpha'),
		httpUpstream(beta.url, 'beta'), httpUpstream(six.url, 'six')], {
		prefix: 'always',
		auth: { required: true },
		policies: { agents: { tools: { allow: ['alpha/test_simple_text', 'six/test_simple_text'] } } },
		workloads: [{ name: 'agents', cgroup: `/${tag}/agent`, policy: 'agents' }],
		enforcement: {
			enabled: true, pin_dir: pinDir, protect: [`127.0.0.1:${otherPort}`],
			enroll: [{ cgroup: cgA, mode: 'protect', redirect: true },
				{ cgroup: cgPlain, mode: 'protect' }],
		},
	}));
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
		assert.deepEqual(r.peer, wantPeer, 'getpeername shows the original address');
		const rec = await daemon.waitForRecord((x) => x.type === 'decision' && x.decision === 'allow'
			&& x.server === server && x.original_destination === from, 5000);
		assert.equal(rec.redirected, true);
		assert.equal(rec.key, 'wl:agents');
		assert.equal(rec.workload, `/${tag}/agent`);
		const deny = await daemon.waitForRecord((x) => x.type === 'decision' && x.decision === 'deny'
			&& x.server === server && x.original_destination === from, 5000);
		assert.equal(deny.target, 'test_error_handling');
	};
	const pa = Number(new URL(alpha.url).port), p6 = Number(new URL(six.url).port);
	await check(alpha.url, 'alpha', { address: '127.0.0.1', port: pa }, `127.0.0.1:${pa}`);
	await check(six.url, 'six', { address: '::1', port: p6 }, `[::1]:${p6}`);
	await check(`http://[::ffff:127.0.0.1]:${pa}/mcp`, 'alpha', { address: '::ffff:127.0.0.1', port: pa },
		`[::ffff:127.0.0.1]:${pa}`);

	// Not redirectable: refused by the kernel as before.
	const refused = agent(cgA, `http://127.0.0.1:${otherPort}/mcp`, 'x', 'y');
	assert.equal(refused.ok, false);
	assert.equal(refused.code, 'EPERM', JSON.stringify(refused));
	// Enrolled without redirect: today's behaviour.
	const plain = agent(cgPlain, alpha.url, 'test_simple_text', 'test_error_handling');
	assert.equal(plain.ok, false);
	assert.equal(plain.code, 'EPERM', JSON.stringify(plain));

	const d = daemon;
	daemon = null;
	assert.deepEqual(await stopDaemonChecked(d), []);
});
