/* enforcer without privilege: destination specs, the "enforcement" config section, and
 * container/pod cgroup resolution against a cgroupfs-shaped directory tree. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enforce/enforcer.h"
#include "base/log.h"
#include "config_errors_util.h"
#include "enforcement_util.h"
#include "cunit_main.h"

static void test_dest_parse(void)
{
	/* spec -> its canonical form and family */
	static const struct {
		const char *spec;
		const char *canon;
		int family;
	} good[] = {
		{ "10.0.0.1", "10.0.0.1/32", AF_INET },
		{ "10.1.2.3/8", "10.0.0.0/8", AF_INET },	/* host bits cleared */
		{ "10.96.0.10/32:53", "10.96.0.10/32:53", AF_INET },
		{ "127.0.0.1:8080", "127.0.0.1/32:8080", AF_INET },
		{ "2001:db8::/32", "2001:db8::/32", AF_INET6 },
		{ "[::1]:443", "[::1/128]:443", AF_INET6 },
		{ "[2001:db8::1/64]:80", "[2001:db8::/64]:80", AF_INET6 },
		/* v4-mapped specs are stored as v4: the programs judge mapped destinations as v4 */
		{ "[::ffff:10.0.0.1]:80", "10.0.0.1/32:80", AF_INET },
		{ "::ffff:10.0.0.0/104", "10.0.0.0/8", AF_INET },
	};
	struct enforcer_dest d;
	char buf[80];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bool ok = enforcer_dest_parse(good[i].spec, &d) == 0 && d.family == good[i].family &&
			  enforcer_dest_format(&d, buf, sizeof(buf)) == 0 &&
			  strcmp(buf, good[i].canon) == 0;

		CU_ASSERT_CASE(ok, good[i].spec);
	}

	const char *bad[] = { "", "x", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1/33",
			      "10.0.0.1:8a", "[::1]", "[::1]:", "::1/129", "10.0.0.1/", "1.2.3",
			      "[::1:80", "10.0.0.1/-1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_CASE(enforcer_dest_parse(bad[i], &d) == -EINVAL, bad[i]);
	CU_ASSERT_EQUAL(enforcer_dest_parse(NULL, &d), -EINVAL);
}

static void test_config_ok(void)
{
	const char *text = "{\"enabled\": true, \"pin_dir\": \"/sys/fs/bpf/x\", \"cgroup_root\": \"auto\","
		" \"errno\": \"ECONNREFUSED\","
		" \"enroll\": [{\"cgroup\": \"/sys/fs/cgroup/unified/agents/a1\", \"mode\": \"lockdown\"},"
		"   {\"container\": \"0123456789abcdef\", \"mode\": \"protect\"}, {\"pod\": \"1b2c3d4e-aaaa\"}],"
		" \"exempt\": [\"/sys/fs/cgroup/unified/agents/sidecar\", {\"container\": \"abcdefabcdef\"}],"
		" \"allow\": [\"10.96.0.10/32:53\"], \"protect\": [\"10.0.0.0/8\", \"[::1]:9000\"],"
		" \"protect_unix\": [\"/run/mcp.sock\"]}";
	struct enforcer_config c;
	struct config_errors e = { 0 };

	ENFORCEMENT_OK(text, &c);
	CU_ASSERT_TRUE(c.enabled);
	CU_ASSERT_STRING_EQUAL(c.pin_dir, "/sys/fs/bpf/x");
	CU_ASSERT_PTR_NULL(c.cgroup_root);
	CU_ASSERT_EQUAL(c.deny_errno, ECONNREFUSED);
	CU_ASSERT_EQUAL_FATAL(c.nenroll, 3);
	CU_ASSERT_EQUAL(c.enroll[0].mode, WARDEN_MODE_LOCKDOWN);
	CU_ASSERT_STRING_EQUAL(c.enroll[1].container, "0123456789abcdef");
	CU_ASSERT_EQUAL(c.enroll[1].mode, WARDEN_MODE_PROTECT);
	CU_ASSERT_EQUAL(c.enroll[2].mode, WARDEN_MODE_LOCKDOWN);	/* the default */
	CU_ASSERT_EQUAL_FATAL(c.nexempt, 2);
	CU_ASSERT_STRING_EQUAL(c.exempt[0].cgroup, "/sys/fs/cgroup/unified/agents/sidecar");
	CU_ASSERT_EQUAL(c.nallow, 1);
	CU_ASSERT_EQUAL(c.nprotect, 2);
	CU_ASSERT_EQUAL(c.nprotect_unix, 1);
	enforcer_config_free(&c);

	/* Absent section: disabled, nothing to free. */
	CU_ASSERT_EQUAL(enforcer_config_parse(NULL, "enforcement", &c, &e), 0);
	CU_ASSERT_FALSE(c.enabled);
	enforcer_config_free(&c);
}

/* Each wrong field named in the errors, whatever else is wrong beside it. */
static void test_config_errors(void)
{
	static const struct {
		const char *text;
		const char *const errors[11];	/* each part of some message; NULL-terminated */
	} cases[] = {
		{ "{\"errno\": \"EBOGUS\", \"pin_dir\": \"relative\", \"typo\": 1,"
		  " \"enroll\": [{\"cgroup\": \"/a\", \"mode\": \"strict\"}, {\"cgroup\": \"/\"},"
		  "   {\"container\": \"xyz\"}, {\"cgroup\": \"/a\", \"pod\": \"1234abcd\"}, 7],"
		  " \"allow\": [\"10.0.0.1:99999\"], \"protect\": \"10.0.0.0/8\"}",
		  { "enforcement.errno", "enforcement.pin_dir", "typo", "enforcement.enroll[0].mode",
		    "enforcement.enroll[1]", "enforcement.enroll[2]", "enforcement.enroll[3]",
		    "enforcement.enroll[4]", "enforcement.allow[0]", "enforcement.protect" } },
		/* transparent redirect */
		{ "{\"redirect\": \"yes\", \"redirect_port\": 70000, \"enroll\": ["
		  "{\"cgroup\": \"/a\", \"redirect\": 1}], \"exempt\": [{\"cgroup\": \"/s\","
		  " \"redirect\": true}]}",
		  { "enforcement.redirect", "enforcement.redirect_port", "enforcement.enroll[0].redirect",
		    "enforcement.exempt[0]" } },
	};
	struct enforcer_config c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_errors e = { 0 };

		CU_ASSERT_CASE(parse_enforcement(cases[i].text, &c, &e) == -EINVAL, cases[i].text);
		cu_assert_errors(&e, cases[i].errors, __LINE__, __FILE__);
		enforcer_config_free(&c);
	}
}

/* Transparent redirect: the section's default, an entry's own choice, the listener port
 * (its errors: test_config_errors). */
static void test_config_redirect(void)
{
	const char *text = "{\"redirect\": true, \"redirect_port\": 15001, \"enroll\": ["
		"{\"cgroup\": \"/a\", \"mode\": \"protect\"},"
		"{\"cgroup\": \"/b\", \"redirect\": false}]}";
	struct enforcer_config c;

	ENFORCEMENT_OK(text, &c);
	CU_ASSERT_TRUE(c.redirect);
	CU_ASSERT_EQUAL(c.redirect_port, 15001);
	CU_ASSERT_EQUAL_FATAL(c.nenroll, 2);
	CU_ASSERT_TRUE(enforcer_target_redirects(&c, &c.enroll[0]));	/* the default */
	CU_ASSERT_FALSE(enforcer_target_redirects(&c, &c.enroll[1]));	/* its own */
	enforcer_config_free(&c);

	/* Off unless asked for. */
	ENFORCEMENT_OK("{\"enroll\": [{\"cgroup\": \"/a\"}]}", &c);
	CU_ASSERT_FALSE(enforcer_target_redirects(&c, &c.enroll[0]));
	CU_ASSERT_EQUAL(c.redirect_port, 0);
	enforcer_config_free(&c);
}

static char tree[64];

/* A fake cgroup tree, /tmp/mcpwarden-unit-<name>-<pid>, for one test. */
static void tree_begin(const char *name)
{
	snprintf(tree, sizeof(tree), "/tmp/mcpwarden-unit-%s-%d", name, getpid());
	CU_ASSERT_EQUAL_FATAL(mkdir(tree, 0755), 0);
}

/* mkdir -p of the cgroup at the path in the tree (printf-style). */
static void mk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mk(const char *fmt, ...)
{
	char p[512];
	va_list ap;
	int n = snprintf(p, sizeof(p), "%s/", tree);

	va_start(ap, fmt);
	vsnprintf(p + n, sizeof(p) - (size_t)n, fmt, ap);
	va_end(ap);
	for (char *c = p + n; (c = strchr(c, '/')); *c++ = '/') {
		*c = '\0';
		CU_ASSERT(mkdir(p, 0755) == 0 || errno == EEXIST);
	}
	CU_ASSERT_EQUAL(mkdir(p, 0755), 0);
}

/* The container id resolves to the cgroup at the path in the tree (printf-style). */
static void resolves(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void resolves(const char *id, const char *fmt, ...)
{
	char buf[512], want[512];
	va_list ap;
	int n = snprintf(want, sizeof(want), "%s/", tree);

	va_start(ap, fmt);
	vsnprintf(want + n, sizeof(want) - (size_t)n, fmt, ap);
	va_end(ap);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, id, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, want);
}

/* The fake cgroup tree goes, whatever the test left in it. */
static void rm_tree(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* the systemd driver's slice of a burstable pod */
#define BURSTABLE_POD "kubepods.slice/kubepods-burstable.slice/" \
	"kubepods-burstable-pod11112222_3333_4444_5555_666677778888.slice"

static void test_resolve(void)
{
	const char *cid = "4f1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff0";
	char buf[512], want[512];

	tree_begin("cg");
	/* systemd driver */
	mk(BURSTABLE_POD "/cri-containerd-%s.scope", cid);
	mk(BURSTABLE_POD "/crio-conmon-%s.scope", cid);
	/* cgroupfs driver */
	mk("kubepods/besteffort/podaaaabbbb-cccc-dddd-eeee-ffff00001111/abcdef0123456789");
	mk("kubepods/besteffort/podaaaabbbb-cccc-dddd-eeee-ffff00001111/abcdef0123459999");

	resolves(cid, BURSTABLE_POD "/cri-containerd-%s.scope", cid);
	resolves("4f1b2c3d4e5f", BURSTABLE_POD "/cri-containerd-%s.scope", cid);
	CU_ASSERT_EQUAL(cgroup_resolve_pod(tree, "11112222-3333-4444-5555-666677778888", buf,
					     sizeof(buf)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "kubepods-burstable-pod11112222_3333"));
	CU_ASSERT_EQUAL(cgroup_resolve_pod(tree, "aaaabbbb-cccc-dddd-eeee-ffff00001111", buf,
					     sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/kubepods/besteffort/"
		 "podaaaabbbb-cccc-dddd-eeee-ffff00001111", tree);
	CU_ASSERT_STRING_EQUAL(buf, want);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "abcdef0123456789", buf, sizeof(buf)), 0);
	/* A prefix shared by two containers is ambiguous; unknown ids and bad input are errors. */
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "abcdef0123", buf, sizeof(buf)), -EINVAL);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "abcdef012345", buf, sizeof(buf)), -EEXIST);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "999999999999", buf, sizeof(buf)), -ENOENT);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "../../etc/xx", buf, sizeof(buf)), -EINVAL);
	CU_ASSERT_EQUAL(cgroup_resolve_pod(tree, "../../etc", buf, sizeof(buf)), -EINVAL);

	rm_tree();
}

/* podman's names: cgroupfs manager (libpod_parent/[<pod id>/]libpod-<id>, as on the
 * development VM; tests/suites/pod.sh runs it for real) and systemd manager
 * (machine.slice/[machine-libpod_pod_<pod id>.slice/]libpod-<id>.scope, conmon beside it). */
static void test_resolve_podman(void)
{
	const char *pod = "25ddd5a4868a321932f80085aa9167bc22781de7b49888ca3aa86a3a3fbc631f";
	const char *ctr = "cb971ef116196065c17e34d486828faceff4724ce468cf9cf6ac35c0cc33470a";
	const char *infra = "6202bb98e7bf0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899a";
	const char *sd = "0774c076f70d8f9b939d93b8b613dd0f628b8d61bdcb75dc774499ab43cd46c4";

	tree_begin("podman");
	mk("libpod_parent/%s/libpod-%s", pod, ctr);
	mk("libpod_parent/%s/libpod-%s", pod, infra);
	mk("machine.slice/machine-libpod_pod_%s.slice/libpod-%s.scope", pod, sd);
	mk("machine.slice/libpod-conmon-%s.scope", sd);

	resolves(ctr, "libpod_parent/%s/libpod-%s", pod, ctr);
	resolves("cb971ef11619", "libpod_parent/%s/libpod-%s", pod, ctr);
	/* systemd: the container's scope, not its conmon scope nor the pod's slice. */
	resolves("0774c076f70d", "machine.slice/machine-libpod_pod_%s.slice/libpod-%s.scope",
		 pod, sd);

	rm_tree();
}

/* Docker's names: cgroupfs driver (docker/<id>) and systemd driver
 * (system.slice/docker-<id>.scope); a Kubernetes node running the Docker shim nests them the
 * same way under kubepods. */
static void test_resolve_docker(void)
{
	const char *a = "3f2a9c1e5b7d4c0a9e8f7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928";
	const char *b = "7e6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b3a291807f6e5d4c3b2a19080";
	char buf[512];

	tree_begin("docker");
	mk("docker/%s", a);
	mk("system.slice/docker-%s.scope", b);
	mk("system.slice/docker.service");          /* the daemon itself: not a container */

	resolves("3f2a9c1e5b7d", "docker/%s", a);
	resolves(b, "system.slice/docker-%s.scope", b);
	CU_ASSERT_EQUAL(cgroup_resolve_container(tree, "0123456789ab", buf, sizeof(buf)), -ENOENT);

	rm_tree();
}

CU_MAIN("enforcer", cu_quiet, NULL,
	{ "destination specs", test_dest_parse },
	{ "config section", test_config_ok },
	{ "config errors name field paths", test_config_errors },
	{ "transparent redirect settings", test_config_redirect },
	{ "container and pod cgroup resolution", test_resolve },
	{ "podman container cgroups (cgroupfs and systemd managers)", test_resolve_podman },
	{ "docker container cgroups (cgroupfs and systemd drivers)", test_resolve_docker })
