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
#include "runtime.h"

#define RING_ENTRIES 256
#define POLL_EVERY 64   /* run-loop turns between looks at timers/remote */

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
		return p;
	}
	return rq_pop(s);
}

void up__sched_kick(struct up__sched *s)
{
	if (__atomic_exchange_n(&s->state, UP__S_AWAKE, __ATOMIC_SEQ_CST) == UP__S_SLEEPING) {
		uint64_t one = 1;
		ssize_t r = write(s->efd, &one, sizeof(one));
		(void)r; /* cannot fail short of EAGAIN at 2^64-1 pending */
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
			up__self_sched->stats.wakes_sent++;
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
}

/* Act on one request of the remote queue. */
static void handle_request(struct up__sched *s, struct up__msg *r)
{
	if (r->kind == UP__MSG_SPAWN) {
		up__sched_add_new(s, r->body);
	} else {
		UP_ASSERT(r->kind == UP__MSG_WAKE);
		up_pid pid = (up_pid)r->word;
		struct up__proc *p = up__slot_proc(up__pid_slot(pid));
		/* The tag check makes the request stale-proof: only the very
		 * process it names, alive, is ours to look at. */
		if (__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) == (uint64_t)pid &&
		    p->state != UP__P_ZOMBIE) {
			up__mailbox_drain(p, 0); /* acts on signals, in order */
			if (p->state == UP__P_WAITING)
				up__sched_make_runnable(s, p);
		}
	}
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
	s->stats.switches++;
}

/* ASan: tell which stack we are about to run on. */
static inline void leave_for(struct up__sched *s, void **fake_save, struct up__proc *to)
{
#if UP_ASAN
	if (to) {
		char *lo = up__slot_base(to->slot) + up__regions.layout.heap_size + UP__PAGE;
		up__fiber_leave(fake_save, lo, (size_t)((char *)to - lo));
	} else {
		up__fiber_leave(fake_save, s->stack_lo, s->stack_size);
	}
#else
	(void)s; (void)fake_save; (void)to;
#endif
}

/* The next process to switch to directly, or NULL for the scheduler. */
static inline struct up__proc *next_direct(struct up__sched *s)
{
	if (up_unlikely(++s->turn % POLL_EVERY == 0))
		return NULL;
	return next_runnable(s);
}

static inline void run(struct up__sched *s, struct up__proc *p)
{
	start_running(s, p);
	leave_for(s, &s->asan_fake_stack, p);
	up__fiber_switch(&s->sp, p->sp);
	up__fiber_arrived(s->asan_fake_stack, NULL, NULL);
	s->current = NULL;
	after_switch(s);
}

void up__sched_leave(struct up__proc *p)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *q = next_direct(s);

	s->prev = p;
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
	io_uring_sqe_set_data64(sqe, UP__TAG_WAKE);
	s->efd_armed = 1;
	return 0;
}

static inline int has_work(struct up__sched *s, int64_t now)
{
	return __atomic_load_n(&s->remote_head, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&up__rt.stopping, __ATOMIC_RELAXED) ||
	       (s->timers.n && up__timer_next(&s->timers) <= now);
}

static void idle(struct up__sched *s)
{
	up__live_flush(s);
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
	s->stats.sleeps++;
	struct io_uring_cqe *cqe;
	int64_t next = up__timer_next(&s->timers);
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
		fire_timers(s);
		up__io_poll(s);
		struct up__proc *p = next_runnable(s);
		if (p)
			run(s, p);
		else
			idle(s);
	}
}

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
	r = pthread_create(&s->thread, &a, thread_main, s);
	pthread_attr_destroy(&a);
	if (r != 0)
		return -r;
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
	up__self_sched = NULL;
	up__live_flush(s);
	up__timer_fini(&s->timers);
	up__msg_cache_fini(&s->msgs);
	up__region_cache_fini(&s->regions);
	if (s->efd >= 0)
		close(s->efd);
}
