// Authentication through the real daemon: every request needs a valid key (401 with
// WWW-Authenticate otherwise, the same answer whatever the reason, the reason only in the
// record), a session belongs to the key that opened it (403), revocation by editing the config
// and SIGHUP (a bad file is refused and the running config keeps serving), and repeated
// failures from one address are held off (429 with Retry-After) without locking out others.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectHttp, everythingUpstream, makeKey, makeKeys, postJson, rawRequest, rawSession,
	suiteDaemon, waitForTool } from './lib.mjs';

/** Loopback, the everything upstream, these keys, one policy that allows every tool. */
const config = (keys) => ({ listen: '127.0.0.1:0', upstreams: [everythingUpstream()], keys,
	policies: { all: { tools: { allow: ['*/*'] } } } });
const bearer = (k) => ({ Authorization: `Bearer ${k.key}` });
const PING = { jsonrpc: '2.0', id: 1, method: 'ping' };
const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25',
	capabilities: {}, clientInfo: { name: 'auth-test', version: '1' } } };
const ECHO = (id, message) => ({ jsonrpc: '2.0', id, method: 'tools/call',
	params: { name: 'echo', arguments: { message } } });

function assert401(r, what) {
	assert.equal(r.status, 401, `${what}: HTTP ${r.status} ${r.text}`);
	assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/, `${what}: WWW-Authenticate`);
	assert.equal(r.json?.error?.code, -32001, `${what}: body ${r.text}`);
}

const authRecords = (d) => d.stdoutRecords.filter((r) => r.type === 'auth');

describe('authentication', () => {
	const { k, keys } = makeKeys({
		ok: { id: 'agent', policy: 'all' },
		other: { id: 'other-agent', policy: 'all' },
		expired: { id: 'old', policy: 'all', expires: '2020-01-01T00:00:00Z' },
		disabled: { id: 'off', policy: 'all', disabled: true },
	});
	k.unknown = makeKey();
	const d = suiteDaemon(() => config(keys), { ready: true });

	test('a valid key works as Authorization: Bearer and as X-Api-Key', async () => {
		for (const h of [bearer(k.ok), { 'X-Api-Key': k.ok.key }]) {
			const c = await connectHttp(d.url, { headers: h });
			try {
				const r = await c.client.callTool({ name: 'echo', arguments: { message: 'in' } });
				assert.equal(r.content[0].text, 'Echo: in');
			} finally {
				await c.close();
			}
		}
	});

	test('missing, unknown, expired and disabled keys all get the same 401; the record tells ' +
		'them apart and never holds the key', async () => {
		const cases = [
			['missing', {}, undefined],
			['unknown', bearer(k.unknown), undefined],
			['expired', bearer(k.expired), 'old'],
			['disabled', { 'X-Api-Key': k.disabled.key }, 'off'],
			['malformed', { Authorization: 'Bearer ' }, undefined],
		];
		const bodies = new Set();
		for (const [reason, headers, id] of cases) {
			const from = authRecords(d).length;
			for (const msg of [INIT, PING]) {
				const r = await postJson(d.url, msg, headers);
				assert401(r, reason);
				if (reason !== 'missing' && reason !== 'malformed')
					bodies.add(r.text);
			}
			await d.waitForRecord(() => authRecords(d).length >= from + 2);
			const recs = authRecords(d).slice(from);
			assert.equal(recs.length, 2, `${reason}: one auth record per refused request`);
			for (const rec of recs) {
				assert.ok(reason === 'malformed' ? ['malformed', 'missing'].includes(rec.reason)
					: rec.reason === reason, `${reason}: record ${JSON.stringify(rec)}`);
				assert.equal(rec.key, id);
				assert.equal(rec.peer, '127.0.0.1');
			}
		}
		assert.equal(bodies.size, 1, 'unknown, expired and disabled keys are indistinguishable');
		for (const line of [...d.stdoutLines, ...d.stderrLines])
			for (const key of Object.values(k))
				assert.ok(!line.includes(key.key), 'no key in any log line');
	});

	test('the SDK client cannot connect with a bad key', async () => {
		await assert.rejects(connectHttp(d.url, { headers: bearer(k.expired) }),
			(e) => e.code === 401 && /invalid key/.test(e.message));
	});

	test('every request of a session is authenticated, not just initialize', async () => {
		const s = await rawSession(d.url, bearer(k.ok));
		const noKey = { ...s.headers };
		delete noKey.Authorization;
		assert401(await postJson(d.url, ECHO(1, 'x'), noKey), 'no key on a session request');
		assert401(await postJson(d.url, ECHO(2, 'x'), { ...noKey, ...bearer(k.expired) }),
			'expired key on a session request');
		assert.equal((await s.post(ECHO(3, 'still here'))).json.result.content[0].text,
			'Echo: still here');
	});

	test('another valid key cannot use, stream from or end a session it did not open (403)',
		async () => {
			const s = await rawSession(d.url, bearer(k.ok));
			const stolen = { ...s.headers, ...bearer(k.other) };
			const from = authRecords(d).length;
			const r = await postJson(d.url, ECHO(1, 'hijack'), stolen);
			assert.equal(r.status, 403, r.text);
			assert.equal(r.json.error.code, -32001);
			const g = await rawRequest(d.url, { method: 'GET',
				headers: { ...stolen, Accept: 'text/event-stream' } });
			assert.equal(g.status, 403);
			const del = await rawRequest(d.url, { method: 'DELETE', headers: stolen });
			assert.equal(del.status, 403);
			// records arrive on the daemon's stdout, maybe after the HTTP answer: wait for them
			await d.waitForRecord(() => authRecords(d).length >= from + 3);
			const recs = authRecords(d).slice(from);
			assert.equal(recs.length, 3, JSON.stringify(recs));
			for (const rec of recs) {
				assert.equal(rec.key, 'other-agent');
				assert.equal(rec.reason, 'key does not match the session');
				assert.equal(rec.peer, '127.0.0.1');
			}
			// the owner's session is untouched
			assert.equal((await s.post(ECHO(2, 'mine'))).json.result.content[0].text, 'Echo: mine');
			// and no call was made on the stolen session
			assert.ok(!d.stdoutRecords.some((x) => x.type === 'decision' && x.key === 'other-agent'));
		});
});

describe('expiry during a session', () => {
	const k = makeKey();
	let expires;
	const d = suiteDaemon(() => {
		// a few seconds ahead, on a whole second: enough to start the daemon and call once
		expires = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000);
		return config([{ id: 'short-lived', hash: k.hash, policy: 'all',
			expires: expires.toISOString() }]);
	}, { ready: true });

	test('a key that expires mid-session is refused from that second on', async () => {
		const s = await rawSession(d.url, bearer(k));
		const r = await s.post(ECHO(1, 'before'));
		assert.ok(Date.now() < expires.getTime(), 'the machine was too slow to call before expiry');
		assert.ok(r.json.result, 'works before it expires');
		await new Promise((res) => setTimeout(res, expires.getTime() - Date.now() + 100));
		assert401(await s.post(ECHO(2, 'after')), 'expired mid-session');
		const rec = await d.waitForRecord((x) => x.type === 'auth' && x.reason === 'expired');
		assert.equal(rec.key, 'short-lived');
	});
});

describe('revocation by config reload (SIGHUP)', () => {
	const { k, keys } = makeKeys({ stays: 'all', deleted: 'all',
		disabled: { id: 'to-disable', policy: 'all' }, expires: { id: 'to-expire', policy: 'all' } });
	k.added = makeKey();
	const base = () => config(keys.map((e) => ({ ...e })));
	const d = suiteDaemon(base, { ready: true });

	test('deleted, disabled and expired keys are refused right after the reload', async () => {
		for (const key of Object.values(k).slice(0, 4)) {
			const s = await rawSession(d.url, bearer(key));
			assert.ok((await s.post(ECHO(1, 'before'))).json.result);
		}
		const cfg = base();
		cfg.keys = [cfg.keys[0], { ...cfg.keys[2], disabled: true },
			{ ...cfg.keys[3], expires: new Date(Date.now() - 1000).toISOString() }];
		const r = await d.reload(cfg);
		assert.ok(r.ok, `reload: ${r.errors?.join('\n')}`);
		await waitForTool(d.url, bearer(k.stays), 'echo');
		const recFrom = authRecords(d).length;
		for (const key of [k.deleted, k.disabled, k.expires])
			assert401(await postJson(d.url, INIT, bearer(key)), 'revoked key');
		await d.waitForRecord(() => authRecords(d).length >= recFrom + 3);
		assert.deepEqual(authRecords(d).slice(recFrom).map((x) => [x.reason, x.key]),
			[['unknown', undefined], ['disabled', 'to-disable'], ['expired', 'to-expire']]);
		const s = await rawSession(d.url, bearer(k.stays));
		assert.equal((await s.post(ECHO(1, 'after'))).json.result.content[0].text, 'Echo: after');
	});

	test('a bad config is refused with its field path and the running one keeps serving',
		async () => {
			const s = await rawSession(d.url, bearer(k.stays));
			const url = d.url;
			const cfg = base();
			cfg.keys = [cfg.keys[0], { id: 'added', hash: k.added.hash, policy: 'all' },
				{ id: 'broken', hash: 'sha256:not-hex', policy: 'all' }];
			const r = await d.reload(cfg);
			assert.equal(r.ok, false);
			assert.ok(r.errors.some((l) => /keys\[2\]\.hash/.test(l)), r.errors.join('\n'));
			// same listener, same session, same keys: the new key is not in, the revoked stay out
			assert.equal(d.url, url);
			assert.equal((await s.post(ECHO(2, 'still'))).json.result.content[0].text, 'Echo: still');
			assert401(await postJson(url, INIT, bearer(k.added)), 'key of the refused config');
			assert401(await postJson(url, INIT, bearer(k.deleted)), 'key deleted earlier');
			// a file that is not even JSON is refused too
			const r2 = await d.reload('{ "listen": ');
			assert.equal(r2.ok, false);
			assert.equal((await s.post(ECHO(3, 'and still'))).json.result.content[0].text,
				'Echo: and still');
		});
});

describe('repeated failures from one address', () => {
	const good = makeKey();
	const d = suiteDaemon(() => config([{ id: 'good', hash: good.hash, policy: 'all' }]));

	test('the 11th attempt within a minute is 429 with Retry-After, even with a valid key; ' +
		'another address is not affected', async () => {
		for (let i = 0; i < 10; i++)
			assert401(await postJson(d.url, INIT, bearer(makeKey())), `guess ${i + 1}`);
		for (const headers of [bearer(makeKey()), bearer(good), {}]) {
			const r = await postJson(d.url, INIT, headers);
			assert.equal(r.status, 429, r.text);
			const ra = Number(r.headers.get('retry-after'));
			assert.ok(ra >= 29 && ra <= 30, `Retry-After ${r.headers.get('retry-after')}`);
		}
		const rec = await d.waitForRecord((x) => x.type === 'auth' && x.reason === 'blocked');
		assert.equal(rec.peer, '127.0.0.1');
		// 127.0.0.2 is another client on loopback: it authenticates normally
		const other = await rawRequest(d.url, { body: INIT, headers: bearer(good),
			localAddress: '127.0.0.2' });
		assert.equal(other.status, 200, other.text);
		assert.ok(other.json.result.protocolVersion);
		const guess = await rawRequest(d.url, { body: INIT, headers: bearer(makeKey()),
			localAddress: '127.0.0.2' });
		assert.equal(guess.status, 401);
	});
});
