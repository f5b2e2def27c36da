// Sentinel failover under load (docs/counters.md): a real master, a replica
// (`redis-server --replicaof`) and a sentinel (`redis-server --sentinel`), each on a free port
// in a temp dir. Calls flow through a sidecar whose counters name the master through the
// sentinel; `SENTINEL FAILOVER` promotes the replica: the sidecar follows the switch, the
// counters go on from the replicated state, and fail_closed refuses only during the switch.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, everythingUpstream, freePort, makeKeys, makeTempDir, rawSession,
	removeTempDir, responseOf, startDaemon, stopCleanly } from './lib.mjs';
import { execFileSync } from 'node:child_process';
import { CLI, cli, dayCounter, redisSkip, startRedis, startSentinel } from './redis-lib.mjs';

if (redisSkip)
	console.log(`# skipped: ${redisSkip}`);

const CENT = 10000;     // 0.01 a call, in micro-units
const call = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message: `m${id}` } } });

describe('counters through Sentinel: a failover under load', { skip: redisSkip }, () => {
	const { k, keys } = makeKeys({ fo: { id: 'fo', policy: 'all' } });
	let dir, master, replica, sentinel, d;
	let pm, pr, ps;
	let answered = 0;       // calls answered in all tests: each charged 0.01 once
	const ck = () => dayCounter('key:fo');

	/** Calls one after the other on a session until stop(); log: { t, ok, code }. */
	async function flowing() {
		const s = await rawSession(d.url, { Authorization: `Bearer ${k.fo.key}` });
		const log = [];
		let n = 0, stop = false;
		const done = (async () => {
			while (!stop) {
				const m = responseOf(await s.post(call(++n)));
				log.push({ t: Date.now(), ok: !!m?.result, code: m?.error?.code });
				await new Promise((res) => setTimeout(res, 10));
			}
		})();
		return { log, ok: () => log.filter((x) => x.ok).length,
			stop: async () => { stop = true; await done; } };
	}
	const upLines = (port) => d.stderrLines.filter((l) => l.includes(`counters: Redis 127.0.0.1:${port} up`)).length;

	before(async () => {
		dir = makeTempDir('mcpwarden-sentinel-');
		[pm, pr, ps] = [await freePort(), await freePort(), await freePort()];
		master = await startRedis(dir, pm, ['--appendfilename', 'm.aof', '--appenddirname', 'm']);
		replica = await startRedis(dir, pr, ['--appendfilename', 'r.aof', '--appenddirname', 'r',
			'--replicaof', '127.0.0.1', String(pm)]);
		await eventually(() => /master_link_status:up/.test(cli(pr, 'INFO', 'replication')),
			{ what: 'the replica in sync' });
		sentinel = await startSentinel(dir, ps, 'fleet', pm);
		await eventually(() => cli(ps, 'SENTINEL', 'replicas', 'fleet').includes(String(pr)),
			{ what: 'the sentinel knows the replica' });
		d = await startDaemon({
			listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
			policies: { all: { tools: { allow: ['*/*'] } } },
			costs: { default: '0', 'everything/echo': '0.01' },
			budgets: { 'key:fo': [{ name: 'daily', limit: '100.00', period: 'daily' }] },
			counters: { backend: 'redis', sentinel: { master: 'fleet', addrs: [`127.0.0.1:${ps}`] },
				connect_timeout_ms: 300, command_timeout_ms: 500 },
		}, { ready: true });
		await eventually(async () => (await fetch(new URL('/readyz', d.url))).status === 200,
			{ what: 'ready through the sentinel' });
	});
	after(async () => {
		await stopCleanly(d);
		await sentinel?.stop(3000);
		await replica?.stop(3000);
		await master?.stop(3000);
		if (dir)
			removeTempDir(dir);
	});

	test('SENTINEL FAILOVER: the sidecar follows the new master, counters go on', async () => {
		const f = await flowing();
		await eventually(() => f.ok() >= 20, { what: '20 calls before' });
		const okBefore = f.ok();
		const t0 = Date.now();
		assert.equal(cli(ps, 'SENTINEL', 'FAILOVER', 'fleet'), 'OK');
		await eventually(() => upLines(pr) === 1, { what: 'the sidecar on the new master', ms: 20000 });
		const tUp = Date.now();
		assert.match(cli(ps, 'SENTINEL', 'get-master-addr-by-name', 'fleet'), new RegExp(String(pr)));
		// calls go on on the new master
		await eventually(() => f.log.filter((x) => x.ok && x.t > tUp).length >= 20,
			{ what: '20 calls after', ms: 20000 });
		await f.stop();
		const refused = f.log.filter((x) => !x.ok);
		answered += f.ok();
		console.log(`# failover: ${okBefore} calls before, ${f.ok()} answered in all, `
			+ `${refused.length} refused, the sidecar on the new master after ${tUp - t0} ms`);
		// fail_closed: refused only with -32007, and only during the switch
		for (const x of refused) {
			assert.equal(x.code, -32007, JSON.stringify(x));
			assert.ok(x.t >= t0 && x.t <= tUp + 1000, `refused at +${x.t - t0} ms`);
		}
		assert.equal((await fetch(new URL('/readyz', d.url))).status, 200);
		// the new master has the replicated state and every call since: nothing charged
		// twice, nothing acknowledged lost (on the old master while it was being demoted)
		await eventually(() => cli(pr, 'HGET', ck(), 'reserved') === '0', { what: 'nothing held' });
		assert.equal(Number(cli(pr, 'HGET', ck(), 'spent')), answered * CENT);
	});

	test('the master killed: the sidecar refuses until the sentinel promotes the replica, '
		+ 'then goes on from the replicated state', async () => {
		// the old master, demoted by the sentinel, is the replica now
		await eventually(() => /role:slave[\s\S]*master_link_status:up/.test(cli(pm, 'INFO', 'replication')),
			{ what: 'the old master a replica in sync', ms: 30000 });
		await eventually(() => cli(ps, 'SENTINEL', 'replicas', 'fleet').includes(String(pm)),
			{ what: 'the sentinel knows it', ms: 15000 });
		const f = await flowing();
		await eventually(() => f.ok() >= 20, { what: '20 calls before' });
		// Redis replicates asynchronously: what the master acknowledged in its last moments
		// may die with it (docs/counters.md). A write and WAIT on one connection mark how far
		// the replica has it: every charge acknowledged before the mark is on the replica.
		const tMark = Date.now();
		const waited = execFileSync(CLI, ['-p', String(pr), '--raw'],
			{ input: 'INCR test:mark\nWAIT 1 5000\n', encoding: 'utf8' }).trim().split('\n');
		assert.equal(waited.at(-1), '1', 'the replica acknowledged the mark');
		const t0 = Date.now();
		replica.proc.kill('SIGKILL');   // the master since the first test
		await replica.exited;
		await eventually(() => upLines(pm) === 2, { what: 'the sidecar on the promoted replica',
			ms: 30000 });
		const tUp = Date.now();
		await eventually(() => f.log.filter((x) => x.ok && x.t > tUp).length >= 20,
			{ what: '20 calls after', ms: 20000 });
		await f.stop();
		const refused = f.log.filter((x) => !x.ok);
		answered += f.ok();
		console.log(`# master killed: ${f.ok()} answered, ${refused.length} refused, the sidecar `
			+ `on the new master after ${tUp - t0} ms`);
		for (const x of refused) {
			assert.equal(x.code, -32007, JSON.stringify(x));
			assert.ok(x.t >= t0 && x.t <= tUp + 1000, `refused at +${x.t - t0} ms`);
		}
		await eventually(() => cli(pm, 'HGET', ck(), 'reserved') === '0', { what: 'nothing held' });
		// nothing counted twice; nothing lost but what was answered between the mark and the
		// kill, which the replica may not have had
		const unsure = f.log.filter((x) => x.ok && x.t >= tMark && x.t <= t0).length;
		const spent = Number(cli(pm, 'HGET', ck(), 'spent'));
		console.log(`# ${unsure} calls answered between the mark and the kill; `
			+ `${answered - spent / CENT} of them lost`);
		assert.ok(spent <= answered * CENT, `spent ${spent} > answered ${answered * CENT}`);
		assert.ok(spent >= (answered - unsure) * CENT,
			`spent ${spent} < ${(answered - unsure) * CENT}: charges the replica had were lost`);
	});
});
