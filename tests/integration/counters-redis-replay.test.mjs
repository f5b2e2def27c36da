// Exactly once for the fleet's counters in Redis (docs/counters.md, "Failure modes"): charges
// kept while Redis is away survive a restart of the sidecar (the store's fleet_pending table)
// and are replayed in order when Redis returns; a commit Redis ran but whose reply was lost
// (a TCP proxy here forwards it and drops the answer) is replayed and counted once, by its id.
// A real redis-server, started here on a free port in a temp dir and stopped after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { eventually, everythingUpstream, freePort, makeKeys, rawSession, responseOf,
	startDaemon } from './lib.mjs';
import { cli, dayCounter, redisSkip, redisSuite } from './redis-lib.mjs';

let SQLITE = false;
try {
	execFileSync('sqlite3', ['-version'], { stdio: 'ignore' });
	SQLITE = true;
} catch { /* checked below */ }
const skip = redisSkip || (SQLITE ? false
	: 'the sqlite3 CLI is not installed (scripts/deps.sh installs it)');
if (skip)
	console.log(`# skipped: ${skip}`);

const pendingRows = (db) => Number(execFileSync('sqlite3', ['-readonly', db,
	'SELECT count(*) FROM fleet_pending'], { encoding: 'utf8' }).trim());

const TOKEN = 'counters-replay-admin-token';
const metrics = async (d) => (await fetch(d.adminUrl + '/metrics',
	{ headers: { Authorization: `Bearer ${TOKEN}` } })).text();
const metric = (text, name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const call = (id, msg) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message: msg } } });

function config(port, keys, stateDir, counters = {}) {
	return {
		listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys, state_dir: stateDir,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { default: '0', 'everything/echo': '0.10' },
		budgets: { 'key:kept': [{ name: 'daily', limit: '100.00', period: 'daily' }],
			'key:once': [{ name: 'daily', limit: '100.00', period: 'daily' }] },
		counters: { backend: 'redis', url: `redis://127.0.0.1:${port}/0`,
			connect_timeout_ms: 300, command_timeout_ms: 500, ...counters },
	};
}

/**
 * A TCP proxy to Redis that, once armed, forwards the first command carrying a charge's
 * marker (":c:") and then closes the connection instead of passing Redis's answer on.
 */
async function lossyProxy(target) {
	const port = await freePort();
	const state = { armed: false, dropped: 0, socks: new Set() };
	const server = createServer((c) => {
		const up = createConnection({ host: '127.0.0.1', port: target });
		let waiting = false;
		state.socks.add(c);
		state.socks.add(up);
		const close = () => { c.destroy(); up.destroy(); };
		c.on('data', (b) => {
			if (state.armed && b.includes(':c:')) {
				state.armed = false;
				waiting = true;
			}
			up.write(b);
		});
		up.on('data', (b) => {
			if (waiting) {          // Redis ran it: its answer never arrives
				state.dropped++;
				close();
				return;
			}
			c.write(b);
		});
		c.on('error', close);
		up.on('error', close);
		c.on('close', close);
		up.on('close', close);
	});
	await new Promise((res) => server.listen(port, '127.0.0.1', res));
	return { port, state,
		close: () => new Promise((res) => {
			for (const s of state.socks)
				s.destroy();
			server.close(res);
		}) };
}

redisSuite('counters in Redis: exactly once', { prefix: 'mcpwarden-replay-', skip }, (redis) => {
	const { k, keys } = makeKeys({ kept: 'all', once: 'all' });

	test('charges kept while Redis is away survive a restart of the sidecar and count once',
		async () => {
			const state = join(redis.dir, 'kept-state');
			mkdirSync(state);
			const db = join(state, 'mcpwarden.db');
			const cfg = config(redis.port, keys, state, { on_unreachable: 'local',
				local_allowance: { spend: '1.00', calls: 100 } });
			const ck = dayCounter('key:kept');
			let d = await startDaemon(cfg, { ready: true });
			const s = await rawSession(d.url, bearer(k.kept));
			assert.ok(responseOf(await s.post(call('k0', 'first'))).result);
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '100000');
			redis.server.proc.kill('SIGKILL');
			await redis.server.exited;
			let ok = 0;
			for (let i = 1; i <= 6; i++)
				ok += responseOf(await s.post(call(`k${i}`, `m${i}`))).result ? 1 : 0;
			assert.equal(ok, 6);
			const m = await metrics(d);
			assert.equal(metric(m, 'mcpwarden_counters_replay_stored'), 6, m);
			// Stopped (SIGTERM) while Redis is still away: the charges stay in the store.
			assert.equal((await d.stop(15000)).code, 0);
			assert.ok(d.stderrLines.some((l) => /charges not replayed to Redis/.test(l)));
			assert.equal(pendingRows(db), 6);
			d = await startDaemon(cfg, { ready: true });
			redis.daemons.push(d);
			assert.ok(d.stderrLines.some((l) => /6 charges kept while Redis was away/.test(l)),
				d.stderrLines.join('\n'));
			const m2 = await metrics(d);
			assert.equal(metric(m2, 'mcpwarden_counters_replay_queue'), 6, m2);
			assert.equal(metric(m2, 'mcpwarden_counters_replay_stored'), 6, m2);
			await redis.restart();
			// Exactly the sum: the first call and the six kept ones, each once.
			await eventually(async () => metric(await metrics(d), 'mcpwarden_counters_replay_queue') === 0,
				{ what: 'the replay queue drained', ms: 15000 });
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '700000');
			assert.equal(cli(redis.port, 'HGET', ck, 'reserved'), '0');
			const m3 = await metrics(d);
			assert.equal(metric(m3, 'mcpwarden_counters_replayed_total'), 6, m3);
			assert.equal(metric(m3, 'mcpwarden_counters_replay_stored'), 0, m3);
			// deleted on the store's writer thread once Redis had them
			await eventually(() => pendingRows(db) === 0, { what: 'the fleet_pending table empty' });
			// a commit after the replay goes straight through
			const s2 = await rawSession(d.url, bearer(k.kept));
			assert.ok(responseOf(await s2.post(call('k7', 'after'))).result);
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '800000');
		});

	test('a commit whose reply was lost is replayed and counted once', async () => {
		const proxy = await lossyProxy(redis.port);
		const state = join(redis.dir, 'once-state');
		mkdirSync(state);
		const db = join(state, 'mcpwarden.db');
		try {
			const d = await startDaemon(config(proxy.port, keys, state), { ready: true });
			redis.daemons.push(d);
			const ck = dayCounter('key:once');
			const s = await rawSession(d.url, bearer(k.once));
			assert.ok(responseOf(await s.post(call('o0', 'first'))).result);
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '100000');
			proxy.state.armed = true;
			// answered: the charge is kept in the store when its reply is lost
			const r = responseOf(await s.post(call('o1', 'lost reply')));
			assert.ok(r.result, JSON.stringify(r));
			assert.equal(proxy.state.dropped, 1);
			await eventually(async () => metric(await metrics(d), 'mcpwarden_counters_duplicates_total') === 1,
				{ what: 'the replayed commit answered "already counted"', ms: 15000 });
			const m = await metrics(d);
			assert.equal(metric(m, 'mcpwarden_counters_replay_queue'), 0, m);
			assert.equal(metric(m, 'mcpwarden_counters_replayed_total'), 1, m);
			// Redis ran it once: 0.20, not 0.30
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '200000');
			assert.equal(cli(redis.port, 'HGET', ck, 'reserved'), '0');
			// the markers: one per commit, beside the key's counters, with a lifetime
			const markers = cli(redis.port, '--scan', '--pattern', 'mcpwarden:{key:once}:c:*').split('\n');
			assert.equal(markers.length, 2, markers.join(','));
			const ttl = Number(cli(redis.port, 'PTTL', markers[0]));
			assert.ok(ttl > 5 * 3600 * 1000 && ttl <= 6 * 3600 * 1000, `PTTL ${ttl}`);
			assert.ok(d.stderrLines.some((l) => /was counted already/.test(l)));
			await eventually(() => pendingRows(db) === 0, { what: 'the fleet_pending table empty' });
		} finally {
			await proxy.close();
		}
	});
});
