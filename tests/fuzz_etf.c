/*
 * fuzz_etf.c - libFuzzer harness for up_term_decode / up_term_encode (the
 * property is etf_check, fuzz_etf_check.h).  Built and run by
 * scripts/fuzz etf SECONDS (clang -fsanitize=fuzzer,address,undefined).
 *
 * Decoding needs a uproc process, and starting a runtime per input would
 * cost more than the decode: LLVMFuzzerInitialize starts one runtime (one
 * scheduler, no idle spin) on a thread of its own, whose main process
 * serves requests for ever.  Each LLVMFuzzerTestOneInput hands the input over (a word message: up_send_word
 * works from any thread) and waits on a condition variable for the verdict.
 * A failed property aborts, so libFuzzer saves the input as a crash.
 * fuzz_replay.c replays the corpus through the same entry points; its
 * fuzz_harness_fini stops the runtime.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "fuzz_etf_check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *in_data;
static size_t in_size;
static int done, verdict;
static char why[256];
static _Atomic up_pid server;
static atomic_int stopping;
static pthread_t runtime_th;

static void serve(void *arg)
{
	(void)arg;
	atomic_store(&server, up_self());
	for (;;) {
		struct up_msg m;
		if (up_recv(&m, UP_INFINITY) != 0)
			continue;
		pthread_mutex_lock(&mu);
		const uint8_t *d = in_data;
		size_t n = in_size;
		pthread_mutex_unlock(&mu);
		int rc = etf_check(d, n, NULL, why, sizeof why);
		pthread_mutex_lock(&mu);
		verdict = rc;
		done = 1;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
	}
}

static void *runtime_thread(void *arg)
{
	(void)arg;
	struct up_run_opts o;
	memset(&o, 0, sizeof o);
	o.schedulers = 1;
	o.spin_us = UP_NO_SPIN;
	int rc = up_run(serve, NULL, &o);
	if (rc == 0 && atomic_load(&stopping))
		return NULL;
	fprintf(stderr, "fuzz_etf: up_run returned %d\n", rc);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (pthread_create(&runtime_th, NULL, runtime_thread, NULL) != 0)
		abort();
	while (atomic_load(&server) == 0)
		usleep(1000);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pthread_mutex_lock(&mu);
	in_data = data;
	in_size = size;
	done = 0;
	pthread_mutex_unlock(&mu);
	int rc = up_send_word(atomic_load(&server), 1);
	if (rc != 0) {
		fprintf(stderr, "fuzz_etf: up_send_word: %d\n", rc);
		abort();
	}
	pthread_mutex_lock(&mu);
	while (!done)
		pthread_cond_wait(&cv, &mu);
	int v = verdict;
	pthread_mutex_unlock(&mu);
	if (v != 0) {
		fprintf(stderr, "fuzz_etf: property broken: %s\n", why);
		abort();
	}
	return 0;
}

/* The replay driver's end: stop the runtime and wait for its thread. */
void fuzz_harness_fini(void);
void fuzz_harness_fini(void)
{
	atomic_store(&stopping, 1);
	up_shutdown();
	pthread_join(runtime_th, NULL);
}
