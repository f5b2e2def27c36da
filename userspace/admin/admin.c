/* admin: keys, teams, usage and metrics over a token-protected loopback HTTP API. */
#include "admin/admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "govern/budget.h"
#include "base/config.h"
#include "govern/gate.h"
#include "base/hmap.h"
#include "govern/keys.h"
#include "observe/audit.h"
#include "base/listener.h"
#include "base/log.h"
#include "observe/metrics.h"
#include "mcp/router.h"
#include "store/store.h"

#define ADMIN_MAX_BODY 65536
#define ADMIN_TIMEOUT_S 10
#define ID_RETRIES 8

enum pend_kind { P_KEY_CREATE, P_KEY_UPDATE, P_KEY_DELETE, P_TEAM_PUT, P_TEAM_DELETE, P_RESET };

/* A change applied in memory and waiting for the store before it is acknowledged. */
struct pending {
	struct pending *prev, *next;
	struct admin *a;                /* NULL once the admin plane is gone */
	struct evhttp_request *req;     /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	enum pend_kind kind;
	int status;                     /* on success */
	cJSON *ok;                      /* body on success */
	cJSON *audit;                   /* the admin record; "result" is added at the end */
	struct key_record before;       /* create: the new key; update: the record before */
	char team[KEYS_ID_SIZE];
	char team_policy[KEYS_ID_SIZE]; /* team put/delete: the policy before ("" new team) */
};

struct admin {
	struct event_base *base;
	const struct config *cfg;
	struct router *r;
	struct evhttp *http;
	int port;
	bool loopback;
	unsigned char token_hash[KEYS_HASH_LEN];
	struct hmap *config_keys;       /* ids of keys from the config file */
	struct hmap *config_teams;
	struct pending *pending;
};

/* One request being handled. */
struct ctx {
	struct admin *a;
	struct evhttp_request *req;
	const char *peer;
	struct gate *g;
	struct keystore *ks;
	const char *action;             /* writes: the record's action */
	int refused;                    /* the status of a refusal answered here, 0 none */
	char why[256];
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* --- HTTP helpers --------------------------------------------------------------------- */

static void set_header(struct evhttp_request *req, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Error";
}

static void send_json(struct evhttp_request *req, int status, const cJSON *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	/* Answers may carry a fresh key: never cached anywhere. */
	set_header(req, "Cache-Control", "no-store");
	if (buf && text) {
		set_header(req, "Content-Type", "application/json");
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, status, status_text(status), buf);
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		cJSON_free(text);
	}
	if (buf)
		evbuffer_free(buf);
}

static void send_error(struct evhttp_request *req, int status, const char *field,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_error(struct evhttp_request *req, int status, const char *field,
		       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *e = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(e, "error", msg);
	if (field)
		cJSON_AddStringToObject(e, "field", field);
	send_json(req, status, e);
	cJSON_Delete(e);
}

/* A refusal of the request in c: answered, and remembered for the record of a write. */
static void fail(struct ctx *c, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fail(struct ctx *c, int status, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->refused = status;
	send_error(c->req, status, field, "%s", c->why);
}

/* The body as a JSON object; NULL after answering 400 itself. Empty bodies read as {}. */
static cJSON *body_object(struct ctx *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	cJSON *o;

	if (len == 0)
		return cJSON_CreateObject();
	o = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		fail(c, 400, NULL, "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* Unknown fields are refused, as in the config: a typo must not be ignored silently. */
static bool known_fields(struct ctx *c, const cJSON *o, const char *const *allowed)
{
	for (const cJSON *it = o->child; it; it = it->next) {
		const char *const *f = allowed;
		while (*f && strcmp(*f, it->string))
			f++;
		if (!*f) {
			fail(c, 400, it->string, "unknown field \"%s\"", it->string);
			return false;
		}
	}
	return true;
}

static bool valid_ident(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= KEYS_ID_SIZE)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= KEYS_NAME_SIZE)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void time_json(cJSON *o, const char *name, int64_t t)
{
	char buf[40];

	if (t <= 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	budget_rfc3339(t, buf, sizeof(buf));
	cJSON_AddStringToObject(o, name, buf);
}

static void money_json(cJSON *o, const char *name, int64_t micro)
{
	char buf[40];

	budget_format_money(micro, buf, sizeof(buf));
	cJSON_AddStringToObject(o, name, buf);
}

/* --- records ---------------------------------------------------------------------------- */

static cJSON *audit_new(const struct ctx *c, const char *action)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "action", action);
	if (c->peer)
		cJSON_AddStringToObject(o, "peer", c->peer);
	return o;
}

static void audit_emit(cJSON *o, const char *result, int status)
{
	cJSON_AddStringToObject(o, "result", result);
	cJSON_AddNumberToObject(o, "status", status);
	audit_admin(o);
	cJSON_Delete(o);
}

static cJSON *key_json(const struct admin *a, const struct key_record *k)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	if (k->team[0])
		cJSON_AddStringToObject(o, "team", k->team);
	else
		cJSON_AddNullToObject(o, "team");
	if (k->policy[0])
		cJSON_AddStringToObject(o, "policy", k->policy);
	else
		cJSON_AddNullToObject(o, "policy");
	time_json(o, "created", k->created);
	time_json(o, "expires", k->expires);
	cJSON_AddBoolToObject(o, "disabled", k->disabled);
	cJSON_AddBoolToObject(o, "expired", k->expires > 0 && now_s() >= k->expires);
	cJSON_AddStringToObject(o, "source", hmap_get(a->config_keys, k->id) ? "config" : "api");
	return o;
}

/* --- waiting for the store -------------------------------------------------------------- */

static void pending_gone(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;

	/* evhttp frees the request after this; the change itself goes on. */
	p->req = NULL;
	p->evcon = NULL;
}

static void pending_unlink(struct pending *p)
{
	struct admin *a = p->a;

	if (p->prev)
		p->prev->next = p->next;
	else
		a->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
}

/* The store could not commit: put memory back where that is safe (never re-enabling what
 * the operator disabled), so memory and disk agree. */
static const char *rollback(struct pending *p, struct keystore *ks)
{
	struct key_record cur;

	switch (p->kind) {
	case P_KEY_CREATE:
		if (keys_delete(ks, p->before.id))
			log_error("admin: rollback of key %s failed", p->before.id);
		return "the key was not created";
	case P_KEY_UPDATE:
		if (keys_get(ks, p->before.id, &cur) == 0) {
			p->before.disabled = p->before.disabled || cur.disabled;
			if (keys_update(ks, &p->before))
				log_error("admin: rollback of key %s failed", p->before.id);
		}
		return p->before.disabled ? "the key stays disabled; the other changes were undone"
					  : "nothing was changed";
	case P_KEY_DELETE:
		return "the key is deleted in memory but will be back after a restart: retry";
	case P_TEAM_PUT:
		if (p->team_policy[0] ? keys_team_set(ks, p->team, p->team_policy)
				      : keys_team_delete(ks, p->team))
			log_error("admin: rollback of team %s failed", p->team);
		return "nothing was changed";
	case P_TEAM_DELETE:
		if (keys_team_set(ks, p->team, p->team_policy))
			log_error("admin: rollback of team %s failed", p->team);
		return "nothing was changed";
	case P_RESET:
		return "the counters are reset in memory but the spend will be back after a "
		       "restart: retry";
	}
	return "";
}

static void on_stored(void *arg, int err)
{
	struct pending *p = arg;
	int status = p->status;

	if (p->a) {
		pending_unlink(p);
		if (p->evcon)
			evhttp_connection_set_closecb(p->evcon, NULL, NULL);
		if (err) {
			const char *what = rollback(p, gate_keystore(router_gate(p->a->r)));
			status = 500;
			log_error("admin: %s not persisted: %s", cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(p->audit, "action")), strerror(-err));
			if (p->req)
				send_error(p->req, 500, NULL, "the store could not commit the change "
					   "(%s): %s", strerror(-err), what);
		} else if (p->req) {
			send_json(p->req, status, p->ok);
		}
	} else if (!err) {
		status = 200;
	}
	audit_emit(p->audit, err ? "failed" : "ok", err ? 500 : status);
	cJSON_Delete(p->ok);
	OPENSSL_cleanse(p->before.hash, sizeof(p->before.hash));
	free(p);
}

/* The change is queued: rc 0 means the store calls back; 1 (nothing to persist) and errors
 * finish now. */
static void pending_start(struct ctx *c, struct pending *p, int rc)
{
	struct admin *a = c->a;

	p->a = a;
	p->next = a->pending;
	if (a->pending)
		a->pending->prev = p;
	a->pending = p;
	if (rc != 0) {
		on_stored(p, rc == 1 ? 0 : rc);
		return;
	}
	p->evcon = evhttp_request_get_connection(c->req);
	evhttp_connection_set_closecb(p->evcon, pending_gone, p);
}

static struct pending *pending_new(struct ctx *c, enum pend_kind kind, int status, cJSON *ok,
				   cJSON *audit)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p) {
		cJSON_Delete(ok);
		audit_emit(audit, "failed", 500);
		fail(c, 500, NULL, "out of memory");
		return NULL;
	}
	p->req = c->req;
	p->kind = kind;
	p->status = status;
	p->ok = ok;
	p->audit = audit;
	return p;
}

static int persist_key(struct ctx *c, const struct key_record *k, struct pending *p)
{
	struct store_key sk = {
		.id = k->id, .name = k->name, .team = k->team[0] ? k->team : NULL,
		.policy = k->policy[0] ? k->policy : NULL, .created = k->created,
		.expires = k->expires, .disabled = k->disabled,
	};
	struct store *st = gate_store(c->g);
	int rc;

	memcpy(sk.hash, k->hash, sizeof(sk.hash));
	rc = st ? store_key_put(st, &sk, on_stored, p) : 1;
	OPENSSL_cleanse(sk.hash, sizeof(sk.hash));
	return rc;
}

/* --- keys -------------------------------------------------------------------------------- */

/* Read name/team/policy/expires/disabled from o into k, answering 400 on a bad field. */
static bool key_fields(struct ctx *c, const cJSON *o, struct key_record *k)
{
	const cJSON *v;

	if ((v = cJSON_GetObjectItemCaseSensitive(o, "name"))) {
		if (!cJSON_IsString(v) || !valid_name(v->valuestring)) {
			fail(c, 400, "name", "must be 1-128 printable characters");
			return false;
		}
		snprintf(k->name, sizeof(k->name), "%s", v->valuestring);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "team"))) {
		if (cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0])) {
			k->team[0] = '\0';
		} else if (!cJSON_IsString(v) || !valid_ident(v->valuestring)) {
			fail(c, 400, "team", "must be a team name (1-64 of A-Z a-z 0-9 _ - .) "
			     "or null");
			return false;
		} else if (!keys_team_policy(c->ks, v->valuestring)) {
			fail(c, 400, "team", "no team named \"%s\"", v->valuestring);
			return false;
		} else {
			snprintf(k->team, sizeof(k->team), "%s", v->valuestring);
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "policy"))) {
		if (cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0])) {
			k->policy[0] = '\0';
		} else if (!cJSON_IsString(v) || !valid_ident(v->valuestring)) {
			fail(c, 400, "policy", "must be a policy name or null");
			return false;
		} else if (!gate_policy_exists(c->g, v->valuestring)) {
			fail(c, 400, "policy", "no policy named \"%s\"", v->valuestring);
			return false;
		} else {
			snprintf(k->policy, sizeof(k->policy), "%s", v->valuestring);
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "expires"))) {
		if (cJSON_IsNull(v)) {
			k->expires = 0;
		} else if (!cJSON_IsString(v) || keys_parse_time(v->valuestring, &k->expires) ||
			   k->expires <= 0) {
			fail(c, 400, "expires", "must be an RFC 3339 time "
			     "(2027-01-31T00:00:00Z) or null for never");
			return false;
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "disabled"))) {
		if (!cJSON_IsBool(v)) {
			fail(c, 400, "disabled", "must be true or false");
			return false;
		}
		k->disabled = cJSON_IsTrue(v);
	}
	if (!k->policy[0] && !k->team[0]) {
		fail(c, 400, "policy", "a key needs a policy, a team, or both");
		return false;
	}
	return true;
}

static void key_create(struct ctx *c)
{
	static const char *const fields[] = { "id", "name", "team", "policy", "expires", NULL };
	struct key_record k = { 0 };
	char secret[KEYS_TOKEN_SIZE] = "";
	cJSON *body = body_object(c), *v;
	bool named;
	int rc = 0;

	if (!body || !known_fields(c, body, fields) || !key_fields(c, body, &k))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(body, "id");
	if (v && (!cJSON_IsString(v) || !valid_ident(v->valuestring))) {
		fail(c, 400, "id", "must be 1-64 of A-Z a-z 0-9 _ - .");
		goto out;
	}
	if (v && keys_get(c->ks, v->valuestring, &(struct key_record){ 0 }) == 0) {
		fail(c, 409, "id", "a key with id \"%s\" exists", v->valuestring);
		goto out;
	}
	k.created = now_s();
	k.disabled = false;
	named = cJSON_GetObjectItemCaseSensitive(body, "name") != NULL;
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
			fail(c, 409, "id", "a key with id \"%s\" exists", k.id);
		else
			fail(c, rc == -EINVAL ? 400 : 500, NULL, "cannot create the key: %s",
			     strerror(-rc));
		goto out;
	}
	cJSON *ok = cJSON_CreateObject(), *audit = audit_new(c, "key.create");
	cJSON_AddStringToObject(ok, "key", secret);
	cJSON_AddItemToObject(ok, "record", key_json(c->a, &k));
	cJSON_AddStringToObject(audit, "key", k.id);
	cJSON_AddItemToObject(audit, "record", key_json(c->a, &k));
	struct pending *p = pending_new(c, P_KEY_CREATE, 201, ok, audit);
	if (!p) {
		keys_delete(c->ks, k.id);
		goto out;
	}
	p->before = k;
	pending_start(c, p, persist_key(c, &k, p));
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON_Delete(body);
}

struct key_list {
	struct key_record *v;
	size_t n, cap;
};

static int collect_key(void *arg, const struct key_record *k)
{
	struct key_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct key_record *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n] = *k;
	memset(l->v[l->n].hash, 0, sizeof(l->v[l->n].hash));  /* listings never need it */
	l->n++;
	return 0;
}

static int key_cmp(const void *x, const void *y)
{
	return strcmp(((const struct key_record *)x)->id, ((const struct key_record *)y)->id);
}

static int sorted_keys(struct keystore *ks, struct key_list *l)
{
	int rc;

	memset(l, 0, sizeof(*l));
	rc = keys_foreach(ks, collect_key, l);
	if (rc) {
		free(l->v);
		return rc;
	}
	qsort(l->v, l->n, sizeof(*l->v), key_cmp);
	return 0;
}

static void key_list(struct ctx *c)
{
	struct key_list l;
	cJSON *o, *arr;

	if (sorted_keys(c->ks, &l)) {
		fail(c, 500, NULL, "out of memory");
		return;
	}
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "keys");
	for (size_t i = 0; i < l.n; i++)
		cJSON_AddItemToArray(arr, key_json(c->a, &l.v[i]));
	send_json(c->req, 200, o);
	cJSON_Delete(o);
	free(l.v);
}

/* The key at id, answering 404 (or 409 for a config key when writing) itself. */
static bool key_lookup(struct ctx *c, const char *id, bool write, struct key_record *k)
{
	if (keys_get(c->ks, id, k)) {
		fail(c, 404, "id", "no key with id \"%s\"", id);
		return false;
	}
	if (write && hmap_get(c->a->config_keys, id)) {
		OPENSSL_cleanse(k->hash, sizeof(k->hash));
		fail(c, 409, "id", "key \"%s\" is defined in the config file (%s): change "
		     "it there and reload (SIGHUP)", id, c->a->cfg->path);
		return false;
	}
	return true;
}

static void key_show(struct ctx *c, const char *id)
{
	struct key_record k;

	if (!key_lookup(c, id, false, &k))
		return;
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON *o = key_json(c->a, &k);
	send_json(c->req, 200, o);
	cJSON_Delete(o);
}

/* PATCH (body fields) and revoke (disabled = true). */
static void key_update(struct ctx *c, const char *id, bool revoke)
{
	static const char *const fields[] = { "name", "team", "policy", "expires", "disabled", NULL };
	struct key_record before, k;
	cJSON *body = NULL;
	int rc;

	if (!key_lookup(c, id, true, &before))
		return;
	k = before;
	if (revoke) {
		k.disabled = true;
	} else if (!(body = body_object(c)) || !known_fields(c, body, fields) ||
		   !key_fields(c, body, &k)) {
		goto out;
	}
	rc = keys_update(c->ks, &k);
	if (rc) {
		fail(c, rc == -ENOMEM ? 500 : 400, NULL, "cannot update the key: %s",
		     strerror(-rc));
		goto out;
	}
	cJSON *audit = audit_new(c, revoke ? "key.revoke" : "key.update");
	cJSON_AddStringToObject(audit, "key", id);
	if (body) {
		cJSON *changes = cJSON_Duplicate(body, 1);
		cJSON_AddItemToObject(audit, "changes", changes);
	}
	struct pending *p = pending_new(c, P_KEY_UPDATE, 200, key_json(c->a, &k), audit);
	if (!p) {
		keys_update(c->ks, &before);
		goto out;
	}
	p->before = before;
	pending_start(c, p, persist_key(c, &k, p));
out:
	OPENSSL_cleanse(before.hash, sizeof(before.hash));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	cJSON_Delete(body);
}

static void key_delete(struct ctx *c, const char *id)
{
	struct key_record k;
	struct store *st = gate_store(c->g);

	if (!key_lookup(c, id, true, &k))
		return;
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	keys_delete(c->ks, id);
	cJSON *ok = cJSON_CreateObject(), *audit = audit_new(c, "key.delete");
	cJSON_AddStringToObject(ok, "deleted", id);
	cJSON_AddStringToObject(audit, "key", id);
	struct pending *p = pending_new(c, P_KEY_DELETE, 200, ok, audit);
	if (p)
		pending_start(c, p, st ? store_key_delete(st, id, on_stored, p) : 1);
}

/* --- teams ------------------------------------------------------------------------------- */

static cJSON *team_json(const struct admin *a, const char *name, const char *policy, size_t nkeys)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "policy", policy);
	cJSON_AddNumberToObject(o, "keys", (double)nkeys);
	cJSON_AddStringToObject(o, "source", hmap_get(a->config_teams, name) ? "config" : "api");
	return o;
}

struct team_ent {
	char name[KEYS_ID_SIZE], policy[KEYS_ID_SIZE];
	size_t nkeys;
};

struct team_list {
	struct team_ent *v;
	size_t n, cap;
};

static int collect_team(void *arg, const char *name, const char *policy, size_t nkeys)
{
	struct team_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct team_ent *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name);
	snprintf(l->v[l->n].policy, sizeof(l->v[l->n].policy), "%s", policy);
	l->v[l->n].nkeys = nkeys;
	l->n++;
	return 0;
}

static int team_cmp(const void *x, const void *y)
{
	return strcmp(((const struct team_ent *)x)->name, ((const struct team_ent *)y)->name);
}

static int sorted_teams(struct keystore *ks, struct team_list *l)
{
	int rc;

	memset(l, 0, sizeof(*l));
	rc = keys_team_foreach(ks, collect_team, l);
	if (rc) {
		free(l->v);
		return rc;
	}
	qsort(l->v, l->n, sizeof(*l->v), team_cmp);
	return 0;
}

static void team_list(struct ctx *c)
{
	struct team_list l;
	cJSON *o, *arr;

	if (sorted_teams(c->ks, &l)) {
		fail(c, 500, NULL, "out of memory");
		return;
	}
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "teams");
	for (size_t i = 0; i < l.n; i++)
		cJSON_AddItemToArray(arr, team_json(c->a, l.v[i].name, l.v[i].policy, l.v[i].nkeys));
	send_json(c->req, 200, o);
	cJSON_Delete(o);
	free(l.v);
}

static size_t team_nkeys(struct keystore *ks, const char *name)
{
	struct team_list l;
	size_t n = 0;

	if (sorted_teams(ks, &l))
		return 0;
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.v[i].name, name))
			n = l.v[i].nkeys;
	free(l.v);
	return n;
}

static void team_show(struct ctx *c, const char *name)
{
	const char *policy = keys_team_policy(c->ks, name);

	if (!policy) {
		fail(c, 404, "name", "no team named \"%s\"", name);
		return;
	}
	cJSON *o = team_json(c->a, name, policy, team_nkeys(c->ks, name));
	send_json(c->req, 200, o);
	cJSON_Delete(o);
}

static bool team_writable(struct ctx *c, const char *name)
{
	if (!hmap_get(c->a->config_teams, name))
		return true;
	fail(c, 409, "name", "team \"%s\" is defined in the config file (%s): change it "
	     "there and reload (SIGHUP)", name, c->a->cfg->path);
	return false;
}

static void team_put(struct ctx *c, const char *name)
{
	static const char *const fields[] = { "policy", NULL };
	const char *old = keys_team_policy(c->ks, name);
	struct store *st = gate_store(c->g);
	char before[KEYS_ID_SIZE] = "";
	cJSON *body, *v;
	int rc;

	if (!valid_ident(name)) {
		fail(c, 400, "name", "a team name is 1-64 of A-Z a-z 0-9 _ - .");
		return;
	}
	if (!team_writable(c, name) || !(body = body_object(c)))
		return;
	if (!known_fields(c, body, fields))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(body, "policy");
	if (!cJSON_IsString(v) || !valid_ident(v->valuestring)) {
		fail(c, 400, "policy", "required: the name of a policy");
		goto out;
	}
	if (!gate_policy_exists(c->g, v->valuestring)) {
		fail(c, 400, "policy", "no policy named \"%s\"", v->valuestring);
		goto out;
	}
	if (old)
		snprintf(before, sizeof(before), "%s", old);
	if ((rc = keys_team_set(c->ks, name, v->valuestring))) {
		fail(c, 500, NULL, "cannot set the team: %s", strerror(-rc));
		goto out;
	}
	cJSON *audit = audit_new(c, "team.put");
	cJSON_AddStringToObject(audit, "team", name);
	cJSON_AddStringToObject(audit, "policy", v->valuestring);
	struct pending *p = pending_new(c, P_TEAM_PUT, before[0] ? 200 : 201,
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
	pending_start(c, p, st ? store_team_put(st, name, v->valuestring, on_stored, p) : 1);
out:
	cJSON_Delete(body);
}

static void team_delete(struct ctx *c, const char *name)
{
	const char *old = keys_team_policy(c->ks, name);
	struct store *st = gate_store(c->g);
	char before[KEYS_ID_SIZE];
	int rc;

	if (!old) {
		fail(c, 404, "name", "no team named \"%s\"", name);
		return;
	}
	if (!team_writable(c, name))
		return;
	snprintf(before, sizeof(before), "%s", old);
	rc = keys_team_delete(c->ks, name);
	if (rc == -EBUSY) {
		fail(c, 409, "name", "team \"%s\" still has keys: move or delete them "
		     "first", name);
		return;
	}
	if (rc) {
		fail(c, 500, NULL, "cannot delete the team: %s", strerror(-rc));
		return;
	}
	cJSON *ok = cJSON_CreateObject(), *audit = audit_new(c, "team.delete");
	cJSON_AddStringToObject(ok, "deleted", name);
	cJSON_AddStringToObject(audit, "team", name);
	struct pending *p = pending_new(c, P_TEAM_DELETE, 200, ok, audit);
	if (!p) {
		keys_team_set(c->ks, name, before);
		return;
	}
	snprintf(p->team, sizeof(p->team), "%s", name);
	memcpy(p->team_policy, before, sizeof(before));
	pending_start(c, p, st ? store_team_delete(st, name, on_stored, p) : 1);
}

/* --- usage ------------------------------------------------------------------------------- */

static cJSON *budgets_json(struct budget *b, const char *scope, const char *policy, int64_t now)
{
	struct budget_usage u[BUDGET_MAX_PER_SCOPE];
	size_t n = b ? budget_usage(b, scope, policy, now, u) : 0;
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", u[i].name);
		cJSON_AddStringToObject(o, "period", u[i].period);
		money_json(o, "limit", u[i].limit);
		money_json(o, "spent", u[i].spent);
		money_json(o, "reserved", u[i].reserved);
		money_json(o, "remaining", u[i].limit > u[i].spent + u[i].reserved
				  ? u[i].limit - u[i].spent - u[i].reserved : 0);
		time_json(o, "period_start", u[i].period_start);
		time_json(o, "resets_at", u[i].resets_at);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static void usage_get(struct ctx *c)
{
	const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	const char *only_key, *only_team;
	struct evkeyvalq q;
	struct budget *b = gate_budget(c->g);
	struct key_list kl = { 0 };
	struct team_list tl = { 0 };
	int64_t now = now_s();
	char scope[KEYS_ID_SIZE + 8];
	cJSON *o, *keys, *teams;

	if (evhttp_parse_query_str(qs ? qs : "", &q) < 0) {
		fail(c, 400, NULL, "malformed query string");
		return;
	}
	only_key = evhttp_find_header(&q, "key");
	only_team = evhttp_find_header(&q, "team");
	if (sorted_keys(c->ks, &kl) || sorted_teams(c->ks, &tl)) {
		fail(c, 500, NULL, "out of memory");
		goto out;
	}
	o = cJSON_CreateObject();
	time_json(o, "now", now);
	keys = cJSON_AddArrayToObject(o, "keys");
	teams = cJSON_AddArrayToObject(o, "teams");
	for (size_t i = 0; i < kl.n && !only_team; i++) {
		const struct key_record *k = &kl.v[i];
		if (only_key && strcmp(only_key, k->id))
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "id", k->id);
		if (k->team[0])
			cJSON_AddStringToObject(e, "team", k->team);
		else
			cJSON_AddNullToObject(e, "team");
		snprintf(scope, sizeof(scope), "key:%s", k->id);
		cJSON_AddItemToObject(e, "budgets", budgets_json(b, scope, k->policy, now));
		cJSON_AddItemToArray(keys, e);
	}
	for (size_t i = 0; i < tl.n && !only_key; i++) {
		if (only_team && strcmp(only_team, tl.v[i].name))
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", tl.v[i].name);
		snprintf(scope, sizeof(scope), "team:%s", tl.v[i].name);
		cJSON_AddItemToObject(e, "budgets", budgets_json(b, scope, NULL, now));
		cJSON_AddItemToArray(teams, e);
	}
	if ((only_key && !cJSON_GetArraySize(keys)) || (only_team && !cJSON_GetArraySize(teams)))
		fail(c, 404, only_key ? "key" : "team", "no %s named \"%s\"",
		     only_key ? "key" : "team", only_key ? only_key : only_team);
	else
		send_json(c->req, 200, o);
	cJSON_Delete(o);
out:
	evhttp_clear_headers(&q);
	free(kl.v);
	free(tl.v);
}

static void usage_reset(struct ctx *c)
{
	static const char *const fields[] = { "key", "team", NULL };
	cJSON *body = body_object(c);
	const cJSON *key, *team;
	struct key_record k;
	char scope[KEYS_ID_SIZE + 8];
	const char *policy = NULL;
	int64_t now = now_s();

	if (!body || !known_fields(c, body, fields))
		goto out;
	key = cJSON_GetObjectItemCaseSensitive(body, "key");
	team = cJSON_GetObjectItemCaseSensitive(body, "team");
	if (!!key == !!team || (key && !cJSON_IsString(key)) || (team && !cJSON_IsString(team))) {
		fail(c, 400, key ? "key" : "team", "give exactly one of \"key\" (a key id) "
		     "or \"team\" (a team name)");
		goto out;
	}
	if (key) {
		if (keys_get(c->ks, key->valuestring, &k)) {
			fail(c, 404, "key", "no key with id \"%s\"", key->valuestring);
			goto out;
		}
		OPENSSL_cleanse(k.hash, sizeof(k.hash));
		policy = k.policy;
		snprintf(scope, sizeof(scope), "key:%s", key->valuestring);
	} else {
		if (!keys_team_policy(c->ks, team->valuestring)) {
			fail(c, 404, "team", "no team named \"%s\"", team->valuestring);
			goto out;
		}
		snprintf(scope, sizeof(scope), "team:%s", team->valuestring);
	}
	struct budget *b = gate_budget(c->g);
	cJSON *audit = audit_new(c, "usage.reset");
	cJSON_AddStringToObject(audit, "scope", scope);
	/* What was forgotten stays on the record. */
	cJSON_AddItemToObject(audit, "before", budgets_json(b, scope, policy, now));
	struct pending *p = pending_new(c, P_RESET, 200, NULL, audit);
	if (!p)
		goto out;
	int rc = b ? budget_reset(b, scope, now, on_stored, p) : 1;
	p->ok = cJSON_CreateObject();
	cJSON_AddStringToObject(p->ok, "reset", scope);
	cJSON_AddItemToObject(p->ok, "budgets", budgets_json(b, scope, policy, now));
	pending_start(c, p, rc);
out:
	cJSON_Delete(body);
}

/* --- metrics ------------------------------------------------------------------------------ */

static void metrics_get(struct ctx *c)
{
	struct evbuffer *buf = evbuffer_new();

	if (!buf || metrics_render(buf, gate_store(c->g), c->ks)) {
		fail(c, 500, NULL, "out of memory");
	} else {
		set_header(c->req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		set_header(c->req, "Cache-Control", "no-store");
		evhttp_send_reply(c->req, 200, "OK", buf);
	}
	if (buf)
		evbuffer_free(buf);
}

/* --- routing ------------------------------------------------------------------------------ */

static bool authorized(struct admin *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	unsigned char d[KEYS_HASH_LEN];
	bool ok;

	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	/* Digests of equal length: the compare reveals neither the token nor its length. */
	if (keys_hash(h, strlen(h), d))
		return false;
	ok = CRYPTO_memcmp(d, a->token_hash, sizeof(d)) == 0;
	OPENSSL_cleanse(d, sizeof(d));
	return ok;
}

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
	set_header(req, "Allow", allow);
	send_error(req, 405, NULL, "method not allowed here; use %s", allow);
}

/* "/v1/keys/abc/revoke" with prefix "/v1/keys/" -> id "abc", rest "/revoke". */
static bool split_id(const char *path, const char *prefix, char *id, size_t len,
		     const char **rest)
{
	size_t pl = strlen(prefix), n;

	if (strncmp(path, prefix, pl))
		return false;
	path += pl;
	n = strcspn(path, "/");
	if (n == 0 || n >= len)
		return false;
	memcpy(id, path, n);
	id[n] = '\0';
	*rest = path + n;
	return true;
}

static void route(struct ctx *c, const char *path, enum evhttp_cmd_type cmd)
{
	struct evhttp_request *req = c->req;
	char id[KEYS_ID_SIZE];
	const char *rest;

	if (!strcmp(path, "/metrics")) {
		if (cmd == EVHTTP_REQ_GET)
			metrics_get(c);
		else
			method_not_allowed(req, "GET");
	} else if (!strcmp(path, "/v1/keys")) {
		if (cmd == EVHTTP_REQ_GET)
			key_list(c);
		else if (cmd == EVHTTP_REQ_POST)
			c->action = "key.create", key_create(c);
		else
			method_not_allowed(req, "GET, POST");
	} else if (split_id(path, "/v1/keys/", id, sizeof(id), &rest) && !strcmp(rest, "/revoke")) {
		if (cmd == EVHTTP_REQ_POST)
			c->action = "key.revoke", key_update(c, id, true);
		else
			method_not_allowed(req, "POST");
	} else if (split_id(path, "/v1/keys/", id, sizeof(id), &rest) && !*rest) {
		if (cmd == EVHTTP_REQ_GET)
			key_show(c, id);
		else if (cmd == EVHTTP_REQ_PATCH)
			c->action = "key.update", key_update(c, id, false);
		else if (cmd == EVHTTP_REQ_DELETE)
			c->action = "key.delete", key_delete(c, id);
		else
			method_not_allowed(req, "GET, PATCH, DELETE");
	} else if (!strcmp(path, "/v1/teams")) {
		if (cmd == EVHTTP_REQ_GET)
			team_list(c);
		else
			method_not_allowed(req, "GET");
	} else if (split_id(path, "/v1/teams/", id, sizeof(id), &rest) && !*rest) {
		if (cmd == EVHTTP_REQ_GET)
			team_show(c, id);
		else if (cmd == EVHTTP_REQ_PUT)
			c->action = "team.put", team_put(c, id);
		else if (cmd == EVHTTP_REQ_DELETE)
			c->action = "team.delete", team_delete(c, id);
		else
			method_not_allowed(req, "GET, PUT, DELETE");
	} else if (!strcmp(path, "/v1/usage")) {
		if (cmd == EVHTTP_REQ_GET)
			usage_get(c);
		else
			method_not_allowed(req, "GET");
	} else if (!strcmp(path, "/v1/usage/reset")) {
		if (cmd == EVHTTP_REQ_POST)
			c->action = "usage.reset", usage_reset(c);
		else
			method_not_allowed(req, "POST");
	} else {
		send_error(req, 404, NULL, "no such admin endpoint: %s", path);
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	struct ctx c = { .a = a, .req = req };

	if (!a->r) {
		send_error(req, 503, NULL, "the daemon is reloading its configuration; retry");
		return;
	}
	c.g = router_gate(a->r);
	c.ks = gate_keystore(c.g);
	evhttp_connection_get_peer(evcon, &peer, &port);
	c.peer = peer;
	if (!path)
		path = "";
	/* DNS rebinding: a web page must not reach a loopback admin plane through its own name. */
	if (a->loopback && (!host || !listener_is_loopback(host))) {
		send_error(req, 403, NULL, "Host not allowed: the admin plane listens on loopback");
		return;
	}
	if (!authorized(a, req)) {
		cJSON *o = audit_new(&c, "auth");
		cJSON_AddStringToObject(o, "path", path);
		audit_emit(o, "refused", 401);
		set_header(req, "WWW-Authenticate", "Bearer realm=\"mcpwarden-admin\"");
		send_error(req, 401, NULL, "admin token required: Authorization: Bearer <token>");
		return;
	}
	route(&c, path, cmd);
	if (c.action && c.refused) {
		/* Refused changes are on the record too, with the reason the caller was given. */
		cJSON *o = audit_new(&c, c.action);
		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddStringToObject(o, "error", c.why);
		audit_emit(o, "refused", c.refused);
	}
}



/* --- life cycle ----------------------------------------------------------------------------- */

static int add_config_id(void *arg, const struct key_record *k)
{
	return hmap_put(arg, k->id, (void *)1, NULL);
}

static int add_config_team(void *arg, const char *name, const char *policy, size_t nkeys)
{
	return hmap_put(arg, name, (void *)1, NULL);
}

/* Which keys and teams the config file defines: read again exactly as the gate read them. */
static int config_sets(struct admin *a)
{
	struct config_errors errs = { 0 };
	struct keystore *tmp = NULL;
	int rc;

	a->config_keys = hmap_new();
	a->config_teams = hmap_new();
	if (!a->config_keys || !a->config_teams || keys_new(NULL, &tmp))
		return -ENOMEM;
	rc = keys_config_parse(a->cfg->raw, NULL, tmp, &errs);
	if (!rc)
		rc = keys_foreach(tmp, add_config_id, a->config_keys);
	if (!rc)
		rc = keys_team_foreach(tmp, add_config_team, a->config_teams);
	keys_free(tmp);
	return rc;
}

int admin_new(struct event_base *base, const struct config *cfg, struct router *r,
	      struct admin **out)
{
	struct admin *a;
	int rc = -ENOMEM;

	*out = NULL;
	if (!cfg->admin_host)
		return 0;
	if (!cfg->admin_token || !cfg->admin_token[0])
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->base = base;
	a->cfg = cfg;
	a->r = r;
	if (keys_hash(cfg->admin_token, strlen(cfg->admin_token), a->token_hash)) {
		rc = -EIO;
		goto fail;
	}
	if ((rc = config_sets(a)))
		goto fail;
	rc = -ENOMEM;
	a->http = evhttp_new(base);
	if (!a->http)
		goto fail;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					    EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	evhttp_set_max_headers_size(a->http, (ev_ssize_t)cfg->max_header_bytes);
	evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
	evhttp_set_gencb(a->http, on_request, a);
	rc = listener_bind(a->http, "admin", cfg->admin_host, cfg->admin_port, &a->port);
	if (rc)
		goto fail;
	a->loopback = listener_is_loopback(cfg->admin_host);
	if (!a->loopback)
		log_warn("admin: listening on %s, not loopback: anyone who can reach it and has the "
			 "token manages keys", cfg->admin_host);
	*out = a;
	return 0;
fail:
	admin_free(a);
	return rc;
}

/* Changes waiting for the store finish on their own, without an answer. */
static void orphan_pending(struct admin *a)
{
	for (struct pending *p = a->pending, *n; p; p = n) {
		n = p->next;
		if (p->evcon)
			evhttp_connection_set_closecb(p->evcon, NULL, NULL);
		p->a = NULL;
		p->req = NULL;
		p->evcon = NULL;
		p->prev = p->next = NULL;
	}
	a->pending = NULL;
}

int admin_reconfigure(struct admin *a, const struct config *cfg, struct router *r)
{
	orphan_pending(a);
	hmap_free(a->config_keys, NULL);
	hmap_free(a->config_teams, NULL);
	a->config_keys = a->config_teams = NULL;
	a->r = NULL;
	if (!r)
		return 0;
	a->cfg = cfg;
	if (keys_hash(cfg->admin_token, strlen(cfg->admin_token), a->token_hash))
		return -EIO;
	int rc = config_sets(a);
	if (rc == 0)
		a->r = r;
	return rc;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	orphan_pending(a);
	if (a->http)
		evhttp_free(a->http);
	hmap_free(a->config_keys, NULL);
	hmap_free(a->config_teams, NULL);
	OPENSSL_cleanse(a->token_hash, sizeof(a->token_hash));
	free(a);
}

int admin_port(const struct admin *a)
{
	return a ? a->port : 0;
}
