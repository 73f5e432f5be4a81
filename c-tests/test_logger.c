/* Logging (xs_set_logger and XSOCKET_LOG) and SIGPIPE: a callback gets debug lines
 * naming the sids of a connect/accept/close, levels filter, bad levels are EINVAL,
 * XS_LOG_OFF silences everything; and sending to a closed peer fails with EPIPE
 * without raising SIGPIPE, even at its default (fatal) disposition. */
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "concurrency.h"

/* ----- a callback that collects lines ----- */

#define MAX_LINES 512

struct log {
    pthread_mutex_t mu;
    int n, dropped;
    int level[MAX_LINES];
    pid_t tid[MAX_LINES];
    char line[MAX_LINES][160];
};

static struct log logbuf = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void collect(void *userdata, int level, const char *message) {
    struct log *lg = userdata;
    pthread_mutex_lock(&lg->mu);
    if (lg->n < MAX_LINES) {
        lg->level[lg->n] = level;
        lg->tid[lg->n] = (pid_t)syscall(SYS_gettid);
        snprintf(lg->line[lg->n], sizeof lg->line[0], "%s", message);
        lg->n++;
    } else {
        lg->dropped++;
    }
    pthread_mutex_unlock(&lg->mu);
}

static void log_reset(void) {
    pthread_mutex_lock(&logbuf.mu);
    logbuf.n = logbuf.dropped = 0;
    pthread_mutex_unlock(&logbuf.mu);
}

static int log_count(void) {
    pthread_mutex_lock(&logbuf.mu);
    int n = logbuf.n + logbuf.dropped;
    pthread_mutex_unlock(&logbuf.mu);
    return n;
}

/* How many collected lines contain `a` (and `b`, if given), at levels min..max. */
static int lines_with(const char *a, const char *b, int min, int max) {
    int k = 0;
    pthread_mutex_lock(&logbuf.mu);
    for (int i = 0; i < logbuf.n; i++)
        if (strstr(logbuf.line[i], a) && (!b || strstr(logbuf.line[i], b)) &&
            logbuf.level[i] >= min && logbuf.level[i] <= max)
            k++;
    pthread_mutex_unlock(&logbuf.mu);
    return k;
}

static void dump_log(void) {
    pthread_mutex_lock(&logbuf.mu);
    for (int i = 0; i < logbuf.n; i++) fprintf(stderr, "    [%d] %s\n", logbuf.level[i], logbuf.line[i]);
    pthread_mutex_unlock(&logbuf.mu);
}

/* A connection made and closed; its sids in *c and *s. */
static void some_activity(int *c, int *s) {
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, c, s));
    XS_PASS(xs_close(*c));
    XS_PASS(xs_close(*s));
}

/* ----- capturing stderr ----- */

struct capture {
    int saved, pipe_r;
};

static void capture_start(struct capture *cap) {
    int p[2];
    fflush(stderr);
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    cap->saved = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    cap->pipe_r = p[0];
}

/* Restores stderr and returns what was written to it (at most size-1 bytes). */
static size_t capture_end(struct capture *cap, char *out, size_t size) {
    fflush(stderr);
    dup2(cap->saved, 2);
    close(cap->saved);
    size_t n = 0;
    struct pollfd p = {cap->pipe_r, POLLIN, 0};
    while (n + 1 < size && poll(&p, 1, 0) == 1) {
        ssize_t r = read(cap->pipe_r, out + n, size - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    out[n] = 0;
    close(cap->pipe_r);
    return n;
}

/* ----- scenarios ----- */

/* XSOCKET_LOG=debug, set before the first xs_ call, logs to stderr (checked in a
 * child, since this process has made xs_ calls by the time it could set it... and
 * must run first so the child inherits a library that has not read it yet). */
SCENARIO(env_debug_to_stderr) {
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        watchdog((unsigned)SCALE(5, 60));
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        setenv("XSOCKET_LOG", "debug", 1);
        int c, s;
        some_activity(&c, &s);
        char code[32];
        snprintf(code, sizeof code, "exit %d", harness_failures ? 1 : 0);
        execl("/bin/sh", "sh", "-c", code, (char *)NULL); /* no leak check in a forked child */
        _exit(1);
    }
    close(p[1]);
    static char out[16384];
    size_t n = 0;
    long end = now_ms() + GUARD_MS;
    for (;;) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) == 1) {
            ssize_t r = read(p[0], out + n, sizeof out - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
        } else if (now_ms() > end) {
            kill(pid, SIGKILL);
            break;
        }
    }
    out[n] = 0;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(out, "xsocket[debug] sid ") != NULL);
    CHECK(strstr(out, "connected to 127.0.0.1:") != NULL);
    CHECK(strstr(out, ": closed") != NULL);
    CHECK(strstr(out, "xsocket[trace]") == NULL); /* nothing above debug */
    if (!strstr(out, "xsocket[debug] sid ")) fprintf(stderr, "  child's stderr: %s\n", out);
}

/* A debug-level callback gets lines naming each sid: connected, accepted, closed;
 * every line has a level within the limit and reaches the given userdata. */
SCENARIO(callback_gets_debug_lines) {
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_DEBUG));
    int c, s;
    some_activity(&c, &s);
    char sc[32], ss[32];
    snprintf(sc, sizeof sc, "sid %d:", c);
    snprintf(ss, sizeof ss, "sid %d:", s);
    CHECK(lines_with(sc, "connected to 127.0.0.1:", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with(ss, "accepted", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with(sc, "closed", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with(ss, "closed", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with("", NULL, XS_LOG_TRACE, 99) == 0); /* nothing above debug */
    CHECK(lines_with("", NULL, -99, 0) == 0);           /* nor below error */
    if (harness_failures) dump_log();
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
}

/* XS_LOG_ERROR gets no debug lines; XS_LOG_INFO neither; XS_LOG_TRACE gets more
 * (the release of a sid). */
SCENARIO(level_filtering) {
    int c, s;
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_ERROR));
    some_activity(&c, &s);
    CHECK(lines_with("", NULL, XS_LOG_WARN, 99) == 0);
    CHECK(log_count() == 0); /* a clean connection has no errors */
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_INFO));
    some_activity(&c, &s);
    CHECK(lines_with("", NULL, XS_LOG_DEBUG, 99) == 0);
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_TRACE));
    some_activity(&c, &s);
    char sc[32];
    snprintf(sc, sizeof sc, "sid %d:", c);
    CHECK(lines_with(sc, "connected", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with(sc, "released", XS_LOG_TRACE, XS_LOG_TRACE) == 1);
    if (harness_failures) dump_log();
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
}

/* Levels outside 0..5 are EINVAL, and the logger in place stays in place. */
SCENARIO(invalid_level) {
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_DEBUG));
    XS_FAIL(xs_set_logger(collect, &logbuf, XS_LOG_TRACE + 1), EINVAL);
    XS_FAIL(xs_set_logger(collect, &logbuf, -1), EINVAL);
    XS_FAIL(xs_set_logger(NULL, NULL, 1000), EINVAL);
    int c, s;
    some_activity(&c, &s);
    char sc[32];
    snprintf(sc, sizeof sc, "sid %d:", c);
    CHECK(lines_with(sc, "connected", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    CHECK(lines_with("", NULL, XS_LOG_TRACE, 99) == 0); /* still debug, not trace */
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
}

/* xs_set_logger(NULL, NULL, XS_LOG_OFF) silences everything: the old callback gets
 * nothing more and nothing goes to stderr. A NULL callback with a level logs to
 * stderr. */
SCENARIO(off_and_stderr) {
    int c, s;
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_TRACE));
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
    struct capture cap;
    char out[8192];
    capture_start(&cap);
    some_activity(&c, &s);
    size_t n = capture_end(&cap, out, sizeof out);
    CHECK(log_count() == 0);
    CHECK(n == 0);
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_DEBUG));
    capture_start(&cap);
    some_activity(&c, &s);
    n = capture_end(&cap, out, sizeof out);
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
    char want[64];
    snprintf(want, sizeof want, "xsocket[debug] sid %d: connected to", c);
    CHECK(strstr(out, want) != NULL);
    CHECK(log_count() == 0);
    capture_start(&cap);
    some_activity(&c, &s);
    n = capture_end(&cap, out, sizeof out);
    CHECK(n == 0);
}

struct act {
    int c, s;
};

static void *activity_thread(void *arg) {
    struct act *a = arg;
    /* TCP: the harness's unix_addr() is not thread-safe. */
    if (stream_pair(&XS, AF_INET6, SOCK_STREAM, &a->c, &a->s) == 0) {
        xs_close(a->c);
        xs_close(a->s);
    }
    return NULL;
}

/* The callback runs in the calling threads, and in the event thread (a notify fd's
 * "watched" line), and gets every line when many threads log at once. */
SCENARIO(callback_from_many_threads) {
    log_reset();
    XS_PASS(xs_set_logger(collect, &logbuf, XS_LOG_TRACE));
    enum { T = 8 };
    struct act a[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        a[i].c = a[i].s = -1;
        CHECK(pthread_create(&th[i], NULL, activity_thread, &a[i]) == 0);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        char sc[32];
        snprintf(sc, sizeof sc, "sid %d:", a[i].s);
        CHECK(a[i].s > 0 && lines_with(sc, "accepted", XS_LOG_DEBUG, XS_LOG_DEBUG) == 1);
    }
    int c, s;
    XS_PASS(stream_pair(&XS, AF_INET, SOCK_STREAM, &c, &s));
    int fd;
    socklen_t len = sizeof fd;
    XS_PASS(xs_getsockopt(s, XS_SOL_XSOCKET, XS_SO_NOTIFY_FD, &fd, &len));
    char ss[32];
    snprintf(ss, sizeof ss, "sid %d:", s);
    long end = now_ms() + GUARD_MS;
    while (!lines_with(ss, "watched", XS_LOG_TRACE, XS_LOG_TRACE) && now_ms() < end) msleep(5);
    pid_t me = (pid_t)syscall(SYS_gettid), other = 0;
    pthread_mutex_lock(&logbuf.mu);
    for (int i = 0; i < logbuf.n; i++)
        if (strstr(logbuf.line[i], ss) && strstr(logbuf.line[i], "watched")) other = logbuf.tid[i];
    pthread_mutex_unlock(&logbuf.mu);
    CHECK(other != 0 && other != me); /* logged by the event thread */
    XS_PASS(xs_close(c));
    XS_PASS(xs_close(s));
    XS_PASS(xs_set_logger(NULL, NULL, XS_LOG_OFF));
    msleep(SCALE(20, 100)); /* the event thread lets go of s, silently now */
    int n = log_count();
    some_activity(&c, &s);
    CHECK(log_count() == n);
}

/* ----- SIGPIPE ----- */

/* Sends until the connection reports the peer is gone; returns the errno (0 if the
 * sends kept working). */
static int send_until_error(const struct api *A, int s) {
    char buf[1024] = {0};
    for (int i = 0; i < 200; i++) {
        if (A->send(s, buf, sizeof buf, 0) < 0) return errno;
        msleep(1);
    }
    return 0;
}

/* With SIGPIPE at its default (fatal) disposition, send / sendto / sendmsg to a peer
 * that closed fail with EPIPE and the process lives on; with SIGPIPE blocked, no
 * SIGPIPE is even left pending. */
static void epipe(const struct api *A, struct trace *t, int family) {
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old);
    int c, s;
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    XS_PASS(A->close(s));
    msleep(SCALE(10, 50));
    int err = send_until_error(A, c);
    REC(t, err);
    CHECK(err == EPIPE);
    REC(t, A->send(c, "x", 1, 0));
    CHECK(errno == EPIPE);
    REC(t, A->sendto(c, "x", 1, 0, NULL, 0));
    struct iovec iov = {"x", 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    REC(t, A->sendmsg(c, &msg, 0));
    CHECK(errno == EPIPE);
    XS_PASS(A->close(c));

    /* After our own shutdown(SHUT_WR), with SIGPIPE blocked: EPIPE, nothing pending. */
    sigset_t block, prev, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &prev);
    XS_PASS(stream_pair(A, family, SOCK_STREAM, &c, &s));
    XS_PASS(A->shutdown(c, SHUT_WR));
    REC(t, A->send(c, "x", 1, 0));
    CHECK(errno == EPIPE);
    REC(t, A->sendmsg(c, &msg, MSG_DONTWAIT));
    sigpending(&pending);
    REC(t, sigismember(&pending, SIGPIPE));
    CHECK(!sigismember(&pending, SIGPIPE));
    pthread_sigmask(SIG_SETMASK, &prev, NULL);
    XS_PASS(A->close(c));
    XS_PASS(A->close(s));
    sigaction(SIGPIPE, &old, NULL);
}

SCENARIO(sigpipe_tcp) { epipe(A, t, AF_INET); }
SCENARIO(sigpipe_tcp6) { epipe(A, t, AF_INET6); }
SCENARIO(sigpipe_unix) { epipe(A, t, AF_UNIX); }

/* The same with xs_send's own flags empty and a Unix seqpacket peer gone. */
SCENARIO(sigpipe_seqpacket) {
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old);
    int c, s;
    XS_PASS(stream_pair(A, AF_UNIX, SOCK_SEQPACKET, &c, &s));
    XS_PASS(A->close(s));
    REC(t, A->send(c, "rec", 3, 0));
    CHECK(errno == EPIPE);
    XS_PASS(A->close(c));
    sigaction(SIGPIPE, &old, NULL);
}

int main(void) {
    RUN_ONCE(env_debug_to_stderr); /* first: before any xs_ call in this process */
    RUN_ONCE(callback_gets_debug_lines);
    RUN_ONCE(level_filtering);
    RUN_ONCE(invalid_level);
    RUN_ONCE(off_and_stderr);
    RUN_ONCE(callback_from_many_threads);
    RUN_COMPARED(sigpipe_tcp);
    RUN_COMPARED(sigpipe_tcp6);
    RUN_COMPARED(sigpipe_unix);
    RUN_COMPARED(sigpipe_seqpacket);
    return harness_finish();
}
