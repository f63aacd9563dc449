/*
 * test_scheduler.c - balancing between the schedulers of a node
 * (src/scheduler.c): an idle scheduler is given processes that have not run
 * yet by a busy peer of its node; never across nodes, never a process placed
 * with UP_SPAWN_SCHEDULER, never with UP_RUN_NO_BALANCE; and messages sent
 * while processes move are delivered exactly once, in order per sender.
 * An idle scheduler does its node's memory work (src/region.c): it readies
 * fresh stack slots for a busy spawner (processes on them keep their guard
 * pages) and returns the slots a busy scheduler's exits left over.
 */
#include "helpers.h"

/* ---------------------------------------------------------- a spawn tree */

struct tree {
	up_pid parent;
	int64_t first, size;
	int want_node;          /* -1: any */
	unsigned flags;         /* spawn flags (UP_SPAWN_SCHEDULER: pinned to 0) */
};

static atomic_long wrong_place;

static void tree_node(void *arg)
{
	struct tree me = *(struct tree *)arg;
	if (me.want_node >= 0 && up_node() != me.want_node)
		atomic_fetch_add(&wrong_place, 1);
	if ((me.flags & UP_SPAWN_SCHEDULER) && up_scheduler() != 0)
		atomic_fetch_add(&wrong_place, 1);
	if (me.size == 1) {
		up_send_word(me.parent, (uint64_t)me.first);
		return;
	}
	struct tree kids[10];
	int64_t step = me.size / 10;
	for (int i = 0; i < 10; i++) {
		kids[i] = me;
		kids[i].parent = up_self();
		kids[i].first = me.first + i * step;
		kids[i].size = step;
		struct up_spawn_opts o = spawn_on(0);
		up_pid c = me.flags & UP_SPAWN_SCHEDULER ? up_spawn_opt(tree_node, &kids[i], &o)
							  : up_spawn(tree_node, &kids[i]);
		PCHECK(c > 0);
	}
	/* Still where it was placed after it ran and blocked. */
	int64_t sum = 0;
	for (int i = 0; i < 10; i++) {
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			return;
		sum += (int64_t)m.word;
	}
	if ((me.flags & UP_SPAWN_SCHEDULER) && up_scheduler() != 0)
		atomic_fetch_add(&wrong_place, 1);
	up_send_word(me.parent, (uint64_t)sum);
}

struct tree_run {
	int64_t leaves;
	int want_node;
	unsigned flags;
	int64_t sum;
	struct up_sched_stats st[8];
	int nsched;
};

static void tree_main(void *arg)
{
	struct tree_run *r = arg;
	struct tree root = { up_self(), 0, r->leaves, r->want_node, r->flags };
	struct up_spawn_opts o = spawn_on(0);
	PCHECK(up_spawn_opt(tree_node, &root, &o) > 0);
	struct up_msg m;
	if (proc_recv_or_die(&m) != 0)
		return;
	r->sum = (int64_t)m.word;
	r->nsched = up_schedulers();
	for (int i = 0; i < r->nsched && i < 8; i++)
		PCHECK_EQ(up_sched_stats(i, &r->st[i]), 0);
}

static int64_t expected_sum(int64_t n)
{
	return n * (n - 1) / 2;
}

static void run_tree(struct tree_run *r, unsigned schedulers, unsigned run_flags)
{
	struct up_run_opts o = run_opts(schedulers);
	o.flags = run_flags;
	atomic_store(&wrong_place, 0);
	assert_int_equal(up_run(tree_main, r, &o), 0);
	assert_no_pfail();
	assert_int_equal(r->sum, expected_sum(r->leaves));
	assert_int_equal(atomic_load(&wrong_place), 0);
}

static void totals(const struct tree_run *r, uint64_t *given, uint64_t *steals)
{
	*given = *steals = 0;
	for (int i = 0; i < r->nsched; i++) {
		*given += r->st[i].given;
		*steals += r->st[i].steals;
	}
}

/* A tree of spawns started on scheduler 0 spreads to scheduler 1. */
static void test_tree_spreads(void **state)
{
	(void)state;
	struct tree_run r = { .leaves = UPT_SCALE(100000, 10000), .want_node = 0 };
	run_tree(&r, 2, 0);
	uint64_t given, steals;
	totals(&r, &given, &steals);
	print_message("  given %" PRIu64 " (sched 0 ran %" PRIu64 ", sched 1 ran %" PRIu64 ")\n",
		      given, r.st[0].runs, r.st[1].runs);
	assert_true(given > 0);
	assert_int_equal(given, steals);        /* every process given arrived */
	assert_true(r.st[1].runs > 0);
}

/* UP_RUN_NO_BALANCE: everything stays where it was spawned. */
static void test_no_balance(void **state)
{
	(void)state;
	struct tree_run r = { .leaves = UPT_SCALE(100000, 10000), .want_node = -1 };
	run_tree(&r, 2, UP_RUN_NO_BALANCE);
	uint64_t given, steals;
	totals(&r, &given, &steals);
	assert_int_equal(given, 0);
	assert_int_equal(steals, 0);
	assert_int_equal(r.st[1].runs, 0);
}

/* Processes placed with UP_SPAWN_SCHEDULER are never given away. */
static void test_pinned_stay(void **state)
{
	(void)state;
	struct tree_run r = { .leaves = UPT_SCALE(100000, 10000), .want_node = -1,
			      .flags = UP_SPAWN_SCHEDULER };
	run_tree(&r, 2, 0);
	uint64_t given, steals;
	totals(&r, &given, &steals);
	assert_int_equal(given, 0);
}

/* Two nodes of two schedulers each (synthetic topology, schedulers sharing
 * CPUs): a tree started on node 0 spreads only to node 0's other
 * scheduler. */
static void test_never_across_nodes(void **state)
{
	(void)state;
	if (allowed_cpus() < 2)
		skip();
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0;1:1", 1), 0);
	struct tree_run r = { .leaves = UPT_SCALE(100000, 10000), .want_node = 0 };
	run_tree(&r, 4, 0);
	unsetenv("UPROC_TOPOLOGY");
	for (int i = 0; i < r.nsched; i++) {
		int node = i % 2; /* scheduler i runs on CPU i % 2, node i % 2 */
		if (node != 0) {
			assert_int_equal(r.st[i].steals, 0);
			assert_int_equal(r.st[i].runs, 0);
		}
	}
	uint64_t given, steals;
	totals(&r, &given, &steals);
	assert_true(given > 0);
	assert_int_equal(given, steals);
}

/* --------------------------------------- messages while processes move */

#define RECEIVERS UPT_SCALE(2000, 500)
#define PER_SENDER 40

static up_pid receivers[2000];
static atomic_int recv_ok, recv_bad;

/* Receives PER_SENDER words from each of two senders (tagged sender << 32 |
 * seq) and checks the order per sender. */
static void receiver(void *arg)
{
	(void)arg;
	uint32_t next[2] = { 0, 0 };
	for (int i = 0; i < 2 * PER_SENDER; i++) {
		struct up_msg m;
		if (up_recv(&m, WAIT_NS) != 0) {
			atomic_fetch_add(&recv_bad, 1);
			return;
		}
		unsigned who = (unsigned)(m.word >> 32);
		uint32_t seq = (uint32_t)m.word;
		if (who > 1 || seq != next[who]) {
			atomic_fetch_add(&recv_bad, 1);
			return;
		}
		next[who]++;
	}
	struct up_msg extra;
	if (up_recv(&extra, 0) != -ETIMEDOUT)
		atomic_fetch_add(&recv_bad, 1);     /* a duplicate */
	atomic_fetch_add(&recv_ok, 1);
}

static void sender(void *arg)
{
	uint64_t who = (uint64_t)(uintptr_t)arg;
	for (uint32_t seq = 0; seq < PER_SENDER; seq++)
		for (int i = 0; i < RECEIVERS; i++)
			PCHECK_EQ(up_send_word(receivers[i], who << 32 | seq), 0);
}

static void move_main(void *arg)
{
	uint64_t *given = arg;
	for (int i = 0; i < RECEIVERS; i++)
		receivers[i] = up_spawn(receiver, NULL);
	/* Senders on both schedulers start while receivers are still on the
	 * spawn stack, being given away. */
	struct up_spawn_opts o0 = spawn_on(0), o1 = spawn_on(1);
	up_pid s0 = up_spawn_opt(sender, (void *)(uintptr_t)0, &o0);
	up_pid s1 = up_spawn_opt(sender, (void *)(uintptr_t)1, &o1);
	PCHECK(s0 > 0 && s1 > 0);
	for (int i = 0; i < RECEIVERS; i++)
		proc_wait_exit(receivers[i]);
	struct up_sched_stats st;
	PCHECK_EQ(up_sched_stats(0, &st), 0);
	*given = st.given;
}

static void test_messages_while_moving(void **state)
{
	(void)state;
	uint64_t given_total = 0;
	for (int round = 0; round < 5; round++) {
		uint64_t given = 0;
		atomic_store(&recv_ok, 0);
		atomic_store(&recv_bad, 0);
		RUN_OK(move_main, &given, 2);
		assert_int_equal(atomic_load(&recv_bad), 0);
		assert_int_equal(atomic_load(&recv_ok), RECEIVERS);
		given_total += given;
	}
	print_message("  receivers given away in 5 rounds: %" PRIu64 "\n", given_total);
}

/* ----------------------------------------- a process that ran stays */

#define HOGS 4
static atomic_int hog_moved;

/* Computes in slices, charging its work (so it yields and is runnable
 * often), and notes any change of scheduler after it first ran: its
 * thread-local state (errno, ...) must stay its own. */
static void hog(void *arg)
{
	(void)arg;
	int first = up_scheduler();
	int64_t end = now_ns() + 300 * MS;
	while (now_ns() < end) {
		for (volatile int i = 0; i < 2000; i++)
			;
		up_consume(100);
		if (up_scheduler() != first) {
			atomic_fetch_add(&hog_moved, 1);
			break;
		}
	}
}

static void hogs_main(void *arg)
{
	int *ran_on_1 = arg;
	up_pid pids[HOGS];
	for (int i = 0; i < HOGS; i++)
		pids[i] = up_spawn(hog, NULL);
	for (int i = 0; i < HOGS; i++) {
		struct up_info in;
		if (up_info(pids[i], &in) == 0 && in.scheduler == 1)
			(*ran_on_1)++;
		proc_wait_exit(pids[i]);
	}
}

/* Scheduler 1 is idle (hungry) the whole time, yet the busy processes that
 * ran on scheduler 0 stay there; only never-run ones may go. */
static void test_process_that_ran_stays(void **state)
{
	(void)state;
	int ran_on_1 = 0;
	atomic_store(&hog_moved, 0);
	RUN_OK(hogs_main, &ran_on_1, 2);
	print_message("  %d of %d busy processes were given before they ran\n", ran_on_1, HOGS);
	assert_int_equal(atomic_load(&hog_moved), 0);
}

/* ------------------------------------------ no starvation of new ones */

static int64_t churn_end, victim_ran_at;

/* A sliding window of one: spawns its own successor, then exits, until
 * churn_end, so the spawn stack never empties. */
static void churner(void *arg)
{
	(void)arg;
	if (now_ns() < churn_end)
		PCHECK(up_spawn(churner, NULL) > 0);
}

static void victim(void *arg)
{
	(void)arg;
	victim_ran_at = now_ns();
}

static void churn_main(void *arg)
{
	int64_t *spawned_at = arg;
	churn_end = now_ns() + 1000 * MS;
	*spawned_at = now_ns();
	up_pid v = up_spawn(victim, NULL);
	PCHECK(up_spawn(churner, NULL) > 0);  /* on top of the victim */
	proc_wait_exit(v);
	while (now_ns() < churn_end)
		up_yield();
}

/* A process spawned under a churning spawner still runs soon: aging moves
 * it from the spawn stack to the run queue. */
static void test_new_process_not_starved(void **state)
{
	(void)state;
	int64_t spawned_at = 0;
	victim_ran_at = 0;
	RUN_OK(churn_main, &spawned_at, 1);
	int64_t wait = victim_ran_at - spawned_at;
	print_message("  the buried process ran after %.3f ms (churn lasted 1000 ms)\n", wait / 1e6);
	assert_true(victim_ran_at > 0);
	assert_true(wait < 200 * MS);
}

/* ----------------------------------- memory work done by an idle scheduler */

#define PARKED 3000

struct readied {
	uint64_t prepared;  /* scheduler 1's count once the spawner stopped */
	int overflowed;     /* processes on later fresh slots ended by their guard */
	uint64_t trimmed;   /* scheduler 1's count once scheduler 0's exited */
	int respawned;      /* of PARKED spawned again on the trimmed slots */
};

/* Scheduler 1's counters once `field` reaches at least `want` (2 s at most). */
static struct up_sched_stats peer_stats_at(size_t field, uint64_t want)
{
	struct up_sched_stats st = { 0 };
	for (int i = 0; i < 2000; i++) {
		PCHECK_EQ(up_sched_stats(1, &st), 0);
		if (*(uint64_t *)((char *)&st + field) >= want)
			break;
		up_sleep(MS);
	}
	return st;
}

static void parked(void *arg)
{
	(void)arg;
	struct up_msg m;
	(void)proc_recv_or_die(&m);
}

static void overflows(void *arg)
{
	(void)arg;
	stack_deep(0);
}

static void readied_main(void *arg)
{
	struct readied *r = arg;
	static up_pid pids[PARKED];
	struct up_spawn_opts o = spawn_on(0);

	/* Scheduler 0 spawns; scheduler 1 has nothing to run. */
	for (int i = 0; i < PARKED; i++)
		PCHECK((pids[i] = up_spawn_opt(parked, NULL, &o)) > 0);
	r->prepared = peer_stats_at(offsetof(struct up_sched_stats, prepared), 512).prepared;
	/* The next fresh slots are among those readied: an overflow there
	 * still ends in the guard page, and only that process. */
	for (int i = 0; i < 8; i++) {
		struct up_spawn_opts om = spawn_on(0);
		om.flags |= UP_SPAWN_MONITOR;
		PCHECK(up_spawn_opt(overflows, NULL, &om) > 0);
		struct up_msg m;
		if (proc_recv_or_die(&m) != 0)
			break;
		r->overflowed += is_tagged(m.term, A("DOWN"), 5) && el(m.term, 4) == UP_STACK_OVERFLOW;
		up_msg_free(&m);
	}
	/* Their exits overflow scheduler 0's warm cache (1024 slots): the
	 * batches past it are returned by scheduler 1. */
	for (int i = 0; i < PARKED; i++)
		PCHECK_EQ(up_send_word(pids[i], 1), 0);
	for (int i = 0; i < PARKED; i++)
		proc_wait_exit(pids[i]);
	r->trimmed = peer_stats_at(offsetof(struct up_sched_stats, trimmed), 256).trimmed;
	/* The trimmed slots are back in the node's pool, usable. */
	for (int i = 0; i < PARKED; i++)
		r->respawned += (pids[i] = up_spawn_opt(parked, NULL, &o)) > 0;
	for (int i = 0; i < PARKED; i++)
		if (pids[i] > 0)
			PCHECK_EQ(up_send_word(pids[i], 1), 0);
	for (int i = 0; i < PARKED; i++)
		if (pids[i] > 0)
			proc_wait_exit(pids[i]);
}

/* 3,000 processes pinned to scheduler 0 take fresh slots; scheduler 1,
 * idle, readies the next ones (guard page, resident block page) ahead of
 * them, and the processes spawned on those slots run, park, and overflow
 * into their guard like any other.  When the 3,000 exit, scheduler 1
 * returns the slots past scheduler 0's warm cache, and they serve 3,000
 * spawns again.  All of it with balancing off. */
static void test_idle_peer_does_memory_work(void **state)
{
	(void)state;
	struct readied r = { 0 };
	/* Memory work is not balancing: it goes on without it. */
	struct up_run_opts o = run_opts(2);
	o.flags = UP_RUN_NO_BALANCE;
	assert_int_equal(up_run(readied_main, &r, &o), 0);
	assert_no_pfail();
	print_message("  scheduler 1 readied %" PRIu64 " slots, trimmed %" PRIu64 "\n", r.prepared,
		      r.trimmed);
	assert_true(r.prepared >= 512);
	assert_int_equal(r.overflowed, 8);
	assert_true(r.trimmed >= 256);
	assert_int_equal(r.respawned, PARKED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_tree_spreads),
		UPT_TEST(test_no_balance),
		UPT_TEST(test_pinned_stay),
		UPT_TEST(test_never_across_nodes),
		UPT_TEST(test_messages_while_moving),
		UPT_TEST(test_process_that_ran_stays),
		UPT_TEST(test_new_process_not_starved),
		UPT_TEST(test_idle_peer_does_memory_work),
	};
	return UPT_RUN("scheduler", tests);
}
