/*
 * debug.h - internal assertions and small compiler helpers.
 *
 * UP_ASSERT states an internal invariant.  It is checked in debug builds
 * (buildtype=debug or -Ddebug_checks=true) and compiles to nothing
 * otherwise.  It is never used on user input: user input gets -EINVAL.
 */
#ifndef UP_DEBUG_H
#define UP_DEBUG_H

#include <stdio.h>
#include <stdlib.h>
#include "up_config.h"

#define up_likely(x)   __builtin_expect(!!(x), 1)
#define up_unlikely(x) __builtin_expect(!!(x), 0)
#define UP_CACHELINE 64
#define UP_INTERNAL __attribute__((visibility("hidden")))

#if UP_DEBUG
#define UP_ASSERT(cond)                                                        \
	do {                                                                   \
		if (up_unlikely(!(cond))) {                                    \
			fprintf(stderr, "uproc: %s:%d: invariant broken: %s\n", \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)
#else
#define UP_ASSERT(cond) ((void)0)
#endif

/* Sanitizer detection for GCC and clang. */
#if defined(__SANITIZE_ADDRESS__)
#define UP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UP_ASAN 1
#endif
#endif
#ifndef UP_ASAN
#define UP_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define UP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UP_TSAN 1
#endif
#endif
#ifndef UP_TSAN
#define UP_TSAN 0
#endif

/* ThreadSanitizer: a happens-before edge it cannot see by itself (an
 * inline-asm atomic).  Release before the operation, acquire after it, on
 * the same address.  Nothing outside TSan builds. */
#if UP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define up__tsan_acquire(addr) __tsan_acquire((void *)(addr))
#define up__tsan_release(addr) __tsan_release((void *)(addr))
#else
#define up__tsan_acquire(addr) ((void)0)
#define up__tsan_release(addr) ((void)0)
#endif

static inline void up__cpu_relax(void) { __builtin_ia32_pause(); }

#endif
