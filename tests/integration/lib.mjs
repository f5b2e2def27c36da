// Helpers for the node:test integration tests (tests/integration/*.test.mjs): start the real
// daemon with a generated config, start the conformance fixture or the stock MCP servers, and
// talk to them with the official SDK client. Every process and temporary directory made here
// is tracked and removed when the test process exits, even after a failed assertion.
//
// Environment (exported by tests/run.sh): MCPWARDEN_BUILD (default build/test),
// MCPWARDEN_TOP (default: this checkout).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const here = dirname(fileURLToPath(import.meta.url));
const top = resolve(process.env.MCPWARDEN_TOP ?? join(here, '..', '..'));
const build = resolve(process.env.MCPWARDEN_BUILD ?? join(top, 'build', 'test'));
const node22 = join(top, 'tests', 'node_modules', 'node', 'bin', 'node');

/** Where things are. bin.* are the npm-installed MCP servers (run them with paths.node). */
export const paths = {
	top,
	build,
	daemon: join(build, 'mcpwarden'),
	node: existsSync(node22) ? node22 : process.execPath,
	fixture: join(top, 'tests', 'fixtures', 'conformance-server.mjs'),
	bin: {
		everything: binPath('mcp-server-everything'),
		memory: binPath('mcp-server-memory'),
		filesystem: binPath('mcp-server-filesystem'),
		conformance: binPath('conformance'),
	},
};

/** tests/node_modules/.bin/<name> */
export function binPath(name) {
	return join(top, 'tests', 'node_modules', '.bin', name);
}

/** The line the daemon prints on stderr once it accepts connections (and the admin one). */
export const LISTENING_RE = /^mcpwarden: listening on (http:\/\/\S+)/;
export const ADMIN_RE = /^mcpwarden: admin (?:listening )?on (http:\/\/\S+)/;

// ---- process and temp-dir bookkeeping ----

const live = new Set();	// child processes not yet exited
const tempDirs = new Set();

process.on('exit', () => {
	for (const p of live)
		try { p.kill('SIGKILL'); } catch { /* already gone */ }
	for (const d of tempDirs)
		rmSync(d, { recursive: true, force: true });
});

/** A fresh private temporary directory, removed at exit (or earlier by removeTempDir). */
export function makeTempDir(prefix = 'mcpwarden-test-') {
	const d = mkdtempSync(join(tmpdir(), prefix));
	tempDirs.add(d);
	return d;
}

export function removeTempDir(d) {
	rmSync(d, { recursive: true, force: true });
	tempDirs.delete(d);
}

// Spawn a tracked child whose stdout/stderr are split into lines. Returns
// { proc, exited: Promise<{code, signal}>, stdoutLines, stderrLines, waitFor(stream, re, ms),
//   stop(ms) }.
function spawnTracked(cmd, args, { env, cwd, name = cmd, onLine } = {}) {
	const proc = spawn(cmd, args, { env: { ...process.env, ...env }, cwd,
		stdio: ['ignore', 'pipe', 'pipe'] });
	live.add(proc);
	const lines = { stdout: [], stderr: [] };
	const watchers = [];	// { stream, re, resolve }
	const exited = new Promise((res) => {
		proc.on('exit', (code, signal) => {
			live.delete(proc);
			res({ code, signal });
		});
		proc.on('error', (err) => {
			live.delete(proc);
			lines.stderr.push(`${name}: ${err.message}`);
			res({ code: null, signal: null, error: err });
		});
	});
	for (const stream of ['stdout', 'stderr']) {
		createInterface({ input: proc[stream] }).on('line', (line) => {
			lines[stream].push(line);
			onLine?.(stream, line);
			for (let i = watchers.length - 1; i >= 0; i--) {
				const w = watchers[i];
				const m = w.stream === stream && w.re.exec(line);
				if (m) {
					watchers.splice(i, 1);
					w.resolve(m);
				}
			}
			if (process.env.MCPWARDEN_TEST_VERBOSE)
				process.stderr.write(`[${name} ${stream}] ${line}\n`);
		});
	}

	// Resolves with the regex match of the first line (already seen or future) that matches;
	// rejects when the process exits first or after ms.
	function waitFor(stream, re, ms = 15000) {
		for (const line of lines[stream]) {
			const m = re.exec(line);
			if (m)
				return Promise.resolve(m);
		}
		return new Promise((res, rej) => {
			const w = { stream, re, resolve: (m) => { clearTimeout(t); res(m); } };
			const fail = (why) => {
				const i = watchers.indexOf(w);
				if (i >= 0)
					watchers.splice(i, 1);
				rej(new Error(`${name}: ${why} while waiting for ${re} on ${stream}; ` +
					`stderr:\n${lines.stderr.slice(-40).join('\n')}`));
			};
			const t = setTimeout(() => fail(`timed out after ${ms} ms`), ms);
			watchers.push(w);
			exited.then(({ code, signal }) => {
				if (watchers.includes(w)) {
					clearTimeout(t);
					fail(`exited (code ${code}, signal ${signal})`);
				}
			});
		});
	}

	// SIGTERM, then SIGKILL after ms. Resolves with { code, signal } (signal 'SIGKILL' means it
	// did not stop in time).
	async function stop(ms = 10000) {
		if (proc.exitCode !== null || proc.signalCode !== null)
			return exited;
		proc.kill('SIGTERM');
		const t = setTimeout(() => proc.kill('SIGKILL'), ms);
		const r = await exited;
		clearTimeout(t);
		return r;
	}

	return { proc, exited, stdoutLines: lines.stdout, stderrLines: lines.stderr, waitFor, stop };
}

// ---- the daemon ----

/** The default test-mode config: loopback, ephemeral port, no prefix, no auth. */
export function gatewayConfig(upstreams, overrides = {}) {
	return { listen: '127.0.0.1:0', prefix: 'never', auth: { required: false }, upstreams,
		...overrides };
}

/** An upstream entry for an HTTP MCP server (e.g. the fixture's url). */
export function httpUpstream(url, name = 'fixture', extra = {}) {
	return { name, transport: 'http', url, ...extra };
}

/** An upstream entry that has the daemon spawn the conformance fixture over stdio. */
export function fixtureStdioUpstream(name = 'fixture', extra = {}) {
	return { name, transport: 'stdio', command: [paths.node, paths.fixture, '--stdio'], ...extra };
}

/** An upstream entry for one of the npm MCP servers over stdio (bin: a paths.bin value). */
export function npmStdioUpstream(name, bin, args = [], extra = {}) {
	return { name, transport: 'stdio', command: [paths.node, bin, ...args], ...extra };
}

/**
 * Write config to a temp file, run `mcpwarden -c file`, wait for the listening line.
 * opts: { args: extra argv, env: extra environment, timeoutMs: start-up bound (15 s) }.
 * Returns { url, adminUrl (getter; null until printed), proc, dir, configPath,
 *   stderrLines, stdoutLines, stdoutRecords (stdout lines that parse as JSON), exited,
 *   waitForStderr(re, ms), waitForRecord(pred, ms), stop(ms) -> {code, signal} }.
 * The temp dir (config, and state_dir unless the config sets one) goes away on stop().
 */
export async function startDaemon(config, opts = {}) {
	const dir = makeTempDir('mcpwarden-daemon-');
	mkdirSync(join(dir, 'state'));
	const cfg = { state_dir: join(dir, 'state'), ...config };
	const configPath = join(dir, 'config.json');
	writeFileSync(configPath, JSON.stringify(cfg, null, 2));
	const stdoutRecords = [];
	const recordWaiters = [];	// { pred, resolve }
	const onLine = (stream, line) => {
		if (stream !== 'stdout')
			return;
		let rec;
		try {
			rec = JSON.parse(line);
		} catch {
			return;
		}
		stdoutRecords.push(rec);
		for (let i = recordWaiters.length - 1; i >= 0; i--)
			if (recordWaiters[i].pred(rec))
				recordWaiters.splice(i, 1)[0].resolve(rec);
	};
	const p = spawnTracked(paths.daemon, ['-c', configPath, ...(opts.args ?? [])],
		{ env: opts.env, name: 'mcpwarden', onLine });

	let m;
	try {
		m = await p.waitFor('stderr', LISTENING_RE, opts.timeoutMs ?? 15000);
	} catch (e) {
		await p.stop(2000);
		removeTempDir(dir);
		throw e;
	}

	return {
		url: m[1],
		get adminUrl() {
			for (const line of p.stderrLines) {
				const a = ADMIN_RE.exec(line);
				if (a)
					return a[1];
			}
			return null;
		},
		proc: p.proc,
		dir,
		configPath,
		stderrLines: p.stderrLines,
		stdoutLines: p.stdoutLines,
		stdoutRecords,
		exited: p.exited,
		waitForStderr: (re, ms) => p.waitFor('stderr', re, ms),
		/** First stdout JSON record (already seen or future) for which pred is true. */
		waitForRecord(pred, ms = 5000) {
			const seen = stdoutRecords.find(pred);
			if (seen)
				return Promise.resolve(seen);
			return new Promise((res, rej) => {
				const w = { pred, resolve: (r) => { clearTimeout(t); res(r); } };
				const t = setTimeout(() => {
					recordWaiters.splice(recordWaiters.indexOf(w), 1);
					rej(new Error(`no matching stdout record within ${ms} ms; last records:\n` +
						stdoutRecords.slice(-10).map((r) => JSON.stringify(r)).join('\n')));
				}, ms);
				recordWaiters.push(w);
			});
		},
		async stop(ms) {
			const r = await p.stop(ms);
			removeTempDir(dir);
			return r;
		},
	};
}

// ---- upstream servers ----

/**
 * Start tests/fixtures/conformance-server.mjs over HTTP on an ephemeral loopback port.
 * opts: { json: answer with application/json instead of SSE, env }.
 * Returns { url, proc, stderrLines, exited, stop(ms) }.
 */
export async function startFixture(opts = {}) {
	const args = [paths.fixture, '--port', '0', ...(opts.json ? ['--json'] : [])];
	const p = spawnTracked(paths.node, args, { env: opts.env, name: 'fixture' });
	let m;
	try {
		m = await p.waitFor('stdout', /^READY (http:\/\/\S+)/, opts.timeoutMs ?? 15000);
	} catch (e) {
		await p.stop(2000);
		throw e;
	}
	return { url: m[1], proc: p.proc, stderrLines: p.stderrLines, exited: p.exited,
		stop: p.stop };
}

/**
 * Start any command as a tracked child and wait for a line on stdout or stderr
 * (e.g. server-everything over HTTP). Returns { match, proc, stdoutLines, stderrLines,
 * exited, stop(ms) }.
 */
export async function startProcess(cmd, args, { env, ready, readyOn = 'stderr', timeoutMs = 15000,
	name } = {}) {
	const p = spawnTracked(cmd, args, { env, name: name ?? cmd });
	let match = null;
	if (ready) {
		try {
			match = await p.waitFor(readyOn, ready, timeoutMs);
		} catch (e) {
			await p.stop(2000);
			throw e;
		}
	}
	return { match, proc: p.proc, stdoutLines: p.stdoutLines, stderrLines: p.stderrLines,
		exited: p.exited, stop: p.stop };
}

// ---- SDK clients ----

/**
 * Connect an SDK client over Streamable HTTP (initialize + initialized; opens the GET stream).
 * opts: { headers: sent on every request (e.g. { Authorization: 'Bearer k' } or
 *   { 'X-Api-Key': 'k' }), capabilities (client capabilities, default {}), name, version,
 *   fetch (custom fetch) }.
 * Returns { client, transport, sessionId, close() } — close() ends the session (DELETE) and
 * closes the client; it never throws.
 */
export async function connectHttp(url, opts = {}) {
	const transport = new StreamableHTTPClientTransport(new URL(url), {
		requestInit: { headers: { ...(opts.headers ?? {}) } },
		...(opts.fetch ? { fetch: opts.fetch } : {}),
	});
	const client = new Client({ name: opts.name ?? 'mcpwarden-test', version: opts.version ?? '0.0.1' },
		{ capabilities: opts.capabilities ?? {} });
	await client.connect(transport);
	return {
		client,
		transport,
		sessionId: transport.sessionId,
		async close() {
			try { await transport.terminateSession(); } catch { /* already gone */ }
			try { await client.close(); } catch { /* already closed */ }
		},
	};
}

/**
 * Connect an SDK client to a stdio MCP server it spawns itself (reference runs without the
 * daemon). Returns { client, transport, close() }.
 */
export async function connectStdio(command, args = [], opts = {}) {
	const transport = new StdioClientTransport({ command, args, env: opts.env, stderr: 'pipe' });
	const client = new Client({ name: opts.name ?? 'mcpwarden-test', version: '0.0.1' },
		{ capabilities: opts.capabilities ?? {} });
	await client.connect(transport);
	return {
		client,
		transport,
		async close() {
			try { await client.close(); } catch { /* already closed */ }
		},
	};
}

/** Raw HTTP helper for wire-level assertions: POST one JSON-RPC message, return
 * { status, headers, text, json } (json null unless the body is JSON). */
export async function postJson(url, message, headers = {}) {
	const res = await fetch(url, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json',
			Accept: 'application/json, text/event-stream', ...headers },
		body: typeof message === 'string' ? message : JSON.stringify(message),
	});
	const text = await res.text();
	let json = null;
	try { json = JSON.parse(text); } catch { /* SSE or empty */ }
	return { status: res.status, headers: res.headers, text, json };
}
