/* admin_api: `wardenctl keys` and `wardenctl usage`, clients of the daemon's admin API
 * (libcurl easy, cJSON, printf tables). They parse their own options: none of the pins'. */
#include "wardenctl.h"

#include "base/jsonfmt.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#define DEFAULT_URL "http://127.0.0.1:8081"
#define TOKEN_MAX 4096
#define REPLY_MAX (64u << 20)

struct opts {
	const char *url, *token_file;
	const char *name, *team, *policy, *expires, *id, *key;
	const char *lockfile, *by;
	bool json, help;
	char **pos;
	int npos;
};

struct buf {
	char *p;
	size_t n;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wardenctl keys create [--name NAME] [--team TEAM] [--policy POLICY]\n"
		"                             [--expires RFC3339] [--id ID] [--json]\n"
		"       wardenctl keys list [--json]\n"
		"       wardenctl keys show ID [--json]\n"
		"       wardenctl keys revoke ID [--json]\n"
		"       wardenctl usage [--key ID | --team NAME] [--json]\n"
		"       wardenctl usage reset (--key ID | --team NAME) [--json]\n"
		"       wardenctl tools diff [SERVER/TOOL] [--json]\n"
		"       wardenctl tools approve SERVER/TOOL [--by NAME] [--json]\n"
		"       wardenctl tools pin --lockfile FILE\n"
		"options for all: --admin URL (default $MCPWARDEN_ADMIN_URL or " DEFAULT_URL ")\n"
		"                 --token-file FILE (default: $MCPWARDEN_ADMIN_TOKEN)\n"
		"The admin token is never taken from the command line. See docs/admin-api.md.\n");
}

/* ---- the token ---- */

/* The first line of the file, or the environment. Caller cleanses and frees. */
static char *load_token(const char *file)
{
	char *t = NULL;

	if (file) {
		FILE *f = fopen(file, "re");
		if (!f) {
			ctl_errmsg("--token-file %s: %s", file, strerror(errno));
			return NULL;
		}
		t = calloc(1, TOKEN_MAX);
		if (t && !fgets(t, TOKEN_MAX, f))
			t[0] = '\0';
		fclose(f);
		if (!t)
			return NULL;
		t[strcspn(t, "\r\n")] = '\0';
		if (!t[0]) {
			ctl_errmsg("--token-file %s: the first line is empty", file);
			free(t);
			return NULL;
		}
		return t;
	}
	const char *env = getenv("MCPWARDEN_ADMIN_TOKEN");
	if (!env || !env[0]) {
		ctl_errmsg("no token for the admin API: use --token-file FILE or set "
		       "MCPWARDEN_ADMIN_TOKEN");
		return NULL;
	}
	return strdup(env);
}

/* ---- HTTP ---- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	char *np;

	if (b->n + n + 1 > REPLY_MAX || !(np = realloc(b->p, b->n + n + 1)))
		return 0;
	b->p = np;
	memcpy(b->p + b->n, ptr, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* One request; *out gets the parsed answer (NULL when it is not JSON) and the HTTP status is
 * returned, or -1 after printing why the request did not happen. */
static long request(const struct opts *o, const char *token, const char *method, const char *path,
		    const cJSON *body, cJSON **out)
{
	char url[2048], *auth = NULL, *text = NULL;
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	long status = -1;
	size_t alen = strlen(token) + sizeof("Authorization: Bearer ");
	CURL *c = curl_easy_init();
	CURLcode rc;

	*out = NULL;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", o->url, path) >= sizeof(url)) {
		ctl_errmsg("--admin: URL too long");
		goto out;
	}
	auth = malloc(alen);
	if (!c || !auth) {
		ctl_errmsg("out of memory");
		goto out;
	}
	snprintf(auth, alen, "Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	if (body) {
		text = cJSON_PrintUnformatted(body);
		h = curl_slist_append(h, "Content-Type: application/json");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (text)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	else if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		ctl_errmsg("cannot reach the admin API at %s: %s", o->url, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*out = b.p ? cJSON_Parse(b.p) : NULL;
out:
	if (auth) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	curl_slist_free_all(h);
	cJSON_free(text);
	if (b.p) {
		OPENSSL_cleanse(b.p, b.n);  /* may hold a fresh key */
		free(b.p);
	}
	if (c)
		curl_easy_cleanup(c);
	return status;
}

static const char *str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));

	return s ? s : "-";
}

/* Non-2xx: the API's own message. */
static int refused(long status, const cJSON *ans)
{
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "error"));
	const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "field"));

	if (status == 401)
		ctl_errmsg("the admin API refused the token (HTTP 401): check --token-file or "
		       "MCPWARDEN_ADMIN_TOKEN");
	else
		ctl_errmsg("%s%s%s (HTTP %ld)", e ? e : "the admin API refused the request",
		       f ? "; field: " : "", f ? f : "", status);
	return EXIT_FAIL;
}

/* The exit status a request ended with: its failure already said (st < 0), the server's
 * refusal, or success. */
static int outcome(long st, const cJSON *ans)
{
	if (st < 0)
		return EXIT_FAIL;
	return st < 200 || st > 299 ? refused(st, ans) : EXIT_OK;
}

static void print_json(const cJSON *ans)
{
	char *t = cJSON_Print(ans);

	if (t) {
		puts(t);
		OPENSSL_cleanse(t, strlen(t));
		cJSON_free(t);
	}
}

/* ---- tables ---- */

#define KEY_COLS 7

static void key_row(const cJSON *k, const char *row[KEY_COLS])
{
	row[0] = str(k, "id");
	row[1] = str(k, "name");
	row[2] = str(k, "team");
	row[3] = str(k, "policy");
	row[4] = str(k, "expires");
	row[5] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "disabled")) ? "disabled"
		 : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "expired")) ? "expired" : "active";
	row[6] = str(k, "source");
}

static void print_table(const char *const *head, size_t ncols, const char *const *cells,
			size_t nrows)
{
	size_t w[16] = { 0 };

	for (size_t c = 0; c < ncols; c++) {
		w[c] = strlen(head[c]);
		for (size_t r = 0; r < nrows; r++)
			if (strlen(cells[r * ncols + c]) > w[c])
				w[c] = strlen(cells[r * ncols + c]);
	}
	for (size_t r = 0; r <= nrows; r++) {
		const char *const *row = r ? cells + (r - 1) * ncols : head;
		for (size_t c = 0; c + 1 < ncols; c++)
			printf("%-*s  ", (int)w[c], row[c]);
		printf("%s\n", row[ncols - 1]);
	}
}

static void print_keys(const cJSON *keys)
{
	static const char *const head[KEY_COLS] = { "ID", "NAME", "TEAM", "POLICY", "EXPIRES",
						    "STATUS", "SOURCE" };
	size_t n = (size_t)cJSON_GetArraySize(keys), i = 0;
	const char **cells = calloc(n ? n * KEY_COLS : 1, sizeof(*cells));
	const cJSON *k;

	if (!cells)
		return;
	cJSON_ArrayForEach(k, keys)
		key_row(k, cells + KEY_COLS * i++);
	print_table(head, KEY_COLS, cells, n);
	free(cells);
}

static void print_key(const cJSON *k)
{
	static const char *const fields[] = { "id", "name", "team", "policy", "created", "expires",
					      "source" };
	const char *row[KEY_COLS];

	key_row(k, row);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		printf("%-9s %s\n", fields[i], str(k, fields[i]));
	printf("%-9s %s\n", "status", row[5]);
}

#define USAGE_COLS 8

/* One row per budget of every key and team (a scope without budgets has none). */
static void print_usage(const cJSON *ans)
{
	static const char *const head[USAGE_COLS] = { "SCOPE", "BUDGET", "PERIOD", "SPENT",
						      "RESERVED", "LIMIT", "REMAINING", "RESETS" };
	static const char *const kinds[2][3] = { { "keys", "key:", "id" },
						 { "teams", "team:", "name" } };
	size_t nscopes = 0, nrows = 0, ns = 0, n = 0;
	const cJSON *s, *b;

	/* Redis counters (docs/counters.md): the numbers are the whole fleet's */
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ans, "counters")))
		printf("counters: %s (fleet-wide)\n",
		       cJSON_GetObjectItemCaseSensitive(ans, "counters")->valuestring);
	for (int k = 0; k < 2; k++)
		cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ans, kinds[k][0])) {
			nscopes++;
			nrows += (size_t)cJSON_GetArraySize(
				cJSON_GetObjectItemCaseSensitive(s, "budgets"));
		}
	char **names = calloc(nscopes + 1, sizeof(*names));
	const char **cells = calloc(nrows * USAGE_COLS + 1, sizeof(*cells));
	if (!names || !cells)
		goto out;
	for (int k = 0; k < 2; k++) {
		cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ans, kinds[k][0])) {
			if (asprintf(&names[ns], "%s%s", kinds[k][1], str(s, kinds[k][2])) < 0) {
				names[ns] = NULL;
				goto out;
			}
			cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(s, "budgets")) {
				const char **row = cells + n++ * USAGE_COLS;
				row[0] = names[ns];
				row[1] = str(b, "name");
				row[2] = str(b, "period");
				row[3] = str(b, "spent");
				row[4] = str(b, "reserved");
				row[5] = str(b, "limit");
				row[6] = str(b, "remaining");
				row[7] = str(b, "resets_at");
			}
			ns++;
		}
	}
	if (n)
		print_table(head, USAGE_COLS, cells, n);
	else
		printf("no budgets apply (see the \"budgets\" section of the config)\n");
out:
	for (size_t i = 0; names && i < ns; i++)
		free(names[i]);
	free(names);
	free(cells);
}

/* ---- commands ---- */

static int keys_cmd(const struct opts *o, const char *token)
{
	const char *sub = o->npos ? o->pos[0] : NULL;
	char path[512];
	cJSON *ans = NULL, *body = NULL;
	long st;
	int rc = EXIT_FAIL;

	if (!sub) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "list") || !strcmp(sub, "create")) {
		if (o->npos != 1)
			goto bad;
	} else if (!strcmp(sub, "show") || !strcmp(sub, "revoke")) {
		if (o->npos != 2 || strchr(o->pos[1], '/') || strchr(o->pos[1], '?'))
			goto bad;
	} else {
		ctl_errmsg("keys: unknown subcommand '%s' (create, list, show, revoke)", sub);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "create") && (o->name || o->team || o->policy || o->expires || o->id)) {
		ctl_errmsg("keys %s: --name, --team, --policy, --expires and --id belong to 'create'", sub);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "create")) {
		body = cJSON_CreateObject();
		jsonfmt_add_opt(body, "id", o->id);
		jsonfmt_add_opt(body, "name", o->name);
		jsonfmt_add_opt(body, "team", o->team);
		jsonfmt_add_opt(body, "policy", o->policy);
		jsonfmt_add_opt(body, "expires", o->expires);
		st = request(o, token, "POST", "/v1/keys", body, &ans);
	} else if (!strcmp(sub, "list")) {
		st = request(o, token, "GET", "/v1/keys", NULL, &ans);
	} else {
		snprintf(path, sizeof(path), "/v1/keys/%s%s", o->pos[1],
			 !strcmp(sub, "revoke") ? "/revoke" : "");
		st = request(o, token, !strcmp(sub, "revoke") ? "POST" : "GET", path, NULL, &ans);
	}
	if ((rc = outcome(st, ans)) != EXIT_OK)
		goto out;
	if (o->json) {
		print_json(ans);
	} else if (!strcmp(sub, "create")) {
		const cJSON *rec = cJSON_GetObjectItemCaseSensitive(ans, "record");
		printf("%-9s %s\n", "key", str(ans, "key"));
		print_key(rec);
		fprintf(stderr, "wardenctl: the key is shown this once; only its hash is kept\n");
	} else if (!strcmp(sub, "list")) {
		print_keys(cJSON_GetObjectItemCaseSensitive(ans, "keys"));
	} else if (!strcmp(sub, "show")) {
		print_key(ans);
	} else {
		printf("revoked %s: the next request with this key is refused\n", str(ans, "id"));
	}
out:
	if (ans) {
		cJSON *k = cJSON_GetObjectItemCaseSensitive(ans, "key");
		if (cJSON_IsString(k))
			OPENSSL_cleanse(k->valuestring, strlen(k->valuestring));
	}
	cJSON_Delete(ans);
	cJSON_Delete(body);
	return rc;
bad:
	ctl_errmsg("keys %s: wrong arguments", sub);
	usage(stderr);
	return EXIT_USAGE;
}

static int usage_cmd(const struct opts *o, const char *token)
{
	bool reset = o->npos == 1 && !strcmp(o->pos[0], "reset");
	char path[512];
	char *ek = NULL;
	cJSON *ans = NULL, *body = NULL;
	long st;
	int rc = EXIT_FAIL;

	if ((o->npos && !reset) || (o->key && o->team) || (reset && !o->key && !o->team) ||
	    o->name || o->policy || o->expires || o->id) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (reset) {
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, o->key ? "key" : "team", o->key ? o->key : o->team);
		st = request(o, token, "POST", "/v1/usage/reset", body, &ans);
	} else {
		CURL *c = curl_easy_init();
		const char *v = o->key ? o->key : o->team;
		ek = v && c ? curl_easy_escape(c, v, 0) : NULL;
		if (c)
			curl_easy_cleanup(c);
		if (v && !ek) {
			ctl_errmsg("out of memory");
			return EXIT_FAIL;
		}
		snprintf(path, sizeof(path), "/v1/usage%s%s", ek ? (o->key ? "?key=" : "?team=") : "",
			 ek ? ek : "");
		st = request(o, token, "GET", path, NULL, &ans);
	}
	if ((rc = outcome(st, ans)) != EXIT_OK)
		goto out;
	if (o->json) {
		print_json(ans);
	} else if (reset) {
		printf("reset %s\n", str(ans, "reset"));
	} else {
		print_usage(ans);
	}
out:
	curl_free(ek);
	cJSON_Delete(ans);
	cJSON_Delete(body);
	return rc;
}

/* ---- tools: pinned tool definitions ---- */

/* One pin as a line, and what changed under it. */
static void print_pin(const cJSON *p)
{
	const char *d = str(p, "digest"), *cur = str(p, "current_digest");
	const cJSON *diff = cJSON_GetObjectItemCaseSensitive(p, "diff");
	const cJSON *it;

	printf("%-8s %s/%s  approved %.15s  listed %.15s  by %s\n", str(p, "state"),
	       str(p, "server"), str(p, "tool"), d, cur, str(p, "approved_by"));
	if (!diff)
		return;
	printf("    changed:");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(diff, "changed"))
		printf(" %s", cJSON_GetStringValue(it) ? it->valuestring : "?");
	printf("\n");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(diff, "description");
	if (desc) {
		const char *o = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(desc, "old"));
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(desc, "new"));
		printf("    - description: %s\n    + description: %s\n", o ? o : "(none)",
		       n ? n : "(none)");
	}
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(diff, "_meta");
	if (meta) {
		/* an MCP App's ui:// resource lives here: show both whole (null: too long) */
		char *o = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(meta, "old"));
		char *n = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(meta, "new"));
		printf("    - _meta: %s\n    + _meta: %s\n", o ? o : "(none)", n ? n : "(none)");
		cJSON_free(o);
		cJSON_free(n);
	}
}

/* The lockfile from the approved digests: {server: {tool: digest}}, written whole (a
 * temporary file renamed over it), so a reader never sees half of it. */
static int write_lockfile(const char *file, const cJSON *pins)
{
	cJSON *lock = cJSON_CreateObject();
	const cJSON *p;
	char tmp[4096];
	int rc = EXIT_FAIL, n = 0;

	cJSON_ArrayForEach(p, pins) {
		const char *srv = str(p, "server"), *tool = str(p, "tool");
		const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "digest"));
		if (!d)
			continue;  /* never approved: not in the lockfile */
		cJSON *o = cJSON_GetObjectItemCaseSensitive(lock, srv);
		if (!o)
			o = cJSON_AddObjectToObject(lock, srv);
		cJSON_AddStringToObject(o, tool, d);
		n++;
	}
	char *text = cJSON_Print(lock);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= sizeof(tmp)) {
		ctl_errmsg("--lockfile: path too long");
		goto out;
	}
	FILE *f = fopen(tmp, "we");
	if (!f || fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f))) {
		ctl_errmsg("cannot write %s: %s", tmp, strerror(errno));
		if (f)
			fclose(f);
		unlink(tmp);
		goto out;
	}
	if (fclose(f) || rename(tmp, file)) {
		ctl_errmsg("cannot write %s: %s", file, strerror(errno));
		unlink(tmp);
		goto out;
	}
	printf("wrote %s: %d pinned tool%s\n", file, n, n == 1 ? "" : "s");
	rc = EXIT_OK;
out:
	cJSON_free(text);
	cJSON_Delete(lock);
	return rc;
}

static int tools_cmd(const struct opts *o, const char *token)
{
	const char *sub = o->npos ? o->pos[0] : NULL;
	const char *target = o->npos > 1 ? o->pos[1] : NULL;
	char path[1024];
	cJSON *ans = NULL, *body = NULL;
	long st;
	int rc = EXIT_FAIL;

	if (!sub || o->name || o->team || o->policy || o->expires || o->id || o->key) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "approve")) {
		const char *slash = target ? strchr(target, '/') : NULL;
		if (o->npos != 2 || !slash || slash == target || !slash[1] || o->lockfile) {
			ctl_errmsg("tools approve SERVER/TOOL [--by NAME]");
			return EXIT_USAGE;
		}
		CURL *c = curl_easy_init();
		char *et = c ? curl_easy_escape(c, slash + 1, 0) : NULL;
		if (c)
			curl_easy_cleanup(c);
		if (!et) {
			ctl_errmsg("out of memory");
			return EXIT_FAIL;
		}
		snprintf(path, sizeof(path), "/v1/tools/pins/%.*s/%s/approve",
			 (int)(slash - target), target, et);
		curl_free(et);
		if (o->by) {
			body = cJSON_CreateObject();
			cJSON_AddStringToObject(body, "by", o->by);
		}
		st = request(o, token, "POST", path, body, &ans);
		if ((rc = outcome(st, ans)) == EXIT_OK) {
			if (o->json)
				print_json(ans);
			else
				printf("approved %s: its current definition is pinned and it is listed "
				       "again\n", target);
		}
		goto out;
	}
	if (strcmp(sub, "diff") && strcmp(sub, "pin")) {
		ctl_errmsg("tools: unknown subcommand '%s' (diff, approve, pin)", sub);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "pin") ? (o->npos != 1 || !o->lockfile || o->by)
				: (o->npos > 2 || o->lockfile || o->by)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	st = request(o, token, "GET", "/v1/tools/pins", NULL, &ans);
	if ((rc = outcome(st, ans)) != EXIT_OK)
		goto out;
	const cJSON *pins = cJSON_GetObjectItemCaseSensitive(ans, "pins"), *p;
	if (!strcmp(sub, "pin")) {
		rc = write_lockfile(o->lockfile, pins);
		goto out;
	}
	if (o->json) {
		print_json(ans);
		goto out;
	}
	int shown = 0, differ = 0;
	cJSON_ArrayForEach(p, pins) {
		char name[512];
		snprintf(name, sizeof(name), "%s/%s", str(p, "server"), str(p, "tool"));
		if (target && strcmp(target, name))
			continue;
		print_pin(p);
		shown++;
		differ += !strcmp(str(p, "state"), "changed") || !strcmp(str(p, "state"), "new");
	}
	if (target && !shown) {
		ctl_errmsg("no tool %s is pinned or listed", target);
		rc = EXIT_FAIL;
	} else if (!shown) {
		printf("no tools pinned or listed\n");
	}
	/* like diff(1): 1 when something differs from what was approved */
	if (rc == EXIT_OK && differ)
		rc = EXIT_FAIL;
out:
	cJSON_Delete(ans);
	cJSON_Delete(body);
	return rc;
}

int ctl_admin_api_main(int argc, char **argv)
{
	enum { O_ADMIN = 256, O_TOKEN_FILE, O_NAME, O_TEAM, O_POLICY, O_EXPIRES, O_ID, O_KEY,
	       O_LOCKFILE, O_BY };
	static const struct option lopts[] = {
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "name", required_argument, NULL, O_NAME },
		{ "team", required_argument, NULL, O_TEAM },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "id", required_argument, NULL, O_ID },
		{ "key", required_argument, NULL, O_KEY },
		{ "lockfile", required_argument, NULL, O_LOCKFILE },
		{ "by", required_argument, NULL, O_BY },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { 0 };
	bool keys = argc > 0 && !strcmp(argv[0], "keys");
	bool tools = argc > 0 && !strcmp(argv[0], "tools");
	char *token;
	int opt, rc;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "jh", lopts, NULL)) != -1) {
		switch (opt) {
		case O_ADMIN: o.url = optarg; break;
		case O_TOKEN_FILE: o.token_file = optarg; break;
		case O_NAME: o.name = optarg; break;
		case O_TEAM: o.team = optarg; break;
		case O_POLICY: o.policy = optarg; break;
		case O_EXPIRES: o.expires = optarg; break;
		case O_ID: o.id = optarg; break;
		case O_KEY: o.key = optarg; break;
		case O_LOCKFILE: o.lockfile = optarg; break;
		case O_BY: o.by = optarg; break;
		case 'j': o.json = true; break;
		case 'h': o.help = true; break;
		default:
			ctl_errmsg("%s: unknown option or missing value: %s", argv[0],
			       argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (o.help) {
		usage(stdout);
		return EXIT_OK;
	}
	o.pos = argv + optind;
	o.npos = argc - optind;
	if (!tools && (o.lockfile || o.by)) {
		ctl_errmsg("%s: --lockfile and --by belong to 'tools'", argv[0]);
		return EXIT_USAGE;
	}
	if (keys && o.key) {
		ctl_errmsg("keys: --key belongs to 'usage'");
		return EXIT_USAGE;
	}
	if (!o.url)
		o.url = getenv("MCPWARDEN_ADMIN_URL");
	if (!o.url || !o.url[0])
		o.url = DEFAULT_URL;
	token = load_token(o.token_file);
	if (!token)
		return EXIT_FAIL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_errmsg("cannot initialise libcurl");
		rc = EXIT_FAIL;
	} else {
		rc = keys ? keys_cmd(&o, token) : tools ? tools_cmd(&o, token)
			  : usage_cmd(&o, token);
		curl_global_cleanup();
	}
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	return rc;
}
