/*
 * test_shared_stack.c - compact processes (UP_SPAWN_COMPACT,
 * src/shared_stack.c): their frames survive every kind of switch (compact
 * to compact through the scheduler, own stack to compact, compact to own
 * stack), small frames in the slot and large ones in a block; the errors;
 * stack overflow on the shared stack; I/O with buffers on the shared stack
 * while other compact processes overwrite it; kills and exits; two
 * schedulers; the heap of a process without an in-slot heap.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define COMPACT_SLOT 1344

static struct up_spawn_opts compact_opts(void)
{
	struct up_spawn_opts o = spawn_opts();
	o.flags = UP_SPAWN_COMPACT;
	return o;
}

static struct up_spawn_opts compact_on(int scheduler)
{
	struct up_spawn_opts o = spawn_on(scheduler);
	o.flags |= UP_SPAWN_COMPACT;
	return o;
}

/* A byte of the pattern a process keeps in its frames. */
static inline unsigned char pat(uint64_t seed, size_t i, uint64_t round)
{
	return (unsigned char)((seed * 131 + i * 7 + round * 13) ^ (i >> 3));
}

/* Fill frame bytes [0, n) for round r; check them. */
static __attribute__((noinline)) void fill(volatile unsigned char *b, size_t n, uint64_t seed, uint64_t r)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(seed, i, r);
}

static __attribute__((noinline)) int intact(volatile unsigned char *b, size_t n, uint64_t seed, uint64_t r)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pat(seed, i, r))
			return 0;
	return 1;
}

/* ------------------------------------------------------- frames survive */

enum { ROUNDS = 40 };

struct worker {
	up_pid main;
	size_t frame;      /* bytes of pattern kept on its stack */
	uint64_t seed;
};

/* Each round: wait for a word, check the pattern of the last round, write
 * this round's, answer.  The frame size decides where the frames are saved
 * (the slot's area or a block). */
static __attribute__((noinline)) void work(struct worker *w, volatile unsigned char *frame)
{
	fill(frame, w->frame, w->seed, 0);
	for (uint64_t r = 1; r <= ROUNDS; r++) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("worker %" PRIu64 ": no word in round %" PRIu64, w->seed, r);
			return;
		}
		PCHECK_EQ(m.word, r);
		if (!intact(frame, w->frame, w->seed, r - 1))
			PFAIL("worker %" PRIu64 " (frame %zu): frames changed before round %" PRIu64,
			      w->seed, w->frame, r);
		fill(frame, w->frame, w->seed, r);
		PCHECK_EQ(up_send_word(w->main, w->seed), 0);
	}
}

static void worker_small(void *arg)
{
	volatile unsigned char frame[200];
	work(arg, frame);
}

static void worker_large(void *arg)
{
	volatile unsigned char frame[6000];
	work(arg, frame);
}

struct mix { int n; unsigned sched; };

static void mix_main(void *arg)
{
	struct mix *x = arg;
	struct worker *w = calloc((size_t)x->n, sizeof *w);
	up_pid *pid = calloc((size_t)x->n, sizeof *pid);
	PCHECK(w && pid);
	for (int i = 0; i < x->n; i++) {
		/* Compact small, compact large, own stack: every pair of
		 * neighbours in the run queue is a different kind of switch. */
		struct up_spawn_opts o = x->sched > 1 ? compact_on(i % (int)x->sched) : compact_opts();
		if (i % 3 == 2)
			o.flags &= ~UP_SPAWN_COMPACT;
		w[i] = (struct worker){ up_self(), i % 3 == 1 ? 6000 : 200, (uint64_t)i + 1 };
		pid[i] = up_spawn_opt(i % 3 == 1 ? worker_large : worker_small, &w[i], &o);
		PCHECK(pid[i] > 0);
	}
	for (uint64_t r = 1; r <= ROUNDS; r++) {
		for (int i = 0; i < x->n; i++)
			PCHECK_EQ(up_send_word(pid[i], r), 0);
		uint64_t sum = 0;
		for (int i = 0; i < x->n; i++) {
			struct up_msg m;
			if (up_recv(&m, WAIT_NS) != 0) {
				PFAIL("round %" PRIu64 ": %d answers of %d", r, i, x->n);
				up_shutdown();
				return;
			}
			sum += m.word;
		}
		PCHECK_EQ(sum, (uint64_t)x->n * (x->n + 1) / 2);
	}
	for (int i = 0; i < x->n; i++)
		proc_wait_exit(pid[i]);
	free(w);
	free(pid);
}

static void test_frames_survive_switches(void **state)
{
	(void)state;
	struct mix x = { UPT_SCALE(300, 60), 1 };
	RUN_OK(mix_main, &x, 1);
}

static void test_frames_survive_two_schedulers(void **state)
{
	(void)state;
	struct mix x = { UPT_SCALE(300, 60), 2 };
	RUN_OK(mix_main, &x, 2);
}

/* A ring of compact processes: every hop is a compact-to-compact switch
 * (through the scheduler context), every process keeps a pattern. */
struct ring { up_pid main; up_pid *pid; int n; };
struct ring_arg { struct ring *ring; int i; };

static void ring_node(void *arg)
{
	struct ring_arg *a = arg;
	volatile unsigned char frame[300];
	uint64_t seed = (uint64_t)a->i * 977 + 5;
	uint64_t seen = 0;
	fill(frame, sizeof frame, seed, 0);
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("ring node %d: no token", a->i);
			return;
		}
		if (!intact(frame, sizeof frame, seed, seen))
			PFAIL("ring node %d: frames changed after %" PRIu64 " tokens", a->i, seen);
		fill(frame, sizeof frame, seed, ++seen);
		if (m.word == 0) {
			PCHECK_EQ(up_send_word(a->ring->main, seen), 0);
			return;
		}
		up_pid next = a->ring->pid[(a->i + 1) % a->ring->n];
		/* The last hop ends the lap at node 0, which then stops the
		 * others with zeros. */
		PCHECK_EQ(up_send_word(next, m.word - 1), 0);
	}
}

static void ring_main(void *arg)
{
	(void)arg;
	enum { N = 64, LAPS = 50 };
	struct ring r = { up_self(), calloc(N, sizeof(up_pid)), N };
	struct ring_arg *a = calloc(N, sizeof *a);
	struct up_spawn_opts o = compact_opts();
	for (int i = 0; i < N; i++) {
		a[i] = (struct ring_arg){ &r, i };
		r.pid[i] = up_spawn_opt(ring_node, &a[i], &o);
		PCHECK(r.pid[i] > 0);
	}
	/* N*LAPS hops, then node (N*LAPS) % N == 0 gets 0 and reports; then
	 * the others are sent 0. */
	PCHECK_EQ(up_send_word(r.pid[0], (uint64_t)N * LAPS), 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(m.word, LAPS + 1);
	for (int i = 1; i < N; i++) {
		PCHECK_EQ(up_send_word(r.pid[i], 0), 0);
		PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
		PCHECK_EQ(m.word, LAPS + 1);
	}
	for (int i = 0; i < N; i++)
		proc_wait_exit(r.pid[i]);
	free(r.pid);
	free(a);
}

static void test_ring_of_compact_processes(void **state)
{
	(void)state;
	RUN_OK(ring_main, NULL, 1);
}

/* --------------------------------------------------------------- errors */

static void idle_child(void *arg)
{
	(void)arg;
	struct up_msg m;
	(void)up_recv(&m, WAIT_NS);
}

static void spawner_on_shared_stack(void *arg)
{
	int local = 42;
	static int global;
	struct up_spawn_opts o = compact_opts();
	/* Its own frames: another process would read them after they moved. */
	PCHECK_EQ(up_spawn(idle_child, &local), -EFAULT);
	PCHECK_EQ(up_spawn_opt(idle_child, &local, &o), -EFAULT);
	/* Anything else is fine. */
	up_pid a = up_spawn(idle_child, &global);
	up_pid b = up_spawn_opt(idle_child, arg, &o);
	PCHECK(a > 0 && b > 0);
	PCHECK_EQ(up_send_word(a, 1), 0);
	PCHECK_EQ(up_send_word(b, 1), 0);
	PCHECK_EQ(up_send_word((up_pid)(intptr_t)arg, 7), 0);
}

static void errors_main(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = compact_opts();
	o.stack_size = 16384;
	PCHECK_EQ(up_spawn_opt(idle_child, NULL, &o), -EINVAL);

	o = compact_opts();
	up_pid c = up_spawn_opt(idle_child, NULL, &o);
	PCHECK(c > 0);
	struct up_info info;
	PCHECK_EQ(up_info(c, &info), 0);
	PCHECK_EQ(info.region_bytes, COMPACT_SLOT);
	PCHECK_EQ(info.stack_bytes, 64 * 1024); /* the shared stack */
	up_pid own = up_spawn(idle_child, NULL);
	PCHECK_EQ(up_info(own, &info), 0);
	PCHECK(info.region_bytes > COMPACT_SLOT);
	PCHECK_EQ(up_send_word(c, 1), 0);
	PCHECK_EQ(up_send_word(own, 1), 0);

	/* From a process with a stack of its own, a pointer to its stack is
	 * its business (it stays put). */
	int local = 1;
	up_pid d = up_spawn_opt(idle_child, &local, &o);
	PCHECK(d > 0);
	PCHECK_EQ(up_send_word(d, 1), 0);

	up_pid s = up_spawn_opt(spawner_on_shared_stack, (void *)(intptr_t)up_self(), &o);
	PCHECK(s > 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(m.word, 7);
}

static void test_errors(void **state)
{
	(void)state;
	RUN_OK(errors_main, NULL, 1);
}

/* ------------------------------------------------------------- overflow */

static void overflower(void *arg)
{
	(void)arg;
	stack_deep(0);
}

static void keeper(void *arg)
{
	struct worker *w = arg;
	volatile unsigned char frame[1500];
	fill(frame, sizeof frame, w->seed, 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK(intact(frame, sizeof frame, w->seed, 0));
	PCHECK_EQ(up_send_word(w->main, 99), 0);
}

static void overflow_main(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = compact_opts();
	struct worker w = { up_self(), 0, 1234 };
	up_pid k = up_spawn_opt(keeper, &w, &o);
	PCHECK(k > 0);
	up_yield(); /* the keeper waits, its frames on the shared stack */
	for (int i = 0; i < 3; i++) {
		up_pid v = up_spawn_opt(overflower, NULL, &o);
		up_term ref = up_monitor(v);
		struct down_arg d = { ref };
		struct up_msg m;
		PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
		PCHECK(el(m.term, 4) == UP_STACK_OVERFLOW);
		up_msg_free(&m);
	}
	PCHECK_EQ(up_send_word(k, 1), 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(m.word, 99);
}

static void test_stack_overflow(void **state)
{
	(void)state;
	RUN_OK(overflow_main, NULL, 1);
}

/* ------------------------------------------------------------------ I/O */

/* Overwrites the shared stack below the top with garbage, then answers. */
static __attribute__((noinline)) void scribble_deep(int n)
{
	volatile unsigned char junk[4096];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(0xa5 ^ i ^ (unsigned)n);
	if (n > 0)
		scribble_deep(n - 1);
}

static void scribbler(void *arg)
{
	up_pid to = (up_pid)(intptr_t)arg;
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0 || m.word == 0)
			return;
		scribble_deep(8);
		PCHECK_EQ(up_send_word(to, 2), 0);
	}
}

struct io_case { up_pid main, scrib; int fd; struct sockaddr_in addr; };

/* A compact process reads into, writes from and connects with buffers on
 * the shared stack while another compact process overwrites that stack. */
static void io_user(void *arg)
{
	struct io_case *c = arg;
	char buf[3000];
	unsigned char out[5000];
	struct sockaddr_in addr = c->addr; /* on the shared stack */

	/* The scribbler runs as soon as this process waits. */
	PCHECK_EQ(up_send_word(c->scrib, 1), 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	PCHECK(fd >= 0);
	PCHECK_EQ(up_io_connect(fd, (struct sockaddr *)&addr, sizeof addr, WAIT_NS), 0);

	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (unsigned char)(i * 31 + 7);
	PCHECK_EQ(up_send_word(c->scrib, 1), 0);
	PCHECK_EQ(up_io_send(fd, out, sizeof out, 0, WAIT_NS), (ssize_t)sizeof out);

	/* The peer echoes; read it back into a stack buffer. */
	size_t got = 0;
	while (got < sizeof out) {
		PCHECK_EQ(up_send_word(c->scrib, 1), 0);
		ssize_t r = up_io_recv(fd, buf, sizeof buf, 0, WAIT_NS);
		if (r <= 0) {
			PFAIL("recv: %zd", r);
			break;
		}
		for (ssize_t i = 0; i < r; i++)
			if ((unsigned char)buf[i] != out[got + (size_t)i]) {
				PFAIL("byte %zu came back as %u", got + (size_t)i, (unsigned char)buf[i]);
				break;
			}
		got += (size_t)r;
	}
	close(fd);
	PCHECK_EQ(up_send_word(c->main, 3), 0);
}

static void echo_peer(void *arg)
{
	struct io_case *c = arg;
	int s = up_io_accept(c->fd, NULL, NULL, WAIT_NS);
	PCHECK(s >= 0);
	char *b = malloc(65536);
	ssize_t r;
	while ((r = up_io_recv(s, b, 65536, 0, WAIT_NS)) > 0)
		PCHECK_EQ(up_io_send(s, b, (size_t)r, 0, WAIT_NS), r);
	free(b);
	close(s);
}

static void io_main(void *arg)
{
	struct io_case *c = arg;
	struct up_spawn_opts o = compact_opts();
	c->main = up_self();
	up_pid peer = up_spawn(echo_peer, c);
	c->scrib = up_spawn_opt(scribbler, (void *)(intptr_t)up_self(), &o);
	up_pid u = up_spawn_opt(io_user, c, &o);
	PCHECK(peer > 0 && c->scrib > 0 && u > 0);
	int done = 0;
	while (!done) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			PFAIL("the I/O user did not finish");
			up_shutdown();
			return;
		}
		done = m.word == 3;
	}
	PCHECK_EQ(up_send_word(c->scrib, 0), 0);
	proc_wait_exit(peer);
}

static void test_io_buffers_on_the_shared_stack(void **state)
{
	(void)state;
	struct io_case c;
	memset(&c, 0, sizeof c);
	int one = 1;
	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.fd >= 0);
	c.addr.sin_family = AF_INET;
	c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof c.addr;
	setsockopt(c.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	assert_int_equal(bind(c.fd, (struct sockaddr *)&c.addr, sizeof c.addr), 0);
	assert_int_equal(listen(c.fd, 4), 0);
	assert_int_equal(getsockname(c.fd, (struct sockaddr *)&c.addr, &len), 0);
	RUN_OK(io_main, &c, 1);
	close(c.fd);
}

/* A compact process killed while parked in a receive on a socket (a
 * zombie until the kernel answers the cancel), deep in its stack: the next
 * compact processes find the shared stack free and clean (under ASan, no
 * stale redzone of the dead frames). */
static __attribute__((noinline)) void recv_deep(int fd, int n)
{
	char buf[700];
	if (n > 0) {
		recv_deep(fd, n - 1);
		return;
	}
	(void)up_io_recv(fd, buf, sizeof buf, 0, UP_INFINITY);
}

static void deep_reader(void *arg)
{
	recv_deep((int)(intptr_t)arg, 6);
}

static __attribute__((noinline)) int deep_sum(int n)
{
	volatile char a[600];
	for (size_t i = 0; i < sizeof a; i++)
		a[i] = (char)(i + (size_t)n);
	return n ? deep_sum(n - 1) + a[n] : a[0];
}

static void deep_worker(void *arg)
{
	up_pid main = (up_pid)(intptr_t)arg;
	PCHECK_EQ(up_send_word(main, (uint64_t)deep_sum(12)), 0);
}

static void zombie_main(void *arg)
{
	int *fds = arg;
	struct up_spawn_opts o = compact_opts();
	up_pid r = up_spawn_opt(deep_reader, (void *)(intptr_t)fds[1], &o);
	up_term ref = up_monitor(r);
	up_yield(); /* it parks in its recv */
	PCHECK_EQ(up_exit(r, UP_KILL), 0);
	struct down_arg d = { ref };
	struct up_msg m;
	PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
	PCHECK(el(m.term, 4) == UP_KILLED);
	up_msg_free(&m);
	for (int i = 0; i < 3; i++) {
		up_pid w = up_spawn_opt(deep_worker, (void *)(intptr_t)up_self(), &o);
		PCHECK(w > 0);
		PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
		PCHECK_EQ((int)m.word, deep_sum(12));
	}
}

static void test_killed_in_io_deep(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	RUN_OK(zombie_main, fds, 1);
	close(fds[0]);
	close(fds[1]);
}

/* ------------------------------------------------------ kills and exits */

static void kills_main(void *arg)
{
	(void)arg;
	enum { N = 500 };
	struct up_spawn_opts o = compact_opts();
	up_pid pid[N];
	up_term ref[N];
	long live0 = up_processes(NULL, 0);
	for (int i = 0; i < N; i++) {
		pid[i] = up_spawn_opt(idle_child, NULL, &o);
		ref[i] = up_monitor(pid[i]);
	}
	up_yield(); /* all of them wait, all but one with their frames saved */
	for (int i = 0; i < N; i++) {
		if (i % 2)
			PCHECK_EQ(up_exit(pid[i], A("stop")), 0);
		else
			PCHECK_EQ(up_send_word(pid[i], 1), 0);
	}
	for (int i = 0; i < N; i++) {
		struct down_arg d = { ref[i] };
		struct up_msg m;
		PCHECK_EQ(up_recv_match(match_down, &d, &m, WAIT_NS, 0), 0);
		PCHECK(el(m.term, 4) == (i % 2 ? A("stop") : UP_NORMAL));
		up_msg_free(&m);
	}
	PCHECK_EQ(up_processes(NULL, 0), live0);
	/* Their slots are reused. */
	for (int i = 0; i < N; i++) {
		up_pid p = up_spawn_opt(idle_child, NULL, &o);
		PCHECK(p > 0);
		PCHECK_EQ(up_send_word(p, 1), 0);
	}
}

static void test_kills_and_exits(void **state)
{
	(void)state;
	RUN_OK(kills_main, NULL, 1);
}

/* ----------------------------------------------------------------- heap */

static void heap_user(void *arg)
{
	up_pid main = (up_pid)(intptr_t)arg;
	/* No heap in the slot: allocations grow in node-local blocks. */
	size_t total = 0;
	for (size_t sz = 16; sz <= ((size_t)1 << 20); sz *= 2) {
		unsigned char *b = up_alloc(sz);
		PCHECK(b != NULL);
		if (!b)
			return;
		memset(b, (int)(sz & 0xff), sz);
		total += sz;
	}
	long mark = up_heap_mark();
	PCHECK(mark > 0);
	PCHECK(up_alloc(100000) != NULL);
	PCHECK_EQ(up_heap_reset(mark), 0);
	PCHECK_EQ(up_heap_reset(mark), -EINVAL); /* used once */
	/* A term message lands in this process's memory. */
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(m.kind, UP_MSG_TERM);
	PCHECK_TERM(m.term, up_tuplev(2, A("hello"), up_int(12345)));
	up_msg_free(&m);
	PCHECK_EQ(up_send_word(main, total), 0);
}

static void heap_main(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = compact_opts();
	up_pid u = up_spawn_opt(heap_user, (void *)(intptr_t)up_self(), &o);
	PCHECK(u > 0);
	PCHECK_EQ(up_send(u, up_tuplev(2, A("hello"), up_int(12345))), 0);
	struct up_msg m;
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(m.word, ((size_t)1 << 21) - 16);
}

static void test_heap(void **state)
{
	(void)state;
	RUN_OK(heap_main, NULL, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_frames_survive_switches),
		UPT_TEST(test_frames_survive_two_schedulers),
		UPT_TEST(test_ring_of_compact_processes),
		UPT_TEST(test_errors),
		UPT_TEST(test_stack_overflow),
		UPT_TEST(test_io_buffers_on_the_shared_stack),
		UPT_TEST(test_killed_in_io_deep),
		UPT_TEST(test_kills_and_exits),
		UPT_TEST(test_heap),
	};
	return UPT_RUN("shared_stack", tests);
}
