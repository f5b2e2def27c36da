// 2026-07-28 requests to an HTTP upstream of an older revision: each runs on a session of its
// own, but the upstream session behind it is pooled (mcp/links.h): a run of requests whose
// clients declare the same capabilities initializes the upstream once, other capabilities get
// their own, and an upstream that drops its session is initialized again. A counting proxy in
// front of the conformance fixture (2025-11-25, Streamable HTTP) sees every initialize.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { httpUpstream, postJson, responseOf, startDaemon, startFixture,
	stopDaemonChecked } from './lib.mjs';

const V = '2026-07-28';
let fixture, proxy, d, nextId = 1;
const seen = { initialize: 0, dropNext: false, dropped: 0 };

// Forwards to the fixture; counts initialize requests; on demand answers the next request
// call that carries a session id with 404, as an upstream that forgot the session does.
function startProxy(target) {
	const t = new URL(target);
	const server = createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			const body = Buffer.concat(chunks);
			if (req.method === 'POST' && /"method"\s*:\s*"initialize"/.test(body.toString()))
				seen.initialize++;
			if (seen.dropNext && req.headers['mcp-session-id'] &&
			    /"method"\s*:\s*"tools\/call"/.test(body.toString())) {
				seen.dropNext = false;
				seen.dropped++;
				res.writeHead(404).end();
				return;
			}
			const up = httpRequest({ host: t.hostname, port: t.port, path: t.pathname,
				method: req.method, headers: { ...req.headers, host: t.host } }, (ur) => {
				res.writeHead(ur.statusCode, ur.headers);
				ur.pipe(res);
			});
			up.on('error', () => res.destroy());
			up.end(body);
		});
	});
	return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
		resolve({ server, url: `http://127.0.0.1:${server.address().port}/mcp` })));
}

function call(caps = {}, name = 'test_simple_text') {
	return postJson(d.url, { jsonrpc: '2.0', id: nextId++, method: 'tools/call',
		params: { name, arguments: {}, _meta: {
			'io.modelcontextprotocol/protocolVersion': V,
			'io.modelcontextprotocol/clientCapabilities': caps } } },
	{ 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': name });
}

async function ok(caps) {
	const r = await call(caps);
	const res = responseOf(r)?.result;
	assert.equal(res?.resultType, 'complete', r.text);
	assert.match(res.content[0].text, /simple text/);
}

before(async () => {
	fixture = await startFixture();
	proxy = await startProxy(fixture.url);
	d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
		upstreams: [httpUpstream(proxy.url)] }, { ready: true });
});
after(async () => {
	if (d)
		assert.deepEqual(await stopDaemonChecked(d), []);
	proxy?.server.close();
	await fixture?.stop(2000);
});

test('requests with the same capabilities share one pooled upstream session; other ' +
	'capabilities get their own', async () => {
	const base = seen.initialize;
	const N = 30;
	let t = performance.now();
	for (let i = 0; i < N; i++)
		await ok({});
	const pooledMs = performance.now() - t;
	assert.equal(seen.initialize - base, 1, 'one upstream initialize for the whole run');
	await ok({ elicitation: {} });
	assert.equal(seen.initialize - base, 2, 'other capabilities: an upstream session of their own');
	await ok({});
	await ok({ elicitation: {} });
	assert.equal(seen.initialize - base, 2, 'both kept');
	// Capabilities that differ every time cannot share: an upstream session each, as every
	// request had before pooling. The two timings are what docs/protocol.md quotes.
	const before = seen.initialize;
	t = performance.now();
	for (let i = 0; i < N; i++)
		await ok({ experimental: { n: { i } } });
	const freshMs = performance.now() - t;
	assert.equal(seen.initialize - before, N);
	console.log(`# ${N} stateless tools/call: ${(pooledMs / N).toFixed(1)} ms each pooled, ` +
		`${(freshMs / N).toFixed(1)} ms each with a new upstream session`);
});

test('an upstream that drops the pooled session: the request is answered, on a new one',
	async () => {
		await ok({});
		const base = seen.initialize;
		seen.dropNext = true;
		await ok({});
		assert.equal(seen.dropped, 1);
		assert.equal(seen.initialize - base, 1, 'initialized again, once');
		await ok({});
		assert.equal(seen.initialize - base, 1);
	});
