/* status: programs, links, pins, kernel features, enrolment and counters. */
#include "wardenctl.h"

/* ---- status ------------------------------------------------------------------------------ */

void ctl_holder_comm(pid_t pid, char *buf, size_t len)
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

#define UNIX_OPEN_TEXT "unix socket paths (protect_unix) are not enforced: connect_unix is " \
	"not attached (kernel 6.7+)"

/* What an unattached lsm_socket leaves open, and why as far as this host tells. */
static const char *lsm_open_text(const struct pins_features *f)
{
	static char text[256];

	snprintf(text, sizeof(text), "AF_PACKET, AF_XDP and AF_VSOCK sockets are not refused: %s",
		 f->bpf_lsm ? "lsm_socket is not attached (see the daemon's log)" :
		 f->bpf_lsm_why);
	return text;
}

int cmd_status(struct args *a)
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

	rc = ctl_open_pins(a, &p);
	if (rc != EXIT_OK)
		return rc;
	pins_features(&feat);
	cg = ctl_scan_cgroups(a);
	err = pins_config(p, &cfg);
	if (err < 0) {
		ctl_errmsg("reading %s: %s", WARDEN_MAP_CONFIG, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	if ((err = pins_counters(p, hook, &total)) < 0 || (err = pins_enrolled(p, &en, &nen)) < 0) {
		ctl_errmsg("reading the maps: %s", strerror(-err));
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
			ctl_errmsg("reading link %s: %s", enforcer_hook_name(i), strerror(-err));
			rc = EXIT_FAIL;
			goto out;
		}
		nattached += links[i].attached;
		/* connect_unix is expected only where the kernel has it, lsm_socket only where
		 * the kernel can run it (or where it is pinned all the same), sockops only where
		 * pinned: without it callers are named by sock_diag, enforcement is whole. */
		if (i == WARDEN_HOOK_CONNECT_UNIX)
			nexpected += feat.unix_connect;
		else if (i == WARDEN_HOOK_LSM_SOCKET)
			nexpected += feat.bpf_lsm || links[i].pinned;
		else if (i == WARDEN_HOOK_SOCKOPS)
			nexpected += links[i].pinned;
		else
			nexpected++;
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
		cJSON_AddStringToObject(o, "deny_errno", ctl_errno_label(cfg.deny_errno ?
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
		cJSON_AddBoolToObject(feats, "bpf_lsm", feat.bpf_lsm);
		/* What the hooks that are not attached leave open, in words an operator acts on. */
		x = cJSON_AddArrayToObject(o, "open");
		if (!links[WARDEN_HOOK_LSM_SOCKET].attached)
			cJSON_AddItemToArray(x, cJSON_CreateString(lsm_open_text(&feat)));
		if (!links[WARDEN_HOOK_CONNECT_UNIX].attached)
			cJSON_AddItemToArray(x, cJSON_CreateString(UNIX_OPEN_TEXT));
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
		cJSON_AddNumberToObject(c, "redirected", (double)total.redirected);
		hs = cJSON_AddArrayToObject(o, "event_ring_holders");
		for (size_t i = 0; i < h.n && i < 8; i++) {
			char comm[32];

			ctl_holder_comm(h.pid[i], comm, sizeof(comm));
			x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "pid", h.pid[i]);
			cJSON_AddStringToObject(x, "comm", comm);
			cJSON_AddItemToArray(hs, x);
		}
		rc = ctl_print_json(o);
	} else {
		printf("enforcement   loaded: pins under %s (ABI %u)\n", pins_dir(p),
		       cfg.abi_version);
		if (h.n) {
			printf("event ring    held by");
			for (size_t i = 0; i < h.n && i < 8; i++) {
				char comm[32];

				ctl_holder_comm(h.pid[i], comm, sizeof(comm));
				printf("%s %s (pid %d)", i ? "," : "", comm, (int)h.pid[i]);
			}
			printf("\n");
		} else {
			printf("event ring    held by no process (is the mcpwarden daemon running?)\n");
		}
		printf("cgroup root   %s\n", feat.cgroup_root[0] ? feat.cgroup_root : "(none)");
		printf("deny errno    %s\n",
		       ctl_errno_label(cfg.deny_errno ? (int)cfg.deny_errno : EPERM));
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
		       ", unenrolled %" PRIu64 ", redirected %" PRIu64 "\n", (uint64_t)total.allowed,
		       (uint64_t)total.denied, (uint64_t)total.events_dropped,
		       (uint64_t)total.unenrolled, (uint64_t)total.redirected);
		printf("kernel        %s: ring buffer %s, unix connect hook %s, BPF LSM %s, "
		       "bpf_stats %s\n", feat.kernel, bool_word(feat.ringbuf),
		       bool_word(feat.unix_connect),
		       bool_word(feat.bpf_lsm),
		       feat.bpf_stats < 0 ? "unknown" : feat.bpf_stats ? "on" : "off");
		if (!links[WARDEN_HOOK_LSM_SOCKET].attached)
			printf("open          %s\n", lsm_open_text(&feat));
		if (!links[WARDEN_HOOK_CONNECT_UNIX].attached)
			printf("open          %s\n", UNIX_OPEN_TEXT);
		printf("\n%-13s %-8s %6s %6s  %-16s %-16s %-18s %s\n", "HOOK", "STATE", "LINK",
		       "PROG", "TAG", "PROGRAM", "RUNS (AVG NS)", "ATTACHED AT");
		for (unsigned i = 0; i < WARDEN_HOOK_MAX; i++) {
			const struct pins_link *l = &links[i];
			const char *cp = cgroup_index_get(cg, l->cgroup_id);
			const char *state = l->attached ? "attached" : l->pinned ? "DETACHED" :
				i == WARDEN_HOOK_CONNECT_UNIX && !feat.unix_connect ? "n/a" :
				i == WARDEN_HOOK_LSM_SOCKET && !feat.bpf_lsm ? "n/a" :
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
			       cp ? cp : i == WARDEN_HOOK_LSM_SOCKET && l->attached ?
			       "(every task: BPF LSM)" : l->attached ? "?" : "-");
		}
		if (feat.bpf_stats == 0)
			printf("(runs are counted only with sysctl kernel.bpf_stats_enabled=1)\n");
	}
	if (nattached < nexpected) {
		ctl_errmsg("enforcement is degraded: %u of %u hooks attached", nattached, nexpected);
		rc = EXIT_FAIL;
	}
out:
	cJSON_Delete(o);
	free(en);
	cgroup_index_free(cg);
	pins_close(p);
	return rc;
}
