/* Stream sockets (TCP over IPv4 and IPv6, Unix stream): the same scenario against the
 * kernel and against xsocket must give the same results. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"

static void echo(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int c = XS_PASS(connected(A, family, SOCK_STREAM, &addr, len));
    int s = XS_PASS(A->accept(l, NULL, NULL));
    char buf[64];
    CHECK(REC(t, A->send(c, "hello", 5, 0)) == 5);
    CHECK(REC(t, A->recv(s, buf, sizeof buf, 0)) == 5);
    REC_BYTES(t, buf, 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK(REC(t, A->send(s, buf, 5, 0)) == 5);
    CHECK(REC(t, A->recv(c, buf, sizeof buf, 0)) == 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    XS_PASS(A->close(c));
    CHECK(REC(t, A->recv(s, buf, sizeof buf, 0)) == 0);
    XS_PASS(A->close(s));
    XS_PASS(A->close(l));
}

SCENARIO(echo_tcp4) { echo(A, t, AF_INET); }
SCENARIO(echo_tcp6) { echo(A, t, AF_INET6); }
SCENARIO(echo_unix) { echo(A, t, AF_UNIX); }

SCENARIO(connection_refused) {
    struct sockaddr_storage addr;
    socklen_t len;
    /* Bind a port and close it again, so nothing listens there. */
    int s = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    XS_PASS(A->close(s));
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC(t, A->connect(c, (struct sockaddr *)&addr, len));
    CHECK(t->e[t->n - 1].err == ECONNREFUSED);
    XS_PASS(A->close(c));
}

/* ----- 1 MiB in one MSG_WAITALL recv, sent from another thread ----- */

#define BIG (1 << 20)

struct sender {
    const struct api *A;
    int s;
    const unsigned char *buf;
    size_t sent;
};

static void *send_all(void *arg) {
    struct sender *x = arg;
    while (x->sent < BIG) {
        ssize_t n = x->A->send(x->s, x->buf + x->sent, BIG - x->sent, 0);
        if (n <= 0) break;
        x->sent += (size_t)n;
    }
    return NULL;
}

static void big_transfer(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    unsigned char *out = malloc(BIG), *in = calloc(1, BIG);
    for (size_t i = 0; i < BIG; i++) out[i] = (unsigned char)(i * 7 + (i >> 12));
    struct sender x = {A, c, out, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, send_all, &x) == 0);
    REC_EQ(t, A->recv(s, in, BIG, MSG_WAITALL), BIG);
    pthread_join(th, NULL);
    CHECK(x.sent == BIG);
    CHECK(memcmp(in, out, BIG) == 0);
    REC_BYTES(t, in, BIG);
    XS_PASS(A->close(c));
    REC_EQ(t, A->recv(s, in, BIG, MSG_WAITALL), 0);
    XS_PASS(A->close(s));
    free(out);
    free(in);
}

SCENARIO(big_transfer_tcp4) { big_transfer(A, t, AF_INET); }
SCENARIO(big_transfer_tcp6) { big_transfer(A, t, AF_INET6); }
SCENARIO(big_transfer_unix) { big_transfer(A, t, AF_UNIX); }

/* ----- shutdown(SHUT_WR): the peer reads EOF and can still answer ----- */

static void half_close(const struct api *A, struct trace *t, int family) {
    int c, s;
    char buf[64];
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    REC_EQ(t, A->send(c, "ask", 3, 0), 3);
    REC_EQ(t, A->shutdown(c, SHUT_WR), 0);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 3);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 0);
    REC_EQ(t, A->send(s, "answer", 6, 0), 6);
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 6);
    CHECK(memcmp(buf, "answer", 6) == 0);
    /* Our own SHUT_WR: sending fails with EPIPE (and no SIGPIPE). */
    REC_FAIL(t, A->send(c, "x", 1, 0), EPIPE);
    XS_PASS(A->close(s));
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 0);
    XS_PASS(A->close(c));
}

SCENARIO(half_close_tcp4) { half_close(A, t, AF_INET); }
SCENARIO(half_close_tcp6) { half_close(A, t, AF_INET6); }
SCENARIO(half_close_unix) { half_close(A, t, AF_UNIX); }

/* ----- SO_LINGER {1,0} + close sends a reset ----- */

static int reset_pair(const struct api *A, int family, int *c) {
    int s;
    if (stream_pair(A, family, SOCK_STREAM, c, &s) < 0) return -1;
    struct linger lg = {1, 0};
    XS_PASS(A->setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    XS_PASS(A->close(s));
    return 0;
}

static void peer_reset(const struct api *A, struct trace *t, int family) {
    int c;
    char buf[16];
    /* recv sees the reset first, then end of stream; sending is EPIPE from then on. */
    XS_PASS(reset_pair(A, family, &c));
    CHECK(REC(t, wait_for(A, c, POLLIN, GUARD_MS)) & POLLIN);
    REC_FAIL(t, A->recv(c, buf, sizeof buf, 0), ECONNRESET);
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 0);
    REC_FAIL(t, A->send(c, "x", 1, 0), EPIPE);
    XS_PASS(A->close(c));
    /* send sees the reset first. */
    XS_PASS(reset_pair(A, family, &c));
    CHECK(REC(t, wait_for(A, c, POLLIN, GUARD_MS)) & POLLIN);
    REC_FAIL(t, A->send(c, "x", 1, 0), ECONNRESET);
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 0);
    XS_PASS(A->close(c));
}

SCENARIO(peer_reset_tcp4) { peer_reset(A, t, AF_INET); }
SCENARIO(peer_reset_tcp6) { peer_reset(A, t, AF_INET6); }

/* ----- EADDRINUSE, SO_REUSEADDR, SO_REUSEPORT ----- */

static void addr_in_use(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int b = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(b, (struct sockaddr *)&addr, len), EADDRINUSE);
    /* SO_REUSEADDR does not let a second socket share a listening port. */
    REC_EQ(t, set_int_opt(A, b, SOL_SOCKET, SO_REUSEADDR, 1), 0);
    REC_FAIL(t, A->bind(b, (struct sockaddr *)&addr, len), EADDRINUSE);
    XS_PASS(A->close(b));
    XS_PASS(A->close(l));
    /* SO_REUSEPORT on both lets two listeners share the port. */
    int p1 = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    int p2 = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    REC_EQ(t, set_int_opt(A, p1, SOL_SOCKET, SO_REUSEPORT, 1), 0);
    REC_EQ(t, set_int_opt(A, p2, SOL_SOCKET, SO_REUSEPORT, 1), 0);
    len = loopback(family, 0, &addr);
    REC_EQ(t, A->bind(p1, (struct sockaddr *)&addr, len), 0);
    REC_EQ(t, A->listen(p1, 4), 0);
    len = loopback(family, bound_port(A, p1), &addr);
    REC_EQ(t, A->bind(p2, (struct sockaddr *)&addr, len), 0);
    REC_EQ(t, A->listen(p2, 4), 0);
    XS_PASS(A->close(p1));
    XS_PASS(A->close(p2));
}

SCENARIO(addr_in_use_tcp4) { addr_in_use(A, t, AF_INET); }
SCENARIO(addr_in_use_tcp6) { addr_in_use(A, t, AF_INET6); }

/* A port still held by a connection (the listener is gone) can be bound again only with
 * SO_REUSEADDR. (Not TIME_WAIT: a busy host may have no room left for those.) */
SCENARIO(reuseaddr_live_connection) {
    struct sockaddr_storage addr;
    socklen_t len = loopback(AF_INET, 0, &addr);
    char buf[8];
    int l = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(set_int_opt(A, l, SOL_SOCKET, SO_REUSEADDR, 1));
    XS_PASS(A->bind(l, (struct sockaddr *)&addr, len));
    XS_PASS(A->listen(l, 4));
    len = loopback(AF_INET, bound_port(A, l), &addr);
    int c = XS_PASS(connected(A, AF_INET, SOCK_STREAM, &addr, len));
    int s = XS_PASS(A->accept(l, NULL, NULL)); /* holds the port, with SO_REUSEADDR */
    XS_PASS(A->close(l));
    int b1 = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(b1, (struct sockaddr *)&addr, len), EADDRINUSE);
    int b2 = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_EQ(t, set_int_opt(A, b2, SOL_SOCKET, SO_REUSEADDR, 1), 0);
    REC_EQ(t, A->bind(b2, (struct sockaddr *)&addr, len), 0);
    REC_EQ(t, A->listen(b2, 4), 0);
    /* The old connection still works, and the new listener takes new clients. */
    XS_PASS(set_timeout_ms(A, c, SO_RCVTIMEO, GUARD_MS));
    REC_EQ(t, A->send(s, "old", 3, 0), 3);
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 3);
    int c2 = XS_PASS(connected(A, AF_INET, SOCK_STREAM, &addr, len));
    XS_PASS(set_timeout_ms(A, b2, SO_RCVTIMEO, GUARD_MS));
    int s2 = XS_PASS(A->accept(b2, NULL, NULL));
    A->close(s2), A->close(c2), A->close(s), A->close(c);
    XS_PASS(A->close(b1));
    XS_PASS(A->close(b2));
}

/* A Unix path stays in use until unlinked, even after its socket is closed. */
SCENARIO(unix_path_in_use) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_UNIX, SOCK_STREAM, &addr, &len));
    int b = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(b, (struct sockaddr *)&addr, len), EADDRINUSE);
    XS_PASS(A->close(l));
    REC_FAIL(t, A->bind(b, (struct sockaddr *)&addr, len), EADDRINUSE);
    int c = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), ECONNREFUSED);
    unlink(((struct sockaddr_un *)&addr)->sun_path);
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), ENOENT);
    REC_EQ(t, A->bind(b, (struct sockaddr *)&addr, len), 0);
    XS_PASS(A->close(c));
    XS_PASS(A->close(b));
}

/* Abstract names: connect, addresses read back, EADDRINUSE, freed on close. */
SCENARIO(unix_abstract_stream) {
    struct sockaddr_storage addr, got;
    socklen_t len = unix_addr(1, (struct sockaddr_un *)&addr), glen;
    char buf[16];
    int l = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_EQ(t, A->bind(l, (struct sockaddr *)&addr, len), 0);
    REC_EQ(t, A->listen(l, 4), 0);
    glen = sizeof got;
    REC_EQ(t, A->getsockname(l, (struct sockaddr *)&got, &glen), 0);
    REC(t, glen);
    CHECK(same_addr(&addr, len, &got, glen));
    int b = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(b, (struct sockaddr *)&addr, len), EADDRINUSE);
    int c = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_EQ(t, A->connect(c, (struct sockaddr *)&addr, len), 0);
    int s = XS_PASS(A->accept(l, NULL, NULL));
    glen = sizeof got;
    REC_EQ(t, A->getpeername(c, (struct sockaddr *)&got, &glen), 0);
    CHECK(same_addr(&addr, len, &got, glen));
    REC_EQ(t, A->send(c, "abc", 3, 0), 3);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 3);
    XS_PASS(A->close(s));
    XS_PASS(A->close(c));
    XS_PASS(A->close(l));
    REC_EQ(t, A->bind(b, (struct sockaddr *)&addr, len), 0); /* the name is free again */
    XS_PASS(A->close(b));
}

/* ----- connect to a listener whose backlog is full ----- */

#define MAX_FILL 16
/* Long enough for loopback to answer, also under valgrind. */
#define SHORT_MS (slow_factor() > 1 ? 300 : 100)

/* A loopback listener with listen(l, 0) whose accept queue is full: non-blocking
 * connects are made until one does not complete. Returns the listener. */
static int full_listener(const struct api *A, int family, struct sockaddr_storage *addr,
                         socklen_t *len, int *fill, int *nfill) {
    int l = A->socket(family, SOCK_STREAM, 0);
    *len = family == AF_UNIX ? unix_addr(0, (struct sockaddr_un *)addr) : loopback(family, 0, addr);
    if (l < 0 || A->bind(l, (struct sockaddr *)addr, *len) < 0 || A->listen(l, 0) < 0) return -1;
    if (family != AF_UNIX) *len = loopback(family, bound_port(A, l), addr);
    for (*nfill = 0; *nfill < MAX_FILL;) {
        int f = A->socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (f < 0) break;
        fill[(*nfill)++] = f;
        if (A->connect(f, (struct sockaddr *)addr, *len) == 0) continue;
        if (errno == EAGAIN) return l; /* Unix: the queue is full */
        if (errno != EINPROGRESS) break;
        if (wait_for(A, f, POLLOUT, SHORT_MS) == 0) return l; /* TCP: SYN dropped */
    }
    fprintf(stderr, "  could not fill the backlog (%d sockets)\n", *nfill);
    return l;
}

static void close_all(const struct api *A, int *fds, int n) {
    for (int i = 0; i < n; i++) A->close(fds[i]);
}

/* A blocking connect bounded by SO_SNDTIMEO: the kernel gives up with EINPROGRESS (TCP)
 * or EAGAIN (Unix) after the timeout. */
static void connect_sndtimeo(const struct api *A, struct trace *t, int family, int want) {
    struct sockaddr_storage addr;
    socklen_t len;
    int fill[MAX_FILL], nfill = 0;
    int l = XS_PASS(full_listener(A, family, &addr, &len, fill, &nfill));
    CHECK(nfill > 0 && nfill < MAX_FILL);
    int c = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    XS_PASS(set_timeout_ms(A, c, SO_SNDTIMEO, 200));
    long t0 = now_ms();
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), want);
    long elapsed = now_ms() - t0;
    CHECK(elapsed >= 180 && elapsed < 200 + 2000 * slow_factor());
    XS_PASS(A->close(c));
    close_all(A, fill, nfill);
    XS_PASS(A->close(l));
}

SCENARIO(connect_sndtimeo_tcp4) { connect_sndtimeo(A, t, AF_INET, EINPROGRESS); }
SCENARIO(connect_sndtimeo_unix) { connect_sndtimeo(A, t, AF_UNIX, EAGAIN); }

/* xsocket only: XS_SO_CONNECT_TIMEOUT bounds a blocking connect with ETIMEDOUT and
 * abandons the attempt. */
static void connect_xs_timeout(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int fill[MAX_FILL], nfill = 0;
    int l = XS_PASS(full_listener(A, family, &addr, &len, fill, &nfill));
    CHECK(nfill > 0 && nfill < MAX_FILL);
    int c = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    XS_PASS(set_int_opt(A, c, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 200));
    long t0 = now_ms();
    XS_FAIL(A->connect(c, (struct sockaddr *)&addr, len), ETIMEDOUT);
    long elapsed = now_ms() - t0;
    CHECK(elapsed >= 180 && elapsed < 200 + 2000 * slow_factor());
    CHECK(strstr(xs_last_error(), "xs_connect") != NULL);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    XS_FAIL(A->getpeername(c, (struct sockaddr *)&peer, &plen), ENOTCONN);
    /* The socket can connect again once the queue has room. */
    XS_PASS(set_timeout_ms(A, l, SO_RCVTIMEO, GUARD_MS));
    int s = XS_PASS(A->accept(l, NULL, NULL));
    close_all(A, fill, nfill);
    XS_PASS(A->close(s));
    XS_PASS(set_int_opt(A, c, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, GUARD_MS));
    XS_PASS(A->connect(c, (struct sockaddr *)&addr, len));
    s = XS_PASS(A->accept(l, NULL, NULL));
    XS_PASS(set_timeout_ms(A, s, SO_RCVTIMEO, GUARD_MS));
    char buf[4];
    CHECK(A->send(c, "ok", 2, 0) == 2 && A->recv(s, buf, sizeof buf, 0) == 2);
    XS_PASS(A->close(s));
    XS_PASS(A->close(c));
    XS_PASS(A->close(l));
}

SCENARIO(connect_xs_timeout_tcp4) { connect_xs_timeout(A, t, AF_INET); }
SCENARIO(connect_xs_timeout_unix) { connect_xs_timeout(A, t, AF_UNIX); }

static void on_usr1(int sig) { (void)sig; }

static void *kick_main(void *arg) {
    usleep((useconds_t)SHORT_MS * 1000);
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

/* A signal (handler without SA_RESTART) interrupts a blocking connect with EINTR, as the
 * kernel's own blocking connect does: with SO_SNDTIMEO (compared), and xsocket-only with
 * XS_SO_CONNECT_TIMEOUT. */
static void connect_eintr(const struct api *A, struct trace *t, int level, int name) {
    struct sockaddr_storage addr;
    socklen_t len;
    int fill[MAX_FILL], nfill = 0;
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigaction(SIGUSR1, &sa, &old);
    int l = XS_PASS(full_listener(A, AF_INET, &addr, &len, fill, &nfill));
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int ms = 10 * SHORT_MS; /* the signal comes after a tenth of it */
    if (level == SOL_SOCKET) XS_PASS(set_timeout_ms(A, c, name, ms));
    else XS_PASS(set_int_opt(A, c, level, name, ms));
    pthread_t self = pthread_self(), th;
    CHECK(pthread_create(&th, NULL, kick_main, &self) == 0);
    long t0 = now_ms();
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), EINTR);
    CHECK(now_ms() - t0 < ms * 8 / 10);
    pthread_join(th, NULL);
    XS_PASS(A->close(c));
    close_all(A, fill, nfill);
    XS_PASS(A->close(l));
    sigaction(SIGUSR1, &old, NULL);
}

SCENARIO(connect_eintr_sndtimeo) { connect_eintr(A, t, SOL_SOCKET, SO_SNDTIMEO); }
SCENARIO(connect_eintr_xs_timeout) { connect_eintr(A, t, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT); }

/* ----- SO_RCVTIMEO: recv and accept give EAGAIN after about the timeout ----- */

static void recv_timeout(const struct api *A, struct trace *t, int family) {
    int c, s;
    char buf[8];
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    REC_EQ(t, set_timeout_ms(A, s, SO_RCVTIMEO, 120), 0);
    long t0 = now_ms();
    REC_FAIL(t, A->recv(s, buf, sizeof buf, 0), EAGAIN);
    long elapsed = now_ms() - t0;
    CHECK(elapsed >= 110 && elapsed < 120 + 1000 * slow_factor());
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));

    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    REC_EQ(t, set_timeout_ms(A, l, SO_RCVTIMEO, 80), 0);
    t0 = now_ms();
    REC_FAIL(t, A->accept(l, NULL, NULL), EAGAIN);
    elapsed = now_ms() - t0;
    CHECK(elapsed >= 70 && elapsed < 80 + 1000 * slow_factor());
    XS_PASS(A->close(l));
}

SCENARIO(recv_timeout_tcp4) { recv_timeout(A, t, AF_INET); }
SCENARIO(recv_timeout_unix) { recv_timeout(A, t, AF_UNIX); }

/* ----- non-blocking: SOCK_NONBLOCK, O_NONBLOCK, MSG_DONTWAIT ----- */

static void nonblock_socket(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    char buf[8];
    int l = XS_PASS(listener(A, family, SOCK_STREAM | SOCK_NONBLOCK, &addr, &len));
    CHECK(REC(t, A->fcntl(l, F_GETFL, 0)) & O_NONBLOCK);
    REC_FAIL(t, A->accept(l, NULL, NULL), EAGAIN);
    int c = XS_PASS(A->socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0));
    REC_EQ(t, A->connect(c, (struct sockaddr *)&addr, len), family == AF_UNIX ? 0 : -1);
    CHECK(REC(t, wait_for(A, l, POLLIN, GUARD_MS)) == POLLIN);
    int s = XS_PASS(A->accept(l, NULL, NULL));
    CHECK(REC(t, wait_for(A, c, POLLOUT, GUARD_MS)) == POLLOUT);
    REC_FAIL(t, A->recv(c, buf, sizeof buf, 0), EAGAIN);
    XS_PASS(set_timeout_ms(A, c, SO_RCVTIMEO, GUARD_MS));
    REC_EQ(t, A->send(s, "x", 1, 0), 1);
    CHECK(REC(t, wait_for(A, c, POLLIN, GUARD_MS)) == POLLIN);
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 1);
    REC_FAIL(t, A->recv(c, buf, sizeof buf, 0), EAGAIN);
    XS_PASS(A->close(s));
    XS_PASS(A->close(c));
    XS_PASS(A->close(l));
}

SCENARIO(nonblock_socket_tcp4) { nonblock_socket(A, t, AF_INET); }
SCENARIO(nonblock_socket_unix) { nonblock_socket(A, t, AF_UNIX); }

/* O_NONBLOCK set and cleared with fcntl: recv fails at once, then blocks again. */
static void nonblock_fcntl(const struct api *A, struct trace *t, int family) {
    int c, s;
    char buf[8];
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    int fl = REC(t, A->fcntl(s, F_GETFL, 0));
    CHECK(fl >= 0 && !(fl & O_NONBLOCK));
    REC_EQ(t, A->fcntl(s, F_SETFL, fl | O_NONBLOCK), 0);
    CHECK(REC(t, A->fcntl(s, F_GETFL, 0)) == (fl | O_NONBLOCK));
    long t0 = now_ms();
    REC_FAIL(t, A->recv(s, buf, sizeof buf, 0), EAGAIN);
    REC_FAIL(t, A->accept(s, NULL, NULL), EINVAL);
    CHECK(now_ms() - t0 < 100 * slow_factor());
    REC_EQ(t, A->fcntl(s, F_SETFL, fl), 0);
    CHECK(REC(t, A->fcntl(s, F_GETFL, 0)) == fl);
    XS_PASS(set_timeout_ms(A, s, SO_RCVTIMEO, 100));
    t0 = now_ms();
    REC_FAIL(t, A->recv(s, buf, sizeof buf, 0), EAGAIN);
    CHECK(now_ms() - t0 >= 80); /* blocking again: it waited for the timeout */
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(nonblock_fcntl_tcp4) { nonblock_fcntl(A, t, AF_INET); }
SCENARIO(nonblock_fcntl_unix) { nonblock_fcntl(A, t, AF_UNIX); }

/* MSG_DONTWAIT on a blocking socket; a full send buffer; then SO_SNDTIMEO. */
static void dontwait(const struct api *A, struct trace *t, int family) {
    int c, s;
    static char buf[4096];
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    REC_FAIL(t, A->recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    XS_PASS(set_int_opt(A, c, SOL_SOCKET, SO_SNDBUF, 4096));
    XS_PASS(set_int_opt(A, s, SOL_SOCKET, SO_RCVBUF, 4096));
    /* Fill until EAGAIN; again after a pause, in case late ACKs freed some room. */
    long total = 0, n = 0;
    for (int round = 0; round < 10; round++) {
        long before = total;
        while (total < (64L << 20) && (n = A->send(c, buf, sizeof buf, MSG_DONTWAIT)) > 0) total += n;
        CHECK(n == -1 && errno == EAGAIN);
        if (round > 0 && total == before) break;
        usleep(50000);
    }
    CHECK(total > 0);
    REC_FAIL(t, A->send(c, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK(!(REC(t, A->fcntl(c, F_GETFL, 0)) & O_NONBLOCK));
    XS_PASS(set_timeout_ms(A, c, SO_SNDTIMEO, 100));
    long t0 = now_ms();
    REC_FAIL(t, A->send(c, buf, sizeof buf, 0), EAGAIN);
    CHECK(now_ms() - t0 >= 80);
    /* The receiver still gets the first bytes in order. */
    REC_EQ(t, A->recv(s, buf, 1, MSG_DONTWAIT), 1);
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(dontwait_tcp4) { dontwait(A, t, AF_INET); }
SCENARIO(dontwait_unix) { dontwait(A, t, AF_UNIX); }

/* Non-blocking connect: EINPROGRESS, POLLOUT, SO_ERROR 0; connect again reports
 * success once, then EISCONN. */
static void nonblock_connect(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int c = XS_PASS(A->socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0));
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), EINPROGRESS);
    CHECK(REC(t, wait_for(A, c, POLLOUT, GUARD_MS)) == POLLOUT);
    REC_EQ(t, get_int_opt(A, c, SOL_SOCKET, SO_ERROR), 0);
    REC_EQ(t, A->connect(c, (struct sockaddr *)&addr, len), 0);
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), EISCONN);
    int s = XS_PASS(A->accept(l, NULL, NULL));
    XS_PASS(set_timeout_ms(A, s, SO_RCVTIMEO, GUARD_MS));
    char buf[4];
    REC_EQ(t, A->send(c, "ok", 2, 0), 2);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 2);
    XS_PASS(A->close(s));
    XS_PASS(A->close(c));
    XS_PASS(A->close(l));
}

SCENARIO(nonblock_connect_tcp4) { nonblock_connect(A, t, AF_INET); }
SCENARIO(nonblock_connect_tcp6) { nonblock_connect(A, t, AF_INET6); }

/* Non-blocking connect to a closed port: POLLERR, then SO_ERROR ECONNREFUSED once. */
SCENARIO(nonblock_connect_refused) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    XS_PASS(A->close(l));
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), EINPROGRESS);
    CHECK(REC(t, wait_for(A, c, POLLOUT, GUARD_MS)) & POLLERR);
    REC_EQ(t, get_int_opt(A, c, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    REC_EQ(t, get_int_opt(A, c, SOL_SOCKET, SO_ERROR), 0);
    XS_PASS(A->close(c));
}

/* MSG_PEEK returns the bytes and leaves them for the next recv. */
static void msg_peek(const struct api *A, struct trace *t, int family) {
    int c, s;
    char a[16], b[16];
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    REC_EQ(t, A->send(c, "peekaboo", 8, 0), 8);
    CHECK(REC(t, wait_for(A, s, POLLIN, GUARD_MS)) == POLLIN);
    REC_EQ(t, A->recv(s, a, 4, MSG_PEEK), 4);
    CHECK(memcmp(a, "peek", 4) == 0);
    REC_EQ(t, A->recv(s, a, sizeof a, MSG_PEEK), 8);
    REC_EQ(t, A->recv(s, b, sizeof b, 0), 8);
    CHECK(memcmp(a, b, 8) == 0 && memcmp(b, "peekaboo", 8) == 0);
    REC_BYTES(t, b, 8);
    REC_FAIL(t, A->recv(s, a, sizeof a, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(msg_peek_tcp4) { msg_peek(A, t, AF_INET); }
SCENARIO(msg_peek_unix) { msg_peek(A, t, AF_UNIX); }

/* accept4 flags show on the accepted socket; unknown flags are EINVAL. */
static void accept4_flags(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr, peer, local;
    socklen_t len, plen = sizeof peer, llen = sizeof local;
    char buf[4];
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int c1 = XS_PASS(connected(A, family, SOCK_STREAM, &addr, len));
    int c2 = XS_PASS(connected(A, family, SOCK_STREAM, &addr, len));
    REC_FAIL(t, A->accept4(l, NULL, NULL, 0x40000000), EINVAL);
    int s1 = XS_PASS(A->accept4(l, NULL, NULL, SOCK_NONBLOCK));
    CHECK(REC(t, A->fcntl(s1, F_GETFL, 0)) & O_NONBLOCK);
    REC_FAIL(t, A->recv(s1, buf, sizeof buf, 0), EAGAIN);
    int s2 = XS_PASS(A->accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC));
    CHECK(!(REC(t, A->fcntl(s2, F_GETFL, 0)) & O_NONBLOCK));
    XS_PASS(A->getsockname(c2, (struct sockaddr *)&local, &llen));
    REC(t, plen);
    CHECK(same_addr(&peer, plen, &local, llen));
    A->close(s1), A->close(s2), A->close(c1), A->close(c2);
    XS_PASS(A->close(l));
}

SCENARIO(accept4_flags_tcp4) { accept4_flags(A, t, AF_INET); }
SCENARIO(accept4_flags_unix) { accept4_flags(A, t, AF_UNIX); }

/* getsockname/getpeername on both ends agree; unconnected: ENOTCONN; truncation. */
static void names(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr, a, b;
    socklen_t len, alen, blen;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int c = XS_PASS(connected(A, family, SOCK_STREAM, &addr, len));
    int s = XS_PASS(A->accept(l, NULL, NULL));
    alen = sizeof a, blen = sizeof b;
    REC_EQ(t, A->getpeername(c, (struct sockaddr *)&a, &alen), 0);
    REC_EQ(t, A->getsockname(s, (struct sockaddr *)&b, &blen), 0);
    REC(t, alen);
    CHECK(same_addr(&a, alen, &addr, len) && same_addr(&b, blen, &addr, len));
    alen = sizeof a, blen = sizeof b;
    REC_EQ(t, A->getsockname(c, (struct sockaddr *)&a, &alen), 0);
    REC_EQ(t, A->getpeername(s, (struct sockaddr *)&b, &blen), 0);
    REC(t, alen);
    REC(t, blen);
    CHECK(same_addr(&a, alen, &b, blen));
    /* A short buffer is filled as far as it goes; the full length is reported. */
    alen = 4;
    memset(&a, 0, sizeof a);
    REC_EQ(t, A->getsockname(l, (struct sockaddr *)&a, &alen), 0);
    REC(t, alen);
    CHECK(alen > 4 && a.ss_family == family);
    int u = XS_PASS(A->socket(family, SOCK_STREAM, 0));
    alen = sizeof a;
    REC_FAIL(t, A->getpeername(u, (struct sockaddr *)&a, &alen), ENOTCONN);
    A->close(u), A->close(s), A->close(c);
    XS_PASS(A->close(l));
}

SCENARIO(names_tcp4) { names(A, t, AF_INET); }
SCENARIO(names_tcp6) { names(A, t, AF_INET6); }
SCENARIO(names_unix) { names(A, t, AF_UNIX); }

/* ----- IPv6 dual stack ----- */

/* A v6 listener with IPV6_V6ONLY=0 accepts a v4 client, seen as ::ffff:127.0.0.1. */
SCENARIO(dual_stack_accepts_v4) {
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr_storage v4, peer;
    socklen_t plen = sizeof peer;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    int l = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    REC_EQ(t, set_int_opt(A, l, IPPROTO_IPV6, IPV6_V6ONLY, 0), 0);
    REC_EQ(t, A->bind(l, (struct sockaddr *)&a6, sizeof a6), 0);
    REC_EQ(t, A->listen(l, 4), 0);
    socklen_t len = loopback(AF_INET, bound_port(A, l), &v4);
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_EQ(t, A->connect(c, (struct sockaddr *)&v4, len), 0);
    int s = XS_PASS(A->accept(l, (struct sockaddr *)&peer, &plen));
    REC(t, plen);
    CHECK(peer.ss_family == AF_INET6 &&
          IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
    XS_PASS(set_timeout_ms(A, s, SO_RCVTIMEO, GUARD_MS));
    char buf[4];
    REC_EQ(t, A->send(c, "v4", 2, 0), 2);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 2);
    A->close(s), A->close(c);
    XS_PASS(A->close(l));
}

/* With IPV6_V6ONLY=1 a mapped address cannot be bound and a v4 client is refused. */
SCENARIO(v6only_refuses_v4) {
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr_storage v4, v6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    int l = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    REC_EQ(t, set_int_opt(A, l, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0);
    REC_FAIL(t, A->bind(l, (struct sockaddr *)&a6, sizeof a6), EINVAL);
    a6.sin6_addr = in6addr_any; /* only a v6-only wildcard: no v4 address is served */
    REC_EQ(t, A->bind(l, (struct sockaddr *)&a6, sizeof a6), 0);
    REC_EQ(t, A->listen(l, 4), 0);
    int port = bound_port(A, l);
    socklen_t len = loopback(AF_INET, port, &v4);
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&v4, len), ECONNREFUSED);
    len = loopback(AF_INET6, port, &v6);
    int c6 = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    REC_EQ(t, A->connect(c6, (struct sockaddr *)&v6, len), 0);
    A->close(c), A->close(c6);
    XS_PASS(A->close(l));
}

/* Urgent data: POLLPRI, then MSG_OOB reads the last byte of the urgent send. */
SCENARIO(oob_tcp4) {
    int c, s;
    char buf[8];
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    REC_EQ(t, A->send(c, "ab", 2, MSG_OOB), 2);
    CHECK(REC(t, wait_for(A, s, POLLPRI, GUARD_MS)) & POLLPRI);
    REC_EQ(t, A->recv(s, buf, 1, MSG_OOB), 1);
    CHECK(buf[0] == 'b');
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 1);
    CHECK(buf[0] == 'a');
    REC_FAIL(t, A->recv(s, buf, 1, MSG_OOB), EINVAL); /* already read */
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

/* ----- sending to a peer that is gone ----- */

static void send_after_peer_close(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    XS_PASS(A->close(s));
    /* TCP: the first bytes may still go out (the peer answers with a reset). */
    int err = 0;
    for (int i = 0; i < 50 && !err; i++) {
        if (A->send(c, "x", 1, 0) < 0) err = errno;
        else usleep(10000);
    }
    REC(t, err);
    CHECK(err == EPIPE);
    REC_FAIL(t, A->send(c, "x", 1, 0), EPIPE);
    XS_PASS(A->close(c));
}

SCENARIO(send_after_peer_close_tcp4) { send_after_peer_close(A, t, AF_INET); }
SCENARIO(send_after_peer_close_unix) { send_after_peer_close(A, t, AF_UNIX); }

/* listen on a connected socket is EINVAL; connect on a connected socket is EISCONN. */
static void connected_state(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, family, SOCK_STREAM, &addr, &len));
    int c = XS_PASS(connected(A, family, SOCK_STREAM, &addr, len));
    int s = XS_PASS(A->accept(l, NULL, NULL));
    REC_FAIL(t, A->listen(c, 4), EINVAL);
    REC_FAIL(t, A->listen(s, 4), EINVAL);
    REC_FAIL(t, A->connect(c, (struct sockaddr *)&addr, len), EISCONN);
    REC_FAIL(t, A->connect(s, (struct sockaddr *)&addr, len), EISCONN);
    A->close(s), A->close(c);
    XS_PASS(A->close(l));
}

SCENARIO(connected_state_tcp4) { connected_state(A, t, AF_INET); }
SCENARIO(connected_state_tcp6) { connected_state(A, t, AF_INET6); }
SCENARIO(connected_state_unix) { connected_state(A, t, AF_UNIX); }

int main(void) {
    RUN_COMPARED(echo_tcp4);
    RUN_COMPARED(echo_tcp6);
    RUN_COMPARED(echo_unix);
    RUN_COMPARED(connection_refused);
    RUN_COMPARED(big_transfer_tcp4);
    RUN_COMPARED(big_transfer_tcp6);
    RUN_COMPARED(big_transfer_unix);
    RUN_COMPARED(half_close_tcp4);
    RUN_COMPARED(half_close_tcp6);
    RUN_COMPARED(half_close_unix);
    RUN_COMPARED(peer_reset_tcp4);
    RUN_COMPARED(peer_reset_tcp6);
    RUN_COMPARED(addr_in_use_tcp4);
    RUN_COMPARED(addr_in_use_tcp6);
    RUN_COMPARED(reuseaddr_live_connection);
    RUN_COMPARED(unix_path_in_use);
    RUN_COMPARED(unix_abstract_stream);
    RUN_COMPARED(connect_sndtimeo_tcp4);
    RUN_COMPARED(connect_sndtimeo_unix);
    RUN_ONCE(connect_xs_timeout_tcp4);
    RUN_ONCE(connect_xs_timeout_unix);
    RUN_COMPARED(connect_eintr_sndtimeo);
    RUN_ONCE(connect_eintr_xs_timeout);
    RUN_COMPARED(recv_timeout_tcp4);
    RUN_COMPARED(recv_timeout_unix);
    RUN_COMPARED(nonblock_socket_tcp4);
    RUN_COMPARED(nonblock_socket_unix);
    RUN_COMPARED(nonblock_fcntl_tcp4);
    RUN_COMPARED(nonblock_fcntl_unix);
    RUN_COMPARED(dontwait_tcp4);
    RUN_COMPARED(dontwait_unix);
    RUN_COMPARED(nonblock_connect_tcp4);
    RUN_COMPARED(nonblock_connect_tcp6);
    RUN_COMPARED(nonblock_connect_refused);
    RUN_COMPARED(msg_peek_tcp4);
    RUN_COMPARED(msg_peek_unix);
    RUN_COMPARED(accept4_flags_tcp4);
    RUN_COMPARED(accept4_flags_unix);
    RUN_COMPARED(names_tcp4);
    RUN_COMPARED(names_tcp6);
    RUN_COMPARED(names_unix);
    RUN_COMPARED(dual_stack_accepts_v4);
    RUN_COMPARED(v6only_refuses_v4);
    RUN_COMPARED(oob_tcp4);
    RUN_COMPARED(send_after_peer_close_tcp4);
    RUN_COMPARED(send_after_peer_close_unix);
    RUN_COMPARED(connected_state_tcp4);
    RUN_COMPARED(connected_state_tcp6);
    RUN_COMPARED(connected_state_unix);
    return harness_finish();
}
