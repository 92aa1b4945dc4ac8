#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H

#include <lmdb.h>
/* statfs(2): the store checks the filesystem of its data file before it writes through a writable map
   (Glibc's Swift module does not include this header). */
#include <sys/statfs.h>

#endif
