/*
 * term.h - the representation of up_term (internal).
 *
 * One 64-bit word, tagged in its low bits:
 *   ...1   small integer, 63 bits: value = (int64_t)t >> 1
 *   .000   atom: index = t >> 3 (atom 0 is 'normal', so UP_NORMAL == 0)
 *   .010   boxed: pointer to a header word (8-aligned) = t & ~7
 *   .100   pid: t >> 3 (pids are < 2^61)
 *   .110   special: bits 3..7 a subtag, 0 = [] (UP_NIL = 6),
 *          1 = bad term, the errno in bits 8..
 * A boxed object is a header word (type in bits 0..7, a size in bits 8..)
 * followed by its payload; sizes are in words except for binaries (bytes).
 * Objects are immutable once built, so a copy never needs to preserve
 * sharing; nothing points from an object to anything younger than itself.
 */
#ifndef UP_TERM_H
#define UP_TERM_H

#include <stdint.h>
#include <string.h>
#include "uproc.h"
#include "debug.h"

enum {
	UP__TAG_ATOM = 0, UP__TAG_BOXED = 2, UP__TAG_PID = 4, UP__TAG_SPECIAL = 6,
};
enum {
	UP__B_INT64 = 1,  /* one word */
	UP__B_FLOAT,      /* one word (double) */
	UP__B_BINARY,     /* size = bytes, payload padded to a word */
	UP__B_TUPLE,      /* size = arity, arity words */
	UP__B_CONS,       /* two words: head, tail */
	UP__B_REF,        /* two words: three 32-bit ids, one spare */
};
#define UP__SPECIAL_BAD 1

static inline int up__is_small(up_term t) { return t & 1; }
static inline int up__tag(up_term t) { return (int)(t & 7); }
static inline int up__is_boxed(up_term t) { return (t & 7) == UP__TAG_BOXED; }
static inline uint64_t *up__box(up_term t) { return (uint64_t *)(uintptr_t)(t & ~(up_term)7); }
static inline up_term up__mkbox(const uint64_t *p) { return (up_term)(uintptr_t)p | UP__TAG_BOXED; }
static inline unsigned up__btype(const uint64_t *h) { return (unsigned)(*h & 0xff); }
static inline uint64_t up__bsize(const uint64_t *h) { return *h >> 8; }
static inline uint64_t up__header(unsigned type, uint64_t size) { return size << 8 | type; }
static inline up_term up__mkbad(int err) { return ((up_term)(uint32_t)(-err) << 8) | (UP__SPECIAL_BAD << 3) | UP__TAG_SPECIAL; }
static inline int up__is_bad(up_term t) { return (t & 0xff) == ((UP__SPECIAL_BAD << 3) | UP__TAG_SPECIAL); }

/* Not every word is a term: a raw integer passed as one (up_exit(pid, 42))
 * reads as a boxed pointer into the first pages of memory, which never hold
 * a term.  Entry points that copy terms reject those. */
static inline int up__term_plausible(up_term t)
{
	return !up__is_boxed(t) || (t & ~(up_term)7) >= 65536;
}

#define UP__SMALL_MAX (((int64_t)1 << 62) - 1)
#define UP__SMALL_MIN (-((int64_t)1 << 62))

/* Words a boxed object takes, header included. */
static inline uint64_t up__box_words(const uint64_t *h)
{
	switch (up__btype(h)) {
	case UP__B_BINARY: return 1 + (up__bsize(h) + 7) / 8;
	case UP__B_TUPLE:  return 1 + up__bsize(h);
	case UP__B_CONS:   return 3;
	case UP__B_REF:    return 3;
	default:           return 2;
	}
}

/* Atoms (atom.c). */
int up__atom_name(uint64_t index, const char **name, size_t *len) UP_INTERNAL;
int64_t up__atom_intern(const char *name, size_t len) UP_INTERNAL;

/* Copy (copy.c): words needed by the boxed part of t (0 for an immediate),
 * or -EMSGSIZE past max_words; and the copy itself into dst (which has
 * exactly that many words), returning the copied root. */
int64_t up__term_words(up_term t, uint64_t max_words) UP_INTERNAL;
up_term up__term_copy(up_term t, uint64_t *dst) UP_INTERNAL;

#endif
