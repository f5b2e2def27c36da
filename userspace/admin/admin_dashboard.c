/* admin_dashboard: the /logs dashboard — its embedded assets, the login with the admin token
 * and the cookie that stands for it, logout. */
#include "admin/admin_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "govern/peer_guard.h"
#include "observe/audit.h"

struct dash_asset {
	const char *name;
	const unsigned char *data;
	size_t len;
};

#include "dashboard_assets.h"

#define COOKIE "mcpwarden_admin"
#define LOGIN_BODY_MAX 4096

/* Strict: nothing inline, nothing from elsewhere, no framing, forms only to here. */
void admin_security_headers(struct evhttp_request *req)
{
	http_set_header(req, "Content-Security-Policy",
			 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
			 "connect-src 'self'; object-src 'none'; base-uri 'none'; "
			 "form-action 'self'; frame-ancestors 'none'");
	http_set_header(req, "X-Content-Type-Options", "nosniff");
	http_set_header(req, "X-Frame-Options", "DENY");
	http_set_header(req, "Referrer-Policy", "no-referrer");
}

static const struct dash_asset *asset(const char *name)
{
	for (size_t i = 0; i < sizeof(dash_assets) / sizeof(dash_assets[0]); i++)
		if (!strcmp(dash_assets[i].name, name))
			return &dash_assets[i];
	return NULL;
}

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot && !strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (dot && !strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	if (dot && !strcmp(dot, ".svg"))
		return "image/svg+xml";
	return "text/html; charset=utf-8";
}

static void send_asset(struct evhttp_request *req, const struct dash_asset *as)
{
	struct evbuffer *buf = evbuffer_new();

	admin_security_headers(req);
	http_set_header(req, "Content-Type", content_type(as->name));
	http_set_header(req, "Cache-Control", "no-store");
	if (buf)
		evbuffer_add_reference(buf, as->data, as->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", buf);
	if (buf)
		evbuffer_free(buf);
}

static void redirect(struct evhttp_request *req, const char *to)
{
	admin_security_headers(req);
	http_set_header(req, "Location", to);
	http_set_header(req, "Cache-Control", "no-store");
	evhttp_send_reply(req, 303, "See Other", NULL);
}

/* --- logins ---------------------------------------------------------------------------------- */

/* The value of our cookie in the Cookie header into buf (hex), or false. */
static bool cookie_value(struct evhttp_request *req, char *buf, size_t len)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");

	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		size_t n = strcspn(h, ";");
		if (n > sizeof(COOKIE) && !strncmp(h, COOKIE "=", sizeof(COOKIE)) &&
		    n - sizeof(COOKIE) < len) {
			memcpy(buf, h + sizeof(COOKIE), n - sizeof(COOKIE));
			buf[n - sizeof(COOKIE)] = '\0';
			return true;
		}
		h += n;
	}
	return false;
}

/* The slot of the login whose cookie the request carries, or -1. Every slot is compared. */
static int login_slot(struct admin *a, struct evhttp_request *req)
{
	char v[128];
	unsigned char d[KEYS_HASH_LEN];
	int64_t now = (int64_t)(clock_mono_ms() / 1000);
	int found = -1;

	if (!cookie_value(req, v, sizeof(v)) || keys_hash(v, strlen(v), d))
		return -1;
	for (int i = 0; i < ADMIN_MAX_LOGINS; i++)
		if (a->logins[i].expires > now &&
		    CRYPTO_memcmp(d, a->logins[i].hash, sizeof(d)) == 0)
			found = i;
	OPENSSL_cleanse(v, sizeof(v));
	return found;
}

bool admin_cookie_ok(struct admin *a, struct evhttp_request *req)
{
	return login_slot(a, req) >= 0;
}

void admin_logins_clear(struct admin *a)
{
	OPENSSL_cleanse(a->logins, sizeof(a->logins));
}

/* A new login: a random cookie value, of which only the digest is kept. */
static int login_new(struct admin *a, char *out, size_t len)
{
	unsigned char raw[32];
	int64_t now = (int64_t)(clock_mono_ms() / 1000);
	int slot = 0;

	if (len < 2 * sizeof(raw) + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	for (int i = 1; i < ADMIN_MAX_LOGINS; i++)   /* a free or expired slot, else the oldest */
		if (a->logins[i].expires < a->logins[slot].expires)
			slot = i;
	if (keys_hash(out, strlen(out), a->logins[slot].hash))
		return -EIO;
	a->logins[slot].expires = now + ADMIN_LOGIN_TTL_S;
	return 0;
}

static void login_record(const char *peer, const char *action, const char *result, int status)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "action", action);
	if (peer)
		cJSON_AddStringToObject(o, "peer", peer);
	cJSON_AddStringToObject(o, "result", result);
	cJSON_AddNumberToObject(o, "status", status);
	audit_admin(o);
	cJSON_Delete(o);
}

static void do_login(struct admin *a, struct evhttp_request *req, const char *peer)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct evkeyvalq form;
	char *body, cookie[256], value[80];
	const char *token;
	unsigned char d[KEYS_HASH_LEN];
	bool ok = false;

	TAILQ_INIT(&form);
	if (len > LOGIN_BODY_MAX) {
		admin_send_error(req, 413, NULL, "login form too large");
		return;
	}
	body = xstrndup((const char *)evbuffer_pullup(in, -1), len);
	if (evhttp_parse_query_str(body, &form) == 0 && (token = evhttp_find_header(&form, "token")) &&
	    keys_hash(token, strlen(token), d) == 0) {
		/* Digests of equal length: constant time, the token's length not revealed. */
		ok = CRYPTO_memcmp(d, a->token_hash, sizeof(d)) == 0;
		OPENSSL_cleanse(d, sizeof(d));
	}
	OPENSSL_cleanse(body, len);
	for (struct evkeyval *kv = form.tqh_first; kv; kv = kv->next.tqe_next)
		OPENSSL_cleanse(kv->value, strlen(kv->value));
	evhttp_clear_headers(&form);
	free(body);
	if (!ok) {
		if (peer)
			peer_guard_failure(a->guard, peer, clock_mono_ms());
		login_record(peer, "dashboard.login", "refused", 401);
		redirect(req, "/logs?failed=1");
		return;
	}
	if (peer)
		peer_guard_success(a->guard, peer, clock_mono_ms());
	if (login_new(a, value, sizeof(value))) {
		admin_send_error(req, 500, NULL, "no randomness for a login cookie");
		return;
	}
	/* Secure only where there is TLS: this listener is plain HTTP (loopback by default). */
	snprintf(cookie, sizeof(cookie), COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d",
		 value, ADMIN_LOGIN_TTL_S);
	OPENSSL_cleanse(value, sizeof(value));
	http_set_header(req, "Set-Cookie", cookie);
	OPENSSL_cleanse(cookie, sizeof(cookie));
	login_record(peer, "dashboard.login", "ok", 303);
	redirect(req, "/logs");
}

static void do_logout(struct admin *a, struct evhttp_request *req, const char *peer)
{
	int slot = login_slot(a, req);

	if (slot >= 0) {
		OPENSSL_cleanse(&a->logins[slot], sizeof(a->logins[slot]));
		login_record(peer, "dashboard.logout", "ok", 303);
	}
	http_set_header(req, "Set-Cookie", COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
	redirect(req, "/logs");
}

bool admin_dashboard_route(struct admin *a, struct evhttp_request *req, const char *path,
			   enum evhttp_cmd_type cmd, const char *peer)
{
	const struct dash_asset *as;

	if (strcmp(path, "/logs") && strncmp(path, "/logs/", 6))
		return false;
	if (!strcmp(path, "/logs/login") || !strcmp(path, "/logs/logout")) {
		if (cmd != EVHTTP_REQ_POST) {
			http_set_header(req, "Allow", "POST");
			admin_send_error(req, 405, NULL, "method not allowed here; use POST");
		} else if (!strcmp(path, "/logs/login")) {
			do_login(a, req, peer);
		} else {
			do_logout(a, req, peer);
		}
		return true;
	}
	if (cmd != EVHTTP_REQ_GET) {
		http_set_header(req, "Allow", "GET");
		admin_send_error(req, 405, NULL, "method not allowed here; use GET");
		return true;
	}
	if (!strcmp(path, "/logs") || !strcmp(path, "/logs/")) {
		as = asset(admin_cookie_ok(a, req) ? "app.html" : "login.html");
	} else {
		/* The scripts, the style sheet, the icon: the same for everyone, nothing secret. */
		as = asset(path + 6);
		if (as && strstr(as->name, ".html"))
			as = NULL;
	}
	if (!as) {
		admin_security_headers(req);
		admin_send_error(req, 404, NULL, "no such page: %s", path);
		return true;
	}
	send_asset(req, as);
	return true;
}
