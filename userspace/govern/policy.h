/* policy: which tools, resources and prompts a key may see and use.
 *
 * A policy set is parsed from the config's "policies" object (the language is in
 * docs/policy.md): per kind, "allow" and "deny" lists of "<server>/<name>" glob patterns, plus
 * annotation rules for tools. Nothing is allowed unless an allow pattern matches; a matching deny
 * pattern always wins. A key is governed by its own policy and its team's policy together: an
 * entry must be allowed by both.
 *
 * Decisions are precompiled: policy_compile() evaluates a (policy, team policy) pair against the
 * whole catalogue once and returns a view, so a call costs one array read. A policy_cache keeps
 * one view per pair in use (100,000 keys sharing 10 policies cost 10 views) and drops them all
 * when the catalogue changes. A view borrows its refusal texts from its policy set: free views
 * (and caches) before the set.
 *
 * Not thread-safe: owned by the event-loop thread.
 */
#ifndef WARDEN_POLICY_H
#define WARDEN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct config_errors;
struct policy_set;
struct policy_view;
struct policy_cache;

enum policy_kind { POLICY_TOOL, POLICY_RESOURCE, POLICY_PROMPT };

/* One catalogue entry, as the upstream named it (never the prefixed name agents see, so the
 * prefix mode cannot change what a key may do). */
struct policy_entry {
	enum policy_kind kind;
	const char *server;            /* upstream name */
	const char *name;              /* tool name, resource URI or prompt name */
	const cJSON *annotations;      /* tools: the ToolAnnotations object, or NULL */
};

/* Parse root's "policies" object (absent: an empty set, which allows nothing). Returns 0,
 * -EINVAL with every problem in errs (each naming its field path), or -ENOMEM. */
int policy_set_parse(const cJSON *root, struct policy_set **out, struct config_errors *errs);
void policy_set_free(struct policy_set *ps);
bool policy_set_has(const struct policy_set *ps, const char *name);
/* Argument and result values in the records (docs/policy.md): *opted_in says whether the key's
 * policy or its team's has "log_arguments": true; if so, a copy of v (NULL: none, or out of
 * memory) with both policies' "redact" field names replaced by "[redacted]"; else NULL. */
cJSON *policy_logged_copy(const struct policy_set *ps, const char *policy,
			  const char *team_policy, const cJSON *v, bool *opted_in);

/* The tool_integrity (enum tool_integrity, govern/toolpin.h) a key with these policies gets:
 * the stricter of the two that say one, TOOL_INTEGRITY_UNSET (-1) when neither does. */
int policy_tool_integrity(const struct policy_set *ps, const char *policy,
			  const char *team_policy);
/* The strictest tool_integrity any policy sets (-1: none does). */
int policy_tool_integrity_max(const struct policy_set *ps);
/* The loop breaker of a key: its own policy's, else its team policy's. false: none. */
bool policy_loop_breaker(const struct policy_set *ps, const char *policy, const char *team_policy,
			 unsigned *max_repeats, int64_t *window_ms);

/* Evaluate one entry (e.g. a resources/read of a URI from a template, not in the catalogue).
 * policy or team_policy may be NULL or "" (that side imposes nothing) but not both. Returns 0
 * (allowed), -EACCES (refused; *why says by which rule), -ENOENT (no such policy) or -EINVAL. */
int policy_check(const struct policy_set *ps, const char *policy, const char *team_policy,
		 const struct policy_entry *e, const char **why);

/* Compile a pair against entries[0..n-1]. Same policy arguments and errors as policy_check. */
int policy_compile(const struct policy_set *ps, const char *policy, const char *team_policy,
		   const struct policy_entry *entries, size_t n, struct policy_view **out);
/* O(1). An index outside the view is refused. why (may be NULL) gets the refusing rule, e.g.
 * `policy "ro": deny tools fs/delete_*`, or NULL when allowed. */
bool policy_view_allows(const struct policy_view *v, size_t index, const char **why);
/* Number of allowed entries, and the first allowed index >= from (n when none): a filtered
 * tools/list walks only what the key may see. */
size_t policy_view_count(const struct policy_view *v);
size_t policy_view_next(const struct policy_view *v, size_t from);
void policy_view_free(struct policy_view *v);

/* Views per (policy, team policy) pair, compiled on first use. The cache borrows ps and the
 * entries array (valid until the next policy_cache_set_catalogue or policy_cache_free). Any
 * thread may get views (one lock around a look); the catalogue is set by the thread that
 * owns it (loop 0). */
int policy_cache_new(const struct policy_set *ps, struct policy_cache **out);
void policy_cache_set_catalogue(struct policy_cache *c, const struct policy_entry *entries,
				size_t n);
/* The view for a pair (NULL/"" as in policy_check). A policy that does not exist yields a view
 * that refuses everything, naming the missing policy, so a stale key fails closed. Returns 0,
 * -EINVAL (both empty) or -ENOMEM. The view lives until the catalogue changes. */
int policy_cache_get(struct policy_cache *c, const char *policy, const char *team_policy,
		     const struct policy_view **out);
size_t policy_cache_views(struct policy_cache *c);
void policy_cache_free(struct policy_cache *c);

#endif
