/* maps: every enforcement map as a readable table, or JSON. */
#include "wardenctl.h"

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
	cJSON_AddNumberToObject(o, "redirected", (double)c->redirected);
	return o;
}

static void print_counters_row(const char *name, const struct warden_counters *c)
{
	printf("  %-13s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %14" PRIu64 " %12" PRIu64 "\n",
	       name, (uint64_t)c->allowed, (uint64_t)c->denied, (uint64_t)c->events_dropped,
	       (uint64_t)c->unenrolled, (uint64_t)c->redirected);
}

int cmd_maps(struct args *a)
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

	rc = ctl_open_pins(a, &p);
	if (rc != EXIT_OK)
		return rc;
	if (ctl_cgroup_root(a, root, sizeof(root)) < 0)
		root[0] = '\0';
	cg = ctl_scan_cgroups(a);
	if ((err = pins_config(p, &cfg)) < 0 || (err = pins_enrolled(p, &en, &nen)) < 0 ||
	    (err = pins_unixpaths(p, &up, &nup)) < 0 || (err = pins_counters(p, hook, &total)) < 0) {
		ctl_errmsg("reading the maps under %s: %s%s", pins_dir(p), strerror(-err),
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
		cJSON_AddStringToObject(x, "deny_errno", ctl_errno_label(cfg.deny_errno ?
								     (int)cfg.deny_errno : EPERM));
		cJSON_AddNumberToObject(x, "sidecar_port", ntohs(cfg.sidecar_port));
		cJSON_AddNumberToObject(x, "redirect_port", ntohs(cfg.redirect_port));
		cJSON_AddBoolToObject(x, "unix_hook", cfg.flags & WARDEN_CFG_F_UNIX_HOOK);
	} else {
		printf("%s\n", WARDEN_MAP_CONFIG);
		printf("  abi_version   %u\n", cfg.abi_version);
		printf("  deny_errno    %s\n", ctl_errno_label(cfg.deny_errno ? (int)cfg.deny_errno
								  : EPERM));
		if (cfg.sidecar_port)
			printf("  sidecar       127.0.0.1:%u, [::1]:%u, [::ffff:127.0.0.1]:%u\n",
			       ntohs(cfg.sidecar_port), ntohs(cfg.sidecar_port),
			       ntohs(cfg.sidecar_port));
		else
			printf("  sidecar       none\n");
		if (cfg.redirect_port)
			printf("  redirect to   127.0.0.1:%u, [::1]:%u\n", ntohs(cfg.redirect_port),
			       ntohs(cfg.redirect_port));
		else
			printf("  redirect to   none (nothing is redirected)\n");
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
			cJSON_AddBoolToObject(e, "redirect", en[i].e.flags & WARDEN_ENROLL_F_REDIRECT);
			cJSON_AddItemToArray(x, e);
		} else {
			printf("  %-12" PRIu64 " %-9s%s %-5u %s\n", (uint64_t)en[i].cgroup_id,
			       enforcer_mode_name(en[i].e.mode),
			       en[i].e.flags & WARDEN_ENROLL_F_REDIRECT ? "+redirect" : "",
			       en[i].e.level,
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
			ctl_errmsg("reading %s: %s", pins_map_name(m), strerror(-err));
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
				cJSON_AddBoolToObject(e, "redirect",
						      r[i].rule.flags & WARDEN_RULE_F_REDIRECT);
				cJSON_AddItemToArray(x, e);
			} else if (both) {
				printf("  %-6u %-8s %s%s\n", r[i].rule.id, kind_name(r[i].kind), d,
				       r[i].rule.flags & WARDEN_RULE_F_REDIRECT ? " (redirect)" : "");
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
		printf("  %-13s %12s %12s %12s %14s %12s\n", "HOOK", "ALLOWED", "DENIED", "DROPPED",
		       "UNENROLLED", "REDIRECTED");
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

	err = ctl_redirect_table(p, root[0] ? root : NULL, a->json ? maps : NULL);
	if (err < 0) {
		ctl_errmsg("reading %s: %s", WARDEN_MAP_REDIRECT, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}

	pins_map_info(p, PINS_EVENTS, &mi);
	if (a->json) {
		x = cJSON_AddObjectToObject(maps, WARDEN_MAP_EVENTS);
		cJSON_AddNumberToObject(x, "bytes", mi.max_entries);
		rc = ctl_print_json(o);
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
