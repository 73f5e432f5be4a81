/*
 * bench.c: xsocket (protocol 0) against the raw kernel socket, in the same run, and
 * against libzmq and nng where they are installed.
 *
 * Workloads, each over loopback TCP (127.0.0.1) and a Unix stream socket:
 *   bulk     64 KiB writes, 1 GiB per measurement; GiB/s
 *   msgs     64 B and 1 KiB messages, each a 4-byte length + payload written with one
 *            send call; the receiver reads 256 KiB at a time and parses; messages/s
 *   msgs MSG_MORE
 *            the same, but every send passes MSG_MORE except the last message of each
 *            burst of 4096 (and the last of the run), identically for raw and xs: the
 *            kernel still takes one syscall per message (TCP corks in the kernel, Unix
 *            ignores the flag); a library may cork in user space
 *   rtt      ping-pong of 64 B messages; median and p99 round trip in microseconds
 *
 * WebSocket (loopback TCP only), in a table of its own: xsocket SOCK_SEQPACKET sockets
 * with XS_PROTO_WS_RAW (frames, no HTTP handshake), the connecting end (the client,
 * which masks its frames) sending, the accepted end receiving one whole message per
 * xs_recv and checking its size and sequence number. Each row alternates four columns:
 * the kernel's TCP and xsocket's plain TCP running the msgs/bulk workloads above
 * (4-byte length prefix), the WebSocket socket, and libzmq (msgs rows, where built):
 *   ws bulk  64 KiB messages, 1 GiB per measurement; GiB/s
 *   ws msgs  64 B, 1 KiB and 64 KiB messages, one xs_send each; messages/s
 *   ws msgs MSG_MORE
 *            the same with MSG_MORE as in the msgs MSG_MORE rows (libzmq: its plain row)
 *   Full-WS msgs 64 B
 *            XS_PROTO_WS (after the HTTP Upgrade handshake, done in a thread's xs_accept)
 *
 * TLS (XS_PROTO_TLS, TLS 1.3 over loopback TCP), against xsocket's plain TCP, in a
 * table of its own; skipped when there is no openssl command:
 *   tls bulk the bulk workload over TLS (the server's handshake in a thread's xs_accept)
 *   tls conns / handshake
 *            connections per second, each a socket + connect (+ handshake) + a 1-byte echo
 *            + close, with a server thread doing xs_accept (the TLS handshake happens
 *            inside it) + echo + close; "full" sets XS_TLS_RESUMPTION 0 on the client,
 *            "resumed" checks XS_TLS_RESUMED on every connection (the bench fails if one
 *            is not). The handshake rows give the median XS_TLS_HANDSHAKE_US (client).
 * Certificates (an EC P-256 CA and a server certificate for 127.0.0.1) are made at start
 * with the openssl command line in a temporary directory, removed at exit.
 *
 * The same workload code runs against two tables of functions (struct api): RAW, the
 * kernel's own calls, and XS, xsocket's xs_ calls. Both ends of a connection use the
 * same table. Sender and receiver are two threads of this process; the connection is
 * set up before the clock starts. Rounds alternate xs, raw, libzmq, nng, xs, raw, ...
 * and the table shows the median over rounds. Message and round-trip counts are
 * calibrated per implementation so each measurement takes about 0.5 s (bulk: 1 GiB).
 * TCP_NODELAY is on for all.
 *
 * libzmq and nng (compiled in when <zmq.h> / <nng/nng.h> exist; link with -lzmq /
 * -lnng; -DBENCH_ZMQ=0 / -DBENCH_NNG=0 leave one out) run the msgs workloads without
 * MSG_MORE (PUSH -> PULL, one zmq_send / nng_send of the `size`-byte payload per
 * message, their own framing instead of the 4-byte length; the receiver checks each
 * message's size and sequence number) and rtt (PAIR sockets, 64 B), over
 * tcp://127.0.0.1 and ipc:// in the temporary directory, at their default queue
 * limits. Every wait has a 30 s timeout. libzmq moves data in its own I/O thread and
 * nng in its worker threads: those threads are placed on the bench's CPUs (below).
 *
 * CPU placement (BENCH_CPUS): "one" (default) pins both threads (and libzmq's and nng's
 * threads) to one CPU, which gives the steadiest numbers on a small or shared machine
 * (cross-CPU wake-ups in a VM vary by 3x from run to run); "two" puts the sender and
 * receiver on two CPUs and lets libzmq's and nng's threads use both; "any" leaves
 * placement to the scheduler.
 *
 * smux (XS_PROTO_SMUX over loopback TCP), in a table of its own: the bulk workload
 * (64 KiB sends, 1 GiB per measurement) on one kernel TCP connection, one xsocket TCP
 * connection, 1 stream of an smux session, and 16 streams of one session at once (each
 * 1/16 of the bytes): with a sender and a receiver thread per stream (blocking calls),
 * and with one xs_poll loop on each side. Rows give the aggregate throughput (target:
 * 1 stream >= 0.8x the kernel's TCP) and, for 16 streams, each stream's throughput
 * while all were running (bytes received from when every stream had data until the
 * first was done, over that time: min, mean, max, and the widest gap from the mean;
 * target within 20%), and the longest a receiver waited in one call (a stall shows).
 *
 * Environment: BENCH_QUICK=1 scales everything down for a smoke run (a few seconds);
 * BENCH_ROUNDS=n sets the rounds per row (default 5, quick 3); BENCH_CPUS as above;
 * BENCH_SMUX_ONLY=1 runs the smux rows alone, BENCH_WS_ONLY=1 the WebSocket rows alone.
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "xsocket.h"

/* libzmq and nng: measured when their headers are found (the Makefile then links them). */
#ifndef BENCH_ZMQ
#if defined(__has_include)
#if __has_include(<zmq.h>)
#define BENCH_ZMQ 1
#endif
#endif
#endif
#ifndef BENCH_ZMQ
#define BENCH_ZMQ 0
#endif

#ifndef BENCH_NNG
#if defined(__has_include)
#if __has_include(<nng/nng.h>)
#define BENCH_NNG 1
#endif
#endif
#endif
#ifndef BENCH_NNG
#define BENCH_NNG 0
#endif

#if BENCH_ZMQ
#include <zmq.h>
#endif
#if BENCH_NNG
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#endif

#define KiB 1024u
#define MiB (1024u * KiB)
#define GiB (1024ull * MiB)

#define BULK_CHUNK (64 * KiB) /* bytes per send in the bulk workload */
#define RECV_BUF (256 * KiB)  /* receive buffer of the message parser */
#define RTT_SIZE 64           /* ping-pong message size */
#define MORE_BURST 4096       /* msgs MSG_MORE: the last message of each burst goes without */
#define PEER_TIMEOUT_MS 30000 /* bound on every wait of a data call */
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
    int tls; /* XS_PROTO_TLS (TCP only): open_conn sets up certificates, accepts in a thread */
    int ws;  /* XS_PROTO_WS_RAW or XS_PROTO_WS: the ws_* workloads' SOCK_SEQPACKET sockets */
};

/* xs_send always adds MSG_NOSIGNAL; the kernel table does the same. */
static ssize_t k_send(int s, const void *b, size_t n, int f) { return send(s, b, n, f | MSG_NOSIGNAL); }
static const char *k_last_error(void) { return ""; }

static const struct api RAW = {
    "raw", socket, bind, listen, accept, connect, k_send, recv,
    setsockopt, getsockname, shutdown, close, k_last_error, 0, 0,
};

static const struct api XS = {
    "xsocket", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect, xs_send, xs_recv,
    xs_setsockopt, xs_getsockname, xs_shutdown, xs_close, xs_last_error, 0, 0,
};

/* xsocket with XS_PROTO_TLS: the same calls, TLS 1.3 over TCP (see "TLS" below). */
static const struct api XS_TLS = {
    "xsocket TLS", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect, xs_send, xs_recv,
    xs_setsockopt, xs_getsockname, xs_shutdown, xs_close, xs_last_error, 1, 0,
};

/* xsocket WebSocket, SOCK_SEQPACKET over TCP: Raw-WS (frames only) and Full-WS (with the
 * HTTP Upgrade handshake). The connecting end is the client, so what it sends is masked. */
static const struct api XS_WSRAW = {
    "xsocket Raw-WS", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect, xs_send, xs_recv,
    xs_setsockopt, xs_getsockname, xs_shutdown, xs_close, xs_last_error, 0, XS_PROTO_WS_RAW,
};

static const struct api XS_WSFULL = {
    "xsocket Full-WS", xs_socket, xs_bind, xs_listen, xs_accept, xs_connect, xs_send, xs_recv,
    xs_setsockopt, xs_getsockname, xs_shutdown, xs_close, xs_last_error, 0, XS_PROTO_WS,
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

/* TLS certificates (a CA and a server certificate for 127.0.0.1), made at start in their
 * own temporary directory; the paths are ready before any signal handler may need them. */
static const char *const CERT_FILES[] = {"ca.key",     "ca.pem",     "ca.srl",    "server.key",
                                         "server.csr", "server.ext", "server.pem"};
#define N_CERT_FILES (sizeof CERT_FILES / sizeof CERT_FILES[0])
static char cert_dir[64];
static char cert_path[N_CERT_FILES][128];

static void remove_tmp(void) {
    if (unix_path[0])
        unlink(unix_path);
    if (tmpdir[0])
        rmdir(tmpdir);
    if (cert_dir[0]) {
        for (size_t i = 0; i < N_CERT_FILES; i++)
            unlink(cert_path[i]);
        rmdir(cert_dir);
    }
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
/* ===== TLS setup ===================================================================== */

/* The PEM files, in memory (XS_TLS_*_PEM), once make_certificates succeeded. */
struct pem {
    char *data;
    size_t len;
};
static struct pem ca_pem, server_pem, server_key;

static struct pem read_pem(const char *name) {
    char path[192];
    snprintf(path, sizeof path, "%s/%s", cert_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("TLS: %s: %s", path, strerror(errno));
    struct pem p = {xmalloc(16 * KiB), 0};
    p.len = fread(p.data, 1, 16 * KiB, f);
    fclose(f);
    if (p.len == 0 || p.len == 16 * KiB)
        die("TLS: %s: empty or too large", path);
    return p;
}

/* Runs a shell command (output discarded); stops the bench if it fails. */
static void sh(const char *cmd) {
    char full[1536];
    snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", cert_dir, cmd);
    int rc = system(full);
    if (rc != 0)
        die("TLS: certificate command failed (status %d): %s", rc, full);
}

/*
 * Makes an EC P-256 CA and a server certificate for 127.0.0.1 signed by it with the
 * openssl command line, as c-tests/test_tls.c does, and reads them into memory.
 * Returns 0 (nothing made) when there is no openssl command.
 */
static int make_certificates(void) {
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        return 0;
    snprintf(cert_dir, sizeof cert_dir, "/tmp/xsocket-bench-tls-XXXXXX");
    if (!mkdtemp(cert_dir)) {
        cert_dir[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    for (size_t i = 0; i < N_CERT_FILES; i++)
        snprintf(cert_path[i], sizeof cert_path[i], "%s/%s", cert_dir, CERT_FILES[i]);
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
       "-subj /CN=xsocket-bench-ca -keyout ca.key -out ca.pem");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=server "
       "-keyout server.key -out server.csr");
    sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext && "
       "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile server.ext -out server.pem");
    ca_pem = read_pem("ca.pem");
    server_pem = read_pem("server.pem");
    server_key = read_pem("server.key");
    return 1;
}

static void tls_set(int s, int name, const void *val, size_t len, const char *what) {
    ok(xs_setsockopt(s, XS_SOL_TLS, name, val, (socklen_t)len), &XS_TLS, what);
}

/* A TLS listener's certificate and key. */
static void tls_server_options(int l) {
    tls_set(l, XS_TLS_CERT_PEM, server_pem.data, server_pem.len, "XS_TLS_CERT_PEM");
    tls_set(l, XS_TLS_KEY_PEM, server_key.data, server_key.len, "XS_TLS_KEY_PEM");
}

/* A TLS client trusts our CA; resumption on or off. */
static void tls_client_options(int s, int resumption) {
    tls_set(s, XS_TLS_CA_PEM, ca_pem.data, ca_pem.len, "XS_TLS_CA_PEM");
    tls_set(s, XS_TLS_RESUMPTION, &resumption, sizeof resumption, "XS_TLS_RESUMPTION");
}

static int tls_int_opt(int s, int name, const char *what) {
    int v = -1;
    socklen_t len = sizeof v;
    ok(xs_getsockopt(s, XS_SOL_TLS, name, &v, &len), &XS_TLS, what);
    return v;
}

static int64_t tls_int64_opt(int s, int name, const char *what) {
    int64_t v = -1;
    socklen_t len = sizeof v;
    ok(xs_getsockopt(s, XS_SOL_TLS, name, &v, &len), &XS_TLS, what);
    return v;
}

/* 30 s receive and send timeouts. */
static void set_timeouts(const struct api *A, int s) {
    struct timeval tv = {.tv_sec = PEER_TIMEOUT_MS / 1000};
    ok(A->setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), A, "SO_RCVTIMEO");
    ok(A->setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), A, "SO_SNDTIMEO");
}

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg);

/* A blocking accept in a thread: with TLS the handshake happens inside it. */
struct acceptor {
    const struct api *A;
    int l, sid;
};

static void *accept_one(void *arg) {
    struct acceptor *a = arg;
    a->sid = ok(a->A->accept(a->l, NULL, NULL), a->A, "accept (TLS handshake)");
    return NULL;
}

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
    int proto = A->tls ? XS_PROTO_TLS : 0;
    if (A->tls && t != TCP)
        die("%s: the bench runs TLS over TCP only", A->name);

    int l = ok(A->socket(family, SOCK_STREAM, proto), A, "socket");
    if (A->tls)
        tls_server_options(l);
    ok(A->bind(l, (struct sockaddr *)&ss, len), A, "bind");
    ok(A->listen(l, 4), A, "listen");
    len = sizeof ss;
    ok(A->getsockname(l, (struct sockaddr *)&ss, &len), A, "getsockname");

    struct conn c;
    c.a = ok(A->socket(family, SOCK_STREAM, proto), A, "socket");
    if (A->tls) {
        /* The handshake needs both ends at once: the server's runs in a thread's accept. */
        tls_client_options(c.a, 1);
        set_timeouts(A, c.a);
        set_timeouts(A, l);
        struct acceptor acc = {A, l, -1};
        pthread_t th;
        start_thread(&th, accept_one, &acc);
        ok(A->connect(c.a, (struct sockaddr *)&ss, len), A, "connect (TLS handshake)");
        pthread_join(th, NULL);
        c.b = acc.sid;
    } else {
        ok(A->connect(c.a, (struct sockaddr *)&ss, len), A, "connect");
        c.b = ok(A->accept(l, NULL, NULL), A, "accept");
    }
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

static void send_flags(const struct api *A, int s, const void *buf, size_t len, int flags) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = ok(A->send(s, p, len, flags), A, "send");
        p += n;
        len -= (size_t)n;
    }
}

static void send_all(const struct api *A, int s, const void *buf, size_t len) {
    send_flags(A, s, buf, len, 0);
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

/*
 * Messages per second for `count` messages of `size` bytes (size >= 4). With `more`,
 * every send passes MSG_MORE except the last message of each burst of MORE_BURST and
 * the last message of the run.
 */
static struct result msgs_run(const struct api *A, enum transport t, size_t size,
                              uint64_t count, int more) {
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
        int last = (i + 1) % MORE_BURST == 0 || i + 1 == count;
        /* one send call unless the kernel splits it */
        send_flags(A, c.a, frame, 4 + size, more && !last ? MSG_MORE : 0);
    }
    pthread_join(th, NULL);

    free(frame);
    close_conn(A, c);
    return (struct result){{(double)count / ((double)(j.t_end - t0) / 1e9), 0}};
}

static struct result msgs(const struct api *A, enum transport t, size_t size, uint64_t count) {
    return msgs_run(A, t, size, count, 0);
}

static struct result msgs_more(const struct api *A, enum transport t, size_t size,
                               uint64_t count) {
    return msgs_run(A, t, size, count, 1);
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

/* Median and p99 of `n` round trips (ns) in microseconds; frees `samples`. */
static struct result rtt_result(uint64_t *samples, uint64_t n) {
    qsort(samples, n, sizeof *samples, cmp_u64);
    struct result r = {{samples[n / 2] / 1e3, samples[(n * 99 + 99) / 100 - 1] / 1e3}};
    free(samples);
    return r;
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

    return rtt_result(samples, iters);
}

/* --- conns: connection set-up (TLS handshakes) --- */

/*
 * One connection of the conns workload: socket, connect (with TLS: the full or resumed
 * handshake), one 1-byte echo, close. Returns the handshake time from
 * XS_TLS_HANDSHAKE_US (0 without TLS); `resumed` gets XS_TLS_RESUMED.
 */
static int64_t conn_cycle(const struct api *A, const struct sockaddr_in *addr, int resumption,
                          char byte, int *resumed) {
    int s = ok(A->socket(AF_INET, SOCK_STREAM, A->tls ? XS_PROTO_TLS : 0), A, "socket");
    if (A->tls)
        tls_client_options(s, resumption);
    set_timeouts(A, s);
    set_int(A, s, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    ok(A->connect(s, (const struct sockaddr *)addr, sizeof *addr), A, "connect");
    char reply;
    send_all(A, s, &byte, 1);
    if (!recv_exact(A, s, &reply, 1) || reply != byte)
        die("%s: conns: no echo", A->name);
    int64_t us = 0;
    *resumed = 0;
    if (A->tls) {
        *resumed = tls_int_opt(s, XS_TLS_RESUMED, "XS_TLS_RESUMED");
        us = tls_int64_opt(s, XS_TLS_HANDSHAKE_US, "XS_TLS_HANDSHAKE_US");
    }
    ok(A->close(s), A, "close");
    return us;
}

/* The server of the conns workload: accept (the TLS handshake happens inside), echo one
 * byte, close; until the byte is 'q'. */
static void *conn_server(void *arg) {
    struct job *j = arg;
    for (;;) {
        int s = ok(j->A->accept(j->sid, NULL, NULL), j->A, "accept");
        set_timeouts(j->A, s);
        char byte;
        if (!recv_exact(j->A, s, &byte, 1))
            die("%s: conns: the client sent nothing", j->A->name);
        send_all(j->A, s, &byte, 1);
        ok(j->A->close(s), j->A, "close (server)");
        if (byte == 'q')
            break;
    }
    return NULL;
}

/*
 * Connections per second over `count` connections to a fresh listener, and the median
 * client-side handshake time in microseconds (TLS; 0 without). `resumed` 0: full
 * handshakes (XS_TLS_RESUMPTION 0 on the client); 1: resumed ones, each checked with
 * XS_TLS_RESUMED. Untimed connections first let the client hold tickets of this
 * listener (each listener has its own ticket key).
 */
static struct result conns(const struct api *A, enum transport t, size_t resumed,
                           uint64_t count) {
    int proto = A->tls ? XS_PROTO_TLS : 0;
    int l = ok(A->socket(AF_INET, SOCK_STREAM, proto), A, "socket");
    if (A->tls)
        tls_server_options(l);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(A->bind(l, (struct sockaddr *)&addr, sizeof addr), A, "bind");
    ok(A->listen(l, 64), A, "listen");
    socklen_t len = sizeof addr;
    ok(A->getsockname(l, (struct sockaddr *)&addr, &len), A, "getsockname");
    set_timeouts(A, l);

    struct job j = {.A = A, .sid = l};
    pthread_t th;
    start_thread(&th, conn_server, &j);

    int was_resumed = 0, tries = 0;
    do {
        conn_cycle(A, &addr, 1, 'p', &was_resumed);
        tries++;
    } while (A->tls && resumed && !was_resumed && tries < 8);
    if (A->tls && resumed && !was_resumed)
        die("%s: conns: %d connections to one listener, none resumed", A->name, tries);

    int64_t *us = xmalloc(count * sizeof *us);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        us[i] = conn_cycle(A, &addr, (int)resumed, i + 1 == count ? 'q' : 'x', &was_resumed);
        if (A->tls && was_resumed != (int)resumed)
            die("%s: conns: connection %llu of %llu: XS_TLS_RESUMED is %d, expected %d",
                A->name, (unsigned long long)i + 1, (unsigned long long)count, was_resumed,
                (int)resumed);
    }
    pthread_join(th, NULL);
    uint64_t t1 = now_ns();
    ok(A->close(l), A, "close listener");

    qsort(us, count, sizeof *us, cmp_u64); /* the values are >= 0 */
    double median_us = (double)us[count / 2];
    free(us);
    return (struct result){{(double)count / ((double)(t1 - t0) / 1e9), median_us}};
}


/* --- ws: WebSocket messages, one xs_send per message --- */

/*
 * A connected WebSocket pair over loopback TCP, SOCK_SEQPACKET with A->ws: `a` the
 * client (it connects and masks what it sends), `b` the server. The accept runs in a
 * thread (Full-WS: the server's half of the handshake happens inside it), with TCP_NODELAY
 * and 30 s timeouts on both ends.
 */
static struct conn ws_open_conn(const struct api *A) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = ok(A->socket(AF_INET, SOCK_SEQPACKET, A->ws), A, "socket (listener)");
    ok(A->bind(l, (struct sockaddr *)&addr, sizeof addr), A, "bind");
    ok(A->listen(l, 4), A, "listen");
    socklen_t len = sizeof addr;
    ok(A->getsockname(l, (struct sockaddr *)&addr, &len), A, "getsockname");
    set_timeouts(A, l);

    struct conn c;
    c.a = ok(A->socket(AF_INET, SOCK_SEQPACKET, A->ws), A, "socket");
    set_timeouts(A, c.a);
    struct acceptor acc = {A, l, -1};
    pthread_t th;
    start_thread(&th, accept_one, &acc);
    ok(A->connect(c.a, (struct sockaddr *)&addr, sizeof addr), A, "connect");
    pthread_join(th, NULL);
    c.b = acc.sid;
    ok(A->close(l), A, "close listener");
    set_timeouts(A, c.b);
    set_int(A, c.a, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    set_int(A, c.b, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    return c;
}

/* Receives j->count whole messages of j->size bytes (one xs_recv each), checking the
 * size and the sequence number in the first 4 bytes. */
static void *ws_msg_receiver(void *arg) {
    struct job *j = arg;
    char *buf = xmalloc(j->size + 1);
    for (uint64_t seen = 0; seen < j->count; seen++) {
        ssize_t n = ok(j->A->recv(j->sid, buf, j->size + 1, 0), j->A, "recv");
        if (n == 0)
            die("%s: ws: end of stream after %llu of %llu messages", j->A->name,
                (unsigned long long)seen, (unsigned long long)j->count);
        if ((size_t)n != j->size)
            die("%s: ws: message %llu has length %zd, expected %zu", j->A->name,
                (unsigned long long)seen, n, j->size);
        uint32_t seq;
        memcpy(&seq, buf, 4);
        if (seq != (uint32_t)seen)
            die("%s: ws: message %llu carries sequence number %u", j->A->name,
                (unsigned long long)seen, seq);
    }
    j->t_end = now_ns();
    free(buf);
    return NULL;
}

/*
 * Messages per second for `count` binary messages of `size` bytes (size >= 4), one
 * xs_send each, client -> server. With `more`, MSG_MORE on every send but the last of
 * each burst of MORE_BURST and the last of the run, as in msgs_run.
 */
static struct result ws_msgs_run(const struct api *A, size_t size, uint64_t count, int more) {
    struct conn c = ws_open_conn(A);
    struct job j = {.A = A, .sid = c.b, .size = size, .count = count};
    char *payload = xmalloc(size);
    memset(payload, 0xa5, size);
    pthread_t th;
    start_thread(&th, ws_msg_receiver, &j);

    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint32_t seq = (uint32_t)i;
        memcpy(payload, &seq, 4);
        int last = (i + 1) % MORE_BURST == 0 || i + 1 == count;
        ssize_t n = ok(A->send(c.a, payload, size, more && !last ? MSG_MORE : 0), A, "send");
        if ((size_t)n != size)
            die("%s: ws: send took %zd of %zu bytes", A->name, n, size);
    }
    pthread_join(th, NULL);

    free(payload);
    close_conn(A, c);
    return (struct result){{(double)count / ((double)(j.t_end - t0) / 1e9), 0}};
}

static struct result ws_msgs(const struct api *A, enum transport t, size_t size,
                             uint64_t count) {
    return ws_msgs_run(A, size, count, 0);
}

static struct result ws_msgs_more(const struct api *A, enum transport t, size_t size,
                                  uint64_t count) {
    return ws_msgs_run(A, size, count, 1);
}

/* Bytes per second for `bytes` (a multiple of 64 KiB) sent as 64 KiB messages. */
static struct result ws_bulk(const struct api *A, enum transport t, size_t unused,
                             uint64_t bytes) {
    struct result r = ws_msgs_run(A, BULK_CHUNK, bytes / BULK_CHUNK, 0);
    r.v[0] *= BULK_CHUNK;
    return r;
}

/* ===== libzmq and nng ============================================================== */

#if BENCH_ZMQ || BENCH_NNG
/* The peer thread of a libzmq or nng measurement. */
struct mjob {
#if BENCH_ZMQ
    void *zs;        /* libzmq socket */
#endif
#if BENCH_NNG
    nng_socket ns;   /* nng socket */
#endif
    size_t size;     /* message size */
    uint64_t count;  /* messages */
    uint64_t t_end;  /* when the receiver had everything (CLOCK_MONOTONIC, ns) */
};
#endif

/* ===== libzmq ====================================================================== */

/*
 * The same msgs and rtt workloads through libzmq: each measurement gets its own context
 * (and so its own I/O thread), a PUSH -> PULL pair for msgs and a PAIR pair for rtt,
 * all with ZMQ_LINGER 0 and 30 s ZMQ_SNDTIMEO / ZMQ_RCVTIMEO. The `A` argument is unused.
 */
#if BENCH_ZMQ
static long zok(long rc, const char *what) {
    if (rc < 0)
        die("libzmq: %s: %s", what, zmq_strerror(zmq_errno()));
    return rc;
}

/* A connected pair of libzmq sockets: `a` connects (and sends), `b` binds. */
struct zconn {
    void *ctx, *a, *b;
};

static void *zsocket(void *ctx, int type) {
    void *s = zmq_socket(ctx, type);
    if (!s)
        zok(-1, "zmq_socket");
    int linger = 0, timeout = PEER_TIMEOUT_MS;
    zok(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger), "ZMQ_LINGER");
    zok(zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout), "ZMQ_RCVTIMEO");
    zok(zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout), "ZMQ_SNDTIMEO");
    return s;
}

static struct zconn zmq_open_conn(enum transport t, int type_a, int type_b) {
    struct zconn z;
    z.ctx = zmq_ctx_new();
    if (!z.ctx)
        zok(-1, "zmq_ctx_new");
    /* The I/O thread starts with the first socket: put it on the bench's CPU(s). */
    if (placement != ANY_CPU) {
        zok(zmq_ctx_set(z.ctx, ZMQ_THREAD_AFFINITY_CPU_ADD, cpu_main), "zmq_ctx_set affinity");
        if (cpu_peer != cpu_main)
            zok(zmq_ctx_set(z.ctx, ZMQ_THREAD_AFFINITY_CPU_ADD, cpu_peer), "zmq_ctx_set affinity");
    }
    z.b = zsocket(z.ctx, type_b);
    z.a = zsocket(z.ctx, type_a);
    char ep[256];
    if (t == TCP) {
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
    } else {
        unlink(unix_path);
        snprintf(ep, sizeof ep, "ipc://%s", unix_path);
    }
    zok(zmq_bind(z.b, ep), "zmq_bind");
    size_t len = sizeof ep;
    zok(zmq_getsockopt(z.b, ZMQ_LAST_ENDPOINT, ep, &len), "ZMQ_LAST_ENDPOINT");
    zok(zmq_connect(z.a, ep), "zmq_connect");
    return z;
}

static void zmq_close_conn(enum transport t, struct zconn z) {
    zok(zmq_close(z.a), "zmq_close");
    zok(zmq_close(z.b), "zmq_close");
    while (zmq_ctx_term(z.ctx) != 0)
        if (zmq_errno() != EINTR)
            zok(-1, "zmq_ctx_term");
    if (t == UNIX_STREAM)
        unlink(unix_path);
}

static void *zmq_msg_receiver(void *arg) {
    struct mjob *j = arg;
    char *buf = xmalloc(j->size + 1);
    for (uint64_t seen = 0; seen < j->count; seen++) {
        long n = zok(zmq_recv(j->zs, buf, j->size + 1, 0), "msgs: zmq_recv");
        if ((size_t)n != j->size)
            die("libzmq: msgs: message %llu has length %ld, expected %zu",
                (unsigned long long)seen, n, j->size);
        uint32_t seq;
        memcpy(&seq, buf, 4);
        if (seq != (uint32_t)seen)
            die("libzmq: msgs: message %llu carries sequence number %u",
                (unsigned long long)seen, seq);
    }
    j->t_end = now_ns();
    free(buf);
    return NULL;
}

/* Messages per second: `count` zmq_send calls of `size` bytes, PUSH -> PULL. */
static struct result zmq_msgs(const struct api *A, enum transport t, size_t size,
                              uint64_t count) {
    struct zconn z = zmq_open_conn(t, ZMQ_PUSH, ZMQ_PULL);
    /* An empty message first, so the connection is up before the clock starts. */
    char c;
    zok(zmq_send(z.a, "", 0, 0), "msgs: zmq_send");
    if (zok(zmq_recv(z.b, &c, 1, 0), "msgs: zmq_recv") != 0)
        die("libzmq: msgs: unexpected first message");

    struct mjob j = {.zs = z.b, .size = size, .count = count};
    char *payload = xmalloc(size);
    memset(payload, 0xa5, size);
    pthread_t th;
    start_thread(&th, zmq_msg_receiver, &j);

    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint32_t seq = (uint32_t)i;
        memcpy(payload, &seq, 4);
        zok(zmq_send(z.a, payload, size, 0), "msgs: zmq_send");
    }
    pthread_join(th, NULL);

    free(payload);
    zmq_close_conn(t, z);
    return (struct result){{(double)count / ((double)(j.t_end - t0) / 1e9), 0}};
}

/* Echoes every message until an empty one arrives. */
static void *zmq_echo_peer(void *arg) {
    struct mjob *j = arg;
    char buf[RTT_SIZE + 1];
    for (;;) {
        long n = zok(zmq_recv(j->zs, buf, sizeof buf, 0), "rtt: zmq_recv (echo)");
        if (n == 0)
            break;
        if (n != RTT_SIZE)
            die("libzmq: rtt: echo got %ld bytes", n);
        zok(zmq_send(j->zs, buf, (size_t)n, 0), "rtt: zmq_send (echo)");
    }
    return NULL;
}

/* Median and p99 round trip in microseconds over `iters` ping-pongs, PAIR <-> PAIR. */
static struct result zmq_rtt(const struct api *A, enum transport t, size_t size,
                             uint64_t iters) {
    struct zconn z = zmq_open_conn(t, ZMQ_PAIR, ZMQ_PAIR);
    struct mjob j = {.zs = z.b};
    pthread_t th;
    start_thread(&th, zmq_echo_peer, &j);

    char msg[RTT_SIZE], reply[RTT_SIZE + 1];
    memset(msg, 0x3c, sizeof msg);
    uint64_t *samples = xmalloc(iters * sizeof *samples);
    for (uint64_t i = 0; i < 200 + iters; i++) { /* 200 to let the threads settle */
        uint64_t t0 = now_ns();
        zok(zmq_send(z.a, msg, sizeof msg, 0), "rtt: zmq_send");
        if (zok(zmq_recv(z.a, reply, sizeof reply, 0), "rtt: zmq_recv") != RTT_SIZE)
            die("libzmq: rtt: reply of the wrong size");
        if (i >= 200)
            samples[i - 200] = now_ns() - t0;
    }
    zok(zmq_send(z.a, "", 0, 0), "rtt: zmq_send"); /* the peer stops */
    pthread_join(th, NULL);
    zmq_close_conn(t, z);
    return rtt_result(samples, iters);
}
#endif /* BENCH_ZMQ */

/* ===== nng ========================================================================= */

/*
 * The same through nng: push0 -> pull0 for msgs, pair0 <-> pair0 for rtt, 30 s
 * NNG_OPT_SENDTIMEO / NNG_OPT_RECVTIMEO. nng's worker threads are process-wide and
 * start with the first socket (nng_start); nng_fini stops them at the end.
 */
#if BENCH_NNG
static void nok(int rv, const char *what) {
    if (rv != 0)
        die("nng: %s: %s", what, nng_strerror(rv));
}

/* Starts nng's threads from this (main) thread, with the affinity they should keep. */
static void nng_start(void) {
    static int started;
    if (started)
        return;
    started = 1;
    cpu_set_t set;
    if (placement == TWO_CPUS) { /* let them run on both CPUs, while main stays on one */
        CPU_ZERO(&set);
        CPU_SET(cpu_main, &set);
        CPU_SET(cpu_peer, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    nng_socket s;
    nok(nng_pair0_open(&s), "nng_pair0_open");
    nok(nng_close(s), "nng_close");
    if (placement == TWO_CPUS) {
        CPU_ZERO(&set);
        CPU_SET(cpu_main, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
}

/* A connected pair of nng sockets: `a` dials (and sends), `b` listens. */
struct nconn {
    nng_socket a, b;
};

static struct nconn nng_open_conn(enum transport t, int (*open_a)(nng_socket *),
                                  int (*open_b)(nng_socket *)) {
    nng_start();
    struct nconn n;
    nok(open_b(&n.b), "open socket");
    nok(open_a(&n.a), "open socket");
    nng_socket ends[2] = {n.a, n.b};
    for (int i = 0; i < 2; i++) {
        nok(nng_socket_set_ms(ends[i], NNG_OPT_RECVTIMEO, PEER_TIMEOUT_MS), "NNG_OPT_RECVTIMEO");
        nok(nng_socket_set_ms(ends[i], NNG_OPT_SENDTIMEO, PEER_TIMEOUT_MS), "NNG_OPT_SENDTIMEO");
    }
    char url[256];
    nng_listener l;
    if (t == TCP) {
        nok(nng_listen(n.b, "tcp://127.0.0.1:0", &l, 0), "nng_listen");
        int port;
        nok(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), "NNG_OPT_TCP_BOUND_PORT");
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    } else {
        unlink(unix_path);
        snprintf(url, sizeof url, "ipc://%s", unix_path);
        nok(nng_listen(n.b, url, &l, 0), "nng_listen");
    }
    nok(nng_dial(n.a, url, NULL, 0), "nng_dial"); /* synchronous: connected on return */
    return n;
}

static void nng_close_conn(enum transport t, struct nconn n) {
    nok(nng_close(n.a), "nng_close");
    nok(nng_close(n.b), "nng_close");
    if (t == UNIX_STREAM)
        unlink(unix_path);
}

static void *nng_msg_receiver(void *arg) {
    struct mjob *j = arg;
    char *buf = xmalloc(j->size + 1);
    for (uint64_t seen = 0; seen < j->count; seen++) {
        size_t n = j->size + 1;
        nok(nng_recv(j->ns, buf, &n, 0), "msgs: nng_recv");
        if (n != j->size)
            die("nng: msgs: message %llu has length %zu, expected %zu",
                (unsigned long long)seen, n, j->size);
        uint32_t seq;
        memcpy(&seq, buf, 4);
        if (seq != (uint32_t)seen)
            die("nng: msgs: message %llu carries sequence number %u",
                (unsigned long long)seen, seq);
    }
    j->t_end = now_ns();
    free(buf);
    return NULL;
}

/* Messages per second: `count` nng_send calls of `size` bytes, push0 -> pull0. */
static struct result nng_msgs(const struct api *A, enum transport t, size_t size,
                              uint64_t count) {
    struct nconn n = nng_open_conn(t, nng_push0_open, nng_pull0_open);
    /* An empty message first, so the pipe is up at both ends before the clock starts. */
    char c;
    size_t len = sizeof c;
    nok(nng_send(n.a, &c, 0, 0), "msgs: nng_send");
    nok(nng_recv(n.b, &c, &len, 0), "msgs: nng_recv");
    if (len != 0)
        die("nng: msgs: unexpected first message");

    struct mjob j = {.ns = n.b, .size = size, .count = count};
    char *payload = xmalloc(size);
    memset(payload, 0xa5, size);
    pthread_t th;
    start_thread(&th, nng_msg_receiver, &j);

    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint32_t seq = (uint32_t)i;
        memcpy(payload, &seq, 4);
        nok(nng_send(n.a, payload, size, 0), "msgs: nng_send");
    }
    pthread_join(th, NULL);

    free(payload);
    nng_close_conn(t, n);
    return (struct result){{(double)count / ((double)(j.t_end - t0) / 1e9), 0}};
}

/* Echoes every message until an empty one arrives. */
static void *nng_echo_peer(void *arg) {
    struct mjob *j = arg;
    char buf[RTT_SIZE + 1];
    for (;;) {
        size_t n = sizeof buf;
        nok(nng_recv(j->ns, buf, &n, 0), "rtt: nng_recv (echo)");
        if (n == 0)
            break;
        if (n != RTT_SIZE)
            die("nng: rtt: echo got %zu bytes", n);
        nok(nng_send(j->ns, buf, n, 0), "rtt: nng_send (echo)");
    }
    return NULL;
}

/* Median and p99 round trip in microseconds over `iters` ping-pongs, pair0 <-> pair0. */
static struct result nng_rtt(const struct api *A, enum transport t, size_t size,
                             uint64_t iters) {
    struct nconn n = nng_open_conn(t, nng_pair0_open, nng_pair0_open);
    struct mjob j = {.ns = n.b};
    pthread_t th;
    start_thread(&th, nng_echo_peer, &j);

    char msg[RTT_SIZE], reply[RTT_SIZE + 1];
    memset(msg, 0x3c, sizeof msg);
    uint64_t *samples = xmalloc(iters * sizeof *samples);
    for (uint64_t i = 0; i < 200 + iters; i++) { /* 200 to let the threads settle */
        size_t len = sizeof reply;
        uint64_t t0 = now_ns();
        nok(nng_send(n.a, msg, sizeof msg, 0), "rtt: nng_send");
        nok(nng_recv(n.a, reply, &len, 0), "rtt: nng_recv");
        if (len != RTT_SIZE)
            die("nng: rtt: reply of %zu bytes", len);
        if (i >= 200)
            samples[i - 200] = now_ns() - t0;
    }
    nok(nng_send(n.a, msg, 0, 0), "rtt: nng_send"); /* the peer stops */
    pthread_join(th, NULL);
    nng_close_conn(t, n);
    return rtt_result(samples, iters);
}
#endif /* BENCH_NNG */

/* ===== smux: streams on one session ================================================ */

#define SMUX_MAX_STREAMS 16

/* One measurement of streams on one smux session (client -> server). */
struct smux_run {
    int n;                                 /* streams */
    int threads;                           /* a sender and a receiver thread per stream */
    uint64_t per_stream;                   /* bytes each stream carries */
    int a[SMUX_MAX_STREAMS], b[SMUX_MAX_STREAMS]; /* client and server ends */
    pthread_barrier_t start;
    uint64_t t0;
    _Atomic uint64_t got[SMUX_MAX_STREAMS]; /* bytes each receiver has so far */
    _Atomic int all_started;                /* every stream has received something */
    uint64_t start_snap[SMUX_MAX_STREAMS]; /* got[] then */
    uint64_t t_start;
    _Atomic int first_done;                 /* a stream has all its bytes */
    uint64_t snap[SMUX_MAX_STREAMS];       /* got[] when the first stream was done */
    uint64_t t_snap;
    _Atomic uint64_t max_wait;              /* the longest wait of one recv or poll (ns) */
};

/* Notes how long a receiver waited for data (a stall shows here). */
static void smux_waited(struct smux_run *r, uint64_t since) {
    uint64_t d = now_ns() - since, cur = atomic_load(&r->max_wait);
    while (d > cur && !atomic_compare_exchange_weak(&r->max_wait, &cur, d)) {
    }
}

struct smux_worker {
    struct smux_run *run;
    int i;
};

/* Once every stream has received something: the counts, where the per-stream figures
 * start (so threads that start late do not count as slow streams). */
static void smux_check_started(struct smux_run *r) {
    for (int k = 0; k < r->n; k++)
        if (atomic_load(&r->got[k]) == 0)
            return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&r->all_started, &expected, 1))
        return;
    r->t_start = now_ns();
    for (int k = 0; k < r->n; k++)
        r->start_snap[k] = atomic_load(&r->got[k]);
}

/* When the first stream has all its bytes: every stream's count so far, where the
 * per-stream figures end (all streams were running until then). */
static void smux_first_done(struct smux_run *r) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&r->first_done, &expected, 1))
        return;
    r->t_snap = now_ns();
    for (int k = 0; k < r->n; k++)
        r->snap[k] = atomic_load(&r->got[k]);
}

static void smux_recv_bytes(struct smux_run *r, int i, char *buf, ssize_t n) {
    (void)buf;
    if (n == 0)
        die("smux: stream %d ended after %llu of %llu bytes", i,
            (unsigned long long)atomic_load(&r->got[i]), (unsigned long long)r->per_stream);
    uint64_t got = atomic_fetch_add(&r->got[i], (uint64_t)n) + (uint64_t)n;
    if (!atomic_load(&r->all_started))
        smux_check_started(r);
    if (got > r->per_stream)
        die("smux: stream %d got %llu bytes for %llu", i, (unsigned long long)got,
            (unsigned long long)r->per_stream);
    if (got == r->per_stream)
        smux_first_done(r);
}

static void *smux_receiver(void *arg) {
    struct smux_worker *w = arg;
    struct smux_run *r = w->run;
    char *buf = xmalloc(BULK_CHUNK);
    pthread_barrier_wait(&r->start);
    while (atomic_load(&r->got[w->i]) < r->per_stream) {
        uint64_t t = now_ns();
        ssize_t n = ok(xs_recv(r->b[w->i], buf, BULK_CHUNK, 0), &XS, "smux recv");
        smux_waited(r, t);
        smux_recv_bytes(r, w->i, buf, n);
    }
    free(buf);
    return NULL;
}

static void *smux_sender(void *arg) {
    struct smux_worker *w = arg;
    struct smux_run *r = w->run;
    char *buf = xmalloc(BULK_CHUNK);
    memset(buf, 0x5a, BULK_CHUNK);
    pthread_barrier_wait(&r->start);
    for (uint64_t sent = 0; sent < r->per_stream; sent += BULK_CHUNK)
        send_all(&XS, r->a[w->i], buf, BULK_CHUNK);
    free(buf);
    return NULL;
}

/* All streams in two threads: the receiver thread xs_polls the server ends, this one the
 * client ends, 64 KiB per send or receive, round robin over the ready streams. */
static void *smux_poll_receiver(void *arg) {
    struct smux_run *r = arg;
    char *buf = xmalloc(BULK_CHUNK);
    struct pollfd pfd[SMUX_MAX_STREAMS];
    pthread_barrier_wait(&r->start);
    for (;;) {
        int open = 0;
        for (int i = 0; i < r->n; i++) {
            int more = atomic_load(&r->got[i]) < r->per_stream;
            pfd[i] = (struct pollfd){.fd = more ? r->b[i] : -1, .events = POLLIN};
            open += more;
        }
        if (!open)
            break;
        uint64_t t = now_ns();
        if (ok(xs_poll(pfd, (nfds_t)r->n, PEER_TIMEOUT_MS), &XS, "smux poll") == 0)
            die("smux: receiver: no data for %d ms", PEER_TIMEOUT_MS);
        smux_waited(r, t);
        for (int i = 0; i < r->n; i++) {
            if (!pfd[i].revents)
                continue;
            ssize_t n = xs_recv(r->b[i], buf, BULK_CHUNK, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            smux_recv_bytes(r, i, buf, ok(n, &XS, "smux recv"));
        }
    }
    free(buf);
    return NULL;
}

static void smux_poll_send(struct smux_run *r) {
    char *buf = xmalloc(BULK_CHUNK);
    memset(buf, 0x5a, BULK_CHUNK);
    uint64_t sent[SMUX_MAX_STREAMS] = {0};
    struct pollfd pfd[SMUX_MAX_STREAMS];
    for (;;) {
        int open = 0;
        for (int i = 0; i < r->n; i++) {
            int more = sent[i] < r->per_stream;
            pfd[i] = (struct pollfd){.fd = more ? r->a[i] : -1, .events = POLLOUT};
            open += more;
        }
        if (!open)
            break;
        if (ok(xs_poll(pfd, (nfds_t)r->n, PEER_TIMEOUT_MS), &XS, "smux poll") == 0)
            die("smux: sender: no window for %d ms", PEER_TIMEOUT_MS);
        for (int i = 0; i < r->n; i++) {
            if (!pfd[i].revents)
                continue;
            uint64_t left = r->per_stream - sent[i];
            size_t len = left < BULK_CHUNK ? (size_t)left : BULK_CHUNK;
            ssize_t n = xs_send(r->a[i], buf, len, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            sent[i] += (uint64_t)ok(n, &XS, "smux send");
        }
    }
    free(buf);
}

/* Per-stream figures of the last smux_bulk run: bytes/s of the slowest and fastest
 * stream while all were running, and the mean; the longest wait for data (s). */
static double smux_last_min, smux_last_max, smux_last_mean, smux_last_wait;

/*
 * `bytes` (split evenly) over `n` streams of one smux session on loopback TCP; `threads`:
 * a sender and a receiver thread per stream (blocking calls), else one xs_poll loop on
 * each side. Returns the aggregate bytes/s; the per-stream figures go to smux_last_*.
 */
static struct result smux_bulk_run(int n, int threads, uint64_t bytes) {
    struct smux_run *r = xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->n = n;
    r->threads = threads;
    r->per_stream = bytes / (uint64_t)n / BULK_CHUNK * BULK_CHUNK;

    /* The session: socket, bind, listen with XS_PROTO_SMUX, as for TCP. */
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    int l = ok(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX), &XS, "smux socket");
    ok(xs_bind(l, (struct sockaddr *)&in, len), &XS, "smux bind");
    ok(xs_listen(l, 4), &XS, "smux listen");
    ok(xs_getsockname(l, (struct sockaddr *)&in, &len), &XS, "smux getsockname");
    int cs = ok(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX), &XS, "smux socket");
    ok(xs_connect(cs, (struct sockaddr *)&in, len), &XS, "smux connect");
    int ss = ok(xs_accept(l, NULL, NULL), &XS, "smux accept session");
    ok(xs_close(l), &XS, "close listener");
    set_int(&XS, cs, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    set_int(&XS, ss, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    set_timeouts(&XS, ss);
    for (int i = 0; i < n; i++) {
        r->a[i] = ok(xs_smux_open(cs), &XS, "xs_smux_open");
        r->b[i] = ok(xs_accept(ss, NULL, NULL), &XS, "smux accept stream");
        set_timeouts(&XS, r->a[i]);
        set_timeouts(&XS, r->b[i]);
        if (!threads) {
            ok(xs_fcntl(r->a[i], F_SETFL, O_NONBLOCK), &XS, "fcntl");
            ok(xs_fcntl(r->b[i], F_SETFL, O_NONBLOCK), &XS, "fcntl");
        }
    }

    pthread_t th[2 * SMUX_MAX_STREAMS];
    struct smux_worker w[SMUX_MAX_STREAMS];
    int nth = 0;
    if (threads) {
        /* n receivers, and n - 1 senders: this thread sends on stream 0 */
        pthread_barrier_init(&r->start, NULL, (unsigned)(2 * n));
        for (int i = 0; i < n; i++) {
            w[i] = (struct smux_worker){r, i};
            start_thread(&th[nth++], smux_receiver, &w[i]);
            if (i > 0)
                start_thread(&th[nth++], smux_sender, &w[i]);
        }
        pthread_barrier_wait(&r->start);
        r->t0 = now_ns();
        char *buf = xmalloc(BULK_CHUNK);
        memset(buf, 0x5a, BULK_CHUNK);
        for (uint64_t sent = 0; sent < r->per_stream; sent += BULK_CHUNK)
            send_all(&XS, r->a[0], buf, BULK_CHUNK);
        free(buf);
    } else {
        pthread_barrier_init(&r->start, NULL, 2);
        start_thread(&th[nth++], smux_poll_receiver, r);
        pthread_barrier_wait(&r->start);
        r->t0 = now_ns();
        smux_poll_send(r);
    }
    for (int k = 0; k < nth; k++)
        pthread_join(th[k], NULL);
    uint64_t t_end = now_ns();
    pthread_barrier_destroy(&r->start);

    /* Per stream: from when all had data to when the first was done (the stream that
     * started last and the one done first may be one: then from the start). */
    int window = atomic_load(&r->all_started) && r->t_snap > r->t_start;
    double secs = (double)(r->t_snap - (window ? r->t_start : r->t0)) / 1e9, sum = 0;
    smux_last_min = 1e300;
    smux_last_max = 0;
    for (int i = 0; i < n; i++) {
        double rate = (double)(r->snap[i] - (window ? r->start_snap[i] : 0)) / secs;
        sum += rate;
        smux_last_min = rate < smux_last_min ? rate : smux_last_min;
        smux_last_max = rate > smux_last_max ? rate : smux_last_max;
    }
    smux_last_mean = sum / n;
    smux_last_wait = (double)atomic_load(&r->max_wait) / 1e9;

    for (int i = 0; i < n; i++) {
        ok(xs_close(r->a[i]), &XS, "close stream");
        ok(xs_close(r->b[i]), &XS, "close stream");
    }
    ok(xs_close(cs), &XS, "close session");
    ok(xs_close(ss), &XS, "close session");
    double total = (double)(r->per_stream * (uint64_t)n);
    double elapsed = (double)(t_end - r->t0) / 1e9;
    free(r);
    return (struct result){{total / elapsed, 0}};
}

/* ===== rounds and the table ======================================================== */

typedef struct result (*workload_fn)(const struct api *A, enum transport t, size_t size,
                                     uint64_t count);

/* The columns of the table, each one implementation; rounds run them in ORDER. */
enum column { COL_RAW, COL_XS, COL_ZMQ, COL_NNG, N_COLS };
static const char *const COL_TAG[N_COLS] = {"raw", "xs", "zmq", "nng"};
static const int ORDER[N_COLS] = {COL_XS, COL_RAW, COL_ZMQ, COL_NNG};
static const int COL_BUILT[N_COLS] = {1, 1, BENCH_ZMQ, BENCH_NNG};
/* The TLS rows reuse the first two columns: xsocket plain TCP (COL_RAW) and TLS (COL_XS). */
static const char *const TLS_COL_TAG[N_COLS] = {"plain", "tls", "-", "-"};
/* The WebSocket rows: the kernel's TCP (COL_RAW), xsocket WebSocket (COL_XS), libzmq
 * (COL_ZMQ) and xsocket plain TCP (in the COL_NNG slot; nng is not run there). */
static const char *const WS_COL_TAG[N_COLS] = {"kern", "ws", "zmq", "xs-tcp"};
static const char *const *col_tag = COL_TAG; /* tags of the per-round lines */
static const char *second_unit;               /* unit of a workload's second number, if other */

/* What a row runs in each column (fn NULL: not run) and how many messages/iterations. */
struct plan {
    workload_fn fn[N_COLS];
    const struct api *api[N_COLS];
    uint64_t count[N_COLS];
};

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
    double v[N_COLS];   /* medians */
    int have[N_COLS];   /* the column was measured */
    int zmq_ref;        /* no libzmq value of its own: row whose libzmq value to compare to */
    int lower_is_better;
};

static struct row rows[48];
static int nrows;
static int rounds;

/*
 * Runs `rounds` rounds of every column of the plan (xs, raw, libzmq, nng, xs, ...) with
 * the same parameters and adds one row per number the workload gives (`names[k]`), in
 * `unit` after dividing by `div`. Returns the index of the first row added.
 */
static int run_rounds(const char *names[2], enum transport t, const struct plan *p,
                      size_t size, const char *unit, double div, int lower_is_better) {
    double val[N_COLS][2][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < N_COLS; k++) {
            int c = ORDER[k];
            if (!p->fn[c])
                continue;
            struct result x = p->fn[c](p->api[c], t, size, p->count[c]);
            for (int v = 0; v < 2; v++)
                val[c][v][r] = x.v[v] / div;
        }
    int first = nrows;
    for (int v = 0; v < 2 && names[v]; v++) {
        char num[32];
        printf("  %-5s %-20s", TRANSPORT_NAME[t], names[v]);
        const char *u = v == 1 && second_unit ? second_unit : unit;
        for (int c = 0; c < N_COLS; c++) {
            int any = 0;
            for (int r = 0; r < rounds; r++)
                any |= val[c][v][r] != 0;
            if (!p->fn[c] || !any) /* no such number for this column (conns without TLS) */
                continue;
            printf(" %s:", col_tag[c]);
            for (int r = 0; r < rounds; r++)
                printf(" %s", fmt3(val[c][v][r], num, sizeof num));
            printf("  ");
        }
        printf("%s\n", u);

        if (nrows == (int)(sizeof rows / sizeof rows[0]))
            die("too many rows");
        struct row *row = &rows[nrows++];
        memset(row, 0, sizeof *row);
        snprintf(row->workload, sizeof row->workload, "%s", names[v]);
        row->transport = TRANSPORT_NAME[t];
        row->unit = u;
        for (int c = 0; c < N_COLS; c++)
            if (p->fn[c]) {
                row->have[c] = 1;
                row->v[c] = median(val[c][v], rounds);
            }
        row->zmq_ref = -1;
        row->lower_is_better = lower_is_better;
    }
    return first;
}

/*
 * A count so one measurement of fn(A) takes about `seconds`, from a short run after a
 * shorter warm-up (both discarded). `rate` workloads give per-second figures, the
 * others microseconds per iteration.
 */
static uint64_t calibrate(workload_fn fn, const struct api *A, enum transport t, size_t size,
                          uint64_t probe, double seconds, int rate) {
    fn(A, t, size, probe / 4);
    double v = fn(A, t, size, probe).v[0];
    double n = rate ? v * seconds : seconds * 1e6 / (v > 0.1 ? v : 0.1);
    return n < (double)probe ? probe : (uint64_t)n;
}

/*
 * A plan for fn over raw and xs, plus `zfn` / `nfn` when built (NULL: that column is
 * not run). Each column gets its own count, so every measurement takes about `seconds`
 * however fast the implementation is.
 */
static struct plan make_plan(workload_fn fn, workload_fn zfn, workload_fn nfn,
                             enum transport t, size_t size, uint64_t probe, double seconds,
                             int rate) {
    struct plan p;
    memset(&p, 0, sizeof p);
    p.fn[COL_RAW] = p.fn[COL_XS] = fn;
    p.api[COL_RAW] = &RAW;
    p.api[COL_XS] = &XS;
    if (COL_BUILT[COL_ZMQ])
        p.fn[COL_ZMQ] = zfn;
    if (COL_BUILT[COL_NNG])
        p.fn[COL_NNG] = nfn;
    for (int k = 0; k < N_COLS; k++) {
        int c = ORDER[k];
        if (p.fn[c])
            p.count[c] = calibrate(p.fn[c], p.api[c], t, size, probe, seconds, rate);
    }
    return p;
}

/*
 * A WebSocket row over TCP: `wfn` with `wapi` (COL_XS) against `tfn` with the kernel
 * (COL_RAW) and with xsocket plain TCP (COL_NNG slot), plus libzmq's `zfn` when built
 * (NULL: not run). Counts calibrated per column as in make_plan.
 */
static struct plan make_ws_plan(workload_fn wfn, const struct api *wapi, workload_fn tfn,
                                workload_fn zfn, size_t size, uint64_t probe, double seconds) {
    struct plan p;
    memset(&p, 0, sizeof p);
    p.fn[COL_RAW] = p.fn[COL_NNG] = tfn;
    p.api[COL_RAW] = &RAW;
    p.api[COL_NNG] = &XS;
    p.fn[COL_XS] = wfn;
    p.api[COL_XS] = wapi;
    if (COL_BUILT[COL_ZMQ])
        p.fn[COL_ZMQ] = zfn;
    for (int k = 0; k < N_COLS; k++) {
        int c = ORDER[k];
        if (p.fn[c])
            p.count[c] = calibrate(p.fn[c], p.api[c], TCP, size, probe, seconds, 1);
    }
    return p;
}

/* The main table: rows [0, end). */
static void print_table(int end) {
    int show[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        show[c] = 0;
    for (int i = 0; i < end; i++)
        for (int c = 0; c < N_COLS; c++)
            show[c] |= rows[i].have[c];
    int starred = 0;

    printf("\n%-20s | %-9s | %14s | %14s | %6s", "workload", "transport", "raw", "xsocket",
           "xs/raw");
    if (show[COL_ZMQ])
        printf(" | %14s | %6s", "libzmq", "xs/zmq");
    if (show[COL_NNG])
        printf(" | %14s | %6s", "nng", "xs/nng");
    printf(" | better\n");
    printf("---------------------+-----------+----------------+----------------+--------");
    if (show[COL_ZMQ])
        printf("+----------------+--------");
    if (show[COL_NNG])
        printf("+----------------+--------");
    printf("+-------\n");

    for (int i = 0; i < end; i++) {
        const struct row *r = &rows[i];
        char cell[N_COLS][48], num[32];
        for (int c = 0; c < N_COLS; c++) {
            if (r->have[c])
                snprintf(cell[c], sizeof cell[c], "%s %s", fmt3(r->v[c], num, sizeof num),
                         r->unit);
            else
                snprintf(cell[c], sizeof cell[c], "-");
        }
        printf("%-20s | %-9s | %14s | %14s | %6.2f", r->workload, r->transport, cell[COL_RAW],
               cell[COL_XS], r->v[COL_XS] / r->v[COL_RAW]);
        for (int c = COL_ZMQ; c <= COL_NNG; c++) {
            if (!show[c])
                continue;
            printf(" | %14s | ", cell[c]);
            if (r->have[c]) {
                printf("%6.2f", r->v[COL_XS] / r->v[c]);
            } else if (c == COL_ZMQ && r->zmq_ref >= 0) {
                printf("%5.2f*", r->v[COL_XS] / rows[r->zmq_ref].v[COL_ZMQ]);
                starred = 1;
            } else {
                printf("%6s", "-");
            }
        }
        printf(" | %s\n", r->lower_is_better ? "lower" : "higher");
    }
    if (starred)
        printf("* xsocket with MSG_MORE against libzmq's plain row of the same size "
               "(zmq_send has no MSG_MORE; libzmq batches in its I/O thread by itself)\n");
}

/* The WebSocket table: rows [first, end), made by make_ws_plan. */
static void print_ws_table(int first, int end) {
    int starred = 0;
    printf("\nWebSocket (xsocket, SOCK_SEQPACKET over loopback tcp, client -> server so masked; "
           "one xs_send per message)\n");
    printf("%-24s | %14s | %14s | %14s | %7s | %9s", "workload", "kernel tcp", "xsocket tcp",
           "ws", "ws/kern", "ws/xs-tcp");
    if (BENCH_ZMQ)
        printf(" | %14s | %6s", "libzmq", "ws/zmq");
    printf("\n-------------------------+----------------+----------------+----------------+-----"
           "----+----------");
    if (BENCH_ZMQ)
        printf("+----------------+-------");
    printf("\n");
    for (int i = first; i < end; i++) {
        const struct row *r = &rows[i];
        char cell[N_COLS][48], num[32];
        for (int c = 0; c < N_COLS; c++) {
            if (r->have[c])
                snprintf(cell[c], sizeof cell[c], "%s %s", fmt3(r->v[c], num, sizeof num),
                         r->unit);
            else
                snprintf(cell[c], sizeof cell[c], "-");
        }
        printf("%-24s | %14s | %14s | %14s | %7.2f | %9.2f", r->workload, cell[COL_RAW],
               cell[COL_NNG], cell[COL_XS], r->v[COL_XS] / r->v[COL_RAW],
               r->v[COL_XS] / r->v[COL_NNG]);
        if (BENCH_ZMQ) {
            printf(" | %14s | ", cell[COL_ZMQ]);
            if (r->have[COL_ZMQ]) {
                printf("%6.2f", r->v[COL_XS] / r->v[COL_ZMQ]);
            } else if (r->zmq_ref >= 0) {
                printf("%5.2f*", r->v[COL_XS] / rows[r->zmq_ref].v[COL_ZMQ]);
                starred = 1;
            } else {
                printf("%6s", "-");
            }
        }
        printf("\n");
    }
    printf("tcp columns: the msgs/bulk workloads (4-byte length prefix per message, the receiver "
           "parses 256 KiB reads);\nws: one whole message per xs_recv; Full-WS: the same after "
           "an HTTP Upgrade handshake; all higher is better\n");
    if (starred)
        printf("* ws with MSG_MORE against libzmq's plain row of the same size\n");
}

/* The TLS table: rows [first, nrows), xsocket plain TCP against xsocket TLS. */
static void print_tls_table(int first) {
    printf("\nTLS (xsocket TLS 1.3 vs xsocket plain TCP, loopback tcp; conns: connect "
           "(+ handshake) + 1-byte echo + close)\n");
    printf("%-22s | %-9s | %14s | %14s | %9s | better\n", "workload", "transport", "xs plain",
           "xs TLS", "TLS/plain");
    printf("-----------------------+-----------+----------------+----------------+-----------"
           "+-------\n");
    for (int i = first; i < nrows; i++) {
        const struct row *r = &rows[i];
        char plain[48], tls[48], ratio[16], num[32];
        int have_plain = r->v[COL_RAW] > 0;
        if (have_plain)
            snprintf(plain, sizeof plain, "%s %s", fmt3(r->v[COL_RAW], num, sizeof num), r->unit);
        else
            snprintf(plain, sizeof plain, "-");
        snprintf(tls, sizeof tls, "%s %s", fmt3(r->v[COL_XS], num, sizeof num), r->unit);
        if (have_plain)
            snprintf(ratio, sizeof ratio, "%.3f", r->v[COL_XS] / r->v[COL_RAW]);
        else
            snprintf(ratio, sizeof ratio, "-");
        printf("%-22s | %-9s | %14s | %14s | %9s | %s\n", r->workload, r->transport, plain, tls,
               ratio, r->lower_is_better ? "lower" : "higher");
    }
}

static void print_others(void) {
    printf("libzmq: %s\n", BENCH_ZMQ ? "measured (PUSH/PULL for msgs, PAIR for rtt)"
                                     : "not installed (no <zmq.h> when the bench was built)");
    printf("nng: %s\n", BENCH_NNG ? "measured (push0/pull0 for msgs, pair0 for rtt)"
                                  : "not installed (no <nng/nng.h> when the bench was built)");
}

/* ===== the smux table ================================================================ */

/* smux rows: medians over rounds of the aggregate (bytes/s) and, for many streams, the
 * per-stream spread while all streams were running. */
enum { SMUX_KERN, SMUX_XS_TCP, SMUX_1, SMUX_16, SMUX_16_POLL, N_SMUX };
static const char *const SMUX_NAME[N_SMUX] = {
    "kernel tcp, 1 conn", "xsocket tcp, 1 conn", "smux 1 stream", "smux 16 streams",
    "smux 16 streams, poll"};
static double smux_v[N_SMUX][MAX_ROUNDS];
static double smux_min[N_SMUX][MAX_ROUNDS], smux_max[N_SMUX][MAX_ROUNDS];
static double smux_mean[N_SMUX][MAX_ROUNDS], smux_wait[N_SMUX][MAX_ROUNDS];

/* Rounds alternate kernel TCP, xsocket TCP, 1 stream, 16 streams (a thread pair per
 * stream), 16 streams (one xs_poll loop per side): the bulk workload, `bytes` each. */
static void smux_bench(uint64_t bytes) {
    smux_bulk_run(1, 1, bytes / 16); /* warm-up, discarded */
    smux_bulk_run(SMUX_MAX_STREAMS, 1, bytes / 16);
    for (int r = 0; r < rounds; r++) {
        smux_v[SMUX_KERN][r] = bulk(&RAW, TCP, 0, bytes).v[0];
        smux_v[SMUX_XS_TCP][r] = bulk(&XS, TCP, 0, bytes).v[0];
        for (int k = SMUX_1; k < N_SMUX; k++) {
            int n = k == SMUX_1 ? 1 : SMUX_MAX_STREAMS;
            smux_v[k][r] = smux_bulk_run(n, k != SMUX_16_POLL, bytes).v[0];
            smux_min[k][r] = smux_last_min;
            smux_max[k][r] = smux_last_max;
            smux_mean[k][r] = smux_last_mean;
            smux_wait[k][r] = smux_last_wait;
        }
    }
    char num[32];
    for (int k = 0; k < N_SMUX; k++) {
        printf("  tcp   %-22s", SMUX_NAME[k]);
        for (int r = 0; r < rounds; r++)
            printf(" %s", fmt3(smux_v[k][r] / GiB, num, sizeof num));
        printf("  GiB/s");
        if (k == SMUX_16 || k == SMUX_16_POLL) {
            printf("; per stream min/max:");
            for (int r = 0; r < rounds; r++)
                printf(" %.2f", smux_min[k][r] / smux_max[k][r]);
        }
        if (k >= SMUX_1) {
            printf("; longest recv wait:");
            for (int r = 0; r < rounds; r++)
                printf(" %.0f", smux_wait[k][r] * 1e3);
            printf(" ms");
        }
        printf("\n");
    }
}

static void print_smux_table(int quick) {
    double v[N_SMUX], mn[N_SMUX], mx[N_SMUX], mean[N_SMUX], wait[N_SMUX], dev[N_SMUX][MAX_ROUNDS];
    for (int k = 0; k < N_SMUX; k++) {
        v[k] = median(smux_v[k], rounds);
        mn[k] = median(smux_min[k], rounds);
        mx[k] = median(smux_max[k], rounds);
        mean[k] = median(smux_mean[k], rounds);
        wait[k] = 0;
        for (int r = 0; r < rounds; r++) { /* the widest gap from the mean, in % */
            double m = smux_mean[k][r], lo = m - smux_min[k][r], hi = smux_max[k][r] - m;
            dev[k][r] = m > 0 ? 100 * (lo > hi ? lo : hi) / m : 0;
            wait[k] = smux_wait[k][r] > wait[k] ? smux_wait[k][r] : wait[k];
        }
    }
    char a[32], b[32], c[32];
    printf("\nsmux (xsocket XS_PROTO_SMUX, one session over loopback tcp, client -> server, "
           "64 KiB sends; 16 streams: a sender\nand a receiver thread per stream, or one "
           "xs_poll loop per side; against one kernel or xsocket TCP connection)\n");
    printf("%-22s | %11s | %7s | %7s | %9s | %s\n", "workload", "aggregate", "vs kern",
           "vs xs", "max wait", "target");
    printf("-----------------------+-------------+---------+---------+-----------+----------------"
           "------\n");
    for (int k = 0; k < N_SMUX; k++) {
        char w[32] = "-";
        if (k >= SMUX_1)
            snprintf(w, sizeof w, "%.0f ms", wait[k] * 1e3);
        printf("%-22s | %5s GiB/s | %7.2f | %7.2f | %9s | %s\n", SMUX_NAME[k],
               fmt3(v[k] / GiB, a, sizeof a), v[k] / v[SMUX_KERN], v[k] / v[SMUX_XS_TCP], w,
               k == SMUX_1 ? (v[k] >= 0.8 * v[SMUX_KERN] ? ">= 0.80x kern: met"
                                                         : ">= 0.80x kern: NOT met")
                           : "");
    }
    printf("max wait: the longest a receiver waited in one xs_recv / xs_poll, over all rounds "
           "(a stall shows here)\n");
    printf("\nper-stream throughput while all 16 streams ran (medians over rounds)\n");
    printf("%-22s | %11s | %11s | %11s | %7s | %8s | %s\n", "workload", "min", "mean", "max",
           "min/max", "max dev", "target");
    printf("-----------------------+-------------+-------------+-------------+---------+-------"
           "---+----------------------\n");
    for (int k = SMUX_16; k < N_SMUX; k++) {
        double d = median(dev[k], rounds);
        printf("%-22s | %5s MiB/s | %5s MiB/s | %5s MiB/s | %7.2f | %7.1f%% | %s\n",
               SMUX_NAME[k], fmt3(mn[k] / MiB, a, sizeof a), fmt3(mean[k] / MiB, b, sizeof b),
               fmt3(mx[k] / MiB, c, sizeof c), mn[k] / mx[k], d,
               d <= 20 ? "within +-20%: met" : "within +-20%: NOT met");
    }
    printf("per stream: bytes each stream received from when all had data until the first "
           "was done, over that time;\nmax dev: the widest gap between one stream and the "
           "mean, in %% of the mean (per round, then the median)\n");
    if (quick)
        printf("(BENCH_QUICK: 2 MiB per stream, too little for steady per-stream figures)\n");
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
    double target = quick ? 0.02 : 0.5;
    uint64_t msg_probe = quick ? 2000 : 20000, rtt_probe = quick ? 500 : 2000;
    uint64_t conn_probe = quick ? 20 : 200;

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
    int have_tls = make_certificates();

    printf("xsocket bench: loopback, sender and receiver in two threads of one process, ");
    if (placement == ANY_CPU)
        printf("placed by the scheduler (BENCH_CPUS=any)\n");
    else if (placement == TWO_CPUS)
        printf("on CPUs %d and %d (BENCH_CPUS=two)\n", cpu_main, cpu_peer);
    else
        printf("both on CPU %d (BENCH_CPUS=one)\n", cpu_main);
    printf("%d rounds per row, alternating xs / raw%s%s; the table shows medians%s\n", rounds,
           BENCH_ZMQ ? " / libzmq" : "", BENCH_NNG ? " / nng" : "",
           quick ? " (BENCH_QUICK: scaled down)" : "");
    if (BENCH_ZMQ || BENCH_NNG)
        printf("libzmq's I/O thread and nng's workers run %s\n",
               placement == ONE_CPU    ? "on that CPU too"
               : placement == TWO_CPUS ? "on both CPUs"
                                       : "where the scheduler puts them");
    printf("MSG_MORE rows: MSG_MORE on every send but the last of each burst of %d messages\n",
           MORE_BURST);
    if (have_tls)
        printf("TLS: certificates (EC P-256 CA and server) made with openssl in %s\n", cert_dir);
    else
        printf("TLS: openssl not found, skipped\n");
    printf("per-round values:\n");

#if BENCH_ZMQ
    workload_fn zmq_msgs_fn = zmq_msgs, zmq_rtt_fn = zmq_rtt;
#else
    workload_fn zmq_msgs_fn = NULL, zmq_rtt_fn = NULL;
#endif
#if BENCH_NNG
    workload_fn nng_msgs_fn = nng_msgs, nng_rtt_fn = nng_rtt;
#else
    workload_fn nng_msgs_fn = NULL, nng_rtt_fn = NULL;
#endif

    uint64_t t_start = now_ns();
    if (env_long("BENCH_SMUX_ONLY", 0)) { /* the smux rows alone */
        smux_bench(bulk_bytes);
        print_smux_table(quick);
        printf("total time %.1f s\n", (double)(now_ns() - t_start) / 1e9);
        return 0;
    }
    int ws_only = env_long("BENCH_WS_ONLY", 0) != 0;
    for (int t = 0; t < N_TRANSPORTS && !ws_only; t++) {
        const char *bulk_name[2] = {"bulk 64 KiB writes", NULL};
        bulk(&XS, t, 0, bulk_bytes / 16); /* warm-up, discarded */
        bulk(&RAW, t, 0, bulk_bytes / 16);
        struct plan bp = {.fn = {bulk, bulk}, .api = {&RAW, &XS}, .count = {bulk_bytes, bulk_bytes}};
        run_rounds(bulk_name, t, &bp, 0, "GiB/s", GiB, 0);

        const size_t sizes[2] = {64, 1024};
        int plain_row[2];
        for (int i = 0; i < 2; i++) {
            const char *name[2] = {sizes[i] == 64 ? "msgs 64 B" : "msgs 1 KiB", NULL};
            struct plan p = make_plan(msgs, zmq_msgs_fn, nng_msgs_fn, t, sizes[i], msg_probe,
                                      target, 1);
            plain_row[i] = run_rounds(name, t, &p, sizes[i], "kmsg/s", 1e3, 0);
        }
        for (int i = 0; i < 2; i++) {
            const char *name[2] = {sizes[i] == 64 ? "msgs 64 B MSG_MORE" : "msgs 1 KiB MSG_MORE",
                                   NULL};
            struct plan p = make_plan(msgs_more, NULL, NULL, t, sizes[i], msg_probe, target, 1);
            int r = run_rounds(name, t, &p, sizes[i], "kmsg/s", 1e3, 0);
            if (rows[plain_row[i]].have[COL_ZMQ])
                rows[r].zmq_ref = plain_row[i];
        }

        /* Round trips: aim for `target` seconds from the probe's median. */
        const char *rtt_names[2] = {"rtt 64 B median", "rtt 64 B p99"};
        struct plan p = make_plan(rtt, zmq_rtt_fn, nng_rtt_fn, t, 0, rtt_probe, target, 0);
        run_rounds(rtt_names, t, &p, 0, "us", 1, 1);
    }

    /* WebSocket over TCP: xsocket Raw-WS (and Full-WS for 64 B) against the kernel's and
     * xsocket's plain TCP with length-prefixed messages, and libzmq. */
    int ws_first = nrows;
    {
        col_tag = WS_COL_TAG;
        const char *bulk_name[2] = {"ws bulk 64 KiB msgs", NULL};
        ws_bulk(&XS_WSRAW, TCP, 0, bulk_bytes / 16); /* warm-up, discarded */
        struct plan bp;
        memset(&bp, 0, sizeof bp);
        bp.fn[COL_RAW] = bp.fn[COL_NNG] = bulk;
        bp.api[COL_RAW] = &RAW;
        bp.api[COL_NNG] = &XS;
        bp.fn[COL_XS] = ws_bulk;
        bp.api[COL_XS] = &XS_WSRAW;
        bp.count[COL_RAW] = bp.count[COL_NNG] = bp.count[COL_XS] = bulk_bytes;
        run_rounds(bulk_name, TCP, &bp, 0, "GiB/s", GiB, 0);

        const size_t wsizes[3] = {64, 1024, 64 * KiB};
        const char *const plain_names[3] = {"ws msgs 64 B", "ws msgs 1 KiB", "ws msgs 64 KiB"};
        const char *const more_names[3] = {"ws msgs 64 B MSG_MORE", "ws msgs 1 KiB MSG_MORE",
                                           "ws msgs 64 KiB MSG_MORE"};
        int ws_plain[3];
        for (int i = 0; i < 3; i++) {
            const char *name[2] = {plain_names[i], NULL};
            uint64_t probe = wsizes[i] > 4 * KiB ? msg_probe / 10 : msg_probe;
            struct plan p = make_ws_plan(ws_msgs, &XS_WSRAW, msgs, zmq_msgs_fn, wsizes[i], probe,
                                         target);
            ws_plain[i] = run_rounds(name, TCP, &p, wsizes[i], "kmsg/s", 1e3, 0);
        }
        for (int i = 0; i < 3; i++) {
            const char *name[2] = {more_names[i], NULL};
            uint64_t probe = wsizes[i] > 4 * KiB ? msg_probe / 10 : msg_probe;
            struct plan p = make_ws_plan(ws_msgs_more, &XS_WSRAW, msgs_more, NULL, wsizes[i],
                                         probe, target);
            int r = run_rounds(name, TCP, &p, wsizes[i], "kmsg/s", 1e3, 0);
            if (rows[ws_plain[i]].have[COL_ZMQ])
                rows[r].zmq_ref = ws_plain[i];
        }
        const char *full_name[2] = {"Full-WS msgs 64 B", NULL};
        struct plan fp = make_ws_plan(ws_msgs, &XS_WSFULL, msgs, zmq_msgs_fn, 64, msg_probe,
                                      target);
        run_rounds(full_name, TCP, &fp, 64, "kmsg/s", 1e3, 0);
        col_tag = COL_TAG;
    }

    if (ws_only) {
        print_ws_table(ws_first, nrows);
        printf("total time %.1f s\n", (double)(now_ns() - t_start) / 1e9);
        return 0;
    }

    /* TLS: xsocket TLS against xsocket plain TCP, same rounds and medians. */
    int tls_first = nrows;
    if (have_tls) {
        col_tag = TLS_COL_TAG;
        const char *bulk_name[2] = {"tls bulk 64 KiB", NULL};
        bulk(&XS_TLS, TCP, 0, bulk_bytes / 16); /* warm-up, discarded */
        bulk(&XS, TCP, 0, bulk_bytes / 16);
        struct plan bp = {.fn = {bulk, bulk}, .api = {&XS, &XS_TLS},
                          .count = {bulk_bytes, bulk_bytes}};
        run_rounds(bulk_name, TCP, &bp, 0, "GiB/s", GiB, 0);

        for (size_t resumed = 0; resumed < 2; resumed++) {
            const char *names[2] = {resumed ? "tls conns resumed" : "tls conns full",
                                    resumed ? "tls handshake resumed" : "tls handshake full"};
            struct plan p = {.fn = {conns, conns}, .api = {&XS, &XS_TLS}};
            for (int k = 0; k < N_COLS; k++) {
                int c = ORDER[k];
                if (p.fn[c])
                    p.count[c] = calibrate(conns, p.api[c], TCP, resumed, conn_probe, target, 1);
            }
            second_unit = "us"; /* the second number: median handshake time */
            int r = run_rounds(names, TCP, &p, resumed, "conn/s", 1, 0);
            second_unit = NULL;
            rows[r + 1].lower_is_better = 1;
        }
        col_tag = COL_TAG;
    }

    /* smux: 1 and 16 streams on one session against one TCP connection. */
    smux_bench(bulk_bytes);

    print_table(ws_first);
    print_ws_table(ws_first, tls_first);
    if (have_tls)
        print_tls_table(tls_first);
    else
        printf("\nTLS: openssl not found, skipped\n");
    print_smux_table(quick);
    print_others();
    printf("total time %.1f s\n", (double)(now_ns() - t_start) / 1e9);
#if BENCH_NNG
    nng_fini();
#endif
    return 0;
}
