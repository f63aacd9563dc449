/*
 * scheduler.c - scheduler threads, run queues, the run loop, idle and wake
 * (see scheduler.h).
 *
 * Ownership: everything in struct up__sched above `remote_head` is touched by
 * the scheduler's own thread only (and by up_run's thread after the
 * scheduler thread has been joined).  remote_head and state are the only
 * shared words.
 *
 * The wake protocol (no lost wake-ups, no syscall for a busy scheduler):
 *   poster:   push a request on remote_head (seq_cst CAS); load state (seq_cst);
 *             if SLEEPING and the waker's exchange turns it AWAKE: write efd.
 *   sleeper:  store state = SLEEPING (seq_cst); load remote_head (seq_cst);
 *             non-empty -> AWAKE and run; else wait in io_uring_enter on the
 *             pending eventfd read.
 * Either the sleeper sees the push, or the waker sees SLEEPING (Dekker).
 */
#include "scheduler.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fault.h"
#include "fiber.h"
#include "node_mem.h"
#include <sys/mman.h>
#include "runtime.h"
#if UP_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#define RING_ENTRIES 256
#define POLL_EVERY 64   /* run-loop turns between looks at timers/remote */
/* Valgrind (3.19) does not count io_uring_enter among the syscalls that may
 * block: a thread waiting in it keeps Valgrind's lock, every other thread of
 * the program stops, and the wake-up never comes.  Under Valgrind a sleep is
 * cut into waits of at most this long. */
#define VALGRIND_WAIT_NS 1000000

__thread struct up__sched *up__self_sched;

/* ------------------------------------------------------------ run queue */

static inline struct up__proc *rq_pop(struct up__sched *s)
{
	struct up__proc *p = s->rq_head;
	if (p) {
		s->rq_head = p->run_next;
		if (!s->rq_head)
			s->rq_tail = NULL;
	}
	return p;
}

/*
 * The next process to run.  New processes (the spawn stack, LIFO) go before
 * the run queue (FIFO: woken and yielding processes), except every
 * RQ_SHARE-th pick, which takes the run queue: a tree of spawns runs depth
 * first (few processes alive at once, warm slots, no page faults), and a
 * woken process waits at most RQ_SHARE-1 new ones.
 */
#define RQ_SHARE 8
static inline struct up__proc *next_runnable(struct up__sched *s)
{
	struct up__proc *p = s->new_top;
	if (p && (++s->picks % RQ_SHARE != 0 || !s->rq_head)) {
		s->new_top = p->run_next;
		if (s->new_top)
			s->new_top->run_prev = NULL;
		else
			s->new_bottom = NULL;
		return p;
	}
	return rq_pop(s);
}

/*
 * Aging: a new process that has waited AGE_NS on the spawn stack moves to
 * the run queue, where it is served in FIFO order.  Without it, a spawner
 * that keeps the stack non-empty (a sliding window of short-lived children)
 * starves a process spawned earlier by someone else for as long as it
 * spawns.  The stack is doubly linked so its bottom (the oldest) is at hand:
 * a pass looks at one entry.  At most one process moves per AGE_NS, so a
 * spawn tree still runs depth first: moving every old entry (after 4 passes,
 * or after 20 ms on this loaded machine) made skynet breadth first (806,085
 * to 871,452 page faults against 534, 6.3 s of CPU against 0.76).  A process
 * buried under k older ones waits at most (k + 1) * AGE_NS.
 */
#define AGE_NS (20 * 1000000)

static void age_spawn_stack(struct up__sched *s)
{
	struct up__proc *p = s->new_bottom;
	if (!p || s->pass_ns - p->born_ns < AGE_NS || s->pass_ns - s->aged_ns < AGE_NS)
		return;
	s->aged_ns = s->pass_ns;
	s->new_bottom = p->run_prev;
	if (s->new_bottom)
		s->new_bottom->run_next = NULL;
	else
		s->new_top = NULL;
	rq_push(s, p);
}

void up__sched_kick(struct up__sched *s)
{
	if (__atomic_exchange_n(&s->state, UP__S_AWAKE, __ATOMIC_SEQ_CST) == UP__S_SLEEPING) {
		uint64_t one = 1;
		ssize_t r = write(s->efd, &one, sizeof(one));
		(void)r; /* cannot fail short of EAGAIN at 2^64-1 pending */
	}
}

void up__sched_ask_help(struct up__sched *s)
{
	s->regions.ask_help = false;
	/* The request (mem_work) was stored seq_cst: a peer going to sleep
	 * sees it in has_work, or we see it SLEEPING here (Dekker, as in
	 * up__sched_post).  One peer is enough. */
	for (unsigned i = 0; i < s->npeers; i++)
		if (__atomic_load_n(&s->peers[i]->state, __ATOMIC_SEQ_CST) == UP__S_SLEEPING) {
			UP__STAT(s, wakes_sent, 1);
			up__sched_kick(s->peers[i]);
			return;
		}
}

void up__sched_post(struct up__sched *t, struct up__msg *r)
{
	struct up__msg *h = __atomic_load_n(&t->remote_head, __ATOMIC_RELAXED);
	do {
		r->next = h;
	} while (!__atomic_compare_exchange_n(&t->remote_head, &h, r, true,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	/* seq_cst: pairs with the sleeper's seq_cst store of SLEEPING
	 * (Dekker): it sees our push, or we see SLEEPING. */
	if (__atomic_load_n(&t->state, __ATOMIC_SEQ_CST) == UP__S_SLEEPING) {
		if (up__self_sched)
			UP__STAT(up__self_sched, wakes_sent, 1);
		up__sched_kick(t);
	}
}

void up__sched_adopt(struct up__sched *s, struct up__proc *p)
{
	p->all_prev = NULL;
	p->all_next = s->all;
	if (s->all)
		s->all->all_prev = p;
	s->all = p;
	__atomic_store_n(&s->nprocs, s->nprocs + 1, __ATOMIC_RELAXED);
}

void up__sched_disown(struct up__sched *s, struct up__proc *p)
{
	if (p->all_prev)
		p->all_prev->all_next = p->all_next;
	else if (s->all == p)
		s->all = p->all_next;
	else
		return; /* never adopted (cleanup of a request never handled) */
	if (p->all_next)
		p->all_next->all_prev = p->all_prev;
	__atomic_store_n(&s->nprocs, s->nprocs - 1, __ATOMIC_RELAXED);
}

/* r->word of a SPAWN request: 0 for a spawn placed here, GIVEN for a
 * process (that has not run) from a busy peer (balancing, below). */
#define GIVEN 1

/* Act on one request of the remote queue. */
static void handle_request(struct up__sched *s, struct up__msg *r)
{
	if (r->kind == UP__MSG_SPAWN) {
		struct up__proc *p = r->body;
		if (r->word != 0) {
			UP__STAT(s, steals, 1);
			if (!s->fed_at)
				s->fed_at = up__now_ns();
		}
		up__sched_add_new(s, p);
	} else {
		UP_ASSERT(r->kind == UP__MSG_WAKE);
		up_pid pid = (up_pid)r->word;
		struct up__proc *p = up__slot_proc(up__pid_slot(pid));
		/* The tag check makes the request stale-proof: only the very
		 * process it names, alive, is ours to look at. */
		if (__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) != (uint64_t)pid)
			goto done;
		/* A sender may have read p->sched just before p was given to
		 * a peer: send the request on to p's scheduler now (only the
		 * owner ever changes p->sched, so when it is s, s owns p). */
		struct up__sched *owner = __atomic_load_n(&p->sched, __ATOMIC_ACQUIRE);
		if (owner != s) {
			up__sched_post(owner, r);
			return;
		}
		if (p->state != UP__P_ZOMBIE) {
			up__mailbox_drain(p, 0); /* acts on signals, in order */
			if (p->state == UP__P_WAITING)
				up__sched_make_runnable(s, p);
		}
	}
done:
	up__msg_free(&s->msgs, r);
}

/* Take the remote queue, oldest request first. */
static void take_remote(struct up__sched *s)
{
	if (!__atomic_load_n(&s->remote_head, __ATOMIC_RELAXED))
		return;
	/* Acquire: pairs with the posters' CAS; their writes are visible. */
	struct up__msg *r = __atomic_exchange_n(&s->remote_head, NULL, __ATOMIC_ACQUIRE);
	struct up__msg *fifo = NULL;
	while (r) {
		struct up__msg *n = r->next;
		r->next = fifo;
		fifo = r;
		r = n;
	}
	while (fifo) {
		r = fifo;
		fifo = r->next;
		handle_request(s, r);
	}
}

static void fire_timers(struct up__sched *s)
{
	if (!s->timers.n)
		return;
	int64_t now = up__now_ns();
	struct up__proc *p;
	while ((p = up__timer_pop_due(&s->timers, now))) {
		if (p->state == UP__P_WAITING || p->state == UP__P_SLEEPING ||
		    p->state == UP__P_WAITING_ACCEPT) {
			p->timed_out = 1;
			up__sched_make_runnable(s, p);
		}
	}
}

/* ------------------------------------------------------------- switching */

/*
 * A process that blocks, yields or exits switches straight to the next
 * runnable process when there is one (one switch instead of two through the
 * scheduler context), and to the scheduler context every POLL_EVERY turns
 * or when nothing is runnable.  What the process that left needs (requeue,
 * reap) is done by whoever runs next, right after the switch, on its own
 * stack: s->prev names that process.
 */

static inline void after_switch(struct up__sched *s)
{
	struct up__proc *prev = s->prev;
	if (!prev)
		return;
	s->prev = NULL;
	if (prev->state == UP__P_RUNNABLE)
		rq_push(s, prev);
	else if (prev->state == UP__P_EXITING)
		up__proc_reap(s, prev);
	/* WAITING: its waker will make it runnable. */
}

static inline void start_running(struct up__sched *s, struct up__proc *p)
{
	s->current = p;
	s->budget = UP__BUDGET;
	p->state = UP__P_RUNNING;
	UP__STAT(s, runs, 1);
	__atomic_store_n(&s->running, p, __ATOMIC_RELAXED);
}

/* p leaves the CPU: what it spent of its budget joins its count. */
static inline void account(struct up__sched *s, struct up__proc *p)
{
	p->reds += (uint64_t)(UP__BUDGET - s->budget);
}

/* The tools: which stack we are about to run on (ASan) and which fiber
 * (TSan): process `to`, or the scheduler context when NULL.  Always inlined:
 * under TSan a function of its own would return (pop its shadow frame) on
 * the fiber it just switched to. */
static inline __attribute__((always_inline)) void leave_for(struct up__sched *s, void **fake_save, struct up__proc *to)
{
#if UP_ASAN
	if (to && to->compact) {
		up__fiber_leave(fake_save, s->sstack.lo, (size_t)(s->sstack.hi - s->sstack.lo));
	} else if (to) {
		char *lo = up__slot_stack_lo(to->slot);
		up__fiber_leave(fake_save, lo, (size_t)((char *)to - lo));
	} else {
		up__fiber_leave(fake_save, s->stack_lo, s->stack_size);
	}
#else
	(void)fake_save;
#endif
	up__fiber_tsan_switch(to ? to->tsan_fiber : s->tsan_fiber);
}

/* The next process to switch to directly, or NULL for the scheduler. */
static inline struct up__proc *next_direct(struct up__sched *s)
{
	if (up_unlikely(++s->turn % POLL_EVERY == 0))
		return NULL;
	return next_runnable(s);
}

/*
 * Compact processes share the scheduler's stack (shared_stack.h): before
 * one runs, its frames must be in place.  The copy cannot run on the shared
 * stack itself, and the leaving process's path must stay a plain switch
 * (no call: a call here costs the hot path 8 instructions of saved
 * registers), so a compact process whose frames are not in place is handed
 * to the scheduler context (s->handoff), which copies and runs it.  Returns
 * q, or NULL when q goes through the scheduler context.
 */
static inline struct up__proc *place(struct up__sched *s, struct up__proc *q)
{
	if (up_likely(!q || !q->compact || s->sstack.owner == q))
		return q;
	s->handoff = q;
	return NULL;
}

static inline void run(struct up__sched *s, struct up__proc *p)
{
	do {
		if (up_unlikely(p->compact) && s->sstack.owner != p)
			up__sstack_take(&s->sstack, p);
		start_running(s, p);
		leave_for(s, &s->asan_fake_stack, p);
		up__fiber_switch(&s->sp, p->sp);
		up__fiber_arrived(s->asan_fake_stack, NULL, NULL);
		s->current = NULL;
		__atomic_store_n(&s->running, NULL, __ATOMIC_RELAXED);
		UP__STAT(s, switches, 1);
		after_switch(s);
		p = s->handoff;
		s->handoff = NULL;
	} while (p);
}

void up__sched_leave(struct up__proc *p)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *q = next_direct(s);

	account(s, p);
	s->prev = p;
	q = place(s, q);
	if (q) {
		start_running(s, q);
		leave_for(s, &p->asan_fake_stack, q);
		up__fiber_switch(&p->sp, q->sp);
	} else {
		leave_for(s, &p->asan_fake_stack, NULL);
		up__fiber_switch(&p->sp, s->sp);
	}
	up__fiber_arrived(p->asan_fake_stack, NULL, NULL);
	after_switch(up__self_sched);
	if (up_unlikely(p->killed))
		up__sched_leave_dead(p);
}

void up__sched_leave_dead(struct up__proc *p)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *q = next_direct(s);
	void *dead_sp;

	p->state = UP__P_EXITING;
	s->prev = p;
	q = place(s, q);
	if (q) {
		start_running(s, q);
		leave_for(s, NULL, q);
		up__fiber_switch(&dead_sp, q->sp);
	} else {
		leave_for(s, NULL, NULL);
		up__fiber_switch(&dead_sp, s->sp);
	}
	__builtin_unreachable();
}

void up__sched_entered(void)
{
	up__fiber_arrived(NULL, NULL, NULL);
	after_switch(up__self_sched);
}

/* ------------------------------------------------------------- balancing */

/*
 * A scheduler with nothing to run says so (hungry); a busy peer of the same
 * node gives it new processes at its next pass through the loop (every
 * POLL_EVERY switches) when two or more wait on its spawn stack.
 *
 * Only processes that have never run move, and a process that has run never
 * changes thread: its frames may hold the address of a thread-local
 * variable across a switch (compilers keep TLS addresses for a whole
 * function; glibc's __errno_location is a const function, so user code may
 * keep &errno), and uproc's own frames keep their scheduler in locals.  A
 * process resumed on another thread would use the old one's errno, caches
 * and queues (TSan caught exactly that when runnable processes were given).
 * A new process has no frames yet; its region, messages and side tables
 * are on the node, which is all it needs.
 * The giver is the owner, so it alone writes p->sched (release); a sender
 * that read the old value posts its wake request to the giver, which sends
 * it on (handle_request).  Processes never cross nodes this way, and those
 * placed with UP_SPAWN_SCHEDULER never move.
 *
 * Which ones: of the newest GIVE_SCAN entries of the spawn stack, the older
 * half.  A tree of spawns runs depth first, so older entries head larger
 * subtrees (skynet's root gives away five of its ten children) and are the
 * colder ones in this CPU's cache.  The scan is bounded, so a spawn stack of
 * a million costs the same as one of ten.
 *
 * Giving pays only when the processes given keep the peer busy: processes
 * that block at once on messages from the giver's processes (a ring, a
 * pipeline) turn every hop between them into a cross-CPU wake-up.  So the
 * fed scheduler measures how long its food lasted: under GIVE_MIN_BUSY_NS
 * it stays quiet (not hungry) for a back-off that doubles with every such
 * give (GIVE_BACKOFF_NS up to GIVE_BACKOFF_MAX_NS), and a give that lasted
 * resets it.  The back-off costs the giver nothing: it is the peer's flag.
 */
#define GIVE_MIN_BUSY_NS 200000
#define GIVE_BACKOFF_NS 1000000
#define GIVE_BACKOFF_MAX_NS 1000000000
#define GIVE_SCAN 64

/*
 * Give t the older half of the newest GIVE_SCAN entries of the spawn stack,
 * keeping the order of what stays.
 */
static unsigned give_half(struct up__sched *s, struct up__sched *t)
{
	struct up__proc *v[GIVE_SCAN], *rest;
	unsigned n = 0, given = 0;

	for (rest = s->new_top; rest && n < GIVE_SCAN; rest = rest->run_next)
		v[n++] = rest;
	struct up__proc **link = &s->new_top;
	for (unsigned i = 0; i < n; i++) {
		struct up__proc *p = v[i];
		struct up__msg *r;
		if (i >= (n + 1) / 2 && !p->pinned && (r = up__msg_alloc(&s->msgs, t->node))) {
			up__sched_disown(s, p);
			__atomic_store_n(&p->sched, t, __ATOMIC_RELEASE);
			r->kind = UP__MSG_SPAWN;
			r->word = GIVEN;
			r->body = p;
			up__sched_post(t, r);
			given++;
			continue;
		}
		*link = p;
		link = &p->run_next;
	}
	*link = rest;
	/* The spawn stack is doubly linked: mend the kept part. */
	struct up__proc *prev = NULL;
	for (struct up__proc *q = s->new_top; q != rest; q = q->run_next) {
		q->run_prev = prev;
		prev = q;
	}
	if (rest)
		rest->run_prev = prev;
	else
		s->new_bottom = prev;
	UP__STAT(s, given, given);
	return given;
}

/* s has nothing to run: say so, unless what it was given last did not last. */
static void hunger(struct up__sched *s)
{
	if (__atomic_load_n(&s->hungry, __ATOMIC_RELAXED))
		return;
	int64_t now = up__now_ns();
	if (s->fed_at) {
		if (now - s->fed_at < GIVE_MIN_BUSY_NS) {
			s->backoff = s->backoff ? s->backoff * 2 : GIVE_BACKOFF_NS;
			if (s->backoff > GIVE_BACKOFF_MAX_NS)
				s->backoff = GIVE_BACKOFF_MAX_NS;
			s->quiet_until = now + s->backoff;
		} else {
			s->backoff = 0;
		}
		s->fed_at = 0;
	}
	if (now >= s->quiet_until)
		__atomic_store_n(&s->hungry, 1, __ATOMIC_RELAXED);
}

/* s is in its loop with processes on its spawn stack: feed a hungry peer. */
static void give_work(struct up__sched *s)
{
	if (s->npeers == 0 || !up__rt.balance || !s->new_top || !s->new_top->run_next)
		return;
	for (unsigned i = 0; i < s->npeers; i++) {
		struct up__sched *t = s->peers[i];
		int one = 1;
		if (__atomic_load_n(&t->hungry, __ATOMIC_RELAXED) &&
		    __atomic_compare_exchange_n(&t->hungry, &one, 0, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			if (!give_half(s, t))  /* all pinned: let another peer try */
				__atomic_store_n(&t->hungry, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

/* ------------------------------------------------------------------ idle */

/* 0, or -EBUSY without an SQE for the wake read (then do not sleep). */
static int arm_wake(struct up__sched *s)
{
	if (s->efd_armed)
		return 0;
	struct io_uring_sqe *sqe = UP_FAULT_PTR(UP__F_WAKE_SQE, io_uring_get_sqe(&s->ring));
	if (!sqe) {
		io_uring_submit(&s->ring);
		sqe = UP_FAULT_PTR(UP__F_WAKE_SQE, io_uring_get_sqe(&s->ring));
		if (!sqe)
			return -EBUSY;
	}
	io_uring_prep_read(sqe, s->efd, &s->efd_buf, sizeof(s->efd_buf), 0);
	UP__STAT(s, io_submitted, 1);
	io_uring_sqe_set_data64(sqe, UP__TAG_WAKE);
	s->efd_armed = 1;
	return 0;
}

static inline int has_work(struct up__sched *s, int64_t now)
{
	return __atomic_load_n(&s->remote_head, __ATOMIC_RELAXED) ||
	       up__region_work_wanted(s->node) ||
	       __atomic_load_n(&up__rt.stopping, __ATOMIC_RELAXED) ||
	       (s->timers.n && up__timer_next(&s->timers) <= now);
}

static void idle(struct up__sched *s)
{
	up__live_flush(s);
	/* Nothing to run: do the node's memory work (a step at a time, then
	 * look for processes again). */
	struct up__region_work w = up__region_idle_work(s->node);
	if (w.prepared | w.trimmed) {
		UP__STAT(s, prepared, w.prepared);
		UP__STAT(s, trimmed, w.trimmed);
		return;
	}
	if (s->npeers && up__rt.balance)
		hunger(s);
	/* With I/O in flight, completions need a kernel entry (DEFER_TASKRUN):
	 * wait for them there rather than spin. */
	if (up__rt.spin_ns > 0 && !s->io_inflight) {
		/* Look at the remote queue after every pause (a pause is 10 to
		 * 150 cycles depending on the CPU): a message from another
		 * scheduler is picked up within ~100 ns while spinning.  The
		 * clock is read every 64 looks. */
		int64_t now = up__now_ns(), until = now + up__rt.spin_ns;
		for (unsigned i = 1;; i++) {
			up__cpu_relax();
			if (__atomic_load_n(&s->remote_head, __ATOMIC_RELAXED))
				return;
			if (i % 64 == 0) {
				now = up__now_ns();
				if (has_work(s, now) || now >= until)
					break;
			}
		}
		if (has_work(s, now))
			return;
	}
	if (arm_wake(s) != 0)
		return; /* a sleep nobody could end: poll again */
	__atomic_store_n(&s->state, UP__S_SLEEPING, __ATOMIC_SEQ_CST);
	if (has_work(s, up__now_ns())) {
		__atomic_store_n(&s->state, UP__S_AWAKE, __ATOMIC_RELAXED);
		return;
	}
	UP__STAT(s, sleeps, 1);
	struct io_uring_cqe *cqe;
	int64_t next = up__timer_next(&s->timers);
	/* Quiet after food that did not last: wake when it may be hungry again. */
	if (s->npeers && up__rt.balance && !__atomic_load_n(&s->hungry, __ATOMIC_RELAXED) &&
	    s->quiet_until < next)
		next = s->quiet_until;
	if (up_unlikely(s->on_valgrind)) {
		int64_t cap = up__now_ns() + VALGRIND_WAIT_NS;
		if (next > cap)
			next = cap;
	}
	if (next == INT64_MAX) {
		(void)UP_FAULT_ERR(UP__F_SUBMIT, io_uring_submit_and_wait(&s->ring, 1));
	} else {
		int64_t d = next - up__now_ns();
		if (d < 0)
			d = 0;
		struct __kernel_timespec ts = { .tv_sec = d / 1000000000, .tv_nsec = d % 1000000000 };
		(void)UP_FAULT_ERR(UP__F_SUBMIT,
				   io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL));
	}
	__atomic_store_n(&s->state, UP__S_AWAKE, __ATOMIC_SEQ_CST);
	up__io_reap(s);
}

/* -------------------------------------------------------------- the loop */

static void loop(struct up__sched *s)
{
	/* The scheduler context runs only every POLL_EVERY switches (see
	 * next_direct) or when nothing is runnable, so it polls every time:
	 * the stop flag first (up_shutdown ends even runnable processes),
	 * then requests from other threads, then timers. */
	for (;;) {
		if (__atomic_load_n(&up__rt.stopping, __ATOMIC_ACQUIRE))
			return;
		take_remote(s);
		s->pass_ns = up__now_ns();
		if (s->new_top)
			age_spawn_stack(s);
		fire_timers(s);
		up__io_poll(s);
		give_work(s);
		struct up__proc *p = next_runnable(s);
		if (p) {
			if (up_unlikely(__atomic_load_n(&s->hungry, __ATOMIC_RELAXED)))
				__atomic_store_n(&s->hungry, 0, __ATOMIC_RELAXED);
			run(s, p);
		} else {
			idle(s);
		}
	}
}

/* Scheduler thread stacks: glibc's default size. */
#define THREAD_STACK ((size_t)8 << 20)

static int ring_setup(struct up__sched *s)
{
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;
	for (unsigned i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		struct io_uring_params prm = { .flags = flag_sets[i] };
		r = UP_FAULT_ERR(UP__F_RING_SETUP, io_uring_queue_init_params(RING_ENTRIES, &s->ring, &prm));
		if (r == 0)
			return 0;
		if (r != -EINVAL)
			return r;
	}
	return r;
}

static int thread_init(struct up__sched *s)
{
	pthread_attr_t a;
	void *lo;
	int r;

	up__self_sched = s;
	s->tsan_fiber = up__fiber_tsan_self();
#if UP_HAVE_VALGRIND_H
	s->on_valgrind = RUNNING_ON_VALGRIND != 0;
#endif
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstack(&a, &lo, &s->stack_size);
		s->stack_lo = lo;
		pthread_attr_destroy(&a);
	}
	if ((r = up__node_bind_thread(s->node)) != 0)
		return r;
	if ((r = ring_setup(s)) != 0)
		return r;
	s->ring_ok = 1;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0)
		return -errno;
	s->msgs.node = s->node;
	if ((r = up__crash_thread_init(&s->alt_stack)) != 0)
		return r;
	if ((r = up__sstack_init(&s->sstack, up__regions.layout.stack_size, s->node)) != 0)
		return r;
	return up__region_cache_init(&s->regions, s->node, up__rt.warm_regions);
}

static void *thread_main(void *arg)
{
	struct up__sched *s = arg;
	int r = thread_init(s);

	/* Report, then wait for up_run to declare the start-up over (a wait,
	 * not a spin: start-up costs no CPU and no timing-dependent work). */
	pthread_mutex_lock(&up__rt.init_lock);
	__atomic_store_n(&s->thread_started, r == 0 ? 1 : r, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&up__rt.init_cv);
	while (r == 0 && !__atomic_load_n(&up__rt.init_done, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&up__rt.init_cv, &up__rt.init_lock);
	pthread_mutex_unlock(&up__rt.init_lock);
	if (r == 0 && !up__rt.init_err)
		loop(s);
	up__crash_thread_fini(s->alt_stack);
	s->alt_stack = NULL;
	/* The ring is this thread's (SINGLE_ISSUER): close it here. */
	if (s->ring_ok) {
		io_uring_queue_exit(&s->ring);
		s->ring_ok = 0;
	}
	up__self_sched = NULL;
	return NULL;
}

int up__sched_start(struct up__sched *s)
{
	pthread_attr_t a;
	cpu_set_t set;
	int r;

	pthread_attr_init(&a);
	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	/* A stack of its own, bound to the node before first touch: glibc
	 * would hand the thread a cached stack of an earlier run's thread,
	 * resident on whatever node that one ran (found in a 2-node guest by
	 * test_numa_placement; mbind(MPOL_MF_MOVE) did not move those pages). */
	size_t len = THREAD_STACK + UP__PAGE;
	char *st = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			MAP_STACK, -1, 0);
	if (st == MAP_FAILED) {
		pthread_attr_destroy(&a);
		return -ENOMEM;
	}
	(void)mprotect(st, UP__PAGE, PROT_NONE); /* guard */
	(void)up__node_bind_range(st + UP__PAGE, THREAD_STACK, s->node);
	s->thread_stack = st;
	s->thread_stack_len = len;
	pthread_attr_setstack(&a, st + UP__PAGE, THREAD_STACK);
	r = pthread_create(&s->thread, &a, thread_main, s);
	pthread_attr_destroy(&a);
	if (r != 0) {
		munmap(st, len);
		s->thread_stack = NULL;
		return -r;
	}
	pthread_mutex_lock(&up__rt.init_lock);
	while (!(r = __atomic_load_n(&s->thread_started, __ATOMIC_ACQUIRE)))
		pthread_cond_wait(&up__rt.init_cv, &up__rt.init_lock);
	pthread_mutex_unlock(&up__rt.init_lock);
	return r == 1 ? 0 : r;
}

void up__sched_join(struct up__sched *s)
{
	if (s->thread_started)
		pthread_join(s->thread, NULL);
	if (s->thread_stack)
		munmap(s->thread_stack, s->thread_stack_len);
	s->thread_stack = NULL;
}

void up__sched_cleanup(struct up__sched *s)
{
	up__self_sched = s; /* reaping frees into s's caches */
	/* The ring is closed: no completion will come; zombies go now. */
	for (struct up__proc *p = s->all, *n; p; p = n) {
		n = p->all_next;
		if (p->state == UP__P_ZOMBIE)
			up__proc_release(s, p);
	}
	/* Requests never handled; processes spawned here and never run. */
	struct up__msg *r = __atomic_exchange_n(&s->remote_head, NULL, __ATOMIC_ACQUIRE);
	while (r) {
		struct up__msg *n = r->next;
		if (r->kind == UP__MSG_SPAWN)
			up__sched_adopt(s, r->body);
		up__msg_free(&s->msgs, r);
		r = n;
	}
	while (s->all)
		up__proc_reap(s, s->all);
	up__sstack_fini(&s->sstack);
	up__self_sched = NULL;
	up__live_flush(s);
	up__timer_fini(&s->timers);
	up__msg_cache_fini(&s->msgs);
	up__region_cache_fini(&s->regions);
	if (s->efd >= 0)
		close(s->efd);
}
