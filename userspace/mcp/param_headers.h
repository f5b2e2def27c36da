/* param_headers: the request headers of the 2026-07-28 revision that mirror body values —
 * their encoding, and the Mcp-Param-{Name} headers a tool declares (SEP-2243).
 *
 * A header value is plain (visible ASCII, space, tab) or the Base64 sentinel
 * "=?base64?<Base64 of the UTF-8 bytes>?=" (strict: alphabet, padding, canonical). A tool's inputSchema
 * may mark properties with "x-mcp-header": "<Name>"; a 2026-07-28 client then sends each
 * such argument as "Mcp-Param-<Name>" so that intermediaries can route on it without the
 * body. The server side (here: the gateway towards agents) checks that every such header
 * says what the body says: a value in the arguments needs its header, a header needs its
 * value; strings compare byte for byte after decoding, integers numerically ("42.0" is 42),
 * booleans as "true"/"false".
 *
 * Only valid declarations count (the spec's rules: a token name, on a property reached from
 * the root through "properties" alone, of type string, integer or boolean): a conforming
 * client drops a tool with any other, so its calls come only from clients that mirror
 * nothing, and nothing is checked for it. At most PARAM_HEADERS_MAX declarations per tool
 * and PARAM_HEADERS_DEPTH levels of nesting are looked at.
 */
#ifndef WARDEN_PARAM_HEADERS_H
#define WARDEN_PARAM_HEADERS_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define PARAM_HEADERS_MAX 32
#define PARAM_HEADERS_DEPTH 8
#define PARAM_HEADER_NAME_MAX 64        /* of the <Name> part */

/* A request header by name (case-insensitive), NULL when absent. */
typedef const char *(*param_header_fn)(const void *ctx, const char *name);

/* Decode a header value (plain or Base64 sentinel) into *out (malloc'd, NUL-terminated,
 * *len bytes without the NUL; it may hold NULs). 0, -EINVAL (characters a header may not
 * carry, bad Base64), -ENOMEM. */
int param_header_decode(const char *value, char **out, size_t *len);

/* Does the header value say exactly this string (len bytes)? Invalid values never match. */
int param_header_matches(const char *value, const char *s, size_t len);

/* Check the Mcp-Param headers of a tools/call against its arguments (NULL: none) by the
 * tool's inputSchema (NULL: nothing declared). 0 when they agree; -EINVAL with why (a
 * sentence naming the header) when not; -ENOMEM. */
int param_headers_check(const cJSON *input_schema, const cJSON *arguments, param_header_fn get,
			const void *ctx, char *why, size_t whylen);

#endif
