/* logchain: SHA-256 links with OpenSSL's EVP interface. */
#include "observe/logchain.h"

#include <errno.h>
#include <string.h>
#include <openssl/evp.h>

int logchain_link(const uint8_t prev[LOGCHAIN_HASH_LEN], const char *text, size_t len,
		  uint8_t out[LOGCHAIN_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	/* The digest is final before out is written: out may alias prev. */
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(ctx, prev, LOGCHAIN_HASH_LEN) &&
		 EVP_DigestUpdate(ctx, text, len) && EVP_DigestFinal_ex(ctx, out, &n);

	EVP_MD_CTX_free(ctx);
	return ok && n == LOGCHAIN_HASH_LEN ? 0 : -EIO;
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *logchain_text_column(const cJSON *o, const char *column)
{
	static const struct { const char *column, *alias[2]; } aliases[] = {
		{ "target", { "tool", "model" } },
		{ "error_message", { "error", NULL } },
	};
	const char *v = str_field(o, column);

	for (size_t i = 0; !v && i < sizeof(aliases) / sizeof(aliases[0]); i++)
		for (int a = 0; !v && a < 2 && aliases[i].alias[a]; a++)
			if (!strcmp(aliases[i].column, column))
				v = str_field(o, aliases[i].alias[a]);
	return v;
}
