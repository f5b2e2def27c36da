// Records are written by the daemon's log thread: a reader of stdout that stops reading
// (a stalled log shipper) must not stall the agents' calls, and no record may be lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { faultStdioUpstream, gatewayConfig, paths, rawSession } from './lib.mjs';

test('a stalled stdout reader does not stall calls; every record arrives', { timeout: 90000 }, async (t) => {
	const dir = mkdtempSync(join(tmpdir(), 'mcpwarden-slowlog-'));
	const configPath = join(dir, 'config.json');
	writeFileSync(configPath, JSON.stringify({ ...gatewayConfig([faultStdioUpstream('fault')]),
		state_dir: join(dir, 'state') }));
	const proc = spawn(paths.daemon, ['-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
	t.after(() => {
		proc.kill('SIGKILL');
		rmSync(dir, { recursive: true, force: true });
	});
	proc.stdout.pause();  // nobody reads the record stream: its 64 KiB pipe fills up
	let stderr = '';
	proc.stderr.on('data', (b) => { stderr += b; });
	const url = await new Promise((res, rej) => {
		const timer = setTimeout(() => rej(new Error(`no listening line:\n${stderr}`)), 20000);
		proc.stderr.on('data', () => {
			const m = /mcpwarden: listening on (http:\/\/\S+)/.exec(stderr);
			if (m && /upstream fault: ready/.test(stderr)) {
				clearTimeout(timer);
				res(m[1]);
			}
		});
	});

	const s = await rawSession(url);
	const CALLS = 600;  // ~300 bytes of record each: several times the pipe's buffer
	const started = Date.now();
	for (let i = 0; i < CALLS; i++) {
		const r = await s.post({ jsonrpc: '2.0', id: i + 10, method: 'tools/call',
			params: { name: 'echo', arguments: { text: `call ${i}` } } });
		assert.equal(r.status, 200, `call ${i} answered`);
	}
	const took = Date.now() - started;

	// Now read: every decision record is there, in order.
	let out = '';
	proc.stdout.on('data', (b) => { out += b; });
	proc.stdout.resume();
	const deadline = Date.now() + 20000;
	let records = [];
	while (Date.now() < deadline) {
		records = out.split('\n').filter(Boolean).map((l) => JSON.parse(l))
			.filter((r) => r.type === 'decision' && r.target === 'echo');
		if (records.length >= CALLS)
			break;
		await new Promise((r) => setTimeout(r, 50));
	}
	assert.equal(records.length, CALLS, `all ${CALLS} records arrive (the calls took ${took} ms)`);
	proc.kill('SIGTERM');
	const code = await new Promise((r) => proc.on('exit', (c) => r(c)));
	assert.equal(code, 0);
	assert.doesNotMatch(stderr, /AddressSanitizer|ThreadSanitizer|runtime error:/);
});
