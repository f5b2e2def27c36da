/* fuzz_jsonrpc: a message as the front and the upstreams receive it, parsed then classified,
 * and everything the gateway does with a classified message's parts: the id's key and copy,
 * an error answer built on it, a list page read from it, and printing exactly. An upstream
 * answer kept as text (mcp/jsonrpc_splice.h) must be exactly what the full parse gives: the
 * same id, a result that cJSON prints to the same bytes, and the same tree once unspliced.
 * An agent's request kept as text must be one the full parse accepts, its one-pass tree
 * cJSON's node for node, and what is forwarded (the kept params with the routed name put in)
 * must parse to the routed tree. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "base/json_keys.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "../json_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_splice(const char *text, size_t size)
{
	cJSON *sp = jsonrpc_splice_response(text, size), *full;
	char *printed, *again;

	if (!sp)
		return;
	full = cJSON_ParseWithLength(text, size);
	if (!full || !jsonrpc_spliced(sp))
		__builtin_trap();    /* spliced what the full parse refuses */
	printed = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(full, "result"));
	if (!printed || strcmp(printed, cJSON_GetObjectItemCaseSensitive(sp, "result")->valuestring))
		__builtin_trap();    /* the agent would get other bytes than before */
	if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(sp, "id"),
			   cJSON_GetObjectItemCaseSensitive(full, "id"), true))
		__builtin_trap();
	/* compared printed: cJSON_Compare is wrong about duplicate keys with other values */
	if (jsonrpc_unsplice(sp) || jsonrpc_spliced(sp))
		__builtin_trap();
	again = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(sp, "result"));
	if (!again || strcmp(again, printed))
		__builtin_trap();
	cJSON_free(again);
	cJSON_free(printed);
	cJSON_Delete(full);
	cJSON_Delete(sp);
}

static void check_forward(const char *text, size_t size)
{
	struct jsonrpc_request_text t;
	cJSON *tree, *full, *params, *raw, *back;
	char *a, *b;

	if (jsonrpc_splice_request(text, size, &t, &tree)) {
		if (t.text || tree)
			__builtin_trap();
		return;
	}
	full = cJSON_ParseWithLength(text, size);
	if (!full || !tree || !json_same_tree(tree, full))
		__builtin_trap();    /* the gateway would judge another tree than cJSON's */
	cJSON_Delete(full);
	full = tree;            /* the front routes and judges the one-pass tree */
	params = cJSON_GetObjectItemCaseSensitive(full, "params");
	if (!cJSON_IsObject(params))
		__builtin_trap();    /* kept what the full parse refuses */
	/* the route puts the upstream's name in: shorter, longer, escaped */
	if (size % 3 == 1)
		cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString("n"));
	else if (size % 3 == 2)
		cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(
			"a \"longer\" name\n\x01 than most, with escapes: \\ / \xc3\xa9"));
	raw = jsonrpc_splice_params(&t, params);
	if (!raw || t.text)
		__builtin_trap();
	back = cJSON_Parse(raw->valuestring);
	/* compared printed: cJSON_Compare is wrong about duplicate keys with other values */
	a = cJSON_PrintUnformatted(params);
	b = back ? cJSON_PrintUnformatted(back) : NULL;
	if (!a || !b || strcmp(a, b))
		__builtin_trap();    /* the upstream would get other params than were judged */
	cJSON_free(a);
	cJSON_free(b);
	cJSON_Delete(back);
	cJSON_Delete(raw);
	cJSON_Delete(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	cJSON *v = NULL, *reply = NULL, *acc = NULL;
	char *cursor = NULL, *out = NULL;

	if (!text)
		return 0;
	check_splice(text, size);
	check_forward(text, size);
	v = cJSON_ParseWithLength(text, size);
	if (!v)
		goto out;
	/* the front's check of repeated member names: any depth, any size, no crash */
	(void)json_repeated_key(v);

	struct jsonrpc_msg m;
	int code = 0;
	const char *why = NULL;
	char key[64];

	if (jsonrpc_classify(v, &m, &code, &why) < 0) {
		if (code == 0 || !why)
			__builtin_trap();    /* a refusal always says which and why */
		reply = jsonrpc_error(NULL, code, why, NULL);
		goto out;
	}
	if (m.id) {
		if (!jsonrpc_valid_id(m.id))
			__builtin_trap();    /* classify accepted an id the gateway cannot use */
		jsonrpc_id_key(m.id, key, sizeof(key));
		cJSON *dup = jsonrpc_id_dup(m.id);
		cJSON_Delete(dup);
	}
	if (m.kind == JSONRPC_RESPONSE) {
		int pages = 0;

		acc = cJSON_CreateArray();
		if (acc && jsonrpc_list_page(v, "tools", acc, &pages, 3, &cursor, &why) == 1) {
			cJSON *p = jsonrpc_list_params(cursor);
			cJSON_Delete(p);
		}
		reply = cJSON_Duplicate(v, 1);
	} else {
		reply = jsonrpc_result(m.id, m.params ? cJSON_Duplicate(m.params, 1) : NULL);
	}
out:
	if (reply) {
		out = jsonrpc_print(reply);
		/* What the gateway prints must parse back: it goes on the wire. */
		if (out) {
			cJSON *back = cJSON_Parse(out);
			if (!back)
				__builtin_trap();
			cJSON_Delete(back);
		}
	}
	cJSON_free(out);
	free(cursor);
	cJSON_Delete(acc);
	cJSON_Delete(reply);
	cJSON_Delete(v);
	free(text);
	return 0;
}
