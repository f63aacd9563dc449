/*
 * io.c - blocking I/O for processes: each call prepares one request on its
 * scheduler's ring (with a linked timeout when it has a deadline) and parks
 * the process until the completion; the scheduler submits queued requests in
 * batches (every poll, and before it sleeps) and dispatches completions here.
 * See io.h for the user_data format and the zombie invariant.
 *
 * Owner thread only: rings are SINGLE_ISSUER and a process's requests are
 * made and completed on its own scheduler.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "proc.h"
#include "scheduler.h"
#include "runtime.h"
#if UP_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#endif

#define ACCEPT_QUEUE 64
/* user_data of a request turned into a NOP before submission (pid 0). */
#define TAG_NOP 2ull

/* Connections taken by a process's multishot accept, not yet handed out. */
struct up__accept {
	int fd;                 /* the listening socket */
	int armed;              /* a multishot accept is in flight */
	int err;                /* an error to report to the next accept */
	unsigned head, n, cap;
	int *q;                 /* ring of accepted descriptors */
};

static inline uint64_t ud(up_pid pid, unsigned kind)
{
	return ((uint64_t)pid << 4) | kind;
}

static inline struct up__proc *current(void)
{
	struct up__sched *s = up__self_sched;
	return s ? s->current : NULL;
}

/* Submit what is queued; a failure leaves it queued for the next try. */
static int submit(struct up__sched *s)
{
	int r = UP_FAULT_ERR(UP__F_SUBMIT, io_uring_submit(&s->ring));
	if (r == -EBUSY || r == -EAGAIN) /* CQ overflow: make room */
		up__io_reap(s);
	return r;
}

/* n free SQEs, submitting what is queued if needed (never drops). */
static void reserve(struct up__sched *s, unsigned n)
{
	while (io_uring_sq_space_left(&s->ring) < n)
		submit(s);
}

/* A free SQE, or NULL when even a submit did not give one (the caller
 * reports -EAGAIN; nothing of it is queued). */
static inline struct io_uring_sqe *sqe_get(struct up__sched *s)
{
	reserve(s, 1);
	struct io_uring_sqe *sqe = UP_FAULT_PTR(UP__F_SQE, io_uring_get_sqe(&s->ring));
	if (up_unlikely(!sqe)) {
		submit(s);
		sqe = UP_FAULT_PTR(UP__F_SQE, io_uring_get_sqe(&s->ring));
	}
	if (sqe)
		UP__STAT(s, io_submitted, 1);
	return sqe;
}

static int check_timeout(int64_t t)
{
	return t > 0 || t == UP_INFINITY ? 0 : -EINVAL;
}

/* The request in *sqe is p's: add the linked timeout, park until every
 * completion is in, return the result. */
static int wait_op(struct up__sched *s, struct up__proc *p, struct io_uring_sqe *sqe,
		   int64_t timeout_ns)
{
	sqe->user_data = ud(p->pid, UP__IO_OP);
	unsigned n = 1;
	p->io.timedout = 0;
	if (timeout_ns != UP_INFINITY) {
		/* Reserved by start(); no submit in between (the op would go
		 * without its timeout). */
		struct io_uring_sqe *t = UP_FAULT_PTR(UP__F_SQE, io_uring_get_sqe(&s->ring));
		if (up_unlikely(!t)) {
			io_uring_prep_nop(sqe);
			sqe->user_data = TAG_NOP;
			return -EAGAIN;
		}
		sqe->flags |= IOSQE_IO_LINK;
		p->io.ts.tv_sec = timeout_ns / 1000000000;
		p->io.ts.tv_nsec = timeout_ns % 1000000000;
		io_uring_prep_link_timeout(t, &p->io.ts, 0);
		t->user_data = ud(p->pid, UP__IO_TIMEOUT);
		UP__STAT(s, io_submitted, 1);
		n = 2;
	}
	/* Wait for this request's own completions only: an armed multishot
	 * accept is in flight too, for as long as it stays armed. */
	p->io.op_due = (uint16_t)n;
	p->io.inflight += n;
	s->io_inflight += n;
	while (p->io.op_due) {
		p->state = UP__P_WAITING_IO;
		up__sched_leave(p);
	}
	if (p->io.timedout && p->io.res == -ECANCELED)
		return -ETIMEDOUT;
	return p->io.res;
}

/*
 * A compact process's stack belongs to other compact processes while it
 * waits (shared_stack.h), and the kernel reads and writes a request's buffer
 * after the process has left the CPU (even the submission comes later, from
 * the scheduler).  A buffer on that stack is replaced by the process's
 * bounce block for the request: filled from buf when copy_in (writes,
 * addresses), copied back by the caller (reads).  The block lives until the
 * process's next request, or its release (a request can outlive a killed
 * process: see the zombie state).  *use: buf itself or the block.  0, or
 * -ENOMEM.
 */
static int bounce(struct up__sched *s, struct up__proc *p, const void *buf, size_t len,
		  int copy_in, void **use)
{
	*use = (void *)buf;
	if (up_likely(!p->compact || !len || !up__sstack_holds(&s->sstack, buf, len)))
		return 0;
	if (len > p->io.bounce_cap) {
		void *b = up__side_alloc(p, len);
		if (!b)
			return -ENOMEM;
		if (p->io.bounce)
			up__side_free(p, p->io.bounce, p->io.bounce_cap);
		p->io.bounce = b;
		p->io.bounce_cap = len;
	}
	if (copy_in)
		memcpy(p->io.bounce, buf, len);
	*use = p->io.bounce;
	return 0;
}

/* Start a request for the calling process on fd with buffer buf/len
 * (checked: NULL only with len 0): its SQE (and room for a linked
 * timeout), or NULL with *err set.  *use: the buffer to give the kernel
 * (buf, or its bounce block: see bounce()). */
static struct io_uring_sqe *start_buf(struct up__sched **sp, struct up__proc **pp, int fd,
				      const void *buf, size_t len, int copy_in, void **use,
				      int64_t timeout_ns, int *err)
{
	struct up__proc *p = current();
	if (!p) {
		*err = -EPERM;
		return NULL;
	}
	if (fd < 0 || check_timeout(timeout_ns) || (!buf && len)) {
		*err = -EINVAL;
		return NULL;
	}
	if (__atomic_load_n(&up__rt.stopping, __ATOMIC_RELAXED)) {
		*err = -ECANCELED;
		return NULL;
	}
	struct up__sched *s = up__self_sched;
	if (use && (*err = bounce(s, p, buf, len, copy_in, use)) != 0)
		return NULL;
	reserve(s, 2);
	*sp = s;
	*pp = p;
	struct io_uring_sqe *sqe = sqe_get(s);
	if (up_unlikely(!sqe))
		*err = -EAGAIN;
	return sqe;
}

/* start_buf() for a request without a buffer. */
static struct io_uring_sqe *start(struct up__sched **sp, struct up__proc **pp, int fd,
				  int64_t timeout_ns, int *err)
{
	return start_buf(sp, pp, fd, NULL, 0, 0, NULL, timeout_ns, err);
}

#define RW_MAX 0x7ffff000u /* read(2)'s own limit per call */

/* Memcheck does not see the kernel write received bytes through the ring:
 * they would stay "undefined" to it.  Say they are defined (a few
 * instructions that do nothing outside Valgrind). */
static inline ssize_t received(void *buf, void *used, ssize_t r)
{
#if UP_HAVE_VALGRIND_H
	if (r > 0)
		(void)VALGRIND_MAKE_MEM_DEFINED(used, (size_t)r);
#endif
	if (r > 0 && used != buf)
		memcpy(buf, used, (size_t)r); /* from the bounce block */
	return r;
}

ssize_t up_io_read(int fd, void *buf, size_t len, int64_t timeout_ns)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	void *use;
	if (len > RW_MAX)
		len = RW_MAX;
	struct io_uring_sqe *sqe = start_buf(&s, &p, fd, buf, len, 0, &use, timeout_ns, &err);
	if (!sqe)
		return err;
	io_uring_prep_read(sqe, fd, use, (unsigned)len, (__u64)-1);
	return received(buf, use, wait_op(s, p, sqe, timeout_ns));
}

ssize_t up_io_recv(int fd, void *buf, size_t len, int flags, int64_t timeout_ns)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	void *use;
	struct io_uring_sqe *sqe = start_buf(&s, &p, fd, buf, len, 0, &use, timeout_ns, &err);
	if (!sqe)
		return err;
	io_uring_prep_recv(sqe, fd, use, len, flags);
	return received(buf, use, wait_op(s, p, sqe, timeout_ns));
}

/* Write or send all of buf; the deadline covers the whole loop. */
static ssize_t write_all(int fd, const void *buf, size_t len, int flags, int is_send,
			 int64_t timeout_ns)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	if (!current())
		return -EPERM;
	if ((!buf && len) || check_timeout(timeout_ns))
		return -EINVAL;
	int64_t deadline = timeout_ns == UP_INFINITY ? 0 : up__now_ns() + timeout_ns;
	size_t done = 0;
	do {
		int64_t left = UP_INFINITY;
		if (deadline) {
			left = deadline - up__now_ns();
			if (left <= 0)
				return -ETIMEDOUT;
		}
		const char *b = (const char *)buf + done;
		size_t n = len - done;
		void *use;
		struct io_uring_sqe *sqe = start_buf(&s, &p, fd, b, n, 1, &use, left, &err);
		if (!sqe)
			return err;
		b = use;
		n = up__fault(UP__F_SHORT_WRITE) && n > 1 ? n / 2 : n;
		if (is_send)
			io_uring_prep_send(sqe, fd, b, n, flags | MSG_NOSIGNAL);
		else
			io_uring_prep_write(sqe, fd, b, (unsigned)(n > RW_MAX ? RW_MAX : n), (__u64)-1);
		int r = wait_op(s, p, sqe, left);
		if (r < 0)
			return r;
		if (r == 0 && n)
			return -EIO; /* no progress: would loop for ever */
		done += (size_t)r;
	} while (done < len);
	return (ssize_t)len;
}

ssize_t up_io_write(int fd, const void *buf, size_t len, int64_t timeout_ns)
{
	return write_all(fd, buf, len, 0, 0, timeout_ns);
}

ssize_t up_io_send(int fd, const void *buf, size_t len, int flags, int64_t timeout_ns)
{
	return write_all(fd, buf, len, flags, 1, timeout_ns);
}

int up_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t timeout_ns)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	void *use;
	struct io_uring_sqe *sqe = start_buf(&s, &p, fd, addr, addr ? addrlen : 1, 1, &use,
					     timeout_ns, &err);
	if (!sqe)
		return err;
	io_uring_prep_connect(sqe, fd, use, addrlen);
	return wait_op(s, p, sqe, timeout_ns);
}

static void forget_owned(struct up__proc *p, int fd)
{
	for (uint32_t i = 0; i < p->io.nowned; i++)
		if (p->io.owned[i] == fd) {
			p->io.owned[i] = p->io.owned[--p->io.nowned];
			return;
		}
}

int up_io_close(int fd)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	struct io_uring_sqe *sqe = start(&s, &p, fd, UP_INFINITY, &err);
	if (!sqe)
		return err;
	forget_owned(p, fd);
	io_uring_prep_close(sqe, fd);
	return wait_op(s, p, sqe, UP_INFINITY);
}

int up_io_shutdown(int fd, int how)
{
	struct up__sched *s;
	struct up__proc *p;
	int err;
	struct io_uring_sqe *sqe = start(&s, &p, fd, UP_INFINITY, &err);
	if (!sqe)
		return err;
	io_uring_prep_shutdown(sqe, fd, how);
	return wait_op(s, p, sqe, UP_INFINITY);
}

int up_io_own(int fd)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (fd < 0)
		return -EINVAL;
	for (uint32_t i = 0; i < p->io.nowned; i++)
		if (p->io.owned[i] == fd)
			return -EEXIST;
	if (up__side_grow(p, (void **)&p->io.owned, p->io.nowned, &p->io.cap_owned, sizeof(int)))
		return -ENOMEM;
	p->io.owned[p->io.nowned++] = fd;
	return 0;
}

int up_io_disown(int fd)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	for (uint32_t i = 0; i < p->io.nowned; i++)
		if (p->io.owned[i] == fd) {
			forget_owned(p, fd);
			return 0;
		}
	return -ENOENT;
}

/* ---------------------------------------------------------------- timers */

/* Park in state `state` until the timer (deadline already set) fires or
 * someone makes the process runnable; 1 if the timer fired. */
static int park_timed(struct up__sched *s, struct up__proc *p, uint8_t state)
{
	if (!p->timer_idx && up__timer_add(&s->timers, p) != 0)
		return -ENOMEM;
	p->state = state;
	up__sched_leave(p);
	int fired = p->timed_out;
	p->timed_out = 0;
	return fired;
}

int up_sleep(int64_t ns)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (ns < 0)
		return -EINVAL;
	struct up__sched *s = up__self_sched;
	p->deadline = up__now_ns() + ns;
	for (;;) {
		int r = park_timed(s, p, UP__P_SLEEPING);
		if (r < 0)
			return r;
		if (r || up__now_ns() >= p->deadline)
			break;
	}
	if (p->timer_idx)
		up__timer_remove(&up__self_sched->timers, p);
	return 0;
}

/* ---------------------------------------------------------------- accept */

static void acc_push(struct up__proc *p, struct up__accept *a, int fd)
{
	if (a->n == a->cap) {
		/* Grow, keeping the ring's order (completions are dispatched
		 * on the owner thread, so this is a side allocation of it). */
		unsigned cap = a->cap * 2;
		int *q = up__side_alloc(p, cap * sizeof(int));
		if (!q) {
			close(fd); /* cannot keep it: the client sees a reset */
			return;
		}
		for (unsigned i = 0; i < a->n; i++)
			q[i] = a->q[(a->head + i) % a->cap];
		up__side_free(p, a->q, a->cap * sizeof(int));
		a->q = q;
		a->head = 0;
		a->cap = cap;
	}
	a->q[(a->head + a->n++) % a->cap] = fd;
}

static int arm_accept(struct up__sched *s, struct up__proc *p, struct up__accept *a)
{
	struct io_uring_sqe *sqe = sqe_get(s);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = ud(p->pid, UP__IO_ACCEPT);
	a->armed = 1;
	p->io.inflight++;
	s->io_inflight++;
	return 0;
}

/* Cancel p's requests of `kind`: 0, or -EAGAIN when no SQE came even after
 * a few submits (the requests then end by themselves, or with the run). */
static int cancel_kind(struct up__sched *s, struct up__proc *p, unsigned kind)
{
	struct io_uring_sqe *sqe;
	for (int i = 0; !(sqe = sqe_get(s)); i++)
		if (i == 4)
			return -EAGAIN;
	io_uring_prep_cancel64(sqe, ud(p->pid, kind), IORING_ASYNC_CANCEL_ALL);
	sqe->user_data = ud(p->pid, UP__IO_CANCEL);
	p->io.inflight++;
	s->io_inflight++;
	return 0;
}

int up_io_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t timeout_ns)
{
	struct up__proc *p = current();
	if (!p)
		return -EPERM;
	if (fd < 0 || check_timeout(timeout_ns) || (addr && !addrlen))
		return -EINVAL;
	struct up__sched *s = up__self_sched;
	struct up__accept *a = p->io.acc;
	if (!a) {
		a = up__side_alloc(p, sizeof(*a));
		int *q = up__side_alloc(p, ACCEPT_QUEUE * sizeof(int));
		if (!a || !q) {
			if (a)
				up__side_free(p, a, sizeof(*a));
			if (q)
				up__side_free(p, q, ACCEPT_QUEUE * sizeof(int));
			return -ENOMEM;
		}
		memset(a, 0, sizeof(*a));
		a->fd = -1;
		a->q = q;
		a->cap = ACCEPT_QUEUE;
		p->io.acc = a;
	}
	if (a->fd != fd && a->armed) {
		/* Another listening socket: stop the old multishot first
		 * (connections it already took are still handed out). */
		if (cancel_kind(s, p, UP__IO_ACCEPT) != 0)
			return -EAGAIN;
		while (a->armed) {
			p->state = UP__P_WAITING_ACCEPT;
			up__sched_leave(p);
		}
	}
	a->fd = fd;
	if (timeout_ns != UP_INFINITY)
		p->deadline = up__now_ns() + timeout_ns;
	for (;;) {
		if (a->n) {
			int nfd = a->q[a->head];
			a->head = (a->head + 1) % a->cap;
			a->n--;
			if (p->timer_idx)
				up__timer_remove(&up__self_sched->timers, p);
			if (addr && getpeername(nfd, addr, addrlen) != 0)
				*addrlen = 0;
			return nfd;
		}
		if (a->err) {
			int e = a->err;
			a->err = 0;
			if (p->timer_idx)
				up__timer_remove(&up__self_sched->timers, p);
			return e;
		}
		if (__atomic_load_n(&up__rt.stopping, __ATOMIC_RELAXED))
			return -ECANCELED;
		if (!a->armed && arm_accept(s, p, a) != 0) {
			if (p->timer_idx)
				up__timer_remove(&up__self_sched->timers, p);
			return -EAGAIN;
		}
		if (timeout_ns == UP_INFINITY) {
			p->state = UP__P_WAITING_ACCEPT;
			up__sched_leave(p);
		} else {
			if (up__now_ns() >= p->deadline)
				return -ETIMEDOUT;
			int r = park_timed(s, p, UP__P_WAITING_ACCEPT);
			if (r < 0)
				return r;
		}
		s = up__self_sched;
	}
}

/* ------------------------------------------------------------ completion */

void up__io_complete(struct up__sched *s, uint64_t user_data, int res, unsigned flags)
{
	unsigned kind = user_data & (UP__IO_KINDS - 1);
	up_pid pid = (up_pid)(user_data >> 4);
	struct up__proc *p = up__slot_proc(up__pid_slot(pid));

	/* The slot is held (alive or zombie) while requests are in flight. */
	UP_ASSERT(p->pid == pid && p->io.inflight > 0);
	int done = 1; /* this CQE ends its request */
	switch (kind) {
	case UP__IO_OP:
		p->io.res = UP_FAULT_ERR(UP__F_CQE, res);
		p->io.op_due--;
		break;
	case UP__IO_TIMEOUT:
		if (res == -ETIME)
			p->io.timedout = 1;
		p->io.op_due--;
		break;
	case UP__IO_ACCEPT: {
		struct up__accept *a = p->io.acc;
		done = !(flags & IORING_CQE_F_MORE);
		int fe = res >= 0 ? up__fault(UP__F_ACCEPT_CQE) : 0;
		if (up_unlikely(fe)) { /* as if the kernel had failed it */
			close(res);
			res = fe;
		}
		if (res >= 0) {
			if (p->state == UP__P_ZOMBIE)
				close(res);
			else
				acc_push(p, a, res);
		} else if (res != -ECANCELED && p->state != UP__P_ZOMBIE) {
			a->err = res;
		}
		if (done)
			a->armed = 0;
		break;
	}
	default: /* UP__IO_CANCEL */
		break;
	}
	if (done) {
		p->io.inflight--;
		s->io_inflight--;
	}
	if (p->state == UP__P_ZOMBIE) {
		if (!p->io.inflight)
			up__proc_release(s, p);
	} else if ((p->state == UP__P_WAITING_IO && !p->io.op_due) ||
		   (p->state == UP__P_WAITING_ACCEPT && kind == UP__IO_ACCEPT)) {
		up__sched_make_runnable(s, p);
	}
}

void up__io_reap(struct up__sched *s)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&s->ring, head, cqe) {
		n++;
		if (cqe->user_data == UP__TAG_WAKE) {
			s->efd_armed = 0;
			UP__STAT(s, wakes, 1);
		} else if (up_unlikely(cqe->user_data == TAG_NOP)) {
			; /* a request withdrawn before submission */
		} else {
			up__io_complete(s, cqe->user_data, cqe->res, cqe->flags);
		}
	}
	io_uring_cq_advance(&s->ring, n);
	UP__STAT(s, io_completed, n);
}

void up__io_poll(struct up__sched *s)
{
	if (io_uring_sq_ready(&s->ring) || s->io_inflight) {
		(void)UP_FAULT_ERR(UP__F_SUBMIT, io_uring_submit_and_get_events(&s->ring));
		up__io_reap(s);
	}
}

void up__io_free(struct up__proc *p)
{
	if (p->io.owned)
		up__side_free(p, p->io.owned, p->io.cap_owned * sizeof(int));
	struct up__accept *a = p->io.acc;
	if (a) {
		up__side_free(p, a->q, a->cap * sizeof(int));
		up__side_free(p, a, sizeof(*a));
	}
	if (p->io.bounce)
		up__side_free(p, p->io.bounce, p->io.bounce_cap);
	p->io.bounce = NULL;
	p->io.bounce_cap = 0;
	p->io.owned = NULL;
	p->io.acc = NULL;
	p->io.nowned = p->io.cap_owned = 0;
}

int up__io_exit(struct up__sched *s, struct up__proc *p)
{
	for (uint32_t i = 0; i < p->io.nowned; i++)
		close(p->io.owned[i]);
	p->io.nowned = 0;
	struct up__accept *a = p->io.acc;
	if (a) {
		while (a->n) {
			close(a->q[a->head]);
			a->head = (a->head + 1) % a->cap;
			a->n--;
		}
	}
	if (!p->io.inflight || !s->ring_ok)
		return 0;
	/* Ended while parked on a request (or with an accept armed): cancel;
	 * the region stays ours until the kernel has answered everything. */
	(void)cancel_kind(s, p, UP__IO_OP);
	if (a && a->armed)
		(void)cancel_kind(s, p, UP__IO_ACCEPT);
	return 1;
}
