/*
 * dist_handshake.c - the distribution handshake (version 6, the 'N' form
 * of OTP 23+), both sides, on io_uring: names, flags and creations are
 * exchanged, and each side proves it knows the cookie by returning
 * md5(Cookie ++ integer_to_list(Challenge)) for the other's random
 * challenge.  Every message is checked against its expected shape and
 * size; any mismatch fails the handshake with a reason for the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "dist.h"

#define HS_MAX 1024 /* no handshake message is longer */

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* One message: its length and body into buf (at most HS_MAX). */
static int hs_recv(int fd, uint8_t *buf, size_t *len, int64_t timeout_ns)
{
	uint8_t h[2];
	ssize_t r = up__dist_recv_full(fd, h, 2, timeout_ns);
	if (r <= 0)
		return r == 0 ? -ECONNRESET : (int)r;
	size_t n = (size_t)h[0] << 8 | h[1];
	if (n == 0 || n > HS_MAX)
		return -EPROTO;
	r = up__dist_recv_full(fd, buf, n, timeout_ns);
	if (r <= 0)
		return r == 0 ? -ECONNRESET : (int)r;
	*len = n;
	return 0;
}

static int hs_send(int fd, const uint8_t *body, size_t n, int64_t timeout_ns)
{
	uint8_t buf[2 + HS_MAX];
	buf[0] = (uint8_t)(n >> 8);
	buf[1] = (uint8_t)n;
	memcpy(buf + 2, body, n);
	ssize_t r = up_io_send(fd, buf, n + 2, 0, timeout_ns);
	return r < 0 ? (int)r : 0;
}

static void digest(const char *cookie, uint32_t challenge, uint8_t out[16])
{
	char buf[1024 + 16];
	int n = snprintf(buf, sizeof(buf), "%s%u", cookie, challenge);
	up__md5(buf, (size_t)n, out);
}

static uint32_t new_challenge(void)
{
	uint32_t c = 0;
	if (getrandom(&c, sizeof(c), 0) != sizeof(c))
		c = (uint32_t)(uintptr_t)&c ^ 0x9e3779b9u;
	return c;
}

/* 'N' Flags Creation/Challenge... Name: parse the name message of a peer
 * (the send_name) or its challenge; extra is 4 for the challenge word. */
static int parse_n(const uint8_t *b, size_t n, struct up__hs *h, uint32_t *challenge)
{
	size_t base = challenge ? 1 + 8 + 4 + 4 : 1 + 8 + 4;
	if (n < base + 2 || b[0] != 'N') {
		h->why = "not a version 6 name message";
		return -EPROTO;
	}
	h->peer_flags = get64(b + 1);
	if (challenge) {
		*challenge = get32(b + 9);
		h->peer_creation = get32(b + 13);
	} else {
		h->peer_creation = get32(b + 9);
	}
	size_t nl = (size_t)b[base] << 8 | b[base + 1];
	if (nl == 0 || nl > 255 || base + 2 + nl != n || !memchr(b + base + 2, '@', nl)) {
		h->why = "bad node name";
		return -EPROTO;
	}
	memcpy(h->peer, b + base + 2, nl);
	h->peer[nl] = 0;
	if (memchr(h->peer, 0, nl)) {
		h->why = "bad node name";
		return -EPROTO;
	}
	if ((h->peer_flags & UP__DFLAGS_NEEDED) != UP__DFLAGS_NEEDED) {
		h->why = "peer lacks mandatory distribution flags";
		return -EPROTO;
	}
	return 0;
}

int up__hs_connect(int fd, struct up__hs *h, int64_t timeout_ns)
{
	uint8_t b[HS_MAX];
	size_t n = 0, sl = strlen(h->self);
	char expect[256];
	snprintf(expect, sizeof(expect), "%s", h->peer);
	h->why = "connection lost during the handshake";

	b[0] = 'N';
	put64(b + 1, UP__DFLAGS_OURS);
	put32(b + 9, h->creation);
	b[13] = (uint8_t)(sl >> 8);
	b[14] = (uint8_t)sl;
	memcpy(b + 15, h->self, sl);
	int r = hs_send(fd, b, 15 + sl, timeout_ns);
	if (r == 0)
		r = hs_recv(fd, b, &n, timeout_ns);
	if (r)
		return r;
	if (n < 3 || b[0] != 's') {
		h->why = "bad status message";
		return -EPROTO;
	}
	if (n == 6 && memcmp(b + 1, "alive", 5) == 0) {
		/* the peer thinks we are still connected: we are a new one */
		if ((r = hs_send(fd, (const uint8_t *)"strue", 5, timeout_ns)))
			return r;
	} else if (n == 4 && memcmp(b + 1, "nok", 3) == 0) {
		h->why = "the peer has a connection or a winning attempt of its own (nok)";
		return -EALREADY;
	} else if (!(n == 3 && memcmp(b + 1, "ok", 2) == 0) &&
		   !(n == 16 && memcmp(b + 1, "ok_simultaneous", 15) == 0)) {
		h->why = "refused by the peer (status not ok)";
		return -ECONNREFUSED;
	}
	uint32_t their;
	if ((r = hs_recv(fd, b, &n, timeout_ns)))
		return r;
	if ((r = parse_n(b, n, h, &their)))
		return r;
	if (strcmp(h->peer, expect) != 0) {
		h->why = "the peer has another name than asked for";
		return -EPROTO;
	}
	uint32_t mine = new_challenge();
	b[0] = 'r';
	put32(b + 1, mine);
	digest(h->cookie, their, b + 5);
	if ((r = hs_send(fd, b, 21, timeout_ns)) || (r = hs_recv(fd, b, &n, timeout_ns)))
		return r;
	uint8_t want[16];
	digest(h->cookie, mine, want);
	if (n != 17 || b[0] != 'a' || memcmp(b + 1, want, 16) != 0) {
		h->why = "bad challenge ack (wrong cookie?)";
		return -EACCES;
	}
	return 0;
}

int up__hs_accept(int fd, struct up__hs *h, const char *(*accept_name)(const char *peer),
		  int64_t timeout_ns)
{
	uint8_t b[HS_MAX];
	size_t n = 0, sl = strlen(h->self);
	h->why = "connection lost during the handshake";
	int r = hs_recv(fd, b, &n, timeout_ns);
	if (r)
		return r;
	if ((r = parse_n(b, n, h, NULL)))
		return r;
	const char *status = accept_name ? accept_name(h->peer) : NULL;
	if (status && strcmp(status, "sok_simultaneous") != 0) {
		hs_send(fd, (const uint8_t *)status, strlen(status), timeout_ns);
		h->why = "a connection to that node exists";
		return -EALREADY;
	}
	if (!status)
		status = "sok";
	if ((r = hs_send(fd, (const uint8_t *)status, strlen(status), timeout_ns)))
		return r;
	uint32_t mine = new_challenge();
	b[0] = 'N';
	put64(b + 1, UP__DFLAGS_OURS);
	put32(b + 9, mine);
	put32(b + 13, h->creation);
	b[17] = (uint8_t)(sl >> 8);
	b[18] = (uint8_t)sl;
	memcpy(b + 19, h->self, sl);
	if ((r = hs_send(fd, b, 19 + sl, timeout_ns)) || (r = hs_recv(fd, b, &n, timeout_ns)))
		return r;
	uint8_t want[16];
	digest(h->cookie, mine, want);
	if (n != 21 || b[0] != 'r') {
		h->why = "bad challenge reply";
		return -EPROTO;
	}
	if (memcmp(b + 5, want, 16) != 0) {
		h->why = "wrong cookie";
		return -EACCES;
	}
	uint32_t their = get32(b + 1);
	b[0] = 'a';
	digest(h->cookie, their, b + 1);
	return hs_send(fd, b, 17, timeout_ns);
}
