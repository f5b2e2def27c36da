/* logtail: the live tail — every record, as it leaves audit.c, handed to the subscribers
 * (the admin plane's /api/logs/stream clients), on the event loop, with no database between.
 *
 * Subscribers live on the loop. Records come from the loop and from other threads (the log
 * store's writer notes its checkpoints and anchors): those are queued and published on the
 * loop's next turn. A record is parsed once, only when someone is listening; a subscriber
 * decides for itself (filters, its own bounded buffer) and may unsubscribe itself or any
 * other subscriber from inside its callback.
 */
#ifndef WARDEN_LOGTAIL_H
#define WARDEN_LOGTAIL_H

#include <stddef.h>
#include <cjson/cJSON.h>

struct event_base;

/* Most subscribers at once: a subscribe past it is -EBUSY. */
#define LOGTAIL_MAX_SUBSCRIBERS 64

struct logtail_sub;
/* line: the record's JSON text (no newline), rec: the same parsed. Neither outlives the call. */
typedef void (*logtail_fn)(const char *line, size_t len, const cJSON *rec, void *arg);

/* On the loop's thread, before any thread that emits records starts: records of other
 * threads are then handed to the loop. 0 or a negative errno. */
int logtail_init(struct event_base *base);
/* Before the loop is freed: other threads' records no longer reach the tail. */
void logtail_fini(void);
/* 0, or -EBUSY at LOGTAIL_MAX_SUBSCRIBERS. Loop thread. */
int logtail_subscribe(logtail_fn fn, void *arg, struct logtail_sub **out);
/* NULL is a no-op. */
void logtail_unsubscribe(struct logtail_sub *s);
size_t logtail_subscribers(void);
/* A record as written to stdout (compact JSON, no newline). Any thread. */
void logtail_publish(const char *line);

#endif
