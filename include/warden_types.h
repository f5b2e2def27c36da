/* warden_types: the types shared by the BPF programs (bpf/warden.bpf.c) and userspace
 * (userspace/enforcer.c, tools/wardenctl.c). Types and constants only, no functions.
 *
 * Every struct here is a map key, a map value or a ring-buffer record, so its layout is ABI
 * between the two sides and with the pinned maps of an older daemon: fixed-width types,
 * explicit padding, sizes asserted. Changing a layout means bumping WARDEN_ABI_VERSION (an old
 * pin directory is then refused and must be removed with `wardenctl uninstall`).
 *
 * Byte order: addresses and ports inside map keys are in network order (they are compared
 * against the socket address the program sees); ports in events are in host order.
 */
#ifndef WARDEN_TYPES_H
#define WARDEN_TYPES_H

#include <linux/types.h>

/* 2: host rules (/32, /128) moved out of the tries into the warden_exact4/6 hash maps; the
 *    per-CPU cgroup decision cache (warden_cgcache, warden_epoch).
 * 3: the BPF LSM hook lsm_socket (one more warden_counters slot).
 * 4: transparent redirect: warden_config.redirect_port, warden_enroll.flags (level narrowed
 *    to 16 bits), warden_rule.flags used, the warden_redirect map, the getpeername4/6 hooks
 *    (two more warden_counters slots), warden_counters.redirected, a wider cache mode.
 * 5: caller identity without a system call: the warden_conns map (mmapable) and the sockops
 *    program that fills it (one more warden_counters slot). */
#define WARDEN_ABI_VERSION	5

/* Pin directory layout (bpffs). Maps are pinned as <pin_dir>/<map name>, links as
 * <pin_dir>/link_<hook name>. */
#define WARDEN_PIN_DIR_DEFAULT	"/sys/fs/bpf/mcpwarden"
#define WARDEN_LINK_PREFIX	"link_"

/* Map names; the maps themselves are declared once, in warden_maps.h. */
#define WARDEN_MAP_CONFIG	"warden_config"
#define WARDEN_MAP_ENROLLED	"warden_enrolled"
#define WARDEN_MAP_UNIXPATH	"warden_unixpath"
#define WARDEN_MAP_EVENTS	"warden_events"
#define WARDEN_MAP_COUNTERS	"warden_counters"
#define WARDEN_MAP_EPOCH	"warden_epoch"
#define WARDEN_MAP_CGCACHE	"warden_cgcache"
#define WARDEN_MAP_REDIRECT	"warden_redirect"
#define WARDEN_MAP_CONNS	"warden_conns"

#define WARDEN_MAX_ENROLLED	16384
#define WARDEN_MAX_RULES	16384	/* per LPM trie */
#define WARDEN_MAX_EXACT	32768	/* per exact map: protected and allowed hosts together */
#define WARDEN_MAX_UNIXPATHS	1024
#define WARDEN_EVENTS_BYTES	(256 * 1024)
#define WARDEN_CGCACHE_SLOTS	64	/* per CPU; a power of two */
#define WARDEN_MAX_REDIRECTS	65536	/* LRU: redirected sockets remembered */
#define WARDEN_CONN_SLOTS	65536	/* warden_conns: one slot per client port */
#define WARDEN_MAX_LEVELS	32	/* cgroup depth below the root the programs look at */
#define WARDEN_COMM_LEN		16
#define WARDEN_UNIX_PATH_LEN	108	/* sizeof(sockaddr_un.sun_path) */

/* Hooks: index of warden_counters, warden_event.hook. Names (for links and output) are
 * "connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create", "connect_unix", "lsm_socket",
 * "getpeername4", "getpeername6", "sockops".
 * lsm_socket is the only one that is not a cgroup hook: a BPF LSM program on socket_create,
 * for the address families that have no cgroup hook (WARDEN_LSM_FAMILIES). The getpeername
 * hooks decide nothing: they show a redirected socket its original peer. sockops decides
 * nothing either: it records every established client connection in warden_conns
 * (allowed: recorded; events_dropped: not recorded, another writer held the slot). */
enum warden_hook {
	WARDEN_HOOK_CONNECT4 = 0,
	WARDEN_HOOK_CONNECT6 = 1,
	WARDEN_HOOK_SENDMSG4 = 2,
	WARDEN_HOOK_SENDMSG6 = 3,
	WARDEN_HOOK_SOCK_CREATE = 4,
	WARDEN_HOOK_CONNECT_UNIX = 5,
	WARDEN_HOOK_LSM_SOCKET = 6,
	WARDEN_HOOK_GETPEERNAME4 = 7,
	WARDEN_HOOK_GETPEERNAME6 = 8,
	WARDEN_HOOK_SOCKOPS = 9,
	WARDEN_HOOK_MAX = 10,
};

/* Per enrolled cgroup. The entry nearest to the calling task wins, so an exempt cgroup (the
 * sidecar's) below an enrolled one (its pod) is not enforced. */
enum warden_mode {
	WARDEN_MODE_NONE = 0,		/* never stored */
	WARDEN_MODE_LOCKDOWN = 1,	/* only the sidecar endpoints and the allowlist */
	WARDEN_MODE_PROTECT = 2,	/* everything except the protected destinations */
	WARDEN_MODE_EXEMPT = 3,		/* not enforced, even below an enrolled ancestor */
};

/* Why a deny event was emitted (warden_event.reason). */
enum warden_reason {
	WARDEN_REASON_NONE = 0,
	WARDEN_REASON_LOCKDOWN = 1,	/* lockdown: not the sidecar and not allowlisted */
	WARDEN_REASON_PROTECTED = 2,	/* matched a protected destination (rule_id) */
	WARDEN_REASON_RAW_SOCKET = 3,	/* socket(SOCK_RAW) */
	WARDEN_REASON_PING_SOCKET = 4,	/* socket(SOCK_DGRAM, IPPROTO_ICMP/ICMPV6) */
	WARDEN_REASON_UNIX_PATH = 5,	/* connect to a protected unix socket path (rule_id) */
	WARDEN_REASON_SOCKET_FAMILY = 6,	/* socket() of a family no cgroup hook sees */
};

/* The families lsm_socket refuses in enforced cgroups: each reaches the network (or the host,
 * or other VMs) without passing any cgroup connect/sendmsg hook. AF_PACKET and AF_XDP send
 * whole frames to any destination; AF_VSOCK reaches the hypervisor host and sibling VMs. */
#define WARDEN_AF_PACKET	17
#define WARDEN_AF_VSOCK		40
#define WARDEN_AF_XDP		44

/* warden_config.flags */
#define WARDEN_CFG_F_UNIX_HOOK	(1U << 0)	/* informational: connect_unix attached */
/* Which kinds of entries each map may hold, so the programs skip lookups that cannot match
 * (most deployments only have host:port rules: one hash lookup and no trie walk). Set by
 * userspace before inserting such an entry; a stale set bit only costs a lookup. */
#define WARDEN_CFG_F_PROTECT_PORT	(1U << 1)	/* protect4/6 hold port-specific prefixes */
#define WARDEN_CFG_F_PROTECT_ANY	(1U << 2)	/* protect4/6 hold any-port prefixes */
#define WARDEN_CFG_F_ALLOW_PORT		(1U << 3)
#define WARDEN_CFG_F_ALLOW_ANY		(1U << 4)
#define WARDEN_CFG_F_XPROTECT_PORT	(1U << 5)	/* exact4/6 hold protected host:port */
#define WARDEN_CFG_F_XPROTECT_ANY	(1U << 6)	/* exact4/6 hold protected hosts, any port */
#define WARDEN_CFG_F_XALLOW_PORT	(1U << 7)
#define WARDEN_CFG_F_XALLOW_ANY		(1U << 8)

struct warden_config {
	__u32 abi_version;	/* WARDEN_ABI_VERSION once userspace initialised the map */
	__u32 level_mask;	/* bit L set: some enrolled/exempt cgroup sits at depth L */
	__u32 deny_errno;	/* 0 or EPERM: plain EPERM; else bpf_set_retval(-deny_errno) */
	__u16 sidecar_port;	/* network order; 0: no sidecar endpoint allowed */
	__u16 flags;		/* WARDEN_CFG_F_* */
	__u16 redirect_port;	/* network order: the redirect listener on 127.0.0.1 and ::1;
				 * 0: nothing is redirected */
	__u16 pad;
	__u32 pad2;
};

/* warden_enroll.flags */
#define WARDEN_ENROLL_F_REDIRECT	(1U << 0)	/* TCP connects of this cgroup to a
							 * redirectable protected destination go to
							 * the redirect listener instead of failing */

struct warden_enroll {
	__u32 mode;		/* enum warden_mode */
	__u16 level;		/* depth of this cgroup below the cgroup2 root (root = 0) */
	__u16 flags;		/* WARDEN_ENROLL_F_* */
};

/* LPM trie keys. The matched data is port then address, so one trie holds both
 * "cidr:port" (prefixlen = 16 + cidr bits) and "cidr, any port" (stored with port 0,
 * prefixlen = 16 + cidr bits as well, looked up a second time with port 0). The trailing
 * padding is never inside a prefix. */
struct warden_lpm4_key {
	__u32 prefixlen;
	__u16 port;		/* network order; 0 = any port */
	__u8 addr[4];
	__u8 pad[2];
};

struct warden_lpm6_key {
	__u32 prefixlen;
	__u16 port;		/* network order; 0 = any port */
	__u8 addr[16];
	__u8 pad[2];
};

/* Host rules: a full-length address (/32, /128) with a port or any port (port 0) is not a
 * prefix, and most protected upstreams are exactly that. They live in one hash map per family
 * instead of the tries: one hash lookup instead of a trie walk that grows with the number of
 * rules. kind tells a protected host from an allowed one (both may exist for one address). */
enum warden_rule_kind {
	WARDEN_KIND_PROTECT = 1,
	WARDEN_KIND_ALLOW = 2,
};

struct warden_exact4_key {
	__u8 addr[4];
	__u16 port;		/* network order; 0 = any port */
	__u8 kind;		/* enum warden_rule_kind */
	__u8 pad;
};

struct warden_exact6_key {
	__u8 addr[16];
	__u16 port;		/* network order; 0 = any port */
	__u8 kind;		/* enum warden_rule_kind */
	__u8 pad;
};

/* warden_rule.flags (protected rules only) */
#define WARDEN_RULE_F_REDIRECT	(1U << 0)	/* a plain-HTTP MCP upstream: redirectable */

struct warden_rule {
	__u32 id;		/* assigned by userspace, reported in events */
	__u32 flags;		/* WARDEN_RULE_F_* */
};

/* Exact sun_path, zero padded. Abstract names keep their leading NUL. */
struct warden_unix_key {
	char path[WARDEN_UNIX_PATH_LEN];
};

/* The cgroup decision cache. Finding the calling task's enrolled ancestor costs a hash
 * lookup per populated level; a task usually connects many times from the same cgroup, so
 * each CPU remembers recent decisions. Programs on one CPU can preempt each other mid-update,
 * so a slot is never trusted as a whole: each word is read and written with one 8-byte access
 * and the words check each other.
 *
 *   tag         = (mix(cgroup id, epoch) & ~WARDEN_CGCACHE_MODE_MASK) | mode
 *   enrolled_id = the deciding cgroup (for events)
 *   check       = mix(tag, enrolled_id)                         (mix: bpf/lib/policy.h)
 *
 * The epoch (warden_epoch) is a fresh random value written by userspace after every change
 * to warden_enrolled and level_mask, so every decision cached before the change stops
 * matching. A false match needs a 62-bit hash collision. */
#define WARDEN_CGCACHE_MODE_MASK	7ULL	/* the mode, and WARDEN_MODE_F_REDIRECT */
/* Not a mode: the enrolment's redirect flag as the programs carry it beside the mode. */
#define WARDEN_MODE_F_REDIRECT		4U

struct warden_cgcache {
	__u64 tag;
	__u64 enrolled_id;
	__u64 check;
};

struct warden_counters {
	__u64 allowed;		/* decisions that let an enrolled cgroup through */
	__u64 denied;		/* refusals */
	__u64 events_dropped;	/* refusals whose event did not fit the ring buffer */
	__u64 unenrolled;	/* calls from cgroups that are not enrolled (or exempt) */
	__u64 redirected;	/* connects sent to the redirect listener (connect4/6); original
				 * peers shown (getpeername4/6) */
};

/* warden_redirect: socket cookie -> where a redirected connect was going. Written by
 * connect4/6 when they send a connect to the redirect listener; read by getpeername4/6 (the
 * agent sees its original peer) and by the daemon, which finds the client socket's cookie
 * with sock_diag (INET_DIAG's idiag_cookie) and routes the connection to that upstream.
 * Socket cookies are never reused, so an entry of a closed socket is harmless until the LRU
 * drops it. */
struct warden_redirect {
	__u64 cgroup_id;	/* the connecting task's cgroup v2 id */
	__u32 rule_id;		/* the protected rule that matched */
	__u16 port;		/* network order */
	__u8 family;		/* AF_INET (also for v4-mapped) or AF_INET6 */
	__u8 flags;		/* WARDEN_EV_F_V4MAPPED: asked for ::ffff:a.b.c.d */
	__u8 addr[16];		/* network order; AF_INET: first 4 bytes */
};

/* warden_conns: who opened each TCP connection on this host, for the daemon's accept path
 * with no system call (userspace/enforce/peer_fast.c). The sockops program, attached at the
 * cgroup root so every caller is seen (enrolled or not), writes the slot of the client
 * socket's local port when the client side is established — before its final ACK leaves, so
 * before the server can accept. The daemon maps the array read-only and believes a slot only
 * when all of it matches the connection it accepted: network namespace, both addresses and
 * ports. Anything else (slot overwritten by a later connection from the same port, being
 * written, never written) sends it to the sock_diag lookup.
 *
 * Writers take a slot with a compare-and-swap of seq from even to odd and release it with an
 * atomic add (seq even again): one writer at a time; a writer that finds the slot taken does
 * not record (that connection's server falls back). Readers copy between two reads of seq
 * and retry or fall back when it was odd or moved. */
#define WARDEN_CONN_F_REDIRECTED	(1U << 0)	/* connect4/6 redirected it: orig is set */

struct warden_conn {
	__u64 seq;		/* odd while a writer holds the slot (64 bits: the BPF atomics
				 * clang emits without alu32) */
	__u64 cgroup_id;	/* the client socket's cgroup v2 id (what sock_diag reports) */
	__u64 netns_cookie;	/* the client socket's network namespace */
	__u64 cookie;		/* the client socket's cookie */
	__u8 family;		/* AF_INET (also a v4-mapped v6 socket) or AF_INET6; 0: empty */
	__u8 flags;		/* WARDEN_CONN_F_* */
	__u16 sport;		/* network order: the client's port (the slot is its host value) */
	__u16 dport;		/* network order */
	__u16 pad2;
	__u8 saddr[16];		/* network order; AF_INET: first 4 bytes, rest zero */
	__u8 daddr[16];
	struct warden_redirect orig;	/* WARDEN_CONN_F_REDIRECTED: where the connect was going */
};

/* warden_event.flags */
#define WARDEN_EV_F_V4MAPPED	(1U << 0)	/* destination was ::ffff:a.b.c.d, reported as v4 */

/* One refusal, as written to the ring buffer. */
struct warden_event {
	__u64 ts_boot_ns;	/* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;	/* the calling task's cgroup v2 id */
	__u64 enrolled_id;	/* the enrolled cgroup (itself or an ancestor) that decided */
	__u32 pid;		/* thread id */
	__u32 tgid;		/* process id */
	__u32 uid;
	__u32 gid;
	__u32 rule_id;		/* matched rule, 0 when the refusal is a mode default */
	__u16 protocol;		/* IPPROTO_* of the socket */
	__u16 dport;		/* host order */
	__u8 hook;		/* enum warden_hook */
	__u8 family;		/* AF_INET (also after v4-mapped normalisation), AF_INET6, AF_UNIX */
	__u8 mode;		/* enum warden_mode of enrolled_id */
	__u8 reason;		/* enum warden_reason */
	__u8 flags;		/* WARDEN_EV_F_* */
	__u8 pad;
	__u16 sock_type;	/* SOCK_* (sock_create) */
	__u8 daddr[16];		/* AF_INET: first 4 bytes */
	char comm[WARDEN_COMM_LEN];
	char path[WARDEN_UNIX_PATH_LEN];	/* AF_UNIX destination */
	__u8 pad2[4];
};

/* The ABI: every struct the kernel and userspace share, with the size both must agree on. */
#define WARDEN_LAYOUTS(X)                                                                   \
	X(config, 24) X(enroll, 8) X(lpm4_key, 12) X(lpm6_key, 24) X(exact4_key, 8)          \
	X(exact6_key, 20) X(rule, 8) X(unix_key, 108) X(counters, 40) X(redirect, 32)        \
	X(conn, 104) X(cgcache, 24) X(event, 200)

#define WARDEN_LAYOUT_ASSERT(name, size) \
	_Static_assert(sizeof(struct warden_##name) == size, "warden_" #name " layout");
WARDEN_LAYOUTS(WARDEN_LAYOUT_ASSERT)
#undef WARDEN_LAYOUT_ASSERT

#endif
