/* kube_pods: from a pod object to enrolments.
 *
 * For a pod annotated protect|lockdown: its pod cgroup is enrolled (so every container it will
 * ever run is covered, before the API reports any id) and each of its containers too, except
 * the sidecar container (by name), which is exempt. Enrol liberally, exempt strictly: an
 * exemption is the one action that loosens enforcement, so it needs a fully valid entry whose
 * cgroup lies inside the pod's own cgroup and was never enrolled.
 *
 * Sticky: the mode only ever gets stricter (none -> protect -> lockdown). A removed or weaker
 * annotation on a running pod is logged and ignored; the same holds across a restart of the
 * daemon, because the stricter mode already in the pinned map wins. Only the pod's deletion
 * (its cgroups gone) removes its entries.
 */
#include "enforce/kube.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "govern/keys.h"
#include "observe/audit.h"

#define KUBE_MAX_PODS 1024		/* a node runs at most a few hundred */
#define KUBE_MAX_CTRS 64		/* per pod: init, regular and ephemeral containers */
#define KUBE_RETRY_QUIET 480		/* retries (4 a second) before waiting for the next event */
#define KUBE_ID_LEN 64			/* containerd, CRI-O and Docker ids: 64 hex digits */

struct kube_ctr {
	char name[64];
	char id[KUBE_ID_LEN + 1];	/* "" while the container has not started */
	bool sidecar;
	bool done;			/* enrolled (or exempt) as it should be */
	bool refused;			/* an exemption refused: not retried */
	uint64_t cgid;
	enum warden_mode mode;		/* what was applied */
};

struct kube_pod {
	char uid[65];
	char ns[64];
	char name[254];
	enum warden_mode mode;		/* the strictest ever asked */
	bool pod_done;
	uint64_t pod_cgid;
	char *pod_path;			/* the pod's cgroup, once found */
	char *labels;			/* "k=v" lines, for pod: workload patterns */
	bool let_go_logged;		/* an annotation removed or weakened: said once */
	bool marked;			/* a re-list is running and has not listed it (yet) */
	unsigned attempts;		/* retries of missing cgroups since the last event */
	struct kube_ctr *ctrs;
	size_t nctrs;
};

struct kube_pods {
	struct enforcer *e;
	const struct kube_config *c;
	struct hmap *pods;		/* uid -> struct kube_pod */
};

/* protect < lockdown; none and exempt ask for nothing. */
static int rank(enum warden_mode m)
{
	return m == WARDEN_MODE_LOCKDOWN ? 2 : m == WARDEN_MODE_PROTECT ? 1 : 0;
}

static void pod_free(void *v)
{
	struct kube_pod *pod = v;

	if (!pod)
		return;
	free(pod->pod_path);
	free(pod->labels);
	free(pod->ctrs);
	free(pod);
}

int kube_pods_new(struct enforcer *e, const struct kube_config *c, struct kube_pods **out)
{
	struct kube_pods *p = xcalloc(1, sizeof(*p));

	p->e = e;
	p->c = c;
	p->pods = hmap_new();
	if (!p->pods) {
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void kube_pods_free(struct kube_pods *p)
{
	if (!p)
		return;
	hmap_free(p->pods, pod_free);
	free(p);
}

size_t kube_pods_count(const struct kube_pods *p) { return hmap_count(p->pods); }

/* ---- records ------------------------------------------------------------------------------- */

static void record(const char *action, const struct kube_pod *pod, const struct kube_ctr *c,
		   const char *cgroup, uint64_t cgid, enum warden_mode mode, const char *reason)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "source", "kubernetes");
	cJSON_AddStringToObject(o, "action", action);
	cJSON_AddStringToObject(o, "namespace", pod->ns);
	cJSON_AddStringToObject(o, "pod", pod->name);
	cJSON_AddStringToObject(o, "pod_uid", pod->uid);
	if (c) {
		cJSON_AddStringToObject(o, "container", c->name);
		if (c->id[0])
			cJSON_AddStringToObject(o, "container_id", c->id);
	}
	if (cgroup)
		cJSON_AddStringToObject(o, "cgroup", cgroup);
	if (cgid)
		cJSON_AddNumberToObject(o, "cgroup_id", (double)cgid);
	if (mode != WARDEN_MODE_NONE)
		cJSON_AddStringToObject(o, "mode", enforcer_mode_name(mode));
	if (reason)
		cJSON_AddStringToObject(o, "reason", reason);
	audit_enforcement(o);
	cJSON_Delete(o);
}

/* ---- the pod object, validated -------------------------------------------------------------- */

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = json_get(o, key);

	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static bool pod_uid_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 8 && n <= 64 && strspn(s, "0123456789abcdef-") == n;
}

/* "containerd://<64 hex>", "cri-o://...", "docker://...": the id, or NULL. */
static const char *container_id(const char *s)
{
	static const char *const runtimes[] = { "containerd://", "cri-o://", "docker://" };

	for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++) {
		size_t n = strlen(runtimes[i]);
		const char *id = s + n;

		if (strncmp(s, runtimes[i], n) == 0 && strlen(id) == KUBE_ID_LEN &&
		    strspn(id, "0123456789abcdef") == KUBE_ID_LEN)
			return id;
	}
	return NULL;
}

/* What the annotation asks: protect, lockdown, or none. Any other value fails closed. */
static enum warden_mode asked_mode(const struct kube_pods *p, const cJSON *meta,
				   const char *who)
{
	const cJSON *ann = json_get(meta, "annotations");
	const cJSON *v = cJSON_IsObject(ann) ?
		json_get(ann, p->c->annotation) : NULL;
	enum warden_mode m;

	if (!v)
		return WARDEN_MODE_NONE;
	if (!cJSON_IsString(v) || !v->valuestring) {
		log_warn("kubernetes: pod %s: annotation %s is not a string: enforcing lockdown",
			 who, p->c->annotation);
		return WARDEN_MODE_LOCKDOWN;
	}
	if (enforcer_mode_parse(v->valuestring, &m) == 0)
		return m;
	if (!*v->valuestring || !strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "off") ||
	    !strcmp(v->valuestring, "false"))
		return WARDEN_MODE_NONE;
	log_warn("kubernetes: pod %s: annotation %s has the unknown value \"%.32s\": enforcing "
		 "lockdown, the strictest", who, p->c->annotation, v->valuestring);
	return WARDEN_MODE_LOCKDOWN;
}

/* The identity of a pod object, or -EINVAL (logged). */
static int pod_identity(const struct kube_pods *p, const cJSON *pod, const cJSON **meta,
			const char **uid, const char **ns, const char **name)
{
	if (!cJSON_IsObject(pod) || !cJSON_IsObject(*meta = json_get(pod,
			"metadata"))) {
		log_warn("kubernetes: a pod object without metadata: ignored");
		return -EINVAL;
	}
	*uid = str_at(*meta, "uid");
	*ns = str_at(*meta, "namespace");
	*name = str_at(*meta, "name");
	if (!pod_uid_ok(*uid) || !*ns || !kube_dns_label(*ns, strlen(*ns)) || !*name ||
	    !kube_dns_subdomain(*name)) {
		log_warn("kubernetes: a pod object with a malformed uid, namespace or name: ignored");
		return -EINVAL;
	}
	return 0;
}

/* metadata.labels as "k=v" lines (what keys_workload matches "pod:ns/k=v" against). Bounded:
 * a label that does not fit, or is not a string, is left out — a selector naming it then
 * does not match (fail closed). */
static void take_labels(struct kube_pod *pod, const cJSON *meta)
{
	const cJSON *ls = json_get(meta, "labels"), *l;
	char buf[KEYS_POD_LABELS_SIZE];
	size_t used = 0;

	buf[0] = '\0';
	if (cJSON_IsObject(ls)) {
		cJSON_ArrayForEach(l, ls) {
			size_t kl = l->string ? strlen(l->string) : 0;
			size_t vl = cJSON_IsString(l) && l->valuestring ? strlen(l->valuestring) : 0;

			if (!kl || !cJSON_IsString(l) || !l->valuestring || strchr(l->string, '\n') ||
			    strchr(l->valuestring, '\n') || used + kl + vl + 2 >= sizeof(buf))
				continue;
			used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s=%s",
						 used ? "\n" : "", l->string, l->valuestring);
		}
	}
	free(pod->labels);
	pod->labels = xstrdup(buf);
}

bool kube_pods_of_cgroup(void *arg, const char *cgroup_path, struct keys_pod *out)
{
	struct kube_pods *p = arg;
	const char *root = enforcer_cgroup_root(p->e);
	size_t rl = strlen(root);
	struct hmap_iter it = hmap_iter(p->pods);
	const char *k;
	void *v;

	/* A node runs at most a few hundred pods: a scan of their cgroup paths per request
	 * with a key bound to pods costs less than naming the caller did. */
	while (hmap_next(p->pods, &it, &k, &v)) {
		const struct kube_pod *pod = v;
		size_t pl = pod->pod_path ? strlen(pod->pod_path) : 0;

		if (!pod->pod_done || pl < rl || strncmp(pod->pod_path, root, rl) ||
		    strncmp(pod->pod_path + rl, cgroup_path, pl - rl) ||
		    (cgroup_path[pl - rl] != '/' && cgroup_path[pl - rl] != '\0'))
			continue;
		snprintf(out->ns, sizeof(out->ns), "%s", pod->ns);
		snprintf(out->name, sizeof(out->name), "%s", pod->name);
		snprintf(out->labels, sizeof(out->labels), "%s", pod->labels ? pod->labels : "");
		return true;
	}
	return false;
}

/* ---- acting -------------------------------------------------------------------------------- */

static struct kube_ctr *ctr_find(struct kube_pod *pod, const char *name)
{
	for (size_t i = 0; i < pod->nctrs; i++)
		if (!strcmp(pod->ctrs[i].name, name))
			return &pod->ctrs[i];
	return NULL;
}

/* Enrol the cgroup at path in mode, unless the map already holds something stricter for it
 * (a restart must not weaken what a previous run enrolled). *applied: the mode in force. */
static int enrol(struct kube_pods *p, const char *path, enum warden_mode mode, uint64_t *cgid,
		 enum warden_mode *applied)
{
	enum warden_mode cur;
	int rc = cgroup_id(path, cgid);

	if (rc)
		return rc;
	if (enforcer_enrolled_mode(p->e, *cgid, &cur) == 0 && rank(cur) > rank(mode))
		mode = cur;
	rc = enforcer_enroll_ex(p->e, path, mode, p->c->redirect ? WARDEN_ENROLL_F_REDIRECT : 0);
	if (rc == 0)
		*applied = mode;
	return rc;
}

/* The pod cgroup; 1 when it is not there yet. */
static int do_pod(struct kube_pods *p, struct kube_pod *pod)
{
	char path[PATH_MAX];
	enum warden_mode applied;
	int rc;

	if (pod->pod_done)
		return 0;
	rc = cgroup_find_pod(enforcer_cgroup_root(p->e), pod->uid, path, sizeof(path));
	if (rc == -ENOENT)
		return 1;
	if (rc == 0)
		rc = enrol(p, path, pod->mode, &pod->pod_cgid, &applied);
	if (rc) {
		log_error("kubernetes: pod %s/%s: cannot enrol its cgroup: %s", pod->ns, pod->name,
			  strerror(-rc));
		return 1;
	}
	if (rank(applied) > rank(pod->mode)) {
		log_warn("kubernetes: pod %s/%s: its cgroup was already enrolled %s: it stays so",
			 pod->ns, pod->name, enforcer_mode_name(applied));
		pod->mode = applied;
	}
	free(pod->pod_path);
	pod->pod_path = xstrdup(path);
	pod->pod_done = true;
	record("enroll", pod, NULL, path, pod->pod_cgid, applied, NULL);
	return 0;
}

/* The sidecar: exempt only inside the pod's own cgroup, only an id no other container of
 * the pod has, only a cgroup that is not enrolled. Returns 1 to try again later. */
static int do_sidecar(struct kube_pods *p, struct kube_pod *pod, struct kube_ctr *c,
		      const char *path)
{
	size_t plen = pod->pod_path ? strlen(pod->pod_path) : 0;
	enum warden_mode cur;
	int rc;

	if (!pod->pod_done)
		return 1;	/* cannot check where it lies yet */
	for (size_t i = 0; i < pod->nctrs; i++) {
		if (&pod->ctrs[i] != c && !strcmp(pod->ctrs[i].id, c->id)) {
			c->refused = true;
			record("refuse", pod, c, path, 0, WARDEN_MODE_EXEMPT,
			       "another container of the pod has the same id");
			log_error("kubernetes: pod %s/%s: sidecar %s shares its id with container "
				  "%s: not exempt", pod->ns, pod->name, c->name, pod->ctrs[i].name);
			return 0;
		}
	}
	if (strncmp(path, pod->pod_path, plen) || path[plen] != '/') {
		c->refused = true;
		record("refuse", pod, c, path, 0, WARDEN_MODE_EXEMPT,
		       "the container's cgroup is not inside the pod's cgroup");
		log_error("kubernetes: pod %s/%s: sidecar %s: cgroup %s is outside the pod's %s: "
			  "not exempt", pod->ns, pod->name, c->name, path, pod->pod_path);
		return 0;
	}
	rc = cgroup_id(path, &c->cgid);
	if (rc == 0 && enforcer_enrolled_mode(p->e, c->cgid, &cur) == 0 &&
	    cur != WARDEN_MODE_EXEMPT) {
		c->refused = true;
		record("refuse", pod, c, path, c->cgid, WARDEN_MODE_EXEMPT,
		       "the cgroup is enrolled: it is never let go");
		log_error("kubernetes: pod %s/%s: sidecar %s: cgroup %s is enrolled %s: not "
			  "exempt", pod->ns, pod->name, c->name, path, enforcer_mode_name(cur));
		return 0;
	}
	if (rc == 0)
		rc = enforcer_exempt(p->e, path);
	if (rc) {
		log_error("kubernetes: pod %s/%s: cannot exempt sidecar %s: %s", pod->ns, pod->name,
			  c->name, strerror(-rc));
		return 1;
	}
	c->mode = WARDEN_MODE_EXEMPT;
	c->done = true;
	record("exempt", pod, c, path, c->cgid, WARDEN_MODE_EXEMPT, "sidecar container");
	return 0;
}

/* One container; 1 when its cgroup is not there yet. */
static int do_ctr(struct kube_pods *p, struct kube_pod *pod, struct kube_ctr *c)
{
	char path[PATH_MAX];
	enum warden_mode applied;
	int rc;

	if (c->done || c->refused || !c->id[0])
		return 0;
	rc = cgroup_find_container(enforcer_cgroup_root(p->e), c->id, path, sizeof(path));
	if (rc == -ENOENT)
		return 1;
	if (rc) {
		log_error("kubernetes: pod %s/%s: container %s (%.12s): %s", pod->ns, pod->name,
			  c->name, c->id, strerror(-rc));
		return 1;
	}
	if (c->sidecar)
		return do_sidecar(p, pod, c, path);
	rc = enrol(p, path, pod->mode, &c->cgid, &applied);
	if (rc) {
		log_error("kubernetes: pod %s/%s: cannot enrol container %s: %s", pod->ns,
			  pod->name, c->name, strerror(-rc));
		return 1;
	}
	c->mode = applied;
	c->done = true;
	record("enroll", pod, c, path, c->cgid, applied, NULL);
	return 0;
}

/* Everything the pod still needs; returns how many cgroups are still missing. */
static size_t reconcile(struct kube_pods *p, struct kube_pod *pod)
{
	size_t missing = (size_t)do_pod(p, pod);

	for (size_t i = 0; i < pod->nctrs; i++)
		missing += (size_t)do_ctr(p, pod, &pod->ctrs[i]);
	return missing;
}

/* Take in one entry of a *ContainerStatuses list. */
static void take_status(struct kube_pods *p, struct kube_pod *pod, const cJSON *st,
			bool may_be_sidecar)
{
	const char *name = str_at(st, "name"), *cid = str_at(st, "containerID"), *id = NULL;
	struct kube_ctr *c;

	if (!cJSON_IsObject(st) || !name || !kube_dns_label(name, strlen(name))) {
		log_warn("kubernetes: pod %s/%s: a container status without a valid name: ignored "
			 "(the pod's cgroup covers it)", pod->ns, pod->name);
		return;
	}
	if (cid && *cid && !(id = container_id(cid))) {
		log_warn("kubernetes: pod %s/%s: container %s: unknown container id form \"%.80s\" "
			 "(the pod's cgroup covers it)", pod->ns, pod->name, name, cid);
		return;
	}
	c = ctr_find(pod, name);
	if (!c) {
		if (pod->nctrs >= KUBE_MAX_CTRS) {
			log_warn("kubernetes: pod %s/%s: more than %d containers: %s not tracked "
				 "(the pod's cgroup covers it)", pod->ns, pod->name, KUBE_MAX_CTRS,
				 name);
			return;
		}
		pod->ctrs = xrealloc(pod->ctrs, (pod->nctrs + 1) * sizeof(*pod->ctrs));
		c = &pod->ctrs[pod->nctrs++];
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->sidecar = may_be_sidecar && !strcmp(name, p->c->sidecar_container);
	}
	if (id && strcmp(c->id, id)) {	/* started, or restarted with a new id */
		snprintf(c->id, sizeof(c->id), "%s", id);
		c->done = false;
		c->refused = false;
		c->cgid = 0;
	}
}

int kube_pods_apply(struct kube_pods *p, const cJSON *obj)
{
	static const struct { const char *key; bool sidecar; } lists[] = {
		{ "initContainerStatuses", true }, { "containerStatuses", true },
		{ "ephemeralContainerStatuses", false },
	};
	const cJSON *meta, *spec, *status;
	const char *uid, *ns, *name, *node;
	char who[330];
	struct kube_pod *pod;
	enum warden_mode asked;
	int rc = pod_identity(p, obj, &meta, &uid, &ns, &name);

	if (rc)
		return rc;
	snprintf(who, sizeof(who), "%s/%s", ns, name);
	spec = json_get(obj, "spec");
	node = cJSON_IsObject(spec) ? str_at(spec, "nodeName") : NULL;
	if (!node || strcmp(node, p->c->node_name)) {
		log_warn("kubernetes: pod %s is not on this node (%s): ignored", who,
			 node ? node : "unscheduled");
		return -EINVAL;
	}
	asked = asked_mode(p, meta, who);
	pod = hmap_get(p->pods, uid);
	if (pod)
		pod->marked = false;
	if (!pod && asked == WARDEN_MODE_NONE)
		return 0;
	if (!pod) {
		if (hmap_count(p->pods) >= KUBE_MAX_PODS) {
			log_error("kubernetes: more than %d enforced pods on this node: pod %s is "
				  "not enrolled", KUBE_MAX_PODS, who);
			return -ENOSPC;
		}
		pod = xcalloc(1, sizeof(*pod));
		snprintf(pod->uid, sizeof(pod->uid), "%s", uid);
		snprintf(pod->ns, sizeof(pod->ns), "%s", ns);
		snprintf(pod->name, sizeof(pod->name), "%s", name);
		pod->mode = asked;
		if (hmap_put(p->pods, pod->uid, pod, NULL) < 0) {
			pod_free(pod);
			return -ENOMEM;
		}
		log_info("kubernetes: pod %s (%s) asks for %s", who, uid, enforcer_mode_name(asked));
	} else if (rank(asked) < rank(pod->mode)) {
		if (!pod->let_go_logged) {
			const char *why = asked == WARDEN_MODE_NONE ? "annotation removed"
								    : "annotation weakened";
			log_warn("kubernetes: pod %s: %s to %s: it stays %s (a pod may ask to be "
				 "enrolled, never to be let go)", who, why,
				 enforcer_mode_name(asked), enforcer_mode_name(pod->mode));
			record("keep", pod, NULL, pod->pod_path, pod->pod_cgid, pod->mode, why);
			pod->let_go_logged = true;
		}
	} else if (rank(asked) > rank(pod->mode)) {
		log_info("kubernetes: pod %s: %s -> %s", who, enforcer_mode_name(pod->mode),
			 enforcer_mode_name(asked));
		pod->mode = asked;
		pod->pod_done = false;
		for (size_t i = 0; i < pod->nctrs; i++)
			if (!pod->ctrs[i].sidecar)
				pod->ctrs[i].done = false;
	}
	status = json_get(obj, "status");
	for (size_t l = 0; cJSON_IsObject(status) && l < sizeof(lists) / sizeof(lists[0]); l++) {
		const cJSON *arr = json_get(status, lists[l].key), *st;

		if (!arr)
			continue;
		if (!cJSON_IsArray(arr)) {
			log_warn("kubernetes: pod %s: status.%s is not an array: ignored", who,
				 lists[l].key);
			continue;
		}
		cJSON_ArrayForEach(st, arr)
			take_status(p, pod, st, lists[l].sidecar);
	}
	take_labels(pod, meta);
	pod->attempts = 0;
	reconcile(p, pod);
	return 0;
}

/* The pod's entries whose cgroups are gone are removed; the rest the prune removes later. */
static void forget(struct kube_pods *p, struct kube_pod *pod, const char *why)
{
	const char *root = enforcer_cgroup_root(p->e);
	size_t kept = 0;

	for (size_t i = 0; i <= pod->nctrs; i++) {
		struct kube_ctr *c = i < pod->nctrs ? &pod->ctrs[i] : NULL;
		uint64_t id = c ? (c->done ? c->cgid : 0) : (pod->pod_done ? pod->pod_cgid : 0);
		int alive, rc;

		if (!id)
			continue;
		alive = cgroup_id_alive(root, id);
		if (alive != 0) {	/* alive, or the kernel cannot tell: keep */
			kept++;
			continue;
		}
		rc = enforcer_unenroll_id(p->e, id);
		if (rc < 0 && rc != -ENOENT)	/* -ENOENT: the prune was first */
			log_warn("kubernetes: pod %s/%s: removing cgroup %llu's entry: %s", pod->ns,
				 pod->name, (unsigned long long)id, strerror(-rc));
		record("unenroll", pod, c, c ? NULL : pod->pod_path, id, WARDEN_MODE_NONE, why);
	}
	if (kept) {
		log_info("kubernetes: pod %s/%s %s: %zu of its cgroups still exist; their entries go "
			 "when they do", pod->ns, pod->name, why, kept);
		record("keep", pod, NULL, pod->pod_path, pod->pod_cgid, pod->mode,
		       "pod deleted but cgroups still alive: removed when they go");
	}
	log_info("kubernetes: pod %s/%s (%s) %s: forgotten", pod->ns, pod->name, pod->uid, why);
	pod_free(hmap_del(p->pods, pod->uid));
}

int kube_pods_delete(struct kube_pods *p, const cJSON *obj)
{
	const cJSON *meta;
	const char *uid, *ns, *name;
	struct kube_pod *pod;
	int rc = pod_identity(p, obj, &meta, &uid, &ns, &name);

	if (rc)
		return rc;
	pod = hmap_get(p->pods, uid);
	if (pod)
		forget(p, pod, "deleted");
	return 0;
}

void kube_pods_sync_begin(struct kube_pods *p)
{
	struct hmap_iter it = hmap_iter(p->pods);
	const char *k;
	void *v;

	while (hmap_next(p->pods, &it, &k, &v))
		((struct kube_pod *)v)->marked = true;
}

void kube_pods_sync_end(struct kube_pods *p)
{
	struct hmap_iter it = hmap_iter(p->pods);
	const char *k;
	void *v;

	while (hmap_next(p->pods, &it, &k, &v))
		if (((struct kube_pod *)v)->marked)
			forget(p, v, "no longer listed (deleted while not watching)");
}

static size_t missing_of(const struct kube_pod *pod)
{
	size_t n = !pod->pod_done;

	for (size_t i = 0; i < pod->nctrs; i++)
		n += pod->ctrs[i].id[0] && !pod->ctrs[i].done && !pod->ctrs[i].refused;
	return n;
}

size_t kube_pods_pending(const struct kube_pods *p)
{
	struct hmap_iter it = hmap_iter(p->pods);
	const char *k;
	void *v;
	size_t n = 0;

	while (hmap_next(p->pods, &it, &k, &v)) {
		const struct kube_pod *pod = v;

		if (pod->attempts < KUBE_RETRY_QUIET)
			n += missing_of(pod);
	}
	return n;
}

size_t kube_pods_retry(struct kube_pods *p)
{
	struct hmap_iter it = hmap_iter(p->pods);
	const char *k;
	void *v;
	size_t n = 0;

	while (hmap_next(p->pods, &it, &k, &v)) {
		struct kube_pod *pod = v;
		size_t missing;

		if (pod->attempts >= KUBE_RETRY_QUIET || !missing_of(pod))
			continue;
		missing = reconcile(p, pod);
		if (missing && ++pod->attempts == KUBE_RETRY_QUIET)
			log_warn("kubernetes: pod %s/%s: %zu cgroup(s) still not found after %d "
				 "tries; trying again on its next change (the pod's cgroup %s)",
				 pod->ns, pod->name, missing, KUBE_RETRY_QUIET,
				 pod->pod_done ? "is enrolled" : "is not found either");
		if (pod->attempts < KUBE_RETRY_QUIET)
			n += missing;
	}
	return n;
}
