// The node agent: the daemon watches the pods of its node on a (stand-in) API server over
// HTTPS and enrols the agent containers of annotated pods in the real kernel, exempting the
// sidecar container. Cgroups are made in both kubelet layouts (cgroupfs and systemd) under a
// private test folder; a process placed in the agent's cgroup is refused a protected address,
// one in the sidecar's is not. Stickiness (annotation removed or weakened), upgrades,
// containers that start later, 410 Gone and re-list (with a rotated token), deletion (cgroups
// gone: entries removed; forced deletion with cgroups alive: entries kept until they go) and
// a hostile list (other nodes' pods, malformed items) are all checked. A pod watch with
// "redirect" enrols with transparent redirect: the agent reaches the server it names, through
// the sidecar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
	cgroupTree, cleanUpAfter, enforcementSkip, gatewayConfig, httpUpstream, makeTempDir, paths,
	runAgentProbe, skipNotice, startDaemon, startFixture, stopDaemonChecked
} from './lib.mjs';
import { kubeTlsSkip, podObject, startKubeApi, startKubeApiTls } from '../fixtures/kube-api.mjs';

const skip = skipNotice('node-agent.test.mjs', enforcementSkip() || kubeTlsSkip);

const wardenctl = join(paths.build, 'wardenctl');
const NODE = 'node-a';

/** warden_enrolled's entries as `wardenctl maps --json` shows them. */
const enrolledEntries = (pinDir) => JSON.parse(execFileSync(wardenctl, ['maps', '--json', '--pin-dir', pinDir],
	{ encoding: 'utf8' })).maps.warden_enrolled;

/** warden_enrolled as wardenctl shows it: cgroup path -> mode. */
function enrolled(pinDir) {
	return new Map(enrolledEntries(pinDir).filter((e) => e.cgroup).map((e) => [e.cgroup, e.mode]));
}

/** A test's own names (n tells the tests apart): its bpffs pin dir, its cgroups (cgroupTree),
 * and a temp dir; with token, a token file there holding it. */
function testNames(n, token) {
	const tag = `mcpwarden-kube${n}-${process.pid}`;
	const dir = makeTempDir('mcpwarden-kube-');
	const tokenFile = join(dir, 'token');
	if (token !== undefined)
		writeFileSync(tokenFile, token);
	return { pinDir: `/sys/fs/bpf/${tag}`, cg: cgroupTree(tag), dir, tokenFile };
}

/** A test's end: the daemon stops with exit 0 and no sanitizer report. */
async function assertCleanExit(daemon) {
	assert.deepEqual(await stopDaemonChecked(daemon, 5000), [], 'a clean exit');
}

/** Poll until fn() is truthy (or fail with what it last returned). */
async function until(fn, what, ms = 8000) {
	const deadline = Date.now() + ms;
	let last;
	while (Date.now() < deadline) {
		last = fn();
		if (last)
			return last;
		await new Promise((r) => setTimeout(r, 100));
	}
	assert.fail(`${what}: not within ${ms} ms`);
}

const hex64 = () => randomBytes(32).toString('hex');

test('the node agent enrols annotated pods from the API server', { skip, timeout: 180000 }, async (t) => {
	const { pinDir, cg, dir } = testNames('');
	const mk = cg.mk;
	const rm = (d) => { try { rmdirSync(d); } catch { /* gone already */ } };
	const fixture = await startFixture();
	let daemon, api;
	cleanUpAfter(t, () => [daemon, api, fixture], { pinDir, cg });

	// The API server's certificate, for 127.0.0.1, made now; the daemon trusts only it.
	const tls = await startKubeApiTls(dir, NODE);
	const { tokenFile, cert, token: token1 } = tls;
	api = tls.api;

	// Pod A, cgroupfs layout, native sidecar; already running when the daemon starts.
	const a = { uid: randomUUID(), agent: hex64(), sidecar: hex64() };
	const aPod = mk('kubepods', 'besteffort', `pod${a.uid}`);
	const aAgent = mk('kubepods', 'besteffort', `pod${a.uid}`, a.agent);
	const aSidecar = mk('kubepods', 'besteffort', `pod${a.uid}`, a.sidecar);
	const podA = (annotation) => podObject({ uid: a.uid, name: 'agent-a', node: NODE, annotation, containers: [
		{ name: 'mcpwarden', id: a.sidecar, init: true }, { name: 'agent', id: a.agent }] });
	api.put(podA('protect'));
	// Not annotated: never enrolled.
	const c = { uid: randomUUID(), agent: hex64() };
	const cAgent = mk('kubepods', 'besteffort', `pod${c.uid}`, c.agent);
	api.put(podObject({ uid: c.uid, name: 'plain', node: NODE, containers: [{ name: 'app', id: c.agent }] }));
	// A hostile or broken list: another node's pod, malformed items. Ignored, no crash.
	const other = { uid: randomUUID(), agent: hex64() };
	const otherAgent = mk('kubepods', 'besteffort', `pod${other.uid}`, other.agent);
	api.extraItems = [
		podObject({ uid: other.uid, name: 'elsewhere', node: 'node-b', annotation: 'lockdown',
			containers: [{ name: 'agent', id: other.agent }] }),
		{ metadata: { uid: '../../etc', name: 'x', namespace: 'agents' } },
		{ metadata: 'nope' }, 42, null,
		podObject({ uid: randomUUID(), name: 'bad-ids', node: NODE, annotation: 'protect', containers: [
			{ name: 'agent', id: '../../../../tmp' }, { name: 'Not_A_Label', id: hex64() }] }),
	];

	const config = gatewayConfig([httpUpstream(fixture.url)], {
		enforcement: { enabled: true, pin_dir: pinDir, kubernetes: {
			node_name: { env: 'MCPWARDEN_TEST_NODE' }, api_server: api.url,
			token_file: tokenFile, ca_file: cert } },
	});
	daemon = await startDaemon(config, { env: { MCPWARDEN_TEST_NODE: NODE } });
	await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);
	const rec = (pred, ms = 8000) => daemon.waitForRecord((r) => r.type === 'enforcement' && pred(r), ms);

	// Enrolled from the list: pod cgroup and agent container protect, the sidecar exempt.
	const agentRec = await rec((r) => r.action === 'enroll' && r.container === 'agent' && r.pod_uid === a.uid);
	assert.equal(agentRec.mode, 'protect');
	assert.equal(agentRec.cgroup, aAgent);
	assert.equal(agentRec.namespace, 'agents');
	await rec((r) => r.action === 'exempt' && r.container === 'mcpwarden' && r.pod_uid === a.uid);
	let m = enrolled(pinDir);
	assert.equal(m.get(aPod), 'protect');
	assert.equal(m.get(aAgent), 'protect');
	assert.equal(m.get(aSidecar), 'exempt');
	assert.equal(m.get(cAgent), undefined, 'a pod without the annotation is not enrolled');
	assert.equal(m.get(otherAgent), undefined, 'another node\'s pod is not enrolled');
	assert.ok(api.stats.lists >= 1 && api.stats.unauthorized === 0 && api.stats.badSelector === 0);
	await until(() => api.openWatches() === 1, 'the daemon watches after listing');

	// The kernel: the agent is refused the MCP server directly; the sidecar reaches it.
	const direct = runAgentProbe(aAgent, fixture.url);
	assert.equal(direct.ok, false, 'the agent container must not reach the MCP server directly');
	assert.equal(direct.code, 'EPERM');
	assert.equal(runAgentProbe(aSidecar, fixture.url).ok, true, 'the sidecar container is exempt');
	assert.equal(runAgentProbe(aAgent, daemon.url).ok, true, 'the agent reaches the sidecar');

	// Annotation removed on the running pod: it stays enrolled (never let go), and says so.
	api.put(podA(undefined));
	const keep = await rec((r) => r.action === 'keep' && r.pod_uid === a.uid);
	assert.equal(keep.reason, 'annotation removed');
	assert.equal(enrolled(pinDir).get(aAgent), 'protect');
	assert.equal(runAgentProbe(aAgent, fixture.url).ok, false);
	// Stricter is honoured: lockdown; weaker again is not.
	api.put(podA('lockdown'));
	await until(() => enrolled(pinDir).get(aAgent) === 'lockdown', 'upgrade to lockdown');
	assert.equal(enrolled(pinDir).get(aPod), 'lockdown');
	assert.equal(enrolled(pinDir).get(aSidecar), 'exempt');
	api.put(podA('protect'));
	await new Promise((r) => setTimeout(r, 500));
	assert.equal(enrolled(pinDir).get(aAgent), 'lockdown', 'a downgrade is not honoured');

	// Pod B, systemd layout, classic sidecar; its agent has no id yet, then an id whose cgroup
	// appears only later (the retry finds it).
	const b = { uid: randomUUID(), agent: hex64(), sidecar: hex64() };
	const bSlice = ['kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${b.uid.replaceAll('-', '_')}.slice`];
	const bPod = mk(...bSlice);
	const bSidecar = mk(...bSlice, `cri-containerd-${b.sidecar}.scope`);
	const podB = (agentId) => podObject({ uid: b.uid, name: 'agent-b', node: NODE, annotation: 'protect', containers: [
		{ name: 'agent', id: agentId }, { name: 'mcpwarden', id: b.sidecar }] });
	api.put(podB(null));
	await rec((r) => r.action === 'exempt' && r.pod_uid === b.uid);
	m = enrolled(pinDir);
	assert.equal(m.get(bPod), 'protect', 'the pod cgroup covers containers not started yet');
	assert.equal(m.get(bSidecar), 'exempt');
	api.put(podB(b.agent));
	await new Promise((r) => setTimeout(r, 300));
	const bAgent = mk(...bSlice, `cri-containerd-${b.agent}.scope`);
	await rec((r) => r.action === 'enroll' && r.pod_uid === b.uid && r.container === 'agent');
	assert.equal(enrolled(pinDir).get(bAgent), 'protect');
	assert.equal(runAgentProbe(bAgent, fixture.url).code, 'EPERM');

	// 410 Gone: a pod changed meanwhile is only seen by a re-list, made with the rotated token.
	const d = { uid: randomUUID(), agent: hex64() };
	const dAgent = mk('kubepods', 'burstable', `pod${d.uid}`, `crio-${d.agent}.scope`);
	api.putSilently(podObject({ uid: d.uid, name: 'agent-d', node: NODE, annotation: 'lockdown',
		containers: [{ name: 'agent', id: d.agent, runtime: 'cri-o' }] }));
	const token2 = randomBytes(24).toString('base64url');
	writeFileSync(tokenFile, token2 + '\n');
	api.token = token2;
	const lists = api.stats.lists;
	api.gone();
	await rec((r) => r.action === 'enroll' && r.pod_uid === d.uid && r.container === 'agent');
	assert.ok(api.stats.lists > lists, 're-listed after 410');
	assert.equal(api.stats.unauthorized, 0, 'the new token was read for the re-list');
	assert.equal(enrolled(pinDir).get(dAgent), 'lockdown');
	await until(() => api.openWatches() === 1, 'watching again after the re-list');

	// Deleted after the kubelet removed its cgroups: entries removed at once.
	const aId = enrolledEntries(pinDir).filter((e) => [aAgent, aSidecar, aPod].includes(e.cgroup))
		.map((e) => e.cgroup_id);
	assert.equal(aId.length, 3);
	rm(aAgent); rm(aSidecar); rm(aPod);
	api.delete(a.uid);
	await rec((r) => r.action === 'unenroll' && r.pod_uid === a.uid);
	await until(() => {
		const ids = enrolledEntries(pinDir).map((e) => e.cgroup_id);
		return aId.every((id) => !ids.includes(id));
	}, 'pod A\'s entries removed');

	// Forced deletion while B's containers still run: kept until their cgroups go.
	api.delete(b.uid);
	await rec((r) => r.action === 'keep' && r.pod_uid === b.uid && /still alive/.test(r.reason));
	assert.equal(enrolled(pinDir).get(bAgent), 'protect', 'a live cgroup is never let go');
	assert.equal(runAgentProbe(bAgent, fixture.url).ok, false);
	rm(bAgent); rm(bSidecar); rm(bPod);
	await until(() => ![bAgent, bSidecar, bPod].some((p) => enrolled(pinDir).has(p)), 'pruned once gone');

	await assertCleanExit(daemon);
});

test('a wrong token or node is refused by the API and the daemon keeps retrying', { skip, timeout: 60000 }, async (t) => {
	const { pinDir, tokenFile } = testNames(2, 'wrong-token');
	const api = await startKubeApi({ token: 'right-token', node: NODE });
	let daemon;
	cleanUpAfter(t, () => [daemon, api], { pinDir });
	daemon = await startDaemon(gatewayConfig([], {
		enforcement: { enabled: true, pin_dir: pinDir, kubernetes: {
			node_name: NODE, api_server: api.url, token_file: tokenFile } },
	}));
	await daemon.waitForStderr(/listing pods: HTTP 401 \(token or RBAC/, 10000);
	await daemon.waitForStderr(/listing pods again in \d+ ms/, 5000);
	// The token is fixed on disk: the next attempt reads it and gets through.
	writeFileSync(tokenFile, 'right-token');
	await daemon.waitForStderr(/kubernetes: listed 0 pod\(s\) of node node-a/, 15000);
	assert.ok(api.stats.unauthorized >= 1);
	assert.ok(!api.stats.tokens.includes('') && api.stats.tokens.includes('wrong-token'));
	assert.equal(api.stats.badSelector, 0);
	await assertCleanExit(daemon);
});

test('a pod watch with redirect enrols its pods redirecting: the agent reaches the server it names', { skip, timeout: 90000 }, async (t) => {
	const { pinDir, cg, tokenFile } = testNames(3, 'tok');
	const api = await startKubeApi({ token: 'tok', node: NODE });
	const fixture = await startFixture();
	const p = { uid: randomUUID(), agent: hex64(), sidecar: hex64() };
	const podCg = cg.mk('kubepods', 'besteffort', `pod${p.uid}`);
	const agentCg = cg.mk('kubepods', 'besteffort', `pod${p.uid}`, p.agent);
	const sidecarCg = cg.mk('kubepods', 'besteffort', `pod${p.uid}`, p.sidecar);
	let daemon;
	cleanUpAfter(t, () => [daemon, api, fixture], { pinDir, cg });
	api.put(podObject({ uid: p.uid, name: 'agent-r', node: NODE, annotation: 'protect', containers: [
		{ name: 'mcpwarden', id: p.sidecar, init: true }, { name: 'agent', id: p.agent }] }));
	daemon = await startDaemon(gatewayConfig([httpUpstream(fixture.url)], {
		enforcement: { enabled: true, pin_dir: pinDir, kubernetes: {
			node_name: NODE, api_server: api.url, token_file: tokenFile, redirect: true } },
	}));
	// The pod watch asks for redirect: the listener opens though no enroll[] entry asks.
	await daemon.waitForStderr(/transparent redirect to 127\.0\.0\.1:\d+/, 10000);
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);
	const flags = () => new Map(enrolledEntries(pinDir).filter((e) => e.cgroup).map((e) => [e.cgroup, e]));
	await until(() => flags().get(agentCg)?.mode === 'protect' && flags().get(sidecarCg)?.mode === 'exempt',
		'the pod enrolled');
	const m = flags();
	assert.equal(m.get(podCg).redirect, true, 'the pod cgroup redirects');
	assert.equal(m.get(agentCg).redirect, true, 'the agent container redirects');
	assert.equal(m.get(sidecarCg).redirect, false, 'the sidecar is exempt, not redirected');
	// The agent, configured with the MCP server's real URL, is served by the sidecar.
	const agent = spawnSync('sh', ['-c', `echo $$ > '${agentCg}/cgroup.procs' && exec "$0" "$@"`, paths.node,
		join(paths.top, 'tests', 'fixtures', 'redirect-agent.mjs'), fixture.url, 'test_simple_text', 'test_simple_text'],
	{ encoding: 'utf8', timeout: 30000, env: { ...process.env, NODE_PATH: join(paths.top, 'tests', 'node_modules') } });
	const r = JSON.parse(agent.stdout.trim().split('\n').pop() || '{}');
	assert.equal(r.ok, true, JSON.stringify(r) + agent.stderr);
	assert.match(JSON.stringify(r.allowed.content), /simple text response/);
	const port = Number(new URL(fixture.url).port);
	assert.deepEqual(r.peer, { address: '127.0.0.1', port }, 'getpeername shows the server');
	const rec = await daemon.waitForRecord((x) => x.type === 'decision' && x.redirected === true, 5000);
	assert.equal(rec.original_destination, `127.0.0.1:${port}`);
	await assertCleanExit(daemon);
});
