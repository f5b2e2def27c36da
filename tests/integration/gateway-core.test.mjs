// The gateway core through the official SDK client: the real daemon in front of real MCP servers
// (server-everything, server-memory, server-filesystem over stdio, plus the fault fixture with
// enough tools to need two pages), prefix mode auto. What comes through the gateway is compared
// with what the same servers answer directly, so "relayed unchanged" means exactly that.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateMessageRequestSchema, ElicitRequestSchema, McpError, ResourceUpdatedNotificationSchema }
	from '@modelcontextprotocol/sdk/types.js';
import { clientPool, connectStdio, faultStdioUpstream, fixturePaths, gatewayConfig, makeTempDir,
	npmStdioUpstream, openRawSession, paths, postJson, samplingPair, startDaemon, stopCleanly,
	waitUpstreamsReady } from './lib.mjs';

const EXTRA_TOOLS = 80;	// with the stock servers' ~40 tools: more than one page of 100

// The client capabilities the gateway's own upstream sessions declare, so the direct reference
// sessions see the same capability-gated tools.
const REF_CAPS = { sampling: {}, elicitation: {} };

describe('gateway core: stdio upstreams, prefix auto', { timeout: 90000 }, () => {
	let d, files, memDir;
	const ref = {};	// direct sessions with the same servers: { everything, memory, files }
	const pool = clientPool();
	const connect = (opts) => pool.connect(d.url, opts);

	before(async () => {
		files = makeTempDir('mcpwarden-files-');
		memDir = makeTempDir('mcpwarden-memory-');
		writeFileSync(join(files, 'hello.txt'), 'hello from the filesystem\n');
		const memEnv = { MEMORY_FILE_PATH: join(memDir, 'memory.jsonl') };
		d = await startDaemon(gatewayConfig([
			npmStdioUpstream('everything', paths.bin.everything, ['stdio']),
			npmStdioUpstream('memory', paths.bin.memory, [], { env: memEnv }),
			npmStdioUpstream('files', paths.bin.filesystem, [files]),
			faultStdioUpstream('fault', { command: [paths.node, fixturePaths.fault, '--tag', 'fault',
				'--extra-tools', String(EXTRA_TOOLS)] }),
		], { prefix: 'auto' }));
		const refMemDir = makeTempDir('mcpwarden-memory-ref-');
		[ref.everything, ref.memory, ref.files, ref.fault] = await Promise.all([
			connectStdio(paths.node, [paths.bin.everything, 'stdio'], { capabilities: REF_CAPS }),
			connectStdio(paths.node, [paths.bin.memory],
				{ env: { ...process.env, MEMORY_FILE_PATH: join(refMemDir, 'memory.jsonl') } }),
			connectStdio(paths.node, [paths.bin.filesystem, files]),
			connectStdio(paths.node, [fixturePaths.fault, '--extra-tools', String(EXTRA_TOOLS)]),
		]);
		await waitUpstreamsReady(d, ['everything', 'memory', 'files', 'fault']);
	});

	after(async () => {
		await pool.closeAll(...Object.values(ref));
		await stopCleanly(d);
	});

	// Every page of tools/list through the SDK (it follows no cursors by itself).
	async function allTools(client) {
		const pages = [];
		let cursor;
		do {
			const r = await client.listTools(cursor ? { cursor } : undefined);
			pages.push(r.tools);
			cursor = r.nextCursor;
		} while (cursor && pages.length < 20);
		return pages;
	}

	// The everything server's list settles after its initialized handler adds the tools that
	// depend on the client's capabilities (announced with list_changed): wait for them.
	async function refTools(name) {
		const { tools } = await ref[name].client.listTools();
		return tools;
	}

	test('initialize: serverInfo, negotiated version, aggregated capabilities, session id', async () => {
		const c = await connect();
		assert.deepEqual(c.client.getServerVersion(), { name: 'mcpwarden', version: c.client.getServerVersion().version });
		assert.match(c.client.getServerVersion().version, /^\d+\.\d+\.\d+/);
		assert.equal(c.transport.protocolVersion, '2025-11-25');
		assert.match(c.sessionId, /^[0-9a-f]{32,}$/, 'a long random session id');
		const caps = c.client.getServerCapabilities();
		assert.equal(caps.tools?.listChanged, true);
		assert.equal(caps.prompts?.listChanged, true);
		assert.equal(caps.resources?.listChanged, true);
		assert.equal(caps.resources?.subscribe, true, 'server-everything supports subscribe');
		assert.ok(caps.logging, 'server-everything logs');
		assert.ok(caps.completions, 'server-everything completes');
		const c2 = await connect();
		assert.notEqual(c2.sessionId, c.sessionId, 'every initialize opens its own session');
	});

	test('initialize: an older supported version is echoed; an unknown one gets the latest', async () => {
		const old = await openRawSession(d.url, { version: '2025-06-18' });
		assert.equal(old.version, '2025-06-18');
		const future = await openRawSession(d.url, { version: '2099-01-01' });
		assert.equal(future.version, '2025-11-25');
		for (const s of [old, future]) {
			const del = await fetch(d.url, { method: 'DELETE', headers: s.headers });
			assert.equal(del.status, 200);
		}
	});

	test('tools/list aggregates every upstream, each tool exactly as its server lists it, prefixed', async () => {
		const c = await connect();
		const pages = await allTools(c.client);
		const tools = pages.flat();
		const names = tools.map((t) => t.name);
		assert.equal(new Set(names).size, names.length, 'no tool listed twice across pages');
		for (const server of ['everything', 'memory', 'files', 'fault']) {
			const direct = await refTools(server);
			const through = tools.filter((t) => t.name.startsWith(`${server}__`));
			assert.equal(through.length, direct.length, `${server}: every tool, no more`);
			for (const t of direct) {
				const g = through.find((x) => x.name === `${server}__${t.name}`);
				assert.ok(g, `${server}__${t.name} listed`);
				assert.deepEqual({ ...g, name: t.name }, t, `${server}__${t.name} relayed unchanged`);
			}
		}
		assert.ok(names.every((n) => /^(everything|memory|files|fault)__/.test(n)),
			'with several upstreams every name carries its server prefix');
	});

	test('tools/list pages: 100 per page, an opaque cursor, the last page without nextCursor', async () => {
		const c = await connect();
		const first = await c.client.listTools();
		assert.equal(first.tools.length, 100);
		assert.equal(typeof first.nextCursor, 'string');
		const second = await c.client.listTools({ cursor: first.nextCursor });
		assert.ok(second.tools.length > 0 && second.tools.length <= 100);
		assert.equal(second.nextCursor, undefined, 'the last page has no nextCursor');
		const overlap = second.tools.filter((t) => first.tools.some((f) => f.name === t.name));
		assert.deepEqual(overlap, [], 'pages do not overlap');
		// A cursor is reusable: the same page again.
		const again = await c.client.listTools({ cursor: first.nextCursor });
		assert.deepEqual(again.tools.map((t) => t.name), second.tools.map((t) => t.name));
	});

	test('tools/list with an invalid cursor is -32602', async () => {
		const c = await connect();
		for (const cursor of ['garbage', 'mcpw:', 'mcpw:12x', 'mcpw:999999999', '', 'mcpw:-1']) {
			await assert.rejects(c.client.listTools({ cursor }), (e) => e.code === -32602,
				`cursor ${JSON.stringify(cursor)}`);
		}
		const s = await openRawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 5, method: 'tools/list', params: { cursor: 42 } });
		assert.equal(r.json?.error?.code, -32602, 'a cursor that is not a string');
	});

	test('tools/call: results relayed unchanged (text, image, annotations, structuredContent)', async () => {
		const c = await connect();
		const calls = [
			['get-sum', { a: 2, b: 3 }],
			['echo', { message: 'through the gateway' }],
			['get-tiny-image', {}],
			['get-annotated-message', { messageType: 'error', includeImage: true }],
			['get-structured-content', { location: 'Chicago' }],
			['get-resource-reference', { resourceType: 'Text', resourceId: 3 }],
		];
		for (const [name, args] of calls) {
			const direct = await ref.everything.client.callTool({ name, arguments: args });
			const through = await c.client.callTool({ name: `everything__${name}`, arguments: args });
			if (name === 'get-resource-reference') {
				// Embedded resources name the upstream's URI; the gateway exposes it prefixed so
				// the client can read it back through the gateway.
				for (const b of through.content)
					if (b.type === 'resource') {
						assert.match(b.resource.uri, /^everything\+demo:/);
						b.resource.uri = b.resource.uri.slice('everything+'.length);
					}
			}
			// Dynamic resources say when they were made (to the second): not part of the relay.
			const timeless = (r) => JSON.parse(JSON.stringify(r).replace(/created at [^"]*/g, 'created at T'));
			assert.deepEqual(timeless(through), timeless(direct),
				`${name}: same result as the server answers directly`);
		}
		const sc = await c.client.callTool({ name: 'everything__get-structured-content',
			arguments: { location: 'New York' } });
		assert.equal(typeof sc.structuredContent.temperature, 'number');
		assert.deepEqual(JSON.parse(sc.content[0].text), sc.structuredContent);
	});

	test('tools/call: a tool error comes back as isError:true, not as a JSON-RPC error', async () => {
		const c = await connect();
		const r = await c.client.callTool({ name: 'files__read_text_file',
			arguments: { path: '/etc/hostname' } });
		assert.equal(r.isError, true, 'a path outside the allowed directory is a tool error');
		assert.match(r.content[0].text, /denied|outside|not allowed/i);
		const ok = await c.client.callTool({ name: 'files__read_text_file',
			arguments: { path: join(files, 'hello.txt') } });
		assert.notEqual(ok.isError, true);
		assert.equal(ok.content[0].text, 'hello from the filesystem\n');
		const m = await c.client.callTool({ name: 'memory__create_entities', arguments: {
			entities: [{ name: 'gateway', entityType: 'component', observations: ['relays calls'] }] } });
		assert.notEqual(m.isError, true);
		const g = await c.client.callTool({ name: 'memory__read_graph', arguments: {} });
		assert.match(g.content[0].text, /relays calls/);
	});

	test('tools/call: an unknown tool is a JSON-RPC -32602 error, not a text result', async () => {
		const c = await connect();
		for (const name of ['no_such_tool', 'get-sum', 'everything__nope', 'nope__get-sum', '']) {
			await assert.rejects(c.client.callTool({ name, arguments: {} }),
				(e) => e.code === -32602 && /Unknown tool/.test(e.message), `tool ${JSON.stringify(name)}`);
		}
	});

	test('tools/call: bad arguments are -32602 naming the path, and never reach the upstream', async () => {
		const c = await connect();
		const before = d.stderrLines.filter((l) => /fault-server\[fault\]: call echo/.test(l)).length;
		await assert.rejects(c.client.callTool({ name: 'fault__echo', arguments: { text: 42 } }),
			(e) => e.code === -32602 && e.data?.path === '$.text' && /fault__echo/.test(e.message));
		await assert.rejects(c.client.callTool({ name: 'fault__echo', arguments: {} }),
			(e) => e.code === -32602 && typeof e.data?.path === 'string' && /text/.test(e.message));
		await assert.rejects(c.client.callTool({ name: 'everything__get-sum', arguments: { a: 'x', b: 1 } }),
			(e) => e.code === -32602 && e.data?.path === '$.a');
		// The good call is the only one the fixture sees.
		const ok = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'fine' } });
		assert.equal(ok.content[0].text, 'fault: fine');
		await d.waitForStderr(/fault-server\[fault\]: call echo \{"text":"fine"\}/);
		const seen = d.stderrLines.filter((l) => /fault-server\[fault\]: call echo/.test(l));
		assert.equal(seen.length - before, 1, `the upstream saw only the valid call: ${seen.join(' | ')}`);
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.target === 'fault__echo' &&
			r.decision === 'deny');
		assert.equal(rec.error_code, -32602);
	});

	test('tools/call: the record holds the arguments\' keys and types, never their values', async () => {
		const c = await connect();
		const args = { text: 42, 'we"ird': { a: { b: { c: { d: 'secret' } } } }, n: null, f: true,
			l: [1, 'two', 3], s: 'hunter2' };
		await assert.rejects(c.client.callTool({ name: 'fault__echo', arguments: args }),
			(e) => e.code === -32602);
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.target === 'fault__echo' &&
			r.args_shape?.f !== undefined);
		assert.deepEqual(rec.args_shape, { text: 'number', 'we"ird': { a: { b: { c: 'object' } } },
			n: 'null', f: 'boolean', l: 'array[3]', s: 'string' });
		assert.ok(!JSON.stringify(rec).includes('hunter2') && !JSON.stringify(rec).includes('secret'));
	});

	// cJSON alone prints doubles with 15 digits when a relative-epsilon round trip passes
	// (0.30000000000000004 became 0.3, 9007199254740991 became 9007199254740990): the
	// gateway prints such numbers with 17 (jsonrpc_print).
	test('tools/call: numbers in arguments and results are relayed bit-exact', async () => {
		const c = await connect();
		for (const value of [123456789, 1e-7, -2.5e300, 4503599627370497, 9007199254740991, 0.30000000000000004]) {
			const r = await c.client.callTool({ name: 'fault__numbers', arguments: { value } });
			assert.equal(r.structuredContent.value, value, `${value}`);
			assert.equal(r.content[0].text, JSON.stringify(value), `${value} as the upstream saw it`);
		}
	});

	test('tools/call: arguments that are not an object are -32602', async () => {
		const s = await openRawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 9, method: 'tools/call',
			params: { name: 'fault__echo', arguments: ['text'] } });
		assert.equal(r.json?.error?.code, -32602);
		const n = await s.post({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: { arguments: {} } });
		assert.equal(n.json?.error?.code, -32602, 'no name');
	});

	test('progress notifications arrive with the client\'s own token, per session', async () => {
		const [a, b] = [await connect(), await connect()];
		const seen = { a: [], b: [] };
		const run = (c, who) => c.client.callTool({ name: 'everything__trigger-long-running-operation',
			arguments: { duration: 1, steps: 4 } }, undefined,
		{ onprogress: (p) => seen[who].push(p), resetTimeoutOnProgress: true });
		// Both sessions use the same progress token values (the SDK's own request ids): the
		// gateway keeps them apart on the shared child.
		const [ra, rb] = await Promise.all([run(a, 'a'), run(b, 'b')]);
		for (const r of [ra, rb])
			assert.match(r.content[0].text, /Long running operation completed/);
		for (const who of ['a', 'b'])
			assert.deepEqual(seen[who].map((p) => [p.progress, p.total]), [[1, 4], [2, 4], [3, 4], [4, 4]],
				`session ${who} hears its own progress, once each`);
	});

	test('resources/list and templates: URIs carry the server prefix', async () => {
		const c = await connect();
		const { resources } = await c.client.listResources();
		const direct = (await ref.everything.client.listResources()).resources;
		for (const r of direct) {
			const g = resources.find((x) => x.uri === `everything+${r.uri}`);
			assert.ok(g, `everything+${r.uri} listed`);
			assert.deepEqual({ ...g, uri: r.uri }, r);
		}
		assert.ok(resources.some((r) => r.uri === 'memory+memory://knowledge-graph'));
		const { resourceTemplates } = await c.client.listResourceTemplates();
		const dt = (await ref.everything.client.listResourceTemplates()).resourceTemplates;
		assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate).sort(),
			dt.map((t) => `everything+${t.uriTemplate}`).sort());
	});

	test('resources/read: a prefixed URI maps back; the answer names the prefixed URI', async () => {
		const c = await connect();
		const uri = 'demo://resource/static/document/features.md';
		const direct = await ref.everything.client.readResource({ uri });
		const through = await c.client.readResource({ uri: `everything+${uri}` });
		assert.equal(through.contents.length, direct.contents.length);
		assert.equal(through.contents[0].uri, `everything+${uri}`);
		assert.deepEqual({ ...through.contents[0], uri }, direct.contents[0]);
		// A template instance.
		const t = await c.client.readResource({ uri: 'everything+demo://resource/dynamic/text/7' });
		assert.equal(t.contents[0].uri, 'everything+demo://resource/dynamic/text/7');
		assert.match(t.contents[0].text, /Resource 7/);
		const mem = await c.client.readResource({ uri: 'memory+memory://knowledge-graph' });
		assert.equal(mem.contents[0].uri, 'memory+memory://knowledge-graph');
		for (const bad of ['nosuch+demo://x', 'demo://resource/static/document/features.md'])
			await assert.rejects(c.client.readResource({ uri: bad }), (e) => e.code === -32602, bad);
	});

	test('resource links and embedded resources (tools, prompts) can be read back through the gateway', async () => {
		const c = await connect();
		const r = await c.client.callTool({ name: 'everything__get-resource-links', arguments: { count: 2 } });
		const links = r.content.filter((b) => b.type === 'resource_link');
		assert.equal(links.length, 2);
		for (const l of links) {
			assert.match(l.uri, /^everything\+demo:\/\//, 'exposed with the server prefix');
			const read = await c.client.readResource({ uri: l.uri });
			assert.equal(read.contents[0].uri, l.uri);
		}
		const p = await c.client.getPrompt({ name: 'everything__resource-prompt',
			arguments: { resourceType: 'Text', resourceId: '2' } });
		const embedded = p.messages.map((m) => m.content).filter((b) => b.type === 'resource');
		assert.equal(embedded.length, 1);
		assert.equal(embedded[0].resource.uri, 'everything+demo://resource/dynamic/text/2');
		const read = await c.client.readResource({ uri: embedded[0].resource.uri });
		assert.match(read.contents[0].text, /Resource 2/);
	});

	test('resources/subscribe and unsubscribe reach the upstream', async () => {
		const c = await connect();
		const uri = 'everything+demo://resource/static/document/architecture.md';
		assert.deepEqual(await c.client.subscribeResource({ uri }), {});
		assert.deepEqual(await c.client.unsubscribeResource({ uri }), {});
		await assert.rejects(c.client.subscribeResource({ uri: 'nosuch+x://y' }), (e) => e.code === -32602);
	});

	test('resources/updated from a shared child reaches the subscribed session only', async () => {
		// a subscribes; b, which did not, is the one whose call makes the server send updates;
		// c, which did not either, has a call in flight on the same child meanwhile.
		const a = await pool.connectWithStream(d.url);
		const b = await pool.connectWithStream(d.url);
		const c = await pool.connectWithStream(d.url);
		await Promise.all([a.streamOpen, b.streamOpen, c.streamOpen]);
		const uri = 'everything+demo://resource/static/document/startup.md';
		const heard = { a: [], b: [], c: [] };
		let gotA;
		const aHeard = new Promise((res) => { gotA = res; });
		a.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
			heard.a.push(n.params.uri);
			gotA();
		});
		b.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => heard.b.push(n.params.uri));
		c.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => heard.c.push(n.params.uri));
		await a.client.subscribeResource({ uri });
		const busy = c.client.callTool({ name: 'everything__trigger-long-running-operation',
			arguments: { duration: 1, steps: 2 } }, undefined, { onprogress: () => {} });
		await new Promise((r) => setTimeout(r, 100));
		const t = await b.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
		assert.match(t.content[0].text, /Started simulated resource updated/);
		try {
			await aHeard;
			await busy;
			assert.equal(heard.a[0], uri, 'the update names the URI the client subscribed to');
			assert.deepEqual(heard.b, [], 'nothing for a session that subscribed to nothing');
			assert.deepEqual(heard.c, [], 'nor for one that just had a call in flight');
		} finally {
			await b.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
			await a.client.unsubscribeResource({ uri });
		}
	});

	test('prompts/list and prompts/get with arguments', async () => {
		const c = await connect();
		const { prompts } = await c.client.listPrompts();
		const direct = (await ref.everything.client.listPrompts()).prompts;
		assert.deepEqual(prompts.filter((p) => p.name.startsWith('everything__'))
			.map((p) => ({ ...p, name: p.name.slice('everything__'.length) })), direct);
		const args = { city: 'Lisbon', state: 'Estremadura' };
		const g = await c.client.getPrompt({ name: 'everything__args-prompt', arguments: args });
		assert.deepEqual(g, await ref.everything.client.getPrompt({ name: 'args-prompt', arguments: args }));
		assert.match(JSON.stringify(g.messages), /Lisbon/);
		await assert.rejects(c.client.getPrompt({ name: 'everything__nope' }), (e) => e.code === -32602);
	});

	test('completion/complete for a prefixed prompt and resource template', async () => {
		const c = await connect();
		const req = { ref: { type: 'ref/prompt', name: 'completable-prompt' },
			argument: { name: 'department', value: 'E' } };
		const direct = await ref.everything.client.complete(req);
		const through = await c.client.complete({ ...req,
			ref: { type: 'ref/prompt', name: 'everything__completable-prompt' } });
		assert.deepEqual(through, direct);
		assert.ok(through.completion.values.includes('Engineering'));
		// A resource template's argument: the prefixed template URI maps back.
		const rreq = { ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' },
			argument: { name: 'resourceId', value: '4' } };
		const rdirect = await ref.everything.client.complete(rreq);
		const rthrough = await c.client.complete({ ...rreq,
			ref: { type: 'ref/resource', uri: `everything+${rreq.ref.uri}` } });
		assert.deepEqual(rthrough, rdirect);
		assert.deepEqual(rthrough.completion.values, ['4']);
		await assert.rejects(c.client.complete({ ...req, ref: { type: 'ref/prompt', name: 'nope' } }),
			(e) => e.code === -32602);
	});

	test('sampling: the upstream\'s request reaches the client, the tool result carries its answer', async () => {
		const c = await connect({ capabilities: { sampling: {} } });
		const asked = [];
		c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
			asked.push(req.params);
			return { role: 'assistant', model: 'gateway-test-model', stopReason: 'endTurn',
				content: { type: 'text', text: 'the answer is 42' } };
		});
		const r = await c.client.callTool({ name: 'everything__trigger-sampling-request',
			arguments: { prompt: 'what is the answer?', maxTokens: 17 } });
		assert.equal(asked.length, 1);
		assert.match(asked[0].messages[0].content.text, /what is the answer\?/);
		assert.equal(asked[0].maxTokens, 17);
		assert.notEqual(r.isError, true);
		assert.match(r.content[0].text, /the answer is 42/);
		assert.match(r.content[0].text, /gateway-test-model/);
	});

	test('elicitation: the upstream\'s request reaches the client, the tool result carries its answer', async () => {
		const c = await connect({ capabilities: { elicitation: {} } });
		let asked;
		c.client.setRequestHandler(ElicitRequestSchema, async (req) => {
			asked = req.params;
			return { action: 'accept', content: { name: 'Ada Lovelace', check: true } };
		});
		const r = await c.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
		assert.ok(asked?.requestedSchema?.properties?.name, 'the form schema came through');
		assert.match(JSON.stringify(r.content), /Ada Lovelace/);
	});

	test('a shared child\'s sampling request never reaches another session\'s client', async () => {
		// stdio carries no relation between a server request and the call it belongs to. With
		// calls of two sessions in flight on the one shared child, the gateway must not guess.
		const { a, b, asked } = await samplingPair(connect, (who) => `${who}-answer`);
		const pa = a.client.callTool({ name: 'fault__sample-later',
			arguments: { prompt: 'private to a', delay_ms: 700 } }).catch((e) => e);
		await d.waitForStderr(/fault-server\[fault\]: call sample-later \{"prompt":"private to a"/);
		const stop = new AbortController();
		const pb = b.client.callTool({ name: 'fault__hang', arguments: {} }, undefined,
			{ signal: stop.signal }).catch((e) => e);
		const ra = await pa;
		stop.abort();
		await pb;
		assert.deepEqual(asked.b, [], 'b\'s client never saw a\'s prompt');
		assert.doesNotMatch(JSON.stringify(ra.content ?? ra.message), /b-answer/);
		// With only a's call in flight the request is a's, and goes through.
		const ok = await a.client.callTool({ name: 'fault__sample-later',
			arguments: { prompt: 'again', delay_ms: 0 } });
		assert.equal(ok.content[0].text, 'sampled: a-answer');
		assert.deepEqual(asked.a, ['again']);
	});

	test('sampling refused by the client (error -1): the refusal reaches the upstream', async () => {
		const c = await connect({ capabilities: { sampling: {} } });
		c.client.setRequestHandler(CreateMessageRequestSchema, async () => {
			throw new McpError(-1, 'User rejected sampling request');
		});
		const r = await c.client.callTool({ name: 'everything__trigger-sampling-request',
			arguments: { prompt: 'may I?' } }).catch((e) => ({ rejected: e }));
		const text = r.rejected ? r.rejected.message : JSON.stringify(r.content);
		assert.ok(r.rejected || r.isError === true, `the tool fails: ${text}`);
		assert.match(text, /User rejected sampling request/, 'with the client\'s own reason');
	});

	test('large results and arguments (2 MB) are relayed intact', async () => {
		const c = await connect();
		const text = 'é0123456789abcdef'.repeat(2 * 1024 * 1024 / 17);
		const r = await c.client.callTool({ name: 'fault__echo', arguments: { text } });
		assert.equal(r.content[0].text.length, `fault: ${text}`.length);
		assert.equal(r.content[0].text, `fault: ${text}`);
	});

	test('sampling for a client that did not declare it is refused to the upstream, not sent', async () => {
		const c = await connect();	// no sampling capability
		let called = false;
		// The SDK refuses to register a handler for an undeclared capability; watch the wire instead.
		c.transport.onmessage = ((orig) => (m) => {
			if (m.method === 'sampling/createMessage')
				called = true;
			orig(m);
		})(c.transport.onmessage);
		const r = await c.client.callTool({ name: 'everything__trigger-sampling-request',
			arguments: { prompt: 'x' } }).catch((e) => ({ rejected: e }));
		assert.equal(called, false, 'no sampling request reached a client that cannot answer it');
		assert.ok(r.rejected || r.isError === true, `the call fails: ${JSON.stringify(r)}`);
	});

	test('logging/setLevel and ping', async () => {
		const c = await connect();
		assert.deepEqual(await c.client.setLoggingLevel('warning'), {});
		assert.deepEqual(await c.client.ping(), {});
	});

	test('each call is recorded once as a JSON decision line on stdout', async () => {
		const c = await connect();
		await c.client.callTool({ name: 'everything__get-sum', arguments: { a: 40, b: 2 } });
		const rec = await d.waitForRecord((r) => r.method === 'tools/call' &&
			r.target === 'everything__get-sum' && r.session === c.sessionId.slice(0, 8));
		assert.equal(rec.decision, 'allow');
		assert.equal(rec.server, 'everything');
		assert.equal(rec.status, 'ok');
		assert.equal(typeof rec.latency_ms, 'number');
		assert.doesNotMatch(JSON.stringify(rec), /"a":40/, 'argument values are not logged');
	});

	// The record of an allowed call is made once its answer has left (docs/architecture.md):
	// still exactly one per call, and its times split as before: the upstream's part ends with
	// the upstream's answer, inside the whole.
	test('a slow call is recorded once, after its answer, with the upstream\'s time inside the whole', async () => {
		const c = await connect();
		const res = await c.client.callTool({ name: 'everything__trigger-long-running-operation',
			arguments: { duration: 0.3, steps: 1 } });
		assert.match(res.content[0].text, /completed/);
		const mine = (r) => r.type === 'decision' && r.method === 'tools/call' &&
			r.target === 'everything__trigger-long-running-operation' &&
			r.session === c.sessionId.slice(0, 8);
		const rec = await d.waitForRecord(mine);
		assert.equal(rec.decision, 'allow');
		assert.equal(rec.status, 'ok');
		assert.ok(rec.upstream_us >= 250000, `upstream_us ${rec.upstream_us}: the tool ran 300 ms`);
		assert.ok(rec.upstream_us <= rec.latency_us,
			`upstream_us ${rec.upstream_us} within latency_us ${rec.latency_us}`);
		assert.ok(rec.result_bytes > 0);
		await c.client.ping();  // a later request: the call's turn is long over
		await new Promise((r) => setTimeout(r, 200));
		assert.equal(d.stdoutRecords.filter(mine).length, 1, 'one record for the call');
		await c.close();
	});

	test('many sessions at once, calls interleaved across upstreams: every answer is the right one', async () => {
		const N = 16;
		const sessions = await Promise.all(Array.from({ length: N }, () => connect()));
		await Promise.all(sessions.map(async (c, i) => {
			for (let k = 0; k < 6; k++) {
				const [sum, echo, prog] = await Promise.all([
					c.client.callTool({ name: 'everything__get-sum', arguments: { a: i, b: k } }),
					c.client.callTool({ name: 'fault__echo', arguments: { text: `s${i}-k${k}` } }),
					k === 0 ? c.client.callTool({ name: 'everything__trigger-long-running-operation',
						arguments: { duration: 0.2, steps: 2 } }, undefined, { onprogress: () => {} }) : null,
				]);
				assert.equal(sum.content[0].text, `The sum of ${i} and ${k} is ${i + k}.`);
				assert.equal(echo.content[0].text, `fault: s${i}-k${k}`);
				if (prog)
					assert.match(prog.content[0].text, /completed/);
			}
		}));
		await Promise.all(sessions.map((c) => c.close()));
	});

	test('raw wire: a request answered with application/json carries the session id', async () => {
		const s = await openRawSession(d.url);
		assert.match(s.sessionId, /^[0-9a-f]{32,}$/);
		const r = await postJson(d.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, s.headers);
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, { jsonrpc: '2.0', id: 1, result: {} });
		assert.equal(r.headers.get('mcp-session-id'), s.sessionId);
	});
});
