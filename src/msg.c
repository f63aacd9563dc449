/*
 * msg.c - the slow paths of message-node allocation (see msg.h): refilling
 * a scheduler's cache from its node's arena, allocating on another node, and
 * freeing past the cache's bound.  Sanitizer builds skip the cache so that
 * AddressSanitizer sees every node's lifetime.
 */
#include "msg.h"

#include "node_mem.h"

#define REFILL 32

struct up__msg *up__msg_alloc_slow(struct up__msg_cache *c, int node)
{
#if !UP_NODE_MEM_LIBC
	if (c && c->node == node) {
		/* Refill from the thread's arena (bound to this node). */
		for (unsigned i = 0; i < REFILL; i++) {
			struct up__msg *m = up__local_alloc(sizeof(*m));
			if (!m)
				break;
			m->next = c->free;
			c->free = m;
			c->n++;
		}
		if (c->free) {
			struct up__msg *m = c->free;
			c->free = m->next;
			c->n--;
			return m;
		}
		return NULL;
	}
#endif
	(void)c;
	return up__node_alloc(node, sizeof(struct up__msg));
}

void up__msg_free_slow(struct up__msg_cache *c, struct up__msg *m)
{
	(void)c;
	up__node_free(m, sizeof(*m));
}

void up__msg_cache_fini(struct up__msg_cache *c)
{
	while (c->free) {
		struct up__msg *m = c->free;
		c->free = m->next;
		up__node_free(m, sizeof(*m));
	}
	c->n = 0;
}

#include "scheduler.h"

void up__msg_release(struct up__sched *s, struct up__msg *m)
{
	if (up__msg_has_buffer(m))
		up__node_free(m, m->size);
	else
		up__msg_free(s ? &s->msgs : NULL, m);
}
