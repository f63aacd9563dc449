/*
 * dwcas.h - a 16-byte compare-and-swap (x86-64 cmpxchg16b) on a
 * {pointer, tag} pair.
 *
 * Used by mailbox inboxes, where the tag is the owner's pid: a sender's push
 * succeeds only while the inbox still belongs to the process it named, so a
 * stale pid can never deliver into a slot's next owner (no ABA across slot
 * reuse).  cmpxchg16b is a full barrier (locked instruction): a successful
 * push is sequentially consistent with everything around it.
 */
#ifndef UP_DWCAS_H
#define UP_DWCAS_H

#include <stdbool.h>
#include <stdint.h>
#include "debug.h"

struct up__pair {
	void *ptr;
	uint64_t tag;
} __attribute__((aligned(16)));

/* Atomically: if *p == *expected, *p = {nptr, ntag} and return true;
 * otherwise *expected = the current value and return false. */
static inline bool up__dwcas(struct up__pair *p, struct up__pair *expected,
			     void *nptr, uint64_t ntag)
{
	bool ok;
	/* TSan does not see into the asm: tell it this is a release and an
	 * acquire on p (it is both, success or not).  A failed CAS thus also
	 * counts as a release, which can only hide a race, never invent one. */
	up__tsan_release(p);
	__asm__ __volatile__("lock cmpxchg16b %1"
			     : "=@ccz"(ok), "+m"(*p), "+a"(expected->ptr),
			       "+d"(expected->tag)
			     : "b"(nptr), "c"(ntag)
			     : "memory");
	up__tsan_acquire(p);
	return ok;
}

/* A snapshot of *p, not atomic as a pair (each half is); callers validate it
 * with up__dwcas. */
static inline struct up__pair up__pair_peek(const struct up__pair *p)
{
	struct up__pair v;
	v.tag = __atomic_load_n(&p->tag, __ATOMIC_ACQUIRE);
	v.ptr = __atomic_load_n(&p->ptr, __ATOMIC_ACQUIRE);
	return v;
}

#endif
