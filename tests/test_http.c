/*
 * test_http.c - the HTTP example (examples/http.c): its head parser
 * (http_parse.c, linked in) unit by unit and under random inputs, then the
 * built server itself, started as a child on a free loopback port
 * (`http -p 0 -s 2`, port read from its "listening on" line) and checked
 * with raw sockets: exact response bytes, keep-alive, pipelined heads in one
 * write answered in order, heads split over many writes, 431 for a head
 * over 8 KiB and 400 for a malformed one (each followed by a close),
 * Connection: close and HTTP/1.0, clients that reset mid-request or vanish
 * with unread answers (no crash, no descriptor left behind in the server),
 * a short bounded wrk load when wrk is installed (skipped otherwise), the
 * idle timeout (-i) of a second server (stopped by SIGINT), and a SIGTERM
 * stop with exit status 0.
 *
 *   test_http PATH_TO_HTTP_SERVER
 *
 * Loopback only; every wait is bounded (socket timeouts, poll, alarms).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_parse.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#else
#define ASAN 0
#endif

static const char RESP_OK[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
static const char RESP_400[] =
	"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char RESP_431[] =
	"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
#define OK_LEN (sizeof(RESP_OK) - 1)

static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
#define REQ_LEN (sizeof(REQ) - 1)

/* ================================================================ parser */

/* Parse a copy of s[0..len) in a buffer of exactly len bytes (so that an
 * AddressSanitizer build catches any read past the end). */
static ssize_t parse_n(const char *s, size_t len, size_t max, struct http_request *r)
{
	char *b = malloc(len ? len : 1);
	assert_non_null(b);
	memcpy(b, s, len);
	ssize_t n = http_parse_request(b, len, max, r);
	if (n > 0 && r) {
		/* The pointers point into b: make them relative to s. */
		r->method = s + (r->method - b);
		r->target = s + (r->target - b);
	}
	free(b);
	return n;
}

static ssize_t parse(const char *s, struct http_request *r)
{
	return parse_n(s, strlen(s), 0, r);
}

static void test_parse_simple(void **state)
{
	(void)state;
	struct http_request r;
	assert_int_equal(parse(REQ, &r), REQ_LEN);
	assert_int_equal(r.method_len, 3);
	assert_memory_equal(r.method, "GET", 3);
	assert_int_equal(r.target_len, 1);
	assert_memory_equal(r.target, "/", 1);
	assert_int_equal(r.minor_version, 1);
	assert_int_equal(r.keep_alive, 1);
	assert_int_equal(r.nheaders, 1);

	const char *wrk = "GET /a/b?c=d&e HTTP/1.1\r\nHost: 127.0.0.1:18084\r\n"
			  "User-Agent: x\r\nAccept: */*\r\n\r\n";
	assert_int_equal(parse(wrk, &r), strlen(wrk));
	assert_int_equal(r.target_len, strlen("/a/b?c=d&e"));
	assert_int_equal(r.nheaders, 3);
	/* req may be NULL */
	assert_int_equal(parse(REQ, NULL), REQ_LEN);
	/* Other methods and forms of target. */
	assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
	assert_true(parse("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", &r) > 0);
	assert_true(parse("M-SEARCH http://a/b HTTP/1.1\r\nhost: a\r\n\r\n", &r) > 0);
	/* OWS around values; empty values; tabs. */
	assert_true(parse("GET / HTTP/1.1\r\nHost:a\r\nX-E:\r\nX-T: \t v \t \r\n\r\n", &r) > 0);
	assert_int_equal(r.nheaders, 3);
	/* obs-text in a value is allowed. */
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nX: \xc3\xa9\r\n\r\n", &r) > 0);
}

static void test_parse_incomplete(void **state)
{
	(void)state;
	const char *full = "GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
	size_t n = strlen(full);
	/* Every proper prefix: read more. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parse_n(full, i, 0, NULL), 0);
	assert_int_equal(parse_n(full, n, 0, NULL), n);
}

static void test_parse_pipelined_and_leading_crlf(void **state)
{
	(void)state;
	struct http_request r;
	char two[256];
	snprintf(two, sizeof two, "%s%s", REQ, "GET /2 HTTP/1.1\r\nHost: b\r\n\r\nGET /3 H");
	ssize_t n = parse(two, &r);
	assert_int_equal(n, REQ_LEN);
	ssize_t m = parse(two + n, &r);
	assert_true(m > 0);
	assert_memory_equal(r.target, "/2", 2);
	assert_int_equal(parse(two + n + m, &r), 0);

	/* Empty lines before a request line are skipped and counted. */
	assert_int_equal(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r),
			 4 + strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
	assert_int_equal(parse("\r\n", NULL), 0);
	assert_int_equal(parse("\r", NULL), 0);
}

static void test_parse_persistence(void **state)
{
	(void)state;
	struct http_request r;
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &r) > 0);
	assert_int_equal(r.keep_alive, 0);
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", &r) > 0);
	assert_int_equal(r.keep_alive, 0);
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
	assert_int_equal(r.keep_alive, 1);
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", &r) > 0);
	assert_int_equal(r.keep_alive, 1);
	assert_true(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
	assert_int_equal(r.minor_version, 0);
	assert_int_equal(r.keep_alive, 0);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
	assert_int_equal(r.keep_alive, 0);
	assert_true(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &r) > 0);
	assert_int_equal(r.minor_version, 9);
	assert_int_equal(r.keep_alive, 1);
}

static void test_parse_bad_request_line(void **state)
{
	(void)state;
	static const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / \r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
		" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.x\r\nHost: a\r\n\r\n",
		"GET / http/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
		"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ssize_t r = parse(bad[i], NULL);
		if (r != HTTP_ERR_BAD_REQUEST)
			fail_msg("bad request line #%zu gave %zd, not 400", i, r);
	}
	/* Refused at the first byte that cannot start a request line. */
	assert_int_equal(parse_n("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 0, NULL),
			 HTTP_ERR_BAD_REQUEST); /* a TLS client hello */
	assert_int_equal(parse("GE\x01", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse(" GET", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET  ", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTX", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.x", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1X", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\rX", NULL), HTTP_ERR_BAD_REQUEST);
	/* ... while a valid start waits for more. */
	static const char *starts[] = { "G", "GET", "GET ", "GET /ind", "GET / ", "GET / H",
					"GET / HTTP/1.", "GET / HTTP/1.1", "GET / HTTP/1.1\r",
					"\r\nGET", "\r" };
	for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
		if (parse(starts[i], NULL) != 0)
			fail_msg("valid start \"%s\" refused", starts[i]);
	/* Refused as soon as the request line is complete. */
	assert_int_equal(parse("GARBAGE\r\n", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/3\r\nHost", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_check_request_line("GET / HTTP/1.1", 14, NULL), 0);
	assert_int_equal(http_check_request_line("GET / HTTP/1.1", 13, NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_check_request_line("", 0, NULL), HTTP_ERR_BAD_REQUEST);
}

static void test_parse_bad_headers(void **state)
{
	(void)state;
	static const char *bad[] = {
		/* line endings */
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\n\r\n",
		"GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		/* field syntax */
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
		"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
		"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
		/* Host */
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
		/* bodies */
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 01\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: identity\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ssize_t r = parse(bad[i], NULL);
		if (r != HTTP_ERR_BAD_REQUEST)
			fail_msg("bad head #%zu gave %zd, not 400", i, r);
	}
	/* Content-Length: 0 is fine (also repeated, also as 000). */
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", NULL) > 0);
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 000\r\n"
			  "Content-Length: 0\r\n\r\n", NULL) > 0);
	/* A bare CR is refused even before the head is complete. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\rX", NULL), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r", NULL), 0);
}

static void test_parse_too_large(void **state)
{
	(void)state;
	size_t max = HTTP_MAX_HEAD;
	char *b = malloc(3 * max);
	assert_non_null(b);

	/* A head of exactly max bytes is accepted, one more byte is not. */
	for (int extra = 0; extra <= 1; extra++) {
		size_t len = max + (size_t)extra;
		int k = snprintf(b, 3 * max, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
		memset(b + k, 'v', len - (size_t)k - 4);
		memcpy(b + len - 4, "\r\n\r\n", 4);
		ssize_t r = parse_n(b, len, 0, NULL);
		if (extra == 0)
			assert_int_equal(r, (ssize_t)len);
		else
			assert_int_equal(r, HTTP_ERR_TOO_LARGE);
		/* Incomplete but already at the bound: 431 at once. */
		assert_int_equal(parse_n(b, max, 0, NULL), extra ? HTTP_ERR_TOO_LARGE : (ssize_t)max);
	}
	/* 9 KiB of header lines. */
	size_t k = (size_t)snprintf(b, 3 * max, "GET / HTTP/1.1\r\nHost: a\r\n");
	while (k < 9 * 1024)
		k += (size_t)snprintf(b + k, 3 * max - k, "X-Pad: %040d\r\n", 7);
	memcpy(b + k, "\r\n", 2);
	assert_int_equal(parse_n(b, k + 2, 0, NULL), HTTP_ERR_TOO_LARGE);
	assert_int_equal(parse_n(b, 8 * 1024 + 100, 0, NULL), HTTP_ERR_TOO_LARGE);
	assert_int_equal(parse_n(b, 8 * 1024 - 100, 0, NULL), 0);
	/* A custom bound. */
	assert_int_equal(parse_n(REQ, REQ_LEN, REQ_LEN - 1, NULL), HTTP_ERR_TOO_LARGE);
	assert_int_equal(parse_n(REQ, REQ_LEN, REQ_LEN, NULL), REQ_LEN);
	/* Endless empty lines count towards the bound. */
	for (size_t i = 0; i + 1 < 2 * max; i += 2)
		memcpy(b + i, "\r\n", 2);
	assert_int_equal(parse_n(b, 2 * max, 0, NULL), HTTP_ERR_TOO_LARGE);
	free(b);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random and mutated heads: the parser answers within its contract, never
 * reads outside the buffer (exact-size copies under ASan), and agrees with
 * itself on prefixes. */
static void test_parse_random(void **state)
{
	(void)state;
	static const char *seeds[] = {
		"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /x?y HTTP/1.0\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"\r\nPOST /a HTTP/1.1\r\nHost: a\r\nX:  b \r\n\r\nGET / HTTP/1.1\r\n",
	};
	static const char alphabet[] = "GET /HTP1.\r\n:\t ,0Hostcl-\x01\x7f\xff";
	const int rounds = ASAN ? 20000 : 200000;
	char buf[512];
	size_t max = 200;

	for (int i = 0; i < rounds; i++) {
		size_t len;
		if (i % 3 == 0) {
			len = rnd() % sizeof buf;
			for (size_t k = 0; k < len; k++)
				buf[k] = (char)(rnd() % 4 ? alphabet[rnd() % (sizeof alphabet - 1)]
							  : (char)rnd());
		} else {
			const char *s = seeds[rnd() % 3];
			len = strlen(s);
			memcpy(buf, s, len);
			for (int m = (int)(rnd() % 4); m > 0; m--) {
				size_t at = rnd() % len;
				switch (rnd() % 3) {
				case 0: buf[at] = alphabet[rnd() % (sizeof alphabet - 1)]; break;
				case 1: buf[at] = (char)rnd(); break;
				default: /* cut */
					len = at;
					break;
				}
				if (len == 0)
					break;
			}
		}
		size_t lim = i % 2 ? max : 0;
		struct http_request r;
		ssize_t n = parse_n(buf, len, lim, &r);
		size_t eff = lim ? lim : HTTP_MAX_HEAD;
		if (!(n == 0 || n == HTTP_ERR_BAD_REQUEST || n == HTTP_ERR_TOO_LARGE ||
		      (n > 0 && (size_t)n <= len && (size_t)n <= eff)))
			fail_msg("round %d: result %zd for %zu bytes", i, n, len);
		if (n == 0 && len >= eff)
			fail_msg("round %d: 'read more' with a full buffer", i);
		if (n > 0) {
			/* The head alone parses to the same length; its
			 * pointers lie inside it. */
			assert_int_equal(parse_n(buf, (size_t)n, lim, NULL), n);
			assert_true(r.method >= buf && r.method + r.method_len <= buf + n);
			assert_true(r.target >= buf && r.target + r.target_len <= buf + n);
			assert_true(r.method_len > 0 && r.target_len > 0);
		}
		if (n == HTTP_ERR_BAD_REQUEST) {
			/* More bytes never repair a bad prefix. */
			char more[600];
			memcpy(more, buf, len);
			memcpy(more + len, "\r\n\r\n", 4);
			ssize_t n2 = parse_n(more, len + 4, lim, NULL);
			if (n2 != HTTP_ERR_BAD_REQUEST && n2 != HTTP_ERR_TOO_LARGE)
				fail_msg("round %d: 400 became %zd with more bytes", i, n2);
		}
	}
}

/* ================================================================ server */

static const char *server_path;
static pid_t server_pid = -1;
static int server_out = -1;       /* read end of its stdout */
static uint16_t server_port;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start the server with `extra` arguments after "-p 0", read "listening on
 * 127.0.0.1:PORT".  0, or -1 (then nothing is left running). */
static int spawn_server(char *const extra[], pid_t *pid, int *out, uint16_t *port)
{
	int p[2];
	char *argv[16];
	int n = 0;
	if (!server_path || pipe2(p, O_CLOEXEC) != 0)
		return -1;
	argv[n++] = (char *)server_path;
	argv[n++] = "-p";
	argv[n++] = "0";
	for (int i = 0; extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	fflush(NULL);
	pid_t c = fork();
	if (c < 0)
		return -1;
	if (c == 0) {
		dup2(p[1], 1);
		execv(server_path, argv);
		_exit(127);
	}
	close(p[1]);

	char line[256];
	size_t len = 0;
	int64_t deadline = mono_ms() + (ASAN ? 30000 : 10000);
	while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t r = read(p[0], line + len, sizeof line - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	line[len] = 0;
	unsigned port_no = 0;
	if (sscanf(line, "listening on 127.0.0.1:%u", &port_no) != 1 || port_no == 0 ||
	    port_no > 65535) {
		fprintf(stderr, "test_http: the server said \"%s\"\n", line);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		close(p[0]);
		return -1;
	}
	*pid = c;
	*out = p[0];
	*port = (uint16_t)port_no;
	return 0;
}

/* sig (SIGTERM, SIGINT) to pid, SIGKILL after 10 s.  Its wait status, or
 * -1 if it had to be killed. */
static int terminate(pid_t pid, int sig)
{
	int st = 0, killed = 0;
	kill(pid, sig);
	int64_t deadline = mono_ms() + 10000;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (mono_ms() > deadline && !killed) {
			kill(pid, SIGKILL);
			killed = 1;
		}
		usleep(10000);
	}
	return killed ? -1 : st;
}

/* The server of the group: `http -p 0 -s 2`. */
static int start_server(void **state)
{
	(void)state;
	char *extra[] = { "-s", "2", NULL };
	return spawn_server(extra, &server_pid, &server_out, &server_port);
}

/* Stop the group's server by its pid (see terminate). */
static int stop_server(void)
{
	if (server_pid <= 0)
		return -1;
	int st = terminate(server_pid, SIGTERM);
	server_pid = -1;
	close(server_out);
	server_out = -1;
	return st;
}

static int teardown_server(void **state)
{
	(void)state;
	if (server_pid > 0)
		stop_server();
	return 0;
}

static int server_setup(void **state)
{
	(void)state;
	return server_pid > 0 ? 0 : -1;
}

/* A blocking client socket with 5 s timeouts, TCP_NODELAY, connected to
 * 127.0.0.1:port. */
static int client_to(uint16_t port)
{
	struct sockaddr_in a;
	struct timeval tv = { .tv_sec = ASAN ? 15 : 5 };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		fail_msg("connect to the server: %s", strerror(errno));
	return fd;
}

static int client(void) { return client_to(server_port); }

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			fail_msg("send: %s", n < 0 ? strerror(errno) : "0");
		p += n;
		len -= (size_t)n;
	}
}

/* Read exactly len bytes (fails on EOF or timeout first). */
static void recv_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);
		if (n <= 0)
			fail_msg("recv after %zu of %zu bytes: %s", got, len,
				 n == 0 ? "EOF" : strerror(errno));
		got += (size_t)n;
	}
}

/* Read until EOF; returns the bytes (fails on a timeout or an error). */
static size_t recv_to_eof(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, cap - got, 0);
		if (n == 0)
			return got;
		if (n < 0)
			fail_msg("recv before EOF after %zu bytes: %s", got, strerror(errno));
		got += (size_t)n;
		if (got == cap)
			fail_msg("more than %zu bytes before EOF", cap);
	}
}

/* Nothing more arrives within ms milliseconds (and no EOF). */
static void expect_quiet(int fd, int ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int r = poll(&pf, 1, ms);
	if (r != 0) {
		char b[64];
		ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
		fail_msg("unexpected: recv = %zd after the expected answer", n);
	}
}

static void expect_ok(int fd, int count)
{
	size_t len = OK_LEN * (size_t)count;
	char *b = malloc(len);
	assert_non_null(b);
	recv_exact(fd, b, len);
	for (int i = 0; i < count; i++)
		if (memcmp(b + OK_LEN * (size_t)i, RESP_OK, OK_LEN) != 0)
			fail_msg("answer %d of %d differs: \"%.*s\"", i + 1, count, (int)OK_LEN,
				 b + OK_LEN * (size_t)i);
	free(b);
}

/* Descriptors the server has open. */
static int server_fds(void)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)server_pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Wait (bounded) until the server's descriptor count is back to `want`. */
static int server_fds_settle(int want)
{
	int64_t deadline = mono_ms() + (ASAN ? 10000 : 3000);
	int n;
	while ((n = server_fds()) != want && mono_ms() < deadline)
		usleep(5000);
	return n;
}

static void test_server_single_request(void **state)
{
	(void)state;
	int fd = client();
	send_all(fd, REQ, REQ_LEN);
	expect_ok(fd, 1);
	expect_quiet(fd, 50);
	/* Keep-alive: the same connection answers again. */
	for (int i = 0; i < 10; i++) {
		send_all(fd, REQ, REQ_LEN);
		expect_ok(fd, 1);
	}
	/* A typical browser-like head. */
	const char *big = "GET /index.html?q=1 HTTP/1.1\r\nHost: localhost:8080\r\n"
			  "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,*/*;q=0.8\r\n"
			  "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
			  "Connection: keep-alive\r\nCookie: a=b; c=d\r\n\r\n";
	send_all(fd, big, strlen(big));
	expect_ok(fd, 1);
	expect_quiet(fd, 20);
	close(fd);
}

static void test_server_pipelined(void **state)
{
	(void)state;
	int fd = client();
	char two[2 * REQ_LEN];
	memcpy(two, REQ, REQ_LEN);
	memcpy(two + REQ_LEN, REQ, REQ_LEN);
	send_all(fd, two, sizeof two);
	expect_ok(fd, 2);
	expect_quiet(fd, 50);

	/* 300 heads in one write: more answers than one send buffer. */
	enum { MANY = 300 };
	char *many = malloc(MANY * REQ_LEN);
	assert_non_null(many);
	for (int i = 0; i < MANY; i++)
		memcpy(many + (size_t)i * REQ_LEN, REQ, REQ_LEN);
	send_all(fd, many, MANY * REQ_LEN);
	expect_ok(fd, MANY);
	free(many);

	/* A head and a half: one answer now, the second when it completes. */
	char half[REQ_LEN + 10];
	memcpy(half, REQ, REQ_LEN);
	memcpy(half + REQ_LEN, REQ, 10);
	send_all(fd, half, sizeof half);
	expect_ok(fd, 1);
	expect_quiet(fd, 50);
	send_all(fd, REQ + 10, REQ_LEN - 10);
	expect_ok(fd, 1);

	/* One byte per write. */
	for (size_t i = 0; i < REQ_LEN; i++) {
		send_all(fd, REQ + i, 1);
		if (i % 8 == 0)
			usleep(1000);
	}
	expect_ok(fd, 1);
	expect_quiet(fd, 20);
	close(fd);
}

static void test_server_head_too_large(void **state)
{
	(void)state;
	int fd = client();
	char *b = malloc(9 * 1024 + 64);
	assert_non_null(b);
	size_t k = (size_t)sprintf(b, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
	memset(b + k, 'x', 9 * 1024 - k - 4);
	memcpy(b + 9 * 1024 - 4, "\r\n\r\n", 4);
	send_all(fd, b, 9 * 1024);
	char r[512];
	size_t n = recv_to_eof(fd, r, sizeof r);
	assert_int_equal(n, strlen(RESP_431));
	assert_memory_equal(r, RESP_431, n);
	close(fd);

	/* A valid head first: its answer, then the 431. */
	fd = client();
	memcpy(b, REQ, REQ_LEN);
	memset(b + REQ_LEN, 'x', 9 * 1024 - REQ_LEN);
	send_all(fd, b, 9 * 1024);
	n = recv_to_eof(fd, r, sizeof r);
	assert_int_equal(n, OK_LEN + strlen(RESP_431));
	assert_memory_equal(r, RESP_OK, OK_LEN);
	assert_memory_equal(r + OK_LEN, RESP_431, strlen(RESP_431));
	close(fd);
	free(b);
}

static void expect_refusal(const char *req, size_t len, const char *answer, int oks)
{
	int fd = client();
	char r[1024];
	send_all(fd, req, len);
	size_t n = recv_to_eof(fd, r, sizeof r);
	size_t want = OK_LEN * (size_t)oks + strlen(answer);
	if (n != want || memcmp(r + OK_LEN * (size_t)oks, answer, strlen(answer)) != 0)
		fail_msg("request \"%.40s...\": got %zu bytes \"%.*s\", expected %zu", req, n,
			 (int)n, r, want);
	for (int i = 0; i < oks; i++)
		assert_memory_equal(r + OK_LEN * (size_t)i, RESP_OK, OK_LEN);
	close(fd);
}

static void test_server_bad_request(void **state)
{
	(void)state;
	const char *garbage = "GARBAGE\r\n\r\n";
	expect_refusal(garbage, strlen(garbage), RESP_400, 0);
	/* Refused before the head ends. */
	expect_refusal("BLAH BLAH\r\n", 11, RESP_400, 0);
	const char *body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
	expect_refusal(body, strlen(body), RESP_400, 0);
	const char *chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "5\r\nhello\r\n0\r\n\r\n";
	expect_refusal(chunked, strlen(chunked), RESP_400, 0);
	/* Two good heads, then garbage: two answers in order, then 400. */
	char mix[256];
	int k = snprintf(mix, sizeof mix, "%s%sGET / HTTP/1.1 extra\r\n\r\n", REQ, REQ);
	expect_refusal(mix, (size_t)k, RESP_400, 2);
	/* Binary junk: refused at once, not after 8 KiB. */
	expect_refusal("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, RESP_400, 0);
	/* A valid-looking start that never ends within the bound: 431. */
	char junk[9000];
	memcpy(junk, "GET /", 5);
	for (size_t i = 5; i < sizeof junk; i++)
		junk[i] = (char)('A' + i % 26);
	expect_refusal(junk, sizeof junk, RESP_431, 0);
}

static void test_server_connection_close(void **state)
{
	(void)state;
	char r[512];
	const char *c1 = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd = client();
	send_all(fd, c1, strlen(c1));
	size_t n = recv_to_eof(fd, r, sizeof r);
	assert_int_equal(n, OK_LEN);
	assert_memory_equal(r, RESP_OK, OK_LEN);
	close(fd);

	/* Heads after the closing one are not answered. */
	char both[256];
	int k = snprintf(both, sizeof both, "%s%s%s", REQ, c1, REQ);
	fd = client();
	send_all(fd, both, (size_t)k);
	n = recv_to_eof(fd, r, sizeof r);
	assert_int_equal(n, 2 * OK_LEN);
	close(fd);

	const char *c0 = "GET / HTTP/1.0\r\n\r\n";
	fd = client();
	send_all(fd, c0, strlen(c0));
	n = recv_to_eof(fd, r, sizeof r);
	assert_int_equal(n, OK_LEN);
	assert_memory_equal(r, RESP_OK, OK_LEN);
	close(fd);
}

static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static void test_server_client_resets(void **state)
{
	(void)state;
	/* Settle what earlier tests left (their connections end
	 * asynchronously), then take the baseline. */
	int base = server_fds();
	usleep(200000);
	base = server_fds();
	assert_true(base > 0);

	for (int round = 0; round < 20; round++) {
		int fd = client();
		switch (round % 5) {
		case 0: /* connect, reset */
			break;
		case 1: /* half a head, reset */
			send_all(fd, "GET / HT", 8);
			usleep(2000);
			break;
		case 2: /* a head, reset without reading the answer */
			send_all(fd, REQ, REQ_LEN);
			break;
		case 3: { /* many pipelined heads, reset while answers flow */
			char *many = malloc(500 * REQ_LEN);
			assert_non_null(many);
			for (int i = 0; i < 500; i++)
				memcpy(many + (size_t)i * REQ_LEN, REQ, REQ_LEN);
			send_all(fd, many, 500 * REQ_LEN);
			free(many);
			usleep(1000);
			break;
		}
		default: /* connect, plain close */
			close(fd);
			fd = -1;
			break;
		}
		if (fd >= 0)
			reset_close(fd);
	}
	/* The server is alive and serving, and holds no descriptor of the
	 * vanished clients. */
	int fd = client();
	send_all(fd, REQ, REQ_LEN);
	expect_ok(fd, 1);
	close(fd);
	int n = server_fds_settle(base);
	if (n != base)
		fail_msg("the server has %d descriptors open, %d before the resets", n, base);
	assert_int_equal(waitpid(server_pid, NULL, WNOHANG), 0); /* still running */
}

/* Many connections at once (each one request, keep-alive, then close). */
static void test_server_many_connections(void **state)
{
	(void)state;
	enum { N = 300 };
	int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = client();
	for (int i = 0; i < N; i++)
		send_all(fds[i], REQ, REQ_LEN);
	for (int i = 0; i < N; i++) {
		expect_ok(fds[i], 1);
		close(fds[i]);
	}
}

static int have_wrk(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *e = strchr(path, ':');
		size_t n = e ? (size_t)(e - path) : strlen(path);
		if (n && n < sizeof buf - 5) {
			snprintf(buf, sizeof buf, "%.*s/wrk", (int)n, path);
			if (access(buf, X_OK) == 0)
				return 1;
		}
		path += n + (e ? 1 : 0);
	}
	return 0;
}

static void test_server_wrk(void **state)
{
	(void)state;
	if (!have_wrk()) {
		print_message("  wrk is not installed: load part skipped\n");
		skip();
	}
	char cmd[256], line[512];
	snprintf(cmd, sizeof cmd,
		 "timeout -k 5 30 wrk -t1 -c16 -d1s http://127.0.0.1:%u/ 2>&1", server_port);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	long requests = -1, errs = 0, non2xx = 0;
	while (fgets(line, sizeof line, f)) {
		long a, b, c, d;
		if (sscanf(line, " %ld requests in", &a) == 1)
			requests = a;
		else if (sscanf(line, " Socket errors: connect %ld, read %ld, write %ld, timeout %ld",
				&a, &b, &c, &d) == 4)
			errs = a + b + c + d;
		else if (sscanf(line, " Non-2xx or 3xx responses: %ld", &a) == 1)
			non2xx = a;
		if (strstr(line, "Requests/sec"))
			print_message("  wrk -t1 -c16 -d1s: %s", line);
	}
	int st = pclose(f);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(requests > 0);
	assert_int_equal(errs, 0);
	assert_int_equal(non2xx, 0);
	/* Still serving afterwards. */
	int fd = client();
	send_all(fd, REQ, REQ_LEN);
	expect_ok(fd, 1);
	close(fd);
}

/* A second server with -i 1: an idle connection is closed after about a
 * second (not before), a busy one is not; SIGINT stops it (exit 0). */
static void test_server_idle_timeout(void **state)
{
	(void)state;
	char *extra[] = { "-s", "1", "-i", "1", NULL };
	pid_t pid;
	int out;
	uint16_t port;
	assert_int_equal(spawn_server(extra, &pid, &out, &port), 0);

	int idle = client_to(port), busy = client_to(port);
	int64_t t0 = mono_ms();
	send_all(idle, REQ, REQ_LEN);
	expect_ok(idle, 1);
	/* Watch the idle one in 50 ms steps while the busy one sends every
	 * 300 ms, for at most 4 s. */
	int64_t closed_at = -1;
	char b[8];
	ssize_t n = -1;
	for (int step = 0; step < 80 && closed_at < 0; step++) {
		struct pollfd pf = { .fd = idle, .events = POLLIN };
		if (poll(&pf, 1, 50) > 0) {
			closed_at = mono_ms() - t0;
			n = recv(idle, b, sizeof b, 0);
		}
		if (step % 6 == 5) {
			send_all(busy, REQ, REQ_LEN);
			expect_ok(busy, 1);
		}
	}
	send_all(busy, REQ, REQ_LEN);
	expect_ok(busy, 1);
	int64_t waited = closed_at;
	close(idle);
	close(busy);
	int st = terminate(pid, SIGINT); /* this one is stopped by SIGINT */
	close(out);
	print_message("  idle connection closed by the server after %lld ms\n", (long long)waited);
	assert_int_equal(n, 0);
	assert_true(waited >= 900);
	assert_true(waited < (ASAN ? 3500 : 2500));
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Last: SIGTERM with connections open; the server exits 0. */
static void test_server_sigterm(void **state)
{
	(void)state;
	int fd = client();
	send_all(fd, REQ, REQ_LEN);
	expect_ok(fd, 1);
	int idle = client(); /* answered once, then parked in its receive */
	send_all(idle, REQ, REQ_LEN);
	expect_ok(idle, 1);
	int st = stop_server();
	if (st == -1)
		fail_msg("the server did not stop within 10 s of SIGTERM (killed)");
	if (WIFSIGNALED(st))
		fail_msg("the server died of signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* Its connections were closed. */
	char b[8];
	assert_int_equal(recv(idle, b, sizeof b, 0), 0);
	close(idle);
	close(fd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest parser[] = {
		cmocka_unit_test(test_parse_simple),
		cmocka_unit_test(test_parse_incomplete),
		cmocka_unit_test(test_parse_pipelined_and_leading_crlf),
		cmocka_unit_test(test_parse_persistence),
		cmocka_unit_test(test_parse_bad_request_line),
		cmocka_unit_test(test_parse_bad_headers),
		cmocka_unit_test(test_parse_too_large),
		cmocka_unit_test(test_parse_random),
	};
	const struct CMUnitTest server[] = {
		cmocka_unit_test_setup(test_server_single_request, server_setup),
		cmocka_unit_test_setup(test_server_pipelined, server_setup),
		cmocka_unit_test_setup(test_server_head_too_large, server_setup),
		cmocka_unit_test_setup(test_server_bad_request, server_setup),
		cmocka_unit_test_setup(test_server_connection_close, server_setup),
		cmocka_unit_test_setup(test_server_client_resets, server_setup),
		cmocka_unit_test_setup(test_server_many_connections, server_setup),
		cmocka_unit_test_setup(test_server_wrk, server_setup),
		cmocka_unit_test_setup(test_server_idle_timeout, server_setup),
		cmocka_unit_test_setup(test_server_sigterm, server_setup),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	if (getenv("UPT_FILTER"))
		cmocka_set_test_filter(getenv("UPT_FILTER"));
	failed = cmocka_run_group_tests_name("http parser", parser, NULL, NULL);
	if (argc < 2) {
		fprintf(stderr, "usage: test_http PATH_TO_HTTP_SERVER (server tests not run)\n");
		return failed ? failed : 1;
	}
	server_path = argv[1];
	/* The whole server group is bounded: a hang ends the suite. */
	alarm(ASAN ? 170 : 100);
	failed += cmocka_run_group_tests_name("http server", server, start_server, teardown_server);
	return failed;
}
