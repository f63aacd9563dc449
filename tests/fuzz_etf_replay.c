/*
 * fuzz_etf_replay.c - run the fuzz property of up_term_decode (see
 * fuzz_etf_check.h) over every file of the given directories (or files)
 * without libFuzzer: `meson test --suite fuzz` replays tests/fuzz/etf, the
 * corpus the fuzzer keeps (scripts/fuzz etf SECONDS), so that what it once
 * found stays fixed.  The files are read on the main thread; one uproc
 * process checks them all.  Exit 0 when every file passes.
 */
#include <dirent.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "fuzz_etf_check.h"

struct input {
	char *path;
	uint8_t *data;
	size_t n;
};

static struct input *inputs;
static size_t ninputs, cap;
static atomic_int failures;
static int decoded, rejected;

static int add_file(const char *path)
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
	if (ninputs == cap) {
		cap = cap ? 2 * cap : 256;
		inputs = realloc(inputs, cap * sizeof(*inputs));
		if (!inputs)
			return -1;
	}
	inputs[ninputs++] = (struct input){ strdup(path), d, n };
	return 0;
}

static int add_path(const char *path)
{
	DIR *dir = opendir(path);
	if (!dir)
		return add_file(path);
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		rc = add_file(p);
	}
	closedir(dir);
	return rc;
}

static void replay(void *arg)
{
	(void)arg;
	char why[256];
	for (size_t i = 0; i < ninputs; i++) {
		int e = 0;
		if (etf_check(inputs[i].data, inputs[i].n, &e, why, sizeof why) != 0) {
			fprintf(stderr, "FAIL %s: %s\n", inputs[i].path, why);
			atomic_fetch_add(&failures, 1);
		}
		if (e)
			rejected++;
		else
			decoded++;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (add_path(argv[i]) != 0) {
			fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
			return 2;
		}
	struct up_run_opts o;
	memset(&o, 0, sizeof o);
	o.schedulers = 1;
	int rc = up_run(replay, NULL, &o);
	if (rc != 0) {
		fprintf(stderr, "up_run: %d\n", rc);
		return 1;
	}
	printf("%zu inputs: %d decoded, %d rejected with a documented errno, %d failed\n",
	       ninputs, decoded, rejected, atomic_load(&failures));
	for (size_t i = 0; i < ninputs; i++) {
		free(inputs[i].path);
		free(inputs[i].data);
	}
	free(inputs);
	return atomic_load(&failures) || ninputs == 0 ? 1 : 0;
}
