/* llm_config: the "providers" and "llm" sections and the policies' "llm" members. */
#include "base/ascii.h"
#include "llm/llm_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/json_get.h"
#include "govern/budget.h"
#include "govern/ratelimit.h"

static void provider_clear(struct llm_provider *p)
{
	free(p->name);
	free(p->base_url);
	free_secret(p->api_key);
	free(p->fallback);
	for (size_t j = 0; j < p->nmodels; j++)
		free(p->models[j].name);
	free(p->models);
}

static void llm_config_free(struct llm_config *c)
{
	for (size_t i = 0; i < c->nproviders; i++)
		provider_clear(&c->providers[i]);
	free(c->providers);
	for (size_t i = 0; i < c->npolicies; i++) {
		free(c->policies[i].name);
		for (int k = LLM_GLOB_PROVIDERS; k <= LLM_GLOB_MODELS; k++) {
			strv_free(c->policies[i].allow[k]);
			strv_free(c->policies[i].deny[k]);
		}
	}
	free(c->policies);
	free(c->default_provider);
	ratelimit_config_free(c->requests);
	ratelimit_config_free(c->tokens);
	free(c);
}

void llm_config_get(struct llm_config *c) { c->refs++; }

void llm_config_put(struct llm_config *c)
{
	if (c && --c->refs == 0)
		llm_config_free(c);
}

static bool valid_provider_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > LLM_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* Model names become metric labels and URLs' bodies: no quotes, spaces or controls. */
static bool valid_model_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > LLM_MODEL_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.:/@+", *s))
			return false;
	return true;
}

/* A secret goes into an HTTP header: visible ASCII only. */
static bool valid_secret(const char *s)
{
	size_t n = strnlen(s, LLM_KEY_MAX + 1);

	return n > 0 && n <= LLM_KEY_MAX && ascii_span(s, n, false);
}

static int read_key_file(const char *path, char **out)
{
	char buf[LLM_KEY_MAX + 2];
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		len += (size_t)n;
	}
	if (len >= sizeof(buf) - 1) {
		rc = -EFBIG;
		goto out;
	}
	while (len && isspace((unsigned char)buf[len - 1]))
		len--;
	buf[len] = '\0';
	*out = xstrdup(buf);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

static int parse_globs(const cJSON *obj, const char *key, const char *path, char ***out,
		       struct config_errors *errs)
{
	const cJSON *a = json_get(obj, key), *el;
	size_t n = 0;

	*out = NULL;
	if (!a)
		return 0;
	if (!cJSON_IsArray(a))
		return config_fail(errs, path, "%s must be an array of glob patterns", key);
	*out = xcalloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(char *));
	cJSON_ArrayForEach(el, a) {
		if (!cJSON_IsString(el) || !*el->valuestring || strlen(el->valuestring) > 256)
			return config_fail(errs, path, "%s: patterns are non-empty strings", key);
		(*out)[n++] = xstrdup(el->valuestring);
	}
	return 0;
}

static int parse_policy(const cJSON *pol, struct llm_policy *p, struct config_errors *errs)
{
	static const struct cfg_field fields[] = {
		CFG_KNOWN_FIELD("providers"), CFG_KNOWN_FIELD("models"),
		CFG_FIELD(struct llm_policy, log_arguments, CFG_BOOL, 0, 0, 0),
		CFG_END,
	};
	static const char *const lists[] = { "allow", "deny", NULL };
	const cJSON *llm = json_get(pol, "llm"), *sub;
	char path[160], sp[192];
	int rc = 0;

	snprintf(path, sizeof(path), "policies.%.64s.llm", pol->string);
	p->name = xstrdup(pol->string);
	if (!cJSON_IsObject(llm))
		return config_fail(errs, path, "must be an object {providers, models, log_arguments}");
	rc = cfg_fields(llm, path, fields, p, errs);
	for (int k = LLM_GLOB_PROVIDERS; k <= LLM_GLOB_MODELS; k++) {
		const char *what = k == LLM_GLOB_MODELS ? "models" : "providers";
		snprintf(sp, sizeof(sp), "%s.%s", path, what);
		sub = json_get(llm, what);
		if (!sub)
			continue;
		if (!cJSON_IsObject(sub)) {
			rc = config_fail(errs, sp, "must be an object {allow, deny}");
			continue;
		}
		if (cfg_known_keys(sub, sp, lists, errs))
			rc = -EINVAL;
		if (parse_globs(sub, "allow", sp, &p->allow[k], errs) ||
		    parse_globs(sub, "deny", sp, &p->deny[k], errs))
			rc = -EINVAL;
	}
	return rc;
}

static int parse_models(const cJSON *ms, struct llm_provider *p, const char *path,
			struct config_errors *errs)
{
	const cJSON *m;
	char mp[256];
	int rc = 0;

	if (!ms)
		return 0;
	if (!cJSON_IsObject(ms))
		return config_fail(errs, path, "must be an object of model: {input, output}");
	p->models = xcalloc((size_t)cJSON_GetArraySize(ms) + 1, sizeof(*p->models));
	cJSON_ArrayForEach(m, ms) {
		static const char *const fields[] = { "input", "output", NULL };
		struct llm_model *md = &p->models[p->nmodels];
		snprintf(mp, sizeof(mp), "%s.%.128s", path, m->string);
		if (!valid_model_name(m->string)) {
			rc = config_fail(errs, mp, "model names are 1-128 of A-Z a-z 0-9 - _ . : / @ +");
			continue;
		}
		if (!cJSON_IsObject(m) || cfg_known_keys(m, mp, fields, errs)) {
			rc = config_fail(errs, mp, "expected {\"input\": price, \"output\": price} "
					 "(currency per million tokens)");
			continue;
		}
		for (int k = 0; k < 2; k++) {
			const char *f = k ? "output" : "input";
			const cJSON *v = json_get(m, f);
			int64_t *dst = k ? &md->out_price : &md->in_price;
			if (!v)
				continue;
			if (!cJSON_IsString(v) || budget_parse_money(v->valuestring, dst))
				rc = config_fail(errs, mp, "%s: a price is a decimal string such as "
						 "\"0.15\" (per million tokens)", f);
		}
		md->name = xstrdup(m->string);
		p->nmodels++;
	}
	return rc;
}

static int parse_provider(const cJSON *j, size_t i, struct llm_provider *p,
			  struct config_errors *errs)
{
	struct section {
		const char *name, *kind, *base_url, *api_key_env, *api_key_file, *fallback;
		int64_t timeout_ms;
	};
	static const struct cfg_field fields[] = {
		CFG_FIELD(struct section, name, CFG_STRING, 0, 0, CFG_REQUIRED),
		CFG_FIELD(struct section, kind, CFG_STRING, 0, 0, 0),
		CFG_FIELD(struct section, base_url, CFG_STRING, 0, 0, CFG_REQUIRED),
		CFG_FIELD(struct section, api_key_env, CFG_STRING, 0, 0, 0),
		CFG_FIELD(struct section, api_key_file, CFG_STRING, 0, 0, 0),
		CFG_KNOWN_FIELD("models"),
		CFG_FIELD(struct section, timeout_ms, CFG_I64, 100, 3600000, 0),
		CFG_FIELD(struct section, fallback, CFG_STRING, 0, 0, 0),
		CFG_END,
	};
	struct section f = { .timeout_ms = LLM_DEFAULT_TIMEOUT_MS };
	char path[64], mp[96];
	int rc;

	snprintf(path, sizeof(path), "providers[%zu]", i);
	if (!cJSON_IsObject(j))
		return config_fail(errs, path, "must be an object");
	rc = cfg_fields(j, path, fields, &f, errs);
	if (!f.name || !f.base_url)
		return -EINVAL;
	if (!valid_provider_name(f.name))
		return config_fail(errs, path, "name: 1-32 of a-z 0-9 - _");
	p->name = xstrdup(f.name);
	if (strncmp(f.base_url, "http://", 7) && strncmp(f.base_url, "https://", 8))
		rc = config_fail(errs, path, "base_url: an http:// or https:// URL such as "
				 "https://api.openai.com/v1");
	p->base_url = xstrdup(f.base_url);
	size_t n = strlen(p->base_url);
	while (n && p->base_url[n - 1] == '/')
		p->base_url[--n] = '\0';
	if (!f.kind || !strcmp(f.kind, "openai"))
		p->kind = LLM_OPENAI;
	else if (!strcmp(f.kind, "anthropic"))
		p->kind = LLM_ANTHROPIC;
	else
		rc = config_fail(errs, path, "kind: \"openai\" (any OpenAI-compatible server) or "
				 "\"anthropic\"");
	if (f.api_key_env && f.api_key_file)
		rc = config_fail(errs, path, "api_key_env and api_key_file: one or the other");
	if (f.api_key_env) {
		const char *v = getenv(f.api_key_env);
		if (!v || !*v)
			rc = config_fail(errs, path, "api_key_env: %.64s is not set", f.api_key_env);
		else
			p->api_key = xstrdup(v);
	} else if (f.api_key_file) {
		int e = read_key_file(f.api_key_file, &p->api_key);
		if (e)
			rc = config_fail(errs, path, "api_key_file: cannot read %.200s: %s",
					 f.api_key_file, strerror(-e));
	}
	if (p->api_key && !valid_secret(p->api_key))
		rc = config_fail(errs, path, "the API key must be 1-4096 visible ASCII characters");
	p->timeout_ms = (long)f.timeout_ms;
	if (f.fallback)
		p->fallback = xstrdup(f.fallback);
	snprintf(mp, sizeof(mp), "%s.models", path);
	if (parse_models(json_get(j, "models"), p, mp, errs))
		rc = -EINVAL;
	return rc;
}

int llm_config_parse(const cJSON *root, struct llm_config **out, struct config_errors *errs)
{
	struct section { const char *default_provider; int64_t default_max_tokens; };
	static const struct cfg_field fields[] = {
		CFG_FIELD(struct section, default_provider, CFG_STRING, 0, 0, 0),
		CFG_FIELD(struct section, default_max_tokens, CFG_I64, 1, 10000000, 0),
		CFG_KNOWN_FIELD("rate_limits"), CFG_KNOWN_FIELD("token_limits"),
		CFG_END,
	};
	struct section f = { .default_max_tokens = LLM_DEFAULT_MAX_TOKENS };
	const cJSON *provs = json_get(root, "providers");
	const cJSON *sec = json_get(root, "llm");
	const cJSON *pols = json_get(root, "policies"), *el;
	struct llm_config *c = xcalloc(1, sizeof(*c));
	size_t i = 0;
	int rc = 0;

	c->refs = 1;
	c->default_max_tokens = f.default_max_tokens;
	if (provs && !cJSON_IsArray(provs)) {
		rc = config_fail(errs, "providers", "must be an array of providers");
		provs = NULL;
	}
	c->providers = xcalloc((size_t)cJSON_GetArraySize(provs) + 1, sizeof(*c->providers));
	cJSON_ArrayForEach(el, provs) {
		if (parse_provider(el, i++, &c->providers[c->nproviders], errs))
			rc = -EINVAL;
		if (c->providers[c->nproviders].name)
			c->nproviders++;
	}
	for (i = 0; i < c->nproviders; i++) {
		const struct llm_provider *p = &c->providers[i];
		for (size_t k = 0; k < i; k++)
			if (!strcmp(c->providers[k].name, p->name))
				rc = config_fail(errs, "providers", "provider \"%s\" appears twice",
						 p->name);
		if (p->fallback && (!llm_provider_find(c, p->fallback) ||
				    !strcmp(p->fallback, p->name)))
			rc = config_fail(errs, "providers", "%s.fallback: \"%.40s\" is not another "
					 "provider", p->name, p->fallback);
	}
	if (sec && !cJSON_IsObject(sec)) {
		rc = config_fail(errs, "llm", "must be an object");
		sec = NULL;
	}
	if (sec) {
		if (cfg_fields(sec, "llm", fields, &f, errs))
			rc = -EINVAL;
		if (f.default_provider && !llm_provider_find(c, f.default_provider))
			rc = config_fail(errs, "llm.default_provider", "no provider \"%.40s\"",
					 f.default_provider);
		if (f.default_provider)
			c->default_provider = xstrdup(f.default_provider);
		c->default_max_tokens = f.default_max_tokens;
	}
	if (ratelimit_config_parse_section(json_get(sec, "rate_limits"),
					   "llm.rate_limits", &c->requests, errs) ||
	    ratelimit_config_parse_section(json_get(sec, "token_limits"),
					   "llm.token_limits", &c->tokens, errs))
		rc = -EINVAL;
	if (!c->default_provider && c->nproviders == 1)
		c->default_provider = xstrdup(c->providers[0].name);
	c->policies = xcalloc((size_t)cJSON_GetArraySize(pols) + 1, sizeof(*c->policies));
	if (cJSON_IsObject(pols)) {
		cJSON_ArrayForEach(el, pols) {
			if (!cJSON_IsObject(el) || !json_get(el, "llm"))
				continue;
			if (parse_policy(el, &c->policies[c->npolicies++], errs))
				rc = -EINVAL;
		}
	}
	if (rc) {
		llm_config_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

const struct llm_provider *llm_provider_find(const struct llm_config *c, const char *name)
{
	for (size_t i = 0; name && i < c->nproviders; i++)
		if (!strcmp(c->providers[i].name, name))
			return &c->providers[i];
	return NULL;
}

const struct llm_model *llm_model_find(const struct llm_provider *p, const char *name)
{
	for (size_t i = 0; i < p->nmodels; i++)
		if (!strcmp(p->models[i].name, name))
			return &p->models[i];
	return NULL;
}

static const struct llm_policy *policy_find(const struct llm_config *c, const char *name)
{
	for (size_t i = 0; i < c->npolicies; i++)
		if (!strcmp(c->policies[i].name, name))
			return &c->policies[i];
	return NULL;
}

static const char *match(char *const *globs, const char *s)
{
	for (char *const *g = globs; g && *g; g++)
		if (!fnmatch(*g, s, 0))
			return *g;
	return NULL;
}

/* One side: NULL or "" imposes nothing; a policy without an "llm" member allows nothing. */
static int side_allows(const struct llm_config *c, const char *policy, const char *provider,
		       const char *full, char *why, size_t len)
{
	const struct llm_policy *p;
	const char *g;

	if (!policy || !*policy)
		return 0;
	p = policy_find(c, policy);
	if (!p) {
		snprintf(why, len, "policy \"%s\" has no llm section: no model is allowed", policy);
		return -EACCES;
	}
	if ((g = match(p->deny[LLM_GLOB_PROVIDERS], provider))) {
		snprintf(why, len, "policy \"%s\": deny providers %s", policy, g);
		return -EACCES;
	}
	if ((g = match(p->deny[LLM_GLOB_MODELS], full))) {
		snprintf(why, len, "policy \"%s\": deny models %s", policy, g);
		return -EACCES;
	}
	if (!match(p->allow[LLM_GLOB_PROVIDERS], provider)) {
		snprintf(why, len, "policy \"%s\" does not allow provider %s", policy, provider);
		return -EACCES;
	}
	if (p->allow[LLM_GLOB_MODELS] && !match(p->allow[LLM_GLOB_MODELS], full)) {
		snprintf(why, len, "policy \"%s\" does not allow model %s", policy, full);
		return -EACCES;
	}
	return 0;
}

int llm_policy_allows(const struct llm_config *c, const struct key_identity *who,
		      const char *provider, const char *model, char *why, size_t len)
{
	char full[LLM_NAME_MAX + LLM_MODEL_MAX + 2];
	int rc;

	if (!who)
		return 0;
	snprintf(full, sizeof(full), "%s/%s", provider, model);
	rc = side_allows(c, who->policy, provider, full, why, len);
	if (rc == 0)
		rc = side_allows(c, who->team_policy, provider, full, why, len);
	return rc;
}

bool llm_policy_logs(const struct llm_config *c, const struct key_identity *who)
{
	const struct llm_policy *a, *b;

	if (!who)
		return false;
	a = *who->policy ? policy_find(c, who->policy) : NULL;
	b = *who->team_policy ? policy_find(c, who->team_policy) : NULL;
	return (a && a->log_arguments) || (b && b->log_arguments);
}
