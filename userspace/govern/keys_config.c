/* keys_config: the "keys" and "teams" sections of the config, checked and loaded into a
 * keystore (the admin plane checks what it is given with the same rules). */
#include "govern/keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"
#include "base/json_get.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "govern/policy.h"

#include <openssl/crypto.h>

/* ---- config ---- */

/* RFC 3339 date-time ("2026-01-31T12:00:00Z", fraction and numeric offset allowed), to the
 * second. */
int keys_parse_time(const char *s, int64_t *out)
{
	int64_t ms;

	if (strlen(s) < 11 || s[10] == ' ' || rfc3339_parse_ms(s, &ms))
		return -EINVAL;
	*out = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	return 0;
}

/* An error at path.key: the message names the field, as the cfg_* helpers do. */
static int __attribute__((format(printf, 4, 5)))
fail_at(struct config_errors *errs, const char *path, const char *key, const char *fmt, ...)
{
	char fp[128], msg[256];
	va_list ap;

	snprintf(fp, sizeof(fp), "%s.%s", path, key);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return config_fail(errs, fp, "%s", msg);
}

static int cfg_ident(const cJSON *obj, const char *key, const char *path, bool required,
		     const char **out, struct config_errors *errs)
{
	int rc = cfg_string(obj, key, path, required, out, errs);

	if (rc == 0 && !keys_valid_ident(*out))
		rc = fail_at(errs, path, key, "must be 1-64 of A-Z a-z 0-9 _ - .");
	return rc;
}

static int cfg_time(const cJSON *obj, const char *key, const char *path, int64_t *out,
		    struct config_errors *errs)
{
	const char *s;
	int rc = cfg_string(obj, key, path, false, &s, errs);

	if (rc == 0 && keys_parse_time(s, out))
		rc = fail_at(errs, path, key,
			     "not an RFC 3339 date-time (e.g. 2027-01-31T00:00:00Z)");
	return rc;
}

/* An entry of teams[], keys[] or workloads[]: not an object, its error (nothing more to
 * read); unknown fields make *rc -EINVAL, and the known ones are still checked. */
static int entry_fields(const cJSON *j, const char *path, const char *const *fields,
			struct config_errors *errs, int *rc)
{
	if (!cJSON_IsObject(j))
		return config_fail(errs, path, "must be an object");
	if (cfg_known_keys(j, path, fields, errs))
		*rc = -EINVAL;
	return 0;
}

static int parse_team(const cJSON *t, const char *path, const struct policy_set *ps,
		      struct keystore *ks, bool pods, struct config_errors *errs)
{
	(void)pods;
	static const char *const fields[] = { "name", "policy", NULL };
	const char *name = NULL, *policy = NULL;
	int rc = 0, r;

	if ((r = entry_fields(t, path, fields, errs, &rc)))
		return r;
	if (cfg_ident(t, "name", path, true, &name, errs))
		rc = -EINVAL;
	if (cfg_ident(t, "policy", path, true, &policy, errs))
		rc = -EINVAL;
	if (rc)
		return rc;
	if (ps && !policy_set_has(ps, policy))
		rc = fail_at(errs, path, "policy", "no policy named \"%s\"", policy);
	if (keys_team_policy(ks, name))
		rc = fail_at(errs, path, "name", "team \"%s\" is defined twice", name);
	if (rc)
		return rc;
	r = keys_team_set(ks, name, policy);
	if (r)
		rc = config_fail(errs, path, "%s", strerror(-r));
	return rc;
}

/* keys[].workloads: an array of patterns, joined with '\n' into out. */
static int parse_workloads(const cJSON *j, const char *path, bool pods,
			   char out[KEYS_WORKLOADS_SIZE], struct config_errors *errs)
{
	const cJSON *a = json_get(j, "workloads");
	const char *why;

	if (!a)
		return 0;
	if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0)
		return fail_at(errs, path, "workloads", "must not be empty (leave it out: any caller)");
	if (keys_workloads_from_json(a, pods, out, &why))
		return fail_at(errs, path, "workloads", "%s", why);
	return 0;
}

/* "team" and "policy" of a key or a keyless workload (what: its word in the error): each
 * must name one that exists, and without a team the policy is required. 0 or -EINVAL. */
static int parse_team_policy(const cJSON *j, const char *path, const char *what,
			     struct keystore *ks, const struct policy_set *ps, char *team_out,
			     size_t team_len, char *policy_out, size_t policy_len,
			     struct config_errors *errs)
{
	const char *team = NULL, *policy = NULL;
	int rc = 0, r = cfg_ident(j, "team", path, false, &team, errs);

	if (r == 0) {
		snprintf(team_out, team_len, "%s", team);
		if (!keys_team_policy(ks, team))
			rc = fail_at(errs, path, "team", "no team named \"%s\" in teams", team);
	} else if (r != -ENOENT) {
		rc = -EINVAL;
	}
	r = cfg_ident(j, "policy", path, false, &policy, errs);
	if (r == 0) {
		snprintf(policy_out, policy_len, "%s", policy);
		if (ps && !policy_set_has(ps, policy))
			rc = fail_at(errs, path, "policy", "no policy named \"%s\"", policy);
	} else if (r == -ENOENT) {
		if (!team)
			rc = fail_at(errs, path, "policy", "required for a %s without a team", what);
	} else {
		rc = -EINVAL;
	}
	return rc;
}

static int parse_key(const cJSON *j, const char *path, const struct policy_set *ps,
		     struct keystore *ks, bool pods, struct config_errors *errs)
{
	static const char *const fields[] = {
		"id", "name", "team", "hash", "created", "expires", "disabled", "policy", "workloads",
		NULL
	};
	struct key_record k = { 0 };
	const char *id = NULL, *name = NULL, *hash = NULL;
	int rc = 0, r;

	if ((r = entry_fields(j, path, fields, errs, &rc)))
		return r;
	r = cfg_string(j, "hash", path, true, &hash, errs);
	if (r == 0 && keys_hash_parse(hash, k.hash))
		r = fail_at(errs, path, "hash", "must be \"sha256:\" and 64 hex digits "
				"(wardenctl keys hash prints it; never put the key itself here)");
	if (r)
		rc = -EINVAL;
	r = cfg_ident(j, "id", path, false, &id, errs);
	if (r == 0)
		snprintf(k.id, sizeof(k.id), "%s", id);
	else if (r == -ENOENT && !rc)
		snprintf(k.id, sizeof(k.id), "k_%02x%02x%02x%02x", k.hash[0], k.hash[1], k.hash[2],
			 k.hash[3]);
	else if (r != -ENOENT)
		rc = -EINVAL;
	r = cfg_string(j, "name", path, false, &name, errs);
	if (r == 0 && !keys_valid_name(name))
		r = fail_at(errs, path, "name", "must be 1-128 printable characters");
	if (r == 0)
		snprintf(k.name, sizeof(k.name), "%s", name);
	else if (r != -ENOENT)
		rc = -EINVAL;
	if (parse_team_policy(j, path, "key", ks, ps, k.team, sizeof(k.team), k.policy,
			      sizeof(k.policy), errs))
		rc = -EINVAL;
	if ((r = cfg_time(j, "created", path, &k.created, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if ((r = cfg_time(j, "expires", path, &k.expires, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if ((r = cfg_bool(j, "disabled", path, false, &k.disabled, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if (parse_workloads(j, path, pods, k.workloads, errs))
		rc = -EINVAL;
	if (rc)
		return rc;
	if (!k.name[0])
		memcpy(k.name, k.id, sizeof(k.id));
	r = keys_add(ks, &k);
	if (r == -EEXIST)
		rc = keys_get(ks, k.id, &(struct key_record){ 0 }) == 0
			? fail_at(errs, path, "id", "key id \"%s\" is used twice", k.id)
			: fail_at(errs, path, "hash", "the same hash is used by another key");
	else if (r)
		rc = config_fail(errs, path, "%s", strerror(-r));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	return rc;
}

/* pods: the config runs the pod watch, so "pod:" patterns may be used. */
typedef int parse_entry_fn(const cJSON *j, const char *path, const struct policy_set *ps,
			   struct keystore *ks, bool pods, struct config_errors *errs);

/* root.key, an array if present: each entry through parse with its path ("keys[2]").
 * Every entry is tried, so one pass reports every bad one. */
static int parse_array(const cJSON *root, const char *key, parse_entry_fn *parse,
		       const struct policy_set *ps, struct keystore *ks, bool pods,
		       struct config_errors *errs)
{
	const cJSON *arr = json_get(root, key);
	char path[64];
	int rc = 0, i = 0;

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return config_fail(errs, key, "must be an array");
	for (const cJSON *j = arr->child; j; j = j->next, i++) {
		snprintf(path, sizeof(path), "%s[%d]", key, i);
		if (parse(j, path, ps, ks, pods, errs))
			rc = -EINVAL;
	}
	return rc;
}

/* workloads[]: {name, cgroup | pod, policy, team}. */
static int parse_workload(const cJSON *j, const char *path, const struct policy_set *ps,
			  struct keystore *ks, bool pods, struct config_errors *errs)
{
	static const char *const fields[] = { "name", "cgroup", "pod", "policy", "team", NULL };
	struct keys_workload w = { 0 };
	const char *name = NULL, *cg = NULL, *pod = NULL;
	int rc = 0, r;

	if ((r = entry_fields(j, path, fields, errs, &rc)))
		return r;
	r = cfg_ident(j, "name", path, true, &name, errs);
	if (r == 0 && strlen(name) >= sizeof(w.name))
		r = fail_at(errs, path, "name", "at most %zu characters", sizeof(w.name) - 1);
	if (r)
		rc = -EINVAL;
	else
		snprintf(w.name, sizeof(w.name), "%s", name);
	if (json_get(j, "pod")) {
		if (json_get(j, "cgroup"))
			rc = fail_at(errs, path, "pod", "give \"cgroup\" or \"pod\", not both");
		r = cfg_string(j, "pod", path, true, &pod, errs);
		if (r == 0) {
			snprintf(w.pattern, sizeof(w.pattern), "pod:%s", pod);
			if (strlen(pod) + 4 >= sizeof(w.pattern) || !keys_valid_workload(w.pattern))
				rc = fail_at(errs, path, "pod", "must be \"<namespace>/<name glob>\" "
					     "or \"<namespace>/<label>=<value>[,<label>=<value>...]\"");
			else if (!pods)
				rc = fail_at(errs, path, "pod", "pod workloads need the pod watch "
					     "(enforcement.kubernetes): without it no pod is ever "
					     "named, so the workload would match nothing");
		} else {
			rc = -EINVAL;
		}
	} else if ((r = cfg_string(j, "cgroup", path, true, &cg, errs)) == 0) {
		snprintf(w.pattern, sizeof(w.pattern), "cgroup:%s", cg);
		if (strlen(cg) + 7 >= sizeof(w.pattern) || !keys_valid_workload(w.pattern) ||
		    cg[0] != '/')
			rc = fail_at(errs, path, "cgroup", "must be a glob of a cgroup path, "
				     "starting with \"/\"");
	} else {
		rc = -EINVAL;
	}
	if (parse_team_policy(j, path, "workload", ks, ps, w.team, sizeof(w.team), w.policy,
			      sizeof(w.policy), errs))
		rc = -EINVAL;
	if (rc)
		return rc;
	r = keys_workload_add(ks, &w);
	if (r == -EEXIST)
		return fail_at(errs, path, "name", "workload \"%s\" is defined twice", w.name);
	if (r)
		return config_fail(errs, path, "%s", strerror(-r));
	return 0;
}

bool keys_config_pod_watch(const cJSON *root)
{
	const cJSON *e = json_get(root, "enforcement");
	const cJSON *on = cJSON_IsObject(e) ? json_get(e, "enabled") : NULL;

	return cJSON_IsObject(e) && !cJSON_IsFalse(on) &&
	       cJSON_IsObject(json_get(e, "kubernetes"));
}

int keys_config_parse(const cJSON *root, const struct policy_set *ps, struct keystore *ks,
		      struct config_errors *errs)
{
	/* Teams first: a key names its team. */
	bool pods = keys_config_pod_watch(root);
	int rc = parse_array(root, "teams", parse_team, ps, ks, pods, errs);

	keys_pack(ks, true);
	if (parse_array(root, "keys", parse_key, ps, ks, pods, errs))
		rc = -EINVAL;
	keys_pack(ks, false);
	if (parse_array(root, "workloads", parse_workload, ps, ks, pods, errs))
		rc = -EINVAL;
	return rc ? -EINVAL : 0;
}
