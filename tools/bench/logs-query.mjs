// Benchmark (not a test): GET /api/logs over a logs.db of 1M records (the store's schema,
// tests/integration/logs-lib.mjs), through the real daemon's admin listener. Fills the file,
// starts <build>/mcpwarden on it, and times filtered pages (and a stats query) from a client
// on loopback: median and p95 of REPS runs each, against the 100 ms target for a page.
//
//   node tools/bench/logs-query.mjs [build dir]      LOGS_BENCH_N (1000000), LOGS_BENCH_REPS (21)
//   LOGS_BENCH_DB=path  reuse (or keep) the filled file instead of a temporary one
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openLogsDb } from '../../tests/integration/logs-lib.mjs';

const top = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const build = resolve(process.argv[2] ?? join(top, 'build', 'rel'));
const N = Number(process.env.LOGS_BENCH_N ?? 1000000);
const REPS = Number(process.env.LOGS_BENCH_REPS ?? 21);
const TOKEN = 'bench-admin-token-0123456789abcdef';
const DAY = 86400000;
const now = Date.now();

const dir = mkdtempSync(join(tmpdir(), 'mcpwarden-logs-bench-'));
const dbPath = process.env.LOGS_BENCH_DB ?? join(dir, 'logs.db');
const stateDir = dirname(dbPath);

// A week of traffic: 200 keys in 20 teams, 10 servers, 100 tools; 2% refused, 1% errors.
function record(i) {
	const ts = now - 7 * DAY + Math.floor((i / N) * 7 * DAY);
	const k = (i * 7919) % 200, tool = (i * 104729) % 100;
	const deny = i % 50 === 0, err = !deny && i % 100 === 7;
	const r = { ts: new Date(ts).toISOString(), type: 'decision', session: (i % 99991).toString(16).padStart(8, '0'),
		key: `key-${k}`, team: `team-${k % 20}`, method: 'tools/call', server: `srv-${tool % 10}`,
		target: `srv-${tool % 10}__tool-${tool}`, decision: deny ? 'deny' : err ? 'error' : 'allow',
		latency_us: 500 + ((i * 31) % 20000), cost_micros: (i % 13) * 100, args_shape: { path: 'string', n: 'number' } };
	if (deny)
		r.reason = i % 200 === 0 ? 'budget: daily quota exceeded' : 'policy: tool not allowed for this key';
	else if (err) {
		r.status = 'error';
		r.error_code = -32603;
		r.error_message = 'upstream timed out after 30000 ms';
	} else
		r.status = 'ok';
	return r;
}

function fill() {
	const db = openLogsDb(dbPath);
	// max(id), not count(*): a reused file has lost its oldest records to the daemon's
	// retention by age, and gained its records (checkpoints) past N.
	const have = Number(db.prepare('SELECT COALESCE(max(id), 0) AS n FROM records').get().n);
	if (have >= N) {
		db.close();
		return have;
	}
	const ins = db.prepare(`INSERT INTO records (id, ts, type, key, team, session, method, server,
		target, decision, reason, status, error_code, error_message, latency_us, cost_micros,
		record, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
	let prev = Buffer.alloc(32);
	const t0 = Date.now();
	for (let i = have; i < N; i += 10000) {
		db.exec('BEGIN');
		for (let j = i; j < Math.min(N, i + 10000); j++) {
			const r = { ...record(j), seq: j + 1 };
			const text = JSON.stringify(r);
			prev = createHash('sha256').update(prev).update(text).digest();
			ins.run(j + 1, Date.parse(r.ts), r.type, r.key, r.team, r.session, r.method, r.server,
				r.target, r.decision, r.reason ?? null, r.status ?? null, r.error_code ?? null,
				r.error_message ?? null, r.latency_us, r.cost_micros, text, prev);
		}
		db.exec('COMMIT');
	}
	// As the daemon's writer does: the free-text index, and the chain's head (the daemon goes
	// on from it).
	db.prepare(`INSERT INTO records_fts(rowid, reason, error_message)
		SELECT id, reason, error_message FROM records WHERE id > ?
		AND (reason IS NOT NULL OR error_message IS NOT NULL)`).run(have);
	db.exec(`INSERT INTO targets (name, last_id) SELECT target, max(id) | 1023 FROM records
		WHERE target IS NOT NULL GROUP BY target ON CONFLICT (name) DO UPDATE SET
		last_id = max(last_id, excluded.last_id);
		INSERT INTO targets_fts (targets_fts) VALUES ('rebuild')`);
	db.prepare('UPDATE chain SET last_id = ?, head = ? WHERE id = 1').run(N, prev);
	db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
	db.exec('ANALYZE');
	db.close();
	console.log(`filled ${N} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
	return N;
}

async function startDaemon() {
	const cfg = { listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
		state_dir: stateDir, admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [{ name: 'fixture', transport: 'stdio', command: [process.execPath,
			join(top, 'tests', 'fixtures', 'conformance-server.mjs'), '--stdio'] }] };
	const cfgPath = join(dir, 'config.json');
	writeFileSync(cfgPath, JSON.stringify(cfg));
	const p = spawn(join(build, 'mcpwarden'), ['-c', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
	const admin = await new Promise((res, rej) => {
		const t = setTimeout(() => rej(new Error('the daemon did not start')), 15000);
		createInterface({ input: p.stderr }).on('line', (l) => {
			const m = /^mcpwarden: admin (?:listening )?on (http:\/\/\S+)/.exec(l);
			if (m) {
				clearTimeout(t);
				res(m[1]);
			}
		});
		p.on('exit', () => rej(new Error('the daemon exited')));
	});
	return { p, admin };
}

async function time(admin, path) {
	const ms = [];
	let body;
	for (let i = 0; i < REPS; i++) {
		const t = process.hrtime.bigint();
		const res = await fetch(admin + path, { headers: { Authorization: `Bearer ${TOKEN}` } });
		body = await res.json();
		ms.push(Number(process.hrtime.bigint() - t) / 1e6);
		if (res.status !== 200)
			throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
	}
	ms.sort((a, b) => a - b);
	return { p50: ms[Math.floor(REPS / 2)], p95: ms[Math.ceil(REPS * 0.95) - 1], body };
}

if (!existsSync(join(build, 'mcpwarden'))) {
	console.log(`logs-query: SKIP: no ${join(build, 'mcpwarden')} (make first)`);
	process.exit(0);
}
let daemon;
try {
	const n = fill();
	daemon = await startDaemon();
	const { admin } = daemon;
	const since = now - 3 * DAY, until = now - 2 * DAY;
	const first = await time(admin, '/api/logs?key=key-17&limit=50');
	const cursor = first.body.next_cursor;
	const cases = [
		['newest 50, no filter', '/api/logs'],
		['key', '/api/logs?key=key-17'],
		['key in no record (all blocks)', '/api/logs?key=nobody'],
		['a day window alone, 2 days back', `/api/logs?since=${since}&until=${until}`],
		['team + day window', `/api/logs?team=team-3&since=${since}&until=${until}`],
		['tool + decision=deny', '/api/logs?tool=srv-0__tool-50&decision=deny'],
		['server + status=error', '/api/logs?server=srv-3&status=error'],
		['free text (fts5)', '/api/logs?q=quota'],
		['free text naming a tool (targets, blocks)', '/api/logs?q=tool-50'],
		['free text naming 10 tools', '/api/logs?q=srv-3'],
		['free text in no record', '/api/logs?q=nothing'],
		['key, next page (cursor)', `/api/logs?key=key-17&cursor=${cursor}`],
		['500 records, type=decision', '/api/logs?type=decision&limit=500'],
		['stats per tool, 1 h buckets, 24 h', `/api/logs/stats?group_by=tool&bucket=3600&since=${now - DAY}&until=${now}`],
	];
	console.log(`GET /api/logs over ${n} records (${REPS} runs each, client on loopback):`);
	console.log(`  ${'query'.padEnd(36)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)}  rows`);
	let worst = 0;
	for (const [name, path] of cases) {
		const r = await time(admin, path);
		const rows = r.body.records?.length ?? r.body.buckets?.length;
		console.log(`  ${name.padEnd(36)} ${r.p50.toFixed(1).padStart(8)} ${r.p95.toFixed(1).padStart(8)}  ${rows}`);
		if (!path.startsWith('/api/logs/stats') && !path.includes('limit=500'))
			worst = Math.max(worst, r.p50);
	}
	console.log(`slowest filtered page of 50 (p50): ${worst.toFixed(1)} ms; target <= 100 ms: ` +
		(worst <= 100 ? 'met' : 'MISSED'));
} finally {
	daemon?.p.kill('SIGTERM');
	if (!process.env.LOGS_BENCH_DB)
		rmSync(dir, { recursive: true, force: true });
}
