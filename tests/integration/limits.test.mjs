// Limits under overload: a flood of slow connections from one address is held to
// limits.max_connections_per_peer (the rest refused at once and counted in /metrics) while an
// honest client from another address is served and the daemon's descriptors stay bounded;
// limits.max_connections caps the total; evhttp's own refusals (body or headers too large,
// malformed requests) answer JSON-RPC errors, not HTML pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { connectHttp, eventually, faultStdioUpstream, fixtureStdioUpstream, gatewayConfig, makeKey, postJson,
	rawSession, startDaemon, stopDaemonChecked } from './lib.mjs';

const TOKEN = 'limits-admin-token-0123456789';

function config(limits = {}, timeouts = {}) {
	return gatewayConfig([fixtureStdioUpstream('fixture')], {
		admin: { listen: '127.0.0.1:0', token: TOKEN }, limits, timeouts });
}

async function metrics(d) {
	const r = await fetch(d.adminUrl + '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } });
	assert.equal(r.status, 200);
	return r.text();
}

function metric(text, name, labels) {
	const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
	return line ? Number(line.split(' ').pop()) : NaN;
}

const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** Open a connection from localAddress; resolves once connected (or failed: null). */
function open(url, localAddress) {
	const { hostname, port } = new URL(url);
	return new Promise((resolve) => {
		const s = net.connect({ host: hostname, port: Number(port), localAddress });
		s.on('connect', () => resolve(s));
		s.on('error', () => resolve(null));
		s.on('close', () => { s.closedByServer = true; });
		s.received = '';
		s.on('data', (b) => { s.received += b.toString(); });
	});
}

/** Send raw bytes and collect the whole answer until the server closes. */
function exchange(url, bytes) {
	const { hostname, port } = new URL(url);
	return new Promise((resolve) => {
		const s = net.connect(Number(port), hostname);
		let text = '';
		s.on('data', (b) => { text += b.toString(); });
		const done = () => {
			const [head, ...rest] = text.split('\r\n\r\n');
			const status = Number((/^HTTP\/1\.\d (\d{3})/.exec(head) ?? [])[1]);
			let json = null;
			try { json = JSON.parse(rest.join('\r\n\r\n')); } catch { /* not JSON */ }
			resolve({ status, head, json, text });
		};
		s.on('close', done);
		s.on('error', () => {});
		s.write(bytes);
	});
}

test('a slowloris from one address is capped; another client is served', { timeout: 120000 }, async (t) => {
	const d = await startDaemon(config({}, { header_ms: 30000 }), { ready: true });
	t.after(() => d.stop(3000));
	const pid = d.proc.pid;
	const before = fds(pid);

	// 2,000 connections from 127.0.0.2, each trickling a header line now and then.
	const socks = [];
	for (let i = 0; i < 2000; i += 100) {
		const batch = await Promise.all(Array.from({ length: 100 }, () => open(d.url, '127.0.0.2')));
		socks.push(...batch.filter(Boolean));
	}
	t.after(() => { for (const s of socks) s.destroy(); });
	for (const s of socks)
		s.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n');
	const tick = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('X-a: b\r\n'); }, 500);
	t.after(() => clearInterval(tick));

	// The default per-peer cap (256) holds: the rest were closed, with a JSON-RPC 503.
	await eventually(async () => socks.filter((s) => !s.closedByServer).length <= 256,
		{ ms: 15000, what: 'connections past the per-peer cap closed' });
	const refused = socks.find((s) => s.closedByServer && s.received);
	assert.ok(refused, 'a refused connection was told why');
	assert.match(refused.received, /^HTTP\/1\.1 503 /);
	assert.match(refused.received, /Retry-After: 1/);
	assert.match(refused.received, /"code":-32000/);
	assert.equal(socks.filter((s) => !s.closedByServer).length, 256);

	// Descriptors: the held 256, not 2,000.
	const held = fds(pid);
	assert.ok(held - before < 256 + 40, `daemon holds ${held} descriptors (${before} before)`);

	// An SDK client from 127.0.0.1 is served meanwhile.
	const c = await connectHttp(d.url);
	const tools = await c.client.listTools();
	assert.ok(tools.tools.length > 0);
	await c.close();

	const m = await metrics(d);
	const peerRefused = metric(m, 'mcpwarden_connections_refused_total', 'listener="agent",reason="peer_cap"');
	assert.ok(peerRefused >= 2000 - 256, `peer_cap refusals: ${peerRefused}`);
	t.diagnostic(`${socks.length} slow connections: daemon descriptors ${before} -> ${held}, ` +
		`${peerRefused} refused (peer_cap)`);
	assert.ok(metric(m, 'mcpwarden_connections', 'listener="agent"') >= 256);

	for (const s of socks)
		s.destroy();
	await eventually(async () => metric(await metrics(d), 'mcpwarden_connections',
		'listener="agent"') === 0, { ms: 5000, what: 'the gauge back to 0' });
	assert.ok(fds(pid) - before < 10, 'descriptors given back');
	clearInterval(tick);
	assert.deepEqual(await stopDaemonChecked(d), []);
});

test('limits.max_connections caps the total, whatever the address', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(config({ max_connections: 20 }), { ready: true });
	t.after(() => d.stop(3000));
	const socks = [];
	for (let i = 0; i < 30; i++)
		socks.push(await open(d.url, `127.0.1.${i + 1}`));
	t.after(() => { for (const s of socks) s?.destroy(); });
	await eventually(async () => socks.filter((s) => s && !s.closedByServer).length === 20,
		{ ms: 5000, what: 'ten refused' });
	const m = await metrics(d);
	assert.equal(metric(m, 'mcpwarden_connections_refused_total', 'listener="agent",reason="total_cap"'), 10);
	// Room again once some close.
	for (const s of socks.slice(0, 5))
		s?.destroy();
	await eventually(async () => {
		const s = await open(d.url, '127.0.2.1');
		const ok = await new Promise((res) => setTimeout(() => res(!s.closedByServer), 300));
		s.destroy();
		return ok;
	}, { ms: 5000, what: 'a connection admitted after others closed' });
	for (const s of socks)
		s?.destroy();
	assert.deepEqual(await stopDaemonChecked(d), []);
});

test('too large and malformed requests answer JSON-RPC errors', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(config({ max_body_bytes: 4096, max_header_bytes: 2048 }),
		{ ready: true });
	t.after(() => d.stop(3000));
	const head = 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
		'Accept: application/json, text/event-stream\r\n';

	const body = await exchange(d.url, `${head}Content-Length: 100000\r\n\r\n`);
	assert.equal(body.status, 413, body.text);
	assert.match(body.head, /Content-Type: application\/json/);
	assert.equal(body.json?.error?.code, -32600);
	assert.match(body.json.error.message, /max_body_bytes/);

	const headers = await exchange(d.url, `${head}X-Big: ${'x'.repeat(3000)}\r\n\r\n`);
	assert.equal(headers.status, 431, headers.text);
	assert.equal(headers.json?.error?.code, -32600);
	assert.match(headers.json.error.message, /max_header_bytes/);

	const bad = await exchange(d.url, 'POST /mcp HTTP/1.1\r\nthis is not a header\r\n\r\n');
	assert.equal(bad.status, 400, bad.text);
	assert.equal(bad.json?.error?.code, -32600);
	assert.doesNotMatch(bad.text, /<HTML>/i);

	// The same on the admin listener.
	const admin = await exchange(d.adminUrl, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
		`X-Big: ${'x'.repeat(3000)}\r\n\r\n`);
	assert.equal(admin.status, 431, admin.text);
	assert.equal(admin.json?.error?.code, -32600);

	// Each refusal is counted, per listener and status.
	const m = await metrics(d);
	assert.equal(metric(m, 'mcpwarden_http_refused_total', 'listener="agent",status="413"'), 1);
	assert.equal(metric(m, 'mcpwarden_http_refused_total', 'listener="agent",status="431"'), 1);
	assert.equal(metric(m, 'mcpwarden_http_refused_total', 'listener="agent",status="400"'), 1);
	assert.equal(metric(m, 'mcpwarden_http_refused_total', 'listener="admin",status="431"'), 1);
	assert.deepEqual(await stopDaemonChecked(d), []);
});

test('limits.max_pending_per_session: one more request in progress is 429 with Retry-After, ' +
	'counted; the session goes on', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(gatewayConfig([faultStdioUpstream('fault', { request_timeout_ms: 3000 })], {
		admin: { listen: '127.0.0.1:0', token: TOKEN }, limits: { max_pending_per_session: 3 } }),
	{ ready: true });
	t.after(() => d.stop(3000));
	const s = await rawSession(d.url);
	const call = (id, name) => s.post({ jsonrpc: '2.0', id, method: 'tools/call',
		params: { name, arguments: name === 'echo' ? { text: `t${id}` } : {} } });
	const hanging = [1, 2, 3].map((id) => call(id, 'hang'));
	await eventually(() => d.stderrLines.filter((l) => /hanging on request/.test(l)).length === 3,
		{ what: 'three calls in progress' });
	const fourth = await call(4, 'echo');
	assert.equal(fourth.status, 429, fourth.text);
	assert.equal(fourth.headers.get('retry-after'), '1');
	assert.equal(fourth.json?.error?.code, -32008);
	assert.equal(fourth.json.error.data.type, 'too_many_pending');
	assert.equal(fourth.json.error.data.limit, 3);
	assert.match(fourth.json.error.message, /max_pending_per_session/);
	// An id still in progress is refused as such, at the cap as below it, and nothing is sent.
	const dup = await call(2, 'echo');
	assert.equal(dup.json?.error?.code, -32600, dup.text);
	assert.match(dup.json.error.message, /already in use/);
	// Another session is not affected.
	const other = await rawSession(d.url);
	const ok = await other.post({ jsonrpc: '2.0', id: 1, method: 'tools/call',
		params: { name: 'echo', arguments: { text: 'other' } } });
	assert.equal(ok.status, 200, ok.text);
	assert.match(ok.text, /fault: other/);
	// Once the hanging calls are answered (timed out), the session takes calls again.
	for (const r of await Promise.all(hanging))
		assert.match(r.text, /-32011/);
	const again = await call(5, 'echo');
	assert.equal(again.status, 200, again.text);
	assert.match(again.text, /fault: t5/);
	const hang6 = call(6, 'hang');
	await eventually(() => d.stderrLines.filter((l) => /hanging on request/.test(l)).length === 4,
		{ what: 'a fourth call in progress' });
	const second = await call(6, 'echo');
	assert.equal(second.json?.error?.code, -32600, second.text);
	assert.match(second.json.error.message, /already in use/);
	assert.match((await hang6).text, /-32011/);
	const reused = await call(2, 'echo');      // answered ids are free again
	assert.equal(reused.status, 200, reused.text);
	assert.match(reused.text, /fault: t2/);
	const m = await metrics(d);
	assert.equal(metric(m, 'mcpwarden_requests_total',
		'method="tools/call",decision="deny",reason="too_many_pending"'), 1);
	assert.deepEqual(await stopDaemonChecked(d), []);
});

test('limits.max_sessions_per_key: one more initialize is 429 with Retry-After', { timeout: 60000 }, async (t) => {
	const k1 = makeKey(), k2 = makeKey();
	const d = await startDaemon({ ...config({ max_sessions_per_key: 2 }), auth: { required: true },
		policies: { all: { tools: { allow: ['*/*'] } } },
		keys: [{ id: 'k1', policy: 'all', hash: k1.hash }, { id: 'k2', policy: 'all', hash: k2.hash }] },
	{ ready: true });
	t.after(() => d.stop(3000));
	const auth1 = { Authorization: `Bearer ${k1.key}` };
	const a = await rawSession(d.url, auth1);
	await rawSession(d.url, auth1);
	const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25',
		capabilities: {}, clientInfo: { name: 'third', version: '1' } } };
	const third = await postJson(d.url, init, auth1);
	assert.equal(third.status, 429, third.text);
	assert.equal(third.headers.get('retry-after'), '10');
	assert.equal(third.json?.error?.code, -32006);
	assert.match(third.json.error.message, /max_sessions_per_key/);
	// Another key is not affected; ending a session of k1 makes room.
	await rawSession(d.url, { Authorization: `Bearer ${k2.key}` });
	const del = await fetch(d.url, { method: 'DELETE', headers: a.headers });
	assert.equal(del.status, 200);
	assert.equal((await postJson(d.url, init, auth1)).status, 200);
	assert.deepEqual(await stopDaemonChecked(d), []);
});

test('limits.max_stdio_children: an initialize that could pass it is 503 with Retry-After; ' +
	'ending a session makes room', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(gatewayConfig([faultStdioUpstream('fault', { per_session: true })], {
		limits: { max_stdio_children: 2 } }), { ready: true });
	t.after(() => d.stop(3000));
	const pidOf = async (s) => JSON.parse((await s.post({ jsonrpc: '2.0', id: 9, method: 'tools/call',
		params: { name: 'pid', arguments: {} } })).text.replace(/^[\s\S]*?data: /, '')).result.content[0].text;
	const a = await rawSession(d.url);
	const b = await rawSession(d.url);
	const [pa, pb] = [await pidOf(a), await pidOf(b)];
	assert.notEqual(pa, pb, 'a child per session');
	const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25',
		capabilities: {}, clientInfo: { name: 'third', version: '1' } } };
	const third = await postJson(d.url, init);
	assert.equal(third.status, 503, third.text);
	assert.equal(third.headers.get('retry-after'), '5');
	assert.equal(third.json?.error?.code, -32009);
	assert.equal(third.json.error.data.type, 'too_many_children');
	assert.equal(third.json.error.data.limit, 2);
	assert.equal(third.json.error.data.children, 2);
	assert.match(third.json.error.message, /max_stdio_children/);
	// The sessions that have their children go on.
	assert.equal(await pidOf(a), pa);
	// Ending one ends its child and makes room.
	const del = await fetch(d.url, { method: 'DELETE', headers: a.headers });
	assert.equal(del.status, 200);
	const c = await rawSession(d.url);
	assert.ok(Number(await pidOf(c)) > 0);
	assert.deepEqual(await stopDaemonChecked(d), []);
});
