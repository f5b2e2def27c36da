/* listen_unix: the agent listener's unix socket. */
#include "base/json_get.h"
#include "base/listen_unix.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/http_server.h"
#include "base/log.h"

#define BACKLOG 128

int listen_unix_parse(const cJSON *root, struct listen_unix **out, struct config_errors *errs)
{
	static const char *const keys[] = { "path", "group", "mode", NULL };
	const cJSON *v = json_get(root, "listen_unix"), *g;
	struct listen_unix *u;
	const char *path = NULL, *mode = NULL;
	char *end;
	int rc = 0;

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	u = xcalloc(1, sizeof(*u));
	u->mode = 0660;
	u->gid = -1;
	if (cJSON_IsString(v)) {
		path = v->valuestring;
	} else if (cJSON_IsObject(v)) {
		if (cfg_known_keys(v, "listen_unix", keys, errs))
			rc = -EINVAL;
		if (cfg_string(v, "path", "listen_unix", true, &path, errs))
			rc = -EINVAL;
		if (cfg_string(v, "mode", "listen_unix", false, &mode, errs) == 0) {
			unsigned long m = strtoul(mode, &end, 8);

			if (!*mode || *end || m > 0777 || (m & 0007))
				rc = config_fail(errs, "listen_unix.mode", "must be octal text such as "
						 "\"0660\", with no access for others");
			u->mode = (unsigned)m;
		}
		g = json_get(v, "group");
		if (cJSON_IsNumber(g) && g->valuedouble >= 0 && g->valuedouble < 2147483647.0 &&
		    g->valuedouble == (double)(long)g->valuedouble) {
			u->gid = (long)g->valuedouble;
		} else if (cJSON_IsString(g) && *g->valuestring) {
			struct group *gr = getgrnam(g->valuestring);

			if (!gr)
				rc = config_fail(errs, "listen_unix.group", "no group named \"%.64s\"",
						 g->valuestring);
			else
				u->gid = (long)gr->gr_gid;
		} else if (g) {
			rc = config_fail(errs, "listen_unix.group", "must be a group name or number");
		}
	} else {
		rc = config_fail(errs, "listen_unix", "must be a path or an object {path, group, "
				 "mode}");
	}
	if (path && (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
		rc = config_fail(errs, "listen_unix", "the path must be absolute and shorter than "
				 "%zu bytes", sizeof(((struct sockaddr_un *)0)->sun_path));
	if (rc == 0 && path)
		u->path = xstrdup(path);
	if (rc || !u->path) {
		listen_unix_free(u);
		return rc ? rc : -EINVAL;
	}
	*out = u;
	return 0;
}

void listen_unix_free(struct listen_unix *u)
{
	if (!u)
		return;
	free(u->path);
	free(u);
}

/* A socket file left by a daemon that died: replaced. One that answers: in use. Anything
 * else at the path is not ours to remove. A local connect never waits on the network. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE : 0;
	close(fd);
	if (rc == 0 && unlink(sa->sun_path) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

int listen_unix_bind(struct http_server *http, const char *what, const struct listen_unix *u)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = -1, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", u->path);
	rc = clear_stale(&sa);
	if (rc)
		goto fail;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Mode and group before listen(): nobody can connect until they hold. */
	if (chmod(u->path, u->mode) < 0 || (u->gid >= 0 && chown(u->path, (uid_t)-1, (gid_t)u->gid) < 0) ||
	    listen(fd, BACKLOG) < 0) {
		rc = -errno;
		unlink(u->path);
		goto fail;
	}
	rc = http_server_adopt(http, fd, NULL);
	fd = -1;        /* the server's now, closed by it on failure */
	if (rc) {
		unlink(u->path);
		goto fail;
	}
	log_info("%s on unix:%s (mode %04o%s)", what, u->path, u->mode, u->gid >= 0 ? ", group set" : "");
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	log_error("%s: cannot listen on unix:%s: %s", what, u->path, strerror(-rc));
	return rc;
}

void listen_unix_unlink(const struct listen_unix *u)
{
	if (u && u->path && unlink(u->path) < 0 && errno != ENOENT)
		log_warn("listen_unix: cannot remove %s: %s", u->path, strerror(errno));
}

int listen_unix_start(struct http_server *http, const char *what, const cJSON *root,
		      struct listen_unix **out)
{
	struct config_errors errs = { 0 };
	int rc = listen_unix_parse(root, out, &errs);

	for (int i = 0; i < errs.count; i++)
		log_error("%s: %s", what, errs.msg[i]);
	if (rc || !*out)
		return rc;
	rc = listen_unix_bind(http, what, *out);
	if (rc) {
		listen_unix_free(*out);
		*out = NULL;
	}
	return rc;
}

void listen_unix_stop(struct listen_unix *u)
{
	listen_unix_unlink(u);
	listen_unix_free(u);
}
