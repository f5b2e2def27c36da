/* fleet_config: the "counters" section, and how counters are named in Redis. */
#include "govern/fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "govern/budget_int.h"
#include "govern/fleet_int.h"

#define SEC "counters"
#define PASSWORD_MAX 512

static const char *const counter_keys[] = {
	"backend", "url", "password_env", "password_file", "tls", "key_prefix",
	"connect_timeout_ms", "command_timeout_ms", "reservation_ttl", "charge_id_ttl",
	"on_unreachable",
	"local_allowance", "sentinel", "cluster", "_comment", NULL
};

static void addr_clear(struct fleet_addr *a)
{
	free(a->host);
	free(a->path);
	memset(a, 0, sizeof(*a));
}

void fleet_config_free(struct fleet_config *cfg)
{
	if (!cfg)
		return;
	addr_clear(&cfg->addr);
	for (size_t i = 0; i < cfg->nsentinels; i++)
		addr_clear(&cfg->sentinels[i]);
	for (size_t i = 0; i < cfg->nseeds; i++)
		addr_clear(&cfg->seeds[i]);
	free_secret(cfg->password);
	free(cfg->prefix);
	free(cfg->sentinel_master);
	free(cfg);
}

/* "host:port" (host may be "[v6]"); port defaults to dflt. */
static int parse_host(const char *s, int dflt, struct fleet_addr *a)
{
	const char *end = s + strlen(s), *colon;
	char *e;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb)
			return -EINVAL;
		a->host = xstrndup(s + 1, (size_t)(rb - s - 1));
		colon = rb[1] == ':' ? rb + 1 : rb[1] ? NULL : end;
		if (!colon)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		colon = colon ? colon : end;
		a->host = xstrndup(s, (size_t)(colon - s));
	}
	a->port = dflt;
	if (*colon) {
		long p = strtol(colon + 1, &e, 10);
		if (e == colon + 1 || *e || p < 1 || p > 65535)
			return -EINVAL;
		a->port = (int)p;
	}
	return a->host[0] ? 0 : -EINVAL;
}

/* redis://[[user]:password@]host[:port][/db] or unix:/path[?db=N]. */
static int parse_url(struct fleet_config *c, const char *url, struct config_errors *errs)
{
	const char *p = SEC ".url";
	char *e;

	if (!strncmp(url, "rediss://", 9))
		return config_fail(errs, p, "TLS (rediss://) is not supported: this build's hiredis "
				   "(0.14, Debian) has no TLS; reach a TLS Redis through a local "
				   "tunnel (stunnel, spiped or a service mesh sidecar) on loopback "
				   "(docs/counters.md)");
	if (!strncmp(url, "unix:", 5)) {
		const char *q = strchr(url + 5, '?');
		c->addr.path = q ? xstrndup(url + 5, (size_t)(q - url - 5)) : xstrdup(url + 5);
		if (c->addr.path[0] != '/')
			return config_fail(errs, p, "a unix socket must be an absolute path");
		if (q) {
			if (strncmp(q, "?db=", 4))
				return config_fail(errs, p, "expected unix:/path?db=N");
			long db = strtol(q + 4, &e, 10);
			if (e == q + 4 || *e || db < 0 || db > 1023)
				return config_fail(errs, p, "db must be 0..1023");
			c->db = (int)db;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8))
		return config_fail(errs, p, "expected redis://host:port/db or unix:/path");
	const char *h = url + 8, *at = strrchr(h, '@'), *slash;
	if (at) {
		const char *colon = memchr(h, ':', (size_t)(at - h));
		if (!colon || colon + 1 == at)
			return config_fail(errs, p, "credentials in the URL must be [user]:password@");
		if (colon != h)
			return config_fail(errs, p, "ACL users are not supported: use "
					   "redis://:password@host or password_env");
		c->password = xstrndup(colon + 1, (size_t)(at - colon - 1));
		h = at + 1;
	}
	slash = strchr(h, '/');
	char *host = slash ? xstrndup(h, (size_t)(slash - h)) : xstrdup(h);
	int rc = parse_host(host, 6379, &c->addr);
	free(host);
	if (rc)
		return config_fail(errs, p, "expected redis://host:port/db");
	if (slash && slash[1]) {
		long db = strtol(slash + 1, &e, 10);
		if (*e || db < 0 || db > 1023)
			return config_fail(errs, p, "db must be 0..1023");
		c->db = (int)db;
	}
	return 0;
}

/* password_file: read now (config time, off the loop), trailing newline dropped. */
static int read_password(const char *file, char **out, struct config_errors *errs)
{
	const char *p = SEC ".password_file";
	char buf[PASSWORD_MAX + 2];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return config_fail(errs, p, "cannot read %s: %s", file, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return config_fail(errs, p, "cannot read %s: %s", file, strerror(errno));
	if (n > PASSWORD_MAX)
		return config_fail(errs, p, "%s is longer than %d bytes", file, PASSWORD_MAX);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	if (!n)
		return config_fail(errs, p, "%s is empty", file);
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* list at path: 1 to max "host:port" (port: the default one) into v[*n], each host shorter
 * than host_max; what ends the error message. */
static int parse_addrs(const cJSON *list, const char *path, const char *what, int max, int port,
		       size_t host_max, struct fleet_addr *v, size_t *n, struct config_errors *errs)
{
	const cJSON *it;

	if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list) || cJSON_GetArraySize(list) > max)
		return config_fail(errs, path, "must be a list of 1 to %d \"host:port\"%s", max,
				   what);
	cJSON_ArrayForEach(it, list) {
		struct fleet_addr *a = &v[(*n)++];
		if (!cJSON_IsString(it) || parse_host(it->valuestring, port, a) ||
		    strlen(a->host) >= host_max) {
			char p[64];
			snprintf(p, sizeof(p), "%s[%zu]", path, *n - 1);
			return config_fail(errs, p, "expected \"host:port\"");
		}
	}
	return 0;
}

static int parse_sentinel(struct fleet_config *c, const cJSON *s, struct config_errors *errs)
{
	static const char *const keys[] = { "master", "addrs", "_comment", NULL };
	const char *master = NULL;
	int rc = cfg_known_keys(s, SEC ".sentinel", keys, errs);

	if (rc)
		return rc;
	if ((rc = cfg_string(s, "master", SEC ".sentinel", true, &master, errs)))
		return rc;
	c->sentinel_master = xstrdup(master);
	return parse_addrs(json_get(s, "addrs"), SEC ".sentinel.addrs", "",
			   FLEET_MAX_SENTINELS, 26379, SIZE_MAX, c->sentinels, &c->nsentinels, errs);
}

/* "cluster": ["host:port", ...], the seed nodes the slot map is read from. */
static int parse_cluster(struct fleet_config *c, const cJSON *seeds, struct config_errors *errs)
{
	/* 64: the host buffer of a cluster node (fleet_cluster.c) */
	return parse_addrs(seeds, SEC ".cluster", " (seed nodes of the Redis Cluster)",
			   FLEET_MAX_SEEDS, 6379, 64, c->seeds, &c->nseeds, errs);
}

static int parse_allowance(struct fleet_config *c, const cJSON *a, struct config_errors *errs)
{
	static const char *const keys[] = { "spend", "calls", "_comment", NULL };
	const char *p = SEC ".local_allowance", *spend = NULL;
	long long calls;
	int rc = cfg_known_keys(a, p, keys, errs);

	if (rc)
		return rc;
	rc = cfg_string(a, "spend", p, false, &spend, errs);
	if (rc == 0 && budget_parse_money(spend, &c->local_spend))
		return config_fail(errs, SEC ".local_allowance.spend", "must be a decimal amount "
				   "such as \"0.50\"");
	if (rc && rc != -ENOENT)
		return rc;
	rc = cfg_int(a, "calls", p, false, 0, 1000000000, &calls, errs);
	if (rc == 0)
		c->local_calls = calls;
	return rc == -ENOENT ? 0 : rc;
}

int fleet_config_parse(const cJSON *root, struct fleet_config **out, struct config_errors *errs)
{
	const cJSON *sec = json_get(root, SEC), *v;
	const char *backend = "sqlite", *url = NULL, *s = NULL;
	struct fleet_config *c;
	int64_t ms;
	int rc;

	*out = NULL;
	if (!sec)
		return 0;
	if ((rc = cfg_known_keys(sec, SEC, counter_keys, errs)))
		return rc;
	rc = cfg_string(sec, "backend", SEC, false, &backend, errs);
	if (rc && rc != -ENOENT)
		return rc;
	if (!strcmp(backend, "sqlite"))
		return cJSON_GetArraySize(sec) > 1 + !!json_get(sec, "_comment")
		       ? config_fail(errs, SEC, "the sqlite backend takes no other field (the "
				     "store section says where its file is)") : 0;
	if (strcmp(backend, "redis"))
		return config_fail(errs, SEC ".backend", "must be \"sqlite\" or \"redis\"");
	c = xcalloc(1, sizeof(*c));
	c->connect_timeout_ms = 1000;
	c->command_timeout_ms = 1000;
	c->resv_ttl_s = 3600;
	c->charge_id_ttl_ms = FLEET_CHARGE_ID_TTL_MS;
	c->fail_closed = true;
	c->prefix = xstrdup("mcpwarden:");
	if ((v = json_get(sec, "tls")) && !cJSON_IsFalse(v)) {
		rc = config_fail(errs, SEC ".tls", "TLS to Redis is not supported: this build's "
				 "hiredis (0.14, Debian) has no TLS; reach a TLS Redis through a "
				 "local tunnel (stunnel, spiped or a service mesh sidecar) on "
				 "loopback (docs/counters.md)");
		goto out;
	}
	if (!!json_get(sec, "url") +
	    !!json_get(sec, "sentinel") +
	    !!json_get(sec, "cluster") > 1) {
		rc = config_fail(errs, SEC, "give one of url, sentinel or cluster");
		goto out;
	}
	if ((v = json_get(sec, "sentinel"))) {
		if ((rc = parse_sentinel(c, v, errs)))
			goto out;
	} else if ((v = json_get(sec, "cluster"))) {
		if ((rc = parse_cluster(c, v, errs)))
			goto out;
	} else if ((rc = cfg_string(sec, "url", SEC, true, &url, errs)) ||
		   (rc = parse_url(c, url, errs))) {
		goto out;
	}
	if ((rc = cfg_string(sec, "password_env", SEC, false, &s, errs)) == 0) {
		const char *pw = getenv(s);
		if (!pw || !*pw) {
			rc = config_fail(errs, SEC ".password_env", "environment variable %s is not "
					 "set", s);
			goto out;
		}
		free(c->password);
		c->password = xstrdup(pw);
	} else if (rc != -ENOENT) {
		goto out;
	}
	if ((rc = cfg_string(sec, "password_file", SEC, false, &s, errs)) == 0) {
		if (json_get(sec, "password_env")) {
			rc = config_fail(errs, SEC ".password_file", "give password_env or "
					 "password_file, not both");
			goto out;
		}
		free(c->password);
		c->password = NULL;
		if ((rc = read_password(s, &c->password, errs)))
			goto out;
	} else if (rc != -ENOENT) {
		goto out;
	}
	if ((rc = cfg_string(sec, "key_prefix", SEC, false, &s, errs)) == 0) {
		if (strlen(s) > 64 || strpbrk(s, "{} \t\r\n")) {
			rc = config_fail(errs, SEC ".key_prefix", "at most 64 characters, no braces "
					 "or spaces");
			goto out;
		}
		free(c->prefix);
		c->prefix = xstrdup(s);
	} else if (rc != -ENOENT) {
		goto out;
	}
	if ((rc = cfg_duration_ms(sec, "connect_timeout_ms", SEC, false, 10, 60000, &ms, errs)) == 0)
		c->connect_timeout_ms = ms;
	else if (rc != -ENOENT)
		goto out;
	if ((rc = cfg_duration_ms(sec, "command_timeout_ms", SEC, false, 10, 60000, &ms, errs)) == 0)
		c->command_timeout_ms = ms;
	else if (rc != -ENOENT)
		goto out;
	if ((rc = cfg_duration_ms(sec, "reservation_ttl", SEC, false, 10000, 7 * 86400000ll, &ms,
				  errs)) == 0)
		c->resv_ttl_s = ms / 1000;
	else if (rc != -ENOENT)
		goto out;
	if ((rc = cfg_duration_ms(sec, "charge_id_ttl", SEC, false, 60000, 7 * 86400000ll, &ms,
				  errs)) == 0)
		c->charge_id_ttl_ms = ms;
	else if (rc != -ENOENT)
		goto out;
	if ((rc = cfg_string(sec, "on_unreachable", SEC, false, &s, errs)) == 0) {
		if (strcmp(s, "fail_closed") && strcmp(s, "local")) {
			rc = config_fail(errs, SEC ".on_unreachable", "must be \"fail_closed\" or "
					 "\"local\"");
			goto out;
		}
		c->fail_closed = !strcmp(s, "fail_closed");
	} else if (rc != -ENOENT) {
		goto out;
	}
	v = json_get(sec, "local_allowance");
	if (v && (rc = parse_allowance(c, v, errs)))
		goto out;
	if (!c->fail_closed && !v) {
		rc = config_fail(errs, SEC ".local_allowance", "on_unreachable \"local\" needs an "
				 "allowance: {\"spend\": \"1.00\", \"calls\": 100} per key per outage");
		goto out;
	}
	rc = 0;
out:
	if (rc) {
		fleet_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- key naming ---- */

int fleet_counter_key(const char *prefix, const char *scope, const struct budget_spec *spec,
		      int64_t now, char *buf, size_t len)
{
	int n;

	if (spec->period == BUDGET_ROLLING)
		n = snprintf(buf, len, "%s{%s}:b:rolling:%" PRId64, prefix, scope, spec->window);
	else
		n = snprintf(buf, len, "%s{%s}:b:%s:%" PRId64, prefix, scope,
			     budget_period_ids[spec->period], budget_period_start(spec->period, now));
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fleet_bucket_key_ns(const char *prefix, const char *ns, const char *key_id,
			enum rate_level level, const char *server, const char *tool, char *buf,
			size_t len)
{
	int n;

	switch (level) {
	case RATE_KEY:
		n = snprintf(buf, len, "%s{key:%s}:%s:key", prefix, key_id, ns);
		break;
	case RATE_SERVER:
		n = snprintf(buf, len, "%s{key:%s}:%s:server:%s", prefix, key_id, ns, server);
		break;
	default:
		n = snprintf(buf, len, "%s{key:%s}:%s:tool:%s/%s", prefix, key_id, ns, server, tool);
		break;
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fleet_bucket_key(const char *prefix, const char *key_id, enum rate_level level,
		     const char *server, const char *tool, char *buf, size_t len)
{
	return fleet_bucket_key_ns(prefix, "r", key_id, level, server, tool, buf, len);
}

int64_t fleet_counter_ttl(const struct budget_spec *spec, int64_t now, int64_t resv_ttl)
{
	if (spec->period == BUDGET_ROLLING)
		return spec->window + 2 * budget_rolling_slot(spec->window) + resv_ttl;
	int64_t end = budget_period_next(spec->period, budget_period_start(spec->period, now));
	return end - now + BUDGET_DAY + resv_ttl;
}
