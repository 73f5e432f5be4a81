/*
 * smux_echo_server: an smux echo server on xsocket, for the interop tests in tests/smux/.
 *
 *   smux_echo_server [--tls CERT KEY] [--unix PATH] [--pin MS] [--idle MS]
 *                    [--window N] [--max-streams N] [--backlog N]
 *
 *   --tls CERT KEY   XS_PROTO_SMUX | XS_PROTO_TLS with this certificate chain and key
 *   --unix PATH      listen on a Unix socket at PATH instead of 127.0.0.1 port 0
 *   --pin MS         XS_SMUX_PIN_INTERVAL: send PIN this often from the start
 *   --idle MS        XS_SMUX_IDLE_TIMEOUT
 *   --window N       XS_SMUX_WINDOW
 *   --max-streams N  XS_SMUX_MAX_STREAMS
 *   --backlog N      XS_SMUX_ACCEPT_BACKLOG
 *
 * Prints "port N" (or "unix PATH") on stdout once listening, then accepts sessions
 * until stdin reaches EOF or SIGTERM arrives (run it with stdin a pipe; the tests stop
 * it by closing the pipe). One thread per session accepts the streams its peer opens;
 * one thread per stream echoes every byte until the peer's FIN (xs_recv returns 0),
 * then closes the stream. When a session ends the server prints to stderr
 *
 *   session S ended: errno E (NAME): xs_last_error text
 *
 * (NAME: EPROTO, ECONNRESET, ETIMEDOUT, ...), which the tests read. Stream errors go to
 * stderr as "stream T of session S: ..." lines.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "xsocket.h"

static const char *unix_path;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void __attribute__((format(printf, 1, 2))) logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "smux_echo_server: %s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "smux_echo_server: %s\n", line);
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: smux_echo_server [--tls CERT KEY] [--unix PATH] [--pin MS] [--idle MS] "
                    "[--window N] [--max-streams N] [--backlog N]\n");
    exit(2);
}

static long parse_num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 0 || v > INT32_MAX)
        die("bad number for %s: '%s'", what, s);
    return v;
}

static const char *errno_name(int e)
{
    switch (e) {
    case EPROTO: return "EPROTO";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPIPE: return "EPIPE";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case ECONNABORTED: return "ECONNABORTED";
    case EMFILE: return "EMFILE";
    default: return "other";
    }
}

static void set_text(int sid, int level, int opt, const char *name, const char *value)
{
    if (xs_setsockopt(sid, level, opt, value, (socklen_t)strlen(value)) < 0)
        die("setsockopt %s '%s': %s (%s)", name, value, strerror(errno), xs_last_error());
}

static void set_int(int sid, int level, int opt, const char *name, int value)
{
    if (xs_setsockopt(sid, level, opt, &value, sizeof value) < 0)
        die("setsockopt %s %d: %s (%s)", name, value, strerror(errno), xs_last_error());
}

struct stream_arg {
    int session;
    int stream;
};

static void *stream_thread(void *p)
{
    struct stream_arg a = *(struct stream_arg *)p;
    free(p);
    char buf[256 * 1024];
    for (;;) {
        ssize_t n = xs_recv(a.stream, buf, sizeof buf, 0);
        if (n == 0)
            break;
        if (n < 0) {
            int e = errno;
            logmsg("stream %d of session %d: xs_recv: errno %d (%s): %s", a.stream, a.session, e,
                   errno_name(e), xs_last_error());
            break;
        }
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = xs_send(a.stream, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0) {
                int e = errno;
                logmsg("stream %d of session %d: xs_send: errno %d (%s): %s", a.stream, a.session, e,
                       errno_name(e), xs_last_error());
                xs_close(a.stream);
                return NULL;
            }
            off += w;
        }
    }
    xs_close(a.stream);
    return NULL;
}

static void *session_thread(void *p)
{
    int session = (int)(intptr_t)p;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int stream = xs_accept(session, NULL, NULL);
        if (stream < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            logmsg("session %d ended: errno %d (%s): %s", session, e, errno_name(e), xs_last_error());
            break;
        }
        struct stream_arg *a = malloc(sizeof *a);
        if (!a) {
            xs_close(stream);
            continue;
        }
        a->session = session;
        a->stream = stream;
        pthread_t t;
        int rc = pthread_create(&t, &attr, stream_thread, a);
        if (rc != 0) {
            logmsg("pthread_create: %s", strerror(rc));
            free(a);
            xs_close(stream);
        }
    }
    pthread_attr_destroy(&attr);
    xs_close(session);
    return NULL;
}

static void *stdin_watch(void *arg)
{
    (void)arg;
    char b[256];
    for (;;) {
        ssize_t n = read(0, b, sizeof b);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    if (unix_path)
        unlink(unix_path);
    _exit(0);
}

static void on_term(int sig)
{
    (void)sig;
    if (unix_path)
        unlink(unix_path);
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    long pin = -1, idle = -1, window = -1, max_streams = -1, backlog = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--tls")) {
            cert = NEXT();
            key = NEXT();
        } else if (!strcmp(a, "--unix"))
            unix_path = NEXT();
        else if (!strcmp(a, "--pin"))
            pin = parse_num(NEXT(), "--pin");
        else if (!strcmp(a, "--idle"))
            idle = parse_num(NEXT(), "--idle");
        else if (!strcmp(a, "--window"))
            window = parse_num(NEXT(), "--window");
        else if (!strcmp(a, "--max-streams"))
            max_streams = parse_num(NEXT(), "--max-streams");
        else if (!strcmp(a, "--backlog"))
            backlog = parse_num(NEXT(), "--backlog");
        else
            usage();
#undef NEXT
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int proto = XS_PROTO_SMUX | (cert ? XS_PROTO_TLS : 0);
    int lsid = xs_socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM, proto);
    if (lsid < 0)
        die("xs_socket: %s (%s)", strerror(errno), xs_last_error());

    if (cert) {
        set_text(lsid, XS_SOL_TLS, XS_TLS_CERT_FILE, "XS_TLS_CERT_FILE", cert);
        set_text(lsid, XS_SOL_TLS, XS_TLS_KEY_FILE, "XS_TLS_KEY_FILE", key);
    }
    if (pin >= 0)
        set_int(lsid, XS_SOL_SMUX, XS_SMUX_PIN_INTERVAL, "XS_SMUX_PIN_INTERVAL", (int)pin);
    if (idle >= 0)
        set_int(lsid, XS_SOL_SMUX, XS_SMUX_IDLE_TIMEOUT, "XS_SMUX_IDLE_TIMEOUT", (int)idle);
    if (window >= 0)
        set_int(lsid, XS_SOL_SMUX, XS_SMUX_WINDOW, "XS_SMUX_WINDOW", (int)window);
    if (max_streams >= 0)
        set_int(lsid, XS_SOL_SMUX, XS_SMUX_MAX_STREAMS, "XS_SMUX_MAX_STREAMS", (int)max_streams);
    if (backlog >= 0)
        set_int(lsid, XS_SOL_SMUX, XS_SMUX_ACCEPT_BACKLOG, "XS_SMUX_ACCEPT_BACKLOG", (int)backlog);

    if (unix_path) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(unix_path) >= sizeof sun.sun_path)
            die("--unix path too long: %s", unix_path);
        strcpy(sun.sun_path, unix_path);
        if (xs_bind(lsid, (struct sockaddr *)&sun, sizeof sun) < 0)
            die("xs_bind %s: %s (%s)", unix_path, strerror(errno), xs_last_error());
    } else {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        xs_setsockopt(lsid, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (xs_bind(lsid, (struct sockaddr *)&sin, sizeof sin) < 0)
            die("xs_bind 127.0.0.1:0: %s (%s)", strerror(errno), xs_last_error());
    }
    if (xs_listen(lsid, 128) < 0)
        die("xs_listen: %s (%s)", strerror(errno), xs_last_error());

    if (unix_path) {
        printf("unix %s\n", unix_path);
    } else {
        struct sockaddr_in sin;
        socklen_t len = sizeof sin;
        if (xs_getsockname(lsid, (struct sockaddr *)&sin, &len) < 0)
            die("xs_getsockname: %s (%s)", strerror(errno), xs_last_error());
        printf("port %d\n", ntohs(sin.sin_port));
    }
    fflush(stdout);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &attr, stdin_watch, NULL) != 0)
        die("pthread_create: %s", strerror(errno));

    for (;;) {
        int sid = xs_accept(lsid, NULL, NULL);
        if (sid < 0) {
            int e = errno;
            logmsg("xs_accept failed: errno %d (%s): %s", e, errno_name(e), xs_last_error());
            if (e == EBADF || e == EINVAL)
                die("listener unusable");
            if (e == EMFILE || e == ENFILE)
                usleep(100 * 1000);
            continue;
        }
        logmsg("session %d accepted", sid);
        int rc = pthread_create(&t, &attr, session_thread, (void *)(intptr_t)sid);
        if (rc != 0) {
            logmsg("pthread_create: %s", strerror(rc));
            xs_close(sid);
        }
    }
}
