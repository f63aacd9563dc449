/*
 * table.c - shared tables (up_table_*): lookups, inserts and counter
 * updates per second with one worker process per scheduler.  The Erlang
 * peer is erlang/table.erl (ETS, the same workloads and RESULT lines with
 * impl=erlang); scripts/bench's `table` workload runs both.
 *
 * A public table holds -m keys (default 100,000): key I (an integer) ->
 * {I, <<16 bytes>>, I * 2}.  Each of the W workers (W = schedulers, worker
 * i pinned to scheduler i) draws keys from its own LCG
 * (x = (x * 1103515245 + 12345) mod 2^31, key = x mod keys, seed = its
 * index + 1; the same generator as the Erlang peer) and does n / W
 * operations:
 *
 *  table_lookup    lookup of a random key; the value (copied into the
 *                  worker's heap, freed every 1,000 lookups with a heap
 *                  reset, as a GC would) is checked: its first element is
 *                  the key.
 *  table_insert    insert of a random existing key with a fresh value
 *                  {I, <<16 bytes>>, I * 2}: replaces (and retires) the old.
 *  table_counter   update_counter(+1) of one of 1,024 counter keys.
 *
 * Metric: operations per second of all workers together, from the start
 * message to the last worker's report (median of -runs runs after a
 * warm-up).  check=ok iff every looked-up value matched its key, the table
 * still holds exactly its keys after the inserts, and the counters sum to
 * the number of updates.
 */
#include "common.h"

#include <stdatomic.h>
#include <string.h>

#define COUNTERS 1024
#define RESET_EVERY 256

enum kind { LOOKUP, INSERT, COUNTER };
static const char *const names[] = { "table_lookup", "table_insert", "table_counter" };

static const uint8_t pad16[16] = "0123456789abcdef";

struct ctx {
	struct bench *b;
	enum kind kind;
	up_table t;
	long keys, ops_per_worker;
	int workers;
	up_pid driver;
	atomic_long bad;
};

struct worker {
	struct ctx *c;
	int index;
};

static up_term value_of(int64_t i)
{
	return up_tuplev(3, up_int(i), up_binary(pad16, sizeof pad16), up_int(i * 2));
}

static void worker(void *arg)
{
	struct worker *w = arg;
	struct ctx *c = w->c;
	uint32_t x = (uint32_t)w->index + 1;
	long bad = 0;

	expect_word(1, "the start");
	long mark = MUST(up_heap_mark());
	for (long i = 0; i < c->ops_per_worker; i++) {
		x = (x * 1103515245u + 12345u) & 0x7fffffffu;
		switch (c->kind) {
		case LOOKUP: {
			int64_t k = (int64_t)(x % (uint32_t)c->keys), got = -1;
			up_term v, e;
			MUST(up_table_lookup(c->t, up_int(k), &v));
			if (up_tuple_elem(v, 0, &e) != 0 || up_get_int(e, &got) != 0 || got != k)
				bad++;
			break;
		}
		case INSERT: {
			int64_t k = (int64_t)(x % (uint32_t)c->keys);
			MUST(up_table_insert(c->t, up_int(k), value_of(k)));
			break;
		}
		case COUNTER:
			MUST(up_table_update_counter(c->t, up_int(x % COUNTERS), 1, NULL, NULL));
			break;
		}
		if (i % RESET_EVERY == RESET_EVERY - 1) {
			MUST(up_heap_reset(mark));
			mark = MUST(up_heap_mark());
		}
	}
	atomic_fetch_add(&c->bad, bad);
	send_word(c->driver, 2);
}

static double run_once(void *arg)
{
	struct ctx *c = arg;
	struct worker w[64];
	up_pid pids[64];

	for (int i = 0; i < c->workers; i++) {
		struct up_spawn_opts o;
		memset(&o, 0, sizeof o);
		o.flags = UP_SPAWN_SCHEDULER;
		o.scheduler = i;
		w[i] = (struct worker){ c, i };
		pids[i] = MUST(up_spawn_opt(worker, &w[i], &o));
	}
	/* Let them all reach their receive before the clock starts. */
	for (int k = 0; k < 100; k++)
		up_yield();
	int64_t t0 = now_ns();
	for (int i = 0; i < c->workers; i++)
		send_word(pids[i], 1);
	for (int i = 0; i < c->workers; i++)
		expect_word(2, "a worker's report");
	int64_t el = now_ns() - t0;
	return (double)c->ops_per_worker * c->workers * 1e9 / (double)el;
}

static void one(struct bench *b, enum kind kind, long n, long keys)
{
	struct ctx c = { .b = b, .kind = kind, .keys = keys, .driver = b->self };
	c.workers = b->nsched < 64 ? b->nsched : 64;
	c.ops_per_worker = n / c.workers;
	c.t = MUST(up_table_new(UP_NIL, UP_TABLE_PUBLIC));
	long mark = MUST(up_heap_mark());
	for (long k = 0; k < (kind == COUNTER ? COUNTERS : keys); k++) {
		MUST(up_table_insert(c.t, up_int(k), kind == COUNTER ? up_int(0) : value_of(k)));
		if (k % RESET_EVERY == 0) {
			MUST(up_heap_reset(mark));
			mark = MUST(up_heap_mark());
		}
	}
	struct stats s = measure(b, run_once, &c);
	const char *check = "ok";
	if (atomic_load(&c.bad))
		check = bench_fail(b, "%ld lookups returned another key's value", atomic_load(&c.bad));
	if (kind != COUNTER && up_table_size(c.t) != keys)
		check = bench_fail(b, "%ld keys after the run, want %ld", up_table_size(c.t), keys);
	if (kind == COUNTER) {
		int64_t sum = 0, v;
		for (int k = 0; k < COUNTERS; k++) {
			MUST(up_table_update_counter(c.t, up_int(k), 0, NULL, &v));
			sum += v;
		}
		/* one warm-up and b->runs timed runs */
		if (sum != c.ops_per_worker * c.workers * (b->runs + 1))
			check = bench_fail(b, "counters sum to %lld, want %lld", (long long)sum,
					   (long long)(c.ops_per_worker * c.workers * (b->runs + 1)));
	}
	bench_result(b, "keys=%ld workers=%d ops=%ld runs=%ld check=%s min_ops_per_s=%.0f "
		     "max_ops_per_s=%.0f ops_per_s=%.0f unit=ops/s",
		     kind == COUNTER ? COUNTERS : keys, c.workers, c.ops_per_worker * c.workers, b->runs,
		     check, s.min, s.max, s.med);
	MUST(up_table_destroy(c.t));
	MUST(up_heap_reset(mark));
}

static void driver(struct bench *b)
{
	const char *saved = b->name;
	for (int k = LOOKUP; k <= COUNTER; k++) {
		b->name = names[k];
		one(b, (enum kind)k, k == LOOKUP ? b->n : b->n / 2, b->m);
	}
	b->name = saved;
}

int main(int argc, char **argv)
{
	struct bench b = { .name = "table", .n = 4000000, .n_help = "lookups per run (inserts and updates: half)",
			   .m = 100000, .m_help = "keys in the table", .runs = 5, .driver = driver };
	bench_parse(&b, argc, argv);
	if (b.n < 1000 || b.m < 1 || b.m > 0x7fffffff)
		bench_usage_error("-n must be at least 1000 and -m in 1..2^31-1");
	return bench_run(&b);
}
