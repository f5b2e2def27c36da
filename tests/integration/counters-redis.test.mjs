// Fleet-wide budgets and rate limits in Redis (docs/counters.md): several mcpwarden processes in
// front of server-everything share one key's budget and rate limit through a real redis-server
// (started here on a free port in a temp dir, stopped after) and never exceed them under
// concurrent load; Redis killed and restarted: fail_closed refuses with -32007 and /readyz
// fails, then both recover; local admits within its allowance and replays its charges so the
// counters converge and every acknowledged charge counts exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, everythingUpstream, freePort, makeKeys, rawSession, responseOf, startDaemon,
	stopCleanly } from './lib.mjs';
import { burst, cli, dayCounter, redisSkip, redisSuite, startSentinel, today } from './redis-lib.mjs';

const skip = redisSkip;
if (skip)
	console.log(`# skipped: ${skip}`);

const TOKEN = 'counters-redis-admin-token';
const admin = async (d, path) => {
	const r = await fetch(d.adminUrl + path, { headers: { Authorization: `Bearer ${TOKEN}` } });
	return { status: r.status, json: await r.json().catch(() => null), text: '' };
};
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const call = (id, msg) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message: msg } } });

function config(port, keys, counters = {}) {
	return {
		listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { default: '0', 'everything/echo': '0.10' },
		budgets: { 'key:shared': [{ name: 'daily', limit: '1.00', period: 'daily' }],
			'key:local': [{ name: 'daily', limit: '100.00', period: 'daily' }],
			'key:dead': [{ name: 'daily', limit: '1.00', period: 'daily' }],
			'key:burst': [{ name: 'daily', limit: '100.00', period: 'daily' }] },
		rate_limits: { 'key:rated': { key: { requests: 8, per: 'hour' } } },
		counters: { backend: 'redis', url: `redis://127.0.0.1:${port}/0`,
			connect_timeout_ms: 300, command_timeout_ms: 500, ...counters },
	};
}

redisSuite('counters in Redis', { prefix: 'mcpwarden-redis-', skip }, (redis) => {
	const { k, keys } = makeKeys({ shared: 'all', rated: 'all', local: 'all', dead: 'all',
		burst: 'all' });

	test('two sidecars share one budget and one rate limit exactly under concurrent load',
		async () => {
			const a = await startDaemon(config(redis.port, keys), { ready: true });
			redis.daemons.push(a);
			const b = await startDaemon(config(redis.port, keys), { ready: true });
			redis.daemons.push(b);
			// 1.00 at 0.10 a call: 10 calls in the whole fleet, whatever the interleaving.
			const [ra, rb] = await Promise.all([burst(a.url, k.shared, 3, 6), burst(b.url, k.shared, 3, 6)]);
			assert.equal(ra.ok + rb.ok, 10, `ok a=${ra.ok} b=${rb.ok}`);
			for (const e of [...ra.refused, ...rb.refused]) {
				assert.equal(e.code, -32005, JSON.stringify(e));
				assert.equal(e.data.scope, 'key:shared');
			}
			const ck = dayCounter('key:shared');
			await eventually(() => cli(redis.port, 'HGET', ck, 'reserved') === '0',
				{ what: 'no reservation left' });
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '1000000');
			// Each sidecar's admin API reads the fleet's counters: both show the whole 1.00.
			for (const d of [a, b]) {
				const u = await admin(d, '/v1/usage?key=shared');
				assert.equal(u.status, 200, JSON.stringify(u.json));
				assert.equal(u.json.counters, 'redis');
				const bu = u.json.keys[0].budgets[0];
				assert.equal(bu.spent, '1.00');
				assert.equal(bu.reserved, '0.00');
				assert.equal(bu.remaining, '0.00');
			}
			const reset = await fetch(a.adminUrl + '/v1/usage/reset', { method: 'POST',
				headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
				body: JSON.stringify({ key: 'shared' }) });
			assert.equal(reset.status, 409);
			assert.match(await reset.text(), /not supported with Redis counters/);
			const m = await (await fetch(a.adminUrl + '/metrics',
				{ headers: { Authorization: `Bearer ${TOKEN}` } })).text();
			assert.match(m, /mcpwarden_counters_backend_up\{backend="redis",state="up",on_unreachable="fail_closed"\} 1/);
			assert.match(m, /mcpwarden_counters_replay_queue 0/);
			// 8 per hour for the key, tokens taken in Redis: 8 calls in the fleet.
			const [qa, qb] = await Promise.all([burst(a.url, k.rated, 2, 6), burst(b.url, k.rated, 2, 6)]);
			assert.equal(qa.ok + qb.ok, 8, `ok a=${qa.ok} b=${qb.ok}`);
			for (const e of [...qa.refused, ...qb.refused]) {
				assert.equal(e.code, -32004, JSON.stringify(e));
				assert.ok(e.data.retry_after_ms > 0);
			}
		});

	test('a reservation its sidecar never settled stops holding capacity at its deadline',
		async () => {
			const d = redis.daemons[0];
			const ck = dayCounter('key:dead');
			// A sidecar died holding the whole 1.00 of this key: one reservation whose deadline
			// passed, and one still running.
			cli(redis.port, 'HSET', ck, 'reserved', '1000000', 'r:gone.1', '900000', 'd:gone.1', '1',
				'r:alive.1', '100000', 'd:alive.1', String(today() + 10 * 86400));
			const s = await rawSession(d.url, bearer(k.dead));
			const r = responseOf(await s.post(call('d1', 'x')));
			assert.ok(r.result, JSON.stringify(r));
			await eventually(() => cli(redis.port, 'HGET', ck, 'reserved') === '100000',
				{ what: 'only the live reservation held' });
			assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '100000');
			assert.equal(cli(redis.port, 'HEXISTS', ck, 'r:gone.1'), '0');
			assert.equal(cli(redis.port, 'HEXISTS', ck, 'd:gone.1'), '0');
			assert.equal(cli(redis.port, 'HEXISTS', ck, 'd:alive.1'), '1');
			// 0.10 spent + 0.10 held by the live one: 8 more calls fit, the 9th does not
			let ok = 0;
			for (let i = 0; i < 9; i++)
				ok += responseOf(await s.post(call(`d${i + 2}`, 'y'))).result ? 1 : 0;
			assert.equal(ok, 8);
		});

	test('Sentinel: the sidecar asks the sentinel for the master and counts there', async () => {
		const sport = await freePort();
		const sentinel = await startSentinel(redis.dir, sport, 'fleet', redis.port);
		try {
			const cfg = config(redis.port, keys);
			delete cfg.counters.url;
			cfg.counters.sentinel = { master: 'fleet', addrs: [`127.0.0.1:${sport}`] };
			const d = await startDaemon(cfg, { ready: true });
			try {
				await eventually(async () => (await fetch(new URL('/readyz', d.url))).status === 200,
					{ what: 'ready through the sentinel' });
				assert.ok(d.stderrLines.some((l) => l.includes(`counters: Redis 127.0.0.1:${redis.port} up`)));
				const s = await rawSession(d.url, bearer(k.rated));
				const r = responseOf(await s.post(call('sent', 'x')));
				// the fleet spent this key's 8 tokens in the first test: this new sidecar
				// refuses too, because it counts in the same Redis
				assert.equal(r.error?.code, -32004, JSON.stringify(r));
			} finally {
				await stopCleanly(d);
			}
		} finally {
			await sentinel.stop(3000);
		}
	});

	test('a session that ends while its call waits for Redis: the call is answered, '
		+ 'nothing is held', async () => {
		const d = redis.daemons[0];
		const s = await rawSession(d.url, bearer(k.dead));
		redis.server.proc.kill('SIGSTOP');     // Redis stops answering: the call waits for it
		try {
			const pending = s.post(call('w1', 'waiting'));
			await new Promise((res) => setTimeout(res, 150));
			const del = await fetch(d.url, { method: 'DELETE', headers: s.headers });
			assert.equal(del.status, 200);
			const m = responseOf(await pending);
			assert.equal(m.error.code, -32800, JSON.stringify(m));
			assert.match(m.error.message, /session ended/);
		} finally {
			redis.server.proc.kill('SIGCONT');
		}
		// the sidecar goes on: the command timeout dropped the connection, a new one is made
		await eventually(async () => (await fetch(new URL('/readyz', d.url))).status === 200,
			{ what: 'ready again' });
		const s2 = await rawSession(d.url, bearer(k.rated));
		assert.equal(responseOf(await s2.post(call('w2', 'x'))).error.code, -32004);
		// the reservation Redis made after SIGCONT, whose reply the sidecar never read, is
		// given back on the new connection: only the live one of the earlier test is held
		const ck = dayCounter('key:dead');
		await eventually(() => cli(redis.port, 'HGET', ck, 'reserved') === '100000',
			{ what: 'the lost reservation released' });
	});

	test('fail_closed: Redis killed refuses governed calls with -32007 and fails /readyz; '
		+ 'both recover when it is back', async () => {
		const d = redis.daemons[0];
		const s = await rawSession(d.url, bearer(k.rated));
		redis.server.proc.kill('SIGKILL');
		await redis.server.exited;
		let r;
		await eventually(async () => {
			r = responseOf(await s.post(call('down', 'x')));
			return r?.error?.code === -32007;
		}, { what: '-32007 while Redis is down' });
		assert.equal(r.error.data.type, 'store_unavailable');
		assert.equal(r.error.data.reason, 'counters_unreachable');
		assert.equal(r.error.data.backend, 'redis');
		assert.match(r.error.message, /Redis/);
		const ready = await fetch(new URL('/readyz', d.url));
		assert.equal(ready.status, 503);
		assert.match(await ready.text(), /counters unavailable: Redis/);
		assert.ok(d.stderrLines.some((l) => /counters: Redis unreachable/.test(l)));
		// A key with nothing to count is not refused.
		await redis.restart();
		await eventually(async () => (await fetch(new URL('/readyz', d.url))).status === 200,
			{ what: '/readyz back', ms: 15000 });
		const s2 = await rawSession(d.url, bearer(k.shared));
		r = responseOf(await s2.post(call('up', 'y')));
		// the shared budget is spent (AOF kept it): refused by budget, not by the outage
		assert.equal(r.error.code, -32005);
	});

	test('local: a bounded allowance while Redis is away, replayed when it returns',
		async () => {
			const d = await startDaemon(config(redis.port, keys, { on_unreachable: 'local',
				local_allowance: { spend: '0.30', calls: 10 } }), { ready: true });
			redis.daemons.push(d);
			const ck = dayCounter('key:local');
			const s = await rawSession(d.url, bearer(k.local));
			assert.ok(responseOf(await s.post(call('l0', 'first'))).result);
			const before = Number(cli(redis.port, 'HGET', ck, 'spent'));
			assert.equal(before, 100000);
			redis.server.proc.kill('SIGKILL');
			await redis.server.exited;
			let ok = 0, refused = 0;
			for (let i = 1; i <= 5; i++) {
				const m = responseOf(await s.post(call(`l${i}`, `m${i}`)));
				if (m.result)
					ok++;
				else {
					assert.equal(m.error.code, -32007, JSON.stringify(m.error));
					refused++;
				}
			}
			// 0.30 of allowance at 0.10 a call; a call the connection loss caught may have
			// been charged through the replay path too, never more than the allowance
			assert.equal(ok, 3, `ok ${ok}`);
			assert.equal(refused, 2);
			assert.equal((await fetch(new URL('/readyz', d.url))).status, 200);
			const m = await (await fetch(d.adminUrl + '/metrics',
				{ headers: { Authorization: `Bearer ${TOKEN}` } })).text();
			assert.match(m, /mcpwarden_counters_backend_up\{backend="redis",state="down",on_unreachable="local"\} 0/);
			// 3 charges (and the release of a reservation whose reply the kill may have cut)
			assert.match(m, /mcpwarden_counters_replay_queue [34]\n/);
			assert.match(m, /mcpwarden_counters_local_admits_total 3/);
			// the fleet's counters cannot be read meanwhile: a clear 503
			const u = await admin(d, '/v1/usage?key=local');
			assert.equal(u.status, 503);
			await redis.restart();
			await eventually(() => Number(cli(redis.port, 'HGET', ck, 'spent')) === before + 300000,
				{ what: 'the local charges replayed', ms: 15000 });
			// the daemon's message, written by its log thread: it may reach us after the replay
			await eventually(() => d.stderrLines.some((l) =>
				/counters: Redis .* up \([34] charges to replay\)/.test(l)),
			{ what: `the replay announced: ${d.stderrLines.slice(-10).join('\n')}`, ms: 5000 });
		});

	test('Redis killed in the middle of a burst: every acknowledged charge reaches Redis',
		async () => {
			const d = redis.daemons[redis.daemons.length - 1];   // the local-mode sidecar
			const ck = dayCounter('key:burst');
			const before = Number(cli(redis.port, 'HGET', ck, 'spent') || 0);
			const ss = await Promise.all([0, 1, 2, 3].map(() => rawSession(d.url, bearer(k.burst))));
			const calls = ss.flatMap((s, i) => Array.from({ length: 10 },
				(_, j) => s.post(call(`b${i}-${j}`, 'z'))));
			await new Promise((res) => setTimeout(res, 30));
			redis.server.proc.kill('SIGKILL');
			const rs = (await Promise.all(calls)).map(responseOf);
			await redis.server.exited;
			const ok = rs.filter((m) => m?.result).length;
			for (const m of rs.filter((x) => !x?.result))
				assert.equal(m.error.code, -32007, JSON.stringify(m.error));
			await redis.restart();
			// every acknowledged call, once: a commit Redis ran but whose reply the kill cut
			// is replayed and answered "already counted" (its id), unless the kill lost it
			// too (then the replay is its only count)
			await eventually(() => Number(cli(redis.port, 'HGET', ck, 'spent') || 0) - before >= ok * 100000,
				{ what: `the ${ok} acknowledged charges in Redis`, ms: 15000 });
			await eventually(async () => /mcpwarden_counters_replay_queue 0/.test(await (await fetch(
				d.adminUrl + '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } })).text()),
			{ what: 'the replay queue drained' });
			const delta = Number(cli(redis.port, 'HGET', ck, 'spent')) - before;
			console.log(`# burst: ${ok} of ${rs.length} acknowledged, ${delta / 100000} charged in Redis`);
			assert.equal(delta, ok * 100000);
		});
});
