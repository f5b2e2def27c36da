/* keys_workload: the workload patterns a key (or a keyless workload) is bound to, and whether
 * a caller matches them: its cgroup path as the kernel named it, and for "pod:" patterns the
 * pod the pod watch knows that cgroup belongs to. */
#include "govern/keys.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#define WORKLOAD_CGROUP "cgroup:"
#define WORKLOAD_POD "pod:"
#define POD_SELECTOR_MAX 8	/* label=value pairs in one pattern */

/* The pod watch, while it runs (one loop: the front and the watch share it). */
static keys_pod_of_fn pod_of;
static void *pod_of_arg;

void keys_set_pod_lookup(keys_pod_of_fn fn, void *arg)
{
	pod_of = fn;
	pod_of_arg = arg;
}

void keys_clear_pod_lookup(void *arg)
{
	if (pod_of_arg == arg) {
		pod_of = NULL;
		pod_of_arg = NULL;
	}
}

bool keys_pod_lookup_running(void) { return pod_of != NULL; }

static bool all_in(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define ALNUM LOWER_DIGITS "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* "k=v[,k=v...]": label keys ([prefix/]name) and values as Kubernetes has them. */
static bool valid_selector(const char *s)
{
	unsigned pairs = 0;

	while (*s) {
		const char *comma = strchr(s, ','), *eq = strchr(s, '=');
		size_t n = comma ? (size_t)(comma - s) : strlen(s), kl, vl;

		if (!eq || eq >= s + n || ++pairs > POD_SELECTOR_MAX)
			return false;
		kl = (size_t)(eq - s);
		vl = n - kl - 1;
		if (kl == 0 || kl > 253 + 1 + 63 || vl > 63 || !all_in(s, kl, ALNUM "._/-") ||
		    !all_in(eq + 1, vl, ALNUM "._-"))
			return false;
		s += n;
		if (comma && !*++s)
			return false;	/* a trailing comma */
	}
	return pairs > 0;
}

/* "pod:<namespace glob>/<name glob>" or "pod:<namespace glob>/<label>=<value>[,...]". */
static bool valid_pod(const char *p)
{
	const char *slash = strchr(p, '/');

	if (!slash || slash == p || slash - p > 63 || !all_in(p, (size_t)(slash - p), LOWER_DIGITS "-*?"))
		return false;
	p = slash + 1;
	if (strchr(p, '='))
		return valid_selector(p);
	return *p && strlen(p) <= 253 && all_in(p, strlen(p), LOWER_DIGITS ".-*?[]!");
}

bool keys_valid_workload(const char *p)
{
	size_t n = strlen(p), cl = strlen(WORKLOAD_CGROUP), pl = strlen(WORKLOAD_POD);

	if (n >= KEYS_WORKLOADS_SIZE / 2)
		return false;
	if (strncmp(p, WORKLOAD_POD, pl) == 0)
		return valid_pod(p + pl);
	if (n <= cl || strncmp(p, WORKLOAD_CGROUP, cl) != 0 || p[cl] != '/')
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

int keys_workloads_from_json(const cJSON *a, bool pods, char out[KEYS_WORKLOADS_SIZE],
			     const char **why)
{
	const cJSON *e;
	size_t used = 0;

	out[0] = '\0';
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > KEYS_WORKLOADS_MAX) {
		*why = "must be an array of at most 16 patterns \"cgroup:/<glob>\" or "
		       "\"pod:<namespace>/<name glob>\" or \"pod:<namespace>/<label>=<value>\"";
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, a) {
		const char *s = cJSON_GetStringValue(e);
		size_t l;

		if (!s || !keys_valid_workload(s)) {
			*why = "each entry must be \"cgroup:/<glob>\", \"pod:<namespace>/<name glob>\" "
			       "or \"pod:<namespace>/<label>=<value>[,<label>=<value>...]\"";
			return -EINVAL;
		}
		if (!pods && strncmp(s, WORKLOAD_POD, strlen(WORKLOAD_POD)) == 0) {
			*why = "pod patterns need the pod watch (enforcement.kubernetes), which is not "
			       "running: a pod could never be named, so the key would match nothing";
			return -EINVAL;
		}
		l = strlen(s);
		if (used + l + 1 >= KEYS_WORKLOADS_SIZE) {
			*why = "longer than 511 bytes in all";
			return -EINVAL;
		}
		if (used)
			out[used++] = '\n';
		memcpy(out + used, s, l);
		used += l;
		out[used] = '\0';
	}
	return 0;
}

cJSON *keys_workloads_to_json(const char *workloads)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = workloads;

	while (a && *p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char pat[KEYS_WORKLOADS_SIZE];
		cJSON *s;

		snprintf(pat, sizeof(pat), "%.*s", (int)n, p);
		s = cJSON_CreateString(pat);
		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
		p += n + (e ? 1 : 0);
	}
	return a;
}

/* Does the pod carry the label pair "k=v" (n bytes)? */
static bool has_label(const char *labels, const char *kv, size_t n)
{
	for (const char *l = labels; *l;) {
		const char *e = strchr(l, '\n');
		size_t ln = e ? (size_t)(e - l) : strlen(l);

		if (ln == n && memcmp(l, kv, n) == 0)
			return true;
		l += ln + (e ? 1 : 0);
	}
	return false;
}

/* pat: what follows "pod:". Every pair of a selector must be on the pod. */
static bool pod_matches(const char *pat, const struct keys_pod *pod)
{
	const char *slash = strchr(pat, '/'), *rest;
	char ns[64];

	if (!slash || (size_t)(slash - pat) >= sizeof(ns))
		return false;
	memcpy(ns, pat, (size_t)(slash - pat));
	ns[slash - pat] = '\0';
	if (fnmatch(ns, pod->ns, 0) != 0)
		return false;
	rest = slash + 1;
	if (!strchr(rest, '='))
		return fnmatch(rest, pod->name, 0) == 0;
	while (*rest) {
		const char *comma = strchr(rest, ',');
		size_t n = comma ? (size_t)(comma - rest) : strlen(rest);

		if (!has_label(pod->labels, rest, n))
			return false;
		rest += n + (comma ? 1 : 0);
	}
	return true;
}

bool keys_workload_allows(const char *workloads, const char *cgroup_path)
{
	const char *p = workloads;
	char pat[KEYS_WORKLOADS_SIZE];
	struct keys_pod pod;
	int pod_known = -1;	/* -1 not asked yet, 0 no pod, 1 pod */

	if (!*workloads)
		return true;
	if (!cgroup_path)
		return false;	/* an unknown caller is no workload */
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n < sizeof(pat)) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (strncmp(pat, WORKLOAD_CGROUP, strlen(WORKLOAD_CGROUP)) == 0 &&
			    fnmatch(pat + strlen(WORKLOAD_CGROUP), cgroup_path, 0) == 0)
				return true;
			if (strncmp(pat, WORKLOAD_POD, strlen(WORKLOAD_POD)) == 0) {
				/* Asked once per call: the pod watch's table at this moment. */
				if (pod_known < 0)
					pod_known = pod_of && pod_of(pod_of_arg, cgroup_path, &pod);
				if (pod_known && pod_matches(pat + strlen(WORKLOAD_POD), &pod))
					return true;
			}
		}
		p += n + (e ? 1 : 0);
	}
	return false;
}
