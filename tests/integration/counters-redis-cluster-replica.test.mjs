// Fleet counters on a Redis Cluster with a replica per master (docs/counters.md, "Cluster"):
// a master killed under a flow of calls, the cluster promotes its replica, and the sidecar
// follows it with no restart: under fail_closed the key's calls are refused (-32007) only
// while the slot has no master, and the promoted replica's counter has every answered call,
// once; under local the calls of the gap are admitted within the allowance and replayed to
// the promoted replica.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, everythingUpstream, makeKeys, makeTempDir, rawSession, responseOf,
	startDaemon } from './lib.mjs';
import { cli, dayCounter, readyOnCluster, redisSkip, slotOf, startCluster,
	stopClusterSuite } from './redis-lib.mjs';

if (redisSkip)
	console.log(`# skipped: ${redisSkip}`);

const TOKEN = 'counters-cluster-replica-admin-token';
const CENT = 10000;             // 0.01 a call, in micro-units

describe('counters on a Redis Cluster: a replica promoted', { skip: redisSkip }, () => {
	let dir, nodes, closed, local;
	const { k, keys } = makeKeys({ fc: { id: 'fc', policy: 'all' }, lo: { id: 'lo', policy: 'all' } });
	const counter = (id) => dayCounter(`key:${id}`);
	const roles = () => {
		const out = new Map();      // port -> { id, master: bool, ranges, of }
		for (const line of cli(nodes.find((n) => n.srv).port, 'CLUSTER', 'NODES').split('\n')) {
			const f = line.split(' ');
			const port = Number(f[1].split('@')[0].split(':')[1]);
			out.set(port, { id: f[0], master: /master/.test(f[2]) && !/fail/.test(f[2]), of: f[3],
				ranges: f.slice(8).filter((r) => /^\d/.test(r))
					.map((r) => r.split('-').map(Number)).map(([lo, hi]) => [lo, hi ?? lo]) });
		}
		return out;
	};
	const masterOf = (slot) => {
		for (const [port, r] of roles())
			if (r.master && r.ranges.some(([lo, hi]) => slot >= lo && slot <= hi))
				return port;
		return 0;
	};
	const spent = (id) => Number(cli(masterOf(slotOf(`key:${id}`)), 'HGET', counter(id), 'spent') || 0);
	const metric = async (d, re) => {
		const m = await (await fetch(d.adminUrl + '/metrics',
			{ headers: { Authorization: `Bearer ${TOKEN}` } })).text();
		const x = m.match(re);
		return x ? Number(x[1]) : NaN;
	};
	const config = (counters) => ({
		listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { default: '0', 'everything/echo': '0.01' },
		budgets: { 'key:fc': [{ name: 'daily', limit: '100.00', period: 'daily' }],
			'key:lo': [{ name: 'daily', limit: '100.00', period: 'daily' }] },
		counters: { backend: 'redis', cluster: nodes.map((n) => `127.0.0.1:${n.port}`),
			connect_timeout_ms: 300, command_timeout_ms: 500, ...counters },
	});

	/** Calls of key one after the other until stop(); log: { t, ok, code, reason }. */
	async function flowing(d, key) {
		const s = await rawSession(d.url, { Authorization: `Bearer ${key.key}` });
		const log = [];
		let n = 0, stop = false;
		const done = (async () => {
			while (!stop) {
				const m = responseOf(await s.post({ jsonrpc: '2.0', id: ++n, method: 'tools/call',
					params: { name: 'echo', arguments: { message: `m${n}` } } }));
				log.push({ t: Date.now(), ok: !!m?.result, code: m?.error?.code,
					reason: m?.error?.data?.reason });
				await new Promise((res) => setTimeout(res, 10));
			}
		})();
		return { log, ok: () => log.filter((x) => x.ok).length,
			stop: async () => { stop = true; await done; } };
	}

	/**
	 * Calls of key id flowing through sidecar d while the master of its slot is killed and its
	 * replica promoted, until 20 calls more were answered on the replica:
	 * { f (the flow, stopped), from, to (the ports), t0 (the kill), tMap (the promotion) }.
	 */
	async function throughFailover(d, id) {
		const f = await flowing(d, k[id]);
		await eventually(() => f.ok() >= 20, { what: '20 calls before' });
		const t0 = Date.now();
		const slot = slotOf(`key:${id}`), port = masterOf(slot);
		const dead = nodes.find((n) => n.port === port);
		dead.srv.proc.kill('SIGKILL');
		await dead.srv.exited;
		dead.srv = null;
		await eventually(() => { const p = masterOf(slot); return p && p !== port; },
			{ what: `a replica promoted for slot ${slot}`, ms: 30000 });
		for (const n of nodes.filter((x) => x.srv))
			await eventually(() => /cluster_state:ok/.test(cli(n.port, 'CLUSTER', 'INFO')),
				{ what: `cluster_state:ok on ${n.port}`, ms: 20000 });
		const tMap = Date.now(), to = masterOf(slot);
		await eventually(() => f.log.filter((x) => x.ok && x.t > tMap).length >= 20,
			{ what: '20 calls on the promoted replica', ms: 20000 });
		await f.stop();
		console.log(`# master ${port} killed, replica ${to} promoted after ${tMap - t0} ms: `
			+ `${f.ok()} answered, ${f.log.length - f.ok()} refused`);
		return { f, from: port, to, t0, tMap };
	}

	before(async () => {
		dir = makeTempDir('mcpwarden-cluster-replica-');
		nodes = await startCluster(dir, { masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
		// the two keys on different masters: each test kills its own
		assert.notEqual(masterOf(slotOf('key:fc')), masterOf(slotOf('key:lo')));
		closed = await startDaemon(config({}), { ready: true });
		local = await startDaemon(config({ on_unreachable: 'local',
			local_allowance: { spend: '100.00', calls: 1000 } }), { ready: true });
		await readyOnCluster([closed, local]);
	});
	after(() => stopClusterSuite([closed, local], nodes, dir));

	test('fail_closed: refused only while the slot has no master, then on the promoted replica, '
		+ 'every answered call counted once', async () => {
		const { f, to, t0, tMap } = await throughFailover(closed, 'fc');
		const refused = f.log.filter((x) => !x.ok);
		for (const x of refused) {
			assert.equal(x.code, -32007, JSON.stringify(x));
			assert.equal(x.reason, 'counters_unreachable');
			assert.ok(x.t >= t0 && x.t <= tMap + 2000, `refused at +${x.t - t0} ms`);
		}
		assert.equal((await fetch(new URL('/readyz', closed.url))).status, 200);
		await eventually(() => cli(to, 'HGET', counter('fc'), 'reserved') === '0', { what: 'nothing held' });
		// the replica's copy from before the kill plus every call since: none lost, none twice
		assert.equal(spent('fc'), f.ok() * CENT);
	});

	test('local: the calls of the gap admitted and replayed to the promoted replica, once',
		async () => {
			const { f, to } = await throughFailover(local, 'lo');
			const refused = f.log.filter((x) => !x.ok);
			assert.deepEqual(refused, [], 'local admits through the gap');
			await eventually(async () => await metric(local, /mcpwarden_counters_replay_queue (\d+)/) === 0,
				{ what: 'the replay queue drained', ms: 20000 });
			await eventually(() => cli(to, 'HGET', counter('lo'), 'reserved') === '0', { what: 'nothing held' });
			assert.equal(spent('lo'), f.ok() * CENT);
		});
});
