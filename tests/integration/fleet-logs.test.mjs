// The fleet's shared log store on PostgreSQL (docs/fleet-logs.md), against a real PostgreSQL
// the test starts itself (tests/integration/pg-lib.mjs): two sidecars write to one database;
// the logs API of either shows both, filterable by sidecar; PostgreSQL stopped and restarted
// under load loses nothing and duplicates nothing (every record exactly once, in order per
// sidecar, the same text as in the sidecar's own logs.db); the chain verifies from the shared
// store with wardenctl, and a changed or a removed row is named.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { connectHttp, eventually, fixtureStdioUpstream, makeTempDir, paths, removeTempDir,
	startDaemon, stopDaemonChecked } from './lib.mjs';
import { browserSkip, filterCalls, launchBrowser } from './browser-lib.mjs';
import { insertRecords, logsDbPath, openLiveTail, openLogsDb } from './logs-lib.mjs';
import { postgresSkip, startPostgres } from './pg-lib.mjs';

const TOKEN = 'admin-token-for-fleet-logs-0123456789';
const H = { Authorization: `Bearer ${TOKEN}` };
const skip = postgresSkip();
const wardenctl = join(paths.build, 'wardenctl');

function sidecarConfig(pg, state, name) {
	return { listen: '127.0.0.1:0', prefix: 'always', state_dir: state,
		auth: { required: false }, admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [fixtureStdioUpstream('fixture')],
		logs: { postgres: { conninfo: pg.conninfo, sidecar: name, poll: '50ms', batch: 40 } } };
}

async function api(d, path) {
	const res = await fetch(d.adminUrl + path, { headers: H });
	return { status: res.status, json: await res.json().catch(() => null) };
}

async function callMany(c, n) {
	for (let i = 0; i < n; i++)
		await c.client.callTool({ name: 'fixture__test_simple_text', arguments: {} });
}

function verify(pg, sidecar) {
	const r = spawnSync(wardenctl, ['audit', 'verify', '--postgres', pg.conninfo, '--sidecar',
		sidecar, '--json'], { encoding: 'utf8' });
	return { code: r.status, out: r.stdout ? JSON.parse(r.stdout) : null, err: r.stderr };
}

describe('fleet log store on PostgreSQL', { skip }, () => {
	let pg, dir, a, b, ca, cb, stopped = false;
	const states = {};

	before(async () => {
		pg = await startPostgres();
		dir = makeTempDir('mcpwarden-fleet-');
		for (const n of ['alpha', 'beta']) {
			states[n] = join(dir, n);
			mkdirSync(states[n]);
		}
		a = await startDaemon(sidecarConfig(pg, states.alpha, 'alpha'), { ready: true });
		b = await startDaemon(sidecarConfig(pg, states.beta, 'beta'), { ready: true });
		ca = await connectHttp(a.url);
		cb = await connectHttp(b.url);
	});

	after(async () => {
		await ca?.close();
		await cb?.close();
		const problems = [];
		for (const d of stopped ? [] : [a, b])
			if (d)
				problems.push(...await stopDaemonChecked(d));
		pg?.stop();
		if (dir)
			removeTempDir(dir);
		assert.deepEqual(problems, []);
	});

	test('the logs API of one sidecar shows both, filterable by sidecar', async () => {
		await callMany(ca, 3);
		await callMany(cb, 4);
		const page = await eventually(async () => {
			const r = await api(a, '/api/logs?type=decision&limit=500');
			const n = (s) => r.json?.records?.filter((x) => x.sidecar === s).length ?? 0;
			return r.status === 200 && n('alpha') >= 3 && n('beta') >= 4 ? r.json : null;
		}, { ms: 15000, what: 'records of both sidecars through alpha' });
		assert.ok(page.records.every((x) => typeof x.seq === 'number' && x.id > 0));
		const onlyBeta = await api(a, '/api/logs?type=decision&sidecar=beta&limit=500');
		assert.equal(onlyBeta.status, 200);
		assert.ok(onlyBeta.json.records.length >= 4);
		assert.ok(onlyBeta.json.records.every((x) => x.sidecar === 'beta'));
		// The other sidecar sees the same fleet.
		const viaB = await api(b, '/api/logs?type=decision&sidecar=alpha&limit=500');
		assert.equal(viaB.status, 200);
		assert.ok(viaB.json.records.length >= 3 && viaB.json.records.every((x) => x.sidecar === 'alpha'));
		const one = await api(b, `/api/logs/${onlyBeta.json.records[0].id}`);
		assert.equal(one.status, 200);
		assert.equal(one.json.sidecar, 'beta');
		const stats = await api(a, '/api/logs/stats?group_by=tool&bucket=3600&sidecar=alpha');
		assert.equal(stats.status, 200);
		assert.ok(stats.json.buckets.some((x) => x.group === 'fixture__test_simple_text' && x.calls >= 3));
		const m = await (await fetch(`${a.adminUrl}/metrics`, { headers: H })).text();
		assert.match(m, /^mcpwarden_logship_connected 1$/m);
		assert.match(m, /^mcpwarden_logship_shipped_total [1-9]/m);
	});

	test('the /logs dashboard of one sidecar shows both, with the sidecar filter',
		{ skip: browserSkip }, async () => {
			const browser = await launchBrowser(dir);
			try {
				const page = await browser.newPage();
				const errors = [];
				page.on('pageerror', (e) => errors.push(String(e)));
				await page.goto(b.adminUrl + '/logs', { waitUntil: 'load' });
				await page.waitForSelector('#login-form');
				await page.type('#token', TOKEN);
				await Promise.all([page.waitForNavigation(), page.click('#login-submit')]);
				const sidecars = () => page.$$eval('#calls-table tbody td.sidecar',
					(tds) => [...new Set(tds.map((td) => td.textContent))].sort());
				await page.waitForFunction(() => {
					const s = new Set([...document.querySelectorAll('#calls-table tbody td.sidecar')]
						.map((td) => td.textContent));
					return s.has('alpha') && s.has('beta');
				}, { timeout: 10000 });
				assert.deepEqual(await sidecars(), ['alpha', 'beta']);
				await filterCalls(page, '#filter-sidecar', 'sidecar', 'alpha');
				await page.screenshot({ path: join(paths.build, 'fleet-logs-dashboard.png') });
				assert.deepEqual(errors, []);
			} finally {
				await browser.close();
			}
		});

	test('a viewer: admin and logs.postgres only, no local store, shows the fleet', async () => {
		const v = await startDaemon({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', token: TOKEN },
			logs: { enabled: false, postgres: { conninfo: pg.conninfo } } });
		try {
			const r = await api(v, '/api/logs?type=decision&limit=500');
			assert.equal(r.status, 200);
			const names = new Set(r.json.records.map((x) => x.sidecar));
			assert.deepEqual([...names].sort(), ['alpha', 'beta']);
			// Its live tail is the fleet's: records of both sidecars as the shared store gets
			// them, filtered by sidecar like the rest.
			const before = (await api(v, '/api/logs?sidecar=beta&limit=1')).json.records[0].seq;
			const tail = await openLiveTail(v.adminUrl, 'type=decision&sidecar=beta', H);
			try {
				await tail.until(/live tail open/, 5000);
				// The first poll learns where "now" is: what was shipped before is not sent.
				await new Promise((r) => setTimeout(r, 1500));
				await callMany(ca, 1);
				await callMany(cb, 2);
				await tail.until((t) => t.events().filter((x) => x.method === 'tools/call')
					.length >= 2, 15000);
				const evs = tail.events();
				assert.ok(evs.every((x) => x.sidecar === 'beta' && x.type === 'decision' &&
					x.id > 0 && x.seq > before), tail.text());
				const seqs = evs.map((x) => x.seq);
				assert.deepEqual(seqs, [...seqs].sort((p, q) => p - q), 'in chain order');
				assert.equal(new Set(seqs).size, seqs.length, 'each once');
			} finally {
				tail.close();
			}
		} finally {
			assert.deepEqual(await stopDaemonChecked(v), []);
		}
	});

	test('PostgreSQL stopped and restarted under load: every record exactly once, in order',
		async () => {
			let load = true;
			const loops = [ca, cb].map(async (c) => {
				let n = 0;
				while (load) {
					await callMany(c, 1);
					n++;
				}
				return n;
			});
			await new Promise((r) => setTimeout(r, 700));
			pg.stopServer('fast');
			await new Promise((r) => setTimeout(r, 2000));
			pg.start();
			// Both notice the outage and come back (the records wait in logs.db meanwhile),
			// under load; the shipper's back-off is at most 30 s.
			const reconnected = (d) => d.stderrLines.filter((l) =>
				l.includes('logs.postgres: connected')).length >= 2;
			await eventually(async () => reconnected(a) && reconnected(b),
				{ ms: 40000, what: 'both sidecars reconnected' });
			await new Promise((r) => setTimeout(r, 500));
			load = false;
			const counts = await Promise.all(loops);
			assert.ok(counts.every((n) => n > 5), `calls went on while the database was away: ${counts}`);
			// A clean stop ships what is left (the final checkpoint too).
			stopped = true;
			for (const d of [a, b])
				assert.deepEqual(await stopDaemonChecked(d), []);
			for (const name of ['alpha', 'beta']) {
				const db = new DatabaseSync(join(states[name], 'logs.db'), { readOnly: true });
				const local = db.prepare('SELECT id, record FROM records ORDER BY id').all();
				db.close();
				const shared = pg.psql(`SELECT seq, record FROM mcpwarden_records WHERE sidecar = '${name}' ORDER BY seq, id`);
				assert.equal(shared.length, local.length, `${name}: as many records as its logs.db`);
				for (let i = 0; i < local.length; i++) {
					assert.equal(Number(shared[i][0]), Number(local[i].id), `${name}: seq ${i + 1} once, in order`);
					assert.equal(shared[i][1], local[i].record, `${name}: record ${local[i].id} as stored`);
				}
				const [[dups]] = pg.psql(`SELECT count(*) - count(DISTINCT seq) FROM mcpwarden_records WHERE sidecar = '${name}'`);
				assert.equal(dups, '0');
			}
		});

	test('the chain verifies from the shared store; a changed and a removed row are named', () => {
		for (const n of ['alpha', 'beta']) {
			const v = verify(pg, n);
			assert.equal(v.code, 0, `${n}: ${v.err} ${JSON.stringify(v.out)}`);
			assert.equal(v.out.result, 'intact');
			assert.ok(v.out.checked > 10);
		}
		pg.psql(`UPDATE mcpwarden_records SET record = replace(record, '"seq":5', '"seq":5,"x":1') WHERE sidecar = 'alpha' AND seq = 5`);
		const changed = verify(pg, 'alpha');
		assert.equal(changed.code, 1, changed.err);
		assert.equal(changed.out.result, 'changed');
		assert.equal(changed.out.id, 5);
		pg.psql(`DELETE FROM mcpwarden_records WHERE sidecar = 'beta' AND seq = 7`);
		const removed = verify(pg, 'beta');
		assert.equal(removed.code, 2, removed.err);
		assert.equal(removed.out.result, 'removed');
		assert.equal(removed.out.id, 7);
		const none = verify(pg, 'nobody');
		assert.equal(none.code, 4);
	});

	test('retention drops whole old days and moves the chain anchor: the rest verifies', async () => {
		// A sidecar whose logs.db holds records of 3 days ago and of today ships them all...
		const state = join(dir, 'gamma');
		mkdirSync(state);
		const db = openLogsDb(logsDbPath(state));
		const old = Date.now() - 3 * 86400000;
		insertRecords(db, Array.from({ length: 30 }, (_, i) => ({ ts: new Date(old + i * 1000).toISOString(),
			type: 'decision', key: 'k-old', target: 'fixture__old', decision: 'allow', status: 'ok' })));
		insertRecords(db, Array.from({ length: 5 }, (_, i) => ({ ts: new Date(Date.now() - 60000 + i).toISOString(),
			type: 'decision', key: 'k-new', target: 'fixture__new', decision: 'allow', status: 'ok' })));
		db.close();
		const cfg = (days) => ({ listen: '127.0.0.1:0', state_dir: state, auth: { required: false },
			admin: { listen: '127.0.0.1:0', token: TOKEN },
			logs: { postgres: { conninfo: pg.conninfo, sidecar: 'gamma', poll: '50ms', max_age_days: days } } });
		let g = await startDaemon(cfg(30));
		await eventually(async () => Number(pg.psql(`SELECT count(*) FROM mcpwarden_records WHERE sidecar = 'gamma'`)[0][0]) >= 35,
			{ what: 'gamma shipped' });
		assert.deepEqual(await stopDaemonChecked(g), []);
		assert.equal(verify(pg, 'gamma').code, 0);
		// ... and, restarted with max_age_days 1, drops the old day at connect.
		g = await startDaemon(cfg(1));
		await g.waitForStderr(/logs.postgres: retention dropped \d+ days?/, 15000);
		assert.deepEqual(await stopDaemonChecked(g), []);
		const [[first, left]] = pg.psql(`SELECT c.first_seq, (SELECT count(*) FROM mcpwarden_records r WHERE r.sidecar = 'gamma' AND r.key = 'k-old') FROM mcpwarden_chain c WHERE c.sidecar = 'gamma'`);
		assert.equal(first, '31', 'the anchor is the first record kept');
		assert.equal(left, '0');
		const v = verify(pg, 'gamma');
		assert.equal(v.code, 0, JSON.stringify(v.out));
		assert.equal(v.out.first_id, 31);
		// alpha and beta lost nothing: their days are today's.
		assert.ok(Number(pg.psql(`SELECT count(*) FROM mcpwarden_records WHERE sidecar = 'alpha'`)[0][0]) > 10);
	});
});
