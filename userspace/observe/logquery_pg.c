/* logquery_pg: the /api/logs queries over the fleet's shared store on PostgreSQL. SQL from
 * fixed fragments and the checked table prefix; every value a bound parameter. */
#include "observe/logquery_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/log.h"

struct logq_pg {
	struct logpg_options o;         /* a copy: connection settings and prefix */
	PGconn *c;                      /* the reader thread's */
	pthread_mutex_t mu;             /* cancel, read by logq_pg_cancel from the loop */
	PGcancel *cancel;
};

#define MAX_BINDS 24

struct pgsql {
	char text[3072];
	size_t n;
	int nb;
	char *v[MAX_BINDS];             /* owned */
	bool overflow;
};

static void add(struct pgsql *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct pgsql *q, const char *fmt, ...)
{
	va_list ap;
	int l;

	va_start(ap, fmt);
	l = vsnprintf(q->text + q->n, sizeof(q->text) - q->n, fmt, ap);
	va_end(ap);
	if (l < 0 || (size_t)l >= sizeof(q->text) - q->n)
		q->overflow = true;
	else
		q->n += (size_t)l;
}

/* The next placeholder's number, its value copied. */
static int bind(struct pgsql *q, const char *v)
{
	if (q->nb >= MAX_BINDS) {
		q->overflow = true;
		return 1;
	}
	q->v[q->nb++] = xstrdup(v);
	return q->nb;
}

static int bind_int(struct pgsql *q, int64_t x)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRId64, x);
	return bind(q, b);
}

static void pgsql_clear(struct pgsql *q)
{
	for (int i = 0; i < q->nb; i++)
		free(q->v[i]);
}

static void eq(void *arg, const char *col, const char *v)
{
	struct pgsql *q = arg;

	add(q, " AND %s = $%d", col, bind(q, v));
}

static void where(struct pgsql *q, const struct logq_filter *f)
{
	logq_filter_columns(f, true, eq, q);
	if (f->since_ms)
		add(q, " AND ts >= $%d::bigint", bind_int(q, f->since_ms));
	if (f->until_ms)
		add(q, " AND ts <= $%d::bigint", bind_int(q, f->until_ms));
	if (f->cursor)
		add(q, " AND id < $%d::bigint", bind_int(q, f->cursor));
	if (f->q) {
		char *pat = logq_like_pattern(f->q);
		int n = bind(q, pat);
		free(pat);
		add(q, " AND (target ILIKE $%1$d OR reason ILIKE $%1$d OR error_message ILIKE $%1$d)",
		    n);
	}
}

/* Replace the connection (NULL: close it) and the handle that cancels its query. */
static void set_conn(struct logq_pg *p, PGconn *c)
{
	PGcancel *nc = c ? PQgetCancel(c) : NULL, *old;

	pthread_mutex_lock(&p->mu);
	old = p->cancel;
	p->cancel = nc;
	pthread_mutex_unlock(&p->mu);
	PQfreeCancel(old);
	PQfinish(p->c);
	p->c = c;
}

void logq_pg_cancel(struct logq_pg *p)
{
	char err[128];

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->cancel)
		(void)PQcancel(p->cancel, err, sizeof(err));    /* best effort: else the timeout */
	pthread_mutex_unlock(&p->mu);
}

static int connect_once(struct logq_pg *p)
{
	char err[256];

	if (p->c && PQstatus(p->c) == CONNECTION_OK)
		return 0;
	set_conn(p, NULL);
	set_conn(p, logpg_connect(&p->o, LOGQ_TIME_LIMIT_MS, err, sizeof(err)));
	if (!p->c) {
		log_warn("logquery: logs.postgres: %s", err);
		return -ENOTCONN;
	}
	return 0;
}

/* Run q; its result or NULL and the error. */
static PGresult *run(struct logq_pg *p, struct pgsql *q, int *err)
{
	PGresult *r;

	*err = 0;
	if (q->overflow) {
		*err = -E2BIG;
		return NULL;
	}
	if ((*err = connect_once(p)))
		return NULL;
	r = PQexecParams(p->c, q->text, q->nb, NULL, (const char *const *)q->v, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	/* 42P01 undefined_table: no sidecar has created the schema yet; 57014: the timeout. */
	*err = state && !strcmp(state, "42P01") ? -ENOENT
	       : state && !strcmp(state, "57014") ? -ETIMEDOUT : -EIO;
	if (*err == -EIO)
		log_warn("logquery: logs.postgres: %s", logpg_error(p->c));
	PQclear(r);
	return NULL;
}

/* Columns id, sidecar, record of row i: the record's JSON with "id" and "sidecar". */
static cJSON *record_json(PGresult *r, int i)
{
	const char *text = PQgetvalue(r, i, 2);
	cJSON *o = cJSON_Parse(text);

	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "record_text", text);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "sidecar");
	cJSON_AddNumberToObject(o, "id", (double)strtoll(PQgetvalue(r, i, 0), NULL, 10));
	cJSON_AddStringToObject(o, "sidecar", PQgetvalue(r, i, 1));
	return o;
}

static int page(struct logq_pg *p, const struct logq_filter *f, cJSON **out)
{
	struct pgsql q = { 0 };
	PGresult *r;
	int rc, n;

	add(&q, "SELECT id, sidecar, record FROM %srecords WHERE true", p->o.prefix);
	where(&q, f);
	add(&q, " ORDER BY id DESC LIMIT $%d::int", bind_int(&q, f->limit + 1));
	r = run(p, &q, &rc);
	pgsql_clear(&q);
	if (!r)
		return rc;
	n = PQntuples(r);
	cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "records");
	for (int i = 0; i < n && i < f->limit; i++)
		cJSON_AddItemToArray(arr, record_json(r, i));
	if (n > f->limit)
		cJSON_AddStringToObject(o, "next_cursor", PQgetvalue(r, f->limit - 1, 0));
	else
		cJSON_AddNullToObject(o, "next_cursor");
	PQclear(r);
	*out = o;
	return 0;
}

static int get(struct logq_pg *p, int64_t id, cJSON **out)
{
	struct pgsql q = { 0 };
	PGresult *r;
	int rc;

	add(&q, "SELECT id, sidecar, record FROM %srecords WHERE id = $%d::bigint", p->o.prefix,
	    bind_int(&q, id));
	r = run(p, &q, &rc);
	pgsql_clear(&q);
	if (!r)
		return rc;
	rc = PQntuples(r) ? 0 : -ENOENT;
	if (!rc)
		*out = record_json(r, 0);
	PQclear(r);
	return rc;
}

static double num(PGresult *r, int i, int c)
{
	return PQgetisnull(r, i, c) ? 0 : strtod(PQgetvalue(r, i, c), NULL);
}

/* PostgreSQL does the grouping; percentile_disc is the nearest rank, as the SQLite one. */
static int stats(struct logq_pg *p, const struct logq_filter *f, enum logq_group by,
		 int64_t bucket_ms, cJSON **out)
{
	static const char *const cols[] = { "key", "team", "target", "server" };
	struct pgsql q = { 0 };
	PGresult *r;
	int rc, b;

	b = bind_int(&q, bucket_ms);
	add(&q, "SELECT (ts / $%1$d::bigint) * $%1$d::bigint, COALESCE(%2$s, ''), count(*),"
	    " count(*) FILTER (WHERE decision = 'deny'),"
	    " count(*) FILTER (WHERE decision IS DISTINCT FROM 'deny' AND (decision = 'error'"
	    "  OR status IN ('error', 'tool_error'))),"
	    " COALESCE(sum(cost_micros), 0),"
	    " percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_us),"
	    " percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_us)"
	    " FROM %3$srecords WHERE type = 'decision'", b, cols[by], p->o.prefix);
	where(&q, f);
	add(&q, " GROUP BY 1, 2 ORDER BY 1, 2");
	r = run(p, &q, &rc);
	pgsql_clear(&q);
	if (!r)
		return rc;
	cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "buckets");
	for (int i = 0; i < PQntuples(r); i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "t", num(r, i, 0));
		cJSON_AddStringToObject(e, "group", PQgetvalue(r, i, 1));
		cJSON_AddNumberToObject(e, "calls", num(r, i, 2));
		cJSON_AddNumberToObject(e, "denied", num(r, i, 3));
		cJSON_AddNumberToObject(e, "errors", num(r, i, 4));
		cJSON_AddNumberToObject(e, "cost_micros", num(r, i, 5));
		cJSON_AddNumberToObject(e, "p50_ms", num(r, i, 6) / 1000.0);
		cJSON_AddNumberToObject(e, "p99_ms", num(r, i, 7) / 1000.0);
		cJSON_AddItemToArray(arr, e);
	}
	PQclear(r);
	*out = o;
	return 0;
}

/* The live tail: each sidecar's chain followed by seq from the head given for it. */
static int follow(struct logq_pg *p, const char *heads, cJSON **out)
{
	struct pgsql q = { 0 };
	PGresult *r;
	cJSON *o, *arr, *next;
	int rc, hp = bind(&q, heads ? heads : "{}"), lim = bind_int(&q, LOGQ_FOLLOW_MAX);

	add(&q, "SELECT r.id, c.sidecar, r.record, r.seq, COALESCE(($%1$d::jsonb ->> c.sidecar)"
	    "::bigint, c.last_seq) FROM %2$schain c LEFT JOIN LATERAL (SELECT id, seq, record "
	    "FROM %2$srecords r WHERE r.sidecar = c.sidecar AND r.seq > COALESCE(($%1$d::jsonb "
	    "->> c.sidecar)::bigint, c.last_seq) ORDER BY r.seq LIMIT $%3$d::int) r ON true "
	    "ORDER BY r.id NULLS FIRST", hp, p->o.prefix, lim);
	r = run(p, &q, &rc);
	pgsql_clear(&q);
	if (!r)
		return rc;
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "records");
	next = cJSON_AddObjectToObject(o, "heads");
	for (int i = 0, n = PQntuples(r); i < n; i++) {
		const char *sidecar = PQgetvalue(r, i, 1);
		bool none = PQgetisnull(r, i, 0);
		double seq = strtod(PQgetvalue(r, i, none ? 4 : 3), NULL);
		cJSON *h = json_get(next, sidecar);

		if (!none)
			cJSON_AddItemToArray(arr, record_json(r, i));
		if (!h)
			cJSON_AddNumberToObject(next, sidecar, seq);
		else if (seq > h->valuedouble)
			cJSON_SetNumberValue(h, seq);
	}
	PQclear(r);
	*out = o;
	return 0;
}

int logq_pg_run(struct logq_pg *p, enum job_kind kind, const struct logq_filter *f, int64_t id,
		enum logq_group by, int64_t bucket_ms, const char *heads, cJSON **out)
{
	int rc = -EINVAL;

	*out = NULL;
	switch (kind) {
	case J_PAGE: rc = page(p, f, out); break;
	case J_GET: rc = get(p, id, out); break;
	case J_STATS: rc = stats(p, f, by, bucket_ms, out); break;
	case J_FOLLOW: rc = follow(p, heads, out); break;
	}
	/* A broken connection is made again at the next query. */
	if (rc == -EIO && p->c && PQstatus(p->c) != CONNECTION_OK) {
		set_conn(p, NULL);
		rc = -ENOTCONN;
	}
	return rc;
}

struct logq_pg *logq_pg_new(const struct logpg_options *o)
{
	struct logq_pg *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->mu, NULL);
	p->o = *o;
	p->o.conninfo = xstrdup(o->conninfo);
	p->o.password = o->password ? xstrdup(o->password) : NULL;
	p->o.password_file = o->password_file ? xstrdup(o->password_file) : NULL;
	p->o.sidecar = xstrdup(o->sidecar);
	return p;
}

void logq_pg_free(struct logq_pg *p)
{
	if (!p)
		return;
	set_conn(p, NULL);
	pthread_mutex_destroy(&p->mu);
	logpg_options_clear(&p->o);
	free(p);
}
