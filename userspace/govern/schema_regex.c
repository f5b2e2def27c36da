/* schema_regex: ECMA-262 patterns on PCRE2, bounded. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "govern/schema_regex.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pcre2.h>

#include "base/alloc.h"

/* Backtracking steps and nesting per match: far above what a sane pattern needs for a tool
 * argument, far below what would stall the loop (a few milliseconds at most). */
#define MATCH_LIMIT 1000000
#define DEPTH_LIMIT 10000

struct schema_regex {
	pcre2_code *code;
	pcre2_match_context *mctx;
};

int schema_regex_compile(const char *pattern, struct schema_regex **out, char *why, size_t whylen)
{
	pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
	uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_ALT_BSUX |
			PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_UNSET_BACKREF;
	struct schema_regex *re;
	PCRE2_SIZE off = 0;
	int err = 0;

	if (!cctx)
		return -ENOMEM;
	/* \u{1F600} as well as \uD83D\uDE00 (ECMA-262 with the u flag). */
	pcre2_set_compile_extra_options(cctx, PCRE2_EXTRA_ALT_BSUX);
	re = xcalloc(1, sizeof(*re));
	re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, cctx);
	pcre2_compile_context_free(cctx);
	if (!re->code) {
		if (why && whylen) {
			PCRE2_UCHAR msg[160];
			if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
				snprintf((char *)msg, sizeof(msg), "error %d", err);
			snprintf(why, whylen, "%s at offset %zu", (const char *)msg, (size_t)off);
		}
		free(re);
		return err == PCRE2_ERROR_HEAPLIMIT ? -ENOMEM : -EINVAL;
	}
	/* JIT where the platform has it: an order of magnitude faster; the interpreter else. */
	(void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
	re->mctx = pcre2_match_context_create(NULL);
	if (!re->mctx) {
		schema_regex_free(re);
		return -ENOMEM;
	}
	pcre2_set_match_limit(re->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(re->mctx, DEPTH_LIMIT);
	*out = re;
	return 0;
}

bool schema_regex_search(const struct schema_regex *re, const char *s)
{
	/* One ovector pair is all a yes/no search needs; made per call so any thread may match. */
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	int rc;

	if (!md)
		return false;
	rc = pcre2_match(re->code, (PCRE2_SPTR)s, strlen(s), 0, 0, md, re->mctx);
	pcre2_match_data_free(md);
	return rc >= 0;
}

void schema_regex_free(struct schema_regex *re)
{
	if (!re)
		return;
	pcre2_match_context_free(re->mctx);
	pcre2_code_free(re->code);
	free(re);
}
