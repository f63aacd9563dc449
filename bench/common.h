/*
 * common.h - what the uproc benchmark programs share: flags, the driver
 * process, timing, VmRSS, median/min/max, error checks, RESULT lines.
 *
 * Each program (spawn.c, skynet.c, ...) is one workload of
 * ../shared/peers/README.md and prints the same RESULT lines as the Go and
 * Erlang peers, with impl=c:
 *
 *   RESULT bench=<name> impl=c schedulers=<S> <param=value>... <metric>=<v> unit=<u>
 *
 * Shape of a program:
 *
 *   static void driver(struct bench *b) { ... bench_result(b, "...") ... }
 *   int main(int argc, char **argv)
 *   {
 *           struct bench b = { .name = "ring", .n = 10000, .n_help = "...",
 *                              .runs = 5, .driver = driver };
 *           bench_parse(&b, argc, argv);
 *           return bench_run(&b);
 *   }
 *
 * Errors: any failing uproc call ends the program with exit status 1 and a
 * message on stderr (MUST(), send_word(), recv_word()).  A result that does
 * not verify is printed with check=WRONG (bench_fail()) and makes bench_run()
 * return 1.  Bad flags exit with status 2.
 */
#ifndef UPROC_BENCH_COMMON_H
#define UPROC_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <uproc.h>

struct bench;
typedef void (*bench_driver)(struct bench *b);

struct bench {
	/* Set by the program before bench_parse(). */
	const char *name;     /* bench=<name> */
	bench_driver driver;  /* body of the runtime's first process */
	long n;               /* -n: default size; flag accepted if n_help */
	const char *n_help;
	long m;               /* -m: second size; flag accepted if m_help */
	const char *m_help;
	long runs;            /* -runs: timed runs; 0 = single measurement, no flag */
	long compact;         /* -compact: 1 = UP_SPAWN_COMPACT processes; flag accepted if compact_help */
	const char *compact_help;
	uint64_t max_processes; /* up_run_opts.max_processes (0: default) */

	/* Set by bench_parse(). */
	long schedulers;      /* -schedulers: 0 = the runtime's default */

	/* Set inside the runtime, before driver() runs. */
	int nsched;           /* up_schedulers(): printed as schedulers= */
	up_pid self;          /* the driver's pid */
	bool wrong;           /* a check failed (bench_fail()) */
};

/* Parse argv (-n, -m, -runs, -schedulers as -flag=V or -flag V; -h).
 * Exits with status 2 and a usage message on a bad flag. */
void bench_parse(struct bench *b, int argc, char **argv);

/* Exit with status 2: "<prog>: <message>" and the usage.  For a program's
 * own validation of its sizes after bench_parse(). */
__attribute__((noreturn, format(printf, 1, 2)))
void bench_usage_error(const char *fmt, ...);

/* Run b->driver as the first process of a runtime with b->schedulers
 * schedulers.  Returns the exit status for main(): 0, or 1 if a check
 * failed.  Exits 1 if up_run() fails. */
int bench_run(struct bench *b);

/* Print "RESULT bench=<name> impl=c schedulers=<nsched> " + the formatted
 * rest + "\n" on stdout. */
__attribute__((format(printf, 2, 3)))
void bench_result(const struct bench *b, const char *fmt, ...);

/* Record a failed check (the program exits 1); returns "WRONG" for check=.
 * bench_check(b, cond) returns "ok" if cond holds, else bench_fail(). */
const char *bench_fail(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define bench_check(b, cond) \
	((cond) ? "ok" : bench_fail((b), "check failed: %s", #cond))

/* Print "uproc-bench: <message>" on stderr, flush stdout, exit status 1. */
__attribute__((noreturn, format(printf, 1, 2)))
void die(const char *fmt, ...);

/* Failure of a uproc call that returned the negative errno rc. */
__attribute__((noreturn, cold))
void bench_api_fail(const char *call, long rc, const char *file, int line);

/* MUST(call): the value of call, or exit 1 with the call's text and
 * strerror(-rc) if it is negative (every uproc error is a negative errno). */
#define MUST(call) bench_must_((long)(call), #call, __FILE__, __LINE__)
static inline long bench_must_(long rc, const char *call, const char *file, int line)
{
	if (__builtin_expect(rc < 0, 0))
		bench_api_fail(call, rc, file, line);
	return rc;
}

/* Hot-path helpers: a checked send and an infinite checked receive. */
#define send_word(pid, word) ((void)MUST(up_send_word((pid), (word))))

static inline uint64_t recv_word(void)
{
	struct up_msg m;

	MUST(up_recv(&m, UP_INFINITY));
	return m.word;
}

/* Receive one word and exit 1 unless it is `want` (protocol messages). */
void expect_word(uint64_t want, const char *what);

/* Monotonic time in nanoseconds. */
static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* VmRSS of this OS process in bytes (from /proc/self/status). */
long vm_rss_bytes(void);

/* Median (upper median for an even count, as the peers), min and max. */
struct stats {
	double med, min, max;
};

/* One untimed warm-up call of run_once, then b->runs timed calls; each call
 * returns the metric of one run. */
struct stats measure(const struct bench *b, double (*run_once)(void *ctx), void *ctx);

#endif /* UPROC_BENCH_COMMON_H */
