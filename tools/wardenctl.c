/* wardenctl: the operator's and auditor's command line for mcpwarden's kernel enforcement.
 *
 * Read commands (status, maps, events) work from the bpffs pins alone, through the pins
 * module: an auditor needs neither the daemon nor its config. Changes (enroll, protect, ...)
 * go through the enforcer in ENFORCER_ADOPT mode, the same code the daemon uses, so both
 * keep the same rules (level mask, rule ids). `verify` proves end to end that an enrolled
 * cgroup really is refused. The manual is `wardenctl --help` and docs/wardenctl.md.
 */
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

#include "admin/adminclient.h"
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

/* ---- options ----------------------------------------------------------------------------- */

enum opt_id {
	O_PIN_DIR = 'd', O_JSON = 'j', O_HELP = 'h', O_VERBOSE = 'v', O_VERSION = 'V',
	O_CONTAINER = 'c', O_POD = 'p', O_MODE = 'm', O_FOLLOW = 'f', O_COUNT = 'n',
	O_TIMEOUT = 't',
	O_CGROUP_ROOT = 256, O_ID, O_UNIX, O_TAP, O_CONSUME, O_YES,
};

static const struct option all_opts[] = {
	{ "pin-dir", required_argument, NULL, O_PIN_DIR },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, O_HELP },
	{ "verbose", no_argument, NULL, O_VERBOSE },
	{ "version", no_argument, NULL, O_VERSION },
	{ "cgroup-root", required_argument, NULL, O_CGROUP_ROOT },
	{ "container", required_argument, NULL, O_CONTAINER },
	{ "pod", required_argument, NULL, O_POD },
	{ "mode", required_argument, NULL, O_MODE },
	{ "id", required_argument, NULL, O_ID },
	{ "unix", required_argument, NULL, O_UNIX },
	{ "follow", no_argument, NULL, O_FOLLOW },
	{ "count", required_argument, NULL, O_COUNT },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "tap", no_argument, NULL, O_TAP },
	{ "consume", no_argument, NULL, O_CONSUME },
	{ "yes", no_argument, NULL, O_YES },
	{ 0 },
};

/* Options every command accepts. */
#define COMMON_OPTS "dhvV" "\x01"	/* \x01 stands for --cgroup-root */

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

struct cmd {
	const char *name;
	int (*run)(struct args *a);
	const char *opts;	/* short letters of the accepted options besides COMMON_OPTS;
				 * \x02 --id, \x03 --unix, \x04 --tap, \x05 --consume,
				 * \x06 --yes */
	const char *synopsis;
	const char *summary;
	const char *details;
};

static const struct cmd *find_cmd(const char *name);

/* ---- output helpers ---------------------------------------------------------------------- */

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("wardenctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int print_json(cJSON *o)
{
	char *text = o ? cJSON_Print(o) : NULL;

	if (!text) {
		errmsg("out of memory");
		return EXIT_FAIL;
	}
	puts(text);
	cJSON_free(text);
	return EXIT_OK;
}

static const char *errno_label(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "?";
}

/* Map a failure to open the pins to the message and exit status an operator acts on. */
static int pins_error(const char *dir, int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
		errmsg("enforcement is not loaded (no pins under %s): start mcpwarden or run "
		       "'wardenctl status' after it has started", dir);
		return EXIT_NOT_LOADED;
	case -EPERM:
	case -EACCES:
		if (geteuid() != 0)
			errmsg("permission denied reading %s: wardenctl must run as root (it needs "
			       "CAP_BPF and CAP_SYS_ADMIN to open pinned BPF objects)", dir);
		else
			errmsg("permission denied reading %s: this root lacks CAP_BPF/CAP_SYS_ADMIN "
			       "(a container without privileges?)", dir);
		return EXIT_PRIVILEGE;
	case -EPROTO:
		errmsg("the maps pinned under %s do not have this wardenctl's layout (ABI %d): "
		       "the daemon and wardenctl come from different versions; to upgrade, run "
		       "'wardenctl uninstall --yes' (enforcement stops) and restart mcpwarden, "
		       "which installs the new maps and refills them from its config", dir,
		       WARDEN_ABI_VERSION);
		return EXIT_FAIL;
	default:
		errmsg("cannot open the pins under %s: %s", dir, strerror(-err));
		return EXIT_FAIL;
	}
}

static int open_pins(const struct args *a, struct pins **out)
{
	int err = pins_open(a->pin_dir, out);

	return err < 0 ? pins_error(a->pin_dir, err) : EXIT_OK;
}

/* The enforcer, adopting the pins: for changes, and for event records in the daemon's format.
 * The pins are checked first so the common failures get the clear messages above. */
static int open_enforcer(const struct args *a, struct enforcer **out)
{
	struct enforcer_opts o = {
		.pin_dir = a->pin_dir,
		.cgroup_root = a->cgroup_root,
		.mode = ENFORCER_ADOPT,
	};
	struct pins *p;
	int rc = open_pins(a, &p), err;

	*out = NULL;
	if (rc != EXIT_OK)
		return rc;
	pins_close(p);
	err = enforcer_open(&o, out);
	if (err == -EOPNOTSUPP) {
		errmsg("no cgroup v2 hierarchy (looked at /sys/fs/cgroup and "
		       "/sys/fs/cgroup/unified); use --cgroup-root");
		return EXIT_FAIL;
	}
	return err < 0 ? pins_error(a->pin_dir, err) : EXIT_OK;
}

/* The cgroup v2 root used to print cgroup paths. */
static int cgroup_root(const struct args *a, char *buf, size_t len)
{
	if (a->cgroup_root) {
		snprintf(buf, len, "%s", a->cgroup_root);
		return 0;
	}
	return cgroup_detect_root(buf, len);
}

static struct cgroup_index *scan_cgroups(const struct args *a)
{
	struct cgroup_index *c = NULL;
	char root[PATH_MAX];

	if (cgroup_root(a, root, sizeof(root)) || cgroup_index_new(&c))
		return NULL;	/* NULL: paths are shown as unknown */
	if (cgroup_index_scan(c, root, 64) < 0) {
		cgroup_index_free(c);
		c = NULL;
	}
	return c;
}

/* ---- status ------------------------------------------------------------------------------ */

struct holders {
	pid_t pid[8];
	size_t n;
};

static void holder_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(buf, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static const char *bool_word(bool b)
{
	return b ? "yes" : "no";
}

static int cmd_status(struct args *a)
{
	struct warden_counters hook[WARDEN_HOOK_MAX], total;
	struct pins_link links[WARDEN_HOOK_MAX];
	struct pins_enrolled *en = NULL;
	struct pins_features feat;
	struct cgroup_index *cg = NULL;
	struct warden_config cfg;
	struct holders h = { .n = 0 };
	unsigned nmode[4] = { 0 }, nattached = 0, nexpected = 0;
	size_t nen = 0, nrules[5] = { 0 };
	struct pins *p;
	cJSON *o = NULL;
	int rc, err;

	rc = open_pins(a, &p);
	if (rc != EXIT_OK)
		return rc;
	pins_features(&feat);
	cg = scan_cgroups(a);
	err = pins_config(p, &cfg);
	if (err < 0) {
		errmsg("reading %s: %s", WARDEN_MAP_CONFIG, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	if ((err = pins_counters(p, hook, &total)) < 0 || (err = pins_enrolled(p, &en, &nen)) < 0) {
		errmsg("reading the maps: %s", strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	for (size_t i = 0; i < nen; i++)
		if (en[i].e.mode < 4)
			nmode[en[i].e.mode]++;
	/* nrules: [0] protected, [2] allowed (prefixes and hosts), [4] unix paths. */
	for (enum pins_map m = PINS_PROTECT4; m <= PINS_EXACT6; m++) {
		struct pins_rule *r;
		size_t n;

		if (pins_rules(p, m, &r, &n) == 0)
			for (size_t i = 0; i < n; i++)
				nrules[r[i].kind == WARDEN_KIND_PROTECT ? 0 : 2]++;
		free(r);
	}
	{
		struct pins_unixpath *u;

		if (pins_unixpaths(p, &u, &nrules[4]) < 0)
			nrules[4] = 0;
		free(u);
	}
	for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++) {
		err = pins_link(p, i, &links[i]);
		if (err < 0) {
			errmsg("reading link %s: %s", enforcer_hook_name(i), strerror(-err));
			rc = EXIT_FAIL;
			goto out;
		}
		nattached += links[i].attached;
		/* connect_unix is expected only where the kernel has it. */
		nexpected += i != WARDEN_HOOK_CONNECT_UNIX || feat.unix_connect;
	}
	if (pins_map_holders(p, PINS_EVENTS, h.pid, 8, &h.n) < 0)
		h.n = 0;

	if (a->json) {
		cJSON *hooks, *x, *feats, *c, *hs;

		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "pin_dir", pins_dir(p));
		cJSON_AddBoolToObject(o, "loaded", 1);
		cJSON_AddBoolToObject(o, "healthy", nattached >= nexpected);
		cJSON_AddNumberToObject(o, "abi_version", cfg.abi_version);
		cJSON_AddStringToObject(o, "deny_errno", errno_label(cfg.deny_errno ?
								     (int)cfg.deny_errno : EPERM));
		cJSON_AddNumberToObject(o, "sidecar_port", ntohs(cfg.sidecar_port));
		hooks = cJSON_AddArrayToObject(o, "hooks");
		for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++) {
			const struct pins_link *l = &links[i];
			const char *cp = cgroup_index_get(cg, l->cgroup_id);

			x = cJSON_CreateObject();
			cJSON_AddItemToArray(hooks, x);
			cJSON_AddStringToObject(x, "hook", enforcer_hook_name(i));
			cJSON_AddBoolToObject(x, "pinned", l->pinned);
			cJSON_AddBoolToObject(x, "attached", l->attached);
			if (!l->pinned)
				continue;
			cJSON_AddNumberToObject(x, "link_id", l->link_id);
			cJSON_AddNumberToObject(x, "prog_id", l->prog_id);
			cJSON_AddStringToObject(x, "prog_name", l->prog_name);
			cJSON_AddStringToObject(x, "prog_tag", l->prog_tag);
			cJSON_AddNumberToObject(x, "cgroup_id", (double)l->cgroup_id);
			if (cp)
				cJSON_AddStringToObject(x, "cgroup", cp);
			cJSON_AddNumberToObject(x, "run_cnt", (double)l->run_cnt);
			cJSON_AddNumberToObject(x, "run_time_ns", (double)l->run_time_ns);
		}
		feats = cJSON_AddObjectToObject(o, "kernel");
		cJSON_AddStringToObject(feats, "release", feat.kernel);
		cJSON_AddBoolToObject(feats, "ringbuf", feat.ringbuf);
		cJSON_AddBoolToObject(feats, "unix_connect_hook", feat.unix_connect);
		if (feat.bpf_stats >= 0)
			cJSON_AddBoolToObject(feats, "bpf_stats", feat.bpf_stats);
		else
			cJSON_AddNullToObject(feats, "bpf_stats");
		cJSON_AddStringToObject(feats, "cgroup_root", feat.cgroup_root);
		x = cJSON_AddObjectToObject(o, "enrolled");
		cJSON_AddNumberToObject(x, "total", (double)nen);
		cJSON_AddNumberToObject(x, "lockdown", nmode[WARDEN_MODE_LOCKDOWN]);
		cJSON_AddNumberToObject(x, "protect", nmode[WARDEN_MODE_PROTECT]);
		cJSON_AddNumberToObject(x, "exempt", nmode[WARDEN_MODE_EXEMPT]);
		x = cJSON_AddObjectToObject(o, "rules");
		cJSON_AddNumberToObject(x, "protect", (double)(nrules[0] + nrules[1]));
		cJSON_AddNumberToObject(x, "allow", (double)(nrules[2] + nrules[3]));
		cJSON_AddNumberToObject(x, "protect_unix", (double)nrules[4]);
		c = cJSON_AddObjectToObject(o, "counters");
		cJSON_AddNumberToObject(c, "allowed", (double)total.allowed);
		cJSON_AddNumberToObject(c, "denied", (double)total.denied);
		cJSON_AddNumberToObject(c, "dropped", (double)total.events_dropped);
		cJSON_AddNumberToObject(c, "unenrolled", (double)total.unenrolled);
		hs = cJSON_AddArrayToObject(o, "event_ring_holders");
		for (size_t i = 0; i < h.n && i < 8; i++) {
			char comm[32];

			holder_comm(h.pid[i], comm, sizeof(comm));
			x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "pid", h.pid[i]);
			cJSON_AddStringToObject(x, "comm", comm);
			cJSON_AddItemToArray(hs, x);
		}
		rc = print_json(o);
	} else {
		printf("enforcement   loaded: pins under %s (ABI %u)\n", pins_dir(p),
		       cfg.abi_version);
		if (h.n) {
			printf("event ring    held by");
			for (size_t i = 0; i < h.n && i < 8; i++) {
				char comm[32];

				holder_comm(h.pid[i], comm, sizeof(comm));
				printf("%s %s (pid %d)", i ? "," : "", comm, (int)h.pid[i]);
			}
			printf("\n");
		} else {
			printf("event ring    held by no process (is the mcpwarden daemon running?)\n");
		}
		printf("cgroup root   %s\n", feat.cgroup_root[0] ? feat.cgroup_root : "(none)");
		printf("deny errno    %s\n",
		       errno_label(cfg.deny_errno ? (int)cfg.deny_errno : EPERM));
		if (cfg.sidecar_port)
			printf("sidecar       127.0.0.1:%u, [::1]:%u\n", ntohs(cfg.sidecar_port),
			       ntohs(cfg.sidecar_port));
		else
			printf("sidecar       none (lockdown allows only the allowlist)\n");
		printf("enrolled      %zu cgroup%s: %u lockdown, %u protect, %u exempt\n", nen,
		       nen == 1 ? "" : "s", nmode[WARDEN_MODE_LOCKDOWN], nmode[WARDEN_MODE_PROTECT],
		       nmode[WARDEN_MODE_EXEMPT]);
		printf("rules         %zu protected, %zu allowed, %zu protected unix paths\n",
		       nrules[0] + nrules[1], nrules[2] + nrules[3], nrules[4]);
		printf("counters      allowed %" PRIu64 ", denied %" PRIu64 ", dropped %" PRIu64
		       ", unenrolled %" PRIu64 "\n", (uint64_t)total.allowed, (uint64_t)total.denied,
		       (uint64_t)total.events_dropped, (uint64_t)total.unenrolled);
		printf("kernel        %s: ring buffer %s, unix connect hook %s, bpf_stats %s\n",
		       feat.kernel, bool_word(feat.ringbuf), bool_word(feat.unix_connect),
		       feat.bpf_stats < 0 ? "unknown" : feat.bpf_stats ? "on" : "off");
		printf("\n%-13s %-8s %6s %6s  %-16s %-16s %-18s %s\n", "HOOK", "STATE", "LINK",
		       "PROG", "TAG", "PROGRAM", "RUNS (AVG NS)", "ATTACHED AT");
		for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++) {
			const struct pins_link *l = &links[i];
			const char *cp = cgroup_index_get(cg, l->cgroup_id);
			const char *state = l->attached ? "attached" : l->pinned ? "DETACHED" :
				i == WARDEN_HOOK_CONNECT_UNIX && !feat.unix_connect ? "n/a" :
				"MISSING";
			char runs[48] = "-";

			if (!l->pinned) {
				printf("%-13s %-8s\n", enforcer_hook_name(i), state);
				continue;
			}
			if (feat.bpf_stats > 0 || l->run_cnt)
				snprintf(runs, sizeof(runs), "%" PRIu64 " (%" PRIu64 ")", l->run_cnt,
					 l->run_cnt ? l->run_time_ns / l->run_cnt : 0);
			printf("%-13s %-8s %6u %6u  %-16s %-16s %-18s %s\n", enforcer_hook_name(i),
			       state, l->link_id, l->prog_id, l->prog_tag, l->prog_name, runs,
			       cp ? cp : l->attached ? "?" : "-");
		}
		if (feat.bpf_stats == 0)
			printf("(runs are counted only with sysctl kernel.bpf_stats_enabled=1)\n");
	}
	if (nattached < nexpected) {
		errmsg("enforcement is degraded: %u of %u hooks attached", nattached, nexpected);
		rc = EXIT_FAIL;
	}
out:
	cJSON_Delete(o);
	free(en);
	cgroup_index_free(cg);
	pins_close(p);
	return rc;
}

/* ---- maps -------------------------------------------------------------------------------- */

static const char *rule_map_title(enum pins_map m)
{
	switch (m) {
	case PINS_PROTECT4:
	case PINS_PROTECT6: return "protected prefixes (refused in protect mode)";
	case PINS_EXACT4:
	case PINS_EXACT6: return "hosts, protected and allowed (one hash lookup)";
	default: return "allowed prefixes (lockdown: the only destinations besides the sidecar "
			"and allowed hosts; protect: exceptions)";
	}
}

static const char *kind_name(enum warden_rule_kind k)
{
	return k == WARDEN_KIND_PROTECT ? "protect" : k == WARDEN_KIND_ALLOW ? "allow" : "?";
}

static void dest_text(const struct enforcer_dest *d, char *buf, size_t len)
{
	if (enforcer_dest_format(d, buf, len) < 0)
		snprintf(buf, len, "?");
}

static cJSON *counters_json(const struct warden_counters *c)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "allowed", (double)c->allowed);
	cJSON_AddNumberToObject(o, "denied", (double)c->denied);
	cJSON_AddNumberToObject(o, "dropped", (double)c->events_dropped);
	cJSON_AddNumberToObject(o, "unenrolled", (double)c->unenrolled);
	return o;
}

static void print_counters_row(const char *name, const struct warden_counters *c)
{
	printf("  %-13s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %14" PRIu64 "\n", name,
	       (uint64_t)c->allowed, (uint64_t)c->denied, (uint64_t)c->events_dropped,
	       (uint64_t)c->unenrolled);
}

static int cmd_maps(struct args *a)
{
	struct warden_counters hook[WARDEN_HOOK_MAX], total;
	struct pins_enrolled *en = NULL;
	struct pins_unixpath *up = NULL;
	struct cgroup_index *cg = NULL;
	struct pins_map_info mi;
	struct warden_config cfg;
	size_t nen = 0, nup = 0;
	char root[PATH_MAX] = "", hex[17];
	uint64_t epoch = 0;
	struct pins *p;
	cJSON *o = NULL, *maps = NULL, *x = NULL;
	int rc, err;

	rc = open_pins(a, &p);
	if (rc != EXIT_OK)
		return rc;
	if (cgroup_root(a, root, sizeof(root)) < 0)
		root[0] = '\0';
	cg = scan_cgroups(a);
	if ((err = pins_config(p, &cfg)) < 0 || (err = pins_enrolled(p, &en, &nen)) < 0 ||
	    (err = pins_unixpaths(p, &up, &nup)) < 0 || (err = pins_counters(p, hook, &total)) < 0) {
		errmsg("reading the maps under %s: %s%s", pins_dir(p), strerror(-err),
		       err == -ENOENT ? " (a map pin is missing: see 'wardenctl status')" : "");
		rc = EXIT_FAIL;
		goto out;
	}
	if (a->json) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "pin_dir", pins_dir(p));
		cJSON_AddStringToObject(o, "cgroup_root", root);
		maps = cJSON_AddObjectToObject(o, "maps");
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_CONFIG);
		cJSON_AddNumberToObject(x, "abi_version", cfg.abi_version);
		cJSON_AddNumberToObject(x, "level_mask", cfg.level_mask);
		cJSON_AddStringToObject(x, "deny_errno", errno_label(cfg.deny_errno ?
								     (int)cfg.deny_errno : EPERM));
		cJSON_AddNumberToObject(x, "sidecar_port", ntohs(cfg.sidecar_port));
		cJSON_AddBoolToObject(x, "unix_hook", cfg.flags & WARDEN_CFG_F_UNIX_HOOK);
	} else {
		printf("%s\n", WARDEN_MAP_CONFIG);
		printf("  abi_version   %u\n", cfg.abi_version);
		printf("  deny_errno    %s\n", errno_label(cfg.deny_errno ? (int)cfg.deny_errno
								  : EPERM));
		if (cfg.sidecar_port)
			printf("  sidecar       127.0.0.1:%u, [::1]:%u, [::ffff:127.0.0.1]:%u\n",
			       ntohs(cfg.sidecar_port), ntohs(cfg.sidecar_port),
			       ntohs(cfg.sidecar_port));
		else
			printf("  sidecar       none\n");
		printf("  level_mask    0x%08x (cgroup depths holding entries:", cfg.level_mask);
		for (unsigned l = 0; l < 32; l++)
			if (cfg.level_mask & (1U << l))
				printf(" %u", l);
		printf(")\n  unix hook     %s\n", cfg.flags & WARDEN_CFG_F_UNIX_HOOK ? "attached"
										  : "not attached");
	}

	/* Enrolled cgroups, ids resolved to paths. */
	pins_map_info(p, PINS_ENROLLED, &mi);
	if (a->json) {
		x = cJSON_AddArrayToObject(maps, WARDEN_MAP_ENROLLED);
	} else {
		printf("\n%s: enrolled and exempt cgroups (%zu of %u)\n", WARDEN_MAP_ENROLLED, nen,
		       mi.max_entries);
		if (nen)
			printf("  %-12s %-9s %-5s %s\n", "CGROUP ID", "MODE", "LEVEL", "PATH");
	}
	for (size_t i = 0; i < nen; i++) {
		const char *path = cgroup_index_get(cg, en[i].cgroup_id);

		if (a->json) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddNumberToObject(e, "cgroup_id", (double)en[i].cgroup_id);
			if (path)
				cJSON_AddStringToObject(e, "cgroup", path);
			else
				cJSON_AddNullToObject(e, "cgroup");
			cJSON_AddStringToObject(e, "mode", enforcer_mode_name(en[i].e.mode));
			cJSON_AddNumberToObject(e, "level", en[i].e.level);
			cJSON_AddItemToArray(x, e);
		} else {
			printf("  %-12" PRIu64 " %-9s %-5u %s\n", (uint64_t)en[i].cgroup_id,
			       enforcer_mode_name(en[i].e.mode), en[i].e.level,
			       path ? path : "(gone: no such cgroup; 'wardenctl unenroll --id')");
		}
	}

	/* Protected destinations and the allowlist: prefixes in the tries, hosts in the exact
	 * maps; every rule is in exactly one map. */
	for (enum pins_map m = PINS_PROTECT4; m <= PINS_EXACT6; m++) {
		bool both = m == PINS_EXACT4 || m == PINS_EXACT6;
		struct pins_rule *r;
		size_t n;

		err = pins_rules(p, m, &r, &n);
		if (err < 0) {
			errmsg("reading %s: %s", pins_map_name(m), strerror(-err));
			rc = EXIT_FAIL;
			goto out;
		}
		if (a->json) {
			x = cJSON_AddArrayToObject(maps, pins_map_name(m));
		} else {
			printf("\n%s: %s (%zu)\n", pins_map_name(m), rule_map_title(m), n);
			if (n && both)
				printf("  %-6s %-8s %s\n", "RULE", "KIND", "DESTINATION");
			else if (n)
				printf("  %-6s %s\n", "RULE", "DESTINATION");
		}
		for (size_t i = 0; i < n; i++) {
			char d[128];

			dest_text(&r[i].dest, d, sizeof(d));
			if (a->json) {
				cJSON *e = cJSON_CreateObject();

				cJSON_AddStringToObject(e, "dest", d);
				cJSON_AddStringToObject(e, "kind", kind_name(r[i].kind));
				cJSON_AddNumberToObject(e, "rule_id", r[i].rule.id);
				cJSON_AddItemToArray(x, e);
			} else if (both) {
				printf("  %-6u %-8s %s\n", r[i].rule.id, kind_name(r[i].kind), d);
			} else {
				printf("  %-6u %s\n", r[i].rule.id, d);
			}
		}
		free(r);
	}

	if (a->json) {
		x = cJSON_AddArrayToObject(maps, WARDEN_MAP_UNIXPATH);
	} else {
		printf("\n%s: protected unix socket paths (%zu)\n", WARDEN_MAP_UNIXPATH, nup);
		if (nup)
			printf("  %-6s %s\n", "RULE", "PATH");
	}
	for (size_t i = 0; i < nup; i++) {
		if (a->json) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "path", up[i].path);
			cJSON_AddNumberToObject(e, "rule_id", up[i].rule.id);
			cJSON_AddItemToArray(x, e);
		} else {
			printf("  %-6u %s\n", up[i].rule.id, up[i].path);
		}
	}

	if (a->json) {
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_COUNTERS);
		for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++)
			cJSON_AddItemToObject(x, enforcer_hook_name(i), counters_json(&hook[i]));
		cJSON_AddItemToObject(x, "total", counters_json(&total));
	} else {
		printf("\n%s: per hook, summed over CPUs\n", WARDEN_MAP_COUNTERS);
		printf("  %-13s %12s %12s %12s %14s\n", "HOOK", "ALLOWED", "DENIED", "DROPPED",
		       "UNENROLLED");
		for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++)
			print_counters_row(enforcer_hook_name(i), &hook[i]);
		print_counters_row("total", &total);
	}

	/* The decision cache is per-CPU scratch (hashed tags, nothing to read); its epoch says
	 * when the enrolments last changed. */
	if (pins_epoch(p, &epoch) < 0)
		epoch = 0;
	pins_map_info(p, PINS_CGCACHE, &mi);
	if (a->json) {
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_EPOCH);
		snprintf(hex, sizeof(hex), "%016" PRIx64, epoch);
		cJSON_AddStringToObject(x, "epoch", hex);
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_CGCACHE);
		cJSON_AddNumberToObject(x, "slots_per_cpu", mi.max_entries);
	} else {
		printf("\n%s: %016" PRIx64 " (changes with every enrolment change)\n",
		       WARDEN_MAP_EPOCH, epoch);
		printf("%s: per-CPU cache of cgroup decisions, %u slots per CPU (tags only)\n",
		       WARDEN_MAP_CGCACHE, mi.max_entries);
	}

	pins_map_info(p, PINS_EVENTS, &mi);
	if (a->json) {
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_EVENTS);
		cJSON_AddNumberToObject(x, "bytes", mi.max_entries);
		rc = print_json(o);
	} else {
		printf("\n%s: deny-event ring buffer, %u bytes ('wardenctl events' reads it)\n",
		       WARDEN_MAP_EVENTS, mi.max_entries);
	}
out:
	cJSON_Delete(o);
	free(en);
	free(up);
	cgroup_index_free(cg);
	pins_close(p);
	return rc;
}

/* ---- events ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

struct events_ctx {
	struct enforcer *e;
	bool json;
	long count, seen;
};

static void event_text(struct enforcer *e, const struct warden_event *ev)
{
	cJSON *o = enforcer_event_json(e, ev);
	const char *keys[] = { "pid", "uid", "comm", "cgroup", "protocol", "reason", "rule_id",
			       "mode" };

	if (!o) {
		errmsg("out of memory");
		return;
	}
	/* One line, the record's fields in a fixed order: readable and grep-able. */
	printf("%s deny %s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "time")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(o, "hook")));
	if (cJSON_GetObjectItem(o, "dst"))
		printf(strchr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "dst")), ':') ?
		       " dst=[%s]:%d" : " dst=%s:%d",
		       cJSON_GetStringValue(cJSON_GetObjectItem(o, "dst")),
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "dport")));
	if (cJSON_IsTrue(cJSON_GetObjectItem(o, "v4mapped")))
		printf(" (v4-mapped)");
	if (cJSON_GetObjectItem(o, "path"))
		printf(" path=%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "path")));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cJSON *it = cJSON_GetObjectItem(o, keys[i]);

		if (!it)
			continue;
		if (cJSON_IsString(it))
			printf(" %s=%s", keys[i], it->valuestring);
		else
			printf(" %s=%.0f", keys[i], it->valuedouble);
	}
	if (!cJSON_GetObjectItem(o, "cgroup"))
		printf(" cgroup_id=%" PRIu64, (uint64_t)ev->cgroup_id);
	printf("\n");
	cJSON_Delete(o);
}

static int on_event(const struct warden_event *ev, void *arg)
{
	struct events_ctx *c = arg;

	if (c->json) {
		cJSON *o = enforcer_event_json(c->e, ev);
		char *text;

		if (!o)
			return -1;
		cJSON_AddStringToObject(o, "type", "ebpf_deny");
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!text)
			return -1;
		puts(text);
		cJSON_free(text);
	} else {
		event_text(c->e, ev);
	}
	fflush(stdout);
	c->seen++;
	return c->count && c->seen >= c->count;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_events(struct args *a)
{
	struct events_ctx ctx = { .json = a->json, .count = a->count };
	struct warden_counters hook[WARDEN_HOOK_MAX], before, after;
	enum pins_ring_mode mode = PINS_RING_CONSUME;
	struct sigaction sa = { .sa_handler = on_signal };
	bool wait = a->follow || a->count || a->timeout_s > 0;
	int64_t deadline = a->timeout_s > 0 ? now_ms() + (int64_t)(a->timeout_s * 1000) : -1;
	struct pins_ring *ring = NULL;
	struct holders h = { .n = 0 };
	struct pins *p = NULL;
	int rc, err;

	if (a->tap && a->consume) {
		errmsg("events: --tap and --consume exclude each other");
		return EXIT_USAGE;
	}
	rc = open_enforcer(a, &ctx.e);
	if (rc != EXIT_OK)
		return rc;
	rc = open_pins(a, &p);
	if (rc != EXIT_OK)
		goto out;
	/* Never steal events from the daemon's audit trail: tap when another process holds the
	 * ring, consume only when nobody else would. */
	if (a->tap) {
		mode = PINS_RING_TAP;
	} else if (!a->consume) {
		err = pins_map_holders(p, PINS_EVENTS, h.pid, 8, &h.n);
		mode = err < 0 || h.n ? PINS_RING_TAP : PINS_RING_CONSUME;
	}
	err = pins_ring_open(p, mode, &ring);
	if (err < 0) {
		errmsg("opening the event ring %s: %s", WARDEN_MAP_EVENTS, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	if (a->verbose)
		errmsg("reading %s as a %s", WARDEN_MAP_EVENTS,
		       mode == PINS_RING_TAP ? "tap (the daemon keeps every event)" : "consumer");
	if (pins_counters(p, hook, &before) < 0)
		memset(&before, 0, sizeof(before));
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	for (;;) {
		int64_t left;
		int n = pins_ring_read(ring, on_event, &ctx);

		if (n < 0) {
			errmsg("reading the event ring: %s", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
		if (!wait || g_stop || (ctx.count && ctx.seen >= ctx.count))
			break;
		left = deadline < 0 ? -1 : deadline - now_ms();
		if (deadline >= 0 && left <= 0)
			break;
		/* A tap gets no wakeup while the daemon lags behind: look again every 250 ms. */
		if (mode == PINS_RING_TAP && (left < 0 || left > 250))
			left = 250;
		n = pins_ring_wait(ring, (int)left);
		if (n < 0 && n != -EINTR) {
			errmsg("waiting for events: %s", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
	}
	if (pins_ring_gaps(ring))
		errmsg("the tap fell a whole ring behind %" PRIu64 " time%s: some events were "
		       "missed here (the daemon still received them)", pins_ring_gaps(ring),
		       pins_ring_gaps(ring) == 1 ? "" : "s");
	if (pins_counters(p, hook, &after) == 0 && after.events_dropped > before.events_dropped)
		errmsg("%" PRIu64 " deny events were dropped by the kernel meanwhile: the ring was "
		       "full (counted in %s)", (uint64_t)(after.events_dropped -
						       before.events_dropped), WARDEN_MAP_COUNTERS);
	if (rc == EXIT_OK && ctx.count && ctx.seen < ctx.count) {
		errmsg("events: %ld of %ld events before the %s", ctx.seen, ctx.count,
		       g_stop ? "interruption" : "timeout");
		rc = EXIT_FAIL;
	}
out:
	pins_ring_close(ring);
	pins_close(p);
	enforcer_close(ctx.e);
	return rc;
}

/* ---- policy changes ---------------------------------------------------------------------- */

/* The cgroup a command names: a path, --container or --pod. */
static int target_path(const struct args *a, struct enforcer *e, const char *cmd, char *buf,
		       size_t len)
{
	int given = (a->npos > 0) + !!a->container + !!a->pod + a->have_id, err;

	if (given != 1 || a->npos > 1) {
		errmsg("%s: name exactly one cgroup: a path, --container ID or --pod UID%s", cmd,
		       strcmp(cmd, "unenroll") == 0 ? " (or --id N)" : "");
		return -EINVAL;
	}
	if (a->npos) {
		snprintf(buf, len, "%s", a->pos[0]);
		return 0;
	}
	if (a->have_id)
		return 0;
	if (a->container)
		err = cgroup_resolve_container(enforcer_cgroup_root(e), a->container, buf, len);
	else
		err = cgroup_resolve_pod(enforcer_cgroup_root(e), a->pod, buf, len);
	if (err == -ENOENT)
		errmsg("%s: no cgroup under %s for %s %s", cmd, enforcer_cgroup_root(e),
		       a->container ? "container" : "pod", a->container ? a->container : a->pod);
	else if (err == -EEXIST)
		errmsg("%s: %s %s matches several cgroups: give more of it", cmd,
		       a->container ? "container id" : "pod UID", a->container ? a->container : a->pod);
	else if (err < 0)
		errmsg("%s: resolving %s: %s", cmd, a->container ? a->container : a->pod,
		       strerror(-err));
	return err;
}

static int enroll_like(struct args *a, const char *cmd, enum warden_mode mode, bool remove)
{
	char path[PATH_MAX];
	struct enforcer *e;
	uint64_t id = 0;
	bool relative;
	int rc, err;

	rc = open_enforcer(a, &e);
	if (rc != EXIT_OK)
		return rc;
	err = target_path(a, e, cmd, path, sizeof(path));
	if (err < 0) {
		rc = err == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	if (a->have_id) {
		id = a->id;
		snprintf(path, sizeof(path), "cgroup id %" PRIu64, id);
		err = enforcer_unenroll_id(e, id);
	} else {
		err = remove ? enforcer_unenroll(e, path) : enforcer_enroll(e, path, mode);
	}
	if (err < 0) {
		if (err == -ENOENT && remove)
			errmsg("%s: %s is not enrolled (or no such cgroup)", cmd, path);
		else if (err == -ENOENT)
			errmsg("%s: no such cgroup: %s", cmd, path);
		else if (err == -EINVAL)
			errmsg("%s: %s refused (reason above)", cmd, path);
		else
			errmsg("%s: %s: %s", cmd, path, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	/* Say which directory that was: relative paths are under the cgroup v2 root. */
	relative = path[0] != '/' && !a->have_id;
	if (remove)
		printf("unenrolled %s%s%s\n", relative ? enforcer_cgroup_root(e) : "",
		       relative ? "/" : "", path);
	else
		printf("%s %s%s%s (%s)\n", mode == WARDEN_MODE_EXEMPT ? "exempted" : "enrolled",
		       relative ? enforcer_cgroup_root(e) : "", relative ? "/" : "", path,
		       enforcer_mode_name(mode));
out:
	enforcer_close(e);
	return rc;
}

static int cmd_enroll(struct args *a)
{
	enum warden_mode mode = WARDEN_MODE_LOCKDOWN;

	if (a->mode && enforcer_mode_parse(a->mode, &mode) < 0) {
		errmsg("enroll: --mode must be lockdown or protect, not '%s'", a->mode);
		return EXIT_USAGE;
	}
	return enroll_like(a, "enroll", mode, false);
}

static int cmd_unenroll(struct args *a)
{
	return enroll_like(a, "unenroll", WARDEN_MODE_NONE, true);
}

static int cmd_exempt(struct args *a)
{
	return enroll_like(a, "exempt", WARDEN_MODE_EXEMPT, false);
}

enum rule_op { OP_PROTECT, OP_UNPROTECT, OP_ALLOW, OP_DISALLOW };

static int rule_cmd(struct args *a, const char *cmd, enum rule_op op)
{
	static const char *const done[] = { "protected", "unprotected", "allowed",
					    "removed from the allowlist" };
	struct enforcer *e;
	int rc, err, failed = 0;

	if (!a->npos && !a->unix_path) {
		errmsg("%s: give at least one destination (cidr[:port])%s", cmd,
		       op <= OP_UNPROTECT ? " or --unix PATH" : "");
		return EXIT_USAGE;
	}
	for (int i = 0; i < a->npos; i++) {
		struct enforcer_dest d;

		if (enforcer_dest_parse(a->pos[i], &d) < 0) {
			errmsg("%s: '%s' is not a destination: use a.b.c.d[/len][:port], "
			       "v6addr[/len] or [v6addr[/len]]:port", cmd, a->pos[i]);
			return EXIT_USAGE;
		}
	}
	rc = open_enforcer(a, &e);
	if (rc != EXIT_OK)
		return rc;
	if (a->unix_path) {
		err = op == OP_PROTECT ? enforcer_protect_unix(e, a->unix_path)
				       : enforcer_unprotect_unix(e, a->unix_path);
		if (err < 0) {
			errmsg("%s: unix path %s: %s", cmd, a->unix_path,
			       err == -ENOENT ? "not protected" : strerror(-err));
			failed++;
		} else {
			printf("%s unix path %s\n", done[op], a->unix_path);
		}
	}
	for (int i = 0; i < a->npos; i++) {
		switch (op) {
		case OP_PROTECT: err = enforcer_protect(e, a->pos[i]); break;
		case OP_UNPROTECT: err = enforcer_unprotect(e, a->pos[i]); break;
		case OP_ALLOW: err = enforcer_allow(e, a->pos[i]); break;
		default: err = enforcer_disallow(e, a->pos[i]); break;
		}
		if (err < 0) {
			errmsg("%s: %s: %s", cmd, a->pos[i], err == -ENOENT ? "no such entry" :
			       err == -E2BIG || err == -ENOSPC ? "the map is full" : strerror(-err));
			failed++;
		} else {
			struct enforcer_dest d;
			char canon[128];

			/* Say what was stored: the canonical form 'maps' will show. */
			if (enforcer_dest_parse(a->pos[i], &d) < 0 ||
			    enforcer_dest_format(&d, canon, sizeof(canon)) < 0)
				snprintf(canon, sizeof(canon), "%s", a->pos[i]);
			printf("%s %s\n", done[op], canon);
		}
	}
	enforcer_close(e);
	return failed ? EXIT_FAIL : EXIT_OK;
}

static int cmd_protect(struct args *a) { return rule_cmd(a, "protect", OP_PROTECT); }
static int cmd_unprotect(struct args *a) { return rule_cmd(a, "unprotect", OP_UNPROTECT); }
static int cmd_allow(struct args *a) { return rule_cmd(a, "allow", OP_ALLOW); }
static int cmd_disallow(struct args *a) { return rule_cmd(a, "disallow", OP_DISALLOW); }

/* ---- verify ------------------------------------------------------------------------------ */

struct verify {
	const struct args *a;
	struct enforcer *e;
	struct pins *p;
	struct pins_ring *ring;
	enum warden_mode mode;
	char cgroup[PATH_MAX];
	bool cgroup_made, enrolled, protected_added;
	char dest[64];
	int listen_fd;
	uint16_t port;
	pid_t child;
	int failures;
	cJSON *checks;		/* --json */
};

static void check(struct verify *v, bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check(struct verify *v, bool ok, const char *name, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	v->failures += !ok;
	if (v->checks) {
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "check", name);
		cJSON_AddBoolToObject(c, "ok", ok);
		cJSON_AddStringToObject(c, "detail", detail);
		cJSON_AddItemToArray(v->checks, c);
	} else {
		printf("verify: %-4s %s: %s\n", ok ? "ok" : "FAIL", name, detail);
	}
}

/* What the child reports back through the pipe. */
struct child_report {
	int join_err;		/* joining the cgroup */
	int v4_err;		/* connect(127.0.0.1:port) */
	int mapped_err;		/* connect(::ffff:127.0.0.1:port); EAFNOSUPPORT: no IPv6 */
};

static int try_connect(int family, uint16_t port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return errno;
	if (family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		err = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ? errno : 0;
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
		err = connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0 ? errno : 0;
	}
	close(fd);
	return err;
}

static void verify_child(const char *cgroup, uint16_t port, int wfd)
{
	struct child_report r = { 0 };
	char procs[PATH_MAX + 16];
	int fd;
	ssize_t w;

	prctl(PR_SET_NAME, "wardenctl-vrfy");
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		r.join_err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (!r.join_err) {
		r.v4_err = try_connect(AF_INET, port);
		r.mapped_err = try_connect(AF_INET6, port);
	}
	w = write(wfd, &r, sizeof(r));
	_exit(w == (ssize_t)sizeof(r) ? 0 : 1);
}

struct find_ctx {
	pid_t pid;
	uint16_t port;
	bool found;
	struct warden_event ev;
};

static int find_event(const struct warden_event *ev, void *arg)
{
	struct find_ctx *f = arg;

	if ((pid_t)ev->tgid == f->pid && ev->hook == WARDEN_HOOK_CONNECT4 && ev->dport == f->port) {
		f->ev = *ev;
		f->found = true;
		return 1;
	}
	return 0;
}

static void verify_cleanup(struct verify *v)
{
	int err;

	if (v->protected_added && (err = enforcer_unprotect(v->e, v->dest)) < 0)
		errmsg("verify: cleanup: removing %s: %s", v->dest, strerror(-err));
	if (v->enrolled && (err = enforcer_unenroll(v->e, v->cgroup)) < 0)
		errmsg("verify: cleanup: unenrolling %s: %s", v->cgroup, strerror(-err));
	if (v->cgroup_made) {
		/* The child has been reaped; the kernel may take a moment to let the cgroup go. */
		for (int i = 0; i < 100 && rmdir(v->cgroup) < 0 && errno == EBUSY; i++)
			usleep(10000);
		if (access(v->cgroup, F_OK) == 0)
			errmsg("verify: cleanup: cannot remove %s: %s", v->cgroup, strerror(errno));
	}
	if (v->listen_fd >= 0)
		close(v->listen_fd);
}

static int verify_run(struct verify *v)
{
	struct warden_counters hook[WARDEN_HOOK_MAX], tot, hook2[WARDEN_HOOK_MAX];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct warden_config cfg;
	struct child_report rep = { 0 };
	struct find_ctx fc = { 0 };
	int pipefd[2] = { -1, -1 }, status, err, expect;
	ssize_t got;

	err = pins_config(v->p, &cfg);
	if (err < 0) {
		check(v, false, "config", "reading %s: %s", WARDEN_MAP_CONFIG, strerror(-err));
		return -1;
	}
	expect = cfg.deny_errno ? (int)cfg.deny_errno : EPERM;

	/* A temporary listener on an ephemeral loopback port: the destination to refuse. */
	v->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (v->listen_fd < 0 || bind(v->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(v->listen_fd, 8) < 0 ||
	    getsockname(v->listen_fd, (struct sockaddr *)&sin, &slen) < 0) {
		check(v, false, "listener", "127.0.0.1: %s", strerror(errno));
		return -1;
	}
	v->port = ntohs(sin.sin_port);
	snprintf(v->dest, sizeof(v->dest), "127.0.0.1/32:%u", v->port);
	err = try_connect(AF_INET, v->port);
	check(v, err == 0, "control", "connect to 127.0.0.1:%u from wardenctl's own cgroup: %s%s",
	      v->port, err ? strerror(err) : "allowed",
	      err ? " (is wardenctl itself in an enforced cgroup? run verify from the host)" : "");
	if (err)
		return -1;

	/* The temporary cgroup, enrolled, with the listener protected (protect mode). */
	snprintf(v->cgroup, sizeof(v->cgroup), "%s/mcpwarden-verify-%d",
		 enforcer_cgroup_root(v->e), (int)getpid());
	if (mkdir(v->cgroup, 0755) < 0) {
		check(v, false, "cgroup", "mkdir %s: %s", v->cgroup, strerror(errno));
		return -1;
	}
	v->cgroup_made = true;
	err = enforcer_enroll(v->e, v->cgroup, v->mode);
	check(v, err == 0, "enroll", "%s in %s mode%s%s", v->cgroup, enforcer_mode_name(v->mode),
	      err ? ": " : "", err ? strerror(-err) : "");
	if (err)
		return -1;
	v->enrolled = true;
	if (v->mode == WARDEN_MODE_PROTECT) {
		err = enforcer_protect(v->e, v->dest);
		check(v, err == 0, "protect", "%s (the temporary listener)%s%s", v->dest,
		      err ? ": " : "", err ? strerror(-err) : "");
		if (err)
			return -1;
		v->protected_added = true;
	}

	err = pins_ring_open(v->p, PINS_RING_TAP, &v->ring);
	if (err < 0) {
		check(v, false, "events", "opening the event ring: %s", strerror(-err));
		return -1;
	}
	pins_ring_skip(v->ring);
	if ((err = pins_counters(v->p, hook, &tot)) < 0) {
		check(v, false, "counters", "%s", strerror(-err));
		return -1;
	}

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		check(v, false, "child", "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	v->child = fork();
	if (v->child < 0) {
		check(v, false, "child", "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (v->child == 0) {
		close(pipefd[0]);
		verify_child(v->cgroup, v->port, pipefd[1]);
	}
	close(pipefd[1]);
	got = read(pipefd[0], &rep, sizeof(rep));
	close(pipefd[0]);
	while (waitpid(v->child, &status, 0) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof(rep)) {
		check(v, false, "child", "the test process (pid %d) did not report", (int)v->child);
		return -1;
	}
	if (rep.join_err) {
		check(v, false, "child", "joining %s: %s", v->cgroup, strerror(rep.join_err));
		return -1;
	}
	check(v, rep.v4_err == expect, "refused",
	      "connect to 127.0.0.1:%u from the enrolled cgroup (pid %d): %s%s%s", v->port,
	      (int)v->child, rep.v4_err ? errno_label(rep.v4_err) : "ALLOWED",
	      rep.v4_err == expect ? "" : ", expected ", rep.v4_err == expect ? "" :
	      errno_label(expect));
	if (rep.mapped_err == EAFNOSUPPORT)
		check(v, true, "refused-v4mapped", "skipped: no IPv6 in this network namespace");
	else
		check(v, rep.mapped_err == expect, "refused-v4mapped",
		      "connect to [::ffff:127.0.0.1]:%u: %s%s%s", v->port,
		      rep.mapped_err ? errno_label(rep.mapped_err) : "ALLOWED",
		      rep.mapped_err == expect ? "" : ", expected ",
		      rep.mapped_err == expect ? "" : errno_label(expect));

	if ((err = pins_counters(v->p, hook2, &tot)) < 0) {
		check(v, false, "counters", "%s", strerror(-err));
		return -1;
	}
	check(v, hook2[WARDEN_HOOK_CONNECT4].denied > hook[WARDEN_HOOK_CONNECT4].denied,
	      "counted", "%s connect4 denied %" PRIu64 " -> %" PRIu64, WARDEN_MAP_COUNTERS,
	      (uint64_t)hook[WARDEN_HOOK_CONNECT4].denied,
	      (uint64_t)hook2[WARDEN_HOOK_CONNECT4].denied);
	fc.pid = v->child;
	fc.port = v->port;
	err = pins_ring_read(v->ring, find_event, &fc);
	if (err < 0) {
		check(v, false, "event", "reading the event ring: %s", strerror(-err));
	} else if (fc.found) {
		char comm[WARDEN_COMM_LEN + 1];

		memcpy(comm, fc.ev.comm, WARDEN_COMM_LEN);
		comm[WARDEN_COMM_LEN] = '\0';
		check(v, fc.ev.reason == (v->mode == WARDEN_MODE_PROTECT ? WARDEN_REASON_PROTECTED
						     : WARDEN_REASON_LOCKDOWN),
		      "event", "deny event: pid %u comm %s hook %s dst 127.0.0.1:%u reason %s",
		      fc.ev.tgid, comm, enforcer_hook_name(fc.ev.hook), fc.ev.dport,
		      enforcer_reason_name(fc.ev.reason));
	} else if (hook2[WARDEN_HOOK_CONNECT4].events_dropped >
		   hook[WARDEN_HOOK_CONNECT4].events_dropped) {
		check(v, false, "event", "the deny event was dropped: the ring %s is full (is "
		      "the daemon consuming it?)", WARDEN_MAP_EVENTS);
	} else {
		check(v, false, "event", "no deny event for pid %d in %s", (int)v->child,
		      WARDEN_MAP_EVENTS);
	}
	return 0;
}

static int cmd_verify(struct args *a)
{
	struct verify v = { .a = a, .listen_fd = -1, .mode = WARDEN_MODE_PROTECT };
	sigset_t block, old;
	int rc;

	if (a->mode && enforcer_mode_parse(a->mode, &v.mode) < 0) {
		errmsg("verify: --mode must be lockdown or protect, not '%s'", a->mode);
		return EXIT_USAGE;
	}
	rc = open_enforcer(a, &v.e);
	if (rc != EXIT_OK)
		return rc;
	rc = open_pins(a, &v.p);
	if (rc != EXIT_OK)
		goto out;
	if (a->json)
		v.checks = cJSON_CreateArray();
	/* The temporary enrolment must never outlive us: no signal interrupts until cleanup. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	verify_run(&v);
	verify_cleanup(&v);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (v.checks) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddBoolToObject(o, "ok", v.failures == 0);
		cJSON_AddStringToObject(o, "mode", enforcer_mode_name(v.mode));
		cJSON_AddItemToObject(o, "checks", v.checks);
		print_json(o);
		cJSON_Delete(o);
	} else if (v.failures) {
		printf("verify: FAILED: %d check%s failed; enforcement is NOT working as "
		       "configured\n", v.failures, v.failures == 1 ? "" : "s");
	} else {
		printf("verify: OK: an enrolled cgroup is refused; temporary cgroup and rules "
		       "removed\n");
	}
	rc = v.failures ? EXIT_FAIL : EXIT_OK;
out:
	pins_ring_close(v.ring);
	pins_close(v.p);
	enforcer_close(v.e);
	return rc;
}

/* ---- uninstall --------------------------------------------------------------------------- */

static int cmd_uninstall(struct args *a)
{
	struct holders h = { .n = 0 };
	struct pins *p = NULL;
	int err;

	if (!a->yes) {
		errmsg("uninstall stops enforcement for every enrolled cgroup: add --yes to confirm");
		return EXIT_USAGE;
	}
	/* A pin directory of another ABI cannot be decoded but can be removed: that is the
	 * remedy for it. */
	err = pins_open(a->pin_dir, &p);
	if (err < 0 && err != -EPROTO)
		return pins_error(a->pin_dir, err);
	if (p && pins_map_holders(p, PINS_CONFIG, h.pid, 8, &h.n) < 0)
		h.n = 0;
	pins_close(p);
	err = enforcer_destroy_pins(a->pin_dir);
	if (err < 0) {
		errmsg("removing the pins under %s: %s", a->pin_dir, strerror(-err));
		return EXIT_FAIL;
	}
	printf("removed the pins under %s\n", a->pin_dir);
	if (!h.n) {
		printf("enforcement is detached\n");
		return EXIT_OK;
	}
	/* Links live while any fd refers to them: a running daemon keeps enforcing. */
	printf("still held open by");
	for (size_t i = 0; i < h.n && i < 8; i++) {
		char comm[32];

		holder_comm(h.pid[i], comm, sizeof(comm));
		printf("%s %s (pid %d)", i ? "," : "", comm, (int)h.pid[i]);
	}
	printf(": its programs stay attached until it exits (stop mcpwarden first to end "
	       "enforcement now)\n");
	return EXIT_OK;
}

/* ---- keys, usage: the daemon's admin API ------------------------------------------------ */

/* Never runs: main() hands these commands, with their own options, to adminclient_main(). */
static int cmd_admin_api(struct args *a)
{
	return EXIT_USAGE;
}

/* ---- help -------------------------------------------------------------------------------- */

static int cmd_help(struct args *a);

static const struct cmd cmds[] = {
	{ "status", cmd_status, "j", "status [--json]",
	  "programs, links, pins, kernel features, enrolment and counters",
	  "Shows whether enforcement is loaded and healthy: each hook's pinned link (link and\n"
	  "program ids, program tag, where it is attached, run statistics when\n"
	  "kernel.bpf_stats_enabled=1), the processes holding the event ring (the daemon), the\n"
	  "kernel features enforcement relies on (ring buffer, the unix-socket connect hook of\n"
	  "Linux 6.7+, bpf_stats), the number of enrolled cgroups by mode and rules, and the\n"
	  "allowed/denied/dropped counters. Exits 1 when a hook the kernel supports is not\n"
	  "attached." },
	{ "maps", cmd_maps, "j", "maps [--json]",
	  "every enforcement map as a readable table",
	  "Dumps warden_config, warden_enrolled (cgroup ids resolved to paths by scanning the\n"
	  "cgroup v2 tree; '(gone)' for removed cgroups), the protected destinations and the\n"
	  "allowlist (v4 and v6, as cidr[:port] with rule ids), the protected unix paths and\n"
	  "the per-hook counters. With --json: one object, keyed by map name." },
	{ "events", cmd_events, "jfnt\x04\x05",
	  "events [--follow] [--count N] [--timeout SEC] [--tap|--consume] [--json]",
	  "the deny-event stream from the pinned ring buffer",
	  "Prints one line per refused connect, send or socket (time, hook, destination, pid,\n"
	  "uid, comm, cgroup, protocol, reason, rule, mode); with --json, one JSON object per\n"
	  "line, the daemon's \"ebpf_deny\" audit record. Without --follow, --count or\n"
	  "--timeout it prints what is waiting in the ring and exits.\n"
	  "\n"
	  "The ring has one consumer position. When another process (the daemon) holds the ring,\n"
	  "wardenctl only taps it: it reads with a private cursor and never takes events from\n"
	  "the daemon's audit trail (if it falls a whole ring behind it says how often it\n"
	  "skipped ahead). When nobody else holds it, wardenctl consumes: events it prints are\n"
	  "gone from the ring. --tap and --consume force either way." },
	{ "enroll", cmd_enroll, "cpm", "enroll (PATH | --container ID | --pod UID) "
				       "[--mode lockdown|protect]",
	  "enforce on a cgroup (and everything below it)",
	  "PATH is a cgroup directory, absolute or relative to the cgroup v2 root. --container\n"
	  "takes a container id (or a unique prefix of at least 12 hex digits), --pod a pod\n"
	  "UID; both are found in the cgroupfs and systemd kubepods layouts. lockdown (the\n"
	  "default) allows only the sidecar endpoints and the allowlist; protect refuses the\n"
	  "protected destinations and allows the rest. Enrolling again changes the mode. The\n"
	  "cgroup v2 root itself is refused: it would enforce on the whole host.\n"
	  "Changes are live at once but runtime only: the daemon re-applies its config when it\n"
	  "starts." },
	{ "unenroll", cmd_unenroll, "cp\x02", "unenroll (PATH | --container ID | --pod UID | "
					      "--id N)",
	  "stop enforcing on a cgroup (also removes an exemption)",
	  "--id removes the entry of a cgroup that no longer exists (see 'maps')." },
	{ "exempt", cmd_exempt, "cp", "exempt (PATH | --container ID | --pod UID)",
	  "never enforce on a cgroup, even below an enrolled one (the sidecar's)",
	  "The nearest entry to a task wins, so the sidecar container's cgroup can be exempt\n"
	  "inside an enrolled pod cgroup. Remove with 'unenroll'." },
	{ "protect", cmd_protect, "\x03", "protect (CIDR[:PORT]... | --unix PATH)",
	  "add protected destinations (refused to protect-mode cgroups)",
	  "Destinations: a.b.c.d[/len][:port], v6addr[/len], [v6addr[/len]]:port; no port means\n"
	  "every port; ::ffff:a.b.c.d is stored as IPv4. --unix protects a unix socket path\n"
	  "(@name for an abstract one) in both modes; it needs the Linux 6.7+ hook." },
	{ "unprotect", cmd_unprotect, "\x03", "unprotect (CIDR[:PORT]... | --unix PATH)",
	  "remove protected destinations", "Exits 1 when an entry was not there." },
	{ "allow", cmd_allow, "", "allow CIDR[:PORT]...",
	  "add allowlist entries (lockdown: allowed; protect: exceptions to protected ranges)",
	  "Same destination syntax as 'protect'. Typical: the cluster DNS, 10.96.0.10/32:53." },
	{ "disallow", cmd_disallow, "", "disallow CIDR[:PORT]...",
	  "remove allowlist entries", "Exits 1 when an entry was not there." },
	{ "verify", cmd_verify, "jm", "verify [--mode protect|lockdown] [--json]",
	  "self-test: prove that an enrolled cgroup is refused",
	  "Creates a temporary cgroup under the cgroup v2 root and a listener on an ephemeral\n"
	  "127.0.0.1 port, enrolls the cgroup (protect mode with the listener protected by\n"
	  "default; lockdown with --mode lockdown), checks that a connect from wardenctl's own\n"
	  "cgroup succeeds, forks a child into the cgroup whose connects to 127.0.0.1:PORT and\n"
	  "[::ffff:127.0.0.1]:PORT must be refused with the configured errno, then checks the\n"
	  "deny counter and the deny event (pid, comm, destination) without taking it from the\n"
	  "daemon. Everything temporary is removed, also on failure; signals wait until then.\n"
	  "Exits 0 when every check passed, 1 otherwise." },
	{ "uninstall", cmd_uninstall, "\x06", "uninstall --yes",
	  "remove every pin: enforcement stops",
	  "Unpins the links and maps under the pin directory, which detaches the programs once\n"
	  "no process holds them (a running daemon does: stop it first). Also the way to clear\n"
	  "a pin directory left by a version with another map layout (ABI)." },
	{ "keys", cmd_admin_api, "", "keys (create [--name N] [--team T] [--policy P] "
				     "[--expires TIME] [--id ID] | list | show ID | revoke ID) "
				     "[--admin URL] [--token-file FILE] [--json]",
	  "virtual keys, through the daemon's admin API",
	  "create prints the new key once (only its hash is kept); list, show and revoke take\n"
	  "effect on the running daemon at once. --admin URL is the admin listener (default\n"
	  "$MCPWARDEN_ADMIN_URL, else http://127.0.0.1:8081); the admin token is read from\n"
	  "--token-file or $MCPWARDEN_ADMIN_TOKEN, never from the command line. Tables by\n"
	  "default, the API's JSON with --json. See docs/admin-api.md." },
	{ "usage", cmd_admin_api, "", "usage [reset] [--key ID | --team NAME] [--admin URL] "
				      "[--token-file FILE] [--json]",
	  "budget usage per key and team, through the daemon's admin API",
	  "One row per budget: scope, budget, period, spent, reserved, limit, remaining and\n"
	  "when it resets. 'usage reset --key ID' (or --team NAME) zeroes the current period's\n"
	  "counters, durably. Same --admin and token rules as 'keys'." },
	{ "help", cmd_help, "", "help [COMMAND]", "this manual, or a command's", "" },
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void usage_line(FILE *f)
{
	fprintf(f, "usage: wardenctl [--pin-dir DIR] [--cgroup-root DIR] COMMAND [ARGS] "
		   "(wardenctl --help)\n");
}

static void print_manual(void)
{
	printf("NAME\n"
	       "    wardenctl - inspect and steer mcpwarden's kernel enforcement\n"
	       "\n"
	       "SYNOPSIS\n"
	       "    wardenctl [OPTIONS] COMMAND [ARGS]\n"
	       "    wardenctl COMMAND --help\n"
	       "\n"
	       "DESCRIPTION\n"
	       "    mcpwarden attaches eBPF programs at the cgroup v2 root and pins them, with its\n"
	       "    maps, under a bpffs directory, so enforcement outlives the daemon. wardenctl\n"
	       "    reads that state from the pins alone - the daemon need not run - and changes\n"
	       "    it through the same code the daemon uses. Needs root (CAP_BPF, CAP_SYS_ADMIN).\n"
	       "\n"
	       "COMMANDS\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		printf("    %-10s %s\n", cmds[i].name, cmds[i].summary);
	printf("\n"
	       "OPTIONS\n"
	       "    -d, --pin-dir DIR     the pin directory (default " WARDEN_PIN_DIR_DEFAULT ")\n"
	       "        --cgroup-root DIR the cgroup v2 root (default: /sys/fs/cgroup when it is\n"
	       "                          cgroup2, else /sys/fs/cgroup/unified)\n"
	       "    -j, --json            JSON output (status, maps, events, verify)\n"
	       "    -v, --verbose         say more (and show the enforcer's debug log)\n"
	       "    -h, --help            this manual; after a command, that command's\n"
	       "    -V, --version         print the version\n"
	       "    Command options are listed by 'wardenctl COMMAND --help'.\n"
	       "\n"
	       "EXIT STATUS\n"
	       "    0  success (verify: every check passed; status: every hook attached)\n"
	       "    1  the command failed, verify found enforcement not working, status found a\n"
	       "       hook detached, or events --count was not reached\n"
	       "    2  usage error\n"
	       "    3  enforcement is not loaded (no pins under the pin directory)\n"
	       "    4  permission denied (not root)\n"
	       "\n"
	       "EXAMPLES\n"
	       "    wardenctl status\n"
	       "    wardenctl enroll --container 3f2a9c1e5b7d --mode lockdown\n"
	       "    wardenctl enroll kubepods.slice/agent.scope --mode protect\n"
	       "    wardenctl protect 10.20.0.0/16:443 '[fd00::/8]:443'\n"
	       "    wardenctl allow 10.96.0.10/32:53\n"
	       "    wardenctl maps --json | jq '.maps.warden_enrolled'\n"
	       "    wardenctl events --follow\n"
	       "    wardenctl events --json --count 1 --timeout 10\n"
	       "    wardenctl verify\n"
	       "\n"
	       "SEE ALSO\n"
	       "    docs/wardenctl.md, bpftool-link(8), bpftool-map(8)\n");
}

static void print_cmd_help(const struct cmd *c)
{
	printf("NAME\n    wardenctl %s - %s\n\nSYNOPSIS\n    wardenctl [OPTIONS] %s\n", c->name,
	       c->summary, c->synopsis);
	if (c->details[0]) {
		const char *s = c->details;

		printf("\nDESCRIPTION\n");
		while (*s) {
			size_t n = strcspn(s, "\n");

			printf(n ? "    %.*s\n" : "\n", (int)n, s);
			s += n + (s[n] == '\n');
		}
	}
	printf("\nOPTIONS\n");
	for (const char *o = c->opts; *o; o++) {
		switch (*o) {
		case 'j': printf("    -j, --json          JSON output\n"); break;
		case 'c': printf("    -c, --container ID  a container id (or unique prefix)\n"); break;
		case 'p': printf("    -p, --pod UID       a pod UID\n"); break;
		case 'm': printf("    -m, --mode MODE     lockdown or protect\n"); break;
		case 'f': printf("    -f, --follow        keep reading until interrupted\n"); break;
		case 'n': printf("    -n, --count N       stop after N events (exit 1 if fewer)\n");
			  break;
		case 't': printf("    -t, --timeout SEC   stop after SEC seconds\n"); break;
		case '\x02': printf("        --id N          the cgroup id (for a removed cgroup)\n");
			     break;
		case '\x03': printf("        --unix PATH     a unix socket path (@name: abstract)\n");
			     break;
		case '\x04': printf("        --tap           never move the consumer position\n");
			     break;
		case '\x05': printf("        --consume       consume events (no daemon running)\n");
			     break;
		case '\x06': printf("        --yes           confirm\n");
			     break;
		}
	}
	printf("    and the global options: --pin-dir DIR, --cgroup-root DIR, --verbose\n");
	printf("\nEXIT STATUS\n    0 success, 1 failure, 2 usage, 3 not loaded, 4 not root "
	       "(see wardenctl --help)\n");
}

static int cmd_help(struct args *a)
{
	const struct cmd *c = a->npos ? find_cmd(a->pos[0]) : NULL;

	if (a->npos && !c) {
		errmsg("unknown command '%s'", a->pos[0]);
		return EXIT_USAGE;
	}
	if (c)
		print_cmd_help(c);
	else
		print_manual();
	return EXIT_OK;
}

/* ---- main -------------------------------------------------------------------------------- */

static char opt_letter(int id)
{
	switch (id) {
	case O_CGROUP_ROOT: return '\x01';
	case O_ID: return '\x02';
	case O_UNIX: return '\x03';
	case O_TAP: return '\x04';
	case O_CONSUME: return '\x05';
	case O_YES: return '\x06';
	default: return (char)id;
	}
}

static const char *opt_name(int id)
{
	for (const struct option *o = all_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

static int parse_number(const char *opt, const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > max) {
		errmsg("--%s: '%s' is not a number between 0 and %.0f", opt, s, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Parse argv: with c NULL the options before the command (stopping at the command name),
 * else the command's options, mixed in any order with its arguments (getopt moves those to
 * the end: they start at optind afterwards). Returns EXIT_OK or EXIT_USAGE. */
static int parse_args(const struct cmd *c, int argc, char **argv, struct args *a)
{
	const char *shorts = c ? "d:jhvVc:p:m:fn:t:" : "+d:jhvVc:p:m:fn:t:";
	int opt;

	optind = 0;	/* 0, not 1: glibc then forgets the previous scan's permutation state */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, all_opts, NULL)) != -1) {
		double num;

		if (opt == '?' || opt == ':') {
			if (optopt)
				errmsg("%s: unknown option or missing value: -%c",
				       c ? c->name : "wardenctl", optopt);
			else
				errmsg("%s: unknown option or missing value: %s",
				       c ? c->name : "wardenctl", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (!strchr(COMMON_OPTS, opt_letter(opt)) &&
		    (!c || !strchr(c->opts, opt_letter(opt)))) {
			if (!c && opt == O_JSON) {
				a->json = true;	/* wardenctl --json status */
				continue;
			}
			errmsg("--%s is not an option of '%s' (see wardenctl %s --help)",
			       opt_name(opt), c ? c->name : "wardenctl", c ? c->name : "");
			return EXIT_USAGE;
		}
		switch (opt) {
		case O_PIN_DIR: a->pin_dir = optarg; break;
		case O_CGROUP_ROOT: a->cgroup_root = optarg; break;
		case O_JSON: a->json = true; break;
		case O_HELP: a->help = true; break;
		case O_VERBOSE: a->verbose = true; break;
		case O_VERSION: printf("wardenctl %s\n", WARDEN_VERSION); exit(EXIT_OK);
		case O_CONTAINER: a->container = optarg; break;
		case O_POD: a->pod = optarg; break;
		case O_MODE: a->mode = optarg; break;
		case O_UNIX: a->unix_path = optarg; break;
		case O_FOLLOW: a->follow = true; break;
		case O_TAP: a->tap = true; break;
		case O_CONSUME: a->consume = true; break;
		case O_YES: a->yes = true; break;
		case O_ID:
			if (parse_number(opt_name(opt), optarg, 1.8e19, &num) < 0)
				return EXIT_USAGE;
			a->id = strtoull(optarg, NULL, 10);
			a->have_id = true;
			break;
		case O_COUNT:
			if (parse_number(opt_name(opt), optarg, 1e9, &num) < 0 || num < 1 ||
			    num != (long)num) {
				errmsg("--count wants a whole number of events, at least 1");
				return EXIT_USAGE;
			}
			a->count = (long)num;
			break;
		case O_TIMEOUT:
			if (parse_number(opt_name(opt), optarg, 1e7, &num) < 0 || num <= 0) {
				errmsg("--timeout wants a positive number of seconds");
				return EXIT_USAGE;
			}
			a->timeout_s = num;
			break;
		}
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct args a = { .pin_dir = WARDEN_PIN_DIR_DEFAULT };
	const struct cmd *c;
	int rc, cmd_at;

	alloc_init();
	/* Options before the command. */
	rc = parse_args(NULL, argc, argv, &a);
	if (rc != EXIT_OK) {
		usage_line(stderr);
		return rc;
	}
	cmd_at = optind;
	if (cmd_at >= argc) {
		if (a.help) {
			print_manual();
			return EXIT_OK;
		}
		usage_line(stderr);
		return EXIT_USAGE;
	}
	c = find_cmd(argv[cmd_at]);
	if (!c) {
		errmsg("unknown command '%s'", argv[cmd_at]);
		usage_line(stderr);
		return EXIT_USAGE;
	}
	/* keys and usage talk to the daemon's admin API and parse their own options. */
	if (c->run == cmd_admin_api)
		return adminclient_main(argc - cmd_at, argv + cmd_at);
	/* The command's own options, in any order with its arguments. */
	a.cmd = c->name;
	rc = parse_args(c, argc - cmd_at, argv + cmd_at, &a);
	if (rc != EXIT_OK)
		return rc;
	a.pos = argv + cmd_at + optind;
	a.npos = argc - cmd_at - optind;
	if (a.help) {
		print_cmd_help(c);
		return EXIT_OK;
	}
	/* The enforcer's own log lines (stderr) add the reason behind a refused change. */
	log_set_level(a.verbose ? LOG_DEBUG : LOG_ERROR);
	return c->run(&a);
}
