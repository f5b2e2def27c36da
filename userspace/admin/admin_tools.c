/* admin_tools: pinned tool definitions — list them, approve a changed or new one. */
#include "admin/admin_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "govern/gate.h"
#include "mcp/catalog.h"
#include "mcp/router.h"
#include "base/json_get.h"

/* GET /v1/tools/pins: every pin and tool seen, with its state (pinned, changed, new, absent)
 * and, where it differs, the diff of what changed. ?state=changed|new|pinned|absent filters. */
void admin_tool_pins_list(struct ctx *c, const char *id)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(c->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params = { 0 };
	const char *want = NULL;
	cJSON *pins = gate_tool_pins(c->g), *body = cJSON_CreateObject(), *out, *it;

	if (q && evhttp_parse_query_str(q, &params) == 0)
		want = evhttp_find_header(&params, "state");
	out = cJSON_AddArrayToObject(body, "pins");
	while ((it = cJSON_DetachItemFromArray(pins, 0))) {
		const char *st = cJSON_GetStringValue(json_get(it, "state"));
		if (!want || (st && !strcmp(want, st)))
			cJSON_AddItemToArray(out, it);
		else
			cJSON_Delete(it);
	}
	cJSON_Delete(pins);
	evhttp_clear_headers(&params);
	admin_send_json(c->req, 200, body);
	cJSON_Delete(body);
}

/* POST /v1/tools/pins/<server>/<tool>/approve: the definition the upstream lists now becomes
 * the approved one; answered once durable. Body (optional): {"by": "<who approves>"}. */
void admin_tool_approve(struct ctx *c, const char *id)
{
	static const char *const fields[] = { "by", NULL };
	char server[128], *tool = NULL, by[128] = "admin";
	const char *slash = strchr(id, '/');
	cJSON *body = NULL, *v;
	int rc;

	if (!slash || slash == id || !slash[1] || (size_t)(slash - id) >= sizeof(server)) {
		admin_fail(c, 400, NULL, "the path is /v1/tools/pins/<server>/<tool>/approve");
		return;
	}
	memcpy(server, id, (size_t)(slash - id));
	server[slash - id] = '\0';
	tool = evhttp_uridecode(slash + 1, 0, NULL);
	if (!tool || !(body = admin_body_object(c)))
		goto out;
	if (!admin_known_fields(c, body, fields))
		goto out;
	v = json_get(body, "by");
	if (v && (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 64)) {
		admin_fail(c, 400, "by", "a name of 1-64 characters");
		goto out;
	}
	if (v)
		snprintf(by, sizeof(by), "%s", v->valuestring);
	cJSON *audit = admin_record_new(c, "tool.approve");
	cJSON_AddStringToObject(audit, "server", server);
	cJSON_AddStringToObject(audit, "tool", tool);
	cJSON_AddStringToObject(audit, "by", by);
	cJSON *ok = cJSON_CreateObject();
	cJSON_AddStringToObject(ok, "server", server);
	cJSON_AddStringToObject(ok, "tool", tool);
	cJSON_AddStringToObject(ok, "state", "pinned");
	struct pending *p = admin_pending_new(c, P_TOOL_APPROVE, 200, ok, audit);
	if (!p)
		goto out;
	rc = gate_tool_approve(c->g, server, tool, by, admin_on_stored, p);
	if (rc == -ENOENT) {
		cJSON_Delete(p->ok);
		admin_record_emit(p->audit, "refused", 404);
		free(p);
		admin_fail(c, 404, NULL, "no tool %s listed by upstream %s since start", tool, server);
		goto out;
	}
	if (rc == 0)  /* the withheld tool is back in lists: tell the sessions */
		router_lists_changed(c->a->r, CAT_TOOLS);
	admin_pending_start(c, p, rc);
out:
	free(tool);
	cJSON_Delete(body);
}
