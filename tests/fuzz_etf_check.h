/*
 * fuzz_etf_check.h - the property every input of up_term_decode must have,
 * shared by the libFuzzer harness (fuzz_etf.c), the corpus replay
 * (fuzz_etf.c, which fuzz_replay.c replays) and the etf suite (test_etf.c).
 *
 * For any bytes: decoding gives either a bad term with a documented errno
 * (-EINVAL, -EMSGSIZE, -ERANGE) or a term that
 *  - consumed 1..len bytes (*used), and decodes without `used` iff it
 *    consumed all of them (else -EINVAL: bytes after the term);
 *  - encodes (the size asked with size 0 is the size written);
 *  - whose encoding decodes, consuming all of it, to an equal term
 *    (up_equal) that encodes to the same bytes again (the encoding is
 *    canonical; the input need not be: the decoder also takes ATOM_EXT,
 *    LARGE_BIG_EXT, bignums with spare digits, lists chained by tails...).
 * Runs inside a uproc process (the default 64 KiB stack is enough: the
 * codec, up_equal and up_term_format walk terms with explicit stacks); the
 * heap it uses is given back (heap mark).
 */
#ifndef FUZZ_ETF_CHECK_H
#define FUZZ_ETF_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uproc.h"

static void etf_why(char *why, size_t wsz, const char *fmt, ...)
{
	va_list ap;
	if (!why || !wsz)
		return;
	va_start(ap, fmt);
	vsnprintf(why, wsz, fmt, ap);
	va_end(ap);
}

static int etf_errno_ok(int e)
{
	return e == -EINVAL || e == -EMSGSIZE || e == -ERANGE;
}

/*
 * Check one input.  Returns 0 when the property holds (*bad_errno: 0 for a
 * decoded term, else its errno), or -1 with a reason in why.
 */
static int etf_check(const uint8_t *data, size_t n, int *bad_errno, char *why, size_t wsz)
{
	long mark = up_heap_mark();
	int rc = -1;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t used = 0, used2 = 0;

	if (mark < 0) {
		etf_why(why, wsz, "up_heap_mark: %ld", mark);
		return -1;
	}
	if (bad_errno)
		*bad_errno = 0;
	up_term t = up_term_decode(data, n, &used);
	up_term t0 = up_term_decode(data, n, NULL);
	if (up_is_bad(t)) {
		int e = up_term_error(t);
		if (bad_errno)
			*bad_errno = e;
		if (!etf_errno_ok(e)) {
			etf_why(why, wsz, "decode: undocumented errno %d", e);
			goto out;
		}
		if (up_term_error(t0) != e) {
			etf_why(why, wsz, "decode: %d with used, %d without", e, up_term_error(t0));
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (used == 0 || used > n) {
		etf_why(why, wsz, "decode: used %zu of %zu bytes", used, n);
		goto out;
	}
	if (used == n ? up_is_bad(t0) : up_term_error(t0) != -EINVAL) {
		etf_why(why, wsz, "decode without used: error %d, used %zu of %zu", up_term_error(t0),
			used, n);
		goto out;
	}
	long len = up_term_encode(t, NULL, 0);
	if (len <= 0) {
		etf_why(why, wsz, "encode of a decoded term: %ld", len);
		goto out;
	}
	b1 = malloc((size_t)len);
	b2 = malloc((size_t)len);
	if (!b1 || !b2) {
		etf_why(why, wsz, "malloc(%ld)", len);
		goto out;
	}
	long len1 = up_term_encode(t, b1, (size_t)len);
	if (len1 != len) {
		etf_why(why, wsz, "encode: measured %ld, wrote %ld", len, len1);
		goto out;
	}
	up_term t2 = up_term_decode(b1, (size_t)len, &used2);
	if (up_is_bad(t2) || used2 != (size_t)len) {
		etf_why(why, wsz, "decode of the re-encoding: error %d, used %zu of %ld",
			up_term_error(t2), used2, len);
		goto out;
	}
	if (!up_equal(t, t2)) {
		etf_why(why, wsz, "decode(encode(t)) != t");
		goto out;
	}
	long len2 = up_term_encode(t2, b2, (size_t)len);
	if (len2 != len || memcmp(b1, b2, (size_t)len) != 0) {
		etf_why(why, wsz, "encode is not a fixed point (%ld vs %ld bytes)", len2, len);
		goto out;
	}
	rc = 0;
out:
	free(b1);
	free(b2);
	up_heap_reset(mark);
	return rc;
}

#endif
