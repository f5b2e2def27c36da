/* journal: a ring of 256-byte slots in a MAP_SHARED file, one slot per charged item. */
#include "store/journal.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"

#define MAGIC 0x314e524a57504d43ull    /* "CMPWJRN1" */
#define HEADER 4096

struct slot {
	uint64_t seq;                   /* 0: empty */
	uint32_t idx, n;                /* item idx of n in its charge */
	int64_t start, amount, expires;
	uint16_t scope_len, period_len; /* text = scope NUL period NUL */
	char text[JOURNAL_TEXT_MAX + 2];
	uint64_t sum;                   /* over everything above: a torn write does not count */
};
_Static_assert(sizeof(struct slot) <= 256, "a slot is 256 bytes");
_Static_assert(offsetof(struct slot, sum) % 8 == 0, "checksum reads words");

struct header {
	uint64_t magic;
	uint64_t nslots;
	uint64_t ring;                  /* the database's ring id */
};

/* A charge in flight: its sequence number and the slots it holds. */
struct held {
	uint64_t seq;
	size_t nslots;
};

struct journal {
	int fd;
	uint8_t *map;
	size_t len, nslots;
	size_t head, tail;              /* slots written, slots freed (ever, mod nslots) */
	uint64_t next_seq;
	struct held *held;              /* FIFO of charges not committed, nslots at most */
	size_t hfirst, hcount;
	bool no_append;                 /* blocks not allocated: appending could SIGBUS */
};

static struct slot *slot_at(const struct journal *j, size_t i)
{
	return (struct slot *)(j->map + HEADER + (i % j->nslots) * 256);
}

/* FNV-1a over the slot's words, everything before sum (the text area's zeros too): a torn
 * write does not count. Eight bytes a step: a slot is written per charged item, on the loop
 * (byte by byte it was 2 % of the loop's instructions). */
static uint64_t checksum(const struct slot *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint64_t h = 0xcbf29ce484222325ull, w;

	for (size_t i = 0; i < offsetof(struct slot, sum); i += 8) {
		memcpy(&w, p + i, 8);
		h ^= w;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The byte-wise FNV-1a of journals written before 2026-12-05: a charge left in flight by the
 * version before an upgrade is replayed all the same. */
static uint64_t checksum_bytes(const struct slot *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < offsetof(struct slot, sum); i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

int journal_open(const char *path, uint64_t ring, size_t nslots, struct journal **out)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	struct header *h;
	struct stat st;
	int rc = 0;

	*out = NULL;
	j->nslots = nslots ? nslots : JOURNAL_SLOTS_DEFAULT;
	j->len = HEADER + j->nslots * 256;
	j->next_seq = 1;
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0 || fstat(j->fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Another size is another layout: start over (its charges are in the store already
	 * unless the last daemon died with some in flight, which a resize cannot keep). */
	if ((size_t)st.st_size != j->len && (ftruncate(j->fd, 0) < 0 ||
					     ftruncate(j->fd, (off_t)j->len) < 0)) {
		rc = -errno;
		goto fail;
	}
	/* Every block allocated now: a store into a hole of a MAP_SHARED file on a full disk is
	 * SIGBUS, not an error. Without them the ring is still read (replayed) but takes no
	 * new charge: each one then waits for its commit. */
	int falloc = posix_fallocate(j->fd, 0, (off_t)j->len);   /* the error, not errno */
	if (falloc) {
		log_warn("journal: %s: cannot allocate its blocks (%s): charges wait for their "
			 "commit", path, strerror(falloc));
		j->no_append = true;
	}
	j->map = mmap(NULL, j->len, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
	if (j->map == MAP_FAILED) {
		j->map = NULL;
		rc = -errno;
		goto fail;
	}
	h = (struct header *)j->map;
	if (h->magic != MAGIC || h->nslots != j->nslots || h->ring != ring) {
		memset(j->map, 0, j->len);
		h->magic = MAGIC;
		h->nslots = j->nslots;
		h->ring = ring;
	}
	j->held = xcalloc(j->nslots, sizeof(*j->held));
	*out = j;
	return 0;
fail:
	journal_close(j);
	return rc;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->map)
		munmap(j->map, j->len);
	if (j->fd >= 0)
		close(j->fd);
	free(j->held);
	free(j);
}

static int seq_cmp(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int journal_replay(struct journal *j, uint64_t after, journal_replay_fn fn, void *arg,
		   uint64_t *max)
{
	struct slot **live = xcalloc(j->nslots, sizeof(*live));
	struct store_spend items[64];
	size_t nlive = 0;
	int rc = 0;

	*max = 0;
	for (size_t i = 0; i < j->nslots; i++) {
		struct slot *s = slot_at(j, i);
		if (!s->seq || (s->sum != checksum(s) && s->sum != checksum_bytes(s)))
			continue;
		if (s->seq > *max)
			*max = s->seq;
		if (s->seq > after && s->n && s->n <= 64 && s->idx < s->n &&
		    s->scope_len + s->period_len + 2u <= sizeof(s->text))
			live[nlive++] = s;
	}
	qsort(live, nlive, sizeof(*live), seq_cmp);
	for (size_t i = 0; i < nlive && !rc;) {
		size_t k = 0, n = live[i]->n;
		uint64_t seq = live[i]->seq;

		/* A charge counts only whole: items 0..n-1, each once. */
		while (i + k < nlive && live[i + k]->seq == seq && live[i + k]->idx == k && k < n) {
			const struct slot *s = live[i + k];
			items[k] = (struct store_spend){ .scope = s->text,
							 .period = s->text + s->scope_len + 1,
							 .start = s->start, .amount = s->amount,
							 .expires = s->expires };
			k++;
		}
		if (k == n)
			rc = fn(items, n, seq, arg);
		while (i < nlive && live[i]->seq == seq)
			i++;
	}
	free(live);
	return rc;
}

void journal_restart(struct journal *j, uint64_t next)
{
	j->next_seq = next ? next : 1;
	j->head = j->tail = 0;
	j->hfirst = j->hcount = 0;
	/* The replay read every slot: their pages out of RSS until charges use them again.
	 * MADV_DONTNEED on a MAP_SHARED file mapping only unmaps: the bytes stay in the page
	 * cache and the file, so nothing is lost. */
	if (madvise(slot_at(j, 0), j->nslots * 256, MADV_DONTNEED))
		log_debug("journal: madvise: %s", strerror(errno));  /* RSS only: nothing lost */
}

int journal_append(struct journal *j, const struct store_spend *items, size_t n, uint64_t *seq)
{
	if (!n || n > 64)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (strlen(items[i].scope) + strlen(items[i].period) > JOURNAL_TEXT_MAX)
			return -ENAMETOOLONG;
	if (j->no_append || j->head - j->tail + n > j->nslots || j->hcount == j->nslots)
		return -ENOSPC;
	*seq = j->next_seq++;
	for (size_t i = 0; i < n; i++) {
		struct slot *s = slot_at(j, j->head++);
		size_t sl = strlen(items[i].scope), pl = strlen(items[i].period);

		memset(s, 0, sizeof(*s));
		s->idx = (uint32_t)i;
		s->n = (uint32_t)n;
		s->start = items[i].start;
		s->amount = items[i].amount;
		s->expires = items[i].expires;
		s->scope_len = (uint16_t)sl;
		s->period_len = (uint16_t)pl;
		memcpy(s->text, items[i].scope, sl);
		memcpy(s->text + sl + 1, items[i].period, pl);
		s->seq = *seq;
		s->sum = checksum(s);
	}
	j->held[(j->hfirst + j->hcount++) % j->nslots] = (struct held){ *seq, n };
	return 0;
}

void journal_committed(struct journal *j, uint64_t seq)
{
	while (j->hcount && j->held[j->hfirst].seq <= seq) {
		j->tail += j->held[j->hfirst].nslots;
		j->hfirst = (j->hfirst + 1) % j->nslots;
		j->hcount--;
	}
	/* The freed slots stay resident for the next round. Taking their pages out of RSS (as
	 * at restart) cost an madvise per 64 KiB and a page fault per 16 slots when they came
	 * back: ~4 % of the loop's CPU in the proxy benchmark, for 2 MiB. */
}

size_t journal_pending(const struct journal *j)
{
	return j->hcount;
}
