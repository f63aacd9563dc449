/*
 * test_term.c - terms (white-box: may look at src/term.h's representation).
 *
 * Every builder and accessor; kind mismatches give -EINVAL (never a crash)
 * and -ERANGE past a tuple's arity; bad terms propagate through nested
 * builders with their errno (-EPERM outside a process, -EINVAL for NULL,
 * empty and 256-byte atoms, -ENOSPC when the atom table is full); integers
 * at the small/boxed boundary (+-2^62) and INT64_MIN/MAX; up_compare in
 * Erlang's term order across every kind; up_hash consistent with up_equal;
 * up_term_format's text (Erlang's ~w) and its snprintf-like truncation;
 * unique references (also across runs); atoms interned from several threads
 * at once; heap marks (memory reused, bogus marks refused, big mappings
 * unmapped).
 */
#include "helpers.h"

/* The address part of a heap mark (white-box: the top 16 bits count marks). */
#define MARK_ADDR(m) ((uintptr_t)(m) & (((uintptr_t)1 << 48) - 1))

#include <limits.h>
#include <math.h>

#include "term.h"

/* ------------------------------------------------------------- helpers */

/* Run fn as the main process of a 1-scheduler runtime; assert it ran and
 * that no check inside failed. */
#define RUN1(fn) RUN_OK((fn), NULL, 1)

static void check_fmt_(const char *file, int line, up_term t, const char *want)
{
	char buf[1024];
	long n = up_term_format(t, buf, sizeof buf);
	if (n < 0) {
		pfail_record(file, line, "up_term_format = %ld, want \"%s\"", n, want);
		return;
	}
	if (n != (long)strlen(want) || strcmp(buf, want) != 0)
		pfail_record(file, line, "format: got \"%s\" (%ld), want \"%s\"", buf, n, want);
}
#define CHECK_FMT(t, want) check_fmt_(__FILE__, __LINE__, (t), (want))

#define CHECK_ERR(t, err) PCHECK_EQ(up_term_error(t), (err))

/* ------------------------------------------------- builders, accessors */

static void builders_main(void *arg)
{
	(void)arg;
	int64_t i;
	double d;
	const char *name;
	size_t len;
	up_pid pid;
	const void *data;
	up_term e, h, t;

	/* integers */
	up_term i5 = up_int(5), im = up_int(-123456789);
	PCHECK_EQ(up_kind_of(i5), UP_K_INT);
	PCHECK_EQ(up_get_int(i5, &i), 0);
	PCHECK_EQ(i, 5);
	PCHECK_EQ(up_get_int(im, &i), 0);
	PCHECK_EQ(i, -123456789);
	PCHECK_EQ(up_get_int(up_int(0), &i), 0);
	PCHECK_EQ(i, 0);
	PCHECK(!up_is_bad(i5));
	PCHECK_EQ(up_term_error(i5), 0);

	/* floats */
	up_term f = up_float(-2.75);
	PCHECK_EQ(up_kind_of(f), UP_K_FLOAT);
	PCHECK_EQ(up_get_float(f, &d), 0);
	PCHECK(d == -2.75);
	PCHECK_EQ(up_get_float(up_float(1e300), &d), 0);
	PCHECK(d == 1e300);
	PCHECK_EQ(up_get_float(up_float(5e-324), &d), 0);
	PCHECK(d == 5e-324);

	/* atoms: the same name is the same word; up_atom_len takes a prefix */
	up_term a = up_atom("hello");
	PCHECK_EQ(up_kind_of(a), UP_K_ATOM);
	PCHECK_EQ(up_get_atom(a, &name, &len), 0);
	PCHECK_EQ(len, 5);
	PCHECK(memcmp(name, "hello", 5) == 0);
	PCHECK(a == up_atom("hello"));
	PCHECK(a == up_atom_len("hello world", 5));
	PCHECK(a != up_atom("hellO"));
	/* 255 bytes is the longest name */
	char long_name[UP_ATOM_MAX + 1];
	memset(long_name, 'q', UP_ATOM_MAX);
	long_name[UP_ATOM_MAX] = 0;
	up_term al = up_atom(long_name);
	PCHECK_EQ(up_kind_of(al), UP_K_ATOM);
	PCHECK_EQ(up_get_atom(al, &name, &len), 0);
	PCHECK_EQ(len, UP_ATOM_MAX);
	PCHECK(memcmp(name, long_name, UP_ATOM_MAX) == 0);
	/* bytes beyond printable ASCII and an embedded NUL are kept */
	up_term anul = up_atom_len("a\0b\xff", 4);
	PCHECK_EQ(up_get_atom(anul, &name, &len), 0);
	PCHECK_EQ(len, 4);
	PCHECK(memcmp(name, "a\0b\xff", 4) == 0);
	PCHECK(anul != up_atom("a"));
	/* predefined atoms: UP_NORMAL is 'normal' */
	PCHECK(up_atom("normal") == (up_term)UP_NORMAL);

	/* pids */
	up_term p = up_pid_term(up_self());
	PCHECK_EQ(up_kind_of(p), UP_K_PID);
	PCHECK_EQ(up_get_pid(p, &pid), 0);
	PCHECK_EQ(pid, up_self());
	PCHECK_EQ(up_get_pid(up_pid_term(12), &pid), 0);
	PCHECK_EQ(pid, 12);

	/* [] */
	PCHECK_EQ(up_kind_of(UP_NIL), UP_K_NIL);
	PCHECK_EQ(up_list_length(UP_NIL), 0);
	PCHECK(up_list(0, NULL) == UP_NIL);

	/* binaries, including empty ones and every length mod 8 */
	for (size_t n = 0; n <= 17; n++) {
		uint8_t bytes[17];
		for (size_t k = 0; k < n; k++)
			bytes[k] = (uint8_t)(0xa0 + k);
		up_term b = up_binary(n ? bytes : NULL, n);
		PCHECK_EQ(up_kind_of(b), UP_K_BINARY);
		PCHECK_EQ(up_get_binary(b, &data, &len), 0);
		PCHECK_EQ(len, n);
		PCHECK(n == 0 || memcmp(data, bytes, n) == 0);
	}
	up_term b0 = up_binary("xyz", 0);
	PCHECK_EQ(up_get_binary(b0, &data, &len), 0);
	PCHECK_EQ(len, 0);

	/* tuples: up_tuple, up_tuplev, the empty tuple */
	up_term el[3] = { i5, a, f };
	up_term tu = up_tuple(3, el);
	PCHECK_EQ(up_kind_of(tu), UP_K_TUPLE);
	PCHECK_EQ(up_tuple_arity(tu), 3);
	for (size_t k = 0; k < 3; k++) {
		PCHECK_EQ(up_tuple_elem(tu, k, &e), 0);
		PCHECK(e == el[k]);
	}
	el[0] = up_int(99); /* the tuple holds its own copy of the array */
	PCHECK_EQ(up_tuple_elem(tu, 0, &e), 0);
	PCHECK(e == i5);
	up_term tv = up_tuplev(3, i5, a, f);
	PCHECK(up_equal(tu, tv));
	up_term t0 = up_tuple(0, NULL);
	PCHECK_EQ(up_kind_of(t0), UP_K_TUPLE);
	PCHECK_EQ(up_tuple_arity(t0), 0);
	PCHECK_EQ(up_tuple_arity(up_tuplev(0)), 0);
	/* more than 64 arguments (up_tuplev's own array then is malloc'd) */
#define E8(k) up_int(k), up_int(k + 1), up_int(k + 2), up_int(k + 3), up_int(k + 4), up_int(k + 5), up_int(k + 6), up_int(k + 7)
	up_term t70 = up_tuplev(70, E8(0), E8(8), E8(16), E8(24), E8(32), E8(40), E8(48), E8(56),
				E8(64)); /* 72 given, 70 used */
#undef E8
	PCHECK_EQ(up_tuple_arity(t70), 70);
	for (size_t k = 0; k < 70; k++) {
		PCHECK_EQ(up_tuple_elem(t70, k, &e), 0);
		PCHECK_EQ(up_get_int(e, &i), 0);
		PCHECK_EQ(i, (int64_t)k);
	}

	/* lists: cons, proper lists, improper lists */
	up_term c = up_cons(i5, UP_NIL);
	PCHECK_EQ(up_kind_of(c), UP_K_LIST);
	PCHECK_EQ(up_get_cons(c, &h, &t), 0);
	PCHECK(h == i5 && t == UP_NIL);
	PCHECK_EQ(up_get_cons(c, NULL, &t), 0); /* either out may be NULL */
	PCHECK_EQ(up_get_cons(c, &h, NULL), 0);
	up_term ls[4] = { up_int(1), up_int(2), up_int(3), a };
	up_term l = up_list(4, ls);
	PCHECK_EQ(up_list_length(l), 4);
	t = l;
	for (size_t k = 0; k < 4; k++) {
		PCHECK_EQ(up_get_cons(t, &h, &t), 0);
		PCHECK(h == ls[k]);
	}
	PCHECK(t == UP_NIL);
	up_term imp = up_cons(up_int(1), up_int(2));
	PCHECK_EQ(up_kind_of(imp), UP_K_LIST);
	PCHECK_EQ(up_list_length(imp), -EINVAL);
	PCHECK_EQ(up_get_cons(imp, &h, &t), 0);
	PCHECK(h == up_int(1) && t == up_int(2));
	PCHECK_EQ(up_list_length(up_cons(up_int(0), imp)), -EINVAL);

	/* references */
	up_term r = up_make_ref();
	PCHECK_EQ(up_kind_of(r), UP_K_REF);
	PCHECK(!up_is_bad(r));
	PCHECK(up_equal(r, r));
	PCHECK(!up_equal(r, up_make_ref()));

	/* compound terms of every kind */
	up_term all = up_tuplev(9, i5, f, a, r, p, tu, UP_NIL, l, up_binary("bin", 3));
	PCHECK_EQ(up_tuple_arity(all), 9);
	static const enum up_kind kinds[9] = { UP_K_INT, UP_K_FLOAT, UP_K_ATOM, UP_K_REF, UP_K_PID,
					       UP_K_TUPLE, UP_K_NIL, UP_K_LIST, UP_K_BINARY };
	for (size_t k = 0; k < 9; k++) {
		PCHECK_EQ(up_tuple_elem(all, k, &e), 0);
		PCHECK_EQ(up_kind_of(e), kinds[k]);
	}
}

static void test_builders_accessors(void **state)
{
	(void)state;
	RUN1(builders_main);
}

/* ----------------------------------------------------- kind mismatches */

static void mismatch_main(void *arg)
{
	(void)arg;
	int64_t i;
	double d;
	const char *name;
	size_t len;
	up_pid pid;
	const void *data;
	up_term e, h, t;

	up_term bad = up_atom(NULL);
	up_term terms[] = {
		up_int(7), up_int(INT64_MAX), up_float(1.5), up_atom("k"), up_make_ref(),
		up_pid_term(3), up_tuplev(2, up_int(1), up_int(2)), UP_NIL,
		up_cons(up_int(1), UP_NIL), up_binary("ab", 2), bad,
	};
	for (size_t k = 0; k < sizeof terms / sizeof terms[0]; k++) {
		up_term x = terms[k];
		enum up_kind kind = up_kind_of(x);
		PCHECK_EQ(up_get_int(x, &i), kind == UP_K_INT ? 0 : -EINVAL);
		PCHECK_EQ(up_get_float(x, &d), kind == UP_K_FLOAT ? 0 : -EINVAL);
		PCHECK_EQ(up_get_atom(x, &name, &len), kind == UP_K_ATOM ? 0 : -EINVAL);
		PCHECK_EQ(up_get_pid(x, &pid), kind == UP_K_PID ? 0 : -EINVAL);
		PCHECK_EQ(up_get_binary(x, &data, &len), kind == UP_K_BINARY ? 0 : -EINVAL);
		PCHECK_EQ(up_tuple_arity(x), kind == UP_K_TUPLE ? 2 : -EINVAL);
		PCHECK_EQ(up_tuple_elem(x, 0, &e), kind == UP_K_TUPLE ? 0 : -EINVAL);
		PCHECK_EQ(up_get_cons(x, &h, &t), kind == UP_K_LIST ? 0 : -EINVAL);
		PCHECK_EQ(up_list_length(x), kind == UP_K_LIST ? 1 : kind == UP_K_NIL ? 0 : -EINVAL);
		/* NULL out pointers */
		PCHECK_EQ(up_get_int(x, NULL), -EINVAL);
		PCHECK_EQ(up_get_float(x, NULL), -EINVAL);
		PCHECK_EQ(up_get_atom(x, NULL, &len), -EINVAL);
		PCHECK_EQ(up_get_atom(x, &name, NULL), -EINVAL);
		PCHECK_EQ(up_get_pid(x, NULL), -EINVAL);
		PCHECK_EQ(up_get_binary(x, NULL, &len), -EINVAL);
		PCHECK_EQ(up_get_binary(x, &data, NULL), -EINVAL);
		PCHECK_EQ(up_tuple_elem(x, 0, NULL), -EINVAL);
	}
	PCHECK_EQ(up_kind_of(bad), UP_K_BAD);

	/* -ERANGE past the arity */
	up_term tu = up_tuplev(2, up_int(1), up_int(2));
	PCHECK_EQ(up_tuple_elem(tu, 1, &e), 0);
	PCHECK_EQ(up_tuple_elem(tu, 2, &e), -ERANGE);
	PCHECK_EQ(up_tuple_elem(tu, SIZE_MAX, &e), -ERANGE);
	PCHECK_EQ(up_tuple_elem(up_tuple(0, NULL), 0, &e), -ERANGE);
	/* [] is not a cons */
	PCHECK_EQ(up_get_cons(UP_NIL, &h, &t), -EINVAL);
	/* a word no builder made: a boxed tag with a NULL pointer */
	PCHECK_EQ(up_kind_of((up_term)UP__TAG_BOXED), UP_K_BAD);
	PCHECK_EQ(up_tuple_arity((up_term)UP__TAG_BOXED), -EINVAL);
	PCHECK_EQ(up_get_int((up_term)UP__TAG_BOXED, &i), -EINVAL);
}

static void test_kind_mismatch(void **state)
{
	(void)state;
	RUN1(mismatch_main);
}

/* ------------------------------------------------------------ bad terms */

static void bad_main(void *arg)
{
	(void)arg;
	char n256[UP_ATOM_MAX + 2];
	memset(n256, 'x', UP_ATOM_MAX + 1);
	n256[UP_ATOM_MAX + 1] = 0;

	/* atoms: NULL, empty, 256 bytes */
	CHECK_ERR(up_atom(NULL), -EINVAL);
	CHECK_ERR(up_atom(""), -EINVAL);
	CHECK_ERR(up_atom(n256), -EINVAL);
	CHECK_ERR(up_atom_len(NULL, 3), -EINVAL);
	CHECK_ERR(up_atom_len("abc", 0), -EINVAL);
	CHECK_ERR(up_atom_len(n256, UP_ATOM_MAX + 1), -EINVAL);
	CHECK_ERR(up_atom_len(n256, SIZE_MAX), -EINVAL);
	PCHECK(up_is_bad(up_atom("")));
	PCHECK_EQ(up_kind_of(up_atom("")), UP_K_BAD);
	/* other builders */
	CHECK_ERR(up_pid_term(0), -EINVAL);
	CHECK_ERR(up_pid_term(-1), -EINVAL);
	CHECK_ERR(up_pid_term(INT64_MIN), -EINVAL);
	CHECK_ERR(up_binary(NULL, 1), -EINVAL);
	CHECK_ERR(up_tuple(2, NULL), -EINVAL);
	CHECK_ERR(up_list(2, NULL), -EINVAL);

	/* propagation: the first bad argument's errno comes out, through
	 * every level of a nested construction */
	up_term bad = up_atom("");
	up_term ok = up_int(1);
	CHECK_ERR(up_cons(bad, UP_NIL), -EINVAL);
	CHECK_ERR(up_cons(ok, bad), -EINVAL);
	up_term two[2] = { ok, bad };
	CHECK_ERR(up_tuple(2, two), -EINVAL);
	CHECK_ERR(up_list(2, two), -EINVAL);
	CHECK_ERR(up_tuplev(3, ok, ok, bad), -EINVAL);
	up_term nested = up_tuplev(3, up_atom("ok"), up_int(7),
				   up_list(2, (up_term[]){ up_int(1),
							  up_tuplev(2, up_binary("x", 1), up_pid_term(0)) }));
	PCHECK(up_is_bad(nested));
	CHECK_ERR(nested, -EINVAL);
	/* a bad term with another errno keeps it */
	up_term eperm = up__mkbad(-EPERM);
	CHECK_ERR(up_tuplev(2, ok, eperm), -EPERM);
	CHECK_ERR(up_cons(eperm, bad), -EPERM); /* the head is looked at first */
	CHECK_ERR(up_tuplev(1, up_cons(ok, up_tuplev(1, up__mkbad(-ENOMEM)))), -ENOMEM);

	/* bad terms elsewhere */
	char buf[16];
	PCHECK_EQ(up_term_format(bad, buf, sizeof buf), -EINVAL);
	PCHECK_EQ(up_term_format(ok, NULL, 5), -EINVAL);
	PCHECK_EQ(up_term_format(ok, NULL, 0), 1);
	PCHECK(up_compare(bad, up_int(INT64_MIN)) < 0); /* bad terms order first */
	PCHECK(up_compare(up_float(-1e300), bad) > 0);
	PCHECK(up_compare(bad, bad) == 0);
	PCHECK(!up_equal(bad, ok));
	PCHECK_EQ(up_send(up_self(), bad), -EINVAL);
	PCHECK_EQ(up_mailbox_len(0), 0);
}

static void test_bad_terms(void **state)
{
	(void)state;
	RUN1(bad_main);
}

/* --------------------------------------------------- outside a process */

/* What needs no process: immediates, atoms, reading and printing.  What
 * needs one: everything that allocates (-EPERM). */
struct outside {
	int err[8];
	int64_t i;
	int atom_ok, fmt_ok, cmp_ok;
	long mark, reset;
	int put, get, erase;
};

static void outside_checks(struct outside *o)
{
	o->err[0] = up_term_error(up_float(1.0));
	o->err[1] = up_term_error(up_int((int64_t)1 << 62)); /* boxed */
	o->err[2] = up_term_error(up_binary("ab", 2));
	o->err[3] = up_term_error(up_tuplev(1, up_int(1)));
	o->err[4] = up_term_error(up_cons(up_int(1), UP_NIL));
	o->err[5] = up_term_error(up_make_ref());
	o->err[6] = up_term_error(up_list(1, (up_term[]){ up_int(1) }));
	o->err[7] = up_term_error(up_tuple(0, NULL));
	up_get_int(up_int(-42), &o->i);
	up_term a = up_atom("outside_atom");
	const char *n;
	size_t len;
	o->atom_ok = !up_is_bad(a) && up_get_atom(a, &n, &len) == 0 && len == 12 &&
		     memcmp(n, "outside_atom", 12) == 0;
	char buf[64];
	o->fmt_ok = up_term_format(a, buf, sizeof buf) == 12 && strcmp(buf, "outside_atom") == 0 &&
		    up_term_format(UP_NIL, buf, sizeof buf) == 2;
	o->cmp_ok = up_compare(up_int(1), a) < 0 && up_equal(a, up_atom("outside_atom"));
	o->mark = up_heap_mark();
	o->reset = up_heap_reset(o->mark);
	up_term v;
	o->put = up_put(a, a);
	o->get = up_get(a, &v);
	o->erase = up_erase(a);
}

static void check_outside(const struct outside *o)
{
	for (int k = 0; k < 8; k++)
		assert_int_equal(o->err[k], -EPERM);
	assert_int_equal(o->i, -42);
	assert_true(o->atom_ok);
	assert_true(o->fmt_ok);
	assert_true(o->cmp_ok);
	assert_int_equal(o->mark, -EPERM);
	assert_int_equal(o->reset, -EPERM);
	assert_int_equal(o->put, -EPERM);
	assert_int_equal(o->get, -EPERM);
	assert_int_equal(o->erase, -EPERM);
}

struct outside_run {
	struct outside o;
	atomic_int go, done;
};

static void *outside_thread(void *arg)
{
	struct outside_run *r = arg;
	if (thread_wait_flag(&r->go) == 0)
		outside_checks(&r->o);
	atomic_store(&r->done, 1);
	return NULL;
}

static void outside_main(void *arg)
{
	struct outside_run *r = arg;
	atomic_store(&r->go, 1);
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(&r->done) && now_ns() < deadline)
		up_yield();
	PCHECK(atomic_load(&r->done));
}

static void test_outside_process(void **state)
{
	(void)state;
	struct outside_run r;
	pthread_t t;

	/* on the test thread, before any runtime and between runs */
	memset(&r, 0, sizeof r);
	outside_checks(&r.o);
	check_outside(&r.o);

	/* from a plain thread while a runtime runs */
	memset(&r, 0, sizeof r);
	assert_int_equal(pthread_create(&t, NULL, outside_thread, &r), 0);
	int rc = run_main(outside_main, &r, 1);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();
	check_outside(&r.o);

	/* after the run */
	memset(&r, 0, sizeof r);
	outside_checks(&r.o);
	check_outside(&r.o);
}

/* --------------------------------------------------- integer boundaries */

static void ints_main(void *arg)
{
	(void)arg;
	const int64_t two62 = (int64_t)1 << 62;
	static const struct {
		int64_t v;
		int small;
	} cases[] = {
		{ 0, 1 },
		{ 1, 1 },
		{ -1, 1 },
		{ ((int64_t)1 << 62) - 1, 1 },
		{ (int64_t)1 << 62, 0 },
		{ ((int64_t)1 << 62) + 1, 0 },
		{ -((int64_t)1 << 62), 1 },
		{ -((int64_t)1 << 62) - 1, 0 },
		{ INT64_MAX, 0 },
		{ INT64_MAX - 1, 0 },
		{ INT64_MIN, 0 },
		{ INT64_MIN + 1, 0 },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		int64_t v = cases[k].v, got = 0;
		up_term t = up_int(v), t2 = up_int(v);
		PCHECK(!up_is_bad(t));
		PCHECK_EQ(up_kind_of(t), UP_K_INT);
		PCHECK_EQ(up_get_int(t, &got), 0);
		if (got != v)
			PFAIL("up_int(%" PRId64 ") reads back as %" PRId64, v, got);
		/* the representation: immediate up to 2^62, boxed beyond */
		if (cases[k].small ? !up__is_small(t) : !up__is_boxed(t))
			PFAIL("up_int(%" PRId64 ") is %s, want %s", v,
			      up__is_small(t) ? "small" : "boxed", cases[k].small ? "small" : "boxed");
		/* boxed ones compare, equal and hash by value */
		PCHECK(up_equal(t, t2));
		PCHECK(up_compare(t, t2) == 0);
		PCHECK(up_hash(t) == up_hash(t2));
		char buf[32], want[32];
		snprintf(want, sizeof want, "%" PRId64, v);
		CHECK_FMT(t, want);
		(void)buf;
	}
	/* ordering across the switch */
	PCHECK(up_compare(up_int(two62 - 1), up_int(two62)) < 0);
	PCHECK(up_compare(up_int(two62), up_int(two62 - 1)) > 0);
	PCHECK(up_compare(up_int(-two62 - 1), up_int(-two62)) < 0);
	PCHECK(up_compare(up_int(INT64_MIN), up_int(-two62 - 1)) < 0);
	PCHECK(up_compare(up_int(INT64_MAX), up_int(two62)) > 0);
	PCHECK(up_compare(up_int(INT64_MIN), up_int(INT64_MAX)) < 0);
	PCHECK(up_compare(up_int(-1), up_int(INT64_MAX)) < 0);
	/* against floats of the same value (all exact in a double) */
	PCHECK(up_compare(up_int(two62), up_float(0x1p62)) == 0);
	PCHECK(!up_equal(up_int(two62), up_float(0x1p62)));
	PCHECK(up_compare(up_int(INT64_MIN), up_float(-0x1p63)) == 0);
	PCHECK(up_compare(up_int(INT64_MIN), up_float(-0x1p62)) < 0);
}

static void test_int_boundaries(void **state)
{
	(void)state;
	RUN1(ints_main);
}

/* ------------------------------------------------------------ term order */

#define NORD 52

/* Terms in strictly increasing Erlang order; ref and pid given (so that two
 * calls build equal lists). */
static int build_ordered(up_term *o, up_term ref, up_term pid)
{
	int n = 0;
	/* numbers: integers and floats interleaved by value */
	o[n++] = up_float(-1e300);
	o[n++] = up_int(INT64_MIN);
	o[n++] = up_int(-((int64_t)1 << 62) - 1);
	o[n++] = up_int(-5);
	o[n++] = up_float(-1.5);
	o[n++] = up_int(-1);
	o[n++] = up_float(-0.5);
	o[n++] = up_int(0);
	o[n++] = up_float(0.5);
	o[n++] = up_int(1);
	o[n++] = up_float(1.5);
	o[n++] = up_int(2);
	o[n++] = up_int((int64_t)1 << 62);
	o[n++] = up_int(INT64_MAX);
	o[n++] = up_float(1e300);
	/* atoms: alphabetical (bytewise), not by creation order */
	o[n++] = up_atom("ZZ_ord");     /* 'Z' < 'z' */
	o[n++] = up_atom("zz_ord_a");
	o[n++] = up_atom("zz_ord_ab");
	o[n++] = up_atom("zz_ord_b");
	o[n++] = up_atom("zz_ord_b0");
	/* reference, pid */
	o[n++] = ref;
	o[n++] = pid;
	/* tuples: by arity first, then element by element */
	o[n++] = up_tuple(0, NULL);
	o[n++] = up_tuplev(1, up_int(9));
	o[n++] = up_tuplev(1, up_atom("zz_ord_a"));
	o[n++] = up_tuplev(2, up_int(1), up_int(1));
	o[n++] = up_tuplev(2, up_int(1), up_float(1.5));
	o[n++] = up_tuplev(2, up_int(1), up_int(2));
	o[n++] = up_tuplev(2, up_int(2), UP_NIL);
	o[n++] = up_tuplev(2, up_int(2), up_binary("", 0));
	o[n++] = up_tuplev(3, up_int(0), up_int(0), up_int(0));
	/* [] */
	o[n++] = UP_NIL;
	/* lists: element-wise; a shorter proper list first; an improper tail
	 * compares as a term with the rest ([1|2] < [1] as 2 < []); the
	 * order is Erlang's lists:sort of the same terms */
	o[n++] = up_cons(up_int(1), up_int(2));                 /* [1|2]: 2 < [] */
	o[n++] = up_list(1, (up_term[]){ up_int(1) });
	o[n++] = up_list(2, (up_term[]){ up_int(1), up_int(1) });
	o[n++] = up_cons(up_int(1), up_cons(up_int(2), up_atom("x"))); /* [1,2|x] */
	o[n++] = up_list(2, (up_term[]){ up_int(1), up_int(2) });
	o[n++] = up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) });
	o[n++] = up_list(2, (up_term[]){ up_int(1), up_atom("a") });
	o[n++] = up_list(1, (up_term[]){ up_int(2) });
	o[n++] = up_list(1, (up_term[]){ up_atom("a") });
	o[n++] = up_list(1, (up_term[]){ up_tuple(0, NULL) });
	o[n++] = up_list(1, (up_term[]){ UP_NIL });
	/* binaries: bytewise, then by length */
	o[n++] = up_binary("", 0);
	o[n++] = up_binary("\0", 1);
	o[n++] = up_binary("\1", 1);
	o[n++] = up_binary("\1\0", 2);
	o[n++] = up_binary("\1\2", 2);
	o[n++] = up_binary("\1\2\3", 3);
	o[n++] = up_binary("\1\3", 2);
	o[n++] = up_binary("\2", 1);
	o[n++] = up_binary("\377", 1);
	return n;
}

static void order_main(void *arg)
{
	(void)arg;
	/* atoms created in reverse alphabetical order */
	up_atom("zz_ord_b0");
	up_atom("zz_ord_b");
	up_atom("zz_ord_ab");
	up_atom("zz_ord_a");
	up_atom("ZZ_ord");
	up_term ref = up_make_ref(), pid = up_pid_term(up_self());
	up_term a[NORD], b[NORD];
	int n = build_ordered(a, ref, pid);
	PCHECK_EQ(build_ordered(b, ref, pid), n);
	PCHECK_EQ(n, NORD);
	for (int i = 0; i < n; i++) {
		if (up_is_bad(a[i])) {
			PFAIL("term %d is bad: %d", i, up_term_error(a[i]));
			return;
		}
		PCHECK(up_compare(a[i], a[i]) == 0);
		PCHECK(up_equal(a[i], a[i]));
		/* built separately: equal */
		if (up_compare(a[i], b[i]) != 0 || !up_equal(a[i], b[i]))
			PFAIL("term %d: separately built copies differ", i);
		for (int j = i + 1; j < n; j++) {
			int c1 = up_compare(a[i], a[j]), c2 = up_compare(b[j], a[i]);
			if (c1 >= 0 || c2 <= 0) {
				char x[128], y[128];
				up_term_format(a[i], x, sizeof x);
				up_term_format(a[j], y, sizeof y);
				PFAIL("order: compare(%s, %s) = %d, reverse %d", x, y, c1, c2);
			}
			if (up_equal(a[i], a[j]))
				PFAIL("terms %d and %d are equal", i, j);
		}
	}
	/* kinds rank as documented: number < atom < reference < pid < tuple
	 * < nil < list < binary */
	enum up_kind last = UP_K_INT;
	for (int i = 0; i < n; i++) {
		enum up_kind k = up_kind_of(a[i]);
		if (k == UP_K_FLOAT)
			k = UP_K_INT;
		PCHECK(k >= last);
		last = k;
	}

	/* integers and floats compare by value; =:= tells them apart */
	PCHECK(up_compare(up_int(1), up_float(1.0)) == 0);
	PCHECK(up_compare(up_float(1.0), up_int(1)) == 0);
	PCHECK(!up_equal(up_int(1), up_float(1.0)));
	PCHECK(!up_equal(up_float(1.0), up_int(1)));
	PCHECK(up_equal(up_float(1.0), up_float(1.0)));
	PCHECK(up_compare(up_int(1), up_float(1.5)) < 0);
	PCHECK(up_compare(up_int(2), up_float(1.5)) > 0);
	PCHECK(up_compare(up_float(-0.0), up_float(0.0)) == 0);
	/* inside compound terms too */
	PCHECK(up_compare(up_tuplev(2, up_int(1), up_atom("a")),
			  up_tuplev(2, up_float(1.0), up_atom("a"))) == 0);
	PCHECK(!up_equal(up_tuplev(2, up_int(1), up_atom("a")),
			 up_tuplev(2, up_float(1.0), up_atom("a"))));
	PCHECK(up_compare(up_list(2, (up_term[]){ up_int(1), up_float(2.0) }),
			  up_list(2, (up_term[]){ up_float(1.0), up_int(2) })) == 0);
	/* the first difference decides, not the later elements */
	PCHECK(up_compare(up_tuplev(2, up_int(1), up_binary("zzz", 3)),
			  up_tuplev(2, up_int(2), up_int(0))) < 0);
	/* two references / two pids: a strict order, antisymmetric */
	up_term r2 = up_make_ref();
	int c = up_compare(ref, r2);
	PCHECK(c != 0);
	PCHECK((c < 0) == (up_compare(r2, ref) > 0));
	PCHECK(up_compare(up_pid_term(5), up_pid_term(6)) != 0);
	PCHECK((up_compare(up_pid_term(5), up_pid_term(6)) < 0) ==
	       (up_compare(up_pid_term(6), up_pid_term(5)) > 0));
}

static void test_term_order(void **state)
{
	(void)state;
	RUN1(order_main);
}

/*
 * Erlang compares an integer with a float exactly (OTP: "when the float is
 * larger than 2^53 the float is converted to an integer"), so that the
 * order stays transitive: 9007199254740993 > 9007199254740992.0, and
 * INT64_MAX < 9.223372036854775808e18.  Converting the integer to a
 * double instead makes 2^53+1 == 2^53.0 == 2^53, but 2^53 < 2^53+1.
 */
static void intfloat_main(void *arg)
{
	(void)arg;
	const int64_t p53 = (int64_t)1 << 53;
	up_term a = up_int(p53), b = up_float(0x1p53), c = up_int(p53 + 1);
	PCHECK(up_compare(a, b) == 0);
	PCHECK(up_compare(a, c) < 0);
	PCHECK(up_compare(c, b) > 0); /* transitivity */
	PCHECK(up_compare(b, c) < 0);
	PCHECK(up_compare(up_int(INT64_MAX), up_float(0x1p63)) < 0);
	PCHECK(up_compare(up_int(INT64_MIN + 1), up_float(-0x1p63)) > 0);
	PCHECK(up_compare(up_int(((int64_t)1 << 62) + 1), up_float(0x1p62)) > 0);
}

static void test_int_float_order_exact(void **state)
{
	(void)state;
	assert_int_equal(run_main(intfloat_main, NULL, 1), 0);
	assert_no_pfail();
}

/* ------------------------------------------------------------------ hash */

/* Two equal terms of every kind, built separately. */
static up_term build_mixed(int k, up_term ref)
{
	switch (k) {
	case 0: return up_int(12345);
	case 1: return up_int(INT64_MIN);
	case 2: return up_float(0.1);
	case 3: return up_atom("hash_atom");
	case 4: return ref;
	case 5: return up_pid_term(77);
	case 6: return UP_NIL;
	case 7: return up_binary("some bytes", 10);
	case 8: return up_binary("", 0);
	case 9: return up_tuplev(0);
	case 10: return up_tuplev(3, up_int(1), up_binary("x", 1), up_list(2, (up_term[]){ up_float(2.5), UP_NIL }));
	case 11: return up_cons(up_atom("a"), up_cons(up_int((int64_t)1 << 62), up_atom("tail")));
	case 12: return up_tuplev(2, ref, up_tuplev(1, up_tuplev(1, up_tuplev(0))));
	default: return up_atom("none");
	}
}
#define NMIXED 13

static void hash_main(void *arg)
{
	(void)arg;
	up_term ref = up_make_ref();
	/* a copy of the reference (its own box): through a message to self */
	PCHECK_EQ(up_send(up_self(), ref), 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, 0), 0);
	up_term ref2 = m.term;
	PCHECK(ref2 != ref);
	PCHECK(up_equal(ref, ref2));
	PCHECK(up_hash(ref) == up_hash(ref2));

	for (int k = 0; k < NMIXED; k++) {
		up_term x = build_mixed(k, ref), y = build_mixed(k, ref2);
		PCHECK(!up_is_bad(x));
		PCHECK(up_equal(x, y));
		if (up_hash(x) != up_hash(y))
			PFAIL("kind %d: equal terms hash differently", k);
		PCHECK(up_hash(x) == up_hash(x)); /* deterministic */
		/* a different term: differs (not required, but these do) */
		for (int j = 0; j < k; j++)
			if (up_hash(x) == up_hash(build_mixed(j, ref)))
				PFAIL("terms %d and %d collide", j, k);
	}
	/* spread: 10,000 integers, 10,000 binaries */
	enum { N = 10000 };
	uint64_t *h = malloc(2 * N * sizeof *h);
	if (!h) {
		PFAIL("malloc");
		return;
	}
	for (int i = 0; i < N; i++) {
		char s[16];
		int l = snprintf(s, sizeof s, "%d", i);
		h[i] = up_hash(up_int(i));
		h[N + i] = up_hash(up_binary(s, (size_t)l));
	}
	int dup = 0;
	for (int i = 0; i < 2 * N; i++)
		for (int j = i + 1; j < 2 * N && j < i + 64; j++)
			dup += h[i] == h[j];
	PCHECK(dup == 0);
	free(h);
	up_msg_free(&m);
}

static void test_hash_consistent(void **state)
{
	(void)state;
	RUN1(hash_main);
}

/* 0.0 and -0.0 are == and (OTP < 27) =:=; equal terms must hash equal.
 * (Either answer of up_equal is fine; an inconsistent hash is not.) */
static void hash_zero_main(void *arg)
{
	(void)arg;
	up_term z = up_float(0.0), nz = up_float(-0.0);
	if (up_equal(z, nz) && up_hash(z) != up_hash(nz))
		PFAIL("up_equal(0.0, -0.0) but their hashes differ");
	up_term tz = up_tuplev(1, z), tnz = up_tuplev(1, nz);
	if (up_equal(tz, tnz) && up_hash(tz) != up_hash(tnz))
		PFAIL("up_equal({0.0}, {-0.0}) but their hashes differ");
}

static void test_hash_signed_zero(void **state)
{
	(void)state;
	assert_int_equal(run_main(hash_zero_main, NULL, 1), 0);
	assert_no_pfail();
}

/* ---------------------------------------------------------------- format */

static void format_main(void *arg)
{
	(void)arg;
	up_term abc = up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) });
	CHECK_FMT(up_tuplev(4, up_atom("ok"), up_pid_term(12), abc, up_binary("abc", 3)),
		  "{ok,<0.12.0>,[1,2,3],<<\"abc\">>}");
	CHECK_FMT(UP_NIL, "[]");
	CHECK_FMT(up_tuple(0, NULL), "{}");
	CHECK_FMT(up_cons(up_int(1), up_int(2)), "[1|2]");
	CHECK_FMT(up_cons(up_int(1), up_cons(up_int(2), up_int(3))), "[1,2|3]");
	CHECK_FMT(up_cons(up_int(1), up_binary("", 0)), "[1|<<>>]");
	CHECK_FMT(up_list(1, (up_term[]){ UP_NIL }), "[[]]");
	CHECK_FMT(up_tuplev(1, UP_NIL), "{[]}");
	CHECK_FMT(up_tuplev(4, up_atom("a"), up_tuplev(2, up_atom("b"), up_list(2, (up_term[]){ up_atom("c"), up_tuplev(0) })),
			    up_list(1, (up_term[]){ UP_NIL }), up_binary("", 0)),
		  "{a,{b,[c,{}]},[[]],<<>>}");
	/* a list of small integers is a list (~w does not print strings) */
	CHECK_FMT(up_list(2, (up_term[]){ up_int(104), up_int(105) }), "[104,105]");

	/* integers */
	CHECK_FMT(up_int(0), "0");
	CHECK_FMT(up_int(-1), "-1");
	CHECK_FMT(up_int(1234567890123LL), "1234567890123");
	CHECK_FMT(up_int(INT64_MIN), "-9223372036854775808");
	CHECK_FMT(up_int(INT64_MAX), "9223372036854775807");

	/* atoms: quoted unless lower-case alphanumeric (with _ and @) */
	CHECK_FMT(up_atom("ok"), "ok");
	CHECK_FMT(up_atom("aB_9@"), "aB_9@");
	CHECK_FMT(up_atom("nonode@nohost"), "nonode@nohost");
	CHECK_FMT(up_atom("EXIT"), "'EXIT'");
	CHECK_FMT(up_atom("Abc"), "'Abc'");
	CHECK_FMT(up_atom("_x"), "'_x'");
	CHECK_FMT(up_atom("9a"), "'9a'");
	CHECK_FMT(up_atom("hello world"), "'hello world'");
	CHECK_FMT(up_atom("a-b"), "'a-b'");
	CHECK_FMT(up_atom("it's"), "'it\\'s'");
	CHECK_FMT(up_atom("back\\slash"), "'back\\\\slash'");

	/* floats: Erlang's shortest round-trip text, always with a fraction */
	static const struct {
		double v;
		const char *s;
	} floats[] = {
		{ 0.1, "0.1" }, { 1.0, "1.0" }, { 1.0e10, "1.0e10" }, { -2.5, "-2.5" },
		{ 1.0e-5, "1.0e-5" }, { 0.30000000000000004, "0.30000000000000004" },
		{ 1.0e100, "1.0e100" }, { 1234.5, "1234.5" }, { 1.0e3, "1.0e3" }, { -0.0, "-0.0" },
		{ 0.0, "0.0" }, { 120000.0, "1.2e5" }, { 12.0, "12.0" }, { 0.001, "0.001" },
		{ 0.0001, "0.0001" }, { 1.0e15, "1.0e15" }, { 123456789.0, "123456789.0" },
		{ 12345678901234567890.0, "1.2345678901234567e19" }, { 5.0e-324, "5.0e-324" },
		{ 1.7976931348623157e308, "1.7976931348623157e308" }, { 0.5, "0.5" },
		{ 3.141592653589793, "3.141592653589793" }, { 1.0e-10, "1.0e-10" },
		{ 99.0, "99.0" }, { 999.0, "999.0" }, { 1.0e4, "1.0e4" },
	};
	for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++)
		CHECK_FMT(up_float(floats[k].v), floats[k].s);

	/* binaries: printable ones as a string (with " and \ escaped), others
	 * byte by byte */
	CHECK_FMT(up_binary("\1\2\3", 3), "<<1,2,3>>");
	CHECK_FMT(up_binary("", 0), "<<>>");
	CHECK_FMT(up_binary("ab\0", 3), "<<97,98,0>>");
	CHECK_FMT(up_binary("\377", 1), "<<255>>");
	CHECK_FMT(up_binary("a b~", 4), "<<\"a b~\">>");
	CHECK_FMT(up_binary("a\"b\\", 4), "<<\"a\\\"b\\\\\">>");

	/* pids: <0.N.S> with the slot and serial of the pid */
	CHECK_FMT(up_pid_term(12), "<0.12.0>");
	CHECK_FMT(up_pid_term(((up_pid)3 << 28) | 5), "<0.5.3>");

	/* references: #Ref<0.A.B.C> */
	char buf[128];
	up_term r = up_make_ref();
	long n = up_term_format(r, buf, sizeof buf);
	unsigned x, y, z;
	char end;
	PCHECK(n > 0 && n == (long)strlen(buf));
	if (sscanf(buf, "#Ref<0.%u.%u.%u%c", &x, &y, &z, &end) != 4 || end != '>' || buf[n - 1] != '>')
		PFAIL("reference printed as \"%s\"", buf);
	char buf2[128];
	up_term_format(up_make_ref(), buf2, sizeof buf2);
	PCHECK(strcmp(buf, buf2) != 0);
}

static void test_format(void **state)
{
	(void)state;
	RUN1(format_main);
}

/* Erlang's finer choices: the shorter of the fixed and scientific forms
 * (fixed on a tie), reserved words quoted, control characters escaped. */
static void format_erlang_main(void *arg)
{
	(void)arg;
	CHECK_FMT(up_float(10.0), "10.0");
	CHECK_FMT(up_float(100.0), "100.0");
	CHECK_FMT(up_float(0.00012), "1.2e-4");
	CHECK_FMT(up_float(0.000123), "1.23e-4");
	CHECK_FMT(up_float(1.5e-4), "1.5e-4");
	CHECK_FMT(up_atom("and"), "'and'");
	CHECK_FMT(up_atom("end"), "'end'");
	CHECK_FMT(up_atom("receive"), "'receive'");
	CHECK_FMT(up_atom("a\nb"), "'a\\nb'");
}

static void test_format_erlang_details(void **state)
{
	(void)state;
	RUN1(format_erlang_main);
}

/* snprintf-like: truncated, NUL-terminated, returns the length needed. */
static void truncation_main(void *arg)
{
	(void)arg;
	const char *want = "{ok,<0.12.0>,[1,2,3],<<\"abc\">>}";
	long len = (long)strlen(want);
	up_term abc = up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) });
	up_term t = up_tuplev(4, up_atom("ok"), up_pid_term(12), abc, up_binary("abc", 3));
	char buf[64];

	PCHECK_EQ(up_term_format(t, NULL, 0), len);
	memset(buf, 'X', sizeof buf);
	PCHECK_EQ(up_term_format(t, buf, 0), len);
	PCHECK(buf[0] == 'X'); /* size 0: nothing written */
	for (long size = 1; size <= len + 2; size++) {
		memset(buf, 'X', sizeof buf);
		PCHECK_EQ(up_term_format(t, buf, (size_t)size), len);
		long kept = size - 1 < len ? size - 1 : len;
		if (strlen(buf) != (size_t)kept || memcmp(buf, want, (size_t)kept) != 0)
			PFAIL("size %ld: \"%s\"", size, buf);
		PCHECK(buf[size] == 'X'); /* nothing past size */
	}
	/* truncation inside a float, an atom in quotes, a binary */
	PCHECK_EQ(up_term_format(up_float(1.0e10), buf, 4), 6);
	PCHECK(strcmp(buf, "1.0") == 0);
	PCHECK_EQ(up_term_format(up_atom("EXIT"), buf, 3), 6);
	PCHECK(strcmp(buf, "'E") == 0);
}

static void test_format_truncation(void **state)
{
	(void)state;
	RUN1(truncation_main);
}

/* -------------------------------------------------------- references */

#define NREF 10000
#define REF_TXT 48
struct refs {
	char (*txt)[REF_TXT];  /* 3 * NREF texts: run 1, run 2 (two processes) */
	int base;
	atomic_int done;
};

static void ref_maker(void *arg)
{
	struct refs *r = arg;
	int base = r->base;
	up_term *t = malloc(NREF / 2 * sizeof *t);
	if (!t) {
		PFAIL("malloc");
		return;
	}
	for (int i = 0; i < NREF / 2; i++) {
		t[i] = up_make_ref();
		if (up_is_bad(t[i])) {
			PFAIL("up_make_ref: %d", up_term_error(t[i]));
			break;
		}
		up_term_format(t[i], r->txt[base + i], REF_TXT);
	}
	/* within one process: pairwise different by up_equal too (neighbours) */
	for (int i = 1; i < NREF / 2; i++)
		PCHECK(!up_equal(t[i - 1], t[i]) && up_compare(t[i - 1], t[i]) != 0);
	free(t);
	atomic_fetch_add(&r->done, 1);
}

static void refs_main(void *arg)
{
	struct refs *r = arg;
	int base = r->base;
	/* two processes, one per scheduler, at the same time */
	struct up_spawn_opts o0 = spawn_on(0), o1 = spawn_on(up_schedulers() > 1 ? 1 : 0);
	static struct refs half[2];
	for (int k = 0; k < 2; k++) {
		half[k].txt = r->txt;
		half[k].base = base + k * (NREF / 2);
		atomic_store(&half[k].done, 0);
	}
	PCHECK(up_spawn_opt(ref_maker, &half[0], &o0) > 0);
	PCHECK(up_spawn_opt(ref_maker, &half[1], &o1) > 0);
	int64_t deadline = now_ns() + WAIT_NS;
	while ((atomic_load(&half[0].done) + atomic_load(&half[1].done)) < 2 && now_ns() < deadline)
		up_yield();
	PCHECK(atomic_load(&half[0].done) == 1 && atomic_load(&half[1].done) == 1);
}

static int cmp_txt(const void *a, const void *b) { return strcmp(a, b); }

static void test_refs_unique(void **state)
{
	(void)state;
	struct refs r;
	memset(&r, 0, sizeof r);
	r.txt = calloc(2 * NREF, REF_TXT);
	assert_non_null(r.txt);
	r.base = 0;
	RUN_OK(refs_main, &r, 2);
	r.base = NREF;
	RUN_OK(refs_main, &r, 2); /* a second run of the same OS process */
	qsort(r.txt, 2 * NREF, REF_TXT, cmp_txt);
	for (int i = 0; i < 2 * NREF; i++) {
		assert_true(strncmp(r.txt[i], "#Ref<", 5) == 0);
		if (i)
			assert_string_not_equal(r.txt[i - 1], r.txt[i]);
	}
	free(r.txt);
}

/* ---------------------------------------------------- atoms, threads */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

#define ATHREADS 4
#define APER 10000
#define ASTRIDE 5000 /* thread k interns names k*5000 .. k*5000+9999 */
#define ANAMES (ASTRIDE * (ATHREADS - 1) + APER)

struct athread {
	int k;
	pthread_barrier_t *bar;
	up_term got[APER];
	int bad;
};

static void *atom_thread(void *arg)
{
	struct athread *a = arg;
	char name[32];
	pthread_barrier_wait(a->bar);
	/* half the threads go up, half down, to collide more */
	for (int n = 0; n < APER; n++) {
		int i = a->k & 1 ? APER - 1 - n : n;
		snprintf(name, sizeof name, "mt_atom_%d", a->k * ASTRIDE + i);
		a->got[i] = up_atom(name);
		if (up_is_bad(a->got[i]))
			a->bad++;
	}
	return NULL;
}

static void test_atoms_threads(void **state)
{
	(void)state;
	static struct athread at[ATHREADS];
	pthread_t t[ATHREADS];
	pthread_barrier_t bar;
	assert_int_equal(pthread_barrier_init(&bar, NULL, ATHREADS), 0);
	for (int k = 0; k < ATHREADS; k++) {
		at[k].k = k;
		at[k].bar = &bar;
		at[k].bad = 0;
		assert_int_equal(pthread_create(&t[k], NULL, atom_thread, &at[k]), 0);
	}
	for (int k = 0; k < ATHREADS; k++)
		pthread_join(t[k], NULL);
	pthread_barrier_destroy(&bar);

	up_term *byname = calloc(ANAMES, sizeof *byname);
	assert_non_null(byname);
	for (int k = 0; k < ATHREADS; k++) {
		assert_int_equal(at[k].bad, 0);
		for (int i = 0; i < APER; i++) {
			int id = k * ASTRIDE + i;
			up_term a = at[k].got[i];
			if (byname[id] == 0)
				byname[id] = a;
			else if (byname[id] != a)
				fail_msg("mt_atom_%d: thread %d got %#llx, another %#llx", id, k,
					 (unsigned long long)a, (unsigned long long)byname[id]);
		}
	}
	/* every name interned, read back, distinct names distinct atoms */
	for (int id = 0; id < ANAMES; id++) {
		char want[32];
		const char *n;
		size_t len;
		snprintf(want, sizeof want, "mt_atom_%d", id);
		assert_int_equal(up_kind_of(byname[id]), UP_K_ATOM);
		assert_int_equal(up_get_atom(byname[id], &n, &len), 0);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(n, want, len);
		assert_true(up_atom(want) == byname[id]);
	}
	qsort(byname, ANAMES, sizeof *byname, cmp_u64);
	for (int id = 1; id < ANAMES; id++)
		assert_true(byname[id - 1] != byname[id]);
	free(byname);
}

/* The table holds 1,048,576 atoms; past that up_atom gives -ENOSPC and the
 * existing atoms keep working.  In a child: it fills the table for good. */
struct afull {
	long created;
	int err;
	int old_ok, again_err, existing_ok;
};

static int atom_full_body(void *arg)
{
	struct afull *f = arg;
	char name[32];
	up_term ok = up_atom("ok");
	up_term first = up_atom("full_atom_0");
	for (long i = 1; i < (2L << 20); i++) {
		snprintf(name, sizeof name, "full_atom_%ld", i);
		up_term a = up_atom(name);
		if (up_is_bad(a)) {
			f->err = up_term_error(a);
			break;
		}
		f->created++;
	}
	f->again_err = up_term_error(up_atom("one_more_atom"));
	f->existing_ok = up_atom("full_atom_0") == first && up_atom("ok") == ok;
	const char *n;
	size_t len;
	f->old_ok = up_get_atom(first, &n, &len) == 0 && len == 11 && memcmp(n, "full_atom_0", 11) == 0;
	return 0;
}

static void test_atom_table_full(void **state)
{
	(void)state;
	struct afull *f = shared_alloc(sizeof *f);
	assert_non_null(f);
	int rc = fork_run(atom_full_body, f, 120);
	assert_fork_ok(rc, 120, "filling the atom table");
	print_message("  %ld atoms interned before %d\n", f->created, f->err);
	assert_int_equal(f->err, -ENOSPC);
	assert_true(f->created > 1000000 && f->created < (1L << 20));
	assert_int_equal(f->again_err, -ENOSPC);
	assert_true(f->existing_ok);
	assert_true(f->old_ok);
}

/* ------------------------------------------------------------ heap marks */

static void mark_main(void *arg)
{
	(void)arg;
	/* memory after a mark is reused after the reset */
	long m1 = up_heap_mark();
	PCHECK(m1 > 0);
	void *x = up_alloc(64);
	up_term t = up_tuplev(2, up_binary("0123456789", 10), up_float(1.5));
	PCHECK(!up_is_bad(t));
	PCHECK_EQ(up_heap_reset(m1), 0);
	long m2 = up_heap_mark();
	void *y = up_alloc(64);
	PCHECK(x == y);
	/* the same place (a mark also carries a sequence number, so the
	 * value differs: a stale mark is refused) */
	PCHECK(MARK_ADDR(m2) == MARK_ADDR(m1));
	PCHECK(m2 != m1);

	/* nested marks */
	long a = up_heap_mark();
	up_alloc(100);
	long b = up_heap_mark();
	up_alloc(100);
	long c = up_heap_mark();
	PCHECK_EQ(up_heap_reset(c), 0);
	PCHECK_EQ(up_heap_reset(c), -EINVAL); /* reset twice */
	PCHECK_EQ(up_heap_reset(a), 0);       /* skipping b */
	PCHECK_EQ(up_heap_reset(b), -EINVAL); /* reset past */
	PCHECK_EQ(up_heap_reset(m2), 0);

	/* a long-lived loop marks far more often than the sequence has
	 * values: every mark stays a valid (positive) mark */
	for (long i = 0; i < 70000; i++) {
		long m = up_heap_mark();
		if (m <= 0 || up_heap_reset(m) != 0) {
			PFAIL("mark %ld: %ld", i, m);
			break;
		}
	}

	/* a loop that builds and drops 240 KB of terms (beyond the region's
	 * heap: mappings) does not grow the process */
	long long rss0 = 0;
	for (int round = 0; round < 300; round++) {
		if (round == 20)
			rss0 = vm_rss_app_bytes();
		long m = up_heap_mark();
		up_term l = UP_NIL;
		for (int i = 0; i < 10000; i++)
			l = up_cons(up_int(i), l);
		if (up_list_length(l) != 10000)
			PFAIL("round %d: list of %ld", round, up_list_length(l));
		if (up_heap_reset(m) != 0) {
			PFAIL("round %d: reset failed", round);
			break;
		}
	}
	long long grew = vm_rss_app_bytes() - rss0;
	if (grew > (8LL << 20))
		PFAIL("resident memory grew by %lld KiB over 280 mark/build/reset rounds", grew >> 10);
}

static void test_heap_mark_reuse(void **state)
{
	(void)state;
	RUN1(mark_main);
}

struct foreign {
	long mark;
	int rc;
};

static void mark_owner(void *arg)
{
	struct foreign *f = arg;
	f->mark = up_heap_mark();
	struct up_msg m;
	up_recv(&m, WAIT_NS); /* stay alive while the other tries it */
}

static void bogus_main(void *arg)
{
	(void)arg;
	long m = up_heap_mark();
	int local;
	void *p = up_alloc(64);
	memset(p, 0, 64);
	PCHECK_EQ(up_heap_reset(0), -EINVAL);
	PCHECK_EQ(up_heap_reset(-1), -EINVAL);
	PCHECK_EQ(up_heap_reset(1), -EINVAL);
	PCHECK_EQ(up_heap_reset(LONG_MAX), -EINVAL);
	PCHECK_EQ(up_heap_reset(LONG_MIN), -EINVAL);
	PCHECK_EQ(up_heap_reset((long)(uintptr_t)&local), -EINVAL);
	PCHECK_EQ(up_heap_reset(m + 8), -EINVAL);
	PCHECK_EQ(up_heap_reset((long)(uintptr_t)p), -EINVAL); /* allocated, not a mark */
	PCHECK_EQ(up_heap_reset((long)(uintptr_t)p + 4096 * 16), -EINVAL); /* past the top */
	/* a mark of another process */
	static struct foreign f;
	up_pid o = up_spawn(mark_owner, &f);
	up_yield();
	PCHECK(f.mark > 0);
	PCHECK_EQ(up_heap_reset(f.mark), -EINVAL);
	PCHECK_EQ(up_send_word(o, 1), 0);
	/* none of that disturbed the real mark */
	PCHECK_EQ(up_heap_reset(m), 0);
}

static void test_heap_reset_bogus(void **state)
{
	(void)state;
	RUN1(bogus_main);
}

/* Is the page holding p mapped? */
static int mapped(const void *p)
{
	unsigned char vec;
	void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
	return mincore(page, 4096, &vec) == 0 || errno != ENOMEM;
}

static void unmap_main(void *arg)
{
	(void)arg;
	const size_t big = (size_t)16 << 20;

	/* a mark in the region's heap; a big block (its own mapping) */
	long m = up_heap_mark();
	char *p = up_alloc(big);
	if (!p) {
		PFAIL("up_alloc(16 MiB)");
		return;
	}
	memset(p, 1, big);
	long long rss1 = vm_rss_app_bytes();
	PCHECK(mapped(p) && mapped(p + big - 1));
	PCHECK_EQ(up_heap_reset(m), 0);
	PCHECK(!mapped(p));
	PCHECK(!mapped(p + big - 1));
	long long rss2 = vm_rss_app_bytes();
	if (rss1 - rss2 < (long long)(big / 2))
		PFAIL("reset gave back %lld KiB of a 16 MiB block", (rss1 - rss2) >> 10);

	/* a mark inside a heap mapping: later mappings go, that one stays and
	 * allocation continues in it */
	m = up_heap_mark(); /* (the reset used up the first one) */
	char *q = up_alloc(200 << 10); /* past the region's heap: a mapping */
	memset(q, 2, 200 << 10);
	long m2 = up_heap_mark();
	char *r = up_alloc(big);
	PCHECK(r != NULL);
	if (r)
		memset(r, 3, big);
	char *s = up_alloc(2 * big);
	PCHECK(s != NULL);
	PCHECK_EQ(up_heap_reset(m2), 0);
	PCHECK(mapped(q) && q[(200 << 10) - 1] == 2);
	PCHECK(r && !mapped(r));
	PCHECK(s && !mapped(s));
	char *after = up_alloc(16);
	PCHECK((uintptr_t)after == MARK_ADDR(m2)); /* where the mark was */
	PCHECK_EQ(up_heap_reset(m), 0);       /* and back to the region */
	PCHECK(!mapped(q));
}

static void test_heap_reset_unmaps(void **state)
{
	(void)state;
	RUN1(unmap_main);
}


/* NaN and infinities are no Erlang terms: a bad term (-EINVAL). */
static void nonfinite_main(void *arg)
{
	(void)arg;
	PCHECK_EQ(up_term_error(up_float(NAN)), -EINVAL);
	PCHECK_EQ(up_term_error(up_float(INFINITY)), -EINVAL);
	PCHECK_EQ(up_term_error(up_float(-INFINITY)), -EINVAL);
	PCHECK_EQ(up_term_error(up_tuplev(1, up_float(NAN))), -EINVAL);
	PCHECK(!up_is_bad(up_float(-0.0)));
}

static void test_float_nonfinite(void **state)
{
	(void)state;
	RUN1(nonfinite_main);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_float_nonfinite),
		UPT_TEST(test_builders_accessors),
		UPT_TEST(test_kind_mismatch),
		UPT_TEST(test_bad_terms),
		UPT_TEST(test_outside_process),
		UPT_TEST(test_int_boundaries),
		UPT_TEST(test_term_order),
		UPT_TEST(test_int_float_order_exact),
		UPT_TEST(test_hash_consistent),
		UPT_TEST(test_hash_signed_zero),
		UPT_TEST(test_format),
		UPT_TEST(test_format_erlang_details),
		UPT_TEST(test_format_truncation),
		UPT_TEST(test_refs_unique),
		UPT_TEST(test_atoms_threads),
		UPT_TEST(test_atom_table_full),
		UPT_TEST(test_heap_mark_reuse),
		UPT_TEST(test_heap_reset_bogus),
		UPT_TEST(test_heap_reset_unmaps),
	};
	return UPT_RUN("term", tests);
}
