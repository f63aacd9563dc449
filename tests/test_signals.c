/*
 * test_signals.c - exit signals, links, monitors, trap_exit, the registry
 * and call/reply, as OTP documents them (erlang:exit/2, link/1, monitor/2,
 * demonitor/2, register/2, gen_server:call/3).  Each rule is its own test.
 *
 * How a fate is observed: a process's death and its reason are seen through
 * a monitor from another process ({'DOWN', Ref, process, Pid, Reason}), and
 * a process that must still be alive proves it by answering a message.
 * Checks inside processes use PCHECK and are asserted after up_run returns.
 */
#include "helpers.h"

#include <limits.h>

/* ------------------------------------------------------------- helpers */


/* A pid that is not one of any runtime's (bits past the pid format). */
#define FOREIGN_PID ((up_pid)INT64_MAX)



static void print_term(const char *what, up_term t)
{
	char buf[256];
	up_term_format(t, buf, sizeof buf);
	PFAIL("%s: got %s", what, buf);
}



/*
 * Wait for the DOWN of monitor ref (at most WAIT_NS).  Returns 0 and the
 * DOWN's reason in *reason (valid until the process exits: the message is
 * kept), after checking its shape {'DOWN', Ref, process, pid, Reason}.
 */
static int await_down(up_term ref, up_pid pid, up_term *reason)
{
	struct down_arg d = { ref };
	struct up_msg m;
	int r = up_recv_match(match_down, &d, &m, WAIT_NS, 0);
	if (r != 0) {
		PFAIL("no DOWN for pid %" PRId64 ": %d", pid, r);
		return r;
	}
	PCHECK(el(m.term, 2) == A("process"));
	PCHECK(el(m.term, 3) == up_pid_term(pid));
	*reason = el(m.term, 4);
	return 0;
}

/* Monitor pid and wait for its end: its exit reason (or UP_NIL on failure). */
static up_term reason_of_death(up_pid pid, up_term ref)
{
	up_term reason = UP_NIL;
	await_down(ref, pid, &reason);
	return reason;
}

struct exit_arg {
	up_term from;
};

static int match_exit_from(const struct up_msg *m, void *arg)
{
	const struct exit_arg *e = arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("EXIT"), 3) &&
	       el(m->term, 1) == e->from;
}

/* Trapping: wait for {'EXIT', from, Reason}: 0 and the reason, or an error. */
static int await_exit_msg(up_pid from, up_term *reason, int64_t timeout)
{
	struct exit_arg e = { up_pid_term(from) };
	struct up_msg m;
	int r = up_recv_match(match_exit_from, &e, &m, timeout, 0);
	if (r == 0)
		*reason = el(m.term, 2);
	return r;
}

/* A process that waits for one message (any) and returns; after WAIT_NS
 * without one it records a failure (it was never released). */
static void idle(void *arg)
{
	struct up_msg m;
	(void)arg;
	if (up_recv(&m, WAIT_NS) != 0)
		PFAIL("idle process %" PRId64 " never released", up_self());
}

/* A process that answers "are you alive?": on {ping, From} it sends
 * {pong, Self} to From; on stop it returns.  Optionally traps exits (arg
 * non-NULL) and then forwards every EXIT message to the pid *arg as
 * {got, Msg}. */
static void pinger(void *arg)
{
	up_pid fwd = arg ? *(up_pid *)arg : 0;
	if (fwd)
		up_trap_exit(1);
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("pinger %" PRId64 " never stopped", up_self());
			return;
		}
		if (m.kind != UP_MSG_TERM)
			continue;
		if (m.term == A("stop"))
			return;
		if (is_tagged(m.term, A("ping"), 2)) {
			up_pid from;
			if (up_get_pid(el(m.term, 1), &from) == 0)
				up_send(from, up_tuplev(2, A("pong"), up_pid_term(up_self())));
		} else if (fwd && is_tagged(m.term, A("EXIT"), 3)) {
			up_send(fwd, up_tuplev(2, A("got"), m.term));
		}
		up_msg_free(&m);
	}
}

struct pong_arg {
	up_term who;
};

static int match_pong(const struct up_msg *m, void *arg)
{
	const struct pong_arg *p = arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("pong"), 2) && el(m->term, 1) == p->who;
}

/* Is pinger pid alive and answering?  1 or 0. */
static int answers(up_pid pid)
{
	struct pong_arg p = { up_pid_term(pid) };
	struct up_msg m;
	if (up_send(pid, up_tuplev(2, A("ping"), up_pid_term(up_self()))) != 0)
		return 0;
	if (up_recv_match(match_pong, &p, &m, WAIT_NS, 0) != 0)
		return 0;
	up_msg_free(&m);
	return 1;
}

/* Spawn fn(arg) on scheduler sched (-1: the caller's). */
static up_pid spawn_at(up_fn fn, void *arg, int sched)
{
	if (sched < 0)
		return up_spawn(fn, arg);
	struct up_spawn_opts o = spawn_on(sched);
	return up_spawn_opt(fn, arg, &o);
}

/* Spawn fn(arg) monitored from birth (a process on another scheduler may
 * be gone before a later up_monitor, which would then say noproc). */
static up_pid spawn_mon(up_fn fn, void *arg, int sched, up_term *ref)
{
	struct up_spawn_opts o = sched < 0 ? spawn_opts() : spawn_on(sched);
	o.flags |= UP_SPAWN_MONITOR;
	up_pid pid = up_spawn_opt(fn, arg, &o);
	*ref = o.monitor_ref;
	return pid;
}

/* A process that links to *(up_pid *)arg, then exits with reason term
 * built from its name in the global `exit_with`. */
struct linker {
	up_pid target;
	int unlink_first;   /* link, unlink, then exit */
	const char *reason; /* NULL: return normally */
};

static void linker(void *arg)
{
	struct linker *l = arg;
	int r = up_link(l->target);
	if (r != 0)
		PFAIL("up_link(%" PRId64 ") = %d", l->target, r);
	if (l->unlink_first) {
		r = up_unlink(l->target);
		if (r != 0)
			PFAIL("up_unlink(%" PRId64 ") = %d", l->target, r);
	}
	if (l->reason)
		up_exit(up_self(), up_tuplev(2, A(l->reason), up_int(42)));
}

/* ------------------------------------------------------- exit over links */

/* An abnormal exit propagates over a link and ends a non-trapping linked
 * process with the same reason. */
static void abnormal_main(void *arg)
{
	(void)arg;
	for (int sched = 0; sched < 2; sched++) {
		up_term mb, ma;
		up_pid b = spawn_mon(pinger, NULL, sched, &mb);
		PCHECK_EQ(answers(b), 1); /* b runs (see the next test) */
		struct linker l = { .target = b, .reason = "boom" };
		up_pid a = spawn_mon(linker, &l, 0, &ma);

		up_term want = up_tuplev(2, A("boom"), up_int(42));
		PCHECK_TERM(reason_of_death(a, ma), want);
		PCHECK_TERM(reason_of_death(b, mb), want);
		PCHECK_EQ(up_alive(b), 0);
	}
}

static void test_link_abnormal_exit_kills_linked(void **state)
{
	(void)state;
	RUN_OK(abnormal_main, NULL, 2);
}

/* The same for a process that has not run yet when the signal comes: it
 * never runs, and it dies with the signal's reason (not normal). */
static void unstarted_main(void *arg)
{
	(void)arg;
	up_pid b = up_spawn(pinger, NULL); /* runs only once we block */
	up_term mb = up_monitor(b);
	PCHECK_EQ(up_exit(b, A("boom")), 0);
	PCHECK_TERM(reason_of_death(b, mb), A("boom"));

	/* Over a link: a runs first (newest first), links to c and dies. */
	up_pid c = up_spawn(pinger, NULL);
	up_term mc = up_monitor(c);
	struct linker l = { .target = c, .reason = "boom" };
	up_pid a = up_spawn(linker, &l);
	up_term ma = up_monitor(a);
	up_term want = up_tuplev(2, A("boom"), up_int(42));
	PCHECK_TERM(reason_of_death(a, ma), want);
	PCHECK_TERM(reason_of_death(c, mc), want);
}

static void test_exit_signal_before_first_run_keeps_reason(void **state)
{
	(void)state;
	RUN_OK(unstarted_main, NULL, 1);
}

/* A normal exit does not end a non-trapping linked process. */
static void normal_main(void *arg)
{
	(void)arg;
	up_pid b = up_spawn(pinger, NULL);
	struct linker l = { .target = b, .reason = NULL };
	up_pid a = up_spawn(linker, &l);
	up_term ma = up_monitor(a);

	PCHECK_TERM(reason_of_death(a, ma), UP_NORMAL);
	/* The link's signal to b was sent before the DOWN to us. */
	PCHECK_EQ(answers(b), 1);
	up_send(b, A("stop"));
}

static void test_link_normal_exit_spares_linked(void **state)
{
	(void)state;
	RUN_OK(normal_main, NULL, 2);
}

/* `kill` cannot be trapped: the trapping target ends with `killed`, and
 * its links get `killed` (a trapping one as a message, a non-trapping one
 * dies of it). */
struct kill_arg {
	up_pid main;
	up_pid trapper;  /* linked to the victim, traps, forwards EXITs */
	up_pid plain;    /* linked to the victim, does not trap */
};

static void kill_victim(void *arg)
{
	struct kill_arg *k = arg;
	up_trap_exit(1);
	PCHECK_EQ(up_link(k->trapper), 0);
	PCHECK_EQ(up_link(k->plain), 0);
	up_send(k->main, A("linked"));
	struct up_msg m;
	/* Any EXIT it could trap would be a message here: none must come. */
	if (up_recv(&m, WAIT_NS) == 0)
		print_term("a trapping process killed with `kill` received", m.term);
}

static int match_atom(const struct up_msg *m, void *arg)
{
	return m->kind == UP_MSG_TERM && m->term == *(up_term *)arg;
}

static void await_atom(const char *name)
{
	up_term a = A(name);
	struct up_msg m;
	if (up_recv_match(match_atom, &a, &m, WAIT_NS, 0) != 0)
		PFAIL("no '%s' message", name);
}

static int match_got(const struct up_msg *m, void *arg)
{
	(void)arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("got"), 2);
}

static void kill_main(void *arg)
{
	(void)arg;
	struct kill_arg k = { .main = up_self() };
	k.trapper = up_spawn(pinger, &k.main);
	k.plain = up_spawn(pinger, NULL);
	up_term mt = up_monitor(k.trapper), mp = up_monitor(k.plain);
	up_pid v = up_spawn(kill_victim, &k);
	up_term mv = up_monitor(v);
	await_atom("linked");
	PCHECK_EQ(answers(k.trapper), 1); /* it runs: it traps */
	PCHECK_EQ(answers(k.plain), 1);

	PCHECK_EQ(up_exit(v, UP_KILL), 0);
	PCHECK_TERM(reason_of_death(v, mv), UP_KILLED);
	PCHECK_TERM(reason_of_death(k.plain, mp), UP_KILLED);
	struct up_msg m;
	if (up_recv_match(match_got, NULL, &m, WAIT_NS, 0) == 0) {
		up_term e = el(m.term, 1);
		PCHECK(el(e, 0) == A("EXIT"));
		PCHECK(el(e, 1) == up_pid_term(v));
		PCHECK_TERM(el(e, 2), UP_KILLED);
	} else {
		PFAIL("the trapping linked process saw no EXIT");
	}
	up_send(k.trapper, A("stop"));
	PCHECK_TERM(reason_of_death(k.trapper, mt), UP_NORMAL);
}

static void test_kill_is_untrappable_and_propagates_killed(void **state)
{
	(void)state;
	RUN_OK(kill_main, NULL, 2);
}

/* A trapping process receives {'EXIT', Pid, Reason} from a linked process
 * that exits, and survives it. */
static void trap_main(void *arg)
{
	(void)arg;
	up_trap_exit(1);
	struct linker l = { .target = up_self(), .reason = "crash" };
	up_pid a = up_spawn(linker, &l);
	up_term reason = UP_NIL;
	PCHECK_EQ(await_exit_msg(a, &reason, WAIT_NS), 0);
	PCHECK_TERM(reason, up_tuplev(2, A("crash"), up_int(42)));

	/* Normal exits arrive too when trapping. */
	struct linker n = { .target = up_self(), .reason = NULL };
	up_pid b = up_spawn(linker, &n);
	reason = UP_NIL;
	PCHECK_EQ(await_exit_msg(b, &reason, WAIT_NS), 0);
	PCHECK_TERM(reason, UP_NORMAL);
}

static void test_trapping_process_receives_exit_message(void **state)
{
	(void)state;
	RUN_OK(trap_main, NULL, 2);
}

/* exit(Pid, normal): nothing for a non-trapping process, an
 * {'EXIT', From, normal} message for a trapping one; any other reason ends
 * a non-trapping process. */
static void exit_normal_main(void *arg)
{
	(void)arg;
	up_pid self = up_self();
	up_pid plain = up_spawn(pinger, NULL);
	up_pid trap = up_spawn(pinger, &self);
	PCHECK_EQ(answers(trap), 1); /* it runs, so it traps from now on */

	PCHECK_EQ(up_exit(plain, UP_NORMAL), 0);
	PCHECK_EQ(answers(plain), 1);

	PCHECK_EQ(up_exit(trap, UP_NORMAL), 0);
	struct up_msg m;
	if (up_recv_match(match_got, NULL, &m, WAIT_NS, 0) == 0) {
		up_term e = el(m.term, 1);
		PCHECK(is_tagged(e, A("EXIT"), 3));
		PCHECK(el(e, 1) == up_pid_term(self));
		PCHECK_TERM(el(e, 2), UP_NORMAL);
	} else {
		PFAIL("trapping process got no {'EXIT', From, normal}");
	}

	up_term mp = up_monitor(plain);
	PCHECK_EQ(up_exit(plain, A("other")), 0);
	PCHECK_TERM(reason_of_death(plain, mp), A("other"));
	up_send(trap, A("stop"));
}

static void test_exit_normal_to_nontrapping_is_ignored(void **state)
{
	(void)state;
	RUN_OK(exit_normal_main, NULL, 2);
}

/* ------------------------------------------------------------- monitors */

static void exit_with_term(void *arg)
{
	(void)arg;
	struct up_msg m;
	proc_recv_or_die(&m); /* go */
	up_exit(up_self(), up_tuplev(2, A("x"), up_list(2, (up_term[]){ up_int(1), up_int(2) })));
}

static void monitor_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(exit_with_term, NULL);
	up_term ref = up_monitor(a);
	PCHECK_EQ(up_kind_of(ref), UP_K_REF);
	up_send(a, A("go"));
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return;
	/* The very next message: {'DOWN', Ref, process, Pid, Reason}. */
	PCHECK(is_tagged(m.term, A("DOWN"), 5));
	PCHECK(up_equal(el(m.term, 1), ref));
	PCHECK(el(m.term, 2) == A("process"));
	PCHECK(el(m.term, 3) == up_pid_term(a));
	PCHECK_TERM(el(m.term, 4),
		    up_tuplev(2, A("x"), up_list(2, (up_term[]){ up_int(1), up_int(2) })));
	/* Two monitors of one process: two DOWNs, each with its own ref. */
	up_pid b = up_spawn(exit_with_term, NULL);
	up_term r1 = up_monitor(b), r2 = up_monitor(b);
	PCHECK(!up_equal(r1, r2));
	up_send(b, A("go"));
	up_term x;
	PCHECK_EQ(await_down(r2, b, &x), 0);
	PCHECK_EQ(await_down(r1, b, &x), 0);
}

static void test_monitor_delivers_down_with_its_ref(void **state)
{
	(void)state;
	RUN_OK(monitor_main, NULL, 2);
}

static void noop(void *arg) { (void)arg; }

static void monitor_dead_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(noop, NULL);
	proc_wait_exit(a);
	up_term ref = up_monitor(a);
	PCHECK_EQ(up_kind_of(ref), UP_K_REF);
	/* At once: already in the mailbox when up_monitor returns. */
	struct up_msg m;
	int r = up_recv(&m, 0);
	PCHECK_EQ(r, 0);
	if (r == 0) {
		PCHECK(is_tagged(m.term, A("DOWN"), 5));
		PCHECK(up_equal(el(m.term, 1), ref));
		PCHECK(el(m.term, 3) == up_pid_term(a));
		PCHECK_TERM(el(m.term, 4), UP_NOPROC);
	}
}

static void test_monitor_dead_pid_gives_noproc_at_once(void **state)
{
	(void)state;
	RUN_OK(monitor_dead_main, NULL, 2);
}

/* demonitor stops the DOWN (1: the monitor was active). */
static void demonitor_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(exit_with_term, NULL);
	up_term ref = up_monitor(a);
	PCHECK_EQ(up_demonitor(ref, 0), 1);
	PCHECK_EQ(up_demonitor(ref, 0), 0); /* no longer one */
	up_term ma = up_monitor(a);          /* to know when it is over */
	up_send(a, A("go"));
	up_term why;
	PCHECK_EQ(await_down(ma, a, &why), 0);
	/* The DOWN of the demonitored ref never comes. */
	struct down_arg d = { ref };
	struct up_msg m;
	PCHECK_EQ(up_recv_match(match_down, &d, &m, 50 * MS, 0), -ETIMEDOUT);
	PCHECK_EQ(up_mailbox_len(0), 0);
}

static void test_demonitor_stops_the_down(void **state)
{
	(void)state;
	RUN_OK(demonitor_main, NULL, 2);
}

/* demonitor with flush removes a DOWN already delivered (and only that
 * one); the monitor had fired, so it reports 0. */
static void flush_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(noop, NULL);
	up_term ref = up_monitor(a);
	up_send(up_self(), A("before"));
	int64_t end = now_ns() + WAIT_NS;
	while (up_mailbox_len(0) < 2 && now_ns() < end)
		up_yield(); /* until the DOWN has arrived */
	PCHECK_EQ(up_mailbox_len(0), 2);
	up_send(up_self(), A("after"));
	up_demonitor(ref, UP_DEMONITOR_FLUSH);
	PCHECK_EQ(up_mailbox_len(0), 2);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, 0), 0);
	PCHECK(m.term == A("before"));
	PCHECK_EQ(up_recv(&m, 0), 0);
	PCHECK(m.term == A("after"));
}

static void test_demonitor_flush_removes_delivered_down(void **state)
{
	(void)state;
	RUN_OK(flush_main, NULL, 2);
}

/* up_demonitor's documented result for a monitor that has fired: 0. */
static void fired_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(noop, NULL);
	up_term ref = up_monitor(a);
	up_term why;
	PCHECK_EQ(await_down(ref, a, &why), 0);
	PCHECK_EQ(up_demonitor(ref, 0), 0);
	up_pid b = up_spawn(noop, NULL);
	ref = up_monitor(b);
	PCHECK_EQ(await_down(ref, b, &why), 0);
	PCHECK_EQ(up_demonitor(ref, UP_DEMONITOR_FLUSH), 0);
}

static void test_demonitor_of_fired_monitor_returns_0(void **state)
{
	(void)state;
	RUN_OK(fired_main, NULL, 1);
}

/* ------------------------------------------------------------- linking */

/* Linking to a dead pid: a trapping caller gets {'EXIT', Pid, noproc} and
 * 0; a non-trapping one dies with noproc. */
static void link_dead_trapping_main(void *arg)
{
	(void)arg;
	up_pid a = up_spawn(noop, NULL);
	proc_wait_exit(a);
	up_trap_exit(1);
	PCHECK_EQ(up_link(a), 0);
	up_term reason = UP_NIL;
	PCHECK_EQ(await_exit_msg(a, &reason, WAIT_NS), 0);
	PCHECK_TERM(reason, UP_NOPROC);
}

static void test_link_dead_pid_trapping_gets_noproc_exit(void **state)
{
	(void)state;
	RUN_OK(link_dead_trapping_main, NULL, 2);
}

struct link_dead {
	up_pid dead;
	atomic_int returned;
};

static void link_dead_plain(void *arg)
{
	struct link_dead *l = arg;
	up_link(l->dead);
	atomic_store(&l->returned, 1); /* must not get here */
}

static void link_dead_plain_main(void *arg)
{
	struct link_dead *l = arg;
	l->dead = up_spawn(noop, NULL);
	proc_wait_exit(l->dead);
	up_pid p = up_spawn(link_dead_plain, l);
	up_term ref = up_monitor(p);
	PCHECK_TERM(reason_of_death(p, ref), UP_NOPROC);
}

static void test_link_dead_pid_nontrapping_dies_noproc(void **state)
{
	(void)state;
	struct link_dead l = { 0 };
	RUN_OK(link_dead_plain_main, &l, 2);
	assert_int_equal(atomic_load(&l.returned), 0);
}

/* Link and unlink between schedulers: a link made and removed carries no
 * exit signal (1,000 times), a link kept carries exactly one. */
#define LINK_ROUNDS 1000

static void link_across_main(void *arg)
{
	(void)arg;
	if (up_schedulers() < 2) {
		PFAIL("needs 2 schedulers");
		return;
	}
	up_pid self = up_self();
	up_pid b = spawn_at(pinger, &self, 1); /* traps, forwards EXITs as {got, _} */
	PCHECK_EQ(answers(b), 1);
	struct linker l = { .target = b, .unlink_first = 1, .reason = "gone" };
	for (int i = 0; i < LINK_ROUNDS; i++) {
		up_term ma;
		up_pid a = spawn_mon(linker, &l, i & 1, &ma);
		up_term why = reason_of_death(a, ma);
		if (!is_tagged(why, A("gone"), 2))
			print_term("linker's exit reason", why);
	}
	/* Everything b got before the ping's answer is in front of the pong,
	 * in b's order of arrival; nothing was forwarded. */
	PCHECK_EQ(answers(b), 1);
	struct up_msg m;
	PCHECK_EQ(up_recv_match(match_got, NULL, &m, 0, 0), -ETIMEDOUT);

	/* Linking twice is one link: one unlink removes it. */
	up_trap_exit(1);
	PCHECK_EQ(up_link(b), 0);
	PCHECK_EQ(up_link(b), 0);
	PCHECK_EQ(up_unlink(b), 0);
	PCHECK_EQ(up_unlink(b), 0); /* not linked: still 0 */

	/* A kept link, from scheduler 0 to 1 */
	struct linker k = { .target = b, .reason = "kept" };
	up_term ma;
	up_pid a = spawn_mon(linker, &k, 0, &ma);
	reason_of_death(a, ma);
	int got = 0;
	while (up_recv_match(match_got, NULL, &m, got ? 20 * MS : WAIT_NS, 0) == 0) {
		up_term e = el(m.term, 1);
		PCHECK(el(e, 1) == up_pid_term(a));
		PCHECK(is_tagged(el(e, 2), A("kept"), 2));
		got++;
	}
	PCHECK_EQ(got, 1);
	up_term mb = up_monitor(b);
	up_send(b, A("stop"));
	reason_of_death(b, mb);
	/* We unlinked b: its normal exit sends us nothing. */
	up_term r;
	PCHECK_EQ(await_exit_msg(b, &r, 20 * MS), -ETIMEDOUT);
}

static void test_link_unlink_across_schedulers(void **state)
{
	(void)state;
	RUN_OK(link_across_main, NULL, 2);
}

/* A process that ends while a trapped EXIT and a DOWN, sent from another
 * scheduler, still sit in its inbox (it ran without a switch, so its
 * scheduler never drained them) frees them with the rest: they used to
 * leak (LeakSanitizer reports it in the sanitizer build; found by the
 * fuzz_api harness). */
struct unread {
	up_pid target;
	atomic_int ready;
};

static void unread_target(void *arg)
{
	(void)arg;
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	up_exit(up_self(), A("boom"));
}

static void unread_watcher(void *arg)
{
	struct unread *u = arg;
	up_trap_exit(1);
	PCHECK_EQ(up_link(u->target), 0);
	PCHECK(!up_is_bad(up_monitor(u->target)));
	atomic_store(&u->ready, 1);
	/* No switch from here on: the EXIT and the DOWN stay in the inbox. */
	int64_t t0 = now_ns();
	while (up_alive(u->target) == 1 && now_ns() - t0 < WAIT_NS)
		;
	PCHECK_EQ(up_alive(u->target), 0);
	t0 = now_ns();
	while (now_ns() - t0 < 50 * MS)
		;
}

static void unread_main(void *arg)
{
	(void)arg;
	struct unread u = { 0 };
	up_term mt, mw;
	u.target = spawn_mon(unread_target, NULL, 0, &mt);
	up_pid w = spawn_mon(unread_watcher, &u, 1, &mw);
	while (!atomic_load(&u.ready))
		up_sleep(MS);
	PCHECK_EQ(up_send_word(u.target, 1), 0);
	PCHECK_TERM(reason_of_death(u.target, mt), A("boom"));
	PCHECK_TERM(reason_of_death(w, mw), UP_NORMAL);
}

static void test_signals_unread_at_exit_are_freed(void **state)
{
	(void)state;
	RUN_OK(unread_main, NULL, 2);
}

/* ---------------------------------------------------------- ordering */

/* A message followed by an exit signal from the same sender reaches a
 * trapping receiver in that order, on one scheduler and across two. */
#define ORDER_ROUNDS 1000

struct order {
	up_pid sender;
	atomic_int bad;
	atomic_int done;
};

static void order_receiver(void *arg)
{
	struct order *o = arg;
	up_trap_exit(1);
	up_send(o->sender, A("ready"));
	for (int i = 0; i < ORDER_ROUNDS; i++) {
		struct up_msg m;
		/* 1: the word, 2: the term, 3: the EXIT. */
		if (up_recv(&m, WAIT_NS) != 0 || m.kind != UP_MSG_WORD || m.word != (uint64_t)i) {
			atomic_fetch_add(&o->bad, 1);
			break;
		}
		if (up_recv(&m, WAIT_NS) != 0 || m.kind != UP_MSG_TERM ||
		    !up_equal(m.term, up_int(i))) {
			atomic_fetch_add(&o->bad, 1);
			break;
		}
		up_msg_free(&m);
		if (up_recv(&m, WAIT_NS) != 0 || m.kind != UP_MSG_TERM ||
		    !is_tagged(m.term, A("EXIT"), 3) || el(m.term, 1) != up_pid_term(o->sender) ||
		    !up_equal(el(m.term, 2), up_int(i))) {
			atomic_fetch_add(&o->bad, 1);
			break;
		}
		up_msg_free(&m);
	}
	atomic_store(&o->done, 1);
}

static void order_main(void *arg)
{
	int sched = *(int *)arg;
	struct order o = { .sender = up_self() };
	up_term mr;
	up_pid r = spawn_mon(order_receiver, &o, sched, &mr);
	await_atom("ready");
	for (int i = 0; i < ORDER_ROUNDS; i++) {
		PCHECK_EQ(up_send_word(r, (uint64_t)i), 0);
		PCHECK_EQ(up_send(r, up_int(i)), 0);
		PCHECK_EQ(up_exit(r, up_int(i)), 0);
		if (i % 64 == 0)
			up_yield();
	}
	PCHECK_TERM(reason_of_death(r, mr), UP_NORMAL);
	PCHECK_EQ(atomic_load(&o.done), 1);
	PCHECK_EQ(atomic_load(&o.bad), 0);
}

static void test_message_then_exit_signal_keep_order(void **state)
{
	(void)state;
	int same = 0, other = 1;
	RUN_OK(order_main, &same, 2);
	RUN_OK(order_main, &other, 2);
}

/* -------------------------------------------------- spawn link / monitor */

static void die_at_once(void *arg)
{
	(void)arg;
	up_exit(up_self(), A("instant"));
}

static void spawn_link_monitor_main(void *arg)
{
	(void)arg;
	up_trap_exit(1);
	for (int sched = 0; sched < 2; sched++) {
		struct up_spawn_opts o = spawn_on(sched);
		o.flags |= UP_SPAWN_LINK | UP_SPAWN_MONITOR;
		up_pid c = up_spawn_opt(die_at_once, NULL, &o);
		PCHECK(c > 0);
		PCHECK_EQ(up_kind_of(o.monitor_ref), UP_K_REF);
		up_term why = UP_NIL;
		PCHECK_EQ(await_exit_msg(c, &why, WAIT_NS), 0);
		PCHECK_TERM(why, A("instant"));
		PCHECK_TERM(reason_of_death(c, o.monitor_ref), A("instant"));

		/* Monitor alone. */
		o = spawn_on(sched);
		o.flags |= UP_SPAWN_MONITOR;
		c = up_spawn_opt(noop, NULL, &o);
		PCHECK_TERM(reason_of_death(c, o.monitor_ref), UP_NORMAL);
	}
	/* Without the flags, monitor_ref is left alone. */
	struct up_spawn_opts o = spawn_opts();
	o.monitor_ref = A("untouched");
	up_pid c = up_spawn_opt(noop, NULL, &o);
	PCHECK(o.monitor_ref == A("untouched"));
	proc_wait_exit(c);
	up_trap_exit(0);
	struct up_msg m;
	while (up_recv(&m, 0) == 0)
		up_msg_free(&m);
}

static void test_spawn_link_and_monitor_see_instant_exit(void **state)
{
	(void)state;
	RUN_OK(spawn_link_monitor_main, NULL, 2);
}

/* A non-trapping spawner linked by UP_SPAWN_LINK dies with its child. */
static void spawner_dies(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_LINK;
	up_spawn_opt(die_at_once, NULL, &o);
	struct up_msg m;
	up_recv(&m, WAIT_NS);
	PFAIL("the linked spawner outlived its crashing child");
}

static void spawn_link_kills_main(void *arg)
{
	(void)arg;
	up_pid p = up_spawn(spawner_dies, NULL);
	up_term ref = up_monitor(p);
	PCHECK_TERM(reason_of_death(p, ref), A("instant"));
}

static void test_spawn_link_crash_kills_nontrapping_spawner(void **state)
{
	(void)state;
	RUN_OK(spawn_link_kills_main, NULL, 2);
}

/* ------------------------------------------------------------ registry */

static void registry_main(void *arg)
{
	(void)arg;
	up_pid self = up_self();
	up_term name = A("sig_test_server");
	up_pid a = up_spawn(pinger, NULL);
	up_pid b = up_spawn(pinger, NULL);

	PCHECK_EQ(up_register(name, a), 0);
	PCHECK_EQ(up_whereis(name), a);
	PCHECK_EQ(up_register(name, b), -EEXIST);          /* name taken */
	PCHECK_EQ(up_register(name, a), -EEXIST);          /* same pair again */
	PCHECK_EQ(up_register(A("sig_other_name"), a), -EEXIST); /* a has a name */
	PCHECK_EQ(up_whereis(A("sig_other_name")), -ESRCH);
	PCHECK_EQ(up_whereis(A("sig_never_registered")), -ESRCH);
	PCHECK_EQ(up_unregister(A("sig_never_registered")), -ESRCH);
	PCHECK_EQ(up_send_name(A("sig_never_registered"), up_int(1)), -ESRCH);
	PCHECK_EQ(up_register(up_int(3), b), -EINVAL);
	PCHECK_EQ(up_register(name, 0), -EINVAL);
	PCHECK_EQ(up_register(name, -5), -EINVAL);
	PCHECK_EQ(up_register(name, FOREIGN_PID), -EINVAL);

	/* up_send_name delivers to the registered process. */
	PCHECK_EQ(up_send_name(name, up_tuplev(2, A("ping"), up_pid_term(self))), 0);
	struct pong_arg pa = { up_pid_term(a) };
	struct up_msg m;
	PCHECK_EQ(up_recv_match(match_pong, &pa, &m, WAIT_NS, 0), 0);

	/* Unregister frees both the name and the pid. */
	PCHECK_EQ(up_unregister(name), 0);
	PCHECK_EQ(up_whereis(name), -ESRCH);
	PCHECK_EQ(up_unregister(name), -ESRCH);
	PCHECK_EQ(up_register(A("sig_second_name"), a), 0);
	PCHECK_EQ(up_register(name, b), 0);

	/* A dead pid cannot be registered; a name is released when its
	 * process exits and can be taken again. */
	up_pid dead = up_spawn(noop, NULL);
	proc_wait_exit(dead);
	PCHECK_EQ(up_register(A("sig_dead_name"), dead), -ESRCH);
	PCHECK_EQ(up_whereis(A("sig_dead_name")), -ESRCH);

	up_term mb = up_monitor(b);
	up_send(b, A("stop"));
	reason_of_death(b, mb);
	PCHECK_EQ(up_whereis(name), -ESRCH);
	PCHECK_EQ(up_send_name(name, up_int(1)), -ESRCH);
	up_pid c = up_spawn(pinger, NULL);
	PCHECK_EQ(up_register(name, c), 0);
	PCHECK_EQ(up_whereis(name), c);
	PCHECK_EQ(up_register(name, self), -EEXIST);

	/* A process may register itself. */
	PCHECK_EQ(up_register(A("sig_self_name"), self), 0);
	PCHECK_EQ(up_whereis(A("sig_self_name")), self);
	PCHECK_EQ(up_unregister(A("sig_self_name")), 0);

	up_send(a, A("stop"));
	up_send(c, A("stop"));
	proc_wait_exit(a);
	proc_wait_exit(c);
	PCHECK_EQ(up_whereis(A("sig_second_name")), -ESRCH);
	PCHECK_EQ(up_whereis(name), -ESRCH);
}

static void test_registry(void **state)
{
	(void)state;
	RUN_OK(registry_main, NULL, 2);
}

/* A name whose process was still alive when up_shutdown ended the run is
 * free in the next run. */
static void registered_forever(void *arg)
{
	(void)arg;
	PCHECK_EQ(up_register(A("sig_across_runs"), up_self()), 0);
	up_shutdown();
	struct up_msg m;
	up_recv(&m, WAIT_NS);
}

static void reregister_main(void *arg)
{
	(void)arg;
	PCHECK_EQ(up_whereis(A("sig_across_runs")), -ESRCH);
	PCHECK_EQ(up_register(A("sig_across_runs"), up_self()), 0);
}

static void test_registry_names_do_not_outlive_a_run(void **state)
{
	(void)state;
	RUN_OK(registered_forever, NULL, 1);
	RUN_OK(reregister_main, NULL, 1);
}

/* ----------------------------------------------------------- call/reply */

/* A gen_server-like process.  Requests:
 *   {echo, X}         -> X
 *   {late, Ms, X}     -> X after Ms milliseconds
 *   {die, Reason}     -> exits with Reason (no reply)
 *   ignore            -> no reply
 *   stop              -> ok, then returns
 * It also counts what it handled into *arg (if not NULL). */
static void server(void *arg)
{
	atomic_int *handled = arg;
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("server never stopped");
			return;
		}
		if (m.kind != UP_MSG_TERM || !is_tagged(m.term, A("$gen_call"), 3))
			continue;
		if (handled)
			atomic_fetch_add(handled, 1);
		up_term from = el(m.term, 1), req = el(m.term, 2);
		if (is_tagged(req, A("echo"), 2)) {
			up_reply(from, el(req, 1));
		} else if (is_tagged(req, A("late"), 3)) {
			int64_t ms = 0;
			up_get_int(el(req, 1), &ms);
			up_sleep(ms * MS);
			up_reply(from, el(req, 2));
		} else if (is_tagged(req, A("die"), 2)) {
			up_exit(up_self(), el(req, 1));
		} else if (req == A("stop")) {
			up_reply(from, A("ok"));
			return;
		}
		up_msg_free(&m);
	}
}

static void call_main(void *arg)
{
	(void)arg;
	up_pid s = up_spawn(server, NULL);
	up_term reply = UP_NIL;
	up_term big = up_tuplev(3, A("ok"), up_binary("payload", 7),
				up_list(3, (up_term[]){ up_int(1), up_float(2.5), A("x") }));

	PCHECK_EQ(up_call(s, up_tuplev(2, A("echo"), big), &reply, WAIT_NS), 0);
	PCHECK_TERM(reply, big);

	/* Timeout. */
	int64_t t0 = now_ns();
	PCHECK_EQ(up_call(s, A("ignore"), &reply, 30 * MS), -ETIMEDOUT);
	PCHECK(now_ns() - t0 >= 30 * MS);
	PCHECK_EQ(up_call(s, A("ignore"), &reply, 0), -ETIMEDOUT);

	/* A late reply never answers the next call: the server sleeps 100 ms
	 * before answering `late`, the call gives up after 20 ms, and the next
	 * call's reply comes after the late one. */
	PCHECK_EQ(up_call(s, up_tuplev(3, A("late"), up_int(100), A("late_reply")), &reply,
			  20 * MS),
		  -ETIMEDOUT);
	PCHECK_EQ(up_call(s, up_tuplev(2, A("echo"), A("second")), &reply, WAIT_NS), 0);
	PCHECK_TERM(reply, A("second"));
	/* The stray late reply sits in the mailbox ({Ref, late_reply}); the
	 * calls after it still match only their own. */
	PCHECK_EQ(up_call(s, up_tuplev(2, A("echo"), A("third")), &reply, WAIT_NS), 0);
	PCHECK_TERM(reply, A("third"));

	/* The server dies during the call: -ESRCH, reply = its reason. */
	up_term why = up_tuplev(2, A("died"), up_int(7));
	PCHECK_EQ(up_call(s, up_tuplev(2, A("die"), why), &reply, WAIT_NS), -ESRCH);
	PCHECK_TERM(reply, why);

	/* A dead server: -ESRCH with noproc. */
	PCHECK_EQ(up_call(s, up_tuplev(2, A("echo"), A("x")), &reply, WAIT_NS), -ESRCH);
	PCHECK_TERM(reply, UP_NOPROC);

	/* No DOWN of the calls' monitors is left behind; only the stray reply. */
	struct up_msg m;
	int left = 0;
	while (up_recv(&m, 0) == 0) {
		PCHECK(!is_tagged(m.term, A("DOWN"), 5));
		left++;
	}
	PCHECK_EQ(left, 1);
}

static void test_call_reply_timeout_and_server_death(void **state)
{
	(void)state;
	RUN_OK(call_main, NULL, 2);
}

/* A call to a server on another scheduler, many times. */
static void call_across_main(void *arg)
{
	(void)arg;
	atomic_int handled = 0;
	up_pid s = spawn_at(server, &handled, 1);
	for (int i = 0; i < 1000; i++) {
		up_term reply;
		int r = up_call(s, up_tuplev(2, A("echo"), up_int(i)), &reply, WAIT_NS);
		if (r != 0 || !up_equal(reply, up_int(i))) {
			PFAIL("call %d: %d", i, r);
			break;
		}
	}
	up_term reply;
	PCHECK_EQ(up_call(s, A("stop"), &reply, WAIT_NS), 0);
	PCHECK_EQ(atomic_load(&handled), 1001);
}

static void test_call_across_schedulers(void **state)
{
	(void)state;
	RUN_OK(call_across_main, NULL, 2);
}

/* up_call looks only at messages that arrived after its request: with
 * 10,000 unrelated messages queued, a call costs what it costs with none.
 * Measured as the time of CALLS calls in both cases (best of 3). */
#define QUEUED 10000
#define CALLS 2000

static int64_t time_calls(up_pid s)
{
	int64_t best = INT64_MAX;
	for (int k = 0; k < 3; k++) {
		int64_t t0 = now_ns();
		for (int i = 0; i < CALLS; i++) {
			up_term reply;
			int r = up_call(s, A("ping_call"), &reply, WAIT_NS);
			if (r != 0) {
				PFAIL("call: %d", r);
				return 1;
			}
		}
		int64_t t = now_ns() - t0;
		if (t < best)
			best = t;
	}
	return best;
}

/* A server answering everything at once with `pong`. */
static void fast_server(void *arg)
{
	(void)arg;
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0)
			return;
		if (m.kind == UP_MSG_TERM && is_tagged(m.term, A("$gen_call"), 3)) {
			if (el(m.term, 2) == A("stop")) {
				up_reply(el(m.term, 1), A("ok"));
				return;
			}
			up_reply(el(m.term, 1), A("pong"));
		}
		up_msg_free(&m);
	}
}

static void call_o1_main(void *arg)
{
	int64_t *ratio_x100 = arg;
	up_pid s = up_spawn(fast_server, NULL);
	up_term reply;
	PCHECK_EQ(up_call(s, A("warm"), &reply, WAIT_NS), 0);
	PCHECK(reply == A("pong"));
	int64_t empty = time_calls(s);
	for (int i = 0; i < QUEUED; i++)
		up_send(up_self(), up_tuplev(2, up_int(i), A("unrelated")));
	PCHECK_EQ(up_mailbox_len(0), QUEUED);
	int64_t full = time_calls(s);
	PCHECK_EQ(up_mailbox_len(0), QUEUED); /* nothing taken, nothing added */
	*ratio_x100 = full * 100 / (empty ? empty : 1);
	PCHECK_EQ(up_call(s, A("stop"), &reply, WAIT_NS), 0);
}

static void test_call_is_o1_with_queued_messages(void **state)
{
	(void)state;
	int64_t ratio_x100 = 0;
	RUN_OK(call_o1_main, &ratio_x100, 1);
	print_message("call time with %d queued / with none: %.2f\n", QUEUED,
		      ratio_x100 / 100.0);
	/* O(n) would be > 100x (10,000 extra looks per call). */
	assert_true(ratio_x100 < 400);
}

/* ---------------------------------------------------------- error codes */

struct errs {
	int exit_self_bad, exit_zero, exit_neg, exit_foreign, exit_dead, exit_bad_reason;
	int trap_prev0, trap_prev1, trap_prev_back;
	int link_zero, link_neg, link_foreign, link_self, unlink_zero, unlink_self,
		unlink_foreign, unlink_unlinked;
	int mon_zero, mon_foreign, demon_notref, demon_flag, demon_unknown;
	int call_null, call_badreq, call_zero, call_foreign, call_badtimeout;
	int reply_notuple, reply_badpid, reply_noref, reply_badterm, reply_dead;
};

static void errs_main(void *arg)
{
	struct errs *e = arg;
	up_pid dead = up_spawn(noop, NULL);
	proc_wait_exit(dead);
	up_term bad = up_atom(""); /* a bad term (-EINVAL) */

	e->exit_zero = up_exit(0, A("x"));
	e->exit_neg = up_exit(-3, A("x"));
	e->exit_foreign = up_exit(FOREIGN_PID, A("x"));
	e->exit_dead = up_exit(dead, A("x"));
	up_pid p = up_spawn(idle, NULL);
	e->exit_bad_reason = up_exit(p, bad);
	up_exit(p, UP_KILL);
	e->exit_self_bad = up_exit(up_self(), bad); /* returns: bad reason */

	e->trap_prev0 = up_trap_exit(1);
	e->trap_prev1 = up_trap_exit(7);
	e->trap_prev_back = up_trap_exit(0);

	e->link_zero = up_link(0);
	e->link_neg = up_link(-1);
	e->link_foreign = up_link(FOREIGN_PID);
	e->link_self = up_link(up_self());
	e->unlink_zero = up_unlink(0);
	e->unlink_self = up_unlink(up_self());
	e->unlink_foreign = up_unlink(FOREIGN_PID);
	e->unlink_unlinked = up_unlink(dead);

	e->mon_zero = up_term_error(up_monitor(0));
	e->mon_foreign = up_term_error(up_monitor(FOREIGN_PID));
	e->demon_notref = up_demonitor(A("ref"), 0);
	up_term ref = up_monitor(dead); /* fires at once */
	e->demon_flag = up_demonitor(ref, 0x2);
	e->demon_unknown = up_demonitor(up_make_ref(), 0);

	up_term reply;
	up_pid s = up_spawn(server, NULL);
	e->call_null = up_call(s, A("x"), NULL, WAIT_NS);
	e->call_badreq = up_call(s, bad, &reply, WAIT_NS);
	e->call_zero = up_call(0, A("x"), &reply, WAIT_NS);
	e->call_foreign = up_call(FOREIGN_PID, A("x"), &reply, WAIT_NS);
	e->call_badtimeout = up_call(s, A("x"), &reply, -5);

	up_term me = up_pid_term(up_self());
	e->reply_notuple = up_reply(A("x"), A("r"));
	e->reply_badpid = up_reply(up_tuplev(2, A("x"), up_make_ref()), A("r"));
	e->reply_noref = up_reply(up_tuplev(2, me, A("r")), A("r"));
	e->reply_badterm = up_reply(up_tuplev(2, me, up_make_ref()), bad);
	e->reply_dead = up_reply(up_tuplev(2, up_pid_term(dead), up_make_ref()), A("r"));
	up_call(s, A("stop"), &reply, WAIT_NS);
	struct up_msg m;
	while (up_recv(&m, 0) == 0)
		up_msg_free(&m);
}

static void test_documented_error_codes(void **state)
{
	(void)state;
	struct errs e;
	memset(&e, 0x55, sizeof e);
	RUN_OK(errs_main, &e, 1);

	assert_int_equal(e.exit_zero, -EINVAL);
	assert_int_equal(e.exit_neg, -EINVAL);
	assert_int_equal(e.exit_foreign, -EINVAL);
	assert_int_equal(e.exit_dead, -ESRCH);
	assert_int_equal(e.exit_bad_reason, -EINVAL);
	assert_int_equal(e.exit_self_bad, -EINVAL);
	assert_int_equal(e.trap_prev0, 0);
	assert_int_equal(e.trap_prev1, 1);
	assert_int_equal(e.trap_prev_back, 1);
	assert_int_equal(e.link_zero, -EINVAL);
	assert_int_equal(e.link_neg, -EINVAL);
	assert_int_equal(e.link_foreign, -EINVAL);
	assert_int_equal(e.link_self, -EINVAL);
	assert_int_equal(e.unlink_zero, -EINVAL);
	assert_int_equal(e.unlink_self, -EINVAL);
	assert_int_equal(e.unlink_foreign, -EINVAL);
	assert_int_equal(e.unlink_unlinked, 0);
	assert_int_equal(e.mon_zero, -EINVAL);
	assert_int_equal(e.mon_foreign, -EINVAL);
	assert_int_equal(e.demon_notref, -EINVAL);
	assert_int_equal(e.demon_flag, -EINVAL);
	assert_int_equal(e.demon_unknown, 0);
	assert_int_equal(e.call_null, -EINVAL);
	assert_int_equal(e.call_badreq, -EINVAL);
	assert_int_equal(e.call_zero, -EINVAL);
	assert_int_equal(e.call_foreign, -EINVAL);
	assert_int_equal(e.call_badtimeout, -EINVAL);
	assert_int_equal(e.reply_notuple, -EINVAL);
	assert_int_equal(e.reply_badpid, -EINVAL);
	assert_int_equal(e.reply_noref, -EINVAL);
	assert_int_equal(e.reply_badterm, -EINVAL);
	assert_int_equal(e.reply_dead, -ESRCH);
}

/* Outside a process (no runtime, or from a plain thread): -EPERM for the
 * process-only functions, -ESRCH where "no runtime is running" applies. */
static void test_errors_outside_a_process(void **state)
{
	(void)state;
	up_term reply;
	assert_int_equal(up_trap_exit(1), -EPERM);
	assert_int_equal(up_link(1), -EPERM);
	assert_int_equal(up_unlink(1), -EPERM);
	assert_int_equal(up_term_error(up_monitor(1)), -EPERM);
	assert_int_equal(up_demonitor(UP_NIL, 0), -EPERM);
	assert_int_equal(up_call(1, A("x"), &reply, 0), -EPERM);
	assert_int_equal(up_exit(1, A("x")), -ESRCH);
	assert_int_equal(up_whereis(A("x")), -ESRCH);
	assert_int_equal(up_register(A("x"), 1), -ESRCH);
	assert_int_equal(up_send_name(A("x"), up_int(1)), -ESRCH);
}

/* From a thread that is not a process, while a runtime runs: up_exit works
 * (From is not a pid), the process-only calls say -EPERM. */
struct thread_errs {
	up_pid target;
	atomic_int go, done;
	int trap, link, call, exit_rc;
};

static void *outsider(void *arg)
{
	struct thread_errs *t = arg;
	up_term reply;
	thread_wait_flag(&t->go);
	t->trap = up_trap_exit(1);
	t->link = up_link(t->target);
	t->call = up_call(t->target, A("x"), &reply, 0);
	t->exit_rc = up_exit(t->target, A("from_thread"));
	atomic_store(&t->done, 1);
	return NULL;
}

static void outsider_main(void *arg)
{
	struct thread_errs *t = arg;
	up_trap_exit(1);
	t->target = up_self();
	atomic_store(&t->go, 1);
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return;
	PCHECK(is_tagged(m.term, A("EXIT"), 3));
	PCHECK_TERM(el(m.term, 1), A("undefined")); /* the sender: no process */
	PCHECK(el(m.term, 2) == A("from_thread"));
}

static void test_errors_from_a_foreign_thread(void **state)
{
	(void)state;
	struct thread_errs t = { 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, outsider, &t), 0);
	RUN_OK(outsider_main, &t, 1);
	pthread_join(th, NULL);
	assert_int_equal(t.trap, -EPERM);
	assert_int_equal(t.link, -EPERM);
	assert_int_equal(t.call, -EPERM);
	assert_int_equal(t.exit_rc, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_link_abnormal_exit_kills_linked),
		UPT_TEST(test_exit_signal_before_first_run_keeps_reason),
		UPT_TEST(test_link_normal_exit_spares_linked),
		UPT_TEST(test_kill_is_untrappable_and_propagates_killed),
		UPT_TEST(test_trapping_process_receives_exit_message),
		UPT_TEST(test_exit_normal_to_nontrapping_is_ignored),
		UPT_TEST(test_monitor_delivers_down_with_its_ref),
		UPT_TEST(test_monitor_dead_pid_gives_noproc_at_once),
		UPT_TEST(test_demonitor_stops_the_down),
		UPT_TEST(test_demonitor_flush_removes_delivered_down),
		UPT_TEST(test_demonitor_of_fired_monitor_returns_0),
		UPT_TEST(test_link_dead_pid_trapping_gets_noproc_exit),
		UPT_TEST(test_link_dead_pid_nontrapping_dies_noproc),
		UPT_TEST(test_link_unlink_across_schedulers),
		UPT_TEST(test_signals_unread_at_exit_are_freed),
		UPT_TEST(test_message_then_exit_signal_keep_order),
		UPT_TEST(test_spawn_link_and_monitor_see_instant_exit),
		UPT_TEST(test_spawn_link_crash_kills_nontrapping_spawner),
		UPT_TEST(test_registry),
		UPT_TEST(test_registry_names_do_not_outlive_a_run),
		UPT_TEST(test_call_reply_timeout_and_server_death),
		UPT_TEST(test_call_across_schedulers),
		UPT_TEST(test_call_is_o1_with_queued_messages),
		UPT_TEST(test_documented_error_codes),
		UPT_TEST(test_errors_outside_a_process),
		UPT_TEST(test_errors_from_a_foreign_thread),
	};
	return UPT_RUN("signals", tests);
}
