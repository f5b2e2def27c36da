/* admin_keys: /v1/keys and /v1/teams. */
#include "admin/admin_int.h"

#include <errno.h>
#include <stddef.h>
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
#include "base/listener.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"

/* --- keys -------------------------------------------------------------------------------- */

static bool team_exists(struct ctx *c, const char *name)
{
	return keys_team_policy(c->ks, name) != NULL;
}

static bool policy_exists(struct ctx *c, const char *name)
{
	return gate_policy_exists(c->g, name);
}

/* The team or policy o names under `field` into dst, answering 400 on a bad one: null or ""
 * for none; absent, dst unchanged. `shape` says what the name must look like. */
static bool ref_field(struct ctx *c, const cJSON *o, const char *field, const char *shape,
		      bool (*exists)(struct ctx *c, const char *name), char *dst, size_t size)
{
	const cJSON *v = json_get(o, field);

	if (!v)
		return true;
	if (cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0])) {
		dst[0] = '\0';
	} else if (!cJSON_IsString(v) || !keys_valid_ident(v->valuestring)) {
		admin_fail(c, 400, field, "must be %s or null", shape);
		return false;
	} else if (!exists(c, v->valuestring)) {
		admin_fail(c, 400, field, "no %s named \"%s\"", field, v->valuestring);
		return false;
	} else {
		snprintf(dst, size, "%s", v->valuestring);
	}
	return true;
}

/* Read name/team/policy/expires/disabled from o into k, answering 400 on a bad field. */
static bool key_fields(struct ctx *c, const cJSON *o, struct key_record *k)
{
	const cJSON *v;

	if ((v = json_get(o, "name"))) {
		if (!cJSON_IsString(v) || !keys_valid_name(v->valuestring)) {
			admin_fail(c, 400, "name", "must be 1-128 printable characters");
			return false;
		}
		snprintf(k->name, sizeof(k->name), "%s", v->valuestring);
	}
	if (!ref_field(c, o, "team", "a team name (1-64 of A-Z a-z 0-9 _ - .)", team_exists, k->team,
		       sizeof(k->team)) ||
	    !ref_field(c, o, "policy", "a policy name", policy_exists, k->policy, sizeof(k->policy)))
		return false;
	if ((v = json_get(o, "expires"))) {
		if (cJSON_IsNull(v)) {
			k->expires = 0;
		} else if (!cJSON_IsString(v) || keys_parse_time(v->valuestring, &k->expires) ||
			   k->expires <= 0) {
			admin_fail(c, 400, "expires", "must be an RFC 3339 time "
			     "(2027-01-31T00:00:00Z) or null for never");
			return false;
		}
	}
	if ((v = json_get(o, "workloads"))) {
		const char *why;

		if (cJSON_IsNull(v) || (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0)) {
			k->workloads[0] = '\0';
		} else if (keys_workloads_from_json(v, keys_pod_lookup_running(), k->workloads,
						    &why)) {
			admin_fail(c, 400, "workloads", "%s (null: usable anywhere)", why);
			return false;
		}
	}
	if ((v = json_get(o, "disabled"))) {
		if (!cJSON_IsBool(v)) {
			admin_fail(c, 400, "disabled", "must be true or false");
			return false;
		}
		k->disabled = cJSON_IsTrue(v);
	}
	if (!k->policy[0] && !k->team[0]) {
		admin_fail(c, 400, "policy", "a key needs a policy, a team, or both");
		return false;
	}
	return true;
}

void admin_key_create(struct ctx *c, const char *unused)
{
	static const char *const fields[] = { "id", "name", "team", "policy", "expires", "workloads",
					      NULL };
	struct key_record k = { 0 };
	char secret[KEYS_TOKEN_SIZE] = "";
	cJSON *body = admin_body_object(c), *v;
	bool named;
	int rc = 0;

	if (!body || !admin_known_fields(c, body, fields) || !key_fields(c, body, &k))
		goto out;
	v = json_get(body, "id");
	if (v && (!cJSON_IsString(v) || !keys_valid_ident(v->valuestring))) {
		admin_fail(c, 400, "id", "must be 1-64 of A-Z a-z 0-9 _ - .");
		goto out;
	}
	if (v && keys_get(c->ks, v->valuestring, &(struct key_record){ 0 }) == 0) {
		admin_fail(c, 409, "id", "a key with id \"%s\" exists", v->valuestring);
		goto out;
	}
	k.created = clock_real_s();
	k.disabled = false;
	named = json_get(body, "name") != NULL;
	for (int i = 0; i < ID_RETRIES; i++) {
		if ((rc = keys_generate(secret, sizeof(secret))) ||
		    (rc = keys_hash(secret, strlen(secret), k.hash)))
			break;
		if (v)
			snprintf(k.id, sizeof(k.id), "%s", v->valuestring);
		else if ((rc = keys_generate_id(k.id, sizeof(k.id))))
			break;
		if (!named)
			snprintf(k.name, sizeof(k.name), "%s", k.id);
		rc = keys_add(c->ks, &k);
		if (rc != -EEXIST || v)
			break;
	}
	if (rc) {
		if (rc == -EEXIST)
			admin_fail(c, 409, "id", "a key with id \"%s\" exists", k.id);
		else
			admin_fail(c, rc == -EINVAL ? 400 : 500, NULL, "cannot create the key: %s",
			     strerror(-rc));
		goto out;
	}
	cJSON *ok = cJSON_CreateObject(), *audit = admin_record_new(c, "key.create");
	cJSON_AddStringToObject(ok, "key", secret);
	cJSON_AddItemToObject(ok, "record", admin_key_json(c->a, &k));
	cJSON_AddStringToObject(audit, "key", k.id);
	cJSON_AddItemToObject(audit, "record", admin_key_json(c->a, &k));
	struct pending *p = admin_pending_new(c, P_KEY_CREATE, 201, ok, audit);
	if (!p) {
		keys_delete(c->ks, k.id);
		goto out;
	}
	p->before = k;
	admin_pending_start(c, p, admin_persist_key(c, &k, p));
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON_Delete(body);
}

/* The key at id, answering 404 (or 409 for a config key when writing) itself. */
static bool key_lookup(struct ctx *c, const char *id, bool write, struct key_record *k)
{
	if (keys_get(c->ks, id, k)) {
		admin_fail(c, 404, "id", "no key with id \"%s\"", id);
		return false;
	}
	if (write && gate_config_key(c->g, id)) {
		OPENSSL_cleanse(k->hash, sizeof(k->hash));
		admin_fail(c, 409, "id", "key \"%s\" is defined in the config file (%s): change "
		     "it there and reload (SIGHUP)", id, c->a->cfg->path);
		return false;
	}
	return true;
}

void admin_key_show(struct ctx *c, const char *id)
{
	struct key_record k;

	if (!key_lookup(c, id, false, &k))
		return;
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON *o = admin_key_json(c->a, &k);
	admin_send_json(c->req, 200, o);
	cJSON_Delete(o);
}

/* PATCH (body fields) and revoke (disabled = true). */
static void key_update(struct ctx *c, const char *id, bool revoke)
{
	static const char *const fields[] = { "name", "team", "policy", "expires", "disabled",
					      "workloads", NULL };
	struct key_record before, k;
	cJSON *body = NULL;
	int rc;

	if (!key_lookup(c, id, true, &before))
		return;
	k = before;
	if (revoke) {
		k.disabled = true;
	} else if (!(body = admin_body_object(c)) || !admin_known_fields(c, body, fields) ||
		   !key_fields(c, body, &k)) {
		goto out;
	}
	rc = keys_update(c->ks, &k);
	if (rc) {
		admin_fail(c, rc == -ENOMEM ? 500 : 400, NULL, "cannot update the key: %s",
		     strerror(-rc));
		goto out;
	}
	cJSON *audit = admin_record_new(c, revoke ? "key.revoke" : "key.update");
	cJSON_AddStringToObject(audit, "key", id);
	if (body) {
		cJSON *changes = cJSON_Duplicate(body, 1);
		cJSON_AddItemToObject(audit, "changes", changes);
	}
	struct pending *p = admin_pending_new(c, P_KEY_UPDATE, 200, admin_key_json(c->a, &k), audit);
	if (!p) {
		keys_update(c->ks, &before);
		goto out;
	}
	p->before = before;
	admin_pending_start(c, p, admin_persist_key(c, &k, p));
out:
	OPENSSL_cleanse(before.hash, sizeof(before.hash));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON_Delete(body);
}

void admin_key_delete(struct ctx *c, const char *id)
{
	struct key_record k;
	struct store *st = gate_store(c->g);

	if (!key_lookup(c, id, true, &k))
		return;
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	keys_delete(c->ks, id);
	cJSON *ok = cJSON_CreateObject(), *audit = admin_record_new(c, "key.delete");
	cJSON_AddStringToObject(ok, "deleted", id);
	cJSON_AddStringToObject(audit, "key", id);
	struct pending *p = admin_pending_new(c, P_KEY_DELETE, 200, ok, audit);
	if (p)
		admin_pending_start(c, p, st ? store_key_delete(st, id, admin_on_stored, p) : 1);
}

void admin_key_patch(struct ctx *c, const char *id)
{
	key_update(c, id, false);
}

void admin_key_revoke(struct ctx *c, const char *id)
{
	key_update(c, id, true);
}

/* --- teams ------------------------------------------------------------------------------- */

static cJSON *team_json(const struct admin *a, const char *name, const char *policy, size_t nkeys)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "policy", policy);
	cJSON_AddNumberToObject(o, "keys", (double)nkeys);
	cJSON_AddStringToObject(o, "source", gate_config_team(router_gate(a->r), name) ? "config" : "api");
	return o;
}

static size_t team_nkeys(struct keystore *ks, const char *name)
{
	struct admin_list l;
	size_t n = 0;

	admin_sorted_teams(ks, &l);
	for (size_t i = 0; i < l.n; i++) {
		const struct team_ent *t = admin_list_at(&l, i);

		if (!strcmp(t->name, name))
			n = t->nkeys;
	}
	free(l.v);
	return n;
}

void admin_team_show(struct ctx *c, const char *name)
{
	const char *policy = keys_team_policy(c->ks, name);

	if (!policy) {
		admin_fail(c, 404, "name", "no team named \"%s\"", name);
		return;
	}
	cJSON *o = team_json(c->a, name, policy, team_nkeys(c->ks, name));
	admin_send_json(c->req, 200, o);
	cJSON_Delete(o);
}

static bool team_writable(struct ctx *c, const char *name)
{
	if (!gate_config_team(c->g, name))
		return true;
	admin_fail(c, 409, "name", "team \"%s\" is defined in the config file (%s): change it "
	     "there and reload (SIGHUP)", name, c->a->cfg->path);
	return false;
}

void admin_team_put(struct ctx *c, const char *name)
{
	static const char *const fields[] = { "policy", NULL };
	const char *old = keys_team_policy(c->ks, name);
	struct store *st = gate_store(c->g);
	char before[KEYS_ID_SIZE] = "";
	cJSON *body, *v;
	int rc;

	if (!keys_valid_ident(name)) {
		admin_fail(c, 400, "name", "a team name is 1-64 of A-Z a-z 0-9 _ - .");
		return;
	}
	if (!team_writable(c, name) || !(body = admin_body_object(c)))
		return;
	if (!admin_known_fields(c, body, fields))
		goto out;
	v = json_get(body, "policy");
	if (!cJSON_IsString(v) || !keys_valid_ident(v->valuestring)) {
		admin_fail(c, 400, "policy", "required: the name of a policy");
		goto out;
	}
	if (!gate_policy_exists(c->g, v->valuestring)) {
		admin_fail(c, 400, "policy", "no policy named \"%s\"", v->valuestring);
		goto out;
	}
	if (old)
		snprintf(before, sizeof(before), "%s", old);
	if ((rc = keys_team_set(c->ks, name, v->valuestring))) {
		admin_fail(c, 500, NULL, "cannot set the team: %s", strerror(-rc));
		goto out;
	}
	cJSON *audit = admin_record_new(c, "team.put");
	cJSON_AddStringToObject(audit, "team", name);
	cJSON_AddStringToObject(audit, "policy", v->valuestring);
	struct pending *p = admin_pending_new(c, P_TEAM_PUT, before[0] ? 200 : 201,
					team_json(c->a, name, v->valuestring,
						  team_nkeys(c->ks, name)), audit);
	if (!p) {
		if (before[0])
			keys_team_set(c->ks, name, before);
		else
			keys_team_delete(c->ks, name);
		goto out;
	}
	snprintf(p->team, sizeof(p->team), "%s", name);
	memcpy(p->team_policy, before, sizeof(before));
	admin_pending_start(c, p, st ? store_team_put(st, name, v->valuestring, admin_on_stored, p) : 1);
out:
	cJSON_Delete(body);
}

void admin_team_delete(struct ctx *c, const char *name)
{
	const char *old = keys_team_policy(c->ks, name);
	struct store *st = gate_store(c->g);
	char before[KEYS_ID_SIZE];
	int rc;

	if (!old) {
		admin_fail(c, 404, "name", "no team named \"%s\"", name);
		return;
	}
	if (!team_writable(c, name))
		return;
	snprintf(before, sizeof(before), "%s", old);
	rc = keys_team_delete(c->ks, name);
	if (rc == -EBUSY) {
		admin_fail(c, 409, "name", "team \"%s\" still has keys: move or delete them "
		     "first", name);
		return;
	}
	if (rc) {
		admin_fail(c, 500, NULL, "cannot delete the team: %s", strerror(-rc));
		return;
	}
	cJSON *ok = cJSON_CreateObject(), *audit = admin_record_new(c, "team.delete");
	cJSON_AddStringToObject(ok, "deleted", name);
	cJSON_AddStringToObject(audit, "team", name);
	struct pending *p = admin_pending_new(c, P_TEAM_DELETE, 200, ok, audit);
	if (!p) {
		keys_team_set(c->ks, name, before);
		return;
	}
	snprintf(p->team, sizeof(p->team), "%s", name);
	memcpy(p->team_policy, before, sizeof(before));
	admin_pending_start(c, p, st ? store_team_delete(st, name, admin_on_stored, p) : 1);
}

/* --- listings: every key or team, sorted by name ---------------------------------------- */

/* Room for one more entry at the end of l. */
static void *list_push(struct admin_list *l)
{
	l->v = xgrow(l->v, l->n, &l->cap, l->size, 16);
	return (char *)l->v + l->n++ * l->size;
}

static int collect_key(void *arg, const struct key_record *k)
{
	struct key_record *e = list_push(arg);

	*e = *k;
	memset(e->hash, 0, sizeof(e->hash));  /* listings never need it */
	return 0;
}

static void walk_keys(struct keystore *ks, struct admin_list *l)
{
	(void)keys_foreach(ks, collect_key, l);   /* collect_key never stops the walk */
}

static cJSON *key_entry_json(const void *k, void *a)
{
	return admin_key_json(a, k);
}

static int collect_team(void *arg, const char *name, const char *policy, size_t nkeys)
{
	struct team_ent *e = list_push(arg);

	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->policy, sizeof(e->policy), "%s", policy);
	e->nkeys = nkeys;
	return 0;
}

static void walk_teams(struct keystore *ks, struct admin_list *l)
{
	(void)keys_team_foreach(ks, collect_team, l);   /* collect_team never stops the walk */
}

static cJSON *team_entry_json(const void *entry, void *a)
{
	const struct team_ent *t = entry;

	return team_json(a, t->name, t->policy, t->nkeys);
}

/* What a listing is made of: its entries, how the keystore gives them, how each is shown. */
struct listing {
	const char *member;             /* the answer's array */
	size_t size, name;              /* an entry's size, and where its name is in it */
	void (*walk)(struct keystore *ks, struct admin_list *l);
	cJSON *(*json)(const void *entry, void *a);     /* a: the struct admin */
};

static const struct listing key_listing = {
	"keys", sizeof(struct key_record), offsetof(struct key_record, id), walk_keys, key_entry_json
};
static const struct listing team_listing = {
	"teams", sizeof(struct team_ent), offsetof(struct team_ent, name), walk_teams, team_entry_json
};

static int by_name(const void *x, const void *y, void *l)
{
	size_t at = ((const struct admin_list *)l)->name;

	return strcmp((const char *)x + at, (const char *)y + at);
}

static void sorted(struct keystore *ks, const struct listing *what, struct admin_list *l)
{
	*l = (struct admin_list){ .size = what->size, .name = what->name };
	what->walk(ks, l);
	if (l->n)
		qsort_r(l->v, l->n, l->size, by_name, l);
}

void admin_list_json(cJSON *arr, const struct admin_list *l, const char *only,
		     cJSON *(*json)(const void *entry, void *arg), void *arg)
{
	for (size_t i = 0; i < l->n; i++) {
		const void *e = admin_list_at(l, i);

		if (!only || !strcmp(only, (const char *)e + l->name))
			cJSON_AddItemToArray(arr, json(e, arg));
	}
}

/* Answers {"<member>": [every entry, sorted]}. */
static void send_listing(struct ctx *c, const struct listing *what)
{
	struct admin_list l;
	cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, what->member);

	sorted(c->ks, what, &l);
	admin_list_json(arr, &l, NULL, what->json, c->a);
	admin_send_json(c->req, 200, o);
	cJSON_Delete(o);
	free(l.v);
}

void admin_sorted_keys(struct keystore *ks, struct admin_list *l)
{
	sorted(ks, &key_listing, l);
}

void admin_sorted_teams(struct keystore *ks, struct admin_list *l)
{
	sorted(ks, &team_listing, l);
}

void admin_key_list(struct ctx *c, const char *unused)
{
	send_listing(c, &key_listing);
}

void admin_team_list(struct ctx *c, const char *unused)
{
	send_listing(c, &team_listing);
}
