/* toolpin: pinned tool definitions (docs/tool-integrity.md).
 *
 * Each upstream tool's definition is pinned by its digest (govern/tool_digest.h) as first
 * approved: on first sight (trust on first use) unless tool_pins.require_approval, through the
 * admin API (POST /v1/tools/pins/<server>/<tool>/approve), or from the operator's lockfile
 * (tool_pins.lockfile: {"<server>": {"<tool>": "<digest>"}}, read with the configuration).
 * Pins are kept in the store (table tool_pins, written by its writer thread) and loaded at
 * start-up. A tool listed with another digest is "changed"; one never approved (require_approval)
 * is "new"; what a key then sees is its policy's tool_integrity: withhold (hidden from lists,
 * calls refused with -32012), warn (passed; the change is on record) or off.
 *
 * Every change of what an upstream lists is one tool_change record (old and new digest and a
 * readable diff), every pin a tool_pin record. Loop thread only.
 */
#ifndef WARDEN_TOOLPIN_H
#define WARDEN_TOOLPIN_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "govern/tool_digest.h"

struct config_errors;
struct store;
struct toolpins;

enum tool_integrity {
	TOOL_INTEGRITY_UNSET = -1,      /* a policy that does not say: the default applies */
	TOOL_INTEGRITY_OFF,
	TOOL_INTEGRITY_WARN,
	TOOL_INTEGRITY_WITHHOLD,
};

enum pin_state { PIN_OK, PIN_CHANGED, PIN_NEW };

/* The "tool_pins" section. */
struct toolpin_config {
	enum tool_integrity mode;       /* for keys whose policies do not say, and auth off */
	bool require_approval;          /* new tools wait for an approval too */
	const char *lockfile;           /* borrowed from the config; NULL: none */
};

/* Parse root's "tool_pins" (absent: mode withhold, no approval needed for new tools, no
 * lockfile). 0 or -EINVAL with errs filled. */
int toolpin_config_parse(const cJSON *root, struct toolpin_config *out,
			 struct config_errors *errs);
/* "off", "warn", "withhold" → the mode, or TOOL_INTEGRITY_UNSET. */
enum tool_integrity tool_integrity_parse(const char *s);
const char *tool_integrity_name(enum tool_integrity m);
const char *pin_state_name(enum pin_state s);

/* st may be NULL (validation only): nothing is persisted. */
struct toolpins *toolpins_new(struct store *st);
void toolpins_free(struct toolpins *tp);
void toolpins_set_config(struct toolpins *tp, const struct toolpin_config *cfg);
/* Start-up: the pins the store holds (blocking read, before traffic). */
int toolpins_load(struct toolpins *tp);
/* The lockfile's digests ({server: {tool: digest}}, NULL: none) replace the pins they
 * disagree with (approved_by "lockfile"), persisted. Returns how many pins it changed. */
int toolpins_apply_lock(struct toolpins *tp, const cJSON *lock);

/* A tool an upstream lists: def is the upstream's own object (its own name), digest its
 * digest. Pins it on first sight unless approval is required; records a change the first time
 * it is seen. Returns its state. */
enum pin_state toolpins_see(struct toolpins *tp, const char *server, const char *tool,
			    const cJSON *def, const char *digest);
/* The state of a tool with that digest, without recording anything (PIN_NEW: never pinned). */
enum pin_state toolpins_state(const struct toolpins *tp, const char *server, const char *tool,
			      const char *digest);

/* Approve the definition last seen of server/tool, by `by` (for the record). 0: cb(arg, err)
 * follows once durable; 1: already approved (nothing to do, cb not called); -ENOENT: no such
 * tool seen since start; -ENOMEM/-ECANCELED: not queued. */
int toolpins_approve(struct toolpins *tp, const char *server, const char *tool, const char *by,
		     void (*cb)(void *arg, int err), void *arg);

/* Every pin and every tool seen, as the admin API lists them: sorted by server and tool,
 * {server, tool, state, digest, current_digest, approved_at, approved_by, diff}. state is
 * "pinned", "changed", "new" or "absent" (pinned, not listed since start). */
cJSON *toolpins_json(const struct toolpins *tp);

#endif
