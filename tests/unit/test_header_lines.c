/* Header lines (base/header_lines.h): "Name: value\r\n" appended in order, lengths known or
 * measured; a line over the limit refused whole; clear keeps the buffer; many lines grow it. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/header_lines.h"
#include "cunit_main.h"

static void expect(const struct header_lines *h, const char *text)
{
	CU_ASSERT_EQUAL_FATAL(h->len, strlen(text));
	CU_ASSERT(memcmp(h->p, text, h->len) == 0);
}

static void test_lines(void)
{
	struct header_lines h = { 0 };
	char *buf;

	CU_ASSERT_EQUAL(header_lines_add(&h, "Accept", "text/event-stream"), 0);
	CU_ASSERT_EQUAL(header_lines_add_n(&h, HEADER_LIT("Mcp-Session-Id"), "abcdef", 3), 0);
	memcpy(header_lines_extend(&h, 4), "X: y", 4);
	expect(&h, "Accept: text/event-stream\r\nMcp-Session-Id: abc\r\nX: y");
	buf = h.p;
	header_lines_clear(&h);
	CU_ASSERT_EQUAL(h.len, 0);
	CU_ASSERT_EQUAL(header_lines_add(&h, "A", ""), 0);
	expect(&h, "A: \r\n");
	CU_ASSERT_PTR_EQUAL(h.p, buf);          /* the buffer kept */
	header_lines_free(&h);
	CU_ASSERT_PTR_NULL(h.p);
	CU_ASSERT_EQUAL(h.len + h.cap, 0);
}

static void test_limits(void)
{
	struct header_lines h = { 0 };
	char *big = malloc(HEADER_LINE_MAX + 2);

	CU_ASSERT_FATAL(big != NULL);
	memset(big, 'v', HEADER_LINE_MAX + 1);
	big[HEADER_LINE_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(header_lines_add(&h, "N", "1"), 0);
	CU_ASSERT_EQUAL(header_lines_add(&h, "N", big), -E2BIG);          /* 1 + 8193 */
	expect(&h, "N: 1\r\n");                                            /* nothing added */
	big[HEADER_LINE_MAX - 1] = '\0';                                    /* 1 + 8191 */
	CU_ASSERT_EQUAL(header_lines_add(&h, "N", big), 0);
	CU_ASSERT_EQUAL(h.len, 6 + 1 + 2 + (HEADER_LINE_MAX - 1) + 2);
	/* many lines: the buffer grows past its first 512 bytes, the lines intact */
	header_lines_clear(&h);
	for (int i = 0; i < 200; i++)
		CU_ASSERT_EQUAL(header_lines_add(&h, "X-Many", "0123456789"), 0);
	CU_ASSERT_EQUAL(h.len, 200 * strlen("X-Many: 0123456789\r\n"));
	for (int i = 0; i < 200; i++)
		CU_ASSERT(memcmp(h.p + i * 20, "X-Many: 0123456789\r\n", 20) == 0);
	header_lines_free(&h);
	free(big);
}

CU_MAIN("header_lines", NULL, NULL,
	{ "lines appended, cleared, freed", test_lines },
	{ "the limit, and growth", test_limits })
