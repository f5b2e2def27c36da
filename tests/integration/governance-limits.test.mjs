// Rate limits and budgets through the real daemon, in front of server-everything over stdio:
// the refusal an agent gets (-32004 with retry_after_ms and Retry-After, -32005 with budget,
// spent, limit, reset), what is not counted (protocol traffic, refused calls), and that parallel
// calls from several sessions and keys never spend past a limit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectHttp, everythingUpstream, makeKeys, rawSession, responseOf,
	suiteDaemon } from './lib.mjs';

/** Loopback, the everything upstream, these keys; the rest of the config as given. */
const governed = (keys, rest) => ({ listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
	...rest });
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const call = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name, arguments: args } });

/** Settle every promise; returns { ok: [results], refused: [errors] } and fails on other errors. */
async function tally(promises, refusalCode) {
	const out = { ok: [], refused: [] };
	for (const r of await Promise.allSettled(promises)) {
		if (r.status === 'fulfilled')
			out.ok.push(r.value);
		else if (r.reason?.code === refusalCode)
			out.refused.push(r.reason);
		else
			throw r.reason;
	}
	return out;
}

/** "12.34" -> 12340000 micro-units */
function micros(money) {
	const m = /^(\d+)\.(\d{1,6})$/.exec(money);
	assert.ok(m, `money "${money}"`);
	return Number(m[1]) * 1e6 + Number(m[2].padEnd(6, '0'));
}

/** The next UTC midnight after t, as the daemon writes it. */
function nextUtcMidnight(t) {
	const d = new Date(t);
	return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1))
		.toISOString().replace('.000Z', 'Z');
}

describe('rate limits', () => {
	const { k, keys } = makeKeys({
		tool: { id: 'tool-limited', policy: 'all' },
		key: { id: 'key-limited', policy: 'all' },
		ro: { id: 'ro-limited', policy: 'ro' },
	});
	const d = suiteDaemon(() => governed(keys, {
		policies: {
			all: { tools: { allow: ['*/*'] } },
			ro: { tools: { allow: ['*/*'] }, annotations: { require: { readOnlyHint: true } } },
		},
		rate_limits: {
			'key:tool-limited': { tool: { requests: 2, per: 'hour' } },
			'key:key-limited': { key: { requests: 3, per: 'hour' } },
			'key:ro-limited': { key: { requests: 1, per: 'hour' } },
		},
	}), { ready: true });

	test('an exhausted tool bucket is -32004 with retry_after_ms and a Retry-After header',
		async () => {
			const s = await rawSession(d.url, bearer(k.tool));
			for (let i = 1; i <= 2; i++) {
				const r = await s.post(call(i, 'echo', { message: `m${i}` }));
				assert.equal(r.json.result.content[0].text, `Echo: m${i}`);
				assert.equal(r.headers.get('retry-after'), null);
			}
			const r = await s.post(call(3, 'echo', { message: 'm3' }));
			assert.equal(r.status, 200);
			assert.match(r.headers.get('content-type'), /^application\/json/);
			const e = r.json.error;
			assert.equal(e.code, -32004);
			assert.equal(e.data.type, 'rate_limited');
			assert.equal(e.data.limit, 'tool');
			// 2 per hour: the next token is 30 minutes away, less the time the test took
			assert.ok(e.data.retry_after_ms > 29 * 60000 && e.data.retry_after_ms <= 30 * 60000,
				`retry_after_ms ${e.data.retry_after_ms}`);
			assert.equal(r.headers.get('retry-after'), String(Math.ceil(e.data.retry_after_ms / 1000)));
			// the tool bucket is per tool: another tool still has its own two
			const other = await s.post(call(4, 'get-sum', { a: 2, b: 3 }));
			assert.ok(other.json.result, other.text);
			const rec = await d.waitForRecord((x) => x.type === 'decision' && x.key === 'tool-limited' &&
				x.error_code === -32004);
			assert.equal(rec.decision, 'deny');
			assert.equal(rec.reason, 'rate limited (tool)');
		});

	test('the SDK client gets the same -32004 refusal', async () => {
		const c = await connectHttp(d.url, { headers: bearer(k.tool) });
		try {
			await assert.rejects(c.client.callTool({ name: 'echo', arguments: { message: 'x' } }),
				(e) => e.code === -32004 && e.data.retry_after_ms > 0 && e.data.limit === 'tool');
		} finally {
			await c.close();
		}
	});

	test('protocol traffic is not counted: initialize, ping, lists, notifications', async () => {
		// three sessions (initialize + initialized each), many pings and lists, notifications
		const sessions = [];
		for (let i = 0; i < 3; i++)
			sessions.push(await rawSession(d.url, bearer(k.key)));
		const s = sessions[0];
		for (let i = 0; i < 20; i++) {
			assert.deepEqual((await s.post({ jsonrpc: '2.0', id: `p${i}`, method: 'ping' })).json.result, {});
			for (const m of ['tools/list', 'resources/list', 'prompts/list', 'resources/templates/list'])
				assert.ok((await s.post({ jsonrpc: '2.0', id: `${m}${i}`, method: m })).json.result);
			for (const n of ['notifications/initialized', 'notifications/roots/list_changed'])
				assert.equal((await s.post({ jsonrpc: '2.0', method: n })).status, 202);
		}
		const c = await connectHttp(d.url, { headers: bearer(k.key) });
		try {
			await c.client.ping();
			await c.client.listTools();
			// exactly the 3 calls of the key bucket, then the refusal
			for (let i = 0; i < 3; i++)
				await c.client.callTool({ name: 'echo', arguments: { message: `n${i}` } });
			await assert.rejects(c.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } }),
				(e) => e.code === -32004 && e.data.limit === 'key');
			// and refused calls keep it refused without extending it past the first token
			await c.client.ping();
		} finally {
			await c.close();
		}
	});

	test('a call refused by policy does not use up the rate limit', async () => {
		const c = await connectHttp(d.url, { headers: bearer(k.ro) });
		try {
			for (let i = 0; i < 5; i++)
				await assert.rejects(c.client.callTool({ name: 'toggle-simulated-logging', arguments: {} }),
					(e) => e.code === -32003);
			const r = await c.client.callTool({ name: 'echo', arguments: { message: 'still mine' } });
			assert.equal(r.content[0].text, 'Echo: still mine');
			await assert.rejects(c.client.callTool({ name: 'echo', arguments: { message: 'x' } }),
				(e) => e.code === -32004);
		} finally {
			await c.close();
		}
	});
});

describe('budgets', () => {
	const { k, keys } = makeKeys({
		shape: { id: 'shape', policy: 'all' },
		solo: { id: 'solo', policy: 'all' },
		a: { id: 'team-a', policy: 'all', team: 'research' },
		b: { id: 'team-b', policy: 'all', team: 'research' },
	});
	const d = suiteDaemon(() => governed(keys, {
		teams: [{ name: 'research', policy: 'all' }],
		policies: { all: { tools: { allow: ['*/*'] } } },
		costs: { default: '0', 'everything/echo': '0.25', 'everything/get-sum': '0.10',
			'everything/trigger-long-running-operation': '0.03', 'everything/get-structured-content': '50' },
		budgets: {
			'key:shape': [{ name: 'daily', limit: '1.00', period: 'daily' }],
			// rolling windows: no midnight reset in the middle of the test
			'key:solo': [{ name: 'solo', limit: '1.00', rolling: '7d' }],
			default: [{ name: 'own', limit: '100', rolling: '7d' }],
			'team:research': [{ name: 'research', limit: '1.00', rolling: '7d' }],
		},
	}), { ready: true });

	test('over budget is -32005 with budget, spent, limit and reset', async () => {
		const c = await connectHttp(d.url, { headers: bearer(k.shape) });
		try {
			for (let i = 0; i < 4; i++)
				await c.client.callTool({ name: 'echo', arguments: { message: `$${i}` } });
			const t0 = Date.now();
			let err;
			await assert.rejects(c.client.callTool({ name: 'echo', arguments: { message: 'one more' } }),
				(e) => { err = e; return e.code === -32005; });
			const t1 = Date.now();
			assert.equal(err.data.type, 'over_budget');
			assert.equal(err.data.budget, 'daily');
			assert.equal(err.data.spent, '1.00');
			assert.equal(err.data.reserved, '0.00');
			assert.equal(err.data.limit, '1.00');
			assert.equal(err.data.cost, '0.25');
			assert.ok([nextUtcMidnight(t0), nextUtcMidnight(t1)].includes(err.data.reset),
				`reset ${err.data.reset}`);
			// a free tool still works: only calls that cost are refused
			const r = await c.client.callTool({ name: 'get-env', arguments: {} });
			assert.notEqual(r.isError, true);
			// Records are written by the daemon's log thread: wait for all five.
			const shapeRecs = () => d.stdoutRecords.filter((x) => x.type === 'decision' &&
				x.key === 'shape' && x.target === 'echo');
			await d.waitForRecord(() => shapeRecs().length >= 5);
			const recs = shapeRecs();
			assert.deepEqual(recs.map((x) => [x.decision, x.cost_micros ?? 0]),
				[['allow', 250000], ['allow', 250000], ['allow', 250000], ['allow', 250000], ['deny', 0]]);
			assert.equal(recs[4].reason, 'over budget daily');
		} finally {
			await c.close();
		}
	});

	test('50 parallel calls through 5 sessions against a nearly spent budget: exactly ' +
		'floor(remaining/cost) succeed', async () => {
		const clients = [];
		for (let i = 0; i < 5; i++)
			clients.push(await connectHttp(d.url, { headers: bearer(k.solo) }));
		try {
			// spend 0.70 of 1.00 first: 0.30 remain, room for 10 calls of 0.03
			for (let i = 0; i < 7; i++)
				await clients[0].client.callTool({ name: 'get-sum', arguments: { a: i, b: 0 } });
			// each call takes a second upstream, so all 50 are in flight together
			const calls = [];
			for (let i = 0; i < 50; i++)
				calls.push(clients[i % 5].client.callTool({ name: 'trigger-long-running-operation',
					arguments: { duration: 1, steps: 1 } }, undefined, { timeout: 30000 }));
			const { ok, refused } = await tally(calls, -32005);
			assert.equal(ok.length, 10, `succeeded: ${ok.length}`);
			assert.equal(refused.length, 40);
			for (const e of refused) {
				assert.equal(e.data.budget, 'solo');
				// refused exactly when spent + reserved leaves less than the cost
				assert.equal(micros(e.data.spent) + micros(e.data.reserved), 1000000,
					JSON.stringify(e.data));
			}
			assert.ok(refused.some((e) => micros(e.data.reserved) > 0),
				'calls in flight show as reserved, not spent');
			// all of it is spent, and no more
			await assert.rejects(clients[1].client.callTool({ name: 'get-structured-content',
				arguments: { location: 'Chicago' } }),
				(e) => e.code === -32005 && e.data.spent === '1.00' && e.data.reset === null);
		} finally {
			await Promise.all(clients.map((c) => c.close()));
		}
	});

	test('two keys of one team, 50 parallel calls: the shared team budget is never overshot',
		async () => {
			const clients = [];
			for (let i = 0; i < 6; i++)
				clients.push(await connectHttp(d.url, { headers: bearer(i % 2 ? k.b : k.a) }));
			try {
				// 0.55 spent by key a, 0.45 of the team's 1.00 left: 4 calls of 0.10
				await clients[0].client.callTool({ name: 'echo', arguments: { message: 'a' } });
				await clients[0].client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });
				await clients[0].client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });
				await clients[0].client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });
				const calls = [];
				for (let i = 0; i < 50; i++)
					calls.push(clients[i % 6].client.callTool({ name: 'get-sum', arguments: { a: i, b: 1 } }));
				const { ok, refused } = await tally(calls, -32005);
				assert.equal(ok.length, 4, `succeeded: ${ok.length}`);
				assert.equal(refused.length, 46);
				for (const e of refused) {
					assert.equal(e.data.budget, 'research');
					assert.equal(e.data.limit, '1.00');
					const held = micros(e.data.spent) + micros(e.data.reserved);
					assert.ok(held > 900000 && held <= 1000000, JSON.stringify(e.data));
				}
				// both keys see the same team spend
				for (const c of clients.slice(0, 2))
					await assert.rejects(c.client.callTool({ name: 'get-structured-content',
						arguments: { location: 'Chicago' } }),
						(e) => e.code === -32005 && e.data.budget === 'research' && e.data.spent === '0.95' &&
							e.data.reserved === '0.00');
			} finally {
				await Promise.all(clients.map((c) => c.close()));
			}
		});
});

describe('prompts and resources are governed like tools', () => {
	const { k, keys } = makeKeys({ prompts: 'prompts', resources: 'resources', limited: 'both' });
	const d = suiteDaemon(() => governed(keys, {
		policies: {
			prompts: { prompts: { allow: ['everything/simple-prompt', 'everything/completable-prompt'] } },
			resources: { resources: { allow: ['everything/demo://resource/*'] } },
			both: { prompts: { allow: ['*/*'] }, resources: { allow: ['*/*'] } },
		},
		costs: { 'everything/simple-prompt': '0.40', 'everything/demo://resource/*': '0.40' },
		budgets: { default: [{ name: 'hourly', limit: '1.00', rolling: '1h' }],
			'key:limited': [{ name: 'big', limit: '100', rolling: '1h' }] },
		rate_limits: { 'key:limited': { key: { requests: 2, per: 'hour' } } },
	}), { ready: true });

	test('prompts/get is charged its cost and refused over budget', async () => {
		const s = await rawSession(d.url, bearer(k.prompts));
		const get = (id) => s.post({ jsonrpc: '2.0', id, method: 'prompts/get',
			params: { name: 'simple-prompt' } });
		for (let i = 1; i <= 2; i++)
			assert.ok((await get(i)).json.result.messages, `prompts/get ${i}`);
		const e = (await get(3)).json.error;
		assert.equal(e?.code, -32005, JSON.stringify(e));
		assert.equal(e.data.spent, '0.80');
		assert.equal(e.data.cost, '0.40');
		const promptRecs = () => d.stdoutRecords.filter((x) => x.type === 'decision' &&
			x.key === 'prompts' && x.method === 'prompts/get');
		await d.waitForRecord(() => promptRecs().length >= 3);  // written by the log thread
		const recs = promptRecs();
		assert.deepEqual(recs.map((x) => x.cost_micros ?? 0), [400000, 400000, 0]);
	});

	test('resources/read is charged, listed or read through a template', async () => {
		const s = await rawSession(d.url, bearer(k.resources));
		const read = (id, uri) => s.post({ jsonrpc: '2.0', id, method: 'resources/read',
			params: { uri } });
		const listed = (await s.post({ jsonrpc: '2.0', id: 0, method: 'resources/list' }))
			.json.result.resources[0].uri;
		assert.ok((await read(1, listed)).json.result.contents, 'a listed resource');
		assert.ok((await read(2, 'demo://resource/dynamic/text/1')).json.result.contents,
			'a resource from a template');
		const e = (await read(3, listed)).json.error;
		assert.equal(e?.code, -32005, JSON.stringify(e));
		assert.equal(e.data.spent, '0.80');
	});

	test('completion/complete needs permission for the prompt it completes', async () => {
		const complete = { jsonrpc: '2.0', id: 1, method: 'completion/complete', params: {
			ref: { type: 'ref/prompt', name: 'completable-prompt' },
			argument: { name: 'department', value: 'E' } } };
		const allowed = await (await rawSession(d.url, bearer(k.prompts))).post(complete);
		assert.ok(allowed.json.result?.completion, allowed.text);
		const refused = await (await rawSession(d.url, bearer(k.resources))).post(complete);
		assert.equal(refused.json.error?.code, -32003, refused.text);
		assert.equal(refused.json.error.data.type, 'not_permitted');
	});

	test('prompts/get and resources/read count against rate limits; completion and ' +
		'subscriptions do not', async () => {
		const s = await rawSession(d.url, bearer(k.limited));
		for (let i = 0; i < 3; i++) {
			const c = await s.post({ jsonrpc: '2.0', id: `c${i}`, method: 'completion/complete', params: {
				ref: { type: 'ref/prompt', name: 'completable-prompt' },
				argument: { name: 'department', value: 'E' } } });
			assert.ok(c.json.result, c.text);
			for (const m of ['resources/subscribe', 'resources/unsubscribe']) {
				const r = await s.post({ jsonrpc: '2.0', id: `${m}${i}`, method: m,
					params: { uri: 'demo://resource/dynamic/text/1' } });
				assert.ok(responseOf(r)?.result, `${m}: ${r.text}`);
			}
		}
		assert.ok((await s.post({ jsonrpc: '2.0', id: 1, method: 'prompts/get',
			params: { name: 'simple-prompt' } })).json.result);
		assert.ok((await s.post({ jsonrpc: '2.0', id: 2, method: 'resources/read',
			params: { uri: 'demo://resource/dynamic/text/2' } })).json.result);
		const r = await s.post({ jsonrpc: '2.0', id: 3, method: 'prompts/get',
			params: { name: 'simple-prompt' } });
		assert.equal(r.json.error?.code, -32004, r.text);
		assert.ok(Number(r.headers.get('retry-after')) > 0);
	});
});
