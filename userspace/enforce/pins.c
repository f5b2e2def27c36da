/* pins: read an installed enforcement from its bpffs pins, without the daemon. */
#include "enforce/pins.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "base/alloc.h"
#include "warden_maps.h"

struct pins {
	char dir[PATH_MAX];
	int fd[PINS_MAP_MAX];
	struct pins_map_info info[PINS_MAP_MAX];
};

/* What a pinned map must look like before it is trusted (include/warden_maps.h). */
static const struct {
	const char *name;
	uint32_t key_size;	/* 0: not checked (ring buffer) */
	uint32_t value_size;
} map_spec[PINS_MAP_MAX] = {
#define PINS_MAP_SPEC(ID, name, shape, type, key, value, ...)                                 \
	[PINS_##ID] = { WARDEN_MAP_NAME(name), WARDEN_MAP_SIZEOF_##shape(key),                  \
			WARDEN_MAP_SIZEOF_##shape(value) },
	WARDEN_MAPS(PINS_MAP_SPEC)
#undef PINS_MAP_SPEC
};

const char *pins_map_name(enum pins_map m)
{
	return (unsigned)m < PINS_MAP_MAX ? map_spec[m].name : NULL;
}

const char *pins_dir(const struct pins *p)
{
	return p->dir;
}

int pins_map_fd(const struct pins *p, enum pins_map m)
{
	if ((unsigned)m >= PINS_MAP_MAX)
		return -EINVAL;
	return p->fd[m] >= 0 ? p->fd[m] : -ENOENT;
}

int pins_map_info(const struct pins *p, enum pins_map m, struct pins_map_info *out)
{
	if ((unsigned)m >= PINS_MAP_MAX)
		return -EINVAL;
	*out = p->info[m];
	return 0;
}

void pins_close(struct pins *p)
{
	if (!p)
		return;
	for (int i = 0; i < PINS_MAP_MAX; i++)
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	free(p);
}

/* Open one map pin and check its layout against this build. 0 with *fd = -1 when the pin
 * does not exist. */
static int open_map(struct pins *p, enum pins_map m)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	char path[PATH_MAX + 32];
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", p->dir, map_spec[m].name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (map_spec[m].key_size &&
	    (info.key_size != map_spec[m].key_size || info.value_size != map_spec[m].value_size)) {
		close(fd);
		return -EPROTO;
	}
	p->fd[m] = fd;
	p->info[m] = (struct pins_map_info){
		.present = true,
		.id = info.id,
		.type = info.type,
		.key_size = info.key_size,
		.value_size = info.value_size,
		.max_entries = info.max_entries,
		.btf_id = info.btf_id,
	};
	return 0;
}

int pins_open(const char *dir, struct pins **out)
{
	struct pins *p;
	struct stat st;
	int err = 0, found = 0;

	*out = NULL;
	if (!dir)
		dir = WARDEN_PIN_DIR_DEFAULT;
	if (strlen(dir) >= sizeof(p->dir))
		return -ENAMETOOLONG;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	strcpy(p->dir, dir);
	for (int i = 0; i < PINS_MAP_MAX; i++)
		p->fd[i] = -1;
	for (int i = 0; i < PINS_MAP_MAX; i++) {
		err = open_map(p, (enum pins_map)i);
		if (err < 0)
			goto out;
		found += p->fd[i] >= 0;
	}
	if (!found) {
		err = -ENOENT;
	} else if (p->fd[PINS_CONFIG] >= 0) {
		/* Maps of another layout version can have the same sizes (ABI 1 had no exact
		 * maps): the version in the config decides. */
		struct warden_config cfg;

		err = pins_config(p, &cfg);
		if (err == 0 && cfg.abi_version && cfg.abi_version != WARDEN_ABI_VERSION)
			err = -EPROTO;
	}
out:
	if (err < 0) {
		pins_close(p);
		return err;
	}
	*out = p;
	return 0;
}

/* ---- links ------------------------------------------------------------------------------- */

int pins_link(const struct pins *p, unsigned hook, struct pins_link *out)
{
	struct bpf_link_info li;
	struct bpf_prog_info pi;
	uint32_t len;
	char path[PATH_MAX + 32];
	int fd, pfd = -1, err = 0;

	memset(out, 0, sizeof(*out));
	if (hook >= WARDEN_HOOK_MAX)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/" WARDEN_LINK_PREFIX "%s", p->dir, enforcer_hook_name(hook));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	out->pinned = true;
	memset(&li, 0, sizeof(li));
	len = sizeof(li);
	if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0) {
		err = -errno;
		goto out;
	}
	out->link_id = li.id;
	out->prog_id = li.prog_id;
	if (li.type == BPF_LINK_TYPE_CGROUP) {
		out->cgroup_id = li.cgroup.cgroup_id;
		out->attach_type = li.cgroup.attach_type;
	}
	/* A cgroup link whose cgroup was removed stays pinned but reports cgroup id 0. An LSM
	 * (tracing) link is attached for as long as it exists. */
	out->attached = out->cgroup_id != 0 || li.type == BPF_LINK_TYPE_TRACING;
	pfd = bpf_prog_get_fd_by_id(li.prog_id);
	if (pfd < 0)
		goto out;	/* a detached link may have lost its program; report what we have */
	memset(&pi, 0, sizeof(pi));
	len = sizeof(pi);
	if (bpf_obj_get_info_by_fd(pfd, &pi, &len) < 0) {
		err = -errno;
		goto out;
	}
	snprintf(out->prog_name, sizeof(out->prog_name), "%s", pi.name);
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(out->prog_tag + 2 * i, 3, "%02x", pi.tag[i]);
	out->run_cnt = pi.run_cnt;
	out->run_time_ns = pi.run_time_ns;
out:
	if (pfd >= 0)
		close(pfd);
	close(fd);
	return err;
}

/* ---- maps -------------------------------------------------------------------------------- */

int pins_config(const struct pins *p, struct warden_config *out)
{
	uint32_t zero = 0;
	int fd = pins_map_fd(p, PINS_CONFIG);

	if (fd < 0)
		return fd;
	return bpf_map_lookup_elem(fd, &zero, out) < 0 ? -errno : 0;
}

int pins_epoch(const struct pins *p, uint64_t *out)
{
	uint32_t zero = 0;
	int fd = pins_map_fd(p, PINS_EPOCH);

	if (fd < 0)
		return fd;
	return bpf_map_lookup_elem(fd, &zero, out) < 0 ? -errno : 0;
}

int pins_counters_read(int fd, struct warden_counters hook[WARDEN_HOOK_MAX],
		       struct warden_counters *total)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	struct warden_counters *percpu;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	percpu = xcalloc((size_t)ncpu, sizeof(*percpu));
	memset(total, 0, sizeof(*total));
	for (uint32_t h = 0; h < WARDEN_HOOK_MAX; h++) {
		struct warden_counters *c = &hook[h];

		memset(c, 0, sizeof(*c));
		if (bpf_map_lookup_elem(fd, &h, percpu) < 0) {
			err = -errno;
			goto out;
		}
		for (int cpu = 0; cpu < ncpu; cpu++) {
			c->allowed += percpu[cpu].allowed;
			c->denied += percpu[cpu].denied;
			c->events_dropped += percpu[cpu].events_dropped;
			c->unenrolled += percpu[cpu].unenrolled;
			c->redirected += percpu[cpu].redirected;
		}
		total->allowed += c->allowed;
		total->denied += c->denied;
		total->events_dropped += c->events_dropped;
		total->unenrolled += c->unenrolled;
		total->redirected += c->redirected;
	}
out:
	free(percpu);
	return err;
}

int pins_counters(const struct pins *p, struct warden_counters hook[WARDEN_HOOK_MAX],
		  struct warden_counters *total)
{
	int fd = pins_map_fd(p, PINS_COUNTERS);

	return fd < 0 ? fd : pins_counters_read(fd, hook, total);
}

/* Walk every key of a hash or LPM map: keys are collected first, values looked up after, so an
 * entry deleted meanwhile is skipped rather than restarting the walk. Returns the number of
 * entries copied into the two malloc'd arrays or a negative errno. */
static int dump_map(int fd, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
		    void **keys_out, void **vals_out)
{
	uint8_t *keys = NULL, *vals = NULL;
	size_t n = 0, cap = max_entries + 1;
	int err = 0;

	*keys_out = *vals_out = NULL;
	keys = xmalloc(cap * key_size);
	vals = xmalloc(cap * value_size);
	for (void *prev = NULL; n < cap; prev = keys + (n - 1) * key_size) {
		if (bpf_map_get_next_key(fd, prev, keys + n * key_size) < 0) {
			if (errno != ENOENT)
				err = -errno;
			break;
		}
		n++;
	}
	if (err < 0)
		goto out;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, keys + i * key_size, vals + kept * value_size) < 0) {
			if (errno == ENOENT)
				continue;
			err = -errno;
			goto out;
		}
		if (kept != i)
			memmove(keys + kept * key_size, keys + i * key_size, key_size);
		kept++;
	}
	n = kept;
out:
	if (err < 0) {
		free(keys);
		free(vals);
		return err;
	}
	*keys_out = keys;
	*vals_out = vals;
	return (int)n;
}

/* Dump pinned map m into a calloc'd array of *n elements of esize bytes, one per entry, made
 * by decode from its key and value (NULL: the key, then as much of the value as fits),
 * sorted by cmp (NULL: map order), stored at out: the address of the caller's typed pointer
 * (NULL on failure). -ENOENT when m is not pinned. */
typedef void (*decode_fn)(enum pins_map m, const void *key, const void *val, void *elem);
static int dump_decoded(const struct pins *p, enum pins_map m, size_t esize, decode_fn decode,
			int (*cmp)(const void *, const void *), void *out, size_t *n)
{
	const struct pins_map_info *mi = &p->info[m];
	uint8_t *keys, *vals, *res = NULL;
	int cnt;

	memcpy(out, &res, sizeof(res));
	*n = 0;
	if (!mi->present)
		return -ENOENT;
	cnt = dump_map(p->fd[m], mi->key_size, mi->value_size, mi->max_entries, (void **)&keys,
		       (void **)&vals);
	if (cnt < 0)
		return cnt;
	res = xcalloc((size_t)cnt + 1, esize);
	for (size_t i = 0; i < (size_t)cnt; i++) {
		const uint8_t *k = keys + i * mi->key_size, *v = vals + i * mi->value_size;
		uint8_t *e = res + i * esize;

		if (decode)
			decode(m, k, v, e);
		else if (mi->key_size <= esize) {
			size_t room = esize - mi->key_size;

			memcpy(e, k, mi->key_size);
			memcpy(e + mi->key_size, v, mi->value_size < room ? mi->value_size : room);
		}
	}
	free(keys);
	free(vals);
	if (cmp)
		qsort(res, (size_t)cnt, esize, cmp);
	memcpy(out, &res, sizeof(res));
	*n = (size_t)cnt;
	return 0;
}

/* The u64-keyed maps: an element is the key, then the value, sorted by the key. */
_Static_assert(offsetof(struct pins_enrolled, e) == sizeof(uint64_t), "key, then value");
_Static_assert(offsetof(struct pins_redirect, r) == sizeof(uint64_t), "key, then value");

static int cmp_u64_key(const void *a, const void *b)
{
	uint64_t x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x < y ? -1 : x > y;
}

int pins_enrolled(const struct pins *p, struct pins_enrolled **out, size_t *n)
{
	return dump_decoded(p, PINS_ENROLLED, sizeof(**out), NULL, cmp_u64_key, out, n);
}

int pins_redirects(const struct pins *p, struct pins_redirect **out, size_t *n)
{
	return dump_decoded(p, PINS_REDIRECT, sizeof(**out), NULL, cmp_u64_key, out, n);
}

static int cmp_rule(const void *a, const void *b)
{
	const struct pins_rule *rx = a, *ry = b;
	const struct enforcer_dest *x = &rx->dest, *y = &ry->dest;
	int c = memcmp(x->addr, y->addr, sizeof(x->addr));

	if (c)
		return c;
	if (x->prefixlen != y->prefixlen)
		return x->prefixlen < y->prefixlen ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return (int)rx->kind - (int)ry->kind;
}

/* r's destination: an address of the family's length, in network order, and a port. */
static void dest_set(struct pins_rule *r, int family, const uint8_t *addr, unsigned prefixlen,
		     uint16_t port_be)
{
	r->dest.family = family;
	memcpy(r->dest.addr, addr, family == AF_INET ? 4 : 16);
	r->dest.prefixlen = (uint8_t)prefixlen;
	r->dest.port = ntohs(port_be);
}

/* The tries match port then address: a key's prefixlen counts the 16 port bits too. */
static unsigned lpm_addr_bits(uint32_t prefixlen)
{
	return prefixlen >= 16 ? prefixlen - 16 : 0;
}

/* Decode one key of map m into r. */
static void rule_decode(enum pins_map m, const uint8_t *key, struct pins_rule *r)
{
	struct warden_exact4_key e4;
	struct warden_exact6_key e6;
	struct warden_lpm4_key l4;
	struct warden_lpm6_key l6;
	bool protect = m == PINS_PROTECT4 || m == PINS_PROTECT6;

	switch (m) {
	case PINS_EXACT4:
		memcpy(&e4, key, sizeof(e4));
		dest_set(r, AF_INET, e4.addr, 32, e4.port);
		r->kind = (enum warden_rule_kind)e4.kind;
		break;
	case PINS_EXACT6:
		memcpy(&e6, key, sizeof(e6));
		dest_set(r, AF_INET6, e6.addr, 128, e6.port);
		r->kind = (enum warden_rule_kind)e6.kind;
		break;
	case PINS_PROTECT6:
	case PINS_ALLOW6:
		memcpy(&l6, key, sizeof(l6));
		dest_set(r, AF_INET6, l6.addr, lpm_addr_bits(l6.prefixlen), l6.port);
		r->kind = protect ? WARDEN_KIND_PROTECT : WARDEN_KIND_ALLOW;
		break;
	default:
		memcpy(&l4, key, sizeof(l4));
		dest_set(r, AF_INET, l4.addr, lpm_addr_bits(l4.prefixlen), l4.port);
		r->kind = protect ? WARDEN_KIND_PROTECT : WARDEN_KIND_ALLOW;
		break;
	}
}

static void rule_decode_entry(enum pins_map m, const void *key, const void *val, void *elem)
{
	struct pins_rule *r = elem;

	rule_decode(m, key, r);
	memcpy(&r->rule, val, sizeof(r->rule));
}

int pins_rules(const struct pins *p, enum pins_map m, struct pins_rule **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (m != PINS_PROTECT4 && m != PINS_PROTECT6 && m != PINS_ALLOW4 && m != PINS_ALLOW6 &&
	    m != PINS_EXACT4 && m != PINS_EXACT6)
		return -EINVAL;
	return dump_decoded(p, m, sizeof(**out), rule_decode_entry, cmp_rule, out, n);
}

static void unixpath_decode(enum pins_map m, const void *key, const void *val, void *elem)
{
	struct pins_unixpath *u = elem;
	struct warden_unix_key k;
	size_t l;

	memcpy(&k, key, sizeof(k));
	/* Abstract names (leading NUL) print as "@name", like ss(8) does. */
	if (k.path[0] == '\0') {
		l = WARDEN_UNIX_PATH_LEN - 1;
		while (l > 0 && k.path[l] == '\0')
			l--;
		u->path[0] = '@';
		memcpy(u->path + 1, k.path + 1, l);
	} else {
		l = strnlen(k.path, WARDEN_UNIX_PATH_LEN);
		memcpy(u->path, k.path, l);
	}
	memcpy(&u->rule, val, sizeof(u->rule));
}

int pins_unixpaths(const struct pins *p, struct pins_unixpath **out, size_t *n)
{
	return dump_decoded(p, PINS_UNIXPATH, sizeof(**out), unixpath_decode, NULL, out, n);
}

/* ---- features ---------------------------------------------------------------------------- */

/* The attach type exists when the running kernel's BTF names it in enum bpf_attach_type. */
static bool kernel_has_enum_value(const char *enum_name, const char *value)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found = false;
	int id;

	if (!btf)
		return false;
	id = btf__find_by_name_kind(btf, enum_name, BTF_KIND_ENUM);
	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, (uint32_t)id);
		const struct btf_enum *e = btf_enum(t);

		for (int i = 0; i < btf_vlen(t) && !found; i++)
			found = strcmp(btf__name_by_offset(btf, e[i].name_off), value) == 0;
	}
	btf__free(btf);
	return found;
}

int pins_features(struct pins_features *out)
{
	struct utsname u;
	FILE *f;
	int v;

	memset(out, 0, sizeof(*out));
	if (uname(&u) == 0)
		snprintf(out->kernel, sizeof(out->kernel), "%s", u.release);
	out->ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) == 1;
	out->unix_connect = kernel_has_enum_value("bpf_attach_type", "BPF_CGROUP_UNIX_CONNECT");
	out->bpf_lsm = enforcer_probe_bpf_lsm(out->bpf_lsm_why, sizeof(out->bpf_lsm_why)) == 0;
	out->bpf_stats = -1;
	f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	if (f) {
		if (fscanf(f, "%d", &v) == 1)
			out->bpf_stats = v != 0;
		fclose(f);
	}
	if (cgroup_detect_root(out->cgroup_root, sizeof(out->cgroup_root)) < 0)
		out->cgroup_root[0] = '\0';
	return 0;
}

/* ---- ring buffer ------------------------------------------------------------------------- */

/* The ring's mmap layout (kernel/bpf/ringbuf.c): one consumer page (writable), one producer
 * page, then the data area mapped twice so a record never wraps. A record is an 8-byte
 * header (length with busy/discard bits, page offset) and its data, rounded up to 8. */
struct pins_ring {
	enum pins_ring_mode mode;
	size_t page, size;		/* size: data area, a power of two */
	uint64_t mask;
	volatile uint64_t *cons_pos;
	volatile uint64_t *prod_pos;
	uint8_t *data;
	void *cons_map, *prod_map;
	uint64_t cursor;		/* next record to read */
	uint64_t gaps;
	int epfd;
};

int pins_ring_open(const struct pins *p, enum pins_ring_mode mode, struct pins_ring **out)
{
	const struct pins_map_info *mi = &p->info[PINS_EVENTS];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	struct pins_ring *r;
	int fd = p->fd[PINS_EVENTS], err = 0;

	*out = NULL;
	if (!mi->present)
		return -ENOENT;
	if (mi->type != BPF_MAP_TYPE_RINGBUF)
		return -EPROTO;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->mode = mode;
	r->epfd = -1;
	r->cons_map = r->prod_map = MAP_FAILED;
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	r->size = mi->max_entries;
	r->mask = r->size - 1;
	/* A tap maps the consumer page read-only: it cannot move the daemon's position. */
	r->cons_map = mmap(NULL, r->page, mode == PINS_RING_CONSUME ? PROT_READ | PROT_WRITE
								   : PROT_READ,
			   MAP_SHARED, fd, 0);
	if (r->cons_map == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	r->prod_map = mmap(NULL, r->page + 2 * r->size, PROT_READ, MAP_SHARED, fd,
			   (off_t)r->page);
	if (r->prod_map == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	r->cons_pos = r->cons_map;
	r->prod_pos = r->prod_map;
	r->data = (uint8_t *)r->prod_map + r->page;
	r->cursor = __atomic_load_n(r->cons_pos, __ATOMIC_ACQUIRE);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		err = -errno;
out:
	if (err < 0) {
		pins_ring_close(r);
		return err;
	}
	*out = r;
	return 0;
}

void pins_ring_skip(struct pins_ring *r)
{
	r->cursor = __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE);
	if (r->mode == PINS_RING_CONSUME)
		__atomic_store_n(r->cons_pos, r->cursor, __ATOMIC_RELEASE);
}

/* The producer may overwrite data only once it is a whole ring ahead of it. */
static bool lapped(const struct pins_ring *r, uint64_t pos)
{
	return __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE) - pos > r->size;
}

int pins_ring_read(struct pins_ring *r, pins_ring_cb cb, void *arg)
{
	struct warden_event ev;
	int delivered = 0;

	for (;;) {
		uint64_t prod = __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE);
		uint32_t hdr, len;
		uint64_t next;

		if (r->mode == PINS_RING_TAP && prod - r->cursor > r->size) {
			/* Fell a ring behind: resume where data is still protected. */
			r->gaps++;
			r->cursor = __atomic_load_n(r->cons_pos, __ATOMIC_ACQUIRE);
			if (prod - r->cursor > r->size)
				r->cursor = prod;
			continue;
		}
		if (r->cursor >= prod)
			break;
		hdr = __atomic_load_n((uint32_t *)(r->data + (r->cursor & r->mask)),
				      __ATOMIC_ACQUIRE);
		if (hdr & BPF_RINGBUF_BUSY_BIT)
			break;	/* reserved, not yet committed: records are committed in order */
		len = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		if (len > r->size) {
			if (r->mode == PINS_RING_CONSUME)
				return -EPROTO;
			r->gaps++;	/* torn header under a tap: skip ahead */
			r->cursor = prod;
			break;
		}
		next = r->cursor + ((len + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL);
		bool keep = !(hdr & BPF_RINGBUF_DISCARD_BIT) && len >= sizeof(ev);

		if (keep)
			memcpy(&ev, r->data + (r->cursor & r->mask) + BPF_RINGBUF_HDR_SZ,
			       sizeof(ev));
		if (r->mode == PINS_RING_TAP && lapped(r, r->cursor))
			continue;	/* overwritten while we copied it: counted as a gap above */
		r->cursor = next;
		if (r->mode == PINS_RING_CONSUME)
			__atomic_store_n(r->cons_pos, next, __ATOMIC_RELEASE);
		if (!keep)
			continue;
		delivered++;
		if (cb(&ev, arg))
			break;
	}
	return delivered;
}

int pins_ring_wait(struct pins_ring *r, int timeout_ms)
{
	struct epoll_event ev;
	int n;

	if (__atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE) != r->cursor)
		return 1;
	n = epoll_wait(r->epfd, &ev, 1, timeout_ms);
	if (n < 0)
		return -errno;
	return n > 0 || __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE) != r->cursor;
}

uint64_t pins_ring_gaps(const struct pins_ring *r)
{
	return r->gaps;
}

void pins_ring_close(struct pins_ring *r)
{
	if (!r)
		return;
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->prod_map != MAP_FAILED)
		munmap(r->prod_map, r->page + 2 * r->size);
	if (r->cons_map != MAP_FAILED)
		munmap(r->cons_map, r->page);
	free(r);
}

/* ---- holders ----------------------------------------------------------------------------- */

/* Does /proc/<pid>/fd hold a bpf map with this id? Only bpf-map fds have their fdinfo read. */
static bool pid_holds_map(const char *pid, uint32_t map_id)
{
	char path[320], link[64], line[128];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		ssize_t l;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd/%s", pid, de->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (strcmp(link, "anon_inode:bpf-map") != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned id;

			if (sscanf(line, "map_id: %u", &id) == 1) {
				found = id == map_id;
				break;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

int pins_map_holders(const struct pins *p, enum pins_map m, pid_t *pids, size_t max, size_t *n)
{
	const struct pins_map_info *mi;
	pid_t self = getpid();
	struct dirent *de;
	DIR *d;

	*n = 0;
	if ((unsigned)m >= PINS_MAP_MAX)
		return -EINVAL;
	mi = &p->info[m];
	if (!mi->present)
		return -ENOENT;
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self)
			continue;
		if (!pid_holds_map(de->d_name, mi->id))
			continue;
		if (*n < max)
			pids[*n] = (pid_t)pid;
		(*n)++;
	}
	closedir(d);
	return 0;
}
