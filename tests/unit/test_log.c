/* The record stream (base/log.h): records made on the event loop reach stdout whole and in
 * order, handed to the writer thread once per loop turn; other threads' records go at once. */
#include <CUnit/Basic.h>
#include <fcntl.h>
#include <sched.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cunit_main.h"
#include "thread_test_util.h"

static char path[] = "/tmp/test_log.XXXXXX";
static int out_fd = -1, saved_stdout = -1;

/* stdout to a fresh file (CUnit's own output is flushed first and restored after). */
static void capture(void)
{
	fflush(stdout);
	out_fd = mkstemp(path);
	CU_ASSERT_FATAL(out_fd >= 0);
	saved_stdout = dup(STDOUT_FILENO);
	CU_ASSERT_FATAL(saved_stdout >= 0);
	CU_ASSERT_FATAL(dup2(out_fd, STDOUT_FILENO) == STDOUT_FILENO);
}

/* Restore stdout; the captured text (caller frees). */
static char *release(void)
{
	char *buf = calloc(1, 1 << 16);
	ssize_t n;

	CU_ASSERT_FATAL(dup2(saved_stdout, STDOUT_FILENO) == STDOUT_FILENO);
	close(saved_stdout);
	n = pread(out_fd, buf, (1 << 16) - 1, 0);
	CU_ASSERT(n >= 0);
	close(out_fd);
	unlink(path);
	strcpy(path, "/tmp/test_log.XXXXXX");
	return buf;
}

static off_t written(void)
{
	return lseek(out_fd, 0, SEEK_END);
}

static void *other_thread(void *arg)
{
	log_record_text("{\"from\":\"thread\"}");
	return NULL;
}

struct turn {
	off_t during;           /* bytes on stdout while the callback ran */
};

static void on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct turn *t = arg;
	char line[32];

	for (int i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "{\"n\":%d}", i);
		log_record_text(line);
	}
	usleep(20000);          /* time enough for a writer that had them to write them */
	t->during = written();
}

static void test_loop_turn(void)
{
	struct event_base *base = event_base_new();
	struct turn t = { -1 };
	struct event *ev;
	pthread_t th;
	char *text;

	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	capture();
	CU_ASSERT_EQUAL_FATAL(log_async_start(), 0);
	CU_ASSERT_EQUAL_FATAL(log_loop_attach(base), 0);
	ev = event_new(base, -1, 0, on_turn, &t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	event_active(ev, EV_TIMEOUT, 1);
	CU_ASSERT_EQUAL(event_base_loop(base, EVLOOP_ONCE), 0);
	/* Staged during the turn, handed over at its end. */
	CU_ASSERT_EQUAL(t.during, 0);
	for (int i = 0; i < 100 && written() < 24; i++)
		usleep(10000);
	CU_ASSERT_EQUAL(written(), 24);
	/* Another thread's record goes straight to the writer. */
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, other_thread, NULL), 0);
	pthread_join(th, NULL);
	for (int i = 0; i < 100 && written() < 42; i++)
		usleep(10000);
	CU_ASSERT_EQUAL(written(), 42);
	/* Staged and never turned: detach hands it over, stop writes it out. */
	log_record_text("{\"last\":true}");
	log_loop_detach();
	log_async_stop();
	text = release();
	CU_ASSERT_STRING_EQUAL(text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"from\":\"thread\"}\n"
			       "{\"last\":true}\n");
	free(text);
	event_free(ev);
	event_base_free(base);
}

#define REUSE_TURNS 60
#define REUSE_PER_TURN 4

/* One turn's records, k from turn * REUSE_PER_TURN on, from a few bytes to over 2 KiB: the
 * lines they go out in come back from the writer and are filled again, larger or smaller. */
static void reuse_lines(int turn, char *expect, size_t *len, bool send)
{
	static char pad[2600];
	char line[2700];

	memset(pad, 'x', sizeof(pad) - 1);
	for (int i = 0; i < REUSE_PER_TURN; i++) {
		int k = turn * REUSE_PER_TURN + i;
		int n = snprintf(line, sizeof(line), "{\"k\":%d,\"p\":\"%.*s\"}", k,
				 (k * 613) % 2500, pad);

		if (send)
			log_record_text(line);
		memcpy(expect + *len, line, (size_t)n);
		expect[*len + (size_t)n] = '\n';
		*len += (size_t)n + 1;
	}
}

static void on_reuse_turn(evutil_socket_t fd, short what, void *arg)
{
	int *turn = arg;
	size_t ignored = 0;
	static char scratch[REUSE_PER_TURN * 2700];

	reuse_lines(*turn, scratch, &ignored, true);
}

/* The writer gives written lines back for the loop's next records: over many turns of
 * records of every length the stream stays whole and in order. */
static void test_lines_reused(void)
{
	size_t cap = REUSE_TURNS * REUSE_PER_TURN * 2700, len = 0;
	char *expect = malloc(cap), *got = calloc(1, cap + 1);
	struct event_base *base = event_base_new();
	struct event *ev;
	int turn = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(expect);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	capture();
	CU_ASSERT_EQUAL_FATAL(log_async_start(), 0);
	CU_ASSERT_EQUAL_FATAL(log_loop_attach(base), 0);
	ev = event_new(base, -1, 0, on_reuse_turn, &turn);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	for (turn = 0; turn < REUSE_TURNS; turn++) {
		event_active(ev, EV_TIMEOUT, 1);
		CU_ASSERT_EQUAL(event_base_loop(base, EVLOOP_ONCE), 0);
		reuse_lines(turn, expect, &len, false);
		/* Written, so the lines are back before the next turn takes them. */
		for (int i = 0; i < 200 && written() < (off_t)len; i++)
			usleep(5000);
		CU_ASSERT_EQUAL(written(), (off_t)len);
	}
	log_loop_detach();
	log_async_stop();
	CU_ASSERT_EQUAL(pread(out_fd, got, cap, 0), (ssize_t)len);
	CU_ASSERT(memcmp(got, expect, len) == 0);
	free(release());
	free(got);
	free(expect);
	event_free(ev);
	event_base_free(base);
}

/* stderr to /dev/null while operational messages are logged (restored after). */
static int mute_stderr(void)
{
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);

	CU_ASSERT_FATAL(saved >= 0 && null >= 0);
	CU_ASSERT_FATAL(dup2(null, STDERR_FILENO) == STDERR_FILENO);
	close(null);
	return saved;
}

static void unmute_stderr(int saved)
{
	CU_ASSERT(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
}

/* Whether the writer's stats say idle (or not) within 5 s. */
static bool writer_idle_becomes(bool idle)
{
	struct log_async_stats st;

	for (int i = 0; i < 500; i++) {
		log_async_get_stats(&st);
		if (st.idle == idle)
			return true;
		usleep(10000);
	}
	return false;
}

#define STARVED_RECORDS 2048    /* of 1 KiB: twice LOG_RAISE_BYTES */

/* logs.writer_priority "idle": the writer waits in the kernel's idle class. An operational
 * message raises it (read as it comes); after it has written that, it is idle again. On a CPU
 * that a normal thread keeps busy it gets next to nothing, so records pile up: at
 * LOG_RAISE_BYTES it is raised, and every record reaches stdout whole and in order. */
static void test_writer_idle(void)
{
	struct log_async_stats st0, st;
	struct busy_cpu busy;
	char line[1024];
	size_t len = 0;
	int saved;

	capture();
	CU_ASSERT_EQUAL_FATAL(log_async_start(), 0);
	log_async_get_stats(&st0);
	CU_ASSERT(!st0.idle);
	log_async_idle(true);
	CU_ASSERT(thread_policy_becomes("mcpw-records", SCHED_IDLE));
	log_async_get_stats(&st);
	CU_ASSERT(st.running && st.idle);

	saved = mute_stderr();
	log_warn("an operational message");
	log_async_get_stats(&st);
	CU_ASSERT(st.raised == st0.raised + 1);
	CU_ASSERT(writer_idle_becomes(true));
	unmute_stderr(saved);
	CU_ASSERT(thread_policy_becomes("mcpw-records", SCHED_IDLE));

	log_async_get_stats(&st0);
	CU_ASSERT_FATAL(busy_cpu_start(&busy));
	for (int i = 0; i < STARVED_RECORDS; i++) {
		int n = snprintf(line, sizeof(line), "{\"i\":%d,\"p\":\"", i);

		memset(line + n, 'x', sizeof(line) - (size_t)n - 3);
		memcpy(line + sizeof(line) - 3, "\"}", 3);
		log_record_text(line);
		len += sizeof(line);    /* 1023 bytes and the newline */
	}
	log_async_get_stats(&st);
	CU_ASSERT(busy_cpu_end(&busy));
	CU_ASSERT(st.raised >= st0.raised + 1);
	CU_ASSERT(writer_idle_becomes(true));
	log_async_stop();
	CU_ASSERT_EQUAL(written(), (off_t)len);
	char *head = release();         /* the first 64 KiB: in order */
	CU_ASSERT(strncmp(head, "{\"i\":0,", 7) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(head, "\n{\"i\":1,\"p\""));
	free(head);
}

/* A record line: "ts" and "type" first, then the object's members as they are. */
static void test_record_line(void)
{
	cJSON *o = cJSON_Parse("{\"a\":1,\"b\":\"x\\\"y\",\"c\":[1,2.5],\"d\":{}}");
	cJSON *empty = cJSON_CreateObject();
	int64_t ms = 0;
	char *line;

	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	line = log_record_line("decision", o, &ms);
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	CU_ASSERT(ms > 1700000000000);
	CU_ASSERT_EQUAL(strncmp(line, "{\"ts\":\"20", 9), 0);
	CU_ASSERT_EQUAL(strlen(line), strlen("{\"ts\":\"2026-01-01T00:00:00.000Z\",") +
			strlen("\"type\":\"decision\",\"a\":1,\"b\":\"x\\\"y\",\"c\":[1,2.5],\"d\":{}}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "Z\",\"type\":\"decision\",\"a\":1,\"b\":\"x\\\"y\","
					     "\"c\":[1,2.5],\"d\":{}}"));
	cJSON *back = cJSON_Parse(line);
	CU_ASSERT_PTR_NOT_NULL(back);
	cJSON_Delete(back);
	cJSON_free(line);
	line = log_record_line("t", empty, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "Z\",\"type\":\"t\"}"));
	CU_ASSERT_EQUAL(line[strlen(line) - 1], '}');
	cJSON_free(line);
	line = log_record_line("t", NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "Z\",\"type\":\"t\"}"));
	cJSON_free(line);
	/* A type that needs escaping still makes valid JSON. */
	line = log_record_line("odd\"type", o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	back = cJSON_Parse(line);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(back, "type")), "odd\"type");
	cJSON_Delete(back);
	cJSON_free(line);
	cJSON_Delete(empty);
	cJSON_Delete(o);
}

/* Numbers in a record line are printed exactly as cJSON prints them, and the object's numbers
 * are left as they were. */
static void test_record_numbers(void)
{
	static const double v[] = { 0, -0.0, 1, -5, 42.5, 123456789012345.0, 999999999999999.0,
				    1e15, -1e15, 1e17, 2147483648.0, -9007199254740993.0, 1e-7,
				    0.1, 1e300 };
	cJSON *o = cJSON_CreateObject();
	char name[16], *ref, *line;

	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(name, sizeof(name), "n%u", i);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cJSON_AddNumberToObject(o, name, v[i]));
	}
	ref = cJSON_PrintUnformatted(o);
	line = log_record_line("decision", o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	CU_ASSERT_STRING_EQUAL(line + strlen(line) - strlen(ref + 1), ref + 1);
	CU_ASSERT_EQUAL(line[strlen(line) - strlen(ref + 1) - 1], ',');
	unsigned i = 0;
	for (cJSON *it = o->child; it; it = it->next, i++) {
		CU_ASSERT(cJSON_IsNumber(it));
		CU_ASSERT_PTR_NULL(it->valuestring);
		CU_ASSERT(memcmp(&it->valuedouble, &v[i], sizeof(double)) == 0);
	}
	cJSON_free(line);
	cJSON_free(ref);
	cJSON_Delete(o);
}

CU_MAIN("log", NULL, NULL,
	{ "records of a loop turn", test_loop_turn },
	{ "written lines are filled again, the stream whole", test_lines_reused },
	{ "record lines", test_record_line },
	{ "numbers in record lines", test_record_numbers },
	{ "an idle writer is raised to be read, and when it falls behind", test_writer_idle })
