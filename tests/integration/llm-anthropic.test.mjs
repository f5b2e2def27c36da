// The anthropic kind: chat completions from the OpenAI SDK translated to Anthropic's Messages
// API and back, whole and streamed, against a fixture that checks the Messages request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { fixtureStdioUpstream, makeKey, startDaemon } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';

describe('LLM route, anthropic kind', () => {
	const key = makeKey();
	let d, p;
	const client = () => new OpenAI({ apiKey: key.key, baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`,
		maxRetries: 0, timeout: 10000 });

	before(async () => {
		p = await startProvider({ key: 'sk-ant-test', kind: 'anthropic' });
		d = await startDaemon({
			listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()],
			keys: [{ id: 'a', hash: key.hash, policy: 'llm' }],
			policies: { llm: { llm: { providers: { allow: ['claude'] } } } },
			providers: [{ name: 'claude', kind: 'anthropic', base_url: p.url, api_key_env: 'ANT_KEY',
				models: { 'claude-x': { input: '3', output: '15' } } }],
		}, { env: { ANT_KEY: 'sk-ant-test' } });
	});
	after(async () => {
		await d?.stop();
		await p?.close();
	});

	test('a completion is translated to Messages and back', async () => {
		const r = await client().chat.completions.create({ model: 'claude/claude-x', max_tokens: 64,
			temperature: 0.5, stop: 'END',
			messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }] });
		assert.equal(r.choices[0].message.content, 'Hello there');
		assert.equal(r.choices[0].finish_reason, 'stop');
		assert.deepEqual(r.usage, { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 });
		const got = p.seen.at(-1);
		assert.equal(got.url, '/v1/messages');
		assert.equal(got.headers['x-api-key'], 'sk-ant-test');
		assert.equal(got.headers['anthropic-version'], '2023-06-01');
		assert.equal(got.headers.authorization, undefined);
		assert.deepEqual(got.body, { model: 'claude-x', max_tokens: 64, system: 'be brief',
			messages: [{ role: 'user', content: 'hi' }], temperature: 0.5, stop_sequences: ['END'] });
		const rec = await d.waitForRecord((x) => x.type === 'llm' && !x.stream, 5000);
		assert.equal(rec.cost_micros, 10 * 3 + 20 * 15);
	});

	test('a stream is translated event by event, usage included when asked', async () => {
		const s = await client().chat.completions.create({ model: 'claude-x',
			messages: [{ role: 'user', content: 'hi' }], stream: true,
			stream_options: { include_usage: true } });
		let text = '', finish = null, usage = null;
		for await (const c of s) {
			text += c.choices[0]?.delta?.content ?? '';
			finish = c.choices[0]?.finish_reason ?? finish;
			usage = c.usage ?? usage;
		}
		assert.equal(text, 'Hello');
		assert.equal(finish, 'stop');
		assert.deepEqual(usage, { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 });
		assert.equal(p.seen.at(-1).body.max_tokens, 4096, 'the default max_tokens, required by Messages');
		const rec = await d.waitForRecord((x) => x.type === 'llm' && x.stream, 5000);
		assert.equal(rec.output_tokens, 20);
	});
});
