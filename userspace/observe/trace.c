/* trace: trace context, sampling and spans on the loop; OTLP protobuf encoding. */
#include "base/ascii.h"
#include "observe/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/hex.h"
#include "base/json_get.h"
#include "base/log.h"
#include "observe/trace_int.h"

_Atomic bool trace_on_;

/* What the running configuration decided, read by every loop: each field on its own (a span
 * started during a reload may be sampled by a mix of the old and the new settings, which
 * either would have allowed). */
static struct {
	_Atomic int sampler;                /* enum trace_sampler */
	_Atomic uint64_t threshold;         /* ratio samplers: sample when the id's low 8 bytes
					     * are below */
	_Atomic bool all;                   /* ratio 1.0 */
} g;

#define RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* --- protobuf ------------------------------------------------------------------------------ */

void pb_raw(struct pb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

void pb_varint(struct pb *b, uint64_t v)
{
	uint8_t buf[10];
	size_t n = 0;

	do {
		buf[n] = v & 0x7f;
		v >>= 7;
		if (v)
			buf[n] |= 0x80;
		n++;
	} while (v);
	pb_raw(b, buf, n);
}

void pb_tag(struct pb *b, unsigned field, enum pb_wire wire)
{
	pb_varint(b, (uint64_t)field << 3 | wire);
}

/* The n low bytes of v, little-endian, as protobuf's fixed32 and fixed64 are. */
static void pb_fixed(struct pb *b, unsigned field, enum pb_wire wire, uint64_t v, int n)
{
	uint8_t buf[8];

	for (int i = 0; i < n; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
	pb_tag(b, field, wire);
	pb_raw(b, buf, (size_t)n);
}

void pb_fixed64(struct pb *b, unsigned field, uint64_t v)
{
	pb_fixed(b, field, PB_FIXED64, v, 8);
}

void pb_fixed32(struct pb *b, unsigned field, uint32_t v)
{
	pb_fixed(b, field, PB_FIXED32, v, 4);
}

void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
	pb_tag(b, field, PB_VARINT);
	pb_varint(b, v);
}

void pb_bytes(struct pb *b, unsigned field, const void *p, size_t n)
{
	pb_tag(b, field, PB_LEN);
	pb_varint(b, n);
	pb_raw(b, p, n);
}

void pb_string(struct pb *b, unsigned field, const char *s)
{
	pb_bytes(b, field, s, strlen(s));
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >>= 7)
		n++;
	return n;
}

/* KeyValue { key = 1; AnyValue value = 2 }, AnyValue { string = 1; int = 3 }: sizes are known
 * beforehand, so no scratch buffer. Writes up to the AnyValue's contents. */
static void kv_head(struct pb *b, unsigned field, const char *key, size_t value_len)
{
	size_t klen = strlen(key);

	pb_tag(b, field, PB_LEN);
	pb_varint(b, 1 + varint_len(klen) + klen + 1 + varint_len(value_len) + value_len);
	pb_string(b, OTLP_KV_KEY, key);
	pb_tag(b, OTLP_KV_VALUE, PB_LEN);
	pb_varint(b, value_len);
}

void pb_kv_str(struct pb *b, unsigned field, const char *key, const char *val)
{
	size_t vlen = strlen(val);

	kv_head(b, field, key, 1 + varint_len(vlen) + vlen);
	pb_string(b, OTLP_ANY_STRING, val);
}

void pb_kv_int(struct pb *b, unsigned field, const char *key, int64_t val)
{
	kv_head(b, field, key, 1 + varint_len((uint64_t)val));
	pb_uint(b, OTLP_ANY_INT, (uint64_t)val);
}

void pb_free(struct pb *b)
{
	free(b->p);
	*b = (struct pb){ 0 };
}

void otlp_resource(struct pb *out, const char *service_name)
{
	pb_kv_str(out, OTLP_RES_ATTRIBUTES, "service.name", service_name);
	pb_kv_str(out, OTLP_RES_ATTRIBUTES, "service.version", WARDEN_VERSION);
	pb_kv_str(out, OTLP_RES_ATTRIBUTES, "telemetry.sdk.name", "mcpwarden");
	pb_kv_str(out, OTLP_RES_ATTRIBUTES, "telemetry.sdk.language", "c");
	pb_kv_str(out, OTLP_RES_ATTRIBUTES, "telemetry.sdk.version", WARDEN_VERSION);
}

void otlp_request(struct pb *out, const struct pb *resource, struct pb *const *spans, size_t n)
{
	struct pb scope = { 0 }, ss = { 0 }, rs = { 0 };

	pb_string(&scope, OTLP_SCOPE_NAME, "mcpwarden");
	pb_string(&scope, OTLP_SCOPE_VERSION, WARDEN_VERSION);
	pb_bytes(&ss, OTLP_SS_SCOPE, scope.p, scope.n);
	for (size_t i = 0; i < n; i++)
		pb_bytes(&ss, OTLP_SS_SPANS, spans[i]->p, spans[i]->n);
	pb_bytes(&rs, OTLP_RS_RESOURCE, resource->p, resource->n);
	pb_bytes(&rs, OTLP_RS_SCOPE_SPANS, ss.p, ss.n);
	pb_bytes(out, OTLP_REQ_RESOURCE_SPANS, rs.p, rs.n);
	pb_free(&scope);
	pb_free(&ss);
	pb_free(&rs);
}

/* --- trace context --------------------------------------------------------------------------- */

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		/* lowercase only (W3C: uppercase is invalid) */
		if (hi < 0 || lo < 0 || (s[2 * i] >= 'A' && s[2 * i] <= 'F') ||
		    (s[2 * i + 1] >= 'A' && s[2 * i + 1] <= 'F'))
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int trace_parent_parse(const char *s, struct trace_ctx *out)
{
	uint8_t version;
	size_t len;

	if (!s)
		return -EINVAL;
	len = strlen(s);
	if (len < TRACE_PARENT_LEN || unhex(s, &version, 1) || version == 0xff || s[2] != '-' ||
	    s[35] != '-' || s[52] != '-')
		return -EINVAL;
	/* Version 00 is exactly 55 characters; a later version may append "-..." fields. */
	if ((version == 0 && len != TRACE_PARENT_LEN) ||
	    (version != 0 && len > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-'))
		return -EINVAL;
	if (unhex(s + 3, out->trace_id, 16) || unhex(s + 36, out->span_id, 8) ||
	    unhex(s + 53, &out->flags, 1))
		return -EINVAL;
	if (all_zero(out->trace_id, 16) || all_zero(out->span_id, 8))
		return -EINVAL;
	return 0;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
}

void trace_parent_format(const struct trace_ctx *c, char *out)
{
	memcpy(out, "00-", 3);
	hex(c->trace_id, 16, out + 3);
	out[35] = '-';
	hex(c->span_id, 8, out + 36);
	out[52] = '-';
	hex(&c->flags, 1, out + 53);
	out[TRACE_PARENT_LEN] = '\0';
}

void trace_id_hex(const uint8_t id[16], char *out)
{
	hex(id, 16, out);
	out[32] = '\0';
}

bool trace_state_valid(const char *s)
{
	size_t n = strnlen(s, TRACE_STATE_MAX + 1);

	return n > 0 && n <= TRACE_STATE_MAX && ascii_span(s, n, true);
}

void trace_meta_headers(const cJSON *params, char *traceparent, char *tracestate)
{
	const cJSON *meta = json_get(params, "_meta");
	const cJSON *tp = json_get(meta, "traceparent");
	const cJSON *ts = json_get(meta, "tracestate");
	struct trace_ctx ctx;

	traceparent[0] = tracestate[0] = '\0';
	if (!cJSON_IsString(tp) || trace_parent_parse(tp->valuestring, &ctx))
		return;
	trace_parent_format(&ctx, traceparent);
	if (cJSON_IsString(ts) && trace_state_valid(ts->valuestring))
		strcpy(tracestate, ts->valuestring);
}

/* --- ids and sampling --------------------------------------------------------------------- */

/* xoshiro256** seeded from getrandom: ids need to be unique, not secret, and a system call
 * per span would cost more than the span. One generator a thread (a loop's spans are its own). */
static _Thread_local uint64_t rng_s[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void)
{
	if (!rng_seeded) {
		if (getrandom(rng_s, sizeof(rng_s), 0) != (ssize_t)sizeof(rng_s)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			rng_s[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
			rng_s[1] = clock_mono_ns() | 1;
			rng_s[2] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
			rng_s[3] = (uint64_t)(uintptr_t)rng_s | 1;     /* one a thread */
		}
		rng_seeded = true;
	}
	uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;

	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return r;
}

static void rand_bytes(uint8_t *p, size_t n)
{
	while (n) {
		uint64_t r = rng_next();
		size_t k = n < 8 ? n : 8;
		memcpy(p, &r, k);
		p += k;
		n -= k;
	}
	/* never all zero: invalid in W3C */
	p[-1] |= all_zero(p - 1, 1) ? 1 : 0;
}

static bool ratio_sample(const uint8_t trace_id[16])
{
	uint64_t x = 0;

	if (RELAXED(g.all))
		return true;
	for (int i = 8; i < 16; i++)  /* the random part W3C level 2 asks samplers to use */
		x = x << 8 | trace_id[i];
	return x < RELAXED(g.threshold);
}

static bool sample(const struct trace_ctx *parent, const uint8_t trace_id[16])
{
	switch ((enum trace_sampler)RELAXED(g.sampler)) {
	case SAMPLER_ALWAYS_ON:
		return true;
	case SAMPLER_ALWAYS_OFF:
		return false;
	case SAMPLER_RATIO:
		return ratio_sample(trace_id);
	case SAMPLER_PARENT_ALWAYS_ON:
		return parent ? (parent->flags & TRACE_FLAG_SAMPLED) != 0 : true;
	case SAMPLER_PARENT_ALWAYS_OFF:
		return parent ? (parent->flags & TRACE_FLAG_SAMPLED) != 0 : false;
	case SAMPLER_PARENT_RATIO:
		return parent ? (parent->flags & TRACE_FLAG_SAMPLED) != 0 : ratio_sample(trace_id);
	}
	return false;
}

/* --- spans ---------------------------------------------------------------------------------- */

struct span {
	struct trace_ctx ctx;
	bool recording;
	bool failed;
	char *tracestate;
	struct pb body;   /* the Span message so far: fields in any order are valid protobuf */
};

static uint64_t unix_ns(uint64_t mono_ns)
{
	struct timespec ts;
	uint64_t now_mono = clock_mono_ns(), now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (!mono_ns || mono_ns > now_mono)
		return now;
	return now - (now_mono - mono_ns);
}

struct span *span_start(enum span_kind kind, const struct trace_ctx *parent,
			const char *tracestate, uint64_t start_ns)
{
	struct span *s;

	if (!trace_enabled())
		return NULL;
	s = xcalloc(1, sizeof(*s));
	if (parent)
		memcpy(s->ctx.trace_id, parent->trace_id, 16);
	else
		rand_bytes(s->ctx.trace_id, 16);
	rand_bytes(s->ctx.span_id, 8);
	s->recording = sample(parent, s->ctx.trace_id);
	s->ctx.flags = s->recording ? TRACE_FLAG_SAMPLED : 0;
	if (tracestate && trace_state_valid(tracestate))
		s->tracestate = xstrdup(tracestate);
	if (!s->recording)
		return s;
	/* one allocation for a call's span: its attributes come to 500-900 bytes */
	s->body.cap = 1024;
	s->body.p = xmalloc(s->body.cap);
	pb_bytes(&s->body, OTLP_SPAN_TRACE_ID, s->ctx.trace_id, 16);
	pb_bytes(&s->body, OTLP_SPAN_SPAN_ID, s->ctx.span_id, 8);
	if (s->tracestate)
		pb_string(&s->body, OTLP_SPAN_TRACE_STATE, s->tracestate);
	if (parent)
		pb_bytes(&s->body, OTLP_SPAN_PARENT_SPAN_ID, parent->span_id, 8);
	pb_uint(&s->body, OTLP_SPAN_KIND, (uint64_t)kind);
	pb_fixed64(&s->body, OTLP_SPAN_START, unix_ns(start_ns));
	/* flags: bits 0-7 the W3C flags, bit 8 "has is_remote", bit 9 "is remote" */
	pb_fixed32(&s->body, OTLP_SPAN_FLAGS, s->ctx.flags | 0x100u |
		   (parent && kind == SPAN_SERVER ? 0x200u : 0));
	return s;
}

const struct trace_ctx *span_ctx(const struct span *s)
{
	return &s->ctx;
}

const char *span_tracestate(const struct span *s)
{
	return s->tracestate;
}

bool span_recording(const struct span *s)
{
	return s && s->recording;
}

void span_set_name(struct span *s, const char *a, const char *b)
{
	size_t la, lb;
	char *name;

	if (!span_recording(s))
		return;
	la = strlen(a);
	lb = b ? strlen(b) : 0;
	name = xmalloc(la + lb + 2);
	memcpy(name, a, la);
	if (lb) {
		name[la] = ' ';
		memcpy(name + la + 1, b, lb);
		la += lb + 1;
	}
	name[la] = '\0';
	pb_string(&s->body, OTLP_SPAN_NAME, name);
	free(name);
}

void span_attr_str(struct span *s, const char *key, const char *val)
{
	if (span_recording(s) && val)
		pb_kv_str(&s->body, OTLP_SPAN_ATTRIBUTES, key, val);
}

void span_attr_int(struct span *s, const char *key, int64_t val)
{
	if (span_recording(s))
		pb_kv_int(&s->body, OTLP_SPAN_ATTRIBUTES, key, val);
}

void span_set_error(struct span *s, const char *type, const char *msg)
{
	struct pb st = { 0 };

	if (!span_recording(s) || s->failed)
		return;
	s->failed = true;
	pb_kv_str(&s->body, OTLP_SPAN_ATTRIBUTES, "error.type", type);
	if (msg && *msg)
		pb_string(&st, OTLP_STATUS_MESSAGE, msg);
	pb_uint(&st, OTLP_STATUS_CODE, OTLP_STATUS_ERROR);
	pb_bytes(&s->body, OTLP_SPAN_STATUS, st.p, st.n);
	pb_free(&st);
}

void span_end(struct span *s)
{
	if (!s)
		return;
	if (s->recording && trace_enabled()) {
		pb_fixed64(&s->body, OTLP_SPAN_END, unix_ns(0));
		struct pb *blob = xmalloc(sizeof(*blob));
		*blob = s->body;
		s->body = (struct pb){ 0 };
		if (!exporter_submit(blob)) {
			pb_free(blob);
			free(blob);
		}
	}
	pb_free(&s->body);
	free(s->tracestate);
	free(s);
}

void trace_url_for_log(const char *url, char *out, size_t n)
{
	const char *host = strstr(url, "://"), *at;

	host = host ? host + 3 : url;
	at = strchr(host, '@');
	if (at && at < host + strcspn(host, "/?#"))
		snprintf(out, n, "%.*s***%s", (int)(host - url), url, at);
	else
		snprintf(out, n, "%s", url);
}

/* --- start and stop -------------------------------------------------------------------------- */

int trace_start(const struct config *cfg)
{
	struct config_errors errs = { 0 }, warns = { 0 };
	struct trace_config tc;
	int rc;

	if (atomic_exchange(&trace_on_, false))  /* a reload: the old exporter flushes on
						  * its own thread */
		exporter_stop(false);
	rc = trace_config_parse(cfg, &tc, &errs, &warns);
	for (int i = 0; tc.url && i < warns.count; i++)  /* said when tracing was meant */
		log_warn("tracing: %s (ignored)", warns.msg[i]);
	if (rc) {
		for (int i = 0; i < errs.count; i++)
			log_error("tracing: %s", errs.msg[i]);
		trace_config_free(&tc);
		return rc;
	}
	if (!tc.enabled) {
		trace_config_free(&tc);
		return 0;
	}
	atomic_store_explicit(&g.sampler, (int)tc.sampler, memory_order_relaxed);
	atomic_store_explicit(&g.all, tc.ratio >= 1.0, memory_order_relaxed);
	atomic_store_explicit(&g.threshold, tc.ratio <= 0 ? 0 :
			      (uint64_t)(tc.ratio * 18446744073709551616.0), memory_order_relaxed);
	rc = exporter_start(&tc);
	if (rc == 0) {
		char url[512];
		atomic_store(&trace_on_, true);
		trace_url_for_log(tc.url, url, sizeof(url));
		log_info("tracing: exporting spans to %s (service %s)", url, tc.service_name);
	} else {
		log_error("tracing: cannot start the exporter: %s", strerror(-rc));
	}
	trace_config_free(&tc);
	return rc;
}

void trace_stop(void)
{
	struct trace_counters n;
	bool was = atomic_exchange(&trace_on_, false);

	exporter_stop(true);
	if (!was)
		return;
	exporter_counters(&n);
	log_msg(n.dropped ? LOG_WARN : LOG_INFO, "tracing: %llu spans exported, %llu dropped, "
		"%llu export errors", (unsigned long long)n.exported, (unsigned long long)n.dropped,
		(unsigned long long)n.export_errors);
}

void trace_counters(struct trace_counters *out)
{
	exporter_counters(out);
}
