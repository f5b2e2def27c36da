// Tool integrity and breakers through the real daemon, with the official SDK client: a tool
// whose definition changes after approval is withheld (lists, calls) until an operator approves
// it through the admin API or wardenctl, warn mode passes it on record, the lockfile; the loop
// breaker refuses repeated identical calls; an upstream's circuit opens, refuses fast, probes
// and closes (docs/tool-integrity.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, request as httpRequest } from 'node:http';
import { clientPool, eventually, faultStdioUpstream, fixturePaths, httpUpstream, makeTempDir, paths,
	removeTempDir, startDaemon, startFixture, stopDaemonChecked, suiteDaemon } from './lib.mjs';

const TOKEN = 'admin-token-for-integrity-tests-0123';
const ctl = join(paths.build, 'wardenctl');

function rugpull(name = 'rp', args = []) {
	return { name, transport: 'stdio', command: [paths.node, fixturePaths.rugpull, ...args] };
}

function config(extra = {}) {
	return { listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
		admin: { listen: '127.0.0.1:0', token: TOKEN }, upstreams: [rugpull()], ...extra };
}

async function api(d, method, path, body) {
	const headers = { Authorization: `Bearer ${TOKEN}` };
	if (body !== undefined)
		headers['Content-Type'] = 'application/json';
	const res = await fetch(d.adminUrl + path, { method, headers,
		body: body === undefined ? undefined : JSON.stringify(body) });
	return { status: res.status, json: await res.json().catch(() => null) };
}

const run = (args) => new Promise((res) => {
	execFile(ctl, args, { env: { PATH: process.env.PATH } }, (err, stdout, stderr) =>
		res({ code: err ? err.code : 0, stdout, stderr }));
});

// Every daemon here must end clean: exit 0, no sanitizer report.
async function stop(d) {
	if (d)
		assert.deepEqual(await stopDaemonChecked(d), []);
}

const names = async (c) => (await c.client.listTools()).tools.map((t) => t.name).sort();

describe('pinned tool definitions: withhold', () => {
	const pool = clientPool();
	let d, dir, tokenFile, c, changedNotes = 0;
	before(async () => {
		dir = makeTempDir('mcpwarden-pins-');
		tokenFile = join(dir, 'token');
		writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
		d = await startDaemon(config());
		await d.waitForUpstreams(['rp']);
		c = await pool.connectWithStream(d.url);
		await c.streamOpen;
		c.client.setNotificationHandler((await import('@modelcontextprotocol/sdk/types.js'))
			.ToolListChangedNotificationSchema, () => { changedNotes++; });
	});
	after(async () => {
		await pool.closeAll();
		await stop(d);
		removeTempDir(dir);
	});

	test('first sight pins every tool (trust on first use), on record and in the store', async () => {
		assert.deepEqual(await names(c), ['add', 'rug-pull', 'stable']);
		const rec = await d.waitForRecord((r) => r.type === 'tool_pin' && r.tool === 'add');
		assert.equal(rec.how, 'first_use');
		assert.match(rec.digest, /^v2:[0-9a-f]{64}$/);
		const pins = await api(d, 'GET', '/v1/tools/pins');
		assert.equal(pins.status, 200);
		const add = pins.json.pins.find((p) => p.tool === 'add');
		assert.equal(add.state, 'pinned');
		assert.equal(add.digest, rec.digest);
		assert.equal(add.current_digest, rec.digest);
		const r = await c.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
		assert.equal(r.content[0].text, '5');
	});

	test('a changed definition is withheld from the list and its calls refused', async () => {
		await c.client.callTool({ name: 'rug-pull', arguments: {} });
		await eventually(async () => !(await names(c)).includes('add'),
			{ what: 'add withheld from tools/list' });
		assert.deepEqual(await names(c), ['rug-pull', 'stable']);
		await eventually(() => changedNotes > 0, { what: 'tools/list_changed to the client' });
		await assert.rejects(c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }),
			(e) => e.code === -32012 && /add changed since it was approved/.test(e.message) &&
				/wardenctl tools approve rp\/add/.test(e.message));
		// the refusal is a decision on record, and spends nothing upstream
		const dec = await d.waitForRecord((r) => r.type === 'decision' && r.target === 'add' &&
			r.decision === 'deny');
		assert.equal(dec.error_code, -32012);
		// the other tools of the server are untouched
		const s = await c.client.callTool({ name: 'stable', arguments: {} });
		assert.equal(s.content[0].text, 'stable');
	});

	test('the change is one tool_change record with a readable diff', async () => {
		const rec = await d.waitForRecord((r) => r.type === 'tool_change' && r.tool === 'add');
		assert.equal(rec.server, 'rp');
		assert.match(rec.old_digest, /^v2:[0-9a-f]{64}$/);
		assert.notEqual(rec.old_digest, rec.new_digest);
		assert.deepEqual(rec.diff.changed, ['description', 'inputSchema']);
		assert.equal(rec.diff.description.old, 'Add two numbers.');
		assert.match(rec.diff.description.new, /read ~\/\.ssh\/id_rsa/);
		// listed again (a refresh): not recorded twice
		assert.equal(d.stdoutRecords.filter((r) => r.type === 'tool_change').length, 1);
		const pins = await api(d, 'GET', '/v1/tools/pins?state=changed');
		assert.equal(pins.json.pins.length, 1);
		assert.equal(pins.json.pins[0].tool, 'add');
		assert.equal(pins.json.pins[0].current_digest, rec.new_digest);
		assert.match(pins.json.pins[0].diff.description.new, /id_rsa/);
	});

	test('wardenctl tools diff shows it and exits 1', async () => {
		const r = await run(['tools', 'diff', '--admin', d.adminUrl, '--token-file', tokenFile]);
		assert.equal(r.code, 1, r.stderr);
		assert.match(r.stdout, /^changed\s+rp\/add/m);
		assert.match(r.stdout, /- description: Add two numbers\./);
		assert.match(r.stdout, /\+ description: .*id_rsa/);
		assert.match(r.stdout, /^pinned\s+rp\/stable/m);
	});

	test('approving through the admin API restores it; approval is on record', async () => {
		const bad = await api(d, 'POST', '/v1/tools/pins/rp/nosuch/approve');
		assert.equal(bad.status, 404);
		const r = await api(d, 'POST', '/v1/tools/pins/rp/add/approve', { by: 'alice' });
		assert.equal(r.status, 200, JSON.stringify(r.json));
		assert.equal(r.json.state, 'pinned');
		await eventually(async () => (await names(c)).includes('add'), { what: 'add listed again' });
		const sum = await c.client.callTool({ name: 'add', arguments: { a: 20, b: 22 } });
		assert.equal(sum.content[0].text, '42');
		const pin = await d.waitForRecord((x) => x.type === 'tool_pin' && x.how === 'approved');
		assert.equal(pin.by, 'alice');
		await d.waitForRecord((x) => x.type === 'admin' && x.action === 'tool.approve' &&
			x.result === 'ok');
		const again = await api(d, 'POST', '/v1/tools/pins/rp/add/approve');
		assert.equal(again.status, 200);  // already approved: nothing to do
	});

	test('wardenctl tools pin writes the lockfile; tools diff exits 0', async () => {
		const lock = join(dir, 'tools.lock.json');
		const r = await run(['tools', 'pin', '--lockfile', lock, '--admin', d.adminUrl,
			'--token-file', tokenFile]);
		assert.equal(r.code, 0, r.stderr);
		const pins = (await api(d, 'GET', '/v1/tools/pins')).json.pins;
		const written = JSON.parse(readFileSync(lock, 'utf8'));
		assert.deepEqual(Object.keys(written), ['rp']);
		for (const p of pins)
			assert.equal(written.rp[p.tool], p.digest);
		const diff = await run(['tools', 'diff', '--admin', d.adminUrl, '--token-file', tokenFile]);
		assert.equal(diff.code, 0, diff.stdout + diff.stderr);
	});
});

describe('pinned tool definitions: approvals survive a restart; wardenctl approve; lockfile', () => {
	const pool = clientPool();
	let dir, tokenFile;
	before(() => {
		dir = makeTempDir('mcpwarden-pins2-');
		tokenFile = join(dir, 'token');
		writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
	});
	after(async () => {
		await pool.closeAll();
		removeTempDir(dir);
	});

	test('an upstream that turns by itself after approval stays withheld across restarts until ' +
		'approved with wardenctl', async () => {
		const state = join(dir, 'state');
		// first run: the first list is approved on sight, then the server changes by itself
		const cfg = config({ state_dir: state, upstreams: [rugpull('rp', ['--change-after-lists', '1'])] });
		let d = await startDaemon(cfg);
		await d.waitForRecord((r) => r.type === 'tool_change' && r.tool === 'add', 15000);
		await stop(d);
		// second run: the server lists the changed tool from the start; the pin in the store
		// still says the old one
		d = await startDaemon(config({ state_dir: state, upstreams: [rugpull('rp', ['--changed'])] }));
		try {
			await d.waitForUpstreams(['rp']);
			const c = await pool.connect(d.url);
			assert.deepEqual(await names(c), ['rug-pull', 'stable']);
			const r = await run(['tools', 'approve', 'rp/add', '--by', 'bob', '--admin', d.adminUrl,
				'--token-file', tokenFile]);
			assert.equal(r.code, 0, r.stderr);
			assert.match(r.stdout, /approved rp\/add/);
			await eventually(async () => (await names(c)).includes('add'), { what: 'add approved' });
		} finally {
			await stop(d);
		}
	});

	test('a lockfile digest wins over a pin and withholds a definition that differs', async () => {
		const lock = join(dir, 'lock.json');
		writeFileSync(lock, JSON.stringify({ rp: { stable: createHash('sha256').update('x')
			.digest('hex') } }));
		const d = await startDaemon(config({ tool_pins: { lockfile: lock } }));
		try {
			await d.waitForUpstreams(['rp']);
			const c = await pool.connect(d.url);
			assert.deepEqual(await names(c), ['add', 'rug-pull']);
			const rec = await d.waitForRecord((r) => r.type === 'tool_change' && r.tool === 'stable');
			assert.equal(rec.diff.previous_unknown, true);
		} finally {
			await stop(d);
		}
		// a lockfile that is not one is a configuration error
		writeFileSync(lock, JSON.stringify({ rp: { stable: 'nope' } }));
		await assert.rejects(startDaemon(config({ tool_pins: { lockfile: lock } }), { timeoutMs: 5000 }));
	});

	test('require_approval: a new tool waits too', async () => {
		const d = await startDaemon(config({ tool_pins: { require_approval: true } }));
		try {
			await d.waitForUpstreams(['rp']);
			const c = await pool.connect(d.url);
			assert.deepEqual(await names(c), []);
			await assert.rejects(c.client.callTool({ name: 'stable', arguments: {} }),
				(e) => e.code === -32012 && /new and waits for an operator's approval/.test(e.message));
			assert.equal((await api(d, 'POST', '/v1/tools/pins/rp/stable/approve')).status, 200);
			await eventually(async () => (await names(c)).includes('stable'), { what: 'stable approved' });
		} finally {
			await stop(d);
		}
	});
});

describe('pinned tool definitions: _meta and digest versions', () => {
	const pool = clientPool();
	after(async () => { await pool.closeAll(); });

	test('a changed _meta alone (an MCP App\'s ui:// resource) is withheld until approved',
		async () => {
			const d = await startDaemon(config({ upstreams: [rugpull('rp', ['--meta-only'])] }));
			try {
				await d.waitForUpstreams(['rp']);
				const c = await pool.connect(d.url);
				const listed = (await c.client.listTools()).tools.find((t) => t.name === 'add');
				assert.equal(listed._meta.ui.resourceUri, 'ui://rp/add-v1');
				await c.client.callTool({ name: 'rug-pull', arguments: {} });
				await eventually(async () => !(await names(c)).includes('add'),
					{ what: 'add withheld after its _meta changed' });
				await assert.rejects(c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }),
					(e) => e.code === -32012);
				const rec = await d.waitForRecord((r) => r.type === 'tool_change' &&
					r.tool === 'add');
				assert.deepEqual(rec.diff.changed, ['_meta']);
				assert.equal(rec.diff._meta.old.ui.resourceUri, 'ui://rp/add-v1');
				assert.equal(rec.diff._meta.new.ui.resourceUri, 'ui://rp/add-v2');
				const dir = makeTempDir('mcpwarden-pins-meta-');
				try {
					writeFileSync(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
					const diff = await run(['tools', 'diff', '--admin', d.adminUrl,
						'--token-file', join(dir, 'token')]);
					assert.equal(diff.code, 1, diff.stderr);
					assert.match(diff.stdout, /^changed\s+rp\/add/m);
					assert.match(diff.stdout, /- _meta: .*ui:\/\/rp\/add-v1/);
					assert.match(diff.stdout, /\+ _meta: .*ui:\/\/rp\/add-v2/);
				} finally {
					removeTempDir(dir);
				}
				assert.equal((await api(d, 'POST', '/v1/tools/pins/rp/add/approve')).status, 200);
				await eventually(async () => (await names(c)).includes('add'),
					{ what: 'add listed again' });
				const now = (await c.client.listTools()).tools.find((t) => t.name === 'add');
				assert.equal(now._meta.ui.resourceUri, 'ui://rp/add-v2');
			} finally {
				await stop(d);
			}
		});

	test('a version 1 digest (a lockfile\'s, or a pin from before _meta counted) that still ' +
		'matches is upgraded to v2 on sight; one that does not is a change', async () => {
		const dir = makeTempDir('mcpwarden-pins-v1-');
		const lock = join(dir, 'lock.json');
		// v1: the SHA-256 of the canonical definition without _meta
		const v1 = (def) => createHash('sha256').update(def).digest('hex');
		const stable = v1('{"description":"Never changes.","inputSchema":{"properties":{},' +
			'"type":"object"},"name":"stable"}');
		const add = v1('{"description":"Add two numbers.","inputSchema":{"properties":{"a":' +
			'{"type":"number"},"b":{"type":"number"}},"required":["a","b"],"type":"object"},' +
			'"name":"add"}');
		writeFileSync(lock, JSON.stringify({ rp: { stable, add, 'rug-pull': v1('{}') } }));
		const cfg = config({ state_dir: join(dir, 'state'), tool_pins: { lockfile: lock },
			upstreams: [rugpull('rp', ['--meta-only'])] });
		try {
			for (const run of [1, 2]) {     // the second start: upgraded pins in the store
				const d = await startDaemon(cfg);
				try {
					await d.waitForUpstreams(['rp']);
					const c = await pool.connect(d.url);
					// add (its v1 leaves out the _meta it has) and stable match: listed
					assert.deepEqual(await names(c), ['add', 'stable'], `start ${run}`);
					const pins = (await api(d, 'GET', '/v1/tools/pins')).json.pins;
					const by = Object.fromEntries(pins.map((p) => [p.tool, p]));
					assert.match(by.add.digest, /^v2:[0-9a-f]{64}$/);
					assert.equal(by.add.digest, by.add.current_digest);
					assert.equal(by.add.approved_by, 'lockfile');
					assert.equal(by.stable.state, 'pinned');
					assert.equal(by['rug-pull'].state, 'changed');
					// only the lockfile's wrong digest is a change on record
					await d.waitForRecord((r) => r.type === 'tool_change' && r.tool === 'rug-pull');
					assert.deepEqual(d.stdoutRecords.filter((r) => r.type === 'tool_change')
						.map((r) => r.tool), ['rug-pull']);
				} finally {
					await stop(d);
				}
			}
		} finally {
			removeTempDir(dir);
		}
	});
});

describe('pinned tool definitions: warn and per-policy modes', () => {
	const pool = clientPool();
	after(async () => { await pool.closeAll(); });

	test('warn passes the changed tool, with the change on record', async () => {
		const d = await startDaemon(config({ tool_pins: { mode: 'warn' } }));
		try {
			await d.waitForUpstreams(['rp']);
			const c = await pool.connect(d.url);
			await c.client.callTool({ name: 'rug-pull', arguments: {} });
			const rec = await d.waitForRecord((r) => r.type === 'tool_change' && r.tool === 'add');
			assert.deepEqual(rec.diff.changed, ['description', 'inputSchema']);
			await eventually(async () => {
				const t = (await c.client.listTools()).tools.find((x) => x.name === 'add');
				return t && /id_rsa/.test(t.description);
			}, { what: 'the changed add listed' });
			const r = await c.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
			assert.equal(r.content[0].text, '3');
			// the call's own record says it went through changed
			const dec = await d.waitForRecord((x) => x.type === 'decision' && x.target === 'add' &&
				x.decision === 'allow');
			assert.equal(dec.reason, 'tool changed since approval (tool_integrity warn)');
		} finally {
			await stop(d);
		}
	});

	test("each key gets its policy's tool_integrity", async () => {
		const strict = 'mcpw_strict-key-for-tests-aaaaaaaaaaaaaaaaaaaaaaaaaaa';
		const lax = 'mcpw_lax-key-for-tests-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
		const hash = (k) => `sha256:${createHash('sha256').update(k).digest('hex')}`;
		const d = await startDaemon(config({
			auth: { required: true },
			tool_pins: { mode: 'off' },
			policies: { strict: { tools: { allow: ['*/*'] }, tool_integrity: 'withhold' },
				lax: { tools: { allow: ['*/*'] }, tool_integrity: 'warn' } },
			keys: [{ id: 'strict', policy: 'strict', hash: hash(strict) },
				{ id: 'lax', policy: 'lax', hash: hash(lax) }],
		}));
		try {
			await d.waitForUpstreams(['rp']);
			const s = await pool.connect(d.url, { headers: { Authorization: `Bearer ${strict}` } });
			const l = await pool.connect(d.url, { headers: { Authorization: `Bearer ${lax}` } });
			await l.client.callTool({ name: 'rug-pull', arguments: {} });
			await eventually(async () => !(await names(s)).includes('add'), { what: 'withheld for strict' });
			assert.ok((await names(l)).includes('add'));
			await assert.rejects(s.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }),
				(e) => e.code === -32012);
			const r = await l.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
			assert.equal(r.content[0].text, '2');
		} finally {
			await stop(d);
		}
	});
});

describe('loop breaker', () => {
	const pool = clientPool();
	after(() => pool.closeAll());
	const key = 'mcpw_loop-key-for-tests-cccccccccccccccccccccccccccccc';
	const d = suiteDaemon({ listen: '127.0.0.1:0', prefix: 'never',
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [faultStdioUpstream('fault')],
		policies: { p: { tools: { allow: ['*/*'] }, loop_breaker: { max_repeats: 3, window: '1500ms' } } },
		keys: [{ id: 'looper', policy: 'p',
			hash: `sha256:${createHash('sha256').update(key).digest('hex')}` }] },
	{ ready: true, checked: true });

	test('N+1 identical calls: the last is refused; other arguments pass; after the window again',
		async () => {
			const c = await pool.connect(d.url, { headers: { Authorization: `Bearer ${key}` } });
			const echo = (text) => c.client.callTool({ name: 'echo', arguments: { text } });
			const t0 = Date.now();
			for (let i = 0; i < 3; i++)
				assert.equal((await echo('same')).content[0].text, 'fault: same');
			await assert.rejects(echo('same'), (e) => e.code === -32013 &&
				/Loop detected: tool echo was called with the same arguments 3 times/.test(e.message) &&
				e.data?.type === 'loop_detected' && e.data.max_repeats === 3);
			assert.ok(Date.now() - t0 < 1500, 'the calls were slower than the window');
			assert.equal((await echo('other')).content[0].text, 'fault: other');
			const rec = await d.waitForRecord((r) => r.type === 'loop_break');
			assert.equal(rec.key, 'looper');
			assert.equal(rec.tool, 'echo');
			const m = await fetch(`${d.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
			assert.match(await m.text(), /^mcpwarden_loop_breaks_total 1$/m);
			await new Promise((r) => setTimeout(r, 1600 - (Date.now() - t0)));
			assert.equal((await echo('same')).content[0].text, 'fault: same');
		});
});

describe('upstream circuit breaker', () => {
	const pool = clientPool();
	after(() => pool.closeAll());
	const d = suiteDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
		admin: { listen: '127.0.0.1:0', token: TOKEN },
		upstreams: [faultStdioUpstream('fault', { request_timeout_ms: 300,
			circuit: { failures: 2, window: '10s', open_for: '1s' } })] },
	{ ready: true, checked: true });

	const state = async () => {
		const m = await fetch(`${d.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
		return Number(/^mcpwarden_upstream_circuit_state\{upstream="fault"\} (\d)$/m.exec(await m.text())?.[1]);
	};

	test('failures open it; open refuses fast; half-open probes; success closes', async () => {
		const c = await pool.connect(d.url);
		const call = (name, args = {}) => c.client.callTool({ name, arguments: args });
		assert.equal(await state(), 0);
		for (let i = 0; i < 2; i++)
			await assert.rejects(call('hang'), (e) => e.code === -32011);
		await d.waitForRecord((r) => r.type === 'circuit' && r.to === 'open');
		assert.equal(await state(), 1);
		// open: refused at once, naming the upstream and when it retries; nothing sent
		const t = Date.now();
		await assert.rejects(call('echo', { text: 'x' }), (e) => e.code === -32014 &&
			/upstream fault is failing \(circuit open\)/.test(e.message) &&
			e.data.server === 'fault' && e.data.retry_after_ms > 0);
		assert.ok(Date.now() - t < 250);
		// half-open: the probe fails, it opens again
		await new Promise((r) => setTimeout(r, 1100));
		await assert.rejects(call('hang'), (e) => e.code === -32011);
		await d.waitForRecord((r) => r.type === 'circuit' && r.from === 'half_open' && r.to === 'open');
		await assert.rejects(call('echo', { text: 'x' }), (e) => e.code === -32014);
		// the upstream answers again: the probe closes it
		await new Promise((r) => setTimeout(r, 1100));
		assert.equal((await call('echo', { text: 'back' })).content[0].text, 'fault: back');
		await d.waitForRecord((r) => r.type === 'circuit' && r.to === 'closed');
		assert.equal(await state(), 0);
		assert.equal((await call('echo', { text: 'again' })).content[0].text, 'fault: again');
	});
});

describe('upstream circuit breaker: HTTP 5xx', () => {
	const pool = clientPool();
	let fixture, proxy, d, failing = false;
	before(async () => {
		fixture = await startFixture();
		const target = new URL(fixture.url);
		// In front of the fixture: while `failing`, every tools/call is answered 503.
		proxy = createServer((req, res) => {
			const chunks = [];
			req.on('data', (c) => chunks.push(c));
			req.on('end', () => {
				const body = Buffer.concat(chunks);
				if (failing && body.includes('"tools/call"')) {
					res.writeHead(503, { 'Content-Type': 'text/plain' }).end('unavailable');
					return;
				}
				const up = httpRequest({ host: target.hostname, port: target.port, path: req.url,
					method: req.method, headers: req.headers }, (ur) => {
					res.writeHead(ur.statusCode, ur.headers);
					ur.pipe(res);
				});
				up.on('error', () => res.destroy());
				up.end(body);
			});
		});
		await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
		const url = `http://127.0.0.1:${proxy.address().port}${target.pathname}`;
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: false },
			upstreams: [httpUpstream(url, 'web', { circuit: { failures: 2, window: '10s',
				open_for: '500ms' } })] });
		await d.waitForUpstreams(['web']);
	});
	after(async () => {
		await pool.closeAll();
		await stop(d);
		proxy?.closeAllConnections();
		await new Promise((r) => (proxy ? proxy.close(r) : r()));
		await fixture?.stop();
	});

	test('5xx answers open it; it closes once the upstream answers again', async () => {
		const c = await pool.connect(d.url);
		const call = () => c.client.callTool({ name: 'test_simple_text', arguments: {} });
		assert.ok((await call()).content.length > 0);
		failing = true;
		for (let i = 0; i < 2; i++)
			await assert.rejects(call(), (e) => e.code === -32010 && /HTTP 503/.test(e.message));
		await assert.rejects(call(), (e) => e.code === -32014 && e.data.server === 'web');
		failing = false;
		await new Promise((r) => setTimeout(r, 600));
		assert.ok((await call()).content.length > 0);
		await d.waitForRecord((r) => r.type === 'circuit' && r.server === 'web' && r.to === 'closed');
	});
});
