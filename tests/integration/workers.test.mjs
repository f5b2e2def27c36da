// `workers: N`: N event loops, each a thread with a listener of its own on the same port
// (SO_REUSEPORT: the kernel spreads the connections). A session belongs to the loop that made
// it (its id's last two hex digits name the loop) and a request for it that lands on another
// loop is handed over, connection and all. What an agent relies on is that none of this
// shows: every session works whatever connection its requests come on, rate limits, budgets
// and session caps are as exact as with one loop, the connection caps are the process's, the
// 2026-07-28 stateless requests work, reloads keep both loops serving and a stop is clean.
// In front of server-everything over Streamable HTTP (one process, one upstream session per
// gateway session), and `--check-config` for what more than one loop refuses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { eventually, everythingUpstream, httpUpstream, makeKeys, makeTempDir, paths,
	rawRequest, removeTempDir, responseOf, startDaemon, startEverythingHttp, stopDaemonChecked } from './lib.mjs';

const V2026 = '2026-07-28';
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const rpc = (id, method, params) => ({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) });
const callMsg = (id, name, args) => rpc(id, 'tools/call', { name, arguments: args });
let nextId = 1;

/** One HTTP request, on a connection of its own unless agent (lib.mjs, rawRequest). */
const send = (url, opts = {}) => rawRequest(url, { timeoutMs: 20000, ...opts });

/** The loop a session id names: its last two hex digits. */
const loopOf = (id) => id.slice(-2);

/**
 * initialize and notifications/initialized, each on a fresh connection. Returns
 * { id, loop, headers (for later requests) }.
 */
async function openSession(url, key) {
	const init = await send(url, { headers: bearer(key), body: rpc(0, 'initialize', {
		protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'workers-test', version: '1' } }) });
	assert.equal(init.status, 200, `initialize: ${init.text}`);
	const id = init.headers['mcp-session-id'];
	assert.match(id ?? '', /^[0-9a-f]{64}$/, 'a session id is 64 hex digits');
	const version = responseOf(init)?.result?.protocolVersion;
	assert.equal(version, '2025-11-25', init.text);
	const headers = { ...bearer(key), 'Mcp-Session-Id': id, 'MCP-Protocol-Version': version };
	const n = await send(url, { headers, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
	assert.equal(n.status, 202, `notifications/initialized: ${n.text}`);
	return { id, loop: loopOf(id), headers };
}

/**
 * Sessions of key until there are at least `min` and at least `each` of every loop in
 * `loops` (sessions land where the kernel puts their initialize; 60 tries at most).
 */
async function openSpread(url, key, { min, each = 1, loops = ['00', '01'] }) {
	const out = [];
	const enough = () => out.length >= min &&
		loops.every((l) => out.filter((s) => s.loop === l).length >= each);
	while (!enough()) {
		if (out.length >= 60)
			assert.fail(`60 sessions and not ${each} on each of loops ${loops}: ` +
				out.map((s) => s.loop).join(' '));
		out.push(await openSession(url, key));
	}
	return out;
}

/** One tools/call on session s (fresh connection unless agent): the JSON-RPC response. */
async function call(url, s, name, args, agent) {
	const r = await send(url, { headers: s.headers, body: callMsg(nextId++, name, args), agent });
	assert.equal(r.status, 200, `tools/call ${name} on ${s.id}: HTTP ${r.status} ${r.text}`);
	const m = responseOf(r);
	assert.ok(m, `tools/call ${name}: no response in ${r.text}`);
	return m;
}

/** Responses split by outcome: { ok: results, refused: errors of `code` }; any other fails. */
function tally(responses, code) {
	const out = { ok: [], refused: [] };
	for (const m of responses) {
		if (m.result && !m.result.isError)
			out.ok.push(m.result);
		else if (m.error?.code === code)
			out.refused.push(m.error);
		else
			assert.fail(`neither a result nor a ${code} refusal: ${JSON.stringify(m)}`);
	}
	return out;
}

/** `mcpwarden --check-config` of config: { status, out (stdout and stderr) }. */
function checkConfig(dir, name, config) {
	const f = join(dir, `${name}.json`);
	writeFileSync(f, JSON.stringify(config));
	const r = spawnSync(paths.daemon, ['--check-config', f], { encoding: 'utf8', timeout: 15000 });
	return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

let srv = null;	// server-everything over Streamable HTTP, every daemon's upstream
before(async () => {
	srv = await startEverythingHttp();
});
after(() => srv?.stop());

const policies = { all: { tools: { allow: ['*/*'] } } };

test('config: workers > 1 is refused with a shared stdio upstream or Redis counters; 1..64 only',
	{ timeout: 30000 }, () => {
		const dir = makeTempDir('mcpwarden-workers-');
		try {
			const base = { listen: '127.0.0.1:0' };
			let r = checkConfig(dir, 'shared-stdio', { ...base, workers: 2, upstreams: [everythingUpstream()] });
			assert.notEqual(r.status, 0, r.out);
			assert.match(r.out, /upstreams\[0\]\.per_session: .*workers 2/, r.out);

			// the second upstream is the shared one: the path names it
			r = checkConfig(dir, 'second-shared', { ...base, workers: 4, upstreams: [
				everythingUpstream({ per_session: true }), { ...everythingUpstream(), name: 'other' }] });
			assert.notEqual(r.status, 0, r.out);
			assert.match(r.out, /upstreams\[1\]\.per_session: /, r.out);
			assert.doesNotMatch(r.out, /upstreams\[0\]/, r.out);

			// a Redis that is never contacted: --check-config reads the file only
			r = checkConfig(dir, 'redis', { ...base, workers: 2, upstreams: [everythingUpstream({ per_session: true })],
				counters: { backend: 'redis', url: 'redis://127.0.0.1:1/0' } });
			assert.notEqual(r.status, 0, r.out);
			assert.match(r.out, /^\s*workers: .*[Rr]edis/m, r.out);
			assert.doesNotMatch(r.out, /per_session/, r.out);

			for (const n of [0, 65, -1, 2.5, '2']) {
				r = checkConfig(dir, `workers-${n}`, { ...base, workers: n, upstreams: [httpUpstream('http://127.0.0.1:9/mcp')] });
				assert.notEqual(r.status, 0, `workers ${JSON.stringify(n)} must be refused: ${r.out}`);
				assert.match(r.out, /^\s*workers: /m, `workers ${JSON.stringify(n)}: ${r.out}`);
			}

			// what is accepted: per_session stdio, HTTP upstreams, the bounds, Redis with one loop,
			// a shared stdio upstream with one loop (the default)
			for (const [name, cfg] of [
				['per-session', { ...base, workers: 2, upstreams: [everythingUpstream({ per_session: true })] }],
				['http-64', { ...base, workers: 64, upstreams: [httpUpstream('http://127.0.0.1:9/mcp')] }],
				['one', { ...base, workers: 1, upstreams: [everythingUpstream()] }],
				['default', { ...base, upstreams: [everythingUpstream()] }],
				['redis-one', { ...base, workers: 1, upstreams: [everythingUpstream()],
					counters: { backend: 'redis', url: 'redis://127.0.0.1:1/0' } }],
			]) {
				r = checkConfig(dir, name, cfg);
				assert.equal(r.status, 0, `${name} must pass: ${r.out}`);
				assert.match(r.out, /: OK/, `${name}: ${r.out}`);
			}
		} finally {
			removeTempDir(dir);
		}
	});

describe('workers: 2 in front of server-everything over HTTP', { timeout: 120000 }, () => {
	const { k, keys } = makeKeys({ open: 'all', rated: 'all', spender: 'all', stateless: 'all' });
	let d = null;
	before(async () => {
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', workers: 2,
			upstreams: [httpUpstream(srv.url, 'everything')], keys, policies,
			rate_limits: { 'key:rated': { key: { requests: 10, per: 'hour' } } },
			costs: { default: '0', 'everything/echo': '0.25' },
			budgets: { 'key:spender': [{ name: 'cap', limit: '2.00', rolling: '7d' }] },
		}, { ready: true });
	});
	after(() => d?.stop(3000));

	test('sessions land on both loops, and every one lists and calls tools', async () => {
		await d.waitForStderr(/workers: 2 loops serve port \d+/, 1000);
		// 24 initializes, each on its own connection
		const sessions = await Promise.all(Array.from({ length: 24 }, () => openSession(d.url, k.open)));
		const loops = new Set(sessions.map((s) => s.loop));
		assert.deepEqual([...loops].sort(), ['00', '01'],
			`24 sessions, loops seen: ${sessions.map((s) => s.loop).join(' ')}`);
		assert.equal(new Set(sessions.map((s) => s.id)).size, 24, 'every id is new');

		const lists = await Promise.all(sessions.map(async (s) => {
			const r = await send(d.url, { headers: s.headers, body: rpc(nextId++, 'tools/list') });
			const m = responseOf(r);
			assert.ok(m?.result?.tools, `tools/list on loop ${s.loop}: ${r.text}`);
			return m.result.tools.map((t) => t.name).sort();
		}));
		assert.ok(lists[0].includes('echo') && lists[0].includes('get-sum'), lists[0].join(' '));
		for (const [i, l] of lists.entries())
			assert.deepEqual(l, lists[0], `session ${i} (loop ${sessions[i].loop}) lists the same tools`);

		const echoes = await Promise.all(sessions.map((s, i) =>
			call(d.url, s, 'echo', { message: `s${i}-${s.loop}` })));
		for (const [i, m] of echoes.entries())
			assert.equal(m.result?.content?.[0]?.text, `Echo: s${i}-${sessions[i].loop}`, JSON.stringify(m));
		await Promise.all(sessions.map((s) => send(d.url, { method: 'DELETE', headers: s.headers })));
	});

	test('requests reach their session from either loop; DELETE ends it wherever it lands', async () => {
		const sessions = await openSpread(d.url, k.open, { min: 4, each: 2 });
		const mine = [...sessions.filter((s) => s.loop === '00').slice(0, 2),
			...sessions.filter((s) => s.loop === '01').slice(0, 2)];
		// 8 requests a session, each on a fresh connection, all at once
		const jobs = [];
		for (const s of mine)
			for (let i = 0; i < 8; i++)
				jobs.push(i % 2
					? call(d.url, s, 'get-sum', { a: i, b: 100 }).then((m) =>
						assert.equal(m.result?.content?.[0]?.text, `The sum of ${i} and 100 is ${i + 100}.`,
							`loop ${s.loop}: ${JSON.stringify(m)}`))
					: send(d.url, { headers: s.headers, body: rpc(`p${i}`, 'ping') }).then((r) =>
						assert.deepEqual(responseOf(r)?.result, {}, `ping on loop ${s.loop}: ${r.text}`)));
		await Promise.all(jobs);

		// One keep-alive connection carrying both loops' sessions in turn: it moves to each
		// session's loop and keeps serving.
		const agent = new Agent({ keepAlive: true, maxSockets: 1 });
		try {
			const [a, b] = [mine[0], mine[2]];
			const reused = [];
			for (let i = 0; i < 8; i++) {
				const s = i % 2 ? b : a;
				const r = await send(d.url, { headers: s.headers, agent,
					body: callMsg(nextId++, 'echo', { message: `ka${i}` }) });
				assert.equal(responseOf(r)?.result?.content?.[0]?.text, `Echo: ka${i}`,
					`keep-alive request ${i} (loop ${s.loop}): HTTP ${r.status} ${r.text}`);
				reused.push(r.reused);
			}
			assert.deepEqual(reused, [false, true, true, true, true, true, true, true],
				'one connection served all eight (it was not closed at a hand-off)');
		} finally {
			agent.destroy();
		}

		// DELETE on a fresh connection ends the session of either loop
		for (const s of [mine[2], mine[0]]) {
			const del = await send(d.url, { method: 'DELETE', headers: s.headers });
			assert.equal(del.status, 200, `DELETE of a loop ${s.loop} session: ${del.text}`);
			for (let i = 0; i < 4; i++) {
				const r = await send(d.url, { headers: s.headers, body: rpc(`gone${i}`, 'ping') });
				assert.equal(r.status, 404, `a request on the ended loop ${s.loop} session: ${r.text}`);
			}
			const again = await send(d.url, { method: 'DELETE', headers: s.headers });
			assert.equal(again.status, 404, 'a second DELETE finds nothing');
		}
		// the other two are still there
		for (const s of [mine[1], mine[3]])
			assert.equal((await call(d.url, s, 'echo', { message: 'still' })).result?.content?.[0]?.text, 'Echo: still');

		// ids no loop made, naming loop 0, loop 1 and a loop that does not run: 404 wherever they land
		for (const suffix of ['00', '01', '02', '3f']) {
			const id = randomBytes(31).toString('hex') + suffix;
			for (let i = 0; i < 3; i++) {
				const r = await send(d.url, { headers: { ...bearer(k.open), 'Mcp-Session-Id': id,
					'MCP-Protocol-Version': '2025-11-25' }, body: rpc('x', 'ping') });
				assert.equal(r.status, 404, `unknown session ...${suffix}: HTTP ${r.status} ${r.text}`);
			}
		}
		for (const s of [mine[1], mine[3]])
			await send(d.url, { method: 'DELETE', headers: s.headers });
	});

	/**
	 * `calls` echo calls at once over sessions of key on both loops: exactly `room` answered,
	 * the rest refused with `code`, each naming what refused it (check). The sessions back.
	 */
	async function exactAcrossLoops(key, calls, room, code, check) {
		const sessions = await openSpread(d.url, key, { min: 8, each: 2 });
		const responses = await Promise.all(Array.from({ length: calls }, (_, i) =>
			call(d.url, sessions[i % sessions.length], 'echo', { message: `m${i}` })));
		const t = tally(responses, code);
		assert.equal(t.ok.length, room, `answered: ${t.ok.length}, refused: ${t.refused.length}`);
		assert.equal(t.refused.length, calls - room);
		for (const e of t.refused)
			check(e);
		return [sessions.find((x) => x.loop === '00'), sessions.find((x) => x.loop === '01')];
	}

	test('a key rate limit is exact across loops: 40 parallel calls, 10 answered, 30 refused -32004', async () => {
		const both = await exactAcrossLoops(k.rated, 40, 10, -32004,
			(e) => assert.equal(e.data?.limit, 'key', JSON.stringify(e)));
		// and it stays spent, from either loop
		for (const s of both)
			assert.equal((await call(d.url, s, 'echo', { message: 'more' })).error?.code, -32004);
	});

	test('a budget is exact across loops: room for 8 calls, 32 in parallel, 8 answered, 24 refused -32005', async () => {
		const both = await exactAcrossLoops(k.spender, 32, 8, -32005,
			(e) => assert.equal(e.data?.budget, 'cap', JSON.stringify(e)));
		// once every call has settled: spent exactly the limit, nothing reserved, from either loop
		for (const s of both) {
			const m = await call(d.url, s, 'echo', { message: 'one more' });
			assert.equal(m.error?.code, -32005, JSON.stringify(m));
			assert.deepEqual([m.error.data.spent, m.error.data.reserved, m.error.data.limit], ['2.00', '0.00', '2.00'],
				`loop ${s.loop}: ${JSON.stringify(m.error.data)}`);
		}
		// free tools still work on both loops
		for (const s of both)
			assert.ok((await call(d.url, s, 'get-sum', { a: 1, b: 2 })).result, 'a free call');
	});

	test('2026-07-28 stateless requests work on any connection', async () => {
		const meta = { 'io.modelcontextprotocol/protocolVersion': V2026,
			'io.modelcontextprotocol/clientCapabilities': {},
			'io.modelcontextprotocol/clientInfo': { name: 'agent-2026', version: '1' } };
		const post = (method, params = {}) => send(d.url, {
			headers: { ...bearer(k.stateless), 'MCP-Protocol-Version': V2026, 'Mcp-Method': method,
				...(params.name ? { 'Mcp-Name': params.name } : {}) },
			body: rpc(nextId++, method, { ...params, _meta: meta }) });
		const jobs = [];
		for (let i = 0; i < 8; i++) {
			jobs.push(post('server/discover').then((r) => {
				const m = responseOf(r);
				assert.equal(r.status, 200, r.text);
				assert.ok(m?.result?.supportedVersions?.includes(V2026), r.text);
				assert.equal(m.result._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'mcpwarden', r.text);
			}));
			jobs.push(post('tools/call', { name: 'echo', arguments: { message: `sl${i}` } }).then((r) => {
				assert.equal(r.status, 200, r.text);
				assert.equal(r.headers['mcp-session-id'], undefined, 'no session on a stateless answer');
				const res = responseOf(r)?.result;
				assert.equal(res?.resultType, 'complete', r.text);
				assert.equal(res.content?.[0]?.text, `Echo: sl${i}`, r.text);
			}));
			jobs.push(post('tools/list').then((r) => {
				const names = responseOf(r)?.result?.tools?.map((t) => t.name) ?? [];
				assert.ok(names.includes('echo'), r.text);
			}));
		}
		await Promise.all(jobs);
	});

	test('SIGTERM: exit status 0, no sanitizer report', async () => {
		const problems = await stopDaemonChecked(d);
		d = null;
		assert.deepEqual(problems, []);
	});
});

/**
 * A connection from localAddress that sends GET /healthz and keeps the socket: resolves with
 * { sock, head } once answered (or closed). A refused connection is answered at accept: with
 * wait true nothing is sent for a second (so no reset can lose that answer), then the GET, so
 * that one wrongly admitted says so with its 200.
 */
function healthConn(url, localAddress, wait = false) {
	const { hostname, port } = new URL(url);
	return new Promise((resolve, reject) => {
		const sock = net.connect({ host: hostname, port: Number(port), localAddress });
		let got = '';
		let done = false;
		let later = null;
		const finish = () => {
			if (!done) {
				done = true;
				clearTimeout(t);
				clearTimeout(later);
				resolve({ sock, head: got });
			}
		};
		const t = setTimeout(() => {
			sock.destroy();
			reject(new Error(`no answer to a connection from ${localAddress} in 10 s: ${got}`));
		}, 10000);
		const get = () => sock.write(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`);
		sock.on('connect', () => {
			if (wait)
				later = setTimeout(get, 1000);
			else
				get();
		});
		sock.on('data', (b) => {
			got += b.toString();
			const end = got.indexOf('\r\n\r\n');
			const len = /content-length: *(\d+)/i.exec(got);
			if (end >= 0 && len && got.length >= end + 4 + Number(len[1]))
				finish();
		});
		sock.on('error', () => {});
		sock.on('close', finish);
	});
}

describe('workers: 2, the caps are the process\'s', { timeout: 90000 }, () => {
	const { k, keys } = makeKeys({ capped: 'all' });
	let d = null;
	const socks = [];
	before(async () => {
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', workers: 2,
			upstreams: [httpUpstream(srv.url, 'everything')], keys, policies,
			limits: { max_connections: 4, max_connections_per_peer: 3, max_sessions_per_key: 3 },
		}, { ready: true });
	});
	after(async () => {
		for (const s of socks)
			s.destroy();
		await d?.stop(3000);
	});
	const hold = async (addr) => {
		const c = await healthConn(d.url, addr);
		socks.push(c.sock);
		assert.match(c.head, /^HTTP\/1\.1 200/, `a connection from ${addr} within the caps: ${c.head}`);
		assert.ok(!c.sock.destroyed && c.sock.readyState === 'open', `${addr}: kept open`);
		return c.sock;
	};
	const refused = async (addr, what) => {
		for (let i = 0; i < 6; i++) {
			const c = await healthConn(d.url, addr, true);
			c.sock.destroy();
			assert.match(c.head, /^HTTP\/1\.1 503 /,
				`connection ${i} from ${addr} past ${what}: ${c.head || '(closed, nothing read)'}`);
			assert.match(c.head, new RegExp(`limits\\.${what}\\b`), c.head);
		}
	};
	const release = (sock) => {
		sock.destroy();
		socks.splice(socks.indexOf(sock), 1);
	};
	// every test lets go of what it holds, passed or failed, so that the next starts with none
	// (and gives the daemon a moment to see them closed)
	const releaseAll = async () => {
		for (const s of socks.splice(0))
			s.destroy();
		await new Promise((r) => setTimeout(r, 300));
	};

	test('limits.max_connections counts every loop\'s connections against one cap', async (t) => {
		t.after(releaseAll);
		// four held, from two peers: each answered, so each was accepted and counted
		const held = [];
		for (const addr of ['127.0.0.1', '127.0.0.1', '127.0.0.2', '127.0.0.2'])
			held.push(await hold(addr));
		// a fifth, from a third peer, lands on either loop: 503 every time
		await refused('127.0.0.3', 'max_connections');
		// room again once one closes
		release(held[0]);
		const next = await eventually(async () => {
			const c = await healthConn(d.url, '127.0.0.3');
			if (/^HTTP\/1\.1 200/.test(c.head))
				return c;
			c.sock.destroy();
			return null;
		}, { ms: 5000, what: 'a connection admitted once one of the four closed' });
		socks.push(next.sock);
	});

	test('limits.max_connections_per_peer counts every loop\'s connections from a peer against one cap', async (t) => {
		t.after(releaseAll);
		await eventually(async () => {
			const c = await healthConn(d.url, '127.0.0.1');
			c.sock.destroy();
			return /^HTTP\/1\.1 200/.test(c.head);
		}, { ms: 5000, what: 'the previous test\'s connections released' });
		const held = [];
		for (let i = 0; i < 3; i++)
			held.push(await hold('127.0.0.1'));
		await refused('127.0.0.1', 'max_connections_per_peer');
		// another peer is still served (3 of 4 in all)
		const other = await healthConn(d.url, '127.0.0.2');
		other.sock.destroy();
		assert.match(other.head, /^HTTP\/1\.1 200/, other.head);
		release(held[0]);
		await eventually(async () => {
			const c = await healthConn(d.url, '127.0.0.1');
			c.sock.destroy();
			return /^HTTP\/1\.1 200/.test(c.head);
		}, { ms: 5000, what: 'the peer admitted again once one of its three closed' });
	});

	test('limits.max_sessions_per_key counts the key\'s sessions on every loop', async () => {
		// three sessions of the key, on both loops (one ended and another made until they are)
		const mine = [];
		for (let tries = 0; ; tries++) {
			while (mine.length < 3)
				mine.push(await openSession(d.url, k.capped));
			if (new Set(mine.map((s) => s.loop)).size === 2)
				break;
			assert.ok(tries < 30, `30 tries and the sessions are all on loop ${mine[0].loop}`);
			const gone = mine.pop();
			assert.equal((await send(d.url, { method: 'DELETE', headers: gone.headers })).status, 200);
		}
		// a fourth, whichever loop its initialize lands on: 429 -32006
		for (let i = 0; i < 8; i++) {
			const r = await send(d.url, { headers: bearer(k.capped), body: rpc(0, 'initialize', {
				protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fourth', version: '1' } }) });
			assert.equal(r.status, 429, `initialize ${i} past max_sessions_per_key 3: HTTP ${r.status} ${r.text}`);
			assert.equal(responseOf(r)?.error?.code, -32006, r.text);
		}
		// the three still work; one ended (DELETE of a loop 1 session) makes room
		for (const s of mine)
			assert.equal((await call(d.url, s, 'echo', { message: 'ok' })).result?.content?.[0]?.text, 'Echo: ok');
		const one = mine.find((s) => s.loop === '01');
		assert.equal((await send(d.url, { method: 'DELETE', headers: one.headers })).status, 200);
		const again = await openSession(d.url, k.capped);
		assert.equal((await call(d.url, again, 'echo', { message: 'room' })).result?.content?.[0]?.text, 'Echo: room');
	});

	test('SIGTERM: exit status 0, no sanitizer report', async () => {
		const problems = await stopDaemonChecked(d);
		d = null;
		assert.deepEqual(problems, []);
	});
});

describe('workers: 2 across reloads', { timeout: 90000 }, () => {
	const { k, keys } = makeKeys({ agent: 'all' });
	const config = (more = {}) => ({ listen: '127.0.0.1:0', prefix: 'never', workers: 2,
		upstreams: [httpUpstream(srv.url, 'everything')], keys, policies, ...more });
	let d = null;
	before(async () => {
		d = await startDaemon(config(), { ready: true });
	});
	after(() => d?.stop(3000));

	test('a governance-only reload keeps every session of both loops, and both read the new rules', async () => {
		const sessions = await openSpread(d.url, k.agent, { min: 4, each: 2 });
		for (const s of sessions)
			assert.ok((await call(d.url, s, 'get-sum', { a: 1, b: 1 })).result, 'get-sum before');
		const from = d.stderrLines.length;
		const r = await d.reload(config({ policies: { all: { tools: { allow: ['*/*'],
			deny: ['everything/get-sum'] } } } }));
		assert.equal(r.ok, true, JSON.stringify(r));
		assert.ok(d.stderrLines.slice(from).some((l) => /sessions and upstreams kept/.test(l)),
			d.stderrLines.slice(from).join('\n'));
		// every session, of both loops, goes on without initialize, under the new policy
		for (const s of sessions) {
			for (let i = 0; i < 3; i++) {
				const echo = await call(d.url, s, 'echo', { message: `after${i}` });
				assert.equal(echo.result?.content?.[0]?.text, `Echo: after${i}`,
					`loop ${s.loop} session after a governance reload: ${JSON.stringify(echo)}`);
				const sum = await call(d.url, s, 'get-sum', { a: 1, b: 1 });
				assert.equal(sum.error?.code, -32003, `loop ${s.loop}: the new policy denies get-sum: ${JSON.stringify(sum)}`);
			}
		}
		for (const s of sessions)
			await send(d.url, { method: 'DELETE', headers: s.headers });
	});

	test('a full reload restarts the loops: old sessions end (404), new ones land on both loops and work', async () => {
		const old = await openSpread(d.url, k.agent, { min: 2, each: 1 });
		const url = d.url;
		const from = d.stderrLines.length;
		const r = await d.reload(config({ limits: { max_body_bytes: 64 * 1024 } }), 20000);
		assert.equal(r.ok, true, JSON.stringify(r));
		const said = d.stderrLines.slice(from);
		assert.ok(!said.some((l) => /sessions and upstreams kept/.test(l)), 'a full reload:\n' + said.join('\n'));
		assert.equal(r.url, url, 'the same listener, the same port');
		await d.waitForUpstreams(['everything'], 20000, from);
		assert.ok(d.stderrLines.slice(from).some((l) => /workers: 2 loops serve port/.test(l)),
			`the other loop started again:\n${d.stderrLines.slice(from).join('\n')}`);
		for (const s of old) {
			const gone = await send(d.url, { headers: s.headers, body: rpc('g', 'ping') });
			assert.equal(gone.status, 404, `a loop ${s.loop} session of before the reload: ${gone.text}`);
		}
		const sessions = await openSpread(d.url, k.agent, { min: 8, each: 2 });
		for (const [i, s] of sessions.entries())
			assert.equal((await call(d.url, s, 'echo', { message: `new${i}` })).result?.content?.[0]?.text,
				`Echo: new${i}`, `loop ${s.loop}`);
		// the reloaded limit is in force on both loops: a 100 KiB body is past it on whichever
		// loop the connection lands (only the head is sent: refused on its Content-Length)
		const { hostname, port } = new URL(d.url);
		for (let i = 0; i < 8; i++) {
			const s = sessions[i % sessions.length];
			const text = await new Promise((resolve) => {
				const sock = net.connect(Number(port), hostname);
				let got = '';
				sock.on('data', (x) => { got += x.toString(); });
				sock.on('close', () => resolve(got));
				sock.on('error', () => {});
				sock.setTimeout(5000, () => sock.destroy());
				sock.write(`POST ${new URL(d.url).pathname} HTTP/1.1\r\nHost: ${hostname}\r\n` +
					'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
					`Authorization: ${s.headers.Authorization}\r\nMcp-Session-Id: ${s.id}\r\n` +
					'MCP-Protocol-Version: 2025-11-25\r\nContent-Length: 102400\r\n\r\n');
			});
			assert.match(text, /^HTTP\/1\.1 413 /, `a body past the reloaded max_body_bytes (64 KiB), ` +
				`try ${i}: ${text.slice(0, 300) || '(nothing: still waiting for the body?)'}`);
			assert.match(text, /max_body_bytes/, text);
		}
		// and a second full reload, back again
		const from2 = d.stderrLines.length;
		const again = await d.reload(config(), 20000);
		assert.equal(again.ok, true);
		await d.waitForUpstreams(['everything'], 20000, from2);
		const more = await openSpread(d.url, k.agent, { min: 4, each: 2 });
		for (const s of more)
			assert.ok((await call(d.url, s, 'get-sum', { a: 2, b: 3 })).result, `loop ${s.loop} after a second reload`);
	});

	test('a reload that changes workers: 3 loops serve, then 2 again', async () => {
		let from = d.stderrLines.length;
		assert.equal((await d.reload(config({ workers: 3 }), 20000)).ok, true);
		await d.waitForUpstreams(['everything'], 20000, from);
		assert.ok(d.stderrLines.slice(from).some((l) => /workers: 3 loops serve port/.test(l)),
			d.stderrLines.slice(from).join('\n'));
		const three = await openSpread(d.url, k.agent, { min: 6, each: 1, loops: ['00', '01', '02'] });
		for (const s of three)
			assert.equal((await call(d.url, s, 'echo', { message: s.loop })).result?.content?.[0]?.text,
				`Echo: ${s.loop}`, `loop ${s.loop} of 3`);
		const third = three.find((s) => s.loop === '02');

		from = d.stderrLines.length;
		assert.equal((await d.reload(config(), 20000)).ok, true);
		await d.waitForUpstreams(['everything'], 20000, from);
		const two = await openSpread(d.url, k.agent, { min: 12, each: 2 });
		assert.deepEqual([...new Set(two.map((s) => s.loop))].sort(), ['00', '01'], 'no third loop any more');
		for (const s of two)
			assert.ok((await call(d.url, s, 'get-sum', { a: 1, b: 2 })).result, `loop ${s.loop}`);
		// a session of the loop that is gone: 404 wherever its requests land
		for (let i = 0; i < 4; i++)
			assert.equal((await send(d.url, { headers: third.headers, body: rpc('x', 'ping') })).status, 404);
	});

	test('SIGTERM after reloads: exit status 0, no sanitizer report', async () => {
		const problems = await stopDaemonChecked(d);
		d = null;
		assert.deepEqual(problems, []);
	});
});

// A stdio upstream with a child per session: each loop starts and ends its sessions' children
// itself, and what a child tells its session (its lists changed) reaches the catalogue, which
// lives on the first loop, without another loop touching it (ThreadSanitizer runs this suite).
describe('workers: 2 with a per-session stdio upstream', { timeout: 90000 }, () => {
	const { k, keys } = makeKeys({ agent: 'all' });
	let d = null;
	before(async () => {
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', workers: 2,
			upstreams: [everythingUpstream({ per_session: true })], keys, policies },
		{ ready: true });
	});
	after(() => d?.stop(3000));

	test('sessions of both loops call tools through children of their own', async () => {
		const sessions = await openSpread(d.url, k.agent, { min: 6, each: 2 });
		const sums = await Promise.all(sessions.map((s, i) => call(d.url, s, 'get-sum', { a: i, b: 7 })));
		for (const [i, m] of sums.entries())
			assert.equal(m.result?.content?.[0]?.text, `The sum of ${i} and 7 is ${i + 7}.`,
				`loop ${sessions[i].loop}: ${JSON.stringify(m)}`);
		await Promise.all(sessions.map((s) => send(d.url, { method: 'DELETE', headers: s.headers })));
		// The catalogue's own child kept serving while the loops' children came and went.
		assert.ok(!d.stderrLines.some((l) => /writing to pid|tools\/list failed/.test(l)),
			d.stderrLines.filter((l) => /warn|error/.test(l)).join('\n'));
		const again = await openSpread(d.url, k.agent, { min: 2, each: 1 });
		for (const s of again) {
			const r = await send(d.url, { headers: s.headers, body: rpc(nextId++, 'tools/list') });
			assert.ok(responseOf(r)?.result?.tools?.some((t) => t.name === 'echo'), r.text);
		}
	});

	test('SIGTERM: exit status 0, no sanitizer report, no child left', async () => {
		const pid = d.proc.pid;
		const problems = await stopDaemonChecked(d);
		d = null;
		assert.deepEqual(problems, []);
		const left = spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().trim();
		assert.equal(left, '', `children of the daemon left: ${left}`);
	});
});
