/*
 * io.h - blocking I/O for processes on the scheduler's io_uring ring.
 *
 * A request's user_data is pid << 4 | kind.  Invariant: a slot with requests
 * in flight is never released (a process that dies with requests in flight
 * stays a ZOMBIE, its region kept, until the last completion arrives), so a
 * completion always finds the control block that issued it, and the kernel
 * never writes into a region that has a new owner.
 */
#ifndef UP_IO_H
#define UP_IO_H

#include <liburing.h>
#include <stdint.h>
#include "debug.h"

struct up__sched;
struct up__proc;

enum {
	UP__IO_OP = 1,      /* the request a process is parked on */
	UP__IO_TIMEOUT = 2, /* its linked timeout */
	UP__IO_ACCEPT = 3,  /* a process's multishot accept */
	UP__IO_CANCEL = 4,  /* cancellations issued when a process dies */
	UP__IO_KINDS = 16,
};

/* Per-process I/O state (in the control block). */
struct up__io {
	int32_t res;              /* result of the last request */
	uint16_t inflight;        /* CQEs still expected, all kinds */
	uint16_t op_due;          /* CQEs of the blocking request (op, timeout) */
	uint8_t timedout;         /* its linked timeout fired */
	struct up__accept *acc;   /* multishot accept state (process heap) */
	int *owned;               /* descriptors closed at exit (process heap) */
	uint32_t nowned, cap_owned;
	void *bounce;             /* a compact process's buffer copy (io.c) */
	size_t bounce_cap;
	struct __kernel_timespec ts; /* the linked timeout's */
};

/* Dispatch one completion (scheduler thread). */
void up__io_complete(struct up__sched *s, uint64_t user_data, int res, unsigned flags) UP_INTERNAL;
/* A dying process: cancel its requests, close its descriptors and queued
 * connections.  Returns 1 if completions are still due (stay a zombie). */
int up__io_exit(struct up__sched *s, struct up__proc *p) UP_INTERNAL;
/* Submit queued requests and dispatch what completed (no waiting). */
void up__io_poll(struct up__sched *s) UP_INTERNAL;
/* Dispatch every completion in the CQ. */
void up__io_reap(struct up__sched *s) UP_INTERNAL;

#endif
