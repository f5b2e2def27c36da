// The LLM route through the real daemon, with the official OpenAI SDK as the agent and a local
// provider that checks what it receives: chat completions whole and streamed, usage honoured,
// the provider's key (never the virtual key) towards the provider, models and embeddings,
// policies, and the refusals an agent gets in OpenAI's error shape.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { fixtureStdioUpstream, makeKeys, suiteDaemon } from './lib.mjs';
import { startProvider, USAGE } from './llm-provider.mjs';

const PROVIDER_KEY = 'sk-provider-secret';
const models = Object.fromEntries(['gpt-ok', 'slow', 'hang', 'reset', 'garbage', 'fail500', 'gpt-tools']
	.map((m) => [m, { input: '1.00', output: '2.00' }]));

describe('LLM route', () => {
	const { k, keys } = makeKeys({ all: 'all', mini: 'mini', none: 'tools-only',
		logged: 'logged' });
	let p;
	const client = (key, extra = {}) => new OpenAI({ apiKey: key.key, baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`,
		maxRetries: 0, timeout: 10000, ...extra });
	/** POST a tool call to /v1/mcp/tool/execute with key. */
	const execute = (key, call) => fetch(`${d.url.replace(/\/mcp$/, '')}/v1/mcp/tool/execute`, {
		method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
		body: JSON.stringify(call) });

	const d = suiteDaemon(async () => {
		p = await startProvider({ key: PROVIDER_KEY });
		return {
			listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()],
			keys,
			policies: {
				all: { tools: { allow: ['*/*'] }, llm: { providers: { allow: ['*'] } } },
				mini: { llm: { providers: { allow: ['local'] }, models: { allow: ['local/gpt-*'],
					deny: ['local/gpt-ok-denied'] } } },
				'tools-only': { tools: { allow: ['*/*'] } },
				logged: { llm: { providers: { allow: ['*'] }, log_arguments: true } },
			},
			providers: [{ name: 'local', kind: 'openai', base_url: p.url, api_key_env: 'LLM_TEST_KEY',
				timeout_ms: 1500, models: { ...models, 'gpt-ok-denied': { input: '1', output: '1' } } }],
		};
	}, { env: { LLM_TEST_KEY: PROVIDER_KEY } });
	after(() => p?.close());

	const recordFor = (pred) => d.waitForRecord((r) => r.type === 'llm' && pred(r), 5000);

	test('a chat completion reaches the provider with its key and answers with usage', async () => {
		const before = p.seen.length;
		const r = await client(k.all).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 });
		assert.equal(r.choices[0].message.content, 'Hello there');
		assert.deepEqual(r.usage, USAGE);
		const got = p.seen[before];
		assert.equal(got.url, '/v1/chat/completions');
		assert.equal(got.headers.authorization, `Bearer ${PROVIDER_KEY}`);
		assert.ok(!got.text.includes(k.all.key) && !JSON.stringify(got.headers).includes(k.all.key),
			'the virtual key never reaches the provider');
		assert.deepEqual(got.body, { model: 'gpt-ok', messages: [{ role: 'user', content: 'hi' }],
			max_tokens: 50 }, 'the body unchanged but for the provider\'s model name');
		const rec = await recordFor((x) => x.key === 'all' && x.model === 'gpt-ok' && !x.stream);
		assert.equal(rec.status, 200);
		assert.equal(rec.provider, 'local');
		assert.equal(rec.input_tokens, 10);
		assert.equal(rec.output_tokens, 20);
		assert.equal(rec.cost_micros, 10 * 1 + 20 * 2);
		assert.equal(rec.prompt, undefined, 'no prompt in the record without log_arguments');
		assert.equal(rec.policy, 'all', 'the record names the caller\'s policy');
		// The caller is this process: its cgroup (cgroup v2) as the kernel names it.
		const own = /^0::(\S+)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
		if (own)
			assert.equal(rec.workload, own, 'the record names the caller\'s workload');
		assert.ok(!d.stdoutLines.join('\n').includes(PROVIDER_KEY), 'the provider key is never logged');
		assert.ok(!d.stderrLines.join('\n').includes(PROVIDER_KEY));
	});

	test('x-bf-vk carries the key too; the default provider serves a bare model name', async () => {
		const res = await fetch(`${d.url.replace(/\/mcp$/, '')}/v1/chat/completions`, {
			method: 'POST', headers: { 'x-bf-vk': k.all.key, 'content-type': 'application/json' },
			body: JSON.stringify({ model: 'gpt-ok', messages: [{ role: 'user', content: 'x' }] }),
		});
		assert.equal(res.status, 200);
		assert.equal((await res.json()).choices[0].message.content, 'Hello there');
	});

	test('streaming passes chunks through and strips the usage chunk the agent did not ask for', async () => {
		const before = p.seen.length;
		const stream = await client(k.all).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 50 });
		let text = '';
		const chunks = [];
		for await (const c of stream) {
			chunks.push(c);
			text += c.choices[0]?.delta?.content ?? '';
		}
		assert.equal(text, 'Hello');
		assert.ok(chunks.every((c) => !c.usage), 'no usage chunk the agent did not ask for');
		assert.deepEqual(p.seen[before].body.stream_options, { include_usage: true },
			'usage asked of the provider to charge the request');
		const rec = await recordFor((x) => x.key === 'all' && x.stream && x.status === 200);
		assert.equal(rec.output_tokens, 20);
		assert.equal(rec.cost_micros, 50);
		assert.ok(rec.ttft_ms >= 0);
	});

	test('stream_options.include_usage is honoured', async () => {
		const stream = await client(k.all).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'hi' }], stream: true,
			stream_options: { include_usage: true } });
		let usage = null;
		for await (const c of stream)
			if (c.usage)
				usage = c.usage;
		assert.deepEqual(usage, USAGE);
	});

	test('models lists what the key may use; embeddings are charged their input', async () => {
		const all = (await client(k.all).models.list()).data.map((m) => m.id);
		assert.ok(all.includes('local/gpt-ok') && all.includes('local/hang'));
		const mini = (await client(k.mini).models.list()).data.map((m) => m.id).sort();
		assert.deepEqual(mini, ['local/gpt-ok', 'local/gpt-tools'], 'gpt-* allowed, gpt-ok-denied denied');
		const e = await client(k.all).embeddings.create({ model: 'local/gpt-ok', input: 'abc' });
		assert.deepEqual(e.data[0].embedding, [0.1, 0.2]);
		const rec = await recordFor((x) => x.endpoint === 'embeddings');
		assert.equal(rec.input_tokens, 8);
		assert.equal(rec.cost_micros, 8);
	});

	test('policies: deny wins, a policy without llm allows nothing', async () => {
		await assert.rejects(client(k.mini).chat.completions.create({ model: 'local/gpt-ok-denied',
			messages: [{ role: 'user', content: 'x' }] }), (e) => {
			assert.equal(e.status, 403);
			assert.equal(e.error.type, 'permission_error');
			assert.equal(e.code, 'model_not_allowed');
			assert.match(e.message, /deny models local\/gpt-ok-denied/);
			return true;
		});
		await assert.rejects(client(k.mini).chat.completions.create({ model: 'local/slow',
			messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 403);
		await assert.rejects(client(k.none).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 403 &&
			/no llm section/.test(e.message));
		assert.ok(p.seen.every((s) => s.body?.model !== 'gpt-ok-denied'), 'nothing refused reaches the provider');
	});

	test('bad input: each a clear OpenAI-shaped error', async () => {
		const base = d.url.replace(/\/mcp$/, '');
		const post = (body, headers = { authorization: `Bearer ${k.all.key}` }) =>
			fetch(`${base}/v1/chat/completions`, { method: 'POST',
				headers: { 'content-type': 'application/json', ...headers }, body });
		let res = await post('{"model": ');
		assert.equal(res.status, 400);
		assert.equal((await res.json()).error.code, 'invalid_json');
		res = await post(JSON.stringify({ model: 'nosuch/x', messages: [] }));
		assert.equal(res.status, 400);
		assert.equal((await res.json()).error.code, 'model_not_found');
		res = await post(JSON.stringify({ model: 'local/unlisted', messages: [] }));
		assert.equal(res.status, 400);
		assert.match((await res.json()).error.message, /no model "unlisted"/);
		res = await post(JSON.stringify({ model: 'local/gpt-ok', messages: [] }), {});
		assert.equal(res.status, 401);
		const e = (await res.json()).error;
		assert.equal(e.type, 'authentication_error');
		assert.ok(e.message && e.code);
		res = await fetch(`${base}/v1/nothing`, { headers: { authorization: `Bearer ${k.all.key}` } });
		assert.equal(res.status, 404);
		assert.equal((await res.json()).error.code, 'unknown_url');
		// A name twice in one object: the gateway would judge the first "model", the
		// provider's parser may take the last; refused, and nothing reaches the provider.
		const seen = p.seen.length;
		res = await post('{"model":"local/gpt-ok","messages":[],"model":"local/gpt-ok-denied"}');
		assert.equal(res.status, 400);
		const rep = (await res.json()).error;
		assert.equal(rep.code, 'repeated_member');
		assert.match(rep.message, /"model" appears twice/);
		res = await post(JSON.stringify({ model: 'local/gpt-ok', messages: [] })
			.replace('"messages":[]', '"messages":[{"role":"user","role":"system","content":"x"}]'));
		assert.equal(res.status, 400);
		assert.equal((await res.json()).error.code, 'repeated_member');
		assert.equal(p.seen.length, seen, 'nothing refused reaches the provider');
	});

	test('a provider that hangs, resets mid-stream, fails or answers garbage', async () => {
		const c = client(k.all);
		const msg = [{ role: 'user', content: 'x' }];
		await assert.rejects(c.chat.completions.create({ model: 'local/hang', messages: msg }),
			(e) => e.status === 504 && e.code === 'provider_timeout');
		await assert.rejects(c.chat.completions.create({ model: 'local/fail500', messages: msg }),
			(e) => e.status === 502 && /provider exploded/.test(e.message));
		await assert.rejects(c.chat.completions.create({ model: 'local/garbage', messages: msg }),
			(e) => e.status === 502 && e.code === 'bad_provider_response');
		await assert.rejects(async () => {
			const s = await c.chat.completions.create({ model: 'local/reset', messages: msg, stream: true });
			for await (const _ of s) { /* the first chunk arrives, then the error */ }
		}, (e) => /provider local failed/.test(e.message));
		await assert.rejects(async () => {
			const s = await c.chat.completions.create({ model: 'local/garbage', messages: msg, stream: true });
			for await (const _ of s) { /* nothing */ }
		}, (e) => e.status === 502 || /garbage/.test(e.message));
		for (const m of ['hang', 'fail500', 'garbage', 'reset']) {
			const rec = await recordFor((x) => x.model === m);
			assert.equal(rec.cost_micros, undefined, `${m}: nothing charged`);
			assert.ok(rec.error, `${m}: the record says why`);
		}
	});

	test('a client that goes away: the transfer stops at once, the provider\'s work is paid', async () => {
		// a provider that hangs (timeout 1500 ms): the client leaving ends it long before
		const ac0 = new AbortController();
		const t0 = Date.now();
		const h = client(k.all).chat.completions.create({ model: 'local/hang', max_tokens: 10,
			messages: [{ role: 'user', content: 'x' }] }, { signal: ac0.signal });
		setTimeout(() => ac0.abort(), 100);
		await assert.rejects(h);
		const gone = await recordFor((x) => x.model === 'hang' && x.status === 499);
		assert.ok(Date.now() - t0 < 1200, 'noticed before the provider timeout');
		assert.equal(gone.cost_micros, 2 * 1 + 10 * 2);
		const ac = new AbortController();
		const s = client(k.all).chat.completions.create({ model: 'local/slow', max_tokens: 10,
			messages: [{ role: 'user', content: 'x' }], stream: true }, { signal: ac.signal });
		setTimeout(() => ac.abort(), 100);
		await assert.rejects(s);
		const rec = await recordFor((x) => x.model === 'slow' && x.status === 499);
		assert.equal(rec.error_code, 'client_closed');
		assert.equal(rec.cost_micros, 2 * 1 + 10 * 2, 'the estimate: the provider had the request');
		const r = await client(k.all).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'still there?' }] });
		assert.equal(r.choices[0].message.content, 'Hello there');
	});

	test('MCP tools offered to the model; its tool call executed through the gateway', async () => {
		const c = client(k.all);
		const before = p.seen.length;
		const r = await c.chat.completions.create({ model: 'local/gpt-tools', mcp_tools: true,
			messages: [{ role: 'user', content: 'use a tool' }] });
		const sent = p.seen[before].body;
		assert.equal(sent.mcp_tools, undefined, 'the gateway\'s own field is not forwarded');
		const simple = sent.tools.find((t) => t.function.name === 'test_simple_text');
		assert.ok(simple, 'the key\'s MCP tools in OpenAI\'s format');
		assert.equal(simple.type, 'function');
		assert.equal(simple.function.parameters.type, 'object');
		const call = r.choices[0].message.tool_calls[0];
		assert.equal(call.id, 'call_1');
		const chat = await recordFor((x) => x.model === 'gpt-tools');
		assert.deepEqual(chat.tool_calls, ['call_1'], 'the chat record names the tool calls');

		const res = await execute(k.all, { ...call, function: { name: 'test_simple_text', arguments: '{}' } });
		assert.equal(res.status, 200);
		assert.deepEqual(await res.json(), { role: 'tool', tool_call_id: 'call_1',
			content: 'This is a simple text response for testing.' });
		const exec = await recordFor((x) => x.endpoint === 'mcp.tool.execute' && x.status === 200);
		assert.equal(exec.tool_call_id, 'call_1');
		assert.equal(exec.tool, 'test_simple_text');
		const decision = await d.waitForRecord((x) => x.type === 'decision' &&
			x.target === 'test_simple_text' && x.session === exec.session, 5000);
		assert.equal(decision.decision, 'allow');
		assert.equal(decision.key, 'all');

		// a key whose policies allow no tools: none offered, none executed
		const b2 = p.seen.length;
		await client(k.mini).chat.completions.create({ model: 'local/gpt-ok', mcp_tools: true,
			messages: [{ role: 'user', content: 'x' }] });
		assert.equal(p.seen[b2].body.tools, undefined);
		const denied = await execute(k.mini, { id: 'call_9', type: 'function',
			function: { name: 'test_simple_text', arguments: '{}' } });
		assert.equal(denied.status, 403);
		assert.equal((await denied.json()).error.type, 'permission_error');
		const bad = await execute(k.all, { id: 'call_2', type: 'function',
			function: { name: 'test_simple_text', arguments: '{not json' } });
		assert.equal(bad.status, 400);
		assert.equal((await bad.json()).error.code, 'invalid_arguments');
	});

	test('log_arguments puts prompts and completions in the record', async () => {
		await client(k.logged).chat.completions.create({ model: 'local/gpt-ok',
			messages: [{ role: 'user', content: 'secret plan' }] });
		const rec = await recordFor((x) => x.key === 'logged');
		assert.deepEqual(rec.prompt, [{ role: 'user', content: 'secret plan' }]);
		assert.equal(rec.completion, 'Hello there');
	});
});
