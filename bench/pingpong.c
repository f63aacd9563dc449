/*
 * pingpong.c - 1,000,000 round trips between two processes (workload 4 of
 * ../shared/peers/README.md).
 *
 * As the Erlang peer, A and B are fresh processes in every run (A's mailbox
 * holds nothing else): the driver spawns A, then B (which is given A's pid),
 * and sends B's pid to A.  A: for i in 0..n-1, send i to B, wait for the
 * reply, check it is i; the loop is timed inside A.  B: receive v, send v
 * back, until STOP, to which it answers with the number of words it echoed.
 * A then reports its elapsed time to the driver.  Metric: ns_per_round_trip
 * = elapsed / n, median of -runs timed runs after one warm-up.  check=ok iff
 * every reply was right and B echoed exactly n words in every run.
 */
#include "common.h"

#include <stdatomic.h>

#define MSG_STOP UINT64_MAX  /* to B: answer with your count and return */

struct pingpong {
	uint64_t n;
	up_pid driver, a;
	atomic_uint_fast64_t errors;  /* wrong replies, summed over the runs */
};

static void process_b(void *arg)
{
	const struct pingpong *p = arg;
	const up_pid a = p->a;
	uint64_t v, echoed = 0;

	while ((v = recv_word()) != MSG_STOP) {
		send_word(a, v);
		echoed++;
	}
	send_word(a, echoed);
}

static void process_a(void *arg)
{
	struct pingpong *p = arg;
	const up_pid b = (up_pid)recv_word();  /* go: B's pid */
	const uint64_t n = p->n;
	uint64_t errors = 0;
	int64_t t0, elapsed;

	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		send_word(b, i);
		errors += recv_word() != i;
	}
	elapsed = now_ns() - t0;
	send_word(b, MSG_STOP);
	errors += recv_word() != n;            /* B's count */
	atomic_fetch_add(&p->errors, errors);
	send_word(p->driver, (uint64_t)elapsed);
}

/* One run with a fresh A and B: ns per round trip. */
static double run_once(void *arg)
{
	struct pingpong *p = arg;
	up_pid b;

	p->a = MUST(up_spawn(process_a, p));
	b = MUST(up_spawn(process_b, p));      /* reads p->a, fixed for this run */
	send_word(p->a, (uint64_t)b);
	return (double)recv_word() / p->n;
}

static void driver(struct bench *b)
{
	struct pingpong p = { .n = (uint64_t)b->n, .driver = b->self };
	struct stats s = measure(b, run_once, &p);
	uint64_t errors = atomic_load(&p.errors);

	bench_result(b, "round_trips=%ld runs=%ld check=%s min_ns=%.1f max_ns=%.1f ns_per_round_trip=%.1f unit=ns",
		     b->n, b->runs,
		     errors ? bench_fail(b, "%llu wrong replies or counts", (unsigned long long)errors) : "ok",
		     s.min, s.max, s.med);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "pingpong",
		.driver = driver,
		.n = 1000000,
		.n_help = "round trips per run",
		.runs = 5,
	};

	bench_parse(&b, argc, argv);
	return bench_run(&b);
}
