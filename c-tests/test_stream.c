/* Stream sockets (TCP over IPv4 and IPv6, Unix stream): the same scenario against the
 * kernel and against xsocket must give the same results. */
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

int main(void) {
    RUN_COMPARED(echo_tcp4);
    RUN_COMPARED(echo_tcp6);
    RUN_COMPARED(echo_unix);
    RUN_COMPARED(connection_refused);
    return harness_finish();
}
