// sessions.js URL KEY N: open N MCP sessions on mcpwarden and leave them open (the daemon keeps
// them until they idle out): initialize, notifications/initialized and one tools/call each, so
// every session also has its upstream session. Prints "opened N sessions in S s" or exits 1
// with the first failure. For the memory-at-scale part of proxy_bench.sh.
'use strict';
const http = require('http');
const [url, key, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
if (!url || !key || !Number.isInteger(count) || count < 1) {
	process.stderr.write('usage: node sessions.js URL KEY N\n');
	process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const target = new URL(url);

function post(body, session) {
	const headers = {
		'Content-Type': 'application/json',
		'Accept': 'application/json, text/event-stream',
		'Authorization': `Bearer ${key}`,
	};
	if (session) {
		headers['Mcp-Session-Id'] = session;
		headers['MCP-Protocol-Version'] = '2025-06-18';
	}
	return new Promise((resolve, reject) => {
		const req = http.request({ host: target.hostname, port: target.port, path: target.pathname,
					   method: 'POST', agent, headers }, (res) => {
			let data = '';
			res.setEncoding('utf8');
			res.on('data', (c) => { data += c; });
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, data }));
		});
		req.on('error', reject);
		req.end(JSON.stringify(body));
	});
}

async function one(i) {
	const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
		protocolVersion: '2025-06-18', capabilities: {},
		clientInfo: { name: 'bench-sessions', version: '1' } } });
	const sid = init.headers['mcp-session-id'];
	if (init.status !== 200 || !sid)
		throw new Error(`initialize ${i}: HTTP ${init.status}: ${init.data.slice(0, 200)}`);
	const note = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid);
	if (note.status !== 202)
		throw new Error(`notifications/initialized ${i}: HTTP ${note.status}`);
	const call = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call',
				  params: { name: 'echo', arguments: { text: `session ${i}` } } }, sid);
	if (call.status !== 200 || !call.data.includes('"result"'))
		throw new Error(`tools/call ${i}: HTTP ${call.status}: ${call.data.slice(0, 200)}`);
}

async function main() {
	const start = process.hrtime.bigint();
	let next = 0;
	const worker = async () => { while (next < count) await one(next++); };
	await Promise.all(Array.from({ length: 32 }, worker));
	agent.destroy();
	const secs = Number(process.hrtime.bigint() - start) / 1e9;
	process.stdout.write(`opened ${count} sessions in ${secs.toFixed(1)} s\n`);
}
main().catch((e) => { process.stderr.write(`sessions.js: ${e.message}\n`); process.exit(1); });
