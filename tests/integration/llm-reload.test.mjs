// The LLM route across SIGHUP: provider API keys read from files off the loop, a new provider
// and key taken without a restart, a policy change applied to the next request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { fixtureStdioUpstream, makeKey, makeTempDir, removeTempDir, startDaemon } from './lib.mjs';
import { startProvider } from './llm-provider.mjs';

const key = makeKey();
const dir = makeTempDir('mcpwarden-llm-keys-');
let d, a, b;

const cfg = (url, models) => ({
	listen: '127.0.0.1:0', upstreams: [fixtureStdioUpstream()],
	keys: [{ id: 'r', hash: key.hash, policy: 'p' }],
	policies: { p: { llm: { providers: { allow: ['*'] }, models: { allow: models } } } },
	providers: [{ name: 'up', base_url: url, api_key_file: join(dir, 'provider.key'),
		models: { 'gpt-ok': { input: '1', output: '1' }, other: { input: '1', output: '1' } } }],
});

before(async () => {
	a = await startProvider({ key: 'sk-first' });
	b = await startProvider({ key: 'sk-second' });
	writeFileSync(join(dir, 'provider.key'), 'sk-first\n', { mode: 0o600 });
	d = await startDaemon(cfg(a.url, ['*']));
});
after(async () => {
	await d?.stop();
	await a?.close();
	await b?.close();
	removeTempDir(dir);
});

test('SIGHUP takes a new provider, its key file and a policy change', async () => {
	const c = new OpenAI({ apiKey: key.key, baseURL: `${d.url.replace(/\/mcp$/, '')}/v1`, maxRetries: 0 });
	const msg = [{ role: 'user', content: 'x' }];
	await c.chat.completions.create({ model: 'up/gpt-ok', messages: msg });
	assert.equal(a.seen.at(-1).headers.authorization, 'Bearer sk-first', 'the key from the file, trimmed');
	writeFileSync(join(dir, 'provider.key'), 'sk-second\n');
	writeFileSync(d.configPath, JSON.stringify({ state_dir: join(d.dir, 'state'),
		...cfg(b.url, ['up/gpt-*']) }));
	const from = d.stderrLines.length;
	d.proc.kill('SIGHUP');
	await d.waitForStderr(/configuration reloaded/, 15000);
	assert.ok(d.stderrLines.slice(from).some((l) => /keys, policies and limits replaced/.test(l)),
		'a governance reload: sessions and upstreams kept');
	await c.chat.completions.create({ model: 'up/gpt-ok', messages: msg });
	assert.equal(b.seen.at(-1).headers.authorization, 'Bearer sk-second');
	await assert.rejects(c.chat.completions.create({ model: 'up/other', messages: msg }),
		(e) => e.status === 403);
});
