/*
 * skynet.c - 1,111,111 processes in a 10-ary tree (workload 2 of
 * ../shared/peers/README.md).
 *
 * skynet(parent, num, size): a leaf (size 1) sends num to its parent and
 * returns; an inner process spawns 10 children skynet(self, num + i*size/10,
 * size/10), receives their 10 words in any order, sends the sum to its parent
 * and returns.  The driver spawns the root (num 0, size 1,000,000) and waits
 * for its word: 6 levels below the root, 1,000,000 leaves, all 1,111,111
 * processes created inside the measured time.  Metric: ms from just before
 * the root's spawn until the driver has the sum, median of -runs timed runs
 * after one warm-up.  check=ok iff every run's sum is 499999500000.
 *
 * A child's argument lives in its parent's stack frame, which stays until
 * the parent has all 10 results; the child copies it before sending anything.
 */
#include "common.h"

#define FANOUT 10

struct node {
	up_pid parent;
	uint64_t num, size;
};

struct skynet_ctx {
	const struct bench *b;
	uint64_t sum;      /* of the last run */
	long bad_runs;     /* runs whose sum was wrong */
};

static void skynet(void *arg)
{
	const struct node me = *(const struct node *)arg;
	struct node kids[FANOUT];
	uint64_t sum = 0;

	if (me.size == 1) {
		send_word(me.parent, me.num);
		return;
	}
	for (int i = 0; i < FANOUT; i++) {
		kids[i] = (struct node){ .parent = up_self(),
					 .num = me.num + i * (me.size / FANOUT),
					 .size = me.size / FANOUT };
		MUST(up_spawn(skynet, &kids[i]));
	}
	for (int i = 0; i < FANOUT; i++)
		sum += recv_word();
	send_word(me.parent, sum);
}

/* One run: ms until the driver has the root's sum. */
static double run_once(void *arg)
{
	struct skynet_ctx *c = arg;
	const uint64_t leaves = (uint64_t)c->b->n;
	struct node root = { .parent = c->b->self, .num = 0, .size = leaves };
	int64_t t0 = now_ns();

	MUST(up_spawn(skynet, &root));
	c->sum = recv_word();
	c->bad_runs += c->sum != leaves * (leaves - 1) / 2;
	return (now_ns() - t0) / 1e6;
}

static void driver(struct bench *b)
{
	struct skynet_ctx c = { .b = b };
	struct stats s = measure(b, run_once, &c);

	bench_result(b, "leaves=%ld sum=%llu check=%s runs=%ld min_ms=%.1f max_ms=%.1f ms=%.1f unit=ms",
		     b->n, (unsigned long long)c.sum,
		     c.bad_runs ? bench_fail(b, "%ld of %ld runs had a wrong sum", c.bad_runs, b->runs + 1) : "ok",
		     b->runs, s.min, s.max, s.med);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "skynet",
		.driver = driver,
		.n = 1000000,
		.n_help = "leaves (a power of 10)",
		.runs = 5,
	};
	long l;

	bench_parse(&b, argc, argv);
	for (l = b.n; l % FANOUT == 0; l /= FANOUT)
		;
	if (l != 1 || b.n > 1000000000)
		bench_usage_error("-n: leaves must be a power of 10, at most 10^9");
	return bench_run(&b);
}
