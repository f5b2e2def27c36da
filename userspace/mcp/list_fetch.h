/* list_fetch: a whole MCP list (tools/list and the like) read from an upstream link page
 * after page: how the catalogue reads each server's lists, and a session the tools a server
 * that serves it alone lists to it (session_view). The owner embeds a struct list_fetch and
 * learns the outcome once, through done().
 */
#ifndef WARDEN_LIST_FETCH_H
#define WARDEN_LIST_FETCH_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "base/obj_type.h"

struct link;

struct list_fetch {
	enum obj_type obj_type;  /* the owner's tag, first: the fetch is link_call's context */
	struct link *link;       /* NULL: there is no one to ask (done with -ENOTCONN) */
	const char *method;      /* "tools/list", ... (static) */
	const char *field;       /* the list in each result: "tools", ... (static) */
	bool dropped;            /* set by an owner that no longer wants the list */
	cJSON *acc;              /* the items so far, then the whole list: the owner's to free */
	int pages;
	/* The end, once: rc 0 with the whole list in acc; -EPROTO when an answer held no list
	 * (why: the error's message or "malformed result", valid during the call); -ECANCELED
	 * when dropped; another negative errno when the request could not be sent. */
	void (*done)(struct list_fetch *lf, int rc, const char *why);
};

/* Ask for the first page; obj_type, link, method, field and done are set. acc is made here. */
void list_fetch_start(struct list_fetch *lf);

#endif
