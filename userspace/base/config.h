/* config: loading and validating the daemon's JSON configuration.
 *
 * config_load() reads a file (or the embedded default), validates every field and returns a
 * struct config, or fills a config_errors list where each entry names the field path
 * ("upstreams[1].url: not an http(s) URL"). Modules that own a section (enforcement, keys,
 * policies, ...) parse it themselves from config->raw with the cfg_* helpers below, so their
 * errors carry paths in the same form. A config is immutable once loaded; SIGHUP builds a new
 * one and swaps it only if the whole new file is valid.
 */
#ifndef WARDEN_CONFIG_H
#define WARDEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define CONFIG_NAME_MAX 32       /* upstream names: [a-z0-9-]{1,32} */
#define CONFIG_MAX_ERRORS 32

enum upstream_kind { UPSTREAM_STDIO, UPSTREAM_HTTP, UPSTREAM_SSE /* legacy HTTP+SSE */ };
enum prefix_mode { PREFIX_AUTO, PREFIX_ALWAYS, PREFIX_NEVER };

struct config_header {
	char *name;
	char *value;        /* already resolved from the environment where the config asked */
};

struct upstream_config {
	char *name;
	enum upstream_kind kind;
	/* stdio */
	char **argv;        /* NULL-terminated; argv[0] is the program */
	char **envp;        /* NULL-terminated "KEY=VALUE": the child's whole environment */
	char *cwd;          /* NULL: the daemon's */
	bool per_session;   /* one child per downstream session instead of one shared child */
	/* http */
	char *url;
	struct config_header *headers;
	size_t nheaders;
	/* both */
	int connect_timeout_ms;
	int request_timeout_ms;
	bool validate_args; /* validate tools/call arguments against inputSchema */
	bool charge_failures;
	/* "circuit": the upstream's circuit breaker (govern/circuit.h); failures 0: none */
	unsigned circuit_failures;
	int64_t circuit_window_ms, circuit_open_for_ms;
};

#define CONFIG_WORKERS_MAX 64      /* a session id names its loop in two hex digits */

struct config {
	char *path;                 /* file it came from, or "(embedded)" */
	/* agent-facing listener */
	char *listen_host;          /* default 127.0.0.1 */
	int listen_port;            /* 0: pick a free port (tests) */
	char *mcp_path;             /* default /mcp */
	char **allowed_origins;     /* NULL-terminated; loopback origins are always allowed */
	/* admin listener (separate port; NULL host: disabled) */
	char *admin_host;
	int admin_port;
	char *admin_token;          /* resolved; NULL when no admin plane */
	enum prefix_mode prefix;
	bool auth_required;         /* false only for no-auth loopback test mode */
	/* limits and timeouts */
	size_t max_body_bytes;
	size_t max_header_bytes;
	unsigned max_sessions;
	unsigned max_sessions_per_key;     /* open sessions of one key (0: no cap) */
	unsigned max_pending_per_session;  /* requests in progress in one session (0: no cap) */
	unsigned max_stdio_children;       /* children of per_session stdio upstreams (0: no cap) */
	unsigned max_connections;          /* open client connections, per listener */
	unsigned max_connections_per_peer; /* the same, from one source address */
	int header_timeout_ms;      /* a whole request must arrive within this (from the connection
				     * or the previous answer); also the idle keep-alive limit */
	int session_idle_ms;        /* a session with no request for this long is ended */
	int startup_timeout_ms;     /* requests wait at most this for every upstream to list */
	int request_timeout_ms;     /* default upstream call timeout */
	int connect_timeout_ms;     /* default upstream connect timeout */
	unsigned workers;           /* event loops serving the agent listener (1..64) */
	char *log_level;
	char *state_dir;            /* SQLite store and other durable state */
	struct upstream_config *upstreams;
	size_t nupstreams;
	cJSON *raw;                 /* the whole parsed document, owned */
	cJSON *tool_lock;           /* tool_pins.lockfile's content, read with the config (off
				     * the loop on a reload); NULL: none or no such file yet */
	bool shrunk;                /* config_shrink: no keys and teams sections any more */
	/* The "providers" and "llm" sections as llm/ parsed them where reading is allowed to
	 * block (start-up, or the reload thread: API keys come from files), for the loop to
	 * adopt; freed with the config by llm_free when still here. */
	void *llm;
	void (*llm_free)(void *llm);
};

/* The keys and teams sections are most of a large config (100k keys: ~1 KB each as a parse
 * tree) and are read only when gate rules are parsed from it (govern/gate.h). Once they are,
 * config_shrink deletes them from raw: the gate's keystore holds the keys, and a reload that
 * has to go back to this configuration takes its rules back from the gate
 * (gate_free_keep_rules) instead of parsing them again. gate_rules_parse refuses a shrunk
 * config. */
void config_shrink(struct config *c);

/* The sections a reload can replace without restarting anything: the gate's (keys, teams,
 * policies, costs, budgets, rate_limits, auth, tool_pins) and the LLM route's (providers,
 * llm). NULL-terminated. */
extern const char *const config_governance[];
/* Do a and b (two configs' raw documents) differ in nothing but those sections? */
bool config_only_governance_differs(const cJSON *a, const cJSON *b);
/* to takes from's governance sections (moved: whatever borrowed from them stays valid), its
 * tool lockfile's content and its auth.required (shrunk when from is). */
void config_take_governance(struct config *to, struct config *from);

struct config_errors {
	int count;
	char msg[CONFIG_MAX_ERRORS][384];
};

/* Load and validate; on failure returns -EINVAL and fills errs (every problem, each with its
 * field path). path NULL loads the embedded default. */
int config_load(const char *path, struct config **out, struct config_errors *errs);
/* Parse from memory (tests, embedded default). */
int config_parse(const char *text, const char *origin, struct config **out,
		 struct config_errors *errs);
void config_free(struct config *c);
const struct upstream_config *config_upstream(const struct config *c, const char *name);

/* Helpers for modules that own a section. Each records an error at `path.key` in errs and
 * returns -EINVAL when the field is present but wrong, or missing and required; returns
 * -ENOENT (without an error) when an optional field is absent (out untouched). */
int config_fail(struct config_errors *errs, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cfg_string(const cJSON *obj, const char *key, const char *path, bool required,
	       const char **out, struct config_errors *errs);
int cfg_int(const cJSON *obj, const char *key, const char *path, bool required,
	    long long min, long long max, long long *out, struct config_errors *errs);
int cfg_bool(const cJSON *obj, const char *key, const char *path, bool required, bool *out,
	     struct config_errors *errs);
/* A string, or {"env": "NAME"} resolved from the environment (error if unset). Caller frees. */
int cfg_secret(const cJSON *obj, const char *key, const char *path, bool required, char **out,
	       struct config_errors *errs);
/* A duration: "250ms", "60s", "5m", "1h" or a number of milliseconds, within [min, max]. */
int cfg_duration_ms(const cJSON *obj, const char *key, const char *path, bool required,
		    int64_t min, int64_t max, int64_t *out, struct config_errors *errs);
/* Every key of obj must be in allowed (NULL-terminated): unknown fields are errors, so typos
 * are caught rather than silently ignored. */
int cfg_known_keys(const cJSON *obj, const char *path, const char *const *allowed,
		   struct config_errors *errs);

/* A section read from a table of its fields (config_fields.c): each field's name, type, bounds
 * and offset in the module's struct written once; cfg_fields() rejects unknown fields, checks
 * and converts every one with the helpers above and records each problem at its field path
 * ("logs.queue: must be between 16 and 16777216 (got 3)"). The defaults are the struct's
 * values before the call: an absent field is left as it was. */
enum cfg_type {
	CFG_KNOWN,              /* accepted, read by the caller itself (or a "_comment") */
	CFG_BOOL,               /* bool */
	CFG_STRING,             /* const char *, borrowed from the document */
	CFG_COPY,               /* char *, a copy the struct owns (cfg_fields_free); a value
				 * already there (a default the caller copied) is replaced */
	CFG_SECRET,             /* as CFG_COPY, or {"env": "NAME"} (cfg_secret) */
	CFG_INT,                /* int, within [min, max] (which must fit an int) */
	CFG_UINT,               /* unsigned, within [min, max] (which must fit) */
	CFG_I64,                /* int64_t, within [min, max] */
	CFG_SIZE,               /* size_t, within [min, max] (min >= 0) */
	CFG_DURATION_MS,        /* int64_t milliseconds ("250ms", "5s", "1h" or a number) */
};

enum {
	CFG_REQUIRED = 1 << 0,  /* missing is an error */
	CFG_NONEMPTY = 1 << 1,  /* strings: "" is an error */
};

struct cfg_field {
	const char *name;
	enum cfg_type type;
	size_t offset;          /* of the member in the caller's struct (unused for CFG_KNOWN) */
	long long min, max;     /* numbers; strings: max > 0 is the longest accepted */
	unsigned flags;
};

/* A field named as its member of struct st, or otherwise; one accepted but read by the caller;
 * the end. */
#define CFG_FIELD(st, member, type, min, max, flags) \
	{ #member, type, offsetof(st, member), min, max, flags }
#define CFG_FIELD_AS(name, st, member, type, min, max, flags) \
	{ name, type, offsetof(st, member), min, max, flags }
#define CFG_KNOWN_FIELD(name) { name, CFG_KNOWN, 0, 0, 0, 0 }
#define CFG_END { NULL, CFG_KNOWN, 0, 0, 0, 0 }

/* Read the fields of obj (at path, e.g. "logs") into out; the table ends with { NULL }. 0, or
 * -EINVAL with every problem in errs (out may then hold some of the values read). */
int cfg_fields(const cJSON *obj, const char *path, const struct cfg_field *fields, void *out,
	       struct config_errors *errs);
/* Free every string the table's CFG_COPY and CFG_SECRET fields own in st (secrets wiped first)
 * and clear them: the struct's destructor, for the fields its table reads. */
void cfg_fields_free(const struct cfg_field *fields, void *st);

#endif
