// Upstream faults through the real daemon: a stdio child that crashes mid-call or is killed, one
// that never answers, an HTTP upstream that is down at start or goes away. What a user relies
// on: the failing call gets a precise JSON-RPC error naming the upstream, within a bounded time;
// everyone else keeps being served; the upstream comes back by itself; the daemon never crashes.
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateMessageRequestSchema, ToolListChangedNotificationSchema }
	from '@modelcontextprotocol/sdk/types.js';
import { connectHttp, connectHttpWithStream, eventually, faultStdioUpstream, freePort,
	gatewayConfig, httpUpstream, npmStdioUpstream, openRawSession, paths, startEverythingHttp,
	startDaemon, stopCleanly, waitUpstreamsReady } from './lib.mjs';

const UPSTREAM_FAILED = -32010;
const UPSTREAM_TIMEOUT = -32011;

// Per test: what to close and stop, in order, and the daemon whose exit is checked.
let cleanup = [];
let daemon = null;

async function startGateway(upstreams, overrides = {}, ready = upstreams.map((u) => u.name)) {
	daemon = await startDaemon(gatewayConfig(upstreams, { prefix: 'always', ...overrides }));
	await waitUpstreamsReady(daemon, ready);
	return daemon;
}

async function connect(url, opts) {
	const c = await connectHttp(url, opts);
	cleanup.push(() => c.close());
	return c;
}

afterEach(async () => {
	for (const fn of cleanup.reverse())
		await fn();
	cleanup = [];
	const d = daemon;
	daemon = null;
	await stopCleanly(d);
});

after(() => { /* lib.mjs kills anything left at exit */ });

const pidOf = async (c) => Number((await c.client.callTool({ name: 'fault__pid', arguments: {} }))
	.content[0].text);

describe('stdio upstream faults', { timeout: 90000 }, () => {
	test('a child that crashes mid-call: the call fails naming it, others are served, it restarts', async () => {
		const d = await startGateway([faultStdioUpstream('fault'),
			npmStdioUpstream('everything', paths.bin.everything, ['stdio'])]);
		const c = await connect(d.url);
		const pid = await pidOf(c);
		// A second call in flight on the same child fails with it.
		const hanging = c.client.callTool({ name: 'fault__hang', arguments: {} }).catch((e) => e);
		await d.waitForStderr(/fault-server\[fault\]: hanging on request/);
		await assert.rejects(c.client.callTool({ name: 'fault__crash', arguments: {} }), (e) => {
			assert.equal(e.code, UPSTREAM_FAILED);
			assert.match(e.message, /\bfault\b/, 'the error names the upstream');
			assert.equal(e.data?.server, 'fault');
			return true;
		});
		const h = await hanging;
		assert.equal(h.code, UPSTREAM_FAILED, 'the other call on the crashed child fails too');
		assert.equal(h.data?.server, 'fault');
		// The other upstream never noticed.
		const sum = await c.client.callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } });
		assert.equal(sum.content[0].text, 'The sum of 1 and 2 is 3.');
		// While it restarts, calls fail fast with the upstream's name; then it serves again.
		await d.waitForStderr(/upstream fault: down/);
		const newPid = await eventually(async () => pidOf(c), { ms: 15000, what: 'fault restarted' });
		assert.notEqual(newPid, pid, 'a new child');
		const echo = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'back' } });
		assert.equal(echo.content[0].text, 'fault: back');
	});

	test('a child killed from outside is restarted; calls meanwhile fail naming it', async () => {
		const d = await startGateway([faultStdioUpstream('fault')]);
		const c = await connect(d.url);
		const pid = await pidOf(c);
		process.kill(pid, 'SIGKILL');
		await d.waitForStderr(/upstream fault: down/);
		// Depending on timing a call sees the restart in progress or the new child: never a hang,
		// never a crash, and every error names the upstream.
		const r = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'x' } }).catch((e) => e);
		if (r instanceof Error) {
			assert.equal(r.code, UPSTREAM_FAILED);
			assert.match(r.message, /\bfault\b/);
		}
		const newPid = await eventually(async () => pidOf(c), { ms: 15000, what: 'fault restarted' });
		assert.notEqual(newPid, pid);
		// Restarted children are listed again: the catalogue still has the tools.
		const { tools } = await c.client.listTools();
		assert.ok(tools.some((t) => t.name === 'fault__echo'));
	});

	test('a child that never answers: -32011 naming it after request_timeout_ms, the upstream is told, others served', async () => {
		const TIMEOUT = 1500;
		const d = await startGateway([faultStdioUpstream('fault', { request_timeout_ms: TIMEOUT }),
			npmStdioUpstream('everything', paths.bin.everything, ['stdio'])]);
		const [a, b] = [await connect(d.url), await connect(d.url)];
		const started = Date.now();
		let settled = false;
		const slow = a.client.callTool({ name: 'fault__hang', arguments: {} }, undefined,
			{ timeout: 60000 }).catch((e) => e).finally(() => { settled = true; });
		await d.waitForStderr(/fault-server\[fault\]: hanging on request (\S+)/);
		// Meanwhile another session is served, by the other upstream and by the same child.
		const sum = await b.client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 2 } });
		assert.equal(sum.content[0].text, 'The sum of 2 and 2 is 4.');
		const echo = await b.client.callTool({ name: 'fault__echo', arguments: { text: 'meanwhile' } });
		assert.equal(echo.content[0].text, 'fault: meanwhile');
		assert.equal(settled, false, 'the hanging call is still waiting while others are served');
		const e = await slow;
		const elapsed = Date.now() - started;
		assert.equal(e.code, UPSTREAM_TIMEOUT, `got ${e.message}`);
		assert.match(e.message, /\bfault\b/);
		assert.equal(e.data?.server, 'fault');
		assert.equal(e.data?.timeout_ms, TIMEOUT);
		assert.ok(elapsed >= TIMEOUT - 100, `not before the timeout (${elapsed} ms)`);
		assert.ok(elapsed < TIMEOUT + 10000, `bounded (${elapsed} ms)`);
		// The gateway sent notifications/cancelled: the fixture's handler saw its abort signal.
		await d.waitForStderr(/fault-server\[fault\]: cancelled \S+/);
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.target === 'fault__hang');
		assert.equal(rec.error_code, UPSTREAM_TIMEOUT);
		// The child itself is fine.
		const again = await a.client.callTool({ name: 'fault__echo', arguments: { text: 'after' } });
		assert.equal(again.content[0].text, 'fault: after');
	});

	test('a child writing junk on its protocol stream: dropped with a warning, the call answered', async () => {
		const d = await startGateway([faultStdioUpstream('fault')]);
		const c = await connect(d.url);
		for (let i = 0; i < 3; i++) {
			const r = await c.client.callTool({ name: 'fault__garbage', arguments: {} });
			assert.deepEqual(r.content, [{ type: 'text', text: 'survived' }]);
		}
		await d.waitForStderr(/upstream fault: dropping a line that is not JSON/);
		const echo = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'fine' } });
		assert.equal(echo.content[0].text, 'fault: fine');
	});

	test('the client cancelling a call: the upstream is told, the session goes on', async () => {
		const d = await startGateway([faultStdioUpstream('fault')]);
		const c = await connect(d.url);
		const ac = new AbortController();
		const p = c.client.callTool({ name: 'fault__hang', arguments: {} }, undefined,
			{ signal: ac.signal }).catch((e) => e);
		await d.waitForStderr(/fault-server\[fault\]: hanging on request/);
		ac.abort('changed my mind');
		const e = await p;
		assert.ok(e instanceof Error);
		await d.waitForStderr(/fault-server\[fault\]: cancelled \S+/);
		const echo = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'next' } });
		assert.equal(echo.content[0].text, 'fault: next');
	});
});

describe('clients that leave mid-relay', { timeout: 60000 }, () => {
	test('a client that ends its session while an upstream waits for its sampling answer', async () => {
		const d = await startGateway([faultStdioUpstream('fault')]);
		const a = await connect(d.url, { capabilities: { sampling: {} } });
		let asked;
		const askedP = new Promise((r) => { asked = r; });
		a.client.setRequestHandler(CreateMessageRequestSchema, () => {
			asked();
			return new Promise(() => {});	// never answers
		});
		const pending = a.client.callTool({ name: 'fault__sample-later',
			arguments: { prompt: 'anyone?', delay_ms: 0 } }).catch((e) => e);
		await askedP;
		await a.transport.terminateSession();	// DELETE while the relay is outstanding
		const e = await pending;
		assert.equal(e.code, -32800, `the call ends with the session: ${e.message}`);
		// The shared child is not stuck: another client samples through it.
		const b = await connect(d.url, { capabilities: { sampling: {} } });
		b.client.setRequestHandler(CreateMessageRequestSchema, async () =>
			({ role: 'assistant', model: 'm', content: { type: 'text', text: 'here' } }));
		const r = await b.client.callTool({ name: 'fault__sample-later', arguments: { prompt: 'b?' } });
		assert.equal(r.content[0].text, 'sampled: here');
		// What the daemon held for the relay is released: afterEach checks for leaks at exit.
	});
});

describe('sessions ended with calls in flight', { timeout: 60000 }, () => {
	test('DELETE while calls run on the session\'s own upstream sessions (stdio per_session, HTTP, fan-out)', async () => {
		const srv = await startEverythingHttp();
		cleanup.push(() => srv.stop());
		const d = await startGateway([faultStdioUpstream('fault', { per_session: true }),
			httpUpstream(srv.url, 'remote')]);
		for (const call of [{ name: 'fault__hang', arguments: {} },
			{ name: 'remote__trigger-long-running-operation', arguments: { duration: 3, steps: 3 } }]) {
			const s = await openRawSession(d.url);
			const pending = s.post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: call });
			if (call.name === 'fault__hang')
				await d.waitForStderr(/fault-server\[fault\]: hanging on request/);
			else
				await new Promise((r) => setTimeout(r, 500));
			const del = await fetch(d.url, { method: 'DELETE', headers: s.headers });
			assert.equal(del.status, 200);
			const r = await pending;
			assert.equal(r.json?.error?.code, -32800, `${call.name}: answered, the session ended: ${r.text}`);
			// Every call is on record, one the session's end cut short too.
			const rec = await d.waitForRecord((x) => x.type === 'decision' &&
				x.method === 'tools/call' && x.reason === 'session ended' &&
				x.target === call.name);
			assert.equal(rec.decision, 'allow');
		}
		// A logging/setLevel fan-out waiting on a session's own child.
		const s = await openRawSession(d.url);
		const pending = s.post({ jsonrpc: '2.0', id: 2, method: 'logging/setLevel',
			params: { level: 'emergency' } });
		await d.waitForStderr(/fault-server\[fault\]: holding logging\/setLevel/);
		assert.equal((await fetch(d.url, { method: 'DELETE', headers: s.headers })).status, 200);
		assert.equal((await pending).json?.error?.code, -32800);
		await d.waitForRecord((x) => x.type === 'decision' && x.method === 'logging/setLevel' &&
			x.reason === 'session ended');
		// Still serving (and afterEach checks the exit for sanitizer reports).
		const c = await connect(d.url);
		const sum = await c.client.callTool({ name: 'remote__get-sum', arguments: { a: 2, b: 5 } });
		assert.equal(sum.content[0].text, 'The sum of 2 and 5 is 7.');
	});
});

describe('per-session stdio children (per_session: true)', { timeout: 60000 }, () => {
	test('each session its own child: exact sampling, a crash costs only that session, DELETE ends it', async () => {
		const d = await startGateway([faultStdioUpstream('fault', { per_session: true })]);
		const [a, b] = [await connect(d.url, { capabilities: { sampling: {} } }),
			await connect(d.url, { capabilities: { sampling: {} } })];
		for (const [who, c] of [['a', a], ['b', b]])
			c.client.setRequestHandler(CreateMessageRequestSchema, async () =>
				({ role: 'assistant', model: 'm', content: { type: 'text', text: `from ${who}` } }));
		const [pa, pb] = [await pidOf(a), await pidOf(b)];
		assert.notEqual(pa, pb, 'two sessions, two children');
		assert.equal(await pidOf(a), pa, 'a session keeps its child');
		// Both in flight at once: each child asks its own client.
		const [ra, rb] = await Promise.all([
			a.client.callTool({ name: 'fault__sample-later', arguments: { prompt: 'x', delay_ms: 300 } }),
			b.client.callTool({ name: 'fault__sample-later', arguments: { prompt: 'y', delay_ms: 100 } })]);
		assert.equal(ra.content[0].text, 'sampled: from a');
		assert.equal(rb.content[0].text, 'sampled: from b');
		await assert.rejects(a.client.callTool({ name: 'fault__crash', arguments: {} }),
			(e) => e.code === UPSTREAM_FAILED && e.data?.server === 'fault');
		assert.equal(await pidOf(b), pb, 'b\'s child is untouched');
		const pa2 = await pidOf(a);
		assert.ok(pa2 !== pa && pa2 !== pb, 'a gets a fresh child on its next call');
		await b.close();
		await eventually(() => { try { process.kill(pb, 0); return false; } catch { return true; } },
			{ ms: 5000, what: 'b\'s child ended with its session' });
	});
});

describe('HTTP upstream faults', { timeout: 120000 }, () => {
	test('an HTTP upstream down at start: the others serve, it joins when it comes up', async () => {
		const port = await freePort();
		const url = `http://127.0.0.1:${port}/mcp`;
		// Requests wait for the whole catalogue at most startup_ms; then the others serve.
		const d = await startGateway([faultStdioUpstream('fault'), httpUpstream(url, 'remote')],
			{ timeouts: { startup_ms: 1500 } }, ['fault']);
		await d.waitForStderr(/upstream remote: .*(refused|connect|down|retry)/i);
		const c = await connectHttpWithStream(d.url);
		cleanup.push(() => c.close());
		await c.streamOpen;
		let changed = 0;
		c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
		const before = (await c.client.listTools()).tools.map((t) => t.name);
		assert.ok(before.includes('fault__echo'));
		assert.ok(!before.some((n) => n.startsWith('remote__')), 'nothing from the absent upstream');
		await assert.rejects(c.client.callTool({ name: 'remote__get-sum', arguments: { a: 1, b: 1 } }),
			(e) => e.code === -32602);
		const echo = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'alone' } });
		assert.equal(echo.content[0].text, 'fault: alone');
		// Now it comes up on its port; the gateway's retry (with backoff) finds it.
		const srv = await startEverythingHttp({ port });
		cleanup.push(() => srv.stop());
		await d.waitForStderr(/upstream remote: ready \(/, 40000);
		await eventually(() => changed > 0, { ms: 5000, what: 'tools/list_changed on the GET stream' });
		const after = (await c.client.listTools()).tools.map((t) => t.name);
		assert.ok(after.includes('remote__get-sum'));
		const sum = await c.client.callTool({ name: 'remote__get-sum', arguments: { a: 20, b: 22 } });
		assert.equal(sum.content[0].text, 'The sum of 20 and 22 is 42.');
	});

	test('an HTTP upstream that goes away: calls fail naming it, others served; it comes back', async () => {
		let srv = await startEverythingHttp();
		const port = srv.port;
		cleanup.push(() => srv.stop());
		const d = await startGateway([faultStdioUpstream('fault'), httpUpstream(srv.url, 'remote',
			{ connect_timeout_ms: 1000, request_timeout_ms: 5000 })]);
		const c = await connect(d.url);
		const ok = await c.client.callTool({ name: 'remote__get-sum', arguments: { a: 1, b: 1 } });
		assert.equal(ok.content[0].text, 'The sum of 1 and 1 is 2.');
		await srv.stop();
		const e = await c.client.callTool({ name: 'remote__get-sum', arguments: { a: 1, b: 1 } })
			.catch((x) => x);
		assert.ok(e instanceof Error, `the call fails: ${JSON.stringify(e)}`);
		assert.ok([UPSTREAM_FAILED, UPSTREAM_TIMEOUT].includes(e.code), `code ${e.code}: ${e.message}`);
		assert.match(e.message, /\bremote\b/, 'the error names the upstream');
		const echo = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'still here' } });
		assert.equal(echo.content[0].text, 'fault: still here');
		// It comes back on the same port (a fresh server: its sessions are gone).
		srv = await startEverythingHttp({ port });
		const back = await eventually(async () => {
			const r = await c.client.callTool({ name: 'remote__get-sum', arguments: { a: 3, b: 4 } });
			return r.content[0].text;
		}, { ms: 40000, every: 500, what: 'remote serves again' });
		assert.equal(back, 'The sum of 3 and 4 is 7.');
	});
});
