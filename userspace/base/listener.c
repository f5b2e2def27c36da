/* listener: binding evhttp listeners and recognising loopback names. */
#include "base/listener.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/http.h>

#include "base/ascii.h"
#include "base/log.h"

int listener_bind(struct evhttp *http, const char *what, const char *host, int port, int *bound)
{
	struct evhttp_bound_socket *sock;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	/* evhttp resolves host synchronously: this runs at start-up and reload only. */
	sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (!sock) {
		int rc = errno ? -errno : -EADDRNOTAVAIL;
		log_error("%s: cannot listen on %s:%d: %s", what, host, port, strerror(-rc));
		return rc;
	}
	*bound = port;
	if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) == 0)
		*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

bool listener_is_loopback(const char *h)
{
	static const char *const names[] = { "localhost", "127.0.0.1", "[::1]", "::1", NULL };
	size_t len = strlen(h);

	for (const char *const *n = names; *n; n++) {
		size_t nl = strlen(*n);
		if (len >= nl && ascii_caseeq(h, *n, nl) && (len == nl || h[nl] == ':'))
			return true;
	}
	return false;
}
