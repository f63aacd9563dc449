/*
 * test_mailbox.c - messages and mailboxes: exactly-once, per-sender FIFO
 * delivery across schedulers (from processes and from plain threads),
 * several mailboxes per process with default and custom priorities,
 * up_recv_from and up_mailbox_len, the argument checks of the send and
 * receive calls, receive timeouts (expiry, zero, a message beating the
 * deadline without a stale timer firing later), that a blocked process costs
 * no CPU, and -ENOMEM when a send finds no memory.
 */
#include "helpers.h"


/* -------------------------------------------- many senders, one receiver */

#define SENDERS 8
#define PER_SENDER (UPT_VALGRIND ? 20000 : 200000)
#define TOTAL ((long)SENDERS * PER_SENDER)

struct flood {
	up_pid receiver;
	atomic_int ready;
	atomic_long send_errors;
	atomic_int first_send_error;
	atomic_int senders_wrong_sched;
	int receiver_sched;
	long received;
	long out_of_order;
	long bad_word;
	uint64_t first_bad;
	uint64_t next[SENDERS];
	int64_t t_start, t_end;
};

struct sender_arg {
	struct flood *f;
	int idx;
};

static void send_all(struct flood *f, int idx, int from_process)
{
	for (uint64_t seq = 0; seq < (uint64_t)PER_SENDER; seq++) {
		int rc = up_send_word(f->receiver, (uint64_t)idx << 32 | seq);
		if (rc != 0) {
			if (atomic_fetch_add(&f->send_errors, 1) == 0)
				atomic_store(&f->first_send_error, rc);
		}
		/* Interleave the senders at different rhythms. */
		if (from_process && seq % (uint64_t)(97 * (idx + 1)) == 0)
			up_yield();
	}
}

static void flood_receiver(void *arg)
{
	struct flood *f = arg;
	struct up_msg m;
	f->receiver_sched = up_scheduler();
	f->t_start = now_ns();
	while (f->received < TOTAL) {
		int rc = up_recv(&m, 0);
		if (rc == -ETIMEDOUT)
			rc = up_recv(&m, WAIT_NS);
		if (rc != 0) {
			PFAIL("receiver: up_recv = %d after %ld of %ld messages", rc,
			      f->received, TOTAL);
			break;
		}
		f->received++;
		uint64_t idx = m.word >> 32, seq = m.word & 0xffffffffu;
		if (idx >= SENDERS || m.mailbox != 0) {
			if (f->bad_word++ == 0)
				f->first_bad = m.word;
			continue;
		}
		if (seq != f->next[idx]) {
			if (f->out_of_order++ == 0)
				PFAIL("sender %d: got seq %" PRIu64 ", expected %" PRIu64,
				      (int)idx, seq, f->next[idx]);
		}
		f->next[idx] = seq + 1;
	}
	f->t_end = now_ns();
	/* Nothing more may come: exactly once. */
	if (up_recv(&m, 20 * MS) != -ETIMEDOUT)
		PFAIL("an extra message arrived: %#" PRIx64, m.word);
}

static void flood_sender(void *arg)
{
	struct sender_arg *a = arg;
	if (up_scheduler() != 0)
		atomic_fetch_add(&a->f->senders_wrong_sched, 1);
	send_all(a->f, a->idx, 1);
}

static void flood_main(void *arg)
{
	struct flood *f = arg;
	static struct sender_arg sa[SENDERS];
	struct up_spawn_opts o = spawn_on(1);
	f->receiver = up_spawn_opt(flood_receiver, f, &o);
	if (f->receiver <= 0) {
		PFAIL("spawn receiver: %" PRId64, f->receiver);
		return;
	}
	o = spawn_on(0);
	for (int i = 0; i < SENDERS; i++) {
		sa[i] = (struct sender_arg){ f, i };
		PCHECK(up_spawn_opt(flood_sender, &sa[i], &o) > 0);
	}
}

static void check_flood(struct flood *f, const char *what)
{
	double secs = (double)(f->t_end - f->t_start) / 1e9;
	print_message("  %s: %ld messages in %.3f s (%.1f M/s)\n", what, f->received,
		      secs, secs > 0 ? (double)f->received / secs / 1e6 : 0.0);
	assert_no_pfail();
	assert_int_equal(atomic_load(&f->send_errors), 0);
	assert_int_equal(f->received, TOTAL);
	assert_int_equal(f->bad_word, 0);
	assert_int_equal(f->out_of_order, 0);
	for (int i = 0; i < SENDERS; i++)
		assert_int_equal(f->next[i], PER_SENDER);
}

static void test_cross_scheduler_processes(void **state)
{
	(void)state;
	struct flood *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(run_main(flood_main, f, 2), 0);
	assert_int_equal(f->receiver_sched, 1);
	assert_int_equal(atomic_load(&f->senders_wrong_sched), 0);
	check_flood(f, "8 processes on scheduler 0 -> 1 on scheduler 1");
	free(f);
}

static void *flood_thread(void *arg)
{
	struct sender_arg *a = arg;
	if (thread_wait_flag(&a->f->ready) != 0) {
		PFAIL("receiver never published");
		return NULL;
	}
	send_all(a->f, a->idx, 0);
	return NULL;
}

static void flood_ext_main(void *arg)
{
	struct flood *f = arg;
	struct up_spawn_opts o = spawn_on(1);
	f->receiver = up_spawn_opt(flood_receiver, f, &o);
	PCHECK(f->receiver > 0);
	atomic_store(&f->ready, 1);
}

static void test_cross_thread_senders(void **state)
{
	(void)state;
	struct flood *f = calloc(1, sizeof *f);
	struct sender_arg sa[SENDERS];
	pthread_t t[SENDERS];
	assert_non_null(f);
	for (int i = 0; i < SENDERS; i++) {
		sa[i] = (struct sender_arg){ f, i };
		assert_int_equal(pthread_create(&t[i], NULL, flood_thread, &sa[i]), 0);
	}
	int rc = run_main(flood_ext_main, f, 2);
	for (int i = 0; i < SENDERS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(f->receiver_sched, 1);
	check_flood(f, "8 plain threads -> 1 process");
	free(f);
}

/* -------------------------------------------------------- priorities */

#define LOG_MAX 32
struct prio {
	/* what the receiver saw */
	int n;
	unsigned mbox[LOG_MAX];
	uint64_t word[LOG_MAX];
	long len_at_start[UP_MAX_MAILBOXES];
	long len_after[UP_MAX_MAILBOXES];
	int rc_after;
	/* setup */
	struct up_spawn_opts so;
	unsigned to[LOG_MAX];
	uint64_t what[LOG_MAX];
	int nsend;
	int send_rc[LOG_MAX];
	int from;        /* >= 0: use up_recv_from(from) for `nfrom` receives */
	int nfrom;
};

static void prio_receiver(void *arg)
{
	struct prio *p = arg;
	struct up_msg m;
	for (unsigned i = 0; i < p->so.mailboxes; i++)
		p->len_at_start[i] = up_mailbox_len(i);
	if (p->from >= 0) {
		for (int i = 0; i < p->nfrom; i++) {
			if (up_recv_from((unsigned)p->from, &m, 0) != 0) {
				PFAIL("up_recv_from(%d) #%d failed", p->from, i);
				break;
			}
			p->mbox[p->n] = m.mailbox;
			p->word[p->n++] = m.word;
		}
		/* mailbox drained, others untouched */
		p->rc_after = up_recv_from((unsigned)p->from, &m, 0);
		for (unsigned i = 0; i < p->so.mailboxes; i++)
			p->len_after[i] = up_mailbox_len(i);
	}
	while (p->n < LOG_MAX && up_recv(&m, 0) == 0) {
		p->mbox[p->n] = m.mailbox;
		p->word[p->n++] = m.word;
	}
}

static void prio_main(void *arg)
{
	struct prio *p = arg;
	/* The receiver runs only after main blocks: everything is queued
	 * before it first looks. */
	up_pid r = up_spawn_opt(prio_receiver, p, &p->so);
	if (r <= 0) {
		PFAIL("spawn: %" PRId64, r);
		return;
	}
	for (int i = 0; i < p->nsend; i++)
		p->send_rc[i] = up_send_word_to(r, p->to[i], p->what[i]);
	proc_wait_exit(r);
}

static void prio_setup(struct prio *p, unsigned mailboxes)
{
	memset(p, 0, sizeof *p);
	p->so = spawn_opts();
	p->so.mailboxes = mailboxes;
	p->from = -1;
}

static void prio_send(struct prio *p, unsigned to, uint64_t what)
{
	p->to[p->nsend] = to;
	p->what[p->nsend++] = what;
}

static void prio_run(struct prio *p)
{
	RUN_OK(prio_main, p, 1);
	for (int i = 0; i < p->nsend; i++)
		assert_int_equal(p->send_rc[i], 0);
}

static void expect_seq(struct prio *p, int n, const unsigned *mb, const uint64_t *w)
{
	assert_int_equal(p->n, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(p->mbox[i], mb[i]);
		assert_int_equal(p->word[i], w[i]);
	}
}

static void test_priority_default(void **state)
{
	(void)state;
	struct prio p;
	prio_setup(&p, 3);
	for (uint64_t i = 0; i < 5; i++)
		prio_send(&p, 0, 100 + i);
	prio_send(&p, 2, 200);
	prio_send(&p, 1, 150);
	prio_send(&p, 2, 201);
	prio_run(&p);
	assert_int_equal(p.len_at_start[0], 5);
	assert_int_equal(p.len_at_start[1], 1);
	assert_int_equal(p.len_at_start[2], 2);
	static const unsigned mb[] = { 2, 2, 1, 0, 0, 0, 0, 0 };
	static const uint64_t w[] = { 200, 201, 150, 100, 101, 102, 103, 104 };
	expect_seq(&p, 8, mb, w);
}

static void test_priority_custom(void **state)
{
	(void)state;
	struct prio p;
	/* mailbox 0 highest, then 2, then 1 */
	prio_setup(&p, 3);
	p.so.flags = UP_SPAWN_PRIORITIES;
	p.so.priorities[0] = 5;
	p.so.priorities[1] = 1;
	p.so.priorities[2] = 3;
	prio_send(&p, 1, 10);
	prio_send(&p, 2, 20);
	prio_send(&p, 0, 30);
	prio_send(&p, 1, 11);
	prio_send(&p, 0, 31);
	prio_run(&p);
	static const unsigned mb[] = { 0, 0, 2, 1, 1 };
	static const uint64_t w[] = { 30, 31, 20, 10, 11 };
	expect_seq(&p, 5, mb, w);

	/* ties: the lower index first; negative priorities allowed */
	prio_setup(&p, 4);
	p.so.flags = UP_SPAWN_PRIORITIES;
	p.so.priorities[0] = -1;
	p.so.priorities[1] = 7;
	p.so.priorities[2] = 7;
	p.so.priorities[3] = -9;
	prio_send(&p, 3, 1);
	prio_send(&p, 2, 2);
	prio_send(&p, 0, 3);
	prio_send(&p, 1, 4);
	prio_send(&p, 2, 5);
	prio_run(&p);
	static const unsigned mb2[] = { 1, 2, 2, 0, 3 };
	static const uint64_t w2[] = { 4, 2, 5, 3, 1 };
	expect_seq(&p, 5, mb2, w2);

	/* without UP_SPAWN_PRIORITIES the priorities array is ignored */
	prio_setup(&p, 2);
	p.so.priorities[0] = 10;
	p.so.priorities[1] = 0;
	prio_send(&p, 0, 1);
	prio_send(&p, 1, 2);
	prio_run(&p);
	static const unsigned mb3[] = { 1, 0 };
	static const uint64_t w3[] = { 2, 1 };
	expect_seq(&p, 2, mb3, w3);
}

static void test_recv_from(void **state)
{
	(void)state;
	struct prio p;
	prio_setup(&p, 3);
	prio_send(&p, 0, 1);
	prio_send(&p, 1, 2);
	prio_send(&p, 2, 3);
	prio_send(&p, 1, 4);
	prio_send(&p, 0, 5);
	prio_send(&p, 1, 6);
	p.from = 1;
	p.nfrom = 3;
	prio_run(&p);
	assert_int_equal(p.len_at_start[0], 2);
	assert_int_equal(p.len_at_start[1], 3);
	assert_int_equal(p.len_at_start[2], 1);
	assert_int_equal(p.rc_after, -ETIMEDOUT);
	assert_int_equal(p.len_after[0], 2);
	assert_int_equal(p.len_after[1], 0);
	assert_int_equal(p.len_after[2], 1);
	/* FIFO from mailbox 1, then the rest by priority */
	static const unsigned mb[] = { 1, 1, 1, 2, 0, 0 };
	static const uint64_t w[] = { 2, 4, 6, 3, 1, 5 };
	expect_seq(&p, 6, mb, w);
}

/* ------------------------------------------------------- argument checks */

struct margs {
	/* sends to a process with 3 mailboxes */
	int sendto_3, sendto_max, sendto_huge, sendto_2;
	/* checks by that process on itself */
	int c_from_3, c_from_huge, c_from_null;
	long c_len_3, c_len_huge, c_len_2;
	unsigned c_got_mbox;
	uint64_t c_got_word;
	/* checks by main (1 mailbox) on itself, with one message waiting */
	int send_self;
	int recv_null, recv_null_inf, recv_from_null, recv_neg5, recv_neg2, recv_min;
	int recv_from_neg5, recv_from_1;
	long len1, len0_before, len0_after;
	int recv_rc;
	uint64_t recv_word;
	unsigned recv_mbox;
	int recv_from_rc_empty;
};

static void margs_child(void *arg)
{
	struct margs *a = arg;
	struct up_msg m;
	a->c_from_3 = up_recv_from(3, &m, 0);
	a->c_from_huge = up_recv_from(UINT32_MAX, &m, 0);
	a->c_from_null = up_recv_from(2, NULL, 0);
	a->c_len_3 = up_mailbox_len(3);
	a->c_len_huge = up_mailbox_len(UINT32_MAX);
	if (up_recv_from(2, &m, WAIT_NS) == 0) {
		a->c_got_mbox = m.mailbox;
		a->c_got_word = m.word;
	} else {
		PFAIL("child: nothing arrived in mailbox 2");
	}
	a->c_len_2 = up_mailbox_len(2);
}

static void margs_main(void *arg)
{
	struct margs *a = arg;
	struct up_msg m;
	struct up_spawn_opts o = spawn_opts();
	o.mailboxes = 3;
	up_pid c = up_spawn_opt(margs_child, a, &o);
	if (c <= 0) {
		PFAIL("spawn: %" PRId64, c);
		return;
	}
	a->sendto_3 = up_send_word_to(c, 3, 1);
	a->sendto_max = up_send_word_to(c, UP_MAX_MAILBOXES, 1);
	a->sendto_huge = up_send_word_to(c, UINT32_MAX, 1);
	up_yield(); /* the child does its checks first, then waits */
	a->sendto_2 = up_send_word_to(c, 2, 77);

	a->send_self = up_send_word(up_self(), 0x5e1f);
	a->len0_before = up_mailbox_len(0);
	a->recv_null = up_recv(NULL, 0);
	a->recv_null_inf = up_recv(NULL, UP_INFINITY);
	a->recv_from_null = up_recv_from(0, NULL, 0);
	a->recv_neg5 = up_recv(&m, -5);
	a->recv_neg2 = up_recv(&m, -2);
	a->recv_min = up_recv(&m, INT64_MIN);
	a->recv_from_neg5 = up_recv_from(0, &m, -5);
	a->recv_from_1 = up_recv_from(1, &m, 0);
	a->len1 = up_mailbox_len(1);
	/* None of the refused calls took the waiting message. */
	a->len0_after = up_mailbox_len(0);
	a->recv_rc = up_recv(&m, 0);
	a->recv_word = m.word;
	a->recv_mbox = m.mailbox;
	a->recv_from_rc_empty = up_recv_from(0, &m, 0);
	proc_wait_exit(c);
}

static void test_mailbox_arg_checks(void **state)
{
	(void)state;
	struct margs a;
	memset(&a, 0x55, sizeof a);
	RUN_OK(margs_main, &a, 1);
	assert_int_equal(a.sendto_3, -EINVAL);
	assert_int_equal(a.sendto_max, -EINVAL);
	assert_int_equal(a.sendto_huge, -EINVAL);
	assert_int_equal(a.sendto_2, 0);
	assert_int_equal(a.c_from_3, -EINVAL);
	assert_int_equal(a.c_from_huge, -EINVAL);
	assert_int_equal(a.c_from_null, -EINVAL);
	assert_int_equal(a.c_len_3, -EINVAL);
	assert_int_equal(a.c_len_huge, -EINVAL);
	assert_int_equal(a.c_got_mbox, 2);
	assert_int_equal(a.c_got_word, 77);
	assert_int_equal(a.c_len_2, 0);

	assert_int_equal(a.send_self, 0);
	assert_int_equal(a.len0_before, 1);
	assert_int_equal(a.recv_null, -EINVAL);
	assert_int_equal(a.recv_null_inf, -EINVAL);
	assert_int_equal(a.recv_from_null, -EINVAL);
	assert_int_equal(a.recv_neg5, -EINVAL);
	assert_int_equal(a.recv_neg2, -EINVAL);
	assert_int_equal(a.recv_min, -EINVAL);
	assert_int_equal(a.recv_from_neg5, -EINVAL);
	assert_int_equal(a.recv_from_1, -EINVAL);
	assert_int_equal(a.len1, -EINVAL);
	assert_int_equal(a.len0_after, 1);
	assert_int_equal(a.recv_rc, 0);
	assert_int_equal(a.recv_word, 0x5e1f);
	assert_int_equal(a.recv_mbox, 0);
	assert_int_equal(a.recv_from_rc_empty, -ETIMEDOUT);
}

/* ------------------------------------------------------------- timeouts */

#define SLACK (200 * MS)
struct timeouts {
	int rc20;
	int64_t el20;
	int rc0;
	int64_t el0;
	int rc0msg;
	uint64_t w0msg;
	int rc_from20;
	int64_t el_from20;
	/* a message beats the deadline */
	int rc_beat;
	int64_t el_beat;
	uint64_t w_beat;
	int rc_after_beat;
	int64_t el_after_beat;
	/* several short timeouts in a row */
	int64_t el_series;
	int series_bad;
	/* cross-scheduler wake of a timed wait */
	int rc_x;
	int64_t el_x;
	int x_sched;
	up_pid main_pid;
};

static void late_sender(void *arg)
{
	struct timeouts *t = arg;
	proc_pause_ns(30 * MS);
	PCHECK_EQ(up_send_word(t->main_pid, 4242), 0);
}

static void x_waiter(void *arg)
{
	struct timeouts *t = arg;
	struct up_msg m;
	t->x_sched = up_scheduler();
	int64_t t0 = now_ns();
	t->rc_x = up_recv(&m, 2000 * MS);
	t->el_x = now_ns() - t0;
}

static void timeouts_main(void *arg)
{
	struct timeouts *t = arg;
	struct up_msg m;
	int64_t t0;
	t->main_pid = up_self();

	t0 = now_ns();
	t->rc20 = up_recv(&m, 20 * MS);
	t->el20 = now_ns() - t0;

	t0 = now_ns();
	t->rc0 = up_recv(&m, 0);
	t->el0 = now_ns() - t0;

	PCHECK_EQ(up_send_word(up_self(), 9), 0);
	t->rc0msg = up_recv(&m, 0);
	t->w0msg = m.word;

	t0 = now_ns();
	t->rc_from20 = up_recv_from(0, &m, 20 * MS);
	t->el_from20 = now_ns() - t0;

	/* A message at ~30 ms wins over a 300 ms deadline; then a 500 ms
	 * wait must last its full 500 ms (the old timer, due at 300 ms, must
	 * not end it early). */
	PCHECK(up_spawn(late_sender, t) > 0);
	t0 = now_ns();
	t->rc_beat = up_recv(&m, 300 * MS);
	t->el_beat = now_ns() - t0;
	t->w_beat = m.word;
	t0 = now_ns();
	t->rc_after_beat = up_recv(&m, 500 * MS);
	t->el_after_beat = now_ns() - t0;

	t0 = now_ns();
	for (int i = 0; i < 5; i++)
		if (up_recv(&m, 10 * MS) != -ETIMEDOUT)
			t->series_bad++;
	t->el_series = now_ns() - t0;

	/* A timed waiter on scheduler 1 woken by main on scheduler 0. */
	struct up_spawn_opts o = spawn_on(1);
	up_pid w = up_spawn_opt(x_waiter, t, &o);
	PCHECK(w > 0);
	proc_pause_ns(20 * MS);
	PCHECK_EQ(up_send_word(w, 1), 0);
	proc_wait_exit(w);
}

static void test_recv_timeouts(void **state)
{
	(void)state;
	struct timeouts t;
	memset(&t, 0, sizeof t);
	struct up_run_opts o = run_opts(2);
	assert_int_equal(up_run(timeouts_main, &t, &o), 0);
	assert_no_pfail();
	print_message("  20 ms wait took %.2f ms, 0 wait %.3f ms, 5x10 ms %.2f ms\n",
		      t.el20 / 1e6, t.el0 / 1e6, t.el_series / 1e6);

	assert_int_equal(t.rc20, -ETIMEDOUT);
	assert_true(t.el20 >= 20 * MS);
	assert_true(t.el20 < 20 * MS + SLACK);

	assert_int_equal(t.rc0, -ETIMEDOUT);
	assert_true(t.el0 < 20 * MS);
	assert_int_equal(t.rc0msg, 0);
	assert_int_equal(t.w0msg, 9);

	assert_int_equal(t.rc_from20, -ETIMEDOUT);
	assert_true(t.el_from20 >= 20 * MS);
	assert_true(t.el_from20 < 20 * MS + SLACK);

	assert_int_equal(t.rc_beat, 0);
	assert_int_equal(t.w_beat, 4242);
	assert_true(t.el_beat >= 25 * MS);
	assert_true(t.el_beat < 300 * MS);
	assert_int_equal(t.rc_after_beat, -ETIMEDOUT);
	assert_true(t.el_after_beat >= 500 * MS);
	assert_true(t.el_after_beat < 500 * MS + SLACK);

	assert_int_equal(t.series_bad, 0);
	assert_true(t.el_series >= 50 * MS);

	assert_int_equal(t.x_sched, 1);
	assert_int_equal(t.rc_x, 0);
	assert_true(t.el_x < 1000 * MS);
}

/* ----------------------------------------------- blocked costs no CPU */

struct idle {
	up_pid waiter;
	atomic_int blocked;
	int rc;
	uint64_t word;
	int64_t cpu_ns;
	int64_t wall_ns;
};

static void idle_waiter(void *arg)
{
	struct idle *d = arg;
	struct up_msg m;
	atomic_store(&d->blocked, 1);
	d->rc = up_recv(&m, UP_INFINITY);
	d->word = m.word;
}

static void idle_main(void *arg)
{
	struct idle *d = arg;
	d->waiter = up_spawn(idle_waiter, d);
	PCHECK(d->waiter > 0);
	/* main ends: the runtime now holds one parked process only */
}

static void *idle_thread(void *arg)
{
	struct idle *d = arg;
	if (thread_wait_flag(&d->blocked) != 0) {
		PFAIL("waiter never started");
		up_shutdown();
		return NULL;
	}
	thread_sleep_ns(50 * MS); /* let everything settle and park */
	int64_t c0 = process_cpu_ns(), w0 = now_ns();
	thread_sleep_ns(200 * MS);
	d->cpu_ns = process_cpu_ns() - c0;
	d->wall_ns = now_ns() - w0;
	PCHECK_EQ(up_send_word(d->waiter, 31337), 0);
	return NULL;
}

static void idle_run(unsigned spin_us, const char *what)
{
	struct idle d;
	pthread_t t;
	memset(&d, 0, sizeof d);
	struct up_run_opts o = run_opts(0); /* one scheduler per CPU */
	o.spin_us = spin_us;
	assert_int_equal(pthread_create(&t, NULL, idle_thread, &d), 0);
	int rc = up_run(idle_main, &d, &o);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();
	print_message("  %s: %.2f ms CPU over %.1f ms with one process parked\n", what,
		      d.cpu_ns / 1e6, d.wall_ns / 1e6);
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.word, 31337);
	/* A spinning scheduler would use ~200 ms per CPU here. */
	assert_true(d.cpu_ns < 30 * MS);
}

static void test_blocked_costs_no_cpu(void **state)
{
	(void)state;
	if (UPT_VALGRIND)
		skip(); /* a sleeping scheduler wakes every ms there (scheduler.c) */
	idle_run(UP_NO_SPIN, "spin_us=UP_NO_SPIN");
	idle_run(0, "default spin");
}

/* ------------------------------------------------- send without memory */

/*
 * Flood a process that does not read its mailbox 0 while the address space
 * is capped: the sends must end in -ENOMEM, not a crash.  Child OS process
 * so the cap does not leak.
 */
struct snomem {
	int rc;
	long sent;
	int setup_failed;
	int after_rc;
};

static void snomem_sink(void *arg)
{
	struct up_msg m;
	(void)arg;
	/* wait on mailbox 1 only; mailbox 0 fills up */
	up_recv_from(1, &m, UP_INFINITY);
}

static void snomem_main(void *arg)
{
	struct snomem *s = arg;
	struct up_spawn_opts o = spawn_opts();
	o.mailboxes = 2;
	up_pid p = up_spawn_opt(snomem_sink, NULL, &o);
	up_yield();
	long long vs = vm_size_bytes();
	struct rlimit rl = { .rlim_cur = (rlim_t)vs + (64 << 20), .rlim_max = RLIM_INFINITY };
	if (p <= 0 || vs < 0 || setrlimit(RLIMIT_AS, &rl) != 0) {
		s->setup_failed = 1;
		up_shutdown();
		return;
	}
	for (long i = 0; i < 50000000; i++) {
		int rc = up_send_word(p, (uint64_t)i);
		if (rc != 0) {
			s->rc = rc;
			break;
		}
		s->sent++;
	}
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	/* with memory back, sending works again */
	s->after_rc = up_send_word_to(p, 1, 1);
}

static int send_enomem_body(void *arg)
{
	struct snomem *s = arg;
	int rc = run_main(snomem_main, s, 1);
	if (s->setup_failed)
		return 100;
	if (rc != 0)
		return 101;
	if (s->rc != -ENOMEM)
		return 102;
	if (s->after_rc != 0)
		return 103;
	return 0;
}

static void test_send_enomem(void **state)
{
	(void)state;
	if (UPT_SANITIZED)
		skip(); /* AddressSanitizer and TSan cannot run under RLIMIT_AS */
	struct snomem *s = shared_alloc(sizeof *s);
	assert_non_null(s);
	int rc = fork_run(send_enomem_body, s, 60);
	print_message("  %ld sends within +64 MiB of address space, then %d\n", s->sent, s->rc);
	switch (rc) {
	case 101:
		fail_msg("up_run failed");
	case 102:
		fail_msg("sends without memory did not end in -ENOMEM");
	case 103:
		fail_msg("send failed after memory came back");
	default:
		assert_fork_ok(rc, 60, "sending under RLIMIT_AS");
	}
}

/* ------------------------------------------------- selective receive */

/*
 * up_recv_match and up_recv_mark: skipped messages stay in place and in
 * order; a match waits for a later message and looks at each message once
 * (match calls are counted); a timeout leaves everything; with
 * UP_RECV_AFTER_MARK only messages after the mark are looked at; argument
 * checks; and the call/reply pattern with 10,000 unrelated messages queued
 * costs O(1) match calls per call.
 */

struct matcher {
	long calls;
	uint64_t want;      /* match_word: this word; match_hi: this high byte */
	up_term ref;        /* match_reply */
};

static int match_word(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	c->calls++;
	return m->kind == UP_MSG_WORD && m->word == c->want;
}

static int match_even(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	c->calls++;
	return m->kind == UP_MSG_WORD && m->word % 2 == 0;
}

static int match_any(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	(void)m;
	c->calls++;
	return 1;
}

/* words tagged (tag << 8 | seq) */
static int match_hi(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	c->calls++;
	return m->kind == UP_MSG_WORD && m->word >> 8 == c->want;
}

/* a term {Atom, _} with Atom == c->ref */
static int match_tag(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	up_term e;
	c->calls++;
	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 2 &&
	       up_tuple_elem(m->term, 0, &e) == 0 && e == c->ref;
}

/* Receive everything left (timeout 0) into w[]; returns the count. */
static int drain_words(uint64_t *w, int max)
{
	struct up_msg m;
	int n = 0;
	while (n < max && up_recv(&m, 0) == 0)
		w[n++] = m.kind == UP_MSG_WORD ? m.word : 0xdead;
	return n;
}

#define EXPECT_WORDS(got, n, ...)                                           \
	do {                                                                \
		const uint64_t want_[] = { __VA_ARGS__ };                   \
		int nw_ = (int)(sizeof want_ / sizeof want_[0]);            \
		if ((n) != nw_) {                                           \
			PFAIL("%d messages left, want %d", (n), nw_);       \
			break;                                              \
		}                                                           \
		for (int i_ = 0; i_ < nw_; i_++)                            \
			if ((got)[i_] != want_[i_])                         \
				PFAIL("message %d: %" PRIu64 ", want %" PRIu64, i_, \
				      (got)[i_], want_[i_]);                \
	} while (0)

static void match_order_main(void *arg)
{
	(void)arg;
	struct matcher c = { 0 };
	struct up_msg m;
	uint64_t w[32];
	int n;

	for (uint64_t i = 1; i <= 10; i++)
		PCHECK_EQ(up_send_word(up_self(), i), 0);
	c.want = 5;
	PCHECK_EQ(up_recv_match(match_word, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 5);
	PCHECK_EQ(m.kind, UP_MSG_WORD);
	PCHECK_EQ(m.mailbox, 0);
	PCHECK_EQ(c.calls, 5); /* 1..5, each once */
	PCHECK_EQ(up_mailbox_len(0), 9);
	/* the oldest match first */
	PCHECK_EQ(up_recv_match(match_even, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 2);
	PCHECK_EQ(up_recv_match(match_even, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 4);
	/* the skipped ones, in order */
	n = drain_words(w, 32);
	EXPECT_WORDS(w, n, 1, 3, 6, 7, 8, 9, 10);

	/* terms and words mixed: match a term, the rest stays in order */
	up_term a = up_atom("a"), b = up_atom("b");
	PCHECK_EQ(up_send(up_self(), up_tuplev(2, a, up_int(1))), 0);
	PCHECK_EQ(up_send_word(up_self(), 100), 0);
	PCHECK_EQ(up_send(up_self(), up_tuplev(2, b, up_binary("2", 1))), 0);
	PCHECK_EQ(up_send_word(up_self(), 101), 0);
	PCHECK_EQ(up_send(up_self(), up_tuplev(2, b, up_int(3))), 0);
	c.ref = b;
	c.calls = 0;
	PCHECK_EQ(up_recv_match(match_tag, &c, &m, 0, 0), 0);
	PCHECK_EQ(c.calls, 3);
	PCHECK_EQ(m.kind, UP_MSG_TERM);
	PCHECK(up_equal(m.term, up_tuplev(2, b, up_binary("2", 1))));
	PCHECK_EQ(up_msg_free(&m), 0);
	PCHECK_EQ(up_recv(&m, 0), 0);
	PCHECK(m.kind == UP_MSG_TERM && up_equal(m.term, up_tuplev(2, a, up_int(1))));
	up_msg_free(&m);
	PCHECK(up_recv(&m, 0) == 0 && m.kind == UP_MSG_WORD && m.word == 100);
	PCHECK(up_recv(&m, 0) == 0 && m.kind == UP_MSG_WORD && m.word == 101);
	PCHECK(up_recv(&m, 0) == 0 && m.kind == UP_MSG_TERM &&
	       up_equal(m.term, up_tuplev(2, b, up_int(3))));
	up_msg_free(&m);
	PCHECK_EQ(up_recv(&m, 0), -ETIMEDOUT);
}

/* Two mailboxes: mailbox 1 (higher priority by default) is looked at
 * first. */
static void match_mbox_proc(void *arg)
{
	(void)arg;
	struct matcher c = { 0 };
	struct up_msg m;
	uint64_t w[8];
	PCHECK_EQ(up_mailbox_len(0), 2);
	PCHECK_EQ(up_mailbox_len(1), 2);
	PCHECK_EQ(up_recv_match(match_even, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 4);
	PCHECK_EQ(m.mailbox, 1);
	PCHECK_EQ(up_recv_match(match_any, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 3);
	PCHECK_EQ(m.mailbox, 1);
	PCHECK_EQ(up_recv_match(match_even, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, 2);
	PCHECK_EQ(m.mailbox, 0);
	int n = drain_words(w, 8);
	EXPECT_WORDS(w, n, 1);
}

static void match_mbox_main(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = spawn_opts();
	o.mailboxes = 2;
	up_pid p = up_spawn_opt(match_mbox_proc, NULL, &o);
	PCHECK_EQ(up_send_word_to(p, 0, 1), 0);
	PCHECK_EQ(up_send_word_to(p, 0, 2), 0);
	PCHECK_EQ(up_send_word_to(p, 1, 3), 0);
	PCHECK_EQ(up_send_word_to(p, 1, 4), 0);
	proc_wait_exit(p);
}

static void test_recv_match_keeps_order(void **state)
{
	(void)state;
	RUN_OK(match_order_main, NULL, 1);
	RUN_OK(match_mbox_main, NULL, 1);
}

/* ------------------------------------------- waiting for a later match */

struct mwait {
	up_pid receiver;
	int sched;          /* of the late sender */
	int rc;
	uint64_t got;
	long calls;
	int64_t waited;
	int n;
	uint64_t rest[16];
};

static void late_words(void *arg)
{
	struct mwait *w = arg;
	proc_pause_ns(20 * MS);
	PCHECK_EQ(up_send_word(w->receiver, 10), 0);
	proc_pause_ns(10 * MS);
	PCHECK_EQ(up_send_word(w->receiver, 11), 0);
	proc_pause_ns(10 * MS);
	PCHECK_EQ(up_send_word(w->receiver, 42), 0);
	PCHECK_EQ(up_send_word(w->receiver, 12), 0);
}

static void mwait_main(void *arg)
{
	struct mwait *w = arg;
	struct matcher c = { .want = 42 };
	struct up_msg m;
	w->receiver = up_self();
	for (uint64_t i = 1; i <= 3; i++)
		PCHECK_EQ(up_send_word(up_self(), i), 0);
	struct up_spawn_opts o = spawn_on(w->sched);
	PCHECK(up_spawn_opt(late_words, w, &o) > 0);
	int64_t t0 = now_ns();
	w->rc = up_recv_match(match_word, &c, &m, WAIT_NS, 0);
	w->waited = now_ns() - t0;
	w->got = m.word;
	w->calls = c.calls;
	proc_pause_ns(20 * MS); /* 12 is in */
	w->n = drain_words(w->rest, 16);
}

static void test_recv_match_waits(void **state)
{
	(void)state;
	for (int sched = 0; sched < 2; sched++) {
		struct mwait w;
		memset(&w, 0, sizeof w);
		w.sched = sched;
		RUN_OK(mwait_main, &w, 2);
		print_message("  late sender on scheduler %d: matched after %.1f ms, %ld match calls\n",
			      sched, w.waited / 1e6, w.calls);
		assert_int_equal(w.rc, 0);
		assert_int_equal(w.got, 42);
		assert_true(w.waited >= 35 * MS);
		/* 1, 2, 3, 10, 11, 42: each looked at once, 12 not at all */
		assert_int_equal(w.calls, 6);
		assert_int_equal(w.n, 6);
		static const uint64_t rest[] = { 1, 2, 3, 10, 11, 12 };
		for (int i = 0; i < 6; i++)
			assert_int_equal(w.rest[i], rest[i]);
	}
}

/* ------------------------------------------------------------ timeout */

struct mtime {
	int rc0, rc50, rc_inf_after;
	long calls0, calls50;
	int64_t el0, el50;
	long len;
	int n;
	uint64_t rest[8];
};

static void mtime_main(void *arg)
{
	struct mtime *t = arg;
	struct matcher c = { .want = 99 };
	struct up_msg m;
	int64_t t0;
	for (uint64_t i = 1; i <= 3; i++)
		PCHECK_EQ(up_send_word(up_self(), i), 0);
	t0 = now_ns();
	t->rc0 = up_recv_match(match_word, &c, &m, 0, 0);
	t->el0 = now_ns() - t0;
	t->calls0 = c.calls;
	c.calls = 0;
	t0 = now_ns();
	t->rc50 = up_recv_match(match_word, &c, &m, 50 * MS, 0);
	t->el50 = now_ns() - t0;
	t->calls50 = c.calls;
	t->len = up_mailbox_len(0);
	t->n = drain_words(t->rest, 8);
}

static void test_recv_match_timeout(void **state)
{
	(void)state;
	struct mtime t;
	memset(&t, 0, sizeof t);
	RUN_OK(mtime_main, &t, 1);
	assert_int_equal(t.rc0, -ETIMEDOUT);
	assert_true(t.el0 < 20 * MS);
	assert_int_equal(t.calls0, 3);
	assert_int_equal(t.rc50, -ETIMEDOUT);
	assert_true(t.el50 >= 50 * MS);
	assert_true(t.el50 < 50 * MS + SLACK);
	assert_int_equal(t.calls50, 3); /* the timer's wake-up rescans nothing */
	assert_int_equal(t.len, 3);
	assert_int_equal(t.n, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(t.rest[i], (uint64_t)i + 1);
}

/* ---------------------------------------------------------------- mark */

struct mmark {
	up_pid receiver;
	atomic_int sent;
};

static void pre_mark_sender(void *arg)
{
	struct mmark *k = arg;
	PCHECK_EQ(up_send_word(k->receiver, 7 << 8 | 9), 0);
	atomic_store(&k->sent, 1);
}

#define TAG(t, s) ((uint64_t)(t) << 8 | (s))

static void mark_main2(void *arg)
{
	struct mmark *k = arg;
	struct matcher c = { .want = 7 };
	struct up_msg m;
	uint64_t w[16];
	int n;
	up_pid self = up_self();

	/* a message before the mark is ignored, one after it is taken */
	PCHECK_EQ(up_send_word(self, TAG(7, 1)), 0);
	PCHECK_EQ(up_recv_mark(), 0);
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, UP_RECV_AFTER_MARK), -ETIMEDOUT);
	PCHECK_EQ(up_send_word(self, TAG(8, 1)), 0);
	PCHECK_EQ(up_send_word(self, TAG(7, 2)), 0);
	c.calls = 0;
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(7, 2));
	PCHECK_EQ(c.calls, 2); /* (8,1) and (7,2) only */
	/* without the flag the older one is found */
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, TAG(7, 1));
	n = drain_words(w, 16);
	EXPECT_WORDS(w, n, TAG(8, 1));

	/* a mark on an empty mailbox: everything after counts */
	PCHECK_EQ(up_recv_mark(), 0);
	PCHECK_EQ(up_send_word(self, TAG(7, 3)), 0);
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(7, 3));

	/* the marked message is taken: the mark moves to its older
	 * neighbour, so a later message is still "after" and an older one
	 * still "before" */
	PCHECK_EQ(up_send_word(self, TAG(1, 1)), 0); /* A */
	PCHECK_EQ(up_send_word(self, TAG(2, 1)), 0); /* B */
	PCHECK_EQ(up_recv_mark(), 0);                /* at B */
	c.want = 2;
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, 0), 0);
	PCHECK_EQ(m.word, TAG(2, 1));
	PCHECK_EQ(up_send_word(self, TAG(3, 1)), 0); /* C */
	c.calls = 0;
	PCHECK_EQ(up_recv_match(match_any, &c, &m, 0, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(3, 1));
	PCHECK_EQ(c.calls, 1);
	/* the head taken while it is the mark */
	PCHECK_EQ(up_recv_mark(), 0);                /* at A, the only one */
	PCHECK_EQ(up_recv(&m, 0), 0);
	PCHECK_EQ(m.word, TAG(1, 1));
	PCHECK_EQ(up_send_word(self, TAG(4, 1)), 0);
	PCHECK_EQ(up_recv_match(match_any, &c, &m, 0, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(4, 1));
	PCHECK_EQ(up_mailbox_len(0), 0);

	/* a message from another scheduler that arrived before the mark (still
	 * in the inbox when the mark is made) counts as before */
	k->receiver = self;
	struct up_spawn_opts o = spawn_on(1);
	PCHECK(up_spawn_opt(pre_mark_sender, k, &o) > 0);
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(&k->sent) && now_ns() < deadline)
		up_yield(); /* not touching the mailbox */
	PCHECK_EQ(up_recv_mark(), 0);
	PCHECK_EQ(up_send_word(self, TAG(5, 1)), 0);
	c.want = 7;
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, 0, UP_RECV_AFTER_MARK), -ETIMEDOUT);
	PCHECK_EQ(up_recv_match(match_any, &c, &m, 0, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(5, 1));
	PCHECK_EQ(up_recv(&m, 0), 0);
	PCHECK_EQ(m.word, TAG(7, 9));
	/* waiting with the flag: a later arrival from the other scheduler */
	atomic_store(&k->sent, 0);
	PCHECK_EQ(up_recv_mark(), 0);
	PCHECK(up_spawn_opt(pre_mark_sender, k, &o) > 0);
	PCHECK_EQ(up_recv_match(match_hi, &c, &m, WAIT_NS, UP_RECV_AFTER_MARK), 0);
	PCHECK_EQ(m.word, TAG(7, 9));
}

static void test_recv_after_mark(void **state)
{
	(void)state;
	struct mmark k;
	memset(&k, 0, sizeof k);
	RUN_OK(mark_main2, &k, 2);
}

/* ------------------------------------------------------ argument checks */

struct margs2 {
	int null_fn, null_msg, flags2, flags_hi, flags_all, neg, min;
	long len_after, calls;
	atomic_int go, done;
	int t_match, t_mark;
};

static void margs2_main(void *arg)
{
	struct margs2 *a = arg;
	struct matcher c = { 0 };
	struct up_msg m;
	PCHECK_EQ(up_send_word(up_self(), 1), 0);
	a->null_fn = up_recv_match(NULL, &c, &m, 0, 0);
	a->null_msg = up_recv_match(match_any, &c, NULL, 0, 0);
	a->flags2 = up_recv_match(match_any, &c, &m, 0, 0x2);
	a->flags_hi = up_recv_match(match_any, &c, &m, 0, 0x80000000u);
	a->flags_all = up_recv_match(match_any, &c, &m, 0, ~0u);
	a->neg = up_recv_match(match_any, &c, &m, -5, 0);
	a->min = up_recv_match(match_any, &c, &m, INT64_MIN, UP_RECV_AFTER_MARK);
	a->len_after = up_mailbox_len(0);
	a->calls = c.calls;
	atomic_store(&a->go, 1);
	int64_t deadline = now_ns() + WAIT_NS;
	while (!atomic_load(&a->done) && now_ns() < deadline)
		up_yield();
}

static void *margs2_thread(void *arg)
{
	struct margs2 *a = arg;
	struct matcher c = { 0 };
	struct up_msg m;
	if (thread_wait_flag(&a->go) == 0) {
		a->t_match = up_recv_match(match_any, &c, &m, 0, 0);
		a->t_mark = up_recv_mark();
	}
	atomic_store(&a->done, 1);
	return NULL;
}

static void test_recv_match_arg_checks(void **state)
{
	(void)state;
	struct margs2 a;
	pthread_t t;
	memset(&a, 0x55, sizeof a);
	atomic_store(&a.go, 0);
	atomic_store(&a.done, 0);
	assert_int_equal(pthread_create(&t, NULL, margs2_thread, &a), 0);
	int rc = run_main(margs2_main, &a, 1);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();
	assert_int_equal(a.null_fn, -EINVAL);
	assert_int_equal(a.null_msg, -EINVAL);
	assert_int_equal(a.flags2, -EINVAL);
	assert_int_equal(a.flags_hi, -EINVAL);
	assert_int_equal(a.flags_all, -EINVAL);
	assert_int_equal(a.neg, -EINVAL);
	assert_int_equal(a.min, -EINVAL);
	assert_int_equal(a.len_after, 1); /* nothing taken */
	assert_int_equal(a.calls, 0);     /* nothing looked at */
	assert_int_equal(a.t_match, -EPERM);
	assert_int_equal(a.t_mark, -EPERM);
	struct up_msg m;
	struct matcher c = { 0 };
	assert_int_equal(up_recv_match(match_any, &c, &m, 0, 0), -EPERM);
	assert_int_equal(up_recv_mark(), -EPERM);
}

/* -------------------------------------- call/reply with a full mailbox */

#define CALLS UPT_SCALE(10000, 10000)
#define JUNK 10000

struct callrun {
	int server_sched;
	up_pid server;
	long calls, wrong, match_calls;
	int64_t ns;
	long junk_left, junk_bad;
};

static void echo_server(void *arg)
{
	(void)arg;
	struct up_msg m;
	for (;;) {
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("echo server: no request");
			return;
		}
		if (m.kind == UP_MSG_WORD)
			return; /* stop */
		up_term from, ref, i;
		up_pid to;
		if (up_tuple_arity(m.term) != 3 || up_tuple_elem(m.term, 0, &from) ||
		    up_tuple_elem(m.term, 1, &ref) || up_tuple_elem(m.term, 2, &i) ||
		    up_get_pid(from, &to)) {
			PFAIL("echo server: bad request");
			return;
		}
		long mk = up_heap_mark();
		if (up_send(to, up_tuplev(2, ref, i)) != 0)
			PFAIL("echo server: reply failed");
		up_heap_reset(mk);
		up_msg_free(&m);
	}
}

static int match_reply(const struct up_msg *m, void *arg)
{
	struct matcher *c = arg;
	up_term r;
	c->calls++;
	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 2 &&
	       up_tuple_elem(m->term, 0, &r) == 0 && up_equal(r, c->ref);
}

static void call_main(void *arg)
{
	struct callrun *r = arg;
	up_pid self = up_self();
	up_term me = up_pid_term(self);
	struct up_spawn_opts o = spawn_on(r->server_sched);
	r->server = up_spawn_opt(echo_server, NULL, &o);

	/* 10,000 unrelated messages: words and {OtherRef, J} terms */
	up_term other = up_make_ref();
	for (long j = 0; j < JUNK; j++) {
		int rc = j % 2 ? up_send_word(self, (uint64_t)j)
			       : up_send(self, up_tuplev(2, other, up_int(j)));
		if (rc)
			PFAIL("junk %ld: %d", j, rc);
	}
	PCHECK_EQ(up_mailbox_len(0), JUNK);

	struct matcher c = { 0 };
	int64_t t0 = now_ns();
	for (long i = 0; i < CALLS; i++) {
		long mk = up_heap_mark();
		struct up_msg m;
		c.ref = up_make_ref();
		PCHECK_EQ(up_recv_mark(), 0);
		if (up_send(r->server, up_tuplev(3, me, c.ref, up_int(i))) != 0) {
			PFAIL("call %ld: send", i);
			break;
		}
		int rc = up_recv_match(match_reply, &c, &m, WAIT_NS, UP_RECV_AFTER_MARK);
		if (rc) {
			PFAIL("call %ld: no reply (%d)", i, rc);
			break;
		}
		up_term e;
		int64_t v;
		if (up_tuple_elem(m.term, 1, &e) || up_get_int(e, &v) || v != i)
			r->wrong++;
		up_msg_free(&m);
		up_heap_reset(mk);
		r->calls++;
	}
	r->ns = now_ns() - t0;
	r->match_calls = c.calls;
	PCHECK_EQ(up_send_word(r->server, 0), 0);
	proc_wait_exit(r->server);

	/* the unrelated messages: all there, in order */
	r->junk_left = up_mailbox_len(0);
	for (long j = 0; j < JUNK; j++) {
		struct up_msg m;
		int64_t v;
		up_term e;
		if (up_recv(&m, 0) != 0) {
			r->junk_bad++;
			break;
		}
		if (j % 2 ? m.kind != UP_MSG_WORD || m.word != (uint64_t)j
			  : m.kind != UP_MSG_TERM || up_tuple_elem(m.term, 1, &e) ||
				    up_get_int(e, &v) || v != j)
			r->junk_bad++;
		up_msg_free(&m);
	}
}

static void test_call_reply_full_mailbox(void **state)
{
	(void)state;
	for (int sched = 0; sched < 2; sched++) {
		struct callrun r;
		memset(&r, 0, sizeof r);
		r.server_sched = sched;
		RUN_OK(call_main, &r, 2);
		print_message("  server on scheduler %d: %ld calls past %d queued messages, %.0f ns per call, %.2f match calls per call\n",
			      sched, r.calls, JUNK, (double)r.ns / (r.calls ? r.calls : 1),
			      (double)r.match_calls / (r.calls ? r.calls : 1));
		assert_int_equal(r.calls, CALLS);
		assert_int_equal(r.wrong, 0);
		/* O(1) per call: the reply is (nearly always) the only message
		 * after the mark; scanning would be 10,000 per call */
		assert_true(r.match_calls < 3L * CALLS);
		assert_int_equal(r.junk_left, JUNK);
		assert_int_equal(r.junk_bad, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_mailbox_arg_checks),
		UPT_TEST(test_priority_default),
		UPT_TEST(test_priority_custom),
		UPT_TEST(test_recv_from),
		UPT_TEST(test_recv_timeouts),
		UPT_TEST(test_blocked_costs_no_cpu),
		UPT_TEST(test_cross_scheduler_processes),
		UPT_TEST(test_cross_thread_senders),
		UPT_TEST(test_send_enomem),
		UPT_TEST(test_recv_match_keeps_order),
		UPT_TEST(test_recv_match_waits),
		UPT_TEST(test_recv_match_timeout),
		UPT_TEST(test_recv_after_mark),
		UPT_TEST(test_recv_match_arg_checks),
		UPT_TEST(test_call_reply_full_mailbox),
	};
	return UPT_RUN("mailbox", tests);
}
