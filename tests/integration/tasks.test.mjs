// MCP 2025-11-25 tasks through the gateway, with the real server-everything (its
// simulate-research-query runs only as a task) and the official SDK client's task API:
// the gateway advertises tasks, a task-augmented tools/call is governed like the call it is,
// tasks/get, tasks/result, tasks/list and tasks/cancel reach the upstream only for the session
// that created the task, and the records say which task was created and how it ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallToolResultSchema, CreateTaskResultSchema, ListTasksResultSchema,
	TaskStatusNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectHttp, eventually, httpUpstream, makeKey, npmStdioUpstream, paths, postJson,
	responseOf, startDaemon, startEverythingHttp, stopDaemonChecked } from './lib.mjs';

const TOOL = 'simulate-research-query';
const keys = { a: makeKey(), b: makeKey(), denied: makeKey() };
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });

async function tasksThrough(upstream) {
	const d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never',
		auth: { required: true },
		keys: [{ id: 'a', hash: keys.a.hash, policy: 'all' },
			{ id: 'b', hash: keys.b.hash, policy: 'all' },
			{ id: 'denied', hash: keys.denied.hash, policy: 'no-research' }],
		policies: { all: { tools: { allow: ['*/*'] } },
			'no-research': { tools: { allow: ['*/*'], deny: [`everything/${TOOL}`] } } },
		upstreams: [upstream] }, { ready: true });
	const a = await connectHttp(d.url, { headers: bearer(keys.a) });
	const a2 = await connectHttp(d.url, { headers: bearer(keys.a) });
	const b = await connectHttp(d.url, { headers: bearer(keys.b) });
	const denied = await connectHttp(d.url, { headers: bearer(keys.denied) });
	// Status notifications: heard by the session that created the task, and by no other.
	const statuses = { a: [], a2: [], b: [] };
	for (const [n, c] of [['a', a], ['a2', a2], ['b', b]])
		c.client.setNotificationHandler(TaskStatusNotificationSchema,
			(m) => statuses[n].push(m.params));
	try {
		// The gateway runs tools as tasks because its upstream does.
		const caps = a.client.getServerCapabilities();
		assert.ok(caps.tasks?.requests?.tools?.call, JSON.stringify(caps));
		assert.ok(caps.tasks.list && caps.tasks.cancel, JSON.stringify(caps.tasks));
		const tool = (await a.client.listTools()).tools.find((t) => t.name === TOOL);
		assert.equal(tool?.execution?.taskSupport, 'required', 'the tool says it runs as a task');

		// Created through the gateway: the CreateTaskResult is the upstream's.
		const created = await a.client.request({ method: 'tools/call', params: { name: TOOL,
			arguments: { topic: 'gateways' }, task: { ttl: 60000 } } }, CreateTaskResultSchema);
		const id = created.task.taskId;
		assert.ok(id && created.task.status === 'working', JSON.stringify(created));
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.method === 'tools/call' &&
			r.target === TOOL && r.key === 'a');
		assert.equal(rec.decision, 'allow');
		assert.equal(rec.reason, `task ${id} created`);

		// The owner's session polls it; another key, and another session of the same key,
		// are told it does not exist (and never reach the upstream with it).
		const got = await a.client.experimental.tasks.getTask(id);
		assert.equal(got.taskId, id);
		assert.ok(['working', 'completed'].includes(got.status), got.status);
		for (const [who, c] of [['key b', b], ['another session of key a', a2]]) {
			await assert.rejects(c.client.experimental.tasks.getTask(id),
				(e) => e.code === -32602 && /not found/i.test(e.message), who);
			await assert.rejects(c.client.experimental.tasks.getTaskResult(id, CallToolResultSchema),
				(e) => e.code === -32602, who);
			await assert.rejects(c.client.experimental.tasks.cancelTask(id),
				(e) => e.code === -32602, who);
			assert.deepEqual((await c.client.experimental.tasks.listTasks()).tasks, [], who);
		}
		assert.deepEqual((await a.client.experimental.tasks.listTasks()).tasks.map((t) => t.taskId),
			[id]);

		// tasks/result waits for the task and returns the tool's result.
		const result = await a.client.experimental.tasks.getTaskResult(id, CallToolResultSchema);
		assert.match(result.content[0].text, /Research Report: gateways/);
		await eventually(() => statuses.a.some((p) => p.taskId === id && p.status === 'completed'),
			{ ms: 5000, what: 'the owner heard notifications/tasks/status completed' });
		assert.ok(statuses.a.some((p) => p.taskId === id && p.status === 'working'),
			JSON.stringify(statuses.a));
		assert.deepEqual([...statuses.a2, ...statuses.b], [], 'no other session hears them');
		const done = await d.waitForRecord((r) => r.type === 'decision' &&
			r.method === 'tasks/result' && r.target === id && r.decision === 'allow');
		assert.equal(done.key, 'a');
		assert.equal(done.server, 'everything');
		assert.equal(done.reason, 'task result: completed');
		assert.ok(done.result_bytes > 500, `result_bytes ${done.result_bytes}`);

		// The SDK's own task flow end to end: created, status, result.
		const kinds = [];
		let final;
		for await (const m of a.client.experimental.tasks.callToolStream({ name: TOOL,
			arguments: { topic: 'streams' } }, CallToolResultSchema, { task: { ttl: 60000 } })) {
			kinds.push(m.type);
			if (m.type === 'result')
				final = m.result;
			if (m.type === 'error')
				throw m.error;
		}
		assert.equal(kinds[0], 'taskCreated');
		assert.ok(kinds.includes('taskStatus'), kinds.join());
		assert.match(final.content[0].text, /Research Report: streams/);

		// Cancel: only the owner, and the upstream says it is cancelled.
		const c2 = await a.client.request({ method: 'tools/call', params: { name: TOOL,
			arguments: { topic: 'cancelled' }, task: { ttl: 60000 } } }, CreateTaskResultSchema);
		const cancelled = await a.client.experimental.tasks.cancelTask(c2.task.taskId);
		assert.equal(cancelled.status, 'cancelled');

		// Governed at creation like the call it is: a key that may not call the tool
		// cannot start it as a task.
		await assert.rejects(denied.client.request({ method: 'tools/call', params: { name: TOOL,
			arguments: { topic: 'x' }, task: { ttl: 60000 } } }, CreateTaskResultSchema),
			(e) => e.code === -32003 && /refused by policy "no-research"/.test(e.message));
		const refused = await d.waitForRecord((r) => r.type === 'decision' && r.key === 'denied' &&
			r.method === 'tools/call');
		assert.equal(refused.decision, 'deny');
	} finally {
		for (const c of [a, a2, b, denied])
			await c.close();
		const problems = await stopDaemonChecked(d);
		assert.deepEqual(problems, []);
	}
}

test('tasks through an HTTP upstream (each session its own upstream session)',
	{ timeout: 90000 }, async () => {
		const up = await startEverythingHttp();
		try {
			await tasksThrough(httpUpstream(up.url, 'everything'));
		} finally {
			await up.stop(5000);
		}
	});

test('tasks through a shared stdio child (one upstream session for every agent)',
	{ timeout: 90000 }, async () => {
		await tasksThrough(npmStdioUpstream('everything', paths.bin.everything, ['stdio']));
	});

test('tasks/list merges the session\'s tasks of every upstream, page by page, with one cursor',
	{ timeout: 90000 }, async () => {
		const d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'always',
			auth: { required: true },
			keys: [{ id: 'a', hash: keys.a.hash, policy: 'all' },
				{ id: 'b', hash: keys.b.hash, policy: 'all' }],
			policies: { all: { tools: { allow: ['*/*'] } } },
			upstreams: [npmStdioUpstream('e1', paths.bin.everything, ['stdio']),
				npmStdioUpstream('e2', paths.bin.everything, ['stdio'])] }, { ready: true });
		const a = await connectHttp(d.url, { headers: bearer(keys.a) });
		const b = await connectHttp(d.url, { headers: bearer(keys.b) });
		const list = (c, cursor) => c.client.request({ method: 'tasks/list',
			params: cursor === undefined ? {} : { cursor } }, ListTasksResultSchema);
		try {
			const ids = {};
			for (const up of ['e2', 'e1']) {
				const created = await a.client.request({ method: 'tools/call', params: {
					name: `${up}__${TOOL}`, arguments: { topic: up }, task: { ttl: 60000 } } },
				CreateTaskResultSchema);
				ids[up] = created.task.taskId;
			}
			// b's own task on e2: never in a's pages
			const theirs = await b.client.request({ method: 'tools/call', params: {
				name: `e2__${TOOL}`, arguments: { topic: 'b' }, task: { ttl: 60000 } } },
			CreateTaskResultSchema);
			// Upstream order, each upstream's pages in turn, then no cursor.
			const seen = [];
			let cursor, pages = 0;
			do {
				const page = await list(a, cursor);
				seen.push(...page.tasks.map((t) => t.taskId));
				cursor = page.nextCursor;
				assert.ok(++pages <= 10, 'the cursor ends');
			} while (cursor);
			assert.deepEqual(seen, [ids.e1, ids.e2]);
			assert.ok(!seen.includes(theirs.task.taskId));
			const first = await list(a);
			assert.deepEqual(first.tasks.map((t) => t.taskId), [ids.e1]);
			assert.match(first.nextCursor, /^e2:/);
			// b's list: its own task only, even with a's cursor
			assert.deepEqual((await list(b, first.nextCursor)).tasks.map((t) => t.taskId),
				[theirs.task.taskId]);
			for (const bad of ['nosuch:', 'nocolon'])
				await assert.rejects(list(a, bad), (e) => e.code === -32602, bad);
		} finally {
			for (const c of [a, b])
				await c.close();
			assert.deepEqual(await stopDaemonChecked(d), []);
		}
	});

test('2026-07-28 tasks extension: a task created by a stateless request is reachable by the ' +
	'same key\'s later requests, never by another key\'s', { timeout: 90000 }, async () => {
	const up = await startEverythingHttp();
	const d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never',
		auth: { required: true },
		keys: [{ id: 'a', hash: keys.a.hash, policy: 'all' },
			{ id: 'b', hash: keys.b.hash, policy: 'all' }],
		policies: { all: { tools: { allow: ['*/*'] } } },
		upstreams: [httpUpstream(up.url, 'everything')] }, { ready: true });
	const V = '2026-07-28';
	const EXT = { extensions: { 'io.modelcontextprotocol/tasks': {} } };
	// Every request reuses id 1, as a stateless agent may. The extension is negotiated per
	// request (clientCapabilities); tasks/* name their task in Mcp-Name.
	const post = async (k, method, params, caps = EXT) => responseOf(await postJson(d.url, {
		jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: {
			'io.modelcontextprotocol/protocolVersion': V,
			'io.modelcontextprotocol/clientCapabilities': caps } } },
	{ ...bearer(k), 'MCP-Protocol-Version': V, 'Mcp-Method': method,
		...(params.name || params.taskId ? { 'Mcp-Name': params.name ?? params.taskId } : {}) }));
	try {
		const discovered = await post(keys.a, 'server/discover', {});
		assert.ok(discovered.result.capabilities.extensions?.['io.modelcontextprotocol/tasks'],
			JSON.stringify(discovered.result.capabilities));
		assert.equal(discovered.result.capabilities.tasks, undefined, 'no v1 tasks slot');
		// A tool that runs only as a task needs the extension.
		const refused = await post(keys.a, 'tools/call', { name: TOOL,
			arguments: { topic: 'no extension' } }, {});
		assert.equal(refused.error?.code, -32021, JSON.stringify(refused));
		assert.ok(refused.error.data.requiredCapabilities.extensions['io.modelcontextprotocol/tasks']);

		const created = await post(keys.a, 'tools/call', { name: TOOL,
			arguments: { topic: 'stateless 1' } });
		assert.equal(created.result?.resultType, 'task', JSON.stringify(created));
		const id = created.result.taskId;
		assert.ok(id && created.result.task === undefined && created.result.ttl === undefined,
			JSON.stringify(created));
		assert.equal(created.id, 1);
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.method === 'tools/call' &&
			r.target === TOOL && r.key === 'a');
		assert.equal(rec.reason, `task ${id} created`);
		const got = await post(keys.a, 'tasks/get', { taskId: id });
		assert.equal(got.result?.taskId, id, JSON.stringify(got));
		assert.equal(got.id, 1);
		// tasks/update is answered by the gateway itself, and on record under the key, naming
		// the task and its upstream; another key's is refused (the task is not its) and on
		// record too.
		const upd = await post(keys.a, 'tasks/update', { taskId: id, inputResponses: {} });
		assert.equal(upd.result?.resultType, 'complete', JSON.stringify(upd));
		const updRec = await d.waitForRecord((r) => r.type === 'decision' &&
			r.method === 'tasks/update' && r.key === 'a');
		assert.deepEqual([updRec.target, updRec.server, updRec.decision, updRec.status, updRec.reason],
			[id, 'everything', 'allow', 'ok', 'task input: 0 answers relayed'], JSON.stringify(updRec));
		const notTheirs = await post(keys.b, 'tasks/update', { taskId: id, inputResponses: {} });
		assert.equal(notTheirs.error?.code, -32602, JSON.stringify(notTheirs));
		const refusedRec = await d.waitForRecord((r) => r.type === 'decision' &&
			r.method === 'tasks/update' && r.key === 'b');
		assert.deepEqual([refusedRec.target, refusedRec.decision, refusedRec.reason,
			refusedRec.error_code], [id, 'deny', 'unknown task', -32602], JSON.stringify(refusedRec));
		// Another key: the task does not exist for it; without the extension, -32021.
		const theirs = await post(keys.b, 'tasks/get', { taskId: id });
		assert.equal(theirs.error?.code, -32602, JSON.stringify(theirs));
		const theirsRec = await d.waitForRecord((r) => r.type === 'decision' &&
			r.method === 'tasks/get' && r.key === 'b');
		assert.deepEqual([theirsRec.target, theirsRec.decision, theirsRec.reason],
			[id, 'deny', 'unknown task'], JSON.stringify(theirsRec));
		assert.equal((await post(keys.b, 'tasks/cancel', { taskId: id })).error?.code, -32602);
		assert.equal((await post(keys.a, 'tasks/get', { taskId: id }, {})).error?.code, -32021);
		// Removed by the extension: the result is inlined in tasks/get, and there is no list.
		for (const m of ['tasks/result', 'tasks/list'])
			assert.equal((await post(keys.a, m, { taskId: id })).error?.code, -32601, m);
		let done;
		await eventually(async () => {
			done = await post(keys.a, 'tasks/get', { taskId: id });
			return done.result?.status === 'completed';
		}, { ms: 30000, what: 'the task completed' });
		assert.match(done.result.result?.content?.[0]?.text ?? '', /Research Report: stateless 1/,
			JSON.stringify(done));
		// The gateway's own tasks/result (the watch) is governed and recorded as the key's.
		const watched = await d.waitForRecord((r) => r.type === 'decision' &&
			r.method === 'tasks/result' && r.target === id);
		assert.equal(watched.key, 'a');
		assert.equal(watched.decision, 'allow');
	} finally {
		assert.deepEqual(await stopDaemonChecked(d), []);
		await up.stop(5000);
	}
});
