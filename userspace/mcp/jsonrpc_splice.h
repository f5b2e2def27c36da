/* jsonrpc_splice: an upstream's answer to a tools/call taken without building its result.
 *
 * Parse once, print once (issue 9): the result of most tool calls is relayed to the agent
 * unread, so it is kept as its own text (a cJSON_Raw node, printed verbatim) instead of a tree
 * parsed here and printed again for the agent. A small strict scanner accepts only what it can
 * prove cJSON would parse to the same tree and print to the same bytes; anything else (other
 * keys, duplicates, string ids, escapes that print differently, numbers other than small
 * integers, deep nesting, invalid JSON) is left to the full parse, which decides as before.
 * The result is refused too when the gateway must read inside it: an "isError" other than
 * false, a "task" (tasks), any "uri" (resource links are rewritten to the gateway's names).
 * Whoever needs the tree after all (results logged, stateless decoration, the LLM route)
 * calls jsonrpc_unsplice first.
 */
#ifndef WARDEN_JSONRPC_SPLICE_H
#define WARDEN_JSONRPC_SPLICE_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* The deepest result kept as text; deeper ones take the full parse. */
#define JSONRPC_SPLICE_MAX_DEPTH 64

/* {"jsonrpc":"2.0","id":<integer>,"result":{...}} in any key order, as a message whose id is
 * a number and whose result is the compact text of the upstream's result (whitespace outside
 * strings dropped: its length is the record's result_bytes, as for a tree). NULL when the
 * text is anything else (or out of memory): parse it in full. */
cJSON *jsonrpc_splice_response(const char *text, size_t len);

/* Whether a response's result is kept as text. */
int jsonrpc_spliced(const cJSON *resp);

/* The result of a spliced response turned into a tree, in place: 0 (also when it was not
 * spliced) or -ENOMEM. */
int jsonrpc_unsplice(cJSON *resp);

#endif
