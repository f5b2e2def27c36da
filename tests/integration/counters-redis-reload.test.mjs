// A reload (SIGHUP) that changes `counters` while charges wait for Redis (docs/counters.md,
// "Reloading counters"): refused with a clear log line, the running configuration and its
// Redis kept, the charges replayed there when it returns; once the queue is empty the same
// reload goes through. A reload that leaves `counters` alone is not held back.
// Two real redis-servers, each on a free port in the suite's temp dir, stopped after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, everythingUpstream, freePort, makeKeys, rawSession, responseOf,
	startDaemon } from './lib.mjs';
import { cli, dayCounter, redisSuite, startRedis } from './redis-lib.mjs';

const TOKEN = 'counters-reload-admin-token';
const metrics = async (d) => (await fetch(d.adminUrl + '/metrics',
	{ headers: { Authorization: `Bearer ${TOKEN}` } })).text();
const metric = (text, name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
const call = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message: `m${id}` } } });

function config(keys, stateDir, counters, limit = '100.00') {
	return {
		listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys, state_dir: stateDir,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { default: '0', 'everything/echo': '0.10' },
		budgets: { 'key:moved': [{ name: 'daily', limit, period: 'daily' }] },
		counters,
	};
}
const onRedis = (port) => ({ backend: 'redis', url: `redis://127.0.0.1:${port}/0`,
	connect_timeout_ms: 300, command_timeout_ms: 500, on_unreachable: 'local',
	local_allowance: { spend: '1.00', calls: 100 } });

redisSuite('counters in Redis: a reload while charges are queued', { prefix: 'mcpwarden-creload-' },
	(redis) => {
		const { k, keys } = makeKeys({ moved: 'all' });

		test('changing counters is refused until the queued charges reached their Redis', async () => {
			const state = join(redis.dir, 'state');
			const bdir = join(redis.dir, 'b');
			mkdirSync(state);
			mkdirSync(bdir);
			const bport = await freePort();
			const b = await startRedis(bdir, bport);
			const ck = dayCounter('key:moved');
			try {
				const d = await startDaemon(config(keys, state, onRedis(redis.port)), { ready: true });
				redis.daemons.push(d);
				const s = await rawSession(d.url, { Authorization: `Bearer ${k.moved.key}` });
				assert.ok(responseOf(await s.post(call(0))).result);
				assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '100000');
				redis.server.proc.kill('SIGKILL');
				await redis.server.exited;
				for (let i = 1; i <= 3; i++)    // local: admitted, kept for the replay
					assert.ok(responseOf(await s.post(call(i))).result);
				assert.equal(metric(await metrics(d), 'mcpwarden_counters_replay_queue'), 3);

				// Another Redis, then SQLite: both refused, the reason in the log.
				for (const counters of [onRedis(bport), { backend: 'sqlite' }]) {
					const r = await d.reload(config(keys, state, counters));
					assert.equal(r.ok, false, JSON.stringify(counters));
					assert.match(r.errors.join('\n'), /reload refused: counters changed while 3 charges wait for the running Redis .*replayed there when it is back/);
					const m = await metrics(d);
					assert.equal(metric(m, 'mcpwarden_counters_replay_queue'), 3, m);
				}
				// Not held back: a governance reload (a budget's limit), counters unchanged.
				const g = await d.reload(config(keys, state, onRedis(redis.port), '90.00'));
				assert.equal(g.ok, true);
				assert.equal(metric(await metrics(d), 'mcpwarden_counters_replay_queue'), 3);

				// The old Redis returns: the charges are replayed there, B never saw them.
				await redis.restart();
				await eventually(async () => metric(await metrics(d), 'mcpwarden_counters_replay_queue') === 0,
					{ what: 'the replay queue drained', ms: 15000 });
				assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '400000');
				assert.equal(cli(bport, 'EXISTS', ck), '0');

				// Nothing queued: the same reload goes through, and charges go to B now.
				const r = await d.reload(config(keys, state, onRedis(bport), '90.00'));
				assert.equal(r.ok, true, JSON.stringify(r));
				await eventually(async () => /^mcpwarden_counters_backend_up\{[^}]*\} 1$/m
					.test(await metrics(d)), { what: 'counters up on the new Redis', ms: 10000 });
				const s2 = await rawSession(r.url, { Authorization: `Bearer ${k.moved.key}` });
				assert.ok(responseOf(await s2.post(call(9))).result);
				assert.equal(cli(bport, 'HGET', ck, 'spent'), '100000');
				assert.equal(cli(redis.port, 'HGET', ck, 'spent'), '400000');
			} finally {
				await b.stop(3000);
			}
		});
	});
