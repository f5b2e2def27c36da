/* links: the shared child, or the session's own link. */
#include "mcp/links.h"

#include <errno.h>

#include "base/config.h"
#include "mcp/catalog.h"
#include "mcp/session.h"
#include "mcp/upstream.h"

/* The children of every session's own stdio links (loop thread; one process, one count). */
static unsigned children;

static bool own_child(const struct links *ls, size_t server)
{
	return catalog_server_config(ls->cat, server)->kind == UPSTREAM_STDIO &&
	       !links_shared(ls, server);
}

static void close_link(struct session_link *sl)
{
	link_close(sl->link);
	sl->link = NULL;
	if (sl->child)
		children--;
	sl->child = false;
}

unsigned links_children(void)
{
	return children;
}

size_t links_children_per_session(const struct links *ls)
{
	size_t n = 0;

	for (size_t i = 0; i < catalog_nservers(ls->cat); i++)
		n += own_child(ls, i);
	return n;
}

bool links_shared(const struct links *ls, size_t server)
{
	const struct upstream_config *uc = catalog_server_config(ls->cat, server);

	return uc->kind == UPSTREAM_STDIO && !uc->per_session;
}

struct link *links_get(const struct links *ls, struct session *s, size_t server, int *err)
{
	struct session_link *sl = &s->links[server];
	int rc;

	*err = 0;
	if (links_shared(ls, server)) {
		struct link *l = catalog_shared_link(ls->cat, server);
		if (!l || link_down(l))
			*err = -ENOTCONN;
		return *err ? NULL : l;
	}
	if (sl->link && !link_down(sl->link))
		return sl->link;
	/* A link that went down is replaced here, outside its own callbacks. */
	close_link(sl);
	bool child = own_child(ls, server);
	if (child && ls->max_children && children >= ls->max_children) {
		*err = -EUSERS;
		return NULL;
	}
	rc = link_open(ls->base, catalog_server_config(ls->cat, server), s->client_caps, ls->ops,
		       sl, &sl->link);
	if (rc) {
		sl->link = NULL;
		*err = rc;
	} else if (child) {
		sl->child = true;
		children++;
	}
	return sl->link;
}

struct link *links_current(const struct links *ls, struct session *s, size_t server)
{
	struct link *l = links_shared(ls, server) ? catalog_shared_link(ls->cat, server)
					    : s->links[server].link;

	return l && !link_down(l) ? l : NULL;
}

void links_close_session(struct session *s)
{
	for (size_t i = 0; i < s->nlinks; i++)
		close_link(&s->links[i]);
}
