/* audit: `wardenctl audit verify`, the auditor's check of the log store's chain
 * (observe/logverify.h, docs/audit.md). It reads the SQLite file read-only: neither the daemon
 * nor the pins are needed. It parses its own options; its exit statuses are the verdicts. */
#include "wardenctl.h"

#include "observe/logverify.h"
#include "base/hex.h"
#include "base/rfc3339.h"

#define AUDIT_EXIT_USAGE 64     /* 1..4 are verdicts: see logverify.h */
#define STATE_DIR_DEFAULT "/var/lib/mcpwarden"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wardenctl audit verify [--db PATH | --state-dir DIR] [--since TIME]\n"
		"                              [--checkpoint HEX@SEQ] [--json]\n"
		"       wardenctl audit verify --postgres CONNINFO --sidecar NAME\n"
		"                              [--table-prefix P] [--since TIME] [--checkpoint ...]\n"
		"Walks the log store's hash chain from its anchor (or from the first record at or\n"
		"after TIME: RFC 3339 or unix milliseconds) and names the first record that was\n"
		"changed, removed or inserted. --checkpoint compares the chain at record SEQ with\n"
		"the head HEX of a checkpoint record kept outside (a log pipeline's copy).\n"
		"The store is --db PATH, else DIR/logs.db (default " STATE_DIR_DEFAULT "), or with\n"
		"--postgres the fleet's shared store (one sidecar's chain; ids are its seqs; the\n"
		"password from PGPASSWORD or ~/.pgpass; docs/fleet-logs.md).\n"
		"Exit status: 0 intact, 1 changed, 2 removed, 3 inserted, 4 cannot read the store,\n"
		"64 bad command line. See docs/audit.md.\n");
}

/* RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)) or a date, or unix milliseconds. */
static int parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *p;

	if (*s && strspn(s, "0123456789") == strlen(s)) {
		*out = strtoll(s, NULL, 10);
		return 0;
	}
	p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -EINVAL;
	if (*p)
		return rfc3339_parse_ms(s, out);
	*out = (int64_t)timegm(&tm) * 1000;
	return 0;
}

static int parse_checkpoint(const char *s, struct logverify_options *o)
{
	const char *at = strchr(s, '@');
	char *end;

	if (!at || at - s != 2 * LOGCHAIN_HASH_LEN)
		return -EINVAL;
	for (int i = 0; i < LOGCHAIN_HASH_LEN; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		o->checkpoint[i] = (uint8_t)(hi << 4 | lo);
	}
	o->checkpoint_seq = strtoll(at + 1, &end, 10);
	if (end == at + 1 || *end || o->checkpoint_seq < 1)
		return -EINVAL;
	o->have_checkpoint = true;
	return 0;
}

static const char *const verdicts[] = { "intact", "changed", "removed", "inserted",
					 "unreadable" };

static int verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'b' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "since", required_argument, NULL, 'S' },
		{ "checkpoint", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "postgres", required_argument, NULL, 'P' },
		{ "sidecar", required_argument, NULL, 'N' },
		{ "table-prefix", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct logverify_options o = { .since_ms = INT64_MIN };
	struct logverify_result r;
	const char *db = NULL, *dir = NULL, *pg = NULL, *sidecar = NULL, *prefix = "mcpwarden_";
	char path[4096];
	bool json = false;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': db = optarg; break;
		case 's': dir = optarg; break;
		case 'S':
			if (parse_time(optarg, &o.since_ms)) {
				ctl_errmsg("--since wants RFC 3339 (2026-01-31T12:00:00Z) or unix ms");
				return AUDIT_EXIT_USAGE;
			}
			break;
		case 'c':
			if (parse_checkpoint(optarg, &o)) {
				ctl_errmsg("--checkpoint wants HEX@SEQ: a checkpoint record's head "
					   "(64 hex digits) and head_seq");
				return AUDIT_EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'P': pg = optarg; break;
		case 'N': sidecar = optarg; break;
		case 'T': prefix = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return AUDIT_EXIT_USAGE;
		}
	}
	if (optind < argc || (db && dir) || (pg && (db || dir)) || (!pg != !sidecar) ||
	    strspn(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(prefix) || !*prefix) {
		usage(stderr);
		return AUDIT_EXIT_USAGE;
	}
	if (pg) {
		o.path = db = pg;
		logverify_pg_run(&o, sidecar, prefix, &r);
	} else {
		if (!db) {
			snprintf(path, sizeof(path), "%s/logs.db", dir ? dir : STATE_DIR_DEFAULT);
			db = path;
		}
		o.path = db;
		logverify_run(&o, &r);
	}
	if (json) {
		cJSON *j = cJSON_CreateObject();
		char head[2 * LOGCHAIN_HASH_LEN + 1];
		for (int i = 0; i < LOGCHAIN_HASH_LEN; i++)
			snprintf(head + 2 * i, 3, "%02x", r.head[i]);
		if (!j || !cJSON_AddStringToObject(j, "result", verdicts[r.status]) ||
		    (r.id && !cJSON_AddNumberToObject(j, "id", (double)r.id)) ||
		    !cJSON_AddNumberToObject(j, "checked", (double)r.checked) ||
		    !cJSON_AddNumberToObject(j, "first_id", (double)r.first_id) ||
		    !cJSON_AddNumberToObject(j, "last_id", (double)r.last_id) ||
		    !cJSON_AddStringToObject(j, "head", head) ||
		    (o.have_checkpoint &&
		     !cJSON_AddBoolToObject(j, "checkpoint_checked", r.checkpoint_checked)) ||
		    !cJSON_AddStringToObject(j, "detail", r.detail)) {
			cJSON_Delete(j);
			ctl_errmsg("out of memory");
			return LOGVERIFY_UNREADABLE;
		}
		ctl_print_json(j);
		cJSON_Delete(j);
	} else {
		printf("%s: %s\n", pg ? sidecar : db, r.detail);
		if (o.have_checkpoint && !r.checkpoint_checked && r.status == LOGVERIFY_INTACT)
			printf("note: the checkpoint's record %lld is outside the walk (retention "
			       "deleted it, or --since starts after it): not compared\n",
			       (long long)o.checkpoint_seq);
	}
	return (int)r.status;
}

int ctl_audit_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? AUDIT_EXIT_USAGE : EXIT_OK;
	}
	if (strcmp(argv[1], "verify")) {
		ctl_errmsg("audit: unknown subcommand '%s'", argv[1]);
		usage(stderr);
		return AUDIT_EXIT_USAGE;
	}
	return verify(argc - 1, argv + 1);
}
