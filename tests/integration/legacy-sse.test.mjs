// A legacy HTTP+SSE (2024-11-05) server behind the gateway (`transport: "sse"`), used by the
// official SDK client over Streamable HTTP: calls go through; when the server goes away the
// calls fail with a clear error; when it comes back on the same address the gateway
// reconnects (with backoff) and calls work again, to the new process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { connectHttp, eventually, paths, startDaemon, startEverythingHttp, startProcess,
	stopDaemonChecked } from './lib.mjs';

const server = join(paths.top, 'tests', 'fixtures', 'legacy-sse-server.mjs');
const start = (port = 0) => startProcess(paths.node, [server, '--port', String(port)],
	{ ready: /^READY (http:\/\/\S+)/, readyOn: 'stdout', name: 'legacy-sse' });
const text = (r) => r.content?.[0]?.text;

test('a legacy HTTP+SSE upstream: calls, loss, reconnection', { timeout: 90000 }, async () => {
	let up = await start();
	const url = up.match[1];
	const port = new URL(url).port;
	const d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
		upstreams: [{ name: 'legacy', transport: 'sse', url }] }, { ready: true });
	const c = await connectHttp(d.url);
	try {
		const tools = (await c.client.listTools()).tools.map((t) => t.name).sort();
		assert.deepEqual(tools, ['echo', 'slow', 'whoami']);
		assert.equal(text(await c.client.callTool({ name: 'echo', arguments: { message: 'hi' } })),
			'Echo: hi');
		const pid = text(await c.client.callTool({ name: 'whoami', arguments: {} }));
		assert.equal(pid, String(up.proc.pid));

		// A call in flight when the server goes fails at once, saying why.
		const t0 = Date.now();
		const inFlight = c.client.callTool({ name: 'slow', arguments: {} })
			.then((r) => JSON.stringify(r), (e) => String(e));
		await new Promise((res) => setTimeout(res, 300));
		await up.stop(5000);
		const lost = await inFlight;
		assert.match(lost, /legacy/, `the failed call names the upstream: ${lost}`);
		assert.match(lost, /SSE stream ended|down|not available/i, lost);
		assert.doesNotMatch(lost, /slow done/);
		assert.ok(Date.now() - t0 < 4500, 'failed on the loss, not after the tool would have answered');
		await d.waitForStderr(/upstream legacy: .*SSE stream ended/, 10000);
		const failed = await c.client.callTool({ name: 'echo', arguments: { message: 'x' } })
			.then((r) => JSON.stringify(r), (e) => String(e));
		assert.match(failed, /legacy/i, `a call while the upstream is gone names it: ${failed}`);
		assert.doesNotMatch(failed, /Echo: x/);

		up = await start(port);
		const again = await eventually(async () => {
			try {
				return text(await c.client.callTool({ name: 'whoami', arguments: {} }));
			} catch {
				return null;
			}
		}, { ms: 40000, every: 250, what: 'the gateway reconnected to the restarted server' });
		assert.equal(again, String(up.proc.pid), 'the calls reach the new process');
		assert.equal(text(await c.client.callTool({ name: 'echo', arguments: { message: 'back' } })),
			'Echo: back');
	} finally {
		await c.close();
		const problems = await stopDaemonChecked(d);
		await up.stop(5000);
		assert.deepEqual(problems, []);
	}
});

// The real server-everything from npm in its legacy HTTP+SSE mode: the gateway's agents see
// what a direct SSE client sees (tools, a call's result, a resource), over Streamable HTTP.
test('server-everything in its HTTP+SSE mode behind the gateway', { timeout: 90000 }, async () => {
	const up = await startEverythingHttp({ mode: 'sse' });
	let d, c;
	// server-everything offers its sampling and elicitation tools to clients that can answer
	// them, and the gateway's upstream session declares both (it relays them to its agents).
	const caps = { sampling: {}, elicitation: {} };
	const direct = new Client({ name: 'direct', version: '1' }, { capabilities: caps });
	try {
		await direct.connect(new SSEClientTransport(new URL(up.url)));
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
			upstreams: [{ name: 'everything', transport: 'sse', url: up.url }] }, { ready: true });
		c = await connectHttp(d.url, { capabilities: caps });
		const through = (await c.client.listTools()).tools;
		const want = (await direct.listTools()).tools;
		assert.ok(want.some((t) => t.name === 'get-sum'), 'server-everything lists get-sum');
		assert.deepEqual(through.map((t) => t.name).sort(), want.map((t) => t.name).sort());
		for (const [name, args] of [['echo', { message: 'over sse' }], ['get-sum', { a: 2, b: 40 }]])
			assert.deepEqual(await c.client.callTool({ name, arguments: args }),
				await direct.callTool({ name, arguments: args }), name);
		const uri = 'demo://resource/static/document/how-it-works.md';
		assert.deepEqual(await c.client.readResource({ uri }), await direct.readResource({ uri }));
	} finally {
		await c?.close();
		await direct.close().catch(() => {});
		const problems = d ? await stopDaemonChecked(d) : [];
		await up.stop(5000);
		assert.deepEqual(problems, []);
	}
});
