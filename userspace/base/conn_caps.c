/* conn_caps: connections counted in all and per peer (see conn_caps.h). */
#include "base/conn_caps.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct conn_peer {
	struct htab_node hn;
	uint8_t key[CONN_CAPS_KEY_MAX];
	size_t len;
	unsigned n;
};

static bool peer_eq(const struct htab_node *n, const void *key)
{
	const struct conn_peer *p = htab_entry(n, struct conn_peer, hn);
	struct htab_bytes mine = { p->key, p->len };

	return htab_bytes_eq(&mine, key);
}

static const struct htab_type peer_type = { htab_bytes_hash, peer_eq };

int conn_caps_init(struct conn_caps *cc)
{
	int rc;

	memset(cc, 0, sizeof(*cc));
	cc->max_total = cc->max_per_peer = ~0u;
	if ((rc = htab_init(&cc->peers, &peer_type)) == 0)
		pthread_mutex_init(&cc->mu, NULL);
	return rc;
}

void conn_caps_fini(struct conn_caps *cc)
{
	struct htab_iter it = htab_iter(&cc->peers);

	for (struct htab_node *n; (n = htab_next(&it));) {
		htab_remove(&cc->peers, n);
		free(htab_entry(n, struct conn_peer, hn));
	}
	htab_fini(&cc->peers);
	pthread_mutex_destroy(&cc->mu);
}

void conn_caps_set(struct conn_caps *cc, unsigned max_total, unsigned max_per_peer)
{
	pthread_mutex_lock(&cc->mu);
	cc->max_total = max_total;
	cc->max_per_peer = max_per_peer;
	pthread_mutex_unlock(&cc->mu);
}

static struct conn_peer *find(const struct conn_caps *cc, const uint8_t *key, size_t len)
{
	struct htab_node *n = htab_find(&cc->peers, &(struct htab_bytes){ key, len });

	return n ? htab_entry(n, struct conn_peer, hn) : NULL;
}

static enum conn_caps_verdict check_locked(const struct conn_caps *cc, const uint8_t *key,
					   size_t len)
{
	const struct conn_peer *p;

	if (len > CONN_CAPS_KEY_MAX)
		len = CONN_CAPS_KEY_MAX;
	if (cc->live >= cc->max_total)
		return CONN_CAPS_TOTAL;
	p = find(cc, key, len);
	return p && p->n >= cc->max_per_peer ? CONN_CAPS_PEER : CONN_CAPS_OK;
}

static struct conn_peer *take_locked(struct conn_caps *cc, const uint8_t *key, size_t len)
{
	struct conn_peer *p;

	if (len > CONN_CAPS_KEY_MAX)
		len = CONN_CAPS_KEY_MAX;
	if (!(p = find(cc, key, len))) {
		p = xcalloc(1, sizeof(*p));
		memcpy(p->key, key, len);
		p->len = len;
		htab_insert(&cc->peers, &p->hn, &(struct htab_bytes){ p->key, p->len });
	}
	p->n++;
	cc->live++;
	return p;
}

enum conn_caps_verdict conn_caps_check(struct conn_caps *cc, const uint8_t *key, size_t len)
{
	enum conn_caps_verdict v;

	pthread_mutex_lock(&cc->mu);
	v = check_locked(cc, key, len);
	pthread_mutex_unlock(&cc->mu);
	return v;
}

struct conn_peer *conn_caps_take(struct conn_caps *cc, const uint8_t *key, size_t len)
{
	struct conn_peer *p;

	pthread_mutex_lock(&cc->mu);
	p = take_locked(cc, key, len);
	pthread_mutex_unlock(&cc->mu);
	return p;
}

struct conn_peer *conn_caps_admit(struct conn_caps *cc, const uint8_t *key, size_t len,
				  bool counted, enum conn_caps_verdict *v)
{
	struct conn_peer *p = NULL;

	pthread_mutex_lock(&cc->mu);
	*v = counted ? CONN_CAPS_OK : check_locked(cc, key, len);
	if (*v == CONN_CAPS_OK)
		p = take_locked(cc, key, len);
	pthread_mutex_unlock(&cc->mu);
	return p;
}

void conn_caps_release(struct conn_caps *cc, struct conn_peer *p)
{
	pthread_mutex_lock(&cc->mu);
	cc->live--;
	if (!--p->n) {
		htab_remove(&cc->peers, &p->hn);
		free(p);
	}
	pthread_mutex_unlock(&cc->mu);
}

size_t conn_caps_refusal(enum conn_caps_verdict v, char *buf, size_t len)
{
	const char *what = v == CONN_CAPS_PEER
		? "too many connections from this peer (limits.max_connections_per_peer)"
		: "too many connections (limits.max_connections)";
	char body[200];
	int n;

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
		 "\"message\":\"%s\"}}", what);
	n = snprintf(buf, len, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
		     "application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
		     "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}
