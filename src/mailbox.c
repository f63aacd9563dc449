/*
 * mailbox.c - sending and receiving: per-mailbox inboxes (lock-free MPSC),
 * the receiver's private queues, priorities, parking and waking.
 *
 * An inbox is a {head, tag} pair in the receiver's control block: a LIFO
 * stack of message nodes that senders on other threads push with one
 * 16-byte CAS, which succeeds only while tag == the receiver's pid.  The
 * receiver takes the whole stack with one CAS and reverses it onto its
 * private FIFO queue, so messages of one sender keep their order.  A dead
 * process's inboxes carry tag 0 and refuse every push (the sender frees its
 * node: nothing leaks).
 *
 * A sender on the receiver's own scheduler skips the inbox: it appends to
 * the private queue directly (same thread) after draining the inbox, so
 * older messages of a sender that changed scheduler stay ahead.
 *
 * Waiting and waking.  Whether a process waits is its scheduler's private
 * knowledge (proc->state), so:
 *  - receiver: for each awaited mailbox, leave a WAITING mark in the inbox
 *    ({NULL,pid} -> {WAITING,pid}; a mark left by an earlier wait is kept);
 *    if an inbox holds messages instead, do not wait; else state = WAITING
 *    and switch to the scheduler;
 *  - sender on the same scheduler: append, and if state == WAITING make the
 *    receiver runnable.  No atomic instruction at all;
 *  - sender on another thread: a push that replaced a WAITING mark posts a
 *    WAKE request (pid) to the receiver's scheduler, which makes the process
 *    runnable if it still waits.  The request is allocated before the push
 *    (when the inbox looked marked), so a wake is never lost to -ENOMEM;
 *  - the timer of a timed receive: the scheduler, if the process still waits.
 * A stale mark (left in a mailbox the receiver no longer awaits, or while it
 * runs) costs at most a spurious wake-up: receive loops until it has a
 * message or its deadline passed.
 *
 * Length limits (opt-in, per mailbox: mailbox_limit/mailbox_policy).  A
 * limited mailbox keeps limit[mb].count = pid generation << 32 | n, n the
 * messages pushed or queued and not yet taken.  A sender adds one with a CAS
 * that checks the generation (a sender holding a stale pid never touches a
 * newer process's count) and the limit: REJECT refuses the send when n is
 * at the limit; DROP_OLDEST accepts it, and the owner drops the oldest
 * queued messages while n is over the limit, whenever it drains the inbox
 * (a remote sender that takes n over the limit by a power of two posts a
 * WAKE so that the owner's scheduler drains and trims a busy receiver
 * too).  The owner subtracts one per message taken or dropped.  System
 * messages (EXIT of a trapping process, DOWN) are counted when they turn
 * into messages, never refused.  A mailbox without a limit pays one test of
 * p->limited, on the line every send reads anyway.
 */
#include <errno.h>

#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"
#include "term.h"
#include "dist.h"
#include "node_mem.h"
#include "fault.h"

#define QUEUE_PUNISH 1024

static inline struct up__proc *current(void)
{
	struct up__sched *s = up__self_sched;
	return s ? s->current : NULL;
}

static inline void append(struct up__proc *p, unsigned mb, struct up__msg *m)
{
	m->next = NULL;
	if (p->queue[mb].tail)
		p->queue[mb].tail->next = m;
	else
		p->queue[mb].head = m;
	p->queue[mb].tail = m;
	p->queue[mb].len++;
}

/* ------------------------------------------------------ length limits */

#define LIM_GEN(pid) (((uint64_t)(pid) >> UP__SLOT_BITS) << 32)
#define LIM_GEN_MASK (~(uint64_t)0xffffffffu)
#define LIM_HARD_MAX 0x7fffffffu  /* DROP_OLDEST: past this, refuse (n overflow) */

static inline int limited(const struct up__proc *p, unsigned mb)
{
	return __atomic_load_n(&p->limited, __ATOMIC_RELAXED) & (1u << mb);
}

void up__mailbox_limits_init(struct up__proc *p, const struct up_spawn_opts *o)
{
	uint8_t bits = 0;
	for (unsigned i = 0; o && i < p->nmb; i++) {
		if (!o->mailbox_limit[i])
			continue;
		bits |= (uint8_t)(1u << i);
		struct up__mb_limit *l = &p->limit[i];
		__atomic_store_n(&l->max, o->mailbox_limit[i], __ATOMIC_RELAXED);
		__atomic_store_n(&l->drop_oldest, o->mailbox_policy[i] == UP_MAILBOX_DROP_OLDEST,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&l->count, LIM_GEN(p->pid), __ATOMIC_RELAXED);
	}
	/* Published with the tag (release) after this. */
	__atomic_store_n(&p->limited, bits, __ATOMIC_RELAXED);
	p->marked = 0; /* spawn clears mark[] */
}

/* Count one more message into limited mailbox mb of pid (any thread).
 * Returns 0, how far over the limit the mailbox now is (> 0, DROP_OLDEST),
 * -EAGAIN (full, REJECT) or -ESRCH (pid is stale). */
static __attribute__((noinline)) long limit_add(struct up__proc *p, up_pid pid, unsigned mb)
{
	struct up__mb_limit *l = &p->limit[mb];
	const uint64_t gen = LIM_GEN(pid);
	uint64_t cur = __atomic_load_n(&l->count, __ATOMIC_RELAXED);
	for (;;) {
		if (up_unlikely((cur & LIM_GEN_MASK) != gen))
			return -ESRCH;
		/* Read after the generation: if the CAS below succeeds, these
		 * were the settings of pid's process (or of a slot's later
		 * process, whose count then refuses the CAS). */
		uint32_t max = __atomic_load_n(&l->max, __ATOMIC_RELAXED);
		uint32_t n = (uint32_t)cur;
		if (n >= max && (!__atomic_load_n(&l->drop_oldest, __ATOMIC_RELAXED) ||
				 n >= LIM_HARD_MAX))
			return -EAGAIN;
		if (__atomic_compare_exchange_n(&l->count, &cur, cur + 1, 1, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return n >= max ? (long)(n + 1 - max) : 0;
	}
}

/* A sender gives back the count of a message it could not deliver. */
static void limit_undo(struct up__proc *p, up_pid pid, unsigned mb)
{
	struct up__mb_limit *l = &p->limit[mb];
	uint64_t cur = __atomic_load_n(&l->count, __ATOMIC_RELAXED);
	while ((cur & LIM_GEN_MASK) == LIM_GEN(pid) &&
	       !__atomic_compare_exchange_n(&l->count, &cur, cur - 1, 1, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
}

/* Owner thread: a message of limited mailbox mb was taken or dropped, or a
 * system message joined it (+1). */
static inline void limit_owner_add(struct up__proc *p, unsigned mb, int64_t d)
{
	__atomic_add_fetch(&p->limit[mb].count, (uint64_t)d, __ATOMIC_RELAXED);
}

/* Owner thread: set the receive mark of mailbox mb (NULL: none), keeping
 * p->marked (its bit set iff the mark is) so that a receive reads mark[]
 * only when a mark is set: mark[] is a cache line of its own, p->marked
 * is on the line every receive reads anyway. */
static inline void set_mark(struct up__proc *p, unsigned mb, struct up__msg *m)
{
	p->mark[mb] = m;
	if (m)
		p->marked |= (uint8_t)(1u << mb);
	else
		p->marked &= (uint8_t)~(1u << mb);
}

/* Owner thread: drop the oldest messages of DROP_OLDEST mailbox mb while it
 * is over its limit.  Marks and selective-receive positions pointing at a
 * dropped node move to "nothing older" (the node was the queue's head). */
static __attribute__((noinline)) void trim(struct up__sched *s, struct up__proc *p, unsigned mb)
{
	struct up__mb_limit *l = &p->limit[mb];
	while (p->queue[mb].head &&
	       (uint32_t)__atomic_load_n(&l->count, __ATOMIC_RELAXED) > l->max) {
		struct up__msg *m = p->queue[mb].head;
		p->queue[mb].head = m->next;
		if (!m->next)
			p->queue[mb].tail = NULL;
		p->queue[mb].len--;
		if ((p->marked & (1u << mb)) && p->mark[mb] == m)
			set_mark(p, mb, NULL);
		if (p->seen[mb] == m)
			p->seen[mb] = NULL;
		limit_owner_add(p, mb, -1);
		up__msg_release(s, m);
	}
}

static inline int drops_oldest(const struct up__proc *p, unsigned mb)
{
	return (p->limited & (1u << mb)) && p->limit[mb].drop_oldest;
}

/* Queue message m, or act on it if it is a signal (mailbox 0 only). */
static inline void arrive(struct up__sched *s, struct up__proc *p, unsigned mb, struct up__msg *m)
{
	if (up_unlikely(up__msg_is_signal(m))) {
		if (!up__signal_handle(s, p, m))
			return;
		/* It became a message: it counts from now on. */
		if (p->limited & (1u << mb))
			limit_owner_add(p, mb, 1);
	}
	append(p, mb, m);
}

/* Move inbox mb's messages to the private queue, in arrival order, acting
 * on signals as they come. */
static __attribute__((noinline)) void drain_slow(struct up__proc *p, unsigned mb)
{
	struct up__pair cur = up__pair_peek(&p->inbox[mb]);
	/* Only this thread removes, so a non-empty inbox stays non-empty; and
	 * only this thread closes it, so its tag is p's pid (cur.tag: p->pid
	 * is on a cold line). */
	while (!up__dwcas(&p->inbox[mb], &cur, NULL, cur.tag))
		;
	struct up__msg *m = cur.ptr, *fifo = NULL;
	while (m) {
		struct up__msg *next = m->next;
		m->next = fifo;
		fifo = m;
		m = next;
	}
	struct up__sched *s = up__self_sched;
	while (fifo) {
		m = fifo;
		fifo = m->next;
		arrive(s, p, mb, m);
	}
	if (up_unlikely(drops_oldest(p, mb)))
		trim(s, p, mb);
}

/* The inbox holds messages (not NULL, not a WAITING mark)?  One load. */
static inline int inbox_has_mail(struct up__proc *p, unsigned mb)
{
	return (uintptr_t)__atomic_load_n(&p->inbox[mb].ptr, __ATOMIC_ACQUIRE) >
	       (uintptr_t)UP__INBOX_WAITING;
}

static inline void drain(struct up__proc *p, unsigned mb)
{
	if (inbox_has_mail(p, mb))
		drain_slow(p, mb);
}

void up__mailbox_drain(struct up__proc *p, unsigned mb)
{
	drain(p, mb);
	/* A WAKE may come from a sender that took a DROP_OLDEST mailbox over
	 * its limit: trim those even if the process is busy. */
	if (up_unlikely(p->limited))
		for (unsigned i = 0; i < p->nmb; i++)
			if (drops_oldest(p, i)) {
				drain(p, i);
				trim(up__self_sched, p, i);
			}
}

/* Drain inside a receive: an exit signal found there ends the caller. */
static inline void drain_live(struct up__proc *p, unsigned mb)
{
	drain(p, mb);
	if (up_unlikely(p->killed))
		up__sched_leave_dead(p);
}

/* Deliver m to mailbox mb of p (pid) on another thread: push onto its inbox.
 * 0, -ESRCH or -ENOMEM (m is then freed). */
static __attribute__((noinline)) int deliver_remote(struct up__sched *self, struct up__proc *p,
						    up_pid pid, unsigned mb, struct up__msg *m)
{
	struct up__sched *t = __atomic_load_n(&p->sched, __ATOMIC_RELAXED);
	struct up__msg_cache *c = self ? &self->msgs : NULL;

	struct up__msg *wake = NULL;
	/* Read before the push: once pushed, m is the receiver's (it may be
	 * taken and freed on its thread at once). */
	const int signal = up__msg_is_signal(m);
	int counted = 0, ask_trim = 0;
	if (up_unlikely(limited(p, mb)) && !signal) {
		long over = limit_add(p, pid, mb);
		if (over < 0) {
			up__msg_release(self, m);
			return (int)over;
		}
		counted = 1;
		ask_trim = over > 0 && (over & (over - 1)) == 0;
	}
	struct up__pair cur = up__pair_peek(&p->inbox[mb]);
	for (;;) {
		if (up_unlikely(cur.tag != (uint64_t)pid)) {
			if (wake)
				up__msg_free(c, wake);
			if (counted)
				limit_undo(p, pid, mb);
			up__msg_release(self, m);
			return -ESRCH;
		}
		if ((cur.ptr == UP__INBOX_WAITING || signal) && !wake) {
			wake = UP_FAULT_PTR(UP__F_REMOTE_REQ, up__msg_alloc(c, t->node));
			if (!wake) {
				if (counted)
					limit_undo(p, pid, mb);
				up__msg_release(self, m);
				return -ENOMEM;
			}
			continue;
		}
		m->next = cur.ptr == UP__INBOX_WAITING ? NULL : cur.ptr;
		if (up__dwcas(&p->inbox[mb], &cur, m, (uint64_t)pid))
			break;
	}
	/* A push onto a WAITING mark wakes the receiver; a signal always asks
	 * its scheduler to look (it must act even on a busy receiver). */
	if (cur.ptr == UP__INBOX_WAITING || signal) {
		wake->kind = UP__MSG_WAKE;
		wake->word = (uint64_t)pid;
		up__sched_post(t, wake);
	} else {
		if (wake)
			up__msg_free(c, wake);
		/* Over a DROP_OLDEST limit: have a busy receiver's scheduler
		 * trim it (best effort: its next receive trims anyway). */
		if (up_unlikely(ask_trim) && (wake = up__msg_alloc(c, t->node))) {
			wake->kind = UP__MSG_WAKE;
			wake->word = (uint64_t)pid;
			up__sched_post(t, wake);
		}
	}
	return 0;
}

/* Same-scheduler send into limited mailbox mb: count m in, dropping the
 * oldest messages (DROP_OLDEST), or refuse it (m is then freed). */
static __attribute__((noinline)) int limit_local(struct up__sched *self, struct up__proc *p,
						 up_pid pid, unsigned mb, struct up__msg *m)
{
	if (up__msg_is_signal(m))
		return 0; /* counted in arrive() if it becomes a message */
	long over = limit_add(p, pid, mb);
	if (over < 0) {
		up__msg_release(self, m);
		return (int)over;
	}
	if (over > 0)
		trim(self, p, mb);
	return 0;
}

/* Deliver m to mailbox mb of p (pid), which runs on this thread's scheduler
 * self (p->sched == self, read with acquire: a process given to this
 * scheduler by another, scheduler.c balancing, is read with the giver's
 * writes).  0 or -ESRCH/-EAGAIN (m is then freed).  The hot path: no atomic
 * at all. */
static inline __attribute__((always_inline)) int deliver_local(struct up__sched *self,
								struct up__proc *p, up_pid pid,
								unsigned mb, struct up__msg *m,
								int word)
{
	/* p's private part is this thread's; p cannot exit under us. */
	drain(p, mb);
	if (up_unlikely(p->limited & (1u << mb))) {
		int r = limit_local(self, p, pid, mb, m);
		if (r)
			return r;
	}
	if (word) /* known not to be a signal */
		append(p, mb, m);
	else
		arrive(self, p, mb, m);
	if (p->state == UP__P_WAITING)
		up__sched_make_runnable(self, p);
	/* Send punishment (as BEAM's): a sender filling a long queue pays
	 * more, so the receiver gets the CPU sooner and queues stay short (and
	 * their nodes cached). */
	if (up_unlikely(p->queue[mb].len > QUEUE_PUNISH))
		self->budget -= (int)(p->queue[mb].len / QUEUE_PUNISH);
	return 0;
}

/* Deliver m to mailbox mb of p (pid).  0 or -ESRCH/-ENOMEM (m is then
 * freed).  The same-scheduler path is the hot one: no atomic at all. */
static inline __attribute__((always_inline)) int deliver(struct up__sched *self, struct up__proc *p,
							  up_pid pid, unsigned mb, struct up__msg *m)
{
	if (__atomic_load_n(&p->sched, __ATOMIC_ACQUIRE) == self)
		return deliver_local(self, p, pid, mb, m, 0);
	return deliver_remote(self, p, pid, mb, m);
}

/* The control block of a send's target, without the runtime check (the
 * caller made it): the receiver's block, or NULL with *err set. */
static inline __attribute__((always_inline)) struct up__proc *target_live(up_pid pid,
									   unsigned mailbox,
									   int *err)
{
	struct up__proc *p = up__pid_proc(pid);
	if (up_unlikely(!p || mailbox >= UP_MAX_MAILBOXES)) {
		*err = -EINVAL;
		return NULL;
	}
	/* Acquire: pairs with spawn's release of the tag; nmb and sched are
	 * then those of this process. */
	if (up_unlikely(__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) != (uint64_t)pid)) {
		*err = -ESRCH;
		return NULL;
	}
	if (up_unlikely(mailbox >= __atomic_load_n(&p->nmb, __ATOMIC_RELAXED))) {
		*err = -EINVAL;
		return NULL;
	}
	return p;
}

/* Validate pid and mailbox for a send: the receiver's block, or NULL with
 * *err set. */
static struct up__proc *target(up_pid pid, unsigned mailbox, int *err)
{
	if (up_unlikely(!up__rt_ready())) {
		*err = -ESRCH;
		return NULL;
	}
	return target_live(pid, mailbox, err);
}

/* prefetcht0 of the 5 lines below p, in one asm statement: the compiler
 * would otherwise share these addresses with make_runnable's prefetches of
 * a compact process's save area (the same lines) and keep them in
 * registers, which costs the fast path a frame. */
static inline __attribute__((always_inline)) void prefetch_stack_top(const struct up__proc *p)
{
	__asm__ __volatile__("prefetcht0 -64(%0)\n\t"
			     "prefetcht0 -128(%0)\n\t"
			     "prefetcht0 -192(%0)\n\t"
			     "prefetcht0 -256(%0)\n\t"
			     "prefetcht0 -320(%0)"
			     : : "r"(p));
}

/* A word message: the payload travels in the node (body and size are
 * meaningless for this kind, msg.h). */
static inline void word_node(struct up__msg *m, uint64_t word)
{
	m->word = word;
	m->kind = UP__MSG_WORD;
}

/* A word send from a thread without a scheduler, to another scheduler's
 * process, or off the hot path's assumptions (self may be NULL). */
static __attribute__((noinline)) int send_word_slow(struct up__sched *self, struct up__proc *p,
						    up_pid pid, unsigned mailbox, uint64_t word)
{
	int node = __atomic_load_n(&p->sched, __ATOMIC_RELAXED)->node;
	struct up__msg *m = UP_FAULT_PTR(UP__F_MSG_NODE, up__msg_alloc(self ? &self->msgs : NULL, node));
	if (up_unlikely(!m))
		return -ENOMEM;
	word_node(m, word);
	int r = deliver(self, p, pid, mailbox, m);
	if (self && r == 0) {
		UP__STAT(self, msgs_sent, 1);
		up__charge(self, 1);
	}
	return r;
}

static __attribute__((noinline)) int send_word_guest(up_pid pid, unsigned mailbox, uint64_t word)
{
	if (!up__rt_enter(NULL)) /* a guest from outside the runtime? */
		return -ESRCH;
	int err;
	struct up__proc *p = target_live(pid, mailbox, &err);
	int r = p ? send_word_slow(NULL, p, pid, mailbox, word) : err;
	up__rt_leave(NULL);
	return r;
}

/* The budget of the sender ran out (up__charge's slow half). */
static __attribute__((noinline)) int send_yield(struct up__sched *self)
{
	if (self->current)
		up_yield();
	return 0;
}

/*
 * The hot path: a word from a process to a process of the same scheduler
 * whose inbox is empty and whose mailbox has no limit.  No atomic, and no
 * call but in tail position, so it needs no frame: anything else (another
 * scheduler, a refill of the node cache, messages in the inbox, a limit, a
 * yield) goes to a function of its own.  The receiver's node is this
 * scheduler's, so the node comes from its cache without a node test.
 */
int up_send_word_to(up_pid pid, unsigned mailbox, uint64_t word)
{
	struct up__sched *self = up__self_sched;
	if (up_unlikely(!self))
		return send_word_guest(pid, mailbox, word);
	if (up_unlikely(!up__rt_ready()))
		return -ESRCH;
	int err;
	struct up__proc *p = target_live(pid, mailbox, &err);
	if (up_unlikely(!p))
		return err;
	/* Acquire: a process given to this scheduler by another (scheduler.c,
	 * balancing) is read with the giver's writes. */
	if (up_unlikely(__atomic_load_n(&p->sched, __ATOMIC_ACQUIRE) != self ||
			inbox_has_mail(p, mailbox) || (p->limited & (1u << mailbox)) ||
			!self->msgs.free || up__fault_active()))
		return send_word_slow(self, p, pid, mailbox, word);
	/* The top of the receiver's stack, just below its block, is where a
	 * process waiting in a receive loop keeps the frames its switch back
	 * will touch: start their fetch now, alongside the block's own lines
	 * (make_runnable's prefetch from p->sp must wait for the line holding
	 * p->sp: two memory latencies in a row per ring hop).  Computed from
	 * p alone, so it starts at once.  A process parked deeper gets lines
	 * it may not need (5 lines: ring 155 -> 120 ns per hop; 3: 150, 8:
	 * 130).  The remote path does not: those lines are another CPU's. */
	prefetch_stack_top(p);
	struct up__msg *m = up__msg_alloc_own(&self->msgs);
	word_node(m, word);
	append(p, mailbox, m);
	if (p->state == UP__P_WAITING)
		up__sched_wake_local(self, p); /* p->sched == self: checked above */
	if (up_unlikely(p->queue[mailbox].len > QUEUE_PUNISH))
		self->budget -= (int)(p->queue[mailbox].len / QUEUE_PUNISH);
	UP__STAT(self, msgs_sent, 1);
	if (up_unlikely(--self->budget <= 0))
		return send_yield(self);
	return 0;
}

int up_send_word(up_pid pid, uint64_t word)
{
	return up_send_word_to(pid, 0, word);
}

static int send_term(struct up__sched *self, struct up__proc *p, up_pid pid, unsigned mailbox,
		     up_term t, unsigned kind, uint64_t *copied_words)
{
	int node = __atomic_load_n(&p->sched, __ATOMIC_RELAXED)->node;
	size_t head = sizeof(struct up__msg) + sizeof(struct up__held);
	int64_t words = up__term_words(t, (up__rt.max_message_size - head) / 8);
	if (words < 0)
		return (int)words;
	if (copied_words)
		*copied_words = (uint64_t)words;
	struct up__msg *m;
	if (words == 0) {
		/* An immediate travels in the node itself. */
		m = UP_FAULT_PTR(UP__F_MSG_NODE, up__msg_alloc(self ? &self->msgs : NULL, node));
		if (!m)
			return -ENOMEM;
		m->size = 0;
		m->body = NULL;
		m->word = t;
	} else {
		/* One allocation: node, held link, copy; on the receiver's node
		 * (through the thread's cache when that is the sender's). */
		size_t size = head + (size_t)words * 8;
		m = UP_FAULT_PTR(UP__F_MSG_BUFFER, self && self->node == node ? up__local_alloc(size)
										   : up__node_alloc(node, size));
		if (!m)
			return -ENOMEM;
		m->size = (uint32_t)size;
		m->body = (char *)m + head;
		m->word = up__term_copy(t, m->body);
		if (up__is_bad(m->word)) {
			int err = up_term_error(m->word);
			up__node_free(m, size);
			return err;
		}
	}
	m->kind = kind;
	return deliver(self, p, pid, mailbox, m);
}

static int send_to(struct up__sched *self, up_pid pid, unsigned mailbox, up_term t)
{
	int err;
	struct up__proc *p = target(pid, mailbox, &err);
	if (!p)
		return up__pid_is_remote(pid) ? up__dist_send(pid, mailbox, t) : err;
	uint64_t words = 0;
	int r = send_term(self, p, pid, mailbox, t, UP__MSG_TERM, &words);
	if (self && r == 0) {
		UP__STAT(self, msgs_sent, 1);
		/* A copy costs in proportion to its size (one reduction per 256
		 * bytes), so a sender of large terms yields before its copies
		 * pile up: buffers are then reused warm instead of faulted in. */
		up__charge(self, 1 + (int)(words < (1u << 20) ? words / 32 : 1u << 15));
	}
	return r;
}

int up_send_to(up_pid pid, unsigned mailbox, up_term t)
{
	if (up__is_bad(t))
		return -EINVAL;
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self)) /* a guest from outside the runtime? */
		return -ESRCH;
	int r = send_to(self, pid, mailbox, t);
	up__rt_leave(self);
	return r;
}

int up__signal_send(struct up__sched *self, up_pid to, unsigned kind, up_term t)
{
	int err;
	struct up__proc *p = target(to, 0, &err);
	if (up_unlikely(!p))
		return up__pid_is_remote(to) ? up__dist_signal(to, kind, t) : err;
	return send_term(self, p, to, 0, t, kind, NULL);
}

int up_send(up_pid pid, up_term t)
{
	return up_send_to(pid, 0, t);
}

/* Leave a WAITING mark in empty inbox mb ({NULL,pid} -> {WAITING,pid}).
 * 1 if a message came in instead.  Out of line: rare (a remote push or a
 * drain took the mark), and its CAS loop would enlarge the receive's frame. */
static __attribute__((noinline)) int park_mark(struct up__proc *p, unsigned mb)
{
	struct up__pair cur = up__pair_peek(&p->inbox[mb]);
	while (cur.ptr == NULL && /* cur.tag: p's pid, as in drain_slow */
	       !up__dwcas(&p->inbox[mb], &cur, UP__INBOX_WAITING, cur.tag))
		;
	return cur.ptr != NULL && cur.ptr != UP__INBOX_WAITING;
}

/* Wait until a message may have arrived in a mailbox of `mask` (or the
 * timer fired).  Returns at once if one is already there. */
static inline __attribute__((always_inline)) void park(struct up__proc *p, unsigned mask)
{
	for (unsigned mb = 0; mb < p->nmb; mb++) {
		if (!(mask & (1u << mb)))
			continue;
		/* Usually the mark of an earlier wait is still there: one load. */
		void *head = __atomic_load_n(&p->inbox[mb].ptr, __ATOMIC_ACQUIRE);
		if (up_likely(head == UP__INBOX_WAITING))
			continue;
		if (head != NULL || park_mark(p, mb))
			return; /* a message is in: no wait */
	}
	p->state = UP__P_WAITING;
	up__sched_leave(p);
}

/* Unlink node m (whose predecessor is prev, NULL for the head) from queue
 * mb and hand it to *out. */
static inline void take(struct up__sched *s, struct up__proc *p, unsigned mb, struct up__msg *prev,
			struct up__msg *m, struct up_msg *out)
{
	if (prev)
		prev->next = m->next;
	else
		p->queue[mb].head = m->next;
	if (p->queue[mb].tail == m)
		p->queue[mb].tail = prev;
	p->queue[mb].len--;
	if (up_unlikely(p->limited & (1u << mb)))
		limit_owner_add(p, mb, -1);
	if (up_unlikely(p->marked & (1u << mb)) && p->mark[mb] == m)
		set_mark(p, mb, prev); /* the mark moves to the older neighbour */
	out->mailbox = mb;
	out->_buf = NULL;
	if (m->kind == UP__MSG_TERM) {
		out->kind = UP_MSG_TERM;
		out->term = m->word;
		out->word = 0;
		if (up__msg_has_buffer(m)) {
			/* The copy stays the process's until up_msg_free/exit. */
			struct up__held *h = (struct up__held *)(m + 1);
			h->prev = NULL;
			h->next = p->held;
			if (p->held)
				p->held->prev = h;
			p->held = h;
			out->_buf = m;
			UP__STAT(s, msgs_recv, 1);
			return;
		}
	} else {
		out->kind = UP_MSG_WORD;
		out->word = m->word;
		out->term = 0;
	}
	up__msg_free(&s->msgs, m);
	UP__STAT(s, msgs_recv, 1);
}

static inline void view(const struct up__msg *m, unsigned mb, struct up_msg *v)
{
	v->mailbox = mb;
	v->_buf = NULL;
	v->kind = m->kind == UP__MSG_TERM ? UP_MSG_TERM : UP_MSG_WORD;
	v->word = v->kind == UP_MSG_WORD ? m->word : 0;
	v->term = v->kind == UP_MSG_TERM ? m->word : 0;
}

/* wait_more with a timeout (0: none at all). */
static __attribute__((noinline)) int wait_timed(struct up__sched *s, struct up__proc *p,
						unsigned mask, int64_t timeout_ns, int64_t *deadline)
{
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	if (!*deadline)
		*deadline = up__now_ns() + timeout_ns;
	if (p->timed_out || up__now_ns() >= *deadline)
		return -ETIMEDOUT;
	if (!p->timer_idx) {
		p->deadline = *deadline;
		if (up__timer_add(&s->timers, p) != 0)
			return -ENOMEM;
	}
	park(p, mask);
	return 0;
}

/* Park until the next message, or -ETIMEDOUT (deadline set on first use).
 * Waiting for ever parks inline: one frame less on the parked stack (fewer
 * cache lines for the switch back to touch). */
static inline __attribute__((always_inline)) int wait_more(struct up__sched *s,
							    struct up__proc *p, unsigned mask,
							    int64_t timeout_ns, int64_t *deadline)
{
	if (up_likely(timeout_ns == UP_INFINITY)) {
		park(p, mask);
		return 0;
	}
	return wait_timed(s, p, mask, timeout_ns, deadline);
}

static inline void receive_done(struct up__sched *s, struct up__proc *p)
{
	p->timed_out = 0;
	if (up_unlikely(p->timer_idx))
		up__timer_remove(&s->timers, p);
}

/*
 * The receive loop.  Without match: the head of the first non-empty awaited
 * mailbox in priority order.  With match: the first node that matches,
 * scanning each mailbox from where this call stopped looking (`seen`), or
 * from the mark.
 */
static int receive(unsigned mask, up_match_fn match, void *arg, struct up_msg *out,
		   int64_t timeout_ns, unsigned flags)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (!out || (timeout_ns < 0 && timeout_ns != UP_INFINITY) || (flags & ~UP_RECV_AFTER_MARK))
		return -EINVAL;
	struct up__sched *s = up__self_sched;
	/* Last node looked at per mailbox (NULL: none), in the control block
	 * so that a trim (DROP_OLDEST) can move it off a dropped node. */
	struct up__msg **seen = p->seen;
	int64_t deadline = 0;
	int r;

	if (match)
		for (unsigned i = 0; i < p->nmb; i++)
			seen[i] = flags & UP_RECV_AFTER_MARK ? p->mark[i] : NULL;
	up__charge(s, 1);
	for (;;) {
		for (unsigned i = 0; i < p->nmb; i++) {
			unsigned mb = p->order[i];
			if (!(mask & (1u << mb)))
				continue;
			drain_live(p, mb);
			if (!match) {
				if (p->queue[mb].head) {
					take(s, p, mb, NULL, p->queue[mb].head, out);
					r = 0;
					goto out;
				}
				continue;
			}
			struct up__msg *prev = seen[mb];
			struct up__msg *m = prev ? prev->next : p->queue[mb].head;
			for (; m; prev = m, m = m->next) {
				struct up_msg v;
				view(m, mb, &v);
				if (match(&v, arg)) {
					take(s, p, mb, prev, m, out);
					r = 0;
					goto out;
				}
			}
			seen[mb] = prev;
		}
		if ((r = wait_more(s, p, mask, timeout_ns, &deadline)) != 0)
			goto out;
	}
out:
	receive_done(s, p);
	return r;
}

/* Several mailboxes: take the oldest message of the highest-priority
 * non-empty one of mask; 0 if they are all empty.  Out of line: its loop
 * would enlarge the frame of every receive. */
static __attribute__((noinline)) int receive_scan(struct up__sched *s, struct up__proc *p,
						  unsigned mask, struct up_msg *out)
{
	for (unsigned i = 0; i < p->nmb; i++) {
		unsigned mb = p->order[i];
		if (!(mask & (1u << mb)))
			continue;
		drain_live(p, mb);
		struct up__msg *m = p->queue[mb].head;
		if (m) {
			take(s, p, mb, NULL, m, out);
			return 1;
		}
	}
	return 0;
}

/* The plain receive's loop (arguments checked).  Instantiated twice: with
 * timeout_ns == UP_INFINITY (the hot path, which then keeps no deadline
 * on its stack) and for the timed ones. */
static inline __attribute__((always_inline)) int receive_loop(struct up__sched *s,
							       struct up__proc *p, unsigned mask,
							       struct up_msg *out, int64_t timeout_ns)
{
	int64_t deadline = 0;
	int r;

	up__charge(s, 1);
	for (;;) {
		if (up_likely(p->nmb == 1)) {
			/* The usual process: one mailbox, which mask names
			 * (both callers see to it); no priority order. */
			drain_live(p, 0);
			struct up__msg *m = p->queue[0].head;
			if (m) {
				take(s, p, 0, NULL, m, out);
				receive_done(s, p);
				return 0;
			}
		} else if (receive_scan(s, p, mask, out)) {
			receive_done(s, p);
			return 0;
		}
		if ((r = wait_more(s, p, mask, timeout_ns, &deadline)) != 0) {
			receive_done(s, p);
			return r;
		}
	}
}

static __attribute__((noinline)) int receive_timed(struct up__sched *s, struct up__proc *p,
						   unsigned mask, struct up_msg *out,
						   int64_t timeout_ns)
{
	return receive_loop(s, p, mask, out, timeout_ns);
}

/* The plain receive: the oldest message of the highest-priority non-empty
 * mailbox of mask.  Inlined into its two callers (the hot path). */
static inline __attribute__((always_inline)) int receive_plain(struct up__sched *s,
								struct up__proc *p, unsigned mask,
								struct up_msg *out, int64_t timeout_ns)
{
	if (!out || (timeout_ns < 0 && timeout_ns != UP_INFINITY))
		return -EINVAL;
	if (timeout_ns != UP_INFINITY)
		return receive_timed(s, p, mask, out, timeout_ns);
	return receive_loop(s, p, mask, out, UP_INFINITY);
}

int up_recv(struct up_msg *msg, int64_t timeout_ns)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *p = s ? s->current : NULL;
	if (!p)
		return -EPERM;
	return receive_plain(s, p, ~0u, msg, timeout_ns);
}

int up_recv_from(unsigned mailbox, struct up_msg *msg, int64_t timeout_ns)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *p = s ? s->current : NULL;
	if (!p)
		return -EPERM;
	if (mailbox >= p->nmb)
		return -EINVAL;
	return receive_plain(s, p, 1u << mailbox, msg, timeout_ns);
}

int up_recv_match(up_match_fn match, void *arg, struct up_msg *msg, int64_t timeout_ns,
		  unsigned flags)
{
	if (!current())
		return -EPERM;
	if (!match)
		return -EINVAL;
	return receive(~0u, match, arg, msg, timeout_ns, flags);
}

int up_recv_mark(void)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	for (unsigned mb = 0; mb < p->nmb; mb++) {
		drain(p, mb);
		set_mark(p, mb, p->queue[mb].tail);
	}
	return 0;
}

int up_msg_free(struct up_msg *msg)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (!msg)
		return -EINVAL;
	struct up__msg *m = msg->_buf;
	if (!m)
		return 0;
	struct up__held *h = (struct up__held *)(m + 1);
	/* Only a buffer this process holds: its links must agree. */
	if (h->prev ? h->prev->next != h : p->held != h)
		return -EINVAL;
	if (h->next)
		h->next->prev = h->prev;
	if (h->prev)
		h->prev->next = h->next;
	else
		p->held = h->next;
	msg->_buf = NULL;
	msg->term = 0;
	up__msg_release(up__self_sched, m);
	return 0;
}

long up_mailbox_len(unsigned mailbox)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (mailbox >= p->nmb)
		return -EINVAL;
	drain(p, mailbox);
	return p->queue[mailbox].len;
}
