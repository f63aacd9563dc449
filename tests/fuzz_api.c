/*
 * fuzz_api.c - libFuzzer harness for the process API: random programs of
 * spawn, send (words and terms, two mailboxes, by name), receive with
 * timeout 0 or 200 us, link, unlink, monitor, demonitor (with flush),
 * exit(pid, reason) including kill and self, trap_exit, register,
 * unregister, whereis, alive and plain return, run against a model of OTP
 * semantics.  Built and run by scripts/fuzz api SECONDS; its corpus,
 * tests/fuzz/api/, is replayed by `meson test --suite fuzz`.
 *
 * Odd actors are compact processes (a shared stack), even ones have their
 * own.  Each input is one up_run (1 scheduler, or 2 when byte 0 says so) whose
 * main process, the controller, interprets the rest of the input one step
 * at a time: it spawns up to 16 actors (8 alive at once), and for each step
 * sends one actor a command (a word in mailbox 0, as Erlang orders every
 * signal and message of a pair in one stream) and waits for its reply or
 * its death.  The controller monitors every actor; after a step that kills
 * some, it waits for each death the model predicts and then for a round
 * trip with a helper process on every scheduler, so every reap is complete
 * (all its EXIT and DOWN signals pushed) before the next step: the outcome
 * of a program is then the same whatever the threads do.
 *
 * Invariants (a broken one aborts):
 *  - every call returns what the model says (pids, 0/1, errnos);
 *  - every message accepted (0) for a live process is received exactly
 *    once unless the receiver dies first, with per-sender order (messages
 *    and the EXIT signal of one sender in order; a dead sender's EXIT before
 *    its DOWNs), from the mailbox priorities say; a receive finds nothing
 *    only when the model has nothing for it (no loss, no duplicate, nothing
 *    invented);
 *  - EXIT and DOWN messages arrive as OTP rules predict: kill is
 *    untrappable and becomes killed, normal is ignored unless trapped,
 *    links propagate deaths both ways and are gone once used, a monitor
 *    fires once with the right reference and reason (noproc for a dead
 *    target), demonitor says whether it was active and flush removes its
 *    DOWN;
 *  - exactly the processes the model kills die, each with the predicted
 *    reason; at the end every actor has been seen dead exactly once and
 *    up_run returns 0; LeakSanitizer (libFuzzer's -detect_leaks) finds no
 *    leak between inputs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uproc.h"

#define MAXA 16          /* actors per input */
#define MAXLIVE 8        /* alive at once */
#define MAXMON 8         /* monitors an actor holds */
#define MAXQ 1024        /* expected messages per mailbox */
#define NNAMES 3
#define MAXSCHED 2
#define CTL MAXA         /* the controller's id (as a sender) */
#define WAIT_NS (10 * 1000000000LL)
#define SHORT_NS 200000

/* Odd actors are compact processes (UP_SPAWN_COMPACT): the same programs
 * then switch between shared-stack and own-stack processes, both ways. */
#define compact_bit(id) ((id) & 1 ? UP_SPAWN_COMPACT : 0u)

#define FAIL(...)                                                         \
	do {                                                              \
		fprintf(stderr, "fuzz_api: step %d: ", cur_step);         \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		abort();                                                  \
	} while (0)
#define CHECK(c)                                                          \
	do {                                                              \
		if (!(c))                                                 \
			FAIL("%s:%d: broken: %s", __FILE__, __LINE__, #c); \
	} while (0)

/* Word messages: a tag in the top byte. */
enum { TAG_DATA = 0xd1, TAG_CMD = 0xc1, TAG_REPLY = 0xe1, TAG_SYNC = 0xf1, TAG_STOP = 0xf2 };
#define WORD(tag, payload) (((uint64_t)(tag) << 56) | (uint64_t)(payload))
#define TAG_OF(w) ((unsigned)((w) >> 56))

/* Exit reasons. */
enum { R_NORMAL, R_KILL, R_KILLED, R_NOPROC, R_FOO, R_TUPLE, NREASON };

/* Steps. */
enum {
	OP_SPAWN, OP_SPAWN_LINK, OP_SEND_WORD, OP_SEND_TERM, OP_SEND_NAME, OP_RECV,
	OP_LINK, OP_UNLINK, OP_MONITOR, OP_DEMONITOR, OP_EXIT, OP_CTL_EXIT, OP_TRAP,
	OP_REGISTER, OP_UNREGISTER, OP_WHEREIS, OP_ALIVE, OP_RETURN, NOP
};

/* What a receive found. */
enum { K_NONE, K_DATA, K_EXIT, K_DOWN, K_OTHER };

struct cmd {
	int op, b, arg, arg2;
};

struct res {
	int64_t rc;
	int kind, from, mb, slot;
	uint32_t val;
};

/* Shared by the controller and the actors; every access is ordered by the
 * command and reply messages. */
static struct {
	up_pid pid[MAXA + 1];       /* [CTL]: the controller */
	struct cmd cmd[MAXA];
	struct res res[MAXA];
	up_pid helper[MAXSCHED];
	int nsched;
} W;

static int cur_step;
static int trace;     /* UP_FUZZ_TRACE set: print each step on stderr */
static up_term A_DATA, A_EXIT, A_DOWN, A_FOO, NAMES[NNAMES];

/* ------------------------------------------------------------ terms */

static up_term reason_term(int r)
{
	switch (r) {
	case R_NORMAL: return UP_NORMAL;
	case R_KILL: return UP_KILL;
	case R_KILLED: return UP_KILLED;
	case R_NOPROC: return UP_NOPROC;
	case R_FOO: return A_FOO;
	default: return up_tuplev(2, UP_SHUTDOWN, up_int(42)); /* in the heap */
	}
}

static int reason_code(up_term t)
{
	for (int r = 0; r < NREASON; r++)
		if (up_equal(t, reason_term(r)))
			return r;
	return -1;
}

static int pid_id(up_term t)
{
	up_pid pid;
	if (up_get_pid(t, &pid) != 0)
		return -1;
	for (int i = 0; i <= MAXA; i++)
		if (W.pid[i] == pid)
			return i;
	return -1;
}

static int elem_int(up_term t, size_t i)
{
	up_term e;
	int64_t v;
	if (up_tuple_elem(t, i, &e) != 0 || up_get_int(e, &v) != 0)
		return -1;
	return (int)v;
}

static up_term elem(up_term t, size_t i)
{
	up_term e = 0;
	up_tuple_elem(t, i, &e);
	return e;
}

/* ----------------------------------------------------------- actors */

static int is_cmd(const struct up_msg *m, void *arg)
{
	(void)arg;
	return m->kind == UP_MSG_WORD && TAG_OF(m->word) == TAG_CMD;
}

static void decode(const struct up_msg *m, const up_term *mons, int nmons, struct res *o)
{
	o->mb = (int)m->mailbox;
	o->kind = K_OTHER;
	if (m->kind == UP_MSG_WORD) {
		if (TAG_OF(m->word) == TAG_DATA) {
			o->kind = K_DATA;
			o->from = (int)((m->word >> 32) & 0xff);
			o->val = (uint32_t)m->word;
		}
		return;
	}
	up_term t = m->term, tag = elem(t, 0);
	long n = up_tuple_arity(t);
	if (n == 3 && tag == A_DATA) {
		o->kind = K_DATA;
		o->from = elem_int(t, 1);
		o->val = (uint32_t)elem_int(t, 2);
	} else if (n == 3 && tag == A_EXIT) {
		o->kind = K_EXIT;
		o->from = pid_id(elem(t, 1));
		o->val = (uint32_t)reason_code(elem(t, 2));
	} else if (n == 5 && tag == A_DOWN) {
		o->kind = K_DOWN;
		o->slot = -1;
		for (int k = 0; k < nmons; k++)
			if (up_equal(elem(t, 1), mons[k]))
				o->slot = k;
		o->from = pid_id(elem(t, 3));
		o->val = (uint32_t)reason_code(elem(t, 4));
	}
}

static void actor(void *arg)
{
	const int id = (int)(intptr_t)arg;
	up_term mons[MAXMON];
	int nmons = 0;

	for (;;) {
		struct up_msg m;
		if (up_recv_match(is_cmd, NULL, &m, UP_INFINITY, 0) != 0)
			FAIL("actor %d: receive of a command failed", id);
		const struct cmd c = W.cmd[id];
		struct res *o = &W.res[id];
		memset(o, 0, sizeof(*o));
		up_pid to = c.b >= 0 ? W.pid[c.b] : 0;
		switch (c.op) {
		case OP_SPAWN_LINK: {
			struct up_spawn_opts so;
			memset(&so, 0, sizeof so);
			so.flags = UP_SPAWN_LINK | UP_SPAWN_MONITOR | compact_bit(c.arg);
			so.mailboxes = 2;
			up_pid p = up_spawn_opt(actor, (void *)(intptr_t)c.arg, &so);
			o->rc = p;
			if (p > 0) {
				W.pid[c.arg] = p;
				mons[nmons++] = so.monitor_ref;
			}
			break;
		}
		case OP_SEND_WORD:
			o->rc = up_send_word_to(to, (unsigned)c.arg,
						WORD(TAG_DATA, (uint64_t)id << 32 | (uint32_t)c.arg2));
			break;
		case OP_SEND_TERM:
			o->rc = up_send_to(to, (unsigned)c.arg,
					   up_tuplev(3, A_DATA, up_int(id), up_int(c.arg2)));
			break;
		case OP_SEND_NAME:
			o->rc = up_send_name(NAMES[c.arg], up_tuplev(3, A_DATA, up_int(id), up_int(c.arg2)));
			break;
		case OP_RECV: {
			int64_t tmo = c.arg2 ? SHORT_NS : 0;
			int r = c.arg == 0 ? up_recv(&m, tmo) : up_recv_from((unsigned)c.arg - 1, &m, tmo);
			o->rc = r;
			if (r == 0) {
				decode(&m, mons, nmons, o);
				up_msg_free(&m);
			}
			break;
		}
		case OP_LINK:
			o->rc = up_link(to);
			break;
		case OP_UNLINK:
			o->rc = up_unlink(to);
			break;
		case OP_MONITOR: {
			up_term ref = up_monitor(to);
			o->rc = up_term_error(ref);
			if (!up_is_bad(ref))
				mons[nmons++] = ref;
			break;
		}
		case OP_DEMONITOR:
			o->rc = up_demonitor(mons[c.arg], c.arg2 ? UP_DEMONITOR_FLUSH : 0);
			break;
		case OP_EXIT:
			o->rc = up_exit(to, reason_term(c.arg));
			break;
		case OP_TRAP:
			o->rc = up_trap_exit(c.arg);
			break;
		case OP_REGISTER:
			o->rc = up_register(NAMES[c.arg], to);
			break;
		case OP_UNREGISTER:
			o->rc = up_unregister(NAMES[c.arg]);
			break;
		case OP_WHEREIS:
			o->rc = up_whereis(NAMES[c.arg]);
			break;
		case OP_ALIVE:
			o->rc = up_alive(to);
			break;
		case OP_RETURN:
			return;
		default:
			FAIL("actor %d: unknown command %d", id, c.op);
		}
		if (up_send_word(W.pid[CTL], WORD(TAG_REPLY, id)) != 0)
			FAIL("actor %d: reply failed", id);
	}
}

/* One per scheduler: answers the controller's pings once whatever its
 * scheduler was doing (a reap) is over. */
static void helper(void *arg)
{
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, UP_INFINITY) != 0 || m.kind != UP_MSG_WORD)
			FAIL("helper: bad message");
		if (TAG_OF(m.word) == TAG_STOP)
			return;
		up_send_word(W.pid[CTL], WORD(TAG_SYNC, (uintptr_t)arg));
	}
}

/* ------------------------------------------------------------ model */

struct exp {
	uint8_t kind;
	int8_t origin, from, slot;
	uint32_t val;        /* data: seq; EXIT/DOWN: reason */
};

enum { MON_ACTIVE, MON_FIRED, MON_TAKEN, MON_OFF };

struct mactor {
	int alive, sched, trap, reason, seen_dead;
	uint32_t links;      /* bit per id */
	struct {
		int target, state;
	} mon[MAXMON];
	int nmon;
	struct exp q[2][MAXQ];
	int nq[2];
};

struct model {
	struct mactor a[MAXA];
	int nids, nlive;
	int name_of[NNAMES];          /* id, or -1 */
	uint32_t seq;
	int dying[MAXA], ndying;
};

static struct model M;

static void enqueue(int to, int mb, struct exp e)
{
	struct mactor *a = &M.a[to];
	if (a->nq[mb] == MAXQ)
		FAIL("model queue full");
	a->q[mb][a->nq[mb]++] = e;
}

static int name_holder(int x)
{
	for (int n = 0; n < NNAMES; n++)
		if (M.name_of[n] == x)
			return n;
	return -1;
}

/* x dies with observable reason code (never R_KILL), and what follows. */
static void die(int x, int code)
{
	struct mactor *a = &M.a[x];
	if (!a->alive)
		return;
	a->alive = 0;
	a->reason = code;
	M.nlive--;
	M.dying[M.ndying++] = x;
	int n = name_holder(x);
	if (n >= 0)
		M.name_of[n] = -1;
	a->nq[0] = a->nq[1] = 0;
	for (int k = 0; k < a->nmon; k++)
		a->mon[k].state = MON_OFF;
	/* Links first, then monitors (the signals of one sender, in order). */
	uint32_t links = a->links;
	a->links = 0;
	for (int y = 0; y < MAXA; y++) {
		if (!(links & (1u << y)))
			continue;
		M.a[y].links &= ~(1u << x);
		if (!M.a[y].alive)
			continue;
		if (M.a[y].trap)
			enqueue(y, 0, (struct exp){ K_EXIT, (int8_t)x, (int8_t)x, 0, (uint32_t)code });
		else if (code != R_NORMAL)
			die(y, code);
	}
	for (int w = 0; w < M.nids; w++) {
		struct mactor *b = &M.a[w];
		for (int k = 0; k < b->nmon; k++) {
			if (b->mon[k].target != x || b->mon[k].state != MON_ACTIVE)
				continue;
			b->mon[k].state = MON_FIRED;
			if (b->alive)
				enqueue(w, 0, (struct exp){ K_DOWN, (int8_t)x, (int8_t)x, (int8_t)k,
							    (uint32_t)code });
		}
	}
}

/* An exit signal from `from` (an id or CTL) to live b. */
static void exit_signal(int from, int b, int r)
{
	if (r == R_KILL)
		die(b, R_KILLED);
	else if (M.a[b].trap)
		enqueue(b, 0, (struct exp){ K_EXIT, (int8_t)from, (int8_t)from, 0, (uint32_t)r });
	else if (r != R_NORMAL)
		die(b, r);
}

/* The entry of q a received message r may be: the first of its origin,
 * or a DOWN with only DOWNs of its origin before it.  -1: none. */
static int q_match(const struct exp *q, int n, const struct res *r)
{
	for (int i = 0; i < n; i++) {
		const struct exp *e = &q[i];
		if (e->kind != r->kind || e->from != r->from || e->val != r->val ||
		    (e->kind == K_DOWN && e->slot != r->slot))
			continue;
		int blocked = 0;
		for (int j = 0; j < i && !blocked; j++)
			blocked = q[j].origin == e->origin &&
				  !(e->kind == K_DOWN && q[j].kind == K_DOWN);
		if (!blocked)
			return i;
	}
	return -1;
}

static void q_remove(struct mactor *a, int mb, int i)
{
	memmove(&a->q[mb][i], &a->q[mb][i + 1], (size_t)(a->nq[mb] - i - 1) * sizeof(struct exp));
	a->nq[mb]--;
}

/* ------------------------------------------------------- controller */

struct prog {
	const uint8_t *d;
	size_t n, pos;
};

static unsigned next(struct prog *p)
{
	return p->pos < p->n ? p->d[p->pos++] : 0;
}

struct wait_for {
	uint64_t word;   /* a word message, or 0 */
	up_pid down;     /* a DOWN of this pid, or 0; -1: any DOWN */
};

static int is_down(const struct up_msg *m, up_pid *pid, int *reason)
{
	if (m->kind != UP_MSG_TERM || up_tuple_arity(m->term) != 5 || elem(m->term, 0) != A_DOWN)
		return 0;
	if (pid && up_get_pid(elem(m->term, 3), pid) != 0)
		return 0;
	if (reason)
		*reason = reason_code(elem(m->term, 4));
	return 1;
}

static int match_wait(const struct up_msg *m, void *arg)
{
	const struct wait_for *w = arg;
	up_pid pid;
	if (w->word && m->kind == UP_MSG_WORD && m->word == w->word)
		return 1;
	return w->down && is_down(m, &pid, NULL) && (w->down < 0 || pid == w->down);
}

/* The controller saw a DOWN: the model must have x dead, of that reason. */
static void saw_down(const struct up_msg *m)
{
	up_pid pid = 0;
	int reason = -1;
	is_down(m, &pid, &reason);
	int x = -1;
	for (int i = 0; i < M.nids; i++)
		if (W.pid[i] == pid)
			x = i;
	if (x < 0)
		FAIL("DOWN of an unknown pid %lld", (long long)pid);
	if (M.a[x].alive)
		FAIL("actor %d died (reason %d), the model has it alive", x, reason);
	if (M.a[x].seen_dead)
		FAIL("actor %d: a second DOWN", x);
	if (reason != M.a[x].reason)
		FAIL("actor %d died of reason %d, the model says %d", x, reason, M.a[x].reason);
	M.a[x].seen_dead = 1;
}

static void no_stray_down(void)
{
	struct wait_for w = { 0, -1 };
	struct up_msg m;
	if (up_recv_match(match_wait, &w, &m, 0, 0) == 0)
		saw_down(&m); /* fails: every expected DOWN was taken */
}

/* Wait for the DOWN of every actor the step killed, then for every
 * scheduler to be past the reaps. */
static void settle(void)
{
	if (!M.ndying)
		return;
	for (int i = 0; i < M.ndying; i++) {
		int x = M.dying[i];
		if (M.a[x].seen_dead)
			continue;
		struct wait_for w = { 0, W.pid[x] };
		struct up_msg m;
		if (up_recv_match(match_wait, &w, &m, WAIT_NS, 0) != 0)
			FAIL("actor %d should have died (reason %d); up_alive: %d", x, M.a[x].reason,
			     up_alive(W.pid[x]));
		saw_down(&m);
		up_msg_free(&m);
	}
	for (int s = 0; s < W.nsched; s++) {
		struct wait_for w = { WORD(TAG_SYNC, s), 0 };
		struct up_msg m;
		CHECK(up_send_word(W.helper[s], WORD(TAG_CMD, 0)) == 0);
		if (up_recv_match(match_wait, &w, &m, WAIT_NS, 0) != 0)
			FAIL("scheduler %d does not answer", s);
	}
	M.ndying = 0;
}

/* Run command c on actor a.  ends: the command ends a (no reply may come).
 * Returns 1 with the reply in W.res[a], 0 if a died instead. */
static int command(int a, struct cmd c, int ends)
{
	struct wait_for w = { WORD(TAG_REPLY, a), W.pid[a] };
	struct up_msg m;
	W.cmd[a] = c;
	CHECK(up_send_word(W.pid[a], WORD(TAG_CMD, 0)) == 0);
	if (up_recv_match(match_wait, &w, &m, WAIT_NS, 0) != 0)
		FAIL("actor %d does not answer op %d", a, c.op);
	if (m.kind == UP_MSG_WORD) {
		if (ends)
			FAIL("actor %d returned from op %d, which should end it", a, c.op);
		return 1; /* (a may still die of this step, after replying) */
	}
	saw_down(&m);
	up_msg_free(&m);
	return 0;
}

static void expect_rc(int a, int op, int64_t want)
{
	if (W.res[a].rc != want)
		FAIL("actor %d op %d: returned %lld, the model says %lld", a, op,
		     (long long)W.res[a].rc, (long long)want);
}

static int spawn_actor(int sched)
{
	struct up_spawn_opts so;
	memset(&so, 0, sizeof so);
	int x = M.nids;
	so.flags = UP_SPAWN_MONITOR | UP_SPAWN_SCHEDULER | compact_bit(x);
	so.scheduler = sched;
	so.mailboxes = 2;
	up_pid p = up_spawn_opt(actor, (void *)(intptr_t)x, &so);
	CHECK(p > 0);
	W.pid[x] = p;
	M.a[x] = (struct mactor){ .alive = 1, .sched = sched };
	M.nids++;
	M.nlive++;
	return x;
}

/* A receive by a (mode 0: up_recv, 1/2: mailbox 0/1), checked. */
static void do_recv(int a, int mode, int slow)
{
	struct mactor *A = &M.a[a];
	int mb = mode ? mode - 1 : A->nq[1] ? 1 : 0;
	int expect = A->nq[mb] > 0;
	if (!command(a, (struct cmd){ OP_RECV, -1, mode, slow }, 0))
		FAIL("actor %d died in a receive", a);
	struct res *r = &W.res[a];
	if (!expect) {
		if (r->rc != -ETIMEDOUT)
			FAIL("actor %d: receive got kind %d from %d val %u (rc %lld); the model has nothing",
			     a, r->kind, r->from, r->val, (long long)r->rc);
		return;
	}
	if (r->rc != 0)
		FAIL("actor %d: receive rc %lld; the model has %d messages in mailbox %d", a,
		     (long long)r->rc, A->nq[mb], mb);
	if (r->mb != mb)
		FAIL("actor %d: received from mailbox %d, the model says %d", a, r->mb, mb);
	int i = q_match(A->q[mb], A->nq[mb], r);
	if (i < 0)
		FAIL("actor %d: received kind %d from %d val %u slot %d from mailbox %d: not "
		     "expected (lost order, duplicate or invented)",
		     a, r->kind, r->from, r->val, r->slot, mb);
	if (r->kind == K_DOWN)
		A->mon[r->slot].state = MON_TAKEN;
	q_remove(A, mb, i);
}

static int pick_live(struct prog *p)
{
	int live[MAXA], n = 0;
	for (int i = 0; i < M.nids; i++)
		if (M.a[i].alive)
			live[n++] = i;
	return n ? live[next(p) % (unsigned)n] : -1;
}

static void step(struct prog *p)
{
	unsigned op = next(p) % NOP;
	int a = pick_live(p);
	if (a < 0)
		op = OP_SPAWN;
	int b = M.nids ? (int)(next(p) % (unsigned)M.nids) : 0;
	unsigned x = next(p);
	struct mactor *A = a >= 0 ? &M.a[a] : NULL;

	if (trace)
		fprintf(stderr, "step %d: op %u actor %d b %d x %u (%d ids, %d live)\n", cur_step, op,
			a, b, x, M.nids, M.nlive);
	switch (op) {
	case OP_SPAWN:
		if (M.nids < MAXA && M.nlive < MAXLIVE)
			spawn_actor((int)(x % (unsigned)W.nsched));
		break;
	case OP_SPAWN_LINK: {
		if (M.nids == MAXA || M.nlive == MAXLIVE || A->nmon == MAXMON)
			break;
		int c = M.nids;
		if (!command(a, (struct cmd){ OP_SPAWN_LINK, -1, c, 0 }, 0))
			FAIL("actor %d died spawning", a);
		CHECK(W.res[a].rc > 0 && W.pid[c] == W.res[a].rc);
		M.a[c] = (struct mactor){ .alive = 1, .sched = A->sched };
		M.nids++;
		M.nlive++;
		A->links |= 1u << c;
		M.a[c].links |= 1u << a;
		A->mon[A->nmon].target = c;
		A->mon[A->nmon++].state = MON_ACTIVE;
		CHECK(!up_is_bad(up_monitor(W.pid[c])));
		break;
	}
	case OP_SEND_WORD:
	case OP_SEND_TERM:
	case OP_SEND_NAME: {
		int mb = (int)(x & 1);
		int to = b;
		if (op == OP_SEND_NAME) {
			mb = 0;
			to = M.name_of[x % NNAMES];
		}
		uint32_t seq = ++M.seq;
		int ok = to >= 0 && M.a[to].alive;
		if (ok && M.a[to].nq[mb] == MAXQ)
			break;
		struct cmd c = { (int)op, op == OP_SEND_NAME ? -1 : b,
				 op == OP_SEND_NAME ? (int)(x % NNAMES) : mb, (int)seq };
		if (!command(a, c, 0))
			FAIL("actor %d died sending", a);
		expect_rc(a, (int)op, ok ? 0 : -ESRCH);
		if (ok)
			enqueue(to, mb, (struct exp){ K_DATA, (int8_t)a, (int8_t)a, 0, seq });
		break;
	}
	case OP_RECV:
		do_recv(a, (int)(x % 3), (int)(x >> 7));
		break;
	case OP_LINK: {
		int ends = b != a && !M.a[b].alive && !A->trap;
		/* Predict first: a dead target kills a non-trapping caller. */
		if (b != a && M.a[b].alive) {
			A->links |= 1u << b;
			M.a[b].links |= 1u << a;
		} else if (b != a && A->trap) {
			enqueue(a, 0, (struct exp){ K_EXIT, (int8_t)a, (int8_t)b, 0, R_NOPROC });
		} else if (ends) {
			die(a, R_NOPROC);
		}
		if (command(a, (struct cmd){ OP_LINK, b, 0, 0 }, ends))
			expect_rc(a, (int)op, b == a ? -EINVAL : 0);
		break;
	}
	case OP_UNLINK:
		if (b != a) {
			A->links &= ~(1u << b);
			M.a[b].links &= ~(1u << a);
		}
		command(a, (struct cmd){ OP_UNLINK, b, 0, 0 }, 0);
		expect_rc(a, (int)op, b == a ? -EINVAL : 0);
		break;
	case OP_MONITOR: {
		if (A->nmon == MAXMON)
			break;
		int k = A->nmon++;
		A->mon[k].target = b;
		if (M.a[b].alive) {
			A->mon[k].state = MON_ACTIVE;
		} else {
			A->mon[k].state = MON_FIRED;
			enqueue(a, 0, (struct exp){ K_DOWN, (int8_t)a, (int8_t)b, (int8_t)k, R_NOPROC });
		}
		command(a, (struct cmd){ OP_MONITOR, b, 0, 0 }, 0);
		expect_rc(a, (int)op, 0);
		break;
	}
	case OP_DEMONITOR: {
		if (!A->nmon)
			break;
		int k = (int)(x % (unsigned)A->nmon), flush = (int)(x >> 7);
		int st = A->mon[k].state;
		if (st == MON_ACTIVE) {
			A->mon[k].state = MON_OFF; /* will never fire */
		} else if (st == MON_FIRED && flush) {
			/* Its DOWN, not yet received, is removed. */
			A->mon[k].state = MON_TAKEN;
			for (int i = 0; i < A->nq[0]; i++)
				if (A->q[0][i].kind == K_DOWN && A->q[0][i].slot == k) {
					q_remove(A, 0, i);
					break;
				}
		}
		command(a, (struct cmd){ OP_DEMONITOR, -1, k, flush }, 0);
		expect_rc(a, (int)op, st == MON_ACTIVE);
		break;
	}
	case OP_EXIT: {
		int r = (int)(x % NREASON);
		int self = b == a;
		int ok = M.a[b].alive;
		if (self)
			die(a, r == R_KILL ? R_KILLED : r);
		else if (ok)
			exit_signal(a, b, r);
		if (command(a, (struct cmd){ OP_EXIT, b, r, 0 }, self))
			expect_rc(a, (int)op, ok ? 0 : -ESRCH);
		break;
	}
	case OP_CTL_EXIT: {
		int r = (int)(x % NREASON);
		int ok = M.a[b].alive;
		if (ok)
			exit_signal(CTL, b, r);
		int rc = up_exit(W.pid[b], reason_term(r));
		if (rc != (ok ? 0 : -ESRCH))
			FAIL("controller: up_exit(%d, %d) returned %d", b, r, rc);
		break;
	}
	case OP_TRAP: {
		int old = A->trap;
		A->trap = (int)(x & 1);
		command(a, (struct cmd){ OP_TRAP, -1, (int)(x & 1), 0 }, 0);
		expect_rc(a, (int)op, old);
		break;
	}
	case OP_REGISTER: {
		int n = (int)(x % NNAMES), want;
		if (!M.a[b].alive)
			want = -ESRCH;
		else if (M.name_of[n] >= 0 || name_holder(b) >= 0)
			want = -EEXIST;
		else
			want = 0, M.name_of[n] = b;
		command(a, (struct cmd){ OP_REGISTER, b, n, 0 }, 0);
		expect_rc(a, (int)op, want);
		break;
	}
	case OP_UNREGISTER: {
		int n = (int)(x % NNAMES);
		int want = M.name_of[n] >= 0 ? 0 : -ESRCH;
		M.name_of[n] = -1;
		command(a, (struct cmd){ OP_UNREGISTER, -1, n, 0 }, 0);
		expect_rc(a, (int)op, want);
		break;
	}
	case OP_WHEREIS: {
		int n = (int)(x % NNAMES);
		command(a, (struct cmd){ OP_WHEREIS, -1, n, 0 }, 0);
		expect_rc(a, (int)op, M.name_of[n] >= 0 ? W.pid[M.name_of[n]] : -ESRCH);
		break;
	}
	case OP_ALIVE:
		command(a, (struct cmd){ OP_ALIVE, b, 0, 0 }, 0);
		expect_rc(a, (int)op, M.a[b].alive);
		break;
	case OP_RETURN:
		die(a, R_NORMAL);
		command(a, (struct cmd){ OP_RETURN, -1, 0, 0 }, 1);
		break;
	}
	settle();
}

static void controller(void *arg)
{
	struct prog *p = arg;
	W.pid[CTL] = up_self();
	for (int s = 0; s < W.nsched; s++) {
		struct up_spawn_opts so;
		memset(&so, 0, sizeof so);
		so.flags = UP_SPAWN_SCHEDULER;
		so.scheduler = s;
		W.helper[s] = up_spawn_opt(helper, (void *)(intptr_t)s, &so);
		CHECK(W.helper[s] > 0);
	}
	A_DATA = up_atom("data");
	A_EXIT = up_atom("EXIT");
	A_DOWN = up_atom("DOWN");
	A_FOO = up_atom("foo");
	for (int n = 0; n < NNAMES; n++) {
		char name[16];
		snprintf(name, sizeof name, "fuzz_name%d", n);
		NAMES[n] = up_atom(name);
		M.name_of[n] = -1;
	}
	while (p->pos < p->n) {
		no_stray_down();
		step(p);
		cur_step++;
	}
	/* The end: every live actor takes what the model still has for it
	 * (then nothing more), and returns. */
	no_stray_down();
	for (int a = 0; a < M.nids; a++) {
		while (M.a[a].alive && (M.a[a].nq[0] || M.a[a].nq[1]))
			do_recv(a, 0, 0);
		if (M.a[a].alive)
			do_recv(a, 0, 0);
	}
	for (int a = 0; a < M.nids; a++) {
		if (!M.a[a].alive)
			continue;
		die(a, R_NORMAL);
		command(a, (struct cmd){ OP_RETURN, -1, 0, 0 }, 1);
		settle();
	}
	no_stray_down();
	for (int a = 0; a < M.nids; a++)
		if (!M.a[a].seen_dead)
			FAIL("actor %d was never seen dead", a);
	for (int s = 0; s < W.nsched; s++)
		CHECK(up_send_word(W.helper[s], WORD(TAG_STOP, 0)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	memset(&W, 0, sizeof W);
	memset(&M, 0, sizeof M);
	cur_step = 0;
	trace = getenv("UP_FUZZ_TRACE") != NULL;
	W.nsched = (data[0] & 3) == 3 ? 2 : 1;
	struct prog p = { data, size, 1 };
	struct up_run_opts o;
	memset(&o, 0, sizeof o);
	o.schedulers = (unsigned)W.nsched;
	o.spin_us = UP_NO_SPIN;
	int rc = up_run(controller, &p, &o);
	if (rc != 0)
		FAIL("up_run returned %d", rc);
	return 0;
}
