/* common: opening the pins and the enforcer, errors as an operator reads them, output. */
#include "wardenctl.h"

/* ---- output helpers ---------------------------------------------------------------------- */

void ctl_errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("wardenctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ctl_print_json(cJSON *o)
{
	char *text = o ? cJSON_Print(o) : NULL;

	if (!text) {
		ctl_errmsg("out of memory");
		return EXIT_FAIL;
	}
	puts(text);
	cJSON_free(text);
	return EXIT_OK;
}

const char *ctl_errno_label(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "?";
}

/* Map a failure to open the pins to the message and exit status an operator acts on. */
int ctl_pins_error(const char *dir, int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
		ctl_errmsg("enforcement is not loaded (no pins under %s): start mcpwarden or run "
		       "'wardenctl status' after it has started", dir);
		return EXIT_NOT_LOADED;
	case -EPERM:
	case -EACCES:
		if (geteuid() != 0)
			ctl_errmsg("permission denied reading %s: wardenctl must run as root (it needs "
			       "CAP_BPF and CAP_SYS_ADMIN to open pinned BPF objects)", dir);
		else
			ctl_errmsg("permission denied reading %s: this root lacks CAP_BPF/CAP_SYS_ADMIN "
			       "(a container without privileges?)", dir);
		return EXIT_PRIVILEGE;
	case -EPROTO:
		ctl_errmsg("the maps pinned under %s do not have this wardenctl's layout (ABI %d): "
		       "the daemon and wardenctl come from different versions; to upgrade, run "
		       "'wardenctl uninstall --yes' (enforcement stops) and restart mcpwarden, "
		       "which installs the new maps and refills them from its config", dir,
		       WARDEN_ABI_VERSION);
		return EXIT_FAIL;
	default:
		ctl_errmsg("cannot open the pins under %s: %s", dir, strerror(-err));
		return EXIT_FAIL;
	}
}

int ctl_open_pins(const struct args *a, struct pins **out)
{
	int err = pins_open(a->pin_dir, out);

	return err < 0 ? ctl_pins_error(a->pin_dir, err) : EXIT_OK;
}

/* The enforcer, adopting the pins: for changes, and for event records in the daemon's format.
 * The pins are checked first so the common failures get the clear messages above. */
int ctl_open_enforcer(const struct args *a, struct enforcer **out)
{
	struct enforcer_opts o = {
		.pin_dir = a->pin_dir,
		.cgroup_root = a->cgroup_root,
		.mode = ENFORCER_ADOPT,
	};
	struct pins *p;
	int rc = ctl_open_pins(a, &p), err;

	*out = NULL;
	if (rc != EXIT_OK)
		return rc;
	pins_close(p);
	err = enforcer_open(&o, out);
	if (err == -EOPNOTSUPP) {
		ctl_errmsg("no cgroup v2 hierarchy (looked at /sys/fs/cgroup and "
		       "/sys/fs/cgroup/unified); use --cgroup-root");
		return EXIT_FAIL;
	}
	return err < 0 ? ctl_pins_error(a->pin_dir, err) : EXIT_OK;
}

/* The cgroup v2 root used to print cgroup paths. */
int ctl_cgroup_root(const struct args *a, char *buf, size_t len)
{
	if (a->cgroup_root) {
		snprintf(buf, len, "%s", a->cgroup_root);
		return 0;
	}
	return cgroup_detect_root(buf, len);
}

struct cgroup_index *ctl_scan_cgroups(const struct args *a)
{
	struct cgroup_index *c = NULL;
	char root[PATH_MAX];

	if (ctl_cgroup_root(a, root, sizeof(root)) || cgroup_index_new(&c))
		return NULL;	/* NULL: paths are shown as unknown */
	if (cgroup_index_scan(c, root, 64) < 0) {
		cgroup_index_free(c);
		c = NULL;
	}
	return c;
}
