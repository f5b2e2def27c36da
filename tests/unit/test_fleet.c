/* test_fleet: the "counters" section (every field, every error with its path) and how counters
 * are named and expire in Redis. The scripts themselves run against a real redis-server in
 * tests/integration/counters-redis.test.mjs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>

#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/fleet_int.h"
#include "config_errors_util.h"
#include "cunit_main.h"

static int parse(const char *json, struct fleet_config **out, struct config_errors *errs)
{
	cJSON *root = cJSON_Parse(json);
	int rc;

	CU_ASSERT_FATAL(root != NULL);
	memset(errs, 0, sizeof(*errs));
	rc = fleet_config_parse(root, out, errs);
	cJSON_Delete(root);
	return rc;
}

static void test_sqlite_default(void)
{
	struct fleet_config *c = (void *)1;
	struct config_errors e;

	CU_ASSERT(parse("{}", &c, &e) == 0);
	CU_ASSERT(c == NULL);
	CU_ASSERT(parse("{\"counters\": {\"backend\": \"sqlite\"}}", &c, &e) == 0);
	CU_ASSERT(c == NULL);
	CU_ASSERT(parse("{\"counters\": {\"backend\": \"sqlite\", \"url\": \"redis://x\"}}", &c,
			&e) == -EINVAL);
	CU_ASSERT_ERRORS(&e, "counters: the sqlite backend takes no other field");
}

static void test_redis_fields(void)
{
	struct fleet_config *c;
	struct config_errors e;

	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"url\": "
			      "\"redis://:s3cret@10.0.0.5:6380/3\"}}", &c, &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->addr.host, "10.0.0.5");
	CU_ASSERT(c->addr.port == 6380);
	CU_ASSERT(c->db == 3);
	CU_ASSERT_STRING_EQUAL(c->password, "s3cret");
	CU_ASSERT_STRING_EQUAL(c->prefix, "mcpwarden:");
	CU_ASSERT(c->fail_closed);
	CU_ASSERT(c->connect_timeout_ms == 1000 && c->command_timeout_ms == 1000);
	CU_ASSERT(c->resv_ttl_s == 3600);
	CU_ASSERT(c->charge_id_ttl_ms == FLEET_CHARGE_ID_TTL_MS);
	fleet_config_free(c);
	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"url\": \"redis://h\","
			      " \"charge_id_ttl\": \"48h\"}}", &c, &e) == 0);
	CU_ASSERT(c->charge_id_ttl_ms == 2 * 86400000ll);
	fleet_config_free(c);

	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"url\": \"redis://[::1]\","
			      " \"key_prefix\": \"prod:\", \"command_timeout_ms\": \"250ms\","
			      " \"reservation_ttl\": \"10m\", \"on_unreachable\": \"local\","
			      " \"local_allowance\": {\"spend\": \"0.50\", \"calls\": 20}}}", &c,
			      &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->addr.host, "::1");
	CU_ASSERT(c->addr.port == 6379 && c->db == 0 && !c->password);
	CU_ASSERT_STRING_EQUAL(c->prefix, "prod:");
	CU_ASSERT(c->command_timeout_ms == 250 && c->resv_ttl_s == 600);
	CU_ASSERT(!c->fail_closed && c->local_spend == 500000 && c->local_calls == 20);
	fleet_config_free(c);

	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"url\": "
			      "\"unix:/run/redis.sock?db=2\"}}", &c, &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->addr.path, "/run/redis.sock");
	CU_ASSERT(c->db == 2 && !c->addr.host);
	fleet_config_free(c);

	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"sentinel\": {\"master\": "
			      "\"mymaster\", \"addrs\": [\"10.0.0.7\", \"10.0.0.8:5000\"]}}}", &c,
			      &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->sentinel_master, "mymaster");
	CU_ASSERT(c->nsentinels == 2);
	CU_ASSERT(c->sentinels[0].port == 26379 && c->sentinels[1].port == 5000);
	fleet_config_free(c);
}

static void test_passwords(void)
{
	struct fleet_config *c;
	struct config_errors e;
	char path[] = "/tmp/test_fleet_pw_XXXXXX";
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, "from-file\n", 10) == 10);
	close(fd);
	char json[512];
	snprintf(json, sizeof(json), "{\"counters\": {\"backend\": \"redis\", \"url\": "
		 "\"redis://h\", \"password_file\": \"%s\"}}", path);
	CU_ASSERT_FATAL(parse(json, &c, &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->password, "from-file");       /* newline dropped */
	fleet_config_free(c);
	unlink(path);
	CU_ASSERT(parse(json, &c, &e) == -EINVAL);
	CU_ASSERT_ERRORS(&e, "counters.password_file: cannot read");

	setenv("TEST_FLEET_PW", "from-env", 1);
	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"url\": \"redis://h\", "
			      "\"password_env\": \"TEST_FLEET_PW\"}}", &c, &e) == 0);
	CU_ASSERT_STRING_EQUAL(c->password, "from-env");
	fleet_config_free(c);
	unsetenv("TEST_FLEET_PW");
	CU_ASSERT(parse("{\"counters\": {\"backend\": \"redis\", \"url\": \"redis://h\", "
			"\"password_env\": \"TEST_FLEET_PW\"}}", &c, &e) == -EINVAL);
	CU_ASSERT_ERRORS(&e, "counters.password_env: environment variable TEST_FLEET_PW is not set");
}

static void test_errors(void)
{
	static const struct {
		const char *json, *error;
	} cases[] = {
		{ "{\"backend\": \"memcached\"}", "counters.backend: must be \"sqlite\" or \"redis\"" },
		{ "{\"backend\": \"redis\"}", "counters.url" },
		{ "{\"backend\": \"redis\", \"url\": \"rediss://h\"}", "counters.url: TLS (rediss://) is not supported" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"tls\": true}", "local tunnel" },
		{ "{\"backend\": \"redis\", \"url\": \"http://h\"}", "counters.url: expected redis://" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h:99999\"}", "counters.url: expected redis://host:port/db" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h/x\"}", "counters.url: db must be 0..1023" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://u:p@h\"}", "ACL users are not supported" },
		{ "{\"backend\": \"redis\", \"url\": \"unix:rel.sock\"}", "absolute path" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"on_unreachable\": \"open\"}", "counters.on_unreachable: must be" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"on_unreachable\": \"local\"}", "counters.local_allowance: on_unreachable \"local\" needs an allowance" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"local_allowance\": {\"spend\": \"-1\"}}", "counters.local_allowance.spend" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"key_prefix\": \"{x}\"}", "counters.key_prefix: at most 64 characters, no braces" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"command_timeout_ms\": 0}", "counters.command_timeout_ms" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"sentinel\": {\"master\": \"m\", \"addrs\": [\"a\"]}}", "counters: give one of url, sentinel or cluster" },
		{ "{\"backend\": \"redis\", \"sentinel\": {\"master\": \"m\", \"addrs\": []}}", "counters.sentinel.addrs: must be a list" },
		{ "{\"backend\": \"redis\", \"sentinel\": {\"master\": \"m\", \"addrs\": [\"a:x\"]}}", "counters.sentinel.addrs[0]" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"timeout\": 5}", "counters.timeout: unknown field" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"charge_id_ttl\": \"10s\"}", "counters.charge_id_ttl" },
		{ "{\"backend\": \"redis\", \"url\": \"redis://h\", \"cluster\": [\"a:1\"]}", "counters: give one of url, sentinel or cluster" },
		{ "{\"backend\": \"redis\", \"cluster\": []}", "counters.cluster: must be a list of 1 to 16" },
		{ "{\"backend\": \"redis\", \"cluster\": \"a:1\"}", "counters.cluster: must be a list" },
		{ "{\"backend\": \"redis\", \"cluster\": [\"a:1\", \"b:0\"]}", "counters.cluster[1]: expected \"host:port\"" },
	};
	struct fleet_config *c;
	struct config_errors e;
	char json[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), "{\"counters\": %s}", cases[i].json);
		c = NULL;
		CU_ASSERT(parse(json, &c, &e) == -EINVAL);
		CU_ASSERT(c == NULL);
		CU_ASSERT_ERRORS(&e, cases[i].error);
	}
}

static void test_key_names(void)
{
	struct budget_spec day = { "daily", 5000000, BUDGET_DAILY, 0 };
	struct budget_spec month = { "m", 1, BUDGET_MONTHLY, 0 };
	struct budget_spec roll = { "r", 1, BUDGET_ROLLING, 86400 };
	const int64_t now = 1767272400;         /* 2026-01-01T13:00:00Z */
	char buf[256];

	CU_ASSERT(fleet_counter_key("mcpwarden:", "key:k1", &day, now, buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "mcpwarden:{key:k1}:b:day:1767225600");
	/* the same period on every sidecar: any instant of the day names the same key */
	CU_ASSERT(fleet_counter_key("mcpwarden:", "key:k1", &day, 1767225600 + 86399, buf,
				    sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "mcpwarden:{key:k1}:b:day:1767225600");
	CU_ASSERT(fleet_counter_key("p:", "team:t", &month, now, buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{team:t}:b:month:1767225600");
	CU_ASSERT(fleet_counter_key("p:", "key:k1", &roll, now, buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:b:rolling:86400");
	CU_ASSERT(fleet_counter_key("p:", "key:k1", &day, now, buf, 10) == -ENAMETOOLONG);

	CU_ASSERT(fleet_bucket_key("p:", "k1", RATE_KEY, "s", "t", buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:r:key");
	CU_ASSERT(fleet_bucket_key("p:", "k1", RATE_SERVER, "github", NULL, buf, sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:r:server:github");
	CU_ASSERT(fleet_bucket_key("p:", "k1", RATE_TOOL, "github", "create_issue", buf,
				   sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:r:tool:github/create_issue");
	/* the LLM route's buckets never meet a tool call's: a namespace of their own */
	CU_ASSERT(fleet_bucket_key_ns("p:", "llm:tokens", "k1", RATE_TOOL, "main", "gpt-4o", buf,
				      sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:llm:tokens:tool:main/gpt-4o");
	CU_ASSERT(fleet_bucket_key_ns("p:", "llm:requests", "k1", RATE_KEY, NULL, NULL, buf,
				      sizeof(buf)) == 0);
	CU_ASSERT_STRING_EQUAL(buf, "p:{key:k1}:llm:requests:key");
	CU_ASSERT(fleet_bucket_key_ns("p:", "llm:tokens", "k1", RATE_KEY, NULL, NULL, buf, 12) ==
		  -ENAMETOOLONG);

	/* a day's counter lives until a day after the day ends, plus a reservation's deadline */
	CU_ASSERT(fleet_counter_ttl(&day, now, 3600) == (1767225600 + 86400 - now) + 86400 + 3600);
	/* a rolling window: the window, two slots (60 s each for 24 h) and the deadline */
	CU_ASSERT(fleet_counter_ttl(&roll, now, 3600) == 86400 + 120 + 3600);
}

/* A kept charge as the store holds it: only a settle's shape decodes (a damaged row is never
 * sent); the marker of a charge sits beside its first counter, in its hash tag. */
static void test_kept_charges(void)
{
	static const char *const bad[] = {
		"", "{}", "[]", "[1]", "[\"1\"]", "[\"0\",\"k\",\"id\",\"0\",\"1\",\"0\",\"1\",\"2\"]",
		/* a commit without its marker key, or without the id's lifetime */
		"[\"1\",\"k\",\"id\",\"5\",\"1\",\"0\",\"1\",\"2\",\"60000\"]",
		"[\"2\",\"k\",\"m\",\"id\",\"5\",\"1\",\"0\",\"1\",\"2\"]",
		"[\"2\",\"k\",\"m\",\"id\",\"5\",\"1\",\"0\",\"1\",\"x\",\"60000\"]",
		"[\"2\",\"k\",\"m\",\"\",\"5\",\"1\",\"0\",\"1\",\"2\",\"60000\"]",
	};
	struct argv_b a;
	char m[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT(fleet_pending_decode(bad[i], &a) == -EINVAL);
	CU_ASSERT_FATAL(fleet_pending_decode("[\"2\",\"k\",\"m\",\"id\",\"5\",\"1\",\"0\",\"1\",\"2\","
					     "\"60000\"]", &a) == 0);
	CU_ASSERT(a.n == 12);
	CU_ASSERT_STRING_EQUAL(a.v[0], "EVALSHA");
	CU_ASSERT_STRING_EQUAL(a.v[5], "id");
	struct settle s = { .argc = a.n, .argv = a.v, .argvlen = a.len };
	char *text = fleet_pending_encode(&s);
	CU_ASSERT_STRING_EQUAL(text, "[\"2\",\"k\",\"m\",\"id\",\"5\",\"1\",\"0\",\"1\",\"2\",\"60000\"]");
	free(text);
	fleet_av_free(a.n, a.v, a.len);
	/* a release: no marker */
	CU_ASSERT(fleet_pending_decode("[\"1\",\"k\",\"id\",\"0\",\"1\",\"0\",\"1\",\"2\"]", &a) == 0);
	fleet_av_free(a.n, a.v, a.len);

	CU_ASSERT(fleet_charge_marker("mcpwarden:{key:k1}:b:day:1767225600", "h.00ff.7", m,
				      sizeof(m)) == 0);
	CU_ASSERT_STRING_EQUAL(m, "mcpwarden:{key:k1}:c:h.00ff.7");
	CU_ASSERT(fleet_charge_marker("no-tag", "x", m, sizeof(m)) == -EINVAL);
	CU_ASSERT(fleet_charge_marker("p:{key:k1}:b", "x", m, 8) == -ENAMETOOLONG);
}

static void test_cluster_config(void)
{
	struct fleet_config *c;
	struct config_errors e;

	CU_ASSERT_FATAL(parse("{\"counters\": {\"backend\": \"redis\", \"cluster\": "
			      "[\"10.0.0.1:7000\", \"[::1]:7001\", \"node3\"], \"password_env\": "
			      "\"PATH\"}}", &c, &e) == 0);
	CU_ASSERT(c->nseeds == 3);
	CU_ASSERT_STRING_EQUAL(c->seeds[0].host, "10.0.0.1");
	CU_ASSERT(c->seeds[0].port == 7000);
	CU_ASSERT_STRING_EQUAL(c->seeds[1].host, "::1");
	CU_ASSERT(c->seeds[2].port == 6379);
	CU_ASSERT(c->addr.host == NULL && c->nsentinels == 0);
	CU_ASSERT(c->password != NULL);
	fleet_config_free(c);
}

/* The Redis Cluster spec's CRC16 and hash tags. */
static void test_slots(void)
{
	CU_ASSERT(fleet_crc16("123456789", 9) == 0x31C3);
	CU_ASSERT(fleet_key_slot("foo", 3) == 12182);
	CU_ASSERT(fleet_key_slot("bar", 3) == 5061);
	CU_ASSERT(fleet_key_slot("hello", 5) == 866);
	/* the tag only: a key's counters, buckets and markers share its slot */
	CU_ASSERT(fleet_key_slot("{user1000}.following", 20) == fleet_key_slot("user1000", 8));
	CU_ASSERT(fleet_key_slot("mcpwarden:{key:k1}:b:day:1767225600", 35) ==
		  fleet_key_slot("key:k1", 6));
	CU_ASSERT(fleet_key_slot("mcpwarden:{key:k1}:c:h.1", 24) == fleet_key_slot("key:k1", 6));
	/* the first {...} that is not empty, as the spec's examples */
	CU_ASSERT(fleet_key_slot("foo{}{bar}", 10) == fleet_key_slot("foo{}{bar}", 10) &&
		  fleet_key_slot("foo{}{bar}", 10) == (fleet_crc16("foo{}{bar}", 10) & 16383));
	CU_ASSERT(fleet_key_slot("foo{{bar}}zap", 13) == fleet_key_slot("{bar", 4));
	CU_ASSERT(fleet_key_slot("foo{bar}{zap}", 13) == fleet_key_slot("bar", 3));
	CU_ASSERT(fleet_key_slot("no{close", 8) == (fleet_crc16("no{close", 8) & 16383));
}

static redisReply *resp(const char *text)
{
	redisReader *r = redisReaderCreate();
	void *rep = NULL;

	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT(redisReaderFeed(r, text, strlen(text)) == REDIS_OK);
	CU_ASSERT(redisReaderGetReply(r, &rep) == REDIS_OK);
	redisReaderFree(r);
	return rep;
}

static void test_slot_map(void)
{
	struct fleet_slot_range out[4];
	size_t n = 9;
	redisReply *rep = resp(
		"*2\r\n"
		"*4\r\n:0\r\n:5460\r\n"
		"*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
		"*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nr1\r\n"
		"*3\r\n:5461\r\n:16383\r\n"
		"*2\r\n$8\r\n10.0.0.2\r\n:7001\r\n");

	CU_ASSERT_FATAL(rep != NULL);
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == 0);
	CU_ASSERT(n == 2);
	CU_ASSERT(out[0].lo == 0 && out[0].hi == 5460 && out[0].port == 7000);
	CU_ASSERT_STRING_EQUAL(out[0].host, "127.0.0.1");
	CU_ASSERT(out[1].lo == 5461 && out[1].hi == 16383 && out[1].port == 7001);
	CU_ASSERT_STRING_EQUAL(out[1].host, "10.0.0.2");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 1, &n) == -EINVAL);   /* more than max */
	freeReplyObject(rep);
	/* a slot out of range, an empty map, an error (not a cluster) */
	rep = resp("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == -EINVAL);
	freeReplyObject(rep);
	rep = resp("*0\r\n");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == -EINVAL);
	freeReplyObject(rep);
	/* Redis 7: a node's id and its extra fields (hostname) after host and port, as
	 * cluster-announce-hostname makes it answer; the address is still the IP */
	rep = resp("*1\r\n*4\r\n:0\r\n:16383\r\n"
		   "*4\r\n$9\r\n127.0.0.1\r\n:27001\r\n$4\r\n62be\r\n"
		   "*2\r\n$8\r\nhostname\r\n$13\r\nhost-1.redis.\r\n"
		   "*4\r\n$9\r\n127.0.0.1\r\n:27004\r\n$4\r\nda7e\r\n*0\r\n");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == 0);
	CU_ASSERT(n == 1 && out[0].port == 27001 && !strcmp(out[0].host, "127.0.0.1"));
	freeReplyObject(rep);
	/* unknown-endpoint: a nil host means the address the map was asked of */
	rep = resp("*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$-1\r\n:27001\r\n$4\r\n62be\r\n"
		   "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == 0);
	CU_ASSERT(n == 1 && out[0].port == 27001 && !strcmp(out[0].host, "10.9.8.7"));
	CU_ASSERT(fleet_cluster_parse_slots(rep, NULL, out, 4, &n) == -EINVAL);
	CU_ASSERT(fleet_cluster_parse_slots(rep, "", out, 4, &n) == -EINVAL);
	freeReplyObject(rep);
	rep = resp("-ERR This instance has cluster support disabled\r\n");
	CU_ASSERT(fleet_cluster_parse_slots(rep, "10.9.8.7", out, 4, &n) == -EINVAL);
	freeReplyObject(rep);
}

CU_MAIN("fleet", NULL, NULL,
	{ "sqlite is the default", test_sqlite_default },
	{ "redis fields", test_redis_fields },
	{ "passwords from a file or the environment", test_passwords },
	{ "errors name the field", test_errors },
	{ "key names and expiry", test_key_names },
	{ "kept charges and their markers", test_kept_charges },
	{ "cluster seeds", test_cluster_config },
	{ "CRC16 and hash slots", test_slots },
	{ "CLUSTER SLOTS into a slot map", test_slot_map })
