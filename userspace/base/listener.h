/* listener: what the agent-facing and admin listeners share — binding an evhttp to host:port
 * (port 0 picks a free one and reports it) and recognising loopback names, for the Host and
 * Origin checks that keep a loopback listener out of reach of DNS rebinding.
 */
#ifndef WARDEN_LISTENER_H
#define WARDEN_LISTENER_H

#include <stdbool.h>

struct evhttp;

/* Bind http to host:port; *bound gets the port actually bound. 0 or -errno (logged, with
 * `what` naming the listener). */
int listener_bind(struct evhttp *http, const char *what, const char *host, int port, int *bound);
/* localhost, 127.0.0.1, [::1] or ::1, each optionally followed by ":port". */
bool listener_is_loopback(const char *host);

#endif
