// OpenTelemetry traces through the real daemon (docs/tracing.md): an OTLP/HTTP receiver here
// decodes what arrives with the official protobuf definitions (the generated protobufjs root
// inside @opentelemetry/otlp-transformer, pinned in tests/package.json), an HTTP MCP upstream
// here (the SDK's StreamableHTTPServerTransport) records the trace context it received, and a
// stdio upstream behind a tap records its messages. One trace id must run from the agent's
// traceparent through the gateway's SERVER span and CLIENT span to the upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { connectHttp, eventually, fixtureStdioUpstream, freePort, gatewayConfig, makeKey, makeTempDir, paths,
	postJson, rawSession, removeTempDir, startDaemon, stopCleanly, suiteDaemon, tappedStdioUpstream, upstreamSaw } from './lib.mjs';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const SERVER = 2, CLIENT = 3, STATUS_ERROR = 2;

/**
 * An OTLP/HTTP receiver: POST /v1/traces (http/protobuf), every span flattened. refuse: the
 * answers to give first, e.g. [{ status: 503, retryAfter: 1 }, { status: 429 }].
 */
async function startReceiver({ refuse = [] } = {}) {
	const spans = [], requests = [];
	const srv = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			requests.push({ url: req.url, headers: req.headers, at: Date.now() });
			const no = refuse.shift();
			if (no) {
				res.writeHead(no.status, no.retryAfter ? { 'Retry-After': String(no.retryAfter) } : {});
				res.end();
				return;
			}
			const msg = ExportTraceServiceRequest.decode(Buffer.concat(chunks));
			for (const rs of msg.resourceSpans) {
				const resource = attrs(rs.resource?.attributes);
				for (const ss of rs.scopeSpans)
					for (const s of ss.spans)
						spans.push({
							traceId: Buffer.from(s.traceId).toString('hex'),
							spanId: Buffer.from(s.spanId).toString('hex'),
							parentSpanId: Buffer.from(s.parentSpanId ?? []).toString('hex'),
							traceState: s.traceState,
							name: s.name, kind: s.kind,
							start: BigInt(s.startTimeUnixNano.toString()),
							end: BigInt(s.endTimeUnixNano.toString()),
							attributes: attrs(s.attributes),
							status: s.status ?? {}, resource, scope: ss.scope?.name,
						});
			}
			res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
			res.end();
		});
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return { url: `http://127.0.0.1:${srv.address().port}`, spans, requests,
		stop: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
}

function attrs(list = []) {
	const o = {};
	for (const kv of list) {
		const v = kv.value ?? {};
		o[kv.key] = v.stringValue ?? (v.intValue != null ? Number(v.intValue.toString()) : v.boolValue);
	}
	return o;
}

/** An HTTP MCP server (stateful sessions) with one tool; records each tools/call's context. */
async function startHttpUpstream() {
	const seen = [];	// { header, tracestate, meta } per tools/call
	const sessions = new Map();
	const newServer = () => {
		const s = new McpServer({ name: 'traced-upstream', version: '1.0.0' });
		s.tool('echo', 'Echoes its text', { text: z.string() },
			async ({ text }) => ({ content: [{ type: 'text', text }] }));
		return s;
	};
	const srv = http.createServer(async (req, res) => {
		const chunks = [];
		for await (const c of req)
			chunks.push(c);
		const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
		if (body?.method === 'tools/call')
			seen.push({ header: req.headers.traceparent, tracestate: req.headers.tracestate,
				meta: body.params?._meta });
		const sid = req.headers['mcp-session-id'];
		let t = sid && sessions.get(sid);
		if (!t && req.method === 'POST' && isInitializeRequest(body)) {
			t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(),
				onsessioninitialized: (id) => sessions.set(id, t) });
			await newServer().connect(t);
		}
		if (!t) {
			res.writeHead(req.method === 'POST' ? 404 : 405).end();
			return;
		}
		await t.handleRequest(req, res, body);
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return { url: `http://127.0.0.1:${srv.address().port}/mcp`, port: srv.address().port, seen,
		stop: async () => {
			for (const t of sessions.values())
				await t.close().catch(() => {});
			srv.closeAllConnections();
			await new Promise((r) => srv.close(r));
		} };
}

const hex = (n) => randomBytes(n).toString('hex');
const traceparent = (trace, span, flags = '01') => `00-${trace}-${span}-${flags}`;

async function metrics(d, token) {
	const r = await fetch(`${d.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
	assert.equal(r.status, 200);
	const text = await r.text();
	const get = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1]);
	return { exported: get('mcpwarden_trace_spans_exported_total'),
		dropped: get('mcpwarden_trace_spans_dropped_total'),
		errors: get('mcpwarden_trace_export_errors_total') };
}

const until = (fn, what, ms = 10000) => eventually(fn, { what, ms, every: 50 });

describe('tracing: OTLP export configured by the environment', { timeout: 90000 }, () => {
	const keys = { full: makeKey(), narrow: makeKey() };
	const adminToken = hex(16);
	let recv, up, d, dir, tapLog;
	const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
	const spansOf = (trace) => recv.spans.filter((s) => s.traceId === trace);

	before(async () => {
		recv = await startReceiver();
		up = await startHttpUpstream();
		dir = makeTempDir('mcpwarden-tracing-');
		tapLog = join(dir, 'local.log');
		d = await startDaemon({
			listen: '127.0.0.1:0', prefix: 'auto',
			admin: { listen: '127.0.0.1:0', token: adminToken },
			upstreams: [
				{ name: 'web', transport: 'http', url: up.url },
				tappedStdioUpstream('local', paths.fixture, ['--stdio'], tapLog),
			],
			keys: [{ id: 'full', hash: keys.full.hash, policy: 'all', team: 'ops' },
				{ id: 'narrow', hash: keys.narrow.hash, policy: 'web-only' }],
			teams: [{ name: 'ops', policy: 'all' }],
			policies: { all: { tools: { allow: ['*/*'] } },
				'web-only': { tools: { allow: ['web/*'] } } },
		}, { env: {
			OTEL_EXPORTER_OTLP_ENDPOINT: `${recv.url}/`,
			OTEL_EXPORTER_OTLP_HEADERS: 'x-otlp-token=s3cret%20value,x-other = two',
			OTEL_SERVICE_NAME: 'warden-under-test',
			OTEL_BSP_SCHEDULE_DELAY: '50',
			OTEL_TRACES_SAMPLER: 'parentbased_always_on',
		} });
		await d.waitForUpstreams(['web', 'local']);
	});

	after(async () => {
		await stopCleanly(d);
		await up?.stop();
		await recv?.stop();
		removeTempDir(dir);
	});

	test('agent traceparent header -> server span -> client span -> HTTP upstream header', async () => {
		const trace = hex(16), parent = hex(8);
		const c = await connectHttp(d.url, { headers: { ...bearer(keys.full),
			traceparent: traceparent(trace, parent), tracestate: 'vendor=abc' } });
		try {
			const r = await c.client.callTool({ name: 'web__echo', arguments: { text: 'hi' } });
			assert.equal(r.content[0].text, 'hi');
			const server = await until(() => spansOf(trace).find((s) =>
				s.kind === SERVER && s.name === 'tools/call web__echo'), 'the server span');
			const client = await until(() => spansOf(trace).find((s) =>
				s.kind === CLIENT && s.parentSpanId === server.spanId), 'the client span');
			// parent/child: the agent's span -> ours (SERVER) -> ours (CLIENT)
			assert.equal(server.parentSpanId, parent);
			assert.equal(server.traceState, 'vendor=abc');
			assert.equal(client.name, 'tools/call echo');
			assert.ok(server.start <= client.start && client.end <= server.end, 'client inside server');
			const a = server.attributes;
			assert.equal(a['mcp.method.name'], 'tools/call');
			assert.equal(a['gen_ai.tool.name'], 'web__echo');
			assert.equal(a['gen_ai.operation.name'], 'execute_tool');
			assert.match(a['jsonrpc.request.id'], /^\d+$/);
			assert.equal(a['mcp.session.id'], c.sessionId.slice(0, 8));
			assert.match(a['mcp.protocol.version'], /^\d{4}-\d\d-\d\d$/);
			assert.equal(a['network.transport'], 'tcp');
			assert.equal(a['client.address'], '127.0.0.1');
			assert.equal(a['mcpwarden.key.id'], 'full');
			assert.equal(a['mcpwarden.team'], 'ops');
			assert.equal(a['mcpwarden.decision'], 'allow');
			assert.equal(a['mcpwarden.server'], 'web');
			assert.equal(a['error.type'], undefined);
			for (const v of Object.values(a))
				assert.ok(!String(v).includes(keys.full.key), 'no key in a span');
			const b = client.attributes;
			assert.equal(b['mcp.method.name'], 'tools/call');
			assert.equal(b['gen_ai.tool.name'], 'echo');
			assert.equal(b['server.address'], '127.0.0.1');
			assert.equal(b['server.port'], up.port);
			assert.equal(b['network.transport'], 'tcp');
			assert.equal(b['mcpwarden.upstream'], 'web');
			assert.match(b['jsonrpc.request.id'], /^\d+$/);
			// what the upstream received: the client span's context, as a header and in _meta
			const expected = traceparent(trace, client.spanId);
			const got = up.seen.at(-1);
			assert.equal(got.header, expected);
			assert.equal(got.meta?.traceparent, expected);
			assert.equal(got.tracestate, 'vendor=abc');
			// the decision record names the trace
			const rec = await d.waitForRecord((x) => x.type === 'decision' && x.trace_id === trace);
			assert.equal(rec.target, 'web__echo');
			// initialize, answered by the gateway itself, has its SERVER span in the same trace
			const init = await until(() => spansOf(trace).find((s) =>
				s.kind === SERVER && s.name === 'initialize'), 'the initialize span');
			assert.equal(init.parentSpanId, parent);
			assert.equal(init.attributes['mcp.method.name'], 'initialize');
			assert.equal(init.attributes['mcp.session.id'], c.sessionId.slice(0, 8));
			assert.match(init.attributes['mcp.protocol.version'], /^\d{4}-\d\d-\d\d$/);
			assert.equal(init.attributes['mcpwarden.key.id'], 'full');
			assert.equal(init.attributes['client.address'], '127.0.0.1');
			assert.ok(init.attributes['jsonrpc.request.id'] !== undefined, 'the request id');
			assert.equal(init.attributes['error.type'], undefined);
			assert.ok(init.end <= server.start, 'initialize ends before the call starts');
			// resource and scope
			assert.equal(server.resource['service.name'], 'warden-under-test');
			assert.equal(server.scope, 'mcpwarden');
		} finally {
			await c.close();
		}
	});

	test('the exporter speaks http/protobuf to <endpoint>/v1/traces with the configured headers', async () => {
		await until(() => recv.requests.length > 0, 'an export');
		const r = recv.requests[0];
		assert.equal(r.url, '/v1/traces');
		assert.equal(r.headers['content-type'], 'application/x-protobuf');
		assert.equal(r.headers['x-otlp-token'], 's3cret value');
		assert.equal(r.headers['x-other'], 'two');
		assert.ok(!d.stderrLines.some((l) => l.includes('s3cret')), 'header values never logged');
		const m = await until(async () => {
			const x = await metrics(d, adminToken);
			return x.exported > 0 && x;
		}, 'exported spans in /metrics');
		assert.equal(m.dropped, 0);
		assert.equal(m.errors, 0);
	});

	test('params._meta.traceparent starts the span when there is no header; stdio upstream gets _meta', async () => {
		const s = await rawSession(d.url, bearer(keys.full));
		const trace = hex(16), parent = hex(8);
		const r = await s.post({ jsonrpc: '2.0', id: 'call-7', method: 'tools/call',
			params: { name: 'local__test_simple_text', arguments: {},
				_meta: { traceparent: traceparent(trace, parent), tracestate: 'k=v' } } });
		assert.equal(r.status, 200);
		const server = await until(() => spansOf(trace).find((x) => x.kind === SERVER),
			'the server span');
		assert.equal(server.parentSpanId, parent);
		assert.equal(server.name, 'tools/call local__test_simple_text');
		assert.equal(server.attributes['jsonrpc.request.id'], 'call-7');
		const client = await until(() => spansOf(trace).find((x) => x.kind === CLIENT),
			'the client span');
		assert.equal(client.parentSpanId, server.spanId);
		assert.equal(client.attributes['network.transport'], 'pipe');
		assert.equal(client.attributes['server.address'], undefined);
		const sent = upstreamSaw(tapLog).filter((m) => m.method === 'tools/call').at(-1);
		assert.equal(sent.params._meta.traceparent, traceparent(trace, client.spanId));
		assert.equal(sent.params._meta.tracestate, 'k=v');
	});

	test('the header wins over _meta; an invalid traceparent starts a new trace', async () => {
		const s = await rawSession(d.url, bearer(keys.full));
		const [t1, t2] = [hex(16), hex(16)];
		await postJson(d.url, { jsonrpc: '2.0', id: 1, method: 'tools/call',
			params: { name: 'web__echo', arguments: { text: 'a' },
				_meta: { traceparent: traceparent(t2, hex(8)) } } },
		{ ...s.headers, traceparent: traceparent(t1, hex(8)) });
		await until(() => spansOf(t1).find((x) => x.kind === SERVER), 'the header\'s trace');
		assert.equal(spansOf(t2).length, 0);
		for (const bad of [traceparent(t2.toUpperCase(), hex(8)), traceparent('0'.repeat(32), hex(8)),
			`ff-${t2}-${hex(8)}-01`, 'garbage']) {
			const before = recv.spans.length;
			const r = await postJson(d.url, { jsonrpc: '2.0', id: 2, method: 'tools/call',
				params: { name: 'web__echo', arguments: { text: bad } } },
			{ ...s.headers, traceparent: bad });
			assert.equal(r.status, 200, bad);
			const server = await until(() => recv.spans.slice(before).find((x) =>
				x.kind === SERVER && x.name === 'tools/call web__echo'), `a span for ${bad}`);
			assert.equal(server.parentSpanId, '', `${bad}: a root span`);
			assert.notEqual(server.traceId, t2.toLowerCase());
			assert.notEqual(server.traceId, '0'.repeat(32));
		}
	});

	test('a denied call\'s span has error.type and status ERROR, and no client span', async () => {
		const c = await connectHttp(d.url, { headers: bearer(keys.narrow) });
		const trace = hex(16);
		try {
			const s = await rawSession(d.url, bearer(keys.narrow));
			const r = await s.post({ jsonrpc: '2.0', id: 5, method: 'tools/call',
				params: { name: 'local__test_simple_text', arguments: {},
					_meta: { traceparent: traceparent(trace, hex(8)) } } });
			const err = (r.json ?? JSON.parse(r.text.split('data: ')[1])).error;
			assert.ok(err, 'refused');
			const server = await until(() => spansOf(trace).find((x) => x.kind === SERVER),
				'the denied call\'s span');
			assert.equal(server.attributes['error.type'], String(err.code));
			assert.equal(server.attributes['rpc.response.status_code'], String(err.code));
			assert.equal(server.attributes['mcpwarden.decision'], 'deny');
			assert.equal(server.attributes['mcpwarden.key.id'], 'narrow');
			assert.equal(server.status.code, STATUS_ERROR);
			assert.equal(server.status.message, err.message);
			await new Promise((res) => setTimeout(res, 200));
			assert.equal(spansOf(trace).filter((x) => x.kind === CLIENT).length, 0);
		} finally {
			await c.close();
		}
	});

	test('a tool result with isError is error.type tool_error on both spans', async () => {
		const s = await rawSession(d.url, bearer(keys.full));
		const trace = hex(16);
		await s.post({ jsonrpc: '2.0', id: 9, method: 'tools/call',
			params: { name: 'local__test_error_handling', arguments: {},
				_meta: { traceparent: traceparent(trace, hex(8)) } } });
		const both = await until(() => {
			const x = spansOf(trace);
			return x.length >= 2 && x;
		}, 'both spans');
		for (const sp of both)
			assert.equal(sp.attributes['error.type'], 'tool_error', sp.name);
	});
});

describe('tracing: a dead collector costs spans, never calls', { timeout: 60000 }, () => {
	const adminToken = hex(16);
	let port;
	const d = suiteDaemon(async () => {
		port = await freePort();
		return gatewayConfig([fixtureStdioUpstream('local')], {
			admin: { listen: '127.0.0.1:0', token: adminToken },
			tracing: { endpoint: `http://127.0.0.1:${port}`, service_name: 'dead-end',
				batch_delay_ms: 20, batch_size: 4, queue_size: 8, timeout_ms: 300 },
		});
	}, { env: { OTEL_TRACES_SAMPLER: 'sometimes' },  // a warning, not a refusal to start
		ready: true, checked: true });

	test('calls succeed while spans are dropped and counted', async () => {
		const s = await rawSession(d.url);
		const t0 = Date.now();
		for (let i = 0; i < 40; i++) {
			const r = await s.post({ jsonrpc: '2.0', id: i, method: 'tools/call',
				params: { name: 'test_simple_text', arguments: {} } });
			assert.equal(r.status, 200);
			assert.ok(/"result"/.test(r.text), `call ${i} answered`);
		}
		assert.ok(Date.now() - t0 < 20000, 'the calls did not wait for the collector');
		const m = await until(async () => {
			const x = await metrics(d, adminToken);
			return x.errors > 0 && x.dropped > 8 && x;
		}, 'drops and export errors in /metrics');
		assert.equal(m.exported, 0);
		// said once, not once per batch (the log line may trail the counters a little)
		const said = await until(() => {
			const x = d.stderrLines.filter((l) => l.includes('tracing: export to'));
			return x.length && x;
		}, 'the failing export in the log');
		assert.equal(said.length, 1, said.join('\n'));
		assert.match(said[0], new RegExp(`http://127\\.0\\.0\\.1:${port}/v1/traces failed`));
		assert.ok(d.stderrLines.some((l) =>
			/warn: tracing: OTEL_TRACES_SAMPLER: unknown sampler sometimes \(ignored\)/.test(l)));
	});
});

describe('tracing: the file\'s section, and a reload that changes it', { timeout: 60000 }, () => {
	let a, b;
	const d = suiteDaemon(async () => {
		[a, b] = [await startReceiver(), await startReceiver()];
		return gatewayConfig([fixtureStdioUpstream('local')], {
			tracing: { endpoint: a.url, service_name: 'first', batch_delay_ms: 20,
				headers: { authorization: { env: 'TRACE_TEST_TOKEN' } } },
		});
	}, { env: { TRACE_TEST_TOKEN: 'Bearer from-env' }, ready: true, checked: true });
	after(async () => {
		await a?.stop();
		await b?.stop();
	});

	const call = async (trace) => {
		const s = await rawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 1, method: 'tools/call',
			params: { name: 'test_simple_text', arguments: {},
				_meta: { traceparent: traceparent(trace, hex(8)) } } });
		assert.equal(r.status, 200);
	};

	test('spans go where the file says, with its headers; SIGHUP moves them', async () => {
		const t1 = hex(16);
		await call(t1);
		await until(() => a.spans.some((s) => s.traceId === t1), 'spans at the first receiver');
		assert.equal(a.requests[0].headers.authorization, 'Bearer from-env');
		assert.equal(a.spans.find((s) => s.traceId === t1).resource['service.name'], 'first');

		const cfg = JSON.parse(readFileSync(d.configPath, 'utf8'));
		cfg.tracing = { endpoint: b.url, service_name: 'second', batch_delay_ms: 20 };
		writeFileSync(d.configPath, JSON.stringify(cfg));
		const from = d.stderrLines.length;
		d.proc.kill('SIGHUP');
		await until(() => d.stderrLines.slice(from).some((l) => /configuration reloaded/.test(l)),
			'the reload');
		await d.waitForUpstreams(['local'], 20000, from);
		const t2 = hex(16), seenA = a.spans.length;
		await call(t2);
		await until(() => b.spans.some((s) => s.traceId === t2), 'spans at the second receiver');
		assert.equal(b.spans.find((s) => s.traceId === t2).resource['service.name'], 'second');
		assert.equal(b.requests[0].headers.authorization, undefined);
		assert.equal(a.spans.slice(seenA).filter((s) => s.traceId === t2).length, 0);
	});
});

describe('tracing: a collector that asks to wait (503 Retry-After, 429) gets the batch again', { timeout: 60000 }, () => {
	let recv;
	const d = suiteDaemon(async () => {
		recv = await startReceiver({ refuse: [{ status: 503, retryAfter: 1 }, { status: 429 }] });
		return gatewayConfig([fixtureStdioUpstream('local')], {
			tracing: { endpoint: recv.url, batch_delay_ms: 20 },
		});
	}, { ready: true, checked: true });
	after(() => recv?.stop());

	test('the spans arrive on the third request, Retry-After honoured', async () => {
		const s = await rawSession(d.url);
		const trace = hex(16);
		await s.post({ jsonrpc: '2.0', id: 1, method: 'tools/call',
			params: { name: 'test_simple_text', arguments: {},
				_meta: { traceparent: traceparent(trace, hex(8)) } } });
		await until(() => recv.spans.some((x) => x.traceId === trace), 'the retried spans');
		const r = recv.requests;
		assert.ok(r.length >= 3);
		assert.ok(r[1].at - r[0].at >= 900, `waited ${r[1].at - r[0].at} ms after 503 Retry-After: 1`);
		assert.ok(!d.stderrLines.some((l) => l.includes('tracing: export to')), 'no export failed for good');
	});
});

