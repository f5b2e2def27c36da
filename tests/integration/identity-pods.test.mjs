// Keys bound to pods: the daemon watches its node's pods on a (stand-in) API server and names
// a caller's pod from the cgroup the kernel gives. A key bound to `pod:agents/agent-*` works
// from a container of pod agent-a and is refused from pod web-b's; one bound to the label
// selector `pod:agents/app=agent,tier=front` likewise; a keyless workload `pod` governs the
// web pod; a key made through the admin API with a pod pattern binds at once; once pod
// agent-a is deleted its containers match nothing. Cgroups are made in a private test folder
// and removed at the end, with the pins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
	cgroupTree, cleanUpAfter, enforcementSkip, eventually, gatewayConfig, httpUpstream,
	INIT_BODY, makeKey, makeTempDir, paths, postFromCgroup, skipNotice, startDaemon,
	startFixture, stopDaemonChecked
} from './lib.mjs';
import { kubeTlsSkip, podObject, startKubeApiTls } from '../fixtures/kube-api.mjs';

const skip = skipNotice('identity-pods.test.mjs', enforcementSkip() || kubeTlsSkip);

const NODE = 'node-a';
const ADMIN_TOKEN = `adm_${process.pid}_identity_pods_token_12345`;

const callFrom = (cgdir, url, key) => postFromCgroup(cgdir, url, key).status;

test('keys bound to pods by name and by label, through the pod watch', { skip, timeout: 120000 }, async (t) => {
	const tag = `mcpwarden-identpod-${process.pid}`;
	const pinDir = `/sys/fs/bpf/${tag}`;
	const cg = cgroupTree(tag), mk = cg.mk;
	const dir = makeTempDir('mcpwarden-identpod-');
	const fixture = await startFixture();
	let daemon, api;
	cleanUpAfter(t, () => [daemon, api, fixture], { pinDir, cg });

	const tls = await startKubeApiTls(dir, NODE);
	const { tokenFile, cert } = tls;
	api = tls.api;

	const hex64 = () => randomBytes(32).toString('hex');
	const a = { uid: randomUUID(), agent: hex64() }, w = { uid: randomUUID(), app: hex64() };
	mk('kubepods', 'besteffort', `pod${a.uid}`);
	const aAgent = mk('kubepods', 'besteffort', `pod${a.uid}`, a.agent);
	mk('kubepods', 'besteffort', `pod${w.uid}`);
	const wApp = mk('kubepods', 'besteffort', `pod${w.uid}`, w.app);
	const outside = mk('elsewhere');
	api.put(podObject({ uid: a.uid, name: 'agent-a', node: NODE, annotation: 'protect',
		labels: { app: 'agent', tier: 'front' }, containers: [{ name: 'agent', id: a.agent }] }));
	api.put(podObject({ uid: w.uid, name: 'web-b', node: NODE, annotation: 'protect',
		labels: { app: 'web', tier: 'front' }, containers: [{ name: 'app', id: w.app }] }));

	const byName = makeKey(), byLabel = makeKey();
	daemon = await startDaemon(gatewayConfig([httpUpstream(fixture.url)], {
		auth: { required: true },
		admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
		policies: { all: { tools: { allow: ['*/*'] } }, web: { tools: { allow: ['*/*'] } } },
		keys: [
			{ id: 'byname', policy: 'all', hash: byName.hash, workloads: ['pod:agents/agent-*'] },
			{ id: 'bylabel', policy: 'all', hash: byLabel.hash, workloads: ['pod:agents/app=agent,tier=front'] },
		],
		workloads: [{ name: 'web', pod: 'agents/app=web', policy: 'web' }],
		enforcement: { enabled: true, pin_dir: pinDir, kubernetes: {
			node_name: { env: 'MCPWARDEN_TEST_NODE' }, api_server: api.url,
			token_file: tokenFile, ca_file: cert } },
	}), { env: { MCPWARDEN_TEST_NODE: NODE } });
	await daemon.waitForStderr(/kernel enforcement is ON/, 10000);
	await daemon.waitForStderr(/upstream fixture: ready/, 15000);
	const enrolled = (uid, container) => daemon.waitForRecord((r) => r.type === 'enforcement'
		&& r.action === 'enroll' && r.pod_uid === uid && r.container === container, 8000);
	await enrolled(a.uid, 'agent');
	await enrolled(w.uid, 'app');

	// By name: the agent pod's container, not the web pod's, not a cgroup in no pod.
	assert.equal(callFrom(aAgent, daemon.url, byName.key), 200, 'pod:agents/agent-* from agent-a');
	assert.equal(callFrom(wApp, daemon.url, byName.key), 401, 'pod:agents/agent-* from web-b');
	assert.equal(callFrom(outside, daemon.url, byName.key), 401, 'pod:agents/agent-* from no pod');
	const rec = await daemon.waitForRecord((r) => r.type === 'auth'
		&& r.reason === 'key used outside its workload' && r.key === 'byname', 5000);
	assert.ok(rec.workload.endsWith(`/pod${w.uid}/${w.app}`), rec.workload);
	// By label: every pair must be on the pod (web-b has tier=front but not app=agent).
	assert.equal(callFrom(aAgent, daemon.url, byLabel.key), 200, 'app=agent,tier=front from agent-a');
	assert.equal(callFrom(wApp, daemon.url, byLabel.key), 401, 'app=agent,tier=front from web-b');
	// A keyless workload by label: the web pod needs no key, the agent pod does.
	const init = postFromCgroup(wApp, daemon.url, null);
	assert.equal(init.status, 200, 'keyless pod workload');
	assert.equal(callFrom(aAgent, daemon.url, null), 401, 'no key and no workload');
	const call = postFromCgroup(wApp, daemon.url, null, JSON.stringify({ jsonrpc: '2.0', id: 2,
		method: 'tools/call', params: { name: 'test_simple_text', arguments: {} } }), init.session);
	assert.equal(call.status, 200, call.text);
	const wl = await daemon.waitForRecord((r) => r.type === 'decision' && r.target === 'test_simple_text', 5000);
	assert.equal(wl.key, 'wl:web');
	assert.ok(wl.workload.endsWith(`/pod${w.uid}/${w.app}`));

	// wardenctl identities lists the pods the config binds, and what binds them.
	const out = spawnSync(join(paths.build, 'wardenctl'), ['identities', '--config', daemon.configPath, '--json',
		'--pin-dir', pinDir], { encoding: 'utf8' });
	assert.equal(out.status, 0, out.stderr);
	assert.deepEqual(JSON.parse(out.stdout).pods, [
		{ pod: 'agents/agent-*', keys: 'byname' },
		{ pod: 'agents/app=agent,tier=front', keys: 'bylabel' },
		{ pod: 'agents/app=web', keys: '', workload: 'wl:web' },
	]);
	const text = spawnSync(join(paths.build, 'wardenctl'), ['identities', '--config', daemon.configPath,
		'--pin-dir', pinDir], { encoding: 'utf8' });
	assert.match(text.stdout, /^pod:agents\/agent-\* +keys=byname workload=-$/m);

	// The admin API takes pod patterns while the pod watch runs.
	await daemon.waitForStderr(/admin (listening )?on/, 5000);
	const r = await fetch(`${daemon.adminUrl}/v1/keys`, { method: 'POST',
		headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
		body: JSON.stringify({ policy: 'all', workloads: ['pod:agents/web-*'] }) });
	const made2 = await r.json();
	assert.equal(r.status, 201, JSON.stringify(made2));
	assert.deepEqual(made2.record.workloads, ['pod:agents/web-*']);
	assert.equal(callFrom(wApp, daemon.url, made2.key), 200);
	assert.equal(callFrom(aAgent, daemon.url, made2.key), 401);

	// Pod agent-a deleted (its cgroups still there, as in a forced deletion): its containers
	// stop matching at once.
	api.delete(a.uid);
	await daemon.waitForStderr(new RegExp(`pod agents/agent-a \\(${a.uid}\\) deleted: forgotten`), 8000);
	await eventually(() => callFrom(aAgent, daemon.url, byName.key) === 401,
		{ what: 'a deleted pod is refused', ms: 8000 });
	assert.equal(callFrom(aAgent, daemon.url, byLabel.key), 401);

	const d = daemon;
	daemon = null;
	assert.deepEqual(await stopDaemonChecked(d), []);
});
