/* admin_int: what the parts of the admin plane share — its state, one request's context, a
 * change waiting for the store, and the helpers every handler uses. admin.h is the interface;
 * this is not one. */
#ifndef WARDEN_ADMIN_INT_H
#define WARDEN_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/http.h>

#include "admin/admin.h"
#include "base/http_reply.h"
#include "base/list.h"
#include "govern/keys.h"

struct budget;
struct conn_deadline;
struct gate;
struct logquery;

#define ADMIN_MAX_BODY 65536
#define ADMIN_TIMEOUT_S 10
#define ID_RETRIES 8
#define ADMIN_MAX_STREAMS 16            /* /api/logs/stream clients at once */
#define ADMIN_STREAM_BUF_MAX (256u << 10) /* unsent bytes past which a tail client is cut */
#define ADMIN_STREAM_HEARTBEAT_S 5      /* below the listener's timeout */
#define ADMIN_FOLLOW_MS 1000            /* the fleet's live tail: how often the shared store is read */
#define ADMIN_MAX_LOGINS 32             /* dashboard sessions; the oldest goes first */
#define ADMIN_LOGIN_TTL_S (12 * 3600)

enum pend_kind { P_KEY_CREATE, P_KEY_UPDATE, P_KEY_DELETE, P_TEAM_PUT, P_TEAM_DELETE, P_RESET,
		 P_TOOL_APPROVE, P_READ /* a read waiting for Redis: no record, nothing to undo */ };

/* A change applied in memory and waiting for the store before it is acknowledged. */
struct pending {
	struct list_head link;          /* in admin->pending while the admin plane lives */
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
	struct conn_deadline *deadline; /* whole-request deadline, connection caps */
	int port;
	bool loopback;
	unsigned char token_hash[KEYS_HASH_LEN];
	struct peer_guard *guard;       /* failed token attempts per peer; lives across reloads */
	struct list_head pending;       /* changes waiting for the store */
	/* the logs API and the dashboard (admin_logs.c, admin_dashboard.c) */
	struct logquery *logs;          /* reader of logs.db */
	char *logs_path;
	struct list_head streams;       /* live tail clients */
	size_t nstreams;
	struct event *heartbeat;
	struct event *follow;           /* the fleet's live tail: the next poll of the shared store */
	cJSON *follow_heads;            /* each sidecar's chain, read up to (logquery_follow) */
	bool following;                 /* a poll in flight */
	struct list_head log_reqs;      /* queries in flight */
	struct login {
		unsigned char hash[KEYS_HASH_LEN];  /* of the cookie's value */
		int64_t expires;            /* monotonic s; 0: free slot */
	} logins[ADMIN_MAX_LOGINS];
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

/* Every key (struct key_record, its hash zeroed) or team (struct team_ent), sorted by name
 * (a key's id): n entries of `size` bytes at v, each with its name `name` bytes in. */
struct admin_list {
	void *v;
	size_t n, cap;
	size_t size, name;
};

struct team_ent {
	char name[KEYS_ID_SIZE], policy[KEYS_ID_SIZE];
	size_t nkeys;
};

static inline const void *admin_list_at(const struct admin_list *l, size_t i)
{
	return (const char *)l->v + i * l->size;
}

/* HTTP and JSON helpers (admin.c). Errors are {"error": message, "field": name}. */
void admin_send_json(struct evhttp_request *req, int status, const cJSON *body);
void admin_send_error(struct evhttp_request *req, int status, const char *field,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Refuse the request being handled (400/404/409...), remembered for its record. */
void admin_fail(struct ctx *c, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The request body as a JSON object, or NULL (the refusal already sent). */
cJSON *admin_body_object(struct ctx *c);
bool admin_known_fields(struct ctx *c, const cJSON *o, const char *const *allowed);
void admin_time_json(cJSON *o, const char *name, int64_t t);
void admin_money_json(cJSON *o, const char *name, int64_t micro);
/* The admin record of an action (docs/admin-api.md#records), and its emission. */
cJSON *admin_record_new(const struct ctx *c, const char *action);
void admin_record_emit(cJSON *o, const char *result, int status);
cJSON *admin_key_json(const struct admin *a, const struct key_record *k);

/* Changes acknowledged only once durable (admin_pending.c). */
struct pending *admin_pending_new(struct ctx *c, enum pend_kind kind, int status, cJSON *ok,
				  cJSON *audit);
void admin_pending_start(struct ctx *c, struct pending *p, int rc);
void admin_on_stored(void *arg, int err);
int admin_persist_key(struct ctx *c, const struct key_record *k, struct pending *p);
/* The admin plane goes away: changes in flight finish on their own, unanswered. */
void admin_pending_orphan(struct admin *a);

/* Handlers (admin_keys.c, admin_usage.c): id is the path's {id}, NULL where there is none. */
void admin_key_create(struct ctx *c, const char *id);
void admin_key_list(struct ctx *c, const char *id);
void admin_key_show(struct ctx *c, const char *id);
void admin_key_patch(struct ctx *c, const char *id);
void admin_key_revoke(struct ctx *c, const char *id);
void admin_key_delete(struct ctx *c, const char *id);
void admin_team_list(struct ctx *c, const char *id);
void admin_team_show(struct ctx *c, const char *name);
void admin_team_put(struct ctx *c, const char *name);
void admin_team_delete(struct ctx *c, const char *name);
void admin_usage_get(struct ctx *c, const char *id);
void admin_usage_reset(struct ctx *c, const char *id);
void admin_metrics_get(struct ctx *c, const char *id);
/* The logs API (admin_logs.c): GET /api/logs, /api/logs/<id>, /stats, /stream, /api/kernel. */
void admin_logs_list(struct ctx *c, const char *id);
void admin_logs_show(struct ctx *c, const char *id);
void admin_logs_stats(struct ctx *c, const char *id);
void admin_logs_stream(struct ctx *c, const char *id);
void admin_kernel_get(struct ctx *c, const char *id);
int admin_logs_init(struct admin *a, const struct config *cfg);
/* A reload: the reader follows a new state_dir. */
int admin_logs_reconfigure(struct admin *a, const struct config *cfg);
void admin_logs_free(struct admin *a);

/* The dashboard (admin_dashboard.c): /logs, its assets, login and logout, before any token
 * check; true when it answered. */
bool admin_dashboard_route(struct admin *a, struct evhttp_request *req, const char *path,
			   enum evhttp_cmd_type cmd, const char *peer);
/* Does the request carry a live dashboard login cookie? */
bool admin_cookie_ok(struct admin *a, struct evhttp_request *req);
void admin_logins_clear(struct admin *a);
/* The headers every dashboard and logs API answer carries (CSP, nosniff, no framing). */
void admin_security_headers(struct evhttp_request *req);


/* admin_tools.c: id is "<server>/<tool>" (the tool URL-encoded) where there is one. */
void admin_tool_pins_list(struct ctx *c, const char *id);
void admin_tool_approve(struct ctx *c, const char *id);
/* Every key (team), sorted by id (name), in l->v: the caller frees it. Allocation follows
 * the OOM policy, so these cannot fail. */
void admin_sorted_keys(struct keystore *ks, struct admin_list *l);
void admin_sorted_teams(struct keystore *ks, struct admin_list *l);
/* Appends to arr each entry of l named `only` (each one when NULL), as json shows it. */
void admin_list_json(cJSON *arr, const struct admin_list *l, const char *only,
		     cJSON *(*json)(const void *entry, void *arg), void *arg);

#endif
