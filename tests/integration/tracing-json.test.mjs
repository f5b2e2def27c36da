// OTLP http/json export through the real daemon (docs/tracing.md): a receiver here takes
// POST /v1/traces as JSON and checks each field against OTLP's JSON mapping (trace and span ids
// as lowercase hex, not base64; 64-bit integers as decimal strings; enums as numbers;
// lowerCamelCase names), then follows one trace from the agent's traceparent through the
// initialize and tools/call SERVER spans to the CLIENT span towards a stdio upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { eventually, fixtureStdioUpstream, gatewayConfig, rawSession, startDaemon, stopCleanly } from './lib.mjs';

const SERVER = 2, CLIENT = 3, STATUS_ERROR = 2;
const HEX32 = /^[0-9a-f]{32}$/, HEX16 = /^[0-9a-f]{16}$/, UINT64 = /^\d+$/;
const hex = (n) => randomBytes(n).toString('hex');

/** A KeyValue list per the mapping: string values as stringValue, integers as intValue strings. */
function attrs(list) {
	assert.ok(Array.isArray(list), 'attributes is an array');
	const o = {};
	for (const kv of list) {
		assert.equal(typeof kv.key, 'string');
		const v = kv.value;
		if ('intValue' in v) {
			assert.equal(typeof v.intValue, 'string', `${kv.key}: int64 as a string`);
			assert.match(v.intValue, /^-?\d+$/);
			o[kv.key] = Number(v.intValue);
		} else {
			assert.equal(typeof v.stringValue, 'string', `${kv.key}: stringValue`);
			o[kv.key] = v.stringValue;
		}
	}
	return o;
}

/** Checks one request body against the mapping and returns its spans, flattened. */
function spansOfBody(body) {
	const out = [];
	assert.ok(Array.isArray(body.resourceSpans), 'resourceSpans');
	for (const rs of body.resourceSpans) {
		const resource = attrs(rs.resource.attributes);
		for (const ss of rs.scopeSpans) {
			assert.equal(ss.scope.name, 'mcpwarden');
			for (const s of ss.spans) {
				assert.match(s.traceId, HEX32, 'traceId: 32 lowercase hex digits');
				assert.match(s.spanId, HEX16, 'spanId: 16 lowercase hex digits');
				if (s.parentSpanId !== undefined)
					assert.match(s.parentSpanId, HEX16, 'parentSpanId');
				assert.equal(typeof s.startTimeUnixNano, 'string', 'fixed64 as a string');
				assert.match(s.startTimeUnixNano, UINT64);
				assert.match(s.endTimeUnixNano, UINT64);
				assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
				assert.equal(typeof s.kind, 'number', 'an enum as its number');
				assert.equal(typeof s.flags, 'number');
				assert.equal(typeof s.name, 'string');
				out.push({ ...s, attributes: attrs(s.attributes ?? []), resource });
			}
		}
	}
	return out;
}

async function startJsonReceiver() {
	const spans = [], requests = [], problems = [];
	const srv = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			requests.push({ url: req.url, headers: req.headers });
			try {
				spans.push(...spansOfBody(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
			} catch (e) {
				problems.push(e);
			}
			res.writeHead(200, { 'Content-Type': 'application/json' });
			res.end('{}');
		});
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return { url: `http://127.0.0.1:${srv.address().port}`, spans, requests, problems,
		stop: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
}

const until = (fn, what, ms = 10000) => eventually(fn, { what, ms, every: 50 });

describe('tracing: OTLP http/json export', { timeout: 60000 }, () => {
	let recv, d;

	before(async () => {
		recv = await startJsonReceiver();
		d = await startDaemon(gatewayConfig([fixtureStdioUpstream('local')]), { env: {
			OTEL_EXPORTER_OTLP_ENDPOINT: recv.url,
			OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
			OTEL_SERVICE_NAME: 'json-warden',
			OTEL_BSP_SCHEDULE_DELAY: '50',
		} });
		await d.waitForUpstreams(['local']);
	});

	after(async () => {
		await stopCleanly(d);
		await recv?.stop();
	});

	test('initialize and tools/call spans arrive as OTLP JSON, in the agent\'s trace', async () => {
		const trace = hex(16), parent = hex(8);
		const s = await rawSession(d.url, { traceparent: `00-${trace}-${parent}-01` });
		const r = await s.post({ jsonrpc: '2.0', id: 7, method: 'tools/call',
			params: { name: 'test_simple_text', arguments: {} } });
		assert.equal(r.status, 200);
		const mine = () => recv.spans.filter((x) => x.traceId === trace);
		const all = await until(() => mine().length >= 3 && mine(), 'three spans');
		assert.deepEqual(recv.problems, [], 'every request follows the JSON mapping');
		assert.equal(recv.requests[0].url, '/v1/traces');
		assert.equal(recv.requests[0].headers['content-type'], 'application/json');

		const init = all.find((x) => x.name === 'initialize');
		assert.ok(init, 'an initialize span');
		assert.equal(init.kind, SERVER);
		assert.equal(init.parentSpanId, parent);
		assert.equal(init.attributes['mcp.method.name'], 'initialize');
		assert.equal(init.attributes['jsonrpc.request.id'], '0');
		assert.equal(init.attributes['mcp.session.id'], s.sessionId.slice(0, 8));
		assert.equal(init.attributes['client.address'], '127.0.0.1');
		assert.ok(Number.isInteger(init.attributes['client.port']) && init.attributes['client.port'] > 0,
			'client.port, an int64 attribute');

		const server = all.find((x) => x.kind === SERVER && x.name === 'tools/call test_simple_text');
		assert.ok(server, 'the call\'s server span');
		assert.equal(server.parentSpanId, parent);
		assert.equal(server.attributes['jsonrpc.request.id'], '7');
		assert.equal(server.attributes['mcpwarden.decision'], 'allow');
		const client = all.find((x) => x.kind === CLIENT);
		assert.ok(client, 'the client span');
		assert.equal(client.parentSpanId, server.spanId);
		assert.equal(client.attributes['network.transport'], 'pipe');
		assert.ok(BigInt(server.startTimeUnixNano) <= BigInt(client.startTimeUnixNano) &&
			BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano), 'client inside server');
		assert.equal(server.resource['service.name'], 'json-warden');
		// the upstream's trace context is the client span's (in _meta for stdio)
		const rec = await d.waitForRecord((x) => x.type === 'decision' && x.trace_id === trace);
		assert.equal(rec.target, 'test_simple_text');
	});

	test('a failed call\'s span carries status ERROR with its message', async () => {
		const trace = hex(16);
		const s = await rawSession(d.url);
		const r = await s.post({ jsonrpc: '2.0', id: 8, method: 'tools/call',
			params: { name: 'no_such_tool', arguments: {},
				_meta: { traceparent: `00-${trace}-${hex(8)}-01` } } });
		const err = (r.json ?? JSON.parse(r.text.split('data: ')[1])).error;
		assert.ok(err, 'an error answer');
		const server = await until(() => recv.spans.find((x) => x.traceId === trace), 'its span');
		assert.equal(server.status.code, STATUS_ERROR);
		assert.equal(server.status.message, err.message);
		assert.equal(server.attributes['error.type'], String(err.code));
		assert.deepEqual(recv.problems, []);
	});
});
