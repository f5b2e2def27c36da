/* fuzz_stateless: a 2026-07-28 POST as the front sees it — the MCP-Protocol-Version,
 * Mcp-Method and Mcp-Name headers (one a line, "-" for absent, as an attacker sends them:
 * any bytes, the Base64 Mcp-Name sentinel included), then FUZZ_SEP, then the body — through
 * stateless_wanted and stateless_check. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "mcp/jsonrpc.h"
#include "mcp/stateless.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *next_line(char **p)
{
	char *s = *p, *nl;

	if (!s)
		return NULL;
	nl = strchr(s, '\n');
	*p = nl ? nl + 1 : NULL;
	if (nl)
		*nl = '\0';
	return strcmp(s, "-") ? s : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct stateless_headers h = { NULL, NULL, NULL, NULL };
	struct jsonrpc_msg m;
	const char *why;
	char *body, *p;
	cJSON *v = NULL, *err = NULL;
	int code, status;

	if (!text)
		return 0;
	body = fuzz_split(text);
	p = text;
	h.version = next_line(&p);
	h.method = next_line(&p);
	h.name = next_line(&p);
	v = cJSON_Parse(body);
	if (!v || jsonrpc_classify(v, &m, &code, &why))
		goto out;
	(void)stateless_wanted(&h, &m);
	status = stateless_check(&h, &m, &err);
	/* A refusal is an HTTP error with a JSON-RPC error; acceptance has neither. */
	if ((status == 0) != (err == NULL))
		__builtin_trap();
	if (status && (status < 400 || status > 499 ||
		       !cJSON_GetObjectItemCaseSensitive(err, "error")))
		__builtin_trap();
	/* Accepted: the headers said exactly what the body says. */
	if (!status && (!h.method || strcmp(h.method, m.method)))
		__builtin_trap();
out:
	cJSON_Delete(err);
	cJSON_Delete(v);
	free(text);
	return 0;
}
