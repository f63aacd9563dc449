/*
 * runtime.h - the one runtime of an OS process: options, topology, the
 * schedulers, live-process accounting and the stop protocol.
 *
 * Live accounting: rt.live counts live processes plus "credits" that
 * schedulers hold in advance, so a spawn or an exit usually touches only the
 * scheduler's own counter.  rt.live >= live processes always; it reaches 0
 * only when no process lives and every credit came back, and whoever brings
 * it to 0 stops the runtime.  With a small max_processes, credits are taken
 * one by one so the limit is exact.
 */
#ifndef UP_RUNTIME_H
#define UP_RUNTIME_H

#include <pthread.h>
#include <stdint.h>
#include "uproc.h"
#include "topology.h"
#include "debug.h"

struct up__sched;

struct up__runtime {
	int running;               /* atomic: up_run is between start and end */
	int started;               /* atomic: schedulers exist (release) */
	int guests;                /* atomic: outside calls in progress */
	int stopping;              /* atomic: schedulers leave their loops */
	struct up__topology topo;
	int nsched;
	struct up__sched **sched;
	int64_t live;              /* atomic, see above */
	int64_t max_processes;
	int credit_batch;          /* 1 = exact accounting */
	int64_t spin_ns;
	unsigned warm_regions;
	size_t max_message_size;
	int balance;               /* give new processes to idle peers (scheduler.c) */
	int64_t long_run_ns;       /* 0: no watchdog */
	void (*on_long_run)(up_pid, int64_t, void *);
	void *long_run_arg;
	/* start-up handshake (init_lock/init_cv): each scheduler thread reports
	 * thread_started, then waits for init_done */
	int init_done, init_err;
	pthread_mutex_t init_lock;
	pthread_cond_t init_cv;
};

extern struct up__runtime up__rt UP_INTERNAL;

static inline int up__rt_ready(void)
{
	return __atomic_load_n(&up__rt.started, __ATOMIC_ACQUIRE);
}

/*
 * The calls any thread may make (send, spawn, up_exit, up_alive,
 * up_shutdown) touch schedulers, control blocks and eventfds that up_run
 * frees once its schedulers are joined.  A thread without a scheduler
 * (self == NULL) makes such a call as a guest: up__rt_enter counts it in,
 * or returns 0 (runtime not running: touch nothing, no leave), and
 * up__rt_leave counts it out.  Dekker on started/guests, seq_cst on both
 * sides: either the guest sees started == 0, or up_run, having cleared it,
 * sees the guest and waits for it before tearing down.  A scheduler thread
 * needs no count: up_run joins it before freeing anything.
 */
static inline int up__rt_enter(const void *self)
{
	if (self)
		return up__rt_ready();
	__atomic_add_fetch(&up__rt.guests, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&up__rt.started, __ATOMIC_SEQ_CST))
		return 1;
	__atomic_sub_fetch(&up__rt.guests, 1, __ATOMIC_RELEASE);
	return 0;
}

static inline void up__rt_leave(const void *self)
{
	/* Release: pairs with up_run's wait; our accesses come first. */
	if (!self)
		__atomic_sub_fetch(&up__rt.guests, 1, __ATOMIC_RELEASE);
}

/* Take one live credit for a spawn (s may be NULL).  0 or -EAGAIN. */
int up__live_acquire(struct up__sched *s) UP_INTERNAL;
/* Give back the credit of a failed spawn (no stop check). */
void up__live_undo(struct up__sched *s) UP_INTERNAL;
/* A process of s exited. */
void up__live_release(struct up__sched *s) UP_INTERNAL;
/* s goes idle: return every credit it holds. */
void up__live_flush(struct up__sched *s) UP_INTERNAL;
/* Stop every scheduler (any thread). */
void up__rt_stop(void) UP_INTERNAL;
/* The long-run watchdog (watchdog.c): started after the schedulers when
 * long_run_ns is set, stopped after they are joined.  0 or -errno. */
int up__watchdog_start(void) UP_INTERNAL;
void up__watchdog_stop(void) UP_INTERNAL;

#endif
