/* logpg: the shared log store on PostgreSQL (docs/fleet-logs.md) — its "logs.postgres"
 * options, the connection, the schema (a table partitioned by day, the per-sidecar chain
 * table) and retention by dropping whole days. Shared by the shipper (observe/logship.c), the
 * fleet queries (observe/logquery_pg.c) and `wardenctl audit verify --postgres`.
 *
 * Everything here blocks on the network: writer and reader threads, and wardenctl, only.
 *
 * Config: "logs": {..., "postgres": {"conninfo": "postgresql://warden@db/logs",
 * "password": "..." | {"env": "NAME"}, "password_file": "/run/secrets/pg", "sidecar": "<name>",
 * "table_prefix": "mcpwarden_", "max_age": "30d", "batch": 1000, "poll": "200ms",
 * "partitions_ahead": 2}}.
 */
#ifndef WARDEN_LOGPG_H
#define WARDEN_LOGPG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "base/config.h"

#define LOGPG_PREFIX_MAX 32             /* table prefix, [a-z_][a-z0-9_]* */
#define LOGPG_SIDECAR_MAX 128
#define LOGPG_BATCH_DEFAULT 1000
#define LOGPG_BATCH_MAX 2000            /* 21 parameters a row: under libpq's 65535 */
#define LOGPG_POLL_MS_DEFAULT 200
#define LOGPG_MAX_AGE_S_DEFAULT (30 * 86400LL)
#define LOGPG_AHEAD_DEFAULT 2
#define LOGPG_DAY_MS 86400000LL

struct logpg_options {
	bool enabled;
	char *conninfo;                 /* libpq conninfo or postgresql:// URL; owned */
	char *password;                 /* NULL: the conninfo's, PGPASSWORD or ~/.pgpass; owned */
	char *password_file;            /* read at each connect, on the connecting thread; owned */
	char *sidecar;                  /* this process's name in the shared store; owned */
	char prefix[LOGPG_PREFIX_MAX];
	int64_t max_age_s;              /* whole days older than this are dropped */
	unsigned batch;                 /* rows in one INSERT, at most */
	unsigned poll_ms;               /* the shipper looks for new local records this often */
	unsigned ahead;                 /* daily partitions created ahead of today */
};

/* Parse logs.postgres of root (absent: enabled false). No I/O: password_file is read by
 * logpg_connect. 0, or -EINVAL with errs filled (and *out cleared). */
int logpg_options_parse(const cJSON *root, struct logpg_options *out,
			struct config_errors *errs);
void logpg_options_clear(struct logpg_options *o);

/* Blocking connect with a connect timeout and a statement timeout (ms, 0: none), with o's
 * password (or password_file's first line). NULL and a message in err when it fails. */
PGconn *logpg_connect(const struct logpg_options *o, int statement_timeout_ms, char *err,
		      size_t errlen);

/* Create the tables, sequence, indexes and the chain table when missing (idempotent, under an
 * advisory lock so that sidecars starting together do not race). 0 or -EIO. */
int logpg_schema(PGconn *c, const char *prefix);
/* The partition of the day (unix day number) when missing. 0 or -EIO. */
int logpg_partition(PGconn *c, const char *prefix, int64_t day);
/* Drop the days wholly before cutoff_ms, moving each sidecar's chain anchor past them in the
 * same transaction. The number of partitions dropped, or -EIO. */
int logpg_retain(PGconn *c, const char *prefix, int64_t cutoff_ms);

/* The last error of c, one line. */
const char *logpg_error(const PGconn *c);

#endif
