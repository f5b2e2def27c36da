// MCP 2026-07-28 towards agents (no initialize, no session: every POST says its version and
// mirrors its method and name in headers) on the same endpoint as the older revisions, in
// front of the conformance fixture (which speaks 2025-11-25). Keys and policy apply to the
// stateless requests exactly as to session calls, and their records carry no session id.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectHttp, fixtureStdioUpstream, makeKey, messagesOf, postJson, rawSession,
	responseOf, startDaemon, stopDaemonChecked, suiteDaemon } from './lib.mjs';

const V = '2026-07-28';
const META = { 'io.modelcontextprotocol/protocolVersion': V,
	'io.modelcontextprotocol/clientCapabilities': {},
	'io.modelcontextprotocol/clientInfo': { name: 'agent-2026', version: '1' } };
let nextId = 1;
const ADMIN_TOKEN = 'admin-token-for-protocol-2026-0123456789';

// A record as the log store keeps it: /api/logs/<seq> on the admin listener (the writer
// stores it a moment after it is printed).
async function stored(d, seq) {
	for (let i = 0; i < 100; i++) {
		if (d.adminUrl) {
			const res = await fetch(`${d.adminUrl}/api/logs/${seq}`,
				{ headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
			if (res.status === 200)
				return res.json();
		}
		await new Promise((r) => setTimeout(r, 50));
	}
	throw new Error(`record ${seq} not in the log store`);
}

// One stateless request; headers as a 2026-07-28 client sends them unless overridden.
function post(url, key, method, params = {}, headers = {}) {
	const name = params.name ?? params.uri;
	const h = { Authorization: `Bearer ${key.key}`, 'MCP-Protocol-Version': V, 'Mcp-Method': method,
		...(name !== undefined ? { 'Mcp-Name': name } : {}), ...headers };
	return postJson(url, { jsonrpc: '2.0', id: nextId++, method,
		params: { ...params, _meta: META } }, h);
}

describe('MCP 2026-07-28 towards agents', () => {
	const k = { all: makeKey(), narrow: makeKey() };
	const d = suiteDaemon({
		listen: '127.0.0.1:0', prefix: 'never', upstreams: [fixtureStdioUpstream()],
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		keys: [{ id: 'all', hash: k.all.hash, policy: 'all' },
			{ id: 'narrow', hash: k.narrow.hash, policy: 'narrow' }],
		policies: { all: { tools: { allow: ['*/*'] } },
			narrow: { tools: { allow: ['fixture/test_simple_text'] } } },
	}, { ready: true, checked: true });

	test('server/discover names the revision and the gateway; calls need no session', async () => {
		const disc = responseOf(await post(d.url, k.all, 'server/discover'));
		assert.ok(disc?.result?.supportedVersions.includes(V), JSON.stringify(disc));
		assert.equal(disc.result._meta['io.modelcontextprotocol/serverInfo'].name, 'mcpwarden');
		assert.equal(disc.result.resultType, 'complete');
		assert.ok(disc.result.capabilities.tools);

		const r = await post(d.url, k.all, 'tools/call', { name: 'test_simple_text', arguments: {} });
		assert.equal(r.status, 200);
		assert.equal(r.headers.get('mcp-session-id'), null, 'no session id on a 2026-07-28 answer');
		const res = responseOf(r)?.result;
		assert.equal(res?.resultType, 'complete', r.text);
		assert.match(res.content[0].text, /test/i);

		const list = responseOf(await post(d.url, k.all, 'tools/list'))?.result;
		assert.equal(list.cacheScope, 'private', 'lists are per key');
		assert.equal(list.ttlMs, 0);
	});

	test('headers that disagree with the body, a missing version, an unknown version and a ' +
		'removed method get the revision\'s errors', async () => {
		let r = await post(d.url, k.all, 'tools/call', { name: 'test_simple_text', arguments: {} },
			{ 'Mcp-Name': 'test_error_handling' });
		assert.equal(r.status, 400);
		assert.equal(r.json.error.code, -32020, r.text);
		// refused before any call was made of it, and on record with the caller's key
		const rec = await d.waitForRecord((x) => x.type === 'decision' && x.decision === 'deny' &&
			x.reason === 'header_mismatch' && /Mcp-Name/.test(x.error_message));
		assert.equal(rec.error_code, -32020);
		assert.equal(rec.http_status, 400);
		assert.equal(rec.key, 'all', 'the caller\'s key is on record: ' + JSON.stringify(rec));
		r = await post(d.url, k.all, 'tools/list', {}, { 'Mcp-Method': 'prompts/list' });
		assert.equal(r.json.error.code, -32020, r.text);
		r = await postJson(d.url, { jsonrpc: '2.0', id: 5, method: 'tools/list', params: {
			_meta: { ...META, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } },
		{ Authorization: `Bearer ${k.all.key}`, 'MCP-Protocol-Version': '2099-01-01',
			'Mcp-Method': 'tools/list' });
		assert.equal(r.status, 400);
		assert.equal(r.json.error.code, -32022, r.text);
		assert.equal(r.json.id, 5);
		assert.ok(r.json.error.data.supported.includes(V));
		r = await post(d.url, k.all, 'ping');
		assert.equal(r.status, 404);
		assert.equal(r.json.error.code, -32601);
		const gone = await d.waitForRecord((x) => x.type === 'decision' && x.reason === 'method_not_found');
		assert.equal(gone.http_status, 404);
		assert.equal(gone.key, 'all');
	});

	test('keys and policy apply as for sessions; the record has no session id', async () => {
		const anon = await postJson(d.url, { jsonrpc: '2.0', id: 9, method: 'tools/list',
			params: { _meta: META } }, { 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/list' });
		assert.equal(anon.status, 401, 'no key, no answer');

		const names = responseOf(await post(d.url, k.narrow, 'tools/list')).result.tools
			.map((t) => t.name);
		assert.deepEqual(names, ['test_simple_text']);
		const refused = responseOf(await post(d.url, k.narrow, 'tools/call',
			{ name: 'test_error_handling', arguments: {} }));
		assert.ok(refused.error, `a tool outside the policy is refused: ${JSON.stringify(refused)}`);

		const rec = await d.waitForRecord((x) => x.type === 'decision' && x.key === 'narrow' &&
			x.method === 'tools/call' && x.target === 'test_error_handling');
		assert.equal(rec.decision, 'deny');
		assert.equal(rec.session, '', `no session in a stateless record: ${JSON.stringify(rec)}`);
	});

	test('an agent on 2025-03-26 and one on 2026-07-28 use the gateway side by side', async () => {
		const s = await rawSession(d.url, { Authorization: `Bearer ${k.all.key}` }, '2025-03-26');
		const old = responseOf(await s.post({ jsonrpc: '2.0', id: 2, method: 'tools/call',
			params: { name: 'test_simple_text', arguments: {} } }));
		assert.ok(old.result?.content, JSON.stringify(old));
		assert.equal(old.result.resultType, undefined, 'older revisions get their own shape');
		const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${k.all.key}` } });
		try {
			const now = responseOf(await post(d.url, k.all, 'tools/call',
				{ name: 'test_simple_text', arguments: {} }));
			assert.equal(now.result.resultType, 'complete');
			const sdk = await c.client.callTool({ name: 'test_simple_text', arguments: {} });
			assert.deepEqual(sdk.content, now.result.content);
		} finally {
			await c.close();
		}
	});

	test('an upstream of an older revision that asks the client (elicitation) becomes an ' +
		'input_required round; only the key that got the requestState can answer it', async () => {
		const meta = { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
		const undeclared = await post(d.url, k.all, 'tools/call',
			{ name: 'test_input_required_result_elicitation', arguments: {} }, {});
		const first = responseOf(undeclared);
		// Without elicitation declared, an upstream that asks anyway relies on a capability the
		// agent lacks: the revision's -32021, HTTP 400, naming it.
		assert.equal(undeclared.status, 400, undeclared.text);
		assert.equal(first.error?.code, -32021, JSON.stringify(first));
		assert.deepEqual(first.error.data.requiredCapabilities, { elicitation: {} });
		// on record as the answer the agent got, not as the session's end
		const refused = await d.waitForRecord((x) => x.type === 'decision' &&
			x.target === 'test_input_required_result_elicitation' && x.error_code === -32021);
		assert.deepEqual([refused.decision, refused.status, refused.reason, refused.key],
			['error', 'error', 'missing client capability: elicitation', 'all'], JSON.stringify(refused));

		const withCaps = (key, extra = {}) => postJson(d.url, { jsonrpc: '2.0', id: nextId++,
			method: 'tools/call', params: { name: 'test_input_required_result_elicitation',
				arguments: {}, ...extra, _meta: { ...META, ...meta } } },
		{ Authorization: `Bearer ${key.key}`, 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call',
			'Mcp-Name': 'test_input_required_result_elicitation' });
		const round = responseOf(await withCaps(k.all)).result;
		assert.equal(round.resultType, 'input_required', JSON.stringify(round));
		// the key the upstream named (io.mcpwarden/inputKey), which the agent does not see
		const [key] = Object.keys(round.inputRequests);
		assert.equal(key, 'user_name');
		assert.equal(round.inputRequests[key].method, 'elicitation/create');
		assert.equal(round.inputRequests[key].params._meta, undefined);
		assert.match(round.requestState, /^[0-9a-f]{32}$/);
		// That answer ends a request of its own: on record, in the log store, as one.
		const fields = (x) => [x.key, x.method, x.server, x.target, x.decision, x.status, x.reason];
		const roundRec = await d.waitForRecord((x) => x.type === 'decision' &&
			x.target === 'test_input_required_result_elicitation' && /^input required/.test(x.reason));
		assert.deepEqual(fields(await stored(d, roundRec.seq)), ['all', 'tools/call', 'fixture',
			'test_input_required_result_elicitation', 'allow', 'ok',
			'input required (round 1): elicitation/create'], JSON.stringify(roundRec));

		const answer = { [key]: { action: 'accept', content: { name: 'Alice' } } };
		const stolen = await withCaps(k.narrow, { inputResponses: answer, requestState: round.requestState });
		assert.equal(responseOf(stolen)?.error?.code, -32602, `another key: ${stolen.text}`);
		const tampered = await withCaps(k.all, { inputResponses: answer,
			requestState: round.requestState.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')) });
		assert.equal(responseOf(tampered)?.error?.code, -32602, `tampered: ${tampered.text}`);

		const done = responseOf(await withCaps(k.all, { inputResponses: answer,
			requestState: round.requestState })).result;
		assert.equal(done.resultType, 'complete', JSON.stringify(done));
		assert.equal(done.content[0].text, 'Hello, Alice (accept)');
		// The retry's answer is the call's: its record, with the rounds the agent was asked
		// for input.
		const rec = await d.waitForRecord((x) => x.type === 'decision' &&
			x.target === 'test_input_required_result_elicitation' && x.status === 'ok' &&
			x.seq > roundRec.seq);
		const kept = await stored(d, rec.seq);
		assert.deepEqual(fields(kept), ['all', 'tools/call', 'fixture',
			'test_input_required_result_elicitation', 'allow', 'ok', undefined], JSON.stringify(kept));
		assert.equal(kept.input_rounds, 1, JSON.stringify(kept));
	});

	test('Mcp-Param headers of x-mcp-header arguments are checked against the body before the ' +
		'gate; older revisions need none; definitions keep x-mcp-header and 2020-12 keywords',
	async () => {
		const tools = responseOf(await post(d.url, k.all, 'tools/list')).result.tools;
		const ch = tools.find((t) => t.name === 'test_custom_headers');
		assert.equal(ch?.inputSchema.properties.region['x-mcp-header'], 'Region');
		const js = tools.find((t) => t.name === 'json_schema_2020_12_tool').inputSchema;
		assert.equal(js.$defs.address.$anchor, 'addressDef');
		assert.deepEqual(js.allOf, [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }]);
		assert.deepEqual([js.if.required, js.then, js.else],
			[['contactMethod'], { required: ['phone'] }, { required: ['email'] }]);

		const call = (args, headers) => post(d.url, k.all, 'tools/call',
			{ name: 'test_custom_headers', arguments: { query: 'q', ...args } }, headers);
		const zurich = `=?base64?${Buffer.from('Zürich').toString('base64')}?=`;
		let r = await call({ region: 'Zürich', priority: 3, verbose: false },
			{ 'Mcp-Param-Region': zurich, 'mcp-param-priority': '3', 'Mcp-Param-Verbose': 'false' });
		assert.equal(r.status, 200, r.text);
		assert.match(responseOf(r).result.content[0].text, /Zürich/);
		// verbose absent: no header wanted; priority compared as a number
		r = await call({ region: 'eu', priority: 3 },
			{ 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '3.0' });
		assert.equal(r.status, 200, r.text);

		for (const [args, headers, what] of [
			[{ region: 'eu', priority: 3 }, { 'Mcp-Param-Priority': '3' }, 'Mcp-Param-Region'],
			[{ region: 'eu', priority: 3 }, { 'Mcp-Param-Region': 'us', 'Mcp-Param-Priority': '3' },
				'Mcp-Param-Region'],
			[{ region: 'eu', priority: 3 }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '4' },
				'Mcp-Param-Priority'],
			[{ region: 'Hello', priority: 3 }, { 'Mcp-Param-Region': '=?base64?SGVsbG8?=',
				'Mcp-Param-Priority': '3' }, 'Mcp-Param-Region'],
			[{ region: 'eu', priority: 3 }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '3',
				'Mcp-Param-Verbose': 'true' }, 'Mcp-Param-Verbose'],
		]) {
			r = await call(args, headers);
			assert.equal(r.status, 400, `${JSON.stringify(headers)}: ${r.text}`);
			assert.equal(r.json.error.code, -32020, r.text);
			assert.ok(r.json.error.message.includes(what), r.text);
		}

		// A session of an older revision mirrors nothing, and nothing is asked of it.
		const s = await rawSession(d.url, { Authorization: `Bearer ${k.all.key}` }, '2025-11-25');
		const old = responseOf(await s.post({ jsonrpc: '2.0', id: 3, method: 'tools/call',
			params: { name: 'test_custom_headers', arguments: { region: 'eu', priority: 1,
				query: 'q' } } }));
		assert.match(old.result?.content?.[0]?.text ?? '', /"region":"eu"/, JSON.stringify(old));
		// and its listing keeps the same definitions, byte for byte
		const oldTools = responseOf(await s.post({ jsonrpc: '2.0', id: 4, method: 'tools/list' }))
			.result.tools;
		for (const name of ['test_custom_headers', 'json_schema_2020_12_tool'])
			assert.deepEqual(oldTools.find((t) => t.name === name)?.inputSchema,
				tools.find((t) => t.name === name).inputSchema, name);

		// The 2020-12 keywords are enforced on the arguments: if/then/else picks the branch.
		const contact = async (args) => responseOf(await post(d.url, k.all, 'tools/call',
			{ name: 'json_schema_2020_12_tool', arguments: args }));
		assert.equal((await contact({ contactMethod: 'phone', phone: '1' })).result?.resultType,
			'complete');
		const bad = await contact({ contactMethod: 'phone', email: 'a@b' });
		assert.equal(bad.error?.code, -32602, JSON.stringify(bad));
		assert.equal(bad.error.data.keyword, 'required');
	});

	test('subscriptions/listen acknowledges first, tagged with its subscription', async () => {
		const ctl = new AbortController();
		const res = await fetch(d.url, { method: 'POST', signal: ctl.signal,
			headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
				Authorization: `Bearer ${k.all.key}`, 'MCP-Protocol-Version': V,
				'Mcp-Method': 'subscriptions/listen' },
			body: JSON.stringify({ jsonrpc: '2.0', id: 'sub-1', method: 'subscriptions/listen',
				params: { notifications: { toolsListChanged: true }, _meta: META } }) });
		assert.equal(res.status, 200);
		assert.match(res.headers.get('content-type'), /text\/event-stream/);
		const reader = res.body.getReader();
		let text = '';
		while (!/\n\n/.test(text)) {
			const { value, done } = await reader.read();
			if (done)
				break;
			text += Buffer.from(value).toString();
		}
		ctl.abort();
		const first = messagesOf({ text })[0];
		assert.equal(first?.method, 'notifications/subscriptions/acknowledged', text);
		assert.deepEqual(first.params.notifications, { toolsListChanged: true });
		assert.equal(first.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
	});
});

// Opens subscriptions/listen; returns { next(): the next message (or null at the end), abort }.
async function listen(url, key, id, notifications) {
	const ctl = new AbortController();
	const res = await fetch(url, { method: 'POST', signal: ctl.signal,
		headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
			Authorization: `Bearer ${key.key}`, 'MCP-Protocol-Version': V,
			'Mcp-Method': 'subscriptions/listen' },
		body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen',
			params: { notifications, _meta: META } }) });
	assert.equal(res.status, 200);
	const reader = res.body.getReader();
	let text = '';
	const queue = [];
	return {
		async next() {
			while (!queue.length) {
				const cut = text.indexOf('\n\n');
				if (cut >= 0) {
					queue.push(...messagesOf({ text: text.slice(0, cut + 2) }));
					text = text.slice(cut + 2);
					continue;
				}
				const { value, done } = await reader.read();
				if (done)
					return null;
				text += Buffer.from(value).toString();
			}
			return queue.shift();
		},
		abort: () => ctl.abort(),
	};
}

test('a reload that restarts the gateway ends an open subscriptions/listen with its result',
	{ timeout: 60000 }, async () => {
		const key = makeKey();
		const config = (extra) => ({ listen: '127.0.0.1:0', prefix: 'never',
			upstreams: [fixtureStdioUpstream('fixture', extra)],
			keys: [{ id: 'all', hash: key.hash, policy: 'all' }],
			policies: { all: { tools: { allow: ['*/*'] } } } });
		const d = await startDaemon(config({}), { ready: true });
		try {
			const l = await listen(d.url, key, 'sub-r', { toolsListChanged: true,
				promptsListChanged: true });
			assert.equal((await l.next())?.method, 'notifications/subscriptions/acknowledged');
			const gone = await listen(d.url, key, 'sub-gone', { toolsListChanged: true });
			assert.equal((await gone.next())?.method, 'notifications/subscriptions/acknowledged');
			gone.abort();   // a client that leaves: its session ends, nothing is written to it
			assert.equal((await d.reload(config({ request_timeout_ms: 30000 }), 20000)).ok, true);
			let last = null;
			for (let m; (m = await l.next()) !== null;)
				last = m;
			assert.equal(last?.id, 'sub-r', `the stream ends with the listen result: ${JSON.stringify(last)}`);
			assert.equal(last.result.resultType, 'complete');
			assert.equal(last.result._meta['io.modelcontextprotocol/subscriptionId'], 'sub-r');
		} finally {
			assert.deepEqual(await stopDaemonChecked(d), []);
		}
	});
