/* front_refusal: the record of a request the front refused itself (observe/audit.h
 * audit_refusal), named by what was wrong with it. Loop thread only. */
#ifndef WARDEN_FRONT_REFUSAL_H
#define WARDEN_FRONT_REFUSAL_H

#include <cjson/cJSON.h>

struct http_req;

/* The caller identified for the request being served (NULL: none, or not yet), so that its
 * refusals name the key; set by the front around each request. */
void front_refusal_caller(const char *key_id);
/* Record that req was answered with status and response (a JSON-RPC message with "error").
 * Requests that other records already cover are left out: authentication refusals (their
 * "auth" record) and requests for a path that is not the MCP endpoint (a scanner's noise). */
void front_refused(struct http_req *req, int status, const cJSON *response);

#endif
