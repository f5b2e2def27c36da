/* redirect: the userspace side of transparent redirect — the listener port the programs send
 * redirected connects to, and the original destination of a redirected socket. */
#include "enforce/enforce_int.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* Written only when it changes: a reload that keeps the listener must not send the
 * programs through 0 (connects refused) and back. */
static bool set_redirect_port(struct warden_config *c, uintptr_t port)
{
	uint16_t p = htons((uint16_t)port);

	if (c->redirect_port == p)
		return false;
	c->redirect_port = p;
	return true;
}

int enforcer_set_redirect(struct enforcer *e, uint16_t port)
{
	return enforcer_config_edit(e, set_redirect_port, port);
}

/* One map lookup (a syscall answered from memory): fine on the event loop. */
int enforcer_redirect_lookup(struct enforcer *e, uint64_t cookie, struct warden_redirect *out)
{
	__u64 key = cookie;

	if (!cookie)
		return -ENOENT;
	if (bpf_map_lookup_elem(e->map_fds[WARDEN_M_REDIRECT], &key, out) < 0)
		return -errno;
	return 0;
}

int enforcer_redirect_sockaddr(const struct warden_redirect *r, struct sockaddr_storage *ss,
			       socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (r->family == AF_INET && !(r->flags & WARDEN_EV_F_V4MAPPED)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = r->port;
		memcpy(&s4->sin_addr, r->addr, 4);
		*len = sizeof(*s4);
		return 0;
	}
	if (r->family == AF_INET || r->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = r->port;
		if (r->family == AF_INET) {
			s6->sin6_addr.s6_addr[10] = 0xff;
			s6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&s6->sin6_addr.s6_addr[12], r->addr, 4);
		} else {
			memcpy(&s6->sin6_addr, r->addr, 16);
		}
		*len = sizeof(*s6);
		return 0;
	}
	return -EAFNOSUPPORT;
}
