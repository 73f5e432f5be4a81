/* Helpers for the multi-threaded, fork and back-pressure tests (header-only: only
 * harness.c and api.c are compiled into each test).
 *
 * slow()                 XSOCKET_TEST_SLOW is set (valgrind): scale sizes down, widen limits.
 * SCALE(fast, slow_v)    picks a value by mode.
 * msleep(ms)             sleeps.
 * watchdog(s)            last resort: the process fails (exit 3) if it runs s seconds more
 *                        (the harness also arms alarm() around each scenario; use this in
 *                        forked children, which do not inherit it).
 * pattern_*              a position-dependent byte pattern, to check order and content.
 * fd_count()             open descriptors of the process, to find leaks
 *                        (fd_count_settled: once closes in progress are done).
 * wait_flag(...)         waits for an atomic flag with a time limit. */
#ifndef XS_TEST_CONCURRENCY_H
#define XS_TEST_CONCURRENCY_H

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static inline int slow(void) { return slow_factor() > 1; }

#define SCALE(fast, slow_v) (slow() ? (slow_v) : (fast))

static inline void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static inline void watchdog_fired(int sig) {
    (void)sig;
    static const char msg[] = "FAIL watchdog: the test did not finish in time\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* Arms (or with 0 disarms) a process-wide alarm that fails the test. */
static inline void watchdog(unsigned seconds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = watchdog_fired;
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

/* The byte at stream offset `off` of stream `seed`: changes with position, so a lost,
 * repeated or reordered chunk shows. */
static inline unsigned char pattern_byte(uint32_t seed, uint64_t off) {
    uint64_t x = off * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 29;
    return (unsigned char)(x ^ (off >> 12));
}

static inline void pattern_fill(unsigned char *buf, size_t n, uint32_t seed, uint64_t off) {
    for (size_t i = 0; i < n; i++) buf[i] = pattern_byte(seed, off + i);
}

/* The index of the first wrong byte, or -1 when all n bytes match. */
static inline long pattern_check(const unsigned char *buf, size_t n, uint32_t seed, uint64_t off) {
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(seed, off + i)) return (long)i;
    return -1;
}

static inline int fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own descriptor */
}

/* The descriptor count once it has not changed for 50 ms (sids closed just before
 * may still be released by the event thread), waiting at most ms. */
static inline int fd_count_settled(long ms) {
    long end = now_ms() + ms;
    int n = fd_count(), same = 0;
    while (same < 5 && now_ms() < end) {
        msleep(10);
        int m = fd_count();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

/* Waits until *flag is non-zero, at most ms milliseconds; returns the flag. */
static inline int wait_flag(atomic_int *flag, long ms) {
    long end = now_ms() + ms;
    while (!atomic_load(flag) && now_ms() < end) msleep(1);
    return atomic_load(flag);
}

#endif
