/* The BPF LSM hook (lsm_socket), end to end on the real kernel (root): address families that
 * no cgroup hook sees (AF_PACKET, AF_XDP, AF_VSOCK) cannot be created from an enrolled cgroup,
 * each refusal is counted and audited, unenrolled cgroups are untouched, and the pinned link
 * survives its owner and is replaced (not duplicated) when the enforcer opens again. Prints
 * SKIP and why where the kernel has no BPF LSM. Everything made here carries this pid and is
 * removed at the end. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <event2/event.h>

#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "base/log.h"
#include "cunit_main.h"
#include "ktest_util.h"
#define KTEST_MAX_EVENTS 64
#include "ktest_enforcer_util.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static struct enforcer *E;
static struct event_base *base;
static char pin_dir[128], root[256], cg_base[512], cg_lock[600], cg_prot[600], cg_plain[600];


struct sock_args {
	int family, type, protocol;
};

/* 0 when the socket could be made, else its errno. */
static int probe_socket(const void *arg)
{
	const struct sock_args *a = arg;
	int fd = socket(a->family, a->type | SOCK_CLOEXEC, a->protocol);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static const struct sock_args packet_raw = { AF_PACKET, SOCK_RAW, 0x0300 /* ETH_P_ALL, BE */ };
static const struct sock_args packet_dgram = { AF_PACKET, SOCK_DGRAM, 0 };
static const struct sock_args xdp = { AF_XDP, SOCK_RAW, 0 };
static const struct sock_args vsock = { AF_VSOCK, SOCK_STREAM, 0 };
static const struct sock_args tcp = { AF_INET, SOCK_STREAM, 0 };

/* Refused with EPERM in cg, and audited as lsm_socket naming the child, its cgroup and the
 * family; the JSON form says why. */
static void refused(const char *cg, const char *comm, const struct sock_args *a)
{
	const struct warden_event *ev;
	uint64_t id = 0;
	pid_t pid = 0;
	cJSON *j;
	int r = run_in_cgroup(cg, comm, probe_socket, a, 200, &pid);

	CU_ASSERT_EQUAL(r, EPERM);
	if (r != EPERM)
		return;
	ev = wait_event(base, pid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL(cgroup_id(cg, &id), 0);
	CU_ASSERT_EQUAL(ev->cgroup_id, id);
	CU_ASSERT_STRING_EQUAL(ev->comm, comm);
	CU_ASSERT_EQUAL(ev->hook, WARDEN_HOOK_LSM_SOCKET);
	CU_ASSERT_EQUAL(ev->reason, WARDEN_REASON_SOCKET_FAMILY);
	CU_ASSERT_EQUAL(ev->family, a->family);
	CU_ASSERT_EQUAL(ev->sock_type, a->type);
	j = enforcer_event_json(E, ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "hook")), "lsm_socket");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "reason")),
			       "socket_family");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "family")),
			       a->family == AF_PACKET ? "packet" : a->family == AF_XDP ? "xdp" :
			       "vsock");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "cgroup")), cg);
	cJSON_Delete(j);
}

static void test_packet_refused_when_enrolled(void)
{
	struct enforcer_counters before, after;

	CU_ASSERT_EQUAL_FATAL(enforcer_counters(E, &before), 0);
	refused(cg_lock, "wl-packet", &packet_raw);
	refused(cg_lock, "wl-packet-dg", &packet_dgram);
	refused(cg_prot, "wl-packet-prot", &packet_raw);
	CU_ASSERT_EQUAL_FATAL(enforcer_counters(E, &after), 0);
	CU_ASSERT_EQUAL(after.hook[WARDEN_HOOK_LSM_SOCKET].denied,
			before.hook[WARDEN_HOOK_LSM_SOCKET].denied + 3);
	CU_ASSERT_EQUAL(after.hook[WARDEN_HOOK_LSM_SOCKET].events_dropped, 0);
}

/* The kernel asks the LSM before it looks the family up: XDP and vsock are refused whether
 * or not this kernel has them. */
static void test_xdp_and_vsock_refused(void)
{
	refused(cg_lock, "wl-xdp", &xdp);
	refused(cg_lock, "wl-vsock", &vsock);
}

static void test_unenrolled_untouched(void)
{
	CU_ASSERT_EQUAL(run_in_cgroup(cg_plain, "wl-plain", probe_socket, &packet_raw, 200, NULL),
			0);
	CU_ASSERT_NOT_EQUAL(run_in_cgroup(cg_plain, "wl-plain-x", probe_socket, &xdp, 200, NULL),
			    EPERM);
	/* Families with cgroup hooks are not the LSM's business. */
	CU_ASSERT_EQUAL(run_in_cgroup(cg_lock, "wl-tcp", probe_socket, &tcp, 200, NULL), 0);
}

/* Tracing links of the LSM program kind that use this enforcer's enrolled map. */
static int count_lsm_links(struct enforcer *e)
{
	return ktest_count_links(e, BPF_LINK_TYPE_TRACING, NULL, NULL);
}

/* Closing the enforcer keeps the pinned link; opening again replaces it (one link, a new
 * program); removing the pins ends the refusal. */
static void test_survives_and_readopts(void)
{
	struct enforcer_opts o = { .pin_dir = pin_dir, .cgroup_root = root };
	struct enforcer_status st;
	uint32_t prog_before;

	CU_ASSERT_EQUAL_FATAL(enforcer_status(E, &st), 0);
	prog_before = st.hooks[WARDEN_HOOK_LSM_SOCKET].prog_id;
	CU_ASSERT_EQUAL(count_lsm_links(E), 1);
	enforcer_events_detach(E);
	enforcer_close(E);
	E = NULL;
	CU_ASSERT_EQUAL(run_in_cgroup(cg_lock, "wl-closed", probe_socket, &packet_raw, 200, NULL),
			EPERM);
	CU_ASSERT_EQUAL_FATAL(enforcer_open(&o, &E), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_events_attach(E, base, on_event, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_status(E, &st), 0);
	CU_ASSERT_TRUE(st.adopted);
	CU_ASSERT_TRUE(st.hooks[WARDEN_HOOK_LSM_SOCKET].attached);
	CU_ASSERT_NOT_EQUAL(st.hooks[WARDEN_HOOK_LSM_SOCKET].prog_id, prog_before);
	CU_ASSERT_STRING_EQUAL(st.lsm_unsupported_reason, "");
	CU_ASSERT_EQUAL(count_lsm_links(E), 1);
	refused(cg_lock, "wl-reopened", &packet_raw);
}

static int teardown(void)
{
	if (E)
		enforcer_close(E);
	if (base)
		event_base_free(base);
	enforcer_destroy_pins(pin_dir);
	ktest_rmdirs(cg_lock, cg_prot, cg_plain, cg_base, NULL);
	return 0;
}

/* 0 ready, 1 skipped (printed), -1 failed. */
static int setup(void)
{
	struct enforcer_status st;
	int ret;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-lsm-%d", getpid());
	snprintf(cg_base, sizeof(cg_base), "%s/mcpwarden-klsm-%d", root, getpid());
	snprintf(cg_lock, sizeof(cg_lock), "%s/lockdown", cg_base);
	snprintf(cg_prot, sizeof(cg_prot), "%s/protect", cg_base);
	snprintf(cg_plain, sizeof(cg_plain), "%s/plain", cg_base);
	if (mkdir(cg_base, 0755) < 0 || mkdir(cg_lock, 0755) < 0 || mkdir(cg_prot, 0755) < 0 ||
	    mkdir(cg_plain, 0755) < 0)
		return -1;
	if (ktest_open_enforcer(pin_dir, root, &E) < 0)
		return -1;
	if (enforcer_status(E, &st) < 0)
		return -1;
	if (!st.hooks[WARDEN_HOOK_LSM_SOCKET].attached) {
		printf("SKIP ktest_lsm: %s\n", st.lsm_unsupported_reason);
		return 1;
	}
	base = event_base_new();
	if (!base || enforcer_events_attach(E, base, on_event, NULL) < 0)
		return -1;
	ret = enforcer_enroll(E, cg_lock, WARDEN_MODE_LOCKDOWN);
	ret = ret ?: enforcer_enroll(E, cg_prot, WARDEN_MODE_PROTECT);
	return ret < 0 ? -1 : 0;
}

static int suite_init(void) { return 0; }

int main(void)
{
	int ret;

	if (!ktest_can_run("ktest_lsm", root, sizeof(root)))
		return 0;
	log_set_level(LOG_ERROR);
	ret = setup();
	if (ret != 0) {
		teardown();
		return ret < 0 ? 1 : 0;
	}

	static const struct cu_case cases[] = {
		{ "AF_PACKET refused in enrolled cgroups, counted and audited",
		  test_packet_refused_when_enrolled },
		{ "AF_XDP and AF_VSOCK refused in enrolled cgroups", test_xdp_and_vsock_refused },
		{ "unenrolled cgroups and inet families untouched", test_unenrolled_untouched },
		{ "the pinned link survives close; re-open replaces it", test_survives_and_readopts },
		{ NULL, NULL },
	};

	return cu_run_suite("BPF LSM socket hook (real kernel)", suite_init, teardown, cases);
}
