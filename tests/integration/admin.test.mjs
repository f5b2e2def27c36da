// The admin plane against the real daemon: its own listener and token, keys and teams that
// take effect on the next agent request and survive a restart, usage with resets, /metrics,
// and wardenctl keys/usage talking to it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, fixtureStdioUpstream, makeTempDir, paths, postJson,
	startDaemon } from './lib.mjs';

const TOKEN = 'admin-token-for-tests-0123456789';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25',
	capabilities: {}, clientInfo: { name: 'probe', version: '1' } } };
const CONFIG_KEY = 'mcpw_config-key-for-tests-aaaaaaaaaaaaaaaaaaaaaaaaaa';
const CONFIG_KEY_HASH = `sha256:${createHash('sha256').update(CONFIG_KEY).digest('hex')}`;

function config(stateDir) {
	return {
		listen: '127.0.0.1:0', prefix: 'never', state_dir: stateDir,
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [fixtureStdioUpstream('fixture')],
		policies: { all: { tools: { allow: ['*/*'] } }, none: { tools: { allow: ['other/*'] } } },
		teams: [{ name: 'cfgteam', policy: 'all' }],
		keys: [{ id: 'cfgkey', policy: 'all', hash: CONFIG_KEY_HASH }],
		costs: { default: '0', 'fixture/test_simple_text': '0.25' },
		budgets: { default: [{ name: 'daily', limit: '1.00', period: 'daily' }],
			'team:ml': [{ name: 'ml-hourly', limit: '10', rolling: '1h' }] },
	};
}

async function start(stateDir) {
	const d = await startDaemon(config(stateDir));
	await d.waitForStderr(/upstream fixture: ready/, 15000);
	return d;
}

async function api(d, method, path, body, token = TOKEN) {
	const headers = {};
	if (token !== null)
		headers.Authorization = `Bearer ${token}`;
	if (body !== undefined)
		headers['Content-Type'] = 'application/json';
	const res = await fetch(d.adminUrl + path, { method, headers,
		body: body === undefined ? undefined : JSON.stringify(body) });
	const text = await res.text();
	let json = null;
	try { json = JSON.parse(text); } catch { /* metrics, empty */ }
	return { status: res.status, headers: res.headers, text, json };
}

async function callSimple(d, key) {
	const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${key}` } });
	try {
		return await c.client.callTool({ name: 'test_simple_text', arguments: {} });
	} finally {
		await c.close();
	}
}

// Prometheus text format 0.0.4: every sample line is `name{labels} value`, every family has
// one TYPE before its samples. Returns Map "name{labels}" -> number.
function parseProm(text) {
	const samples = new Map();
	const types = new Map();
	for (const line of text.split('\n')) {
		if (line === '')
			continue;
		const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/
			.exec(line);
		if (t) {
			assert.ok(!types.has(t[1]), `TYPE ${t[1]} twice`);
			types.set(t[1], t[2]);
			continue;
		}
		if (line.startsWith('# HELP ') || line.startsWith('#'))
			continue;
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?\d+)?|[+-]Inf|NaN)$/
			.exec(line);
		assert.ok(m, `not a Prometheus sample line: ${line}`);
		const family = m[1].replace(/_(bucket|sum|count)$/, '');
		assert.ok(types.has(m[1]) || types.has(family), `sample before its TYPE: ${line}`);
		samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
	}
	return samples;
}

describe('admin plane', () => {
	let d, stateDir;
	before(async () => {
		stateDir = makeTempDir('mcpwarden-admin-state-');
		d = await start(stateDir);
		assert.match(d.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
	});
	after(async () => { await d?.stop(); });

	test('missing or wrong admin token: 401 with WWW-Authenticate, and an admin record', async () => {
		for (const token of [null, 'wrong-token-wrong-token', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
			const r = await api(d, 'GET', '/v1/keys', undefined, token);
			assert.equal(r.status, 401);
			assert.match(r.headers.get('www-authenticate'), /^Bearer/);
			assert.equal(typeof r.json.error, 'string');
		}
		// An agent key is not an admin token.
		assert.equal((await api(d, 'GET', '/metrics', undefined, CONFIG_KEY)).status, 401);
		await d.waitForRecord((r) => r.type === 'admin' && r.action === 'auth' &&
			r.result === 'refused');
		assert.equal((await api(d, 'GET', '/v1/keys')).status, 200);
	});

	test('admin routes are not served on the agent port', async () => {
		const agent = new URL(d.url).origin;
		for (const path of ['/v1/keys', '/metrics', '/v1/usage']) {
			const r = await fetch(agent + path, { headers: { Authorization: `Bearer ${TOKEN}` } });
			assert.equal(r.status, 404, path);
		}
		// ... and the MCP endpoint is not on the admin port.
		const r = await fetch(d.adminUrl + '/mcp', { method: 'POST',
			headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
			body: JSON.stringify(INIT) });
		assert.equal(r.status, 404);
	});

	test('a created key works at once; it is shown once and never listed with a hash', async () => {
		const r = await api(d, 'POST', '/v1/keys', { name: 'ci runner', policy: 'all' });
		assert.equal(r.status, 201, r.text);
		assert.match(r.json.key, /^mcpw_[A-Za-z0-9_-]{43}$/);
		assert.equal(r.json.record.name, 'ci runner');
		assert.equal(r.json.record.source, 'api');
		assert.equal(r.json.record.disabled, false);
		const res = await callSimple(d, r.json.key);
		assert.equal(res.content[0].text, 'This is a simple text response for testing.');

		const list = await api(d, 'GET', '/v1/keys');
		const ids = list.json.keys.map((k) => k.id);
		assert.ok(ids.includes(r.json.record.id) && ids.includes('cfgkey'));
		assert.doesNotMatch(list.text, /sha256|hash/);
		assert.ok(!list.text.includes(r.json.key));
		const show = await api(d, 'GET', `/v1/keys/${r.json.record.id}`);
		assert.deepEqual(show.json, { ...r.json.record, expired: false });
		// The secret appears in no record on stdout.
		const rec = await d.waitForRecord((x) => x.type === 'admin' && x.action === 'key.create' &&
			x.key === r.json.record.id);
		assert.equal(rec.result, 'ok');
		assert.ok(!d.stdoutLines.some((l) => l.includes(r.json.key)));
	});

	test('bad input: a JSON error naming the field; nothing is created', async () => {
		const before = (await api(d, 'GET', '/v1/keys')).json.keys.length;
		const cases = [
			[{ policy: 'nope' }, 400, 'policy'],
			[{ team: 'nope' }, 400, 'team'],
			[{ name: 'x' }, 400, 'policy'],
			[{ policy: 'all', expires: 'tomorrow' }, 400, 'expires'],
			[{ policy: 'all', colour: 'red' }, 400, 'colour'],
			[{ policy: 'all', id: 'cfgkey' }, 409, 'id'],
			[{ policy: 'all', id: 'bad id!' }, 400, 'id'],
		];
		for (const [body, status, field] of cases) {
			const r = await api(d, 'POST', '/v1/keys', body);
			assert.equal(r.status, status, JSON.stringify(body));
			assert.equal(r.json.field, field, JSON.stringify(body));
		}
		const raw = await fetch(d.adminUrl + '/v1/keys', { method: 'POST',
			headers: { Authorization: `Bearer ${TOKEN}` }, body: '{not json' });
		assert.equal(raw.status, 400);
		assert.equal((await api(d, 'GET', '/v1/keys')).json.keys.length, before);
		assert.equal((await api(d, 'GET', '/v1/keys/no-such-key')).status, 404);
		assert.equal((await api(d, 'DELETE', '/v1/nothing')).status, 404);
		const m = await api(d, 'PUT', '/v1/keys');
		assert.equal(m.status, 405);
		assert.match(m.headers.get('allow'), /GET, POST/);
		await d.waitForRecord((x) => x.type === 'admin' && x.action === 'key.create' &&
			x.result === 'refused' && x.status === 409);
	});

	test('revoke: the next agent request is refused with 401', async () => {
		const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all', name: 'to revoke' });
		const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${json.key}` } });
		try {
			await c.client.callTool({ name: 'test_simple_text', arguments: {} });
			const r = await api(d, 'POST', `/v1/keys/${json.record.id}/revoke`);
			assert.equal(r.status, 200);
			assert.equal(r.json.disabled, true);
			const again = await postJson(d.url, INIT, { Authorization: `Bearer ${json.key}` });
			assert.equal(again.status, 401);
			// The open session is refused too: authentication is per request.
			await assert.rejects(c.client.callTool({ name: 'test_simple_text', arguments: {} }));
		} finally {
			await c.close();
		}
		// PATCH re-enables it.
		const p = await api(d, 'PATCH', `/v1/keys/${json.record.id}`, { disabled: false,
			name: 'back' });
		assert.equal(p.status, 200);
		assert.equal(p.json.name, 'back');
		assert.equal((await postJson(d.url, INIT, { Authorization: `Bearer ${json.key}` })).status,
			200);
		// DELETE: gone for good.
		assert.equal((await api(d, 'DELETE', `/v1/keys/${json.record.id}`)).status, 200);
		assert.equal((await api(d, 'GET', `/v1/keys/${json.record.id}`)).status, 404);
		assert.equal((await postJson(d.url, INIT, { Authorization: `Bearer ${json.key}` })).status,
			401);
	});

	test('a PATCH to another policy applies to the next request', async () => {
		const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all' });
		assert.equal((await api(d, 'PATCH', `/v1/keys/${json.record.id}`, { policy: 'none' })).status,
			200);
		await assert.rejects(callSimple(d, json.key), (e) => e.code === -32003 || e.code === -32602);
	});

	test('config keys and teams are read-only through the API (409)', async () => {
		for (const [m, p, b] of [['PATCH', '/v1/keys/cfgkey', { name: 'x' }],
			['POST', '/v1/keys/cfgkey/revoke'], ['DELETE', '/v1/keys/cfgkey'],
			['PUT', '/v1/teams/cfgteam', { policy: 'none' }], ['DELETE', '/v1/teams/cfgteam']]) {
			const r = await api(d, m, p, b);
			assert.equal(r.status, 409, `${m} ${p}`);
			assert.match(r.json.error, /config file/);
		}
		const k = await api(d, 'GET', '/v1/keys/cfgkey');
		assert.equal(k.json.source, 'config');
		assert.equal(k.json.disabled, false);
	});

	test('teams: create, use, refuse deleting while keys belong, delete', async () => {
		const t = await api(d, 'PUT', '/v1/teams/ml', { policy: 'all' });
		assert.equal(t.status, 201, t.text);
		assert.equal((await api(d, 'PUT', '/v1/teams/ml', { policy: 'all' })).status, 200);
		assert.equal((await api(d, 'PUT', '/v1/teams/ml2', { policy: 'nope' })).json.field, 'policy');
		// A key's team and policy must be ones that exist.
		for (const [body, field, error] of [
			[{ team: 'nope' }, 'team', 'no team named "nope"'],
			[{ team: 'a b' }, 'team', 'must be a team name (1-64 of A-Z a-z 0-9 _ - .) or null'],
			[{ policy: 'nope' }, 'policy', 'no policy named "nope"'],
			[{ policy: 7 }, 'policy', 'must be a policy name or null']]) {
			const r = await api(d, 'POST', '/v1/keys', body);
			assert.equal(r.status, 400, r.text);
			assert.deepEqual([r.json.field, r.json.error], [field, error]);
		}
		const { json } = await api(d, 'POST', '/v1/keys', { team: 'ml', name: 'team key' });
		assert.equal(json.record.team, 'ml');
		assert.equal(json.record.policy, null);
		await callSimple(d, json.key);
		const busy = await api(d, 'DELETE', '/v1/teams/ml');
		assert.equal(busy.status, 409);
		const list = await api(d, 'GET', '/v1/teams');
		const names = list.json.teams.map((x) => x.name);
		assert.deepEqual(names, [...names].sort());
		assert.deepEqual(list.json.teams.find((x) => x.name === 'ml'),
			{ name: 'ml', policy: 'all', keys: 1, source: 'api' });
		// The team's budget counted the call.
		const u = await api(d, 'GET', '/v1/usage?team=ml');
		assert.equal(u.json.teams[0].budgets[0].name, 'ml-hourly');
		assert.equal(u.json.teams[0].budgets[0].spent, '0.25');
		assert.equal((await api(d, 'PUT', '/v1/teams/tmp', { policy: 'all' })).status, 201);
		assert.equal((await api(d, 'DELETE', '/v1/teams/tmp')).status, 200);
		assert.equal((await api(d, 'GET', '/v1/teams/tmp')).status, 404);
	});

	test('usage reflects charges; a reset zeroes the period and is durable', async () => {
		const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all', id: 'spender' });
		await callSimple(d, json.key);
		await callSimple(d, json.key);
		let u = await api(d, 'GET', '/v1/usage?key=spender');
		assert.equal(u.status, 200);
		const b = u.json.keys[0].budgets[0];
		assert.equal(b.name, 'daily');
		assert.equal(b.period, 'day');
		assert.equal(b.limit, '1.00');
		assert.equal(b.spent, '0.50');
		assert.equal(b.remaining, '0.50');
		assert.match(b.resets_at, /T00:00:00Z$/);
		// Two more fit, the fifth is over budget.
		await callSimple(d, json.key);
		await callSimple(d, json.key);
		await assert.rejects(callSimple(d, json.key), (e) => e.code === -32005);
		const r = await api(d, 'POST', '/v1/usage/reset', { key: 'spender' });
		assert.equal(r.status, 200, r.text);
		assert.equal(r.json.budgets[0].spent, '0.00');
		await callSimple(d, json.key);
		u = await api(d, 'GET', '/v1/usage?key=spender');
		assert.equal(u.json.keys[0].budgets[0].spent, '0.25');
		const rec = await d.waitForRecord((x) => x.type === 'admin' && x.action === 'usage.reset');
		assert.equal(rec.before[0].spent, '1.00');
		assert.equal((await api(d, 'POST', '/v1/usage/reset', { key: 'nobody' })).status, 404);
		assert.equal((await api(d, 'POST', '/v1/usage/reset', {})).status, 400);
		assert.equal((await api(d, 'GET', '/v1/usage?key=nobody')).status, 404);
	});

	test('/metrics is Prometheus text behind the token, and its counters move', async () => {
		assert.equal((await api(d, 'GET', '/metrics', undefined, null)).status, 401);
		const m0 = await api(d, 'GET', '/metrics');
		assert.equal(m0.status, 200);
		assert.match(m0.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
		const s0 = parseProm(m0.text);
		const ok = 'mcpwarden_requests_total{method="tools/call",decision="allow",reason="ok"}';
		const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all' });
		await callSimple(d, json.key);
		const s1 = parseProm((await api(d, 'GET', '/metrics')).text);
		assert.equal(s1.get(ok), (s0.get(ok) ?? 0) + 1);
		const cnt = 'mcpwarden_request_duration_seconds_count{part="upstream"}';
		assert.ok(s1.get(cnt) > (s0.get(cnt) ?? 0));
		assert.ok(s1.get('mcpwarden_request_duration_seconds_bucket{part="gateway",le="+Inf"}') >=
			s1.get(ok));
		// Each stage of the call was timed once more: what the gateway costs, stage by stage.
		for (const stage of ['front', 'gate', 'upstream', 'settle']) {
			const k = `mcpwarden_call_stage_duration_seconds_count{stage="${stage}"}`;
			assert.ok(s1.get(k) >= (s0.get(k) ?? 0) + 1, `${stage} is timed`);
			const inf = `mcpwarden_call_stage_duration_seconds_bucket{stage="${stage}",le="+Inf"}`;
			assert.equal(s1.get(inf), s1.get(k));
			assert.ok(s1.get(`mcpwarden_call_stage_duration_seconds_sum{stage="${stage}"}`) > 0);
		}
		assert.ok(s1.get('mcpwarden_store_commits_total') > 0);
		assert.ok(s1.get('mcpwarden_sessions') >= 0);
		assert.equal(s1.get('mcpwarden_requests_in_flight'), 0);
		assert.ok(s1.get('mcpwarden_keys') >= 2);
		// A refusal is counted with its reason class.
		const c = await connectHttp(d.url, { headers: { Authorization: `Bearer ${json.key}` } });
		try {
			const s2 = parseProm((await api(d, 'GET', '/metrics')).text);
			assert.equal(s2.get('mcpwarden_sessions'), s1.get('mcpwarden_sessions') + 1);
			await assert.rejects(c.client.callTool({ name: 'no_such_tool', arguments: {} }));
			const s3 = parseProm((await api(d, 'GET', '/metrics')).text);
			const bad = [...s3.entries()].filter(([k]) => k.startsWith(
				'mcpwarden_requests_total{method="tools/call",decision="deny"'));
			assert.ok(bad.length > 0, 'a denied tools/call is counted');
		} finally {
			await c.close();
		}
	});

	test('SIGHUP reload: the admin listener stays, API keys stay, the new config applies',
		async () => {
			const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all', id: 'reloaded' });
			const cfg = config(stateDir);
			cfg.teams.push({ name: 'newteam', policy: 'all' });
			writeFileSync(d.configPath, JSON.stringify(cfg));
			const before = d.stderrLines.length;
			d.proc.kill('SIGHUP');
			await d.waitForStderr(/configuration reloaded/, 15000);
			// Only teams changed: replaced in place, the listeners and upstreams stay.
			assert.ok(d.stderrLines.slice(before).some((l) => /sessions and upstreams kept/.test(l)));
			assert.equal((await api(d, 'GET', '/v1/teams/newteam')).json.source, 'config');
			assert.equal((await api(d, 'GET', '/v1/keys/reloaded')).json.source, 'api');
			await callSimple(d, json.key);
		});

	test('keys and teams survive a restart; config keys stay config keys', async () => {
		const { json } = await api(d, 'POST', '/v1/keys', { policy: 'all', id: 'durable',
			expires: '2099-01-01T00:00:00Z' });
		await api(d, 'PUT', '/v1/teams/kept', { policy: 'all' });
		await callSimple(d, json.key);
		await api(d, 'POST', '/v1/usage/reset', { key: 'spender' });
		await d.stop();
		d = await start(stateDir);
		const k = await api(d, 'GET', '/v1/keys/durable');
		assert.equal(k.status, 200);
		assert.equal(k.json.expires, '2099-01-01T00:00:00Z');
		assert.equal((await api(d, 'GET', '/v1/teams/kept')).json.policy, 'all');
		assert.equal((await api(d, 'GET', '/v1/teams/ml')).json.keys, 1);
		await callSimple(d, json.key);
		const u = await api(d, 'GET', '/v1/usage?key=durable');
		assert.equal(u.json.keys[0].budgets[0].spent, '0.50');
		// The reset before the restart held.
		assert.equal((await api(d, 'GET', '/v1/usage?key=spender')).json.keys[0].budgets[0].spent,
			'0.00');
		assert.equal((await api(d, 'GET', '/v1/keys/cfgkey')).json.source, 'config');
	});
});
describe('wardenctl keys and usage', () => {
	let d, tokenFile;
	const ctl = join(paths.build, 'wardenctl');
	const run = (args, env = {}) => new Promise((res) => {
		execFile(ctl, args, { env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) =>
			res({ code: err ? err.code : 0, stdout, stderr }));
	});
	before(async () => {
		const dir = makeTempDir('mcpwarden-ctl-');
		tokenFile = join(dir, 'token');
		writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
		d = await start(dir);
	});
	after(async () => { await d?.stop(); });

	test('keys create prints the key once; list, show, revoke; usage', async () => {
		const base = ['--admin', d.adminUrl, '--token-file', tokenFile];
		const c = await run(['keys', 'create', ...base, '--name', 'from ctl', '--policy', 'all',
			'--json']);
		assert.equal(c.code, 0, c.stderr);
		const created = JSON.parse(c.stdout);
		assert.match(created.key, /^mcpw_/);
		await callSimple(d, created.key);

		const human = await run(['keys', 'create', ...base, '--policy', 'all', '--id', 'ctl2']);
		assert.equal(human.code, 0, human.stderr);
		assert.match(human.stdout, /mcpw_[A-Za-z0-9_-]{43}/);
		assert.match(human.stdout, /ctl2/);

		const list = await run(['keys', 'list', ...base]);
		assert.equal(list.code, 0, list.stderr);
		assert.match(list.stdout, /^ID\s+NAME\s+TEAM\s+POLICY/m);
		assert.match(list.stdout, new RegExp(`^${created.record.id}\\s+from ctl\\s+-\\s+all`, 'm'));
		assert.ok(!list.stdout.includes(created.key));
		const listJson = JSON.parse((await run(['keys', 'list', ...base, '--json'])).stdout);
		assert.ok(listJson.keys.some((k) => k.id === 'ctl2'));

		const show = await run(['keys', 'show', created.record.id, ...base, '--json']);
		assert.equal(JSON.parse(show.stdout).name, 'from ctl');

		const usage = await run(['usage', ...base, '--key', created.record.id]);
		assert.equal(usage.code, 0, usage.stderr);
		assert.match(usage.stdout, new RegExp(`key:${created.record.id}\\s+daily\\s+day\\s+0\\.25\\s+0\\.00\\s+1\\.00`));
		const uj = JSON.parse((await run(['usage', ...base, '--json'])).stdout);
		assert.ok(uj.keys.some((k) => k.id === created.record.id));

		const rv = await run(['keys', 'revoke', created.record.id, ...base]);
		assert.equal(rv.code, 0, rv.stderr);
		assert.equal((await postJson(d.url, INIT, { Authorization: `Bearer ${created.key}` })).status,
			401);

		// The token also comes from the environment; errors are clear and exit non-zero.
		const env = await run(['keys', 'list', '--admin', d.adminUrl],
			{ MCPWARDEN_ADMIN_TOKEN: TOKEN });
		assert.equal(env.code, 0, env.stderr);
		const bad = await run(['keys', 'list', '--admin', d.adminUrl],
			{ MCPWARDEN_ADMIN_TOKEN: 'wrong-token-wrong' });
		assert.notEqual(bad.code, 0);
		assert.match(bad.stderr, /401|token/);
		const none = await run(['keys', 'show', 'no-such', ...base]);
		assert.notEqual(none.code, 0);
		assert.match(none.stderr, /no key with id/);
		const notoken = await run(['keys', 'list', '--admin', d.adminUrl]);
		assert.notEqual(notoken.code, 0);
		assert.match(notoken.stderr, /token/);
	});
});

describe('admin token guessing', () => {
	let d;
	const stateDir = makeTempDir('mcpwarden-admin-guess-');
	before(async () => { d = await start(stateDir); });
	after(async () => { await d?.stop(); });

	test('a peer that keeps failing is held off with 429 and Retry-After, across reloads', async () => {
		for (let i = 0; i < 10; i++)
			assert.equal((await api(d, 'GET', '/v1/keys', undefined, `guess-${i}`)).status, 401);
		const held = await api(d, 'GET', '/v1/keys', undefined, 'guess-10');
		assert.equal(held.status, 429);
		assert.ok(Number(held.headers.get('retry-after')) > 0);
		assert.match(held.json.error, /too many failed token attempts/);
		// Held off before the token is looked at: the right one waits too.
		assert.equal((await api(d, 'GET', '/v1/keys')).status, 429);
		await d.waitForRecord((r) => r.type === 'admin' && r.action === 'auth' &&
			r.result === 'blocked');
		// A reload keeps the admin plane, and with it what it knows of this peer.
		assert.equal((await d.reload(config(stateDir))).ok, true);
		assert.equal((await api(d, 'GET', '/v1/keys')).status, 429);
	});
});
