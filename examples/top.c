/*
 * top.c - a live, top-like view of a running uproc program.
 *
 * The program runs a small mixed workload (ping-pong pairs, a fan-in, a
 * worker that computes and charges its work with up_consume, sleepers, and
 * a crowd of idle processes) and one more process, `top`, that every second
 * prints per-scheduler rates from up_sched_stats and the busiest processes
 * by reductions in the last second, from up_processes and up_info.  Any
 * program can embed the `top` process: it only uses the public API.
 *
 *   top [-s SECONDS] [-n ROWS] [-S SCHEDULERS] [-l]
 *     -s  how long to run (default 5; 0: until interrupted)
 *     -n  process rows per screen (default 10)
 *     -S  schedulers (default: one per CPU)
 *     -l  end with Erlang i()-style table of every process (up_print_processes)
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uproc.h>

static int seconds = 5, rows = 10, list_at_end;
static volatile sig_atomic_t interrupted;

/* ------------------------------------------------------------ workload */

static void pinger(void *arg)
{
	up_pid peer = (up_pid)(intptr_t)arg;
	struct up_msg m;
	for (;;) {
		if (up_send_word(peer, (uint64_t)up_self()) != 0 || up_recv(&m, UP_INFINITY) != 0)
			return;
	}
}

static void ponger(void *arg)
{
	(void)arg;
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0)
		up_send_word((up_pid)m.word, 1);
}

/* A fan-in with flow control, as a real one needs: each producer asks for
 * an acknowledgement after every ACK_EVERY messages and waits for it, so the
 * collector's mailbox stays short even when producers run on another CPU. */
#define ACK_EVERY 1000
#define ACK_ME (1ull << 63)

static void collector(void *arg)
{
	(void)arg;
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0)
		if (m.word & ACK_ME)
			up_send_word((up_pid)(m.word & ~ACK_ME), 1);
}

static void producer(void *arg)
{
	up_pid to = (up_pid)(intptr_t)arg;
	struct up_msg ack;
	for (uint64_t i = 1;; i++) {
		uint64_t w = i % ACK_EVERY ? i : ACK_ME | (uint64_t)up_self();
		if (up_send_word(to, w) != 0)
			return;
		if ((w & ACK_ME) && up_recv(&ack, UP_INFINITY) != 0)
			return;
	}
}

static void cruncher(void *arg)
{
	(void)arg;
	volatile uint64_t x = 1;
	for (;;) {
		for (int i = 0; i < 1000; i++)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		up_consume(10); /* charge the work: others get the CPU too */
	}
}

static void sleeper(void *arg)
{
	int64_t ns = (int64_t)(intptr_t)arg;
	for (;;)
		up_sleep(ns);
}

static void idle(void *arg)
{
	(void)arg;
	struct up_msg m;
	up_recv(&m, UP_INFINITY);
}

static void start_workload(void)
{
	for (int i = 0; i < 2; i++) {
		up_pid pong = up_spawn(ponger, NULL);
		up_spawn(pinger, (void *)(intptr_t)pong);
	}
	up_pid sink = up_spawn(collector, NULL);
	up_register(up_atom("collector"), sink);
	for (int i = 0; i < 3; i++)
		up_spawn(producer, (void *)(intptr_t)sink);
	up_register(up_atom("cruncher"), up_spawn(cruncher, NULL));
	for (int i = 0; i < 4; i++)
		up_spawn(sleeper, (void *)(intptr_t)((i + 1) * 100000000LL));
	for (int i = 0; i < 1000; i++)
		up_spawn(idle, NULL);
}

/* ----------------------------------------------------------------- top */

struct row { up_pid pid; uint64_t reds; struct up_info in; };

static const char *status_name(enum up_status s)
{
	switch (s) {
	case UP_ST_RUNNING: return "running";
	case UP_ST_RUNNABLE: return "runnable";
	case UP_ST_WAITING: return "waiting";
	case UP_ST_SLEEPING: return "sleeping";
	case UP_ST_WAITING_IO: return "io";
	case UP_ST_EXITING: return "exiting";
	}
	return "?";
}

/* Reductions seen last time, by pid (a small open-addressing table). */
#define SEEN_CAP 8192
static struct { up_pid pid; uint64_t reds; } seen[SEEN_CAP], seen_next[SEEN_CAP];

static uint64_t *seen_slot(typeof(seen) *t, up_pid pid, int insert)
{
	for (size_t i = (size_t)pid * 11400714819323198485ull >> 51, k = 0; k < SEEN_CAP;
	     k++, i = (i + 1) % SEEN_CAP) {
		if ((*t)[i].pid == pid)
			return &(*t)[i].reds;
		if ((*t)[i].pid == 0) {
			if (!insert)
				return NULL;
			(*t)[i].pid = pid;
			return &(*t)[i].reds;
		}
	}
	return NULL;
}

static int by_reds(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return x->reds < y->reds ? 1 : x->reds > y->reds ? -1 : 0;
}

static void name_of(const struct up_info *in, char *buf, size_t size)
{
	if (in->name != UP_NIL && up_term_format(in->name, buf, size) >= 0)
		return;
	snprintf(buf, size, "-");
}

static void screen(int tick, struct up_sched_stats *prev, up_pid *pids, size_t cap,
		   struct row *r)
{
	int ns = up_schedulers();
	printf("\n--- uproc top: second %d, %d schedulers ---\n", tick, ns);
	printf("sched %9s %12s %12s %9s %8s %8s %7s\n", "procs", "runs/s", "msgs/s", "sleeps/s",
	       "steals", "io/s", "long");
	for (int i = 0; i < ns; i++) {
		struct up_sched_stats st;
		if (up_sched_stats(i, &st) != 0)
			continue;
		printf("%5d %9" PRIu64 " %12" PRIu64 " %12" PRIu64 " %9" PRIu64 " %8" PRIu64
		       " %8" PRIu64 " %7" PRIu64 "\n", i, st.processes, st.runs - prev[i].runs,
		       st.msgs_sent - prev[i].msgs_sent, st.sleeps - prev[i].sleeps, st.steals,
		       st.io_completed - prev[i].io_completed, st.long_runs);
		prev[i] = st;
	}
	long n = up_processes(pids, cap);
	if (n < 0)
		return;
	size_t k = 0;
	memset(seen_next, 0, sizeof(seen_next));
	for (long i = 0; i < n && (size_t)i < cap; i++) {
		struct up_info in;
		if (up_info(pids[i], &in) != 0)
			continue;
		uint64_t *last = seen_slot(&seen, pids[i], 0);
		uint64_t *next = seen_slot(&seen_next, pids[i], 1);
		if (next)
			*next = in.reductions;
		r[k].pid = pids[i];
		r[k].reds = in.reductions - (last ? *last : 0);
		r[k].in = in;
		k++;
	}
	memcpy(seen, seen_next, sizeof(seen));
	qsort(r, k, sizeof(*r), by_reds);
	printf("%ld processes; busiest in the last second:\n", n);
	printf("%-16s %-12s %-9s %12s %10s %6s %5s\n", "pid", "name", "status", "reds/s", "heap",
	       "msgq", "sched");
	for (size_t i = 0; i < k && i < (size_t)rows; i++) {
		char pid[32], name[32];
		long q = 0;
		for (unsigned m = 0; m < r[i].in.mailboxes; m++)
			q += r[i].in.mailbox_len[m];
		up_term_format(up_pid_term(r[i].pid), pid, sizeof(pid));
		name_of(&r[i].in, name, sizeof(name));
		printf("%-16s %-12s %-9s %12" PRIu64 " %10zu %6ld %5d\n", pid, name,
		       status_name(r[i].in.status), r[i].reds, r[i].in.heap_bytes, q,
		       r[i].in.scheduler);
	}
	fflush(stdout);
}

static void top(void *arg)
{
	(void)arg;
	size_t cap = 4096;
	up_pid *pids = malloc(cap * sizeof(*pids));
	struct row *r = malloc(cap * sizeof(*r));
	struct up_sched_stats prev[256];
	memset(prev, 0, sizeof(prev));
	if (!pids || !r) {
		up_shutdown();
		return;
	}
	for (int tick = 1; !interrupted && (seconds == 0 || tick <= seconds); tick++) {
		up_sleep(1000000000);
		screen(tick, prev, pids, cap, r);
	}
	if (list_at_end)
		up_print_processes(stdout);
	free(pids);
	free(r);
	up_shutdown(); /* the workload runs for ever: end it */
}

static void main_process(void *arg)
{
	(void)arg;
	start_workload();
	up_register(up_atom("top"), up_spawn(top, NULL));
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	struct up_run_opts o = { 0 };
	int c;
	while ((c = getopt(argc, argv, "s:n:S:l")) != -1) {
		switch (c) {
		case 's': seconds = atoi(optarg); break;
		case 'n': rows = atoi(optarg); break;
		case 'S': o.schedulers = (unsigned)atoi(optarg); break;
		case 'l': list_at_end = 1; break;
		default:
			fprintf(stderr, "usage: top [-s SECONDS] [-n ROWS] [-S SCHEDULERS] [-l]\n");
			return 2;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	o.long_run_us = 100000; /* count processes that hog a CPU for 100 ms */
	int r = up_run(main_process, NULL, &o);
	if (r != 0) {
		fprintf(stderr, "top: up_run: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
