/* http_server_int: what the two halves of base/http_server share — the connection's and the
 * request's state (http_server.c reads requests and runs connections, http_server_answer.c
 * writes the answers). Not an interface: only those two files include it. */
#ifndef WARDEN_HTTP_SERVER_INT_H
#define WARDEN_HTTP_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <pthread.h>

#include "base/doorbell.h"
#include "base/http_parse.h"
#include "base/http_server.h"
#include "base/list.h"

#define OUT_HEADERS_MAX 16

enum conn_state {
	CONN_IDLE,              /* between requests: no byte of the next one yet */
	CONN_READING,           /* a request is arriving */
	CONN_SERVING,           /* handed to the hook, not answered yet */
	CONN_STREAMING,         /* an answer in pieces has started */
	CONN_CLOSING,           /* answered for the last time: draining, then closed */
};

/* An answer header, kept as its line ("Name: value\r\n") in the request's buffer. */
struct out_header {
	uint32_t off, len;      /* where its line is in hbuf, and its length */
	uint32_t name_len;
};

struct http_req {
	struct http_conn *c;
	enum http_method method;
	const char *path;
	struct out_header out[OUT_HEADERS_MAX];
	unsigned nout;
	char *hbuf;             /* the header lines, kept from one request to the next */
	size_t hlen, hcap;
	bool keep_alive;
	bool chunked;           /* the streamed answer is chunked */
	void (*gone)(void *arg);
	void *gone_arg;
};

struct http_listener {
	struct http_server *s;
	int fd;
	struct sockaddr_storage addr;
	struct event *ev, *resume;
	struct list_head link;
};

struct http_conn {
	struct http_server *s;
	struct http_listener *l;
	int fd;
	enum conn_state state;
	struct event *rev, *wev;
	struct list_head link;
	struct list_head later;         /* in s->later, or alone */
	uint64_t deadline_ms;           /* 0: none (a request is being served) */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage local;  /* the address of the listener that accepted it */
	struct http_server *moving_to;  /* handed over (http_req_handoff): sent once the
					 * request hook has returned */
	char peer_text[INET6_ADDRSTRLEN];
	uint16_t peer_port;
	struct http_parser parser;
	char *in;                       /* read, not yet parsed from in_off */
	size_t in_len, in_off, in_cap;
	char *body;
	size_t body_len, body_cap;
	char *path;
	size_t path_cap;
	char *out;                      /* written, not yet taken by the socket */
	size_t out_len, out_off, out_cap;
	struct http_req req;
	bool req_live;                  /* req is being served */
	bool admitted;                  /* the accept hook took it: close hook owed */
	bool handed;                    /* being admitted after another loop's server sent it */
	bool reading_paused;            /* pipelined input past its bound: not read for now */
	bool peer_eof;                  /* the client shut its side after pipelined requests */
	bool close_after;               /* close once the output is out */
	bool dead;                      /* closed while busy: freed when busy drops */
	bool failed;                    /* a write failed: closed on the next turn */
	unsigned busy;                  /* inside a hook */
	void *data;
};

struct http_server {
	struct event_base *base;
	struct http_server_hooks hooks;
	void *arg;
	struct http_server_limits lim;
	struct list_head listeners, conns;
	struct list_head failed;        /* connections to close on the next turn */
	struct list_head later;         /* connections with pipelined input to parse next turn */
	struct event *sweep, *reaper;
	/* Connections other loops hand over (workers: N), taken on this one's turn. */
	pthread_mutex_t inbox_mu;
	struct list_head inbox;
	struct doorbell bell;
	char *head;                     /* an answer's status line and headers, printed here */
	size_t head_cap;
};

/* http_server.c */
void conn_close(struct http_conn *c);
/* A write failed inside a call of the request's owner: closed on the next turn. */
void conn_fail(struct http_conn *c);
/* Answered for the last time: close once the output is out. */
void conn_linger(struct http_conn *c);
/* The answer is written (or queued): the next request, or closing. */
void req_done(struct http_conn *c);
void req_reset(struct http_req *r);

/* http_server_answer.c */
/* Write iov: straight to the socket when nothing waits before it, the rest kept for the
 * write event. -EPIPE once the connection has failed. */
int conn_write(struct http_conn *c, struct iovec *iov, int n);
const char *http_reason(int status);
/* The Date header's value, printed once a second. */
const char *http_date_now(void);

#endif
