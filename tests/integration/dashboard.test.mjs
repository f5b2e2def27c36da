// The /logs dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core.
// Log in with the admin token, see the calls the official SDK client just made, filter by
// tool, watch a new call arrive in the live tail, charts drawn, the kernel view; a tool named
// <script>alert(1)</script> shows as text; no console errors, no dialog, no request leaves the
// admin listener. Screenshots go to <build>/dashboard-test/{dashboard,charts}.png (build/test
// for tests/run.sh), printed at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectHttp, fixtureStdioUpstream, makeTempDir, paths, removeTempDir, startDaemon,
	stopDaemonChecked } from './lib.mjs';
import { browserSkip, filterCalls, launchBrowser } from './browser-lib.mjs';
import { logStoreFor } from './logs-lib.mjs';

const TOKEN = 'admin-token-for-the-dashboard-0123456789';
const MARKUP = '<script>alert(1)</script>';
const KEY = 'mcpw_dashboard-test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const markupServer = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures',
	'markup-server.mjs');
const shotDir = join(paths.build, 'dashboard-test');

if (browserSkip)
	console.log(`# dashboard test skipped: ${browserSkip}`);

async function calls(d, list) {
	const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${KEY}` } });
	try {
		for (const [name, args, refused] of list) {
			const call = c.client.callTool({ name, arguments: args ?? {} });
			await (refused ? call.then(() => assert.fail(`${name} was not refused`), () => {}) : call);
		}
	} finally {
		await c.close();
	}
}

describe('the /logs dashboard in chromium', { skip: browserSkip }, () => {
	let d, browser, page, store, dir;
	const consoleErrors = [], dialogs = [], foreign = [];

	before(async () => {
		dir = makeTempDir('mcpwarden-dash-');
		const state = join(dir, 'state');
		mkdirSync(state);
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'always', state_dir: state,
			admin: { listen: '127.0.0.1:0', token: TOKEN },
			policies: { all: { tools: { allow: ['*/*'] } } },
			teams: [{ name: 'dash-team', policy: 'all' }],
			keys: [{ id: 'dash-key', team: 'dash-team', policy: 'all',
				hash: `sha256:${createHash('sha256').update(KEY).digest('hex')}` }],
			costs: { default: '0', 'fixture/test_simple_text': '0.002' },
			upstreams: [fixtureStdioUpstream('fixture'),
				{ name: 'markup', transport: 'stdio', command: [paths.node, markupServer] }] },
		{ ready: true });
		store = await logStoreFor(d, state);
		await calls(d, [['fixture__test_simple_text'], ['fixture__test_simple_text'],
			['fixture__test_error_handling'], [`markup__${MARKUP}`], ['markup__echo', { text: MARKUP }],
			['fixture__no_such_tool', {}, true]]);
		browser = await launchBrowser(dir);
		page = await browser.newPage();
		await page.setViewport({ width: 1400, height: 1000 });
		const origin = new URL(d.adminUrl).origin;
		await page.setRequestInterception(true);
		page.on('request', (req) => {
			const u = req.url();
			if (u.startsWith(origin + '/') || u.startsWith('data:') || u === 'about:blank')
				return req.continue();
			foreign.push(u);
			return req.abort();
		});
		page.on('console', (m) => {
			if (m.type() === 'error')
				consoleErrors.push(m.text());
		});
		page.on('pageerror', (e) => consoleErrors.push(String(e)));
		page.on('response', (r) => {
			if (r.status() >= 400)
				consoleErrors.push(`${r.status()} ${r.url()}`);
		});
		page.on('dialog', async (dlg) => {
			dialogs.push(dlg.message());
			await dlg.dismiss();
		});
	});

	after(async () => {
		await browser?.close();
		store?.stop();
		const problems = d ? await stopDaemonChecked(d) : [];
		removeTempDir(dir);
		assert.deepEqual(problems, []);
	});

	test('log in, the calls, a filter, the live tail, charts, the kernel view, markup as text',
		async () => {
			// Not logged in: the login page, and nothing of the API.
			await page.goto(d.adminUrl + '/logs', { waitUntil: 'load' });
			await page.waitForSelector('#login-form');
			await page.type('#token', 'wrong-token');
			await Promise.all([page.waitForNavigation(), page.click('#login-submit')]);
			await page.waitForSelector('#login-error:not([hidden])');
			await page.type('#token', TOKEN);
			await Promise.all([page.waitForNavigation(), page.click('#login-submit')]);
			const cookies = await browser.cookies();
			const c = cookies.find((x) => x.name === 'mcpwarden_admin');
			assert.ok(c, 'login cookie set');
			assert.equal(c.httpOnly, true);
			assert.equal(c.sameSite, 'Strict');
			assert.equal(await page.evaluate(() => document.cookie), '', 'not readable by scripts');

			// The calls just made, newest first, with the markup tool as text.
			const targets = () => page.$$eval('#calls-table tbody td.target',
				(tds) => tds.map((td) => td.textContent));
			await page.waitForFunction((m) => [...document.querySelectorAll(
				'#calls-table tbody td.target')].some((td) => td.textContent.endsWith(m)),
			{ timeout: 10000 }, MARKUP);
			const all = await targets();
			for (const want of ['fixture__test_simple_text', 'fixture__test_error_handling',
				`markup__${MARKUP}`, 'markup__echo'])
				assert.ok(all.includes(want), `${want} in ${JSON.stringify(all)}`);
			assert.equal(await page.$$eval('#calls-table script, #calls-table img',
				(n) => n.length), 0, 'no element made from data');

			// The detail of the markup record, as text.
			await page.evaluate((m) => [...document.querySelectorAll('#calls-table tbody tr')]
				.find((tr) => tr.querySelector('td.target').textContent.endsWith(m)).click(),
			MARKUP);
			await page.waitForSelector('#detail:not([hidden])');
			assert.match(await page.$eval('#detail-json', (p) => p.textContent),
				/<script>alert\(1\)<\/script>/);
			assert.equal(await page.$$eval('#detail script', (n) => n.length), 0);

			// Filter by tool.
			await filterCalls(page, '#filter-tool', 'target', 'fixture__test_simple_text');
			assert.equal((await targets()).length, 2);
			const costs = await page.$$eval('#calls-table tbody td.cost', (tds) => tds.map((x) => x.textContent));
			assert.deepEqual(costs, ['$0.002', '$0.002']);

			// The live tail: a call made now appears.
			await page.click('#tab-live');
			await page.waitForFunction(() => document.getElementById('live-state').textContent === 'live',
				{ timeout: 10000 });
			await calls(d, [['markup__echo', { text: 'live one' }]]);
			await page.waitForFunction(() => [...document.querySelectorAll('#live-table tbody td.target')]
				.some((td) => td.textContent === 'markup__echo'), { timeout: 10000 });

			// Charts: every chart has a line per tool.
			await page.click('#tab-charts');
			await page.waitForSelector('#chart-calls svg polyline', { timeout: 10000 });
			for (const id of ['chart-calls', 'chart-denied', 'chart-p50', 'chart-p99', 'chart-cost']) {
				const n = await page.$$eval(`#${id} svg polyline`, (p) => p.length);
				assert.ok(n >= 3, `${id}: ${n} lines`);
			}
			const legend = await page.$$eval('#chart-legend li', (li) => li.map((x) => x.textContent));
			assert.ok(legend.includes(`markup__${MARKUP}`), JSON.stringify(legend));
			// The calls chart is not flat: its points are not all on the axis.
			const ys = await page.$$eval('#chart-calls svg circle', (c) => c.map((x) => +x.getAttribute('cy')));
			assert.ok(ys.some((y) => y < 140), `points ${ys}`);
			mkdirSync(shotDir, { recursive: true });
			await page.screenshot({ path: join(shotDir, 'charts.png'), fullPage: true });

			// The kernel view: enforcement is off in this daemon.
			await page.click('#tab-kernel');
			await page.waitForFunction(() => /off/.test(document.getElementById('kernel-state').textContent),
				{ timeout: 10000 });

			await page.click('#tab-calls');
			await page.click('#clear-filters');
			await page.waitForFunction(() => document.querySelectorAll('#calls-table tbody tr').length > 2);
			const shot = join(shotDir, 'dashboard.png');
			await page.screenshot({ path: shot, fullPage: true });
			assert.ok(readFileSync(shot).length > 10000, 'a screenshot with something in it');
			console.log(`# dashboard screenshots: ${shot}, ${join(shotDir, 'charts.png')}`);

			assert.deepEqual(dialogs, [], 'no script from the data ran');
			assert.deepEqual(consoleErrors, [], 'no console errors');
			assert.deepEqual(foreign, [], 'no request left the admin listener');

			// Sign out: back to the login page.
			await Promise.all([page.waitForNavigation(), page.click('#logout')]);
			await page.waitForSelector('#login-form');
		});
});
