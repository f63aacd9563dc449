/*
 * ebr.h - deferred reclamation for lock-free readers: epoch-based, with the
 * readers' fence moved to the reclaimer (membarrier).
 *
 * Readers (table lookups) run on scheduler threads between up__ebr_enter()
 * and up__ebr_exit(); memory a writer unlinks is handed to up__ebr_retire()
 * and freed only once every scheduler has been seen outside a read section,
 * or inside one that began after the unlink (two epoch advances later).
 *
 * Invariants:
 *  - A read section never outlives the table operation that opened it; it
 *    may nest (depth counter per scheduler), so a fiber switched away inside
 *    one (a select predicate that yields) only delays reclamation.
 *  - A reader's entry is a plain store: the store-load ordering that
 *    epoch-based reclamation needs is supplied by the reclaimer's
 *    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) before it reads the
 *    readers' slots (an IPI that fences every CPU running this program).
 *    Where membarrier is unavailable, readers store with a full fence.
 *  - Every retired block is freed by the scheduler that retired it, or by
 *    up__ebr_fini at the end of a run (nothing runs then).
 */
#ifndef UP_EBR_H
#define UP_EBR_H

#include <stdint.h>
#include "debug.h"

struct up__retired {
	struct up__retired *next;
	void (*free)(struct up__retired *r);
};

struct up__ebr_slot {
	uint64_t active;            /* atomic: 0, or epoch << 1 | 1 */
	uint32_t depth;             /* nested read sections (owner thread) */
	uint32_t pending;           /* retired blocks not yet freed */
	uint32_t next_try;          /* pending count of the next advance attempt */
	struct up__retired *bag[3]; /* retired in epoch bag_epoch[i] */
	uint64_t bag_epoch[3];
} __attribute__((aligned(UP_CACHELINE)));

extern struct up__ebr_slot *up__ebr_slots UP_INTERNAL;
extern uint64_t up__ebr_epoch UP_INTERNAL;
extern int up__ebr_fenced UP_INTERNAL;

/* Set up nsched slots for this run (idempotent; caller serialises).  0 or
 * -ENOMEM. */
int up__ebr_init(int nsched) UP_INTERNAL;
/* End of a run (nothing runs): free everything retired, drop the slots. */
void up__ebr_fini(void) UP_INTERNAL;
/* Hand r to the reclaimer (scheduler `sched`'s thread). */
void up__ebr_retire(int sched, struct up__retired *r) UP_INTERNAL;

static inline void up__ebr_enter(int sched)
{
	struct up__ebr_slot *e = &up__ebr_slots[sched];
	if (e->depth++ == 0) {
		uint64_t v = __atomic_load_n(&up__ebr_epoch, __ATOMIC_RELAXED) << 1 | 1;
		if (up_unlikely(up__ebr_fenced))
			__atomic_store_n(&e->active, v, __ATOMIC_SEQ_CST);
		else
			__atomic_store_n(&e->active, v, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	}
}

static inline void up__ebr_exit(int sched)
{
	struct up__ebr_slot *e = &up__ebr_slots[sched];
	if (--e->depth == 0)
		__atomic_store_n(&e->active, 0, __ATOMIC_RELEASE);
}

#endif
