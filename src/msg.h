/*
 * msg.h - message nodes and their per-scheduler cache.
 *
 * A message is one node in the receiver's inbox.  A word message carries its
 * payload inside the node (no other allocation).  Nodes are allocated on the
 * receiver's NUMA node: from the sending scheduler's cache when it is on that
 * node (owner-only free list, no atomic, no lock), otherwise from the
 * receiver node's arena.  The receiver frees into its own scheduler's cache,
 * so every cached node is memory of that scheduler's node.
 *
 * The same nodes carry requests to a scheduler from other threads (its
 * remote queue): wake a process, run a process spawned there.
 */
#ifndef UP_MSG_H
#define UP_MSG_H

#include <stdint.h>
#include "debug.h"

enum {
	UP__MSG_WORD = 0,  /* a word message */
	UP__MSG_TERM,      /* a term: root in `word`; a boxed one in a buffer */
	UP__MSG_WAKE,      /* scheduler request: wake pid `word` if it waits */
	UP__MSG_SPAWN,     /* scheduler request: run new process `body` */
	UP__MSG_SIG_EXIT,  /* signals (signals.h): term messages of these kinds */
	UP__MSG_SIG_LINK,
	UP__MSG_SIG_UNLINK,
	UP__MSG_SIG_MONITOR,
	UP__MSG_SIG_DEMONITOR,
	UP__MSG_SIG_LINK_EXIT, /* EXIT of a linked process's death: unlinks too */
	UP__MSG_SIG_DOWN,      /* a monitor fired: becomes the DOWN message */
};

struct up__msg {
	struct up__msg *next;
	uint64_t word;
	void *body;        /* out-of-node payload (terms); unset for words */
	uint32_t kind;
	uint32_t size;     /* unset for words (never read for that kind) */
};

/*
 * A term message whose term has a boxed part is one buffer on the
 * receiver's node: this node, the held link (once received), the copy.
 * body points at the copy, size is the buffer's bytes.
 */
struct up__held {
	struct up__held *prev, *next;
};

struct up__msg_cache {
	struct up__msg *free;
	unsigned n;
	int node;
};

#define UP__MSG_CACHE_MAX 8192u

static inline int up__msg_is_signal(const struct up__msg *m)
{
	return m->kind >= UP__MSG_SIG_EXIT;
}
/* A term message (or signal) whose term has a boxed part owns a buffer. */
static inline int up__msg_has_buffer(const struct up__msg *m)
{
	return (m->kind == UP__MSG_TERM || m->kind >= UP__MSG_SIG_EXIT) && m->size;
}

struct up__sched;
/* Free a message of any kind (a term buffer, or a node to the cache). */
void up__msg_release(struct up__sched *s, struct up__msg *m) UP_INTERNAL;

struct up__msg *up__msg_alloc_slow(struct up__msg_cache *c, int node) UP_INTERNAL;
void up__msg_cache_fini(struct up__msg_cache *c) UP_INTERNAL;
void up__msg_free_slow(struct up__msg_cache *c, struct up__msg *m) UP_INTERNAL;

/* A node on `node`; c is the caller's scheduler cache or NULL. */
static inline struct up__msg *up__msg_alloc(struct up__msg_cache *c, int node)
{
#if !UP_NODE_MEM_LIBC
	if (up_likely(c && c->node == node && c->free)) {
		struct up__msg *m = c->free;
		c->free = m->next;
		c->n--;
		return m;
	}
#endif
	return up__msg_alloc_slow(c, node);
}

/* A node on the cache's own node (the caller's scheduler's): no node test. */
static inline struct up__msg *up__msg_alloc_own(struct up__msg_cache *c)
{
#if !UP_NODE_MEM_LIBC
	if (up_likely(c->free)) {
		struct up__msg *m = c->free;
		c->free = m->next;
		c->n--;
		return m;
	}
#endif
	return up__msg_alloc_slow(c, c->node);
}

static inline void up__msg_free(struct up__msg_cache *c, struct up__msg *m)
{
#if !UP_NODE_MEM_LIBC
	if (up_likely(c && c->n < UP__MSG_CACHE_MAX)) {
		m->next = c->free;
		c->free = m;
		c->n++;
		return;
	}
#endif
	up__msg_free_slow(c, m);
}

#endif
