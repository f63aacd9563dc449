/*
 * test_limits.c - resource limits with clear errors: heap_limit (the
 * process ends with reason heap_limit, whichever allocation passes it, and
 * its links and monitors hear that reason), per-mailbox length limits with
 * their policies (UP_MAILBOX_REJECT: -EAGAIN, nothing delivered, exactly
 * once and in order otherwise, from the same scheduler, another scheduler
 * and a foreign thread; UP_MAILBOX_DROP_OLDEST: the newest are kept, memory
 * is trimmed while the receiver is busy, selective receive survives the
 * drops) and the spawn options' checks.  (max_processes and
 * max_message_size: test_proc.c and test_copy.c.)
 */
#include "helpers.h"

/* ------------------------------------------------------------ heap_limit */

enum hl_way { HL_ALLOC, HL_BUILD, HL_PUT, HL_LINKS };

struct hl {
	enum hl_way way;
	up_pid parent;
	int err;            /* what the failing call returned */
	atomic_int after;   /* reached code after the point of death */
};

static void hl_child(void *arg)
{
	struct hl *h = arg;
	static uint8_t big[128 << 10];
	switch (h->way) {
	case HL_ALLOC:
		(void)up_alloc(sizeof big);
		break;
	case HL_BUILD:
		h->err = up_term_error(up_binary(big, sizeof big));
		break;
	case HL_PUT: {
		/* The dictionary copies keys and values: it fills up to the
		 * limit (the value itself is built once). */
		up_term v = up_binary(big, 1024);
		for (int64_t k = 0; h->err == 0; k++)
			h->err = up_put(up_int(k), v);
		break;
	}
	case HL_LINKS:
		/* Monitors of the (living) parent: the table grows until it
		 * passes the limit. */
		for (int i = 0; i < 100000; i++) {
			up_term ref = up_monitor(h->parent);
			if (up_is_bad(ref)) {
				h->err = up_term_error(ref);
				break;
			}
		}
		break;
	}
	/* Builders fail with -ENOMEM; the process ends at its next switch. */
	up_yield();
	atomic_store(&h->after, 1);
}

static void hl_main(void *arg)
{
	(void)arg;
	up_trap_exit(1);
	for (int way = HL_ALLOC; way <= HL_LINKS; way++) {
		for (int sched = 0; sched < 2; sched++) {
			struct hl h = { .way = (enum hl_way)way, .parent = up_self() };
			struct up_spawn_opts o = spawn_on(sched);
			o.flags |= UP_SPAWN_LINK | UP_SPAWN_MONITOR;
			o.heap_limit = 64 << 10;
			up_pid c = up_spawn_opt(hl_child, &h, &o);
			PCHECK(c > 0);
			up_term ref = o.monitor_ref;
			int got_exit = 0, got_down = 0;
			for (int n = 0; n < 2; n++) {
				struct up_msg m;
				if (proc_recv_or_die(&m) != 0)
					return;
				if (is_tagged(m.term, A("EXIT"), 3)) {
					PCHECK_TERM(el(m.term, 1), up_pid_term(c));
					PCHECK_TERM(el(m.term, 2), UP_HEAP_LIMIT);
					got_exit++;
				} else if (is_tagged(m.term, A("DOWN"), 5)) {
					PCHECK(up_equal(el(m.term, 1), ref));
					PCHECK_TERM(el(m.term, 4), UP_HEAP_LIMIT);
					got_down++;
				} else {
					PFAIL("unexpected message");
				}
				up_msg_free(&m);
			}
			PCHECK_EQ(got_exit, 1);
			PCHECK_EQ(got_down, 1);
			PCHECK_EQ(atomic_load(&h.after), 0);
			if (way != HL_ALLOC && h.err != -ENOMEM)
				PFAIL("way %d: the failing call gave %d, not -ENOMEM", way, h.err);
		}
	}
}

static void test_heap_limit_reason_reaches_links_and_monitors(void **state)
{
	(void)state;
	RUN_OK(hl_main, NULL, 2);
}

/* A process killed by a signal keeps that signal's reason, even one larger
 * than what is left of its heap_limit. */
static void wait_forever(void *arg)
{
	(void)arg;
	struct up_msg m;
	up_recv(&m, UP_INFINITY);
}

static void keep_main(void *arg)
{
	(void)arg;
	static uint8_t big[16 << 10];
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_MONITOR;
	o.heap_limit = 4096;
	up_pid c = up_spawn_opt(wait_forever, NULL, &o);
	up_term reason = up_tuplev(2, A("too_big"), up_binary(big, sizeof big));
	PCHECK_EQ(up_exit(c, reason), 0);
	struct up_msg m;
	if (proc_recv_or_die(&m) == 0) {
		PCHECK_TERM(el(m.term, 4), reason);
		up_msg_free(&m);
	}
}

static void test_heap_limit_keeps_signal_reason(void **state)
{
	(void)state;
	RUN_OK(keep_main, NULL, 1);
}

/* ------------------------------------------------------ mailbox limits */

#define LIM 10

struct box {
	up_pid owner;
	atomic_int go;      /* the receiver may take its messages */
	atomic_int done;
	uint64_t got[4096];
	int ngot;
	long len_seen;      /* largest up_mailbox_len(1) the receiver saw */
};

/* Receive everything of mailbox 1 once told to (a word in mailbox 0), until
 * the word UINT64_MAX. */
static void box_receiver(void *arg)
{
	struct box *b = arg;
	struct up_msg m;
	if (up_recv_from(0, &m, WAIT_NS) != 0) {
		PFAIL("no go");
		return;
	}
	for (;;) {
		long len = up_mailbox_len(1);
		if (len > b->len_seen)
			b->len_seen = len;
		if (up_recv_from(1, &m, WAIT_NS) != 0) {
			PFAIL("receiver: nothing more after %d", b->ngot);
			return;
		}
		if (m.kind == UP_MSG_TERM) {
			int64_t v;
			PCHECK(up_get_int(el(m.term, 0), &v) == 0);
			m.word = (uint64_t)v;
			up_msg_free(&m);
		}
		if (m.word == UINT64_MAX)
			break;
		if (b->ngot < (int)(sizeof b->got / sizeof b->got[0]))
			b->got[b->ngot++] = m.word;
	}
	atomic_store(&b->done, 1);
}

static up_pid spawn_box(struct box *b, int sched, unsigned policy, unsigned limit)
{
	struct up_spawn_opts o = spawn_on(sched);
	o.mailboxes = 2;
	o.mailbox_limit[1] = limit;
	o.mailbox_policy[1] = (unsigned char)policy;
	return up_spawn_opt(box_receiver, b, &o);
}

/* A REJECT mailbox of LIM: from a sender on `sched`, LIM sends succeed, the
 * next gives -EAGAIN (words and terms); mailbox 0 is unlimited; after the
 * receiver takes them, the same again; everything accepted arrives once, in
 * order. */
static void reject_from(int sender_sched)
{
	struct box *b = calloc(1, sizeof *b);
	up_pid r = spawn_box(b, 0, UP_MAILBOX_REJECT, LIM);
	PCHECK(r > 0);
	up_yield(); /* let it start waiting */
	uint64_t next = 0;
	for (int i = 0; i < LIM; i++) {
		int rc = i & 1 ? up_send_to(r, 1, up_tuplev(1, up_int((int64_t)next)))
			       : up_send_word_to(r, 1, next);
		PCHECK_EQ(rc, 0);
		next++;
	}
	PCHECK_EQ(up_send_word_to(r, 1, 999), -EAGAIN);
	PCHECK_EQ(up_send_to(r, 1, up_tuplev(1, up_int(999))), -EAGAIN);
	PCHECK_EQ(up_send_to(r, 1, up_int(999)), -EAGAIN);
	(void)sender_sched;
	/* let it take them all, then fill it again */
	PCHECK_EQ(up_send_word_to(r, 0, 1), 0);
	int64_t deadline = now_ns() + WAIT_NS;
	while (next < 3 * LIM && now_ns() < deadline) {
		int rc = up_send_word_to(r, 1, next);
		if (rc == 0)
			next++;
		else if (rc == -EAGAIN)
			up_yield();
		else {
			PFAIL("send: %d", rc);
			break;
		}
	}
	while (up_send_word_to(r, 1, UINT64_MAX) == -EAGAIN && now_ns() < deadline)
		up_yield();
	proc_wait_exit(r);
	PCHECK_EQ(atomic_load(&b->done), 1);
	PCHECK_EQ(b->ngot, (int)next);
	for (int i = 0; i < b->ngot; i++)
		if (b->got[i] != (uint64_t)i) {
			PFAIL("message %d is %llu", i, (unsigned long long)b->got[i]);
			break;
		}
	PCHECK(b->len_seen <= LIM);
	free(b);
}

static void reject_sender(void *arg)
{
	reject_from((int)(intptr_t)arg);
}

static void reject_main(void *arg)
{
	(void)arg;
	for (int sched = 0; sched < 2; sched++) {
		struct up_spawn_opts o = spawn_on(sched);
		o.flags |= UP_SPAWN_MONITOR;
		up_spawn_opt(reject_sender, (void *)(intptr_t)sched, &o);
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
		PCHECK_TERM(el(m.term, 4), UP_NORMAL);
		up_msg_free(&m);
	}
}

static void test_mailbox_reject_same_and_other_scheduler(void **state)
{
	(void)state;
	RUN_OK(reject_main, NULL, 2);
}

/*
 * Many senders (processes on both schedulers and a foreign thread) against
 * one REJECT mailbox whose receiver takes slowly: the limit holds exactly
 * (the receiver never sees more than LIM), every accepted message arrives
 * exactly once and each sender's arrive in order.
 */
#define STORM_SENDERS 4
#define STORM_PER ((uint64_t)UPT_SCALE(20000, 4000))

struct storm {
	up_pid r;
	atomic_int accepted[STORM_SENDERS + 1];
	atomic_int rejected;
	atomic_int finished;
	uint64_t last[STORM_SENDERS + 1];
	int got, disorder, max_len;
};

static void storm_send(struct storm *s, int id)
{
	uint64_t k = 0;
	int64_t deadline = now_ns() + WAIT_NS;
	while (k < STORM_PER && now_ns() < deadline) {
		int rc = up_send_word_to(s->r, 1, (uint64_t)id << 32 | (k + 1));
		if (rc == 0) {
			atomic_fetch_add(&s->accepted[id], 1);
			k++;
		} else if (rc == -EAGAIN) {
			atomic_fetch_add(&s->rejected, 1);
			if (up_self())
				up_yield();
			else
				sched_yield();
		} else {
			PFAIL("sender %d: %d", id, rc);
			break;
		}
	}
	atomic_fetch_add(&s->finished, 1);
}

struct storm_arg {
	struct storm *s;
	int id;
};

static void storm_sender(void *arg)
{
	struct storm_arg *a = arg;
	storm_send(a->s, a->id);
}

static void *storm_thread(void *arg)
{
	storm_send(arg, STORM_SENDERS);
	return NULL;
}

static void storm_receiver(void *arg)
{
	struct storm *s = arg;
	struct up_msg m;
	uint64_t total = STORM_PER * (STORM_SENDERS + 1);
	for (uint64_t n = 0; n < total; n++) {
		long len = up_mailbox_len(1);
		if (len > s->max_len)
			s->max_len = (int)len;
		if (up_recv_from(1, &m, WAIT_NS) != 0) {
			PFAIL("receiver: %llu of %llu", (unsigned long long)n,
			      (unsigned long long)total);
			return;
		}
		int id = (int)(m.word >> 32);
		uint64_t k = m.word & 0xffffffffu;
		if (id > STORM_SENDERS || k != s->last[id] + 1)
			s->disorder++;
		else
			s->last[id] = k;
		s->got++;
		if ((n & 7) == 0)
			up_yield(); /* slower than the senders */
	}
}

static void storm_main(void *arg)
{
	struct storm *s = arg;
	struct up_spawn_opts o = spawn_on(0);
	o.mailboxes = 2;
	o.mailbox_limit[1] = LIM;
	o.flags |= UP_SPAWN_MONITOR;
	s->r = up_spawn_opt(storm_receiver, s, &o);
	up_term ref = o.monitor_ref;
	static struct storm_arg args[STORM_SENDERS];
	for (int i = 0; i < STORM_SENDERS; i++) {
		args[i].s = s;
		args[i].id = i;
		struct up_spawn_opts so = spawn_on(i & 1);
		up_spawn_opt(storm_sender, &args[i], &so);
	}
	pthread_t t;
	pthread_create(&t, NULL, storm_thread, s);
	struct down_arg d = { ref };
	struct up_msg m;
	if (up_recv_match(match_down, &d, &m, 4 * WAIT_NS, 0) != 0)
		PFAIL("receiver did not finish");
	else
		PCHECK_TERM(el(m.term, 4), UP_NORMAL);
	pthread_join(t, NULL);
}

static void test_mailbox_reject_storm_exact(void **state)
{
	(void)state;
	struct storm *s = calloc(1, sizeof *s);
	int64_t t0 = now_ns();
	RUN_OK(storm_main, s, 2);
	int acc = 0;
	for (int i = 0; i <= STORM_SENDERS; i++)
		acc += atomic_load(&s->accepted[i]);
	print_message("  %d accepted, %d rejected (-EAGAIN), largest queue %d of %d, %.2f s\n",
		      acc, atomic_load(&s->rejected), s->max_len, LIM, (now_ns() - t0) / 1e9);
	assert_int_equal(s->got, acc);
	assert_int_equal(acc, (int)(STORM_PER * (STORM_SENDERS + 1)));
	assert_int_equal(s->disorder, 0);
	assert_true(s->max_len <= LIM);
	assert_true(atomic_load(&s->rejected) > 0); /* the limit was reached */
	free(s);
}

/* DROP_OLDEST, same scheduler: 20 sends into a mailbox of 5 keep the last 5,
 * in order; a remote sender's flood into a busy receiver stays bounded. */
struct drop {
	int sched;
	up_pid r;
	uint64_t got[64];
	int ngot;
	long len_before;
	long long rss_growth;
};

#define FLOOD ((int)UPT_SCALE(200000, 40000))
#define FLOOD_BYTES 1024

static void drop_receiver(void *arg)
{
	struct drop *d = arg;
	struct up_msg m;
	/* Busy until told (mailbox 0), yielding but never receiving from 1. */
	while (up_recv_from(0, &m, 0) == -ETIMEDOUT)
		up_yield();
	d->len_before = up_mailbox_len(1);
	while (up_recv_from(1, &m, 0) == 0) {
		if (m.kind == UP_MSG_TERM) {
			int64_t v = -1;
			up_get_int(el(m.term, 0), &v);
			m.word = (uint64_t)v;
			up_msg_free(&m);
		}
		if (d->ngot < 64)
			d->got[d->ngot++] = m.word;
	}
}

static void drop_flooder(void *arg)
{
	struct drop *d = arg;
	up_pid r = d->r;
	static uint8_t pad[FLOOD_BYTES];
	long long rss0 = vm_rss_app_bytes();
	long mark = up_heap_mark();
	for (int i = 0; i < FLOOD; i++) {
		up_heap_reset(mark); /* the sender's own terms do not pile up */
		mark = up_heap_mark();
		int rc = up_send_to(r, 1, up_tuplev(2, up_int(i), up_binary(pad, sizeof pad)));
		if (rc != 0) {
			PFAIL("flood send %d: %d", i, rc);
			return;
		}
		if ((i & 1023) == 0)
			up_yield();
	}
	d->rss_growth = vm_rss_app_bytes() - rss0;
}

static void drop_main(void *arg)
{
	struct drop *d = arg;
	struct up_spawn_opts o = spawn_on(0);
	o.mailboxes = 2;
	o.mailbox_limit[1] = 5;
	o.mailbox_policy[1] = UP_MAILBOX_DROP_OLDEST;
	o.flags |= UP_SPAWN_MONITOR;
	up_pid r = up_spawn_opt(drop_receiver, d, &o);
	up_term ref = o.monitor_ref;
	up_yield();
	if (d->sched == 0) {
		for (uint64_t i = 0; i < 20; i++)
			PCHECK_EQ(up_send_word_to(r, 1, i), 0);
	} else {
		d->r = r;
		struct up_spawn_opts fo = spawn_on(1);
		fo.flags |= UP_SPAWN_MONITOR;
		up_spawn_opt(drop_flooder, d, &fo);
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
		PCHECK_TERM(el(m.term, 4), UP_NORMAL);
		up_msg_free(&m);
	}
	PCHECK_EQ(up_send_word_to(r, 0, 1), 0);
	struct down_arg da = { ref };
	struct up_msg m;
	if (up_recv_match(match_down, &da, &m, WAIT_NS, 0) == 0)
		PCHECK_TERM(el(m.term, 4), UP_NORMAL);
	else
		PFAIL("drop receiver did not end");
}

static void test_mailbox_drop_oldest_keeps_newest(void **state)
{
	(void)state;
	struct drop d = { .sched = 0 };
	RUN_OK(drop_main, &d, 2);
	assert_int_equal(d.len_before, 5);
	assert_int_equal(d.ngot, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(d.got[i], 15 + i);
}

static void test_mailbox_drop_oldest_flood_into_busy_receiver(void **state)
{
	(void)state;
	struct drop d = { .sched = 1 };
	RUN_OK(drop_main, &d, 2);
	print_message("  %d x %d B sent to a busy receiver (limit 5): %ld queued when it looked, "
		      "RSS +%.1f MiB during the flood\n", FLOOD, FLOOD_BYTES, d.len_before,
		      d.rss_growth / 1048576.0);
	/* The newest are kept, in order, and the dropped ones were freed as
	 * the flood went: less than half of it was ever resident (kept whole,
	 * it would be more than all of it).  The bound is loose because the
	 * receiver's scheduler thread may get no CPU for a while here. */
	assert_true(d.ngot >= 1 && d.ngot <= 5);
	if (!UPT_ASAN) /* ASan's quarantine keeps freed memory on purpose */
		assert_true(d.rss_growth < (long long)FLOOD * FLOOD_BYTES / 2);
	assert_int_equal(d.got[d.ngot - 1], FLOOD - 1);
	for (int i = 1; i < d.ngot; i++)
		assert_true(d.got[i] > d.got[i - 1]);
}

/* A selective receive parked over a DROP_OLDEST mailbox whose nodes it has
 * looked at are dropped under it (same-scheduler sender): it still finds the
 * message it waits for.  (Under ASan a dangling position would be caught.) */
static int match_42(const struct up_msg *m, void *arg)
{
	(void)arg;
	return m->kind == UP_MSG_WORD && m->word == 42;
}

static void sel_receiver(void *arg)
{
	int *ok = arg;
	struct up_msg m;
	if (up_recv_match(match_42, NULL, &m, WAIT_NS, 0) == 0 && m.word == 42)
		*ok = 1;
}

static void sel_main(void *arg)
{
	int *ok = arg;
	struct up_spawn_opts o = spawn_opts();
	o.mailbox_limit[0] = 3;
	o.mailbox_policy[0] = UP_MAILBOX_DROP_OLDEST;
	up_pid r = up_spawn_opt(sel_receiver, ok, &o);
	for (int round = 0; round < 5; round++) {
		/* the receiver scans these, parks; the next round drops them */
		for (uint64_t i = 0; i < 4; i++)
			PCHECK_EQ(up_send_word(r, 1000 + i), 0);
		up_yield();
	}
	PCHECK_EQ(up_send_word(r, 42), 0);
	proc_wait_exit(r);
}

static void test_mailbox_drop_under_selective_receive(void **state)
{
	(void)state;
	int ok = 0;
	RUN_OK(sel_main, &ok, 1);
	assert_int_equal(ok, 1);
}

/* System messages count but are not refused: a full REJECT mailbox 0 of a
 * trapping process still gets the EXIT of its link and the DOWN of its
 * monitor. */
static void sys_receiver(void *arg)
{
	int *ok = arg;
	up_trap_exit(1);
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_LINK | UP_SPAWN_MONITOR;
	up_pid c = up_spawn_opt(wait_forever, NULL, &o);
	/* fill mailbox 0 (limit 2) from self */
	PCHECK_EQ(up_send_word(up_self(), 1), 0);
	PCHECK_EQ(up_send_word(up_self(), 2), 0);
	PCHECK_EQ(up_send_word(up_self(), 3), -EAGAIN);
	PCHECK_EQ(up_exit(c, A("bye")), 0);
	proc_pause_ns(20 * MS);
	PCHECK_EQ(up_mailbox_len(0), 4);
	int exits = 0, downs = 0, words = 0;
	struct up_msg m;
	while (up_recv(&m, 0) == 0) {
		if (m.kind == UP_MSG_WORD)
			words++;
		else if (is_tagged(m.term, A("EXIT"), 3))
			exits++;
		else if (is_tagged(m.term, A("DOWN"), 5))
			downs++;
		up_msg_free(&m);
	}
	*ok = words == 2 && exits == 1 && downs == 1;
	/* all taken: room again */
	PCHECK_EQ(up_send_word(up_self(), 4), 0);
}

static void sys_main(void *arg)
{
	struct up_spawn_opts o = spawn_opts();
	o.mailbox_limit[0] = 2;
	up_pid r = up_spawn_opt(sys_receiver, arg, &o);
	PCHECK(r > 0);
	proc_wait_exit(r);
}

static void test_mailbox_limit_system_messages(void **state)
{
	(void)state;
	int ok = 0;
	RUN_OK(sys_main, &ok, 1);
	assert_int_equal(ok, 1);
}

/* Option checks. */
static void opts_main(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = spawn_opts();
	o.mailbox_policy[0] = 2;
	PCHECK_EQ(up_spawn_opt(wait_forever, NULL, &o), -EINVAL);
	o = spawn_opts();
	o.mailbox_limit[1] = 5; /* one mailbox only */
	PCHECK_EQ(up_spawn_opt(wait_forever, NULL, &o), -EINVAL);
	o = spawn_opts();
	o.mailbox_policy[1] = UP_MAILBOX_DROP_OLDEST;
	PCHECK_EQ(up_spawn_opt(wait_forever, NULL, &o), -EINVAL);
	o = spawn_opts();
	o.mailbox_limit[0] = UP_MAILBOX_LIMIT_MAX + 1;
	PCHECK_EQ(up_spawn_opt(wait_forever, NULL, &o), -EINVAL);
	o = spawn_opts();
	o.mailboxes = UP_MAX_MAILBOXES;
	o.mailbox_limit[UP_MAX_MAILBOXES - 1] = UP_MAILBOX_LIMIT_MAX;
	o.mailbox_policy[UP_MAX_MAILBOXES - 1] = UP_MAILBOX_DROP_OLDEST;
	up_pid p = up_spawn_opt(wait_forever, NULL, &o);
	PCHECK(p > 0);
	PCHECK_EQ(up_send_word_to(p, UP_MAX_MAILBOXES - 1, 1), 0);
	up_exit(p, UP_KILL);
}

static void test_mailbox_limit_option_checks(void **state)
{
	(void)state;
	RUN_OK(opts_main, NULL, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_heap_limit_reason_reaches_links_and_monitors),
		UPT_TEST(test_heap_limit_keeps_signal_reason),
		UPT_TEST(test_mailbox_reject_same_and_other_scheduler),
		UPT_TEST(test_mailbox_reject_storm_exact),
		UPT_TEST(test_mailbox_drop_oldest_keeps_newest),
		UPT_TEST(test_mailbox_drop_oldest_flood_into_busy_receiver),
		UPT_TEST(test_mailbox_drop_under_selective_receive),
		UPT_TEST(test_mailbox_limit_system_messages),
		UPT_TEST(test_mailbox_limit_option_checks),
	};
	return UPT_RUN("limits", tests);
}
