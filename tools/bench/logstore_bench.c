/* logstore_bench: what the log store costs and holds (docs/performance.md, docs/audit.md).
 *
 *   logstore_bench                    fill a temporary store with 200,000 decision records as
 *                                     the router makes them; print the loop's cost per record,
 *                                     the writer's rate and the bytes per stored record
 *   logstore_bench --fill PATH N      fill PATH with N such records (varied keys, teams, servers,
 *                                     tools, decisions, statuses): the data set of the logs
 *                                     API's filtered-page benchmark
 *
 * Records go through audit_decision, the daemon's own path (stdout goes to /dev/null here).
 * LOGBENCH_TOOLS=N: N tools per server instead of 40 (many distinct targets);
 * LOGBENCH_MAX_BYTES=N: logs.max_bytes, so that retention by size runs all along (the
 * writer's figure then includes the deletions).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "observe/audit.h"
#include "observe/logstore.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static off_t file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_size : 0;
}

static unsigned tools = 40;     /* per server */

/* Record i: a plausible mix (90% allowed, 6% refused, 4% errors) over 50 keys, 5 teams,
 * 4 servers and 40 tools (LOGBENCH_TOOLS). */
static void one(unsigned i, const char *shape, cJSON *ok, cJSON *denied, cJSON *failed)
{
	static const char *const servers[] = { "github", "memory", "files", "search" };
	char key[16], team[16], tool[40], sid[40];
	unsigned r = (i * 2654435761u) >> 7;
	bool deny = r % 100 < 6, err = !deny && r % 100 < 10;
	struct audit_decision d = {
		.session = sid, .key = key, .team = team, .method = "tools/call",
		.server = servers[r % 4], .target = tool,
		.decision = deny ? "deny" : err ? "error" : "allow",
		.reason = deny ? "not permitted: policy \"ro\": annotation readOnlyHint=true required"
			: err ? "upstream timed out" : NULL,
		.response = deny ? denied : err ? failed : ok,
		.cost_micros = deny || err ? -1 : 1000,
		.args_shape = shape,
		.latency_us = 800 + r % 5000, .went_upstream = !deny, .upstream_us = 700 + r % 4000,
	};

	snprintf(key, sizeof(key), "agent-%02u", r % 50);
	snprintf(team, sizeof(team), "team-%u", r % 5);
	snprintf(tool, sizeof(tool), "%s__tool_%02u", d.server, r % tools);
	snprintf(sid, sizeof(sid), "%08x-session", r % 1000);
	audit_decision(&d);
}

static int fill(const char *path, unsigned n, bool report)
{
	struct logstore_options o = { .enabled = true, .path = (char *)path,
				      .max_age_s = LOGSTORE_MAX_AGE_S_DEFAULT,
				      .max_bytes = 1LL << 40, .queue = 1u << 20,
				      .checkpoint_every = LOGSTORE_CHECKPOINT_EVERY_DEFAULT };
	const char *shape = "{\"path\":\"string\",\"limit\":\"number\"}";
	cJSON *ok = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
				"\"text\",\"text\":\"a result of about a hundred bytes, as small "
				"tools answer: done, 3 files\"}]}}");
	cJSON *denied = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32003,"
				    "\"message\":\"Not permitted: tool is refused by policy\"}}");
	cJSON *failed = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32009,"
				    "\"message\":\"Upstream timed out\"}}");
	const char *mb = getenv("LOGBENCH_MAX_BYTES"), *nt = getenv("LOGBENCH_TOOLS");
	int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY), rc;
	struct logstore_stats st;
	double t0, t1, t2, loop0, loop1, proc0, proc1;

	if (mb)
		o.max_bytes = strtoll(mb, NULL, 10);
	if (nt && strtoul(nt, NULL, 10) > 0)
		tools = (unsigned)strtoul(nt, NULL, 10);
	if (!ok || !denied || !failed || saved < 0 || null < 0) {
		fprintf(stderr, "logstore_bench: out of memory or descriptors\n");
		return 1;
	}
	/* The same records with the store off first: what the loop paid before the store. */
	double off0 = 0, off1 = 0;
	if (report) {
		fflush(stdout);
		dup2(null, STDOUT_FILENO);
		off0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		for (unsigned i = 0; i < n; i++)
			one(i, shape, ok, denied, failed);
		off1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		dup2(saved, STDOUT_FILENO);
	}
	rc = logstore_start(&o, audit_note);
	if (rc) {
		fprintf(stderr, "logstore_bench: %s: %s\n", path, strerror(-rc));
		return 1;
	}
	fflush(stdout);
	dup2(null, STDOUT_FILENO);
	t0 = now_s();
	loop0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	proc0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	/* LOGBENCH_BATCH=N: one transaction per N records, as a lighter load makes them. */
	const char *b = getenv("LOGBENCH_BATCH");
	unsigned batch = b ? (unsigned)strtoul(b, NULL, 10) : 0;
	for (unsigned i = 0; i < n; i++) {
		one(i, shape, ok, denied, failed);
		if (batch && (i + 1) % batch == 0)
			logstore_flush();
	}
	t1 = now_s();
	loop1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	logstore_flush();
	t2 = now_s();
	proc1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	logstore_get_stats(&st);
	logstore_stop();
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(null);
	off_t bytes = file_size(path);
	if (report) {
		printf("records            %u (dropped %llu)\n", n, (unsigned long long)st.dropped);
		/* CPU time, not wall time: on a shared machine the wall clock measures the
		 * neighbours. */
		printf("loop CPU           %.2f us/record (audit_decision: JSON, stdout line, queue); "
		       "%.2f with the store off\n", (loop1 - loop0) / n * 1e6, (off1 - off0) / n * 1e6);
		printf("writer CPU         %.2f us/record (batch insert, chain, FTS5, 2 partial indexes, block summaries): "
		       "%.0f records/s per core\n", (proc1 - proc0 - (loop1 - loop0)) / n * 1e6,
		       n / (proc1 - proc0 - (loop1 - loop0)));
		printf("wall               %.2f s to append, %.2f s until all stored\n", t1 - t0,
		       t2 - t0);
		printf("bytes per record   %.0f (database %lld bytes)\n", (double)bytes / n,
		       (long long)bytes);
		printf("1 GiB holds        %.1f million records\n", (1 << 30) / ((double)bytes / n) / 1e6);
	} else {
		printf("%s: %u records, %lld bytes, writer CPU %.2f us/record\n", path, n,
		       (long long)bytes, (proc1 - proc0 - (loop1 - loop0)) / n * 1e6);
	}
	cJSON_Delete(ok);
	cJSON_Delete(denied);
	cJSON_Delete(failed);
	return st.dropped ? 1 : 0;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/mcpwarden-logbench-XXXXXX", path[64];
	int rc;

	if (argc == 4 && !strcmp(argv[1], "--fill")) {
		long n = strtol(argv[3], NULL, 10);
		if (n <= 0 || n > 100000000) {
			fprintf(stderr, "usage: logstore_bench [--fill PATH N]\n");
			return 2;
		}
		return fill(argv[2], (unsigned)n, false);
	}
	if (argc != 1) {
		fprintf(stderr, "usage: logstore_bench [--fill PATH N]\n");
		return 2;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/logs.db", dir);
	rc = fill(path, 200000, true);
	unlink(path);
	snprintf(path, sizeof(path), "%s/logs.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/logs.db-shm", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}
