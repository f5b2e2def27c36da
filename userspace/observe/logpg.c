/* logpg: options, connection, schema and retention of the shared log store on PostgreSQL. */
#include "observe/logpg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/log.h"

#define PASSWORD_FILE_MAX 4096

/* ---- options ---- */

static bool valid_prefix(const char *s)
{
	if (!*s || strlen(s) >= LOGPG_PREFIX_MAX || !(islower((unsigned char)*s) || *s == '_'))
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

/* The first line of a secret file, without its newline. */
static int read_password_file(const char *path, char **out)
{
	char buf[PASSWORD_FILE_MAX];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* The pod's or the host's name: what tells one sidecar from another in a fleet. */
static char *default_sidecar(void)
{
	static const char *const envs[] = { "MCPWARDEN_SIDECAR", "POD_NAME", "HOSTNAME" };
	char host[256];

	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		const char *v = getenv(envs[i]);
		if (v && *v && strlen(v) < LOGPG_SIDECAR_MAX)
			return xstrdup(v);
	}
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (host[0] && strlen(host) < LOGPG_SIDECAR_MAX)
			return xstrdup(host);
	}
	return xstrdup("mcpwarden");
}

/* The section's fields: the plain ones read, and the strings freed, through this table. */
static const struct cfg_field logpg_fields[] = {
	CFG_FIELD(struct logpg_options, enabled, CFG_BOOL, 0, 0, 0),
	CFG_FIELD(struct logpg_options, conninfo, CFG_COPY, 0, 0, CFG_REQUIRED),
	CFG_FIELD(struct logpg_options, password, CFG_SECRET, 0, 0, 0),
	CFG_FIELD(struct logpg_options, password_file, CFG_COPY, 0, 0, CFG_NONEMPTY),
	CFG_FIELD(struct logpg_options, sidecar, CFG_COPY, 0, LOGPG_SIDECAR_MAX - 1, CFG_NONEMPTY),
	CFG_FIELD(struct logpg_options, batch, CFG_UINT, 1, LOGPG_BATCH_MAX, 0),
	CFG_FIELD_AS("partitions_ahead", struct logpg_options, ahead, CFG_UINT, 1, 31, 0),
	CFG_KNOWN_FIELD("table_prefix"),        /* into prefix[], checked */
	CFG_KNOWN_FIELD("max_age_days"),        /* kept in seconds */
	CFG_KNOWN_FIELD("poll"),                /* kept as unsigned milliseconds */
	CFG_END
};

int logpg_options_parse(const cJSON *root, struct logpg_options *out,
			struct config_errors *errs)
{
	const cJSON *logs = root ? json_get(root, "logs") : NULL;
	const cJSON *sec = cJSON_IsObject(logs) ? json_get(logs, "postgres")
						 : NULL;
	const char *prefix = "mcpwarden_";
	long long days = LOGPG_MAX_AGE_S_DEFAULT / 86400;
	int64_t poll = LOGPG_POLL_MS_DEFAULT;
	int rc = 0, r;

	memset(out, 0, sizeof(*out));
	if (!sec)
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, "logs.postgres", "expected {\"conninfo\": "
				   "\"postgresql://user@host/db\", \"sidecar\": ..., ...}");
	out->enabled = true;
	out->batch = LOGPG_BATCH_DEFAULT;
	out->ahead = LOGPG_AHEAD_DEFAULT;
	/* Each checked on its own: every wrong field is reported at once. */
	if (cfg_fields(sec, "logs.postgres", logpg_fields, out, errs))
		rc = -EINVAL;
	if (out->password && out->password_file)
		rc = config_fail(errs, "logs.postgres.password_file", "give password or "
				 "password_file, not both");
	r = cfg_string(sec, "table_prefix", "logs.postgres", false, &prefix, errs);
	if (r == -EINVAL)
		rc = r;
	else if (!valid_prefix(prefix))
		rc = config_fail(errs, "logs.postgres.table_prefix", "must be lower-case letters, "
				 "digits and _ (not first a digit), at most %d", LOGPG_PREFIX_MAX - 1);
	if (cfg_int(sec, "max_age_days", "logs.postgres", false, 1, 36500, &days, errs) == -EINVAL)
		rc = -EINVAL;
	if (cfg_duration_ms(sec, "poll", "logs.postgres", false, 10, 60000, &poll, errs) ==
	    -EINVAL)
		rc = -EINVAL;
	if (rc) {
		logpg_options_clear(out);
		return rc;
	}
	if (!out->sidecar)
		out->sidecar = default_sidecar();
	snprintf(out->prefix, sizeof(out->prefix), "%s", prefix);
	out->max_age_s = days * 86400;
	out->poll_ms = (unsigned)poll;
	return 0;
}

void logpg_options_clear(struct logpg_options *o)
{
	cfg_fields_free(logpg_fields, o);
	memset(o, 0, sizeof(*o));
}

/* ---- connection ---- */

const char *logpg_error(const PGconn *c)
{
	static _Thread_local char line[256];
	const char *m = c ? PQerrorMessage(c) : "out of memory";

	snprintf(line, sizeof(line), "%s", m);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

PGconn *logpg_connect(const struct logpg_options *o, int statement_timeout_ms, char *err,
		      size_t errlen)
{
	char opts[64], *filed = NULL;
	const char *conninfo = o->conninfo, *password = o->password;
	int rc;

	if (o->password_file) {
		if ((rc = read_password_file(o->password_file, &filed))) {
			snprintf(err, errlen, "cannot read password_file %s: %s", o->password_file,
				 strerror(-rc));
			return NULL;
		}
		password = filed;
	}
	/* Ours first: the conninfo's own settings (expanded from dbname) override them; the
	 * configured password last, as it was given apart on purpose. */
	const char *keys[] = { "connect_timeout", "application_name", "options", "dbname",
			       password ? "password" : NULL, NULL };
	const char *vals[] = { "5", "mcpwarden", opts, conninfo, password, NULL };
	PGconn *c;

	/* Warnings and up: not the NOTICEs of CREATE ... IF NOT EXISTS on stderr. */
	snprintf(opts, sizeof(opts), "-c statement_timeout=%d -c client_min_messages=warning",
		 statement_timeout_ms);
	c = PQconnectdbParams(keys, vals, 1);
	free_secret(filed);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", logpg_error(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* ---- schema ---- */

/* Run a statement without parameters; 0 or -EIO (logged). */
static int exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
		 ? 0 : -EIO;

	if (rc)
		log_warn("logs.postgres: %s", logpg_error(c));
	PQclear(r);
	return rc;
}

/* BEGIN and the advisory lock of the prefix: DDL of sidecars starting together in turn. */
static int begin_locked(PGconn *c, const char *prefix)
{
	const char *v[] = { prefix };
	PGresult *r;
	int rc;

	if ((rc = exec(c, "BEGIN")))
		return rc;
	r = PQexecParams(c, "SELECT pg_advisory_xact_lock(hashtext('mcpwarden:' || $1))", 1, NULL,
			 v, NULL, NULL, 0);
	rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
	PQclear(r);
	if (rc)
		exec(c, "ROLLBACK");
	return rc;
}

static int finish(PGconn *c, int rc)
{
	if (rc)
		exec(c, "ROLLBACK");
	else
		rc = exec(c, "COMMIT");
	return rc;
}

int logpg_schema(PGconn *c, const char *prefix)
{
	char sql[4096];
	int rc;

	/* The columns of the SQLite store (docs/audit.md) plus sidecar and seq (its id there);
	 * id is the fleet-wide cursor. The unique key includes ts: a partitioned table's unique
	 * keys must hold its partition key, and a record's ts never changes. */
	snprintf(sql, sizeof(sql),
		 "CREATE SEQUENCE IF NOT EXISTS %1$srecords_id;"
		 "CREATE TABLE IF NOT EXISTS %1$srecords ("
		 "  id bigint NOT NULL DEFAULT nextval('%1$srecords_id'),"
		 "  sidecar text NOT NULL, seq bigint NOT NULL, ts bigint NOT NULL,"
		 "  type text NOT NULL, key text, team text, session text, method text,"
		 "  server text, target text, decision text, reason text, status text,"
		 "  error_message text, trace_id text, error_code bigint, latency_us bigint,"
		 "  upstream_us bigint, cost_micros bigint, result_bytes bigint,"
		 "  record text NOT NULL, hash bytea NOT NULL,"
		 "  UNIQUE (sidecar, seq, ts)) PARTITION BY RANGE (ts);"
		 "CREATE INDEX IF NOT EXISTS %1$srecords_by_id ON %1$srecords (id);"
		 "CREATE INDEX IF NOT EXISTS %1$srecords_by_ts ON %1$srecords (ts);"
		 "CREATE INDEX IF NOT EXISTS %1$srecords_by_key ON %1$srecords (key, id);"
		 "CREATE INDEX IF NOT EXISTS %1$srecords_by_target ON %1$srecords (target, id);"
		 "CREATE INDEX IF NOT EXISTS %1$srecords_by_sidecar ON %1$srecords (sidecar, id);"
		 /* Per sidecar: the anchor (hash before first_seq) and the head (last_seq). */
		 "CREATE TABLE IF NOT EXISTS %1$schain ("
		 "  sidecar text PRIMARY KEY, first_seq bigint NOT NULL, prev_hash bytea NOT NULL,"
		 "  last_seq bigint NOT NULL, head bytea NOT NULL);", prefix);
	if ((rc = begin_locked(c, prefix)))
		return rc;
	return finish(c, exec(c, sql));
}

int logpg_partition(PGconn *c, const char *prefix, int64_t day)
{
	char sql[512], name[16];
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	int rc;

	gmtime_r(&t, &tm);
	strftime(name, sizeof(name), "%Y%m%d", &tm);
	/* DDL takes no parameters: every part of it is ours (a checked prefix, numbers). */
	snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS %1$srecords_p%2$s PARTITION OF "
		 "%1$srecords FOR VALUES FROM (%3$" PRId64 ") TO (%4$" PRId64 ")", prefix, name,
		 (int64_t)(day * LOGPG_DAY_MS), (int64_t)((day + 1) * LOGPG_DAY_MS));
	if ((rc = begin_locked(c, prefix)))
		return rc;
	return finish(c, exec(c, sql));
}

int logpg_retain(PGconn *c, const char *prefix, int64_t cutoff_ms)
{
	char parent[LOGPG_PREFIX_MAX + 16], sql[1024];
	const char *v[] = { parent };
	PGresult *r;
	int rc, dropped = 0;

	snprintf(parent, sizeof(parent), "%srecords", prefix);
	if ((rc = begin_locked(c, prefix)))
		return rc;
	/* The days: partitions whose upper bound is at or before the cutoff. */
	r = PQexecParams(c, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = "
			 "i.inhrelid WHERE i.inhparent = to_regclass($1) ORDER BY 1", 1, NULL, v,
			 NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_warn("logs.postgres: %s", logpg_error(c));
		PQclear(r);
		return finish(c, -EIO);
	}
	for (int i = 0; i < PQntuples(r) && !rc; i++) {
		const char *rel = PQgetvalue(r, i, 0);
		size_t pl = strlen(parent);
		struct tm tm = { 0 };
		int n = 0;

		if (strncmp(rel, parent, pl) || strncmp(rel + pl, "_p", 2) ||
		    sscanf(rel + pl + 2, "%4d%2d%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 ||
		    rel[pl + 2 + (size_t)n])
			continue;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		if (((int64_t)timegm(&tm) + 86400) * 1000 > cutoff_ms)
			continue;
		/* Each sidecar's anchor moves past its last record of the day, then the day
		 * goes. A record of a later seq in an earlier day (a clock stepped back) is
		 * dropped with that day and then shows to the verifier as removed. */
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %1$schain AS c (sidecar, first_seq, prev_hash, last_seq, head)"
			 " SELECT DISTINCT ON (sidecar) sidecar, seq + 1, hash, seq, hash FROM %2$s"
			 " ORDER BY sidecar, seq DESC ON CONFLICT (sidecar) DO UPDATE SET"
			 " first_seq = EXCLUDED.first_seq, prev_hash = EXCLUDED.prev_hash"
			 " WHERE c.first_seq < EXCLUDED.first_seq;"
			 "DROP TABLE %2$s;", prefix, rel);
		rc = exec(c, sql);
		dropped++;
	}
	PQclear(r);
	rc = finish(c, rc);
	return rc ? rc : dropped;
}
