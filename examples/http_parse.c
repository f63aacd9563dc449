/*
 * http_parse.c - the request-head parser of examples/http.c (see
 * http_parse.h for what is accepted).
 *
 * One pass over the buffer, line by line: every complete line is checked
 * as soon as it is there, and so is the start of an incomplete request line
 * (a bad request line is refused before the rest of the head arrives); the
 * empty line ends the head.  Only the first max_head
 * bytes are ever looked at.
 */
#include "http_parse.h"

#include <stdint.h>
#include <string.h>

/* tchar of RFC 9110 5.6.2: "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static const uint8_t tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static inline int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* field-vchar / SP / HTAB (obs-text allowed): no CTL but HTAB, no DEL. */
static inline int is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Case-insensitive comparison of s[0..n) with the lower-case literal lit. */
static int name_is(const char *s, size_t n, const char *lit)
{
	size_t m = strlen(lit);
	if (n != m)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + ('a' - 'A'));
		if (c != (unsigned char)lit[i])
			return 0;
	}
	return 1;
}

int http_check_request_line(const char *line, size_t len, struct http_request *req)
{
	size_t i = 0, m, t;

	while (i < len && tchar[(unsigned char)line[i]])
		i++;
	m = i;
	if (m == 0 || i >= len || line[i] != ' ')
		return HTTP_ERR_BAD_REQUEST;
	t = ++i;
	while (i < len && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
		i++;
	if (i == t || i >= len || line[i] != ' ')
		return HTTP_ERR_BAD_REQUEST;
	size_t tlen = i - t;
	i++;
	if (len - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 ||
	    line[i + 7] < '0' || line[i + 7] > '9')
		return HTTP_ERR_BAD_REQUEST;
	if (req) {
		req->method = line;
		req->method_len = m;
		req->target = line + t;
		req->target_len = tlen;
		req->minor_version = line[i + 7] - '0';
	}
	return 0;
}

/* Could line[0..len) (no line end yet) begin a valid request line?  Lets
 * garbage (a TLS hello, a wrong protocol) be refused at its first bytes
 * rather than after HTTP_MAX_HEAD of them. */
static int request_line_prefix_ok(const char *line, size_t len)
{
	static const char version[] = "HTTP/1.";
	size_t i = 0, start;

	while (i < len && tchar[(unsigned char)line[i]])
		i++;
	if (i == len)
		return 1;
	if (i == 0 || line[i] != ' ')
		return 0;
	start = ++i;
	while (i < len && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
		i++;
	if (i == len)
		return 1;
	if (i == start || line[i] != ' ')
		return 0;
	i++;
	for (size_t k = 0; i < len; i++, k++) {
		if (k < 7 ? line[i] != version[k] : k > 7 || line[i] < '0' || line[i] > '9')
			return 0;
	}
	return 1;
}

/* What the header fields said. */
struct fields {
	int nheaders;
	int hosts;
	int conn_close;
};

/* Check one header line (without CRLF) and note what matters. */
static int check_field(const char *line, size_t len, struct fields *f)
{
	size_t i = 0;

	while (i < len && tchar[(unsigned char)line[i]])
		i++;
	/* No name, whitespace before the colon, obs-fold: all refused. */
	if (i == 0 || i >= len || line[i] != ':')
		return HTTP_ERR_BAD_REQUEST;
	const char *name = line;
	size_t nlen = i++;
	while (i < len && is_ows((unsigned char)line[i]))
		i++;
	size_t v = i, vend = len;
	for (size_t k = i; k < len; k++)
		if (!is_value_char((unsigned char)line[k]))
			return HTTP_ERR_BAD_REQUEST;
	while (vend > v && is_ows((unsigned char)line[vend - 1]))
		vend--;
	const char *val = line + v;
	size_t vlen = vend - v;

	f->nheaders++;
	switch (name[0] | 0x20) { /* first letter, lower case: a quick filter */
	case 'c':
		if (name_is(name, nlen, "content-length")) {
			/* No bodies: only "0" (any number of zeros) is allowed. */
			if (vlen == 0)
				return HTTP_ERR_BAD_REQUEST;
			for (size_t k = 0; k < vlen; k++)
				if (val[k] != '0')
					return HTTP_ERR_BAD_REQUEST;
		} else if (name_is(name, nlen, "connection")) {
			size_t k = 0;
			while (k < vlen) {
				while (k < vlen && (val[k] == ',' || is_ows((unsigned char)val[k])))
					k++;
				size_t s = k;
				while (k < vlen && val[k] != ',')
					k++;
				size_t e = k;
				while (e > s && is_ows((unsigned char)val[e - 1]))
					e--;
				if (name_is(val + s, e - s, "close"))
					f->conn_close = 1;
			}
		}
		break;
	case 'h':
		if (name_is(name, nlen, "host"))
			f->hosts++;
		break;
	case 't':
		/* A body we do not read: refuse rather than misframe. */
		if (name_is(name, nlen, "transfer-encoding"))
			return HTTP_ERR_BAD_REQUEST;
		break;
	}
	return 0;
}

ssize_t http_parse_request(const char *buf, size_t len, size_t max_head,
			   struct http_request *req)
{
	struct http_request r;
	struct fields f = { 0, 0, 0 };
	size_t limit, pos = 0;
	int have_line = 0;

	if (max_head == 0)
		max_head = HTTP_MAX_HEAD;
	limit = len < max_head ? len : max_head;
	memset(&r, 0, sizeof r);
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', limit - pos);
		if (!nl)
			break;
		size_t end = (size_t)(nl - buf); /* index of the LF */
		if (end == pos || buf[end - 1] != '\r')
			return HTTP_ERR_BAD_REQUEST; /* bare LF */
		const char *line = buf + pos;
		size_t llen = end - 1 - pos;
		pos = end + 1;
		if (!have_line) {
			if (llen == 0)
				continue; /* empty lines before the request line */
			if (http_check_request_line(line, llen, &r) != 0)
				return HTTP_ERR_BAD_REQUEST;
			have_line = 1;
			continue;
		}
		if (llen == 0) {
			/* The end of the head. */
			if (r.minor_version >= 1 ? f.hosts != 1 : f.hosts > 1)
				return HTTP_ERR_BAD_REQUEST;
			r.nheaders = f.nheaders;
			r.keep_alive = r.minor_version >= 1 && !f.conn_close;
			if (req)
				*req = r;
			return (ssize_t)pos;
		}
		if (check_field(line, llen, &f) != 0)
			return HTTP_ERR_BAD_REQUEST;
	}
	/* An incomplete last line: a CR may only be its final byte, and the
	 * start of a request line must be able to become a valid one. */
	size_t plen = limit - pos;
	const char *cr = memchr(buf + pos, '\r', plen);
	if (cr && (size_t)(cr - buf) + 1 < limit)
		return HTTP_ERR_BAD_REQUEST;
	if (cr)
		plen--;
	if (!have_line && !request_line_prefix_ok(buf + pos, plen))
		return HTTP_ERR_BAD_REQUEST;
	if (len >= max_head)
		return HTTP_ERR_TOO_LARGE;
	return 0;
}
