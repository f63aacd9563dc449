/*
 * test_topology.c - NUMA placement on a synthetic topology (white-box:
 * uses up__region_node() from src/region.h).  UPROC_TOPOLOGY describes
 * nodes and their CPUs ("0:0;1:1", "0:0-1;1:2-3"); checked: the node of
 * each scheduler, spawning by node or by scheduler, that a process's region
 * lives on its scheduler's node, the default scheduler count of a synthetic
 * topology, that its schedulers run on real allowed CPUs, and that a
 * malformed description makes up_run fail with -EINVAL.
 * The variable is unset after every test.
 */
#include "helpers.h"

#include "region.h"

static int topo_teardown(void **state)
{
	(void)state;
	unsetenv("UPROC_TOPOLOGY");
	return 0;
}

#define TOPO_TEST(f) cmocka_unit_test_setup_teardown(f, upt_setup, topo_teardown)

struct placed {
	int node, sched, region_node, sched_node, cpu;
	up_pid pid;
};

static void record_place(void *arg)
{
	struct placed *p = arg;
	p->pid = up_self();
	p->node = up_node();
	p->sched = up_scheduler();
	p->sched_node = up_scheduler_node(p->sched);
	p->region_node = up__region_node(up_self());
	p->cpu = sched_getcpu();
}

#define MAX_SCHED 8
struct topo {
	int schedulers;
	int sched_node[MAX_SCHED + 2];
	int sched_node_neg;
	struct placed main_p, by_node[2][4], by_sched[MAX_SCHED], deflt, scratch;
	up_pid node_bad, node_neg;
	int region_node_of_child_from_parent;
};

static void spawn_and_wait(up_fn fn, void *arg, struct up_spawn_opts *o)
{
	up_pid p = up_spawn_opt(fn, arg, o);
	if (p <= 0) {
		PFAIL("spawn: %" PRId64, p);
		return;
	}
	proc_wait_exit(p);
}

static void topo_main(void *arg)
{
	struct topo *t = arg;
	struct up_spawn_opts o;

	record_place(&t->main_p);
	t->schedulers = up_schedulers();
	for (int i = 0; i < t->schedulers + 2 && i < MAX_SCHED + 2; i++)
		t->sched_node[i] = up_scheduler_node(i);
	t->sched_node_neg = up_scheduler_node(-1);

	for (int node = 0; node < 2; node++)
		for (int k = 0; k < 4; k++) {
			o = spawn_on_node(node);
			spawn_and_wait(record_place, &t->by_node[node][k], &o);
		}
	for (int s = 0; s < t->schedulers && s < MAX_SCHED; s++) {
		o = spawn_on(s);
		spawn_and_wait(record_place, &t->by_sched[s], &o);
	}
	spawn_and_wait(record_place, &t->deflt, NULL);

	o = spawn_on_node(2);
	t->node_bad = up_spawn_opt(record_place, &t->scratch, &o);
	o = spawn_on_node(-1);
	t->node_neg = up_spawn_opt(record_place, &t->scratch, &o);
}

static void check_placed(const struct placed *p)
{
	cpu_set_t allowed;
	assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
	assert_true(p->pid > 0);
	/* synthetic CPUs are pinned onto real, allowed ones */
	assert_true(p->cpu >= 0 && CPU_ISSET(p->cpu, &allowed));
	assert_true(p->node >= 0);
	assert_int_equal(p->sched_node, p->node);
	/* a process's memory lives on its scheduler's node */
	assert_int_equal(p->region_node, p->node);
}

static void test_two_nodes_one_cpu_each(void **state)
{
	(void)state;
	struct topo t;
	memset(&t, 0, sizeof t);
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0;1:1", 1), 0);
	RUN_OK(topo_main, &t, 2);

	assert_int_equal(t.schedulers, 2);
	assert_int_equal(t.sched_node[0], 0);
	assert_int_equal(t.sched_node[1], 1);
	assert_int_equal(t.sched_node[2], -EINVAL);
	assert_int_equal(t.sched_node[3], -EINVAL);
	assert_int_equal(t.sched_node_neg, -EINVAL);

	check_placed(&t.main_p);
	for (int node = 0; node < 2; node++)
		for (int k = 0; k < 4; k++) {
			check_placed(&t.by_node[node][k]);
			assert_int_equal(t.by_node[node][k].node, node);
			/* node n has exactly one scheduler: n */
			assert_int_equal(t.by_node[node][k].sched, node);
		}
	for (int s = 0; s < 2; s++) {
		check_placed(&t.by_sched[s]);
		assert_int_equal(t.by_sched[s].sched, s);
		assert_int_equal(t.by_sched[s].node, s);
	}
	check_placed(&t.deflt);
	/* default placement: the spawner's scheduler */
	assert_int_equal(t.deflt.sched, t.main_p.sched);

	assert_int_equal(t.node_bad, -EINVAL);
	assert_int_equal(t.node_neg, -EINVAL);
}

static void test_two_nodes_default_schedulers(void **state)
{
	(void)state;
	struct topo t;
	memset(&t, 0, sizeof t);
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0;1:1", 1), 0);
	RUN_OK(topo_main, &t, 0);
	assert_int_equal(t.schedulers, 2);
	assert_int_equal(t.sched_node[0], 0);
	assert_int_equal(t.sched_node[1], 1);
}

static void test_two_nodes_two_cpus_each(void **state)
{
	(void)state;
	struct topo t;
	memset(&t, 0, sizeof t);
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0-1;1:2-3", 1), 0);
	/* default: one scheduler per (synthetic) CPU */
	RUN_OK(topo_main, &t, 0);

	assert_int_equal(t.schedulers, 4);
	int per_node[2] = { 0, 0 };
	for (int s = 0; s < 4; s++) {
		assert_true(t.sched_node[s] == 0 || t.sched_node[s] == 1);
		per_node[t.sched_node[s]]++;
	}
	assert_int_equal(per_node[0], 2);
	assert_int_equal(per_node[1], 2);
	assert_int_equal(t.sched_node[4], -EINVAL);

	check_placed(&t.main_p);
	for (int node = 0; node < 2; node++)
		for (int k = 0; k < 4; k++) {
			check_placed(&t.by_node[node][k]);
			assert_int_equal(t.by_node[node][k].node, node);
			assert_int_equal(t.sched_node[t.by_node[node][k].sched], node);
		}
	for (int s = 0; s < 4; s++) {
		check_placed(&t.by_sched[s]);
		assert_int_equal(t.by_sched[s].sched, s);
		assert_int_equal(t.by_sched[s].node, t.sched_node[s]);
	}
	assert_int_equal(t.node_bad, -EINVAL);
}

static atomic_int ran;

static void mark_ran(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"garbage", "0:;", "0:0;0:1", "0:", ":0", "0:0-", "0:x", "x:0",
		"0:0;;1:1x", "0:3-1",
	};
	atomic_store(&ran, 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(setenv("UPROC_TOPOLOGY", bad[i], 1), 0);
		int rc = run_main(mark_ran, NULL, 0);
		if (rc != -EINVAL)
			fail_msg("UPROC_TOPOLOGY=\"%s\": up_run returned %d, not -EINVAL", bad[i], rc);
	}
	assert_int_equal(atomic_load(&ran), 0);

	/* A good description after the bad ones works. */
	assert_int_equal(setenv("UPROC_TOPOLOGY", "0:0;1:1", 1), 0);
	assert_int_equal(run_main(mark_ran, NULL, 0), 0);
	assert_int_equal(atomic_load(&ran), 1);
	unsetenv("UPROC_TOPOLOGY");
	assert_int_equal(run_main(mark_ran, NULL, 0), 0);
	assert_int_equal(atomic_load(&ran), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TOPO_TEST(test_two_nodes_one_cpu_each),
		TOPO_TEST(test_two_nodes_default_schedulers),
		TOPO_TEST(test_two_nodes_two_cpus_each),
		TOPO_TEST(test_malformed),
	};
	return UPT_RUN("topology", tests);
}
