/* list: the one intrusive doubly linked list (the kernel's list.h, trimmed).
 *
 * Embed a `struct list_head` in the element; a list is a `struct list_head` that points at
 * itself when empty. O(1) insert and removal anywhere; no allocation.
 */
#ifndef WARDEN_LIST_H
#define WARDEN_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_head {
	struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(name) { &(name), &(name) }

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(head, type, member) list_entry((head)->next, type, member)
#define list_last_entry(head, type, member) list_entry((head)->prev, type, member)

static inline void list_init(struct list_head *h)
{
	h->next = h->prev = h;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}

static inline void list_insert_between(struct list_head *n, struct list_head *prev,
				       struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

/* At the front (a stack, or newest-first). */
static inline void list_add(struct list_head *n, struct list_head *head)
{
	list_insert_between(n, head, head->next);
}

/* At the back (a queue, arrival order). */
static inline void list_add_tail(struct list_head *n, struct list_head *head)
{
	list_insert_between(n, head->prev, head);
}

/* Unlink; the node is left self-linked so a second list_del is harmless. */
static inline void list_del(struct list_head *n)
{
	n->next->prev = n->prev;
	n->prev->next = n->next;
	list_init(n);
}

/* Is the node on a list (self-linked nodes are not)? */
static inline bool list_linked(const struct list_head *n)
{
	return n->next && n->next != n;
}

static inline void list_move(struct list_head *n, struct list_head *head)
{
	list_del(n);
	list_add(n, head);
}

/* Move every node of `from` to the back of `to`; `from` ends empty (a consumer takes a whole
 * batch at once). */
static inline void list_splice_tail_init(struct list_head *from, struct list_head *to)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

/* Move the nodes after pos (a node of head, or head itself) to the empty list to, in constant
 * time: a consumer keeps the first part of what it took and hands the rest back unwalked. */
static inline void list_cut_after(struct list_head *head, struct list_head *pos,
				  struct list_head *to)
{
	if (pos->next == head)
		return;
	to->next = pos->next;
	to->prev = head->prev;
	to->next->prev = to;
	to->prev->next = to;
	pos->next = head;
	head->prev = pos;
}

#define list_for_each_entry(pos, head, member)                                                  \
	for (pos = list_entry((head)->next, __typeof__(*pos), member); &pos->member != (head); \
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))

/* Safe against removal of pos. */
#define list_for_each_entry_safe(pos, tmp, head, member)                                        \
	for (pos = list_entry((head)->next, __typeof__(*pos), member),                         \
	    tmp = list_entry(pos->member.next, __typeof__(*pos), member);                      \
	     &pos->member != (head);                                                            \
	     pos = tmp, tmp = list_entry(tmp->member.next, __typeof__(*tmp), member))

#endif
