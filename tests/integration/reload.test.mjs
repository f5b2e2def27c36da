// SIGHUP: a change to keys, policies or limits only is applied in place — other agents keep
// their sessions and no MCP server is restarted; a change that touches the upstreams ends the
// sessions (clients re-initialise on 404) and restarts them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { connectHttp, faultStdioUpstream, gatewayConfig, makeKey, startDaemon, stopCleanly } from './lib.mjs';

// Every test's gateway: the fault upstream (its settings in extra), keys required, one policy
// that allows everything; more: other top-level settings.
const faultGateway = (keys, extra = {}, more = {}) => gatewayConfig([faultStdioUpstream('fault', extra)], {
	prefix: 'always', auth: { required: true },
	policies: { all: { tools: { allow: ['*/*'] } } },
	keys, ...more,
});
const keyOf = (id, k) => ({ id, policy: 'all', hash: k.hash });
const connectAs = (d, k) => connectHttp(d.url, { headers: { Authorization: `Bearer ${k.key}` } });

// The daemon for cfg, stopped after test t; returned once its fault upstream is ready.
async function faultDaemon(t, cfg) {
	const d = await startDaemon(cfg);
	t.after(() => d.stop(3000));
	await d.waitForStderr(/upstream fault: ready/, 20000);
	return d;
}

// Two keys, a and b, and the config entries of both.
function twoKeys() {
	const a = makeKey(), b = makeKey();
	return { a, b, both: [keyOf('a', a), keyOf('b', b)] };
}

async function pidOf(c) {
	const r = await c.client.callTool({ name: 'fault__pid', arguments: {} });
	return r.content[0].text;
}

test('governance-only reload keeps sessions and upstreams', { timeout: 60000 }, async (t) => {
	const { a, b, both } = twoKeys();
	const d = await faultDaemon(t, faultGateway(both));

	const ca = await connectAs(d, a);
	const cb = await connectAs(d, b);
	const pid = await pidOf(ca);

	// Revoke b in the file: b is refused from the next request, a's session goes on, the
	// upstream child is the same process.
	const r = await d.reload(faultGateway([both[0]]));
	assert.equal(r.ok, true);
	assert.ok(d.stderrLines.some((l) => /sessions and upstreams kept/.test(l)));
	assert.equal(await pidOf(ca), pid, 'same session, same upstream child');
	await assert.rejects(cb.client.listTools(), /401|Unauthorized|invalid key/i);

	// A change to the upstreams is a full reload: sessions end (404), the child is new.
	assert.equal((await d.reload(faultGateway([both[0]], { request_timeout_ms: 30000 }), 20000)).ok, true);
	await d.waitForStderr(/upstream fault: ready/, 20000);
	await assert.rejects(ca.client.listTools(), /404|Session not found|not found/i);
	const again = await connectAs(d, a);
	assert.notEqual(await pidOf(again), pid, 'a restarted upstream child');
	await again.close();
	await ca.close();
	await cb.close();
	await stopCleanly(d);
});

test('a new configuration that cannot start leaves the previous one serving, keys and all', { timeout: 60000 }, async (t) => {
	const a = makeKey();
	const cfg = (extra = {}) => faultGateway([keyOf('a', a)], extra);
	const d = await faultDaemon(t, cfg());
	// Valid, but its store cannot open (state_dir is not a directory): the gate cannot be
	// built, and the daemon goes back to the previous configuration, whose keys it rebuilds.
	const bad = JSON.stringify({ ...cfg({ request_timeout_ms: 30000 }), state_dir: '/dev/null' });
	await d.reload(bad, 3000).catch(() => {});
	await d.waitForStderr(/going back to the previous one/, 10000);
	await d.waitForStderr(/upstream fault: ready/, 20000);
	const c = await connectAs(d, a);
	assert.ok(await pidOf(c), 'the key of the previous configuration still works');
	await c.close();
	await stopCleanly(d);
});

test('a new configuration that fails after its rules went in: the previous keys come back, the admin API\'s too', { timeout: 60000 }, async (t) => {
	const a = makeKey();
	const token = 'reload-admin-token-0123456789abcdef';
	const cfg = (extra = {}, admin = '127.0.0.1:0') =>
		faultGateway([keyOf('a', a)], extra, { admin: { listen: admin, token } });
	const d = await startDaemon(cfg());
	t.after(() => d.stop(3000));
	await d.waitForStderr(/upstream fault: ready/, 20000);
	const made = await fetch(d.adminUrl + '/v1/keys', { method: 'POST',
		headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
		body: JSON.stringify({ name: 'made at run time', policy: 'all' }) });
	assert.equal(made.status, 201);
	const runtime = { key: (await made.json()).key };
	// Same store: the gate stays and takes the new rules; then the admin plane cannot bind
	// (its address is taken), so the daemon goes back to the previous configuration, whose keys
	// are no longer in its document: they come from the rules the gate handed back.
	const taken = createServer().listen(0, '127.0.0.1');
	await once(taken, 'listening');
	t.after(() => taken.close());
	await d.reload(cfg({ request_timeout_ms: 30000 }, `127.0.0.1:${taken.address().port}`), 3000)
		.catch(() => {});
	await d.waitForStderr(/going back to the previous one/, 10000);
	await d.waitForStderr(/upstream fault: ready/, 20000);
	assert.ok(!d.stderrLines.some((l) => /could not start either/.test(l)));
	for (const k of [a, runtime]) {
		const c = await connectAs(d, k);
		assert.ok(await pidOf(c), 'the previous configuration\'s key and the admin API\'s work');
		await c.close();
	}
	await stopCleanly(d);
});

test('a burst of SIGHUPs: the file is read off the loop, one reload at a time, the last file wins', { timeout: 60000 }, async (t) => {
	const { a, b, both } = twoKeys();
	const d = await faultDaemon(t, faultGateway(both));
	const ca = await connectAs(d, a);
	const from = d.stderrLines.length;
	writeFileSync(d.configPath, JSON.stringify({ state_dir: join(d.dir, 'state'), ...faultGateway([both[0]]) }));
	for (let i = 0; i < 5; i++)
		d.proc.kill('SIGHUP');
	// Calls go on while the file is read; then b is gone, a stays.
	assert.ok(await pidOf(ca));
	await d.waitForStderr(/configuration reloaded/, 15000);
	await new Promise((r) => setTimeout(r, 500));   // a follow-up reload of the same file
	const cb = await connectAs(d, b).catch((e) => e);
	assert.ok(cb instanceof Error, 'b was removed by the reload');
	assert.ok(await pidOf(ca), 'a keeps its session');
	const reloads = d.stderrLines.slice(from).filter((l) => /configuration reloaded/.test(l));
	assert.ok(reloads.length >= 1 && reloads.length <= 5, `${reloads.length} reloads`);
	await ca.close();
	await stopCleanly(d);
});

test('a full reload keeps the store: a spent rate limit stays spent, nothing is reopened', { timeout: 60000 }, async (t) => {
	const a = makeKey();
	const cfg = (extra = {}) => faultGateway([keyOf('a', a)], extra,
		{ rate_limits: { 'key:a': { key: { requests: 2, per: 'hour' } } } });
	const d = await faultDaemon(t, cfg());
	const c = await connectAs(d, a);
	await pidOf(c);
	await pidOf(c);
	await c.close();

	// An upstream setting changed: a full reload. The upstream restarts; the gate does not.
	const from = d.stderrLines.length;
	assert.equal((await d.reload(cfg({ request_timeout_ms: 30000 }), 20000)).ok, true);
	await d.waitForStderr(/upstream fault: ready/, 20000);
	assert.ok(d.stderrLines.slice(from).some((l) => /store, spend, rate limits and pins kept/.test(l)),
		'the reload says what it kept');
	const again = await connectAs(d, a);
	await assert.rejects(pidOf(again), /rate limit/i, 'the third call of the hour is still refused');
	await again.close();
	await stopCleanly(d);
});
