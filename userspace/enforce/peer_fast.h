/* peer_fast: who opened an accepted connection, read from memory — no system call.
 *
 * The sockops program (bpf/warden.bpf.c) records every TCP connection established on the
 * host in warden_conns, the slot being the client's port: the client socket's cgroup, its
 * network namespace, both ends, and for a connect transparent redirect rewrote, where it was
 * going. The daemon maps that array read-only once; for an accepted connection it reads the
 * slot of the peer's port (a seqlock copy) and believes it only when the namespace, the
 * peer's address and port and our own address and port all match what accept reported.
 * Anything else — the slot overwritten by a later connect from the same port, being written,
 * never written, the program not attached, the map absent (an old kernel, enforcement not
 * installed) — answers -ENOENT, and the caller asks sock_diag (peer_cgroup.h) as before.
 * Nothing the client sends is read. Layout and protocol: warden_types.h (warden_conn).
 *
 * One mapping per process, read by every loop; opening other pins or closing replaces it,
 * and the old one is unmapped once every loop has passed a turn (base/epoch.h). The counters
 * are atomics.
 */
#ifndef WARDEN_PEER_FAST_H
#define WARDEN_PEER_FAST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "warden_types.h"

struct peer_fast_hit {
	uint64_t cgroup_id;		/* the client socket's cgroup v2 id */
	uint64_t cookie;		/* the client socket's cookie */
	bool redirected;		/* the kernel redirected this connect: orig is set */
	struct warden_redirect orig;	/* where it was going */
};

/* Map <pin_dir>/warden_conns (NULL: the default pin directory) read-only. Idempotent: a
 * second call for the same pins does nothing; for other pins it replaces the mapping. -ENOENT when not installed,
 * -EPROTO when the pinned map has another layout, -EOPNOTSUPP when this kernel cannot tell
 * a socket's network namespace (SO_NETNS_COOKIE, 5.14). The fast path stays off on error. */
int peer_fast_open(const char *pin_dir);
/* Try the default pin directory once per process when nothing is mapped yet (the daemon
 * without an enforcement section on a node whose agent installed the programs). */
void peer_fast_open_default_once(void);
void peer_fast_close(void);
bool peer_fast_ready(void);

/* The connection peer -> local (as accept and the listener see it; v4-mapped addresses
 * are the v4 ones). 0 with *out on a full match, -ENOENT otherwise (fall back). */
int peer_fast_lookup(const struct sockaddr *peer, const struct sockaddr *local,
		     struct peer_fast_hit *out);

/* Lookups answered from the map, and those that answered -ENOENT (the caller then asks
 * sock_diag). */
struct peer_fast_stats {
	uint64_t hits;
	uint64_t fallbacks;
};
void peer_fast_stats(struct peer_fast_stats *out);

#endif
