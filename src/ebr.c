/*
 * ebr.c - epoch-based reclamation with asymmetric fences (see ebr.h).
 *
 * The global epoch advances from E to E+1 only when every scheduler is
 * either outside a read section or inside one that entered in E; a block
 * retired in epoch E is then freed once the epoch has reached E+2: every
 * reader that could have seen it has left.  Three bags per scheduler (epoch
 * mod 3) hold the retired blocks.  An advance costs one membarrier (~0.27 us
 * here) and a look at every scheduler's slot; it is tried once per BATCH
 * retirements, so a retirement costs a few nanoseconds amortised and a
 * lookup no locked instruction at all.
 */
#include "ebr.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "node_mem.h"

#define BATCH 256u

struct up__ebr_slot *up__ebr_slots;
uint64_t up__ebr_epoch = 1;
int up__ebr_fenced;
static int nslots;
static int mb_state; /* 0: not asked, 1: registered, -1: unavailable */

static long membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

int up__ebr_init(int nsched)
{
	if (up__ebr_slots)
		return 0;
	if (mb_state == 0)
		mb_state = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 ? 1 : -1;
	up__ebr_fenced = mb_state < 0;
	struct up__ebr_slot *s = aligned_alloc(UP_CACHELINE, (size_t)nsched * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < nsched; i++)
		s[i] = (struct up__ebr_slot){ .next_try = BATCH };
	nslots = nsched;
	__atomic_store_n(&up__ebr_slots, s, __ATOMIC_RELEASE);
	return 0;
}

static uint32_t free_bag(struct up__retired *r)
{
	uint32_t n = 0;
	while (r) {
		struct up__retired *next = r->next;
		r->free(r);
		r = next;
		n++;
	}
	return n;
}

/* Free e's bags retired two epochs or more before `epoch`. */
static void collect(struct up__ebr_slot *e, uint64_t epoch)
{
	for (int i = 0; i < 3; i++)
		if (e->bag[i] && e->bag_epoch[i] + 2 <= epoch) {
			e->pending -= free_bag(e->bag[i]);
			e->bag[i] = NULL;
		}
}

/* Advance the global epoch if every reader has caught up with it. */
static void try_advance(struct up__ebr_slot *self)
{
	uint64_t ep = __atomic_load_n(&up__ebr_epoch, __ATOMIC_ACQUIRE);
	/* Readers entered with a plain store: make those stores visible (and
	 * order their later loads after them) before looking. */
	if (!up__ebr_fenced)
		membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (int i = 0; i < nslots; i++) {
		uint64_t a = __atomic_load_n(&up__ebr_slots[i].active, __ATOMIC_ACQUIRE);
		if ((a & 1) && a >> 1 != ep)
			goto out;
	}
	__atomic_compare_exchange_n(&up__ebr_epoch, &ep, ep + 1, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
out:
	collect(self, __atomic_load_n(&up__ebr_epoch, __ATOMIC_ACQUIRE));
}

void up__ebr_retire(int sched, struct up__retired *r)
{
	struct up__ebr_slot *e = &up__ebr_slots[sched];
	uint64_t ep = __atomic_load_n(&up__ebr_epoch, __ATOMIC_ACQUIRE);
	int i = (int)(ep % 3);
	if (e->bag[i] && e->bag_epoch[i] != ep) {
		/* That bag is from epoch ep - 3 or older: safe. */
		e->pending -= free_bag(e->bag[i]);
		e->bag[i] = NULL;
	}
	e->bag_epoch[i] = ep;
	r->next = e->bag[i];
	e->bag[i] = r;
	if (++e->pending >= e->next_try) {
		try_advance(e);
		e->next_try = e->pending + BATCH;
	}
}

void up__ebr_fini(void)
{
	struct up__ebr_slot *s = up__ebr_slots;
	if (!s)
		return;
	for (int i = 0; i < nslots; i++)
		for (int b = 0; b < 3; b++)
			free_bag(s[i].bag[b]);
	free(s);
	up__ebr_slots = NULL;
	nslots = 0;
}
