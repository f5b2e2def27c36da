// The reason mcpwarden exists, end to end through the real daemon and the real kernel: an
// agent in an enrolled cgroup reaches its MCP server only through the sidecar; the refusal is
// on record; enforcement outlives a killed daemon; a restarted daemon re-adopts the pins
// without attaching twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
	cleanUpAfter, enforcementSkip, gatewayConfig, httpUpstream, paths, runAgentProbe,
	skipNotice, startDaemon, startFixture, testCgroups
} from './lib.mjs';

const skip = skipNotice('enforcement.test.mjs', enforcementSkip());

const wardenctl = join(paths.build, 'wardenctl');

/** Links attached by our programs, per attach type (bpftool sees every link on the host). */
function ourLinks(pinDir) {
	const st = JSON.parse(execFileSync(wardenctl, ['status', '--json', '--pin-dir', pinDir], { encoding: 'utf8' }));
	const ids = new Set(Object.values(st.hooks ?? {}).map((h) => h.prog_id).filter(Boolean));
	const links = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }));
	return links.filter((l) => ids.has(l.prog_id)).length;
}

test('an enrolled agent reaches its MCP server only through the sidecar', { skip, timeout: 120000 }, async (t) => {
	const tag = `mcpwarden-itest-${process.pid}`;
	const pinDir = `/sys/fs/bpf/${tag}`;
	const cg = testCgroups(tag), cgdir = cg.base;
	const fixture = await startFixture();
	let daemon;
	cleanUpAfter(t, () => [daemon, fixture], { pinDir, cg });
	const config = gatewayConfig([httpUpstream(fixture.url)], {
		enforcement: { enabled: true, pin_dir: pinDir, enroll: [{ cgroup: cgdir, mode: 'protect' }] },
	});
	daemon = await startDaemon(config);
	await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);

	// Outside the enrolled cgroup the fixture is reachable directly (protect mode is targeted).
	assert.equal(runAgentProbe(null, fixture.url).ok, true);
	// Inside: direct is refused by the kernel, the sidecar works.
	const direct = runAgentProbe(cgdir, fixture.url);
	assert.equal(direct.ok, false, 'a direct connection from an enrolled cgroup must fail');
	assert.equal(direct.code, 'EPERM');
	const via = runAgentProbe(cgdir, daemon.url);
	assert.equal(via.ok, true, via.error);
	assert.ok(via.tools.includes('test_simple_text'));

	// The refusal is on record with the agent's cgroup, command and destination.
	const port = Number(new URL(fixture.url).port);
	const rec = await daemon.waitForRecord((r) => r.type === 'kernel_deny' && r.dport === port, 5000);
	assert.equal(rec.cgroup, cgdir);
	assert.equal(rec.comm, 'node');
	assert.equal(rec.dst, '127.0.0.1');
	assert.equal(rec.decision, 'deny');

	// kill -9: the daemon is gone, the kernel still refuses (fail closed).
	const before = ourLinks(pinDir);
	daemon.proc.kill('SIGKILL');
	await daemon.exited;
	assert.equal(runAgentProbe(cgdir, fixture.url).ok, false, 'enforcement must outlive the daemon');

	// Restart on the same pins: re-adopted, not attached twice, and serving again.
	daemon = await startDaemon(config);
	await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);
	assert.equal(ourLinks(pinDir), before, 'exactly one attachment per hook after a restart');
	assert.equal(runAgentProbe(cgdir, fixture.url).ok, false);
	assert.equal(runAgentProbe(cgdir, daemon.url).ok, true);
	for (const line of daemon.stderrLines)
		assert.doesNotMatch(line, /AddressSanitizer|ThreadSanitizer|runtime error:/);
});
