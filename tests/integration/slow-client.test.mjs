// Slow clients: a client that trickles its request (one byte at a time, each within the
// inactivity timeout) is cut once timeouts.header_ms has passed without a whole request; an
// honest client whose call takes longer than header_ms is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectHttp, faultStdioUpstream, gatewayConfig, startDaemon } from './lib.mjs';

/** Send `text` one byte every `ms`; resolve with how long until the server closed. */
function trickle(url, text, ms) {
	const { hostname, port } = new URL(url);
	return new Promise((resolve) => {
		const started = Date.now();
		const sock = net.connect(Number(port), hostname);
		let i = 0, closed = false;
		const tick = setInterval(() => {
			if (closed || i >= text.length)
				return;
			sock.write(text[i++]);
		}, ms);
		const done = () => {
			if (closed)
				return;
			closed = true;
			clearInterval(tick);
			sock.destroy();
			resolve({ afterMs: Date.now() - started, sent: i });
		};
		sock.on('close', done);
		sock.on('error', done);
		sock.on('end', done);
	});
}

test('a trickling client is cut after header_ms; a long call is not', { timeout: 60000 }, async (t) => {
	const d = await startDaemon(gatewayConfig([faultStdioUpstream('fault')],
		{ timeouts: { header_ms: 1500 } }));
	t.after(() => d.stop(3000));
	await d.waitForStderr(/upstream fault: ready/, 20000);

	// 300 ms between bytes never trips the per-read timeout; only the request deadline can.
	const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
		`Accept: application/json, text/event-stream\r\nX-Padding: ${'x'.repeat(200)}\r\n\r\n`;
	const slow = trickle(d.url, head, 300);

	// Meanwhile an honest client's call runs longer than header_ms on one open request and is
	// answered: the deadline covers receiving a request, not serving it.
	const c = await connectHttp(d.url, { capabilities: { sampling: {} } });
	c.client.setRequestHandler(CreateMessageRequestSchema, async () =>
		({ role: 'assistant', content: { type: 'text', text: 'still here' }, model: 'test' }));
	const started = Date.now();
	const r = await c.client.callTool({ name: 'sample-later', arguments: { prompt: 'p', delay_ms: 2500 } });
	assert.ok(Date.now() - started >= 2500, 'the call really outlasted header_ms');
	assert.match(r.content[0].text, /sampled: still here/);

	const cut = await slow;
	assert.ok(cut.sent < head.length, `cut before the request was complete (sent ${cut.sent} of ${head.length})`);
	assert.ok(cut.afterMs >= 1400 && cut.afterMs < 4000, `cut after ${cut.afterMs} ms`);
	assert.ok(d.stderrLines.some((l) => /cut a client that did not send its request within 1500 ms/.test(l)));
	await c.close();
	for (const line of d.stderrLines)
		assert.doesNotMatch(line, /AddressSanitizer|ThreadSanitizer|runtime error:/);
});
