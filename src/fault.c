/*
 * fault.c - the fault-injection machinery behind the hooks of fault.h: per
 * site hit counters and arming, for the sweep in tests/test_fault.c.  Empty
 * when the build has fault_injection off.
 */
#include "fault.h"

#if UP_FAULT_INJECTION

int up__fault_on;

struct site {
	uint64_t hits, fired; /* atomic */
	uint64_t from, to;    /* atomic: hits in [from, to) fail */
	int err;              /* atomic */
};

static struct site sites[UP__F_COUNT];

static const char *const names[UP__F_COUNT] = {
	[UP__F_CHUNK_MAP] = "chunk_map",
	[UP__F_GUARD] = "guard",
	[UP__F_HEAP_MAP] = "heap_map",
	[UP__F_NODE_ALLOC] = "node_alloc",
	[UP__F_MSG_NODE] = "msg_node",
	[UP__F_MSG_BUFFER] = "msg_buffer",
	[UP__F_COPY_STACK] = "copy_stack",
	[UP__F_SIDE_ALLOC] = "side_alloc",
	[UP__F_TIMER] = "timer",
	[UP__F_REMOTE_REQ] = "remote_req",
	[UP__F_SQE] = "sqe",
	[UP__F_WAKE_SQE] = "wake_sqe",
	[UP__F_SUBMIT] = "submit",
	[UP__F_CQE] = "cqe",
	[UP__F_ACCEPT_CQE] = "accept_cqe",
	[UP__F_SHORT_WRITE] = "short_write",
	[UP__F_RING_SETUP] = "ring_setup",
	[UP__F_SAVE_BLOCK] = "save_block",
};

int up__fault_slow(enum up__fault_site site)
{
	struct site *f = &sites[site];
	uint64_t h = __atomic_add_fetch(&f->hits, 1, __ATOMIC_RELAXED);
	uint64_t to = __atomic_load_n(&f->to, __ATOMIC_ACQUIRE);
	if (up_likely(h >= to || h < __atomic_load_n(&f->from, __ATOMIC_RELAXED)))
		return 0;
	__atomic_add_fetch(&f->fired, 1, __ATOMIC_RELAXED);
	int e = __atomic_load_n(&f->err, __ATOMIC_RELAXED);
	return e < 0 ? e : -ENOMEM;
}

void up__fault_disarm(enum up__fault_site site)
{
	__atomic_store_n(&sites[site].to, 0, __ATOMIC_RELEASE);
}

void up__fault_reset(void)
{
	for (int i = 0; i < UP__F_COUNT; i++) {
		up__fault_disarm(i);
		__atomic_store_n(&sites[i].hits, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sites[i].fired, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&up__fault_on, 1, __ATOMIC_SEQ_CST);
}

void up__fault_off(void)
{
	__atomic_store_n(&up__fault_on, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < UP__F_COUNT; i++)
		up__fault_disarm(i);
}

void up__fault_arm(enum up__fault_site site, uint64_t nth, uint64_t count, int err)
{
	struct site *f = &sites[site];
	up__fault_disarm(site);
	uint64_t from = __atomic_load_n(&f->hits, __ATOMIC_RELAXED) + (nth ? nth : 1);
	__atomic_store_n(&f->err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&f->from, from, __ATOMIC_RELAXED);
	__atomic_store_n(&f->to, count > UINT64_MAX - from ? UINT64_MAX : from + count,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&up__fault_on, 1, __ATOMIC_SEQ_CST);
}

uint64_t up__fault_hits(enum up__fault_site site)
{
	return __atomic_load_n(&sites[site].hits, __ATOMIC_RELAXED);
}

uint64_t up__fault_fired(enum up__fault_site site)
{
	return __atomic_load_n(&sites[site].fired, __ATOMIC_RELAXED);
}

const char *up__fault_name(enum up__fault_site site)
{
	return site < UP__F_COUNT && names[site] ? names[site] : "?";
}

#endif /* UP_FAULT_INJECTION */
