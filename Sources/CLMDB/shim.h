#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H

#include <lmdb.h>
/* statfs(2): the store checks the filesystem of its data file before it writes through a writable map
   (Glibc's Swift module does not include this header). */
#include <sys/statfs.h>

/* A hint that `address` will be read soon (GCC/Clang's prefetch builtin, which Swift cannot spell): the store
   asks for the next tasks of a batch it reads out of order, so that their cache misses overlap (TaskStore.add). */
static inline void taskshed_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
