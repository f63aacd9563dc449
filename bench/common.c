/*
 * common.c - shared helpers of the benchmark programs (see common.h).
 * Nothing here is on a measured path except what common.h inlines.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "uproc-bench";
static struct bench defaults;  /* the program's sizes, for the usage text */

static void vwarn(const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	/* Called from inside the runtime: leave without atexit handlers or
	 * destructors, which would race with the scheduler threads. */
	_exit(1);
}

void bench_api_fail(const char *call, long rc, const char *file, int line)
{
	die("%s:%d: %s failed: %s (%ld)", file, line, call, strerror((int)-rc), rc);
}

const char *bench_fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	b->wrong = true;
	return "WRONG";
}

void expect_word(uint64_t want, const char *what)
{
	uint64_t got = recv_word();

	if (got != want)
		die("protocol error: expected %s (%#llx), received %#llx", what,
		    (unsigned long long)want, (unsigned long long)got);
}

/* ------------------------------------------------------------------ flags */

static void usage(FILE *f)
{
	const struct bench *b = &defaults;

	fprintf(f, "usage: %s [-schedulers=S]", prog);
	if (b->runs)
		fprintf(f, " [-runs=R]");
	if (b->n_help)
		fprintf(f, " [-n=N]");
	if (b->m_help)
		fprintf(f, " [-m=M]");
	if (b->compact_help)
		fprintf(f, " [-compact=0|1]");
	fprintf(f, "\n  -schedulers=S  scheduler threads (default: one per allowed CPU)\n");
	if (b->runs)
		fprintf(f, "  -runs=R        timed runs after one warm-up; median reported (default %ld)\n",
			b->runs);
	if (b->n_help)
		fprintf(f, "  -n=N           %s (default %ld)\n", b->n_help, b->n);
	if (b->m_help)
		fprintf(f, "  -m=M           %s (default %ld)\n", b->m_help, b->m);
	if (b->compact_help)
		fprintf(f, "  -compact=0|1   %s (default %ld)\n", b->compact_help, b->compact);
}

void bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

/* The value of flag -<flag> (len chars): a positive integer of at most max. */
static long parse_count(const char *flag, size_t len, const char *s, long min, long max)
{
	char *end;
	long v;

	if (!s)
		bench_usage_error("flag -%.*s needs a value", (int)len, flag);
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		bench_usage_error("bad value for -%.*s: '%s' (%ld..%ld)", (int)len, flag, s, min, max);
	return v;
}

void bench_parse(struct bench *b, int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');

	prog = slash ? slash + 1 : argv[0];
	defaults = *b;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		long *dst, min = 1, max = 1L << 40;
		size_t len;

		if (a[0] != '-' || a[1] == '\0')
			bench_usage_error("unexpected argument '%s'", a);
		a += a[1] == '-' ? 2 : 1;          /* -flag or --flag, as Go's flag */
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
#define IS(name) (len == strlen(name) && !strncmp(a, name, len))
		if (IS("h") || IS("help")) {
			usage(stdout);
			exit(0);
		} else if (IS("schedulers")) {
			dst = &b->schedulers;
			max = 4096;
		} else if (IS("runs") && b->runs) {
			dst = &b->runs;
			max = 1000;
		} else if (IS("n") && b->n_help) {
			dst = &b->n;
		} else if (IS("m") && b->m_help) {
			dst = &b->m;
		} else if (IS("compact") && b->compact_help) {
			dst = &b->compact;
			min = 0;
			max = 1;
		} else {
			bench_usage_error("unknown flag '-%.*s'", (int)len, a);
		}
#undef IS
		val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);  /* -f=V or -f V */
		*dst = parse_count(a, len, val, min, max);
	}
}

/* ------------------------------------------------------------------- run */

static void driver_main(void *arg)
{
	struct bench *b = arg;

	b->nsched = (int)MUST(up_schedulers());
	b->self = up_self();
	b->driver(b);
	fflush(stdout);
}

int bench_run(struct bench *b)
{
	struct up_run_opts opts = {
		.schedulers = (unsigned)b->schedulers,
		.max_processes = b->max_processes,
	};
	int rc = up_run(driver_main, b, &opts);

	if (rc < 0)
		die("up_run failed: %s (%d)", strerror(-rc), rc);
	fflush(stdout);
	return b->wrong ? 1 : 0;
}

void bench_result(const struct bench *b, const char *fmt, ...)
{
	va_list ap;

	printf("RESULT bench=%s impl=c schedulers=%d ", b->name, b->nsched);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ------------------------------------------------------------ measuring */

long vm_rss_bytes(void)
{
	char buf[4096];
	ssize_t len = 0, r;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	const char *p;

	if (fd < 0)
		die("open /proc/self/status: %s", strerror(errno));
	while (len < (ssize_t)sizeof(buf) - 1 &&
	       (r = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read /proc/self/status: %s", strerror(errno));
		}
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	p = strstr(buf, "\nVmRSS:");
	if (!p)
		die("no VmRSS in /proc/self/status");
	return strtol(p + strlen("\nVmRSS:"), NULL, 10) * 1024;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct stats measure(const struct bench *b, double (*run_once)(void *ctx), void *ctx)
{
	double *v = malloc(b->runs * sizeof(*v));
	struct stats s;

	if (!v)
		die("out of memory");
	run_once(ctx);                          /* warm-up, not recorded */
	for (long i = 0; i < b->runs; i++)
		v[i] = run_once(ctx);
	qsort(v, b->runs, sizeof(*v), cmp_double);
	s = (struct stats){ .med = v[b->runs / 2], .min = v[0], .max = v[b->runs - 1] };
	free(v);
	return s;
}
