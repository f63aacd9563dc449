/*
 * dist_node.c - the program as a distribution node: up_node_start/stop,
 * the node's listener process (it owns the listening socket and the epmd
 * registration), the acceptor processes that run incoming handshakes, the
 * table of connections (node atom -> writer process), node monitoring,
 * and the hooks through which up_send and the signal code reach remote
 * pids.  The connections themselves are dist_conn.c's.
 *
 * Locking: one mutex for the connection table and the node monitors; it
 * is never held across a blocking call.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist.h"
#include "msg.h"
#include "region.h"
#include "runtime.h"
#include "term.h"

struct up__dist_cfg up__dist_cfg;

struct conn {
	up_term node;
	up_pid writer;
	uint32_t creation;
	int up;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int on;
	up_pid listener;
	struct conn *conns;
	size_t nconns, capconns;
	up_pid *subs;
	size_t nsubs, capsubs;
} D;

void up__dist_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uproc dist %s: %s\n", up__dist_cfg.name, buf);
}

up_term up__dist_atom(int which)
{
	static const char *const names[UP__DA_N] = {
		"$dist", "$dist_in", "noconnection", "nodeup", "nodedown", "$dist_stop", "$gen_call",
		"$dist_fd",
	};
	static up_term cache[UP__DA_N];
	up_term t = __atomic_load_n(&cache[which], __ATOMIC_RELAXED);
	if (!t) {
		t = up_atom(names[which]);
		__atomic_store_n(&cache[which], t, __ATOMIC_RELAXED);
	}
	return t;
}

/* ------------------------------------------------------- the table */

static long conn_find(up_term node)
{
	for (size_t i = 0; i < D.nconns; i++)
		if (D.conns[i].node == node)
			return (long)i;
	return -1;
}

static int conn_add(up_term node, up_pid writer, uint32_t creation, int up)
{
	if (D.nconns == D.capconns) {
		size_t cap = D.capconns ? D.capconns * 2 : 16;
		void *n = realloc(D.conns, cap * sizeof(*D.conns));
		if (!n)
			return -ENOMEM;
		D.conns = n;
		D.capconns = cap;
	}
	D.conns[D.nconns++] = (struct conn){ node, writer, creation, up };
	return 0;
}

/* Tell the node monitors; under the lock (sends never block). */
static void notify(int which, up_term node)
{
	uint64_t w[3] = { up__header(UP__B_TUPLE, 2), up__dist_atom(which), node };
	for (size_t i = 0; i < D.nsubs;) {
		if (up_send(D.subs[i], up__mkbox(w)) == -ESRCH)
			D.subs[i] = D.subs[--D.nsubs];
		else
			i++;
	}
}

up_pid up__dist_writer(unsigned idx, up_term node)
{
	if (!node) {
		const char *name;
		size_t len;
		uint32_t cr;
		if (up__dist_node_info(idx, &name, &len, &cr))
			return -EINVAL;
		node = up_atom_len(name, len);
		if (up_is_bad(node))
			return up_term_error(node);
	}
	pthread_mutex_lock(&lock);
	up_pid w;
	if (D.on != 1) {
		w = -ENOTCONN;
	} else {
		long i = conn_find(node);
		if (i >= 0) {
			w = D.conns[i].writer;
		} else {
			struct up_spawn_opts o = { .flags = UP_SPAWN_SCHEDULER, .scheduler = 0 };
			w = up_spawn_opt(up__dist_conn_main, up__dist_conn_arg(-1, node), &o);
			if (w > 0 && conn_add(node, w, 0, 0) != 0) {
				up_exit(w, UP_KILL);
				w = -ENOMEM;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return w;
}

void up__dist_conn_up(up_term node, up_pid writer, uint32_t creation)
{
	pthread_mutex_lock(&lock);
	long i = conn_find(node);
	if (i >= 0 && D.conns[i].writer == writer) {
		D.conns[i].up = 1;
		D.conns[i].creation = creation;
		notify(UP__DA_NODEUP, node);
	}
	pthread_mutex_unlock(&lock);
}

void up__dist_conn_gone(up_term node, up_pid writer)
{
	pthread_mutex_lock(&lock);
	long i = conn_find(node);
	if (i >= 0 && D.conns[i].writer == writer) {
		if (D.conns[i].up)
			notify(UP__DA_NODEDOWN, node);
		D.conns[i] = D.conns[--D.nconns];
	}
	pthread_mutex_unlock(&lock);
}

const char *up__dist_conn_claim(const char *peer)
{
	up_term node = up_atom(peer);
	if (up_is_bad(node))
		return "snok";
	pthread_mutex_lock(&lock);
	long i = D.on == 1 ? conn_find(node) : 0;
	int pending = i >= 0 && D.on == 1 && !D.conns[i].up;
	pthread_mutex_unlock(&lock);
	if (i < 0)
		return NULL;
	/* Simultaneous connect (OTP's rule): the greater name's attempt
	 * wins; both sides decide alike. */
	return pending && strcmp(peer, up__dist_cfg.name) > 0 ? "sok_simultaneous" : "snok";
}

up_pid up__dist_conn_accepted(const char *peer, int fd, uint32_t creation)
{
	up_term node = up_atom(peer);
	if (up_is_bad(node))
		return up_term_error(node);
	pthread_mutex_lock(&lock);
	up_pid w = -EALREADY;
	long i = D.on == 1 ? conn_find(node) : -1;
	if (i >= 0 && !D.conns[i].up) {
		/* our attempt lost the race: its writer takes this socket */
		uint64_t t[4] = { up__header(UP__B_TUPLE, 3), up__dist_atom(UP__DA_DIST_FD),
				  up_int(fd), up_int(creation) };
		if (up_send(D.conns[i].writer, up__mkbox(t)) == 0)
			w = D.conns[i].writer;
	} else if (D.on == 1 && i < 0) {
		w = up_spawn(up__dist_conn_main, up__dist_conn_arg(fd, node));
		if (w > 0 && conn_add(node, w, creation, 1) != 0) {
			up_exit(w, UP_KILL);
			w = -ENOMEM;
		}
		if (w > 0)
			notify(UP__DA_NODEUP, node);
	}
	pthread_mutex_unlock(&lock);
	return w;
}

/* ------------------------------------------------------- the hooks */

int up__pid_addressable(up_pid pid)
{
	if (up__pid_proc(pid))
		return 1;
	const char *n;
	size_t l;
	uint32_t c;
	return up__pid_is_remote(pid) && up__dist_pid_idx(pid) != 0 &&
	       up__dist_node_info(up__dist_pid_idx(pid), &n, &l, &c) == 0;
}

/* Hand {'$dist', Op, From, To, Payload} to the connection of to's node. */
static int to_writer(up_pid to, int op, up_term from, up_term payload)
{
	uint64_t w[6] = { up__header(UP__B_TUPLE, 5), up__dist_atom(UP__DA_DIST), up_int(op), from,
			  up_pid_term(to), payload };
	for (int tries = 0; tries < 3; tries++) {
		up_pid wr = up__dist_writer(up__dist_pid_idx(to), 0);
		if (wr < 0)
			return (int)wr;
		int r = up_send(wr, up__mkbox(w));
		if (r != -ESRCH)
			return r;
		/* that connection just ended: the next lookup starts another */
	}
	return -ENOTCONN;
}

int up__dist_send(up_pid to, unsigned mailbox, up_term t)
{
	if (mailbox != 0 || !up__dist_is_on())
		return mailbox != 0 ? -EINVAL : -ENOTCONN;
	up_pid self = up_self();
	return to_writer(to, 2, self > 0 ? up_pid_term(self) : UP_NIL, t);
}

int up__dist_signal(up_pid to, unsigned kind, up_term t)
{
	if (!up__dist_is_on())
		return -ENOTCONN;
	up_term from = t, e;
	switch (kind) {
	case UP__MSG_SIG_LINK:
	case UP__MSG_SIG_UNLINK:
		if (up__dist_pid_is_name(to))
			return -EINVAL;
		return to_writer(to, kind == UP__MSG_SIG_LINK ? 1 : 4, from, UP_NIL);
	case UP__MSG_SIG_EXIT:
	case UP__MSG_SIG_LINK_EXIT: /* {'EXIT', From, Reason} */
		if (up__dist_pid_is_name(to) || up_tuple_elem(t, 1, &from) || up_tuple_elem(t, 2, &e))
			return -EINVAL;
		return to_writer(to, kind == UP__MSG_SIG_EXIT ? 8 : 3, from, e);
	case UP__MSG_SIG_MONITOR:
	case UP__MSG_SIG_DEMONITOR: /* {From, Ref} */
		if (up_tuple_elem(t, 0, &from) || up_tuple_elem(t, 1, &e))
			return -EINVAL;
		return to_writer(to, kind == UP__MSG_SIG_MONITOR ? 19 : 20, from, e);
	default:
		return 0; /* a DOWN toward a remote pid: remote monitors are proxied */
	}
}

/* ------------------------------------------------------ the listener */

static void acceptor(void *arg)
{
	int fd = (int)(intptr_t)arg;
	if (up_io_own(fd)) {
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct up__hs h = { .self = up__dist_cfg.name, .cookie = up__dist_cfg.cookie,
			    .creation = up__dist_cfg.creation };
	int r = up__hs_accept(fd, &h, up__dist_conn_claim, up__dist_cfg.connect_timeout_ns);
	if (r) {
		up__dist_log("refused a connection%s%s: %s (%d)", h.peer[0] ? " from " : "", h.peer,
			     h.why ? h.why : "", r);
		return; /* fd closes with us */
	}
	up_io_disown(fd);
	up_pid w = up__dist_conn_accepted(h.peer, fd, h.peer_creation);
	if (w < 0) {
		up__dist_log("dropped the connection from %s: %d", h.peer, (int)w);
		close(fd);
	}
}

struct listener_arg {
	int lfd, efd;
};

static void listener(void *arg)
{
	int lfd = (int)((uintptr_t)arg & 0xffffffff), efd = (int)((uintptr_t)arg >> 32);
	up_io_own(lfd);
	up_io_own(efd); /* the epmd registration lasts while this socket is open */
	for (;;) {
		int fd = up_io_accept(lfd, NULL, NULL, UP_INFINITY);
		if (fd < 0) {
			if (fd == -ECANCELED)
				return;
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM)
				up_sleep(10 * 1000 * 1000);
			continue;
		}
		if (up_spawn(acceptor, (void *)(intptr_t)fd) < 0)
			close(fd);
	}
}

/* ------------------------------------------------------------ the API */

static int name_ok(const char *s, size_t max, int node)
{
	if (!s)
		return 0;
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return 0;
	if (!node)
		return 1;
	const char *at = strchr(s, '@');
	return at && at != s && at[1] && !strchr(at + 1, '@');
}

int up_node_start(const char *name, const char *cookie, const struct up_node_opts *opts)
{
	if (up_self() == UP_PID_NONE)
		return -EPERM;
	if (!name_ok(name, 255, 1) || !name_ok(cookie, 255, 0))
		return -EINVAL;
	struct up_node_opts o = { 0 };
	if (opts)
		o = *opts;
	if (o.tick_ns < 0 || o.connect_timeout_ns < 0)
		return -EINVAL;
	if (!o.epmd_port) {
		const char *e = getenv("ERL_EPMD_PORT");
		long v = e ? strtol(e, NULL, 10) : 0;
		o.epmd_port = v > 0 && v < 65536 ? (uint16_t)v : 4369;
	}
	pthread_mutex_lock(&lock);
	int busy = D.on;
	if (!busy)
		D.on = 2; /* starting */
	pthread_mutex_unlock(&lock);
	if (busy)
		return -EALREADY;

	int r, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), efd = -1;
	if (lfd < 0) {
		r = -errno;
		goto fail;
	}
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(o.port) };
	a.sin_addr.s_addr = o.listen_addr;
	socklen_t al = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&a, &al)) {
		r = -errno;
		goto fail;
	}
	struct up__dist_cfg *c = &up__dist_cfg;
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->cookie, sizeof(c->cookie), "%s", cookie);
	c->epmd_port = o.epmd_port;
	c->tick_ns = o.tick_ns ? o.tick_ns : 15 * 1000000000LL;
	c->connect_timeout_ns = o.connect_timeout_ns ? o.connect_timeout_ns : 7 * 1000000000LL;
	c->max_frame = up__rt.max_message_size + (1u << 20);
	char alive[256];
	snprintf(alive, sizeof(alive), "%.*s", (int)(strchr(name, '@') - name), name);
	efd = up__epmd_register(o.epmd_port, alive, ntohs(a.sin_port), &c->creation,
				c->connect_timeout_ns);
	if (efd < 0) {
		r = efd;
		goto fail;
	}
	up__dist_set_self(name, strlen(name), c->creation);
	up_pid l = up_spawn(listener, (void *)((uintptr_t)(uint32_t)lfd | (uintptr_t)efd << 32));
	if (l < 0) {
		up__dist_clear_self();
		r = (int)l;
		goto fail;
	}
	pthread_mutex_lock(&lock);
	D.listener = l;
	D.on = 1;
	pthread_mutex_unlock(&lock);
	return 0;
fail:
	if (lfd >= 0)
		close(lfd);
	if (efd >= 0)
		close(efd);
	pthread_mutex_lock(&lock);
	D.on = 0;
	pthread_mutex_unlock(&lock);
	return r;
}

int up_node_stop(void)
{
	if (up_self() == UP_PID_NONE)
		return -EPERM;
	pthread_mutex_lock(&lock);
	if (D.on != 1) {
		pthread_mutex_unlock(&lock);
		return -ENOTCONN;
	}
	D.on = 3; /* stopping: no new connections */
	up_pid l = D.listener;
	for (size_t i = 0; i < D.nconns; i++)
		up_send(D.conns[i].writer, up__dist_atom(UP__DA_STOP));
	pthread_mutex_unlock(&lock);
	up_exit(l, UP_KILL);
	/* The connections tell their links and monitors, then end. */
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&lock);
		size_t n = D.nconns;
		pthread_mutex_unlock(&lock);
		if (n == 0 && up_alive(l) != 1)
			break;
		up_sleep(2 * 1000 * 1000);
	}
	pthread_mutex_lock(&lock);
	D.on = 0;
	D.nconns = 0;
	pthread_mutex_unlock(&lock);
	up__dist_clear_self();
	return 0;
}

void up__dist_reset(void)
{
	pthread_mutex_lock(&lock);
	free(D.conns);
	free(D.subs);
	memset(&D, 0, sizeof(D));
	pthread_mutex_unlock(&lock);
	up__dist_clear_self();
}

up_term up_node_self(void)
{
	if (!up__dist_is_on())
		return up__mkbad(-ENOTCONN);
	return up_atom(up__dist_cfg.name);
}

up_term up_nodes(void)
{
	if (up_self() == UP_PID_NONE)
		return up__mkbad(-EPERM);
	up_term nodes[64], list = UP_NIL;
	for (;;) {
		size_t n = 0, total = 0;
		pthread_mutex_lock(&lock);
		for (size_t i = 0; i < D.nconns; i++)
			if (D.conns[i].up) {
				if (n < 64)
					nodes[n++] = D.conns[i].node;
				total++;
			}
		pthread_mutex_unlock(&lock);
		if (total <= 64) {
			for (size_t i = n; i > 0; i--)
				list = up_cons(nodes[i - 1], list);
			return list;
		}
		/* many nodes: build from a heap copy */
		up_term *all = up_alloc(total * sizeof(up_term));
		if (!all)
			return up__mkbad(-ENOMEM);
		pthread_mutex_lock(&lock);
		n = 0;
		for (size_t i = 0; i < D.nconns && n < total; i++)
			if (D.conns[i].up)
				all[n++] = D.conns[i].node;
		pthread_mutex_unlock(&lock);
		return up_list(n, all);
	}
}

int up_monitor_nodes(int on)
{
	up_pid self = up_self();
	if (self == UP_PID_NONE)
		return -EPERM;
	int r = 0;
	pthread_mutex_lock(&lock);
	size_t i = 0;
	while (i < D.nsubs && D.subs[i] != self)
		i++;
	if (!on) {
		if (i < D.nsubs)
			D.subs[i] = D.subs[--D.nsubs];
	} else if (i == D.nsubs) {
		if (D.nsubs == D.capsubs) {
			size_t cap = D.capsubs ? D.capsubs * 2 : 16;
			void *n = realloc(D.subs, cap * sizeof(*D.subs));
			if (!n)
				r = -ENOMEM;
			else
				D.subs = n, D.capsubs = cap;
		}
		if (!r)
			D.subs[D.nsubs++] = self;
	}
	pthread_mutex_unlock(&lock);
	return r;
}

up_pid up_name_at(up_term name, up_term node)
{
	const char *n;
	size_t len;
	if (up_kind_of(name) != UP_K_ATOM || up_get_atom(node, &n, &len) || !memchr(n, '@', len))
		return -EINVAL;
	if (!up__dist_is_on())
		return -ENOTCONN;
	/* creation 0: "whatever incarnation"; only the name is used */
	int idx = up__dist_node_resolve((const uint8_t *)n, len, 0);
	if (idx < 0)
		return idx;
	if (idx == 0)
		return up_whereis(name);
	return up__dist_remote_pid((unsigned)idx, (uint32_t)(name >> 3), UP__DIST_NAME_SERIAL);
}

up_term up_pid_node(up_pid pid)
{
	const char *n;
	size_t len;
	uint32_t c;
	if (pid <= 0 || (pid >> 61) || (!up__pid_is_remote(pid) && !up__pid_proc(pid)))
		return up__mkbad(-EINVAL);
	if (up__dist_node_info(up__pid_is_remote(pid) ? up__dist_pid_idx(pid) : 0, &n, &len, &c))
		return up__mkbad(-EINVAL);
	return up_atom_len(n, len);
}
