/* wardenctl identities: which cgroups on this host the config's keys are bound to
 * (keys[].workloads) and which keyless workload each would be governed as — the same
 * matching the daemon does on the caller's cgroup path (govern/keys.h). Reads the config and
 * cgroupfs only: no daemon, no pins. */
#include "wardenctl.h"

#include "base/config.h"
#include "enforce/cgroup.h"
#include "govern/keys.h"

#define IDENT_DEPTH 16

struct ident_walk {
	struct keystore *ks;
	size_t rootlen;
	cJSON *rows;		/* --json */
	size_t n;
	char keys[1024];	/* the current cgroup's bound keys, comma-separated */
	const char *path;
};

static int bound_key(void *arg, const struct key_record *k)
{
	struct ident_walk *w = arg;
	size_t l = strlen(w->keys);

	if (k->workloads[0] && keys_workload_allows(k->workloads, w->path))
		snprintf(w->keys + l, sizeof(w->keys) - l, "%s%s", l ? "," : "", k->id);
	return 0;
}

static int visit(const char *full, const char *name, void *arg)
{
	struct ident_walk *w = arg;
	struct key_identity who;
	const char *path = full + w->rootlen;
	bool keyless;
	int rc;

	(void)name;
	w->path = path;
	w->keys[0] = '\0';
	rc = keys_foreach(w->ks, bound_key, w);
	if (rc < 0)
		return rc;
	keyless = keys_workload_identity(w->ks, path, &who) == 0;
	if (!w->keys[0] && !keyless)
		return 0;
	w->n++;
	if (w->rows) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(w->rows, o) ||
		    !cJSON_AddStringToObject(o, "cgroup", path) ||
		    !cJSON_AddStringToObject(o, "keys", w->keys) ||
		    (keyless && !cJSON_AddStringToObject(o, "workload", who.id)))
			return -ENOMEM;
		return 0;
	}
	printf("%-60s keys=%s workload=%s\n", path, w->keys[0] ? w->keys : "-",
	       keyless ? who.id : "-");
	return 0;
}

int ctl_identities_main(int argc, char **argv)
{
	const char *cfg_path = NULL, *cgroot = NULL, *pin_dir = NULL;
	struct pins *pins = NULL;
	char root[PATH_MAX], *text = NULL;
	struct config_errors errs = { 0 };
	struct ident_walk w = { 0 };
	bool json = false;
	cJSON *cfg = NULL;
	FILE *f = NULL;
	long len;
	int rc = EXIT_USAGE;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			cfg_path = argv[++i];
		else if (!strcmp(argv[i], "--cgroup-root") && i + 1 < argc)
			cgroot = argv[++i];
		else if (!strcmp(argv[i], "--pin-dir") && i + 1 < argc)
			pin_dir = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else {
			ctl_errmsg("identities: unexpected argument %s", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!cfg_path) {
		ctl_errmsg("identities: --config FILE is required");
		return EXIT_USAGE;
	}
	if (cgroot)
		snprintf(root, sizeof(root), "%s", cgroot);
	else if (cgroup_detect_root(root, sizeof(root)) < 0) {
		ctl_errmsg("identities: no cgroup v2 hierarchy mounted");
		return EXIT_FAILURE;
	}
	rc = EXIT_FAILURE;
	f = fopen(cfg_path, "rb");
	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || len > (16L << 20) ||
	    fseek(f, 0, SEEK_SET)) {
		ctl_errmsg("identities: cannot read %s: %s", cfg_path, strerror(errno));
		goto out;
	}
	text = xmalloc((size_t)len + 1);
	if (fread(text, 1, (size_t)len, f) != (size_t)len) {
		ctl_errmsg("identities: cannot read %s", cfg_path);
		goto out;
	}
	text[len] = '\0';
	cfg = cJSON_Parse(text);
	if (!cfg) {
		ctl_errmsg("identities: %s is not JSON", cfg_path);
		goto out;
	}
	if (keys_new(NULL, &w.ks) < 0)
		goto out;
	if (keys_config_parse(cfg, NULL, w.ks, &errs) < 0) {
		for (int i = 0; i < errs.count; i++)
			ctl_errmsg("identities: %s", errs.msg[i]);
		goto out;
	}
	w.rootlen = strlen(root);
	if (json && !(w.rows = cJSON_CreateArray()))
		goto out;
	if (cgroup_walk(root, IDENT_DEPTH, visit, &w) < 0)
		goto out;
	/* The redirect table, when enforcement is installed (pins readable): who was sent to
	 * the sidecar instead of which upstream. */
	if (pins_open(pin_dir, &pins) < 0)
		pins = NULL;
	if (json) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToObject(o, "identities", w.rows)) {
			cJSON_Delete(o);
			goto out;
		}
		w.rows = NULL;
		if (pins && ctl_redirect_table(pins, root, o) < 0) {
			cJSON_Delete(o);
			goto out;
		}
		rc = ctl_print_json(o) < 0 ? EXIT_FAILURE : EXIT_OK;
		cJSON_Delete(o);
		goto out;
	}
	if (!w.n)
		printf("no cgroup matches a key's workloads or a keyless workload\n");
	if (pins && ctl_redirect_table(pins, root, NULL) < 0)
		goto out;
	rc = EXIT_OK;
out:
	pins_close(pins);
	cJSON_Delete(w.rows);
	keys_free(w.ks);
	cJSON_Delete(cfg);
	free(text);
	if (f)
		fclose(f);
	return rc;
}
