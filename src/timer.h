/*
 * timer.h - a scheduler's timers: a binary min-heap of processes waiting
 * with a deadline, keyed by proc->deadline; proc->timer_idx is the 1-based
 * heap position (0: not in the heap), so a wake by message removes the timer
 * in O(log n).  Owner thread only.
 */
#ifndef UP_TIMER_H
#define UP_TIMER_H

#include <stdint.h>
#include <time.h>
#include "debug.h"

struct up__proc;

struct up__timer_heap {
	struct up__proc **h;   /* h[1..n] */
	uint32_t n, cap;
};

int up__timer_add(struct up__timer_heap *t, struct up__proc *p) UP_INTERNAL;
void up__timer_remove(struct up__timer_heap *t, struct up__proc *p) UP_INTERNAL;
/* The earliest process if its deadline is <= now, removed; else NULL. */
struct up__proc *up__timer_pop_due(struct up__timer_heap *t, int64_t now) UP_INTERNAL;
/* Earliest deadline, or INT64_MAX. */
int64_t up__timer_next(const struct up__timer_heap *t) UP_INTERNAL;
void up__timer_fini(struct up__timer_heap *t) UP_INTERNAL;

static inline int64_t up__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
