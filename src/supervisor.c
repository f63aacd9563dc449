/*
 * supervisor.c - OTP's supervisor behaviour, written on the public API only
 * (processes, links, monitors, trap_exit, up_call/up_reply, terms).
 *
 * A supervisor is an ordinary process that traps exits.  Its state lives in
 * its own heap (struct sup): a copy of the spec, the current pid of each
 * child, and a ring of recent restart times.  Its life, as a state machine:
 *
 *   INIT        Copy the spec (up_alloc), trap exits, spawn every child with
 *               UP_SPAWN_LINK in spec order.  If a child cannot be spawned,
 *               the children already started are stopped (SHUTDOWN) and the
 *               supervisor exits: `normal` after telling up_supervisor_start
 *               (which then returns -ECHILD), reason `child_start_failed`
 *               when it is a nested supervisor.  Otherwise it tells the
 *               starter (the handshake: {'$sup_ack', Self, 0}) and goes on.
 *
 *   RUNNING     Receive the next message, whatever it is:
 *               {'EXIT', Child, Reason}   the child is no longer running; by
 *                   its restart type (permanent: always; transient: unless
 *                   Reason is normal, shutdown or {shutdown, _}; temporary:
 *                   never, and it leaves the spec) either forget it, or
 *                   RESTARTING;
 *               {'EXIT', Parent, Reason}  (any reason, `normal` included)
 *                   SHUTDOWN, then exit with Reason;
 *               {'EXIT', Other, Reason}   from a process that is neither
 *                   parent nor child: as a non-trapping process would, it
 *                   ignores `normal` and dies of anything else, but in
 *                   order: SHUTDOWN, then exit with Reason.  When the parent
 *                   is not known (a supervisor spawned as the child of
 *                   another, whose body is up_supervisor_main), a linked
 *                   process that is not a child is the parent, so every
 *                   reason counts as the parent's;
 *               {'$gen_call', From, Request}  which_child / restarts are
 *                   answered; stop: SHUTDOWN, reply ok, exit normal;
 *               anything else is dropped.
 *
 *   RESTARTING  Record the time in the restart ring.  More than `intensity`
 *               restarts within `period_ns`: SHUTDOWN, exit with reason
 *               shutdown.  Else stop the siblings the strategy names (their
 *               EXITs are consumed by the stop), in reverse start order,
 *               then start them and the exited child again in start order:
 *               one_for_one the child alone; one_for_all every child;
 *               rest_for_one the child and the ones after it.  Temporary
 *               children stopped this way are not restarted (they leave the
 *               spec, as in OTP); transient ones that had ended normally are
 *               started again.  A child that cannot be spawned counts as one
 *               more restart (so a persistent failure ends in SHUTDOWN).
 *               Back to RUNNING.
 *
 *   SHUTDOWN    Stop every running child in reverse start order.  Stopping
 *               one child: monitor it, send exit signal `shutdown` and wait
 *               for its DOWN up to shutdown_ns (UP_INFINITY: for ever), then
 *               send `kill` and wait for the DOWN; UP_BRUTAL_KILL sends
 *               `kill` at once.  The monitor makes the wait safe even if the
 *               child unlinked itself; the child's {'EXIT', Child, _} (sent
 *               before its DOWN) is then removed from the mailbox.
 *
 * While the supervisor waits for one child to stop, other messages (EXITs
 * of other children, calls, its parent's EXIT) stay queued in order and are
 * handled when it is back in RUNNING.
 *
 * `restarts` (up_supervisor_restarts) counts restart events, the unit of the
 * intensity: a one_for_all restart of five children is one restart.
 *
 * The client side (up_supervisor_child/restarts/stop) are up_call wrappers
 * with the request terms below; up_supervisor_start spawns the supervisor
 * linked and monitored, and waits for its handshake (or its DOWN).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "uproc.h"

/* Requests a supervisor answers (the Request of {'$gen_call', From, Request}):
 *   {'$sup_which_child', Id}  -> the child's pid, or undefined
 *   '$sup_restarts'           -> the number of restarts, an integer
 *   '$sup_stop'               -> ok, once the children are stopped; then the
 *                                supervisor exits normal
 * and the handshake message to up_supervisor_start's caller:
 *   {'$sup_ack', Sup, Result} -> Result: 0, or a negative errno. */
#define REQ_WHICH_CHILD "$sup_which_child"
#define REQ_RESTARTS "$sup_restarts"
#define REQ_STOP "$sup_stop"
#define MSG_ACK "$sup_ack"

/* How long up_supervisor_start waits for the handshake.  Starting children
 * only spawns them (never blocks), so this is a safety net. */
#define START_TIMEOUT_NS (30LL * 1000000000LL)
/* After a DOWN `noproc` (the child had gone before it was monitored), how
 * long to wait for its EXIT, which is then still on its way. */
#define LATE_EXIT_NS (1000LL * 1000000LL)
/* Nesting depth up to which nested supervisor specs are validated. */
#define MAX_NESTING 64

struct child {
	struct up_child_spec spec;
	up_pid pid;      /* running child, or 0 */
	int removed;     /* a temporary child that ended: no longer in the spec */
};

struct atoms {
	up_term exit, down, gen_call, which_child, restarts, stop, ok, undefined, ack;
};

struct sup {
	enum up_strategy strategy;
	unsigned intensity;
	int64_t period_ns;
	size_t n;
	struct child *c;
	up_pid self;
	up_pid parent;       /* 0: not known */
	long restarts;       /* restart events so far */
	int64_t *ring;       /* restart times (monotonic ns), oldest at head */
	size_t ring_cap, ring_head, ring_len;
	struct atoms a;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void atoms_init(struct atoms *a)
{
	a->exit = up_atom("EXIT");
	a->down = up_atom("DOWN");
	a->gen_call = up_atom("$gen_call");
	a->which_child = up_atom(REQ_WHICH_CHILD);
	a->restarts = up_atom(REQ_RESTARTS);
	a->stop = up_atom(REQ_STOP);
	a->ok = up_atom("ok");
	a->undefined = up_atom("undefined");
	a->ack = up_atom(MSG_ACK);
}

/* Element i of tuple t, or a bad term. */
static up_term elem(up_term t, size_t i)
{
	up_term e;
	return up_tuple_elem(t, i, &e) == 0 ? e : UP_NIL; /* never an atom, pid or ref */
}

/* ------------------------------------------------------------- the spec */

static int validate(const struct up_sup_spec *spec, int depth)
{
	if (!spec || depth > MAX_NESTING)
		return -EINVAL;
	if ((unsigned)spec->strategy > UP_REST_FOR_ONE || spec->period_ns <= 0)
		return -EINVAL;
	if (spec->nchildren && !spec->children)
		return -EINVAL;
	if (spec->nchildren > SIZE_MAX / sizeof(struct child))
		return -EINVAL;
	for (size_t i = 0; i < spec->nchildren; i++) {
		const struct up_child_spec *c = &spec->children[i];
		if (up_kind_of(c->id) != UP_K_ATOM || !c->start ||
		    (unsigned)c->restart > UP_TEMPORARY ||
		    (c->shutdown_ns < 0 && c->shutdown_ns != UP_INFINITY))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (spec->children[j].id == c->id)
				return -EINVAL;
		if (c->start == up_supervisor_main) {
			int r = validate(c->arg, depth + 1);
			if (r)
				return r;
		}
	}
	return 0;
}

/* The supervisor's state, with a copy of spec, in the calling process's heap. */
static struct sup *sup_new(const struct up_sup_spec *spec, up_pid parent)
{
	struct sup *s = up_alloc(sizeof *s);
	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	s->strategy = spec->strategy;
	s->intensity = spec->intensity;
	s->period_ns = spec->period_ns;
	s->n = spec->nchildren;
	s->self = up_self();
	s->parent = parent;
	atoms_init(&s->a);
	if (s->n) {
		s->c = up_alloc(s->n * sizeof *s->c);
		if (!s->c)
			return NULL;
		for (size_t i = 0; i < s->n; i++) {
			s->c[i].spec = spec->children[i];
			s->c[i].pid = 0;
			s->c[i].removed = 0;
		}
	}
	return s;
}

/* ----------------------------------------------------- stopping children */

struct down_match {
	up_term down, ref;
};

static int is_down(const struct up_msg *m, void *arg)
{
	const struct down_match *d = arg;
	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 5 &&
	       elem(m->term, 0) == d->down && up_equal(elem(m->term, 1), d->ref);
}

struct exit_match {
	up_term exit, from;
};

static int is_exit_from(const struct up_msg *m, void *arg)
{
	const struct exit_match *e = arg;
	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 3 &&
	       elem(m->term, 0) == e->exit && elem(m->term, 1) == e->from;
}

/* Wait for the DOWN of monitor ref: 0 and *noproc set if its reason was
 * noproc, or -ETIMEDOUT. */
static int wait_down(struct sup *s, up_term ref, int64_t timeout_ns, int *noproc)
{
	struct down_match d = { s->a.down, ref };
	struct up_msg m;
	int r = up_recv_match(is_down, &d, &m, timeout_ns, 0);
	if (r == 0) {
		*noproc = elem(m.term, 4) == UP_NOPROC;
		up_msg_free(&m);
	}
	return r;
}

/* Stop child c (see SHUTDOWN above) and consume its EXIT. */
static void stop_child(struct sup *s, struct child *c)
{
	up_pid pid = c->pid;
	struct exit_match e = { s->a.exit, up_pid_term(pid) };
	struct up_msg m;
	int noproc = 0;

	if (!pid)
		return;
	c->pid = 0;
	up_term ref = up_monitor(pid);
	if (up_is_bad(ref)) {
		/* No memory for a monitor: fall back on the link, which the
		 * child cannot have broken (a child does not unlink). */
		up_exit(pid, UP_KILL);
		if (up_recv_match(is_exit_from, &e, &m, UP_INFINITY, 0) == 0)
			up_msg_free(&m);
		return;
	}
	if (c->spec.shutdown_ns == UP_BRUTAL_KILL) {
		up_exit(pid, UP_KILL);
		wait_down(s, ref, UP_INFINITY, &noproc);
	} else {
		up_exit(pid, UP_SHUTDOWN);
		if (wait_down(s, ref, c->spec.shutdown_ns, &noproc) != 0) {
			up_exit(pid, UP_KILL);
			wait_down(s, ref, UP_INFINITY, &noproc);
		}
	}
	up_demonitor(ref, 0);
	/* The link's EXIT came before the DOWN; if the child was already gone
	 * when we looked, it may still be on its way. */
	if (up_recv_match(is_exit_from, &e, &m, noproc ? LATE_EXIT_NS : 0, 0) == 0)
		up_msg_free(&m);
}

/* Stop the running children of [from, to) in reverse start order. */
static void stop_range(struct sup *s, size_t from, size_t to)
{
	for (size_t i = to; i-- > from;)
		stop_child(s, &s->c[i]);
}

static __attribute__((noreturn)) void shutdown_and_exit(struct sup *s, up_term reason)
{
	stop_range(s, 0, s->n);
	up_exit(s->self, reason);
	__builtin_unreachable();
}

/* ----------------------------------------------------- starting children */

static int start_child(struct child *c)
{
	struct up_spawn_opts o;
	memset(&o, 0, sizeof o);
	o.flags = UP_SPAWN_LINK;
	up_pid pid = up_spawn_opt(c->spec.start, c->spec.arg, &o);
	if (pid < 0)
		return (int)pid;
	c->pid = pid;
	return 0;
}

/* Start the children of [from, to) that are in the spec and not running,
 * in order.  Returns n (all started) or the index of the one that failed. */
static size_t start_range(struct sup *s, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct child *c = &s->c[i];
		if (c->removed || c->pid)
			continue;
		if (start_child(c) != 0)
			return i;
	}
	return s->n;
}

/* ----------------------------------------------------------- restarting */

/* Record a restart now: 1, or 0 when it would make more than intensity
 * restarts within period_ns (nothing recorded). */
static int add_restart(struct sup *s)
{
	int64_t now = mono_ns();

	while (s->ring_len && now - s->ring[s->ring_head] >= s->period_ns) {
		s->ring_head = (s->ring_head + 1) % s->ring_cap;
		s->ring_len--;
	}
	if (s->ring_len >= s->intensity)
		return 0;
	if (s->ring_len == s->ring_cap) {
		/* Grow (up to intensity entries), oldest first. */
		size_t cap = s->ring_cap ? s->ring_cap * 2 : 8;
		if (cap > s->intensity)
			cap = s->intensity;
		int64_t *ring = up_alloc(cap * sizeof *ring);
		if (!ring)
			return 0;
		for (size_t i = 0; i < s->ring_len; i++)
			ring[i] = s->ring[(s->ring_head + i) % s->ring_cap];
		s->ring = ring;
		s->ring_cap = cap;
		s->ring_head = 0;
	}
	s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = now;
	s->ring_len++;
	s->restarts++;
	return 1;
}

/* RESTARTING for child i, which has exited and must be restarted. */
static void restart(struct sup *s, size_t i)
{
	for (;;) {
		if (!add_restart(s))
			shutdown_and_exit(s, UP_SHUTDOWN);
		size_t from = i, to = i + 1;
		if (s->strategy == UP_ONE_FOR_ALL)
			from = 0, to = s->n;
		else if (s->strategy == UP_REST_FOR_ONE)
			to = s->n;
		stop_range(s, from, to);
		for (size_t j = from; j < to; j++)
			if (j != i && s->c[j].spec.restart == UP_TEMPORARY)
				s->c[j].removed = 1;
		size_t failed = start_range(s, from, to);
		if (failed == s->n)
			return;
		i = failed; /* counts as one more restart */
	}
}

static int restart_wanted(enum up_restart type, up_term reason)
{
	if (type == UP_PERMANENT)
		return 1;
	if (type == UP_TEMPORARY)
		return 0;
	/* transient: not after normal, shutdown or {shutdown, _} */
	if (reason == UP_NORMAL || reason == UP_SHUTDOWN)
		return 0;
	return !(up_tuple_arity(reason) == 2 && elem(reason, 0) == UP_SHUTDOWN);
}

/* ------------------------------------------------------------- RUNNING */

static void on_exit_signal(struct sup *s, up_term from_t, up_term reason)
{
	up_pid from = 0;
	up_get_pid(from_t, &from);
	if (from) {
		for (size_t i = 0; i < s->n; i++) {
			struct child *c = &s->c[i];
			if (c->pid != from)
				continue;
			c->pid = 0;
			if (restart_wanted(c->spec.restart, reason))
				restart(s, i);
			else if (c->spec.restart == UP_TEMPORARY)
				c->removed = 1;
			return;
		}
	}
	if ((from && from == s->parent) || !s->parent || reason != UP_NORMAL)
		shutdown_and_exit(s, reason);
}

static void on_call(struct sup *s, up_term from, up_term req)
{
	if (req == s->a.restarts) {
		up_reply(from, up_int(s->restarts));
	} else if (req == s->a.stop) {
		stop_range(s, 0, s->n);
		up_reply(from, s->a.ok);
		up_exit(s->self, UP_NORMAL);
	} else if (up_tuple_arity(req) == 2 && elem(req, 0) == s->a.which_child) {
		up_term id = elem(req, 1), pid = s->a.undefined;
		for (size_t i = 0; i < s->n; i++)
			if (s->c[i].spec.id == id && !s->c[i].removed && s->c[i].pid)
				pid = up_pid_term(s->c[i].pid);
		up_reply(from, pid);
	} else {
		up_reply(from, up_atom("badarg"));
	}
}

static __attribute__((noreturn)) void run(struct sup *s)
{
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, UP_INFINITY) != 0)
			continue;
		if (m.kind != UP_MSG_TERM || up_tuple_arity(m.term) != 3) {
			up_msg_free(&m);
			continue;
		}
		up_term tag = elem(m.term, 0);
		if (tag == s->a.exit) {
			/* The reason may be up_exit's own: m stays held (the
			 * process's exit releases it). */
			on_exit_signal(s, elem(m.term, 1), elem(m.term, 2));
		} else if (tag == s->a.gen_call) {
			on_call(s, elem(m.term, 1), elem(m.term, 2));
		}
		up_msg_free(&m);
	}
}

/* ---------------------------------------------------------------- INIT */

/* The body of every supervisor.  ack: tell the parent (up_supervisor_start)
 * how the start went. */
static __attribute__((noreturn)) void supervise(const struct up_sup_spec *spec, up_pid parent,
						int ack)
{
	up_trap_exit(1);
	int r = validate(spec, 0);
	struct sup *s = r ? NULL : sup_new(spec, parent);
	if (!s && !r)
		r = -ENOMEM;
	if (s) {
		size_t failed = start_range(s, 0, s->n);
		if (failed != s->n) {
			stop_range(s, 0, failed);
			r = -ECHILD;
		}
	}
	if (ack)
		up_send(parent, up_tuplev(3, up_atom(MSG_ACK), up_pid_term(up_self()), up_int(r)));
	if (r) {
		up_term why = r == -EINVAL   ? up_atom("bad_supervisor_spec")
			      : r == -ENOMEM ? up_atom("no_memory")
					     : up_atom("child_start_failed");
		up_exit(up_self(), ack ? UP_NORMAL : why);
	}
	run(s);
}

void up_supervisor_main(void *spec)
{
	supervise(spec, 0, 0);
}

struct start_arg {
	const struct up_sup_spec *spec;
	up_pid parent;
};

/* Body of a supervisor started by up_supervisor_start: arg is on the
 * starter's stack, alive until the handshake (the starter waits). */
static void start_main(void *arg)
{
	const struct start_arg *a = arg;
	supervise(a->spec, a->parent, 1);
}

/* -------------------------------------------------------- the client side */

struct ack_match {
	up_term ack, sup;
	struct down_match down;
};

static int is_ack_or_down(const struct up_msg *m, void *arg)
{
	const struct ack_match *a = arg;
	return is_down(m, (void *)&a->down) ||
	       (m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 3 &&
		elem(m->term, 0) == a->ack && elem(m->term, 1) == a->sup);
}

up_pid up_supervisor_start(const struct up_sup_spec *spec)
{
	up_pid self = up_self();
	if (!self)
		return -EPERM;
	int r = validate(spec, 0);
	if (r)
		return r;

	struct start_arg arg = { spec, self };
	struct up_spawn_opts o;
	memset(&o, 0, sizeof o);
	o.flags = UP_SPAWN_LINK | UP_SPAWN_MONITOR;
	up_recv_mark();
	up_pid sup = up_spawn_opt(start_main, &arg, &o);
	if (sup < 0)
		return sup;

	struct ack_match am = { up_atom(MSG_ACK), up_pid_term(sup), { up_atom("DOWN"), o.monitor_ref } };
	struct up_msg m;
	int64_t result = -ECHILD;
	int down = 0;
	r = up_recv_match(is_ack_or_down, &am, &m, START_TIMEOUT_NS, UP_RECV_AFTER_MARK);
	if (r == 0) {
		down = up_tuple_arity(m.term) == 5;
		if (!down && up_get_int(elem(m.term, 2), &result) != 0)
			result = -ECHILD;
		up_msg_free(&m);
		if (result == 0) {
			up_demonitor(o.monitor_ref, UP_DEMONITOR_FLUSH);
			return sup;
		}
	}
	/* It failed (or never answered): make sure it is gone and that its
	 * exit leaves nothing behind, then report. */
	up_unlink(sup);
	if (!down) {
		if (r != 0)
			up_exit(sup, UP_KILL);
		struct up_msg d;
		if (up_recv_match(is_down, &am.down, &d, UP_INFINITY, 0) == 0)
			up_msg_free(&d);
	}
	struct exit_match e = { up_atom("EXIT"), up_pid_term(sup) };
	while (up_recv_match(is_exit_from, &e, &m, 0, 0) == 0)
		up_msg_free(&m);
	return result == -ENOMEM ? -ENOMEM : -ECHILD;
}

up_pid up_supervisor_child(up_pid sup, up_term id, int64_t timeout_ns)
{
	up_term reply;
	if (!up_self())
		return -EPERM;
	int r = up_call(sup, up_tuplev(2, up_atom(REQ_WHICH_CHILD), id), &reply, timeout_ns);
	if (r)
		return r;
	up_pid pid;
	return up_get_pid(reply, &pid) == 0 ? pid : -ESRCH;
}

long up_supervisor_restarts(up_pid sup, int64_t timeout_ns)
{
	up_term reply;
	int64_t n;
	if (!up_self())
		return -EPERM;
	int r = up_call(sup, up_atom(REQ_RESTARTS), &reply, timeout_ns);
	if (r)
		return r;
	return up_get_int(reply, &n) == 0 ? (long)n : -EPROTO;
}

int up_supervisor_stop(up_pid sup, int64_t timeout_ns)
{
	up_term reply;
	if (!up_self())
		return -EPERM;
	if (timeout_ns < 0 && timeout_ns != UP_INFINITY)
		return -EINVAL;
	int64_t deadline = timeout_ns == UP_INFINITY ? 0 : mono_ns() + timeout_ns;
	up_term ref = up_monitor(sup);
	if (up_is_bad(ref))
		return up_term_error(ref);
	struct down_match d = { up_atom("DOWN"), ref };
	struct up_msg m;
	int r = up_call(sup, up_atom(REQ_STOP), &reply, timeout_ns);
	if (r == 0 || r == -ESRCH) {
		/* Stopped (or already gone): its DOWN says when it is over. */
		int64_t left = UP_INFINITY;
		if (deadline) {
			left = deadline - mono_ns();
			if (left < 0)
				left = 0;
		}
		int w = up_recv_match(is_down, &d, &m, left, 0);
		if (w == 0) {
			int noproc = elem(m.term, 4) == UP_NOPROC;
			up_msg_free(&m);
			/* A supervisor that was not alive when called. */
			return r == -ESRCH && noproc ? -ESRCH : 0;
		}
		r = w;
	}
	up_demonitor(ref, UP_DEMONITOR_FLUSH);
	return r;
}
