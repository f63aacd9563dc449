/*
 * topology.c - discover the CPUs and nodes the runtime may use (see
 * topology.h).  Respects what numactl/taskset set: the affinity mask decides
 * the CPUs, the memory policy (numa_get_membind) decides where memory may
 * go.  Runs once per up_run, on the caller's thread; no state of its own.
 */
#include "topology.h"

#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* Real CPUs in the caller's affinity mask, ascending. */
static int allowed_cpus(int *out, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			out[n++] = c;
	return n;
}

/* Real memory nodes the memory policy allows, ascending; 0 if libnuma is
 * unusable (then nothing is bound). */
static int allowed_mem_nodes(int *out, int max)
{
	int n = 0;

	if (numa_available() < 0)
		return 0;
	struct bitmask *bm = numa_get_membind();
	if (!bm)
		return 0;
	for (int i = 0; i <= numa_max_node() && n < max; i++)
		if (numa_bitmask_isbitset(bm, i))
			out[n++] = i;
	numa_bitmask_free(bm);
	return n;
}

/* Parse "A-B,C" into cpus[]; returns the count or -EINVAL. */
static int parse_cpu_list(const char *s, const char *end, int *cpus, int max)
{
	int n = 0;

	while (s < end) {
		char *e;
		long a = strtol(s, &e, 10), b;
		if (e == s || a < 0 || a >= UP__MAX_CPUS)
			return -EINVAL;
		b = a;
		s = e;
		if (s < end && *s == '-') {
			s++;
			b = strtol(s, &e, 10);
			if (e == s || b < a || b >= UP__MAX_CPUS)
				return -EINVAL;
			s = e;
		}
		for (long c = a; c <= b; c++) {
			if (n >= max)
				return -EINVAL;
			cpus[n++] = (int)c;
		}
		if (s < end) {
			if (*s != ',')
				return -EINVAL;
			s++;
			if (s == end)
				return -EINVAL;
		}
	}
	return n > 0 ? n : -EINVAL;
}

static int load_synthetic(struct up__topology *t, const char *spec,
			  const int *real, int nreal, const int *mem, int nmem)
{
	bool seen_cpu[UP__MAX_CPUS] = {false};
	const char *s = spec;

	t->synthetic = true;
	while (*s) {
		const char *semi = strchr(s, ';');
		const char *end = semi ? semi : s + strlen(s);
		char *colon;
		long node = strtol(s, &colon, 10);
		if (colon == s || colon >= end || *colon != ':' || node < 0 ||
		    node >= UP__MAX_NODES || t->node_present[node])
			return -EINVAL;
		int cpus[UP__MAX_CPUS];
		int n = parse_cpu_list(colon + 1, end, cpus, UP__MAX_CPUS);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			if (seen_cpu[cpus[i]] || t->ncpus >= UP__MAX_CPUS)
				return -EINVAL;
			seen_cpu[cpus[i]] = true;
			t->cpu[t->ncpus] = cpus[i];
			t->cpu_node[t->ncpus] = (int)node;
			t->pin_cpu[t->ncpus] = real[t->ncpus % nreal];
			t->ncpus++;
		}
		t->node_present[node] = true;
		if (node + 1 > t->nnodes)
			t->nnodes = (int)node + 1;
		s = semi ? semi + 1 : end;
		if (semi && !*s)
			return -EINVAL;
	}
	if (t->ncpus == 0)
		return -EINVAL;
	int k = 0;
	for (int nd = 0; nd < t->nnodes; nd++)
		t->mem_node[nd] = nmem ? mem[k++ % nmem] : -1;
	return 0;
}

int up__topology_load(struct up__topology *t)
{
	static int real[UP__MAX_CPUS];
	int mem[UP__MAX_NODES];

	memset(t, 0, sizeof(*t));
	for (int i = 0; i < UP__MAX_NODES; i++)
		t->mem_node[i] = -1;
	int nreal = allowed_cpus(real, UP__MAX_CPUS);
	if (nreal < 0)
		return nreal;
	if (nreal == 0)
		return -EINVAL;
	int nmem = allowed_mem_nodes(mem, UP__MAX_NODES);

	const char *spec = getenv("UPROC_TOPOLOGY");
	if (spec && *spec)
		return load_synthetic(t, spec, real, nreal, mem, nmem);

	bool numa_ok = numa_available() >= 0;
	for (int i = 0; i < nreal; i++) {
		int node = numa_ok ? numa_node_of_cpu(real[i]) : 0;
		if (node < 0 || node >= UP__MAX_NODES)
			node = 0;
		t->cpu[i] = real[i];
		t->pin_cpu[i] = real[i];
		t->cpu_node[i] = node;
		t->node_present[node] = true;
		if (node + 1 > t->nnodes)
			t->nnodes = node + 1;
	}
	t->ncpus = nreal;
	/* A node's memory stays on it when the policy allows; otherwise it
	 * goes to the first node the policy allows (numactl --membind). */
	for (int nd = 0; nd < t->nnodes; nd++) {
		t->mem_node[nd] = -1;
		if (!t->node_present[nd] || nmem == 0)
			continue;
		t->mem_node[nd] = mem[0];
		for (int k = 0; k < nmem; k++)
			if (mem[k] == nd)
				t->mem_node[nd] = nd;
	}
	return 0;
}
