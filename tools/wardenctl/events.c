/* events: the deny-event stream from the pinned ring buffer. */
#include "wardenctl.h"

/* ---- events ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

struct events_ctx {
	struct enforcer *e;
	bool json;
	long count, seen;
};

static void event_text(struct enforcer *e, const struct warden_event *ev)
{
	cJSON *o = enforcer_event_json(e, ev);
	const char *keys[] = { "pid", "uid", "comm", "cgroup", "protocol", "reason", "rule_id",
			       "mode" };

	if (!o) {
		ctl_errmsg("out of memory");
		return;
	}
	/* One line, the record's fields in a fixed order: readable and grep-able. */
	printf("%s deny %s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "time")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(o, "hook")));
	if (cJSON_GetObjectItem(o, "dst"))
		printf(strchr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "dst")), ':') ?
		       " dst=[%s]:%d" : " dst=%s:%d",
		       cJSON_GetStringValue(cJSON_GetObjectItem(o, "dst")),
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "dport")));
	if (cJSON_IsTrue(cJSON_GetObjectItem(o, "v4mapped")))
		printf(" (v4-mapped)");
	if (cJSON_GetObjectItem(o, "path"))
		printf(" path=%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "path")));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cJSON *it = cJSON_GetObjectItem(o, keys[i]);

		if (!it)
			continue;
		if (cJSON_IsString(it))
			printf(" %s=%s", keys[i], it->valuestring);
		else
			printf(" %s=%.0f", keys[i], it->valuedouble);
	}
	if (!cJSON_GetObjectItem(o, "cgroup"))
		printf(" cgroup_id=%" PRIu64, (uint64_t)ev->cgroup_id);
	printf("\n");
	cJSON_Delete(o);
}

static int on_event(const struct warden_event *ev, void *arg)
{
	struct events_ctx *c = arg;

	if (c->json) {
		cJSON *o = enforcer_event_json(c->e, ev);
		char *text;

		if (!o)
			return -1;
		cJSON_AddStringToObject(o, "type", "ebpf_deny");
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!text)
			return -1;
		puts(text);
		cJSON_free(text);
	} else {
		event_text(c->e, ev);
	}
	fflush(stdout);
	c->seen++;
	return c->count && c->seen >= c->count;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cmd_events(struct args *a)
{
	struct events_ctx ctx = { .json = a->json, .count = a->count };
	struct warden_counters hook[WARDEN_HOOK_MAX], before, after;
	enum pins_ring_mode mode = PINS_RING_CONSUME;
	struct sigaction sa = { .sa_handler = on_signal };
	bool wait = a->follow || a->count || a->timeout_s > 0;
	int64_t deadline = a->timeout_s > 0 ? now_ms() + (int64_t)(a->timeout_s * 1000) : -1;
	struct pins_ring *ring = NULL;
	struct holders h = { .n = 0 };
	struct pins *p = NULL;
	int rc, err;

	if (a->tap && a->consume) {
		ctl_errmsg("events: --tap and --consume exclude each other");
		return EXIT_USAGE;
	}
	rc = ctl_open_enforcer(a, &ctx.e);
	if (rc != EXIT_OK)
		return rc;
	rc = ctl_open_pins(a, &p);
	if (rc != EXIT_OK)
		goto out;
	/* Never steal events from the daemon's audit trail: tap when another process holds the
	 * ring, consume only when nobody else would. */
	if (a->tap) {
		mode = PINS_RING_TAP;
	} else if (!a->consume) {
		err = pins_map_holders(p, PINS_EVENTS, h.pid, 8, &h.n);
		mode = err < 0 || h.n ? PINS_RING_TAP : PINS_RING_CONSUME;
	}
	err = pins_ring_open(p, mode, &ring);
	if (err < 0) {
		ctl_errmsg("opening the event ring %s: %s", WARDEN_MAP_EVENTS, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	if (a->verbose)
		ctl_errmsg("reading %s as a %s", WARDEN_MAP_EVENTS,
		       mode == PINS_RING_TAP ? "tap (the daemon keeps every event)" : "consumer");
	if (pins_counters(p, hook, &before) < 0)
		memset(&before, 0, sizeof(before));
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	for (;;) {
		int64_t left;
		int n = pins_ring_read(ring, on_event, &ctx);

		if (n < 0) {
			ctl_errmsg("reading the event ring: %s", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
		if (!wait || g_stop || (ctx.count && ctx.seen >= ctx.count))
			break;
		left = deadline < 0 ? -1 : deadline - now_ms();
		if (deadline >= 0 && left <= 0)
			break;
		/* A tap gets no wakeup while the daemon lags behind: look again every 250 ms. */
		if (mode == PINS_RING_TAP && (left < 0 || left > 250))
			left = 250;
		n = pins_ring_wait(ring, (int)left);
		if (n < 0 && n != -EINTR) {
			ctl_errmsg("waiting for events: %s", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
	}
	if (pins_ring_gaps(ring))
		ctl_errmsg("the tap fell a whole ring behind %" PRIu64 " time%s: some events were "
		       "missed here (the daemon still received them)", pins_ring_gaps(ring),
		       pins_ring_gaps(ring) == 1 ? "" : "s");
	if (pins_counters(p, hook, &after) == 0 && after.events_dropped > before.events_dropped)
		ctl_errmsg("%" PRIu64 " deny events were dropped by the kernel meanwhile: the ring was "
		       "full (counted in %s)", (uint64_t)(after.events_dropped -
						       before.events_dropped), WARDEN_MAP_COUNTERS);
	if (rc == EXIT_OK && ctx.count && ctx.seen < ctx.count) {
		ctl_errmsg("events: %ld of %ld events before the %s", ctx.seen, ctx.count,
		       g_stop ? "interruption" : "timeout");
		rc = EXIT_FAIL;
	}
out:
	pins_ring_close(ring);
	pins_close(p);
	enforcer_close(ctx.e);
	return rc;
}
