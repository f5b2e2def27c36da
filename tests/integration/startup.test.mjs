// Start-up and reload: an agent that connects while the upstreams are still being listed waits
// for the catalogue instead of seeing an empty or partial tool list (which models take at face
// value); an upstream that stays down holds nobody up for longer than timeouts.startup_ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connectHttp, gatewayConfig, httpUpstream, npmStdioUpstream, paths, startDaemon } from './lib.mjs';

test('requests wait for the catalogue, bounded by startup_ms', { timeout: 60000 }, async (t) => {
	const config = gatewayConfig([
		npmStdioUpstream('everything', paths.bin.everything, ['stdio']),
		httpUpstream('http://127.0.0.1:1/mcp', 'down'),   // nothing listens on port 1
	], { prefix: 'auto', timeouts: { startup_ms: 2500 } });
	const d = await startDaemon(config);
	t.after(() => d.stop(3000));

	// Straight after the listening line: not ready yet, and a client is held, not misled.
	const early = await fetch(new URL('/readyz', d.url));
	assert.equal(early.status, 503);
	const started = Date.now();
	const c = await connectHttp(d.url);
	const { tools } = await c.client.listTools();
	const waited = Date.now() - started;
	assert.ok(tools.some((x) => x.name === 'everything__echo'), 'the ready upstream\'s tools are listed');
	assert.ok(waited >= 1500, `held until the start-up wait was over (waited ${waited} ms)`);
	assert.ok(d.stderrLines.some((l) => /upstream down is not ready after 2500 ms/.test(l)));
	assert.equal((await fetch(new URL('/readyz', d.url))).status, 200);
	// Once serving, nothing waits any more.
	const t0 = Date.now();
	await c.client.ping();
	assert.ok(Date.now() - t0 < 1000);
	await c.close();
	for (const line of d.stderrLines)
		assert.doesNotMatch(line, /AddressSanitizer|ThreadSanitizer|runtime error:/);
});

// Each worker thread carries its own name (top -H, ps -L, perf, the proxy benchmark's CPU per
// thread), and the event loop keeps the process's.
test('worker threads are named', { timeout: 30000 }, async (t) => {
	const d = await startDaemon(gatewayConfig([npmStdioUpstream('everything',
		paths.bin.everything, ['stdio'])]));
	t.after(() => d.stop(3000));
	const pid = d.proc.pid;
	const comm = (tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
	const names = readdirSync(`/proc/${pid}/task`).map(comm);
	assert.equal(comm(pid), 'mcpwarden', 'the loop (the first thread) keeps the process\'s name');
	for (const want of ['mcpw-records', 'mcpw-store', 'mcpw-checkpoint', 'mcpw-logstore'])
		assert.ok(names.includes(want), `${want} among ${names.join(', ')}`);
	for (const n of names)
		assert.match(n, /^(mcpwarden|mcpw-[a-z]+)$/, `every thread of ours is named: ${n}`);
});
