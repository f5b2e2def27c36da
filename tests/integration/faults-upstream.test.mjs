// 10,000 upstream faults through the real daemon, then the same daemon checked for leaks. An HTTP
// upstream (a raw node:http server, so it can misbehave below the SDK) resets connections, hangs
// past request_timeout_ms, answers garbage, answers half a body and drips a body slower than the
// timeout; a stdio upstream floods its stderr and exits mid-call. What a user relies on: every
// failing call gets a JSON-RPC error naming the upstream (-32010 failed, -32011 timed out), never
// a hang or a crash; the daemon's descriptor count and RSS are flat (after a warm-up round vs
// after all of it, with the slack stated below); normal calls work afterwards.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { connectHttp, eventually, faultStdioUpstream, gatewayConfig, httpUpstream, startDaemon,
	stopDaemonChecked, waitUpstreamsReady } from './lib.mjs';

const UPSTREAM_FAILED = -32010;
const UPSTREAM_TIMEOUT = -32011;
const REQUEST_MS = 400;         // the HTTP upstream's request_timeout_ms: hangs cost this long
const WORKERS = 24;             // calls in flight at once
const FD_SLACK = 4;             // a few more descriptors of other kinds
// The HTTP client keeps idle keep-alive connections to the upstream, up to the peak of calls
// in flight (WORKERS): how many are pooled when measured depends on timing, not on the faults.
// A leak of a connection per fault would exceed this bound many times over.
const UPSTREAM_MAX = WORKERS + FD_SLACK;
const RSS_SLACK_KB = 12 * 1024; // allocator and sanitizer noise (ASan quarantine capped below)

// The faults of the main round: name -> how many. 10,000 in all with the stdio ones.
const HTTP_FAULTS = { reset: 2200, garbage: 2200, half: 2200, hang: 400, slow: 400, ok: 2070 };
const STDIO_FAULTS = { flood: 500, crash: 30 };

const HTTP_TOOLS = ['ok', 'reset', 'garbage', 'half', 'hang', 'slow'].map((name) => ({
	name, description: `${name} on request`, inputSchema: { type: 'object' } }));

/** A Streamable HTTP MCP server, JSON answers only, whose tools misbehave on the wire. */
function startFlakyHttp() {
	const open = new Set();
	const server = createServer((req, res) => {
		open.add(res);
		res.on('close', () => open.delete(res));
		if (req.method === 'DELETE') {
			res.writeHead(200).end();
			return;
		}
		if (req.method !== 'POST') {
			res.writeHead(405, { Allow: 'POST, DELETE' }).end();
			return;
		}
		let body = '';
		req.setEncoding('utf8');
		req.on('data', (d) => { body += d; });
		req.on('end', () => {
			let msg;
			try {
				msg = JSON.parse(body);
			} catch {
				res.writeHead(400).end();
				return;
			}
			if (msg.id === undefined) {
				res.writeHead(202).end();
				return;
			}
			const send = (payload) => {
				const text = JSON.stringify({ jsonrpc: '2.0', id: msg.id, ...payload });
				res.writeHead(200, { 'Content-Type': 'application/json', 'Mcp-Session-Id': 'flaky-1',
					'Content-Length': Buffer.byteLength(text) }).end(text);
			};
			if (msg.method === 'initialize')
				return send({ result: { protocolVersion: msg.params.protocolVersion,
					capabilities: { tools: {} }, serverInfo: { name: 'flaky', version: '1' } } });
			if (msg.method === 'tools/list')
				return send({ result: { tools: HTTP_TOOLS } });
			if (msg.method === 'ping')
				return send({ result: {} });
			if (msg.method !== 'tools/call')
				return send({ error: { code: -32601, message: 'no such method' } });
			switch (msg.params.name) {
			case 'ok':
				return send({ result: { content: [{ type: 'text', text: 'ok' }] } });
			case 'reset':
				req.socket.resetAndDestroy();
				return;
			case 'garbage':
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end('<html>\x00\xff not json at all {"jsonrpc":');
				return;
			case 'half': {
				const text = JSON.stringify({ jsonrpc: '2.0', id: msg.id,
					result: { content: [{ type: 'text', text: 'x'.repeat(500) }] } });
				res.writeHead(200, { 'Content-Type': 'application/json',
					'Content-Length': Buffer.byteLength(text) });
				res.write(text.slice(0, 100), () => req.socket.destroy());
				return;
			}
			case 'hang':
				return;         // the daemon gives up after REQUEST_MS and closes the connection
			case 'slow': {
				// a valid answer, one byte every 100 ms: it would take far longer than REQUEST_MS
				const text = JSON.stringify({ jsonrpc: '2.0', id: msg.id,
					result: { content: [{ type: 'text', text: 'slow' }] } });
				res.writeHead(200, { 'Content-Type': 'application/json',
					'Content-Length': Buffer.byteLength(text) });
				let i = 0;
				const drip = setInterval(() => {
					if (res.destroyed || i >= text.length) {
						clearInterval(drip);
						return;
					}
					res.write(text[i++]);
				}, 100);
				res.on('close', () => clearInterval(drip));
				return;
			}
			default:
				return send({ error: { code: -32602, message: 'unknown tool' } });
			}
		});
	});
	return new Promise((res) => server.listen(0, '127.0.0.1', () => res({
		url: `http://127.0.0.1:${server.address().port}/mcp`,
		openRequests: () => open.size,
		stop: () => new Promise((r) => {
			for (const x of open)
				x.destroy();
			server.closeAllConnections();
			server.close(() => r());
		}),
	})));
}

/** TCP sockets of pid by inode: { local, remote } ports (from /proc/<pid>/net/tcp{,6}). */
function tcpPorts(pid) {
	const byInode = new Map();
	for (const f of ['tcp', 'tcp6']) {
		let text = '';
		try {
			text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
		} catch {
			continue;
		}
		for (const line of text.split('\n').slice(1)) {
			const c = line.trim().split(/\s+/);
			if (c.length < 10)
				continue;
			byInode.set(c[9], { local: parseInt(c[1].split(':').pop(), 16),
				remote: parseInt(c[2].split(':').pop(), 16) });
		}
	}
	return byInode;
}

/**
 * The daemon's descriptors by kind: "agent" (sockets of the agents' connections: the test
 * client's keep-alive pool decides how many stay open), "upstream" (to the HTTP upstream),
 * "socket" (others: listeners, the admin plane), "pipe", paths, anon inodes.
 */
function fdKinds(pid, agentPort, upstreamPort) {
	const kinds = {};
	const tcp = tcpPorts(pid);
	for (const fd of readdirSync(`/proc/${pid}/fd`)) {
		let k;
		try {
			k = readlinkSync(`/proc/${pid}/fd/${fd}`);
		} catch {
			continue;
		}
		const sock = /^socket:\[(\d+)\]$/.exec(k);
		if (sock) {
			const p = tcp.get(sock[1]);
			k = p && p.remote && p.local === agentPort ? 'agent'
				: p && p.remote === upstreamPort ? 'upstream' : 'socket';
		} else {
			k = k.replace(/:\[\d+\]$/, '').replace(/^.*\/state\//, 'state/');
		}
		kinds[k] = (kinds[k] ?? 0) + 1;
	}
	return kinds;
}

/** Descriptors the daemon holds for itself: all but the agents' connections and the pooled
 * upstream connections (bounded on their own). */
const ownFds = (kinds) => Object.entries(kinds).reduce((n, [k, v]) =>
	n + (k === 'agent' || k === 'upstream' ? 0 : v), 0);

function rssKb(pid) {
	return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

/** Shuffled list of [server, tool] for a round. */
function plan(http, stdio, scale = 1) {
	const calls = [];
	for (const [tool, n] of Object.entries(http))
		for (let i = 0; i < Math.ceil(n * scale); i++)
			calls.push(['flaky', tool]);
	for (const [tool, n] of Object.entries(stdio))
		for (let i = 0; i < Math.ceil(n * scale); i++)
			calls.push(['fault', tool]);
	for (let i = calls.length - 1; i > 0; i--) {
		const j = Math.floor(Math.random() * (i + 1));
		[calls[i], calls[j]] = [calls[j], calls[i]];
	}
	return calls;
}

describe('10,000 upstream faults', { timeout: 300000 }, () => {
	let flaky = null;
	let daemon = null;
	const clients = [];
	after(async () => {
		await Promise.all(clients.map((c) => c.close()));
		if (daemon)
			await daemon.kill();
		if (flaky)
			await flaky.stop();
	});

	test('each gets a JSON-RPC error naming its upstream; descriptors and RSS stay flat; ' +
		'normal calls work after', async (t) => {
		flaky = await startFlakyHttp();
		const asan = process.env.ASAN_OPTIONS ?? '';
		daemon = await startDaemon(gatewayConfig([
			httpUpstream(flaky.url, 'flaky', { request_timeout_ms: REQUEST_MS, connect_timeout_ms: 1000 }),
			faultStdioUpstream('fault', { request_timeout_ms: 5000 }),
		], { prefix: 'always' }), {
			// ASan keeps freed memory in a quarantine (256 MiB by default): RSS would only
			// measure it filling up. A small one still catches use-after-free of recent frees.
			env: { ASAN_OPTIONS: `${asan}${asan ? ':' : ''}quarantine_size_mb=4:thread_local_quarantine_size_kb=256` },
		});
		await waitUpstreamsReady(daemon, ['flaky', 'fault']);
		const pid = daemon.proc.pid;
		for (let i = 0; i < 4; i++)
			clients.push(await connectHttp(daemon.url));

		const seen = {};        // "tool code" -> count
		const bad = [];         // what no user should ever get
		const run = async (calls) => {
			let next = 0;
			const worker = async (w) => {
				const c = clients[w % clients.length];
				while (next < calls.length) {
					const [server, tool] = calls[next++];
					// flood: echo with 16 KiB of stderr lines first
					const [name, args] = tool === 'flood' ? ['echo', { text: 'f', flood_kb: 16 }] : [tool, {}];
					try {
						const r = await c.client.callTool({ name: `${server}__${name}`, arguments: args },
							undefined, { timeout: 20000 });
						seen[`${tool} ok`] = (seen[`${tool} ok`] ?? 0) + 1;
						if (!['ok', 'flood'].includes(tool))
							bad.push(`${tool}: answered ${JSON.stringify(r).slice(0, 200)}`);
					} catch (e) {
						seen[`${tool} ${e.code}`] = (seen[`${tool} ${e.code}`] ?? 0) + 1;
						if (![UPSTREAM_FAILED, UPSTREAM_TIMEOUT].includes(e.code) ||
						    e.data?.server !== server || !e.message.includes(server))
							bad.push(`${tool}: ${e.code} ${e.message} ${JSON.stringify(e.data)}`);
					}
				}
			};
			await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
		};
		const settle = async () => {
			// no request left at the upstream (hangs and drips given up on), the child back
			await eventually(() => flaky.openRequests() === 0, { ms: 10000, what: 'upstream idle' });
			await eventually(async () => {
				const r = await clients[0].client.callTool({ name: 'fault__echo', arguments: { text: 'up' } });
				return r.content[0].text === 'fault: up';
			}, { ms: 30000, every: 250, what: 'the stdio child serves' });
			await new Promise((r) => setTimeout(r, 500));
		};

		// Warm-up: a tenth of the mix, so caches, pools and the allocator reach their size.
		await run(plan(HTTP_FAULTS, STDIO_FAULTS, 0.1));
		await settle();
		const agentPort = Number(new URL(daemon.url).port), upPort = Number(new URL(flaky.url).port);
		const kinds0 = fdKinds(pid, agentPort, upPort), rss0 = rssKb(pid);
		const calls = plan(HTTP_FAULTS, STDIO_FAULTS);
		const started = Date.now();
		await run(calls);
		await settle();
		const kinds1 = fdKinds(pid, agentPort, upPort), rss1 = rssKb(pid);
		const fd0 = ownFds(kinds0), fd1 = ownFds(kinds1);
		t.diagnostic(`${calls.length} calls in ${Date.now() - started} ms; outcomes (warm-up included): ` +
			Object.entries(seen).sort().map(([k, v]) => `${k}=${v}`).join(', '));
		t.diagnostic(`own descriptors ${fd0} -> ${fd1}; RSS ${rss0} -> ${rss1} kB`);
		t.diagnostic(`descriptors by kind: ${JSON.stringify(kinds0)} -> ${JSON.stringify(kinds1)}`);

		assert.equal(calls.length, 10000);
		assert.deepEqual(bad.slice(0, 10), [], `${bad.length} wrong outcomes`);
		for (const tool of ['reset', 'garbage', 'half', 'hang', 'slow', 'crash'])
			assert.ok(!seen[`${tool} ok`], `${tool} never answers a result`);
		assert.ok((seen[`hang ${UPSTREAM_TIMEOUT}`] ?? 0) > 0, 'hangs time out with -32011');
		assert.ok(fd1 <= fd0 + FD_SLACK, `descriptors grew: ${fd0} -> ${fd1}`);
		assert.ok((kinds1.upstream ?? 0) <= UPSTREAM_MAX,
			`upstream connections: ${kinds1.upstream} > ${UPSTREAM_MAX}`);
		assert.ok(rss1 <= rss0 + RSS_SLACK_KB, `RSS grew: ${rss0} -> ${rss1} kB`);

		// Normal calls work, on both upstreams, in a new session as in the old ones.
		const fresh = await connectHttp(daemon.url);
		clients.push(fresh);
		for (const c of [clients[0], fresh]) {
			const a = await c.client.callTool({ name: 'flaky__ok', arguments: {} });
			assert.equal(a.content[0].text, 'ok');
			const b = await c.client.callTool({ name: 'fault__echo', arguments: { text: 'after' } });
			assert.equal(b.content[0].text, 'fault: after');
		}
		await Promise.all(clients.splice(0).map((c) => c.close()));
		const d = daemon;
		daemon = null;
		assert.deepEqual(await stopDaemonChecked(d), [], 'a clean exit, no sanitizer report');
	});
});
