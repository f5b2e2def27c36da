// Durability of spend: the daemon is killed with SIGKILL, repeatedly, while SDK clients have
// calls in flight, and restarted on the same state_dir each time. After every restart the
// recorded spend is at least the cost of every call whose answer a client received, and at
// most that plus the cost of the calls that were in flight at the kills. The spend is read the
// way an agent sees it (the `spent` of an over-budget refusal) and, when the sqlite3 CLI is
// installed, straight from the SQLite store.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, makeKey, makeTempDir, npmStdioUpstream, paths, removeTempDir,
	startDaemon, waitForTool } from './lib.mjs';

const ROUNDS = 6;
const WORKERS = 6;
const COST = { echo: 10000, 'trigger-long-running-operation': 100000 };   // micro-units
const key = makeKey();
const stateDir = makeTempDir('mcpwarden-durability-');

const config = {
	listen: '127.0.0.1:0', state_dir: stateDir,
	upstreams: [npmStdioUpstream('everything', paths.bin.everything, ['stdio'])],
	keys: [{ id: 'dur', hash: key.hash, policy: 'all' }],
	policies: { all: { tools: { allow: ['*/*'] } } },
	costs: { 'everything/echo': '0.01', 'everything/trigger-long-running-operation': '0.10',
		// costs more than the whole limit: always refused, and the refusal tells the spend
		'everything/get-structured-content': '10000.5' },
	budgets: { 'key:dur': [{ name: 'dur', limit: '10000', rolling: '7d' }] },
};

/** "12.34" -> 12340000 */
function micros(money) {
	const m = /^(\d+)\.(\d{1,6})$/.exec(money);
	assert.ok(m, `money "${money}"`);
	return Number(m[1]) * 1e6 + Number(m[2].padEnd(6, '0'));
}

let lastRefusal = null;  // data of the last probe's refusal

/** The spend the daemon has for key dur, from an over-budget refusal. */
async function spentViaRefusal(url) {
	const c = await connectHttp(url, { headers: { Authorization: `Bearer ${key.key}` } });
	try {
		let spent;
		await assert.rejects(c.client.callTool({ name: 'get-structured-content',
			arguments: { location: 'Chicago' } }), (e) => {
			assert.equal(e.code, -32005, e.message);
			assert.equal(e.data.reserved, '0.00', 'nothing in flight');
			assert.match(e.data.budget, /^(dur|renamed-\d)$/);
			assert.equal(e.data.reset, null, 'dearer than the whole limit: never fits');
			spent = micros(e.data.spent);
			lastRefusal = e.data;
			return true;
		});
		return spent;
	} finally {
		await c.close();
	}
}

function sqlite3() {
	try {
		execFileSync('sqlite3', ['-version'], { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	}
}

/** Sum of the spend rows of key dur in the store (read-only; WAL lets it run beside the daemon). */
function spentInStore() {
	const db = join(stateDir, 'mcpwarden.db');
	assert.ok(existsSync(db), 'the store is at <state_dir>/mcpwarden.db');
	const out = execFileSync('sqlite3', ['-readonly', db,
		"SELECT coalesce(sum(amount), 0) FROM spend WHERE scope = 'key:dur'"], { encoding: 'utf8' });
	return Number(out.trim());
}

describe('spend survives kill -9 under load', () => {
	after(() => removeTempDir(stateDir));

	test(`${ROUNDS} kills with calls in flight; after each restart acked <= spent <= acked + ` +
		'in flight', async (t) => {
		let acked = 0;          // micro-units of every call whose answer a client got
		let inflight = 0;       // micro-units of calls unanswered when the daemon was killed
		let ackedCalls = 0, inflightCalls = 0;
		const check = async (url, when) => {
			const spent = await spentViaRefusal(url);
			assert.ok(spent >= acked, `${when}: spent ${spent} < acknowledged ${acked}: lost a charge`);
			assert.ok(spent <= acked + inflight,
				`${when}: spent ${spent} > acknowledged ${acked} + in flight ${inflight}`);
			return spent;
		};

		for (let round = 0; round < ROUNDS; round++) {
			const d = await startDaemon(config, { ready: true });
			try {
				await check(d.url, `restart ${round}`);
				const clients = [];
				for (let w = 0; w < WORKERS; w++)
					clients.push(await connectHttp(d.url, { headers: { Authorization: `Bearer ${key.key}` } }));
				let stop = false;
				const pending = new Set();
				const worker = async (c, w) => {
					for (let i = 0; !stop; i++) {
						// every third call of some workers is slow: more calls caught mid-flight
						const name = w % 2 && i % 3 === 0 ? 'trigger-long-running-operation' : 'echo';
						const args = name === 'echo' ? { message: `r${round}w${w}i${i}` }
							: { duration: 0.05, steps: 1 };
						const p = { cost: COST[name] };
						pending.add(p);
						try {
							await c.client.callTool({ name, arguments: args }, undefined, { timeout: 10000 });
							acked += p.cost;
							ackedCalls++;
						} catch {
							// the daemon died under it: unknown whether it was charged
							inflight += p.cost;
							inflightCalls++;
							return;
						} finally {
							pending.delete(p);
						}
					}
				};
				const loops = clients.map((c, w) => worker(c, w));
				await new Promise((res) => setTimeout(res, 150 + Math.floor(Math.random() * 250)));
				stop = true;    // no new calls: what is pending now is in flight at the kill
				await d.kill();
				await Promise.all(loops);
				assert.equal(pending.size, 0);
				await Promise.all(clients.map((c) => c.close()));
			} finally {
				await d.kill();
			}
		}
		const d = await startDaemon(config, { ready: true });
		try {
			const spent = await check(d.url, 'final restart');
			t.diagnostic(`acknowledged ${ackedCalls} calls (${acked} micro), in flight at the kills ` +
				`${inflightCalls} (${inflight} micro), recorded ${spent} micro`);
			assert.ok(ackedCalls >= ROUNDS * WORKERS, `load ran: ${ackedCalls} calls acknowledged`);
			if (sqlite3())
				assert.equal(spentInStore(), spent, 'the store holds what the refusal says');
			else
				t.diagnostic('sqlite3 CLI not installed: store not read directly');
		} finally {
			await d.stop();
		}
	});

	test('SIGHUP under load: every call is answered, spend is kept across reloads, and a ' +
		'changed limit or budget name keeps what was spent', async () => {
		const d = await startDaemon(config, { ready: true });
		try {
			const start = await spentViaRefusal(d.url);
			let acked = 0, unanswered = 0;
			const clients = [];
			for (let w = 0; w < 4; w++)
				clients.push(await connectHttp(d.url, { headers: { Authorization: `Bearer ${key.key}` } }));
			let stop = false;
			const worker = async (c, w) => {
				for (let i = 0; !stop; i++) {
					const name = w % 2 && i % 2 === 0 ? 'trigger-long-running-operation' : 'echo';
					const args = name === 'echo' ? { message: `h${w}.${i}` } : { duration: 0.2, steps: 1 };
					try {
						await c.client.callTool({ name, arguments: args }, undefined, { timeout: 10000 });
						acked += COST[name];
					} catch (e) {
						// the reload ends sessions: calls in flight are answered with an error
						// (or the session is gone: 404); none may hang
						assert.notEqual(e.code, -32001, 'timed out: a call was never answered');
						unanswered += COST[name];
						return;
					}
				}
			};
			for (let r = 0; r < 3; r++) {
				stop = false;
				const loops = clients.map((c, w) => worker(c, w));
				await new Promise((res) => setTimeout(res, 200));
				const cfg = structuredClone(config);
				cfg.budgets['key:dur'] = [{ name: `renamed-${r}`, limit: String(9000 + r), rolling: '7d' }];
				const rl = await d.reload(cfg);
				assert.ok(rl.ok, rl.errors?.join('\n'));
				stop = true;
				await Promise.all(loops);
				await waitForTool(d.url, { Authorization: `Bearer ${key.key}` }, 'echo');
				// sessions ended with the reload: open new ones on the (same) listener
				await Promise.all(clients.map((c) => c.close()));
				for (let w = 0; w < 4; w++)
					clients[w] = await connectHttp(d.url, { headers: { Authorization: `Bearer ${key.key}` } });
			}
			await Promise.all(clients.map((c) => c.close()));
			const spent = await spentViaRefusal(d.url);
			assert.equal(lastRefusal.budget, 'renamed-2', 'the reloaded budget applies');
			assert.equal(lastRefusal.limit, '9002.00');
			assert.ok(acked > 0);
			assert.ok(spent - start >= acked, `spent ${spent - start} < acknowledged ${acked}`);
			assert.ok(spent - start <= acked + unanswered,
				`spent ${spent - start} > acknowledged ${acked} + unanswered ${unanswered}`);
			const sig = await d.stop();
			assert.equal(sig.signal, null, 'stopped cleanly, not killed');
			assert.equal(sig.code, 0, `exit code ${sig.code}`);
		} finally {
			await d.kill();
		}
	});
});

