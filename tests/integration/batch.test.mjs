// JSON-RPC batches: allowed for sessions negotiated at 2025-03-26 (answered as one array, each
// element handled as if it came alone), refused for 2025-06-18 and later, which removed them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayConfig, npmStdioUpstream, paths, startDaemon } from './lib.mjs';

const H = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

async function session(url, version) {
	const r = await fetch(url, { method: 'POST', headers: H, body: JSON.stringify({ jsonrpc: '2.0', id: 1,
		method: 'initialize', params: { protocolVersion: version, capabilities: {},
			clientInfo: { name: 'batch-test', version: '1' } } }) });
	assert.equal(r.status, 200);
	assert.equal((await r.json()).result.protocolVersion, version);
	return r.headers.get('mcp-session-id');
}

async function post(url, sid, body) {
	const r = await fetch(url, { method: 'POST', headers: { ...H, 'Mcp-Session-Id': sid },
		body: JSON.stringify(body) });
	const text = await r.text();
	return { status: r.status, body: text ? JSON.parse(text) : null };
}

test('batches in 2025-03-26 sessions, refused after', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(gatewayConfig([npmStdioUpstream('everything', paths.bin.everything, ['stdio'])]));
	t.after(() => d.stop(3000));
	await d.waitForStderr(/upstream everything: ready/, 20000);

	const old = await session(d.url, '2025-03-26');
	const r = await post(d.url, old, [
		{ jsonrpc: '2.0', id: 'p', method: 'ping' },
		{ jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'echo', arguments: { message: 'in a batch' } } },
		{ jsonrpc: '2.0', method: 'notifications/initialized' },
		{ jsonrpc: '2.0', id: 'u', method: 'no/such/method' },
		{ jsonrpc: '2.0', id: 'i', method: 'initialize', params: {} },
		{ nonsense: true },
	]);
	assert.equal(r.status, 200);
	const byId = new Map(r.body.map((m) => [m.id, m]));
	assert.equal(r.body.length, 5, 'one answer per request, none for the notification');
	assert.deepEqual(byId.get('p').result, {});
	assert.equal(byId.get('c').result.content[0].text, 'Echo: in a batch');
	assert.equal(byId.get('u').error.code, -32601);
	assert.equal(byId.get('i').error.code, -32600);
	assert.equal(byId.get(null).error.code, -32600);
	// A batch of notifications only is accepted with 202 and no body.
	assert.equal((await post(d.url, old, [{ jsonrpc: '2.0', method: 'notifications/initialized' }])).status, 202);
	assert.equal((await post(d.url, old, [])).status, 400);

	const now = await session(d.url, '2025-11-25');
	const refused = await post(d.url, now, [{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
	assert.equal(refused.status, 400);
	assert.equal(refused.body.error.code, -32600);
	assert.match(refused.body.error.message, /not allowed in protocol version 2025-11-25/);
	for (const line of d.stderrLines)
		assert.doesNotMatch(line, /AddressSanitizer|ThreadSanitizer|runtime error:/);
});
