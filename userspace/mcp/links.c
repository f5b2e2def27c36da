/* links: the shared child, or the session's own link. */
#include "mcp/links.h"

#include <errno.h>

#include "base/config.h"
#include "mcp/catalog.h"
#include "mcp/session.h"
#include "mcp/upstream.h"

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
	link_close(sl->link);
	sl->link = NULL;
	rc = link_open(ls->base, catalog_server_config(ls->cat, server), s->client_caps, ls->ops,
		       sl, &sl->link);
	if (rc) {
		sl->link = NULL;
		*err = rc;
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
	for (size_t i = 0; i < s->nlinks; i++) {
		link_close(s->links[i].link);
		s->links[i].link = NULL;
	}
}
