/* router_int.h: what router.c (the methods, the sessions, the messages of a loop's half) and
 * router_core.c (the core every loop shares, the halves' life) share. Private to the two. */
#ifndef WARDEN_ROUTER_INT_H
#define WARDEN_ROUTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <event2/event.h>

#include "mcp/call.h"
#include "mcp/links.h"
#include "mcp/relay.h"

struct config;
struct gate;
struct catalog;
struct session;
struct session_table;

/* What every loop's sessions share, run on the first loop (workers: N): the catalogue, its
 * shared links, the readiness. The halves are told of a list's change on their own loop. */
struct router_core {
	struct event_base *base;
	const struct config *cfg;
	struct gate *gate;              /* borrowed: the daemon owns it */
	struct catalog *cat;
	_Atomic bool ready;
	struct event *startup;          /* the startup_ms deadline */
	void (*when_ready)(void *arg);
	void *when_ready_arg;
	struct router *first;           /* the half on the core's loop */
	pthread_mutex_t mu;             /* the halves on other loops */
	struct router *others;
	unsigned nloops;                /* halves made: the next one's index */
	struct session_counts *counts;  /* every half's sessions, against the caps */
};

/* A loop's half: its sessions, their links and the calls on them. */
struct router {
	struct router_core *core;
	unsigned loop;                  /* 0: the first loop's */
	struct event_base *base;
	const struct config *cfg;
	struct gate *gate;
	struct catalog *cat;            /* the core's */
	struct session_table *sessions;
	struct relay relay;
	struct links links;
	struct call_env env;
	struct event *reap;             /* ends the one-request sessions that are done */
	struct event *changed;          /* tells this loop's sessions of changed_kinds */
	_Atomic unsigned changed_kinds; /* bit per enum catalog_kind */
	struct router *next;            /* in core->others */
};

/* A session ends: its calls cancelled, its relayed requests refused, its stream and links
 * closed. */
void router_teardown(struct router *r, struct session *s);
/* The session table's idle expiry. */
void router_on_expire(void *arg, struct session *s);
/* Ends the one-request sessions that are done, outside any link's callback. */
void router_on_reap(evutil_socket_t fd, short what, void *arg);

#endif
