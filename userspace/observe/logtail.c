/* logtail: fan-out of records to live subscribers. */
#include "observe/logtail.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/list.h"

struct logtail_sub {
	struct list_head link;
	logtail_fn fn;
	void *arg;
	bool gone;                      /* unsubscribed during a publish: freed after it */
};

static struct list_head subs = LIST_HEAD_INIT(subs);
static size_t nsubs;
static int publishing;             /* depth: a callback may emit a record itself */

int logtail_subscribe(logtail_fn fn, void *arg, struct logtail_sub **out)
{
	struct logtail_sub *s;

	*out = NULL;
	if (nsubs >= LOGTAIL_MAX_SUBSCRIBERS)
		return -EBUSY;
	s = xcalloc(1, sizeof(*s));
	s->fn = fn;
	s->arg = arg;
	list_add_tail(&s->link, &subs);
	nsubs++;
	*out = s;
	return 0;
}

void logtail_unsubscribe(struct logtail_sub *s)
{
	if (!s || s->gone)
		return;
	nsubs--;
	if (publishing) {
		s->gone = true;         /* the publish loop still walks it */
		return;
	}
	list_del(&s->link);
	free(s);
}

size_t logtail_subscribers(void)
{
	return nsubs;
}

void logtail_publish(const char *line)
{
	struct logtail_sub *s, *tmp;
	cJSON *rec;
	size_t len;

	if (!nsubs || !line)
		return;
	len = strlen(line);
	rec = cJSON_ParseWithLength(line, len);
	if (!rec)
		return;
	publishing++;
	list_for_each_entry(s, &subs, link)
		if (!s->gone)
			s->fn(line, len, rec, s->arg);
	publishing--;
	if (!publishing)
		list_for_each_entry_safe(s, tmp, &subs, link)
			if (s->gone) {
				list_del(&s->link);
				free(s);
			}
	cJSON_Delete(rec);
}
