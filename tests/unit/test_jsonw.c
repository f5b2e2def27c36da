/* base/jsonw: JSON text written without a tree must be the bytes cJSON prints — strings,
 * record members — and, for jsonw_value (the wire: mcp/jsonrpc.c), numbers that read back
 * bit for bit. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonw.h"
#include "base/log.h"
#include "cunit_main.h"
#include "mcp/jsonrpc.h"

static void test_strings(void)
{
	char all[256];
	const char *samples[] = { "", "plain", "quote\" backslash\\ slash/", "tab\tnl\ncr\r",
				  "\x01\x1f\x7f", "h\xc3\xa9llo \xe2\x82\xac", "bad \xff\xfe utf8",
				  "<script>alert(1)</script>", all };
	struct jsonw w = { 0 };

	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	/* each character to escape at every place of a string longer than the 16-byte scan */
	static const char special[] = "\"\\\n\x01\x1f\t";
	char sweep[49];
	for (size_t k = 0; k < sizeof(special) - 1; k++) {
		for (size_t at = 0; at < 48; at++) {
			memset(sweep, 'a', 48);
			sweep[48] = '\0';
			sweep[at] = special[k];
			cJSON *s = cJSON_CreateString(sweep);
			char *ref = cJSON_PrintUnformatted(s);

			jsonw_reset(&w);
			jsonw_str(&w, sweep);
			CU_ASSERT_STRING_EQUAL(w.buf, ref);
			cJSON_free(ref);
			cJSON_Delete(s);
		}
	}
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		cJSON *s = cJSON_CreateString(samples[i]);
		char *ref = cJSON_PrintUnformatted(s);

		jsonw_reset(&w);
		jsonw_str(&w, samples[i]);
		CU_ASSERT_STRING_EQUAL(w.buf, ref);
		CU_ASSERT_EQUAL(w.len, strlen(ref));
		cJSON_free(ref);
		cJSON_Delete(s);
	}
	jsonw_free(&w);
}

/* Members as log_record_line prints a record's top-level members: integers as digits below
 * 1e15, everything else as cJSON prints it. */
static void test_members(void)
{
	static const double nums[] = { 0, -0.0, 1, -5, 42.5, 123456789012345.0, 999999999999999.0,
				       1e15, -1e15, 1e17, 2147483648.0, -9007199254740993.0, 1e-7,
				       0.1, 1e300 };
	static const int64_t ints[] = { 0, 1, -1, 999999999999999LL, 1000000000000000LL,
					-1000000000000000LL, INT64_MAX, INT64_MIN + 1 };
	cJSON *o = cJSON_CreateObject(), *tree = cJSON_Parse("{\"a\":[1,2.5,\"x\"],\"b\":null}");
	/* subtrees written here (integers below 1e15 only) and by cJSON (any other number,
	 * however deep): the same bytes */
	static const char *const trees[] = {
		"{\"text\":\"hello\",\"n\":[0,-1,2147483648,-999999999999999,{}],\"t\":true,"
		"\"f\":false,\"z\":null,\"e\\\"\\u0001\":\"tab\\there\\n\\u00e9\\u007f\",\"a\":[[[]]]}",
		"{\"deep\":{\"x\":[1,{\"y\":-0}]}}",
		"[1,1e15]",
		"{\"p\":0.30000000000000004}",
		"[\"s\",123456789012345.5]",
		"{\"shape\":{\"text\":\"string\",\"n\":\"number\"}}",
	};
	struct jsonw w = { 0 };
	char name[16];

	jsonw_raw(&w, "{\"ts\":\"x\",\"type\":\"t\"", 20);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		snprintf(name, sizeof(name), "n%zu", i);
		cJSON_AddNumberToObject(o, name, nums[i]);
		jsonw_member_tree(&w, name, cJSON_GetObjectItem(o, name));
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		snprintf(name, sizeof(name), "i%zu", i);
		cJSON_AddNumberToObject(o, name, (double)ints[i]);
		jsonw_member_int(&w, name, ints[i]);
	}
	cJSON_AddItemReferenceToObject(o, "tree", tree);
	jsonw_member_tree(&w, "tree", tree);
	cJSON *parsed[sizeof(trees) / sizeof(trees[0])];
	for (size_t i = 0; i < sizeof(trees) / sizeof(trees[0]); i++) {
		snprintf(name, sizeof(name), "t%zu", i);
		parsed[i] = cJSON_Parse(trees[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(parsed[i]);
		cJSON_AddItemReferenceToObject(o, name, parsed[i]);
		jsonw_member_tree(&w, name, parsed[i]);
	}
	cJSON_AddBoolToObject(o, "yes", true);
	jsonw_member_bool(&w, "yes", true);
	cJSON_AddBoolToObject(o, "no", false);
	jsonw_member_bool(&w, "no", false);
	jsonw_raw(&w, "}", 1);

	char *ref = log_record_line("t", o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
	const char *after = strstr(ref, ",\"type\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(after);
	CU_ASSERT_STRING_EQUAL(strstr(w.buf, ",\"type\""), after);
	cJSON_free(ref);
	cJSON_Delete(o);
	cJSON_Delete(tree);
	for (size_t i = 0; i < sizeof(trees) / sizeof(trees[0]); i++)
		cJSON_Delete(parsed[i]);
	/* a subtree neither can print (a node of no JSON type): null, not a buffer grown until
	 * memory runs out */
	cJSON bad = { .type = cJSON_Invalid };
	cJSON *arr = cJSON_CreateArray();
	cJSON_AddItemReferenceToArray(arr, &bad);
	jsonw_reset(&w);
	jsonw_raw(&w, "{\"a\":1", 6);
	jsonw_member_tree(&w, "bad", arr);
	CU_ASSERT_STRING_EQUAL(w.buf, "{\"a\":1,\"bad\":null");
	cJSON_Delete(arr);
	jsonw_free(&w);
}

/* Whole values: the same bytes as cJSON where cJSON is exact, and exact numbers where it is
 * not (cJSON compares its 15 digits within an epsilon). */
static void test_values(void)
{
	static const char *const same[] = {
		"{}", "[]", "null", "true", "false", "\"s\"", "0", "-1", "42",
		"{\"jsonrpc\":\"2.0\",\"id\":1000000007,\"result\":{\"content\":[{\"type\":"
		"\"text\",\"text\":\"h\\u00e9\\n\\\"q\\\"\"}],\"isError\":false}}",
		"[1.5,-2.25,0.1,1e-07,1e+300,123456789012345,-999999999999999,[[{}]],{\"a\":null}]",
		"{\"a\\\"b\":{\"\\u0001\":[true,false]}}",
	};
	static const struct { const char *in, *out; } exact[] = {
		{ "9007199254740993", "9007199254740992" },     /* the double nearest */
		{ "9007199254740991", "9007199254740991" },
		{ "0.30000000000000004", "0.30000000000000004" },
		{ "1e15", "1e+15" },
		{ "-0", "-0" },
		{ "[1e400]", "[null]" },
	};
	struct jsonw w = { 0 };

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		cJSON *v = cJSON_Parse(same[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		char *ref = cJSON_PrintUnformatted(v);
		jsonw_reset(&w);
		CU_ASSERT_EQUAL(jsonw_value(&w, v), 0);
		CU_ASSERT_STRING_EQUAL(w.buf, ref);
		char *wire = jsonrpc_print(v);
		CU_ASSERT_STRING_EQUAL(wire, ref);
		cJSON_free(wire);
		cJSON_free(ref);
		cJSON_Delete(v);
	}
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		cJSON *v = cJSON_Parse(exact[i].in);
		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		jsonw_reset(&w);
		CU_ASSERT_EQUAL(jsonw_value(&w, v), 0);
		CU_ASSERT_STRING_EQUAL(w.buf, exact[i].out);
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
			CU_ASSERT(strtod(w.buf, NULL) == v->valuedouble);
		cJSON_Delete(v);
	}
	/* a node of no JSON type: nothing written, an error */
	cJSON bad = { .type = cJSON_Invalid };
	cJSON *arr = cJSON_CreateArray();
	jsonw_reset(&w);
	jsonw_raw(&w, "x", 1);
	cJSON_AddItemReferenceToArray(arr, &bad);
	CU_ASSERT_EQUAL(jsonw_value(&w, arr), -EINVAL);
	CU_ASSERT_STRING_EQUAL(w.buf, "x");
	CU_ASSERT_PTR_NULL(jsonrpc_print(arr));
	cJSON_Delete(arr);
	/* deep nesting is refused, not a stack overflow */
	cJSON *deep = cJSON_CreateArray(), *at = deep;
	for (int i = 0; i < 1100; i++) {
		cJSON *next = cJSON_CreateArray();
		cJSON_AddItemToArray(at, next);
		at = next;
	}
	CU_ASSERT_EQUAL(jsonw_value(&w, deep), -ELOOP);
	cJSON_Delete(deep);
	jsonw_free(&w);
}

/* Integers as printf prints them: each side of every power of ten (where a digit pair
 * table changes step), both ends of int64_t, and a spread of values between. */
static void test_int_text(void)
{
	char got[JSONW_INT_TEXT], want[32];
	int64_t p = 1;

	for (int e = 0; e <= 18; e++, p = e <= 18 ? p * 10 : p) {
		int64_t vs[] = { p - 1, p, p + 1, -(p - 1), -p, -(p + 1) };
		for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
			size_t n = jsonw_int_text(got, vs[i]);
			snprintf(want, sizeof(want), "%lld", (long long)vs[i]);
			CU_ASSERT_STRING_EQUAL(got, want);
			CU_ASSERT_EQUAL(n, strlen(want));
		}
	}
	int64_t ends[] = { INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		CU_ASSERT_EQUAL(jsonw_int_text(got, ends[i]), strlen(got));
		snprintf(want, sizeof(want), "%lld", (long long)ends[i]);
		CU_ASSERT_STRING_EQUAL(got, want);
	}
	for (uint64_t x = 88172645463325252ull, i = 0; i < 100000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;        /* xorshift64 */
		int64_t v = (int64_t)(x >> (x % 64));
		jsonw_int_text(got, (i & 1) ? -v : v);
		snprintf(want, sizeof(want), "%lld", (long long)((i & 1) ? -v : v));
		CU_ASSERT_STRING_EQUAL_FATAL(got, want);
	}
}

/* jsonw_plain_end against the table walk: every byte value at every place of a run longer
 * than two of its 16-byte steps, every run length, and never a byte past end (each buffer is
 * its own allocation of exactly its length: AddressSanitizer sees an over-read). */
static void test_plain_end(void)
{
	for (size_t len = 0; len <= 48; len++) {
		for (int byte = 0; byte < 256; byte++) {
			for (size_t at = 0; at <= len; at++) {
				char *b = malloc(len ? len : 1);
				const char *want;

				CU_ASSERT_PTR_NOT_NULL_FATAL(b);
				memset(b, 'a', len);
				if (at < len)
					b[at] = (char)byte;
				want = b + len;
				for (size_t i = 0; i < len; i++)
					if (jsonw_special[(unsigned char)b[i]]) {
						want = b + i;
						break;
					}
				CU_ASSERT_PTR_EQUAL_FATAL(jsonw_plain_end(b, b + len), want);
				/* and from every start inside it */
				if (at < len)
					CU_ASSERT_PTR_EQUAL_FATAL(jsonw_plain_end(b + at, b + len),
								  jsonw_special[byte] ? b + at
										      : b + len);
				free(b);
			}
		}
	}
	/* the marked set: controls, '"' and '\\', nothing else (0x7f and UTF-8 are plain) */
	for (int c = 0; c < 256; c++) {
		char one = (char)c;
		CU_ASSERT_EQUAL(jsonw_plain_end(&one, &one + 1) == &one,
				c < 0x20 || c == '"' || c == '\\');
	}
}

/* The pieces of a print with holes, joined. */
static char *joined(const struct jsonw *w)
{
	struct iovec iov[2 * 8 + 1];
	int n = jsonw_iov(w, iov);
	size_t len = 0;
	char *s, *p;

	CU_ASSERT_FATAL(n >= 1 && n <= 2 * (int)w->nholes + 1);
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	p = s = malloc(len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (int i = 0; i < n; i++) {
		CU_ASSERT(iov[i].iov_len > 0 || n == 1);     /* no empty piece but an empty text */
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	*p = '\0';
	return s;
}

/* A long Raw text is left where it lies (a hole) and sent from there: the pieces make the
 * same text as the print without holes, a short one is copied, no more holes than room. */
static void test_holes(void)
{
	char *big = malloc(JSONW_HOLE_MIN + 1), *big2 = malloc(5000);
	cJSON *msg = cJSON_CreateObject(), *arr = cJSON_CreateArray();

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big2);
	memset(big, '7', JSONW_HOLE_MIN);               /* just long enough: a number */
	big[JSONW_HOLE_MIN] = '\0';
	big2[0] = '{';                                  /* {"k":"xxx...x"} */
	memcpy(big2 + 1, "\"k\":\"", 5);
	memset(big2 + 6, 'x', 4991);
	memcpy(big2 + 4997, "\"}", 3);
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(msg, "id", 7);
	cJSON_AddRawToObject(msg, "result", big2);
	cJSON_AddItemToObject(msg, "more", arr);
	cJSON_AddItemToArray(arr, cJSON_CreateRaw(big));
	cJSON_AddItemToArray(arr, cJSON_CreateRaw("[1,2]"));        /* short: copied */
	cJSON_AddItemToArray(arr, cJSON_CreateRaw(big));

	char *want = cJSON_PrintUnformatted(msg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	for (unsigned room = 0; room <= 4; room++) {
		struct jsonw_hole holes[4];
		struct jsonw w = { .holes = holes, .max_holes = room };

		CU_ASSERT_EQUAL_FATAL(jsonw_value(&w, msg), 0);
		CU_ASSERT_EQUAL(w.nholes, room < 3 ? room : 3);
		if (room) {     /* the first hole is the result, at its place in the print */
			CU_ASSERT_PTR_EQUAL(holes[0].text,
					    cJSON_GetObjectItem(msg, "result")->valuestring);
			CU_ASSERT_EQUAL(holes[0].len, 4999);
			CU_ASSERT_FATAL(holes[0].at >= 9);
			CU_ASSERT_NSTRING_EQUAL(w.buf + holes[0].at - 9, "\"result\":,", 10);
		}
		char *got = joined(&w);
		CU_ASSERT_STRING_EQUAL(got, want);
		size_t held = 0;        /* what the holes hold is not in the buffer */
		for (unsigned i = 0; i < w.nholes; i++)
			held += holes[i].len;
		CU_ASSERT_EQUAL(w.len + held, strlen(want));
		free(got);
		jsonw_free(&w);
	}
	/* a failed print takes its holes back with its bytes */
	{
		struct jsonw_hole holes[4];
		struct jsonw w = { .holes = holes, .max_holes = 4 };
		cJSON *bad = cJSON_CreateArray(), *odd = cJSON_CreateNull();

		odd->type = 0x4000;     /* of no JSON type */
		cJSON_AddItemToArray(bad, cJSON_CreateRaw(big));
		cJSON_AddItemToArray(bad, odd);
		jsonw_raw(&w, "[", 1);
		CU_ASSERT_EQUAL(jsonw_value(&w, bad), -EINVAL);
		CU_ASSERT_EQUAL(w.nholes, 0);
		CU_ASSERT_STRING_EQUAL(w.buf, "[");
		char *got = joined(&w);
		CU_ASSERT_STRING_EQUAL(got, "[");
		free(got);
		jsonw_reset(&w);
		CU_ASSERT_EQUAL(jsonw_value(&w, msg), 0);
		CU_ASSERT_EQUAL(w.nholes, 3);
		jsonw_reset(&w);        /* and a reset forgets them */
		CU_ASSERT_EQUAL(w.nholes, 0);
		got = joined(&w);
		CU_ASSERT_STRING_EQUAL(got, "");
		free(got);
		jsonw_free(&w);
		cJSON_Delete(bad);
	}
	cJSON_free(want);
	cJSON_Delete(msg);
	free(big);
	free(big2);
}

CU_MAIN("jsonw", NULL, NULL,
	{ "long Raw texts sent from where they lie", test_holes },
	{ "strings as cJSON escapes them", test_strings },
	{ "the plain run of a string", test_plain_end },
	{ "integers as printf prints them", test_int_text },
	{ "members as a record prints them", test_members },
	{ "values for the wire", test_values })
