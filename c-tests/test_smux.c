/* smux (XS_PROTO_SMUX): sessions and streams as sids. xsocket with itself over TCP
 * v4/v6, Unix paths and TLS (echo with half-close); a thousand streams on one session;
 * fairness (an unread stream does not stall the others); flow control and the write
 * time-out's partial rule; MSG_PEEK, MSG_DONTWAIT, per-stream time-outs; xs_poll on
 * streams and sessions; session close and a close from another thread; stream ids
 * (first id, recycling, limits); bad input, a SYN flood, VRM probes, the idle time-out
 * and PIN keepalives against a plain kernel socket playing the peer with hand-made
 * 7-byte little-endian headers; bad arguments. Loopback only; every wait is bounded
 * (GUARD_MS time-outs on every socket, the harness's watchdog on every scenario).
 * Certificates are made at test time with the openssl command line. */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/uio.h>

#include "concurrency.h"

#define KIB 1024
#define MIB (1024 * 1024)
#define WINDOW (512 * KIB) /* the default XS_SMUX_WINDOW */

/* smux commands */
#define SYN 0
#define FIN 1
#define PSH 2
#define CFM 3
#define VRM 4
#define PIN 5

/* ----- certificates ----- */

/* A CA and a server certificate for 127.0.0.1, ::1 and localhost signed by it. */
static void make_certificates(void) {
    cert_make_ca("smux");
    cert_make_signed("server", "IP:127.0.0.1,IP:::1,DNS:localhost", 2);
}

/* ----- a fast position-dependent pattern -----
 * The byte at offset off of stream seed is tab[(off + seed * 7919) % PAT_P]; PAT_P is
 * prime and not a multiple of any chunk size, so a lost, repeated or misplaced chunk
 * shows. pat() is valid for PAT_SPAN bytes from the returned pointer. */
#define PAT_P 1000003u
#define PAT_SPAN (128 * KIB)
static unsigned char *pat_tab;

static void pat_init(void) {
    pat_tab = malloc(PAT_P + PAT_SPAN);
    if (!pat_tab) exit(2);
    for (uint32_t i = 0; i < PAT_P + PAT_SPAN; i++) pat_tab[i] = pattern_byte(0x5eed, i % PAT_P);
}

static const unsigned char *pat(uint32_t seed, uint64_t off) {
    return pat_tab + (off + (uint64_t)seed * 7919u) % PAT_P;
}

/* Whether n bytes (n <= PAT_SPAN) are the pattern of seed at off. */
static int pat_ok(const void *buf, size_t n, uint32_t seed, uint64_t off) {
    return memcmp(buf, pat(seed, off), n) == 0;
}

/* ----- sid helpers ----- */

static int smux_int(int sid, int name, int value) {
    return xs_setsockopt(sid, XS_SOL_SMUX, name, &value, sizeof value);
}

static int smux_get(int sid, int name) { return get_int_opt(&XS, sid, XS_SOL_SMUX, name); }

static void guard(int sid) {
    set_timeout_ms(&XS, sid, SO_RCVTIMEO, GUARD_MS);
    set_timeout_ms(&XS, sid, SO_SNDTIMEO, GUARD_MS);
}

static int nonblock(int sid) { return xs_fcntl(sid, F_SETFL, O_NONBLOCK); }

/* Pumps a session (xs_poll moves it on) until XS_SMUX_STREAMS is 0 or GUARD_MS. */
static int streams_left(int session) {
    long end = now_ms() + GUARD_MS;
    int n;
    while ((n = smux_get(session, XS_SMUX_STREAMS)) != 0 && now_ms() < end) {
        struct pollfd p = {.fd = session, .events = POLLIN};
        xs_poll(&p, 1, 5);
    }
    return n;
}

/* Sends all n bytes (blocking); 0, or -1 with errno. */
static int send_all(int s, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = xs_send(s, p, n, 0);
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends n bytes of seed's pattern from offset off, in 64 KiB pieces; 0, or -1. */
static int send_pattern(int s, uint32_t seed, uint64_t off, size_t n) {
    while (n) {
        size_t k = n < 64 * KIB ? n : 64 * KIB;
        if (send_all(s, pat(seed, off), k) < 0) return -1;
        off += k;
        n -= k;
    }
    return 0;
}

/* Reads until n bytes, the end, or an error; returns the bytes read (errno set when
 * fewer than n because of an error, 0 when because of the end). */
static long recv_full(int s, void *buf, size_t n) {
    size_t got = 0;
    errno = 0;
    while (got < n) {
        ssize_t r = xs_recv(s, (char *)buf + got, n - got, 0);
        if (r < 0) return (long)got;
        if (r == 0) {
            errno = 0;
            break;
        }
        got += (size_t)r;
    }
    return (long)got;
}

/* Reads n bytes of seed's pattern from offset off; returns the bytes that came and
 * matched (stops at the first mismatch, the end or an error; *bad set on mismatch). */
static long recv_pattern(int s, uint32_t seed, uint64_t off, size_t n, int *bad) {
    static __thread unsigned char buf[64 * KIB];
    size_t got = 0;
    *bad = 0;
    while (got < n) {
        size_t want = n - got < sizeof buf ? n - got : sizeof buf;
        ssize_t r = xs_recv(s, buf, want, 0);
        if (r <= 0) break;
        if (!pat_ok(buf, (size_t)r, seed, off + got)) {
            *bad = 1;
            break;
        }
        got += (size_t)r;
    }
    return (long)got;
}

/* ----- xsocket sessions ----- */

struct sess {
    int l; /* listener */
    int c; /* client session */
    int s; /* server session (accepted) */
};

struct acceptor {
    int l, r, err;
    pthread_t th;
};

static void *accept_thread(void *arg) {
    struct acceptor *a = arg;
    a->r = xs_accept(a->l, NULL, NULL);
    a->err = errno;
    return NULL;
}

static void start_accept(struct acceptor *a, int l) {
    a->l = l;
    a->r = -1;
    a->err = 0;
    if (pthread_create(&a->th, NULL, accept_thread, a) != 0) exit(2);
}

/* A listening smux socket (family AF_INET/AF_INET6/AF_UNIX, TLS or not) with the
 * given option (name 0: none) applied; fills its address. */
static int smux_listener(int family, int tls, struct sockaddr_storage *addr, socklen_t *len,
                         int opt, int value) {
    int l = xs_socket(family, SOCK_STREAM, XS_PROTO_SMUX | (tls ? XS_PROTO_TLS : 0));
    if (l < 0) return -1;
    if (tls) {
        XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path("server.pem")));
        XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path("server.key")));
    }
    if (opt) XS_PASS(smux_int(l, opt, value));
    if (family == AF_UNIX) *len = unix_addr(0, (struct sockaddr_un *)addr);
    else *len = loopback(family, 0, addr);
    if (xs_bind(l, (struct sockaddr *)addr, *len) < 0 || xs_listen(l, 64) < 0) {
        xs_close(l);
        return -1;
    }
    if (family != AF_UNIX) *len = loopback(family, bound_port(&XS, l), addr);
    set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS);
    return l;
}

/* A connected session pair: client option copt=cval and server (listener) option
 * sopt=sval (0: none). Returns 0, or -1 (a failure was reported). */
static int sess_open_opts(struct sess *x, int family, int tls, int copt, int cval, int sopt,
                          int sval) {
    struct sockaddr_storage a;
    socklen_t len;
    x->l = x->c = x->s = -1;
    x->l = XS_PASS(smux_listener(family, tls, &a, &len, sopt, sval));
    if (x->l < 0) return -1;
    struct acceptor acc;
    start_accept(&acc, x->l);
    x->c = XS_PASS(xs_socket(family, SOCK_STREAM, XS_PROTO_SMUX | (tls ? XS_PROTO_TLS : 0)));
    if (x->c >= 0) {
        guard(x->c);
        if (tls) XS_PASS(tls_set_text(x->c, XS_TLS_CA_FILE, cert_path("ca.pem")));
        if (copt) XS_PASS(smux_int(x->c, copt, cval));
        XS_PASS(xs_connect(x->c, (struct sockaddr *)&a, len));
    }
    pthread_join(acc.th, NULL);
    x->s = acc.r;
    if (x->s < 0) {
        errno = acc.err;
        harness_fail(__FILE__, __LINE__, "xs_accept(listener)", acc.err);
        return -1;
    }
    guard(x->s);
    return x->c >= 0 ? 0 : -1;
}

static int sess_open(struct sess *x, int family, int tls) {
    return sess_open_opts(x, family, tls, 0, 0, 0, 0);
}

static void sess_close(struct sess *x) {
    if (x->c >= 0) xs_close(x->c);
    if (x->s >= 0) xs_close(x->s);
    if (x->l >= 0) xs_close(x->l);
    x->l = x->c = x->s = -1;
}

/* A stream opened by the client (*a) and accepted by the server (*b), both with
 * GUARD_MS time-outs. Returns 0, or -1 (reported). */
static int stream_open(struct sess *x, int *a, int *b) {
    *a = *b = -1;
    *a = XS_PASS(xs_smux_open(x->c));
    if (*a < 0) return -1;
    *b = XS_PASS(xs_accept(x->s, NULL, NULL));
    if (*b < 0) {
        xs_close(*a);
        *a = -1;
        return -1;
    }
    guard(*a);
    guard(*b);
    return 0;
}

/* ----- a kernel socket playing the smux peer ----- */

static void put_hdr(unsigned char *h, int cmd, unsigned id, uint32_t len) {
    h[0] = (unsigned char)cmd;
    h[1] = (unsigned char)(id & 0xFF);
    h[2] = (unsigned char)((id >> 8) & 0xFF);
    h[3] = (unsigned char)(len & 0xFF);
    h[4] = (unsigned char)((len >> 8) & 0xFF);
    h[5] = (unsigned char)((len >> 16) & 0xFF);
    h[6] = (unsigned char)((len >> 24) & 0xFF);
}

static int k_send_all(int k, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = send(k, p, n, MSG_NOSIGNAL);
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one frame (the payload, when given, is plen bytes; len is what the header says). */
static int k_frame(int k, int cmd, unsigned id, uint32_t len, const void *payload, size_t plen) {
    unsigned char h[7];
    put_hdr(h, cmd, id, len);
    if (k_send_all(k, h, 7) < 0) return -1;
    return plen ? k_send_all(k, payload, plen) : 0;
}

/* Reads exactly n bytes (kernel socket, its SO_RCVTIMEO bounds it): n, 0 at EOF
 * before anything, or -1. */
static long k_read(int k, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(k, (char *)buf + got, n - got, 0);
        if (r < 0) return got ? (long)got : -1;
        if (r == 0) return (long)got;
        got += (size_t)r;
    }
    return (long)got;
}

struct frame {
    int cmd;
    unsigned id;
    uint32_t len;
};

/* Reads one header: 1, 0 at EOF, -1 on error or time-out. */
static int k_hdr(int k, struct frame *f) {
    unsigned char h[7];
    long r = k_read(k, h, 7);
    if (r == 0) return 0;
    if (r != 7) return -1;
    f->cmd = h[0];
    f->id = (unsigned)h[1] | (unsigned)h[2] << 8;
    f->len = (uint32_t)h[3] | (uint32_t)h[4] << 8 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 24;
    return 1;
}

/* Reads and drops everything until EOF; 1 when EOF came within ms, 0 otherwise. */
static int k_reads_eof(int k, long ms) {
    long end = now_ms() + ms;
    char buf[64 * KIB];
    while (now_ms() < end) {
        struct pollfd p = {.fd = k, .events = POLLIN};
        int n = poll(&p, 1, (int)(end - now_ms() > 0 ? end - now_ms() : 0));
        if (n <= 0) continue;
        ssize_t r = recv(k, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0) return 1;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno == ECONNRESET;
    }
    return 0;
}

/* A kernel TCP socket connected to 127.0.0.1:port with GUARD_MS time-outs. */
static int k_connect(int port) {
    struct sockaddr_storage a;
    socklen_t len = loopback(AF_INET, port, &a);
    int k = socket(AF_INET, SOCK_STREAM, 0);
    if (k < 0) return -1;
    set_timeout_ms(&KERNEL, k, SO_RCVTIMEO, GUARD_MS);
    set_timeout_ms(&KERNEL, k, SO_SNDTIMEO, GUARD_MS);
    if (connect(k, (struct sockaddr *)&a, len) < 0) {
        close(k);
        return -1;
    }
    return k;
}

/* An xsocket smux listener on 127.0.0.1 (option opt=value unless opt is 0), and a
 * kernel peer connected to it whose session the listener returned. */
struct kpeer {
    int l, k, s;
};

static int kpeer_open(struct kpeer *p, int opt, int value) {
    struct sockaddr_storage a;
    socklen_t len;
    p->k = p->s = -1;
    p->l = XS_PASS(smux_listener(AF_INET, 0, &a, &len, opt, value));
    if (p->l < 0) return -1;
    p->k = k_connect(bound_port(&XS, p->l));
    CHECK(p->k >= 0);
    if (p->k < 0) return -1;
    p->s = XS_PASS(xs_accept(p->l, NULL, NULL));
    if (p->s < 0) return -1;
    guard(p->s);
    return 0;
}

static void kpeer_close(struct kpeer *p) {
    if (p->k >= 0) close(p->k);
    if (p->s >= 0) xs_close(p->s);
    if (p->l >= 0) xs_close(p->l);
    p->l = p->k = p->s = -1;
}

/* The Go library's verifyCode (smux-wire.md §7), dropped nibble included. */
static void verify_code(uint16_t v1, uint32_t v2, uint16_t *v11, uint32_t *v22) {
    *v11 = (uint16_t)(((v1 & 0xFFu) << 8) | ((v1 & 0xF00u) >> 4));
    *v22 = (v2 & 0xFF000000u) | ((v2 & 0xFF0000u) >> 8) | ((v2 & 0xFF00u) >> 8) |
           ((v2 & 0xFFu) << 16);
}

/* ===== echo with half-close over each transport ===== */

/* On a connected session pair: two streams in turn; the client sends, half-closes, the
 * server reads it all and 0, answers with other bytes, closes; the client reads them
 * and 0, and closes. */
static void echo_on(struct sess *x) {
    for (int round = 0; round < 2; round++) {
        long t0 = now_ms();
        int a, b;
        if (stream_open(x, &a, &b) < 0) return;
        int id = smux_get(a, XS_SMUX_STREAM_ID);
        CHECKF(id == smux_get(b, XS_SMUX_STREAM_ID) && id > 0, "ids %d / %d", id,
               smux_get(b, XS_SMUX_STREAM_ID));
        if (round == 0) CHECKF(id == 1, "first stream id %d", id);
        size_t n = 300 * KIB; /* less than a window: one thread is enough */
        XS_PASS(send_pattern(a, 1, 0, n));
        XS_PASS(xs_send(a, "!", 1, 0));
        XS_PASS(xs_shutdown(a, SHUT_WR));
        XS_FAIL(xs_send(a, "x", 1, 0), EPIPE);
        int bad;
        long got = recv_pattern(b, 1, 0, n, &bad);
        CHECKF(got == (long)n && !bad, "server read %ld of %zu (bad %d)", got, n, bad);
        char c = 0;
        CHECK(xs_recv(b, &c, 1, 0) == 1 && c == '!');
        CHECK(XS_PASS(xs_recv(b, &c, 1, 0)) == 0); /* the FIN */
        CHECK(XS_PASS(xs_recv(b, &c, 1, 0)) == 0); /* and again */
        /* The half-closed side can still be written to, and reads the answer. */
        size_t m = 200 * KIB;
        XS_PASS(send_pattern(b, 2, 0, m));
        XS_PASS(xs_close(b));
        got = recv_pattern(a, 2, 0, m, &bad);
        CHECKF(got == (long)m && !bad, "client read %ld of %zu (bad %d)", got, m, bad);
        CHECK(XS_PASS(xs_recv(a, &c, 1, 0)) == 0);
        /* Both FINs went: the id is free (0) once the client saw the server's FIN. */
        CHECKF(smux_get(a, XS_SMUX_STREAM_ID) == 0, "id after both FINs %d",
               smux_get(a, XS_SMUX_STREAM_ID));
        XS_PASS(xs_close(a));
        /* Half a megabyte on loopback: no stalls (bytes handed over go out at once). */
        long took = now_ms() - t0;
        CHECKF(took < 2000L * slow_factor(), "round %d took %ld ms", round, took);
    }
    /* Both sides may open streams on one session. */
    int a = XS_PASS(xs_smux_open(x->s));
    int b = XS_PASS(xs_accept(x->c, NULL, NULL));
    if (a >= 0 && b >= 0) {
        guard(a);
        guard(b);
        XS_PASS(xs_send(a, "ping", 4, 0));
        char buf[8] = {0};
        CHECK(recv_full(b, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0);
        XS_PASS(xs_send(b, "pong", 4, 0));
        CHECK(recv_full(a, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0);
    }
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
}

SCENARIO(echo_tcp4) {
    /* By URL: xs_listen_url and xs_dial. */
    int l = XS_PASS(xs_listen_url("smux+tcp://127.0.0.1:0", 16));
    if (l < 0) return;
    set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS);
    char url[64];
    snprintf(url, sizeof url, "smux+tcp://127.0.0.1:%d", bound_port(&XS, l));
    struct sess x = {.l = l, .s = -1};
    x.c = XS_PASS(xs_dial(url));
    if (x.c >= 0) {
        guard(x.c);
        x.s = XS_PASS(xs_accept(l, NULL, NULL));
        if (x.s >= 0) {
            guard(x.s);
            echo_on(&x);
        }
    }
    sess_close(&x);
}

SCENARIO(echo_tcp6) {
    struct sess x;
    if (sess_open(&x, AF_INET6, 0) == 0) echo_on(&x);
    sess_close(&x);
}

SCENARIO(echo_unix) {
    struct sess x;
    if (sess_open(&x, AF_UNIX, 0) == 0) echo_on(&x);
    sess_close(&x);
    /* And by URL. */
    struct sockaddr_un un;
    unix_addr(0, &un);
    char url[160];
    snprintf(url, sizeof url, "smux+unix://%s", un.sun_path);
    x.l = XS_PASS(xs_listen_url(url, 16));
    if (x.l < 0) return;
    set_timeout_ms(&XS, x.l, SO_RCVTIMEO, GUARD_MS);
    x.c = XS_PASS(xs_dial(url));
    x.s = x.c >= 0 ? XS_PASS(xs_accept(x.l, NULL, NULL)) : -1;
    if (x.s >= 0) {
        guard(x.c);
        guard(x.s);
        echo_on(&x);
    }
    sess_close(&x);
}

SCENARIO(echo_tls) {
    struct sess x;
    if (sess_open(&x, AF_INET, 1) == 0) echo_on(&x);
    sess_close(&x);
}

/* ===== many streams on one session ===== */

#define MS_CHUNK (16 * KIB)
#define MS_WORKERS 4

struct ms_shared {
    struct sess *x;
    int streams;          /* in all */
    size_t size;          /* bytes each way per stream */
    long deadline;        /* now_ms() limit */
    atomic_int accepted;  /* server side */
    atomic_int echoed;    /* client streams fully checked */
    atomic_int failures;
    char error[256];
    pthread_mutex_t lock;
};

static void ms_fail(struct ms_shared *m, const char *fmt, ...) {
    int err = errno;
    if (atomic_fetch_add(&m->failures, 1) > 0) return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&m->lock);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    size_t k = strlen(m->error);
    snprintf(m->error + k, sizeof m->error - k, " (errno %d %s; last xs error: %s)", err,
             strerror(err), xs_last_error());
    pthread_mutex_unlock(&m->lock);
    va_end(ap);
}

struct ms_client {
    struct ms_shared *m;
    int count;
    pthread_t th;
};

/* Opens count streams and, polling all of them, sends each its pattern (then a
 * half-close) and checks what comes back. */
static void *ms_client_run(void *arg) {
    struct ms_client *w = arg;
    struct ms_shared *m = w->m;
    int n = w->count;
    int *sid = calloc((size_t)n, sizeof *sid);
    uint32_t *seed = calloc((size_t)n, sizeof *seed);
    size_t *sent = calloc((size_t)n, sizeof *sent), *got = calloc((size_t)n, sizeof *got);
    char *done = calloc((size_t)n, 1);
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    int *which = calloc((size_t)n, sizeof *which);
    unsigned char *buf = malloc(MS_CHUNK);
    int left = n;
    for (int i = 0; i < n; i++) {
        sid[i] = xs_smux_open(m->x->c);
        if (sid[i] < 0) {
            ms_fail(m, "xs_smux_open #%d", i);
            left = 0;
            n = i;
            break;
        }
        seed[i] = (uint32_t)smux_get(sid[i], XS_SMUX_STREAM_ID);
        if (nonblock(sid[i]) < 0) ms_fail(m, "O_NONBLOCK");
    }
    while (left > 0 && atomic_load(&m->failures) == 0) {
        if (now_ms() > m->deadline) {
            ms_fail(m, "client: %d streams not done in time", left);
            break;
        }
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            p[k] = (struct pollfd){.fd = sid[i], .events = POLLIN | (sent[i] < m->size ? POLLOUT : 0)};
            which[k++] = i;
        }
        int r = xs_poll(p, (nfds_t)k, 1000);
        if (r < 0) {
            ms_fail(m, "xs_poll");
            break;
        }
        for (int j = 0; j < k && r > 0; j++) {
            int i = which[j];
            if (!p[j].revents) continue;
            if ((p[j].revents & (POLLOUT | POLLERR)) && sent[i] < m->size) {
                size_t want = m->size - sent[i] < MS_CHUNK ? m->size - sent[i] : MS_CHUNK;
                ssize_t w2 = xs_send(sid[i], pat(seed[i], sent[i]), want, 0);
                if (w2 > 0) {
                    sent[i] += (size_t)w2;
                    if (sent[i] == m->size && xs_shutdown(sid[i], SHUT_WR) < 0)
                        ms_fail(m, "client shutdown stream %u", seed[i]);
                } else if (!(w2 < 0 && errno == EAGAIN)) {
                    ms_fail(m, "client send on stream %u returned %zd", seed[i], w2);
                }
            }
            if (p[j].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r2 = xs_recv(sid[i], buf, MS_CHUNK, 0);
                if (r2 > 0) {
                    if (got[i] + (size_t)r2 > m->size || !pat_ok(buf, (size_t)r2, seed[i], got[i]))
                        ms_fail(m, "stream %u: wrong bytes at offset %zu", seed[i], got[i]);
                    got[i] += (size_t)r2;
                } else if (r2 == 0) {
                    if (got[i] != m->size)
                        ms_fail(m, "stream %u: end after %zu of %zu bytes", seed[i], got[i], m->size);
                    else atomic_fetch_add(&m->echoed, 1);
                    done[i] = 1;
                    left--;
                } else if (errno != EAGAIN) {
                    ms_fail(m, "client recv on stream %u", seed[i]);
                }
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (xs_close(sid[i]) < 0) ms_fail(m, "client close stream %u", seed[i]);
    free(sid), free(seed), free(sent), free(got), free(done), free(p), free(which), free(buf);
    return NULL;
}

struct ms_echo {
    int sid;
    size_t plen, poff;
    int eof;
    unsigned char *buf;
};

struct ms_server {
    struct ms_shared *m;
    pthread_t th;
};

/* Accepts streams (the session sid is non-blocking and polled by every server
 * worker) and echoes them; closes each after its end. */
static void *ms_server_run(void *arg) {
    struct ms_server *w = arg;
    struct ms_shared *m = w->m;
    int cap = m->streams, n = 0, left = 0;
    struct ms_echo *e = calloc((size_t)cap, sizeof *e);
    struct pollfd *p = calloc((size_t)cap + 1, sizeof *p);
    int *which = calloc((size_t)cap + 1, sizeof *which);
    while (atomic_load(&m->failures) == 0) {
        int accepting = atomic_load(&m->accepted) < m->streams;
        if (!accepting && left == 0) break;
        if (now_ms() > m->deadline) {
            ms_fail(m, "server: %d streams open, %d accepted in all, not done in time", left,
                    atomic_load(&m->accepted));
            break;
        }
        int k = 0;
        if (accepting) {
            p[k] = (struct pollfd){.fd = m->x->s, .events = POLLIN};
            which[k++] = -1;
        }
        for (int i = 0; i < n; i++) {
            if (e[i].sid < 0) continue;
            short ev = e[i].plen ? POLLOUT : (e[i].eof ? 0 : POLLIN);
            p[k] = (struct pollfd){.fd = e[i].sid, .events = ev};
            which[k++] = i;
        }
        int r = xs_poll(p, (nfds_t)k, 100);
        if (r < 0) {
            ms_fail(m, "server xs_poll");
            break;
        }
        for (int j = 0; j < k && r > 0; j++) {
            if (!p[j].revents) continue;
            int i = which[j];
            if (i < 0) {
                int s = xs_accept(m->x->s, NULL, NULL);
                if (s < 0) {
                    if (errno != EAGAIN) ms_fail(m, "server xs_accept(session)");
                    continue;
                }
                int before = atomic_fetch_add(&m->accepted, 1);
                if (before >= m->streams || n >= cap) {
                    ms_fail(m, "more streams accepted than opened");
                    xs_close(s);
                    continue;
                }
                if (nonblock(s) < 0) ms_fail(m, "O_NONBLOCK on an accepted stream");
                e[n] = (struct ms_echo){.sid = s, .buf = malloc(MS_CHUNK)};
                n++;
                left++;
                continue;
            }
            struct ms_echo *s = &e[i];
            if (s->plen) {
                ssize_t w2 = xs_send(s->sid, s->buf + s->poff, s->plen, 0);
                if (w2 > 0) {
                    s->poff += (size_t)w2;
                    s->plen -= (size_t)w2;
                } else if (!(w2 < 0 && errno == EAGAIN)) {
                    ms_fail(m, "server send returned %zd", w2);
                }
            } else if (!s->eof) {
                ssize_t r2 = xs_recv(s->sid, s->buf, MS_CHUNK, 0);
                if (r2 > 0) {
                    s->plen = (size_t)r2;
                    s->poff = 0;
                } else if (r2 == 0) {
                    s->eof = 1;
                } else if (errno != EAGAIN) {
                    ms_fail(m, "server recv");
                }
            }
            if (s->eof && !s->plen) {
                if (xs_close(s->sid) < 0) ms_fail(m, "server close");
                s->sid = -1;
                left--;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (e[i].sid >= 0) xs_close(e[i].sid);
        free(e[i].buf);
    }
    free(e), free(p), free(which);
    return NULL;
}

SCENARIO(many_streams) {
    struct sess x;
    if (sess_open(&x, AF_INET, 0) < 0) {
        sess_close(&x);
        return;
    }
    XS_PASS(nonblock(x.s));
    struct ms_shared m = {.x = &x, .streams = SCALE(1000, 100), .size = 64 * KIB,
                          .deadline = now_ms() + 40000L * slow_factor()};
    pthread_mutex_init(&m.lock, NULL);
    struct ms_client c[MS_WORKERS];
    struct ms_server s[MS_WORKERS];
    long t0 = now_ms();
    for (int i = 0; i < MS_WORKERS; i++) {
        s[i] = (struct ms_server){.m = &m};
        CHECK(pthread_create(&s[i].th, NULL, ms_server_run, &s[i]) == 0);
    }
    for (int i = 0; i < MS_WORKERS; i++) {
        c[i] = (struct ms_client){.m = &m, .count = m.streams / MS_WORKERS};
        CHECK(pthread_create(&c[i].th, NULL, ms_client_run, &c[i]) == 0);
    }
    for (int i = 0; i < MS_WORKERS; i++) pthread_join(c[i].th, NULL);
    for (int i = 0; i < MS_WORKERS; i++) pthread_join(s[i].th, NULL);
    CHECKF(atomic_load(&m.failures) == 0, "%s", m.error);
    CHECKF(atomic_load(&m.echoed) == m.streams, "%d of %d streams echoed",
           atomic_load(&m.echoed), m.streams);
    CHECKF(atomic_load(&m.accepted) == m.streams, "%d of %d accepted", atomic_load(&m.accepted),
           m.streams);
    if (getenv("SMUX_VERBOSE")) fprintf(stderr, "  many_streams: %ld ms\n", now_ms() - t0);
    /* Every stream closed both ways: none left on either session. */
    int lc = streams_left(x.c), ls = streams_left(x.s);
    CHECKF(lc == 0 && ls == 0, "streams left: client %d, server %d", lc, ls);
    pthread_mutex_destroy(&m.lock);
    sess_close(&x);
}

/* ===== fairness: one unread stream stalls nobody ===== */

#define FAIR_STREAMS 16
#define FAIR_UNREAD_BYTES (2 * MIB)

struct fair_io {
    int sid;
    uint32_t seed;
    size_t size;
    atomic_long done;  /* bytes sent / read so far */
    int result;        /* 0 ok, -1 failed */
    int err;
    int bad;
    char error[200];
    pthread_t th;
};

static void *fair_writer(void *arg) {
    struct fair_io *f = arg;
    size_t off = 0;
    f->result = 0;
    while (off < f->size) {
        size_t k = f->size - off < 64 * KIB ? f->size - off : 64 * KIB;
        if (send_all(f->sid, pat(f->seed, off), k) < 0) {
            f->result = -1;
            f->err = errno;
            snprintf(f->error, sizeof f->error, "%s", xs_last_error());
            break;
        }
        off += k;
        atomic_store(&f->done, (long)off);
    }
    if (xs_close(f->sid) < 0 && f->result == 0) {
        f->result = -1;
        f->err = errno;
    }
    return NULL;
}

static void *fair_reader(void *arg) {
    struct fair_io *f = arg;
    static __thread unsigned char buf[64 * KIB];
    size_t off = 0;
    f->result = 0;
    for (;;) {
        ssize_t r = xs_recv(f->sid, buf, sizeof buf, 0);
        if (r < 0) {
            f->result = -1;
            f->err = errno;
            snprintf(f->error, sizeof f->error, "%s", xs_last_error());
            break;
        }
        if (r == 0) break;
        if (off + (size_t)r > f->size || !pat_ok(buf, (size_t)r, f->seed, off)) {
            f->bad = 1;
            f->result = -1;
            break;
        }
        off += (size_t)r;
        atomic_store(&f->done, (long)off);
    }
    if (off != f->size) f->result = -1;
    return NULL;
}

SCENARIO(fairness) {
    struct sess x;
    if (sess_open(&x, AF_INET, 0) < 0) {
        sess_close(&x);
        return;
    }
    static struct fair_io w[FAIR_STREAMS], r[FAIR_STREAMS];
    size_t each = (size_t)SCALE(64, 8) * MIB;
    int n = 0;
    for (; n < FAIR_STREAMS; n++) {
        int a, b;
        if (stream_open(&x, &a, &b) < 0) break;
        int id = smux_get(a, XS_SMUX_STREAM_ID);
        CHECK(id == smux_get(b, XS_SMUX_STREAM_ID));
        /* No time-out on the unread stream's writer: it must wait, not fail. */
        if (n == FAIR_STREAMS - 1) set_timeout_ms(&XS, a, SO_SNDTIMEO, 0);
        size_t size = n == FAIR_STREAMS - 1 ? FAIR_UNREAD_BYTES : each;
        memset(&w[n], 0, sizeof w[n]);
        memset(&r[n], 0, sizeof r[n]);
        w[n].sid = a, w[n].seed = (uint32_t)id, w[n].size = size;
        r[n].sid = b, r[n].seed = (uint32_t)id, r[n].size = size;
    }
    if (n < FAIR_STREAMS) {
        sess_close(&x);
        return;
    }
    long t0 = now_ms();
    for (int i = 0; i < FAIR_STREAMS; i++) CHECK(pthread_create(&w[i].th, NULL, fair_writer, &w[i]) == 0);
    for (int i = 0; i < FAIR_STREAMS - 1; i++)
        CHECK(pthread_create(&r[i].th, NULL, fair_reader, &r[i]) == 0);
    for (int i = 0; i < FAIR_STREAMS - 1; i++) {
        pthread_join(r[i].th, NULL);
        CHECKF(r[i].result == 0, "stream %u: read %ld of %zu (bad %d, errno %s, %s)", r[i].seed,
               atomic_load(&r[i].done), r[i].size, r[i].bad, strerror(r[i].err), r[i].error);
    }
    for (int i = 0; i < FAIR_STREAMS - 1; i++) {
        pthread_join(w[i].th, NULL);
        CHECKF(w[i].result == 0, "writer %u: %s (%s)", w[i].seed, strerror(w[i].err), w[i].error);
    }
    long took = now_ms() - t0;
    if (getenv("SMUX_VERBOSE"))
        fprintf(stderr, "  fairness: 15 x %zu MiB in %ld ms\n", each / MIB, took);
    /* The unread stream's writer waits with exactly a window handed over. */
    struct fair_io *uw = &w[FAIR_STREAMS - 1], *ur = &r[FAIR_STREAMS - 1];
    CHECKF(atomic_load(&uw->done) == WINDOW && uw->result == 0,
           "unread stream's writer: %ld bytes handed over, result %d (%s)", atomic_load(&uw->done),
           uw->result, strerror(uw->err));
    /* Its data: what the window let in, then the rest as the writer goes on. */
    CHECK(wait_for(&XS, ur->sid, POLLIN, GUARD_MS) & POLLIN);
    fair_reader(ur);
    CHECKF(ur->result == 0, "unread stream: read %ld of %zu (bad %d, errno %s, %s)",
           atomic_load(&ur->done), ur->size, ur->bad, strerror(ur->err), ur->error);
    pthread_join(uw->th, NULL);
    CHECKF(uw->result == 0 && atomic_load(&uw->done) == (long)uw->size,
           "unread stream's writer: %ld of %zu (%s)", atomic_load(&uw->done), uw->size,
           strerror(uw->err));
    for (int i = 0; i < FAIR_STREAMS; i++) xs_close(r[i].sid);
    sess_close(&x);
}

/* ===== flow control ===== */

/* Non-blocking sends of seed's pattern from *off until EAGAIN; the bytes taken. */
static long fill_window(int a, uint32_t seed, size_t *off) {
    long total = 0;
    for (int guard_n = 0; guard_n < 10000; guard_n++) {
        ssize_t w = xs_send(a, pat(seed, *off), 16 * KIB, MSG_DONTWAIT);
        if (w < 0) {
            CHECKF(errno == EAGAIN, "send: %s", strerror(errno));
            break;
        }
        total += w;
        *off += (size_t)w;
    }
    return total;
}

static void flow_control_with(int window) {
    struct sess x;
    if ((window ? sess_open_opts(&x, AF_INET, 0, XS_SMUX_WINDOW, window, XS_SMUX_WINDOW, window)
                : sess_open(&x, AF_INET, 0)) < 0) {
        sess_close(&x);
        return;
    }
    if (!window) window = WINDOW;
    CHECK(smux_get(x.c, XS_SMUX_WINDOW) == window);
    CHECK(smux_get(x.s, XS_SMUX_WINDOW) == window);
    int a, b;
    if (stream_open(&x, &a, &b) == 0) {
        uint32_t seed = 3;
        size_t off = 0;
        long first = fill_window(a, seed, &off);
        CHECKF(first == window, "non-blocking sends took %ld bytes, window %d", first, window);
        CHECK(wait_for(&XS, a, POLLOUT, 100) == 0);
        /* Another stream on the session is not held up. */
        int a2, b2;
        if (stream_open(&x, &a2, &b2) == 0) {
            XS_PASS(xs_send(a2, "free", 4, MSG_DONTWAIT));
            char t[4];
            CHECK(recv_full(b2, t, 4) == 4 && memcmp(t, "free", 4) == 0);
            xs_close(a2);
            xs_close(b2);
        }
        /* Reading half a window sends a CFM: the writer resumes for that much. */
        int bad;
        long got = recv_pattern(b, seed, 0, (size_t)window / 2, &bad);
        CHECKF(got == window / 2 && !bad, "read %ld (bad %d)", got, bad);
        CHECK(wait_for(&XS, a, POLLOUT, GUARD_MS) & POLLOUT);
        long second = fill_window(a, seed, &off);
        CHECKF(second == window / 2, "after the CFM: %ld more bytes", second);
        /* Everything sent arrives intact. */
        got = recv_pattern(b, seed, (size_t)window / 2, off - (size_t)window / 2, &bad);
        CHECKF(got == (long)(off - (size_t)window / 2) && !bad, "read %ld (bad %d)", got, bad);
        xs_close(a);
        xs_close(b);
    }
    sess_close(&x);
}

SCENARIO(flow_control) {
    flow_control_with(0);
    flow_control_with(64 * KIB);
}

/* ===== the write time-out's partial rule ===== */

SCENARIO(send_timeout_partial) {
    struct sess x;
    int a, b;
    if (sess_open(&x, AF_INET, 0) == 0 && stream_open(&x, &a, &b) == 0) {
        XS_PASS(set_timeout_ms(&XS, a, SO_SNDTIMEO, 100));
        size_t n = 2 * MIB;
        unsigned char *big = malloc(n);
        for (size_t o = 0; o < n; o += 64 * KIB) memcpy(big + o, pat(9, o), 64 * KIB);
        long t0 = now_ms();
        errno = 0;
        ssize_t w = xs_send(a, big, n, 0);
        long took = now_ms() - t0;
        CHECKF(w == WINDOW, "a 2 MiB send with a 100 ms time-out returned %zd (%s)", w,
               w < 0 ? strerror(errno) : "ok");
        CHECKF(took >= 90 && took < 1000 * slow_factor(), "took %ld ms", took);
        t0 = now_ms();
        XS_FAIL(xs_send(a, big, 1000, 0), EAGAIN);
        took = now_ms() - t0;
        CHECKF(took >= 90 && took < 1000 * slow_factor(), "took %ld ms", took);
        /* What was handed over arrives. */
        int bad;
        long got = recv_pattern(b, 9, 0, WINDOW, &bad);
        CHECKF(got == WINDOW && !bad, "read %ld (bad %d)", got, bad);
        free(big);
        xs_close(a);
        xs_close(b);
    }
    sess_close(&x);
}

/* ===== MSG_PEEK, MSG_DONTWAIT, SO_RCVTIMEO per stream, xs_sendmsg ===== */

struct timed_recv {
    int sid;
    long result, took;
    int err;
    char buf[16];
    pthread_t th;
};

static void *timed_recv_run(void *arg) {
    struct timed_recv *t = arg;
    long t0 = now_ms();
    errno = 0;
    t->result = xs_recv(t->sid, t->buf, sizeof t->buf, 0);
    t->err = errno;
    t->took = now_ms() - t0;
    return NULL;
}

SCENARIO(peek_dontwait_timeouts) {
    struct sess x;
    int a1 = -1, b1 = -1, a2 = -1, b2 = -1;
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a1, &b1) < 0 ||
        stream_open(&x, &a2, &b2) < 0)
        goto out;
    char buf[16];
    XS_FAIL(xs_recv(a1, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    XS_FAIL(xs_recv(a1, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK), EAGAIN);
    XS_PASS(xs_send(b1, "hello", 5, 0));
    CHECK(wait_for(&XS, a1, POLLIN, GUARD_MS) & POLLIN);
    memset(buf, 0, sizeof buf);
    CHECK(xs_recv(a1, buf, sizeof buf, MSG_PEEK) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(xs_recv(a1, buf, 2, MSG_PEEK) == 2 && memcmp(buf, "he", 2) == 0);
    memset(buf, 0, sizeof buf);
    CHECK(xs_recv(a1, buf, 3, 0) == 3 && memcmp(buf, "hel", 3) == 0);
    CHECK(xs_recv(a1, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) == 2 && memcmp(buf, "lo", 2) == 0);
    CHECK(xs_recv(a1, buf, sizeof buf, MSG_DONTWAIT) == 2 && memcmp(buf, "lo", 2) == 0);
    XS_FAIL(xs_recv(a1, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* O_NONBLOCK. */
    XS_PASS(nonblock(a1));
    XS_FAIL(xs_recv(a1, buf, sizeof buf, 0), EAGAIN);
    XS_PASS(xs_fcntl(a1, F_SETFL, 0));
    /* xs_sendmsg gathers, xs_recvmsg scatters. */
    struct iovec iov[2] = {{(void *)"ab", 2}, {(void *)"cd", 2}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    CHECK(XS_PASS(xs_sendmsg(b1, &mh, 0)) == 4);
    CHECK(recv_full(a1, buf, 4) == 4 && memcmp(buf, "abcd", 4) == 0);
    XS_FAIL(xs_recvmsg(a1, &mh, MSG_DONTWAIT), EAGAIN);
    XS_PASS(xs_send(b1, "wxyz", 4, 0));
    char r1[3] = {0}, r2[3] = {0};
    struct iovec riov[2] = {{r1, 1}, {r2, 3}};
    struct msghdr rmh = {.msg_iov = riov, .msg_iovlen = 2};
    CHECK(XS_PASS(xs_recvmsg(a1, &rmh, 0)) == 4 && r1[0] == 'w' && memcmp(r2, "xyz", 3) == 0);
    /* A 150 ms SO_RCVTIMEO on a1 while a thread waits on a2 (GUARD_MS). */
    XS_PASS(set_timeout_ms(&XS, a1, SO_RCVTIMEO, 150));
    struct timeval tv;
    socklen_t tl = sizeof tv;
    XS_PASS(xs_getsockopt(a2, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl));
    CHECKF(tv.tv_sec * 1000 + tv.tv_usec / 1000 == GUARD_MS, "a2's SO_RCVTIMEO %ld ms",
           (long)(tv.tv_sec * 1000 + tv.tv_usec / 1000));
    struct timed_recv t2 = {.sid = a2};
    CHECK(pthread_create(&t2.th, NULL, timed_recv_run, &t2) == 0);
    long t0 = now_ms();
    XS_FAIL(xs_recv(a1, buf, sizeof buf, 0), EAGAIN);
    long took = now_ms() - t0;
    CHECKF(took >= 140 && took < 1000 * slow_factor(), "a1 timed out after %ld ms", took);
    msleep(250);
    XS_PASS(xs_send(b2, "late", 4, 0));
    pthread_join(t2.th, NULL);
    CHECKF(t2.result == 4 && memcmp(t2.buf, "late", 4) == 0 && t2.took >= 350,
           "a2's recv returned %ld (%s) after %ld ms", t2.result, strerror(t2.err), t2.took);
    /* a1's time-out stays its own. */
    t0 = now_ms();
    XS_FAIL(xs_recv(a1, buf, sizeof buf, 0), EAGAIN);
    took = now_ms() - t0;
    CHECKF(took >= 140 && took < 1000 * slow_factor(), "a1 timed out after %ld ms", took);
out:
    if (a1 >= 0) xs_close(a1);
    if (b1 >= 0) xs_close(b1);
    if (a2 >= 0) xs_close(a2);
    if (b2 >= 0) xs_close(b2);
    sess_close(&x);
}

/* ===== xs_poll ===== */

struct later {
    int sid;
    long after_ms;
    int what; /* 0: send "x", 1: read half a window, 2: xs_smux_open, 3: xs_close */
    long result;
    int err;
    pthread_t th;
};

static void *later_run(void *arg) {
    struct later *l = arg;
    msleep(l->after_ms);
    errno = 0;
    if (l->what == 0) l->result = xs_send(l->sid, "x", 1, 0);
    else if (l->what == 1) {
        int bad;
        l->result = recv_pattern(l->sid, 4, 0, WINDOW / 2, &bad);
        if (bad) l->result = -2;
    } else if (l->what == 2) l->result = xs_smux_open(l->sid);
    else l->result = xs_close(l->sid);
    l->err = errno;
    return NULL;
}

static void start_later(struct later *l, int sid, long after_ms, int what) {
    *l = (struct later){.sid = sid, .after_ms = after_ms, .what = what};
    if (pthread_create(&l->th, NULL, later_run, l) != 0) exit(2);
}

SCENARIO(poll_streams) {
    struct sess x;
    int a = -1, b = -1;
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a, &b) < 0) goto out;
    struct later l;
    /* POLLIN when data arrives from another thread. */
    CHECK(wait_for(&XS, a, POLLIN, 0) == 0);
    long t0 = now_ms();
    start_later(&l, b, 100, 0);
    int ev = wait_for(&XS, a, POLLIN, GUARD_MS);
    long took = now_ms() - t0;
    pthread_join(l.th, NULL);
    CHECKF((ev & POLLIN) && took >= 90, "revents %#x after %ld ms", ev, took);
    char c;
    CHECK(xs_recv(a, &c, 1, 0) == 1 && c == 'x');
    /* POLLOUT when the window reopens. */
    size_t off = 0;
    CHECK(wait_for(&XS, a, POLLOUT, 0) & POLLOUT);
    CHECK(fill_window(a, 4, &off) == WINDOW);
    CHECK(wait_for(&XS, a, POLLOUT, 50) == 0);
    t0 = now_ms();
    start_later(&l, b, 100, 1);
    ev = wait_for(&XS, a, POLLOUT, GUARD_MS);
    took = now_ms() - t0;
    pthread_join(l.th, NULL);
    CHECKF((ev & POLLOUT) && took >= 90, "revents %#x after %ld ms", ev, took);
    CHECKF(l.result == WINDOW / 2, "reader: %ld", l.result);
    int bad;
    CHECK(recv_pattern(b, 4, WINDOW / 2, WINDOW / 2, &bad) == WINDOW / 2 && !bad);
    /* POLLIN on the session when a stream can be accepted. */
    CHECK(wait_for(&XS, x.s, POLLIN, 50) == 0);
    t0 = now_ms();
    start_later(&l, x.c, 100, 2);
    ev = wait_for(&XS, x.s, POLLIN, GUARD_MS);
    took = now_ms() - t0;
    pthread_join(l.th, NULL);
    CHECKF((ev & POLLIN) && took >= 90, "session revents %#x after %ld ms", ev, took);
    CHECK(l.result >= 0);
    int b3 = XS_PASS(xs_accept4(x.s, NULL, NULL, 0));
    CHECK(wait_for(&XS, x.s, POLLIN, 0) == 0);
    /* POLLHUP after the peer's FIN (and POLLIN: recv returns 0). */
    if (b3 >= 0 && l.result >= 0) {
        CHECK(wait_for(&XS, b3, POLLIN, 0) == 0);
        XS_PASS(xs_close((int)l.result));
        ev = wait_for(&XS, b3, POLLIN, GUARD_MS);
        CHECKF((ev & POLLIN) && (ev & POLLHUP), "revents %#x after the peer's close", ev);
        CHECK(xs_recv(b3, &c, 1, MSG_DONTWAIT) == 0);
        xs_close(b3);
    }
    /* A FIN after data: POLLIN first; POLLHUP too. */
    XS_PASS(xs_send(b, "yz", 2, 0));
    XS_PASS(xs_shutdown(b, SHUT_WR));
    long end = now_ms() + GUARD_MS;
    ev = 0;
    while (!(ev & POLLHUP) && now_ms() < end) ev = wait_for(&XS, a, POLLIN, 100);
    CHECKF((ev & POLLIN) && (ev & POLLHUP), "revents %#x", ev);
    char two[2];
    CHECK(xs_recv(a, two, 2, 0) == 2 && memcmp(two, "yz", 2) == 0);
    CHECK(xs_recv(a, two, 2, 0) == 0);
out:
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
    sess_close(&x);
}

/* ===== session close ===== */

SCENARIO(session_close) {
    struct sess x;
    int a = -1, b = -1, a2 = -1, b2 = -1;
    /* Our session closed under a blocked stream recv in another thread. */
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a, &b) < 0) goto out;
    struct timed_recv tr = {.sid = a};
    CHECK(pthread_create(&tr.th, NULL, timed_recv_run, &tr) == 0);
    msleep(100);
    long t0 = now_ms();
    XS_PASS(xs_close(x.c));
    x.c = -1;
    pthread_join(tr.th, NULL);
    long took = now_ms() - t0;
    CHECKF(tr.result == -1 && tr.err == ECONNRESET && took < 1000 * slow_factor(),
           "blocked recv returned %ld (%s) %ld ms after the session's close", tr.result,
           strerror(tr.err), took);
    char c;
    XS_FAIL(xs_send(a, "x", 1, 0), ECONNRESET);
    XS_FAIL(xs_recv(a, &c, 1, 0), ECONNRESET);
    XS_PASS(xs_close(a));
    a = -1;
    /* The peer sees the connection end (ECONNRESET, or the end of the stream should
     * the closing side send FINs first). */
    errno = 0;
    long r = xs_recv(b, &c, 1, 0);
    CHECKF(r == 0 || (r == -1 && errno == ECONNRESET), "peer's recv: %ld (%s)", r, strerror(errno));
    XS_PASS(xs_close(b));
    b = -1;
    sess_close(&x);

    /* The peer's session closed: it sent FIN for each stream first, so our streams
     * read what came, then the end (0); sends fail, the session is gone. */
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a, &b) < 0 ||
        stream_open(&x, &a2, &b2) < 0)
        goto out;
    XS_PASS(xs_send(b, "abc", 3, 0));
    CHECK(wait_for(&XS, a, POLLIN, GUARD_MS) & POLLIN);
    XS_PASS(xs_close(x.s));
    x.s = -1;
    t0 = now_ms();
    CHECK(xs_recv(a2, &c, 1, 0) == 0); /* blocks until the end is seen */
    took = now_ms() - t0;
    CHECKF(took < 1000 * slow_factor(), "%ld ms", took);
    char buf[8] = {0};
    CHECK(xs_recv(a, buf, sizeof buf, 0) == 3 && memcmp(buf, "abc", 3) == 0);
    CHECK(xs_recv(a, buf, sizeof buf, 0) == 0);
    CHECK(wait_for(&XS, a, POLLIN, 0) != 0);
    XS_FAIL(xs_send(a, "x", 1, 0), ECONNRESET);
    XS_FAIL(xs_smux_open(x.c), ECONNRESET);
    XS_FAIL(xs_accept(x.c, NULL, NULL), ECONNRESET);
out:
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
    if (a2 >= 0) xs_close(a2);
    if (b2 >= 0) xs_close(b2);
    sess_close(&x);
}

/* ===== xs_close of a stream from another thread ===== */

SCENARIO(close_wakes_recv) {
    struct sess x;
    int a = -1, b = -1;
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a, &b) < 0) goto out;
    struct timed_recv tr = {.sid = a};
    CHECK(pthread_create(&tr.th, NULL, timed_recv_run, &tr) == 0);
    msleep(100);
    long t0 = now_ms();
    XS_PASS(xs_close(a));
    pthread_join(tr.th, NULL);
    long took = now_ms() - t0;
    CHECKF(tr.result == -1 && tr.err == EBADF && took < 1000 * slow_factor(),
           "blocked recv returned %ld (%s) %ld ms after the close", tr.result, strerror(tr.err), took);
    a = -1;
    /* The peer sees the FIN; the session goes on. */
    char c;
    CHECK(XS_PASS(xs_recv(b, &c, 1, 0)) == 0);
    int a2, b2;
    if (stream_open(&x, &a2, &b2) == 0) {
        XS_PASS(xs_send(a2, "k", 1, 0));
        CHECK(xs_recv(b2, &c, 1, 0) == 1 && c == 'k');
        xs_close(a2);
        xs_close(b2);
    }
    /* A close from another thread wakes a blocked session accept too. */
    struct later l;
    start_later(&l, x.s, 100, 3);
    t0 = now_ms();
    XS_FAIL(xs_accept(x.s, NULL, NULL), EBADF);
    took = now_ms() - t0;
    pthread_join(l.th, NULL);
    CHECKF(took < 1000 * slow_factor(), "%ld ms", took);
    x.s = -1;
out:
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
    sess_close(&x);
}

/* ===== stream ids ===== */

SCENARIO(stream_ids) {
    struct sess x;
    if (sess_open(&x, AF_INET, 0) < 0) goto out;
    /* Open and close many times: the client opens a batch, the server accepts and
     * closes each, the client reads each one's end and closes it. Ids are recycled
     * once FIN went both ways (beyond 65,535 opens natively, so the id space wraps). */
    int cycles = SCALE(70000, 3000), batch = 64, opened = 0;
    int ids[64], as[64];
    int max_id = 0, same_ids = 1, ends = 1;
    long t0 = now_ms();
    while (opened < cycles && harness_failures == 0) {
        int k = cycles - opened < batch ? cycles - opened : batch;
        for (int i = 0; i < k; i++) {
            as[i] = xs_smux_open(x.c);
            if (as[i] < 0) {
                fprintf(stderr, "  open #%d failed: %s (%s)\n", opened + i, strerror(errno),
                        xs_last_error());
                CHECK(as[i] >= 0);
                k = i;
                break;
            }
            guard(as[i]);
            ids[i] = smux_get(as[i], XS_SMUX_STREAM_ID);
            if (ids[i] > max_id) max_id = ids[i];
        }
        for (int i = 0; i < k; i++) {
            int b = xs_accept(x.s, NULL, NULL);
            if (b < 0) {
                fprintf(stderr, "  accept #%d failed: %s (%s)\n", opened + i, strerror(errno),
                        xs_last_error());
                CHECK(b >= 0);
                break;
            }
            if (smux_get(b, XS_SMUX_STREAM_ID) != ids[i]) same_ids = 0;
            XS_PASS(xs_close(b));
        }
        for (int i = 0; i < k; i++) {
            char c;
            if (xs_recv(as[i], &c, 1, 0) != 0) ends = 0;
            XS_PASS(xs_close(as[i]));
        }
        opened += k;
        if (k == 0) break;
    }
    CHECKF(opened == cycles, "%d of %d opens", opened, cycles);
    CHECKF(same_ids, "accepted streams came with other ids than opened");
    CHECKF(ends, "a stream's recv did not return 0 after the peer's close");
    if (getenv("SMUX_VERBOSE"))
        fprintf(stderr, "  stream_ids: %d cycles in %ld ms, highest id %d\n", opened,
                now_ms() - t0, max_id);
    if (!slow()) CHECKF(max_id == 65535, "highest id %d after %d opens", max_id, opened);
    int lc = streams_left(x.c), ls = streams_left(x.s);
    CHECKF(lc == 0 && ls == 0, "streams left: client %d, server %d", lc, ls);
    /* Still working after the wrap. */
    int a, b;
    if (stream_open(&x, &a, &b) == 0) {
        XS_PASS(xs_send(a, "w", 1, 0));
        char c;
        CHECK(xs_recv(b, &c, 1, 0) == 1 && c == 'w');
        xs_close(a);
        xs_close(b);
    }
out:
    sess_close(&x);
}

SCENARIO(stream_limits) {
    struct sess x;
    /* XS_SMUX_MAX_STREAMS 3 on the client: the 4th open fails EMFILE. */
    if (sess_open_opts(&x, AF_INET, 0, XS_SMUX_MAX_STREAMS, 3, 0, 0) < 0) goto out;
    CHECK(smux_get(x.c, XS_SMUX_MAX_STREAMS) == 3);
    int a[3], b[3];
    for (int i = 0; i < 3; i++) {
        if (stream_open(&x, &a[i], &b[i]) < 0) goto out;
        CHECKF(smux_get(a[i], XS_SMUX_STREAM_ID) == i + 1, "stream %d has id %d", i,
               smux_get(a[i], XS_SMUX_STREAM_ID));
    }
    CHECK(smux_get(x.c, XS_SMUX_STREAMS) == 3);
    XS_FAIL(xs_smux_open(x.c), EMFILE);
    /* Once one is closed both ways, one more may open. */
    XS_PASS(xs_close(a[1]));
    XS_PASS(xs_close(b[1]));
    long end = now_ms() + GUARD_MS;
    int more = -1;
    while (more < 0 && now_ms() < end) {
        more = xs_smux_open(x.c);
        if (more < 0) {
            CHECKF(errno == EMFILE, "%s", strerror(errno));
            msleep(2);
        }
    }
    CHECKF(more >= 0, "xs_smux_open still fails EMFILE %ld ms after the stream was closed both ways",
           (long)GUARD_MS);
    if (more >= 0) {
        int bm = XS_PASS(xs_accept(x.s, NULL, NULL));
        XS_FAIL(xs_smux_open(x.c), EMFILE);
        xs_close(more);
        if (bm >= 0) xs_close(bm);
    }
    for (int i = 0; i < 3; i += 2) {
        xs_close(a[i]);
        xs_close(b[i]);
    }
    sess_close(&x);

    /* XS_SMUX_MAX_STREAMS 2 on the server: the peer's third stream is refused (FIN). */
    if (sess_open_opts(&x, AF_INET, 0, 0, 0, XS_SMUX_MAX_STREAMS, 2) < 0) goto out;
    CHECK(smux_get(x.s, XS_SMUX_MAX_STREAMS) == 2);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = XS_PASS(xs_smux_open(x.c));
        guard(c[i]);
    }
    int s0 = XS_PASS(xs_accept(x.s, NULL, NULL)), s1 = XS_PASS(xs_accept(x.s, NULL, NULL));
    char ch;
    CHECK(XS_PASS(xs_recv(c[2], &ch, 1, 0)) == 0); /* refused */
    XS_PASS(set_timeout_ms(&XS, x.s, SO_RCVTIMEO, 100));
    XS_FAIL(xs_accept(x.s, NULL, NULL), EAGAIN);
    XS_PASS(xs_send(c[1], "ok", 2, 0));
    char two[2];
    CHECK(s1 >= 0 && recv_full(s1, two, 2) == 2 && memcmp(two, "ok", 2) == 0);
    for (int i = 0; i < 3; i++) xs_close(c[i]);
    if (s0 >= 0) xs_close(s0);
    if (s1 >= 0) xs_close(s1);
out:
    sess_close(&x);
}

/* ===== bad input from a kernel peer ===== */

/* A good xsocket client session on the same listener echoes one stream. */
static void good_session_works(int client, int server) {
    int a = XS_PASS(xs_smux_open(client));
    int b = XS_PASS(xs_accept(server, NULL, NULL));
    if (a >= 0 && b >= 0) {
        guard(a);
        guard(b);
        XS_PASS(xs_send(a, "good", 4, 0));
        char buf[4];
        CHECK(recv_full(b, buf, 4) == 4 && memcmp(buf, "good", 4) == 0);
    }
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
}

/* The session fails with EPROTO at once (accept on the session), the stream st (when
 * >= 0) too, and the kernel peer reads EOF. */
static void expect_eproto(struct kpeer *p, int st, const char *what) {
    long t0 = now_ms();
    errno = 0;
    int r = xs_accept(p->s, NULL, NULL);
    int err = errno;
    long took = now_ms() - t0;
    CHECKF(r == -1 && err == EPROTO && took < 1000 * slow_factor(),
           "%s: session accept returned %d (%s) after %ld ms, last error: %s", what, r,
           strerror(err), took, xs_last_error());
    if (r >= 0) xs_close(r);
    if (st >= 0) {
        char buf[64 * KIB];
        long got = 0;
        ssize_t n;
        while ((n = xs_recv(st, buf, sizeof buf, 0)) > 0) got += n; /* buffered data */
        err = errno;
        CHECKF(n == -1 && err == EPROTO, "%s: stream recv returned %zd (%s) after %ld bytes", what,
               n, strerror(err), got);
        CHECKF(got <= WINDOW, "%s: %ld bytes", what, got);
    }
    CHECKF(k_reads_eof(p->k, GUARD_MS), "%s: the kernel peer did not see the connection end", what);
}

SCENARIO(bad_input) {
    struct kpeer p = {.l = -1, .k = -1, .s = -1};
    int l = -1, good_c = -1, good_s = -1;
    struct sockaddr_storage addr;
    socklen_t alen;
    /* One listener for every case, and a good session on it all along. */
    l = XS_PASS(smux_listener(AF_INET, 0, &addr, &alen, 0, 0));
    if (l < 0) return;
    good_c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX));
    guard(good_c);
    XS_PASS(xs_connect(good_c, (struct sockaddr *)&addr, alen));
    good_s = XS_PASS(xs_accept(l, NULL, NULL));
    guard(good_s);
    int port = bound_port(&XS, l);
    for (int c = 0; c < 5; c++) {
        p.l = -1;
        p.k = k_connect(port);
        p.s = p.k >= 0 ? XS_PASS(xs_accept(l, NULL, NULL)) : -1;
        if (p.s < 0) break;
        guard(p.s);
        int st = -1;
        if (c == 0) {
            /* An unknown command. */
            CHECK(k_frame(p.k, SYN, 1, 0, NULL, 0) == 0);
            st = XS_PASS(xs_accept(p.s, NULL, NULL));
            CHECK(k_frame(p.k, 0xEE, 0, 0, NULL, 0) == 0);
            expect_eproto(&p, st, "cmd 0xEE");
        } else if (c == 1) {
            /* A PSH header saying 0xFFFFFFF0 bytes, alone. */
            CHECK(k_frame(p.k, SYN, 1, 0, NULL, 0) == 0);
            st = XS_PASS(xs_accept(p.s, NULL, NULL));
            CHECK(k_frame(p.k, PSH, 1, 0xFFFFFFF0u, NULL, 0) == 0);
            expect_eproto(&p, st, "PSH 0xFFFFFFF0");
        } else if (c == 2) {
            /* PSH beyond the window on an open stream nobody reads: 9 x 64 KiB. */
            CHECK(k_frame(p.k, SYN, 1, 0, NULL, 0) == 0);
            st = XS_PASS(xs_accept(p.s, NULL, NULL));
            for (int i = 0; i < 9; i++)
                if (k_frame(p.k, PSH, 1, 64 * KIB, pat(1, (uint64_t)i * 64 * KIB), 64 * KIB) < 0)
                    break; /* the connection may be gone already */
            expect_eproto(&p, st, "PSH beyond the window");
        } else if (c == 3) {
            /* CFM for more than was sent. */
            CHECK(k_frame(p.k, SYN, 1, 0, NULL, 0) == 0);
            st = XS_PASS(xs_accept(p.s, NULL, NULL));
            if (st >= 0) guard(st);
            XS_PASS(xs_send(st, "0123456789", 10, 0));
            struct frame f;
            char data[10];
            CHECK(k_hdr(p.k, &f) == 1 && f.cmd == PSH && f.id == 1 && f.len == 10);
            CHECK(k_read(p.k, data, 10) == 10 && memcmp(data, "0123456789", 10) == 0);
            CHECK(k_frame(p.k, CFM, 1, 10, NULL, 0) == 0); /* fine */
            XS_PASS(xs_send(st, "abc", 3, 0));
            CHECK(k_hdr(p.k, &f) == 1 && f.cmd == PSH && f.id == 1 && f.len == 3);
            CHECK(k_read(p.k, data, 3) == 3);
            CHECK(k_frame(p.k, CFM, 1, 4, NULL, 0) == 0); /* one too many */
            expect_eproto(&p, st, "CFM over-confirm");
        } else {
            /* PSH, CFM and FIN for ids nobody opened are ignored; SYN for 0 and 65535
             * are accepted; then a stream echoes. */
            CHECK(k_frame(p.k, PSH, 77, 5, "hello", 5) == 0);
            CHECK(k_frame(p.k, CFM, 78, 100, NULL, 0) == 0);
            CHECK(k_frame(p.k, FIN, 79, 0, NULL, 0) == 0);
            CHECK(k_frame(p.k, SYN, 65535, 0, NULL, 0) == 0);
            CHECK(k_frame(p.k, PSH, 65535, 3, "max", 3) == 0);
            CHECK(k_frame(p.k, SYN, 0, 0, NULL, 0) == 0);
            CHECK(k_frame(p.k, PSH, 0, 4, "zero", 4) == 0);
            CHECK(k_frame(p.k, SYN, 5, 0, NULL, 0) == 0);
            CHECK(k_frame(p.k, PSH, 5, 4, "five", 4) == 0);
            const char *want[3] = {"max", "zero", "five"};
            unsigned want_id[3] = {65535, 0, 5};
            for (int i = 0; i < 3; i++) {
                int s = XS_PASS(xs_accept(p.s, NULL, NULL));
                if (s < 0) break;
                guard(s);
                char buf[8] = {0};
                size_t n = strlen(want[i]);
                CHECKF(recv_full(s, buf, n) == (long)n && memcmp(buf, want[i], n) == 0,
                       "stream %u read '%s'", want_id[i], buf);
                if (want_id[i] != 0)
                    CHECKF(smux_get(s, XS_SMUX_STREAM_ID) == (int)want_id[i], "id %d",
                           smux_get(s, XS_SMUX_STREAM_ID));
                XS_PASS(xs_send(s, buf, n, 0));
                struct frame f;
                char back[8] = {0};
                CHECKF(k_hdr(p.k, &f) == 1 && f.cmd == PSH && f.id == want_id[i] && f.len == n,
                       "frame cmd %d id %u len %u", f.cmd, f.id, f.len);
                CHECK(k_read(p.k, back, n) == (long)n && memcmp(back, want[i], n) == 0);
                xs_close(s);
                CHECK(k_hdr(p.k, &f) == 1 && f.cmd == FIN && f.id == want_id[i]);
            }
            /* Nothing else came: no answer to the ignored frames. */
            struct pollfd pf = {.fd = p.k, .events = POLLIN};
            CHECK(poll(&pf, 1, 100) == 0);
        }
        if (st >= 0) xs_close(st);
        xs_close(p.s);
        close(p.k);
        p.s = p.k = -1;
        /* The other session on the listener still works. */
        good_session_works(good_c, good_s);
    }
    if (p.k >= 0) close(p.k);
    if (p.s >= 0) xs_close(p.s);
    if (good_c >= 0) xs_close(good_c);
    if (good_s >= 0) xs_close(good_s);
    xs_close(l);
}

/* ===== SYN flood ===== */

SCENARIO(syn_flood) {
    struct kpeer p;
    if (kpeer_open(&p, 0, 0) < 0) goto out;
    int n = 1100;
    unsigned char *frames = malloc((size_t)n * 7);
    for (int i = 0; i < n; i++) put_hdr(frames + i * 7, SYN, (unsigned)(i + 1), 0);
    CHECK(k_send_all(p.k, frames, (size_t)n * 7) == 0);
    free(frames);
    /* The refused ones come back as FIN frames. */
    int fins = 0, in_order = 1;
    for (int i = 1025; i <= n; i++) {
        struct frame f;
        if (k_hdr(p.k, &f) != 1) break;
        if (f.cmd != FIN || f.id != (unsigned)i) in_order = 0;
        fins++;
    }
    CHECKF(fins == n - 1024 && in_order, "%d FIN frames (in order: %d)", fins, in_order);
    /* 1024 wait for accept. */
    XS_PASS(nonblock(p.s));
    int got = 0, ids_ok = 1;
    for (int i = 0; i < n; i++) {
        int s = xs_accept(p.s, NULL, NULL);
        if (s < 0) {
            CHECKF(errno == EAGAIN, "%s", strerror(errno));
            break;
        }
        if (smux_get(s, XS_SMUX_STREAM_ID) != got + 1) ids_ok = 0;
        got++;
        xs_close(s);
    }
    CHECKF(got == 1024 && ids_ok, "accepted %d (ids in order: %d)", got, ids_ok);
    /* The session goes on. */
    CHECK(k_frame(p.k, SYN, 2000, 0, NULL, 0) == 0);
    XS_PASS(xs_fcntl(p.s, F_SETFL, 0));
    int s = XS_PASS(xs_accept(p.s, NULL, NULL));
    CHECK(s < 0 || smux_get(s, XS_SMUX_STREAM_ID) == 2000);
    if (s >= 0) xs_close(s);
out:
    kpeer_close(&p);
}

/* ===== VRM probes ===== */

struct kserver {
    int l, port;
    int mode; /* 0: read 7 bytes, send nothing; 1: answer right; 2: answer wrong */
    int ok;   /* the probe's frame was right */
    int extra; /* bytes that came after our answer (there should be none) */
    pthread_t th;
};

static void *kserver_run(void *arg) {
    struct kserver *k = arg;
    int c = accept(k->l, NULL, NULL);
    if (c < 0) return NULL;
    set_timeout_ms(&KERNEL, c, SO_RCVTIMEO, GUARD_MS);
    struct frame f;
    if (k_hdr(c, &f) == 1 && f.cmd == VRM) {
        k->ok = 1;
        if (k->mode) {
            uint16_t v11;
            uint32_t v22;
            verify_code((uint16_t)f.id, f.len, &v11, &v22);
            if (k->mode == 2) v22 ^= 1;
            k_frame(c, VRM, v11, v22, NULL, 0);
            /* The answer to its own probe is not answered. */
            set_timeout_ms(&KERNEL, c, SO_RCVTIMEO, 300 * slow_factor());
            char buf[64];
            ssize_t r = recv(c, buf, sizeof buf, 0);
            k->extra = r > 0 ? (int)r : 0;
        } else {
            /* Wait for the client to go. */
            char buf[64];
            while (recv(c, buf, sizeof buf, 0) > 0) {
            }
        }
    }
    close(c);
    return NULL;
}

/* A probe from an xsocket session to a kernel server in mode; returns the probe's result. */
static int probe_kernel(int mode, int timeout_ms, long *took, int *extra) {
    struct sockaddr_storage a;
    socklen_t len;
    struct kserver k = {.mode = mode};
    k.l = listener(&KERNEL, AF_INET, SOCK_STREAM, &a, &len);
    CHECK(k.l >= 0);
    if (k.l < 0) return -1;
    CHECK(pthread_create(&k.th, NULL, kserver_run, &k) == 0);
    int c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX));
    guard(c);
    XS_PASS(xs_connect(c, (struct sockaddr *)&a, len));
    long t0 = now_ms();
    int r = xs_smux_probe(c, timeout_ms);
    *took = now_ms() - t0;
    if (mode) msleep(350L * slow_factor()); /* while the server checks for extra bytes */
    xs_close(c);
    pthread_join(k.th, NULL);
    close(k.l);
    CHECKF(k.ok, "the kernel server did not read a VRM frame");
    *extra = k.extra;
    return r;
}

SCENARIO(vrm) {
    uint16_t v11;
    uint32_t v22;
    verify_code(0x1234, 0x11223344, &v11, &v22);
    CHECK(v11 == 0x3420 && v22 == 0x11442233);
    /* xsocket probes xsocket. */
    struct sess x;
    if (sess_open(&x, AF_INET, 0) == 0) {
        CHECK(xs_smux_probe(x.c, 1000 * slow_factor()) == 1);
        CHECK(xs_smux_probe(x.s, 1000 * slow_factor()) == 1);
        good_session_works(x.c, x.s);
    }
    sess_close(&x);
    /* A kernel server that reads the probe and says nothing: 0 after the time-out. */
    long took;
    int extra;
    CHECK(probe_kernel(0, 300, &took, &extra) == 0);
    CHECKF(took >= 290 && took < 1300L * slow_factor(), "took %ld ms", took);
    /* One that answers right: 1, and its answer is not answered. */
    CHECK(probe_kernel(1, 1000 * slow_factor(), &took, &extra) == 1);
    CHECKF(extra == 0, "%d bytes came after the answer", extra);
    /* A wrong answer: 0. */
    CHECK(probe_kernel(2, 300, &took, &extra) == 0);
    /* xsocket answers a kernel peer's probes. */
    struct kpeer p;
    if (kpeer_open(&p, 0, 0) == 0) {
        /* The answer comes promptly, with no thread of ours in the session (a Go
         * peer's IsSmux waits only its own time-out). */
        set_timeout_ms(&KERNEL, p.k, SO_RCVTIMEO, 1000L * slow_factor());
        uint16_t ids[4] = {0x1234, 0xFFFF, 0, 0x00F0};
        uint32_t lens[4] = {0x11223344, 0xFFFFFFFF, 0, 0x000000FF};
        uint16_t w11[4] = {0x3420, 0xFFF0, 0, 0xF000};
        uint32_t w22[4] = {0x11442233, 0xFFFFFFFF, 0, 0x00FF0000};
        for (int i = 0; i < 4; i++) {
            CHECK(k_frame(p.k, VRM, ids[i], lens[i], NULL, 0) == 0);
            struct frame f = {0};
            long t0 = now_ms();
            int got = k_hdr(p.k, &f);
            CHECKF(got == 1 && f.cmd == VRM && f.id == w11[i] && f.len == w22[i],
                   "answer to (%#x, %#x): %s after %ld ms: cmd %d (%#x, %#x)", ids[i], lens[i],
                   got == 1 ? "a frame" : "nothing", now_ms() - t0, f.cmd, f.id, f.len);
        }
        /* The wire bytes of the first vector. */
        unsigned char h[7], want[7] = {4, 0x20, 0x34, 0x33, 0x22, 0x44, 0x11};
        CHECK(k_frame(p.k, VRM, 0x1234, 0x11223344, NULL, 0) == 0);
        CHECK(k_read(p.k, h, 7) == 7 && memcmp(h, want, 7) == 0);
        /* The session goes on. */
        CHECK(k_frame(p.k, SYN, 9, 0, NULL, 0) == 0);
        CHECK(k_frame(p.k, PSH, 9, 2, "ok", 2) == 0);
        int s = XS_PASS(xs_accept(p.s, NULL, NULL));
        char buf[2];
        if (s >= 0) {
            guard(s);
            CHECK(recv_full(s, buf, 2) == 2 && memcmp(buf, "ok", 2) == 0);
            xs_close(s);
        }
    }
    kpeer_close(&p);
}

/* ===== idle time-out ===== */

SCENARIO(idle_timeout) {
    /* Client side: an xsocket session to a silent kernel server. */
    struct sockaddr_storage a;
    socklen_t len;
    int kl = listener(&KERNEL, AF_INET, SOCK_STREAM, &a, &len);
    CHECK(kl >= 0);
    if (kl < 0) return;
    int c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX));
    guard(c);
    XS_PASS(smux_int(c, XS_SMUX_IDLE_TIMEOUT, 200));
    CHECK(smux_get(c, XS_SMUX_IDLE_TIMEOUT) == 200);
    XS_PASS(xs_connect(c, (struct sockaddr *)&a, len));
    int k = accept(kl, NULL, NULL);
    CHECK(k >= 0);
    int st = XS_PASS(xs_smux_open(c));
    guard(st);
    long t0 = now_ms();
    char ch;
    XS_FAIL(xs_recv(st, &ch, 1, 0), ETIMEDOUT);
    long took = now_ms() - t0;
    CHECKF(took >= 150 && took < 1000 * slow_factor(), "stream recv failed after %ld ms", took);
    XS_FAIL(xs_accept(c, NULL, NULL), ETIMEDOUT);
    XS_FAIL(xs_send(st, "x", 1, 0), ETIMEDOUT);
    /* The kernel peer sees the SYN, then the connection end. */
    set_timeout_ms(&KERNEL, k, SO_RCVTIMEO, GUARD_MS);
    struct frame f;
    CHECK(k_hdr(k, &f) == 1 && f.cmd == SYN);
    CHECK(k_reads_eof(k, GUARD_MS));
    xs_close(st);
    xs_close(c);
    close(k);
    close(kl);

    /* Server side: a silent kernel client; the accepted session's accept fails. */
    struct kpeer p;
    if (kpeer_open(&p, XS_SMUX_IDLE_TIMEOUT, 200) == 0) {
        CHECK(smux_get(p.s, XS_SMUX_IDLE_TIMEOUT) == 200);
        t0 = now_ms();
        XS_FAIL(xs_accept(p.s, NULL, NULL), ETIMEDOUT);
        took = now_ms() - t0;
        CHECKF(took < 1000 * slow_factor(), "session accept failed after %ld ms", took);
    }
    kpeer_close(&p);

    /* A peer that talks (PIN every 50 ms) keeps the session (600 ms in all). */
    if (kpeer_open(&p, XS_SMUX_IDLE_TIMEOUT, SCALE(200, 500)) == 0) {
        XS_PASS(set_timeout_ms(&XS, p.s, SO_RCVTIMEO, 50));
        for (int i = 0; i < 12; i++) { /* 600 ms in all */
            CHECK(k_frame(p.k, PIN, 0, 0, NULL, 0) == 0);
            XS_FAIL(xs_accept(p.s, NULL, NULL), EAGAIN); /* its own time-out, not ETIMEDOUT */
        }
    }
    kpeer_close(&p);
}

/* ===== PIN keepalives ===== */

SCENARIO(pin) {
    /* XS_SMUX_PIN_INTERVAL 50: PINs from the start. */
    struct kpeer p;
    if (kpeer_open(&p, XS_SMUX_PIN_INTERVAL, 50) == 0) {
        long t0 = now_ms();
        int pins = 0, other = 0;
        while (now_ms() - t0 < 500L * slow_factor() && pins < 4) {
            struct frame f;
            if (k_hdr(p.k, &f) != 1) break;
            if (f.cmd == PIN && f.id == 0 && f.len == 0) pins++;
            else other++;
        }
        long took = now_ms() - t0;
        CHECKF(pins == 4 && other == 0 && took < 1000 * slow_factor(),
               "%d PINs, %d other frames in %ld ms", pins, other, took);
    }
    kpeer_close(&p);
    /* By default: no PIN to a peer that sent none; XS_SMUX_PEER_PINS once it does. */
    if (kpeer_open(&p, 0, 0) == 0) {
        CHECK(smux_get(p.s, XS_SMUX_PEER_PINS) == 0);
        struct pollfd pf = {.fd = p.k, .events = POLLIN};
        CHECK(poll(&pf, 1, 300) == 0);
        CHECK(k_frame(p.k, PIN, 0, 0, NULL, 0) == 0);
        /* Seen promptly, with no thread of ours in the session. */
        long t0 = now_ms(), end = t0 + 1000L * slow_factor();
        while (smux_get(p.s, XS_SMUX_PEER_PINS) != 1 && now_ms() < end) msleep(2);
        CHECKF(smux_get(p.s, XS_SMUX_PEER_PINS) == 1, "XS_SMUX_PEER_PINS still %d after %ld ms",
               smux_get(p.s, XS_SMUX_PEER_PINS), now_ms() - t0);
        /* The session goes on. */
        CHECK(k_frame(p.k, SYN, 1, 0, NULL, 0) == 0);
        int s = XS_PASS(xs_accept(p.s, NULL, NULL));
        if (s >= 0) xs_close(s);
    }
    kpeer_close(&p);
    /* Between xsocket ends: an xsocket client with PINs, its peer sees them. */
    struct sess x;
    if (sess_open_opts(&x, AF_INET, 0, XS_SMUX_PIN_INTERVAL, 20, 0, 0) == 0) {
        long t0 = now_ms(), end = t0 + 1000L * slow_factor();
        while (smux_get(x.s, XS_SMUX_PEER_PINS) != 1 && now_ms() < end) msleep(2);
        CHECKF(smux_get(x.s, XS_SMUX_PEER_PINS) == 1, "XS_SMUX_PEER_PINS still %d after %ld ms",
               smux_get(x.s, XS_SMUX_PEER_PINS), now_ms() - t0);
        CHECK(smux_get(x.c, XS_SMUX_PEER_PINS) == 0 || smux_get(x.c, XS_SMUX_PEER_PINS) == 1);
        good_session_works(x.c, x.s);
    }
    sess_close(&x);
}

/* ===== bad arguments ===== */

SCENARIO(bad_arguments) {
    /* xs_smux_open on a plain TCP sid, connected or not. */
    int tcp = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(xs_smux_open(tcp), EINVAL);
    XS_FAIL(xs_smux_probe(tcp, 10), EINVAL);
    xs_close(tcp);
    int c, s;
    if (stream_pair(&XS, AF_INET, SOCK_STREAM, &c, &s) == 0) {
        XS_FAIL(xs_smux_open(c), EINVAL);
        XS_FAIL(xs_smux_probe(c, 10), EINVAL);
        xs_close(c);
        xs_close(s);
    }
    /* On an smux socket that is not connected, or listens. */
    int u = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX));
    XS_FAIL(xs_smux_open(u), EINVAL);
    XS_FAIL(xs_smux_probe(u, 10), EINVAL);
    /* Option checks. */
    XS_FAIL(smux_int(u, XS_SMUX_WINDOW, 1000), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_WINDOW, 0), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_WINDOW, -1), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_MAX_STREAMS, 0), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_MAX_STREAMS, 65536), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_ACCEPT_BACKLOG, 0), EINVAL);
    XS_FAIL(smux_int(u, XS_SMUX_IDLE_TIMEOUT, -5), EINVAL);
    CHECK(smux_get(u, XS_SMUX_WINDOW) == WINDOW);
    CHECK(smux_get(u, XS_SMUX_MAX_STREAMS) == 65535);
    CHECK(smux_get(u, XS_SMUX_ACCEPT_BACKLOG) == 1024);
    XS_PASS(smux_int(u, XS_SMUX_WINDOW, 65536));
    CHECK(smux_get(u, XS_SMUX_WINDOW) == 65536);
    xs_close(u);
    struct sockaddr_storage a;
    socklen_t len;
    int l = XS_PASS(smux_listener(AF_INET, 0, &a, &len, 0, 0));
    XS_FAIL(xs_smux_open(l), EINVAL);
    xs_close(l);
    /* Sockets that cannot be smux. */
    XS_FAIL(xs_socket(AF_INET, SOCK_DGRAM, XS_PROTO_SMUX), EINVAL);
    XS_FAIL(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_SMUX | XS_PROTO_WS), EPROTONOSUPPORT);
    /* Bad sids. */
    XS_FAIL(xs_smux_open(-1), EBADF);
    XS_FAIL(xs_smux_open(999999), EBADF);
    XS_FAIL(xs_smux_probe(-1, 10), EBADF);
    /* On a session: a negative probe time-out; a stream is not a session. */
    struct sess x;
    if (sess_open(&x, AF_INET, 0) == 0) {
        XS_FAIL(xs_smux_probe(x.c, -1), EINVAL);
        int a1, b1;
        if (stream_open(&x, &a1, &b1) == 0) {
            XS_FAIL(xs_smux_open(a1), EINVAL);
            XS_FAIL(xs_smux_probe(a1, 10), EINVAL);
            XS_FAIL(xs_accept(a1, NULL, NULL), EINVAL);
            CHECK(smux_get(x.c, XS_SMUX_STREAMS) == 1);
            xs_close(a1);
            xs_close(b1);
        }
        int closed = XS_PASS(xs_smux_open(x.c));
        xs_close(closed);
        XS_FAIL(xs_smux_open(closed), EBADF);
    }
    sess_close(&x);
}

/* SMUX_ONLY=name[,name...] runs only those scenarios (for debugging). */
/* XS_SO_NOTIFY_FD on a stream: the eventfd becomes readable when data arrives while
 * no thread is inside the session, and when the peer closes the stream. */
SCENARIO(notify_fd) {
    struct sess x;
    int a = -1, b = -1;
    if (sess_open(&x, AF_INET, 0) < 0 || stream_open(&x, &a, &b) < 0) goto out;
    int efd = -1;
    socklen_t len = sizeof efd;
    XS_PASS(xs_getsockopt(b, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &efd, &len));
    CHECK(efd >= 0);
    if (efd < 0) goto out;
    uint64_t count;
    struct pollfd pfd = {.fd = efd, .events = POLLIN};
    CHECK(poll(&pfd, 1, GUARD_MS) == 1); /* signalled once at the start */
    CHECK(read(efd, &count, sizeof count) == (ssize_t)sizeof count);
    XS_PASS(xs_send(a, "ping", 4, 0));
    pfd.revents = 0;
    CHECKF(poll(&pfd, 1, 1000 * slow_factor()) == 1, "no notification for data");
    CHECK(read(efd, &count, sizeof count) == (ssize_t)sizeof count);
    char buf[8];
    CHECK(xs_recv(b, buf, sizeof buf, MSG_DONTWAIT) == 4 && memcmp(buf, "ping", 4) == 0);
    XS_PASS(xs_shutdown(a, SHUT_WR));
    pfd.revents = 0;
    CHECKF(poll(&pfd, 1, 1000 * slow_factor()) == 1, "no notification for the peer's FIN");
    CHECK(xs_recv(b, buf, sizeof buf, MSG_DONTWAIT) == 0);
out:
    if (a >= 0) xs_close(a);
    if (b >= 0) xs_close(b);
    sess_close(&x);
}

/* ===== output left behind while another thread leads ===== */

struct blocked_recv {
    int sid;
    long result;
    pthread_t th;
};

static void *blocked_recv_run(void *arg) {
    struct blocked_recv *r = arg;
    char c;
    r->result = xs_recv(r->sid, &c, 1, 0);
    return NULL;
}

/* One thread blocks in xs_recv on stream 1 (it watches the connection, for input
 * only); another sends 256 KiB on stream 3 into tiny kernel buffers and returns with
 * most of it still queued. Once the peer reads, the rest must follow at once (the
 * connection's writability is not the watching thread's business), not when the
 * session's idle timer next comes round (5 s). */
SCENARIO(output_beside_a_leader) {
    struct sockaddr_storage a;
    socklen_t alen;
    int s = -1, st1 = -1, st3 = -1, k = -1;
    int l = XS_PASS(smux_listener(AF_INET, 0, &a, &alen, 0, 0));
    if (l < 0) return;
    k = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(k >= 0);
    if (k < 0) goto out;
    int small = 4096;
    CHECK(setsockopt(k, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    set_timeout_ms(&KERNEL, k, SO_RCVTIMEO, GUARD_MS);
    CHECK(connect(k, (struct sockaddr *)&a, alen) == 0);
    s = XS_PASS(xs_accept(l, NULL, NULL));
    if (s < 0) goto out;
    guard(s);
    XS_PASS(set_int_opt(&XS, s, SOL_SOCKET, SO_SNDBUF, 4096));
    CHECK(k_frame(k, SYN, 1, 0, NULL, 0) == 0 && k_frame(k, SYN, 3, 0, NULL, 0) == 0);
    st1 = XS_PASS(xs_accept(s, NULL, NULL));
    st3 = XS_PASS(xs_accept(s, NULL, NULL));
    if (st1 < 0 || st3 < 0) goto out;
    guard(st1);
    guard(st3);
    struct blocked_recv r = {.sid = st1};
    if (pthread_create(&r.th, NULL, blocked_recv_run, &r) != 0) exit(2);
    msleep(100);
    size_t n = 256 * KIB;
    CHECK(send_pattern(st3, 9, 0, n) == 0);
    long t0 = now_ms();
    size_t got = 0;
    int bad = 0;
    static unsigned char buf[64 * KIB];
    struct frame f;
    while (got < n && k_hdr(k, &f) == 1) {
        if (f.cmd != PSH) continue;
        if (f.id != 3 || f.len > sizeof buf || k_read(k, buf, f.len) != (long)f.len) break;
        bad |= !pat_ok(buf, f.len, 9, got);
        got += f.len;
    }
    long took = now_ms() - t0;
    CHECKF(got == n && !bad, "read %zu of %zu bytes (bad %d)", got, n, bad);
    CHECKF(took < 1000L * slow_factor(), "the queued bytes took %ld ms", took);
    /* The blocked reader gets its byte. */
    CHECK(k_frame(k, PSH, 1, 1, "x", 1) == 0);
    pthread_join(r.th, NULL);
    CHECK(r.result == 1);
out:
    if (st1 >= 0) xs_close(st1);
    if (st3 >= 0) xs_close(st3);
    if (s >= 0) xs_close(s);
    if (k >= 0) close(k);
    xs_close(l);
}

static int selected(const char *name) {
    const char *only = getenv("SMUX_ONLY");
    if (!only || !*only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}
#define RUN(fn)                                                                           \
    do {                                                                                  \
        if (selected(#fn)) RUN_ONCE(fn);                                                  \
    } while (0)

int main(void) {
    make_certificates();
    pat_init();
    RUN(echo_tcp4);
    RUN(echo_tcp6);
    RUN(echo_unix);
    RUN(echo_tls);
    RUN(many_streams);
    RUN(fairness);
    RUN(flow_control);
    RUN(send_timeout_partial);
    RUN(peek_dontwait_timeouts);
    RUN(poll_streams);
    RUN(session_close);
    RUN(close_wakes_recv);
    RUN(stream_ids);
    RUN(stream_limits);
    RUN(bad_input);
    RUN(syn_flood);
    RUN(vrm);
    RUN(idle_timeout);
    RUN(pin);
    RUN(bad_arguments);
    RUN(notify_fd);
    RUN(output_beside_a_leader);
    free(pat_tab);
    cert_remove_all();
    return harness_finish();
}
