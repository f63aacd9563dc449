/*
 * etf.c - Erlang's external term format (term_to_binary/binary_to_term,
 * version 131) for uproc terms, written on the public term API (plus
 * up__mkbad for bad terms, and term.c's reference id words).
 *
 * Encoding gives exactly the bytes of OTP 26's term_to_binary/1 (OTP 25's
 * term_to_binary(T, [{minor_version, 2}])) for the same value:
 *   integer   SMALL_INTEGER_EXT 0..255, INTEGER_EXT -2^31..2^31-1, else
 *             SMALL_BIG_EXT with the fewest digit bytes
 *   float     NEW_FLOAT_EXT (Erlang has no NaN or infinity: -EINVAL)
 *   atom      SMALL_ATOM_UTF8_EXT (uproc atoms have at most 255 bytes; a
 *             name that is not valid UTF-8 cannot be encoded: -EINVAL)
 *   tuple     SMALL_TUPLE_EXT up to arity 255, else LARGE_TUPLE_EXT
 *   []        NIL_EXT
 *   list      STRING_EXT for a proper list of 1..65535 integers 0..255,
 *             else LIST_EXT (cell count, elements, tail)
 *   binary    BINARY_EXT
 *   pid       NEW_PID_EXT, node 'nonode@nohost', creation 0,
 *             ID = pid & (2^28 - 1) (the slot), Serial = pid >> 28 (the
 *             generation): up_term_format's <0.ID.Serial>, as in Erlang
 *             (a non-distributed Erlang node takes as its own only pids of
 *             ID < 2^15 and Serial < 2^13; the rest waits for distribution)
 *   ref       NEWER_REFERENCE_EXT, 3 id words, node 'nonode@nohost',
 *             creation 0
 * While the program is a distributed node (up_node_start), its own pids
 * and refs carry its node name and creation instead, and pids and refs of
 * other nodes (dist.h) are encoded with theirs; such terms decode only
 * while distributed (1 to 3 ref words; a Serial under 2^13).
 *
 * Decoding accepts, besides all of the above, what older or other encoders
 * write: ATOM_EXT and SMALL_ATOM_EXT (Latin-1, converted to UTF-8),
 * ATOM_UTF8_EXT, LARGE_BIG_EXT, PID_EXT and NEW_REFERENCE_EXT, lists whose
 * tail is itself a LIST_EXT or STRING_EXT (merged, not nested), bignums
 * with leading zero digits (any non-zero sign byte is negative, as in
 * erts).  Bytes after the term are left alone when `used` is given.  It
 * refuses:
 *   -EINVAL   a version byte other than 131; an unknown or unsupported tag
 *             (maps, funs, ports, bit strings, FLOAT_EXT, compressed terms);
 *             an input that ends inside a fixed-size field; NaN or
 *             infinity; an atom that is empty, longer than UP_ATOM_MAX bytes
 *             once in UTF-8, or not valid UTF-8; a pid or reference of
 *             another node than 'nonode@nohost' or of a creation other than
 *             0 (remote ones come with distribution), a pid whose ID has
 *             more than 28 bits or that is 0, a reference with other than 3
 *             id words; nesting deeper than ETF_MAX_DEPTH (10,000) tuples
 *             and list heads; and, when used is NULL, bytes left after the
 *             term (binary_to_term's rule);
 *   -EMSGSIZE a size field (arity, length, digit count) larger than the
 *             bytes left in the input, or than UP_DECODE_MAX;
 *   -ERANGE   an integer outside int64_t (a valid Erlang bignum that
 *             uproc cannot hold: told apart from a malformed input);
 *   -ENOMEM   no memory (the process heap, or the decoder's scratch);
 *   -EPERM    outside a process.
 * A truncated input thus gives -EINVAL, or -EMSGSIZE when the cut leaves a
 * size field pointing past the end.
 *
 * Safety: every read is checked against len; every size is checked against
 * the bytes left before anything is allocated, and every element takes at
 * least one input byte, so the scratch (a value stack and a frame stack,
 * malloc'd, freed on return) is at most 16 bytes per input byte plus the
 * frames, and the heap at most ~24 bytes per input byte (a cons cell per
 * STRING_EXT byte) plus the binaries' bytes.  Neither direction recurses:
 * the decoder keeps an explicit frame stack (depth at most ETF_MAX_DEPTH),
 * the encoder an explicit iterator stack (depth of the term's nesting; long
 * lists and tuples iterate in place).
 *
 * Note: decoding interns every atom it meets; as with binary_to_term/1,
 * untrusted input can fill the atom table (-ENOSPC past 1,048,576 atoms).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uproc.h"
/* The one thing taken from the representation: a bad term carrying a given
 * errno (up__mkbad).  The public API makes bad terms only as the results of
 * builders, none of which yields -EMSGSIZE or -ERANGE. */
#include "term.h"
#include "dist.h"

/* A pid's or reference's node name as read (no atom is made for it). */
struct node_name {
	uint8_t name[2 * UP_ATOM_MAX];
	size_t len;
};

/* From term.c (internal, not in uproc.h): a reference's three id words,
 * and the reference with given id words. */
int up__ref_words(up_term t, uint32_t w[4]);
up_term up__ref_from_words(const uint32_t w[4]);

enum {
	ETF_VERSION = 131,
	NEW_FLOAT_EXT = 70,
	BIT_BINARY_EXT = 77,
	COMPRESSED = 80,
	NEW_PID_EXT = 88,
	NEWER_REFERENCE_EXT = 90,
	SMALL_INTEGER_EXT = 97,
	INTEGER_EXT = 98,
	FLOAT_EXT = 99,
	ATOM_EXT = 100,
	PID_EXT = 103,
	SMALL_TUPLE_EXT = 104,
	LARGE_TUPLE_EXT = 105,
	NIL_EXT = 106,
	STRING_EXT = 107,
	LIST_EXT = 108,
	BINARY_EXT = 109,
	SMALL_BIG_EXT = 110,
	LARGE_BIG_EXT = 111,
	NEW_REFERENCE_EXT = 114,
	SMALL_ATOM_EXT = 115,
	MAP_EXT = 116,
	ATOM_UTF8_EXT = 118,
	SMALL_ATOM_UTF8_EXT = 119,
};

#define ETF_MAX_DEPTH 10000
#define ETF_STRING_MAX 65535u       /* longest list written as STRING_EXT */
#define PID_ID_BITS 28
#define REF_WORDS 3


/* ---------------------------------------------------------------- UTF-8 */

/* Is s[0..n) well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF)? */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* --------------------------------------------------------------- encode */

struct wbuf {
	uint8_t *p;
	size_t size, n;   /* n: bytes the whole encoding needs so far */
};

static void put(struct wbuf *w, const void *src, size_t k)
{
	if (w->n < w->size) {
		size_t room = w->size - w->n;
		memcpy(w->p + w->n, src, k < room ? k : room);
	}
	w->n += k;
}

static void put8(struct wbuf *w, uint8_t v)
{
	if (w->n < w->size)
		w->p[w->n] = v;
	w->n++;
}

static void put16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 2);
}

static void put32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 4);
}

/* A pid's or reference's node name (at most 255 bytes). */
static void put_node(struct wbuf *w, const char *name, size_t len)
{
	put8(w, SMALL_ATOM_UTF8_EXT);
	put8(w, (uint8_t)len);
	put(w, name, len);
}

static void put_int(struct wbuf *w, int64_t v)
{
	if (v >= 0 && v <= 255) {
		put8(w, SMALL_INTEGER_EXT);
		put8(w, (uint8_t)v);
	} else if (v >= INT32_MIN && v <= INT32_MAX) {
		put8(w, INTEGER_EXT);
		put32(w, (uint32_t)(int32_t)v);
	} else {
		uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
		uint8_t d[8], n = 0;
		while (mag) {
			d[n++] = (uint8_t)mag;
			mag >>= 8;
		}
		put8(w, SMALL_BIG_EXT);
		put8(w, n);
		put8(w, v < 0);
		put(w, d, n);
	}
}

/* An iterator of the encoder's stack: the rest of a tuple or of a list. */
struct enc_it {
	up_term t;      /* the tuple; or the list's next cell (the tail once n = 0) */
	size_t i, n;    /* tuple: next index, arity; list: -, cells left */
	bool list;
};

struct enc_stack {
	struct enc_it *it;
	size_t n, cap;
	struct enc_it small[16];
};

static int enc_push(struct enc_stack *s, struct enc_it it)
{
	if (s->n == s->cap) {
		size_t cap = s->cap * 2;
		struct enc_it *p;
		if (s->it == s->small) {
			p = malloc(cap * sizeof(*p));
			if (p)
				memcpy(p, s->small, sizeof(s->small));
		} else {
			p = realloc(s->it, cap * sizeof(*p));
		}
		if (!p)
			return -ENOMEM;
		s->it = p;
		s->cap = cap;
	}
	s->it[s->n++] = it;
	return 0;
}

static inline bool is_byte(up_term t)
{
	int64_t v;
	return up_kind_of(t) == UP_K_INT && up_get_int(t, &v) == 0 && v >= 0 && v <= 255;
}

/* Write one term: a scalar whole, a container's header (its contents are
 * pushed as an iterator). */
static int enc_term(struct wbuf *w, struct enc_stack *s, up_term t)
{
	switch (up_kind_of(t)) {
	case UP_K_INT: {
		int64_t v;
		if (up_get_int(t, &v))
			return -EINVAL;
		put_int(w, v);
		return 0;
	}
	case UP_K_FLOAT: {
		double d;
		uint64_t bits;
		if (up_get_float(t, &d) || !isfinite(d))
			return -EINVAL;
		memcpy(&bits, &d, 8);
		put8(w, NEW_FLOAT_EXT);
		put32(w, (uint32_t)(bits >> 32));
		put32(w, (uint32_t)bits);
		return 0;
	}
	case UP_K_ATOM: {
		const char *name;
		size_t len;
		if (up_get_atom(t, &name, &len) || len > 255 ||
		    !utf8_valid((const uint8_t *)name, len))
			return -EINVAL;
		put8(w, SMALL_ATOM_UTF8_EXT);
		put8(w, (uint8_t)len);
		put(w, name, len);
		return 0;
	}
	case UP_K_REF: {
		uint32_t id[REF_WORDS + 1];
		int rc = up__ref_words(t, id);
		if (rc)
			return rc < 0 ? rc : -EINVAL;
		/* the spare word: 0 here, node index | words << 16 for a ref of
		 * another node (dist.h) */
		unsigned nw = id[REF_WORDS] ? (id[REF_WORDS] >> 16) & 3 : REF_WORDS;
		const char *node;
		size_t nlen;
		uint32_t creation;
		if (nw == 0 || up__dist_node_info(id[REF_WORDS] & 0xffff, &node, &nlen, &creation))
			return -EINVAL;
		put8(w, NEWER_REFERENCE_EXT);
		put16(w, (uint16_t)nw);
		put_node(w, node, nlen);
		put32(w, creation);
		for (unsigned i = 0; i < nw; i++)
			put32(w, id[i]);
		return 0;
	}
	case UP_K_PID: {
		up_pid pid;
		uint32_t id, serial;
		unsigned idx = 0;
		if (up_get_pid(t, &pid) || pid <= 0)
			return -EINVAL;
		if (up__pid_is_remote(pid)) {
			if (up__dist_pid_is_name(pid))
				return -EINVAL; /* {Name, Node}: not a pid */
			idx = up__dist_pid_idx(pid);
			id = up__dist_pid_id(pid);
			serial = up__dist_pid_serial(pid);
		} else {
			if (((uint64_t)pid >> PID_ID_BITS) > UINT32_MAX)
				return -EINVAL;
			id = (uint32_t)(pid & ((1u << PID_ID_BITS) - 1));
			serial = (uint32_t)((uint64_t)pid >> PID_ID_BITS);
		}
		const char *node;
		size_t nlen;
		uint32_t creation;
		if (up__dist_node_info(idx, &node, &nlen, &creation))
			return -EINVAL;
		put8(w, NEW_PID_EXT);
		put_node(w, node, nlen);
		put32(w, id);
		put32(w, serial);
		put32(w, creation);
		return 0;
	}
	case UP_K_TUPLE: {
		long n = up_tuple_arity(t);
		if (n < 0 || (uint64_t)n > UINT32_MAX)
			return -EINVAL;
		if (n <= 255) {
			put8(w, SMALL_TUPLE_EXT);
			put8(w, (uint8_t)n);
		} else {
			put8(w, LARGE_TUPLE_EXT);
			put32(w, (uint32_t)n);
		}
		return n ? enc_push(s, (struct enc_it){ .t = t, .i = 0, .n = (size_t)n }) : 0;
	}
	case UP_K_NIL:
		put8(w, NIL_EXT);
		return 0;
	case UP_K_LIST: {
		/* Erlang's rule (is_external_string): a proper list of bytes of
		 * at most 65535 elements is a STRING_EXT. */
		size_t n = 0;
		bool bytes = true;
		up_term c = t, h;
		while (up_kind_of(c) == UP_K_LIST) {
			if (up_get_cons(c, &h, &c))
				return -EINVAL;
			if (bytes && !is_byte(h))
				bytes = false;
			n++;
		}
		if (up_kind_of(c) == UP_K_BAD)
			return -EINVAL;
		if (bytes && c == UP_NIL && n <= ETF_STRING_MAX) {
			put8(w, STRING_EXT);
			put16(w, (uint16_t)n);
			for (c = t; c != UP_NIL;) {
				int64_t v;
				up_get_cons(c, &h, &c);
				up_get_int(h, &v);
				put8(w, (uint8_t)v);
			}
			return 0;
		}
		if (n > UINT32_MAX)
			return -EINVAL;
		put8(w, LIST_EXT);
		put32(w, (uint32_t)n);
		return enc_push(s, (struct enc_it){ .t = t, .n = n, .list = true });
	}
	case UP_K_BINARY: {
		const void *d;
		size_t len;
		if (up_get_binary(t, &d, &len) || len > UINT32_MAX)
			return -EINVAL;
		put8(w, BINARY_EXT);
		put32(w, (uint32_t)len);
		put(w, d, len);
		return 0;
	}
	default:
		return -EINVAL;
	}
}

long up_term_encode(up_term t, void *buf, size_t size)
{
	if (up_is_bad(t) || (!buf && size))
		return -EINVAL;
	struct wbuf w = { buf, size, 0 };
	struct enc_stack s;
	s.it = s.small;
	s.n = 0;
	s.cap = sizeof(s.small) / sizeof(s.small[0]);

	put8(&w, ETF_VERSION);
	int rc = enc_term(&w, &s, t);
	while (rc == 0 && s.n > 0) {
		struct enc_it *it = &s.it[s.n - 1];
		up_term next;
		if (!it->list) {
			if (it->i == it->n) {
				s.n--;
				continue;
			}
			if (up_tuple_elem(it->t, it->i++, &next)) {
				rc = -EINVAL;
				break;
			}
		} else if (it->n == 0) {
			next = it->t; /* the tail */
			s.n--;
		} else {
			if (up_get_cons(it->t, &next, &it->t)) {
				rc = -EINVAL;
				break;
			}
			it->n--;
		}
		rc = enc_term(&w, &s, next); /* may move s.it */
	}
	if (s.it != s.small)
		free(s.it);
	return rc ? rc : (long)w.n;
}

/* --------------------------------------------------------------- decode */

/* A container being decoded: its values so far sit on the value stack
 * from `base`; `need` more are expected (a list counts its tail). */
struct frame {
	size_t base, need;
	bool list;
};

struct dec {
	const uint8_t *p;
	size_t len, pos;
	up_term *v;            /* value stack */
	size_t nv, vcap;
	struct frame *f;       /* frame stack */
	size_t nf, fcap;
};

static inline size_t left(const struct dec *d) { return d->len - d->pos; }

static int need_bytes(const struct dec *d, size_t k)
{
	return left(d) >= k ? 0 : -EINVAL;
}

/* A size field: it must fit in the input (k bytes each) and UP_DECODE_MAX. */
static int check_size(const struct dec *d, uint64_t n, uint64_t k, uint64_t extra)
{
	if (n > UP_DECODE_MAX || n * k + extra > left(d))
		return -EMSGSIZE;
	return 0;
}

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int push_value(struct dec *d, up_term t)
{
	if (up_is_bad(t))
		return up_term_error(t);
	if (d->nv == d->vcap) {
		size_t cap = d->vcap ? d->vcap * 2 : 64;
		up_term *p = realloc(d->v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		d->v = p;
		d->vcap = cap;
	}
	d->v[d->nv++] = t;
	if (d->nf)
		d->f[d->nf - 1].need--;
	return 0;
}

static int push_frame(struct dec *d, size_t need, bool list)
{
	if (d->nf == ETF_MAX_DEPTH)
		return -EINVAL;
	if (d->nf == d->fcap) {
		size_t cap = d->fcap ? d->fcap * 2 : 16;
		struct frame *p = realloc(d->f, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		d->f = p;
		d->fcap = cap;
	}
	d->f[d->nf++] = (struct frame){ .base = d->nv, .need = need, .list = list };
	return 0;
}

/*
 * An atom at d->pos (tag included) into *out; or, with node (a pid's or
 * reference's node), no atom is made (untrusted node names would fill the
 * atom table): the name is copied into *node.
 */
static int read_atom(struct dec *d, up_term *out, struct node_name *node)
{
	int rc = need_bytes(d, 1);
	if (rc)
		return rc;
	uint8_t tag = d->p[d->pos++];
	size_t n;
	bool latin1;
	switch (tag) {
	case ATOM_EXT:
	case ATOM_UTF8_EXT:
		if ((rc = need_bytes(d, 2)))
			return rc;
		n = get16(d->p + d->pos);
		d->pos += 2;
		break;
	case SMALL_ATOM_EXT:
	case SMALL_ATOM_UTF8_EXT:
		if ((rc = need_bytes(d, 1)))
			return rc;
		n = d->p[d->pos++];
		break;
	default:
		return -EINVAL;
	}
	latin1 = tag == ATOM_EXT || tag == SMALL_ATOM_EXT;
	if ((rc = check_size(d, n, 1, 0)))
		return rc;
	const uint8_t *s = d->p + d->pos;
	d->pos += n;
	if (n == 0 || n > UP_ATOM_MAX)
		return -EINVAL;
	uint8_t u[2 * UP_ATOM_MAX];
	size_t un = 0;
	if (latin1) {
		for (size_t i = 0; i < n; i++) {
			if (s[i] < 0x80) {
				u[un++] = s[i];
			} else {
				u[un++] = (uint8_t)(0xc0 | s[i] >> 6);
				u[un++] = (uint8_t)(0x80 | (s[i] & 0x3f));
			}
		}
		if (un > UP_ATOM_MAX)
			return -EINVAL;
		s = u;
		n = un;
	} else if (!utf8_valid(s, n)) {
		return -EINVAL;
	}
	if (node) {
		memcpy(node->name, s, n);
		node->len = n;
		return 0;
	}
	up_term t = up_atom_len((const char *)s, n);
	if (up_is_bad(t))
		return up_term_error(t);
	*out = t;
	return 0;
}

/* The node and creation of a pid or reference: 0 for this node, a node
 * index (dist.h) for another one while distributed, or an error. */
static int read_node(struct dec *d, size_t creation_bytes)
{
	struct node_name nn;
	int rc = read_atom(d, NULL, &nn);
	if (rc)
		return rc;
	if ((rc = need_bytes(d, creation_bytes)))
		return rc;
	uint32_t creation = creation_bytes == 4 ? get32(d->p + d->pos) : d->p[d->pos];
	d->pos += creation_bytes;
	return up__dist_node_resolve(nn.name, nn.len, creation);
}

/* A bignum's digits (little-endian), n bytes at d->pos. */
static int read_big(struct dec *d, size_t n, bool neg, up_term *out)
{
	const uint8_t *dg = d->p + d->pos;
	d->pos += n;
	while (n > 0 && dg[n - 1] == 0)
		n--;
	if (n > 8)
		return -ERANGE;
	uint64_t mag = 0;
	for (size_t i = n; i-- > 0;)
		mag = mag << 8 | dg[i];
	if (neg ? mag > (uint64_t)1 << 63 : mag > (uint64_t)INT64_MAX)
		return -ERANGE;
	*out = up_int(neg ? (int64_t)(0 - mag) : (int64_t)mag);
	return 0;
}

/* Build the finished frame on top: a tuple, or a list (cells from the end). */
static int finish_frame(struct dec *d)
{
	struct frame f = d->f[--d->nf];
	size_t n = d->nv - f.base;
	up_term t;
	if (f.list) {
		t = d->v[d->nv - 1]; /* the tail */
		for (size_t i = n - 1; i-- > 0;) {
			t = up_cons(d->v[f.base + i], t);
			if (up_is_bad(t))
				break;
		}
	} else {
		t = up_tuple(n, &d->v[f.base]);
	}
	d->nv = f.base;
	return push_value(d, t);
}

/* Decode the next term at d->pos: push its value, or a frame. */
static int decode_step(struct dec *d)
{
	int rc = need_bytes(d, 1);
	if (rc)
		return rc;
	const uint8_t *p = d->p + d->pos;
	uint8_t tag = p[0];
	struct frame *top = d->nf ? &d->f[d->nf - 1] : NULL;
	bool at_tail = top && top->list && top->need == 1;
	up_term t;
	uint64_t n;

	switch (tag) {
	case SMALL_INTEGER_EXT:
		if ((rc = need_bytes(d, 2)))
			return rc;
		d->pos += 2;
		return push_value(d, up_int(p[1]));
	case INTEGER_EXT:
		if ((rc = need_bytes(d, 5)))
			return rc;
		d->pos += 5;
		return push_value(d, up_int((int32_t)get32(p + 1)));
	case SMALL_BIG_EXT:
	case LARGE_BIG_EXT: {
		size_t hdr = tag == SMALL_BIG_EXT ? 3 : 6;
		if ((rc = need_bytes(d, hdr)))
			return rc;
		n = tag == SMALL_BIG_EXT ? p[1] : get32(p + 1);
		bool neg = p[hdr - 1] != 0; /* as erts: any non-zero sign is negative */
		d->pos += hdr;
		if ((rc = check_size(d, n, 1, 0)) || (rc = read_big(d, (size_t)n, neg, &t)))
			return rc;
		return push_value(d, t);
	}
	case NEW_FLOAT_EXT: {
		if ((rc = need_bytes(d, 9)))
			return rc;
		uint64_t bits = (uint64_t)get32(p + 1) << 32 | get32(p + 5);
		double v;
		memcpy(&v, &bits, 8);
		d->pos += 9;
		if (!isfinite(v))
			return -EINVAL;
		return push_value(d, up_float(v));
	}
	case ATOM_EXT:
	case SMALL_ATOM_EXT:
	case ATOM_UTF8_EXT:
	case SMALL_ATOM_UTF8_EXT:
		if ((rc = read_atom(d, &t, NULL)))
			return rc;
		return push_value(d, t);
	case SMALL_TUPLE_EXT:
	case LARGE_TUPLE_EXT: {
		size_t hdr = tag == SMALL_TUPLE_EXT ? 2 : 5;
		if ((rc = need_bytes(d, hdr)))
			return rc;
		n = tag == SMALL_TUPLE_EXT ? p[1] : get32(p + 1);
		d->pos += hdr;
		if ((rc = check_size(d, n, 1, 0)))
			return rc;
		if (n == 0)
			return push_value(d, up_tuple(0, NULL));
		return push_frame(d, (size_t)n, false);
	}
	case NIL_EXT:
		d->pos++;
		return push_value(d, UP_NIL);
	case STRING_EXT: {
		if ((rc = need_bytes(d, 3)))
			return rc;
		n = get16(p + 1);
		d->pos += 3;
		if ((rc = check_size(d, n, 1, 0)))
			return rc;
		const uint8_t *s = d->p + d->pos;
		d->pos += n;
		if (at_tail) {
			/* [.. | "abc"]: the bytes join the list, whose tail is [] */
			top->need += n;
			for (size_t i = 0; i < n; i++)
				if ((rc = push_value(d, up_int(s[i]))))
					return rc;
			return push_value(d, UP_NIL);
		}
		t = UP_NIL;
		for (size_t i = n; i-- > 0 && !up_is_bad(t);)
			t = up_cons(up_int(s[i]), t);
		return push_value(d, t);
	}
	case LIST_EXT:
		if ((rc = need_bytes(d, 5)))
			return rc;
		n = get32(p + 1);
		d->pos += 5;
		if ((rc = check_size(d, n, 1, 1)))
			return rc;
		if (at_tail) {
			/* a tail that is a list: continue the same list */
			top->need = (size_t)n + 1;
			return 0;
		}
		return push_frame(d, (size_t)n + 1, true);
	case BINARY_EXT:
		if ((rc = need_bytes(d, 5)))
			return rc;
		n = get32(p + 1);
		d->pos += 5;
		if ((rc = check_size(d, n, 1, 0)))
			return rc;
		d->pos += n;
		return push_value(d, up_binary(p + 5, (size_t)n));
	case NEW_PID_EXT:
	case PID_EXT: {
		d->pos++;
		/* the node atom, then ID, Serial, Creation */
		struct node_name nn;
		if ((rc = read_atom(d, NULL, &nn)))
			return rc;
		size_t cb = tag == NEW_PID_EXT ? 4 : 1;
		if ((rc = need_bytes(d, 8 + cb)))
			return rc;
		const uint8_t *q = d->p + d->pos;
		uint32_t id = get32(q), serial = get32(q + 4);
		uint32_t creation = cb == 4 ? get32(q + 8) : q[8];
		d->pos += 8 + cb;
		int idx = up__dist_node_resolve(nn.name, nn.len, creation);
		if (idx < 0)
			return idx;
		up_pid pid;
		if (idx > 0) {
			if (serial >= UP__DIST_NAME_SERIAL)
				return -ERANGE;
			pid = up__dist_remote_pid((unsigned)idx, id, serial);
			if (pid < 0)
				return (int)pid;
			return push_value(d, up_pid_term(pid));
		}
		if ((id >> PID_ID_BITS) != 0)
			return -EINVAL;
		pid = (up_pid)((uint64_t)serial << PID_ID_BITS | id);
		if (pid == 0 || up__pid_is_remote(pid) || (pid >> 60))
			return -EINVAL;
		return push_value(d, up_pid_term(pid));
	}
	case NEWER_REFERENCE_EXT:
	case NEW_REFERENCE_EXT: {
		if ((rc = need_bytes(d, 3)))
			return rc;
		n = get16(p + 1);
		d->pos += 3;
		int idx = read_node(d, tag == NEWER_REFERENCE_EXT ? 4 : 1);
		if (idx < 0)
			return idx;
		if ((rc = check_size(d, n, 4, 0)))
			return rc;
		const uint8_t *q = d->p + d->pos;
		d->pos += n * 4;
		/* ours have 3 words; another node's 1 to 3 (OTP 25 sends 3) */
		if (idx == 0 ? n != REF_WORDS : n < 1 || n > REF_WORDS)
			return -EINVAL;
		uint32_t id[REF_WORDS + 1] = { 0, 0, 0, 0 };
		for (size_t i = 0; i < n; i++)
			id[i] = get32(q + 4 * i);
		if (idx > 0)
			id[REF_WORDS] = (uint32_t)idx | (uint32_t)n << 16;
		return push_value(d, up__ref_from_words(id));
	}
	default:
		/* MAP_EXT, compressed, FLOAT_EXT, BIT_BINARY_EXT, funs, ports,
		 * old references, unknown tags */
		return -EINVAL;
	}
}

up_term up_term_decode(const void *buf, size_t len, size_t *used)
{
	if (up_self() == UP_PID_NONE)
		return up__mkbad(-EPERM);
	if (!buf && len)
		return up__mkbad(-EINVAL);
	struct dec d = { .p = buf, .len = len };
	int rc = need_bytes(&d, 1);
	if (rc == 0 && d.p[d.pos++] != ETF_VERSION)
		rc = -EINVAL;
	while (rc == 0) {
		if (d.nf && d.f[d.nf - 1].need == 0) {
			rc = finish_frame(&d);
			continue;
		}
		if (d.nf == 0 && d.nv == 1)
			break;
		rc = decode_step(&d);
	}
	up_term t = rc ? up__mkbad(rc) : d.v[0];
	free(d.v);
	free(d.f);
	if (rc == 0) {
		if (used)
			*used = d.pos;
		else if (d.pos != len)
			t = up__mkbad(-EINVAL);
	}
	return t;
}
