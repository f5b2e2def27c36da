/* oauth_jwks: an issuer's JWKS fetched from its URL on the event loop (base/curl_loop).
 *
 * Fetched when configured, then every jwks_refresh, and again when a token names a kid the
 * set does not hold (the issuer rotated its keys) but at most once per jwks_min_refetch, so a
 * flood of tokens with made-up kids costs one request per interval. A failed fetch keeps the
 * keys it had and is retried at the next occasion. Belongs to the loop's thread.
 */
#ifndef WARDEN_OAUTH_JWKS_H
#define WARDEN_OAUTH_JWKS_H

#include <event2/event.h>

struct jwks;
struct oauth_config;
struct oauth_jwks;

int oauth_jwks_new(struct event_base *base, struct oauth_jwks **out);
void oauth_jwks_free(struct oauth_jwks *j);
/* Follow c (NULL: no oauth): a new jwks_url is fetched now (the keys of another URL are
 * dropped); the same URL keeps its keys and fetches on its schedule; no URL stops. c is not
 * kept. */
void oauth_jwks_configure(struct oauth_jwks *j, const struct oauth_config *c);
/* The keys last fetched, NULL before the first success. */
const struct jwks *oauth_jwks_current(const struct oauth_jwks *j);
/* A token named a kid the set does not hold: fetch again unless one ran too recently. */
void oauth_jwks_unknown_kid(struct oauth_jwks *j);

#endif
