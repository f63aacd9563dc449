/*
 * node_mem.h - node-local memory: one jemalloc arena per NUMA node, whose
 * extents are bound to the node's memory (mbind, MPOL_PREFERRED), and
 * binding of raw ranges (process-region reservations) to a node.
 *
 * Scheduler threads make their node's arena their default arena, so a plain
 * up__local_alloc() on a scheduler is node-local and goes through the
 * thread's tcache (no lock).  up__node_alloc() names a node explicitly (used
 * for another node's memory, e.g. a message for a receiver there).
 *
 * In sanitizer builds (UP_NODE_MEM_LIBC) every block comes from malloc with a
 * small header recording its node, so LeakSanitizer sees every block.
 */
#ifndef UP_NODE_MEM_H
#define UP_NODE_MEM_H

#include <stddef.h>
#include "topology.h"

/* Create one arena per present node.  0 or -ENOMEM. */
int up__node_mem_init(const struct up__topology *t);
/* End of a run: the arenas stay for the next one (see node_mem.c). */
void up__node_mem_fini(void);

/* size bytes on node `node` (any thread).  NULL without memory. */
void *up__node_alloc(int node, size_t size);
/* size bytes on node `node`, aligned to a cache line (64). */
void *up__node_alloc_line(int node, size_t size);
/* size bytes from the calling thread's node (see up__node_bind_thread). */
void *up__local_alloc(size_t size);
/* Free a block of either function (any thread). */
void up__node_free(void *p, size_t size);

/* Make `node`'s arena the calling thread's default.  0 or -errno. */
int up__node_bind_thread(int node);
/* Bind [addr, addr+len) to node's memory (preferred).  0 or -errno. */
int up__node_bind_range(void *addr, size_t len, int node);
/* The node of a block from up__node_alloc/up__local_alloc, -1 if unknown. */
int up__node_of_block(const void *p);

#endif
