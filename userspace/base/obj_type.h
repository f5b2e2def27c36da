/* obj_type: typed owner tags (HAProxy's obj_type.h).
 *
 * A context handed through an interface as an untyped pointer (an upstream link's call
 * context, which may be a downstream call or a catalogue fetch) starts with an enum obj_type,
 * so the receiver can tell what it got without guessing: obj_call(ctx) is NULL unless ctx
 * really is a call. Types only.
 */
#ifndef WARDEN_OBJ_TYPE_H
#define WARDEN_OBJ_TYPE_H

enum obj_type {
	OBJ_TYPE_NONE = 0,
	OBJ_TYPE_CALL,    /* struct call (mcp/call.h): a downstream request in flight */
	OBJ_TYPE_FETCH,   /* a catalogue fetch (mcp/catalog.c): a list page being read */
	OBJ_TYPE_VIEW_FETCH, /* a session's own tools/list (mcp/session_view.c) */
};

static inline enum obj_type obj_type(const enum obj_type *t)
{
	return t ? *t : OBJ_TYPE_NONE;
}

#endif
