// Tools that depend on the client's capabilities reach the clients that have them: the real
// server-everything offers get-roots-list only to clients that declare roots. Through the
// gateway, a client that declares roots (the official SDK client, with a list handler) sees
// it on servers that serve it alone (stdio per_session, HTTP) and gets its own roots back; a
// client without roots does not see it; roots/list_changed reaches the server; a key's policy
// governs such tools like any other.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectHttp, eventually, makeKey, npmStdioUpstream, paths, startEverythingHttp,
	gatewayConfig, httpUpstream, stopDaemonChecked, startDaemon } from './lib.mjs';

const keys = { all: makeKey(), noroots: makeKey() };
const cleanup = [];
after(async () => {
	for (const fn of cleanup.reverse())
		await fn();
});

async function gateway(upstreams) {
	const d = await startDaemon(gatewayConfig(upstreams, {
		prefix: 'always',
		auth: { required: true },
		keys: [{ id: 'all', hash: keys.all.hash, policy: 'all' },
			{ id: 'noroots', hash: keys.noroots.hash, policy: 'noroots' }],
		policies: {
			all: { tools: { allow: ['*/*'] } },
			noroots: { tools: { allow: ['*/*'], deny: ['*/get-roots-list'] } },
		},
	}), { ready: upstreams.map((u) => u.name) });
	cleanup.push(() => stopDaemonChecked(d));
	return d;
}

/** An SDK client; roots: the list it answers roots/list with (undefined: no roots capability). */
async function client(url, key, roots) {
	const c = await connectHttp(url, {
		headers: { Authorization: `Bearer ${key}` },
		capabilities: roots ? { roots: { listChanged: true } } : {},
	});
	const state = { roots, asked: 0 };
	if (roots)
		c.client.setRequestHandler(ListRootsRequestSchema, async () => {
			state.asked++;
			return { roots: state.roots };
		});
	cleanup.push(() => c.close());
	return { ...c, state };
}

const names = async (c) => (await c.client.listTools()).tools.map((t) => t.name);
const text = (r) => r.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n');

describe('capability-dependent tools through the gateway', { timeout: 120000 }, () => {
	test('get-roots-list: listed to clients with roots and answered with their roots; hidden from others', async () => {
		const web = await startEverythingHttp();
		cleanup.push(() => web.stop());
		const d = await gateway([
			npmStdioUpstream('ev', paths.bin.everything, ['stdio'], { per_session: true }),
			httpUpstream(web.url, 'web'),
		]);

		const a = await client(d.url, keys.all.key, [{ uri: 'file:///tmp/root-a', name: 'a' }]);
		const b = await client(d.url, keys.all.key, [{ uri: 'file:///tmp/root-b', name: 'b' }]);
		const plain = await client(d.url, keys.all.key);

		const la = await names(a);
		for (const t of ['ev__get-roots-list', 'web__get-roots-list'])
			assert.ok(la.includes(t), `${t} listed to a client with roots: ${la.join(' ')}`);
		assert.ok(la.includes('ev__echo') && la.includes('web__get-sum'));
		// Its own view is exact: no sampling capability, no sampling tool.
		assert.ok(!la.includes('ev__trigger-sampling-request'), 'a client without sampling does not see sampling tools of its own servers');

		// Each client gets its own roots, from both kinds of per-session upstream.
		for (const [c, root] of [[a, 'file:///tmp/root-a'], [b, 'file:///tmp/root-b']])
			for (const t of ['ev__get-roots-list', 'web__get-roots-list']) {
				const r = await c.client.callTool({ name: t, arguments: {} });
				assert.ok(text(r).includes(root), `${t} returns the caller's root ${root}: ${text(r)}`);
				const other = root.endsWith('a') ? 'root-b' : 'root-a';
				assert.ok(!text(r).includes(other), `${t} never shows another client's roots`);
			}

		// No roots capability: not listed, and not callable.
		const lp = await names(plain);
		assert.ok(!lp.some((t) => t.endsWith('get-roots-list')), `hidden from a client without roots: ${lp.join(' ')}`);
		assert.ok(lp.includes('ev__echo'));
		await assert.rejects(plain.client.callTool({ name: 'ev__get-roots-list', arguments: {} }),
			(e) => e.code === -32602 && /Unknown tool/.test(e.message));

		// notifications/roots/list_changed reaches the server, which asks again.
		const asked = a.state.asked;
		a.state.roots = [{ uri: 'file:///tmp/root-a2', name: 'a2' }];
		await a.client.sendRootsListChanged();
		await eventually(async () => text(await a.client.callTool({ name: 'ev__get-roots-list', arguments: {} }))
			.includes('file:///tmp/root-a2'), { ms: 10000, what: 'the new roots seen by the server' });
		assert.ok(a.state.asked > asked);
	});

	test('a key\'s policy governs session-only tools like any other', async () => {
		const d = await gateway([npmStdioUpstream('ev', paths.bin.everything, ['stdio'], { per_session: true })]);
		const c = await client(d.url, keys.noroots.key, [{ uri: 'file:///tmp/root-n', name: 'n' }]);
		const l = await names(c);
		assert.ok(l.includes('ev__echo'));
		assert.ok(!l.includes('ev__get-roots-list'), 'denied by the key\'s policy: not listed');
		await assert.rejects(c.client.callTool({ name: 'ev__get-roots-list', arguments: {} }),
			(e) => e.code === -32003 && /Not permitted/.test(e.message));
		const rec = await d.waitForRecord((r) => r.type === 'decision' && r.target === 'ev__get-roots-list', 5000);
		assert.equal(rec.decision, 'deny');
	});
});
