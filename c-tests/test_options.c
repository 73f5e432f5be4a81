/* Socket options: kernel-level options set and read back exactly as on a kernel socket;
 * xsocket's own XS_SOL_XSOCKET options; TCP_NODELAY on by default for xs TCP sockets. */
#include <netinet/tcp.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

/* Reads an int option, recording the value and the returned length. */
static int rec_int_opt(const struct api *A, struct trace *t, int s, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    REC_EQ(t, A->getsockopt(s, level, name, &v, &len), 0);
    REC(t, v);
    CHECK(len == sizeof v);
    return v;
}

/* Boolean options: off by default, on after set (any non-zero value reads back as 1). */
static void bool_options(const struct api *A, struct trace *t, int family, int type) {
    static const int names[] = {SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE};
    int s = XS_PASS(A->socket(family, type, 0));
    for (int i = 0; i < 3; i++) {
        if (family == AF_UNIX && names[i] == SO_REUSEPORT) continue;
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) == 0);
        REC_EQ(t, set_int_opt(A, s, SOL_SOCKET, names[i], 5), 0);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) == 1);
        REC_EQ(t, set_int_opt(A, s, SOL_SOCKET, names[i], 0), 0);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) == 0);
    }
    XS_PASS(A->close(s));
}

SCENARIO(bool_options_tcp4) { bool_options(A, t, AF_INET, SOCK_STREAM); }
SCENARIO(bool_options_udp6) { bool_options(A, t, AF_INET6, SOCK_DGRAM); }
SCENARIO(bool_options_unix) { bool_options(A, t, AF_UNIX, SOCK_STREAM); }

/* SO_RCVTIMEO / SO_SNDTIMEO as struct timeval; a bad tv_usec is EDOM, a short optlen EINVAL. */
static void timeval_option(const struct api *A, struct trace *t, int name) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    struct timeval tv = {9, 9};
    socklen_t len = sizeof tv;
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, name, &tv, &len), 0);
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0 && len == sizeof tv);
    tv = (struct timeval){2, 500000};
    REC_EQ(t, A->setsockopt(s, SOL_SOCKET, name, &tv, sizeof tv), 0);
    memset(&tv, 0, sizeof tv);
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, name, &tv, &len), 0);
    REC(t, tv.tv_sec);
    REC(t, tv.tv_usec);
    CHECK(tv.tv_sec == 2 && tv.tv_usec == 500000);
    tv = (struct timeval){0, 1000000};
    REC_FAIL(t, A->setsockopt(s, SOL_SOCKET, name, &tv, sizeof tv), EDOM);
    REC_FAIL(t, A->setsockopt(s, SOL_SOCKET, name, &tv, 4), EINVAL);
    tv = (struct timeval){0, 0}; /* zero: no timeout */
    REC_EQ(t, A->setsockopt(s, SOL_SOCKET, name, &tv, sizeof tv), 0);
    tv = (struct timeval){9, 9};
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, name, &tv, &len), 0);
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
    XS_PASS(A->close(s));
}

SCENARIO(rcvtimeo_option) { timeval_option(A, t, SO_RCVTIMEO); }
SCENARIO(sndtimeo_option) { timeval_option(A, t, SO_SNDTIMEO); }

SCENARIO(linger_option) {
    int s = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    struct linger lg = {7, 7};
    socklen_t len = sizeof lg;
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len), 0);
    CHECK(lg.l_onoff == 0 && lg.l_linger == 0 && len == sizeof lg);
    lg = (struct linger){1, 5};
    REC_EQ(t, A->setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    memset(&lg, 0, sizeof lg);
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len), 0);
    REC(t, lg.l_onoff);
    REC(t, lg.l_linger);
    CHECK(lg.l_onoff == 1 && lg.l_linger == 5);
    REC_FAIL(t, A->setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg - 1), EINVAL);
    lg = (struct linger){0, 0};
    REC_EQ(t, A->setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len), 0);
    CHECK(lg.l_onoff == 0);
    XS_PASS(A->close(s));
}

/* SO_SNDBUF / SO_RCVBUF: the kernel doubles what is set, and has a floor. */
static void buffer_sizes(const struct api *A, struct trace *t, int family, int type) {
    int s = XS_PASS(A->socket(family, type, 0));
    int names[2] = {SO_SNDBUF, SO_RCVBUF};
    for (int i = 0; i < 2; i++) {
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) > 0);
        REC_EQ(t, set_int_opt(A, s, SOL_SOCKET, names[i], 65536), 0);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) == 131072);
        REC_EQ(t, set_int_opt(A, s, SOL_SOCKET, names[i], 1), 0);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, names[i]) > 2);
    }
    XS_PASS(A->close(s));
}

SCENARIO(buffer_sizes_tcp4) { buffer_sizes(A, t, AF_INET, SOCK_STREAM); }
SCENARIO(buffer_sizes_udp4) { buffer_sizes(A, t, AF_INET, SOCK_DGRAM); }
SCENARIO(buffer_sizes_unix) { buffer_sizes(A, t, AF_UNIX, SOCK_STREAM); }

/* Read-only facts: SO_TYPE (without SOCK_NONBLOCK), SO_DOMAIN, SO_PROTOCOL, SO_ERROR,
 * SO_ACCEPTCONN; setting SO_TYPE is ENOPROTOOPT. */
SCENARIO(readonly_options) {
    static const struct { int family, type, protocol; } k[] = {
        {AF_INET, SOCK_STREAM, IPPROTO_TCP},     {AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
        {AF_UNIX, SOCK_STREAM, 0},               {AF_UNIX, SOCK_DGRAM, 0},
        {AF_UNIX, SOCK_SEQPACKET, 0},            {AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        int s = XS_PASS(A->socket(k[i].family, k[i].type, 0));
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, SO_TYPE) == (k[i].type & ~SOCK_NONBLOCK));
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, SO_DOMAIN) == k[i].family);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, SO_PROTOCOL) == k[i].protocol);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, SO_ERROR) == 0);
        CHECK(rec_int_opt(A, t, s, SOL_SOCKET, SO_ACCEPTCONN) == 0);
        REC_FAIL(t, set_int_opt(A, s, SOL_SOCKET, SO_TYPE, SOCK_DGRAM), ENOPROTOOPT);
        XS_PASS(A->close(s));
    }
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    CHECK(rec_int_opt(A, t, l, SOL_SOCKET, SO_ACCEPTCONN) == 1);
    XS_PASS(A->close(l));
}

/* TCP_NODELAY set explicitly reads back on TCP; other socket kinds refuse the level. */
SCENARIO(nodelay_explicit) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_EQ(t, set_int_opt(A, s, IPPROTO_TCP, TCP_NODELAY, 1), 0);
    CHECK(rec_int_opt(A, t, s, IPPROTO_TCP, TCP_NODELAY) == 1);
    REC_EQ(t, set_int_opt(A, s, IPPROTO_TCP, TCP_NODELAY, 0), 0);
    CHECK(rec_int_opt(A, t, s, IPPROTO_TCP, TCP_NODELAY) == 0);
    XS_PASS(A->close(s));
    int u = XS_PASS(A->socket(AF_INET, SOCK_DGRAM, 0));
    REC_FAIL(t, set_int_opt(A, u, IPPROTO_TCP, TCP_NODELAY, 1), ENOPROTOOPT);
    XS_PASS(A->close(u));
    int x = XS_PASS(A->socket(AF_UNIX, SOCK_STREAM, 0));
    REC_FAIL(t, set_int_opt(A, x, IPPROTO_TCP, TCP_NODELAY, 1), EOPNOTSUPP);
    XS_PASS(A->close(x));
}

/* xsocket only: TCP sockets start with TCP_NODELAY on (the kernel's start off), and
 * the sockets accepted from an xs listener inherit the listener's setting. */
SCENARIO(nodelay_default) {
    int k = XS_PASS(socket(AF_INET, SOCK_STREAM, 0));
    CHECK(get_int_opt(&KERNEL, k, IPPROTO_TCP, TCP_NODELAY) == 0);
    close(k);
    int s6 = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    CHECK(get_int_opt(A, s6, IPPROTO_TCP, TCP_NODELAY) == 1);
    XS_PASS(A->close(s6));
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    CHECK(get_int_opt(A, l, IPPROTO_TCP, TCP_NODELAY) == 1);
    int c = XS_PASS(connected(A, AF_INET, SOCK_STREAM, &addr, len));
    int s = XS_PASS(A->accept(l, NULL, NULL));
    CHECK(get_int_opt(A, c, IPPROTO_TCP, TCP_NODELAY) == 1);
    CHECK(get_int_opt(A, s, IPPROTO_TCP, TCP_NODELAY) == 1);
    A->close(s), A->close(c);
    /* Turned off on the listener, it is off on what it accepts, as in the kernel. */
    XS_PASS(set_int_opt(A, l, IPPROTO_TCP, TCP_NODELAY, 0));
    c = XS_PASS(connected(A, AF_INET, SOCK_STREAM, &addr, len));
    s = XS_PASS(A->accept(l, NULL, NULL));
    CHECK(get_int_opt(A, s, IPPROTO_TCP, TCP_NODELAY) == 0);
    A->close(s), A->close(c);
    XS_PASS(A->close(l));
}

/* IPV6_V6ONLY: set and read back, fixed once bound, not an option of v4 sockets. */
SCENARIO(v6only_option) {
    int s = XS_PASS(A->socket(AF_INET6, SOCK_STREAM, 0));
    int def = rec_int_opt(A, t, s, IPPROTO_IPV6, IPV6_V6ONLY);
    CHECK(def == 0 || def == 1);
    REC_EQ(t, set_int_opt(A, s, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0);
    CHECK(rec_int_opt(A, t, s, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
    REC_EQ(t, set_int_opt(A, s, IPPROTO_IPV6, IPV6_V6ONLY, 0), 0);
    CHECK(rec_int_opt(A, t, s, IPPROTO_IPV6, IPV6_V6ONLY) == 0);
    struct sockaddr_storage addr;
    socklen_t len = loopback(AF_INET6, 0, &addr);
    XS_PASS(A->bind(s, (struct sockaddr *)&addr, len));
    REC_FAIL(t, set_int_opt(A, s, IPPROTO_IPV6, IPV6_V6ONLY, 1), EINVAL);
    XS_PASS(A->close(s));
    int u = XS_PASS(A->socket(AF_INET6, SOCK_DGRAM, 0));
    REC_EQ(t, set_int_opt(A, u, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0);
    CHECK(rec_int_opt(A, t, u, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
    XS_PASS(A->close(u));
    int v4 = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    REC_FAIL(t, set_int_opt(A, v4, IPPROTO_IPV6, IPV6_V6ONLY, 1), ENOPROTOOPT);
    XS_PASS(A->close(v4));
}

/* Bad arguments on kernel levels fail as the kernel says. */
SCENARIO(option_errors) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    int v = 1;
    socklen_t len = sizeof v;
    REC_FAIL(t, A->setsockopt(s, SOL_SOCKET, 9999, &v, sizeof v), ENOPROTOOPT);
    REC_FAIL(t, A->getsockopt(s, SOL_SOCKET, 9999, &v, &len), ENOPROTOOPT);
    REC_FAIL(t, A->setsockopt(s, 9999, 1, &v, sizeof v), ENOPROTOOPT);
    REC_FAIL(t, A->setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, 2), EINVAL);
    REC_FAIL(t, BAD_PTR(A->setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, NULL, sizeof v)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, NULL, &len)), EFAULT);
    REC_FAIL(t, BAD_PTR(A->getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, NULL)), EFAULT);
    len = (socklen_t)-1;
    REC_FAIL(t, BAD_PTR(A->getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &len)), EINVAL);
    /* A larger buffer gets an int and its length; a shorter one what fits. */
    long big[2] = {-1, -1};
    len = sizeof big;
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, SO_TYPE, big, &len), 0);
    REC(t, len);
    CHECK(len == sizeof(int) && *(int *)big == SOCK_STREAM);
    len = 0;
    REC_EQ(t, A->getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len), 0);
    REC(t, len);
    CHECK(len == 0);
    XS_PASS(A->close(s));
}

/* xsocket only: XS_SO_CONNECT_TIMEOUT set/get, and the errors of XS_SOL_XSOCKET. */
SCENARIO(xs_level_options) {
    int s = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    CHECK(get_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT) == 0);
    XS_PASS(set_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 250));
    int v = 0;
    long big = -1;
    socklen_t len = sizeof big;
    XS_PASS(A->getsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &big, &len));
    CHECK(len == sizeof(int) && *(int *)&big == 250);
    XS_FAIL(set_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, -1), EINVAL);
    XS_FAIL(A->setsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &v, 2), EINVAL);
    XS_FAIL(A->setsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &v, 0), EINVAL);
    XS_FAIL(A->setsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, NULL, sizeof v), EFAULT);
    len = 2;
    XS_FAIL(A->getsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &v, &len), EINVAL);
    len = sizeof v;
    XS_FAIL(A->getsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, NULL, &len), EFAULT);
    XS_FAIL(A->getsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &v, NULL), EFAULT);
    XS_FAIL(set_int_opt(A, s, XS_SOL_XSOCKET, 999, 1), ENOPROTOOPT);
    XS_FAIL(A->getsockopt(s, XS_SOL_XSOCKET, 999, &v, &len), ENOPROTOOPT);
    XS_FAIL(set_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, 1), ENOPROTOOPT); /* read-only */
    CHECK(strstr(xs_last_error(), "xs_setsockopt") != NULL);
    /* Failed sets left the value alone. */
    CHECK(get_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT) == 250);
    XS_PASS(set_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 0));
    CHECK(get_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT) == 0);
    XS_PASS(A->close(s));
    XS_FAIL(set_int_opt(A, s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 1), EBADF);
    XS_FAIL(A->getsockopt(s, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &v, &len), EBADF);
}

/* xsocket only: a non-blocking socket ignores XS_SO_CONNECT_TIMEOUT (EINPROGRESS), and a
 * blocking one with the timeout set still connects normally. */
SCENARIO(xs_connect_timeout_modes) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = XS_PASS(listener(A, AF_INET, SOCK_STREAM, &addr, &len));
    int nb = XS_PASS(A->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    XS_PASS(set_int_opt(A, nb, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 1000));
    XS_FAIL(A->connect(nb, (struct sockaddr *)&addr, len), EINPROGRESS);
    CHECK(wait_for(A, nb, POLLOUT, GUARD_MS) == POLLOUT);
    int b = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(set_int_opt(A, b, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 1000));
    XS_PASS(A->connect(b, (struct sockaddr *)&addr, len));
    CHECK(!(A->fcntl(b, F_GETFL, 0) & O_NONBLOCK)); /* still blocking afterwards */
    XS_PASS(set_timeout_ms(A, l, SO_RCVTIMEO, GUARD_MS));
    int s1 = XS_PASS(A->accept(l, NULL, NULL));
    int s2 = XS_PASS(A->accept(l, NULL, NULL));
    char buf[4];
    XS_PASS(set_timeout_ms(A, b, SO_RCVTIMEO, GUARD_MS));
    XS_PASS(A->send(s1, "ab", 2, 0));
    XS_PASS(A->send(s2, "ab", 2, 0));
    CHECK(A->recv(b, buf, sizeof buf, 0) == 2);
    /* Refused within the timeout: the kernel's error, not ETIMEDOUT. */
    int r = XS_PASS(A->socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(set_int_opt(A, r, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, 1000));
    XS_PASS(A->close(l));
    XS_FAIL(A->connect(r, (struct sockaddr *)&addr, len), ECONNREFUSED);
    A->close(s1), A->close(s2), A->close(nb), A->close(b);
    XS_PASS(A->close(r));
}

int main(void) {
    RUN_COMPARED(bool_options_tcp4);
    RUN_COMPARED(bool_options_udp6);
    RUN_COMPARED(bool_options_unix);
    RUN_COMPARED(rcvtimeo_option);
    RUN_COMPARED(sndtimeo_option);
    RUN_COMPARED(linger_option);
    RUN_COMPARED(buffer_sizes_tcp4);
    RUN_COMPARED(buffer_sizes_udp4);
    RUN_COMPARED(buffer_sizes_unix);
    RUN_COMPARED(readonly_options);
    RUN_COMPARED(nodelay_explicit);
    RUN_ONCE(nodelay_default);
    RUN_COMPARED(v6only_option);
    RUN_COMPARED(option_errors);
    RUN_ONCE(xs_level_options);
    RUN_ONCE(xs_connect_timeout_modes);
    return harness_finish();
}
