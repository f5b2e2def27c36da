/* log: operational messages on stderr, JSON-line records on stdout. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level g_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl) { g_level = lvl; }
enum log_level log_get_level(void) { return g_level; }

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_timestamp(char *buf, unsigned long len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char ts[40];
	va_list ap;

	if (lvl < g_level)
		return;
	log_timestamp(ts, sizeof(ts));
	flockfile(stderr);
	fprintf(stderr, "%s mcpwarden %s: ", ts, level_names[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void log_record(const char *type, cJSON *obj)
{
	char ts[40];
	cJSON *line = cJSON_CreateObject();
	char *text;

	if (!line)
		return;
	log_timestamp(ts, sizeof(ts));
	cJSON_AddStringToObject(line, "ts", ts);
	cJSON_AddStringToObject(line, "type", type);
	for (cJSON *it = obj ? obj->child : NULL; it; it = it->next)
		cJSON_AddItemReferenceToObject(line, it->string, it);
	text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	if (!text)
		return;
	flockfile(stdout);
	fputs(text, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	funlockfile(stdout);
	cJSON_free(text);
}
