/*
 * timer.c - the timer min-heap (see timer.h).  O(log n) add/remove/pop.
 * A timer wheel would make add O(1); receives with a timeout are rare next
 * to plain receives, and the heap needs no tick, so the heap it is.
 */
#include "timer.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "fault.h"
#include "proc.h"

static void put(struct up__timer_heap *t, uint32_t i, struct up__proc *p)
{
	t->h[i] = p;
	p->timer_idx = i;
}

static void sift_up(struct up__timer_heap *t, uint32_t i)
{
	struct up__proc *p = t->h[i];
	while (i > 1 && t->h[i / 2]->deadline > p->deadline) {
		put(t, i, t->h[i / 2]);
		i /= 2;
	}
	put(t, i, p);
}

static void sift_down(struct up__timer_heap *t, uint32_t i)
{
	struct up__proc *p = t->h[i];
	for (;;) {
		uint32_t c = 2 * i;
		if (c > t->n)
			break;
		if (c + 1 <= t->n && t->h[c + 1]->deadline < t->h[c]->deadline)
			c++;
		if (t->h[c]->deadline >= p->deadline)
			break;
		put(t, i, t->h[c]);
		i = c;
	}
	put(t, i, p);
}

int up__timer_add(struct up__timer_heap *t, struct up__proc *p)
{
	UP_ASSERT(p->timer_idx == 0);
	if (t->n + 1 >= t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		struct up__proc **h = UP_FAULT_PTR(UP__F_TIMER, realloc(t->h, cap * sizeof(*h)));
		if (!h)
			return -ENOMEM;
		t->h = h;
		t->cap = cap;
	}
	t->h[++t->n] = p;
	sift_up(t, t->n);
	return 0;
}

void up__timer_remove(struct up__timer_heap *t, struct up__proc *p)
{
	uint32_t i = p->timer_idx;
	if (!i)
		return;
	UP_ASSERT(t->h[i] == p);
	p->timer_idx = 0;
	struct up__proc *last = t->h[t->n--];
	if (i <= t->n) {
		put(t, i, last);
		sift_up(t, i);
		sift_down(t, last->timer_idx);
	}
}

struct up__proc *up__timer_pop_due(struct up__timer_heap *t, int64_t now)
{
	if (t->n == 0 || t->h[1]->deadline > now)
		return NULL;
	struct up__proc *p = t->h[1];
	up__timer_remove(t, p);
	return p;
}

int64_t up__timer_next(const struct up__timer_heap *t)
{
	return t->n ? t->h[1]->deadline : INT64_MAX;
}

void up__timer_fini(struct up__timer_heap *t)
{
	free(t->h);
	t->h = NULL;
	t->n = t->cap = 0;
}
