// The LLM route counted fleet-wide (docs/llm.md, docs/counters.md): two mcpwarden processes
// with "counters": {"backend": "redis"} share one key's budget, request rate limit and token
// limit on /v1/chat/completions through a real redis-server, against the stand-in provider,
// and never exceed them together; Redis unreachable refuses with 503 counters_unavailable
// (fail_closed); a request whose client leaves while Redis is slow holds nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { eventually, fixtureStdioUpstream, makeKeys, startDaemon, stopCleanly } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';
import { cli, redisSkip, redisSuite } from './redis-lib.mjs';

if (redisSkip)
	console.log(`# skipped: ${redisSkip}`);

const TOKEN = 'llm-fleet-admin-token';
const price = { input: '1.00', output: '2.00' };    // 1 and 2 micro-units a token
const msg = [{ role: 'user', content: 'x' }];       // ~2 tokens estimated

function micros(money) {
	const m = /^(\d+)\.(\d{1,6})$/.exec(money);
	assert.ok(m, `money "${money}"`);
	return Number(m[1]) * 1e6 + Number(m[2].padEnd(6, '0'));
}

redisSuite('the LLM route with counters in Redis', { prefix: 'mcpwarden-llm-redis-' }, (redis) => {
	const { k, keys } = makeKeys({ budget: 'llm', rate: 'llm', tok: 'llm', gone: 'llm',
		loc: 'llm', stream: 'llm', abort: 'llm' });
	let p, a, b;

	const config = (counters = {}) => ({
		listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()], keys,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		policies: { llm: { llm: { providers: { allow: ['*'] } } } },
		budgets: { 'key:budget': [{ name: 'llm', limit: '0.001', period: 'monthly' }],
			'key:gone': [{ name: 'llm', limit: '1.00', period: 'monthly' }],
			'key:loc': [{ name: 'llm', limit: '1.00', period: 'monthly' }],
			'key:stream': [{ name: 'llm', limit: '1.00', period: 'monthly' }],
			'key:abort': [{ name: 'llm', limit: '1.00', period: 'monthly' }] },
		llm: {
			default_provider: 'main',
			rate_limits: { 'key:rate': { key: { requests: 2, per: 'hour' } } },
			token_limits: { 'key:tok': { key: { requests: 40, per: 'hour' } } },
		},
		providers: [{ name: 'main', base_url: p.url, api_key_env: 'KEY_A',
			models: { 'gpt-ok': price, slow: price, hang: price } }],
		counters: { backend: 'redis', url: `redis://127.0.0.1:${redis.port}/0`,
			connect_timeout_ms: 300, command_timeout_ms: 500, ...counters },
	});
	const client = (d, key) => new OpenAI({ apiKey: key.key,
		baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`, maxRetries: 0, timeout: 10000 });
	const usage = async (d, id) => {
		const res = await fetch(`${d.adminUrl}/v1/usage?key=${id}`,
			{ headers: { authorization: `Bearer ${TOKEN}` } });
		assert.equal(res.status, 200);
		return (await res.json()).keys[0].budgets[0];
	};

	before(async () => {
		p = await startProvider({ key: 'sk-a', delayMs: 400 });
		a = await startDaemon(config(), { env: { KEY_A: 'sk-a' }, ready: true });
		redis.daemons.push(a);
		b = await startDaemon(config(), { env: { KEY_A: 'sk-a' }, ready: true });
		redis.daemons.push(b);
	});
	after(async () => {
		await p?.close();
	});

	test('two sidecars never spend past one key\'s budget together', async () => {
		// Each request reserves 2 + 100 x 2 = 202 and settles to 10 + 20 x 2 = 50: 4 fit in
		// 1000 while all are in flight, in the whole fleet (each sidecar alone would admit 4).
		const go = (d) => Array.from({ length: 6 }, () => client(d, k.budget).chat.completions
			.create({ model: 'slow', messages: msg, max_tokens: 100 }));
		const results = await Promise.allSettled([...go(a), ...go(b)]);
		const ok = results.filter((r) => r.status === 'fulfilled');
		assert.equal(ok.length, 4, 'four estimates fit in the fleet\'s budget');
		for (const r of results.filter((x) => x.status === 'rejected')) {
			assert.equal(r.reason.status, 429, String(r.reason));
			assert.equal(r.reason.code, 'over_budget');
			assert.match(r.reason.message, /key:budget/);
		}
		// both sidecars read the fleet's counter: settled to the reported usage, nothing held
		for (const d of [a, b]) {
			const u = await usage(d, 'budget');
			assert.equal(micros(u.spent), 4 * 50);
			assert.equal(u.reserved, '0.00');
		}
		// what is left (800) admits an estimate of 602 on b; then 750 is left for the fleet,
		// and a refuses one of 802
		await client(b, k.budget).chat.completions.create({ model: 'gpt-ok', messages: msg,
			max_tokens: 300 });
		await assert.rejects(client(a, k.budget).chat.completions.create({ model: 'gpt-ok',
			messages: msg, max_tokens: 400 }), (e) => e.status === 429 && e.code === 'over_budget'
			&& /has 0.00025 of 0.001 spent/.test(e.message));
		assert.equal(micros((await usage(a, 'budget')).spent), 250);
	});

	test('a request rate limit holds across sidecars', async () => {
		await client(a, k.rate).chat.completions.create({ model: 'gpt-ok', messages: msg });
		await client(b, k.rate).chat.completions.create({ model: 'gpt-ok', messages: msg });
		for (const d of [a, b])
			await assert.rejects(client(d, k.rate).chat.completions.create({ model: 'gpt-ok',
				messages: msg }), (e) => {
				assert.equal(e.status, 429);
				assert.equal(e.error.type, 'rate_limit_error');
				assert.match(e.message, /2 requests per hour/);
				assert.ok(Number(e.headers.get('retry-after')) >= 1);
				return true;
			});
	});

	test('a token limit is charged with the answer\'s tokens, fleet-wide', async () => {
		// 40 tokens an hour; an answer uses 30 (charged after it, in Redis): the first passes
		// on a, the second is admitted on b (10 left), then the bucket is empty on both
		await client(a, k.tok).chat.completions.create({ model: 'gpt-ok', messages: msg });
		await client(b, k.tok).chat.completions.create({ model: 'gpt-ok', messages: msg });
		for (const d of [a, b])
			await assert.rejects(client(d, k.tok).chat.completions.create({ model: 'gpt-ok',
				messages: msg }), (e) => e.status === 429 && /40 tokens per hour/.test(e.message));
		const t = Number(cli(redis.port, 'HGET', 'mcpwarden:{key:tok}:llm:tokens:key', 't'));
		assert.ok(t < 1, `tokens left ${t}`);
		// the LLM route's buckets are its own: the key's tool-call buckets are untouched
		assert.equal(cli(redis.port, 'EXISTS', 'mcpwarden:{key:tok}:r:key'), '0');
	});

	test('a streamed answer is charged its reported usage in Redis', async () => {
		const st = await client(a, k.stream).chat.completions.create({ model: 'gpt-ok',
			messages: msg, max_tokens: 100, stream: true });
		let text = '';
		for await (const c of st)
			text += c.choices[0]?.delta?.content ?? '';
		assert.ok(text.length > 0);
		const u = await usage(b, 'stream');
		assert.equal(micros(u.spent), 50);
		assert.equal(u.reserved, '0.00');
	});

	test('a client that leaves once the provider has its request pays the estimate', async () => {
		const ac = new AbortController();
		const seen = p.seen.length;
		const pending = client(a, k.abort).chat.completions.create({ model: 'hang',
			messages: msg, max_tokens: 100 }, { signal: ac.signal });
		await eventually(() => p.seen.length > seen, { what: 'the provider has it' });
		ac.abort();
		await assert.rejects(pending);
		await eventually(async () => micros((await usage(b, 'abort')).spent) === 202,
			{ what: 'the estimate charged in Redis' });
		assert.equal((await usage(b, 'abort')).reserved, '0.00');
	});

	test('a client that leaves while Redis is slow: nothing stays reserved', async () => {
		const seen = p.seen.length;
		redis.server.proc.kill('SIGSTOP');
		try {
			const ac = new AbortController();
			const pending = client(a, k.gone).chat.completions.create({ model: 'gpt-ok',
				messages: msg, max_tokens: 100 }, { signal: ac.signal });
			await new Promise((res) => setTimeout(res, 150));
			ac.abort();
			await assert.rejects(pending);
		} finally {
			redis.server.proc.kill('SIGCONT');
		}
		await eventually(async () => (await fetch(new URL('/readyz', a.url))).status === 200,
			{ what: 'a ready again' });
		// the reservation Redis made late is given back (its reply was lost with the
		// connection the timeout dropped, or it came for a request that was gone)
		await eventually(async () => (await usage(a, 'gone')).reserved === '0.00',
			{ what: 'nothing reserved' });
		assert.equal((await usage(a, 'gone')).spent, '0.00');
		assert.equal(p.seen.length, seen, 'the request never reached the provider');
		// and the key goes on
		await client(a, k.gone).chat.completions.create({ model: 'gpt-ok', messages: msg });
		assert.equal(micros((await usage(b, 'gone')).spent), 50);
	});

	test('fail_closed: Redis unreachable refuses with 503 counters_unavailable', async () => {
		redis.server.proc.kill('SIGKILL');
		await redis.server.exited;
		let err;
		await eventually(async () => {
			try {
				await client(a, k.gone).chat.completions.create({ model: 'gpt-ok', messages: msg });
			} catch (e) {
				err = e;
			}
			return err?.status === 503;
		}, { what: '503 while Redis is down' });
		assert.equal(err.code, 'counters_unavailable');
		assert.match(err.message, /Redis/);
		assert.equal(err.headers.get('retry-after'), '1');
		await redis.restart();
		await eventually(async () => (await fetch(new URL('/readyz', a.url))).status === 200,
			{ what: '/readyz back', ms: 15000 });
		await client(a, k.gone).chat.completions.create({ model: 'gpt-ok', messages: msg });
		assert.equal(micros((await usage(b, 'gone')).spent), 100, 'the AOF kept the first 50');
	});

	test('local: a bounded allowance while Redis is away, charged to Redis when it returns',
		async () => {
			// 0.0005 of allowance: two estimates of 202, not a third
			const c = await startDaemon(config({ on_unreachable: 'local',
				local_allowance: { spend: '0.0005', calls: 10 } }), { env: { KEY_A: 'sk-a' },
				ready: true });
			try {
				redis.server.proc.kill('SIGKILL');
				await redis.server.exited;
				await eventually(async () => /state="down"/.test(await (await fetch(
					`${c.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()),
				{ what: 'c sees Redis down' });
				const req = () => client(c, k.loc).chat.completions.create({ model: 'gpt-ok',
					messages: msg, max_tokens: 100 });
				await req();
				await req();
				await assert.rejects(req(), (e) => {
					assert.equal(e.status, 503);
					assert.equal(e.code, 'local_allowance_spent');
					return true;
				});
				assert.equal((await fetch(new URL('/readyz', c.url))).status, 200);
				await redis.restart();
				// the two answers' real cost (50 each) reaches the fleet's counter
				await eventually(async () => {
					const r = await fetch(`${b.adminUrl}/v1/usage?key=loc`,
						{ headers: { authorization: `Bearer ${TOKEN}` } });
					return r.status === 200 && micros((await r.json()).keys[0].budgets[0].spent) === 100;
				}, { what: 'the local charges replayed', ms: 15000 });
			} finally {
				await stopCleanly(c);
			}
		});
});
