/*
 * signals.c - the cost of OTP process semantics: exit signals through
 * links, a supervisor's restart, and call/reply.  The Erlang peer is
 * erlang/signals.erl (same workloads, same RESULT lines with impl=erlang);
 * scripts/bench's `signals` workload runs both.
 *
 * exit_chain   A chain of n processes (default 100,000), each linked to the
 *              next: the driver spawns P0, each Pi spawns P(i+1) with
 *              UP_SPAWN_LINK and waits; the last one reports, the driver
 *              monitors it.  Timed: from up_exit(P0, chain_break) to the
 *              DOWN of the last process.  Metric: ms (median of -runs runs
 *              after a warm-up, a fresh chain each time).  check=ok iff the
 *              last process died of chain_break.
 *
 * sup_restart  A one_for_one supervisor with one permanent worker, which on
 *              start sends its pid to the driver and waits.  One sample:
 *              from up_exit(worker, crash) to the new worker's message at
 *              the driver.  RESTARTS samples per run; metric: the median of
 *              each run's median, µs.  check=ok iff every restart gave a new
 *              pid and up_supervisor_restarts counts them all.
 *
 * call         up_call round trips to an echo server: CALLS calls in a row
 *              from a fresh client per run, the server on the client's
 *              scheduler (placement=same) or on another one (other, with 2
 *              or more schedulers).  Metric: ns per call, median of runs.
 *              check=ok iff every reply was the request.
 *
 * Processes are pinned as in send_term.c: the driver is on scheduler 0,
 * the chain and the supervisor tree where they are spawned (scheduler 0),
 * the call client on 0 and the server on 0 or 1.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define RESTARTS 2000
#define CALLS 200000

static up_term atom_chain_break, atom_crash;

/* ----------------------------------------------------------- exit chain */

struct chain {
	long n;
	up_pid driver;
};

static void chain_link(void *arg);

/* Process i of the chain: arg encodes the remaining length. */
struct chain_arg {
	struct chain *c;
	long left;
};

static void chain_link(void *arg)
{
	struct chain_arg a = *(struct chain_arg *)arg;
	if (a.left > 1) {
		struct chain_arg next = { a.c, a.left - 1 };
		struct up_spawn_opts o = { .flags = UP_SPAWN_LINK };
		MUST(up_spawn_opt(chain_link, &next, &o));
		/* next is read by the child when it first runs, which is
		 * before we run again (we only block here). */
		struct up_msg m;
		MUST(up_recv(&m, UP_INFINITY));
		die("chain process got a message");
	}
	send_word(a.c->driver, (uint64_t)up_self());
	struct up_msg m;
	MUST(up_recv(&m, UP_INFINITY));
	die("chain process got a message");
}

static long chain_bad;

static double chain_once(void *arg)
{
	struct chain *c = arg;
	struct chain_arg a = { c, c->n };
	up_pid first = MUST(up_spawn(chain_link, &a));
	up_pid last = (up_pid)recv_word();
	up_term ref = up_monitor(last);
	if (up_is_bad(ref))
		die("up_monitor: %d", up_term_error(ref));

	int64_t t0 = now_ns();
	MUST(up_exit(first, atom_chain_break));
	struct up_msg m;
	MUST(up_recv(&m, UP_INFINITY));
	int64_t t1 = now_ns();

	up_term reason = 0, tag = 0;
	up_tuple_elem(m.term, 0, &tag);
	up_tuple_elem(m.term, 4, &reason);
	if (m.kind != UP_MSG_TERM || tag != up_atom("DOWN") || reason != atom_chain_break ||
	    up_alive(first) != 0)
		chain_bad++;
	up_msg_free(&m);
	return (t1 - t0) / 1e6;
}

static void bench_chain(struct bench *b)
{
	struct chain c = { .n = b->n, .driver = b->self };
	struct stats s = measure(b, chain_once, &c);
	b->name = "exit_chain";
	bench_result(b, "processes=%ld runs=%ld check=%s min_ms=%.2f max_ms=%.2f ms=%.2f unit=ms",
		     c.n, b->runs,
		     chain_bad ? bench_fail(b, "%ld runs: the last process did not die of chain_break", chain_bad) : "ok",
		     s.min, s.max, s.med);
}

/* ---------------------------------------------------------- sup restart */

struct restart {
	up_pid driver, sup, worker;
	long bad;
	long total;
	double *samples;
};

static void sup_worker(void *arg)
{
	struct restart *r = arg;
	send_word(r->driver, (uint64_t)up_self());
	struct up_msg m;
	MUST(up_recv(&m, UP_INFINITY));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double restart_once(void *arg)
{
	struct restart *r = arg;
	for (int i = 0; i < RESTARTS; i++) {
		int64_t t0 = now_ns();
		MUST(up_exit(r->worker, atom_crash));
		up_pid next = (up_pid)recv_word();
		r->samples[i] = (now_ns() - t0) / 1e3;
		if (next == r->worker || next <= 0)
			r->bad++;
		r->worker = next;
	}
	r->total += RESTARTS;
	qsort(r->samples, RESTARTS, sizeof *r->samples, cmp_double);
	return r->samples[RESTARTS / 2];
}

static void bench_restart(struct bench *b)
{
	struct restart r = { .driver = b->self };
	r.samples = malloc(RESTARTS * sizeof *r.samples);
	if (!r.samples)
		die("out of memory");
	struct up_child_spec child = { .id = up_atom("worker"), .start = sup_worker, .arg = &r,
				       .restart = UP_PERMANENT, .shutdown_ns = 1000000000 };
	/* Restarts never add up to the intensity (the ring holds those of the
	 * last second). */
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 100000000,
				    .period_ns = 1000000000, .nchildren = 1, .children = &child };
	r.sup = MUST(up_supervisor_start(&spec));
	r.worker = (up_pid)recv_word();
	struct stats s = measure(b, restart_once, &r);
	long counted = MUST(up_supervisor_restarts(r.sup, UP_INFINITY));
	MUST(up_supervisor_stop(r.sup, UP_INFINITY));
	b->name = "sup_restart";
	bench_result(b, "strategy=one_for_one restarts_per_run=%d runs=%ld check=%s min_us=%.2f max_us=%.2f us=%.2f unit=us",
		     RESTARTS, b->runs,
		     r.bad || counted != r.total
			     ? bench_fail(b, "%ld restarts without a new pid; %ld counted of %ld", r.bad, counted, r.total)
			     : "ok",
		     s.min, s.max, s.med);
	free(r.samples);
}

/* ------------------------------------------------------------------ call */

static void echo_server(void *arg)
{
	(void)arg;
	up_term gen_call = up_atom("$gen_call"), stop = up_atom("stop");
	for (;;) {
		struct up_msg m;
		MUST(up_recv(&m, UP_INFINITY));
		up_term tag, from, req;
		if (m.kind != UP_MSG_TERM || up_tuple_elem(m.term, 0, &tag) != 0 || tag != gen_call)
			die("echo server: unexpected message");
		up_tuple_elem(m.term, 1, &from);
		up_tuple_elem(m.term, 2, &req);
		MUST(up_reply(from, req));
		up_msg_free(&m);
		if (req == stop)
			return;
	}
}

struct call {
	up_pid driver, server;
	atomic_long bad;
};

static void call_client(void *arg)
{
	struct call *c = arg;
	long bad = 0;
	int64_t t0 = now_ns();
	for (long i = 0; i < CALLS; i++) {
		up_term reply;
		MUST(up_call(c->server, up_int(i), &reply, UP_INFINITY));
		bad += reply != up_int(i);
	}
	int64_t elapsed = now_ns() - t0;
	atomic_fetch_add(&c->bad, bad);
	send_word(c->driver, (uint64_t)elapsed);
}

static double call_once(void *arg)
{
	struct call *c = arg;
	struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER, .scheduler = 0 };
	MUST(up_spawn_opt(call_client, c, &o));
	return (double)recv_word() / CALLS;
}

static void bench_call(struct bench *b, int server_sched)
{
	struct call c = { .driver = b->self };
	struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER, .scheduler = server_sched };
	c.server = MUST(up_spawn_opt(echo_server, NULL, &o));
	struct stats s = measure(b, call_once, &c);
	up_term reply;
	MUST(up_call(c.server, up_atom("stop"), &reply, UP_INFINITY));
	long bad = atomic_load(&c.bad);
	b->name = "call";
	bench_result(b, "placement=%s calls=%d runs=%ld check=%s min_ns=%.1f max_ns=%.1f ns_per_call=%.1f unit=ns",
		     server_sched ? "other" : "same", CALLS, b->runs,
		     bad ? bench_fail(b, "%ld wrong replies", bad) : "ok", s.min, s.max, s.med);
}

/* ---------------------------------------------------------------- driver */

static void driver(struct bench *b)
{
	atom_chain_break = up_atom("chain_break");
	atom_crash = up_atom("crash");
	bench_chain(b);
	bench_restart(b);
	bench_call(b, 0);
	if (b->nsched > 1)
		bench_call(b, 1);
}

int main(int argc, char **argv)
{
	struct bench b = { .name = "signals", .n = 100000,
			   .n_help = "processes in the exit chain", .runs = 5,
			   .driver = driver };
	bench_parse(&b, argc, argv);
	return bench_run(&b);
}
