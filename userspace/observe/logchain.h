/* logchain: one link of the log store's tamper-evident chain (docs/audit.md#the-chain):
 * hash = SHA-256(previous hash || record text). Shared by the writer (observe/logstore_db.c)
 * and the verifier (observe/logverify.c), so both compute exactly the same thing. */
#ifndef WARDEN_LOGCHAIN_H
#define WARDEN_LOGCHAIN_H

#include <stddef.h>
#include <stdint.h>

#define LOGCHAIN_HASH_LEN 32

/* out = SHA-256(prev || text[0..len-1]); out may be prev. 0 or -EIO. */
int logchain_link(const uint8_t prev[LOGCHAIN_HASH_LEN], const char *text, size_t len,
		  uint8_t out[LOGCHAIN_HASH_LEN]);

#endif
