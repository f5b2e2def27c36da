/* trace_config: the `tracing` section and the standard OTEL_* environment variables.
 *
 * The file wins over the environment field by field (an operator who wrote a value meant it);
 * the environment fills in what the file leaves out, so the usual deployment knobs
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...) work with no section at all.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/hex.h"
#include "base/json_get.h"
#include "observe/trace.h"
#include "observe/trace_int.h"

#define MAX_HEADERS 32

/* The section as written; what needs more than a type and a range is checked after. */
struct section {
	bool enabled;
	const char *endpoint, *protocol, *service_name, *sampler;
	unsigned queue_size, batch_size, batch_delay_ms, timeout_ms;
};

static const struct cfg_field tracing_fields[] = {
	CFG_FIELD(struct section, enabled, CFG_BOOL, 0, 0, 0),
	CFG_FIELD(struct section, endpoint, CFG_STRING, 0, 0, 0),
	CFG_FIELD(struct section, protocol, CFG_STRING, 0, 0, 0),
	CFG_KNOWN_FIELD("headers"),
	CFG_FIELD(struct section, service_name, CFG_STRING, 0, 0, 0),
	CFG_FIELD(struct section, sampler, CFG_STRING, 0, 0, 0),
	CFG_KNOWN_FIELD("sample_ratio"),
	CFG_FIELD(struct section, queue_size, CFG_UINT, 1, 1000000, 0),
	CFG_FIELD(struct section, batch_size, CFG_UINT, 1, 100000, 0),
	CFG_FIELD(struct section, batch_delay_ms, CFG_UINT, 1, 3600000, 0),
	CFG_FIELD(struct section, timeout_ms, CFG_UINT, 1, 600000, 0),
	CFG_KNOWN_FIELD("_comment"),
	CFG_END,
};

/* A variable that was ignored: "NAME: why", in the warnings' list. */
static void __attribute__((format(printf, 3, 4)))
env_warn(struct config_errors *w, const char *var, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (w->count < CONFIG_MAX_ERRORS)
		snprintf(w->msg[w->count++], sizeof(w->msg[0]), "%s: %s", var, why);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* The more specific variable first (…_TRACES_…), then the general one. */
static const char *env2(const char *traces, const char *general)
{
	const char *v = env(traces);

	return v ? v : env(general);
}

static bool header_name_ok(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] > 0x20 && s[i] < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", s[i])))
			return false;
	return true;
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* Add or replace (by name, case-insensitively) "name: value". */
static int put_header(struct trace_config *tc, size_t *n, const char *name, size_t nlen,
		      const char *value)
{
	char *line;
	size_t i;

	if (!header_name_ok(name, nlen) || !header_value_ok(value))
		return -EINVAL;
	line = xmalloc(nlen + strlen(value) + 3);
	memcpy(line, name, nlen);
	memcpy(line + nlen, ": ", 2);
	strcpy(line + nlen + 2, value);
	for (i = 0; i < *n; i++)
		if (!strncasecmp(tc->headers[i], name, nlen) && tc->headers[i][nlen] == ':')
			break;
	if (i < *n) {
		free(tc->headers[i]);
		tc->headers[i] = line;
		return 0;
	}
	if (*n >= MAX_HEADERS) {
		free(line);
		return -E2BIG;
	}
	tc->headers = xrealloc(tc->headers, (*n + 2) * sizeof(char *));
	tc->headers[(*n)++] = line;
	tc->headers[*n] = NULL;
	return 0;
}

static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* OTEL_EXPORTER_OTLP_HEADERS: "k1=v1,k2=v2", values percent-encoded (W3C baggage format). */
static int env_headers(struct trace_config *tc, size_t *n, const char *var,
		       struct config_errors *errs)
{
	const char *s = env(var), *end, *eq;

	while (s && *s) {
		end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		eq = memchr(s, '=', (size_t)(end - s));
		if (eq) {
			const char *k = s, *v = eq + 1;
			size_t kn = (size_t)(eq - s), vn = (size_t)(end - v), o = 0;
			char *val = xmalloc(vn + 1);
			trim(&k, &kn);
			trim(&v, &vn);
			for (size_t i = 0; i < vn; i++) {
				int hi, lo;
				if (v[i] == '%' && i + 2 < vn && (hi = hex_digit(v[i + 1])) >= 0 &&
				    (lo = hex_digit(v[i + 2])) >= 0) {
					val[o++] = (char)(hi << 4 | lo);
					i += 2;
				} else {
					val[o++] = v[i];
				}
			}
			val[o] = '\0';
			int rc = put_header(tc, n, k, kn, val);
			free(val);
			if (rc) {  /* the value may be a secret: name the variable only */
				env_warn(errs, var, "holds a header that cannot be sent");
				return -EINVAL;
			}
		} else if (end > s) {
			env_warn(errs, var, "must be a list of name=value pairs");
			return -EINVAL;
		}
		s = *end ? end + 1 : end;
	}
	return 0;
}

static int parse_sampler(const char *s, enum trace_sampler *out)
{
	static const struct { const char *name; enum trace_sampler v; } names[] = {
		{ "always_on", SAMPLER_ALWAYS_ON }, { "always_off", SAMPLER_ALWAYS_OFF },
		{ "traceidratio", SAMPLER_RATIO }, { "parentbased_always_on", SAMPLER_PARENT_ALWAYS_ON },
		{ "parentbased_always_off", SAMPLER_PARENT_ALWAYS_OFF },
		{ "parentbased_traceidratio", SAMPLER_PARENT_RATIO },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name)) {
			*out = names[i].v;
			return 0;
		}
	return -EINVAL;
}

static bool url_ok(const char *u)
{
	return (!strncasecmp(u, "http://", 7) && u[7]) || (!strncasecmp(u, "https://", 8) && u[8]);
}

/* <endpoint>/v1/traces, without a doubled slash. */
static char *traces_url(const char *base)
{
	size_t n = strlen(base);
	char *u;

	while (n && base[n - 1] == '/')
		n--;
	u = xmalloc(n + sizeof("/v1/traces"));
	memcpy(u, base, n);
	strcpy(u + n, "/v1/traces");
	return u;
}

static void env_uint(const char *var, unsigned min, unsigned max, unsigned *out,
		     struct config_errors *warns)
{
	const char *v = env(var);
	char *end;
	unsigned long x;

	if (!v)
		return;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || x < min || x > max)
		env_warn(warns, var, "must be an integer from %u to %u", min, max);
	else
		*out = (unsigned)x;
}

static int parse_ratio(const char *s, double *out)
{
	char *end;
	double r;

	errno = 0;
	r = strtod(s, &end);
	if (errno || *end || end == s || !(r >= 0.0 && r <= 1.0))
		return -EINVAL;
	*out = r;
	return 0;
}

/* Per the OpenTelemetry specification a variable with a bad value is a warning (in warns) and
 * is treated as unset; a protocol other than http/protobuf and http/json (grpc) turns tracing off. What the file
 * set (have_*) is not looked up. */
static void parse_env(struct trace_config *tc, bool have_sampler, bool have_protocol,
		      struct config_errors *warns)
{
	const char *v;

	if (!tc->url && (v = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))) {
		if (!url_ok(v))
			env_warn(warns, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "must be an http(s) URL");
		else
			tc->url = xstrdup(v);
	}
	if (!tc->url && (v = env("OTEL_EXPORTER_OTLP_ENDPOINT"))) {
		if (!url_ok(v))
			env_warn(warns, "OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http(s) URL");
		else
			tc->url = traces_url(v);
	}
	if (!tc->service_name && (v = env("OTEL_SERVICE_NAME")))
		tc->service_name = xstrdup(v);
	if (!have_protocol &&
	    (v = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"))) {
		if (!strcmp(v, "http/json")) {
			tc->json = true;
		} else if (strcmp(v, "http/protobuf")) {
			env_warn(warns, "OTEL_EXPORTER_OTLP_PROTOCOL", "only http/protobuf and "
				 "http/json are supported (not %.32s): tracing is off", v);
			tc->enabled = false;
		}
	}
	if (!have_sampler && (v = env("OTEL_TRACES_SAMPLER"))) {
		if (parse_sampler(v, &tc->sampler))
			env_warn(warns, "OTEL_TRACES_SAMPLER", "unknown sampler %.64s", v);
		if ((v = env("OTEL_TRACES_SAMPLER_ARG")) &&
		    (tc->sampler == SAMPLER_RATIO || tc->sampler == SAMPLER_PARENT_RATIO) &&
		    parse_ratio(v, &tc->ratio))
			env_warn(warns, "OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1");
	}
	env_uint("OTEL_BSP_MAX_QUEUE_SIZE", 1, 1000000, &tc->queue_size, warns);
	env_uint("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 100000, &tc->batch_size, warns);
	env_uint("OTEL_BSP_SCHEDULE_DELAY", 1, 3600000, &tc->delay_ms, warns);
	env_uint(env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ? "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
		 : "OTEL_EXPORTER_OTLP_TIMEOUT", 1, 600000, &tc->timeout_ms, warns);
}

static int parse_file(const cJSON *sec, struct trace_config *tc, size_t *nh, bool *have_sampler,
		      struct config_errors *errs)
{
	struct section f = {
		.enabled = tc->enabled, .queue_size = tc->queue_size, .batch_size = tc->batch_size,
		.batch_delay_ms = tc->delay_ms, .timeout_ms = tc->timeout_ms,
	};
	const cJSON *hs, *it;
	int rc = cfg_fields(sec, "tracing", tracing_fields, &f, errs);

	if (rc == -EINVAL && !cJSON_IsObject(sec))
		return rc;
	tc->enabled = f.enabled;
	tc->queue_size = f.queue_size;
	tc->batch_size = f.batch_size;
	tc->delay_ms = f.batch_delay_ms;
	tc->timeout_ms = f.timeout_ms;
	if (f.endpoint && url_ok(f.endpoint))
		tc->url = traces_url(f.endpoint);
	else if (f.endpoint)
		rc = config_fail(errs, "tracing.endpoint", "must be an http(s) URL");
	if (f.protocol && !strcmp(f.protocol, "http/json"))
		tc->json = true;
	else if (f.protocol && strcmp(f.protocol, "http/protobuf"))
		rc = config_fail(errs, "tracing.protocol",
				 "must be \"http/protobuf\" or \"http/json\"");
	if (f.service_name)
		tc->service_name = xstrdup(f.service_name);
	if (f.sampler) {
		*have_sampler = true;
		if (parse_sampler(f.sampler, &tc->sampler))
			rc = config_fail(errs, "tracing.sampler", "must be always_on, always_off, "
					 "traceidratio or parentbased_{always_on,always_off,"
					 "traceidratio}");
	}
	if ((it = json_get(sec, "sample_ratio"))) {
		if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 1))
			rc = config_fail(errs, "tracing.sample_ratio", "must be a number from 0 to 1");
		else
			tc->ratio = it->valuedouble;
		if (!*have_sampler)
			tc->sampler = SAMPLER_PARENT_RATIO;
		*have_sampler = true;
	}
	if ((hs = json_get(sec, "headers"))) {
		if (!cJSON_IsObject(hs))
			return config_fail(errs, "tracing.headers", "must be an object");
		cJSON_ArrayForEach(it, hs) {
			char *val = NULL;
			if (cfg_secret(hs, it->string, "tracing.headers", true, &val, errs)) {
				rc = -EINVAL;
				continue;
			}
			int r = put_header(tc, nh, it->string, strlen(it->string), val);
			free(val);
			if (r)
				rc = config_fail(errs, "tracing.headers", "%.64s: %s", it->string,
						 r == -E2BIG ? "too many headers"
							     : "not a valid header name or value");
		}
	}
	return rc;
}

int trace_config_parse(const struct config *cfg, struct trace_config *tc,
		       struct config_errors *errs, struct config_errors *warns)
{
	static const char *const header_vars[] = { "OTEL_EXPORTER_OTLP_HEADERS",
						   "OTEL_EXPORTER_OTLP_TRACES_HEADERS", NULL };
	struct config_errors scratch_warns;
	const cJSON *sec = json_get(cfg->raw, "tracing");
	size_t nh = 0;
	bool have_sampler = false;
	const char *v;
	int rc = 0;

	if (!warns) {
		scratch_warns = (struct config_errors){ 0 };
		warns = &scratch_warns;
	}
	*tc = (struct trace_config){
		.enabled = true, .sampler = SAMPLER_PARENT_ALWAYS_ON, .ratio = 1.0,
		.queue_size = 2048, .batch_size = 512, .delay_ms = 5000, .timeout_ms = 10000,
	};
	tc->headers = xcalloc(1, sizeof(char *));
	/* The environment's headers first: the file's replace them by name. A variable that does
	 * not parse is ignored as a whole (tried on a scratch list first). */
	for (const char *const *var = header_vars; *var; var++) {
		struct trace_config scratch = { .headers = xcalloc(1, sizeof(char *)) };
		size_t ns = 0;
		int bad = env_headers(&scratch, &ns, *var, warns);
		trace_config_free(&scratch);
		if (!bad && env_headers(tc, &nh, *var, warns))
			rc = -EINVAL;  /* cannot be: the same text parsed a moment ago */
	}
	if (sec && parse_file(sec, tc, &nh, &have_sampler, errs))
		rc = -EINVAL;
	parse_env(tc, have_sampler, sec && json_get(sec, "protocol"), warns);
	if (!tc->service_name)
		tc->service_name = xstrdup("mcpwarden");
	if (tc->batch_size > tc->queue_size)
		tc->batch_size = tc->queue_size;
	if ((v = env("OTEL_SDK_DISABLED")) && !strcasecmp(v, "true"))
		tc->enabled = false;
	if ((v = env("OTEL_TRACES_EXPORTER")) && !strcmp(v, "none"))
		tc->enabled = false;
	if (!tc->url)
		tc->enabled = false;
	return rc;
}

void trace_config_free(struct trace_config *tc)
{
	for (char **h = tc->headers; h && *h; h++)
		free(*h);
	free(tc->headers);
	free(tc->url);
	free(tc->service_name);
	*tc = (struct trace_config){ 0 };
}
