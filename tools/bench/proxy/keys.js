// keys.js N: N key entries (hashes of random keys, no key itself) as a JSON fragment that
// follows the first entry of mcpwarden.json.in's "keys" array: ",\n {...},\n {...}".
// For the memory-at-scale part of proxy_bench.sh (a 100k-key config).
'use strict';
const crypto = require('crypto');
const n = Number(process.argv[2]);
if (!Number.isInteger(n) || n < 0) {
	process.stderr.write('usage: node keys.js N\n');
	process.exit(2);
}
const out = [];
for (let i = 0; i < n; i++) {
	const hash = crypto.createHash('sha256').update(crypto.randomBytes(32)).digest('hex');
	out.push(`,\n    { "id": "k${i}", "policy": "bench", "hash": "sha256:${hash}" }`);
}
process.stdout.write(out.join('') + '\n');
