/*
 * watchdog.c - long-run reports: a thread that samples what every scheduler
 * runs and reports a process that keeps the CPU longer than long_run_us.
 *
 * Nothing is preempted and the hot path pays one relaxed store per switch
 * (scheduler.c start_running: s->running = p; s->stats.runs + 1).  Every
 * period (long_run_us / 4, at least 1 ms) the watchdog reads each
 * scheduler's (runs, running) pair: if it is the one it saw before, the same
 * run is still going on, and once it has lasted long_run_ns since it was
 * first seen it is reported: once per run, counted in the scheduler's
 * long_runs, and given to on_long_run with the time seen so far.  A run is
 * seen at most one period after it starts, so the time reported is a lower
 * bound, short by less than a period.
 *
 * Invariants: the thread exists only between up__watchdog_start and
 * up__watchdog_stop (called by up_run around the schedulers' life); it only
 * reads scheduler words that are atomics, and writes only long_runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "runtime.h"
#include "scheduler.h"

struct seen {
	uint64_t runs;
	struct up__proc *p;
	int64_t since;     /* when this run was first seen */
	int reported;
};

static struct {
	pthread_t thread;
	int on;
	int stop;          /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct seen *seen;
} wd = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void sample(struct up__sched *s, struct seen *w, int64_t now)
{
	uint64_t runs = __atomic_load_n(&s->stats.runs, __ATOMIC_RELAXED);
	struct up__proc *p = __atomic_load_n(&s->running, __ATOMIC_RELAXED);

	if (runs != w->runs || p != w->p) {
		*w = (struct seen){ .runs = runs, .p = p, .since = now };
		return;
	}
	if (!p || w->reported || now - w->since < up__rt.long_run_ns)
		return;
	/* The same run still: its process is alive and its pid is stable
	 * (control blocks stay mapped; the counter is read again after). */
	up_pid pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
	if (__atomic_load_n(&s->stats.runs, __ATOMIC_RELAXED) != runs)
		return;
	w->reported = 1;
	__atomic_fetch_add(&s->long_runs, 1, __ATOMIC_RELAXED);
	if (up__rt.on_long_run)
		up__rt.on_long_run(pid, now - w->since, up__rt.long_run_arg);
}

static void *watch(void *arg)
{
	int64_t period = up__rt.long_run_ns / 4;
	if (period < 1000000)
		period = 1000000;
	pthread_mutex_lock(&wd.lock);
	while (!wd.stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + period;
		ts.tv_sec = until / 1000000000;
		ts.tv_nsec = until % 1000000000;
		pthread_cond_timedwait(&wd.cv, &wd.lock, &ts);
		if (wd.stop)
			break;
		int64_t now = up__now_ns();
		for (int i = 0; i < up__rt.nsched; i++)
			sample(up__rt.sched[i], &wd.seen[i], now);
	}
	pthread_mutex_unlock(&wd.lock);
	return arg;
}

int up__watchdog_start(void)
{
	if (!up__rt.long_run_ns)
		return 0;
	wd.seen = calloc((size_t)up__rt.nsched, sizeof(*wd.seen));
	if (!wd.seen)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd.cv, &ca);
	pthread_condattr_destroy(&ca);
	wd.stop = 0;
	int r = pthread_create(&wd.thread, NULL, watch, NULL);
	if (r != 0) {
		pthread_cond_destroy(&wd.cv);
		free(wd.seen);
		wd.seen = NULL;
		return -r;
	}
	wd.on = 1;
	return 0;
}

void up__watchdog_stop(void)
{
	if (!wd.on)
		return;
	pthread_mutex_lock(&wd.lock);
	wd.stop = 1;
	pthread_cond_signal(&wd.cv);
	pthread_mutex_unlock(&wd.lock);
	pthread_join(wd.thread, NULL);
	pthread_cond_destroy(&wd.cv);
	free(wd.seen);
	wd.seen = NULL;
	wd.on = 0;
}
