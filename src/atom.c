/*
 * atom.c - the atom table: one for the OS process (atoms outlive runs, as
 * pids' generations do), thread safe, append-only.
 *
 * Entries live in segments that never move, so an atom's name is read
 * without a lock.  Interning looks the name up in an open-addressing hash
 * table without a lock (slots are published with release stores after the
 * entry they name); inserting takes the mutex, and a table that grows is
 * replaced by a bigger one (the old stays readable: retired, freed at exit).
 * Atoms 0.. are predefined in a fixed order (atom 0 is 'normal').
 */
#include "term.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define SEG_BITS 12
#define SEG_SIZE (1u << SEG_BITS)
#define MAX_ATOMS (1u << 20)

struct atom {
	uint32_t len;
	uint32_t hash;
	char name[];
};

struct table {
	uint32_t mask;
	uint32_t slot[];    /* atom index + 1; 0 = empty */
};

static struct atom **seg[MAX_ATOMS / SEG_SIZE];
static uint32_t natoms;              /* atomic (release: entry published) */
static struct table *table;          /* atomic */
static struct table *retired[32];
static unsigned nretired;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const predefined[] = {
	"normal", "kill", "killed", "noproc", "true", "false", "undefined", "ok",
	"error", "EXIT", "DOWN", "process", "shutdown", "noconnection", "timeout",
	"stack_overflow", "heap_limit", "nonode@nohost", "$gen_call", "no_memory",
};

static uint32_t hash_name(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static inline struct atom *entry(uint32_t i)
{
	return seg[i >> SEG_BITS][i & (SEG_SIZE - 1)];
}

static int64_t lookup(const struct table *t, const char *name, size_t len, uint32_t h)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		uint32_t v = __atomic_load_n(&t->slot[i], __ATOMIC_ACQUIRE);
		if (!v)
			return -1;
		struct atom *a = entry(v - 1);
		if (a->hash == h && a->len == len && memcmp(a->name, name, len) == 0)
			return v - 1;
	}
}

static void put(struct table *t, uint32_t h, uint32_t index)
{
	uint32_t i = h & t->mask;
	while (t->slot[i])
		i = (i + 1) & t->mask;
	/* Release: pairs with the lookups' acquire; the entry is complete. */
	__atomic_store_n(&t->slot[i], index + 1, __ATOMIC_RELEASE);
}

static int64_t insert_locked(const char *name, size_t len, uint32_t h)
{
	struct table *t = table;
	int64_t found = t ? lookup(t, name, len, h) : -1;
	if (found >= 0)
		return found;
	uint32_t n = natoms;
	if (n >= MAX_ATOMS)
		return -ENOSPC;
	if (!t || (n + 1) * 2 > t->mask + 1) {
		uint32_t size = t ? (t->mask + 1) * 2 : 1024;
		struct table *nt = calloc(1, sizeof(*nt) + size * sizeof(uint32_t));
		if (!nt || nretired == 32)
			return free(nt), -ENOMEM;
		nt->mask = size - 1;
		for (uint32_t i = 0; i < n; i++)
			put(nt, entry(i)->hash, i);
		__atomic_store_n(&table, nt, __ATOMIC_RELEASE);
		if (t)
			retired[nretired++] = t;
		t = nt;
	}
	if (!seg[n >> SEG_BITS] && !(seg[n >> SEG_BITS] = calloc(SEG_SIZE, sizeof(struct atom *))))
		return -ENOMEM;
	struct atom *a = malloc(sizeof(*a) + len);
	if (!a)
		return -ENOMEM;
	a->len = (uint32_t)len;
	a->hash = h;
	memcpy(a->name, name, len);
	seg[n >> SEG_BITS][n & (SEG_SIZE - 1)] = a;
	__atomic_store_n(&natoms, n + 1, __ATOMIC_RELEASE);
	put(t, h, n);
	return n;
}

static void predefine_locked(void)
{
	for (size_t i = 0; i < sizeof(predefined) / sizeof(predefined[0]); i++)
		insert_locked(predefined[i], strlen(predefined[i]),
			      hash_name(predefined[i], strlen(predefined[i])));
}

int64_t up__atom_intern(const char *name, size_t len)
{
	uint32_t h = hash_name(name, len);
	struct table *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	if (t) {
		int64_t i = lookup(t, name, len, h);
		if (i >= 0)
			return i;
	}
	pthread_mutex_lock(&lock);
	if (!table)
		predefine_locked();
	int64_t r = insert_locked(name, len, h);
	pthread_mutex_unlock(&lock);
	return r;
}

int up__atom_name(uint64_t index, const char **name, size_t *len)
{
	if (!__atomic_load_n(&table, __ATOMIC_ACQUIRE)) {
		/* Predefined atoms exist before anyone interned anything. */
		pthread_mutex_lock(&lock);
		if (!table)
			predefine_locked();
		pthread_mutex_unlock(&lock);
	}
	if (index >= __atomic_load_n(&natoms, __ATOMIC_ACQUIRE))
		return -EINVAL;
	struct atom *a = entry((uint32_t)index);
	*name = a->name;
	*len = a->len;
	return 0;
}

__attribute__((destructor)) static void atoms_free(void)
{
	for (uint32_t i = 0; i < natoms; i++)
		free(entry(i));
	for (uint32_t s = 0; s < MAX_ATOMS / SEG_SIZE; s++)
		free(seg[s]);
	free(table);
	for (unsigned i = 0; i < nretired; i++)
		free(retired[i]);
}
