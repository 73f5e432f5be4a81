/*
 * ws_echo_server: a WebSocket echo server on xsocket, for the conformance and browser
 * tests in tests/ws/.
 *
 *   ws_echo_server [--raw] [--stream] [--tls CERT KEY] [--unix PATH] [--fragment N]
 *                  [--max-message N] [--path P] [--origins LIST] [--subprotocols LIST]
 *
 *   --raw            XS_PROTO_WS_RAW (frames right away, no HTTP handshake)
 *   --stream         SOCK_STREAM instead of SOCK_SEQPACKET (the echo collects the bytes
 *                    of a message up to MSG_EOR and sends them back as one message)
 *   --tls CERT KEY   add XS_PROTO_TLS with this certificate chain and key (wss)
 *   --unix PATH      listen on a Unix socket at PATH instead of 127.0.0.1 port 0
 *   --fragment N     XS_WS_FRAGMENT_SIZE: echoes leave in frames of at most N bytes
 *   --max-message N  XS_WS_MAX_MESSAGE (default: xsocket's 16 MiB)
 *   --path P         XS_WS_PATH: the only request path accepted
 *   --origins LIST   XS_WS_ALLOWED_ORIGINS (comma-separated)
 *   --subprotocols LIST  XS_WS_SUBPROTOCOLS (comma-separated, in preference order)
 *
 * Prints "port N" (or "unix PATH") on stdout once listening, then accepts until stdin
 * reaches EOF or SIGTERM arrives (so run it with stdin a pipe or a terminal, not
 * /dev/null; the tests stop it by closing the pipe). One thread per connection echoes every message with
 * its type (text or binary). When the peer closes (xs_recv returns 0) the server sends
 * back a close with the peer's code (XS_WS_PEER_CLOSE_CODE -> XS_WS_CLOSE_CODE) and
 * closes. Errors go to stderr with errno and xs_last_error(); a failed xs_accept is
 * logged and the loop goes on. With --stream an empty message has no bytes to read,
 * so it is not echoed.
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

#define DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

static int use_stream;
static size_t max_message = DEFAULT_MAX_MESSAGE;
static const char *unix_path;

static void __attribute__((format(printf, 1, 2))) logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ws_echo_server: %s\n", line);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ws_echo_server: %s\n", line);
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: ws_echo_server [--raw] [--stream] [--tls CERT KEY] [--unix PATH] "
                    "[--fragment N] [--max-message N] [--path P] [--origins LIST] "
                    "[--subprotocols LIST]\n");
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

static void log_err(int sid, const char *what)
{
    int e = errno;
    logmsg("conn %d: %s failed: errno %d (%s): %s", sid, what, e, strerror(e), xs_last_error());
}

/* Sends one whole message; a short count from xs_send is an error here. */
static int send_message(int sid, const char *buf, size_t len, int text)
{
    ssize_t n = xs_send(sid, buf, len, text ? XS_MSG_TEXT : 0);
    if (n < 0) {
        log_err(sid, "xs_send");
        return -1;
    }
    if ((size_t)n != len) {
        logmsg("conn %d: xs_send sent %zd of %zu bytes", sid, n, len);
        return -1;
    }
    return 0;
}

/* XS_WS_PEER_CLOSE_CODE: 0 while open, -1 when it cannot be read. */
static int peer_close_code(int sid)
{
    int code = 0;
    socklen_t len = sizeof code;
    if (xs_getsockopt(sid, XS_SOL_WS, XS_WS_PEER_CLOSE_CODE, &code, &len) < 0) {
        log_err(sid, "getsockopt XS_WS_PEER_CLOSE_CODE");
        return -1;
    }
    return code;
}

/* The peer closed: answer with its code (the layer may have answered already). */
static void close_with_peer_code(int sid)
{
    int code = peer_close_code(sid);
    if (code > 0 && code != 1005 && code != 1006) {
        if (xs_setsockopt(sid, XS_SOL_WS, XS_WS_CLOSE_CODE, &code, sizeof code) < 0)
            log_err(sid, "setsockopt XS_WS_CLOSE_CODE");
    }
    xs_close(sid);
}

static void *conn_thread(void *arg)
{
    int sid = (int)(intptr_t)arg;
    /* One byte more than the limit, so a message over it would show as truncated. */
    size_t cap = max_message + 1;
    char *buf = malloc(cap);
    if (!buf) {
        logmsg("conn %d: out of memory for a %zu-byte buffer", sid, cap);
        xs_close(sid);
        return NULL;
    }
    size_t have = 0; /* stream mode: bytes of the current message so far */
    int text = 0;
    for (;;) {
        struct iovec iov = {.iov_base = buf + have, .iov_len = cap - have};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = xs_recvmsg(sid, &msg, 0);
        if (n < 0) {
            log_err(sid, "xs_recvmsg");
            xs_close(sid);
            break;
        }
        if (!use_stream) {
            /* 0 is the end (the peer's close) or an empty message: an empty message
             * is text, or carries MSG_EOR, or leaves the peer's close code at 0. */
            if (n == 0 && !(msg.msg_flags & (XS_MSG_TEXT | MSG_EOR)) && peer_close_code(sid) != 0) {
                close_with_peer_code(sid);
                break;
            }
            if (msg.msg_flags & MSG_TRUNC) {
                logmsg("conn %d: message truncated at %zd bytes", sid, n);
                xs_close(sid);
                break;
            }
            if (send_message(sid, buf, (size_t)n, (msg.msg_flags & XS_MSG_TEXT) != 0) < 0) {
                xs_close(sid);
                break;
            }
            continue;
        }
        /* SOCK_STREAM: bytes of one message arrive in pieces; MSG_EOR marks the end. */
        if (n == 0 && !(msg.msg_flags & MSG_EOR)) {
            if (have)
                logmsg("conn %d: end of stream inside a message (%zu bytes kept)", sid, have);
            close_with_peer_code(sid);
            break;
        }
        if (have == 0)
            text = (msg.msg_flags & XS_MSG_TEXT) != 0;
        have += (size_t)n;
        if (!(msg.msg_flags & MSG_EOR)) {
            if (have == cap) {
                logmsg("conn %d: message over %zu bytes", sid, max_message);
                xs_close(sid);
                break;
            }
            continue;
        }
        int rc = send_message(sid, buf, have, text);
        have = 0;
        if (rc < 0) {
            xs_close(sid);
            break;
        }
    }
    free(buf);
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
    int raw = 0, fragment = -1;
    long max = -1;
    const char *cert = NULL, *key = NULL, *path = NULL, *origins = NULL, *subprotocols = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--raw"))
            raw = 1;
        else if (!strcmp(a, "--stream"))
            use_stream = 1;
        else if (!strcmp(a, "--tls")) {
            cert = NEXT();
            key = NEXT();
        } else if (!strcmp(a, "--unix"))
            unix_path = NEXT();
        else if (!strcmp(a, "--fragment"))
            fragment = (int)parse_num(NEXT(), "--fragment");
        else if (!strcmp(a, "--max-message"))
            max = parse_num(NEXT(), "--max-message");
        else if (!strcmp(a, "--path"))
            path = NEXT();
        else if (!strcmp(a, "--origins"))
            origins = NEXT();
        else if (!strcmp(a, "--subprotocols"))
            subprotocols = NEXT();
        else
            usage();
#undef NEXT
    }
    if (max >= 0)
        max_message = (size_t)max;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int proto = (raw ? XS_PROTO_WS_RAW : XS_PROTO_WS) | (cert ? XS_PROTO_TLS : 0);
    int type = use_stream ? SOCK_STREAM : SOCK_SEQPACKET;
    int lsid = xs_socket(unix_path ? AF_UNIX : AF_INET, type, proto);
    if (lsid < 0)
        die("xs_socket: %s (%s)", strerror(errno), xs_last_error());

    if (cert) {
        set_text(lsid, XS_SOL_TLS, XS_TLS_CERT_FILE, "XS_TLS_CERT_FILE", cert);
        set_text(lsid, XS_SOL_TLS, XS_TLS_KEY_FILE, "XS_TLS_KEY_FILE", key);
    }
    if (fragment >= 0)
        set_int(lsid, XS_SOL_WS, XS_WS_FRAGMENT_SIZE, "XS_WS_FRAGMENT_SIZE", fragment);
    if (max >= 0)
        set_int(lsid, XS_SOL_WS, XS_WS_MAX_MESSAGE, "XS_WS_MAX_MESSAGE", (int)max);
    if (path)
        set_text(lsid, XS_SOL_WS, XS_WS_PATH, "XS_WS_PATH", path);
    if (origins)
        set_text(lsid, XS_SOL_WS, XS_WS_ALLOWED_ORIGINS, "XS_WS_ALLOWED_ORIGINS", origins);
    if (subprotocols)
        set_text(lsid, XS_SOL_WS, XS_WS_SUBPROTOCOLS, "XS_WS_SUBPROTOCOLS", subprotocols);

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
            logmsg("xs_accept failed: errno %d (%s): %s", e, strerror(e), xs_last_error());
            if (e == EBADF || e == EINVAL)
                die("listener unusable");
            if (e == EMFILE || e == ENFILE)
                usleep(100 * 1000);
            continue;
        }
        int rc = pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)sid);
        if (rc != 0) {
            logmsg("pthread_create: %s", strerror(rc));
            xs_close(sid);
        }
    }
}
