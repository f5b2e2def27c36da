/* enforce_config: the "enforcement" section of the config, parsed and applied. */
#include "enforce/enforce_int.h"

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/kube.h"
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- config ------------------------------------------------------------------------------ */

static void targets_free(struct enforcer_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].cgroup);
		free(t[i].container);
		free(t[i].pod);
	}
	free(t);
}

void enforcer_config_free(struct enforcer_config *c)
{
	if (!c)
		return;
	free(c->pin_dir);
	free(c->cgroup_root);
	targets_free(c->enroll, c->nenroll);
	targets_free(c->exempt, c->nexempt);
	strv_free(c->allow);
	strv_free(c->protect);
	strv_free(c->protect_unix);
	kube_config_free(c->kube);
	memset(c, 0, sizeof(*c));
}

static int dup_str(const char *s, char **out)
{
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* An enroll/exempt entry: {"cgroup"|"container"|"pod": "...", "mode": ...}; exempt entries
 * may also be a plain cgroup path string. */
static int parse_target(const cJSON *it, const char *path, bool with_mode,
			struct enforcer_target *t, struct config_errors *errs)
{
	static const char *const keys_mode[] = { "cgroup", "container", "pod", "mode", "redirect",
						 NULL };
	static const char *const keys[] = { "cgroup", "container", "pod", NULL };
	const char *names[3] = { "cgroup", "container", "pod" };
	char **slots[3] = { &t->cgroup, &t->container, &t->pod };
	const char *s, *mode;
	int set = 0, ret;

	t->mode = with_mode ? WARDEN_MODE_LOCKDOWN : WARDEN_MODE_EXEMPT;
	if (cJSON_IsString(it))
		return dup_str(it->valuestring, &t->cgroup);
	if (!cJSON_IsObject(it))
		return config_fail(errs, path, "must be an object with \"cgroup\", \"container\" "
				   "or \"pod\"");
	ret = cfg_known_keys(it, path, with_mode ? keys_mode : keys, errs);
	if (ret < 0)
		return ret;
	for (int i = 0; i < 3; i++) {
		ret = cfg_string(it, names[i], path, false, &s, errs);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		if (set++) {
			return config_fail(errs, path, "give exactly one of \"cgroup\", "
					   "\"container\", \"pod\"");
		}
		ret = dup_str(s, slots[i]);
		if (ret < 0)
			return ret;
	}
	if (!set)
		return config_fail(errs, path, "needs one of \"cgroup\", \"container\", \"pod\"");
	if (t->cgroup && strcmp(t->cgroup, "/") == 0)
		return config_fail(errs, path, "the cgroup v2 root cannot be enrolled: it would "
				   "enforce on the whole host");
	if (t->container && (strlen(t->container) < 12 ||
			     strspn(t->container, "0123456789abcdef") != strlen(t->container)))
		return config_fail(errs, path, "container: 12 to 64 lowercase hex digits");
	if (with_mode) {
		char sub[320];
		enum warden_mode m;

		ret = cfg_string(it, "mode", path, false, &mode, errs);
		if (ret == 0 && enforcer_mode_parse(mode, &m) < 0) {
			snprintf(sub, sizeof(sub), "%s.mode", path);
			return config_fail(errs, sub, "must be \"lockdown\" or \"protect\"");
		}
		if (ret == 0)
			t->mode = m;
		else if (ret != -ENOENT)
			return ret;
		ret = cfg_bool(it, "redirect", path, false, &t->redirect, errs);
		if (ret == 0)
			t->redirect_set = true;
		else if (ret != -ENOENT)
			return ret;
	}
	return 0;
}

static int parse_targets(const cJSON *sec, const char *key, const char *path, bool with_mode,
			 struct enforcer_target **out, size_t *n, struct config_errors *errs)
{
	const cJSON *arr = json_get(sec, key);
	char sub[256];
	int ret = 0, i = 0;
	const cJSON *it;

	if (!arr)
		return 0;
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (!cJSON_IsArray(arr))
		return config_fail(errs, sub, "must be an array");
	*out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr) {
		char ipath[280];
		int r;

		snprintf(ipath, sizeof(ipath), "%s[%d]", sub, i++);
		r = parse_target(it, ipath, with_mode, &(*out)[*n], errs);
		(*n)++;		/* counted even when partial, so free releases it */
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* A string array whose items all pass check (or NULL: any string). */
static int parse_strings(const cJSON *sec, const char *key, const char *path,
			 int (*check)(const char *s), const char *what, char ***out, size_t *n,
			 struct config_errors *errs)
{
	const cJSON *arr = json_get(sec, key);
	char sub[256];
	const cJSON *it;
	int ret = 0, i = 0;

	if (!arr)
		return 0;
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (!cJSON_IsArray(arr))
		return config_fail(errs, sub, "must be an array of %s", what);
	*out = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(char *));   /* NULL-ended */
	cJSON_ArrayForEach(it, arr) {
		char ipath[280];

		snprintf(ipath, sizeof(ipath), "%s[%d]", sub, i++);
		if (!cJSON_IsString(it) || (check && check(it->valuestring) < 0)) {
			ret = config_fail(errs, ipath, "must be %s", what);
			continue;
		}
		if (dup_str(it->valuestring, &(*out)[(*n)++]) < 0)
			return -ENOMEM;
	}
	return ret;
}

static int check_dest(const char *s)
{
	struct enforcer_dest d;

	return enforcer_dest_parse(s, &d);
}

static int check_unix(const char *s)
{
	return strlen(s) > 0 && strlen(s) < WARDEN_UNIX_PATH_LEN ? 0 : -EINVAL;
}

int enforcer_config_parse(const cJSON *sec, const char *path, struct enforcer_config *out,
			  struct config_errors *errs)
{
	static const char *const keys[] = { "enabled", "pin_dir", "cgroup_root", "errno",
		"enroll", "exempt", "allow", "protect", "protect_unix", "kubernetes", "redirect",
		"redirect_port", NULL };
	const char *s;
	int ret, bad = 0;

	memset(out, 0, sizeof(*out));
	out->deny_errno = EPERM;
	if (!sec || cJSON_IsNull(sec))
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, path, "must be an object");
	out->enabled = true;
	if (cfg_known_keys(sec, path, keys, errs) < 0)
		bad = 1;
	ret = cfg_bool(sec, "enabled", path, false, &out->enabled, errs);
	bad |= ret < 0 && ret != -ENOENT;
	ret = cfg_string(sec, "pin_dir", path, false, &s, errs);
	if (ret == 0) {
		if (s[0] != '/' || strlen(s) >= PATH_MAX) {
			char sub[256];

			snprintf(sub, sizeof(sub), "%s.pin_dir", path);
			ret = config_fail(errs, sub, "must be an absolute path on bpffs");
		} else if (dup_str(s, &out->pin_dir) < 0) {
			ret = -ENOMEM;
			goto out;
		}
	}
	bad |= ret < 0 && ret != -ENOENT;
	/* "cgroup_root": "auto" or a path */
	ret = cfg_string(sec, "cgroup_root", path, false, &s, errs);
	if (ret == 0 && strcmp(s, "auto") != 0 && dup_str(s, &out->cgroup_root) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	bad |= ret < 0 && ret != -ENOENT;
	ret = cfg_string(sec, "errno", path, false, &s, errs);
	if (ret == 0 && enforcer_errno_parse(s, &out->deny_errno) < 0) {
		char sub[256];

		snprintf(sub, sizeof(sub), "%s.errno", path);
		ret = config_fail(errs, sub, "must be one of EPERM, EACCES, ECONNREFUSED, "
				  "ENETUNREACH, EHOSTUNREACH");
	}
	bad |= ret < 0 && ret != -ENOENT;
	ret = cfg_bool(sec, "redirect", path, false, &out->redirect, errs);
	bad |= ret < 0 && ret != -ENOENT;
	{
		long long port = 0;

		ret = cfg_int(sec, "redirect_port", path, false, 0, 65535, &port, errs);
		out->redirect_port = (uint16_t)port;
		bad |= ret < 0 && ret != -ENOENT;
	}
#define STEP(call) do { ret = (call); if (ret == -ENOMEM) goto out; bad |= ret < 0; } while (0)
	STEP(parse_targets(sec, "enroll", path, true, &out->enroll, &out->nenroll, errs));
	STEP(parse_targets(sec, "exempt", path, false, &out->exempt, &out->nexempt, errs));
	STEP(parse_strings(sec, "allow", path, check_dest, "\"cidr[:port]\" strings", &out->allow,
			   &out->nallow, errs));
	STEP(parse_strings(sec, "protect", path, check_dest, "\"cidr[:port]\" strings",
			   &out->protect, &out->nprotect, errs));
	STEP(parse_strings(sec, "protect_unix", path, check_unix, "unix socket paths",
			   &out->protect_unix, &out->nprotect_unix, errs));
	if (json_get(sec, "kubernetes")) {
		char sub[256];

		snprintf(sub, sizeof(sub), "%s.kubernetes", path);
		STEP(kube_config_parse(json_get(sec, "kubernetes"), sub,
				       &out->kube, errs));
	}
	/* The pod watch's enrolments redirect as the section says unless it says otherwise. */
	if (out->kube && !out->kube->redirect_set)
		out->kube->redirect = out->redirect;
#undef STEP
	ret = bad ? -EINVAL : 0;
out:
	if (ret < 0)
		enforcer_config_free(out);
	return ret;
}

bool enforcer_target_redirects(const struct enforcer_config *c, const struct enforcer_target *t)
{
	return t->redirect_set ? t->redirect : c->redirect;
}

static int target_path(struct enforcer *e, const struct enforcer_target *t, char *buf,
		       size_t len)
{
	if (t->container)
		return cgroup_resolve_container(e->cgroup_root, t->container, buf, len);
	if (t->pod)
		return cgroup_resolve_pod(e->cgroup_root, t->pod, buf, len);
	return (size_t)snprintf(buf, len, "%s", t->cgroup) >= len ? -ENAMETOOLONG : 0;
}

int enforcer_apply_config(struct enforcer *e, const struct enforcer_config *c)
{
	char path[PATH_MAX];
	int ret;

	ret = enforcer_set_errno(e, c->deny_errno ? c->deny_errno : EPERM);
	/* Exemptions first: an agent pod is never enforced on its sidecar container. */
	for (size_t i = 0; ret == 0 && i < c->nexempt; i++) {
		ret = target_path(e, &c->exempt[i], path, sizeof(path));
		if (ret == 0)
			ret = enforcer_exempt(e, path);
	}
	for (size_t i = 0; ret == 0 && i < c->nallow; i++)
		ret = enforcer_allow(e, c->allow[i]);
	for (size_t i = 0; ret == 0 && i < c->nprotect; i++)
		ret = enforcer_protect(e, c->protect[i]);
	for (size_t i = 0; ret == 0 && i < c->nprotect_unix; i++)
		ret = enforcer_protect_unix(e, c->protect_unix[i]);
	for (size_t i = 0; ret == 0 && i < c->nenroll; i++) {
		ret = target_path(e, &c->enroll[i], path, sizeof(path));
		if (ret == 0)
			ret = enforcer_enroll_ex(e, path, c->enroll[i].mode,
						 enforcer_target_redirects(c, &c->enroll[i]) ?
						 WARDEN_ENROLL_F_REDIRECT : 0);
	}
	return ret;
}
