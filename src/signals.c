/*
 * signals.c - exit signals, links, monitors, trap_exit, the name registry
 * and call/reply (see signals.h for how signals travel).
 *
 * OTP rules kept here: an exit signal `kill` cannot be trapped and ends
 * the receiver with `killed`; a trapping process receives other exit
 * signals as {'EXIT', From, Reason}; a non-trapping one ignores `normal`
 * and dies of any other reason; a dying process sends its reason to its
 * links (`kill` propagates as `killed`) and {'DOWN', Ref, process, Pid,
 * Reason} to its monitors; linking to or monitoring a dead process gives
 * `noproc`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"
#include "term.h"
#include "dist.h"

#define ATOM(i) ((up_term)(i) << 3)
#define A_EXIT ATOM(9)
#define A_DOWN ATOM(10)
#define A_PROCESS ATOM(11)
#define A_UNDEFINED ATOM(6)
#define A_GEN_CALL ATOM(18)

static inline struct up__proc *current(void)
{
	struct up__sched *s = up__self_sched;
	return s ? s->current : NULL;
}

/* ------------------------------------------------------ small terms */

/* Tuples and refs built on the C stack, only to be copied by a send. */
struct tup5 {
	uint64_t w[6];
};

static up_term stack_tuple(struct tup5 *t, size_t n, const up_term *e)
{
	t->w[0] = up__header(UP__B_TUPLE, n);
	memcpy(&t->w[1], e, n * 8);
	return up__mkbox(t->w);
}

static up_term stack_ref(uint64_t w[3], const uint32_t ids[3])
{
	w[0] = up__header(UP__B_REF, 2);
	w[2] = 0;
	memcpy(&w[1], ids, 12);
	return up__mkbox(w);
}

static int ref_ids(up_term ref, uint32_t ids[3])
{
	if (up_kind_of(ref) != UP_K_REF)
		return -EINVAL;
	memcpy(ids, &up__box(ref)[1], 12);
	return 0;
}

/* A copy of t in p's heap (reasons outlive the signal that brought them). */
static up_term keep(struct up__proc *p, up_term t)
{
	int64_t words = up__term_words(t, (uint64_t)1 << 40);
	if (words <= 0)
		return words < 0 ? UP_KILLED : t;
	/* Past heap_limit too: the reason is what its links must hear. */
	uint64_t *buf = up__heap_alloc_nolimit(p, (size_t)words * 8);
	return buf ? up__term_copy(t, buf) : UP_KILLED;
}

/* -------------------------------------------------- tables (own heap) */

static int grow(struct up__proc *p, void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
	return up__side_grow(p, arr, n, cap, elem);
}

void up__signal_free(struct up__proc *p)
{
	struct up__sig *g = &p->sig;
	if (g->links)
		up__side_free(p, g->links, g->caplinks * sizeof(up_pid));
	if (g->in)
		up__side_free(p, g->in, g->capin * sizeof(struct up__mon));
	if (g->out)
		up__side_free(p, g->out, g->capout * sizeof(struct up__mon));
	memset(g, 0, sizeof(*g));
}

static int link_find(struct up__sig *g, up_pid pid)
{
	for (uint32_t i = 0; i < g->nlinks; i++)
		if (g->links[i] == pid)
			return (int)i;
	return -1;
}

static int link_add(struct up__proc *p, up_pid pid)
{
	struct up__sig *g = &p->sig;
	if (link_find(g, pid) >= 0)
		return 0;
	if (grow(p, (void **)&g->links, g->nlinks, &g->caplinks, sizeof(up_pid)))
		return -ENOMEM;
	g->links[g->nlinks++] = pid;
	return 0;
}

static void link_del(struct up__sig *g, up_pid pid)
{
	int i = link_find(g, pid);
	if (i >= 0)
		g->links[i] = g->links[--g->nlinks];
}

static int mon_find(struct up__mon *m, uint32_t n, const uint32_t ids[3])
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(m[i].ref, ids, 12) == 0)
			return (int)i;
	return -1;
}

static int mon_add(struct up__proc *p, struct up__mon **arr, uint32_t *n, uint32_t *cap,
		   const uint32_t ids[3], up_pid other)
{
	if (grow(p, (void **)arr, *n, cap, sizeof(struct up__mon)))
		return -ENOMEM;
	memcpy((*arr)[*n].ref, ids, 12);
	(*arr)[*n].other = other;
	(*n)++;
	return 0;
}

static int mon_del(struct up__mon *arr, uint32_t *n, const uint32_t ids[3], up_pid *other)
{
	int i = mon_find(arr, *n, ids);
	if (i < 0)
		return 0;
	if (other)
		*other = arr[i].other;
	arr[i] = arr[--*n];
	return 1;
}

/* ------------------------------------------------------ sending signals */

static int send_exit(struct up__sched *s, up_pid to, up_term from, up_term reason)
{
	struct tup5 t;
	up_term e[3] = { A_EXIT, from, reason };
	return up__signal_send(s, to, UP__MSG_SIG_EXIT, stack_tuple(&t, 3, e));
}

static int send_down(struct up__sched *s, up_pid to, const uint32_t ids[3], up_pid who,
		     up_term reason)
{
	struct tup5 t;
	uint64_t rw[3];
	up_term e[5] = { A_DOWN, stack_ref(rw, ids), A_PROCESS, up_pid_term(who), reason };
	/* A signal that becomes the message, sent without charging anyone
	 * (this may run while another process is current, reaping the dead
	 * one). */
	return up__signal_send(s, to, UP__MSG_SIG_DOWN, stack_tuple(&t, 5, e));
}

static int send_mon(struct up__sched *s, up_pid to, unsigned kind, up_pid from,
		    const uint32_t ids[3])
{
	struct tup5 t;
	uint64_t rw[3];
	up_term e[2] = { up_pid_term(from), stack_ref(rw, ids) };
	return up__signal_send(s, to, kind, stack_tuple(&t, 2, e));
}

/* ------------------------------------------------------ acting on them */

/* The From of a signal term, and for MONITOR/DEMONITOR the ref ids. */
static up_pid sig_from(up_term t, uint32_t ids[3])
{
	up_pid pid = 0;
	if (up_kind_of(t) == UP_K_PID) {
		up_get_pid(t, &pid);
		return pid;
	}
	up_term f, r;
	if (up_tuple_elem(t, 0, &f) == 0 && up_tuple_elem(t, 1, &r) == 0 && ids) {
		up_get_pid(f, &pid);
		ref_ids(r, ids);
	}
	return pid;
}

int up__signal_handle(struct up__sched *s, struct up__proc *p, struct up__msg *m)
{
	struct up__sig *g = &p->sig;
	uint32_t ids[3] = { 0, 0, 0 };
	up_term t = m->word;

	switch (m->kind) {
	case UP__MSG_SIG_LINK_EXIT: {
		/* The partner died: the link is gone on both sides (OTP). */
		up_term from;
		up_pid fpid;
		if (up_tuple_elem(t, 1, &from) == 0 && up_get_pid(from, &fpid) == 0) {
			if (link_find(g, fpid) < 0)
				break; /* unlinked meanwhile: no signal (OTP) */
			link_del(g, fpid);
		}
	}
		/* fall through */
	case UP__MSG_SIG_EXIT: {
		up_term reason = UP_NORMAL;
		up_tuple_elem(t, 2, &reason);
		if (reason == UP_KILL) {
			up__proc_kill(s, p, UP_KILLED);
		} else if (g->trap_exit) {
			m->kind = UP__MSG_TERM;  /* the signal is the message */
			return 1;
		} else if (reason != UP_NORMAL) {
			up__proc_kill(s, p, keep(p, reason));
		}
		break;
	}
	case UP__MSG_SIG_LINK: {
		up_pid from = sig_from(t, NULL);
		if (link_add(p, from) != 0) {
			/* No memory to keep the link: p dies, and since its
			 * table will not name the linker, the linker is told
			 * here (else it would never hear of the death). */
			up__proc_kill(s, p, UP_KILLED);
			struct tup5 x;
			up_term e[3] = { A_EXIT, up_pid_term(p->pid), p->exit_reason };
			up__signal_send(s, from, UP__MSG_SIG_LINK_EXIT, stack_tuple(&x, 3, e));
		}
		break;
	}
	case UP__MSG_SIG_UNLINK:
		link_del(g, sig_from(t, NULL));
		break;
	case UP__MSG_SIG_MONITOR: {
		up_pid from = sig_from(t, ids);
		if (mon_add(p, &g->in, &g->nin, &g->capin, ids, from) != 0)
			send_down(s, from, ids, p->pid, UP_NOPROC);
		break;
	}
	case UP__MSG_SIG_DEMONITOR:
		sig_from(t, ids);
		mon_del(g->in, &g->nin, ids, NULL);
		break;
	case UP__MSG_SIG_DOWN: {
		/* {'DOWN', Ref, process, Pid, Reason}: the monitor is over; a
		 * message only if it was still ours (not demonitored meanwhile). */
		up_term ref;
		if (up_tuple_elem(t, 1, &ref) == 0 && ref_ids(ref, ids) == 0 &&
		    mon_del(g->out, &g->nout, ids, NULL)) {
			m->kind = UP__MSG_TERM;
			return 1;
		}
		break;
	}
	default:
		break;
	}
	up__msg_release(s, m);
	return 0;
}

void up__signal_exit(struct up__sched *s, struct up__proc *p, struct up__msg *pending)
{
	struct up__sig *g = &p->sig;
	up_term reason = p->exit_reason == UP_KILL ? UP_KILLED : p->exit_reason;
	up_term me = up_pid_term(p->pid);

	/* Signals that arrived before the inbox closed: in arrival order
	 * (pending is newest first), links and monitors still count. */
	struct up__msg *fifo = NULL;
	while (pending && pending != UP__INBOX_WAITING) {
		struct up__msg *n = pending->next;
		pending->next = fifo;
		fifo = pending;
		pending = n;
	}
	while (fifo) {
		struct up__msg *m = fifo;
		fifo = m->next;
		/* A signal that becomes a message (a DOWN, a trapped EXIT of a
		 * link) has nobody to read it now: free it too. */
		if (!up__msg_is_signal(m) || m->kind == UP__MSG_SIG_EXIT ||
		    up__signal_handle(s, p, m))
			up__msg_release(s, m);
	}
	if (__atomic_load_n(&p->named, __ATOMIC_SEQ_CST))
		up__registry_drop(p->pid);
	if (!up__rt_ready())
		return; /* tear-down after the last run: nobody to tell */
	for (uint32_t i = 0; i < g->nlinks; i++) {
		struct tup5 x;
		up_term e[3] = { A_EXIT, me, reason };
		up__signal_send(s, g->links[i], UP__MSG_SIG_LINK_EXIT, stack_tuple(&x, 3, e));
	}
	for (uint32_t i = 0; i < g->nin; i++)
		send_down(s, g->in[i].other, g->in[i].ref, p->pid, reason);
	for (uint32_t i = 0; i < g->nout; i++)
		send_mon(s, g->out[i].other, UP__MSG_SIG_DEMONITOR, p->pid, g->out[i].ref);
	g->nlinks = g->nin = g->nout = 0;
}

/* The spawner's side of UP_SPAWN_LINK / UP_SPAWN_MONITOR, and the child's,
 * before the child is published (so it can never die unseen).  On failure
 * both sides are as before: the child's tables freed, the parent's entries
 * for the never-published child removed. */
int up__signal_spawn(struct up__proc *parent, struct up__proc *child, unsigned flags,
		     up_term *ref_out)
{
	uint32_t ids[3] = { 0, 0, 0 };
	int r = 0;

	if ((flags & UP_SPAWN_LINK) &&
	    (link_add(parent, child->pid) || link_add(child, parent->pid))) {
		r = -ENOMEM;
		goto undo;
	}
	if (flags & UP_SPAWN_MONITOR) {
		up_term ref = up_make_ref();
		if (up__is_bad(ref)) {
			r = up_term_error(ref);
			goto undo;
		}
		ref_ids(ref, ids);
		if (mon_add(parent, &parent->sig.out, &parent->sig.nout, &parent->sig.capout, ids,
			    child->pid) ||
		    mon_add(child, &child->sig.in, &child->sig.nin, &child->sig.capin, ids,
			    parent->pid)) {
			r = -ENOMEM;
			goto undo;
		}
		*ref_out = ref;
	}
	return 0;
undo:
	link_del(&parent->sig, child->pid);
	mon_del(parent->sig.out, &parent->sig.nout, ids, NULL);
	up__signal_free(child);
	return r;
}

/* ------------------------------------------------------------ the API */

int up_exit(up_pid pid, up_term reason)
{
	struct up__proc *me = current();
	if (me && pid == me->pid) {
		if (up__is_bad(reason) || !up__term_plausible(reason))
			return -EINVAL;
		me->exit_reason = reason;
		up__sched_leave_dead(me);
	}
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self)) /* a guest from outside the runtime? */
		return -ESRCH;
	int r = -EINVAL;
	if (up__pid_addressable(pid) && !up__is_bad(reason))
		r = send_exit(self, pid, me ? up_pid_term(me->pid) : A_UNDEFINED, reason);
	up__rt_leave(self);
	return r;
}

int up_trap_exit(int on)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	int old = p->sig.trap_exit;
	p->sig.trap_exit = on != 0;
	return old;
}

int up_link(up_pid pid)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (!up__pid_addressable(pid) || pid == p->pid)
		return -EINVAL;
	struct up__sig *g = &p->sig;
	if (link_find(g, pid) >= 0)
		return 0;
	if (link_add(p, pid) != 0)
		return -ENOMEM;
	struct up__sched *s = up__self_sched;
	int r = up__signal_send(s, pid, UP__MSG_SIG_LINK, up_pid_term(p->pid));
	if (r == -ESRCH) {
		link_del(g, pid);
		if (!g->trap_exit) {
			p->exit_reason = UP_NOPROC;
			up__sched_leave_dead(p);
		}
		return send_exit(s, p->pid, up_pid_term(pid), UP_NOPROC);
	}
	if (r != 0)
		link_del(g, pid);
	return r;
}

int up_unlink(up_pid pid)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (!up__pid_addressable(pid) || pid == p->pid)
		return -EINVAL;
	if (link_find(&p->sig, pid) < 0)
		return 0;
	link_del(&p->sig, pid);
	up__signal_send(up__self_sched, pid, UP__MSG_SIG_UNLINK, up_pid_term(p->pid));
	return 0;
}

up_term up_monitor(up_pid pid)
{
	struct up__proc *p = current();
	if (!p)
		return up__mkbad(-EPERM);
	if (!up__pid_addressable(pid))
		return up__mkbad(-EINVAL);
	up_term ref = up_make_ref();
	uint32_t ids[3];
	if (up__is_bad(ref) || ref_ids(ref, ids) != 0)
		return up__is_bad(ref) ? ref : up__mkbad(-EINVAL);
	struct up__sig *g = &p->sig;
	if (mon_add(p, &g->out, &g->nout, &g->capout, ids, pid) != 0)
		return up__mkbad(-ENOMEM);
	struct up__sched *s = up__self_sched;
	int r = send_mon(s, pid, UP__MSG_SIG_MONITOR, p->pid, ids);
	if (r == -ESRCH) {
		/* Dead: the DOWN (noproc) ends the monitor when it arrives. */
		send_down(s, p->pid, ids, pid, UP_NOPROC);
	} else if (r != 0) {
		mon_del(g->out, &g->nout, ids, NULL);
		return up__mkbad(r);
	}
	return ref;
}

/* Stop monitor ids; flush its DOWN (only after the mark if after_mark). */
static int demonitor(struct up__proc *p, up_term ref, const uint32_t ids[3], int flush,
		     unsigned recv_flags);

static int is_down_of(const struct up_msg *m, void *arg)
{
	up_term tag, ref;
	return m->kind == UP_MSG_TERM && up_tuple_arity(m->term) == 5 &&
	       up_tuple_elem(m->term, 0, &tag) == 0 && tag == A_DOWN &&
	       up_tuple_elem(m->term, 1, &ref) == 0 && up_equal(ref, *(up_term *)arg);
}

static int demonitor(struct up__proc *p, up_term ref, const uint32_t ids[3], int flush,
		     unsigned recv_flags)
{
	up_pid target;
	int active = mon_del(p->sig.out, &p->sig.nout, ids, &target);
	if (active)
		send_mon(up__self_sched, target, UP__MSG_SIG_DEMONITOR, p->pid, ids);
	if (flush) {
		struct up_msg m;
		while (up_recv_match(is_down_of, &ref, &m, 0, recv_flags) == 0)
			up_msg_free(&m);
	}
	return active;
}

int up_demonitor(up_term ref, unsigned flags)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	uint32_t ids[3];
	if (ref_ids(ref, ids) != 0 || (flags & ~UP_DEMONITOR_FLUSH))
		return -EINVAL;
	return demonitor(p, ref, ids, flags & UP_DEMONITOR_FLUSH, 0);
}

/* ------------------------------------------------------------ registry */

/* name (atom) -> pid, one table for the runtime, under a mutex: names are
 * registered and looked up far less often than messages are sent. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { up_term name; up_pid pid; } *reg;
static size_t nreg, capreg;

static long reg_find_name(up_term name)
{
	for (size_t i = 0; i < nreg; i++)
		if (reg[i].name == name)
			return (long)i;
	return -1;
}

static int alive(up_pid pid, struct up__proc **pp)
{
	struct up__proc *p = up__pid_proc(pid);
	if (pp)
		*pp = p;
	return p && __atomic_load_n(&p->inbox[0].tag, __ATOMIC_SEQ_CST) == (uint64_t)pid;
}

int up_register(up_term name, up_pid pid)
{
	struct up__proc *p;
	if (!up__rt_ready())
		return -ESRCH;
	if (up_kind_of(name) != UP_K_ATOM || !up__pid_proc(pid))
		return -EINVAL;
	int r = 0;
	pthread_mutex_lock(&reg_lock);
	p = up__pid_proc(pid);
	if (!p) {
		pthread_mutex_unlock(&reg_lock);
		return -EINVAL;
	}
	/* named before the liveness check, the reaper clears the tag before
	 * it reads named (both seq_cst): one of us sees the other. */
	uint8_t was = __atomic_exchange_n(&p->named, 1, __ATOMIC_SEQ_CST);
	if (!alive(pid, NULL)) {
		r = -ESRCH;
	} else if (reg_find_name(name) >= 0) {
		r = -EEXIST;
	} else {
		for (size_t i = 0; i < nreg; i++)
			if (reg[i].pid == pid)
				r = -EEXIST;
		if (!r && nreg == capreg) {
			size_t cap = capreg ? capreg * 2 : 64;
			void *n = realloc(reg, cap * sizeof(*reg));
			if (!n)
				r = -ENOMEM;
			else
				reg = n, capreg = cap;
		}
		if (!r) {
			reg[nreg].name = name;
			reg[nreg++].pid = pid;
		}
	}
	if (r && !was)
		__atomic_store_n(&p->named, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&reg_lock);
	return r;
}

int up_unregister(up_term name)
{
	pthread_mutex_lock(&reg_lock);
	long i = reg_find_name(name);
	if (i >= 0)
		reg[i] = reg[--nreg];
	pthread_mutex_unlock(&reg_lock);
	return i >= 0 ? 0 : -ESRCH;
}

void up__registry_drop(up_pid pid)
{
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nreg; i++)
		if (reg[i].pid == pid) {
			reg[i] = reg[--nreg];
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

up_term up__registry_name(up_pid pid)
{
	up_term name = UP_NIL;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nreg; i++)
		if (reg[i].pid == pid) {
			name = reg[i].name;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	return name;
}

up_pid up_whereis(up_term name)
{
	if (!up__rt_ready())
		return -ESRCH;
	pthread_mutex_lock(&reg_lock);
	long i = reg_find_name(name);
	up_pid pid = i >= 0 ? reg[i].pid : -ESRCH;
	pthread_mutex_unlock(&reg_lock);
	return pid > 0 && !alive(pid, NULL) ? -ESRCH : pid;
}

int up_send_name(up_term name, up_term t)
{
	up_pid pid = up_whereis(name);
	return pid < 0 ? (int)pid : up_send(pid, t);
}

/* Forget every name (end of a run). */
__attribute__((destructor)) static void registry_free(void)
{
	free(reg);
	reg = NULL;
	nreg = capreg = 0;
}

/* ---------------------------------------------------------- call/reply */

static int is_reply(const struct up_msg *m, void *arg)
{
	const up_term *ref = arg;
	up_term e;
	if (m->kind != UP_MSG_TERM)
		return 0;
	long n = up_tuple_arity(m->term);
	if (n == 2)
		return up_tuple_elem(m->term, 0, &e) == 0 && up_equal(e, *ref);
	return n == 5 && is_down_of(m, arg);
}

int up_call(up_pid server, up_term request, up_term *reply, int64_t timeout_ns)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (!reply || up__is_bad(request) || !up__pid_addressable(server) ||
	    (timeout_ns < 0 && timeout_ns != UP_INFINITY))
		return -EINVAL;
	/* Everything the call makes in the heap (its reference) is given back
	 * at the end; only the reply is kept. */
	long heap = up_heap_mark();
	if (heap < 0)
		return (int)heap;
	up_recv_mark();
	up_term ref = up_monitor(server);
	uint32_t ids[3];
	if (up__is_bad(ref)) {
		up_heap_reset(heap);
		return up_term_error(ref);
	}
	ref_ids(ref, ids);
	struct tup5 from_t, req_t;
	up_term from[2] = { up_pid_term(p->pid), ref };
	up_term req[3] = { A_GEN_CALL, stack_tuple(&from_t, 2, from), request };
	int r = up_send(server, stack_tuple(&req_t, 3, req));
	struct up_msg m;
	if (r == 0 || r == -ESRCH)
		r = up_recv_match(is_reply, &ref, &m, timeout_ns, UP_RECV_AFTER_MARK);
	/* The DOWN of this monitor can only be after the mark: O(1). */
	int down = r == 0 && up_tuple_arity(m.term) == 5;
	if (!down)
		demonitor(p, ref, ids, 1, UP_RECV_AFTER_MARK);
	up_heap_reset(heap);
	if (r != 0)
		return r;
	up_term v;
	up_tuple_elem(m.term, down ? 4 : 1, &v);
	*reply = keep(p, v);
	up_msg_free(&m);
	return down ? -ESRCH : 0;
}

int up_reply(up_term from, up_term reply)
{
	up_term pid_t, ref;
	up_pid pid;
	if (up_tuple_arity(from) != 2 || up_tuple_elem(from, 0, &pid_t) != 0 ||
	    up_get_pid(pid_t, &pid) != 0 || up_tuple_elem(from, 1, &ref) != 0 ||
	    (up_kind_of(ref) != UP_K_REF && up_kind_of(ref) != UP_K_LIST) || up__is_bad(reply))
		return -EINVAL;
	struct tup5 t;
	up_term e[2] = { ref, reply };
	return up_send(pid, stack_tuple(&t, 2, e));
}
