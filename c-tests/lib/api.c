#include "api.h"

#include <fcntl.h>
#include <unistd.h>

#include "xsocket.h"

static ssize_t k_send(int s, const void *b, size_t n, int f) { return send(s, b, n, f | MSG_NOSIGNAL); }
static ssize_t k_sendto(int s, const void *b, size_t n, int f, const struct sockaddr *a, socklen_t l) {
    return sendto(s, b, n, f | MSG_NOSIGNAL, a, l);
}
static ssize_t k_sendmsg(int s, const struct msghdr *m, int f) { return sendmsg(s, m, f | MSG_NOSIGNAL); }
static int k_fcntl(int s, int cmd, int arg) { return fcntl(s, cmd, arg); }

const struct api KERNEL = {
    "kernel", socket, bind, listen, accept, accept4, connect, k_send, recv, k_sendto, recvfrom,
    k_sendmsg, recvmsg, shutdown, close, setsockopt, getsockopt, getsockname, getpeername,
    k_fcntl, poll,
};

const struct api XS = {
    "xsocket", xs_socket, xs_bind, xs_listen, xs_accept, xs_accept4, xs_connect, xs_send,
    xs_recv, xs_sendto, xs_recvfrom, xs_sendmsg, xs_recvmsg, xs_shutdown, xs_close,
    xs_setsockopt, xs_getsockopt, xs_getsockname, xs_getpeername, xs_fcntl, xs_poll,
};
