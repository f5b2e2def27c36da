/* wardenctl: what the command files share — the parsed command line, the command table's
 * entry, exit statuses, and the helpers that open the pins and report errors. */
#ifndef WARDENCTL_H
#define WARDENCTL_H

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "enforce/enforcer.h"
#include "base/log.h"
#include "enforce/pins.h"
#include "warden_types.h"

/* Exit status (documented in --help and docs/wardenctl.md). */
enum {
	EXIT_OK = 0,		/* done; verify passed; status: every supported hook attached */
	EXIT_FAIL = 1,		/* the command failed, verify found enforcement not working,
				 * status found a hook detached, events --count not reached */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_NOT_LOADED = 3,	/* no pins under the pin directory */
	EXIT_PRIVILEGE = 4,	/* not root (or lacking CAP_BPF/CAP_SYS_ADMIN) */
};

#ifndef WARDEN_VERSION
#define WARDEN_VERSION "dev"
#endif

struct args {
	const char *cmd;
	const char *pin_dir;
	const char *cgroup_root;
	bool json, help, verbose;
	const char *container, *pod, *mode, *unix_path;
	uint64_t id;
	bool have_id;
	bool follow, tap, consume, yes;
	long count;		/* 0: unlimited */
	double timeout_s;	/* 0: none */
	char **pos;		/* positional arguments */
	int npos;
};

/* A command: its exit status (EXIT_*). */
typedef int cmd_fn(struct args *a);

struct cmd {
	const char *name;
	cmd_fn *run;
	const char *opts;	/* short letters of the accepted options besides COMMON_OPTS;
				 * \x02 --id, \x03 --unix, \x04 --tap, \x05 --consume,
				 * \x06 --yes */
	const char *synopsis;
	const char *summary;
	const char *details;
};

/* The processes holding a pinned map (the daemon holds the event ring). */
struct holders {
	pid_t pid[8];
	size_t n;
};

/* The redirect table, printed, or added to json_parent when it is not NULL (redirects.c).
 * cgroot (may be NULL) names the cgroups. 0 or -errno. */
int ctl_redirect_table(const struct pins *p, const char *cgroot, cJSON *json_parent);

/* Helpers (common.c). */
void ctl_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_print_json(cJSON *o);
const char *ctl_errno_label(int err);
/* A failure to open the pins, as the message and exit status an operator acts on. */
int ctl_pins_error(const char *dir, int err);
int ctl_open_pins(const struct args *a, struct pins **out);
/* The enforcer adopting the pins: for changes, and for event records in the daemon's format. */
int ctl_open_enforcer(const struct args *a, struct enforcer **out);
int ctl_cgroup_root(const struct args *a, char *buf, size_t len);
/* The cgroup tree's id -> path index (NULL: paths are shown as unknown). */
struct cgroup_index *ctl_scan_cgroups(const struct args *a);
void ctl_holder_comm(pid_t pid, char *buf, size_t len);

/* The commands, one file per group. */
cmd_fn cmd_status, cmd_maps, cmd_events, cmd_enroll, cmd_unenroll, cmd_exempt, cmd_protect,
	cmd_unprotect, cmd_allow, cmd_disallow, cmd_verify, cmd_uninstall;
/* keys and usage (admin_api.c): argv starts at the command; they parse their own options. */
int ctl_admin_api_main(int argc, char **argv);
/* audit verify (audit.c): the log store's chain; its own options and exit statuses. */
int ctl_audit_main(int argc, char **argv);
/* identities (identities.c): config and cgroupfs only; its own options. */
int ctl_identities_main(int argc, char **argv);

#endif
