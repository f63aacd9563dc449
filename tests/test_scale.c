/*
 * test_scale.c - a million processes: spawn 1,000,000 (100,000 under
 * AddressSanitizer), each blocked in up_recv at once, release each with one
 * message, let them all exit, and check that every spawn, block, send and
 * exit happened and that the memory goes back (VmRSS after the run within
 * 64 MiB of the baseline taken before it; AddressSanitizer's shadow memory
 * is not counted).  Prints ns per spawn and RSS per
 * process for information; nothing is asserted on time.
 */
#include "helpers.h"

#define N_PROCS ((long)UPT_SCALE(1000000, 100000))
#define RELEASE_WORD 0x2222ULL
#define ALL_BLOCKED 1ULL
#define ALL_RELEASED 3ULL
/* Waiting for a million processes may take a while on a slow machine. */
#define SCALE_WAIT_NS ((int64_t)180 * 1000000000LL)

struct scale {
	up_pid parent;
	up_pid *pids;
	long n;
	int nsched;
	atomic_long blocked;
	atomic_long released;
	atomic_long wrong;
	long spawned;
	up_pid spawn_err;
	long send_errors;
	long still_alive;
	int finished;
	long long rss_base0, rss_base1, rss_peak, rss_exited, rss_after;
	int64_t t_spawn, t_all_blocked, t_release, t_all_exited;
};

static void scale_child(void *arg)
{
	struct scale *s = arg;
	struct up_msg m;
	/* count before blocking; the last one tells the parent */
	if (atomic_fetch_add(&s->blocked, 1) + 1 == s->n)
		if (up_send_word(s->parent, ALL_BLOCKED) != 0)
			atomic_fetch_add(&s->wrong, 1);
	if (up_recv(&m, UP_INFINITY) != 0 || m.word != RELEASE_WORD)
		atomic_fetch_add(&s->wrong, 1);
	if (atomic_fetch_add(&s->released, 1) + 1 == s->n)
		if (up_send_word(s->parent, ALL_RELEASED) != 0)
			atomic_fetch_add(&s->wrong, 1);
}

static int wait_word(uint64_t want, const char *what)
{
	struct up_msg m;
	int rc = up_recv(&m, SCALE_WAIT_NS);
	if (rc != 0 || m.word != want) {
		PFAIL("waiting for %s: rc %d word %#" PRIx64, what, rc, rc ? 0 : m.word);
		up_shutdown();
		return -1;
	}
	return 0;
}

static void scale_main(void *arg)
{
	struct scale *s = arg;
	int64_t t0;

	s->parent = up_self();
	s->nsched = up_schedulers();
	s->rss_base1 = vm_rss_app_bytes();

	t0 = now_ns();
	for (long i = 0; i < s->n; i++) {
		struct up_spawn_opts o = spawn_on((int)(i % s->nsched));
		up_pid p = up_spawn_opt(scale_child, s, &o);
		if (p <= 0) {
			s->spawn_err = p;
			PFAIL("spawn #%ld failed: %" PRId64, i, p);
			up_shutdown();
			return;
		}
		s->pids[i] = p;
		s->spawned++;
		/* let the ones on this scheduler start now and then */
		if ((i & 4095) == 4095)
			up_yield();
	}
	s->t_spawn = now_ns() - t0;

	if (wait_word(ALL_BLOCKED, "all blocked"))
		return;
	s->t_all_blocked = now_ns() - t0;
	s->rss_peak = vm_rss_app_bytes();

	t0 = now_ns();
	for (long i = 0; i < s->n; i++)
		if (up_send_word(s->pids[i], RELEASE_WORD) != 0)
			s->send_errors++;
	s->t_release = now_ns() - t0;
	if (s->send_errors) {
		PFAIL("%ld release sends failed", s->send_errors);
		up_shutdown();
		return;
	}
	if (wait_word(ALL_RELEASED, "all released"))
		return;
	/* every one of them is gone (or going) */
	for (long i = 0; i < s->n; i++) {
		int a;
		while ((a = up_alive(s->pids[i])) == 1)
			up_yield();
		if (a != 0)
			s->still_alive++;
	}
	s->t_all_exited = now_ns() - t0;
	s->rss_exited = vm_rss_app_bytes();
	s->finished = 1;
}

static void test_million_processes(void **state)
{
	(void)state;
	struct scale s;
	memset(&s, 0, sizeof s);
	s.n = N_PROCS;

	s.rss_base0 = vm_rss_app_bytes();
	s.pids = calloc((size_t)s.n, sizeof *s.pids);
	assert_non_null(s.pids);

	struct up_run_opts o = run_opts(allowed_cpus() >= 2 ? 2 : 0);
	o.max_processes = (uint64_t)s.n + 16;
	int64_t t0 = now_ns();
	int rc = up_run(scale_main, &s, &o);
	int64_t t_run = now_ns() - t0;
	free(s.pids);
	s.rss_after = vm_rss_app_bytes();

	printf("scale: %ld processes on %d schedulers%s\n", s.n, s.nsched,
	       UPT_ASAN ? " (scaled down under ASan)" : "");
	if (s.spawned)
		printf("scale: spawn %.0f ns/process; all blocked after %.3f s; "
		       "release sends %.0f ns/message; all exited %.3f s after release\n",
		       (double)s.t_spawn / (double)s.spawned, s.t_all_blocked / 1e9,
		       (double)s.t_release / (double)s.n, s.t_all_exited / 1e9);
	printf("scale: RSS base %lld MiB, in run %lld MiB, all blocked %lld MiB "
	       "(%.0f bytes/process), all exited %lld MiB, after up_run %lld MiB; "
	       "up_run took %.3f s\n",
	       s.rss_base0 >> 20, s.rss_base1 >> 20, s.rss_peak >> 20,
	       s.spawned ? (double)(s.rss_peak - s.rss_base1) / (double)s.spawned : 0.0,
	       s.rss_exited >> 20, s.rss_after >> 20, t_run / 1e9);
	fflush(stdout);

	assert_int_equal(rc, 0);
	assert_no_pfail();
	assert_int_equal(s.spawned, s.n);
	assert_int_equal(atomic_load(&s.blocked), s.n);
	assert_int_equal(atomic_load(&s.released), s.n);
	assert_int_equal(atomic_load(&s.wrong), 0);
	assert_int_equal(s.send_errors, 0);
	assert_int_equal(s.still_alive, 0);
	assert_true(s.finished);
	/* the memory of a million processes went back to the kernel */
	assert_true(s.rss_after <= s.rss_base0 + (64LL << 20));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_million_processes),
	};
	return UPT_RUN("scale", tests);
}
