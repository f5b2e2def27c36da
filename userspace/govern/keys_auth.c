/* keys_auth: authentication of a presented key (through a connection's memo) and the per-peer
 * failure tracker's front. */
#include "govern/keys_int.h"

#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

#include "base/log.h"

/* ---- authentication ---- */

const char *keys_auth_name(enum keys_auth r)
{
	switch (r) {
	case KEYS_AUTH_OK:        return "ok";
	case KEYS_AUTH_MALFORMED: return "malformed";
	case KEYS_AUTH_UNKNOWN:   return "unknown";
	case KEYS_AUTH_EXPIRED:   return "expired";
	case KEYS_AUTH_DISABLED:  return "disabled";
	}
	return "unknown";
}

void key_identity_copy(struct key_identity *dst, const struct key_identity *src)
{
	static const struct key_identity none;

	if (!src)
		src = &none;
	strcpy(dst->id, src->id);
	strcpy(dst->name, src->name);
	strcpy(dst->team, src->team);
	strcpy(dst->policy, src->policy);
	strcpy(dst->team_policy, src->team_policy);
	dst->expires = src->expires;
	strcpy(dst->workloads, src->workloads);
	strcpy(dst->workload, src->workload);
}

/* who from a stored key, and what it says at time now. */
static enum keys_auth identify(const struct key *k, int64_t now, struct key_identity *who)
{
	if (!k) {
		memset(who, 0, sizeof(*who));
		return KEYS_AUTH_UNKNOWN;
	}
	/* Lengths were checked on the way in: every string fits its field. */
	strcpy(who->id, k->text);
	strcpy(who->name, k->text + k->name_off);
	strcpy(who->policy, k->text + k->policy_off);
	strcpy(who->workloads, k->text + k->workloads_off);
	if (k->team) {
		strcpy(who->team, k->team->name);
		strcpy(who->team_policy, k->team->policy);
	} else {
		who->team[0] = who->team_policy[0] = '\0';
	}
	who->expires = k->expires;
	if (k->disabled)
		return KEYS_AUTH_DISABLED;
	if (k->expires && now >= k->expires)
		return KEYS_AUTH_EXPIRED;
	return KEYS_AUTH_OK;
}

static enum keys_auth auth_hash_locked(const struct keystore *ks,
				       const unsigned char hash[KEYS_HASH_LEN], int64_t now,
				       struct key_identity *who)
{
	return identify(keys_find_by_hash(ks, hash), now, who);
}

enum keys_auth keys_authenticate_hash(const struct keystore *ks,
				      const unsigned char hash[KEYS_HASH_LEN], int64_t now,
				      struct key_identity *who)
{
	enum keys_auth rc;

	keys_rd(ks);
	rc = auth_hash_locked(ks, hash, now, who);
	keys_unlock(ks);
	return rc;
}

/* *found: the stored key the presented one hashes to (NULL none). */
static enum keys_auth authenticate(struct keystore *ks, const char *presented, size_t len,
				   int64_t now, struct key_identity *who, const struct key **found)
{
	unsigned char d[KEYS_HASH_LEN];
	enum keys_auth r;

	*found = NULL;
	/* Any printable token is hashed, so keys imported from another system keep working. */
	if (!presented || len == 0 || len > KEYS_PRESENTED_MAX)
		goto malformed;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)presented[i] <= 0x20 || (unsigned char)presented[i] >= 0x7f)
			goto malformed;
	}
	if (keys_hash_with(ks, presented, len, d)) {
		log_error("keys: SHA-256 failed; refusing the request");
		memset(who, 0, sizeof(*who));
		return KEYS_AUTH_UNKNOWN;
	}
	*found = keys_find_by_hash(ks, d);
	r = identify(*found, now, who);
	OPENSSL_cleanse(d, sizeof(d));
	return r;
malformed:
	memset(who, 0, sizeof(*who));
	return KEYS_AUTH_MALFORMED;
}

enum keys_auth keys_authenticate(struct keystore *ks, const char *presented, size_t len,
				 int64_t now, struct key_identity *who)
{
	const struct key *k;
	enum keys_auth r;

	keys_rd(ks);
	r = authenticate(ks, presented, len, now, who, &k);
	keys_unlock(ks);
	return r;
}

static enum keys_auth auth_memo_locked(struct keystore *ks, struct keys_memo *m,
				       const char *presented, size_t len, int64_t now,
				       struct key_identity *who)
{
	uint64_t gen = atomic_load_explicit(&keys_generation, memory_order_relaxed), tag = 0;
	const struct key *k;
	enum keys_auth r;

	if (!m)
		return authenticate(ks, presented, len, now, who, &k);
	/* The by_hash table's seed is random and never leaves the process: a different key
	 * matches the tag by chance only (2^-64), and no client can search for one offline. */
	if (presented && len && len <= KEYS_PRESENTED_MAX) {
		tag = htab_hash_bytes(&ks->by_hash, presented, len);
		if (m->gen == gen && m->ks == ks && m->len == len && m->tag == tag)
			return identify(m->key, now, who);
	}
	r = authenticate(ks, presented, len, now, who, &k);
	*m = (struct keys_memo){ 0 };
	if (r == KEYS_AUTH_OK)
		*m = (struct keys_memo){ .gen = gen, .ks = ks, .key = k, .tag = tag, .len = len };
	return r;
}

enum keys_auth keys_authenticate_memo(struct keystore *ks, struct keys_memo *m,
				      const char *presented, size_t len, int64_t now,
				      struct key_identity *who)
{
	enum keys_auth rc;

	keys_rd(ks);
	rc = auth_memo_locked(ks, m, presented, len, now, who);
	keys_unlock(ks);
	return rc;
}

/* ---- per-peer failure tracker (peer_guard) ---- */

void keys_take_peers(struct keystore *to, struct keystore *from)
{
	/* to is not published yet: nobody reads its tracker. from's readers keep theirs. */
	peer_guard_free(to->peers);
	to->peers = peer_guard_share(from->peers);
}

bool keys_peer_blocked(struct keystore *ks, const char *peer, int64_t now_ms,
		       int64_t *retry_after_ms)
{
	return peer_guard_blocked(ks->peers, peer, now_ms, retry_after_ms);
}

void keys_peer_failure(struct keystore *ks, const char *peer, int64_t now_ms)
{
	peer_guard_failure(ks->peers, peer, now_ms);
}

void keys_peer_success(struct keystore *ks, const char *peer, int64_t now_ms)
{
	peer_guard_success(ks->peers, peer, now_ms);
}

