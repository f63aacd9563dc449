/*
 * proc.c - spawning, running and reaping processes; their bump heap; pid
 * queries (see proc.h for the control block and who touches what).
 *
 * Spawn is the hot path of process creation: a slot from the scheduler's
 * warm cache, one page of control block and first stack frame, and a push
 * on a run queue.  No lock and no syscall unless the cache is empty (then
 * the node pool's lock, and for a never-used slot its guard page).
 */
#include "proc.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"
#include "fiber.h"
#include "node_mem.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"

#define KNOWN_FLAGS (UP_SPAWN_SCHEDULER | UP_SPAWN_NODE | UP_SPAWN_PRIORITIES | UP_SPAWN_LINK | \
		     UP_SPAWN_MONITOR | UP_SPAWN_COMPACT)

/* A heap block past the slot: an mmap of its own, or (for compact
 * processes, whose slot has no heap, and so that a million of them do not
 * need a million mappings) a node-local block (from_node). */
struct up__heap_map {
	struct up__heap_map *next;
	size_t size;
	bool from_node;
};

static void heap_map_free(struct up__heap_map *m)
{
	if (m->from_node)
		up__node_free(m, m->size);
	else
		munmap(m, m->size);
}

/* Compact heap blocks up to this size come from node memory. */
#define NODE_HEAP_MAX ((size_t)256 << 10)
#define COMPACT_HEAP_FIRST ((size_t)1 << 10)

/* The scheduler index for o, or -EINVAL. */
static int pick_scheduler(const struct up_spawn_opts *o, struct up__sched *self)
{
	unsigned f = o ? o->flags : 0;

	if (f & UP_SPAWN_SCHEDULER) {
		if (f & UP_SPAWN_NODE)
			return -EINVAL;
		return o->scheduler >= 0 && o->scheduler < up__rt.nsched ? o->scheduler : -EINVAL;
	}
	if (!(f & UP_SPAWN_NODE))
		return self ? self->index : 0;
	if (o->node < 0 || o->node >= up__rt.topo.nnodes)
		return -EINVAL;
	if (self && self->node == o->node)
		return self->index;
	for (int i = 0; i < up__rt.nsched; i++)
		if (up__rt.sched[i]->node == o->node)
			return i;
	return -EINVAL;
}

static int check_opts(const struct up_spawn_opts *o)
{
	if (!o)
		return 0;
	if ((o->flags & ~KNOWN_FLAGS) || o->mailboxes > UP_MAX_MAILBOXES ||
	    o->stack_size > up__regions.layout.stack_size ||
	    ((o->flags & UP_SPAWN_COMPACT) && o->stack_size))
		return -EINVAL;
	unsigned nmb = o->mailboxes ? o->mailboxes : 1;
	for (unsigned i = 0; i < UP_MAX_MAILBOXES; i++) {
		if (o->mailbox_limit[i] > UP_MAILBOX_LIMIT_MAX ||
		    o->mailbox_policy[i] > UP_MAILBOX_DROP_OLDEST)
			return -EINVAL;
		if (i >= nmb && (o->mailbox_limit[i] || o->mailbox_policy[i]))
			return -EINVAL;
	}
	return 0;
}

/* Mailbox indices by descending priority (stable: ties keep index order). */
static void order_mailboxes(struct up__proc *p, const struct up_spawn_opts *o)
{
	int prio[UP_MAX_MAILBOXES];
	for (unsigned i = 0; i < p->nmb; i++) {
		prio[i] = o && (o->flags & UP_SPAWN_PRIORITIES) ? o->priorities[i] : (int)i;
		p->order[i] = (uint8_t)i;
	}
	for (unsigned i = 1; i < p->nmb; i++)
		for (unsigned j = i; j > 0 && prio[p->order[j]] > prio[p->order[j - 1]]; j--) {
			uint8_t t = p->order[j];
			p->order[j] = p->order[j - 1];
			p->order[j - 1] = t;
		}
}

static up_pid spawn(struct up__sched *self, up_fn fn, void *arg, struct up_spawn_opts *o)
{
	int r;

	if (!fn)
		return -EINVAL;
	if ((r = check_opts(o)) != 0)
		return r;
	unsigned sigflags = o ? o->flags & (UP_SPAWN_LINK | UP_SPAWN_MONITOR) : 0;
	if (sigflags && !(self && self->current))
		return -EINVAL; /* link/monitor need a spawning process */
	/* A compact caller's locals are overwritten while it waits: the
	 * child would read another process's frames. */
	if (self && self->current && self->current->compact && up__sstack_holds(&self->sstack, arg, 1))
		return -EFAULT;
	bool compact = o && (o->flags & UP_SPAWN_COMPACT);
	int ti = pick_scheduler(o, self);
	if (ti < 0)
		return ti;
	struct up__sched *t = up__rt.sched[ti];
	/* Another scheduler's process is handed over by a request. */
	struct up__msg *req = NULL;
	if (t != self && !(req = UP_FAULT_PTR(UP__F_REMOTE_REQ, up__msg_alloc(self ? &self->msgs : NULL, t->node))))
		return -ENOMEM;
	if ((r = up__live_acquire(self)) != 0)
		goto fail;
	int64_t slot = up__region_take(self ? &self->regions : NULL, t->node,
				       compact ? UP__CLASS_COMPACT : UP__CLASS_STACK);
	if (slot < 0) {
		up__live_undo(self);
		r = (int)slot;
		goto fail;
	}
	if (up_unlikely(self && self->regions.ask_help))
		up__sched_ask_help(self);
	up_pid pid = up__make_pid((uint32_t)slot, up__region_next_gen((uint32_t)slot));
	struct up__proc *p = up__slot_proc((uint32_t)slot);

	/* Private part: the scheduler will own it.  Only what a fresh process
	 * needs is written (a recycled slot's stale fields are overwritten). */
	__atomic_store_n(&p->pid, pid, __ATOMIC_RELAXED); /* the watchdog reads it */
	p->slot = (uint32_t)slot;
	p->state = UP__P_FREE;
	p->timed_out = 0;
	p->killed = 0;
	p->pinned = o && (o->flags & UP_SPAWN_SCHEDULER);
	p->reds = 0;
	p->timer_idx = 0;
	p->fn = fn;
	p->arg = arg;
	p->nmb = (uint8_t)(o && o->mailboxes ? o->mailboxes : 1);
	for (unsigned i = 0; i < p->nmb; i++) {
		p->queue[i].head = p->queue[i].tail = NULL;
		p->queue[i].len = 0;
	}
	order_mailboxes(p, o);
	up__mailbox_limits_init(p, o);
	char *base = up__slot_base((uint32_t)slot);
	p->compact = compact;
	p->heap_cur = base;
	p->heap_end = compact ? base : base + up__regions.layout.heap_size;
	p->heap_used = 0;
	p->heap_slot_used = 0;
	p->heap_limit = o ? o->heap_limit : 0;
	p->heap_maps = NULL;
	p->mark_seq = 0;
	p->held = NULL;
	p->dict = NULL;
	p->tables = NULL;
	memset(p->mark, 0, sizeof(p->mark));
	memset(&p->io, 0, sizeof(p->io));
	memset(&p->sig, 0, sizeof(p->sig));
	p->named = 0;
	p->asan_fake_stack = NULL;
	p->exit_reason = 0;
	p->tsan_fiber = up__fiber_tsan_create();
	p->save_block = NULL;
	p->save_cap = 0;
	if (compact) {
		/* Its first frame is built on the shared stack when it first
		 * runs (shared_stack.c). */
		p->vg_stack = 0;
		p->sp = NULL;
	} else {
		char *stack_lo = up__slot_stack_lo((uint32_t)slot);
		p->vg_stack = up__fiber_stack_register(stack_lo, (char *)p);
		p->sp = up__fiber_init((char *)p, up__proc_main, p);
	}
	if (sigflags && (r = up__signal_spawn(self->current, p, sigflags, &o->monitor_ref)) != 0) {
		/* Not published yet: give everything back. */
		up__fiber_stack_deregister(p->vg_stack);
		up__fiber_tsan_destroy(p->tsan_fiber);
		p->tsan_fiber = NULL;
		size_t dirty = p->heap_maps ? p->heap_slot_used : (size_t)(p->heap_cur - base);
		while (p->heap_maps) {
			struct up__heap_map *m = p->heap_maps;
			p->heap_maps = m->next;
			heap_map_free(m);
		}
		up__region_give(&self->regions, p->slot, dirty);
		up__live_undo(self);
		goto fail;
	}

	/* Shared part, then publish: a sender checks the tag (acquire) before
	 * it reads nmb or sched. */
	__atomic_store_n(&p->sched, t, __ATOMIC_RELAXED);
	__atomic_store_n(&p->nmb, p->nmb, __ATOMIC_RELAXED);
	/* Inboxes start marked WAITING: a first receive that finds nothing
	 * parks without a locked instruction (a mark is harmless while the
	 * process runs: at most a spurious wake-up). */
	for (unsigned i = 0; i < p->nmb; i++) {
		p->inbox[i].ptr = UP__INBOX_WAITING;
		__atomic_store_n(&p->inbox[i].tag, (uint64_t)pid, __ATOMIC_RELEASE);
	}
	if (self)
		UP__STAT(self, spawns, 1);
	if (t == self) {
		up__sched_add_new(self, p);
	} else {
		req->kind = UP__MSG_SPAWN;
		req->word = 0; /* placed here, not given by a peer */
		req->body = p;
		up__sched_post(t, req);
	}
	if (self)
		up__charge(self, 10);
	return pid;
fail:
	if (req)
		up__msg_free(self ? &self->msgs : NULL, req);
	return r;
}

up_pid up_spawn_opt(up_fn fn, void *arg, struct up_spawn_opts *o)
{
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	up_pid r = spawn(self, fn, arg, o);
	up__rt_leave(self);
	return r;
}

up_pid up_spawn(up_fn fn, void *arg)
{
	return up_spawn_opt(fn, arg, NULL);
}

static inline struct up__proc *current(void)
{
	struct up__sched *s = up__self_sched;
	return s ? s->current : NULL;
}

void up__proc_main(void *pcb)
{
	struct up__proc *p = pcb;
	up__sched_entered();
	if (!p->killed) {  /* killed before it ran: keep the signal's reason */
		p->fn(p->arg);
		p->exit_reason = UP_NORMAL;
	}
	up__sched_leave_dead(p);
}

up_pid up_self(void)
{
	struct up__proc *p = current();
	return p ? p->pid : UP_PID_NONE;
}

int up_yield(void)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	p->state = UP__P_RUNNABLE;
	up__sched_leave(p);
	return 0;
}

int up_consume(unsigned n)
{
	struct up__sched *s = up__self_sched;
	if (!s || !s->current)
		return -EPERM;
	if (n > UP_REDUCTIONS * 1000u)
		return -EINVAL;
	return up__charge(s, (int)n);
}

void up__proc_kill(struct up__sched *s, struct up__proc *p, up_term reason)
{
	if (p->killed)
		return; /* the first signal decides the reason */
	p->killed = 1;
	p->exit_reason = reason;
	switch (p->state) {
	case UP__P_WAITING:
	case UP__P_WAITING_IO:
	case UP__P_WAITING_ACCEPT:
	case UP__P_SLEEPING:
		up__sched_make_runnable(s, p);
		break;
	default: /* runnable or new: it dies when it is next switched to */
		break;
	}
}

int up_alive(up_pid pid)
{
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	struct up__proc *p = up__pid_proc(pid);
	int r = p ? __atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) == (uint64_t)pid : -EINVAL;
	up__rt_leave(self);
	return r;
}

int up__region_node(up_pid pid)
{
	if (up_alive(pid) != 1)
		return -ESRCH;
	return up__regions.chunk[up__pid_slot(pid) >> UP__CHUNK_BITS]->node;
}

/* ------------------------------------------------------------------ heap */

static void *heap_grow(struct up__proc *p, size_t size)
{
	size_t last = p->heap_maps ? p->heap_maps->size
				   : p->compact ? COMPACT_HEAP_FIRST / 2 : up__regions.layout.heap_size;
	size_t want = size + sizeof(struct up__heap_map);
	size_t len = last * 2 > want ? last * 2 : want;
	struct up__heap_map *m;
	bool from_node = p->compact && len <= NODE_HEAP_MAX;
	if (from_node) {
		len = (len + 15) & ~(size_t)15;
		m = UP_FAULT_PTR(UP__F_HEAP_MAP, up__local_alloc(len));
		if (!m)
			return NULL;
	} else {
		len = (len + UP__PAGE - 1) & ~(UP__PAGE - 1);
		m = UP_FAULT_MAP(UP__F_HEAP_MAP, mmap(NULL, len, PROT_READ | PROT_WRITE,
						      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
		if (m == MAP_FAILED)
			return NULL;
	}
	if (!p->heap_maps)
		p->heap_slot_used = (size_t)(p->heap_cur - up__slot_base(p->slot));
	m->next = p->heap_maps;
	m->size = len;
	m->from_node = from_node;
	p->heap_maps = m;
	p->heap_cur = (char *)m + ((sizeof(*m) + 15) & ~(size_t)15);
	p->heap_end = (char *)m + len;
	char *r = p->heap_cur;
	p->heap_cur += size;
	return r;
}

/*
 * p's heap would pass its heap_limit: p ends with reason heap_limit (unless
 * an earlier signal already decided its end).  The allocation fails, so the
 * library code that asked unwinds normally; p dies at its next switch (its
 * budget is spent, so even a send makes it yield).  up_alloc ends the
 * caller at once instead.
 */
static void *over_limit(struct up__proc *p)
{
	struct up__sched *s = up__self_sched;
	up__proc_kill(s, p, UP_HEAP_LIMIT);
	if (s->current == p)
		s->budget = 0;
	return NULL;
}

void *up_alloc(size_t size)
{
	struct up__proc *p = current();
	if (!p)
		return NULL;
	void *r = up__heap_alloc(p, size);
	if (up_unlikely(!r && p->killed))
		up__sched_leave_dead(p); /* heap_limit (or an earlier signal) */
	return r;
}

void *up__heap_alloc(struct up__proc *p, size_t size)
{
	if (size == 0 || size > ((size_t)1 << 46))
		return NULL;
	if (up_unlikely(p->heap_limit && p->heap_used + ((size + 15) & ~(size_t)15) > p->heap_limit))
		return over_limit(p);
	return up__heap_alloc_nolimit(p, size);
}

void *up__heap_alloc_nolimit(struct up__proc *p, size_t size)
{
	if (size == 0 || size > ((size_t)1 << 46))
		return NULL;
	size = (size + 15) & ~(size_t)15;
	p->heap_used += size;
	if (up_likely((size_t)(p->heap_end - p->heap_cur) >= size)) {
		char *r = p->heap_cur;
		p->heap_cur += size;
		return r;
	}
	void *r = heap_grow(p, size);
	if (!r)
		p->heap_used -= size;
	return r;
}

/* A heap mark is a record allocated at the mark: reset returns the bump
 * pointer to it, after unmapping heap mappings made since. */
#define MARK_MAGIC 0x75706d61726b2121ull

struct mark {
	uint64_t magic;
	size_t used;     /* heap_used before the mark */
	uint64_t seq;    /* tells a mark from a newer one at the same address */
	uint64_t pad;
};
#define MARK_SEQ_SHIFT 48

long up_heap_mark(void)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	size_t used = p->heap_used;
	struct mark *m = up__heap_alloc(p, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->magic = MARK_MAGIC;
	m->used = used;
	/* User addresses have 47 bits: the sequence rides in bits 48..62
	 * (15 bits: bit 63 would make the mark negative, an error). */
	m->seq = ++p->mark_seq & 0x7fff;
	return (long)((uintptr_t)m | (uintptr_t)m->seq << MARK_SEQ_SHIFT);
}

int up_heap_reset(long mark)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	uintptr_t m_addr = (uintptr_t)mark & (((uintptr_t)1 << MARK_SEQ_SHIFT) - 1);
	uint64_t seq = (uintptr_t)mark >> MARK_SEQ_SHIFT;
	char *m = (char *)m_addr;
	if (mark < 0)
		return -EINVAL;
	/* Find the region holding the mark: the newest mapping first.  The
	 * check is on integers: a bogus mark must not be pointer arithmetic. */
	struct up__heap_map *keep = p->heap_maps;
	char *base = up__slot_base(p->slot);
	char *slot_heap_end = p->compact ? base : base + up__regions.layout.heap_size;
	for (;;) {
		uintptr_t lo = (uintptr_t)(keep ? (char *)keep : base);
		uintptr_t hi = (uintptr_t)(keep ? (char *)keep + keep->size : slot_heap_end);
		uintptr_t cur = keep == p->heap_maps ? (uintptr_t)p->heap_cur : hi;
		if (m_addr >= lo && m_addr <= cur && cur - m_addr >= sizeof(struct mark))
			break;
		if (!keep)
			return -EINVAL;
		keep = keep->next;
	}
	if ((m_addr & 15) || ((struct mark *)m)->magic != MARK_MAGIC ||
	    ((struct mark *)m)->seq != seq)
		return -EINVAL;
	while (p->heap_maps != keep) {
		struct up__heap_map *h = p->heap_maps;
		p->heap_maps = h->next;
		heap_map_free(h);
	}
	p->heap_used = ((struct mark *)m)->used;
	((struct mark *)m)->magic = 0;
	p->heap_cur = m;
	p->heap_end = keep ? (char *)keep + keep->size : slot_heap_end;
	return 0;
}

void *up__side_alloc(struct up__proc *p, size_t size)
{
	if (p->heap_limit && p->heap_used + size > p->heap_limit)
		return over_limit(p);
	void *b = UP_FAULT_PTR(UP__F_SIDE_ALLOC, up__local_alloc(size));
	if (b)
		p->heap_used += size;
	return b;
}

void up__side_free(struct up__proc *p, void *b, size_t size)
{
	up__node_free(b, size);
	p->heap_used -= size;
}

int up__side_grow(struct up__proc *p, void **a, uint32_t n, uint32_t *cap, size_t elem)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 4;
	void *b = up__side_alloc(p, c * elem);
	if (!b)
		return -ENOMEM;
	if (n)
		memcpy(b, *a, n * elem);
	if (*a)
		up__side_free(p, *a, *cap * elem);
	*a = b;
	*cap = c;
	return 0;
}

/* ------------------------------------------------------------------ reap */

static void free_list(struct up__sched *s, struct up__msg *m)
{
	while (m && m != UP__INBOX_WAITING) {
		struct up__msg *n = m->next;
		up__msg_release(s, m);
		m = n;
	}
}

void up__proc_reap(struct up__sched *s, struct up__proc *p)
{
	/* Close every inbox: after this no sender can push (tag 0).  Signals
	 * still in mailbox 0's inbox are answered by up__signal_exit. */
	struct up__msg *pending = NULL;
	for (unsigned i = 0; i < p->nmb; i++) {
		struct up__pair cur = up__pair_peek(&p->inbox[i]);
		while (!up__dwcas(&p->inbox[i], &cur, NULL, 0))
			;
		UP_ASSERT(cur.tag == (uint64_t)p->pid);
		if (i == 0)
			pending = cur.ptr;
		else
			free_list(s, cur.ptr);
		free_list(s, p->queue[i].head);
		p->queue[i].head = p->queue[i].tail = NULL;
	}
	/* Descriptors first: whoever hears of the death (a supervisor about
	 * to restart a listener on the same port) finds them closed. */
	int zombie = up__io_exit(s, p);
	/* Its tables are gone (or with their heirs) before anyone hears of
	 * the death.  The tag is cleared above: a give-away that set the flag
	 * after this load saw the process dead (see table.c). */
	if (__atomic_load_n(&p->tables, __ATOMIC_SEQ_CST))
		up__table_exit(s, p);
	up__signal_exit(s, p, pending);
	while (p->held) {
		struct up__held *h = p->held;
		p->held = h->next;
		up__msg_release(s, (struct up__msg *)h - 1);
	}
	if (p->timer_idx)
		up__timer_remove(&s->timers, p);
	/* Its frames are dead now: the shared stack is free (and clean for
	 * ASan) even while it stays a zombie. */
	if (p->compact)
		up__sstack_forget(&s->sstack, p);
	if (zombie) {
		p->state = UP__P_ZOMBIE;
		return;
	}
	up__proc_release(s, p);
}

void up__proc_release(struct up__sched *s, struct up__proc *p)
{
	up__signal_free(p);
	up__dict_free(p);
	up__io_free(p);
	size_t heap_dirty = p->heap_maps ? p->heap_slot_used
					 : (size_t)(p->heap_cur - up__slot_base(p->slot));
	while (p->heap_maps) {
		struct up__heap_map *m = p->heap_maps;
		p->heap_maps = m->next;
		heap_map_free(m);
	}
	up__fiber_tsan_destroy(p->tsan_fiber); /* it left for good: not current */
	p->tsan_fiber = NULL;
	if (p->compact) {
		heap_dirty = 0; /* its stack was forgotten at reap */
	} else {
		up__fiber_stack_deregister(p->vg_stack);
		char *stack_lo = up__slot_stack_lo(p->slot);
		up__fiber_stack_reset(stack_lo, (size_t)((char *)p - stack_lo));
		/* A warm slot keeps the pages its process touched; one that
		 * overflowed touched them all: give those back (all but the
		 * control block's). */
		if (p->exit_reason == UP_STACK_OVERFLOW)
			(void)madvise(stack_lo, (size_t)(((uintptr_t)p & ~(UP__PAGE - 1)) - (uintptr_t)stack_lo),
				      MADV_DONTNEED);
	}

	up__sched_disown(s, p);
	p->state = UP__P_FREE;
	UP__STAT(s, exits, 1);
	up__live_release(s);
	up__region_give(&s->regions, p->slot, heap_dirty);
	if (up_unlikely(s->regions.ask_help))
		up__sched_ask_help(s);
}
