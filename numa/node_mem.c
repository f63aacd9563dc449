/*
 * node_mem.c - node-local allocation (see node_mem.h).
 *
 * jemalloc: for every present node an arena is created whose extent-alloc
 * hook wraps jemalloc's default hook and then mbind()s the new extent to the
 * node's memory (before first touch, so its pages are placed there).  The
 * other hooks are jemalloc's defaults.  The table of arenas is written by
 * up__node_mem_init before any scheduler starts and only read afterwards.
 */
#include "node_mem.h"

#include <errno.h>
#include <pthread.h>
#include <numaif.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jemalloc/jemalloc.h>

#include "debug.h"
#include "fault.h"

static const struct up__topology *topo;

#if UP_NODE_MEM_LIBC

/* malloc with a 16-byte header holding the node (sanitizer builds). */
int up__node_mem_init(const struct up__topology *t) { topo = t; return 0; }
void up__node_mem_fini(void) { topo = NULL; }

static __thread int thread_node;

/* Header of HDR bytes before the block: its node.  HDR keeps alignment. */
static void *hdr_alloc(int node, size_t size, size_t hdr)
{
	char *h = UP_FAULT_PTR(UP__F_NODE_ALLOC,
			       aligned_alloc(hdr, hdr + ((size + hdr - 1) & ~(hdr - 1))));
	if (!h)
		return NULL;
	*(int *)(h + hdr - 16) = node;
	*(int *)(h + hdr - 12) = (int)hdr;
	return h + hdr;
}
void *up__node_alloc(int node, size_t size) { return hdr_alloc(node, size, 16); }
void *up__node_alloc_line(int node, size_t size) { return hdr_alloc(node, size, 64); }
void *up__local_alloc(size_t size) { return up__node_alloc(thread_node, size); }
void up__node_free(void *p, size_t size)
{
	if (p)
		free((char *)p - ((const int *)p)[-3]);
}
int up__node_bind_thread(int node) { thread_node = node; return 0; }
int up__node_of_block(const void *p) { return p ? *(const int *)((const char *)p - 16) : -1; }

#else

struct node_hooks {
	extent_hooks_t hooks; /* first: jemalloc passes &hooks back to us */
	int node;             /* program-visible node */
};

static struct node_hooks node_hooks[UP__MAX_NODES];
#define MAX_ARENAS 4096
static unsigned arena_of[UP__MAX_NODES];
static bool arena_made[UP__MAX_NODES];
static int node_of_arena[MAX_ARENAS]; /* node + 1; 0: not ours */
static extent_hooks_t *default_hooks;

static void *node_extent_alloc(extent_hooks_t *h, void *new_addr, size_t size,
			       size_t alignment, bool *zero, bool *commit,
			       unsigned arena_ind)
{
	struct node_hooks *nh = (struct node_hooks *)h;
	void *p = default_hooks->alloc(default_hooks, new_addr, size, alignment,
				       zero, commit, arena_ind);
	if (p)
		(void)up__node_bind_range(p, size, nh->node); /* no-op between runs */
	return p;
}

int up__node_mem_init(const struct up__topology *t)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	size_t sz = sizeof(default_hooks);
	int r = 0;

	pthread_mutex_lock(&lock);
	topo = t;
	if (!default_hooks &&
	    mallctl("arena.0.extent_hooks", &default_hooks, &sz, NULL, 0) != 0) {
		r = -ENOMEM;
		goto out;
	}
	for (int nd = 0; nd < t->nnodes; nd++) {
		if (!t->node_present[nd] || arena_made[nd])
			continue;
		node_hooks[nd].hooks = *default_hooks;
		node_hooks[nd].hooks.alloc = node_extent_alloc;
		node_hooks[nd].node = nd;
		extent_hooks_t *hp = &node_hooks[nd].hooks;
		unsigned ind;
		sz = sizeof(ind);
		if (mallctl("arenas.create", &ind, &sz, &hp, sizeof(hp)) != 0) {
			r = -ENOMEM;
			goto out;
		}
		arena_of[nd] = ind;
		arena_made[nd] = true;
		if (ind < MAX_ARENAS)
			node_of_arena[ind] = nd + 1;
	}
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/* The arenas stay: scheduler threads make them their default arena, so the
 * program's own malloc()s there (stdio buffers, ...) live in them and may
 * outlive the runtime.  They are reused by the next up_run. */
void up__node_mem_fini(void)
{
	topo = NULL;
}

void *up__node_alloc(int node, size_t size)
{
	UP_ASSERT(topo && node >= 0 && node < topo->nnodes);
	return UP_FAULT_PTR(UP__F_NODE_ALLOC,
			    mallocx(size, MALLOCX_ARENA(arena_of[node]) | MALLOCX_TCACHE_NONE));
}

void *up__node_alloc_line(int node, size_t size)
{
	UP_ASSERT(topo && node >= 0 && node < topo->nnodes);
	return UP_FAULT_PTR(UP__F_NODE_ALLOC, mallocx(size, MALLOCX_ARENA(arena_of[node]) |
								  MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(64)));
}

void *up__local_alloc(size_t size) { return UP_FAULT_PTR(UP__F_NODE_ALLOC, mallocx(size, 0)); }

void up__node_free(void *p, size_t size)
{
	if (p)
		dallocx(p, 0);
}

int up__node_bind_thread(int node)
{
	unsigned ind = arena_of[node];
	if (mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)) != 0)
		return -EINVAL;
	/* The thread cache keeps blocks of the thread's first (automatic,
	 * unbound) arena: after pthread_getattr_np, half of the next 200
	 * 32-byte blocks, the message nodes, came from it.  Empty it. */
	return mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) ? -EINVAL : 0;
}

int up__node_of_block(const void *p)
{
	unsigned ind;
	size_t sz = sizeof(ind);
	if (!p || mallctl("arenas.lookup", &ind, &sz, &p, sizeof(p)) != 0)
		return -1;
	return ind < MAX_ARENAS ? node_of_arena[ind] - 1 : -1;
}

#endif /* UP_NODE_MEM_LIBC */

int up__node_bind_range(void *addr, size_t len, int node)
{
	if (!topo || node < 0 || node >= topo->nnodes || topo->mem_node[node] < 0)
		return 0; /* nothing to bind to: libnuma unusable */
	unsigned long mask[UP__MAX_NODES / (8 * sizeof(unsigned long)) + 1] = {0};
	int real = topo->mem_node[node];
	mask[real / (8 * sizeof(unsigned long))] |= 1ul << (real % (8 * sizeof(unsigned long)));
	if (mbind(addr, len, MPOL_PREFERRED, mask, UP__MAX_NODES + 1, 0) != 0)
		return -errno;
	return 0;
}
