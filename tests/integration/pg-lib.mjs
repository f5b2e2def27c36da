// A real PostgreSQL for the fleet log store tests (docs/fleet-logs.md): initdb into a temp
// dir, postgres on a Unix socket in that dir (no TCP) on a free port number, trust auth for
// the user "warden"; as "nobody" when the tests run as root (postgres refuses root). Stopped
// and deleted by stop(). psql() runs SQL through the psql client and returns its rows.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, makeTempDir, removeTempDir } from './lib.mjs';

const PG_BIN = process.env.MCPWARDEN_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why PostgreSQL cannot run here (its binaries are missing), or false. */
export function postgresSkip() {
	if (!existsSync(join(PG_BIN, 'initdb')) || !existsSync(join(PG_BIN, 'pg_ctl')))
		return `no PostgreSQL server binaries in ${PG_BIN} (Debian: postgresql)`;
	if (spawnSync('psql', ['--version']).status !== 0)
		return 'no psql (Debian: postgresql-client)';
	return false;
}

function asPg(cmd, args, opts = {}) {
	const root = process.getuid?.() === 0;
	const [c, a] = root ? ['runuser', ['-u', 'nobody', '--', cmd, ...args]] : [cmd, args];
	return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export async function startPostgres() {
	const dir = makeTempDir('mcpwarden-pg-');
	chmodSync(dir, 0o755);
	if (process.getuid?.() === 0)
		chownSync(dir, 65534, 65534);
	const data = join(dir, 'data');
	const port = await freePort();
	asPg(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'warden', '--auth=trust', '-E', 'UTF8',
		'--no-sync']);
	const pg = {
		dir, port, data,
		conninfo: `host=${dir} port=${port} user=warden dbname=postgres`,
		start() {
			asPg(join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', '-t', '30', '-l', join(dir, 'log'), '-o',
				`-p ${port} -k ${dir} -c listen_addresses='' -c fsync=off`, 'start']);
		},
		stopServer(mode = 'fast') {
			asPg(join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', '-t', '30', '-m', mode, 'stop']);
		},
		/** Rows of one statement: arrays of strings (-A -t, fields split on \x1f). */
		psql(sql) {
			const out = execFileSync('psql', ['-X', '-q', '-A', '-t', '-F', '\x1f', '-v',
				'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'warden', '-d', 'postgres',
				'-c', sql], { encoding: 'utf8' });
			return out.split('\n').filter((l) => l !== '').map((l) => l.split('\x1f'));
		},
		stop() {
			try { pg.stopServer('immediate'); } catch { /* not running */ }
			removeTempDir(dir);
		},
	};
	pg.start();
	return pg;
}
