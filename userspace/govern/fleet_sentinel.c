/* fleet_sentinel: following a Sentinel failover as it happens (docs/counters.md, "Sentinel").
 * fleet.c asks the sentinels for the master when it connects; this file listens on one of
 * them for the failover's announcements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "base/clock.h"
#include "base/log.h"
#include "govern/fleet_int.h"

/* A failover, as the sentinels announce it on their channels: the replica is about to be
 * promoted (+failover-state-send-slaveof-noone "<type> <name> <ip> <port> @ <master> <ip>
 * <port>"), then the master has moved (+switch-master "<master> <old ip> <old port> <new ip>
 * <new port>"). The old master, if it lives, goes on taking writes until the sentinels demote
 * it, seconds after the switch, and what it took meanwhile is lost when it resyncs as a
 * replica. So the sidecar listens on one sentinel, leaves the old master when the promotion
 * begins, and does not go back to it until the switch is announced (or FLEET_SWITCH_MAX_MS
 * passed: an aborted failover); charges meanwhile are refused, or local, as in any outage. */
#define FLEET_SWITCH_MAX_MS 15000

bool fleet_switching(const struct fleet *f)
{
	return f->switch_ns && clock_mono_ns() - f->switch_ns < FLEET_SWITCH_MAX_MS * 1000000ull;
}

static void on_switch(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleet *f = priv;
	redisReply *rep = reply;
	char name[128], host[128];
	const char *msg, *at;
	int port;

	if (!f || f->freeing)
		return;
	if (!rep) {             /* the watch's connection is gone: on_timer makes a new one */
		if (f->watch_ac == ac) {
			f->watch_ac = NULL;
			f->sentinel_next = (f->sentinel_next + 1) % f->cfg->nsentinels;
		}
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") ||
	    rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_STRING)
		return;
	msg = rep->element[2]->str;
	if (!strcmp(rep->element[1]->str, "+failover-state-send-slaveof-noone")) {
		if (!(at = strstr(msg, " @ ")) || sscanf(at + 3, "%127s", name) != 1 ||
		    strcmp(name, f->cfg->sentinel_master))
			return;
		log_info("counters: Sentinel is promoting a replica of %s: leaving the old master",
			 name);
		f->switch_ns = clock_mono_ns();
		if (f->ac)
			fleet_drop(f, "Sentinel failover in progress", msg);
		return;
	}
	if (sscanf(msg, "%127s %*s %*s %127s %d", name, host, &port) != 3 ||
	    strcmp(name, f->cfg->sentinel_master))
		return;
	f->switch_ns = 0;
	if (!f->ac && !f->sentinel_ac) {
		/* waiting out the switch: go to the new master now, not at the next retry */
		fleet_reconnect_now(f);
		return;
	}
	if (f->ac && f->master.host && !strcmp(f->master.host, host) && f->master.port == port)
		return;
	log_info("counters: Sentinel moved master %s to %s:%d", name, host, port);
	if (f->ac)
		fleet_drop(f, "Sentinel failover", msg);
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
	struct fleet *f = ac->data;

	(void)status;
	if (f && f->watch_ac == ac)
		f->watch_ac = NULL;
}

void fleet_watch_start(struct fleet *f)
{
	const struct fleet_addr *s = &f->cfg->sentinels[f->sentinel_next];
	const char *why;
	redisAsyncContext *w = fleet_async_connect(f, s->host, s->port, NULL, f, NULL,
						   on_watch_disconnect, &why);

	f->watch_ns = clock_mono_ns();
	if (!w)
		return;         /* on_timer tries again */
	if (redisAsyncCommand(w, on_switch, f, "SUBSCRIBE +switch-master "
			      "+failover-state-send-slaveof-noone") != REDIS_OK) {
		redisAsyncFree(w);
		return;
	}
	f->watch_ac = w;
}
