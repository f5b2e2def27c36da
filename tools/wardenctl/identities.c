/* wardenctl identities: which cgroups on this host the config's keys are bound to
 * (keys[].workloads) and which keyless workload each would be governed as — the same
 * matching the daemon does on the caller's cgroup path (govern/keys.h) — then the pods the
 * keys and workloads bind by "pod:" patterns, which only the daemon's pod watch resolves.
 * Reads the config and cgroupfs only: no daemon, no pins. */
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

/* ---- pods: bound by pattern; the daemon's pod watch resolves them per request ---- */

#define POD_ROWS_MAX 256
struct pod_row {
	char pattern[KEYS_WORKLOADS_SIZE / 2];
	char keys[1024];
	char workload[KEYS_ID_SIZE];
};
struct pod_rows {
	struct pod_row *r;
	size_t n;
};

static struct pod_row *pod_row(struct pod_rows *p, const char *pat, size_t n)
{
	for (size_t i = 0; i < p->n; i++)
		if (strlen(p->r[i].pattern) == n && !strncmp(p->r[i].pattern, pat, n))
			return &p->r[i];
	if (p->n >= POD_ROWS_MAX || n >= sizeof(p->r[0].pattern))
		return NULL;
	memset(&p->r[p->n], 0, sizeof(p->r[0]));
	memcpy(p->r[p->n].pattern, pat, n);
	return &p->r[p->n++];
}

static int pod_key(void *arg, const struct key_record *k)
{
	for (const char *s = k->workloads; *s;) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		struct pod_row *r = strncmp(s, "pod:", 4) ? NULL : pod_row(arg, s, n);

		if (r) {
			size_t l = strlen(r->keys);

			snprintf(r->keys + l, sizeof(r->keys) - l, "%s%s", l ? "," : "", k->id);
		}
		s += n + (e ? 1 : 0);
	}
	return 0;
}

static int pod_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pod_row *)a)->pattern, ((const struct pod_row *)b)->pattern);
}

/* The rows, sorted by pattern, into o["pods"] (json) or printed. */
static int pods_show(struct keystore *ks, cJSON *o)
{
	struct pod_rows p = { .r = xcalloc(POD_ROWS_MAX, sizeof(struct pod_row)) };
	cJSON *a = NULL;
	int rc = keys_foreach(ks, pod_key, &p);

	for (size_t i = 0; rc == 0 && i < keys_workload_count(ks); i++) {
		const struct keys_workload *w = keys_workload_at(ks, i);
		struct pod_row *r = strncmp(w->pattern, "pod:", 4) ? NULL :
				    pod_row(&p, w->pattern, strlen(w->pattern));

		if (r && !r->workload[0])
			snprintf(r->workload, sizeof(r->workload), "%s%s", KEYS_WORKLOAD_ID_PREFIX,
				 w->name);
	}
	qsort(p.r, p.n, sizeof(*p.r), pod_row_cmp);
	if (rc == 0 && o && !(a = cJSON_AddArrayToObject(o, "pods")))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < p.n; i++) {
		struct pod_row *r = &p.r[i];
		cJSON *row;

		if (!a) {
			printf("%-60s keys=%s workload=%s\n", r->pattern, r->keys[0] ? r->keys : "-",
			       r->workload[0] ? r->workload : "-");
			continue;
		}
		row = cJSON_CreateObject();
		if (!row || !cJSON_AddItemToArray(a, row) ||
		    !cJSON_AddStringToObject(row, "pod", r->pattern + 4) ||
		    !cJSON_AddStringToObject(row, "keys", r->keys) ||
		    (r->workload[0] && !cJSON_AddStringToObject(row, "workload", r->workload)))
			rc = -ENOMEM;
	}
	if (rc == 0 && !o && p.n)
		printf("(pods are resolved by the daemon's pod watch, per request: "
		       "enforcement.kubernetes)\n");
	free(p.r);
	return rc;
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
		if (pods_show(w.ks, o) < 0 || (pins && ctl_redirect_table(pins, root, o) < 0)) {
			cJSON_Delete(o);
			goto out;
		}
		rc = ctl_print_json(o) < 0 ? EXIT_FAILURE : EXIT_OK;
		cJSON_Delete(o);
		goto out;
	}
	if (!w.n)
		printf("no cgroup matches a key's workloads or a keyless workload\n");
	if (pods_show(w.ks, NULL) < 0)
		goto out;
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
