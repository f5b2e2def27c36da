/* logchain: SHA-256 links with OpenSSL's EVP interface. */
#include "observe/logchain.h"
#include "base/json_get.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

/* SHA-256 fetched once: EVP_sha256() makes every EVP_DigestInit_ex look the implementation
 * up again in OpenSSL 3's provider store (locks, reference counts), a tenth of the writer's
 * time per record (docs/performance.md). Held until exit. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

static int link_with(EVP_MD_CTX *ctx, const uint8_t prev[LOGCHAIN_HASH_LEN], const char *text,
		     size_t len, uint8_t out[LOGCHAIN_HASH_LEN])
{
	unsigned int n = 0;
	/* The digest is final before out is written: out may alias prev. */
	int ok = ctx && EVP_DigestInit_ex(ctx, sha256(), NULL) &&
		 EVP_DigestUpdate(ctx, prev, LOGCHAIN_HASH_LEN) &&
		 EVP_DigestUpdate(ctx, text, len) && EVP_DigestFinal_ex(ctx, out, &n);

	return ok && n == LOGCHAIN_HASH_LEN ? 0 : -EIO;
}

int logchain_link(const uint8_t prev[LOGCHAIN_HASH_LEN], const char *text, size_t len,
		  uint8_t out[LOGCHAIN_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = link_with(ctx, prev, text, len, out);

	EVP_MD_CTX_free(ctx);
	return rc;
}

struct logchain_hasher {
	EVP_MD_CTX *ctx;
};

int logchain_hasher_new(struct logchain_hasher **out)
{
	struct logchain_hasher *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h || !(h->ctx = EVP_MD_CTX_new())) {
		free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void logchain_hasher_free(struct logchain_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int logchain_hasher_link(struct logchain_hasher *h, const uint8_t prev[LOGCHAIN_HASH_LEN],
			 const char *text, size_t len, uint8_t out[LOGCHAIN_HASH_LEN])
{
	return link_with(h->ctx, prev, text, len, out);
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = json_get(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const struct { const char *column, *alias[2]; } aliases[] = {
	{ "target", { "tool", "model" } },
	{ "error_message", { "error", NULL } },
};
#define NALIASES (sizeof(aliases) / sizeof(aliases[0]))

const char *logchain_text_column(const cJSON *o, const char *column)
{
	const char *v = str_field(o, column);

	for (size_t i = 0; !v && i < NALIASES; i++)
		for (int a = 0; !v && a < 2 && aliases[i].alias[a]; a++)
			if (!strcmp(aliases[i].column, column))
				v = str_field(o, aliases[i].alias[a]);
	return v;
}

static bool same(const char *a, const char *b)
{
	return a[0] == b[0] && !strcmp(a, b);
}

/* As cJSON_GetObjectItemCaseSensitive does, only a name's first field counts (seen). */
static void take(const cJSON *c, bool *seen, const char **out)
{
	if (*seen)
		return;
	*seen = true;
	*out = cJSON_IsString(c) ? c->valuestring : NULL;
}

void logchain_text_columns(const cJSON *o, const char *const *columns, size_t n,
			   const char **out)
{
	const char *direct[LOGCHAIN_MAX_COLUMNS] = { 0 }, *alias[NALIASES][2] = { { 0 } };
	bool seen[LOGCHAIN_MAX_COLUMNS] = { 0 }, aseen[NALIASES][2] = { { 0 } };

	for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
		if (!c->string)
			continue;
		for (size_t i = 0; i < n; i++)
			if (same(c->string, columns[i]))
				take(c, &seen[i], &direct[i]);
		for (size_t i = 0; i < NALIASES; i++)
			for (int a = 0; a < 2 && aliases[i].alias[a]; a++)
				if (same(c->string, aliases[i].alias[a]))
					take(c, &aseen[i][a], &alias[i][a]);
	}
	for (size_t i = 0; i < n; i++) {
		out[i] = direct[i];
		for (size_t k = 0; !out[i] && k < NALIASES; k++)
			if (!strcmp(aliases[k].column, columns[i]))
				out[i] = alias[k][0] ? alias[k][0] : alias[k][1];
	}
}
