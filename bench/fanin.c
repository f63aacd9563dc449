/*
 * fanin.c - 4 producers flood 1 consumer (workload 5 of
 * ../shared/peers/README.md).
 *
 * Inside the timed region the driver spawns the consumer, then 4 producers;
 * each producer sends the words 1,000,000 ... 1 to the consumer with
 * up_send_word() as fast as it can and returns.  The consumer receives and
 * counts 4,000,000 words, then sends their sum to the driver.  Metric:
 * msgs_per_s = 4,000,000 / (t_notified - t_start), median of -runs timed
 * runs after one warm-up.  check=ok iff every run's sum is 4 * n(n+1)/2.
 * The consumer's mailbox is uproc's ordinary one, unbounded MPSC (senders
 * never block), as Erlang's; Go's peer uses a channel of capacity 1024.
 */
#include "common.h"

#define PRODUCERS 4

struct fanin {
	uint64_t per;       /* messages per producer */
	up_pid driver;
	up_pid consumer;    /* of the current run */
	long bad_runs;      /* runs whose sum was wrong (driver only) */
};

static void consumer(void *arg)
{
	const struct fanin *f = arg;
	const uint64_t total = PRODUCERS * f->per;
	const up_pid driver = f->driver;
	uint64_t sum = 0;

	for (uint64_t k = 0; k < total; k++)
		sum += recv_word();
	send_word(driver, sum);
}

static void producer(void *arg)
{
	const struct fanin *f = arg;
	const up_pid to = f->consumer;

	for (uint64_t k = f->per; k > 0; k--)
		send_word(to, k);
}

/* One run: messages per second. */
static double run_once(void *arg)
{
	struct fanin *f = arg;
	const uint64_t per = f->per;
	int64_t t0 = now_ns();

	f->consumer = MUST(up_spawn(consumer, f));
	for (int i = 0; i < PRODUCERS; i++)
		MUST(up_spawn(producer, f));
	f->bad_runs += recv_word() != PRODUCERS * (per * (per + 1) / 2);
	return PRODUCERS * per / ((now_ns() - t0) / 1e9);
}

static void driver(struct bench *b)
{
	struct fanin f = { .per = (uint64_t)b->n, .driver = b->self };
	struct stats s = measure(b, run_once, &f);

	bench_result(b, "producers=%d msgs_per_producer=%ld mailbox=unbounded_mpsc runs=%ld check=%s "
		     "min_msgs_per_s=%.0f max_msgs_per_s=%.0f msgs_per_s=%.0f unit=msg/s",
		     PRODUCERS, b->n, b->runs,
		     f.bad_runs ? bench_fail(b, "%ld of %ld runs had a wrong sum", f.bad_runs, b->runs + 1) : "ok",
		     s.min, s.max, s.med);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "fanin",
		.driver = driver,
		.n = 1000000,
		.n_help = "messages per producer",
		.runs = 5,
	};

	bench_parse(&b, argc, argv);
	if (b.n > 1000000000)  /* keeps the sum within 64 bits */
		bench_usage_error("-n: at most 10^9 messages per producer");
	return bench_run(&b);
}
