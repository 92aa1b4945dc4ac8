/* timerfd(2) is in glibc but not in Swift's Glibc module. The client library arms one per worker connection so
 * that a callback can start on the thread that read its task without waking another thread first (see
 * Sources/TaskShed/Internal/ReadingLoan.swift). Nothing to link: the functions are in libc. */
#include <sys/timerfd.h>
