/*
 * topology.h - the CPUs and NUMA nodes a uproc runtime may use.
 *
 * Read once by up_run(): the calling thread's CPU affinity mask (taskset,
 * numactl --physcpubind) and memory policy (numactl --membind), each CPU's
 * node from libnuma; or a synthetic topology from UPROC_TOPOLOGY so tests
 * can run several nodes on a one-node machine.  Immutable afterwards.
 *
 * UPROC_TOPOLOGY syntax: "NODE:CPUS;NODE:CPUS..." where CPUS is a list of
 * CPU numbers and ranges ("0-3,8").  Example: "0:0;1:1" puts CPU 0 on node 0
 * and CPU 1 on node 1.  Synthetic CPUs are pinned onto the real allowed CPUs
 * round-robin, and synthetic nodes keep their memory on the real allowed
 * memory nodes round-robin; node numbers seen by the program are the
 * synthetic ones.
 */
#ifndef UP_TOPOLOGY_H
#define UP_TOPOLOGY_H

#include <stdbool.h>

#define UP__MAX_CPUS 1024
#define UP__MAX_NODES 64

struct up__topology {
	int ncpus;                     /* usable CPUs, in scheduler order */
	int cpu[UP__MAX_CPUS];         /* CPU number as the program sees it */
	int cpu_node[UP__MAX_CPUS];    /* its node */
	int pin_cpu[UP__MAX_CPUS];     /* the real CPU a scheduler pins to */
	int nnodes;                    /* highest node number + 1 */
	bool node_present[UP__MAX_NODES];
	int mem_node[UP__MAX_NODES];   /* real node holding a node's memory,
					  -1: no binding (libnuma unusable) */
	bool synthetic;
};

/* Fill *t from the environment and the kernel.  0, or -EINVAL for a
 * malformed UPROC_TOPOLOGY, or -errno from sched_getaffinity. */
int up__topology_load(struct up__topology *t);

#endif
