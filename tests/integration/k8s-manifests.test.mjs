// The Kubernetes manifests in deploy/kubernetes/, checked offline: every object validates
// against the Kubernetes OpenAPI schemas (kubernetes-models 5.1.0: Kubernetes 1.34 APIs), the
// security properties a platform engineer relies on hold (the gateway is an unprivileged
// native sidecar with its probes, the node enforcer adds only the capabilities the kernel
// needs, RBAC only reads pods, the MCP servers admit only sidecar pods), the two embedded
// mcpwarden configs pass the daemon's own --check-config, and kustomization.yaml lists
// every manifest (and, where kubectl is installed, renders them with the image override).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { makeTempDir, paths } from './lib.mjs';

const dir = join(paths.top, 'deploy', 'kubernetes');
const SIDECAR_IMAGE = 'localhost/mcpwarden';
const NODE_CAPS = ['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_ADMIN'];

/** Every document of every *.yaml in the folder: [{file, obj}]. A YAML error fails here. */
function loadManifests() {
	const out = [];
	for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
		for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
			assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
			const obj = doc.toJS();
			if (obj !== null)
				out.push({ file, obj });
		}
	}
	return out;
}

/** The kubernetes-models class for an object's apiVersion and kind. */
async function modelClass(apiVersion, kind) {
	const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
	const mod = await import(group ? `kubernetes-models/${group}/${version}/${kind}`
				       : `kubernetes-models/${version}/${kind}`);
	return mod[kind];
}

/** Validate one object against its schema: null when valid, else the error text. */
async function schemaError(obj) {
	let Cls;
	try {
		Cls = await modelClass(obj.apiVersion, obj.kind);
	} catch {
		return `no Kubernetes schema for ${obj.apiVersion} ${obj.kind}`;
	}
	try {
		new Cls(obj).validate();
		return null;
	} catch (e) {
		return e.message;
	}
}

const manifests = loadManifests();
const objs = manifests.map((m) => m.obj).filter((o) => o.kind !== 'Kustomization');
const find = (kind, name) => {
	const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
	assert.ok(o, `${kind} ${name} is in deploy/kubernetes`);
	return o;
};
const configJson = (cm) => JSON.parse(cm.data['mcpwarden.json']);
const portOf = (listen) => Number(listen.slice(listen.lastIndexOf(':') + 1));
const matches = (selector, labels) =>
	Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);

test('every object validates against the Kubernetes OpenAPI schemas', async () => {
	const kust = manifests.filter((m) => m.obj.kind === 'Kustomization');
	assert.equal(kust.length, 1, 'one kustomization.yaml');
	assert.ok(objs.length >= 10, `found ${objs.length} objects`);
	const bad = [];
	for (const { file, obj } of manifests.filter((m) => m.obj.kind !== 'Kustomization')) {
		const err = await schemaError(obj);
		if (err)
			bad.push(`${file}: ${obj.kind} ${obj.metadata?.name}: ${err}`);
	}
	assert.deepEqual(bad, [], bad.join('\n'));
});

test('the validator refuses broken objects (so the check above is not vacuous)', async () => {
	const dep = structuredClone(find('Deployment', 'example-agent'));
	dep.spec.template.spec.initContainers[0].ports[0].containerPort = 'eighty';
	assert.match(await schemaError(dep) ?? 'valid', /containerPort must be integer/);
	const ds = structuredClone(find('DaemonSet', 'mcpwarden-node'));
	delete ds.spec.selector;
	assert.match(await schemaError(ds) ?? 'valid', /must have required property '?selector'?/);
	assert.match(await schemaError({ apiVersion: 'v1', kind: 'NoSuchKind', metadata: { name: 'x' } }),
		     /no Kubernetes schema/);
});

test('kustomization.yaml lists every manifest in the folder and overrides the image', () => {
	const k = manifests.find((m) => m.obj.kind === 'Kustomization').obj;
	const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
	assert.deepEqual([...k.resources].sort(), files.sort());
	assert.deepEqual(readdirSync(dir).filter((f) => !/\.ya?ml$/.test(f)), [], 'nothing else in the folder');
	const version = /^VERSION\s*:=\s*(\S+)/m.exec(readFileSync(join(paths.top, 'Makefile'), 'utf8'))[1];
	assert.deepEqual(k.images, [{ name: SIDECAR_IMAGE, newTag: version }]);
	for (const o of objs.filter((x) => x.spec?.template?.spec))
		for (const c of [...(o.spec.template.spec.initContainers ?? []), ...o.spec.template.spec.containers])
			if (c.image.startsWith(SIDECAR_IMAGE + ':'))
				assert.equal(c.image, `${SIDECAR_IMAGE}:${version}`, `${o.kind} ${c.name}: the Makefile's version`);
});

test('the gateway is an unprivileged native sidecar with startup, readiness and liveness probes', () => {
	const dep = find('Deployment', 'example-agent');
	const pod = dep.spec.template.spec;
	const cfg = configJson(find('ConfigMap', 'mcpwarden-gateway'));
	const sc = pod.initContainers.find((c) => c.name === 'mcpwarden');
	assert.ok(sc, 'initContainers[name=mcpwarden]');
	assert.equal(sc.restartPolicy, 'Always', 'a native sidecar, not a run-to-completion init container');
	assert.ok(sc.image.startsWith(SIDECAR_IMAGE + ':'));
	assert.equal(sc.securityContext.runAsNonRoot, true);
	assert.equal(sc.securityContext.runAsUser, 65532);
	assert.equal(sc.securityContext.readOnlyRootFilesystem, true);
	assert.equal(sc.securityContext.allowPrivilegeEscalation, false);
	assert.notEqual(sc.securityContext.privileged, true);
	assert.deepEqual(sc.securityContext.capabilities, { drop: ['ALL'] }, 'drops every capability, adds none');
	assert.equal(sc.securityContext.seccompProfile.type, 'RuntimeDefault');
	// Probes on the daemon's health endpoints, on the port the config listens on.
	const port = portOf(cfg.listen);
	const named = Object.fromEntries((sc.ports ?? []).map((p) => [p.name, p.containerPort]));
	const probePort = (p) => (typeof p.httpGet.port === 'number' ? p.httpGet.port : named[p.httpGet.port]);
	for (const [probe, path] of [['startupProbe', '/readyz'], ['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']]) {
		assert.ok(sc[probe]?.httpGet, `${probe} present`);
		assert.equal(sc[probe].httpGet.path, path, probe);
		assert.equal(probePort(sc[probe]), port, `${probe} on the listen port ${port}`);
	}
	// The kubelet probes the pod IP: a loopback-only listener would never become ready.
	assert.ok(!cfg.listen.startsWith('127.') && !cfg.listen.startsWith('[::1]'), 'listens beyond loopback for the probes');
	// Config from the ConfigMap, state in an emptyDir at the config's state_dir.
	const vol = (name) => pod.volumes.find((v) => v.name === name);
	const mountAt = (path) => sc.volumeMounts.find((m) => m.mountPath === path);
	assert.ok(sc.args.includes('/etc/mcpwarden/mcpwarden.json'));
	assert.equal(vol(mountAt('/etc/mcpwarden').name).configMap.name, 'mcpwarden-gateway');
	assert.equal(mountAt('/etc/mcpwarden').readOnly, true);
	assert.ok(vol(mountAt(cfg.state_dir).name).emptyDir, 'state_dir is an emptyDir');
	// Secrets from the Secret, by the names the config asks for.
	const envSecret = (c, name) => c.env.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
	assert.equal(cfg.admin.token.env, 'MCPWARDEN_ADMIN_TOKEN');
	assert.equal(envSecret(sc, 'MCPWARDEN_ADMIN_TOKEN').name, 'mcpwarden-gateway');
	for (const u of cfg.upstreams)
		for (const v of Object.values(u.headers ?? {}))
			assert.equal(envSecret(sc, v.env)?.name, 'mcpwarden-gateway', `${v.env} from the Secret`);
	const secret = find('Secret', 'mcpwarden-gateway');
	for (const key of ['admin-token', 'agent-key', 'mcp-server-authorization'])
		assert.ok(key in secret.stringData, `Secret has ${key}`);
	// The pod asks to be enforced and is admitted to the MCP servers.
	assert.match(dep.spec.template.metadata.annotations['mcpwarden.io/enforce'], /^(protect|lockdown)$/);
	assert.equal(dep.spec.template.metadata.labels['mcpwarden.io/sidecar'], 'true');
});

test('the agent cannot borrow the sidecar\'s powers', () => {
	const pod = find('Deployment', 'example-agent').spec.template.spec;
	const sc = pod.initContainers.find((c) => c.name === 'mcpwarden');
	assert.equal(pod.automountServiceAccountToken, false);
	assert.notEqual(pod.shareProcessNamespace, true, 'no ptrace of the sidecar');
	assert.notEqual(pod.hostNetwork, true, '127.0.0.1:8080 must be the pod\'s own sidecar');
	for (const c of pod.containers) {
		assert.equal(c.securityContext.runAsNonRoot, true, c.name);
		assert.notEqual(c.securityContext.runAsUser, sc.securityContext.runAsUser, `${c.name} runs as another user than the sidecar`);
		assert.equal(c.securityContext.allowPrivilegeEscalation, false, c.name);
		assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], c.name);
		assert.equal(c.securityContext.capabilities.add, undefined, c.name);
		assert.equal(c.env.some((e) => e.name === 'MCPWARDEN_ADMIN_TOKEN' || e.name === 'MCP_SERVER_AUTHORIZATION'),
			     false, `${c.name} gets neither the admin token nor the MCP server's credentials`);
		assert.equal(c.env.find((e) => e.name === 'MCPWARDEN_URL').value, 'http://127.0.0.1:8080/mcp');
	}
});

test('the node enforcer holds only what the kernel needs', () => {
	const ds = find('DaemonSet', 'mcpwarden-node');
	const pod = ds.spec.template.spec;
	assert.equal(pod.containers.length, 1);
	const c = pod.containers[0];
	const s = c.securityContext;
	assert.deepEqual(s.capabilities.drop, ['ALL']);
	assert.deepEqual([...s.capabilities.add].sort(), [...NODE_CAPS].sort(), 'adds exactly BPF, NET_ADMIN, PERFMON, SYS_ADMIN');
	assert.notEqual(s.privileged, true);
	assert.equal(s.readOnlyRootFilesystem, true);
	assert.equal(s.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
	// The API refuses allowPrivilegeEscalation: false with CAP_SYS_ADMIN; kubernetes-models does not.
	if (s.capabilities.add.some((x) => /^(CAP_)?SYS_ADMIN$/.test(x)))
		assert.notEqual(s.allowPrivilegeEscalation, false);
	for (const k of ['hostPID', 'hostNetwork', 'hostIPC'])
		assert.notEqual(pod[k], true, k);
	// Host paths: exactly bpffs and the cgroup root (read-only); never a runtime socket.
	const hostPaths = pod.volumes.filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
	assert.deepEqual(hostPaths, ['/sys/fs/bpf', '/sys/fs/cgroup']);
	const mount = (hp) => c.volumeMounts.find((m) => m.name === pod.volumes.find((v) => v.hostPath?.path === hp).name);
	assert.equal(mount('/sys/fs/bpf').mountPath, '/sys/fs/bpf');
	assert.equal(mount('/sys/fs/cgroup').mountPath, '/sys/fs/cgroup');
	assert.equal(mount('/sys/fs/cgroup').readOnly, true, 'the cgroupfs is only read');
	// Its enforcement config from the ConfigMap: pins on the host's bpffs, and the sidecar port
	// the kernel allows is the gateways' listen port.
	const cm = pod.volumes.find((v) => v.configMap);
	assert.equal(cm.configMap.name, 'mcpwarden-node');
	assert.equal(c.volumeMounts.find((m) => m.name === cm.name).mountPath, '/etc/mcpwarden');
	const node = configJson(find('ConfigMap', 'mcpwarden-node'));
	const gw = configJson(find('ConfigMap', 'mcpwarden-gateway'));
	assert.equal(node.enforcement.enabled, true);
	assert.ok(node.enforcement.pin_dir.startsWith('/sys/fs/bpf/'));
	assert.equal(portOf(node.listen), portOf(gw.listen), 'enforcer listen port = sidecar port');
	assert.equal(pod.serviceAccountName, 'mcpwarden-node');
	// The pod watch: its node from the downward API, the annotation and the sidecar's name
	// the agent Deployment uses, the token mounted.
	const kube = node.enforcement.kubernetes;
	assert.ok(kube, 'the enforcer watches the pods of its node');
	assert.equal(c.env.find((e) => e.name === kube.node_name.env)?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
	const agentPod = find('Deployment', 'example-agent').spec.template;
	assert.match(agentPod.metadata.annotations[kube.annotation ?? 'mcpwarden.io/enforce'], /^(protect|lockdown)$/);
	assert.ok(agentPod.spec.initContainers.some((x) => x.name === (kube.sidecar_container ?? 'mcpwarden') && x.restartPolicy === 'Always'),
		  'the exempt container is the native sidecar');
	assert.notEqual(pod.automountServiceAccountToken, false);
	assert.ok(pod.tolerations.some((t) => t.operator === 'Exists' && !t.key), 'runs on every node');
});

test('RBAC: the node enforcer may only get, list and watch pods', () => {
	const roles = objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
	assert.ok(roles.length >= 1);
	for (const r of roles)
		for (const rule of r.rules) {
			assert.deepEqual(rule.apiGroups, ['']);
			assert.deepEqual(rule.resources, ['pods']);
			assert.ok(rule.verbs.length && rule.verbs.every((v) => ['get', 'list', 'watch'].includes(v)), rule.verbs.join());
			assert.equal(rule.resourceNames, undefined);
		}
	const b = find('ClusterRoleBinding', 'mcpwarden-node');
	assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'mcpwarden-node', namespace: 'mcpwarden-system' }]);
	assert.equal(b.roleRef.name, 'mcpwarden-node');
	find('ServiceAccount', 'mcpwarden-node');
});

test('NetworkPolicy: MCP servers only from sidecar pods, agent pods take no connections', () => {
	const dep = find('Deployment', 'example-agent');
	const agentNs = find('Namespace', dep.metadata.namespace);
	const np = find('NetworkPolicy', 'mcpwarden-mcp-servers-from-sidecars');
	assert.deepEqual(np.spec.policyTypes, ['Ingress']);
	assert.equal(np.spec.ingress.length, 1);
	for (const peer of np.spec.ingress[0].from) {
		assert.ok(peer.podSelector && peer.namespaceSelector && !peer.ipBlock, 'pod-and-namespace peers only');
		assert.equal(peer.podSelector.matchLabels['mcpwarden.io/sidecar'], 'true');
		assert.ok(matches(peer.podSelector, dep.spec.template.metadata.labels), 'selects the agent pods');
		assert.ok(matches(peer.namespaceSelector, agentNs.metadata.labels), 'in the agents namespace');
	}
	const deny = find('NetworkPolicy', 'mcpwarden-agents-ingress');
	assert.ok(matches(deny.spec.podSelector, dep.spec.template.metadata.labels));
	assert.deepEqual(deny.spec.ingress, []);
	// The label that opens the MCP servers is bound to the sidecar in the agents namespace.
	const binding = find('ValidatingAdmissionPolicyBinding', 'mcpwarden-sidecar-required');
	assert.ok(matches(binding.spec.matchResources.namespaceSelector, agentNs.metadata.labels));
	assert.deepEqual(binding.spec.validationActions, ['Deny']);
	assert.equal(find('ValidatingAdmissionPolicy', binding.spec.policyName).spec.failurePolicy, 'Fail');
});

test('the embedded configs pass mcpwarden --check-config; the unfilled Secret does not', (t) => {
	if (!existsSync(paths.daemon)) {
		t.skip(`SKIP: no daemon at ${paths.daemon} (build it first)`);
		return;
	}
	const tmp = makeTempDir('mcpwarden-k8s-');
	const check = (name, cm, env) => {
		const f = join(tmp, `${name}.json`);
		writeFileSync(f, cm.data['mcpwarden.json']);
		return spawnSync(paths.daemon, ['--check-config', f], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
	};
	// The enforcer's env as the DaemonSet builds it (NODE_NAME from the downward API).
	const node = check('node', find('ConfigMap', 'mcpwarden-node'), { NODE_NAME: 'worker-1' });
	assert.equal(node.status, 0, node.stderr);
	// The sidecar's env as the Deployment builds it from the Secret.
	const sc = find('Deployment', 'example-agent').spec.template.spec.initContainers[0];
	const secret = find('Secret', 'mcpwarden-gateway').stringData;
	const envFrom = (data) => Object.fromEntries(sc.env.map((e) => [e.name, data[e.valueFrom.secretKeyRef.key]]));
	const unfilled = check('gateway', find('ConfigMap', 'mcpwarden-gateway'), envFrom(secret));
	assert.notEqual(unfilled.status, 0, 'the template\'s placeholders must not start a gateway');
	assert.match(unfilled.stderr, /admin\.token/);
	const key = 'mcpw_' + randomBytes(32).toString('base64url');
	const filled = { 'admin-token': randomBytes(32).toString('base64'), 'agent-key': key,
			 'mcp-server-authorization': 'Bearer ' + randomBytes(16).toString('hex') };
	const cm = structuredClone(find('ConfigMap', 'mcpwarden-gateway'));
	const cfg = configJson(cm);
	cfg.keys[0].hash = 'sha256:' + createHash('sha256').update(key).digest('hex');
	cm.data['mcpwarden.json'] = JSON.stringify(cfg);
	const ok = check('gateway', cm, envFrom(filled));
	assert.equal(ok.status, 0, ok.stderr);
});

test('kubectl kustomize renders every object and applies the image override', (t) => {
	const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
	if (probe.error || probe.status !== 0) {
		t.skip('SKIP: kubectl is not installed (the schema checks above do not need it)');
		return;
	}
	const overlay = makeTempDir('mcpwarden-kustomize-');
	writeFileSync(join(overlay, 'kustomization.yaml'),
		      `resources:\n  - ${relative(overlay, dir)}\nimages:\n  - name: ${SIDECAR_IMAGE}\n    newName: registry.example.com/platform/mcpwarden\n    newTag: 9.9.9\n`);
	for (const [where, want] of [[dir, `${SIDECAR_IMAGE}:`], [overlay, 'registry.example.com/platform/mcpwarden:9.9.9']]) {
		const r = spawnSync('kubectl', ['kustomize', where], { encoding: 'utf8' });
		assert.equal(r.status, 0, r.stderr);
		const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS());
		assert.equal(rendered.length, objs.length, 'every object rendered');
		const images = rendered.filter((o) => o.spec?.template?.spec)
			.flatMap((o) => [...(o.spec.template.spec.initContainers ?? []), ...o.spec.template.spec.containers])
			.map((c) => c.image).filter((i) => !i.includes('example-agent'));
		assert.equal(images.length, 2, 'the sidecar and the node enforcer');
		for (const i of images)
			assert.ok(i.startsWith(want), `${i} starts with ${want}`);
	}
});
