/*
 * http_parse.h - an HTTP/1.x request-head parser for examples/http.c.
 *
 * Pure functions over a byte buffer: no allocation, no I/O, no global
 * state, never a read past buf[len-1].  The caller keeps whatever bytes it
 * has received in one buffer and calls http_parse_request() on them; the
 * result says whether a complete head is there (and how long it is), more
 * bytes are needed, or the request must be refused.
 *
 * What is accepted (RFC 9112, strict where it matters for safety):
 *   request-line = method SP request-target SP HTTP-version CRLF
 *     method: 1*tchar; target: 1*(VCHAR); version: "HTTP/1." DIGIT
 *   header-field = field-name ":" OWS field-value OWS CRLF
 *     name: 1*tchar (no whitespace before the colon); value: VCHAR, obs-text,
 *     SP, HTAB; no obs-fold (a line starting with SP/HTAB)
 *   the head ends with an empty line (CRLF CRLF).  Bare CR or LF: 400.
 *   Empty lines (CRLF) before the request line are skipped (RFC 9112 2.2).
 * Requests have no body here: a Content-Length other than 0 (or an invalid
 * or conflicting one) and any Transfer-Encoding are refused with 400, so no
 * body bytes can be mistaken for the next request (no smuggling).  An
 * HTTP/1.1 request needs exactly one Host header (RFC 9112 3.2).
 *
 * Persistence: HTTP/1.1 keeps the connection unless "Connection: close";
 * HTTP/1.0 closes it after the response (the fixed response carries no
 * "Connection: keep-alive").
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stddef.h>
#include <sys/types.h>

/* Negative results of http_parse_request: the status to answer with. */
#define HTTP_ERR_BAD_REQUEST (-400)
#define HTTP_ERR_TOO_LARGE (-431)

/* Largest head accepted by default (request line + headers + CRLF CRLF). */
#define HTTP_MAX_HEAD 8192

struct http_request {
	const char *method;     /* points into the caller's buffer */
	size_t method_len;
	const char *target;
	size_t target_len;
	int minor_version;      /* HTTP/1.<minor_version> */
	int keep_alive;         /* 1: the connection stays open after the answer */
	int nheaders;           /* header fields in the head */
};

/*
 * http_parse_request - look for one request head at the start of
 * buf[0..len).
 *
 * Returns
 *   > 0   a complete, valid head: the number of bytes it takes (leading
 *         empty lines and the final CRLF CRLF included); *req filled;
 *   0     no complete head yet and nothing wrong so far: read more;
 *   HTTP_ERR_BAD_REQUEST  a malformed head (or one with a body), as soon as
 *         it can be told (a bad request line is refused before the head is
 *         complete);
 *   HTTP_ERR_TOO_LARGE    no end of head within max_head bytes (after the
 *         skipped empty lines).
 * req may be NULL.  max_head 0 means HTTP_MAX_HEAD.
 */
ssize_t http_parse_request(const char *buf, size_t len, size_t max_head,
			   struct http_request *req);

/*
 * http_check_request_line - validate one request line (without its CRLF).
 * Returns 0 and fills the method/target/version fields of *req (may be
 * NULL), or HTTP_ERR_BAD_REQUEST.
 */
int http_check_request_line(const char *line, size_t len, struct http_request *req);

#endif
