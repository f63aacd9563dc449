/*
 * term.c - building, reading, ordering, hashing and printing terms (see
 * term.h for the representation).  Builders allocate in the calling
 * process's heap; every function here is safe on any input word that a
 * builder produced, and returns -EINVAL (or a bad term) on a kind mismatch.
 */
#include "term.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "proc.h"
#include "scheduler.h"

static uint64_t *alloc_words(uint64_t n, up_term *err)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *p = s ? s->current : NULL;
	if (!p) {
		*err = up__mkbad(-EPERM);
		return NULL;
	}
	uint64_t *w = up__heap_alloc(p, n * 8);
	if (!w)
		*err = up__mkbad(-ENOMEM);
	return w;
}

int up_is_bad(up_term t) { return up__is_bad(t); }
int up_term_error(up_term t) { return up__is_bad(t) ? -(int)(t >> 8) : 0; }

up_term up_int(int64_t v)
{
	if (v >= UP__SMALL_MIN && v <= UP__SMALL_MAX)
		return ((up_term)v << 1) | 1;
	up_term err;
	uint64_t *w = alloc_words(2, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_INT64, 1);
	w[1] = (uint64_t)v;
	return up__mkbox(w);
}

up_term up_float(double v)
{
	if (!isfinite(v)) /* no Erlang term is NaN or infinite */
		return up__mkbad(-EINVAL);
	up_term err;
	uint64_t *w = alloc_words(2, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_FLOAT, 1);
	memcpy(&w[1], &v, 8);
	return up__mkbox(w);
}

up_term up_atom_len(const char *name, size_t len)
{
	if (!name || len == 0 || len > UP_ATOM_MAX)
		return up__mkbad(-EINVAL);
	int64_t i = up__atom_intern(name, len);
	return i < 0 ? up__mkbad((int)i) : ((up_term)i << 3) | UP__TAG_ATOM;
}

up_term up_atom(const char *name)
{
	return name ? up_atom_len(name, strnlen(name, UP_ATOM_MAX + 1)) : up__mkbad(-EINVAL);
}

up_term up_pid_term(up_pid pid)
{
	if (pid <= 0 || (pid >> 61)) /* bit 60: a remote pid (dist.h) */
		return up__mkbad(-EINVAL);
	return ((up_term)pid << 3) | UP__TAG_PID;
}

up_term up_binary(const void *data, size_t len)
{
	if ((!data && len) || len > ((size_t)1 << 40))
		return up__mkbad(-EINVAL);
	up_term err;
	uint64_t *w = alloc_words(1 + (len + 7) / 8, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_BINARY, len);
	if (len) {
		w[(len + 7) / 8] = 0; /* padding: deterministic bytes */
		memcpy(&w[1], data, len);
	}
	return up__mkbox(w);
}

up_term up_tuple(size_t arity, const up_term *elems)
{
	if ((!elems && arity) || arity > ((size_t)1 << 32))
		return up__mkbad(-EINVAL);
	for (size_t i = 0; i < arity; i++)
		if (up__is_bad(elems[i]))
			return elems[i];
	up_term err;
	uint64_t *w = alloc_words(1 + arity, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_TUPLE, arity);
	if (arity)
		memcpy(&w[1], elems, arity * 8);
	return up__mkbox(w);
}

up_term up_tuplev(size_t arity, ...)
{
	up_term e[64], *el = e;
	if (arity > 64 && !(el = malloc(arity * sizeof(*el))))
		return up__mkbad(-ENOMEM);
	va_list ap;
	va_start(ap, arity);
	for (size_t i = 0; i < arity; i++)
		el[i] = va_arg(ap, up_term);
	va_end(ap);
	up_term t = up_tuple(arity, el);
	if (el != e)
		free(el);
	return t;
}

up_term up_cons(up_term head, up_term tail)
{
	if (up__is_bad(head))
		return head;
	if (up__is_bad(tail))
		return tail;
	up_term err;
	uint64_t *w = alloc_words(3, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_CONS, 2);
	w[1] = head;
	w[2] = tail;
	return up__mkbox(w);
}

up_term up_list(size_t n, const up_term *elems)
{
	if (!elems && n)
		return up__mkbad(-EINVAL);
	up_term t = UP_NIL;
	for (size_t i = n; i-- > 0;) {
		t = up_cons(elems[i], t);
		if (up__is_bad(t))
			return t;
	}
	return t;
}

/* ---------------------------------------------------------------- refs */

/* Unique per OS process: a counter with the scheduler in the high bits
 * would do per run; a global counter also survives across runs. */
static uint64_t ref_counter;

up_term up_make_ref(void)
{
	up_term err;
	uint64_t *w = alloc_words(3, &err);
	if (!w)
		return err;
	uint64_t id = __atomic_add_fetch(&ref_counter, 1, __ATOMIC_RELAXED);
	uint32_t *ids = (uint32_t *)&w[1];
	w[0] = up__header(UP__B_REF, 2);
	ids[0] = (uint32_t)(id & 0x3ffff); /* Erlang's first id word has 18 bits */
	ids[1] = (uint32_t)(id >> 18);
	ids[2] = (uint32_t)(id >> 50);
	ids[3] = 0;
	return up__mkbox(w);
}

/* A reference's three id words and its spare word (0 for a local ref;
 * the node of a remote one, see dist.h). */
int up__ref_words(up_term t, uint32_t wds[4])
{
	if (!up__is_boxed(t) || up__btype(up__box(t)) != UP__B_REF || !wds)
		return -EINVAL;
	memcpy(wds, &up__box(t)[1], 16);
	return 0;
}

up_term up__ref_from_words(const uint32_t wds[4])
{
	up_term err;
	if (!wds)
		return up__mkbad(-EINVAL);
	uint64_t *w = alloc_words(3, &err);
	if (!w)
		return err;
	w[0] = up__header(UP__B_REF, 2);
	memcpy(&w[1], wds, 16);
	return up__mkbox(w);
}

/* ------------------------------------------------------------ accessors */

enum up_kind up_kind_of(up_term t)
{
	if (up__is_small(t))
		return UP_K_INT;
	switch (up__tag(t)) {
	case UP__TAG_ATOM:
		return UP_K_ATOM;
	case UP__TAG_PID:
		return UP_K_PID;
	case UP__TAG_SPECIAL:
		return t == UP_NIL ? UP_K_NIL : UP_K_BAD;
	default:
		break;
	}
	if (t == UP__TAG_BOXED)
		return UP_K_BAD; /* a NULL box */
	switch (up__btype(up__box(t))) {
	case UP__B_INT64:  return UP_K_INT;
	case UP__B_FLOAT:  return UP_K_FLOAT;
	case UP__B_BINARY: return UP_K_BINARY;
	case UP__B_TUPLE:  return UP_K_TUPLE;
	case UP__B_CONS:   return UP_K_LIST;
	case UP__B_REF:    return UP_K_REF;
	default:           return UP_K_BAD;
	}
}

static inline int is_btype(up_term t, unsigned type)
{
	return up__is_boxed(t) && t != UP__TAG_BOXED && up__btype(up__box(t)) == type;
}

int up_get_int(up_term t, int64_t *v)
{
	if (!v)
		return -EINVAL;
	if (up__is_small(t)) {
		*v = (int64_t)t >> 1;
		return 0;
	}
	if (!is_btype(t, UP__B_INT64))
		return -EINVAL;
	*v = (int64_t)up__box(t)[1];
	return 0;
}

int up_get_float(up_term t, double *v)
{
	if (!v || !is_btype(t, UP__B_FLOAT))
		return -EINVAL;
	memcpy(v, &up__box(t)[1], 8);
	return 0;
}

int up_get_atom(up_term t, const char **name, size_t *len)
{
	if (!name || !len || up_kind_of(t) != UP_K_ATOM)
		return -EINVAL;
	return up__atom_name(t >> 3, name, len);
}

int up_get_pid(up_term t, up_pid *pid)
{
	if (!pid || up_kind_of(t) != UP_K_PID)
		return -EINVAL;
	*pid = (up_pid)(t >> 3);
	return 0;
}

int up_get_binary(up_term t, const void **data, size_t *len)
{
	if (!data || !len || !is_btype(t, UP__B_BINARY))
		return -EINVAL;
	*data = &up__box(t)[1];
	*len = up__bsize(up__box(t));
	return 0;
}

long up_tuple_arity(up_term t)
{
	return is_btype(t, UP__B_TUPLE) ? (long)up__bsize(up__box(t)) : -EINVAL;
}

int up_tuple_elem(up_term t, size_t i, up_term *elem)
{
	if (!elem || !is_btype(t, UP__B_TUPLE))
		return -EINVAL;
	if (i >= up__bsize(up__box(t)))
		return -ERANGE;
	*elem = up__box(t)[1 + i];
	return 0;
}

int up_get_cons(up_term t, up_term *head, up_term *tail)
{
	if (!is_btype(t, UP__B_CONS))
		return -EINVAL;
	if (head)
		*head = up__box(t)[1];
	if (tail)
		*tail = up__box(t)[2];
	return 0;
}

long up_list_length(up_term t)
{
	long n = 0;
	while (is_btype(t, UP__B_CONS)) {
		n++;
		t = up__box(t)[2];
	}
	return t == UP_NIL ? n : -EINVAL;
}

/* ------------------------------------------------------ order and hash */

static int kind_rank(enum up_kind k)
{
	return k == UP_K_FLOAT ? UP_K_INT : (int)k; /* numbers rank together */
}

static int cmp_bytes(const void *a, size_t la, const void *b, size_t lb)
{
	int c = memcmp(a, b, la < lb ? la : lb);
	if (c)
		return c < 0 ? -1 : 1;
	return (la > lb) - (la < lb);
}

/* An integer against a float, exactly (no rounding of the integer to a
 * double: 2^53 + 1 is greater than 2.0^53, as in Erlang). */
static int cmp_int_float(int64_t i, double d)
{
	if (d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	double fl = floor(d);
	int64_t fi = (int64_t)fl;
	if (i != fi)
		return i < fi ? -1 : 1;
	return d > fl ? -1 : 0;
}

static int cmp_num(up_term a, up_term b, int exact)
{
	enum up_kind ka = up_kind_of(a), kb = up_kind_of(b);
	int64_t x, y;
	double fx, fy;
	int c;
	if (ka == UP_K_INT && kb == UP_K_INT) {
		up_get_int(a, &x);
		up_get_int(b, &y);
		return (x > y) - (x < y);
	}
	if (ka == UP_K_FLOAT && kb == UP_K_FLOAT) {
		up_get_float(a, &fx);
		up_get_float(b, &fy);
		return (fx > fy) - (fx < fy); /* 0.0 == -0.0, as OTP 25 */
	}
	if (ka == UP_K_INT) {
		up_get_int(a, &x);
		up_get_float(b, &fy);
		c = cmp_int_float(x, fy);
	} else {
		up_get_float(a, &fx);
		up_get_int(b, &y);
		c = -cmp_int_float(y, fx);
	}
	if (c || !exact)
		return c;
	return ka == UP_K_INT ? -1 : 1; /* =:= tells 1 from 1.0 */
}

/*
 * Order, equality and hash walk terms with an explicit stack (a fiber stack
 * is 64 KiB; a term may nest a million levels).  The stack starts on the C
 * stack and moves to malloc'd memory past 64 entries.
 */
struct wstack {
	up_term *w, local[128];
	size_t n, cap;
	int oom;
};

static void wpush(struct wstack *s, up_term t)
{
	if (s->n == s->cap) {
		size_t cap = s->cap * 2;
		up_term *w = malloc(cap * sizeof(*w));
		if (!w) {
			s->oom = 1;
			return;
		}
		memcpy(w, s->w, s->n * sizeof(*w));
		if (s->w != s->local)
			free(s->w);
		s->w = w;
		s->cap = cap;
	}
	s->w[s->n++] = t;
}

static void wfree(struct wstack *s)
{
	if (s->w != s->local)
		free(s->w);
}

/* Compare two terms at their top level only; 0 with *descend set when both
 * are compound of the same shape (their children must be compared). */
static int compare_top(up_term a, up_term b, int exact, int *descend)
{
	*descend = 0;
	if (a == b)
		return 0;
	enum up_kind ka = up_kind_of(a), kb = up_kind_of(b);
	if (ka == UP_K_BAD || kb == UP_K_BAD)
		return ka == kb ? (a > b) - (a < b) : (ka == UP_K_BAD ? -1 : 1);
	int ra = kind_rank(ka), rb = kind_rank(kb);
	if (ra != rb)
		return ra < rb ? -1 : 1;
	switch (ka) {
	case UP_K_INT:
	case UP_K_FLOAT:
		return cmp_num(a, b, exact);
	case UP_K_ATOM: {
		const char *na, *nb;
		size_t la, lb;
		up_get_atom(a, &na, &la);
		up_get_atom(b, &nb, &lb);
		return cmp_bytes(na, la, nb, lb);
	}
	case UP_K_PID:
		return a < b ? -1 : 1;
	case UP_K_REF: {
		const uint32_t *x = (const uint32_t *)&up__box(a)[1], *y = (const uint32_t *)&up__box(b)[1];
		for (int i = 3; i >= 0; i--) /* node first (word 3), then ids */
			if (x[i] != y[i])
				return x[i] < y[i] ? -1 : 1;
		return 0;
	}
	case UP_K_BINARY:
		return cmp_bytes(&up__box(a)[1], up__bsize(up__box(a)), &up__box(b)[1],
				 up__bsize(up__box(b)));
	case UP_K_TUPLE: {
		uint64_t na = up__bsize(up__box(a)), nb = up__bsize(up__box(b));
		if (na != nb)
			return na < nb ? -1 : 1;
		*descend = na > 0;
		return 0;
	}
	case UP_K_LIST:
		*descend = 1;
		return 0;
	default: /* [] == [] */
		return 0;
	}
}

/* Term order; exact: integers and floats of equal value differ.  Pairs
 * are compared depth first, left to right (the stack holds a, b pairs). */
static int compare(up_term a, up_term b, int exact)
{
	struct wstack s = { .w = s.local, .cap = 128 };
	int r = 0;
	wpush(&s, b);
	wpush(&s, a);
	while (s.n >= 2 && !r && !s.oom) {
		up_term x = s.w[--s.n], y = s.w[--s.n];
		int descend;
		r = compare_top(x, y, exact, &descend);
		if (r || !descend)
			continue;
		const uint64_t *hx = up__box(x), *hy = up__box(y);
		uint64_t n = up__btype(hx) == UP__B_CONS ? 2 : up__bsize(hx);
		for (uint64_t i = n; i-- > 0;) { /* first child on top */
			wpush(&s, hy[1 + i]);
			wpush(&s, hx[1 + i]);
		}
	}
	if (s.oom && !r)
		r = (a > b) - (a < b); /* out of memory: still a total order */
	wfree(&s);
	return r;
}

int up_compare(up_term a, up_term b) { return compare(a, b, 0); }
int up_equal(up_term a, up_term b) { return compare(a, b, 1) == 0; }

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

uint64_t up_hash(up_term t)
{
	struct wstack s = { .w = s.local, .cap = 128 };
	uint64_t h = 0x2545f4914f6cdd1dull;
	wpush(&s, t);
	while (s.n && !s.oom) {
		t = s.w[--s.n];
		enum up_kind k = up_kind_of(t);
		h = mix(h, (uint64_t)k);
		switch (k) {
		case UP_K_INT: {
			int64_t v;
			up_get_int(t, &v);
			h = mix(h, (uint64_t)v);
			break;
		}
		case UP_K_FLOAT: {
			double d;
			up_get_float(t, &d);
			if (d == 0)
				d = 0.0; /* -0.0 equals 0.0: one hash */
			uint64_t bits;
			memcpy(&bits, &d, 8);
			h = mix(h, bits);
			break;
		}
		case UP_K_REF:
			h = mix(mix(h, up__box(t)[1]), up__box(t)[2]);
			break;
		case UP_K_BINARY: {
			const uint8_t *d = (const uint8_t *)&up__box(t)[1];
			uint64_t n = up__bsize(up__box(t));
			h = mix(h, n);
			for (uint64_t i = 0; i < n; i++)
				h = mix(h, d[i]);
			break;
		}
		case UP_K_TUPLE:
		case UP_K_LIST: {
			const uint64_t *b = up__box(t);
			uint64_t n = k == UP_K_LIST ? 2 : up__bsize(b);
			h = mix(h, n);
			for (uint64_t i = n; i-- > 0;)
				wpush(&s, b[1 + i]);
			break;
		}
		default: /* atoms (interned), pids, [], bad: the word itself */
			h = mix(h, t);
			break;
		}
	}
	wfree(&s);
	return h;
}

/* -------------------------------------------------------------- format */

struct out {
	char *buf;
	size_t size, len;
};

static void put_bytes(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, o->len++)
		if (o->len + 1 < o->size)
			o->buf[o->len] = s[i];
}

static void put_str(struct out *o, const char *s) { put_bytes(o, s, strlen(s)); }

static void put_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put_bytes(o, tmp, (size_t)n);
}

/* Erlang's reserved words: atoms spelled like them are quoted. */
static int reserved(const char *n, size_t len)
{
	static const char *const w[] = {
		"after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr",
		"bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let", "not",
		"of", "or", "orelse", "receive", "rem", "try", "when", "xor",
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strlen(w[i]) == len && !memcmp(w[i], n, len))
			return 1;
	return 0;
}

/* Next UTF-8 code point of n[*i..len), or -1 if malformed. */
static long utf8_next(const unsigned char *n, size_t len, size_t *i)
{
	unsigned c = n[*i];
	int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
	if (extra < 0 || *i + (size_t)extra >= len + (extra ? 0 : 1))
		return -1;
	long cp = extra ? c & (0x3f >> extra) : c;
	for (int k = 1; k <= extra; k++) {
		if ((n[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (n[*i + k] & 0x3f);
	}
	*i += 1 + (size_t)extra;
	return cp;
}

/* As io_lib: unquoted when it starts with a lowercase (Latin-1) letter and
 * goes on with letters, digits, _ and @, and is no reserved word. */
static void put_atom(struct out *o, const char *n, size_t len)
{
	const unsigned char *u = (const unsigned char *)n;
	int plain = len > 0 && !reserved(n, len);
	for (size_t i = 0, first = 1; plain && i < len; first = 0) {
		long c = utf8_next(u, len, &i);
		int lower = (c >= 'a' && c <= 'z') || (c >= 0xdf && c <= 0xff && c != 0xf7);
		int other = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '@' ||
			    (c >= 0xc0 && c <= 0xde && c != 0xd7);
		plain = first ? lower : lower || other;
	}
	if (plain) {
		put_bytes(o, n, len);
		return;
	}
	put_bytes(o, "'", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = u[i];
		static const char esc[] = "\bb\tt\nn\vv\ff\rr\x1b" "e\x7f" "d";
		const char *e = c < 0x20 || c == 0x7f ? strchr(esc, c) : NULL;
		if (c == '\'' || c == '\\') {
			put_bytes(o, "\\", 1);
			put_bytes(o, (const char *)&c, 1);
		} else if (e && c) {
			put_bytes(o, "\\", 1);
			put_bytes(o, e + 1, 1);
		} else if (c < 0x20) {
			put_fmt(o, "\\^%c", c + 64);
		} else {
			put_bytes(o, (const char *)&c, 1);
		}
	}
	put_bytes(o, "'", 1);
}

static int decimal_len(long v)
{
	char t[24];
	return snprintf(t, sizeof(t), "%ld", v);
}

/*
 * Erlang's shape (io_lib_format): the shortest digits S that read back as
 * the same double, value 0.S x 10^Place; written plain or with an exponent,
 * whichever is shorter (plain on a tie): 10.0, 120.0, 1.0e3, 0.001, 1.0e-5.
 */
static void put_float(struct out *o, double v)
{
	char tmp[40], digits[24];
	if (!isfinite(v)) { /* not a term Erlang can make; print C's */
		put_fmt(o, "%g", v);
		return;
	}
	if (v == 0) {
		put_str(o, signbit(v) ? "-0.0" : "0.0");
		return;
	}
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp: [-]d[.ddd]e[+-]X */
	const char *p = tmp;
	if (*p == '-') {
		put_str(o, "-");
		p++;
	}
	size_t L = 0;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[L++] = *p;
	while (L > 1 && digits[L - 1] == '0')
		L--;
	digits[L] = 0;
	long place = strtol(p + 1, NULL, 10) + 1;
	long expcost = decimal_len(place - 1) + 1 + (L == 1 ? 2 : 1);
	int plain;
	if (place >= (long)L)
		plain = place - (long)L + 2 <= expcost;
	else if (place <= 0)
		plain = 2 - place <= expcost;
	else
		plain = 1;
	if (!plain) {
		put_bytes(o, digits, 1);
		put_str(o, ".");
		put_str(o, L > 1 ? digits + 1 : "0");
		put_fmt(o, "e%ld", place - 1);
	} else if (place >= (long)L) {
		put_str(o, digits);
		for (long i = 0; i < place - (long)L; i++)
			put_str(o, "0");
		put_str(o, ".0");
	} else if (place <= 0) {
		put_str(o, "0.");
		for (long i = 0; i < -place; i++)
			put_str(o, "0");
		put_str(o, digits);
	} else {
		put_bytes(o, digits, (size_t)place);
		put_str(o, ".");
		put_str(o, digits + place);
	}
}

/* Print one term whose children are pushed (with the punctuation between
 * them, as marker words) for the caller's loop. */
/* Punctuation markers: special words with subtags 2..5, never terms. */
#define MARK_COMMA ((up_term)(2 << 3 | UP__TAG_SPECIAL))
#define MARK_CLOSE_T ((up_term)(3 << 3 | UP__TAG_SPECIAL))
#define MARK_CLOSE_L ((up_term)(4 << 3 | UP__TAG_SPECIAL))
#define MARK_BAR ((up_term)(5 << 3 | UP__TAG_SPECIAL))

static void format_one(struct out *o, up_term t, struct wstack *s)
{
	switch (up_kind_of(t)) {
	case UP_K_INT: {
		int64_t v;
		up_get_int(t, &v);
		put_fmt(o, "%lld", (long long)v);
		return;
	}
	case UP_K_FLOAT: {
		double v;
		up_get_float(t, &v);
		put_float(o, v);
		return;
	}
	case UP_K_ATOM: {
		const char *n;
		size_t len;
		if (up_get_atom(t, &n, &len) == 0)
			put_atom(o, n, len);
		return;
	}
	case UP_K_PID:
		if ((t >> 63) & 1) /* bit 60 of the pid: remote (dist.h) */
			put_fmt(o, "<%u.%u.%u>", (unsigned)((t >> 48) & 0x7fff),
				(unsigned)(uint32_t)(t >> 3), (unsigned)((t >> 35) & 0x1fff));
		else
			put_fmt(o, "<0.%u.%u>", (unsigned)((t >> 3) & ((1u << 28) - 1)),
				(unsigned)((t >> 3) >> 28));
		return;
	case UP_K_REF: {
		const uint32_t *w = (const uint32_t *)&up__box(t)[1];
		put_fmt(o, "#Ref<%u.%u.%u.%u>", w[3] & 0xffff, w[2], w[1], w[0]);
		return;
	}
	case UP_K_NIL:
		put_str(o, "[]");
		return;
	case UP_K_BINARY: {
		const uint8_t *d = (const uint8_t *)&up__box(t)[1];
		uint64_t n = up__bsize(up__box(t));
		int printable = n > 0;
		for (uint64_t i = 0; i < n && printable; i++)
			printable = d[i] >= 32 && d[i] < 127;
		put_str(o, "<<");
		if (printable) {
			put_str(o, "\"");
			for (uint64_t i = 0; i < n; i++) {
				if (d[i] == '"' || d[i] == '\\')
					put_str(o, "\\");
				put_bytes(o, (const char *)&d[i], 1);
			}
			put_str(o, "\"");
		} else {
			for (uint64_t i = 0; i < n; i++)
				put_fmt(o, i ? ",%u" : "%u", d[i]);
		}
		put_str(o, ">>");
		return;
	}
	case UP_K_TUPLE: {
		const uint64_t *b = up__box(t);
		uint64_t n = up__bsize(b);
		put_str(o, "{");
		wpush(s, MARK_CLOSE_T);
		for (uint64_t i = n; i-- > 0;) {
			wpush(s, b[1 + i]);
			if (i)
				wpush(s, MARK_COMMA);
		}
		return;
	}
	case UP_K_LIST: {
		/* [e1,e2,...,en|tail]: print "[" now and push, bottom to top,
		 * "]", (tail "|"), en "," ... "," e1. */
		size_t n = 0;
		up_term x = t;
		while (up_kind_of(x) == UP_K_LIST) {
			n++;
			x = up__box(x)[2];
		}
		wpush(s, MARK_CLOSE_L);
		if (x != UP_NIL) {
			wpush(s, x);
			wpush(s, MARK_BAR);
		}
		for (size_t i = 0; i < 2 * n - 1; i++)
			wpush(s, 0);
		if (s->oom)
			return;
		size_t top = s->n;
		up_term c = t;
		for (size_t k = 0; k < n; k++) {
			s->w[top - 1 - 2 * k] = up__box(c)[1];
			if (k + 1 < n)
				s->w[top - 2 - 2 * k] = MARK_COMMA;
			c = up__box(c)[2];
		}
		put_str(o, "[");
		return;
	}
	default:
		return;
	}
}

static void format(struct out *o, up_term t)
{
	struct wstack s = { .w = s.local, .cap = 128 };
	wpush(&s, t);
	while (s.n && !s.oom) {
		up_term x = s.w[--s.n];
		if (x == MARK_COMMA)
			put_str(o, ",");
		else if (x == MARK_CLOSE_T)
			put_str(o, "}");
		else if (x == MARK_CLOSE_L)
			put_str(o, "]");
		else if (x == MARK_BAR)
			put_str(o, "|");
		else
			format_one(o, x, &s);
	}
	wfree(&s);
}

long up_term_format(up_term t, char *buf, size_t size)
{
	if (up__is_bad(t) || (!buf && size))
		return -EINVAL;
	struct out o = { buf, size, 0 };
	format(&o, t);
	if (size)
		buf[o.len < size ? o.len : size - 1] = 0;
	return (long)o.len;
}
