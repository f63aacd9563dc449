/*
 * dist_epmd.c - the epmd client: register this node (ALIVE2_REQ on a
 * connection kept open for as long as the registration lasts) and look up
 * the distribution port of another node (PORT_PLEASE2_REQ), over io_uring
 * like any process I/O.  Also the two small socket helpers the
 * distribution files share.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist.h"

enum {
	ALIVE2_X_RESP = 118,
	PORT2_RESP = 119,
	ALIVE2_REQ = 120,
	ALIVE2_RESP = 121,
	PORT_PLEASE2_REQ = 122,
};

ssize_t up__dist_recv_full(int fd, void *buf, size_t n, int64_t timeout_ns)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = up_io_recv(fd, (char *)buf + got, n - got, 0, timeout_ns);
		if (r < 0)
			return r;
		if (r == 0)
			return got ? -EPIPE : 0;
		got += (size_t)r;
	}
	return (ssize_t)n;
}

int up__dist_tcp_connect(uint32_t host_be, uint16_t port, int64_t timeout_ns)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = host_be;
	int r = up_io_connect(fd, (struct sockaddr *)&a, sizeof(a), timeout_ns);
	if (r < 0) {
		close(fd);
		return r;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

int up__epmd_register(uint16_t epmd_port, const char *alive, uint16_t port,
		      uint32_t *creation, int64_t timeout_ns)
{
	size_t an = strlen(alive);
	if (an == 0 || an > 255)
		return -EINVAL;
	int fd = up__dist_tcp_connect(htonl(INADDR_LOOPBACK), epmd_port, timeout_ns);
	if (fd < 0)
		return fd;
	uint8_t req[2 + 13 + 255];
	size_t len = 13 + an;
	put16(req, (unsigned)len);
	req[2] = ALIVE2_REQ;
	put16(req + 3, port);
	req[5] = 77;           /* a normal (visible) node */
	req[6] = 0;            /* TCP/IPv4 */
	put16(req + 7, 6);     /* highest version */
	put16(req + 9, 5);     /* lowest version */
	put16(req + 11, (unsigned)an);
	memcpy(req + 13, alive, an);
	put16(req + 13 + an, 0); /* no extra */
	ssize_t r = up_io_send(fd, req, 2 + len, 0, timeout_ns);
	uint8_t resp[6];
	if (r >= 0)
		r = up__dist_recv_full(fd, resp, 2, timeout_ns);
	if (r > 0) {
		if (resp[0] == ALIVE2_X_RESP || resp[0] == ALIVE2_RESP) {
			size_t cb = resp[0] == ALIVE2_X_RESP ? 4 : 2;
			if (resp[1] != 0) {
				r = -EADDRINUSE; /* the name is registered already */
			} else {
				r = up__dist_recv_full(fd, resp + 2, cb, timeout_ns);
				if (r > 0) {
					*creation = cb == 4 ? (uint32_t)resp[2] << 24 | (uint32_t)resp[3] << 16 |
								      (uint32_t)resp[4] << 8 | resp[5]
							    : (uint32_t)resp[2] << 8 | resp[3];
				}
			}
		} else {
			r = -EPROTO;
		}
	}
	if (r <= 0) {
		close(fd);
		return r == 0 ? -ECONNRESET : (int)r;
	}
	return fd;
}

int up__epmd_port(uint32_t host, uint16_t epmd_port, const char *alive, size_t alen,
		  int64_t timeout_ns)
{
	if (alen == 0 || alen > 255)
		return -EINVAL;
	int fd = up__dist_tcp_connect(host, epmd_port, timeout_ns);
	if (fd < 0)
		return fd;
	uint8_t req[3 + 255], resp[4];
	put16(req, (unsigned)(1 + alen));
	req[2] = PORT_PLEASE2_REQ;
	memcpy(req + 3, alive, alen);
	ssize_t r = up_io_send(fd, req, 3 + alen, 0, timeout_ns);
	if (r >= 0)
		r = up__dist_recv_full(fd, resp, 2, timeout_ns);
	if (r > 0) {
		if (resp[0] != PORT2_RESP)
			r = -EPROTO;
		else if (resp[1] != 0)
			r = -EHOSTUNREACH; /* no such node at that host */
		else if ((r = up__dist_recv_full(fd, resp + 2, 2, timeout_ns)) > 0)
			r = (int)resp[2] << 8 | resp[3];
	}
	close(fd);
	return r == 0 ? -ECONNRESET : (int)r;
}
