/* rules: what the kernel enforces, written into the pinned maps — enrolments, protected and
 * allowed destinations, unix paths, the sidecar port and the deny errno. */
#include "enforce/enforce_int.h"

#include "base/log.h"
#include "enforce/cgroup.h"
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- policy ------------------------------------------------------------------------------ */

int enforcer_enroll(struct enforcer *e, const char *path, enum warden_mode mode)
{
	return enforcer_enroll_ex(e, path, mode, 0);
}

int enforcer_enroll_ex(struct enforcer *e, const char *path, enum warden_mode mode,
		       unsigned flags)
{
	char abs[PATH_MAX];
	struct warden_enroll v = { .mode = mode, .flags = (__u16)flags };
	uint64_t id = 0;
	int level, ret;

	if ((mode != WARDEN_MODE_LOCKDOWN && mode != WARDEN_MODE_PROTECT &&
	     mode != WARDEN_MODE_EXEMPT) || (flags & ~WARDEN_ENROLL_F_REDIRECT) ||
	    (flags && mode == WARDEN_MODE_EXEMPT))
		return -EINVAL;
	ret = enforcer_cgroup_abspath(e, path, abs, &level);
	if (ret < 0) {
		if (ret != -EINVAL)
			log_error("enforcer: cgroup %s: %s", path, strerror(-ret));
		return ret;
	}
	if (level == 0) {
		log_error("enforcer: refusing to enroll the cgroup v2 root %s: that would enforce "
			  "on every process of the host; enroll the agent containers' cgroups",
			  abs);
		return -EINVAL;
	}
	if (level >= WARDEN_MAX_LEVELS) {
		log_error("enforcer: %s is deeper than %d levels", abs, WARDEN_MAX_LEVELS - 1);
		return -EINVAL;
	}
	ret = cgroup_id(abs, &id);
	if (ret < 0)
		return ret;
	v.level = (__u16)level;
	if (bpf_map_update_elem(e->map_fds[WARDEN_M_ENROLLED], &id, &v, BPF_ANY) < 0) {
		ret = -errno;
		log_error("enforcer: enrolling %s: %s", abs, strerror(-ret));
		return ret;
	}
	ret = cgroup_index_put(e->cg_cache, id, abs);
	if (ret < 0)
		return ret;
	/* After the entry: the programs only look at depths in the mask. */
	ret = enforcer_level_mask_refresh(e);
	if (ret == 0)
		log_info("enforcer: %s%s %s (cgroup id %llu)", enforcer_mode_name(mode),
			 flags & WARDEN_ENROLL_F_REDIRECT ? " (redirect)" : "", abs,
			 (unsigned long long)id);
	return ret;
}

int enforcer_enrolled_mode(struct enforcer *e, uint64_t id, enum warden_mode *out)
{
	struct warden_enroll v;
	__u64 key = id;

	if (bpf_map_lookup_elem(e->map_fds[WARDEN_M_ENROLLED], &key, &v) < 0)
		return -errno;
	*out = (enum warden_mode)v.mode;
	return 0;
}

int enforcer_exempt(struct enforcer *e, const char *path)
{
	return enforcer_enroll(e, path, WARDEN_MODE_EXEMPT);
}

int enforcer_unenroll_id(struct enforcer *e, uint64_t id)
{
	if (bpf_map_delete_elem(e->map_fds[WARDEN_M_ENROLLED], &id) < 0)
		return -errno;
	return enforcer_level_mask_refresh(e);
}

int enforcer_prune(struct enforcer *e, size_t *removed, uint64_t *ids, size_t nids)
{
	int fd = e->map_fds[WARDEN_M_ENROLLED];
	__u64 key, next, *prev = NULL, gone[64];
	size_t n = 0, total = 0;
	int ret = 0;

	/* Collect, then delete: deleting while walking the hash would restart the walk. A batch
	 * of 64 per pass; a longer backlog is finished by the next passes of this loop. */
	do {
		n = 0;
		prev = NULL;
		while (n < 64 && bpf_map_get_next_key(fd, prev, &next) == 0) {
			if (cgroup_id_alive(e->cgroup_root, next) == 0)
				gone[n++] = next;
			key = next;
			prev = &key;
		}
		for (size_t i = 0; i < n; i++) {
			if (bpf_map_delete_elem(fd, &gone[i]) < 0 && errno != ENOENT) {
				ret = -errno;
				goto out;
			}
			if (ids && total < nids)
				ids[total] = gone[i];
			total++;
		}
	} while (n == 64);
out:
	if (total > 0) {
		int r = enforcer_level_mask_refresh(e);

		if (ret == 0)
			ret = r;
	}
	if (removed)
		*removed = total;
	return ret;
}

int enforcer_unenroll(struct enforcer *e, const char *path)
{
	char abs[PATH_MAX];
	uint64_t id = 0;
	int level, ret;

	ret = enforcer_cgroup_abspath(e, path, abs, &level);
	if (ret < 0)
		return ret;
	ret = cgroup_id(abs, &id);
	if (ret < 0)
		return ret;
	return enforcer_unenroll_id(e, id);
}

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int enforcer_dest_parse(const char *spec, struct enforcer_dest *out)
{
	char buf[INET6_ADDRSTRLEN + 16], *addr = buf, *port = NULL, *slash;
	const char *colon;
	struct enforcer_dest d = { 0 };
	int maxlen;

	if (!spec || strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	if (buf[0] == '[') {		/* [v6[/len]]:port */
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		addr = buf + 1;
		port = close + 2;
	} else if ((colon = strchr(buf, ':')) && !strchr(colon + 1, ':')) {	/* v4:port */
		port = (char *)colon + 1;
		*(char *)colon = '\0';
	}
	if (port && parse_port(port, &d.port) < 0)
		return -EINVAL;
	slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, addr, d.addr) == 1) {
		d.family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, d.addr) == 1) {
		d.family = AF_INET6;
		maxlen = 128;
	} else {
		return -EINVAL;
	}
	d.prefixlen = (uint8_t)maxlen;
	if (slash) {
		char *end;
		long v;

		if (!*slash || strspn(slash, "0123456789") != strlen(slash))
			return -EINVAL;
		v = strtol(slash, &end, 10);
		if (v < 0 || v > maxlen)
			return -EINVAL;
		d.prefixlen = (uint8_t)v;
	}
	/* ::ffff:a.b.c.d/len (len >= 96) is the v4 a.b.c.d/(len-96): the programs judge
	 * v4-mapped destinations as v4. */
	if (d.family == AF_INET6 && d.prefixlen >= 96 &&
	    memcmp(d.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(d.addr, d.addr + 12, 4);
		memset(d.addr + 4, 0, 12);
		d.family = AF_INET;
		d.prefixlen = (uint8_t)(d.prefixlen - 96);
	}
	/* Clear host bits so equal networks make equal keys. */
	for (int bit = d.prefixlen; bit < (d.family == AF_INET ? 32 : 128); bit++)
		d.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	*out = d;
	return 0;
}

int enforcer_dest_format(const struct enforcer_dest *d, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int n;

	if (!inet_ntop(d->family, d->addr, a, sizeof(a)))
		return -EINVAL;
	if (d->family == AF_INET6 && d->port)
		n = snprintf(buf, len, "[%s/%u]:%u", a, d->prefixlen, d->port);
	else if (d->port)
		n = snprintf(buf, len, "%s/%u:%u", a, d->prefixlen, d->port);
	else
		n = snprintf(buf, len, "%s/%u", a, d->prefixlen);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

typedef union {
	struct warden_lpm4_key k4;
	struct warden_lpm6_key k6;
	struct warden_exact4_key x4;
	struct warden_exact6_key x6;
} rule_key;

/* A host (full-length address) rule lives in the exact hash map, a prefix in the trie: the
 * programs look a host:port up with one hash lookup and walk a trie only for prefixes. */
static bool dest_is_host(const struct enforcer_dest *d)
{
	return d->prefixlen == (d->family == AF_INET ? 32 : 128);
}

/* Build the map key of d; *fd is the map (exact, or the protect or allow trie) for it. */
static void dest_key(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		     rule_key *key, int *fd)
{
	__u8 kind = protect ? WARDEN_KIND_PROTECT : WARDEN_KIND_ALLOW;

	memset(key, 0, sizeof(*key));
	if (d->family == AF_INET && dest_is_host(d)) {
		memcpy(key->x4.addr, d->addr, 4);
		key->x4.port = htons(d->port);
		key->x4.kind = kind;
		*fd = e->map_fds[WARDEN_M_EXACT4];
	} else if (dest_is_host(d)) {
		memcpy(key->x6.addr, d->addr, 16);
		key->x6.port = htons(d->port);
		key->x6.kind = kind;
		*fd = e->map_fds[WARDEN_M_EXACT6];
	} else if (d->family == AF_INET) {
		key->k4.prefixlen = 16u + d->prefixlen;
		key->k4.port = htons(d->port);
		memcpy(key->k4.addr, d->addr, 4);
		*fd = e->map_fds[protect ? WARDEN_M_PROTECT4 : WARDEN_M_ALLOW4];
	} else {
		key->k6.prefixlen = 16u + d->prefixlen;
		key->k6.port = htons(d->port);
		memcpy(key->k6.addr, d->addr, 16);
		*fd = e->map_fds[protect ? WARDEN_M_PROTECT6 : WARDEN_M_ALLOW6];
	}
}

static bool set_flag(struct warden_config *c, uintptr_t bit)
{
	if (c->flags & bit)
		return false;
	c->flags |= (__u16)bit;
	return true;
}

/* Tell the programs which kind of entry a map may now hold: before the entry exists. */
static int rule_kind_mark(struct enforcer *e, const struct enforcer_dest *d, bool protect)
{
	static const __u16 bits[2][2][2] = {	/* [protect][host][port] */
		{ { WARDEN_CFG_F_ALLOW_ANY, WARDEN_CFG_F_ALLOW_PORT },
		  { WARDEN_CFG_F_XALLOW_ANY, WARDEN_CFG_F_XALLOW_PORT } },
		{ { WARDEN_CFG_F_PROTECT_ANY, WARDEN_CFG_F_PROTECT_PORT },
		  { WARDEN_CFG_F_XPROTECT_ANY, WARDEN_CFG_F_XPROTECT_PORT } },
	};

	return enforcer_config_edit(e, set_flag, bits[protect][dest_is_host(d)][d->port != 0]);
}

/* Insert d unless that exact key exists; *created says which. (A userspace lookup on an LPM
 * trie is a longest-prefix match too, so "exists" is asked through BPF_NOEXIST.) */
int enforcer_rule_add_ex(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		       uint32_t *rule_id, bool *created)
{
	struct warden_rule r = { .id = e->next_rule_id };
	rule_key key;
	int fd, ret;

	ret = rule_kind_mark(e, d, protect);
	if (ret < 0)
		return ret;
	dest_key(e, d, protect, &key, &fd);
	*created = bpf_map_update_elem(fd, &key, &r, BPF_NOEXIST) == 0;
	if (*created) {
		e->next_rule_id++;
	} else if (errno != EEXIST) {
		return -errno;
	} else if (bpf_map_lookup_elem(fd, &key, &r) < 0) {	/* the exact entry: longest */
		return -errno;
	}
	if (rule_id)
		*rule_id = r.id;
	return 0;
}

static int rule_add(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		    uint32_t *rule_id)
{
	bool created;

	return enforcer_rule_add_ex(e, d, protect, rule_id, &created);
}

static int rule_del(struct enforcer *e, const struct enforcer_dest *d, bool protect)
{
	rule_key key;
	int fd;

	dest_key(e, d, protect, &key, &fd);
	return bpf_map_delete_elem(fd, &key) < 0 ? -errno : 0;
}

static int rule_spec(struct enforcer *e, const char *spec, bool protect, bool add)
{
	struct enforcer_dest d;
	int ret = enforcer_dest_parse(spec, &d);

	if (ret < 0) {
		log_error("enforcer: '%s' is not cidr[:port] (a.b.c.d/len:port or [v6/len]:port)",
			  spec ? spec : "(null)");
		return ret;
	}
	ret = add ? rule_add(e, &d, protect, NULL) : rule_del(e, &d, protect);
	if (ret < 0 && !(ret == -ENOENT && !add))
		log_error("enforcer: %s %s: %s", add ? (protect ? "protect" : "allow") :
			  (protect ? "unprotect" : "disallow"), spec, strerror(-ret));
	return ret;
}

int enforcer_protect(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, true, true);
}

int enforcer_unprotect(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, true, false);
}

int enforcer_allow(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, false, true);
}

int enforcer_disallow(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, false, false);
}

int enforcer_protect_dest(struct enforcer *e, const struct enforcer_dest *d, uint32_t *rule_id)
{
	return rule_add(e, d, true, rule_id);
}

int enforcer_unprotect_dest(struct enforcer *e, const struct enforcer_dest *d)
{
	return rule_del(e, d, true);
}

static int unix_key(const char *path, struct warden_unix_key *k)
{
	size_t n = path ? strlen(path) : 0;

	if (n == 0 || n >= sizeof(k->path))
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	memcpy(k->path, path, n);
	return 0;
}

int enforcer_protect_unix(struct enforcer *e, const char *path)
{
	struct warden_unix_key k;
	struct warden_rule r = { 0 };
	int ret = unix_key(path, &k);

	if (ret < 0)
		return ret;
	if (!e->hook_supported[WARDEN_HOOK_CONNECT_UNIX])
		log_warn("enforcer: protecting %s has no effect: %s", path, e->unix_reason);
	if (bpf_map_lookup_elem(e->map_fds[WARDEN_M_UNIXPATH], &k, &r) == 0)
		return 0;
	r.id = e->next_rule_id++;
	return bpf_map_update_elem(e->map_fds[WARDEN_M_UNIXPATH], &k, &r, BPF_ANY) < 0 ? -errno : 0;
}

int enforcer_unprotect_unix(struct enforcer *e, const char *path)
{
	struct warden_unix_key k;
	int ret = unix_key(path, &k);

	if (ret < 0)
		return ret;
	return bpf_map_delete_elem(e->map_fds[WARDEN_M_UNIXPATH], &k) < 0 ? -errno : 0;
}

int enforcer_rule_set_flags(struct enforcer *e, const struct enforcer_dest *d, uint32_t flags)
{
	struct warden_rule r;
	rule_key key;
	int fd;

	dest_key(e, d, true, &key, &fd);
	if (bpf_map_lookup_elem(fd, &key, &r) < 0)
		return -errno;
	if ((r.flags & flags) == flags)
		return 0;
	r.flags |= flags;
	if (bpf_map_update_elem(fd, &key, &r, BPF_EXIST) < 0)
		return -errno;
	return 0;
}

static bool set_sidecar_port(struct warden_config *c, uintptr_t port)
{
	c->sidecar_port = htons((uint16_t)port);
	return true;
}

int enforcer_set_sidecar(struct enforcer *e, uint16_t port)
{
	return enforcer_config_edit(e, set_sidecar_port, port);
}

static bool set_deny_errno(struct warden_config *c, uintptr_t err)
{
	c->deny_errno = (__u32)err;
	return true;
}

int enforcer_set_errno(struct enforcer *e, int err)
{
	if (!enforcer_errno_name(err)) {
		log_error("enforcer: deny errno %d is not one of EPERM, EACCES, ECONNREFUSED, "
			  "ENETUNREACH, EHOSTUNREACH", err);
		return -EINVAL;
	}
	return enforcer_config_edit(e, set_deny_errno, (uintptr_t)err);
}
