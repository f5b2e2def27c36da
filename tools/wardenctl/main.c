/* wardenctl: the operator's and auditor's command line for mcpwarden's kernel enforcement.
 *
 * Read commands (status, maps, events) work from the bpffs pins alone, through the pins
 * module: an auditor needs neither the daemon nor its config. Changes (enroll, protect, ...)
 * go through the enforcer in ENFORCER_ADOPT mode, the same code the daemon uses, so both
 * keep the same rules (level mask, rule ids). `verify` proves end to end that an enrolled
 * cgroup really is refused. The manual is `wardenctl --help` and docs/wardenctl.md.
 *
 * This file: the options, the command table, the manual and main. */
#include "wardenctl.h"

/* ---- options ----------------------------------------------------------------------------- */

enum opt_id {
	O_PIN_DIR = 'd', O_JSON = 'j', O_HELP = 'h', O_VERBOSE = 'v', O_VERSION = 'V',
	O_CONTAINER = 'c', O_POD = 'p', O_MODE = 'm', O_FOLLOW = 'f', O_COUNT = 'n',
	O_TIMEOUT = 't',
	O_CGROUP_ROOT = 256, O_ID, O_UNIX, O_TAP, O_CONSUME, O_YES,
};

static const struct option all_opts[] = {
	{ "pin-dir", required_argument, NULL, O_PIN_DIR },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, O_HELP },
	{ "verbose", no_argument, NULL, O_VERBOSE },
	{ "version", no_argument, NULL, O_VERSION },
	{ "cgroup-root", required_argument, NULL, O_CGROUP_ROOT },
	{ "container", required_argument, NULL, O_CONTAINER },
	{ "pod", required_argument, NULL, O_POD },
	{ "mode", required_argument, NULL, O_MODE },
	{ "id", required_argument, NULL, O_ID },
	{ "unix", required_argument, NULL, O_UNIX },
	{ "follow", no_argument, NULL, O_FOLLOW },
	{ "count", required_argument, NULL, O_COUNT },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "tap", no_argument, NULL, O_TAP },
	{ "consume", no_argument, NULL, O_CONSUME },
	{ "yes", no_argument, NULL, O_YES },
	{ 0 },
};

/* Options every command accepts. */
#define COMMON_OPTS "dhvV" "\x01"	/* \x01 stands for --cgroup-root */

static const struct cmd *find_cmd(const char *name);

/* ---- keys, usage, tools: the daemon's admin API ------------------------------------------------ */

/* Never runs: main() hands these commands, with their own options, to ctl_admin_api_main(). */
static int cmd_admin_api(struct args *a)
{
	return EXIT_USAGE;
}

/* Never runs either: main() hands `identities` to ctl_identities_main(). */
static int cmd_identities(struct args *a)
{
	return EXIT_USAGE;
}

/* Never runs either: main() hands `audit` to ctl_audit_main(). */
static int cmd_audit(struct args *a)
{
	return EXIT_USAGE;
}

/* ---- help -------------------------------------------------------------------------------- */

static int cmd_help(struct args *a);

static const struct cmd cmds[] = {
	{ "status", cmd_status, "j", "status [--json]",
	  "programs, links, pins, kernel features, enrolment and counters",
	  "Shows whether enforcement is loaded and healthy: each hook's pinned link (link and\n"
	  "program ids, program tag, where it is attached, run statistics when\n"
	  "kernel.bpf_stats_enabled=1), the processes holding the event ring (the daemon), the\n"
	  "kernel features enforcement relies on (ring buffer, the unix-socket connect hook of\n"
	  "Linux 6.7+, bpf_stats), the number of enrolled cgroups by mode and rules, and the\n"
	  "allowed/denied/dropped counters. Exits 1 when a hook the kernel supports is not\n"
	  "attached." },
	{ "maps", cmd_maps, "j", "maps [--json]",
	  "every enforcement map as a readable table",
	  "Dumps warden_config, warden_enrolled (cgroup ids resolved to paths by scanning the\n"
	  "cgroup v2 tree; '(gone)' for removed cgroups), the protected destinations and the\n"
	  "allowlist (v4 and v6, as cidr[:port] with rule ids), the protected unix paths and\n"
	  "the per-hook counters. With --json: one object, keyed by map name." },
	{ "events", cmd_events, "jfnt\x04\x05",
	  "events [--follow] [--count N] [--timeout SEC] [--tap|--consume] [--json]",
	  "the deny-event stream from the pinned ring buffer",
	  "Prints one line per refused connect, send or socket (time, hook, destination, pid,\n"
	  "uid, comm, cgroup, protocol, reason, rule, mode); with --json, one JSON object per\n"
	  "line, the daemon's \"ebpf_deny\" audit record. Without --follow, --count or\n"
	  "--timeout it prints what is waiting in the ring and exits.\n"
	  "\n"
	  "The ring has one consumer position. When another process (the daemon) holds the ring,\n"
	  "wardenctl only taps it: it reads with a private cursor and never takes events from\n"
	  "the daemon's audit trail (if it falls a whole ring behind it says how often it\n"
	  "skipped ahead). When nobody else holds it, wardenctl consumes: events it prints are\n"
	  "gone from the ring. --tap and --consume force either way." },
	{ "enroll", cmd_enroll, "cpm", "enroll (PATH | --container ID | --pod UID) "
				       "[--mode lockdown|protect]",
	  "enforce on a cgroup (and everything below it)",
	  "PATH is a cgroup directory, absolute or relative to the cgroup v2 root. --container\n"
	  "takes a container id (or a unique prefix of at least 12 hex digits), --pod a pod\n"
	  "UID; both are found in the cgroupfs and systemd kubepods layouts. lockdown (the\n"
	  "default) allows only the sidecar endpoints and the allowlist; protect refuses the\n"
	  "protected destinations and allows the rest. Enrolling again changes the mode. The\n"
	  "cgroup v2 root itself is refused: it would enforce on the whole host.\n"
	  "Changes are live at once but runtime only: the daemon re-applies its config when it\n"
	  "starts." },
	{ "unenroll", cmd_unenroll, "cp\x02", "unenroll (PATH | --container ID | --pod UID | "
					      "--id N)",
	  "stop enforcing on a cgroup (also removes an exemption)",
	  "--id removes the entry of a cgroup that no longer exists (see 'maps')." },
	{ "exempt", cmd_exempt, "cp", "exempt (PATH | --container ID | --pod UID)",
	  "never enforce on a cgroup, even below an enrolled one (the sidecar's)",
	  "The nearest entry to a task wins, so the sidecar container's cgroup can be exempt\n"
	  "inside an enrolled pod cgroup. Remove with 'unenroll'." },
	{ "protect", cmd_protect, "\x03", "protect (CIDR[:PORT]... | --unix PATH)",
	  "add protected destinations (refused to protect-mode cgroups)",
	  "Destinations: a.b.c.d[/len][:port], v6addr[/len], [v6addr[/len]]:port; no port means\n"
	  "every port; ::ffff:a.b.c.d is stored as IPv4. --unix protects a unix socket path\n"
	  "(@name for an abstract one) in both modes; it needs the Linux 6.7+ hook." },
	{ "unprotect", cmd_unprotect, "\x03", "unprotect (CIDR[:PORT]... | --unix PATH)",
	  "remove protected destinations", "Exits 1 when an entry was not there." },
	{ "allow", cmd_allow, "", "allow CIDR[:PORT]...",
	  "add allowlist entries (lockdown: allowed; protect: exceptions to protected ranges)",
	  "Same destination syntax as 'protect'. Typical: the cluster DNS, 10.96.0.10/32:53." },
	{ "disallow", cmd_disallow, "", "disallow CIDR[:PORT]...",
	  "remove allowlist entries", "Exits 1 when an entry was not there." },
	{ "verify", cmd_verify, "jm", "verify [--mode protect|lockdown] [--json]",
	  "self-test: prove that an enrolled cgroup is refused",
	  "Creates a temporary cgroup under the cgroup v2 root and a listener on an ephemeral\n"
	  "127.0.0.1 port, enrolls the cgroup (protect mode with the listener protected by\n"
	  "default; lockdown with --mode lockdown), checks that a connect from wardenctl's own\n"
	  "cgroup succeeds, forks a child into the cgroup whose connects to 127.0.0.1:PORT and\n"
	  "[::ffff:127.0.0.1]:PORT must be refused with the configured errno, then checks the\n"
	  "deny counter and the deny event (pid, comm, destination) without taking it from the\n"
	  "daemon. Everything temporary is removed, also on failure; signals wait until then.\n"
	  "Exits 0 when every check passed, 1 otherwise." },
	{ "uninstall", cmd_uninstall, "\x06", "uninstall --yes",
	  "remove every pin: enforcement stops",
	  "Unpins the links and maps under the pin directory, which detaches the programs once\n"
	  "no process holds them (a running daemon does: stop it first). Also the way to clear\n"
	  "a pin directory left by a version with another map layout (ABI)." },
	{ "keys", cmd_admin_api, "", "keys (create [--name N] [--team T] [--policy P] "
				     "[--expires TIME] [--id ID] | list | show ID | revoke ID) "
				     "[--admin URL] [--token-file FILE] [--json]",
	  "virtual keys, through the daemon's admin API",
	  "create prints the new key once (only its hash is kept); list, show and revoke take\n"
	  "effect on the running daemon at once. --admin URL is the admin listener (default\n"
	  "$MCPWARDEN_ADMIN_URL, else http://127.0.0.1:8081); the admin token is read from\n"
	  "--token-file or $MCPWARDEN_ADMIN_TOKEN, never from the command line. Tables by\n"
	  "default, the API's JSON with --json. See docs/admin-api.md." },
	{ "usage", cmd_admin_api, "", "usage [reset] [--key ID | --team NAME] [--admin URL] "
				      "[--token-file FILE] [--json]",
	  "budget usage per key and team, through the daemon's admin API",
	  "One row per budget: scope, budget, period, spent, reserved, limit, remaining and\n"
	  "when it resets. 'usage reset --key ID' (or --team NAME) zeroes the current period's\n"
	  "counters, durably. Same --admin and token rules as 'keys'." },
	{ "audit", cmd_audit, "", "audit verify [--db PATH | --state-dir DIR] [--since TIME] "
				  "[--checkpoint HEX@SEQ] [--json]",
	  "check the log store's tamper-evident chain",
	  "Walks the SHA-256 chain of the log store (DIR/logs.db, read-only) from its anchor or\n"
	  "from --since (RFC 3339 or unix ms) and names the first record changed, removed or\n"
	  "inserted; --checkpoint HEX@SEQ also compares the chain with a checkpoint record's\n"
	  "head kept outside. Exit status: 0 intact, 1 changed, 2 removed, 3 inserted, 4 cannot\n"
	  "read the store, 64 bad command line. See docs/audit.md." },
	{ "tools", cmd_admin_api, "", "tools (diff [SERVER/TOOL] | approve SERVER/TOOL [--by NAME] "
				      "| pin --lockfile FILE) [--admin URL] [--token-file FILE] "
				      "[--json]",
	  "pinned tool definitions, through the daemon's admin API",
	  "diff lists every pinned or listed tool with its state (pinned, changed, new, absent)\n"
	  "and, for a changed one, which fields changed and the old and new description; it\n"
	  "exits 1 when a tool differs from its approval. approve pins the definition the\n"
	  "upstream lists now, so a withheld tool is listed and callable again. pin writes the\n"
	  "approved digests to FILE (tool_pins.lockfile) for the operator to commit. Same\n"
	  "--admin and token rules as 'keys'. See docs/tool-integrity.md." },
	{ "identities", cmd_identities, "", "identities --config FILE [--cgroup-root DIR] [--pin-dir DIR] [--json]",
	  "which cgroups the config's keys and keyless workloads name; the redirect table",
	  "Walks the cgroup v2 tree and lists every cgroup a key is bound to (keys[].workloads)\n"
	  "and the keyless workload (workloads[]) it would be governed as, matching its path\n"
	  "the way the daemon matches the caller the kernel names. When enforcement is\n"
	  "installed (pins readable under --pin-dir), also the redirect table: the connections\n"
	  "the kernel sent to the sidecar, with their cgroup and original destination.\n"
	  "See docs/policy.md and docs/enforcement.md." },
	{ "help", cmd_help, "", "help [COMMAND]", "this manual, or a command's", "" },
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void usage_line(FILE *f)
{
	fprintf(f, "usage: wardenctl [--pin-dir DIR] [--cgroup-root DIR] COMMAND [ARGS] "
		   "(wardenctl --help)\n");
}

static void print_manual(void)
{
	printf("NAME\n"
	       "    wardenctl - inspect and steer mcpwarden's kernel enforcement\n"
	       "\n"
	       "SYNOPSIS\n"
	       "    wardenctl [OPTIONS] COMMAND [ARGS]\n"
	       "    wardenctl COMMAND --help\n"
	       "\n"
	       "DESCRIPTION\n"
	       "    mcpwarden attaches eBPF programs at the cgroup v2 root and pins them, with its\n"
	       "    maps, under a bpffs directory, so enforcement outlives the daemon. wardenctl\n"
	       "    reads that state from the pins alone - the daemon need not run - and changes\n"
	       "    it through the same code the daemon uses. Needs root (CAP_BPF, CAP_SYS_ADMIN).\n"
	       "\n"
	       "COMMANDS\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		printf("    %-10s %s\n", cmds[i].name, cmds[i].summary);
	printf("\n"
	       "OPTIONS\n"
	       "    -d, --pin-dir DIR     the pin directory (default " WARDEN_PIN_DIR_DEFAULT ")\n"
	       "        --cgroup-root DIR the cgroup v2 root (default: /sys/fs/cgroup when it is\n"
	       "                          cgroup2, else /sys/fs/cgroup/unified)\n"
	       "    -j, --json            JSON output (status, maps, events, verify)\n"
	       "    -v, --verbose         say more (and show the enforcer's debug log)\n"
	       "    -h, --help            this manual; after a command, that command's\n"
	       "    -V, --version         print the version\n"
	       "    Command options are listed by 'wardenctl COMMAND --help'.\n"
	       "\n"
	       "EXIT STATUS\n"
	       "    0  success (verify: every check passed; status: every hook attached)\n"
	       "    1  the command failed, verify found enforcement not working, status found a\n"
	       "       hook detached, or events --count was not reached\n"
	       "    2  usage error\n"
	       "    3  enforcement is not loaded (no pins under the pin directory)\n"
	       "    4  permission denied (not root)\n"
	       "\n"
	       "EXAMPLES\n"
	       "    wardenctl status\n"
	       "    wardenctl enroll --container 3f2a9c1e5b7d --mode lockdown\n"
	       "    wardenctl enroll kubepods.slice/agent.scope --mode protect\n"
	       "    wardenctl protect 10.20.0.0/16:443 '[fd00::/8]:443'\n"
	       "    wardenctl allow 10.96.0.10/32:53\n"
	       "    wardenctl maps --json | jq '.maps.warden_enrolled'\n"
	       "    wardenctl events --follow\n"
	       "    wardenctl events --json --count 1 --timeout 10\n"
	       "    wardenctl verify\n"
	       "\n"
	       "SEE ALSO\n"
	       "    docs/wardenctl.md, bpftool-link(8), bpftool-map(8)\n");
}

static void print_cmd_help(const struct cmd *c)
{
	printf("NAME\n    wardenctl %s - %s\n\nSYNOPSIS\n    wardenctl [OPTIONS] %s\n", c->name,
	       c->summary, c->synopsis);
	if (c->details[0]) {
		const char *s = c->details;

		printf("\nDESCRIPTION\n");
		while (*s) {
			size_t n = strcspn(s, "\n");

			printf(n ? "    %.*s\n" : "\n", (int)n, s);
			s += n + (s[n] == '\n');
		}
	}
	printf("\nOPTIONS\n");
	for (const char *o = c->opts; *o; o++) {
		switch (*o) {
		case 'j': printf("    -j, --json          JSON output\n"); break;
		case 'c': printf("    -c, --container ID  a container id (or unique prefix)\n"); break;
		case 'p': printf("    -p, --pod UID       a pod UID\n"); break;
		case 'm': printf("    -m, --mode MODE     lockdown or protect\n"); break;
		case 'f': printf("    -f, --follow        keep reading until interrupted\n"); break;
		case 'n': printf("    -n, --count N       stop after N events (exit 1 if fewer)\n");
			  break;
		case 't': printf("    -t, --timeout SEC   stop after SEC seconds\n"); break;
		case '\x02': printf("        --id N          the cgroup id (for a removed cgroup)\n");
			     break;
		case '\x03': printf("        --unix PATH     a unix socket path (@name: abstract)\n");
			     break;
		case '\x04': printf("        --tap           never move the consumer position\n");
			     break;
		case '\x05': printf("        --consume       consume events (no daemon running)\n");
			     break;
		case '\x06': printf("        --yes           confirm\n");
			     break;
		}
	}
	printf("    and the global options: --pin-dir DIR, --cgroup-root DIR, --verbose\n");
	printf("\nEXIT STATUS\n    0 success, 1 failure, 2 usage, 3 not loaded, 4 not root "
	       "(see wardenctl --help)\n");
}

static int cmd_help(struct args *a)
{
	const struct cmd *c = a->npos ? find_cmd(a->pos[0]) : NULL;

	if (a->npos && !c) {
		ctl_errmsg("unknown command '%s'", a->pos[0]);
		return EXIT_USAGE;
	}
	if (c)
		print_cmd_help(c);
	else
		print_manual();
	return EXIT_OK;
}

/* ---- main -------------------------------------------------------------------------------- */

static char opt_letter(int id)
{
	switch (id) {
	case O_CGROUP_ROOT: return '\x01';
	case O_ID: return '\x02';
	case O_UNIX: return '\x03';
	case O_TAP: return '\x04';
	case O_CONSUME: return '\x05';
	case O_YES: return '\x06';
	default: return (char)id;
	}
}

static const char *opt_name(int id)
{
	for (const struct option *o = all_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

static int parse_number(const char *opt, const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > max) {
		ctl_errmsg("--%s: '%s' is not a number between 0 and %.0f", opt, s, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Where the command name is: the first argument that is neither an option nor the value of
 * a global option that takes one. */
static int command_index(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "--"))
			return i + 1 < argc ? i + 1 : -1;
		if (s[0] != '-' || !s[1])
			return i;
		if (!strcmp(s, "-d") || !strcmp(s, "--pin-dir") || !strcmp(s, "--cgroup-root"))
			i++;
	}
	return -1;
}

/* The one parse of the command line: the options of c (and the common ones) anywhere, in any
 * order with the arguments (getopt moves those to the end: the command name first). Before
 * the command, --json is accepted whatever the command (wardenctl --json status). Returns
 * EXIT_OK or EXIT_USAGE. */
static int parse_args(const struct cmd *c, int cmd_at, int argc, char **argv, struct args *a)
{
	int opt;

	optind = 0;	/* 0, not 1: glibc then forgets any previous scan's state */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "d:jhvVc:p:m:fn:t:", all_opts, NULL)) != -1) {
		double num;

		if (opt == '?' || opt == ':') {
			if (optopt)
				ctl_errmsg("%s: unknown option or missing value: -%c",
					   c ? c->name : "wardenctl", optopt);
			else
				ctl_errmsg("%s: unknown option or missing value: %s",
					   c ? c->name : "wardenctl", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (!strchr(COMMON_OPTS, opt_letter(opt)) &&
		    (!c || !strchr(c->opts, opt_letter(opt)))) {
			if (opt == O_JSON && (cmd_at < 0 || optind - 1 < cmd_at)) {
				a->json = true;
				continue;
			}
			ctl_errmsg("--%s is not an option of '%s' (see wardenctl %s --help)",
				   opt_name(opt), c ? c->name : "wardenctl", c ? c->name : "");
			return EXIT_USAGE;
		}
		switch (opt) {
		case O_PIN_DIR: a->pin_dir = optarg; break;
		case O_CGROUP_ROOT: a->cgroup_root = optarg; break;
		case O_JSON: a->json = true; break;
		case O_HELP: a->help = true; break;
		case O_VERBOSE: a->verbose = true; break;
		case O_VERSION: printf("wardenctl %s\n", WARDEN_VERSION); exit(EXIT_OK);
		case O_CONTAINER: a->container = optarg; break;
		case O_POD: a->pod = optarg; break;
		case O_MODE: a->mode = optarg; break;
		case O_UNIX: a->unix_path = optarg; break;
		case O_FOLLOW: a->follow = true; break;
		case O_TAP: a->tap = true; break;
		case O_CONSUME: a->consume = true; break;
		case O_YES: a->yes = true; break;
		case O_ID:
			if (parse_number(opt_name(opt), optarg, 1.8e19, &num) < 0)
				return EXIT_USAGE;
			a->id = strtoull(optarg, NULL, 10);
			a->have_id = true;
			break;
		case O_COUNT:
			if (parse_number(opt_name(opt), optarg, 1e9, &num) < 0 || num < 1 ||
			    num != (long)num) {
				ctl_errmsg("--count wants a whole number of events, at least 1");
				return EXIT_USAGE;
			}
			a->count = (long)num;
			break;
		case O_TIMEOUT:
			if (parse_number(opt_name(opt), optarg, 1e7, &num) < 0 || num <= 0) {
				ctl_errmsg("--timeout wants a positive number of seconds");
				return EXIT_USAGE;
			}
			a->timeout_s = num;
			break;
		}
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct args a = { .pin_dir = WARDEN_PIN_DIR_DEFAULT };
	int cmd_at, rc;
	const struct cmd *c;

	alloc_init();
	cmd_at = command_index(argc, argv);
	c = cmd_at > 0 ? find_cmd(argv[cmd_at]) : NULL;
	/* keys and usage talk to the daemon's admin API: the admin client owns their options. */
	if (c && c->run == cmd_admin_api)
		return ctl_admin_api_main(argc - cmd_at, argv + cmd_at);
	if (c && c->run == cmd_audit)
		return ctl_audit_main(argc - cmd_at, argv + cmd_at);
	if (c && c->run == cmd_identities)
		return ctl_identities_main(argc - cmd_at, argv + cmd_at);
	rc = parse_args(c, cmd_at, argc, argv, &a);
	if (rc != EXIT_OK) {
		usage_line(stderr);
		return rc;
	}
	if (cmd_at < 0) {
		if (a.help) {
			print_manual();
			return EXIT_OK;
		}
		usage_line(stderr);
		return EXIT_USAGE;
	}
	if (!c) {
		ctl_errmsg("unknown command '%s'", argv[cmd_at]);
		usage_line(stderr);
		return EXIT_USAGE;
	}
	a.cmd = c->name;
	a.pos = argv + optind + 1;	/* after the command name, which getopt left first */
	a.npos = argc - optind - 1;
	if (a.help) {
		print_cmd_help(c);
		return EXIT_OK;
	}
	/* The enforcer's own log lines (stderr) add the reason behind a refused change. */
	log_set_level(a.verbose ? LOG_DEBUG : LOG_ERROR);
	return c->run(&a);
}
