/*
 * test_dist.c - distribution against a real Erlang node (loopback only).
 *
 * The suite starts its own epmd on a port of its own (never the default
 * 4369) and an `erl -sname` node bound to 127.0.0.1 running
 * tests/dist/dist_peer.erl, both under `timeout`, and stops both by PID.
 * Then each test runs a uproc node that talks to it: term round trips both
 * ways, registered-name sends, a gen_server call, links and monitors
 * across nodes (both directions), exit/2, node monitoring, a second uproc
 * program, hostile peers (garbage handshakes, a wrong cookie, a malformed
 * frame after a good handshake), two uproc nodes connecting to each other
 * at once, a second Erlang node that goes silent (SIGSTOP: dropped after
 * the tick timeout), and finally the Erlang node killed: noconnection for
 * links and monitors, nodedown.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "dist.h"

#define COOKIE "uproc_test_cookie"

static char host[64], peer[128], tmpdir[128], ready[256];
static int epmd_port;
static pid_t epmd_pid = -1, erl_pid = -1;

/* ------------------------------------------------------- the peers */

static pid_t spawn_cmd(char *const argv[])
{
	pid_t p = fork();
	if (p == 0) {
		char port[16];
		snprintf(port, sizeof port, "%d", epmd_port);
		setenv("ERL_EPMD_PORT", port, 1);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	return p;
}

static int run_cmd(char *const argv[])
{
	pid_t p = spawn_cmd(argv);
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void stop_pid(pid_t *p)
{
	if (*p > 0) {
		kill(*p, SIGTERM);
		waitpid(*p, NULL, 0);
	}
	*p = -1;
}

static int tcp_probe(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int r = connect(fd, (struct sockaddr *)&a, sizeof a);
	close(fd);
	return r;
}

/* ticktime: net_ticktime in seconds (NULL: Erlang's default). */
static int start_erl(const char *sname, const char *cookie, pid_t *out, const char *readyf,
		     const char *ticktime)
{
	char pa[160];
	snprintf(pa, sizeof pa, "%s", tmpdir);
	unlink(readyf);
	char *argv[] = { "timeout", "600", "erl", "-sname", (char *)sname, "-setcookie",
			 (char *)cookie, "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
			 "-start_epmd", "false", "-noshell", "-noinput", "-pa", pa, "-s",
			 "dist_peer", "start",
			 (char *)readyf, ticktime ? "-kernel" : NULL, "net_ticktime",
			 (char *)ticktime, NULL };
	*out = spawn_cmd(argv);
	for (int i = 0; i < 600; i++) {
		if (access(readyf, F_OK) == 0)
			return 0;
		thread_sleep_ns(100 * MS);
	}
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	gethostname(host, sizeof host);
	char *dot = strchr(host, '.');
	if (dot)
		*dot = 0;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/uproc-dist-%d", (int)getpid());
	mkdir(tmpdir, 0700);
	char src[512];
	snprintf(src, sizeof src, "%s/dist_peer.erl", DIST_PEER_DIR);
	char *erlc[] = { "erlc", "-o", tmpdir, src, NULL };
	if (run_cmd(erlc) != 0) {
		fprintf(stderr, "test_dist: erlc failed (erlang-base installed?)\n");
		return -1;
	}
	/* A port below the ephemeral range (32768 up): a busy machine's
	 * outgoing and TIME-WAIT sockets hold ports there, and epmd, failing
	 * to bind, exits at once ("already running").  If it exits anyway,
	 * another port. */
	for (int attempt = 0; attempt < 8; attempt++) {
		epmd_port = 20000 + (int)((getpid() + attempt * 1499) % 12000);
		char port[16];
		snprintf(port, sizeof port, "%d", epmd_port);
		char *epmd[] = { "timeout", "600", "epmd", "-port", port, "-address", "127.0.0.1",
				 NULL };
		epmd_pid = spawn_cmd(epmd);
		int up = 0, gone = 0;
		for (int i = 0; i < 100 && !up && !gone; i++) {
			up = tcp_probe(epmd_port) == 0;
			gone = !up && waitpid(epmd_pid, NULL, WNOHANG) == epmd_pid;
			if (!up && !gone)
				thread_sleep_ns(50 * MS);
		}
		if (up)
			break;
		if (!gone)
			stop_pid(&epmd_pid);
		epmd_pid = -1;
	}
	snprintf(peer, sizeof peer, "erlpeer%d@%s", (int)getpid(), host);
	snprintf(ready, sizeof ready, "%s/ready", tmpdir);
	char sname[64];
	snprintf(sname, sizeof sname, "erlpeer%d", (int)getpid());
	if (start_erl(sname, COOKIE, &erl_pid, ready, NULL) != 0) {
		fprintf(stderr, "test_dist: the Erlang node did not start (epmd port %d, %s)\n",
			epmd_port, tcp_probe(epmd_port) == 0 ? "up" : "down");
		stop_pid(&erl_pid);
		stop_pid(&epmd_pid);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_pid(&erl_pid);
	stop_pid(&epmd_pid);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 0;
	return 0;
}

/* ------------------------------------------------------- helpers */

static struct up_node_opts node_opts(void)
{
	struct up_node_opts o = { 0 };
	o.epmd_port = (uint16_t)epmd_port;
	o.listen_addr = htonl(INADDR_LOOPBACK);
	return o;
}




static int start_node(const char *alive)
{
	char name[128];
	snprintf(name, sizeof name, "%s%d@%s", alive, (int)getpid(), host);
	struct up_node_opts o = node_opts();
	int r = up_node_start(name, COOKIE, &o);
	PCHECK_EQ(r, 0);
	return r;
}

static up_pid peer_name(const char *name)
{
	return up_name_at(A(name), A(peer));
}

struct tagm {
	up_term tag;
	long arity;
};

static int match_tag(const struct up_msg *m, void *arg)
{
	struct tagm *t = arg;
	up_term e;
	if (m->kind != UP_MSG_TERM)
		return 0;
	if (t->arity == 0)
		return m->term == t->tag;
	return up_tuple_arity(m->term) == t->arity && up_tuple_elem(m->term, 0, &e) == 0 &&
	       e == t->tag;
}

/* Wait for a {Tag, ...} message of that arity: 0 and *out, or -ETIMEDOUT. */
static int expect(const char *tag, long arity, up_term *out)
{
	struct tagm t = { A(tag), arity };
	struct up_msg m;
	int r = up_recv_match(match_tag, &t, &m, WAIT_NS, 0);
	if (r == 0 && out)
		*out = m.term;
	if (r)
		PFAIL("no {%s, ...}/%ld message: %d", tag, arity, r);
	return r;
}

static up_term elem(up_term t, size_t i)
{
	up_term e = UP_NIL;
	up_tuple_elem(t, i, &e);
	return e;
}

static void print_term(const char *what, up_term t)
{
	char buf[512];
	up_term_format(t, buf, sizeof buf);
	fprintf(stderr, "%s: %s\n", what, buf);
}

/* ------------------------------------------------------------ tests */

/* Send to a registered name on the Erlang node, get the echo: every
 * kind of term survives the trip there and back. */
static void echo_main(void *arg)
{
	(void)arg;
	if (start_node("upecho"))
		return;
	up_pid echo = peer_name("echo");
	PCHECK(echo > 0);
	up_term self = up_pid_term(up_self());
	up_term terms[] = {
		up_int(0), up_int(255), up_int(-1), up_int(INT64_MAX), up_int(INT64_MIN),
		up_float(3.25), up_float(-0.0), A("ok"), A("h\xc3\xa9llo"), UP_NIL,
		up_list(3, (up_term[]){ up_int(1), up_int(2), up_int(3) }),
		up_cons(A("a"), A("b")), up_binary("", 0), up_binary("\x00\xff zz", 5),
		up_tuple(0, NULL), self, up_make_ref(),
		up_tuplev(3, A("nested"), up_list(2, (up_term[]){ up_binary("x", 1), up_float(1e300) }),
			  up_tuplev(1, self)),
	};
	for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
		PCHECK(!up_is_bad(terms[i]));
		PCHECK_EQ(up_send(echo, up_tuplev(2, self, terms[i])), 0);
		up_term got;
		if (expect("echo", 2, &got))
			break;
		if (!up_equal(elem(got, 1), terms[i])) {
			PFAIL("term %zu changed on the way", i);
			print_term("sent", terms[i]);
			print_term("got", elem(got, 1));
		}
	}
	/* Terms made by Erlang (its pids and refs, bignums, UTF-8 atoms),
	 * echoed back: Erlang checks they are exactly what it sent. */
	up_pid ctl = peer_name("ctl");
	PCHECK_EQ(up_send(ctl, up_tuplev(2, self, A("make_terms"))), 0);
	up_term got;
	if (expect("terms", 2, &got) == 0) {
		up_term t = elem(got, 1);
		up_pid epid;
		PCHECK(up_get_pid(elem(t, 0), &epid) == 0 && up__pid_is_remote(epid));
		PCHECK(up_kind_of(elem(t, 1)) == UP_K_REF);
		PCHECK(up_equal(up_pid_node(epid), A(peer)));
		/* its pid is addressable: send the check to it directly */
		PCHECK_EQ(up_send(epid, up_tuplev(2, A("check"), t)), 0);
		if (expect("checked", 2, &got) == 0)
			PCHECK(elem(got, 1) == A("true"));
	}
	up_term nodes = up_nodes();
	PCHECK(up_list_length(nodes) == 1);
	PCHECK(up_get_cons(nodes, &got, NULL) == 0 && got == A(peer));
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_echo(void **state)
{
	(void)state;
	assert_int_equal(run_main(echo_main, NULL, 2), 0);
	assert_no_pfail();
}

/* up_call to a gen_server registered on the Erlang node; and a gen_server
 * call from Erlang to a uproc process answered with up_reply. */
static void server_main(void *arg)
{
	(void)arg;
	struct up_msg m;
	if (up_recv(&m, WAIT_NS) != 0)
		return;
	/* {'$gen_call', {From, Tag}, Req} */
	up_term from = elem(m.term, 1), req = elem(m.term, 2);
	PCHECK(elem(m.term, 0) == A("$gen_call"));
	PCHECK_EQ(up_reply(from, up_tuplev(2, A("pong"), req)), 0);
	up_msg_free(&m);
}

static void call_main(void *arg)
{
	(void)arg;
	if (start_node("upcall"))
		return;
	up_pid calc = peer_name("calc");
	up_term reply = 0;
	PCHECK_EQ(up_call(calc, up_tuplev(3, A("add"), up_int(2), up_int(40)), &reply, WAIT_NS), 0);
	PCHECK(up_equal(reply, up_int(42)));
	/* many, so a leak or a mismatch would show (the calls before crash
	 * it: test_kill_peer does not use it) */
	for (int i = 0; i < 200; i++) {
		PCHECK_EQ(up_call(calc, up_tuplev(3, A("add"), up_int(i), up_int(1)), &reply, WAIT_NS), 0);
		PCHECK(up_equal(reply, up_int(i + 1)));
	}
	/* a server that dies during the call: -ESRCH and its reason */
	PCHECK_EQ(up_call(calc, A("crash"), &reply, WAIT_NS), -ESRCH);
	PCHECK(reply == A("crashed"));
	/* a name nobody has: noproc */
	PCHECK_EQ(up_call(peer_name("nobody"), A("x"), &reply, WAIT_NS), -ESRCH);
	PCHECK(reply == UP_NOPROC);

	/* Erlang calls us */
	up_pid srv = up_spawn(server_main, NULL);
	up_term self = up_pid_term(up_self());
	PCHECK_EQ(up_send(peer_name("ctl"), up_tuplev(4, self, A("call"), up_pid_term(srv), A("ping"))), 0);
	up_term got;
	if (expect("called", 2, &got) == 0) {
		PCHECK(up_equal(elem(got, 1), up_tuplev(2, A("pong"), A("ping"))));
		if (!up_equal(elem(got, 1), up_tuplev(2, A("pong"), A("ping"))))
			print_term("called", got);
	}
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_call(void **state)
{
	(void)state;
	assert_int_equal(run_main(call_main, NULL, 2), 0);
	assert_no_pfail();
}

/* Links and monitors across nodes, both ways, and exit/2. */
static void dying(void *arg)
{
	struct up_msg m;
	up_recv(&m, WAIT_NS);
	up_exit(up_self(), A("bang"));
}

static void links_main(void *arg)
{
	(void)arg;
	if (start_node("uplink"))
		return;
	up_term self = up_pid_term(up_self());
	up_pid ctl = peer_name("ctl");
	up_trap_exit(1);
	/* we link to an Erlang process; it dies with our chosen reason */
	up_term got;
	up_send(ctl, up_tuplev(2, self, A("spawn_linkee")));
	if (expect("linkee", 2, &got) == 0) {
		up_pid e;
		up_get_pid(elem(got, 1), &e);
		PCHECK_EQ(up_link(e), 0);
		up_term mref = up_monitor(e);
		PCHECK(!up_is_bad(mref));
		up_send(e, up_tuplev(2, A("die"), A("boom")));
		if (expect("EXIT", 3, &got) == 0) {
			PCHECK(up_equal(elem(got, 1), up_pid_term(e)));
			PCHECK(elem(got, 2) == A("boom"));
		}
		if (expect("DOWN", 5, &got) == 0) {
			PCHECK(up_equal(elem(got, 1), mref));
			PCHECK(elem(got, 4) == A("boom"));
		}
	}
	/* an Erlang process links to ours; ours dies: Erlang sees our reason */
	up_pid d = up_spawn(dying, NULL);
	up_send(ctl, up_tuplev(3, self, A("link_to"), up_pid_term(d)));
	expect("linked", 0, NULL);
	/* and an Erlang monitor of it */
	up_send(ctl, up_tuplev(3, self, A("monitor"), up_pid_term(d)));
	expect("monitoring", 0, NULL);
	up_send_word(d, 1);
	if (expect("got_exit", 2, &got) == 0)
		PCHECK(elem(got, 1) == A("bang"));
	if (expect("got_down", 2, &got) == 0)
		PCHECK(elem(got, 1) == A("bang"));
	/* an Erlang monitor of a process that does not exist: noproc */
	up_send(ctl, up_tuplev(3, self, A("monitor"), up_pid_term(d)));
	expect("monitoring", 0, NULL);
	if (expect("got_down", 2, &got) == 0)
		PCHECK(elem(got, 1) == UP_NOPROC);
	/* exit/2 from Erlang to a non-trapping uproc process */
	up_pid v = up_spawn(dying, NULL);
	up_term vref = up_monitor(v);
	up_send(ctl, up_tuplev(4, self, A("exit2"), up_pid_term(v), A("zapped")));
	if (expect("DOWN", 5, &got) == 0) {
		PCHECK(up_equal(elem(got, 1), vref));
		PCHECK(elem(got, 4) == A("zapped"));
	}
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_links(void **state)
{
	(void)state;
	assert_int_equal(run_main(links_main, NULL, 2), 0);
	assert_no_pfail();
}

/* Hostile peers: garbage before and in the handshake, a wrong cookie, a
 * malformed frame after a good handshake.  Each is disconnected; the node
 * goes on serving. */
static int raw_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (up_io_connect(fd, (struct sockaddr *)&a, sizeof a, WAIT_NS) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 1 when the peer closed fd within the wait. */
static int closed_by_peer(int fd)
{
	char b[256];
	for (;;) {
		ssize_t r = up_io_recv(fd, b, sizeof b, 0, WAIT_NS);
		if (r == 0 || r == -ECONNRESET)
			return 1;
		if (r < 0)
			return 0;
	}
}

static void hostile_main(void *arg)
{
	(void)arg;
	char name[128];
	snprintf(name, sizeof name, "uphostile%d@%s", (int)getpid(), host);
	struct up_node_opts o = node_opts();
	o.port = (uint16_t)(epmd_port + 1);
	if (up_node_start(name, COOKIE, &o) != 0) {
		PFAIL("node start");
		return;
	}
	static const char *garbage[] = {
		"\x00\x00",                         /* empty handshake message */
		"\xff\xff garbage",                 /* oversized */
		"\x00\x05hello",                    /* not a name message */
		"\x00\x10N\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", /* no flags */
	};
	static const size_t glen[] = { 2, 10, 7, 18 };
	for (size_t i = 0; i < 4; i++) {
		int fd = raw_connect(o.port);
		PCHECK(fd >= 0);
		if (fd < 0)
			continue;
		up_io_send(fd, garbage[i], glen[i], 0, WAIT_NS);
		PCHECK(closed_by_peer(fd));
		close(fd);
	}
	/* a good handshake with a wrong cookie */
	int fd = raw_connect(o.port);
	char evil[128];
	snprintf(evil, sizeof evil, "evil%d@%s", (int)getpid(), host);
	struct up__hs h = { .self = evil, .cookie = "not the cookie", .creation = 7 };
	snprintf(h.peer, sizeof h.peer, "%s", name);
	PCHECK(up__hs_connect(fd, &h, WAIT_NS) != 0);
	close(fd);
	/* the right cookie, then a malformed frame, then a bad control */
	static const char *frames[] = { "\x00\x00\x00\x03xyz", "\x00\x00\x00\x04p\x83\x6a\x00" };
	static const size_t flen[] = { 7, 8 };
	for (int i = 0; i < 2; i++) {
		fd = raw_connect(o.port);
		struct up__hs g = { .self = evil, .cookie = COOKIE, .creation = 7 };
		snprintf(g.peer, sizeof g.peer, "%s", name);
		PCHECK_EQ(up__hs_connect(fd, &g, WAIT_NS), 0);
		up_io_send(fd, frames[i], flen[i], 0, WAIT_NS);
		PCHECK(closed_by_peer(fd));
		close(fd);
		/* the connection is gone from the node's list (wait for it) */
		for (int k = 0; k < 100 && up_list_length(up_nodes()) != 0; k++)
			up_sleep(10 * MS);
	}
	/* still serving: Erlang reaches us and we reach it */
	up_term got, self = up_pid_term(up_self());
	PCHECK_EQ(up_send(peer_name("echo"), up_tuplev(2, self, A("still"))), 0);
	if (expect("echo", 2, &got) == 0)
		PCHECK(elem(got, 1) == A("still"));
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_hostile(void **state)
{
	(void)state;
	assert_int_equal(run_main(hostile_main, NULL, 2), 0);
	assert_no_pfail();
}

/* A wrong-cookie Erlang node cannot connect; argument errors. */
static void errors_main(void *arg)
{
	(void)arg;
	struct up_node_opts o = node_opts();
	PCHECK_EQ(up_node_start(NULL, COOKIE, &o), -EINVAL);
	PCHECK_EQ(up_node_start("noat", COOKIE, &o), -EINVAL);
	PCHECK_EQ(up_node_start("a@", COOKIE, &o), -EINVAL);
	PCHECK_EQ(up_node_start("@h", COOKIE, &o), -EINVAL);
	PCHECK_EQ(up_node_start("a@h", "", &o), -EINVAL);
	PCHECK_EQ(up_node_stop(), -ENOTCONN);
	PCHECK(up_term_error(up_node_self()) == -ENOTCONN);
	PCHECK_EQ(up_name_at(A("x"), A("n@h")), -ENOTCONN);
	struct up_node_opts bad = o;
	bad.epmd_port = (uint16_t)(epmd_port + 2); /* nobody there */
	PCHECK_EQ(up_node_start("x@h", COOKIE, &bad), -ECONNREFUSED);
	if (start_node("uperr"))
		return;
	PCHECK_EQ(up_node_start("y@h", COOKIE, &o), -EALREADY);
	/* the same name again at epmd */
	PCHECK_EQ(up_name_at(up_int(1), A(peer)), -EINVAL);
	PCHECK_EQ(up_name_at(A("x"), A("nohost")), -EINVAL);
	up_pid echo = peer_name("echo");
	PCHECK_EQ(up_link(echo), -EINVAL);             /* a name cannot be linked */
	PCHECK(up_term_encode(up_pid_term(echo), NULL, 0) == -EINVAL);
	PCHECK_EQ(up_send_to(echo, 1, A("x")), -EINVAL); /* one mailbox remotely */
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_errors(void **state)
{
	(void)state;
	assert_int_equal(run_main(errors_main, NULL, 2), 0);
	assert_no_pfail();
}

/* Two uproc programs: a child OS process runs a second node with a
 * registered echo process; we exchange messages through the protocol. */
static void child_echo(void *arg)
{
	up_register(A("echo2"), up_self());
	struct up_msg m;
	while (up_recv(&m, 20 * WAIT_NS) == 0) {
		up_term from = elem(m.term, 0);
		up_pid f;
		if (up_get_pid(from, &f) == 0)
			up_send(f, up_tuplev(2, A("echo2"), elem(m.term, 1)));
		if (elem(m.term, 1) == A("quit"))
			break;
		up_msg_free(&m);
	}
}

static void child_main(void *arg)
{
	char name[128];
	snprintf(name, sizeof name, "upchild%d@%s", (int)getppid(), host);
	struct up_node_opts o = node_opts();
	if (up_node_start(name, COOKIE, &o) != 0)
		return;
	struct up_spawn_opts so = { .flags = UP_SPAWN_MONITOR };
	up_spawn_opt(child_echo, NULL, &so);
	struct up_msg m;
	up_recv(&m, 30 * WAIT_NS); /* the DOWN */
	up_node_stop();
}

static void twin_main(void *arg)
{
	pid_t *child = arg;
	if (start_node("upparent"))
		return;
	char cname[128];
	snprintf(cname, sizeof cname, "upchild%d@%s", (int)getpid(), host);
	up_monitor_nodes(1);
	up_pid echo2 = up_name_at(A("echo2"), A(cname));
	up_term got, self = up_pid_term(up_self());
	/* the child may not be registered yet: retry until it answers */
	int ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		up_send(echo2, up_tuplev(2, self, up_int(i)));
		struct tagm t = { A("echo2"), 2 };
		struct up_msg m;
		ok = up_recv_match(match_tag, &t, &m, 100 * MS, 0) == 0;
	}
	PCHECK(ok);
	if (ok) {
		up_term big = up_list(3, (up_term[]){ self, up_make_ref(), up_binary("bytes", 5) });
		up_send(echo2, up_tuplev(2, self, big));
		/* drain late answers of the retries */
		for (;;) {
			if (expect("echo2", 2, &got))
				break;
			if (up_kind_of(elem(got, 1)) != UP_K_INT) {
				PCHECK(up_equal(elem(got, 1), big));
				break;
			}
		}
		up_send(echo2, up_tuplev(2, self, A("quit")));
		/* the child ends its node: nodedown */
		for (;;) {
			if (expect("nodedown", 2, &got))
				break;
			if (elem(got, 1) == A(cname))
				break;
		}
	}
	(void)child;
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_two_uproc_nodes(void **state)
{
	(void)state;
	fflush(NULL);
	pid_t c = fork();
	if (c == 0) {
		struct up_run_opts o = run_opts(1);
		int r = up_run(child_main, NULL, &o);
		_exit(r == 0 ? 0 : 1);
	}
	assert_true(c > 0);
	int r = run_main(twin_main, &c, 2);
	int st = 0;
	waitpid(c, &st, 0);
	assert_int_equal(r, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_no_pfail();
}

/* A peer that goes silent: a second Erlang node (net_ticktime 1 s, so it
 * ticks every 250 ms) is connected to a node with a 300 ms tick.  Idle
 * for well over both sides' timeouts, the ticks keep the connection; then
 * its OS process is stopped (SIGSTOP): after 4 silent ticks (1.2 s) the
 * node is dropped, with nodedown, the link's EXIT and the monitor's DOWN
 * `noconnection`.  The stopped node is then killed by its PID. */
#define TICK_NS (300 * MS)

struct tick_arg {
	char node[128];
	pid_t beam;
};

static void tick_main(void *arg)
{
	struct tick_arg *ta = arg;
	char name[128];
	snprintf(name, sizeof name, "uptick%d@%s", (int)getpid(), host);
	struct up_node_opts o = node_opts();
	o.tick_ns = TICK_NS;
	if (up_node_start(name, COOKIE, &o) != 0) {
		PFAIL("node start");
		return;
	}
	up_term self = up_pid_term(up_self()), got;
	up_pid ctl = up_name_at(A("ctl"), A(ta->node)), echo = up_name_at(A("echo"), A(ta->node));
	up_trap_exit(1);
	up_monitor_nodes(1);
	up_send(ctl, up_tuplev(2, self, A("spawn_linkee")));
	if (expect("linkee", 2, &got))
		goto out;
	up_pid e;
	up_get_pid(elem(got, 1), &e);
	PCHECK_EQ(up_link(e), 0);
	up_term mref = up_monitor(e);
	PCHECK_EQ(up_send(echo, up_tuplev(2, self, A("sync"))), 0);
	PCHECK(expect("echo", 2, NULL) == 0);

	/* idle for 3 s (> 4 ticks here, > net_ticktime there): still up */
	up_sleep(10 * TICK_NS);
	struct tagm down = { A("nodedown"), 2 };
	struct up_msg m;
	PCHECK_EQ(up_recv_match(match_tag, &down, &m, 0, 0), -ETIMEDOUT);
	PCHECK(up_list_length(up_nodes()) == 1);
	PCHECK_EQ(up_send(echo, up_tuplev(2, self, A("idle"))), 0);
	if (expect("echo", 2, &got) == 0)
		PCHECK(elem(got, 1) == A("idle"));

	/* silence: the peer's OS process stops (its socket stays open) */
	int64_t t0 = now_ns();
	PCHECK_EQ(kill(ta->beam, SIGSTOP), 0);
	if (expect("EXIT", 3, &got) == 0) {
		int64_t dt = now_ns() - t0;
		PCHECK(up_equal(elem(got, 1), up_pid_term(e)));
		PCHECK(elem(got, 2) == A("noconnection"));
		/* not before 4 ticks of silence (less the up to 250 ms since
		 * the peer's last tick), and not much after */
		if (dt < 4 * TICK_NS - 300 * MS || dt > 4 * TICK_NS + UPT_SCALE(3, 10) * 1000 * MS)
			PFAIL("dropped after %lld ms (tick timeout %lld ms)", (long long)(dt / MS),
			      (long long)(4 * TICK_NS / MS));
	}
	if (expect("DOWN", 5, &got) == 0) {
		PCHECK(up_equal(elem(got, 1), mref));
		PCHECK(elem(got, 4) == A("noconnection"));
	}
	if (expect("nodedown", 2, &got) == 0)
		PCHECK(elem(got, 1) == A(ta->node));
	PCHECK(up_list_length(up_nodes()) == 0);
out:
	PCHECK_EQ(up_node_stop(), 0);
}

/* The OS pid the Erlang node wrote to readyf (0 if none). */
static pid_t read_pid(const char *readyf)
{
	char b[32] = { 0 };
	int fd = open(readyf, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	return n > 0 ? (pid_t)atol(b) : 0;
}

/* Is p a child of parent (the `timeout` we started)? */
static int child_of(pid_t p, pid_t parent)
{
	char path[64], b[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0)
		return 0;
	b[n] = 0;
	char *rp = strrchr(b, ')');
	int ppid = 0;
	return rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == parent;
}

static void test_tick(void **state)
{
	(void)state;
	struct tick_arg ta = { 0 };
	char sname[64], rf[256];
	pid_t tpid = -1;
	snprintf(sname, sizeof sname, "erltick%d", (int)getpid());
	snprintf(ta.node, sizeof ta.node, "%s@%s", sname, host);
	snprintf(rf, sizeof rf, "%s/ready_tick", tmpdir);
	int started = start_erl(sname, COOKIE, &tpid, rf, "1");
	ta.beam = read_pid(rf);
	if (started != 0 || ta.beam <= 1 || !child_of(ta.beam, tpid)) {
		stop_pid(&tpid);
		fail_msg("the second Erlang node did not start (or its pid %d is not ours)",
			 (int)ta.beam);
	}
	int r = run_main(tick_main, &ta, 2);
	kill(ta.beam, SIGKILL); /* stopped or not; `timeout` then exits */
	waitpid(tpid, NULL, 0);
	assert_int_equal(r, 0);
	assert_no_pfail();
}

/* Simultaneous connect: two uproc nodes (this process and a child) that
 * have never talked send to each other at the same moment, so each has
 * a connection attempt pending when the other's arrives.  One connection
 * must come out of it, and every message sent during the race must
 * arrive, in order, on both sides. */
#define SIM_N 100

struct sim_shared {
	atomic_int ready[2], done[2];
};
static struct sim_shared *sim;

static void sim_sink(void *arg)
{
	up_pid owner = (up_pid)(uintptr_t)arg;
	long next = 0, bad = 0;
	struct up_msg m;
	while (next < SIM_N && up_recv(&m, 2 * WAIT_NS) == 0) {
		up_term e;
		int64_t v;
		if (m.kind != UP_MSG_TERM || up_tuple_elem(m.term, 1, &e) || up_get_int(e, &v) ||
		    v != next)
			bad++;
		next++;
		up_msg_free(&m);
	}
	up_send_word(owner, (uint64_t)(next == SIM_N && bad == 0));
}

/* Spin (inside a process: a short sleep per round) until *flag. */
static int sim_wait(atomic_int *flag, int64_t sleep_ns)
{
	int64_t end = now_ns() + 2 * WAIT_NS;
	while (!atomic_load(flag)) {
		if (now_ns() > end)
			return -1;
		if (sleep_ns)
			up_sleep(sleep_ns);
	}
	return 0;
}

static void sim_main(void *arg)
{
	int k = (int)(intptr_t)arg; /* 0: this process, 1: the child */
	pid_t base = k ? getppid() : getpid();
	char name[128], other[128];
	snprintf(name, sizeof name, "upsim%c%d@%s", 'a' + k, (int)base, host);
	snprintf(other, sizeof other, "upsim%c%d@%s", 'b' - k, (int)base, host);
	struct up_node_opts o = node_opts();
	if (up_node_start(name, COOKIE, &o) != 0) {
		PFAIL("node start %s", name);
		return;
	}
	up_pid sink = up_spawn(sim_sink, (void *)(uintptr_t)up_self());
	PCHECK(sink > 0);
	PCHECK_EQ(up_register(A("sim"), sink), 0);
	up_pid to = up_name_at(A("sim"), A(other));
	atomic_store(&sim->ready[k], 1);
	/* both nodes registered: go at once (busy wait, for a close start) */
	if (sim_wait(&sim->ready[1 - k], 0) == 0) {
		for (int i = 0; i < SIM_N; i++)
			PCHECK_EQ(up_send(to, up_tuplev(2, A("sim"), up_int(i))), 0);
		struct up_msg m;
		if (up_recv(&m, 3 * WAIT_NS) != 0 || m.kind != UP_MSG_WORD || m.word != 1)
			PFAIL("%s: the messages from %s did not all arrive in order", name, other);
		up_term nodes = up_nodes(), n0;
		PCHECK(up_list_length(nodes) == 1);
		PCHECK(up_get_cons(nodes, &n0, NULL) == 0 && n0 == A(other));
	} else {
		PFAIL("%s: the other node never got ready", name);
	}
	atomic_store(&sim->done[k], 1);
	sim_wait(&sim->done[1 - k], 5 * MS);
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_simultaneous_connect(void **state)
{
	(void)state;
	sim = mmap(NULL, sizeof *sim, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sim != MAP_FAILED);
	memset(sim, 0, sizeof *sim);
	fflush(NULL);
	pid_t c = fork();
	if (c == 0) {
		struct up_run_opts o = run_opts(2);
		int r = up_run(sim_main, (void *)(intptr_t)1, &o);
		int nf = atomic_load(&pfail.count);
		for (int i = 0; i < nf && i < PFAIL_MAX; i++)
			fprintf(stderr, "  in the child: %s\n", pfail.msg[i]);
		_exit(r == 0 && nf == 0 ? 0 : 1);
	}
	assert_true(c > 0);
	int r = run_main(sim_main, (void *)(intptr_t)0, 2);
	int st = 0;
	waitpid(c, &st, 0);
	munmap(sim, sizeof *sim);
	assert_int_equal(r, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_no_pfail();
}

/* Last: the Erlang node is killed.  Links get noconnection, monitors DOWN
 * noconnection, node monitors nodedown. */
static void kill_main(void *arg)
{
	(void)arg;
	if (start_node("upkill"))
		return;
	up_term self = up_pid_term(up_self());
	up_pid ctl = peer_name("ctl");
	up_trap_exit(1);
	up_monitor_nodes(1);
	up_term got;
	up_send(ctl, up_tuplev(2, self, A("spawn_linkee")));
	if (expect("linkee", 2, &got))
		return;
	PCHECK(expect("nodeup", 2, NULL) == 0);
	up_pid e;
	up_get_pid(elem(got, 1), &e);
	PCHECK_EQ(up_link(e), 0);
	up_term mref = up_monitor(e);
	up_term nref = up_monitor(ctl); /* by name */
	/* the monitors are in place once a call through the same connection
	 * has come back */
	PCHECK_EQ(up_send(peer_name("echo"), up_tuplev(2, self, A("sync"))), 0);
	PCHECK(expect("echo", 2, NULL) == 0);
	stop_pid(&erl_pid);
	if (expect("EXIT", 3, &got) == 0) {
		PCHECK(up_equal(elem(got, 1), up_pid_term(e)));
		PCHECK(elem(got, 2) == A("noconnection"));
	}
	for (int i = 0; i < 2; i++) {
		if (expect("DOWN", 5, &got))
			break;
		if (up_equal(elem(got, 1), mref)) {
			PCHECK(up_equal(elem(got, 3), up_pid_term(e)));
		} else {
			PCHECK(up_equal(elem(got, 1), nref));
			PCHECK(up_equal(elem(got, 3), up_tuplev(2, A("ctl"), A(peer))));
		}
		PCHECK(elem(got, 4) == A("noconnection"));
	}
	if (expect("nodedown", 2, &got) == 0)
		PCHECK(elem(got, 1) == A(peer));
	PCHECK(up_list_length(up_nodes()) == 0);
	/* a link to a process of the dead node: noconnection at once */
	PCHECK_EQ(up_link(e), 0);
	if (expect("EXIT", 3, &got) == 0)
		PCHECK(elem(got, 2) == A("noconnection"));
	PCHECK_EQ(up_node_stop(), 0);
}

static void test_kill_peer(void **state)
{
	(void)state;
	assert_int_equal(run_main(kill_main, NULL, 2), 0);
	assert_no_pfail();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_errors),
		UPT_TEST(test_echo),
		UPT_TEST(test_call),
		UPT_TEST(test_links),
		UPT_TEST(test_hostile),
		UPT_TEST(test_two_uproc_nodes),
		UPT_TEST(test_simultaneous_connect),
		UPT_TEST(test_tick),
		UPT_TEST(test_kill_peer),
	};
	if (getenv("UPT_FILTER"))
		cmocka_set_test_filter(getenv("UPT_FILTER"));
	return cmocka_run_group_tests_name("dist", tests, group_setup, group_teardown);
}
