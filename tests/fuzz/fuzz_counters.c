/* fuzz_counters: what the Redis counters parse (govern/fleet_int.h). The input is a kept
 * charge as the store's fleet_pending table holds it (a JSON array of strings, read back at
 * start-up: a damaged row must be refused, never sent), then FUZZ_SEP, then bytes as Redis
 * could answer them (RESP), read with hiredis's reader and classified as a settle's answer.
 * A command that decodes must survive encoding and decoding again unchanged. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "govern/fleet_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct argv_b *a)
{
	struct settle s = { .argc = a->n, .argv = a->v, .argvlen = a->len };
	char *text = fleet_pending_encode(&s);
	struct argv_b b;

	if (!text)
		return;
	if (fleet_pending_decode(text, &b) || b.n != a->n)
		__builtin_trap();
	for (int i = 2; i < a->n; i++)
		if (strcmp(a->v[i], b.v[i]))
			__builtin_trap();
	fleet_av_free(b.n, b.v, b.len);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct argv_b a;
	redisReader *r;
	void *reply;

	if (!text)
		return 0;
	char *resp = fuzz_split(text);
	if (fleet_pending_decode(text, &a) == 0) {
		round_trip(&a);
		fleet_av_free(a.n, a.v, a.len);
	}
	r = fuzz_resp_plausible(resp, strlen(resp)) ? redisReaderCreate() : NULL;
	if (r && redisReaderFeed(r, resp, strlen(resp)) == REDIS_OK) {
		for (int i = 0; i < 64 && redisReaderGetReply(r, &reply) == REDIS_OK && reply; i++) {
			int rc = fleet_settle_answer(reply);
			if (rc != 0 && rc != 1 && rc != -EIO)
				__builtin_trap();
			freeReplyObject(reply);
		}
	}
	if (r)
		redisReaderFree(r);
	free(text);
	return 0;
}
