// MCP Apps through the gateway, with an SDK fixture server (tests/fixtures/apps-server.mjs):
// a tool's _meta naming its ui:// resource is relayed intact, rewritten to the gateway's URI
// when it prefixes; the UI is read through resources/read under the policy of the tool it
// belongs to (a key that may call the tool may read it without any resources rule; a key that
// may not call it may not read it), and the resource's _meta passes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connectHttp, makeKey, paths, startDaemon, stopDaemonChecked } from './lib.mjs';

const fixture = join(paths.top, 'tests', 'fixtures', 'apps-server.mjs');
const keys = { viewer: makeKey(), plain: makeKey(), docs: makeKey() };
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const CHART = 'apps+ui://charts/chart.html';
const TABLE = 'apps+ui://tables/table.html';
const uiMeta = { ui: { csp: { connectDomains: ['https://api.example.com'] }, prefersBorder: true } };

test('MCP Apps: tool UI metadata, UI resources under the tool\'s policy', { timeout: 60000 },
	async () => {
		const d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'always',
			auth: { required: true },
			keys: [{ id: 'viewer', hash: keys.viewer.hash, policy: 'viewer' },
				{ id: 'plain', hash: keys.plain.hash, policy: 'plain' },
				{ id: 'docs', hash: keys.docs.hash, policy: 'docs' }],
			policies: {
				viewer: { tools: { allow: ['apps/show-chart', 'apps/show-table'] } },
				plain: { tools: { allow: ['apps/plain'] } },
				docs: { tools: { allow: ['apps/plain'] }, resources: { allow: ['apps/*'] } },
			},
			upstreams: [{ name: 'apps', transport: 'stdio', command: [paths.node, fixture] }] },
		{ ready: true });
		const viewer = await connectHttp(d.url, { headers: bearer(keys.viewer) });
		const plain = await connectHttp(d.url, { headers: bearer(keys.plain) });
		const docs = await connectHttp(d.url, { headers: bearer(keys.docs) });
		try {
			// The tools' _meta is intact, their UI named by the URI agents read it by.
			const tools = Object.fromEntries((await viewer.client.listTools()).tools
				.map((t) => [t.name, t]));
			assert.deepEqual(tools['apps__show-chart']._meta, { ui: { resourceUri: CHART,
				visibility: ['model', 'app'] }, 'example.com/other': 1 });
			assert.deepEqual(tools['apps__show-table']._meta, { 'ui/resourceUri': TABLE });

			// A key that may call the tools reads their UIs (it has no resources rule), with
			// the resource's own _meta.
			for (const uri of [CHART, TABLE]) {
				const r = await viewer.client.readResource({ uri });
				assert.equal(r.contents[0].uri, uri);
				assert.equal(r.contents[0].mimeType, 'text/html;profile=mcp-app');
				assert.match(r.contents[0].text, /<html>/);
				assert.deepEqual(r.contents[0]._meta, uiMeta);
			}
			const rec = await d.waitForRecord((x) => x.type === 'decision' && x.key === 'viewer' &&
				x.method === 'resources/read' && x.target === CHART);
			assert.equal(rec.decision, 'allow');
			// ... but not other resources: its policy allows no resource.
			await assert.rejects(viewer.client.readResource({ uri: 'apps+note://readme' }),
				(e) => e.code === -32003);

			// A key that may not call the tool may not read its UI, even with resources
			// allowed; ordinary resources stay under the resources rules.
			for (const c of [plain, docs]) {
				await assert.rejects(c.client.readResource({ uri: CHART }),
					(e) => e.code === -32003 && /show-chart/.test(e.message), e => e.message);
				await assert.rejects(c.client.readResource({ uri: TABLE }),
					(e) => e.code === -32003 && /show-table/.test(e.message));
			}
			assert.equal((await docs.client.readResource({ uri: 'apps+note://readme' }))
				.contents[0].text, 'read me');
			const refused = await d.waitForRecord((x) => x.type === 'decision' &&
				x.key === 'plain' && x.method === 'resources/read' && x.target === CHART);
			assert.equal(refused.decision, 'deny');

			// The listed UI resources keep their _meta, under the exposed URI.
			const listed = (await docs.client.listResources()).resources
				.find((r) => r.uri === CHART);
			assert.deepEqual(listed?._meta, uiMeta);
		} finally {
			for (const c of [viewer, plain, docs])
				await c.close();
			const problems = await stopDaemonChecked(d);
			assert.deepEqual(problems, []);
		}
	});
