/*
 * info.c - introspection: up_info (one process), up_sched_stats (one
 * scheduler), up_print_processes (every process, like Erlang's i()).
 *
 * A process's private fields belong to its scheduler's thread.  For the
 * caller and the processes of the caller's scheduler they are read as they
 * are (the reader is that thread, and it first takes what other threads
 * pushed to the inboxes); for the processes of other schedulers they are
 * read with relaxed atomic loads while the owner goes on: a snapshot whose
 * fields were each true a moment ago.  The pid tag is checked before and
 * after, so a process that exits while it is read gives -ESRCH, never a mix
 * of two processes.  Control blocks are never unmapped during a run
 * (region.h), so reading a dead or reused one is safe.
 *
 * Walking every process reads the generation table of every chunk: a slot
 * whose generation is 0 never held a process; the others are checked by
 * their tag.  That costs a read of every used control block, which is what
 * a table of every process costs anyway.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"

#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static enum up_status status_of(uint8_t state)
{
	switch (state) {
	case UP__P_RUNNING: return UP_ST_RUNNING;
	case UP__P_WAITING: return UP_ST_WAITING;
	case UP__P_SLEEPING: return UP_ST_SLEEPING;
	case UP__P_WAITING_IO:
	case UP__P_WAITING_ACCEPT: return UP_ST_WAITING_IO;
	case UP__P_EXITING:
	case UP__P_ZOMBIE: return UP_ST_EXITING;
	default: return UP_ST_RUNNABLE; /* runnable, or new */
	}
}

static int info_of(up_pid pid, struct up_info *info)
{
	struct up__proc *p = up__pid_proc(pid);
	if (!p)
		return -EINVAL;
	if (__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) != (uint64_t)pid)
		return -ESRCH;

	struct up__sched *self = up__self_sched;
	struct up__sched *s = __atomic_load_n(&p->sched, __ATOMIC_ACQUIRE);
	memset(info, 0, sizeof(*info));
	info->pid = pid;
	info->scheduler = s->index;
	info->node = s->node;
	info->region_bytes = RD(p->compact) ? up__regions.layout.compact_size
					    : up__regions.layout.slot_size;
	info->stack_bytes = up__regions.layout.stack_size;
	info->mailboxes = RD(p->nmb);
	if (s == self && p->state != UP__P_ZOMBIE) {
		/* Ours: exact, after taking what other threads pushed.  Taking
		 * mailbox 0 may act on an exit signal (the process then dies at
		 * its next switch, as it would at its next receive). */
		for (unsigned i = 0; i < info->mailboxes; i++)
			up__mailbox_drain(p, i);
	}
	info->status = status_of(RD(p->state));
	info->fn = RD(p->fn);
	info->reductions = RD(p->reds);
	if (self && self->current == p)
		info->reductions += (uint64_t)(UP__BUDGET - self->budget);
	info->heap_bytes = RD(p->heap_used);
	info->heap_limit = RD(p->heap_limit);
	for (unsigned i = 0; i < info->mailboxes && i < UP_MAX_MAILBOXES; i++)
		info->mailbox_len[i] = RD(p->queue[i].len);
	info->links = RD(p->sig.nlinks);
	info->monitors = RD(p->sig.nout);
	info->monitored_by = RD(p->sig.nin);
	info->trap_exit = RD(p->sig.trap_exit);
	info->name = RD(p->named) ? up__registry_name(pid) : UP_NIL;
	if (__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) != (uint64_t)pid)
		return -ESRCH;
	return 0;
}

static int stats_of(int sched, struct up_sched_stats *st)
{
	if (sched < 0 || sched >= up__rt.nsched)
		return -EINVAL;
	struct up__sched *s = up__rt.sched[sched];
	const uint64_t *src = (const uint64_t *)&s->stats;
	uint64_t *dst = (uint64_t *)st;
	for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	/* switches: runs plus returns to the loop (counted apart). */
	st->switches = st->runs + st->switches;
	st->long_runs = __atomic_load_n(&s->long_runs, __ATOMIC_RELAXED);
	long n = RD(s->nprocs);
	st->processes = n > 0 ? (uint64_t)n : 0;
	return 0;
}

static const char *status_name(enum up_status st)
{
	static const char *const names[] = {
		[UP_ST_RUNNING] = "running", [UP_ST_RUNNABLE] = "runnable",
		[UP_ST_WAITING] = "waiting", [UP_ST_SLEEPING] = "sleeping",
		[UP_ST_WAITING_IO] = "io", [UP_ST_EXITING] = "exiting",
	};
	return st >= UP_ST_RUNNING && st <= UP_ST_EXITING ? names[st] : "?";
}

/* The registered name, else the start function's symbol, else its address. */
static void describe(const struct up_info *in, char *buf, size_t size)
{
	Dl_info dl;
	if (in->name != UP_NIL && up_term_format(in->name, buf, size) >= 0)
		return;
	if (dladdr((void *)in->fn, &dl) && dl.dli_sname && dl.dli_saddr == (void *)in->fn)
		snprintf(buf, size, "%s/1", dl.dli_sname);
	else
		snprintf(buf, size, "%p", (void *)in->fn);
}

static int print_one(FILE *f, const struct up_info *in)
{
	char pid[40], what[48];
	long q = 0;
	for (unsigned i = 0; i < in->mailboxes; i++)
		q += in->mailbox_len[i];
	if (up_term_format(up_pid_term(in->pid), pid, sizeof(pid)) < 0)
		snprintf(pid, sizeof(pid), "%" PRId64, in->pid);
	describe(in, what, sizeof(what));
	return fprintf(f, "%-18s %-28s %-9s %12" PRIu64 " %10zu %7ld %5d\n", pid, what,
		       status_name(in->status), in->reductions, in->heap_bytes, q, in->scheduler);
}

/* Call fn(pid, arg) for every live process, in slot order, until it
 * returns non-zero (then return that). */
static int each_live(int (*fn)(up_pid, void *), void *arg)
{
	uint32_t nchunks = __atomic_load_n(&up__regions.nchunks, __ATOMIC_ACQUIRE);
	for (uint32_t c = 0; c < nchunks; c++) {
		struct up__chunk *ch = up__regions.chunk[c];
		for (uint32_t i = 0; i < UP__CHUNK_SLOTS; i++) {
			uint32_t gen = __atomic_load_n(&ch->gen[i], __ATOMIC_RELAXED);
			if (!gen)
				continue;
			up_pid pid = up__make_pid(c << UP__CHUNK_BITS | i, gen);
			struct up__proc *p = up__slot_proc(c << UP__CHUNK_BITS | i);
			if (__atomic_load_n(&p->inbox[0].tag, __ATOMIC_ACQUIRE) != (uint64_t)pid)
				continue;
			int r = fn(pid, arg);
			if (r)
				return r;
		}
	}
	return 0;
}

struct collect { up_pid *pids; size_t max; long n; };

static int collect_one(up_pid pid, void *arg)
{
	struct collect *c = arg;
	if ((size_t)c->n < c->max)
		c->pids[c->n] = pid;
	c->n++;
	return 0;
}

long up_processes(up_pid *pids, size_t max)
{
	if (!pids && max)
		return -EINVAL;
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	struct collect c = { pids, max, 0 };
	each_live(collect_one, &c);
	up__rt_leave(self);
	return c.n;
}

struct printing { FILE *f; long n; };

static int print_pid(up_pid pid, void *arg)
{
	struct printing *pr = arg;
	struct up_info in;
	if (info_of(pid, &in) != 0)
		return 0; /* exited meanwhile */
	if (print_one(pr->f, &in) < 0)
		return -EIO;
	pr->n++;
	return 0;
}

static long print_all(FILE *f)
{
	int err = 0;
	if (fprintf(f, "%-18s %-28s %-9s %12s %10s %7s %5s\n", "Pid", "Name or call", "Status",
		    "Reds", "Heap", "MsgQ", "Sched") < 0)
		err = 1;
	struct printing pr = { f, 0 };
	if (!err && each_live(print_pid, &pr) != 0)
		err = 1;
	long n = pr.n;
	for (int i = 0; i < up__rt.nsched && !err; i++) {
		struct up_sched_stats st;
		if (stats_of(i, &st) != 0)
			continue;
		if (fprintf(f, "scheduler %d (node %d): %" PRIu64 " processes, %" PRIu64 " runs, %" PRIu64
			    " sent, %" PRIu64 " received, %" PRIu64 " sleeps, %" PRIu64 " steals, %" PRIu64
			    " long runs\n", i, up__rt.sched[i]->node, st.processes, st.runs, st.msgs_sent,
			    st.msgs_recv, st.sleeps, st.steals, st.long_runs) < 0)
			err = 1;
	}
	if (err || fflush(f) != 0)
		return -EIO;
	return n;
}

/* The entry points: any thread.  A thread outside the runtime is counted in
 * as a guest (runtime.h), so up_run does not free the schedulers and
 * regions under it. */

int up_info(up_pid pid, struct up_info *info)
{
	if (!info)
		return -EINVAL;
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	int r = info_of(pid, info);
	up__rt_leave(self);
	return r;
}

int up_sched_stats(int sched, struct up_sched_stats *st)
{
	if (!st)
		return -EINVAL;
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	int r = stats_of(sched, st);
	up__rt_leave(self);
	return r;
}

long up_print_processes(FILE *f)
{
	if (!f)
		return -EINVAL;
	struct up__sched *self = up__self_sched;
	if (!up__rt_enter(self))
		return -ESRCH;
	long r = print_all(f);
	up__rt_leave(self);
	return r;
}
