/*
 * runtime.c - up_run/up_shutdown, the runtime's options, start-up and
 * tear-down, and live-process accounting (see runtime.h).
 *
 * Start-up: topology -> node arenas -> region layout -> one scheduler per
 * CPU (struct on its node, thread pinned; ring created by the thread) ->
 * main process.  Tear-down, on up_run's thread after every scheduler thread
 * has been joined (so nothing runs concurrently): reap what is left, free
 * caches, unmap chunks, destroy arenas.
 */
#include "runtime.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "dist.h"
#include "node_mem.h"
#include "proc.h"
#include "region.h"
#include "scheduler.h"

#define KIB ((size_t)1024)
#define DEFAULT_STACK (64 * KIB)
#define DEFAULT_HEAP (56 * KIB) /* a 128 KiB slot with the default stack */
#define MIN_STACK (16 * KIB)
#define MAX_AREA ((size_t)1 << 30)
#define DEFAULT_MAX_PROCS ((int64_t)1 << 24)
#define CREDIT_BATCH 64

struct up__runtime up__rt = {
	.init_lock = PTHREAD_MUTEX_INITIALIZER,
	.init_cv = PTHREAD_COND_INITIALIZER,
};

/* ------------------------------------------------------- live accounting */

static inline int64_t live_add(int64_t n)
{
	return __atomic_add_fetch(&up__rt.live, n, __ATOMIC_ACQ_REL);
}

int up__live_acquire(struct up__sched *s)
{
	if (s && s->credits > 0) {
		s->credits--;
		return 0;
	}
	int64_t want = s ? up__rt.credit_batch : 1;
	if (live_add(want) <= up__rt.max_processes) {
		if (s)
			s->credits += want - 1;
		return 0;
	}
	live_add(-want);
	if (want > 1 && live_add(1) <= up__rt.max_processes)
		return 0;
	if (want > 1)
		live_add(-1);
	return -EAGAIN;
}

void up__live_undo(struct up__sched *s)
{
	if (s)
		s->credits++;
	else
		live_add(-1);
}

void up__live_release(struct up__sched *s)
{
	long keep = up__rt.credit_batch > 1 ? up__rt.credit_batch : 0;
	if (++s->credits > 2 * keep) {
		long give = s->credits - keep;
		s->credits = keep;
		if (live_add(-give) == 0)
			up__rt_stop();
	}
}

void up__live_flush(struct up__sched *s)
{
	if (s->credits) {
		long give = s->credits;
		s->credits = 0;
		if (live_add(-give) == 0)
			up__rt_stop();
	}
}

void up__rt_stop(void)
{
	__atomic_store_n(&up__rt.stopping, 1, __ATOMIC_SEQ_CST);
	if (!up__rt_ready())
		return;
	for (int i = 0; i < up__rt.nsched; i++)
		up__sched_kick(up__rt.sched[i]);
}

/* ---------------------------------------------------------------- up_run */

static int apply_opts(const struct up_run_opts *o, size_t *stack, size_t *heap)
{
	struct up_run_opts d = {0};
	if (!o)
		o = &d;
	if (o->stack_size > MAX_AREA || o->heap_size > MAX_AREA ||
	    o->schedulers > UP__MAX_CPUS ||
	    o->max_processes > ((uint64_t)1 << UP__SLOT_BITS) ||
	    (o->spin_us > 1000000 && o->spin_us != UP_NO_SPIN) ||
	    o->warm_regions > (1u << 20) || o->max_message_size > MAX_AREA ||
	    (o->max_message_size && o->max_message_size < 256) ||
	    (o->flags & ~UP_RUN_NO_BALANCE) || o->long_run_us > 60000000u ||
	    (o->on_long_run && !o->long_run_us))
		return -EINVAL;
	*stack = o->stack_size ? o->stack_size : DEFAULT_STACK;
	if (*stack < MIN_STACK)
		*stack = MIN_STACK;
	*stack = (*stack + UP__PAGE - 1) & ~(UP__PAGE - 1);
	*heap = o->heap_size ? o->heap_size : DEFAULT_HEAP;
	*heap = (*heap + UP__PAGE - 1) & ~(UP__PAGE - 1);
	up__rt.nsched = o->schedulers ? (int)o->schedulers : up__rt.topo.ncpus;
	up__rt.max_processes = o->max_processes ? (int64_t)o->max_processes : DEFAULT_MAX_PROCS;
	/* Credits in batches only where a batch is a rounding error. */
	up__rt.credit_batch = up__rt.max_processes >= 65536 ? CREDIT_BATCH : 1;
	up__rt.spin_ns = o->spin_us == UP_NO_SPIN ? 0 : (int64_t)(o->spin_us ? o->spin_us : 50) * 1000;
	up__rt.warm_regions = o->warm_regions ? o->warm_regions : 1024;
	up__rt.max_message_size = o->max_message_size ? o->max_message_size : ((size_t)64 << 20);
	up__rt.balance = !(o->flags & UP_RUN_NO_BALANCE);
	up__rt.long_run_ns = (int64_t)o->long_run_us * 1000;
	up__rt.on_long_run = o->on_long_run;
	up__rt.long_run_arg = o->long_run_arg;
	return 0;
}

static void free_schedulers(void)
{
	if (!up__rt.sched)
		return;
	for (int i = 0; i < up__rt.nsched; i++)
		if (up__rt.sched[i]) {
			free(up__rt.sched[i]->peers);
			up__node_free(up__rt.sched[i], sizeof(struct up__sched));
		}
	free(up__rt.sched);
	up__rt.sched = NULL;
}

static int make_schedulers(void)
{
	up__rt.sched = calloc((size_t)up__rt.nsched, sizeof(*up__rt.sched));
	if (!up__rt.sched)
		return -ENOMEM;
	for (int i = 0; i < up__rt.nsched; i++) {
		int ci = i % up__rt.topo.ncpus;
		int node = up__rt.topo.cpu_node[ci];
		struct up__sched *s = up__node_alloc_line(node, sizeof(*s));
		if (!s)
			return -ENOMEM;
		memset(s, 0, sizeof(*s));
		s->index = i;
		s->node = node;
		s->cpu = up__rt.topo.pin_cpu[ci];
		s->efd = -1;
		up__rt.sched[i] = s;
	}
	/* Peers: the other schedulers of the same node (balancing, when on;
	 * the node's memory work, always). */
	for (int i = 0; i < up__rt.nsched; i++) {
		struct up__sched *s = up__rt.sched[i];
		for (int j = 0; j < up__rt.nsched; j++) {
			struct up__sched *t = up__rt.sched[j];
			if (t == s || t->node != s->node)
				continue;
			if (!s->peers && !(s->peers = calloc((size_t)up__rt.nsched, sizeof(*s->peers))))
				return -ENOMEM;
			s->peers[s->npeers++] = t;
		}
	}
	return 0;
}

int up_run(up_fn main_fn, void *arg, const struct up_run_opts *opts)
{
	size_t stack, heap;
	int r, expected = 0;

	if (!main_fn)
		return -EINVAL;
	if (!__atomic_compare_exchange_n(&up__rt.running, &expected, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return -EBUSY;
	up__rt.stopping = 0;
	up__rt.live = 0;
	up__rt.init_done = 0;
	up__rt.init_err = 0;
	up__rt.sched = NULL;

	if ((r = up__topology_load(&up__rt.topo)) != 0)
		goto out;
	if ((r = apply_opts(opts, &stack, &heap)) != 0)
		goto out;
	if ((r = up__node_mem_init(&up__rt.topo)) != 0)
		goto out_mem;
	if ((r = up__regions_init(stack, heap, sizeof(struct up__proc))) != 0)
		goto out_mem;
	if ((r = make_schedulers()) != 0)
		goto out_regions;
	if ((r = up__crash_install()) != 0)
		goto out_regions;
	int started = 0;
	for (; started < up__rt.nsched; started++)
		if ((r = up__sched_start(up__rt.sched[started])) != 0)
			break;
	if (r == 0)
		r = up__watchdog_start();
	if (r == 0) {
		__atomic_store_n(&up__rt.started, 1, __ATOMIC_RELEASE);
		up_pid main_pid = up_spawn(main_fn, arg);
		if (main_pid < 0)
			r = (int)main_pid;
	}
	up__rt.init_err = r;
	pthread_mutex_lock(&up__rt.init_lock);
	__atomic_store_n(&up__rt.init_done, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&up__rt.init_cv);
	pthread_mutex_unlock(&up__rt.init_lock);
	if (r != 0)
		up__rt_stop();
	/* Every thread made, the one whose start-up failed included. */
	for (int i = 0; i < up__rt.nsched; i++)
		up__sched_join(up__rt.sched[i]);
	up__watchdog_stop();
	/* Dekker with up__rt_enter: no new guest after this store; wait for
	 * those already in (a send or a kick: short).  Acquire: their
	 * accesses happen before the tear-down. */
	__atomic_store_n(&up__rt.started, 0, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&up__rt.guests, __ATOMIC_SEQ_CST))
		sched_yield();
	for (int i = 0; i < up__rt.nsched; i++)
		up__sched_cleanup(up__rt.sched[i]);
	up__table_fini();
	up__dist_reset(); /* a node does not outlive its run */
	up__crash_uninstall();
out_regions:
	free_schedulers();
	up__regions_fini();
out_mem:
	up__node_mem_fini();
out:
	__atomic_store_n(&up__rt.running, 0, __ATOMIC_RELEASE);
	return r;
}

int up_shutdown(void)
{
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	up__rt_stop();
	up__rt_leave(self);
	return 0;
}

int up_schedulers(void)
{
	return up__rt_ready() ? up__rt.nsched : -ESRCH;
}

int up_scheduler(void)
{
	return up__self_sched ? up__self_sched->index : -EPERM;
}

int up_node(void)
{
	struct up__sched *s = up__self_sched;
	return s && s->current ? s->node : -EPERM;
}

int up_scheduler_node(int sched)
{
	if (!up__rt_ready())
		return -ESRCH;
	if (sched < 0 || sched >= up__rt.nsched)
		return -EINVAL;
	return up__rt.sched[sched]->node;
}
