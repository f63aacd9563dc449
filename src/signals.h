/*
 * signals.h - links, monitors and exit signals (OTP semantics).
 *
 * Signals travel as message nodes of signal kinds through the receiver's
 * mailbox 0 (its inbox from other threads, its private queue from its own
 * scheduler), so signals and messages from one sender stay in the order
 * sent.  The receiver's scheduler acts on a signal when it drains mailbox
 * 0 (or at once, for a signal from its own thread); a signal from another
 * thread also posts a WAKE request so it is acted on promptly even if the
 * receiver is waiting on another mailbox.  Every signal carries a term:
 *   EXIT      {'EXIT', From, Reason}: kept as that message by a trapping
 *             receiver; otherwise `kill` ends it with `killed`, `normal`
 *             is dropped, any other reason ends it with that reason;
 *   LINK      From;  UNLINK From;
 *   MONITOR   {From, Ref};  DEMONITOR {From, Ref}.
 * Link and monitor tables are arrays in the process's own heap (owner
 * thread only).
 */
#ifndef UP_SIGNAL_H
#define UP_SIGNAL_H

#include <stdint.h>
#include "uproc.h"
#include "debug.h"

struct up__sched;
struct up__proc;
struct up__msg;

struct up__mon {
	uint32_t ref[3];
	up_pid other;
};

struct up__sig {
	up_pid *links;
	uint32_t nlinks, caplinks;
	struct up__mon *in, *out;      /* who monitors me; whom I monitor */
	uint32_t nin, capin, nout, capout;
	uint8_t trap_exit;
};

/* Owner thread: act on signal node m (mailbox 0 of p); 1 if m became a
 * message the caller must queue, 0 if it was consumed. */
int up__signal_handle(struct up__sched *s, struct up__proc *p, struct up__msg *m) UP_INTERNAL;
/* Owner thread, at exit: answer signals still in m's list (links and
 * monitors made just before the end), then tell links and monitors. */
void up__signal_exit(struct up__sched *s, struct up__proc *p, struct up__msg *pending) UP_INTERNAL;
/* Send signal `kind` carrying t to mailbox 0 of pid (any thread). */
int up__signal_send(struct up__sched *self, up_pid to, unsigned kind, up_term t) UP_INTERNAL;
/* Spawn options link/monitor, made before the child is published. */
int up__signal_spawn(struct up__proc *parent, struct up__proc *child, unsigned flags,
		     up_term *ref_out) UP_INTERNAL;
/* Registry: drop pid's name (at exit). */
void up__registry_drop(up_pid pid) UP_INTERNAL;
/* Registry: pid's name, or UP_NIL (any thread). */
up_term up__registry_name(up_pid pid) UP_INTERNAL;

#endif
