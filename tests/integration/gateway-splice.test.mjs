// An HTTP upstream's tools/call answer relayed as its own text (docs/architecture.md, "the
// upstream's answer, spliced"): the agent gets what the upstream said; the record's
// result_bytes is the result's compact size; a policy that logs values still gets the result
// as a tree, redacted, never the raw text. And the agent's request forwarded as written: the
// upstream gets the agent's arguments byte for byte (compact) under the upstream's own tool
// name, and what the gateway must change (a progress token) still is.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connectHttp, gatewayConfig, httpUpstream, makeKey, makeTempDir, paths, postJson,
	rawSession, removeTempDir, responseOf, startDaemon, startEverythingHttp, startFixture,
	stopCleanly,
	suiteDaemon, tappedStdioUpstream, upstreamSaw } from './lib.mjs';
import { readFileSync } from 'node:fs';

const loud = makeKey();         // log_arguments, redact "text"
const quiet = makeKey();        // values never logged

describe('spliced upstream answers over Streamable HTTP', { timeout: 60000 }, () => {
	let srv;
	const d = suiteDaemon(async () => {
		srv = await startEverythingHttp();
		return gatewayConfig([httpUpstream(srv.url, 'everything')], {
			auth: { required: true },
			keys: [{ id: 'loud', hash: loud.hash, policy: 'loud' },
				{ id: 'quiet', hash: quiet.hash, policy: 'quiet' }],
			policies: {
				loud: { tools: { allow: ['*/*'] }, log_arguments: true, redact: ['text'] },
				quiet: { tools: { allow: ['*/*'] } },
			},
		});
	}, { ready: true, checked: true });
	after(() => srv?.stop());

	async function callAs(key, name, args) {
		const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${key.key}` } });
		try {
			return await c.client.callTool({ name, arguments: args });
		} finally {
			await c.close();
		}
	}

	test('the answer is the upstream\'s; result_bytes its compact size', async () => {
		const ref = await connectHttp(srv.url);
		try {
			const args = { a: 5, b: 8 };
			const direct = await ref.client.callTool({ name: 'get-sum', arguments: args });
			const got = await callAs(quiet, 'get-sum', args);
			assert.deepEqual(got, direct);
			const r = await d.waitForRecord((x) => x.type === 'decision' &&
				x.key === 'quiet' && x.target === 'get-sum');
			assert.equal(r.status, 'ok');
			assert.equal(r.result_bytes, JSON.stringify(direct).length);
			assert.equal(r.result, undefined, 'values only where the policy says');
		} finally {
			await ref.close();
		}
	});

	// The agent's arguments and the upstream's answer, each kept as its text, leave from
	// where they lie (base/jsonw.h's holes): more than a socket takes at once, escapes and
	// UTF-8 in them (echo: the answer is whole only if the arguments arrived whole).
	test('long arguments and a long answer arrive whole', async () => {
		const ref = await connectHttp(srv.url);
		try {
			const args = { message: 'Ünïcödé "quoted" \\ back\tslash\n line ✓ '.repeat(40000) };
			const direct = await ref.client.callTool({ name: 'echo', arguments: args });
			assert.ok(JSON.stringify(direct).length > 1000000);
			const got = await callAs(quiet, 'echo', args);
			assert.deepEqual(got, direct);
			const r = await d.waitForRecord((x) => x.type === 'decision' &&
				x.key === 'quiet' && x.target === 'echo');
			assert.equal(r.status, 'ok');
			assert.equal(r.result_bytes, Buffer.byteLength(JSON.stringify(direct)));
		} finally {
			await ref.close();
		}
	});

	test('a policy that logs values gets the result redacted', async () => {
		const got = await callAs(loud, 'get-sum', { a: 1, b: 2 });
		assert.match(got.content[0].text, /3/);
		const r = await d.waitForRecord((x) => x.type === 'decision' &&
			x.key === 'loud' && x.target === 'get-sum');
		assert.equal(r.status, 'ok');
		assert.ok(Array.isArray(r.result?.content), 'the result is recorded as a tree');
		assert.equal(r.result.content[0].text, '[redacted]');
		assert.equal(r.result.content[0].type, 'text');
	});
});

// Progress first, so the agent's answer is a stream: the long result still leaves from where
// it lies, as the event's data line (mcp/transport/front.c's write_event).
describe('a spliced answer streamed after progress', { timeout: 60000 }, () => {
	let fx;
	const d = suiteDaemon(async () => {
		fx = await startFixture();
		return gatewayConfig([httpUpstream(fx.url, 'fx')], { prefix: 'never' });
	}, { ready: true, checked: true });
	after(() => fx?.stop());

	async function callWithProgress(url, args) {
		const c = await connectHttp(url);
		try {
			const progress = [];
			const r = await c.client.callTool({ name: 'test_tool_with_progress', arguments: args },
				undefined, { onprogress: (p) => progress.push(p.progress) });
			return { r, progress };
		} finally {
			await c.close();
		}
	}

	test('the long answer arrives whole after the progress, the same as the upstream\'s',
		async () => {
			const args = { repeat: 20000 };
			const direct = await callWithProgress(fx.url, args);
			assert.ok(JSON.stringify(direct.r).length > 700000);
			const got = await callWithProgress(d.url, args);
			assert.deepEqual(got.progress, [0, 50, 100]);
			assert.deepEqual(got.r, direct.r);
			const short = await callWithProgress(d.url, {});     // copied, not a hole
			assert.equal(short.r.content[0].text, 'Tool with progress executed successfully');
		});
});

describe('tools/call requests forwarded as the agent wrote them', { timeout: 60000 }, () => {
	let dir, log, d, sess;
	before(async () => {
		dir = makeTempDir();
		log = join(dir, 'everything.log');
		d = await startDaemon(gatewayConfig([tappedStdioUpstream('everything',
			paths.bin.everything, ['stdio'], log)], { prefix: 'always' }));
		sess = await rawSession(d.url);
	});
	after(async () => {
		await stopCleanly(d);
		removeTempDir(dir);
	});

	/* The raw line of the n-th tools/call the upstream got. */
	function sawLine(n) {
		return readFileSync(log, 'utf8').split('\n').filter((l) => {
			try { return JSON.parse(l).method === 'tools/call'; } catch { return false; }
		})[n - 1];
	}

	test('the agent\'s arguments arrive byte for byte, under the upstream\'s name', async () => {
		const body = '{ "jsonrpc" : "2.0", "id" : "n1", "method" : "tools/call",\n' +
			' "params" : { "name" : "everything__get-sum",\n  "arguments" : ' +
			'{ "a" : 2.50, "b" : 1E2 } } }';
		const r = await postJson(d.url, body, sess.headers);
		const resp = responseOf(r);
		assert.equal(resp?.id, 'n1');
		assert.match(resp.result.content[0].text, /102\.5/);
		const line = sawLine(1);
		assert.ok(line, 'the upstream got the call');
		assert.ok(line.includes('"params":{"name":"get-sum","arguments":' +
			'{"a":2.50,"b":1E2}}'), line);
		const sent = JSON.parse(line);
		assert.equal(typeof sent.id, 'number', 'under the gateway\'s own id');
	});

	test('a progress token is still the gateway\'s, the arguments still the agent\'s',
		async () => {
			const r = await postJson(d.url, JSON.stringify({ jsonrpc: '2.0', id: 'n2',
				method: 'tools/call', params: { name: 'everything__get-sum',
					arguments: { a: 0.30000000000000004, b: 1 },
					_meta: { progressToken: 'agent-token' } } }), sess.headers);
			assert.equal(responseOf(r)?.id, 'n2');
			const sent = JSON.parse(sawLine(2));
			assert.equal(sent.params.name, 'get-sum');
			assert.equal(sent.params._meta.progressToken, sent.id);
			assert.deepEqual(sent.params.arguments, { a: 0.30000000000000004, b: 1 });
		});

	test('upstream saw only well-formed single-line messages', () => {
		const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
		assert.equal(upstreamSaw(log).length, lines.length);
	});
});
