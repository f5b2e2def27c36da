// An HTTP upstream's tools/call answer relayed as its own text (docs/architecture.md, "the
// upstream's answer, spliced"): the agent gets what the upstream said; the record's
// result_bytes is the result's compact size; a policy that logs values still gets the result
// as a tree, redacted, never the raw text.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectHttp, gatewayConfig, httpUpstream, makeKey, startEverythingHttp,
	suiteDaemon } from './lib.mjs';

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
