/* front: the agent-facing HTTP listener — MCP Streamable HTTP at one path.
 *
 * Owns everything HTTP: listening (loopback by default), header/body limits and timeouts,
 * Origin/Host checks, credentials extraction, Accept/Content-Type checks, session header and
 * MCP-Protocol-Version validation, status codes (202/400/401/403/404/405/406/413/415), and
 * writing replies as JSON or as an SSE stream. It authenticates every request with the gate,
 * then hands each message to the router; answers come back through the reply and stream
 * interfaces (mcp/reply.h) it implements. What a message means is the router's job. Paths
 * under /v1/ go to the LLM route (llm/), which answers them itself.
 */
#ifndef WARDEN_FRONT_H
#define WARDEN_FRONT_H

#include <cjson/cJSON.h>
#include <event2/event.h>

struct config;
struct gate;
struct router;
struct front;
struct llm;
struct http_server;
struct redirect_in;

/* gate authenticates every request; router serves what passes. Both borrowed. */
int front_new(struct event_base *base, const struct config *cfg, struct gate *gate,
	      struct router *r, struct front **out);
/* Another loop's front (workers: N): on r's loop (its base), on the first loop's port with
 * SO_REUSEPORT (the first's front binds so when cfg has workers > 1); no unix socket (the
 * first loop's only). Its requests for the LLM route and of the 2026-07-28 revision go to
 * the first loop with their connections (front_join). */
int front_new_loop(struct event_base *base, const struct config *cfg, struct gate *gate,
		   struct router *r, int port, struct front **out);
void front_free(struct front *f);
/* The bound port (useful when the config asked for port 0). */
int front_port(const struct front *f);
/* Reload on the same listener (same host and port): first end every GET stream (their
 * sessions belong to the router being replaced), then serve cfg with gate and router. */
void front_close_streams(struct front *f);
void front_reconfigure(struct front *f, const struct config *cfg, struct gate *gate,
		       struct router *r);

/* The fronts of every loop (workers: N): a request naming a session another loop owns is
 * handed to that loop's front with its connection (base/http_server.h, http_req_handoff),
 * which serves it and the connection's next requests. Their connections count against one
 * max_connections and max_connections_per_peer. A front of a group is freed while no other
 * loop of it runs (they may be handing it a connection), and the group after them all.
 * NULL when out of memory. */
struct front_group;
struct front_group *front_group_new(void);
void front_group_free(struct front_group *g);
/* f serves its router half's loop (router_loop) in g. On f's loop, before it accepts a
 * connection. 0, -EEXIST when that loop has a front in g already, -EBUSY when f counts
 * connections already. */
int front_join(struct front *f, struct front_group *g);

/* The LLM route served under /v1/ (NULL: none); borrowed, cleared before it is freed. */
void front_set_llm(struct front *f, struct llm *l);
/* Transparent redirect: the server to bind the redirect listener on
 * (mcp/transport/redirect_in.h), and the listener once bound (owned by the front from then
 * on, freed with it). */
struct http_server *front_http(struct front *f);
void front_set_redirect(struct front *f, struct redirect_in *ri);

#endif
