/* policy: enroll, unenroll, exempt, protect, unprotect, allow, disallow. */
#include "wardenctl.h"

/* ---- policy changes ---------------------------------------------------------------------- */

/* The cgroup a command names: a path, --container or --pod. */
static int target_path(const struct args *a, struct enforcer *e, const char *cmd, char *buf,
		       size_t len)
{
	int given = (a->npos > 0) + !!a->container + !!a->pod + a->have_id, err;

	if (given != 1 || a->npos > 1) {
		ctl_errmsg("%s: name exactly one cgroup: a path, --container ID or --pod UID%s", cmd,
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
		ctl_errmsg("%s: no cgroup under %s for %s %s", cmd, enforcer_cgroup_root(e),
		       a->container ? "container" : "pod", a->container ? a->container : a->pod);
	else if (err == -EEXIST)
		ctl_errmsg("%s: %s %s matches several cgroups: give more of it", cmd,
		       a->container ? "container id" : "pod UID", a->container ? a->container : a->pod);
	else if (err < 0)
		ctl_errmsg("%s: resolving %s: %s", cmd, a->container ? a->container : a->pod,
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

	rc = ctl_open_enforcer(a, &e);
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
			ctl_errmsg("%s: %s is not enrolled (or no such cgroup)", cmd, path);
		else if (err == -ENOENT)
			ctl_errmsg("%s: no such cgroup: %s", cmd, path);
		else if (err == -EINVAL)
			ctl_errmsg("%s: %s refused (reason above)", cmd, path);
		else
			ctl_errmsg("%s: %s: %s", cmd, path, strerror(-err));
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

int cmd_enroll(struct args *a)
{
	enum warden_mode mode = WARDEN_MODE_LOCKDOWN;

	if (a->mode && enforcer_mode_parse(a->mode, &mode) < 0) {
		ctl_errmsg("enroll: --mode must be lockdown or protect, not '%s'", a->mode);
		return EXIT_USAGE;
	}
	return enroll_like(a, "enroll", mode, false);
}

int cmd_unenroll(struct args *a)
{
	return enroll_like(a, "unenroll", WARDEN_MODE_NONE, true);
}

int cmd_exempt(struct args *a)
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
		ctl_errmsg("%s: give at least one destination (cidr[:port])%s", cmd,
		       op <= OP_UNPROTECT ? " or --unix PATH" : "");
		return EXIT_USAGE;
	}
	for (int i = 0; i < a->npos; i++) {
		struct enforcer_dest d;

		if (enforcer_dest_parse(a->pos[i], &d) < 0) {
			ctl_errmsg("%s: '%s' is not a destination: use a.b.c.d[/len][:port], "
			       "v6addr[/len] or [v6addr[/len]]:port", cmd, a->pos[i]);
			return EXIT_USAGE;
		}
	}
	rc = ctl_open_enforcer(a, &e);
	if (rc != EXIT_OK)
		return rc;
	if (a->unix_path) {
		err = op == OP_PROTECT ? enforcer_protect_unix(e, a->unix_path)
				       : enforcer_unprotect_unix(e, a->unix_path);
		if (err < 0) {
			ctl_errmsg("%s: unix path %s: %s", cmd, a->unix_path,
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
			ctl_errmsg("%s: %s: %s", cmd, a->pos[i], err == -ENOENT ? "no such entry" :
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

int cmd_protect(struct args *a) { return rule_cmd(a, "protect", OP_PROTECT); }
int cmd_unprotect(struct args *a) { return rule_cmd(a, "unprotect", OP_UNPROTECT); }
int cmd_allow(struct args *a) { return rule_cmd(a, "allow", OP_ALLOW); }
int cmd_disallow(struct args *a) { return rule_cmd(a, "disallow", OP_DISALLOW); }
