/*
 * perf_guard.c - N operations of one kind, for counting instructions per
 * operation with callgrind (tests/perf_guard.py runs it at two N and takes
 * the difference, so start-up costs cancel).  Operations:
 *   yield      a yield to another runnable process (one switch)
 *   send_recv  a word sent to oneself and received (no switch)
 *   pingpong   a round trip with a partner on the same scheduler
 *   spawn      spawn a process that exits at once, and run it
 *   term_send  a {Ref, <<100 bytes>>} tuple sent to oneself, received, freed
 *   compact    a compact process (UP_SPAWN_COMPACT) spawned, run to a
 *              receive, its frames saved and restored once, woken, exited
 * Prints nothing; exits non-zero on any API error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uproc.h>

static const char *op;
static long n;
static int failed;

#define CHECK(x) do { if ((x) < 0) failed = 1; } while (0)

static void yielder(void *arg)
{
	for (long i = 0; i < n; i++)
		up_yield();
}

static void echo(void *arg)
{
	up_pid back = (up_pid)(intptr_t)arg;
	struct up_msg m;
	for (long i = 0; i < n; i++) {
		CHECK(up_recv(&m, UP_INFINITY));
		CHECK(up_send_word(back, m.word));
	}
}

static void nothing(void *arg) { (void)arg; }

static void waiter(void *arg)
{
	struct up_msg m;
	(void)arg;
	CHECK(up_recv(&m, UP_INFINITY));
}

static void main_process(void *arg)
{
	struct up_msg m;
	if (!strcmp(op, "yield")) {
		CHECK(up_spawn(yielder, NULL));
		for (long i = 0; i < n; i++)
			up_yield();
	} else if (!strcmp(op, "send_recv")) {
		for (long i = 0; i < n; i++) {
			CHECK(up_send_word(up_self(), (uint64_t)i));
			CHECK(up_recv(&m, UP_INFINITY));
		}
	} else if (!strcmp(op, "pingpong")) {
		up_pid e = up_spawn(echo, (void *)(intptr_t)up_self());
		CHECK(e);
		for (long i = 0; i < n; i++) {
			CHECK(up_send_word(e, (uint64_t)i));
			CHECK(up_recv(&m, UP_INFINITY));
		}
	} else if (!strcmp(op, "spawn")) {
		for (long i = 0; i < n; i++) {
			CHECK(up_spawn(nothing, NULL));
			up_yield();
		}
	} else if (!strcmp(op, "compact")) {
		struct up_spawn_opts o = { .flags = UP_SPAWN_COMPACT };
		up_pid prev = 0;
		for (long i = 0; i < n; i++) {
			/* The new one takes the shared stack from the last one
			 * (saved), which then takes it back to exit (restored). */
			up_pid p = up_spawn_opt(waiter, NULL, &o);
			CHECK(p);
			up_yield();
			if (prev)
				CHECK(up_send_word(prev, 1));
			up_yield();
			prev = p;
		}
		if (prev)
			CHECK(up_send_word(prev, 1));
	} else if (!strcmp(op, "term_send")) {
		char bin[100];
		memset(bin, 7, sizeof bin);
		long mark = up_heap_mark();
		up_term t = up_tuplev(2, up_make_ref(), up_binary(bin, sizeof bin));
		for (long i = 0; i < n; i++) {
			CHECK(up_send(up_self(), t));
			CHECK(up_recv(&m, UP_INFINITY));
			CHECK(up_msg_free(&m));
		}
		up_heap_reset(mark);
	} else {
		failed = 1;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	op = argv[1];
	n = atol(argv[2]);
	struct up_run_opts o = { .schedulers = 1, .spin_us = UP_NO_SPIN };
	int r = up_run(main_process, NULL, &o);
	return r || failed ? 1 : 0;
}
