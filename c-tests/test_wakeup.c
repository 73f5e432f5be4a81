/* xs_close from another thread wakes the calls blocked on that sid: they fail with
 * EBADF at once (well under a second), and the sid is invalid afterwards. Closing an
 * unrelated sid wakes nobody. Every blocking call also has a kernel time limit
 * (SO_RCVTIMEO / SO_SNDTIMEO / poll timeout) as a safety net, so a lost wake-up shows
 * as a slow EBADF or EAGAIN and a failed check, never as a hang. */
#include <unistd.h>

#include "concurrency.h"

enum op { OP_RECV, OP_RECVFROM, OP_ACCEPT, OP_SEND, OP_CONNECT, OP_POLL };

#define SAFETY_MS 4000 /* kernel time limit on each blocked call */

struct blocked {
    enum op op;
    int sid;
    struct sockaddr_storage addr; /* OP_CONNECT */
    socklen_t len;
    struct pollfd pfd[2]; /* OP_POLL */
    int npfd;
    atomic_int started, done;
    long rc;
    int err;
    long returned_ms;
    long sent; /* OP_SEND: bytes sent before blocking */
};

static void *blocked_call(void *arg) {
    struct blocked *b = arg;
    static char sbuf[65536]; /* contents do not matter; only read by the kernel */
    char rbuf[256];
    atomic_store(&b->started, 1);
    errno = 0;
    switch (b->op) {
    case OP_RECV:
        b->rc = xs_recv(b->sid, rbuf, sizeof rbuf, 0);
        break;
    case OP_RECVFROM: {
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        b->rc = xs_recvfrom(b->sid, rbuf, sizeof rbuf, 0, (struct sockaddr *)&from, &flen);
        break;
    }
    case OP_ACCEPT:
        b->rc = xs_accept(b->sid, NULL, NULL);
        break;
    case OP_SEND:
        /* Fill the send buffer; the last call blocks until the close. */
        for (;;) {
            b->rc = xs_send(b->sid, sbuf, sizeof sbuf, 0);
            if (b->rc < 0) break;
            b->sent += b->rc;
        }
        break;
    case OP_CONNECT:
        b->rc = xs_connect(b->sid, (struct sockaddr *)&b->addr, b->len);
        break;
    case OP_POLL:
        b->rc = xs_poll(b->pfd, (nfds_t)b->npfd, SAFETY_MS);
        break;
    }
    b->err = b->rc < 0 ? errno : 0;
    b->returned_ms = now_ms();
    atomic_store(&b->done, 1);
    return NULL;
}

/* Starts the call in a thread, checks it blocks, closes its sid from this thread and
 * checks the call returns promptly; returns how long the wake-up took (ms), or -1. */
static long close_wakes(struct blocked *b) {
    pthread_t th;
    CHECK(pthread_create(&th, NULL, blocked_call, b) == 0);
    CHECK(wait_flag(&b->started, 2000));
    msleep(SCALE(150, 600));
    CHECK(!atomic_load(&b->done)); /* it really blocks */
    long closed_at = now_ms();
    XS_PASS(xs_close(b->sid));
    int woke = wait_flag(&b->done, SAFETY_MS + 2000);
    CHECK(woke);
    pthread_join(th, NULL); /* the safety time limits end the call in any case */
    long took = b->returned_ms - closed_at;
    if (took > SCALE(500, 2000)) fprintf(stderr, "  wake-up took %ld ms\n", took);
    CHECK(took < SCALE(500, 2000));
    /* The sid is gone for everybody. */
    char c;
    XS_FAIL(xs_recv(b->sid, &c, 1, MSG_DONTWAIT), EBADF);
    XS_FAIL(xs_send(b->sid, "x", 1, MSG_DONTWAIT), EBADF);
    XS_FAIL(xs_close(b->sid), EBADF);
    return took;
}

/* The woken call failed with EBADF. */
static void expect_ebadf(struct blocked *b) {
    if (b->rc != -1 || b->err != EBADF)
        fprintf(stderr, "  woken call returned %ld, errno %d (%s)\n", b->rc, b->err, strerror(b->err));
    CHECK(b->rc == -1);
    CHECK(b->err == EBADF);
}

static void recv_wakes(int family, int type) {
    int fds0 = fd_count();
    int c, s;
    if (type == SOCK_DGRAM) {
        struct sockaddr_storage addr;
        socklen_t len;
        s = XS_PASS(listener(&XS, family, SOCK_DGRAM, &addr, &len));
        c = -1;
    } else {
        XS_PASS(stream_pair(&XS, family, type, &c, &s));
    }
    XS_PASS(set_timeout_ms(&XS, s, SO_RCVTIMEO, SAFETY_MS));
    struct blocked b = {.op = type == SOCK_DGRAM ? OP_RECVFROM : OP_RECV, .sid = s};
    close_wakes(&b);
    expect_ebadf(&b);
    if (c >= 0) XS_PASS(xs_close(c));
    CHECK(fd_count() == fds0); /* the kernel socket went with the last user */
}

SCENARIO(recv_tcp4) { recv_wakes(AF_INET, SOCK_STREAM); }
SCENARIO(recv_tcp6) { recv_wakes(AF_INET6, SOCK_STREAM); }
SCENARIO(recvfrom_udp) { recv_wakes(AF_INET, SOCK_DGRAM); }
SCENARIO(recv_unix_stream) { recv_wakes(AF_UNIX, SOCK_STREAM); }
SCENARIO(recv_unix_seqpacket) { recv_wakes(AF_UNIX, SOCK_SEQPACKET); }
SCENARIO(recvfrom_unix_dgram) { recv_wakes(AF_UNIX, SOCK_DGRAM); }

static void accept_wakes(int family) {
    int fds0 = fd_count();
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(&XS, family, SOCK_STREAM, &addr, &len));
    XS_PASS(set_timeout_ms(&XS, l, SO_RCVTIMEO, SAFETY_MS));
    struct blocked b = {.op = OP_ACCEPT, .sid = l};
    close_wakes(&b);
    expect_ebadf(&b);
    /* Nobody listens there any more. */
    int c = XS_PASS(xs_socket(family, SOCK_STREAM, 0));
    CHECK(xs_connect(c, (struct sockaddr *)&addr, len) == -1);
    XS_PASS(xs_close(c));
    CHECK(fd_count() == fds0);
}

SCENARIO(accept_tcp) { accept_wakes(AF_INET); }
SCENARIO(accept_unix) { accept_wakes(AF_UNIX); }

static void send_wakes(int family) {
    int fds0 = fd_count();
    int c, s;
    XS_PASS(stream_pair(&XS, family, SOCK_STREAM, &c, &s));
    XS_PASS(set_timeout_ms(&XS, c, SO_SNDTIMEO, SAFETY_MS));
    struct blocked b = {.op = OP_SEND, .sid = c};
    close_wakes(&b);
    expect_ebadf(&b);
    CHECK(b.sent > 0);
    XS_PASS(xs_close(s));
    CHECK(fd_count() == fds0);
}

SCENARIO(send_full_tcp) { send_wakes(AF_INET); }
SCENARIO(send_full_unix) { send_wakes(AF_UNIX); }

/* Fills the accept queue of listener l (nobody accepts), keeping the connected
 * clients in keep[] (returns how many). */
static int fill_backlog(int family, const struct sockaddr_storage *addr, socklen_t len, int *keep, int max) {
    int n = 0;
    while (n < max) {
        int c = XS_PASS(xs_socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0));
        int rc = xs_connect(c, (const struct sockaddr *)addr, len);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd p = {c, POLLOUT, 0};
            rc = xs_poll(&p, 1, SCALE(300, 1000)) == 1 ? 0 : -1;
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (rc == 0 && (xs_getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)) rc = -1;
        }
        if (rc < 0) { /* EAGAIN (Unix) or no answer (TCP): the queue is full */
            xs_close(c);
            return n;
        }
        keep[n++] = c;
    }
    return n;
}

static void connect_wakes(int family, int connect_timeout_ms) {
    int fds0 = fd_count();
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(xs_socket(family, SOCK_STREAM, 0));
    len = family == AF_UNIX ? unix_addr(0, (struct sockaddr_un *)&addr) : loopback(family, 0, &addr);
    XS_PASS(xs_bind(l, (struct sockaddr *)&addr, len));
    XS_PASS(xs_listen(l, 0));
    if (family != AF_UNIX) len = loopback(family, bound_port(&XS, l), &addr);
    int keep[16];
    int n = fill_backlog(family, &addr, len, keep, 16);
    CHECK(n >= 1 && n < 16);
    struct blocked b = {.op = OP_CONNECT, .len = len};
    memcpy(&b.addr, &addr, sizeof addr);
    b.sid = XS_PASS(xs_socket(family, SOCK_STREAM, 0));
    XS_PASS(set_timeout_ms(&XS, b.sid, SO_SNDTIMEO, SAFETY_MS));
    if (connect_timeout_ms)
        XS_PASS(xs_setsockopt(b.sid, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &connect_timeout_ms,
                              sizeof connect_timeout_ms));
    close_wakes(&b);
    expect_ebadf(&b);
    for (int i = 0; i < n; i++) XS_PASS(xs_close(keep[i]));
    XS_PASS(xs_close(l));
    CHECK(fd_count() == fds0);
}

SCENARIO(connect_full_backlog_tcp) { connect_wakes(AF_INET, 0); }
SCENARIO(connect_full_backlog_tcp_with_connect_timeout) { connect_wakes(AF_INET, SAFETY_MS); }
SCENARIO(connect_full_backlog_unix) { connect_wakes(AF_UNIX, 0); }

/* xs_poll reports POLLNVAL for the closed sid and leaves the other entry alone. */
SCENARIO(poll_wakes) {
    int fds0 = fd_count();
    int c, s;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &c, &s));
    int c2, s2;
    XS_PASS(stream_pair(&XS, AF_UNIX, SOCK_STREAM, &c2, &s2));
    struct blocked b = {.op = OP_POLL, .sid = s, .npfd = 2};
    b.pfd[0] = (struct pollfd){s2, POLLIN, 0};
    b.pfd[1] = (struct pollfd){s, POLLIN, 0};
    close_wakes(&b);
    CHECK(b.rc == 1);
    CHECK(b.pfd[0].revents == 0);
    CHECK(b.pfd[1].revents == POLLNVAL);
    XS_PASS(xs_close(c));
    XS_PASS(xs_close(c2));
    XS_PASS(xs_close(s2));
    CHECK(fd_count() == fds0);
}

/* A listening sid in xs_poll: closing it wakes the poll too. */
SCENARIO(poll_listener_wakes) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(&XS, AF_INET6, SOCK_STREAM, &addr, &len));
    struct blocked b = {.op = OP_POLL, .sid = l, .npfd = 1};
    b.pfd[0] = (struct pollfd){l, POLLIN, 0};
    close_wakes(&b);
    CHECK(b.rc == 1);
    CHECK(b.pfd[0].revents == POLLNVAL);
}

/* Two threads blocked in xs_recv on the same sid both wake. */
SCENARIO(two_receivers_wake) {
    int fds0 = fd_count();
    int c, s;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &c, &s));
    XS_PASS(set_timeout_ms(&XS, s, SO_RCVTIMEO, SAFETY_MS));
    struct blocked b1 = {.op = OP_RECV, .sid = s}, b2 = {.op = OP_RECV, .sid = s};
    pthread_t t2;
    CHECK(pthread_create(&t2, NULL, blocked_call, &b2) == 0);
    CHECK(wait_flag(&b2.started, 2000));
    close_wakes(&b1);
    CHECK(wait_flag(&b2.done, SAFETY_MS + 2000));
    pthread_join(t2, NULL);
    expect_ebadf(&b1);
    expect_ebadf(&b2);
    CHECK(b2.returned_ms - b1.returned_ms < SCALE(500, 2000));
    XS_PASS(xs_close(c));
    CHECK(fd_count() == fds0);
}

/* Closing sid B leaves a thread blocked in xs_recv on sid A undisturbed: it keeps
 * waiting, then gets the data sent to it. */
SCENARIO(unrelated_close_does_not_wake) {
    int fds0 = fd_count();
    int ca, sa, cb, sb;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &ca, &sa));
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &cb, &sb));
    XS_PASS(set_timeout_ms(&XS, sa, SO_RCVTIMEO, SAFETY_MS));
    struct blocked b = {.op = OP_RECV, .sid = sa};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, blocked_call, &b) == 0);
    CHECK(wait_flag(&b.started, 2000));
    msleep(SCALE(100, 400));
    XS_PASS(xs_close(sb));
    XS_PASS(xs_close(cb));
    msleep(SCALE(200, 600));
    CHECK(!atomic_load(&b.done)); /* still waiting */
    CHECK(xs_send(ca, "ping", 4, 0) == 4);
    CHECK(wait_flag(&b.done, SAFETY_MS + 2000));
    pthread_join(th, NULL);
    CHECK(b.rc == 4);
    CHECK(xs_recv(sa, (char[8]){0}, 8, MSG_DONTWAIT) == -1 && errno == EAGAIN); /* A still open */
    XS_PASS(xs_close(ca));
    XS_PASS(xs_close(sa));
    CHECK(fd_count() == fds0);
}

/* Many threads blocked on many sids, all closed at once from one thread: each wakes. */
SCENARIO(many_blocked_all_wake) {
    int fds0 = fd_count();
    enum { N = 12 };
    int c[N], s[N];
    struct blocked b[N];
    pthread_t th[N];
    memset(b, 0, sizeof b);
    for (int i = 0; i < N; i++) {
        XS_PASS(stream_pair(&XS, i % 2 ? AF_UNIX : AF_INET, SOCK_STREAM, &c[i], &s[i]));
        XS_PASS(set_timeout_ms(&XS, s[i], SO_RCVTIMEO, SAFETY_MS));
        b[i].op = OP_RECV;
        b[i].sid = s[i];
        CHECK(pthread_create(&th[i], NULL, blocked_call, &b[i]) == 0);
    }
    for (int i = 0; i < N; i++) CHECK(wait_flag(&b[i].started, 2000));
    msleep(SCALE(150, 600));
    long closed_at = now_ms();
    for (int i = 0; i < N; i++) XS_PASS(xs_close(s[i]));
    for (int i = 0; i < N; i++) {
        CHECK(wait_flag(&b[i].done, SAFETY_MS + 2000));
        pthread_join(th[i], NULL);
        expect_ebadf(&b[i]);
        CHECK(b[i].returned_ms - closed_at < SCALE(500, 2000));
        XS_PASS(xs_close(c[i]));
    }
    CHECK(fd_count() == fds0);
}

int main(void) {
    RUN_ONCE(recv_tcp4);
    RUN_ONCE(recv_tcp6);
    RUN_ONCE(recvfrom_udp);
    RUN_ONCE(recv_unix_stream);
    RUN_ONCE(recv_unix_seqpacket);
    RUN_ONCE(recvfrom_unix_dgram);
    RUN_ONCE(accept_tcp);
    RUN_ONCE(accept_unix);
    RUN_ONCE(send_full_tcp);
    RUN_ONCE(send_full_unix);
    RUN_ONCE(connect_full_backlog_tcp);
    RUN_ONCE(connect_full_backlog_tcp_with_connect_timeout);
    RUN_ONCE(connect_full_backlog_unix);
    RUN_ONCE(poll_wakes);
    RUN_ONCE(poll_listener_wakes);
    RUN_ONCE(two_receivers_wake);
    RUN_ONCE(unrelated_close_does_not_wake);
    RUN_ONCE(many_blocked_all_wake);
    return harness_finish();
}
