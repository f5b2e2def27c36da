// The gateway's Streamable HTTP front on the wire: statuses, JSON-RPC errors, limits, session
// lifecycle, and the GET stream that carries list changes. Real daemon, real upstreams
// (server-everything and the fault fixture over stdio), raw HTTP where the SDK would hide the
// detail, the SDK client where a user's client would be.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { ResourceListChangedNotificationSchema, ToolListChangedNotificationSchema }
	from '@modelcontextprotocol/sdk/types.js';
import { clientPool, faultStdioUpstream, gatewayConfig, npmStdioUpstream, paths,
	postJson, rawRequest, openRawSession, sseMessages, suiteDaemon }
	from './lib.mjs';

const MAX_BODY = 65536;
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25',
	capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

// Resolves at the first notification of schema that SDK client c receives.
function notified(c, schema) {
	return new Promise((res) => c.client.setNotificationHandler(schema, () => res()));
}

// The GET event stream of raw session s at url, answered 200 (what: the assertion's message);
// close() hangs up.
async function openStream(url, s, what) {
	const ac = new AbortController();
	const res = await fetch(url, { headers: { ...s.headers, Accept: 'text/event-stream' },
		signal: ac.signal });
	assert.equal(res.status, 200, what);
	return { res, async close() { ac.abort(); await res.body.cancel().catch(() => {}); } };
}

describe('gateway HTTP front', { timeout: 60000 }, () => {
	const pool = clientPool();
	after(() => pool.closeAll());
	const d = suiteDaemon(gatewayConfig([
		npmStdioUpstream('everything', paths.bin.everything, ['stdio'], { request_timeout_ms: 5000 }),
		faultStdioUpstream('fault', { request_timeout_ms: 5000 }),
	], { prefix: 'auto', limits: { max_body_bytes: MAX_BODY } }), { ready: true, checked: true });

	test('a foreign Origin is refused with 403; loopback origins are served', async () => {
		for (const origin of ['http://evil.example.com', 'https://127.0.0.1.evil.example', 'null',
			'http://localhostevil.com']) {
			const r = await postJson(d.url, INIT, { Origin: origin });
			assert.equal(r.status, 403, origin);
		}
		for (const origin of ['http://localhost:3000', 'http://127.0.0.1', 'http://[::1]:8080']) {
			const r = await postJson(d.url, INIT, { Origin: origin });
			assert.equal(r.status, 200, origin);
		}
	});

	test('a non-loopback Host on a loopback listener is refused with 403 (DNS rebinding)', async () => {
		const body = JSON.stringify(INIT);
		const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
		const evil = await rawRequest(d.url, { headers: { ...headers, Host: 'evil.example.com:80' }, body });
		assert.equal(evil.status, 403);
		const ok = await rawRequest(d.url, { headers: { ...headers, Host: 'localhost' }, body });
		assert.equal(ok.status, 200);
	});

	test('requests without a session header are 400; an unknown session is 404', async () => {
		const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
		const none = await postJson(d.url, ping);
		assert.equal(none.status, 400);
		assert.equal(none.json?.error?.code, -32600);
		const unknown = await postJson(d.url, ping, { 'Mcp-Session-Id': 'f'.repeat(64) });
		assert.equal(unknown.status, 404);
		const get = await fetch(d.url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': 'nope' } });
		assert.equal(get.status, 404);
		await get.body?.cancel();
	});

	test('DELETE ends a session: the next request on it is 404', async () => {
		const s = await openRawSession(d.url);
		assert.equal((await s.post({ jsonrpc: '2.0', id: 1, method: 'ping' })).status, 200);
		const del = await fetch(d.url, { method: 'DELETE', headers: s.headers });
		assert.equal(del.status, 200);
		assert.equal((await s.post({ jsonrpc: '2.0', id: 2, method: 'ping' })).status, 404);
		const again = await fetch(d.url, { method: 'DELETE', headers: s.headers });
		assert.equal(again.status, 404, 'a second DELETE finds nothing');
	});

	test('an unsupported MCP-Protocol-Version is 400; another supported one is served', async () => {
		const s = await openRawSession(d.url);
		const ping = { jsonrpc: '2.0', id: 3, method: 'ping' };
		const bad = await s.post(ping, { 'MCP-Protocol-Version': '1999-01-01' });
		assert.equal(bad.status, 400);
		assert.match(bad.json?.error?.message ?? '', /MCP-Protocol-Version/);
		// The spec refuses only invalid or unsupported versions; clients (the conformance
		// suite's multiple-streams scenario) send an older supported header on some requests.
		const other = await s.post(ping, { 'MCP-Protocol-Version': '2025-06-18' });
		assert.equal(other.status, 200, 'a supported version other than the negotiated one');
		assert.equal((await s.post(ping)).status, 200, 'the session still works');
	});

	test('malformed JSON is -32700; valid JSON that is not JSON-RPC is -32600', async () => {
		const s = await openRawSession(d.url);
		for (const body of ['{', '{"jsonrpc":"2.0","id":1,"method":"ping"', 'nul', '\u0000', '']) {
			const r = await s.post(body);
			assert.equal(r.status, 400, JSON.stringify(body));
			assert.equal(r.json?.error?.code, -32700, JSON.stringify(body));
		}
		for (const msg of [{ foo: 1 }, { jsonrpc: '1.0', id: 1, method: 'ping' },
			{ jsonrpc: '2.0', id: 1, method: 7 }, { jsonrpc: '2.0', id: {}, method: 'ping' },
			{ jsonrpc: '2.0', id: null, method: 'ping' }, 42, JSON.stringify('ping')]) {
			const r = await s.post(msg);
			assert.equal(r.status, 400, JSON.stringify(msg));
			assert.equal(r.json?.error?.code, -32600, JSON.stringify(msg));
		}
		assert.equal((await s.post({ jsonrpc: '2.0', id: 4, method: 'ping' })).status, 200);
	});

	// What the gateway refuses itself leaves a record where the calls are (docs/audit.md):
	// decision deny, the reason, the HTTP status and the error the client got; nothing of a
	// body that did not parse.
	test('requests the front refuses are on record: parse errors, bad requests, unknown sessions, Origin', async () => {
		const s = await openRawSession(d.url);
		const sid8 = s.headers['Mcp-Session-Id'].slice(0, 8);
		const refused = (reason, more = () => true) => d.waitForRecord((r) => r.type === 'decision' &&
			r.decision === 'deny' && r.reason === reason && more(r));
		await s.post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"secret":"s3cr3t"');
		let r = await refused('parse_error', (x) => x.session === sid8);
		assert.equal(r.http_status, 400);
		assert.equal(r.error_code, -32700);
		assert.equal(r.status, 'error');
		assert.ok(!JSON.stringify(r).includes('s3cr3t'), 'nothing of the body: ' + JSON.stringify(r));
		assert.equal(r.method, undefined);
		await s.post({ jsonrpc: '1.0', id: 9, method: 'ping' });
		r = await refused('invalid_request', (x) => x.session === sid8 && x.error_code === -32600 &&
			/jsonrpc/.test(x.error_message));
		assert.equal(r.http_status, 400);
		await postJson(d.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': 'e'.repeat(64) });
		r = await refused('session_not_found', (x) => x.session === 'eeeeeeee');
		assert.equal(r.http_status, 404);
		await postJson(d.url, INIT, { Origin: 'http://evil.example.com' });
		r = await refused('forbidden', (x) => /Origin/.test(x.error_message));
		assert.equal(r.http_status, 403);
		assert.ok(r.peer, 'the client address is on record');
		// A path that is not the MCP endpoint is a scanner's noise: answered, not recorded.
		const off = await fetch(d.url.replace(/\/mcp$/, '/elsewhere'), { method: 'POST', body: '{}' });
		assert.equal(off.status, 404);
		await off.body?.cancel();
		await assert.rejects(d.waitForRecord((x) => x.type === 'decision' && x.reason === 'not_found',
			500), /no matching stdout record/);
	});

	// cJSON judges the first of two same-named members, an upstream's parser may take the
	// last: a request with a name twice in one object, at any depth, is not taken at all.
	test('a member name twice in one object is -32600 naming it, at any depth, in a batch too', async () => {
		const s = await openRawSession(d.url);
		const call = (args) => `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":` +
			`{"name":"fault__echo","arguments":${args}}}`;
		for (const [body, name] of [
			[call('{"text":"judged","text":"forwarded"}'), 'text'],
			[call('{"text":"x","o":{"k":1,"k":2}}'), 'k'],
			['{"jsonrpc":"2.0","id":9,"id":10,"method":"ping"}', 'id'],
			[`[${call('{"text":"a"}')},{"jsonrpc":"2.0","id":3,"method":"ping","method":"x"}]`,
				'method'],
		]) {
			const r = await s.post(body);
			assert.equal(r.status, 400, body);
			assert.equal(r.json?.error?.code, -32600, body);
			assert.match(r.json.error.message, new RegExp(`"${name}" appears twice`), body);
		}
		const ok = await s.post(call('{"text":"once"}'));
		assert.equal(ok.json?.result?.content?.[0]?.text, 'fault: once');
	});

	test('an unknown method is -32601 with the request id', async () => {
		const s = await openRawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 'abc', method: 'tools/frobnicate' });
		assert.equal(r.json?.error?.code, -32601);
		assert.equal(r.json?.id, 'abc');
	});

	test('malformed params for every method: a JSON-RPC answer at once, never an upstream timeout', async () => {
		const s = await openRawSession(d.url);
		const methods = ['tools/list', 'tools/call', 'resources/list', 'resources/read',
			'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'prompts/list',
			'prompts/get', 'completion/complete', 'logging/setLevel', 'ping', 'initialize'];
		const echo = { name: 'fault__echo', arguments: { text: 'x' } };
		const params = [undefined, null, 5, 'x', [], {}, { name: 5 }, { name: null }, { uri: {} },
			{ uri: [] }, { uri: 'everything+' }, { uri: '+x' }, { name: 'everything__' }, { name: '__x' },
			{ name: 'everything__args-prompt', arguments: 'x' }, { ref: 5 }, { ref: { type: 'ref/prompt' } },
			{ ref: { type: 'ref/prompt', name: 'everything__completable-prompt' }, argument: 5 },
			{ level: 5 }, { cursor: {} }, { _meta: 5 }, { ...echo, _meta: 'x' }, { ...echo, _meta: [] },
			{ ...echo, _meta: { progressToken: {} } }, { ...echo, _meta: { progressToken: null } }];
		let id = 100;
		for (const method of methods) {
			for (const p of params) {
				const msg = { jsonrpc: '2.0', id: id++, method, ...(p === undefined ? {} : { params: p }) };
				const r = await s.post(msg);
				const what = `${method} ${JSON.stringify(p)}`;
				assert.ok([200, 400].includes(r.status), `${what}: HTTP ${r.status}`);
				const answer = r.json ?? sseMessages(r.text).at(-1);
				assert.ok(answer && ('result' in answer || 'error' in answer), `${what}: ${r.text.slice(0, 200)}`);
				assert.notEqual(answer.error?.code, -32011, `${what}: left to time out upstream`);
				if (p !== undefined && p !== null && (typeof p !== 'object' || Array.isArray(p)))
					assert.equal(answer.error?.code, -32602, `${what}: params must be an object`);
			}
		}
		assert.equal(d.proc.exitCode, null, 'the daemon is up');
	});

	test('a batch (JSON array) is refused', async () => {
		const s = await openRawSession(d.url);
		const r = await s.post([{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'ping' }]);
		assert.equal(r.status, 400);
		assert.equal(r.json?.error?.code, -32600);
		assert.match(r.json?.error?.message, /batch/i);
	});

	test('notifications and responses are accepted with 202 and no body', async () => {
		const s = await openRawSession(d.url);
		const n = await s.post({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
		assert.equal(n.status, 202);
		assert.equal(n.text, '');
		const resp = await s.post({ jsonrpc: '2.0', id: 'never-asked', result: {} });
		assert.equal(resp.status, 202);
	});

	test('wrong Accept is 406, wrong Content-Type 415, other methods 405', async () => {
		const body = JSON.stringify(INIT);
		const acc = await rawRequest(d.url, { headers: { 'Content-Type': 'application/json',
			Accept: 'text/html' }, body });
		assert.equal(acc.status, 406);
		const one = await rawRequest(d.url, { headers: { 'Content-Type': 'application/json',
			Accept: 'application/json' }, body });
		assert.equal(one.status, 406, 'both types, or any');
		const any = await rawRequest(d.url, { headers: { 'Content-Type': 'application/json',
			Accept: 'text/html, */*;q=0.1' }, body });
		assert.equal(any.status, 200, 'any type');
		const ct = await rawRequest(d.url, { headers: { 'Content-Type': 'text/plain',
			Accept: 'application/json, text/event-stream' }, body });
		assert.equal(ct.status, 415);
		for (const method of ['PUT', 'PATCH'])
			assert.equal((await rawRequest(d.url, { method, headers: { 'Content-Type': 'application/json' },
				body })).status, 405, method);
		const s = await openRawSession(d.url);
		const get = await rawRequest(d.url, { method: 'GET', headers: { ...s.headers, Accept: 'application/json' } });
		assert.equal(get.status, 406, 'GET must accept text/event-stream');
	});

	test('initialize without a protocolVersion is -32602', async () => {
		const r = await postJson(d.url, { ...INIT, params: { capabilities: {} } });
		assert.equal(r.json?.error?.code, -32602);
		assert.equal(r.headers.get('mcp-session-id'), null, 'no session is opened');
	});

	test(`a body over limits.max_body_bytes (${MAX_BODY}) is 413; one under it is served`, async () => {
		const s = await openRawSession(d.url);
		const call = (text) => ({ jsonrpc: '2.0', id: 7, method: 'tools/call',
			params: { name: 'fault__echo', arguments: { text } } });
		const under = 'x'.repeat(MAX_BODY - 200);
		const ok = await s.post(call(under));
		assert.equal(ok.status, 200);
		assert.equal(ok.json?.result?.content?.[0]?.text, `fault: ${under}`);
		const over = await s.post(call('x'.repeat(MAX_BODY + 1)));
		assert.equal(over.status, 413);
		assert.equal((await s.post({ jsonrpc: '2.0', id: 8, method: 'ping' })).status, 200,
			'the daemon keeps serving');
	});

	test('a connection after one its answer closed (Connection: close) has its whole body read', async () => {
		// The closed connection's descriptor number goes to the next one: none of the closed
		// one's events may still be registered for it (they read its bytes into a dead buffer,
		// and the request waited for the rest until the header deadline cut it).
		const s = await openRawSession(d.url);
		for (let i = 0; i < 4; i++) {
			const small = await rawRequest(d.url, { headers: s.headers,
				body: { jsonrpc: '2.0', id: i, method: 'ping' } });
			assert.equal(small.headers.connection, 'close');
			const big = await rawRequest(d.url, { headers: s.headers, body: { jsonrpc: '2.0',
				id: 100 + i, method: 'ping', params: { _meta: { pad: 'x'.repeat(30000) } } } });
			assert.equal(big.status, 200, `round ${i}`);
			assert.equal(big.json?.id, 100 + i);
		}
	});

	test('pipelined calls, the client shutting its side after sending them: each answered, in order', async () => {
		// While a call is served, evhttp does not read its connection: the bytes and the EOF
		// that arrive meanwhile wait for the answer, and nothing spins on them.
		const s = await openRawSession(d.url);
		const u = new URL(d.url);
		const request = (id) => {
			const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
				params: { name: 'fault__echo', arguments: { text: `p${id}` } } });
			return `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n` +
				'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
				Object.entries(s.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
				`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
		};
		const text = await new Promise((res, rej) => {
			const sock = connect(Number(u.port), u.hostname, () => {
				sock.end(request(1) + request(2) + request(3));
			});
			let got = '';
			sock.setEncoding('utf8');
			sock.setTimeout(15000, () => { sock.destroy(); rej(new Error(`stalled after: ${got}`)); });
			sock.on('data', (chunk) => { got += chunk; });
			sock.on('close', () => res(got));
			sock.on('error', rej);
		});
		const answers = text.split('HTTP/1.1 ').slice(1);
		assert.equal(answers.length, 3, text);
		answers.forEach((a, i) => {
			assert.match(a, /^200 /);
			const msg = JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4));
			assert.equal(msg.id, i + 1);
			assert.equal(msg.result?.content?.[0]?.text, `fault: p${i + 1}`);
		});
	});

	test('one GET stream per session; a second one is refused', async () => {
		const s = await openRawSession(d.url);
		const first = await openStream(d.url, s);
		assert.match(first.res.headers.get('content-type'), /^text\/event-stream/);
		const second = await rawRequest(d.url, { method: 'GET', headers: { ...s.headers, Accept: 'text/event-stream' } });
		assert.equal(second.status, 409);
		await first.close();
	});

	test('clients that hang up mid-stream (GET stream, POST SSE reply) cost nothing', async () => {
		// Leaks would show at daemon exit (checked in after()); here: the session keeps working.
		const s = await openRawSession(d.url);
		await (await openStream(d.url, s)).close();
		const post = new AbortController();
		const r = await fetch(d.url, { method: 'POST', signal: post.signal, headers: { ...s.headers,
			'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
		body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {
			name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 4 },
			_meta: { progressToken: 'p' } } }) });
		assert.match(r.headers.get('content-type'), /^text\/event-stream/);
		const first = await r.body.getReader().read();
		assert.match(new TextDecoder().decode(first.value), /notifications\/progress/);
		post.abort();
		// The call runs on upstream (disconnection is not cancellation); its answer is dropped.
		await d.waitForRecord((rec) => rec.type === 'decision' && rec.session === s.sessionId.slice(0, 8) &&
			rec.target === 'everything__trigger-long-running-operation', 5000);
		const ping = await s.post({ jsonrpc: '2.0', id: 2, method: 'ping' });
		assert.equal(ping.status, 200);
		await (await openStream(d.url, s, 'the aborted GET stream was released: a new one opens')).close();
	});

	test('a POST answered as SSE: progress with the caller\'s own token first, then the result with its id', async () => {
		const s = await openRawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 'call-é', method: 'tools/call', params: {
			name: 'everything__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 },
			_meta: { progressToken: 'tok-é/1' } } });
		assert.equal(r.status, 200);
		assert.match(r.headers.get('content-type'), /^text\/event-stream/);
		const msgs = sseMessages(r.text);
		const progress = msgs.filter((m) => m.method === 'notifications/progress');
		assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]),
			[['tok-é/1', 1], ['tok-é/1', 2], ['tok-é/1', 3]]);
		const last = msgs.at(-1);
		assert.equal(last.id, 'call-é', 'the response comes last, under the client\'s id');
		assert.match(last.result.content[0].text, /completed/);
	});

	test('the GET stream receives tools/list_changed when an upstream\'s tool list changes', async () => {
		const c = await pool.connectWithStream(d.url);
		await c.streamOpen;
		const heard = notified(c, ToolListChangedNotificationSchema);
		const before = (await c.client.listTools()).tools.map((t) => t.name);
		assert.ok(!before.includes('fault__brand-new'));
		// The fault fixture really adds the tool and announces it (the SDK's sendToolListChanged).
		const r = await c.client.callTool({ name: 'fault__add-tool', arguments: { name: 'brand-new' } });
		assert.equal(r.content[0].text, 'added brand-new');
		await heard;
		const after = (await c.client.listTools()).tools.map((t) => t.name);
		assert.ok(after.includes('fault__brand-new'), 'the catalogue was refreshed before announcing');
		const run = await c.client.callTool({ name: 'fault__brand-new', arguments: {} });
		assert.equal(run.content[0].text, 'brand-new ran');
	});

	test('the GET stream receives resources/list_changed when server-everything adds a resource', async () => {
		const c = await pool.connectWithStream(d.url);
		await c.streamOpen;
		const heard = notified(c, ResourceListChangedNotificationSchema);
		// gzip-file-as-resource registers a session resource (a data: URI: no network).
		const r = await c.client.callTool({ name: 'everything__gzip-file-as-resource', arguments: {
			name: 'hello.txt.gz', data: 'data:text/plain;base64,aGVsbG8gZ2F0ZXdheQ==',
			outputType: 'resourceLink' } });
		assert.notEqual(r.isError, true, JSON.stringify(r));
		const link = r.content.find((b) => b.type === 'resource_link');
		assert.match(link.uri, /^everything\+/);
		await heard;
		const { resources } = await c.client.listResources();
		assert.ok(resources.some((x) => x.uri === link.uri), `${link.uri} listed after the change`);
		const read = await c.client.readResource({ uri: link.uri });
		assert.equal(read.contents[0].uri, link.uri);
		assert.ok(read.contents[0].blob.length > 0);
	});

	test('the daemon answered everything above and is still up', async () => {
		assert.equal(d.proc.exitCode, null);
		const h = await fetch(d.url.replace(/\/mcp$/, '/healthz'));
		assert.equal(h.status, 200);
	});
});

describe('gateway HTTP front: sessions and limits', { timeout: 60000 }, () => {
	const d = suiteDaemon(gatewayConfig([faultStdioUpstream('fault', { request_timeout_ms: 5000 })], {
		limits: { max_sessions: 3, max_header_bytes: 4096 },
		timeouts: { session_idle_ms: 1000 } }), { ready: true, checked: true });

	test('a request id still in flight cannot be reused; the client\'s cancellation ends the call', async () => {
		const s = await openRawSession(d.url);
		const pending = s.post({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'hang', arguments: {} } });
		await d.waitForStderr(/fault-server\[fault\]: hanging on request/);
		const dup = await s.post({ jsonrpc: '2.0', id: 7, method: 'ping' });
		assert.equal(dup.json?.error?.code, -32600);
		assert.equal(dup.json?.id, 7);
		const n = await s.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } });
		assert.equal(n.status, 202);
		const r = await pending;
		assert.equal(r.json?.id, 7, 'the pending POST is answered, not left hanging');
		await d.waitForStderr(/fault-server\[fault\]: cancelled \S+/);
		assert.equal((await s.post({ jsonrpc: '2.0', id: 7, method: 'ping' })).status, 200, 'the id is free again');
		await fetch(d.url, { method: 'DELETE', headers: s.headers });
	});

	test('ids: strings and integers are echoed exactly; fractions and unsafe integers are -32600', async () => {
		const s = await openRawSession(d.url);
		for (const id of ['', 'é"\\\\', 0, -5, 2 ** 53 - 1]) {
			const r = await s.post({ jsonrpc: '2.0', id, method: 'ping' });
			assert.deepEqual(r.json, { jsonrpc: '2.0', id, result: {} }, JSON.stringify(id));
		}
		for (const raw of ['1.5', '9007199254740993', '1e21']) {
			const r = await s.post(`{"jsonrpc":"2.0","id":${raw},"method":"ping"}`);
			assert.equal(r.json?.error?.code, -32600, raw);
		}
		await fetch(d.url, { method: 'DELETE', headers: s.headers });
	});

	test('a client answering a relayed request with a non-object result: the upstream hears an error', async () => {
		const s = await openRawSession(d.url, { capabilities: { sampling: {} } });
		const res = await fetch(d.url, { method: 'POST', headers: { ...s.headers,
			'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
		body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call',
			params: { name: 'sample-later', arguments: { prompt: 'p' } } }) });
		assert.match(res.headers.get('content-type'), /^text\/event-stream/);
		const reader = res.body.getReader();
		let text = '';
		let relayed;
		while (!relayed) {
			const { value, done } = await reader.read();
			assert.ok(!done, 'the stream carries the sampling request');
			text += new TextDecoder().decode(value);
			relayed = sseMessages(text).find((m) => m.method === 'sampling/createMessage');
		}
		const ack = await s.post({ jsonrpc: '2.0', id: relayed.id, result: 5 });
		assert.equal(ack.status, 202);
		for (;;) {
			const { value, done } = await reader.read();
			if (done)
				break;
			text += new TextDecoder().decode(value);
		}
		const final = sseMessages(text).at(-1);
		assert.equal(final.id, 1);
		assert.match(final.error?.message ?? '', /not an object/, 'the call fails at once, precisely');
		await fetch(d.url, { method: 'DELETE', headers: s.headers });
	});

	test('headers over limits.max_header_bytes are refused', async () => {
		const r = await rawRequest(d.url, { headers: { 'X-Padding': 'a'.repeat(8000) },
			body: JSON.stringify(INIT) });
		assert.ok([400, 431].includes(r.status), `status ${r.status}`);
	});

	test('limits.max_sessions: initialize beyond it is refused; an idle session ends (404)', async () => {
		const held = [];
		let refused = null;
		for (let i = 0; i < 4 && !refused; i++) {
			const r = await postJson(d.url, INIT);
			if (r.json?.error)
				refused = r;
			else
				held.push(r.headers.get('mcp-session-id'));
		}
		assert.ok(refused, 'a fourth session is refused');
		assert.match(refused.json.error.message, /too many sessions/);
		assert.equal(refused.headers.get('mcp-session-id'), null);
		// Unused, they expire after session_idle_ms (the sweep runs every second); any request
		// would count as use, so nothing touches them meanwhile.
		await new Promise((r) => setTimeout(r, 3000));
		for (const sid of held) {
			const r = await postJson(d.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { 'Mcp-Session-Id': sid });
			assert.equal(r.status, 404, 'the idle session ended');
		}
		const again = await postJson(d.url, INIT);
		assert.equal(again.status, 200);
		assert.ok(again.json?.result, 'room for a new session');
	});

	test('a session with an open GET stream is not idle', async () => {
		const s = await openRawSession(d.url);
		const stream = await openStream(d.url, s);
		await new Promise((r) => setTimeout(r, 3000));	// three idle periods
		assert.equal((await s.post({ jsonrpc: '2.0', id: 1, method: 'ping' })).status, 200);
		await stream.close();
	});
});
