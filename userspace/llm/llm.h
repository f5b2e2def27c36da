/* llm: the LLM route — OpenAI-compatible /v1/chat/completions, /v1/embeddings and /v1/models
 * on the agent listener, governed by the same virtual keys as tool calls (docs/llm.md).
 *
 * A request is authenticated (Authorization: Bearer or x-bf-vk), its "provider/model" checked
 * against the key's policies (llm.providers, llm.models: globs, deny wins), rate limited
 * (requests, and tokens once the answer says how many), and its estimated price reserved in
 * the key's budgets; it is then forwarded to the provider on curl_loop (never blocking the
 * loop), streamed back chunk by chunk or answered whole, and settled to the price of the
 * usage the provider reports once the charge is durable. Every request is one "llm" record.
 *
 * The "providers" and "llm" sections are parsed where blocking is allowed (API keys may come
 * from files): llm_prepare at start-up and on the reload thread; the loop adopts the result.
 */
#ifndef WARDEN_LLM_H
#define WARDEN_LLM_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>

struct config;
struct config_errors;
struct gate;
struct llm;
struct router;

/* Parse cfg's "providers" and "llm" sections and the policies' "llm" members, reading API
 * keys from the environment and from files (blocking: not on the loop), and attach the result
 * to cfg (cfg->llm). Returns 0 or -EINVAL with every problem in errs. */
int llm_prepare(struct config *cfg, struct config_errors *errs);

/* The route, serving with cfg's prepared sections (prepared here when absent: start-up only)
 * and governing with gate; router (may be NULL) runs the MCP tool calls models make. Both
 * borrowed. */
int llm_new(struct event_base *base, struct config *cfg, struct gate *gate,
	    struct router *router, struct llm **out);
/* A governance reload: take cfg's prepared sections (requests in flight keep theirs). */
void llm_reload(struct llm *l, struct config *cfg);
/* Requests in flight are answered (503) and their reservations released. */
void llm_free(struct llm *l);

/* Is this path the route's (/v1/...)? */
bool llm_owns_path(const char *path);
/* Serve one request on such a path; rx_ns: when it arrived (monotonic). */
/* caller: the caller's cgroup path as the kernel named it (NULL unknown), for keys bound to
 * workloads (govern/keys.h). */
void llm_handle(struct llm *l, struct http_req *req, uint64_t rx_ns, const char *caller);
struct http_req;
/* OAuth access tokens are checked by the listener's (mcp/transport/front_auth.h), borrowed. */
struct front_auth;
void llm_set_auth(struct llm *l, struct front_auth *a);

#endif
