/*
 * fiber_x86_64.S - the context switch of uproc fibers (System V x86-64).
 *
 * up__fiber_switch(void **save_sp, void *next_sp)
 *   Pushes the callee-saved registers (rbp rbx r12-r15) on the current
 *   stack, stores the stack pointer in *save_sp, loads next_sp and pops the
 *   same registers from there, then returns into the other fiber.  Only
 *   callee-saved registers need saving: the switch is an ordinary call for
 *   the compiler.  No syscall, no signal mask (unlike swapcontext).  The
 *   MXCSR and x87 control words are not switched: fibers share the
 *   thread's floating-point environment.
 *
 * up__fiber_entry
 *   Where a new fiber first returns to: its initial frame (built by
 *   up__fiber_init) holds the entry function in r12 and its argument in
 *   r13.  The stack is 16-byte aligned here, as the ABI wants before a call.
 */
	.text
	.globl	up__fiber_switch
	.hidden	up__fiber_switch
	.type	up__fiber_switch, @function
up__fiber_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	up__fiber_switch, .-up__fiber_switch

	.globl	up__fiber_entry
	.hidden	up__fiber_entry
	.type	up__fiber_entry, @function
up__fiber_entry:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r13, %rdi
	callq	*%r12
	ud2			/* the entry function never returns */
	.cfi_endproc
	.size	up__fiber_entry, .-up__fiber_entry

	.section .note.GNU-stack,"",@progbits
