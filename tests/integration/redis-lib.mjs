// Real redis-server processes for the fleet counters' tests (docs/counters.md): standalone,
// replica and sentinel, each on a free port with its files in a temp dir the test removes.
// CI installs redis-server (scripts/deps.sh); a test skips with the printed reason only when
// the binary is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess } from './lib.mjs';

export const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
export const CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p));
export const redisSkip = REDIS && CLI ? false : 'redis-server is not installed (scripts/deps.sh installs it)';

/** redis-server on port with an append-only file in dir; extra: more arguments. */
export function startRedis(dir, port, extra = []) {
	return startProcess(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
		'--save', '', '--appendonly', 'yes', '--appendfsync', 'always', ...extra],
	{ ready: /Ready to accept connections/, readyOn: 'stdout', name: `redis:${port}` });
}

/** A sentinel on port watching master `name` at 127.0.0.1:masterPort (quorum 1); its config in dir. */
export function startSentinel(dir, port, name, masterPort, { downAfterMs = 1000 } = {}) {
	const conf = join(dir, `sentinel-${port}.conf`);
	writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n`
		+ `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1\n`
		+ `sentinel down-after-milliseconds ${name} ${downAfterMs}\n`
		+ `sentinel failover-timeout ${name} 10000\n`);
	return startProcess(REDIS, [conf, '--sentinel'],
		{ ready: /Sentinel ID is|monitor master/, readyOn: 'stdout', name: `sentinel:${port}` });
}

/** redis-cli against port; the answer, trimmed. */
export const cli = (port, ...args) => execFileSync(CLI, ['-p', String(port), '--raw', ...args],
	{ encoding: 'utf8' }).trim();
