/* main: flags, start-up order, signals, shutdown. */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "admin/admin.h"
#include "base/alloc.h"
#include "base/config.h"
#include "base/epoch.h"
#include "base/event_opt.h"
#include "base/json_get.h"
#include "base/listen_unix.h"
#include "mcp/transport/front.h"
#include "mcp/transport/redirect_in.h"
#include "govern/gate.h"
#include "enforce/guard.h"
#include "base/log.h"
#include "base/thread.h"
#include "observe/audit.h"
#include "observe/logship.h"
#include "observe/logstore.h"
#include "observe/logtail.h"
#include "observe/metrics.h"
#include "mcp/catalog.h"
#include "observe/trace.h"
#include "mcp/router.h"
#include "llm/llm.h"
#include "mcp/transport/upstream_http.h"
#include "mcp/transport/upstream_stdio.h"
#include "workers.h"

struct daemon {
	struct event_base *base;
	const char *config_path;
	struct config *cfg;
	struct gate *gate;
	struct router *router;
	struct llm *llm;                /* the /v1/ LLM route */
	struct front *front;
	struct front_group *group;      /* the fronts of every loop (workers > 1), or NULL */
	struct workers *workers;        /* the loops beside this one, or NULL */
	struct admin *admin;
	struct guard *guard;
	struct redirect_in *redirect;   /* the transparent-redirect listener (the front's) */
	struct reload_job *reloading;   /* a SIGHUP's new configuration being read */
	bool reload_again;              /* another SIGHUP came meanwhile */
	bool tracing_applied;           /* trace_start has run for the section in `tracing` */
	cJSON *tracing;                 /* a copy of that section (NULL: none) */
	/* During a full reload: the running configuration's gate rules once they have left its
	 * gate, for going back to it (its keys are no longer in its document: config_shrink). */
	bool keep_back;
	struct gate_rules *back;
};

/* A SIGHUP's configuration is read, parsed and checked on a thread of its own (for 100k keys
 * that is most of a reload), then applied on the loop. The thread also builds the gate's new
 * rules and shrinks the config: when only governance changed, the loop only swaps. */
struct reload_job {
	struct daemon *d;
	pthread_t thread;
	struct event *done;             /* activated by the thread when it is finished */
	cJSON *running;                 /* the running config's other sections, a copy */
	struct config *cfg;
	struct config_errors errs;
	int rc;
	bool governance_only;           /* nothing but config_governance sections differ */
	struct gate_rules *rules;       /* then: the gate's, parsed */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: mcpwarden [-c FILE] [--check-config FILE] [--log-level LEVEL]\n"
		"\n"
		"The mcpwarden sidecar: an MCP gateway (Streamable HTTP) in front of MCP servers.\n"
		"\n"
		"  -c, --config FILE        configuration file (default: the embedded default)\n"
		"      --check-config FILE  validate FILE, print every error with its field path, exit\n"
		"      --log-level LEVEL    debug, info, warn or error (overrides the config)\n"
		"  -V, --version            print the version and exit\n"
		"  -h, --help               this help\n"
		"\n"
		"Signals: SIGHUP reloads the configuration (a bad file is refused and the running one\n"
		"keeps serving); SIGINT and SIGTERM shut down cleanly.\n"
		"See docs/configuration.md.\n");
}

static void print_errors(const char *path, const struct config_errors *e)
{
	fprintf(stderr, "mcpwarden: %s: %d configuration error%s:\n", path ? path : "(embedded)",
		e->count, e->count == 1 ? "" : "s");
	for (int i = 0; i < e->count; i++)
		fprintf(stderr, "  %s\n", e->msg[i]);
}

/* Load and validate every section, the modules' own included: 0 with *out, or -EINVAL with
 * every error in errs (and *out NULL). */
/* Load and check the configuration at path; with rules not NULL, also its gate rules. */
static int validate(const char *path, struct config **out, struct gate_rules **rules,
		    struct config_errors *errs)
{
	int rc = config_load(path, out, errs);

	if (rules)
		*rules = NULL;
	if (rc)
		return rc;
	(void)gate_check(*out, rules, errs);   /* its errors are in errs, counted below */
	llm_prepare(*out, errs);        /* API key files are read here, off the loop */
	guard_check(*out, errs);
	struct listen_unix *lu = NULL;
	if (listen_unix_parse((*out)->raw, &lu, errs) == 0)
		listen_unix_free(lu);
	struct trace_config tc;
	int trc = trace_config_parse(*out, &tc, errs, NULL);
	trace_config_free(&tc);
	struct logstore_options lo;
	if (logstore_options_parse((*out)->raw, (*out)->state_dir, &lo, errs) == 0) {
		struct logpg_options po;
		if (logpg_options_parse((*out)->raw, &po, errs) == 0)
			logpg_options_clear(&po);
		logstore_options_clear(&lo);
	}
	if (errs->count || trc) {
		if (rules) {
			gate_rules_free(*rules);
			*rules = NULL;
		}
		config_free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Printed after every (re)start: scripts and tests wait for this exact line. */
/* Transparent redirect (docs/enforcement.md): when an enrolment asks for it, the front listens
 * on 127.0.0.1:P and [::1]:P as well and the programs start sending connects there. The
 * listener stays across reloads; a reload without redirect leaves it bound but unused. */
static void redirect_start(struct daemon *d)
{
	uint16_t port = 0;
	int rc = 0;

	if (!d->guard)
		return;
	if (!guard_redirect_wanted(d->guard, &port)) {
		if ((rc = guard_set_redirect_port(d->guard, 0)))
			log_error("transparent redirect: cannot clear the redirect port: %s",
				  strerror(-rc));
		return;
	}
	if (!d->redirect && (rc = redirect_in_new(front_http(d->front), port, &d->redirect)) == 0)
		front_set_redirect(d->front, d->redirect);
	if (rc == 0) {
		redirect_in_set_guard(d->redirect, d->guard);
		rc = guard_set_redirect_port(d->guard, redirect_in_port(d->redirect));
	}
	if (rc) {
		log_error("transparent redirect is OFF (%s): enrolled agents' connects to their "
			  "upstreams are refused", strerror(-rc));
		(void)guard_set_redirect_port(d->guard, 0);	/* logged just above */
	}
}

static void announce(const struct daemon *d)
{
	const struct config *cfg = d->cfg;

	if (d->admin)
		log_announce("mcpwarden: admin listening on http://%s%s%s:%d",
			strchr(cfg->admin_host, ':') ? "[" : "", cfg->admin_host,
			strchr(cfg->admin_host, ':') ? "]" : "", admin_port(d->admin));
	log_announce("mcpwarden: listening on http://%s%s%s:%d%s",
		strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
		strchr(cfg->listen_host, ':') ? "]" : "", front_port(d->front), cfg->mcp_path);
}

/* cfg is served: say where, then put kernel enforcement around it. Enforcement failing is
 * loud but not fatal: the gateway still governs its callers. */
static void serving(struct daemon *d, struct config *cfg)
{
	d->cfg = cfg;
	announce(d);
	if (guard_start(d->base, cfg, front_port(d->front), &d->guard))
		d->guard = NULL;
	redirect_start(d);
	metrics_set_enforcer(d->guard ? guard_enforcer(d->guard) : NULL);
}

/* The router first: closing its links settles the calls in flight; then the gate, whose
 * store drains every queued charge before it closes. The first gate to go during a full
 * reload holds the running configuration's rules: they are kept to go back to. */
static void serve_free(struct daemon *d)
{
	if (d->front)
		front_set_llm(d->front, NULL);
	llm_free(d->llm);       /* before the gate: its requests release their reservations */
	d->llm = NULL;
	router_free(d->router);
	d->router = NULL;
	if (d->gate && d->keep_back && !d->back)
		d->back = gate_free_keep_rules(d->gate);
	else
		gate_free(d->gate);
	d->gate = NULL;
}

/* The running configuration's rules, kept by serve_free or serve_up, for going back to it;
 * nothing more is kept. NULL when its gate is still here (see serve_up). */
static struct gate_rules *back_rules(struct daemon *d)
{
	struct gate_rules *r = d->back;

	d->keep_back = false;
	d->back = NULL;
	return r;
}

/* The gate (keys, policies, limits, budgets and their store), then the router that serves
 * through it. A gate still here is kept (a reload whose store is the running one's: see
 * gate_keeps_store): the LLM route and the router are rebuilt around it, so nothing is opened
 * or read from disk on the loop. rules: cfg's, parsed on the reload thread or kept in d->back
 * (going back to the previous configuration), or NULL: parsed here at start-up, or those of a
 * kept gate, which are cfg's when a reload goes back before it replaced them. */
static int serve_up(struct daemon *d, struct config *cfg, struct gate_rules *rules)
{
	struct config_errors errs = { 0 };
	bool keep = d->gate != NULL;
	int rc = 0;

	if (keep) {
		if (d->front)
			front_set_llm(d->front, NULL);
		llm_free(d->llm);
		d->llm = NULL;
		router_free(d->router); /* its calls in flight settle through the gate */
		d->router = NULL;
	}
	if (!keep)
		rc = gate_open(d->base, cfg, rules, &d->gate, &errs);
	else
		rc = gate_reload_all(d->gate, cfg, rules, d->keep_back && !d->back ? &d->back : NULL);
	config_shrink(cfg);     /* the gate has the keys now */
	if (rc == 0)
		rc = router_new(d->base, cfg, d->gate, &d->router);
	if (rc == 0 && (rc = llm_new(d->base, cfg, d->gate, d->router, &d->llm))) {
		router_free(d->router);
		d->router = NULL;
	}
	if (rc) {
		for (int i = 0; i < errs.count; i++)
			log_error("%s", errs.msg[i]);
		serve_free(d);
	}
	return rc;
}

/* (Re)start the span exporter when the tracing section is new or changed (the environment
 * does not change under a running process). A bad section is -EINVAL; an exporter that cannot
 * start leaves tracing off, loudly, and is not fatal. */
static int apply_tracing(struct daemon *d, struct config *cfg)
{
	const cJSON *now = json_get(cfg->raw, "tracing");
	const cJSON *was = d->tracing;

	if (d->tracing_applied && ((!now && !was) || (now && was && cJSON_Compare(now, was, 1))))
		return 0;
	d->tracing_applied = true;
	cJSON_Delete(d->tracing);
	d->tracing = now ? cJSON_Duplicate(now, 1) : NULL;
	int rc = trace_start(cfg);
	return rc == -EINVAL ? rc : 0;
}

/* rules: cfg's gate rules parsed already (taken over), or NULL. */
static int start(struct daemon *d, struct config *cfg, struct gate_rules *rules)
{
	enum log_level lvl;
	int rc;

	if (log_level_parse(cfg->log_level, &lvl) == 0)
		log_set_level(lvl);
	if (apply_tracing(d, cfg)) {
		gate_rules_free(rules);
		return -EINVAL;
	}
	/* A gate still here was kept by stop_serving for this configuration (a reload). */
	rc = serve_up(d, cfg, rules);
	if (rc) {
		log_error("cannot start: %s", strerror(-rc));
		return rc;
	}
	rc = front_new(d->base, cfg, d->gate, d->router, &d->front);
	if (rc) {
		serve_free(d);
		return rc;
	}
	front_set_llm(d->front, d->llm);
	if (cfg->workers > 1) {
		if (!(d->group = front_group_new()))
			rc = -ENOMEM;
		else if ((rc = front_join(d->front, d->group)) == 0)
			rc = workers_start(cfg, d->gate, d->router, d->group, front_port(d->front),
					   &d->workers);
	}
	if (rc == 0 && (rc = admin_new(d->base, cfg, d->router, &d->admin)) != 0)
		log_error("cannot start the admin plane: %s", strerror(-rc));
	if (rc) {
		workers_stop(d->workers);
		d->workers = NULL;
		front_free(d->front);
		d->front = NULL;
		front_group_free(d->group);
		d->group = NULL;
		serve_free(d);
		return rc;
	}
	serving(d, cfg);
	if (!cfg->auth_required)
		log_warn("authentication is OFF (auth.required = false): any local process can call "
			 "every tool");
	return 0;
}

/* Undo start(); the config stays. keep_gate: a reload to a configuration whose store is the
 * same (gate_keeps_store): the gate stays for start() to build on. */
static void stop_serving(struct daemon *d, bool keep_gate)
{
	metrics_set_enforcer(NULL);
	if (d->redirect)
		redirect_in_set_guard(d->redirect, NULL);
	guard_stop(d->guard);
	d->guard = NULL;
	d->redirect = NULL;	/* the front frees it */
	/* The other loops first: their halves go before the core, their fronts before the
	 * group. Then the listeners, so no reply is written to a router that is gone. */
	workers_stop(d->workers);
	d->workers = NULL;
	front_free(d->front);
	d->front = NULL;
	front_group_free(d->group);
	d->group = NULL;
	admin_free(d->admin);
	d->admin = NULL;
	if (!keep_gate)
		serve_free(d);
}

static void reload_cancel(struct daemon *d);

static void stop(struct daemon *d)
{
	reload_cancel(d);
	gate_rules_free(back_rules(d));
	/* Nothing will listen on the redirect port: redirected connects are refused again
	 * (a port left pinned could be bound by another process). */
	if (d->guard && d->redirect && guard_set_redirect_port(d->guard, 0))
		log_warn("transparent redirect: the redirect port stays pinned after exit");
	stop_serving(d, false);
	config_free(d->cfg);
	d->cfg = NULL;
}

/* Replace the router behind the running listener with one for cfg. The old router goes first:
 * its calls in flight are answered ("session ended") and its store drains before the new one
 * opens the same file. */
static int swap_router(struct daemon *d, struct config *cfg, struct gate_rules *rules)
{
	int rc;

	if ((rc = apply_tracing(d, cfg)) != 0)
		return rc;
	metrics_set_enforcer(NULL);
	if (d->redirect)
		redirect_in_set_guard(d->redirect, NULL);
	guard_stop(d->guard);
	d->guard = NULL;
	/* The other loops' halves go before the core they are halves of. */
	workers_stop(d->workers);
	d->workers = NULL;
	/* The admin plane holds the router: detached now, pointed at the new one below. Its
	 * listener stays when its address is unchanged. */
	bool keep_admin = d->admin && cfg->admin_host && !strcmp(cfg->admin_host, d->cfg->admin_host) &&
			  cfg->admin_port == d->cfg->admin_port;
	if (keep_admin) {
		admin_reconfigure(d->admin, NULL, NULL);
	} else {
		admin_free(d->admin);
		d->admin = NULL;
	}
	front_close_streams(d->front);
	/* A store elsewhere: the old one drains and the new one is opened and read here (docs/
	 * configuration.md says what that costs). */
	if (!(d->gate && gate_keeps_store(d->gate, cfg)))
		serve_free(d);
	rc = serve_up(d, cfg, rules);
	if (rc)
		return rc;
	rc = keep_admin ? admin_reconfigure(d->admin, cfg, d->router)
			: admin_new(d->base, cfg, d->router, &d->admin);
	if (rc) {
		log_error("cannot start the admin plane: %s", strerror(-rc));
		serve_free(d);
		return rc;
	}
	front_reconfigure(d->front, cfg, d->gate, d->router);
	front_set_llm(d->front, d->llm);
	/* The listener is kept only when it was shared before too (reload below). */
	rc = workers_start(cfg, d->gate, d->router, d->group, front_port(d->front), &d->workers);
	if (rc)
		return rc;
	serving(d, cfg);
	return 0;
}

/* Keys, policies, limits or budgets changed and nothing else: no agent loses its session and
 * no MCP server is restarted. The gate's rules and the shrunk config were made off the loop:
 * here they are only swapped in. */
static void reload_governance(struct daemon *d, struct config *ncfg, struct gate_rules *rules)
{
	gate_reload_rules(d->gate, rules);
	llm_reload(d->llm, ncfg);       /* prepared on the reload thread */
	/* The other loops read the config's sections and auth.required: not while they move. */
	workers_pause(d->workers);
	config_take_governance(d->cfg, ncfg);
	workers_resume(d->workers);
	/* policies, tool_integrity or the lockfile may have changed what keys see of the tools */
	if (d->router)
		router_lists_changed(d->router, CAT_TOOLS);
	if (d->admin && admin_reconfigure(d->admin, d->cfg, d->router))
		log_error("admin plane: could not take the new key list");
}

static void reloaded_now(void *what)
{
	malloc_trim(0);
	log_info("configuration reloaded%s%s", what ? ": " : "", what ? (const char *)what : "");
}

/* A reload parsed a whole configuration next to the running one and freed one of them: give
 * those pages back before saying it is done, or RSS stays at the peak of two configurations.
 * The rules it replaced are freed once every loop has passed a turn (base/epoch.h): the trim
 * and the line come after that (what: a static text, or NULL). */
static void reloaded(const char *what)
{
	epoch_defer(reloaded_now, (void *)what);
}

/* The unix-socket listener ("listen_unix") is the front's too: a change rebuilds the front. */
static bool same_listen_unix(const struct config *a, const struct config *b)
{
	const cJSON *x = json_get(a->raw, "listen_unix");
	const cJSON *y = json_get(b->raw, "listen_unix");

	return (!x && !y) || (x && y && cJSON_Compare(x, y, true));
}

/* Apply a SIGHUP's configuration, read and checked already (j says how that went). */
static void reload(struct daemon *d, struct reload_job *j)
{
	struct config *ncfg = j->cfg;
	const struct config_errors *errs = &j->errs;

	j->cfg = NULL;
	if (j->rc) {
		log_error("reload refused: %s has %d error%s; the running configuration stays",
			  d->config_path ? d->config_path : "(embedded)", errs->count,
			  errs->count == 1 ? "" : "s");
		for (int i = 0; i < errs->count; i++)
			log_error("  %s", errs->msg[i]);
		return;
	}
	if (j->governance_only) {
		reload_governance(d, ncfg, j->rules);
		j->rules = NULL;
		config_free(ncfg);
		reloaded("keys, policies and limits replaced; sessions and upstreams kept");
		return;
	}
	char why[400];
	if (d->gate && gate_reload_strands_charges(d->gate, ncfg, why, sizeof(why))) {
		log_error("reload refused: %s; the running configuration stays", why);
		gate_rules_free(j->rules);
		j->rules = NULL;
		config_free(ncfg);
		return;
	}
	const cJSON *ologs = json_get(d->cfg->raw, "logs");
	const cJSON *nlogs = json_get(ncfg->raw, "logs");
	if ((ologs || nlogs) && !cJSON_Compare(ologs, nlogs, 1))
		log_warn("reload: the log store keeps the settings it started with until a "
			 "restart (logs changed)");
	else if (strcmp(d->cfg->state_dir, ncfg->state_dir))
		log_warn("reload: the log store keeps the settings it started with until a "
			 "restart (state_dir changed)");
	/* Sessions belong to the old upstream set: they end, and clients re-initialise (404). */
	log_info("reloading %s", d->config_path ? d->config_path : "(embedded)");
	struct config *old = d->cfg;
	/* The gate's rules, parsed by the reload's thread: not parsed again here. */
	struct gate_rules *rules = j->rules;
	j->rules = NULL;
	const char *kept = d->gate && gate_keeps_store(d->gate, ncfg)
			   ? "upstreams restarted; store, spend, rate limits and pins kept" : NULL;
	d->keep_back = true;
	if (!strcmp(old->listen_host, ncfg->listen_host) && old->listen_port == ncfg->listen_port &&
	    same_listen_unix(old, ncfg) && (old->workers > 1) == (ncfg->workers > 1)) {
		/* Same address: keep the listener (and its port, even when it was picked). */
		if (swap_router(d, ncfg, rules) == 0) {
			gate_rules_free(back_rules(d));
			config_free(old);
			reloaded(kept);
			return;
		}
		log_error("the new configuration could not start; going back to the previous one");
		config_free(ncfg);
		if (swap_router(d, old, back_rules(d))) {
			log_error("the previous configuration could not start either: exiting");
			front_free(d->front);  /* nothing may reach a router that is gone */
			d->front = NULL;
			event_base_loopexit(d->base, NULL);
		}
		return;
	}
	stop_serving(d, kept != NULL);
	if (start(d, ncfg, rules)) {
		log_error("the new configuration could not start; going back to the previous one");
		config_free(ncfg);
		if (start(d, old, back_rules(d))) {
			log_error("the previous configuration could not start either: exiting");
			config_free(old);
			event_base_loopexit(d->base, NULL);
		}
		return;
	}
	gate_rules_free(back_rules(d));
	config_free(old);
	reloaded(kept);
}

/* The reading half of a reload, on its thread (it touches nothing of the daemon's but the
 * path): the file, its checks, the gate's new rules, and the config shrunk as the running one
 * is kept. */
static void reload_read(struct reload_job *j)
{
	j->rc = validate(j->d->config_path, &j->cfg, &j->rules, &j->errs);
	if (j->rc == 0) {
		j->governance_only = config_only_governance_differs(j->running, j->cfg->raw);
		/* The rules are parsed: the keys can be text now (printing and deflating 100k
		 * keys takes a few hundred ms, not for the loop). */
		config_shrink(j->cfg);
	}
}

static void reload_job_free(struct reload_job *j)
{
	gate_rules_free(j->rules);
	config_free(j->cfg);
	cJSON_Delete(j->running);
	free(j);
}

static void *validate_main(void *arg)
{
	struct reload_job *j = arg;

	reload_read(j);
	event_active(j->done, EV_TIMEOUT, 1);   /* the loop applies it */
	return NULL;
}

static void reload_start(struct daemon *d);

static void on_validated(evutil_socket_t fd, short what, void *arg)
{
	struct reload_job *j = arg;
	struct daemon *d = j->d;

	pthread_join(j->thread, NULL);
	event_free(j->done);
	d->reloading = NULL;
	reload(d, j);
	reload_job_free(j);
	if (d->reload_again) {
		d->reload_again = false;
		reload_start(d);
	}
}

static void reload_start(struct daemon *d)
{
	struct reload_job *j = xcalloc(1, sizeof(*j));
	int rc;

	j->d = d;
	/* The thread compares the new file with a copy: the running config is the loop's. */
	j->running = cJSON_CreateObject();
	for (const cJSON *it = d->cfg->raw->child; it; it = it->next) {
		bool governance = !it->string;

		for (const char *const *k = config_governance; *k && !governance; k++)
			governance = !strcmp(it->string, *k);
		if (!governance)
			cJSON_AddItemToObject(j->running, it->string, cJSON_Duplicate(it, 1));
	}
	j->done = event_new(d->base, -1, 0, on_validated, j);
	if (!j->done ||
	    (rc = thread_start(&j->thread, THREAD_NAME_PREFIX "reload", validate_main, j)) != 0) {
		/* No thread: read it here, as before. */
		log_warn("reload: no thread to read the configuration on; reading it on the loop");
		event_free_opt(j->done);
		reload_read(j);
		reload(d, j);
		reload_job_free(j);
		return;
	}
	d->reloading = j;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (d->reloading) {     /* one at a time; the file may have changed again since */
		d->reload_again = true;
		return;
	}
	reload_start(d);
}

/* A reload still reading its configuration is finished and dropped (the daemon is ending). */
static void reload_cancel(struct daemon *d)
{
	struct reload_job *j = d->reloading;

	if (!j)
		return;
	pthread_join(j->thread, NULL);
	event_free(j->done);
	reload_job_free(j);
	d->reloading = NULL;
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(d->base, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct daemon d = { 0 };
	struct config_errors errs = { 0 };
	struct config *cfg = NULL;
	struct event *sigs[3] = { NULL, NULL, NULL };
	const char *check = NULL, *level = NULL;
	int opt, rc = 1;

	alloc_init();
	/* Fixed thresholds (glibc raises both as big blocks come and go, up to 32 MB and 64 MB):
	 * a reload's big blocks (a 100k-key parse tree, the keys' text) are then mapped and
	 * unmapped on their own, and the reload thread's arena gives its free top back, so RSS
	 * returns to its level after each reload instead of keeping the peak. */
	if (!mallopt(M_MMAP_THRESHOLD, 128 * 1024) || !mallopt(M_TRIM_THRESHOLD, 128 * 1024))
		fprintf(stderr, "mcpwarden: mallopt refused the memory thresholds\n");
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': d.config_path = optarg; break;
		case 'C': check = optarg; break;
		case 'l': level = optarg; break;
		case 'V': printf("mcpwarden %s\n", WARDEN_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (check) {
		if (validate(check, &cfg, NULL, &errs)) {
			print_errors(check, &errs);
			return 1;
		}
		printf("%s: OK (%zu upstream%s)\n", check, cfg->nupstreams,
		       cfg->nupstreams == 1 ? "" : "s");
		config_free(cfg);
		return 0;
	}
	if (config_load(d.config_path, &cfg, &errs)) {
		print_errors(d.config_path, &errs);
		return 1;
	}
	if (level) {
		free(cfg->log_level);
		cfg->log_level = strdup(level);
		enum log_level l;
		if (!cfg->log_level || log_level_parse(level, &l)) {
			fprintf(stderr, "mcpwarden: --log-level: must be debug, info, warn or error\n");
			config_free(cfg);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads()) {
		fprintf(stderr, "mcpwarden: libevent has no pthreads support\n");
		config_free(cfg);
		return 1;
	}
	/* From here on, stdout and stderr are written by a thread: a slow reader of the record
	 * stream must not stall the agents' calls. */
	if (log_async_start())
		log_warn("cannot start the log writer thread: logging directly");
	d.base = event_loop_new();
	if (!d.base || log_loop_attach(d.base) || epoch_loop_attach(d.base) ||
	    upstream_http_init(d.base)) {
		fprintf(stderr, "mcpwarden: cannot create the event loop\n");
		config_free(cfg);
		goto out;
	}
	sigs[0] = evsignal_new(d.base, SIGHUP, on_hup, &d);
	sigs[1] = evsignal_new(d.base, SIGINT, on_term, &d);
	sigs[2] = evsignal_new(d.base, SIGTERM, on_term, &d);
	for (int i = 0; i < 3; i++)
		if (!sigs[i] || event_add(sigs[i], NULL))
			goto out;
	/* Before the log store: its writer's notes reach the live tail through the loop. */
	if (logtail_init(d.base)) {
		fprintf(stderr, "mcpwarden: cannot create the event loop\n");
		config_free(cfg);
		goto out;
	}
	/* The log store lives as long as the process: a reload keeps it (its section is read at
	 * start-up only, docs/configuration.md). */
	struct logstore_options lo;
	if (logstore_options_parse(cfg->raw, cfg->state_dir, &lo, &errs)) {
		print_errors(d.config_path, &errs);
		config_free(cfg);
		goto out;
	}
	/* Both log writers in the idle time, or neither (logs.writer_priority). */
	log_async_idle(lo.writer_idle);
	rc = logstore_start(&lo, audit_note);
	if (rc)
		log_error("cannot open the log store %s: %s", lo.path, strerror(-rc));
	struct logpg_options po;
	/* Without a local store (logs.enabled false) there is nothing to ship: a viewer of the
	 * fleet's store (docs/fleet-logs.md). */
	if (!rc && lo.enabled && logpg_options_parse(cfg->raw, &po, &errs) == 0) {
		rc = logship_start(&po, lo.path);
		if (rc)
			log_error("cannot start the shipper to logs.postgres: %s", strerror(-rc));
		logpg_options_clear(&po);
	}
	logstore_options_clear(&lo);
	if (rc) {
		rc = 1;
		config_free(cfg);
		goto out;
	}
	rc = 1;
	if (start(&d, cfg, NULL)) {
		config_free(cfg);
		goto out;
	}
	malloc_trim(0);         /* the keys' parse tree is text now (config_shrink): drop its pages */
	alloc_cache_start();
	event_base_dispatch(d.base);
	rc = 0;
out:
	stop(&d);
	for (int i = 0; i < 3; i++)
		event_free_opt(sigs[i]);
	trace_stop();          /* the spans of the calls just ended are flushed */
	cJSON_Delete(d.tracing);
	upstream_http_shutdown();
	upstream_stdio_shutdown();
	logtail_fini();
	epoch_loop_detach();   /* what was replaced and still waits for the loop is freed */
	log_loop_detach();     /* the records staged in the last turn go to the writer */
	if (d.base)
		event_base_free(d.base);
	libevent_global_shutdown();
	logstore_stop();   /* its final checkpoint record goes out through the log writer */
	logship_stop();    /* after the store: the final checkpoint is shipped too */
	log_async_stop();  /* last: everything logged during shutdown is written out */
	alloc_cache_stop();
	return rc;
}
