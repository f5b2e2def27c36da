/* fleet_pending: charges kept for Redis across restarts (the store's fleet_pending rows) and
 * the ids that make a replayed commit count once. fleet.c owns the connection and the queue. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "base/alloc.h"
#include "base/log.h"
#include "govern/fleet_int.h"

char *fleet_pending_encode(const struct settle *s)
{
	cJSON *a = cJSON_CreateArray();
	char *out = NULL;

	if (!a)
		return NULL;
	for (int i = 2; i < s->argc; i++) {
		cJSON *v = cJSON_CreateString(s->argv[i]);
		if (!v || !cJSON_AddItemToArray(a, v)) {
			cJSON_Delete(v);
			goto out;
		}
	}
	out = cJSON_PrintUnformatted(a);
out:
	cJSON_Delete(a);
	return out;
}

/* s is a whole decimal integer in [lo, hi]. */
static bool int_in(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	if (out)
		*out = v;
	return true;
}

int fleet_pending_decode(const char *text, struct argv_b *out)
{
	cJSON *a = cJSON_Parse(text), *v;
	const char *s[FLEET_PENDING_ARGS];
	int n = 0, rc = -EINVAL;
	int64_t nkeys, nb, amount;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsArray(a))
		goto out;
	cJSON_ArrayForEach(v, a) {
		if (n == FLEET_PENDING_ARGS || !cJSON_IsString(v) || strlen(v->valuestring) >= KEY_MAX)
			goto out;
		s[n++] = v->valuestring;
	}
	/* numkeys, keys, id, amount, nb, nb × (kind, start, ttl) [, the id's lifetime] */
	if (n < 1 || !int_in(s[0], 1, FLEET_MAX_BUDGETS + 1, &nkeys) || n < 4 + nkeys ||
	    !s[1 + nkeys][0] || !int_in(s[2 + nkeys], 0, INT64_MAX, &amount) ||
	    !int_in(s[3 + nkeys], 1, FLEET_MAX_BUDGETS, &nb) || nb != nkeys - (amount != 0) ||
	    n != 4 + nkeys + 3 * nb + (amount != 0))
		goto out;
	for (int i = 4 + (int)nkeys; i < n; i++)
		if (!int_in(s[i], 0, INT64_MAX, NULL))
			goto out;
	fleet_av_add(out, "EVALSHA");
	fleet_av_add(out, "");          /* the digest: the connection's, when sent */
	for (int i = 0; i < n; i++)
		fleet_av_add(out, s[i]);
	rc = 0;
out:
	cJSON_Delete(a);
	return rc;
}

struct loading {
	struct fleet *f;
	size_t n, bad;
};

static int load_one(void *arg, const char *id, const char *command)
{
	struct loading *l = arg;
	struct argv_b a;
	struct settle *s;

	if (!id || !command || fleet_pending_decode(command, &a)) {
		/* The durable record: never dropped, not sent either. */
		log_error("counters: kept charge %s in the store is not a charge this version can "
			  "replay; it stays in the fleet_pending table", id ? id : "(null)");
		l->bad++;
		return 0;
	}
	s = xcalloc(1, sizeof(*s));
	s->argc = a.n;
	s->argv = a.v;
	s->argvlen = a.len;
	s->id = xstrdup(id);
	s->durable = true;
	fleet_queue_add(l->f, s);
	l->f->nstored++;
	l->n++;
	return 0;
}

int fleet_pending_load(struct fleet *f)
{
	struct loading l = { f, 0, 0 };
	int rc;

	if (!f->st)
		return 0;
	rc = store_load_pending(f->st, load_one, &l);
	if (rc)
		log_error("counters: cannot load the kept charges: %s", strerror(-rc));
	else if (l.n)
		log_info("counters: %zu charge%s kept while Redis was away, to replay in order", l.n,
			 l.n == 1 ? "" : "s");
	return rc;
}

int fleet_charge_marker(const char *counter_key, const char *id, char *buf, size_t len)
{
	const char *close = strchr(counter_key, '}');
	int n;

	if (!close || !strchr(counter_key, '{'))
		return -EINVAL;
	n = snprintf(buf, len, "%.*s:c:%s", (int)(close - counter_key + 1), counter_key, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fleet_settle_answer(const struct redisReply *rep)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || !rep->element[0] ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER)
		return -EIO;
	switch (rep->element[0]->integer) {
	case 0:
		return 0;
	case 1:
		return 1;
	default:
		return -EIO;
	}
}
