/*
 * dist_conn.c - one distribution connection: two uproc processes parked on
 * io_uring like any other I/O.
 *
 * The writer is the connection's face: everything toward the peer is a
 * message to it ({'$dist', Op, From, To, Payload} from the send and signal
 * hooks, {'$dist_in', Control} from its reader), so one process owns the
 * connection's state with no lock: the socket (it owns the fd), the links
 * between local and remote processes, the monitors local processes hold on
 * remote ones, and the proxies for monitors remote processes hold on local
 * ones (the writer monitors the local process itself and answers with
 * MONITOR_P_EXIT when its DOWN comes).  It batches frames (it drains its
 * mailbox before each send) and sends a tick when it has been silent for a
 * tick period.  An outgoing connection's writer first connects (epmd,
 * then the handshake); what is sent meanwhile waits in its mailbox.
 *
 * The reader receives frames ('p' pass-through, no atom cache), decodes
 * the control message and the payload in its own heap (reset after each
 * frame), delivers messages and exit signals itself, and forwards the
 * controls that change the writer's tables.  A malformed frame, an
 * oversized one, silence for four tick periods or a closed socket ends
 * the reader with a logged reason; the writer (trapping exits) then tells
 * every local process linked to or monitoring the peer: `noconnection`
 * (OTP), removes the node, sends nodedown, and ends.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"
#include "msg.h"
#include "scheduler.h"
#include "signals.h"
#include "term.h"

#define ATOM(i) ((up_term)(i) << 3)
#define A_EXIT ATOM(9)
#define A_DOWN ATOM(10)
#define A_PROCESS ATOM(11)
#define A_UNDEFINED ATOM(6)
#define EMPTY_ATOM ((up_term)0x7e) /* a placeholder (a special tag) for '' */

enum {
	DOP_LINK = 1, DOP_SEND = 2, DOP_EXIT = 3, DOP_UNLINK = 4, DOP_REG_SEND = 6,
	DOP_EXIT2 = 8, DOP_SEND_TT = 12, DOP_EXIT_TT = 13, DOP_REG_SEND_TT = 16,
	DOP_EXIT2_TT = 18, DOP_MONITOR_P = 19, DOP_DEMONITOR_P = 20, DOP_MONITOR_P_EXIT = 21,
	DOP_SEND_SENDER = 22, DOP_SEND_SENDER_TT = 23,
};

struct link {
	up_pid local, remote;
};
struct omon { /* a local process monitors a remote one (or a name there) */
	up_pid local, target;
	uint32_t ref[3];
};
struct imon { /* a remote process monitors a local one: our proxy monitor */
	uint32_t lref[3];
	uint32_t rref[4];
	up_pid remote;
	up_term target; /* the local pid term or the name it monitored */
};

struct wr {
	int fd;
	up_term node;
	up_pid self, reader;
	uint8_t *out;
	size_t olen, ocap;
	int64_t last_send;
	struct link *links;
	struct omon *om;
	struct imon *im;
	uint32_t nl, capl, nom, capom, nim, capim;
	int dead; /* the socket failed */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Grow a table in the process heap (the old copy stays until the process
 * ends; growth is geometric, so at most as much again). */
static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 16;
	void *a = up_alloc(c * elem);
	if (!a)
		return -ENOMEM;
	if (n)
		memcpy(a, *arr, n * elem);
	*arr = a;
	*cap = c;
	return 0;
}

static void ref_words(up_term ref, uint32_t w[3])
{
	memcpy(w, &up__box(ref)[1], 12);
}

/* A ref term on the caller's stack from words (spare word: spare). */
static up_term stack_ref(uint64_t b[3], const uint32_t w[3], uint32_t spare)
{
	b[0] = up__header(UP__B_REF, 2);
	uint32_t *ids = (uint32_t *)&b[1];
	memcpy(ids, w, 12);
	ids[3] = spare;
	return up__mkbox(b);
}

static up_term stack_tuple(uint64_t *b, size_t n, const up_term *e)
{
	b[0] = up__header(UP__B_TUPLE, n);
	memcpy(&b[1], e, n * 8);
	return up__mkbox(b);
}

/* ------------------------------------------------------- encoding */

/* An element of a control tuple at *pos (without its own version byte:
 * the encoder writes 131 over the byte before, which is put back). */
static int enc_elem(uint8_t *b, size_t cap, size_t *pos, up_term t)
{
	if (t == EMPTY_ATOM) {
		if (*pos + 2 <= cap) {
			b[*pos] = 119; /* SMALL_ATOM_UTF8_EXT, length 0 */
			b[*pos + 1] = 0;
		}
		*pos += 2;
		return 0;
	}
	size_t at = *pos - 1;
	long k;
	if (at < cap) {
		uint8_t save = b[at];
		k = up_term_encode(t, b + at, cap - at);
		b[at] = save;
	} else {
		k = up_term_encode(t, NULL, 0);
	}
	if (k < 0)
		return (int)k;
	*pos += (size_t)k - 1;
	return 0;
}

/* A whole frame (length, 'p', control tuple, payload if msg) into b: the
 * bytes it needs (written only if they fit in cap), or -errno. */
static long enc_frame(uint8_t *b, size_t cap, size_t n, const up_term *ctl, const up_term *msg)
{
	uint8_t hdr[8] = { 0, 0, 0, 0, 'p', 131, 104, (uint8_t)n };
	if (cap >= 8)
		memcpy(b, hdr, 8);
	size_t pos = 8;
	for (size_t i = 0; i < n; i++) {
		int r = enc_elem(b, cap, &pos, ctl[i]);
		if (r)
			return r;
	}
	if (msg) {
		long k = up_term_encode(*msg, pos < cap ? b + pos : NULL, pos < cap ? cap - pos : 0);
		if (k < 0)
			return k;
		pos += (size_t)k;
	}
	if (pos <= cap) {
		uint32_t len = (uint32_t)(pos - 4);
		b[0] = (uint8_t)(len >> 24);
		b[1] = (uint8_t)(len >> 16);
		b[2] = (uint8_t)(len >> 8);
		b[3] = (uint8_t)len;
	}
	return (long)pos;
}

static int flush(struct wr *w)
{
	if (w->dead || w->olen == 0) {
		w->olen = 0;
		return w->dead ? -EPIPE : 0;
	}
	ssize_t r = up_io_send(w->fd, w->out, w->olen, 0, 4 * up__dist_cfg.tick_ns);
	w->olen = 0;
	if (r < 0) {
		w->dead = 1;
		up__dist_log("send to %s failed (%d)", up__dist_cfg.name, (int)r);
		return (int)r;
	}
	w->last_send = now_ns();
	return 0;
}

/* Queue a frame; frames go out at the next flush (or now, when full). */
static int put_frame(struct wr *w, size_t n, const up_term *ctl, const up_term *msg)
{
	long k = enc_frame(w->out + w->olen, w->ocap - w->olen, n, ctl, msg);
	if (k < 0)
		return (int)k;
	if ((size_t)k > up__dist_cfg.max_frame)
		return -EMSGSIZE;
	if ((size_t)k > w->ocap - w->olen) {
		flush(w);
		if ((size_t)k > w->ocap) {
			size_t cap = w->ocap;
			while (cap < (size_t)k)
				cap *= 2;
			uint8_t *o = up_alloc(cap);
			if (!o)
				return -ENOMEM;
			w->out = o;
			w->ocap = cap;
		}
		k = enc_frame(w->out, w->ocap, n, ctl, msg);
		if (k < 0)
			return (int)k;
	}
	w->olen += (size_t)k;
	if (w->olen >= 64 * 1024)
		flush(w);
	return 0;
}

/* ------------------------------------------------------- the tables */

static int link_find(struct wr *w, up_pid local, up_pid remote)
{
	for (uint32_t i = 0; i < w->nl; i++)
		if (w->links[i].local == local && w->links[i].remote == remote)
			return (int)i;
	return -1;
}

static void link_add(struct wr *w, up_pid local, up_pid remote)
{
	if (link_find(w, local, remote) < 0 &&
	    grow((void **)&w->links, w->nl, &w->capl, sizeof(*w->links)) == 0)
		w->links[w->nl++] = (struct link){ local, remote };
}

static int link_del(struct wr *w, up_pid local, up_pid remote)
{
	int i = link_find(w, local, remote);
	if (i >= 0)
		w->links[i] = w->links[--w->nl];
	return i >= 0;
}

static int om_find(struct wr *w, up_pid local, const uint32_t ref[3])
{
	for (uint32_t i = 0; i < w->nom; i++)
		if (w->om[i].local == local && memcmp(w->om[i].ref, ref, 12) == 0)
			return (int)i;
	return -1;
}

static int im_find_l(struct wr *w, const uint32_t lref[3])
{
	for (uint32_t i = 0; i < w->nim; i++)
		if (memcmp(w->im[i].lref, lref, 12) == 0)
			return (int)i;
	return -1;
}

static int im_find_r(struct wr *w, up_pid remote, const uint32_t rref[4])
{
	for (uint32_t i = 0; i < w->nim; i++)
		if (w->im[i].remote == remote && memcmp(w->im[i].rref, rref, 16) == 0)
			return (int)i;
	return -1;
}

/* The term a DOWN names for what a local process monitored. */
static up_term who(struct wr *w, up_pid target, uint64_t b[3])
{
	if (up__dist_pid_is_name(target)) {
		up_term e[2] = { (up_term)up__dist_pid_id(target) << 3, w->node };
		return stack_tuple(b, 2, e);
	}
	return up_pid_term(target);
}

static void tell_exit(up_pid local, up_pid remote, unsigned kind, up_term reason)
{
	uint64_t b[4];
	up_term e[3] = { A_EXIT, up_pid_term(remote), reason };
	up__signal_send(up__self_sched, local, kind, stack_tuple(b, 3, e));
}

static void tell_down(struct wr *w, up_pid local, const uint32_t ref[3], up_pid target,
		      up_term reason)
{
	uint64_t b[6], rb[3], wb[3];
	up_term e[5] = { A_DOWN, stack_ref(rb, ref, 0), A_PROCESS, who(w, target, wb), reason };
	up__signal_send(up__self_sched, local, UP__MSG_SIG_DOWN, stack_tuple(b, 5, e));
}

/* ------------------------------------------------ toward the peer */

static up_term target_term(up_pid to)
{
	return up__dist_pid_is_name(to) ? (up_term)up__dist_pid_id(to) << 3 : up_pid_term(to);
}

static void out_cmd(struct wr *w, up_term cmd, int failed)
{
	up_term opt, from, tot, pl;
	int64_t op;
	up_pid to, fpid = 0;
	if (up_tuple_elem(cmd, 1, &opt) || up_get_int(opt, &op) || up_tuple_elem(cmd, 2, &from) ||
	    up_tuple_elem(cmd, 3, &tot) || up_get_pid(tot, &to) || up_tuple_elem(cmd, 4, &pl))
		return;
	if (up_get_pid(from, &fpid) != 0)
		from = up_pid_term(w->self), fpid = w->self; /* sent from outside a process */
	uint32_t ref[3];
	if (failed) { /* no connection: what needs an answer gets noconnection */
		if (op == DOP_LINK)
			tell_exit(fpid, to, UP__MSG_SIG_LINK_EXIT, up__dist_atom(UP__DA_NOCONNECTION));
		else if (op == DOP_MONITOR_P && up_kind_of(pl) == UP_K_REF) {
			ref_words(pl, ref);
			tell_down(w, fpid, ref, to, up__dist_atom(UP__DA_NOCONNECTION));
		}
		return;
	}
	int r = 0;
	switch (op) {
	case DOP_SEND:
		if (up__dist_pid_is_name(to)) {
			up_term c[4] = { up_int(DOP_REG_SEND), from, EMPTY_ATOM, target_term(to) };
			r = put_frame(w, 4, c, &pl);
		} else {
			up_term c[3] = { up_int(DOP_SEND), EMPTY_ATOM, tot };
			r = put_frame(w, 3, c, &pl);
		}
		break;
	case DOP_LINK:
	case DOP_UNLINK: {
		if (op == DOP_LINK)
			link_add(w, fpid, to);
		else
			link_del(w, fpid, to);
		up_term c[3] = { up_int(op), from, tot };
		r = put_frame(w, 3, c, NULL);
		break;
	}
	case DOP_EXIT:
	case DOP_EXIT2: {
		if (op == DOP_EXIT && !link_del(w, fpid, to))
			break; /* unlinked meanwhile */
		up_term c[4] = { up_int(op), from, tot, pl };
		r = put_frame(w, 4, c, NULL);
		break;
	}
	case DOP_MONITOR_P:
	case DOP_DEMONITOR_P: {
		if (up_kind_of(pl) != UP_K_REF)
			break;
		ref_words(pl, ref);
		int i = om_find(w, fpid, ref);
		if (op == DOP_MONITOR_P && i < 0) {
			if (grow((void **)&w->om, w->nom, &w->capom, sizeof(*w->om))) {
				tell_down(w, fpid, ref, to, up__dist_atom(UP__DA_NOCONNECTION));
				break;
			}
			w->om[w->nom] = (struct omon){ .local = fpid, .target = to };
			memcpy(w->om[w->nom++].ref, ref, 12);
		} else if (op == DOP_DEMONITOR_P) {
			if (i < 0)
				break; /* over already */
			w->om[i] = w->om[--w->nom];
		} else {
			break;
		}
		up_term c[4] = { up_int(op), from, target_term(to), pl };
		r = put_frame(w, 4, c, NULL);
		break;
	}
	default:
		break;
	}
	if (r && r != -EPIPE)
		up__dist_log("could not send to %s (op %d): %d", up__dist_cfg.name, (int)op, r);
}

/* ------------------------------------------------ from the peer */

static int local_pid(up_term t, up_pid *p)
{
	return up_get_pid(t, p) == 0 && !up__pid_is_remote(*p) ? 0 : -EINVAL;
}

static void monitor_exit(struct wr *w, up_term target, up_pid remote, const uint32_t rref[4],
			 up_term reason)
{
	uint64_t rb[3];
	up_term c[5] = { up_int(DOP_MONITOR_P_EXIT), target, up_pid_term(remote),
			 stack_ref(rb, rref, rref[3]), reason };
	put_frame(w, 5, c, NULL);
}

static void in_ctl(struct wr *w, up_term ctl)
{
	up_term e[5] = { 0 };
	long n = up_tuple_arity(ctl);
	int64_t op;
	if (n < 3 || n > 5)
		return;
	for (long i = 0; i < n; i++)
		up_tuple_elem(ctl, (size_t)i, &e[i]);
	if (up_get_int(e[0], &op))
		return;
	up_pid remote, local;
	uint32_t ids[4];
	switch (op) {
	case DOP_LINK: /* {1, Remote, Local} */
		if (up_get_pid(e[1], &remote) || local_pid(e[2], &local))
			return;
		if (up__signal_send(up__self_sched, local, UP__MSG_SIG_LINK, e[1]) == 0) {
			link_add(w, local, remote);
		} else {
			up_term c[4] = { up_int(DOP_EXIT), e[2], e[1], UP_NOPROC };
			put_frame(w, 4, c, NULL);
		}
		return;
	case DOP_UNLINK:
		if (up_get_pid(e[1], &remote) || local_pid(e[2], &local))
			return;
		link_del(w, local, remote);
		up__signal_send(up__self_sched, local, UP__MSG_SIG_UNLINK, e[1]);
		return;
	case DOP_EXIT: /* {3, Remote, Local, Reason} */
		if (n != 4 || up_get_pid(e[1], &remote) || local_pid(e[2], &local))
			return;
		if (link_del(w, local, remote))
			tell_exit(local, remote, UP__MSG_SIG_LINK_EXIT, e[3]);
		return;
	case DOP_MONITOR_P: { /* {19, Remote, LocalPidOrName, Ref} */
		if (n != 4 || up_get_pid(e[1], &remote) || up_kind_of(e[3]) != UP_K_REF)
			return;
		memcpy(ids, &up__box(e[3])[1], 16);
		if (up_kind_of(e[2]) == UP_K_ATOM)
			local = up_whereis(e[2]);
		else if (local_pid(e[2], &local))
			return;
		long mark = up_heap_mark();
		up_term lr = local > 0 ? up_monitor(local) : up__mkbad(-ESRCH);
		if (up_is_bad(lr) || grow((void **)&w->im, w->nim, &w->capim, sizeof(*w->im))) {
			if (!up_is_bad(lr))
				up_demonitor(lr, UP_DEMONITOR_FLUSH);
			monitor_exit(w, e[2], remote, ids, UP_NOPROC);
		} else {
			struct imon *m = &w->im[w->nim++];
			ref_words(lr, m->lref);
			memcpy(m->rref, ids, 16);
			m->remote = remote;
			m->target = e[2];
		}
		up_heap_reset(mark);
		return;
	}
	case DOP_DEMONITOR_P: { /* {20, Remote, LocalPidOrName, Ref} */
		if (n != 4 || up_get_pid(e[1], &remote) || up_kind_of(e[3]) != UP_K_REF)
			return;
		memcpy(ids, &up__box(e[3])[1], 16);
		int i = im_find_r(w, remote, ids);
		if (i < 0)
			return;
		uint64_t rb[3];
		up_demonitor(stack_ref(rb, w->im[i].lref, 0), UP_DEMONITOR_FLUSH);
		w->im[i] = w->im[--w->nim];
		return;
	}
	case DOP_MONITOR_P_EXIT: { /* {21, RemotePidOrName, Local, Ref, Reason} */
		if (n != 5 || local_pid(e[2], &local) || up_kind_of(e[3]) != UP_K_REF)
			return;
		ref_words(e[3], ids);
		int i = om_find(w, local, ids);
		if (i < 0)
			return;
		up_pid target = w->om[i].target;
		w->om[i] = w->om[--w->nom];
		tell_down(w, local, ids, target, e[4]);
		return;
	}
	default:
		return;
	}
}

/* Our proxy monitor of a local process fired: tell the remote monitor. */
static void proxy_down(struct wr *w, up_term msg)
{
	up_term ref, reason;
	uint32_t ids[3];
	if (up_tuple_elem(msg, 1, &ref) || up_kind_of(ref) != UP_K_REF ||
	    up_tuple_elem(msg, 4, &reason))
		return;
	ref_words(ref, ids);
	int i = im_find_l(w, ids);
	if (i < 0)
		return;
	struct imon m = w->im[i];
	w->im[i] = w->im[--w->nim];
	monitor_exit(w, m.target, m.remote, m.rref, reason);
}

/* ------------------------------------------------------- the reader */

struct rd {
	int fd;
	up_pid writer;
	int dropped;
};

static void die(const char *why)
{
	up__dist_log("connection closed: %s", why);
	up_exit(up_self(), up_atom(why));
}

static up_term payload(struct rd *r, const uint8_t *b, size_t n)
{
	if (n == 0)
		return up__mkbad(-EINVAL);
	up_term t = up_term_decode(b, n, NULL);
	if (up_is_bad(t) && !r->dropped++)
		up__dist_log("dropped a message uproc cannot hold (%d); more are not logged",
			     up_term_error(t));
	return t;
}

/* The control tuple at b (version byte first), element by element: the
 * empty atom '' that Erlang puts in unused fields (uproc has no empty
 * atom) becomes [].  Each element is decoded with a version byte written
 * over the byte before it (put back after).  Its length, or -1. */
static long decode_ctl(uint8_t *b, size_t n, up_term *e, long *arity)
{
	if (n < 3 || b[0] != 131 || b[1] != 104 || b[2] < 2 || b[2] > 5)
		return -1;
	*arity = b[2];
	size_t pos = 3;
	for (long i = 0; i < *arity; i++) {
		if (pos + 2 <= n && (b[pos] == 119 || b[pos] == 115) && b[pos + 1] == 0) {
			e[i] = UP_NIL;
			pos += 2;
			continue;
		}
		if (pos + 3 <= n && (b[pos] == 118 || b[pos] == 100) && b[pos + 1] == 0 &&
		    b[pos + 2] == 0) {
			e[i] = UP_NIL;
			pos += 3;
			continue;
		}
		if (pos >= n)
			return -1;
		uint8_t save = b[pos - 1];
		size_t used = 0;
		b[pos - 1] = 131;
		e[i] = up_term_decode(b + pos - 1, n - pos + 1, &used);
		b[pos - 1] = save;
		if (up_is_bad(e[i]))
			return -1;
		pos += used - 1;
	}
	return (long)pos;
}

/* One frame; a malformed one ends the connection. */
static void frame(struct rd *r, uint8_t *b, size_t n)
{
	if (n < 2 || b[0] != 'p')
		die("malformed frame (not a pass-through message)");
	up_term e[5] = { 0 };
	long arity = 0;
	long used = decode_ctl(b + 1, n - 1, e, &arity);
	int64_t op;
	if (used < 0 || up_get_int(e[0], &op))
		die("malformed control message");
	up_term ctl = up_tuple((size_t)arity, e);
	if (up_is_bad(ctl))
		die("no memory");
	const uint8_t *rest = b + 1 + used;
	size_t rn = n - 1 - (size_t)used;
	up_pid to;
	up_term msg;
	switch (op) {
	case DOP_SEND:
	case DOP_SEND_TT:
	case DOP_SEND_SENDER:
	case DOP_SEND_SENDER_TT:
		if (arity < 3 || up_get_pid(e[2], &to))
			die("malformed SEND");
		msg = payload(r, rest, rn);
		if (!up_is_bad(msg) && !up__pid_is_remote(to))
			up_send(to, msg);
		return;
	case DOP_REG_SEND:
	case DOP_REG_SEND_TT:
		if (arity < 4 || up_kind_of(e[3]) != UP_K_ATOM)
			die("malformed REG_SEND");
		msg = payload(r, rest, rn);
		if (!up_is_bad(msg))
			up_send_name(e[3], msg);
		return;
	case DOP_EXIT2:
	case DOP_EXIT2_TT: {
		up_term reason = e[op == DOP_EXIT2 ? 3 : 4];
		if (arity != (op == DOP_EXIT2 ? 4 : 5) || up_get_pid(e[2], &to) ||
		    up_kind_of(e[1]) != UP_K_PID)
			die("malformed EXIT2");
		if (!up__pid_is_remote(to)) {
			uint64_t tb[4];
			up_term x[3] = { A_EXIT, e[1], reason };
			up__signal_send(up__self_sched, to, UP__MSG_SIG_EXIT, stack_tuple(tb, 3, x));
		}
		return;
	}
	case DOP_EXIT_TT: /* as EXIT, without the token */
		if (arity != 5)
			die("malformed EXIT");
		e[3] = e[4];
		ctl = up_tuplev(4, up_int(DOP_EXIT), e[1], e[2], e[3]);
		/* fall through */
	case DOP_LINK:
	case DOP_UNLINK:
	case DOP_EXIT:
	case DOP_MONITOR_P:
	case DOP_DEMONITOR_P:
	case DOP_MONITOR_P_EXIT: {
		uint64_t tb[3];
		up_term x[2] = { up__dist_atom(UP__DA_DIST_IN), ctl };
		if (up_send(r->writer, stack_tuple(tb, 2, x)) == -ESRCH)
			die("writer gone");
		return;
	}
	default:
		return; /* what we did not ask for (spawn requests, aliases...) */
	}
}

static void reader(void *arg)
{
	struct rd r = { .fd = (int)(intptr_t)arg };
	struct up_msg m;
	if (up_recv(&m, UP_INFINITY) != 0 || m.kind != UP_MSG_WORD)
		return;
	r.writer = (up_pid)m.word;
	size_t cap = 64 * 1024, len = 0;
	uint8_t *buf = up_alloc(cap);
	if (!buf)
		die("no memory");
	int64_t silence = 4 * up__dist_cfg.tick_ns;
	for (;;) {
		size_t start = 0, need = 0;
		while (len - start >= 4) {
			uint8_t *p = buf + start;
			size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
			if (n == 0) { /* a tick */
				start += 4;
				continue;
			}
			if (n > up__dist_cfg.max_frame)
				die("frame too large");
			if (len - start - 4 < n) {
				need = n + 4;
				break;
			}
			long mark = up_heap_mark();
			frame(&r, p + 4, n);
			up_heap_reset(mark);
			start += 4 + n;
		}
		if (start) {
			memmove(buf, buf + start, len - start);
			len -= start;
		}
		if (need > cap) {
			size_t c = cap;
			while (c < need)
				c *= 2;
			uint8_t *nb = up_alloc(c);
			if (!nb)
				die("no memory");
			memcpy(nb, buf, len);
			buf = nb;
			cap = c;
		}
		ssize_t got = up_io_recv(r.fd, buf + len, cap - len, 0, silence);
		if (got == 0)
			die("closed by the peer");
		if (got == -ETIMEDOUT)
			die("net_tick_timeout");
		if (got < 0)
			die("receive failed");
		len += (size_t)got;
	}
}

/* ------------------------------------------------------- the writer */

static int is_tagged(up_term t, long arity, up_term tag)
{
	up_term e;
	return up_tuple_arity(t) == arity && up_tuple_elem(t, 0, &e) == 0 && e == tag;
}

static int match_fd(const struct up_msg *m, void *arg)
{
	(void)arg;
	return m->kind == UP_MSG_TERM && is_tagged(m->term, 3, up__dist_atom(UP__DA_DIST_FD));
}

/* The fd of a {'$dist_fd', Fd, Creation} message (and its creation). */
static int fd_of(up_term t, uint32_t *creation)
{
	up_term e;
	int64_t fd = -1, cr = 0;
	if (up_tuple_elem(t, 1, &e) || up_get_int(e, &fd) || up_tuple_elem(t, 2, &e) ||
	    up_get_int(e, &cr))
		return -1;
	if (creation)
		*creation = (uint32_t)cr;
	return (int)fd;
}

/* Wait for the socket of the peer's winning connection from our acceptor. */
static int take_fd(struct wr *w, int64_t timeout_ns)
{
	struct up_msg m;
	uint32_t creation = 0;
	int r = up_recv_match(match_fd, NULL, &m, timeout_ns, 0);
	if (r)
		return r;
	int fd = fd_of(m.term, &creation);
	up_msg_free(&m);
	if (fd < 0)
		return -EINVAL;
	if (up_io_own(fd)) {
		close(fd);
		return -ENOMEM;
	}
	w->fd = fd;
	up__dist_conn_up(w->node, w->self, creation);
	return 0;
}

static int connect_peer(struct wr *w)
{
	const char *name;
	size_t len;
	char node[256], host[256];
	if (up_get_atom(w->node, &name, &len) || len >= sizeof(node))
		return -EINVAL;
	memcpy(node, name, len);
	node[len] = 0;
	char *at = strchr(node, '@');
	if (!at)
		return -EINVAL;
	snprintf(host, sizeof(host), "%s", at + 1);
	/* The host by the resolver (files first, as configured: blocking, but
	 * a loopback or /etc/hosts name answers at once). */
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
		return -EHOSTUNREACH;
	uint32_t addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr;
	freeaddrinfo(ai);
	int64_t to = up__dist_cfg.connect_timeout_ns;
	int port = up__epmd_port(addr, up__dist_cfg.epmd_port, node, (size_t)(at - node), to);
	if (port < 0)
		return port;
	int fd = up__dist_tcp_connect(addr, (uint16_t)port, to);
	if (fd < 0)
		return fd;
	if (up_io_own(fd)) {
		close(fd);
		return -ENOMEM;
	}
	struct up__hs h = { .self = up__dist_cfg.name, .cookie = up__dist_cfg.cookie,
			    .creation = up__dist_cfg.creation };
	snprintf(h.peer, sizeof(h.peer), "%s", node);
	int r = up__hs_connect(fd, &h, to);
	if (r == -EALREADY && strcmp(node, up__dist_cfg.name) > 0) {
		/* Simultaneous connect, and the peer's attempt wins: our
		 * acceptor hands us its socket (what was sent to the node
		 * waits here meanwhile). */
		up_io_close(fd);
		return take_fd(w, to);
	}
	if (r) {
		up__dist_log("handshake with %s failed: %s (%d)", node, h.why ? h.why : "", r);
		up_io_close(fd);
		return r;
	}
	w->fd = fd;
	up__dist_conn_up(w->node, w->self, h.peer_creation);
	return 0;
}

/* One message to the writer: 1 when the connection is over. */
static int handle(struct wr *w, struct up_msg *m)
{
	if (m->kind != UP_MSG_TERM)
		return 0;
	up_term t = m->term, e;
	if (is_tagged(t, 5, up__dist_atom(UP__DA_DIST))) {
		out_cmd(w, t, 0);
	} else if (is_tagged(t, 2, up__dist_atom(UP__DA_DIST_IN))) {
		up_tuple_elem(t, 1, &e);
		in_ctl(w, e);
	} else if (is_tagged(t, 5, A_DOWN)) {
		proxy_down(w, t);
	} else if (is_tagged(t, 3, A_EXIT)) {
		up_pid from;
		up_tuple_elem(t, 1, &e);
		if (up_get_pid(e, &from) == 0 && from == w->reader)
			return 1;
	} else if (t == up__dist_atom(UP__DA_STOP)) {
		return 1;
	} else if (match_fd(m, NULL)) {
		int fd = fd_of(t, NULL); /* a socket handed over too late */
		if (fd >= 0)
			close(fd);
	}
	return w->dead;
}

static void cleanup(struct wr *w)
{
	up_term nc = up__dist_atom(UP__DA_NOCONNECTION);
	up__dist_conn_gone(w->node, w->self);
	if (w->reader > 0)
		up_exit(w->reader, UP_KILL);
	if (w->fd >= 0)
		shutdown(w->fd, SHUT_RDWR);
	for (uint32_t i = 0; i < w->nl; i++)
		tell_exit(w->links[i].local, w->links[i].remote, UP__MSG_SIG_LINK_EXIT, nc);
	for (uint32_t i = 0; i < w->nom; i++)
		tell_down(w, w->om[i].local, w->om[i].ref, w->om[i].target, nc);
	w->nl = w->nom = 0;
	/* What was sent to us before the node was removed. */
	struct up_msg m;
	while (up_recv(&m, 0) == 0) {
		if (m.kind == UP_MSG_TERM && is_tagged(m.term, 5, up__dist_atom(UP__DA_DIST)))
			out_cmd(w, m.term, 1);
		else if (match_fd(&m, NULL) && fd_of(m.term, NULL) >= 0)
			close(fd_of(m.term, NULL));
		up_msg_free(&m);
	}
}

void up__dist_conn_main(void *arg)
{
	uint64_t a = (uint64_t)(uintptr_t)arg;
	struct wr w = { .fd = (int)(uint32_t)a - 1, .node = (up_term)(a >> 32) << 3,
			.self = up_self(), .ocap = 64 * 1024 };
	up_trap_exit(1);
	w.out = up_alloc(w.ocap);
	int r = w.out ? 0 : -ENOMEM;
	if (r == 0 && w.fd < 0) {
		r = connect_peer(&w);
		if (r)
			w.fd = -1;
	} else if (r == 0 && up_io_own(w.fd) != 0) {
		r = -ENOMEM;
	}
	if (r == 0) {
		struct up_spawn_opts o = { .flags = UP_SPAWN_LINK };
		w.reader = up_spawn_opt(reader, (void *)(intptr_t)w.fd, &o);
		if (w.reader < 0 || up_send_word(w.reader, (uint64_t)w.self) != 0)
			r = w.reader < 0 ? (int)w.reader : -ESRCH;
	}
	if (r) {
		cleanup(&w);
		return;
	}
	w.last_send = now_ns();
	int64_t tick = up__dist_cfg.tick_ns;
	for (;;) {
		struct up_msg m;
		int64_t wait = w.last_send + tick - now_ns();
		int done = 0;
		if (up_recv(&m, wait > 0 ? wait : 0) == 0) {
			done = handle(&w, &m);
			up_msg_free(&m);
			for (int i = 0; i < 256 && !done && w.olen < 64 * 1024 &&
					up_recv(&m, 0) == 0; i++) {
				done = handle(&w, &m);
				up_msg_free(&m);
			}
		}
		if (!done && w.olen == 0 && now_ns() - w.last_send >= tick) {
			memset(w.out, 0, 4); /* a tick */
			w.olen = 4;
		}
		if (!done && flush(&w))
			done = 1;
		if (done)
			break;
	}
	cleanup(&w);
}
