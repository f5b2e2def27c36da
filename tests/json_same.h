/* json_same.h: two cJSON trees node for node, for the tests and fuzz targets that check a
 * tree built by the gateway against cJSON's own parse (mcp/jsonrpc_splice.h). */
#ifndef WARDEN_TEST_JSON_SAME_H
#define WARDEN_TEST_JSON_SAME_H

#include <stdbool.h>
#include <string.h>
#include <cjson/cJSON.h>

/* Types, names, strings, both number fields (valueint too, which cJSON_Compare ignores, and
 * the double's bits: -0 is not 0), order, and the list links cJSON keeps (a first child's
 * prev is the last). */
static inline bool json_same_tree(const cJSON *a, const cJSON *b)
{
	if ((a->type & 0xff) != (b->type & 0xff) || !a->string != !b->string ||
	    (a->string && strcmp(a->string, b->string)) || !a->valuestring != !b->valuestring ||
	    (a->valuestring && strcmp(a->valuestring, b->valuestring)) ||
	    a->valueint != b->valueint ||
	    memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) ||
	    !a->child != !b->child)
		return false;
	if (a->child && (a->child->prev->next || !b->child->prev || b->child->prev->next))
		return false;
	for (a = a->child, b = b->child; a && b; a = a->next, b = b->next)
		if (!json_same_tree(a, b))
			return false;
	return !a && !b;
}

#endif
