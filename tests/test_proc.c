/*
 * test_proc.c - processes: up_spawn/up_spawn_opt (argument and option
 * checks, placement, max_processes and -EAGAIN, -ENOMEM-class failures),
 * up_self, up_alive (stale pids after slot reuse, invalid pids), up_exit
 * (ends only the caller, never returns), up_alloc (alignment, distinct
 * writable blocks, heap growth past the region, memory returned on exit,
 * heap_limit ends the process with reason heap_limit), and up_yield
 * (round-robin order on one scheduler, a spawned
 * process runs only after its spawner yields).
 */
#include "helpers.h"

#include <limits.h>

static void noop(void *arg) { (void)arg; }

static void count_run(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

/* Block until any message comes, then end. */
static void wait_msg(void *arg)
{
	struct up_msg m;
	(void)arg;
	proc_recv_or_die(&m);
}

/* ------------------------------------------------------- spawn checks */

struct spawn_checks {
	atomic_int ran;
	up_pid null_fn, null_fn_opt;
	up_pid sched_hi, sched_neg, sched_huge, node_huge, node_neg, both, bad_flag;
	up_pid mbox_over, mbox_huge, stack_over, stack_huge;
	/* good edges */
	up_pid ok_null_opts, ok_last_sched, ok_own_node, ok_unflagged, ok_max_mbox,
		ok_small_stack, ok_mbox0;
	int mbox0_send_to_1, mbox0_send_to_0, max_mbox_send_last, max_mbox_send_over;
};

struct small_stack_arg {
	atomic_int ok;
};

static void use_some_stack(void *arg)
{
	struct small_stack_arg *a = arg;
	volatile char buf[4096];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)i;
	int sum = 0;
	for (size_t i = 0; i < sizeof buf; i++)
		sum += buf[i];
	(void)sum;
	atomic_store(&a->ok, 1);
}

static void spawn_checks_main(void *arg)
{
	struct spawn_checks *c = arg;
	struct up_spawn_opts o;
	int ns = up_schedulers();

	c->null_fn = up_spawn(NULL, NULL);
	o = spawn_opts();
	c->null_fn_opt = up_spawn_opt(NULL, NULL, &o);

	o = spawn_on(ns);
	c->sched_hi = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_on(-1);
	c->sched_neg = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_on(INT_MAX);
	c->sched_huge = up_spawn_opt(count_run, &c->ran, &o);

	o = spawn_on_node(4096);
	c->node_huge = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_on_node(-1);
	c->node_neg = up_spawn_opt(count_run, &c->ran, &o);

	/* both placements, each valid alone */
	o = spawn_on(0);
	o.flags |= UP_SPAWN_NODE;
	o.node = 0;
	c->both = up_spawn_opt(count_run, &c->ran, &o);

	/* a flag this version does not know */
	o = spawn_opts();
	o.flags = 0x80000000u;
	c->bad_flag = up_spawn_opt(count_run, &c->ran, &o);

	o = spawn_opts();
	o.mailboxes = UP_MAX_MAILBOXES + 1;
	c->mbox_over = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_opts();
	o.mailboxes = UINT_MAX;
	c->mbox_huge = up_spawn_opt(count_run, &c->ran, &o);

	o = spawn_opts(); /* runtime stack is 64 KiB (set by the test) */
	o.stack_size = 128 * 1024;
	c->stack_over = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_opts();
	o.stack_size = (size_t)1 << 30;
	c->stack_huge = up_spawn_opt(count_run, &c->ran, &o);

	/* Let anything wrongly spawned run, then check nothing did. */
	for (int i = 0; i < 10; i++)
		up_yield();
	PCHECK_EQ(atomic_load(&c->ran), 0);

	/* Edges that are valid. */
	c->ok_null_opts = up_spawn_opt(count_run, &c->ran, NULL);
	o = spawn_on(ns - 1);
	c->ok_last_sched = up_spawn_opt(count_run, &c->ran, &o);
	o = spawn_on_node(up_node());
	c->ok_own_node = up_spawn_opt(count_run, &c->ran, &o);
	/* placement fields without their flag are not looked at */
	o = spawn_opts();
	o.scheduler = 1000;
	o.node = -7;
	c->ok_unflagged = up_spawn_opt(count_run, &c->ran, &o);

	static struct small_stack_arg ssa;
	o = spawn_opts();
	o.stack_size = 16 * 1024;
	c->ok_small_stack = up_spawn_opt(use_some_stack, &ssa, &o);

	o = spawn_opts();
	o.mailboxes = UP_MAX_MAILBOXES;
	c->ok_max_mbox = up_spawn_opt(wait_msg, NULL, &o);
	if (c->ok_max_mbox > 0) {
		c->max_mbox_send_over = up_send_word_to(c->ok_max_mbox, UP_MAX_MAILBOXES, 1);
		c->max_mbox_send_last = up_send_word_to(c->ok_max_mbox, UP_MAX_MAILBOXES - 1, 1);
	}

	/* mailboxes 0 means the default: one mailbox. */
	o = spawn_opts();
	o.mailboxes = 0;
	c->ok_mbox0 = up_spawn_opt(wait_msg, NULL, &o);
	if (c->ok_mbox0 > 0) {
		c->mbox0_send_to_1 = up_send_word_to(c->ok_mbox0, 1, 1);
		c->mbox0_send_to_0 = up_send_word_to(c->ok_mbox0, 0, 1);
	}

	up_pid all[] = { c->ok_null_opts, c->ok_last_sched, c->ok_own_node, c->ok_unflagged,
			 c->ok_small_stack, c->ok_max_mbox, c->ok_mbox0 };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i] > 0)
			proc_wait_exit(all[i]);
	PCHECK_EQ(atomic_load(&ssa.ok), 1);
}

static void test_spawn_bad_args(void **state)
{
	(void)state;
	struct spawn_checks c = { 0 };
	struct up_run_opts ro = run_opts(2);
	ro.stack_size = 64 * 1024;
	assert_int_equal(up_run(spawn_checks_main, &c, &ro), 0);
	assert_no_pfail();

	assert_int_equal(c.null_fn, -EINVAL);
	assert_int_equal(c.null_fn_opt, -EINVAL);
	assert_int_equal(c.sched_hi, -EINVAL);
	assert_int_equal(c.sched_neg, -EINVAL);
	assert_int_equal(c.sched_huge, -EINVAL);
	assert_int_equal(c.node_huge, -EINVAL);
	assert_int_equal(c.node_neg, -EINVAL);
	assert_int_equal(c.both, -EINVAL);
	assert_int_equal(c.bad_flag, -EINVAL);
	assert_int_equal(c.mbox_over, -EINVAL);
	assert_int_equal(c.mbox_huge, -EINVAL);
	assert_int_equal(c.stack_over, -EINVAL);
	assert_int_equal(c.stack_huge, -EINVAL);

	assert_true(c.ok_null_opts > 0);
	assert_true(c.ok_last_sched > 0);
	assert_true(c.ok_own_node > 0);
	assert_true(c.ok_unflagged > 0);
	assert_true(c.ok_small_stack > 0);
	assert_true(c.ok_max_mbox > 0);
	assert_true(c.ok_mbox0 > 0);
	assert_int_equal(c.max_mbox_send_over, -EINVAL);
	assert_int_equal(c.max_mbox_send_last, 0);
	assert_int_equal(c.mbox0_send_to_1, -EINVAL);
	assert_int_equal(c.mbox0_send_to_0, 0);
	assert_int_equal(atomic_load(&c.ran), 4);
}

/*
 * A process may ask for the runtime's whole stack size: "at most the
 * runtime's stack_size".  Checked for several runtime stack sizes, and the
 * process can use most of it.
 */
struct full_stack {
	size_t runtime_stack;
	up_pid pid;
	up_pid over;
	atomic_int used_ok;
};

static __attribute__((noinline)) int burn_stack(size_t bytes)
{
	volatile char buf[1024];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)i;
	if (bytes > sizeof buf)
		return burn_stack(bytes - sizeof buf) + buf[7];
	return buf[3];
}

static void full_stack_child(void *arg)
{
	struct full_stack *f = arg;
	/* three quarters of the stack: well within what was asked for */
	burn_stack(f->runtime_stack / 4 * 3);
	atomic_store(&f->used_ok, 1);
}

static void full_stack_main(void *arg)
{
	struct full_stack *f = arg;
	struct up_spawn_opts o = spawn_opts();
	o.stack_size = f->runtime_stack;
	f->pid = up_spawn_opt(full_stack_child, f, &o);
	if (f->pid > 0)
		proc_wait_exit(f->pid);
	o.stack_size = f->runtime_stack + 64 * 1024;
	f->over = up_spawn_opt(full_stack_child, f, &o);
}

static void test_spawn_full_stack(void **state)
{
	(void)state;
	static const size_t sizes[] = { 16 * 1024, 64 * 1024, 72 * 1024, 1024 * 1024 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct full_stack f;
		memset(&f, 0, sizeof f);
		f.runtime_stack = sizes[i];
		struct up_run_opts ro = run_opts(1);
		ro.stack_size = sizes[i];
		assert_int_equal(up_run(full_stack_main, &f, &ro), 0);
		assert_no_pfail();
		if (f.pid <= 0)
			fail_msg("runtime stack_size %zu: spawn with stack_size %zu = %" PRId64,
				 sizes[i], sizes[i], f.pid);
		assert_int_equal(atomic_load(&f.used_ok), 1);
		assert_int_equal(f.over, -EINVAL);
	}
}

/* ----------------------------------------------------- self and placement */

#define SELF_N 100
struct selfs {
	up_pid spawned[SELF_N];
	up_pid seen[SELF_N];
	int sched[SELF_N];
	int want_sched[SELF_N];
	up_pid main_pid;
	int alive_during[SELF_N];
	atomic_int done;
};

struct self_arg {
	struct selfs *s;
	int i;
};

static void self_child(void *arg)
{
	struct self_arg *a = arg;
	a->s->seen[a->i] = up_self();
	a->s->sched[a->i] = up_scheduler();
	a->s->alive_during[a->i] = up_alive(up_self());
	atomic_fetch_add(&a->s->done, 1);
}

static void self_main(void *arg)
{
	struct selfs *s = arg;
	static struct self_arg args[SELF_N];
	int ns = up_schedulers();
	s->main_pid = up_self();
	PCHECK_EQ(up_alive(s->main_pid), 1);
	for (int i = 0; i < SELF_N; i++) {
		args[i] = (struct self_arg){ s, i };
		if (i % 3 == 0) {
			/* default placement: the spawner's scheduler */
			s->want_sched[i] = up_scheduler();
			s->spawned[i] = up_spawn(self_child, &args[i]);
		} else {
			s->want_sched[i] = i % ns;
			struct up_spawn_opts o = spawn_on(i % ns);
			s->spawned[i] = up_spawn_opt(self_child, &args[i], &o);
		}
	}
	for (int i = 0; i < SELF_N; i++)
		if (s->spawned[i] > 0)
			proc_wait_exit(s->spawned[i]);
}

static void test_self_and_placement(void **state)
{
	(void)state;
	struct selfs s;
	memset(&s, 0, sizeof s);
	/* Without balancing, the default place is exactly the spawner's
	 * scheduler (with it, an idle peer may take a process that has not
	 * run yet: test_scheduler covers that). */
	struct up_run_opts o = run_opts(2);
	o.flags = UP_RUN_NO_BALANCE;
	assert_int_equal(up_run(self_main, &s, &o), 0);
	assert_no_pfail();
	assert_true(s.main_pid > 0);
	assert_int_equal(atomic_load(&s.done), SELF_N);
	for (int i = 0; i < SELF_N; i++) {
		assert_true(s.spawned[i] > 0);
		assert_int_equal(s.seen[i], s.spawned[i]);
		assert_int_equal(s.sched[i], s.want_sched[i]);
		assert_int_equal(s.alive_during[i], 1);
		assert_true(s.spawned[i] != s.main_pid);
		for (int j = 0; j < i; j++)
			assert_true(s.spawned[i] != s.spawned[j]);
	}
}

/* ------------------------------------------------------- max_processes */

#define MAXP 8
struct maxp {
	int first_ok, second_ok;
	up_pid first_err, second_err, third_err;
	up_pid after_free;
	up_pid kids[MAXP * 2];
};

static int fill(struct maxp *m, up_pid *err)
{
	int ok = 0;
	for (int i = 0; i < MAXP * 2; i++) {
		up_pid p = up_spawn(wait_msg, NULL);
		if (p < 0) {
			*err = p;
			break;
		}
		m->kids[ok++] = p;
	}
	return ok;
}

static void release(struct maxp *m, int n)
{
	for (int i = 0; i < n; i++)
		PCHECK_EQ(up_send_word(m->kids[i], 1), 0);
	for (int i = 0; i < n; i++)
		proc_wait_exit(m->kids[i]);
}

static void maxp_main(void *arg)
{
	struct maxp *m = arg;
	m->first_ok = fill(m, &m->first_err);
	/* Still full after the children ran and blocked. */
	up_yield();
	m->third_err = up_spawn(noop, NULL);
	release(m, m->first_ok);
	/* Room again: one, then the whole lot. */
	m->after_free = up_spawn(wait_msg, NULL);
	if (m->after_free > 0) {
		PCHECK_EQ(up_send_word(m->after_free, 1), 0);
		proc_wait_exit(m->after_free);
	}
	m->second_ok = fill(m, &m->second_err);
	release(m, m->second_ok);
}

static void test_max_processes(void **state)
{
	(void)state;
	struct maxp m;
	memset(&m, 0, sizeof m);
	struct up_run_opts o = run_opts(1);
	o.max_processes = MAXP;
	assert_int_equal(up_run(maxp_main, &m, &o), 0);
	assert_no_pfail();
	/* main is one of the MAXP live processes */
	assert_int_equal(m.first_ok, MAXP - 1);
	assert_int_equal(m.first_err, -EAGAIN);
	assert_int_equal(m.third_err, -EAGAIN);
	assert_true(m.after_free > 0);
	assert_int_equal(m.second_ok, MAXP - 1);
	assert_int_equal(m.second_err, -EAGAIN);
}

/* --------------------------------------------------- stale pids, reuse */

#define STALE_ROUNDS 40
#define STALE_BATCH 64
#define STALE_N (STALE_ROUNDS * STALE_BATCH)
struct stale {
	up_pid old[STALE_N];
	up_pid live[STALE_BATCH];
	atomic_uint_fast64_t live_words[STALE_BATCH];
	int n_old;
};

struct live_arg {
	struct stale *s;
	int i;
};

static void live_child(void *arg)
{
	struct live_arg *a = arg;
	struct up_msg m;
	if (proc_recv_or_die(&m) == 0)
		atomic_store(&a->s->live_words[a->i], m.word);
	/* Anything more in the mailbox came from a stale pid. */
	if (up_recv(&m, 0) != -ETIMEDOUT)
		PFAIL("live process %d got a second message %#" PRIx64, a->i, m.word);
}

static void stale_main(void *arg)
{
	struct stale *s = arg;
	static struct live_arg la[STALE_BATCH];

	/* Many generations through the same slots. */
	for (int r = 0; r < STALE_ROUNDS; r++) {
		up_pid batch[STALE_BATCH];
		for (int i = 0; i < STALE_BATCH; i++) {
			batch[i] = up_spawn(r % 2 ? noop : wait_msg, NULL);
			PCHECK(batch[i] > 0);
		}
		if (r % 2 == 0)
			for (int i = 0; i < STALE_BATCH; i++)
				PCHECK_EQ(up_send_word(batch[i], 0), 0);
		for (int i = 0; i < STALE_BATCH; i++) {
			proc_wait_exit(batch[i]);
			s->old[s->n_old++] = batch[i];
		}
	}
	/* New live processes, most likely in the old slots. */
	for (int i = 0; i < STALE_BATCH; i++) {
		la[i] = (struct live_arg){ s, i };
		s->live[i] = up_spawn(live_child, &la[i]);
		PCHECK(s->live[i] > 0);
	}
	up_yield(); /* let them block */
	/* Every old pid is stale, and never reaches a new process. */
	for (int i = 0; i < s->n_old; i++) {
		int a = up_alive(s->old[i]);
		if (a != 0)
			PFAIL("up_alive(stale pid #%d %" PRId64 ") = %d", i, s->old[i], a);
		int rc = up_send_word(s->old[i], 0xdeadULL);
		if (rc != -ESRCH)
			PFAIL("up_send_word(stale pid #%d) = %d", i, rc);
		rc = up_send_word_to(s->old[i], 0, 0xdeadULL);
		if (rc != -ESRCH)
			PFAIL("up_send_word_to(stale pid #%d) = %d", i, rc);
		for (int j = 0; j < STALE_BATCH; j++)
			if (s->live[j] == s->old[i])
				PFAIL("new pid %" PRId64 " equals an old one", s->live[j]);
	}
	for (int i = 0; i < STALE_BATCH; i++) {
		PCHECK_EQ(up_alive(s->live[i]), 1);
		PCHECK_EQ(up_send_word(s->live[i], 1000 + (uint64_t)i), 0);
	}
	for (int i = 0; i < STALE_BATCH; i++)
		proc_wait_exit(s->live[i]);
	for (int i = 0; i < STALE_BATCH; i++) {
		PCHECK_EQ(up_alive(s->live[i]), 0);
		PCHECK_EQ(up_send_word(s->live[i], 1), -ESRCH);
	}
}

static void test_stale_pids(void **state)
{
	(void)state;
	struct stale *s = calloc(1, sizeof *s);
	assert_non_null(s);
	RUN_OK(stale_main, s, 1);
	assert_int_equal(s->n_old, STALE_N);
	for (int i = 0; i < STALE_BATCH; i++)
		assert_int_equal(atomic_load(&s->live_words[i]), 1000 + i);
	free(s);
}

/* ------------------------------------------------------- invalid pids */

struct badpid {
	int alive_neg, alive_zero, alive_huge, alive_min;
	int send_neg, send_zero, send_huge, sendto_neg;
	int exit_neg, exit_zero, exit_huge;
};

static void badpid_main(void *arg)
{
	struct badpid *b = arg;
	b->alive_neg = up_alive(-5);
	b->alive_zero = up_alive(0);
	b->alive_huge = up_alive(INT64_MAX);
	b->alive_min = up_alive(INT64_MIN);
	b->send_neg = up_send_word(-5, 1);
	b->send_zero = up_send_word(0, 1);
	b->send_huge = up_send_word(INT64_MAX, 1);
	b->sendto_neg = up_send_word_to(-5, 0, 1);
	b->exit_neg = up_exit(-5, 0);
	b->exit_zero = up_exit(0, 0);
	b->exit_huge = up_exit(INT64_MAX, 0);
}

static void test_invalid_pids(void **state)
{
	(void)state;
	struct badpid b;
	memset(&b, 0x55, sizeof b);
	RUN_OK(badpid_main, &b, 1);
	assert_int_equal(b.alive_neg, -EINVAL);
	assert_int_equal(b.alive_zero, -EINVAL);
	assert_int_equal(b.alive_huge, -EINVAL);
	assert_int_equal(b.alive_min, -EINVAL);
	assert_int_equal(b.send_neg, -EINVAL);
	assert_int_equal(b.send_zero, -EINVAL);
	assert_int_equal(b.send_huge, -EINVAL);
	assert_int_equal(b.sendto_neg, -EINVAL);
	assert_int_equal(b.exit_neg, -EINVAL);
	assert_int_equal(b.exit_zero, -EINVAL);
	assert_int_equal(b.exit_huge, -EINVAL);
}

/* --------------------------------------------------------------- exit */

struct exits {
	atomic_int before, after, deep_before, deep_after;
	int other_rc;
	int other_alive_after;
	int self_alive_seen_by_parent;
	up_pid child, deep;
};

static void exit_child(void *arg)
{
	struct exits *e = arg;
	atomic_store(&e->before, 1);
	up_exit(up_self(), 0);
	atomic_store(&e->after, 1);
}

static __attribute__((noinline)) void deep(struct exits *e, int depth)
{
	if (depth == 0) {
		atomic_store(&e->deep_before, 1);
		up_exit(up_self(), up_int(99));
		atomic_store(&e->deep_after, 1);
		return;
	}
	deep(e, depth - 1);
	atomic_store(&e->deep_after, 1);
}

static void deep_child(void *arg)
{
	deep(arg, 20);
	atomic_store(&((struct exits *)arg)->deep_after, 1);
}

static void exits_main(void *arg)
{
	struct exits *e = arg;
	e->child = up_spawn(exit_child, e);
	e->deep = up_spawn(deep_child, e);
	up_pid other = up_spawn(wait_msg, NULL);
	PCHECK(e->child > 0 && e->deep > 0 && other > 0);
	up_yield();
	/* A normal exit signal does not end another process (OTP). */
	e->other_rc = up_exit(other, UP_NORMAL);
	e->other_alive_after = up_alive(other);
	proc_wait_exit(e->child);
	proc_wait_exit(e->deep);
	e->self_alive_seen_by_parent = up_alive(e->child);
	PCHECK_EQ(up_send_word(other, 1), 0);
	proc_wait_exit(other);
}

static void test_exit(void **state)
{
	(void)state;
	struct exits e;
	memset(&e, 0, sizeof e);
	e.self_alive_seen_by_parent = -1;
	RUN_OK(exits_main, &e, 1);
	assert_int_equal(atomic_load(&e.before), 1);
	assert_int_equal(atomic_load(&e.after), 0);
	assert_int_equal(atomic_load(&e.deep_before), 1);
	assert_int_equal(atomic_load(&e.deep_after), 0);
	assert_int_equal(e.other_rc, 0);
	assert_int_equal(e.other_alive_after, 1);
	assert_int_equal(e.self_alive_seen_by_parent, 0);
}

/* ------------------------------------------------------ exit signals */

/*
 * An abnormal exit signal ends another process wherever it is: parked in a
 * receive, asleep, in a timed receive, runnable (yielding), on another
 * scheduler, or not yet started; code after the point it was stopped never
 * runs and its pid goes stale.
 */
struct kills {
	atomic_int started[6], after[6];
	int rc[6], alive_after[6], send_after[6];
	int bad_rc_neg, bad_rc_dead;
};
struct kill_arg { struct kills *k; int i; };

static void k_recv(void *arg)
{
	struct kill_arg *a = arg;
	struct up_msg m;
	atomic_store(&a->k->started[a->i], 1);
	up_recv(&m, UP_INFINITY);
	atomic_store(&a->k->after[a->i], 1);
}

static void k_sleep(void *arg)
{
	struct kill_arg *a = arg;
	atomic_store(&a->k->started[a->i], 1);
	up_sleep(10 * 1000 * MS);
	atomic_store(&a->k->after[a->i], 1);
}

static void k_timed(void *arg)
{
	struct kill_arg *a = arg;
	struct up_msg m;
	atomic_store(&a->k->started[a->i], 1);
	up_recv(&m, 10 * 1000 * MS);
	atomic_store(&a->k->after[a->i], 1);
}

static void k_yield(void *arg)
{
	struct kill_arg *a = arg;
	atomic_store(&a->k->started[a->i], 1);
	for (int n = 0; n < 1000000; n++)
		up_yield();
	atomic_store(&a->k->after[a->i], 1);
}

static void kills_main(void *arg)
{
	struct kills *k = arg;
	static struct kill_arg a[6];
	up_fn fns[6] = { k_recv, k_sleep, k_timed, k_yield, k_recv, k_recv };
	up_pid pid[6];
	for (int i = 0; i < 6; i++) {
		a[i] = (struct kill_arg){ k, i };
		struct up_spawn_opts o = i == 4 ? spawn_on(1) : spawn_opts();
		pid[i] = up_spawn_opt(fns[i], &a[i], &o);
		PCHECK(pid[i] > 0);
	}
	/* Let 0-4 start and park (4 on the other scheduler); 5 never runs
	 * before its signal.  Wait for them rather than for a fixed time: on
	 * a loaded machine another scheduler's thread may wait for a CPU. */
	k->rc[5] = up_exit(pid[5], up_int(77));
	int64_t until = now_ns() + 10 * 1000 * MS;
	for (;;) {
		int all = 1;
		for (int i = 0; i < 5; i++)
			all &= atomic_load(&k->started[i]);
		if (all || now_ns() > until)
			break;
		up_sleep(5 * MS);
	}
	up_sleep(20 * MS); /* and park */
	for (int i = 0; i < 5; i++)
		k->rc[i] = up_exit(pid[i], up_int(42));
	/* Each dies at once if parked, else at its next switch: on a loaded
	 * machine the other scheduler's thread may wait for a CPU, so wait
	 * (bounded) rather than for a fixed time. */
	until = now_ns() + WAIT_NS;
	for (int i = 0; i < 6; i++)
		while (up_alive(pid[i]) == 1 && now_ns() < until)
			up_sleep(MS);
	for (int i = 0; i < 6; i++) {
		k->alive_after[i] = up_alive(pid[i]);
		k->send_after[i] = up_send_word(pid[i], 1);
	}
	k->bad_rc_neg = up_exit(-3, up_int(42));
	k->bad_rc_dead = up_exit(pid[0], up_int(42));
}

static void test_exit_signal(void **state)
{
	(void)state;
	struct kills k;
	memset(&k, 0, sizeof k);
	RUN_OK(kills_main, &k, 2);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(k.rc[i], 0);
		assert_int_equal(k.alive_after[i], 0);
		assert_int_equal(k.send_after[i], -ESRCH);
		assert_int_equal(atomic_load(&k.after[i]), 0);
		if (atomic_load(&k.started[i]) != (i == 5 ? 0 : 1))
			fail_msg("process %d (%s) started=%d", i, i == 5 ? "killed before it ran" : "parked",
				 atomic_load(&k.started[i]));
	}
	assert_int_equal(k.bad_rc_neg, -EINVAL);
	assert_int_equal(k.bad_rc_dead, -ESRCH);
}

/* -------------------------------------------------------------- alloc */

struct allocs {
	int small_ok;
	int many_ok;
	int zero_null;
	int huge_null;
	int sizemax_null;
	int big_ok;
	long long rss_base, rss_during, rss_after;
	up_pid child;
};

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Blocks of sizes 1..n: aligned, writable, not overlapping. */
static int check_blocks(int n, size_t scale)
{
	unsigned char *blk[256];
	size_t sz[256];
	if (n > 256)
		n = 256;
	for (int i = 0; i < n; i++) {
		sz[i] = (size_t)(i + 1) * scale;
		blk[i] = up_alloc(sz[i]);
		if (!blk[i] || !aligned16(blk[i])) {
			PFAIL("up_alloc(%zu) = %p", sz[i], (void *)blk[i]);
			return 0;
		}
		memset(blk[i], i & 0xff, sz[i]);
	}
	for (int i = 0; i < n; i++)
		for (size_t k = 0; k < sz[i]; k++)
			if (blk[i][k] != (unsigned char)(i & 0xff)) {
				PFAIL("block %d (size %zu) overwritten at %zu", i, sz[i], k);
				return 0;
			}
	return 1;
}

static void alloc_small(void *arg)
{
	struct allocs *a = arg;
	a->small_ok = check_blocks(200, 1);        /* 20 KiB in all: in region */
	a->many_ok = check_blocks(200, 64 * 9);    /* ~11 MiB: past the region */
	a->zero_null = up_alloc(0) == NULL;
	a->huge_null = up_alloc((size_t)1 << 62) == NULL;
	a->sizemax_null = up_alloc(SIZE_MAX) == NULL && up_alloc(SIZE_MAX - 8) == NULL;
	/* Still usable after the failures. */
	void *p = up_alloc(32);
	PCHECK(p != NULL && aligned16(p));
}

static void alloc_big(void *arg)
{
	struct allocs *a = arg;
	size_t s1 = (size_t)1 << 20, s2 = (size_t)10 << 20;
	unsigned char *p1 = up_alloc(s1);
	unsigned char *p2 = up_alloc(s2);
	if (!p1 || !p2) {
		PFAIL("large up_alloc failed: %p %p", (void *)p1, (void *)p2);
		return;
	}
	PCHECK(aligned16(p1) && aligned16(p2));
	PCHECK(p1 + s1 <= p2 || p2 + s2 <= p1);
	memset(p1, 0xa1, s1);
	memset(p2, 0xb2, s2);
	a->big_ok = 1;
	for (size_t i = 0; i < s1; i += 4093)
		if (p1[i] != 0xa1)
			a->big_ok = 0;
	for (size_t i = 0; i < s2; i += 4093)
		if (p2[i] != 0xb2)
			a->big_ok = 0;
	a->rss_during = vm_rss_app_bytes();
}

static void alloc_main(void *arg)
{
	struct allocs *a = arg;
	up_pid p = up_spawn(alloc_small, a);
	PCHECK(p > 0);
	proc_wait_exit(p);

	a->rss_base = vm_rss_app_bytes();
	a->child = up_spawn(alloc_big, a);
	PCHECK(a->child > 0);
	proc_wait_exit(a->child);
	/* Freed on exit: give a lazy release a moment, no more. */
	int64_t end = now_ns() + 500 * MS;
	do {
		a->rss_after = vm_rss_app_bytes();
		if (a->rss_after <= a->rss_base + (4 << 20))
			break;
		proc_pause_ns(10 * MS);
	} while (now_ns() < end);
}

static void test_alloc(void **state)
{
	(void)state;
	struct allocs a;
	memset(&a, 0, sizeof a);
	RUN_OK(alloc_main, &a, 1);
	assert_true(a.small_ok);
	assert_true(a.many_ok);
	assert_true(a.zero_null);
	assert_true(a.huge_null);
	assert_true(a.sizemax_null);
	assert_true(a.big_ok);
	print_message("  rss base %lld KiB, with 11 MiB heap %lld KiB, after exit %lld KiB\n",
		      a.rss_base >> 10, a.rss_during >> 10, a.rss_after >> 10);
	assert_true(a.rss_during >= a.rss_base + (10 << 20));
	assert_true(a.rss_after <= a.rss_base + (4 << 20));
}

/* heap_limit: up_alloc past it ends the process with reason heap_limit
 * (it does not return); within it, memory past the region works.  (The
 * other ways to hit the limit: tests/test_limits.c.) */
struct limits {
	size_t total_64k;
	int returned_64k;
	int big_within_ok, big_over_returned;
	up_term reason_64k, reason_4m;
};

static void limit_64k(void *arg)
{
	struct limits *l = arg;
	while (l->total_64k < 1024 * 1024) {
		void *p = up_alloc(1024);
		if (!p)
			break;
		memset(p, 1, 1024);
		l->total_64k += 1024;
	}
	l->returned_64k = 1;
}

static void limit_4m(void *arg)
{
	struct limits *l = arg;
	/* Past the in-region heap but within the limit. */
	void *a = up_alloc(1 << 20), *b = up_alloc(1 << 20), *c = up_alloc(1 << 20);
	l->big_within_ok = a && b && c;
	if (l->big_within_ok) {
		memset(a, 1, 1 << 20);
		memset(b, 2, 1 << 20);
		memset(c, 3, 1 << 20);
	}
	/* 3 MiB used: 2 more do not fit in 4. */
	(void)up_alloc(2 << 20);
	l->big_over_returned = 1;
}

/* Spawn fn monitored with heap_limit, return its exit reason. */
static up_term limited_reason(up_fn fn, void *arg, size_t limit)
{
	struct up_spawn_opts o = spawn_opts();
	o.heap_limit = limit;
	o.flags = UP_SPAWN_MONITOR;
	up_pid p = up_spawn_opt(fn, arg, &o);
	PCHECK(p > 0);
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return UP_NIL;
	up_term r;
	if (up_tuple_arity(m.term) != 5 || up_tuple_elem(m.term, 4, &r) != 0)
		return UP_NIL;
	return r; /* an atom: valid after the free */
}

static void limit_main(void *arg)
{
	struct limits *l = arg;
	l->reason_64k = limited_reason(limit_64k, arg, 64 * 1024);
	l->reason_4m = limited_reason(limit_4m, arg, 4 << 20);
}

static void test_heap_limit(void **state)
{
	(void)state;
	struct limits l;
	memset(&l, 0, sizeof l);
	RUN_OK(limit_main, &l, 1);
	assert_int_equal(l.reason_64k, UP_HEAP_LIMIT);
	assert_false(l.returned_64k);
	/* stopped at the limit, and the limit was usable */
	assert_true(l.total_64k <= 64 * 1024);
	assert_true(l.total_64k >= 32 * 1024);
	assert_int_equal(l.reason_4m, UP_HEAP_LIMIT);
	assert_true(l.big_within_ok);
	assert_false(l.big_over_returned);
}

/* A mark/reset loop runs in constant heap however many marks it makes
 * (marks once turned negative after 32768 and their resets failed). */
static void mark_loop(void *arg)
{
	int *bad = arg;
	long mark = up_heap_mark();
	for (int i = 0; i < 100000; i++) {
		if (up_binary("0123456789", 10) == 0 || up_heap_reset(mark) != 0 ||
		    (mark = up_heap_mark()) < 0) {
			(*bad)++;
			return;
		}
	}
}

static void mark_main(void *arg)
{
	struct up_spawn_opts o = spawn_opts();
	o.heap_limit = 16 << 10; /* a growing heap would end it */
	o.flags = UP_SPAWN_MONITOR;
	up_spawn_opt(mark_loop, arg, &o);
	struct up_msg m;
	if (proc_recv_or_die(&m) == 0) {
		up_term r;
		PCHECK(up_tuple_elem(m.term, 4, &r) == 0 && r == UP_NORMAL);
		up_msg_free(&m);
	}
}

static void test_heap_mark_reset_many(void **state)
{
	(void)state;
	int bad = 0;
	RUN_OK(mark_main, &bad, 1);
	assert_int_equal(bad, 0);
}

/* -------------------------------------------------------------- yield */

#define YIELD_ROUNDS 5
struct rr {
	char log[64];
	atomic_int pos;
	atomic_int spawned_ran;
	int ran_before_yield, ran_after_yield;
	int yield_rc;
};

struct rr_arg {
	struct rr *r;
	char c;
};

static void rr_child(void *arg)
{
	struct rr_arg *a = arg;
	for (int i = 0; i < YIELD_ROUNDS; i++) {
		int k = atomic_fetch_add(&a->r->pos, 1);
		if (k < 63)
			a->r->log[k] = a->c;
		if (up_yield() != 0)
			PFAIL("up_yield in a process returned non-zero");
	}
}

static void flag_child(void *arg)
{
	atomic_store(&((struct rr *)arg)->spawned_ran, 1);
}

static void rr_main(void *arg)
{
	struct rr *r = arg;
	static struct rr_arg a, b, c;
	a = (struct rr_arg){ r, 'A' };
	b = (struct rr_arg){ r, 'B' };
	c = (struct rr_arg){ r, 'C' };

	/* A new process runs only once its spawner yields or blocks. */
	up_pid f = up_spawn(flag_child, r);
	PCHECK(f > 0);
	r->ran_before_yield = atomic_load(&r->spawned_ran);
	r->yield_rc = up_yield();
	r->ran_after_yield = atomic_load(&r->spawned_ran);

	up_pid pa = up_spawn(rr_child, &a);
	up_pid pb = up_spawn(rr_child, &b);
	up_pid pc = up_spawn(rr_child, &c);
	PCHECK(pa > 0 && pb > 0 && pc > 0);
	/* Block (not yield) until they are done. */
	struct up_msg m;
	int rc = up_recv(&m, 200 * MS);
	PCHECK_EQ(rc, -ETIMEDOUT);
	proc_wait_exit(pa);
	proc_wait_exit(pb);
	proc_wait_exit(pc);
}

/* ----------------------------------------------------- fair scheduling */

/*
 * A busy process that charges its work with up_consume(1) shares one
 * scheduler with a ping-pong pair: between two consecutive steps of the
 * pair it gets at most one budget (UP_REDUCTIONS) of work done, and the pair
 * finishes long before the busy process does.  Without the budget the busy
 * process would run its million units first.
 */
#define BUSY_UNITS 1000000
#define PP_ROUNDS 100

static struct {
	atomic_long units;          /* busy work done so far */
	long last, max_gap;
	long at_pair_end;
	int steps;
} fair;

static void fair_step(void)
{
	long u = atomic_load(&fair.units);
	if (fair.steps++ > 0 && u - fair.last > fair.max_gap)
		fair.max_gap = u - fair.last;
	fair.last = u;
}

static void busy(void *arg)
{
	(void)arg;
	for (long i = 0; i < BUSY_UNITS; i++) {
		atomic_fetch_add(&fair.units, 1);
		int r = up_consume(1);
		PCHECK(r == 0 || r == 1);
	}
}

static void pong_side(void *arg)
{
	(void)arg;
	struct up_msg m;
	for (int i = 0; i < PP_ROUNDS; i++) {
		if (proc_recv_or_die(&m) != 0)
			return;
		fair_step();
		up_send_word((up_pid)m.word, (uint64_t)up_self());
	}
}

static void ping_side(void *arg)
{
	up_pid peer = *(up_pid *)arg;
	struct up_msg m;
	for (int i = 0; i < PP_ROUNDS; i++) {
		up_send_word(peer, (uint64_t)up_self());
		if (proc_recv_or_die(&m) != 0)
			return;
		fair_step();
	}
	fair.at_pair_end = atomic_load(&fair.units);
}

static void fair_main(void *arg)
{
	(void)arg;
	static up_pid pong;
	pong = up_spawn(pong_side, NULL);
	up_pid ping = up_spawn(ping_side, &pong);
	up_pid b = up_spawn(busy, NULL);
	proc_wait_exit(ping);
	proc_wait_exit(pong);
	proc_wait_exit(b);
}

static void test_busy_cannot_starve(void **state)
{
	(void)state;
	memset(&fair, 0, sizeof(fair));
	RUN_OK(fair_main, NULL, 1);
	print_message("  most busy units between two ping-pong steps: %ld; busy done at the "
		      "pair's end: %ld of %d\n", fair.max_gap, fair.at_pair_end, BUSY_UNITS);
	assert_int_equal(fair.steps, 2 * PP_ROUNDS);
	assert_true(fair.max_gap > 0);               /* they did interleave */
	assert_true(fair.max_gap <= UP_REDUCTIONS);  /* one budget at most */
	assert_true(fair.at_pair_end < BUSY_UNITS / 2);
}

static void consume_main(void *arg)
{
	(void)arg;
	PCHECK_EQ(up_consume(0), 0);
	PCHECK_EQ(up_consume(UP_REDUCTIONS * 1000u + 1), -EINVAL);
	/* A whole budget at once yields now. */
	PCHECK_EQ(up_consume(UP_REDUCTIONS), 1);
	PCHECK_EQ(up_consume(1), 0);
}

static void test_consume(void **state)
{
	(void)state;
	assert_int_equal(up_consume(1), -EPERM);
	RUN_OK(consume_main, NULL, 1);
}

static void test_yield_round_robin(void **state)
{
	(void)state;
	struct rr r;
	memset(&r, 0, sizeof r);
	RUN_OK(rr_main, &r, 1);
	assert_int_equal(r.yield_rc, 0);
	assert_int_equal(r.ran_before_yield, 0);
	assert_int_equal(r.ran_after_yield, 1);
	/* Round robin: the three alternate in one fixed cycle (which of them
	 * starts is not specified: new processes start newest first). */
	assert_int_equal(strlen(r.log), 15);
	for (int i = 0; i < 15; i++) {
		assert_true(r.log[i] >= 'A' && r.log[i] <= 'C');
		if (i >= 3)
			assert_int_equal(r.log[i], r.log[i - 3]);
	}
	assert_true(r.log[0] != r.log[1] && r.log[1] != r.log[2] && r.log[0] != r.log[2]);
}

/* -------------------------------------------- spawn without memory */

/*
 * With the address space capped, spawning processes that stay alive must
 * end in -ENOMEM (or the limit -EAGAIN if the library pre-reserved room
 * for every process), never in a crash.  Child OS process: the cap stays
 * there.
 */
#define NOMEM_CAP 300000
struct nomem {
	up_pid err;
	long spawned;
	int exit_code;
};

static void nomem_main(void *arg)
{
	struct nomem *n = arg;
	long long vs = vm_size_bytes();
	struct rlimit rl = { .rlim_cur = (rlim_t)vs + (64 << 20), .rlim_max = RLIM_INFINITY };
	if (vs < 0 || setrlimit(RLIMIT_AS, &rl) != 0) {
		n->exit_code = 100;
		return;
	}
	for (long i = 0; i < NOMEM_CAP; i++) {
		up_pid p = up_spawn(wait_msg, NULL);
		if (p < 0) {
			n->err = p;
			break;
		}
		n->spawned++;
		if ((i & 1023) == 0)
			up_yield();
	}
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	up_shutdown();
}

static int spawn_enomem_body(void *arg)
{
	struct nomem *n = arg;
	struct up_run_opts o = run_opts(1);
	o.max_processes = NOMEM_CAP + 1000;
	int rc = up_run(nomem_main, n, &o);
	if (n->exit_code)
		return n->exit_code;
	if (rc != 0)
		return 101;
	if (n->err == 0)
		return 102;
	return n->err == -ENOMEM ? 0 : 103;
}

static void test_spawn_enomem(void **state)
{
	(void)state;
	if (UPT_SANITIZED)
		skip(); /* AddressSanitizer and TSan cannot run under RLIMIT_AS */
	struct nomem *n = shared_alloc(sizeof *n);
	assert_non_null(n);
	int rc = fork_run(spawn_enomem_body, n, 60);
	print_message("  spawned %ld processes within +64 MiB of address space, then %d\n",
		      n->spawned, (int)n->err);
	switch (rc) {
	case 101:
		fail_msg("up_run failed");
	case 102:
		fail_msg("%d spawns within +64 MiB of address space never failed", NOMEM_CAP);
	case 103:
		fail_msg("spawn without memory did not return -ENOMEM");
	default:
		assert_fork_ok(rc, 60, "spawning under RLIMIT_AS");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_spawn_bad_args),
		UPT_TEST(test_spawn_full_stack),
		UPT_TEST(test_self_and_placement),
		UPT_TEST(test_max_processes),
		UPT_TEST(test_stale_pids),
		UPT_TEST(test_invalid_pids),
		UPT_TEST(test_exit),
		UPT_TEST(test_exit_signal),
		UPT_TEST(test_alloc),
		UPT_TEST(test_heap_limit),
		UPT_TEST(test_heap_mark_reset_many),
		UPT_TEST(test_yield_round_robin),
		UPT_TEST(test_busy_cannot_starve),
		UPT_TEST(test_consume),
		UPT_TEST(test_spawn_enomem),
	};
	return UPT_RUN("proc", tests);
}
