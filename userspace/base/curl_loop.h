/* curl_loop: libcurl's multi socket interface driven by the daemon's libevent loop (curl's
 * hiperfifo pattern: curl says which sockets to watch and when to wake it; the loop calls
 * curl_multi_socket_action). One multi per process, so connections to the same server are
 * cached and reused by every session. Shared by the MCP upstream transport and the
 * enforcer's Kubernetes pod watch; nothing here knows either.
 *
 * Every easy handle added to the multi carries a struct curl_xfer as its CURLOPT_PRIVATE:
 * its done() is called when the transfer finishes, so each user learns about its own.
 */
#ifndef WARDEN_CURL_LOOP_H
#define WARDEN_CURL_LOOP_H

#include <stdbool.h>
#include <curl/curl.h>
#include <event2/event.h>

/* Embed one in the transfer's own state and pass its address as CURLOPT_PRIVATE. */
struct curl_xfer {
	void (*done)(struct curl_xfer *x, CURLcode res);
};

/* What every transfer of the daemon sets on its easy handle, whoever starts it. */
struct curl_xfer_opts {
	const char *url;
	const char *user_agent;
	curl_write_callback write;	/* called with data as its last argument */
	void *data;
	char *errbuf;			/* CURL_ERROR_SIZE bytes: curl's message on failure */
	struct curl_slist *headers;	/* kept by the caller until the transfer ends */
};

/* Set o on e, x as its CURLOPT_PRIVATE, and the options no transfer goes without: no
 * signals, http and https only, no redirects, TCP keepalive. Empties o->errbuf. Returns
 * CURLE_OK or the first option curl refused. */
CURLcode curl_xfer_setup(CURL *e, struct curl_xfer *x, const struct curl_xfer_opts *o);

/* End a transfer: take *e out of the multi (a refusal is logged), clean it up and free
 * *headers; both become NULL. Either may already be NULL. */
void curl_xfer_end(CURL **e, struct curl_slist **headers);

struct curl_loop_ops {
	/* After each round of curl activity (and its done calls): run what was queued. */
	void (*after)(void);
};

/* For the calling thread's loop (one multi handle a loop thread): 0, or -EBUSY when this
 * thread runs it on another base already. ops may be NULL and is kept. */
int curl_loop_init(struct event_base *base, const struct curl_loop_ops *ops);
void curl_loop_shutdown(void);
bool curl_loop_running(const struct event_base *base);
CURLM *curl_loop_multi(void);
struct event_base *curl_loop_base(void);
/* Does this libcurl resolve names without blocking the loop? */
bool curl_loop_async_dns(void);
/* Finish completed transfers, then ops->after (call after starting or stopping transfers
 * outside curl's own callbacks). */
void curl_loop_pump(void);

#endif
