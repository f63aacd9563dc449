/*
 * test_isolation.c - crash isolation under load: processes that overflow
 * their stacks or fail an up_assert end alone, with the documented reasons
 * (stack_overflow; {assert, Expr, File, Line}), while the other processes
 * keep exchanging messages and lose none; memory comes back afterwards.
 *
 * The storm: N_OVERFLOW processes recurse with large frames until they hit
 * their guard page, while N_PAIRS pairs of processes ping-pong counted
 * words across the two schedulers.  Every process is monitored from birth
 * (UP_SPAWN_MONITOR) by the test's main process, which checks each DOWN.
 */
#include "helpers.h"

#define N_OVERFLOW ((int)UPT_SCALE(1000, 200))
#define N_PAIRS ((int)UPT_SCALE(500, 100))      /* 2 processes each */
#define ROUNDS ((uint64_t)UPT_SCALE(2000, 500)) /* round trips per pair */
#define N_ASSERT 20
#define STOP_WORD UINT64_MAX



/* ------------------------------------------------------------ overflow */

static atomic_int overflow_returned;

static void overflower(void *arg)
{
	(void)arg;
	up_yield(); /* let the others get going first */
	stack_deep(0);
	atomic_fetch_add(&overflow_returned, 1); /* never */
}

/* ------------------------------------------------------------ ping-pong */

struct pair {
	up_pid a, b;
	atomic_uint_fast64_t a_ok;     /* right replies A got */
	atomic_uint_fast64_t b_echoed; /* words B echoed */
	atomic_int bad;
};

static void pong_b(void *arg)
{
	struct pair *p = arg;
	struct up_msg m;
	if (up_recv(&m, WAIT_NS) != 0 || m.kind != UP_MSG_WORD) {
		atomic_fetch_add(&p->bad, 1);
		return;
	}
	up_pid a = (up_pid)m.word;
	for (;;) {
		if (up_recv(&m, WAIT_NS) != 0 || m.kind != UP_MSG_WORD) {
			atomic_fetch_add(&p->bad, 1);
			return;
		}
		if (m.word == STOP_WORD)
			return;
		if (up_send_word(a, m.word) != 0) {
			atomic_fetch_add(&p->bad, 1);
			return;
		}
		atomic_fetch_add(&p->b_echoed, 1);
	}
}

static void ping_a(void *arg)
{
	struct pair *p = arg;
	struct up_msg m;
	up_send_word(p->b, (uint64_t)up_self());
	for (uint64_t k = 0; k < ROUNDS; k++) {
		if (up_send_word(p->b, k) != 0 || up_recv(&m, WAIT_NS) != 0) {
			atomic_fetch_add(&p->bad, 1);
			return;
		}
		if (m.kind == UP_MSG_WORD && m.word == k)
			atomic_fetch_add(&p->a_ok, 1);
		if ((k & 63) == 0)
			up_yield();
	}
	up_send_word(p->b, STOP_WORD);
}

/* ------------------------------------------------------------- asserts */

static volatile int one = 1;
static atomic_int assert_line; /* asserters on both schedulers write it */

static void asserter(void *arg)
{
	(void)arg;
	up_yield();
	atomic_store(&assert_line, __LINE__); up_assert(one == 2); /* one line */
	PFAIL("up_assert returned");
}

/* ---------------------------------------------------------------- storm */

struct storm {
	int n_overflow, n_pairs, n_assert;
	struct pair *pairs;
	up_term *ref_over, *ref_a, *ref_b, *ref_assert;
	up_pid *pid_over;
	int got_over, got_pairs, got_assert;
};

static up_pid spawn_mon(up_fn fn, void *arg, int sched, up_term *ref)
{
	struct up_spawn_opts o = spawn_on(sched);
	o.flags |= UP_SPAWN_MONITOR;
	up_pid pid = up_spawn_opt(fn, arg, &o);
	*ref = o.monitor_ref;
	if (pid <= 0)
		PFAIL("spawn: %" PRId64, pid);
	return pid;
}

/* Which monitor a DOWN belongs to: 0 overflow, 1 pair, 2 assert, -1 none;
 * *idx its index. */
static int classify(struct storm *s, up_term ref, int *idx)
{
	for (int i = 0; i < s->n_overflow; i++)
		if (up_equal(ref, s->ref_over[i]))
			return *idx = i, 0;
	for (int i = 0; i < s->n_pairs; i++)
		if (up_equal(ref, s->ref_a[i]) || up_equal(ref, s->ref_b[i]))
			return *idx = i, 1;
	for (int i = 0; i < s->n_assert; i++)
		if (up_equal(ref, s->ref_assert[i]))
			return *idx = i, 2;
	return -1;
}

static void check_assert_reason(up_term r)
{
	const void *data;
	size_t len;
	int64_t line = 0;
	static const char file_tail[] = "test_isolation.c";
	if (up_tuple_arity(r) != 4 || el(r, 0) != A("assert")) {
		char b[200];
		up_term_format(r, b, sizeof b);
		PFAIL("assert reason %s", b);
		return;
	}
	PCHECK(up_get_binary(el(r, 1), &data, &len) == 0 && len == 8 &&
	       memcmp(data, "one == 2", 8) == 0);
	PCHECK(up_get_binary(el(r, 2), &data, &len) == 0 && len >= sizeof file_tail - 1 &&
	       memcmp((const char *)data + len - (sizeof file_tail - 1), file_tail,
		      sizeof file_tail - 1) == 0);
	PCHECK(up_get_int(el(r, 3), &line) == 0 && line == assert_line);
}

/* One storm: spawn everything interleaved over both schedulers, then take
 * every DOWN and check it. */
static void storm(struct storm *s)
{
	int total = s->n_overflow + 2 * s->n_pairs + s->n_assert;
	int o = 0, p = 0, a = 0;
	while (o < s->n_overflow || p < s->n_pairs || a < s->n_assert) {
		if (p < s->n_pairs) {
			struct pair *pr = &s->pairs[p];
			pr->b = spawn_mon(pong_b, pr, p & 1, &s->ref_b[p]);
			pr->a = spawn_mon(ping_a, pr, (p + 1) & 1, &s->ref_a[p]);
			p++;
		}
		if (o < s->n_overflow) {
			s->pid_over[o] = spawn_mon(overflower, NULL, o & 1, &s->ref_over[o]);
			o++;
		}
		if (o < s->n_overflow) {
			s->pid_over[o] = spawn_mon(overflower, NULL, o & 1, &s->ref_over[o]);
			o++;
		}
		if (a < s->n_assert && (o % 100 == 0 || o >= s->n_overflow)) {
			spawn_mon(asserter, NULL, a & 1, &s->ref_assert[a]);
			a++;
		}
		if (o % 16 == 0)
			up_yield();
	}
	for (int n = 0; n < total; n++) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("only %d of %d DOWNs", n, total);
			up_shutdown();
			return;
		}
		if (m.kind != UP_MSG_TERM || up_tuple_arity(m.term) != 5 ||
		    el(m.term, 0) != A("DOWN")) {
			PFAIL("unexpected message");
			n--;
			continue;
		}
		int idx = 0;
		up_term reason = el(m.term, 4);
		switch (classify(s, el(m.term, 1), &idx)) {
		case 0:
			if (reason != UP_STACK_OVERFLOW) {
				char b[200];
				up_term_format(reason, b, sizeof b);
				PFAIL("overflowing process %d ended with %s", idx, b);
			}
			s->got_over++;
			break;
		case 1:
			PCHECK(reason == UP_NORMAL);
			s->got_pairs++;
			break;
		case 2:
			check_assert_reason(reason);
			s->got_assert++;
			break;
		default:
			PFAIL("DOWN of an unknown monitor");
		}
		up_msg_free(&m);
	}
	PCHECK_EQ(s->got_over, s->n_overflow);
	PCHECK_EQ(s->got_pairs, 2 * s->n_pairs);
	PCHECK_EQ(s->got_assert, s->n_assert);
	for (int i = 0; i < s->n_pairs; i++) {
		struct pair *pr = &s->pairs[i];
		if (atomic_load(&pr->a_ok) != ROUNDS || atomic_load(&pr->b_echoed) != ROUNDS ||
		    atomic_load(&pr->bad) != 0) {
			PFAIL("pair %d: %llu right replies, %llu echoed, %d errors (of %llu)", i,
			      (unsigned long long)atomic_load(&pr->a_ok),
			      (unsigned long long)atomic_load(&pr->b_echoed),
			      atomic_load(&pr->bad), (unsigned long long)ROUNDS);
			break;
		}
	}
	for (int i = 0; i < s->n_overflow; i++)
		PCHECK_EQ(up_alive(s->pid_over[i]), 0);
	PCHECK_EQ(atomic_load(&overflow_returned), 0);
}

static struct storm *storm_new(int n_overflow, int n_pairs, int n_assert)
{
	struct storm *s = calloc(1, sizeof *s);
	s->n_overflow = n_overflow;
	s->n_pairs = n_pairs;
	s->n_assert = n_assert;
	s->pairs = calloc((size_t)n_pairs, sizeof *s->pairs);
	s->ref_over = calloc((size_t)n_overflow, sizeof(up_term));
	s->pid_over = calloc((size_t)n_overflow, sizeof(up_pid));
	s->ref_a = calloc((size_t)n_pairs, sizeof(up_term));
	s->ref_b = calloc((size_t)n_pairs, sizeof(up_term));
	s->ref_assert = calloc((size_t)n_assert + 1, sizeof(up_term));
	return s;
}

static void storm_free(struct storm *s)
{
	free(s->pairs);
	free(s->ref_over);
	free(s->pid_over);
	free(s->ref_a);
	free(s->ref_b);
	free(s->ref_assert);
	free(s);
}

struct iso_result {
	int n_overflow, n_pairs, n_assert;
	long long rss_before, rss_after, rss_after_run;
};

/* A small storm first, so that the runtime's lasting structures (region
 * chunks, message caches) exist before the baseline; then the storm of
 * r's size, with VmRSS before it and once it is over (the runtime still
 * running). */
static void isolation_main(void *arg)
{
	struct iso_result *r = arg;
	if (up_schedulers() < 2) {
		PFAIL("needs 2 schedulers");
		return;
	}
	struct storm *w = storm_new(r->n_overflow / 10, r->n_pairs / 10, r->n_assert ? 2 : 0);
	storm(w);
	storm_free(w);
	up_sleep(20 * MS);
	r->rss_before = vm_rss_app_bytes();

	struct storm *s = storm_new(r->n_overflow, r->n_pairs, r->n_assert);
	storm(s);
	storm_free(s);
	up_sleep(20 * MS); /* reaping */
	r->rss_after = vm_rss_app_bytes();
}

static void print_rss(const struct iso_result *r, int64_t t0)
{
	print_message("  %d stack overflows, %d asserts, %d pairs x %llu round trips in %.2f s; "
		      "VmRSS %.1f MiB before, %.1f MiB after (%.1f MiB after up_run)%s\n",
		      r->n_overflow, r->n_assert, r->n_pairs,
		      (unsigned long long)(r->n_pairs ? ROUNDS : 0), (now_ns() - t0) / 1e9,
		      r->rss_before / 1048576.0, r->rss_after / 1048576.0,
		      r->rss_after_run / 1048576.0, UPT_ASAN ? " (scaled down under ASan)" : "");
}

static void test_overflows_and_asserts_end_alone_under_load(void **state)
{
	(void)state;
	struct iso_result r = { .n_overflow = N_OVERFLOW, .n_pairs = N_PAIRS,
				.n_assert = N_ASSERT };
	int64_t t0 = now_ns();
	RUN_OK(isolation_main, &r, 2);
	r.rss_after_run = vm_rss_app_bytes();
	print_rss(&r, t0);
}

/*
 * Memory comes back: each overflow dirties its whole stack (64 KiB), so
 * 1,000 of them would leave 64 MiB resident if the stacks of dead
 * processes were kept.  Checked while the runtime still runs (its regions
 * are kept warm for reuse, "stack page resident": one page each), with a
 * generous bound.
 */
static void test_rss_returns_to_baseline_after_overflows(void **state)
{
	(void)state;
	struct iso_result r = { .n_overflow = N_OVERFLOW };
	int64_t t0 = now_ns();
	RUN_OK(isolation_main, &r, 2);
	r.rss_after_run = vm_rss_app_bytes();
	print_rss(&r, t0);
	/* A third of what keeping every overflowed stack would cost.  Not
	 * under TSan: its shadow of the dirtied stacks (and of each fiber's
	 * state) stays resident after the stacks are given back. */
	long long bound = (long long)N_OVERFLOW * (64 << 10) / 3;
	if (!UPT_TSAN && r.rss_after - r.rss_before >= bound)
		fail_msg("VmRSS grew by %.1f MiB (bound %.1f MiB) and stays so while the runtime runs",
			 (r.rss_after - r.rss_before) / 1048576.0, bound / 1048576.0);
}

/* A linked, trapping process is told {'EXIT', Pid, stack_overflow}; the
 * overflowing process's own links are not taken down with anything else. */
static void linked_main(void *arg)
{
	(void)arg;
	up_trap_exit(1);
	for (int sched = 0; sched < 2; sched++) {
		struct up_spawn_opts o = spawn_on(sched);
		o.flags |= UP_SPAWN_LINK;
		up_pid p = up_spawn_opt(overflower, NULL, &o);
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
		PCHECK(up_tuple_arity(m.term) == 3 && el(m.term, 0) == A("EXIT"));
		PCHECK(el(m.term, 1) == up_pid_term(p));
		PCHECK(el(m.term, 2) == UP_STACK_OVERFLOW);
	}
	/* The same stack sizes work again afterwards: a process may use
	 * most of its stack. */
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_MONITOR;
	static volatile int limit_ok = 20; /* 20 x 2 KiB = 40 KiB of 64 */
	stack_depth_limit = limit_ok;
	up_pid p = up_spawn_opt(overflower, NULL, &o);
	struct up_msg m;
	if (proc_recv_or_die(&m) == 0) {
		PCHECK(el(m.term, 3) == up_pid_term(p));
		PCHECK(el(m.term, 4) == UP_NORMAL);
	}
	stack_depth_limit = 1 << 30;
	PCHECK_EQ(atomic_load(&overflow_returned), 1);
	atomic_store(&overflow_returned, 0);
}

static void test_overflow_reason_reaches_links(void **state)
{
	(void)state;
	struct up_run_opts o = run_opts(2);
	o.stack_size = 64 * 1024;
	assert_int_equal(up_run(linked_main, NULL, &o), 0);
	assert_no_pfail();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_overflows_and_asserts_end_alone_under_load),
		UPT_TEST(test_rss_returns_to_baseline_after_overflows),
		UPT_TEST(test_overflow_reason_reaches_links),
	};
	return UPT_RUN("isolation", tests);
}
