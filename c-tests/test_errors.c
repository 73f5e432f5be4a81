/* Error paths and poll: bad arguments, wrong states and many-socket poll must fail or
 * report as the kernel does; xsocket-only cases (bad sids, sid reuse, diagnostics) are
 * checked against the documented contract. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include "harness.h"

/* ----- poll ----- */

#define PAIRS 64

/* 64 connected pairs (TCP and Unix), data on some, peer gone on others: revents match. */
SCENARIO(poll_many) {
    int c[PAIRS], s[PAIRS];
    struct pollfd p[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) XS_PASS(stream_pair(A, i % 2 ? AF_UNIX : AF_INET, SOCK_STREAM, &c[i], &s[i]));
    for (int i = 0; i < PAIRS; i++) {
        if (i % 3 == 0) CHECK(A->send(c[i], "d", 1, 0) == 1);
        if (i % 7 == 1) XS_PASS(A->close(c[i])), c[i] = -1; /* a negative entry is ignored */
        p[i] = (struct pollfd){.fd = s[i], .events = POLLIN | POLLRDHUP, .revents = 0x5a5a};
        p[PAIRS + i] = (struct pollfd){.fd = c[i], .events = POLLOUT, .revents = 0x5a5a};
    }
    /* Let every expected event arrive first, so the poll below sees a settled state. */
    for (int i = 0; i < PAIRS; i++)
        if (i % 3 == 0 || i % 7 == 1) CHECK(wait_for(A, s[i], POLLIN, GUARD_MS) & POLLIN);
    int want = 0;
    for (int i = 0; i < PAIRS; i++) want += (i % 3 == 0 || i % 7 == 1) + (c[i] >= 0);
    REC_EQ(t, A->poll(p, 2 * PAIRS, GUARD_MS), want);
    for (int i = 0; i < PAIRS; i++) {
        REC(t, p[i].revents);
        CHECK(!!(p[i].revents & POLLIN) == (i % 3 == 0 || i % 7 == 1));
        CHECK(!!(p[i].revents & POLLRDHUP) == (i % 7 == 1));
        REC(t, p[PAIRS + i].revents);
        CHECK(p[PAIRS + i].revents == (c[i] >= 0 ? POLLOUT : 0));
    }
    /* Check only (timeout 0) after reading the data: only the closed peers stay ready. */
    char buf[4];
    for (int i = 0; i < PAIRS; i += 3) CHECK(A->recv(s[i], buf, sizeof buf, 0) == 1);
    want = 0;
    for (int i = 0; i < PAIRS; i++) want += i % 7 == 1;
    REC_EQ(t, A->poll(p, PAIRS, 0), want);
    for (int i = 0; i < PAIRS; i++) {
        if (c[i] >= 0) A->close(c[i]);
        A->close(s[i]);
    }
}

/* A closed or never-open id gets POLLNVAL and counts as ready, at once; -1 is ignored
 * and its revents cleared. */
SCENARIO(poll_bad_ids) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    int gone = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(A->close(gone));
    CHECK(A->send(c, "x", 1, 0) == 1);
    CHECK(wait_for(A, s, POLLIN, GUARD_MS) == POLLIN);
    struct pollfd p[4] = {
        {.fd = s, .events = POLLIN},
        {.fd = gone, .events = POLLIN},
        {.fd = -1, .events = POLLIN, .revents = 0x7f},
        {.fd = 1 << 30, .events = POLLIN},
    };
    long t0 = now_ms();
    REC_EQ(t, A->poll(p, 4, 5000), 3);
    CHECK(now_ms() - t0 < 1000 * slow_factor());
    for (int i = 0; i < 4; i++) REC(t, p[i].revents);
    CHECK(p[0].revents == POLLIN && p[1].revents == POLLNVAL && p[2].revents == 0 &&
          p[3].revents == POLLNVAL);
    /* Only bad ids: still at once. */
    REC_EQ(t, A->poll(&p[1], 1, 5000), 1);
    A->close(c), A->close(s);
}

/* A poll with nothing ready times out with 0 after about the timeout. */
SCENARIO(poll_timeout) {
    int c, s;
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = c, .events = POLLIN | POLLPRI}};
    long t0 = now_ms();
    REC_EQ(t, A->poll(p, 2, 100), 0);
    long elapsed = now_ms() - t0;
    CHECK(elapsed >= 90 && elapsed < 100 + 1000 * slow_factor());
    CHECK(p[0].revents == 0 && p[1].revents == 0);
    t0 = now_ms();
    REC_EQ(t, A->poll(NULL, 0, 50), 0); /* no entries: just sleeps */
    CHECK(now_ms() - t0 >= 40);
    p[0].events = POLLOUT;
    REC_EQ(t, A->poll(p, 1, 0), 1);
    REC(t, p[0].revents);
    CHECK(p[0].revents == POLLOUT);
    REC_FAIL(t, BAD_PTR(A->poll(NULL, 1, 0)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->poll(NULL, (nfds_t)1 << 21, 0)), EINVAL);
    A->close(c), A->close(s);
}

/* ----- bad socket ids ----- */

/* Every call on an id that is not open fails with EBADF. */
static void all_ebadf(const struct api *A, struct trace *t, int bad) {
    struct sockaddr_storage addr;
    socklen_t len = loopback(AF_INET, 9, &addr), alen = sizeof addr;
    char buf[8] = {0};
    int v = 1;
    socklen_t vlen = sizeof v;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct sockaddr *sa = (struct sockaddr *)&addr;
    REC_FAIL(t, A->bind(bad, sa, len), EBADF);
    REC_FAIL(t, A->listen(bad, 1), EBADF);
    REC_FAIL(t, A->accept(bad, sa, &alen), EBADF);
    REC_FAIL(t, A->accept4(bad, NULL, NULL, SOCK_NONBLOCK), EBADF);
    REC_FAIL(t, A->connect(bad, sa, len), EBADF);
    REC_FAIL(t, A->send(bad, buf, sizeof buf, 0), EBADF);
    REC_FAIL(t, A->recv(bad, buf, sizeof buf, MSG_DONTWAIT), EBADF);
    REC_FAIL(t, A->sendto(bad, buf, sizeof buf, 0, sa, len), EBADF);
    REC_FAIL(t, A->recvfrom(bad, buf, sizeof buf, 0, sa, &alen), EBADF);
    REC_FAIL(t, A->sendmsg(bad, &m, 0), EBADF);
    REC_FAIL(t, A->recvmsg(bad, &m, 0), EBADF);
    REC_FAIL(t, A->shutdown(bad, SHUT_RDWR), EBADF);
    REC_FAIL(t, A->setsockopt(bad, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v), EBADF);
    REC_FAIL(t, A->getsockopt(bad, SOL_SOCKET, SO_KEEPALIVE, &v, &vlen), EBADF);
    REC_FAIL(t, A->getsockname(bad, sa, &alen), EBADF);
    REC_FAIL(t, A->getpeername(bad, sa, &alen), EBADF);
    REC_FAIL(t, A->fcntl(bad, F_GETFL, 0), EBADF);
    REC_FAIL(t, A->fcntl(bad, F_SETFL, O_NONBLOCK), EBADF);
    REC_FAIL(t, A->close(bad), EBADF);
}

/* -1 and a huge id are not open in either API. */
SCENARIO(bad_ids_compared) {
    all_ebadf(A, t, -1);
    all_ebadf(A, t, 1 << 30);
}

/* xsocket only: sid 0, a closed sid and INT_MIN are EBADF everywhere, also for the
 * XS_SOL_XSOCKET level, and xs_strerror tells which call failed. */
SCENARIO(bad_ids_xs) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(A->close(s));
    int bad[] = {0, s, -2147483647 - 1};
    for (int i = 0; i < 3; i++) {
        all_ebadf(A, t, bad[i]);
        XS_FAIL(set_int_opt(A, bad[i], XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 1), EBADF);
        CHECK(strstr(xs_strerror(EBADF), "xs_setsockopt") != NULL);
        struct pollfd p = {.fd = bad[i], .events = POLLIN | POLLOUT};
        CHECK(A->poll(&p, 1, 0) == (bad[i] >= 0)); /* negative ids are ignored */
        CHECK(p.revents == (bad[i] >= 0 ? POLLNVAL : 0));
    }
}

/* xsocket only: a closed sid is not handed out again. */
SCENARIO(sid_not_reused) {
    enum { N = 200 };
    int seen[N];
    for (int i = 0; i < N; i++) {
        seen[i] = XS_PASS(A->socket(i % 2 ? AF_UNIX : AF_INET, SOCK_DGRAM, 0));
        CHECK(seen[i] > 0);
        for (int j = 0; j < i; j++) CHECK(seen[j] != seen[i]);
        XS_PASS(A->close(seen[i]));
        XS_FAIL(A->close(seen[i]), EBADF);
    }
    int keep = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    for (int i = 0; i < N; i++) CHECK(keep != seen[i]);
    XS_FAIL(A->getsockname(seen[N - 1], NULL, NULL), EBADF);
    XS_PASS(A->close(keep));
}

/* ----- bad pointers and lengths ----- */

/* NULL buffers and addresses: EFAULT, as the kernel says (and nothing crashes). */
SCENARIO(null_pointers) {
    int c, s;
    char buf[8];
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    REC_FAIL(t, BAD_PTR(A->send(c, NULL, 5, 0)), EFAULT);
    REC_EQ(t, A->send(c, NULL, 0, 0), 0);
    REC_EQ(t, A->send(c, "data", 4, 0), 4);
    CHECK(REC(t, wait_for(A, s, POLLIN, GUARD_MS)) == POLLIN);
    REC_FAIL(t, BAD_PTR(A->recv(s, NULL, 4, MSG_DONTWAIT)), EFAULT);
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 4); /* the data is still there */
    REC_FAIL(t, BAD_PTR(A->sendmsg(c, NULL, 0)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->recvmsg(s, NULL, MSG_DONTWAIT)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->getsockname(c, NULL, &alen)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->getsockname(c, (struct sockaddr *)&a, NULL)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->getpeername(c, (struct sockaddr *)&a, NULL)), EFAULT);
    int v;
    REC_FAIL(t, BAD_PTR(A->getsockopt(c, SOL_SOCKET, SO_TYPE, &v, NULL)), EFAULT);
    int u = XS_PASS(A->socket(AF_INET, SOCK_DGRAM, 0));
    REC_FAIL(t, BAD_PTR(A->bind(u, NULL, sizeof(struct sockaddr_in))), EFAULT);
    REC_FAIL(t, BAD_PTR(A->connect(u, NULL, sizeof(struct sockaddr_in))), EFAULT);
    /* A NULL destination means "none": EDESTADDRREQ, whatever the length. */
    REC_FAIL(t, A->sendto(u, "x", 1, 0, NULL, sizeof(struct sockaddr_in)), EDESTADDRREQ);
    XS_PASS(A->close(u));
    A->close(c), A->close(s);
}

/* Address lengths that do not fit the family: EINVAL. */
SCENARIO(bad_addrlen) {
    struct sockaddr_storage a4, a6;
    socklen_t l4 = loopback(AF_INET, 0, &a4), l6 = loopback(AF_INET6, 0, &a6);
    struct sockaddr_un un;
    socklen_t lu = unix_addr(0, &un);
    int s4 = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int s6 = XS_PASS(A->socket(AF_INET6, SOCK_DGRAM, 0));
    int su = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(s4, (struct sockaddr *)&a4, 4), EINVAL);
    REC_FAIL(t, A->connect(s4, (struct sockaddr *)&a4, 8), EINVAL);
    REC_FAIL(t, A->bind(s4, (struct sockaddr *)&a4, sizeof(struct sockaddr_storage) + 1), EINVAL);
    REC_FAIL(t, A->bind(s6, (struct sockaddr *)&a6, l6 - 8), EINVAL);
    REC_FAIL(t, A->sendto(s6, "x", 1, 0, (struct sockaddr *)&a6, 3), EINVAL);
    REC_FAIL(t, A->bind(su, (struct sockaddr *)&un, 1), EINVAL);
    REC_FAIL(t, A->bind(su, (struct sockaddr *)&un, lu + 1), EINVAL);
    socklen_t neg = (socklen_t)-1;
    REC_FAIL(t, BAD_PTR(A->getsockname(s4, (struct sockaddr *)&a4, &neg)), EINVAL);
    REC_EQ(t, A->bind(s4, (struct sockaddr *)&a4, l4), 0); /* the right length works */
    A->close(s4), A->close(s6);
    XS_PASS(A->close(su));
}

/* An address of another family: EAFNOSUPPORT or EINVAL, as the kernel decides. */
SCENARIO(wrong_family) {
    struct sockaddr_storage a4, a6;
    socklen_t l4 = loopback(AF_INET, 0, &a4), l6 = loopback(AF_INET6, 0, &a6);
    int s4 = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int u4 = XS_PASS(A->socket(AF_INET, SOCK_DGRAM, 0));
    int s6 = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    int su = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->bind(s4, (struct sockaddr *)&a6, l6), EAFNOSUPPORT);
    REC_FAIL(t, A->connect(s4, (struct sockaddr *)&a6, l6), EAFNOSUPPORT);
    REC_FAIL(t, A->sendto(u4, "x", 1, 0, (struct sockaddr *)&a6, l6), EAFNOSUPPORT);
    REC_FAIL(t, A->bind(s6, (struct sockaddr *)&a4, l4), EINVAL); /* too short for v6 */
    a4.ss_family = AF_INET6;                                     /* v6 family, v4 size */
    REC_FAIL(t, A->bind(s4, (struct sockaddr *)&a4, l4), EAFNOSUPPORT);
    a6.ss_family = AF_INET; /* v4 family in a v6-sized address */
    REC_FAIL(t, A->bind(s6, (struct sockaddr *)&a6, l6), EAFNOSUPPORT);
    a4.ss_family = AF_INET;
    REC_FAIL(t, A->bind(su, (struct sockaddr *)&a4, l4), EINVAL);
    REC_FAIL(t, A->connect(su, (struct sockaddr *)&a4, l4), EINVAL);
    A->close(s4), A->close(u4), A->close(s6);
    XS_PASS(A->close(su));
}

/* ----- socket() arguments ----- */

/* Protocols the kernel does not have for the type: EPROTONOSUPPORT in both. */
SCENARIO(socket_protocols) {
    REC_FAIL(t, A->socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
    REC_FAIL(t, A->socket(AF_INET6, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
    REC_FAIL(t, A->socket(AF_UNIX, SOCK_STREAM, 5), EPROTONOSUPPORT);
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
    int u = XS_PASS(A->socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP));
    REC_EQ(t, get_int_opt(A, s, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    REC_EQ(t, get_int_opt(A, u, SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDP);
    A->close(s);
    XS_PASS(A->close(u));
}

/* xsocket only: domains and types outside its set. */
SCENARIO(socket_unsupported) {
    XS_FAIL(A->socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
    XS_FAIL(A->socket(AF_NETLINK, SOCK_DGRAM, 0), EAFNOSUPPORT);
    XS_FAIL(A->socket(AF_PACKET, SOCK_DGRAM, 0), EAFNOSUPPORT);
    XS_FAIL(A->socket(AF_INET, SOCK_RAW, 0), ESOCKTNOSUPPORT);
    XS_FAIL(A->socket(AF_INET, 99, 0), ESOCKTNOSUPPORT);
    XS_FAIL(A->socket(AF_INET, SOCK_STREAM | 0x4000, 0), ESOCKTNOSUPPORT);
    XS_FAIL(A->socket(AF_INET, SOCK_STREAM, 0x8000), EPROTONOSUPPORT);
    XS_FAIL(A->socket(AF_INET, SOCK_DGRAM, -1), EPROTONOSUPPORT);
    CHECK(strstr(xs_last_error(), "xs_socket") != NULL);
    int s = XS_PASS(A->socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK(A->fcntl(s, F_GETFL, 0) & O_NONBLOCK);
    XS_PASS(A->close(s));
}

/* ----- calls in the wrong state ----- */

SCENARIO(wrong_state) {
    struct sockaddr_storage addr, a;
    socklen_t len, alen = sizeof a;
    char buf[4];
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    int tcp = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int udp = XS_PASS(A->socket(AF_INET, SOCK_DGRAM, 0));
    int ux = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, A->listen(udp, 1), EOPNOTSUPP);
    REC_FAIL(t, A->send(tcp, "x", 1, 0), EPIPE);
    REC_FAIL(t, A->send(ux, "x", 1, 0), ENOTCONN);
    REC_FAIL(t, A->send(udp, "x", 1, 0), EDESTADDRREQ);
    REC_FAIL(t, A->recv(tcp, buf, sizeof buf, 0), ENOTCONN);
    REC_FAIL(t, A->recv(ux, buf, sizeof buf, 0), EINVAL);
    REC_FAIL(t, A->accept(tcp, NULL, NULL), EINVAL);
    REC_FAIL(t, A->accept(ux, NULL, NULL), EINVAL);
    REC_FAIL(t, A->shutdown(tcp, SHUT_WR), ENOTCONN);
    REC_FAIL(t, A->getpeername(l, (struct sockaddr *)&a, &alen), ENOTCONN);
    REC_FAIL(t, A->connect(l, (struct sockaddr *)&addr, len), EISCONN);
    REC_FAIL(t, A->bind(l, (struct sockaddr *)&addr, len), EINVAL); /* already bound */
    REC_EQ(t, A->connect(tcp, (struct sockaddr *)&addr, len), 0);
    REC_FAIL(t, A->connect(tcp, (struct sockaddr *)&addr, len), EISCONN);
    REC_FAIL(t, A->shutdown(tcp, 7), EINVAL);
    REC_FAIL(t, A->listen(tcp, 1), EINVAL);
    A->close(tcp), A->close(udp), A->close(ux);
    XS_PASS(A->close(l));
}

/* xsocket only: xs_fcntl takes F_GETFL and F_SETFL (O_NONBLOCK; other bits ignored). */
SCENARIO(fcntl_commands) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int fl = XS_PASS(A->fcntl(s, F_GETFL, 0));
    CHECK((fl & O_ACCMODE) == O_RDWR && !(fl & O_NONBLOCK));
    XS_FAIL(A->fcntl(s, F_GETFD, 0), EINVAL);
    XS_FAIL(A->fcntl(s, F_DUPFD, 0), EINVAL);
    XS_FAIL(A->fcntl(s, F_SETFD, FD_CLOEXEC), EINVAL);
    XS_FAIL(A->fcntl(s, 9999, 0), EINVAL);
    CHECK(strstr(xs_last_error(), "xs_fcntl") != NULL);
    CHECK(XS_PASS(A->fcntl(s, F_SETFL, O_NONBLOCK | O_APPEND)) == 0);
    CHECK(XS_PASS(A->fcntl(s, F_GETFL, 0)) == (fl | O_NONBLOCK));
    CHECK(XS_PASS(A->fcntl(s, F_SETFL, 0)) == 0);
    CHECK(XS_PASS(A->fcntl(s, F_GETFL, 0)) == fl);
    XS_PASS(A->close(s));
}

/* ----- diagnostics ----- */

static void *last_error_in_thread(void *arg) {
    *(int *)arg = xs_last_error()[0] == 0; /* a new thread has no last error */
    return NULL;
}

/* xsocket only: xs_last_error names the failed call; xs_strerror adds the detail only for
 * the matching errno; successful calls do not clear it. */
SCENARIO(error_texts) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    XS_PASS(A->close(l));
    int c = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(A->connect(c, (struct sockaddr *)&addr, len), ECONNREFUSED);
    const char *last = xs_last_error();
    CHECK(last && strstr(last, "xs_connect") && strstr(last, "127.0.0.1"));
    const char *text = xs_strerror(ECONNREFUSED);
    CHECK(text && strstr(text, strerror(ECONNREFUSED)) && strstr(text, "xs_connect"));
    text = xs_strerror(EAGAIN);
    CHECK(text && strcmp(text, strerror(EAGAIN)) == 0);
    text = xs_strerror(123456);
    CHECK(text && *text);
    XS_PASS(A->getsockname(c, (struct sockaddr *)&addr, &len));
    CHECK(strstr(xs_last_error(), "xs_connect") != NULL);
    int fresh = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, last_error_in_thread, &fresh) == 0);
    pthread_join(th, NULL);
    CHECK(fresh);
    XS_PASS(A->close(c));
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig) { (void)sig, sigpipes++; }

/* xsocket only: sending to a closed peer is EPIPE, never SIGPIPE, on every send call. */
SCENARIO(no_sigpipe) {
    struct sigaction sa = {.sa_handler = on_sigpipe}, old;
    sigaction(SIGPIPE, &sa, &old);
    sigpipes = 0;
    int c, s;
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    XS_PASS(A->close(s));
    struct iovec iov = {"x", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    XS_FAIL(A->send(c, "x", 1, 0), EPIPE);
    XS_FAIL(A->sendto(c, "x", 1, 0, NULL, 0), EPIPE);
    XS_FAIL(A->sendmsg(c, &m, 0), EPIPE);
    XS_PASS(A->close(c));
    CHECK(sigpipes == 0);
    sigaction(SIGPIPE, &old, NULL);
}

/* ----- signals ----- */

static void on_usr1(int sig) { (void)sig; }

struct kicker {
    pthread_t target;
    int ms;
};

static void *kick(void *arg) {
    struct kicker *k = arg;
    usleep((useconds_t)k->ms * 1000);
    pthread_kill(k->target, SIGUSR1);
    return NULL;
}

/* Sends SIGUSR1 to the calling thread in 100 ms (300 under valgrind). */
static pthread_t kick_later(struct kicker *k) {
    pthread_t th;
    *k = (struct kicker){pthread_self(), slow_factor() > 1 ? 300 : 100};
    if (pthread_create(&th, NULL, kick, k) != 0) abort();
    return th;
}

/* A signal handler without SA_RESTART interrupts blocking calls: EINTR. */
SCENARIO(eintr) {
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigaction(SIGUSR1, &sa, &old);
    struct kicker k;
    int c, s;
    char buf[4];
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    pthread_t th = kick_later(&k);
    REC_FAIL(t, A->recv(s, buf, sizeof buf, 0), EINTR);
    pthread_join(th, NULL);
    struct pollfd p = {.fd = s, .events = POLLIN};
    th = kick_later(&k);
    REC_FAIL(t, A->poll(&p, 1, GUARD_MS), EINTR);
    pthread_join(th, NULL);
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    XS_PASS(set_timeout_ms(A, l, SO_RCVTIMEO, GUARD_MS));
    th = kick_later(&k);
    REC_FAIL(t, A->accept(l, NULL, NULL), EINTR);
    pthread_join(th, NULL);
    int u = XS_PASS(listener(A, AF_INET6, SOCK_DGRAM, &addr, &len));
    XS_PASS(set_timeout_ms(A, u, SO_RCVTIMEO, GUARD_MS));
    th = kick_later(&k);
    REC_FAIL(t, A->recvfrom(u, buf, sizeof buf, 0, NULL, NULL), EINTR);
    pthread_join(th, NULL);
    A->close(u), A->close(l), A->close(c), A->close(s);
    sigaction(SIGUSR1, &old, NULL);
}

int main(void) {
    RUN_COMPARED(poll_many);
    RUN_COMPARED(poll_bad_ids);
    RUN_COMPARED(poll_timeout);
    RUN_COMPARED(bad_ids_compared);
    RUN_ONCE(bad_ids_xs);
    RUN_ONCE(sid_not_reused);
    RUN_COMPARED(null_pointers);
    RUN_COMPARED(bad_addrlen);
    RUN_COMPARED(wrong_family);
    RUN_COMPARED(socket_protocols);
    RUN_ONCE(socket_unsupported);
    RUN_COMPARED(wrong_state);
    RUN_ONCE(fcntl_commands);
    RUN_ONCE(error_texts);
    RUN_ONCE(no_sigpipe);
    RUN_COMPARED(eintr);
    return harness_finish();
}
