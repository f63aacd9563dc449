/*
 * region.h - process memory regions.
 *
 * Every process owns one fixed-size slot of virtual memory, carved from large
 * per-node reservations ("chunks" of 4096 slots, one mapping each, bound to
 * the node's memory).  A slot, from low to high addresses:
 *
 *   [ heap (heap_size) | guard page | stack (stack_size) ... | proc | color ]
 *
 * The process control block (struct up__proc) sits at the top of the slot and
 * shares its page with the first bytes of the stack, so an idle process costs
 * one resident page.  The guard page is a MADV_GUARD_INSTALL marker (no VMA
 * split, so a million slots stay within vm.max_map_count), installed on a
 * slot's first use and kept for the runtime's life.  A heap that outgrows
 * the slot continues in mappings of its own (proc.c), unmapped on exit.
 *
 * Invariants:
 *  - chunks are never unmapped while the runtime runs: the control block of
 *    any slot is readable at a fixed address, so a sender holding a stale pid
 *    reads a valid (dead or reused) control block, never unmapped memory;
 *  - a slot's generation lives outside the slot, survives MADV_DONTNEED and
 *    the end of a run (the table is kept for the OS process's life), and
 *    grows on every reuse: pid = generation << 28 | slot, so a pid is never
 *    issued twice, not even by a later up_run;
 *  - slots are cached per scheduler, warm (pages resident) up to
 *    warm_regions; beyond that batches are trimmed (MADV_DONTNEED on
 *    coalesced ranges) and returned to their node's pool;
 *  - the node's memory work goes to its idle schedulers where it can: those
 *    trims (at most PEND_MAX batches wait; past that the giver trims), and
 *    readying fresh stack slots ahead of the spawners (region.c).
 *
 * Two classes of slot, each in chunks of its own (a chunk records its slot
 * size, so a pid still finds its control block with a multiply and an add):
 *  - stack slots, as above, for processes with a stack of their own;
 *  - compact slots (UP_SPAWN_COMPACT): the block and 320 bytes of saved
 *    frames (1344 bytes: 3 slots a page), no heap, no stack, no guard:
 *
 *      [ saved frames (save area) | proc ]
 *
 *    such a process runs on its scheduler's shared stack, and the frames it
 *    leaves there are copied into the save area when another compact
 *    process needs the stack (scheduler.c).  Two processes share a page.
 */
#ifndef UP_REGION_H
#define UP_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "uproc.h"
#include "debug.h"

#define UP__SLOT_BITS 28
#define UP__CHUNK_BITS 12
#define UP__CHUNK_SLOTS (1u << UP__CHUNK_BITS)
#define UP__MAX_CHUNKS (1u << (UP__SLOT_BITS - UP__CHUNK_BITS))
#define UP__PAGE 4096ul

struct up__proc;

enum { UP__CLASS_STACK = 0, UP__CLASS_COMPACT = 1, UP__CLASSES = 2 };

struct up__chunk {
	char *base;                 /* UP__CHUNK_SLOTS slots */
	size_t slot_size;           /* bytes per slot */
	uint32_t proc_off;          /* slot base to the uncoloured control block */
	uint32_t color_mask;        /* UP__COLORS - 1; 0 for compact slots */
	int cls;                    /* UP__CLASS_* */
	int node;                   /* program-visible node */
	uint32_t *gen;              /* UP__CHUNK_SLOTS generations (kept) */
	uint64_t guarded[UP__CHUNK_SLOTS / 64];
};

/* Layout, fixed at up_run; read-only afterwards. */
struct up__region_layout {
	size_t slot_size;    /* power of two */
	unsigned slot_shift;
	size_t heap_size;    /* in-slot heap bytes */
	size_t stack_size;   /* from the guard page to the control block */
	size_t proc_size;    /* bytes reserved for the control block */
	size_t compact_size; /* a compact slot's size (a multiple of 64) */
	size_t save_size;    /* a compact slot's save area (below its block) */
};

/* Per-node pool of cold slots (lock: node pools are touched rarely). */
struct up__node_pool {
	pthread_mutex_t lock;
	uint32_t *free;        /* cold (trimmed) slots */
	size_t nfree, cap;
	uint32_t fresh_next;   /* next never-used slot of the current chunk */
	uint32_t fresh_end;
	uint32_t prep_next;    /* stack class: fresh slots below it are prepared,
				  or being prepared, by an idle scheduler */
	uint32_t *pend;        /* batches queued for an idle scheduler to trim */
	unsigned npend;        /* (atomic read without the lock: a hint) */
};

/* Per-scheduler cache of free slots of each class (owner thread only). */
struct up__region_cache {
	int node;
	struct {
		uint32_t *slot;    /* LIFO: the top is the warmest */
		unsigned n;
	} cls[UP__CLASSES];
	unsigned cap, warm_max;
	bool ask_help;         /* a take or give raised mem_work: wake an idle peer */
};

struct up__regions {
	struct up__region_layout layout;
	struct up__chunk *chunk[UP__MAX_CHUNKS];
	uint32_t nchunks;                 /* under chunk_lock */
	pthread_mutex_t chunk_lock;
	struct up__node_pool pool[UP__CLASSES][64];
	int mem_work[64];                 /* atomic, per node: slots to prepare or trim */
	int self_pidfd;                   /* for process_madvise on our own ranges; -1: none */
	bool bulk_ok;                     /* atomic: process_madvise takes our advice */
	bool guard_supported;
};

extern struct up__regions up__regions UP_INTERNAL;

int up__regions_init(size_t stack_size, size_t heap_size, size_t proc_size) UP_INTERNAL;
void up__regions_fini(void) UP_INTERNAL;
int up__region_cache_init(struct up__region_cache *c, int node, unsigned warm_max) UP_INTERNAL;
/* Give every cached slot back to its node pool (scheduler stop). */
void up__region_cache_fini(struct up__region_cache *c) UP_INTERNAL;

/* A free slot of class cls (UP__CLASS_*) on `node` from cache c (NULL: from
 * the node pool, locked).  A stack slot has its guard page installed.
 * Returns the slot number, or -ENOMEM / -EAGAIN (slot numbers exhausted). */
int64_t up__region_take(struct up__region_cache *c, int node, int cls) UP_INTERNAL;
/* Return a dead process's slot (to c, or to the node pool when c is NULL or
 * of another node).  heap_dirty: bytes of in-slot heap it used. */
void up__region_give(struct up__region_cache *c, uint32_t slot, size_t heap_dirty) UP_INTERNAL;
/*
 * Node memory work for a scheduler with nothing to run, asked for by busy
 * schedulers of the node (their cache's ask_help): trim a batch of slots
 * that overflowed a warm cache, or ready a step of fresh stack slots ahead
 * of the spawners (guards, resident block pages).  One step per call;
 * returns what it did (all 0: nothing to do).
 */
struct up__region_work {
	unsigned prepared, trimmed;
};
struct up__region_work up__region_idle_work(int node) UP_INTERNAL;
/* Whether node has memory work for an idle scheduler. */
static inline bool up__region_work_wanted(int node)
{
	return __atomic_load_n(&up__regions.mem_work[node], __ATOMIC_SEQ_CST) != 0;
}

/* Next generation of a slot being handed to a new process. */
uint32_t up__region_next_gen(uint32_t slot) UP_INTERNAL;

static inline struct up__chunk *up__slot_chunk(uint32_t slot)
{
	return up__regions.chunk[slot >> UP__CHUNK_BITS];
}

static inline char *up__slot_base(uint32_t slot)
{
	struct up__chunk *ch = up__slot_chunk(slot);
	return ch->base + (size_t)(slot & (UP__CHUNK_SLOTS - 1)) * ch->slot_size;
}

static inline bool up__slot_compact(uint32_t slot)
{
	return up__slot_chunk(slot)->cls == UP__CLASS_COMPACT;
}

/* Control blocks (and so stack tops) are coloured by slot: 16 positions
 * 64 bytes apart, so neighbours do not share their offset modulo 4 KiB
 * (4K-aliasing stalls on every switch, one L1 set for every block). */
#define UP__COLORS 16u
static inline struct up__proc *up__slot_proc(uint32_t slot)
{
	struct up__chunk *ch = up__slot_chunk(slot);
	return (struct up__proc *)(ch->base + (size_t)(slot & (UP__CHUNK_SLOTS - 1)) * ch->slot_size +
				   ch->proc_off - ((slot & ch->color_mask) << 6));
}

static inline uint32_t up__pid_slot(up_pid pid) { return (uint32_t)pid & ((1u << UP__SLOT_BITS) - 1); }
static inline up_pid up__make_pid(uint32_t slot, uint32_t gen) { return ((up_pid)gen << UP__SLOT_BITS) | slot; }

/* The control block a pid would live in, or NULL when the pid cannot be one
 * of this runtime's (never-allocated slot, bad bits). */
static inline struct up__proc *up__pid_proc(up_pid pid)
{
	if (up_unlikely(pid <= 0 || (pid >> (UP__SLOT_BITS + 32)) != 0))
		return NULL;
	uint32_t slot = up__pid_slot(pid);
	uint32_t ci = slot >> UP__CHUNK_BITS;
	if (up_unlikely(ci >= __atomic_load_n(&up__regions.nchunks, __ATOMIC_ACQUIRE)))
		return NULL;
	return up__slot_proc(slot);
}

/* The stack of a stack-class slot: [lo, the control block). */
static inline char *up__slot_stack_lo(uint32_t slot)
{
	return up__slot_base(slot) + up__regions.layout.heap_size + UP__PAGE;
}

/* The node of the region of live process pid (>= 0), or -ESRCH. */
int up__region_node(up_pid pid);

#endif
