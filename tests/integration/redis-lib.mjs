// Real redis-server processes for the fleet counters' tests (docs/counters.md): standalone,
// replica, sentinel and cluster, each on a free port with its files in a temp dir the test removes.
// CI installs redis-server (scripts/deps.sh); a test skips with the printed reason only when
// the binary is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, freePort, makeTempDir, rawSession, removeTempDir, responseOf, startProcess,
	stopCleanly } from './lib.mjs';

export const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
export const CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p));
export const redisSkip = REDIS && CLI ? false : 'redis-server is not installed (scripts/deps.sh installs it)';

/** redis-server on port with an append-only file in dir; extra: more arguments. */
export function startRedis(dir, port, extra = []) {
	return startProcess(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
		'--save', '', '--appendonly', 'yes', '--appendfsync', 'always', ...extra],
	{ ready: /Ready to accept connections/, readyOn: 'stdout', name: `redis:${port}` });
}

/** A sentinel on port watching master `name` at 127.0.0.1:masterPort (quorum 1); its config in dir. */
export function startSentinel(dir, port, name, masterPort, { downAfterMs = 1000 } = {}) {
	const conf = join(dir, `sentinel-${port}.conf`);
	writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n`
		+ `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1\n`
		+ `sentinel down-after-milliseconds ${name} ${downAfterMs}\n`
		+ `sentinel failover-timeout ${name} 10000\n`);
	return startProcess(REDIS, [conf, '--sentinel'],
		{ ready: /Sentinel ID is|monitor master/, readyOn: 'stdout', name: `sentinel:${port}` });
}

/** A hash tag's slot: CRC16/XMODEM of it, mod 16384, as the Redis Cluster spec. */
export function slotOf(tag) {
	let crc = 0;
	for (const b of Buffer.from(tag)) {
		crc ^= b << 8;
		for (let i = 0; i < 8; i++)
			crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
	}
	return crc & 16383;
}

/**
 * A Redis Cluster of `masters` masters with `replicas` replicas each, every node on free ports
 * (client and bus) with its nodes.conf and append-only file in dir, joined with
 * `redis-cli --cluster create` and waited for until every node says cluster_state:ok.
 * Returns the nodes [{ port, bus, args, srv }] (args: to start a killed node again with
 * startRedis(dir, port, args)).
 */
export async function startCluster(dir, { masters = 3, replicas = 0, nodeTimeoutMs = 2000 } = {}) {
	const nodes = [];
	try {
		for (let i = 0; i < masters * (1 + replicas); i++) {
			const port = await freePort(), bus = await freePort();
			const args = ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
				'--cluster-port', String(bus), '--cluster-node-timeout', String(nodeTimeoutMs),
				'--cluster-require-full-coverage', 'no',
				'--appendfilename', `${port}.aof`, '--appenddirname', `aof-${port}`];
			nodes.push({ port, bus, args, srv: await startRedis(dir, port, args) });
		}
		execFileSync(CLI, ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
			'--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' });
		for (const n of nodes) {
			await eventually(() => /cluster_state:ok/.test(cli(n.port, 'CLUSTER', 'INFO')),
				{ what: `cluster_state:ok on ${n.port}`, ms: 20000 });
			// a replica that never synced would not be promoted
			await eventually(() => /role:master|master_link_status:up/.test(cli(n.port, 'INFO', 'replication')),
				{ what: `${n.port} a master or a replica in sync`, ms: 20000 });
		}
	} catch (e) {
		await stopCluster(nodes);
		throw e;
	}
	return nodes;
}

/** Every node of startCluster() still running, stopped. */
export async function stopCluster(nodes) {
	for (const n of nodes)
		await n.srv?.stop(3000);
}

/** Every daemon answering /readyz with 200: its counters reached the cluster. */
export async function readyOnCluster(daemons) {
	for (const d of daemons)
		await eventually(async () => (await fetch(new URL('/readyz', d.url))).status === 200,
			{ what: 'ready on the cluster' });
}

/**
 * A cluster suite's after(): its daemons stopped cleanly (exit 0 and no sanitizer report), the
 * cluster's nodes stopped and dir removed, whatever before() got to.
 */
export async function stopClusterSuite(daemons, nodes, dir) {
	for (const d of daemons)
		await stopCleanly(d);
	if (nodes)
		await stopCluster(nodes);
	if (dir)
		removeTempDir(dir);
}

/** The start of today's UTC day, in unix seconds: the window of a daily budget. */
export const today = () => Math.floor(Date.now() / 86400000) * 86400;

/** The Redis hash of tag's (`key:<id>`, `team:<name>`) daily budget today (docs/counters.md). */
export const dayCounter = (tag) => `mcpwarden:{${tag}}:b:day:${today()}`;

/** redis-cli against port; the answer, trimmed. */
export const cli = (port, ...args) => execFileSync(CLI, ['-p', String(port), '--raw', ...args],
	{ encoding: 'utf8' }).trim();

/**
 * n calls of everything's echo with key on each of `sessions` sessions of the gateway at url, all
 * at once (the concurrent load the fleet's counters must not let past a limit); { ok: how many
 * were answered, refused: [their JSON-RPC errors] }.
 */
export async function burst(url, key, sessions, n) {
	const headers = { Authorization: `Bearer ${key.key}` };
	const ss = await Promise.all(Array.from({ length: sessions }, () => rawSession(url, headers)));
	const rs = await Promise.all(ss.flatMap((s, i) => Array.from({ length: n },
		(_, j) => s.post({ jsonrpc: '2.0', id: `${i}-${j}`, method: 'tools/call',
			params: { name: 'echo', arguments: { message: `m${i}-${j}` } } }))));
	const out = { ok: 0, refused: [] };
	for (const r of rs) {
		const m = responseOf(r);
		if (m?.result)
			out.ok++;
		else
			out.refused.push(m?.error);
	}
	return out;
}

/**
 * describe(name) around tests that share one redis-server, skipped when `skip` says why (by
 * default: redis-server is not installed): before them a temp dir (prefix) and Redis on a free port; after them the daemons the tests
 * pushed to `daemons` stopped cleanly (exit 0 and no sanitizer report, Redis up or not), Redis
 * stopped and the dir removed. body(redis) declares the tests; redis.dir, redis.port and
 * redis.server (startRedis()'s process) are set once `before` ran; redis.restart() starts
 * Redis again on the same port and files after a test killed it.
 */
export function redisSuite(name, { prefix, skip = redisSkip }, body) {
	describe(name, { skip }, () => {
		const redis = { dir: null, port: 0, server: null, daemons: [],
			restart: async () => { redis.server = await startRedis(redis.dir, redis.port); } };

		before(async () => {
			redis.dir = makeTempDir(prefix);
			redis.port = await freePort();
			redis.server = await startRedis(redis.dir, redis.port);
		});
		after(async () => {
			for (const d of redis.daemons)
				await stopCleanly(d);
			await redis.server?.stop(3000);
			if (redis.dir)
				removeTempDir(redis.dir);
		});
		body(redis);
	});
}
