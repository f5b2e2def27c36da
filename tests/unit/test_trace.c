/* trace: W3C traceparent parsing, the hand-written OTLP protobuf encoding (byte for byte; the
 * integration test decodes real exports with the official definitions), the configuration
 * from the file and the OTEL_* environment, and sampling. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/epoch.h"
#include "observe/trace.h"
#include "observe/trace_int.h"
#include "cunit_main.h"
#include "config_errors_util.h"

static void test_traceparent(void)
{
	static const char *const bad[] = {
		"", "00", "garbage",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",         /* short */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",       /* v00 is exact */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        /* uppercase */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",        /* zero trace */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        /* zero span */
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        /* version ff */
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",       /* future, no dash */
	};
	const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	struct trace_ctx c;
	char out[TRACE_PARENT_LEN + 1], id[33];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(trace_parent_parse(bad[i], &c), -EINVAL);
	CU_ASSERT_EQUAL(trace_parent_parse(NULL, &c), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(trace_parent_parse(good, &c), 0);
	CU_ASSERT_EQUAL(c.trace_id[0], 0x4b);
	CU_ASSERT_EQUAL(c.trace_id[15], 0x36);
	CU_ASSERT_EQUAL(c.span_id[7], 0xb7);
	CU_ASSERT_EQUAL(c.flags, TRACE_FLAG_SAMPLED);
	trace_parent_format(&c, out);
	CU_ASSERT_STRING_EQUAL(out, good);
	trace_id_hex(c.trace_id, id);
	CU_ASSERT_STRING_EQUAL(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	/* a later version with more fields: read as 00, its prefix only */
	CU_ASSERT_EQUAL(trace_parent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x",
					   &c), 0);
	CU_ASSERT_EQUAL(c.flags, 0);
	CU_ASSERT(trace_state_valid("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
	CU_ASSERT(!trace_state_valid(""));
	CU_ASSERT(!trace_state_valid("a=b\r\nx-injected: 1"));
}

static void test_url_for_log(void)
{
	char out[128];

	trace_url_for_log("https://user:pw@otlp.example.com:4318/v1/traces", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "https://***@otlp.example.com:4318/v1/traces");
	trace_url_for_log("http://127.0.0.1:4318/v1/traces?a=b@c", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "http://127.0.0.1:4318/v1/traces?a=b@c");
}

static void test_meta_headers(void)
{
	cJSON *m = cJSON_Parse("{\"method\":\"tools/call\",\"params\":{\"_meta\":{"
			       "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
			       "\"tracestate\":\"a=b\"}}}");
	char tp[TRACE_PARENT_LEN + 1], ts[TRACE_STATE_MAX + 1];

	trace_meta_headers(cJSON_GetObjectItem(m, "params"), tp, ts);
	CU_ASSERT_STRING_EQUAL(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
	CU_ASSERT_STRING_EQUAL(ts, "a=b");
	cJSON_Delete(m);
	m = cJSON_Parse("{\"params\":{\"_meta\":{\"traceparent\":\"00-x\\r\\nEvil: 1\","
			"\"tracestate\":\"a=b\"}}}");
	trace_meta_headers(cJSON_GetObjectItem(m, "params"), tp, ts);
	CU_ASSERT_STRING_EQUAL(tp, "");
	CU_ASSERT_STRING_EQUAL(ts, "");
	cJSON_Delete(m);
}

#define CHECK_BYTES(b, ...) do {                                                     \
	static const uint8_t want_[] = { __VA_ARGS__ };                              \
	CU_ASSERT_EQUAL((b)->n, sizeof(want_));                                      \
	CU_ASSERT((b)->n == sizeof(want_) && !memcmp((b)->p, want_, sizeof(want_))); \
} while (0)

static void test_protobuf(void)
{
	struct pb b = { 0 };

	pb_varint(&b, 0);
	pb_varint(&b, 1);
	pb_varint(&b, 300);
	pb_varint(&b, 1ull << 63);
	CHECK_BYTES(&b, 0x00, 0x01, 0xac, 0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
		    0x80, 0x01);
	pb_free(&b);
	pb_fixed64(&b, 7, 0x0102030405060708ull);
	pb_fixed32(&b, 16, 0x301);
	CHECK_BYTES(&b, 0x39, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		    0x85, 0x01, 0x01, 0x03, 0x00, 0x00);
	pb_free(&b);
	/* KeyValue{key "a", value AnyValue{string_value "bc"}} as Span field 9 */
	pb_kv_str(&b, 9, "a", "bc");
	CHECK_BYTES(&b, 0x4a, 0x09, 0x0a, 0x01, 'a', 0x12, 0x04, 0x0a, 0x02, 'b', 'c');
	pb_free(&b);
	/* AnyValue{int_value 300}; a negative int64 is ten varint bytes */
	pb_kv_int(&b, 9, "n", 300);
	CHECK_BYTES(&b, 0x4a, 0x08, 0x0a, 0x01, 'n', 0x12, 0x03, 0x18, 0xac, 0x02);
	pb_free(&b);
	pb_kv_int(&b, 1, "n", -1);
	CHECK_BYTES(&b, 0x0a, 0x10, 0x0a, 0x01, 'n', 0x12, 0x0b, 0x18,
		    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	pb_free(&b);
	/* a long string: two-byte lengths all the way up */
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pb_kv_str(&b, 9, "k", big);
	CU_ASSERT_EQUAL(b.n, 2 + 2 + 1 + 1 + 2 + 1 + 2 + 199 + 1);  /* tags, lengths, bytes */
	/* KeyValue: 1+1+1 + 1+2 + (1+2+199) = 208, a two-byte length */
	CU_ASSERT(b.p[1] == 0xd0 && b.p[2] == 0x01);
	pb_free(&b);
}

/* Append a length-delimited field (its tag byte, a one-byte length: len < 128, then the bytes),
 * independently of the encoder under test. */
static size_t put_len(uint8_t *out, size_t n, uint8_t tag, const void *p, size_t len)
{
	out[n++] = tag;
	out[n++] = (uint8_t)len;
	memcpy(out + n, p, len);
	return n + len;
}

static void test_request(void)
{
	struct pb res = { 0 }, span = { 0 }, out = { 0 };
	struct pb *spans[] = { &span };
	uint8_t scope[64], ss[128], rs[192], want[256];
	size_t ns, nss, nrs, nw;
	const size_t vlen = strlen(WARDEN_VERSION);

	pb_raw(&res, "R", 1);
	pb_raw(&span, "S", 1);
	otlp_request(&out, &res, spans, 1);
	/* InstrumentationScope{name 1, version 2} */
	ns = put_len(scope, 0, 0x0a, "mcpwarden", 9);
	ns = put_len(scope, ns, 0x12, WARDEN_VERSION, vlen);
	/* ScopeSpans{scope 1, spans 2} */
	nss = put_len(ss, 0, 0x0a, scope, ns);
	nss = put_len(ss, nss, 0x12, "S", 1);
	/* ResourceSpans{resource 1, scope_spans 2} */
	nrs = put_len(rs, 0, 0x0a, "R", 1);
	nrs = put_len(rs, nrs, 0x12, ss, nss);
	/* ExportTraceServiceRequest{resource_spans 1} */
	nw = put_len(want, 0, 0x0a, rs, nrs);
	CU_ASSERT_EQUAL(out.n, nw);
	CU_ASSERT(out.n == nw && !memcmp(out.p, want, nw));
	pb_free(&res);
	pb_free(&span);
	pb_free(&out);
}

/* http/json: the same request in OTLP's JSON encoding, read back from the Span protobuf. */
static void test_request_json(void)
{
	static const uint8_t trace_id[16] = { 0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd,
					      0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c };
	static const uint8_t span_id[8] = { 0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31 };
	struct pb res = { 0 }, span = { 0 }, st = { 0 }, out = { 0 };
	struct pb *spans[] = { &span };
	cJSON *j, *sp, *a;

	otlp_resource(&res, "svc \"q\"");
	pb_bytes(&span, OTLP_SPAN_TRACE_ID, trace_id, 16);
	pb_bytes(&span, OTLP_SPAN_SPAN_ID, span_id, 8);
	pb_bytes(&span, OTLP_SPAN_PARENT_SPAN_ID, span_id, 8);
	pb_uint(&span, OTLP_SPAN_KIND, SPAN_SERVER);
	pb_fixed64(&span, OTLP_SPAN_START, 1700000000123456789ull);
	pb_fixed32(&span, OTLP_SPAN_FLAGS, 0x301);
	pb_string(&span, OTLP_SPAN_NAME, "tools/call a");
	pb_kv_str(&span, OTLP_SPAN_ATTRIBUTES, "mcp.method.name", "tools/call");
	pb_kv_int(&span, OTLP_SPAN_ATTRIBUTES, "client.port", -7);
	pb_string(&st, OTLP_STATUS_MESSAGE, "no");
	pb_uint(&st, OTLP_STATUS_CODE, OTLP_STATUS_ERROR);
	pb_bytes(&span, OTLP_SPAN_STATUS, st.p, st.n);
	pb_fixed64(&span, OTLP_SPAN_END, 1700000000123456999ull);
	CU_ASSERT_EQUAL_FATAL(otlp_json_request(&out, &res, spans, 1), 0);
	pb_raw(&out, "", 1);
	j = cJSON_Parse((const char *)out.p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	a = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "resourceSpans"), 0), "resource"), "attributes"), 0);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(a, "key")->valuestring, "service.name");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "value"),
						   "stringValue")->valuestring, "svc \"q\"");
	cJSON *ss = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "resourceSpans"), 0), "scopeSpans"), 0);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(ss, "scope"),
						   "name")->valuestring, "mcpwarden");
	sp = cJSON_GetArrayItem(cJSON_GetObjectItem(ss, "spans"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
	/* ids as lowercase hex, 64-bit integers as decimal strings, enums as numbers */
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "traceId")->valuestring,
			       "0af7651916cd43dd8448eb211c80319c");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "spanId")->valuestring, "b7ad6b7169203331");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "parentSpanId")->valuestring,
			       "b7ad6b7169203331");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "startTimeUnixNano")->valuestring,
			       "1700000000123456789");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "endTimeUnixNano")->valuestring,
			       "1700000000123456999");
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(sp, "kind")->valueint, SPAN_SERVER);
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(sp, "flags")->valueint, 0x301);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sp, "name")->valuestring, "tools/call a");
	a = cJSON_GetObjectItem(sp, "attributes");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(a), 2);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0),
		"value"), "stringValue")->valuestring, "tools/call");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 1),
		"value"), "intValue")->valuestring, "-7");
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "status"), "code")->valueint,
			OTLP_STATUS_ERROR);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "status"),
						   "message")->valuestring, "no");
	cJSON_Delete(j);
	/* bytes that are not the protobuf trace.c writes: refused, not read past their end */
	out.n = 0;
	span.n = 3;
	CU_ASSERT_EQUAL(otlp_json_request(&out, &res, spans, 1), -EINVAL);
	pb_free(&res);
	pb_free(&span);
	pb_free(&st);
	pb_free(&out);
}

static struct config *cfg_of(const char *json)
{
	struct config *c = NULL;
	struct config_errors errs = { 0 };

	CU_ASSERT_EQUAL_FATAL(config_parse(json, "test", &c, &errs), 0);
	return c;
}

static const char *const vars[] = {
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
	"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", NULL,
};

static void clear_env(void)
{
	for (const char *const *v = vars; *v; v++)
		unsetenv(*v);
}

static struct config_errors warns;  /* of the last parse() */

/* Parse with the environment as set; returns the number of errors. */
static int parse(const char *json, struct trace_config *tc, struct config_errors *errs)
{
	struct config *c = cfg_of(json);

	*errs = (struct config_errors){ 0 };
	warns = (struct config_errors){ 0 };
	int rc = trace_config_parse(c, tc, errs, &warns);
	config_free(c);
	CU_ASSERT((rc != 0) == (errs->count != 0));
	return errs->count;
}

/* Set the NULL-terminated name, value pairs in the environment. */
static void set_env(const char *const *kv)
{
	for (; kv[0]; kv += 2)
		CU_ASSERT_FATAL(setenv(kv[0], kv[1], 1) == 0);
}

#define SET_ENV(...) set_env((const char *const[]){ __VA_ARGS__, NULL })

#define UP "\"upstreams\":[]"

static void test_config_env(void)
{
	struct trace_config tc;
	struct config_errors e;

	clear_env();
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT(!tc.enabled);                       /* nothing configured: off */
	trace_config_free(&tc);

	SET_ENV("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/",
		"OTEL_SERVICE_NAME", "svc",
		"OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team = blue",
		"OTEL_TRACES_SAMPLER", "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG", "0.25",
		"OTEL_BSP_SCHEDULE_DELAY", "50");
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT(tc.enabled);
	CU_ASSERT_STRING_EQUAL(tc.url, "http://collector:4318/v1/traces");
	CU_ASSERT_STRING_EQUAL(tc.service_name, "svc");
	CU_ASSERT_STRING_EQUAL(tc.headers[0], "api-key: a b");
	CU_ASSERT_STRING_EQUAL(tc.headers[1], "x-team: blue");
	CU_ASSERT_PTR_NULL(tc.headers[2]);
	CU_ASSERT_EQUAL(tc.sampler, SAMPLER_PARENT_RATIO);
	CU_ASSERT_DOUBLE_EQUAL(tc.ratio, 0.25, 1e-9);
	CU_ASSERT_EQUAL(tc.delay_ms, 50);
	trace_config_free(&tc);

	/* the signal's own endpoint is used as it is */
	setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c.example/custom/path", 1);
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT_STRING_EQUAL(tc.url, "https://c.example/custom/path");
	trace_config_free(&tc);

	/* the file wins, field by field; its headers replace the environment's by name */
	CU_ASSERT_EQUAL(parse("{" UP ",\"tracing\":{\"endpoint\":\"http://127.0.0.1:9\","
			      "\"service_name\":\"file\",\"headers\":{\"API-Key\":\"f\"},"
			      "\"sample_ratio\":0.5}}", &tc, &e), 0);
	CU_ASSERT_STRING_EQUAL(tc.url, "http://127.0.0.1:9/v1/traces");
	CU_ASSERT_STRING_EQUAL(tc.service_name, "file");
	CU_ASSERT_STRING_EQUAL(tc.headers[0], "API-Key: f");
	CU_ASSERT_STRING_EQUAL(tc.headers[1], "x-team: blue");
	CU_ASSERT_EQUAL(tc.sampler, SAMPLER_PARENT_RATIO);
	CU_ASSERT_DOUBLE_EQUAL(tc.ratio, 0.5, 1e-9);
	trace_config_free(&tc);

	setenv("OTEL_SDK_DISABLED", "true", 1);
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT(!tc.enabled);
	trace_config_free(&tc);
	unsetenv("OTEL_SDK_DISABLED");
	CU_ASSERT_EQUAL(parse("{" UP ",\"tracing\":{\"enabled\":false}}", &tc, &e), 0);
	CU_ASSERT(!tc.enabled);
	trace_config_free(&tc);
	clear_env();
}

static void test_config_errors(void)
{
	struct trace_config tc;
	struct config_errors e;

	clear_env();
	CU_ASSERT(parse("{" UP ",\"tracing\":{\"endpoint\":\"ftp://x\",\"protocol\":\"grpc\","
			"\"sample_ratio\":2,\"queue_size\":0,\"sampler\":\"sometimes\",\"colour\":1,"
			"\"headers\":{\"bad name\":\"v\"}}}", &tc, &e) >= 7);
	CU_ASSERT_ERRORS(&e, "tracing.endpoint", "tracing.protocol", "tracing.sample_ratio",
			 "tracing.queue_size", "tracing.sampler", "tracing.colour", "tracing.headers");
	trace_config_free(&tc);

	/* A bad variable is a warning and is ignored (OpenTelemetry's rule), never an error that
	 * would stop the daemon; an unsupported protocol turns tracing off. */
	SET_ENV("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc",
		"OTEL_EXPORTER_OTLP_HEADERS", "a=1,secret-token-no-equals",
		"OTEL_TRACES_SAMPLER", "sometimes",
		"OTEL_BSP_MAX_QUEUE_SIZE", "-5",
		"OTEL_BSP_SCHEDULE_DELAY", "70");
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT_EQUAL(warns.count, 4);
	CU_ASSERT_ERRORS(&warns, "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
			 "OTEL_TRACES_SAMPLER", "OTEL_BSP_MAX_QUEUE_SIZE");
	CU_ASSERT(!has_error(&warns, "secret-token"));   /* header values are never echoed */
	CU_ASSERT(!tc.enabled);                          /* grpc: not spoken here */
	CU_ASSERT_PTR_NULL(tc.headers[0]);               /* the whole variable is ignored */
	CU_ASSERT_EQUAL(tc.sampler, SAMPLER_PARENT_ALWAYS_ON);
	CU_ASSERT_EQUAL(tc.queue_size, 2048);
	CU_ASSERT_EQUAL(tc.delay_ms, 70);                /* the good ones still count */
	trace_config_free(&tc);
	/* http/json is spoken, from the environment or the file */
	clear_env();
	SET_ENV("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
	CU_ASSERT_EQUAL(parse("{" UP "}", &tc, &e), 0);
	CU_ASSERT(tc.enabled && tc.json);
	CU_ASSERT_EQUAL(warns.count, 0);
	trace_config_free(&tc);
	CU_ASSERT_EQUAL(parse("{" UP ",\"tracing\":{\"protocol\":\"http/protobuf\"}}", &tc, &e), 0);
	CU_ASSERT(tc.enabled && !tc.json);
	trace_config_free(&tc);
	SET_ENV("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
	CU_ASSERT_EQUAL(parse("{" UP ",\"tracing\":{\"protocol\":\"http/json\"}}", &tc, &e), 0);
	CU_ASSERT(tc.enabled && tc.json);
	trace_config_free(&tc);
	/* the file's protocol wins over the environment's */
	CU_ASSERT_EQUAL(parse("{" UP ",\"tracing\":{\"protocol\":\"http/protobuf\"}}", &tc, &e), 0);
	CU_ASSERT(tc.enabled);
	trace_config_free(&tc);
	clear_env();
}

/* Spans need tracing on: an exporter towards a port nothing listens on (the flush at stop
 * fails at once and is counted). */
static void start_tracing(const char *sampler_json)
{
	char json[512];
	struct config *c;

	snprintf(json, sizeof(json), "{" UP ",\"tracing\":{\"endpoint\":\"http://127.0.0.1:1\","
		 "\"timeout_ms\":200%s}}", sampler_json);
	c = cfg_of(json);
	CU_ASSERT_EQUAL(trace_start(c), 0);
	config_free(c);
	CU_ASSERT(trace_enabled());
}

static void test_sampling(void)
{
	struct trace_ctx sampled, unsampled;
	struct span *s, *t;

	clear_env();
	CU_ASSERT_PTR_NULL(span_start(SPAN_SERVER, NULL, NULL, 0));   /* off: nothing */
	CU_ASSERT_EQUAL(trace_parent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					   &sampled), 0);
	unsampled = sampled;
	unsampled.flags = 0;

	start_tracing("");        /* parentbased_always_on */
	s = span_start(SPAN_SERVER, &sampled, "a=b", 0);
	CU_ASSERT(span_recording(s));
	CU_ASSERT(!memcmp(span_ctx(s)->trace_id, sampled.trace_id, 16));
	CU_ASSERT(memcmp(span_ctx(s)->span_id, sampled.span_id, 8) != 0);
	CU_ASSERT_EQUAL(span_ctx(s)->flags, TRACE_FLAG_SAMPLED);
	CU_ASSERT_STRING_EQUAL(span_tracestate(s), "a=b");
	t = span_start(SPAN_CLIENT, span_ctx(s), span_tracestate(s), 0);
	CU_ASSERT(!memcmp(span_ctx(t)->trace_id, sampled.trace_id, 16));
	span_attr_str(t, "k", "v");
	span_set_error(t, "-32000", "boom");
	span_end(t);
	span_end(s);
	s = span_start(SPAN_SERVER, &unsampled, NULL, 0);
	CU_ASSERT(!span_recording(s));              /* the parent decided: not sampled */
	CU_ASSERT_EQUAL(span_ctx(s)->flags, 0);     /* ... and says so downstream */
	span_end(s);
	s = span_start(SPAN_SERVER, NULL, "bad\nstate", 0);
	t = span_start(SPAN_SERVER, NULL, NULL, 0);
	CU_ASSERT(span_recording(s));
	CU_ASSERT_PTR_NULL(span_tracestate(s));
	CU_ASSERT(memcmp(span_ctx(s)->trace_id, span_ctx(t)->trace_id, 16) != 0);
	span_end(s);
	span_end(t);

	start_tracing(",\"sampler\":\"traceidratio\",\"sample_ratio\":0");
	s = span_start(SPAN_SERVER, &sampled, NULL, 0);
	CU_ASSERT(!span_recording(s));              /* not parent-based: the ratio decides */
	span_end(s);
	start_tracing(",\"sample_ratio\":0");       /* parentbased_traceidratio */
	s = span_start(SPAN_SERVER, &sampled, NULL, 0);
	t = span_start(SPAN_SERVER, NULL, NULL, 0);
	CU_ASSERT(span_recording(s));
	CU_ASSERT(!span_recording(t));
	span_end(s);
	span_end(t);
	trace_stop();
	CU_ASSERT(!trace_enabled());
	struct trace_counters n;
	trace_counters(&n);
	CU_ASSERT_EQUAL(n.exported, 0);
	CU_ASSERT(n.dropped >= 4);                 /* the recorded spans, lost with the collector */
	CU_ASSERT(n.export_errors >= 1);
}

/* ---- loops ending spans while a reload restarts tracing (workers: N) ---- */

#define LOOPS 2
#define RELOADS 40

static atomic_bool stop;
static pthread_barrier_t go;

struct spanner {
	struct event_base *base;
	struct event *ev;
	long made, recorded, unrecorded;
};

static void span_once(evutil_socket_t fd, short what, void *arg)
{
	struct spanner *sp = arg;
	struct span *s = span_start(SPAN_SERVER, NULL, NULL, 0);

	(void)fd, (void)what;
	if (s) {
		sp->made++;
		if (span_recording(s))
			sp->recorded++;
		else
			sp->unrecorded++;
		span_attr_str(s, "mcp.method.name", "tools/call");
		span_end(s);
	}
	if (atomic_load(&stop))
		event_base_loopbreak(sp->base);
	else
		event_active(sp->ev, EV_TIMEOUT, 1);
}

static void *spanner_main(void *arg)
{
	struct spanner *sp = arg;
	int rc;

	sp->base = event_base_new();
	rc = sp->base ? epoch_loop_attach(sp->base) : -1;
	pthread_barrier_wait(&go);
	if (rc == 0 && (sp->ev = event_new(sp->base, -1, 0, span_once, sp))) {
		event_active(sp->ev, EV_TIMEOUT, 1);
		event_base_dispatch(sp->base);
		event_free(sp->ev);
	}
	epoch_loop_detach();
	event_base_free(sp->base);
	return NULL;
}

/* Each loop samples as the configuration in force says, whichever loop reloaded it, and the
 * exporters a reload replaces outlive the loops still queueing spans on them (ASan: no use
 * after free; make tsan: the switch, the sampler and the exporter handed over cleanly). */
static void test_loops_while_reloading(void)
{
	struct spanner sp[LOOPS] = { { 0 } };
	pthread_t t[LOOPS];

	clear_env();
	atomic_store(&stop, false);
	CU_ASSERT_FATAL(pthread_barrier_init(&go, NULL, LOOPS + 1) == 0);
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, spanner_main, &sp[i]) == 0);
	pthread_barrier_wait(&go);
	for (int i = 0; i < RELOADS; i++) {
		start_tracing(i % 2 ? ",\"sampler\":\"always_off\"" : ",\"sampler\":\"always_on\"");
		usleep(2000);   /* the loops make spans under each */
	}
	atomic_store(&stop, true);
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(sp[i].made > 0);
		/* both configurations reached this loop: the switch is not the reloader's alone */
		CU_ASSERT(sp[i].recorded > 0);
		CU_ASSERT(sp[i].unrecorded > 0);
	}
	pthread_barrier_destroy(&go);
	trace_stop();
	CU_ASSERT(!trace_enabled());
	struct trace_counters n;
	trace_counters(&n);
	CU_ASSERT_EQUAL(n.exported, 0);
	CU_ASSERT_EQUAL(n.queued, 0);
}

/* Callbacks are posted to the loops' bases from other threads, as in the daemon. */
static int setup(void)
{
	alloc_init();
	return evthread_use_pthreads();
}

CU_MAIN("trace", setup, NULL,
	{ "traceparent parsing and formatting", test_traceparent },
	{ "trace headers from params._meta, checked", test_meta_headers },
	{ "collector URLs are logged without credentials", test_url_for_log },
	{ "protobuf encoding, byte for byte", test_protobuf },
	{ "the OTLP export request", test_request },
	{ "the OTLP export request as JSON (http/json)", test_request_json },
	{ "configuration: file and OTEL_* environment", test_config_env },
	{ "configuration errors name their field", test_config_errors },
	{ "sampling and span contexts", test_sampling },
	{ "loops end spans while a reload restarts tracing", test_loops_while_reloading })
