// Fleet counters on a Redis Cluster (docs/counters.md, "Cluster"): three masters started here
// (redis-server --cluster-enabled yes, each on free ports in a temp dir, joined with
// `redis-cli --cluster create`), two sidecars given the seeds. A key's counters and its team's
// live on different masters: together the sidecars never pass the key's nor the team's budget;
// a slot moved under a flow of calls (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE):
// MOVED, ASK and TRYAGAIN handled, every answered call counted once; a master killed:
// fail_closed refuses its keys with -32007 (and /readyz fails), local admits within the
// allowance, keys on the other masters go on; a cluster that does not say its nodes' hosts
// (unknown-endpoint) is reached at the seed's host; the killed master back: the charges kept
// locally (through a kill -9 of the sidecar) are replayed to it, once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, everythingUpstream, makeKeys, makeTempDir, rawSession, responseOf,
	startDaemon, stopCleanly } from './lib.mjs';
import { burst, cli, CLI, dayCounter, readyOnCluster, redisSkip, slotOf, startCluster, startRedis,
	stopClusterSuite } from './redis-lib.mjs';

if (redisSkip)
	console.log(`# skipped: ${redisSkip}`);

const TOKEN = 'counters-cluster-admin-token';
const CENT10 = 100000;          // 0.10 a call, in micro-units
const call = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message: `m${id}` } } });
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });

describe('counters on a Redis Cluster', { skip: redisSkip }, () => {
	let dir, a, b;
	let dead, deadSpent;    // the master the kill test stops, and kd's spend on it then
	const nodes = [];       // { port, bus, srv, id, lo, hi }
	// Key ids and a team whose tags hash to three different masters (chosen in before()).
	const ids = {};
	let k, keys;

	const owner = (slot) => nodes.find((n) => n.ranges.some(([lo, hi]) => slot >= lo && slot <= hi));
	const readNodes = () => {
		for (const line of cli(nodes[0].port, 'CLUSTER', 'NODES').split('\n')) {
			const f = line.split(' ');
			const n = nodes.find((x) => f[1].startsWith(`127.0.0.1:${x.port}@`));
			if (!n)
				continue;
			n.id = f[0];
			n.ranges = f.slice(8).filter((r) => /^\d/.test(r))
				.map((r) => r.split('-').map(Number)).map(([lo, hi]) => [lo, hi ?? lo]);
		}
	};
	const counter = dayCounter;
	const hget = (tag, field) => cli(owner(slotOf(tag)).port, 'HGET', counter(tag), field);
	const metric = async (d, re) => {
		const m = await (await fetch(d.adminUrl + '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
		const x = m.match(re);
		return x ? Number(x[1]) : NaN;
	};

	function config(counters) {
		return {
			listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
			teams: [{ name: ids.team, policy: 'all' }],
			admin: { listen: '127.0.0.1:0', token: TOKEN },
			policies: { all: { tools: { allow: ['*/*'] } } },
			costs: { default: '0', 'everything/echo': '0.10' },
			budgets: {
				[`key:${ids.k1}`]: [{ name: 'daily', limit: '0.50', period: 'daily' }],
				[`key:${ids.k2}`]: [{ name: 'daily', limit: '1.00', period: 'daily' }],
				[`team:${ids.team}`]: [{ name: 'crew', limit: '1.00', period: 'daily' }],
				[`key:${ids.mover}`]: [{ name: 'daily', limit: '1000.00', period: 'daily' }],
				[`key:${ids.solo}`]: [{ name: 'daily', limit: '1000.00', period: 'daily' }],
				[`key:${ids.kd}`]: [{ name: 'daily', limit: '1000.00', period: 'daily' }],
			},
			counters: { backend: 'redis', cluster: nodes.map((n) => `127.0.0.1:${n.port}`),
				connect_timeout_ms: 300, command_timeout_ms: 1000, ...counters },
		};
	}

	// b counts locally while a master is away; its state_dir outlives a kill -9
	const bConfig = () => ({ ...config({ on_unreachable: 'local',
		local_allowance: { spend: '1.00', calls: 2 } }), state_dir: join(dir, 'b-state') });

	before(async () => {
		dir = makeTempDir('mcpwarden-cluster-');
		mkdirSync(join(dir, 'b-state'));
		nodes.push(...(await startCluster(dir)).map((n) => ({ ...n, ranges: [] })));
		readNodes();
		// team on the first master, k1 on the second, k2 on the third; mover and solo apart
		const pick = (prefix, want, not = []) => {
			for (let i = 0; ; i++) {
				const id = `${prefix}${i}`;
				const o = owner(slotOf(`${prefix.startsWith('t') ? 'team' : 'key'}:${id}`));
				if (o === want && !not.includes(id))
					return id;
			}
		};
		ids.team = pick('t', nodes[0]);
		ids.k1 = pick('ka', nodes[1]);
		ids.k2 = pick('kb', nodes[2]);
		ids.mover = pick('km', nodes[1]);
		ids.solo = pick('ks', nodes[0]);
		ids.kd = pick('kd', nodes[2]);
		({ k, keys } = makeKeys({
			k1: { id: ids.k1, policy: 'all', team: ids.team },
			k2: { id: ids.k2, policy: 'all', team: ids.team },
			mover: { id: ids.mover, policy: 'all' },
			solo: { id: ids.solo, policy: 'all' },
			kd: { id: ids.kd, policy: 'all' },
		}));
		a = await startDaemon(config({}), { ready: true });
		b = await startDaemon(bConfig(), { ready: true });
		await readyOnCluster([a, b]);
	});
	after(() => stopClusterSuite([a, b], nodes, dir));

	test('a key and its team on different masters: two sidecars never pass either budget',
		async () => {
			assert.notEqual(owner(slotOf(`key:${ids.k1}`)), owner(slotOf(`team:${ids.team}`)));
			// team 1.00, k1 0.50, k2 1.00, 0.10 a call: k1 5 calls, the team 10 in all.
			const rs = await Promise.all([burst(a.url, k.k1, 2, 5), burst(b.url, k.k1, 2, 5),
				burst(a.url, k.k2, 2, 6), burst(b.url, k.k2, 2, 6)]);
			const ok1 = rs[0].ok + rs[1].ok, ok2 = rs[2].ok + rs[3].ok;
			console.log(`# k1 ${ok1} answered, k2 ${ok2} answered`);
			// a k1 call refused by its key's budget held the team's reservation for a moment
			// (team first, then key): a k2 call may have been refused meanwhile, never let past
			assert.ok(ok1 <= 5, `k1: ${ok1} calls`);
			assert.ok(ok1 + ok2 <= 10, `k1 ${ok1} + k2 ${ok2}`);
			for (const r of rs)
				for (const e of r.refused) {
					assert.equal(e.code, -32005, JSON.stringify(e));
					assert.ok([`key:${ids.k1}`, `team:${ids.team}`].includes(e.data.scope),
						JSON.stringify(e));
				}
			// every reservation given back or committed, on each master
			for (const tag of [`key:${ids.k1}`, `key:${ids.k2}`, `team:${ids.team}`])
				await eventually(() => (hget(tag, 'reserved') || '0') === '0',
					{ what: `${tag} holds nothing` });
			assert.equal(Number(hget(`key:${ids.k1}`, 'spent')), ok1 * CENT10);
			assert.equal(Number(hget(`key:${ids.k2}`, 'spent')), ok2 * CENT10);
			assert.equal(Number(hget(`team:${ids.team}`, 'spent')), (ok1 + ok2) * CENT10);
			// nothing held: k2 takes the team's rest, to the cent, one call after the other
			const s2 = await rawSession(a.url, bearer(k.k2));
			let more = 0;
			for (let i = 0; i < 12; i++) {
				const m = responseOf(await s2.post(call(`rest${i}`)));
				if (!m.result) {
					assert.equal(m.error.code, -32005);
					assert.equal(m.error.data.scope, `team:${ids.team}`);
					break;
				}
				more++;
			}
			assert.equal(ok1 + ok2 + more, 10, `${ok1} + ${ok2} + ${more}`);
			assert.equal(Number(hget(`team:${ids.team}`, 'spent')), 10 * CENT10);
			assert.equal(Number(hget(`key:${ids.k2}`, 'spent')), (ok2 + more) * CENT10);
			assert.equal(await metric(a, /mcpwarden_counters_cluster_nodes\{state="up"\} (\d+)/), 3);
			assert.ok(await metric(a, /mcpwarden_counters_cluster_refreshes_total (\d+)/) >= 1);
		});

	test('a slot moved under a flow of calls: MOVED handled, every answered call counted once',
		async () => {
			const slot = slotOf(`key:${ids.mover}`);
			const src = owner(slot), dst = nodes.find((n) => n !== src && n !== nodes[0]) ?? nodes[0];
			let stop = false, answered = 0, refused = 0;
			const why = {};
			const flow = async (d) => {
				const s = await rawSession(d.url, bearer(k.mover));
				let n = 0;
				while (!stop) {
					const m = responseOf(await s.post(call(`mv${++n}`)));
					if (m?.result)
						answered++;
					else {
						refused++;
						const w = `${m?.error?.code} ${m?.error?.data?.reason ?? m?.error?.message}`;
						why[w] = (why[w] ?? 0) + 1;
					}
				}
			};
			const flows = [flow(a), flow(b), flow(a), flow(b)];
			await eventually(() => answered >= 20, { what: '20 calls before the move' });
			cli(dst.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', src.id);
			cli(src.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', dst.id);
			await new Promise((r) => setTimeout(r, 200));   // calls while half moved
			// one key at a time, with calls in between (as `redis-cli --cluster reshard` moves
			// them in batches): a counter's reservations live in its own hash, so no key of
			// the slot is ever created on the target beside one still on the source (MIGRATE
			// would stop with BUSYKEY)
			for (;;) {
				const ks = cli(src.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '1')
					.split('\n').filter(Boolean);
				if (!ks.length)
					break;
				cli(src.port, 'MIGRATE', '127.0.0.1', String(dst.port), ks[0], '0', '5000');
				await new Promise((r) => setTimeout(r, 30));
			}
			for (const n of nodes)
				cli(n.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', dst.id);
			readNodes();
			const at = answered;
			await eventually(() => answered >= at + 20, { what: '20 calls after the move' });
			stop = true;
			await Promise.all(flows);
			console.log(`# slot ${slot} moved ${src.port} -> ${dst.port}: ${answered} answered, ${refused} refused ${JSON.stringify(why)}`);
			// MOVED, ASK and TRYAGAIN (keys of the slot on both sides) are followed: no call
			// is refused for the move
			assert.equal(refused, 0, JSON.stringify(why));
			assert.equal(owner(slot), dst);
			await eventually(() => cli(dst.port, 'HGET', counter(`key:${ids.mover}`), 'reserved') === '0',
				{ what: 'nothing held' });
			assert.equal(Number(cli(dst.port, 'HGET', counter(`key:${ids.mover}`), 'spent')),
				answered * CENT10, 'the counter on its new master has every answered call, once');
			const moved = await metric(a, /redirects_total\{kind="moved"\} (\d+)/)
				+ await metric(b, /redirects_total\{kind="moved"\} (\d+)/);
			assert.ok(moved > 0, 'MOVED seen');
			for (const d of [a, b])
				assert.equal(await metric(d, /mcpwarden_counters_replay_queue (\d+)/), 0);
		});

	test('unknown-endpoint: a nil host in CLUSTER SLOTS means the seed\'s host, the node\'s port',
		async () => {
			// cluster-preferred-endpoint-type unknown-endpoint: the nodes do not say their
			// address; clients use the one they asked, with the port given
			for (const n of nodes)
				cli(n.port, 'CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'unknown-endpoint');
			let c;
			try {
				assert.match(execFileSync(CLI, ['-p', String(nodes[0].port), '--no-raw', 'CLUSTER', 'SLOTS'],
					{ encoding: 'utf8' }), /\(nil\)/, 'the map names no host');
				c = await startDaemon(config({}), { ready: true });
				await eventually(async () => (await fetch(new URL('/readyz', c.url))).status === 200,
					{ what: 'ready on an unknown-endpoint cluster' });
				// two keys on two other masters than each other: both reached by port
				const before = [ids.solo, ids.kd].map((id) => Number(hget(`key:${id}`, 'spent') || 0));
				for (const who of ['solo', 'kd']) {
					const s = await rawSession(c.url, bearer(k[who]));
					assert.ok(responseOf(await s.post(call(`ue-${who}`))).result, who);
				}
				assert.notEqual(owner(slotOf(`key:${ids.solo}`)), owner(slotOf(`key:${ids.kd}`)));
				await eventually(() => [ids.solo, ids.kd].every((id, i) =>
					Number(hget(`key:${id}`, 'spent') || 0) === before[i] + CENT10),
				{ what: 'one call counted on each master' });
			} finally {
				await stopCleanly(c);
				for (const n of nodes)
					cli(n.port, 'CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'ip');
			}
		});

	test('a master killed: fail_closed refuses its keys, local admits within the allowance, '
		+ 'the other masters go on', async () => {
		dead = owner(slotOf(`key:${ids.kd}`));
		const solo = owner(slotOf(`key:${ids.solo}`));
		assert.notEqual(dead, solo);
		deadSpent = Number(hget(`key:${ids.kd}`, 'spent') || 0);
		dead.srv.proc.kill('SIGKILL');
		await dead.srv.exited;
		dead.srv = null;
		for (const d of [a, b])
			await eventually(async () => await metric(d, /cluster_nodes\{state="down"\} (\d+)/) === 1,
				{ what: 'the sidecar saw the master go' });
		// fail_closed: -32007 counters_unreachable, /readyz 503
		const sa = await rawSession(a.url, bearer(k.kd));
		const r = responseOf(await sa.post(call('dead-a')));
		assert.equal(r.error?.code, -32007, JSON.stringify(r));
		assert.equal(r.error.data.reason, 'counters_unreachable');
		const rz = await fetch(new URL('/readyz', a.url));
		assert.equal(rz.status, 503);
		assert.match(await rz.text(), /counters unavailable/);
		// local: 2 calls of this key on this sidecar, then local_allowance_spent
		const sb = await rawSession(b.url, bearer(k.kd));
		const lb = [];
		for (let i = 0; i < 3; i++)
			lb.push(responseOf(await sb.post(call(`dead-b${i}`))));
		assert.ok(lb[0].result && lb[1].result, JSON.stringify(lb));
		assert.equal(lb[2].error?.code, -32007);
		assert.equal(lb[2].error.data.reason, 'local_allowance_spent');
		assert.equal((await fetch(new URL('/readyz', b.url))).status, 200);
		// a key on a live master: answered, counted there at once
		const before = Number(cli(solo.port, 'HGET', counter(`key:${ids.solo}`), 'spent') || 0);
		const ss = await rawSession(a.url, bearer(k.solo));
		for (let i = 0; i < 3; i++)
			assert.ok(responseOf(await ss.post(call(`solo${i}`))).result);
		await eventually(() => Number(cli(solo.port, 'HGET', counter(`key:${ids.solo}`), 'spent')) ===
			before + 3 * CENT10, { what: 'the live master counted them' });
		// b's two local charges wait for the dead master, durable
		assert.equal(await metric(b, /mcpwarden_counters_replay_queue (\d+)/), 2);
	});

	test('the killed master back: the local charges kept through a kill -9 of the sidecar are '
		+ 'replayed to it, once', async () => {
		assert.ok(dead && !dead.srv, 'runs after the kill test');
		// the sidecar dies too while the master is away; its kept charges are in its store
		await b.kill();
		b = await startDaemon(bConfig(), { ready: true });
		assert.equal(await metric(b, /mcpwarden_counters_replay_queue (\d+)/), 2,
			'the two kept charges read back from the store');
		// the same node again: its nodes.conf (id, slots) and its AOF
		dead.srv = await startRedis(dir, dead.port, dead.args);
		for (const n of nodes)
			await eventually(() => /cluster_state:ok/.test(cli(n.port, 'CLUSTER', 'INFO')),
				{ what: `cluster_state:ok on ${n.port}`, ms: 20000 });
		await eventually(async () => await metric(b, /mcpwarden_counters_replay_queue (\d+)/) === 0,
			{ what: 'the replay queue drained', ms: 20000 });
		assert.equal(Number(hget(`key:${ids.kd}`, 'spent')), deadSpent + 2 * CENT10,
			'the two local charges, each once');
		assert.equal(hget(`key:${ids.kd}`, 'reserved') || '0', '0');
		assert.ok(await metric(b, /mcpwarden_counters_replayed_total (\d+)/) >= 2);
		// fail_closed serves the key again once the master is back
		await eventually(async () => (await fetch(new URL('/readyz', a.url))).status === 200,
			{ what: 'a ready again', ms: 15000 });
		const sa = await rawSession(a.url, bearer(k.kd));
		assert.ok(responseOf(await sa.post(call('back-a'))).result);
		await eventually(() => Number(hget(`key:${ids.kd}`, 'spent')) === deadSpent + 3 * CENT10,
			{ what: 'a\'s call counted on the master' });
	});
});
