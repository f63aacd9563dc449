/*
 * helpers.h - shared boilerplate of the uproc cmocka suites.
 *
 * The rule every suite follows: cmocka assert_*() runs only on the thread
 * that called up_run() (the test thread).  Code running inside processes
 * (fibers) or plain helper threads never calls cmocka; it records failed
 * checks with PCHECK()/PCHECK_EQ() into a log, and the test thread calls
 * assert_no_pfail() after up_run() has returned.  (A cmocka assert inside a
 * fiber would longjmp across stacks.)
 *
 * A process that waits for something that never comes must not hang the
 * suite: waits use timeouts (WAIT_NS) and, on failure, the process records
 * it and calls up_shutdown() so that up_run() returns.
 */
#ifndef UPROC_TEST_HELPERS_H
#define UPROC_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "uproc.h"

/* ---------------------------------------------------------- sanitizers */

#if defined(__SANITIZE_ADDRESS__)
#define UPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UPT_ASAN 1
#endif
#endif
#ifndef UPT_ASAN
#define UPT_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define UPT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UPT_TSAN 1
#endif
#endif
#ifndef UPT_TSAN
#define UPT_TSAN 0
#endif

/* AddressSanitizer or ThreadSanitizer: slower by 2-15x, and a huge shadow
 * reservation (neither runs under RLIMIT_AS). */
#define UPT_SANITIZED (UPT_ASAN || UPT_TSAN)

/* A workload size: `full` in a normal build, `asan` under a sanitizer. */
#define UPT_SCALE(full, asan) (UPT_SANITIZED ? (asan) : (full))

/* Running under Valgrind (a run-time test: any build can be run so).  Code
 * runs 20-50x slower there, one thread at a time, and an idle scheduler
 * wakes every millisecond (scheduler.c). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UPT_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UPT_VALGRIND
#define UPT_VALGRIND 0
#endif

/* How long a process waits for something that should come "at once" before
 * it declares a failure (keeps a broken library from hanging the suite). */
#define WAIT_NS ((int64_t)(UPT_VALGRIND ? 60 : UPT_SCALE(10, 30)) * 1000000000LL)

#define MS ((int64_t)1000000)

/* ---------------------------------------------------------------- time */

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep the calling OS thread (not for use inside a process). */
static inline void thread_sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* User + system CPU time of the whole OS process, in ns. */
static inline int64_t process_cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

/* --------------------------------------------------------------- memory */

/* A field of /proc/self/status in bytes ("VmRSS", "VmSize"), or -1. */
static inline long long proc_status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kb = strtoll(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static inline long long vm_rss_bytes(void) { return proc_status_bytes("VmRSS"); }

/*
 * Resident bytes of the program itself: VmRSS, less (under AddressSanitizer)
 * the shadow memory, which ASan maps for every address the program touched
 * and does not give back when the program unmaps that memory.  In a normal
 * build this is VmRSS.
 */
static inline long long vm_rss_app_bytes(void)
{
	long long rss = vm_rss_bytes();
#if UPT_ASAN
	/* x86-64 shadow: [0x7fff8000, 0x10007fff8000) */
	const unsigned long long lo = 0x7fff8000ULL, hi = 0x10007fff8000ULL;
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long long start = 0, end = 0;
	long long shadow_kb = 0;
	if (!f)
		return rss;
	while (fgets(line, sizeof line, f)) {
		unsigned long long a, b;
		long long kb;
		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, '-') &&
		    line[0] != ' ') {
			start = a;
			end = b;
		} else if (sscanf(line, "Rss: %lld kB", &kb) == 1) {
			if (start >= lo && end <= hi)
				shadow_kb += kb;
		}
	}
	fclose(f);
	rss -= shadow_kb * 1024;
#endif
	return rss;
}
static inline long long vm_size_bytes(void) { return proc_status_bytes("VmSize"); }

/* Open descriptors of this OS process, or -1. */
static inline int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* CPUs in the calling thread's affinity mask. */
static inline int allowed_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return -1;
	return CPU_COUNT(&set);
}

/* ------------------------------------------- checks inside processes */

#define PFAIL_MAX 16
struct pfail_log {
	atomic_int count;
	atomic_int slot;
	char msg[PFAIL_MAX][320];
};
static struct pfail_log pfail;

static inline void pfail_reset(void)
{
	atomic_store(&pfail.count, 0);
	atomic_store(&pfail.slot, 0);
	memset(pfail.msg, 0, sizeof pfail.msg);
}

static inline void pfail_record(const char *file, int line, const char *fmt, ...)
{
	int i;
	va_list ap;

	atomic_fetch_add(&pfail.count, 1);
	i = atomic_fetch_add(&pfail.slot, 1);
	if (i >= PFAIL_MAX)
		return;
	int k = snprintf(pfail.msg[i], sizeof pfail.msg[i], "%s:%d: ", file, line);
	if (k < 0 || k >= (int)sizeof pfail.msg[i])
		return;
	va_start(ap, fmt);
	vsnprintf(pfail.msg[i] + k, sizeof pfail.msg[i] - (size_t)k, fmt, ap);
	va_end(ap);
}

/* Check `cond` inside a process or helper thread; never longjmps. */
#define PCHECK(cond)                                                        \
	do {                                                                \
		if (!(cond))                                                \
			pfail_record(__FILE__, __LINE__, "check failed: %s", \
				     #cond);                                \
	} while (0)

#define PCHECK_EQ(a, b)                                                     \
	do {                                                                \
		long long pa_ = (long long)(a), pb_ = (long long)(b);       \
		if (pa_ != pb_)                                             \
			pfail_record(__FILE__, __LINE__,                    \
				     "%s == %s failed: %lld != %lld", #a, #b, \
				     pa_, pb_);                             \
	} while (0)

/* Record a failure with a formatted message. */
#define PFAIL(...) pfail_record(__FILE__, __LINE__, __VA_ARGS__)

/* On the test thread: fail the test if any process recorded a failure. */
#define assert_no_pfail()                                                   \
	do {                                                                \
		int n_ = atomic_load(&pfail.count);                         \
		if (n_ != 0) {                                              \
			for (int i_ = 0; i_ < n_ && i_ < PFAIL_MAX; i_++)   \
				print_error("  in process: %s\n", pfail.msg[i_]); \
			fail_msg("%d check(s) failed inside processes", n_); \
		}                                                           \
	} while (0)

/* cmocka setup used by every test: clean failure log, no synthetic topology. */
static inline int upt_setup(void **state)
{
	(void)state;
	pfail_reset();
	unsetenv("UPROC_TOPOLOGY");
	return 0;
}

#define UPT_TEST(f) cmocka_unit_test_setup_teardown(f, upt_setup, NULL)

/* Run the group `name`; UPT_FILTER="test_x*" in the environment runs only
 * the matching tests (for debugging one test). */
#define UPT_RUN(name, tests)                                                \
	(getenv("UPT_FILTER") ? cmocka_set_test_filter(getenv("UPT_FILTER")) \
			      : (void)0,                                    \
	 cmocka_run_group_tests_name(name, tests, NULL, NULL))

/* ------------------------------------------------------------- running */

static inline struct up_run_opts run_opts(unsigned schedulers)
{
	struct up_run_opts o;
	memset(&o, 0, sizeof o);
	o.schedulers = schedulers;
	return o;
}

/* up_run() with `schedulers` schedulers (0: default) and default options. */
static inline int run_main(up_fn fn, void *arg, unsigned schedulers)
{
	struct up_run_opts o = run_opts(schedulers);
	return up_run(fn, arg, &o);
}

/* Run fn as the main process; assert up_run returned 0 and that no check
 * inside a process failed. */
#define RUN_OK(fn, arg, schedulers)                                         \
	do {                                                                \
		assert_int_equal(run_main((fn), (arg), (schedulers)), 0);   \
		assert_no_pfail();                                          \
	} while (0)

/* Spawn options with everything default (placement: the spawner's
 * scheduler). */
static inline struct up_spawn_opts spawn_opts(void)
{
	struct up_spawn_opts o;
	memset(&o, 0, sizeof o);
	return o;
}

/* Spawn options placing the process on scheduler `scheduler`. */
static inline struct up_spawn_opts spawn_on(int scheduler)
{
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_SCHEDULER;
	o.scheduler = scheduler;
	return o;
}

/* Spawn options placing the process on NUMA node `node`. */
static inline struct up_spawn_opts spawn_on_node(int node)
{
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_NODE;
	o.node = node;
	return o;
}

/* ----------------------------------------------- helpers for processes */

/* Inside a process: yield until pid is no longer alive, at most WAIT_NS.
 * Returns 0, or -ETIMEDOUT (recorded as a failure). */
static inline int proc_wait_exit(up_pid pid)
{
	int64_t deadline = now_ns() + WAIT_NS;
	int a;
	while ((a = up_alive(pid)) == 1) {
		if (now_ns() > deadline) {
			PFAIL("process %" PRId64 " still alive after %lld s", pid,
			      (long long)(WAIT_NS / 1000000000LL));
			return -ETIMEDOUT;
		}
		up_yield();
	}
	if (a != 0)
		PFAIL("up_alive(%" PRId64 ") = %d while waiting for its exit", pid, a);
	return 0;
}

/* Inside a process: pass time without touching the mailbox (yields). */
static inline void proc_pause_ns(int64_t ns)
{
	int64_t end = now_ns() + ns;
	while (now_ns() < end)
		up_yield();
}

/* Inside a process: receive one message, waiting at most WAIT_NS; on
 * timeout record a failure, stop the runtime and return the error. */
static inline int proc_recv_or_die(struct up_msg *m)
{
	int rc = up_recv(m, WAIT_NS);
	if (rc != 0) {
		PFAIL("up_recv while waiting for an expected message: %d", rc);
		up_shutdown();
	}
	return rc;
}

/* Outside the runtime: wait until *flag != 0 (at most WAIT_NS). */
static inline int thread_wait_flag(atomic_int *flag)
{
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(flag)) {
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		thread_sleep_ns(100000);
	}
	return 0;
}

/* ------------------------------------------- tests in a child process */

/*
 * fork_run - run body(arg) in a child OS process that is killed after
 * timeout_s seconds, so that a test of something that may hang (a run that
 * never returns) or that changes process-wide limits (RLIMIT_AS) cannot take
 * the rest of the suite with it.  Results travel in shared_alloc() memory.
 * Call it between runs (the test process then has no runtime threads).
 *
 * Returns body's return value (0..255; a check that failed inside a process
 * of the child makes it 99, printed on stderr), or -signal if the child was
 * killed (-SIGALRM: timed out).
 */
#define FORK_CHECKS_FAILED 99
static inline int fork_run(int (*body)(void *), void *arg, unsigned timeout_s)
{
	fflush(NULL);
	pid_t c = fork();
	if (c < 0)
		return -1000;
	if (c == 0) {
		alarm(timeout_s);
		int r = body(arg);
		int n = atomic_load(&pfail.count);
		for (int i = 0; i < n && i < PFAIL_MAX; i++)
			fprintf(stderr, "  in process: %s\n", pfail.msg[i]);
		fflush(NULL);
		_exit(r == 0 && n ? FORK_CHECKS_FAILED : r);
	}
	int st = 0;
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st))
		return -WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Memory shared with a fork_run() child; never freed (tests are short). */
static inline void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* On the test thread: fail with a readable reason unless fork_run gave 0. */
#define assert_fork_ok(rc, timeout_s, what)                                 \
	do {                                                                \
		int r_ = (rc);                                              \
		if (r_ == -SIGALRM)                                         \
			fail_msg("%s: did not finish within %u s (hang)", what, \
				 (unsigned)(timeout_s));                    \
		if (r_ < 0)                                                 \
			fail_msg("%s: killed by signal %d", what, -r_);     \
		if (r_ == FORK_CHECKS_FAILED)                               \
			fail_msg("%s: checks failed inside processes (above)", what); \
		if (r_ != 0)                                                \
			fail_msg("%s: failed with code %d", what, r_);      \
	} while (0)

/* ---- stack overflow ---- */

/* Depth at which stack_deep() returns: never reached unless a test lowers
 * it (the stack ends first). */
static volatile int stack_depth_limit __attribute__((unused)) = 1 << 30;

/* Recurse 2 KiB a frame (< a page: every page is touched in turn) down to
 * stack_depth_limit, or into the guard page. */
static __attribute__((noinline, unused)) int stack_deep(int n)
{
	volatile char frame[2048];
	for (size_t i = 0; i < sizeof frame; i += 64)
		frame[i] = (char)n;
	if (n >= stack_depth_limit)
		return frame[0];
	return stack_deep(n + 1) + frame[(unsigned)n % sizeof frame]; /* no tail call */
}

/* ---- terms in tests ---- */

static inline up_term A(const char *name) { return up_atom(name); }

/* Element i of tuple t (UP_NIL when there is none). */
static inline up_term el(up_term t, size_t i)
{
	up_term e;
	return up_tuple_elem(t, i, &e) == 0 ? e : UP_NIL;
}

/* Is t the tuple {tag, ...} of arity n? */
static inline int is_tagged(up_term t, up_term tag, long n)
{
	return up_tuple_arity(t) == n && el(t, 0) == tag;
}

/* up_recv_match: the DOWN message of monitor ref. */
struct down_arg {
	up_term ref;
};

static inline int match_down(const struct up_msg *m, void *arg)
{
	const struct down_arg *d = arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("DOWN"), 5) &&
	       up_equal(el(m->term, 1), d->ref);
}

/* Check that t equals want (structurally); say what came otherwise. */
#define PCHECK_TERM(t, want)                                                \
	do {                                                                \
		up_term t_ = (t), w_ = (want);                              \
		if (!up_equal(t_, w_)) {                                    \
			char a_[200], b_[200];                              \
			up_term_format(t_, a_, sizeof a_);                  \
			up_term_format(w_, b_, sizeof b_);                  \
			PFAIL("%s is %s, expected %s", #t, a_, b_);         \
		}                                                           \
	} while (0)

#endif /* UPROC_TEST_HELPERS_H */
