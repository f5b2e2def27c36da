// Governance through the real daemon: what each key sees and may call (policies, teams,
// annotation rules), argument validation before the upstream, and the refusal codes agents rely
// on to tell refusals apart. Upstreams: server-memory and server-everything over stdio, behind a
// tap that records every message they receive. Clients: the official SDK over Streamable HTTP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, makeKeys, makeTempDir, paths, rawSession, removeTempDir, suiteDaemon,
	tappedStdioUpstream, upstreamSaw } from './lib.mjs';

const { k: keys, keys: keyRecords } = makeKeys({
	full: 'all',                                    // every tool
	scoped: 'scoped',                               // allow-list with a deny
	ro: 'ro',                                       // read-only by annotation
	teamed: { id: 'teamed', policy: 'mine', team: 'ops' },  // key policy ∩ team policy
	teamOnly: { id: 'team-only', team: 'ops' },     // no policy of its own: the team's governs
});
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });

const policies = {
	all: { tools: { allow: ['*/*'] } },
	scoped: { tools: { allow: ['everything/*', 'memory/read_graph'],
		deny: ['everything/get-env', 'everything/*-request'] } },
	ro: { tools: { allow: ['*/*'] }, annotations: { require: { readOnlyHint: true } } },
	mine: { tools: { allow: ['memory/*', 'everything/echo', 'everything/get-sum'] } },
	'ops-team': { tools: { allow: ['*/*'], deny: ['memory/delete_*', 'everything/get-sum'] } },
};

// The upstreams' own tool names (the agent sees <server>__<tool>: two upstreams, prefix auto).
let allTools;                   // exposed names, from the unrestricted key
const up = (exposed) => exposed.replace('__', '/');

function expectedFor(pred) {
	return allTools.filter((t) => pred(up(t.name), t)).map((t) => t.name).sort();
}

describe('policies through the gateway', () => {
	let dir, memLog, evLog;

	const d = suiteDaemon(() => {
		dir = makeTempDir('mcpwarden-gpolicy-');
		memLog = join(dir, 'memory.log');
		evLog = join(dir, 'everything.log');
		return {
			listen: '127.0.0.1:0', prefix: 'auto',
			upstreams: [
				tappedStdioUpstream('memory', paths.bin.memory, [], memLog,
					{ env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') } }),
				tappedStdioUpstream('everything', paths.bin.everything, ['stdio'], evLog),
			],
			keys: keyRecords,
			teams: [{ name: 'ops', policy: 'ops-team' }],
			policies,
			costs: { 'everything/get-sum': '0.50' },
			budgets: { default: [{ name: 'weekly', limit: '1.00', period: 'weekly' }] },
		};
	}, { ready: true });
	before(async () => {
		const c = await connectHttp(d.url, { headers: bearer(keys.full) });
		allTools = (await c.client.listTools()).tools;
		await c.close();
	});
	after(() => removeTempDir(dir));	// once the daemon stopped (suiteDaemon's after runs first)

	async function withClient(k, fn) {
		const c = await connectHttp(d.url, { headers: bearer(k) });
		try {
			return await fn(c.client);
		} finally {
			await c.close();
		}
	}

	const listed = (k) => withClient(k, async (cl) =>
		(await cl.listTools()).tools.map((t) => t.name).sort());

	test('the unrestricted key sees both servers, prefixed', () => {
		const names = allTools.map((t) => t.name);
		for (const n of ['memory__delete_entities', 'memory__read_graph', 'everything__echo',
			'everything__get-env'])
			assert.ok(names.includes(n), `${n} listed`);
	});

	test('tools/list shows a key only what its allow/deny globs grant', async () => {
		const want = expectedFor((n) =>
			(n.startsWith('everything/') || n === 'memory/read_graph') &&
			n !== 'everything/get-env' && !n.endsWith('-request'));
		assert.ok(want.length >= 5 && want.length < allTools.length);
		assert.deepEqual(await listed(keys.scoped), want);
	});

	test('a key in a team sees the intersection of its policy and the team\'s', async () => {
		const want = expectedFor((n) => (n.startsWith('memory/') || n === 'everything/echo') &&
			!n.startsWith('memory/delete_'));
		assert.deepEqual(await listed(keys.teamed), want);
		// get-sum: the key allows it, the team denies it; delete_*: the same.
		assert.ok(!want.includes('everything__get-sum') && !want.includes('memory__delete_entities'));
	});

	test('a key with only a team policy gets the team\'s policy', async () => {
		const want = expectedFor((n) => !n.startsWith('memory/delete_') && n !== 'everything/get-sum');
		assert.deepEqual(await listed(keys.teamOnly), want);
	});

	test('a read-only key lists only tools annotated readOnlyHint: true', async () => {
		const want = expectedFor((_, t) => t.annotations?.readOnlyHint === true);
		assert.ok(want.includes('memory__read_graph') && !want.includes('memory__delete_entities'));
		assert.deepEqual(await listed(keys.ro), want);
	});

	test('a denied call is -32003 naming the rule, is recorded, and never reaches the upstream',
		async () => {
			const before = upstreamSaw(evLog).length;
			await withClient(keys.scoped, async (cl) => {
				await assert.rejects(cl.callTool({ name: 'everything__get-env', arguments: {} }), (e) => {
					assert.equal(e.code, -32003);
					assert.equal(e.data.type, 'not_permitted');
					assert.equal(e.data.tool, 'everything__get-env');
					assert.equal(e.data.rule, 'policy "scoped": deny tools everything/get-env');
					return true;
				});
				await assert.rejects(cl.callTool({ name: 'memory__create_entities',
					arguments: { entities: [] } }), (e) => {
					assert.equal(e.code, -32003);
					assert.match(e.data.rule, /^policy "scoped": no allow rule for tools matches/);
					return true;
				});
				// and what it may call works
				const ok = await cl.callTool({ name: 'everything__echo', arguments: { message: 'hi' } });
				assert.equal(ok.content[0].text, 'Echo: hi');
			});
			const rec = await d.waitForRecord((r) => r.type === 'decision' && r.key === 'scoped' &&
				r.target === 'everything__get-env');
			assert.equal(rec.decision, 'deny');
			assert.equal(rec.error_code, -32003);
			assert.match(rec.reason, /deny tools everything\/get-env/);
			const calls = upstreamSaw(evLog).slice(before).filter((m) => m.method === 'tools/call');
			assert.deepEqual(calls.map((m) => m.params.name), ['echo']);
		});

	test('a team deny refuses what the key\'s own policy allows, naming the team policy',
		async () => {
			await withClient(keys.teamed, async (cl) => {
				await assert.rejects(cl.callTool({ name: 'memory__delete_entities',
					arguments: { entityNames: ['x'] } }), (e) => {
					assert.equal(e.code, -32003);
					assert.match(e.data.rule, /^policy "ops-team": deny tools memory\/delete_\*/);
					return true;
				});
				await assert.rejects(cl.callTool({ name: 'everything__get-sum',
					arguments: { a: 1, b: 2 } }), (e) => e.code === -32003);
				// and the key's policy narrows the team's: get-env is allowed by the team only
				await assert.rejects(cl.callTool({ name: 'everything__get-env', arguments: {} }),
					(e) => e.code === -32003 && /policy "mine"/.test(e.data.rule));
			});
		});

	test('a read-only key can read but not delete (server-memory delete_entities)', async () => {
		// the unrestricted key writes an entity...
		await withClient(keys.full, (cl) => cl.callTool({ name: 'memory__create_entities',
			arguments: { entities: [{ name: 'gtest-ro', entityType: 'probe', observations: ['x'] }] } }));
		const before = upstreamSaw(memLog).length;
		await withClient(keys.ro, async (cl) => {
			const g = await cl.callTool({ name: 'memory__read_graph', arguments: {} });
			assert.match(g.content[0].text, /gtest-ro/);
			const s = await cl.callTool({ name: 'memory__search_nodes', arguments: { query: 'gtest' } });
			assert.match(s.content[0].text, /gtest-ro/);
			await assert.rejects(cl.callTool({ name: 'memory__delete_entities',
				arguments: { entityNames: ['gtest-ro'] } }), (e) => {
				assert.equal(e.code, -32003);
				assert.equal(e.data.rule, 'policy "ro": annotation readOnlyHint=true required');
				return true;
			});
			await assert.rejects(cl.callTool({ name: 'memory__add_observations',
				arguments: { observations: [{ entityName: 'gtest-ro', contents: ['y'] }] } }),
			(e) => e.code === -32003);
		});
		const calls = upstreamSaw(memLog).slice(before).filter((m) => m.method === 'tools/call');
		assert.deepEqual(calls.map((m) => m.params.name), ['read_graph', 'search_nodes']);
		// the entity is still there
		await withClient(keys.full, async (cl) => {
			const g = await cl.callTool({ name: 'memory__read_graph', arguments: {} });
			assert.match(g.content[0].text, /gtest-ro/);
		});
	});

	test('bad arguments are -32602 naming the path, recorded as deny, not forwarded, not charged',
		async () => {
			const before = upstreamSaw(evLog).length;
			await withClient(keys.full, async (cl) => {
				await assert.rejects(cl.callTool({ name: 'everything__get-sum',
					arguments: { a: 1, b: 'two' } }), (e) => {
					assert.equal(e.code, -32602);
					assert.equal(e.data.type, 'invalid_arguments');
					assert.equal(e.data.path, '$.b');
					assert.equal(e.data.keyword, 'type');
					return true;
				});
				await assert.rejects(cl.callTool({ name: 'everything__echo', arguments: {} }),
					(e) => e.code === -32602 && e.data.keyword === 'required');
				// Two calls of 0.50 fit the 1.00 budget: the refused one reserved nothing lasting.
				for (let i = 0; i < 2; i++) {
					const r = await cl.callTool({ name: 'everything__get-sum', arguments: { a: i, b: 1 } });
					assert.match(r.content[0].text, new RegExp(`${i + 1}`));
				}
				await assert.rejects(cl.callTool({ name: 'everything__get-sum',
					arguments: { a: 1, b: 1 } }), (e) => e.code === -32005 && e.data.spent === '1.00');
			});
			const rec = await d.waitForRecord((r) => r.type === 'decision' && r.key === 'full' &&
				r.target === 'everything__get-sum' && r.error_code === -32602);
			assert.equal(rec.decision, 'deny');
			assert.equal(rec.reason, 'invalid arguments');
			assert.ok(!rec.cost_micros, `a refused call records no cost (${rec.cost_micros})`);
			// Written by the log thread, in batches: wait for both.
			const paidRecs = () => d.stdoutRecords.filter((r) => r.type === 'decision' &&
				r.key === 'full' && r.target === 'everything__get-sum' && r.decision === 'allow');
			await d.waitForRecord(() => paidRecs().length >= 2);
			assert.deepEqual(paidRecs().map((r) => r.cost_micros), [500000, 500000]);
			const calls = upstreamSaw(evLog).slice(before).filter((m) => m.method === 'tools/call');
			assert.deepEqual(calls.map((m) => [m.params.name, m.params.arguments]),
				[['get-sum', { a: 0, b: 1 }], ['get-sum', { a: 1, b: 1 }]]);
		});

	test('an unknown tool is -32602 and a hidden tool is -32003: neither reaches an upstream',
		async () => {
			const before = upstreamSaw(memLog).length;
			const s = await rawSession(d.url, bearer(keys.ro));
			const r1 = await s.post({ jsonrpc: '2.0', id: 1, method: 'tools/call',
				params: { name: 'memory__no_such_tool', arguments: {} } });
			assert.equal(r1.json.error.code, -32602);
			const r2 = await s.post({ jsonrpc: '2.0', id: 2, method: 'tools/call',
				params: { name: 'memory__delete_entities', arguments: { entityNames: [] } } });
			assert.equal(r2.json.error.code, -32003);
			assert.deepEqual(upstreamSaw(memLog).slice(before).filter((m) => m.method === 'tools/call'),
				[]);
		});
});

describe('refusal codes', () => {
	test('docs/policy.md, refusal.h and the daemon agree, and every code is distinct', () => {
		const doc = readFileSync(join(paths.top, 'docs', 'policy.md'), 'utf8');
		const table = new Map([...doc.matchAll(/^\| (-32\d\d\d) \| `([a-z_]+)` \|/gm)]
			.map((m) => [Number(m[1]), m[2]]));
		const hdr = readFileSync(join(paths.top, 'userspace', 'govern', 'refusal.h'), 'utf8');
		// enum refusal_code { REFUSAL_X = -320yy } and refusal_name(): case REFUSAL_X: "type"
		const value = new Map([...hdr.matchAll(/^\s*(REFUSAL_\w+)\s*=\s*(-\d+),/gm)]
			.map((m) => [m[1], Number(m[2])]));
		const header = new Map([...hdr.matchAll(/case (REFUSAL_\w+):\s+return "([a-z_]+)";/g)]
			.map((m) => [value.get(m[1]), m[2]]));
		assert.ok(header.size >= 7, 'refusal.h parsed');
		assert.deepEqual([...header].sort(), [...table].sort(),
			'docs/policy.md lists exactly the codes and types of refusal.h');
		const enumCodes = new Map([...header].map(([code, type]) => [type, code]));
		// What this suite observes from the daemon (asserted in the tests above and in
		// governance-limits / governance-auth).
		const observed = { not_permitted: -32003, rate_limited: -32004, over_budget: -32005,
			invalid_arguments: -32602, unauthenticated: -32001 };
		for (const [type, code] of Object.entries(observed)) {
			assert.equal(table.get(code), type, `docs/policy.md documents ${code} as ${type}`);
			assert.equal(enumCodes.get(type), code, `refusal.h gives ${type} the code ${code}`);
		}
		const codes = [...table.keys()];
		assert.equal(new Set(codes).size, codes.length, 'codes are distinct');
		assert.equal(new Set(table.values()).size, codes.length, 'types are distinct');
	});
});
