/*
 * scheduler.h - schedulers: one OS thread per allowed CPU, pinned, each with its
 * own run queue, io_uring ring, timers and free lists.
 *
 * Run queues: a local FIFO (owner only) plus a remote queue, a lock-free
 * stack of request nodes (struct up__msg: "wake pid", "run this new
 * process") pushed by other threads; the owner takes the whole stack with
 * one exchange and acts on each request itself.  Only the owner decides
 * whether one of its processes waits or runs.  The owner runs a process by switching from its
 * own stack (the scheduler context) to the process's, and back when the
 * process yields, waits or exits.
 *
 * Idle: the scheduler spins for spin_us, then announces SLEEPING and sleeps
 * in io_uring_enter on a pending eventfd read (and the next timer deadline).
 * A waker writes the eventfd only when it moves the state from SLEEPING to
 * AWAKE itself, so a busy scheduler costs its wakers no syscall.
 */
#ifndef UP_SCHED_H
#define UP_SCHED_H

#include <liburing.h>
#include <pthread.h>
#include <stdint.h>

#include "msg.h"
#include "proc.h"
#include "region.h"
#include "shared_stack.h"
#include "timer.h"
#include "debug.h"

enum { UP__S_AWAKE = 0, UP__S_SLEEPING = 1 };

/* user_data of the scheduler's own eventfd read (pid 0: never a process's). */
#define UP__TAG_WAKE 1ull

/* Counters (struct up_sched_stats, public): written by the owner thread
 * alone with UP__STAT (a relaxed atomic store, the cost of a plain add),
 * read by any thread (info.c). */
#define UP__STAT(s, f, n) __atomic_store_n(&(s)->stats.f, (s)->stats.f + (n), __ATOMIC_RELAXED)

struct up__sched {
	/* ---- owner thread ---- */
	int index, node, cpu;
	struct up__proc *current;
	struct up__proc *prev;            /* left the CPU, not yet requeued/reaped */
	struct up__proc *handoff;         /* to run next, from the scheduler context (compact) */
	struct up__sstack sstack;         /* where its compact processes run */
	unsigned turn;                    /* switches, for periodic polling */
	int budget;                       /* reductions left to `current` */
	void *sp;                         /* saved scheduler context */
	const void *stack_lo;             /* scheduler stack (for ASan) */
	size_t stack_size;
	void *asan_fake_stack;
	void *tsan_fiber;                 /* the thread's own (TSan builds) */
	int on_valgrind;                  /* idle waits are capped (scheduler.c) */
	struct up__proc *rq_head, *rq_tail; /* run queue (FIFO) */
	struct up__proc *new_top;          /* spawn stack (LIFO), see next_runnable */
	struct up__proc *new_bottom;       /* its oldest entry (aging) */
	unsigned picks;
	int64_t pass_ns;                  /* clock at the last pass through the loop */
	int64_t aged_ns;                  /* when aging last moved a process */
	struct up__proc *all;             /* every process of this scheduler */
	struct io_uring ring;
	int ring_ok;
	int efd;
	uint64_t efd_buf;
	int efd_armed;
	unsigned io_inflight;             /* completions still due, all processes */
	struct up__timer_heap timers;
	struct up__msg_cache msgs;
	struct up__region_cache regions;
	long credits;                     /* see runtime.c: live accounting */
	struct up_sched_stats stats;      /* see UP__STAT; `switches` counts returns to the loop */
	long nprocs;                      /* processes in `all` (owner; read racily by info.c) */
	struct up__sched **peers;         /* the other schedulers of its node (balancing) */
	unsigned npeers;
	int64_t fed_at, quiet_until, backoff; /* balancing back-off (scheduler.c) */
	pthread_t thread;
	int thread_started;
	void *alt_stack;                  /* for the SIGSEGV handler (crash.c) */
	void *thread_stack;               /* its mapping (guard page first) */
	size_t thread_stack_len;

	/* ---- shared ---- */
	struct up__msg *remote_head __attribute__((aligned(UP_CACHELINE))); /* atomic */
	int state __attribute__((aligned(UP_CACHELINE)));                    /* atomic */
	int hungry;   /* atomic: nothing to run; a busy peer of its node may give it new processes */
	/* Sampled by the long-run watchdog (watchdog.c): the process on the
	 * CPU (NULL in the scheduler loop), stored by the owner at every switch. */
	struct up__proc *running __attribute__((aligned(UP_CACHELINE)));
	uint64_t long_runs;                /* atomic: written by the watchdog */
};

/* The scheduler of the calling thread, NULL outside the runtime.
 * Initial-exec: the objects are position-independent (they make the shared
 * library too), where the default model calls __tls_get_addr on every
 * access; that call clobbers the argument registers, so even where the
 * static link relaxes it away the hot paths keep their frames.  The one
 * cost: a dlopen'ed libuproc.so takes its 8 bytes from glibc's static TLS
 * surplus. */
extern __thread struct up__sched *up__self_sched UP_INTERNAL
	__attribute__((tls_model("initial-exec")));

#ifndef UP__PREFETCH_LINES
#define UP__PREFETCH_LINES 6
#endif
static inline void rq_push(struct up__sched *s, struct up__proc *p)
{
	p->run_next = NULL;
	if (s->rq_tail)
		s->rq_tail->run_next = p;
	else
		s->rq_head = p;
	s->rq_tail = p;
}

/* Owner thread: p (waiting or new) becomes runnable at the queue's tail. */
static inline void up__sched_wake_local(struct up__sched *s, struct up__proc *p);
static inline void up__sched_make_runnable(struct up__sched *s, struct up__proc *p)
{
	UP_ASSERT(s == up__self_sched && p->sched == s);
	up__sched_wake_local(s, p);
}

/* up__sched_make_runnable for a caller that has just checked its
 * assertion (s is the calling thread's scheduler, p's scheduler is s). */
static inline void up__sched_wake_local(struct up__sched *s, struct up__proc *p)
{
	p->state = UP__P_RUNNABLE;
	/* Its saved registers and the frames above them are the first thing
	 * a switch to it touches: start the (often cache- and TLB-missing)
	 * fetch now, while the current process still runs. */
	if (up_likely(!p->compact)) {
		for (int i = 0; i < UP__PREFETCH_LINES; i++)
			__builtin_prefetch((char *)p->sp + 64 * i, 1, 3);
	} else {
		/* Its frames are copied back from its slot's save area (just
		 * below the block) before it runs. */
		for (int i = 1; i <= 8; i++)
			__builtin_prefetch((char *)p - 64 * i, 0, 3);
	}
	rq_push(s, p);
}
/* Owner thread: s's region cache asked for fresh slots to be prepared:
 * wake a sleeping peer of its node (an idle one prepares them). */
void up__sched_ask_help(struct up__sched *s) UP_INTERNAL;
/* Any thread: hand request r to scheduler t and wake t if it sleeps. */
void up__sched_post(struct up__sched *t, struct up__msg *r) UP_INTERNAL;
/* Owner thread: link a new process into s's list of processes. */
void up__sched_adopt(struct up__sched *s, struct up__proc *p) UP_INTERNAL;
/* Owner thread: unlink p from s's list (it exits, or goes to a peer). */
void up__sched_disown(struct up__sched *s, struct up__proc *p) UP_INTERNAL;

/* Owner thread: a new process joins s (its list, its spawn stack). */
static inline void up__sched_add_new(struct up__sched *s, struct up__proc *p)
{
	up__sched_adopt(s, p);
	p->state = UP__P_RUNNABLE;
	p->born_ns = s->pass_ns;
	p->run_prev = NULL;
	p->run_next = s->new_top;
	if (s->new_top)
		s->new_top->run_prev = p;
	else
		s->new_bottom = p;
	s->new_top = p;
}
/* From the running process: switch to the scheduler context.  Returns when
 * the process runs again.  The process's state says why it left. */
void up__sched_leave(struct up__proc *p) UP_INTERNAL;
/* The process is done: never returns. */
void up__sched_leave_dead(struct up__proc *p) __attribute__((noreturn)) UP_INTERNAL;
/* First thing a new process does (finishes the switch that started it). */
void up__sched_entered(void) UP_INTERNAL;

/*
 * Reductions: sends, receives and spawns charge the running process; when
 * its budget is spent it yields at that call (cooperative: nothing is ever
 * preempted).  UP__BUDGET per turn on the CPU.
 */
#define UP__BUDGET UP_REDUCTIONS
int up_yield(void);
/* Charge n reductions to the running process; 1 if it yielded. */
static inline int up__charge(struct up__sched *s, int n)
{
	if (up_unlikely((s->budget -= n) <= 0) && s->current) {
		up_yield();
		return 1;
	}
	return 0;
}

int up__sched_start(struct up__sched *s) UP_INTERNAL;
void up__sched_join(struct up__sched *s) UP_INTERNAL;
/* crash.c */
int up__crash_install(void) UP_INTERNAL;
void up__crash_uninstall(void) UP_INTERNAL;
int up__crash_thread_init(void **alt) UP_INTERNAL;
void up__crash_thread_fini(void *alt) UP_INTERNAL;

/* Wake a sleeping scheduler (any thread). */
void up__sched_kick(struct up__sched *s) UP_INTERNAL;
/* After every scheduler has stopped: free what is left on s. */
void up__sched_cleanup(struct up__sched *s) UP_INTERNAL;

#endif
