/*
 * proc.h - the process control block and the process life cycle.
 *
 * The control block lives at the top of the process's region slot (see
 * region.h), so its address follows from the pid and stays readable after
 * the process is gone.  Fields are split by who may touch them:
 *
 *  shared (any thread, atomics only):
 *    inbox[]  - one {head, tag} pair per mailbox; tag is the owner's pid while
 *               the process lives and 0 otherwise.  Senders push with a
 *               16-byte CAS that also checks the tag (mailbox.c).
 *    sched    - the scheduler that runs it (set before the tag is
 *               published; constant while it lives).
 *    nmb      - its number of mailboxes (likewise).
 *    compact  - it runs on its scheduler's shared stack (likewise; see
 *               UP_SPAWN_COMPACT and scheduler.c).
 *  private (the owning scheduler's thread only): everything else, notably
 *  `state`: whether a process waits is decided by its scheduler's thread
 *  alone, so waking needs no atomic (see mailbox.c).
 *
 * Life cycle: NEW -> RUNNABLE <-> RUNNING -> (WAITING -> RUNNABLE)* -> EXITING
 * -> reaped by its scheduler (inboxes closed, messages freed, heap mappings
 * unmapped, slot returned).
 */
#ifndef UP_PROC_H
#define UP_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include "uproc.h"
#include "dwcas.h"
#include "msg.h"
#include "io.h"
#include "signals.h"
#include "debug.h"

struct up__sched;

enum up__proc_state {
	UP__P_FREE = 0,
	UP__P_RUNNABLE,
	UP__P_RUNNING,
	UP__P_WAITING,        /* for a message (senders wake it) */
	UP__P_EXITING,
	UP__P_WAITING_IO,     /* for completions (io.c wakes it) */
	UP__P_WAITING_ACCEPT, /* for a connection or its timer */
	UP__P_SLEEPING,       /* for its timer only */
	UP__P_ZOMBIE,         /* dead, region kept until its I/O completes */
};

/* Inbox head markers (never valid node addresses). */
#define UP__INBOX_WAITING ((void *)1)

struct up__heap_map;   /* a heap mapping outside the slot */

/*
 * Layout, by who touches what and when:
 *  - line 0, shared: a send to mailbox 0 (sched, nmb, inbox[0]);
 *  - the private hot line: a switch (sp, reds), a same-scheduler send and
 *    a receive (state, queue[0]); queue[1..7] follow, touched only by
 *    processes with several mailboxes;
 *  - two lines an exit reads for any process (list links, pid, reason,
 *    slot, heap, side tables), then its I/O and signal state (two lines),
 *    so a process that used none of them costs its exit six lines, four
 *    of them consecutive, where they were nine scattered ones;
 *  - the rest: what only some processes use (limits, marks, timed
 *    receives, spilled frames, tools).
 * With thousands of processes every line is a cache miss per hop of a
 * message ring, or per exit of a teardown.
 */
struct up__proc {
	/* ---- shared: senders (first line: sched, nmb, inbox[0..2]) ---- */
	struct up__sched *sched;             /* atomic load by senders */
	uint8_t nmb;                         /* mailboxes (constant while alive) */
	uint8_t named;                       /* atomic: in the registry (signals.c) */
	uint8_t limited;                     /* mailboxes with a length limit (bits) */
	uint8_t compact;                     /* UP_SPAWN_COMPACT (constant while alive) */
	uint8_t marked;                      /* owner only: mailboxes with a receive
						mark (mailbox.c), here because every
						receive reads this line anyway */
	struct up__pair inbox[UP_MAX_MAILBOXES];

	/* ---- private: the owning scheduler only; first line hot ---- */
	void *sp __attribute__((aligned(UP_CACHELINE)));
	uint64_t reds;                      /* reductions of its finished runs
					       (added to at every switch away) */
	struct up__proc *run_next;          /* run queue / spawn stack link */
	uint8_t state;
	uint8_t timed_out;
	uint8_t killed;                     /* an exit signal ends it on resume */
	uint8_t pinned;                     /* placed on a scheduler: never given away */
	uint32_t timer_idx;                 /* in the scheduler's timer heap; 0: none */
	uint8_t order[UP_MAX_MAILBOXES];    /* mailboxes, highest priority first */
	struct {
		struct up__msg *head, *tail;
		long len;
	} queue[UP_MAX_MAILBOXES];          /* received, in arrival order */

	/* ---- private, read by every exit ---- */
	struct up__proc *all_prev __attribute__((aligned(UP_CACHELINE)));
	struct up__proc *all_next;
	up_pid pid;                         /* hot paths read inbox[0].tag instead */
	up_term exit_reason;
	uint32_t slot;
	uint32_t save_cap;                  /* compact: bytes of save_block */
	up_fn fn;
	void *arg;
	char *heap_cur, *heap_end;
	struct up__heap_map *heap_maps;
	size_t heap_slot_used;
	struct up__held *held;              /* received term buffers not freed */
	struct up__dict *dict;              /* process dictionary (its heap) */
	struct up__table *tables;           /* owned shared tables (table.c); atomic flag */
	void *tsan_fiber;                   /* NULL outside TSan builds */
	struct up__io io;
	struct up__sig sig;

	/* ---- private, only some processes ---- */
	size_t heap_used, heap_limit;
	uint16_t mark_seq;                  /* heap marks issued (up_heap_mark) */
	unsigned vg_stack;
	int64_t deadline;                   /* of a timed receive */
	struct up__proc *run_prev;          /* spawn stack: the newer neighbour */
	int64_t born_ns;                    /* when it joined the spawn stack (pass clock) */
	/* compact processes (scheduler.c): frames saved past the slot's
	 * save area go to a node-local block of save_cap bytes */
	void *save_block;
	void *asan_fake_stack;
	struct up__msg *mark[UP_MAX_MAILBOXES]; /* receive mark: last node then */
	struct up__msg *seen[UP_MAX_MAILBOXES]; /* selective receive: last node looked at */

	/* ---- shared, only for mailboxes with a length limit (mailbox.c);
	 * on lines of their own: senders update them ---- */
	struct up__mb_limit {
		/* atomic: generation of the owner's pid << 32 | messages in
		 * the mailbox (pushed, queued, not yet taken) */
		uint64_t count;
		uint32_t max;
		uint8_t drop_oldest;
	} limit[UP_MAX_MAILBOXES] __attribute__((aligned(UP_CACHELINE)));
};

_Static_assert(__builtin_offsetof(struct up__proc, inbox[3]) <= UP_CACHELINE, "hot shared line");
_Static_assert(__builtin_offsetof(struct up__proc, queue[1]) -
	       __builtin_offsetof(struct up__proc, sp) <= UP_CACHELINE, "hot private line");
_Static_assert(__builtin_offsetof(struct up__proc, io) + sizeof(struct up__io) +
	       sizeof(struct up__sig) - __builtin_offsetof(struct up__proc, all_prev) <=
	       4 * UP_CACHELINE, "exit lines");
_Static_assert(sizeof(struct up__proc) <= 1024, "a compact slot's block");
_Static_assert(__builtin_offsetof(struct up__proc, inbox) % 16 == 0, "inbox alignment");

/* Reap an EXITING (or never-run, at shutdown) process on scheduler s: close
 * its inboxes, free its messages, end its I/O; then release it, or leave it
 * a ZOMBIE until its last completion (io.c releases it). */
void up__proc_reap(struct up__sched *s, struct up__proc *p) UP_INTERNAL;
/*
 * Side tables of a process (links, monitors, dictionary, I/O state) live
 * outside its bump heap, so up_heap_reset can never free them: node-local
 * blocks of the calling (owner) thread, freed at release or when replaced.
 * They count against the process's heap_limit like its heap.
 */
void *up__side_alloc(struct up__proc *p, size_t size) UP_INTERNAL;
void up__side_free(struct up__proc *p, void *b, size_t size) UP_INTERNAL;
/* Grow p's array *a of n elements of size elem to hold one more. */
int up__side_grow(struct up__proc *p, void **a, uint32_t n, uint32_t *cap, size_t elem) UP_INTERNAL;
void up__signal_free(struct up__proc *p) UP_INTERNAL;
void up__dict_free(struct up__proc *p) UP_INTERNAL;
void up__io_free(struct up__proc *p) UP_INTERNAL;
/* At exit, when p->tables is set: its tables go to their heirs or are
 * deleted (before links and monitors hear of the death). */
void up__table_exit(struct up__sched *s, struct up__proc *p) UP_INTERNAL;
/* End of a run (nothing runs): free every table and retired block. */
void up__table_fini(void) UP_INTERNAL;

/* size bytes from p's heap (owner thread; p need not be the caller).  Past
 * p's heap_limit: NULL, and p is ended with reason heap_limit. */
void *up__heap_alloc(struct up__proc *p, size_t size) UP_INTERNAL;
/* The same without the limit (a dying process keeping its exit reason). */
void *up__heap_alloc_nolimit(struct up__proc *p, size_t size) UP_INTERNAL;
/* Free a dead process's heap and return its slot. */
void up__proc_release(struct up__sched *s, struct up__proc *p) UP_INTERNAL;

/* Owner thread: move mailbox mb's inbox to its queue (acting on signals);
 * mailboxes with UP_MAILBOX_DROP_OLDEST are drained and trimmed too. */
void up__mailbox_drain(struct up__proc *p, unsigned mb) UP_INTERNAL;
/* Spawn: set p's mailbox limits from o (before its tag is published). */
void up__mailbox_limits_init(struct up__proc *p, const struct up_spawn_opts *o) UP_INTERNAL;

/* Owner thread: an exit signal with an abnormal reason reached p. */
void up__proc_kill(struct up__sched *s, struct up__proc *p, up_term reason) UP_INTERNAL;

/* The entry of every process fiber. */
void up__proc_main(void *pcb) UP_INTERNAL;

#endif
