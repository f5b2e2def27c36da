/* list_fetch: see list_fetch.h. */
#include "mcp/list_fetch.h"

#include <errno.h>
#include <stdlib.h>

#include "mcp/jsonrpc.h"
#include "mcp/upstream.h"

#define MAX_PAGES 1000          /* a server that never stops paginating is cut off */

static void ask(struct list_fetch *lf, const char *cursor);

static void on_page(enum obj_type *ctx, cJSON *resp)
{
	struct list_fetch *lf = (struct list_fetch *)ctx;
	const char *why = NULL;
	char *cur = NULL;
	int rc;

	if (lf->dropped) {
		cJSON_Delete(resp);
		lf->done(lf, -ECANCELED, NULL);
		return;
	}
	rc = jsonrpc_list_page(resp, lf->field, lf->acc, &lf->pages, MAX_PAGES, &cur, &why);
	if (rc == 1)
		ask(lf, cur);
	else
		lf->done(lf, rc, rc ? why : NULL);   /* why lives in resp */
	cJSON_Delete(resp);
	free(cur);  /* NULL unless a page follows */
}

static void ask(struct list_fetch *lf, const char *cursor)
{
	/* link_call takes the params over, even when it fails; without a link none are made. */
	int rc = lf->link ? link_call(lf->link, lf->method, jsonrpc_list_params(cursor), 0,
				      on_page, &lf->obj_type, NULL)
			  : -ENOTCONN;

	if (rc)
		lf->done(lf, rc, NULL);
}

void list_fetch_start(struct list_fetch *lf)
{
	lf->acc = cJSON_CreateArray();
	lf->pages = 0;
	ask(lf, NULL);
}
