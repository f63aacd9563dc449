/*
 * shared_stack.c - shared stacks of compact processes (see shared_stack.h).
 */
#include "shared_stack.h"

#include <errno.h>
#include <sys/mman.h>

#include "fault.h"
#include "fiber.h"
#include "node_mem.h"
#include "proc.h"
#include "region.h"
#include "scheduler.h"

#include "up_config.h"
#if UP_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#endif
#if UP_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* Memcheck marks a stack's bytes inaccessible as the stack pointer rises
 * past them; frames copied back (or a first frame built) below where the
 * last owner returned to are being written legitimately. */
static inline void make_writable(void *lo, size_t len)
{
#if UP_HAVE_VALGRIND_H
	(void)VALGRIND_MAKE_MEM_UNDEFINED(lo, len);
#else
	(void)lo; (void)len;
#endif
}

/*
 * AddressSanitizer keeps a shadow of every stack byte (redzones around
 * local arrays), and an instrumented function's prologue writes only its
 * redzones' shadow: it takes the stack below it to be clean.  On a shared
 * stack the shadow under a new owner's frames is the old owner's, so it is
 * cleaned whenever frames leave the stack (saved, or dead), and the frames
 * copied back get a clean shadow (their own redzones are not restored:
 * checks on them resume with the next calls).
 */
static inline void clean_shadow(const void *lo, size_t len)
{
#if UP_ASAN
	__asan_unpoison_memory_region(lo, len);
#else
	(void)lo; (void)len;
#endif
}

int up__sstack_init(struct up__sstack *ss, size_t stack_size, int node)
{
	size_t len = stack_size + UP__PAGE;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	/* One mapping per scheduler: an mprotect'ed guard is affordable. */
	if (mprotect(m, UP__PAGE, PROT_NONE) != 0) {
		munmap(m, len);
		return -ENOMEM;
	}
	(void)up__node_bind_range(m + UP__PAGE, stack_size, node);
	ss->map = m;
	ss->map_len = len;
	ss->lo = m + UP__PAGE;
	ss->hi = m + len;
	ss->owner = NULL;
	ss->vg = up__fiber_stack_register(ss->lo, ss->hi);
	return 0;
}

void up__sstack_fini(struct up__sstack *ss)
{
	if (!ss->map)
		return;
	up__fiber_stack_deregister(ss->vg);
	munmap(ss->map, ss->map_len);
	ss->map = NULL;
	ss->owner = NULL;
}

/* Copy saved frames: a plain byte copy the sanitizers do not instrument
 * (the frames hold ASan's poisoned redzones; the copy is not an access by
 * the program).  `rep movsb` is fast for a few hundred bytes on this kind
 * of CPU and is never turned into a call. */
static inline void copy_frames(void *dst, const void *src, size_t len)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(len) : : "memory");
}

/*
 * Where saved frames go: the outermost save_size bytes (next to the stack's
 * top) in the slot's save area, and whatever lies deeper in a node-local
 * block of the process's, sized to that excess (64-byte steps, kept for
 * the next save).  A process parked a little deeper than usual costs a
 * small block, not a second slot's worth.
 */
static inline size_t inline_part(size_t len)
{
	size_t in = up__regions.layout.save_size;
	return len < in ? len : in;
}

/* p's block for `excess` bytes (grown as needed), or NULL without memory. */
static void *excess_block(struct up__proc *p, size_t excess)
{
	if (excess > p->save_cap) {
		size_t cap = (excess + 63) & ~(size_t)63;
		void *b = UP_FAULT_PTR(UP__F_SAVE_BLOCK, up__local_alloc(cap));
		if (!b)
			return NULL;
		if (p->save_block)
			up__node_free(p->save_block, p->save_cap);
		p->save_block = b;
		p->save_cap = (uint32_t)cap;
	}
	return p->save_block;
}

static void save_owner(struct up__sstack *ss)
{
	struct up__proc *o = ss->owner;
	ss->owner = NULL;
	if (!o->sp)
		return;
	size_t len = (size_t)(ss->hi - (char *)o->sp);
	size_t in = inline_part(len);
	void *block = len > in ? excess_block(o, len - in) : NULL;
	if (up_likely(len == in || block)) {
		copy_frames(up__slot_base(o->slot), ss->hi - in, in);
		if (block)
			copy_frames(block, o->sp, len - in);
		clean_shadow(o->sp, len);
		return;
	}
	clean_shadow(o->sp, len);
	/* Its frames cannot be kept: it starts again only to die, with the
	 * reason saying why (up__proc_main skips fn for a killed process). */
	o->sp = NULL;
	up__proc_kill(o->sched, o, UP_NO_MEMORY);
}

void up__sstack_take(struct up__sstack *ss, struct up__proc *p)
{
	UP_ASSERT(p->compact && ss->owner != p);
	if (ss->owner)
		save_owner(ss);
	ss->owner = p;
	if (!p->sp) {
		make_writable(ss->hi - 128, 128);
		p->sp = up__fiber_init(ss->hi, up__proc_main, p);
		return;
	}
	size_t len = (size_t)(ss->hi - (char *)p->sp);
	size_t in = inline_part(len);
	make_writable(p->sp, len);
	copy_frames(ss->hi - in, up__slot_base(p->slot), in);
	if (len > in)
		copy_frames(p->sp, p->save_block, len - in);
	clean_shadow(p->sp, len);
}

void up__sstack_forget(struct up__sstack *ss, struct up__proc *p)
{
	if (ss->owner == p) {
		/* Dead frames, as deep as it went (an overflow: all of it). */
		clean_shadow(ss->lo, (size_t)(ss->hi - ss->lo));
		ss->owner = NULL;
	}
	if (p->save_block) {
		up__node_free(p->save_block, p->save_cap);
		p->save_block = NULL;
		p->save_cap = 0;
	}
}
