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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_SERVER_NAME "ws_echo_server"
#include "../common/echo_server.h"

#define DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

static int use_stream;
static size_t max_message = DEFAULT_MAX_MESSAGE;

static void usage(void)
{
    fprintf(stderr, "usage: ws_echo_server [--raw] [--stream] [--tls CERT KEY] [--unix PATH] "
                    "[--fragment N] [--max-message N] [--path P] [--origins LIST] "
                    "[--subprotocols LIST]\n");
    exit(2);
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

int main(int argc, char **argv)
{
    int raw = 0, fragment = -1;
    long max = -1;
    const char *cert = NULL, *key = NULL, *path = NULL, *origins = NULL, *subprotocols = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (parse_common_arg(argc, argv, &i, &cert, &key))
            continue;
#define NEXT() next_arg(argc, argv, &i)
        if (!strcmp(a, "--raw"))
            raw = 1;
        else if (!strcmp(a, "--stream"))
            use_stream = 1;
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

    stop_on_term_signals();

    int proto = (raw ? XS_PROTO_WS_RAW : XS_PROTO_WS) | (cert ? XS_PROTO_TLS : 0);
    int type = use_stream ? SOCK_STREAM : SOCK_SEQPACKET;
    int lsid = xs_socket(unix_path ? AF_UNIX : AF_INET, type, proto);
    if (lsid < 0)
        die("xs_socket: %s (%s)", strerror(errno), xs_last_error());

    set_tls_files(lsid, cert, key);
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

    listen_and_announce(lsid);
    serve_forever(lsid, conn_thread, NULL, NULL);
}
