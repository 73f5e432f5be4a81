/* MSG_MORE corking on stream sockets. The kernel pays a system call per send even with
 * MSG_MORE; xsocket keeps MSG_MORE sends in user space and hands them over together.
 * What the peer sees must stay the same: every byte, in order, and nothing held back
 * longer than the kernel would (a send without MSG_MORE, a receive, poll, shutdown or
 * close pushes them; otherwise at most about 200 ms). */
#include <sys/wait.h>

#include "concurrency.h"

/* Reads exactly n bytes (or fails the test) within the guard time. */
static void read_exactly(const struct api *A, int s, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = A->recv(s, (char *)buf + got, n - got, 0);
        if (r <= 0) {
            harness_fail(__FILE__, __LINE__, "recv in read_exactly", r < 0 ? errno : 0);
            return;
        }
        got += (size_t)r;
    }
}

/* Small MSG_MORE sends followed by one without: the peer gets all of it, in order. */
static void more_then_push(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    char out[3000], in[3000];
    for (int i = 0; i < 3000; i++) out[i] = (char)pattern_byte(7, (uint64_t)i);
    for (int i = 0; i < 2900; i += 100) CHECK(REC(t, A->send(c, out + i, 100, MSG_MORE)) == 100);
    CHECK(REC(t, A->send(c, out + 2900, 100, 0)) == 100);
    read_exactly(A, s, in, sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    REC_BYTES(t, in, sizeof in);
    A->close(c), A->close(s);
}
SCENARIO(more_then_push_tcp) { more_then_push(A, t, AF_INET); }
SCENARIO(more_then_push_unix) { more_then_push(A, t, AF_UNIX); }

/* xsocket keeps MSG_MORE bytes back (no partial message reaches the peer early) and
 * sends them by itself after about 200 ms when nothing else comes. */
SCENARIO(held_then_sent_after_delay) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    CHECK(A->send(c, "header", 6, MSG_MORE) == 6);
    CHECK(wait_for(A, s, POLLIN, 50) == 0); /* still corked */
    long t0 = now_ms();
    CHECK(wait_for(A, s, POLLIN, 2000 * slow_factor()) == POLLIN);
    long waited = now_ms() - t0;
    CHECK(waited >= 100 && waited < 1000 * slow_factor());
    char buf[8];
    CHECK(A->recv(s, buf, sizeof buf, 0) == 6 && memcmp(buf, "header", 6) == 0);
    A->close(c), A->close(s);
}

/* A request corked with MSG_MORE, then a blocking receive of the reply on the same
 * socket: the receive pushes the request first, so this does not wait 200 ms. */
SCENARIO(receive_pushes_corked_request) {
    int c, s;
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    long t0 = now_ms();
    for (int round = 0; round < 20; round++) {
        char buf[8];
        CHECK(A->send(c, "ping", 4, MSG_MORE) == 4);
        CHECK(A->recv(c, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
        CHECK(A->recv(s, buf, sizeof buf, 0) == 4);
        CHECK(A->send(s, "pong", 4, MSG_MORE) == 4);
        struct pollfd p = {.fd = s, .events = POLLIN};
        CHECK(A->poll(&p, 1, 0) == 0); /* poll pushes s's corked reply */
        CHECK(A->recv(c, buf, sizeof buf, 0) == 4 && memcmp(buf, "pong", 4) == 0);
    }
    CHECK(now_ms() - t0 < 150 * slow_factor()); /* 20 round trips, none waited for the sweep */
    A->close(c), A->close(s);
}

/* shutdown(SHUT_WR) and close send corked bytes before the end of the stream. */
SCENARIO(shutdown_and_close_push_first) {
    int c, s;
    char buf[16];
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    CHECK(REC(t, A->send(c, "tail", 4, MSG_MORE)) == 4);
    XS_PASS(A->shutdown(c, SHUT_WR));
    CHECK(REC(t, A->recv(s, buf, sizeof buf, MSG_WAITALL)) == 4);
    CHECK(REC(t, A->recv(s, buf, sizeof buf, 0)) == 0);
    A->close(c), A->close(s);

    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    CHECK(REC(t, A->send(c, "last words", 10, MSG_MORE)) == 10);
    XS_PASS(A->close(c));
    CHECK(REC(t, A->recv(s, buf, sizeof buf, MSG_WAITALL)) == 10);
    CHECK(memcmp(buf, "last words", 10) == 0);
    A->close(s);
}

/* Many MSG_MORE sends to a peer that does not read, on a non-blocking socket: the
 * sender gets EAGAIN after a bounded amount, then everything arrives in order once the
 * peer reads, and the sender closes before the peer has read it all. */
static void backpressure(const struct api *A, struct trace *t, int family) {
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    XS_PASS(A->fcntl(c, F_SETFL, O_NONBLOCK));
    char chunk[1000];
    uint64_t sent = 0;
    for (;;) {
        for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)pattern_byte(3, sent + i);
        ssize_t n = A->send(c, chunk, sizeof chunk, MSG_MORE);
        if (n < 0) {
            CHECK(errno == EAGAIN);
            break;
        }
        sent += (uint64_t)n;
        if (sent > (64u << 20)) break;
    }
    CHECK(sent > 0 && sent < (64u << 20));
    XS_PASS(A->close(c)); /* the rest must still arrive */
    uint64_t got = 0;
    int bad = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = A->recv(s, buf, sizeof buf, 0);
        if (n <= 0) {
            CHECK(n == 0);
            break;
        }
        for (ssize_t i = 0; i < n; i++) bad |= (unsigned char)buf[i] != pattern_byte(3, got + (uint64_t)i);
        got += (uint64_t)n;
    }
    CHECK(!bad);
    CHECK(got == sent);
    REC(t, bad);
    A->close(s);
}
SCENARIO(backpressure_tcp) { backpressure(A, t, AF_INET); }
SCENARIO(backpressure_unix) { backpressure(A, t, AF_UNIX); }

/* A MSG_MORE send larger than the cork goes straight through, after what was corked. */
SCENARIO(large_more_send) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    static char out[300000], in[300000];
    for (size_t i = 0; i < sizeof out; i++) out[i] = (char)pattern_byte(9, i);
    CHECK(A->send(c, out, 10, MSG_MORE) == 10);
    /* The peer's buffers hold far less than 300 KB: read while sending (poll loop). */
    size_t off = 10, got = 0;
    XS_PASS(A->fcntl(c, F_SETFL, O_NONBLOCK));
    while (got < sizeof in) {
        if (off < sizeof out) {
            ssize_t n = A->send(c, out + off, sizeof out - off, off + 70000 < sizeof out ? MSG_MORE : 0);
            if (n > 0) off += (size_t)n;
            else CHECK(errno == EAGAIN);
        }
        ssize_t r = A->recv(s, in + got, sizeof in - got, MSG_DONTWAIT);
        if (r > 0) got += (size_t)r;
        else if (r == 0) break;
        else if (errno == EAGAIN) wait_for(A, s, POLLIN, 10);
        else break;
    }
    CHECK(got == sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    A->close(c), A->close(s);
}

struct big_send {
    const struct api *A;
    int sid;
    size_t len;
    ssize_t result;
};

static void *send_big(void *arg) {
    struct big_send *b = arg;
    char *buf = calloc(1, b->len);
    b->result = buf ? b->A->send(b->sid, buf, b->len, 0) : -1;
    free(buf);
    return NULL;
}

/* A thread blocked in a send that pushes corked bytes (the peer is not reading) must
 * not hold up a receive or a poll on the same socket in another thread: full-duplex
 * use of one socket from two threads works as with the kernel. */
SCENARIO(blocked_sender_does_not_block_receiver) {
    int c, s;
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_STREAM, &c, &s));
    CHECK(A->send(c, "x", 1, MSG_MORE) == 1);
    struct big_send big = {A, c, 4u << 20, 0};
    pthread_t sender;
    CHECK(pthread_create(&sender, NULL, send_big, &big) == 0);
    msleep(50); /* let the sender fill the kernel buffers and block */
    CHECK(A->send(s, "hi", 2, 0) == 2);
    struct pollfd p = {.fd = c, .events = POLLIN};
    long t0 = now_ms();
    CHECK(A->poll(&p, 1, GUARD_MS) == 1 && (p.revents & POLLIN));
    char buf[4];
    CHECK(A->recv(c, buf, sizeof buf, 0) == 2 && memcmp(buf, "hi", 2) == 0);
    CHECK(now_ms() - t0 < 500 * slow_factor());
    /* Now drain the peer: the corked byte first, then the 4 MiB. */
    size_t got = 0;
    static char in[65536];
    while (got < 1 + big.len) {
        ssize_t n = A->recv(s, in, sizeof in, 0);
        if (n <= 0) break;
        if (got == 0) CHECK(in[0] == 'x');
        got += (size_t)n;
    }
    CHECK(got == 1 + big.len);
    pthread_join(sender, NULL);
    CHECK(big.result == (ssize_t)big.len);
    A->close(c), A->close(s);
}

/* After fork the child does not send the parent's corked bytes a second time. */
SCENARIO(fork_child_drops_parent_cork) {
    int c, s;
    XS_PASS(stream_pair(A, AF_INET, SOCK_STREAM, &c, &s));
    CHECK(A->send(c, "abc", 3, MSG_MORE) == 3);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child polls and closes its copy: neither may push the parent's bytes. */
        struct pollfd p = {.fd = c, .events = POLLOUT};
        A->poll(&p, 1, 0);
        A->close(c);
        /* Leave through exec: valgrind would count the parent's state, which a forked
         * child inherits and deliberately forgets, as leaked at this process's exit. */
        execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
        _exit(1);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(A->send(c, "def", 3, 0) == 3);
    char buf[16];
    msleep(50);
    CHECK(A->recv(s, buf, sizeof buf, 0) == 6 && memcmp(buf, "abcdef", 6) == 0);
    CHECK(A->recv(s, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    A->close(c), A->close(s);
}

int main(void) {
    RUN_COMPARED(more_then_push_tcp);
    RUN_COMPARED(more_then_push_unix);
    RUN_ONCE(held_then_sent_after_delay);
    RUN_ONCE(receive_pushes_corked_request);
    RUN_COMPARED(shutdown_and_close_push_first);
    RUN_COMPARED(backpressure_tcp);
    RUN_COMPARED(backpressure_unix);
    RUN_ONCE(large_more_send);
    RUN_ONCE(blocked_sender_does_not_block_receiver);
    RUN_ONCE(fork_child_drops_parent_cork);
    return harness_finish();
}
