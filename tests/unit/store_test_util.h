/* Helpers shared by the store tests: a temporary directory that is removed afterwards, and
 * running the event loop until a condition holds. */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

static inline int tmpdir_make(char *dir, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, len, "%s/mcpwarden-store-XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

/* A suite's set-up: a fresh directory in dir and, in path, the name of file in it. */
static inline int tmpdir_setup(char *dir, size_t dlen, char *path, size_t plen, const char *file)
{
	if (tmpdir_make(dir, dlen) < 0)
		return -1;
	snprintf(path, plen, "%s/%s", dir, file);
	return 0;
}

/* Remove the directory and the files in it (the database, its -wal and -shm). */
static inline void tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Run base until *flag becomes true or about 10 s pass; returns whether it did. */
static inline bool loop_until(struct event_base *base, const volatile bool *flag)
{
	struct timeval tick = { 0, 10000 };

	for (int i = 0; i < 1000 && !*flag; i++) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	return *flag;
}

#endif
