/* fleet_int.h: what fleet.c (the Redis connection, replies, the replay), fleet_ops.c (reserve,
 * commit, release, usage, state) and fleet_config.c (the "counters" section) share. Private. */
#ifndef WARDEN_FLEET_INT_H
#define WARDEN_FLEET_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/list.h"
#include "govern/fleet.h"

struct redisAsyncContext;
struct hmap;
struct fleet_cluster;
struct evbuffer;

extern const char *const fleet_script_src[];

#define FLEET_MAX_SENTINELS 8
#define FLEET_MAX_SEEDS 16              /* counters.cluster */
#define FLEET_SLOTS 16384               /* Redis Cluster's hash slots */

struct fleet_addr {
	char *host;                     /* NULL: unix socket in path */
	char *path;
	int port;
};

struct fleet_config {
	struct fleet_addr addr;         /* the server, when no sentinel */
	int db;
	char *password;                 /* NULL: no AUTH */
	char *prefix;
	int64_t connect_timeout_ms, command_timeout_ms, resv_ttl_s;
	int64_t charge_id_ttl_ms;       /* how long Redis remembers a commit's id */
	bool fail_closed;
	int64_t local_spend, local_calls;       /* per key, per outage */
	char *sentinel_master;
	struct fleet_addr sentinels[FLEET_MAX_SENTINELS];
	size_t nsentinels;
	struct fleet_addr seeds[FLEET_MAX_SEEDS];       /* counters.cluster: 0 = no cluster */
	size_t nseeds;
};

/* ---- fleet.c and fleet_ops.c ---- */

#define KEY_MAX 700

enum script { SC_RESERVE, SC_SETTLE, SC_USAGE, SC_DEBIT, SC_N };

#define FLEET_MAX_BUCKETS (FLEET_MAX_RATE_SETS * RATE_NLEVELS)

/* A charge for Redis: sent at once, or kept (durable in the store) and replayed in order. */
struct settle {
	struct list_head link;          /* in fleet->replay while waiting */
	int argc;
	char **argv;                    /* "EVALSHA", sha, nkeys, keys..., args... */
	size_t *argvlen;
	store_done_fn cb;               /* the caller, once Redis or the store has it */
	void *arg;
	struct fleet *arg2;             /* settle_stored's fleet */
	char *id;                       /* the charge id (the reservation's): Redis counts it once */
	bool release;                   /* nothing to keep when Redis is away */
	bool durable;                   /* a fleet_pending row in the store holds it */
	bool queued;                    /* in fleet->replay */
	bool storing;                   /* store_charge not answered yet */
	unsigned slot;                  /* its first key's hash slot (queued: fleet->slot_queued) */
	/* For the store when Redis is away: what the charge was. */
	size_t nb;
	struct store_spend items[FLEET_MAX_BUDGETS];
	char *scopes[FLEET_MAX_BUDGETS], *periods[FLEET_MAX_BUDGETS];
};

enum req_kind { RQ_INIT, RQ_RESERVE, RQ_SETTLE, RQ_USAGE, RQ_SENTINEL, RQ_DEBIT, RQ_ASKING };

struct req {
	struct list_head link;          /* in fleet->inflight, oldest first */
	struct fleet *f;
	enum req_kind kind;
	enum script sc;
	uint64_t sent_ns;
	struct redisAsyncContext *conn; /* where it was sent */
	bool retried;                   /* NOSCRIPT: sent again with EVAL */
	int redirects, retries;         /* cluster: MOVED or ASK, and TRYAGAIN, answers so far */
	int argc;
	char **argv;
	size_t *argvlen;
	/* RQ_RESERVE */
	fleet_reserve_fn rcb;
	void *arg;
	struct fleet_resv *r;
	struct fleet_budget b[FLEET_MAX_BUDGETS];
	struct budget_spec spec[FLEET_MAX_BUDGETS];
	struct rate_spec rspec[FLEET_MAX_BUCKETS];
	enum rate_level rlevel[FLEET_MAX_BUCKETS];
	size_t rset[FLEET_MAX_BUCKETS];         /* which fleet_rates each bucket is of */
	size_t nr;
	int64_t cost, now;
	/* RQ_SETTLE */
	struct settle *s;
	/* RQ_USAGE */
	fleet_usage_fn ucb;
	/* RQ_DEBIT: when Redis ran it (arg), or NULL */
	store_done_fn dcb;
};

struct fleet_resv {
	size_t nb;
	char rid[64];
	char *keys[FLEET_MAX_BUDGETS];
	int kind[FLEET_MAX_BUDGETS];
	int64_t start[FLEET_MAX_BUDGETS], ttl[FLEET_MAX_BUDGETS];
	char *scopes[FLEET_MAX_BUDGETS], *periods[FLEET_MAX_BUDGETS];
	int64_t cost;
	bool local;                     /* admitted by the local allowance */
	bool allowance;                 /* holds the allowance (given back on release) */
	char *key_id;                   /* local: whose allowance */
	struct fleet_resv *next;        /* cluster: the key's part after the team's (two slots) */
};

/* A key's local allowance during one outage. */
struct allowance {
	int64_t spent, calls;
};

struct fleet {
	struct event_base *base;
	const struct fleet_config *cfg;
	struct store *st;
	struct redisAsyncContext *ac;
	enum fleet_state state;
	char sha[SC_N][41];
	int loads_pending;              /* SCRIPT LOADs not answered yet */
	struct list_head inflight;      /* struct req, in send order */
	struct list_head replay;        /* struct settle, oldest first */
	size_t nreplay, ninflight;
	bool replaying;                 /* one replayed charge at a time: order kept */
	struct event *timer;            /* connect and command timeouts */
	struct event *retry;            /* reconnect with backoff */
	int backoff_ms;
	uint64_t connect_ns;
	size_t sentinel_next;           /* sentinel to ask next */
	struct redisAsyncContext *sentinel_ac;
	struct redisAsyncContext *watch_ac;     /* SUBSCRIBE +switch-master on a sentinel */
	uint64_t watch_ns;              /* the last attempt at watch_ac */
	uint64_t switch_ns;             /* != 0: a failover began then; the old master is avoided */
	struct fleet_addr master;       /* from the sentinels */
	struct hmap *allow;             /* key id -> struct allowance, during an outage */
	uint64_t seq, errors, reconnects, replayed, local_admits, duplicates;
	size_t nstored;                 /* queued charges with a fleet_pending row */
	char sidecar[48];
	char why[160];
	bool freeing;
	struct fleet_cluster *cluster;  /* counters.cluster, else NULL */
	uint32_t slot_queued[FLEET_SLOTS];      /* queued charges per first key's slot */
};

struct argv_b {
	int n, cap;
	char **v;
	size_t *len;
};
void fleet_av_add(struct argv_b *a, const char *s);
void fleet_av_addi(struct argv_b *a, int64_t v);
void fleet_av_free(int argc, char **argv, size_t *len);
/* A rate bucket's spec as a script takes it: requests, burst, period in µs. */
void fleet_av_rate(struct argv_b *a, const struct rate_spec *r);

/* Queue q where its first key lives (0), or -ENOTCONN (that server is not up). */
int fleet_send_req(struct fleet *f, struct req *q);
/* Queue q on connection ac (set-up commands, redirections), or -ENOTCONN. */
int fleet_send_on(struct fleet *f, struct redisAsyncContext *ac, struct req *q);
/* The set-up of a new connection, queued before it is up (so first, in order): AUTH with a
 * password, SELECT for a db other than 0, ROLE under Sentinel, SCRIPT LOAD of every script;
 * each an RQ_INIT request. Returns how many were queued: the answers to wait for. */
int fleet_send_setup(struct fleet *f, struct redisAsyncContext *ac);
/* An async connection to host:port (or the unix socket path) on the loop, with data and
 * callbacks (NULL: none): the context, or NULL with why set (the reason, valid until the
 * next call). */
struct redisAsyncContext *fleet_async_connect(struct fleet *f, const char *host, int port,
					      const char *path, void *data,
					      void (*on_conn)(const struct redisAsyncContext *, int),
					      void (*on_disc)(const struct redisAsyncContext *, int),
					      const char **why);
/* q failed without an answer (as when its connection drops): its caller hears. */
void fleet_req_fail(struct fleet *f, struct req *q);
/* The charge queue (oldest first), counted per slot so a cluster replays each node's alone. */
void fleet_queue_add(struct fleet *f, struct settle *s);
void fleet_queue_del(struct fleet *f, struct settle *s);
/* Send the next queued charge whose server is up (one at a time). */
void fleet_replay_kick(struct fleet *f);
/* The server holding slot is up (standalone / Sentinel: the one connection is). */
bool fleet_slot_up(const struct fleet *f, unsigned slot);
/* The hash slot of the command's first key (argv[3] of EVALSHA sha numkeys key...); 0 without. */
unsigned fleet_argv_slot(int argc, char *const *argv, const size_t *len);
void fleet_go_up(struct fleet *f);
void fleet_go_down(struct fleet *f, const char *what, const char *detail);
void fleet_schedule_reconnect(struct fleet *f);
void fleet_req_free(struct req *q);
/* A request of kind for script sc; fleet_req_argv gives it a's arguments (q owns them then). */
struct req *fleet_req_new(struct fleet *f, enum req_kind kind, enum script sc);
void fleet_req_argv(struct req *q, struct argv_b *a);
void fleet_resv_free(struct fleet_resv *r);
void fleet_settle_free(struct settle *s);
/* Redis did not take the charge: keep it (durable in the store) for the replay. Returns 0:
 * s->cb follows; 1: durable now (or nothing to keep), s->cb is not called; < 0: the store
 * could not take it (kept in memory), s->cb is not called. */
int fleet_settle_keep(struct fleet *f, struct settle *s);
/* The settle of r: commit amount ("0": release) to each of its counters. */
struct settle *fleet_settle_new(struct fleet *f, struct fleet_resv *r, int64_t amount);
/* The request that sends s (EVALSHA with the current digest). */
struct req *fleet_settle_req(struct fleet *f, struct settle *s);
/* ---- fleet_pending.c: charges kept across restarts, and their ids ---- */

#define FLEET_PENDING_ARGS 256          /* a kept command's arguments, at most */

/* The kept command of s (its arguments after EVALSHA and the digest) as text for the store's
 * fleet_pending row: a JSON array of strings. NULL when out of memory. */
char *fleet_pending_encode(const struct settle *s);
/* The arguments of a kept command, checked to be a settle's (numkeys, keys, id, amount, nb,
 * nb triples, the id's lifetime when it commits): 0 (out filled, "EVALSHA" and a digest
 * placeholder first) or -EINVAL. */
int fleet_pending_decode(const char *text, struct argv_b *out);
/* Start-up (blocking, like store_load_*): the store's kept charges into f->replay, oldest
 * first. Rows that do not decode are logged and left in the table. */
int fleet_pending_load(struct fleet *f);
/* "<prefix>{<tag>}:c:<id>": the marker of a committed charge, beside its first counter. */
int fleet_charge_marker(const char *counter_key, const char *id, char *buf, size_t len);
/* A settle's answer from Redis: 0 counted, 1 already counted (its id was seen), -EIO not a
 * settle's answer. */
struct redisReply;
int fleet_settle_answer(const struct redisReply *rep);

/* Redis is away: fail closed, or admit within the key's allowance; q->rcb is answered. */
void fleet_reserve_unreachable(struct fleet *f, struct req *q);
/* Drop the connection (every pending command fails now) and reconnect with backoff; or
 * connect again at once, without waiting for the backoff. */
void fleet_drop(struct fleet *f, const char *what, const char *detail);
void fleet_reconnect_now(struct fleet *f);

/* ---- fleet_sentinel.c ---- */

/* Listen on a sentinel for a failover of the master (watch_ac). */
void fleet_watch_start(struct fleet *f);
/* A failover began and its switch is not announced yet: the old master is not used. */
bool fleet_switching(const struct fleet *f);

/* ---- fleet_cluster.c: Redis Cluster (counters.cluster) ----
 *
 * One connection per master, the slot map from CLUSTER SLOTS (read from a seed or a known
 * node, again after MOVED, CLUSTERDOWN or a lost node: one read at a time), commands routed by
 * their first key's slot. */

/* CRC16/XMODEM (polynomial 0x1021, initial 0), as the Redis Cluster spec. */
uint16_t fleet_crc16(const char *buf, size_t len);
/* The key's hash slot: CRC16 of its hash tag (the first non-empty {...}), else of the key. */
unsigned fleet_key_slot(const char *key, size_t len);
/* One master's slot range from CLUSTER SLOTS. */
struct fleet_slot_range {
	unsigned lo, hi;
	char host[64];
	int port;
};
#define FLEET_CLUSTER_MAX_NODES 64
#define FLEET_CLUSTER_MAX_RANGES 1024
/* CLUSTER SLOTS's answer into out[0..*n): 0, or -EINVAL (not such an answer, a slot out of
 * range, more than max ranges). asked: the host the map was read from, for a nil host
 * (unknown-endpoint); NULL refuses one. */
int fleet_cluster_parse_slots(const struct redisReply *rep, const char *asked,
			      struct fleet_slot_range *out, size_t max, size_t *n);
int fleet_cluster_new(struct fleet *f);
/* Every connection closed (pending commands fail), then the rest. */
void fleet_cluster_free(struct fleet *f);
/* Read the slot map (again) and connect to the masters not connected. */
void fleet_cluster_connect(struct fleet *f);
int fleet_cluster_send(struct fleet *f, struct req *q);
bool fleet_cluster_slot_up(const struct fleet *f, unsigned slot);
/* A reply on a cluster connection, before the usual handling: a node's set-up, ASKING, and
 * MOVED / ASK / TRYAGAIN (q sent again: true, q is no longer the caller's) or CLUSTERDOWN
 * (*rep set to NULL: handled as unreachable). */
bool fleet_cluster_reply(struct fleet *f, struct redisAsyncContext *ac, struct req *q,
			 struct redisReply **rep);
/* Connect and command timeouts of the nodes. */
void fleet_cluster_tick(struct fleet *f, uint64_t now_ns);
int fleet_cluster_metrics(const struct fleet *f, struct evbuffer *out);
/* Log line for "up": "Redis Cluster (3 masters)". */
void fleet_cluster_describe(const struct fleet *f, char *buf, size_t len);

#endif
