/*
 * http.c - a keep-alive HTTP/1.1 "Hello, World!" server on uproc: one
 * acceptor process, one process per connection, blocking I/O that parks the
 * process on an io_uring completion.
 *
 *   http [-p PORT] [-s SCHEDULERS] [-a ADDR] [-i IDLE_SECONDS]
 *
 * Defaults: 127.0.0.1:18084, one scheduler per allowed CPU, no idle timeout
 * (-i: a connection that sends nothing, or takes none of our answers, for
 * that long is closed; without it receives and sends carry no deadline,
 * which spares each of them a linked timeout request).
 * -p 0 binds a free port.  Prints "listening on ADDR:PORT" once the socket
 * listens, nothing per request.  SIGINT/SIGTERM stop it (exit status 0).
 *
 * Every connection process loops: receive into its buffer until one or more
 * complete request heads are there, answer every complete head in order
 * (the answers of pipelined heads go out in one send), keep the partial
 * rest, until the peer closes.  A head over HTTP_MAX_HEAD bytes gets 431, a
 * malformed one (or one announcing a body) 400, then the connection is
 * closed after a short lingering drain so that the client reads the answer
 * rather than a reset.  The head parser is in http_parse.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uproc.h>

#include "http_parse.h"

#define DEFAULT_PORT 18084
#define BACKLOG 4096
#define IN_BUF (2 * HTTP_MAX_HEAD) /* >= max head + room for a full read */
#define OUT_BUF 4096
#define LINGER_NS (1000LL * 1000 * 1000) /* drain after an error answer */
#define LINGER_BYTES (64 * 1024)

static const char resp_ok[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
static const char resp_400[] =
	"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char resp_431[] =
	"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
#define RESP_OK_LEN (sizeof(resp_ok) - 1)

struct config {
	struct sockaddr_in addr;
	unsigned schedulers;
	int64_t idle_ns;     /* UP_INFINITY: none */
	int sigfd;
	atomic_int failed;   /* the acceptor could not start */
};
static struct config cfg;

/* ------------------------------------------------------------ connection */

/* After a refusal: stop sending, read (and drop) what the client still
 * sends for a while, so that closing does not reset the connection under
 * the answer it has not read yet. */
static void linger_close(int fd)
{
	char sink[2048];
	size_t total = 0;

	if (up_io_shutdown(fd, SHUT_WR) != 0)
		return;
	while (total < LINGER_BYTES) {
		ssize_t n = up_io_recv(fd, sink, sizeof sink, 0, LINGER_NS);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char in[IN_BUF];
	char out[OUT_BUF];
	size_t have = 0;
	int one = 1;

	if (up_io_own(fd) != 0) {
		close(fd);
		return;
	}
	/* From here on the descriptor is closed however the process ends. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (;;) {
		ssize_t n = up_io_recv(fd, in + have, sizeof in - have, 0, cfg.idle_ns);
		if (n <= 0)
			return; /* closed by the peer, reset, idle timeout */
		have += (size_t)n;

		size_t off = 0, nout = 0;
		const char *refusal = NULL;
		int close_after = 0;
		for (;;) {
			struct http_request req;
			ssize_t r = http_parse_request(in + off, have - off, HTTP_MAX_HEAD, &req);
			if (r == 0)
				break;
			if (r < 0) {
				refusal = r == HTTP_ERR_TOO_LARGE ? resp_431 : resp_400;
				close_after = 1;
				break;
			}
			off += (size_t)r;
			if (nout + RESP_OK_LEN > sizeof out) {
				if (up_io_send(fd, out, nout, 0, cfg.idle_ns) < 0)
					return;
				nout = 0;
			}
			memcpy(out + nout, resp_ok, RESP_OK_LEN);
			nout += RESP_OK_LEN;
			if (!req.keep_alive) {
				close_after = 1;
				break;
			}
		}
		if (refusal) {
			size_t rl = strlen(refusal);
			if (nout + rl > sizeof out) {
				if (up_io_send(fd, out, nout, 0, cfg.idle_ns) < 0)
					return;
				nout = 0;
			}
			memcpy(out + nout, refusal, rl);
			nout += rl;
		}
		if (nout && up_io_send(fd, out, nout, 0, cfg.idle_ns) < 0)
			return;
		if (close_after) {
			linger_close(fd);
			return;
		}
		/* Keep the partial head (shorter than HTTP_MAX_HEAD, so at
		 * least half the buffer is free for the next receive). */
		have -= off;
		if (have && off)
			memmove(in, in + off, have);
	}
}

/* ------------------------------------------------------------ acceptor */

static void acceptor(void)
{
	int one = 1, lfd;
	struct sockaddr_in a = cfg.addr;
	socklen_t alen = sizeof a;
	char host[INET_ADDRSTRLEN];
	unsigned next = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || up_io_own(lfd) != 0) {
		perror("http: socket");
		goto fail;
	}
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, BACKLOG) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
		perror("http: bind/listen");
		goto fail;
	}
	inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
	printf("listening on %s:%u\n", host, (unsigned)ntohs(a.sin_port));
	fflush(stdout);

	int nsched = up_schedulers();
	for (;;) {
		int fd = up_io_accept(lfd, NULL, NULL, UP_INFINITY);
		if (fd < 0) {
			if (fd == -ECANCELED)
				return; /* shutting down */
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
				up_sleep(10 * 1000 * 1000); /* let connections end */
			continue; /* ECONNABORTED and the like: next one */
		}
		/* Connections round-robin over the schedulers. */
		struct up_spawn_opts o;
		memset(&o, 0, sizeof o);
		if (nsched > 1) {
			o.flags = UP_SPAWN_SCHEDULER;
			o.scheduler = (int)(next++ % (unsigned)nsched);
		}
		if (up_spawn_opt(connection, (void *)(intptr_t)fd, &o) < 0)
			close(fd); /* no process for it: the client sees a close */
	}
fail:
	atomic_store(&cfg.failed, 1);
	up_shutdown();
}

/* Waits for SIGINT/SIGTERM on the signalfd, then stops the runtime. */
static void signal_watcher(void *arg)
{
	struct signalfd_siginfo si;
	(void)arg;
	for (;;) {
		ssize_t n = up_io_read(cfg.sigfd, &si, sizeof si, UP_INFINITY);
		if (n == (ssize_t)sizeof si) {
			up_shutdown();
			return;
		}
		if (n < 0 && n != -EINTR && n != -EAGAIN)
			return; /* -ECANCELED: the runtime is stopping anyway */
	}
}

static void main_process(void *arg)
{
	(void)arg;
	if (up_spawn(signal_watcher, NULL) < 0) {
		fprintf(stderr, "http: cannot spawn the signal watcher\n");
		atomic_store(&cfg.failed, 1);
		up_shutdown();
		return;
	}
	acceptor();
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f, "usage: http [-p PORT] [-s SCHEDULERS] [-a ADDR] [-i IDLE_SECONDS]\n"
		   "  -p PORT        TCP port (default %d; 0: any free port)\n"
		   "  -s SCHEDULERS  scheduler threads (default: one per allowed CPU)\n"
		   "  -a ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
		   "  -i SECONDS     close connections idle (or not taking answers) that long\n"
		   "                 (default: never)\n",
		DEFAULT_PORT);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno || end == s || *end || x > max || s[0] == '-')
		return -1;
	*v = x;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long v;
	int c;

	/* A peer that goes away must not kill us (sends use MSG_NOSIGNAL;
	 * this covers everything else).  SIGINT/SIGTERM are blocked in every
	 * thread (the schedulers inherit the mask) and read from a signalfd
	 * by a process. */
	signal(SIGPIPE, SIG_IGN);
	/* An ignored signal never becomes pending (a shell starts background
	 * jobs with SIGINT ignored): take the default disposition back; the
	 * signals are blocked, so they only ever reach the signalfd. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("http: sigmask");
		return 1;
	}
	cfg.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (cfg.sigfd < 0) {
		perror("http: signalfd");
		return 1;
	}

	memset(&cfg.addr, 0, sizeof cfg.addr);
	cfg.addr.sin_family = AF_INET;
	cfg.addr.sin_port = htons(DEFAULT_PORT);
	cfg.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cfg.idle_ns = UP_INFINITY;
	while ((c = getopt(argc, argv, "p:s:a:i:h")) != -1) {
		switch (c) {
		case 'p':
			if (parse_uint(optarg, 65535, &v) != 0)
				goto bad;
			cfg.addr.sin_port = htons((uint16_t)v);
			break;
		case 's':
			if (parse_uint(optarg, 4096, &v) != 0 || v == 0)
				goto bad;
			cfg.schedulers = (unsigned)v;
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, &cfg.addr.sin_addr) != 1)
				goto bad;
			break;
		case 'i':
			if (parse_uint(optarg, 1000000, &v) != 0)
				goto bad;
			cfg.idle_ns = v ? (int64_t)v * 1000000000LL : UP_INFINITY;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	struct up_run_opts o;
	memset(&o, 0, sizeof o);
	o.schedulers = cfg.schedulers;
	int r = up_run(main_process, NULL, &o);
	close(cfg.sigfd);
	if (r != 0) {
		fprintf(stderr, "http: up_run: %s\n", strerror(-r));
		return 1;
	}
	return atomic_load(&cfg.failed) ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
