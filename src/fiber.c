/*
 * fiber.c - stack registration with the tools (see fiber.h).  The switch
 * itself is fiber_x86_64.S.
 */
#include "fiber.h"

#include "up_config.h"
#if UP_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#if UP_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

unsigned up__fiber_stack_register(void *lo, void *hi)
{
#if UP_HAVE_VALGRIND_H
	if (RUNNING_ON_VALGRIND)
		return VALGRIND_STACK_REGISTER(lo, hi);
#endif
	(void)lo; (void)hi;
	return 0;
}

void up__fiber_stack_deregister(unsigned id)
{
#if UP_HAVE_VALGRIND_H
	if (id)
		VALGRIND_STACK_DEREGISTER(id);
#endif
	(void)id;
}

void up__fiber_stack_reset(void *lo, size_t size)
{
#if UP_ASAN
	__asan_unpoison_memory_region(lo, size);
#endif
	(void)lo; (void)size;
}
