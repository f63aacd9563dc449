/*
 * test_runtime.c - the runtime's life cycle (up_run, up_shutdown,
 * up_schedulers): argument checks of up_run, return after main exits and
 * after every process has exited, one pinned scheduler per allowed CPU,
 * up_shutdown from a process and from a plain thread while processes are
 * blocked (or yielding) for ever, several runs in a row
 * (and stale pids of an earlier run), -EBUSY for a nested or concurrent
 * up_run, -ENOMEM-class failures of up_run reported as errors (no abort),
 * and the documented results of every entry point outside a runtime and
 * outside a process during a run.
 */
#include "helpers.h"


/* ------------------------------------------------------------ up_run args */

static atomic_int ran;

static void mark_ran(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
}

static void test_run_null_fn(void **state)
{
	(void)state;
	assert_int_equal(up_run(NULL, NULL, NULL), -EINVAL);
	struct up_run_opts o = run_opts(1);
	assert_int_equal(up_run(NULL, NULL, &o), -EINVAL);
}

static void test_run_bad_options(void **state)
{
	(void)state;
	struct up_run_opts o;

	atomic_store(&ran, 0);

	o = run_opts(0);
	o.stack_size = (size_t)2 << 30; /* 2 GiB: far over 1 GiB */
	assert_int_equal(up_run(mark_ran, NULL, &o), -EINVAL);

	o = run_opts(0);
	o.stack_size = SIZE_MAX;
	assert_int_equal(up_run(mark_ran, NULL, &o), -EINVAL);

	o = run_opts(0);
	o.stack_size = (size_t)1 << 40;
	assert_int_equal(up_run(mark_ran, NULL, &o), -EINVAL);

	/* The pid format holds at most 256 M processes. */
	o = run_opts(0);
	o.max_processes = (uint64_t)1 << 40;
	assert_int_equal(up_run(mark_ran, NULL, &o), -EINVAL);

	o = run_opts(0);
	o.max_processes = UINT64_MAX;
	assert_int_equal(up_run(mark_ran, NULL, &o), -EINVAL);

	/* None of them started the main process. */
	assert_int_equal(atomic_load(&ran), 0);

	/* A rejected call leaves nothing behind: a good run works now. */
	assert_int_equal(run_main(mark_ran, NULL, 1), 0);
	assert_int_equal(atomic_load(&ran), 1);
}

/* A valid, non-default option set is accepted (guards against a checker
 * that rejects everything). */
static void test_run_good_options(void **state)
{
	(void)state;
	struct up_run_opts o = run_opts(2);
	o.stack_size = 16 * 1024;
	o.heap_size = 8 * 1024;
	o.max_processes = 100;
	o.spin_us = UP_NO_SPIN;
	o.warm_regions = 1;
	atomic_store(&ran, 0);
	assert_int_equal(up_run(mark_ran, NULL, &o), 0);
	assert_int_equal(atomic_load(&ran), 1);

	/* Odd stack size: rounded up to pages, not rejected. */
	o = run_opts(1);
	o.stack_size = 70000;
	assert_int_equal(up_run(mark_ran, NULL, &o), 0);
	assert_int_equal(atomic_load(&ran), 2);

	/* opts == NULL: all defaults. */
	assert_int_equal(up_run(mark_ran, NULL, NULL), 0);
	assert_int_equal(atomic_load(&ran), 3);
}

/* ------------------------------------------------------ up_run returns */

struct basic {
	atomic_int main_ran;
	atomic_int after_exit;
	up_pid self;
	int schedulers;
	int scheduler;
	int node;
	int sched_node;
	int sched_node_past, sched_node_neg;
};

static void basic_main(void *arg)
{
	struct basic *b = arg;
	b->self = up_self();
	b->schedulers = up_schedulers();
	b->scheduler = up_scheduler();
	b->node = up_node();
	b->sched_node = up_scheduler_node(b->scheduler);
	b->sched_node_past = up_scheduler_node(b->schedulers);
	b->sched_node_neg = up_scheduler_node(-1);
	atomic_store(&b->main_ran, 1);
}

static void test_run_returns_after_main(void **state)
{
	(void)state;
	struct basic b = { 0 };

	assert_int_equal(run_main(basic_main, &b, 1), 0);
	assert_int_equal(atomic_load(&b.main_ran), 1);
	assert_true(b.self > 0);
	assert_int_equal(b.schedulers, 1);
	assert_int_equal(b.scheduler, 0);
	assert_true(b.node >= 0);
	assert_int_equal(b.sched_node, b.node);
	assert_int_equal(b.sched_node_past, -EINVAL);
	assert_int_equal(b.sched_node_neg, -EINVAL);

	/* Explicit scheduler count is honoured (even above the CPU count). */
	memset(&b, 0, sizeof b);
	assert_int_equal(run_main(basic_main, &b, 3), 0);
	assert_int_equal(b.schedulers, 3);
	assert_true(b.scheduler >= 0 && b.scheduler < 3);
	assert_int_equal(b.sched_node, b.node);

	/* Default: one scheduler per CPU of the affinity mask. */
	memset(&b, 0, sizeof b);
	assert_int_equal(run_main(basic_main, &b, 0), 0);
	assert_int_equal(b.schedulers, allowed_cpus());
}

static void exit_main(void *arg)
{
	struct basic *b = arg;
	atomic_store(&b->main_ran, 1);
	up_exit(up_self(), 0);
	atomic_store(&b->after_exit, 1);
}

static void test_run_returns_after_main_up_exit(void **state)
{
	(void)state;
	struct basic b = { 0 };
	assert_int_equal(run_main(exit_main, &b, 1), 0);
	assert_int_equal(atomic_load(&b.main_ran), 1);
	assert_int_equal(atomic_load(&b.after_exit), 0);
}

/* up_run waits for every process, not just main. */
#define OUTLIVE_N 20
struct outlive {
	atomic_int done;
	atomic_int main_done;
	atomic_int main_done_seen_by_child;
};

static void outlive_child(void *arg)
{
	struct outlive *o = arg;
	/* Run a while after main is gone. */
	for (int i = 0; i < 50; i++)
		up_yield();
	if (atomic_load(&o->main_done))
		atomic_fetch_add(&o->main_done_seen_by_child, 1);
	atomic_fetch_add(&o->done, 1);
}

static void outlive_main(void *arg)
{
	struct outlive *o = arg;
	for (int i = 0; i < OUTLIVE_N; i++) {
		up_pid p = up_spawn(outlive_child, o);
		PCHECK(p > 0);
	}
	atomic_store(&o->main_done, 1);
}

static void test_run_waits_for_all_processes(void **state)
{
	(void)state;
	struct outlive o = { 0 };
	RUN_OK(outlive_main, &o, 2);
	assert_int_equal(atomic_load(&o.done), OUTLIVE_N);
	/* The children did run after main had finished. */
	assert_true(atomic_load(&o.main_done_seen_by_child) > 0);
}

/* ------------------------------------------------------------- pinning */

/* One scheduler per allowed CPU, each pinned: a process of scheduler s runs
 * on one CPU only, a different one for each scheduler, inside the mask. */
#define PIN_MAX 64
#define PIN_SAMPLES 200
struct pins {
	int n;
	int cpu[PIN_MAX];
	int moved[PIN_MAX];
	atomic_int done;
};

struct pin_arg {
	struct pins *p;
	int s;
};

static void pin_child(void *arg)
{
	struct pin_arg *a = arg;
	int first = sched_getcpu();
	a->p->cpu[a->s] = first;
	for (int i = 0; i < PIN_SAMPLES; i++) {
		up_yield();
		if (sched_getcpu() != first)
			a->p->moved[a->s]++;
	}
	atomic_fetch_add(&a->p->done, 1);
}

static void pin_main(void *arg)
{
	struct pins *p = arg;
	static struct pin_arg pa[PIN_MAX];
	p->n = up_schedulers();
	for (int s = 0; s < p->n && s < PIN_MAX; s++) {
		pa[s] = (struct pin_arg){ p, s };
		struct up_spawn_opts o = spawn_on(s);
		PCHECK(up_spawn_opt(pin_child, &pa[s], &o) > 0);
	}
}

static void test_schedulers_pinned(void **state)
{
	(void)state;
	struct pins p;
	cpu_set_t allowed;
	memset(&p, 0, sizeof p);
	assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
	RUN_OK(pin_main, &p, 0);
	assert_int_equal(p.n, CPU_COUNT(&allowed));
	if (p.n > PIN_MAX)
		p.n = PIN_MAX;
	assert_int_equal(atomic_load(&p.done), p.n);
	for (int s = 0; s < p.n; s++) {
		assert_true(p.cpu[s] >= 0 && CPU_ISSET(p.cpu[s], &allowed));
		assert_int_equal(p.moved[s], 0);
		for (int t = 0; t < s; t++)
			assert_true(p.cpu[s] != p.cpu[t]);
	}
	/* The test thread's own mask is untouched by the run. */
	cpu_set_t after;
	assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
	assert_true(CPU_EQUAL(&allowed, &after));
}

/* ------------------------------------------------------------ shutdown */

#define BLOCKED_N 6
struct shut {
	atomic_int blocked;
	atomic_int woke;
	int shutdown_rc;
	atomic_int ready;
	int run_rc, again_rc, schedulers_after, rerun_rc, rerun_ran;
	int with_runnable, expect_blocked;
};

static void blocked_forever(void *arg)
{
	struct shut *s = arg;
	struct up_msg m;
	atomic_fetch_add(&s->blocked, 1);
	up_recv(&m, UP_INFINITY);
	atomic_fetch_add(&s->woke, 1);
}

static void runnable_forever(void *arg)
{
	struct shut *s = arg;
	atomic_fetch_add(&s->blocked, 1);
	for (;;)
		up_yield();
}

static void shut_main(void *arg)
{
	struct shut *s = arg;
	for (int i = 0; i < BLOCKED_N; i++) {
		struct up_spawn_opts so = spawn_on(i % up_schedulers());
		PCHECK(up_spawn_opt(blocked_forever, s, &so) > 0);
	}
	while (atomic_load(&s->blocked) < BLOCKED_N)
		up_yield();
	s->shutdown_rc = up_shutdown();
}

/* Shutdown tests run in a child OS process: a runtime that does not stop
 * fails the test after SHUT_TIMEOUT s instead of hanging the suite. */
#define SHUT_TIMEOUT 10

static int shut_proc_body(void *arg)
{
	struct shut *s = arg;
	s->run_rc = run_main(shut_main, s, 2);
	/* The runtime is gone: shutting it down again says so. */
	s->again_rc = up_shutdown();
	s->schedulers_after = up_schedulers();
	/* And a new run works. */
	atomic_store(&ran, 0);
	s->rerun_rc = run_main(mark_ran, NULL, 2);
	s->rerun_ran = atomic_load(&ran);
	return 0;
}

static void test_shutdown_from_process(void **state)
{
	(void)state;
	struct shut *s = shared_alloc(sizeof *s);
	assert_non_null(s);
	s->run_rc = s->again_rc = s->rerun_rc = 1;
	assert_fork_ok(fork_run(shut_proc_body, s, SHUT_TIMEOUT), SHUT_TIMEOUT,
		       "up_run after up_shutdown from a process");
	assert_int_equal(s->run_rc, 0);
	assert_int_equal(s->shutdown_rc, 0);
	assert_int_equal(atomic_load(&s->blocked), BLOCKED_N);
	/* The blocked processes were ended without running further. */
	assert_int_equal(atomic_load(&s->woke), 0);
	assert_int_equal(s->again_rc, -ESRCH);
	assert_int_equal(s->schedulers_after, -ESRCH);
	assert_int_equal(s->rerun_rc, 0);
	assert_int_equal(s->rerun_ran, 1);
}

static void shut_ext_main(void *arg)
{
	struct shut *s = arg;
	for (int i = 0; i < BLOCKED_N; i++)
		PCHECK(up_spawn(blocked_forever, s) > 0);
	/* A process that never blocks: shutdown must stop it too. */
	if (s->with_runnable)
		PCHECK(up_spawn(runnable_forever, s) > 0);
	/* main itself blocks for ever as well. */
	blocked_forever(s);
}

static void *shutdown_thread(void *arg)
{
	struct shut *s = arg;
	int64_t deadline = now_ns() + WAIT_NS;
	/* all children + main */
	while (atomic_load(&s->blocked) < s->expect_blocked && now_ns() < deadline)
		thread_sleep_ns(1000000);
	thread_sleep_ns(20 * MS);
	int rc = up_shutdown();
	atomic_store(&s->ready, rc == 0 ? 1 : rc);
	return NULL;
}

static int shut_thread_body(void *arg)
{
	struct shut *s = arg;
	pthread_t t;
	if (pthread_create(&t, NULL, shutdown_thread, s) != 0)
		return 2;
	s->run_rc = run_main(shut_ext_main, s, 2);
	pthread_join(t, NULL);
	return 0;
}

static void shutdown_from_thread(int with_runnable, const char *what)
{
	struct shut *s = shared_alloc(sizeof *s);
	assert_non_null(s);
	s->run_rc = 1;
	s->with_runnable = with_runnable;
	s->expect_blocked = BLOCKED_N + 1 + with_runnable;
	assert_fork_ok(fork_run(shut_thread_body, s, SHUT_TIMEOUT), SHUT_TIMEOUT, what);
	assert_int_equal(s->run_rc, 0);
	assert_int_equal(atomic_load(&s->ready), 1); /* up_shutdown returned 0 */
	assert_int_equal(atomic_load(&s->blocked), s->expect_blocked);
	assert_int_equal(atomic_load(&s->woke), 0);
}

static void test_shutdown_from_thread(void **state)
{
	(void)state;
	shutdown_from_thread(0, "up_run after up_shutdown from a plain thread");
}

/* up_shutdown also ends a process that never blocks (it only yields). */
static void test_shutdown_stops_runnable(void **state)
{
	(void)state;
	shutdown_from_thread(1, "up_run after up_shutdown, one process yielding for ever");
}

/* ---------------------------------------------------- several runs */

#define RUNS 8
struct multi {
	up_pid prev_pids[4];
	int nprev;
	atomic_int sum;
	int run;
};

static void multi_child(void *arg)
{
	struct multi *m = arg;
	struct up_msg msg;
	if (proc_recv_or_die(&msg) == 0)
		atomic_fetch_add(&m->sum, (int)msg.word);
}

static void multi_main(void *arg)
{
	struct multi *m = arg;
	/* Pids of the previous run name no process of this one. */
	for (int i = 0; i < m->nprev; i++) {
		int a = up_alive(m->prev_pids[i]);
		const char *who = i == 0 ? "main" : "a child";
		if (a != 0 && a != -EINVAL)
			PFAIL("run %d: up_alive(pid %" PRId64 " of %s of the previous run) = %d"
			      " (this run's main is %" PRId64 ")",
			      m->run, m->prev_pids[i], who, a, up_self());
		int rc = up_send_word(m->prev_pids[i], 7);
		if (rc != -ESRCH && rc != -EINVAL)
			PFAIL("run %d: send to pid of %s of the previous run = %d", m->run, who, rc);
	}
	up_pid kids[3];
	for (int i = 0; i < 3; i++) {
		kids[i] = up_spawn(multi_child, m);
		PCHECK(kids[i] > 0);
	}
	for (int i = 0; i < 3; i++)
		PCHECK_EQ(up_send_word(kids[i], (uint64_t)(i + 1)), 0);
	m->nprev = 0;
	m->prev_pids[m->nprev++] = up_self();
	for (int i = 0; i < 3; i++)
		m->prev_pids[m->nprev++] = kids[i];
	for (int i = 0; i < 3; i++)
		proc_wait_exit(kids[i]);
}

static void test_run_several_times(void **state)
{
	(void)state;
	struct multi m = { 0 };
	for (int r = 0; r < RUNS; r++) {
		m.run = r;
		atomic_store(&m.sum, 0);
		assert_int_equal(run_main(multi_main, &m, (unsigned)(r % 2 + 1)), 0);
		assert_int_equal(atomic_load(&m.sum), 1 + 2 + 3);
		assert_int_equal(m.nprev, 4);
	}
	assert_no_pfail();
}

/* Mappings of this OS process (lines of /proc/self/maps), or -1. */
static long maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void spawn_and_wait(void *arg)
{
	(void)arg;
	up_pid c = up_spawn(mark_ran, NULL);
	PCHECK(c > 0);
	proc_wait_exit(c);
}

/* A run leaves no mapping behind: a million processes' worth of runs in
 * one program (a test suite, a fuzzer) must not creep to vm.max_map_count.
 * Sanitizer runtimes give each thread an alternate signal stack: a
 * scheduler that replaced it for good leaked one per thread (60 KiB). */
static void test_runs_leave_no_mapping(void **state)
{
	(void)state;
	/* Two windows of 40 runs: a runtime's caches (ThreadSanitizer keeps
	 * ~20 mappings of dead threads' state) fill in the first, a leak
	 * grows in both. */
	long n[3];
	for (int w = 0; w < 3; w++) {
		n[w] = maps_count();
		assert_true(n[w] > 0);
		for (int r = 0; w < 2 && r < 40; r++)
			assert_int_equal(run_main(spawn_and_wait, NULL, 2), 0);
	}
	if (n[2] - n[1] > 8)
		fail_msg("runs of 2 schedulers: %ld mappings, %ld after 40 runs, %ld after 80",
			 n[0], n[1], n[2]);
	assert_no_pfail();
}

/* ------------------------------------------------------------- -EBUSY */

struct busy {
	int nested_rc;
	int thread_rc;
	up_pid main_pid;
	atomic_int started;
};

static void busy_main(void *arg)
{
	struct busy *b = arg;
	b->nested_rc = up_run(mark_ran, NULL, NULL);
	b->main_pid = up_self();
	atomic_store(&b->started, 1);
	/* Stay alive until the helper thread has tried too; it wakes us. */
	struct up_msg m;
	proc_recv_or_die(&m);
}

static void *busy_thread(void *arg)
{
	struct busy *b = arg;
	if (thread_wait_flag(&b->started) != 0) {
		PFAIL("main process never started");
		up_shutdown();
		return NULL;
	}
	struct up_run_opts o = run_opts(1);
	b->thread_rc = up_run(mark_ran, NULL, &o);
	PCHECK_EQ(up_send_word(b->main_pid, 1), 0);
	return NULL;
}

static void test_run_busy(void **state)
{
	(void)state;
	struct busy b = { .nested_rc = 1, .thread_rc = 1 };
	pthread_t t;
	atomic_store(&ran, 0);
	assert_int_equal(pthread_create(&t, NULL, busy_thread, &b), 0);
	int rc = run_main(busy_main, &b, 2);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(b.nested_rc, -EBUSY);
	assert_int_equal(b.thread_rc, -EBUSY);
	/* Neither refused run started its main function. */
	assert_int_equal(atomic_load(&ran), 0);
	assert_no_pfail();
}

/* ------------------------------------------------- outside a runtime */

static void never_runs(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
}

static void test_outside_runtime(void **state)
{
	(void)state;
	struct up_msg m;
	struct up_spawn_opts so = spawn_opts();

	atomic_store(&ran, 0);
	assert_int_equal(up_shutdown(), -ESRCH);
	assert_int_equal(up_schedulers(), -ESRCH);
	assert_int_equal(up_scheduler_node(0), -ESRCH);
	assert_int_equal(up_alive(1), -ESRCH);
	assert_int_equal(up_send_word(1, 42), -ESRCH);
	assert_int_equal(up_send_word_to(1, 0, 42), -ESRCH);
	assert_int_equal(up_spawn(never_runs, NULL), -ESRCH);
	assert_int_equal(up_spawn_opt(never_runs, NULL, &so), -ESRCH);
	assert_int_equal(up_spawn_opt(never_runs, NULL, NULL), -ESRCH);

	/* Process-only functions: the thread is no process. */
	assert_int_equal(up_self(), UP_PID_NONE);
	assert_int_equal(up_yield(), -EPERM);
	assert_int_equal(up_recv(&m, 0), -EPERM);
	assert_int_equal(up_recv(&m, UP_INFINITY), -EPERM);
	assert_int_equal(up_recv_from(0, &m, 0), -EPERM);
	assert_int_equal(up_mailbox_len(0), -EPERM);
	assert_int_equal(up_exit(1, up_int(42)), -ESRCH); /* no such process */
	assert_null(up_alloc(16));
	assert_int_equal(up_node(), -EPERM);
	assert_int_equal(up_scheduler(), -EPERM);

	assert_int_equal(atomic_load(&ran), 0);
}

/* The same after runs have come and gone: nothing of them is left. */
static void test_outside_runtime_after_runs(void **state)
{
	test_outside_runtime(state);
}

/* ------------------------------------- plain thread during a run */

struct ext {
	atomic_int go;
	up_pid main_pid;
	/* results from the plain thread */
	up_pid self;
	int yield, recv, recv_inf, recv_from, mbox_len, exit_rc, node, sched;
	void *alloc;
	int schedulers;
	int alive_main;
	int send_rc;
	up_pid spawned;
	/* from the process spawned by the thread */
	atomic_int child_sched;
	atomic_int child_ran;
	uint64_t word;
	int sched_node0;
};

static void ext_child(void *arg)
{
	struct ext *e = arg;
	atomic_store(&e->child_sched, up_scheduler());
	atomic_store(&e->child_ran, 1);
}

static void ext_main(void *arg)
{
	struct ext *e = arg;
	struct up_msg m;
	e->main_pid = up_self();
	atomic_store(&e->go, 1);
	if (proc_recv_or_die(&m) == 0)
		e->word = m.word;
}

static void *ext_thread(void *arg)
{
	struct ext *e = arg;
	struct up_msg m;
	if (thread_wait_flag(&e->go) != 0) {
		PFAIL("main process never started");
		up_shutdown();
		return NULL;
	}
	e->self = up_self();
	e->yield = up_yield();
	e->recv = up_recv(&m, 0);
	e->recv_inf = up_recv(&m, UP_INFINITY);
	e->recv_from = up_recv_from(0, &m, 0);
	e->mbox_len = (int)up_mailbox_len(0);
	e->exit_rc = up_exit(e->main_pid, 0);
	e->alloc = up_alloc(64);
	e->node = up_node();
	e->sched = up_scheduler();
	/* The thread-safe functions do work from here. */
	e->schedulers = up_schedulers();
	e->sched_node0 = up_scheduler_node(0);
	e->alive_main = up_alive(e->main_pid);
	e->spawned = up_spawn(ext_child, e);
	e->send_rc = up_send_word(e->main_pid, 0xfeedULL);
	return NULL;
}

static void test_plain_thread_during_run(void **state)
{
	(void)state;
	struct ext e = { 0 };
	pthread_t t;
	atomic_store(&e.child_sched, -100);
	assert_int_equal(pthread_create(&t, NULL, ext_thread, &e), 0);
	int rc = run_main(ext_main, &e, 2);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_no_pfail();

	assert_int_equal(e.self, UP_PID_NONE);
	assert_int_equal(e.yield, -EPERM);
	assert_int_equal(e.recv, -EPERM);
	assert_int_equal(e.recv_inf, -EPERM);
	assert_int_equal(e.recv_from, -EPERM);
	assert_int_equal(e.mbox_len, -EPERM);
	assert_int_equal(e.exit_rc, 0); /* a normal exit signal: allowed, no effect */
	assert_null(e.alloc);
	assert_int_equal(e.node, -EPERM);
	assert_int_equal(e.sched, -EPERM);

	assert_int_equal(e.schedulers, 2);
	assert_true(e.sched_node0 >= 0);
	assert_int_equal(e.alive_main, 1);
	assert_true(e.spawned > 0);
	assert_int_equal(atomic_load(&e.child_ran), 1);
	/* Spawned from outside a process: placed on scheduler 0. */
	assert_int_equal(atomic_load(&e.child_sched), 0);
	assert_int_equal(e.send_rc, 0);
	assert_int_equal(e.word, 0xfeedULL);
}

/* ------------------------------------------- resource failures of up_run */

/*
 * With the address space capped just above what the OS process uses, up_run
 * cannot set up its memory: it must return a negative errno (-ENOMEM, or
 * -EAGAIN from the thread start), not crash or abort.  Run in a child OS
 * process so the cap does not leak into the other tests.
 */
static int run_enomem_body(void *arg)
{
	int *rcp = arg;
	long long vs = vm_size_bytes();
	struct rlimit rl = { .rlim_cur = (rlim_t)vs + (2 << 20), .rlim_max = RLIM_INFINITY };
	if (vs < 0 || setrlimit(RLIMIT_AS, &rl) != 0)
		return 100;
	atomic_store(&ran, 0);
	int rc = up_run(mark_ran, NULL, NULL);
	*rcp = rc;
	if (rc == 0)
		return 101;
	if (atomic_load(&ran) != 0)
		return 102;
	if (rc != -ENOMEM && rc != -EAGAIN) {
		fprintf(stderr, "  up_run = %d\n", rc);
		return 103;
	}
	/* The failed run released what it had: with the cap lifted a run
	 * succeeds. */
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	rc = up_run(mark_ran, NULL, NULL);
	if (rc != 0 || atomic_load(&ran) != 1)
		return 104;
	return 0;
}

static void test_run_enomem(void **state)
{
	(void)state;
	if (UPT_SANITIZED)
		skip(); /* AddressSanitizer and TSan cannot run under RLIMIT_AS */
	int *up_rc = shared_alloc(sizeof *up_rc);
	assert_non_null(up_rc);
	int rc = fork_run(run_enomem_body, up_rc, 30);
	print_message("  up_run with 2 MiB of address space left: %d\n", *up_rc);
	switch (rc) {
	case 101:
		fail_msg("up_run succeeded with no address space left");
	case 102:
		fail_msg("up_run failed but ran main");
	case 103:
		fail_msg("up_run returned an error other than -ENOMEM/-EAGAIN");
	case 104:
		fail_msg("up_run failed after a failed run with the cap lifted");
	default:
		assert_fork_ok(rc, 30, "up_run under RLIMIT_AS");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_outside_runtime),
		UPT_TEST(test_run_null_fn),
		UPT_TEST(test_run_bad_options),
		UPT_TEST(test_run_good_options),
		UPT_TEST(test_run_returns_after_main),
		UPT_TEST(test_run_returns_after_main_up_exit),
		UPT_TEST(test_run_waits_for_all_processes),
		UPT_TEST(test_schedulers_pinned),
		UPT_TEST(test_shutdown_from_process),
		UPT_TEST(test_shutdown_from_thread),
		UPT_TEST(test_shutdown_stops_runnable),
		UPT_TEST(test_run_several_times),
		UPT_TEST(test_runs_leave_no_mapping),
		UPT_TEST(test_run_busy),
		UPT_TEST(test_plain_thread_during_run),
		UPT_TEST(test_run_enomem),
		UPT_TEST(test_outside_runtime_after_runs),
	};
	return UPT_RUN("runtime", tests);
}
