/* rfc3339: see rfc3339.h. */
#include "base/rfc3339.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <time.h>

int rfc3339_parse_ms(const char *s, int64_t *ms)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, n = 0, frac = 0, kept = 0;
	int64_t off = 0, t;

	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return -EINVAL;
	s += n;
	if (*s == '.') {
		const char *start = ++s;
		for (; isdigit((unsigned char)*s); s++)
			if (kept < 3) {
				frac = frac * 10 + (*s - '0');
				kept++;
			}
		if (s == start)
			return -EINVAL;
		for (; kept < 3; kept++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int oh, om, m = 0;
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * 60 * (*s == '-' ? -1 : 1);
		s += 6;
	} else {
		return -EINVAL;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	*ms = (t - off) * 1000 + frac;
	return 0;
}
