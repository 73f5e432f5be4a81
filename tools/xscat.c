/*
 * xscat: a netcat/websocat-style tool on xsocket's C ABI.
 *
 *   xscat [-v] URL                 connect; pipe stdin -> socket and socket -> stdout
 *   xscat -l [-k] [-v] URL         listen; accept one connection (-k: one after another)
 *   xscat -l --echo [-v] URL       echo server: many clients at once, until killed
 *
 * URLs go to xs_socket_url + xs_connect_url / xs_bind_url unchanged, so every scheme the library knows
 * works here. Stream sockets pipe bytes until EOF both ways; datagram sockets send
 * each stdin read as one datagram and write each datagram received to stdout.
 * WebSocket URLs (ws://, wss://, wsraw://, ...) give message sockets: each stdin line
 * is one text message and each message received is written out followed by a
 * newline; with --binary each stdin read is one binary message and payloads are
 * written as they are.
 * smux URLs (smux+tcp://, smux+tls://, smux+unix://) give a session: a client pipes
 * one stream (or runs a load test with --streams N); a listener echoes every stream of
 * every session (--echo) or writes each stream's bytes to stdout.
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 usage error.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "xsocket.h"

/* In datagram mode, after stdin's EOF, how long to wait for more datagrams. */
#define DGRAM_GRACE_MS 1000
/* Echo server: stop reading from a client while this much is unsent to it. */
#define ECHO_LIMIT (256 * 1024)
#define IO_BUF (64 * 1024)
#define MAX_DGRAM 65507
/* WebSocket: the receive buffer when XS_WS_MAX_MESSAGE cannot be read. */
#define WS_MAX_MESSAGE (16 * 1024 * 1024)
#define BACKLOG 128

static const char *prog = "xscat";
static int verbose;
static const char *g_url;

/* ----- exit, errors, logging ----- */

static pthread_mutex_t exit_mu = PTHREAD_MUTEX_INITIALIZER;
static char unlink_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

/* Ends the process once, whichever thread gets here first. */
static void __attribute__((noreturn)) finish(int status)
{
    pthread_mutex_lock(&exit_mu); /* never released: a second caller waits for the exit */
    exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    pthread_mutex_lock(&exit_mu);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", prog, line);
    exit(1);
}

static void __attribute__((format(printf, 1, 2))) logv(const char *fmt, ...)
{
    if (!verbose)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

/* A short reason for a failed xs_dial / xs_listen_url: the library's detail for bad
 * URLs and names, strerror otherwise. */
static const char *url_reason(int err)
{
    const char *d = xs_last_error();
    if (strncmp(d, "xs_", 3) == 0) {
        const char *c = strstr(d, ": ");
        if (c)
            d = c + 2;
    }
    if (err == EINVAL) {
        if (strncmp(d, "invalid argument: ", 18) == 0)
            d += 18;
        if (strncmp(d, "URL '", 5) == 0) {
            const char *c = strstr(d, "': ");
            if (c)
                d = c + 3;
        }
        if (*d)
            return d;
    }
    if (err == EHOSTUNREACH && strncmp(d, "cannot resolve", 14) == 0)
        return d;
    if (err == EPROTO && *d)
        return d; /* the TLS or WebSocket layer's reason, e.g. a certificate check */
    const char *smux_detail = strstr(d, "smux: ");
    if (smux_detail)
        return smux_detail; /* e.g. "smux: the peer closed the connection" */
    const char *ws_detail = strstr(d, "websocket");
    if (ws_detail)
        return ws_detail; /* e.g. the HTTP status a WebSocket server refused the upgrade with */
    return strerror(err);
}

/* ----- TLS options ----- */

static int sock_type(int sid);

/* --ca, --cert, --key, --insecure, --pin, --sni: applied to a tls:// socket. */
static struct {
    const char *ca, *cert, *key, *pin, *sni;
    int insecure;
} tls;

static int tls_wanted(void)
{
    return tls.ca || tls.cert || tls.key || tls.pin || tls.sni || tls.insecure;
}

static void tls_text(int sid, int name, const char *what, const char *value)
{
    if (value && xs_setsockopt(sid, XS_SOL_TLS, name, value, (socklen_t)strlen(value)) < 0) {
        if (errno == ENOPROTOOPT)
            die("%s needs a tls://, tls+unix://, wss://, wsraw+tls:// or smux+tls:// URL", what);
        die("%s %s: %s", what, value, xs_last_error());
    }
}

static void apply_tls(int sid)
{
    tls_text(sid, XS_TLS_CA_FILE, "--ca", tls.ca);
    tls_text(sid, XS_TLS_CERT_FILE, "--cert", tls.cert);
    tls_text(sid, XS_TLS_KEY_FILE, "--key", tls.key);
    tls_text(sid, XS_TLS_PIN_SHA256, "--pin", tls.pin);
    tls_text(sid, XS_TLS_SERVER_NAME, "--sni", tls.sni);
    if (tls.insecure) {
        int off = 0;
        if (xs_setsockopt(sid, XS_SOL_TLS, XS_TLS_VERIFY, &off, sizeof off) < 0)
            die("--insecure needs a tls://, tls+unix://, wss://, wsraw+tls:// or smux+tls:// "
                "URL");
    }
}

/* ----- WebSocket options and messages ----- */

/* --binary, --subprotocol, --origin, --ping, --fragment: for WebSocket URLs. */
static struct {
    const char *subprotocols, *origin;
    int ping_ms, fragment; /* -1: not given */
    int binary;
} ws = {NULL, NULL, -1, -1, 0};

static int ws_mode;          /* the URL made a WebSocket (message) socket */
static size_t ws_max = WS_MAX_MESSAGE; /* the largest message we take */

/* ----- smux ----- */

static int smux_mode;               /* the URL made an smux session (smux+tcp://, ...) */
static long smux_streams;           /* --streams N: the load test (0: one stream, stdin) */
static unsigned long long smux_bytes = 1 << 20; /* --bytes B: what each stream sends */
static int smux_bytes_given;

/* Whether sid is an smux socket (session, listener or stream). */
static int smux_socket(int sid)
{
    int window = 0;
    socklen_t len = sizeof window;
    return xs_getsockopt(sid, XS_SOL_SMUX, XS_SMUX_WINDOW, &window, &len) == 0;
}

/* A stream's wire id, 0 when unreadable. */
static int smux_stream_id(int sid)
{
    int id = 0;
    socklen_t len = sizeof id;
    if (xs_getsockopt(sid, XS_SOL_SMUX, XS_SMUX_STREAM_ID, &id, &len) < 0)
        return 0;
    return id;
}

static int ws_wanted(void)
{
    return ws.subprotocols || ws.origin || ws.ping_ms >= 0 || ws.fragment >= 0 || ws.binary;
}

static void __attribute__((noreturn)) ws_needed(const char *what)
{
    die("%s needs a WebSocket URL (ws://, wss://, ws+unix://, wsraw://, wsraw+tls://)", what);
}

static void ws_text(int sid, int name, const char *what, const char *value)
{
    if (value && xs_setsockopt(sid, XS_SOL_WS, name, value, (socklen_t)strlen(value)) < 0) {
        if (errno == ENOPROTOOPT)
            ws_needed(what);
        die("%s %s: %s", what, value, xs_last_error());
    }
}

static void ws_int(int sid, int name, const char *what, int value)
{
    if (value >= 0 && xs_setsockopt(sid, XS_SOL_WS, name, &value, sizeof value) < 0) {
        if (errno == ENOPROTOOPT)
            ws_needed(what);
        die("%s %d: %s", what, value, xs_last_error());
    }
}

/* Whether sid is a WebSocket socket; learns the largest message it takes. */
static int ws_socket(int sid)
{
    int max = 0;
    socklen_t len = sizeof max;
    int is_ws = xs_getsockopt(sid, XS_SOL_WS, XS_WS_MAX_MESSAGE, &max, &len) == 0;
    if (is_ws && max > 0)
        ws_max = (size_t)max;
    return is_ws || sock_type(sid) == SOCK_SEQPACKET; /* URLs make SEQPACKET only for WS */
}

static void apply_ws(int sid, int listening)
{
    if (!ws_mode) {
        if (ws.subprotocols)
            ws_needed("--subprotocol");
        if (ws.origin)
            ws_needed("--origin");
        if (ws.ping_ms >= 0)
            ws_needed("--ping");
        if (ws.fragment >= 0)
            ws_needed("--fragment");
        ws_needed("--binary");
    }
    ws_text(sid, XS_WS_SUBPROTOCOLS, "--subprotocol", ws.subprotocols);
    /* A client sends this Origin; a server takes only these. */
    ws_text(sid, listening ? XS_WS_ALLOWED_ORIGINS : XS_WS_ORIGIN, "--origin", ws.origin);
    ws_int(sid, XS_WS_PING_INTERVAL, "--ping", ws.ping_ms);
    ws_int(sid, XS_WS_FRAGMENT_SIZE, "--fragment", ws.fragment);
}

/* A text option of sid at level XS_SOL_WS, "" when unset or unreadable. */
static const char *ws_get_text(int sid, int name, char *out, size_t cap)
{
    socklen_t len = (socklen_t)(cap - 1);
    if (xs_getsockopt(sid, XS_SOL_WS, name, out, &len) < 0)
        len = 0;
    out[len < cap ? len : cap - 1] = '\0';
    return out;
}

/* With -v: what the handshake agreed on (path, origin, subprotocol), if anything. */
static void ws_log_open(int sid, int accepted)
{
    if (!verbose || !ws_mode)
        return;
    char path[512], origin[512], proto[256], line[1400];
    ws_get_text(sid, XS_WS_REQUEST_PATH, path, sizeof path);
    ws_get_text(sid, XS_WS_REQUEST_ORIGIN, origin, sizeof origin);
    ws_get_text(sid, XS_WS_SUBPROTOCOL, proto, sizeof proto);
    size_t n = 0;
    line[0] = '\0';
    if (accepted && path[0])
        n += (size_t)snprintf(line + n, sizeof line - n, ", path %s", path);
    if (accepted && origin[0])
        n += (size_t)snprintf(line + n, sizeof line - n, ", origin %s", origin);
    if (proto[0])
        snprintf(line + n, sizeof line - n, ", subprotocol %s", proto);
    if (line[0])
        logv("sid %d: websocket%s", sid, line);
}

/* A close code that says something went wrong (1000 normal, 1001 going away and
 * 1005 no code are fine; 3000 and up belong to applications). */
static int ws_close_code_is_error(int code)
{
    return code >= 1002 && code < 3000 && code != 1005;
}

/* After xs_recvmsg returned 0: the peer's close code, or 0 when it was an empty
 * message (MSG_EOR or XS_MSG_TEXT in msg_flags, or no close code yet). */
static int ws_peer_close(int sid, int flags)
{
    if (flags & (XS_MSG_TEXT | MSG_EOR))
        return 0; /* an empty message */
    int code = 0;
    socklen_t len = sizeof code;
    if (xs_getsockopt(sid, XS_SOL_WS, XS_WS_PEER_CLOSE_CODE, &code, &len) < 0)
        return 1005; /* unreadable: take it as the end rather than spin on empty messages */
    return code;
}

/* Describes the peer's close, e.g. "code 1008 (policy)". */
static void ws_close_text(int sid, int code, char *out, size_t cap)
{
    char reason[256];
    ws_get_text(sid, XS_WS_PEER_CLOSE_REASON, reason, sizeof reason);
    if (reason[0])
        snprintf(out, cap, "code %d (%s)", code, reason);
    else
        snprintf(out, cap, "code %d", code);
}

/* "2 messages, 10 bytes in; 1 message, 5 bytes out" for the -v log. */
static void ws_counts(char *out, size_t cap, unsigned long long msgs_in, unsigned long long in,
                      unsigned long long msgs_out, unsigned long long bytes_out)
{
    snprintf(out, cap, "%llu message%s, %llu bytes in; %llu message%s, %llu bytes out", msgs_in,
             msgs_in == 1 ? "" : "s", in, msgs_out, msgs_out == 1 ? "" : "s", bytes_out);
}

/* A socket for URL with the TLS and WebSocket options applied: connected, or bound and
 * listening. */
static int open_url(const char *url, int listening)
{
    int sid = xs_socket_url(url);
    if (sid >= 0)
        ws_mode = ws_socket(sid);
    if (sid >= 0)
        smux_mode = smux_socket(sid);
    if (sid >= 0 && smux_streams && !smux_mode)
        die("--streams needs an smux URL (smux+tcp://, smux+tls://, smux+unix://)");
    if (sid >= 0 && tls_wanted())
        apply_tls(sid);
    if (sid >= 0 && (ws_wanted() || ws_mode))
        apply_ws(sid, listening);
    int rc = sid < 0 ? -1 : listening ? xs_bind_url(sid, url) : xs_connect_url(sid, url);
    if (rc == 0 && listening && sock_type(sid) != SOCK_DGRAM)
        rc = xs_listen(sid, BACKLOG);
    if (rc < 0) {
        int err = errno;
        die("%s %s: %s", listening ? "listen" : "connect", url, url_reason(err));
    }
    return sid;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----- addresses ----- */

static void fmt_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n > sizeof a->sun_path)
            n = sizeof a->sun_path;
        if (n == 0)
            snprintf(out, cap, "unix:(unnamed)");
        else if (a->sun_path[0] == '\0')
            snprintf(out, cap, "unix:@%.*s", (int)(n - 1), a->sun_path + 1);
        else
            snprintf(out, cap, "unix:%.*s", (int)strnlen(a->sun_path, n), a->sun_path);
    } else {
        snprintf(out, cap, "(family %d)", ss->ss_family);
    }
}

/* The URL a bound socket answers on, e.g. tcp://127.0.0.1:40000 or unix:///tmp/s. */
static void local_url(int sid, int type, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (xs_getsockname(sid, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname: %s", xs_strerror(errno));
    char addr[300];
    fmt_addr(&ss, len, addr, sizeof addr);
    if (ws_mode) { /* the URL's own scheme (ws, wss, wsraw+tls, ws+unix, ...) and path */
        const char *sep = strstr(g_url, "://");
        int slen = sep ? (int)(sep - g_url) : 2;
        const char *path = "";
        if (sep && ss.ss_family != AF_UNIX) {
            path = strchr(sep + 3, '/');
            if (!path)
                path = "";
        }
        if (ss.ss_family == AF_UNIX)
            snprintf(out, cap, "%.*s://%s", slen, sep ? g_url : "ws", addr + 5);
        else
            snprintf(out, cap, "%.*s://%s%s", slen, sep ? g_url : "ws", addr, path);
        return;
    }
    /* A TLS socket knows the TLS options (the handshake read-backs are not ready). */
    int version;
    socklen_t vlen = sizeof version;
    int is_tls = xs_getsockopt(sid, XS_SOL_TLS, XS_TLS_VERSION, &version, &vlen) == 0 ||
                 errno != ENOPROTOOPT;
    const char *smux = smux_mode ? "smux+" : "";
    if (ss.ss_family == AF_UNIX) /* addr is "unix:/PATH" or "unix:@NAME" */
        snprintf(out, cap, "%s%s://%s", smux, is_tls ? "tls+unix" : "unix", addr + 5);
    else if (smux_mode)
        snprintf(out, cap, "smux+%s://%s", is_tls ? "tls" : "tcp", addr);
    else
        snprintf(out, cap, "%s://%s", type == SOCK_DGRAM ? "udp" : is_tls ? "tls" : "tcp", addr);
}

static int sock_type(int sid)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (xs_getsockopt(sid, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        die("getsockopt SO_TYPE: %s", xs_strerror(errno));
    return type;
}

/* ----- Unix path clean-up ----- */

static void remove_socket_file(void)
{
    if (unlink_path[0]) {
        unlink(unlink_path);
        unlink_path[0] = '\0';
    }
}

static void on_fatal_signal(int sig)
{
    if (unlink_path[0])
        unlink(unlink_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Removes the listener's socket file at exit and on SIGINT/SIGTERM/SIGHUP. */
static void own_socket_file(int sid)
{
    struct sockaddr_un a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    if (xs_getsockname(sid, (struct sockaddr *)&a, &len) < 0 || a.sun_family != AF_UNIX ||
        a.sun_path[0] != '/')
        return;
    memcpy(unlink_path, a.sun_path, sizeof a.sun_path);
    atexit(remove_socket_file);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ----- stdout ----- */

static void write_stdout(const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(STDOUT_FILENO, buf, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE) { /* the reader went away: a clean end */
                logv("stdout closed");
                finish(0);
            }
            die("write stdout: %s", strerror(errno));
        }
        buf += k;
        n -= (size_t)k;
    }
}

/* ----- piping: one stdin thread feeds the current connection ----- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sid;          /* the connection stdin goes to, or -1 */
    int message;      /* each stdin read is one message (datagram or seqpacket) */
    int dgram;        /* SOCK_DGRAM: no EOF to send */
    int dgram_listen; /* an unconnected UDP socket: send to the last sender */
    int ws;           /* a WebSocket: messages, and the peer's close ends the connection */
    int text;         /* WebSocket text mode: each stdin line is one text message */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    int have_peer;
    int busy;        /* the stdin thread is sending on sid */
    int stdin_eof;   /* stdin is done (EOF) */
    int send_broken; /* a send on sid failed: the peer is gone */
    unsigned long long sent, msgs_sent;
    int64_t eof_ms;
    int started;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0,
       0, 0, 0, 0};

/* Sends n bytes of stdin to the current connection (waiting for one): as one message
 * on a message socket (`flags` may say XS_MSG_TEXT), else all of them. */
static void send_stdin(const char *buf, size_t n, int flags)
{
    pthread_mutex_lock(&P.mu);
    while (P.sid < 0 || (P.dgram_listen && !P.have_peer))
        pthread_cond_wait(&P.cv, &P.mu);
    if (P.send_broken) { /* the peer is gone; drop what stdin gives */
        pthread_mutex_unlock(&P.mu);
        return;
    }
    int sid = P.sid;
    struct sockaddr_storage to = P.peer;
    socklen_t tolen = P.peerlen;
    P.busy = 1;
    pthread_mutex_unlock(&P.mu);

    size_t off = 0;
    int err = 0, whole = 0;
    do {
        ssize_t k = P.dgram_listen
                        ? xs_sendto(sid, buf, n, flags, (struct sockaddr *)&to, tolen)
                        : xs_send(sid, buf + off, n - off, flags);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        off += (size_t)k;
        if (P.message) {
            whole = 1;
            break;
        }
    } while (off < n);

    pthread_mutex_lock(&P.mu);
    P.busy = 0;
    P.sent += off;
    P.msgs_sent += (unsigned long long)whole;
    if (err) {
        if (!P.dgram && (err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == EBADF ||
                         err == ESHUTDOWN ||
                         ((P.ws || smux_mode) && (err == EPROTO || err == ETIMEDOUT)))) {
            /* the receiving side reports why the connection or session ended */
            P.send_broken = 1;
            logv("send on sid %d: %s", sid, strerror(err));
        } else {
            pthread_mutex_unlock(&P.mu);
            if (P.ws && err == EINVAL && (flags & XS_MSG_TEXT))
                die("send %s: a stdin line is not valid UTF-8 (--binary sends binary messages)",
                    g_url);
            die("send %s: %s", g_url, url_reason(err));
        }
    }
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
}

/* Text mode: each stdin line (without its newline) is one text message; a last line
 * without a newline too. */
static void send_lines(const char *buf, size_t n, int eof)
{
    static char *line;
    static size_t len, cap;
    const char *p = buf, *end = buf + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = (size_t)((nl ? nl : end) - p);
        if (len + k > ws_max)
            die("send %s: a stdin line is longer than %zu bytes", g_url, ws_max);
        if (nl && len == 0) {
            send_stdin(p, k, XS_MSG_TEXT); /* a whole line in buf: no copy */
        } else {
            if (len + k > cap) {
                size_t want = cap ? cap : 4096;
                while (want < len + k)
                    want *= 2;
                char *grown = realloc(line, want);
                if (!grown)
                    die("out of memory");
                line = grown;
                cap = want;
            }
            memcpy(line + len, p, k);
            len += k;
            if (nl) {
                send_stdin(line, len, XS_MSG_TEXT);
                len = 0;
            }
        }
        p += k + (nl ? 1 : 0);
    }
    if (eof && len > 0) {
        send_stdin(line, len, XS_MSG_TEXT);
        len = 0;
    }
}

static void *stdin_main(void *arg)
{
    (void)arg;
    size_t cap = P.message && !P.ws ? MAX_DGRAM : IO_BUF;
    char *buf = malloc(cap);
    if (!buf)
        die("out of memory");
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("read stdin: %s", strerror(errno));
        if (n == 0) {
            if (P.text)
                send_lines(buf, 0, 1);
            pthread_mutex_lock(&P.mu);
            P.stdin_eof = 1;
            P.eof_ms = now_ms();
            /* A WebSocket sends its close frame here. ENOTCONN when the peer is gone: fine */
            if (P.sid >= 0 && !P.dgram && !P.send_broken)
                xs_shutdown(P.sid, SHUT_WR);
            pthread_cond_broadcast(&P.cv);
            pthread_mutex_unlock(&P.mu);
            free(buf);
            return NULL;
        }
        if (P.text)
            send_lines(buf, (size_t)n, 0);
        else
            send_stdin(buf, (size_t)n, 0);
    }
}

static void start_stdin_thread(void)
{
    if (P.started)
        return;
    P.started = 1;
    pthread_t t;
    int rc = pthread_create(&t, NULL, stdin_main, NULL);
    if (rc != 0)
        die("pthread_create: %s", strerror(rc));
    pthread_detach(t);
}

/* Receives one WebSocket message into buf (cap bytes): its length, 0 for the peer's
 * close (*close_code set) or an empty message, or -1 with errno. */
static ssize_t ws_recv(int sid, char *buf, size_t cap, int flags, int *text, int *close_code)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = xs_recvmsg(sid, &mh, flags);
    *close_code = 0;
    if (n < 0)
        return -1;
    *text = (mh.msg_flags & XS_MSG_TEXT) != 0;
    if (n == 0)
        *close_code = ws_peer_close(sid, mh.msg_flags);
    if (mh.msg_flags & MSG_TRUNC)
        logv("sid %d: a message longer than %zu bytes was cut short", sid, cap);
    return n;
}

/* Pipes one stream, seqpacket or WebSocket connection. One-shot (keep == 0): until EOF
 * both ways, or the peer is gone (a WebSocket: until the peer's close). With -k: until
 * the peer's EOF, then the next connection gets what stdin gives from then on. */
static void pipe_conn(int sid, int keep)
{
    pthread_mutex_lock(&P.mu);
    P.sid = sid;
    P.send_broken = 0;
    P.sent = 0;
    P.msgs_sent = 0;
    if (P.stdin_eof)
        xs_shutdown(sid, SHUT_WR);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    start_stdin_thread();

    static char sbuf[IO_BUF];
    static char *wbuf;
    char *buf = sbuf;
    size_t cap = sizeof sbuf;
    if (P.ws) { /* one whole message per recv, and room for a newline after it */
        if (!wbuf && !(wbuf = malloc(ws_max + 1)))
            die("out of memory");
        buf = wbuf;
        cap = ws_max;
    }
    unsigned long long in = 0, msgs = 0;
    char failure[512] = "", closed[400] = "";
    int close_code = 0;
    for (;;) {
        ssize_t n;
        int text = 0;
        if (P.ws)
            n = ws_recv(sid, buf, cap, 0, &text, &close_code);
        else
            n = xs_recv(sid, buf, cap, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            if (!keep)
                die("recv %s: %s", g_url, url_reason(err));
            snprintf(failure, sizeof failure, "%s", url_reason(err));
            break;
        }
        (void)text; /* text or binary, a message is written out the same way */
        if (close_code || (n == 0 && !P.ws))
            break;
        in += (unsigned long long)n;
        msgs++;
        if (P.ws && !ws.binary)
            buf[n++] = '\n';
        write_stdout(buf, (size_t)n);
    }

    pthread_mutex_lock(&P.mu);
    if (P.ws) /* after the peer's close nothing more goes out on sid */
        P.send_broken = 1;
    if (keep || P.ws) {
        while (P.busy)
            pthread_cond_wait(&P.cv, &P.mu);
    } else {
        while (!P.stdin_eof && !P.send_broken)
            pthread_cond_wait(&P.cv, &P.mu);
    }
    P.sid = -1;
    unsigned long long out = P.sent, msgs_out = P.msgs_sent;
    pthread_mutex_unlock(&P.mu);
    if (P.ws && close_code)
        ws_close_text(sid, close_code, closed, sizeof closed);
    char counts[200];
    ws_counts(counts, sizeof counts, msgs, in, msgs_out, out);
    if (failure[0] && P.ws)
        logv("closed sid %d after error: %s (%s)", sid, failure, counts);
    else if (failure[0])
        logv("closed sid %d after error: %s (%llu bytes in, %llu out)", sid, failure, in, out);
    else if (P.ws)
        logv("closed sid %d (%s; peer closed with %s)", sid, counts, closed);
    else
        logv("closed sid %d (%llu bytes in, %llu out)", sid, in, out);
    xs_close(sid);
    if (P.ws && close_code && ws_close_code_is_error(close_code) && !keep)
        die("%s: the peer closed with %s", g_url, closed);
}

/* Pipes datagrams. Connected (client): to and from the peer. Listening: from anyone,
 * stdin goes to the last sender. Ends DGRAM_GRACE_MS after stdin's EOF once no datagram
 * has come for that long (listening: after a first datagram; never with -k). */
static void pipe_dgram(int sid, int listening, int keep)
{
    pthread_mutex_lock(&P.mu);
    P.sid = sid;
    P.dgram = 1;
    P.message = 1;
    P.dgram_listen = listening;
    pthread_mutex_unlock(&P.mu);
    start_stdin_thread();

    static char buf[65536];
    int64_t last_rx = now_ms();
    unsigned long long in = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sid, .events = POLLIN, .revents = 0};
        int r = xs_poll(&pfd, 1, 100);
        if (r < 0 && errno != EINTR)
            die("poll: %s", xs_strerror(errno));
        while (r > 0) {
            struct sockaddr_storage from;
            socklen_t fromlen = sizeof from;
            memset(&from, 0, sizeof from);
            ssize_t n = xs_recvfrom(sid, buf, sizeof buf, MSG_DONTWAIT,
                                    listening ? (struct sockaddr *)&from : NULL,
                                    listening ? &fromlen : NULL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (listening && errno == ECONNREFUSED) /* an ICMP error for an earlier reply */
                    continue;
                die("recv %s: %s", g_url, strerror(errno));
            }
            if (listening) {
                pthread_mutex_lock(&P.mu);
                if (!P.have_peer || P.peerlen != fromlen || memcmp(&P.peer, &from, fromlen) != 0) {
                    char a[300];
                    fmt_addr(&from, fromlen, a, sizeof a);
                    logv("datagrams from %s", a);
                }
                P.peer = from;
                P.peerlen = fromlen;
                P.have_peer = 1;
                pthread_cond_broadcast(&P.cv);
                pthread_mutex_unlock(&P.mu);
            }
            in += (unsigned long long)n;
            write_stdout(buf, (size_t)n);
            last_rx = now_ms();
        }
        pthread_mutex_lock(&P.mu);
        int64_t since = last_rx > P.eof_ms ? last_rx : P.eof_ms;
        int done = P.stdin_eof && !keep && (!listening || P.have_peer) &&
                   now_ms() - since >= DGRAM_GRACE_MS;
        unsigned long long out = P.sent;
        pthread_mutex_unlock(&P.mu);
        if (done) {
            logv("closed sid %d (%llu bytes in, %llu out)", sid, in, out);
            xs_close(sid);
            return;
        }
    }
}

/* ----- echo server ----- */

struct chunk {
    struct chunk *next;
    size_t len, off;
    int flags; /* WebSocket: XS_MSG_TEXT for a text message */
    char data[];
};

struct client {
    int sid;
    int rd_eof;
    int closed;
    struct chunk *head, *tail;
    size_t pending;
    unsigned long long in, out;
    unsigned long long msgs_in, msgs_out; /* WebSocket messages */
    int close_code;                       /* WebSocket: the peer's close code */
    int ws_logged;                        /* WebSocket: ws_log_open was called */
    int session;                          /* smux: a session (its streams are clients too) */
    int accept_ready;                     /* smux session: xs_poll said streams may wait */
    int stream_id;                        /* smux stream: its wire id */
    unsigned long long streams;           /* smux session: streams accepted */
};

static int queue_bytes(struct client *c, const char *data, size_t n, int flags)
{
    struct chunk *ch = malloc(sizeof *ch + n);
    if (!ch)
        die("out of memory");
    ch->next = NULL;
    ch->len = n;
    ch->off = 0;
    ch->flags = flags;
    memcpy(ch->data, data, n);
    if (c->tail)
        c->tail->next = ch;
    else
        c->head = ch;
    c->tail = ch;
    c->pending += n;
    return 0;
}

/* Sends what is queued; 0 (done or would block) or -1 with errno. */
static int client_flush(struct client *c)
{
    while (c->head) {
        struct chunk *h = c->head;
        ssize_t k = xs_send(c->sid, h->data + h->off, h->len - h->off, MSG_DONTWAIT | h->flags);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        if (ws_mode) { /* one send is one whole message */
            if ((size_t)k != h->len) {
                errno = EMSGSIZE;
                return -1;
            }
            c->msgs_out++;
        }
        h->off += (size_t)k;
        c->pending -= (size_t)k;
        c->out += (unsigned long long)k;
        if (h->off == h->len) {
            c->head = h->next;
            if (!c->head)
                c->tail = NULL;
            free(h);
        }
    }
    return 0;
}

/* WebSocket: reads the messages that are there and echoes each as it came, text or
 * binary; stops at the first one that has to wait (the peer's close must not be read
 * before every message before it went out: its answer ends sending). 0 or -1 with
 * errno. */
static int client_read_ws(struct client *c)
{
    static char *buf;
    if (!buf && !(buf = malloc(ws_max)))
        die("out of memory");
    for (int i = 0; i < 16 && !c->rd_eof && !c->head; i++) {
        int text = 0;
        ssize_t n = ws_recv(c->sid, buf, ws_max, MSG_DONTWAIT, &text, &c->close_code);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        if (!c->ws_logged) { /* a non-blocking accept left the handshake to the first recv */
            c->ws_logged = 1;
            ws_log_open(c->sid, 1);
        }
        if (c->close_code) {
            c->rd_eof = 1;
            return 0;
        }
        c->in += (unsigned long long)n;
        c->msgs_in++;
        int flags = text ? XS_MSG_TEXT : 0;
        if (!c->head) { /* nothing queued: try to send straight away */
            ssize_t k = xs_send(c->sid, buf, (size_t)n, MSG_DONTWAIT | flags);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            if (k >= 0) {
                if ((size_t)k != (size_t)n) {
                    errno = EMSGSIZE;
                    return -1;
                }
                c->out += (unsigned long long)k;
                c->msgs_out++;
                continue;
            }
        }
        queue_bytes(c, buf, (size_t)n, flags);
    }
    return 0;
}

/* Reads what is there (bounded by ECHO_LIMIT) and echoes it; 0 or -1 with errno. */
static int client_read(struct client *c)
{
    if (ws_mode)
        return client_read_ws(c);
    static char buf[IO_BUF];
    for (int i = 0; i < 16 && !c->rd_eof && c->pending < ECHO_LIMIT; i++) {
        ssize_t n = xs_recv(c->sid, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        if (n == 0) {
            c->rd_eof = 1;
            return 0;
        }
        c->in += (unsigned long long)n;
        size_t sent = 0;
        if (!c->head) { /* nothing queued: try to send straight away */
            ssize_t k = xs_send(c->sid, buf, (size_t)n, MSG_DONTWAIT);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            if (k > 0) {
                sent = (size_t)k;
                c->out += (unsigned long long)k;
            }
        }
        if (sent < (size_t)n)
            queue_bytes(c, buf + sent, (size_t)n - sent, 0);
    }
    return 0;
}

static void client_close(struct client *c, int err)
{
    char closed[400] = "", counts[200];
    if (ws_mode && c->close_code)
        ws_close_text(c->sid, c->close_code, closed, sizeof closed);
    ws_counts(counts, sizeof counts, c->msgs_in, c->in, c->msgs_out, c->out);
    if (c->stream_id) {
        if (err)
            logv("closed stream %d (sid %d) after error: %s (%llu bytes in, %llu out)",
                 c->stream_id, c->sid, url_reason(err), c->in, c->out);
        else
            logv("closed stream %d (sid %d) (%llu bytes in, %llu out)", c->stream_id, c->sid,
                 c->in, c->out);
    } else if (err && ws_mode)
        logv("closed sid %d after error: %s (%s)", c->sid, url_reason(err), counts);
    else if (err)
        logv("closed sid %d after error: %s (%llu bytes in, %llu out)", c->sid, strerror(err),
             c->in, c->out);
    else if (ws_mode)
        logv("closed sid %d (%s; peer closed with %s)", c->sid, counts, closed);
    else
        logv("closed sid %d (%llu bytes in, %llu out)", c->sid, c->in, c->out);
    xs_close(c->sid);
    while (c->head) {
        struct chunk *h = c->head;
        c->head = h->next;
        free(h);
    }
    c->tail = NULL;
    c->pending = 0;
    c->closed = 1;
}

/* smux: ends a session whose xs_accept failed with err (the peer closing the connection
 * is ECONNRESET, the usual end). Its streams go on until they have read what came. */
static void session_close(struct client *c, int err)
{
    const char *why = url_reason(err);
    if (err == ECONNRESET)
        logv("closed session sid %d: %s (%llu stream%s)", c->sid, why, c->streams,
             c->streams == 1 ? "" : "s");
    else
        logv("closed session sid %d after error: %s (%llu stream%s)", c->sid, why, c->streams,
             c->streams == 1 ? "" : "s");
    xs_close(c->sid);
    c->closed = 1;
}

static void add_client(struct client **cl, size_t *ncl, size_t *capcl, struct client c)
{
    if (*ncl == *capcl) {
        *capcl = *capcl ? *capcl * 2 : 16;
        struct client *grown = realloc(*cl, *capcl * sizeof **cl);
        if (!grown)
            die("out of memory");
        *cl = grown;
    }
    (*cl)[(*ncl)++] = c;
}

/* smux echo: accepts the streams waiting on session cl[i] as clients of their own.
 * Index-based: add_client may move the array. */
static void accept_streams(struct client **cl, size_t *ncl, size_t *capcl, size_t i)
{
    for (;;) {
        int st = xs_accept4((*cl)[i].sid, NULL, NULL, SOCK_NONBLOCK);
        if (st < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS)
                logv("accept a stream on session sid %d: %s", (*cl)[i].sid, strerror(errno));
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                session_close(&(*cl)[i], errno);
            return;
        }
        (*cl)[i].streams++;
        int id = smux_stream_id(st);
        logv("stream %d (sid %d) on session sid %d", id, st, (*cl)[i].sid);
        add_client(cl, ncl, capcl, (struct client){.sid = st, .stream_id = id ? id : -1});
    }
}

static void __attribute__((noreturn)) echo_stream(int lsid)
{
    if (xs_fcntl(lsid, F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", xs_strerror(errno));
    struct client *cl = NULL;
    size_t ncl = 0, capcl = 0;
    struct pollfd *pfds = NULL;
    size_t cappfd = 0;
    int64_t paused_until = 0;

    for (;;) {
        size_t w = 0; /* drop what closed since the last round */
        for (size_t i = 0; i < ncl; i++)
            if (!cl[i].closed)
                cl[w++] = cl[i];
        ncl = w;
        if (cappfd < ncl + 1) {
            cappfd = (ncl + 1) * 2;
            struct pollfd *grown = realloc(pfds, cappfd * sizeof *pfds);
            if (!grown)
                die("out of memory");
            pfds = grown;
        }
        int paused = paused_until && now_ms() < paused_until;
        if (!paused)
            paused_until = 0;
        pfds[0] = (struct pollfd){.fd = paused ? -1 : lsid, .events = POLLIN, .revents = 0};
        size_t npoll = ncl;
        for (size_t i = 0; i < ncl; i++) {
            short ev = 0;
            if (cl[i].session)
                ev = POLLIN; /* streams to accept, or the session's end */
            else if (!cl[i].rd_eof && (ws_mode ? !cl[i].head : cl[i].pending < ECHO_LIMIT))
                ev |= POLLIN;
            if (cl[i].pending)
                ev |= POLLOUT;
            pfds[i + 1] = (struct pollfd){.fd = cl[i].sid, .events = ev, .revents = 0};
        }
        int r = xs_poll(pfds, npoll + 1, paused ? 100 : -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", xs_strerror(errno));
        }

        for (size_t i = 0; i < npoll; i++) {
            struct client *c = &cl[i];
            short re = pfds[i + 1].revents;
            if (!re)
                continue;
            if (re & POLLNVAL) {
                if (c->session)
                    session_close(c, EBADF);
                else
                    client_close(c, EBADF);
                continue;
            }
            if (c->session) {
                c->accept_ready = 1;
                continue;
            }
            int rc = 0;
            if ((re & (POLLIN | POLLHUP | POLLERR)) && !c->rd_eof &&
                (ws_mode ? !c->head : c->pending < ECHO_LIMIT))
                rc = client_read(c);
            if (rc == 0 && c->pending)
                rc = client_flush(c);
            if (rc < 0)
                client_close(c, errno);
            else if (c->rd_eof && !c->pending)
                client_close(c, 0);
        }
        /* drop closed clients */
        w = 0;
        for (size_t i = 0; i < ncl; i++)
            if (!cl[i].closed)
                cl[w++] = cl[i];
        ncl = w;
        /* smux sessions: their new streams become clients (appended; the array may move) */
        for (size_t i = 0; i < ncl; i++) {
            if (cl[i].session && cl[i].accept_ready && !cl[i].closed) {
                cl[i].accept_ready = 0;
                accept_streams(&cl, &ncl, &capcl, i);
            }
        }

        if (pfds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            for (;;) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                memset(&ss, 0, sizeof ss);
                int c = xs_accept4(lsid, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK);
                if (c < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        logv("accept: %s (pausing 100 ms)", strerror(errno));
                        paused_until = now_ms() + 100;
                        break;
                    }
                    die("accept %s: %s", g_url, strerror(errno));
                }
                add_client(&cl, &ncl, &capcl, (struct client){.sid = c, .session = smux_mode});
                char a[300];
                fmt_addr(&ss, len, a, sizeof a);
                logv("accepted %s (sid %d)", a, c);
                if (smux_mode) /* streams may have come with the session's first bytes */
                    accept_streams(&cl, &ncl, &capcl, ncl - 1);
            }
        }
    }
}

static void __attribute__((noreturn)) echo_dgram(int sid)
{
    static char buf[65536];
    struct sockaddr_storage last;
    socklen_t lastlen = 0;
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        memset(&from, 0, sizeof from);
        ssize_t n = xs_recvfrom(sid, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED || errno == EAGAIN)
                continue;
            die("recv %s: %s", g_url, strerror(errno));
        }
        if (verbose && (fromlen != lastlen || memcmp(&from, &last, fromlen) != 0)) {
            char a[300];
            fmt_addr(&from, fromlen, a, sizeof a);
            logv("datagrams from %s", a);
            last = from;
            lastlen = fromlen;
        }
        for (;;) {
            ssize_t k = xs_sendto(sid, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                logv("send to a peer: %s (datagram dropped)", strerror(errno));
            break;
        }
    }
}

/* ----- smux: one session, many streams ----- */

/* The load test's data: stream i sends pat[(off + i * PAT_STEP) % PAT_LEN] at offset off.
 * PAT_LEN is prime, so no two streams send the same bytes at the same offsets and a
 * chunk that went to the wrong stream or offset shows. */
#define PAT_LEN 65521
#define PAT_STEP 7919
static unsigned char pat[PAT_LEN + IO_BUF];

static void pattern_init(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        pat[i] = (unsigned char)(x >> 24);
    }
    for (size_t i = 0; i < IO_BUF; i++) /* any IO_BUF bytes from any start are contiguous */
        pat[PAT_LEN + i] = pat[i];
}

static const unsigned char *pattern_at(long stream, unsigned long long off)
{
    return pat + (off + (unsigned long long)stream * PAT_STEP) % PAT_LEN;
}

struct load {
    int sid, id;
    unsigned long long sent, got;
    int wr_done, rd_done, failed;
    char why[160];
};

static void load_fail(struct load *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void load_fail(struct load *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    s->failed = 1;
    s->wr_done = s->rd_done = 1;
    logv("stream %d (sid %d): %s", s->id, s->sid, s->why);
    xs_close(s->sid);
}

/* Sends what the stream's window takes; at the end, half-closes (FIN). */
static void load_send(struct load *s, long i)
{
    for (int round = 0; round < 16 && !s->wr_done; round++) {
        if (s->sent == smux_bytes) {
            if (xs_shutdown(s->sid, SHUT_WR) < 0)
                load_fail(s, "shutdown: %s", url_reason(errno));
            s->wr_done = 1;
            return;
        }
        unsigned long long left = smux_bytes - s->sent;
        size_t n = left < IO_BUF ? (size_t)left : IO_BUF;
        ssize_t k = xs_send(s->sid, pattern_at(i, s->sent), n, MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                load_fail(s, "send after %llu bytes: %s", s->sent, url_reason(errno));
            return;
        }
        s->sent += (unsigned long long)k;
    }
}

/* Reads what came and checks it against what was sent; the echo must end (FIN) right
 * after the last byte. */
static void load_recv(struct load *s, long i)
{
    static unsigned char buf[IO_BUF];
    for (int round = 0; round < 16 && !s->rd_done; round++) {
        ssize_t n = xs_recv(s->sid, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                load_fail(s, "recv after %llu bytes: %s", s->got, url_reason(errno));
            return;
        }
        if (n == 0) {
            if (s->got < smux_bytes)
                load_fail(s, "the echo ended after %llu of %llu bytes", s->got, smux_bytes);
            else
                s->rd_done = 1;
            return;
        }
        if (s->got + (unsigned long long)n > smux_bytes) {
            load_fail(s, "%llu bytes came back for %llu sent", s->got + (unsigned long long)n,
                      smux_bytes);
            return;
        }
        const unsigned char *want = pattern_at(i, s->got);
        if (memcmp(buf, want, (size_t)n) != 0) {
            size_t at = 0;
            while (buf[at] == want[at])
                at++;
            load_fail(s, "the echo differs at byte %llu", s->got + at);
            return;
        }
        s->got += (unsigned long long)n;
    }
}

/* --streams N: N streams on one session at once, each sends --bytes B and checks the
 * echo (from an echo server). One xs_poll loop; a summary line on stdout. */
static void __attribute__((noreturn)) smux_load(int session)
{
    pattern_init();
    long n = smux_streams;
    struct load *st = calloc((size_t)n, sizeof *st);
    struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
    if (!st || !pfds)
        die("out of memory");
    int64_t t0 = now_ms();
    struct timespec c0;
    clock_gettime(CLOCK_MONOTONIC, &c0);
    for (long i = 0; i < n; i++) {
        st[i].sid = xs_smux_open(session);
        if (st[i].sid < 0)
            die("open stream %ld of %ld on %s: %s", i + 1, n, g_url, url_reason(errno));
        st[i].id = smux_stream_id(st[i].sid);
        if (xs_fcntl(st[i].sid, F_SETFL, O_NONBLOCK) < 0)
            die("fcntl: %s", xs_strerror(errno));
    }
    logv("opened %ld streams on session sid %d", n, session);
    int64_t last_progress = t0;
    unsigned long long last_total = 0;
    for (;;) {
        size_t np = 0;
        for (long i = 0; i < n; i++) {
            short ev = (short)((st[i].wr_done ? 0 : POLLOUT) | (st[i].rd_done ? 0 : POLLIN));
            pfds[i] = (struct pollfd){.fd = ev ? st[i].sid : -1, .events = ev, .revents = 0};
            np += ev != 0;
        }
        if (np == 0)
            break;
        int r = xs_poll(pfds, (size_t)n, 1000);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", xs_strerror(errno));
        }
        unsigned long long total = 0;
        for (long i = 0; i < n; i++) {
            short re = pfds[i].revents;
            if (re & POLLNVAL)
                load_fail(&st[i], "sid %d is gone", st[i].sid);
            if (re & (POLLOUT | POLLERR | POLLHUP))
                load_send(&st[i], i);
            if (re & (POLLIN | POLLERR | POLLHUP))
                load_recv(&st[i], i);
            if (!st[i].failed && st[i].wr_done && st[i].rd_done && st[i].sid >= 0) {
                xs_close(st[i].sid);
                st[i].sid = -1;
            }
            total += st[i].sent + st[i].got;
        }
        int64_t now = now_ms();
        if (total != last_total) {
            last_total = total;
            last_progress = now;
        } else if (now - last_progress >= 30000) {
            for (long i = 0; i < n; i++)
                if (!st[i].wr_done || !st[i].rd_done)
                    load_fail(&st[i], "no progress for 30 s (%llu sent, %llu echoed)",
                              st[i].sent, st[i].got);
        }
    }
    struct timespec c1;
    clock_gettime(CLOCK_MONOTONIC, &c1);
    double secs = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    unsigned long long sent = 0, got = 0;
    long failed = 0, first = -1;
    for (long i = 0; i < n; i++) {
        sent += st[i].sent;
        got += st[i].got;
        if (st[i].failed && failed++ == 0)
            first = i;
    }
    printf("smux: %ld stream%s x %llu bytes on one session: %llu bytes sent, %llu echoed and "
           "checked in %.3f s (%.1f MB/s each way), %ld failed\n",
           n, n == 1 ? "" : "s", smux_bytes, sent, got, secs,
           secs > 0 ? (double)got / secs / 1e6 : 0.0, failed);
    fflush(stdout);
    xs_close(session);
    if (failed)
        die("%ld of %ld streams failed; first: stream %d: %s", failed, n, st[first].id,
            st[first].why);
    finish(0);
}

/* A client without --streams: one stream, piped as a TCP connection would be. */
static void __attribute__((noreturn)) smux_client(int session)
{
    if (smux_streams)
        smux_load(session);
    int sid = xs_smux_open(session);
    if (sid < 0)
        die("open a stream on %s: %s", g_url, url_reason(errno));
    logv("stream %d (sid %d) on session sid %d", smux_stream_id(sid), sid, session);
    pipe_conn(sid, 0);
    xs_close(session);
    finish(0);
}

/* A listening smux xscat without --echo: each stream's bytes go to stdout as they come
 * (streams at once interleave, a read at a time); stdin goes to the session's first
 * stream. One session, then exit; with -k, sessions one after another. */
struct sstream {
    int sid, id;
    int rd_eof, stdin_owner;
    unsigned long long in;
};

static void serve_session(int session, int keep)
{
    if (xs_fcntl(session, F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", xs_strerror(errno));
    struct sstream *st = NULL;
    size_t nst = 0, capst = 0, cappfd = 0;
    struct pollfd *pfds = NULL;
    int session_err = 0, over = 0, gave_stdin = 0;
    char session_why[400] = "";
    unsigned long long nstreams = 0;
    static char buf[IO_BUF];
    for (;;) {
        /* close the streams that are done: read to the end, and stdin's done with them */
        size_t w = 0;
        int waiting_stdin = 0;
        for (size_t i = 0; i < nst; i++) {
            struct sstream *s = &st[i];
            int done = s->rd_eof;
            if (done && s->stdin_owner) {
                pthread_mutex_lock(&P.mu);
                if (over && !P.stdin_eof)
                    P.send_broken = 1; /* the session is gone: stdin has nowhere to go */
                /* with -k, as for TCP: the peer's FIN ends it; stdin goes on to the next */
                done = (keep || P.stdin_eof || P.send_broken) && !P.busy;
                if (done)
                    P.sid = -1;
                unsigned long long out = P.sent;
                pthread_mutex_unlock(&P.mu);
                if (done)
                    logv("closed stream %d (sid %d) (%llu bytes in, %llu out)", s->id, s->sid,
                         s->in, out);
                else
                    waiting_stdin = 1;
            } else if (done) {
                logv("closed stream %d (sid %d) (%llu bytes in, 0 out)", s->id, s->sid, s->in);
            }
            if (done)
                xs_close(s->sid);
            else
                st[w++] = st[i];
        }
        nst = w;
        if (over && nst == 0)
            break;
        if (cappfd < nst + 1) {
            cappfd = (nst + 1) * 2;
            struct pollfd *grown = realloc(pfds, cappfd * sizeof *pfds);
            if (!grown)
                die("out of memory");
            pfds = grown;
        }
        pfds[0] = (struct pollfd){.fd = over ? -1 : session, .events = POLLIN, .revents = 0};
        for (size_t i = 0; i < nst; i++)
            pfds[i + 1] = (struct pollfd){.fd = st[i].rd_eof ? -1 : st[i].sid, .events = POLLIN,
                                          .revents = 0};
        int r = xs_poll(pfds, nst + 1, waiting_stdin ? 100 : -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", xs_strerror(errno));
        }
        for (size_t i = 0; i < nst; i++) {
            struct sstream *s = &st[i];
            if (!pfds[i + 1].revents)
                continue;
            for (int round = 0; round < 16 && !s->rd_eof; round++) {
                ssize_t n = xs_recv(s->sid, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    int err = errno;
                    if (!keep)
                        die("recv %s: stream %d: %s", g_url, s->id, url_reason(err));
                    logv("stream %d (sid %d): %s", s->id, s->sid, url_reason(err));
                    s->rd_eof = 1;
                    break;
                }
                if (n == 0) {
                    s->rd_eof = 1;
                    break;
                }
                s->in += (unsigned long long)n;
                write_stdout(buf, (size_t)n);
            }
        }
        if (pfds[0].revents) {
            for (;;) {
                int sid = xs_accept(session, NULL, NULL); /* blocking stream, for stdin */
                if (sid < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                        logv("accept a stream: %s", strerror(errno));
                        break;
                    }
                    session_err = errno;
                    over = 1;
                    snprintf(session_why, sizeof session_why, "%s", url_reason(session_err));
                    logv("closed session sid %d%s%s (%llu stream%s)", session,
                         session_err == ECONNRESET ? ": " : " after error: ", session_why,
                         nstreams, nstreams == 1 ? "" : "s");
                    break;
                }
                nstreams++;
                if (nst == capst) {
                    capst = capst ? capst * 2 : 16;
                    struct sstream *grown = realloc(st, capst * sizeof *st);
                    if (!grown)
                        die("out of memory");
                    st = grown;
                }
                struct sstream *s = &st[nst++];
                *s = (struct sstream){.sid = sid, .id = smux_stream_id(sid)};
                logv("stream %d (sid %d) on session sid %d", s->id, sid, session);
                if (!gave_stdin) { /* the session's first stream gets stdin */
                    gave_stdin = 1;
                    s->stdin_owner = 1;
                    pthread_mutex_lock(&P.mu);
                    P.sid = sid;
                    P.send_broken = 0;
                    P.sent = 0;
                    if (P.stdin_eof)
                        xs_shutdown(sid, SHUT_WR);
                    pthread_cond_broadcast(&P.cv);
                    pthread_mutex_unlock(&P.mu);
                    start_stdin_thread();
                }
            }
        }
    }
    free(st);
    free(pfds);
    xs_close(session);
    if (session_err && session_err != ECONNRESET && !keep)
        die("%s: %s", g_url, session_why);
}

/* ----- main ----- */

/* WebSocket (and other seqpacket) sockets: each stdin line or read is one message. */
static void set_message_mode(int type)
{
    pthread_mutex_lock(&P.mu);
    P.ws = ws_mode;
    P.text = ws_mode && !ws.binary;
    if (type == SOCK_SEQPACKET || ws_mode)
        P.message = 1;
    pthread_mutex_unlock(&P.mu);
}

/* The library's log level from XSOCKET_LOG, as the library reads it. */
static int env_log_level(void)
{
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const char *v = getenv("XSOCKET_LOG");
    if (!v || !*v)
        return XS_LOG_OFF;
    for (int i = 0; i < 6; i++)
        if (!strcasecmp(v, names[i]))
            return i;
    if (!strcasecmp(v, "warning"))
        return XS_LOG_WARN;
    if (v[0] >= '0' && v[0] <= '5' && v[1] == '\0')
        return v[0] - '0';
    return XS_LOG_OFF;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-v] URL                 connect; pipe stdin to the socket, the socket to stdout\n"
            "       %s -l [-k] [-v] URL         listen, accept one connection and pipe\n"
            "       %s -l --echo [-v] URL       echo server for many clients at once, until killed\n"
            "       %s --streams N [--bytes B] smux+tcp://HOST:PORT   smux load test\n"
            "options:\n"
            "  -l, --listen    listen on URL instead of connecting\n"
            "  -k, --keep      with -l: keep accepting, one connection after another\n"
            "      --echo      with -l: send every byte (stream), datagram or message back to\n"
            "                  its sender (a WebSocket message as text or binary, as it came)\n"
            "  -v, --verbose   log connection events to stderr; -vv adds xsocket's debug log\n"
            "      --ca FILE   TLS: trust the CA certificates in FILE (PEM)\n"
            "      --cert FILE TLS: our certificate chain (server; client for mTLS)\n"
            "      --key FILE  TLS: our private key\n"
            "      --insecure  TLS: do not verify the peer's certificate (tests only)\n"
            "      --pin HEX   TLS: accept only a peer certificate with this SHA-256\n"
            "      --sni NAME  TLS: the server name to send and check\n"
            "      --binary    WebSocket: each stdin read is one binary message and messages\n"
            "                  are written out as they are (default: each stdin line is one\n"
            "                  text message; each message received is written with a newline)\n"
            "      --subprotocol LIST  WebSocket: subprotocols offered (client) or spoken\n"
            "                  (server), comma-separated\n"
            "      --origin O  WebSocket: the Origin to send; with -l, the origins allowed\n"
            "                  (comma-separated; others get 403)\n"
            "      --ping MS   WebSocket: send a ping every MS milliseconds\n"
            "      --fragment N  WebSocket: send messages in frames of at most N bytes\n"
            "      --streams N smux: open N streams at once on one session, each sends\n"
            "                  --bytes B (default 1M; K, M, G suffixes) and checks the echo\n"
            "                  from an -l --echo server; prints a summary line with totals\n"
            "                  and MB/s, exits 1 if any echo differs or falls short\n"
            "  -h, --help      show this help\n"
            "URLs:\n"
            "  tcp://HOST:PORT   TCP; HOST is an IPv4 address, [IPv6] or a name\n"
            "  udp://HOST:PORT   UDP; each stdin read is sent as one datagram\n"
            "  unix:///PATH      Unix stream socket at PATH\n"
            "  unix://@NAME      Unix stream socket with a Linux abstract name\n"
            "  tls://HOST:PORT   TLS over TCP (server: --cert and --key)\n"
            "  tls+unix:///PATH  TLS over a Unix stream socket\n"
            "  ws://HOST:PORT/PATH   WebSocket (HTTP Upgrade handshake); wss:// over TLS\n"
            "  ws+unix:///PATH   WebSocket over a Unix stream socket\n"
            "  wsraw://HOST:PORT WebSocket frames without the HTTP handshake;\n"
            "                    wsraw+tls:// over TLS, wsraw+unix:///PATH over Unix\n"
            "  smux+tcp://HOST:PORT  smux session (streams on one connection): a client\n"
            "                    pipes one stream; smux+tls:// over TLS, smux+unix:///PATH\n"
            "                    (and smux+tls+unix:///PATH) over Unix. With -l --echo every\n"
            "                    stream of every session is echoed; with -l alone each\n"
            "                    stream's bytes go to stdout and stdin to the first stream\n"
            "A WebSocket client sends a close frame at stdin's EOF and ends at the peer's\n"
            "close; a close code other than 1000, 1001 or 1005 (below 3000) is a failure.\n"
            "With -l, port 0 picks a free port; the first line on stderr is always\n"
            "\"listening on URL\" with the real address. Exit status: 0 done, 1 failure\n"
            "(reason on stderr), 2 usage error.\n",
            prog, prog, prog, prog);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nusage: %s [-l [-k] [--echo]] [-v] [options] URL (try --help)\n", prog,
            line, prog);
    exit(2);
}

int main(int argc, char **argv)
{
    int listen_mode = 0, keep = 0, echo = 0, opts_done = 0;
    const char *url = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1] == '-') {
            if (a[2] == '\0')
                opts_done = 1;
            else if (!strcmp(a, "--listen"))
                listen_mode = 1;
            else if (!strcmp(a, "--keep"))
                keep = 1;
            else if (!strcmp(a, "--echo"))
                echo = 1;
            else if (!strcmp(a, "--verbose"))
                verbose++;
            else if (!strcmp(a, "--insecure"))
                tls.insecure = 1;
            else if (!strcmp(a, "--binary"))
                ws.binary = 1;
            else if (!strcmp(a, "--subprotocol") || !strcmp(a, "--origin")) {
                if (i + 1 >= argc)
                    usage_error("%s needs a value", a);
                *(a[2] == 's' ? &ws.subprotocols : &ws.origin) = argv[++i];
            } else if (!strcmp(a, "--ping") || !strcmp(a, "--fragment")) {
                if (i + 1 >= argc)
                    usage_error("%s needs a value", a);
                const char *v = argv[++i];
                char *end;
                errno = 0;
                long n = strtol(v, &end, 10);
                if (errno || end == v || *end || n < (a[2] == 'p' ? 0 : 1) || n > INT32_MAX)
                    usage_error("%s wants %s, not '%s'", a,
                                a[2] == 'p' ? "milliseconds (0 or more)" : "a size in bytes (1 or more)",
                                v);
                *(a[2] == 'p' ? &ws.ping_ms : &ws.fragment) = (int)n;
            }
            else if (!strcmp(a, "--streams") || !strcmp(a, "--bytes")) {
                if (i + 1 >= argc)
                    usage_error("%s needs a value", a);
                const char *v = argv[++i];
                char *end;
                errno = 0;
                unsigned long long n = strtoull(v, &end, 10);
                int shift = 0;
                if (end != v && *end && !end[1]) { /* a K, M or G suffix: KiB, MiB, GiB */
                    const char *units = "KMG", *u = strchr(units, *end & ~0x20);
                    if (u && a[2] == 'b') {
                        shift = 10 * (int)(u - units + 1);
                        end++;
                    }
                }
                int streams = a[2] == 's';
                if (errno || end == v || *end || v[0] == '-' || n < (streams ? 1 : 0) ||
                    n > (streams ? 65535ull : (1ull << 40) >> shift))
                    usage_error("%s wants %s, not '%s'", a,
                                streams ? "a number of streams (1 to 65535)"
                                        : "a size in bytes (0 to 1T; K, M, G suffixes)",
                                v);
                if (streams)
                    smux_streams = (long)n;
                else {
                    smux_bytes = n << shift;
                    smux_bytes_given = 1;
                }
            }
            else if (!strcmp(a, "--ca") || !strcmp(a, "--cert") || !strcmp(a, "--key") ||
                     !strcmp(a, "--pin") || !strcmp(a, "--sni")) {
                if (i + 1 >= argc)
                    usage_error("%s needs a value", a);
                const char *v = argv[++i];
                switch (a[2]) {
                case 'c': *(a[3] == 'a' ? &tls.ca : &tls.cert) = v; break;
                case 'k': tls.key = v; break;
                case 'p': tls.pin = v; break;
                default: tls.sni = v; break;
                }
            }
            else if (!strcmp(a, "--help")) {
                usage(stdout);
                return 0;
            } else
                usage_error("unknown option '%s'", a);
        } else if (!opts_done && a[0] == '-' && a[1] != '\0') {
            for (const char *p = a + 1; *p; p++) {
                switch (*p) {
                case 'l': listen_mode = 1; break;
                case 'k': keep = 1; break;
                case 'v': verbose++; break;
                case 'h': usage(stdout); return 0;
                default: usage_error("unknown option '-%c'", *p);
                }
            }
        } else if (!url) {
            url = a;
        } else {
            usage_error("unexpected argument '%s'", a);
        }
    }
    if (!url)
        usage_error("missing URL");
    if (keep && !listen_mode)
        usage_error("-k needs -l");
    if (echo && !listen_mode)
        usage_error("--echo needs -l");
    if (smux_streams && listen_mode)
        usage_error("--streams is for a client (the server is -l --echo)");
    if (smux_bytes_given && !smux_streams)
        usage_error("--bytes needs --streams");
    g_url = url;

    signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE, a clean end */
    int log_level = verbose >= 2 ? XS_LOG_DEBUG : env_log_level();
    /* Listening: keep the library quiet until "listening on URL" is out, so that it
     * stays the first line on stderr even with -vv or XSOCKET_LOG. */
    xs_set_logger(NULL, NULL, listen_mode ? XS_LOG_OFF : log_level);

    if (!listen_mode) {
        int sid = open_url(url, 0);
        if (smux_mode) {
            logv("connected to %s (session sid %d)", url, sid);
            smux_client(sid);
        }
        int type = sock_type(sid);
        logv("connected to %s (sid %d)", url, sid);
        ws_log_open(sid, 0);
        set_message_mode(type);
        if (type == SOCK_DGRAM)
            pipe_dgram(sid, 0, 0);
        else
            pipe_conn(sid, 0);
        finish(0);
    }

    int lsid = open_url(url, 1);
    int type = sock_type(lsid);
    char here[400];
    local_url(lsid, type, here, sizeof here);
    own_socket_file(lsid);
    fprintf(stderr, "listening on %s\n", here);
    fflush(stderr);
    xs_set_logger(NULL, NULL, log_level);

    set_message_mode(type);
    if (echo) {
        if (type == SOCK_DGRAM)
            echo_dgram(lsid);
        echo_stream(lsid);
    }
    if (type == SOCK_DGRAM) {
        pipe_dgram(lsid, 1, keep);
        finish(0);
    }
    /* smux: each session accepted is served as serve_session says */
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        memset(&ss, 0, sizeof ss);
        int sid = xs_accept(lsid, (struct sockaddr *)&ss, &len);
        if (sid < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (keep && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
                logv("accept: %s", strerror(errno));
                usleep(100000);
                continue;
            }
            die("accept %s: %s", url, strerror(errno));
        }
        char a[300];
        fmt_addr(&ss, len, a, sizeof a);
        logv("accepted %s (sid %d)", a, sid);
        ws_log_open(sid, 1);
        if (!keep) { /* one connection only: stop listening, as nc does */
            xs_close(lsid);
            remove_socket_file();
        }
        if (smux_mode)
            serve_session(sid, keep);
        else
            pipe_conn(sid, keep);
        if (!keep)
            finish(0);
    }
}
