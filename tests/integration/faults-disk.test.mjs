// The state folder's disk fails under the daemon: full (a small tmpfs filled up), its files
// write-protected (chattr +i) or gone read-only (ext4's emergency read-only after an error). What a user relies on: no call with a
// budget runs uncharged: while the store cannot write, such calls are refused with a clear
// JSON-RPC error (-32007, store_unavailable) and /readyz says why; calls answered before the
// daemon noticed are charged all the same (their charges wait in the journal and are committed
// when the disk takes writes again); once there is room again it recovers by itself. A corrupt
// database at start: the daemon exits with an error naming the file and leaves it untouched.
// Needs root (mount); skipped otherwise.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync,
	writeSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, eventually, faultStdioUpstream, makeKey, makeTempDir, removeTempDir,
	startDaemon, startProcess, paths, stopDaemonChecked } from './lib.mjs';

const STORE_UNAVAILABLE = -32007;
const COST = 10000;     // micro-units of one echo ("0.01")
const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root to mount a tmpfs';
const key = makeKey();
const auth = { headers: { Authorization: `Bearer ${key.key}` } };

function configFor(stateDir) {
	return {
		listen: '127.0.0.1:0', state_dir: stateDir,
		upstreams: [faultStdioUpstream('fault')],
		keys: [{ id: 'disk', hash: key.hash, policy: 'all' }],
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { 'fault/echo': '0.01' },
		budgets: { 'key:disk': [{ name: 'disk', limit: '100000', period: 'daily' }] },
		// no checkpoint during the test: the WAL grows with every commit, so a full disk shows
		// at the next one (a checkpointed WAL is rewritten in place and needs no new block)
		store: { fsync_interval_ms: 60000 },
	};
}

function sh(cmd, args) {
	return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A suite whose state folder is on a mount it makes: s.mounted once mounted, s.start() starts
 * the daemon on mnt/state and connects a client; after the suite, the daemon is killed (unless
 * a test stopped it and cleared s.daemon), mnt unmounted and dir removed.
 */
function diskSuite(dir, mnt) {
	const s = { daemon: null, mounted: false };
	after(async () => {
		if (s.daemon)
			await s.daemon.kill();
		if (s.mounted)
			sh('umount', [mnt]);
		removeTempDir(dir);
	});
	s.start = async () => {
		const stateDir = join(mnt, 'state');
		mkdirSync(stateDir);
		s.daemon = await startDaemon(configFor(stateDir), { ready: true });
		return { stateDir, c: await connectHttp(s.daemon.url, auth) };
	};
	return s;
}

/** Spend of key disk in the store, read with the sqlite3 CLI (WAL: beside the daemon). */
function storedSpend(db) {
	return Number(sh('sqlite3', ['-readonly', db,
		"SELECT coalesce(sum(amount), 0) FROM spend WHERE scope = 'key:disk'"]).trim());
}

async function readyz(url) {
	const r = await fetch(new URL('/readyz', url));
	return { status: r.status, text: await r.text() };
}

/** Fill the file system of dir: a file grown until ENOSPC. Returns its path. */
function fill(dir) {
	const path = join(dir, 'filler');
	const fd = openSync(path, 'w');
	const chunk = Buffer.alloc(64 * 1024, 1);
	try {
		for (;;)
			writeSync(fd, chunk);
	} catch (e) {
		if (e.code !== 'ENOSPC')
			throw e;
	} finally {
		closeSync(fd);
	}
	// the last partial blocks too
	try {
		const fd2 = openSync(join(dir, 'filler2'), 'w');
		try {
			for (;;)
				writeSync(fd2, Buffer.alloc(512, 1));
		} catch { /* full */ } finally { closeSync(fd2); }
	} catch { /* no inode or no block left */ }
	return path;
}

describe('state_dir on a full disk', { skip, timeout: 120000 }, () => {
	const mnt = makeTempDir('mcpwarden-diskfull-');
	const s = diskSuite(mnt, mnt);

	test('calls with a budget are refused with -32007 while it is full, none answered is ' +
		'lost, /readyz says why, and it recovers by itself when space returns', async (t) => {
		// 8 MiB: the journal (2 MiB, allocated at start), the database and its WAL
		try {
			sh('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mnt]);
		} catch (e) {
			t.skip(`cannot mount a tmpfs here: ${e.stderr || e.message}`);
			return;
		}
		s.mounted = true;
		const { stateDir, c } = await s.start();
		let acked = 0, refused = null;
		const call = (i) => c.client.callTool({ name: 'echo', arguments: { text: `m${i}` } });
		for (let i = 0; i < 20; i++) {
			await call(i);
			acked += COST;
		}
		assert.equal((await readyz(s.daemon.url)).status, 200);

		const filler = fill(mnt);
		// The first calls after the fill may still be answered (their charges are safe in the
		// journal, allocated at start); as soon as a commit fails, calls with a budget are refused.
		let i = 0;
		for (; i < 2000 && !refused; i++) {
			try {
				await call(1000 + i);
				acked += COST;
			} catch (e) {
				refused = e;
			}
		}
		assert.ok(refused, `no refusal after ${i} calls on a full disk`);
		t.diagnostic(`${i - 1} calls answered on the full disk before the refusal`);
		assert.equal(refused.code, STORE_UNAVAILABLE, refused.message);
		assert.match(refused.message, /disk is full/);
		assert.equal(refused.data.type, 'store_unavailable');
		assert.equal(refused.data.errno, 'ENOSPC');
		assert.equal(refused.data.reason, 'No space left on device');
		// Still refused, not allowed uncharged, on every try while it is full.
		for (let k = 0; k < 5; k++)
			await assert.rejects(call(5000 + k), (e) => e.code === STORE_UNAVAILABLE);
		const rz = await readyz(s.daemon.url);
		assert.equal(rz.status, 503);
		assert.match(rz.text, /store unavailable: No space left on device \(ENOSPC\)/);

		// Space returns: no restart, no signal; the writer's retries find it.
		rmSync(filler);
		rmSync(join(mnt, 'filler2'), { force: true });
		await eventually(async () => (await readyz(s.daemon.url)).status === 200,
			{ ms: 10000, what: '/readyz back to 200' });
		await call(9000);
		acked += COST;
		// Said once when it starts and once when it ends, not at every retry.
		const fails = s.daemon.stderrLines.filter((l) => /writes fail \(No space left on device\)/.test(l));
		assert.ok(fails.length >= 1 && fails.length <= 3, `logged ${fails.length} times:\n${fails.join('\n')}`);
		assert.ok(s.daemon.stderrLines.some((l) => /writes succeed again/.test(l)));
		await eventually(() => storedSpend(join(stateDir, 'mcpwarden.db')) === acked,
			{ ms: 5000, what: `the store holds every answered call (${acked})` });
		await c.close();
		const problems = await stopDaemonChecked(s.daemon);
		s.daemon = null;
		assert.deepEqual(problems, []);
		assert.equal(storedSpend(join(stateDir, 'mcpwarden.db')), acked,
			'after a clean stop: exactly the answered calls');
	});
});

// Linux refuses to remount a file system read-only while a process has files open on it for
// writing (EBUSY), so a running daemon sees a read-only state folder in two ways: its files
// write-protected (chattr +i: EPERM on descriptors already open; undone by chattr -i) and an
// emergency read-only remount after an error (ext4 errors=remount-ro; undone only by unmounting).
describe('state_dir read-only: write-protected files, then an ext4 emergency read-only remount', {
	skip: skip || (existsSync('/sys/fs/ext4') ? false : 'no ext4'), timeout: 120000 }, () => {
	const work = makeTempDir('mcpwarden-diskro-');
	const img = join(work, 'fs.img'), mnt = join(work, 'mnt');
	const s = diskSuite(work, mnt);

	test('calls with a budget are refused with -32007 saying why, /readyz too; write ' +
		'protection lifted, it recovers by itself', async (t) => {
		mkdirSync(mnt);
		try {
			sh('truncate', ['-s', '16M', img]);
			sh('mkfs.ext4', ['-q', '-F', img]);
			sh('mount', ['-o', 'loop,errors=remount-ro', img, mnt]);
		} catch (e) {
			t.skip(`cannot mount an ext4 image here (mkfs.ext4, loop devices): ${e.stderr || e.message}`);
			return;
		}
		s.mounted = true;
		const dev = sh('findmnt', ['-n', '-o', 'SOURCE', mnt]).trim().replace('/dev/', '');
		if (!existsSync(`/sys/fs/ext4/${dev}/trigger_fs_error`)) {
			t.skip('this kernel has no ext4 trigger_fs_error');
			return;
		}
		const { stateDir, c } = await s.start();
		const call = (i) => c.client.callTool({ name: 'echo', arguments: { text: `r${i}` } });
		await call(0);
		// The store cannot write: the call is refused with -32007 saying why, and so is /readyz.
		const refusedFor = async (e, message, errno, ready) => {
			assert.equal(e.code, STORE_UNAVAILABLE, e.message);
			assert.match(e.message, message);
			assert.equal(e.data.errno, errno);
			const rz = await readyz(s.daemon.url);
			assert.equal(rz.status, 503);
			assert.match(rz.text, ready);
		};
		const refusal = () => eventually(async () => {
			try {
				await call(1);
				return null;
			} catch (err) {
				return err;
			}
		}, { ms: 10000, every: 20, what: 'a refusal' });

		// The WAL write-protected: every commit fails with EPERM.
		const wal = join(stateDir, 'mcpwarden.db-wal');
		sh('chattr', ['+i', wal]);
		await refusedFor(await refusal(), /write-protected/, 'EPERM', /Operation not permitted \(EPERM\)/);
		sh('chattr', ['-i', wal]);
		await eventually(async () => (await readyz(s.daemon.url)).status === 200,
			{ ms: 10000, what: '/readyz back to 200 once the files can be written' });
		await call(2);

		// What the kernel does on a metadata error with errors=remount-ro.
		writeFileSync(`/sys/fs/ext4/${dev}/trigger_fs_error`, '1');
		await refusedFor(await refusal(), /read-only/, 'EROFS', /Read-only file system \(EROFS\)/);
		await c.close();
		// It stops cleanly; what it could not commit stays in the journal for the next start.
		const problems = await stopDaemonChecked(s.daemon);
		s.daemon = null;
		assert.deepEqual(problems, []);
	});
});

describe('a corrupt database at start', { timeout: 60000 }, () => {
	const stateDir = makeTempDir('mcpwarden-corrupt-');
	after(() => removeTempDir(stateDir));

	test('the daemon exits with an error naming the file, which is left untouched', async () => {
		const db = join(stateDir, 'mcpwarden.db');
		// A real store first, then its header and first pages overwritten.
		const d = await startDaemon(configFor(stateDir), { ready: true });
		const c = await connectHttp(d.url, auth);
		await c.client.callTool({ name: 'echo', arguments: { text: 'x' } });
		await c.close();
		assert.deepEqual(await stopDaemonChecked(d), []);
		const bytes = readFileSync(db);
		bytes.fill(0x5a, 0, Math.min(bytes.length, 8192));
		writeFileSync(db, bytes);
		const before = readFileSync(db);

		const p = await startProcess(paths.daemon, ['-c', writeConfig(stateDir)],
			{ name: 'mcpwarden-corrupt' });
		const { code } = await p.exited;
		// 'exit' can come before the last stderr line has been read: wait for its end
		await eventually(() => p.proc.stderr.readableEnded,
			{ ms: 5000, what: 'the daemon\'s stderr read' });
		const err = p.stderrLines.join('\n');
		assert.notEqual(code, 0, 'the daemon refuses to start');
		assert.ok(err.includes(db), `the error names ${db}:\n${err}`);
		assert.match(err, /is not a SQLite database or is corrupt; it is left untouched for inspection/);
		assert.ok(!/listening on/.test(err), 'it never served');
		assert.deepEqual(readFileSync(db), before, 'the file is kept as it was, for inspection');
	});
});

/** The config file, inside stateDir (removed with it). */
function writeConfig(stateDir) {
	const path = join(stateDir, 'config.json');
	writeFileSync(path, JSON.stringify(configFor(stateDir)));
	return path;
}
