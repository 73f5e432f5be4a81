/* Memory per idle connection: opens N connected TCP loopback pairs (both ends held by
 * this process) first as raw kernel sockets, then as xsocket sids, and prints the
 * resident-set (VmRSS) and heap growth of each, per connection, and the difference:
 * xsocket's own user-space memory per idle connection. Kernel socket memory is not
 * part of the RSS, so the raw-socket line is the baseline of the measurement itself.
 *
 * Not part of the test run. Build and run: make measure-idle
 * (or LD_LIBRARY_PATH=target/release build/measure_idle [N=10000]).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "xsocket.h"

struct calls {
    const char *name;
    int (*socket)(int, int, int);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*close)(int);
};

static const struct calls KERNEL = {"kernel", socket, bind, listen, accept, connect, getsockname, close};
static const struct calls XS = {"xsocket", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect,
                                xs_getsockname, xs_close};

/* VmRSS in bytes. */
static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* Bytes in use on the malloc heap (glibc). */
static long heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

static void die(const char *what, const struct calls *C) {
    fprintf(stderr, "measure_idle: %s (%s): %s%s%s\n", what, C->name, strerror(errno),
                    C == &XS ? " - " : "", C == &XS ? xs_last_error() : "");
    exit(1);
}

/* Opens n pairs into fds[0..2n); returns the listener. */
static int open_pairs(const struct calls *C, int *fds, int n) {
    int l = C->socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) die("socket", C);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (C->bind(l, (struct sockaddr *)&a, len) < 0 || C->listen(l, 128) < 0 ||
        C->getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("listen", C);
    for (int i = 0; i < n; i++) {
        int c = C->socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0) die("socket", C);
        if (C->connect(c, (struct sockaddr *)&a, len) < 0) die("connect", C);
        int s = C->accept(l, NULL, NULL);
        if (s < 0) die("accept", C);
        fds[2 * i] = c;
        fds[2 * i + 1] = s;
    }
    return l;
}

struct growth {
    long rss, heap;
};

static struct growth measure(const struct calls *C, int *fds, int n) {
    /* Warm up: the first pair pays for one-time set-up (tables, locks, lazy init). */
    int warm[2];
    C->close(open_pairs(C, warm, 1));
    C->close(warm[0]);
    C->close(warm[1]);
    long rss0 = rss_bytes(), heap0 = heap_bytes();
    int l = open_pairs(C, fds, n);
    struct growth g = {rss_bytes() - rss0, heap_bytes() - heap0};
    for (int i = 0; i < 2 * n; i++) C->close(fds[i]);
    C->close(l);
    return g;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [connections]\n", argv[0]);
        return 2;
    }
    /* Two descriptors per connection, plus a few for the listener, stdio, the library. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)n * 2 + 64;
    if (need > rl.rlim_max) {
        int fit = (int)((rl.rlim_max - 64) / 2);
        printf("note: %d connections need %lu descriptors, the hard limit is %lu: measuring %d\n", n,
               (unsigned long)need, (unsigned long)rl.rlim_max, fit);
        n = fit;
        need = rl.rlim_max;
    }
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            perror("setrlimit");
            return 1;
        }
    }
    int *fds = malloc(sizeof(int) * 2 * (size_t)n);
    memset(fds, 0, sizeof(int) * 2 * (size_t)n); /* touched now, not during a measurement */

    struct growth k = measure(&KERNEL, fds, n);
    struct growth x = measure(&XS, fds, n);
    free(fds);

    printf("idle TCP loopback connections: %d (both ends open: %d sockets)\n", n, 2 * n);
    printf("%-8s RSS %+9ld KiB = %7.1f bytes/connection   heap %+9ld KiB = %7.1f bytes/connection\n",
           "kernel", k.rss / 1024, (double)k.rss / n, k.heap / 1024, (double)k.heap / n);
    printf("%-8s RSS %+9ld KiB = %7.1f bytes/connection   heap %+9ld KiB = %7.1f bytes/connection\n",
           "xsocket", x.rss / 1024, (double)x.rss / n, x.heap / 1024, (double)x.heap / n);
    printf("xsocket's own user-space memory: %.1f bytes per idle connection by RSS (%.1f per sid), "
           "%.1f by heap (%.1f per sid)\n",
           (double)(x.rss - k.rss) / n, (double)(x.rss - k.rss) / (2.0 * n), (double)(x.heap - k.heap) / n,
           (double)(x.heap - k.heap) / (2.0 * n));
    return 0;
}
