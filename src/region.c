/*
 * region.c - process memory regions: chunk reservations, node pools,
 * per-scheduler slot caches, guard pages, trimming (see region.h).
 *
 * Locking: chunk creation takes chunk_lock; a node pool takes its own lock;
 * a scheduler's cache is touched by its owner only.  The hot path (take and
 * give through a warm cache) takes no lock and makes no syscall.
 */
#include "region.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fault.h"
#include "node_mem.h"
#include "proc.h"
#include "up_config.h"
#if UP_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define REFILL 64      /* slots moved from a node pool to a cache at once */
#define TRIM_BATCH 256 /* slots trimmed and moved back at once */
#define COMPACT_SAVE 320 /* bytes of saved frames in a compact slot */

struct up__regions up__regions;

/* Generations per chunk index, for the OS process's life (see region.h). */
static uint32_t *gens[UP__MAX_CHUNKS];

__attribute__((destructor)) static void free_gens(void)
{
	for (uint32_t i = 0; i < UP__MAX_CHUNKS && gens[i]; i++) {
		free(gens[i]);
		gens[i] = NULL;
	}
}

static unsigned log2_ceil(size_t v)
{
	unsigned s = 0;
	while (((size_t)1 << s) < v)
		s++;
	return s;
}

int up__regions_init(size_t stack_size, size_t heap_size, size_t proc_size)
{
	struct up__region_layout *l = &up__regions.layout;
	size_t top;

	memset(&up__regions, 0, sizeof(up__regions));
	pthread_mutex_init(&up__regions.chunk_lock, NULL);
	for (int c = 0; c < UP__CLASSES; c++)
		for (int i = 0; i < 64; i++)
			pthread_mutex_init(&up__regions.pool[c][i].lock, NULL);
	l->proc_size = (proc_size + 63) & ~(size_t)63;
	/* Above the stack: the control block and its colour offsets. */
	top = l->proc_size + (UP__COLORS << 6);
	l->stack_size = stack_size;
	l->slot_shift = log2_ceil(heap_size + UP__PAGE + stack_size + top);
	l->slot_size = (size_t)1 << l->slot_shift;
	/* The heap takes what the power-of-two rounding leaves (>= asked),
	 * page-aligned so the guard page is one. */
	l->heap_size = (l->slot_size - UP__PAGE - stack_size - top) & ~(UP__PAGE - 1);
	/* A compact slot: the block and 320 bytes of saved frames (a process
	 * blocked in a receive leaves about 280; the frames of one parked
	 * deeper spill into a block: shared_stack.c). */
	l->save_size = COMPACT_SAVE;
	l->compact_size = l->proc_size + COMPACT_SAVE;
	up__regions.guard_supported = true;
	/* Batched madvise of fresh stack slots (prepare_stack_slots).  Not
	 * under Valgrind, which does not know process_madvise. */
	up__regions.self_pidfd = -1;
#if defined(SYS_pidfd_open) && defined(SYS_process_madvise)
#if UP_HAVE_VALGRIND_H
	if (!RUNNING_ON_VALGRIND)
#endif
		up__regions.self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#endif
	up__regions.bulk_ok = up__regions.self_pidfd >= 0;
	return 0;
}

void up__regions_fini(void)
{
	for (uint32_t i = 0; i < up__regions.nchunks; i++) {
		struct up__chunk *ch = up__regions.chunk[i];
		munmap(ch->base, UP__CHUNK_SLOTS * ch->slot_size);
		free(ch);
		up__regions.chunk[i] = NULL;
	}
	for (int c = 0; c < UP__CLASSES; c++)
		for (int i = 0; i < 64; i++) {
			free(up__regions.pool[c][i].free);
			free(up__regions.pool[c][i].pend);
			pthread_mutex_destroy(&up__regions.pool[c][i].lock);
		}
	pthread_mutex_destroy(&up__regions.chunk_lock);
	up__regions.nchunks = 0;
	if (up__regions.self_pidfd >= 0)
		close(up__regions.self_pidfd);
	up__regions.self_pidfd = -1;
}

/* A new chunk of class cls for node; caller holds the node pool's lock.
 * 0 or -errno. */
static int chunk_new(struct up__node_pool *pool, int node, int cls)
{
	const struct up__region_layout *l = &up__regions.layout;
	size_t slot_size = cls == UP__CLASS_COMPACT ? l->compact_size : l->slot_size;
	/* Stack slots aligned to their (power of two) size, so a slot never
	 * straddles a huge page boundary unevenly; compact ones to a page. */
	size_t align = cls == UP__CLASS_COMPACT ? UP__PAGE : slot_size;
	size_t len = UP__CHUNK_SLOTS * slot_size;
	int err = 0;

	pthread_mutex_lock(&up__regions.chunk_lock);
	uint32_t ci = up__regions.nchunks;
	if (ci >= UP__MAX_CHUNKS) {
		err = -EAGAIN;
		goto out;
	}
	struct up__chunk *ch = calloc(1, sizeof(*ch));
	if (!gens[ci])
		gens[ci] = calloc(UP__CHUNK_SLOTS, sizeof(uint32_t));
	if (!ch || !gens[ci]) {
		free(ch);
		err = -ENOMEM;
		goto out;
	}
	ch->gen = gens[ci];
	/* Aligned to the slot size so a slot never straddles a huge page
	 * boundary unevenly; NORESERVE: only touched pages count. */
	char *raw = UP_FAULT_MAP(UP__F_CHUNK_MAP, mmap(NULL, len + align, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
	if (raw == MAP_FAILED) {
		free(ch);
		err = -ENOMEM;
		goto out;
	}
	char *base = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (base > raw)
		munmap(raw, (size_t)(base - raw));
	if (raw + len + align > base + len)
		munmap(base + len, (size_t)(raw + len + align - (base + len)));
	(void)madvise(base, len, MADV_NOHUGEPAGE); /* one page per idle process */
	(void)up__node_bind_range(base, len, node);
	ch->base = base;
	ch->slot_size = slot_size;
	ch->cls = cls;
	if (cls == UP__CLASS_COMPACT) {
		ch->proc_off = (uint32_t)l->save_size;
		ch->color_mask = 0;
	} else {
		ch->proc_off = (uint32_t)(slot_size - l->proc_size);
		ch->color_mask = UP__COLORS - 1;
	}
	ch->node = node;
	up__regions.chunk[ci] = ch;
	/* Publish: readers load nchunks (acquire) before chunk[]. */
	__atomic_store_n(&up__regions.nchunks, ci + 1, __ATOMIC_RELEASE);
	pool->fresh_next = ci << UP__CHUNK_BITS;
	pool->fresh_end = pool->fresh_next + UP__CHUNK_SLOTS;
	pool->prep_next = pool->fresh_next;
out:
	pthread_mutex_unlock(&up__regions.chunk_lock);
	return err;
}

/* 0, or -ENOMEM when the marker could not be installed (the slot stays
 * unguarded-and-unmarked: the next take of it tries again). */
static int guard_install(uint32_t slot)
{
	struct up__chunk *ch = up__regions.chunk[slot >> UP__CHUNK_BITS];
	uint32_t i = slot & (UP__CHUNK_SLOTS - 1);

	if (ch->cls == UP__CLASS_COMPACT)
		return 0; /* no stack: the shared one is guarded */
	/* The bitmap word is shared by 64 slots that may sit in the caches of
	 * different schedulers: atomic (the or is paid once per slot). */
	if (__atomic_load_n(&ch->guarded[i / 64], __ATOMIC_RELAXED) & (1ull << (i % 64)))
		return 0;
	/* Pre-6.13 kernels lack guard markers; an mprotect'ed page would split
	 * the mapping (two VMAs per process, the max_map_count limit), so
	 * without markers stacks are unguarded (documented in design.md).
	 * Any other failure (no memory for page tables) fails the spawn: a
	 * process must never run on a stack that silently lacks its guard. */
	if (__atomic_load_n(&up__regions.guard_supported, __ATOMIC_RELAXED) &&
	    UP_FAULT_SYS(UP__F_GUARD, madvise(up__slot_base(slot) + up__regions.layout.heap_size,
					      UP__PAGE, MADV_GUARD_INSTALL)) != 0) {
		if (errno != EINVAL)
			return -ENOMEM;
		__atomic_store_n(&up__regions.guard_supported, false, __ATOMIC_RELAXED);
	}
	__atomic_fetch_or(&ch->guarded[i / 64], 1ull << (i % 64), __ATOMIC_RELAXED);
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Never-used compact slots s[0..n) (consecutive but for chunk ends): their
 * pages are made resident with one madvise per run instead of a fault per
 * page; several slots share each page and all are used within the next few
 * spawns (a refill is REFILL slots: 24 pages).  Measured: 993 -> 875 ns per
 * compact spawn.  Best effort: a failure leaves the faults to happen. */
static void populate(const uint32_t *s, unsigned n)
{
	for (unsigned i = 0; i < n;) {
		unsigned j = i + 1;
		while (j < n && s[j] == s[j - 1] + 1 && (s[j] >> UP__CHUNK_BITS) == (s[i] >> UP__CHUNK_BITS))
			j++;
		uintptr_t lo = (uintptr_t)up__slot_base(s[i]) & ~(UP__PAGE - 1);
		uintptr_t hi = ((uintptr_t)up__slot_base(s[j - 1]) + up__slot_chunk(s[i])->slot_size +
				UP__PAGE - 1) & ~(UP__PAGE - 1);
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
		i = j;
	}
}

#define BULK_MAX 64

/* process_madvise(advice) of iov[0..n) on our own ranges: how many of them
 * (from the first) it covered; 0 when it cannot be used. */
static unsigned bulk_advise(struct iovec *iov, unsigned n, int advice)
{
#ifdef SYS_process_madvise
	long r = syscall(SYS_process_madvise, up__regions.self_pidfd, iov, (size_t)n, advice, 0u);
	if (r < 0) {
		if (errno == EINVAL || errno == EPERM || errno == ENOSYS || errno == EBADF)
			__atomic_store_n(&up__regions.bulk_ok, false, __ATOMIC_RELAXED); /* not here */
		return 0;
	}
	return (unsigned)((size_t)r / UP__PAGE);
#else
	(void)iov; (void)n; (void)advice;
	return 0;
#endif
}

/*
 * Fresh stack slots s[0..n) (n <= BULK_MAX) made ready in two system calls:
 * one process_madvise installs the guards not yet installed, one makes the
 * pages of their blocks resident.  Per slot, that was a guard madvise at
 * take and a page fault at the first run: ~2.0-2.9 us against 1.4-2.2 us
 * measured (pages 128 KiB apart, 64 a call).  Best effort: what it does
 * not do is done the old way (guard_install at take, the fault).  Not
 * while faults are injected: the guard's fault site stays at the take.
 */
static void prepare_stack_slots(const uint32_t *s, unsigned n)
{
	struct iovec iov[BULK_MAX];
	uint32_t at[BULK_MAX];
	unsigned k = 0;

	if (!__atomic_load_n(&up__regions.bulk_ok, __ATOMIC_RELAXED) || up__fault_active())
		return;
	if (n > BULK_MAX) {
		prepare_stack_slots(s + BULK_MAX, n - BULK_MAX);
		n = BULK_MAX;
	}
	if (__atomic_load_n(&up__regions.guard_supported, __ATOMIC_RELAXED)) {
		for (unsigned i = 0; i < n; i++) {
			struct up__chunk *ch = up__slot_chunk(s[i]);
			uint32_t j = s[i] & (UP__CHUNK_SLOTS - 1);
			if (__atomic_load_n(&ch->guarded[j / 64], __ATOMIC_RELAXED) & (1ull << (j % 64)))
				continue;
			iov[k].iov_base = up__slot_base(s[i]) + up__regions.layout.heap_size;
			iov[k].iov_len = UP__PAGE;
			at[k++] = s[i];
		}
		unsigned done = k ? bulk_advise(iov, k, MADV_GUARD_INSTALL) : 0;
		for (unsigned i = 0; i < done; i++) {
			struct up__chunk *ch = up__slot_chunk(at[i]);
			uint32_t j = at[i] & (UP__CHUNK_SLOTS - 1);
			__atomic_fetch_or(&ch->guarded[j / 64], 1ull << (j % 64), __ATOMIC_RELAXED);
		}
		if (done < k)
			return;
	}
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = up__slot_base(s[i]) + up__slot_chunk(s[i])->slot_size - UP__PAGE;
		iov[i].iov_len = UP__PAGE;
	}
	(void)bulk_advise(iov, n, MADV_POPULATE_WRITE);
}

/* Raise node's memory-work flag for its idle schedulers: true when this
 * call raised it (then wake one, up__sched_ask_help). */
static bool want_work(int node)
{
	int *w = &up__regions.mem_work[node];
	return !__atomic_load_n(w, __ATOMIC_RELAXED) && !__atomic_exchange_n(w, 1, __ATOMIC_SEQ_CST);
}

/*
 * Fresh stack slots are prepared ahead of the spawners by idle schedulers of
 * their node: guard installed, the page of the block and stack top
 * resident, PREP_STEP slots at a time, up to PREP_AHEAD slots (4 MiB) ahead
 * of the fresh cursor.  A fresh stack slot otherwise costs its spawner a
 * guard madvise and its first run a page fault, ~2 us together here, which
 * a peer with nothing to run pays instead (docs/design.md, the figures).
 * Compact slots are populated in bulk by their spawner, as before: when a
 * peer did it, their zeroed lines came from the other CPU's cache and the
 * spawn gained ~5%.
 *
 * prep_next (under the pool's lock) is where the preparers go on; one
 * that finds it fewer than PREP_LEAD slots ahead of the spawners jumps to
 * that lead (two threads faulting pages under one page table contend on
 * its lock).  Spawners take fresh slots regardless: preparing is
 * idempotent (a resident page stays, a guard installed twice is one
 * guard), so whoever reaches a slot first pays, and a spawner asks for
 * help when the prepared lead runs short.
 */
#define PREP_AHEAD 1024u
#define PREP_LEAD 128u
#define PREP_STEP 16u

/* One step of preparation for node: how many slots it readied. */
static unsigned prepare_step(int node)
{
	struct up__node_pool *pool = &up__regions.pool[UP__CLASS_STACK][node];
	pthread_mutex_lock(&pool->lock);
	/* Behind the spawners (or just asked): start PREP_LEAD slots ahead of
	 * them, leaving the next ones to them (two threads faulting in the
	 * same page table contend on its lock). */
	uint32_t lead = pool->fresh_next + PREP_LEAD;
	uint32_t a = pool->prep_next > lead ? pool->prep_next : lead;
	uint32_t b = a + PREP_STEP < pool->fresh_end ? a + PREP_STEP : pool->fresh_end;
	if (a >= b || a - pool->fresh_next >= PREP_AHEAD) {
		pthread_mutex_unlock(&pool->lock);
		return 0;
	}
	pool->prep_next = b;
	pthread_mutex_unlock(&pool->lock);
	uint32_t slot, batch[PREP_STEP];
	for (slot = a; slot < b; slot++)
		batch[slot - a] = slot;
	prepare_stack_slots(batch, b - a);
	for (slot = a; slot < b; slot++) {
		if (guard_install(slot) != 0) /* where the batch did not */
			break;                /* its spawner tries again (and fails the spawn) */
		if (!__atomic_load_n(&up__regions.bulk_ok, __ATOMIC_RELAXED)) {
			char *top = up__slot_base(slot) + up__slot_chunk(slot)->slot_size;
			(void)madvise(top - UP__PAGE, UP__PAGE, MADV_POPULATE_WRITE);
		}
	}
	return slot - a;
}

/* Move up to `want` slots of class cls of node's pool into out[]; returns
 * how many.  Sets *ask when fresh stack slots ran short of prepared ones. */
static unsigned pool_take(int node, int cls, uint32_t *out, unsigned want, bool *ask)
{
	struct up__node_pool *pool = &up__regions.pool[cls][node];
	unsigned n = 0;

	pthread_mutex_lock(&pool->lock);
	while (n < want && pool->nfree)
		out[n++] = pool->free[--pool->nfree];
	unsigned fresh = n;
	while (n < want) {
		if (pool->fresh_next == pool->fresh_end && chunk_new(pool, node, cls) != 0)
			break;
		out[n++] = pool->fresh_next++;
	}
	bool short_ = cls == UP__CLASS_STACK && n > fresh &&
		      pool->prep_next < pool->fresh_next + PREP_AHEAD / 2 &&
		      pool->prep_next < pool->fresh_end;
	pthread_mutex_unlock(&pool->lock);
	if (short_)
		*ask |= want_work(node);
	if (cls == UP__CLASS_COMPACT && n > fresh)
		populate(out + fresh, n - fresh);
	else if (n > fresh)
		prepare_stack_slots(out + fresh, n - fresh);
	return n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Return n slots of class cls to the kernel (coalescing neighbours into one
 * madvise; of compact slots, only the pages wholly inside a run) and to
 * their node pool.  Guard markers survive MADV_DONTNEED. */
static void trim_and_pool(int node, int cls, uint32_t *s, unsigned n)
{
	struct up__node_pool *pool = &up__regions.pool[cls][node];

	/* Usually sorted already (processes exit in the order they were
	 * spawned): check before paying for the sort. */
	for (unsigned i = 1; i < n; i++)
		if (s[i] < s[i - 1]) {
			qsort(s, n, sizeof(*s), cmp_u32);
			break;
		}
	for (unsigned i = 0; i < n;) {
		unsigned j = i + 1;
		while (j < n && s[j] == s[j - 1] + 1 &&
		       (s[j] >> UP__CHUNK_BITS) == (s[i] >> UP__CHUNK_BITS))
			j++;
		uintptr_t lo = (uintptr_t)up__slot_base(s[i]);
		uintptr_t hi = lo + (size_t)(j - i) * up__slot_chunk(s[i])->slot_size;
		lo = (lo + UP__PAGE - 1) & ~(UP__PAGE - 1);
		hi &= ~(UP__PAGE - 1);
		if (hi > lo)
			(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
		i = j;
	}
	pthread_mutex_lock(&pool->lock);
	if (pool->nfree + n > pool->cap) {
		size_t cap = pool->cap ? pool->cap * 2 : 4096;
		while (cap < pool->nfree + n)
			cap *= 2;
		uint32_t *f = realloc(pool->free, cap * sizeof(*f));
		if (!f) {
			/* Keep what fits; the rest of the slots stay unused until
			 * the runtime ends (their memory is already returned). */
			n = (unsigned)(pool->cap - pool->nfree);
		} else {
			pool->free = f;
			pool->cap = cap;
		}
	}
	/* Push in reverse so the lowest slots are taken first (locality). */
	for (unsigned i = n; i-- > 0;)
		pool->free[pool->nfree++] = s[i];
	pthread_mutex_unlock(&pool->lock);
}

/*
 * Trims go to idle schedulers too: a batch that overflows a scheduler's
 * warm cache is queued on its node's pool (up to PEND_MAX batches) and a
 * sleeping peer is woken; a scheduler with nothing to run returns it
 * (MADV_DONTNEED, 256 slots: 13 to 41 us of kernel time here, by class).
 * A full queue, or no buffer for it, means the trim is done at once, as
 * before.  The slots of a queued batch are in no cache and no pool: nobody
 * else touches them until it is trimmed.
 */
#define PEND_MAX 4

static bool trim_defer(int node, int cls, const uint32_t *s)
{
	struct up__node_pool *pool = &up__regions.pool[cls][node];
	bool queued = false;

	pthread_mutex_lock(&pool->lock);
	if (!pool->pend)
		pool->pend = malloc(PEND_MAX * TRIM_BATCH * sizeof(uint32_t));
	if (pool->pend && pool->npend < PEND_MAX) {
		memcpy(pool->pend + (size_t)pool->npend * TRIM_BATCH, s, TRIM_BATCH * sizeof(*s));
		__atomic_store_n(&pool->npend, pool->npend + 1, __ATOMIC_RELAXED); /* hint readers */
		queued = true;
	}
	pthread_mutex_unlock(&pool->lock);
	return queued;
}

/* Trim one queued batch of node, if any: how many slots. */
static unsigned trim_step(int node)
{
	for (int cls = 0; cls < UP__CLASSES; cls++) {
		struct up__node_pool *pool = &up__regions.pool[cls][node];
		uint32_t batch[TRIM_BATCH];
		if (!__atomic_load_n(&pool->npend, __ATOMIC_RELAXED))
			continue;
		pthread_mutex_lock(&pool->lock);
		unsigned n = pool->npend;
		if (n) {
			memcpy(batch, pool->pend + (size_t)(n - 1) * TRIM_BATCH, sizeof(batch));
			__atomic_store_n(&pool->npend, n - 1, __ATOMIC_RELAXED);
		}
		pthread_mutex_unlock(&pool->lock);
		if (n) {
			trim_and_pool(node, cls, batch, TRIM_BATCH);
			return TRIM_BATCH;
		}
	}
	return 0;
}

struct up__region_work up__region_idle_work(int node)
{
	struct up__region_work w = { 0, 0 };
	int *flag = &up__regions.mem_work[node];

	if (!__atomic_load_n(flag, __ATOMIC_RELAXED))
		return w;
	for (int look = 0; look < 2; look++) {
		if ((w.trimmed = trim_step(node)) || (w.prepared = prepare_step(node))) {
			if (look)  /* raised again after our clear: keep it up */
				__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
			return w;
		}
		/* Nothing: lower the flag, then look once more (a request
		 * made just before the store is seen now). */
		if (!look)
			__atomic_store_n(flag, 0, __ATOMIC_SEQ_CST);
	}
	return w;
}

int up__region_cache_init(struct up__region_cache *c, int node, unsigned warm_max)
{
	c->node = node;
	c->warm_max = warm_max;
	c->cap = warm_max + TRIM_BATCH + REFILL;
	c->ask_help = false;
	for (int k = 0; k < UP__CLASSES; k++)
		c->cls[k].slot = NULL;
	for (int k = 0; k < UP__CLASSES; k++) {
		c->cls[k].n = 0;
		c->cls[k].slot = up__local_alloc(c->cap * sizeof(uint32_t));
		if (!c->cls[k].slot) {
			up__region_cache_fini(c);
			return -ENOMEM;
		}
	}
	return 0;
}

void up__region_cache_fini(struct up__region_cache *c)
{
	for (int k = 0; k < UP__CLASSES; k++) {
		if (!c->cls[k].slot)
			continue;
		if (c->cls[k].n)
			trim_and_pool(c->node, k, c->cls[k].slot, c->cls[k].n);
		up__node_free(c->cls[k].slot, c->cap * sizeof(uint32_t));
		c->cls[k].slot = NULL;
		c->cls[k].n = 0;
	}
}

int64_t up__region_take(struct up__region_cache *c, int node, int cls)
{
	uint32_t slot;
	bool ask = false; /* without a cache, nobody to ask */

	if (c && c->node == node) {
		uint32_t *st = c->cls[cls].slot;
		unsigned n = c->cls[cls].n;
		if (up_unlikely(n == 0)) {
			n = pool_take(node, cls, st, REFILL, &c->ask_help);
			if (n == 0)
				return up__regions.nchunks >= UP__MAX_CHUNKS ? -EAGAIN : -ENOMEM;
			/* Lowest slot on top: spawns walk memory upwards. */
			for (unsigned i = 0; i < n / 2; i++) {
				uint32_t t = st[i];
				st[i] = st[n - 1 - i];
				st[n - 1 - i] = t;
			}
		}
		slot = st[--n];
		c->cls[cls].n = n;
	} else if (pool_take(node, cls, &slot, 1, &ask) != 1) {
		return up__regions.nchunks >= UP__MAX_CHUNKS ? -EAGAIN : -ENOMEM;
	}
	if (up_unlikely(guard_install(slot) != 0)) {
		up__region_give(c, slot, 0);
		return -ENOMEM;
	}
	return slot;
}

void up__region_give(struct up__region_cache *c, uint32_t slot, size_t heap_dirty)
{
	struct up__chunk *ch = up__slot_chunk(slot);
	int node = ch->node, cls = ch->cls;

	if (!c || c->node != node) {
		trim_and_pool(node, cls, &slot, 1);
		return;
	}
	/* A warm slot keeps its stack page; a large dirty heap goes back now so
	 * warm slots stay cheap. */
	if (heap_dirty > 4 * UP__PAGE)
		(void)madvise(up__slot_base(slot), (heap_dirty + UP__PAGE - 1) & ~(UP__PAGE - 1),
			      MADV_DONTNEED);
	uint32_t *st = c->cls[cls].slot;
	unsigned n = c->cls[cls].n;
	st[n++] = slot;
	if (up_unlikely(n >= c->warm_max + TRIM_BATCH)) {
		/* The bottom of the LIFO is the coldest: trim it (in place:
		 * trim_and_pool may sort the batch), or have it trimmed. */
		if (trim_defer(node, cls, st))
			c->ask_help |= want_work(node);
		else
			trim_and_pool(node, cls, st, TRIM_BATCH);
		memmove(st, st + TRIM_BATCH, (n - TRIM_BATCH) * sizeof(*st));
		n -= TRIM_BATCH;
	}
	c->cls[cls].n = n;
}

uint32_t up__region_next_gen(uint32_t slot)
{
	struct up__chunk *ch = up__regions.chunk[slot >> UP__CHUNK_BITS];
	uint32_t *g = &ch->gen[slot & (UP__CHUNK_SLOTS - 1)];
	/* The slot is free and owned by the caller: only it writes; the store
	 * is atomic because up_processes reads the table from any thread. */
	uint32_t n = *g + 1;
	if (n == 0)
		n = 1;
	__atomic_store_n(g, n, __ATOMIC_RELAXED);
	return n;
}
