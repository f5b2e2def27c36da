/* kube: the node agent's pod watch. The enforcer asks the Kubernetes API server for the pods
 * of its own node and enrols the containers of every pod annotated
 * `mcpwarden.io/enforce: protect|lockdown`, exempting the pod's sidecar container (by name).
 *
 * Three parts, one file each:
 *   kube_config.c  the "enforcement.kubernetes" section
 *   kube_pods.c    what a pod object asks for, validated, and the enrolments made for it
 *                  (sticky: a pod may ask to be enrolled or made stricter, never to be let go)
 *   kube_watch.c   LIST then WATCH over HTTP(S) on the event loop (base/curl_loop), re-list
 *                  on 410 Gone or a broken stream, with backoff; the token re-read each time
 * Everything the API server sends is untrusted input: sizes are bounded, shapes and ids are
 * checked, and a malformed answer is logged and dropped, never acted on.
 */
#ifndef WARDEN_KUBE_H
#define WARDEN_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct config_errors;
struct enforcer;
struct event_base;

#define KUBE_ANNOTATION_DEFAULT "mcpwarden.io/enforce"
#define KUBE_SIDECAR_DEFAULT "mcpwarden"
#define KUBE_API_DEFAULT "https://kubernetes.default.svc"
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_TOKEN_DEFAULT KUBE_SA_DIR "/token"
#define KUBE_CA_DEFAULT KUBE_SA_DIR "/ca.crt"

struct kube_config {
	char *node_name;	/* resolved ({"env": "NODE_NAME"} or a literal) */
	char *api_server;	/* scheme://host[:port], no trailing slash */
	char *token_file;	/* re-read on every (re)connect: projected tokens rotate */
	char *ca_file;		/* for https */
	char *annotation;
	char *sidecar_container;
	bool redirect;		/* enrol with transparent redirect ("redirect", else the
				 * enforcement section's "redirect") */
	bool redirect_set;	/* "redirect" was given in this section */
};

/* The "kubernetes" object at `path` (e.g. "enforcement.kubernetes"). 0 with *out, or
 * -EINVAL with the problems in errs, or -ENOMEM. */
int kube_config_parse(const cJSON *obj, const char *path, struct kube_config **out,
		      struct config_errors *errs);
void kube_config_free(struct kube_config *c);
/* Kubernetes names: a DNS label ([a-z0-9-], <= 63, alphanumeric at both ends: container
 * names), a DNS subdomain (labels joined by dots, <= 253: node, pod and namespace names), an
 * annotation key ([prefix/]name). */
bool kube_dns_label(const char *s, size_t n);
bool kube_dns_subdomain(const char *s);
bool kube_annotation_key(const char *s);

/* ---- pods: what each pod asks for, and what was done for it ------------------------------ */
struct kube_pods;

/* e and c are borrowed and must outlive the table. */
int kube_pods_new(struct enforcer *e, const struct kube_config *c, struct kube_pods **out);
/* Forgets the table; the enrolments stay in the pinned maps (fail closed). NULL is a no-op. */
void kube_pods_free(struct kube_pods *p);
/* A pod object from a list or an ADDED/MODIFIED event: enrol what it asks for. -EINVAL when
 * the object is malformed (logged; nothing is changed for it). */
int kube_pods_apply(struct kube_pods *p, const cJSON *pod);
/* A DELETED event: the entries of the pod's cgroups that are gone are removed now; those of
 * cgroups still alive (a forced deletion, containers still stopping) stay until the cgroup
 * goes (the guard's prune). The pod is forgotten. */
int kube_pods_delete(struct kube_pods *p, const cJSON *pod);
/* A full re-list: begin, apply every listed pod, end. Pods known before but not listed were
 * deleted while nobody watched: handled as kube_pods_delete. */
void kube_pods_sync_begin(struct kube_pods *p);
void kube_pods_sync_end(struct kube_pods *p);
/* Try again the cgroups not found yet (the runtime reported the container before its cgroup
 * appeared). Returns how many are still waiting. */
size_t kube_pods_retry(struct kube_pods *p);
size_t kube_pods_count(const struct kube_pods *p);
/* keys_pod_of_fn (govern/keys.h) over the table (arg: the kube_pods): the pod whose cgroup
 * holds cgroup_path (below the cgroup2 root), with its namespace, name and labels. Only pods
 * the watch tracks (annotated for enforcement) whose cgroup is found; a deleted pod is gone. */
struct keys_pod;
bool kube_pods_of_cgroup(void *arg, const char *cgroup_path, struct keys_pod *out);
size_t kube_pods_pending(const struct kube_pods *p);

/* ---- the watch ----------------------------------------------------------------------------- */
struct kube_watch;

/* Starts listing at once; needs base/curl_loop running on base. e and c are borrowed. */
int kube_watch_start(struct event_base *base, struct enforcer *e, const struct kube_config *c,
		     struct kube_watch **out);
/* Stops the transfer and the timers. Enrolments stay. NULL is a no-op. */
void kube_watch_stop(struct kube_watch *w);

#endif
