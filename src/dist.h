/*
 * dist.h - Erlang distribution (internal): what the distribution files
 * share, and the hooks the rest of the runtime calls for remote pids.
 *
 * Remote pids live in the same up_pid space as local ones: a local pid is
 * gen << 28 | slot, below 2^60; a remote pid has bit 60 set:
 *   bit 60        1 (remote)
 *   bits 45..59   node incarnation index (1..32767, dist_pid.c's table of
 *                 (node name, creation) pairs)
 *   bits 32..44   Serial (13 bits, as Erlang's NEW_PID_EXT uses them)
 *   bits 0..31    ID
 * so "is this pid remote" is one shift and compare, and only the error
 * path of a local send ever asks it.  A reference of another node keeps
 * its node index and word count in the spare 32-bit word of the ref box
 * (0 for a local ref): idx | nwords << 16.
 */
#ifndef UP_DIST_H
#define UP_DIST_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include "uproc.h"
#include "debug.h"

struct up__sched;

#define UP__DIST_IDX_MAX 32767u

static inline int up__pid_is_remote(up_pid pid)
{
	return (pid >> 60) == 1;
}

/* A pid the runtime can address: local (maybe dead) or remote. */
int up__pid_addressable(up_pid pid) UP_INTERNAL;

/* ---- identities (dist_pid.c) */

/* The (name, creation) a pid or ref of the external format names: 0 for
 * this node (or 'nonode@nohost'/0 when not distributed), an index > 0 for
 * another node (interned; only while distributed), or -EINVAL / -ENOSPC. */
int up__dist_node_resolve(const uint8_t *name, size_t len, uint32_t creation) UP_INTERNAL;
/* Node name and creation of index idx (0: this node). */
int up__dist_node_info(unsigned idx, const char **name, size_t *len, uint32_t *creation) UP_INTERNAL;
/* A remote pid from its parts: > 0, or -ERANGE (serial too wide). */
up_pid up__dist_remote_pid(unsigned idx, uint32_t id, uint32_t serial) UP_INTERNAL;
static inline unsigned up__dist_pid_idx(up_pid pid) { return (unsigned)((uint64_t)pid >> 45) & 0x7fff; }
static inline uint32_t up__dist_pid_id(up_pid pid) { return (uint32_t)pid; }
static inline uint32_t up__dist_pid_serial(up_pid pid) { return (uint32_t)((uint64_t)pid >> 32) & 0x1fff; }
/* The node's own identity (set by up_node_start; cleared by stop). */
int up__dist_set_self(const char *name, size_t len, uint32_t creation) UP_INTERNAL;
void up__dist_clear_self(void) UP_INTERNAL;
int up__dist_is_on(void) UP_INTERNAL;

/* ---- hooks (dist_node.c), called only for remote pids */

/* up_send_to a remote pid. */
int up__dist_send(up_pid to, unsigned mailbox, up_term t) UP_INTERNAL;
/* A signal (UP__MSG_SIG_* of msg.h) toward a remote pid. */
int up__dist_signal(up_pid to, unsigned kind, up_term t) UP_INTERNAL;
/* End of a run: forget the node and its connections. */
void up__dist_reset(void) UP_INTERNAL;

/* ---- MD5 (dist_md5.c), for the handshake digest */
void up__md5(const void *data, size_t len, uint8_t out[16]) UP_INTERNAL;

/* ---- epmd (dist_epmd.c) */
/* Register name/port with epmd on 127.0.0.1:epmd_port: the socket to keep
 * open (the registration lasts while it is), *creation set; or -errno
 * (-EADDRINUSE: the name is taken). */
int up__epmd_register(uint16_t epmd_port, const char *alive, uint16_t port,
		      uint32_t *creation, int64_t timeout_ns) UP_INTERNAL;
/* The distribution port of `alive` at host (IPv4, network order). */
int up__epmd_port(uint32_t host, uint16_t epmd_port, const char *alive, size_t alen,
		  int64_t timeout_ns) UP_INTERNAL;

/* Read exactly n bytes: n, 0 at a clean end before any byte, or -errno
 * (-EPIPE: the peer closed in the middle). */
ssize_t up__dist_recv_full(int fd, void *buf, size_t n, int64_t timeout_ns) UP_INTERNAL;
/* A TCP socket connected to host:port (IPv4, host order port). */
int up__dist_tcp_connect(uint32_t host_be, uint16_t port, int64_t timeout_ns) UP_INTERNAL;

/* ---- handshake (dist_handshake.c) */
struct up__hs {
	const char *self;      /* own node name */
	const char *cookie;
	uint32_t creation;     /* own creation */
	char peer[256];        /* out: the peer's node name */
	uint32_t peer_creation;
	uint64_t peer_flags;
	const char *why;       /* out: the reason of a failure, for the log */
};
/* Initiate on connected fd, to node `peer` (expected name).  -EALREADY
 * when the peer answers nok: it has a connection to us, or an attempt of
 * its own that wins (simultaneous connect: the greater name's wins). */
int up__hs_connect(int fd, struct up__hs *h, int64_t timeout_ns) UP_INTERNAL;
/* Accept on fd; accept_name(peer) says whether a connection from it may
 * proceed: NULL ("sok"), "sok_simultaneous" (it proceeds: we had an
 * attempt of our own pending and give it up), else the status to refuse
 * with ("snok").  A refusal is -EALREADY. */
int up__hs_accept(int fd, struct up__hs *h, const char *(*accept_name)(const char *peer),
		  int64_t timeout_ns) UP_INTERNAL;

/* Distribution flags we speak. */
#define UP__DFLAG_PUBLISHED           0x1ull
#define UP__DFLAG_EXTENDED_REFERENCES 0x4ull
#define UP__DFLAG_DIST_MONITOR        0x8ull
#define UP__DFLAG_FUN_TAGS            0x10ull
#define UP__DFLAG_DIST_MONITOR_NAME   0x20ull
#define UP__DFLAG_NEW_FUN_TAGS        0x80ull
#define UP__DFLAG_EXTENDED_PIDS_PORTS 0x100ull
#define UP__DFLAG_EXPORT_PTR_TAG      0x200ull
#define UP__DFLAG_BIT_BINARIES        0x400ull
#define UP__DFLAG_NEW_FLOATS          0x800ull
#define UP__DFLAG_UTF8_ATOMS          0x10000ull
#define UP__DFLAG_MAP_TAG             0x20000ull
#define UP__DFLAG_BIG_CREATION        0x40000ull
#define UP__DFLAG_HANDSHAKE_23        0x1000000ull
#define UP__DFLAGS_OURS                                                                       \
	(UP__DFLAG_PUBLISHED | UP__DFLAG_EXTENDED_REFERENCES | UP__DFLAG_DIST_MONITOR |       \
	 UP__DFLAG_FUN_TAGS | UP__DFLAG_DIST_MONITOR_NAME | UP__DFLAG_NEW_FUN_TAGS |          \
	 UP__DFLAG_EXTENDED_PIDS_PORTS | UP__DFLAG_EXPORT_PTR_TAG | UP__DFLAG_BIT_BINARIES |  \
	 UP__DFLAG_NEW_FLOATS | UP__DFLAG_UTF8_ATOMS | UP__DFLAG_MAP_TAG |                    \
	 UP__DFLAG_BIG_CREATION | UP__DFLAG_HANDSHAKE_23)
/* Without these a peer is refused. */
#define UP__DFLAGS_NEEDED                                                                     \
	(UP__DFLAG_EXTENDED_REFERENCES | UP__DFLAG_EXTENDED_PIDS_PORTS | UP__DFLAG_UTF8_ATOMS | \
	 UP__DFLAG_NEW_FLOATS | UP__DFLAG_BIG_CREATION | UP__DFLAG_HANDSHAKE_23 |               \
	 UP__DFLAG_DIST_MONITOR)

/* ---- shared by dist_node.c (the node) and dist_conn.c (connections) */
struct up__dist_cfg {
	char name[256];      /* alive@host */
	char cookie[256];
	uint32_t creation;
	uint16_t epmd_port;
	int64_t tick_ns;     /* a tick every tick_ns; silence for 4 ticks ends it */
	int64_t connect_timeout_ns;
	size_t max_frame;
};
extern struct up__dist_cfg up__dist_cfg UP_INTERNAL;
/* Registered names on another node: a pseudo remote pid of that node whose
 * Serial is all ones and whose ID is the atom's index (never a real pid:
 * real Serials are below 0x1fff, the decoder refuses that one). */
#define UP__DIST_NAME_SERIAL 0x1fffu
static inline int up__dist_pid_is_name(up_pid pid)
{
	return up__pid_is_remote(pid) && up__dist_pid_serial(pid) == UP__DIST_NAME_SERIAL;
}
/* The connection (writer process) for node index idx or node atom, started
 * when there is none: > 0, or -ENOTCONN (not distributed), -errno. */
up_pid up__dist_writer(unsigned idx, up_term node) UP_INTERNAL;
/* Connection life: the handshake succeeded (nodeup); the connection ended
 * (entry removed if it still is writer's; nodedown if it was up). */
void up__dist_conn_up(up_term node, up_pid writer, uint32_t creation) UP_INTERNAL;
void up__dist_conn_gone(up_term node, up_pid writer) UP_INTERNAL;
/* Before an accepted handshake goes on: NULL (no connection to peer),
 * "sok_simultaneous" (our own attempt is pending and peer's name is
 * greater: peer's connection wins), or "snok" to refuse (a connection is
 * up, or our pending attempt wins). */
const char *up__dist_conn_claim(const char *peer) UP_INTERNAL;
/* After it succeeded: start its writer on fd (now the writer's) and record
 * the connection as up, or, when our own attempt is pending, hand fd to
 * its writer ({'$dist_fd', Fd, Creation}: what was sent meanwhile waits
 * in that writer's mailbox); the writer's pid, or -EALREADY (another
 * connection won meanwhile: fd is left to the caller), -errno. */
up_pid up__dist_conn_accepted(const char *peer, int fd, uint32_t creation) UP_INTERNAL;
/* The body of a connection's writer process (dist_conn.c); arg packs
 * fd + 1 (0: connect first) and the node atom's index. */
void up__dist_conn_main(void *arg) UP_INTERNAL;
static inline void *up__dist_conn_arg(int fd, up_term node)
{
	return (void *)(uintptr_t)((uint64_t)(uint32_t)(fd + 1) | (uint64_t)(node >> 3) << 32);
}
/* Atom terms the distribution uses (made once). */
up_term up__dist_atom(int which) UP_INTERNAL;
enum { UP__DA_DIST, UP__DA_DIST_IN, UP__DA_NOCONNECTION, UP__DA_NODEUP, UP__DA_NODEDOWN,
       UP__DA_STOP, UP__DA_GEN_CALL_UNUSED, UP__DA_DIST_FD, UP__DA_N };

/* ---- logging: one line to stderr per refused peer or lost connection */
void up__dist_log(const char *fmt, ...) __attribute__((format(printf, 1, 2))) UP_INTERNAL;

#endif
