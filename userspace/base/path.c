#include "base/path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"

char *path_in_dir(const char *dir, const char *name)
{
	const char *d = dir ? dir : ".";
	size_t n = strlen(d) + 1 + strlen(name) + 1;
	char *p = xmalloc(n);

	snprintf(p, n, "%s/%s", d, name);
	return p;
}

int path_make_parents(const char *file)
{
	char buf[PATH_MAX];
	size_t n = strlen(file);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, file, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}
