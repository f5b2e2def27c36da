/* Helpers for the tests of threads in the kernel's idle class (base/thread.h): a thread of
 * this process by name, its policy, and a CPU kept busy by a normal thread so that an idle one
 * on it gets next to nothing. */
#ifndef THREAD_TEST_UTIL_H
#define THREAD_TEST_UTIL_H

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The id of this process's thread named comm (0: none). */
static inline pid_t thread_tid(const char *comm)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t tid = 0;

	if (!d)
		return 0;
	while (!tid && (e = readdir(d))) {
		char path[300], name[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = '\0';
			if (!strcmp(name, comm))
				tid = (pid_t)atoi(e->d_name);
		}
		fclose(f);
	}
	closedir(d);
	return tid;
}

/* Whether the scheduling policy of the thread named comm becomes policy within 5 s. */
static inline bool thread_policy_becomes(const char *comm, int policy)
{
	for (int i = 0; i < 500; i++) {
		pid_t tid = thread_tid(comm);

		if (tid && sched_getscheduler(tid) == policy)
			return true;
		usleep(10000);
	}
	return false;
}

/* Every thread of the process on cpus (threads started after inherit it); false if one
 * could not be moved. */
static inline bool pin_all(const cpu_set_t *cpus)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool ok = d != NULL;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    sched_setaffinity((pid_t)atoi(e->d_name), sizeof(*cpus), cpus) != 0)
			ok = false;
	if (d)
		closedir(d);
	return ok;
}

/* A normal thread that keeps the CPU busy until busy_cpu_end. */
struct busy_cpu {
	pthread_t thread;
	atomic_bool spinning;
	cpu_set_t all;          /* the process's CPUs before */
};

static inline void *busy_cpu_spin(void *arg)
{
	struct busy_cpu *b = arg;

	while (atomic_load(&b->spinning))
		;
	return NULL;
}

/* The whole process, and a spinner, on the CPU this thread runs on. */
static inline bool busy_cpu_start(struct busy_cpu *b)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(b->all), &b->all) != 0)
		return false;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (!pin_all(&one))
		return false;
	atomic_store(&b->spinning, true);
	return pthread_create(&b->thread, NULL, busy_cpu_spin, b) == 0;
}

static inline bool busy_cpu_end(struct busy_cpu *b)
{
	atomic_store(&b->spinning, false);
	return pthread_join(b->thread, NULL) == 0 && pin_all(&b->all);
}

#endif
