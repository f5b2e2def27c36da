// The conformance fixture on its own, through lib.mjs: what the gateway suites rely on it for.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { CallToolResultSchema, CreateMessageRequestSchema, CreateTaskResultSchema,
	ElicitRequestSchema, GetTaskResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectHttp, connectStdio, fixtureStdioUpstream, gatewayConfig, paths, postJson,
	startDaemon, startFixture } from './lib.mjs';

const EXPECTED_TOOLS = [
	'json_schema_2020_12_tool', 'test_audio_content', 'test_custom_headers', 'test_elicitation',
	'test_elicitation_sep1034_defaults', 'test_elicitation_sep1330_enums', 'test_embedded_resource',
	'test_error_handling', 'test_image_content',
	// the 2026-07-28 input_required scenarios' tools, as a 2025-11-25 server writes them
	'test_input_required_result_capabilities', 'test_input_required_result_elicitation',
	'test_input_required_result_list_roots', 'test_input_required_result_multi_round',
	'test_input_required_result_multiple_inputs', 'test_input_required_result_request_state',
	'test_input_required_result_sampling', 'test_input_required_result_tampered_state',
	// the 2026-07-28 server-stateless scenario's diagnostic tools
	'test_logging_tool', 'test_missing_capability',
	'test_multiple_content_types', 'test_reconnection',
	'test_sampling', 'test_simple_text', 'test_streaming_elicitation', 'test_tool_with_logging',
	'test_tool_with_progress',
	// the 2026-07-28 tasks extension scenarios' tools, as 2025-11-25 task tools
	// (conformance-tasks.mjs)
	'confirm_delete', 'failing_job', 'greet', 'multi_input', 'protocol_error_job', 'slow_compute',
	'test_tool_with_task',
].sort();

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25',
	capabilities: {}, clientInfo: { name: 'probe', version: '1' } } };

describe('conformance fixture over HTTP', () => {
	let fx;
	before(async () => { fx = await startFixture(); });
	after(async () => { await fx?.stop(); });

	test('listens on loopback only and prints its URL', () => {
		assert.match(fx.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
	});

	test('lists every tool the conformance scenarios call', async () => {
		const c = await connectHttp(fx.url);
		try {
			const { tools } = await c.client.listTools();
			assert.deepEqual(tools.map((t) => t.name).sort(), EXPECTED_TOOLS);
			const js = tools.find((t) => t.name === 'json_schema_2020_12_tool');
			assert.equal(js.inputSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
			assert.equal(js.inputSchema.additionalProperties, false);
			assert.equal(js.inputSchema.$defs.address.$anchor, 'addressDef');
			assert.ok(Array.isArray(js.inputSchema.allOf[0].anyOf));
			assert.ok(js.inputSchema.if && js.inputSchema.then && js.inputSchema.else);
			const ch = tools.find((t) => t.name === 'test_custom_headers');
			assert.equal(ch.inputSchema.properties.region['x-mcp-header'], 'Region');
		} finally {
			await c.close();
		}
	});

	test('runs the tasks scenarios\' tools as 2025-11-25 tasks', async () => {
		const c = await connectHttp(fx.url, { capabilities: { elicitation: {} } });
		const asked = [];
		c.client.setRequestHandler(ElicitRequestSchema, async (r) => {
			asked.push(r.params.message);
			return { action: 'accept', content: { name: 'Ada', confirm: true } };
		});
		const create = (name, args) => c.client.request({ method: 'tools/call',
			params: { name, arguments: args, task: { ttl: 60000 } } }, CreateTaskResultSchema);
		const result = (id) => c.client.request({ method: 'tasks/result', params: { taskId: id } },
			CallToolResultSchema);
		try {
			const caps = c.client.getServerCapabilities();
			assert.ok(caps.tasks?.requests?.tools?.call && caps.tasks.cancel, JSON.stringify(caps));
			const tools = (await c.client.listTools()).tools;
			assert.equal(tools.find((t) => t.name === 'failing_job').execution.taskSupport, 'required');
			assert.equal(tools.find((t) => t.name === 'slow_compute').execution.taskSupport, 'optional');
			assert.equal(tools.find((t) => t.name === 'greet').execution, undefined);
			// A task: created at once, its result through tasks/result.
			const slow = await create('slow_compute', { seconds: 0.2, label: 'x' });
			assert.equal(slow.task.status, 'working');
			assert.equal(slow.task.pollInterval, 200);
			assert.match((await result(slow.task.taskId)).content[0].text, /computed x/);
			// A tool error is a completed task with isError; a protocol error is tasks/result's.
			const failing = await create('failing_job', {});
			assert.equal((await result(failing.task.taskId)).isError, true);
			const broken = await create('protocol_error_job', {});
			await assert.rejects(result(broken.task.taskId), (e) => e.code === -32603);
			assert.equal((await c.client.request({ method: 'tasks/get', params: {
				taskId: broken.task.taskId } }, GetTaskResultSchema)).status, 'failed');
			// Input during the task: elicitations delivered on the tasks/result stream.
			const confirm = await create('confirm_delete', { filename: 'f.txt' });
			assert.equal((await result(confirm.task.taskId)).content[0].text, 'deleted f.txt');
			assert.deepEqual(asked, ['Delete f.txt?']);
			// Input before the task: asked during the call, then the task runs with it.
			const named = await create('test_tool_with_task', {});
			assert.match((await result(named.task.taskId)).content[0].text, /Hello, Ada!/);
			// A task-only tool is refused as a plain call; an optional one runs as one.
			await assert.rejects(c.client.callTool({ name: 'failing_job', arguments: {} }));
			assert.match((await c.client.callTool({ name: 'slow_compute',
				arguments: { seconds: 0 } })).content[0].text, /computed/);
		} finally {
			await c.close();
		}
	});

	test('test_simple_text returns the documented text', async () => {
		const c = await connectHttp(fx.url, { headers: { 'X-Api-Key': 'ignored-by-fixture' } });
		try {
			const r = await c.client.callTool({ name: 'test_simple_text', arguments: {} });
			assert.deepEqual(r.content,
				[{ type: 'text', text: 'This is a simple text response for testing.' }]);
			assert.notEqual(r.isError, true);
		} finally {
			await c.close();
		}
	});

	test('an unknown tool is a JSON-RPC -32602 error, not a text result', async () => {
		const c = await connectHttp(fx.url);
		try {
			await assert.rejects(c.client.callTool({ name: 'no_such_tool', arguments: {} }),
				(e) => e.code === -32602);
		} finally {
			await c.close();
		}
	});

	test('sampling, elicitation and progress reach the client during a call', async () => {
		const c = await connectHttp(fx.url, { capabilities: { sampling: {}, elicitation: {} } });
		try {
			c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
				role: 'assistant', model: 'm', stopReason: 'endTurn',
				content: { type: 'text', text: `echo ${req.params.messages[0].content.text}` },
			}));
			c.client.setRequestHandler(ElicitRequestSchema, async () =>
				({ action: 'accept', content: { username: 'u', email: 'e@example.com' } }));
			const s = await c.client.callTool({ name: 'test_sampling', arguments: { prompt: 'hi' } });
			assert.equal(s.content[0].text, 'LLM response: echo hi');
			const e = await c.client.callTool({ name: 'test_elicitation',
				arguments: { message: 'who?' } });
			assert.match(e.content[0].text, /action=accept/);
			const progress = [];
			await c.client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined,
				{ onprogress: (p) => progress.push(p.progress) });
			assert.deepEqual(progress, [0, 50, 100]);
		} finally {
			await c.close();
		}
	});

	test('refuses a foreign Origin (DNS rebinding) and unknown sessions', async () => {
		const evil = await postJson(fx.url, INIT, { Origin: 'http://evil.example.com' });
		assert.equal(evil.status, 403);
		const ok = await postJson(fx.url, INIT, { Origin: new URL(fx.url).origin });
		assert.equal(ok.status, 200);
		const gone = await postJson(fx.url, { jsonrpc: '2.0', id: 2, method: 'ping' },
			{ 'Mcp-Session-Id': 'no-such-session' });
		assert.equal(gone.status, 404);
	});
});

describe('conformance fixture over stdio', () => {
	test('serves the same tools', async () => {
		const c = await connectStdio(paths.node, [paths.fixture, '--stdio']);
		try {
			const { tools } = await c.client.listTools();
			assert.deepEqual(tools.map((t) => t.name).sort(), EXPECTED_TOOLS);
			const r = await c.client.readResource({ uri: 'test://template/42/data' });
			assert.deepEqual(JSON.parse(r.contents[0].text),
				{ id: '42', templateTest: true, data: 'Data for ID: 42' });
		} finally {
			await c.close();
		}
	});
});

describe('startDaemon', () => {
	test('reports the daemon\'s own error when it refuses to start', async (t) => {
		if (!existsSync(paths.daemon)) {
			t.skip(`no daemon binary at ${paths.daemon} (build it first)`);
			return;
		}
		// Two upstreams with one name: a config error the daemon must exit on; the rejection
		// carries the exit status and what the daemon said.
		const bad = gatewayConfig([fixtureStdioUpstream('dup'), fixtureStdioUpstream('dup')]);
		await assert.rejects(startDaemon(bad, { timeoutMs: 10000 }),
			/exited \(code [1-9]\d*, signal null\)[\s\S]*stderr:\n\S/);
	});
});
