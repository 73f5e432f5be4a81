/* XS_SO_NOTIFY_FD: a kernel eventfd per sid that the event thread makes readable when
 * the sid has events (data, a pending connection, end of stream), edge-style: reading
 * it resets it, and it stays quiet while nothing happens. Usable from epoll and poll. */
#include <sys/epoll.h>
#include <unistd.h>

#include "concurrency.h"

#define QUIET_MS SCALE(100, 400) /* "nothing happens" */
#define FIRE_MS SCALE(2000, 8000) /* an event must be reported within this */

static int notify_fd(int sid) {
    int fd = -1;
    socklen_t len = sizeof fd;
    if (xs_getsockopt(sid, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &fd, &len) < 0) return -1;
    if (len != sizeof fd) return -2;
    return fd;
}

/* Whether fd becomes readable within ms. */
static int readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Reads the eventfd's counter (resetting it); 0 when it was not set. */
static uint64_t consume(int fd) {
    uint64_t v = 0;
    if (!readable(fd, 0)) return 0;
    return read(fd, &v, sizeof v) == sizeof v ? v : 0;
}

/* Resets the eventfds until all stay quiet together for QUIET_MS; returns whether
 * they did (an eventfd that keeps firing with nothing happening fails). */
static int settle_all(const int *fds, int n) {
    struct pollfd p[128];
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < n; i++) p[i] = (struct pollfd){fds[i], POLLIN, 0};
        int r = poll(p, (nfds_t)n, QUIET_MS);
        if (r == 0) return 1;
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLIN) consume(fds[i]);
    }
    return 0;
}

static int settle(int fd) { return settle_all(&fd, 1); }

/* The notify fd is a valid eventfd, the same on every call, one per sid; the option
 * is read-only and needs room for an int. */
SCENARIO(notify_fd_is_stable) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    int fd = notify_fd(s);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) >= 0);
    char link[64] = {0}, path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    CHECK(readlink(path, link, sizeof link - 1) > 0);
    CHECK(strstr(link, "eventfd") != NULL);
    CHECK(notify_fd(s) == fd);
    int fd2 = notify_fd(c);
    CHECK(fd2 >= 0 && fd2 != fd);
    CHECK(notify_fd(c) == fd2);
    int v = 5;
    XS_FAIL(xs_setsockopt(s, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &v, sizeof v), ENOPROTOOPT);
    socklen_t small = 2;
    XS_FAIL(xs_getsockopt(s, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &v, &small), EINVAL);
    CHECK(notify_fd(s) == fd);
    XS_PASS(xs_close(c));
    XS_PASS(xs_close(s));
}

/* Data arriving on a connected sid fires the eventfd (seen through epoll); reading
 * it resets it; it then stays quiet; every new arrival fires again; so does the
 * peer's close. */
SCENARIO(data_arrival_fires) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    XS_PASS(xs_fcntl(s, F_SETFL, O_NONBLOCK));
    int fd = notify_fd(s);
    CHECK(fd >= 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 42};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    CHECK(settle(fd)); /* the first report (current state) is allowed, then quiet */
    for (int round = 0; round < 3; round++) {
        char msg[16], buf[64];
        int n = snprintf(msg, sizeof msg, "round %d", round);
        CHECK(xs_send(c, msg, (size_t)n, 0) == n);
        struct epoll_event got;
        CHECK(epoll_wait(ep, &got, 1, FIRE_MS) == 1);
        CHECK(got.data.u32 == 42);
        CHECK(consume(fd) >= 1);
        CHECK(xs_recv(s, buf, sizeof buf, 0) == n);
        CHECK(memcmp(buf, msg, (size_t)n) == 0);
        XS_FAIL(xs_recv(s, buf, sizeof buf, 0), EAGAIN);
        CHECK(settle(fd));
        CHECK(epoll_wait(ep, &got, 1, 0) == 0); /* quiet after the reset */
    }
    XS_PASS(xs_close(c)); /* end of stream is an event too */
    CHECK(readable(fd, FIRE_MS));
    char b;
    CHECK(xs_recv(s, &b, 1, 0) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) == 0);
    close(ep);
    XS_PASS(xs_close(s));
}

/* A pending connection fires a listening sid's eventfd; after the accept it is quiet. */
SCENARIO(pending_connection_fires) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET6, SOCK_STREAM, &addr, &len));
    XS_PASS(xs_fcntl(l, F_SETFL, O_NONBLOCK));
    int fd = notify_fd(l);
    CHECK(fd >= 0);
    CHECK(settle(fd));
    XS_FAIL(xs_accept(l, NULL, NULL), EAGAIN);
    for (int round = 0; round < 2; round++) {
        int c = XS_PASS(connected(A, AF_INET6, SOCK_STREAM, &addr, len));
        CHECK(readable(fd, FIRE_MS));
        CHECK(consume(fd) >= 1);
        int s = XS_PASS(xs_accept(l, NULL, NULL));
        XS_FAIL(xs_accept(l, NULL, NULL), EAGAIN);
        CHECK(settle(fd));
        XS_PASS(xs_close(c));
        XS_PASS(xs_close(s));
    }
    XS_PASS(xs_close(l));
}

/* Several sids at once (TCP/IPv4, TCP/IPv6, Unix stream, UDP) in one epoll set: only
 * the sids that get data fire. */
SCENARIO(several_sids) {
    enum { N = 4 };
    int c[N], s[N], fd[N];
    static const int fam[N] = {AF_INET, AF_INET6, AF_UNIX, AF_INET};
    for (int i = 0; i < 3; i++) XS_PASS(stream_pair(A, fam[i], SOCK_STREAM, &c[i], &s[i]));
    struct sockaddr_storage addr;
    socklen_t len;
    s[3] = XS_PASS(listener(A, AF_INET, SOCK_DGRAM, &addr, &len));
    c[3] = XS_PASS(xs_socket(AF_INET, SOCK_DGRAM, 0));
    XS_PASS(xs_connect(c[3], (struct sockaddr *)&addr, len));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < N; i++) {
        XS_PASS(xs_fcntl(s[i], F_SETFL, O_NONBLOCK));
        fd[i] = notify_fd(s[i]);
        CHECK(fd[i] >= 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) == 0);
    }
    CHECK(settle_all(fd, N));
    static const int rounds[3][N] = {{0, 0, 1, 0}, {1, 0, 0, 1}, {1, 1, 1, 1}};
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < N; i++)
            if (rounds[r][i]) CHECK(xs_send(c[i], "data", 4, 0) == 4);
        int fired[N] = {0}, want = 0, got = 0;
        for (int i = 0; i < N; i++) want += rounds[r][i];
        long end = now_ms() + FIRE_MS;
        while (got < want && now_ms() < end) {
            struct epoll_event evs[N];
            int n = epoll_wait(ep, evs, N, 100);
            for (int k = 0; k < n; k++) {
                uint32_t i = evs[k].data.u32;
                if (!fired[i]) got++;
                fired[i] = 1;
                consume(fd[i]);
            }
        }
        struct epoll_event evs[N]; /* nothing else comes */
        int extra = epoll_wait(ep, evs, N, QUIET_MS);
        for (int k = 0; k < extra; k++) fired[evs[k].data.u32] |= 2;
        for (int i = 0; i < N; i++) {
            if (fired[i] != rounds[r][i] && !(fired[i] & 2 && rounds[r][i]))
                fprintf(stderr, "  round %d: sid %d fired %d, expected %d\n", r, i, fired[i], rounds[r][i]);
            CHECK(!!fired[i] == rounds[r][i]);
            char buf[8];
            if (rounds[r][i]) CHECK(xs_recv(s[i], buf, sizeof buf, 0) == 4);
        }
        CHECK(settle_all(fd, N));
    }
    close(ep);
    for (int i = 0; i < N; i++) {
        XS_PASS(xs_close(c[i]));
        XS_PASS(xs_close(s[i]));
    }
}

/* Many sids with notify fds, watched with one poll() call: each fires for its data. */
SCENARIO(many_sids_poll) {
    enum { N = 64 };
    int c[N], s[N];
    struct pollfd p[N];
    int fd[N];
    for (int i = 0; i < N; i++) {
        XS_PASS(stream_pair(A, i % 2 ? AF_UNIX : AF_INET, SOCK_STREAM, &c[i], &s[i]));
        fd[i] = notify_fd(s[i]);
        p[i] = (struct pollfd){fd[i], POLLIN, 0};
        CHECK(fd[i] >= 0);
    }
    CHECK(settle_all(fd, N));
    for (int i = 0; i < N; i += 3) CHECK(xs_send(c[i], "x", 1, 0) == 1);
    int want = (N + 2) / 3, seen = 0, wrong = 0;
    int fired[N] = {0};
    long end = now_ms() + FIRE_MS;
    while (seen < want && now_ms() < end) {
        if (poll(p, N, 100) <= 0) continue;
        for (int i = 0; i < N; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            consume(p[i].fd);
            if (i % 3) wrong++;
            else if (!fired[i]++) seen++;
        }
    }
    CHECK(seen == want);
    CHECK(wrong == 0);
    for (int i = 0; i < N; i++) {
        XS_PASS(xs_close(c[i]));
        XS_PASS(xs_close(s[i]));
    }
}

struct racer {
    int sid, fd;
    atomic_int *go;
};

static void *ask(void *arg) {
    struct racer *r = arg;
    while (!atomic_load(r->go)) sched_yield();
    r->fd = notify_fd(r->sid);
    return NULL;
}

/* Threads asking for a new sid's notify fd at the same moment all get the same fd,
 * and the library keeps no other. */
SCENARIO(concurrent_first_request) {
    int fds0 = fd_count_settled(FIRE_MS);
    for (int round = 0; round < SCALE(20, 3); round++) {
        int c, s;
        long end = now_ms() + FIRE_MS; /* the previous round's sids are released */
        while (fd_count() != fds0 && now_ms() < end) msleep(2);
        CHECK(fd_count() == fds0);
        XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
        enum { T = 6 };
        atomic_int go = 0;
        struct racer r[T];
        pthread_t th[T];
        for (int i = 0; i < T; i++) {
            r[i] = (struct racer){s, -1, &go};
            CHECK(pthread_create(&th[i], NULL, ask, &r[i]) == 0);
        }
        atomic_store(&go, 1);
        for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < T; i++) CHECK(r[i].fd >= 0 && r[i].fd == r[0].fd);
        int now = fd_count();
        if (now != fds0 + 3) fprintf(stderr, "  round %d: %d descriptors, expected %d\n", round, now, fds0 + 3);
        CHECK(now == fds0 + 3); /* two sockets and one eventfd */
        XS_PASS(xs_close(c));
        XS_PASS(xs_close(s));
    }
    /* The event thread lets go of closed sids (and their eventfds) soon after. */
    long end = now_ms() + FIRE_MS;
    while (fd_count() != fds0 && now_ms() < end) msleep(5);
    CHECK(fd_count() == fds0);
}

/* After xs_close the sid is EBADF (also for the option), and its eventfd is closed
 * by the library shortly after. */
SCENARIO(close_invalidates) {
    int fds0 = fd_count_settled(FIRE_MS);
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    int fd = notify_fd(s);
    CHECK(fd >= 0);
    CHECK(settle(fd));
    XS_PASS(xs_close(s));
    int v;
    socklen_t len = sizeof v;
    XS_FAIL(xs_getsockopt(s, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &v, &len), EBADF);
    XS_FAIL(xs_recv(s, &v, 1, MSG_DONTWAIT), EBADF);
    XS_FAIL(xs_close(s), EBADF);
    long end = now_ms() + FIRE_MS;
    while (fcntl(fd, F_GETFD) >= 0 && now_ms() < end) msleep(5);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
    XS_PASS(xs_close(c));
    CHECK(fd_count_settled(FIRE_MS) == fds0);
}

int main(void) {
    RUN_ONCE(notify_fd_is_stable);
    RUN_ONCE(data_arrival_fires);
    RUN_ONCE(pending_connection_fires);
    RUN_ONCE(several_sids);
    RUN_ONCE(many_sids_poll);
    RUN_ONCE(concurrent_first_request);
    RUN_ONCE(close_invalidates);
    return harness_finish();
}
