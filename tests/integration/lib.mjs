// Helpers for the node:test integration tests (tests/integration/*.test.mjs): start the real
// daemon with a generated config, start the conformance fixture or the stock MCP servers, and
// talk to them with the official SDK client. Every process and temporary directory made here
// is tracked and removed when the test process exits, even after a failed assertion.
//
// Environment (exported by tests/run.sh): MCPWARDEN_BUILD (default build/test),
// MCPWARDEN_TOP (default: this checkout).

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

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

/** The cgroup v2 hierarchy (cgroup2 at /sys/fs/cgroup/unified on a hybrid host). */
export const cgroupRoot = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup'
	: '/sys/fs/cgroup/unified';

/** Why the kernel enforcement suites cannot run here, or false. */
export function enforcementSkip() {
	return process.getuid() !== 0 ? 'needs root (BPF and cgroups)'
		: !existsSync(join(cgroupRoot, 'cgroup.procs')) ? 'no cgroup v2 hierarchy'
		: false;
}

/** A file's skip: why (false when it runs), printed as `# SKIP file: why` when it skips. */
export function skipNotice(file, why) {
	if (why)
		console.log(`# SKIP ${file}: ${why}`);
	return why;
}

/**
 * Cgroups a test makes as it goes under <cgroupRoot>/<tag> (base): mk(...parts) makes
 * base/parts and its parents and returns its path; remove() (for the test's after, once its
 * processes are gone) takes every one made away, deepest first, leaving any still in use.
 */
export function cgroupTree(tag) {
	const base = join(cgroupRoot, tag);
	const made = [];
	const mk = (...parts) => {
		const d = join(base, ...parts);
		mkdirSync(d, { recursive: true });
		for (let p = d; p.startsWith(base) && !made.includes(p); p = join(p, '..'))
			made.push(p);
		return d;
	};
	const remove = () => {
		for (const d of made.sort((a, b) => b.length - a.length))
			try { rmdirSync(d); } catch { /* a process still in it: left */ }
	};
	onExit(() => {
		for (const d of made.sort((a, b) => b.length - a.length))
			rmdirWhenEmpty(d);
	});
	return { base, mk, remove };
}

/** A kernel test's clean-up: `wardenctl uninstall` of the pins in pinDir (links, maps, the dir). */
export function uninstallPins(pinDir) {
	if (!existsSync(pinDir))
		return;
	const r = spawnSync(join(build, 'wardenctl'), ['uninstall', '--yes', '--pin-dir', pinDir]);
	if (r.status === 0 && !existsSync(pinDir))
		return;
	// No wardenctl in this build (a partial one) or it failed: unlinking the pins detaches
	// the programs all the same; said, so that a broken uninstall does not pass unseen.
	console.error(`uninstallPins: wardenctl uninstall ${r.error ? `did not run (${r.error.code})`
		: `exited ${r.status}`}; removing ${pinDir} by hand`);
	rmSync(pinDir, { recursive: true, force: true });
}

/** The same at exit, whatever ends the process (onExit): for pins a test may leave. */
export function uninstallPinsAtExit(pinDir) {
	onExit(() => uninstallPins(pinDir));
}

/**
 * A kernel test's clean-up, at its end (t.after), in this order: what live() returns then
 * stopped (daemons, stand-in servers, the fixture: anything with stop(ms); null for what never
 * started or was stopped already), the pins in pinDir uninstalled (`wardenctl uninstall`), the
 * cgroups of cg (cgroupTree or testCgroups) removed.
 */
export function cleanUpAfter(t, live, { pinDir = null, cg = null } = {}) {
	if (pinDir)
		uninstallPinsAtExit(pinDir);
	t.after(async () => {
		for (const p of live())
			await p?.stop(3000);
		if (pinDir)
			uninstallPins(pinDir);
		cg?.remove();
	});
}

/**
 * Cgroup directories for a test: <cgroupRoot>/<tag> and, under it, one a name. Returns
 * { base, dirs: { name: path }, remove() }; remove() (for the test's after(), once its daemon
 * and processes are gone) takes them away, children first, leaving any still in use.
 */
export function testCgroups(tag, names = []) {
	const base = join(cgroupRoot, tag);
	const dirs = Object.fromEntries(names.map((n) => [n, join(base, n)]));
	mkdirSync(base);
	for (const d of Object.values(dirs))
		mkdirSync(d);
	const remove = () => {
		for (const d of [...Object.values(dirs), base])
			try { rmdirSync(d); } catch { /* a process still in it: left */ }
	};
	onExit(() => {
		for (const d of [...Object.values(dirs), base])
			rmdirWhenEmpty(d);
	});
	return { base, dirs, remove };
}

/**
 * Run tests/fixtures/agent-probe.mjs (an MCP client) against url as an agent inside cgroup
 * directory cgdir (outside any when null): what it reports, {ok, code}.
 */
export function runAgentProbe(cgdir, url) {
	const probe = join(top, 'tests', 'fixtures', 'agent-probe.mjs');
	const script = cgdir ? `echo $$ > '${cgdir}/cgroup.procs' && exec "$0" "$@"` : 'exec "$0" "$@"';
	const r = spawnSync('sh', ['-c', script, paths.node, probe, url],
		{ encoding: 'utf8', timeout: 20000, env: { ...process.env, NODE_PATH: join(top, 'tests', 'node_modules') } });
	const line = r.stdout.trim().split('\n').pop();
	if (!line)
		throw new Error(`probe printed nothing (stderr: ${r.stderr})`);
	return JSON.parse(line);
}

/** tests/node_modules/.bin/<name> */
/** An initialize request (2025-11-25) as the body curl posts in the identity tests. */
export const INIT_BODY = JSON.stringify({
	jsonrpc: '2.0', id: 1, method: 'initialize',
	params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
});

/**
 * POST body (default: initialize) to url with key (none when null) from a curl placed in the
 * cgroup cgdir, as an agent in that workload would: { status, text, session }.
 */
export function postFromCgroup(cgdir, url, key, body = INIT_BODY, session = null) {
	const r = spawnSync('sh', ['-c', `echo $$ > '${cgdir}/cgroup.procs' && exec "$@"`, 'sh',
		'curl', '-g', '-s', '-D', '-', '-w', '\n%{http_code}', '-X', 'POST', url,
		...(key ? ['-H', `Authorization: Bearer ${key}`] : []),
		...(session ? ['-H', `Mcp-Session-Id: ${session}`, '-H', 'MCP-Protocol-Version: 2025-11-25'] : []),
		'-H', 'Content-Type: application/json',
		'-H', 'Accept: application/json, text/event-stream', '--data', body],
	{ encoding: 'utf8', timeout: 15000 });
	const lines = r.stdout.split('\n');
	const sid = /^mcp-session-id: *(\S+)/im.exec(r.stdout)?.[1] ?? null;
	return { status: Number(lines.pop()), text: lines.join('\n'), session: sid };
}

export function binPath(name) {
	return join(top, 'tests', 'node_modules', '.bin', name);
}

/** The line the daemon prints on stderr once it accepts connections (and the admin one). */
export const LISTENING_RE = /^mcpwarden: listening on (http:\/\/\S+)/;
export const ADMIN_RE = /^mcpwarden: admin (?:listening )?on (http:\/\/\S+)/;

// ---- process and temp-dir bookkeeping ----

const live = new Set();	// child processes not yet exited
const tempDirs = new Set();
const atExit = [];	// kernel state the tests made (pins, cgroups), taken away at exit

/**
 * Run fn at this process's exit, whatever ends it: the tests' end, a failure, or a signal (a
 * stopped runner, a CI job cancelled), which t.after hooks do not see. fn is synchronous and
 * does nothing when what it removes is gone already (the after hook took it away).
 */
export function onExit(fn) {
	atExit.push(fn);
}

process.on('exit', () => {
	for (const p of live)
		try { p.kill('SIGKILL'); } catch { /* already gone */ }
	for (const fn of atExit.reverse())
		try { fn(); } catch { /* the rest still runs */ }
	for (const d of tempDirs)
		rmSync(d, { recursive: true, force: true });
});
// A signal ends the process through exit(), so that the handler above runs.
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]])
	process.on(sig, () => process.exit(128 + n));

/** Remove cgroup directory d at exit, whatever ends the process (onExit). */
export function removeCgroupAtExit(d) {
	onExit(() => rmdirWhenEmpty(d));
}

/* rmdir of a cgroup whose last process was just killed: EBUSY until the kernel has reaped it. */
function rmdirWhenEmpty(d) {
	for (let i = 0; i < 50; i++) {
		try {
			rmdirSync(d);
			return;
		} catch (e) {
			if (e.code !== 'EBUSY')
				return;         /* ENOENT: gone already */
			Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
		}
	}
}

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
	const readers = { stdout: createInterface({ input: proc.stdout }),
			  stderr: createInterface({ input: proc.stderr }) };
	const ended = Object.values(readers).map((r) => new Promise((res) => r.on('close', res)));
	const exited = new Promise((res) => {
		proc.on('exit', (code, signal) => {
			live.delete(proc);
			// A child's 'exit' can come before its last lines are read from its pipes: wait
			// for both to end, so that whoever awaits `exited` (or a waitFor it fails) sees
			// every line; 2 s at most, for a grandchild that keeps a pipe open.
			const t = setTimeout(() => res({ code, signal }), 2000);
			Promise.all(ended).then(() => {
				clearTimeout(t);
				res({ code, signal });
			});
		});
		proc.on('error', (err) => {
			live.delete(proc);
			lines.stderr.push(`${name}: ${err.message}`);
			res({ code: null, signal: null, error: err });
		});
	});
	for (const stream of ['stdout', 'stderr']) {
		readers[stream].on('line', (line) => {
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

/** The reference "everything" MCP server over stdio, as upstream "everything". */
export function everythingUpstream(extra = {}) {
	return npmStdioUpstream('everything', paths.bin.everything, ['stdio'], extra);
}

/**
 * Write config to a temp file, run `mcpwarden -c file`, wait for the listening line.
 * opts: { args: extra argv, env: extra environment, timeoutMs: start-up bound (15 s),
 *   ready: true (or an array of upstream names) to also wait until those upstreams are ready }.
 * Returns { url, adminUrl (getter; null until printed), proc, dir, configPath,
 *   stderrLines, stdoutLines, stdoutRecords (stdout lines that parse as JSON), exited,
 *   waitForStderr(re, ms), waitForRecord(pred, ms), stop(ms) -> {code, signal} }.
 * The temp dir (config, and state_dir unless the config sets one) goes away on stop().
 */
/**
 * MCPWARDEN_TEST_WORKERS=N: every daemon a suite starts runs N loops (`workers`), unless its
 * config sets workers itself or has what more than one loop refuses (a stdio upstream without
 * per_session, Redis counters): the gateway suites at workers N (docs/testing.md).
 */
export function withTestWorkers(config) {
	const n = Number(process.env.MCPWARDEN_TEST_WORKERS || 0);
	const sharedStdio = (config.upstreams ?? []).some((u) =>
		(u.transport ?? 'stdio') === 'stdio' && !u.per_session);
	if (!(n > 1) || config.workers !== undefined || sharedStdio ||
	    config.counters?.backend === 'redis')
		return config;
	return { ...config, workers: n };
}

export async function startDaemon(config, opts = {}) {
	const dir = makeTempDir('mcpwarden-daemon-');
	mkdirSync(join(dir, 'state'));
	const cfg = { state_dir: join(dir, 'state'), ...withTestWorkers(config) };
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
	// opts.wrap: a command that execs the daemon (e.g. setpriv dropping a capability).
	const argv = [paths.daemon, '-c', configPath, ...(opts.args ?? [])];
	const wrap = opts.wrap ?? [];
	const p = spawnTracked(wrap.length ? wrap[0] : argv[0], [...wrap.slice(1), ...argv].slice(wrap.length ? 0 : 1),
		{ env: opts.env, name: 'mcpwarden', onLine });

	let m;
	try {
		m = await p.waitFor('stderr', LISTENING_RE, opts.timeoutMs ?? 15000);
	} catch (e) {
		await p.stop(2000);
		removeTempDir(dir);
		throw e;
	}

	const d = {
		/** The URL of the latest listening line: a SIGHUP reload re-binds the listener. */
		get url() {
			let url = m[1];
			for (const line of p.stderrLines) {
				const l = LISTENING_RE.exec(line);
				if (l)
					url = l[1];
			}
			return url;
		},
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
		/**
		 * Wait until each named upstream has logged "upstream NAME: ready" on stderr at or
		 * after line `from` (the catalogue fills in after the listening line; a reload starts
		 * it again: pass the stderr line count from before the reload).
		 */
		async waitForUpstreams(names, ms = 20000, from = 0) {
			const deadline = Date.now() + ms;
			for (;;) {
				const seen = p.stderrLines.slice(from);
				const missing = names.filter((n) =>
					!seen.some((l) => l.includes(`upstream ${n}: ready`)));
				if (!missing.length)
					return;
				if (p.proc.exitCode !== null || p.proc.signalCode !== null || Date.now() > deadline)
					throw new Error(`upstreams not ready: ${missing.join(', ')}; stderr:\n` +
						p.stderrLines.slice(-30).join('\n'));
				await new Promise((res) => setTimeout(res, 20));
			}
		},
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
		/**
		 * Replace the config file (state_dir kept unless the new config sets one) and send
		 * SIGHUP. Resolves { ok: true, url } once the daemon says it reloaded (url: where it
		 * listens now), or { ok: false, errors: [lines] } when it refused the file.
		 */
		async reload(newConfig, ms = 15000) {
			const text = typeof newConfig === 'string' ? newConfig
				: JSON.stringify({ state_dir: cfg.state_dir, ...withTestWorkers(newConfig) }, null, 2);
			writeFileSync(configPath, text);
			const from = p.stderrLines.length;
			p.proc.kill('SIGHUP');
			const deadline = Date.now() + ms;
			for (;;) {
				const seen = p.stderrLines.slice(from);
				// A re-bound listener prints its listening line before this one.
				if (seen.some((l) => /configuration reloaded/.test(l)))
					return { ok: true, url: this.url };
				const refused = seen.findIndex((l) => /reload refused/.test(l));
				if (refused >= 0) {
					await new Promise((res) => setTimeout(res, 100));  // the error lines follow
					return { ok: false, errors: p.stderrLines.slice(from + refused) };
				}
				if (p.proc.exitCode !== null || p.proc.signalCode !== null)
					throw new Error(`mcpwarden exited during reload:\n${seen.join('\n')}`);
				if (Date.now() > deadline)
					throw new Error(`no reload within ${ms} ms:\n${seen.join('\n')}`);
				await new Promise((res) => setTimeout(res, 20));
			}
		},
		/** SIGKILL, wait for the exit, remove the temp dir (not a state_dir set by the config). */
		async kill() {
			if (p.proc.exitCode === null && p.proc.signalCode === null)
				p.proc.kill('SIGKILL');
			const r = await p.exited;
			removeTempDir(dir);
			return r;
		},
	};
	// opts.ready: wait for the catalogue (every upstream of the config, or the names given).
	if (opts.ready) {
		const names = Array.isArray(opts.ready) ? opts.ready : (cfg.upstreams ?? []).map((u) => u.name);
		try {
			await d.waitForUpstreams(names, opts.timeoutMs ?? 20000);
		} catch (e) {
			await d.stop(2000);
			throw e;
		}
	}
	return d;
}

/**
 * In a describe(): the daemon its tests share, started by a before() hook with config (an
 * object, or a function called then, so it can use what earlier hooks started) and opts as
 * startDaemon takes them, and stopped by an after() hook; opts.checked: the stop asserts a clean
 * exit (stopCleanly). Hooks run in the order they are declared: an after() declared before this
 * call (closing clients) runs before the daemon stops, one declared after it (stopping an
 * upstream) runs after. Returns a stand-in that forwards to the daemon once it runs (d.url,
 * d.waitForRecord(...), d.reload() ...).
 */
export function suiteDaemon(config, opts = {}) {
	let d = null;
	before(async () => {
		d = await startDaemon(typeof config === 'function' ? await config() : config, opts);
	});
	after(async () => {
		if (opts.checked)
			await stopCleanly(d);
		else
			await d?.stop();
	});
	return new Proxy({}, {
		get(_, prop) {
			if (!d)
				throw new Error(`suiteDaemon: ${String(prop)} read before the daemon started`);
			const v = d[prop];
			return typeof v === 'function' ? v.bind(d) : v;
		},
	});
}

// ---- upstream servers ----

/**
 * Start tests/fixtures/conformance-server.mjs over HTTP on an ephemeral loopback port.
 * opts: { json: answer with application/json instead of SSE, env }.
 * Returns { url, proc, stderrLines, exited, stop(ms) }.
 */
export async function startFixture(opts = {}) {
	const args = [paths.fixture, '--port', '0', ...(opts.json ? ['--json'] : []),
		...(opts.host ? ['--host', opts.host] : [])];
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

/**
 * An upstream entry that runs a real npm MCP server over stdio behind a small tap that appends
 * every line the daemon sends it to logPath (JSON-RPC, one message a line), so a test can prove
 * what reached the upstream and what did not. Read it with upstreamSaw(logPath).
 */
export function tappedStdioUpstream(name, bin, args, logPath, extra = {}) {
	const tap = join(dirname(logPath), `tap-${name}.mjs`);
	writeFileSync(tap, `import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
const [log, ...argv] = process.argv.slice(2);
const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'inherit', 'inherit'] });
process.stdin.on('data', (d) => { appendFileSync(log, d); child.stdin.write(d); });
process.stdin.on('end', () => child.stdin.end());
process.on('SIGTERM', () => { child.kill('SIGTERM'); process.exit(0); });
child.on('exit', (code) => process.exit(code ?? 1));
`);
	return { name, transport: 'stdio',
		command: [paths.node, tap, logPath, paths.node, bin, ...args], ...extra };
}

/** The JSON-RPC messages a tapped upstream received so far (see tappedStdioUpstream). */
export function upstreamSaw(logPath) {
	if (!existsSync(logPath))
		return [];
	return readFileSync(logPath, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
		try { return [JSON.parse(l)]; } catch { return []; }
	});
}

// ---- gateway suites (gateway-*.test.mjs) ----

/** Fixture files beyond the conformance server. */
export const fixturePaths = {
	/** tests/fixtures/fault-server.mjs: crashes, hangs, changes its tool list on request. */
	fault: join(top, 'tests', 'fixtures', 'fault-server.mjs'),
	/** tests/fixtures/rugpull-server.mjs: changes a tool's definition after it was approved. */
	rugpull: join(top, 'tests', 'fixtures', 'rugpull-server.mjs'),
	/** tests/fixtures/loopback-listen.mjs: a node --import preload pinning listen() to loopback. */
	loopbackPreload: join(top, 'tests', 'fixtures', 'loopback-listen.mjs'),
};

/** An upstream entry that has the daemon spawn the fault fixture over stdio. */
export function faultStdioUpstream(name = 'fault', extra = {}) {
	return { name, transport: 'stdio', command: [paths.node, fixturePaths.fault, '--tag', name],
		...extra };
}

/** Wait until the daemon says every named upstream is ready (tools etc. listed). */
export async function waitUpstreamsReady(daemon, names, ms = 20000) {
	await Promise.all(names.map((n) =>
		daemon.waitForStderr(new RegExp(`upstream ${n}: ready \\(`), ms)));
}

/** A port that was free a moment ago (for a server that must come up later on a known port). */
export async function freePort() {
	const { createServer } = await import('node:net');
	return new Promise((res, rej) => {
		const s = createServer();
		s.on('error', rej);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => res(port));
		});
	});
}

/**
 * server-everything in streamableHttp mode (or, with mode 'sse', its legacy 2024-11-05
 * HTTP+SSE mode) on loopback (through the loopback preload).
 * opts: { port (default 0 = ephemeral), timeoutMs, mode }. Returns { url, port, proc,
 * stdoutLines, stderrLines, exited, stop(ms) }.
 */
export async function startEverythingHttp(opts = {}) {
	const sse = opts.mode === 'sse';
	const p = await startProcess(paths.node,
		['--import', `file://${fixturePaths.loopbackPreload}`, paths.bin.everything,
			sse ? 'sse' : 'streamableHttp'],
		{ env: { PORT: String(opts.port ?? 0) }, ready: /^LOOPBACK-LISTENING 127\.0\.0\.1:(\d+)$/,
			readyOn: 'stderr', timeoutMs: opts.timeoutMs ?? 20000, name: 'everything-http' });
	const port = Number(p.match[1]);
	return { url: `http://127.0.0.1:${port}/${sse ? 'sse' : 'mcp'}`, port, proc: p.proc,
		stdoutLines: p.stdoutLines, stderrLines: p.stderrLines, exited: p.exited, stop: p.stop };
}

/** What sanitizers print when they find something. */
export const SANITIZER_RE = /ERROR: (?:Address|Leak|Undefined)Sanitizer|runtime error:|WARNING: ThreadSanitizer/;

/**
 * Stop the daemon (SIGTERM) and check that it ran clean: exit code 0 and no sanitizer report
 * on stderr. Returns a list of problems (empty when clean); the caller asserts on it.
 */
export async function stopDaemonChecked(daemon, ms = 15000) {
	const { code, signal } = await daemon.stop(ms);
	const problems = [];
	if (code !== 0 || signal !== null)
		problems.push(`daemon exit: code ${code}, signal ${signal}`);
	const i = daemon.stderrLines.findIndex((l) => SANITIZER_RE.test(l));
	if (i >= 0)
		problems.push(`sanitizer report on stderr:\n${daemon.stderrLines.slice(i, i + 40).join('\n')}`);
	return problems;
}

/** A suite's after(): stop its daemon d, if it started, and assert it ran clean. */
export async function stopCleanly(d) {
	if (d)
		assert.deepEqual(await stopDaemonChecked(d), [], 'the daemon must exit cleanly, without sanitizer reports');
}

/**
 * Poll `fn` (async) until it returns a truthy value; returns it, or throws after ms with
 * `what` in the message.
 */
export async function eventually(fn, { ms = 10000, every = 100, what = 'condition' } = {}) {
	const end = Date.now() + ms;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
		} catch (e) {
			last = e;
		}
		if (Date.now() > end)
			throw new Error(`${what}: not true within ${ms} ms${last ? ` (last error: ${last.message})` : ''}`);
		await new Promise((r) => setTimeout(r, every));
	}
}

/**
 * A raw Streamable HTTP session (initialize + initialized by hand) for wire-level tests, with
 * opts { version, capabilities, headers }. Returns { sessionId, version, headers (to send on later requests), post(msg, extra headers) }.
 */
export async function openRawSession(url, opts = {}) {
	const init = await postJson(url, { jsonrpc: '2.0', id: 0, method: 'initialize',
		params: { protocolVersion: opts.version ?? '2025-11-25', capabilities: opts.capabilities ?? {},
			clientInfo: { name: 'raw', version: '1' } } }, opts.headers);
	if (init.status !== 200)
		throw new Error(`initialize: HTTP ${init.status}: ${init.text}`);
	const sessionId = init.headers.get('mcp-session-id');
	const version = init.json?.result?.protocolVersion;
	const headers = { ...(opts.headers ?? {}), 'Mcp-Session-Id': sessionId,
		'MCP-Protocol-Version': version };
	const n = await postJson(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
	if (n.status !== 202)
		throw new Error(`notifications/initialized: HTTP ${n.status}: ${n.text}`);
	return { sessionId, version, headers, init,
		post: (msg, extra = {}) => postJson(url, msg, { ...headers, ...extra }) };
}

/** Parse an SSE body into the JSON payloads of its data lines. */
export function sseMessages(text) {
	const out = [];
	for (const block of text.split(/\r?\n\r?\n/)) {
		const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:'))
			.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
		if (data)
			try { out.push(JSON.parse(data)); } catch { /* not JSON */ }
	}
	return out;
}

/**
 * connectHttp, plus `streamOpen`: a promise that resolves once the SDK's GET event stream has
 * been answered 200 (so server notifications sent from then on reach the client).
 */
export async function connectHttpWithStream(url, opts = {}) {
	let opened;
	const streamOpen = new Promise((res) => { opened = res; });
	const inner = opts.fetch ?? fetch;
	const wrapped = async (input, init) => {
		const res = await inner(input, init);
		if ((init?.method ?? 'GET') === 'GET' && res.status === 200)
			opened();
		return res;
	};
	const c = await connectHttp(url, { ...opts, fetch: wrapped });
	return { ...c, streamOpen };
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
 * The SDK clients a describe block opens, closed together in its after():
 * `const pool = clientPool(); ... await pool.connect(d.url, opts); ... await pool.closeAll(ref);`
 * (closeAll also closes the extra clients it is given; falsy ones are skipped).
 */
export function clientPool() {
	const clients = [];
	const keep = (c) => { clients.push(c); return c; };
	return {
		connect: async (url, opts) => keep(await connectHttp(url, opts)),
		connectWithStream: async (url, opts) => keep(await connectHttpWithStream(url, opts)),
		async closeAll(...more) {
			for (const c of [...clients.splice(0), ...more].filter(Boolean))
				await c.close();
		},
	};
}

/**
 * Two sessions that declare sampling, opened with connect(opts), for tests of where a server's
 * sampling request goes: each client answers with answer(who) ('a' or 'b'), after delayMs,
 * and records the prompts it was asked in asked[who]. Returns { a, b, asked }.
 */
export async function samplingPair(connect, answer, delayMs = 0) {
	const [a, b] = [await connect({ capabilities: { sampling: {} } }),
		await connect({ capabilities: { sampling: {} } })];
	const asked = { a: [], b: [] };
	for (const [who, c] of [['a', a], ['b', b]])
		c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
			asked[who].push(req.params.messages[0].content.text);
			if (delayMs)
				await new Promise((r) => setTimeout(r, delayMs));
			return { role: 'assistant', model: 'm', content: { type: 'text', text: answer(who) } };
		});
	return { a, b, asked };
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

// ---- keys and raw requests for governance tests ----

/**
 * A fresh virtual key in the documented format (mcpw_ + 43 base64url characters, 256 random
 * bits) and its config hash. Made per test run: no key is ever committed.
 */
export function makeKey() {
	const key = `mcpw_${randomBytes(32).toString('base64url')}`;
	return { key, hash: `sha256:${createHash('sha256').update(key).digest('hex')}` };
}

/**
 * A suite's keys: spec maps a handle to its config entry without the hash ({ id, policy, ... }),
 * or to a policy's name alone for { id: handle, policy }.
 * Returns { k: handle -> makeKey(), keys: the config's keys, in spec order }.
 */
export function makeKeys(spec) {
	const k = {}, keys = [];
	for (let [handle, entry] of Object.entries(spec)) {
		if (typeof entry === 'string')
			entry = { id: handle, policy: entry };
		k[handle] = makeKey();
		keys.push({ id: entry.id, hash: k[handle].hash, ...entry });
	}
	return { k, keys };
}

/**
 * One HTTP request with node:http, for what fetch cannot do: choose the client's source
 * address (localAddress, e.g. '127.0.0.2' to be another peer on loopback), or the connection:
 * agent false (the default) opens one for this request alone, closed after the answer, an
 * http.Agent keeps one. path: another than url's; timeoutMs: give up after it (0: never).
 * Returns { status, headers (lower-case names), text, json, reused (a kept connection) }.
 */
export function rawRequest(url, { method = 'POST', headers = {}, body, localAddress, path,
	agent = false, timeoutMs = 0 } = {}) {
	const u = new URL(url);
	const payload = body === undefined ? undefined
		: typeof body === 'string' ? body : JSON.stringify(body);
	return new Promise((res, rej) => {
		const req = httpRequest({ host: u.hostname, port: u.port, path: path ?? u.pathname, method,
			localAddress, agent,
			headers: { 'Content-Type': 'application/json',
				Accept: 'application/json, text/event-stream', ...headers,
				...(payload !== undefined ? { 'Content-Length': Buffer.byteLength(payload) } : {}) } },
		(r) => {
			let text = '';
			r.setEncoding('utf8');
			r.on('data', (d) => { text += d; });
			r.on('end', () => {
				let json = null;
				try { json = JSON.parse(text); } catch { /* SSE or empty */ }
				res({ status: r.statusCode, headers: r.headers, text, json,
					reused: req.reusedSocket });
			});
		});
		req.on('error', rej);
		if (timeoutMs)
			req.setTimeout(timeoutMs, () => req.destroy(new Error(
				`${method} ${u.pathname}: no answer in ${timeoutMs} ms`)));
		if (payload !== undefined)
			req.write(payload);
		req.end();
	});
}

/**
 * Open a session by hand (initialize + notifications/initialized) with the given headers.
 * Returns { sessionId, headers (the ones to send on every later request), post(message) ->
 * postJson result }.
 */
export async function rawSession(url, headers = {}, protocolVersion = '2025-11-25') {
	const init = await postJson(url, { jsonrpc: '2.0', id: 0, method: 'initialize',
		params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
	headers);
	if (init.status !== 200 || !init.json?.result)
		throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
	const sessionId = init.headers.get('mcp-session-id');
	const h = { ...headers, 'Mcp-Session-Id': sessionId,
		'MCP-Protocol-Version': init.json.result.protocolVersion };
	const n = await postJson(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
	if (n.status !== 202)
		throw new Error(`notifications/initialized: HTTP ${n.status} ${n.text}`);
	return { sessionId, headers: h, post: (message) => postJson(url, message, h) };
}

/**
 * The JSON-RPC messages of a POST answer, whether it came as application/json or as an SSE
 * stream (text/event-stream: every `data:` event, in order).
 */
export function messagesOf(r) {
	if (r.json)
		return [r.json];
	return r.text.split(/\r?\n\r?\n/).flatMap((ev) => {
		const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:'))
			.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
		try { return data ? [JSON.parse(data)] : []; } catch { return []; }
	});
}

/** The response (the message with an id and a result or error) of a POST answer. */
export function responseOf(r) {
	return messagesOf(r).find((m) => m.id !== undefined && ('result' in m || 'error' in m)) ?? null;
}

/**
 * Wait until tools/list, for a session opened with `headers`, names the tool `name` (after a
 * start or a reload the catalogue fills in while the daemon already answers).
 */
export async function waitForTool(url, headers, name, ms = 20000) {
	const deadline = Date.now() + ms;
	for (;;) {
		const s = await rawSession(url, headers);
		const r = await s.post({ jsonrpc: '2.0', id: 'l', method: 'tools/list' });
		await fetch(url, { method: 'DELETE', headers: s.headers }).catch(() => {});
		if (responseOf(r)?.result?.tools?.some((t) => t.name === name))
			return;
		if (Date.now() > deadline)
			throw new Error(`${name} not listed within ${ms} ms: ${r.text}`);
		await new Promise((res) => setTimeout(res, 50));
	}
}

