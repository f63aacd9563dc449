/*
 * dist_pid.c - who a pid or reference belongs to: this node's own name and
 * creation while it is distributed, and the table of other node
 * incarnations ((name, creation) pairs, interned, index 1..32767) that
 * remote pids and refs carry (see dist.h for the bit layout).
 *
 * Entries are never freed while the OS process lives (a pid may be kept
 * anywhere): like atoms, a bounded table; a peer that restarts makes a new
 * entry (its creation changes).  Readers (the encoder, on any thread) read
 * entries by index without a lock: an entry is complete before its index is
 * published and never changes after.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

struct nent {
	uint32_t creation;
	uint8_t len;
	char name[256];
};

static const char nonode[] = "nonode@nohost";
#define NONODE_LEN (sizeof(nonode) - 1)

static struct nent *ents[UP__DIST_IDX_MAX + 1];
static unsigned nents;                  /* highest index in use */
static uint16_t hash_slots[65536];      /* open addressing: index or 0 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct nent self;
static int self_on;

static uint32_t name_hash(const uint8_t *s, size_t n, uint32_t creation)
{
	uint32_t h = 2166136261u ^ creation;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

int up__dist_is_on(void)
{
	return __atomic_load_n(&self_on, __ATOMIC_ACQUIRE);
}

int up__dist_set_self(const char *name, size_t len, uint32_t creation)
{
	if (!name || len == 0 || len > 255)
		return -EINVAL;
	memcpy(self.name, name, len);
	self.len = (uint8_t)len;
	self.creation = creation;
	__atomic_store_n(&self_on, 1, __ATOMIC_RELEASE);
	return 0;
}

void up__dist_clear_self(void)
{
	__atomic_store_n(&self_on, 0, __ATOMIC_RELEASE);
}

int up__dist_node_resolve(const uint8_t *name, size_t len, uint32_t creation)
{
	if (len == NONODE_LEN && memcmp(name, nonode, len) == 0)
		return creation == 0 ? 0 : -EINVAL;
	if (!up__dist_is_on() || len == 0 || len > 255)
		return -EINVAL;
	/* Our own name: ours when the creation is ours (or 0, "unknown"); an
	 * older incarnation of this node is another node. */
	if (len == self.len && memcmp(name, self.name, len) == 0 &&
	    (creation == self.creation || creation == 0))
		return 0;
	uint32_t h = name_hash(name, len, creation);
	pthread_mutex_lock(&lock);
	int r = -ENOSPC;
	for (uint32_t i = 0; i < 65536; i++) {
		uint16_t *slot = &hash_slots[(h + i) & 0xffff];
		if (*slot == 0) {
			if (nents >= UP__DIST_IDX_MAX)
				break;
			struct nent *e = calloc(1, sizeof(*e));
			if (!e) {
				r = -ENOMEM;
				break;
			}
			memcpy(e->name, name, len);
			e->len = (uint8_t)len;
			e->creation = creation;
			unsigned idx = nents + 1;
			__atomic_store_n(&ents[idx], e, __ATOMIC_RELEASE);
			nents = idx;
			*slot = (uint16_t)idx;
			r = (int)idx;
			break;
		}
		struct nent *e = ents[*slot];
		if (e->creation == creation && e->len == len && memcmp(e->name, name, len) == 0) {
			r = *slot;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

int up__dist_node_info(unsigned idx, const char **name, size_t *len, uint32_t *creation)
{
	if (idx == 0) {
		if (up__dist_is_on()) {
			*name = self.name;
			*len = self.len;
			*creation = self.creation;
		} else {
			*name = nonode;
			*len = NONODE_LEN;
			*creation = 0;
		}
		return 0;
	}
	struct nent *e = idx <= UP__DIST_IDX_MAX ? __atomic_load_n(&ents[idx], __ATOMIC_ACQUIRE) : NULL;
	if (!e)
		return -EINVAL;
	*name = e->name;
	*len = e->len;
	*creation = e->creation;
	return 0;
}

up_pid up__dist_remote_pid(unsigned idx, uint32_t id, uint32_t serial)
{
	if (idx == 0 || idx > UP__DIST_IDX_MAX)
		return -EINVAL;
	if (serial >> 13)
		return -ERANGE;
	return (up_pid)((uint64_t)1 << 60 | (uint64_t)idx << 45 | (uint64_t)serial << 32 | id);
}

__attribute__((destructor)) static void ents_free(void)
{
	for (unsigned i = 1; i <= nents; i++)
		free(ents[i]);
	memset(ents, 0, sizeof(ents));
	memset(hash_slots, 0, sizeof(hash_slots));
	nents = 0;
}
