/* fuzz_keys: the "policies", "teams" and "keys" sections of a config, as a gate reads them at
 * start and on every reload: policies first (keys name them), then teams and keys into a
 * keystore; what was loaded is then walked and authenticated against. */
#include <errno.h>

#include "base/config.h"
#include "fuzz.h"
#include "govern/keys.h"
#include "govern/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int walk(void *arg, const struct key_record *k)
{
	struct key_record copy;

	struct key_identity who;
	enum keys_auth r;

	if (keys_get(arg, k->id, &copy) < 0)
		__builtin_trap();    /* listed but not found */
	/* A loaded key's hash is that key's, whatever else it is. */
	r = keys_authenticate_hash(arg, k->hash, 0, &who);
	if (r == KEYS_AUTH_UNKNOWN || r == KEYS_AUTH_MALFORMED || strcmp(who.id, k->id) != 0)
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	cJSON *root = NULL;
	struct policy_set *ps = NULL;
	struct keystore *ks = NULL;
	struct config_errors errs = { 0 };

	if (!text)
		return 0;
	root = cJSON_Parse(text);
	if (!root)
		goto out;
	if (policy_set_parse(root, &ps, &errs) < 0)
		ps = NULL;
	if (keys_new(NULL, &ks) < 0)
		goto out;
	errs.count = 0;
	if (keys_config_parse(root, ps, ks, &errs) < 0)
		goto out;
	if (keys_foreach(ks, walk, ks) < 0)
		__builtin_trap();
	char presented[] = "mcpw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	struct key_identity who;

	(void)keys_authenticate(ks, presented, sizeof(presented) - 1, 0, &who);
out:
	keys_free(ks);
	policy_set_free(ps);
	cJSON_Delete(root);
	free(text);
	return 0;
}
