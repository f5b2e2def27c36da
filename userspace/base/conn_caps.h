/* conn_caps: how many connections a listener holds, in all and per peer, against its caps
 * (limits.max_connections and max_connections_per_peer). A peer is a byte key its owner
 * makes: a source address, or on a unix socket the caller's cgroup or uid. Shared by the
 * agent listener (mcp/transport/front_conn.c) and the admin one (conn_deadline.c). One lock
 * around each count and look: the agent listeners of every loop (workers: N) share one. */
#ifndef WARDEN_CONN_CAPS_H
#define WARDEN_CONN_CAPS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/htab.h"

#define CONN_CAPS_KEY_MAX 16

struct conn_peer;

struct conn_caps {
	pthread_mutex_t mu;
	struct htab peers;
	unsigned live;                  /* connections counted */
	unsigned max_total, max_per_peer;
};

enum conn_caps_verdict { CONN_CAPS_OK, CONN_CAPS_TOTAL, CONN_CAPS_PEER };

/* No caps until set (~0u each). 0 or -ENOMEM. */
int conn_caps_init(struct conn_caps *cc);
/* After every counted connection was released. */
void conn_caps_fini(struct conn_caps *cc);
void conn_caps_set(struct conn_caps *cc, unsigned max_total, unsigned max_per_peer);
/* Would one more connection from the peer key[0..len) stay within the caps? */
enum conn_caps_verdict conn_caps_check(struct conn_caps *cc, const uint8_t *key, size_t len);
/* Count it (after conn_caps_check said OK): its peer, to release it with. */
struct conn_peer *conn_caps_take(struct conn_caps *cc, const uint8_t *key, size_t len);
void conn_caps_release(struct conn_caps *cc, struct conn_peer *p);
/* Check and count in one step, so that loops sharing the caps never go past them together:
 * its peer, or NULL with the verdict in *v. counted: a connection another loop's listener
 * admitted and handed over (base/http_server.h), counted again whatever the caps say. */
struct conn_peer *conn_caps_admit(struct conn_caps *cc, const uint8_t *key, size_t len,
				  bool counted, enum conn_caps_verdict *v);
/* The answer to a connection past a cap (v not OK): a 503 with Retry-After and a JSON-RPC
 * error naming the limit, into buf; its length. */
size_t conn_caps_refusal(enum conn_caps_verdict v, char *buf, size_t len);

#endif
