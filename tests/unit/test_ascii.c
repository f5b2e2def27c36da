/* ascii: the case-insensitive comparisons of header names and tokens agree with the C
 * locale's strcasecmp and strncasecmp, byte for byte and string for string. */
#include <CUnit/Basic.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/ascii.h"
#include "cunit_main.h"

/* Every pair of bytes, as the C locale's tolower judges them. */
static void test_bytes(void)
{
	unsigned wrong = 0;

	for (unsigned x = 0; x < 256; x++)
		for (unsigned y = 0; y < 256; y++)
			if (ascii_same_ci((unsigned char)x, (unsigned char)y) != (tolower((int)x) ==
										 tolower((int)y)))
				wrong++;
	CU_ASSERT_EQUAL(wrong, 0);
}

/* Strings over an alphabet where case matters and near misses abound ('@' and '`', '[' and
 * '{', 0xc1 and 0xe1 differ by the case bit too), of every length up to 40 (the eight-byte
 * path and its overlapping tail), mostly case variants of each other, against strcasecmp
 * and strncasecmp; a prefix compare of a shorter string stops at its end. */
static void test_strings(void)
{
	static const char alpha[] = "aAzZ@`[{-0\xc1\xe1";
	const int na = (int)sizeof(alpha) - 1;
	unsigned wrong = 0;

	srand(7);
	for (int round = 0; round < 300000; round++) {
		char a[48] = "", b[48] = "";
		size_t la = (size_t)rand() % 41, lb = rand() % 4 ? la : (size_t)rand() % 41;

		for (size_t i = 0; i < la; i++)
			a[i] = alpha[rand() % na];
		for (size_t i = 0; i < lb; i++) {
			unsigned char c = i < la ? (unsigned char)a[i] : 0;
			b[i] = i < la && rand() % 16 ? (char)(isalpha(c) && rand() % 2 ? c ^ 0x20 : c)
						     : alpha[rand() % na];
		}
		if (ascii_caseeq_str(a, b) != (strcasecmp(a, b) == 0))
			wrong++;
		/* n bytes of b (no NUL among them) against a, which may end sooner */
		if (ascii_caseprefix(a, b, lb) != (strncasecmp(a, b, lb) == 0))
			wrong++;
		/* two buffers of n bytes */
		if (la == lb && ascii_caseeq(a, b, la) != (strncasecmp(a, b, la) == 0))
			wrong++;
	}
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_TRUE(ascii_caseeq("content-LENGTH", "Content-Length", 14));
	CU_ASSERT_FALSE(ascii_caseeq("Content-Lengt@", "Content-Length", 14));
	CU_ASSERT_FALSE(ascii_caseeq("\xc1" "bcdefghi", "\xe1" "bcdefghi", 9));
	CU_ASSERT_TRUE(ascii_caseprefix("bearer x", "Bearer ", 7));
	CU_ASSERT_FALSE(ascii_caseprefix("Bear", "Bearer ", 7));
	CU_ASSERT_TRUE(ascii_caseeq("", "", 0));
	CU_ASSERT_TRUE(ascii_caseeq_str("CHUNKED", "chunked"));
	CU_ASSERT_FALSE(ascii_caseeq_str("chunked ", "chunked"));
	CU_ASSERT_FALSE(ascii_caseeq_str("chunke", "chunked"));
}

CU_MAIN("ascii", NULL, NULL,
	{ "every pair of bytes", test_bytes },
	{ "strings, against strcasecmp and strncasecmp", test_strings })
