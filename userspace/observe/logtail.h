/* logtail: the live tail — every record, as it leaves audit.c, handed to the subscribers
 * (the admin plane's /api/logs/stream clients), on the event loop, with no database between.
 *
 * Loop thread only (every record is emitted there). A record is parsed once, only when
 * someone is listening; a subscriber decides for itself (filters, its own bounded buffer)
 * and may unsubscribe itself or any other subscriber from inside its callback.
 */
#ifndef WARDEN_LOGTAIL_H
#define WARDEN_LOGTAIL_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Most subscribers at once: a subscribe past it is -EBUSY. */
#define LOGTAIL_MAX_SUBSCRIBERS 64

struct logtail_sub;
/* line: the record's JSON text (no newline), rec: the same parsed. Neither outlives the call. */
typedef void (*logtail_fn)(const char *line, size_t len, const cJSON *rec, void *arg);

/* 0, or -EBUSY at LOGTAIL_MAX_SUBSCRIBERS. */
int logtail_subscribe(logtail_fn fn, void *arg, struct logtail_sub **out);
/* NULL is a no-op. */
void logtail_unsubscribe(struct logtail_sub *s);
size_t logtail_subscribers(void);
/* A record as written to stdout (compact JSON, no newline). */
void logtail_publish(const char *line);

#endif
