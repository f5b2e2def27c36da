/* guard: config -> enforcer, upstream protection, kernel denials -> records. */
#include "enforce/guard.h"
#include "enforce/peer_fast.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <curl/curl.h>

#include "observe/audit.h"
#include "base/config.h"
#include "base/event_opt.h"
#include "enforce/enforcer.h"
#include "enforce/kube.h"
#include "base/json_get.h"
#include "base/log.h"

#define UPSTREAM_REFRESH_MS 60000

struct guard {
	struct enforcer *e;
	struct enforcer_config cfg;
	struct enforcer_upstream **ups;
	size_t *ups_server;		/* ups[i] protects config upstream ups_server[i] */
	char **ups_path;		/* its URL's path (redirect routing); NULL: not redirectable */
	size_t nups;
	struct event *prune;
	struct kube_watch *kube;	/* the pod watch, when "kubernetes" is configured */
};

/* Containers and pods come and go; their enrolments must not outlive them. */
#define PRUNE_INTERVAL_MS 2000

static void on_prune(evutil_socket_t fd, short what, void *arg)
{
	struct guard *g = arg;
	uint64_t ids[8];
	size_t n = 0;
	int rc = enforcer_prune(g->e, &n, ids, 8);

	for (size_t i = 0; i < n && i < 8; i++)
		log_info("enforcement: cgroup %llu is gone: its enrolment is removed",
			 (unsigned long long)ids[i]);
	if (n > 8)
		log_info("enforcement: %zu more enrolments of gone cgroups removed", n - 8);
	if (rc < 0)
		log_warn("enforcement: pruning the enrolments of gone cgroups: %s", strerror(-rc));
}

static int parse_section(const struct config *cfg, struct enforcer_config *out,
			 struct config_errors *errs)
{
	const cJSON *sec = json_get(cfg->raw, "enforcement");

	memset(out, 0, sizeof(*out));
	if (!sec)
		return -ENOENT;
	return enforcer_config_parse(sec, "enforcement", out, errs);
}

int guard_check(const struct config *cfg, struct config_errors *errs)
{
	struct enforcer_config c;
	int rc = parse_section(cfg, &c, errs);

	if (rc == -ENOENT)
		return 0;
	enforcer_config_free(&c);
	return rc;
}

static void on_deny(const struct warden_event *ev, void *arg)
{
	struct guard *g = arg;
	cJSON *o = enforcer_event_json(g->e, ev);

	if (o) {
		audit_kernel_deny(o);
		cJSON_Delete(o);
	}
}

/* The host and port of an upstream URL, with the scheme's default port. */
static int url_hostport(const char *url, char **host, uint16_t *port)
{
	CURLU *u = curl_url();
	char *h = NULL, *p = NULL;
	int rc = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		size_t n = strlen(h);
		/* curl keeps IPv6 literals in brackets; the resolver wants them bare. */
		*host = h[0] == '[' && n > 2 ? strndup(h + 1, n - 2) : strdup(h);
		*port = (uint16_t)atoi(p);
		rc = *host ? 0 : -ENOMEM;
	}
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

/* The path of an upstream URL ("/mcp"; "/" when it has none). */
static int url_path(const char *url, char **path)
{
	CURLU *u = curl_url();
	char *p = NULL;
	int rc = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &p, 0) == CURLUE_OK) {
		*path = strdup(p && *p ? p : "/");
		rc = *path ? 0 : -ENOMEM;
	}
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

/* The daemon's own cgroup v2 path relative to the root, from /proc/self/cgroup ("0::/x"). */
static int own_cgroup(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, len, "%s", line + 3);
		rc = 0;
	}
	fclose(f);
	return rc;
}

int guard_start(struct event_base *base, const struct config *cfg, int sidecar_port,
		struct guard **out)
{
	struct guard *g;
	struct enforcer_opts opts = { 0 };
	char own[4096], path[4200];
	int rc;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	rc = parse_section(cfg, &g->cfg, NULL);
	if (rc == -ENOENT || (rc == 0 && !g->cfg.enabled)) {
		log_warn("kernel enforcement is OFF (%s): agents can reach MCP servers without going "
			 "through this gateway", rc ? "no \"enforcement\" section" : "enforcement.enabled is false");
		enforcer_config_free(&g->cfg);
		free(g);
		return 0;
	}
	if (rc)
		goto fail;
	opts.pin_dir = g->cfg.pin_dir;
	opts.cgroup_root = g->cfg.cgroup_root;
	opts.mode = ENFORCER_LOAD;
	opts.deny_errno = g->cfg.deny_errno;
	rc = enforcer_open(&opts, &g->e);
	if (rc)
		goto fail;
	/* Callers' identity from the map the sockops program fills (enforce/peer_fast.h). */
	rc = peer_fast_open(enforcer_pin_dir(g->e));
	if (rc < 0)
		log_info("identity: callers found with sock_diag (no warden_conns map: %s)",
			 strerror(-rc));
	if ((rc = enforcer_apply_config(g->e, &g->cfg)) ||
	    (rc = enforcer_set_sidecar(g->e, (uint16_t)sidecar_port)))
		goto fail;
	/* The daemon itself must reach the upstreams even when an ancestor is enrolled. */
	if (own_cgroup(own, sizeof(own)) == 0 && strcmp(own, "/")) {
		snprintf(path, sizeof(path), "%s%s", enforcer_cgroup_root(g->e), own);
		rc = enforcer_exempt(g->e, path);
		if (rc)
			log_warn("enforcement: cannot exempt the daemon's own cgroup %s: %s", own,
				 strerror(-rc));
		else
			log_info("enforcement: the daemon's own cgroup %s is exempt", own);
	}
	/* The redirect port is left as the pinned config has it: the caller sets it next
	 * (guard_set_redirect_port), to the listener a reload keeps or to 0. Writing 0 here
	 * would refuse every redirected connect until then. */
	g->ups = calloc(cfg->nupstreams + 1, sizeof(*g->ups));
	g->ups_server = calloc(cfg->nupstreams + 1, sizeof(*g->ups_server));
	g->ups_path = calloc(cfg->nupstreams + 1, sizeof(*g->ups_path));
	if (!g->ups || !g->ups_server || !g->ups_path) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct upstream_config *u = &cfg->upstreams[i];
		char *host = NULL, *upath = NULL;
		uint16_t port;
		if (u->kind != UPSTREAM_HTTP && u->kind != UPSTREAM_SSE)
			continue;
		rc = url_hostport(u->url, &host, &port);
		/* Only plain-HTTP Streamable HTTP upstreams can be redirected: the agent then
		 * speaks to the sidecar what it would speak to them. An https:// one would need
		 * the sidecar to present that server's certificate. */
		if (rc == 0 && u->kind == UPSTREAM_HTTP && !strncasecmp(u->url, "http://", 7))
			rc = url_path(u->url, &upath);
		if (rc == 0)
			rc = enforcer_upstream_protect_ex(g->e, base, host, port,
							  upath ? WARDEN_RULE_F_REDIRECT : 0,
							  UPSTREAM_REFRESH_MS, &g->ups[g->nups]);
		if (rc == 0) {
			g->ups_server[g->nups] = i;
			g->ups_path[g->nups] = upath;
			upath = NULL;
			g->nups++;
		} else {
			log_error("enforcement: cannot protect upstream %s (%s): %s", u->name, u->url,
				  strerror(-rc));
		}
		free(upath);
		free(host);
	}
	rc = enforcer_events_attach(g->e, base, on_deny, g);
	if (rc)
		goto fail;
	g->prune = event_new(base, -1, EV_PERSIST, on_prune, g);
	if (!g->prune || event_add(g->prune, &(struct timeval){ .tv_sec = PRUNE_INTERVAL_MS / 1000,
				.tv_usec = PRUNE_INTERVAL_MS % 1000 * 1000 }) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (g->cfg.kube && (rc = kube_watch_start(base, g->e, g->cfg.kube, &g->kube)))
		goto fail;
	log_info("kernel enforcement is ON: pins in %s, %zu enrolled target(s), %zu upstream "
		 "address(es) protected, sidecar port %d", enforcer_pin_dir(g->e), g->cfg.nenroll,
		 g->nups, sidecar_port);
	*out = g;
	return 0;
fail:
	log_error("kernel enforcement could NOT start (%s): nothing is enforced; the gateway keeps "
		  "serving", strerror(-rc));
	guard_stop(g);
	return rc;
}

void guard_stop(struct guard *g)
{
	if (!g)
		return;
	kube_watch_stop(g->kube);
	event_free_opt(g->prune);
	for (size_t i = 0; i < g->nups; i++) {
		enforcer_upstream_free(g->ups[i], false);  /* stay protected: fail closed */
		free(g->ups_path[i]);
	}
	free(g->ups);
	free(g->ups_server);
	free(g->ups_path);
	if (g->e) {
		enforcer_events_detach(g->e);
		enforcer_close(g->e);
	}
	enforcer_config_free(&g->cfg);
	free(g);
}

struct enforcer *guard_enforcer(struct guard *g) { return g ? g->e : NULL; }

bool guard_redirect_wanted(const struct guard *g, uint16_t *port)
{
	bool any = false;

	if (!g)
		return false;
	for (size_t i = 0; i < g->cfg.nenroll; i++)
		any |= enforcer_target_redirects(&g->cfg, &g->cfg.enroll[i]);
	any |= g->cfg.kube && g->cfg.kube->redirect;	/* the pod watch's enrolments */
	*port = g->cfg.redirect_port;
	return any;
}

int guard_set_redirect_port(struct guard *g, uint16_t port)
{
	int rc = enforcer_set_redirect(g->e, port);

	if (rc == 0 && port)
		log_info("enforcement: transparent redirect to 127.0.0.1:%u and [::1]:%u for "
			 "enrolments that ask for it", port, port);
	return rc;
}

int guard_redirect_route(struct guard *g, const struct warden_redirect *rv, const char *path,
			 size_t *server)
{
	int family = rv->family;
	uint16_t port = ntohs(rv->port);
	bool addr_known = false;

	for (size_t i = 0; i < g->nups; i++) {
		if (!g->ups_path[i] || !enforcer_upstream_has(g->ups[i], family, rv->addr, port))
			continue;
		addr_known = true;
		/* Two upstreams may share host:port: the agent's path tells them apart. */
		if (!path || strcmp(path, g->ups_path[i]))
			continue;
		*server = g->ups_server[i];
		return 0;
	}
	return addr_known ? -ENOTDIR : -ENOENT;
}
