/* toolpin: the pin table, trust on first use, changes, approvals and the lockfile. */
#include "govern/toolpin.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/jsonfmt.h"
#include "base/log.h"
#include "observe/audit.h"
#include "store/store.h"

#define PIN_KEY_MAX 512         /* server (≤ 32) + tool name: longer names are not pinned apart */
#define PINS_MAX 65536          /* tools pinned or seen: past it, a new one is never trusted */

struct pin {
	char *server, *tool;
	char digest[TOOL_DIGEST_HEX];   /* approved; "" none (require_approval) */
	char *def;                      /* the approved canonical definition; NULL: unknown */
	int64_t approved_at;            /* unix seconds */
	char *approved_by;
	char cur[TOOL_DIGEST_HEX];      /* last listed; "" not listed since start */
	char *cur_def;                  /* its canonical definition */
	char recorded[TOOL_DIGEST_HEX]; /* the listed digest whose change is on record */
};

/* Judged on the catalogue's loop, and by any loop for a session's own tools (workers: N), and
 * approved through the admin plane: one lock around each look and change. */
struct toolpins {
	pthread_mutex_t mu;
	struct store *st;
	struct toolpin_config cfg;
	struct hmap *pins;              /* "server\x1ftool" -> struct pin */
	bool full_warned;
};

static const char *const mode_names[] = { "off", "warn", "withhold" };

enum tool_integrity tool_integrity_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (s && !strcmp(s, mode_names[i]))
			return (enum tool_integrity)i;
	return TOOL_INTEGRITY_UNSET;
}

const char *tool_integrity_name(enum tool_integrity m)
{
	return m >= TOOL_INTEGRITY_OFF && m <= TOOL_INTEGRITY_WITHHOLD ? mode_names[m] : "unset";
}

const char *pin_state_name(enum pin_state s)
{
	return s == PIN_CHANGED ? "changed" : s == PIN_NEW ? "new" : "pinned";
}

int toolpin_config_parse(const cJSON *root, struct toolpin_config *out,
			 struct config_errors *errs)
{
	static const struct cfg_field fields[] = {
		CFG_KNOWN_FIELD("mode"),
		CFG_FIELD(struct toolpin_config, require_approval, CFG_BOOL, 0, 0, 0),
		CFG_FIELD(struct toolpin_config, lockfile, CFG_STRING, 0, 0, 0),
		CFG_KNOWN_FIELD("_comment"),
		CFG_END,
	};
	const cJSON *sec = json_get(root, "tool_pins");
	const char *s;
	int rc, e;

	*out = (struct toolpin_config){ TOOL_INTEGRITY_WITHHOLD, false, NULL };
	if (!sec)
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, "tool_pins", "must be an object");
	rc = cfg_fields(sec, "tool_pins", fields, out, errs);
	e = cfg_string(sec, "mode", "tool_pins", false, &s, errs);
	if (e == 0 && (out->mode = tool_integrity_parse(s)) == TOOL_INTEGRITY_UNSET)
		e = config_fail(errs, "tool_pins.mode", "must be \"withhold\", \"warn\" or \"off\"");
	if (e && e != -ENOENT)
		rc = -EINVAL;
	if (out->mode == TOOL_INTEGRITY_UNSET)
		out->mode = TOOL_INTEGRITY_WITHHOLD;
	return rc;
}

static void pin_free(void *v)
{
	struct pin *p = v;

	free(p->server);
	free(p->tool);
	free(p->def);
	free(p->approved_by);
	free(p->cur_def);
	free(p);
}

struct toolpins *toolpins_new(struct store *st)
{
	struct toolpins *tp = xcalloc(1, sizeof(*tp));

	tp->st = st;
	tp->cfg.mode = TOOL_INTEGRITY_WITHHOLD;
	tp->pins = hmap_new();
	if (!tp->pins) {
		free(tp);
		return NULL;
	}
	pthread_mutex_init(&tp->mu, NULL);
	return tp;
}

void toolpins_free(struct toolpins *tp)
{
	if (!tp)
		return;
	hmap_free(tp->pins, pin_free);
	pthread_mutex_destroy(&tp->mu);
	free(tp);
}

static void lock(const struct toolpins *tp)
{
	pthread_mutex_lock(&((struct toolpins *)tp)->mu);
}

static void unlock(const struct toolpins *tp)
{
	pthread_mutex_unlock(&((struct toolpins *)tp)->mu);
}

void toolpins_set_config(struct toolpins *tp, const struct toolpin_config *cfg)
{
	lock(tp);
	tp->cfg = *cfg;
	tp->cfg.lockfile = NULL;  /* borrowed from a config that may go: not kept */
	unlock(tp);
}

static int pin_key(const char *server, const char *tool, char *key, size_t len)
{
	int n = snprintf(key, len, "%s\x1f%s", server, tool);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static struct pin *find(const struct toolpins *tp, const char *server, const char *tool)
{
	char key[PIN_KEY_MAX];

	return pin_key(server, tool, key, sizeof(key)) ? NULL : hmap_get(tp->pins, key);
}

static struct pin *get(struct toolpins *tp, const char *server, const char *tool)
{
	char key[PIN_KEY_MAX];
	struct pin *p;

	if (pin_key(server, tool, key, sizeof(key)))
		return NULL;
	if ((p = hmap_get(tp->pins, key)))
		return p;
	if (hmap_count(tp->pins) >= PINS_MAX) {
		/* an upstream inventing tool names cannot grow memory and the store without end */
		if (!tp->full_warned)
			log_error("tool pins: %d tools pinned or seen: new tools (the first: %s/%s) "
				  "are not pinned and count as not approved", PINS_MAX, server, tool);
		tp->full_warned = true;
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->server = xstrdup(server);
	p->tool = xstrdup(tool);
	if (hmap_put(tp->pins, key, p, NULL)) {
		pin_free(p);
		return NULL;
	}
	return p;
}

static void stored(void *arg, int err)
{
	if (err)
		log_error("tool pins: a pin could not be stored: %s; it holds until a restart",
			  strerror(-err));
}

/* Set the approved definition and persist it. */
static int approve(struct toolpins *tp, struct pin *p, const char *digest, const char *def,
		   const char *by, void (*cb)(void *arg, int err), void *arg)
{
	snprintf(p->digest, sizeof(p->digest), "%s", digest);
	free(p->def);
	p->def = def ? xstrdup(def) : NULL;
	free(p->approved_by);
	p->approved_by = xstrdup(by);
	p->approved_at = clock_real_s();
	if (!tp->st)
		return 1;
	struct store_tool_pin sp = { p->server, p->tool, p->digest, p->def, p->approved_by,
				     p->approved_at };
	return store_tool_pin_put(tp->st, &sp, cb ? cb : stored, cb ? arg : NULL);
}

/* A pin nobody waits for (first use, lockfile): a store that cannot take it is logged, and
 * the pin holds in memory until a restart. */
static void pin_now(struct toolpins *tp, struct pin *p, const char *digest, const char *def,
		    const char *by)
{
	int rc = approve(tp, p, digest, def, by, NULL, NULL);

	if (rc < 0)
		stored(NULL, rc);
}

static int load_one(void *arg, const struct store_tool_pin *sp)
{
	struct toolpins *tp = arg;
	struct pin *p = get(tp, sp->server, sp->tool);

	if (!p)
		return 0;
	snprintf(p->digest, sizeof(p->digest), "%s", sp->digest ? sp->digest : "");
	p->def = sp->definition ? xstrdup(sp->definition) : NULL;
	p->approved_by = xstrdup(sp->approved_by ? sp->approved_by : "");
	p->approved_at = sp->approved_at;
	return 0;
}

int toolpins_load(struct toolpins *tp)
{
	int rc;

	lock(tp);
	rc = tp->st ? store_load_tool_pins(tp->st, load_one, tp) : 0;
	unlock(tp);
	return rc;
}

/* A v1 digest (a lockfile's) that the pin's approved definition still has: the pin, upgraded
 * to v2 since, is that very approval. */
static bool v1_of(const struct pin *p, const char *digest)
{
	char v1[TOOL_DIGEST_HEX];
	cJSON *def;
	bool same;

	if (tool_digest_version(digest) != 1 || tool_digest_version(p->digest) != 2 || !p->def)
		return false;
	def = cJSON_Parse(p->def);
	same = def && !tool_digest_v1(def, v1) && !strcmp(v1, digest);
	cJSON_Delete(def);
	return same;
}

int toolpins_apply_lock(struct toolpins *tp, const cJSON *lockfile)
{
	const cJSON *srv, *t;
	int n = 0;

	lock(tp);
	cJSON_ArrayForEach(srv, lockfile) {
		cJSON_ArrayForEach(t, srv) {
			if (!cJSON_IsString(t) || !tool_digest_version(t->valuestring))
				continue;  /* checked when the config was read */
			struct pin *p = get(tp, srv->string, t->string);
			if (!p || !strcmp(p->digest, t->valuestring) || v1_of(p, t->valuestring))
				continue;
			/* the definition is known when the upstream lists that very one */
			const char *def = !strcmp(p->cur, t->valuestring) ? p->cur_def : NULL;
			audit_tool_pin(p->server, p->tool, t->valuestring, "lockfile", "lockfile");
			pin_now(tp, p, t->valuestring, def, "lockfile");
			n++;
		}
	}
	unlock(tp);
	return n;
}

static enum pin_state state_of(const struct pin *p, const char *digest)
{
	if (!p || !p->digest[0])
		return PIN_NEW;
	return strcmp(p->digest, digest) ? PIN_CHANGED : PIN_OK;
}

enum pin_state toolpins_state(const struct toolpins *tp, const char *server, const char *tool,
			      const char *digest)
{
	enum pin_state s;

	lock(tp);
	s = state_of(find(tp, server, tool), digest);
	unlock(tp);
	return s;
}

/* A pin of digest version 1 whose v1 digest the listed definition still has: what it
 * covered is unchanged, and the _meta that v2 adds is what the approved server serves now.
 * It becomes this v2 digest, with its approval (who, when) kept. */
static void upgrade(struct toolpins *tp, struct pin *p, const cJSON *def, const char *digest)
{
	char v1[TOOL_DIGEST_HEX];
	int rc;

	if (tool_digest_v1(def, v1) || strcmp(v1, p->digest))
		return;
	snprintf(p->digest, sizeof(p->digest), "%s", digest);
	free(p->def);
	p->def = p->cur_def ? xstrdup(p->cur_def) : NULL;
	log_info("upstream %s: tool %s: pin upgraded to digest v2 (%.15s…), approval kept",
		 p->server, p->tool, digest);
	if (!tp->st)
		return;
	struct store_tool_pin sp = { p->server, p->tool, p->digest, p->def,
				     p->approved_by ? p->approved_by : "", p->approved_at };
	rc = store_tool_pin_put(tp->st, &sp, stored, NULL);
	if (rc < 0)
		stored(NULL, rc);
}

static enum pin_state see_locked(struct toolpins *tp, const char *server, const char *tool,
				 const cJSON *def, const char *digest)
{
	struct pin *p = get(tp, server, tool);
	enum pin_state s;

	if (!p)
		return PIN_NEW;  /* a name too long to pin apart, or the table full: never trusted */
	if (strcmp(p->cur, digest)) {
		snprintf(p->cur, sizeof(p->cur), "%s", digest);
		free(p->cur_def);
		p->cur_def = tool_canonical(def);
	}
	if (tool_digest_version(p->digest) == 1 && strcmp(p->digest, digest))
		upgrade(tp, p, def, digest);
	if (!p->digest[0] && !tp->cfg.require_approval) {
		audit_tool_pin(server, tool, digest, "first use", "first_use");
		pin_now(tp, p, digest, p->cur_def, "first use");
		p->recorded[0] = '\0';
		return PIN_OK;
	}
	s = state_of(p, digest);
	if (s == PIN_OK) {
		p->recorded[0] = '\0';
		return s;
	}
	if (strcmp(p->recorded, digest)) {
		/* once per new definition, not on every refresh */
		cJSON *old = p->def ? cJSON_Parse(p->def) : NULL;
		cJSON *diff = tool_diff(s == PIN_NEW ? NULL : old, def);
		if (s == PIN_NEW) {
			cJSON_DeleteItemFromObjectCaseSensitive(diff, "previous_unknown");
			cJSON_AddBoolToObject(diff, "new_tool", 1);
		}
		audit_tool_change(server, tool, p->digest[0] ? p->digest : NULL, digest, diff);
		log_warn("upstream %s: tool %s %s (digest %.12s…, approved %.12s…): "
			 "approve it with wardenctl tools approve %s/%s", server, tool,
			 s == PIN_NEW ? "is new and waits for approval" : "changed since its approval",
			 digest, p->digest[0] ? p->digest : "none", server, tool);
		cJSON_Delete(old);
		cJSON_Delete(diff);
		snprintf(p->recorded, sizeof(p->recorded), "%s", digest);
	}
	return s;
}

enum pin_state toolpins_see(struct toolpins *tp, const char *server, const char *tool,
			    const cJSON *def, const char *digest)
{
	enum pin_state s;

	lock(tp);
	s = see_locked(tp, server, tool, def, digest);
	unlock(tp);
	return s;
}

static int approve_locked(struct toolpins *tp, const char *server, const char *tool,
			  const char *by, void (*cb)(void *arg, int err), void *arg)
{
	struct pin *p = find(tp, server, tool);

	if (!p || !p->cur[0])
		return -ENOENT;
	if (!strcmp(p->digest, p->cur))
		return 1;
	audit_tool_pin(server, tool, p->cur, by, "approved");
	p->recorded[0] = '\0';
	return approve(tp, p, p->cur, p->cur_def, by, cb, arg);
}

int toolpins_approve(struct toolpins *tp, const char *server, const char *tool, const char *by,
		     void (*cb)(void *arg, int err), void *arg)
{
	int rc;

	lock(tp);
	rc = approve_locked(tp, server, tool, by, cb, arg);
	unlock(tp);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	const struct pin *x = *(struct pin *const *)a, *y = *(struct pin *const *)b;
	int c = strcmp(x->server, y->server);

	return c ? c : strcmp(x->tool, y->tool);
}

static cJSON *json_locked(const struct toolpins *tp)
{
	size_t n = hmap_count(tp->pins), i = 0;
	struct pin **v = xcalloc(n ? n : 1, sizeof(*v));
	struct hmap_iter it = hmap_iter(tp->pins);
	cJSON *arr = cJSON_CreateArray();
	void *val;

	while (i < n && hmap_next(tp->pins, &it, NULL, &val))
		v[i++] = val;
	qsort(v, i, sizeof(*v), by_name);
	for (size_t k = 0; k < i; k++) {
		const struct pin *p = v[k];
		cJSON *o = cJSON_CreateObject();
		const char *state = !p->cur[0] ? "absent" : pin_state_name(state_of(p, p->cur));
		cJSON_AddStringToObject(o, "server", p->server);
		cJSON_AddStringToObject(o, "tool", p->tool);
		cJSON_AddStringToObject(o, "state", state);
		jsonfmt_add_or_null(o, "digest", p->digest);
		if (p->cur[0])
			cJSON_AddStringToObject(o, "current_digest", p->cur);
		if (p->digest[0]) {
			cJSON_AddNumberToObject(o, "approved_at", (double)p->approved_at);
			cJSON_AddStringToObject(o, "approved_by", p->approved_by ? p->approved_by : "");
		}
		if (p->cur[0] && strcmp(p->cur, p->digest)) {
			cJSON *old = p->def ? cJSON_Parse(p->def) : NULL;
			cJSON *cur = p->cur_def ? cJSON_Parse(p->cur_def) : NULL;
			cJSON_AddItemToObject(o, "diff", tool_diff(p->digest[0] ? old : NULL, cur));
			cJSON_Delete(old);
			cJSON_Delete(cur);
		}
		cJSON_AddItemToArray(arr, o);
	}
	free(v);
	return arr;
}

cJSON *toolpins_json(const struct toolpins *tp)
{
	cJSON *arr;

	lock(tp);
	arr = json_locked(tp);
	unlock(tp);
	return arr;
}
