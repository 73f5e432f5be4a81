/* The URL convenience: xs_dial and xs_listen_url for tcp, udp and unix, and their
 * errors. xsocket only (the kernel has no such calls). */
#include <unistd.h>

#include "harness.h"

/* "tcp://127.0.0.1:PORT" style URL for a bound sid. */
static void url_of(int sid, const char *scheme, char *out, size_t n) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    XS_PASS(xs_getsockname(sid, (struct sockaddr *)&a, &len));
    if (a.ss_family == AF_INET6)
        snprintf(out, n, "%s://[::1]:%d", scheme, ntohs(((struct sockaddr_in6 *)&a)->sin6_port));
    else
        snprintf(out, n, "%s://127.0.0.1:%d", scheme, ntohs(((struct sockaddr_in *)&a)->sin_port));
}

static void echo_once(int client, int server_side) {
    char buf[16];
    CHECK(xs_send(client, "ping", 4, 0) == 4);
    CHECK(xs_recv(server_side, buf, sizeof buf, 0) == 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
}

SCENARIO(tcp_v4_v6_and_names) {
    const char *listen_urls[] = {"tcp://127.0.0.1:0", "tcp://[::1]:0", "tcp://localhost:0"};
    for (int i = 0; i < 3; i++) {
        int l = XS_PASS(xs_listen_url(listen_urls[i], 8));
        int reuse = 0;
        socklen_t rl = sizeof reuse;
        XS_PASS(xs_getsockopt(l, SOL_SOCKET, SO_REUSEADDR, &reuse, &rl));
        CHECK(reuse == 1);
        char url[64];
        url_of(l, "tcp", url, sizeof url);
        int c = XS_PASS(xs_dial(url));
        int s = XS_PASS(xs_accept(l, NULL, NULL));
        echo_once(c, s);
        xs_close(c), xs_close(s), xs_close(l);
    }
}

SCENARIO(udp_bound_and_connected) {
    int l = XS_PASS(xs_listen_url("udp://127.0.0.1:0", 0));
    int type = 0;
    socklen_t tl = sizeof type;
    XS_PASS(xs_getsockopt(l, SOL_SOCKET, SO_TYPE, &type, &tl));
    CHECK(type == SOCK_DGRAM);
    char url[64];
    url_of(l, "udp", url, sizeof url);
    int c = XS_PASS(xs_dial(url));
    echo_once(c, l);
    xs_close(c), xs_close(l);
}

SCENARIO(unix_path_and_abstract) {
    struct sockaddr_un a;
    unix_addr(0, &a);
    char url[160];
    snprintf(url, sizeof url, "unix://%s", a.sun_path);
    int l = XS_PASS(xs_listen_url(url, 8));
    XS_FAIL(xs_listen_url(url, 8), EADDRINUSE); /* the path exists now, as bind(2) says */
    int c = XS_PASS(xs_dial(url));
    int s = XS_PASS(xs_accept(l, NULL, NULL));
    echo_once(c, s);
    xs_close(c), xs_close(s), xs_close(l);
    unlink(a.sun_path);

    snprintf(url, sizeof url, "unix://@xsocket-url-test-%d", (int)getpid());
    l = XS_PASS(xs_listen_url(url, 8));
    c = XS_PASS(xs_dial(url));
    s = XS_PASS(xs_accept(l, NULL, NULL));
    echo_once(c, s);
    xs_close(c), xs_close(s), xs_close(l);
}

SCENARIO(errors_are_clear) {
    XS_FAIL(xs_dial(NULL), EFAULT);
    XS_FAIL(xs_dial("127.0.0.1:80"), EINVAL);
    CHECK(strstr(xs_last_error(), "no scheme") != NULL);
    XS_FAIL(xs_dial("ftp://127.0.0.1:21"), EINVAL);
    CHECK(strstr(xs_last_error(), "scheme 'ftp'") != NULL);
    XS_FAIL(xs_dial("tcp://127.0.0.1:99999"), EINVAL);
    XS_FAIL(xs_listen_url("unix://relative", 1), EINVAL);
    XS_FAIL(xs_dial("tcp://no-such-host.invalid:80"), EHOSTUNREACH);
    CHECK(strstr(xs_last_error(), "cannot resolve host 'no-such-host.invalid'") != NULL);
    /* A refused dial names the address and leaves no socket behind. */
    int l = XS_PASS(xs_listen_url("tcp://127.0.0.1:0", 1));
    char url[64];
    url_of(l, "tcp", url, sizeof url);
    XS_PASS(xs_close(l));
    int before = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(xs_dial(url), ECONNREFUSED);
    CHECK(strstr(xs_last_error(), "xs_dial: connect to 127.0.0.1:") != NULL);
    int after = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(xs_send(after - 1, "x", 1, 0), EBADF); /* the failed dial's sid was closed */
    xs_close(before), xs_close(after);
}

int main(void) {
    RUN_ONCE(tcp_v4_v6_and_names);
    RUN_ONCE(udp_bound_and_connected);
    RUN_ONCE(unix_path_and_abstract);
    RUN_ONCE(errors_are_clear);
    return harness_finish();
}
