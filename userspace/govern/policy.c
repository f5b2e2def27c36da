/* policy: parsing policies, evaluating catalogue entries, compiled views and their cache. */
#include "govern/policy.h"
#include "govern/redact.h"

#include "base/alloc.h"
#include "base/config.h"
#include "base/htab.h"
#include "base/json_get.h"
#include "govern/loop_guard.h"
#include "govern/toolpin.h"

#include <errno.h>
#include <pthread.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NKINDS 3
#define PATTERN_MAX 1024
#define NAME_MAX_MATCH 4096   /* longer names (client-sent URIs) are refused, not matched */
#define POLICY_NAME_MAX 64

/* The four boolean ToolAnnotations hints. */
enum hint { H_READ_ONLY, H_DESTRUCTIVE, H_IDEMPOTENT, H_OPEN_WORLD, NHINTS };

static const char *const hint_names[NHINTS] = {
	"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"
};
static const char *const kind_names[NKINDS] = { "tools", "resources", "prompts" };

/* Refusal texts live in the set's table; index 0 means "allowed". */
enum { WHY_ALLOWED, WHY_DOT_DOT, WHY_BAD_ENTRY, WHY_TOO_LONG, WHY_FIRST_RULE };

struct pattern {
	char *server;     /* glob over the upstream name */
	char *name;       /* glob over the tool name, resource URI or prompt name */
	uint32_t why;     /* refusal text when this is a deny pattern */
};

struct rules {
	struct pattern *allow, *deny;
	size_t nallow, ndeny;
	uint32_t no_allow;
};

struct policy {
	char *name;
	struct rules kind[NKINDS];
	signed char require[NHINTS];  /* -1: no rule, else the value a tool must have */
	signed char deny[NHINTS];     /* -1: no rule, else the value that refuses a tool */
	uint32_t require_why[NHINTS], deny_why[NHINTS];
	signed char integrity;        /* enum tool_integrity; -1: not said */
	unsigned loop_max;            /* loop_breaker.max_repeats; 0: none */
	int64_t loop_window_ms;
	bool log_arguments;           /* records hold argument and result values */
	char **redact;                /* field names whose values are replaced */
	size_t nredact;
};

struct policy_set {
	struct policy *pol;           /* sorted by name */
	size_t npol;
	char **why;
	size_t nwhy, capwhy;
};

struct policy_view {
	const struct policy_set *ps;
	size_t n, nallowed;
	uint64_t *bits;               /* allowed entries */
	uint32_t *why;                /* per entry: index of its refusal text, 0 when allowed */
	char *refuse_all;             /* set when the view is over a policy that does not exist */
	/* Then bits and why, or refuse_all's text: the view is one allocation. */
};

/* ---- parsing ---- */

static int __attribute__((format(printf, 3, 4)))
add_why(struct policy_set *ps, uint32_t *idx, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (ps->nwhy == ps->capwhy) {
		size_t cap = ps->capwhy ? ps->capwhy * 2 : 16;
		char **nw = cap <= UINT32_MAX ? realloc(ps->why, cap * sizeof(*nw)) : NULL;

		if (!nw)
			return -ENOMEM;
		ps->why = nw;
		ps->capwhy = cap;
	}
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	ps->why[ps->nwhy] = s;
	*idx = (uint32_t)ps->nwhy++;
	return 0;
}

static bool valid_policy_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POLICY_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}

/* "<server glob>/<name glob>". The server part can only use what server names use
 * ([a-z0-9-]) and glob characters, so a typo like "GitHub/x" is an error, not a silent no-op. */
static int parse_pattern(const char *text, const char *path, struct pattern *p,
			 struct config_errors *errs)
{
	const char *slash = strchr(text, '/');
	size_t sl;

	if (strlen(text) > PATTERN_MAX)
		return config_fail(errs, path, "pattern longer than %d bytes", PATTERN_MAX);
	if (!slash || slash == text || !slash[1])
		return config_fail(errs, path, "\"%s\": must be \"<server>/<name>\" "
				   "(globs * and ?; \"*/*\" is everything)", text);
	sl = (size_t)(slash - text);
	if (strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789-*?[]!^") < sl)
		return config_fail(errs, path, "\"%s\": the server part can never match a server "
				   "name (names use a-z 0-9 -)", text);
	p->server = strndup(text, sl);
	p->name = strdup(slash + 1);
	if (!p->server || !p->name)
		return -ENOMEM;
	return 0;
}

static int parse_patterns(const cJSON *sec, const char *key, const char *path,
			  struct pattern **out, size_t *nout, struct config_errors *errs)
{
	const cJSON *arr = json_get(sec, key);
	char ep[192];
	size_t i = 0;
	int rc = 0, r;

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr)) {
		snprintf(ep, sizeof(ep), "%s.%s", path, key);
		return config_fail(errs, ep, "must be an array of \"<server>/<name>\" patterns");
	}
	*out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (const cJSON *it = arr->child; it; it = it->next, i++) {
		snprintf(ep, sizeof(ep), "%s.%s[%zu]", path, key, i);
		*nout = i + 1;  /* counts what must be freed */
		if (!cJSON_IsString(it))
			r = config_fail(errs, ep, "must be a string");
		else
			r = parse_pattern(it->valuestring, ep, &(*out)[i], errs);
		if (r == -ENOMEM)
			return r;
		if (r)
			rc = -EINVAL;
	}
	return rc;
}

static int parse_kind(struct policy_set *ps, struct policy *p, int kind, const cJSON *sec,
		      const char *path, struct config_errors *errs)
{
	static const char *const fields[] = { "allow", "deny", NULL };
	struct rules *r = &p->kind[kind];
	int rc = 0, e;

	if (sec && !cJSON_IsObject(sec))
		return config_fail(errs, path, "must be an object with \"allow\" and \"deny\"");
	if (sec) {
		if (cfg_known_keys(sec, path, fields, errs))
			rc = -EINVAL;
		e = parse_patterns(sec, "allow", path, &r->allow, &r->nallow, errs);
		if (e == -ENOMEM)
			return e;
		rc = rc ? rc : e;
		e = parse_patterns(sec, "deny", path, &r->deny, &r->ndeny, errs);
		if (e == -ENOMEM)
			return e;
		rc = rc ? rc : e;
		if (rc)
			return -EINVAL;
	}
	for (size_t i = 0; i < r->ndeny; i++) {
		e = add_why(ps, &r->deny[i].why, "policy \"%s\": deny %s %s/%s", p->name,
			    kind_names[kind], r->deny[i].server, r->deny[i].name);
		if (e)
			return e;
	}
	return add_why(ps, &r->no_allow, "policy \"%s\": no allow rule for %s matches", p->name,
		       kind_names[kind]);
}

static int parse_hints(const cJSON *obj, const char *path, signed char *vals,
		       struct config_errors *errs)
{
	char ep[192];
	int rc = 0;

	if (!cJSON_IsObject(obj))
		return config_fail(errs, path, "must be an object of annotation hints and booleans");
	for (const cJSON *it = obj->child; it; it = it->next) {
		int h;

		for (h = 0; h < NHINTS; h++) {
			if (strcmp(it->string, hint_names[h]) == 0)
				break;
		}
		snprintf(ep, sizeof(ep), "%.120s.%.64s", path, it->string);
		if (h == NHINTS)
			rc = config_fail(errs, ep, "unknown annotation (readOnlyHint, "
					 "destructiveHint, idempotentHint, openWorldHint)");
		else if (!cJSON_IsBool(it))
			rc = config_fail(errs, ep, "must be true or false");
		else
			vals[h] = cJSON_IsTrue(it) ? 1 : 0;
	}
	return rc ? -EINVAL : 0;
}

static int parse_annotations(struct policy_set *ps, struct policy *p, const cJSON *sec,
			     const char *path, struct config_errors *errs)
{
	static const char *const fields[] = { "require", "deny", NULL };
	const cJSON *req, *deny;
	char ep[192];
	int rc = 0, e;

	memset(p->require, -1, sizeof(p->require));
	memset(p->deny, -1, sizeof(p->deny));
	if (!sec)
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, path, "must be an object with \"require\" and \"deny\"");
	if (cfg_known_keys(sec, path, fields, errs))
		rc = -EINVAL;
	req = json_get(sec, "require");
	deny = json_get(sec, "deny");
	snprintf(ep, sizeof(ep), "%s.require", path);
	if (req && parse_hints(req, ep, p->require, errs))
		rc = -EINVAL;
	snprintf(ep, sizeof(ep), "%s.deny", path);
	if (deny && parse_hints(deny, ep, p->deny, errs))
		rc = -EINVAL;
	for (int h = 0; h < NHINTS && !rc; h++) {
		if (p->require[h] >= 0 && p->require[h] == p->deny[h]) {
			snprintf(ep, sizeof(ep), "%s.deny.%s", path, hint_names[h]);
			rc = config_fail(errs, ep, "contradicts require.%s: no tool could pass",
					 hint_names[h]);
		}
	}
	for (int h = 0; h < NHINTS && !rc; h++) {
		if (p->require[h] >= 0 &&
		    (e = add_why(ps, &p->require_why[h], "policy \"%s\": annotation %s=%s required",
				 p->name, hint_names[h], p->require[h] ? "true" : "false")))
			return e;
		if (p->deny[h] >= 0 &&
		    (e = add_why(ps, &p->deny_why[h], "policy \"%s\": annotation %s=%s denied",
				 p->name, hint_names[h], p->deny[h] ? "true" : "false")))
			return e;
	}
	return rc;
}

/* tool_integrity (govern/toolpin.h) and loop_breaker {max_repeats, window}. */
static int parse_integrity(struct policy *p, const cJSON *j, const char *path,
			   struct config_errors *errs)
{
	static const char *const lb_fields[] = { "max_repeats", "window", NULL };
	const cJSON *lb = json_get(j, "loop_breaker");
	char lp[128];
	const char *s;
	long long x;
	int rc = 0, e;

	p->integrity = TOOL_INTEGRITY_UNSET;
	e = cfg_string(j, "tool_integrity", path, false, &s, errs);
	if (e == 0 && (p->integrity = (signed char)tool_integrity_parse(s)) == TOOL_INTEGRITY_UNSET)
		e = config_fail(errs, path, "tool_integrity must be \"withhold\", \"warn\" or \"off\"");
	if (e && e != -ENOENT)
		rc = -EINVAL;
	if (!lb)
		return rc;
	snprintf(lp, sizeof(lp), "%s.loop_breaker", path);
	if (!cJSON_IsObject(lb))
		return config_fail(errs, lp, "must be an object {max_repeats, window}");
	if (cfg_known_keys(lb, lp, lb_fields, errs))
		rc = -EINVAL;
	if (cfg_int(lb, "max_repeats", lp, true, 1, LOOP_GUARD_MAX_REPEATS, &x, errs) == 0)
		p->loop_max = (unsigned)x;
	else
		rc = -EINVAL;
	p->loop_window_ms = 60000;
	if (cfg_duration_ms(lb, "window", lp, false, 1, 86400000, &p->loop_window_ms, errs) ==
	    -EINVAL)
		rc = -EINVAL;
	return rc;
}

/* "redact": ["password", "token"]: field names, matched case-insensitively at any depth. */
static int parse_redact(struct policy *p, const cJSON *arr, const char *path,
			struct config_errors *errs)
{
	const cJSON *it;
	int n = cJSON_GetArraySize(arr);

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr) || n > 256)
		return config_fail(errs, path, "redact: must be an array of at most 256 field names");
	p->redact = calloc((size_t)n + 1, sizeof(*p->redact));
	if (!p->redact)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 256)
			return config_fail(errs, path, "redact[%zu]: must be a field name (1-256 "
					   "characters)", p->nredact);
		if (!(p->redact[p->nredact++] = strdup(it->valuestring)))
			return -ENOMEM;
	}
	return 0;
}

static int parse_policy(struct policy_set *ps, struct policy *p, const cJSON *j,
			struct config_errors *errs)
{
	static const char *const fields[] = {
		"description", "tools", "resources", "prompts", "annotations", "tool_integrity",
		"loop_breaker", "log_arguments", "redact",
		"llm",          /* read by llm/ (llm_config.c) */
		NULL
	};
	char path[96], ep[128];
	const char *desc;
	int rc = 0, e;

	snprintf(path, sizeof(path), "policies.%.64s", j->string);
	p->name = strdup(j->string);
	if (!p->name)
		return -ENOMEM;
	memset(p->require, -1, sizeof(p->require));
	memset(p->deny, -1, sizeof(p->deny));
	if (!valid_policy_name(j->string))
		return config_fail(errs, path, "policy names are 1-64 of A-Z a-z 0-9 _ - .");
	if (!cJSON_IsObject(j))
		return config_fail(errs, path, "must be an object");
	if (cfg_known_keys(j, path, fields, errs))
		rc = -EINVAL;
	e = cfg_string(j, "description", path, false, &desc, errs);
	if (e && e != -ENOENT)
		rc = -EINVAL;
	for (int k = 0; k < NKINDS; k++) {
		snprintf(ep, sizeof(ep), "%s.%s", path, kind_names[k]);
		e = parse_kind(ps, p, k, json_get(j, kind_names[k]), ep,
			       errs);
		if (e == -ENOMEM)
			return e;
		if (e)
			rc = -EINVAL;
	}
	if (parse_integrity(p, j, path, errs))
		rc = -EINVAL;
	if (cfg_bool(j, "log_arguments", path, false, &p->log_arguments, errs) == -EINVAL)
		rc = -EINVAL;
	e = parse_redact(p, json_get(j, "redact"), path, errs);
	if (e == -ENOMEM)
		return e;
	if (e)
		rc = -EINVAL;
	snprintf(ep, sizeof(ep), "%s.annotations", path);
	e = parse_annotations(ps, p, json_get(j, "annotations"), ep, errs);
	if (e == -ENOMEM)
		return e;
	return e ? -EINVAL : rc;
}

static int policy_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy *)a)->name, ((const struct policy *)b)->name);
}

static void free_rules(struct rules *r)
{
	for (size_t i = 0; i < r->nallow; i++) {
		free(r->allow[i].server);
		free(r->allow[i].name);
	}
	for (size_t i = 0; i < r->ndeny; i++) {
		free(r->deny[i].server);
		free(r->deny[i].name);
	}
	free(r->allow);
	free(r->deny);
}

void policy_set_free(struct policy_set *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->npol; i++) {
		for (int k = 0; k < NKINDS; k++)
			free_rules(&ps->pol[i].kind[k]);
		free(ps->pol[i].name);
		for (size_t r = 0; r < ps->pol[i].nredact; r++)
			free(ps->pol[i].redact[r]);
		free(ps->pol[i].redact);
	}
	for (size_t i = 0; i < ps->nwhy; i++)
		free(ps->why[i]);
	free(ps->why);
	free(ps->pol);
	free(ps);
}

int policy_set_parse(const cJSON *root, struct policy_set **out, struct config_errors *errs)
{
	const cJSON *pols = json_get(root, "policies");
	struct policy_set *ps = calloc(1, sizeof(*ps));
	uint32_t idx;
	int rc = -ENOMEM, e;

	*out = NULL;
	if (!ps)
		return -ENOMEM;
	/* Fixed texts at fixed indexes (see WHY_*). */
	if (add_why(ps, &idx, "allowed") ||
	    add_why(ps, &idx, "resource URI has a dot-dot path segment") ||
	    add_why(ps, &idx, "not a valid catalogue entry") ||
	    add_why(ps, &idx, "name longer than %d bytes", NAME_MAX_MATCH))
		goto out;
	rc = 0;
	if (pols && !cJSON_IsObject(pols)) {
		rc = config_fail(errs, "policies", "must be an object of named policies");
		goto out;
	}
	if (pols) {
		ps->pol = calloc((size_t)cJSON_GetArraySize(pols) + 1, sizeof(*ps->pol));
		if (!ps->pol) {
			rc = -ENOMEM;
			goto out;
		}
		for (const cJSON *j = pols->child; j; j = j->next) {
			e = parse_policy(ps, &ps->pol[ps->npol++], j, errs);
			if (e == -ENOMEM) {
				rc = e;
				goto out;
			}
			if (e)
				rc = -EINVAL;
		}
	}
	if (rc)
		goto out;
	if (ps->npol)
		qsort(ps->pol, ps->npol, sizeof(*ps->pol), policy_cmp);
	for (size_t i = 1; i < ps->npol; i++) {
		/* cJSON keeps duplicate object members: refuse them rather than pick one */
		if (strcmp(ps->pol[i - 1].name, ps->pol[i].name) == 0) {
			char path[96];

			snprintf(path, sizeof(path), "policies.%s", ps->pol[i].name);
			rc = config_fail(errs, path, "defined twice");
		}
	}
	if (rc)
		goto out;
	*out = ps;
	ps = NULL;
out:
	policy_set_free(ps);
	return rc < 0 ? rc : 0;
}

static const struct policy *find_policy(const struct policy_set *ps, const char *name)
{
	struct policy key = { .name = (char *)name };

	if (!ps->npol)
		return NULL;
	return bsearch(&key, ps->pol, ps->npol, sizeof(*ps->pol), policy_cmp);
}

bool policy_set_has(const struct policy_set *ps, const char *name)
{
	return name && find_policy(ps, name) != NULL;
}

cJSON *policy_logged_copy(const struct policy_set *ps, const char *policy,
			  const char *team_policy, const cJSON *v, bool *opted_in)
{
	const struct policy *p[2] = {
		ps && policy && *policy ? find_policy(ps, policy) : NULL,
		ps && team_policy && *team_policy ? find_policy(ps, team_policy) : NULL,
	};
	const char *names[512];
	size_t n = 0;

	*opted_in = (p[0] && p[0]->log_arguments) || (p[1] && p[1]->log_arguments);
	if (!*opted_in || !v)
		return NULL;
	for (int i = 0; i < 2; i++)
		for (size_t r = 0; p[i] && r < p[i]->nredact; r++)
			names[n++] = p[i]->redact[r];
	return redact_copy(v, names, n);
}

/* ---- evaluation ---- */

/* What an entry looks like to the rules, worked out once per entry. */
struct subject {
	const struct policy_entry *e;
	signed char hint[NHINTS];
	uint32_t refused;             /* refused before any policy looks at it */
};

/* A hint that is absent or not a boolean takes the spec's default. */
static bool hint_value(const cJSON *ann, const char *name, bool dflt)
{
	const cJSON *v = cJSON_IsObject(ann) ? json_get(ann, name) : NULL;

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* "..", "%2e%2e", ".%2e" or "%2e." between separators (or at the end). */
static bool has_dot_dot(const char *u)
{
	for (const char *p = u; *p; p++) {
		if (*p != '/' && *p != '\\')
			continue;
		const char *q = p + 1;
		int dots = 0;

		for (;;) {
			if (*q == '.') {
				q++;
			} else if (q[0] == '%' && q[1] == '2' && (q[2] == 'e' || q[2] == 'E')) {
				q += 3;
			} else {
				break;
			}
			dots++;
		}
		if (dots == 2 && (!*q || *q == '/' || *q == '\\' || *q == '?' || *q == '#'))
			return true;
	}
	return false;
}

static void subject_init(struct subject *s, const struct policy_entry *e)
{
	s->e = e;
	s->refused = WHY_ALLOWED;
	if (!e || (unsigned)e->kind >= NKINDS || !e->server || !e->name) {
		s->refused = WHY_BAD_ENTRY;
		return;
	}
	if (strnlen(e->name, NAME_MAX_MATCH + 1) > NAME_MAX_MATCH)
		s->refused = WHY_TOO_LONG;
	else if (e->kind == POLICY_RESOURCE && has_dot_dot(e->name))
		s->refused = WHY_DOT_DOT;
	if (e->kind != POLICY_TOOL)
		return;
	/* MCP ToolAnnotations defaults; destructiveHint and idempotentHint only mean something
	 * for a tool that is not read-only: a read-only tool destroys nothing and can be
	 * repeated. */
	bool ro = hint_value(e->annotations, "readOnlyHint", false);

	s->hint[H_READ_ONLY] = ro;
	s->hint[H_DESTRUCTIVE] = !ro && hint_value(e->annotations, "destructiveHint", true);
	s->hint[H_IDEMPOTENT] = ro || hint_value(e->annotations, "idempotentHint", false);
	s->hint[H_OPEN_WORLD] = hint_value(e->annotations, "openWorldHint", true);
}

static bool pattern_match(const struct pattern *p, const struct policy_entry *e)
{
	return fnmatch(p->server, e->server, 0) == 0 && fnmatch(p->name, e->name, 0) == 0;
}

/* Deny patterns first (deny wins), then an allow pattern must match, then the annotation
 * rules. Returns 0 or the index of the refusal text. */
static uint32_t eval(const struct policy *p, const struct subject *s)
{
	const struct rules *r = &p->kind[s->e->kind];
	size_t i;

	for (i = 0; i < r->ndeny; i++) {
		if (pattern_match(&r->deny[i], s->e))
			return r->deny[i].why;
	}
	for (i = 0; i < r->nallow; i++) {
		if (pattern_match(&r->allow[i], s->e))
			break;
	}
	if (i == r->nallow)
		return r->no_allow;
	if (s->e->kind != POLICY_TOOL)
		return WHY_ALLOWED;
	for (int h = 0; h < NHINTS; h++) {
		if (p->deny[h] >= 0 && s->hint[h] == p->deny[h])
			return p->deny_why[h];
		if (p->require[h] >= 0 && s->hint[h] != p->require[h])
			return p->require_why[h];
	}
	return WHY_ALLOWED;
}

static uint32_t eval_pair(const struct policy *p, const struct policy *t,
			  const struct policy_entry *e)
{
	struct subject s;
	uint32_t why;

	subject_init(&s, e);
	if (s.refused)
		return s.refused;
	why = p ? eval(p, &s) : WHY_ALLOWED;
	if (!why && t && t != p)
		why = eval(t, &s);
	return why;
}

static int resolve(const struct policy_set *ps, const char *policy, const char *team_policy,
		   const struct policy **p, const struct policy **t)
{
	*p = *t = NULL;
	if (policy && !*policy)
		policy = NULL;
	if (team_policy && !*team_policy)
		team_policy = NULL;
	if (!ps || (!policy && !team_policy))
		return -EINVAL;
	if (policy && !(*p = find_policy(ps, policy)))
		return -ENOENT;
	if (team_policy && !(*t = find_policy(ps, team_policy)))
		return -ENOENT;
	return 0;
}

int policy_check(const struct policy_set *ps, const char *policy, const char *team_policy,
		 const struct policy_entry *e, const char **why)
{
	const struct policy *p, *t;
	uint32_t w;
	int rc = resolve(ps, policy, team_policy, &p, &t);

	if (why)
		*why = NULL;
	if (rc)
		return rc;
	w = eval_pair(p, t, e);
	if (!w)
		return 0;
	if (why)
		*why = ps->why[w];
	return -EACCES;
}

/* ---- views ---- */

int policy_compile(const struct policy_set *ps, const char *policy, const char *team_policy,
		   const struct policy_entry *entries, size_t n, struct policy_view **out)
{
	const struct policy *p, *t;
	struct policy_view *v;
	int rc = resolve(ps, policy, team_policy, &p, &t);

	*out = NULL;
	if (rc)
		return rc;
	if (n && !entries)
		return -EINVAL;
	size_t words = n / 64 + 1;

	v = xcalloc(1, sizeof(*v) + words * sizeof(*v->bits) + (n + 1) * sizeof(*v->why));
	v->ps = ps;
	v->n = n;
	v->bits = (uint64_t *)(v + 1);
	v->why = (uint32_t *)(v->bits + words);
	for (size_t i = 0; i < n; i++) {
		v->why[i] = eval_pair(p, t, &entries[i]);
		if (!v->why[i]) {
			v->bits[i / 64] |= 1ULL << (i % 64);
			v->nallowed++;
		}
	}
	*out = v;
	return 0;
}

/* A view that refuses everything, for a pair naming a policy that does not exist. */
static int refuse_all_view(const struct policy_set *ps, const char *policy,
			   const char *team_policy, size_t n, struct policy_view **out)
{
	const char *missing = policy && *policy && !policy_set_has(ps, policy) ? policy
									      : team_policy;
#define REFUSAL "policy \"%s\" is not defined"
	size_t len = sizeof(REFUSAL) + strlen(missing);
	struct policy_view *v = xcalloc(1, sizeof(*v) + len);

	v->ps = ps;
	v->n = n;
	v->refuse_all = (char *)(v + 1);
	snprintf(v->refuse_all, len, REFUSAL, missing);
#undef REFUSAL
	*out = v;
	return 0;
}

bool policy_view_allows(const struct policy_view *v, size_t index, const char **why)
{
	if (index < v->n && v->bits && (v->bits[index / 64] >> (index % 64) & 1)) {
		if (why)
			*why = NULL;
		return true;
	}
	if (why) {
		if (v->refuse_all)
			*why = v->refuse_all;
		else if (index >= v->n)
			*why = v->ps->why[WHY_BAD_ENTRY];
		else
			*why = v->ps->why[v->why[index]];
	}
	return false;
}

size_t policy_view_count(const struct policy_view *v)
{
	return v->nallowed;
}

size_t policy_view_next(const struct policy_view *v, size_t from)
{
	if (!v->bits)
		return v->n;
	for (size_t w = from / 64; w * 64 < v->n; w++) {
		uint64_t bits = v->bits[w];

		if (w == from / 64)
			bits &= ~0ULL << (from % 64);
		if (bits)
			return w * 64 + (size_t)__builtin_ctzll(bits);
	}
	return v->n;
}

void policy_view_free(struct policy_view *v)
{
	free(v);
}

/* ---- cache ---- */

/* A compiled view per (key policy, team policy) pair; both "" when absent. */
struct cached {
	struct htab_node hnode;
	char *policy, *team_policy;
	struct policy_view *view;
};

struct pair_key {
	const char *policy, *team_policy;
};

/* Every loop reads it (workers: N), and a read may compile a view: one lock around a look. */
struct policy_cache {
	pthread_mutex_t mu;
	const struct policy_set *ps;
	const struct policy_entry *entries;
	size_t n;
	struct htab views;              /* struct cached by struct pair_key */
	const struct cached *last;      /* the last one found: a sidecar's calls mostly share it */
};

static uint64_t pair_hash(const struct htab *t, const void *key)
{
	const struct pair_key *k = key;

	/* asymmetric, so (a, b) and (b, a) do not always collide */
	return htab_hash_str(t, k->policy) ^ htab_hash_str(t, k->team_policy) * 0x9e3779b97f4a7c15ull;
}

static bool pair_eq(const struct htab_node *n, const void *key)
{
	const struct cached *e = htab_entry(n, struct cached, hnode);
	const struct pair_key *k = key;

	return strcmp(e->policy, k->policy) == 0 && strcmp(e->team_policy, k->team_policy) == 0;
}

static const struct htab_type pair_type = { pair_hash, pair_eq };

int policy_cache_new(const struct policy_set *ps, struct policy_cache **out)
{
	struct policy_cache *c = xcalloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if ((rc = htab_init(&c->views, &pair_type)) < 0) {
		free(c);
		return rc;
	}
	c->ps = ps;
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

static void cached_free(struct htab_node *n, void *arg)
{
	struct cached *e = htab_entry(n, struct cached, hnode);

	(void)arg;
	policy_view_free(e->view);
	free(e->policy);
	free(e->team_policy);
	free(e);
}

void policy_cache_set_catalogue(struct policy_cache *c, const struct policy_entry *entries,
				size_t n)
{
	pthread_mutex_lock(&c->mu);
	c->last = NULL;
	htab_drain(&c->views, cached_free, NULL);
	c->entries = entries;
	c->n = n;
	pthread_mutex_unlock(&c->mu);
}

static int cache_get_locked(struct policy_cache *c, const char *policy, const char *team_policy,
			    const struct policy_view **out);

int policy_cache_get(struct policy_cache *c, const char *policy, const char *team_policy,
		     const struct policy_view **out)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = cache_get_locked(c, policy, team_policy, out);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int cache_get_locked(struct policy_cache *c, const char *policy, const char *team_policy,
			    const struct policy_view **out)
{
	struct pair_key key = { policy ? policy : "", team_policy ? team_policy : "" };
	struct htab_node *hn;
	struct policy_view *view = NULL;
	struct cached *e;
	uint64_t h;
	int rc;

	*out = NULL;
	if (!*key.policy && !*key.team_policy)
		return -EINVAL;
	if (c->last && !strcmp(c->last->policy, key.policy) &&
	    !strcmp(c->last->team_policy, key.team_policy)) {
		*out = c->last->view;
		return 0;
	}
	h = pair_hash(&c->views, &key);
	if ((hn = htab_find_hashed(&c->views, &key, h))) {
		c->last = htab_entry(hn, struct cached, hnode);
		*out = c->last->view;
		return 0;
	}
	rc = policy_compile(c->ps, key.policy, key.team_policy, c->entries, c->n, &view);
	if (rc == -ENOENT)
		rc = refuse_all_view(c->ps, key.policy, key.team_policy, c->n, &view);
	if (rc)
		return rc;
	e = xcalloc(1, sizeof(*e));
	e->policy = xstrdup(key.policy);
	e->team_policy = xstrdup(key.team_policy);
	e->view = view;
	htab_insert_hashed(&c->views, &e->hnode, h);
	c->last = e;
	*out = view;
	return 0;
}

size_t policy_cache_views(struct policy_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = htab_count(&c->views);
	pthread_mutex_unlock(&c->mu);
	return n;
}

void policy_cache_free(struct policy_cache *c)
{
	if (!c)
		return;
	htab_drain(&c->views, cached_free, NULL);
	htab_fini(&c->views);
	pthread_mutex_destroy(&c->mu);
	free(c);
}


int policy_tool_integrity(const struct policy_set *ps, const char *policy,
			  const char *team_policy)
{
	const struct policy *a = ps && policy && *policy ? find_policy(ps, policy) : NULL;
	const struct policy *b = ps && team_policy && *team_policy ? find_policy(ps, team_policy) : NULL;
	int m = a ? a->integrity : TOOL_INTEGRITY_UNSET;

	if (!ps)
		return TOOL_INTEGRITY_UNSET;

	if (b && b->integrity > m)
		m = b->integrity;  /* the stricter of the two */
	return m;
}

int policy_tool_integrity_max(const struct policy_set *ps)
{
	int m = TOOL_INTEGRITY_UNSET;

	for (size_t i = 0; ps && i < ps->npol; i++)
		if (ps->pol[i].integrity > m)
			m = ps->pol[i].integrity;
	return m;
}

bool policy_loop_breaker(const struct policy_set *ps, const char *policy, const char *team_policy,
			 unsigned *max_repeats, int64_t *window_ms)
{
	const struct policy *a = ps && policy && *policy ? find_policy(ps, policy) : NULL;
	const struct policy *b = ps && team_policy && *team_policy ? find_policy(ps, team_policy) : NULL;
	const struct policy *p = a && a->loop_max ? a : b && b->loop_max ? b : NULL;

	if (!ps || !p)
		return false;
	*max_repeats = p->loop_max;
	*window_ms = p->loop_window_ms;
	return true;
}
