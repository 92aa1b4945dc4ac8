#ifndef CLIBUV_SHIM_H
#define CLIBUV_SHIM_H

#include <uv.h>
/* timerfd and prctl are not libuv, but the daemon's precise timer watches a timerfd with uv_poll and sets the
 * thread's timer slack; Glibc's Swift overlay does not export these headers, so they come in through here. */
#include <sys/timerfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#endif
