/* config: load, validate and free the daemon's JSON configuration.
 *
 * Validation collects every problem rather than stopping at the first, each one prefixed by
 * the field path, so an operator fixes a file in one pass.
 */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/json_get.h"

#define DEFAULT_MAX_BODY   (4u << 20)
#define DEFAULT_MAX_HEADER (64u << 10)
#define MAX_CONFIG_BYTES   (16u << 20)

/* Sections owned by other modules: they parse them from config->raw. */
static const char *const top_keys[] = {
	"listen", "listen_unix", "path", "allowed_origins", "admin", "prefix", "auth", "limits", "timeouts",
	"log", "state_dir", "upstreams", "enforcement", "keys", "teams", "workloads", "policies",
	"costs", "budgets", "rate_limits", "store", "counters", "tool_pins", "providers", "llm", "tracing",
	"logs", "oauth", "workers", "$schema", "_comment", NULL
};
static const char *const upstream_keys[] = {
	"name", "transport", "command", "env", "inherit_env", "cwd", "per_session", "url",
	"headers", "connect_timeout_ms", "request_timeout_ms", "validate_args", "charge_failures",
	"circuit", "_comment", NULL
};
static const char *const default_inherit[] = { "PATH", "HOME", "LANG", "LC_ALL", "TZ", NULL };

/* The default used when no -c is given: loopback, no upstreams, auth on. */
static const char embedded_default[] =
	"{\"listen\": \"127.0.0.1:8080\", \"upstreams\": []}";

int config_fail(struct config_errors *errs, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!errs || errs->count >= CONFIG_MAX_ERRORS)
		return -EINVAL;
	char *m = errs->msg[errs->count++];
	int n = snprintf(m, sizeof(errs->msg[0]), "%s: ", path && *path ? path : "(root)");
	if (n < 0 || (size_t)n >= sizeof(errs->msg[0]))
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(m + n, sizeof(errs->msg[0]) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void field_path(char *buf, size_t len, const char *path, const char *key)
{
	if (path && *path)
		snprintf(buf, len, "%s.%s", path, key);
	else
		snprintf(buf, len, "%s", key);
}

static const cJSON *field(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? json_get(obj, key) : NULL;
}

/* obj.key, its path for messages in p[256]: 0, -ENOENT when absent and optional, or the
 * error for a missing required field. */
static int present(const cJSON *obj, const char *key, const char *path, bool required,
		   char p[256], const cJSON **v, struct config_errors *errs)
{
	*v = field(obj, key);
	field_path(p, 256, path, key);
	if (!*v)
		return required ? config_fail(errs, p, "required field is missing") : -ENOENT;
	return 0;
}

/* obj.key through convert (v, its path for messages, out): present() and then the value. */
typedef int convert_fn(const cJSON *v, const char *p, void *out, struct config_errors *errs);

static int cfg_field(const cJSON *obj, const char *key, const char *path, bool required,
		     convert_fn *convert, void *out, struct config_errors *errs)
{
	char p[256];
	const cJSON *v;
	int rc = present(obj, key, path, required, p, &v, errs);

	return rc ? rc : convert(v, p, out, errs);
}

static int string_value(const cJSON *v, const char *p, void *out, struct config_errors *errs)
{
	if (!cJSON_IsString(v) || !v->valuestring)
		return config_fail(errs, p, "must be a string");
	*(const char **)out = v->valuestring;
	return 0;
}

int cfg_string(const cJSON *obj, const char *key, const char *path, bool required,
	       const char **out, struct config_errors *errs)
{
	return cfg_field(obj, key, path, required, string_value, out, errs);
}

int cfg_int(const cJSON *obj, const char *key, const char *path, bool required,
	    long long min, long long max, long long *out, struct config_errors *errs)
{
	char p[256];
	const cJSON *v;
	int rc = present(obj, key, path, required, p, &v, errs);

	if (rc)
		return rc;
	/* Range before conversion: casting a double beyond long long is undefined (found by
	 * fuzz_config: "request_ms": 6e112). */
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble != floor(v->valuedouble))
		return config_fail(errs, p, "must be an integer");
	if (v->valuedouble < -9.2e18 || v->valuedouble > 9.2e18)
		return config_fail(errs, p, "must be between %lld and %lld (got %.0f)", min, max,
				   v->valuedouble);
	long long x = (long long)v->valuedouble;
	if (x < min || x > max)
		return config_fail(errs, p, "must be between %lld and %lld (got %lld)", min, max, x);
	*out = x;
	return 0;
}

int cfg_duration_ms(const cJSON *obj, const char *key, const char *path, bool required,
		    int64_t min, int64_t max, int64_t *out, struct config_errors *errs)
{
	char p[256];
	const cJSON *v;
	int rc = present(obj, key, path, required, p, &v, errs);
	double x;
	char *end;

	if (rc)
		return rc;
	if (cJSON_IsNumber(v)) {
		x = v->valuedouble;
	} else if (cJSON_IsString(v)) {
		x = strtod(v->valuestring, &end);
		if (end == v->valuestring || x < 0)
			return config_fail(errs, p, "must be a duration such as \"500ms\", \"60s\", "
					   "\"5m\" or \"1h\"");
		if (!strcmp(end, "s"))
			x *= 1000;
		else if (!strcmp(end, "m"))
			x *= 60000;
		else if (!strcmp(end, "h"))
			x *= 3600000;
		else if (strcmp(end, "ms"))
			return config_fail(errs, p, "must be a duration such as \"500ms\", \"60s\", "
					   "\"5m\" or \"1h\"");
	} else {
		return config_fail(errs, p, "must be a duration such as \"60s\" or milliseconds");
	}
	if (!isfinite(x) || x < (double)min || x > (double)max)
		return config_fail(errs, p, "must be between %lld and %lld ms",
				   (long long)min, (long long)max);
	*out = (int64_t)x;
	return 0;
}

static int bool_value(const cJSON *v, const char *p, void *out, struct config_errors *errs)
{
	if (!cJSON_IsBool(v))
		return config_fail(errs, p, "must be true or false");
	*(bool *)out = cJSON_IsTrue(v);
	return 0;
}

int cfg_bool(const cJSON *obj, const char *key, const char *path, bool required, bool *out,
	     struct config_errors *errs)
{
	return cfg_field(obj, key, path, required, bool_value, out, errs);
}

static int secret_value(const cJSON *v, const char *p, void *out, struct config_errors *errs)
{
	char **s = out;

	if (cJSON_IsString(v)) {
		*s = xstrdup(v->valuestring);
		return 0;
	}
	const cJSON *name = field(v, "env");
	if (cJSON_IsObject(v) && cJSON_IsString(name) && cJSON_GetArraySize(v) == 1) {
		const char *val = getenv(name->valuestring);
		if (!val)
			return config_fail(errs, p, "environment variable %s is not set",
					   name->valuestring);
		*s = xstrdup(val);
		return 0;
	}
	return config_fail(errs, p, "must be a string or {\"env\": \"NAME\"}");
}

int cfg_secret(const cJSON *obj, const char *key, const char *path, bool required, char **out,
	       struct config_errors *errs)
{
	return cfg_field(obj, key, path, required, secret_value, out, errs);
}

int cfg_known_keys(const cJSON *obj, const char *path, const char *const *allowed,
		   struct config_errors *errs)
{
	int rc = 0;
	const cJSON *it;

	if (!cJSON_IsObject(obj))
		return config_fail(errs, path, "must be an object");
	cJSON_ArrayForEach(it, obj) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(*a, it->string) == 0;
		if (!ok) {
			char p[256];
			field_path(p, sizeof(p), path, it->string);
			rc = config_fail(errs, p, "unknown field");
		}
	}
	return rc;
}

/* "host:port", "[v6]:port" or ":port". */
static int parse_hostport(const char *s, const char *p, char **host, int *port,
			  struct config_errors *errs)
{
	const char *colon;
	char *end;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return config_fail(errs, p, "expected \"[address]:port\"");
		colon = rb + 1;
		s++;
		hl = (size_t)(rb - s);
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return config_fail(errs, p, "expected \"host:port\"");
		hl = (size_t)(colon - s);
	}
	errno = 0;
	long v = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || v < 0 || v > 65535)
		return config_fail(errs, p, "port must be 0-65535");
	*host = hl ? strndup(s, hl) : strdup("127.0.0.1");
	if (!*host)
		return -ENOMEM;
	*port = (int)v;
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > CONFIG_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
			return false;
	return true;
}

static int strv_push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));

	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	nv[(*n)++] = s;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

static int parse_env(const cJSON *u, const char *path, struct upstream_config *uc,
		     struct config_errors *errs)
{
	char p[256];
	size_t n = 0;
	const cJSON *inherit = field(u, "inherit_env"), *env = field(u, "env"), *it;
	int rc = 0;

	/* The child's environment is built, not inherited: the daemon's own environment may
	 * hold secrets (admin token, upstream credentials) that a tool could read back. */
	if (inherit) {
		field_path(p, sizeof(p), path, "inherit_env");
		if (!cJSON_IsArray(inherit))
			return config_fail(errs, p, "must be an array of variable names");
		cJSON_ArrayForEach(it, inherit) {
			if (!cJSON_IsString(it)) {
				rc = config_fail(errs, p, "must be an array of variable names");
				continue;
			}
			const char *val = getenv(it->valuestring);
			char *kv;
			if (val && asprintf(&kv, "%s=%s", it->valuestring, val) >= 0 &&
			    strv_push(&uc->envp, &n, kv))
				return -ENOMEM;
		}
	} else {
		for (const char *const *k = default_inherit; *k; k++) {
			const char *val = getenv(*k);
			char *kv;
			if (val && asprintf(&kv, "%s=%s", *k, val) >= 0 &&
			    strv_push(&uc->envp, &n, kv))
				return -ENOMEM;
		}
	}
	if (env) {
		field_path(p, sizeof(p), path, "env");
		if (!cJSON_IsObject(env))
			return config_fail(errs, p, "must be an object of NAME: value");
		cJSON_ArrayForEach(it, env) {
			char vp[320], *val = NULL, *kv;
			snprintf(vp, sizeof(vp), "%s.%s", p, it->string);
			if (secret_value(it, vp, &val, errs)) {
				rc = -EINVAL;
				continue;
			}
			int r = asprintf(&kv, "%s=%s", it->string, val);
			free(val);
			if (r < 0 || strv_push(&uc->envp, &n, kv))
				return -ENOMEM;
		}
	}
	if (!uc->envp) {
		uc->envp = calloc(1, sizeof(char *));
		if (!uc->envp)
			return -ENOMEM;
	}
	return rc;
}

static int parse_upstream(const cJSON *u, const char *path, const struct config *c,
			  struct upstream_config *uc, struct config_errors *errs)
{
	const char *s;
	char p[256];
	long long x;
	int rc = 0;

	uc->connect_timeout_ms = c->connect_timeout_ms;
	uc->request_timeout_ms = c->request_timeout_ms;
	uc->validate_args = true;
	if (cfg_known_keys(u, path, upstream_keys, errs))
		rc = -EINVAL;
	if (!cJSON_IsObject(u))
		return -EINVAL;
	if (cfg_string(u, "name", path, true, &s, errs) == 0) {
		field_path(p, sizeof(p), path, "name");
		if (!valid_name(s))
			rc = config_fail(errs, p, "must match [a-z0-9-]{1,32} (got \"%s\")", s);
		uc->name = strdup(s);
	} else {
		rc = -EINVAL;
	}
	if (cfg_string(u, "transport", path, true, &s, errs) == 0) {
		field_path(p, sizeof(p), path, "transport");
		if (strcmp(s, "stdio") == 0)
			uc->kind = UPSTREAM_STDIO;
		else if (strcmp(s, "http") == 0 || strcmp(s, "streamable-http") == 0)
			uc->kind = UPSTREAM_HTTP;
		else if (strcmp(s, "sse") == 0)
			uc->kind = UPSTREAM_SSE;
		else
			rc = config_fail(errs, p, "must be \"stdio\", \"http\" or \"sse\" (got \"%s\")", s);
	} else {
		return -EINVAL;
	}
	if (uc->kind == UPSTREAM_STDIO) {
		const cJSON *cmd = field(u, "command"), *it;
		size_t n = 0;
		field_path(p, sizeof(p), path, "command");
		if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) < 1)
			rc = config_fail(errs, p, "stdio upstreams need a non-empty array of strings");
		cJSON_ArrayForEach(it, cmd) {
			if (!cJSON_IsString(it) || !*it->valuestring) {
				rc = config_fail(errs, p, "every element must be a non-empty string");
				continue;
			}
			char *dup = strdup(it->valuestring);
			if (!dup || strv_push(&uc->argv, &n, dup))
				return -ENOMEM;
		}
		if (field(u, "url"))
			rc = config_fail(errs, path, "\"url\" is for http upstreams");
		if (cfg_string(u, "cwd", path, false, &s, errs) == 0)
			uc->cwd = strdup(s);
		int r = parse_env(u, path, uc, errs);
		if (r)
			rc = r;
		if (cfg_bool(u, "per_session", path, false, &uc->per_session, errs) == -EINVAL)
			rc = -EINVAL;
	} else {
		if (cfg_string(u, "url", path, true, &s, errs) == 0) {
			field_path(p, sizeof(p), path, "url");
			if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
				rc = config_fail(errs, p, "must be an http:// or https:// URL");
			uc->url = strdup(s);
		} else {
			rc = -EINVAL;
		}
		if (field(u, "command") || field(u, "env") || field(u, "cwd"))
			rc = config_fail(errs, path, "\"command\", \"env\" and \"cwd\" are for stdio upstreams");
		const cJSON *h = field(u, "headers"), *it;
		if (h) {
			field_path(p, sizeof(p), path, "headers");
			if (!cJSON_IsObject(h))
				rc = config_fail(errs, p, "must be an object of Header: value");
			uc->headers = calloc((size_t)cJSON_GetArraySize(h) + 1, sizeof(*uc->headers));
			if (!uc->headers)
				return -ENOMEM;
			cJSON_ArrayForEach(it, h) {
				char hp[320];
				struct config_header *ch = &uc->headers[uc->nheaders];
				snprintf(hp, sizeof(hp), "%s.%s", p, it->string);
				if (strpbrk(it->string, ":\r\n ") || !*it->string) {
					rc = config_fail(errs, hp, "invalid header name");
					continue;
				}
				if (secret_value(it, hp, &ch->value, errs)) {
					rc = -EINVAL;
					continue;
				}
				if (strpbrk(ch->value, "\r\n")) {
					rc = config_fail(errs, hp, "header value must not contain line breaks");
					free(ch->value);
					ch->value = NULL;
					continue;
				}
				ch->name = strdup(it->string);
				uc->nheaders++;
			}
		}
	}
	if (cfg_int(u, "connect_timeout_ms", path, false, 1, 600000, &x, errs) == 0)
		uc->connect_timeout_ms = (int)x;
	else if (field(u, "connect_timeout_ms"))
		rc = -EINVAL;
	if (cfg_int(u, "request_timeout_ms", path, false, 1, 86400000, &x, errs) == 0)
		uc->request_timeout_ms = (int)x;
	else if (field(u, "request_timeout_ms"))
		rc = -EINVAL;
	if (cfg_bool(u, "validate_args", path, false, &uc->validate_args, errs) == -EINVAL)
		rc = -EINVAL;
	if (cfg_bool(u, "charge_failures", path, false, &uc->charge_failures, errs) == -EINVAL)
		rc = -EINVAL;
	const cJSON *cb = field(u, "circuit");
	if (cb) {
		static const char *const circuit_keys[] = { "failures", "window", "open_for", NULL };
		snprintf(p, sizeof(p), "%s.circuit", path);
		if (!cJSON_IsObject(cb) || cfg_known_keys(cb, p, circuit_keys, errs)) {
			if (!cJSON_IsObject(cb))
				config_fail(errs, p, "must be an object {failures, window, open_for}");
			return -EINVAL;
		}
		uc->circuit_window_ms = 60000;
		uc->circuit_open_for_ms = 30000;
		if (cfg_int(cb, "failures", p, true, 1, 1000, &x, errs) == 0)
			uc->circuit_failures = (unsigned)x;
		else
			rc = -EINVAL;
		if (cfg_duration_ms(cb, "window", p, false, 1, 86400000, &uc->circuit_window_ms,
				    errs) == -EINVAL ||
		    cfg_duration_ms(cb, "open_for", p, false, 1, 86400000,
				    &uc->circuit_open_for_ms, errs) == -EINVAL)
			rc = -EINVAL;
	}
	return rc;
}

/* The limits, timeouts and auth sections: fields of struct config. */
#define LIMIT(key, type, min, max) CFG_FIELD(struct config, key, type, min, max, 0)
static const struct cfg_field limit_fields[] = {
	LIMIT(max_body_bytes, CFG_SIZE, 1024, 1LL << 30),
	LIMIT(max_header_bytes, CFG_SIZE, 1024, 1 << 20),
	LIMIT(max_sessions, CFG_UINT, 1, 1000000),
	LIMIT(max_sessions_per_key, CFG_UINT, 0, 1000000),
	LIMIT(max_pending_per_session, CFG_UINT, 0, 1000000),
	LIMIT(max_stdio_children, CFG_UINT, 0, 1000000),
	LIMIT(max_connections, CFG_UINT, 1, 1000000),
	LIMIT(max_connections_per_peer, CFG_UINT, 1, 1000000),
	CFG_END,
};
#undef LIMIT

#define TIMEOUT(key, member, min, max) \
	CFG_FIELD_AS(key, struct config, member, CFG_INT, min, max, 0)
static const struct cfg_field timeout_fields[] = {
	TIMEOUT("header_ms", header_timeout_ms, 100, 600000),
	TIMEOUT("session_idle_ms", session_idle_ms, 1000, 604800000),
	TIMEOUT("request_ms", request_timeout_ms, 1, 86400000),
	TIMEOUT("connect_ms", connect_timeout_ms, 1, 600000),
	TIMEOUT("startup_ms", startup_timeout_ms, 0, 600000),
	CFG_END,
};
#undef TIMEOUT

static const struct cfg_field auth_fields[] = {
	CFG_FIELD_AS("required", struct config, auth_required, CFG_BOOL, 0, 0, 0),
	CFG_END,
};

static const struct {
	const char *name;
	const struct cfg_field *fields;
} table_sections[] = { { "auth", auth_fields }, { "limits", limit_fields },
		       { "timeouts", timeout_fields } };

static int parse_sections(const cJSON *root, struct config *c, struct config_errors *errs)
{
	static const char *const admin_keys[] = { "listen", "token", NULL };
	static const char *const log_keys[] = { "level", NULL };
	const cJSON *sec, *it;
	const char *s;
	int rc = 0;

	if (cfg_known_keys(root, "", top_keys, errs))
		rc = -EINVAL;
	if (cfg_string(root, "listen", "", false, &s, errs) == 0) {
		free(c->listen_host);
		c->listen_host = NULL;
		if (parse_hostport(s, "listen", &c->listen_host, &c->listen_port, errs))
			rc = -EINVAL;
	} else if (field(root, "listen")) {
		rc = -EINVAL;
	}
	if (cfg_string(root, "path", "", false, &s, errs) == 0) {
		if (s[0] != '/' || strpbrk(s, "?# "))
			rc = config_fail(errs, "path", "must start with / and hold no query");
		free(c->mcp_path);
		c->mcp_path = strdup(s);
	}
	if ((sec = field(root, "allowed_origins"))) {
		size_t n = 0;
		if (!cJSON_IsArray(sec))
			rc = config_fail(errs, "allowed_origins", "must be an array of origins");
		cJSON_ArrayForEach(it, sec) {
			if (!cJSON_IsString(it)) {
				rc = config_fail(errs, "allowed_origins", "every element must be a string");
				continue;
			}
			char *dup = strdup(it->valuestring);
			if (!dup || strv_push(&c->allowed_origins, &n, dup))
				return -ENOMEM;
		}
	}
	if (cfg_string(root, "prefix", "", false, &s, errs) == 0) {
		if (!strcmp(s, "auto"))
			c->prefix = PREFIX_AUTO;
		else if (!strcmp(s, "always"))
			c->prefix = PREFIX_ALWAYS;
		else if (!strcmp(s, "never"))
			c->prefix = PREFIX_NEVER;
		else
			rc = config_fail(errs, "prefix", "must be \"auto\", \"always\" or \"never\"");
	}
	for (size_t i = 0; i < sizeof(table_sections) / sizeof(table_sections[0]); i++)
		if ((sec = field(root, table_sections[i].name)) &&
		    cfg_fields(sec, table_sections[i].name, table_sections[i].fields, c, errs))
			rc = -EINVAL;
	if ((sec = field(root, "admin"))) {
		if (cfg_known_keys(sec, "admin", admin_keys, errs))
			rc = -EINVAL;
		if (cfg_string(sec, "listen", "admin", true, &s, errs) == 0) {
			if (parse_hostport(s, "admin.listen", &c->admin_host, &c->admin_port, errs))
				rc = -EINVAL;
		} else {
			rc = -EINVAL;
		}
		if (cfg_secret(sec, "token", "admin", true, &c->admin_token, errs))
			rc = -EINVAL;
		else if (strlen(c->admin_token) < 16)
			rc = config_fail(errs, "admin.token", "must be at least 16 characters");
	}
	if ((sec = field(root, "log"))) {
		if (cfg_known_keys(sec, "log", log_keys, errs))
			rc = -EINVAL;
		if (cfg_string(sec, "level", "log", false, &s, errs) == 0) {
			if (strcmp(s, "debug") && strcmp(s, "info") && strcmp(s, "warn") &&
			    strcmp(s, "error"))
				rc = config_fail(errs, "log.level", "must be debug, info, warn or error");
			free(c->log_level);
			c->log_level = strdup(s);
		}
	}
	if (cfg_string(root, "state_dir", "", false, &s, errs) == 0) {
		free(c->state_dir);
		c->state_dir = strdup(s);
	}
	long long n;
	int wr = cfg_int(root, "workers", "", false, 1, CONFIG_WORKERS_MAX, &n, errs);
	if (wr == 0)
		c->workers = (unsigned)n;
	else if (wr != -ENOENT)
		rc = -EINVAL;
	return rc;
}

/* What more than one loop does not serve yet (docs/architecture.md, workers: N): a shared
 * stdio child answers the first loop's sessions only, and the fleet's Redis connection is
 * the first loop's. Refused here rather than half served. */
static int check_workers(const struct config *c, struct config_errors *errs)
{
	const cJSON *counters = field(c->raw, "counters");
	const cJSON *backend = counters ? json_get(counters, "backend") : NULL;
	int rc = 0;

	if (c->workers < 2)
		return 0;
	if (cJSON_IsString(backend) && !strcmp(backend->valuestring, "redis"))
		rc = config_fail(errs, "workers", "more than 1 loop does not work with the Redis "
				 "counters (counters.backend \"redis\") yet: use workers 1");
	for (size_t i = 0; i < c->nupstreams; i++) {
		const struct upstream_config *u = &c->upstreams[i];
		char p[64];

		if (u->kind != UPSTREAM_STDIO || u->per_session)
			continue;
		snprintf(p, sizeof(p), "upstreams[%zu].per_session", i);
		rc = config_fail(errs, p, "with workers %u, a stdio upstream must have a child per "
				 "session (per_session true): its one shared child would answer the "
				 "first loop's sessions only", c->workers);
	}
	return rc;
}

static int parse_upstreams(const cJSON *root, struct config *c, struct config_errors *errs)
{
	const cJSON *ups = field(root, "upstreams"), *it;
	int rc = 0;
	size_t i = 0;

	if (!ups)
		return 0;
	if (!cJSON_IsArray(ups))
		return config_fail(errs, "upstreams", "must be an array");
	c->upstreams = calloc((size_t)cJSON_GetArraySize(ups) + 1, sizeof(*c->upstreams));
	if (!c->upstreams)
		return -ENOMEM;
	cJSON_ArrayForEach(it, ups) {
		char p[64];
		snprintf(p, sizeof(p), "upstreams[%zu]", i);
		struct upstream_config *uc = &c->upstreams[i++];
		c->nupstreams = i;
		int r = parse_upstream(it, p, c, uc, errs);
		if (r == -ENOMEM)
			return r;
		if (r)
			rc = r;
		for (size_t j = 0; uc->name && j + 1 < i; j++) {
			if (c->upstreams[j].name && !strcmp(c->upstreams[j].name, uc->name)) {
				char np[80];
				snprintf(np, sizeof(np), "%s.name", p);
				rc = config_fail(errs, np, "duplicate upstream name \"%s\"", uc->name);
			}
		}
	}
	return rc;
}

int config_parse(const char *text, const char *origin, struct config **out,
		 struct config_errors *errs)
{
	struct config *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->path = strdup(origin ? origin : "(memory)");
	c->listen_host = strdup("127.0.0.1");
	c->listen_port = 8080;
	c->mcp_path = strdup("/mcp");
	c->prefix = PREFIX_AUTO;
	c->auth_required = true;
	c->max_body_bytes = DEFAULT_MAX_BODY;
	c->max_header_bytes = DEFAULT_MAX_HEADER;
	c->max_sessions = 10000;
	c->max_sessions_per_key = 64;
	c->max_pending_per_session = 256;
	c->max_stdio_children = 256;
	c->max_connections = 4096;
	c->max_connections_per_peer = 256;
	c->workers = 1;
	c->header_timeout_ms = 10000;
	c->session_idle_ms = 1800000;
	c->request_timeout_ms = 60000;
	c->connect_timeout_ms = 5000;
	c->startup_timeout_ms = 10000;
	c->log_level = strdup("info");
	c->state_dir = strdup("/var/lib/mcpwarden");
	if (!c->path || !c->listen_host || !c->mcp_path || !c->log_level || !c->state_dir) {
		rc = -ENOMEM;
		goto out;
	}
	const char *end = NULL;
	c->raw = cJSON_ParseWithOpts(text, &end, true);
	if (!c->raw) {
		int line = 1, col = 1;
		for (const char *q = text; end && q < end; q++, col++)
			if (*q == '\n') {
				line++;
				col = 0;
			}
		rc = config_fail(errs, "", "not valid JSON (line %d, column %d)", line, col);
		goto out;
	}
	if (!cJSON_IsObject(c->raw)) {
		rc = config_fail(errs, "", "the configuration must be a JSON object");
		goto out;
	}
	rc = parse_sections(c->raw, c, errs);
	int r = parse_upstreams(c->raw, c, errs);
	if (r)
		rc = r;
	if (!r && (r = check_workers(c, errs)))
		rc = r;
	if (!rc && (!c->listen_host || !c->mcp_path))
		rc = -ENOMEM;
out:
	if (rc) {
		config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* tool_pins.lockfile ({server: {tool: digest}}), read with the config: on a reload that is
 * the reload's thread, never the loop. A missing file is no error (`wardenctl tools pin`
 * writes it). */
static int load_tool_lock(struct config *c, struct config_errors *errs)
{
	const cJSON *lf = field(field(c->raw, "tool_pins"), "lockfile");
	const cJSON *srv, *t;
	struct stat st;
	char *buf = NULL;
	FILE *f;
	int rc = 0;

	if (!cJSON_IsString(lf))
		return 0;
	if (!(f = fopen(lf->valuestring, "re")))
		return errno == ENOENT ? 0 : config_fail(errs, "tool_pins.lockfile", "cannot open %s: %s",
							 lf->valuestring, strerror(errno));
	if (fstat(fileno(f), &st) || st.st_size > MAX_CONFIG_BYTES) {
		rc = config_fail(errs, "tool_pins.lockfile", "%s: unreadable or too large",
				 lf->valuestring);
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	buf[fread(buf, 1, (size_t)st.st_size, f)] = '\0';
	c->tool_lock = cJSON_Parse(buf);
	if (!cJSON_IsObject(c->tool_lock)) {
		rc = config_fail(errs, "tool_pins.lockfile", "%s: not a JSON object", lf->valuestring);
		goto out;
	}
	cJSON_ArrayForEach(srv, c->tool_lock) {
		if (!cJSON_IsObject(srv)) {
			rc = config_fail(errs, "tool_pins.lockfile", "%s: %s must be an object of "
					 "tool digests", lf->valuestring, srv->string);
			continue;
		}
		cJSON_ArrayForEach(t, srv) {
			const char *d = cJSON_IsString(t) ? t->valuestring : "";
			if (!strncmp(d, "v2:", 3))
				d += 3;   /* digest version 2; bare: version 1 (tool_digest.h) */
			if (strlen(d) != 64 || strspn(d, "0123456789abcdef") != 64)
				rc = config_fail(errs, "tool_pins.lockfile", "%s: %s/%s must be a tool "
						 "digest (\"v2:\" and 64 lowercase hex digits)",
						 lf->valuestring, srv->string, t->string);
		}
	}
out:
	free(buf);
	fclose(f);
	return rc;
}

int config_load(const char *path, struct config **out, struct config_errors *errs)
{
	FILE *f;
	char *buf = NULL;
	struct stat st;
	int rc;

	if (!path)
		return config_parse(embedded_default, "(embedded)", out, errs);
	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		config_fail(errs, path, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fileno(f), &st) || st.st_size > MAX_CONFIG_BYTES) {
		rc = config_fail(errs, path, "missing or larger than %u bytes", MAX_CONFIG_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	size_t n = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		rc = config_fail(errs, path, "read error");
		goto out;
	}
	buf[n] = '\0';
	rc = config_parse(buf, path, out, errs);
	if (rc == 0 && (rc = load_tool_lock(*out, errs))) {
		config_free(*out);
		*out = NULL;
	}
out:
	free(buf);
	fclose(f);
	return rc;
}

const char *const config_governance[] = { "keys", "teams", "workloads", "policies", "costs",
					 "budgets", "rate_limits", "auth", "tool_pins", "providers", "llm",
					 "oauth", NULL };

static bool is_governance(const char *name)
{
	for (const char *const *k = config_governance; *k; k++)
		if (name && !strcmp(name, *k))
			return true;
	return false;
}

bool config_only_governance_differs(const cJSON *a, const cJSON *b)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, a)
		if (!is_governance(it->string) &&
		    !cJSON_Compare(it, json_get(b, it->string), 1))
			return false;
	cJSON_ArrayForEach(it, b)
		if (!is_governance(it->string) && !json_get(a, it->string))
			return false;
	return true;
}

void config_shrink(struct config *c)
{
	if (!c)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(c->raw, "keys");
	cJSON_DeleteItemFromObjectCaseSensitive(c->raw, "teams");
	c->shrunk = true;
}

void config_take_governance(struct config *to, struct config *from)
{
	for (const char *const *k = config_governance; *k; k++) {
		cJSON *item = cJSON_DetachItemFromObjectCaseSensitive(from->raw, *k);

		cJSON_DeleteItemFromObjectCaseSensitive(to->raw, *k);
		if (item)
			cJSON_AddItemToObject(to->raw, *k, item);
	}
	to->shrunk = from->shrunk;
	cJSON_Delete(to->tool_lock);
	to->tool_lock = from->tool_lock;
	from->tool_lock = NULL;
	to->auth_required = from->auth_required;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	if (c->llm_free)
		c->llm_free(c->llm);
	cJSON_Delete(c->tool_lock);
	for (size_t i = 0; i < c->nupstreams; i++) {
		struct upstream_config *u = &c->upstreams[i];
		free(u->name);
		strv_free(u->argv);
		strv_free(u->envp);
		free(u->cwd);
		free(u->url);
		for (size_t j = 0; j < u->nheaders; j++) {
			free(u->headers[j].name);
			free_secret(u->headers[j].value);   /* Authorization, say */
		}
		free(u->headers);
	}
	free(c->upstreams);
	strv_free(c->allowed_origins);
	free(c->path);
	free(c->listen_host);
	free(c->mcp_path);
	free(c->admin_host);
	free_secret(c->admin_token);
	free(c->log_level);
	free(c->state_dir);
	cJSON_Delete(c->raw);
	free(c);
}

const struct upstream_config *config_upstream(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nupstreams; i++)
		if (!strcmp(c->upstreams[i].name, name))
			return &c->upstreams[i];
	return NULL;
}
