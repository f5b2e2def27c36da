/* fuzz_stateless: a 2026-07-28 POST as the front sees it — the MCP-Protocol-Version,
 * Mcp-Method and Mcp-Name headers (one a line, "-" for absent, as an attacker sends them:
 * any bytes, the Base64 Mcp-Name sentinel included), then up to PARAMS lines of Mcp-Param
 * headers ("Name: value"), then FUZZ_SEP, then the body — through stateless_wanted,
 * stateless_check, and the Mcp-Param check of the arguments against params.inputSchema
 * (standing in for the catalogue's definition; a fixed one with every declared type when
 * absent). Every header value also goes through the decoder, which must round-trip. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#include "fuzz.h"
#include "mcp/jsonrpc.h"
#include "mcp/param_headers.h"
#include "mcp/stateless.h"

#define PARAMS 8

static const char fixed_schema[] =
	"{\"type\":\"object\",\"properties\":{"
	"\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
	"\"priority\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"},"
	"\"verbose\":{\"type\":\"boolean\",\"x-mcp-header\":\"Verbose\"},"
	"\"where\":{\"type\":\"object\",\"properties\":{"
	"\"zone\":{\"type\":\"string\",\"x-mcp-header\":\"Zone\"}}}}}";

struct params {
	const char *name[PARAMS], *value[PARAMS];
	size_t n;
};

static const char *lookup(const void *ctx, const char *name)
{
	const struct params *p = ctx;

	for (size_t i = 0; i < p->n; i++)
		if (!strcasecmp(p->name[i], name))
			return p->value[i];
	return NULL;
}

/* A value the decoder takes is plain (and comes back as it is) or the sentinel around the
 * one canonical Base64 of what it decodes to. */
static void decode_round_trip(const char *value)
{
	size_t n, vl = strlen(value);
	char *d;
	int rc = param_header_decode(value, &d, &n);

	if (rc)
		return;
	if (n == vl && !memcmp(d, value, n) && d[n] == '\0') {
		free(d);
		return;
	}
	if (vl < 11 || strncmp(value, "=?base64?", 9) || strcmp(value + vl - 2, "?="))
		__builtin_trap();
	unsigned char *enc = malloc(4 * ((n + 2) / 3) + 1);
	if (enc) {
		int el = EVP_EncodeBlock(enc, (const unsigned char *)d, (int)n);
		if ((size_t)el != vl - 11 || memcmp(enc, value + 9, (size_t)el))
			__builtin_trap();
		free(enc);
	}
	free(d);
}

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
	struct params prm = { { NULL }, { NULL }, 0 };
	struct jsonrpc_msg m;
	const char *why, *line;
	char *body, *p, reason[256];
	cJSON *v = NULL, *err = NULL, *fixed = NULL;
	const cJSON *schema;
	int code, status, rc;

	if (!text)
		return 0;
	body = fuzz_split(text);
	p = text;
	h.version = next_line(&p);
	h.method = next_line(&p);
	h.name = next_line(&p);
	while (prm.n < PARAMS && (line = next_line(&p))) {
		char *colon = strstr(line, ": ");
		if (!colon)
			continue;
		*colon = '\0';
		prm.name[prm.n] = line;
		prm.value[prm.n++] = colon + 2;
		decode_round_trip(colon + 2);
	}
	if (h.name)
		decode_round_trip(h.name);
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
	schema = cJSON_GetObjectItemCaseSensitive(m.params, "inputSchema");
	if (!schema)
		schema = fixed = cJSON_Parse(fixed_schema);
	rc = param_headers_check(schema, cJSON_GetObjectItemCaseSensitive(m.params, "arguments"),
				 lookup, &prm, reason, sizeof(reason));
	/* A refusal names the header it is about. */
	if (rc == -EINVAL ? !strstr(reason, "Mcp-Param-") : rc && rc != -ENOMEM)
		__builtin_trap();
out:
	cJSON_Delete(fixed);
	cJSON_Delete(err);
	cJSON_Delete(v);
	free(text);
	return 0;
}
