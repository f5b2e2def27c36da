/* tool_digest: what identifies a tool's definition, for pinning (docs/tool-integrity.md).
 *
 * The canonical form of a tool is a JSON object holding only the fields that say what the tool
 * is and does — name, title, description, inputSchema, outputSchema, annotations — with every
 * object's keys sorted (byte order, recursively) and no whitespace. Its digest is the SHA-256
 * of that text, as 64 lowercase hex digits. Fields outside the list (_meta, icons) change
 * nothing, so a server that only rotates those does not look like a new definition.
 */
#ifndef WARDEN_TOOL_DIGEST_H
#define WARDEN_TOOL_DIGEST_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define TOOL_DIGEST_HEX 65      /* 64 hex digits and the NUL */
#define TOOL_DIFF_TEXT_MAX 2048 /* description texts in a diff are cut to this many bytes */

/* The canonical text of a tool object (caller frees). */
char *tool_canonical(const cJSON *tool);
/* The canonical text of any JSON value: keys sorted, no whitespace (caller frees). */
char *tool_canonical_value(const cJSON *v);
/* SHA-256 of n bytes as hex. 0 or -EIO. */
int tool_sha256_hex(const void *p, size_t n, char hex[TOOL_DIGEST_HEX]);
/* The digest of a tool object (hex, NUL-terminated). 0 or -EIO (the hash failed). */
int tool_digest(const cJSON *tool, char hex[TOOL_DIGEST_HEX]);
/* A readable account of what differs between two definitions (either may be NULL: unknown):
 * {"changed": ["description", "inputSchema", ...], "description": {"old", "new"}} with the
 * description texts cut to TOOL_DIFF_TEXT_MAX bytes. Caller frees. */
cJSON *tool_diff(const cJSON *old_def, const cJSON *new_def);

#endif
