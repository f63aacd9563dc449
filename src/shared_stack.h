/*
 * shared_stack.h - the shared stack of a scheduler, on which its compact
 * processes (UP_SPAWN_COMPACT) run, and the copying of their frames.
 *
 * A compact process has no stack of its own.  Its frames live on the shared
 * stack while it is the stack's owner; when another compact process is about
 * to run there, the owner's used part [sp, hi) is copied out to its slot's
 * save area (or, when larger, a node-local block), and the newcomer's copied
 * back to the same addresses (so its saved stack pointer stays valid).  A
 * process that has run never changes scheduler, so it always comes back to
 * the same shared stack.  Copies are lazy: a compact process that blocks and
 * is the next compact process to run again is never copied.
 *
 * Invariants (owner thread only):
 *  - at most one owner; its frames are in place on [owner->sp, hi);
 *  - a compact process that is not the owner and has run has its frames in
 *    its save area: [hi - len, hi) with len = hi - sp;
 *  - a compact process that has never run has sp == NULL: taking the stack
 *    builds its first frame at hi;
 *  - no code runs on the shared stack while it is being copied: copies are
 *    made from the scheduler context (scheduler.c: run, s->handoff).
 */
#ifndef UP_SHARED_STACK_H
#define UP_SHARED_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "debug.h"

struct up__proc;

struct up__sstack {
	char *map;                 /* guard page + stack; NULL until first use */
	size_t map_len;
	char *lo, *hi;             /* the usable stack */
	struct up__proc *owner;    /* whose frames are on it, or NULL */
	unsigned vg;               /* Valgrind stack id */
};

/* Map ss (stack_size bytes above a guard page) on node.  0 or -ENOMEM. */
int up__sstack_init(struct up__sstack *ss, size_t stack_size, int node) UP_INTERNAL;
void up__sstack_fini(struct up__sstack *ss) UP_INTERNAL;

/* Make compact process p the owner of ss, saving the previous owner's
 * frames.  Not called on ss itself.  When the previous owner's frames could
 * not be saved (no memory), it is ended with reason UP_NO_MEMORY. */
void up__sstack_take(struct up__sstack *ss, struct up__proc *p) UP_INTERNAL;

/* A compact process is dead (reaped; maybe a zombie until its I/O ends):
 * forget its frames, free its block. */
void up__sstack_forget(struct up__sstack *ss, struct up__proc *p) UP_INTERNAL;

/* Whether [b, b+len) overlaps ss (a compact process's local buffer). */
static inline bool up__sstack_holds(const struct up__sstack *ss, const void *b, size_t len)
{
	uintptr_t x = (uintptr_t)b;
	return ss->map && x < (uintptr_t)ss->hi && x + len > (uintptr_t)ss->lo;
}

#endif
