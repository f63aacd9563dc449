/*
 * test_watchdog.c - long-run reports (src/watchdog.c): a process that keeps
 * the CPU past long_run_us is counted and reported once, with its pid and a
 * run time of at least the threshold; processes that yield are not; the
 * options are checked.
 */
#include "helpers.h"

#define THRESHOLD_US 100000             /* 100 ms: far above OS jitter */

static struct {
	atomic_int n;
	atomic_llong pid, run_ns;
} rep;

static void on_long_run(up_pid pid, int64_t run_ns, void *arg)
{
	PCHECK(arg == &rep);
	atomic_fetch_add(&rep.n, 1);
	atomic_store(&rep.pid, pid);
	atomic_store(&rep.run_ns, run_ns);
}

/* Computes for 4 thresholds without a single yield. */
static void hog(void *arg)
{
	(void)arg;
	int64_t end = now_ns() + 4 * THRESHOLD_US * 1000LL;
	while (now_ns() < end)
		;
}

/* Computes as long, but yields every 100 us. */
static void polite(void *arg)
{
	(void)arg;
	int64_t end = now_ns() + 4 * THRESHOLD_US * 1000LL;
	while (now_ns() < end) {
		int64_t slice = now_ns() + 100000;
		while (now_ns() < slice)
			;
		up_yield();
	}
}

struct wd_run { up_pid hog; uint64_t long_runs; };

static void wd_main(void *arg)
{
	struct wd_run *r = arg;
	up_pid p = up_spawn(polite, NULL);
	proc_wait_exit(p);
	PCHECK_EQ(atomic_load(&rep.n), 0);
	r->hog = up_spawn(hog, NULL);
	proc_wait_exit(r->hog);
	struct up_sched_stats st;
	PCHECK_EQ(up_sched_stats(0, &st), 0);
	r->long_runs = st.long_runs;
}

static void test_long_run_reported(void **state)
{
	(void)state;
	memset(&rep, 0, sizeof(rep));
	struct wd_run r = { 0 };
	struct up_run_opts o = run_opts(1);
	o.long_run_us = THRESHOLD_US;
	o.on_long_run = on_long_run;
	o.long_run_arg = &rep;
	assert_int_equal(up_run(wd_main, &r, &o), 0);
	assert_no_pfail();
	assert_int_equal(atomic_load(&rep.n), 1);
	assert_int_equal(atomic_load(&rep.pid), r.hog);
	assert_true(atomic_load(&rep.run_ns) >= THRESHOLD_US * 1000LL);
	assert_true(atomic_load(&rep.run_ns) < 4 * THRESHOLD_US * 1000LL);
	assert_int_equal(r.long_runs, 1);
}

/* Without a callback the counter still counts. */
static void count_main(void *arg)
{
	uint64_t *n = arg;
	proc_wait_exit(up_spawn(hog, NULL));
	struct up_sched_stats st;
	PCHECK_EQ(up_sched_stats(0, &st), 0);
	*n = st.long_runs;
}

static void test_counter_without_callback(void **state)
{
	(void)state;
	uint64_t n = 0;
	struct up_run_opts o = run_opts(1);
	o.long_run_us = THRESHOLD_US;
	assert_int_equal(up_run(count_main, &n, &o), 0);
	assert_no_pfail();
	assert_int_equal(n, 1);
	/* Off by default. */
	n = 0;
	o.long_run_us = 0;
	assert_int_equal(up_run(count_main, &n, &o), 0);
	assert_int_equal(n, 0);
}

static void nothing(void *arg) { (void)arg; }

static void test_options_checked(void **state)
{
	(void)state;
	struct up_run_opts o = run_opts(1);
	o.on_long_run = on_long_run;
	assert_int_equal(up_run(nothing, NULL, &o), -EINVAL);   /* no threshold */
	o.long_run_us = 60000001;
	assert_int_equal(up_run(nothing, NULL, &o), -EINVAL);   /* over 60 s */
	o = run_opts(1);
	o.flags = 0x80;
	assert_int_equal(up_run(nothing, NULL, &o), -EINVAL);   /* unknown flag */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_long_run_reported),
		UPT_TEST(test_counter_without_callback),
		UPT_TEST(test_options_checked),
	};
	return UPT_RUN("watchdog", tests);
}
