/*
 * dist.c - distribution: messages per second and round-trip latency
 * between this uproc node and an Erlang node on loopback.  The Erlang
 * node runs bench/erlang/distbench.erl's server; the same module's client
 * measures the same workloads from a second Erlang node (impl=erlang), so
 * scripts/bench's `dist` workload prints both against the same server.
 *
 * Environment: DIST_PEER (the server node, "alive@host"; required),
 * DIST_COOKIE (default "uproc_bench"), ERL_EPMD_PORT (epmd's port, as
 * erl).  This node is "uprocbench<pid>@<the peer's host>", listening on
 * 127.0.0.1.
 *
 *  stream     -n messages {msg, I} to a fresh sink on the Erlang node;
 *             the sink checks the order and acks every 1,000; at most 8
 *             acks outstanding.  msgs_per_s = n / (first send .. last
 *             ack).
 *  roundtrip  -m round trips {Self, I} -> {pong, I} with a fresh echo
 *             process there: ns_per_round_trip = elapsed / m.
 *
 * One untimed warm-up, then -runs timed runs, upper median.  check=ok iff
 * every sink saw its messages in order and every pong carried the number
 * sent.
 */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 1000
#define WINDOW 8
#define WAIT (30 * (int64_t)1000000000)

struct ctx {
	struct bench *b;
	up_pid srv;     /* {distbench, Peer} */
	long n, m;
	long bad;
};

static up_term A(const char *s)
{
	return up_atom(s);
}

/* {Tag, X}: X, or die after WAIT. */
struct tag2 {
	up_term tag;
};

static int match_tag2(const struct up_msg *m, void *arg)
{
	const struct tag2 *t = arg;
	up_term e;

	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 2 &&
	       up_tuple_elem(m->term, 0, &e) == 0 && e == t->tag;
}

static up_term expect2(const char *tag)
{
	struct tag2 t = { A(tag) };
	struct up_msg m;
	up_term x;
	int r = up_recv_match(match_tag2, &t, &m, WAIT, 0);

	if (r)
		die("no {%s, _} from the Erlang node: %d", tag, r);
	up_tuple_elem(m.term, 1, &x);
	return x;
}

static up_pid fresh(struct ctx *c, const char *what, long n)
{
	up_term me = up_pid_term(up_self());
	up_term req = n ? up_tuplev(3, me, A(what), up_int(n)) : up_tuplev(2, me, A(what));
	up_pid p;

	MUST(up_send(c->srv, req));
	if (up_get_pid(expect2(what), &p))
		die("{%s, Pid}: not a pid", what);
	return p;
}

static long get_int(up_term t)
{
	int64_t v;

	return up_get_int(t, &v) ? -1 : (long)v;
}

/* ------------------------------------------------------------- stream */

static double stream_once(void *arg)
{
	struct ctx *c = arg;
	up_pid sink = fresh(c, "sink", c->n);
	const up_term tag = A("msg");
	const long batches = c->n / BATCH;
	long acked = 0, mark = MUST(up_heap_mark());
	int64_t t0 = now_ns(), t1;

	for (long k = 1; k <= batches; k++) {
		for (long i = (k - 1) * BATCH + 1; i <= k * BATCH; i++)
			MUST(up_send(sink, up_tuplev(2, tag, up_int(i))));
		MUST(up_heap_reset(mark));
		mark = MUST(up_heap_mark());
		if (k >= WINDOW && get_int(expect2("ack")) != ++acked * BATCH)
			die("an ack out of order");
	}
	while (acked < batches)
		if (get_int(expect2("ack")) != ++acked * BATCH)
			die("an ack out of order");
	t1 = now_ns();
	c->bad += get_int(expect2("done")) != 0;
	return (double)c->n * 1e9 / (double)(t1 - t0);
}

/* ---------------------------------------------------------- roundtrip */

static double roundtrip_once(void *arg)
{
	struct ctx *c = arg;
	up_pid echo = fresh(c, "echo", 0);
	const up_term me = up_pid_term(up_self()), pong = A("pong");
	long mark = MUST(up_heap_mark()), bad = 0;
	struct up_msg m;
	up_term e;
	int64_t t0 = now_ns(), t1;

	for (long i = 1; i <= c->m; i++) {
		MUST(up_send(echo, up_tuplev(2, me, up_int(i))));
		MUST(up_recv(&m, WAIT));
		bad += m.kind != UP_MSG_TERM || up_tuple_arity(m.term) != 2 ||
		       up_tuple_elem(m.term, 0, &e) || e != pong ||
		       up_tuple_elem(m.term, 1, &e) || get_int(e) != i;
		up_msg_free(&m);
		MUST(up_heap_reset(mark));
		mark = MUST(up_heap_mark());
	}
	t1 = now_ns();
	MUST(up_send(echo, A("stop")));
	c->bad += bad;
	return (double)(t1 - t0) / (double)c->m;
}

/* ------------------------------------------------------------- driver */

static void report(struct ctx *c, const char *mode, const char *count, long n,
		   double (*once)(void *), const char *metric, const char *unit)
{
	struct stats s;

	c->bad = 0;
	s = measure(c->b, once, c);
	bench_result(c->b, "peer=erlang mode=%s %s=%ld runs=%ld check=%s min_%s=%.1f max_%s=%.1f %s=%.1f unit=%s",
		     mode, count, n, c->b->runs,
		     c->bad ? bench_fail(c->b, "dist %s: %ld failed checks", mode, c->bad) : "ok",
		     metric, s.min, metric, s.max, metric, s.med, unit);
}

static void driver(struct bench *b)
{
	const char *peer = getenv("DIST_PEER"), *cookie = getenv("DIST_COOKIE");
	const char *at = peer ? strchr(peer, '@') : NULL;
	struct up_node_opts o;
	struct ctx c = { .b = b, .n = b->n, .m = b->m };
	char name[300];

	if (!at)
		die("DIST_PEER=alive@host (the Erlang node running distbench:server) is required");
	snprintf(name, sizeof name, "uprocbench%d%s", (int)getpid(), at);
	memset(&o, 0, sizeof o);
	o.listen_addr = htonl(INADDR_LOOPBACK);
	MUST(up_node_start(name, cookie && *cookie ? cookie : "uproc_bench", &o));
	c.srv = MUST(up_name_at(A("distbench"), A(peer)));
	/* connect (not timed) */
	MUST(up_send(c.srv, up_tuplev(2, up_pid_term(up_self()), A("ping"))));
	{
		struct up_msg m;
		int r = up_recv(&m, WAIT);

		if (r || m.kind != UP_MSG_TERM || m.term != A("pong"))
			die("no pong from %s: %d", peer, r);
	}
	if (getenv("DIST_DEBUG"))
		up_print_processes(stderr);
	report(&c, "stream", "msgs", c.n, stream_once, "msgs_per_s", "msg/s");
	report(&c, "roundtrip", "round_trips", c.m, roundtrip_once, "ns_per_round_trip", "ns");
	if (getenv("DIST_DEBUG"))
		up_print_processes(stderr);
	MUST(up_node_stop());
}

int main(int argc, char **argv)
{
	struct bench b = {
		.name = "dist",
		.driver = driver,
		.n = 200000,
		.n_help = "stream: messages per run (a multiple of 1000, at least 8000)",
		.m = 20000,
		.m_help = "round trips per run",
		.runs = 5,
	};

	bench_parse(&b, argc, argv);
	if (b.n % BATCH || b.n < WINDOW * BATCH)
		bench_usage_error("-n must be a multiple of %d, at least %d", BATCH, WINDOW * BATCH);
	return bench_run(&b);
}
