/* jsonfmt: see jsonfmt.h. */
#include "base/jsonfmt.h"

#include <stdio.h>

void jsonfmt_add_v(cJSON *obj, const char *name, const char *fmt, va_list ap)
{
	char msg[JSONFMT_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	cJSON_AddStringToObject(obj, name, msg);
}

void jsonfmt_add_opt(cJSON *obj, const char *name, const char *s)
{
	if (s)
		cJSON_AddStringToObject(obj, name, s);
}

void jsonfmt_add_or_null(cJSON *obj, const char *name, const char *s)
{
	if (s[0])
		cJSON_AddStringToObject(obj, name, s);
	else
		cJSON_AddNullToObject(obj, name);
}
