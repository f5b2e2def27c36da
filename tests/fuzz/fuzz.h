/* fuzz.h: helpers shared by the libFuzzer targets (docs/fuzzing.md). */
#ifndef WARDEN_FUZZ_H
#define WARDEN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* Targets whose input holds two documents separate them with this line, so that seeds stay
 * readable text: "<first>\n~~\n<second>". */
#define FUZZ_SEP "\n~~\n"

/* A NUL-terminated copy of data[0..n) (the parsers take C strings); NULL when out of memory. */
static inline char *fuzz_strndup(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* Split text (NUL-terminated, owned by the caller) in place at the first FUZZ_SEP: returns the
 * second part ("" when there is no separator), text keeps the first. */
static inline char *fuzz_split(char *text)
{
	char *sep = strstr(text, FUZZ_SEP);

	if (!sep)
		return text + strlen(text);
	*sep = '\0';
	return sep + strlen(FUZZ_SEP);
}

/* hiredis 0.14 allocates a multi-bulk of whatever length the server declares (no
 * maxelements: that came with 1.0.1, CVE-2021-32765); the sidecar reads only the Redis it is
 * configured for. RESP whose lengths are past what the input could hold is its problem, not
 * ours: the targets that feed hiredis's reader skip it. */
static inline int fuzz_resp_plausible(const char *resp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (resp[i] != '*' && resp[i] != '$')
			continue;
		if (strtol(resp + i + 1, NULL, 10) > (long)n)
			return 0;
	}
	return 1;
}

/* libFuzzer calls this once, before the first input, in every target (each includes this
 * header once): the modules log what they refuse, and at fuzzing speed that is only noise. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

#endif
