/* fuzz_keys: the "policies", "teams", "keys" and "workloads" sections of a config, as a gate
 * reads them at start and on every reload: policies first (keys name them), then teams and keys
 * into a keystore; what was loaded is then walked and authenticated against, and every key's
 * workload patterns matched against a caller in a pod (a stand-in for the pod watch). */
#include <errno.h>
#include <stdio.h>

#include "base/config.h"
#include "fuzz.h"
#include "govern/keys.h"
#include "govern/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool pod_of(void *arg, const char *cg, struct keys_pod *out)
{
	(void)arg;
	snprintf(out->ns, sizeof(out->ns), "agents");
	snprintf(out->name, sizeof(out->name), "agent-1");
	snprintf(out->labels, sizeof(out->labels), "app=agent\ntier=x\napp.kubernetes.io/name=a");
	return cg[0] == '/';
}

static int walk(void *arg, const struct key_record *k)
{
	struct key_record copy;

	struct key_identity who;
	enum keys_auth r;

	if (keys_get(arg, k->id, &copy) < 0)
		__builtin_trap();    /* listed but not found */
	(void)keys_workload_allows(k->workloads, "/kubepods/poda/c1");
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
	keys_set_pod_lookup(pod_of, NULL);
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
	(void)keys_workload_identity(ks, "/kubepods/poda/c1", &who);
out:
	keys_free(ks);
	policy_set_free(ps);
	cJSON_Delete(root);
	free(text);
	return 0;
}
