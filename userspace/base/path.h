/* path: the file-system paths of the daemon's own files (the stores under the state
 * directory). */
#ifndef WARDEN_PATH_H
#define WARDEN_PATH_H

/* "dir/name", with "." for a NULL dir. Never NULL (alloc.h). */
char *path_in_dir(const char *dir, const char *name);

/* mkdir -p of file's directory, each one created private to the daemon's user (0700); one
 * that exists is left as it is. 0 or a negative errno (-ENAMETOOLONG past PATH_MAX). */
int path_make_parents(const char *file);

#endif
