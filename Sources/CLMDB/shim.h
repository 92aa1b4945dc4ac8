#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H

#include <lmdb.h>
/* statfs(2): the store checks the filesystem of its data file before it writes through a writable map
   (Glibc's Swift module does not include this header). */
#include <sys/statfs.h>

/* Hints that `address` will be read (or written) soon: GCC/Clang's prefetch builtin, which Swift cannot spell.
   The store asks for the next tasks of a batch it reads out of order, so that their cache misses overlap
   (StoreContext.add). A hint never faults, whatever the address. */
static inline void clmdb_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

static inline void clmdb_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

#endif
