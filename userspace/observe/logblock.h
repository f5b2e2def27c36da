/* logblock: the log store's block summaries. Ids are grouped in blocks of LOGBLOCK_IDS; each
 * block has one row in the table blocks (its time range and a bloom filter of the keys,
 * teams, servers and targets of its records), written by the writer once per batch
 * (observe/logstore_db.c) instead of an index entry per record and filter. A filtered page
 * (observe/logquery.c) skips the blocks whose summary rules its values out. Pure functions. */
#ifndef WARDEN_LOGBLOCK_H
#define WARDEN_LOGBLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define LOGBLOCK_SHIFT 10
#define LOGBLOCK_IDS (1 << LOGBLOCK_SHIFT)      /* ids in a block */
#define LOGBLOCK_BLOOM_BYTES 1024               /* 8192 bits: ~1% false hits at 400 values */

/* What a summary records, one bloom for all (the field is part of what is hashed). */
enum logblock_field { LOGBLOCK_KEY, LOGBLOCK_TEAM, LOGBLOCK_SERVER, LOGBLOCK_TARGET };

static inline int64_t logblock_of(int64_t id)
{
	return id >> LOGBLOCK_SHIFT;
}

/* Add value (NULL: nothing) of field to bloom. */
void logblock_add(uint8_t bloom[LOGBLOCK_BLOOM_BYTES], enum logblock_field field,
		  const char *value);
/* false: no record of the block has value in field; true: some may. */
bool logblock_may_have(const uint8_t bloom[LOGBLOCK_BLOOM_BYTES], enum logblock_field field,
		       const char *value);

#endif
