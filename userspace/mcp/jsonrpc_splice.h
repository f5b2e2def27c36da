/* jsonrpc_splice: tools/call messages relayed as their own text, not parsed and printed again:
 * the upstream's answer without building its result, the agent's request as the agent wrote it.
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

#include <stdbool.h>
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

/* The agent's tools/call request as the agent wrote it (issue 9). Everything is judged on the
 * message's tree (name, schema, shapes, logged values), and the request's params are also
 * kept as their compact text, so that the upstream gets the
 * agent's own bytes (its numbers digit for digit) instead of a print of the tree. Only what
 * the gateway forwards unchanged but for the tool's name is kept: {"jsonrpc":"2.0", "id",
 * "method", "params"} once each, params holding exactly "name" (a string) and maybe
 * "arguments"; no _meta (progress tokens and trace context are rewritten), no task, no \u
 * escape (cJSON cuts a string at \u0000), no raw control character, no number of more than
 * 15 significant digits or a longer exponent (the upstream reads the double the gateway
 * judged), nesting below JSONRPC_SPLICE_MAX_DEPTH, nothing after the message. */
struct jsonrpc_request_text {
	char *text;             /* params, compact, NUL-terminated (cJSON_malloc); NULL: none */
	size_t len, cap;
	size_t name_at, name_len;  /* the name's value in text, quotes included */
	bool has_args;
};

/* Keep a request's params as text: 0, -EINVAL (anything else: parse it in full and print
 * the tree) or -ENOMEM; *t is zeroed when not 0.
 *
 * With tree, the same pass also parses the message (issue 9): *tree is then the tree
 * cJSON_ParseWithLength builds from text (the same nodes, names, strings and numbers, in
 * the same order), NULL when not 0. The scanner's subset is what makes this short: no \u
 * escape, numbers strtod reads as cJSON does, nothing after the message. */
int jsonrpc_splice_request(const char *text, size_t len, struct jsonrpc_request_text *t,
			   cJSON **tree);
void jsonrpc_request_text_free(struct jsonrpc_request_text *t);

/* The params to send as a cJSON_Raw node: the kept text with the routed tree's name (the
 * upstream's own, prefix stripped) put in. NULL when the tree is no longer the text's shape
 * (a member added or removed) or out of memory: send the tree. t is used up either way. */
cJSON *jsonrpc_splice_params(struct jsonrpc_request_text *t, const cJSON *params);

#endif
