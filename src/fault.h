/*
 * fault.h - build-time injectable failures at the runtime's allocation and
 * submission points (meson option fault_injection; see docs/design.md,
 * "Fault injection").
 *
 * Each site is one hook at the call it can fail, e.g.
 *
 *	m = UP_FAULT_PTR(UP__F_MSG_NODE, up__msg_alloc(c, node));
 *
 * Compiled out (UP_FAULT_INJECTION 0) a hook is just the call.  Compiled in,
 * it costs one load of a global flag and a predictable branch until a test
 * turns the machinery on (up__fault_reset); then every hit is counted per
 * site, and an armed site fails hits nth .. nth+count-1 (counted from the
 * arming) with its errno.  Any thread: counters and arming are atomics.
 */
#ifndef UP_FAULT_H
#define UP_FAULT_H

#include <errno.h>
#include <stdint.h>
#include "debug.h"

enum up__fault_site {
	UP__F_CHUNK_MAP = 0, /* region chunk reservation (mmap, its records) */
	UP__F_GUARD,         /* guard page install of a fresh slot (madvise) */
	UP__F_HEAP_MAP,      /* a process heap mapping past its slot (mmap) */
	UP__F_NODE_ALLOC,    /* any node-local block (mallocx / malloc) */
	UP__F_MSG_NODE,      /* message node: word or immediate-term send */
	UP__F_MSG_BUFFER,    /* buffer of a term message or signal (the copy) */
	UP__F_COPY_STACK,    /* deep-copy work stack past 64 entries (malloc) */
	UP__F_SIDE_ALLOC,    /* side tables: links, monitors, dict, I/O state */
	UP__F_TIMER,         /* timer heap growth (realloc) */
	UP__F_REMOTE_REQ,    /* request node to another scheduler (spawn, wake) */
	UP__F_SQE,           /* io_uring_get_sqe of a process request: NULL */
	UP__F_WAKE_SQE,      /* io_uring_get_sqe of the idle eventfd read: NULL */
	UP__F_SUBMIT,        /* io_uring_submit*: -EAGAIN/-EBUSY/-ENOMEM */
	UP__F_CQE,           /* a request's completion res replaced by an errno */
	UP__F_ACCEPT_CQE,    /* an accepted connection replaced by an errno */
	UP__F_SHORT_WRITE,   /* a write/send request cut to half (>= 1 byte) */
	UP__F_RING_SETUP,    /* io_uring setup of a scheduler at up_run */
	UP__F_SAVE_BLOCK,    /* a compact process's frames past its save area */
	UP__F_COUNT
};

#define UP__FAULT_ALWAYS UINT64_MAX

#if UP_FAULT_INJECTION
extern int up__fault_on UP_INTERNAL;
int up__fault_slow(enum up__fault_site site) UP_INTERNAL;

/* 0, or the negative errno the armed site fails this hit with. */
static inline int up__fault(enum up__fault_site site)
{
	if (up_likely(!__atomic_load_n(&up__fault_on, __ATOMIC_RELAXED)))
		return 0;
	return up__fault_slow(site);
}

/* Is the machinery on (a test turned it on)?  For a hot path that hands
 * every hit to a slower path with the hook (a hit must be counted once). */
static inline int up__fault_active(void)
{
	return __atomic_load_n(&up__fault_on, __ATOMIC_RELAXED);
}

/* Control, for tests (white-box). */
/* Counting on, every site disarmed, every counter 0. */
void up__fault_reset(void) UP_INTERNAL;
/* Counting off, every site disarmed. */
void up__fault_off(void) UP_INTERNAL;
/* Fail site's hits nth .. nth+count-1 counted from now (nth >= 1; count
 * UP__FAULT_ALWAYS: every one from nth on) with err (< 0; sites that fail
 * with NULL or MAP_FAILED ignore it).  Turns counting on. */
void up__fault_arm(enum up__fault_site site, uint64_t nth, uint64_t count, int err) UP_INTERNAL;
void up__fault_disarm(enum up__fault_site site) UP_INTERNAL;
uint64_t up__fault_hits(enum up__fault_site site) UP_INTERNAL;   /* since reset */
uint64_t up__fault_fired(enum up__fault_site site) UP_INTERNAL;  /* failures made */
const char *up__fault_name(enum up__fault_site site) UP_INTERNAL;
#else
static inline int up__fault(enum up__fault_site site)
{
	(void)site;
	return 0;
}

static inline int up__fault_active(void)
{
	return 0;
}
#endif

/* Hooks.  PTR: expr is an allocation (NULL on failure).  ERR: expr returns
 * 0 or a negative errno.  SYS: a syscall returning -1 with errno.  MAP: an
 * mmap (MAP_FAILED with errno).  Compiled out, each is `(expr)`. */
#define UP_FAULT_PTR(site, expr) (up_unlikely(up__fault(site)) ? NULL : (expr))
#define UP_FAULT_ERR(site, expr) \
	({ int fe_ = up__fault(site); up_unlikely(fe_) ? fe_ : (expr); })
#define UP_FAULT_SYS(site, expr) \
	({ int fe_ = up__fault(site); up_unlikely(fe_) ? (errno = -fe_, -1) : (expr); })
#define UP_FAULT_MAP(site, expr) \
	({ int fe_ = up__fault(site); up_unlikely(fe_) ? (errno = -fe_, MAP_FAILED) : (expr); })

#endif
