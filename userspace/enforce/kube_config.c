/* kube_config: the "enforcement.kubernetes" section. */
#include "enforce/kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "base/alloc.h"
#include "base/config.h"

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool kube_dns_label(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool kube_dns_subdomain(const char *s)
{
	size_t n = strlen(s);
	const char *p = s;

	if (n == 0 || n > 253)
		return false;
	while (*p) {
		size_t l = strcspn(p, ".");

		if (!kube_dns_label(p, l))
			return false;
		p += l;
		if (*p == '.' && !*++p)
			return false;
	}
	return true;
}

/* The name part of a qualified name: [A-Za-z0-9._-], <= 63, alphanumeric at both ends. */
static bool qualified_name(const char *s, size_t n)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
#define ALNUM(c) (strchr(ok, (c)) && (c) != '.' && (c) != '_' && (c) != '-')
	if (n == 0 || n > 63 || !ALNUM(s[0]) || !ALNUM(s[n - 1]))
		return false;
#undef ALNUM
	return strspn(s, ok) >= n;
}

bool kube_annotation_key(const char *s)
{
	const char *slash = strchr(s, '/');
	char prefix[254];

	if (!slash)
		return qualified_name(s, strlen(s));
	if ((size_t)(slash - s) >= sizeof(prefix))
		return false;
	memcpy(prefix, s, (size_t)(slash - s));
	prefix[slash - s] = '\0';
	return kube_dns_subdomain(prefix) && qualified_name(slash + 1, strlen(slash + 1));
}

/* The section's fields: what the parser reads and what kube_config_free frees. */
static const struct cfg_field kube_fields[] = {
	CFG_FIELD(struct kube_config, node_name, CFG_SECRET, 0, 0, CFG_REQUIRED),
	CFG_FIELD(struct kube_config, api_server, CFG_COPY, 0, 0, 0),
	CFG_FIELD(struct kube_config, token_file, CFG_COPY, 0, 0, 0),
	CFG_FIELD(struct kube_config, ca_file, CFG_COPY, 0, 0, 0),
	CFG_FIELD(struct kube_config, annotation, CFG_COPY, 0, 0, 0),
	CFG_FIELD(struct kube_config, sidecar_container, CFG_COPY, 0, 0, 0),
	CFG_KNOWN_FIELD("redirect"),    /* and whether it was given */
	CFG_END
};

void kube_config_free(struct kube_config *c)
{
	if (c)
		cfg_fields_free(kube_fields, c);
	free(c);
}

/* scheme://host[:port] with an http(s) scheme and nothing after the authority but "/". */
static int check_api(const char *url, struct config_errors *errs, const char *p)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *query = NULL, *user = NULL;
	int rc;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "https") && strcasecmp(scheme, "http")))
		rc = config_fail(errs, p, "must be an http(s) URL (https://host[:port])");
	else if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || strcmp(path, "/") ||
		 curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		rc = config_fail(errs, p, "must be scheme://host[:port] only (no path, query or "
				 "credentials)");
	else
		rc = 0;
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

/* No "api_server": in a pod, the Service's address the kubelet puts in the environment;
 * elsewhere the cluster DNS name. */
static char *default_api(void)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char buf[512];

	if (!host || !*host || strlen(host) > 255)
		return xstrdup(KUBE_API_DEFAULT);
	if (!port || !*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
		port = "443";
	snprintf(buf, sizeof(buf), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port);
	return xstrdup(buf);
}

/* An error at path.key when bad; -EINVAL or 0. */
static int check(bool bad, const char *path, const char *key, const char *what,
		 struct config_errors *errs)
{
	char p[256];

	if (!bad)
		return 0;
	snprintf(p, sizeof(p), "%s.%s", path, key);
	return config_fail(errs, p, "%s", what);
}

int kube_config_parse(const cJSON *obj, const char *path, struct kube_config **out,
		      struct config_errors *errs)
{
	struct kube_config *c;
	char p[256];
	int rc, bad = 0;

	*out = NULL;
	if (!cJSON_IsObject(obj))
		return config_fail(errs, path, "must be an object");
	c = xcalloc(1, sizeof(*c));
	c->api_server = default_api();
	c->token_file = xstrdup(KUBE_TOKEN_DEFAULT);
	c->ca_file = xstrdup(KUBE_CA_DEFAULT);
	c->annotation = xstrdup(KUBE_ANNOTATION_DEFAULT);
	c->sidecar_container = xstrdup(KUBE_SIDECAR_DEFAULT);
	bad |= cfg_fields(obj, path, kube_fields, c, errs) < 0;
	bad |= check(c->node_name && !kube_dns_subdomain(c->node_name), path, "node_name",
		     "must be a node name (DNS subdomain, at most 253 characters)", errs) < 0;
	/* No trailing '/': paths are appended to it. */
	for (size_t n = strlen(c->api_server); n > 0 && c->api_server[n - 1] == '/';)
		c->api_server[--n] = '\0';
	snprintf(p, sizeof(p), "%s.api_server", path);
	if ((rc = check_api(c->api_server, errs, p)) == -ENOMEM)
		goto fail;
	bad |= rc < 0;
	rc = cfg_bool(obj, "redirect", path, false, &c->redirect, errs);
	if (rc == 0)
		c->redirect_set = true;
	else
		bad |= rc != -ENOENT;
	bad |= check(c->token_file[0] != '/', path, "token_file", "must be an absolute path",
		     errs) < 0;
	bad |= check(c->ca_file[0] != '/', path, "ca_file", "must be an absolute path", errs) < 0;
	bad |= check(!kube_annotation_key(c->annotation), path, "annotation",
		     "must be an annotation key ([prefix/]name)", errs) < 0;
	bad |= check(!kube_dns_label(c->sidecar_container, strlen(c->sidecar_container)), path,
		     "sidecar_container", "must be a container name (DNS label)", errs) < 0;
	if (bad) {
		rc = -EINVAL;
		goto fail;
	}
	*out = c;
	return 0;
fail:
	kube_config_free(c);
	return rc;
}
