/*
 * table.c - shared tables (Erlang's ETS `set`): term keys to term values
 * reached by every process through a handle (see uproc.h for the API).
 *
 * Layout: a table is 64 stripes chosen by the top bits of the key's hash;
 * a stripe is an open-addressing array of pointers to objects.  An object
 * is one node-local block (the table's node) holding the key's and the
 * value's copies; it never changes once published, except that an
 * immediate value may be replaced in place by an atomic store (counters).
 *
 * Invariants:
 *  - Writers of a stripe hold its spin lock; they never switch fibers while
 *    holding it (no table operation yields inside), so the lock is held for
 *    a few pointer stores.  Terms are copied before the lock is taken.
 *  - A writer makes its changes between two increments of the stripe's
 *    `seq` (odd while it writes): traversals take a stripe's snapshot when
 *    `seq` did not move, and lock the stripe after SNAPSHOT_TRIES attempts.
 *  - Readers take no lock: inside an EBR read section (ebr.h) they load the
 *    directory entry, the stripe's array and the object; whatever a writer
 *    unlinks (a replaced or deleted object, an outgrown array, a deleted
 *    table) is retired and freed after every reader that could see it left.
 *  - An array keeps at least half of its slots empty (tombstones count as
 *    used), so every probe ends, and soon: a slot holds the key's hash
 *    beside the object's pointer, so a probe dereferences only objects
 *    whose hash matches.
 *  - The directory (handle -> table) is segments that never move, written
 *    under dir_lock and read without it; a handle is gen << 20 | index, and
 *    the generation of an index only grows, so a handle is never reused.
 *    Names, owners' lists, heirs and give-aways are under dir_lock.
 *  - A process's `tables` field is set before its liveness is checked when
 *    it is given a table; its reaper clears its tag before reading that
 *    field (both sequentially consistent), so a table never stays with a
 *    dead owner.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "ebr.h"
#include "node_mem.h"
#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"
#include "term.h"

#define NSTRIPE 64
#define STRIPE_SHIFT 58
#define IDX_BITS 20
#define SEG_BITS 10
#define NSEG (1u << (IDX_BITS - SEG_BITS))
#define SEG_SIZE (1u << SEG_BITS)
#define SNAPSHOT_TRIES 4
#define KNOWN_FLAGS (UP_TABLE_PUBLIC | UP_TABLE_PRIVATE)
#define TOMB ((struct obj *)1)

struct obj {
	struct up__retired r;
	uint64_t hash;
	up_term key;
	up_term value;        /* atomic: an immediate may be replaced in place */
	uint32_t bytes;       /* of this block */
	uint32_t kwords;      /* the key's copy; the value's follows it */
	uint64_t words[];
};

struct arr {
	struct up__retired r;
	uint64_t cap;         /* a power of two */
	struct slot {
		uint64_t hash;    /* of the object's key: a filter, checked again */
		struct obj *o;    /* atomic: NULL, TOMB or an object */
	} slot[];
};

struct stripe {
	uint32_t lock;        /* writers */
	uint32_t seq;         /* odd while a writer changes the stripe */
	struct arr *arr;      /* atomic; NULL until the first insert */
	uint64_t n;           /* objects (read racily by up_table_size) */
	uint64_t used;        /* objects and tombstones */
} __attribute__((aligned(UP_CACHELINE)));

struct up__table {
	struct up__retired r;
	up_table id;
	up_pid owner;         /* atomic; written under dir_lock */
	unsigned access;
	int node;
	up_term name;         /* an atom, or UP_NIL */
	/* under dir_lock */
	struct up__table *own_prev, *own_next;
	up_pid heir;
	up_term heir_data;
	void *heir_buf;
	size_t heir_bytes;
	struct stripe st[NSTRIPE];
};

struct dirent {
	struct up__table *t;  /* atomic */
	uint64_t gen;
};

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dirent *dir[NSEG];
static uint32_t dir_top;
static uint32_t *dir_free;
static uint32_t nfree, capfree;
static struct named { up_term name; struct up__table *t; } *names;
static size_t nnames, capnames;

/* ------------------------------------------------------------- helpers */

/* up_hash's low bits are weak for small integers: a finaliser spreads
 * every input bit over the stripe (top) and slot (bottom) bits. */
static inline uint64_t key_hash(up_term key)
{
	uint64_t h = up_hash(key);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static inline int key_eq(up_term a, up_term b)
{
	/* Immediates are canonical: equal iff the same word. */
	return a == b || (up__is_boxed(a) && up__is_boxed(b) && up_equal(a, b));
}

static void stripe_lock(struct stripe *st)
{
	unsigned spins = 0;
	while (__atomic_exchange_n(&st->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&st->lock, __ATOMIC_RELAXED))
			if (++spins % 1024)
				__builtin_ia32_pause();
			else
				sched_yield(); /* the holder's thread may be preempted */
}

static void stripe_unlock(struct stripe *st)
{
	__atomic_store_n(&st->lock, 0, __ATOMIC_RELEASE);
}

static inline void write_begin(struct stripe *st)
{
	__atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void write_end(struct stripe *st)
{
	__atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELEASE);
}

static void obj_free(struct up__retired *r)
{
	up__node_free(r, ((struct obj *)r)->bytes);
}

static void arr_free(struct up__retired *r)
{
	up__node_free(r, sizeof(struct arr) + ((struct arr *)r)->cap * sizeof(struct slot));
}

static void table_free(struct up__retired *r)
{
	struct up__table *t = (struct up__table *)r;
	for (int i = 0; i < NSTRIPE; i++) {
		struct arr *a = t->st[i].arr;
		for (uint64_t j = 0; a && j < a->cap; j++)
			if (a->slot[j].o && a->slot[j].o != TOMB)
				obj_free(&a->slot[j].o->r);
		if (a)
			arr_free(&a->r);
	}
	if (t->heir_buf)
		up__node_free(t->heir_buf, t->heir_bytes);
	up__node_free(t, sizeof(*t));
}

static void *table_alloc(struct up__sched *s, int node, size_t size)
{
	return s && s->node == node ? up__local_alloc(size) : up__node_alloc(node, size);
}

static inline uint64_t max_words(void)
{
	return up__rt.max_message_size / 8;
}

/* An object holding copies of key and value (hash h), or NULL and *err. */
static struct obj *obj_make(struct up__sched *s, struct up__table *t, uint64_t h, up_term key,
			    up_term value, int *err)
{
	int64_t kw = up__term_words(key, max_words());
	int64_t vw = kw < 0 ? 0 : up__term_words(value, max_words());
	if (kw < 0 || vw < 0) {
		*err = (int)(kw < 0 ? kw : vw);
		return NULL;
	}
	if ((uint64_t)(kw + vw) > max_words()) {
		*err = -EMSGSIZE;
		return NULL;
	}
	size_t bytes = sizeof(struct obj) + (size_t)(kw + vw) * 8;
	struct obj *o = table_alloc(s, t->node, bytes);
	if (!o) {
		*err = -ENOMEM;
		return NULL;
	}
	o->r.free = obj_free;
	o->hash = h;
	o->bytes = (uint32_t)bytes;
	o->kwords = (uint32_t)kw;
	o->key = up__term_copy(key, o->words);
	o->value = up__term_copy(value, o->words + kw);
	if (up__is_bad(o->key) || up__is_bad(o->value)) {
		*err = -ENOMEM;
		up__node_free(o, bytes);
		return NULL;
	}
	return o;
}

/* The object of key in a (and its slot), or NULL. */
static struct obj *probe(struct arr *a, uint64_t h, up_term key, uint64_t *pos)
{
	if (!a)
		return NULL;
	uint64_t m = a->cap - 1;
	for (uint64_t i = h & m, n = 0; n <= m; i = (i + 1) & m, n++) {
		/* The object first (acquire), then its hash: a slot's hash is
		 * written before its object is published. */
		struct obj *o = __atomic_load_n(&a->slot[i].o, __ATOMIC_ACQUIRE);
		if (!o)
			return NULL;
		if (o != TOMB && __atomic_load_n(&a->slot[i].hash, __ATOMIC_RELAXED) == h &&
		    o->hash == h && key_eq(o->key, key)) {
			*pos = i;
			return o;
		}
	}
	return NULL;
}

/* Stripe locked: make room for one more object (a bigger array, or the
 * same size without tombstones).  The old array is returned for
 * retirement (*old), NULL if there was none. */
static int make_room(struct up__sched *s, struct up__table *t, struct stripe *st,
		     struct arr **old)
{
	struct arr *a = st->arr;
	*old = NULL;
	if (a && (st->used + 1) * 2 <= a->cap)
		return 0;
	uint64_t cap = 8;
	while (cap < (st->n + 1) * 4)
		cap *= 2;
	size_t bytes = sizeof(struct arr) + cap * sizeof(struct slot);
	struct arr *b = table_alloc(s, t->node, bytes);
	if (!b)
		return -ENOMEM;
	memset(b, 0, bytes);
	b->r.free = arr_free;
	b->cap = cap;
	for (uint64_t i = 0; a && i < a->cap; i++) {
		struct obj *o = a->slot[i].o;
		if (!o || o == TOMB)
			continue;
		uint64_t j = o->hash & (cap - 1);
		while (b->slot[j].o)
			j = (j + 1) & (cap - 1);
		b->slot[j] = (struct slot){ o->hash, o };
	}
	write_begin(st);
	__atomic_store_n(&st->arr, b, __ATOMIC_RELEASE);
	st->used = st->n;
	write_end(st);
	*old = a;
	return 0;
}

/* Stripe locked, key absent: publish o in a free slot of the array. */
static void place(struct stripe *st, struct obj *o)
{
	struct arr *a = st->arr;
	uint64_t m = a->cap - 1, i = o->hash & m;
	struct obj *cur;
	while ((cur = a->slot[i].o) && cur != TOMB)
		i = (i + 1) & m;
	write_begin(st);
	if (!cur)
		st->used++;
	st->n++;
	__atomic_store_n(&a->slot[i].hash, o->hash, __ATOMIC_RELAXED);
	__atomic_store_n(&a->slot[i].o, o, __ATOMIC_RELEASE);
	write_end(st);
}

/* ---------------------------------------------------- handles, access */

struct op {
	struct up__sched *s;
	struct up__proc *p;
	struct up__table *t;
};

static struct up__table *resolve(up_table id)
{
	if (id <= 0)
		return NULL;
	uint64_t idx = (uint64_t)id & ((1u << IDX_BITS) - 1);
	struct dirent *seg = __atomic_load_n(&dir[idx >> SEG_BITS], __ATOMIC_ACQUIRE);
	if (!seg)
		return NULL;
	struct up__table *t = __atomic_load_n(&seg[idx & (SEG_SIZE - 1)].t, __ATOMIC_ACQUIRE);
	return t && t->id == id ? t : NULL;
}

static int allowed(const struct up__table *t, up_pid self, int write)
{
	if (__atomic_load_n(&t->owner, __ATOMIC_RELAXED) == self)
		return 1;
	return t->access == UP_TABLE_PUBLIC || (!write && t->access == UP_TABLE_PROTECTED);
}

static inline struct up__proc *current(struct up__sched **sp)
{
	struct up__sched *s = up__self_sched;
	*sp = s;
	return s ? s->current : NULL;
}

/* Enter a read section on table id for the calling process: 0 (then
 * op_end), or an error. */
static int op_begin(struct op *o, up_table id, int write)
{
	o->p = current(&o->s);
	if (!o->p)
		return -EPERM;
	if (!__atomic_load_n(&up__ebr_slots, __ATOMIC_ACQUIRE))
		return -EBADF; /* no table was made in this run */
	up__ebr_enter(o->s->index);
	o->t = resolve(id);
	int r = !o->t ? -EBADF : !allowed(o->t, o->p->pid, write) ? -EACCES : 0;
	if (r)
		up__ebr_exit(o->s->index);
	return r;
}

static inline void op_end(struct op *o, int reductions)
{
	up__ebr_exit(o->s->index);
	up__charge(o->s, reductions);
}

static inline int copy_cost(uint64_t words)
{
	return 1 + (int)(words < (1u << 20) ? words / 32 : 1u << 15);
}

/* ----------------------------------------------------- single keys */

static int insert(up_table id, up_term key, up_term value, int only_new)
{
	struct op op;
	int r;
	if (up__is_bad(key) || up__is_bad(value))
		return current(&op.s) ? -EINVAL : -EPERM;
	if ((r = op_begin(&op, id, 1)) != 0)
		return r;
	struct up__table *t = op.t;
	uint64_t h = key_hash(key);
	struct obj *o = obj_make(op.s, t, h, key, value, &r), *old;
	if (!o) {
		op_end(&op, 1);
		return r;
	}
	struct stripe *st = &t->st[h >> STRIPE_SHIFT];
	struct arr *grown = NULL;
	uint64_t pos;
	stripe_lock(st);
	if ((old = probe(st->arr, h, key, &pos)) != NULL) {
		if (only_new) {
			stripe_unlock(st);
			obj_free(&o->r);
			op_end(&op, 1);
			return -EEXIST;
		}
		write_begin(st);
		__atomic_store_n(&st->arr->slot[pos].o, o, __ATOMIC_RELEASE);
		write_end(st);
	} else if ((r = make_room(op.s, t, st, &grown)) == 0) {
		place(st, o);
	}
	stripe_unlock(st);
	if (r) {
		obj_free(&o->r);
	} else {
		if (old)
			up__ebr_retire(op.s->index, &old->r);
		if (grown)
			up__ebr_retire(op.s->index, &grown->r);
	}
	op_end(&op, copy_cost((o->bytes - sizeof(*o)) / 8));
	return r;
}

int up_table_insert(up_table t, up_term key, up_term value)
{
	return insert(t, key, value, 0);
}

int up_table_insert_new(up_table t, up_term key, up_term value)
{
	return insert(t, key, value, 1);
}

int up_table_lookup(up_table id, up_term key, up_term *value)
{
	struct op op;
	int r;
	if (up__is_bad(key) || !value)
		return current(&op.s) ? -EINVAL : -EPERM;
	if ((r = op_begin(&op, id, 0)) != 0)
		return r;
	uint64_t h = key_hash(key), pos, words = 0;
	struct stripe *st = &op.t->st[h >> STRIPE_SHIFT];
	struct obj *o = probe(__atomic_load_n(&st->arr, __ATOMIC_ACQUIRE), h, key, &pos);
	if (!o) {
		r = -ENOENT;
	} else {
		up_term v = __atomic_load_n(&o->value, __ATOMIC_ACQUIRE);
		if (!up__is_boxed(v)) {
			*value = v;
		} else {
			words = (o->bytes - sizeof(*o)) / 8 - o->kwords;
			uint64_t *buf = up__heap_alloc(op.p, words * 8);
			up_term c = buf ? up__term_copy(v, buf) : up__mkbad(-ENOMEM);
			if (up__is_bad(c))
				r = up_term_error(c);
			else
				*value = c;
		}
	}
	op_end(&op, copy_cost(words));
	return r;
}

int up_table_delete(up_table id, up_term key)
{
	struct op op;
	int r;
	if (up__is_bad(key))
		return current(&op.s) ? -EINVAL : -EPERM;
	if ((r = op_begin(&op, id, 1)) != 0)
		return r;
	uint64_t h = key_hash(key), pos;
	struct stripe *st = &op.t->st[h >> STRIPE_SHIFT];
	stripe_lock(st);
	struct obj *o = probe(st->arr, h, key, &pos);
	if (o) {
		write_begin(st);
		__atomic_store_n(&st->arr->slot[pos].o, TOMB, __ATOMIC_RELEASE);
		st->n--;
		write_end(st);
	}
	stripe_unlock(st);
	if (o)
		up__ebr_retire(op.s->index, &o->r);
	op_end(&op, 1);
	return o ? 0 : -ENOENT;
}

static inline int is_small(int64_t v)
{
	return v >= UP__SMALL_MIN && v <= UP__SMALL_MAX;
}

/* The integer v as a term: an immediate, or boxed in w (two words). */
static up_term int_term(int64_t v, uint64_t w[2])
{
	if (is_small(v))
		return ((up_term)v << 1) | 1;
	w[0] = up__header(UP__B_INT64, 1);
	w[1] = (uint64_t)v;
	return up__mkbox(w);
}

int up_table_update_counter(up_table id, up_term key, int64_t incr, const int64_t *init,
			    int64_t *result)
{
	struct op op;
	int r;
	if (up__is_bad(key))
		return current(&op.s) ? -EINVAL : -EPERM;
	if ((r = op_begin(&op, id, 1)) != 0)
		return r;
	struct up__table *t = op.t;
	uint64_t h = key_hash(key), pos, w[2];
	struct stripe *st = &t->st[h >> STRIPE_SHIFT];
	struct obj *o, *n, *fresh = NULL, *retired = NULL;
	struct arr *grown = NULL;
	int64_t v = 0, nv = 0;
	/* A missing key with a default: the default object is made outside
	 * the lock, and used if the key is still missing under it. */
	for (;;) {
		stripe_lock(st);
		o = probe(st->arr, h, key, &pos);
		if (o || !init || fresh)
			break;
		stripe_unlock(st);
		if (!(fresh = obj_make(op.s, t, h, key, int_term(*init, w), &r))) {
			op_end(&op, 1);
			return r;
		}
	}
	if (!o && !init)
		r = -ENOENT;
	else if ((r = up_kind_of(o ? __atomic_load_n(&o->value, __ATOMIC_RELAXED) : fresh->value) ==
			      UP_K_INT ? 0 : -EINVAL) == 0)
		up_get_int(o ? o->value : fresh->value, &v);
	if (r == 0 && __builtin_add_overflow(v, incr, &nv))
		r = -ERANGE;
	if (r)
		goto out;
	if (o && is_small(nv) && !up__is_boxed(o->value)) {
		/* The common case: an immediate replaced in place. */
		write_begin(st);
		__atomic_store_n(&o->value, int_term(nv, w), __ATOMIC_RELEASE);
		write_end(st);
		goto out;
	}
	if (!o && is_small(nv) && !up__is_boxed(fresh->value)) {
		fresh->value = int_term(nv, w);
		n = fresh;
		fresh = NULL;
	} else if (!(n = obj_make(op.s, t, h, o ? o->key : fresh->key, int_term(nv, w), &r))) {
		goto out;
	}
	if (o) {
		write_begin(st);
		__atomic_store_n(&st->arr->slot[pos].o, n, __ATOMIC_RELEASE);
		write_end(st);
		retired = o;
	} else if ((r = make_room(op.s, t, st, &grown)) == 0) {
		place(st, n);
	} else {
		obj_free(&n->r);
	}
out:
	stripe_unlock(st);
	if (fresh)
		obj_free(&fresh->r);
	if (retired)
		up__ebr_retire(op.s->index, &retired->r);
	if (grown)
		up__ebr_retire(op.s->index, &grown->r);
	if (r == 0 && result)
		*result = nv;
	op_end(&op, 1);
	return r;
}

long up_table_size(up_table id)
{
	struct op op;
	int r;
	if ((r = op_begin(&op, id, 0)) != 0)
		return r;
	uint64_t n = 0;
	for (int i = 0; i < NSTRIPE; i++)
		n += __atomic_load_n(&op.t->st[i].n, __ATOMIC_RELAXED);
	op_end(&op, 1);
	return (long)n;
}
/* ---------------------------------------------------------- traversals */

struct seen {
	struct obj *o;
	up_term value;   /* as it was in the snapshot (counters change in place) */
};

typedef int (*filter_fn)(up_term key, up_term value, void *arg);

/* Stripe st's objects, as one atomic snapshot, into *buf (grown as
 * needed, capacity *cap); their number, or -ENOMEM. */
static long snapshot(struct stripe *st, struct seen **buf, uint64_t *cap)
{
	for (int tries = 0;; tries++) {
		int locked = tries >= SNAPSHOT_TRIES;
		uint32_t seq = 0;
		if (locked) {
			stripe_lock(st);
		} else if ((seq = __atomic_load_n(&st->seq, __ATOMIC_ACQUIRE)) & 1) {
			__builtin_ia32_pause();
			continue;
		}
		struct arr *a = __atomic_load_n(&st->arr, __ATOMIC_ACQUIRE);
		uint64_t acap = a ? a->cap : 0;
		if (acap > *cap) {
			if (locked)
				stripe_unlock(st);
			struct seen *b = realloc(*buf, acap * sizeof(*b));
			if (!b)
				return -ENOMEM;
			*buf = b;
			*cap = acap;
			tries--;
			continue;
		}
		long n = 0;
		for (uint64_t i = 0; i < acap; i++) {
			struct obj *o = __atomic_load_n(&a->slot[i].o, __ATOMIC_ACQUIRE);
			if (o && o != TOMB)
				(*buf)[n++] = (struct seen){ o, __atomic_load_n(&o->value, __ATOMIC_ACQUIRE) };
		}
		if (locked) {
			stripe_unlock(st);
			return n;
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&st->seq, __ATOMIC_RELAXED) == seq)
			return n;
	}
}

/* {Key, Value} in p's heap, consed onto *list. */
static int emit(struct up__proc *p, const struct seen *e, up_term *list, uint64_t *words)
{
	int64_t kw = e->o->kwords;
	int64_t vw = up__is_boxed(e->value) ? (int64_t)((e->o->bytes - sizeof(*e->o)) / 8) - kw : 0;
	uint64_t *w = up__heap_alloc(p, (size_t)(kw + vw + 6) * 8);
	if (!w)
		return -ENOMEM;
	up_term k = up__term_copy(e->o->key, w + 6);
	up_term v = up__term_copy(e->value, w + 6 + kw);
	if (up__is_bad(k) || up__is_bad(v))
		return -ENOMEM;
	w[0] = up__header(UP__B_TUPLE, 2);
	w[1] = k;
	w[2] = v;
	w[3] = up__header(UP__B_CONS, 2);
	w[4] = up__mkbox(w);
	w[5] = *list;
	*list = up__mkbox(w + 3);
	*words += (uint64_t)(kw + vw + 6);
	return 0;
}

static long traverse(up_table id, filter_fn f, void *arg, up_term *list)
{
	struct op op;
	int r;
	if (!list)
		return current(&op.s) ? -EINVAL : -EPERM;
	if ((r = op_begin(&op, id, 0)) != 0)
		return r;
	struct seen *buf = NULL;
	uint64_t cap = 0, words = 0;
	up_term out = UP_NIL;
	long total = 0;
	for (int i = 0; i < NSTRIPE && r == 0; i++) {
		long n = snapshot(&op.t->st[i], &buf, &cap);
		if (n < 0)
			r = (int)n;
		for (long j = 0; j < n && r == 0; j++)
			if (!f || f(buf[j].o->key, buf[j].value, arg)) {
				r = emit(op.p, &buf[j], &out, &words);
				total++;
			}
	}
	free(buf);
	op_end(&op, copy_cost(words));
	if (r)
		return r;
	*list = out;
	return total;
}

long up_table_select(up_table t, up_table_pred pred, void *arg, up_term *list)
{
	return traverse(t, pred, arg, list);
}

/* Does key start with prefix (see up_table_match_prefix)? */
static int has_prefix(up_term key, up_term value, void *arg)
{
	up_term prefix = *(const up_term *)arg;
	(void)value;
	switch (up_kind_of(prefix)) {
	case UP_K_BINARY: {
		const void *pd, *kd;
		size_t pn, kn;
		up_get_binary(prefix, &pd, &pn);
		return up_get_binary(key, &kd, &kn) == 0 && kn >= pn && memcmp(kd, pd, pn) == 0;
	}
	case UP_K_TUPLE: {
		long pn = up_tuple_arity(prefix), kn = up_tuple_arity(key);
		if (kn < pn)
			return 0;
		for (long i = 0; i < pn; i++)
			if (!up_equal(up__box(prefix)[1 + i], up__box(key)[1 + i]))
				return 0;
		return 1;
	}
	case UP_K_LIST:
	case UP_K_NIL:
		if (key != UP_NIL && up_kind_of(key) != UP_K_LIST)
			return 0;
		while (up_kind_of(prefix) == UP_K_LIST) {
			up_term ph, pt, kh, kt;
			if (up_get_cons(key, &kh, &kt) != 0)
				return 0;
			up_get_cons(prefix, &ph, &pt);
			if (!up_equal(ph, kh))
				return 0;
			prefix = pt;
			key = kt;
		}
		return 1; /* the key's tail may be anything */
	default:
		return up_equal(key, prefix);
	}
}

long up_table_match_prefix(up_table t, up_term prefix, up_term *list)
{
	struct up__sched *s;
	if (up__is_bad(prefix) || !up__term_plausible(prefix))
		return current(&s) ? -EINVAL : -EPERM;
	if (up_kind_of(prefix) == UP_K_LIST && up_list_length(prefix) < 0)
		return current(&s) ? -EINVAL : -EPERM;
	return traverse(t, has_prefix, &prefix, list);
}

/* ------------------------------------------------ directory, ownership */

static void own_link(struct up__proc *p, struct up__table *t)
{
	t->own_prev = NULL;
	t->own_next = p->tables;
	if (p->tables)
		p->tables->own_prev = t;
	/* Set before the owner's liveness is checked (see the top). */
	__atomic_store_n(&p->tables, t, __ATOMIC_SEQ_CST);
}

static void own_unlink(struct up__proc *p, struct up__table *t)
{
	if (t->own_prev)
		t->own_prev->own_next = t->own_next;
	else
		__atomic_store_n(&p->tables, t->own_next, __ATOMIC_SEQ_CST);
	if (t->own_next)
		t->own_next->own_prev = t->own_prev;
	t->own_prev = t->own_next = NULL;
}

static int pid_alive(up_pid pid, struct up__proc *p)
{
	return __atomic_load_n(&p->inbox[0].tag, __ATOMIC_SEQ_CST) == (uint64_t)pid;
}

/* dir_lock held: unpublish t (handle, name); the caller has taken it off
 * its owner's list and retires it. */
static void unpublish(struct up__table *t)
{
	uint64_t idx = (uint64_t)t->id & ((1u << IDX_BITS) - 1);
	__atomic_store_n(&dir[idx >> SEG_BITS][idx & (SEG_SIZE - 1)].t, NULL, __ATOMIC_RELEASE);
	if (t->name != UP_NIL)
		for (size_t i = 0; i < nnames; i++)
			if (names[i].t == t) {
				names[i] = names[--nnames];
				break;
			}
	dir_free[nfree++] = (uint32_t)idx; /* room kept by up_table_new */
}

/* dir_lock held, t on nobody's list: t goes to `to` (not the old owner),
 * which is told {'ETS-TRANSFER', Tab, From, data}.  0, or -ESRCH when `to`
 * is not alive (t is then still on nobody's list). */
static int transfer(struct up__sched *s, struct up__table *t, up_pid to, up_term data)
{
	struct up__proc *np = up__pid_proc(to);
	up_pid from = __atomic_load_n(&t->owner, __ATOMIC_RELAXED);
	own_link(np, t);
	if (!pid_alive(to, np)) {
		own_unlink(np, t);
		return -ESRCH;
	}
	__atomic_store_n(&t->owner, to, __ATOMIC_RELEASE);
	t->heir = 0;
	uint64_t tw[5], iw[2];
	tw[0] = up__header(UP__B_TUPLE, 4);
	tw[1] = up_atom("ETS-TRANSFER");
	tw[2] = int_term(t->id, iw);
	tw[3] = up_pid_term(from);
	tw[4] = data;
	/* Sent without charging anyone (this may run in a reaper). */
	up__signal_send(s, to, UP__MSG_TERM, up__mkbox(tw));
	return 0;
}

/* A copy of t in node memory (*bytes: its size, 0 for an immediate). */
static up_term keep(int node, up_term t, void **buf, size_t *bytes)
{
	int64_t w = up__term_words(t, max_words());
	*buf = NULL;
	*bytes = 0;
	if (w <= 0)
		return w < 0 ? up__mkbad((int)w) : t;
	if (!(*buf = up__node_alloc(node, (size_t)w * 8)))
		return up__mkbad(-ENOMEM);
	*bytes = (size_t)w * 8;
	up_term c = up__term_copy(t, *buf);
	if (up__is_bad(c)) {
		up__node_free(*buf, *bytes);
		*buf = NULL;
	}
	return c;
}

up_table up_table_new(up_term name, unsigned flags)
{
	struct up__sched *s;
	struct up__proc *p = current(&s);
	if (!p)
		return -EPERM;
	if ((flags & ~KNOWN_FLAGS) || flags == KNOWN_FLAGS ||
	    (name != UP_NIL && up_kind_of(name) != UP_K_ATOM))
		return -EINVAL;
	struct up__table *t = up__node_alloc_line(s->node, sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	t->r.free = table_free;
	t->access = flags;
	t->node = s->node;
	t->name = name;
	t->owner = p->pid;
	int r = 0;
	pthread_mutex_lock(&dir_lock);
	if ((r = up__ebr_init(up__rt.nsched)) != 0)
		goto fail;
	for (size_t i = 0; name != UP_NIL && i < nnames; i++)
		if (names[i].name == name) {
			r = -EEXIST;
			goto fail;
		}
	if (name != UP_NIL && nnames == capnames) {
		size_t cap = capnames ? capnames * 2 : 16;
		void *b = realloc(names, cap * sizeof(*names));
		if (!b) {
			r = -ENOMEM;
			goto fail;
		}
		names = b;
		capnames = cap;
	}
	uint32_t idx;
	if (nfree) {
		idx = dir_free[--nfree];
	} else {
		if (dir_top == NSEG * SEG_SIZE) {
			r = -ENFILE;
			goto fail;
		}
		idx = dir_top;
		if (!dir[idx >> SEG_BITS]) {
			struct dirent *seg = calloc(SEG_SIZE, sizeof(*seg));
			if (!seg) {
				r = -ENOMEM;
				goto fail;
			}
			__atomic_store_n(&dir[idx >> SEG_BITS], seg, __ATOMIC_RELEASE);
		}
		if (capfree <= dir_top) {
			/* Every index handed out can be free at once. */
			uint32_t cap = capfree ? capfree * 2 : 64;
			void *b = realloc(dir_free, cap * sizeof(*dir_free));
			if (!b) {
				r = -ENOMEM;
				goto fail;
			}
			dir_free = b;
			capfree = cap;
		}
		dir_top++;
	}
	struct dirent *e = &dir[idx >> SEG_BITS][idx & (SEG_SIZE - 1)];
	t->id = (up_table)(++e->gen << IDX_BITS | idx);
	if (name != UP_NIL)
		names[nnames++] = (struct named){ name, t };
	own_link(p, t);
	__atomic_store_n(&e->t, t, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dir_lock);
	return t->id;
fail:
	pthread_mutex_unlock(&dir_lock);
	up__node_free(t, sizeof(*t));
	return r;
}

up_table up_table_whereis(up_term name)
{
	struct up__sched *s;
	if (!current(&s))
		return -EPERM;
	if (up_kind_of(name) != UP_K_ATOM)
		return -EINVAL;
	up_table id = -ENOENT;
	pthread_mutex_lock(&dir_lock);
	for (size_t i = 0; i < nnames; i++)
		if (names[i].name == name)
			id = names[i].t->id;
	pthread_mutex_unlock(&dir_lock);
	return id;
}

/* Lock the directory and find live table id for the caller: 0 with the
 * lock held, or an error without it.  owner_only: -EACCES unless the
 * caller owns it; else write access is needed if write. */
static int dir_op(up_table id, int owner_only, int write, struct up__sched **s,
		  struct up__proc **p, struct up__table **t)
{
	if (!(*p = current(s)))
		return -EPERM;
	pthread_mutex_lock(&dir_lock);
	*t = resolve(id);
	int r = !*t ? -EBADF
		: owner_only ? ((*t)->owner == (*p)->pid ? 0 : -EACCES)
		: allowed(*t, (*p)->pid, write) ? 0 : -EACCES;
	if (r)
		pthread_mutex_unlock(&dir_lock);
	return r;
}

int up_table_destroy(up_table id)
{
	struct up__sched *s;
	struct up__proc *p;
	struct up__table *t;
	int r = dir_op(id, 0, 1, &s, &p, &t);
	if (r)
		return r;
	own_unlink(up__pid_proc(t->owner), t);
	unpublish(t);
	pthread_mutex_unlock(&dir_lock);
	up__ebr_retire(s->index, &t->r);
	return 0;
}

up_pid up_table_owner(up_table id)
{
	struct up__sched *s;
	struct up__proc *p;
	struct up__table *t;
	int r = dir_op(id, 0, 0, &s, &p, &t);
	if (r)
		return r;
	up_pid owner = t->owner;
	pthread_mutex_unlock(&dir_lock);
	return owner;
}

int up_table_give_away(up_table id, up_pid pid, up_term gift)
{
	struct up__sched *s;
	struct up__proc *p;
	struct up__table *t;
	if (up__is_bad(gift) || !up__term_plausible(gift) || !up__pid_proc(pid))
		return current(&s) ? -EINVAL : -EPERM;
	int r = dir_op(id, 1, 1, &s, &p, &t);
	if (r)
		return r;
	if (pid == p->pid) {
		r = -EINVAL;
	} else {
		own_unlink(p, t);
		if ((r = transfer(s, t, pid, gift)) != 0)
			own_link(p, t);
	}
	pthread_mutex_unlock(&dir_lock);
	return r;
}

int up_table_set_heir(up_table id, up_pid heir, up_term data)
{
	struct up__sched *s;
	struct up__proc *p;
	struct up__table *t;
	if (up__is_bad(data) || !up__term_plausible(data) || (heir != UP_PID_NONE && !up__pid_proc(heir)))
		return current(&s) ? -EINVAL : -EPERM;
	int r = dir_op(id, 1, 1, &s, &p, &t);
	if (r)
		return r;
	void *buf = NULL;
	size_t bytes = 0;
	up_term c = heir ? keep(t->node, data, &buf, &bytes) : UP_NIL;
	if (up__is_bad(c)) {
		r = up_term_error(c);
	} else {
		if (t->heir_buf)
			up__node_free(t->heir_buf, t->heir_bytes);
		t->heir = heir;
		t->heir_data = c;
		t->heir_buf = buf;
		t->heir_bytes = bytes;
	}
	pthread_mutex_unlock(&dir_lock);
	return r;
}

void up__table_exit(struct up__sched *s, struct up__proc *p)
{
	struct up__retired *dead = NULL;
	pthread_mutex_lock(&dir_lock);
	struct up__table *t;
	while ((t = p->tables) != NULL) {
		own_unlink(p, t);
		up_pid heir = t->heir;
		if (heir && heir != p->pid && up__rt_ready() && transfer(s, t, heir, t->heir_data) == 0)
			continue;
		unpublish(t);
		t->r.next = dead;
		dead = &t->r;
	}
	pthread_mutex_unlock(&dir_lock);
	while (dead) {
		struct up__retired *n = dead->next;
		up__ebr_retire(s->index, dead);
		dead = n;
	}
}

void up__table_fini(void)
{
	/* Every owner was reaped, so every table is retired already; what a
	 * failed start-up left is freed here too. */
	pthread_mutex_lock(&dir_lock);
	for (uint32_t i = 0; i < dir_top; i++) {
		struct dirent *e = &dir[i >> SEG_BITS][i & (SEG_SIZE - 1)];
		struct up__table *t = e->t;
		if (t) {
			unpublish(t);
			table_free(&t->r);
		}
	}
	nnames = 0;
	up__ebr_fini();
	pthread_mutex_unlock(&dir_lock);
}

__attribute__((destructor)) static void table_dir_free(void)
{
	for (uint32_t i = 0; i < NSEG; i++) {
		free(dir[i]);
		dir[i] = NULL;
	}
	free(dir_free);
	free(names);
	dir_free = NULL;
	names = NULL;
	nfree = capfree = dir_top = 0;
	nnames = capnames = 0;
}
