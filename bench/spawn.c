/*
 * spawn.c - 1,000,000 idle processes (workload 1 of ../shared/peers/README.md).
 *
 * One cold measurement in a fresh OS process.  The driver reads VmRSS, then
 * (t0) spawns N processes and keeps their pids in a malloc'd array; each
 * child increments the shared counter `ready`, the one that brings it to N
 * sends all_ready to the driver, and every child then blocks in
 * up_recv(UP_INFINITY).  all_ready received = t1:
 *   ns_per_spawn       = (t1 - t0) / N  (every process exists and has run up
 *                        to its blocking receive)
 *   rss_bytes_per_proc = (VmRSS now - baseline) / N, the pid array included
 * Teardown: t2, one word to each child in spawn order; each increments
 * `exited` and returns, the last one tells the driver = t3:
 *   teardown_ms        = t3 - t2, then VmRSS at once (rss_after_teardown_mb).
 * The lines are the Go peer's, without its MemStats lines; instead of Go's
 * RSS after a forced GC, rss_after_run_mb is VmRSS after up_run() returned.
 *
 * -compact=1 spawns the children with UP_SPAWN_COMPACT (no stack of their
 * own: their frames are copied out of the scheduler's shared stack when they
 * block); the lines then carry stack=compact.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

enum { MSG_ALL_READY = 1, MSG_ALL_EXITED = 2, MSG_GO = 3 };

struct spawn_ctx {
	atomic_long ready;   /* children that have run up to their receive */
	atomic_long exited;  /* children that got their word and are returning */
	long n;
	up_pid driver;
};

static char params[128];  /* "procs=N check=ok", once the driver is done */

static void child(void *arg)
{
	struct spawn_ctx *c = arg;

	/* The counters only count: the notification itself is the message. */
	if (atomic_fetch_add(&c->ready, 1) + 1 == c->n)
		send_word(c->driver, MSG_ALL_READY);
	expect_word(MSG_GO, "go");
	if (atomic_fetch_add(&c->exited, 1) + 1 == c->n)
		send_word(c->driver, MSG_ALL_EXITED);
}

static void driver(struct bench *b)
{
	const long n = b->n;
	struct spawn_ctx c = { .n = n, .driver = b->self };  /* outlives every child */
	const long rss0 = vm_rss_bytes();
	up_pid *pids = malloc(n * sizeof(*pids));            /* touched below: in the RSS */
	int64_t t0, t1, t2, t3;
	long rss1, rss2;

	if (!pids)
		die("out of memory for %ld pids", n);

	struct up_spawn_opts o = { .flags = b->compact ? UP_SPAWN_COMPACT : 0 };
	t0 = now_ns();
	for (long i = 0; i < n; i++)
		pids[i] = MUST(up_spawn_opt(child, &c, &o));
	expect_word(MSG_ALL_READY, "all_ready");
	t1 = now_ns();
	rss1 = vm_rss_bytes();

	t2 = now_ns();
	for (long i = 0; i < n; i++)
		send_word(pids[i], MSG_GO);
	expect_word(MSG_ALL_EXITED, "all_exited");
	t3 = now_ns();
	rss2 = vm_rss_bytes();
	free(pids);

	snprintf(params, sizeof(params), "procs=%ld%s check=%s", n, b->compact ? " stack=compact" : "",
		 bench_check(b, atomic_load(&c.ready) == n && atomic_load(&c.exited) == n));
	bench_result(b, "%s phase=spawn_until_all_blocked ns_per_spawn=%.1f unit=ns",
		     params, (double)(t1 - t0) / n);
	bench_result(b, "%s source=VmRSS rss_bytes_per_proc=%.0f unit=bytes",
		     params, (double)(rss1 - rss0) / n);
	bench_result(b, "%s phase=teardown teardown_ms=%.1f unit=ms",
		     params, (t3 - t2) / 1e6);
	bench_result(b, "%s phase=after_teardown rss_baseline_mb=%.1f rss_peak_mb=%.1f "
		     "rss_after_teardown_mb=%.1f unit=MiB",
		     params, rss0 / 1048576.0, rss1 / 1048576.0, rss2 / 1048576.0);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "spawn",
		.driver = driver,
		.n = 1000000,
		.n_help = "processes",
		.compact_help = "children with UP_SPAWN_COMPACT (a shared stack)",
	};
	int status;

	bench_parse(&b, argc, argv);
	if (b.n > 100000000)  /* 2n + 16 stays under the pid format's 2^28 */
		bench_usage_error("-n: at most 100000000 processes");
	b.max_processes = 2 * (uint64_t)b.n + 16;
	status = bench_run(&b);
	if (params[0])
		bench_result(&b, "%s phase=after_up_run rss_after_run_mb=%.1f unit=MiB",
			     params, vm_rss_bytes() / 1048576.0);
	return status;
}
