/*
 * soak.c - the soak test: `soak [SECONDS]` (default 30) runs four loads
 * together in one runtime of 2 schedulers and fails if a resource grows
 * without bound or a load stalls or misbehaves:
 *
 *  - churn: one spawner per scheduler spawns short-lived processes at full
 *    speed; every 64th has a heap_limit it passes (its DOWN must say
 *    heap_limit); every other one is a compact process (UP_SPAWN_COMPACT),
 *    as are the ping-pong echoes and half the HTTP handlers (their
 *    receive buffers on the shared stack are bounced);
 *  - messaging: pairs across the two schedulers ping-pong terms and words
 *    (every reply checked), and a flooder feeds a slow receiver's
 *    DROP_OLDEST mailbox from the other scheduler;
 *  - supervision: a one_for_one supervisor of 8 workers, a killer process
 *    ending a random worker every few milliseconds (kill or a custom
 *    reason); at the end restarts must equal kills;
 *  - HTTP: an acceptor and a handler process per connection on a loopback
 *    port, client processes on both schedulers doing keep-alive requests
 *    (every response checked) and reconnecting.
 *
 * A sampler thread reads, every second, RSS (/proc/self/statm), open
 * descriptors (/proc/self/fd) and live processes (the schedulers'
 * up_sched_stats().processes).
 *
 * "Grows without bound": the first half of the run is warm-up (caches,
 * arenas, warm regions fill); a least-squares line is fitted to each
 * metric over the second half, and the run fails when its slope, kept up
 * for as long again as the whole run, would add more than the tolerance:
 * RSS max(32 MiB, a quarter of its mean) (twice that under ASan),
 * descriptors 16, processes max(256, a quarter of the mean) -- and when,
 * as a steady leak would, the mean of the last quarter also exceeds that of
 * the second quarter by half the tolerance (a noisy fit alone does not
 * fail the run).  A bounded
 * metric oscillates around a flat line; a leak keeps a positive slope, and
 * the longer the run, the smaller the leak it catches (600 s: ~0.05 MiB/s).
 * SOAK_LEAK_MB=n leaks n MiB a second (the soak-detects-leak test: the
 * criterion must fail it).  Also: every load must make progress in each
 * quarter of the run, no check
 * may fail, and descriptors after up_run must equal those before.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "uproc.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
/* A small quarantine: ASan's default (256 MiB) would fill during the run
 * and look like growth. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=16"; }
#else
#define ASAN 0
#endif

#define MS 1000000LL
#define SEC 1000000000LL
/* Waits that "cannot" time out: generous, the machine may be shared and
 * loaded (the soak is about growth, not latency). */
#define WAIT (15 * SEC)
#define N_PAIRS 16
#define N_WORKERS 8
#define N_CLIENTS 8
#define MAX_SAMPLES 100000

static atomic_int stop;
static atomic_int failures;
static char fail_msg[16][240];

#define FAIL(...)                                                               \
	do {                                                                    \
		int i_ = atomic_fetch_add(&failures, 1);                        \
		if (i_ < 16)                                                    \
			snprintf(fail_msg[i_], sizeof fail_msg[i_], __VA_ARGS__); \
	} while (0)

/* Progress counters, one per load. */
enum { L_SPAWN, L_HEAPKILL, L_MSG, L_FLOOD, L_KILL, L_HTTP, NLOADS };
static const char *const load_name[NLOADS] = { "spawns", "heap_limit exits", "round trips",
					       "flood sends", "supervisor kills", "HTTP requests" };
static atomic_long progress[NLOADS];
static unsigned loads_on = 31;
static const unsigned load_bit[NLOADS] = { 1, 1, 2, 4, 8, 16 };

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static up_term A(const char *s) { return up_atom(s); }

static up_term el(up_term t, size_t i)
{
	up_term e;
	return up_tuple_elem(t, i, &e) == 0 ? e : UP_NIL;
}

/* ---------------------------------------------------------------- churn */

/* A short life: tell the churner it is over (its window), then end. */
static void child_noop(void *arg)
{
	up_send_word((up_pid)(intptr_t)arg, 1);
}

static void child_hog(void *arg)
{
	(void)arg;
	for (;;)
		(void)up_alloc(4096); /* ends with heap_limit */
}

/* Keeps CHURN_BATCH children alive, spawning as fast as they end (a
 * sliding window: without one a spawner outruns its children).  The spawn
 * stack then never empties: a process spawned by someone else (a
 * supervisor's restart) runs only thanks to the spawn stack's aging; before
 * it, this load starved the supervisor's restarts for seconds. */
#define CHURN_BATCH 256

/* Every other process of a load is a compact one. */
static inline unsigned compact(unsigned n)
{
	return n & 1 ? UP_SPAWN_COMPACT : 0;
}

static void churner(void *arg)
{
	(void)arg;
	void *self = (void *)(intptr_t)up_self();
	unsigned n = 0;
	int alive = 0;
	long mark = -1;
	while (!atomic_load(&stop) || alive > 0) {
		int batch = CHURN_BATCH - alive;
		if (batch) {
			/* Monitor references live in this heap: one per hog,
			 * ~0.7 MiB/s at full speed if never reset. */
			if (mark >= 0)
				up_heap_reset(mark);
			mark = up_heap_mark();
		}
		for (int k = 0; k < batch && !atomic_load(&stop); k++) {
			up_pid p;
			if (++n % 64 == 0) {
				struct up_spawn_opts o = { .flags = UP_SPAWN_MONITOR | compact(n / 64),
							   .heap_limit = 16384 };
				p = up_spawn_opt(child_hog, NULL, &o);
			} else {
				struct up_spawn_opts o = { .flags = compact(n) };
				p = up_spawn_opt(child_noop, self, &o);
			}
			if (p <= 0) {
				FAIL("spawn: %" PRId64, p);
				break;
			}
			alive++;
			atomic_fetch_add(&progress[L_SPAWN], 1);
		}
		struct up_msg m;
		if (up_recv(&m, WAIT) != 0) {
			FAIL("churn: %d children silent for %lld s", alive, WAIT / SEC);
			return;
		}
		alive--;
		if (m.kind == UP_MSG_TERM) {
			if (el(m.term, 4) != UP_HEAP_LIMIT)
				FAIL("a heap hog ended otherwise");
			else
				atomic_fetch_add(&progress[L_HEAPKILL], 1);
			up_msg_free(&m);
		}
	}
}

/* ------------------------------------------------------------ messaging */

static void echo(void *arg)
{
	(void)arg;
	struct up_msg m;
	for (;;) {
		if (up_recv(&m, WAIT) != 0) {
			if (!atomic_load(&stop))
				FAIL("echo: nothing for %lld s", WAIT / SEC);
			return;
		}
		if (m.kind == UP_MSG_WORD) {
			if (m.word == UINT64_MAX)
				return;
			continue; /* a word from the pinger is just counted there */
		}
		up_pid from;
		if (up_get_pid(el(m.term, 0), &from) != 0) {
			FAIL("echo: bad message");
			return;
		}
		int rc = up_send(from, el(m.term, 1));
		up_msg_free(&m);
		if (rc != 0) {
			FAIL("echo: send %d", rc);
			return;
		}
	}
}

static void pinger(void *arg)
{
	int sched = (int)(intptr_t)arg;
	struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER | UP_SPAWN_COMPACT,
				   .scheduler = 1 - sched };
	up_pid e = up_spawn_opt(echo, NULL, &o);
	static const char pad[100] = "soak";
	up_term self = up_pid_term(up_self());
	long mark = up_heap_mark();
	for (int64_t k = 0; !atomic_load(&stop); k++) {
		up_heap_reset(mark);
		mark = up_heap_mark();
		up_term body = up_tuplev(2, up_int(k), up_binary(pad, sizeof pad));
		int rc = up_send(e, up_tuplev(2, self, body));
		if (rc == 0)
			rc = up_send_word(e, (uint64_t)k);
		struct up_msg m;
		if (rc == 0)
			rc = up_recv(&m, WAIT);
		if (rc != 0) {
			FAIL("pinger: %d", rc);
			return;
		}
		if (!up_equal(m.term, body))
			FAIL("pinger: wrong reply");
		up_msg_free(&m);
		atomic_fetch_add(&progress[L_MSG], 1);
	}
	up_send_word(e, UINT64_MAX);
}

/* A slow receiver with a DROP_OLDEST mailbox of 32, fed from the other
 * scheduler faster than it takes. */
static void slow_receiver(void *arg)
{
	(void)arg;
	struct up_msg m;
	while (!atomic_load(&stop)) {
		if (up_recv(&m, 100 * MS) == 0)
			up_msg_free(&m);
		if (up_mailbox_len(0) > 32)
			FAIL("DROP_OLDEST mailbox over its limit");
		up_sleep(MS / 10);
	}
}

static void flooder(void *arg)
{
	(void)arg;
	struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER, .scheduler = 0 };
	o.mailbox_limit[0] = 32;
	o.mailbox_policy[0] = UP_MAILBOX_DROP_OLDEST;
	up_pid r = up_spawn_opt(slow_receiver, NULL, &o);
	static const char pad[128];
	long mark = up_heap_mark();
	for (int64_t k = 0; !atomic_load(&stop); k++) {
		up_heap_reset(mark);
		mark = up_heap_mark();
		int rc = up_send(r, up_tuplev(2, up_int(k), up_binary(pad, sizeof pad)));
		if (rc != 0 && !(rc == -ESRCH && atomic_load(&stop))) {
			FAIL("flooder: %d", rc);
			return;
		}
		atomic_fetch_add(&progress[L_FLOOD], 1);
		/* Paced (~100 k msg/s): unpaced, its backlog between two trims
		 * depends on when the OS runs the receiver's scheduler thread,
		 * and RSS swings by tens of MiB with it. */
		if ((k & 31) == 0)
			up_sleep(MS / 10);
	}
}

/* ---------------------------------------------------------- supervision */

static void worker(void *arg)
{
	(void)arg;
	long mark = up_heap_mark();
	struct up_msg m;
	while (!atomic_load(&stop)) {
		up_heap_reset(mark);
		mark = up_heap_mark();
		(void)up_list(3, (up_term[]){ up_int(1), A("work"), up_binary("x", 1) });
		if (up_recv(&m, 50 * MS) == 0)
			up_msg_free(&m);
	}
	up_recv(&m, UP_INFINITY); /* until the supervisor stops it */
}

static const char *const worker_ids[N_WORKERS] = { "w0", "w1", "w2", "w3",
						   "w4", "w5", "w6", "w7" };

static void killer(void *arg)
{
	up_pid sup = *(up_pid *)arg;
	unsigned seed = 12345;
	long kills = 0;
	long mark = up_heap_mark();
	while (!atomic_load(&stop)) {
		/* call replies and reasons land in this heap: reset it */
		up_heap_reset(mark);
		mark = up_heap_mark();
		int i = (int)(rand_r(&seed) % N_WORKERS);
		up_pid w = up_supervisor_child(sup, A(worker_ids[i]), WAIT);
		if (w > 0) {
			up_term why = rand_r(&seed) & 1 ? UP_KILL : up_tuplev(2, A("soak"), up_int(i));
			if (up_exit(w, why) == 0) {
				kills++;
				atomic_fetch_add(&progress[L_KILL], 1);
				/* dead before the next pick (no second kill of
				 * a dying pid) */
				for (int k = 0; k < 10000 && up_alive(w) == 1; k++)
					up_sleep(MS / 10);
			}
		} else if (w != -ESRCH) {
			FAIL("up_supervisor_child: %" PRId64, w);
		}
		up_sleep(2 * MS);
	}
	up_sleep(100 * MS); /* the last restarts */
	long r = up_supervisor_restarts(sup, WAIT);
	if (r != kills)
		FAIL("supervisor: %ld restarts for %ld kills", r, kills);
}

/* ----------------------------------------------------------------- HTTP */

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char request[] = "GET / HTTP/1.1\r\nHost: soak\r\n\r\n";

static void handler(void *arg)
{
	int fd = (int)(intptr_t)arg;
	if (up_io_own(fd) != 0) {
		close(fd);
		FAIL("handler: own");
		return;
	}
	char buf[1024];
	size_t have = 0;
	for (;;) {
		ssize_t n = up_io_recv(fd, buf + have, sizeof buf - 1 - have, 0, WAIT);
		if (n == 0)
			return; /* the client closed: the fd is closed at exit */
		if (n < 0) {
			if (!atomic_load(&stop))
				FAIL("handler recv: %zd", n);
			return;
		}
		have += (size_t)n;
		buf[have] = 0;
		char *end;
		while ((end = strstr(buf, "\r\n\r\n"))) {
			ssize_t w = up_io_send(fd, response, sizeof response - 1, 0, WAIT);
			if (w < 0) {
				FAIL("handler send: %zd", w);
				return;
			}
			size_t used = (size_t)(end + 4 - buf);
			memmove(buf, buf + used, have - used + 1);
			have -= used;
		}
		if (have >= sizeof buf - 1) {
			FAIL("handler: request too long");
			return;
		}
	}
}

static void acceptor(void *arg)
{
	int lfd = *(int *)arg;
	up_io_own(lfd);
	while (!atomic_load(&stop)) {
		int fd = up_io_accept(lfd, NULL, NULL, 100 * MS);
		if (fd == -ETIMEDOUT)
			continue;
		if (fd < 0) {
			FAIL("accept: %d", fd);
			up_sleep(10 * MS);
			continue;
		}
		struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER | compact((unsigned)fd >> 1),
					   .scheduler = fd & 1 };
		if (up_spawn_opt(handler, (void *)(intptr_t)fd, &o) <= 0) {
			close(fd);
			FAIL("handler spawn");
		}
	}
}

static void client(void *arg)
{
	const struct sockaddr_in *addr = arg;
	char buf[256];
	while (!atomic_load(&stop)) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || up_io_own(fd) != 0) {
			FAIL("client socket");
			return;
		}
		int rc = up_io_connect(fd, (const struct sockaddr *)addr, sizeof *addr, WAIT);
		if (rc != 0) {
			if (!atomic_load(&stop))
				FAIL("connect: %d", rc);
			up_io_close(fd);
			return;
		}
		for (int k = 0; k < 20 && !atomic_load(&stop); k++) {
			if (up_io_send(fd, request, sizeof request - 1, 0, WAIT) < 0) {
				if (!atomic_load(&stop))
					FAIL("client send");
				break;
			}
			size_t have = 0;
			while (have < sizeof response - 1) {
				ssize_t n = up_io_recv(fd, buf + have, sizeof buf - have, 0, WAIT);
				if (n <= 0) {
					/* after the stop the acceptor is gone and
					 * the connections it still queued are reset */
					if (!atomic_load(&stop))
						FAIL("client recv: %zd", n);
					break;
				}
				have += (size_t)n;
			}
			if (have != sizeof response - 1 || memcmp(buf, response, have) != 0) {
				if (!atomic_load(&stop))
					FAIL("client: bad response");
				break;
			}
			atomic_fetch_add(&progress[L_HTTP], 1);
		}
		up_io_close(fd);
	}
}

/* ------------------------------------------------------------- sampling */

struct sample {
	double t;
	double rss, fds, procs;
	long progress[NLOADS];
};

static struct sample *samples;
static int nsamples;
static int64_t duration_ns;

static double rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", "..", and the directory's own descriptor */
}

/* Live processes: the sum of every scheduler's count (up_sched_stats). */
static long live_processes(void)
{
	long n = 0;
	int ns = up_schedulers();
	for (int i = 0; i < ns; i++) {
		struct up_sched_stats st;
		if (up_sched_stats(i, &st) == 0)
			n += (long)st.processes;
	}
	return n;
}

static void *leaked[1024];
static int nleaked;

static void *sampler(void *arg)
{
	(void)arg;
	const char *leak_env = getenv("SOAK_LEAK_MB");
	long leak_mb = leak_env ? strtol(leak_env, NULL, 10) : 0;
	int64_t t0 = now_ns();
	for (int i = 1;; i++) {
		int64_t next = t0 + (int64_t)i * SEC;
		while (now_ns() < next) {
			struct timespec ts = { 0, 20 * MS };
			nanosleep(&ts, NULL);
		}
		/* SOAK_LEAK_MB=n (self-check of the criterion): leak n MiB a
		 * second, touched, so the run must fail. */
		if (leak_mb > 0 && nleaked < 1024) {
			/* kept reachable: the run must fail by the criterion,
			 * not by LeakSanitizer */
			leaked[nleaked] = malloc((size_t)leak_mb << 20);
			if (leaked[nleaked])
				memset(leaked[nleaked++], 1, (size_t)leak_mb << 20);
		}
		struct sample *s = &samples[nsamples];
		s->t = (double)(now_ns() - t0) / 1e9;
		s->rss = rss_bytes();
		s->fds = fd_count();
		s->procs = (double)live_processes();
		for (int l = 0; l < NLOADS; l++)
			s->progress[l] = atomic_load(&progress[l]);
		if (getenv("SOAK_VERBOSE"))
			fprintf(stderr, "  t=%5.1f rss=%7.1f MiB fds=%3.0f procs=%6.0f\n", s->t,
				s->rss / 1048576, s->fds, s->procs);
		nsamples++;
		if ((int64_t)i * SEC >= duration_ns || nsamples == MAX_SAMPLES)
			break;
	}
	atomic_store(&stop, 1);
	return NULL;
}

/* ----------------------------------------------------------------- main */

struct soak_ctx {
	int lfd;
	struct sockaddr_in addr;
	up_pid sup;
};

static up_term watch(up_fn fn, void *arg, int sched)
{
	struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER | UP_SPAWN_MONITOR,
				   .scheduler = sched };
	up_pid p = up_spawn_opt(fn, arg, &o);
	if (p <= 0) {
		FAIL("spawn a load: %" PRId64, p);
		return UP_NIL;
	}
	return o.monitor_ref;
}

static void soak_main(void *arg)
{
	struct soak_ctx *c = arg;
	int nwatched = 0;
	up_trap_exit(1); /* the supervisor is linked to us; its stop is ours to see */

	struct up_child_spec kids[N_WORKERS];
	for (int i = 0; i < N_WORKERS; i++)
		kids[i] = (struct up_child_spec){ .id = A(worker_ids[i]), .start = worker,
						  .restart = UP_PERMANENT,
						  .shutdown_ns = UP_BRUTAL_KILL };
	struct up_sup_spec spec = { .strategy = UP_ONE_FOR_ONE, .intensity = 1000000,
				    .period_ns = SEC, .nchildren = N_WORKERS, .children = kids };
	c->sup = up_supervisor_start(&spec);
	if (c->sup <= 0) {
		FAIL("supervisor: %" PRId64, c->sup);
		up_shutdown();
		return;
	}
	/* SOAK_LOADS=mask (debugging): 1 churn, 2 ping-pong, 4 flood, 8 kills,
	 * 16 HTTP; default all. */
	const char *env = getenv("SOAK_LOADS");
	unsigned on = env ? (unsigned)strtoul(env, NULL, 0) : 31;
	for (int s = 0; s < 2; s++) {
		if (on & 1)
			nwatched += watch(churner, NULL, s) != UP_NIL;
		for (int i = 0; (on & 2) && i < N_PAIRS / 2; i++)
			nwatched += watch(pinger, (void *)(intptr_t)s, s) != UP_NIL;
		for (int i = 0; (on & 16) && i < N_CLIENTS / 2; i++)
			nwatched += watch(client, &c->addr, s) != UP_NIL;
	}
	if (on & 4)
		nwatched += watch(flooder, NULL, 1) != UP_NIL;
	if (on & 8)
		nwatched += watch(killer, &c->sup, 0) != UP_NIL;
	nwatched += watch(acceptor, &c->lfd, 1) != UP_NIL;
	loads_on = on;

	pthread_t t;
	if (pthread_create(&t, NULL, sampler, NULL) != 0) {
		FAIL("sampler thread");
		atomic_store(&stop, 1);
	}
	/* Every load must end by itself once told to stop. */
	int64_t deadline = INT64_MAX;
	for (int n = 0; n < nwatched;) {
		struct up_msg m;
		if (atomic_load(&stop) && deadline == INT64_MAX)
			deadline = now_ns() + 30 * SEC;
		if (now_ns() > deadline) {
			FAIL("%d of %d loads did not end within 30 s of the stop", nwatched - n,
			     nwatched);
			break;
		}
		if (up_recv(&m, 500 * MS) != 0)
			continue;
		if (up_tuple_arity(m.term) == 5 && el(m.term, 0) == A("DOWN")) {
			if (el(m.term, 4) != UP_NORMAL) {
				char b[200];
				up_term_format(el(m.term, 4), b, sizeof b);
				FAIL("a load ended with %s", b);
			}
			n++;
		}
		up_msg_free(&m);
	}
	pthread_join(t, NULL);
	int rc = up_supervisor_stop(c->sup, 10 * SEC);
	if (rc != 0)
		FAIL("supervisor stop: %d", rc);
	/* Handlers end when their clients have closed; anything left over is
	 * ended here (up_run returns either way). */
	up_sleep(200 * MS);
	up_shutdown();
}

/* Least-squares slope of metric `off` over samples [from, to). */
static double slope(int from, int to, size_t off, double *mean)
{
	double st = 0, sy = 0, stt = 0, sty = 0;
	int n = to - from;
	for (int i = from; i < to; i++) {
		double t = samples[i].t, y = *(double *)((char *)&samples[i] + off);
		st += t, sy += y, stt += t * t, sty += t * y;
	}
	*mean = sy / n;
	double d = n * stt - st * st;
	return d > 0 ? (n * sty - st * sy) / d : 0;
}

int main(int argc, char **argv)
{
	long secs = argc > 1 ? strtol(argv[1], NULL, 10) : 30;
	if (secs < 8) {
		fprintf(stderr, "usage: soak [SECONDS >= 8]\n");
		return 2;
	}
	duration_ns = secs * SEC;
	samples = calloc(MAX_SAMPLES, sizeof *samples);
	struct soak_ctx c = { 0 };
	c.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c.addr.sin_family = AF_INET;
	c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof c.addr;
	if (!samples || c.lfd < 0 ||
	    bind(c.lfd, (struct sockaddr *)&c.addr, sizeof c.addr) != 0 ||
	    listen(c.lfd, 256) != 0 ||
	    getsockname(c.lfd, (struct sockaddr *)&c.addr, &alen) != 0) {
		perror("soak: listening socket");
		return 1;
	}
	int fds_before = fd_count() - 1; /* the listener is closed by its owner */

	struct up_run_opts o = { .schedulers = 2, .max_processes = 200000 };
	int64_t t0 = now_ns();
	int rc = up_run(soak_main, &c, &o);
	double took = (double)(now_ns() - t0) / 1e9;
	if (rc != 0)
		FAIL("up_run: %d", rc);
	int fds_after = fd_count();
	if (fds_after != fds_before)
		FAIL("descriptors: %d before up_run, %d after", fds_before, fds_after);

	printf("soak: %ld s requested, %.1f s run, %d samples\n", secs, took, nsamples);
	if (nsamples < 8) {
		FAIL("only %d samples", nsamples);
	} else {
		int half = nsamples / 2;
		const struct { const char *name; size_t off; double floor, frac, unit; } m[] = {
			{ "RSS (MiB)", offsetof(struct sample, rss), (ASAN ? 64.0 : 32.0) * 1048576,
			  ASAN ? 0.5 : 0.25, 1048576 },
			{ "descriptors", offsetof(struct sample, fds), 16, 0, 1 },
			{ "processes", offsetof(struct sample, procs), 256, 0.25, 1 },
		};
		for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
			double mean;
			double b = slope(half, nsamples, m[i].off, &mean);
			double proj = b * (double)secs;
			double tol = m[i].floor > m[i].frac * mean ? m[i].floor : m[i].frac * mean;
			double first = *(double *)((char *)&samples[0] + m[i].off);
			double last = *(double *)((char *)&samples[nsamples - 1] + m[i].off);
			printf("  %-12s start %10.1f  end %10.1f  2nd-half mean %10.1f  slope %+9.3f/s"
			       "  projected %+10.1f (tolerance %.1f)\n",
			       m[i].name, first / m[i].unit, last / m[i].unit, mean / m[i].unit,
			       b / m[i].unit, proj / m[i].unit, tol / m[i].unit);
			/* A leak of rate r shows in both: the fit projects rT and
			 * the last quarter's mean exceeds the second's by rT/2.
			 * Noise rarely fools both. */
			double q2, q4;
			(void)slope(nsamples / 4, half, m[i].off, &q2);
			(void)slope(3 * nsamples / 4, nsamples, m[i].off, &q4);
			if (proj > tol && q4 - q2 > tol / 2)
				FAIL("%s grows without bound: %+.3f/s, last quarter %+.1f over the "
				     "second", m[i].name, b / m[i].unit, (q4 - q2) / m[i].unit);
		}
		/* Every load progressed in every quarter. */
		for (int q = 0; q < 4; q++) {
			int a = q * nsamples / 4, z = (q + 1) * nsamples / 4 - 1;
			for (int l = 0; l < NLOADS; l++) {
				long before = a ? samples[a - 1].progress[l] : 0;
				if ((loads_on & load_bit[l]) && samples[z].progress[l] <= before)
					FAIL("%s stalled in quarter %d", load_name[l], q + 1);
			}
		}
		for (int l = 0; l < NLOADS; l++)
			printf("  %-17s %12ld (%.0f/s)\n", load_name[l],
			       samples[nsamples - 1].progress[l],
			       samples[nsamples - 1].progress[l] / samples[nsamples - 1].t);
	}
	int nf = atomic_load(&failures);
	for (int i = 0; i < nf && i < 16; i++)
		printf("FAIL: %s\n", fail_msg[i]);
	printf("soak: %s\n", nf ? "FAILED" : "passed");
	free(samples);
	return nf ? 1 : 0;
}
