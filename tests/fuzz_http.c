/*
 * fuzz_http.c - libFuzzer harness for the HTTP example's request-head
 * parser, http_parse_request (examples/http_parse.h).  Built and run by
 * scripts/fuzz http SECONDS; its corpus, tests/fuzz/http/, is replayed by
 * `meson test --suite fuzz` (fuzz_replay.c).
 *
 * Input: byte 0 picks the head limit (0: the default HTTP_MAX_HEAD, else
 * 8..1024), byte 1 the number k (0..7) of chunk lengths that follow in
 * bytes 2..k+1 (used cyclically: how the bytes arrive, see serve()); the
 * rest is what a client sends on one connection.
 *
 * Invariants (a broken one aborts):
 *  - every call answers within its contract: 0, 400, 431 or a head length
 *    in 1..min(len, limit); "read more" (0) only below the limit, 431 only
 *    at or past it; the answer depends on the first `limit` bytes only;
 *    the parser is given exact-size copies, so a read past the end is an
 *    AddressSanitizer report;
 *  - a parsed head: ends with CRLF CRLF; method and target point inside it,
 *    are tchars and VCHARs; HTTP/1.<0-9>; keep-alive only for 1.x>=1;
 *    rebuilding "METHOD SP TARGET SP HTTP/1.d CRLF" from the fields gives
 *    the request line's bytes (the fields say exactly what was sent); the
 *    head alone parses the same;
 *  - a reference parser written from the contract in http_parse.h (not
 *    from http_parse.c) agrees on every complete head within the limit:
 *    valid or 400, length, version, keep-alive, header count;
 *  - the outcome of a connection (the heads served, in order, then a
 *    refusal or "read more") is the same however the bytes are split into
 *    reads, the server's way (the parser rerun on everything unconsumed
 *    after each read): more bytes never repair a refused prefix nor change
 *    a head already served.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAX_EVENTS 4096

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "fuzz_http: %s:%d: broken: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* ------------------------------------------------------ the reference */

static int ref_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ref_vchar(unsigned char c) { return c >= 0x21 && c <= 0x7e; }

static int ref_ieq(const char *s, size_t n, const char *lit)
{
	if (strlen(lit) != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char a = s[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != lit[i])
			return 0;
	}
	return 1;
}

struct ref_head {
	int ok, minor, keep_alive, nheaders;
	size_t method_len, target_len;
};

/* Judge buf[0..n), a head candidate: optional CRLFs, a request line, header
 * lines, each ended by CRLF, and the final empty line (n is just past it). */
static void ref_judge(const char *buf, size_t n, struct ref_head *h)
{
	size_t p = 0;
	memset(h, 0, sizeof(*h));
	while (p + 2 <= n && buf[p] == '\r' && buf[p + 1] == '\n')
		p += 2;
	/* The request line: up to the first CRLF. */
	const char *line = buf + p;
	const char *crlf = memmem(line, n - p, "\r\n", 2);
	size_t llen = (size_t)(crlf - line);
	size_t m = 0;
	while (m < llen && ref_tchar((unsigned char)line[m]))
		m++;
	if (m == 0 || m == llen || line[m] != ' ')
		return;
	size_t t = m + 1, te = t;
	while (te < llen && ref_vchar((unsigned char)line[te]))
		te++;
	if (te == t || llen - te != 9 || memcmp(line + te, " HTTP/1.", 8) != 0 ||
	    line[llen - 1] < '0' || line[llen - 1] > '9')
		return;
	h->method_len = m;
	h->target_len = te - t;
	h->minor = line[llen - 1] - '0';
	int hosts = 0, close = 0;
	p += llen + 2;
	for (;;) {
		line = buf + p;
		crlf = memmem(line, n - p, "\r\n", 2);
		llen = (size_t)(crlf - line);
		p += llen + 2;
		if (llen == 0)
			break;
		size_t k = 0;
		while (k < llen && ref_tchar((unsigned char)line[k]))
			k++;
		if (k == 0 || k == llen || line[k] != ':')
			return;
		size_t v = k + 1, ve = llen;
		for (size_t i = v; i < llen; i++) {
			unsigned char c = (unsigned char)line[i];
			if (!(c == '\t' || c == ' ' || ref_vchar(c) || c >= 0x80))
				return;
		}
		while (v < ve && (line[v] == ' ' || line[v] == '\t'))
			v++;
		while (ve > v && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		h->nheaders++;
		if (ref_ieq(line, k, "content-length")) {
			if (ve == v)
				return;
			for (size_t i = v; i < ve; i++)
				if (line[i] != '0')
					return;
		} else if (ref_ieq(line, k, "transfer-encoding")) {
			return;
		} else if (ref_ieq(line, k, "host")) {
			hosts++;
		} else if (ref_ieq(line, k, "connection")) {
			/* Comma-separated options, OWS around each. */
			size_t a = v;
			while (a <= ve) {
				size_t b = a;
				while (b < ve && line[b] != ',')
					b++;
				size_t s = a, e = b;
				while (s < e && (line[s] == ' ' || line[s] == '\t'))
					s++;
				while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'))
					e--;
				if (ref_ieq(line + s, e - s, "close"))
					close = 1;
				a = b + 1;
			}
		}
	}
	if (h->minor >= 1 ? hosts != 1 : hosts > 1)
		return;
	h->keep_alive = h->minor >= 1 && !close;
	h->ok = 1;
}

/* The end of the first complete head candidate in buf[0..lim), or 0. */
static size_t ref_candidate(const char *buf, size_t lim)
{
	size_t p = 0;
	while (p + 2 <= lim && buf[p] == '\r' && buf[p + 1] == '\n')
		p += 2;
	const char *crlf = memmem(buf + p, lim - p, "\r\n", 2);
	if (!crlf)
		return 0;
	/* The request line's CRLF may be the first half of the end. */
	const char *end = memmem(crlf, lim - (size_t)(crlf - buf), "\r\n\r\n", 4);
	return end ? (size_t)(end - buf) + 4 : 0;
}

/* ------------------------------------------------------------ checks */

/* The parser on an exact-size copy of s[0..len); req fields made relative
 * to s again. */
static ssize_t parse_copy(const char *s, size_t len, size_t max, struct http_request *r)
{
	char *b = malloc(len ? len : 1);
	CHECK(b);
	memcpy(b, s, len);
	struct http_request tmp;
	memset(&tmp, 0, sizeof tmp);
	ssize_t n = http_parse_request(b, len, max, &tmp);
	if (n > 0) {
		CHECK(tmp.method >= b && tmp.method < b + n);
		CHECK(tmp.target >= b && tmp.target < b + n);
		tmp.method = s + (tmp.method - b);
		tmp.target = s + (tmp.target - b);
	}
	free(b);
	if (r)
		*r = tmp;
	return n;
}

static int same_req(const struct http_request *a, const struct http_request *b)
{
	return a->method == b->method && a->method_len == b->method_len && a->target == b->target &&
	       a->target_len == b->target_len && a->minor_version == b->minor_version &&
	       a->keep_alive == b->keep_alive && a->nheaders == b->nheaders;
}

/* One parse of s[0..len) with limit max (0: the default), fully checked.
 * Returns the parser's answer; *r the request of a head. */
static ssize_t parse_checked(const char *s, size_t len, size_t max, struct http_request *r)
{
	size_t lim = max ? max : HTTP_MAX_HEAD;
	ssize_t n = parse_copy(s, len, max, r);

	CHECK(n == 0 || n == HTTP_ERR_BAD_REQUEST || n == HTTP_ERR_TOO_LARGE ||
	      (n > 0 && (size_t)n <= len && (size_t)n <= lim));
	CHECK(n != 0 || len < lim);
	CHECK(n != HTTP_ERR_TOO_LARGE || len >= lim);
	if (len > lim)
		CHECK(parse_copy(s, lim, max, NULL) == n);

	size_t cand = ref_candidate(s, len < lim ? len : lim);
	struct ref_head h;
	if (cand) {
		ref_judge(s, cand, &h);
		CHECK(h.ok ? n == (ssize_t)cand : n == HTTP_ERR_BAD_REQUEST);
	} else {
		CHECK(n <= 0);
	}
	if (n <= 0)
		return n;

	/* A head. */
	CHECK(n >= 4 && memcmp(s + n - 4, "\r\n\r\n", 4) == 0);
	CHECK(r->method_len > 0 && r->target_len > 0);
	CHECK(r->method + r->method_len <= s + n && r->target + r->target_len <= s + n);
	for (size_t i = 0; i < r->method_len; i++)
		CHECK(ref_tchar((unsigned char)r->method[i]));
	for (size_t i = 0; i < r->target_len; i++)
		CHECK(ref_vchar((unsigned char)r->target[i]));
	CHECK(r->minor_version >= 0 && r->minor_version <= 9);
	CHECK(r->keep_alive == 0 || r->keep_alive == 1);
	CHECK(!r->keep_alive || r->minor_version >= 1);
	CHECK(r->minor_version == h.minor && r->keep_alive == h.keep_alive &&
	      r->nheaders == h.nheaders && r->method_len == h.method_len &&
	      r->target_len == h.target_len);

	/* Re-serialise the request line: the very bytes after the leading
	 * empty lines. */
	size_t p = 0;
	while (s[p] == '\r')
		p += 2;
	CHECK(r->method == s + p);
	char line[HTTP_MAX_HEAD + 32];
	size_t ll = r->method_len + r->target_len + 12;
	CHECK(ll < sizeof line && p + ll <= (size_t)n);
	memcpy(line, r->method, r->method_len);
	line[r->method_len] = ' ';
	memcpy(line + r->method_len + 1, r->target, r->target_len);
	snprintf(line + r->method_len + 1 + r->target_len, 12, " HTTP/1.%d\r\n", r->minor_version);
	CHECK(memcmp(line, s + p, ll) == 0);

	/* The head alone: the same answer. */
	struct http_request r2;
	CHECK(parse_copy(s, (size_t)n, max, &r2) == n && same_req(r, &r2));
	return n;
}

/* ------------------------------------------------------- connections */

struct event {
	ssize_t n;                   /* a head's length, or the final answer */
	struct http_request req;     /* fields made relative to the stream */
};

struct outcome {
	struct event ev[MAX_EVENTS];
	int nev;
	int refused;
};

/* Serve what the client sent, data[0..len), arriving in chunks (lens
 * cyclic; nchunks 0: all at once), the server's way. */
static void serve(const char *data, size_t len, size_t max, const uint8_t *lens, int nlens,
		  struct outcome *o)
{
	size_t have = 0, off = 0;
	int c = 0;

	o->nev = 0;
	o->refused = 0;
	while (have < len) {
		/* A chunk length byte: 1..128 bytes, or 32-byte steps. */
		uint8_t b = nlens ? lens[c++ % nlens] : 0;
		size_t chunk = !nlens ? len : b & 0x80 ? (size_t)(b & 0x7f) * 32 + 1 : (size_t)b + 1;
		have = have + chunk < len ? have + chunk : len;
		for (;;) {
			struct http_request r;
			ssize_t n = parse_checked(data + off, have - off, max, &r);
			if (n == 0)
				break;
			CHECK(o->nev < MAX_EVENTS);
			o->ev[o->nev].n = n;
			o->ev[o->nev].req = n > 0 ? r : (struct http_request){ 0 };
			o->nev++;
			if (n < 0) {
				o->refused = 1;
				return;
			}
			off += (size_t)n;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome whole, split;

	if (size < 2)
		return 0;
	size_t max = data[0] ? 4 + (size_t)data[0] * 4 : 0;
	int nlens = data[1] & 7;
	if (size < 2 + (size_t)nlens)
		return 0;
	const uint8_t *lens = data + 2;
	const char *in = (const char *)data + 2 + nlens;
	size_t len = size - 2 - (size_t)nlens;

	serve(in, len, max, NULL, 0, &whole);
	serve(in, len, max, lens, nlens, &split);
	CHECK(whole.nev == split.nev && whole.refused == split.refused);
	for (int i = 0; i < whole.nev; i++) {
		CHECK(whole.ev[i].n == split.ev[i].n);
		CHECK(same_req(&whole.ev[i].req, &split.ev[i].req));
	}
	return 0;
}
