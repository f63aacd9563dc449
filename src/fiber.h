/*
 * fiber.h - stackful fibers: an initial frame on a fresh stack and the
 * switch between two stacks, with the annotations that keep AddressSanitizer
 * and Valgrind honest about which stack is live.
 *
 * A fiber is only a saved stack pointer; its stack belongs to whoever made
 * it (here, a process region).  Switching is owner-thread only.
 *
 * ThreadSanitizer: every process fiber is a TSan fiber (created at spawn,
 * destroyed at release) and the scheduler context is its thread's own
 * fiber; each switch names the fiber about to run.  Switches synchronise
 * (flags 0): fibers of one thread run one at a time, in a real order.
 */
#ifndef UP_FIBER_H
#define UP_FIBER_H

#include <stddef.h>
#include "debug.h"

#if UP_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif
#if UP_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

void up__fiber_switch(void **save_sp, void *next_sp) UP_INTERNAL;
void up__fiber_entry(void) UP_INTERNAL;

/* Build the first frame of a fiber on [lo, hi) that will call entry(arg) the
 * first time it is switched to.  Returns its stack pointer. */
static inline void *up__fiber_init(char *hi, void (*entry)(void *), void *arg)
{
	/* hi is 16-aligned; after popping 6 registers and `ret`, rsp == hi - 16 +
	 * ... keep it 16-aligned at up__fiber_entry (it then calls). */
	void **sp = (void **)((((unsigned long)hi) & ~15ul) - 16);
	*--sp = (void *)up__fiber_entry; /* return address of the switch */
	*--sp = 0;                       /* rbp */
	*--sp = 0;                       /* rbx */
	*--sp = (void *)entry;           /* r12 */
	*--sp = arg;                     /* r13 */
	*--sp = 0;                       /* r14 */
	*--sp = 0;                       /* r15 */
	return sp;
}

/*
 * Switch annotations.  Before leaving a stack, call up__fiber_leave with the
 * stack being entered (fake_save NULL when the stack being left is dead for
 * good); after arriving, call up__fiber_arrived with what the left stack
 * saved.
 */
static inline void up__fiber_leave(void **fake_save, const void *to_lo, size_t to_size)
{
#if UP_ASAN
	__sanitizer_start_switch_fiber(fake_save, to_lo, to_size);
#else
	(void)fake_save; (void)to_lo; (void)to_size;
#endif
}

static inline void up__fiber_arrived(void *fake_save, const void **from_lo, size_t *from_size)
{
#if UP_ASAN
	__sanitizer_finish_switch_fiber(fake_save, from_lo, from_size);
#else
	(void)fake_save; (void)from_lo; (void)from_size;
#endif
}

/* TSan fibers (NULL and no-ops outside ThreadSanitizer builds).  The
 * current thread's own fiber; a new fiber; a fiber that will never run again
 * (not the current one); and the switch, called just before
 * up__fiber_switch to the fiber it names, with no function return between
 * the two (hence always_inline, here and in the caller). */
static inline void *up__fiber_tsan_self(void)
{
#if UP_TSAN
	return __tsan_get_current_fiber();
#else
	return NULL;
#endif
}

static inline void *up__fiber_tsan_create(void)
{
#if UP_TSAN
	return __tsan_create_fiber(0);
#else
	return NULL;
#endif
}

static inline void up__fiber_tsan_destroy(void *fiber)
{
#if UP_TSAN
	if (fiber)
		__tsan_destroy_fiber(fiber);
#else
	(void)fiber;
#endif
}

static inline __attribute__((always_inline)) void up__fiber_tsan_switch(void *fiber)
{
#if UP_TSAN
	__tsan_switch_to_fiber(fiber, 0);
#else
	(void)fiber;
#endif
}

/* Valgrind: register a fiber stack so memcheck does not mistake a switch for
 * a huge stack-pointer change (no-ops outside valgrind and when valgrind.h
 * is absent). */
unsigned up__fiber_stack_register(void *lo, void *hi) UP_INTERNAL;
void up__fiber_stack_deregister(unsigned id) UP_INTERNAL;
/* ASan: clear shadow left by a dead fiber's frames before reusing a stack. */
void up__fiber_stack_reset(void *lo, size_t size) UP_INTERNAL;

#endif
