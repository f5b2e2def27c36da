/* fuzz_jwt: an access token as the agent listener validates it: "<JWKS>\n~~\n<token>". The
 * JWKS is parsed as a jwks_url's body would be; the token goes through the compact JWS parser,
 * signature verification against that set, and the resource server's claim checks and
 * mapping. Whatever passes must have a subject identity and a policy. */
#include <errno.h>

#include "base/config.h"
#include "fuzz.h"
#include "govern/jwt.h"
#include "govern/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct oauth_config *config(void)
{
	static struct oauth_config *c;
	const char *text = "{\"oauth\":{\"issuer\":\"https://idp\",\"jwks_url\":\"https://idp/k\","
		"\"required_scopes\":[\"mcp\"],\"team_claim\":\"team\",\"policy\":\"p\","
		"\"policy_map\":{\"claim\":\"groups\",\"values\":{\"devs\":\"p-dev\"}}}}";

	if (!c) {
		struct config_errors errs = { 0 };
		cJSON *root = cJSON_Parse(text);
		if (!root || oauth_config_parse(root, NULL, NULL, NULL, &c, &errs))
			__builtin_trap();
		cJSON_Delete(root);
	}
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct jwks *ks = NULL;
	struct key_identity who;
	struct jwt t;
	const char *why = NULL;

	if (!text)
		return 0;
	char *token = fuzz_split(text);
	if (jwks_parse_text(text, strlen(text), &ks, &why) == 0 && jwks_count(ks) == 0)
		__builtin_trap();   /* a set with no key is an error, never an empty success */
	/* The parser alone, then the whole check. */
	if (jwt_parse(token, strlen(token), &t, &why) == 0 && (!t.header || !t.claims || !t.alg))
		__builtin_trap();
	jwt_clear(&t);
	enum oauth_result r = oauth_authenticate(config(), ks, "https://gw/mcp", token,
						 strlen(token), 1800000000LL, &who, &why);
	if (r == OAUTH_OK && (strncmp(who.id, OAUTH_ID_PREFIX, strlen(OAUTH_ID_PREFIX)) ||
			      !who.policy[0]))
		__builtin_trap();
	if (r != OAUTH_OK && !why)
		__builtin_trap();
	jwks_free(ks);
	free(text);
	return 0;
}
