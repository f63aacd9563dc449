/*
 * test_fault.c - the fault-injection sweep (built when fault_injection is
 * on; see src/fault.h and docs/design.md, "Fault injection").
 *
 * One test per site of enum up__fault_site, made by iterating the enum: a
 * site without a case, or whose case never made it fail, fails the suite.
 * Each case arms its site, drives a workload that reaches it and checks
 * what the caller sees (the documented errno, a transparent retry, or a
 * clean exit a monitor or link observes).  Then, in the same run: the
 * bystander (a process that was there before the fault) still answers,
 * a fresh spawn still works, and the live-process count comes back to
 * main + bystander (no process or zombie left: credits are exact with
 * max_processes < 65536); up_run returns 0 and the descriptor count is
 * back where it was.  Memory leaks: LeakSanitizer in the sanitizer build.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fault.h"
#include "region.h"
#include "runtime.h"

#define MAXP 60000 /* < 65536: exact live accounting */
#define TMO ((int64_t)2000 * MS)

static int run_sites(up_fn fn, unsigned schedulers)
{
	struct up_run_opts o = run_opts(schedulers);
	o.max_processes = MAXP;
	o.spin_us = UP_NO_SPIN; /* idle at once: reaches the sleep path */
	return up_run(fn, NULL, &o);
}

/* ------------------------------------------------------------ processes */

static up_pid main_pid;

/* Answers word w with w + 1 to main; ends on 0. */
static void echo(void *arg)
{
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0) {
		if (m.kind != UP_MSG_WORD) {
			up_msg_free(&m);
			continue;
		}
		if (m.word == 0)
			return;
		up_send_word(main_pid, m.word + 1);
	}
}

static int is_word(const struct up_msg *m, void *arg)
{
	return m->kind == UP_MSG_WORD && m->word == *(uint64_t *)arg;
}

/* Send w to pid and expect w + 1 back. */
static int round_trip(up_pid pid, uint64_t w)
{
	struct up_msg m;
	uint64_t want = w + 1;
	int r = up_send_word(pid, w);
	if (r != 0)
		return r;
	return up_recv_match(is_word, &want, &m, WAIT_NS, 0);
}

/* Waits forever (until an exit signal). */
static void waiter(void *arg)
{
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0)
		up_msg_free(&m);
}

/* Receives words and counts them in *arg; ends on 0. */
static _Atomic long counted;
static void counter(void *arg)
{
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0) {
		if (m.kind == UP_MSG_WORD && m.word == 0)
			return;
		atomic_fetch_add(&counted, 1);
		up_msg_free(&m);
	}
}

/* The DOWN message of ref; its reason, or UP_NIL on timeout. */
static up_term await_down(up_term ref)
{
	struct down_arg d = { ref };
	struct up_msg m;
	if (up_recv_match(match_down, &d, &m, WAIT_NS, 0) != 0)
		return UP_NIL;
	up_term reason = el(m.term, 4);
	/* atoms are immediates: valid after the free */
	up_msg_free(&m);
	return reason;
}

/* A tuple of n boxed elements (the copy's work stack outgrows 64). */
static up_term wide(int n)
{
	up_term e[128];
	for (int i = 0; i < n; i++)
		e[i] = up_tuplev(2, up_int(i), up_atom("x"));
	return up_tuple((size_t)n, e);
}

static int pipe_pair(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

/* ----------------------------------------------------------- the cases */

/* Each in-run body arms its site, drives the workload, checks outcomes
 * with PCHECK and disarms. */

static void c_guard(void)
{
	up__fault_arm(UP__F_GUARD, 1, 1, -ENOMEM);
	up_pid r = up_spawn(waiter, NULL);
	PCHECK_EQ(r, -ENOMEM);
	PCHECK_EQ(up__fault_fired(UP__F_GUARD), 1);
	/* The slot came back unmarked: the next spawn installs its guard. */
	up_pid p = up_spawn(waiter, NULL);
	PCHECK(p > 0);
	if (p > 0) {
		uint32_t slot = up__pid_slot(p), i = slot & (UP__CHUNK_SLOTS - 1);
		struct up__chunk *ch = up__regions.chunk[slot >> UP__CHUNK_BITS];
		PCHECK(ch->guarded[i / 64] & (1ull << (i % 64)));
		PCHECK(up__fault_hits(UP__F_GUARD) >= 2);
		up_exit(p, UP_KILL);
	}
}

static void c_heap_map(void)
{
	up__fault_arm(UP__F_HEAP_MAP, 1, UP__FAULT_ALWAYS, -ENOMEM);
	PCHECK(up_alloc(1 << 20) == NULL);
	static char big[200000];
	up_term b = up_binary(big, sizeof big);
	PCHECK_EQ(up_term_error(b), -ENOMEM);
	up__fault_disarm(UP__F_HEAP_MAP);
	PCHECK(up_alloc(1 << 20) != NULL);
}

static void c_node_alloc(up_pid by)
{
	up_pid w = up_spawn(waiter, NULL);
	up__fault_arm(UP__F_NODE_ALLOC, 1, UP__FAULT_ALWAYS, -ENOMEM);
	PCHECK_EQ(up_send(by, up_tuplev(2, up_atom("a"), up_int(1))), -ENOMEM);
	PCHECK_EQ(up_link(w), -ENOMEM);
	PCHECK_EQ(up_put(up_atom("k"), up_tuplev(1, up_int(2))), -ENOMEM);
	up__fault_disarm(UP__F_NODE_ALLOC);
	PCHECK_EQ(up_link(w), 0);
	up_unlink(w);
	up_exit(w, UP_KILL);
}

static void c_msg_node(up_pid by)
{
	up_pid c = up_spawn(counter, NULL);
	up__fault_arm(UP__F_MSG_NODE, 1, 1, -ENOMEM);
	PCHECK_EQ(up_send_word(c, 7), -ENOMEM);
	up__fault_arm(UP__F_MSG_NODE, 1, 1, -ENOMEM);
	PCHECK_EQ(up_send(c, up_int(8)), -ENOMEM);
	PCHECK_EQ(up__fault_fired(UP__F_MSG_NODE), 2);
	PCHECK_EQ(up_send_word(c, 9), 0);
	up_term ref = up_monitor(c);
	up_send_word(c, 0);
	PCHECK_TERM(await_down(ref), UP_NORMAL);
	PCHECK_EQ(atomic_load(&counted), 1); /* only the message accepted */
}

static void c_msg_buffer(up_pid by)
{
	up_pid c = up_spawn(counter, NULL);
	up__fault_arm(UP__F_MSG_BUFFER, 1, 1, -ENOMEM);
	PCHECK_EQ(up_send(c, up_tuplev(2, up_atom("t"), up_int(1))), -ENOMEM);
	PCHECK_EQ(up_send(c, up_tuplev(2, up_atom("t"), up_int(2))), 0);
	up_term ref = up_monitor(c);
	up_send_word(c, 0);
	PCHECK_TERM(await_down(ref), UP_NORMAL);
	PCHECK_EQ(atomic_load(&counted), 1);
}

static void c_copy_stack(up_pid by)
{
	up_term t = wide(100);
	PCHECK(!up_is_bad(t));
	/* Counting fails. */
	up__fault_arm(UP__F_COPY_STACK, 1, 1, -ENOMEM);
	PCHECK_EQ(up_send(by, t), -ENOMEM);
	/* Counting passes, the copy fails: the buffer is freed (dict). */
	up__fault_arm(UP__F_COPY_STACK, 2, 1, -ENOMEM);
	PCHECK_EQ(up_put(up_atom("k"), t), -ENOMEM);
	up_term v;
	PCHECK_EQ(up_get(up_atom("k"), &v), -ENOENT);
	up__fault_arm(UP__F_COPY_STACK, 2, 1, -ENOMEM);
	PCHECK_EQ(up_send(by, t), -ENOMEM);
	PCHECK_EQ(up__fault_fired(UP__F_COPY_STACK), 3);
	PCHECK_EQ(up_put(up_atom("k"), t), 0);
	PCHECK_EQ(up_get(up_atom("k"), &v), 0);
	PCHECK(up_equal(v, t));
}

/* Spawns one child with LINK|MONITOR, the nth side allocation failing. */
static void spawn_linked_nth(void *arg)
{
	uint64_t nth = (uint64_t)(uintptr_t)arg;
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_LINK | UP_SPAWN_MONITOR;
	uint64_t before = up__fault_fired(UP__F_SIDE_ALLOC);
	up__fault_arm(UP__F_SIDE_ALLOC, nth, 1, -ENOMEM);
	up_pid p = up_spawn_opt(waiter, NULL, &o);
	up__fault_disarm(UP__F_SIDE_ALLOC);
	if (up__fault_fired(UP__F_SIDE_ALLOC) > before) {
		PCHECK_EQ(p, -ENOMEM);
	} else {
		PCHECK(p > 0);
		up_unlink(p);
		up_demonitor(o.monitor_ref, UP_DEMONITOR_FLUSH);
		up_exit(p, UP_KILL);
	}
	/* The parent is left with no trace of the child: a fresh link and
	 * exit behave. */
	up_trap_exit(1);
	up_pid q = up_spawn(waiter, NULL);
	PCHECK_EQ(up_link(q), 0);
	up_exit(q, UP_KILL);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK(is_tagged(m.term, A("EXIT"), 3) && el(m.term, 1) == up_pid_term(q));
	up_msg_free(&m);
}

static void c_side_alloc(up_pid by)
{
	up_pid w = up_spawn(waiter, NULL);
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	PCHECK_EQ(up_link(w), -ENOMEM);
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	PCHECK_EQ(up_term_error(up_monitor(w)), -ENOMEM);
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	PCHECK_EQ(up_put(up_atom("k"), up_int(1)), -ENOMEM);
	int d = dup(2);
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	PCHECK_EQ(up_io_own(d), -ENOMEM);
	close(d);

	/* The receiver of a LINK cannot record it: it dies (killed) and the
	 * linker hears of it.  Main's tables have room, w's link table is
	 * still unallocated. */
	up_pid dummy = up_spawn(waiter, NULL);
	PCHECK_EQ(up_link(dummy), 0);
	up_term ref0 = up_monitor(dummy);
	up_trap_exit(1);
	up_term mref = up_monitor(w);
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	PCHECK_EQ(up_link(w), 0);
	struct up_msg m;
	PCHECK_TERM(await_down(mref), UP_KILLED);
	int got = 0;
	while (up_recv(&m, WAIT_NS) == 0) {
		if (m.kind == UP_MSG_TERM && is_tagged(m.term, A("EXIT"), 3) &&
		    el(m.term, 1) == up_pid_term(w)) {
			PCHECK_TERM(el(m.term, 2), UP_KILLED);
			got = 1;
			up_msg_free(&m);
			break;
		}
		up_msg_free(&m);
	}
	PCHECK(got);

	/* The target of a MONITOR cannot record it: DOWN noproc. */
	up_pid w2 = up_spawn(waiter, NULL);
	up_yield(); /* let it run (its tables stay empty) */
	up__fault_arm(UP__F_SIDE_ALLOC, 1, 1, -ENOMEM);
	up_term ref = up_monitor(w2);
	PCHECK(!up_is_bad(ref));
	PCHECK_TERM(await_down(ref), UP_NOPROC);
	PCHECK_EQ(up_alive(w2), 1);
	up_exit(w2, UP_KILL);
	up_unlink(dummy);
	up_demonitor(ref0, UP_DEMONITOR_FLUSH);
	up_exit(dummy, UP_KILL);
	up_trap_exit(0);

	/* Spawn with link and monitor, each of its side allocations failing
	 * in turn (in a fresh parent each time). */
	for (uintptr_t nth = 1; nth <= 4; nth++) {
		struct up_spawn_opts o = spawn_opts();
		o.flags = UP_SPAWN_MONITOR;
		up_pid h = up_spawn_opt(spawn_linked_nth, (void *)nth, &o);
		PCHECK_TERM(await_down(o.monitor_ref), UP_NORMAL);
		(void)h;
	}
	up_exit(w, UP_KILL);
}

static void c_timer(up_pid by)
{
	/* The first timed wait of the run grows the scheduler's timer heap. */
	up__fault_arm(UP__F_TIMER, 1, UP__FAULT_ALWAYS, -ENOMEM);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, 10 * MS), -ENOMEM);
	PCHECK_EQ(up_sleep(MS), -ENOMEM);
	up__fault_disarm(UP__F_TIMER);
	int64_t t0 = now_ns();
	PCHECK_EQ(up_sleep(5 * MS), 0);
	PCHECK(now_ns() - t0 >= 5 * MS);
	PCHECK_EQ(up_recv(&m, 5 * MS), -ETIMEDOUT);
}

static void c_remote_req(up_pid by)
{
	struct up_spawn_opts o = spawn_on(1);
	up__fault_arm(UP__F_REMOTE_REQ, 1, 1, -ENOMEM);
	PCHECK_EQ(up_spawn_opt(counter, NULL, &o), -ENOMEM);
	up_pid c = up_spawn_opt(counter, NULL, &o);
	PCHECK(c > 0);
	proc_pause_ns(50 * MS); /* it parks in its receive */
	/* The wake request of a send to the parked process fails: the send
	 * fails as a whole (the message is not left unannounced). */
	up__fault_arm(UP__F_REMOTE_REQ, 1, 1, -ENOMEM);
	PCHECK_EQ(up_send_word(c, 5), -ENOMEM);
	PCHECK_EQ(up__fault_fired(UP__F_REMOTE_REQ), 2);
	PCHECK_EQ(up_send_word(c, 6), 0);
	up_term ref = up_monitor(c);
	up_send_word(c, 0);
	PCHECK_TERM(await_down(ref), UP_NORMAL);
	PCHECK_EQ(atomic_load(&counted), 1);
}

static void c_sqe(up_pid by)
{
	int fds[2];
	char buf[64], in[64];
	memset(buf, 'q', sizeof buf);
	PCHECK_EQ(pipe_pair(fds), 0);
	/* One NULL: a submit and the retry hide it. */
	up__fault_arm(UP__F_SQE, 1, 1, -ENOMEM);
	PCHECK_EQ(up_io_write(fds[1], buf, 10, UP_INFINITY), 10);
	/* Two: -EAGAIN, nothing written. */
	up__fault_arm(UP__F_SQE, 1, 2, -ENOMEM);
	PCHECK_EQ(up_io_write(fds[1], buf, 10, UP_INFINITY), -EAGAIN);
	/* The linked timeout's SQE: the op is withdrawn (a NOP). */
	up__fault_arm(UP__F_SQE, 2, 1, -ENOMEM);
	PCHECK_EQ(up_io_write(fds[1], buf, 10, TMO), -EAGAIN);
	PCHECK_EQ(up__fault_fired(UP__F_SQE), 4);
	PCHECK_EQ(up_io_write(fds[1], buf, 5, TMO), 5);
	/* Exactly the 15 bytes of the two writes that succeeded. */
	PCHECK_EQ(up_io_read(fds[0], in, sizeof in, TMO), 15);
	up_io_close(fds[0]);
	up_io_close(fds[1]);
}

static void c_wake_sqe(up_pid by)
{
	/* Nothing has made this scheduler idle yet: the sleep does, without
	 * its eventfd read three times (it polls again instead). */
	up__fault_arm(UP__F_WAKE_SQE, 1, 3, -ENOMEM);
	int64_t t0 = now_ns();
	PCHECK_EQ(up_sleep(20 * MS), 0);
	PCHECK(now_ns() - t0 >= 20 * MS);
	PCHECK(up__fault_fired(UP__F_WAKE_SQE) >= 1);
}

static void c_submit(up_pid by)
{
	static const int errs[] = { -EAGAIN, -EBUSY, -ENOMEM };
	int fds[2];
	char buf[100], in[100];
	PCHECK_EQ(pipe_pair(fds), 0);
	for (unsigned i = 0; i < 3; i++) {
		memset(buf, 'a' + (int)i, sizeof buf);
		up__fault_arm(UP__F_SUBMIT, 1, 3, errs[i]);
		PCHECK_EQ(up_io_write(fds[1], buf, sizeof buf, TMO), (long)sizeof buf);
		PCHECK_EQ(up_io_read(fds[0], in, sizeof in, TMO), (long)sizeof in);
		PCHECK(memcmp(in, buf, sizeof in) == 0);
	}
	PCHECK(up__fault_fired(UP__F_SUBMIT) >= 3);
	up_io_close(fds[0]);
	up_io_close(fds[1]);
}

static void c_cqe(up_pid by)
{
	static const int errs[] = { -ENOMEM, -EAGAIN, -ECANCELED };
	int fds[2];
	char buf[10] = "0123456789", in[10];
	PCHECK_EQ(pipe_pair(fds), 0);
	for (unsigned i = 0; i < 3; i++) {
		up__fault_arm(UP__F_CQE, 1, 1, errs[i]);
		PCHECK_EQ(up_io_write(fds[1], buf, sizeof buf, UP_INFINITY), errs[i]);
		PCHECK_EQ(up_io_read(fds[0], in, sizeof in, TMO), 10); /* it was written */
		PCHECK_EQ(write(fds[1], buf, 10), 10);
		up__fault_arm(UP__F_CQE, 1, 1, errs[i]);
		PCHECK_EQ(up_io_read(fds[0], in, sizeof in, TMO), errs[i]);
		/* the bytes that read took are gone, as with a real error */
	}
	PCHECK_EQ(up__fault_fired(UP__F_CQE), 6);
	PCHECK_EQ(up_io_write(fds[1], buf, 4, TMO), 4);
	PCHECK_EQ(up_io_read(fds[0], in, sizeof in, TMO), 4);
	up_io_close(fds[0]);
	up_io_close(fds[1]);
}

static int tcp_listener(struct sockaddr_in *a)
{
	socklen_t len = sizeof *a;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof *a) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)a, &len) != 0)
		return -1;
	return fd;
}

static int tcp_client(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (const struct sockaddr *)a, sizeof *a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void c_accept_cqe(up_pid by)
{
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	PCHECK(l >= 0);
	up_io_own(l);
	int c1 = tcp_client(&a);
	PCHECK(c1 >= 0);
	up__fault_arm(UP__F_ACCEPT_CQE, 1, 1, -ENOMEM);
	PCHECK_EQ(up_io_accept(l, NULL, NULL, TMO), -ENOMEM);
	/* The connection was dropped (its descriptor closed): c1 sees EOF. */
	char ch;
	PCHECK(up_io_read(c1, &ch, 1, TMO) <= 0);
	int c2 = tcp_client(&a);
	PCHECK(c2 >= 0);
	int s = up_io_accept(l, NULL, NULL, TMO);
	PCHECK(s >= 0);
	PCHECK_EQ(up_io_write(c2, "z", 1, TMO), 1);
	PCHECK_EQ(up_io_read(s, &ch, 1, TMO), 1);
	close(s);
	close(c1);
	close(c2);
	/* l is owned: closed at exit; the armed accept is cancelled then. */
}

#define SW_LEN (64 * 1024)
static void sw_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static unsigned char in[4096];
	size_t got = 0;
	while (got < 2 * SW_LEN) {
		ssize_t n = up_io_read(fd, in, sizeof in, WAIT_NS);
		if (n <= 0) {
			PFAIL("reader: %zd after %zu bytes", n, got);
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (in[i] != (unsigned char)((got + (size_t)i) % 251)) {
				PFAIL("byte %zu wrong", got + (size_t)i);
				n = 0;
				break;
			}
		got += (size_t)n;
	}
	up_send_word(main_pid, 4242);
}

static void c_short_write(up_pid by)
{
	int sv[2];
	static unsigned char out[2 * SW_LEN];
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (unsigned char)(i % 251);
	PCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	up_spawn(sw_reader, (void *)(intptr_t)sv[1]);
	up__fault_arm(UP__F_SHORT_WRITE, 1, UP__FAULT_ALWAYS, 0);
	PCHECK_EQ(up_io_write(sv[0], out, SW_LEN, TMO), SW_LEN);
	PCHECK_EQ(up_io_send(sv[0], out + SW_LEN, SW_LEN, 0, TMO), SW_LEN);
	PCHECK(up__fault_fired(UP__F_SHORT_WRITE) >= 16); /* halved each time */
	up__fault_disarm(UP__F_SHORT_WRITE);
	struct up_msg m;
	uint64_t w = 4242;
	PCHECK_EQ(up_recv_match(is_word, &w, &m, WAIT_NS, 0), 0);
	close(sv[0]);
	close(sv[1]);
}

/* --------------------------------------------------- cases at up_run */

static void noop(void *arg) {}

/* up_run itself fails with -ENOMEM, leaving nothing behind. */
static void run_fails(enum up__fault_site site, uint64_t nth, unsigned schedulers)
{
	up__fault_arm(site, nth, UP__FAULT_ALWAYS, -ENOMEM);
	assert_int_equal(run_sites(noop, schedulers), -ENOMEM);
	up__fault_disarm(site);
	assert_true(up__fault_fired(site) >= 1);
}

static void r_chunk_map(void) { run_fails(UP__F_CHUNK_MAP, 1, 1); }
static void r_node_alloc(void) { run_fails(UP__F_NODE_ALLOC, 1, 1); }
static void r_ring_setup(void)
{
	run_fails(UP__F_RING_SETUP, 1, 1);
	run_fails(UP__F_RING_SETUP, 2, 2); /* the second scheduler's */
}

/* A spawn past the first chunk's 4096 slots needs a second chunk.  The
 * cache refill that first meets the end of the chunk takes what is left
 * (the first failure is absorbed); the next refill finds nothing. */
static void c_chunk_map(up_pid by)
{
	static up_pid kids[UP__CHUNK_SLOTS + 64];
	int n = 0, failed = 0;
	up__fault_arm(UP__F_CHUNK_MAP, 1, 2, -ENOMEM);
	while (n < (int)(sizeof kids / sizeof kids[0])) {
		up_pid p = up_spawn(waiter, NULL);
		if (p < 0) {
			PCHECK_EQ(p, -ENOMEM);
			failed = 1;
			break;
		}
		kids[n++] = p;
	}
	if (!failed)
		PFAIL("no spawn failed: %d spawned, chunk hits %llu", n,
		      (unsigned long long)up__fault_hits(UP__F_CHUNK_MAP));
	PCHECK(n >= (int)UP__CHUNK_SLOTS - 70);
	up_pid p = up_spawn(waiter, NULL); /* the retry maps the chunk */
	PCHECK(p > 0);
	if (p > 0)
		up_exit(p, UP_KILL);
	for (int i = 0; i < n; i++)
		up_exit(kids[i], UP_KILL);
}

/* A compact process waiting with 3 KiB of frames (past its slot's save
 * area): when another compact process needs the shared stack, its frames
 * need a block.  Without one it ends with reason no_memory. */
static void big_frames(void *arg)
{
	(void)arg;
	volatile char frame[3000];
	frame[0] = 1;
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(frame[0], 1);
}

static void c_save_block(up_pid by)
{
	(void)by;
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_COMPACT;
	up_pid big = up_spawn_opt(big_frames, NULL, &o);
	up_term ref = up_monitor(big);
	up_yield(); /* big waits, its frames on the shared stack */
	up__fault_arm(UP__F_SAVE_BLOCK, 1, 1, -ENOMEM);
	up_pid other = up_spawn_opt(waiter, NULL, &o);
	PCHECK(other > 0);
	PCHECK_TERM(await_down(ref), UP_NO_MEMORY);
	/* The one that took the stack is fine, and the next save works. */
	up_pid big2 = up_spawn_opt(big_frames, NULL, &o);
	up_term ref2 = up_monitor(big2);
	up_yield();
	up_pid other2 = up_spawn_opt(waiter, NULL, &o);
	up_yield();
	PCHECK_EQ(up_send_word(big2, 1), 0);
	PCHECK_TERM(await_down(ref2), UP_NORMAL);
	PCHECK_EQ(up_exit(other, UP_KILL), 0);
	PCHECK_EQ(up_exit(other2, UP_KILL), 0);
}

/* ----------------------------------------------------------- the sweep */

struct fcase {
	void (*before)(void);       /* up_run-level checks (test thread) */
	void (*body)(up_pid by);    /* inside main, beside the bystander */
	unsigned schedulers;
};

static void c_guard_by(up_pid by) { c_guard(); }
static void c_heap_map_by(up_pid by) { c_heap_map(); }

static const struct fcase cases[UP__F_COUNT] = {
	[UP__F_CHUNK_MAP] = { r_chunk_map, c_chunk_map, 1 },
	[UP__F_GUARD] = { NULL, c_guard_by, 1 },
	[UP__F_HEAP_MAP] = { NULL, c_heap_map_by, 1 },
	[UP__F_NODE_ALLOC] = { r_node_alloc, c_node_alloc, 1 },
	[UP__F_MSG_NODE] = { NULL, c_msg_node, 1 },
	[UP__F_MSG_BUFFER] = { NULL, c_msg_buffer, 1 },
	[UP__F_COPY_STACK] = { NULL, c_copy_stack, 1 },
	[UP__F_SIDE_ALLOC] = { NULL, c_side_alloc, 1 },
	[UP__F_TIMER] = { NULL, c_timer, 1 },
	[UP__F_REMOTE_REQ] = { NULL, c_remote_req, 2 },
	[UP__F_SQE] = { NULL, c_sqe, 1 },
	[UP__F_WAKE_SQE] = { NULL, c_wake_sqe, 1 },
	[UP__F_SUBMIT] = { NULL, c_submit, 1 },
	[UP__F_CQE] = { NULL, c_cqe, 1 },
	[UP__F_ACCEPT_CQE] = { NULL, c_accept_cqe, 1 },
	[UP__F_SHORT_WRITE] = { NULL, c_short_write, 1 },
	[UP__F_RING_SETUP] = { r_ring_setup, NULL, 1 },
	[UP__F_SAVE_BLOCK] = { NULL, c_save_block, 1 },
};

static enum up__fault_site cur_site;

static int is_down(const struct up_msg *m, void *arg)
{
	return m->kind == UP_MSG_TERM && is_tagged(m->term, A("DOWN"), 5);
}

static void site_main(void *arg)
{
	main_pid = up_self();
	atomic_store(&counted, 0);
	/* The bystander: there before the fault, checked after it. */
	up_pid by = up_spawn(echo, NULL);
	PCHECK(by > 0);
	const struct fcase *c = &cases[cur_site];
	if (c->body)
		c->body(by);
	up__fault_off();
	/* DOWN messages the case left unread hold nothing: drop them. */
	struct up_msg m;
	while (up_recv_match(is_down, NULL, &m, 0, 0) == 0)
		up_msg_free(&m);
	/* The runtime goes on: the bystander answers, a new process works. */
	PCHECK_EQ(round_trip(by, 100), 0);
	up_pid fresh = up_spawn(echo, NULL);
	PCHECK(fresh > 0);
	PCHECK_EQ(round_trip(fresh, 200), 0);
	up_send_word(fresh, 0);
	/* Nothing left: every process and zombie of the case is gone. */
	int64_t deadline = now_ns() + WAIT_NS;
	int64_t live;
	while ((live = __atomic_load_n(&up__rt.live, __ATOMIC_ACQUIRE)) != 2 &&
	       now_ns() < deadline)
		up_sleep(MS);
	PCHECK_EQ(live, 2);
	up_send_word(by, 0);
}

static void test_site(void **state)
{
	enum up__fault_site site = (enum up__fault_site)(uintptr_t)*state;
	const struct fcase *c = &cases[site];
	int fds = fd_count();

	if (!c->before && !c->body)
		fail_msg("site %s has no case in the sweep", up__fault_name(site));
	cur_site = site;
	up__fault_reset();
	if (c->before)
		c->before();
	assert_int_equal(fd_count(), fds);
	assert_int_equal(run_sites(site_main, c->schedulers), 0);
	up__fault_off();
	assert_no_pfail();
	if (up__fault_fired(site) == 0)
		fail_msg("site %s: never failed (hits: %" PRIu64 ")", up__fault_name(site),
			 up__fault_hits(site));
	assert_int_equal(fd_count(), fds);
}

int main(void)
{
	static struct CMUnitTest tests[UP__F_COUNT];
	for (int i = 0; i < UP__F_COUNT; i++)
		tests[i] = (struct CMUnitTest){
			.name = up__fault_name(i),
			.test_func = test_site,
			.setup_func = upt_setup,
			.initial_state = (void *)(uintptr_t)i,
		};
	return UPT_RUN("fault", tests);
}
