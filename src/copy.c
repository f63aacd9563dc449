/*
 * copy.c - deep copy of a term into one block of memory: how many words its
 * boxed part needs, then the copy.  Used by up_send (the block is the
 * receiver's message buffer, on the receiver's node) and by the process
 * dictionary.  Iterative (an explicit work stack): a term nested a million
 * levels deep costs no fiber stack.  Sharing inside the term is not kept (as
 * in Erlang's copy on send).
 */
#include "term.h"
#include "fault.h"

#include <errno.h>
#include <stdlib.h>

struct work {
	up_term t;
	uint64_t *dst;   /* where the copied term goes (copy pass) */
};

struct stack {
	struct work *w, local[64];
	size_t n, cap;
};

static int push(struct stack *s, up_term t, uint64_t *dst)
{
	if (s->n == s->cap) {
		size_t cap = s->cap * 2;
		struct work *w = UP_FAULT_PTR(UP__F_COPY_STACK, malloc(cap * sizeof(*w)));
		if (!w)
			return -ENOMEM;
		memcpy(w, s->w, s->n * sizeof(*w));
		if (s->w != s->local)
			free(s->w);
		s->w = w;
		s->cap = cap;
	}
	s->w[s->n++] = (struct work){ t, dst };
	return 0;
}

static void stack_free(struct stack *s)
{
	if (s->w != s->local)
		free(s->w);
}

int64_t up__term_words(up_term t, uint64_t max_words)
{
	struct stack s = { .w = s.local, .cap = 64 };
	uint64_t words = 0;
	int64_t r = 0;

	if (up__is_bad(t) || !up__term_plausible(t))
		return -EINVAL;
	if (push(&s, t, NULL))
		return -ENOMEM;
	while (s.n) {
		up_term x = s.w[--s.n].t;
		if (!up__is_boxed(x))
			continue;
		const uint64_t *h = up__box(x);
		words += up__box_words(h);
		if (words > max_words) {
			r = -EMSGSIZE;
			break;
		}
		unsigned type = up__btype(h);
		if (type == UP__B_TUPLE || type == UP__B_CONS) {
			uint64_t n = type == UP__B_CONS ? 2 : up__bsize(h);
			for (uint64_t i = 0; i < n && r == 0; i++) {
				if (up__is_bad(h[1 + i]) || !up__term_plausible(h[1 + i]))
					r = -EINVAL;
				else if (up__is_boxed(h[1 + i]) && push(&s, h[1 + i], NULL))
					r = -ENOMEM;
			}
			if (r)
				break;
		}
	}
	stack_free(&s);
	return r ? r : (int64_t)words;
}

up_term up__term_copy(up_term t, uint64_t *dst)
{
	struct stack s = { .w = s.local, .cap = 64 };
	up_term root = t;

	if (!up__is_boxed(t))
		return t;
	/* The words were counted, so the work stack is the only allocation;
	 * its failure is reported as a bad term. */
	if (push(&s, t, &root))
		return up__mkbad(-ENOMEM);
	while (s.n) {
		struct work w = s.w[--s.n];
		if (!up__is_boxed(w.t)) {
			*w.dst = w.t;
			continue;
		}
		const uint64_t *h = up__box(w.t);
		uint64_t n = up__box_words(h);
		uint64_t *c = dst;
		dst += n;
		memcpy(c, h, n * 8);
		*w.dst = up__mkbox(c);
		unsigned type = up__btype(h);
		if (type == UP__B_TUPLE || type == UP__B_CONS) {
			uint64_t k = type == UP__B_CONS ? 2 : up__bsize(h);
			for (uint64_t i = 0; i < k; i++)
				if (up__is_boxed(h[1 + i]) && push(&s, h[1 + i], &c[1 + i])) {
					stack_free(&s);
					return up__mkbad(-ENOMEM);
				}
		}
	}
	stack_free(&s);
	return root;
}
