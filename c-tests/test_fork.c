/* fork(): the child keeps working sockets (pre-fork sids send and receive, new sids
 * connect) and a restarted event thread (a pre-fork notify fd fires for new data).
 * A child never hangs: it arms its own alarm, and the parent waits for it with a
 * time limit and kills it if it must. */
#include <sys/wait.h>
#include <unistd.h>

#include "concurrency.h"

#define FIRE_MS SCALE(2000, 8000)

static int notify_fd(int sid) {
    int fd = -1;
    socklen_t len = sizeof fd;
    return xs_getsockopt(sid, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &fd, &len) < 0 ? -1 : fd;
}

static int readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Resets an eventfd until it stays quiet for a while; returns whether it did. */
static int settle(int fd) {
    for (int i = 0; i < 10; i++) {
        if (!readable(fd, SCALE(100, 400))) return 1;
        uint64_t v;
        if (read(fd, &v, sizeof v) != sizeof v) return 0;
    }
    return 0;
}

/* Waits for the child at most ms; kills it on time-out. Returns its wait status, or
 * -1 when it had to be killed. */
static int wait_child(pid_t pid, long ms) {
    long end = now_ms() + ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -2;
        if (now_ms() > end) {
            fprintf(stderr, "  child %d did not finish in %ld ms: killed\n", (int)pid, ms);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        msleep(5);
    }
}

/* The child's result: exit status 0 and no signal. */
static void check_child(pid_t pid) {
    CHECK(pid > 0);
    if (pid <= 0) return;
    int status = wait_child(pid, GUARD_MS * 2);
    if (status >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "  child %s %d%s\n", WIFEXITED(status) ? "exited with" : "killed by signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                WIFEXITED(status) && WEXITSTATUS(status) == 3 ? " (its watchdog: it hung)" : "");
    CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* In a child: leaves with the number of failed checks as exit status.
 * The memory of the parent's other threads (the event thread among them) is still
 * mapped in a forked child, but no thread of the child refers to it any more, so a
 * leak check at the child's exit (valgrind checks even at _exit) would report it as
 * lost, though nothing leaked. So the child leaves through exec: the status comes
 * from a shell's `exit N`, and no leak check runs in the child. */
static void child_exit(void) {
    char code[32];
    snprintf(code, sizeof code, "exit %d", harness_failures > 100 ? 100 : harness_failures);
    fflush(NULL);
    execl("/bin/sh", "sh", "-c", code, (char *)NULL);
    _exit(harness_failures ? 1 : 0);
}

/* Sends msg one way on a pair and checks it arrives. */
static void echo(int from, int to, const char *msg) {
    char buf[64];
    size_t n = strlen(msg);
    CHECK(xs_send(from, msg, n, 0) == (ssize_t)n);
    CHECK(xs_recv(to, buf, sizeof buf, 0) == (ssize_t)n);
    CHECK(memcmp(buf, msg, n) == 0);
}

/* A new listener, connection and echo, all made in this process. */
static void fresh_connection(int family) {
    int c, s;
    XS_PASS(stream_pair(&XS, family, SOCK_STREAM, &c, &s));
    echo(c, s, "fresh");
    echo(s, c, "fresh back");
    XS_PASS(xs_close(c));
    XS_PASS(xs_close(s));
}

/* The child uses the sids made before the fork (TCP and Unix pairs), and the notify
 * fd of one of them fires there for new data once the parent has let go of its
 * copies (so only the child's event thread can fire it). */
SCENARIO(child_keeps_sockets_and_events) {
    int a, b, u1, u2;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &a, &b));
    XS_PASS(stream_pair(&XS, AF_UNIX, SOCK_STREAM, &u1, &u2));
    int fd = notify_fd(a);
    CHECK(fd >= 0);
    CHECK(settle(fd));
    int go[2];
    CHECK(pipe(go) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        watchdog((unsigned)SCALE(5, 60));
        close(go[1]);
        char g;
        CHECK(readable(go[0], GUARD_MS) && read(go[0], &g, 1) == 1); /* the parent let go */
        close(go[0]);
        CHECK(settle(fd));
        CHECK(xs_send(b, "ping", 4, 0) == 4);
        CHECK(readable(fd, FIRE_MS)); /* the child's own event thread fired it */
        CHECK(settle(fd));
        char buf[16];
        CHECK(xs_recv(a, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
        echo(a, b, "pong");
        echo(u1, u2, "unix");
        echo(u2, u1, "unix back");
        fresh_connection(AF_INET);
        fresh_connection(AF_UNIX);
        /* A new notify fd in the child works too. */
        int c, s;
        XS_PASS(stream_pair(&XS, AF_INET6, SOCK_STREAM, &c, &s));
        int fd2 = notify_fd(s);
        CHECK(fd2 >= 0 && settle(fd2));
        CHECK(xs_send(c, "z", 1, 0) == 1);
        CHECK(readable(fd2, FIRE_MS));
        int sids[] = {a, b, u1, u2, c, s};
        for (int i = 0; i < 6; i++) XS_PASS(xs_close(sids[i]));
        child_exit();
    }
    close(go[0]);
    /* The parent closes its copies; the child's keep working. */
    int sids[] = {a, b, u1, u2};
    for (int i = 0; i < 4; i++) XS_PASS(xs_close(sids[i]));
    msleep(SCALE(50, 300)); /* the parent's event thread lets go of a */
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    check_child(pid);
    /* The parent still works as well. */
    fresh_connection(AF_INET);
}

/* Both processes keep using the same pair after the fork: the child answers the
 * parent's requests over it. */
SCENARIO(parent_and_child_share_a_connection) {
    int a, b;
    XS_PASS(stream_pair(&XS, AF_UNIX, SOCK_STREAM, &a, &b));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        watchdog((unsigned)SCALE(5, 60));
        char buf[16];
        for (int i = 0; i < 3; i++) {
            ssize_t n = xs_recv(b, buf, sizeof buf, 0);
            CHECK(n == 3);
            buf[0] = 'R';
            CHECK(xs_send(b, buf, 3, 0) == 3);
        }
        XS_PASS(xs_close(a));
        XS_PASS(xs_close(b));
        child_exit();
    }
    for (int i = 0; i < 3; i++) {
        char q[4] = {'q', (char)('0' + i), '!', 0}, buf[16];
        CHECK(xs_send(a, q, 3, 0) == 3);
        CHECK(xs_recv(a, buf, sizeof buf, 0) == 3);
        CHECK(buf[0] == 'R' && buf[1] == q[1]);
    }
    check_child(pid);
    XS_PASS(xs_close(a));
    XS_PASS(xs_close(b));
}

struct blocked_recv {
    int sid;
    atomic_int started, done;
    long rc;
    int err;
    char buf[16];
};

static void *recv_thread(void *arg) {
    struct blocked_recv *r = arg;
    atomic_store(&r->started, 1);
    r->rc = xs_recv(r->sid, r->buf, sizeof r->buf, 0);
    r->err = r->rc < 0 ? errno : 0;
    atomic_store(&r->done, 1);
    return NULL;
}

/* A parent thread is blocked in xs_recv on sid a when another thread forks; the child
 * closes its copy of a (as a child that does not need it should). The parent's
 * blocked call must not notice: closing a descriptor in a child never affects the
 * parent's socket. It then receives the data sent to it. */
SCENARIO(child_close_leaves_parent_blocked_call_alone) {
    int a, b;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &a, &b));
    struct blocked_recv r = {.sid = a};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, recv_thread, &r) == 0);
    CHECK(wait_flag(&r.started, 2000));
    msleep(SCALE(50, 300));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        watchdog((unsigned)SCALE(5, 60));
        XS_PASS(xs_close(a));
        XS_PASS(xs_close(b));
        child_exit();
    }
    check_child(pid);
    msleep(SCALE(100, 400));
    if (atomic_load(&r.done))
        fprintf(stderr, "  the parent's xs_recv returned %ld (%s) after the child's xs_close\n", r.rc,
                r.rc < 0 ? strerror(r.err) : "end of stream");
    CHECK(!atomic_load(&r.done));
    CHECK(xs_send(b, "data", 4, MSG_NOSIGNAL) == 4 || atomic_load(&r.done));
    CHECK(wait_flag(&r.done, GUARD_MS + 2000));
    pthread_join(th, NULL);
    CHECK(r.rc == 4 && memcmp(r.buf, "data", 4) == 0);
    XS_PASS(xs_close(a));
    XS_PASS(xs_close(b));
}

struct busy {
    int id;
    atomic_int *stop;
    long rounds;
    int failed;
};

/* Creates, uses and closes sockets until told to stop. */
static void *busy_thread(void *arg) {
    struct busy *bz = arg;
    while (!atomic_load(bz->stop)) {
        int c, s;
        /* TCP only: the harness's unix_addr() is not thread-safe */
        if (stream_pair(&XS, bz->id % 2 ? AF_INET6 : AF_INET, SOCK_STREAM, &c, &s) < 0) {
            bz->failed = 1;
            break;
        }
        char buf[8];
        if (xs_send(c, "abc", 3, 0) != 3 || xs_recv(s, buf, sizeof buf, 0) != 3) bz->failed = 1;
        if (bz->id == 0) { /* one thread also keeps the event thread busy */
            int fd = notify_fd(s);
            if (fd < 0) bz->failed = 1;
        }
        xs_close(c);
        xs_close(s);
        bz->rounds++;
    }
    return NULL;
}

/* Forks repeatedly while other threads create, use and close sockets (and notify
 * fds): no child deadlocks on a lock held at fork time, and each child can use
 * xsocket (new sockets, a notify fd, and a fork of its own). */
SCENARIO(fork_while_threads_are_busy) {
    enum { T = 4 };
    atomic_int stop = 0;
    struct busy bz[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        bz[i] = (struct busy){i, &stop, 0, 0};
        CHECK(pthread_create(&th[i], NULL, busy_thread, &bz[i]) == 0);
    }
    msleep(20);
    for (int k = 0; k < SCALE(10, 2); k++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            watchdog((unsigned)SCALE(5, 60));
            fresh_connection(k % 2 ? AF_UNIX : AF_INET6);
            int c, s;
            XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &c, &s));
            int fd = notify_fd(s);
            CHECK(fd >= 0 && settle(fd));
            CHECK(xs_send(c, "n", 1, 0) == 1);
            CHECK(readable(fd, FIRE_MS));
            XS_PASS(xs_close(c));
            XS_PASS(xs_close(s));
            if (k == 0) { /* a grandchild */
                fflush(NULL);
                pid_t g = fork();
                if (g == 0) {
                    watchdog((unsigned)SCALE(5, 60));
                    fresh_connection(AF_INET);
                    child_exit();
                }
                check_child(g);
            }
            child_exit();
        }
        int before = harness_failures;
        check_child(pid);
        if (harness_failures > before) break; /* one stuck child is enough to report */
        msleep(SCALE(10, 50));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK(!bz[i].failed);
        CHECK(bz[i].rounds > 0);
    }
}

int main(void) {
    RUN_ONCE(child_keeps_sockets_and_events);
    RUN_ONCE(parent_and_child_share_a_connection);
    RUN_ONCE(child_close_leaves_parent_blocked_call_alone);
    RUN_ONCE(fork_while_threads_are_busy);
    return harness_finish();
}
