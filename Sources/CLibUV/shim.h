#ifndef CLIBUV_SHIM_H
#define CLIBUV_SHIM_H

#include <uv.h>
/* timerfd and prctl are not libuv, but the daemon's precise timer watches a timerfd with uv_poll and sets the
 * thread's timer slack; Glibc's Swift overlay does not export these headers, so they come in through here. */
#include <sys/timerfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
/* malloc_trim(3): the daemon hands the heap's free pages back to the system after a large request. */
#include <malloc.h>

/* prctl(2) is variadic, and Swift does not import variadic C functions: the daemon sets its loop thread's timer
 * slack (PR_SET_TIMERSLACK, in nanoseconds) through this fixed-arity wrapper. Returns 0 or -1 with errno set. */
static inline int clibuv_set_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0UL, 0UL, 0UL);
}

#endif
