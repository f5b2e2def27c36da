/* logblock: the bloom filter of a block summary (docs/audit.md "schema"). The hashes are part
 * of the file format: a change needs a schema version and rebuilt summaries. */
#include "observe/logblock.h"

#include <string.h>

#define NHASH 4

/* FNV-1a 64 over the field's tag and the value; two halves for double hashing. */
static uint64_t hash(enum logblock_field field, const char *value)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = (h ^ (uint8_t)('0' + field)) * 0x100000001b3ULL;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	/* A final mix: FNV's low bits alone are weak for short, similar strings. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint32_t bit(uint64_t h, int i)
{
	uint32_t a = (uint32_t)h, b = (uint32_t)(h >> 32) | 1;

	return (a + (uint32_t)i * b) % (LOGBLOCK_BLOOM_BYTES * 8);
}

void logblock_add(uint8_t bloom[LOGBLOCK_BLOOM_BYTES], enum logblock_field field,
		  const char *value)
{
	uint64_t h;

	if (!value)
		return;
	h = hash(field, value);
	for (int i = 0; i < NHASH; i++) {
		uint32_t b = bit(h, i);
		bloom[b >> 3] |= (uint8_t)(1u << (b & 7));
	}
}

bool logblock_may_have(const uint8_t bloom[LOGBLOCK_BLOOM_BYTES], enum logblock_field field,
		       const char *value)
{
	uint64_t h = hash(field, value);

	for (int i = 0; i < NHASH; i++) {
		uint32_t b = bit(h, i);
		if (!(bloom[b >> 3] & (1u << (b & 7))))
			return false;
	}
	return true;
}
