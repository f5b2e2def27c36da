// The LLM route held to a key's limits: budgets reserved from an estimate and settled to the
// reported usage (concurrent requests never overspend, a refused or failed request costs
// nothing, charges survive kill -9), rate limits by requests and by tokens, /metrics per key
// and model, and the fallback to a second provider.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { fixtureStdioUpstream, makeKeys, makeTempDir, removeTempDir, startDaemon } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';

const TOKEN = randomBytes(24).toString('base64url');
const price = { input: '1.00', output: '2.00' };    // 1 and 2 micro-units a token
const msg = [{ role: 'user', content: 'x' }];       // ~2 tokens estimated: "user" + "x"

function micros(money) {
	const m = /^(\d+)\.(\d{1,6})$/.exec(money);
	assert.ok(m, `money "${money}"`);
	return Number(m[1]) * 1e6 + Number(m[2].padEnd(6, '0'));
}

async function usage(d, id) {
	const res = await fetch(`${d.adminUrl}/v1/usage?key=${id}`,
		{ headers: { authorization: `Bearer ${TOKEN}` } });
	assert.equal(res.status, 200);
	return (await res.json()).keys[0].budgets[0];
}

describe('LLM governance', () => {
	const { k, keys } = makeKeys({ budget: 'llm', rate: 'llm', tok: 'llm', fb: 'llm' });
	const state = makeTempDir('mcpwarden-llm-state-');
	let d, p, down;
	let config;
	const client = (key) => new OpenAI({ apiKey: key.key, baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`,
		maxRetries: 0, timeout: 10000 });

	before(async () => {
		p = await startProvider({ key: 'sk-a', delayMs: 400 });
		down = await startProvider({ key: 'sk-b' });
		await down.close();     // a provider that refuses connections
		config = {
			listen: '127.0.0.1:0', state_dir: state, upstreams: [fixtureStdioUpstream()],
			admin: { listen: '127.0.0.1:0', token: TOKEN },
			keys,
			policies: { llm: { llm: { providers: { allow: ['*'] } } } },
			budgets: { 'key:budget': [{ name: 'llm', limit: '0.001', period: 'monthly' }] },
			llm: {
				default_provider: 'main',
				rate_limits: { 'key:rate': { key: { requests: 2, per: 'hour' } } },
				token_limits: { 'key:tok': { key: { requests: 40, per: 'hour' } } },
			},
			providers: [
				{ name: 'main', base_url: p.url, api_key_env: 'KEY_A',
					models: { 'gpt-ok': price, slow: price, fail500: price, hang: price } },
				{ name: 'broken', base_url: down.url, api_key_env: 'KEY_B', fallback: 'main',
					timeout_ms: 2000, models: { 'gpt-ok': price } },
			],
		};
		d = await startDaemon(config, { env: { KEY_A: 'sk-a', KEY_B: 'sk-b' } });
	});
	after(async () => {
		await d?.stop();
		await p?.close();
		removeTempDir(state);
	});

	test('concurrent requests never overspend; refused and failed ones cost nothing', async () => {
		// Each reserves 2 (prompt) + 100 x 2 (max_tokens) = 202 and settles to 10 + 40 = 50.
		const c = client(k.budget);
		const results = await Promise.allSettled(Array.from({ length: 10 }, () =>
			c.chat.completions.create({ model: 'slow', messages: msg, max_tokens: 100 })));
		const ok = results.filter((r) => r.status === 'fulfilled');
		const refused = results.filter((r) => r.status === 'rejected');
		assert.equal(ok.length, 4, '4 x 202 fit in 1000, a fifth does not');
		for (const r of refused) {
			assert.equal(r.reason.status, 429);
			assert.equal(r.reason.error.type, 'insufficient_quota');
			assert.equal(r.reason.code, 'over_budget');
			assert.ok(Number(r.reason.headers.get('retry-after')) > 0);
		}
		let u = await usage(d, 'budget');
		assert.equal(micros(u.spent), 4 * 50, 'settled to the reported usage');
		assert.equal(u.reserved, '0.00');
		// a failed request releases its reservation
		await assert.rejects(c.chat.completions.create({ model: 'fail500', messages: msg,
			max_tokens: 100 }), (e) => e.status === 502);
		u = await usage(d, 'budget');
		assert.equal(micros(u.spent), 200, 'a failure costs nothing');
		assert.equal(u.reserved, '0.00');
		// what is left (800) still admits an estimate that fits, and refuses one that does not
		await assert.rejects(c.chat.completions.create({ model: 'gpt-ok', messages: msg,
			max_tokens: 500 }), (e) => e.status === 429 && /estimated at 0.001002/.test(e.message));
		await c.chat.completions.create({ model: 'gpt-ok', messages: msg, max_tokens: 300 });
		assert.equal(micros((await usage(d, 'budget')).spent), 250);
	});

	test('charges survive kill -9', async () => {
		d.proc.kill('SIGKILL');
		await d.exited;
		d = await startDaemon(config, { env: { KEY_A: 'sk-a', KEY_B: 'sk-b' } });
		const u = await usage(d, 'budget');
		assert.equal(micros(u.spent), 250);
	});

	test('rate limits by requests', async () => {
		const c = client(k.rate);
		await c.chat.completions.create({ model: 'gpt-ok', messages: msg });
		await c.chat.completions.create({ model: 'gpt-ok', messages: msg });
		await assert.rejects(c.chat.completions.create({ model: 'gpt-ok', messages: msg }), (e) => {
			assert.equal(e.status, 429);
			assert.equal(e.error.type, 'rate_limit_error');
			assert.ok(Number(e.headers.get('retry-after')) >= 1);
			return true;
		});
	});

	test('rate limits by tokens: usage is taken after the answer', async () => {
		const c = client(k.tok);
		// 40 tokens an hour; an answer uses 30: the first passes, the second is admitted
		// (10 left), the third finds the bucket empty
		await c.chat.completions.create({ model: 'gpt-ok', messages: msg });
		await c.chat.completions.create({ model: 'gpt-ok', messages: msg });
		await assert.rejects(c.chat.completions.create({ model: 'gpt-ok', messages: msg }),
			(e) => e.status === 429 && /tokens/.test(e.message));
	});

	test('a provider that cannot be reached falls back to the configured one', async () => {
		const before = p.seen.length;
		const r = await client(k.fb).chat.completions.create({ model: 'broken/gpt-ok', messages: msg });
		assert.equal(r.choices[0].message.content, 'Hello there');
		assert.equal(p.seen[before].headers.authorization, 'Bearer sk-a',
			'the fallback gets its own key, never the first provider\'s');
		const rec = await d.waitForRecord((x) => x.type === 'llm' && x.key === 'fb', 5000);
		assert.equal(rec.provider, 'main');
		assert.equal(rec.fallback_from, 'broken');
	});

	test('/metrics has tokens and cost per key and model', async () => {
		const res = await fetch(`${d.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
		const text = await res.text();
		assert.match(text, /mcpwarden_llm_input_tokens_total\{key="rate",model="main\/gpt-ok"\} 20/);
		assert.match(text, /mcpwarden_llm_output_tokens_total\{key="rate",model="main\/gpt-ok"\} 40/);
		assert.match(text, /mcpwarden_llm_cost_total\{key="rate",model="main\/gpt-ok"\} 0\.000100/);
	});
});
