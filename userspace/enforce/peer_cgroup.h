/* peer_cgroup: who is at the other end of an accepted local TCP or unix-socket connection, as
 * the kernel says it — never from anything the client sends.
 *
 * The client's socket is found in the kernel by the connection's 4-tuple (the client's
 * address:port -> ours) with one exact sock_diag lookup (NETLINK_SOCK_DIAG), which answers
 * with that socket's cgroup v2 id (INET_DIAG_CGROUP_ID: the cgroup of the task that created
 * the socket) and its cookie (idiag_cookie), which finds a redirected connection's original
 * destination (enforcer_redirect_lookup). Only a socket in this network namespace can be found: a client on another host
 * (or in another pod) has no identity here. One netlink round trip per connection, answered
 * by the kernel without waiting on any device: fine on the event loop. The netlink socket is
 * kept (one per thread).
 */
#ifndef WARDEN_PEER_CGROUP_H
#define WARDEN_PEER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cgroup v2 id of the socket connected to fd (an accepted AF_INET/AF_INET6 TCP socket).
 * -ENOENT when the peer is not a socket of this network namespace (or already gone),
 * -EAFNOSUPPORT for other families, -EOPNOTSUPP when the kernel does not report cgroup ids
 * (before 5.7), another -errno on failure. */
int peer_cgroup_id(int fd, uint64_t *id);
/* The same lookup, also giving the client socket's cookie (idiag_cookie: the value
 * bpf_get_socket_cookie() returns for it, which keys warden_redirect). cookie may be NULL. */
int peer_socket_lookup(int fd, uint64_t *id, uint64_t *cookie);
/* The caller at the other end of an accepted AF_UNIX stream socket: SO_PEERCRED's pid (the
 * kernel's, taken at connect), that process's cgroup v2 path from /proc/<pid>/cgroup ("0::/p",
 * as seen from this cgroup namespace) and its id (the directory's inode below root). The pid
 * is pinned by SO_PEERPIDFD while /proc is read, so a pid reused meanwhile is detected
 * (-ESRCH). No capability is needed. -EAFNOSUPPORT for other families, -ENOENT when the
 * process is gone or has no v2 cgroup. A small procfs read (in memory, no disk): done once
 * per connection on the loop, as the inet lookup is. */
int peer_unix_cgroup(int fd, const char *root, uint64_t *id, char *buf, size_t len);
/* cgroup_path_of (enforce/cgroup.h) with a small per-thread cache of recent ids (2 s).
 * Without CAP_DAC_READ_SEARCH (open_by_handle_at refused) the id is found by walking the
 * cgroup2 tree (an id is its directory's inode number) into a per-thread index, rebuilt on a
 * miss at most every 250 ms and bounded to 4096 cgroups: a cgroup created less than that
 * after the last walk may go unnamed until the next. */
int peer_cgroup_path(const char *root, uint64_t id, char *buf, size_t len);
/* Tests: take the walk as if the capability were missing. */
extern bool peer_force_walk;

#endif
