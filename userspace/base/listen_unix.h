/* listen_unix: the agent listener on a unix socket ("listen_unix"), next to the TCP one and
 * served by the same base/http_server. Callers are named by the kernel through SO_PEERCRED
 * (enforce/peer_cgroup.h: peer_unix_cgroup), so identity there needs neither BPF nor any
 * capability; who may connect at all is the socket file's mode and group.
 */
#ifndef WARDEN_LISTEN_UNIX_H
#define WARDEN_LISTEN_UNIX_H

#include <cjson/cJSON.h>

struct config_errors;
struct http_server;

struct listen_unix {
	char *path;             /* absolute, shorter than sun_path */
	unsigned mode;          /* of the socket file: 0660 by default */
	long gid;               /* its group (-1: the daemon's) */
};

/* The config's "listen_unix": "/path" or {"path", "group" (a name or a number), "mode"
 * ("0660" octal text)}. 0 with *out (NULL when absent), or -EINVAL (errs filled). A group name
 * is looked up here (getgrnam): config is read at start-up, before the loop runs. */
int listen_unix_parse(const cJSON *root, struct listen_unix **out, struct config_errors *errs);
void listen_unix_free(struct listen_unix *u);
/* Listen on u->path for http: a stale socket file (nobody accepting on it) is replaced, a
 * live one is -EADDRINUSE, any other file -EEXIST; the file has u->mode and u->gid before
 * anyone can connect. 0 or -errno (logged). The file is removed by listen_unix_unlink. */
int listen_unix_bind(struct http_server *http, const char *what, const struct listen_unix *u);
void listen_unix_unlink(const struct listen_unix *u);
/* Parse the config's "listen_unix" (each problem logged) and bind it: 0 with *out (NULL when
 * the config has none), or -errno. */
int listen_unix_start(struct http_server *http, const char *what, const cJSON *root,
		      struct listen_unix **out);
/* Unlink and free; NULL is a no-op. */
void listen_unix_stop(struct listen_unix *u);

#endif
