/*
 * bench.c: xsocket (protocol 0) against the raw kernel socket, in the same run.
 *
 * Workloads, each over loopback TCP (127.0.0.1) and a Unix stream socket:
 *   bulk     64 KiB writes, 1 GiB per measurement; GiB/s
 *   msgs     64 B and 1 KiB messages, each a 4-byte length + payload written with one
 *            send call; the receiver reads 256 KiB at a time and parses; messages/s
 *   rtt      ping-pong of 64 B messages; median and p99 round trip in microseconds
 *
 * The same workload code runs against two tables of functions (struct api): RAW, the
 * kernel's own calls, and XS, xsocket's xs_ calls. Both ends of a connection use the
 * same table. Sender and receiver are two threads of this process; the connection is
 * set up before the clock starts. Rounds alternate xs, raw, xs, raw, ... and the table
 * shows the median over rounds. TCP_NODELAY is on for both (xsocket's default).
 *
 * CPU placement (BENCH_CPUS): "one" (default) pins both threads to one CPU, which
 * gives the steadiest numbers on a small or shared machine (cross-CPU wake-ups in a VM
 * vary by 3x from run to run); "two" puts the sender and receiver on two CPUs; "any"
 * leaves placement to the scheduler.
 *
 * Environment: BENCH_QUICK=1 scales everything down for a smoke run (about a second);
 * BENCH_ROUNDS=n sets the rounds per row (default 5, quick 3); BENCH_CPUS as above.
 *
 * Build and run:  make bench
 */
#define _GNU_SOURCE /* CPU affinity: sched_getaffinity, pthread_attr_setaffinity_np */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "xsocket.h"

#define KiB 1024u
#define MiB (1024u * KiB)
#define GiB (1024ull * MiB)

#define BULK_CHUNK (64 * KiB) /* bytes per send in the bulk workload */
#define RECV_BUF (256 * KiB)  /* receive buffer of the message parser */
#define RTT_SIZE 64           /* ping-pong message size */
#define MAX_ROUNDS 32

/* ===== the two APIs ================================================================ */

/* The calls the workloads use, so the same code measures the kernel and xsocket. */
struct api {
    const char *name;
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int s, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int s, int backlog);
    int (*accept)(int s, struct sockaddr *addr, socklen_t *len);
    int (*connect)(int s, const struct sockaddr *addr, socklen_t len);
    ssize_t (*send)(int s, const void *buf, size_t len, int flags);
    ssize_t (*recv)(int s, void *buf, size_t len, int flags);
    int (*setsockopt)(int s, int level, int name, const void *val, socklen_t len);
    int (*getsockname)(int s, struct sockaddr *addr, socklen_t *len);
    int (*shutdown)(int s, int how);
    int (*close)(int s);
    const char *(*last_error)(void); /* detail of the calling thread's last failure */
};

/* xs_send always adds MSG_NOSIGNAL; the kernel table does the same. */
static ssize_t k_send(int s, const void *b, size_t n, int f) { return send(s, b, n, f | MSG_NOSIGNAL); }
static const char *k_last_error(void) { return ""; }

static const struct api RAW = {
    "raw", socket, bind, listen, accept, connect, k_send, recv,
    setsockopt, getsockname, shutdown, close, k_last_error,
};

static const struct api XS = {
    "xsocket", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect, xs_send, xs_recv,
    xs_setsockopt, xs_getsockname, xs_shutdown, xs_close, xs_last_error,
};

/* ===== failures ==================================================================== */

/* Stops the bench with a message; exit status 2. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "bench: FAILED: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Returns rc, or stops the bench with errno and the API's detail when rc < 0. */
static long ok(long rc, const struct api *A, const char *what) {
    if (rc < 0) {
        int err = errno;
        const char *detail = A->last_error();
        die("%s: %s: %s%s%s%s", A->name, what, strerror(err), *detail ? " [" : "", detail,
            *detail ? "]" : "");
    }
    return rc;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}


static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ===== connections ================================================================= */

enum transport { TCP, UNIX_STREAM, N_TRANSPORTS };
static const char *const TRANSPORT_NAME[N_TRANSPORTS] = {"tcp", "unix"};

static char tmpdir[64];
static char unix_path[sizeof ((struct sockaddr_un *)0)->sun_path];

static void remove_tmp(void) {
    if (unix_path[0])
        unlink(unix_path);
    if (tmpdir[0])
        rmdir(tmpdir);
}

/* The watchdog: SIGALRM means the whole run took far too long. */
static void on_alarm(int sig) {
    static const char msg[] = "bench: FAILED: watchdog: the run took far too long (hang?)\n";
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
    remove_tmp();
    _exit(3);
}

/* Interrupted (Ctrl-C, or stdout closed by `| head`): remove the temp dir and stop. */
static void on_signal(int sig) {
    remove_tmp();
    _exit(128 + sig);
}

/* A connected pair: `a` is the connecting end, `b` the accepted end. */
struct conn {
    int a, b;
};

static void set_int(const struct api *A, int s, int level, int name, int value, const char *what) {
    ok(A->setsockopt(s, level, name, &value, sizeof value), A, what);
}

/*
 * Opens a connected pair with A, both ends in this thread (a loopback connect completes
 * from the listen backlog). Every data call is bounded by 30 s send/receive timeouts,
 * so a stuck transfer fails with a message instead of hanging the bench.
 */
static struct conn open_conn(const struct api *A, enum transport t) {
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (t == TCP) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    } else {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, unix_path, sizeof un->sun_path);
        unlink(unix_path);
        len = sizeof *un;
    }
    int family = ss.ss_family;

    int l = ok(A->socket(family, SOCK_STREAM, 0), A, "socket");
    ok(A->bind(l, (struct sockaddr *)&ss, len), A, "bind");
    ok(A->listen(l, 4), A, "listen");
    len = sizeof ss;
    ok(A->getsockname(l, (struct sockaddr *)&ss, &len), A, "getsockname");

    struct conn c;
    c.a = ok(A->socket(family, SOCK_STREAM, 0), A, "socket");
    ok(A->connect(c.a, (struct sockaddr *)&ss, len), A, "connect");
    c.b = ok(A->accept(l, NULL, NULL), A, "accept");
    ok(A->close(l), A, "close listener");
    if (t == UNIX_STREAM)
        unlink(unix_path);

    struct timeval tv = {.tv_sec = 30};
    int ends[2] = {c.a, c.b};
    for (int i = 0; i < 2; i++) {
        if (t == TCP)
            set_int(A, ends[i], IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
        ok(A->setsockopt(ends[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), A, "SO_RCVTIMEO");
        ok(A->setsockopt(ends[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), A, "SO_SNDTIMEO");
    }
    return c;
}

static void close_conn(const struct api *A, struct conn c) {
    ok(A->close(c.a), A, "close");
    ok(A->close(c.b), A, "close");
}

static void send_all(const struct api *A, int s, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = ok(A->send(s, p, len, 0), A, "send");
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes; returns 0 on end of stream before the first byte, else 1. */
static int recv_exact(const struct api *A, int s, void *buf, size_t len) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = ok(A->recv(s, p + got, len - got, 0), A, "recv");
        if (n == 0) {
            if (got == 0)
                return 0;
            die("%s: end of stream in the middle of a message", A->name);
        }
        got += (size_t)n;
    }
    return 1;
}

/* The peer thread of a measurement: what it runs and what it reports. */
struct job {
    const struct api *A;
    int sid;
    size_t size;     /* message size */
    uint64_t count;  /* bytes (bulk) or messages */
    uint64_t t_end;  /* when the receiver had everything (CLOCK_MONOTONIC, ns) */
};

/* CPU placement: the main thread runs on cpu_main; peer threads start on cpu_peer. */
enum placement { ONE_CPU, TWO_CPUS, ANY_CPU };
static enum placement placement;
static int cpu_main, cpu_peer;

static void set_placement(const char *mode) {
    if (!mode || !*mode || strcmp(mode, "one") == 0)
        placement = ONE_CPU;
    else if (strcmp(mode, "two") == 0)
        placement = TWO_CPUS;
    else if (strcmp(mode, "any") == 0)
        placement = ANY_CPU;
    else
        die("BENCH_CPUS must be one, two or any (got '%s')", mode);
    if (placement == ANY_CPU)
        return;

    /* The first two CPUs this process may run on. */
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        die("sched_getaffinity: %s", strerror(errno));
    int found[2] = {-1, -1}, n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
        if (CPU_ISSET(cpu, &allowed))
            found[n++] = cpu;
    if (placement == TWO_CPUS && n < 2)
        die("BENCH_CPUS=two needs two CPUs");
    cpu_main = found[0];
    cpu_peer = placement == TWO_CPUS ? found[1] : found[0];

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_main, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        die("pthread_setaffinity_np: %s", strerror(rc));
}

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (placement != ANY_CPU) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu_peer, &set);
        pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    }
    int rc = pthread_create(th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        die("pthread_create: %s", strerror(rc));
}

/* ===== workloads =================================================================== */

/* A measurement: up to two numbers (rtt gives median and p99). */
struct result {
    double v[2];
};

/* --- bulk: 64 KiB writes --- */

static void *bulk_receiver(void *arg) {
    struct job *j = arg;
    char *buf = xmalloc(BULK_CHUNK);
    uint64_t got = 0;
    while (got < j->count) {
        ssize_t n = ok(j->A->recv(j->sid, buf, BULK_CHUNK, 0), j->A, "recv");
        if (n == 0)
            die("%s: bulk: end of stream after %llu of %llu bytes", j->A->name,
                (unsigned long long)got, (unsigned long long)j->count);
        got += (uint64_t)n;
    }
    j->t_end = now_ns();
    free(buf);
    return NULL;
}

/* Bytes per second for `bytes` (a multiple of 64 KiB). */
static struct result bulk(const struct api *A, enum transport t, size_t unused, uint64_t bytes) {
    struct conn c = open_conn(A, t);
    struct job j = {.A = A, .sid = c.b, .count = bytes};
    char *buf = xmalloc(BULK_CHUNK);
    memset(buf, 0x5a, BULK_CHUNK);
    pthread_t th;
    start_thread(&th, bulk_receiver, &j);

    uint64_t t0 = now_ns();
    for (uint64_t sent = 0; sent < bytes; sent += BULK_CHUNK)
        send_all(A, c.a, buf, BULK_CHUNK);
    pthread_join(th, NULL);

    free(buf);
    close_conn(A, c);
    return (struct result){{(double)bytes / ((double)(j.t_end - t0) / 1e9), 0}};
}

/* --- msgs: length-prefixed messages, one send call each --- */

static void *msg_receiver(void *arg) {
    struct job *j = arg;
    char *buf = xmalloc(RECV_BUF);
    size_t have = 0, pos = 0;
    uint64_t seen = 0;
    for (;;) {
        /* Parse every complete message in the buffer. */
        while (have - pos >= 4) {
            uint32_t len, seq;
            memcpy(&len, buf + pos, 4);
            len = ntohl(len);
            if (len != j->size)
                die("%s: msgs: message %llu has length %u, expected %zu", j->A->name,
                    (unsigned long long)seen, len, j->size);
            if (have - pos - 4 < len)
                break;
            memcpy(&seq, buf + pos + 4, 4);
            if (seq != (uint32_t)seen)
                die("%s: msgs: message %llu carries sequence number %u", j->A->name,
                    (unsigned long long)seen, seq);
            pos += 4 + len;
            seen++;
        }
        if (seen == j->count)
            break;
        /* Keep the partial message, then read more behind it. */
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        pos = 0;
        ssize_t n = ok(j->A->recv(j->sid, buf + have, RECV_BUF - have, 0), j->A, "recv");
        if (n == 0)
            die("%s: msgs: end of stream after %llu of %llu messages", j->A->name,
                (unsigned long long)seen, (unsigned long long)j->count);
        have += (size_t)n;
    }
    j->t_end = now_ns();
    if (have != pos)
        die("%s: msgs: %zu bytes beyond the last message", j->A->name, have - pos);
    free(buf);
    return NULL;
}

/* Messages per second for `count` messages of `size` bytes (size >= 4). */
static struct result msgs(const struct api *A, enum transport t, size_t size, uint64_t count) {
    struct conn c = open_conn(A, t);
    struct job j = {.A = A, .sid = c.b, .size = size, .count = count};
    char *frame = xmalloc(4 + size);
    uint32_t len = htonl((uint32_t)size);
    memcpy(frame, &len, 4);
    memset(frame + 4, 0xa5, size);
    pthread_t th;
    start_thread(&th, msg_receiver, &j);

    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint32_t seq = (uint32_t)i;
        memcpy(frame + 4, &seq, 4);
        send_all(A, c.a, frame, 4 + size); /* one send call unless the kernel splits it */
    }
    pthread_join(th, NULL);

    free(frame);
    close_conn(A, c);
    return (struct result){{(double)count / ((double)(j.t_end - t0) / 1e9), 0}};
}

/* --- rtt: ping-pong --- */

static void *echo_peer(void *arg) {
    struct job *j = arg;
    char buf[RTT_SIZE];
    while (recv_exact(j->A, j->sid, buf, sizeof buf))
        send_all(j->A, j->sid, buf, sizeof buf);
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Median and p99 round trip in microseconds over `iters` ping-pongs (after a warm-up). */
static struct result rtt(const struct api *A, enum transport t, size_t unused, uint64_t iters) {
    struct conn c = open_conn(A, t);
    struct job j = {.A = A, .sid = c.b};
    pthread_t th;
    start_thread(&th, echo_peer, &j);

    char msg[RTT_SIZE], reply[RTT_SIZE];
    memset(msg, 0x3c, sizeof msg);
    uint64_t *samples = xmalloc(iters * sizeof *samples);
    for (int i = 0; i < 200; i++) { /* let both threads settle */
        send_all(A, c.a, msg, sizeof msg);
        recv_exact(A, c.a, reply, sizeof reply);
    }
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t t0 = now_ns();
        send_all(A, c.a, msg, sizeof msg);
        if (!recv_exact(A, c.a, reply, sizeof reply))
            die("%s: rtt: end of stream", A->name);
        samples[i] = now_ns() - t0;
    }
    ok(A->shutdown(c.a, SHUT_WR), A, "shutdown"); /* the peer reads end of stream */
    pthread_join(th, NULL);
    close_conn(A, c);

    qsort(samples, iters, sizeof *samples, cmp_u64);
    struct result r = {{samples[iters / 2] / 1e3, samples[(iters * 99 + 99) / 100 - 1] / 1e3}};
    free(samples);
    return r;
}

/* ===== rounds and the table ======================================================== */

typedef struct result (*workload_fn)(const struct api *A, enum transport t, size_t size,
                                     uint64_t count);

/* Formats a value with about 3 significant digits, never in exponent form. */
static const char *fmt3(double v, char *out, size_t outlen) {
    snprintf(out, outlen, "%.*f", v >= 100 ? 0 : v >= 10 ? 1 : 2, v);
    return out;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One line of the table. */
struct row {
    char workload[32];
    const char *transport;
    const char *unit;
    double raw, xs;
    int lower_is_better;
};

static struct row rows[32];
static int nrows;
static int rounds;

/*
 * Runs `rounds` rounds of xs then raw with the same parameters and adds one row per
 * number the workload gives (`names[k]`), in `unit` after dividing by `div`.
 */
static void run_rounds(const char *names[2], enum transport t, workload_fn fn, size_t size,
                       uint64_t count, const char *unit, double div, int lower_is_better) {
    double xs[2][MAX_ROUNDS], raw[2][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        struct result x = fn(&XS, t, size, count);
        struct result k = fn(&RAW, t, size, count);
        for (int v = 0; v < 2; v++) {
            xs[v][r] = x.v[v] / div;
            raw[v][r] = k.v[v] / div;
        }
    }
    for (int v = 0; v < 2 && names[v]; v++) {
        char num[32];
        printf("  %-5s %-20s raw:", TRANSPORT_NAME[t], names[v]);
        for (int r = 0; r < rounds; r++)
            printf(" %s", fmt3(raw[v][r], num, sizeof num));
        printf("   xs:");
        for (int r = 0; r < rounds; r++)
            printf(" %s", fmt3(xs[v][r], num, sizeof num));
        printf("  %s\n", unit);

        struct row *row = &rows[nrows++];
        snprintf(row->workload, sizeof row->workload, "%s", names[v]);
        row->transport = TRANSPORT_NAME[t];
        row->unit = unit;
        row->raw = median(raw[v], rounds);
        row->xs = median(xs[v], rounds);
        row->lower_is_better = lower_is_better;
    }
}

/* Chooses a count so one measurement takes about `seconds`, from a short raw run. */
static uint64_t calibrate_rate(enum transport t, workload_fn fn, size_t size, uint64_t probe,
                               double seconds) {
    fn(&XS, t, size, probe); /* warm-up, discarded */
    double rate = fn(&RAW, t, size, probe).v[0];
    uint64_t n = (uint64_t)(rate * seconds);
    return n < probe ? probe : n;
}

static void print_table(void) {
    printf("\n%-20s | %-9s | %14s | %14s | %s\n", "workload", "transport", "raw", "xsocket",
           "ratio xs/raw");
    printf("---------------------+-----------+----------------+----------------+"
           "-----------------------------\n");
    for (int i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        char raw[48], xs[48], num[32];
        snprintf(raw, sizeof raw, "%s %s", fmt3(r->raw, num, sizeof num), r->unit);
        snprintf(xs, sizeof xs, "%s %s", fmt3(r->xs, num, sizeof num), r->unit);
        printf("%-20s | %-9s | %14s | %14s | %5.2f  (%s is better)\n", r->workload, r->transport,
               raw, xs, r->xs / r->raw, r->lower_is_better ? "lower" : "higher");
    }
}

static void print_others(void) {
#if defined(__has_include)
#if __has_include(<zmq.h>)
    printf("libzmq: headers installed, not measured yet\n");
#else
    printf("libzmq: not installed\n");
#endif
#if __has_include(<nng/nng.h>)
    printf("nng: headers installed, not measured yet\n");
#else
    printf("nng: not installed\n");
#endif
#endif
}

static long env_long(const char *name, long fallback) {
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 10) : fallback;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int quick = env_long("BENCH_QUICK", 0) != 0;
    rounds = (int)env_long("BENCH_ROUNDS", quick ? 3 : 5);
    if (rounds < 1 || rounds > MAX_ROUNDS)
        die("BENCH_ROUNDS must be 1..%d", MAX_ROUNDS);
    set_placement(getenv("BENCH_CPUS"));

    /* Sizes: 1 GiB per bulk measurement; about `target` seconds for the others. */
    uint64_t bulk_bytes = quick ? 32 * MiB : GiB;
    double target = quick ? 0.02 : 1.0;
    uint64_t msg_probe = quick ? 2000 : 50000, rtt_probe = quick ? 500 : 5000;

    /* A watchdog, on top of the 30 s socket timeouts, so the bench always stops. */
    signal(SIGALRM, on_alarm);
    alarm(quick ? 60 : 600);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, on_signal);

    snprintf(tmpdir, sizeof tmpdir, "/tmp/xsocket-bench-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    atexit(remove_tmp);
    snprintf(unix_path, sizeof unix_path, "%s/bench.sock", tmpdir);

    printf("xsocket bench: loopback, sender and receiver in two threads of one process, ");
    if (placement == ANY_CPU)
        printf("placed by the scheduler (BENCH_CPUS=any)\n");
    else if (placement == TWO_CPUS)
        printf("on CPUs %d and %d (BENCH_CPUS=two)\n", cpu_main, cpu_peer);
    else
        printf("both on CPU %d (BENCH_CPUS=one)\n", cpu_main);
    printf("%d rounds per row, alternating xs / raw; the table shows medians%s\n", rounds,
           quick ? " (BENCH_QUICK: scaled down)" : "");
    printf("per-round values:\n");

    uint64_t t_start = now_ns();
    for (int t = 0; t < N_TRANSPORTS; t++) {
        const char *bulk_name[2] = {"bulk 64 KiB writes", NULL};
        bulk(&XS, t, 0, bulk_bytes / 16); /* warm-up, discarded */
        bulk(&RAW, t, 0, bulk_bytes / 16);
        run_rounds(bulk_name, t, bulk, 0, bulk_bytes, "GiB/s", GiB, 0);

        const size_t sizes[2] = {64, 1024};
        for (int i = 0; i < 2; i++) {
            const char *name[2] = {sizes[i] == 64 ? "msgs 64 B" : "msgs 1 KiB", NULL};
            uint64_t n = calibrate_rate(t, msgs, sizes[i], msg_probe, target);
            run_rounds(name, t, msgs, sizes[i], n, "kmsg/s", 1e3, 0);
        }

        /* Round trips: aim for `target` seconds from the probe's median. */
        const char *rtt_names[2] = {"rtt 64 B median", "rtt 64 B p99"};
        rtt(&XS, t, 0, rtt_probe); /* warm-up, discarded */
        double us = rtt(&RAW, t, 0, rtt_probe).v[0];
        uint64_t iters = (uint64_t)(target * 1e6 / (us > 1 ? us : 1));
        run_rounds(rtt_names, t, rtt, 0, iters < rtt_probe ? rtt_probe : iters, "us", 1, 1);
    }

    print_table();
    print_others();
    printf("total time %.1f s\n", (double)(now_ns() - t_start) / 1e9);
    return 0;
}
