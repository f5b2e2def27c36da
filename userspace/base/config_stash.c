/* config_stash: the keys and teams sections of a config kept as deflated text between the
 * times a gate is built from them (config_shrink, config_expand in base/config.h). */
#include "base/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/alloc.h"

static const char *const stashed[] = { "keys", "teams" };

/* text (n bytes) deflated into c->stash; false when zlib fails (then nothing is kept). The
 * text is random-looking key digests, mostly: the fastest level packs it nearly as well as
 * the best (100k keys: 11.4 MB -> 4.5 MB, ~150 ms of CPU). */
static bool deflate_into(struct config *c, const char *text, size_t n)
{
	uLongf len = compressBound((uLong)n);
	unsigned char *z = xmalloc(len);

	if (compress2(z, &len, (const Bytef *)text, (uLong)n, Z_BEST_SPEED) != Z_OK) {
		free(z);
		return false;
	}
	c->stash = xrealloc(z, len);
	c->stash_len = len;
	c->stash_text_len = n;
	return true;
}

void config_shrink(struct config *c)
{
	cJSON *o;
	char *text = NULL;

	if (!c || c->stash || !(o = cJSON_CreateObject()))
		return;
	for (size_t i = 0; i < sizeof(stashed) / sizeof(*stashed); i++) {
		cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(c->raw, stashed[i]);
		if (it)
			cJSON_AddItemToObject(o, stashed[i], it);
	}
	if (o->child && (text = cJSON_PrintUnformatted(o)))
		deflate_into(c, text, strlen(text));
	cJSON_free(text);
	if (o->child && !c->stash) {    /* cannot keep it as text: keep the tree */
		for (size_t i = 0; i < sizeof(stashed) / sizeof(*stashed); i++) {
			cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(o, stashed[i]);
			if (it)
				cJSON_AddItemToObject(c->raw, stashed[i], it);
		}
	}
	cJSON_Delete(o);
}

int config_expand(struct config *c)
{
	uLongf n;
	char *text;
	cJSON *o;

	if (!c || !c->stash)
		return 0;
	n = (uLongf)c->stash_text_len;
	text = xmalloc(n + 1);
	/* It was deflated by us: only memory can fail. */
	if (uncompress((Bytef *)text, &n, c->stash, (uLong)c->stash_len) != Z_OK ||
	    n != c->stash_text_len) {
		free(text);
		return -ENOMEM;
	}
	o = cJSON_ParseWithLength(text, n);
	free(text);
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(stashed) / sizeof(*stashed); i++) {
		cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(o, stashed[i]);
		if (it) {
			cJSON_DeleteItemFromObjectCaseSensitive(c->raw, stashed[i]);
			cJSON_AddItemToObject(c->raw, stashed[i], it);
		}
	}
	cJSON_Delete(o);
	free(c->stash);
	c->stash = NULL;
	c->stash_len = c->stash_text_len = 0;
	return 0;
}
