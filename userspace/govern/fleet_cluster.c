/* fleet_cluster: the fleet's counters on a Redis Cluster (counters.cluster, docs/counters.md).
 *
 * The slot map is read with CLUSTER SLOTS from a seed (or a master already known) on a short-
 * lived connection, one read at a time; every master gets one connection of its own, set up as
 * the standalone one is (AUTH, SCRIPT LOAD). A command goes to the master of its first key's
 * slot (every key of one script shares a hash tag, so one slot). MOVED: the slot is mapped to
 * the node named, the command sent there again and the map read again; ASK: ASKING and the
 * command on that node, once; TRYAGAIN (keys of a slot half migrated): sent again 20 ms later,
 * for at most a second; CLUSTERDOWN or a node lost: its slots' commands are unreachable (the
 * replay queue, fail_closed or local, as a standalone Redis down) and the map is read again
 * with the reconnect's backoff. The fleet is "up" when every slot has a master that is up. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/fleet_int.h"

#define NO_NODE 0xff
#define TRYAGAIN_MS 20
#define TRYAGAIN_MAX 50                 /* x 20 ms: a second */
#define REDIRECT_MAX 5
#define REFRESH_MIN_NS (100 * 1000000ull)


struct node {
	struct fleet *f;
	bool used;
	char host[64];
	int port;
	redisAsyncContext *ac;
	bool up;                        /* connected, scripts loaded */
	int loads_pending;
	uint64_t connect_ns;
};

struct fleet_cluster {
	struct node nodes[FLEET_CLUSTER_MAX_NODES];
	uint8_t slot_node[FLEET_SLOTS];
	bool mapped;                    /* a slot map was read */
	redisAsyncContext *seed_ac;     /* CLUSTER SLOTS in flight */
	uint64_t seed_ns, refresh_ns;
	size_t seed_next;
	struct list_head deferred;      /* struct req answered TRYAGAIN, sent again by defer_ev */
	struct event *defer_ev;
	uint64_t refreshes, moved, asks, tryagain;
};

/* ---- slots ---- */

uint16_t fleet_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((uint8_t)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned fleet_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open) {
		close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
		if (close && close > open + 1)
			return fleet_crc16(open + 1, (size_t)(close - open - 1)) & (FLEET_SLOTS - 1);
	}
	return fleet_crc16(key, len) & (FLEET_SLOTS - 1);
}

/* [lo, hi, [host, port, id...], replicas...] per range. A nil host (a cluster with
 * cluster-preferred-endpoint-type unknown-endpoint) means the address the map was asked of. */
int fleet_cluster_parse_slots(const struct redisReply *rep, const char *asked,
			      struct fleet_slot_range *out, size_t max, size_t *n)
{
	size_t asked_len = asked ? strlen(asked) : 0;

	*n = 0;
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		return -EINVAL;
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *r = rep->element[i], *m;
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
		    r->element[0]->type != REDIS_REPLY_INTEGER ||
		    r->element[1]->type != REDIS_REPLY_INTEGER)
			return -EINVAL;
		m = r->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    (m->element[0]->type != REDIS_REPLY_STRING &&
		     m->element[0]->type != REDIS_REPLY_NIL) ||
		    m->element[1]->type != REDIS_REPLY_INTEGER)
			return -EINVAL;
		bool nil = m->element[0]->type == REDIS_REPLY_NIL;
		const char *host = nil ? asked : m->element[0]->str;
		size_t hlen = nil ? asked_len : m->element[0]->len;
		long long lo = r->element[0]->integer, hi = r->element[1]->integer;
		if (lo < 0 || hi < lo || hi >= FLEET_SLOTS || *n == max || hlen == 0 ||
		    hlen >= sizeof(out->host) || memchr(host, '\0', hlen) ||
		    m->element[1]->integer <= 0 || m->element[1]->integer > 65535)
			return -EINVAL;
		out[*n] = (struct fleet_slot_range){ .lo = (unsigned)lo, .hi = (unsigned)hi,
						     .port = (int)m->element[1]->integer };
		memcpy(out[*n].host, host, hlen);
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

/* ---- nodes ---- */

static struct node *node_find(struct fleet_cluster *c, const char *host, size_t hlen, int port)
{
	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++) {
		struct node *n = &c->nodes[i];
		if (n->used && n->port == port && strlen(n->host) == hlen &&
		    !memcmp(n->host, host, hlen))
			return n;
	}
	return NULL;
}

static struct node *node_of_ac(struct fleet_cluster *c, const redisAsyncContext *ac)
{
	for (size_t i = 0; ac && i < FLEET_CLUSTER_MAX_NODES; i++)
		if (c->nodes[i].used && c->nodes[i].ac == ac)
			return &c->nodes[i];
	return NULL;
}

static bool all_up(const struct fleet_cluster *c)
{
	if (!c->mapped)
		return false;
	for (size_t s = 0; s < FLEET_SLOTS; s++) {
		uint8_t i = c->slot_node[s];
		if (i == NO_NODE || !c->nodes[i].up)
			return false;
	}
	return true;
}

static void refresh(struct fleet *f);

/* A node's connection is gone (already freed or being freed by hiredis). */
static void node_lost(struct fleet *f, struct node *n, const char *what, const char *detail)
{
	char w[128];

	n->ac = NULL;
	n->up = false;
	snprintf(w, sizeof(w), "%s %s:%d", what, n->host, n->port);
	fleet_go_down(f, w, detail);
	fleet_schedule_reconnect(f);
}

/* From outside hiredis's callbacks: its pending commands fail now. */
static void node_drop(struct fleet *f, struct node *n, const char *what, const char *detail)
{
	redisAsyncContext *ac = n->ac;

	node_lost(f, n, what, detail);
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
}

static void on_node_connect(const redisAsyncContext *ac, int status)
{
	struct node *n = ac->data;

	if (n && status != REDIS_OK)
		node_lost(n->f, n, "cannot connect to cluster node", ac->errstr);
}

static void on_node_disconnect(const redisAsyncContext *ac, int status)
{
	struct node *n = ac->data;

	if (n)
		node_lost(n->f, n, "lost cluster node", status == REDIS_OK ? "closed" : ac->errstr);
}

static void node_connect(struct fleet *f, struct node *n)
{
	const char *why;

	n->ac = fleet_async_connect(f, n->host, n->port, NULL, n, on_node_connect,
				    on_node_disconnect, &why);
	if (!n->ac) {
		node_lost(f, n, "cannot connect to cluster node", why);
		return;
	}
	n->connect_ns = clock_mono_ns();
	n->loads_pending = fleet_send_setup(f, n->ac);
}

static void node_forget(struct node *n)
{
	redisAsyncContext *ac = n->ac;

	n->used = false;
	n->up = false;
	n->ac = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);     /* its pending commands fail: unreachable */
	}
}

/* A node became up, or the map changed: the fleet's state and the replay. */
static void update(struct fleet *f)
{
	if (all_up(f->cluster)) {
		if (f->state != FLEET_UP)
			fleet_go_up(f);
	} else if (f->state == FLEET_UP) {
		fleet_go_down(f, "a hash slot has no reachable master", NULL);
		fleet_schedule_reconnect(f);
	}
	fleet_replay_kick(f);
}

/* ---- the slot map ---- */

static void apply_map(struct fleet *f, const struct fleet_slot_range *r, size_t nr)
{
	struct fleet_cluster *c = f->cluster;
	bool keep[FLEET_CLUSTER_MAX_NODES] = { false };
	uint8_t map[FLEET_SLOTS];

	memset(map, NO_NODE, sizeof(map));
	for (size_t i = 0; i < nr; i++) {
		struct node *n = node_find(c, r[i].host, strlen(r[i].host), r[i].port);
		if (!n) {
			for (size_t j = 0; j < FLEET_CLUSTER_MAX_NODES && !n; j++)
				if (!c->nodes[j].used)
					n = &c->nodes[j];
			if (!n) {
				log_warn("counters: the cluster has more than %d masters: the rest "
					 "are not used", FLEET_CLUSTER_MAX_NODES);
				continue;
			}
			*n = (struct node){ .f = f, .used = true, .port = r[i].port };
			snprintf(n->host, sizeof(n->host), "%s", r[i].host);
		}
		keep[n - c->nodes] = true;
		memset(map + r[i].lo, (int)(n - c->nodes), r[i].hi - r[i].lo + 1);
	}
	memcpy(c->slot_node, map, sizeof(map));
	c->mapped = true;
	c->refreshes++;
	for (size_t j = 0; j < FLEET_CLUSTER_MAX_NODES; j++) {
		struct node *n = &c->nodes[j];
		if (n->used && !keep[j])
			node_forget(n);         /* a master no more */
		else if (n->used && !n->ac)
			node_connect(f, n);
	}
	update(f);
}

static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleet *f = priv;
	redisReply *rep = reply;
	struct fleet_cluster *c;
	struct fleet_slot_range *r;
	size_t nr = 0;

	if (!f || f->freeing || !(c = f->cluster))
		return;
	if (c->seed_ac == ac)
		c->seed_ac = NULL;
	r = xcalloc(FLEET_CLUSTER_MAX_RANGES, sizeof(*r));
	if (fleet_cluster_parse_slots(rep, ac ? ac->c.tcp.host : NULL, r, FLEET_CLUSTER_MAX_RANGES,
				      &nr) == 0) {
		apply_map(f, r, nr);
	} else {
		c->seed_next++;
		fleet_go_down(f, rep ? "the cluster node did not answer CLUSTER SLOTS"
				 : "no cluster node reachable", rep && rep->type == REDIS_REPLY_ERROR
				 ? rep->str : NULL);
		fleet_schedule_reconnect(f);
	}
	free(r);
	if (rep)        /* without a reply hiredis is freeing the context already */
		redisAsyncDisconnect(ac);
}

static void on_seed_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *rep = reply;

	(void)ac;
	(void)priv;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("counters: a cluster node refused AUTH: %s", rep->str);
}

/* The address to read the map from: the seeds, then the masters known, in turn. */
static bool next_seed(struct fleet *f, char *host, size_t len, int *port)
{
	struct fleet_cluster *c = f->cluster;
	size_t known = 0, n = f->cfg->nseeds;

	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++)
		known += c->nodes[i].used;
	size_t k = c->seed_next % (n + known);
	if (k < n) {
		snprintf(host, len, "%s", f->cfg->seeds[k].host);
		*port = f->cfg->seeds[k].port;
		return true;
	}
	k -= n;
	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++)
		if (c->nodes[i].used && k-- == 0) {
			snprintf(host, len, "%s", c->nodes[i].host);
			*port = c->nodes[i].port;
			return true;
		}
	return false;
}

void fleet_cluster_connect(struct fleet *f)
{
	struct fleet_cluster *c = f->cluster;
	char host[64];
	int port;

	if (c->seed_ac || f->freeing || !next_seed(f, host, sizeof(host), &port))
		return;
	const char *why;
	redisAsyncContext *sc = fleet_async_connect(f, host, port, NULL, NULL, NULL, NULL, &why);
	if (!sc) {
		c->seed_next++;
		fleet_schedule_reconnect(f);
		return;
	}
	c->seed_ac = sc;
	c->seed_ns = c->refresh_ns = clock_mono_ns();
	if ((f->cfg->password && redisAsyncCommand(sc, on_seed_auth, f, "AUTH %s",
						   f->cfg->password) != REDIS_OK) ||
	    redisAsyncCommand(sc, on_slots, f, "CLUSTER SLOTS") != REDIS_OK) {
		c->seed_ac = NULL;
		redisAsyncFree(sc);
		c->seed_next++;
		fleet_schedule_reconnect(f);
	}
}

/* The map again now, or with the reconnect's backoff when it was read a moment ago. */
static void refresh(struct fleet *f)
{
	struct fleet_cluster *c = f->cluster;

	if (c->seed_ac || f->freeing)
		return;
	if (clock_mono_ns() - c->refresh_ns >= REFRESH_MIN_NS)
		fleet_cluster_connect(f);
	else if (!event_pending(f->retry, EV_TIMEOUT, NULL))
		fleet_schedule_reconnect(f);
}

/* ---- routing ---- */

bool fleet_cluster_slot_up(const struct fleet *f, unsigned slot)
{
	const struct fleet_cluster *c = f->cluster;
	uint8_t i = c->slot_node[slot & (FLEET_SLOTS - 1)];

	return c->mapped && i != NO_NODE && c->nodes[i].up;
}

int fleet_cluster_send(struct fleet *f, struct req *q)
{
	struct fleet_cluster *c = f->cluster;
	unsigned slot = fleet_argv_slot(q->argc, q->argv, q->argvlen);

	if (!fleet_cluster_slot_up(f, slot))
		return -ENOTCONN;
	return fleet_send_on(f, c->nodes[c->slot_node[slot]].ac, q);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	struct list_head todo;

	(void)fd;
	(void)what;
	list_init(&todo);
	list_splice_tail_init(&f->cluster->deferred, &todo);
	while (!list_empty(&todo)) {
		struct req *q = list_first_entry(&todo, struct req, link);
		list_del(&q->link);
		if (fleet_send_req(f, q))
			fleet_req_fail(f, q);
	}
}

/* "MOVED 3999 127.0.0.1:6381": the node, or NULL (unknown, or not up). */
static struct node *redirect_node(struct fleet_cluster *c, const char *msg, unsigned *slot)
{
	const char *sp = strchr(msg, ' '), *addr, *colon;
	char *end;
	unsigned long s;
	long port;

	if (!sp)
		return NULL;
	s = strtoul(sp + 1, &end, 10);
	if (*end != ' ' || s >= FLEET_SLOTS)
		return NULL;
	addr = end + 1;
	colon = strrchr(addr, ':');
	if (!colon)
		return NULL;
	port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return NULL;
	*slot = (unsigned)s;
	struct node *n = node_find(c, addr, (size_t)(colon - addr), (int)port);
	return n && n->up ? n : NULL;
}

static void init_reply(struct fleet *f, redisAsyncContext *ac, struct req *q, redisReply *rep)
{
	struct node *n = node_of_ac(f->cluster, ac);

	if (!n || !rep)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		f->errors++;
		log_warn("counters: cluster node %s:%d refused the connection's set-up: %s",
			 n->host, n->port, rep->str);
		return;         /* not up: connect_timeout_ms drops it, and it is tried again */
	}
	if (q->sc < SC_N && rep->type == REDIS_REPLY_STRING && rep->len == 40)
		memcpy(f->sha[q->sc], rep->str, 40);
	if (--n->loads_pending == 0) {
		n->up = true;
		log_info("counters: Redis Cluster node %s:%d up", n->host, n->port);
		update(f);
	}
}

/* Sent again in TRYAGAIN_MS, where the slot map says then: true; false past TRYAGAIN_MAX. */
static bool defer(struct fleet *f, struct req *q)
{
	struct fleet_cluster *c = f->cluster;
	struct timeval tv = { 0, TRYAGAIN_MS * 1000 };

	if (q->retries++ >= TRYAGAIN_MAX)
		return false;
	list_add_tail(&q->link, &c->deferred);
	if (!evtimer_pending(c->defer_ev, NULL))
		evtimer_add(c->defer_ev, &tv);
	return true;
}

bool fleet_cluster_reply(struct fleet *f, redisAsyncContext *ac, struct req *q,
			 redisReply **repp)
{
	struct fleet_cluster *c = f->cluster;
	redisReply *rep = *repp;
	struct node *n;
	unsigned slot;

	if (q->kind == RQ_INIT || q->kind == RQ_ASKING) {
		if (q->kind == RQ_INIT)
			init_reply(f, ac, q, rep);
		fleet_req_free(q);
		return true;
	}
	if (!rep || rep->type != REDIS_REPLY_ERROR || f->freeing)
		return false;
	if (!strncmp(rep->str, "MOVED ", 6)) {
		c->moved++;
		n = redirect_node(c, rep->str, &slot);
		refresh(f);
		if (n && q->redirects++ < REDIRECT_MAX) {
			c->slot_node[slot] = (uint8_t)(n - c->nodes);
			if (fleet_send_on(f, n->ac, q) == 0)
				return true;
		}
		/* the nodes disagree for a moment (a slot being handed over): a little later */
		if (defer(f, q))
			return true;
		log_warn("counters: cannot follow %s (node not known or not up): handled as "
			 "unreachable", rep->str);
		*repp = NULL;
	} else if (!strncmp(rep->str, "ASK ", 4)) {
		c->asks++;
		n = redirect_node(c, rep->str, &slot);
		if (n && q->redirects++ < REDIRECT_MAX) {
			struct req *a = fleet_req_new(f, RQ_ASKING, 0);
			struct argv_b av = { 0 };
			fleet_av_add(&av, "ASKING");
			fleet_req_argv(a, &av);
			if (fleet_send_on(f, n->ac, a))
				fleet_req_free(a);
			else if (fleet_send_on(f, n->ac, q) == 0)
				return true;
		}
		refresh(f);
		if (defer(f, q))
			return true;
		log_warn("counters: cannot follow %s (node not known or not up): handled as "
			 "unreachable", rep->str);
		*repp = NULL;
	} else if (!strncmp(rep->str, "TRYAGAIN", 8) || strstr(rep->str, "non local key")) {
		/* a multi-key script during a slot's migration: its keys are on both sides */
		c->tryagain++;
		if (defer(f, q))
			return true;
		log_warn("counters: %s for more than %d ms: handled as unreachable", rep->str,
			 TRYAGAIN_MS * TRYAGAIN_MAX);
		*repp = NULL;
	} else if (!strncmp(rep->str, "CLUSTERDOWN", 11)) {
		snprintf(f->why, sizeof(f->why), "the cluster is down: %s", rep->str);
		refresh(f);
		*repp = NULL;
	}
	return false;
}

/* ---- timeouts, state ---- */

void fleet_cluster_tick(struct fleet *f, uint64_t now)
{
	struct fleet_cluster *c = f->cluster;
	uint64_t cto = (uint64_t)f->cfg->connect_timeout_ms * 1000000u;

	if (c->seed_ac && now - c->seed_ns > cto) {
		redisAsyncContext *s = c->seed_ac;
		c->seed_ac = NULL;
		redisAsyncFree(s);      /* on_slots hears no reply: the next seed */
	}
	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++) {
		struct node *n = &c->nodes[i];
		if (n->used && n->ac && !n->up && now - n->connect_ns > cto) {
			node_drop(f, n, "no connection within counters.connect_timeout_ms to", NULL);
			return;
		}
	}
	if (!list_empty(&f->inflight)) {
		struct req *q = list_first_entry(&f->inflight, struct req, link);
		if (now - q->sent_ns > (uint64_t)f->cfg->command_timeout_ms * 1000000u &&
		    (c = f->cluster) && node_of_ac(c, q->conn))
			node_drop(f, node_of_ac(c, q->conn),
				  "no answer within counters.command_timeout_ms from", NULL);
	}
}

int fleet_cluster_new(struct fleet *f)
{
	struct fleet_cluster *c = xcalloc(1, sizeof(*c));

	memset(c->slot_node, NO_NODE, sizeof(c->slot_node));
	list_init(&c->deferred);
	c->defer_ev = evtimer_new(f->base, on_deferred, f);
	if (!c->defer_ev) {
		free(c);
		return -ENOMEM;
	}
	f->cluster = c;
	return 0;
}

void fleet_cluster_free(struct fleet *f)
{
	struct fleet_cluster *c = f->cluster;

	if (!c)
		return;
	if (c->seed_ac) {
		redisAsyncContext *s = c->seed_ac;
		c->seed_ac = NULL;
		redisAsyncFree(s);
	}
	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++)
		if (c->nodes[i].used)
			node_forget(&c->nodes[i]);
	while (!list_empty(&c->deferred)) {
		struct req *q = list_first_entry(&c->deferred, struct req, link);
		list_del(&q->link);
		fleet_req_fail(f, q);
	}
	event_free(c->defer_ev);
	free(c);
	f->cluster = NULL;
}

void fleet_cluster_describe(const struct fleet *f, char *buf, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++)
		n += f->cluster->nodes[i].used;
	snprintf(buf, len, "Cluster (%zu master%s)", n, n == 1 ? "" : "s");
}

int fleet_cluster_metrics(const struct fleet *f, struct evbuffer *out)
{
	const struct fleet_cluster *c = f->cluster;
	size_t known = 0, up = 0;
	int rc;

	for (size_t i = 0; i < FLEET_CLUSTER_MAX_NODES; i++) {
		known += c->nodes[i].used;
		up += c->nodes[i].used && c->nodes[i].up;
	}
	rc = evbuffer_add_printf(out,
		"# HELP mcpwarden_counters_cluster_nodes Redis Cluster masters in the slot map.\n"
		"# TYPE mcpwarden_counters_cluster_nodes gauge\n"
		"mcpwarden_counters_cluster_nodes{state=\"up\"} %zu\n"
		"mcpwarden_counters_cluster_nodes{state=\"down\"} %zu\n"
		"# HELP mcpwarden_counters_cluster_refreshes_total Slot maps read (CLUSTER SLOTS).\n"
		"# TYPE mcpwarden_counters_cluster_refreshes_total counter\n"
		"mcpwarden_counters_cluster_refreshes_total %llu\n"
		"# HELP mcpwarden_counters_cluster_redirects_total MOVED, ASK and TRYAGAIN answers.\n"
		"# TYPE mcpwarden_counters_cluster_redirects_total counter\n"
		"mcpwarden_counters_cluster_redirects_total{kind=\"moved\"} %llu\n"
		"mcpwarden_counters_cluster_redirects_total{kind=\"ask\"} %llu\n"
		"mcpwarden_counters_cluster_redirects_total{kind=\"tryagain\"} %llu\n",
		up, known - up, (unsigned long long)c->refreshes, (unsigned long long)c->moved,
		(unsigned long long)c->asks, (unsigned long long)c->tryagain);
	if (rc >= 0)
		rc = evbuffer_add_printf(out,
			"# HELP mcpwarden_counters_cluster_node_up A master: 1 connected, 0 not.\n"
			"# TYPE mcpwarden_counters_cluster_node_up gauge\n");
	for (size_t i = 0; rc >= 0 && i < FLEET_CLUSTER_MAX_NODES; i++)
		if (c->nodes[i].used)
			rc = evbuffer_add_printf(out, "mcpwarden_counters_cluster_node_up{node=\"%s:%d\"} %d\n",
						 c->nodes[i].host, c->nodes[i].port, c->nodes[i].up);
	return rc < 0 ? -ENOMEM : 0;
}
