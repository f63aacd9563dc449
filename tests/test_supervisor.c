/*
 * test_supervisor.c - supervisors as OTP's supervisor behaviour defines
 * them: restarts per strategy (one_for_one, one_for_all, rest_for_one) and
 * restart type (permanent, transient, temporary), restart intensity, ordered
 * shutdown (reverse start order; shutdown then kill after shutdown_ns;
 * brutal kill), the parent's exit, nesting (a three-level tree), spec
 * validation and the client calls.
 *
 * Every test runs its runtime in a child OS process (fork_run) so that a
 * supervisor that never stops cannot hang the suite.  Workers report each
 * start to the test process as {started, Idx, Pid} and record, when they
 * trap exits, the order in which they were asked to shut down.
 */
#include "helpers.h"

#define RUN_TIMEOUT_S 120
#define MAXW 16

/* ------------------------------------------------------------- workers */

struct world {
	up_pid tester;                /* gets {started, Idx, Pid} */
	atomic_int starts[MAXW];      /* times worker Idx started */
	atomic_llong pid[MAXW];       /* its latest pid */
	atomic_int stop_order[MAXW];  /* Idx of each worker asked to shut down */
	atomic_int nstopped;
	atomic_int got_shutdown[MAXW];
};
static struct world W;

enum { W_TRAP = 1, W_IGNORE_SHUTDOWN = 2 };

struct warg {
	int idx;
	unsigned flags;
};




/*
 * A worker.  Messages: crash (exit with reason crash), normal (return),
 * shutdown_tuple (exit {shutdown, x}); when trapping, an EXIT with reason
 * shutdown is recorded in W.stop_order and then obeyed (exit shutdown)
 * unless W_IGNORE_SHUTDOWN.
 */
static void worker(void *arg)
{
	const struct warg *a = arg;
	up_pid self = up_self();

	atomic_store(&W.pid[a->idx], self);
	atomic_fetch_add(&W.starts[a->idx], 1);
	if (a->flags & W_TRAP)
		up_trap_exit(1);
	if (W.tester)
		up_send(W.tester, up_tuplev(3, A("started"), up_int(a->idx), up_pid_term(self)));
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, UP_INFINITY) != 0)
			return;
		if (m.kind != UP_MSG_TERM)
			continue;
		up_term t = m.term;
		if (is_tagged(t, A("EXIT"), 3)) {
			up_term reason = el(t, 2);
			if (reason == UP_SHUTDOWN) {
				int i = atomic_fetch_add(&W.nstopped, 1);
				if (i < MAXW)
					atomic_store(&W.stop_order[i], a->idx);
				atomic_fetch_add(&W.got_shutdown[a->idx], 1);
				if (a->flags & W_IGNORE_SHUTDOWN) {
					up_msg_free(&m);
					continue;
				}
			}
			if (reason != UP_NORMAL)
				up_exit(self, reason);
		} else if (t == A("crash")) {
			up_exit(self, A("crash"));
		} else if (t == A("normal")) {
			return;
		} else if (t == A("shutdown_tuple")) {
			up_exit(self, up_tuplev(2, UP_SHUTDOWN, A("x")));
		}
		up_msg_free(&m);
	}
}

static void world_reset(void)
{
	memset(&W, 0, sizeof W);
	W.tester = up_self();
}

struct started_arg {
	up_term idx;
};

static int match_started(const struct up_msg *m, void *arg)
{
	const struct started_arg *s = arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("started"), 3) &&
	       el(m->term, 1) == s->idx;
}

/* Wait for worker idx's next start: its pid, or -1 (recorded). */
static up_pid await_start(int idx)
{
	struct started_arg s = { up_int(idx) };
	struct up_msg m;
	if (up_recv_match(match_started, &s, &m, WAIT_NS, 0) != 0) {
		PFAIL("worker %d did not start", idx);
		up_shutdown();
		return -1;
	}
	up_pid pid = 0;
	up_get_pid(el(m.term, 2), &pid);
	up_msg_free(&m);
	return pid;
}

static int match_any_start(const struct up_msg *m, void *arg)
{
	(void)arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("started"), 3);
}

/* No start of any worker pending (in the mailbox now or within ms). */
static int no_start_within(int64_t ms)
{
	struct up_msg m;
	return up_recv_match(match_any_start, NULL, &m, ms * MS, 0) == -ETIMEDOUT;
}

static int match_atom(const struct up_msg *m, void *arg)
{
	return m->kind == UP_MSG_TERM && m->term == *(up_term *)arg;
}

static void await_atom(const char *name)
{
	up_term a = A(name);
	struct up_msg m;
	if (up_recv_match(match_atom, &a, &m, WAIT_NS, 0) != 0) {
		PFAIL("no '%s' message", name);
		up_shutdown();
	}
}

/* A child spec for worker i. */
static struct up_child_spec wspec(const char *id, struct warg *a, enum up_restart r,
				  int64_t shutdown_ns)
{
	struct up_child_spec c = { .id = A(id), .start = worker, .arg = a, .restart = r,
				   .shutdown_ns = shutdown_ns };
	return c;
}

static up_term monitor_of(up_pid pid) { return up_monitor(pid); }


/* Wait for the DOWN of ref: the reason, or UP_NIL (recorded). */
static up_term await_down(up_term ref)
{
	struct down_arg d = { ref };
	struct up_msg m;
	if (up_recv_match(match_down, &d, &m, WAIT_NS, 0) != 0) {
		PFAIL("no DOWN");
		up_shutdown();
		return UP_NIL;
	}
	return el(m.term, 4);
}


/* Run fn in a runtime of 2 schedulers inside a child OS process. */
struct run_case {
	up_fn fn;
	void *arg;
};

static int run_body(void *p)
{
	struct run_case *c = p;
	int r = run_main(c->fn, c->arg, 2);
	if (r != 0)
		fprintf(stderr, "up_run: %d\n", r);
	return r == 0 ? 0 : 1;
}

#define RUN_FORKED(fn)                                                      \
	do {                                                                \
		struct run_case c_ = { (fn), NULL };                        \
		assert_fork_ok(fork_run(run_body, &c_, RUN_TIMEOUT_S), RUN_TIMEOUT_S, #fn); \
	} while (0)

static const int64_t SHUT = 5000 * MS; /* a generous shutdown time */

/* -------------------------------------------------------- strategies */

static struct warg wa[MAXW];

static void args_init(unsigned flags)
{
	for (int i = 0; i < MAXW; i++)
		wa[i] = (struct warg){ .idx = i, .flags = flags };
}

/* Start a supervisor with n permanent workers w0..w(n-1) and wait for all
 * of them: their pids in pids[]. */
static up_pid start_n(enum up_strategy st, int n, up_pid *pids, struct up_child_spec *cs)
{
	static const char *ids[] = { "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7" };
	for (int i = 0; i < n; i++)
		cs[i] = wspec(ids[i], &wa[i], UP_PERMANENT, SHUT);
	struct up_sup_spec spec = { .strategy = st, .intensity = 10, .period_ns = 10000 * MS,
				    .nchildren = (size_t)n, .children = cs };
	up_pid sup = up_supervisor_start(&spec);
	PCHECK(sup > 0);
	for (int i = 0; i < n; i++)
		pids[i] = await_start(i);
	return sup;
}

static void check_child(up_pid sup, int i, up_pid want)
{
	static const char *ids[] = { "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7" };
	up_pid got = up_supervisor_child(sup, A(ids[i]), WAIT_NS);
	if (got != want)
		PFAIL("child w%d: %" PRId64 ", expected %" PRId64, i, got, want);
}

static void one_for_one_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	up_pid p[3];
	struct up_child_spec cs[3];
	up_pid sup = start_n(UP_ONE_FOR_ONE, 3, p, cs);
	for (int i = 0; i < 3; i++)
		check_child(sup, i, p[i]);

	up_send(p[1], A("crash"));
	up_pid b2 = await_start(1);
	PCHECK(b2 > 0 && b2 != p[1]);
	PCHECK_EQ(up_alive(p[1]), 0);
	check_child(sup, 0, p[0]);
	check_child(sup, 1, b2);
	check_child(sup, 2, p[2]);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 1);
	PCHECK(no_start_within(20));
	PCHECK_EQ(atomic_load(&W.starts[0]), 1);
	PCHECK_EQ(atomic_load(&W.starts[1]), 2);
	PCHECK_EQ(atomic_load(&W.starts[2]), 1);

	/* A permanent child is restarted after a normal exit too. */
	up_send(p[0], A("normal"));
	up_pid a2 = await_start(0);
	check_child(sup, 0, a2);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 2);

	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	PCHECK_EQ(up_alive(sup), 0);
	PCHECK_EQ(up_alive(a2), 0);
	PCHECK_EQ(up_alive(b2), 0);
	PCHECK_EQ(up_alive(p[2]), 0);
}

static void test_one_for_one_restarts_only_the_crashed_child(void **state)
{
	(void)state;
	RUN_FORKED(one_for_one_main);
}

static void one_for_all_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	up_pid p[3], q[3];
	struct up_child_spec cs[3];
	up_pid sup = start_n(UP_ONE_FOR_ALL, 3, p, cs);

	up_send(p[1], A("crash"));
	for (int i = 0; i < 3; i++) {
		q[i] = await_start(i);
		PCHECK(q[i] > 0 && q[i] != p[i]);
		PCHECK_EQ(up_alive(p[i]), 0);
		check_child(sup, i, q[i]);
		PCHECK_EQ(atomic_load(&W.starts[i]), 2);
	}
	/* The others were stopped in reverse start order. */
	PCHECK_EQ(atomic_load(&W.nstopped), 2);
	PCHECK_EQ(atomic_load(&W.stop_order[0]), 2);
	PCHECK_EQ(atomic_load(&W.stop_order[1]), 0);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 1);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	for (int i = 0; i < 3; i++)
		PCHECK_EQ(up_alive(q[i]), 0);
}

static void test_one_for_all_restarts_every_child(void **state)
{
	(void)state;
	RUN_FORKED(one_for_all_main);
}

static void rest_for_one_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	up_pid p[4];
	struct up_child_spec cs[4];
	up_pid sup = start_n(UP_REST_FOR_ONE, 4, p, cs);

	up_send(p[1], A("crash"));
	up_pid q[4] = { p[0], 0, 0, 0 };
	for (int i = 1; i < 4; i++) {
		q[i] = await_start(i);
		PCHECK(q[i] > 0 && q[i] != p[i]);
	}
	for (int i = 0; i < 4; i++)
		check_child(sup, i, q[i]);
	PCHECK_EQ(up_alive(p[0]), 1);
	PCHECK_EQ(atomic_load(&W.starts[0]), 1);
	PCHECK_EQ(atomic_load(&W.nstopped), 2);
	PCHECK_EQ(atomic_load(&W.stop_order[0]), 3);
	PCHECK_EQ(atomic_load(&W.stop_order[1]), 2);
	PCHECK(no_start_within(20));
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 1);

	/* The last child crashing restarts only itself. */
	up_send(q[3], A("crash"));
	up_pid d = await_start(3);
	PCHECK(no_start_within(20));
	for (int i = 0; i < 3; i++)
		check_child(sup, i, q[i]);
	check_child(sup, 3, d);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
}

static void test_rest_for_one_restarts_the_crashed_and_later(void **state)
{
	(void)state;
	RUN_FORKED(rest_for_one_main);
}

/* ------------------------------------------------------- restart types */

static void types_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	struct up_child_spec cs[5] = {
		wspec("t_normal", &wa[0], UP_TRANSIENT, SHUT),
		wspec("t_crash", &wa[1], UP_TRANSIENT, SHUT),
		wspec("t_shut", &wa[2], UP_TRANSIENT, SHUT),
		wspec("tmp_crash", &wa[3], UP_TEMPORARY, SHUT),
		wspec("tmp_normal", &wa[4], UP_TEMPORARY, SHUT),
	};
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 10,
				    .period_ns = 10000 * MS, .nchildren = 5, .children = cs };
	up_pid sup = up_supervisor_start(&spec);
	up_pid p[5];
	for (int i = 0; i < 5; i++)
		p[i] = await_start(i);

	static const char *msg[5] = { "normal", "crash", "shutdown_tuple", "crash", "normal" };
	for (int i = 0; i < 5; i++) {
		up_term ref = monitor_of(p[i]);
		up_send(p[i], A(msg[i]));
		await_down(ref);
	}
	/* Only the transient child that crashed comes back. */
	up_pid t = await_start(1);
	PCHECK(t > 0);
	PCHECK(no_start_within(50));
	PCHECK_EQ(up_supervisor_child(sup, A("t_normal"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_child(sup, A("t_crash"), WAIT_NS), t);
	PCHECK_EQ(up_supervisor_child(sup, A("t_shut"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_child(sup, A("tmp_crash"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_child(sup, A("tmp_normal"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_child(sup, A("no_such_child"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 1);
	for (int i = 0; i < 5; i++)
		PCHECK_EQ(atomic_load(&W.starts[i]), i == 1 ? 2 : 1);

	/* A transient child that had ended normally is started again by a
	 * one_for_all restart; a temporary one is not. */
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	world_reset();
	spec.strategy = UP_ONE_FOR_ALL;
	sup = up_supervisor_start(&spec);
	for (int i = 0; i < 5; i++)
		p[i] = await_start(i);
	up_term ref = monitor_of(p[0]);
	up_send(p[0], A("normal"));
	await_down(ref);
	ref = monitor_of(p[3]);
	up_send(p[4], A("normal")); /* tmp_normal leaves */
	up_send(p[1], A("crash"));  /* restart all */
	PCHECK_TERM(await_down(ref), UP_SHUTDOWN); /* tmp_crash stopped ... */
	PCHECK(await_start(0) > 0);
	PCHECK(await_start(1) > 0);
	PCHECK(await_start(2) > 0);
	PCHECK(no_start_within(50)); /* ... and not restarted */
	PCHECK_EQ(up_supervisor_child(sup, A("tmp_crash"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_child(sup, A("tmp_normal"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
}

static void test_transient_and_temporary_restart_rules(void **state)
{
	(void)state;
	RUN_FORKED(types_main);
}

/* ------------------------------------------------------------ intensity */

static int match_exit_from(const struct up_msg *m, void *arg)
{
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("EXIT"), 3) &&
	       el(m->term, 1) == *(up_term *)arg;
}

static void intensity_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	up_trap_exit(1);
	struct up_child_spec cs[2] = {
		wspec("crasher", &wa[0], UP_PERMANENT, SHUT),
		wspec("bystander", &wa[1], UP_PERMANENT, SHUT),
	};
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 3,
				    .period_ns = 10000 * MS, .nchildren = 2, .children = cs };
	up_pid sup = up_supervisor_start(&spec);
	up_pid c = await_start(0), by = await_start(1);
	for (int i = 0; i < 3; i++) {
		up_send(c, A("crash"));
		c = await_start(0);
	}
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 3);
	/* The fourth restart within the period is one too many. */
	up_send(c, A("crash"));
	up_term from = up_pid_term(sup);
	struct up_msg m;
	if (up_recv_match(match_exit_from, &from, &m, WAIT_NS, 0) == 0)
		PCHECK_TERM(el(m.term, 2), UP_SHUTDOWN);
	else
		PFAIL("no EXIT from the supervisor");
	PCHECK_EQ(up_alive(sup), 0);
	PCHECK_EQ(up_alive(c), 0);
	PCHECK_EQ(up_alive(by), 0);
	PCHECK(no_start_within(20));

	/* intensity 0: the first exit ends the supervisor. */
	spec.intensity = 0;
	sup = up_supervisor_start(&spec);
	c = await_start(0);
	by = await_start(1);
	up_send(by, A("crash"));
	from = up_pid_term(sup);
	if (up_recv_match(match_exit_from, &from, &m, WAIT_NS, 0) == 0)
		PCHECK_TERM(el(m.term, 2), UP_SHUTDOWN);
	else
		PFAIL("no EXIT from the supervisor (intensity 0)");
	PCHECK_EQ(up_alive(c), 0);

	/* Restarts further apart than the period never add up. */
	spec.intensity = 1;
	spec.period_ns = 40 * MS;
	sup = up_supervisor_start(&spec);
	c = await_start(0);
	await_start(1);
	for (int i = 0; i < 4; i++) {
		up_sleep(80 * MS);
		up_send(c, A("crash"));
		c = await_start(0);
	}
	PCHECK_EQ(up_alive(sup), 1);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 4);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
}

static void test_intensity_exceeded_stops_supervisor_with_shutdown(void **state)
{
	(void)state;
	RUN_FORKED(intensity_main);
}

/* ------------------------------------------------------------- shutdown */

static void ordered_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	up_pid p[6];
	struct up_child_spec cs[6];
	up_pid sup = start_n(UP_ONE_FOR_ONE, 6, p, cs);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	PCHECK_EQ(atomic_load(&W.nstopped), 6);
	for (int i = 0; i < 6; i++) {
		PCHECK_EQ(atomic_load(&W.stop_order[i]), 5 - i);
		PCHECK_EQ(up_alive(p[i]), 0);
	}
	/* Stopping it again: it is gone. */
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), -ESRCH);
}

static void test_ordered_shutdown_in_reverse_start_order(void **state)
{
	(void)state;
	RUN_FORKED(ordered_main);
}

/* The parent's exit (any reason) stops the children in order, then the
 * supervisor exits with the parent's reason. */
struct parent_arg {
	up_pid sup;
	up_pid tester;
};

static void parent_proc(void *arg)
{
	struct parent_arg *pa = arg;
	struct up_child_spec *cs = up_alloc(4 * sizeof *cs);
	static const char *ids[] = { "p0", "p1", "p2", "p3" };
	for (int i = 0; i < 4; i++)
		cs[i] = wspec(ids[i], &wa[i], UP_PERMANENT, SHUT);
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1,
				    .period_ns = 1000 * MS, .nchildren = 4, .children = cs };
	pa->sup = up_supervisor_start(&spec);
	up_send(pa->tester, A("parent_ready"));
	struct up_msg m;
	up_recv(&m, WAIT_NS); /* go */
	up_exit(up_self(), up_tuplev(2, A("bye"), up_int(7)));
}

static void parent_exit_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	struct parent_arg pa = { 0, up_self() };
	up_pid parent = up_spawn(parent_proc, &pa);
	up_pid p[4];
	for (int i = 0; i < 4; i++)
		p[i] = await_start(i);
	await_atom("parent_ready");
	up_term ms = up_monitor(pa.sup);
	up_send(parent, A("go"));
	PCHECK_TERM(await_down(ms), up_tuplev(2, A("bye"), up_int(7)));
	PCHECK_EQ(atomic_load(&W.nstopped), 4);
	for (int i = 0; i < 4; i++) {
		PCHECK_EQ(atomic_load(&W.stop_order[i]), 3 - i);
		PCHECK_EQ(up_alive(p[i]), 0);
	}

	/* A parent killed: the supervisor stops its children, then exits
	 * with `killed`. */
	world_reset();
	pa.sup = 0;
	parent = up_spawn(parent_proc, &pa);
	for (int i = 0; i < 4; i++)
		p[i] = await_start(i);
	await_atom("parent_ready");
	ms = up_monitor(pa.sup);
	up_exit(parent, UP_KILL);
	PCHECK_TERM(await_down(ms), UP_KILLED);
	PCHECK_EQ(atomic_load(&W.nstopped), 4);
	for (int i = 0; i < 4; i++)
		PCHECK_EQ(up_alive(p[i]), 0);
}

static void test_parent_exit_stops_tree_with_its_reason(void **state)
{
	(void)state;
	RUN_FORKED(parent_exit_main);
}

/* A parent that returns normally: the supervisor stops as well. */
static void normal_parent(void *arg)
{
	struct parent_arg *pa = arg;
	static struct up_child_spec cs[1];
	cs[0] = wspec("only", &wa[0], UP_PERMANENT, SHUT);
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1,
				    .period_ns = 1000 * MS, .nchildren = 1, .children = cs };
	pa->sup = up_supervisor_start(&spec);
	up_send(pa->tester, up_tuplev(2, A("sup"), up_pid_term(pa->sup)));
}

static void parent_normal_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	struct parent_arg pa = { 0, up_self() };
	up_spawn(normal_parent, &pa);
	up_pid w = await_start(0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	up_pid sup = 0;
	up_get_pid(el(m.term, 1), &sup);
	/* The parent may already be gone: wait for the supervisor's end. */
	int64_t end = now_ns() + WAIT_NS;
	while (up_alive(sup) == 1 && now_ns() < end)
		up_sleep(MS);
	PCHECK_EQ(up_alive(sup), 0);
	PCHECK_EQ(up_alive(w), 0);
	PCHECK_EQ(atomic_load(&W.got_shutdown[0]), 1);
}

static void test_parent_normal_exit_stops_supervisor(void **state)
{
	(void)state;
	RUN_FORKED(parent_normal_main);
}

/* A child that ignores the shutdown signal is killed after shutdown_ns; a
 * brutal_kill child is killed at once (it never sees `shutdown`). */
static void kill_after_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	wa[0].flags = W_TRAP | W_IGNORE_SHUTDOWN;
	struct up_child_spec cs[2] = {
		wspec("stubborn", &wa[0], UP_PERMANENT, 150 * MS),
		wspec("brutal", &wa[1], UP_PERMANENT, UP_BRUTAL_KILL),
	};
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1,
				    .period_ns = 1000 * MS, .nchildren = 2, .children = cs };
	up_pid sup = up_supervisor_start(&spec);
	up_pid s = await_start(0), b = await_start(1);
	up_term ms = up_monitor(s), mb = up_monitor(b);
	int64_t t0 = now_ns();
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	int64_t took = now_ns() - t0;
	PCHECK_TERM(await_down(mb), UP_KILLED);
	PCHECK_TERM(await_down(ms), UP_KILLED);
	PCHECK_EQ(atomic_load(&W.got_shutdown[1]), 0); /* brutal: no shutdown */
	PCHECK_EQ(atomic_load(&W.got_shutdown[0]), 1);  /* ignored it */
	if (took < 150 * MS || took > 150 * MS + WAIT_NS / 2)
		PFAIL("stop took %lld ms, expected about 150", (long long)(took / MS));
}

static void test_child_ignoring_shutdown_is_killed_after_timeout(void **state)
{
	(void)state;
	RUN_FORKED(kill_after_main);
}

/* A non-trapping child ends with reason shutdown when stopped. */
static void shutdown_reason_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	up_pid p[2];
	struct up_child_spec cs[2];
	up_pid sup = start_n(UP_ONE_FOR_ONE, 2, p, cs);
	up_term m0 = up_monitor(p[0]), m1 = up_monitor(p[1]);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);
	PCHECK_TERM(await_down(m0), UP_SHUTDOWN);
	PCHECK_TERM(await_down(m1), UP_SHUTDOWN);
}

static void test_stopped_child_exits_with_shutdown(void **state)
{
	(void)state;
	RUN_FORKED(shutdown_reason_main);
}

/* ---------------------------------------------------------------- trees */

static struct up_child_spec tree_w1[2], tree_w2[2], tree_root[2];
static struct up_sup_spec tree_s1, tree_s2, tree_rs;

static void tree_specs(void)
{
	tree_w1[0] = wspec("a1", &wa[0], UP_PERMANENT, SHUT);
	tree_w1[1] = wspec("a2", &wa[1], UP_PERMANENT, SHUT);
	tree_w2[0] = wspec("b1", &wa[2], UP_PERMANENT, SHUT);
	tree_w2[1] = wspec("b2", &wa[3], UP_PERMANENT, SHUT);
	tree_s1 = (struct up_sup_spec){ .strategy = UP_ONE_FOR_ONE, .intensity = 5,
					.period_ns = 10000 * MS, .nchildren = 2,
					.children = tree_w1 };
	tree_s2 = tree_s1;
	tree_s2.children = tree_w2;
	tree_root[0] = (struct up_child_spec){ .id = A("sup1"), .start = up_supervisor_main,
					       .arg = &tree_s1, .restart = UP_PERMANENT,
					       .shutdown_ns = UP_INFINITY };
	tree_root[1] = tree_root[0];
	tree_root[1].id = A("sup2");
	tree_root[1].arg = &tree_s2;
	tree_rs = (struct up_sup_spec){ .strategy = UP_ONE_FOR_ONE, .intensity = 5,
					.period_ns = 10000 * MS, .nchildren = 2,
					.children = tree_root };
}

static atomic_int tree_main_done;

static void tree_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	tree_specs();
	up_pid root = up_supervisor_start(&tree_rs);
	PCHECK(root > 0);
	up_pid w[4];
	for (int i = 0; i < 4; i++)
		w[i] = await_start(i);
	up_pid s1 = up_supervisor_child(root, A("sup1"), WAIT_NS);
	up_pid s2 = up_supervisor_child(root, A("sup2"), WAIT_NS);
	PCHECK(s1 > 0 && s2 > 0);
	PCHECK_EQ(up_supervisor_child(s1, A("a1"), WAIT_NS), w[0]);
	PCHECK_EQ(up_supervisor_child(s1, A("a2"), WAIT_NS), w[1]);
	PCHECK_EQ(up_supervisor_child(s2, A("b1"), WAIT_NS), w[2]);
	PCHECK_EQ(up_supervisor_child(s2, A("b2"), WAIT_NS), w[3]);

	/* A crash deep in the tree is handled by its own supervisor. */
	up_send(w[3], A("crash"));
	up_pid b2 = await_start(3);
	PCHECK(no_start_within(20));
	PCHECK_EQ(up_supervisor_child(s2, A("b2"), WAIT_NS), b2);
	PCHECK_EQ(up_supervisor_restarts(s2, WAIT_NS), 1);
	PCHECK_EQ(up_supervisor_restarts(s1, WAIT_NS), 0);
	PCHECK_EQ(up_supervisor_restarts(root, WAIT_NS), 0);
	PCHECK_EQ(up_supervisor_child(root, A("sup2"), WAIT_NS), s2);
	w[3] = b2;

	/* A child supervisor that crashes is restarted by the root, with its
	 * whole subtree. */
	up_exit(s1, A("sup_crash"));
	up_pid n0 = await_start(0), n1 = await_start(1);
	PCHECK(n0 != w[0] && n1 != w[1]);
	PCHECK_EQ(up_alive(w[0]), 0);
	PCHECK_EQ(up_alive(w[1]), 0);
	up_pid s1b = up_supervisor_child(root, A("sup1"), WAIT_NS);
	PCHECK(s1b > 0 && s1b != s1);
	PCHECK_EQ(up_supervisor_restarts(root, WAIT_NS), 1);
	w[0] = n0;
	w[1] = n1;

	/* From the root, the whole tree stops, leaves first. */
	atomic_store(&W.nstopped, 0);
	PCHECK_EQ(up_supervisor_stop(root, WAIT_NS), 0);
	PCHECK_EQ(up_alive(root), 0);
	PCHECK_EQ(up_alive(s1b), 0);
	PCHECK_EQ(up_alive(s2), 0);
	for (int i = 0; i < 4; i++)
		PCHECK_EQ(up_alive(w[i]), 0);
	/* sup2 is stopped before sup1, each stops its children in reverse. */
	PCHECK_EQ(atomic_load(&W.nstopped), 4);
	PCHECK_EQ(atomic_load(&W.stop_order[0]), 3);
	PCHECK_EQ(atomic_load(&W.stop_order[1]), 2);
	PCHECK_EQ(atomic_load(&W.stop_order[2]), 1);
	PCHECK_EQ(atomic_load(&W.stop_order[3]), 0);
	atomic_store(&tree_main_done, 1);
	/* Returning ends the run: nothing of the tree is left to wait for. */
}

static int tree_body(void *p)
{
	(void)p;
	int r = run_main(tree_main, NULL, 2);
	if (r != 0 || !atomic_load(&tree_main_done))
		return 1;
	return 0;
}

static void test_three_level_tree(void **state)
{
	(void)state;
	assert_fork_ok(fork_run(tree_body, NULL, RUN_TIMEOUT_S), RUN_TIMEOUT_S, "tree");
}

/* The tree also goes away when its root's parent (the main process)
 * simply returns: up_run then returns. */
static void tree_abandoned_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	tree_specs();
	up_pid root = up_supervisor_start(&tree_rs);
	PCHECK(root > 0);
	for (int i = 0; i < 4; i++)
		await_start(i);
}

static void test_tree_stops_when_root_parent_returns(void **state)
{
	(void)state;
	RUN_FORKED(tree_abandoned_main);
}

/* ------------------------------------------------ exit signals from others */

/* A process that sends exit signal `reason` to `target` and tells tester. */
struct exiter_arg {
	up_pid target, tester;
	up_term reason;
};

static void exiter(void *arg)
{
	struct exiter_arg *e = arg;
	PCHECK_EQ(up_exit(e->target, e->reason), 0);
	up_send(e->tester, A("sent"));
}

static void exit_from_stranger(up_pid target, up_term reason)
{
	struct exiter_arg e = { target, up_self(), reason };
	up_spawn(exiter, &e);
	await_atom("sent");
}

static void stranger_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	up_pid p[3];
	struct up_child_spec cs[3];
	up_pid sup = start_n(UP_ONE_FOR_ONE, 3, p, cs);
	/* Not from its parent: `normal` is ignored, as a process that does
	 * not trap would; junk messages are dropped. */
	up_send(sup, A("junk"));
	up_send(sup, up_tuplev(3, A("a"), A("b"), A("c")));
	up_send_word(sup, 99);
	up_term ms = up_monitor(sup);
	exit_from_stranger(sup, UP_NORMAL);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), 0);
	PCHECK_EQ(up_alive(sup), 1);
	/* shutdown from anyone: the children stop in order, then it. */
	exit_from_stranger(sup, UP_SHUTDOWN);
	PCHECK_TERM(await_down(ms), UP_SHUTDOWN);
	PCHECK_EQ(atomic_load(&W.nstopped), 3);
	PCHECK_EQ(atomic_load(&W.stop_order[0]), 2);
	PCHECK_EQ(atomic_load(&W.stop_order[2]), 0);
	/* kill is not trappable: the children die through their links. */
	world_reset();
	sup = start_n(UP_ONE_FOR_ONE, 3, p, cs);
	ms = up_monitor(sup);
	up_term m2 = up_monitor(p[2]);
	up_exit(sup, UP_KILL);
	PCHECK_TERM(await_down(ms), UP_KILLED);
	await_down(m2);
	PCHECK_EQ(up_alive(p[2]), 0);
}

static void test_exit_signals_from_non_parents(void **state)
{
	(void)state;
	RUN_FORKED(stranger_main);
}

/* -------------------------------------------------- validation and errors */

static void errors_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(0);
	struct up_child_spec ok = wspec("ok", &wa[0], UP_PERMANENT, SHUT);
	struct up_child_spec cs[2];
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1,
				    .period_ns = 1000 * MS, .nchildren = 1, .children = cs };
#define EXPECT_EINVAL(what)                                                 \
	do {                                                                \
		cs[0] = ok;                                                 \
		cs[1] = ok;                                                 \
		cs[1].id = A("ok2");                                        \
		spec = (struct up_sup_spec){ .strategy = UP_ONE_FOR_ONE,    \
					     .intensity = 1,                \
					     .period_ns = 1000 * MS,        \
					     .nchildren = 2,                \
					     .children = cs };              \
		what;                                                       \
		up_pid r_ = up_supervisor_start(&spec);                     \
		if (r_ != -EINVAL)                                          \
			PFAIL("%s: %" PRId64 ", expected -EINVAL", #what, r_); \
	} while (0)

	PCHECK_EQ(up_supervisor_start(NULL), -EINVAL);
	EXPECT_EINVAL(spec.period_ns = 0);
	EXPECT_EINVAL(spec.period_ns = -5);
	EXPECT_EINVAL(spec.strategy = (enum up_strategy)7);
	EXPECT_EINVAL(spec.children = NULL);
	EXPECT_EINVAL(cs[1].id = A("ok"));          /* duplicate */
	EXPECT_EINVAL(cs[1].id = up_int(3));        /* not an atom */
	EXPECT_EINVAL(cs[1].start = NULL);
	EXPECT_EINVAL(cs[1].restart = (enum up_restart)9);
	EXPECT_EINVAL(cs[1].shutdown_ns = -7);
	static struct up_sup_spec nested_bad = { .period_ns = 0 };
	EXPECT_EINVAL((cs[1].start = up_supervisor_main, cs[1].arg = &nested_bad));
	EXPECT_EINVAL((cs[1].start = up_supervisor_main, cs[1].arg = NULL));
	/* Nothing was started by any of these. */
	PCHECK_EQ(atomic_load(&W.starts[0]), 0);

	/* An empty supervisor is fine; no children, nothing to stop. */
	struct up_sup_spec empty = { .period_ns = 1000 * MS };
	up_pid sup = up_supervisor_start(&empty);
	PCHECK(sup > 0);
	PCHECK_EQ(up_supervisor_child(sup, A("x"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), 0);

	/* The client calls on a dead supervisor. */
	PCHECK_EQ(up_supervisor_child(sup, A("x"), WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_restarts(sup, WAIT_NS), -ESRCH);
	PCHECK_EQ(up_supervisor_stop(sup, WAIT_NS), -ESRCH);

	struct up_msg m;
	while (up_recv(&m, 0) == 0)
		up_msg_free(&m);
}

static void test_spec_validation_and_client_errors(void **state)
{
	(void)state;
	RUN_FORKED(errors_main);
	struct up_sup_spec empty = { .period_ns = 1000 * MS };
	assert_int_equal(up_supervisor_start(&empty), -EPERM);
	assert_int_equal(up_supervisor_child(1, up_atom("x"), 0), -EPERM);
	assert_int_equal(up_supervisor_restarts(1, 0), -EPERM);
	assert_int_equal(up_supervisor_stop(1, 0), -EPERM);
}

/* A process that never answers calls: client calls time out. */
static int never(const struct up_msg *m, void *arg)
{
	(void)m;
	(void)arg;
	return 0;
}

static void deaf_proc(void *arg)
{
	(void)arg;
	struct up_msg m;
	up_recv_match(never, NULL, &m, 2000 * MS, 0);
}

static void timeout_main(void *arg)
{
	(void)arg;
	up_pid d = up_spawn(deaf_proc, NULL);
	PCHECK_EQ(up_supervisor_child(d, A("x"), 20 * MS), -ETIMEDOUT);
	PCHECK_EQ(up_supervisor_restarts(d, 20 * MS), -ETIMEDOUT);
	PCHECK_EQ(up_supervisor_stop(d, 20 * MS), -ETIMEDOUT);
	up_exit(d, UP_KILL);
}

static void test_client_calls_time_out(void **state)
{
	(void)state;
	RUN_FORKED(timeout_main);
}

/* A child that cannot be spawned: -ECHILD, the children already started
 * are stopped, and the caller (trapping) is left no EXIT message. */
static void echild_main(void *arg)
{
	(void)arg;
	world_reset();
	args_init(W_TRAP);
	up_trap_exit(1);
	struct up_child_spec cs[3] = {
		wspec("c0", &wa[0], UP_PERMANENT, SHUT),
		wspec("c1", &wa[1], UP_PERMANENT, SHUT),
		wspec("c2", &wa[2], UP_PERMANENT, SHUT),
	};
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1,
				    .period_ns = 1000 * MS, .nchildren = 3, .children = cs };
	/* max_processes = 4: this process, the supervisor, c0 and c1. */
	PCHECK_EQ(up_supervisor_start(&spec), -ECHILD);
	PCHECK_EQ(atomic_load(&W.starts[2]), 0);
	/* c0 and c1 may or may not have run; none is alive now. */
	for (int i = 0; i < 2; i++) {
		up_pid p = (up_pid)atomic_load(&W.pid[i]);
		if (p)
			PCHECK_EQ(up_alive(p), 0);
	}
	struct up_msg m;
	while (up_recv(&m, 20 * MS) == 0) {
		if (is_tagged(m.term, A("EXIT"), 3) || is_tagged(m.term, A("DOWN"), 5)) {
			char b[200];
			up_term_format(m.term, b, sizeof b);
			PFAIL("left in the caller's mailbox: %s", b);
		}
		up_msg_free(&m);
	}
}

static int echild_body(void *p)
{
	(void)p;
	struct up_run_opts o = run_opts(2);
	o.max_processes = 4;
	return up_run(echild_main, NULL, &o) == 0 ? 0 : 1;
}

static void test_child_start_failure_gives_echild(void **state)
{
	(void)state;
	assert_fork_ok(fork_run(echild_body, NULL, RUN_TIMEOUT_S), RUN_TIMEOUT_S, "echild");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_one_for_one_restarts_only_the_crashed_child),
		UPT_TEST(test_one_for_all_restarts_every_child),
		UPT_TEST(test_rest_for_one_restarts_the_crashed_and_later),
		UPT_TEST(test_transient_and_temporary_restart_rules),
		UPT_TEST(test_intensity_exceeded_stops_supervisor_with_shutdown),
		UPT_TEST(test_ordered_shutdown_in_reverse_start_order),
		UPT_TEST(test_parent_exit_stops_tree_with_its_reason),
		UPT_TEST(test_parent_normal_exit_stops_supervisor),
		UPT_TEST(test_child_ignoring_shutdown_is_killed_after_timeout),
		UPT_TEST(test_stopped_child_exits_with_shutdown),
		UPT_TEST(test_three_level_tree),
		UPT_TEST(test_tree_stops_when_root_parent_returns),
		UPT_TEST(test_exit_signals_from_non_parents),
		UPT_TEST(test_spec_validation_and_client_errors),
		UPT_TEST(test_client_calls_time_out),
		UPT_TEST(test_child_start_failure_gives_echild),
	};
	return UPT_RUN("supervisor", tests);
}
