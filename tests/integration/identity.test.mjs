// Keys bound to workloads, with the caller named by the kernel: a key bound to cgroup A works
// from a process in A and is refused (401, an auth record naming the caller's cgroup, the
// counter) from a process in a sibling cgroup B — whatever the request carries — over IPv4 and
// IPv6 loopback. The cgroups made here carry this pid and are removed at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import {
	cgroupRoot, enforcementSkip, gatewayConfig, httpUpstream, makeKey, startDaemon, startFixture,
} from './lib.mjs';

const skip = enforcementSkip();
if (skip)
	console.log(`# SKIP identity.test.mjs: ${skip}`);

const ADMIN_TOKEN = `adm_${process.pid}_identity_token_for_the_metrics`;
const INIT = JSON.stringify({
	jsonrpc: '2.0', id: 1, method: 'initialize',
	params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
});

/** POST initialize with key from a curl placed in cgdir: the HTTP status. */
function callFrom(cgdir, url, key) {
	const r = spawnSync('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$@"`, 'sh',
		'curl', '-g', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', url,
		'-H', `Authorization: Bearer ${key}`, '-H', 'Content-Type: application/json',
		'-H', 'Accept: application/json, text/event-stream', '--data', INIT],
	{ encoding: 'utf8', timeout: 15000 });
	return Number(r.stdout);
}

async function bound(t, listen) {
	const tag = `mcpwarden-ident-${process.pid}-${listen.startsWith('[') ? 6 : 4}`;
	const base = join(cgroupRoot, tag), cgA = join(base, 'agent'), cgB = join(base, 'other');
	mkdirSync(base);
	mkdirSync(cgA);
	mkdirSync(cgB);
	const fixture = await startFixture();
	let daemon;
	t.after(async () => {
		await daemon?.stop(3000);
		await fixture.stop(3000);
		for (const d of [cgA, cgB, base])
			try { rmdirSync(d); } catch { /* curl exited: empty */ }
	});
	const k = makeKey();
	daemon = await startDaemon(gatewayConfig([httpUpstream(fixture.url)], {
		listen,
		auth: { required: true },
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		keys: [{ id: 'agentkey', policy: 'all', hash: k.hash, workloads: [`cgroup:/${tag}/agent*`] }],
	}));
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);

	assert.equal(callFrom(cgA, daemon.url, k.key), 200, 'the key works from its own workload');
	assert.equal(callFrom(cgB, daemon.url, k.key), 401, 'the same key from another cgroup is refused');
	const rec = await daemon.waitForRecord((r) => r.type === 'auth'
		&& r.reason === 'key used outside its workload', 5000);
	assert.equal(rec.key, 'agentkey');
	assert.equal(rec.workload, `/${tag}/other`);
	// Again from its workload: the refusal did not hold the key or the peer off.
	assert.equal(callFrom(cgA, daemon.url, k.key), 200);
	await daemon.waitForStderr(/admin (listening )?on/, 5000);
	const m = await fetch(`${daemon.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
	assert.equal(m.status, 200);
	assert.match(await m.text(), /mcpwarden_auth_refused_total\{reason="workload"\} 1\n/);
}

test('a key bound to a cgroup is usable only from it (IPv4 loopback)', { skip, timeout: 60000 },
	(t) => bound(t, '127.0.0.1:0'));
test('a key bound to a cgroup is usable only from it (IPv6 loopback)', { skip, timeout: 60000 },
	(t) => bound(t, '[::1]:0'));
