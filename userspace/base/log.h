/* log: the daemon's operational log (stderr) and its structured record stream (stdout).
 *
 * Operational messages are human text on stderr with a level. Records (audit decisions, eBPF
 * denials) are one JSON object per line on stdout, written by log_record(): the format auditors
 * parse. Secrets never reach either: callers log key ids, never keys.
 */
#ifndef WARDEN_LOG_H
#define WARDEN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn", "error"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Write one record as a JSON line on stdout; adds "ts" (RFC 3339, UTC, ms) and "type".
 * Does not take ownership of obj. */
void log_record(const char *type, cJSON *obj);
/* A record's "ts": now, UTC, to the millisecond ("2026-12-05T01:02:03.456Z"); *ts_ms the same
 * in ms since the epoch (ts_ms may be NULL). Returns LOG_STAMP_LEN. */
#define LOG_STAMP_LEN 24
size_t log_record_stamp(char ts[LOG_STAMP_LEN + 1], int64_t *ts_ms);
/* log_record in two steps, for a line that also goes elsewhere (observe/audit.c): stamp obj
 * with "ts" and "type" and print it (compact, no newline; caller frees with cJSON_free; NULL on
 * OOM), ts_ms (may be NULL) taking the stamp in unix ms; then write a prepared line to stdout. */
char *log_record_line(const char *type, cJSON *obj, int64_t *ts_ms);
void log_record_text(const char *line);

/* A plain line on stderr, without timestamp or level (the daemon's "listening on" lines that
 * scripts wait for), in order with everything else logged. */
void log_announce(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Current wall-clock time as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void log_timestamp(char *buf, unsigned long len);

/* From log_async_start until log_async_stop, lines are queued and a writer thread puts them
 * on stdout and stderr, so a slow reader of the record stream never stalls the event loop.
 * The queue is bounded (LOG_QUEUE_MAX bytes): past it callers wait — records are never
 * dropped. Outside that window writes are direct. 0 or -errno. */
#define LOG_QUEUE_MAX (64u << 20)
int log_async_start(void);
/* Write out everything queued, then stop the thread (at exit). */
void log_async_stop(void);

/* The writer in the kernel's idle class when idle (logs.writer_priority), where the process
 * may raise it again (base/thread.h): raised to normal priority while an operational message
 * waits, or LOG_RAISE_BYTES of records do, and for the stop. Blocking (a probe thread):
 * start-up only. */
#define LOG_RAISE_BYTES (1u << 20)
void log_async_idle(bool idle);

struct log_async_stats {
	bool running;
	bool idle;                      /* the writer is in the idle class now */
	unsigned long raised;           /* times it was raised */
	size_t queued;                  /* bytes waiting for it */
};
void log_async_get_stats(struct log_async_stats *out);

/* Records written on an event loop's thread (the calling thread) between log_loop_attach and
 * log_loop_detach are handed to the writer thread once per loop turn, after that turn's
 * callbacks: one lock and at most one wake-up of the writer per turn, not one per call. Each
 * loop thread attaches its own base (workers: N); a loop's records keep their order, loops'
 * records interleave turn by turn. Other threads and the operational log (stderr) are
 * unchanged. 0 or -errno. */
struct event_base;
int log_loop_attach(struct event_base *base);
/* Hand over what the calling thread staged and stop staging (before its base is freed). */
void log_loop_detach(void);

#endif
