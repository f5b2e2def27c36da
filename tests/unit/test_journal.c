/* The charge journal: what a crashed run left is replayed whole, in order, and only into the
 * database it belongs to; a torn record never counts; a full ring says so; committed slots
 * leave the process's RSS without losing their bytes. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/journal.h"
#include "store_test_util.h"
#include "cunit_main.h"

static char dir[PATH_MAX], path[PATH_MAX + 32];

static int setup(void)
{
	return tmpdir_setup(dir, sizeof(dir), path, sizeof(path), "store.db-charges");
}

static int teardown(void)
{
	tmpdir_remove(dir);
	return 0;
}

struct seen {
	uint64_t seq[16];
	int64_t amount[16];
	char scope[16][32];
	int n;
};

static int collect(const struct store_spend *items, size_t n, uint64_t seq, void *arg)
{
	struct seen *s = arg;

	for (size_t i = 0; i < n && s->n < 16; i++, s->n++) {
		s->seq[s->n] = seq;
		s->amount[s->n] = items[i].amount;
		snprintf(s->scope[s->n], sizeof(s->scope[0]), "%s", items[i].scope);
	}
	return 0;
}

static void charge(struct journal *j, int64_t amount, uint64_t *seq)
{
	struct store_spend items[2] = { { "key:k", "day", 0, amount, 0 },
					{ "team:t", "rolling:3600", 60, amount, 7200 } };

	CU_ASSERT_EQUAL(journal_append(j, items, 2, seq), 0);
}

static void test_replay(void)
{
	struct journal *j;
	struct seen s = { 0 };
	uint64_t seq[3], max;
	int fd;

	unlink(path);
	CU_ASSERT_FATAL(journal_open(path, 42, 8, &j) == 0);
	for (int i = 0; i < 3; i++)
		charge(j, 10 * (i + 1), &seq[i]);
	CU_ASSERT(seq[0] == 1 && seq[1] == 2 && seq[2] == 3);
	CU_ASSERT_EQUAL(journal_pending(j), 3);
	journal_close(j);                       /* the process died: nothing committed */

	CU_ASSERT_FATAL(journal_open(path, 42, 8, &j) == 0);
	CU_ASSERT(journal_replay(j, 0, collect, &s, &max) == 0);
	CU_ASSERT_EQUAL(max, 3);
	CU_ASSERT_EQUAL(s.n, 6);                /* whole charges, oldest first, items in order */
	CU_ASSERT(s.seq[0] == 1 && s.seq[5] == 3);
	CU_ASSERT_STRING_EQUAL(s.scope[0], "key:k");
	CU_ASSERT_STRING_EQUAL(s.scope[1], "team:t");
	CU_ASSERT(s.amount[4] == 30 && s.amount[5] == 30);
	s = (struct seen){ 0 };                 /* the store had committed up to 2 */
	CU_ASSERT(journal_replay(j, 2, collect, &s, &max) == 0);
	CU_ASSERT(s.n == 2 && s.seq[0] == 3);
	journal_close(j);

	/* A torn write (the process killed inside a record): that charge does not count. */
	fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(pwrite(fd, "X", 1, 4096 + 5 * 256 + 40) == 1);   /* seq 3's second item */
	close(fd);
	CU_ASSERT_FATAL(journal_open(path, 42, 8, &j) == 0);
	s = (struct seen){ 0 };
	CU_ASSERT(journal_replay(j, 0, collect, &s, &max) == 0);
	CU_ASSERT(s.n == 4 && s.seq[3] == 2);
	journal_close(j);

	/* Slots summed byte by byte, as journals before 2026-12-05 were: still replayed (a charge
	 * in flight across an upgrade): seq 1's two items (slots 0 and 1). A sum that is neither
	 * kind (slot 2, seq 2's first item) still drops its charge. The sum is at 248. */
	fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	for (int k = 0; k < 3; k++) {
		uint8_t slot[248];
		uint64_t h = 0xcbf29ce484222325ull;
		off_t at = 4096 + (off_t)k * 256;

		CU_ASSERT_FATAL(pread(fd, slot, sizeof(slot), at) == (ssize_t)sizeof(slot));
		for (size_t i = 0; i < sizeof(slot); i++) {
			h ^= slot[i];
			h *= 0x100000001b3ull;
		}
		if (k == 2)
			h ^= 1;
		CU_ASSERT(pwrite(fd, &h, sizeof(h), at + 248) == (ssize_t)sizeof(h));
	}
	close(fd);
	CU_ASSERT_FATAL(journal_open(path, 42, 8, &j) == 0);
	s = (struct seen){ 0 };
	CU_ASSERT(journal_replay(j, 0, collect, &s, &max) == 0);
	CU_ASSERT(s.n == 2 && s.seq[0] == 1 && s.seq[1] == 1);
	CU_ASSERT(s.amount[0] == 10 && s.amount[1] == 10);
	journal_close(j);

	/* Another database's ring is emptied, never replayed. */
	CU_ASSERT_FATAL(journal_open(path, 43, 8, &j) == 0);
	s = (struct seen){ 0 };
	CU_ASSERT(journal_replay(j, 0, collect, &s, &max) == 0);
	CU_ASSERT(s.n == 0 && max == 0);
	journal_close(j);
}

static void test_full_and_limits(void)
{
	struct journal *j;
	uint64_t seq, max;
	struct seen s = { 0 };
	char long_scope[300];

	unlink(path);
	CU_ASSERT_FATAL(journal_open(path, 7, 4, &j) == 0);
	journal_restart(j, 100);                /* numbering continues after the store's */
	charge(j, 1, &seq);
	CU_ASSERT_EQUAL(seq, 100);
	charge(j, 1, &seq);
	struct store_spend one = { "key:k", "day", 0, 1, 0 };
	CU_ASSERT_EQUAL(journal_append(j, &one, 1, &seq), -ENOSPC);   /* 4 slots taken */
	journal_committed(j, 100);
	CU_ASSERT_EQUAL(journal_pending(j), 1);
	CU_ASSERT_EQUAL(journal_append(j, &one, 1, &seq), 0);
	CU_ASSERT_EQUAL(seq, 102);
	memset(long_scope, 'a', sizeof(long_scope) - 1);
	long_scope[sizeof(long_scope) - 1] = '\0';
	CU_ASSERT_EQUAL(journal_append(j, &(struct store_spend){ long_scope, "day", 0, 1, 0 }, 1,
				       &seq), -ENAMETOOLONG);
	CU_ASSERT_EQUAL(journal_append(j, &one, 0, &seq), -EINVAL);
	/* The slot of charge 100 was reused: what is left replays after 100. */
	CU_ASSERT(journal_replay(j, 100, collect, &s, &max) == 0);
	CU_ASSERT(s.n == 3 && s.seq[0] == 101 && s.seq[2] == 102 && max == 102);
	journal_close(j);
}

/* Resident kB of the ring's mapping (/proc/self/smaps). */
static long ring_rss_kb(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[PATH_MAX + 128];
	bool ours = false;
	long kb = -1, v;
	unsigned long lo, hi;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)       /* a mapping's first line */
			ours = n >= strlen(path) && !strcmp(line + n - strlen(path), path);
		else if (ours && sscanf(line, "Rss: %ld kB", &v) == 1)
			kb = v;
	}
	fclose(f);
	return kb;
}

static void test_rss(void)
{
	struct store_spend one = { "key:k", "day", 0, 1, 0 };
	struct journal *j;
	struct seen s = { 0 };
	uint64_t seq, max;

	unlink(path);
	CU_ASSERT_FATAL(journal_open(path, 9, 0, &j) == 0);
	CU_ASSERT(ring_rss_kb() >= 2048);        /* emptied: every page written */
	journal_restart(j, 1);
	CU_ASSERT(ring_rss_kb() <= 4);           /* the header, at most */
	/* Twice round the ring, committing as the store would. */
	for (int i = 0; i < 2 * JOURNAL_SLOTS_DEFAULT; i++) {
		CU_ASSERT_EQUAL_FATAL(journal_append(j, &one, 1, &seq), 0);
		if (i % 100 == 99)
			journal_committed(j, seq);
	}
	/* In use the ring stays resident: a committed slot is written again as it is, with no
	 * madvise and no page fault. */
	CU_ASSERT(ring_rss_kb() >= 2048);
	/* Round the ring twice, the last round's charges are all there. */
	s.n = 0;
	CU_ASSERT(journal_replay(j, 2 * JOURNAL_SLOTS_DEFAULT - 16, collect, &s, &max) == 0);
	CU_ASSERT_EQUAL(s.n, 16);
	CU_ASSERT_EQUAL(max, 2 * JOURNAL_SLOTS_DEFAULT);
	journal_close(j);
}

CU_MAIN("journal", setup, teardown,
	{ "a crashed run's charges replay whole, in order, into their database", test_replay },
	{ "a full ring, names too long", test_full_and_limits },
	{ "the ring leaves RSS after a start, and stays once in use", test_rss })
