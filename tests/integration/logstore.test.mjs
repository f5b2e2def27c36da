// The log store through the real daemon (docs/audit.md): the official SDK client makes allowed
// and refused calls and their rows appear in <state_dir>/logs.db with the fields users filter
// on, the same JSON line as on stdout, argument values only where the policy logs them (and
// redacted); /metrics shows the store and per-tool latency; a restart continues the chain; a
// size cap trims the oldest rows and `wardenctl audit verify` still passes, and it names a row
// changed, removed or inserted with the sqlite3 CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, eventually, fixtureStdioUpstream, makeKey, makeTempDir, paths,
	removeTempDir, startDaemon, stopDaemonChecked } from './lib.mjs';
import { openLiveTail } from './logs-lib.mjs';

const TOKEN = 'logstore-admin-token-0123456789abcdef';
const loud = makeKey();         // policy "loud": argument and result values logged, redacted
const plain = makeKey();        // policy "plain": only test_simple_text, values never logged

function config(stateDir, logs = {}) {
	return {
		listen: '127.0.0.1:0', prefix: 'never', state_dir: stateDir,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [fixtureStdioUpstream('fixture')],
		keys: [{ id: 'loud', hash: loud.hash, policy: 'loud', team: 'red' },
			{ id: 'plain', hash: plain.hash, policy: 'plain' }],
		teams: [{ name: 'red', policy: 'redteam' }],
		policies: {
			loud: { tools: { allow: ['*/*'] }, log_arguments: true, redact: ['password'] },
			redteam: { tools: { allow: ['*/*'] }, redact: ['apiKey'] },
			plain: { tools: { allow: ['fixture/test_simple_text'] } },
		},
		costs: { default: '0.001' },
		logs: { checkpoint_every: 3, ...logs },
	};
}

/** Rows of a read-only query with the sqlite3 CLI (JSON mode). */
function sql(db, query) {
	const r = spawnSync('sqlite3', ['-readonly', '-json', db, query], { encoding: 'utf8' });
	assert.equal(r.status, 0, r.stderr);
	return r.stdout.trim() ? JSON.parse(r.stdout) : [];
}

function verify(...args) {
	const r = spawnSync(join(paths.build, 'wardenctl'), ['audit', 'verify', ...args],
		{ encoding: 'utf8' });
	return { status: r.status, out: r.stdout + r.stderr };
}

async function call(d, key, name, args = {}) {
	const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${key.key}` } });
	try {
		return await c.client.callTool({ name, arguments: args });
	} catch (e) {
		return { thrown: e };
	} finally {
		await c.close();
	}
}

async function metrics(d) {
	const res = await fetch(`${d.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
	assert.equal(res.status, 200);
	const m = new Map();
	for (const line of (await res.text()).split('\n')) {
		const s = /^([^#\s][^ ]*) (\S+)$/.exec(line);
		if (s)
			m.set(s[1], Number(s[2]));
	}
	return m;
}

describe('log store', () => {
	let dir, stateDir, db, d;

	before(async () => {
		dir = makeTempDir('mcpwarden-logstore-');
		stateDir = join(dir, 'state');
		db = join(stateDir, 'logs.db');
		d = await startDaemon(config(stateDir), { ready: true });
	});
	after(async () => {
		if (d)
			await d.stop();
		removeTempDir(dir);
	});

	test('allowed and refused calls are stored with their fields, as on stdout', async () => {
		const ok = await call(d, loud, 'test_simple_text',
			{ password: 'hunter2', note: 'hi', nested: { apiKey: 'k-123', n: 1 } });
		assert.ok(!ok.thrown && !ok.isError);
		const refused = await call(d, plain, 'test_error_handling');
		assert.ok(refused.thrown || refused.isError);
		const quiet = await call(d, plain, 'test_simple_text', { password: 'x' });
		assert.ok(!quiet.thrown && !quiet.isError);

		const rows = await eventually(() => {
			const r = sql(db, "SELECT * FROM records WHERE type = 'decision' AND method = " +
				"'tools/call' ORDER BY id");
			return r.length >= 3 && r;
		}, { what: 'three tools/call rows in logs.db' });

		const [a, b, c] = rows;
		assert.equal(a.key, 'loud');
		assert.equal(a.team, 'red');
		assert.equal(a.server, 'fixture');
		assert.equal(a.target, 'test_simple_text');
		assert.equal(a.decision, 'allow');
		assert.equal(a.status, 'ok');
		assert.equal(a.cost_micros, 1000);
		assert.ok(a.latency_us > 0 && a.upstream_us > 0 && a.upstream_us <= a.latency_us);
		assert.ok(a.result_bytes > 0);
		assert.equal(a.trace_id, null);
		assert.equal(a.session.length, 8);
		const ra = JSON.parse(a.record);
		assert.equal(ra.seq, a.id);
		assert.deepEqual(ra.arguments, { password: '[redacted]', note: 'hi',
			nested: { apiKey: '[redacted]', n: 1 } });
		assert.ok(Array.isArray(ra.result.content));
		assert.ok(!a.record.includes('hunter2') && !a.record.includes('k-123'));

		assert.equal(b.key, 'plain');
		assert.equal(b.target, 'test_error_handling');
		assert.equal(b.decision, 'deny');
		assert.equal(b.status, 'error');
		assert.ok(b.reason && b.error_code < 0 && b.error_message);
		assert.equal(JSON.parse(b.record).arguments, undefined);

		assert.equal(c.decision, 'allow');
		assert.equal(JSON.parse(c.record).arguments, undefined, 'values only where the policy says');
		assert.ok(!c.record.includes('"password"') || !c.record.includes(':"x"'));

		// The stored text is the stdout line, byte for byte as JSON.
		for (const r of rows) {
			const line = d.stdoutRecords.find((x) => x.seq === r.id);
			assert.ok(line, `stdout has seq ${r.id}`);
			assert.deepEqual(JSON.parse(r.record), line);
		}
		// The free-text index has the refusal's reason and error (schema version 4: only rows
		// that have one), and the table of targets its tool.
		const word = b.reason.match(/[A-Za-z]{4,}/)[0];
		const fts = sql(db, `SELECT rowid FROM records_fts WHERE records_fts MATCH '"${word}"'`);
		assert.ok(fts.some((x) => x.rowid === b.id), `records_fts has "${word}" for ${b.id}`);
		assert.ok(sql(db, "SELECT rowid FROM records_fts WHERE rowid IN (SELECT id FROM records " +
			"WHERE reason IS NULL AND error_message IS NULL)").length === 0,
			'no row without a reason or error is in records_fts');
		const tg = sql(db, "SELECT name FROM targets_fts WHERE targets_fts MATCH " +
			"'test_error_handling'");
		assert.deepEqual(tg.map((x) => x.name), ['test_error_handling']);
		// Records that name their tool otherwise (tool_pin: "tool") still fill the target
		// column, so the tool filter finds them (and verify below checks the same mapping).
		const pins = sql(db, "SELECT target, record FROM records WHERE type = 'tool_pin'");
		assert.ok(pins.length > 0, 'first use pinned the tools');
		for (const p of pins)
			assert.equal(p.target, JSON.parse(p.record).tool);
		// Every 3 records a checkpoint goes to stdout (and is stored).
		await d.waitForRecord((x) => x.type === 'checkpoint' && /^[0-9a-f]{64}$/.test(x.head));
		assert.equal(verify('--db', db).status, 0);
	});

	test('/metrics: the store and per-tool latency', async () => {
		const m = await eventually(async () => {
			const s = await metrics(d);
			return s.get('mcpwarden_logstore_written_total') >= 3 && s;
		}, { what: 'written_total' });
		assert.equal(m.get('mcpwarden_logstore_dropped_total'), 0);
		assert.ok(m.has('mcpwarden_logstore_queue_depth'));
		assert.ok(m.get('mcpwarden_logstore_bytes') > 0);
		// As root the process may raise its writer again, so the writer waits in the kernel's
		// idle class (logs.writer_priority's default), and nothing has made it fall behind.
		assert.equal(m.get('mcpwarden_logstore_writer_idle'), 1);
		assert.equal(m.get('mcpwarden_logstore_writer_raised_total'), 0);
		const task = `/proc/${d.proc.pid}/task`;
		const tid = readdirSync(task).find((t) =>
			readFileSync(`${task}/${t}/comm`, 'utf8').trim() === 'mcpw-logstore');
		assert.ok(tid, 'the writer thread is named');
		assert.match(readFileSync(`${task}/${tid}/sched`, 'utf8'), /^policy\s*:\s*5$/m,
			'SCHED_IDLE (5)');
		// The other background writers too: records to stdout (raised for each operational
		// message, idle again once it is written), the counters store and its checkpointer.
		const idle = await eventually(async () => {
			const s = await metrics(d);
			return s.get('mcpwarden_records_writer_idle') === 1 &&
				s.get('mcpwarden_store_writer_idle') === 1 &&
				s.get('mcpwarden_store_checkpointer_idle') === 1 && s;
		}, { what: 'the writers idle' });
		assert.ok(idle.has('mcpwarden_records_writer_raised_total'));
		assert.ok(idle.has('mcpwarden_records_queue_bytes'));
		assert.ok(idle.has('mcpwarden_store_writer_raised_total'));
		assert.ok(idle.has('mcpwarden_store_checkpointer_raised_total'));
		for (const name of ['mcpw-records', 'mcpw-store', 'mcpw-checkpoint']) {
			const t = readdirSync(task).find((x) =>
				readFileSync(`${task}/${x}/comm`, 'utf8').trim() === name);
			assert.ok(t, `${name} is named`);
			assert.match(readFileSync(`${task}/${t}/sched`, 'utf8'), /^policy\s*:\s*5$/m,
				`${name}: SCHED_IDLE (5)`);
		}
		assert.ok(m.get('mcpwarden_tool_call_duration_seconds_count{server="fixture",' +
			'tool="test_simple_text"}') >= 2);
		// A tool the catalogue does not know has no series of its own.
		await call(d, loud, 'no_such_tool');
		const m2 = await metrics(d);
		assert.ok(m2.get('mcpwarden_tool_call_duration_seconds_count{server="other",' +
			'tool="other"}') >= 1);
		assert.ok(![...m2.keys()].some((k) => k.includes('no_such_tool')));
	});

	test('the live tail carries the store writer\'s checkpoints (made off the event loop)', async () => {
		const tail = await openLiveTail(d.adminUrl, 'type=checkpoint',
			{ Authorization: `Bearer ${TOKEN}` });
		try {
			await tail.until(/live tail open/, 5000);
			for (let i = 0; i < 3; i++)
				await call(d, loud, 'test_simple_text');
			await tail.until(/^data: /m, 10000);
			const [ev] = tail.events();
			assert.equal(ev.type, 'checkpoint');
			assert.match(ev.head, /^[0-9a-f]{64}$/);
			assert.ok(ev.seq > ev.head_seq, 'the checkpoint is stored after the head it names');
		} finally {
			tail.close();
		}
	});

	test('a restart continues the chain; the exit checkpoint verifies', async () => {
		assert.deepEqual(await stopDaemonChecked(d), []);
		const ckpt = d.stdoutRecords.filter((x) => x.type === 'checkpoint').at(-1);
		const last = sql(db, 'SELECT max(id) AS id FROM records')[0].id;
		assert.equal(ckpt.seq, last, 'the exit checkpoint is the last record stored');
		d = await startDaemon(config(stateDir), { ready: true });
		await call(d, loud, 'test_simple_text');
		const next = await eventually(() => sql(db, 'SELECT id, record FROM records WHERE id > ' +
			`${last} AND type = 'decision' AND method = 'tools/call'`)[0], { what: 'a new row' });
		assert.ok(next.id > last);
		const v = verify('--db', db, '--checkpoint', `${ckpt.head}@${ckpt.head_seq}`);
		assert.equal(v.status, 0, v.out);
		const bad = `${ckpt.head.slice(0, 63)}${ckpt.head[63] === '0' ? '1' : '0'}`;
		assert.equal(verify('--db', db, '--checkpoint', `${bad}@${ckpt.head_seq}`).status, 1);
	});

	test('retention by size trims the oldest, moves the anchor, and verify passes', async () => {
		assert.deepEqual(await stopDaemonChecked(d), []);
		const names = () => new Set(sql(db, 'SELECT name FROM targets').map((r) => r.name));
		const namesBefore = names();
		const firstBefore = sql(db, 'SELECT first_id FROM chain')[0].first_id;
		d = await startDaemon(config(stateDir, { max_bytes: 262144 }), { ready: true });
		const note = 'x'.repeat(3000);
		const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${loud.key}` } });
		try {
			for (let i = 0; i < 150; i++)
				await c.client.callTool({ name: 'test_simple_text', arguments: { note, i } });
		} finally {
			await c.close();
		}
		const anchor = await d.waitForRecord((x) => x.type === 'audit_anchor', 10000);
		assert.equal(anchor.reason, 'max_bytes');
		assert.ok(anchor.first_seq > 1 && /^[0-9a-f]{64}$/.test(anchor.prev_hash));
		assert.deepEqual(await stopDaemonChecked(d), []);
		const anchors = d.stdoutRecords.filter((x) => x.type === 'audit_anchor');
		d = null;
		const chain = sql(db, 'SELECT first_id, last_id FROM chain')[0];
		const min = sql(db, 'SELECT min(id) AS id FROM records')[0].id;
		assert.ok(chain.first_id > 1 && min === chain.first_id);
		const used = sql(db, 'SELECT (page_count - freelist_count) * page_size AS b FROM ' +
			'pragma_page_count, pragma_freelist_count, pragma_page_size')[0].b;
		assert.ok(used < 2 * 262144, `used ${used}`);
		const v = verify('--state-dir', stateDir);
		assert.equal(v.status, 0, v.out);
		// The targets went with the last records naming them: the table (q's list of names)
		// holds exactly the stored records' targets.
		const count = (q) => sql(db, q)[0].n;
		assert.equal(count('SELECT count(*) AS n FROM targets WHERE name NOT IN ' +
			'(SELECT target FROM records WHERE target IS NOT NULL)'), 0);
		assert.equal(count('SELECT count(*) AS n FROM targets'),
			count('SELECT count(DISTINCT target) AS n FROM records'));
		// The anchors say what went with the rows: the targets (every name the run had and no
		// longer has: test_simple_text, named by every new row, never goes and comes back) and
		// the summaries of the blocks left empty (those below the first kept id's).
		const namesAfter = names();
		const sum = (f) => anchors.reduce((n, a) => {
			assert.ok(Number.isInteger(a[f]) && a[f] >= 0, JSON.stringify(a));
			return n + a[f];
		}, 0);
		assert.equal(sum('targets_dropped'), new Set([...namesBefore, ...namesAfter]).size -
			namesAfter.size);
		assert.ok(sum('targets_dropped') > 0, 'the earlier tests\' other tools went');
		assert.equal(sum('blocks_dropped'), (chain.first_id >> 10) - (firstBefore >> 10));
		assert.equal(count(`SELECT count(*) AS n FROM blocks WHERE blk < ${chain.first_id >> 10}`), 0);

		// Tampering, each on a copy: verify names the row and says how.
		const copy = join(dir, 'copy.db');
		const tamper = (q) => {
			copyFileSync(db, copy);
			const r = spawnSync('sqlite3', [copy, q], { encoding: 'utf8' });
			assert.equal(r.status, 0, r.stderr);
		};
		// An allowed decision a few rows in: which row that is depends on where the writer's
		// batches (and so the checkpoints and anchors between decisions) fell.
		const mid = sql(db, `SELECT min(id) AS id FROM records WHERE id > ${chain.first_id + 1} ` +
			`AND type = 'decision' AND record LIKE '%"decision":"allow"%'`)[0].id;
		assert.ok(mid < chain.last_id, `an allowed decision between ${chain.first_id} and ${chain.last_id}`);
		tamper(`UPDATE records SET record = replace(record, '"decision":"allow"', ` +
			`'"decision":"deny"') WHERE id = ${mid}`);
		let r = verify('--db', copy);
		assert.equal(r.status, 1, r.out);
		assert.match(r.out, new RegExp(`record ${mid} was changed`));
		tamper(`DELETE FROM records WHERE id = ${mid}`);
		r = verify('--db', copy);
		assert.equal(r.status, 2, r.out);
		assert.match(r.out, new RegExp(`record ${mid} is missing`));
		tamper(`INSERT INTO records (id, ts, type, record, hash) VALUES (${chain.last_id + 1}, 0, ` +
			`'decision', '{"seq":${chain.last_id + 1}}', zeroblob(32))`);
		r = verify('--db', copy);
		assert.equal(r.status, 3, r.out);
		assert.match(r.out, new RegExp(`record ${chain.last_id + 1} is after`));
		assert.equal(verify('--db', join(dir, 'nope.db')).status, 4);
	});

	test('logs.enabled false: stdout only; a bad logs section is refused by name', async () => {
		const off = join(dir, 'off');
		d = await startDaemon(config(off, { enabled: false }), { ready: true });
		await call(d, loud, 'test_simple_text');
		const rec = await d.waitForRecord((x) => x.type === 'decision' && x.method === 'tools/call');
		assert.equal(rec.seq, undefined, 'not stored, so no seq');
		assert.ok(!existsSync(join(off, 'logs.db')));
		assert.deepEqual(await stopDaemonChecked(d), []);
		d = null;

		const bad = join(dir, 'bad.json');
		writeFileSync(bad, JSON.stringify(config(off, { max_age: '7x', queue: 0 })));
		const r = spawnSync(paths.daemon, ['--check-config', bad], { encoding: 'utf8' });
		assert.equal(r.status, 1);
		assert.match(r.stderr, /logs\.max_age/);
		assert.match(r.stderr, /logs\.queue/);
	});
});
