/*
 * uproc.h - Erlang-style processes for C on Linux.  The one public header.
 *
 * A uproc program calls up_run(), which starts one scheduler thread per
 * allowed CPU (pinned, NUMA-aware) and runs the given function as the first
 * process.  Processes are stackful fibers with their own memory region
 * (control block, guarded stack, bump heap), released whole when they exit.
 * They share nothing and talk by messages sent to mailboxes.
 *
 * Conventions
 *  - Every function that can fail returns a negative errno value; the errors
 *    each function can return are listed in the comment before it.  The
 *    library never aborts the program on bad input.
 *  - "Process-only" functions must be called from inside a uproc process;
 *    called from any other thread they return -EPERM (or the documented
 *    neutral value).
 *  - A pid is a positive 64-bit value; 0 is "no process" and negative values
 *    are errors.  A pid names one process for ever: once that process has
 *    exited, the pid is stale and every call given it returns -ESRCH, even if
 *    its slot has been reused by a newer process.
 *  - Times are in nanoseconds.  UP_INFINITY waits for ever; 0 never blocks.
 *
 * Thread safety: up_send_*(), up_alive() and up_shutdown() may be called from
 * any thread, inside or outside the runtime.  Everything else is for
 * processes (or, for up_run, for a thread outside the runtime).
 */
#ifndef UPROC_H
#define UPROC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPROC_VERSION_MAJOR 0
#define UPROC_VERSION_MINOR 1

/* A process identifier: > 0 for a process, 0 for none, < 0 an error. */
typedef int64_t up_pid;
#define UP_PID_NONE ((up_pid)0)

/* A term (see "terms" below): one 64-bit word. */
typedef uint64_t up_term;

/* Timeout values for receives (nanoseconds). */
#define UP_INFINITY ((int64_t)-1)

/* Mailboxes per process: 1 by default, at most UP_MAX_MAILBOXES. */
#define UP_MAX_MAILBOXES 8

/* The body of a process. */
typedef void (*up_fn)(void *arg);

/* ------------------------------------------------------------------ run */

/*
 * Options of a runtime.  Zero-initialise and set what you need; every zero
 * field means "the default".
 */
struct up_run_opts {
	/* Scheduler threads.  Default: one per CPU in the calling thread's
	 * affinity mask (as set by taskset/numactl).  More than the allowed
	 * CPUs is allowed: schedulers then share CPUs round-robin. */
	unsigned schedulers;
	/* Stack bytes of each process (rounded up to pages; default 64 KiB,
	 * at least 16 KiB).  Fixes the region layout of the runtime. */
	size_t stack_size;
	/* Heap bytes inside each process's region before the heap continues in
	 * a mapping of its own (rounded up to pages; default 60 KiB). */
	size_t heap_size;
	/* Most processes alive at once; up_spawn() past it returns -EAGAIN.
	 * Default (0): 16 M (the pid format's limit is 256 M). */
	uint64_t max_processes;
	/* Microseconds an idle scheduler spins before it sleeps in the kernel
	 * (default 50; UP_NO_SPIN for none). */
	unsigned spin_us;
	/* Free process regions a scheduler keeps warm (the pages their last
	 * process touched stay resident, but for the stack of one that
	 * overflowed it) before returning their memory to the kernel (default
	 * 1024). */
	unsigned warm_regions;
	/* Largest message copy up_send accepts, in bytes (default 64 MiB;
	 * 256 bytes to 1 GiB, else up_run gives -EINVAL). */
	size_t max_message_size;
	/* Long-run reports: a process that runs more than long_run_us
	 * microseconds without yielding (without a blocking call, a receive, a
	 * yield, or a spent budget) is counted in its scheduler's
	 * up_sched_stats.long_runs and, when on_long_run is set, reported to it
	 * once per such run.  Nothing is preempted.  0 (default): off.  The check
	 * is a sampling thread that looks every long_run_us/4 (at least 1 ms),
	 * so the hot path pays nothing; run_ns is how long the process had run
	 * when seen (>= long_run_us).  The callback runs on that thread while
	 * the process may still be running: it may call up_info, up_exit and
	 * the up_send functions, not process-only functions.  Both are
	 * -EINVAL in up_run above 60 s, or with on_long_run and no long_run_us. */
	unsigned long_run_us;
	void (*on_long_run)(up_pid pid, int64_t run_ns, void *arg);
	void *long_run_arg;
	/* UP_RUN_* bits. */
	unsigned flags;
};
#define UP_NO_SPIN (~0u)
/*
 * Balancing (default on): a scheduler with nothing to run gets processes
 * that have not run yet from a busy scheduler of its NUMA node (never from
 * another node; never a process placed with UP_SPAWN_SCHEDULER).  With
 * UP_RUN_NO_BALANCE every process stays on the scheduler it was spawned on.
 */
#define UP_RUN_NO_BALANCE 0x1u

/*
 * up_run - start the runtime, run main_fn(arg) as the first process, and
 * return when every process has exited or up_shutdown() was called.  All
 * memory and threads of the runtime are released before it returns.  opts
 * may be NULL.  Call it from a thread that is not inside a runtime; one
 * runtime runs at a time per OS process.
 *
 * Returns 0, or
 *   -EINVAL  main_fn is NULL or an option is out of range;
 *   -EBUSY   a runtime is already running in this OS process;
 *   -ENOMEM  memory or rings could not be set up;
 *   another negative errno from the kernel (io_uring_setup, thread start).
 */
int up_run(up_fn main_fn, void *arg, const struct up_run_opts *opts);

/*
 * up_shutdown - ask the running runtime to stop: every process still alive
 * is ended without running further, and up_run() returns.  Any thread.
 * Returns 0, or -ESRCH when no runtime is running.
 */
int up_shutdown(void);

/* Number of scheduler threads of the running runtime, or -ESRCH. */
int up_schedulers(void);


/* ------------------------------------------------------------ processes */

/*
 * Placement and shape of a new process.  Zero-initialise and set what you
 * need: a zero field means the default.  Placement fields count only when
 * their flag is in `flags` (scheduler 0 and node 0 are real places).
 */
struct up_spawn_opts {
	unsigned flags;      /* UP_SPAWN_* bits */
	/* With UP_SPAWN_SCHEDULER: the scheduler to run on,
	 * 0..up_schedulers()-1.  Default: the spawner's scheduler (scheduler 0
	 * when spawning from a thread that is not a scheduler). */
	int scheduler;
	/* With UP_SPAWN_NODE: the NUMA node to run on; the spawner's scheduler
	 * if it is on that node, else the first scheduler of the node. */
	int node;
	/* Stack bytes; at most the runtime's stack_size (default: that). */
	size_t stack_size;
	/* Heap bytes the process may use in all (0: unlimited). */
	size_t heap_limit;
	/* Number of mailboxes, 1..UP_MAX_MAILBOXES (0: 1). */
	unsigned mailboxes;
	/* With UP_SPAWN_PRIORITIES: the priority of each mailbox.  A plain
	 * receive takes from the non-empty mailbox of the highest priority
	 * (ties: lower index first).  Default: mailbox i has priority i, so
	 * mailbox 0, the target of up_send_word, is served last. */
	int priorities[UP_MAX_MAILBOXES];
	/* Output, with UP_SPAWN_MONITOR: the monitor's reference (written by
	 * up_spawn_opt). */
	up_term monitor_ref;
	/* Most messages mailbox i may hold (0: no limit; at most
	 * UP_MAILBOX_LIMIT_MAX), and what a send to it does once it holds
	 * that many (UP_MAILBOX_REJECT or UP_MAILBOX_DROP_OLDEST).  Messages
	 * the process has taken (up_recv...) no longer count.  System
	 * messages ({'EXIT', ...} of a trapping process, DOWN) count but are
	 * never rejected; UP_MAILBOX_DROP_OLDEST may drop them like any
	 * message.  See docs/design.md, "Limits". */
	unsigned mailbox_limit[UP_MAX_MAILBOXES];
	unsigned char mailbox_policy[UP_MAX_MAILBOXES];
};
#define UP_SPAWN_SCHEDULER 0x1u
#define UP_SPAWN_NODE      0x2u
#define UP_SPAWN_PRIORITIES 0x4u
#define UP_SPAWN_LINK       0x8u  /* link spawner and child atomically */
#define UP_SPAWN_MONITOR    0x10u /* monitor the child: ref in monitor_ref */
/*
 * UP_SPAWN_COMPACT - a process for huge idle populations: no stack of its
 * own.  It runs on its scheduler's shared stack (the runtime's stack_size,
 * guarded like any stack); when it leaves the CPU and another compact
 * process needs that stack, the part it uses (a few hundred bytes for a
 * process blocked in a receive) is copied out, and back when it runs again.
 * An idle compact process costs 1344 bytes (its control block and up to
 * 320 bytes of saved frames share one slot; deeper frames spill into a
 * block of their size) instead of a page, and a spawn touches no new stack
 * memory.  The price: a copy of the used frames per switch between
 * two compact processes of one scheduler, and one rule:
 *   the address of a compact process's local variable is valid only while
 *   that process runs.  Do not give it to another process (as a spawn
 *   argument: up_spawn returns -EFAULT) or keep it across a blocking call
 *   in a structure someone else reads.  The runtime's own calls are safe:
 *   up_io_* buffers on the stack are bounced through the process's memory.
 * stack_size must be 0 (the shared stack is the runtime's stack_size).
 */
#define UP_SPAWN_COMPACT    0x20u

/* Mailbox policies (see mailbox_limit). */
/* A send to the full mailbox returns -EAGAIN and delivers nothing. */
#define UP_MAILBOX_REJECT      0
/* A send to the full mailbox is accepted and the oldest message of that
 * mailbox is dropped (freed unseen).  Drops happen on the receiver's
 * thread: a mailbox fed from other schedulers may hold more than its limit
 * until its scheduler next looks at it (at once when the receiver waits). */
#define UP_MAILBOX_DROP_OLDEST 1
#define UP_MAILBOX_LIMIT_MAX   (1u << 30)

/*
 * up_spawn - start fn(arg) as a new process on the caller's scheduler (an
 * idle scheduler of the same node may take it before it first runs: see
 * UP_RUN_NO_BALANCE).
 * Any thread inside a running runtime (from outside a process, the process
 * is placed on scheduler 0).  The new process runs after the caller next
 * blocks or yields.  New processes start newest first (a tree of spawns runs
 * depth first, so few of its processes live at once); processes that are
 * woken or yield are served first in, first out.  Do not rely on the start
 * order of processes spawned together.
 *
 * Returns the new pid (> 0), or
 *   -EFAULT  the caller is a compact process and arg points into its stack;
 *   -EINVAL  fn is NULL;
 *   -EAGAIN  max_processes are alive;
 *   -ENOMEM  no memory for its region;
 *   -ESRCH   no runtime is running.
 */
up_pid up_spawn(up_fn fn, void *arg);

/*
 * up_spawn_opt - up_spawn() with options (opts may be NULL).
 * Errors of up_spawn(), and -EINVAL for an option out of range: an unknown
 * bit in flags; both UP_SPAWN_SCHEDULER and UP_SPAWN_NODE; a scheduler or
 * node that does not exist, or a node without a scheduler; a stack larger
 * than the runtime's stack_size; mailboxes over UP_MAX_MAILBOXES.  Placement
 * fields whose flag is not set are ignored; a mailbox_limit or
 * mailbox_policy set on a mailbox the process does not have, a policy that
 * is not UP_MAILBOX_*, or a limit over UP_MAILBOX_LIMIT_MAX is -EINVAL too,
 * as is a stack_size with UP_SPAWN_COMPACT.
 * -EFAULT: the caller is a compact process and arg points into its stack
 * (which other processes overwrite while it waits; see UP_SPAWN_COMPACT).
 */
up_pid up_spawn_opt(up_fn fn, void *arg, struct up_spawn_opts *opts);

/* The calling process's pid, or UP_PID_NONE outside a process. */
up_pid up_self(void);

/*
 * up_yield - let other runnable processes of this scheduler run; the caller
 * continues after them.  Returns 0, or -EPERM outside a process.
 */
int up_yield(void);

/*
 * Fair scheduling without preemption.  Each time a process gets the CPU it
 * has a budget of UP_REDUCTIONS reductions.  Sends (1, plus 1 per 256 bytes
 * copied), receives (1), spawns (10) and up_consume charge it; when it is
 * spent, the call that spent it yields (the process goes to the back of its
 * scheduler's run queue).  A process that computes for long without such
 * calls should charge its work with up_consume, or it keeps the CPU (see
 * long_run_us in struct up_run_opts to find such processes).
 */
#define UP_REDUCTIONS 2000

/*
 * up_consume - charge n reductions of work to the calling process; when its
 * budget is spent it yields here.  Returns 1 if it yielded, 0 if not,
 * -EPERM outside a process, -EINVAL for n > UP_REDUCTIONS * 1000 (a
 * likely unit mistake).
 */
int up_consume(unsigned n);

/*
 * Exit reasons are terms.  These atoms are predefined (their values are
 * fixed): UP_NORMAL is a normal exit (a process whose function returns
 * exits with it); anything else is abnormal.
 */
#define UP_NORMAL      ((up_term)(0 << 3))  /* normal */
#define UP_KILL        ((up_term)(1 << 3))  /* kill: cannot be trapped */
#define UP_KILLED      ((up_term)(2 << 3))  /* killed: what `kill` ends with */
#define UP_NOPROC      ((up_term)(3 << 3))  /* noproc */
#define UP_SHUTDOWN    ((up_term)(12 << 3)) /* shutdown */
#define UP_STACK_OVERFLOW ((up_term)(15 << 3)) /* stack_overflow */
#define UP_HEAP_LIMIT  ((up_term)(16 << 3)) /* heap_limit */
/* no_memory: the runtime could not save a compact process's frames (see
 * UP_SPAWN_COMPACT); the process ends where it waited. */
#define UP_NO_MEMORY   ((up_term)(19 << 3))

/*
 * up_exit - OTP's exit/1 and exit/2.
 *  - up_exit(up_self(), reason) ends the caller at once with reason and does
 *    not return (like exit/1, whether or not it traps exits).
 *  - To another process (from any thread) it sends an exit signal, with
 *    OTP's rules: UP_KILL ends the process with reason `killed`, trapping
 *    or not; a process that traps exits receives {'EXIT', Sender, Reason}
 *    (Sender: the calling process's pid, or the atom `undefined` from a
 *    thread that is not one);
 *    otherwise UP_NORMAL does nothing and any other reason ends it.  A
 *    process to be ended dies at once if it is parked (in a receive, a
 *    sleep, or I/O, whose requests are cancelled), else at its next switch.
 *    Signals from one sender arrive in the order sent, messages included.
 * Returns (when it does not end the caller) 0, or
 *   -EINVAL  pid <= 0, not a pid of this runtime, or reason a bad term;
 *   -ESRCH   the process has exited (or no runtime is running);
 *   -ENOMEM  no memory for the signal.
 */
int up_exit(up_pid pid, up_term reason);

/*
 * up_assert - like assert(3) for processes: a false condition ends the
 * calling process with reason {assert, <<"Expr">>, <<"File">>, Line}; its
 * links and monitors are told, the program goes on.  Outside a process it
 * prints and aborts, as assert does.  Always checked (not NDEBUG-sensitive).
 *
 * A process that overflows its stack (touches its guard page) also dies
 * alone, with reason stack_overflow.  Any other memory fault stays fatal to
 * the whole program (see docs/design.md).
 */
#define up_assert(cond) \
	((cond) ? (void)0 : up__assert_fail(#cond, __FILE__, __LINE__))
void up__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Trap exits (on != 0): exit signals other than `kill` become
 * {'EXIT', From, Reason} messages.  Returns the previous setting (0 or 1),
 * or -EPERM outside a process. */
int up_trap_exit(int on);

/*
 * up_link - link the caller and pid: when either exits, the other gets an
 * exit signal with its reason.  Linking twice is one link.  If pid does not
 * exist (or has exited), the caller gets an exit signal with reason
 * `noproc` (OTP): a trapping caller receives {'EXIT', Pid, noproc} and the
 * call returns 0; a non-trapping caller exits with reason noproc and the
 * call does not return.
 * Returns 0, or -EPERM outside a process, -EINVAL for pid <= 0, not of this
 * runtime, or the caller itself, -ENOMEM.
 */
int up_link(up_pid pid);
/* Remove the link (if any) between the caller and pid.  0, -EPERM, -EINVAL. */
int up_unlink(up_pid pid);

/*
 * up_monitor - monitor pid: when it exits, the caller receives
 * {'DOWN', Ref, process, Pid, Reason}; Ref is returned.  Monitoring a pid
 * that does not exist delivers the DOWN message at once with reason
 * `noproc`.  Bad term: -EPERM outside a process, -EINVAL for a bad pid,
 * -ENOMEM.
 */
up_term up_monitor(up_pid pid);
/*
 * up_demonitor - stop monitor ref.  With UP_DEMONITOR_FLUSH, a DOWN message
 * of this monitor already received is removed from the mailbox too.
 * Returns 1 if the monitor was active, 0 if it was not (already fired or
 * never one of the caller's), -EPERM, -EINVAL (not a reference, or an
 * unknown flag).
 */
#define UP_DEMONITOR_FLUSH 0x1u
int up_demonitor(up_term ref, unsigned flags);

/*
 * Name registry (one per runtime).  A name is an atom; it is released when
 * its process exits.
 *   up_register:   0, -EEXIST (the name is taken, or pid already has a
 *                  name), -ESRCH (pid is not alive), -EINVAL (not an atom,
 *                  or bad pid), -ENOMEM.
 *   up_unregister: 0 or -ESRCH (no such name).
 *   up_whereis:    the pid, or -ESRCH.
 *   up_send_name:  up_send to the process registered as name (-ESRCH if
 *                  none).
 */
int up_register(up_term name, up_pid pid);
int up_unregister(up_term name);
up_pid up_whereis(up_term name);
int up_send_name(up_term name, up_term t);

/*
 * up_call - the core of gen_server:call.  Sends {'$gen_call', {Self, Ref},
 * Request} to server (a pid), monitors it for the duration of the call and
 * waits for {Ref, Reply}, looking only at messages that arrive after the
 * request (O(1) whatever else is queued).  On success *reply is the reply,
 * copied into the caller's heap.  A late reply after a timeout never
 * matches a later call (each call has its own reference).
 * Returns 0, or -ETIMEDOUT, -ESRCH when the server is not alive or exits
 * during the call (*reply is then its exit reason, in the caller's heap),
 * -EPERM, -EINVAL, -ENOMEM.
 */
int up_call(up_pid server, up_term request, up_term *reply, int64_t timeout_ns);
/* Answer a call: from is the {Pid, Tag} of the request; {Tag, Reply} goes
 * to Pid.  Tag is a reference, or the [alias | Ref] of an OTP 24+
 * gen_server:call from an Erlang node.  0 or the errors of up_send;
 * -EINVAL when from is not a {Pid, Ref} or {Pid, [alias | Ref]} tuple. */
int up_reply(up_term from, up_term reply);

/*
 * up_alive - is pid a live process?  Any thread.
 * Returns 1 (alive), 0 (exited, or never existed), -EINVAL (pid <= 0 or not
 * a pid of this runtime), -ESRCH (no runtime running).
 */
int up_alive(up_pid pid);

/*
 * up_alloc - size bytes from the calling process's heap, aligned to 16.
 * Freed when the process exits (there is no free: the heap is a bump
 * allocator, "one nursery per process").  A heap that outgrows the region
 * continues in mappings of its own.  Returns NULL outside a process, for
 * size 0, or without memory.
 *
 * heap_limit (up_spawn_opts): a process whose heap (up_alloc memory, terms,
 * dictionary, links and monitors, I/O tables) would grow past its limit
 * ends with reason UP_HEAP_LIMIT, as Erlang's max_heap_size kill: up_alloc
 * then does not return; any other call that needed the memory (a term
 * builder, up_term_decode, up_put, up_link, up_call's reply...) fails with
 * -ENOMEM and the process ends at its next send, receive, spawn, yield,
 * sleep or I/O call.  Received messages are not heap: they are bounded by
 * mailbox_limit and max_message_size instead.
 */
void *up_alloc(size_t size);

/* ---------------------------------------------------------------- terms */

/*
 * Terms: Erlang's values in C.  An up_term is one 64-bit word: small
 * integers, atoms, pids and [] are immediates; floats, large integers,
 * binaries, tuples, list cells and references live in the building
 * process's heap (up_alloc memory, freed when the process exits; see
 * up_heap_mark).  Terms are immutable.
 *
 * Builders return the new term, or a "bad term" that carries a negative
 * errno (-ENOMEM, -EINVAL, -EPERM outside a process, ...).  A bad term
 * given to a builder makes its result bad too, so a nested construction is
 * checked once, at the end:
 *
 *     up_term t = up_tuplev(3, up_atom("ok"), up_int(n), up_binary(buf, len));
 *     if (up_is_bad(t)) return up_term_error(t);
 *
 * Accessors check the kind and return -EINVAL on a mismatch, never crash.
 */
/* Kinds, in Erlang's term order (number < atom < reference < pid < tuple
 * < nil < list < binary). */
enum up_kind {
	UP_K_INT = 1,   /* 64-bit signed integer */
	UP_K_FLOAT,     /* double */
	UP_K_ATOM,
	UP_K_REF,
	UP_K_PID,
	UP_K_TUPLE,
	UP_K_NIL,       /* [] */
	UP_K_LIST,      /* a list cell [H|T] */
	UP_K_BINARY,
	UP_K_BAD = -1,  /* a bad term (an error) */
};

#define UP_NIL ((up_term)0x6)          /* [] */
#define UP_ATOM_MAX 255                /* bytes in an atom's name */

up_term up_int(int64_t v);             /* immediate up to 2^62, else boxed */
up_term up_float(double v);            /* -EINVAL for NaN and infinities */
/* The atom called name (interned in one table for the OS process; thread
 * safe).  Bad term: NULL, empty or longer than UP_ATOM_MAX, -ENOSPC past
 * 1,048,576 atoms. */
up_term up_atom(const char *name);
up_term up_atom_len(const char *name, size_t len);
up_term up_pid_term(up_pid pid);       /* -EINVAL for pid <= 0 */
up_term up_binary(const void *data, size_t len);
up_term up_tuple(size_t arity, const up_term *elems);
up_term up_tuplev(size_t arity, ...);  /* the elements as arguments */
up_term up_cons(up_term head, up_term tail);
up_term up_list(size_t n, const up_term *elems);   /* proper list */
/* A reference unique in this runtime (and across its runs). */
up_term up_make_ref(void);

int up_is_bad(up_term t);
/* The negative errno of a bad term, 0 for a good one. */
int up_term_error(up_term t);
enum up_kind up_kind_of(up_term t);

/* Accessors: 0 and the value, or -EINVAL when t is of another kind (or a
 * NULL out pointer). */
int up_get_int(up_term t, int64_t *v);
int up_get_float(up_term t, double *v);
int up_get_atom(up_term t, const char **name, size_t *len); /* not NUL-terminated */
int up_get_pid(up_term t, up_pid *pid);
int up_get_binary(up_term t, const void **data, size_t *len);
long up_tuple_arity(up_term t);                              /* or -EINVAL */
int up_tuple_elem(up_term t, size_t i, up_term *elem);      /* -ERANGE past arity */
/* head or tail may be NULL (not wanted); -EINVAL for [] and non-lists. */
int up_get_cons(up_term t, up_term *head, up_term *tail);
long up_list_length(up_term t);            /* -EINVAL for an improper list */

/* Erlang term order: < 0, 0, > 0 (an integer and a float of equal value
 * compare equal, as with ==).  Bad terms order first. */
int up_compare(up_term a, up_term b);
/* Exact equality (=:=): 1 or 0. */
int up_equal(up_term a, up_term b);
/* A hash consistent with up_equal. */
uint64_t up_hash(up_term t);
/*
 * Print t in Erlang syntax into buf, NUL-terminated and truncated to size
 * like snprintf: as io:format's ~tw (floats, atom quoting and escapes
 * exactly as Erlang's), except that a printable binary prints as a string,
 * ~p's way: {ok,<0.12.0>,[1,2,3],<<"abc">>}.  Returns the length the whole
 * text needs, or -EINVAL for a bad term or buf NULL with size > 0.
 */
long up_term_format(up_term t, char *buf, size_t size);

/*
 * External term format (Erlang's term_to_binary, version 131): to persist
 * terms and to talk to Erlang nodes.
 *
 * up_term_encode writes t into buf (at most size bytes) and returns the
 * number of bytes the whole encoding needs (call with size 0 to measure),
 * or -EINVAL for a bad term or buf NULL with size > 0.
 *
 * up_term_decode builds the term encoded in buf[0..len) in the calling
 * process's heap; *used (if not NULL) gets the bytes consumed (with used
 * NULL, bytes after the term are -EINVAL, as binary_to_term).  Untrusted
 * input is safe: a malformed, truncated or unsupported encoding (maps,
 * compressed terms, nesting deeper than 10,000) gives a bad term with
 * -EINVAL, an integer beyond 64 bits -ERANGE, a size field larger than the
 * input or than UP_DECODE_MAX -EMSGSIZE, a full atom table -ENOSPC; it
 * never reads past len nor allocates more than the input can justify.
 * -EPERM outside a process.
 */
#define UP_DECODE_MAX ((size_t)1 << 30)
long up_term_encode(up_term t, void *buf, size_t size);
up_term up_term_decode(const void *buf, size_t len, size_t *used);

/* Heap marks: up_heap_reset(m) frees everything the process allocated
 * (terms included) since up_heap_mark() returned m.  Terms built after the
 * mark must not be used afterwards.  -EPERM outside a process, -EINVAL for a
 * mark that is not one of the caller's (or was reset past). */
long up_heap_mark(void);
int up_heap_reset(long mark);

/* ---------------------------------------------------------- supervisors */

/*
 * Supervisors (OTP's supervisor behaviour).  A supervisor is a process that
 * traps exits, starts its children linked to it, in order, and restarts
 * them by strategy when they exit:
 *   UP_ONE_FOR_ONE   only the child that exited;
 *   UP_ONE_FOR_ALL   all children (the others stopped in reverse start
 *                    order first, then all started again in order);
 *   UP_REST_FOR_ONE  the child and those started after it.
 * Restart types: UP_PERMANENT always, UP_TRANSIENT only after an abnormal
 * exit (not normal, shutdown or {shutdown, _}), UP_TEMPORARY never.  More
 * than `intensity` restarts within `period_ns` and the supervisor stops its
 * children and exits with reason shutdown (its own supervisor decides).
 * Stopping a child: exit signal shutdown, then kill after shutdown_ns
 * (UP_BRUTAL_KILL: kill at once; UP_INFINITY: wait, for child supervisors).
 * A supervisor stops (its exit signal shutdown, or up_supervisor_stop) by
 * stopping its children in reverse start order.  Supervisors nest: a child
 * whose start is up_supervisor_main with a struct up_sup_spec * as arg.
 */
enum up_restart { UP_PERMANENT = 0, UP_TRANSIENT, UP_TEMPORARY };
enum up_strategy { UP_ONE_FOR_ONE = 0, UP_ONE_FOR_ALL, UP_REST_FOR_ONE };
#define UP_BRUTAL_KILL ((int64_t)0)

struct up_child_spec {
	up_term id;            /* an atom, unique among the siblings */
	up_fn start;           /* the child's body, spawned linked to the supervisor */
	void *arg;             /* (must outlive the supervisor: restarts reuse it) */
	enum up_restart restart;
	int64_t shutdown_ns;   /* UP_BRUTAL_KILL, a time, or UP_INFINITY */
};

struct up_sup_spec {
	enum up_strategy strategy;
	unsigned intensity;    /* restarts allowed ... (default 0: no restart) */
	int64_t period_ns;     /* ... within this period (> 0) */
	size_t nchildren;
	const struct up_child_spec *children;  /* copied by the supervisor */
};

/*
 * up_supervisor_start - start a supervisor for spec, linked to the calling
 * process, and return when all its children have been started: the
 * supervisor's pid, or -EINVAL (bad spec: no period, duplicate or non-atom
 * ids, NULL start), -EPERM outside a process, -ENOMEM, -ECHILD (a child
 * could not be started; the supervisor has stopped), -EFAULT when called
 * from a compact process (the supervisor reads its start arguments from the
 * caller's stack: see UP_SPAWN_COMPACT).
 */
up_pid up_supervisor_start(const struct up_sup_spec *spec);
/* The supervisor's body, for a child spec that is itself a supervisor (arg:
 * a const struct up_sup_spec *, which must outlive it). */
void up_supervisor_main(void *spec);
/* The current pid of child `id` of supervisor sup (an up_call): > 0, or
 * -ESRCH (no such child, or not running), -ETIMEDOUT, -EPERM. */
up_pid up_supervisor_child(up_pid sup, up_term id, int64_t timeout_ns);
/* Number of restarts the supervisor has made (an up_call), or an error. */
long up_supervisor_restarts(up_pid sup, int64_t timeout_ns);
/* Stop sup (children in reverse start order) and wait for its exit:
 * 0, -ESRCH, -ETIMEDOUT, -EPERM. */
int up_supervisor_stop(up_pid sup, int64_t timeout_ns);

/* ------------------------------------------------------------- messages */

/* A received message (filled by the up_recv family). */
enum up_msg_kind { UP_MSG_WORD = 0, UP_MSG_TERM = 1 };
struct up_msg {
	uint64_t word;     /* UP_MSG_WORD: the payload */
	up_term term;      /* UP_MSG_TERM: the receiver's own copy */
	unsigned mailbox;  /* the mailbox it was taken from */
	int kind;          /* enum up_msg_kind */
	void *_buf;        /* internal: the copy's memory (see up_msg_free) */
};

/*
 * up_send - send a copy of term t to mailbox 0 of pid (up_send_to: to
 * mailbox `mailbox`).  The copy is made by the sender into memory of the
 * receiver's NUMA node, in one allocation; the two never share memory, and
 * t stays valid.  Immediates (integers, atoms, pids, []) need no memory
 * beyond the mailbox node.  Never blocks; any thread.
 * Returns 0, or the errors of up_send_word and
 *   -EINVAL   t is a bad term;
 *   -EMSGSIZE the copy would exceed the runtime's max_message_size (nothing
 *             is delivered).
 */
int up_send(up_pid pid, up_term t);
int up_send_to(up_pid pid, unsigned mailbox, up_term t);

/*
 * up_msg_free - release a received term message's memory.  The term stays
 * valid until then (or until the process exits, which releases every
 * message it still holds).  Word messages hold nothing; freeing one, or
 * twice, is harmless.  -EINVAL for NULL, -EPERM outside a process.
 */
int up_msg_free(struct up_msg *msg);

/*
 * up_send_word - send a 64-bit word to mailbox 0 of pid.  Never blocks; any
 * thread.  Messages from one sender to one receiver arrive in the order sent.
 * A message accepted (return 0) for a live process is delivered exactly once
 * unless the receiver exits first.
 * Returns 0, or
 *   -EINVAL  pid <= 0 or not a pid of this runtime;
 *   -ESRCH   the process has exited (or no runtime is running);
 *   -ENOMEM  no memory for the message;
 *   -EAGAIN  the mailbox holds its mailbox_limit of messages and its policy
 *            is UP_MAILBOX_REJECT (nothing is delivered).
 */
int up_send_word(up_pid pid, uint64_t word);

/* up_send_word_to - the same, to mailbox `mailbox` of pid.  Also -EINVAL
 * when the receiver has no such mailbox. */
int up_send_word_to(up_pid pid, unsigned mailbox, uint64_t word);

/*
 * up_recv - take the oldest message of the highest-priority non-empty
 * mailbox of the caller, waiting up to timeout_ns (UP_INFINITY: for ever;
 * 0: do not wait).  A waiting process is parked: it costs no CPU.
 * Returns 0 and fills *msg, or
 *   -ETIMEDOUT  nothing arrived in time;
 *   -EINVAL     msg is NULL or timeout_ns < 0 and not UP_INFINITY;
 *   -EPERM      called outside a process;
 *   -ENOMEM     a wait with a timeout found no memory for its timer.
 */
int up_recv(struct up_msg *msg, int64_t timeout_ns);

/*
 * up_recv_from - like up_recv() but only from mailbox `mailbox`; the other
 * mailboxes are left untouched.  Also -EINVAL for a mailbox the caller does
 * not have.
 */
int up_recv_from(unsigned mailbox, struct up_msg *msg, int64_t timeout_ns);

/* Number of messages waiting in mailbox `mailbox` of the caller (>= 0), or
 * -EPERM outside a process, -EINVAL for a mailbox it does not have. */
long up_mailbox_len(unsigned mailbox);

/*
 * Selective receive.  up_recv_match takes the first message, oldest first
 * and mailboxes by priority, for which match(msg, arg) returns non-zero;
 * messages it skips stay where they are, in order.  It waits up to
 * timeout_ns; while waiting it looks only at messages that arrived since
 * it last looked (no rescans).  Errors as up_recv, and -EINVAL for a NULL
 * match.
 *
 * With UP_RECV_AFTER_MARK it looks only at messages that arrived after the
 * caller's last up_recv_mark(): the call/reply pattern (make a reference,
 * mark, send the request, wait for the reply carrying the reference) then
 * costs O(1) however many unrelated messages are queued.
 */
typedef int (*up_match_fn)(const struct up_msg *msg, void *arg);
#define UP_RECV_AFTER_MARK 0x1u
int up_recv_match(up_match_fn match, void *arg, struct up_msg *msg, int64_t timeout_ns,
		  unsigned flags);
/* Mark the current end of the caller's mailboxes.  0 or -EPERM. */
int up_recv_mark(void);

/*
 * Process dictionary: term keys to term values, private to the process,
 * living in its heap (copies of key and value are kept, so the arguments
 * may be freed or reset afterwards).
 *   up_put:   0, or -EPERM, -EINVAL (bad term), -ENOMEM; replaces a value.
 *   up_get:   0 and *value (valid until the key is put again or erased), or
 *             -ENOENT, -EPERM, -EINVAL.
 *   up_erase: 0 or -ENOENT, -EPERM, -EINVAL.
 */
int up_put(up_term key, up_term value);
int up_get(up_term key, up_term *value);
int up_erase(up_term key);

/* --------------------------------------------------------------- tables */

/*
 * Shared tables (Erlang's ETS, type `set`): term keys to term values that
 * every process of the runtime can reach through a handle.  Keys and values
 * are copied in (the table keeps its own copies, in memory of its owner's
 * NUMA node) and copied out (a lookup copies the value into the calling
 * process's heap, like a received message).  Keys are compared exactly
 * (=:=, so 1 and 1.0 are different keys).
 *
 * A table belongs to the process that made it and is deleted when that
 * process exits, unless it has an heir (up_table_set_heir) that is alive
 * then, or was given away (up_table_give_away).  The new owner receives
 * {'ETS-TRANSFER', Tab, FromPid, Data}, Tab being the handle as an integer.
 *
 * Access (flags of up_table_new): UP_TABLE_PROTECTED (the default) lets
 * every process read and the owner write; UP_TABLE_PUBLIC lets every
 * process write; UP_TABLE_PRIVATE keeps reads and writes to the owner.
 * Others get -EACCES.
 *
 * Concurrency: lookups take no lock and execute no locked instruction, so
 * readers never wait for each other nor for writers; writers lock one of 64
 * stripes of the table (by key hash), so writers of different keys run in
 * parallel on different schedulers.  Every single-key operation is atomic
 * (linearisable).  A handle is an opaque positive number, never reused:
 * once its table is deleted every call given it returns -EBADF.
 *
 * Common errors of every table function: -EPERM outside a process; -EBADF
 * when t does not name a live table (never did, deleted, or its owner
 * exited without a live heir); -EACCES when the access rights forbid the
 * operation to the caller; -EINVAL for a bad term (key, value, ...) or a
 * NULL out pointer; -EMSGSIZE for a key or value larger than the runtime's
 * max_message_size; -ENOMEM when the table's or the caller's memory runs
 * out (past its heap_limit the caller then ends with reason heap_limit at
 * its next switch, see up_alloc).
 */
typedef int64_t up_table;

#define UP_TABLE_PROTECTED 0x0u  /* others read, the owner writes (default) */
#define UP_TABLE_PUBLIC    0x1u  /* everybody reads and writes */
#define UP_TABLE_PRIVATE   0x2u  /* only the owner reads and writes */

/*
 * up_table_new - a new empty table owned by the caller.  name: UP_NIL for an
 * anonymous table, or an atom under which up_table_whereis finds it (the
 * name is released when the table is deleted; a give-away keeps it).
 * Returns the handle (> 0), or -EPERM, -EINVAL (unknown flag, PUBLIC with
 * PRIVATE, name neither an atom nor UP_NIL), -EEXIST (a live table has that
 * name), -ENFILE (1,048,576 tables alive), -ENOMEM.
 */
up_table up_table_new(up_term name, unsigned flags);
/* The table named name: its handle, or -ENOENT (none), -EINVAL (not an
 * atom), -EPERM. */
up_table up_table_whereis(up_term name);
/* Delete the table and everything in it (write access needed).  0, or the
 * common errors. */
int up_table_destroy(up_table t);

/* Insert key -> value, replacing the key's value if present.  0 or the
 * common errors. */
int up_table_insert(up_table t, up_term key, up_term value);
/* Insert key -> value only if key is absent: 0, -EEXIST, or the common
 * errors. */
int up_table_insert_new(up_table t, up_term key, up_term value);
/* The value of key, copied into the caller's heap: 0 and *value, -ENOENT,
 * or the common errors. */
int up_table_lookup(up_table t, up_term key, up_term *value);
/* Remove key: 0, -ENOENT, or the common errors. */
int up_table_delete(up_table t, up_term key);
/*
 * up_table_update_counter - atomically add incr to the integer value of
 * key and return the new value in *result (may be NULL).  A missing key is
 * -ENOENT when init is NULL, else it is inserted with value *init first (as
 * ETS's Default).  0, -ENOENT, -EINVAL (the value is not an integer),
 * -ERANGE (the sum leaves int64_t; the value is unchanged), or the common
 * errors.
 */
int up_table_update_counter(up_table t, up_term key, int64_t incr, const int64_t *init,
			    int64_t *result);
/* Number of keys (exact when no writer runs concurrently), or the common
 * errors. */
long up_table_size(up_table t);

/*
 * Traversals: every object whose key and value the filter accepts, as a list
 * of {Key, Value} tuples in the caller's heap (*list, in no particular
 * order); the number of objects is returned, or the common errors (*list
 * is then unchanged).
 *
 * Guarantee (a table is read in 64 stripes, each as an atomic snapshot): a
 * key present during the whole traversal is returned exactly once, with a
 * value it had during the traversal; no key is returned twice; a key
 * inserted or deleted during the traversal may or may not be returned.
 * Writers are not held up (a stripe that keeps changing under the reader is
 * read under its lock after a few tries).
 *
 * up_table_select: pred(key, value, arg) != 0 selects an object (pred NULL:
 * all).  pred sees the table's own copies, valid only during the call, and
 * is called once per object, inside the table's read side: it must return,
 * without exiting the process; if it yields or blocks, memory the table
 * frees meanwhile is held until it returns.
 * up_table_match_prefix: objects whose key starts with prefix: for a binary
 * prefix, binary keys beginning with its bytes; for a tuple, tuples of at
 * least its arity whose first elements equal its elements; for a proper
 * list, lists whose first elements equal its elements (whatever their tail;
 * [] selects every list and []); any other prefix
 * selects the key equal to it.
 */
typedef int (*up_table_pred)(up_term key, up_term value, void *arg);
long up_table_select(up_table t, up_table_pred pred, void *arg, up_term *list);
long up_table_match_prefix(up_table t, up_term prefix, up_term *list);

/*
 * up_table_give_away - make pid the owner (only the owner may); pid receives
 * {'ETS-TRANSFER', Tab, Self, gift}.  0, or -EACCES (the caller is not the
 * owner), -ESRCH (pid is not alive), -EINVAL (pid bad or the caller
 * itself, gift a bad term), or the common errors.
 */
int up_table_give_away(up_table t, up_pid pid, up_term gift);
/*
 * up_table_set_heir - when the owner exits, the table goes to heir (if it
 * is alive then), which receives {'ETS-TRANSFER', Tab, OwnerPid, data};
 * UP_PID_NONE removes the heir.  An inherited or given-away table has no
 * heir until its new owner sets one.  Owner only: 0, -EACCES, -EINVAL (bad
 * pid or term), or the common errors.
 */
int up_table_set_heir(up_table t, up_pid heir, up_term data);
/* The owner's pid, or the common errors. */
up_pid up_table_owner(up_table t);

/* ------------------------------------------------------------------ I/O */

/*
 * Blocking I/O for processes.  Each call submits one request to the
 * scheduler's io_uring ring and parks the calling process until its
 * completion (a parked process costs no CPU; other processes run).  Every
 * call takes a timeout (UP_INFINITY: none; 0 is -EINVAL for calls that
 * must wait).  Process-only: from another thread they return -EPERM.
 *
 * Common errors: -EPERM outside a process; -EINVAL for a bad argument
 * (NULL buffer with a length, negative fd, timeout < 0 and not
 * UP_INFINITY); -ETIMEDOUT past the timeout (the request is cancelled and
 * nothing more happens to the buffer); -ECANCELED when the runtime shuts
 * down under the call; -EAGAIN when the ring had no room for the request
 * even after submitting what was queued (nothing was started); -ENOMEM
 * (accept: no memory for its queue; a timed accept: for its timer);
 * otherwise the negative errno of the operation (-ECONNRESET, -EPIPE,
 * -EBADF, ...).
 *
 * A process that exits (or is ended) while a request is in flight has it
 * cancelled; its region is reused only after the kernel is done with it.
 */

/* Read up to len bytes (read(2)).  Bytes read, 0 at end of file. */
ssize_t up_io_read(int fd, void *buf, size_t len, int64_t timeout_ns);
/* Receive up to len bytes (recv(2) with flags).  0 when the peer closed. */
ssize_t up_io_recv(int fd, void *buf, size_t len, int flags, int64_t timeout_ns);
/* Write all len bytes (looping over short writes).  Returns len, or a
 * negative errno (then an unknown prefix may have been written). */
ssize_t up_io_write(int fd, const void *buf, size_t len, int64_t timeout_ns);
/* Send all len bytes (send(2) with flags, MSG_NOSIGNAL added). */
ssize_t up_io_send(int fd, const void *buf, size_t len, int flags, int64_t timeout_ns);
/*
 * Accept a connection on listening socket fd: the new descriptor (>= 0,
 * SOCK_CLOEXEC), and the peer's address in addr (length in addrlen) when addr is not
 * NULL.  The first call arms a multishot accept for the calling process, so
 * connections are taken by the kernel while the process works; a process
 * accepts on one listening socket at a time (another fd re-arms).
 */
int up_io_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t timeout_ns);
/* Connect socket fd to addr.  0 or a negative errno (-ECONNREFUSED...). */
int up_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t timeout_ns);
/* Close fd (and forget it if the process owned it).  0 or negative errno. */
int up_io_close(int fd);
/* shutdown(2) of a socket.  0 or a negative errno. */
int up_io_shutdown(int fd, int how);
/* Park the calling process for ns nanoseconds (messages do not end the
 * sleep).  0, -EINVAL for ns < 0, -EPERM outside a process, -ENOMEM (no
 * memory for its timer). */
int up_sleep(int64_t ns);
/*
 * The calling process owns fd: it is closed when the process exits, however
 * it exits.  Accepted descriptors are not owned until the process says so.
 * 0, -EINVAL (fd < 0), -EEXIST (already owned), -ENOMEM, -EPERM.
 */
int up_io_own(int fd);
/* Stop owning fd (to hand it to another process).  0 or -ENOENT. */
int up_io_disown(int fd);

/* -------------------------------------------------------- introspection */

/* What a process is doing (up_info). */
enum up_status {
	UP_ST_RUNNING = 1,   /* on a CPU now */
	UP_ST_RUNNABLE,      /* waiting for its scheduler's CPU */
	UP_ST_WAITING,       /* in a receive (maybe with a timeout) */
	UP_ST_SLEEPING,      /* in up_sleep: its timer only wakes it */
	UP_ST_WAITING_IO,    /* in an I/O call (up_io_*), incl. accept */
	UP_ST_EXITING,       /* ended, being reaped */
};

struct up_info {
	up_pid pid;
	enum up_status status;
	int scheduler;            /* index of the scheduler that runs it */
	int node;                 /* NUMA node of its scheduler and region */
	up_fn fn;                 /* its start function */
	uint64_t reductions;      /* charged since it started */
	size_t region_bytes;      /* its region's reserved size (heap, stack, block) */
	size_t stack_bytes;       /* stack size of its region */
	size_t heap_bytes;        /* heap and side tables in use (what heap_limit counts) */
	size_t heap_limit;        /* 0: none */
	unsigned mailboxes;
	long mailbox_len[UP_MAX_MAILBOXES]; /* messages queued per mailbox */
	unsigned links;           /* processes linked to it */
	unsigned monitors;        /* processes it monitors */
	unsigned monitored_by;    /* monitors on it */
	int trap_exit;
	up_term name;             /* its registered name, or UP_NIL */
};

/*
 * up_info - what process pid is doing and what it holds (Erlang's
 * process_info).  Any thread.  For the caller itself and for processes of
 * the caller's scheduler the figures are exact; for processes of other
 * schedulers they are a snapshot read while the process runs on (each
 * field was true a moment ago, and messages other threads pushed that its
 * scheduler has not taken yet are not counted in mailbox_len).
 * Returns 0, or -EINVAL (info NULL, pid <= 0 or not a pid of this runtime),
 * -ESRCH (the process has exited, or no runtime is running).
 */
int up_info(up_pid pid, struct up_info *info);

/* Counters of one scheduler since up_run began (monotonic). */
struct up_sched_stats {
	uint64_t runs;           /* times a process was given the CPU */
	uint64_t switches;       /* context switches (runs + returns to the scheduler loop) */
	uint64_t spawns;         /* processes spawned by its processes */
	uint64_t exits;          /* processes of it that ended */
	uint64_t msgs_sent;      /* messages its processes sent */
	uint64_t msgs_recv;      /* messages its processes received */
	uint64_t io_submitted;   /* io_uring SQEs submitted */
	uint64_t io_completed;   /* io_uring CQEs reaped */
	uint64_t sleeps;         /* times it slept in the kernel (idle) */
	uint64_t wakes;          /* times another thread woke it */
	uint64_t wakes_sent;     /* times its processes woke a sleeping scheduler */
	uint64_t steals;         /* processes it took from others of its node */
	uint64_t given;          /* processes it handed to others of its node */
	uint64_t long_runs;      /* processes seen running past long_run_us */
	uint64_t processes;      /* live processes it runs now */
	uint64_t prepared;       /* fresh stack slots it readied, idle, for its
				    node's spawners (guard, resident page) */
	uint64_t trimmed;        /* dead processes' slots it returned to the
				    kernel, idle, for its node's schedulers */
};

/*
 * up_sched_stats - counters of scheduler sched (0..up_schedulers()-1).
 * Any thread; counters of a running scheduler are read as they are.
 * Returns 0, or -EINVAL (stats NULL, no such scheduler), -ESRCH (no runtime).
 */
int up_sched_stats(int sched, struct up_sched_stats *stats);

/*
 * up_processes - the pids of the live processes (Erlang's processes()):
 * up to max of them into pids, in no particular order.  Any thread.
 * Returns how many processes live (which may be more than max: call again
 * with a larger array), or -EINVAL (pids NULL with max > 0), -ESRCH (no
 * runtime).
 */
long up_processes(up_pid *pids, size_t max);

/*
 * up_print_processes - a table of every live process, like Erlang's i():
 * pid, registered name or start function, status, reductions, heap bytes,
 * queued messages, scheduler; then a line per scheduler.  Any thread.
 * Returns the number of processes listed, or -EINVAL (f NULL), -ESRCH (no
 * runtime), -EIO (write error on f).
 */
long up_print_processes(FILE *f);
/* --------------------------------------------------------- distribution */

/*
 * Distribution: the program becomes an Erlang node.  It registers with
 * epmd, accepts and makes connections to Erlang nodes (and to other uproc
 * programs) with the cookie handshake, and its processes exchange
 * messages, links, monitors and exit signals with remote processes as
 * with local ones:
 *  - Remote pids are up_pids like local ones (they come in messages from
 *    other nodes); up_send, up_exit, up_link, up_monitor and up_call take
 *    them.  Sending to a remote pid never fails for a connection problem
 *    (as in Erlang, the message is then lost); the first send to a node
 *    connects to it.
 *  - When a connection is lost, processes linked to a process of that node
 *    get an exit signal with reason `noconnection`, and monitors of such
 *    processes fire with reason `noconnection` (OTP's semantics).
 *  - The node's processes (a listener, and two per connection) keep
 *    up_run() from returning until up_node_stop().
 *  - A refused peer (wrong cookie, malformed handshake) or a connection
 *    ended by a malformed frame is logged on stderr, one line each.
 */
struct up_node_opts {
	/* epmd's port (default: $ERL_EPMD_PORT, else 4369).  epmd must run
	 * on this host (127.0.0.1). */
	uint16_t epmd_port;
	/* Distribution port to listen on (0: any free one). */
	uint16_t port;
	/* IPv4 address to listen on, network byte order (0: all). */
	uint32_t listen_addr;
	/* A tick goes to each peer after this much silence (default 15 s:
	 * Erlang's net_ticktime 60 s); a peer silent for 4 ticks is lost. */
	int64_t tick_ns;
	/* Time allowed for epmd, connect and handshake (default 7 s). */
	int64_t connect_timeout_ns;
};

/*
 * up_node_start - make this program the node `name` ("alive@host"; host as
 * the peers resolve it, like erl -sname/-name) with cookie `cookie`, and
 * register it with epmd.  Process-only.  opts may be NULL.
 * Returns 0, or
 *   -EINVAL      a bad name (no '@', empty part, > 255 bytes), cookie
 *                (empty, > 255 bytes) or option;
 *   -EALREADY    the node is started already;
 *   -EADDRINUSE  epmd has that name registered already (or the port is
 *                taken);
 *   -ECONNREFUSED no epmd at epmd_port;
 *   -EPERM       outside a process; another negative errno of the socket
 *                calls.
 */
int up_node_start(const char *name, const char *cookie, const struct up_node_opts *opts);
/*
 * up_node_stop - close every connection (linked and monitoring processes
 * get `noconnection`, node monitors nodedown), unregister from epmd, stop
 * the listener.  Process-only.  0, -ENOTCONN (not started), -EPERM.
 */
int up_node_stop(void);
/* This node's name (an atom), or a bad term -ENOTCONN when not started. */
up_term up_node_self(void);
/* The connected nodes: a list of atoms in the caller's heap (bad term
 * -EPERM outside a process, -ENOMEM). */
up_term up_nodes(void);
/*
 * up_monitor_nodes - on != 0: the caller receives {nodeup, Node} and
 * {nodedown, Node} whenever a connection comes up or goes (OTP's
 * net_kernel:monitor_nodes); 0 stops that.  0, -EPERM, -ENOMEM.
 */
int up_monitor_nodes(int on);
/*
 * up_name_at - a handle for {Name, Node}, the process registered as name
 * (an atom) on node (an atom).  up_send to it is Erlang's {Name, Node} !
 * Msg; up_call and up_monitor take it (a gen_server:call({Name, Node},
 * Req)); the DOWN of such a monitor names {Name, Node}.  It cannot be
 * linked to (-EINVAL) nor put in a term (the encoder gives -EINVAL).
 * When node is this node, the local pid registered as name (or -ESRCH).
 * Returns the handle (> 0), or -EINVAL (not atoms, or node has no '@'),
 * -ENOTCONN (not distributed), -ENOSPC (too many node names).
 */
up_pid up_name_at(up_term name, up_term node);
/* The node of pid (an atom; 'nonode@nohost' for a local pid when not
 * distributed), or a bad term -EINVAL. */
up_term up_pid_node(up_pid pid);

/* -------------------------------------------------------------- numa */

/* The NUMA node of the scheduler the caller runs on (>= 0), or -EPERM
 * outside a process. */
int up_node(void);

/* The index of the scheduler the caller runs on, or -EPERM outside one. */
int up_scheduler(void);

/* The NUMA node of scheduler `sched` (>= 0), -EINVAL if there is none,
 * -ESRCH when no runtime is running. */
int up_scheduler_node(int sched);

#ifdef __cplusplus
}
#endif
#endif /* UPROC_H */
