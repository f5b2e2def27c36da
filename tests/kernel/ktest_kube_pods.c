/* kube_pods against the real kernel: pod objects as the API server sends them, applied to a
 * real enforcer (private pins) over real cgroups in the kubelet's cgroupfs layout.
 *   - a hostile sweep: thousands of mutated pod objects (every node replaced by other
 *     types, hostile strings, deep nesting; byte-flipped JSON) never crash the daemon, and
 *     never exempt a cgroup the watch enrolled;
 *   - a restart (a new table) keeps the stricter mode already pinned against a weaker
 *     annotation; a re-list that no longer shows a pod forgets it, and removes the entries
 *     of its cgroups once they are gone.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "enforce/kube.h"
#include "cunit_main.h"
#include "ktest_util.h"

#define UID "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
#define AGENT "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233"
#define SIDECAR "5555666677778888999900001111222233334444555566667777888899990000"

static struct enforcer *E;
static char pin_dir[128], root[256], base[512], pod_cg[640], agent_cg[768], sidecar_cg[768];
static struct kube_config cfg = { .node_name = "node-k", .api_server = "http://127.0.0.1:1",
	.token_file = "/nonexistent", .ca_file = "/nonexistent",
	.annotation = "mcpwarden.io/enforce", .sidecar_container = "mcpwarden" };

static const char *pod_json(const char *mode)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf),
		 "{\"metadata\":{\"uid\":\"" UID "\",\"name\":\"agent-k\",\"namespace\":\"agents\","
		 "\"annotations\":{\"mcpwarden.io/enforce\":\"%s\"}},"
		 "\"spec\":{\"nodeName\":\"node-k\"},"
		 "\"status\":{\"initContainerStatuses\":[{\"name\":\"mcpwarden\",\"containerID\":"
		 "\"containerd://" SIDECAR "\"}],\"containerStatuses\":[{\"name\":\"agent\","
		 "\"containerID\":\"containerd://" AGENT "\"}]}}", mode);
	return buf;
}

static int mode_of(const char *path, enum warden_mode *m)
{
	uint64_t id;
	int rc = cgroup_id(path, &id);

	return rc ? rc : enforcer_enrolled_mode(E, id, m);
}

/* A macro, so that a failure names the line of the check. */
#define EXPECT_MODE(cg, want)                                          \
	do {                                                           \
		enum warden_mode got_;                                 \
		CU_ASSERT_EQUAL(mode_of(cg, &got_), 0);                \
		CU_ASSERT_EQUAL(got_, want);                           \
	} while (0)

static int apply_text(struct kube_pods *p, const char *text)
{
	cJSON *j = cJSON_Parse(text);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	rc = kube_pods_apply(p, j);
	cJSON_Delete(j);
	return rc;
}

/* xorshift: reproducible */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static cJSON *hostile(void)
{
	static const char *const strs[] = { "", "../../../../etc", "containerd://", "cri-o://"
		"zz", "docker://" AGENT "0", "mcpwarden", "lockdown", "protect", "none", "node-k",
		"containerd://" SIDECAR, "containerd://" AGENT, "POD", "a\nb", "%s%n" };
	cJSON *o;

	switch (rnd() % 9) {
	case 0: return cJSON_CreateNull();
	case 1: return cJSON_CreateNumber((double)(int64_t)rnd());
	case 2: return cJSON_CreateBool(rnd() & 1);
	case 3: return cJSON_CreateArray();
	case 4: return cJSON_CreateObject();
	case 5: {
		char *big = malloc(70000);

		memset(big, 'a' + (int)(rnd() % 26), 69999);
		big[69999] = '\0';
		o = cJSON_CreateString(big);
		free(big);
		return o;
	}
	case 6:	/* deep nesting */
		o = cJSON_CreateArray();
		for (int i = 0; i < 200; i++) {
			cJSON *w = cJSON_CreateArray();

			cJSON_AddItemToArray(w, o);
			o = w;
		}
		return o;
	default:
		return cJSON_CreateString(strs[rnd() % (sizeof(strs) / sizeof(strs[0]))]);
	}
}

/* Every node of the tree with its parent, depth first (at most n). */
static size_t nodes(cJSON *j, cJSON **v, cJSON **parent, size_t n, size_t k)
{
	for (cJSON *c = j->child; c && k < n; c = c->next) {
		parent[k] = j;
		v[k++] = c;
		k = nodes(c, v, parent, n, k);
	}
	return k;
}

static void test_hostile_sweep(void)
{
	struct kube_pods *p;
	enum warden_mode m;
	int bad = 0;

	CU_ASSERT_EQUAL_FATAL(kube_pods_new(E, &cfg, &p), 0);
	CU_ASSERT_EQUAL_FATAL(apply_text(p, pod_json("protect")), 0);
	EXPECT_MODE(agent_cg, WARDEN_MODE_PROTECT);
	EXPECT_MODE(sidecar_cg, WARDEN_MODE_EXEMPT);
	EXPECT_MODE(pod_cg, WARDEN_MODE_PROTECT);

	log_set_level(LOG_ERROR);	/* the sweep is meant to be noisy */
	for (int i = 0; i < 3000; i++) {
		cJSON *j = cJSON_Parse(pod_json(i % 2 ? "protect" : "lockdown")), *v[128], *up[128];
		size_t n = nodes(j, v, up, 128, 0);
		int edits = 1 + (int)(rnd() % 3);

		for (int e = 0; e < edits && n; e++) {
			size_t k = rnd() % n;
			cJSON *h = hostile();

			if (!cJSON_ReplaceItemViaPointer(up[k], v[k], h))
				cJSON_Delete(h);
			n = nodes(j, v, up, 128, 0);
			if (!n)
				break;
		}
		if (rnd() % 4 == 0)
			kube_pods_delete(p, j);
		else
			kube_pods_apply(p, j);
		cJSON_Delete(j);

		/* Byte flips of the text: whatever still parses is applied. */
		{
			char text[2048];

			snprintf(text, sizeof(text), "%s", pod_json("protect"));
			for (int f = 0; f < 4; f++)
				text[rnd() % strlen(text)] = (char)(rnd() % 127 + 1);
			j = cJSON_Parse(text);
			if (j) {
				kube_pods_apply(p, j);
				cJSON_Delete(j);
			}
		}
		kube_pods_retry(p);
		/* The enrolled agent is never let go, whatever the API says. */
		if (mode_of(agent_cg, &m) || (m != WARDEN_MODE_PROTECT && m != WARDEN_MODE_LOCKDOWN))
			bad++;
	}
	log_set_level(LOG_WARN);
	CU_ASSERT_EQUAL(bad, 0);
	kube_pods_free(p);
}

static void test_restart_and_relist(void)
{
	struct kube_pods *p;
	enum warden_mode m;

	/* A previous run made it lockdown; the annotation now says protect: lockdown stays.
	 * (The sweep may have enrolled the sidecar's cgroup under another name, which makes it
	 * never exempt again: start from what a previous run would have left.) */
	CU_ASSERT_EQUAL_FATAL(enforcer_exempt(E, sidecar_cg), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_enroll(E, agent_cg, WARDEN_MODE_LOCKDOWN), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_enroll(E, pod_cg, WARDEN_MODE_LOCKDOWN), 0);
	CU_ASSERT_EQUAL_FATAL(kube_pods_new(E, &cfg, &p), 0);
	CU_ASSERT_EQUAL(apply_text(p, pod_json("protect")), 0);
	EXPECT_MODE(agent_cg, WARDEN_MODE_LOCKDOWN);
	EXPECT_MODE(pod_cg, WARDEN_MODE_LOCKDOWN);
	EXPECT_MODE(sidecar_cg, WARDEN_MODE_EXEMPT);
	CU_ASSERT_EQUAL(kube_pods_count(p), 1);

	/* A re-list without the pod while its cgroups live: forgotten, entries kept. */
	kube_pods_sync_begin(p);
	kube_pods_sync_end(p);
	CU_ASSERT_EQUAL(kube_pods_count(p), 0);
	CU_ASSERT_EQUAL(mode_of(agent_cg, &m), 0);

	/* Listed again, then gone for good: its cgroups removed first, then the re-list. */
	CU_ASSERT_EQUAL(apply_text(p, pod_json("lockdown")), 0);
	CU_ASSERT_EQUAL(kube_pods_count(p), 1);
	{
		uint64_t ids[3];

		CU_ASSERT_EQUAL(cgroup_id(agent_cg, &ids[0]), 0);
		CU_ASSERT_EQUAL(cgroup_id(sidecar_cg, &ids[1]), 0);
		CU_ASSERT_EQUAL(cgroup_id(pod_cg, &ids[2]), 0);
		CU_ASSERT_EQUAL(rmdir(agent_cg), 0);
		CU_ASSERT_EQUAL(rmdir(sidecar_cg), 0);
		CU_ASSERT_EQUAL(rmdir(pod_cg), 0);
		kube_pods_sync_begin(p);
		kube_pods_sync_end(p);
		CU_ASSERT_EQUAL(kube_pods_count(p), 0);
		for (int i = 0; i < 3; i++)
			CU_ASSERT_EQUAL(enforcer_enrolled_mode(E, ids[i], &m), -ENOENT);
	}
	kube_pods_free(p);
}

static int setup(void)
{
	struct enforcer_opts o = { 0 };
	char qos[600];

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-ktest-kube-%d", getpid());
	if (cgroup_detect_root(root, sizeof(root)) < 0)
		return -1;
	snprintf(base, sizeof(base), "%s/mcpwarden-ktest-kube-%d", root, getpid());
	snprintf(qos, sizeof(qos), "%s/kubepods", base);
	snprintf(pod_cg, sizeof(pod_cg), "%s/kubepods/pod" UID, base);
	snprintf(agent_cg, sizeof(agent_cg), "%s/" AGENT, pod_cg);
	snprintf(sidecar_cg, sizeof(sidecar_cg), "%s/" SIDECAR, pod_cg);
	if (mkdir(base, 0755) < 0 || mkdir(qos, 0755) < 0 || mkdir(pod_cg, 0755) < 0 ||
	    mkdir(agent_cg, 0755) < 0 || mkdir(sidecar_cg, 0755) < 0)
		return -1;
	o.pin_dir = pin_dir;
	o.cgroup_root = root;
	if (enforcer_open(&o, &E) < 0)
		return -1;
	return 0;
}

static int teardown(void)
{
	char qos[600];

	if (E)
		enforcer_close(E);
	enforcer_destroy_pins(pin_dir);
	snprintf(qos, sizeof(qos), "%s/kubepods", base);
	ktest_rmdirs(agent_cg, sidecar_cg, pod_cg, qos, base, NULL);
	return 0;
}

KTEST_MAIN("ktest_kube_pods", "kube pods (real kernel)", setup, teardown,
	{ "hostile pod objects: no crash, an enrolled cgroup is never let go",
	  test_hostile_sweep },
	{ "restart keeps the stricter pinned mode; re-list forgets deleted pods",
	  test_restart_and_relist })
