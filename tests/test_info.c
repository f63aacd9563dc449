/*
 * test_info.c - introspection (src/info.c): up_info's fields for processes
 * in every state, on the caller's scheduler and on another; per-scheduler
 * counters; the up_print_processes table; every documented error.
 */
#include "helpers.h"

/* ------------------------------------------------------------- children */

static void sleeper(void *arg)
{
	(void)arg;
	void *p = up_alloc(10000);
	PCHECK(p != NULL);
	if (p)
		memset(p, 1, 10000);
	up_sleep(WAIT_NS);
}

static void waiter(void *arg)
{
	(void)arg;
	struct up_msg m;
	int r = up_recv(&m, WAIT_NS);
	PCHECK(r == 0 || r == -ETIMEDOUT);
}

static void reader(void *arg)
{
	int fd = *(int *)arg;
	char c;
	up_io_read(fd, &c, 1, WAIT_NS);
}

static void chatter(void *arg)
{
	up_pid to = *(up_pid *)arg;
	for (int i = 0; i < 100; i++)
		PCHECK_EQ(up_send_word(to, (uint64_t)i), 0);
	up_sleep(WAIT_NS);
}

static void sink(void *arg)
{
	(void)arg;
	up_sleep(WAIT_NS); /* messages queue up while it sleeps */
}

/* Yield until pid's status is want (at most WAIT_NS). */
static int wait_status(up_pid pid, enum up_status want, struct up_info *in)
{
	int64_t end = now_ns() + WAIT_NS;
	int r;
	while ((r = up_info(pid, in)) == 0 && in->status != want && now_ns() < end)
		up_yield();
	if (r == 0 && in->status != want)
		PFAIL("pid %" PRId64 " status %d, wanted %d", pid, in->status, want);
	return r;
}

/* --------------------------------------------------------------- fields */

static void fields_main(void *arg)
{
	(void)arg;
	struct up_info in;
	up_pid self = up_self();

	/* The caller: running, on its scheduler, reductions counting. */
	PCHECK_EQ(up_info(self, &in), 0);
	PCHECK_EQ(in.pid, self);
	PCHECK_EQ(in.status, UP_ST_RUNNING);
	PCHECK_EQ(in.scheduler, up_scheduler());
	PCHECK_EQ(in.node, up_node());
	PCHECK(in.fn == fields_main);
	PCHECK(in.region_bytes > in.stack_bytes && in.stack_bytes >= 16384);
	PCHECK_EQ(in.mailboxes, 1);
	PCHECK(in.name == UP_NIL);
	uint64_t reds0 = in.reductions;
	up_pid dummy = up_spawn(sink, NULL);
	for (int i = 0; i < 50; i++)
		up_send_word(dummy, 1);
	PCHECK_EQ(up_info(self, &in), 0);
	PCHECK(in.reductions >= reds0 + 50);

	/* New, not yet run: runnable. */
	up_pid s = up_spawn(sleeper, NULL);
	PCHECK_EQ(up_info(s, &in), 0);
	PCHECK_EQ(in.status, UP_ST_RUNNABLE);
	PCHECK(in.fn == sleeper);

	/* Sleeping, with its heap in use and mailbox 0 filling up. */
	PCHECK_EQ(wait_status(s, UP_ST_SLEEPING, &in), 0);
	PCHECK(in.heap_bytes >= 10000);
	for (int i = 0; i < 3; i++)
		up_send_word(s, (uint64_t)i);
	PCHECK_EQ(up_info(s, &in), 0);
	PCHECK_EQ(in.mailbox_len[0], 3);

	/* Waiting in a receive. */
	up_pid w = up_spawn(waiter, NULL);
	PCHECK_EQ(wait_status(w, UP_ST_WAITING, &in), 0);

	/* Waiting for I/O. */
	int fds[2];
	PCHECK_EQ(pipe(fds), 0);
	up_pid rd = up_spawn(reader, &fds[0]);
	PCHECK_EQ(wait_status(rd, UP_ST_WAITING_IO, &in), 0);

	/* Name, links, monitors, trap_exit. */
	PCHECK_EQ(up_register(up_atom("info_sleeper"), s), 0);
	PCHECK_EQ(up_link(s), 0);
	up_term ref = up_monitor(s);
	PCHECK(!up_is_bad(ref));
	PCHECK_EQ(up_trap_exit(1), 0);
	PCHECK_EQ(up_info(s, &in), 0);
	PCHECK(in.name == up_atom("info_sleeper"));
	PCHECK_EQ(in.links, 1);
	PCHECK_EQ(in.monitored_by, 1);
	PCHECK_EQ(in.monitors, 0);
	PCHECK_EQ(up_info(self, &in), 0);
	PCHECK_EQ(in.links, 1);
	PCHECK_EQ(in.monitors, 1);
	PCHECK_EQ(in.trap_exit, 1);

	/* Several mailboxes: lengths per mailbox. */
	struct up_spawn_opts o = spawn_opts();
	o.mailboxes = 3;
	up_pid mb = up_spawn_opt(sink, NULL, &o);
	PCHECK_EQ(wait_status(mb, UP_ST_SLEEPING, &in), 0);
	up_send_word_to(mb, 2, 1);
	up_send_word_to(mb, 2, 2);
	up_send_word_to(mb, 1, 3);
	PCHECK_EQ(up_info(mb, &in), 0);
	PCHECK_EQ(in.mailboxes, 3);
	PCHECK_EQ(in.mailbox_len[0], 0);
	PCHECK_EQ(in.mailbox_len[1], 1);
	PCHECK_EQ(in.mailbox_len[2], 2);

	/* Reductions of another process: its 100 sends. */
	up_pid c = up_spawn(chatter, &dummy);
	PCHECK_EQ(wait_status(c, UP_ST_SLEEPING, &in), 0);
	PCHECK(in.reductions >= 100);

	/* After exit: -ESRCH. */
	up_pid pids[] = { s, w, rd, mb, c, dummy };
	PCHECK_EQ(up_unlink(s), 0);
	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++)
		up_exit(pids[i], UP_KILL);
	close(fds[1]);
	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		proc_wait_exit(pids[i]);
		PCHECK_EQ(up_info(pids[i], &in), -ESRCH);
	}
	close(fds[0]);
}

static void test_info_fields(void **state)
{
	(void)state;
	RUN_OK(fields_main, NULL, 1);
}

/* A process of another scheduler: a snapshot of the right process. */
static void cross_main(void *arg)
{
	(void)arg;
	struct up_info in;
	struct up_spawn_opts o = spawn_on(1);
	up_pid s = up_spawn_opt(sleeper, NULL, &o);
	PCHECK(s > 0);
	PCHECK_EQ(wait_status(s, UP_ST_SLEEPING, &in), 0);
	PCHECK_EQ(in.pid, s);
	PCHECK_EQ(in.scheduler, 1);
	PCHECK(in.heap_bytes >= 10000);
	PCHECK(in.fn == sleeper);
	up_exit(s, UP_KILL);
	proc_wait_exit(s);
	PCHECK_EQ(up_info(s, &in), -ESRCH);
}

static void test_info_other_scheduler(void **state)
{
	(void)state;
	RUN_OK(cross_main, NULL, 2);
}

/* --------------------------------------------------------------- errors */

static void *foreign_thread(void *arg)
{
	up_pid pid = *(up_pid *)arg;
	struct up_info in;
	/* Any thread may ask. */
	PCHECK_EQ(up_info(pid, &in), 0);
	PCHECK_EQ(in.pid, pid);
	return NULL;
}

static void errors_main(void *arg)
{
	(void)arg;
	struct up_info in;
	struct up_sched_stats st;
	up_pid self = up_self();
	PCHECK_EQ(up_info(self, NULL), -EINVAL);
	PCHECK_EQ(up_info(0, &in), -EINVAL);
	PCHECK_EQ(up_info(-5, &in), -EINVAL);
	PCHECK_EQ(up_info((up_pid)1 << 62, &in), -EINVAL);
	up_pid c = up_spawn(waiter, NULL);
	up_exit(c, UP_KILL);
	proc_wait_exit(c);
	PCHECK_EQ(up_info(c, &in), -ESRCH);
	PCHECK_EQ(up_sched_stats(-1, &st), -EINVAL);
	PCHECK_EQ(up_sched_stats(up_schedulers(), &st), -EINVAL);
	PCHECK_EQ(up_sched_stats(0, NULL), -EINVAL);
	PCHECK_EQ(up_print_processes(NULL), -EINVAL);
	pthread_t t;
	PCHECK_EQ(pthread_create(&t, NULL, foreign_thread, &self), 0);
	pthread_join(t, NULL);
}

static void test_errors(void **state)
{
	(void)state;
	struct up_info in;
	struct up_sched_stats st;
	assert_int_equal(up_info(1, &in), -ESRCH);
	assert_int_equal(up_sched_stats(0, &st), -ESRCH);
	assert_int_equal(up_print_processes(stdout), -ESRCH);
	RUN_OK(errors_main, NULL, 1);
}

/* ---------------------------------------------------------- scheduler stats */

static void ponger(void *arg)
{
	(void)arg;
	struct up_msg m;
	while (up_recv(&m, WAIT_NS) == 0 && m.word != 0)
		up_send_word((up_pid)m.word, 1);
}

static void stats_main(void *arg)
{
	(void)arg;
	struct up_sched_stats a0, a1, b0, b1;
	PCHECK_EQ(up_sched_stats(0, &a0), 0);
	PCHECK_EQ(up_sched_stats(1, &a1), 0);
	struct up_spawn_opts o = spawn_on(1);
	up_pid p = up_spawn_opt(ponger, NULL, &o);
	for (int i = 0; i < 1000; i++) {
		struct up_msg m;
		up_send_word(p, (uint64_t)up_self());
		if (proc_recv_or_die(&m) != 0)
			return;
	}
	/* One I/O round trip on this scheduler's ring. */
	int fds[2];
	PCHECK_EQ(pipe(fds), 0);
	PCHECK_EQ(up_io_write(fds[1], "x", 1, WAIT_NS), 1);
	char c;
	PCHECK_EQ(up_io_read(fds[0], &c, 1, WAIT_NS), 1);
	close(fds[0]);
	close(fds[1]);
	PCHECK_EQ(up_sched_stats(0, &b0), 0);
	PCHECK_EQ(up_sched_stats(1, &b1), 0);
	PCHECK(b0.msgs_sent - a0.msgs_sent >= 1000);
	PCHECK(b0.msgs_recv - a0.msgs_recv >= 1000);
	PCHECK(b1.msgs_sent - a1.msgs_sent >= 999);
	PCHECK(b1.msgs_recv - a1.msgs_recv >= 999);
	PCHECK(b1.runs - a1.runs >= 500);
	PCHECK(b1.switches >= b1.runs);
	PCHECK(b0.spawns - a0.spawns >= 1);
	PCHECK(b0.io_submitted - a0.io_submitted >= 2);
	PCHECK(b0.io_completed - a0.io_completed >= 2);
	PCHECK_EQ(b1.processes, 1);      /* the ponger */
	PCHECK(b0.processes >= 1);       /* this one */
	up_send_word(p, 0);
	proc_wait_exit(p);
}

static void test_sched_stats(void **state)
{
	(void)state;
	RUN_OK(stats_main, NULL, 2);
}

/* ---------------------------------------------------------- the table */

struct table { char *text; size_t len; long n; };

static void print_main(void *arg)
{
	struct table *t = arg;
	up_pid kids[3];
	for (int i = 0; i < 3; i++)
		kids[i] = up_spawn(sink, NULL);
	struct up_info in;
	for (int i = 0; i < 3; i++)
		wait_status(kids[i], UP_ST_SLEEPING, &in);
	PCHECK_EQ(up_register(up_atom("table_kid"), kids[1]), 0);
	FILE *f = open_memstream(&t->text, &t->len);
	PCHECK(f != NULL);
	if (!f)
		return;
	t->n = up_print_processes(f);
	fclose(f);
	for (int i = 0; i < 3; i++)
		up_exit(kids[i], UP_KILL);
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void test_print_processes(void **state)
{
	(void)state;
	struct table t = { 0 };
	RUN_OK(print_main, &t, 1);
	assert_non_null(t.text);
	print_message("%s", t.text);
	assert_int_equal(t.n, 4);                       /* main and 3 kids */
	assert_int_equal(count(t.text, "\n<0."), 4);    /* a line each */
	assert_int_equal(count(t.text, "sleeping"), 3);
	assert_int_equal(count(t.text, "running"), 1);
	assert_int_equal(count(t.text, "table_kid"), 1);
	assert_int_equal(count(t.text, "scheduler 0 (node"), 1);
	assert_true(strncmp(t.text, "Pid", 3) == 0);
	free(t.text);
}

/* ---------------------------------------------------------- every pid */

static void processes_main(void *arg)
{
	(void)arg;
	up_pid kids[5], got[100];
	struct up_info in;
	for (int i = 0; i < 5; i++)
		kids[i] = up_spawn(sink, NULL);
	for (int i = 0; i < 5; i++)
		wait_status(kids[i], UP_ST_SLEEPING, &in);
	PCHECK_EQ(up_processes(NULL, 0), 6);
	PCHECK_EQ(up_processes(NULL, 1), -EINVAL);
	PCHECK_EQ(up_processes(got, 3), 6);       /* the count, 3 filled */
	long n = up_processes(got, 100);
	PCHECK_EQ(n, 6);
	int seen = 0;
	for (long i = 0; i < n && i < 100; i++) {
		if (got[i] == up_self())
			seen |= 1 << 5;
		for (int k = 0; k < 5; k++)
			if (got[i] == kids[k])
				seen |= 1 << k;
	}
	PCHECK_EQ(seen, 0x3f);
	up_exit(kids[2], UP_KILL);
	proc_wait_exit(kids[2]);
	PCHECK_EQ(up_processes(got, 100), 5);
	for (int i = 0; i < 5; i++)
		up_exit(kids[i], UP_KILL);
}

static void test_processes(void **state)
{
	(void)state;
	up_pid p;
	assert_int_equal(up_processes(&p, 1), -ESRCH);
	RUN_OK(processes_main, NULL, 2);
}

/* ------------------------------------- callers outside, across up_run */

static atomic_int hammer_stop, hammer_bad;
static atomic_llong hammer_pid;
static atomic_long hammer_calls;

/* A plain thread asks all the time, through runtimes starting and ending:
 * every answer is a documented one and nothing is touched after up_run
 * freed it (ASan and TSan run this suite). */
static void *hammer(void *arg)
{
	(void)arg;
	while (!atomic_load(&hammer_stop)) {
		struct up_info in;
		struct up_sched_stats st;
		up_pid pids[8];
		int r = up_info((up_pid)atomic_load(&hammer_pid), &in);
		if (r != 0 && r != -ESRCH && r != -EINVAL)
			atomic_fetch_add(&hammer_bad, 1);
		r = up_sched_stats(0, &st);
		if (r != 0 && r != -ESRCH)
			atomic_fetch_add(&hammer_bad, 1);
		long n = up_processes(pids, 8);
		if (n < 0 && n != -ESRCH)
			atomic_fetch_add(&hammer_bad, 1);
		atomic_fetch_add(&hammer_calls, 1);
	}
	return NULL;
}

static void short_main(void *arg)
{
	(void)arg;
	atomic_store(&hammer_pid, up_self());
	for (int i = 0; i < 5; i++)
		up_spawn(waiter, NULL);
	up_yield();
	up_shutdown();
}

static void test_outside_callers_across_runs(void **state)
{
	(void)state;
	pthread_t t;
	atomic_store(&hammer_stop, 0);
	atomic_store(&hammer_bad, 0);
	assert_int_equal(pthread_create(&t, NULL, hammer, NULL), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(run_main(short_main, NULL, 2), 0);
	atomic_store(&hammer_stop, 1);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&hammer_bad), 0);
	assert_true(atomic_load(&hammer_calls) > 0);
}

/* A write error on the stream: -EIO. */
static void eio_main(void *arg)
{
	(void)arg;
	FILE *f = fopen("/dev/full", "w");
	PCHECK(f != NULL);
	if (!f)
		return;
	setvbuf(f, NULL, _IONBF, 0);
	PCHECK_EQ(up_print_processes(f), -EIO);
	fclose(f);
}

static void test_print_eio(void **state)
{
	(void)state;
	RUN_OK(eio_main, NULL, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_info_fields),
		UPT_TEST(test_info_other_scheduler),
		UPT_TEST(test_errors),
		UPT_TEST(test_sched_stats),
		UPT_TEST(test_print_processes),
		UPT_TEST(test_processes),
		UPT_TEST(test_outside_callers_across_runs),
		UPT_TEST(test_print_eio),
	};
	return UPT_RUN("info", tests);
}
