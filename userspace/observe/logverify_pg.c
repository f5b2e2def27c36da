/* logverify_pg: `wardenctl audit verify --postgres`: one sidecar's chain in the shared store,
 * read in one REPEATABLE READ snapshot through a cursor (the sidecars keep writing). */
#include "observe/logverify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "observe/logpg.h"
#include "base/json_get.h"

#define FETCH "2000"           /* rows a round trip */


/* A bytea column in text form ("\x<hex>") into out. */
static bool hash32(PGresult *r, int i, int c, uint8_t out[LOGCHAIN_HASH_LEN])
{
	size_t n = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, c), &n);
	bool ok = b && n == LOGCHAIN_HASH_LEN;

	if (ok)
		memcpy(out, b, LOGCHAIN_HASH_LEN);
	PQfreemem(b);
	return ok;
}

static bool ok_cmd(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	return ok;
}

static enum logverify_status walk(PGconn *c, const struct logverify_options *o,
				  const char *sidecar, const char *prefix,
				  struct logverify_result *r)
{
	uint8_t prev[LOGCHAIN_HASH_LEN], stored[LOGCHAIN_HASH_LEN], h[LOGCHAIN_HASH_LEN];
	const char *v[] = { sidecar, NULL };
	char sql[512], since[24];
	int64_t expected;
	PGresult *res;

	snprintf(sql, sizeof(sql), "SELECT first_seq, prev_hash, last_seq, head FROM %schain "
		 "WHERE sidecar = $1", prefix);
	res = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    !hash32(res, 0, 1, prev) || !hash32(res, 0, 3, r->head)) {
		enum logverify_status st = logverify_say(r, LOGVERIFY_UNREADABLE, 0, "no chain of sidecar "
			"\"%s\" in the shared store (%s)", sidecar,
			PQresultStatus(res) == PGRES_TUPLES_OK ? "no such sidecar" : logpg_error(c));
		PQclear(res);
		return st;
	}
	r->first_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	r->last_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);

	snprintf(sql, sizeof(sql), "SELECT min(seq) FROM %srecords WHERE sidecar = $1 AND seq < "
		 "%" PRId64, prefix, r->first_id);
	res = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0)) {
		int64_t before = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		return logverify_say(r, LOGVERIFY_INSERTED, before, "record %" PRId64 " is before the chain's "
			   "anchor (first seq %" PRId64 ")", before, r->first_id);
	}
	PQclear(res);
	int64_t start = r->first_id;
	if (o->since_ms != INT64_MIN) {
		/* From the stored hash of the record before: trusted, as --since asks. */
		snprintf(since, sizeof(since), "%" PRId64, o->since_ms);
		v[1] = since;
		snprintf(sql, sizeof(sql), "SELECT seq, hash FROM %srecords WHERE sidecar = $1 AND "
			 "seq < (SELECT min(seq) FROM %srecords WHERE sidecar = $1 AND ts >= $2) "
			 "AND seq >= %" PRId64 " ORDER BY seq DESC LIMIT 1", prefix, prefix,
			 r->first_id);
		res = PQexecParams(c, sql, 2, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		    hash32(res, 0, 1, prev))
			start = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1;
		PQclear(res);
	}
	snprintf(sql, sizeof(sql), "DECLARE walk NO SCROLL CURSOR FOR SELECT seq, ts, record, hash"
		 " FROM %srecords WHERE sidecar = $1 AND seq >= %" PRId64 " ORDER BY seq", prefix,
		 start);
	res = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		return logverify_say(r, LOGVERIFY_UNREADABLE, 0, "%s", logpg_error(c));
	}
	PQclear(res);
	expected = start;
	for (;;) {
		res = PQexec(c, "FETCH " FETCH " FROM walk");
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			PQclear(res);
			return logverify_say(r, LOGVERIFY_UNREADABLE, expected, "%s", logpg_error(c));
		}
		int n = PQntuples(res);
		if (!n) {
			PQclear(res);
			break;
		}
		for (int i = 0; i < n; i++) {
			int64_t seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			int64_t ts = strtoll(PQgetvalue(res, i, 1), NULL, 10);
			const char *text = PQgetvalue(res, i, 2);
			size_t len = (size_t)PQgetlength(res, i, 2);
			enum logverify_status st = LOGVERIFY_INTACT;

			if (seq > r->last_id)
				st = logverify_say(r, LOGVERIFY_INSERTED, seq, "record %" PRId64 " is after the "
					 "chain's head (record %" PRId64 ")", seq, r->last_id);
			else if (seq != expected)
				st = logverify_say(r, LOGVERIFY_REMOVED, expected, "record %" PRId64 " is missing "
					 "(the next stored is %" PRId64 ")", expected, seq);
			if (st) {
				PQclear(res);
				return st;
			}
			cJSON *rec = cJSON_ParseWithLength(text, len);
			const cJSON *sq = json_get(rec, "seq");
			bool own = cJSON_IsNumber(sq) && sq->valuedouble == (double)seq;
			const cJSON *rts_v = json_get(rec, "ts");
			int64_t rts = logverify_ts_ms(cJSON_IsString(rts_v) ? rts_v->valuestring : NULL);
			cJSON_Delete(rec);
			if (!own)
				st = logverify_say(r, LOGVERIFY_INSERTED, seq, "record %" PRId64 " does not carry its "
					 "own sequence number: it was not written there", seq);
			else if (!hash32(res, i, 3, stored) || logchain_link(prev, text, len, h) ||
				 memcmp(h, stored, sizeof(h)))
				st = logverify_say(r, LOGVERIFY_CHANGED, seq, "record %" PRId64 " was changed: its "
					 "hash does not follow from the previous one", seq);
			else if (rts != ts)
				st = logverify_say(r, LOGVERIFY_CHANGED, seq, "record %" PRId64 " was changed: its "
					 "column ts differs from its text", seq);
			else if (o->have_checkpoint && seq == o->checkpoint_seq) {
				r->checkpoint_checked = true;
				if (memcmp(h, o->checkpoint, sizeof(h)))
					st = logverify_say(r, LOGVERIFY_CHANGED, seq, "the chain up to record %"
						 PRId64 " differs from the checkpoint", seq);
			}
			if (st) {
				PQclear(res);
				return st;
			}
			memcpy(prev, h, sizeof(prev));
			r->checked++;
			expected = seq + 1;
		}
		PQclear(res);
	}
	if (expected <= r->last_id)
		return logverify_say(r, LOGVERIFY_REMOVED, expected, "record %" PRId64 " is missing (the "
			   "chain's head is %" PRId64 ")", expected, r->last_id);
	if (r->checked && memcmp(prev, r->head, sizeof(prev)))
		return logverify_say(r, LOGVERIFY_CHANGED, r->last_id, "the chain's head does not match "
			   "record %" PRId64, r->last_id);
	return logverify_say(r, LOGVERIFY_INTACT, 0, "intact: %" PRId64 " record%s of sidecar \"%s\" "
		   "checked (seqs %" PRId64 "..%" PRId64 ")", r->checked, r->checked == 1 ? "" : "s",
		   sidecar, start, r->last_id);
}

enum logverify_status logverify_pg_run(const struct logverify_options *o, const char *sidecar,
				       const char *prefix, struct logverify_result *out)
{
	char err[256];
	PGconn *c;
	enum logverify_status st;

	memset(out, 0, sizeof(*out));
	struct logpg_options po = { .conninfo = (char *)o->path };

	c = logpg_connect(&po, 0, err, sizeof(err));
	if (!c)
		return logverify_say(out, LOGVERIFY_UNREADABLE, 0, "cannot connect: %s", err);
	if (!ok_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		st = logverify_say(out, LOGVERIFY_UNREADABLE, 0, "%s", logpg_error(c));
	else
		st = walk(c, o, sidecar, prefix, out);
	ok_cmd(c, "ROLLBACK");
	PQfinish(c);
	return st;
}
