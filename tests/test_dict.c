/*
 * test_dict.c - the process dictionary: put/get/erase/replace; 100,000 keys
 * (growth, erasure, reinsertion); keys and values of every kind, looked up
 * with equal terms built separately (1 and 1.0 are different keys); values
 * are copies, so they survive the message they came from being freed and
 * the caller's heap temporaries being reset; each process has its own; the
 * documented errors (-ENOENT, -EINVAL for bad terms and a NULL out, -EPERM
 * outside a process, -ENOMEM past a heap limit).
 */
#include "helpers.h"

/* got == want (up_equal), or a recorded failure with both printed. */
static void check_value_(const char *file, int line, int rc, up_term got, up_term want)
{
	if (rc != 0) {
		pfail_record(file, line, "up_get = %d", rc);
		return;
	}
	if (!up_equal(got, want)) {
		char a[256], b[256];
		up_term_format(got, a, sizeof a);
		up_term_format(want, b, sizeof b);
		pfail_record(file, line, "value %s, want %s", a, b);
	}
}
#define CHECK_GET(key, want)                                                \
	do {                                                                \
		up_term v_ = 0;                                             \
		int rc_ = up_get((key), &v_);                               \
		check_value_(__FILE__, __LINE__, rc_, v_, (want));          \
	} while (0)

/* ------------------------------------------------------------- basics */

static void basics_main(void *arg)
{
	(void)arg;
	up_term k = up_atom("k"), v;
	PCHECK_EQ(up_get(k, &v), -ENOENT);
	PCHECK_EQ(up_erase(k), -ENOENT);
	PCHECK_EQ(up_put(k, up_int(1)), 0);
	CHECK_GET(k, up_int(1));
	CHECK_GET(up_atom("k"), up_int(1));
	/* replace */
	PCHECK_EQ(up_put(k, up_tuplev(2, up_atom("two"), up_binary("2", 1))), 0);
	CHECK_GET(k, up_tuplev(2, up_atom("two"), up_binary("2", 1)));
	PCHECK_EQ(up_put(k, up_int(3)), 0);
	CHECK_GET(k, up_int(3));
	/* others are independent */
	PCHECK_EQ(up_put(up_atom("other"), UP_NIL), 0);
	CHECK_GET(up_atom("other"), UP_NIL);
	CHECK_GET(k, up_int(3));
	/* erase */
	PCHECK_EQ(up_erase(k), 0);
	PCHECK_EQ(up_get(k, &v), -ENOENT);
	PCHECK_EQ(up_erase(k), -ENOENT);
	CHECK_GET(up_atom("other"), UP_NIL);
	/* and back */
	PCHECK_EQ(up_put(k, up_float(4.5)), 0);
	CHECK_GET(k, up_float(4.5));
	/* a key equal to its value, a value that is a key */
	PCHECK_EQ(up_put(up_int(7), up_int(7)), 0);
	CHECK_GET(up_int(7), up_int(7));
	/* get twice: the same value */
	up_term v1, v2;
	PCHECK_EQ(up_get(k, &v1), 0);
	PCHECK_EQ(up_get(k, &v2), 0);
	PCHECK(up_equal(v1, v2));
}

static void test_put_get_erase_replace(void **state)
{
	(void)state;
	RUN_OK(basics_main, NULL, 1);
}

/* ---------------------------------------------------------- many keys */

#define NKEYS 100000

static up_term key_of(long i)
{
	/* mixed: integers, binaries, tuples */
	switch (i % 3) {
	case 0: return up_int(i);
	case 1: {
		char s[24];
		int n = snprintf(s, sizeof s, "key-%ld", i);
		return up_binary(s, (size_t)n);
	}
	default: return up_tuplev(2, up_atom("k"), up_int(i));
	}
}

static up_term value_of(long i, long gen)
{
	return up_tuplev(2, up_int(i * 10 + gen), up_list(1, (up_term[]){ up_int(gen) }));
}

static void many_main(void *arg)
{
	(void)arg;
	long bad = 0;
	for (long i = 0; i < NKEYS; i++)
		if (up_put(key_of(i), value_of(i, 0)) != 0)
			bad++;
	PCHECK_EQ(bad, 0);
	for (long i = 0; i < NKEYS; i++) {
		up_term v;
		if (up_get(key_of(i), &v) != 0 || !up_equal(v, value_of(i, 0))) {
			if (bad++ < 5)
				PFAIL("key %ld lost after %d puts", i, NKEYS);
		}
	}
	/* erase the odd ones, replace the others */
	for (long i = 0; i < NKEYS; i++)
		if (i % 2 ? up_erase(key_of(i)) != 0 : up_put(key_of(i), value_of(i, 1)) != 0)
			bad++;
	PCHECK_EQ(bad, 0);
	for (long i = 0; i < NKEYS; i++) {
		up_term v;
		int rc = up_get(key_of(i), &v);
		if (i % 2 ? rc != -ENOENT : rc != 0 || !up_equal(v, value_of(i, 1))) {
			if (bad++ < 5)
				PFAIL("key %ld after erase/replace: rc %d", i, rc);
		}
	}
	/* reinsert the odd ones (into tombstones) */
	for (long i = 1; i < NKEYS; i += 2)
		if (up_put(key_of(i), value_of(i, 2)) != 0)
			bad++;
	for (long i = 0; i < NKEYS; i++) {
		up_term v;
		if (up_get(key_of(i), &v) != 0 || !up_equal(v, value_of(i, i % 2 ? 2 : 1))) {
			if (bad++ < 5)
				PFAIL("key %ld after reinsertion", i);
		}
	}
	PCHECK_EQ(bad, 0);
	/* churn: 200,000 keys put and erased at once (tombstones only):
	 * lookups still end */
	for (long i = 0; i < 2 * NKEYS; i++) {
		up_term k = up_int(NKEYS + i);
		if (up_put(k, UP_NIL) != 0 || up_erase(k) != 0)
			bad++;
	}
	up_term v;
	PCHECK_EQ(up_get(up_int(3 * NKEYS + 5), &v), -ENOENT);
	PCHECK_EQ(bad, 0);
	CHECK_GET(key_of(4), value_of(4, 1));
}

static void test_many_keys(void **state)
{
	(void)state;
	RUN_OK(many_main, NULL, 1);
}

/* ------------------------------------------------- keys of every kind */

static int build_keys(up_term *k, up_term ref, up_pid pid)
{
	int n = 0;
	k[n++] = up_int(1);
	k[n++] = up_float(1.0); /* == 1 but not =:= : another key */
	k[n++] = up_int(-1);
	k[n++] = up_int(INT64_MAX);
	k[n++] = up_int(INT64_MIN);
	k[n++] = up_float(-2.5);
	k[n++] = up_atom("key");
	k[n++] = up_atom("Key");
	k[n++] = ref;
	k[n++] = up_pid_term(pid);
	k[n++] = UP_NIL;
	k[n++] = up_binary("", 0);
	k[n++] = up_binary("key", 3);
	k[n++] = up_binary("key\0", 4);
	k[n++] = up_tuple(0, NULL);
	k[n++] = up_tuplev(1, up_int(1));
	k[n++] = up_tuplev(1, up_float(1.0));
	k[n++] = up_tuplev(2, up_atom("key"), up_binary("key", 3));
	k[n++] = up_list(1, (up_term[]){ up_int(1) });
	k[n++] = up_list(2, (up_term[]){ up_int(1), up_int(2) });
	k[n++] = up_cons(up_int(1), up_int(2));
	k[n++] = up_tuplev(3, ref, up_list(1, (up_term[]){ UP_NIL }), up_tuplev(1, up_float(0.5)));
	return n;
}
#define NKIND 22

static void kinds_main(void *arg)
{
	(void)arg;
	up_term ref = up_make_ref();
	up_term a[NKIND], b[NKIND];
	int n = build_keys(a, ref, up_self());
	PCHECK_EQ(n, NKIND);
	/* each key's value: another key (values of every kind too) */
	for (int i = 0; i < n; i++)
		PCHECK_EQ(up_put(a[i], a[(i + 1) % n]), 0);
	/* a second reference equal to the first: a copy through a message */
	PCHECK_EQ(up_send(up_self(), ref), 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, 0), 0);
	build_keys(b, m.term, up_self());
	for (int i = 0; i < n; i++) {
		up_term v;
		int rc = up_get(b[i], &v);
		if (rc != 0 || !up_equal(v, a[(i + 1) % n])) {
			char s[128];
			up_term_format(b[i], s, sizeof s);
			PFAIL("key %s: rc %d", s, rc);
		}
	}
	/* 1 and 1.0 stay apart */
	PCHECK_EQ(up_erase(up_float(1.0)), 0);
	CHECK_GET(up_int(1), a[1]);
	up_term v;
	PCHECK_EQ(up_get(up_float(1.0), &v), -ENOENT);
	up_msg_free(&m);
}

static void test_keys_of_every_kind(void **state)
{
	(void)state;
	RUN_OK(kinds_main, NULL, 1);
}

/* ------------------------------------------------- values are copies */

/* The value and key came in a message; the message is freed and its memory
 * reused by later messages: the dictionary's entries are unchanged. */
static void msgfree_main(void *arg)
{
	(void)arg;
	struct up_msg m;
	char s[64];
	for (int i = 0; i < 50; i++) {
		snprintf(s, sizeof s, "value number %02d, padded to a fixed size", i);
		PCHECK_EQ(up_send(up_self(), up_tuplev(2, up_int(i), up_binary(s, strlen(s)))), 0);
		PCHECK_EQ(up_recv(&m, 0), 0);
		/* the message's term as a value, and as a key */
		PCHECK_EQ(up_put(up_int(i), m.term), 0);
		PCHECK_EQ(up_put(m.term, up_int(i)), 0);
		PCHECK_EQ(up_msg_free(&m), 0);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(s, sizeof s, "value number %02d, padded to a fixed size", i);
		up_term want = up_tuplev(2, up_int(i), up_binary(s, strlen(s)));
		CHECK_GET(up_int(i), want);
		CHECK_GET(want, up_int(i));
	}
}

static void test_values_survive_msg_free(void **state)
{
	(void)state;
	RUN_OK(msgfree_main, NULL, 1);
}

/*
 * "Copies of key and value are kept, so the arguments may be freed or
 * reset afterwards": temporaries built after a heap mark, put, then the
 * mark reset.  In a child process (a dictionary in reset memory may crash).
 */
static void reset_main(void *arg)
{
	(void)arg;
	char junk[200];
	memset(junk, 0x5a, sizeof junk);
	/* (a) the table exists before the mark */
	PCHECK_EQ(up_put(up_atom("before"), up_int(1)), 0);
	for (int round = 0; round < 3; round++) {
		long m = up_heap_mark();
		up_term k = up_tuplev(2, up_atom("key"), up_int(round));
		up_term v = up_tuplev(2, up_binary("value", 5), up_float(round + 0.5));
		PCHECK_EQ(up_put(k, v), 0);
		PCHECK_EQ(up_heap_reset(m), 0);
		for (int i = 0; i < 50; i++) /* reuse the reset memory */
			up_binary(junk, sizeof junk);
	}
	for (int round = 0; round < 3; round++)
		CHECK_GET(up_tuplev(2, up_atom("key"), up_int(round)),
			  up_tuplev(2, up_binary("value", 5), up_float(round + 0.5)));
	CHECK_GET(up_atom("before"), up_int(1));
}

static void reset_fresh_main(void *arg)
{
	(void)arg;
	char junk[200];
	memset(junk, 0x5a, sizeof junk);
	/* (b) the first put happens after the mark */
	long m = up_heap_mark();
	PCHECK_EQ(up_put(up_atom("k"), up_binary("v", 1)), 0);
	PCHECK_EQ(up_heap_reset(m), 0);
	for (int i = 0; i < 50; i++)
		up_binary(junk, sizeof junk);
	CHECK_GET(up_atom("k"), up_binary("v", 1));
	PCHECK_EQ(up_put(up_atom("k2"), up_int(2)), 0);
	CHECK_GET(up_atom("k2"), up_int(2));
}

static int reset_body(void *arg)
{
	return run_main((up_fn)arg, NULL, 1) == 0 ? 0 : 100;
}

static void test_values_survive_heap_reset(void **state)
{
	(void)state;
	int rc = fork_run(reset_body, (void *)reset_main, 60);
	if (rc < 0)
		PFAIL("killed by signal %d (the dictionary lived in reset memory)", -rc);
	else if (rc == FORK_CHECKS_FAILED)
		PFAIL("values changed after the caller's heap reset (details above)");
	else if (rc)
		PFAIL("code %d", rc);
	rc = fork_run(reset_body, (void *)reset_fresh_main, 60);
	if (rc < 0)
		PFAIL("first put after a mark: killed by signal %d", -rc);
	else if (rc)
		PFAIL("first put after a mark: code %d (the child failed or crashed)", rc);
	assert_no_pfail();
}

/* ----------------------------------------------------- one per process */

struct priv {
	int child_get, child_put, child_get2;
	int parent_after;
};

static void priv_child(void *arg)
{
	struct priv *p = arg;
	up_term v;
	p->child_get = up_get(up_atom("mine"), &v);
	p->child_put = up_put(up_atom("mine"), up_atom("child"));
	p->child_get2 = up_get(up_atom("mine"), &v) == 0 && v == up_atom("child");
}

static void priv_main(void *arg)
{
	struct priv *p = arg;
	PCHECK_EQ(up_put(up_atom("mine"), up_atom("parent")), 0);
	up_pid c = up_spawn(priv_child, p);
	proc_wait_exit(c);
	up_term v;
	p->parent_after = up_get(up_atom("mine"), &v) == 0 && v == up_atom("parent");
}

static void test_dict_per_process(void **state)
{
	(void)state;
	struct priv p;
	memset(&p, 0, sizeof p);
	RUN_OK(priv_main, &p, 1);
	assert_int_equal(p.child_get, -ENOENT);
	assert_int_equal(p.child_put, 0);
	assert_true(p.child_get2);
	assert_true(p.parent_after);
}

/* ---------------------------------------------------------------- errors */

struct derr {
	int put_badkey, put_badval, get_badkey, get_null, get_null_missing, erase_badkey;
	int get_after;
	/* heap limit */
	int big_put, big_put_key, small_put, small_get;
	/* outside */
	atomic_int go, done;
	int t_put, t_get, t_erase;
};

static void limited(void *arg)
{
	struct derr *e = arg;
	struct up_msg m;
	if (proc_recv_or_die(&m))
		return;
	/* the 100 KiB binary came in a message buffer: copying it into a heap
	 * of at most 64 KiB fails */
	e->big_put = up_put(up_atom("big"), m.term);
	e->big_put_key = up_put(m.term, up_int(1));
	e->small_put = up_put(up_atom("small"), up_int(1));
	up_term v;
	e->small_get = up_get(up_atom("small"), &v) == 0 && v == up_int(1) &&
		       up_get(up_atom("big"), &v) == -ENOENT;
	up_msg_free(&m);
}

static void derr_main(void *arg)
{
	struct derr *e = arg;
	up_term bad = up_atom(""), v;
	PCHECK_EQ(up_put(up_atom("k"), up_int(1)), 0);
	e->put_badkey = up_put(bad, up_int(1));
	e->put_badval = up_put(up_atom("k"), bad);
	e->get_badkey = up_get(bad, &v);
	e->get_null = up_get(up_atom("k"), NULL);
	e->get_null_missing = up_get(up_atom("missing"), NULL);
	e->erase_badkey = up_erase(bad);
	/* the failed put left the old value */
	e->get_after = up_get(up_atom("k"), &v) == 0 && v == up_int(1);

	struct up_spawn_opts o = spawn_opts();
	o.heap_limit = 64 << 10;
	up_pid c = up_spawn_opt(limited, e, &o);
	static uint8_t big[100 << 10];
	PCHECK_EQ(up_send(c, up_binary(big, sizeof big)), 0);
	proc_wait_exit(c);

	atomic_store(&e->go, 1);
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(&e->done) && now_ns() < deadline)
		up_yield();
}

static void *derr_thread(void *arg)
{
	struct derr *e = arg;
	up_term v;
	if (thread_wait_flag(&e->go) == 0) {
		e->t_put = up_put(up_atom("k"), up_int(1));
		e->t_get = up_get(up_atom("k"), &v);
		e->t_erase = up_erase(up_atom("k"));
	}
	atomic_store(&e->done, 1);
	return NULL;
}

static void test_dict_errors(void **state)
{
	(void)state;
	struct derr e;
	pthread_t t;
	memset(&e, 0x55, sizeof e);
	atomic_store(&e.go, 0);
	atomic_store(&e.done, 0);
	assert_int_equal(pthread_create(&t, NULL, derr_thread, &e), 0);
	int rc = run_main(derr_main, &e, 1);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();
	assert_int_equal(e.put_badkey, -EINVAL);
	assert_int_equal(e.put_badval, -EINVAL);
	assert_int_equal(e.get_badkey, -EINVAL);
	assert_int_equal(e.get_null, -EINVAL);
	assert_int_equal(e.get_null_missing, -EINVAL);
	assert_int_equal(e.erase_badkey, -EINVAL);
	assert_true(e.get_after);
	assert_int_equal(e.big_put, -ENOMEM);
	assert_int_equal(e.big_put_key, -ENOMEM);
	assert_int_equal(e.small_put, 0);
	assert_true(e.small_get);
	/* from a plain thread while the runtime ran, and from the test thread */
	assert_int_equal(e.t_put, -EPERM);
	assert_int_equal(e.t_get, -EPERM);
	assert_int_equal(e.t_erase, -EPERM);
	up_term v;
	assert_int_equal(up_put(up_atom("k"), up_int(1)), -EPERM);
	assert_int_equal(up_get(up_atom("k"), &v), -EPERM);
	assert_int_equal(up_erase(up_atom("k")), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_put_get_erase_replace),
		UPT_TEST(test_many_keys),
		UPT_TEST(test_keys_of_every_kind),
		UPT_TEST(test_values_survive_msg_free),
		UPT_TEST(test_values_survive_heap_reset),
		UPT_TEST(test_dict_per_process),
		UPT_TEST(test_dict_errors),
	};
	return UPT_RUN("dict", tests);
}
