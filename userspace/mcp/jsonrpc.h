/* jsonrpc: classifying and validating JSON-RPC 2.0 messages, building responses and errors.
 *
 * MCP ids are strings or integers, never null; params are objects. Everything the gateway
 * refuses gets a precise standard code: -32700 parse error, -32600 invalid request,
 * -32601 method not found, -32602 invalid params.
 */
#ifndef WARDEN_JSONRPC_H
#define WARDEN_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

enum jsonrpc_code {
	JSONRPC_PARSE_ERROR = -32700,
	JSONRPC_INVALID_REQUEST = -32600,
	JSONRPC_METHOD_NOT_FOUND = -32601,
	JSONRPC_INVALID_PARAMS = -32602,
	JSONRPC_INTERNAL_ERROR = -32603,
	JSONRPC_REQUEST_CANCELLED = -32800,
};

enum jsonrpc_kind { JSONRPC_REQUEST, JSONRPC_NOTIFICATION, JSONRPC_RESPONSE };

struct jsonrpc_msg {
	enum jsonrpc_kind kind;
	const cJSON *id;        /* request/response; borrowed from the message */
	const char *method;     /* request/notification */
	const cJSON *params;    /* object or NULL */
	const cJSON *result;    /* response */
	const cJSON *error;     /* response */
};

/* Classify a parsed value. On failure returns -EINVAL and sets *code and *why (static text)
 * for the error response; *id is the message's id when it could be read (else NULL). */
int jsonrpc_classify(const cJSON *v, struct jsonrpc_msg *out, int *code, const char **why);

/* An id usable as a JSON-RPC id: string or integral number. */
bool jsonrpc_valid_id(const cJSON *id);
/* A copy of an id for an outgoing message that prints exactly as it was received (NULL when
 * out of memory). Read ids of received messages only, not of such copies. */
cJSON *jsonrpc_id_dup(const cJSON *id);
/* Give msg (an object) the id id, as jsonrpc_id_dup prints it: in place when both are
 * integers in int range (every call's answer: no node made or freed), else a new member. */
void jsonrpc_set_id(cJSON *msg, const cJSON *id);

/* Builders. They duplicate id (NULL id → "id": null, used when it could not be read).
 * `result`/`data`/`params` are taken over (deleted on failure). Return NULL on ENOMEM. */
cJSON *jsonrpc_result(const cJSON *id, cJSON *result);
cJSON *jsonrpc_error(const cJSON *id, int code, const char *message, cJSON *data);
cJSON *jsonrpc_errorf(const cJSON *id, int code, cJSON *data, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
cJSON *jsonrpc_request(const cJSON *id, const char *method, cJSON *params);
cJSON *jsonrpc_notification(const char *method, cJSON *params);

/* Print a message for the wire, numbers exact (base/jsonw.h): cJSON prints a double with 15
 * significant digits whenever that round-trips within an epsilon, which changes values such
 * as 9007199254740991 or 0.30000000000000004; relayed results must arrive unchanged. Also
 * cheaper: cJSON 1.7.15 prints every number, integers too, with snprintf and reads it back
 * with sscanf. msg is not changed. NULL for a node of no JSON type. Caller frees with
 * cJSON_free. */
char *jsonrpc_print(cJSON *msg);

struct jsonw;
/* msg written into w as jsonw_value writes it (holes too), a result response with an integer
 * id, every call's answer, by its shape: {"jsonrpc":"2.0","id":,"result":} written around the
 * id's digits and the result's print, no names or strings walked (issue 9). */
int jsonrpc_write(struct jsonw *w, const cJSON *msg);

/* Canonical text of an id for use as a map key ("s:abc" / "n:42"); buf >= 64 bytes is
 * enough for integers; strings are truncated to len-1 and so must be checked by the caller
 * when exact identity matters (ids longer than 200 chars are refused by jsonrpc_classify). */
void jsonrpc_id_key(const cJSON *id, char *buf, size_t len);

/* The params of an MCP list request (tools/list and the like): the page after cursor, or the
 * first page when cursor is NULL. */
cJSON *jsonrpc_list_params(const char *cursor);

/* One page of an MCP list answer (tools/list and the like): the items of result.field are
 * appended (copied) to acc and *pages counted. Returns 1 when another page follows (its
 * cursor in *cursor, to free), 0 when the list is complete (a server that never stops
 * paginating is cut off after max_pages), or -EPROTO when the answer holds no list
 * (why: the error's message or "malformed result", valid while resp lives). */
int jsonrpc_list_page(const cJSON *resp, const char *field, cJSON *acc, int *pages,
		      int max_pages, char **cursor, const char **why);

#endif
