/* Datagram and seqpacket sockets (UDP over IPv4 and IPv6, Unix datagram, Unix
 * seqpacket): the same scenario against the kernel and against xsocket must give the
 * same results. */
#include <stddef.h>
#include <unistd.h>

#include "harness.h"

/* A bound datagram socket of the family with its address, and a guard receive timeout. */
static int dgram(const struct api *A, int family, struct sockaddr_storage *addr, socklen_t *len) {
    int s = listener(A, family, SOCK_DGRAM, addr, len);
    if (s >= 0) set_timeout_ms(A, s, SO_RCVTIMEO, GUARD_MS);
    return s;
}

/* sendto/recvfrom between two unconnected sockets; recvfrom names the sender. */
static void sendto_recvfrom(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage aa, ba, from;
    socklen_t alen, blen, flen = sizeof from;
    char buf[64];
    int a = XS_PASS(dgram(A, family, &aa, &alen));
    int b = XS_PASS(dgram(A, family, &ba, &blen));
    REC_EQ(t, A->sendto(a, "ping", 4, 0, (struct sockaddr *)&ba, blen), 4);
    REC_EQ(t, A->recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    REC(t, flen);
    CHECK(same_addr(&from, flen, &aa, alen));
    REC_EQ(t, A->sendto(b, "pong!", 5, 0, (struct sockaddr *)&from, flen), 5);
    REC_EQ(t, A->recvfrom(a, buf, sizeof buf, 0, NULL, NULL), 5);
    CHECK(memcmp(buf, "pong!", 5) == 0);
    /* A zero-length datagram is a datagram. */
    REC_EQ(t, A->sendto(a, "", 0, 0, (struct sockaddr *)&ba, blen), 0);
    REC_EQ(t, A->recv(b, buf, sizeof buf, 0), 0);
    REC_FAIL(t, A->recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    XS_PASS(A->close(a));
    XS_PASS(A->close(b));
}

SCENARIO(sendto_recvfrom_udp4) { sendto_recvfrom(A, t, AF_INET); }
SCENARIO(sendto_recvfrom_udp6) { sendto_recvfrom(A, t, AF_INET6); }
SCENARIO(sendto_recvfrom_unix) { sendto_recvfrom(A, t, AF_UNIX); }

/* Connected UDP: send/recv, the peer address, filtering of other senders, and
 * disconnecting with AF_UNSPEC. */
static void udp_connected(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage aa, ba, oa, got;
    socklen_t alen, blen, olen, glen = sizeof got;
    char buf[64];
    int a = XS_PASS(dgram(A, family, &aa, &alen));
    int b = XS_PASS(dgram(A, family, &ba, &blen));
    int o = XS_PASS(dgram(A, family, &oa, &olen));
    REC_EQ(t, A->connect(a, (struct sockaddr *)&ba, blen), 0);
    REC_EQ(t, A->getpeername(a, (struct sockaddr *)&got, &glen), 0);
    CHECK(same_addr(&got, glen, &ba, blen));
    REC_EQ(t, A->send(a, "one", 3, 0), 3);
    REC_EQ(t, A->recv(b, buf, sizeof buf, 0), 3);
    /* A datagram from a third socket does not reach the connected socket. */
    REC_EQ(t, A->sendto(o, "other", 5, 0, (struct sockaddr *)&aa, alen), 5);
    REC_EQ(t, A->sendto(b, "two", 3, 0, (struct sockaddr *)&aa, alen), 3);
    REC_EQ(t, A->recv(a, buf, sizeof buf, 0), 3);
    CHECK(memcmp(buf, "two", 3) == 0);
    REC_FAIL(t, A->recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* sendto with the connected address is allowed on UDP. */
    REC_EQ(t, A->sendto(a, "x", 1, 0, (struct sockaddr *)&ba, blen), 1);
    REC_EQ(t, A->recv(b, buf, sizeof buf, 0), 1);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    REC_EQ(t, A->connect(a, &unspec, sizeof unspec), 0);
    REC_FAIL(t, A->send(a, "x", 1, 0), EDESTADDRREQ);
    glen = sizeof got;
    REC_FAIL(t, A->getpeername(a, (struct sockaddr *)&got, &glen), ENOTCONN);
    A->close(a), A->close(b);
    XS_PASS(A->close(o));
}

SCENARIO(connected_udp4) { udp_connected(A, t, AF_INET); }
SCENARIO(connected_udp6) { udp_connected(A, t, AF_INET6); }

/* Connected UDP to a closed port: the ICMP error comes back as ECONNREFUSED on the
 * next recv, or on the next send. */
static void udp_refused(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    char buf[8];
    int gone = XS_PASS(dgram(A, family, &addr, &len));
    XS_PASS(A->close(gone));
    int a = XS_PASS(A->socket(family, SOCK_DGRAM, 0));
    XS_PASS(set_timeout_ms(A, a, SO_RCVTIMEO, GUARD_MS));
    REC_EQ(t, A->connect(a, (struct sockaddr *)&addr, len), 0);
    REC_EQ(t, A->send(a, "x", 1, 0), 1);
    CHECK(REC(t, wait_for(A, a, POLLIN, GUARD_MS)) & POLLERR);
    REC_FAIL(t, A->recv(a, buf, sizeof buf, 0), ECONNREFUSED);
    REC_FAIL(t, A->recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    REC_EQ(t, A->send(a, "y", 1, 0), 1);
    CHECK(REC(t, wait_for(A, a, 0, GUARD_MS)) & POLLERR);
    REC_FAIL(t, A->send(a, "z", 1, 0), ECONNREFUSED);
    REC_EQ(t, get_int_opt(A, a, SOL_SOCKET, SO_ERROR), 0);
    XS_PASS(A->close(a));
}

SCENARIO(refused_udp4) { udp_refused(A, t, AF_INET); }
SCENARIO(refused_udp6) { udp_refused(A, t, AF_INET6); }

/* A short buffer truncates a datagram (the rest is dropped); MSG_TRUNC returns the real
 * length; recvmsg reports MSG_TRUNC in msg_flags. */
static void truncation(const struct api *A, struct trace *t, int family, int type) {
    struct sockaddr_storage ba;
    socklen_t blen;
    char out[100], buf[10];
    int a, b;
    for (int i = 0; i < 100; i++) out[i] = (char)('a' + i % 26);
    if (type == SOCK_SEQPACKET) {
        XS_PASS(stream_pair(A, AF_UNIX, SOCK_SEQPACKET, &a, &b));
    } else {
        b = XS_PASS(dgram(A, family, &ba, &blen));
        a = XS_PASS(A->socket(family, type, 0));
        XS_PASS(A->connect(a, (struct sockaddr *)&ba, blen));
    }
    for (int i = 0; i < 3; i++) REC_EQ(t, A->send(a, out, sizeof out, 0), 100);
    REC_EQ(t, A->send(a, "end", 3, 0), 3);
    REC_EQ(t, A->recv(b, buf, sizeof buf, 0), 10);
    CHECK(memcmp(buf, out, 10) == 0);
    REC_EQ(t, A->recv(b, buf, sizeof buf, MSG_TRUNC), 100);
    CHECK(memcmp(buf, out, 10) == 0);
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    REC_EQ(t, A->recvmsg(b, &m, 0), 10);
    REC(t, m.msg_flags);
    CHECK(m.msg_flags & MSG_TRUNC);
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov, m.msg_iovlen = 1;
    REC_EQ(t, A->recvmsg(b, &m, 0), 3); /* the next datagram is whole */
    REC(t, m.msg_flags);
    CHECK(!(m.msg_flags & MSG_TRUNC) && memcmp(buf, "end", 3) == 0);
    XS_PASS(A->close(a));
    XS_PASS(A->close(b));
}

SCENARIO(truncation_udp4) { truncation(A, t, AF_INET, SOCK_DGRAM); }
SCENARIO(truncation_udp6) { truncation(A, t, AF_INET6, SOCK_DGRAM); }
SCENARIO(truncation_unix_dgram) { truncation(A, t, AF_UNIX, SOCK_DGRAM); }
SCENARIO(truncation_seqpacket) { truncation(A, t, AF_UNIX, SOCK_SEQPACKET); }

/* sendmsg from three iovecs to an address, recvmsg into two with the sender's name. */
static void iovecs(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage aa, ba, from;
    socklen_t alen, blen;
    int a = XS_PASS(dgram(A, family, &aa, &alen));
    int b = XS_PASS(dgram(A, family, &ba, &blen));
    struct iovec out[3] = {{"head-", 5}, {"middle-", 7}, {"tail", 4}};
    struct msghdr m = {.msg_name = &ba, .msg_namelen = blen, .msg_iov = out, .msg_iovlen = 3};
    REC_EQ(t, A->sendmsg(a, &m, 0), 16);
    char p1[6] = {0}, p2[32] = {0};
    struct iovec in[2] = {{p1, 5}, {p2, sizeof p2}};
    struct msghdr r = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = in, .msg_iovlen = 2};
    REC_EQ(t, A->recvmsg(b, &r, 0), 16);
    CHECK(strcmp(p1, "head-") == 0 && strcmp(p2, "middle-tail") == 0);
    REC(t, r.msg_namelen); /* unix_addr names all have the same length */
    REC(t, r.msg_flags);
    CHECK(r.msg_flags == 0 && same_addr(&from, r.msg_namelen, &aa, alen));
    /* An empty iovec in the middle is skipped. */
    struct iovec out2[3] = {{"ab", 2}, {NULL, 0}, {"cd", 2}};
    struct msghdr m2 = {.msg_name = &ba, .msg_namelen = blen, .msg_iov = out2, .msg_iovlen = 3};
    REC_EQ(t, A->sendmsg(a, &m2, 0), 4);
    REC_EQ(t, A->recv(b, p2, sizeof p2, 0), 4);
    CHECK(memcmp(p2, "abcd", 4) == 0);
    XS_PASS(A->close(a));
    XS_PASS(A->close(b));
}

SCENARIO(iovecs_udp4) { iovecs(A, t, AF_INET); }
SCENARIO(iovecs_udp6) { iovecs(A, t, AF_INET6); }
SCENARIO(iovecs_unix_dgram) { iovecs(A, t, AF_UNIX); }

/* Unix datagram sockets: named by a path or an abstract name, or unnamed; sending to a
 * missing path is ENOENT, to a path whose socket is closed ECONNREFUSED. */
static void unix_dgram(const struct api *A, struct trace *t, int abstract) {
    struct sockaddr_storage aa, ba, from;
    socklen_t alen = unix_addr(abstract, (struct sockaddr_un *)&aa);
    socklen_t blen = unix_addr(abstract, (struct sockaddr_un *)&ba), flen;
    char buf[16];
    int a = XS_PASS(A->socket(AF_UNIX, SOCK_DGRAM, 0));
    int b = XS_PASS(A->socket(AF_UNIX, SOCK_DGRAM, 0));
    int u = XS_PASS(A->socket(AF_UNIX, SOCK_DGRAM, 0));
    XS_PASS(set_timeout_ms(A, b, SO_RCVTIMEO, GUARD_MS));
    REC_EQ(t, A->bind(a, (struct sockaddr *)&aa, alen), 0);
    REC_EQ(t, A->bind(b, (struct sockaddr *)&ba, blen), 0);
    REC_EQ(t, A->sendto(a, "hi", 2, 0, (struct sockaddr *)&ba, blen), 2);
    flen = sizeof from;
    REC_EQ(t, A->recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 2);
    REC(t, flen);
    CHECK(same_addr(&from, flen, &aa, alen));
    /* An unbound sender has no name. */
    REC_EQ(t, A->sendto(u, "anon", 4, 0, (struct sockaddr *)&ba, blen), 4);
    flen = sizeof from;
    REC_EQ(t, A->recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
    REC(t, flen);
    CHECK(flen <= sizeof(sa_family_t));
    XS_PASS(A->close(b));
    if (abstract) {
        REC_FAIL(t, A->sendto(a, "x", 1, 0, (struct sockaddr *)&ba, blen), ECONNREFUSED);
    } else {
        REC_FAIL(t, A->sendto(a, "x", 1, 0, (struct sockaddr *)&ba, blen), ECONNREFUSED);
        unlink(((struct sockaddr_un *)&ba)->sun_path);
        REC_FAIL(t, A->sendto(a, "x", 1, 0, (struct sockaddr *)&ba, blen), ENOENT);
    }
    XS_PASS(A->close(a));
    XS_PASS(A->close(u));
}

SCENARIO(unix_dgram_path) { unix_dgram(A, t, 0); }
SCENARIO(unix_dgram_abstract) { unix_dgram(A, t, 1); }

/* listen and accept make no sense on datagram sockets: EOPNOTSUPP. */
static void no_listen(const struct api *A, struct trace *t, int family) {
    struct sockaddr_storage addr;
    socklen_t len;
    int s = XS_PASS(dgram(A, family, &addr, &len));
    REC_FAIL(t, A->listen(s, 4), EOPNOTSUPP);
    REC_FAIL(t, A->accept(s, NULL, NULL), EOPNOTSUPP);
    REC_FAIL(t, A->accept4(s, NULL, NULL, SOCK_NONBLOCK), EOPNOTSUPP);
    XS_PASS(A->close(s));
}

SCENARIO(no_listen_udp4) { no_listen(A, t, AF_INET); }
SCENARIO(no_listen_udp6) { no_listen(A, t, AF_INET6); }
SCENARIO(no_listen_unix_dgram) { no_listen(A, t, AF_UNIX); }

/* SOCK_SEQPACKET keeps message boundaries, in both directions, and ends with EOF. */
SCENARIO(seqpacket_boundaries) {
    int c, s;
    char buf[64];
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_SEQPACKET, &c, &s));
    REC_EQ(t, get_int_opt(A, s, SOL_SOCKET, SO_TYPE), SOCK_SEQPACKET);
    const char *msgs[] = {"a", "bb", "ccc", ""};
    for (int i = 0; i < 4; i++) REC_EQ(t, A->send(c, msgs[i], strlen(msgs[i]), 0), (long)strlen(msgs[i]));
    for (int i = 0; i < 4; i++) {
        REC_EQ(t, A->recv(s, buf, sizeof buf, 0), (long)strlen(msgs[i]));
        CHECK(memcmp(buf, msgs[i], strlen(msgs[i])) == 0);
    }
    REC_EQ(t, A->send(s, "reply", 5, 0), 5);
    REC_EQ(t, A->send(s, "again", 5, 0), 5);
    REC_EQ(t, A->recv(c, buf, 3, 0), 3); /* "rep", the rest is dropped */
    REC_EQ(t, A->recv(c, buf, sizeof buf, 0), 5);
    CHECK(memcmp(buf, "again", 5) == 0);
    XS_PASS(A->close(c));
    REC_EQ(t, A->recv(s, buf, sizeof buf, 0), 0);
    REC_FAIL(t, A->send(s, "x", 1, 0), EPIPE);
    XS_PASS(A->close(s));
}

/* Oversized datagrams: EMSGSIZE, nothing sent. */
SCENARIO(udp_too_big) {
    struct sockaddr_storage ba;
    socklen_t blen;
    int b = XS_PASS(dgram(A, AF_INET, &ba, &blen));
    int a = XS_PASS(A->socket(AF_INET, SOCK_DGRAM, 0));
    size_t big = 70000;
    char *buf = calloc(1, big);
    REC_FAIL(t, A->sendto(a, buf, big, 0, (struct sockaddr *)&ba, blen), EMSGSIZE);
    REC_EQ(t, A->sendto(a, buf, 65507, 0, (struct sockaddr *)&ba, blen), 65507);
    REC_EQ(t, A->recv(b, buf, big, 0), 65507);
    free(buf);
    XS_PASS(A->close(a));
    XS_PASS(A->close(b));
}

/* SO_RCVTIMEO on a datagram socket: EAGAIN after about the timeout. */
SCENARIO(udp_recv_timeout) {
    struct sockaddr_storage ba;
    socklen_t blen;
    char buf[8];
    int b = XS_PASS(dgram(A, AF_INET, &ba, &blen));
    REC_EQ(t, set_timeout_ms(A, b, SO_RCVTIMEO, 150), 0);
    long t0 = now_ms();
    REC_FAIL(t, A->recvfrom(b, buf, sizeof buf, 0, NULL, NULL), EAGAIN);
    long elapsed = now_ms() - t0;
    CHECK(elapsed >= 130 && elapsed < 150 + 1000 * slow_factor());
    XS_PASS(A->close(b));
}

/* SCM_RIGHTS passes through sendmsg/recvmsg unchanged; no room for it: MSG_CTRUNC. */
static void scm_rights(const struct api *A, struct trace *t, int type) {
    int c, s, pfd[2];
    char data = 'F', got = 0;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl, rctl;
    XS_PASS(stream_pair(A, AF_UNIX, type, &c, &s));
    for (int round = 0; round < 2; round++) {
        CHECK(pipe(pfd) == 0);
        struct iovec iov = {&data, 1}, riov = {&got, 1};
        memset(&ctl, 0, sizeof ctl);
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                           .msg_controllen = sizeof ctl.buf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pfd[0], sizeof(int));
        REC_EQ(t, A->sendmsg(c, &m, 0), 1);
        close(pfd[0]); /* the receiver gets its own descriptor */
        memset(&rctl, 0, sizeof rctl);
        struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1};
        if (round == 0) r.msg_control = rctl.buf, r.msg_controllen = sizeof rctl.buf;
        REC_EQ(t, A->recvmsg(s, &r, 0), 1);
        REC(t, r.msg_flags);
        CHECK(got == 'F');
        if (round == 0) {
            struct cmsghdr *rc = CMSG_FIRSTHDR(&r);
            CHECK(rc && rc->cmsg_level == SOL_SOCKET && rc->cmsg_type == SCM_RIGHTS);
            int fd = -1;
            if (rc) memcpy(&fd, CMSG_DATA(rc), sizeof fd);
            char z = 0;
            CHECK(write(pfd[1], "z", 1) == 1 && read(fd, &z, 1) == 1 && z == 'z');
            if (fd >= 0) close(fd);
            CHECK(r.msg_flags == 0);
        } else {
            CHECK(r.msg_flags & MSG_CTRUNC); /* the descriptor was dropped */
        }
        close(pfd[1]);
    }
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
}

SCENARIO(scm_rights_unix_stream) { scm_rights(A, t, SOCK_STREAM); }
SCENARIO(scm_rights_seqpacket) { scm_rights(A, t, SOCK_SEQPACKET); }

int main(void) {
    RUN_COMPARED(sendto_recvfrom_udp4);
    RUN_COMPARED(sendto_recvfrom_udp6);
    RUN_COMPARED(sendto_recvfrom_unix);
    RUN_COMPARED(connected_udp4);
    RUN_COMPARED(connected_udp6);
    RUN_COMPARED(refused_udp4);
    RUN_COMPARED(refused_udp6);
    RUN_COMPARED(truncation_udp4);
    RUN_COMPARED(truncation_udp6);
    RUN_COMPARED(truncation_unix_dgram);
    RUN_COMPARED(truncation_seqpacket);
    RUN_COMPARED(iovecs_udp4);
    RUN_COMPARED(iovecs_udp6);
    RUN_COMPARED(iovecs_unix_dgram);
    RUN_COMPARED(unix_dgram_path);
    RUN_COMPARED(unix_dgram_abstract);
    RUN_COMPARED(no_listen_udp4);
    RUN_COMPARED(no_listen_udp6);
    RUN_COMPARED(no_listen_unix_dgram);
    RUN_COMPARED(seqpacket_boundaries);
    RUN_COMPARED(udp_too_big);
    RUN_COMPARED(udp_recv_timeout);
    RUN_COMPARED(scm_rights_unix_stream);
    RUN_COMPARED(scm_rights_seqpacket);
    return harness_finish();
}
