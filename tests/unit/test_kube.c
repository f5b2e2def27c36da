/* kube without privilege or network: the "enforcement.kubernetes" section (defaults, the
 * node name from the environment, the API server from the in-cluster environment, every
 * error with its field path) and the Kubernetes name checks the pod watch relies on. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "enforce/enforcer.h"
#include "enforce/kube.h"
#include "config_errors_util.h"
#include "enforcement_util.h"
#include "cunit_main.h"

static void test_defaults(void)
{
	static const struct {
		const char *text;
		bool redirect;
	} redirects[] = {
		{ "{\"kubernetes\": {\"node_name\": \"n1\"}}", false },
		{ "{\"redirect\": true, \"kubernetes\": {\"node_name\": \"n1\"}}", true },
		{ "{\"redirect\": true, \"kubernetes\": {\"node_name\": \"n1\", \"redirect\": false}}",
		  false },
		{ "{\"kubernetes\": {\"node_name\": \"n1\", \"redirect\": true}}", true },
	};
	struct enforcer_config c;
	struct config_errors e = { 0 };

	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("MCPWARDEN_TEST_NODE", "worker-1.example", 1);
	CU_ASSERT_EQUAL_FATAL(parse_enforcement("{\"kubernetes\": {\"node_name\": {\"env\": "
				    "\"MCPWARDEN_TEST_NODE\"}}}", &c, &e), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.kube);
	CU_ASSERT_STRING_EQUAL(c.kube->node_name, "worker-1.example");
	CU_ASSERT_STRING_EQUAL(c.kube->api_server, KUBE_API_DEFAULT);
	CU_ASSERT_STRING_EQUAL(c.kube->token_file, KUBE_TOKEN_DEFAULT);
	CU_ASSERT_STRING_EQUAL(c.kube->ca_file, KUBE_CA_DEFAULT);
	CU_ASSERT_STRING_EQUAL(c.kube->annotation, "mcpwarden.io/enforce");
	CU_ASSERT_STRING_EQUAL(c.kube->sidecar_container, "mcpwarden");
	enforcer_config_free(&c);

	/* In a pod: the Service address the kubelet gives, IPv6 bracketed. */
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	CU_ASSERT_EQUAL_FATAL(parse_enforcement("{\"kubernetes\": {\"node_name\": \"n1\"}}", &c, &e), 0);
	CU_ASSERT_STRING_EQUAL(c.kube->api_server, "https://[fd00::1]:6443");
	enforcer_config_free(&c);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	CU_ASSERT_EQUAL_FATAL(parse_enforcement("{\"kubernetes\": {\"node_name\": \"n1\", \"api_server\": "
				    "\"http://127.0.0.1:8001/\", \"annotation\": \"example.com/x\", "
				    "\"sidecar_container\": \"gw\"}}", &c, &e), 0);
	CU_ASSERT_STRING_EQUAL(c.kube->api_server, "http://127.0.0.1:8001");	/* no slash */
	CU_ASSERT_STRING_EQUAL(c.kube->annotation, "example.com/x");
	enforcer_config_free(&c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	CU_ASSERT_EQUAL(e.count, 0);
	/* redirect: its own, else the section's, else off. */
	for (size_t i = 0; i < sizeof(redirects) / sizeof(redirects[0]); i++) {
		int rc = parse_enforcement(redirects[i].text, &c, &e);

		CU_ASSERT_CASE(rc == 0 && c.kube, redirects[i].text);
		if (rc == 0 && c.kube)
			CU_ASSERT_CASE(c.kube->redirect == redirects[i].redirect, redirects[i].text);
		enforcer_config_free(&c);
	}
	CU_ASSERT_EQUAL(e.count, 0);
	/* No section: no watch. */
	CU_ASSERT_EQUAL_FATAL(parse_enforcement("{}", &c, &e), 0);
	CU_ASSERT_PTR_NULL(c.kube);
	enforcer_config_free(&c);
}

static void test_errors(void)
{
	struct enforcer_config c;
	struct config_errors e = { 0 };

	unsetenv("MCPWARDEN_TEST_UNSET");
	CU_ASSERT_EQUAL(parse_enforcement("{\"kubernetes\": {\"node_name\": {\"env\": "
			      "\"MCPWARDEN_TEST_UNSET\"}, \"api_server\": \"ftp://x\", "
			      "\"token_file\": \"token\", \"ca_file\": 3, \"annotation\": \"a/b/c\", "
			      "\"sidecar_container\": \"Side_Car\", \"watch\": true, "
			      "\"redirect\": \"yes\"}}", &c, &e),
			-EINVAL);
	CU_ASSERT_ERRORS(&e,
			 "enforcement.kubernetes.node_name: environment variable "
			 "MCPWARDEN_TEST_UNSET is not set",
			 "enforcement.kubernetes.api_server",
			 "enforcement.kubernetes.token_file",
			 "enforcement.kubernetes.ca_file",
			 "enforcement.kubernetes.annotation",
			 "enforcement.kubernetes.sidecar_container",
			 "watch",
			 "enforcement.kubernetes.redirect");
	enforcer_config_free(&c);

	memset(&e, 0, sizeof(e));
	CU_ASSERT_EQUAL(parse_enforcement("{\"kubernetes\": {\"node_name\": \"Bad_Node\", \"api_server\": "
			      "\"https://h/api?x=1\"}}", &c, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e,
			 "enforcement.kubernetes.node_name",
			 "enforcement.kubernetes.api_server");
	enforcer_config_free(&c);
	memset(&e, 0, sizeof(e));
	CU_ASSERT_EQUAL(parse_enforcement("{\"kubernetes\": {}}", &c, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "node_name: required");
	enforcer_config_free(&c);
	memset(&e, 0, sizeof(e));
	CU_ASSERT_EQUAL(parse_enforcement("{\"kubernetes\": true}", &c, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "enforcement.kubernetes: must be an object");
	enforcer_config_free(&c);
}

/* One name check over a table of names: a failure says which name and what was expected. */
struct name_case {
	const char *name;
	bool valid;
};

static void check_names(const char *what, bool (*valid)(const char *), const struct name_case *c,
			size_t n)
{
	char why[160];

	for (size_t i = 0; i < n; i++) {
		snprintf(why, sizeof(why), "%s(\"%s\") is %s", what, c[i].name,
			 c[i].valid ? "true" : "false");
		CU_ASSERT_CASE(valid(c[i].name) == c[i].valid, why);
	}
}

static bool dns_label(const char *s)
{
	return kube_dns_label(s, strlen(s));
}

static void test_names(void)
{
	static const struct name_case labels[] = {
		{ "mcpwarden", true }, { "a-1", true }, { "-a", false }, { "a-", false },
		{ "A", false }, { "a.b", false }, { "", false },
	};
	static const struct name_case subdomains[] = {
		{ "ip-10-0-0-1.eu-west-1.compute.internal", true }, { "a..b", false },
		{ "a.", false }, { ".a", false }, { "../etc", false },
	};
	static const struct name_case annotation_keys[] = {
		{ "mcpwarden.io/enforce", true }, { "Enforce_Me", true }, { "mcpwarden.io/", false },
		{ "/x", false }, { "a/b/c", false }, { "x-", false },
	};
	char long_label[80];

	check_names("kube_dns_label", dns_label, labels, sizeof(labels) / sizeof(labels[0]));
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	CU_ASSERT_FALSE(kube_dns_label(long_label, 64));
	CU_ASSERT_TRUE(kube_dns_label(long_label, 63));
	check_names("kube_dns_subdomain", kube_dns_subdomain, subdomains,
		    sizeof(subdomains) / sizeof(subdomains[0]));
	check_names("kube_annotation_key", kube_annotation_key, annotation_keys,
		    sizeof(annotation_keys) / sizeof(annotation_keys[0]));
}

CU_MAIN("kube", cu_quiet, NULL,
	{ "kubernetes section: defaults and environment", test_defaults },
	{ "kubernetes section: errors name their field", test_errors },
	{ "kubernetes names", test_names })
