/*
 * crash.c - crash isolation: a process that overflows its stack dies alone.
 *
 * Each scheduler thread has an alternate signal stack.  The SIGSEGV handler
 * (installed by up_run, the previous one restored at its end) looks at the
 * faulting address: if it lies in the guard page of the process running on
 * this thread, it rewrites the saved context so that, on return from the
 * handler, the process continues at the top of its own stack (its frames
 * are dead anyway) in a trampoline that ends it with reason stack_overflow;
 * its links and monitors are told as for any exit.  Any other fault is not
 * ours: the previous handler gets it (chained), or the default action is
 * restored and the fault re-raised, as it must be (a wild pointer is a bug
 * of the whole program, not of one process).
 *
 * What is recoverable: a stack overflow that touches the guard page, which
 * -fstack-clash-protection (Debian's default) guarantees for large frames.
 * What is not: a fault anywhere else, including a frame larger than the
 * guard in code built without stack-clash protection that jumps past the
 * guard into the process's heap (undetectable: no fault).
 *
 * up_assert: a failed assertion ends the calling process with reason
 * {assert, Expr, File, Line}.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "proc.h"
#include "region.h"
#include "runtime.h"
#include "scheduler.h"
#include "term.h"

#define ALT_STACK (64 * 1024)

static struct sigaction previous;
static int installed;

static void die_of_stack_overflow(struct up__proc *p)
{
	p->exit_reason = UP_STACK_OVERFLOW;
	up__sched_leave_dead(p);
}

/* The guard page below p's stack: its slot's, or its scheduler's shared
 * stack's for a compact process. */
static int in_guard(struct up__sched *s, struct up__proc *p, uintptr_t addr)
{
	uintptr_t lo = p->compact ? (uintptr_t)s->sstack.lo - UP__PAGE
				  : (uintptr_t)up__slot_base(p->slot) + up__regions.layout.heap_size;
	return addr >= lo && addr < lo + UP__PAGE;
}

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
	struct up__sched *s = up__self_sched;
	struct up__proc *p = s ? s->current : NULL;
	ucontext_t *uc = uc_;

	if (p && in_guard(s, p, (uintptr_t)si->si_addr)) {
		/* Resume on the top of the dying process's stack, 16-aligned
		 * before the trampoline's "call" (as at a function entry). */
		uintptr_t top = p->compact ? (uintptr_t)s->sstack.hi : (uintptr_t)p;
		uintptr_t sp = (top - 512) & ~(uintptr_t)15;
		uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(sp - 8);
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)die_of_stack_overflow;
		uc->uc_mcontext.gregs[REG_RDI] = (greg_t)(uintptr_t)p;
		return;
	}
	/* Not ours. */
	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, si, uc_);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
		   previous.sa_handler) {
		previous.sa_handler(sig);
		return;
	}
	/* Default action: restore it; the faulting instruction runs again. */
	signal(SIGSEGV, SIG_DFL);
}

int up__crash_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &previous) != 0)
		return -errno;
	installed = 1;
	return 0;
}

void up__crash_uninstall(void)
{
	if (installed) {
		sigaction(SIGSEGV, &previous, NULL);
		installed = 0;
	}
}

/*
 * The alternate signal stack of a scheduler thread.  The thread may have
 * one already: sanitizer runtimes give every thread theirs, and unmap it
 * when the thread ends, if it is still the one installed.  So the previous
 * stack is kept in the first bytes of our mapping and put back at the end:
 * replacing it for good leaked the runtime's 60 KiB per thread (found by a
 * long fuzz_api run that reached vm.max_map_count).
 */
#define ALT_HEADER 64 /* the previous stack_t, then our stack */
_Static_assert(sizeof(stack_t) <= ALT_HEADER, "alternate stack header");

int up__crash_thread_init(void **alt)
{
	stack_t st, old;
	char *m = mmap(NULL, ALT_HEADER + ALT_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	if (sigaltstack(NULL, &old) != 0)
		old.ss_flags = SS_DISABLE;
	memcpy(m, &old, sizeof(old));
	st.ss_sp = m + ALT_HEADER;
	st.ss_size = ALT_STACK;
	st.ss_flags = 0;
	if (sigaltstack(&st, NULL) != 0) {
		munmap(m, ALT_HEADER + ALT_STACK);
		return -errno;
	}
	*alt = m;
	return 0;
}

void up__crash_thread_fini(void *alt)
{
	if (!alt)
		return;
	stack_t old;
	memcpy(&old, alt, sizeof(old));
	if (old.ss_flags & SS_DISABLE) {
		stack_t st = { .ss_flags = SS_DISABLE };
		sigaltstack(&st, NULL);
	} else {
		old.ss_flags = 0;
		sigaltstack(&old, NULL);
	}
	munmap(alt, ALT_HEADER + ALT_STACK);
}

void up__assert_fail(const char *expr, const char *file, int line)
{
	struct up__sched *s = up__self_sched;
	if (!s || !s->current) {
		fprintf(stderr, "%s:%d: up_assert failed outside a process: %s\n", file, line, expr);
		abort();
	}
	up_term reason = up_tuplev(4, up_atom("assert"), up_binary(expr, strlen(expr)),
				   up_binary(file, strlen(file)), up_int(line));
	up_exit(up_self(), up_is_bad(reason) ? up_atom("assert") : reason);
	__builtin_unreachable();
}
