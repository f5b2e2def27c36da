// OAuth 2.1 resource server (docs/oauth.md): agents present access tokens issued by a test
// identity provider whose keys are made here by OpenSSL (node's crypto): RSA, P-256, Ed25519.
// The official SDK client with a valid token calls tools; expired, wrong audience, wrong
// issuer, bad signature, alg none, HS256 keyed with the public key, unknown kid and missing
// scope are refused with RFC 6750's error and RFC 9728's resource_metadata; the token's team
// claim decides which tools it may call; the upstream never sees the token; the metadata is
// served at /.well-known/oauth-protected-resource. The JWKS comes from a file and from a
// test HTTP server (rotated keys are picked up on an unknown kid).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectHttp, eventually, fixtureStdioUpstream, httpUpstream, makeTempDir, postJson,
	removeTempDir, startDaemon, startFixture } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'https://mcp.example.test/mcp';
const META_URL = 'https://mcp.example.test/.well-known/oauth-protected-resource/mcp';
const b64u = (b) => Buffer.from(b).toString('base64url');

/** A signing key of the test issuer: alg, kid, its private key and public JWK. */
function issuerKey(alg, kid) {
	const kp = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 })
		: alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
			: generateKeyPairSync('ed25519');
	return { alg, kid, priv: kp.privateKey,
		jwk: { ...kp.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

/** A compact JWS of claims signed with k (header overrides in hdr). */
function sign(k, claims, hdr = {}) {
	const header = { alg: k.alg, typ: 'at+jwt', kid: k.kid, ...hdr };
	const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
	const data = Buffer.from(input);
	const sig = k.alg === 'RS256' ? cryptoSign('sha256', data, k.priv)
		: k.alg === 'ES256' ? cryptoSign('sha256', data, { key: k.priv, dsaEncoding: 'ieee-p1363' })
			: cryptoSign(null, data, k.priv);
	return `${input}.${b64u(sig)}`;
}

const now = () => Math.floor(Date.now() / 1000);
const claimsFor = (over = {}) => ({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', team: 'blue',
	scope: 'openid mcp', iat: now() - 5, exp: now() + 300, ...over });
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25',
	capabilities: {}, clientInfo: { name: 'oauth-test', version: '1' } } };

/** An HTTP proxy in front of the fixture that keeps every request's headers. */
async function recordingProxy(target) {
	const t = new URL(target), seen = [];
	const srv = createServer((req, res) => {
		seen.push(req.headers);
		const up = httpRequest({ host: t.hostname, port: t.port, path: req.url, method: req.method,
			headers: req.headers }, (r) => {
			res.writeHead(r.statusCode, r.headers);
			r.pipe(res);
		});
		up.on('error', () => res.destroy());
		req.pipe(up);
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return { url: `http://127.0.0.1:${srv.address().port}${t.pathname}`, seen,
		close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
}

function assertRefused(r, status, error, what) {
	assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.text}`);
	const h = r.headers.get('www-authenticate') ?? '';
	assert.match(h, /^Bearer /, `${what}: WWW-Authenticate ${h}`);
	assert.ok(h.includes(`resource_metadata="${META_URL}"`), `${what}: ${h}`);
	assert.ok(h.includes(`error="${error}"`), `${what}: ${h}`);
	assert.equal(r.json?.error?.code, -32001, `${what}: body ${r.text}`);
}

describe('oauth: JWKS from a file', () => {
	const keys = { rs: issuerKey('RS256', 'rs-1'), es: issuerKey('ES256', 'es-1'),
		ed: issuerKey('EdDSA', 'ed-1') };
	const stranger = issuerKey('RS256', 'rs-1');   // same kid, not the issuer's key
	let dir, fx, proxy, d, cfg, jwksFile;

	before(async () => {
		dir = makeTempDir('mcpwarden-oauth-');
		jwksFile = join(dir, 'jwks.json');
		writeFileSync(jwksFile, JSON.stringify({ keys: Object.values(keys).map((k) => k.jwk) }));
		fx = await startFixture();
		proxy = await recordingProxy(fx.url);
		d = await startDaemon(cfg = { listen: '127.0.0.1:0', prefix: 'never', auth: { required: true },
			upstreams: [httpUpstream(proxy.url, 'fx')],
			policies: { 'p-blue': { tools: { allow: ['fx/*'] } },
				'p-red': { tools: { allow: ['fx/test_image_content'] } } },
			teams: [{ name: 'blue', policy: 'p-blue' }, { name: 'red', policy: 'p-red' }],
			oauth: { issuer: ISSUER, audience: AUDIENCE, jwks_file: jwksFile,
				required_scopes: ['mcp'], team_claim: 'team', clock_skew: '5s' } },
		{ ready: true });
	});
	after(async () => {
		await d?.stop();
		await proxy?.close();
		await fx?.stop();
		if (dir)
			removeTempDir(dir);
	});

	test('the protected resource metadata (RFC 9728) is served on the agent listener', async () => {
		const origin = new URL(d.url).origin;
		for (const p of ['/.well-known/oauth-protected-resource',
			'/.well-known/oauth-protected-resource/mcp']) {
			const r = await fetch(origin + p);
			assert.equal(r.status, 200, p);
			const m = await r.json();
			assert.equal(m.resource, AUDIENCE);
			assert.deepEqual(m.authorization_servers, [ISSUER]);
			assert.deepEqual(m.scopes_supported, ['mcp']);
			assert.deepEqual(m.bearer_methods_supported, ['header']);
		}
		assert.equal((await fetch(`${origin}/.well-known/oauth-protected-resource/other`)).status, 404);
	});

	test('the SDK client with a valid token of each algorithm calls a tool; the upstream ' +
		'never sees the token', async () => {
		for (const k of Object.values(keys)) {
			const token = sign(k, claimsFor({ sub: `alice-${k.alg}` }));
			const from = proxy.seen.length;
			const c = await connectHttp(d.url, { headers: bearer(token) });
			try {
				const r = await c.client.callTool({ name: 'test_simple_text', arguments: {} });
				assert.equal(r.isError, undefined, `${k.alg}: ${JSON.stringify(r)}`);
				assert.match(r.content[0].text, /simple text/i);
			} finally {
				await c.close();
			}
			const rec = await d.waitForRecord((x) => x.type === 'decision' &&
				x.key === `oauth:alice-${k.alg}` && x.method === 'tools/call');
			assert.equal(rec.team, 'blue');
			assert.equal(rec.policy, undefined, 'the team\'s policy alone');
			assert.equal(rec.decision, 'allow');
			assert.ok(proxy.seen.length > from, 'the call went upstream');
			for (const h of proxy.seen.slice(from)) {
				assert.equal(h.authorization, undefined, `upstream saw ${JSON.stringify(h)}`);
				assert.ok(!JSON.stringify(h).includes(token.split('.')[2]), 'token upstream');
			}
		}
		assert.ok(!d.stdoutLines.concat(d.stderrLines).some((l) => l.includes(
			sign(keys.rs, claimsFor()).split('.')[0] + '.')), 'a token in the logs');
	});

	test('bad tokens are refused: 401 invalid_token or 403 insufficient_scope, with ' +
		'resource_metadata, and a record that never holds the token', async () => {
		const noneTok = `${b64u(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.` +
			`${b64u(JSON.stringify(claimsFor()))}.`;
		const hsInput = `${b64u(JSON.stringify({ alg: 'HS256', kid: 'rs-1' }))}.` +
			`${b64u(JSON.stringify(claimsFor()))}`;
		const hsTok = `${hsInput}.${createHmac('sha256', JSON.stringify(keys.rs.jwk))
			.update(hsInput).digest('base64url')}`;
		const cases = [
			['expired', sign(keys.rs, claimsFor({ exp: now() - 60 })), 401, 'invalid_token'],
			['wrong audience', sign(keys.es, claimsFor({ aud: 'https://other.example/mcp' })), 401,
				'invalid_token'],
			['wrong issuer', sign(keys.ed, claimsFor({ iss: 'https://evil.example' })), 401,
				'invalid_token'],
			['bad signature', sign(stranger, claimsFor()), 401, 'invalid_token'],
			['alg none', noneTok + 'x', 401, 'invalid_token'],
			['HS256 with the public key', hsTok, 401, 'invalid_token'],
			['unknown kid', sign(issuerKey('ES256', 'es-unknown'), claimsFor()), 401, 'invalid_token'],
			['not yet valid', sign(keys.rs, claimsFor({ nbf: now() + 600 })), 401, 'invalid_token'],
			['missing scope', sign(keys.rs, claimsFor({ scope: 'openid' })), 403, 'insufficient_scope'],
		];
		for (const [what, token, status, error] of cases) {
			const from = d.stdoutRecords.length;
			const r = await postJson(d.url, INIT, bearer(token));
			assertRefused(r, status, error, what);
			const rec = await d.waitForRecord((x) => x.type === 'auth' &&
				d.stdoutRecords.indexOf(x) >= from);
			assert.match(rec.reason, /^oauth: /, `${what}: ${JSON.stringify(rec)}`);
			assert.ok(!JSON.stringify(rec).includes(token), `${what}: token in the record`);
		}
		// No credential at all: where to get one.
		const r = await postJson(d.url, INIT, {});
		assert.equal(r.status, 401);
		assert.ok((r.headers.get('www-authenticate') ?? '').includes(`resource_metadata="${META_URL}"`));
	});

	test('the team claim decides the policy: a tool allowed for one team is refused for ' +
		'another; an unknown team gets no access', async () => {
		const blue = await connectHttp(d.url, { headers: bearer(sign(keys.ed,
			claimsFor({ sub: 'bob', team: 'blue' }))) });
		const red = await connectHttp(d.url, { headers: bearer(sign(keys.ed,
			claimsFor({ sub: 'carol', team: 'red' }))) });
		try {
			const ok = await blue.client.callTool({ name: 'test_simple_text', arguments: {} });
			assert.equal(ok.isError, undefined);
			await assert.rejects(red.client.callTool({ name: 'test_simple_text', arguments: {} }),
				(e) => e.code === -32003 || /-32003|not permitted/i.test(String(e)));
			const img = await red.client.callTool({ name: 'test_image_content', arguments: {} });
			assert.equal(img.content[0].type, 'image');
			const list = await red.client.listTools();
			assert.deepEqual(list.tools.map((t) => t.name), ['test_image_content']);
		} finally {
			await blue.close();
			await red.close();
		}
		const r = await postJson(d.url, INIT, bearer(sign(keys.rs,
			claimsFor({ sub: 'mallory', team: 'green' }))));
		assert.equal(r.status, 403, r.text);
	});

	test('a reload re-reads the JWKS file (a retired key stops working, a new one starts); ' +
		'a bad oauth section is refused with its field paths and the old one keeps serving',
	async () => {
		const bad = await d.reload({ ...cfg, oauth: { ...cfg.oauth, algorithms: ['HS256'],
			policy_map: { claim: 'groups', values: { admins: 'no-such-policy' } } } });
		assert.equal(bad.ok, false);
		const errs = bad.errors.join('\n');
		assert.match(errs, /oauth\.algorithms/);
		assert.match(errs, /oauth\.policy_map\.values\.admins: no policy "no-such-policy"/);
		const oldTok = sign(keys.rs, claimsFor({ sub: 'dave' }));
		assert.equal((await postJson(d.url, INIT, bearer(oldTok))).status, 200);

		const fresh = issuerKey('ES256', 'es-2');
		writeFileSync(jwksFile, JSON.stringify({ keys: [fresh.jwk] }));
		const ok = await d.reload({ ...cfg, oauth: { ...cfg.oauth, clock_skew: '10s' } });
		assert.equal(ok.ok, true, JSON.stringify(ok));
		assertRefused(await postJson(d.url, INIT, bearer(oldTok)), 401, 'invalid_token',
			'retired key');
		assert.equal((await postJson(d.url, INIT, bearer(sign(fresh, claimsFor({ sub: 'dave' })))))
			.status, 200);
	});
});

describe('oauth: JWKS from an HTTP URL, audience from the listener', () => {
	const a = issuerKey('ES256', 'a'), b = issuerKey('EdDSA', 'b');
	let served = [a.jwk], fetches = 0, jwksSrv, fx, d;

	before(async () => {
		jwksSrv = createServer((req, res) => {
			fetches++;
			res.writeHead(200, { 'Content-Type': 'application/json' });
			res.end(JSON.stringify({ keys: served }));
		});
		await new Promise((r) => jwksSrv.listen(0, '127.0.0.1', r));
		fx = await startFixture();
		d = await startDaemon({ listen: '127.0.0.1:0', prefix: 'never', auth: { required: true },
			upstreams: [httpUpstream(fx.url, 'fx')],
			policies: { all: { tools: { allow: ['*/*'] } } },
			oauth: { issuer: ISSUER, policy: 'all', algorithms: ['ES256', 'EdDSA'],
				jwks_url: `http://127.0.0.1:${jwksSrv.address().port}/jwks.json`,
				jwks_min_refetch: '1s' } },
		{ ready: true });
	});
	after(async () => {
		await d?.stop();
		await fx?.stop();
		await new Promise((r) => { jwksSrv?.closeAllConnections(); jwksSrv?.close(r); });
	});

	test('a token for the listener\'s URL is accepted once the keys are fetched', async () => {
		const token = sign(a, claimsFor({ aud: d.url, sub: 'svc-1' }));
		await eventually(async () => (await postJson(d.url, INIT, bearer(token))).status === 200,
			{ what: 'the JWKS fetched' });
		const c = await connectHttp(d.url, { headers: bearer(token) });
		try {
			const r = await c.client.callTool({ name: 'test_simple_text', arguments: {} });
			assert.equal(r.isError, undefined);
		} finally {
			await c.close();
		}
		const rec = await d.waitForRecord((x) => x.type === 'decision' && x.key === 'oauth:svc-1' &&
			x.method === 'tools/call');
		assert.equal(rec.policy, 'all');
		assert.equal(rec.team, undefined);
		// The listener's URL is the default resource: another audience is refused.
		const other = await postJson(d.url, INIT, bearer(sign(a, claimsFor({ sub: 'svc-1' }))));
		assert.equal(other.status, 401);
	});

	test('a rotated key (unknown kid) is fetched again, at most once per jwks_min_refetch',
		async () => {
			const token = sign(b, claimsFor({ aud: d.url, sub: 'svc-2' }));
			const r = await postJson(d.url, INIT, bearer(token));
			assert.equal(r.status, 401, 'not served yet');
			served = [a.jwk, b.jwk];
			const before1 = fetches;
			await eventually(async () => (await postJson(d.url, INIT, bearer(token))).status === 200,
				{ what: 'the rotated key fetched' });
			assert.ok(fetches > before1);
			// A burst of unknown kids costs no more than one fetch per interval.
			const burst = fetches;
			const unknown = sign(issuerKey('ES256', 'zzz'), claimsFor({ aud: d.url }));
			await Promise.all(Array.from({ length: 20 }, () => postJson(d.url, INIT, bearer(unknown))));
			assert.ok(fetches - burst <= 1, `${fetches - burst} fetches for a burst`);
		});
});

describe('oauth: the LLM route takes access tokens too', () => {
	const k = issuerKey('EdDSA', 'ed-llm');
	let dir, p, d;

	before(async () => {
		dir = makeTempDir('mcpwarden-oauth-llm-');
		const jwksFile = join(dir, 'jwks.json');
		writeFileSync(jwksFile, JSON.stringify({ keys: [k.jwk] }));
		p = await startProvider({ key: 'sk-provider-secret' });
		d = await startDaemon({ listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()],
			policies: { chat: { llm: { providers: { allow: ['*'] } } } },
			providers: [{ name: 'local', kind: 'openai', base_url: p.url, api_key_env: 'LLM_TEST_KEY',
				models: { 'gpt-ok': { input: '1', output: '2' } } }],
			oauth: { issuer: ISSUER, audience: AUDIENCE, jwks_file: jwksFile,
				required_scopes: ['mcp'], policy_claim: 'policy' } },
		{ env: { LLM_TEST_KEY: 'sk-provider-secret' } });
	});
	after(async () => {
		await d?.stop();
		await p?.close();
		if (dir)
			removeTempDir(dir);
	});

	const chat = (token) => fetch(`${d.url.replace(/\/mcp$/, '')}/v1/chat/completions`, {
		method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
		body: JSON.stringify({ model: 'local/gpt-ok', messages: [{ role: 'user', content: 'hi' }] }),
	});

	test('a valid token is governed by the policy its claim names; the provider never sees it; ' +
		'a bad one gets an OpenAI-shaped 401 with WWW-Authenticate', async () => {
		const token = sign(k, claimsFor({ sub: 'llm-user', policy: 'chat' }));
		const before1 = p.seen.length;
		const ok = await chat(token);
		assert.equal(ok.status, 200, await ok.clone().text());
		assert.equal((await ok.json()).choices[0].message.content, 'Hello there');
		assert.ok(!JSON.stringify(p.seen.slice(before1)).includes(token.split('.')[2]),
			'the token never reaches the provider');
		const rec = await d.waitForRecord((x) => x.type === 'llm' && x.key === 'oauth:llm-user');
		assert.equal(rec.policy, 'chat');
		assert.equal(rec.status, 200);

		const expired = await chat(sign(k, claimsFor({ policy: 'chat', exp: now() - 600 })));
		assert.equal(expired.status, 401);
		assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
		assert.equal((await expired.json()).error.type, 'authentication_error');
		const scope = await chat(sign(k, claimsFor({ policy: 'chat', scope: 'openid' })));
		assert.equal(scope.status, 403);
		assert.match(scope.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
	});
});
