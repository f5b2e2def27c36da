/* mcp_upstream: a small, fast MCP server over Streamable HTTP, the upstream of the proxy
 * benchmark (tools/bench/proxy_bench.sh). It must cost as little as possible so that what the
 * benchmark measures is the proxy in front of it, not the server.
 *
 *   mcp_upstream PORT        (0 picks a free port; the chosen one is printed on stdout)
 *
 * One libevent loop, evhttp with HTTP/1.1 keep-alive, answers as application/json (never SSE):
 *   initialize                  result + a fresh Mcp-Session-Id
 *   notifications, responses    202 without a body
 *   tools/list                  one tool, "echo": {text: string, maxLength 65536, required}
 *   tools/call echo             {"content":[{"type":"text","text":<text>}]}
 *   ping                        {}
 *   GET                         405 (no server-initiated stream), DELETE 200
 * Session ids are handed out but not checked: checking them is the proxy's work, not ours.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define PROTOCOL_VERSION "2025-06-18"

static uint64_t sessions;

/* The tools/list result, built once: it never changes. */
static cJSON *tool_list(void)
{
	cJSON *res = cJSON_CreateObject(), *tools = cJSON_AddArrayToObject(res, "tools");
	cJSON *tool = cJSON_CreateObject();
	cJSON_AddItemToArray(tools, tool);
	cJSON_AddStringToObject(tool, "name", "echo");
	cJSON_AddStringToObject(tool, "description", "Returns its text argument");
	cJSON *schema = cJSON_AddObjectToObject(tool, "inputSchema");
	cJSON_AddStringToObject(schema, "type", "object");
	cJSON *text = cJSON_AddObjectToObject(cJSON_AddObjectToObject(schema, "properties"), "text");
	cJSON_AddStringToObject(text, "type", "string");
	cJSON_AddNumberToObject(text, "maxLength", 65536);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(schema, "required"), cJSON_CreateString("text"));
	cJSON_AddBoolToObject(schema, "additionalProperties", 0);
	cJSON_AddBoolToObject(cJSON_AddObjectToObject(tool, "annotations"), "readOnlyHint", 1);
	return res;
}

static cJSON *tools_result;

static void send_json(struct evhttp_request *req, const cJSON *id, cJSON *result, int code,
		      const char *message)
{
	cJSON *msg = cJSON_CreateObject();
	char *text = NULL;
	struct evbuffer *out = evbuffer_new();
	if (!msg || !out)
		goto fail;
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddItemToObject(msg, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	if (result) {
		cJSON_AddItemToObject(msg, "result", result);
		result = NULL;
	} else {
		cJSON *err = cJSON_AddObjectToObject(msg, "error");
		cJSON_AddNumberToObject(err, "code", code);
		cJSON_AddStringToObject(err, "message", message);
	}
	if (!(text = cJSON_PrintUnformatted(msg)) || evbuffer_add(out, text, strlen(text)) != 0)
		goto fail;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", out);
	goto done;
fail:
	evhttp_send_error(req, 500, "out of memory");
done:
	cJSON_Delete(result);
	cJSON_free(text);
	cJSON_Delete(msg);
	if (out)
		evbuffer_free(out);
}

static void on_initialize(struct evhttp_request *req, const cJSON *id, const cJSON *params)
{
	char sid[64];
	snprintf(sid, sizeof sid, "bench-%ld-%" PRIu64, (long)getpid(), ++sessions);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Mcp-Session-Id", sid);
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "protocolVersion",
				cJSON_IsString(pv) ? pv->valuestring : PROTOCOL_VERSION);
	cJSON_AddObjectToObject(cJSON_AddObjectToObject(res, "capabilities"), "tools");
	cJSON *info = cJSON_AddObjectToObject(res, "serverInfo");
	cJSON_AddStringToObject(info, "name", "mcpwarden-bench-upstream");
	cJSON_AddStringToObject(info, "version", "1");
	send_json(req, id, res, 0, NULL);
}

static void on_call(struct evhttp_request *req, const cJSON *id, const cJSON *params)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(args, "text");
	if (!cJSON_IsString(name) || strcmp(name->valuestring, "echo") != 0) {
		send_json(req, id, NULL, -32602, "unknown tool");
		return;
	}
	if (!cJSON_IsString(text)) {
		send_json(req, id, NULL, -32602, "text must be a string");
		return;
	}
	cJSON *res = cJSON_CreateObject(), *item = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(res, "content"), item);
	cJSON_AddStringToObject(item, "type", "text");
	cJSON_AddStringToObject(item, "text", text->valuestring);
	send_json(req, id, res, 0, NULL);
}

static void on_post(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	cJSON *msg = body ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsObject(msg)) {
		send_json(req, NULL, NULL, -32700, "parse error");
		goto done;
	}
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	if (!id || !cJSON_IsString(method)) {      /* a notification, or a response to us */
		evhttp_send_reply(req, 202, "Accepted", NULL);
		goto done;
	}
	const char *m = method->valuestring;
	if (strcmp(m, "tools/call") == 0)
		on_call(req, id, params);
	else if (strcmp(m, "tools/list") == 0)
		send_json(req, id, cJSON_Duplicate(tools_result, 1), 0, NULL);
	else if (strcmp(m, "initialize") == 0)
		on_initialize(req, id, params);
	else if (strcmp(m, "ping") == 0)
		send_json(req, id, cJSON_CreateObject(), 0, NULL);
	else
		send_json(req, id, NULL, -32601, "method not found");
done:
	cJSON_Delete(msg);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_POST:
		on_post(req);
		break;
	case EVHTTP_REQ_DELETE:
		evhttp_send_reply(req, 200, "OK", NULL);
		break;
	default:
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST, DELETE");
		evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *base)
{
	event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
	int status = 1;
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct event *term = NULL, *intr = NULL;
	char *end;
	long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc != 2 || *end || port < 0 || port > 65535) {
		fprintf(stderr, "usage: %s PORT   (0: any free port, printed on stdout)\n", argv[0]);
		return 2;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || !(tools_result = tool_list()) ||
	    !(base = event_base_new()) || !(http = evhttp_new(base)))
		goto out;
	evhttp_set_gencb(http, on_request, NULL);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1",
									   (uint16_t)port);
	if (!bound) {
		fprintf(stderr, "mcp_upstream: cannot listen on 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		goto out;
	}
	/* Accepted connections inherit it: evhttp writes a large answer 16 KiB at a time, and
	 * with Nagle its last piece waited for the reader's delayed ACK (40 ms a call above
	 * 16 KiB, for the direct run and every proxy alike). */
	int one = 1;
	if (setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one,
		       sizeof one) != 0) {
		perror("mcp_upstream: TCP_NODELAY");
		goto out;
	}
	struct sockaddr_in sa;
	socklen_t salen = sizeof sa;
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sa, &salen) != 0) {
		perror("mcp_upstream: getsockname");
		goto out;
	}
	if (!(term = evsignal_new(base, SIGTERM, on_signal, base)) ||
	    !(intr = evsignal_new(base, SIGINT, on_signal, base)) ||
	    event_add(term, NULL) != 0 || event_add(intr, NULL) != 0)
		goto out;
	printf("%u\n", ntohs(sa.sin_port));
	if (fflush(stdout) != 0)
		goto out;
	status = event_base_dispatch(base) < 0;
out:
	if (term)
		event_free(term);
	if (intr)
		event_free(intr);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	cJSON_Delete(tools_result);
	return status;
}
