/* trace_int: what trace.c (spans), trace_config.c and trace_export.c (the exporter thread)
 * share, and the protobuf writer the OTLP messages are encoded with — small enough to write
 * by hand, and tested (tests/unit/test_trace.c; tests/integration/tracing.test.mjs decodes
 * what arrives with the official definitions).
 */
#ifndef WARDEN_TRACE_INT_H
#define WARDEN_TRACE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "observe/trace.h"

/* A growable byte buffer (out of memory aborts, base/alloc.h). */
struct pb {
	uint8_t *p;
	size_t n, cap;
};

enum pb_wire { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

void pb_raw(struct pb *b, const void *p, size_t n);
void pb_varint(struct pb *b, uint64_t v);
void pb_tag(struct pb *b, unsigned field, enum pb_wire wire);
void pb_fixed64(struct pb *b, unsigned field, uint64_t v);
void pb_fixed32(struct pb *b, unsigned field, uint32_t v);
void pb_uint(struct pb *b, unsigned field, uint64_t v);
void pb_bytes(struct pb *b, unsigned field, const void *p, size_t n);
void pb_string(struct pb *b, unsigned field, const char *s);
/* A KeyValue (common.v1) as field `field` of the enclosing message. */
void pb_kv_str(struct pb *b, unsigned field, const char *key, const char *val);
void pb_kv_int(struct pb *b, unsigned field, const char *key, int64_t val);
void pb_free(struct pb *b);

/* OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto and friends). */
enum {
	OTLP_REQ_RESOURCE_SPANS = 1,     /* ExportTraceServiceRequest */
	OTLP_RS_RESOURCE = 1, OTLP_RS_SCOPE_SPANS = 2,
	OTLP_RES_ATTRIBUTES = 1,
	OTLP_SS_SCOPE = 1, OTLP_SS_SPANS = 2,
	OTLP_SCOPE_NAME = 1, OTLP_SCOPE_VERSION = 2,
	OTLP_SPAN_TRACE_ID = 1, OTLP_SPAN_SPAN_ID = 2, OTLP_SPAN_TRACE_STATE = 3,
	OTLP_SPAN_PARENT_SPAN_ID = 4, OTLP_SPAN_NAME = 5, OTLP_SPAN_KIND = 6,
	OTLP_SPAN_START = 7, OTLP_SPAN_END = 8, OTLP_SPAN_ATTRIBUTES = 9, OTLP_SPAN_STATUS = 15,
	OTLP_SPAN_FLAGS = 16,
	OTLP_STATUS_MESSAGE = 2, OTLP_STATUS_CODE = 3,
	OTLP_STATUS_ERROR = 2,
	OTLP_KV_KEY = 1, OTLP_KV_VALUE = 2,
	OTLP_ANY_STRING = 1, OTLP_ANY_INT = 3,
};

/* The ExportTraceServiceRequest for encoded Span messages spans[0..n) under resource (an
 * encoded Resource message), into out (appended). */
void otlp_request(struct pb *out, const struct pb *resource, struct pb *const *spans, size_t n);
/* The same request in OTLP's JSON encoding (http/json), from the same encoded spans
 * (observe/trace_json.c): 0, or -EINVAL when a span is not the protobuf trace.c writes. */
int otlp_json_request(struct pb *out, const struct pb *resource, struct pb *const *spans,
		      size_t n);
/* The Resource message for a service. */
void otlp_resource(struct pb *out, const char *service_name);

/* url as it may be logged: user:password@ in it replaced by "***@". */
void trace_url_for_log(const char *url, char *out, size_t n);

/* The exporter thread (trace_export.c). start copies what it needs from tc. */
int exporter_start(const struct trace_config *tc);
/* Take over an encoded Span (freed by the exporter): false when the queue was full (dropped,
 * counted) or no exporter runs. */
bool exporter_submit(struct pb *span);
/* Stop taking spans; the thread flushes what is queued (one attempt per batch) and ends.
 * wait: join it (and any stopped before), bounded by the export timeout; else it is joined
 * later, so that a reload never waits for a collector on the loop. */
void exporter_stop(bool wait);
void exporter_counters(struct trace_counters *out);

#endif
