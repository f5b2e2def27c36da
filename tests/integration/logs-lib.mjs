// The log store's file (logs.db) for the logs API and dashboard tests: its schema (LOGS_DDL,
// tests/fixtures/logs-schema.sql, which test_logquery checks against the daemon's own), and
// chosen records written as the daemon's writer writes them (columns, free-text index, chain),
// so that the daemon started on such a file goes on from them.
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';

// The store's schema: tests/fixtures/logs-schema.sql (also read by tests/unit/test_logquery.c).
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
	// As the writer does per batch: the free-text index (the rows with a reason or an error),
	// the targets not seen before, and the chain's head.
	const from = last ? Number(last.id) : 0;
	db.prepare(`INSERT INTO records_fts(rowid, reason, error_message)
		SELECT id, reason, error_message FROM records WHERE id > ?
		AND (reason IS NOT NULL OR error_message IS NOT NULL)`).run(from);
	// A target's last_id: the end of the newest block (1024 ids) with a record naming it.
	const add = db.prepare('INSERT OR IGNORE INTO targets (name, last_id) VALUES (?, ?)');
	const addFts = db.prepare('INSERT INTO targets_fts (rowid, name) VALUES (?, ?)');
	const seen = db.prepare('UPDATE targets SET last_id = ? WHERE name = ? AND last_id < ?');
	for (const { target, last } of db.prepare(`SELECT target, max(id) | 1023 AS last FROM records
		WHERE id > ? AND target IS NOT NULL GROUP BY target`).all(from)) {
		const r = add.run(target, last);
		if (r.changes === 1)
			addFts.run(r.lastInsertRowid, target);
		else
			seen.run(last, target, last);
	}
	db.prepare('UPDATE chain SET last_id = ?, head = ? WHERE id = 1').run(id, prev);
	db.exec('COMMIT');
	return id;
}

/**
 * The store of a running daemon (started with startDaemon): waits up to ms for it to create
 * logs.db. Returns { real: true, skip: null, stop() } or throws.
 */
export async function logStoreFor(daemon, stateDir, ms = 5000) {
	const path = logsDbPath(stateDir);
	const deadline = Date.now() + ms;
	while (Date.now() < deadline && !existsSync(path))
		await new Promise((res) => setTimeout(res, 50));
	if (!existsSync(path))
		throw new Error(`the daemon wrote no ${path} within ${ms} ms`);
	return { real: true, skip: null, stop() {} };
}

/**
 * The admin plane's live tail, GET /api/logs/stream?<query>, as a reader: `until(re, ms)` reads
 * until the text read so far matches re (failing if it does not within ms, or the stream ends),
 * `events()` is the records read (the data lines, parsed), `reset()` forgets what was read,
 * `close()` ends it. `response` is the fetch Response (status, headers).
 */
export async function openLiveTail(adminUrl, query, headers) {
	const ac = new AbortController();
	const response = await fetch(`${adminUrl}/api/logs/stream${query ? `?${query}` : ''}`,
		{ headers, signal: ac.signal });
	if (response.status !== 200) {
		ac.abort();
		throw new Error(`live tail: ${response.status} ${await response.text().catch(() => '')}`);
	}
	const reader = response.body.getReader();
	const decoder = new TextDecoder();
	let text = '';
	return {
		response,
		text: () => text,
		events: () => text.split('\n').filter((l) => l.startsWith('data: '))
			.map((l) => JSON.parse(l.slice(6))),
		reset() { text = ''; },
		async until(re, ms) {
			const deadline = Date.now() + ms;
			while (typeof re === 'function' ? !re(this) : !re.test(text)) {
				if (Date.now() > deadline)
					throw new Error(`live tail: no ${re} within ${ms} ms in: ${text}`);
				const { value, done } = await reader.read();
				if (done)
					throw new Error(`live tail: the stream ended; read: ${text}`);
				text += decoder.decode(value, { stream: true });
			}
		},
		close() { ac.abort(); },
	};
}
