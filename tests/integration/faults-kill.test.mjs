// kill -9 under load, 20 times, with budgets (durable charges) and kernel enforcement both on.
// Clients keep calling a charged tool; the daemon is killed at a random moment and restarted on
// the same state_dir. After every restart the store holds every charge whose call a client saw
// answered, and nothing beyond the calls in flight at the kill:
//   sum of acknowledged costs <= stored spend <= acknowledged + in flight.
// Meanwhile a process in the enrolled cgroup tries to connect straight to the MCP server every
// few milliseconds, through all 20 kills and restarts: not one connection may get through (the
// pinned programs and maps outlive the daemon). Needs root, cgroup v2 and BPF; skipped otherwise.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupRoot, connectHttp, enforcementSkip, eventually, httpUpstream, makeKey, makeTempDir,
	paths, removeCgroupAtExit, removeTempDir, startDaemon, startFixture, startProcess, uninstallPins,
	uninstallPinsAtExit } from './lib.mjs';

const ROUNDS = 20;
const WORKERS = 6;
const COST = 10000;     // micro-units of one call ("0.01")
const skip = enforcementSkip();

// Inside the enrolled cgroup: connect to host:port over and over; print CONNECTED at once on
// a success, and the counts on SIGTERM.
const WATCHER = `
const net = require('node:net');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const n = { connected: 0, refused: 0, other: 0 }, codes = {};
let stop = false;
const tick = () => {
	if (stop) return;
	const s = net.connect({ host, port });
	s.on('connect', () => { n.connected++; console.log('CONNECTED'); s.destroy(); });
	s.on('error', (e) => { if (e.code === 'EPERM') n.refused++; else { n.other++; codes[e.code] = (codes[e.code] ?? 0) + 1; } });
	s.on('close', () => setTimeout(tick, 2));
};
process.on('SIGTERM', () => { stop = true; console.log(JSON.stringify({ ...n, codes })); process.exit(0); });
console.log('WATCHING');
tick();
`;

function storedSpend(stateDir) {
	return Number(execFileSync('sqlite3', ['-readonly', join(stateDir, 'mcpwarden.db'),
		"SELECT coalesce(sum(amount), 0) FROM spend WHERE scope = 'key:k9'"], { encoding: 'utf8' }).trim());
}

function hasSqlite3() {
	return spawnSync('sqlite3', ['-version']).status === 0;
}

describe('kill -9 under load, 20 times', { skip: skip || (hasSqlite3() ? false : 'no sqlite3 CLI'),
	timeout: 240000 }, () => {
	const tag = `mcpwarden-k9-${process.pid}`;
	const pinDir = `/sys/fs/bpf/${tag}`;
	const cgdir = join(cgroupRoot, tag);
	const stateDir = makeTempDir('mcpwarden-k9-');
	let fixture = null, watcher = null, daemon = null;
	uninstallPinsAtExit(pinDir);
	removeCgroupAtExit(cgdir);
	after(async () => {
		if (daemon)
			await daemon.kill();
		if (watcher)
			await watcher.stop(2000);
		if (fixture)
			await fixture.stop(3000);
		uninstallPins(pinDir);
		try { rmdirSync(cgdir); } catch { /* already gone */ }
		removeTempDir(stateDir);
	});

	test('no acknowledged charge lost, none invented; a direct connection from the enrolled ' +
		'cgroup refused at every moment, the daemon down included', async (t) => {
		const key = makeKey();
		const auth = { headers: { Authorization: `Bearer ${key.key}` } };
		mkdirSync(cgdir);
		fixture = await startFixture();
		const up = new URL(fixture.url);
		const config = {
			listen: '127.0.0.1:0', state_dir: stateDir, prefix: 'never',
			upstreams: [httpUpstream(fixture.url)],
			keys: [{ id: 'k9', hash: key.hash, policy: 'all' }],
			policies: { all: { tools: { allow: ['*/*'] } } },
			costs: { 'fixture/test_simple_text': '0.01' },
			budgets: { 'key:k9': [{ name: 'k9', limit: '100000', period: 'monthly' }] },
			enforcement: { enabled: true, pin_dir: pinDir, enroll: [{ cgroup: cgdir, mode: 'protect' }] },
		};
		let acked = 0, inflight = 0, ackedCalls = 0, inflightCalls = 0;

		for (let round = 0; round < ROUNDS; round++) {
			daemon = await startDaemon(config, { ready: true });
			await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
			if (!watcher) {
				// enrolled now: from here on the watcher must never get through
				watcher = await startProcess('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$0" "$@"`,
					paths.node, '-e', WATCHER, up.hostname, up.port],
				{ ready: /^WATCHING$/, readyOn: 'stdout', name: 'k9-watcher' });
			}
			const spent = storedSpend(stateDir);
			assert.ok(spent >= acked, `restart ${round}: stored ${spent} < acknowledged ${acked}: a charge was lost`);
			assert.ok(spent <= acked + inflight,
				`restart ${round}: stored ${spent} > acknowledged ${acked} + in flight ${inflight}`);

			const clients = [];
			for (let w = 0; w < WORKERS; w++)
				clients.push(await connectHttp(daemon.url, auth));
			let stop = false;
			const worker = async (c) => {
				while (!stop) {
					try {
						await c.client.callTool({ name: 'test_simple_text', arguments: {} }, undefined,
							{ timeout: 10000 });
						acked += COST;
						ackedCalls++;
					} catch {
						inflight += COST;       // the daemon died under it: charged or not
						inflightCalls++;
						return;
					}
				}
			};
			const loops = clients.map((c) => worker(c));
			await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
			stop = true;    // no new calls: what is pending now is in flight at the kill
			const d = daemon;
			daemon = null;
			await d.kill();
			await Promise.all(loops);
			await Promise.all(clients.map((c) => c.close()));
			// down for a moment, pins alone
			await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 150)));
			assert.ok(!watcher.stdoutLines.includes('CONNECTED'),
				`round ${round}: a direct connection got through`);
		}
		daemon = await startDaemon(config, { ready: true });
		const spent = storedSpend(stateDir);
		assert.ok(spent >= acked && spent <= acked + inflight,
			`final: stored ${spent}, acknowledged ${acked}, in flight ${inflight}`);
		const w = watcher;
		watcher = null;
		w.proc.kill('SIGTERM');
		await w.exited;
		// 'exit' can come before the last stdout line has been read: wait for its end
		await eventually(() => w.proc.stdout.readableEnded,
			{ ms: 5000, what: 'the watcher\'s stdout read' });
		const counts = JSON.parse(w.stdoutLines.at(-1));
		t.diagnostic(`${ROUNDS} kills: ${ackedCalls} calls acknowledged (${acked} micro), ` +
			`${inflightCalls} in flight at the kills (${inflight} micro), stored ${spent} micro; ` +
			`direct connects from the cgroup: ${JSON.stringify(counts)}`);
		assert.equal(counts.connected, 0, 'no direct connection ever got through');
		assert.ok(counts.refused > 100, `the watcher kept trying: ${counts.refused} refusals`);
		assert.ok(ackedCalls >= ROUNDS * WORKERS, `load ran: ${ackedCalls} calls acknowledged`);
		await daemon.stop();
		daemon = null;
	});
});
