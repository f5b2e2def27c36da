/* fuzz_cluster_slots: the CLUSTER SLOTS answer a Redis Cluster node gives the sidecar
 * (fleet_cluster_parse_slots, govern/fleet_int.h). The input is RESP bytes, read with
 * hiredis's reader into the reply tree the parser gets, as on the connection. A map read
 * must name only real slots (lo <= hi < 16384), a host of 1..63 bytes and a port 1..65535;
 * a smaller limit on ranges gives the same map or a refusal, never a partial one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "govern/fleet_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_MAX 2
/* the node asked, for a nil host (unknown-endpoint) */
#define ASKED "127.0.0.1"

static void check(const redisReply *rep, struct fleet_slot_range *r, struct fleet_slot_range *s)
{
	size_t n = 0, m = 0;
	int rc = fleet_cluster_parse_slots(rep, ASKED, r, FLEET_CLUSTER_MAX_RANGES, &n);

	if (rc != 0 && rc != -EINVAL)
		__builtin_trap();
	if (rc == 0) {
		if (n == 0 || n > FLEET_CLUSTER_MAX_RANGES)
			__builtin_trap();
		for (size_t i = 0; i < n; i++) {
			size_t hl = strnlen(r[i].host, sizeof(r[i].host));
			if (r[i].lo > r[i].hi || r[i].hi >= FLEET_SLOTS || hl == sizeof(r[i].host) ||
			    r[i].port <= 0 || r[i].port > 65535)
				__builtin_trap();
		}
	}
	int rc2 = fleet_cluster_parse_slots(rep, ASKED, s, SMALL_MAX, &m);
	if (rc2 == 0 && (rc != 0 || m != n || memcmp(r, s, m * sizeof(*s))))
		__builtin_trap();
	if (rc == 0 && n <= SMALL_MAX && rc2 != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fleet_slot_range *r = calloc(FLEET_CLUSTER_MAX_RANGES, sizeof(*r));
	struct fleet_slot_range *s = calloc(SMALL_MAX, sizeof(*s));
	char *text = fuzz_strndup(data, size);
	redisReader *rd = NULL;
	void *reply;

	if (!r || !s || !text)
		goto out;
	check(NULL, r, s);      /* no reply: a connection lost */
	if (!fuzz_resp_plausible(text, size) || !(rd = redisReaderCreate()))
		goto out;
	/* Bytes, not a C string: a bulk string may hold a NUL. */
	if (redisReaderFeed(rd, text, size) == REDIS_OK)
		for (int i = 0; i < 16 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply; i++) {
			memset(r, 0, FLEET_CLUSTER_MAX_RANGES * sizeof(*r));
			memset(s, 0, SMALL_MAX * sizeof(*s));
			check(reply, r, s);
			freeReplyObject(reply);
		}
out:
	if (rd)
		redisReaderFree(rd);
	free(text);
	free(s);
	free(r);
	return 0;
}
