/* logchain: one link of the log store's tamper-evident chain (docs/audit.md#the-chain):
 * hash = SHA-256(previous hash || record text). Shared by the writer (observe/logstore_db.c)
 * and the verifier (observe/logverify.c), so both compute exactly the same thing. */
#ifndef WARDEN_LOGCHAIN_H
#define WARDEN_LOGCHAIN_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define LOGCHAIN_HASH_LEN 32

/* out = SHA-256(prev || text[0..len-1]); out may be prev. 0 or -EIO. */
int logchain_link(const uint8_t prev[LOGCHAIN_HASH_LEN], const char *text, size_t len,
		  uint8_t out[LOGCHAIN_HASH_LEN]);

/* The same for a thread that links record after record (the store's writer): it keeps its
 * digest context, so a link allocates nothing. One thread at a time. */
struct logchain_hasher;
int logchain_hasher_new(struct logchain_hasher **out);   /* 0 or -ENOMEM */
void logchain_hasher_free(struct logchain_hasher *h);
int logchain_hasher_link(struct logchain_hasher *h, const uint8_t prev[LOGCHAIN_HASH_LEN],
			 const char *text, size_t len, uint8_t out[LOGCHAIN_HASH_LEN]);

/* The value of the text column named column for record o: o's string field of that name or,
 * for the columns some record types name otherwise, the first alias present (target: "tool"
 * in tool_pin and loop_break records, "model" in llm ones; error_message: "error"). The writer
 * fills the columns with it and the verifier checks them with it. NULL: none. */
const char *logchain_text_column(const cJSON *o, const char *column);
/* The same for n columns at once (n <= LOGCHAIN_MAX_COLUMNS), in one walk over o's fields:
 * out[i] = logchain_text_column(o, columns[i]). The writer's side, on the event loop. */
#define LOGCHAIN_MAX_COLUMNS 16
void logchain_text_columns(const cJSON *o, const char *const *columns, size_t n,
			   const char **out);

#endif
