// The logs API on the admin listener against the real daemon: pages of logs.db with every
// filter, cursors and the clamped limit, one record, stats, the 400s naming the parameter,
// 401 without the token or the dashboard cookie, and the live tail fed by real calls.
//
// The paging tests read a logs.db of the contract's schema filled before the daemon starts
// (tests/integration/logs-lib.mjs, the one place of the schema): known records give exact
// answers. The live tail needs no database: it carries what the daemon emits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, fixtureStdioUpstream, makeTempDir, removeTempDir, startDaemon,
	stopDaemonChecked } from './lib.mjs';
import { insertRecords, logsDbPath, openLiveTail, openLogsDb } from './logs-lib.mjs';

const TOKEN = 'admin-token-for-logs-tests-0123456789';
const H = { Authorization: `Bearer ${TOKEN}` };
const T0 = Date.now() - 3 * 3600 * 1000;     // the synthetic records: from 3 h ago, 10 s apart
const N = 620;
const TOOLS = ['alpha', 'beta', 'gamma'];

// Record i of the synthetic set: every field derived from i, so the tests can count.
function synthetic(i) {
	const decision = i % 10 === 0 ? 'deny' : i % 17 === 0 ? 'error' : 'allow';
	const r = { ts: new Date(T0 + i * 10000).toISOString(), type: 'decision',
		session: 'abcdef12', key: i % 2 ? 'key-odd' : 'key-even', team: i % 3 ? 'blue' : 'red',
		method: 'tools/call', server: i % 4 ? 'srv-main' : 'srv-side',
		target: TOOLS[i % 3], decision, latency_ms: (i % 50) + 1, cost_micros: 1000 * (i % 5) };
	if (decision === 'deny')
		r.reason = i % 20 === 0 ? 'budget quota exceeded' : 'policy: tool not allowed';
	else if (decision === 'allow')
		r.status = i % 7 === 0 ? 'tool_error' : 'ok';
	else {
		r.status = 'error';
		r.error_code = -32603;
		r.error_message = 'upstream crashed';
	}
	return r;
}
const ALL = Array.from({ length: N }, (_, i) => synthetic(i));

async function get(d, path, headers = H) {
	const res = await fetch(d.adminUrl + path, { headers });
	const text = await res.text();
	let json = null;
	try { json = JSON.parse(text); } catch { /* not JSON */ }
	return { status: res.status, headers: res.headers, json, text };
}

// Every record of a filter, through the cursors; asserts the pages are in order.
async function allPages(d, qs) {
	const out = [];
	let cursor = null, pages = 0;
	do {
		const r = await get(d, `/api/logs?${qs}${cursor ? `&cursor=${cursor}` : ''}`);
		assert.equal(r.status, 200, r.text);
		out.push(...r.json.records);
		cursor = r.json.next_cursor;
		assert.ok(++pages < 100, 'cursor loop');
	} while (cursor);
	for (let i = 1; i < out.length; i++)
		assert.ok(out[i - 1].id > out[i].id, 'newest first, no repeats');
	return out;
}

const ours = (recs) => recs.filter((r) => r.session === 'abcdef12');

describe('logs API', () => {
	let d, dir;

	before(async () => {
		dir = makeTempDir('mcpwarden-logs-');
		const state = join(dir, 'state');
		mkdirSync(state);
		const db = openLogsDb(logsDbPath(state));
		insertRecords(db, ALL);
		db.close();
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', state_dir: state,
			auth: { required: false }, admin: { listen: '127.0.0.1:0', token: TOKEN },
			limits: { max_header_bytes: 262144 },
			upstreams: [fixtureStdioUpstream('fixture')] }, { ready: true });
	});
	after(async () => {
		const problems = d ? await stopDaemonChecked(d) : [];
		removeTempDir(dir);
		assert.deepEqual(problems, []);
	});

	test('401 without the admin token, with a wrong one, and with a made-up cookie', async () => {
		// Fewer than the 10 failures a minute after which the peer is held off (429).
		for (const p of ['/api/logs', '/api/logs/1', '/api/logs/stats', '/api/logs/stream',
			'/api/kernel'])
			assert.equal((await get(d, p, {})).status, 401, p);
		for (const headers of [{ Authorization: 'Bearer nope' },
			{ Cookie: 'mcpwarden_admin=' + 'a'.repeat(64) }])
			assert.equal((await get(d, '/api/logs', headers)).status, 401,
				JSON.stringify(headers));
	});

	test('a page: newest first, default limit 50, a cursor to the next', async () => {
		const r = await get(d, '/api/logs?type=decision');
		assert.equal(r.status, 200);
		assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
		const recs = ours(r.json.records);
		assert.equal(recs.length, r.json.records.length, 'only the synthetic decisions');
		assert.equal(recs.length, 50);
		assert.equal(recs[0].ts, ALL[N - 1].ts);
		assert.equal(recs[49].ts, ALL[N - 50].ts);
		assert.equal(r.json.next_cursor, String(recs[49].id));
		const next = await get(d, `/api/logs?type=decision&cursor=${r.json.next_cursor}&limit=3`);
		assert.deepEqual(next.json.records.map((x) => x.ts), [ALL[N - 51].ts, ALL[N - 52].ts,
			ALL[N - 53].ts]);
	});

	test('the limit is clamped to 500; the last page has no cursor', async () => {
		const r = await get(d, '/api/logs?type=decision&limit=100000');
		assert.equal(r.status, 200);
		assert.equal(r.json.records.length, 500);
		const rest = await get(d, `/api/logs?type=decision&limit=500&cursor=${r.json.next_cursor}`);
		assert.equal(rest.json.records.length, N - 500);
		assert.equal(rest.json.next_cursor, null);
	});

	test('each filter, alone and together, across pages', async () => {
		const cases = [
			['key=key-odd', (r) => r.key === 'key-odd'],
			['team=red', (r) => r.team === 'red'],
			['server=srv-side', (r) => r.server === 'srv-side'],
			['tool=beta', (r) => r.target === 'beta'],
			['decision=deny', (r) => r.decision === 'deny'],
			['status=tool_error', (r) => r.status === 'tool_error'],
			['q=quota', (r) => /quota/.test(r.reason ?? '')],
			['q=crashed', (r) => /crashed/.test(r.error_message ?? '')],
			['tool=gamma&decision=allow&team=blue&limit=7', (r) => r.target === 'gamma' &&
				r.decision === 'allow' && r.team === 'blue'],
			[`since=${new Date(T0 + 100 * 10000).toISOString()}&until=${T0 + 199 * 10000}`,
				(r) => Date.parse(r.ts) >= T0 + 100 * 10000 && Date.parse(r.ts) <= T0 + 199 * 10000],
			// An RFC 3339 offset: the same instant written in UTC+02:00.
			[`since=${encodeURIComponent(new Date(T0 + 300 * 10000 + 7200000).toISOString()
				.replace('Z', '+02:00'))}`, (r) => Date.parse(r.ts) >= T0 + 300 * 10000],
		];
		for (const [qs, pred] of cases) {
			const got = ours(await allPages(d, qs + '&type=decision'));
			const want = ALL.filter(pred).reverse();
			assert.ok(want.length > 0, qs);
			assert.deepEqual(got.map((r) => r.ts), want.map((r) => r.ts), qs);
		}
	});

	test('one record by id; 404 for one that is not there', async () => {
		const page = await get(d, '/api/logs?tool=alpha&limit=1');
		const id = page.json.records[0].id;
		const r = await get(d, `/api/logs/${id}`);
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, page.json.records[0]);
		assert.equal((await get(d, '/api/logs/999999999')).status, 404);
		assert.equal((await get(d, '/api/logs/abc')).status, 404);
		const post = await fetch(d.adminUrl + '/api/logs/stats', { method: 'POST', headers: H });
		assert.equal(post.status, 405);
		assert.equal(post.headers.get('allow'), 'GET');
	});

	test('400 naming the bad parameter', async () => {
		const bad = [
			['/api/logs?decision=maybe', 'decision'],
			['/api/logs?status=fine', 'status'],
			['/api/logs?since=yesterday', 'since'],
			['/api/logs?until=2026-13-01T00:00:00Z', 'until'],
			['/api/logs?limit=0', 'limit'],
			['/api/logs?limit=ten', 'limit'],
			['/api/logs?cursor=-4', 'cursor'],
			['/api/logs?colour=red', 'colour'],
			[`/api/logs?since=${T0 + 1000}&until=${T0}`, 'until'],
			[`/api/logs?tool=${'x'.repeat(300)}`, 'tool'],
			['/api/logs/stats?group_by=colour', 'group_by'],
			['/api/logs/stats?bucket=0', 'bucket'],
			[`/api/logs/stats?bucket=1&since=${T0}`, 'bucket'],
			['/api/logs/stream?since=1', 'since'],
			// A local store has one sidecar: the filter belongs to the fleet's shared store.
			['/api/logs?sidecar=alpha', 'sidecar'],
			['/api/logs/stream?sidecar=alpha', 'sidecar'],
		];
		for (const [p, param] of bad) {
			const r = await get(d, p);
			assert.equal(r.status, 400, p);
			assert.equal(r.json.error.parameter, param, p);
			assert.equal(typeof r.json.error.message, 'string');
		}
	});

	test('stats per tool over time buckets: counts, refusals, errors, cost, p50/p99', async () => {
		const since = T0, until = T0 + N * 10000;
		const r = await get(d, `/api/logs/stats?group_by=tool&bucket=3600&since=${since}` +
			`&until=${until}&key=key-even`);
		assert.equal(r.status, 200, r.text);
		const want = new Map();
		for (const rec of ALL.filter((x) => x.key === 'key-even')) {
			const t = Math.floor(Date.parse(rec.ts) / 3600000) * 3600000;
			const k = `${t}|${rec.target}`;
			const w = want.get(k) ?? { calls: 0, denied: 0, errors: 0, cost: 0, lat: [] };
			w.calls++;
			w.denied += rec.decision === 'deny';
			w.errors += rec.decision === 'error' || rec.status === 'tool_error' ||
				rec.status === 'error';
			w.cost += rec.cost_micros;
			w.lat.push(rec.latency_ms);
			want.set(k, w);
		}
		assert.equal(r.json.buckets.length, want.size);
		for (const b of r.json.buckets) {
			const w = want.get(`${b.t}|${b.group}`);
			assert.ok(w, `unexpected bucket ${JSON.stringify(b)}`);
			const lat = w.lat.sort((x, y) => x - y);
			const rank = (p) => lat[Math.max(0, Math.ceil(lat.length * p / 100) - 1)];
			assert.deepEqual([b.calls, b.denied, b.errors, b.cost_micros, b.p50_ms, b.p99_ms],
				[w.calls, w.denied, w.errors, w.cost, rank(50), rank(99)], b.group);
		}
	});

	test('the kernel view says when enforcement is off', async () => {
		const r = await get(d, '/api/kernel');
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, { enforcement: false });
	});

	test('live tail: the records of real calls as they happen, filtered, with heartbeats',
		async () => {
			const tail = await openLiveTail(d.adminUrl, 'tool=test_simple_text', H);
			assert.match(tail.response.headers.get('content-type'), /^text\/event-stream/);
			const until = (re, ms) => tail.until(re, ms);
			await until(/live tail open/, 5000);
			const c = await connectHttp(d.url);
			try {
				await c.client.callTool({ name: 'test_error_handling', arguments: {} });
				await c.client.callTool({ name: 'test_simple_text', arguments: {} });
			} finally {
				await c.close();
			}
			await until(/^data: /m, 5000);
			const events = tail.events();
			assert.equal(events.length, 1, tail.text());
			assert.equal(events[0].target, 'test_simple_text');
			assert.equal(events[0].decision, 'allow');
			assert.equal(events[0].type, 'decision');
			// Longer than the admin listener's 10 s timeout: kept open by heartbeats.
			tail.reset();
			await until(/: heartbeat/, 8000);
			await new Promise((res) => setTimeout(res, 6000));
			tail.reset();
			await until(/: heartbeat/, 8000);
			tail.close();
		});

	test('at most 16 live tail clients; the next is told 503', async () => {
		const acs = [];
		try {
			for (let i = 0; i < 16; i++) {
				const ac = new AbortController();
				acs.push(ac);
				const res = await fetch(d.adminUrl + '/api/logs/stream', { headers: H,
					signal: ac.signal });
				assert.equal(res.status, 200, `stream ${i}`);
			}
			const r = await get(d, '/api/logs/stream');
			assert.equal(r.status, 503);
			assert.match(r.json.error.message, /too many/);
		} finally {
			for (const ac of acs)
				ac.abort();
		}
		// Closed streams free their places.
		const deadline = Date.now() + 5000;
		for (;;) {
			const ac = new AbortController();
			const res = await fetch(d.adminUrl + '/api/logs/stream', { headers: H, signal: ac.signal });
			ac.abort();
			if (res.status === 200)
				break;
			assert.ok(Date.now() < deadline, 'places not freed');
			await new Promise((r2) => setTimeout(r2, 100));
		}
	});

	test('dashboard login: a cookie for reads (HttpOnly, SameSite=Strict), gone at logout',
		async () => {
			const post = (path, body, headers = {}) => fetch(d.adminUrl + path, { method: 'POST',
				body, redirect: 'manual', headers: { 'Content-Type':
				'application/x-www-form-urlencoded', ...headers } });
			let r = await post('/logs/login', 'token=wrong');
			assert.equal(r.status, 303);
			assert.equal(r.headers.get('location'), '/logs?failed=1');
			assert.equal(r.headers.get('set-cookie'), null);

			r = await post('/logs/login', 'token=' + encodeURIComponent(TOKEN));
			assert.equal(r.status, 303);
			assert.equal(r.headers.get('location'), '/logs');
			const sc = r.headers.get('set-cookie');
			assert.match(sc, /^mcpwarden_admin=[0-9a-f]{64}; /);
			assert.match(sc, /HttpOnly/);
			assert.match(sc, /SameSite=Strict/);
			assert.match(sc, /Path=\//);
			assert.doesNotMatch(sc, /Secure/, 'plain http on loopback');
			assert.ok(!sc.includes(TOKEN), 'the cookie is not the token');
			const cookie = { Cookie: sc.split(';')[0] };

			const page = await get(d, '/logs', cookie);
			assert.equal(page.status, 200);
			assert.match(page.text, /<title>mcpwarden · logs<\/title>/);
			const csp = page.headers.get('content-security-policy');
			assert.match(csp, /default-src 'self'/);
			assert.match(csp, /frame-ancestors 'none'/);
			assert.doesNotMatch(csp, /unsafe-inline/);
			assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
			assert.match((await get(d, '/logs')).text, /Sign in with the admin token/);

			assert.equal((await get(d, '/api/logs?limit=1', cookie)).status, 200);
			// A write needs the token itself: the cookie only stands for it on reads.
			const w = await fetch(d.adminUrl + '/v1/keys', { method: 'POST', headers: {
				...cookie, 'Content-Type': 'application/json' }, body: '{"name":"x"}' });
			assert.equal(w.status, 401);

			r = await post('/logs/logout', '', cookie);
			assert.equal(r.status, 303);
			assert.match(r.headers.get('set-cookie'), /Max-Age=0/);
			assert.equal((await get(d, '/api/logs?limit=1', cookie)).status, 401);
			assert.match((await get(d, '/logs', cookie)).text, /Sign in/);
		});
	test('a reload with a new admin token signs the dashboard out; the same token does not',
		async () => {
			const login = async (token) => {
				const r = await fetch(d.adminUrl + '/logs/login', { method: 'POST', redirect: 'manual',
					headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
					body: 'token=' + encodeURIComponent(token) });
				return { Cookie: r.headers.get('set-cookie').split(';')[0] };
			};
			const cfg = JSON.parse(readFileSync(d.configPath, 'utf8'));
			const cookie = await login(TOKEN);
			assert.equal((await d.reload(cfg)).ok, true);
			assert.equal((await get(d, '/api/logs?limit=1', cookie)).status, 200, 'same token');
			const other = TOKEN + '-rotated';
			assert.equal((await d.reload({ ...cfg, admin: { ...cfg.admin, token: other } })).ok, true);
			assert.equal((await get(d, '/api/logs?limit=1', cookie)).status, 401, 'new token');
			assert.equal((await get(d, '/api/logs?limit=1', { Authorization: `Bearer ${other}` }))
				.status, 200);
			assert.equal((await d.reload(cfg)).ok, true);
		});

	// Last: its refusals hold this peer off the admin plane for a while.
	test('a live tail client that does not read is cut; the daemon does not buffer for it',
		async () => {
			const net = await import('node:net');
			const u = new URL(d.adminUrl);
			const sock = net.connect({ host: u.hostname, port: Number(u.port) });
			await new Promise((res) => sock.once('connect', res));
			sock.write(`GET /api/logs/stream HTTP/1.1\r\nHost: ${u.host}\r\n` +
				`Authorization: Bearer ${TOKEN}\r\n\r\n`);
			sock.pause();
			let closed = false;
			sock.on('close', () => { closed = true; });
			sock.on('error', () => {});
			await new Promise((res) => setTimeout(res, 300));
			// Big records: a refused admin request is recorded with the path it asked for.
			const path = '/' + 'x'.repeat(200000);
			for (let i = 0; i < 400; i++) {
				await fetch(d.adminUrl + path).then((r) => r.arrayBuffer()).catch(() => {});
				if (d.stderrLines.some((l) => /live tail client fell .* behind: cut/.test(l)))
					break;
			}
			assert.ok(d.stderrLines.some((l) => /live tail client fell .* behind: cut/.test(l)),
				'the daemon says it cut the client');
			sock.resume();
			sock.on('data', () => {});
			const deadline = Date.now() + 5000;
			while (!closed && Date.now() < deadline)
				await new Promise((res) => setTimeout(res, 50));
			sock.destroy();
			assert.ok(closed, 'the connection was closed');
		});
});
