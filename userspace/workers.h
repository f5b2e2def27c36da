/* workers: the event loops beside the first ("workers": N in the config), one thread each.
 *
 * Each loop serves the agent listener's port with a listener of its own (SO_REUSEPORT: the
 * kernel spreads the connections), a front and a router half (mcp/router.h,
 * router_new_loop), and its own attachments: metrics block, log staging, epochs, upstream
 * HTTP client, store staging. Everything else stays on the first loop (main.c): signals,
 * reloads, the admin plane, the kernel half, the unix socket, the LLM route. What a request
 * needs of another loop it gets by the front's hand-off (mcp/transport/front.h).
 * docs/architecture.md, "workers: N", says what each part shares and how.
 *
 * All four calls are the first loop's, between two of its callbacks or inside one; they
 * block until every loop has done what was asked (a callback's time, or a loop's end).
 */
#ifndef WARDEN_WORKERS_H
#define WARDEN_WORKERS_H

struct config;
struct front_group;
struct gate;
struct router;
struct workers;

/* Start cfg->workers - 1 loops serving cfg through gate, each with a half of first's router
 * and a front on port in g (the first loop's front is in g already). Returns once each
 * serves, or one could not start (then none runs): 0 with *out (NULL when cfg->workers is
 * 1), or a negative errno, logged. cfg, gate, first and g outlive workers_stop. */
int workers_start(const struct config *cfg, struct gate *gate, struct router *first,
		  struct front_group *g, int port, struct workers **out);
/* Every loop waits between two of its callbacks until workers_resume: what they read of
 * the config may change meanwhile. NULL is a no-op. */
void workers_pause(struct workers *w);
void workers_resume(struct workers *w);
/* Every loop stops at once (none is in a callback, so none hands another a connection),
 * then each, on its thread, frees its front (its connections close) and its half (its
 * sessions end), waits for the store's answers to what it queued, and ends. w is freed.
 * NULL is a no-op. */
void workers_stop(struct workers *w);

#endif
