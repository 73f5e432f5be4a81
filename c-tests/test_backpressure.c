/* Back-pressure: a sender whose peer does not read fills a bounded amount (about
 * SO_SNDBUF + the peer's SO_RCVBUF, never near 64 MiB), then blocks (EAGAIN after
 * SO_SNDTIMEO) or gets EAGAIN (non-blocking); once the peer reads, it resumes and
 * every byte arrives in order. Run against the kernel and xsocket: the amounts differ
 * from run to run, so the traces record behaviour (errnos, bounds held, totals
 * matched), not byte counts. */
#include <unistd.h>

#include "concurrency.h"

#define CHUNK 65536
#define LIMIT (64L << 20) /* a sender that gets this far without blocking is unbounded */

static unsigned char sendbuf[CHUNK];

/* Sends pattern bytes from offset *off until a call fails; returns its errno. */
static int fill(const struct api *A, int s, long *off, int flags) {
    for (;;) {
        pattern_fill(sendbuf, CHUNK, 7, (uint64_t)*off);
        ssize_t n = A->send(s, sendbuf, CHUNK, flags);
        if (n < 0) return errno;
        *off += n;
        if (*off > LIMIT) return 0;
    }
}

/* The send and receive buffer sizes the kernel reports for s. */
static long bufsizes(const struct api *A, int c, int s) {
    return get_int_opt(A, c, SOL_SOCKET, SO_SNDBUF) + get_int_opt(A, s, SOL_SOCKET, SO_RCVBUF);
}

struct reader {
    const struct api *A;
    int sid;
    long received;
    int bad, err;
};

/* Reads until end of stream, checking the pattern. */
static void *read_all(void *arg) {
    struct reader *r = arg;
    unsigned char *buf = malloc(CHUNK);
    for (;;) {
        ssize_t n = r->A->recv(r->sid, buf, CHUNK, 0);
        if (n <= 0) {
            r->err = n < 0 ? errno : 0;
            break;
        }
        if (pattern_check(buf, (size_t)n, 7, (uint64_t)r->received) >= 0) r->bad = 1;
        r->received += n;
    }
    free(buf);
    return NULL;
}

/* Non-blocking sender: EAGAIN after a bounded fill, no POLLOUT while full; then a
 * single-threaded xs_poll/poll loop drains the peer and the sender resumes until
 * `extra` more bytes went through, all checked. */
static void nonblocking(const struct api *A, struct trace *t, int family, int small_buffers) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    if (small_buffers) {
        XS_PASS(set_int_opt(A, c, SOL_SOCKET, SO_SNDBUF, 65536));
        XS_PASS(set_int_opt(A, s, SOL_SOCKET, SO_RCVBUF, 65536));
    }
    XS_PASS(A->fcntl(c, F_SETFL, O_NONBLOCK));
    XS_PASS(A->fcntl(s, F_SETFL, O_NONBLOCK));
    long sent = 0;
    int err = fill(A, c, &sent, 0);
    REC(t, err);
    CHECK(err == EAGAIN);
    long bound = small_buffers ? 2 * bufsizes(A, c, s) + (256L << 10) : LIMIT;
    if (sent <= 0 || sent >= bound || getenv("XSOCKET_TEST_VERBOSE"))
        fprintf(stderr, "  [%s] filled %ld bytes (buffers %ld)\n", A->name, sent, bufsizes(A, c, s));
    REC(t, sent > 0 && sent < bound);
    CHECK(sent > 0 && sent < bound);
    REC(t, A->send(c, "x", 1, 0)); /* still full: -1 EAGAIN */
    struct pollfd p = {c, POLLOUT, 0};
    REC(t, A->poll(&p, 1, 0)); /* 0: not writable */
    REC(t, p.revents);

    /* Drain and resume. */
    long total = sent + SCALE(8L << 20, 1L << 20), received = 0;
    int again = 0, bad = 0, shut = 0, stalled = 0;
    unsigned char *buf = malloc(CHUNK);
    while (received < total || !shut) {
        struct pollfd ps[2] = {{s, POLLIN, 0}, {c, sent < total ? POLLOUT : 0, 0}};
        if (A->poll(ps, 2, GUARD_MS) <= 0) {
            stalled = 1;
            break;
        }
        if (ps[0].revents & POLLIN) {
            ssize_t n = A->recv(s, buf, CHUNK, 0);
            if (n > 0) {
                bad |= pattern_check(buf, (size_t)n, 7, (uint64_t)received) >= 0;
                received += n;
            } else if (n == 0) {
                shut = 2;
                break;
            }
        }
        if (ps[1].revents & POLLOUT) {
            long k = total - sent < CHUNK ? total - sent : CHUNK;
            pattern_fill(sendbuf, (size_t)k, 7, (uint64_t)sent);
            ssize_t n = A->send(c, sendbuf, (size_t)k, 0);
            if (n > 0) sent += n;
            else if (n < 0 && errno == EAGAIN) again++;
            else break;
        }
        if (sent == total && !shut) {
            XS_PASS(A->shutdown(c, SHUT_WR));
            shut = 1;
        }
    }
    /* Read the end of stream. */
    if (shut == 1 && !stalled) {
        struct pollfd ps = {s, POLLIN, 0};
        A->poll(&ps, 1, GUARD_MS);
        REC(t, A->recv(s, buf, CHUNK, 0));
    }
    free(buf);
    REC(t, stalled);
    REC(t, sent == total);
    REC(t, received == total);
    REC(t, bad);
    CHECK(!stalled && sent == total && received == total && !bad);
    (void)again; /* how often a send met a full buffer again: timing-dependent */
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(nonblocking_tcp) { nonblocking(A, t, AF_INET, 0); }
SCENARIO(nonblocking_tcp_small_buffers) { nonblocking(A, t, AF_INET, 1); }
SCENARIO(nonblocking_unix) { nonblocking(A, t, AF_UNIX, 0); }
SCENARIO(nonblocking_unix_small_buffers) { nonblocking(A, t, AF_UNIX, 1); }

/* Blocking sender with SO_SNDTIMEO: fills, then a send waits the timeout and fails
 * with EAGAIN (MSG_DONTWAIT fails at once); a reader thread starts and the sender
 * resumes to the end; every byte arrives in order. */
static void blocking_timeout(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    long timeo = SCALE(100, 400);
    XS_PASS(set_timeout_ms(A, c, SO_SNDTIMEO, timeo));
    long sent = 0;
    int err = fill(A, c, &sent, 0);
    REC(t, err);
    CHECK(err == EAGAIN);
    REC(t, sent > 0 && sent < LIMIT);
    CHECK(sent > 0 && sent < LIMIT);
    /* The buffer is full: a blocking send waits for SO_SNDTIMEO... */
    long t0 = now_ms();
    pattern_fill(sendbuf, CHUNK, 7, (uint64_t)sent);
    ssize_t n = REC(t, A->send(c, sendbuf, CHUNK, 0));
    if (n > 0) sent += n;
    long waited = now_ms() - t0;
    CHECK(waited >= timeo - 20 && waited < timeo + SCALE(500, 2000));
    /* ... and MSG_DONTWAIT does not wait. */
    t0 = now_ms();
    pattern_fill(sendbuf, CHUNK, 7, (uint64_t)sent);
    n = REC(t, A->send(c, sendbuf, CHUNK, MSG_DONTWAIT));
    if (n > 0) sent += n;
    CHECK(now_ms() - t0 < SCALE(50, 500));

    struct reader r = {A, s, 0, 0, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, read_all, &r) == 0);
    XS_PASS(set_timeout_ms(A, c, SO_SNDTIMEO, GUARD_MS));
    long total = sent + SCALE(8L << 20, 1L << 20);
    int failed = 0;
    while (sent < total) {
        long k = total - sent < CHUNK ? total - sent : CHUNK;
        pattern_fill(sendbuf, (size_t)k, 7, (uint64_t)sent);
        n = A->send(c, sendbuf, (size_t)k, 0);
        if (n <= 0) {
            failed = errno;
            break;
        }
        sent += n;
    }
    REC(t, failed);
    XS_PASS(A->shutdown(c, SHUT_WR));
    pthread_join(th, NULL);
    REC(t, r.err);
    REC(t, r.received == total);
    REC(t, r.bad);
    CHECK(!failed && r.err == 0 && r.received == total && !r.bad);
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(blocking_sndtimeo_tcp) { blocking_timeout(A, t, AF_INET6); }
SCENARIO(blocking_sndtimeo_unix) { blocking_timeout(A, t, AF_UNIX); }

struct big_send {
    const struct api *A;
    int sid;
    long len;
    long sent;
    int err;
    atomic_int done;
};

static void *send_big(void *arg) {
    struct big_send *b = arg;
    unsigned char *buf = malloc((size_t)b->len);
    pattern_fill(buf, (size_t)b->len, 7, 0);
    while (b->sent < b->len) {
        ssize_t n = b->A->send(b->sid, buf + b->sent, (size_t)(b->len - b->sent), 0);
        if (n <= 0) {
            b->err = errno;
            break;
        }
        b->sent += n;
    }
    free(buf);
    atomic_store(&b->done, 1);
    return NULL;
}

/* One blocking send of more than both buffers hold stays blocked while nobody reads,
 * and completes once a reader starts. */
static void blocking_resumes(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    struct big_send b = {.A = A, .sid = c, .len = SCALE(16L << 20, 4L << 20)};
    pthread_t tb;
    CHECK(pthread_create(&tb, NULL, send_big, &b) == 0);
    msleep(SCALE(200, 1000));
    REC(t, atomic_load(&b.done)); /* 0: blocked */
    CHECK(!atomic_load(&b.done));
    struct reader r = {A, s, 0, 0, 0};
    pthread_t tr;
    CHECK(pthread_create(&tr, NULL, read_all, &r) == 0);
    pthread_join(tb, NULL);
    XS_PASS(A->shutdown(c, SHUT_WR));
    pthread_join(tr, NULL);
    REC(t, b.err);
    REC(t, b.sent == b.len);
    REC(t, r.received == b.len);
    REC(t, r.bad);
    CHECK(b.err == 0 && b.sent == b.len && r.received == b.len && !r.bad);
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(blocking_send_resumes_tcp) { blocking_resumes(A, t, AF_INET); }
SCENARIO(blocking_send_resumes_unix) { blocking_resumes(A, t, AF_UNIX); }

int main(void) {
    RUN_COMPARED(nonblocking_tcp);
    RUN_COMPARED(nonblocking_tcp_small_buffers);
    RUN_COMPARED(nonblocking_unix);
    RUN_COMPARED(nonblocking_unix_small_buffers);
    RUN_COMPARED(blocking_sndtimeo_tcp);
    RUN_COMPARED(blocking_sndtimeo_unix);
    RUN_COMPARED(blocking_send_resumes_tcp);
    RUN_COMPARED(blocking_send_resumes_unix);
    return harness_finish();
}
