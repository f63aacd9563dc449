/*
 * dict.c - the process dictionary: an open-addressing hash table of term
 * keys to term values in the process's own heap.  Keys and values are
 * copied in (up_put), so the caller's terms may go away afterwards.  The
 * heap is a bump allocator: a replaced value, an erased entry or an
 * outgrown table stays allocated until the process exits (or a heap reset
 * below it).  Owner process only.
 */
#include <errno.h>

#include "proc.h"
#include "scheduler.h"
#include "term.h"

enum { EMPTY = 0, FULL, GONE };

struct ent {
	uint64_t hash;
	up_term key, value;
	uint32_t state;
	uint32_t kbytes, vbytes;   /* side allocation sizes of the copies */
	uint32_t pad;
};

struct up__dict {
	uint64_t cap, n, used;  /* used: FULL + GONE */
	struct ent e[];
};

static inline struct up__proc *current(void)
{
	struct up__sched *s = up__self_sched;
	return s ? s->current : NULL;
}

/* A copy of t in a side allocation (*bytes its size, 0 for an
 * immediate), or a bad term. */
static up_term keep(struct up__proc *p, up_term t, uint32_t *bytes)
{
	int64_t words = up__term_words(t, (uint64_t)1 << 28);
	*bytes = 0;
	if (words < 0)
		return up__mkbad((int)words);
	if (words == 0)
		return t;
	uint64_t *buf = up__side_alloc(p, (size_t)words * 8);
	if (!buf)
		return up__mkbad(-ENOMEM);
	up_term c = up__term_copy(t, buf);
	if (up__is_bad(c)) {
		/* Its work stack failed: the buffer is not kept. */
		up__side_free(p, buf, (size_t)words * 8);
		return c;
	}
	*bytes = (uint32_t)(words * 8);
	return c;
}

static void drop(struct up__proc *p, up_term t, uint32_t bytes)
{
	if (bytes)
		up__side_free(p, up__box(t), bytes);
}

void up__dict_free(struct up__proc *p)
{
	struct up__dict *d = p->dict;
	if (!d)
		return;
	for (uint64_t i = 0; i < d->cap; i++)
		if (d->e[i].state == FULL) {
			drop(p, d->e[i].key, d->e[i].kbytes);
			drop(p, d->e[i].value, d->e[i].vbytes);
		}
	up__side_free(p, d, sizeof(*d) + d->cap * sizeof(struct ent));
	p->dict = NULL;
}

static struct ent *find(struct up__dict *d, up_term key, uint64_t h)
{
	if (!d)
		return NULL;
	for (uint64_t i = h & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
		struct ent *e = &d->e[i];
		if (e->state == EMPTY)
			return NULL;
		if (e->state == FULL && e->hash == h && up_equal(e->key, key))
			return e;
	}
}

static int grow(struct up__proc *p)
{
	struct up__dict *old = p->dict;
	uint64_t cap = old ? old->cap * 2 : 16;
	if (old && old->n * 4 < old->cap)
		cap = old->cap; /* mostly tombstones: rebuild at the same size */
	struct up__dict *d = up__side_alloc(p, sizeof(*d) + cap * sizeof(struct ent));
	if (!d)
		return -ENOMEM;
	memset(d, 0, sizeof(*d) + cap * sizeof(struct ent));
	d->cap = cap;
	for (uint64_t i = 0; old && i < old->cap; i++) {
		struct ent *e = &old->e[i];
		if (e->state != FULL)
			continue;
		uint64_t j = e->hash & (cap - 1);
		while (d->e[j].state != EMPTY)
			j = (j + 1) & (cap - 1);
		d->e[j] = *e;
		d->n++;
		d->used++;
	}
	if (old)
		up__side_free(p, old, sizeof(*old) + old->cap * sizeof(struct ent));
	p->dict = d;
	return 0;
}

int up_put(up_term key, up_term value)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (up__is_bad(key) || up__is_bad(value))
		return -EINVAL;
	uint64_t h = up_hash(key);
	struct ent *e = find(p->dict, key, h);
	uint32_t vbytes, kbytes;
	up_term v = keep(p, value, &vbytes);
	if (up__is_bad(v))
		return up_term_error(v);
	if (e) {
		drop(p, e->value, e->vbytes);
		e->value = v;
		e->vbytes = vbytes;
		return 0;
	}
	if ((!p->dict || (p->dict->used + 1) * 4 > p->dict->cap * 3) && grow(p) != 0) {
		drop(p, v, vbytes);
		return -ENOMEM;
	}
	up_term k = keep(p, key, &kbytes);
	if (up__is_bad(k)) {
		drop(p, v, vbytes);
		return up_term_error(k);
	}
	struct up__dict *d = p->dict;
	uint64_t i = h & (d->cap - 1);
	while (d->e[i].state == FULL)
		i = (i + 1) & (d->cap - 1);
	if (d->e[i].state == EMPTY)
		d->used++;
	d->e[i] = (struct ent){ .hash = h, .key = k, .value = v, .state = FULL,
				.kbytes = kbytes, .vbytes = vbytes };
	d->n++;
	return 0;
}

int up_get(up_term key, up_term *value)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (up__is_bad(key) || !value)
		return -EINVAL;
	struct ent *e = find(p->dict, key, up_hash(key));
	if (!e)
		return -ENOENT;
	*value = e->value;
	return 0;
}

int up_erase(up_term key)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (up__is_bad(key))
		return -EINVAL;
	struct ent *e = find(p->dict, key, up_hash(key));
	if (!e)
		return -ENOENT;
	drop(p, e->key, e->kbytes);
	drop(p, e->value, e->vbytes);
	e->state = GONE;
	p->dict->n--;
	return 0;
}
