/* admin_pending: a change is answered only once the store has it (or rolled back). */
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
#include "base/listener.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"

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
	list_del(&p->link);
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
	case P_TOOL_APPROVE:
		return "the approval holds until a restart: retry";
	case P_READ:
		return "";
	}
	return "";
}

void admin_on_stored(void *arg, int err)
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
				json_get(p->audit, "action")), strerror(-err));
			if (p->req)
				admin_send_error(p->req, 500, NULL, "the store could not commit the change "
					   "(%s): %s", strerror(-err), what);
		} else if (p->req) {
			admin_send_json(p->req, status, p->ok);
		}
	} else if (!err) {
		status = 200;
	}
	if (p->audit)   /* reads (P_READ) have none */
		admin_record_emit(p->audit, err ? "failed" : "ok", err ? 500 : status);
	cJSON_Delete(p->ok);
	OPENSSL_cleanse(p->before.hash, sizeof(p->before.hash));
	free(p);
}

/* The change is queued: rc 0 means the store calls back; 1 (nothing to persist) and errors
 * finish now. */
void admin_pending_start(struct ctx *c, struct pending *p, int rc)
{
	struct admin *a = c->a;

	p->a = a;
	list_add(&p->link, &a->pending);
	if (rc != 0) {
		admin_on_stored(p, rc == 1 ? 0 : rc);
		return;
	}
	p->evcon = evhttp_request_get_connection(c->req);
	evhttp_connection_set_closecb(p->evcon, pending_gone, p);
}

struct pending *admin_pending_new(struct ctx *c, enum pend_kind kind, int status, cJSON *ok,
				   cJSON *audit)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p) {
		cJSON_Delete(ok);
		admin_record_emit(audit, "failed", 500);
		admin_fail(c, 500, NULL, "out of memory");
		return NULL;
	}
	p->req = c->req;
	p->kind = kind;
	p->status = status;
	p->ok = ok;
	p->audit = audit;
	return p;
}

int admin_persist_key(struct ctx *c, const struct key_record *k, struct pending *p)
{
	struct store_key sk = {
		.id = k->id, .name = k->name, .team = k->team[0] ? k->team : NULL,
		.policy = k->policy[0] ? k->policy : NULL, .created = k->created,
		.workloads = k->workloads[0] ? k->workloads : NULL,
		.expires = k->expires, .disabled = k->disabled,
	};
	struct store *st = gate_store(c->g);
	int rc;

	memcpy(sk.hash, k->hash, sizeof(sk.hash));
	rc = st ? store_key_put(st, &sk, admin_on_stored, p) : 1;
	OPENSSL_cleanse(sk.hash, sizeof(sk.hash));
	return rc;
}

void admin_pending_orphan(struct admin *a)
{
	struct pending *p, *n;

	list_for_each_entry_safe(p, n, &a->pending, link) {
		if (p->evcon)
			evhttp_connection_set_closecb(p->evcon, NULL, NULL);
		p->a = NULL;
		p->req = NULL;
		p->evcon = NULL;
		list_del(&p->link);
	}
}
