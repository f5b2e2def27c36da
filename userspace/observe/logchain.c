/* logchain: SHA-256 links with OpenSSL's EVP interface. */
#include "observe/logchain.h"

#include <errno.h>
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
