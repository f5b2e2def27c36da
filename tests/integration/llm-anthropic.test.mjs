// The anthropic kind: chat completions from the OpenAI SDK translated to Anthropic's Messages
// API and back, whole and streamed, against a fixture that checks the Messages request.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { fixtureStdioUpstream, makeKey, suiteDaemon } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';

describe('LLM route, anthropic kind', () => {
	const key = makeKey();
	let p;
	const client = () => new OpenAI({ apiKey: key.key, baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`,
		maxRetries: 0, timeout: 10000 });

	const d = suiteDaemon(async () => {
		p = await startProvider({ key: 'sk-ant-test', kind: 'anthropic' });
		return {
			listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()],
			keys: [{ id: 'a', hash: key.hash, policy: 'llm' }],
			policies: { llm: { llm: { providers: { allow: ['claude'] } } } },
			providers: [{ name: 'claude', kind: 'anthropic', base_url: p.url, api_key_env: 'ANT_KEY',
				models: { 'claude-x': { input: '3', output: '15' } } }],
		};
	}, { env: { ANT_KEY: 'sk-ant-test' } });
	after(() => p?.close());

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

	const tools = [{ type: 'function', function: { name: 'get_weather', description: 'the weather',
		parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

	test('tools, tool calls and tool results are translated both ways', async () => {
		const r = await client().chat.completions.create({ model: 'claude-x', tools,
			tool_choice: 'required', messages: [
				{ role: 'user', content: 'weather in Oslo and Bergen?' },
				{ role: 'assistant', content: null, tool_calls: [
					{ id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
					{ id: 'toolu_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Bergen"}' } }] },
				{ role: 'tool', tool_call_id: 'toolu_a', content: 'rain' },
				{ role: 'tool', tool_call_id: 'toolu_b', content: 'more rain' }] });
		const got = p.seen.at(-1).body;
		assert.deepEqual(got.tools, [{ name: 'get_weather', description: 'the weather',
			input_schema: { type: 'object', properties: { city: { type: 'string' } } } }]);
		assert.deepEqual(got.tool_choice, { type: 'any' });
		assert.deepEqual(got.messages.slice(1), [
			{ role: 'assistant', content: [
				{ type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Oslo' } },
				{ type: 'tool_use', id: 'toolu_b', name: 'get_weather', input: { city: 'Bergen' } }] },
			{ role: 'user', content: [
				{ type: 'tool_result', tool_use_id: 'toolu_a', content: 'rain' },
				{ type: 'tool_result', tool_use_id: 'toolu_b', content: 'more rain' }] }]);
		const m = r.choices[0].message;
		assert.equal(r.choices[0].finish_reason, 'tool_calls');
		assert.equal(m.content, 'Let me check');
		assert.deepEqual(m.tool_calls, [{ id: 'toolu_1', type: 'function',
			function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);

		const s = await client().chat.completions.create({ model: 'claude-x', tools, stream: true,
			messages: [{ role: 'user', content: 'weather in Rome?' }] });
		const call = { id: '', name: '', arguments: '' };
		let finish = null;
		for await (const c of s) {
			for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
				call.id += tc.id ?? '';
				call.name += tc.function?.name ?? '';
				call.arguments += tc.function?.arguments ?? '';
			}
			finish = c.choices[0]?.finish_reason ?? finish;
		}
		assert.deepEqual(call, { id: 'toolu_2', name: 'get_weather', arguments: '{"city":"Rome"}' });
		assert.equal(finish, 'tool_calls');
		const rec = await d.waitForRecord((x) => x.type === 'llm' && x.tool_calls?.includes('toolu_2'), 5000);
		assert.equal(rec.stream, true);
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
