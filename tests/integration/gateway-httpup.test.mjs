// The gateway in front of a Streamable HTTP upstream: server-everything in streamableHttp mode
// (pinned to loopback by tests/fixtures/loopback-listen.mjs), one upstream, prefix never. Each
// downstream session gets its own upstream session, so server-to-client traffic (sampling,
// elicitation, log messages) goes exactly to the client it belongs to.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ElicitRequestSchema, ListRootsRequestSchema,
	LoggingMessageNotificationSchema }
	from '@modelcontextprotocol/sdk/types.js';
import { clientPool, connectHttp, eventually, gatewayConfig, httpUpstream, samplingPair,
	startEverythingHttp, suiteDaemon } from './lib.mjs';

describe('gateway in front of server-everything over Streamable HTTP (prefix never)', { timeout: 90000 }, () => {
	let srv, ref;
	const pool = clientPool();
	after(() => pool.closeAll(ref));
	const d = suiteDaemon(async () => {
		srv = await startEverythingHttp();
		return gatewayConfig([httpUpstream(srv.url, 'everything')], { prefix: 'never' });
	}, { ready: true, checked: true });
	after(() => srv?.stop());
	const connect = (opts) => pool.connect(d.url, opts);

	before(async () => {
		ref = await connectHttp(srv.url, { capabilities: { sampling: {}, elicitation: {} } });
	});

	test('one upstream with prefix never: tools, resources and prompts keep their names', async () => {
		const c = await connect({ capabilities: { sampling: {}, elicitation: {} } });
		const through = (await c.client.listTools()).tools;
		const direct = (await ref.client.listTools()).tools;
		assert.deepEqual(through.map((t) => t.name).sort(), direct.map((t) => t.name).sort());
		for (const t of direct)
			assert.deepEqual(through.find((x) => x.name === t.name), t, `${t.name} unchanged`);
		const res = (await c.client.listResources()).resources.map((r) => r.uri);
		assert.deepEqual(res.sort(), (await ref.client.listResources()).resources.map((r) => r.uri).sort());
		const prompts = (await c.client.listPrompts()).prompts.map((p) => p.name);
		assert.ok(prompts.includes('args-prompt'));
	});

	test('calls, resources, templates and prompts relayed unchanged', async () => {
		const c = await connect();
		for (const [name, args] of [['get-sum', { a: 5, b: 8 }], ['get-tiny-image', {}],
			['get-structured-content', { location: 'Los Angeles' }]]) {
			assert.deepEqual(await c.client.callTool({ name, arguments: args }),
				await ref.client.callTool({ name, arguments: args }), name);
		}
		const uri = 'demo://resource/static/document/how-it-works.md';
		assert.deepEqual(await c.client.readResource({ uri }), await ref.client.readResource({ uri }));
		const t = await c.client.readResource({ uri: 'demo://resource/dynamic/blob/4' });
		assert.equal(t.contents[0].uri, 'demo://resource/dynamic/blob/4');
		assert.ok(t.contents[0].blob);
		const args = { city: 'Oslo' };
		assert.deepEqual(await c.client.getPrompt({ name: 'args-prompt', arguments: args }),
			await ref.client.getPrompt({ name: 'args-prompt', arguments: args }));
	});

	test('progress over an HTTP upstream arrives with the client\'s token', async () => {
		const c = await connect();
		const seen = [];
		const r = await c.client.callTool({ name: 'trigger-long-running-operation',
			arguments: { duration: 1, steps: 3 } }, undefined, { onprogress: (p) => seen.push(p.progress) });
		assert.match(r.content[0].text, /completed/);
		assert.deepEqual(seen, [1, 2, 3]);
	});

	test('sampling: two sessions at once, each answered by its own client', async () => {
		// Each answers after 200 ms: both requests are in flight together.
		const { a, b, asked } = await samplingPair(connect, (who) => `answer-${who}`, 200);
		const [ra, rb] = await Promise.all([
			a.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'from a' } }),
			b.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'from b' } }),
		]);
		assert.match(ra.content[0].text, /answer-a/);
		assert.doesNotMatch(ra.content[0].text, /answer-b/);
		assert.match(rb.content[0].text, /answer-b/);
		assert.equal(asked.a.length, 1);
		assert.match(asked.a[0], /from a/);
		assert.equal(asked.b.length, 1);
		assert.match(asked.b[0], /from b/);
	});

	test('elicitation over an HTTP upstream', async () => {
		const c = await connect({ capabilities: { elicitation: {} } });
		c.client.setRequestHandler(ElicitRequestSchema, async () =>
			({ action: 'decline' }));
		const r = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
		assert.match(JSON.stringify(r.content), /decline/i);
	});

	test('log messages of an upstream session reach only their own client', async () => {
		const a = await pool.connectWithStream(d.url);
		const b = await pool.connectWithStream(d.url);
		await Promise.all([a.streamOpen, b.streamOpen]);
		const logs = { a: [], b: [] };
		a.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.a.push(String(n.params.data)));
		b.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.b.push(String(n.params.data)));
		const ta = await a.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
		const tb = await b.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
		// Each answer names the upstream session it ran in; the messages carry the same id.
		const sidA = /session ([0-9a-f-]{36})/.exec(ta.content[0].text)?.[1];
		const sidB = /session ([0-9a-f-]{36})/.exec(tb.content[0].text)?.[1];
		assert.ok(sidA && sidB && sidA !== sidB, `two upstream sessions: ${ta.content[0].text} / ${tb.content[0].text}`);
		try {
			await eventually(() => logs.a.length > 0 && logs.b.length > 0,
				{ ms: 12000, what: 'a log message for each client' });
			assert.ok(logs.a.every((m) => m.includes(sidA) && !m.includes(sidB)), logs.a.join(' | '));
			assert.ok(logs.b.every((m) => m.includes(sidB) && !m.includes(sidA)), logs.b.join(' | '));
		} finally {
			await a.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
			await b.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
		}
	});

	test('roots: the upstream asks outside any call (GET stream), the client\'s answer gets back', async () => {
		const c = await pool.connectWithStream(d.url, { capabilities: { roots: { listChanged: true } } });
		await c.streamOpen;
		let roots = [{ uri: 'file:///srv/one', name: 'one' }, { uri: 'file:///srv/two', name: 'two' }];
		let asked = 0;
		c.client.setRequestHandler(ListRootsRequestSchema, async () => { asked++; return { roots }; });
		const logs = [];
		c.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(String(n.params.data)));
		// The upstream session opens on first use; server-everything asks for roots just after.
		await c.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
		await eventually(() => logs.some((m) => /Roots updated: 2 root\(s\)/.test(m)),
			{ ms: 8000, what: 'the upstream received the client\'s two roots' });
		assert.equal(asked, 1);
		// The client's roots change: the notification reaches the upstream, which asks again.
		roots = [{ uri: 'file:///srv/three', name: 'three' }];
		await c.client.sendRootsListChanged();
		await eventually(() => logs.some((m) => /Roots updated: 1 root\(s\)/.test(m)),
			{ ms: 8000, what: 'the upstream asked again after roots/list_changed' });
		assert.equal(asked, 2);
	});

	test('ending the downstream session ends its upstream session (DELETE)', async () => {
		const c = await connectHttp(d.url);
		await c.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });	// opens it
		const opened = srv.stdoutLines.filter((l) => /Session initialized with ID/.test(l)).length;
		const ended = () => srv.stdoutLines.filter((l) => /Received session termination request/.test(l)).length;
		const before = ended();
		await c.close();
		await eventually(() => ended() > before, { ms: 5000, what: 'the upstream saw a DELETE' });
		assert.ok(opened >= 1);
	});
});
