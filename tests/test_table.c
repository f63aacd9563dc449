/*
 * test_table.c - shared tables (src/table.c, src/ebr.c): every operation and
 * every documented errno; access rights seen from other processes; owner
 * exit deletes the table and its name; give-away and heir; update_counter
 * from many processes on 2 schedulers sums exactly; readers on one
 * scheduler while a writer on the other rewrites see whole values only;
 * large and deep values; traversals while others insert and delete return
 * every stable key exactly once and no key twice.
 */
#include "helpers.h"

#define TRANSFER_WAIT WAIT_NS

static up_term bin_of(uint64_t i, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	for (size_t k = 0; k < len; k++)
		b[k] = (uint8_t)(i * 31 + k);
	up_term t = up_binary(b, len);
	free(b);
	return t;
}

static int bin_is(up_term t, uint64_t i, size_t len)
{
	const void *d;
	size_t n;
	if (up_get_binary(t, &d, &n) != 0 || n != len)
		return 0;
	for (size_t k = 0; k < len; k++)
		if (((const uint8_t *)d)[k] != (uint8_t)(i * 31 + k))
			return 0;
	return 1;
}

static void nop(void *arg)
{
	(void)arg;
}

/* The head of list l (UP_NIL for []). */
static up_term head(up_term l)
{
	up_term h = UP_NIL;
	up_get_cons(l, &h, NULL);
	return h;
}

static int64_t int_of(up_term t)
{
	int64_t v = INT64_MIN;
	up_get_int(t, &v);
	return v;
}

/* Receive {'ETS-TRANSFER', Tab, From, Data}; 0 or -1 (recorded). */
static int recv_transfer(up_table tab, up_pid from, up_term data)
{
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return -1;
	int ok = m.kind == UP_MSG_TERM && is_tagged(m.term, A("ETS-TRANSFER"), 4) &&
		 int_of(el(m.term, 1)) == tab && up_equal(el(m.term, 2), up_pid_term(from)) &&
		 up_equal(el(m.term, 3), data);
	if (!ok) {
		char b[256];
		up_term_format(m.term, b, sizeof b);
		PFAIL("not the expected transfer: %s", b);
	}
	up_msg_free(&m);
	return ok ? 0 : -1;
}

/* ------------------------------------------------------------ basics */

static void basics_main(void *arg)
{
	(void)arg;
	up_table t = up_table_new(UP_NIL, 0);
	up_term v;
	int64_t r;
	PCHECK(t > 0);
	PCHECK_EQ(up_table_size(t), 0);
	PCHECK_EQ(up_table_lookup(t, A("k"), &v), -ENOENT);
	PCHECK_EQ(up_table_delete(t, A("k")), -ENOENT);
	PCHECK_EQ(up_table_insert(t, A("k"), up_int(1)), 0);
	PCHECK_EQ(up_table_lookup(t, A("k"), &v), 0);
	PCHECK_TERM(v, up_int(1));
	/* replace, with values of every kind; keys built separately */
	up_term big = up_tuplev(4, up_float(2.5), up_binary("xyz", 3),
				up_list(2, (up_term[]){ up_int(INT64_MAX), up_make_ref() }),
				up_pid_term(up_self()));
	PCHECK_EQ(up_table_insert(t, A("k"), big), 0);
	PCHECK_EQ(up_table_lookup(t, up_atom("k"), &v), 0);
	PCHECK_TERM(v, big);
	PCHECK_EQ(up_table_size(t), 1);
	/* insert_new */
	PCHECK_EQ(up_table_insert_new(t, A("k"), up_int(2)), -EEXIST);
	PCHECK_EQ(up_table_lookup(t, A("k"), &v), 0);
	PCHECK_TERM(v, big);
	PCHECK_EQ(up_table_insert_new(t, A("n"), up_int(2)), 0);
	PCHECK_EQ(up_table_size(t), 2);
	/* exact keys: 1 and 1.0 differ; boxed keys by value */
	PCHECK_EQ(up_table_insert(t, up_int(1), A("int")), 0);
	PCHECK_EQ(up_table_insert(t, up_float(1.0), A("float")), 0);
	PCHECK_EQ(up_table_insert(t, up_tuplev(2, up_binary("a", 1), UP_NIL), A("tuple")), 0);
	PCHECK_EQ(up_table_lookup(t, up_int(1), &v), 0);
	PCHECK_TERM(v, A("int"));
	PCHECK_EQ(up_table_lookup(t, up_float(1.0), &v), 0);
	PCHECK_TERM(v, A("float"));
	PCHECK_EQ(up_table_lookup(t, up_tuplev(2, up_binary("a", 1), UP_NIL), &v), 0);
	PCHECK_TERM(v, A("tuple"));
	PCHECK_EQ(up_table_size(t), 5);
	/* the table keeps copies: the caller's terms may go */
	long mark = up_heap_mark();
	up_term key = up_tuplev(2, A("tmp"), up_binary("0123456789abcdef", 16));
	PCHECK_EQ(up_table_insert(t, key, up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) })), 0);
	PCHECK_EQ(up_heap_reset(mark), 0);
	up_term junk = up_binary("################################", 32);
	(void)junk;
	PCHECK_EQ(up_table_lookup(t, up_tuplev(2, A("tmp"), up_binary("0123456789abcdef", 16)), &v), 0);
	PCHECK_TERM(v, up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) }));
	/* a looked-up value is the caller's own copy */
	up_term v2;
	PCHECK_EQ(up_table_lookup(t, A("k"), &v2), 0);
	PCHECK_EQ(up_table_insert(t, A("k"), up_int(0)), 0);
	PCHECK_TERM(v2, big);
	/* delete */
	PCHECK_EQ(up_table_delete(t, A("k")), 0);
	PCHECK_EQ(up_table_lookup(t, A("k"), &v), -ENOENT);
	PCHECK_EQ(up_table_delete(t, A("k")), -ENOENT);
	PCHECK_EQ(up_table_size(t), 5);
	/* counters */
	PCHECK_EQ(up_table_update_counter(t, A("c"), 1, NULL, &r), -ENOENT);
	int64_t init = 10;
	PCHECK_EQ(up_table_update_counter(t, A("c"), 5, &init, &r), 0);
	PCHECK_EQ(r, 15);
	PCHECK_EQ(up_table_update_counter(t, A("c"), -20, &init, &r), 0);
	PCHECK_EQ(r, -5);
	PCHECK_EQ(up_table_update_counter(t, A("c"), 0, NULL, NULL), 0);
	PCHECK_EQ(up_table_lookup(t, A("c"), &v), 0);
	PCHECK_TERM(v, up_int(-5));
	/* across the immediate/boxed boundary and back */
	PCHECK_EQ(up_table_insert(t, A("c"), up_int(((int64_t)1 << 62) - 2)), 0);
	PCHECK_EQ(up_table_update_counter(t, A("c"), 5, NULL, &r), 0);
	PCHECK_EQ(r, ((int64_t)1 << 62) + 3);
	PCHECK_EQ(up_table_lookup(t, A("c"), &v), 0);
	PCHECK_TERM(v, up_int(((int64_t)1 << 62) + 3));
	PCHECK_EQ(up_table_update_counter(t, A("c"), -10, NULL, &r), 0);
	PCHECK_EQ(up_table_lookup(t, A("c"), &v), 0);
	PCHECK_TERM(v, up_int(((int64_t)1 << 62) - 7));
	init = INT64_MAX - 1;
	PCHECK_EQ(up_table_update_counter(t, A("big"), 1, &init, &r), 0);
	PCHECK_EQ(r, INT64_MAX);
	PCHECK_EQ(up_table_update_counter(t, A("big"), 1, NULL, &r), -ERANGE);
	PCHECK_EQ(up_table_lookup(t, A("big"), &v), 0);
	PCHECK_TERM(v, up_int(INT64_MAX));
	init = INT64_MAX;
	PCHECK_EQ(up_table_update_counter(t, A("big2"), 1, &init, &r), -ERANGE);
	PCHECK_EQ(up_table_lookup(t, A("big2"), &v), -ENOENT);
	PCHECK_EQ(up_table_update_counter(t, A("n"), 1, NULL, &r), 0); /* n = 2 */
	PCHECK_EQ(r, 3);
	PCHECK_EQ(up_table_update_counter(t, up_int(1), 1, NULL, &r), -EINVAL); /* 'int' */
	PCHECK_EQ(up_table_destroy(t), 0);
	PCHECK_EQ(up_table_lookup(t, A("n"), &v), -EBADF);
}

static void test_basics(void **state)
{
	(void)state;
	RUN_OK(basics_main, NULL, 1);
}

/* Many keys: growth, deletion of half, reinsertion, tombstone rebuilds. */
#define NKEYS UPT_SCALE(200000, 50000)

static void many_main(void *arg)
{
	(void)arg;
	up_table t = up_table_new(UP_NIL, 0);
	up_term v;
	for (int round = 0; round < 3; round++) {
		for (int64_t i = 0; i < NKEYS; i++)
			if (up_table_insert(t, up_int(i), up_int(i * 3 + round)) != 0)
				PFAIL("insert %" PRId64, i);
		PCHECK_EQ(up_table_size(t), NKEYS);
		for (int64_t i = 0; i < NKEYS; i += 2)
			if (up_table_delete(t, up_int(i)) != 0)
				PFAIL("delete %" PRId64, i);
		PCHECK_EQ(up_table_size(t), NKEYS / 2);
		long bad = 0;
		for (int64_t i = 0; i < NKEYS; i++) {
			int r = up_table_lookup(t, up_int(i), &v);
			if (i % 2 ? r != 0 || int_of(v) != i * 3 + round : r != -ENOENT)
				bad++;
		}
		PCHECK_EQ(bad, 0);
	}
	PCHECK_EQ(up_table_destroy(t), 0);
}

static void test_many_keys(void **state)
{
	(void)state;
	RUN_OK(many_main, NULL, 1);
}

/* ----------------------------------------------------------- errors */

static void errors_main(void *arg)
{
	(void)arg;
	up_term bad = up_int(1); /* a good term, for the other argument */
	up_term badterm = up_binary(NULL, 5); /* a bad term (-EINVAL) */
	up_term v;
	int64_t r;
	PCHECK(up_is_bad(badterm));
	PCHECK_EQ(up_table_new(UP_NIL, 0x4), -EINVAL);
	PCHECK_EQ(up_table_new(UP_NIL, UP_TABLE_PUBLIC | UP_TABLE_PRIVATE), -EINVAL);
	PCHECK_EQ(up_table_new(up_int(3), 0), -EINVAL);
	PCHECK_EQ(up_table_new(badterm, 0), -EINVAL);
	up_table t = up_table_new(A("errs"), UP_TABLE_PUBLIC);
	PCHECK(t > 0);
	PCHECK_EQ(up_table_new(A("errs"), 0), -EEXIST);
	PCHECK_EQ(up_table_whereis(A("errs")), t);
	PCHECK_EQ(up_table_whereis(A("nothing")), -ENOENT);
	PCHECK_EQ(up_table_whereis(up_int(1)), -EINVAL);
	/* bad terms and NULL outs */
	PCHECK_EQ(up_table_insert(t, badterm, bad), -EINVAL);
	PCHECK_EQ(up_table_insert(t, bad, badterm), -EINVAL);
	PCHECK_EQ(up_table_insert_new(t, badterm, bad), -EINVAL);
	PCHECK_EQ(up_table_lookup(t, badterm, &v), -EINVAL);
	PCHECK_EQ(up_table_lookup(t, bad, NULL), -EINVAL);
	PCHECK_EQ(up_table_delete(t, badterm), -EINVAL);
	PCHECK_EQ(up_table_update_counter(t, badterm, 1, NULL, &r), -EINVAL);
	PCHECK_EQ(up_table_select(t, NULL, NULL, NULL), -EINVAL);
	PCHECK_EQ(up_table_match_prefix(t, badterm, &v), -EINVAL);
	PCHECK_EQ(up_table_match_prefix(t, up_cons(up_int(1), up_int(2)), &v), -EINVAL);
	PCHECK_EQ(up_table_match_prefix(t, A("x"), NULL), -EINVAL);
	PCHECK_EQ(up_table_give_away(t, up_self(), UP_NIL), -EINVAL);
	PCHECK_EQ(up_table_give_away(t, -5, UP_NIL), -EINVAL);
	PCHECK_EQ(up_table_give_away(t, 0, UP_NIL), -EINVAL);
	PCHECK_EQ(up_table_give_away(t, up_self(), badterm), -EINVAL);
	PCHECK_EQ(up_table_set_heir(t, -1, UP_NIL), -EINVAL);
	PCHECK_EQ(up_table_set_heir(t, up_self(), badterm), -EINVAL);
	/* a raw integer passed as a term */
	PCHECK_EQ(up_table_give_away(t, up_self(), (up_term)0x1002), -EINVAL);
	/* stale and bogus handles */
	up_table handles[] = { 0, -1, -EBADF, 1, (up_table)1 << 40, t + 1, t ^ (1 << 20),
			       INT64_MAX };
	for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
		up_table h = handles[i];
		PCHECK_EQ(up_table_insert(h, bad, bad), -EBADF);
		PCHECK_EQ(up_table_insert_new(h, bad, bad), -EBADF);
		PCHECK_EQ(up_table_lookup(h, bad, &v), -EBADF);
		PCHECK_EQ(up_table_delete(h, bad), -EBADF);
		PCHECK_EQ(up_table_update_counter(h, bad, 1, NULL, &r), -EBADF);
		PCHECK_EQ(up_table_size(h), -EBADF);
		PCHECK_EQ(up_table_select(h, NULL, NULL, &v), -EBADF);
		PCHECK_EQ(up_table_match_prefix(h, bad, &v), -EBADF);
		PCHECK_EQ(up_table_destroy(h), -EBADF);
		PCHECK_EQ(up_table_owner(h), -EBADF);
		PCHECK_EQ(up_table_give_away(h, up_self(), UP_NIL), -EBADF);
		PCHECK_EQ(up_table_set_heir(h, 0, UP_NIL), -EBADF);
	}
	/* a destroyed table: stale handle, name free, handle never reused */
	PCHECK_EQ(up_table_insert(t, A("a"), A("b")), 0);
	PCHECK_EQ(up_table_destroy(t), 0);
	PCHECK_EQ(up_table_destroy(t), -EBADF);
	PCHECK_EQ(up_table_lookup(t, A("a"), &v), -EBADF);
	PCHECK_EQ(up_table_whereis(A("errs")), -ENOENT);
	up_table t2 = up_table_new(A("errs"), 0);
	PCHECK(t2 > 0 && t2 != t);
	PCHECK_EQ(up_table_whereis(A("errs")), t2);
	PCHECK_EQ(up_table_lookup(t, A("a"), &v), -EBADF);
	/* give-away to a dead process */
	up_pid dead = up_spawn(nop, NULL);
	proc_wait_exit(dead);
	PCHECK_EQ(up_table_give_away(t2, dead, UP_NIL), -ESRCH);
	PCHECK_EQ(up_table_owner(t2), up_self());
}

static void test_errors(void **state)
{
	(void)state;
	up_term v = UP_NIL;
	int64_t r;
	/* outside a process (no runtime, then a helper thread below) */
	PCHECK_EQ(up_table_new(UP_NIL, 0), -EPERM);
	PCHECK_EQ(up_table_whereis(A("x")), -EPERM);
	PCHECK_EQ(up_table_insert(1, UP_NIL, UP_NIL), -EPERM);
	PCHECK_EQ(up_table_insert_new(1, UP_NIL, UP_NIL), -EPERM);
	PCHECK_EQ(up_table_lookup(1, UP_NIL, &v), -EPERM);
	PCHECK_EQ(up_table_lookup(1, UP_NIL, NULL), -EPERM);
	PCHECK_EQ(up_table_delete(1, UP_NIL), -EPERM);
	PCHECK_EQ(up_table_update_counter(1, UP_NIL, 1, NULL, &r), -EPERM);
	PCHECK_EQ(up_table_size(1), -EPERM);
	PCHECK_EQ(up_table_select(1, NULL, NULL, &v), -EPERM);
	PCHECK_EQ(up_table_match_prefix(1, UP_NIL, &v), -EPERM);
	PCHECK_EQ(up_table_destroy(1), -EPERM);
	PCHECK_EQ(up_table_owner(1), -EPERM);
	PCHECK_EQ(up_table_give_away(1, 1, UP_NIL), -EPERM);
	PCHECK_EQ(up_table_set_heir(1, 0, UP_NIL), -EPERM);
	RUN_OK(errors_main, NULL, 1);
}

/* -EMSGSIZE past max_message_size, -ENOMEM past a heap limit (and the
 * process then ends with reason heap_limit, see up_alloc). */
static void limits_child(void *arg)
{
	up_table t = *(up_table *)arg;
	up_term v;
	/* a 64 KiB value does not fit a 16 KiB heap limit */
	PCHECK_EQ(up_table_lookup(t, A("big"), &v), -ENOMEM);
	PCHECK_EQ(up_table_lookup(t, A("small"), &v), 0);
	PCHECK_TERM(v, up_int(7));
	up_term l;
	PCHECK_EQ(up_table_select(t, NULL, NULL, &l), -ENOMEM);
}

static void limits_main(void *arg)
{
	(void)arg;
	up_table t = up_table_new(UP_NIL, 0);
	PCHECK_EQ(up_table_insert(t, A("big"), bin_of(1, 65536)), 0);
	PCHECK_EQ(up_table_insert(t, A("small"), up_int(7)), 0);
	PCHECK_EQ(up_table_insert(t, A("huge"), bin_of(1, 2 << 20)), -EMSGSIZE);
	PCHECK_EQ(up_table_insert(t, bin_of(1, 2 << 20), A("v")), -EMSGSIZE);
	PCHECK_EQ(up_table_size(t), 2);
	struct up_spawn_opts o = spawn_opts();
	o.heap_limit = 16384;
	o.flags = UP_SPAWN_MONITOR;
	up_pid c = up_spawn_opt(limits_child, &t, &o);
	PCHECK(c > 0);
	struct up_msg m;
	struct down_arg d = { o.monitor_ref };
	PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
	PCHECK_TERM(el(m.term, 4), UP_HEAP_LIMIT);
}

static void test_limits(void **state)
{
	(void)state;
	struct up_run_opts o = run_opts(1);
	o.max_message_size = 1 << 20;
	assert_int_equal(up_run(limits_main, NULL, &o), 0);
	assert_no_pfail();
}

/* ---------------------------------------------------- access rights */

struct acc {
	up_table prot, pub, priv;
	up_pid owner;
};

static void access_other(void *arg)
{
	struct acc *a = arg;
	up_term v, l;
	int64_t r;
	/* protected: read yes, write no */
	PCHECK_EQ(up_table_lookup(a->prot, A("k"), &v), 0);
	PCHECK_TERM(v, A("prot"));
	PCHECK_EQ(up_table_size(a->prot), 1);
	PCHECK_EQ(up_table_select(a->prot, NULL, NULL, &l), 1);
	PCHECK_EQ(up_table_match_prefix(a->prot, A("k"), &l), 1);
	PCHECK_EQ(up_table_owner(a->prot), a->owner);
	PCHECK_EQ(up_table_owner(a->pub), a->owner);
	PCHECK_EQ(up_table_insert(a->prot, A("k"), A("x")), -EACCES);
	PCHECK_EQ(up_table_insert_new(a->prot, A("z"), A("x")), -EACCES);
	PCHECK_EQ(up_table_delete(a->prot, A("k")), -EACCES);
	PCHECK_EQ(up_table_update_counter(a->prot, A("n"), 1, NULL, &r), -EACCES);
	PCHECK_EQ(up_table_destroy(a->prot), -EACCES);
	PCHECK_EQ(up_table_give_away(a->prot, up_self(), UP_NIL), -EACCES);
	PCHECK_EQ(up_table_set_heir(a->prot, up_self(), UP_NIL), -EACCES);
	/* public: everything but ownership */
	PCHECK_EQ(up_table_lookup(a->pub, A("k"), &v), 0);
	PCHECK_EQ(up_table_insert(a->pub, A("k2"), A("other")), 0);
	PCHECK_EQ(up_table_update_counter(a->pub, A("n"), 1, NULL, &r), 0);
	PCHECK_EQ(r, 1);
	PCHECK_EQ(up_table_delete(a->pub, A("k2")), 0);
	PCHECK_EQ(up_table_give_away(a->pub, up_self(), UP_NIL), -EACCES);
	PCHECK_EQ(up_table_set_heir(a->pub, up_self(), UP_NIL), -EACCES);
	/* private: nothing, not even reads */
	PCHECK_EQ(up_table_lookup(a->priv, A("k"), &v), -EACCES);
	PCHECK_EQ(up_table_size(a->priv), -EACCES);
	PCHECK_EQ(up_table_select(a->priv, NULL, NULL, &l), -EACCES);
	PCHECK_EQ(up_table_match_prefix(a->priv, A("k"), &l), -EACCES);
	PCHECK_EQ(up_table_insert(a->priv, A("k"), A("x")), -EACCES);
	PCHECK_EQ(up_table_delete(a->priv, A("k")), -EACCES);
	PCHECK_EQ(up_table_owner(a->priv), -EACCES);
	PCHECK_EQ(up_table_destroy(a->priv), -EACCES);
	/* and a public table may be deleted by anyone with write access */
	PCHECK_EQ(up_table_destroy(a->pub), 0);
}

static void access_main(void *arg)
{
	int sched = *(int *)arg;
	struct acc a;
	up_term v;
	a.prot = up_table_new(UP_NIL, UP_TABLE_PROTECTED);
	a.pub = up_table_new(UP_NIL, UP_TABLE_PUBLIC);
	a.priv = up_table_new(UP_NIL, UP_TABLE_PRIVATE);
	a.owner = up_self();
	PCHECK_EQ(up_table_insert(a.prot, A("k"), A("prot")), 0);
	PCHECK_EQ(up_table_insert(a.pub, A("k"), A("pub")), 0);
	PCHECK_EQ(up_table_insert(a.pub, A("n"), up_int(0)), 0);
	PCHECK_EQ(up_table_insert(a.priv, A("k"), A("priv")), 0);
	struct up_spawn_opts o = spawn_on(sched);
	o.flags |= UP_SPAWN_MONITOR;
	PCHECK(up_spawn_opt(access_other, &a, &o) > 0);
	struct up_msg m;
	struct down_arg d = { o.monitor_ref };
	PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
	PCHECK_TERM(el(m.term, 4), UP_NORMAL);
	/* the owner still has its rights; the other's writes are there */
	PCHECK_EQ(up_table_lookup(a.priv, A("k"), &v), 0);
	PCHECK_TERM(v, A("priv"));
	PCHECK_EQ(up_table_lookup(a.prot, A("k"), &v), 0);
	PCHECK_TERM(v, A("prot"));
	PCHECK_EQ(up_table_lookup(a.pub, A("n"), &v), -EBADF);
	PCHECK_EQ(up_table_owner(a.prot), up_self());
}

static void test_access_rights(void **state)
{
	(void)state;
	int same = 0, other = 1;
	RUN_OK(access_main, &same, 1);
	RUN_OK(access_main, &other, 2);
}

/* ------------------------------------------------- owner exit, give-away */

static void owner_child(void *arg)
{
	up_pid parent = *(up_pid *)arg;
	up_table t = up_table_new(A("owned"), UP_TABLE_PUBLIC);
	up_table anon = up_table_new(UP_NIL, UP_TABLE_PROTECTED);
	PCHECK_EQ(up_table_insert(t, A("k"), up_binary("value", 5)), 0);
	PCHECK_EQ(up_table_insert(anon, A("k"), A("v")), 0);
	up_send(parent, up_tuplev(2, up_int(t), up_int(anon)));
	struct up_msg m;
	proc_recv_or_die(&m); /* told to exit */
	if (m.word == 2)
		up_exit(up_self(), A("crash")); /* abnormal exits too */
}

static void owner_exit_main(void *arg)
{
	(void)arg;
	for (uint64_t how = 1; how <= 2; how++) {
		up_pid self = up_self();
		struct up_spawn_opts o = spawn_opts();
		o.flags = UP_SPAWN_MONITOR;
		up_pid c = up_spawn_opt(owner_child, &self, &o);
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
		up_table t = int_of(el(m.term, 0)), anon = int_of(el(m.term, 1));
		up_term v;
		PCHECK_EQ(up_table_whereis(A("owned")), t);
		PCHECK_EQ(up_table_owner(t), c);
		PCHECK_EQ(up_table_lookup(t, A("k"), &v), 0);
		PCHECK_EQ(up_table_lookup(anon, A("k"), &v), 0);
		/* a public table may be written by others, not given away */
		PCHECK_EQ(up_table_insert(t, A("mine"), A("x")), 0);
		PCHECK_EQ(up_table_give_away(t, self, UP_NIL), -EACCES);
		up_send_word(c, how);
		struct down_arg d = { o.monitor_ref };
		PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
		/* gone before the DOWN arrived: handles and name */
		PCHECK_EQ(up_table_lookup(t, A("k"), &v), -EBADF);
		PCHECK_EQ(up_table_insert(t, A("k"), A("v")), -EBADF);
		PCHECK_EQ(up_table_lookup(anon, A("k"), &v), -EBADF);
		PCHECK_EQ(up_table_owner(t), -EBADF);
		PCHECK_EQ(up_table_whereis(A("owned")), -ENOENT);
		up_table again = up_table_new(A("owned"), 0);
		PCHECK(again > 0 && again != t);
		PCHECK_EQ(up_table_destroy(again), 0);
	}
}

static void test_owner_exit_deletes(void **state)
{
	(void)state;
	RUN_OK(owner_exit_main, NULL, 1);
	RUN_OK(owner_exit_main, NULL, 2);
}

struct gift {
	up_pid giver;
	up_table t;
};

static void receiver_proc(void *arg)
{
	struct gift *g = arg;
	up_term v;
	/* the table arrives with the gift */
	if (recv_transfer(g->t, g->giver, up_tuplev(2, A("gift"), up_binary("data", 4))) != 0)
		return;
	PCHECK_EQ(up_table_owner(g->t), up_self());
	PCHECK_EQ(up_table_insert(g->t, A("by"), A("receiver")), 0);
	PCHECK_EQ(up_table_lookup(g->t, A("k"), &v), 0);
	PCHECK_TERM(v, A("v"));
	up_send_word(g->giver, 1);
	struct up_msg m;
	proc_recv_or_die(&m); /* then exit: the table goes with us */
}

static void give_away_main(void *arg)
{
	int sched = *(int *)arg;
	struct gift g = { up_self(), up_table_new(A("gifted"), UP_TABLE_PROTECTED) };
	up_term v;
	PCHECK_EQ(up_table_insert(g.t, A("k"), A("v")), 0);
	struct up_spawn_opts o = spawn_on(sched);
	o.flags |= UP_SPAWN_MONITOR;
	up_pid r = up_spawn_opt(receiver_proc, &g, &o);
	PCHECK_EQ(up_table_give_away(g.t, r, up_tuplev(2, A("gift"), up_binary("data", 4))), 0);
	/* no longer ours: protected, so we read and may not write */
	PCHECK_EQ(up_table_owner(g.t), r);
	PCHECK_EQ(up_table_insert(g.t, A("k"), A("w")), -EACCES);
	PCHECK_EQ(up_table_give_away(g.t, r, UP_NIL), -EACCES);
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return;
	PCHECK_EQ(up_table_lookup(g.t, A("by"), &v), 0);
	PCHECK_TERM(v, A("receiver"));
	PCHECK_EQ(up_table_whereis(A("gifted")), g.t); /* the name goes along */
	up_send_word(r, 0);
	struct down_arg d = { o.monitor_ref };
	PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
	PCHECK_EQ(up_table_lookup(g.t, A("k"), &v), -EBADF);
	PCHECK_EQ(up_table_whereis(A("gifted")), -ENOENT);
}

static void test_give_away(void **state)
{
	(void)state;
	int same = 0, other = 1;
	RUN_OK(give_away_main, &same, 1);
	RUN_OK(give_away_main, &other, 2);
}

/* Heir: the table goes to a live heir when its owner exits; to nobody
 * (deleted) when the heir is dead; the heir can be changed and removed. */
struct heir_ctx {
	up_pid main, heir;
	up_table t;
};

static void heir_owner(void *arg)
{
	struct heir_ctx *h = arg;
	h->t = up_table_new(A("inherited"), UP_TABLE_PRIVATE);
	PCHECK_EQ(up_table_insert(h->t, A("k"), A("v")), 0);
	PCHECK_EQ(up_table_set_heir(h->t, h->main, A("old")), 0);
	PCHECK_EQ(up_table_set_heir(h->t, h->heir, up_tuplev(2, A("heir_data"), up_binary("x", 1))), 0);
	up_send_word(h->main, 1);
	struct up_msg m;
	proc_recv_or_die(&m);
}

static void heir_main(void *arg)
{
	int sched = *(int *)arg;
	struct heir_ctx h = { .main = up_self(), .heir = up_self() };
	struct up_msg m;
	up_term v;
	/* 1. the heir (we) is alive: we get the table */
	struct up_spawn_opts o = spawn_on(sched);
	up_pid owner = up_spawn_opt(heir_owner, &h, &o);
	if (proc_recv_or_die(&m) != 0)
		return;
	PCHECK_EQ(up_table_lookup(h.t, A("k"), &v), -EACCES); /* private */
	up_send_word(owner, 0);
	if (recv_transfer(h.t, owner, up_tuplev(2, A("heir_data"), up_binary("x", 1))) != 0)
		return;
	PCHECK_EQ(up_table_owner(h.t), up_self());
	PCHECK_EQ(up_table_lookup(h.t, A("k"), &v), 0);
	PCHECK_TERM(v, A("v"));
	PCHECK_EQ(up_table_whereis(A("inherited")), h.t);
	PCHECK_EQ(up_table_destroy(h.t), 0);
	/* 2. the heir is dead when the owner exits: deleted */
	h.heir = up_spawn(nop, NULL);
	proc_wait_exit(h.heir);
	o.flags |= UP_SPAWN_MONITOR;
	owner = up_spawn_opt(heir_owner, &h, &o);
	if (proc_recv_or_die(&m) != 0)
		return;
	up_send_word(owner, 0);
	struct down_arg d = { o.monitor_ref };
	PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
	PCHECK_EQ(up_table_owner(h.t), -EBADF);
	PCHECK_EQ(up_table_whereis(A("inherited")), -ENOENT);
	PCHECK_EQ(up_mailbox_len(0), 0);
	/* 3. heir removed: deleted */
	up_table t = up_table_new(UP_NIL, 0);
	PCHECK_EQ(up_table_set_heir(t, up_self(), UP_NIL), 0);
	PCHECK_EQ(up_table_set_heir(t, UP_PID_NONE, UP_NIL), 0);
	PCHECK_EQ(up_table_destroy(t), 0);
}

static void test_heir(void **state)
{
	(void)state;
	int same = 0, other = 1;
	RUN_OK(heir_main, &same, 1);
	RUN_OK(heir_main, &other, 2);
}

/* ------------------------------------------------------- concurrency */

#define WRITERS 8
#define COUNTS UPT_SCALE(20000, 4000)
#define SHARED_KEYS 4

struct conc {
	up_table t;
	up_pid main;
	atomic_int on[2];
};

static void counter_proc(void *arg)
{
	struct conc *c = arg;
	int me = up_scheduler();
	atomic_fetch_add(&c->on[me & 1], 1);
	int64_t init = 0, r, last[SHARED_KEYS] = { 0 };
	up_term own = up_tuplev(2, A("own"), up_pid_term(up_self()));
	for (int i = 0; i < COUNTS; i++) {
		int k = i % SHARED_KEYS;
		if (up_table_update_counter(c->t, up_int(k), 1, &init, &r) != 0)
			PFAIL("update_counter");
		/* each process's view of one counter only grows */
		if (r <= last[k])
			PFAIL("counter %d went from %" PRId64 " to %" PRId64, k, last[k], r);
		last[k] = r;
		/* a counter of its own, beyond 62 bits now and then */
		if (up_table_update_counter(c->t, own, i % 2 ? -((int64_t)1 << 62) : ((int64_t)1 << 62) + 1,
					    &init, NULL) != 0)
			PFAIL("own counter");
		/* distinct keys from every process */
		if (up_table_insert(c->t, up_tuplev(2, up_pid_term(up_self()), up_int(i)), up_int(i)) != 0)
			PFAIL("insert");
		if (i % 64 == 0)
			up_yield();
	}
	up_send_word(c->main, 1);
}

static void counters_main(void *arg)
{
	(void)arg;
	struct conc c = { .t = up_table_new(UP_NIL, UP_TABLE_PUBLIC), .main = up_self() };
	int nsched = up_schedulers();
	for (int i = 0; i < WRITERS; i++) {
		struct up_spawn_opts o = spawn_on(i % nsched);
		PCHECK(up_spawn_opt(counter_proc, &c, &o) > 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
	}
	if (nsched > 1)
		PCHECK(atomic_load(&c.on[0]) > 0 && atomic_load(&c.on[1]) > 0);
	int64_t sum = 0;
	up_term v;
	for (int k = 0; k < SHARED_KEYS; k++) {
		PCHECK_EQ(up_table_lookup(c.t, up_int(k), &v), 0);
		sum += int_of(v);
	}
	PCHECK_EQ(sum, (int64_t)WRITERS * COUNTS);
	PCHECK_EQ(up_table_size(c.t), SHARED_KEYS + WRITERS + (long)WRITERS * COUNTS);
	up_term all;
	PCHECK_EQ(up_table_match_prefix(c.t, up_tuplev(1, A("own")), &all), WRITERS);
	for (up_term l = all; up_kind_of(l) == UP_K_LIST; up_get_cons(l, NULL, &l)) {
		up_term e;
		up_get_cons(l, &e, NULL);
		PCHECK_TERM(el(e, 1), up_int(COUNTS / 2));
	}
}

static void test_concurrent_counters(void **state)
{
	(void)state;
	RUN_OK(counters_main, NULL, 2);
	RUN_OK(counters_main, NULL, 1);
}

/* A writer on one scheduler rewrites keys with values whose parts must
 * agree ({I, <<bytes of I>>, [I, I]}); readers on the other check every
 * value they see is whole and that I never goes back. */
#define RW_KEYS 16
#define RW_ROUNDS UPT_SCALE(20000, 3000)
#define RW_READERS 3

struct rw {
	up_table t;
	up_pid main;
	atomic_int done;
	atomic_long reads;
};

static up_term rw_value(int64_t i)
{
	return up_tuplev(3, up_int(i), bin_of((uint64_t)i, 24 + (size_t)(i % 200)),
			 up_list(2, (up_term[]){ up_int(i), up_int(i) }));
}

static int rw_whole(up_term v, int64_t *i)
{
	*i = int_of(el(v, 0));
	return up_tuple_arity(v) == 3 && bin_is(el(v, 1), (uint64_t)*i, 24 + (size_t)(*i % 200)) &&
	       up_equal(el(v, 2), up_list(2, (up_term[]){ up_int(*i), up_int(*i) }));
}

static void rw_writer(void *arg)
{
	struct rw *c = arg;
	for (int64_t i = 1; i <= RW_ROUNDS; i++) {
		long mark = up_heap_mark();
		if (up_table_insert(c->t, up_int(i % RW_KEYS), rw_value(i)) != 0)
			PFAIL("insert");
		if (i % 97 == 0 && up_table_delete(c->t, up_int((i + 1) % RW_KEYS)) != 0)
			PFAIL("delete");
		up_heap_reset(mark);
		if (i % 32 == 0)
			up_yield();
	}
	atomic_store(&c->done, 1);
	up_send_word(c->main, 1);
}

static void rw_reader(void *arg)
{
	struct rw *c = arg;
	int64_t last[RW_KEYS] = { 0 };
	long n = 0;
	while (!atomic_load(&c->done)) {
		for (int k = 0; k < RW_KEYS; k++) {
			long mark = up_heap_mark();
			up_term v;
			int64_t i;
			int r = up_table_lookup(c->t, up_int(k), &v);
			if (r == 0) {
				if (!rw_whole(v, &i))
					PFAIL("torn value for key %d", k);
				else if (i < last[k])
					PFAIL("key %d went back from %" PRId64 " to %" PRId64, k, last[k], i);
				else
					last[k] = i;
				n++;
			} else if (r != -ENOENT) {
				PFAIL("lookup: %d", r);
			}
			up_heap_reset(mark);
		}
		up_yield();
	}
	atomic_fetch_add(&c->reads, n);
	up_send_word(c->main, 1);
}

static void rw_main(void *arg)
{
	(void)arg;
	struct rw c = { .t = up_table_new(UP_NIL, UP_TABLE_PUBLIC), .main = up_self() };
	int other = up_schedulers() > 1 ? 1 : 0;
	for (int i = 0; i < RW_READERS; i++) {
		struct up_spawn_opts o = spawn_on(other);
		up_spawn_opt(rw_reader, &c, &o);
	}
	struct up_spawn_opts o = spawn_on(0);
	up_spawn_opt(rw_writer, &c, &o);
	for (int i = 0; i < RW_READERS + 1; i++) {
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
	}
	PCHECK(atomic_load(&c.reads) > 0);
}

static void test_readers_while_writer_rewrites(void **state)
{
	(void)state;
	RUN_OK(rw_main, NULL, 2);
}

/* ------------------------------------------------------- large values */

static void large_main(void *arg)
{
	(void)arg;
	up_table t = up_table_new(UP_NIL, 0);
	up_term v;
	size_t len = 8 << 20;
	PCHECK_EQ(up_table_insert(t, A("bin"), bin_of(5, len)), 0);
	PCHECK_EQ(up_table_lookup(t, A("bin"), &v), 0);
	PCHECK(bin_is(v, 5, len));
	/* a list nested 200,000 deep (no recursion anywhere) */
	up_term deep = UP_NIL;
	for (int i = 0; i < 200000; i++)
		deep = up_cons(deep, UP_NIL);
	PCHECK_EQ(up_table_insert(t, deep, deep), 0);
	PCHECK_EQ(up_table_lookup(t, deep, &v), 0);
	PCHECK(up_equal(v, deep));
	/* a big key */
	up_term bk = bin_of(9, 100000);
	PCHECK_EQ(up_table_insert(t, bk, A("bigkey")), 0);
	PCHECK_EQ(up_table_lookup(t, bin_of(9, 100000), &v), 0);
	PCHECK_TERM(v, A("bigkey"));
	up_term l;
	PCHECK_EQ(up_table_select(t, NULL, NULL, &l), 3);
	PCHECK_EQ(up_table_delete(t, A("bin")), 0);
}

static void test_large_values(void **state)
{
	(void)state;
	RUN_OK(large_main, NULL, 1);
}

/* --------------------------------------------------------- traversals */

static int even_value(up_term key, up_term value, void *arg)
{
	(void)key;
	(*(long *)arg)++;
	return int_of(value) % 2 == 0;
}

static void traverse_main(void *arg)
{
	(void)arg;
	up_table t = up_table_new(UP_NIL, 0);
	up_term l;
	PCHECK_EQ(up_table_select(t, NULL, NULL, &l), 0);
	PCHECK_EQ(l, UP_NIL);
	for (int i = 0; i < 1000; i++)
		PCHECK_EQ(up_table_insert(t, up_int(i), up_int(i * 10 + (i % 3 == 0))), 0);
	long calls = 0;
	long n = up_table_select(t, even_value, &calls, &l);
	PCHECK_EQ(calls, 1000);
	int seen[1000] = { 0 };
	long k = 0;
	for (up_term c = l; up_kind_of(c) == UP_K_LIST; up_get_cons(c, NULL, &c), k++) {
		up_term e;
		up_get_cons(c, &e, NULL);
		int64_t key = int_of(el(e, 0));
		PCHECK(key >= 0 && key < 1000 && key % 3 != 0);
		PCHECK_EQ(int_of(el(e, 1)), key * 10);
		if (key >= 0 && key < 1000)
			seen[key]++;
	}
	PCHECK_EQ(k, n);
	PCHECK_EQ(n, 666);
	for (int i = 0; i < 1000; i++)
		PCHECK_EQ(seen[i], i % 3 != 0);
	/* prefixes */
	up_table p = up_table_new(UP_NIL, 0);
	PCHECK_EQ(up_table_insert(p, up_binary("user:1", 6), up_int(1)), 0);
	PCHECK_EQ(up_table_insert(p, up_binary("user:22", 7), up_int(2)), 0);
	PCHECK_EQ(up_table_insert(p, up_binary("use", 3), up_int(3)), 0);
	PCHECK_EQ(up_table_insert(p, up_tuplev(3, A("a"), up_int(1), up_int(2)), up_int(4)), 0);
	PCHECK_EQ(up_table_insert(p, up_tuplev(2, A("a"), up_int(2)), up_int(5)), 0);
	PCHECK_EQ(up_table_insert(p, up_tuplev(1, A("b")), up_int(6)), 0);
	PCHECK_EQ(up_table_insert(p, up_list(3, (up_term[]){ A("x"), A("y"), A("z") }), up_int(7)), 0);
	PCHECK_EQ(up_table_insert(p, up_list(1, (up_term[]){ A("x") }), up_int(8)), 0);
	PCHECK_EQ(up_table_insert(p, up_cons(A("x"), A("improper")), up_int(9)), 0);
	PCHECK_EQ(up_table_insert(p, A("x"), up_int(10)), 0);
	PCHECK_EQ(up_table_match_prefix(p, up_binary("user:", 5), &l), 2);
	PCHECK_EQ(up_table_match_prefix(p, up_binary("", 0), &l), 3);
	PCHECK_EQ(up_table_match_prefix(p, up_tuplev(1, A("a")), &l), 2);
	PCHECK_EQ(up_table_match_prefix(p, up_tuplev(2, A("a"), up_int(1)), &l), 1);
	PCHECK_TERM(el(head(l), 1), up_int(4));
	PCHECK_EQ(up_table_match_prefix(p, up_tuplev(0), &l), 3);
	PCHECK_EQ(up_table_match_prefix(p, up_list(1, (up_term[]){ A("x") }), &l), 3);
	PCHECK_EQ(up_table_match_prefix(p, up_list(2, (up_term[]){ A("x"), A("y") }), &l), 1);
	PCHECK_EQ(up_table_match_prefix(p, UP_NIL, &l), 3);
	PCHECK_EQ(up_table_match_prefix(p, A("x"), &l), 1);
	PCHECK_EQ(up_table_match_prefix(p, A("nope"), &l), 0);
	PCHECK_EQ(l, UP_NIL);
}

static void test_select_and_prefix(void **state)
{
	(void)state;
	RUN_OK(traverse_main, NULL, 1);
}

/* Traversals on one scheduler while writers on the other insert new keys,
 * delete and re-insert old ones, and rewrite stable ones: every stable key
 * once, no key twice. */
#define STABLE UPT_SCALE(20000, 5000)
#define CHURN 2000

struct it {
	up_table t;
	up_pid main;
	atomic_int stop;
	atomic_long passes;
};

static void it_writer(void *arg)
{
	struct it *c = arg;
	int64_t i = 0;
	while (!atomic_load(&c->stop)) {
		/* new keys, then gone again; stable keys rewritten */
		up_table_insert(c->t, up_int(STABLE + i % CHURN), up_int(-1));
		if (i % 3 == 0)
			up_table_delete(c->t, up_int(STABLE + (i * 7) % CHURN));
		up_table_insert(c->t, up_int(i % STABLE), up_int(i % STABLE));
		if (++i % 64 == 0)
			up_yield();
	}
	up_send_word(c->main, 1);
}

static void it_reader(void *arg)
{
	struct it *c = arg;
	uint8_t *seen = calloc(STABLE + CHURN, 1);
	for (int pass = 0; pass < UPT_SCALE(20, 5); pass++) {
		long mark = up_heap_mark();
		up_term l;
		long n = up_table_select(c->t, NULL, NULL, &l);
		memset(seen, 0, STABLE + CHURN);
		long k = 0, stable = 0;
		for (; up_kind_of(l) == UP_K_LIST; up_get_cons(l, NULL, &l), k++) {
			up_term e;
			up_get_cons(l, &e, NULL);
			int64_t key = int_of(el(e, 0)), v = int_of(el(e, 1));
			if (key < 0 || key >= STABLE + CHURN) {
				PFAIL("unknown key %" PRId64, key);
				continue;
			}
			if (seen[key]++)
				PFAIL("key %" PRId64 " twice in one traversal", key);
			if (key < STABLE) {
				stable++;
				if (v != key)
					PFAIL("key %" PRId64 " with value %" PRId64, key, v);
			}
		}
		PCHECK_EQ(k, n);
		PCHECK_EQ(stable, STABLE);
		up_heap_reset(mark);
		atomic_fetch_add(&c->passes, 1);
	}
	free(seen);
	atomic_store(&c->stop, 1);
	up_send_word(c->main, 1);
}

static void iterate_main(void *arg)
{
	(void)arg;
	struct it c = { .t = up_table_new(UP_NIL, UP_TABLE_PUBLIC), .main = up_self() };
	for (int64_t i = 0; i < STABLE; i++)
		up_table_insert(c.t, up_int(i), up_int(i));
	int other = up_schedulers() > 1 ? 1 : 0;
	struct up_spawn_opts o = spawn_on(other);
	up_spawn_opt(it_writer, &c, &o);
	up_spawn_opt(it_writer, &c, &o);
	o = spawn_on(0);
	up_spawn_opt(it_reader, &c, &o);
	for (int i = 0; i < 3; i++) {
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
	}
	PCHECK_EQ(atomic_load(&c.passes), UPT_SCALE(20, 5));
}

static void test_iteration_while_others_insert(void **state)
{
	(void)state;
	RUN_OK(iterate_main, NULL, 2);
}

/* Tables of processes still alive at up_shutdown are freed with them (the
 * sanitizer build checks nothing leaks); a new run starts clean. */
static void shutdown_holder(void *arg)
{
	(void)arg;
	up_table t = up_table_new(A("held"), UP_TABLE_PUBLIC);
	for (int i = 0; i < 1000; i++)
		up_table_insert(t, up_int(i), bin_of((uint64_t)i, 100));
	for (int i = 0; i < 1000; i++)
		up_table_insert(t, up_int(i), bin_of((uint64_t)i, 50)); /* retired olds */
	struct up_msg m;
	up_recv(&m, UP_INFINITY);
}

static void shutdown_main(void *arg)
{
	(void)arg;
	up_spawn(shutdown_holder, NULL);
	while (up_table_whereis(A("held")) < 0)
		up_yield();
	up_shutdown();
	struct up_msg m;
	up_recv(&m, UP_INFINITY);
}

static void fresh_main(void *arg)
{
	(void)arg;
	PCHECK_EQ(up_table_whereis(A("held")), -ENOENT);
	up_table t = up_table_new(A("held"), 0);
	PCHECK(t > 0);
}

static void test_shutdown_frees(void **state)
{
	(void)state;
	RUN_OK(shutdown_main, NULL, 2);
	RUN_OK(fresh_main, NULL, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_basics),
		UPT_TEST(test_many_keys),
		UPT_TEST(test_errors),
		UPT_TEST(test_limits),
		UPT_TEST(test_access_rights),
		UPT_TEST(test_owner_exit_deletes),
		UPT_TEST(test_give_away),
		UPT_TEST(test_heir),
		UPT_TEST(test_concurrent_counters),
		UPT_TEST(test_readers_while_writer_rewrites),
		UPT_TEST(test_large_values),
		UPT_TEST(test_select_and_prefix),
		UPT_TEST(test_iteration_while_others_insert),
		UPT_TEST(test_shutdown_frees),
	};
	return UPT_RUN("table", tests);
}
