// The log store's file (logs.db) for the logs API and dashboard tests: the contract's schema
// (LOGS_DDL, read from tests/fixtures/logs-schema.sql, the one place), rows from record
// objects, and the pre-merge stand-in for the store.
//
// MERGE NOTE (s3-logstore): once the daemon writes logs.db itself, logs-schema.sql can be replaced
// by the daemon's own schema and STORE_SHIM by false: tests then see the records of the real store.
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';

// Until the log store lands, the dashboard test can only see calls in logs.db if something
// copies the daemon's stdout records there. With MCPWARDEN_LOGS_SHIM=1 the tests do that
// themselves (clearly a stand-in); without it, a test that needs the real store skips.
export const STORE_SHIM = process.env.MCPWARDEN_LOGS_SHIM === '1';

// The contract's schema: tests/fixtures/logs-schema.sql (also read by tests/unit/test_logquery.c).
export const LOGS_DDL = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures',
	'logs-schema.sql'), 'utf8');

export function logsDbPath(stateDir) {
	return join(stateDir, 'logs.db');
}

/** Open (creating with the contract's schema) a logs.db for writing. */
export function openLogsDb(path) {
	const db = new DatabaseSync(path);
	db.exec('PRAGMA journal_mode=WAL');
	db.exec(LOGS_DDL);
	db.prepare('INSERT OR IGNORE INTO chain (id, first_id, prev_hash) VALUES (1, 1, ?)')
		.run(Buffer.alloc(32));
	return db;
}

function num(v) {
	return typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : null;
}

/** Append records (objects as on stdout) with the contract's columns and hash chain. */
export function insertRecords(db, records) {
	const last = db.prepare('SELECT id, hash FROM records ORDER BY id DESC LIMIT 1').get();
	let prev = last ? Buffer.from(last.hash) : Buffer.alloc(32);
	let id = last ? Number(last.id) : 0;
	const ins = db.prepare(`INSERT INTO records (id, ts, type, key, team, session, method,
		server, target, decision, reason, status, error_code, error_message, latency_us,
		upstream_us, cost_micros, result_bytes, trace_id, record, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
	db.exec('BEGIN');
	for (const r0 of records) {
		id++;
		const r = { ...r0, seq: id };
		const text = JSON.stringify(r);
		const hash = createHash('sha256').update(prev).update(text).digest();
		const ts = typeof r.ts === 'number' ? r.ts : Date.parse(r.ts);
		const s = (v) => (typeof v === 'string' ? v : null);
		ins.run(id, ts, r.type, s(r.key), s(r.team), s(r.session), s(r.method), s(r.server),
			s(r.target), s(r.decision), s(r.reason), s(r.status), num(r.error_code),
			s(r.error_message),
			num(r.latency_us ?? (typeof r.latency_ms === 'number' ? r.latency_ms * 1000 : null)),
			num(r.upstream_us ?? (typeof r.upstream_ms === 'number' ? r.upstream_ms * 1000 : null)),
			num(r.cost_micros), num(r.result_bytes), s(r.trace_id), text, hash);
		prev = hash;
	}
	db.exec('COMMIT');
	return id;
}

/**
 * The store for a running daemon (started with startDaemon): the real one when the daemon
 * created logs.db within ms; otherwise, with STORE_SHIM, a stand-in that copies the daemon's
 * stdout records into a logs.db of the contract's schema every 100 ms. Returns
 * { real, skip: reason | null, stop() }.
 */
export async function logStoreFor(daemon, stateDir, ms = 3000) {
	const path = logsDbPath(stateDir);
	const deadline = Date.now() + ms;
	while (Date.now() < deadline && !existsSync(path))
		await new Promise((res) => setTimeout(res, 50));
	if (existsSync(path))
		return { real: true, skip: null, stop() {} };
	if (!STORE_SHIM)
		return { real: false, skip: 'the daemon wrote no logs.db (the log store of s3-logstore ' +
			'is not merged yet); MCPWARDEN_LOGS_SHIM=1 stands in for it', stop() {} };
	const db = openLogsDb(path);
	let copied = 0;
	const copy = () => {
		const fresh = daemon.stdoutRecords.slice(copied).filter((r) => r.ts && r.type);
		copied = daemon.stdoutRecords.length;
		if (fresh.length)
			insertRecords(db, fresh);
	};
	copy();
	const t = setInterval(copy, 100);
	return { real: false, skip: null, stop() { clearInterval(t); db.close(); } };
}
