/* jsonw: JSON text written straight into one growable buffer, byte for byte as cJSON prints
 * it (cJSON_PrintUnformatted), for the records made on every call: no tree, no allocation
 * once the buffer has grown to a record's size.
 *
 * The caller opens and closes the object with jsonw_raw (and writes its first member so);
 * the jsonw_member_* helpers each write one further member, comma first.
 */
#ifndef WARDEN_JSONW_H
#define WARDEN_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

struct jsonw {
	char *buf;              /* NUL-terminated after every write */
	size_t len, cap;
};

void jsonw_reset(struct jsonw *w);
void jsonw_free(struct jsonw *w);

void jsonw_raw(struct jsonw *w, const char *s, size_t n);
/* A JSON string (quoted, escaped as cJSON escapes it). */
void jsonw_str(struct jsonw *w, const char *s);
/* The members: ,"name":value. Plain names only (the records' own, which need no escape).
 * The _n functions take the name's length; the inline forms give it, folded at compile
 * time for a literal. */
/* ,"name":"s" */
void jsonw_member_str_n(struct jsonw *w, const char *name, size_t name_len, const char *s);
/* ,"name":n — integers print as plain digits, as cJSON prints an integral double. */
void jsonw_member_int_n(struct jsonw *w, const char *name, size_t name_len, int64_t n);
/* ,"name":true|false */
void jsonw_member_bool_n(struct jsonw *w, const char *name, size_t name_len, bool b);
/* ,"name":<v printed by cJSON>; a number that is an integer below 1e15 as plain digits (as
 * the records' top-level numbers are printed: base/log.c). */
void jsonw_member_tree_n(struct jsonw *w, const char *name, size_t name_len, const cJSON *v);

static inline void jsonw_member_str(struct jsonw *w, const char *name, const char *s)
{
	jsonw_member_str_n(w, name, strlen(name), s);
}

static inline void jsonw_member_int(struct jsonw *w, const char *name, int64_t n)
{
	jsonw_member_int_n(w, name, strlen(name), n);
}

static inline void jsonw_member_bool(struct jsonw *w, const char *name, bool b)
{
	jsonw_member_bool_n(w, name, strlen(name), b);
}

static inline void jsonw_member_tree(struct jsonw *w, const char *name, const cJSON *v)
{
	jsonw_member_tree_n(w, name, strlen(name), v);
}

/* 1 for the bytes a JSON string cannot hold as they are: the controls (NUL too, so that a
 * scan of a C string stops at its end), '"' and '\\'. For scanners: one load a byte. */
extern const unsigned char jsonw_special[256];

/* v in decimal, NUL-terminated, without printf; returns its length. */
#define JSONW_INT_TEXT 21
size_t jsonw_int_text(char buf[JSONW_INT_TEXT], int64_t v);

/* v as compact JSON, the bytes cJSON_PrintUnformatted gives, except that every number is
 * written so that it reads back bit for bit: integers below 1e15 as digits, others in 15
 * significant digits where that round-trips exactly, else 17 (cJSON checks its 15 digits
 * within an epsilon only). NaN and infinities as null, as cJSON does. -EINVAL (nothing
 * written) for a node of no JSON type. */
int jsonw_value(struct jsonw *w, const cJSON *v);

#endif
