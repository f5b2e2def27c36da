/* admin_usage: /v1/usage (spend and budgets, fleet of one) and /metrics. */
#include "admin/admin_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/json_get.h"
#include "base/jsonfmt.h"
#include "base/listener.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"

/* --- usage ------------------------------------------------------------------------------- */

/* Redis counters: the fleet's spent and reserved replace this sidecar's, budget by budget, and
 * the answer leaves once every counter has answered (docs/counters.md). */
struct fleet_read {
	struct pending *p;
	size_t waiting;
	int err;
};

struct fleet_slot {
	struct fleet_read *fr;
	cJSON *o;                       /* the budget's object in fr->p->ok */
	int64_t limit;
};

static void fleet_read_done(struct fleet_read *fr)
{
	if (!fr->p) {           /* could not wait (out of memory): answered already */
		free(fr);
		return;
	}
	if (fr->err) {
		cJSON_Delete(fr->p->ok);
		fr->p->ok = cJSON_CreateObject();
		cJSON_AddStringToObject(fr->p->ok, "error", "the fleet's counters could not be read "
					"from Redis");
		fr->p->status = 503;
	}
	admin_on_stored(fr->p, 0);
	free(fr);
}

static void on_fleet_usage(void *arg, int err, int64_t spent, int64_t reserved)
{
	struct fleet_slot *sl = arg;
	struct fleet_read *fr = sl->fr;

	if (err) {
		fr->err = err;
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(sl->o, "spent");
		cJSON_DeleteItemFromObjectCaseSensitive(sl->o, "reserved");
		cJSON_DeleteItemFromObjectCaseSensitive(sl->o, "remaining");
		admin_money_json(sl->o, "spent", spent);
		admin_money_json(sl->o, "reserved", reserved);
		admin_money_json(sl->o, "remaining", sl->limit > spent + reserved
				 ? sl->limit - spent - reserved : 0);
	}
	free(sl);
	if (--fr->waiting == 0)
		fleet_read_done(fr);
}

/* Ask Redis for the counter behind every budget object of arr (scope's budgets). */
static void fleet_ask(struct fleet *f, struct fleet_read *fr, cJSON *arr, const char *scope,
		      const struct budget_usage *u, size_t n, int64_t now)
{
	for (size_t i = 0; i < n && !fr->err; i++) {
		struct budget_spec sp = { .limit = u[i].limit };
		struct fleet_slot *sl;
		if (budget_period_kind(u[i].period, &sp.period, &sp.window)) {
			fr->err = -EINVAL;
			break;
		}
		sl = xcalloc(1, sizeof(*sl));
		sl->fr = fr;
		sl->o = cJSON_GetArrayItem(arr, (int)i);
		sl->limit = u[i].limit;
		fr->waiting++;
		int rc = fleet_usage(f, scope, &sp, now, on_fleet_usage, sl);
		if (rc) {
			fr->waiting--;
			free(sl);
			fr->err = rc;
		}
	}
}

static cJSON *budgets_json_fleet(struct budget *b, const char *scope, const char *policy,
				 int64_t now, struct fleet *f, struct fleet_read *fr);

static cJSON *budgets_json(struct budget *b, const char *scope, const char *policy, int64_t now)
{
	return budgets_json_fleet(b, scope, policy, now, NULL, NULL);
}

static cJSON *budgets_json_fleet(struct budget *b, const char *scope, const char *policy,
				 int64_t now, struct fleet *f, struct fleet_read *fr)
{
	struct budget_usage u[BUDGET_MAX_PER_SCOPE];
	size_t n = b ? budget_usage(b, scope, policy, now, u) : 0;
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", u[i].name);
		cJSON_AddStringToObject(o, "period", u[i].period);
		admin_money_json(o, "limit", u[i].limit);
		admin_money_json(o, "spent", u[i].spent);
		admin_money_json(o, "reserved", u[i].reserved);
		admin_money_json(o, "remaining", u[i].limit > u[i].spent + u[i].reserved
				  ? u[i].limit - u[i].spent - u[i].reserved : 0);
		admin_time_json(o, "period_start", u[i].period_start);
		admin_time_json(o, "resets_at", u[i].resets_at);
		cJSON_AddItemToArray(arr, o);
	}
	if (f && n)
		fleet_ask(f, fr, arr, scope, u, n, now);
	return arr;
}

/* What every entry of a usage answer is read with. */
struct usage {
	struct budget *b;
	int64_t now;
	struct fleet *f;
	struct fleet_read *fr;
};

/* A key's or team's budgets under its selector scope, "key:<id>" or "team:<name>". */
static cJSON *usage_json(const struct usage *u, const char *kind, const char *name,
			 const char *policy)
{
	char scope[KEYS_ID_SIZE + 8];

	snprintf(scope, sizeof(scope), "%s:%s", kind, name);
	return budgets_json_fleet(u->b, scope, policy, u->now, u->f, u->fr);
}

static cJSON *key_usage(const void *entry, void *u)
{
	const struct key_record *k = entry;
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "id", k->id);
	jsonfmt_add_or_null(e, "team", k->team);
	cJSON_AddItemToObject(e, "budgets", usage_json(u, "key", k->id, k->policy));
	return e;
}

static cJSON *team_usage(const void *entry, void *u)
{
	const struct team_ent *t = entry;
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "name", t->name);
	cJSON_AddItemToObject(e, "budgets", usage_json(u, "team", t->name, NULL));
	return e;
}

void admin_usage_get(struct ctx *c, const char *unused)
{
	const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	const char *only_key, *only_team;
	struct evkeyvalq q;
	struct admin_list kl = { 0 }, tl = { 0 };
	cJSON *o, *keys, *teams;
	struct fleet *f = gate_fleet(c->g);
	struct usage u = { gate_budget(c->g), clock_real_s(), f, f ? xcalloc(1, sizeof(*u.fr)) : NULL };
	struct fleet_read *fr = u.fr;

	if (evhttp_parse_query_str(qs ? qs : "", &q) < 0) {
		admin_fail(c, 400, NULL, "malformed query string");
		free(fr);
		return;
	}
	only_key = evhttp_find_header(&q, "key");
	only_team = evhttp_find_header(&q, "team");
	admin_sorted_keys(c->ks, &kl);
	admin_sorted_teams(c->ks, &tl);
	o = cJSON_CreateObject();
	admin_time_json(o, "now", u.now);
	keys = cJSON_AddArrayToObject(o, "keys");
	teams = cJSON_AddArrayToObject(o, "teams");
	if (!only_team)
		admin_list_json(keys, &kl, only_key, key_usage, &u);
	if (!only_key)
		admin_list_json(teams, &tl, only_team, team_usage, &u);
	if (f)
		cJSON_AddStringToObject(o, "counters", "redis");
	if ((only_key && !cJSON_GetArraySize(keys)) || (only_team && !cJSON_GetArraySize(teams))) {
		admin_fail(c, 404, only_key ? "key" : "team", "no %s named \"%s\"",
		     only_key ? "key" : "team", only_key ? only_key : only_team);
	} else if (fr && (fr->waiting || fr->err)) {
		/* the answer leaves from the last counter's reply (or now, on an error) */
		fr->p = admin_pending_new(c, P_READ, 200, o, NULL);    /* takes o */
		o = NULL;
		if (fr->p)
			admin_pending_start(c, fr->p, 0);
		if (!fr->waiting)
			fleet_read_done(fr);
		fr = NULL;      /* the replies' now */
	} else {
		admin_send_json(c->req, 200, o);
	}
	free(fr);
	cJSON_Delete(o);
	evhttp_clear_headers(&q);
	free(kl.v);
	free(tl.v);
}

void admin_usage_reset(struct ctx *c, const char *unused)
{
	static const char *const fields[] = { "key", "team", NULL };
	cJSON *body = admin_body_object(c);
	const cJSON *key, *team;
	struct key_record k;
	char scope[KEYS_ID_SIZE + 8];
	const char *policy = NULL;
	int64_t now = clock_real_s();

	if (!body || !admin_known_fields(c, body, fields))
		goto out;
	if (gate_fleet(c->g)) {
		/* Zeroing this sidecar's view would not touch the fleet's counters. */
		admin_fail(c, 409, NULL, "usage reset is not supported with Redis counters: delete "
			   "the scope's keys in Redis (docs/counters.md)");
		goto out;
	}
	key = json_get(body, "key");
	team = json_get(body, "team");
	if (!!key == !!team || (key && !cJSON_IsString(key)) || (team && !cJSON_IsString(team))) {
		admin_fail(c, 400, key ? "key" : "team", "give exactly one of \"key\" (a key id) "
		     "or \"team\" (a team name)");
		goto out;
	}
	if (key) {
		if (keys_get(c->ks, key->valuestring, &k)) {
			admin_fail(c, 404, "key", "no key with id \"%s\"", key->valuestring);
			goto out;
		}
		OPENSSL_cleanse(k.hash, sizeof(k.hash));
		policy = k.policy;
		snprintf(scope, sizeof(scope), "key:%s", key->valuestring);
	} else {
		if (!keys_team_policy(c->ks, team->valuestring)) {
			admin_fail(c, 404, "team", "no team named \"%s\"", team->valuestring);
			goto out;
		}
		snprintf(scope, sizeof(scope), "team:%s", team->valuestring);
	}
	struct budget *b = gate_budget(c->g);
	cJSON *audit = admin_record_new(c, "usage.reset");
	cJSON_AddStringToObject(audit, "scope", scope);
	/* What was forgotten stays on the record. */
	cJSON_AddItemToObject(audit, "before", budgets_json(b, scope, policy, now));
	struct pending *p = admin_pending_new(c, P_RESET, 200, NULL, audit);
	if (!p)
		goto out;
	int rc = b ? budget_reset(b, scope, now, admin_on_stored, p) : 1;
	p->ok = cJSON_CreateObject();
	cJSON_AddStringToObject(p->ok, "reset", scope);
	cJSON_AddItemToObject(p->ok, "budgets", budgets_json(b, scope, policy, now));
	admin_pending_start(c, p, rc);
out:
	cJSON_Delete(body);
}

/* --- metrics ------------------------------------------------------------------------------ */

void admin_metrics_get(struct ctx *c, const char *unused)
{
	struct evbuffer *buf = evbuffer_new();

	if (!buf || metrics_render(buf, gate_store(c->g), c->ks) ||
	    (gate_fleet(c->g) && fleet_metrics(gate_fleet(c->g), buf))) {
		admin_fail(c, 500, NULL, "out of memory");
	} else {
		http_set_header(c->req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		http_set_header(c->req, "Cache-Control", "no-store");
		evhttp_send_reply(c->req, 200, "OK", buf);
	}
	if (buf)
		evbuffer_free(buf);
}
