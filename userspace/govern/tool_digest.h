/* tool_digest: what identifies a tool's definition, for pinning (docs/tool-integrity.md).
 *
 * The canonical form of a tool is a JSON object holding only the fields that say what the tool
 * is and does — name, title, description, inputSchema, outputSchema, annotations, and _meta
 * (an MCP App's ui:// resource is named there: changing it changes what the agent shows) —
 * with every object's keys sorted (byte order, recursively) and no whitespace. Its digest is
 * "v2:" and the SHA-256 of that text as 64 lowercase hex digits. Other fields (icons) change
 * nothing.
 *
 * Version 1 digests (64 hex digits, no prefix) covered the same fields without _meta. Pins and
 * lockfiles may still hold them: a v1 pin whose v1 digest still matches is the same approved
 * definition, and is upgraded to v2 (govern/toolpin.h).
 */
#ifndef WARDEN_TOOL_DIGEST_H
#define WARDEN_TOOL_DIGEST_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define TOOL_DIGEST_HEX 68      /* a digest's buffer: "v2:", 64 hex digits and the NUL */
#define TOOL_DIGEST_PREFIX "v2:"
#define TOOL_DIFF_TEXT_MAX 2048 /* description texts in a diff are cut to this many bytes */

/* The canonical text of a tool object (caller frees). */
char *tool_canonical(const cJSON *tool);
/* 2: "v2:" and 64 lowercase hex digits; 1: 64 lowercase hex digits (v1); 0: neither. */
int tool_digest_version(const char *digest);
/* The canonical text of any JSON value: keys sorted, no whitespace (caller frees). */
char *tool_canonical_value(const cJSON *v);
/* SHA-256 of n bytes as hex. 0 or -EIO. */
int tool_sha256_hex(const void *p, size_t n, char hex[TOOL_DIGEST_HEX]);
/* The digest of a tool object ("v2:" and hex, NUL-terminated). 0 or -EIO (the hash failed). */
int tool_digest(const cJSON *tool, char hex[TOOL_DIGEST_HEX]);
/* Its version 1 digest (hex only, without _meta), to recognise a v1 pin. 0 or -EIO. */
int tool_digest_v1(const cJSON *tool, char hex[TOOL_DIGEST_HEX]);
/* A readable account of what differs between two definitions (either may be NULL: unknown):
 * {"changed": ["description", "inputSchema", "_meta", ...], "description": {"old", "new"},
 * "_meta": {"old", "new"}} with the description texts cut to TOOL_DIFF_TEXT_MAX bytes (a _meta
 * whose text is longer is shown as null). Caller frees. */
cJSON *tool_diff(const cJSON *old_def, const cJSON *new_def);

#endif
