/*
 * test_numa_placement.c - where memory really is: the kernel's word on the
 * NUMA node of every page a process and its scheduler touch (white-box:
 * reads control blocks, inboxes and scheduler structs from src/).
 *
 * The oracle is move_pages(2) in query mode (nodes = NULL), with
 * get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR) as a second opinion on every
 * page, and for the io_uring rings (kernel pages mapped with
 * remap_pfn_range, which move_pages cannot see) the physical frame from
 * /proc/self/pagemap looked up in /sys/devices/system/node/nodeN/memoryM.
 * test_oracle first shows that the oracle tells each real node apart
 * (pages bound there on purpose), so the other checks can fail.
 *
 * Checked, for every node that has a scheduler, against the real node that
 * holds that node's memory (topology mem_node):
 *  - a process placed there: its control block, the stack it touched, its
 *    in-slot heap and a heap mapping grown past the slot;
 *  - the mailbox nodes of word messages and the buffers (node, held link,
 *    copy) of term messages sent to it, still in its inbox or queue, and the
 *    binary it received; senders: every scheduler of the node, and a plain
 *    thread (test_local), or every scheduler of every other node
 *    (test_cross_node);
 *  - each scheduler's struct, its ring (SQ, CQ, SQEs), its message-node
 *    free list, its region cache, its timer heap, and its thread's stack.
 *
 * On a one-node machine everything is checked against node 0 (real but
 * trivial) and test_cross_node is skipped.  UPROC_NUMA_REQUIRE_NODES=N
 * (set by scripts/numa-vm) turns "fewer than N real nodes" into a failure.
 * Sanitizer builds route node memory through malloc (node_mem.h): there the
 * arena-backed checks are skipped and said to be.
 */
#include "helpers.h"

#include <fcntl.h>
#include <numa.h>
#include <numaif.h>

#include "node_mem.h"
#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"
#include "topology.h"

#define PAGE 4096ul
#define MAXN 16

/* ------------------------------------------------------------ the oracle */

enum cat {
	C_CB, C_STACK, C_HEAP, C_HEAP_GROWN, C_MBOX, C_COPY,
	C_SCHED, C_RING, C_MSG_FREE, C_REGION_CACHE, C_TIMERS, C_SCHED_STACK,
	C_SHARED_STACK, C_COMPACT_SLOT,
	NCAT
};
static const char *const cat_name[NCAT] = {
	"control block", "stack", "heap", "grown heap", "mailbox nodes", "message copies",
	"scheduler struct", "io_uring ring", "msg free list", "region cache", "timer heap",
	"scheduler stack", "shared stack", "compact slot",
};

/* Pages found on the expected node, per real node and category. */
static struct {
	atomic_long ok[MAXN][NCAT];
	atomic_long second[MAXN][NCAT]; /* confirmed by get_mempolicy / pagemap */
	atomic_long cross;              /* messages from a sender on another node */
	atomic_long unchecked_ring;     /* ring pages no oracle could see */
} tally;

static void tally_reset(void) { memset(&tally, 0, sizeof tally); }

/* Node of the page at addr from /proc/self/pagemap and sysfs memory
 * blocks; -ENOENT if not present, -ENODATA if the frame is hidden (not
 * root) or unmapped in sysfs. */
static int pfn_node(const void *addr)
{
	static long block = -1;
	uint64_t e = 0;

	if (block < 0) {
		FILE *f = fopen("/sys/devices/system/memory/block_size_bytes", "r");
		if (!f || fscanf(f, "%lx", &block) != 1)
			block = 0;
		if (f)
			fclose(f);
	}
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENODATA;
	ssize_t r = pread(fd, &e, sizeof e, (off_t)((uintptr_t)addr / PAGE * sizeof e));
	close(fd);
	if (r != (ssize_t)sizeof e)
		return -ENODATA;
	if (!(e >> 63))
		return -ENOENT;
	uint64_t pfn = e & ((1ull << 55) - 1);
	if (pfn == 0 || block <= 0)
		return -ENODATA;
	unsigned long mb = (unsigned long)(pfn * PAGE / (uint64_t)block);
	for (int n = 0; n < 1024; n++) {
		char path[128];
		snprintf(path, sizeof path, "/sys/devices/system/node/node%d/memory%lu", n, mb);
		if (access(path, F_OK) == 0)
			return n;
	}
	return -ENODATA;
}

/* The node move_pages reports for one page (or its -errno status). */
static int mp_node(const void *addr)
{
	void *pg = (void *)((uintptr_t)addr & ~(PAGE - 1));
	int st = -1;
	if (move_pages(0, 1, &pg, NULL, &st, 0) != 0)
		return -errno;
	return st;
}

/* get_mempolicy's node of a page that is present. */
static int gm_node(const void *addr)
{
	int node = -1;
	if (get_mempolicy(&node, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR) != 0)
		return -errno;
	return node;
}

/*
 * Check every page of [addr, addr+len) lies on real node `want`.  Pages must
 * be present (the caller touched them).  ring: the range is a kernel-
 * allocated mapping; fall back to pagemap where move_pages cannot look.
 * Runs inside processes: failures are recorded, never asserted.
 */
static void check_range(enum cat c, int want, const void *addr, size_t len, bool ring)
{
	uintptr_t a = (uintptr_t)addr & ~(PAGE - 1), end = (uintptr_t)addr + len;
	if (want < 0 || want >= MAXN) {
		PFAIL("%s: no real node to check against (%d)", cat_name[c], want);
		return;
	}
	for (; a < end; a += PAGE) {
		const void *pg = (const void *)a;
		int n = mp_node(pg);
		if (ring && n < 0 && n != -ENOENT) {
			int pn = pfn_node(pg);
			if (pn == -ENODATA) {
				atomic_fetch_add(&tally.unchecked_ring, 1);
				continue;
			}
			if (pn != want) {
				PFAIL("%s page %p: node %d by pagemap (move_pages %d), want %d",
				      cat_name[c], pg, pn, n, want);
				continue;
			}
			atomic_fetch_add(&tally.ok[want][c], 1);
			atomic_fetch_add(&tally.second[want][c], 1);
			continue;
		}
		if (n != want) {
			PFAIL("%s page %p: move_pages says %d, want node %d", cat_name[c], pg, n, want);
			continue;
		}
		atomic_fetch_add(&tally.ok[want][c], 1);
		int g = ring ? pfn_node(pg) : gm_node(pg);
		if (g == want)
			atomic_fetch_add(&tally.second[want][c], 1);
		else if (!(ring && g == -ENODATA))
			PFAIL("%s page %p: move_pages says %d but %s says %d", cat_name[c], pg, n,
			      ring ? "pagemap" : "get_mempolicy", g);
	}
}

/* ------------------------------------------------------------ topology */

static struct up__topology topo;

/* Real nodes with a CPU (so a scheduler) under the default run; fills
 * nodes[] with the program-visible ones. */
static int sched_nodes(int *nodes)
{
	if (up__topology_load(&topo) != 0)
		return -1;
	int n = 0;
	for (int nd = 0; nd < topo.nnodes && nd < MAXN; nd++)
		if (topo.node_present[nd])
			nodes[n++] = nd;
	return n;
}

/* Is there a libnuma to ask (mem_node -1: nothing is bound)? */
static bool oracle_usable(void)
{
	int nodes[MAXN];
	return sched_nodes(nodes) > 0 && topo.mem_node[nodes[0]] >= 0;
}

/* UPROC_NUMA_REQUIRE_NODES: the number of real nodes this run must see. */
static int required_nodes(void)
{
	const char *e = getenv("UPROC_NUMA_REQUIRE_NODES");
	return e ? atoi(e) : 0;
}

/* ------------------------------------------------------ process memory */

#define WORDS 16
#define TERMS 4
#define BIN_BYTES 20000
#define GROWN_BYTES (256 * 1024)
#define MAX_SENDERS 70

struct target {
	int node;          /* program-visible node of the receiver */
	int want;          /* the real node its memory must be on */
	atomic_int ready;
	up_pid pid;
	int nsenders;      /* processes and threads */
	int nthreads;      /* threads among them: words only (no heap for terms) */
	atomic_int done;   /* senders finished */
	int cross_senders; /* how many of them run on another node */
	long msgs_seen, copies_seen;
};

static long expect_msgs(const struct target *t)
{
	return (long)(t->nsenders - t->nthreads) * (WORDS + 2 * TERMS) + (long)t->nthreads * WORDS;
}
static long expect_copies(const struct target *t) { return (long)(t->nsenders - t->nthreads) * 2 * TERMS; }

static void touch(void *p, size_t n) { memset(p, 0x5a, n); __asm__ volatile("" ::"r"(p) : "memory"); }

static void check_msg_node(struct target *t, struct up__msg *m)
{
	if (up__msg_has_buffer(m)) {
		check_range(C_COPY, t->want, m, m->size, false);
		t->copies_seen++;
	} else {
		check_range(C_MBOX, t->want, m, sizeof *m, false);
	}
	if (!UP_NODE_MEM_LIBC && up__node_of_block(m) != t->node)
		PFAIL("message %p (kind %u, %u bytes): in the arena of node %d, want %d", (void *)m,
		      m->kind, m->size, up__node_of_block(m), t->node);
	t->msgs_seen++;
}

static void receiver(void *arg)
{
	struct target *t = arg;
	struct up__proc *p = up__pid_proc(up_self());
	char stackbuf[8192];

	PCHECK_EQ(up_node(), t->node);
	PCHECK_EQ(up__region_node(up_self()), t->node);
	touch(stackbuf, sizeof stackbuf);
	char *heap = up_alloc(32 * 1024);
	char *grown = up_alloc(GROWN_BYTES);
	if (!heap || !grown) {
		PFAIL("up_alloc failed");
		up_shutdown();
		return;
	}
	touch(heap, 32 * 1024);
	touch(grown, GROWN_BYTES);
	/* the big block must really live outside the slot (a grown heap) */
	char *slot = up__slot_base(p->slot);
	PCHECK(grown < slot || grown >= slot + up__regions.layout.slot_size);

	check_range(C_CB, t->want, p, sizeof *p, false);
	check_range(C_STACK, t->want, stackbuf, sizeof stackbuf, false);
	check_range(C_HEAP, t->want, heap, 32 * 1024, false);
	check_range(C_HEAP_GROWN, t->want, grown, GROWN_BYTES, false);

	atomic_store(&t->ready, 1);
	int64_t deadline = now_ns() + WAIT_NS;
	while (atomic_load(&t->done) < t->nsenders) {
		if (now_ns() > deadline) {
			PFAIL("senders did not finish: %d of %d", atomic_load(&t->done), t->nsenders);
			up_shutdown();
			return;
		}
		up_yield();
	}
	/* Every message is still where senders put it: the inbox (pushed by
	 * other threads) or the queue (appended by this scheduler). */
	if (!UP_NODE_MEM_LIBC) {
		for (struct up__msg *m = __atomic_load_n(&p->inbox[0].ptr, __ATOMIC_ACQUIRE);
		     (uintptr_t)m > (uintptr_t)UP__INBOX_WAITING; m = m->next)
			check_msg_node(t, m);
		for (struct up__msg *m = p->queue[0].head; m; m = m->next)
			check_msg_node(t, m);
		PCHECK_EQ(t->msgs_seen, expect_msgs(t));
		PCHECK_EQ(t->copies_seen, expect_copies(t));
	}
	/* What the receiver holds after the receive is its node's too. */
	long got = 0;
	struct up_msg m;
	while (up_recv(&m, 0) == 0) {
		got++;
		if (m.kind != UP_MSG_TERM)
			continue;
		const void *data;
		size_t len;
		up_term bin = el(m.term, 2);
		if (up_get_binary(bin, &data, &len) == 0 && len == BIN_BYTES) {
			PCHECK(((const unsigned char *)data)[len - 1] == (unsigned char)(len - 1));
			if (!UP_NODE_MEM_LIBC)
				check_range(C_COPY, t->want, data, len, false);
		}
		up_msg_free(&m);
	}
	PCHECK_EQ(got, expect_msgs(t));
}

static void send_all(up_pid to, bool terms)
{
	unsigned char *b = malloc(BIN_BYTES);
	if (!b) {
		PFAIL("malloc");
		return;
	}
	for (int i = 0; i < BIN_BYTES; i++)
		b[i] = (unsigned char)i;
	for (int i = 0; i < WORDS; i++)
		PCHECK_EQ(up_send_word(to, (uint64_t)i | (terms ? (uint64_t)(up_scheduler() + 1) << 32 : 0)), 0);
	for (int i = 0; terms && i < TERMS; i++) {
		up_term big = up_tuplev(3, A("big"), up_int(i), up_binary(b, BIN_BYTES));
		up_term small = up_tuplev(2, A("small"), up_int(i));
		PCHECK_EQ(up_send(to, big), 0);
		PCHECK_EQ(up_send(to, small), 0);
	}
	free(b);
}

static void sender(void *arg)
{
	struct target *t = arg;
	send_all(t->pid, true);
	atomic_fetch_add(&t->done, 1);
}

static void *thread_sender(void *arg)
{
	struct target *t = arg;
	send_all(t->pid, false);
	atomic_fetch_add(&t->done, 1);
	return NULL;
}

struct matrix {
	bool cross;     /* senders on other nodes (else: on the receiver's) */
	int nnodes, nodes[MAXN];
	struct target t[MAXN];
};

static void matrix_main(void *arg)
{
	struct matrix *mx = arg;
	int nsched = up_schedulers();

	for (int i = 0; i < mx->nnodes; i++) {
		struct target *t = &mx->t[i];
		t->node = mx->nodes[i];
		t->want = up__rt.topo.mem_node[t->node];
		for (int s = 0; s < nsched; s++)
			if ((up_scheduler_node(s) != t->node) == mx->cross && t->nsenders < MAX_SENDERS)
				t->nsenders++;
		if (!mx->cross)
			t->nsenders++, t->nthreads++; /* a plain thread */
		struct up_spawn_opts o = spawn_on_node(t->node);
		t->pid = up_spawn_opt(receiver, t, &o);
		if (t->pid <= 0) {
			PFAIL("spawn receiver on node %d: %" PRId64, t->node, t->pid);
			return;
		}
		int64_t deadline = now_ns() + WAIT_NS;
		while (!atomic_load(&t->ready) && now_ns() < deadline)
			up_yield();
		int n = 0;
		for (int s = 0; s < nsched && n < MAX_SENDERS; s++) {
			if ((up_scheduler_node(s) != t->node) != mx->cross)
				continue;
			o = spawn_on(s);
			PCHECK(up_spawn_opt(sender, t, &o) > 0);
			n++;
			if (mx->cross)
				t->cross_senders++;
		}
		pthread_t th;
		bool thread = !mx->cross && pthread_create(&th, NULL, thread_sender, t) == 0;
		if (!mx->cross)
			PCHECK(thread);
		proc_wait_exit(t->pid);
		if (thread)
			pthread_join(th, NULL);
		atomic_fetch_add(&tally.cross, t->cross_senders * (WORDS + 2 * TERMS));
	}
}

/* ---------------------------------------------------- scheduler memory */

struct sched_probe {
	int sched, node, want;
};

static void nothing(void *arg) { (void)arg; }

/* A compact process: frames on the shared stack, then saved in its slot. */
static void compact_child(void *arg)
{
	(void)arg;
	volatile char frame[300];
	memset((char *)frame, 1, sizeof frame);
	struct up_msg m;
	(void)up_recv(&m, WAIT_NS);
}

static void sched_probe(void *arg)
{
	struct sched_probe *sp = arg;
	struct up__sched *s = up__self_sched;
	struct up_msg m;

	PCHECK_EQ(s->index, sp->sched);
	PCHECK_EQ(s->node, sp->node);
	/* populate what is lazily made: the free list, the timer heap */
	PCHECK_EQ(up_send_word(up_self(), 1), 0);
	PCHECK_EQ(up_recv(&m, WAIT_NS), 0);
	PCHECK_EQ(up_sleep(MS), 0);

	check_range(C_SCHED, sp->want, s, sizeof *s, false);
	/* a child that exits here leaves its slot in the region cache (the
	 * array's untouched tail has no pages yet: only the used part) */
	struct up_spawn_opts o = spawn_on(sp->sched);
	up_pid c = up_spawn_opt(nothing, NULL, &o);
	PCHECK(c > 0);
	proc_wait_exit(c);
	PCHECK(s->regions.cls[UP__CLASS_STACK].n > 0);
	check_range(C_REGION_CACHE, sp->want, s->regions.cls[UP__CLASS_STACK].slot,
		    s->regions.cls[UP__CLASS_STACK].n * sizeof(uint32_t), false);
	if (!UP_NODE_MEM_LIBC) {
		int n = 0;
		for (struct up__msg *f = s->msgs.free; f && n < 256; f = f->next, n++)
			check_range(C_MSG_FREE, sp->want, f, sizeof *f, false);
		PCHECK(n > 0);
		if (s->timers.h)
			check_range(C_TIMERS, sp->want, s->timers.h, s->timers.cap * sizeof(void *), false);
		else
			PFAIL("scheduler %d: no timer heap after a sleep", sp->sched);
	}
	/* The scheduler context saved its registers on its own thread stack. */
	check_range(C_SCHED_STACK, sp->want, s->sp, 64, false);
	/* Compact processes: the shared stack's top page, and the slot of one
	 * whose frames were saved there when the second took the stack. */
	struct up_spawn_opts co = spawn_on(sp->sched);
	co.flags |= UP_SPAWN_COMPACT;
	up_pid c1 = up_spawn_opt(compact_child, NULL, &co);
	up_pid c2 = up_spawn_opt(compact_child, NULL, &co);
	PCHECK(c1 > 0 && c2 > 0);
	PCHECK_EQ(up_sleep(MS), 0);
	check_range(C_SHARED_STACK, sp->want, s->sstack.hi - PAGE, PAGE, false);
	char *slot1 = up__slot_base(up__pid_slot(c1));
	check_range(C_COMPACT_SLOT, sp->want, slot1, up__regions.layout.compact_size, false);
	PCHECK_EQ(up_send_word(c1, 1), 0);
	PCHECK_EQ(up_send_word(c2, 1), 0);
	proc_wait_exit(c1);
	proc_wait_exit(c2);
	/* The ring: SQ and CQ rings, SQE array (all populated at setup). */
	struct io_uring *r = &s->ring;
	check_range(C_RING, sp->want, r->sq.ring_ptr, r->sq.ring_sz, true);
	if (r->cq.ring_ptr != r->sq.ring_ptr)
		check_range(C_RING, sp->want, r->cq.ring_ptr, r->cq.ring_sz, true);
	size_t sqe = (r->flags & IORING_SETUP_SQE128) ? 128 : 64;
	check_range(C_RING, sp->want, r->sq.sqes, *r->sq.kring_entries * sqe, true);
}

struct sched_all {
	struct sched_probe p[UP__MAX_CPUS];
	int n;
};

static void sched_main(void *arg)
{
	struct sched_all *a = arg;
	a->n = up_schedulers();
	for (int s = 0; s < a->n && s < UP__MAX_CPUS; s++) {
		a->p[s].sched = s;
		a->p[s].node = up_scheduler_node(s);
		a->p[s].want = up__rt.topo.mem_node[a->p[s].node];
		struct up_spawn_opts o = spawn_on(s);
		up_pid pid = up_spawn_opt(sched_probe, &a->p[s], &o);
		if (pid <= 0)
			PFAIL("spawn on scheduler %d: %" PRId64, s, pid);
		else
			proc_wait_exit(pid);
	}
}

/* --------------------------------------------------------------- report */

static void report(const char *what)
{
	for (int nd = 0; nd < MAXN; nd++) {
		long any = 0;
		for (int c = 0; c < NCAT; c++)
			any += atomic_load(&tally.ok[nd][c]);
		if (!any)
			continue;
		printf("numa-placement: %s: real node %d:", what, nd);
		for (int c = 0; c < NCAT; c++) {
			long ok = atomic_load(&tally.ok[nd][c]);
			if (ok)
				printf(" %s %ld/%ld", cat_name[c], atomic_load(&tally.second[nd][c]), ok);
		}
		printf(" (pages confirmed by a second oracle / on the node by move_pages)\n");
	}
	if (atomic_load(&tally.cross))
		printf("numa-placement: %s: %ld messages crossed nodes\n", what, atomic_load(&tally.cross));
	if (atomic_load(&tally.unchecked_ring))
		printf("numa-placement: %s: %ld ring pages not checkable (no pagemap frame: not root?)\n",
		       what, atomic_load(&tally.unchecked_ring));
	if (UP_NODE_MEM_LIBC)
		printf("numa-placement: %s: sanitizer build: arena-backed memory (mailbox nodes, copies, "
		       "free lists, timers) skipped\n", what);
	fflush(stdout);
}

/* Nodes each with a non-zero count of category c on their own real node. */
static int nodes_with(enum cat c)
{
	int n = 0;
	for (int nd = 0; nd < MAXN; nd++)
		n += atomic_load(&tally.ok[nd][c]) > 0;
	return n;
}

/* ---------------------------------------------------------------- tests */

/* The oracle tells nodes apart: a page bound (MPOL_BIND) to each allowed
 * real node is reported on it by move_pages, get_mempolicy and pagemap. */
static void test_oracle(void **state)
{
	(void)state;
	if (!oracle_usable())
		skip();
	int real = 0, pagemap = 0;
	for (int nd = 0; nd <= numa_max_node() && nd < MAXN; nd++) {
		bool allowed = false;
		for (int k = 0; k < topo.nnodes; k++)
			allowed |= topo.mem_node[k] == nd;
		if (!allowed)
			continue;
		char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(p != MAP_FAILED);
		unsigned long mask[4] = { 0 };
		mask[nd / 64] |= 1ul << (nd % 64);
		assert_int_equal(mbind(p, 2 * PAGE, MPOL_BIND, mask, 256, 0), 0);
		int untouched = mp_node(p); /* no page yet: -ENOENT (6.1: -EFAULT) */
		if (untouched != -ENOENT && untouched != -EFAULT)
			fail_msg("move_pages on an untouched page: %d", untouched);
		touch(p, 2 * PAGE);
		assert_int_equal(mp_node(p), nd);
		assert_int_equal(mp_node(p + PAGE), nd);
		assert_int_equal(gm_node(p), nd);
		int pn = pfn_node(p);
		if (pn != -ENODATA) {
			assert_int_equal(pn, nd);
			pagemap++;
		}
		munmap(p, 2 * PAGE);
		real++;
	}
	printf("numa-placement: oracle: %d real node(s) told apart by move_pages and get_mempolicy"
	       ", %d by pagemap\n", real, pagemap);
	assert_true(real >= 1);
	if (required_nodes() > real)
		fail_msg("UPROC_NUMA_REQUIRE_NODES=%d but %d real node(s)", required_nodes(), real);
}

static void run_matrix(bool cross, int *nnodes)
{
	struct matrix *mx = calloc(1, sizeof *mx);
	assert_non_null(mx);
	mx->cross = cross;
	mx->nnodes = sched_nodes(mx->nodes);
	*nnodes = mx->nnodes;
	assert_true(mx->nnodes >= 1);
	tally_reset();
	RUN_OK(matrix_main, mx, 0);
	for (int i = 0; i < mx->nnodes; i++) {
		struct target *t = &mx->t[i];
		int w = t->want;
		assert_true(w >= 0 && w < MAXN);
		assert_true(atomic_load(&tally.ok[w][C_CB]) > 0);
		assert_true(atomic_load(&tally.ok[w][C_STACK]) >= 2);
		assert_true(atomic_load(&tally.ok[w][C_HEAP]) >= 8);
		assert_true(atomic_load(&tally.ok[w][C_HEAP_GROWN]) >= (long)(GROWN_BYTES / PAGE));
		if (!UP_NODE_MEM_LIBC) {
			assert_int_equal(t->msgs_seen, expect_msgs(t));
			assert_true(atomic_load(&tally.ok[w][C_MBOX]) > 0);
			assert_true(atomic_load(&tally.ok[w][C_COPY]) >= expect_copies(t) / 2 * (long)(BIN_BYTES / PAGE));
		}
		assert_true(t->nsenders > 0);
	}
	free(mx);
}

/* Senders on the receiver's own node (each scheduler there, a thread). */
static void test_local(void **state)
{
	(void)state;
	if (!oracle_usable())
		skip();
	int n;
	run_matrix(false, &n);
	report("local senders");
}

/* Senders on every other node: the copies still land on the receiver's. */
static void test_cross_node(void **state)
{
	(void)state;
	if (!oracle_usable())
		skip();
	int nodes[MAXN], n = sched_nodes(nodes);
	if (n < 2) {
		if (required_nodes() >= 2)
			fail_msg("UPROC_NUMA_REQUIRE_NODES=%d but %d node(s) with CPUs",
				 required_nodes(), n);
		printf("numa-placement: cross-node: skipped (%d node with CPUs)\n", n);
		skip();
	}
	run_matrix(true, &n);
	report("cross-node senders");
	assert_true(atomic_load(&tally.cross) > 0);
	assert_true(nodes_with(C_HEAP_GROWN) >= 2);
	if (!UP_NODE_MEM_LIBC)
		assert_true(nodes_with(C_COPY) >= 2);
}

/* Each scheduler's own memory; three runs, so thread stacks and arenas
 * reused from an earlier run (glibc caches stacks) are checked too. */
static void test_scheduler_memory(void **state)
{
	(void)state;
	if (!oracle_usable())
		skip();
	struct sched_all *a = calloc(1, sizeof *a);
	assert_non_null(a);
	tally_reset();
	for (int run = 0; run < 3; run++)
		RUN_OK(sched_main, a, 0);
	report("schedulers");
	for (int s = 0; s < a->n; s++) {
		int w = a->p[s].want;
		assert_true(atomic_load(&tally.ok[w][C_SCHED]) > 0);
		assert_true(atomic_load(&tally.ok[w][C_SCHED_STACK]) > 0);
		assert_true(atomic_load(&tally.ok[w][C_SHARED_STACK]) > 0);
		assert_true(atomic_load(&tally.ok[w][C_COMPACT_SLOT]) > 0);
		assert_true(atomic_load(&tally.ok[w][C_RING]) + atomic_load(&tally.unchecked_ring) > 0);
	}
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_oracle),
		UPT_TEST(test_local),
		UPT_TEST(test_cross_node),
		UPT_TEST(test_scheduler_memory),
	};
	return UPT_RUN("numa_placement", tests);
}
