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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_SERVER_NAME "smux_echo_server"
#include "../common/echo_server.h"

static void usage(void)
{
    fprintf(stderr, "usage: smux_echo_server [--tls CERT KEY] [--unix PATH] [--pin MS] [--idle MS] "
                    "[--window N] [--max-streams N] [--backlog N]\n");
    exit(2);
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

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    long pin = -1, idle = -1, window = -1, max_streams = -1, backlog = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (parse_common_arg(argc, argv, &i, &cert, &key))
            continue;
#define NEXT() next_arg(argc, argv, &i)
        if (!strcmp(a, "--pin"))
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

    stop_on_term_signals();
    signal(SIGPIPE, SIG_IGN);

    int proto = XS_PROTO_SMUX | (cert ? XS_PROTO_TLS : 0);
    int lsid = xs_socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM, proto);
    if (lsid < 0)
        die("xs_socket: %s (%s)", strerror(errno), xs_last_error());

    set_tls_files(lsid, cert, key);
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

    listen_and_announce(lsid);
    serve_forever(lsid, session_thread, errno_name, "session");
}
