/*
 * ring.c - a ring of 10,000 processes, 10,000,000 hops (workload 3 of
 * ../shared/peers/README.md).
 *
 * Setup (not timed): the driver spawns N processes and sends each the pid of
 * its successor (i+1) mod N as its first message, as the Erlang peer does.
 * A run: the driver sends H = N*M (M laps) to process 0; a process receiving
 * v > 0 sends v-1 to its successor, the one receiving 0 tells the driver:
 * exactly H process-to-process sends.  Metric: ns_per_hop = elapsed / H,
 * median of -runs timed runs after one warm-up, all on the same ring.
 * Afterwards every process gets STOP, adds the number of words it forwarded
 * to a shared total and returns; the last one tells the driver.  check=ok iff
 * the total is (runs + 1) * H, i.e. every hop of every run happened once.
 */
#include "common.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MSG_STOP UINT64_MAX              /* to a ring process: return */
enum { MSG_DONE = 1, MSG_STOPPED = 2 };  /* to the driver */

struct ring {
	long n;
	uint64_t hops;
	up_pid driver;
	up_pid *pids;
	atomic_uint_fast64_t forwarded;  /* words forwarded, summed at STOP */
	atomic_long stopped;             /* processes that got STOP */
};

static void ring_process(void *arg)
{
	struct ring *r = arg;
	const up_pid next = (up_pid)recv_word();  /* setup message */
	uint64_t v, forwarded = 0;

	while ((v = recv_word()) != MSG_STOP) {
		if (v == 0) {
			send_word(r->driver, MSG_DONE);
		} else {
			send_word(next, v - 1);
			forwarded++;
		}
	}
	atomic_fetch_add(&r->forwarded, forwarded);
	if (atomic_fetch_add(&r->stopped, 1) + 1 == r->n)
		send_word(r->driver, MSG_STOPPED);
}

/* One run: ns per hop. */
static double run_once(void *arg)
{
	struct ring *r = arg;
	int64_t t0 = now_ns();

	send_word(r->pids[0], r->hops);
	expect_word(MSG_DONE, "ring_done");
	return (double)(now_ns() - t0) / r->hops;
}

static void driver(struct bench *b)
{
	struct ring r = { .n = b->n, .hops = (uint64_t)b->n * b->m, .driver = b->self };
	struct stats s;
	uint64_t want;

	r.pids = malloc(r.n * sizeof(*r.pids));
	if (!r.pids)
		die("out of memory for %ld pids", r.n);
	for (long i = 0; i < r.n; i++)
		r.pids[i] = MUST(up_spawn(ring_process, &r));
	for (long i = 0; i < r.n; i++)
		send_word(r.pids[i], (uint64_t)r.pids[(i + 1) % r.n]);

	s = measure(b, run_once, &r);

	for (long i = 0; i < r.n; i++)
		send_word(r.pids[i], MSG_STOP);
	expect_word(MSG_STOPPED, "ring_stopped");
	free(r.pids);

	want = (uint64_t)(b->runs + 1) * r.hops;
	bench_result(b, "procs=%ld laps=%ld hops=%llu runs=%ld check=%s min_ns=%.1f max_ns=%.1f ns_per_hop=%.1f unit=ns",
		     r.n, b->m, (unsigned long long)r.hops, b->runs,
		     atomic_load(&r.forwarded) == want ? "ok"
		     : bench_fail(b, "%llu hops forwarded, expected %llu",
				  (unsigned long long)atomic_load(&r.forwarded), (unsigned long long)want),
		     s.min, s.max, s.med);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "ring",
		.driver = driver,
		.n = 10000,
		.n_help = "processes in the ring",
		.m = 1000,
		.m_help = "laps (hops = n * m)",
		.runs = 5,
	};

	bench_parse(&b, argc, argv);
	if (b.n > 100000000)
		bench_usage_error("-n: at most 100000000 processes");
	if (b.m > LONG_MAX / b.n / 1001)  /* (runs + 1) * hops fits */
		bench_usage_error("-n * -m too large");
	return bench_run(&b);
}
