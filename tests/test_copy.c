/*
 * test_copy.c - up_send of terms (white-box: src/term.h for the
 * representation, src/msg.h for the message buffer, numa/node_mem.h for
 * the node of a block).
 *
 * Every kind of term sent within a scheduler, across schedulers and from a
 * plain thread arrives equal (up_equal, same text) in one buffer of the
 * receiver's own (walked: every box of the copy lies in the buffer, none of
 * the original's does), on the receiver's NUMA node (also with a synthetic
 * two-node topology); the sender's term is unchanged and the copy outlives
 * the sender's heap.  Immediates need no buffer.  -EMSGSIZE past
 * max_message_size and -EINVAL/-ESRCH deliver nothing; up_msg_free's
 * documented cases; a process that exits holding messages releases them;
 * a 100,000-deep tuple and a 1,000,000-element list travel fine (walked
 * iteratively; the deep order/hash/format checks run in a child process).
 */
#include "helpers.h"

#include "term.h"
#include "msg.h"
#include "node_mem.h"

/* ------------------------------------------------------ walking a term */

/* A growable stack of terms (malloc: never the fiber stack). */
struct tstack {
	up_term *w;
	size_t n, cap;
};

static int tpush(struct tstack *s, up_term t)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		up_term *w = realloc(s->w, cap * sizeof *w);
		if (!w)
			return -1;
		s->w = w;
		s->cap = cap;
	}
	s->w[s->n++] = t;
	return 0;
}

/* Visit every boxed object of t (each word it takes: [h, h + words)). */
typedef int (*box_fn)(const uint64_t *h, uint64_t words, void *ctx);

/* Returns the number of boxes, or -1 (fn failed or no memory). */
static long walk_boxes(up_term t, box_fn fn, void *ctx)
{
	struct tstack s = { 0 };
	long n = 0;
	if (tpush(&s, t))
		return -1;
	while (s.n) {
		up_term x = s.w[--s.n];
		if (!up__is_boxed(x))
			continue;
		const uint64_t *h = up__box(x);
		n++;
		if (fn && fn(h, up__box_words(h), ctx)) {
			n = -1;
			break;
		}
		unsigned type = up__btype(h);
		if (type == UP__B_TUPLE || type == UP__B_CONS) {
			uint64_t k = type == UP__B_CONS ? 2 : up__bsize(h);
			for (uint64_t i = 0; i < k; i++)
				if (up__is_boxed(h[1 + i]) && tpush(&s, h[1 + i])) {
					free(s.w);
					return -1;
				}
		}
	}
	free(s.w);
	return n;
}

struct range {
	uintptr_t lo, hi;
	int inside;     /* box_in_range: all inside */
	long outside;   /* box_out_of_range: boxes that intersect */
};

static int box_in_range(const uint64_t *h, uint64_t words, void *ctx)
{
	struct range *r = ctx;
	uintptr_t a = (uintptr_t)h, b = a + words * 8;
	if (a < r->lo || b > r->hi)
		r->inside = 0;
	return 0;
}

static int box_out_of_range(const uint64_t *h, uint64_t words, void *ctx)
{
	struct range *r = ctx;
	uintptr_t a = (uintptr_t)h, b = a + words * 8;
	if (a < r->hi && b > r->lo)
		r->outside++;
	return 0;
}

/* Checksum of every word of every box, pointers included: changes if
 * anything in the term's memory changes. */
static int box_sum(const uint64_t *h, uint64_t words, void *ctx)
{
	uint64_t *sum = ctx;
	for (uint64_t i = 0; i < words; i++)
		*sum = (*sum ^ h[i]) * 0x100000001b3ull + i;
	return 0;
}

static uint64_t raw_sum(up_term t)
{
	uint64_t sum = t;
	walk_boxes(t, box_sum, &sum);
	return sum;
}

/* The buffer of a received message: [lo, hi). */
static struct range msg_range(const struct up_msg *m)
{
	const struct up__msg *b = m->_buf;
	struct range r = { (uintptr_t)b, (uintptr_t)b + b->size, 1, 0 };
	return r;
}

/* Check that the copy (in m) lies in its buffer and the original shares
 * nothing with it.  Returns 0 or records a failure. */
static int check_disjoint(const struct up_msg *m, up_term orig, const char *what)
{
	if (!m->_buf) {
		PFAIL("%s: no buffer", what);
		return -1;
	}
	struct range r = msg_range(m);
	const struct up__msg *b = m->_buf;
	if (b->size < sizeof(struct up__msg) + sizeof(struct up__held) ||
	    (uintptr_t)b->body != r.lo + sizeof(struct up__msg) + sizeof(struct up__held)) {
		PFAIL("%s: buffer of %u bytes, body at +%ld", what, b->size,
		      (long)((uintptr_t)b->body - r.lo));
		return -1;
	}
	long n = walk_boxes(m->term, box_in_range, &r);
	if (n <= 0 || !r.inside) {
		PFAIL("%s: %ld boxes, some outside the message buffer", what, n);
		return -1;
	}
	r.outside = 0;
	if (walk_boxes(orig, box_out_of_range, &r) < 0 || r.outside) {
		PFAIL("%s: %ld boxes of the original inside the copy's buffer", what, r.outside);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------- terms of every kind */

#define NK 26
#define TXT 8192

static int build_kinds(up_term *o)
{
	int n = 0;
	uint8_t bytes[1000];
	for (int i = 0; i < 1000; i++)
		bytes[i] = (uint8_t)(i * 7);
	up_term bin = up_binary("shared", 6);

	o[n++] = up_int(42);
	o[n++] = up_int(-7);
	o[n++] = up_atom("copy_atom");
	o[n++] = up_pid_term(up_self());
	o[n++] = UP_NIL;
	o[n++] = up_int(INT64_MIN);
	o[n++] = up_int(INT64_MAX);
	o[n++] = up_float(-0.125);
	o[n++] = up_float(1.0e300);
	o[n++] = up_make_ref();
	o[n++] = up_binary("", 0);
	o[n++] = up_binary("x", 1);
	o[n++] = up_binary("8 bytes!", 8);
	o[n++] = up_binary("nine byte", 9);
	o[n++] = up_binary(bytes, sizeof bytes);
	o[n++] = up_tuple(0, NULL);
	o[n++] = up_tuplev(3, up_int(1), up_atom("b"), UP_NIL);
	o[n++] = up_list(5, (up_term[]){ up_int(1), up_int(2), up_int(3), up_int(4), up_int(5) });
	o[n++] = up_cons(up_atom("a"), up_cons(up_atom("b"), up_float(3.5)));
	o[n++] = up_tuplev(7, up_atom("ok"), up_pid_term(up_self()),
			   up_list(3, (up_term[]){ up_int(1), up_int(2),
						  up_tuplev(3, up_atom("x"), up_binary("abc", 3),
							    up_list(1, (up_term[]){ up_make_ref() })) }),
			   up_binary("\1\2\3", 3), up_tuplev(1, up_tuplev(1, up_tuple(0, NULL))),
			   up_float(-1.5e10), up_int((int64_t)1 << 62));
	/* sharing inside the term: copied twice over (not kept) */
	o[n++] = up_tuplev(3, bin, bin, up_list(2, (up_term[]){ bin, bin }));
	/* a list of 20 tuples of 10 elements */
	up_term l = UP_NIL;
	for (int i = 0; i < 20; i++) {
		up_term e[10];
		for (int k = 0; k < 10; k++)
			e[k] = k % 3 ? up_int(i * 10 + k) : up_float(i + k / 100.0);
		l = up_cons(up_tuple(10, e), l);
	}
	o[n++] = l;
	o[n++] = up_list(1, (up_term[]){ UP_NIL });
	o[n++] = up_tuplev(2, up_tuple(0, NULL), up_binary("", 0));
	o[n++] = up_cons(UP_NIL, UP_NIL);
	o[n++] = up_tuplev(1, up_int(-1));
	return n;
}

enum { FROM_PROCESS, FROM_THREAD };

struct xfer {
	/* setup */
	int send_sched, recv_sched, from;
	/* built by the builder (the sender, or a process for the thread) */
	int n;
	up_term orig[NK];
	char text[NK][TXT];
	uint64_t sum[NK];
	long mark;
	up_pid builder, receiver;
	atomic_int built, sent, checked, scrambled;
	int send_rc[NK];
	/* receiver */
	int recv_node, recv_sched_seen;
	int buf_node[NK];
	int nbuf;
};

static void fmt(up_term t, char *buf)
{
	long n = up_term_format(t, buf, TXT);
	if (n < 0 || n >= TXT)
		PFAIL("format: %ld", n);
}

/* Wait (yielding) for an atomic flag, at most WAIT_NS. */
static int proc_wait_flag(atomic_int *f, const char *what)
{
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(f)) {
		if (now_ns() > deadline) {
			PFAIL("waited too long for %s", what);
			up_shutdown();
			return -1;
		}
		up_yield();
	}
	return 0;
}

static void send_all(struct xfer *x)
{
	for (int i = 0; i < x->n; i++)
		x->send_rc[i] = up_send(x->receiver, x->orig[i]);
	atomic_store(&x->sent, 1);
}

/* The original terms are as they were. */
static void check_originals(struct xfer *x, const char *when)
{
	char buf[TXT];
	for (int i = 0; i < x->n; i++) {
		fmt(x->orig[i], buf);
		if (strcmp(buf, x->text[i]) != 0 || raw_sum(x->orig[i]) != x->sum[i])
			PFAIL("%s: original %d changed: %s", when, i, buf);
	}
}

static void xfer_receiver(void *arg)
{
	struct xfer *x = arg;
	struct up_msg m[NK];
	char buf[TXT];
	x->recv_node = up_node();
	x->recv_sched_seen = up_scheduler();
	if (proc_wait_flag(&x->built, "the terms"))
		return;
	for (int i = 0; i < x->n; i++) {
		if (proc_recv_or_die(&m[i]))
			return;
		char what[32];
		snprintf(what, sizeof what, "term %d", i);
		PCHECK_EQ(m[i].kind, UP_MSG_TERM);
		PCHECK_EQ(m[i].mailbox, 0);
		int imm = !up__is_boxed(x->orig[i]);
		if (imm) {
			/* immediates: no buffer, the same word */
			if (m[i]._buf != NULL)
				PFAIL("%s: an immediate came with a buffer", what);
			PCHECK(m[i].term == x->orig[i]);
		} else {
			check_disjoint(&m[i], x->orig[i], what);
			x->buf_node[i] = up__node_of_block(m[i]._buf);
			x->nbuf++;
			if (x->buf_node[i] != x->recv_node)
				PFAIL("%s: buffer on node %d, receiver on %d", what, x->buf_node[i],
				      x->recv_node);
		}
		if (!up_equal(m[i].term, x->orig[i]) || up_compare(m[i].term, x->orig[i]) != 0)
			PFAIL("%s: the copy is not equal to the original", what);
		PCHECK(up_hash(m[i].term) == up_hash(x->orig[i]));
		fmt(m[i].term, buf);
		if (strcmp(buf, x->text[i]) != 0)
			PFAIL("%s: copy \"%s\", original \"%s\"", what, buf, x->text[i]);
	}
	/* nothing more came */
	struct up_msg extra;
	PCHECK_EQ(up_recv(&extra, 0), -ETIMEDOUT);
	/* free every other message now; the sender then checks its terms */
	for (int i = 0; i < x->n; i += 2)
		PCHECK_EQ(up_msg_free(&m[i]), 0);
	atomic_store(&x->checked, 1);
	/* the builder resets its heap and writes over it: the copies stay */
	if (proc_wait_flag(&x->scrambled, "scrambled"))
		return;
	for (int i = 1; i < x->n; i += 2) {
		fmt(m[i].term, buf);
		if (strcmp(buf, x->text[i]) != 0)
			PFAIL("term %d changed with the sender's heap: \"%s\"", i, buf);
	}
	/* and outlive the sender */
	proc_wait_exit(x->builder);
	for (int i = 1; i < x->n; i += 2) {
		fmt(m[i].term, buf);
		if (strcmp(buf, x->text[i]) != 0)
			PFAIL("term %d changed after the sender exited: \"%s\"", i, buf);
		PCHECK_EQ(up_msg_free(&m[i]), 0);
	}
}

static void xfer_builder(void *arg)
{
	struct xfer *x = arg;
	x->builder = up_self();
	x->mark = up_heap_mark();
	x->n = build_kinds(x->orig);
	for (int i = 0; i < x->n; i++) {
		if (up_is_bad(x->orig[i])) {
			PFAIL("building term %d: %d", i, up_term_error(x->orig[i]));
			up_shutdown();
			return;
		}
		fmt(x->orig[i], x->text[i]);
		x->sum[i] = raw_sum(x->orig[i]);
	}
	atomic_store(&x->built, 1);
	if (x->from == FROM_PROCESS)
		send_all(x);
	else if (proc_wait_flag(&x->sent, "the thread's sends"))
		return;
	check_originals(x, "after the send");
	if (proc_wait_flag(&x->checked, "the receiver's checks"))
		return;
	check_originals(x, "after the receiver freed half");
	/* drop the originals and write garbage where they were */
	PCHECK_EQ(up_heap_reset(x->mark), 0);
	for (int i = 0; i < 200; i++) {
		uint8_t junk[64];
		memset(junk, 0xee, sizeof junk);
		up_binary(junk, sizeof junk);
	}
	atomic_store(&x->scrambled, 1);
}

static void xfer_main(void *arg)
{
	struct xfer *x = arg;
	struct up_spawn_opts r = spawn_on(x->recv_sched), b = spawn_on(x->send_sched);
	x->receiver = up_spawn_opt(xfer_receiver, x, &r);
	if (x->receiver <= 0) {
		PFAIL("spawn receiver: %" PRId64, x->receiver);
		return;
	}
	/* The builder records its own pid (x->builder) before it signals
	 * `built`: written here, it could come after the receiver's read. */
	PCHECK(up_spawn_opt(xfer_builder, x, &b) > 0);
	proc_wait_exit(x->receiver);
}

static void *xfer_thread(void *arg)
{
	struct xfer *x = arg;
	if (thread_wait_flag(&x->built) != 0) {
		PFAIL("the builder never built");
		return NULL;
	}
	send_all(x);
	return NULL;
}

static void xfer_run(int send_sched, int recv_sched, int from, unsigned schedulers)
{
	struct xfer *x = calloc(1, sizeof *x);
	pthread_t t;
	assert_non_null(x);
	x->send_sched = send_sched;
	x->recv_sched = recv_sched;
	x->from = from;
	pfail_reset();
	if (from == FROM_THREAD)
		assert_int_equal(pthread_create(&t, NULL, xfer_thread, x), 0);
	int rc = run_main(xfer_main, x, schedulers);
	if (from == FROM_THREAD)
		pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	if (atomic_load(&pfail.count))
		print_message("  sender on %s %d, receiver on scheduler %d:\n",
			      from == FROM_THREAD ? "a thread, builder on" : "scheduler", send_sched,
			      recv_sched);
	assert_no_pfail();
	assert_int_equal(x->n, NK);
	for (int i = 0; i < x->n; i++)
		assert_int_equal(x->send_rc[i], 0);
	assert_int_equal(x->recv_sched_seen, recv_sched);
	assert_int_equal(x->nbuf, NK - 5); /* all but the five immediates */
	free(x);
}

static void test_copy_same_scheduler(void **state)
{
	(void)state;
	xfer_run(0, 0, FROM_PROCESS, 1);
}

static void test_copy_across_schedulers(void **state)
{
	(void)state;
	xfer_run(0, 1, FROM_PROCESS, 2);
	xfer_run(1, 0, FROM_PROCESS, 2);
	xfer_run(1, 1, FROM_PROCESS, 2);
}

static void test_copy_from_thread(void **state)
{
	(void)state;
	xfer_run(0, 0, FROM_THREAD, 1);
	xfer_run(0, 1, FROM_THREAD, 2);
}

/* With two synthetic NUMA nodes (scheduler n on node n) the buffer is on
 * the receiver's node, wherever the sender runs. */
static void test_copy_on_receiver_node(void **state)
{
	(void)state;
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0;1:1", 1), 0);
	struct { int s, r, from; } cases[] = {
		{ 0, 1, FROM_PROCESS }, { 1, 0, FROM_PROCESS }, { 1, 1, FROM_PROCESS },
		{ 0, 0, FROM_PROCESS }, { 0, 1, FROM_THREAD }, { 1, 0, FROM_THREAD },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
		xfer_run(cases[k].s, cases[k].r, cases[k].from, 2);
	unsetenv("UPROC_TOPOLOGY");
}

/* --------------------------------------------------------- immediates */

static void imm_main(void *arg)
{
	(void)arg;
	up_term imm[] = { up_int(0), up_int(-1), up_int(((int64_t)1 << 62) - 1),
			  up_int(-((int64_t)1 << 62)), up_atom("imm"), up_atom("normal"),
			  up_pid_term(up_self()), up_pid_term(1), UP_NIL };
	size_t n = sizeof imm / sizeof imm[0];
	for (size_t i = 0; i < n; i++)
		PCHECK_EQ(up_send(up_self(), imm[i]), 0);
	/* boxed ones for contrast */
	PCHECK_EQ(up_send(up_self(), up_int((int64_t)1 << 62)), 0);
	PCHECK_EQ(up_send(up_self(), up_tuple(0, NULL)), 0);
	PCHECK_EQ(up_mailbox_len(0), (long)n + 2);
	for (size_t i = 0; i < n + 2; i++) {
		struct up_msg m;
		memset(&m, 0x5a, sizeof m);
		PCHECK_EQ(up_recv(&m, 0), 0);
		PCHECK_EQ(m.kind, UP_MSG_TERM);
		if (i < n) {
			PCHECK(m._buf == NULL);
			PCHECK(m.term == imm[i]);
		} else {
			PCHECK(m._buf != NULL);
		}
		PCHECK_EQ(up_msg_free(&m), 0);
	}
}

static void test_immediates_need_no_buffer(void **state)
{
	(void)state;
	RUN_OK(imm_main, NULL, 1);
}

/* ----------------------------------------------------- max_message_size */

#define SMALL_MAX 4096
#define HEAD (sizeof(struct up__msg) + sizeof(struct up__held))

struct emsg {
	up_pid receiver;
	int rc_fit, rc_over, rc_list, rc_over_x, rc_fit_x;
	long len_after;
	int got, got_word_first, recv_after;
	size_t got_len;
};

static void emsg_receiver(void *arg)
{
	struct emsg *e = arg;
	struct up_msg m;
	/* the one that fit comes first, then the word: nothing else */
	if (proc_recv_or_die(&m))
		return;
	const void *d;
	size_t len;
	if (m.kind == UP_MSG_TERM && up_get_binary(m.term, &d, &len) == 0)
		e->got_len = len;
	up_msg_free(&m);
	if (proc_recv_or_die(&m))
		return;
	e->got_word_first = m.kind == UP_MSG_WORD && m.word == 77;
	e->recv_after = up_recv(&m, 0);
}

static void emsg_main(void *arg)
{
	struct emsg *e = arg;
	const size_t max_words = (SMALL_MAX - HEAD) / 8;
	const size_t fit = (max_words - 1) * 8; /* header + payload = max_words */
	uint8_t *bytes = calloc(1, fit + 64);
	if (!bytes) {
		PFAIL("calloc");
		return;
	}
	up_term b_fit = up_binary(bytes, fit), b_over = up_binary(bytes, fit + 1);
	up_term l = UP_NIL;
	for (int i = 0; i < 200; i++) /* 600 words */
		l = up_cons(up_int(i), l);
	/* to itself */
	e->rc_over = up_send(up_self(), b_over);
	e->rc_list = up_send(up_self(), l);
	e->len_after = up_mailbox_len(0);
	e->rc_fit = up_send(up_self(), b_fit);
	struct up_msg m;
	e->got = up_recv(&m, 0) == 0 && m.kind == UP_MSG_TERM && up_equal(m.term, b_fit);
	up_msg_free(&m);
	/* to another scheduler */
	struct up_spawn_opts o = spawn_on(1);
	e->receiver = up_spawn_opt(emsg_receiver, e, &o);
	e->rc_over_x = up_send(e->receiver, b_over);
	up_send(e->receiver, up_tuplev(2, b_over, l));
	e->rc_fit_x = up_send(e->receiver, b_fit);
	PCHECK_EQ(up_send_word(e->receiver, 77), 0);
	proc_wait_exit(e->receiver);
	free(bytes);
}

static void noop_main(void *arg) { (void)arg; }

static void test_emsgsize(void **state)
{
	(void)state;
	struct emsg e;
	memset(&e, 0, sizeof e);
	struct up_run_opts o = run_opts(2);
	o.max_message_size = SMALL_MAX;
	assert_int_equal(up_run(emsg_main, &e, &o), 0);
	assert_no_pfail();
	assert_int_equal(e.rc_over, -EMSGSIZE);
	assert_int_equal(e.rc_list, -EMSGSIZE);
	assert_int_equal(e.len_after, 0);
	assert_int_equal(e.rc_fit, 0);
	assert_true(e.got);
	assert_int_equal(e.rc_over_x, -EMSGSIZE);
	assert_int_equal(e.rc_fit_x, 0);
	assert_int_equal(e.got_len, (SMALL_MAX - HEAD) / 8 * 8 - 8);
	assert_true(e.got_word_first);
	assert_int_equal(e.recv_after, -ETIMEDOUT);

	/* the option: at most 1 GiB */
	o = run_opts(1);
	o.max_message_size = ((size_t)1 << 30) + 1;
	assert_int_equal(up_run(noop_main, NULL, &o), -EINVAL);
	o.max_message_size = (size_t)1 << 30;
	assert_int_equal(up_run(noop_main, NULL, &o), 0);
}

/* ---------------------------------------------------- send errors */

struct serr {
	int bad, pid0, pidneg, mbox1, mboxmax, dead_same, dead_same_imm, dead_x, dead_x_imm,
		crafted, pid_huge;
	long len;
};

static void quick_exit_fn(void *arg) { (void)arg; }

static void serr_main(void *arg)
{
	struct serr *e = arg;
	up_term t = up_tuplev(2, up_atom("x"), up_binary("payload", 7));
	e->bad = up_send(up_self(), up_atom(""));
	e->pid0 = up_send(0, t);
	e->pidneg = up_send(-5, t);
	e->pid_huge = up_send(INT64_MAX, t);
	e->mbox1 = up_send_to(up_self(), 1, t);
	e->mboxmax = up_send_to(up_self(), UP_MAX_MAILBOXES, t);
	/* a tuple holding a bad term (no builder makes one) */
	uint64_t *w = up_alloc(3 * 8);
	w[0] = up__header(UP__B_TUPLE, 2);
	w[1] = up_int(1);
	w[2] = up__mkbad(-EINVAL);
	e->crafted = up_send(up_self(), up__mkbox(w));
	/* dead processes, on this scheduler and on the other */
	up_pid d1 = up_spawn(quick_exit_fn, NULL);
	struct up_spawn_opts o = spawn_on(1);
	up_pid d2 = up_spawn_opt(quick_exit_fn, NULL, &o);
	proc_wait_exit(d1);
	proc_wait_exit(d2);
	e->dead_same = up_send(d1, t);
	e->dead_same_imm = up_send(d1, up_int(1));
	e->dead_x = up_send(d2, t);
	e->dead_x_imm = up_send(d2, UP_NIL);
	e->len = up_mailbox_len(0);
}

static void test_send_errors(void **state)
{
	(void)state;
	struct serr e;
	memset(&e, 0x55, sizeof e);
	RUN_OK(serr_main, &e, 2);
	assert_int_equal(e.bad, -EINVAL);
	assert_int_equal(e.pid0, -EINVAL);
	assert_int_equal(e.pidneg, -EINVAL);
	assert_true(e.pid_huge == -EINVAL || e.pid_huge == -ESRCH);
	assert_int_equal(e.mbox1, -EINVAL);
	assert_int_equal(e.mboxmax, -EINVAL);
	assert_int_equal(e.crafted, -EINVAL);
	assert_int_equal(e.dead_same, -ESRCH);
	assert_int_equal(e.dead_same_imm, -ESRCH);
	assert_int_equal(e.dead_x, -ESRCH);
	assert_int_equal(e.dead_x_imm, -ESRCH);
	assert_int_equal(e.len, 0);
	/* no runtime */
	assert_int_equal(up_send(1, up_int(1)), -ESRCH);
	assert_int_equal(up_send(1, up_atom("")), -EINVAL);
}

/* ------------------------------------------------------- up_msg_free */

struct mfree {
	int twice[2], null, word[2], imm, order[5], order_again[5];
	long len;
	atomic_int go, done;
	int thread_rc, thread_null_rc;
};

static void mfree_main(void *arg)
{
	struct mfree *f = arg;
	struct up_msg m, ms[5];
	up_term t = up_tuplev(2, up_atom("a"), up_binary("bytes", 5));

	PCHECK_EQ(up_send(up_self(), t), 0);
	PCHECK_EQ(up_recv(&m, 0), 0);
	f->twice[0] = up_msg_free(&m);
	f->twice[1] = up_msg_free(&m);
	f->null = up_msg_free(NULL);
	PCHECK_EQ(up_send_word(up_self(), 5), 0);
	PCHECK_EQ(up_recv(&m, 0), 0);
	f->word[0] = up_msg_free(&m);
	f->word[1] = up_msg_free(&m);
	PCHECK_EQ(up_send(up_self(), up_int(3)), 0);
	PCHECK_EQ(up_recv(&m, 0), 0);
	f->imm = up_msg_free(&m);
	/* held buffers freed out of order, each twice */
	for (int i = 0; i < 5; i++) {
		PCHECK_EQ(up_send(up_self(), up_tuplev(2, up_int(i), up_binary("zz", 2))), 0);
		PCHECK_EQ(up_recv(&ms[i], 0), 0);
	}
	static const int order[5] = { 2, 0, 4, 1, 3 };
	for (int k = 0; k < 5; k++) {
		/* the others are still intact */
		for (int j = k; j < 5; j++) {
			up_term e;
			int64_t v;
			int i = order[j];
			if (up_tuple_elem(ms[i].term, 0, &e) != 0 || up_get_int(e, &v) != 0 || v != i)
				PFAIL("message %d damaged after %d frees", i, k);
		}
		f->order[k] = up_msg_free(&ms[order[k]]);
		f->order_again[k] = up_msg_free(&ms[order[k]]);
	}
	f->len = up_mailbox_len(0);
	/* from a plain thread while this runs */
	atomic_store(&f->go, 1);
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(&f->done) && now_ns() < deadline)
		up_yield();
}

static void *mfree_thread(void *arg)
{
	struct mfree *f = arg;
	struct up_msg m;
	memset(&m, 0, sizeof m);
	if (thread_wait_flag(&f->go) == 0) {
		f->thread_rc = up_msg_free(&m);
		f->thread_null_rc = up_msg_free(NULL);
	}
	atomic_store(&f->done, 1);
	return NULL;
}

static void test_msg_free(void **state)
{
	(void)state;
	struct mfree f;
	pthread_t t;
	memset(&f, 0x55, sizeof f);
	atomic_store(&f.go, 0);
	atomic_store(&f.done, 0);
	assert_int_equal(pthread_create(&t, NULL, mfree_thread, &f), 0);
	int rc = run_main(mfree_main, &f, 1);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();
	assert_int_equal(f.twice[0], 0);
	assert_int_equal(f.twice[1], 0);
	assert_int_equal(f.null, -EINVAL);
	assert_int_equal(f.word[0], 0);
	assert_int_equal(f.word[1], 0);
	assert_int_equal(f.imm, 0);
	for (int k = 0; k < 5; k++) {
		assert_int_equal(f.order[k], 0);
		assert_int_equal(f.order_again[k], 0);
	}
	assert_int_equal(f.len, 0);
	assert_int_equal(f.thread_rc, -EPERM);
	assert_int_equal(f.thread_null_rc, -EPERM);
	/* on the test thread, no runtime */
	struct up_msg m;
	memset(&m, 0, sizeof m);
	assert_int_equal(up_msg_free(&m), -EPERM);
	assert_int_equal(up_msg_free(NULL), -EPERM);
}

/* ---------------------------------------- exiting holding messages */

#define HOLDERS 100
#define HELD 10
#define ROUNDS UPT_SCALE(40, 6)

static void holder(void *arg)
{
	(void)arg;
	struct up_msg m;
	/* when all have been sent (a word to mailbox 1), take HELD messages
	 * and keep them; the rest stay queued */
	if (up_recv_from(1, &m, WAIT_NS) != 0) {
		PFAIL("holder: no go");
		return;
	}
	for (int i = 0; i < HELD; i++)
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("holder: nothing to receive");
			return;
		}
}

struct holdrun {
	long long rss[ROUNDS];
	int send_fail;
};

static void hold_main(void *arg)
{
	struct holdrun *h = arg;
	static uint8_t bytes[4000];
	memset(bytes, 0xab, sizeof bytes);
	up_term t = up_tuplev(2, up_atom("held"), up_binary(bytes, sizeof bytes));
	struct up_spawn_opts o = spawn_on(1);
	o.mailboxes = 2;
	up_pid p[HOLDERS];
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < HOLDERS; i++)
			p[i] = up_spawn_opt(holder, NULL, &o);
		for (int k = 0; k < 2 * HELD; k++)
			for (int i = 0; i < HOLDERS; i++)
				if (up_send(p[i], t) != 0)
					h->send_fail++;
		for (int i = 0; i < HOLDERS; i++)
			PCHECK_EQ(up_send_word_to(p[i], 1, 1), 0);
		for (int i = 0; i < HOLDERS; i++)
			proc_wait_exit(p[i]);
		h->rss[r] = vm_rss_app_bytes();
	}
}

static void test_exit_releases_messages(void **state)
{
	(void)state;
	struct holdrun *h = calloc(1, sizeof *h);
	assert_non_null(h);
	RUN_OK(hold_main, h, 2);
	assert_int_equal(h->send_fail, 0);
	/* each round holds 8 MB of messages; leaked, 30 rounds would be 240 MB.
	 * (Under AddressSanitizer the quarantine keeps freed memory resident:
	 * LeakSanitizer checks instead, at exit.) */
	long long grew = h->rss[ROUNDS - 1] - h->rss[ROUNDS / 4];
	print_message("  resident: %lld MiB after round %d, %lld MiB after round %d\n",
		      h->rss[ROUNDS / 4] >> 20, ROUNDS / 4, h->rss[ROUNDS - 1] >> 20, ROUNDS);
	if (!UPT_ASAN)
		assert_true(grew < (32LL << 20));
	free(h);
}

/* A receiver on another scheduler exits while boxed terms pour in: every
 * send is 0 or -ESRCH (and stays -ESRCH); nothing leaks (LeakSanitizer). */
struct race {
	up_pid r;
	long ok, srch, other, flip_back;
};

static void race_receiver(void *arg)
{
	(void)arg;
	struct up_msg m;
	for (int i = 0; i < 1000; i++) {
		if (up_recv(&m, WAIT_NS) != 0)
			return;
		if (i % 2)
			up_msg_free(&m);
	}
}

static void race_main(void *arg)
{
	struct race *x = arg;
	struct up_spawn_opts o = spawn_on(1);
	up_term t = up_tuplev(3, up_int(1), up_binary("0123456789abcdef0123456789abcdef", 32),
			      up_list(2, (up_term[]){ up_float(1.0), up_make_ref() }));
	for (int round = 0; round < 20; round++) {
		x->r = up_spawn_opt(race_receiver, NULL, &o);
		int dead = 0;
		for (long i = 0; i < 200000; i++) {
			int rc = up_send(x->r, t);
			if (rc == 0) {
				x->ok++;
				if (dead)
					x->flip_back++;
			} else if (rc == -ESRCH) {
				x->srch++;
				dead = 1;
				if (i % 64 == 0 && up_alive(x->r) == 0)
					break;
			} else {
				x->other++;
			}
			if (i % 256 == 0)
				up_yield();
		}
		proc_wait_exit(x->r);
	}
}

static void test_send_to_exiting(void **state)
{
	(void)state;
	struct race x;
	memset(&x, 0, sizeof x);
	RUN_OK(race_main, &x, 2);
	print_message("  %ld delivered, %ld refused (-ESRCH)\n", x.ok, x.srch);
	assert_int_equal(x.other, 0);
	assert_int_equal(x.flip_back, 0);
	assert_true(x.ok >= 20 * 1000);
	assert_true(x.srch > 0);
}

/* ------------------------------------------------------- deep terms */

#define DEEP 100000
#define LONG_LIST 1000000
#define WIDE 100000

enum { T_DEEP_TAIL, T_DEEP_HEAD, T_LIST, T_NESTED_LIST, T_WIDE, T_COUNT };

struct deep {
	up_term orig[T_COUNT];
	long fmt_len[T_COUNT];  /* of the original, by the builder */
	uint64_t hash[T_COUNT];
	int compare_too;        /* also up_equal/up_hash/up_term_format */
	up_pid builder;
	int walked[T_COUNT];
};

static int digits(long v)
{
	int n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* Walk copy c of term k iteratively, checking every value; every box must
 * lie in [lo, hi).  Returns 0 or -1 (failure recorded). */
static int walk_deep(int k, up_term c, uintptr_t lo, uintptr_t hi)
{
#define INSIDE(t) (up__is_boxed(t) && (uintptr_t)up__box(t) >= lo && (uintptr_t)up__box(t) < hi)
	up_term e0, e1, h, t;
	int64_t v;
	switch (k) {
	case T_DEEP_TAIL: /* {D-1, {D-2, ... {0, []}}} */
		for (long j = DEEP - 1; j >= 0; j--) {
			if (!INSIDE(c) || up_tuple_arity(c) != 2 || up_tuple_elem(c, 0, &e0) ||
			    up_get_int(e0, &v) || v != j || up_tuple_elem(c, 1, &e1)) {
				PFAIL("deep tuple: wrong at level %ld", DEEP - 1 - j);
				return -1;
			}
			c = e1;
		}
		return c == UP_NIL ? 0 : -1;
	case T_DEEP_HEAD: /* {{...{[], 0}..., D-2}, D-1} */
		for (long j = DEEP - 1; j >= 0; j--) {
			if (!INSIDE(c) || up_tuple_arity(c) != 2 || up_tuple_elem(c, 1, &e1) ||
			    up_get_int(e1, &v) || v != j || up_tuple_elem(c, 0, &e0)) {
				PFAIL("head-nested tuple: wrong at level %ld", DEEP - 1 - j);
				return -1;
			}
			c = e0;
		}
		return c == UP_NIL ? 0 : -1;
	case T_LIST: /* [0, 1, ..., L-1] */
		for (long j = 0; j < LONG_LIST; j++) {
			if (!INSIDE(c) || up_get_cons(c, &h, &t) || up_get_int(h, &v) || v != j) {
				PFAIL("long list: wrong at element %ld", j);
				return -1;
			}
			c = t;
		}
		return c == UP_NIL ? 0 : -1;
	case T_NESTED_LIST: /* [[[...[]...]]] */
		for (long j = 0; j < DEEP; j++) {
			if (!INSIDE(c) || up_get_cons(c, &h, &t) || t != UP_NIL) {
				PFAIL("nested list: wrong at level %ld", j);
				return -1;
			}
			c = h;
		}
		return c == UP_NIL ? 0 : -1;
	case T_WIDE: /* {<<"00000000">>, ..., <<"00099999">>} */
		if (!INSIDE(c) || up_tuple_arity(c) != WIDE)
			return -1;
		for (long j = 0; j < WIDE; j++) {
			const void *d;
			size_t len;
			char want[16];
			snprintf(want, sizeof want, "%08ld", j);
			if (up_tuple_elem(c, (size_t)j, &e0) || !INSIDE(e0) ||
			    up_get_binary(e0, &d, &len) || len != 8 || memcmp(d, want, 8)) {
				PFAIL("wide tuple: wrong at element %ld", j);
				return -1;
			}
		}
		return 0;
	}
	return -1;
#undef INSIDE
}

static void deep_receiver(void *arg)
{
	struct deep *d = arg;
	for (int k = 0; k < T_COUNT; k++) {
		struct up_msg m;
		if (proc_recv_or_die(&m))
			return;
		if (!m._buf) {
			PFAIL("term %d: no buffer", k);
			continue;
		}
		struct range r = msg_range(&m);
		d->walked[k] = walk_deep(k, m.term, r.lo, r.hi) == 0;
		if (!d->walked[k])
			PFAIL("term %d: the copy is wrong", k);
		PCHECK(up__node_of_block(m._buf) == up_node());
		if (d->compare_too) {
			/* the original is still alive (the builder waits) */
			if (!up_equal(m.term, d->orig[k]) || up_compare(m.term, d->orig[k]) != 0)
				PFAIL("term %d: up_equal/up_compare with the original", k);
			if (up_hash(m.term) != d->hash[k])
				PFAIL("term %d: hash differs", k);
			long n = up_term_format(m.term, NULL, 0);
			if (n != d->fmt_len[k])
				PFAIL("term %d: format length %ld, original %ld", k, n, d->fmt_len[k]);
		}
		PCHECK_EQ(up_msg_free(&m), 0);
	}
	PCHECK_EQ(up_send_word(d->builder, 1), 0);
}

static void deep_main(void *arg)
{
	struct deep *d = arg;
	d->builder = up_self();
	up_term t = UP_NIL;
	for (long j = 0; j < DEEP; j++)
		t = up_tuplev(2, up_int(j), t);
	d->orig[T_DEEP_TAIL] = t;
	t = UP_NIL;
	for (long j = 0; j < DEEP; j++)
		t = up_tuplev(2, t, up_int(j));
	d->orig[T_DEEP_HEAD] = t;
	t = UP_NIL;
	for (long j = LONG_LIST - 1; j >= 0; j--)
		t = up_cons(up_int(j), t);
	d->orig[T_LIST] = t;
	t = UP_NIL;
	for (long j = 0; j < DEEP; j++)
		t = up_cons(t, UP_NIL);
	d->orig[T_NESTED_LIST] = t;
	up_term *e = malloc(WIDE * sizeof *e);
	if (!e) {
		PFAIL("malloc");
		return;
	}
	for (long j = 0; j < WIDE; j++) {
		char s[16];
		snprintf(s, sizeof s, "%08ld", j);
		e[j] = up_binary(s, 8);
	}
	d->orig[T_WIDE] = up_tuple(WIDE, e);
	free(e);
	for (int k = 0; k < T_COUNT; k++)
		if (up_is_bad(d->orig[k])) {
			PFAIL("building term %d: %d", k, up_term_error(d->orig[k]));
			return;
		}
	/* the original itself reads right (the walker is sound) */
	PCHECK(walk_deep(T_LIST, d->orig[T_LIST], 0, UINTPTR_MAX) == 0);
	if (d->compare_too) {
		/* expected text lengths of two of them, computed */
		long want_list = 2 + (LONG_LIST - 1), want_tail = 2;
		for (long j = 0; j < LONG_LIST; j++)
			want_list += digits(j);
		for (long j = 0; j < DEEP; j++)
			want_tail += 3 + digits(j); /* "{j," and "}" */
		for (int k = 0; k < T_COUNT; k++) {
			d->fmt_len[k] = up_term_format(d->orig[k], NULL, 0);
			d->hash[k] = up_hash(d->orig[k]);
		}
		PCHECK_EQ(d->fmt_len[T_LIST], want_list);
		PCHECK_EQ(d->fmt_len[T_DEEP_TAIL], want_tail);
		PCHECK_EQ(d->fmt_len[T_NESTED_LIST], 2L * DEEP + 2);
	}
	struct up_spawn_opts o = spawn_on(up_schedulers() > 1 ? 1 : 0);
	up_pid r = up_spawn_opt(deep_receiver, d, &o);
	for (int k = 0; k < T_COUNT; k++) {
		int rc = up_send(r, d->orig[k]);
		if (rc != 0)
			PFAIL("sending term %d: %d", k, rc);
	}
	struct up_msg m;
	proc_recv_or_die(&m);
	proc_wait_exit(r);
}

static int deep_body(void *arg)
{
	struct deep *d = arg;
	int rc = run_main(deep_main, d, 2);
	if (rc)
		return 100;
	for (int k = 0; k < T_COUNT; k++)
		if (!d->walked[k])
			return 101 + k;
	return 0;
}

static void test_deep_terms(void **state)
{
	(void)state;
	struct deep *d = shared_alloc(sizeof *d);
	assert_non_null(d);
	int rc = fork_run(deep_body, d, UPT_SCALE(120, 300));
	assert_fork_ok(rc, UPT_SCALE(120, 300), "sending deep and long terms");
}

/* The same terms through up_equal, up_compare, up_hash and up_term_format
 * (which walk with an explicit stack, not the 64 KiB fiber stack). */
static void test_deep_terms_order_hash_format(void **state)
{
	(void)state;
	struct deep *d = shared_alloc(sizeof *d);
	assert_non_null(d);
	d->compare_too = 1;
	int rc = fork_run(deep_body, d, UPT_SCALE(120, 300));
	assert_fork_ok(rc, UPT_SCALE(120, 300), "comparing, hashing, printing deep terms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_copy_same_scheduler),
		UPT_TEST(test_copy_across_schedulers),
		UPT_TEST(test_copy_from_thread),
		UPT_TEST(test_copy_on_receiver_node),
		UPT_TEST(test_immediates_need_no_buffer),
		UPT_TEST(test_emsgsize),
		UPT_TEST(test_send_errors),
		UPT_TEST(test_msg_free),
		UPT_TEST(test_exit_releases_messages),
		UPT_TEST(test_send_to_exiting),
		UPT_TEST(test_deep_terms),
		UPT_TEST(test_deep_terms_order_hash_format),
	};
	return UPT_RUN("copy", tests);
}
