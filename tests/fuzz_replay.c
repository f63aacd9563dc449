/*
 * fuzz_replay.c - replay a libFuzzer corpus without libFuzzer: the main()
 * that `meson test --suite fuzz` links with any harness (fuzz_etf.c,
 * fuzz_http.c, fuzz_api.c), so what a fuzzer once found stays fixed.
 *
 * Like libFuzzer it calls LLVMFuzzerInitialize (if the harness has one),
 * then LLVMFuzzerTestOneInput once per file of the given directories (or
 * files), each input in a malloc'd buffer of exactly its size (so that an
 * AddressSanitizer build catches any read past it), then fuzz_harness_fini
 * (if the harness has one: it stops what Initialize started).  A harness
 * reports a broken invariant by aborting; the file being replayed is then
 * named on stderr.  Exit 0 when every file passed, 1 for an empty corpus.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void fuzz_harness_fini(void) __attribute__((weak));

static const char *current;
static size_t ninputs;

static void on_abort(int sig)
{
	/* Async-signal-safe: name the input, then die of the signal. */
	if (current) {
		static const char pre[] = "fuzz_replay: failing input: ";
		(void)!write(2, pre, sizeof pre - 1);
		(void)!write(2, current, strlen(current));
		(void)!write(2, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return 0;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *d = malloc(n ? n : 1);
	if (!d || fread(d, 1, n, f) != n) {
		fclose(f);
		free(d);
		return -1;
	}
	fclose(f);
	current = path;
	LLVMFuzzerTestOneInput(d, n);
	current = NULL;
	free(d);
	ninputs++;
	return 0;
}

static int run_path(const char *path)
{
	DIR *dir = opendir(path);
	if (!dir)
		return run_file(path);
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		rc = run_file(p);
	}
	closedir(dir);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	signal(SIGABRT, on_abort);
	signal(SIGSEGV, on_abort);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i]) != 0) {
			fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
			return 2;
		}
	if (fuzz_harness_fini)
		fuzz_harness_fini();
	printf("%zu inputs replayed, every invariant held\n", ninputs);
	return ninputs == 0 ? 1 : 0;
}
