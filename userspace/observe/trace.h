/* trace: OpenTelemetry traces of the calls (docs/tracing.md).
 *
 * W3C Trace Context (traceparent parsed, validated and generated; tracestate passed through),
 * spans built on the event loop and exported over OTLP/HTTP (http/protobuf or http/json) by a thread of
 * their own, in batches, from a bounded queue: a span that finds the queue full is dropped and
 * counted, never waited for. Configured by the `tracing` section and the standard OTEL_*
 * environment variables; off when neither names an endpoint, and then trace_enabled() is the
 * whole cost on the hot path.
 *
 * Spans are loop-thread objects. A span that is not sampled still has ids (they are propagated
 * with the sampled flag clear) but records nothing.
 */
#ifndef WARDEN_TRACE_H
#define WARDEN_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct config;
struct config_errors;

#define TRACE_PARENT_LEN 55    /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TRACE_STATE_MAX 512    /* W3C: a longer tracestate may be dropped */
#define TRACE_FLAG_SAMPLED 0x01

struct trace_ctx {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t flags;
};

/* A traceparent header value: 0, or -EINVAL when it is not one (bad shape, version ff, all-zero
 * ids). Versions above 00 are read as 00 where their prefix has its shape, as the spec asks. */
int trace_parent_parse(const char *s, struct trace_ctx *out);
/* out: TRACE_PARENT_LEN + 1 bytes. */
void trace_parent_format(const struct trace_ctx *c, char *out);
/* 32 lowercase hex digits and a NUL (out: 33 bytes). */
void trace_id_hex(const uint8_t id[16], char *out);
/* A tracestate value worth passing on: printable ASCII, at most TRACE_STATE_MAX bytes. */
bool trace_state_valid(const char *s);
/* The W3C context in a JSON-RPC request's params._meta, checked, as header values:
 * traceparent (TRACE_PARENT_LEN + 1 bytes) and tracestate (TRACE_STATE_MAX + 1 bytes), each
 * "" when absent or invalid. Nothing a client wrote reaches a header unchecked. */
void trace_meta_headers(const cJSON *params, char *traceparent, char *tracestate);

/* The configuration, from cfg's `tracing` section and the environment. enabled false: off (no
 * endpoint, OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none, or `enabled: false`). */
enum trace_sampler {
	SAMPLER_ALWAYS_ON, SAMPLER_ALWAYS_OFF, SAMPLER_RATIO,
	SAMPLER_PARENT_ALWAYS_ON, SAMPLER_PARENT_ALWAYS_OFF, SAMPLER_PARENT_RATIO,
};

struct trace_config {
	bool enabled;
	char *url;                 /* the full traces URL (<endpoint>/v1/traces) */
	bool json;                 /* protocol http/json (else http/protobuf) */
	char **headers;            /* "Name: value" lines, NULL-terminated (may hold secrets) */
	char *service_name;
	enum trace_sampler sampler;
	double ratio;              /* SAMPLER_*RATIO */
	unsigned queue_size;       /* spans waiting for export */
	unsigned batch_size;       /* spans per request */
	unsigned delay_ms;         /* a partial batch waits at most this long */
	unsigned timeout_ms;       /* one export request, retries included */
};

/* Errors in the file go to errs with their field path (tracing.x): -EINVAL. A bad OTEL_*
 * variable is not an error (OpenTelemetry: warn, treat it as unset): it goes to warns (NULL:
 * dropped) under its name; an unsupported protocol turns tracing off. */
int trace_config_parse(const struct config *cfg, struct trace_config *out,
		       struct config_errors *errs, struct config_errors *warns);
void trace_config_free(struct trace_config *tc);

/* Start tracing as cfg says, replacing what ran before (whose queue is flushed by its own
 * thread: the loop does not wait). 0 when tracing is off too; -EINVAL for a bad configuration
 * (logged); another negative errno when the exporter could not start (tracing stays off). */
int trace_start(const struct config *cfg);
/* At the end: flush what is queued (one attempt per batch, bounded by the timeout), wait for
 * it, and report what was exported and dropped. */
void trace_stop(void);

/* Read by every loop at each call, changed by a reload on loop 0: relaxed is enough, a call
 * that sees the switch late makes a span the exporter drops or makes none. */
extern _Atomic bool trace_on_;
static inline bool trace_enabled(void)
{
	return atomic_load_explicit(&trace_on_, memory_order_relaxed);
}

enum span_kind { SPAN_INTERNAL = 1, SPAN_SERVER = 2, SPAN_CLIENT = 3 };

struct span;

/* A span starting at start_ns (CLOCK_MONOTONIC; 0: now). parent: the remote or local parent,
 * NULL for a new trace; the sampler decides from it. tracestate (NULL: none) is kept and
 * passed on with the span's context. NULL when tracing is off. */
struct span *span_start(enum span_kind kind, const struct trace_ctx *parent,
			const char *tracestate, uint64_t start_ns);
const struct trace_ctx *span_ctx(const struct span *s);
const char *span_tracestate(const struct span *s);  /* NULL: none */
/* Whether attributes are recorded (sampled). The setters below do nothing otherwise. */
bool span_recording(const struct span *s);
/* The name: "a b", or "a" when b is NULL or empty. */
void span_set_name(struct span *s, const char *a, const char *b);
void span_attr_str(struct span *s, const char *key, const char *val);  /* val NULL: none */
void span_attr_int(struct span *s, const char *key, int64_t val);
/* Failed: error.type = type, status ERROR with message msg (NULL: none). Once per span. */
void span_set_error(struct span *s, const char *type, const char *msg);
/* End now: queued for export when sampled, and freed. NULL is a no-op. */
void span_end(struct span *s);

/* For /metrics: totals since start (monotonic across restarts of tracing). */
struct trace_counters {
	uint64_t exported;        /* spans the collector accepted */
	uint64_t dropped;         /* spans lost: queue full, or their export failed for good */
	uint64_t export_errors;   /* export requests that failed for good */
	uint64_t queued;          /* spans waiting now */
};
void trace_counters(struct trace_counters *out);

#endif
