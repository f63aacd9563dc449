/*
 * send_term.c - term messages: what a send + receive of a real tuple costs,
 * a {Ref, I} pingpong, and call/reply behind a full mailbox.  The Erlang
 * peer is bench/erlang/sendterm.erl (same workloads, same RESULT lines with
 * impl=erlang); scripts/bench's `term` workload runs both.
 *
 * Placement: every workload runs with both processes on scheduler 0
 * (bench name ..._same) and, with 2 or more schedulers, with the second on
 * scheduler 1 (..._cross).  A and B are fresh processes in every run.
 *
 *  term_stream_<p>     A sends -n tuples {<<100 bytes>>, 1, ..., 9} to B,
 *                      which receives, checks (the binary's bytes and the
 *                      nine integers) and frees each; B acks every 1,000 and
 *                      A stays at most 4 acks ahead (a bounded queue).
 *                      ns_per_msg = elapsed (A's first send to the last
 *                      ack) / n.
 *  term_pingpong_<p>   the same tuple back and forth (B checks and sends
 *                      back what it received; A checks and frees), n/5
 *                      round trips: ns_per_round_trip.
 *  term_refpingpong_<p> A sends a fresh {Ref, I} (one Ref per run), B echoes
 *                      the message, A checks Ref and I; -n round trips:
 *                      ns_per_round_trip.
 *  term_call_mark_<p>  a client with 10,000 unrelated messages queued (words
 *                      and {OtherRef, J} tuples) makes -m calls to an echo
 *                      server: make a ref, mark, send {Self, Ref, I},
 *                      up_recv_match the {Ref, I} reply with
 *                      UP_RECV_AFTER_MARK: ns_per_call.
 *  term_call_empty_<p> the same with nothing else queued.
 *  term_call_scan_<p>  10,000 queued, no mark: every call scans the queue
 *                      from its start (-m/10 calls).
 *
 * check=ok iff every check of every run held and the unrelated messages
 * were all still queued, in order, after the calls.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define BIN 100
#define BATCH 1000     /* stream: B acks every BATCH messages */
#define WINDOW 4       /* stream: A at most WINDOW acks ahead */
#define JUNK 10000     /* call: unrelated messages queued */
#define STOP UINT64_MAX

static uint8_t pattern[BIN];

struct ctx {
	struct bench *b;
	int sched_b;           /* B's (the server's) scheduler; A on 0 */
	long n;                /* messages, round trips or calls per run */
	long queued;           /* call: unrelated messages */
	unsigned flags;        /* call: up_recv_match flags */
	up_pid a, bpid;
	atomic_long bad;       /* failed checks, all runs */
};

static up_pid spawn_at(up_fn fn, void *arg, int sched)
{
	struct up_spawn_opts o;

	memset(&o, 0, sizeof o);
	o.flags = UP_SPAWN_SCHEDULER;
	o.scheduler = sched;
	return MUST(up_spawn_opt(fn, arg, &o));
}

/* {<<pattern>>, 1, 2, ..., 9} */
static up_term make_tuple10(void)
{
	up_term t = up_tuplev(10, up_binary(pattern, BIN), up_int(1), up_int(2), up_int(3),
			      up_int(4), up_int(5), up_int(6), up_int(7), up_int(8), up_int(9));

	if (up_is_bad(t))
		die("building the message: %d", up_term_error(t));
	return t;
}

static int check_tuple10(const struct up_msg *m)
{
	up_term e;
	const void *d;
	size_t len;
	int64_t v;

	if (m->kind != UP_MSG_TERM || up_tuple_arity(m->term) != 10 ||
	    up_tuple_elem(m->term, 0, &e) || up_get_binary(e, &d, &len) || len != BIN ||
	    memcmp(d, pattern, BIN) != 0)
		return 0;
	for (size_t k = 1; k < 10; k++)
		if (up_tuple_elem(m->term, k, &e) || up_get_int(e, &v) || v != (int64_t)k)
			return 0;
	return 1;
}

static void recv_msg(struct up_msg *m)
{
	MUST(up_recv(m, UP_INFINITY));
}

/* Spawn A on 0 and B on c->sched_b (B first: it must exist when A starts),
 * tell A B's pid, and return what A reports (elapsed ns). */
static double run_pair(struct ctx *c, up_fn fa, up_fn fb)
{
	c->a = spawn_at(fa, c, 0);
	c->bpid = spawn_at(fb, c, c->sched_b);
	send_word(c->a, (uint64_t)c->bpid);
	return (double)recv_word() / c->n;
}

/* ------------------------------------------------------------- stream */

static void stream_b(void *arg)
{
	struct ctx *c = arg;
	const up_pid a = c->a;
	long bad = 0;
	struct up_msg m;

	for (long i = 1; i <= c->n; i++) {
		recv_msg(&m);
		bad += !check_tuple10(&m);
		up_msg_free(&m);
		if (i % BATCH == 0)
			send_word(a, (uint64_t)i);
	}
	atomic_fetch_add(&c->bad, bad);
}

static void stream_a(void *arg)
{
	struct ctx *c = arg;
	const up_pid b = (up_pid)recv_word();
	const long batches = c->n / BATCH;
	up_term t = make_tuple10();
	long acked = 0;
	int64_t t0 = now_ns();

	for (long k = 1; k <= batches; k++) {
		for (long i = 0; i < BATCH; i++)
			MUST(up_send(b, t));
		if (k >= WINDOW)
			expect_word((uint64_t)(++acked * BATCH), "an ack");
	}
	while (acked < batches)
		expect_word((uint64_t)(++acked * BATCH), "an ack");
	send_word(c->b->self, (uint64_t)(now_ns() - t0));
}

static double stream_once(void *arg) { return run_pair(arg, stream_a, stream_b); }

/* ---------------------------------------------------------- pingpongs */

/* B: echo every term back to A until a word; check the 10-tuple if asked. */
static void echo_b(void *arg, int check)
{
	struct ctx *c = arg;
	const up_pid a = c->a;
	long bad = 0;
	struct up_msg m;

	for (;;) {
		recv_msg(&m);
		if (m.kind == UP_MSG_WORD)
			break;
		if (check)
			bad += !check_tuple10(&m);
		MUST(up_send(a, m.term));
		up_msg_free(&m);
	}
	atomic_fetch_add(&c->bad, bad);
}

static void echo_check_b(void *arg) { echo_b(arg, 1); }
static void echo_plain_b(void *arg) { echo_b(arg, 0); }

static void pingpong_a(void *arg)
{
	struct ctx *c = arg;
	const up_pid b = (up_pid)recv_word();
	up_term t = make_tuple10();
	long bad = 0;
	struct up_msg m;
	int64_t t0 = now_ns(), elapsed;

	for (long i = 0; i < c->n; i++) {
		MUST(up_send(b, t));
		recv_msg(&m);
		bad += !check_tuple10(&m);
		up_msg_free(&m);
	}
	elapsed = now_ns() - t0;
	send_word(b, STOP);
	atomic_fetch_add(&c->bad, bad);
	send_word(c->b->self, (uint64_t)elapsed);
}

static double pingpong_once(void *arg) { return run_pair(arg, pingpong_a, echo_check_b); }

static void refpingpong_a(void *arg)
{
	struct ctx *c = arg;
	const up_pid b = (up_pid)recv_word();
	const up_term ref = up_make_ref();   /* before the mark: survives resets */
	long mark = MUST(up_heap_mark()), bad = 0;
	struct up_msg m;
	up_term e;
	int64_t v, t0 = now_ns(), elapsed;

	for (long i = 0; i < c->n; i++) {
		if ((i & 1023) == 1023) {  /* drop the tuples sent so far */
			MUST(up_heap_reset(mark));
			mark = MUST(up_heap_mark());
		}
		MUST(up_send(b, up_tuplev(2, ref, up_int(i))));
		recv_msg(&m);
		bad += m.kind != UP_MSG_TERM || up_tuple_arity(m.term) != 2 ||
		       up_tuple_elem(m.term, 0, &e) || !up_equal(e, ref) ||
		       up_tuple_elem(m.term, 1, &e) || up_get_int(e, &v) || v != i;
		up_msg_free(&m);
	}
	elapsed = now_ns() - t0;
	send_word(b, STOP);
	atomic_fetch_add(&c->bad, bad);
	send_word(c->b->self, (uint64_t)elapsed);
}

static double refpingpong_once(void *arg) { return run_pair(arg, refpingpong_a, echo_plain_b); }

/* --------------------------------------------------------- call/reply */

/* The server: {From, Ref, I} -> From ! {Ref, I}, until a word. */
static void server_b(void *arg)
{
	struct ctx *c = arg;
	long bad = 0;
	struct up_msg m;
	up_term from, ref, i;
	up_pid to;
	long mark = MUST(up_heap_mark());

	for (;;) {
		recv_msg(&m);
		if (m.kind == UP_MSG_WORD)
			break;
		if (up_tuple_arity(m.term) != 3 || up_tuple_elem(m.term, 0, &from) ||
		    up_tuple_elem(m.term, 1, &ref) || up_tuple_elem(m.term, 2, &i) ||
		    up_get_pid(from, &to)) {
			bad++;
		} else {
			MUST(up_send(to, up_tuplev(2, ref, i)));
			MUST(up_heap_reset(mark));
			mark = MUST(up_heap_mark());
		}
		up_msg_free(&m);
	}
	atomic_fetch_add(&c->bad, bad);
}

struct want {
	up_term ref;
};

static int match_reply(const struct up_msg *m, void *arg)
{
	const struct want *w = arg;
	up_term r;

	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 2 &&
	       up_tuple_elem(m->term, 0, &r) == 0 && up_equal(r, w->ref);
}

static void client_a(void *arg)
{
	struct ctx *c = arg;
	const up_pid b = (up_pid)recv_word(), self = up_self();
	const up_term me = up_pid_term(self), other = up_make_ref();
	long bad = 0;
	struct up_msg m;
	struct want w;
	up_term e;
	int64_t v, t0, elapsed;

	/* the unrelated messages (not timed) */
	for (long j = 0; j < c->queued; j++) {
		if (j % 2)
			send_word(self, (uint64_t)j);
		else
			MUST(up_send(self, up_tuplev(2, other, up_int(j))));
	}
	long mark = MUST(up_heap_mark());
	t0 = now_ns();
	for (long i = 0; i < c->n; i++) {
		w.ref = up_make_ref();
		if (c->flags & UP_RECV_AFTER_MARK)
			MUST(up_recv_mark());
		MUST(up_send(b, up_tuplev(3, me, w.ref, up_int(i))));
		MUST(up_recv_match(match_reply, &w, &m, UP_INFINITY, c->flags));
		bad += up_tuple_elem(m.term, 1, &e) || up_get_int(e, &v) || v != i;
		up_msg_free(&m);
		MUST(up_heap_reset(mark));
		mark = MUST(up_heap_mark());
	}
	elapsed = now_ns() - t0;
	send_word(b, STOP);
	/* the unrelated messages are all there, in order */
	bad += up_mailbox_len(0) != c->queued;
	for (long j = 0; j < c->queued; j++) {
		if (up_recv(&m, 0) != 0) {
			bad++;
			break;
		}
		bad += j % 2 ? m.kind != UP_MSG_WORD || m.word != (uint64_t)j
			     : m.kind != UP_MSG_TERM || up_tuple_elem(m.term, 1, &e) ||
				       up_get_int(e, &v) || v != j;
		up_msg_free(&m);
	}
	atomic_fetch_add(&c->bad, bad);
	send_word(c->b->self, (uint64_t)elapsed);
}

static double call_once(void *arg) { return run_pair(arg, client_a, server_b); }

/* ------------------------------------------------------------- driver */

static void report(struct bench *b, struct ctx *c, const char *name, const char *place,
		   const char *count, double (*once)(void *), const char *metric)
{
	struct stats s;
	long bad;

	atomic_store(&c->bad, 0);
	s = measure(b, once, c);
	bad = atomic_load(&c->bad);
	printf("RESULT bench=%s_%s impl=c schedulers=%d %s=%ld", name, place, b->nsched, count, c->n);
	if (c->queued || !strcmp(name, "term_call_empty"))
		printf(" queued=%ld", c->queued);
	printf(" runs=%ld check=%s min_ns=%.1f max_ns=%.1f %s=%.1f unit=ns\n", b->runs,
	       bad ? bench_fail(b, "%s_%s: %ld failed checks", name, place, bad) : "ok",
	       s.min, s.max, metric, s.med);
	fflush(stdout);
}

static void driver(struct bench *b)
{
	for (int i = 0; i < BIN; i++)
		pattern[i] = (uint8_t)(i * 3 + 1);
	for (int cross = 0; cross <= (b->nsched > 1); cross++) {
		const char *place = cross ? "cross" : "same";
		struct ctx c = { .b = b, .sched_b = cross };

		c.n = b->n;
		report(b, &c, "term_stream", place, "messages", stream_once, "ns_per_msg");
		c.n = b->n / 5;
		report(b, &c, "term_pingpong", place, "round_trips", pingpong_once,
		       "ns_per_round_trip");
		c.n = b->n;
		report(b, &c, "term_refpingpong", place, "round_trips", refpingpong_once,
		       "ns_per_round_trip");
		c.n = b->m;
		c.queued = JUNK;
		c.flags = UP_RECV_AFTER_MARK;
		report(b, &c, "term_call_mark", place, "calls", call_once, "ns_per_call");
		c.queued = 0;
		report(b, &c, "term_call_empty", place, "calls", call_once, "ns_per_call");
		c.n = b->m / 10 > 0 ? b->m / 10 : 1;
		c.queued = JUNK;
		c.flags = 0;
		report(b, &c, "term_call_scan", place, "calls", call_once, "ns_per_call");
	}
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "term",
		.driver = driver,
		.n = 1000000,
		.n_help = "stream messages and {Ref, I} round trips per run (the 10-tuple pingpong: n/5)",
		.m = 10000,
		.m_help = "calls per run (the scanning variant: m/10)",
		.runs = 5,
	};

	bench_parse(&b, argc, argv);
	if (b.n % BATCH || b.n < 5 * BATCH)
		bench_usage_error("-n must be a multiple of %d, at least %d", BATCH, 5 * BATCH);
	return bench_run(&b);
}
