/* WebSocket (XS_PROTO_WS "Full-WS" with the HTTP Upgrade, XS_PROTO_WS_RAW "Raw-WS"):
 * xsocket client and xsocket server in threads over TCP v4/v6, Unix paths and TLS;
 * whole messages (SOCK_SEQPACKET) and bytes as they come (SOCK_STREAM); text and
 * binary; truncation, fragments, MSG_PEEK, iovecs; close codes and reasons, half
 * close, a lost connection, protocol errors and handshake refusals seen by a plain
 * kernel socket playing the peer; non-blocking sockets with xs_poll; the heartbeat;
 * a close from another thread; bad arguments. Loopback only; every wait is bounded
 * (GUARD_MS time-outs on every socket, the harness's watchdog on every scenario).
 * Certificates are made at test time with the openssl command line. */
#include <fcntl.h>
#include <sys/uio.h>

#include "concurrency.h"

#define MIB (1 << 20)

/* ----- small helpers ----- */

/* A CA and a server certificate for 127.0.0.1, ::1 and localhost signed by it. */
static void make_certificates(void) {
    cert_make_ca("ws");
    cert_make_signed("server", "IP:127.0.0.1,IP:::1,DNS:localhost", 2);
}

static int ws_text(int sid, int name, const char *value) {
    return xs_setsockopt(sid, XS_SOL_WS, name, value, (socklen_t)strlen(value));
}

static int ws_int(int sid, int name, int value) {
    return xs_setsockopt(sid, XS_SOL_WS, name, &value, sizeof value);
}

/* An int option of level XS_SOL_WS, or -1. */
static int ws_get_int(int sid, int name) {
    return get_int_opt(&XS, sid, XS_SOL_WS, name);
}

/* A text option of level XS_SOL_WS into out (NUL-terminated); its length, or -1
 * (out is then ""). */
static int ws_get_text(int sid, int name, char *out, size_t cap) {
    socklen_t len = (socklen_t)(cap - 1);
    out[0] = 0;
    if (xs_getsockopt(sid, XS_SOL_WS, name, out, &len) < 0) return -1;
    out[len] = 0;
    return (int)len;
}

static void copy_error(char *out, size_t cap) {
    snprintf(out, cap, "%s", xs_last_error());
}

/* n bytes of valid UTF-8: 'a', then two-byte characters (U+00FC), then 'b' when a
 * byte is left over; a fragment boundary at an even offset splits a character. */
static void utf8_fill(unsigned char *p, size_t n) {
    size_t i = 0;
    if (n) p[i++] = 'a';
    while (i + 2 <= n) {
        p[i++] = 0xC3;
        p[i++] = 0xBC;
    }
    if (i < n) p[i++] = 'b';
}

/* The payload of a test message of n bytes: text or a position-dependent pattern. */
static void payload(unsigned char *p, size_t n, int text) {
    if (text) utf8_fill(p, n);
    else pattern_fill(p, n, (uint32_t)n, 0);
}

static const char *kind(int proto) {
    switch (proto) {
    case XS_PROTO_WS: return "Full-WS";
    case XS_PROTO_WS_RAW: return "Raw-WS";
    case XS_PROTO_WS | XS_PROTO_TLS: return "wss";
    case XS_PROTO_WS_RAW | XS_PROTO_TLS: return "wsraw+tls";
    default: return "?";
    }
}

/* ----- sockets ----- */

/* A WebSocket listener on loopback (TLS with the server certificate when asked);
 * fills its address. */
static int ws_listener(int family, int type, int proto, struct sockaddr_storage *addr,
                       socklen_t *len) {
    int l = XS_PASS(xs_socket(family, type, proto));
    if (proto & XS_PROTO_TLS) {
        XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path("server.pem")));
        XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path("server.key")));
    }
    if (family == AF_UNIX) *len = unix_addr(0, (struct sockaddr_un *)addr);
    else *len = loopback(family, 0, addr);
    XS_PASS(xs_bind(l, (struct sockaddr *)addr, *len));
    XS_PASS(xs_listen(l, 16));
    if (family != AF_UNIX) *len = loopback(family, bound_port(&XS, l), addr);
    XS_PASS(set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS));
    return l;
}

static void guard_timeouts(int sid) {
    XS_PASS(set_timeout_ms(&XS, sid, SO_RCVTIMEO, GUARD_MS));
    XS_PASS(set_timeout_ms(&XS, sid, SO_SNDTIMEO, GUARD_MS));
}

/* A WebSocket client socket, not yet connected (trusting our CA when TLS). */
static int ws_client(int family, int type, int proto) {
    int c = XS_PASS(xs_socket(family, type, proto));
    if (proto & XS_PROTO_TLS) {
        XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
        if (family == AF_UNIX) XS_PASS(tls_set_text(c, XS_TLS_SERVER_NAME, "localhost"));
    }
    guard_timeouts(c);
    return c;
}

/* Receives one whole message into buf (at most cap bytes): SOCK_SEQPACKET in one
 * xs_recvmsg, SOCK_STREAM by putting pieces together up to the one with MSG_EOR.
 * Returns its length, 0 with *flags 0 at the end, or -1 (errno; ENODATA: the stream
 * ended inside a message, EMSGSIZE: no MSG_EOR within cap bytes). *flags: the last
 * piece's msg_flags, with XS_MSG_TEXT when any piece had it; *pieces: how many. */
static long recv_message(int sid, int type, unsigned char *buf, size_t cap, int *flags,
                         int *pieces) {
    size_t off = 0;
    int text = 0;
    *flags = 0;
    *pieces = 0;
    for (;;) {
        struct iovec iov = {buf + off, cap - off};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = xs_recvmsg(sid, &m, 0);
        if (n < 0) return -1;
        (*pieces)++;
        text |= m.msg_flags & XS_MSG_TEXT;
        *flags = m.msg_flags | text;
        if (type == SOCK_SEQPACKET) return n;
        if (n == 0 && !(m.msg_flags & MSG_EOR)) {
            if (off == 0) return 0;
            errno = ENODATA;
            return -1;
        }
        off += (size_t)n;
        if (m.msg_flags & MSG_EOR) return (long)off;
        if (off == cap) {
            errno = EMSGSIZE;
            return -1;
        }
    }
}

/* ----- an xsocket server in a thread: accepts, echoes every message back as it came
 * (text stays text), and reads until the peer's close ----- */

struct served {
    int rc, err; /* xs_accept's result */
    char error[256];
    char protocol[64], path[128], origin[128]; /* XS_WS_SUBPROTOCOL, _REQUEST_PATH, _ORIGIN */
    long echoed;
    long end; /* 0: the peer closed; -1 recv failed; -2 send failed */
    int end_err;
    char end_error[256];
    int peer_code;
    char peer_reason[128];
};

struct server {
    int listener, type, accepts;
    pthread_t th;
    struct served a[4];
};

static void *serve(void *arg) {
    struct server *s = arg;
    size_t cap = MIB + 64;
    unsigned char *buf = malloc(cap);
    for (int i = 0; i < s->accepts; i++) {
        struct served *a = &s->a[i];
        a->rc = xs_accept(s->listener, NULL, NULL);
        if (a->rc < 0) {
            a->err = errno;
            copy_error(a->error, sizeof a->error);
            continue;
        }
        int sid = a->rc;
        guard_timeouts(sid);
        ws_get_text(sid, XS_WS_SUBPROTOCOL, a->protocol, sizeof a->protocol);
        ws_get_text(sid, XS_WS_REQUEST_PATH, a->path, sizeof a->path);
        ws_get_text(sid, XS_WS_REQUEST_ORIGIN, a->origin, sizeof a->origin);
        for (;;) {
            int flags, pieces;
            long n = recv_message(sid, s->type, buf, cap, &flags, &pieces);
            if (n < 0) {
                a->end = -1;
                a->end_err = errno;
                copy_error(a->end_error, sizeof a->end_error);
                break;
            }
            if (n == 0 && !(flags & MSG_EOR)) break; /* the end: a->end stays 0 */
            if (xs_send(sid, buf, (size_t)n, flags & XS_MSG_TEXT) != n) {
                a->end = -2;
                a->end_err = errno;
                copy_error(a->end_error, sizeof a->end_error);
                break;
            }
            a->echoed++;
        }
        a->peer_code = ws_get_int(sid, XS_WS_PEER_CLOSE_CODE);
        ws_get_text(sid, XS_WS_PEER_CLOSE_REASON, a->peer_reason, sizeof a->peer_reason);
        xs_close(sid);
    }
    free(buf);
    return NULL;
}

static void start_server(struct server *s, int listener, int type, int accepts) {
    memset(s, 0, sizeof *s);
    s->listener = listener;
    s->type = type;
    s->accepts = accepts;
    if (pthread_create(&s->th, NULL, serve, s) != 0) exit(2);
}

/* Checks what the server did with one accepted connection: echoed `echoed` messages,
 * then read the peer's close with `code`. */
static void check_served(const struct served *a, long echoed, int code) {
    CHECKF(a->rc >= 0, "accept failed: %s (%s)", strerror(a->err), a->error);
    CHECKF(a->echoed == echoed, "server echoed %ld messages, expected %ld", a->echoed, echoed);
    CHECKF(a->end == 0, "server's last call: %ld, %s (%s)", a->end, strerror(a->end_err),
           a->end_error);
    CHECKF(a->peer_code == code, "server read close code %d, expected %d", a->peer_code, code);
}

/* A connected pair made by xs_connect and xs_accept (in a thread, so that a Full-WS
 * handshake can run), with GUARD_MS time-outs. setup(listener, client), when given,
 * sets options before the connect. Returns 0, or -1 (nothing left open). */
struct acceptor {
    int l, s, err;
    char error[256];
};

static void *accept_one(void *arg) {
    struct acceptor *a = arg;
    a->s = xs_accept(a->l, NULL, NULL);
    a->err = errno;
    if (a->s < 0) copy_error(a->error, sizeof a->error);
    return NULL;
}

static int ws_pair(int family, int type, int proto, int *c, int *s,
                   void (*setup)(int listener, int client)) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(family, type, proto, &addr, &len);
    *c = ws_client(family, type, proto);
    if (setup) setup(l, *c);
    struct acceptor a = {.l = l, .s = -1};
    pthread_t th;
    if (pthread_create(&th, NULL, accept_one, &a) != 0) exit(2);
    int rc = xs_connect(*c, (struct sockaddr *)&addr, len);
    int err = errno;
    char error[256];
    copy_error(error, sizeof error);
    pthread_join(th, NULL);
    xs_close(l);
    *s = a.s;
    if (rc < 0 || a.s < 0) {
        fprintf(stderr, "  ws_pair %s: connect %d (%s: %s), accept %d (%s: %s)\n", kind(proto),
                rc, rc < 0 ? strerror(err) : "ok", rc < 0 ? error : "", a.s,
                a.s < 0 ? strerror(a.err) : "ok", a.s < 0 ? a.error : "");
        xs_close(*c);
        if (a.s >= 0) xs_close(a.s);
        *c = *s = -1;
        return -1;
    }
    guard_timeouts(*s);
    return 0;
}

/* ----- plain kernel sockets playing the peer ----- */

/* A kernel TCP listener on 127.0.0.1; fills its address. */
static int kernel_listener(struct sockaddr_storage *addr, socklen_t *len) {
    int k = XS_PASS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    *len = loopback(AF_INET, 0, addr);
    XS_PASS(bind(k, (struct sockaddr *)addr, *len));
    XS_PASS(listen(k, 4));
    *len = loopback(AF_INET, bound_port(&KERNEL, k), addr);
    set_timeout_ms(&KERNEL, k, SO_RCVTIMEO, GUARD_MS);
    return k;
}

/* A kernel TCP client connected to addr, with GUARD_MS time-outs. */
static int kernel_client(const struct sockaddr_storage *addr, socklen_t len) {
    int k = XS_PASS(socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    set_timeout_ms(&KERNEL, k, SO_RCVTIMEO, GUARD_MS);
    set_timeout_ms(&KERNEL, k, SO_SNDTIMEO, GUARD_MS);
    XS_PASS(connect(k, (const struct sockaddr *)addr, len));
    return k;
}

/* Reads from a kernel socket until the end of the stream (*eof = 1), an error or a
 * time-out (*eof = 0), or cap bytes. Returns the bytes read. */
static size_t read_to_end(int k, unsigned char *buf, size_t cap, int *eof) {
    size_t off = 0;
    *eof = 0;
    while (off < cap) {
        ssize_t n = recv(k, buf + off, cap - off, 0);
        if (n == 0) *eof = 1;
        if (n <= 0) break;
        off += (size_t)n;
    }
    return off;
}

static void send_all(int k, const void *buf, size_t n) {
    CHECK(send(k, buf, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* Encodes one frame (masked with a fixed key when `masked`, as a client must);
 * returns its length. */
static size_t frame(unsigned char *out, int fin, int opcode, const void *data, size_t n,
                    int masked) {
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    const unsigned char *p = data;
    size_t i = 0;
    unsigned char m = masked ? 0x80 : 0;
    out[i++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[i++] = (unsigned char)(m | n);
    } else if (n < 65536) {
        out[i++] = m | 126;
        out[i++] = (unsigned char)(n >> 8);
        out[i++] = (unsigned char)n;
    } else {
        out[i++] = m | 127;
        for (int b = 7; b >= 0; b--) out[i++] = (unsigned char)((uint64_t)n >> (8 * b));
    }
    if (masked) {
        memcpy(out + i, key, 4);
        i += 4;
    }
    for (size_t j = 0; j < n; j++) out[i + j] = p[j] ^ (masked ? key[j % 4] : 0);
    return i + n;
}

/* Decodes one unmasked frame (as a server sends) at the start of buf: its length,
 * or 0 when buf holds no whole frame (or a masked one). */
static size_t unframe(const unsigned char *buf, size_t n, int *fin, int *opcode,
                      const unsigned char **data, size_t *len) {
    if (n < 2 || (buf[1] & 0x80)) return 0;
    size_t i = 2, l = buf[1] & 0x7f;
    if (l == 126) {
        if (n < 4) return 0;
        l = (size_t)buf[2] << 8 | buf[3];
        i = 4;
    } else if (l == 127) {
        if (n < 10) return 0;
        l = 0;
        for (int b = 0; b < 8; b++) l = l << 8 | buf[2 + b];
        i = 10;
    }
    if (n - i < l) return 0;
    *fin = buf[0] >> 7;
    *opcode = buf[0] & 0x0f;
    *data = buf + i;
    *len = l;
    return i + l;
}

/* ----- echo: every message size, text and binary, over every transport ----- */

static const size_t SIZES[] = {0, 1, 125, 126, 65535, 65536, MIB};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

/* Sends one message and checks the echo: same bytes, same kind, MSG_EOR, and
 * XS_WS_RECV_TEXT. */
static void roundtrip(int c, int type, const char *what, size_t n, int text,
                      unsigned char *out, unsigned char *in) {
    payload(out, n, text);
    ssize_t sent = xs_send(c, out, n, text ? XS_MSG_TEXT : 0);
    CHECKF(sent == (ssize_t)n, "%s: send of %zu bytes (%s) returned %zd: %s (%s)", what, n,
           text ? "text" : "binary", sent, strerror(errno), xs_last_error());
    int flags, pieces;
    memset(in, 0xee, n + 1);
    long got = recv_message(c, type, in, n + 16, &flags, &pieces);
    CHECKF(got == (long)n, "%s: echo of %zu bytes (%s): got %ld: %s (%s)", what, n,
           text ? "text" : "binary", got, got < 0 ? strerror(errno) : "ok", xs_last_error());
    if (got == (long)n) {
        CHECKF(memcmp(in, out, n) == 0, "%s: echo of %zu bytes (%s) differs", what, n,
               text ? "text" : "binary");
    }
    CHECKF(flags & MSG_EOR, "%s: %zu bytes: msg_flags %#x lacks MSG_EOR", what, n, flags);
    CHECKF(!(flags & MSG_TRUNC), "%s: %zu bytes: msg_flags %#x has MSG_TRUNC", what, n, flags);
    CHECKF(!!(flags & XS_MSG_TEXT) == text, "%s: %zu bytes (%s): msg_flags %#x", what, n,
           text ? "text" : "binary", flags);
    int rt = ws_get_int(c, XS_WS_RECV_TEXT);
    CHECKF(rt == text, "%s: %zu bytes (%s): XS_WS_RECV_TEXT %d", what, n,
           text ? "text" : "binary", rt);
}

static void echo_over(int family, int proto) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(family, SOCK_SEQPACKET, proto, &addr, &len);
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 1);
    int c = ws_client(family, SOCK_SEQPACKET, proto);
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    CHECK(get_int_opt(&XS, c, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET);
    unsigned char *out = malloc(MIB + 16), *in = malloc(MIB + 16);
    long sent = 0;
    char what[64];
    snprintf(what, sizeof what, "%s over %s", kind(proto),
             family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : "Unix");
    for (int text = 0; text < 2; text++) {
        for (size_t i = 0; i < NSIZES; i++, sent++)
            roundtrip(c, SOCK_SEQPACKET, what, SIZES[i], text, out, in);
    }
    XS_PASS(xs_close(c));
    pthread_join(s.th, NULL);
    check_served(&s.a[0], sent, 1000);
    xs_close(l);
    free(out);
    free(in);
}

SCENARIO(echo_raw_tcp4) { echo_over(AF_INET, XS_PROTO_WS_RAW); }
SCENARIO(echo_raw_tcp6) { echo_over(AF_INET6, XS_PROTO_WS_RAW); }
SCENARIO(echo_raw_unix) { echo_over(AF_UNIX, XS_PROTO_WS_RAW); }
SCENARIO(echo_full_tcp4) { echo_over(AF_INET, XS_PROTO_WS); }
SCENARIO(echo_full_tcp6) { echo_over(AF_INET6, XS_PROTO_WS); }
SCENARIO(echo_full_unix) { echo_over(AF_UNIX, XS_PROTO_WS); }
SCENARIO(echo_wss) { echo_over(AF_INET, XS_PROTO_WS | XS_PROTO_TLS); }
SCENARIO(echo_wsraw_tls) { echo_over(AF_INET, XS_PROTO_WS_RAW | XS_PROTO_TLS); }

/* The URL calls make SOCK_SEQPACKET WebSocket sockets: ws:// with a path and query
 * (the server reads it back), wsraw+unix://, and wss:// with options set between
 * xs_socket_url and xs_connect_url. */
SCENARIO(urls) {
    int l = XS_PASS(xs_listen_url("ws://127.0.0.1:0", 16));
    XS_PASS(set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS));
    CHECK(get_int_opt(&XS, l, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET);
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 1);
    char url[160];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat?room=1", bound_port(&XS, l));
    int c = XS_PASS(xs_dial(url));
    guard_timeouts(c);
    CHECK(get_int_opt(&XS, c, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET);
    char buf[16];
    CHECK(xs_send(c, "via url", 7, XS_MSG_TEXT) == 7);
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 7 && memcmp(buf, "via url", 7) == 0);
    CHECK(ws_get_int(c, XS_WS_RECV_TEXT) == 1);
    xs_close(c);
    pthread_join(s.th, NULL);
    check_served(&s.a[0], 1, 1000);
    CHECKF(strcmp(s.a[0].path, "/chat?room=1") == 0, "XS_WS_REQUEST_PATH '%s'", s.a[0].path);
    xs_close(l);

    struct sockaddr_un ua;
    unix_addr(0, &ua);
    snprintf(url, sizeof url, "wsraw+unix://%s", ua.sun_path);
    l = XS_PASS(xs_listen_url(url, 16));
    XS_PASS(set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS));
    start_server(&s, l, SOCK_SEQPACKET, 1);
    c = XS_PASS(xs_dial(url));
    guard_timeouts(c);
    CHECK(xs_send(c, "unix", 4, 0) == 4);
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 4 && memcmp(buf, "unix", 4) == 0);
    CHECK(ws_get_int(c, XS_WS_RECV_TEXT) == 0);
    xs_close(c);
    pthread_join(s.th, NULL);
    check_served(&s.a[0], 1, 1000);
    xs_close(l);

    l = XS_PASS(xs_socket_url("wss://127.0.0.1:0"));
    XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path("server.pem")));
    XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path("server.key")));
    XS_PASS(xs_bind_url(l, "wss://127.0.0.1:0"));
    XS_PASS(xs_listen(l, 4));
    XS_PASS(set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS));
    start_server(&s, l, SOCK_SEQPACKET, 1);
    snprintf(url, sizeof url, "wss://localhost:%d/secure", bound_port(&XS, l));
    c = XS_PASS(xs_socket_url(url));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    guard_timeouts(c);
    XS_PASS(xs_connect_url(c, url));
    CHECK(xs_send(c, "tls", 3, 0) == 3);
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 3 && memcmp(buf, "tls", 3) == 0);
    xs_close(c);
    pthread_join(s.th, NULL);
    check_served(&s.a[0], 1, 1000);
    CHECKF(strcmp(s.a[0].path, "/secure") == 0, "XS_WS_REQUEST_PATH '%s'", s.a[0].path);
    xs_close(l);
}

/* ----- SOCK_SEQPACKET truncation ----- */

/* A short buffer gets the start of the message, MSG_TRUNC in msg_flags and the
 * truncated count (the full length with the MSG_TRUNC flag); the rest of that message
 * is gone: the next receive gets the next message. */
static void truncation(int proto) {
    int c, s;
    if (ws_pair(AF_INET, SOCK_SEQPACKET, proto, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(xs_send(c, "0123456789", 10, 0) == 10);
    CHECK(xs_send(c, "abcdefghij", 10, XS_MSG_TEXT) == 10);
    CHECK(xs_send(c, "next", 4, 0) == 4);
    unsigned char *big = malloc(65536);
    payload(big, 65536, 0);
    CHECK(xs_send(c, big, 65536, 0) == 65536);
    CHECK(xs_send(c, "last", 4, 0) == 4);

    char buf[16];
    memset(buf, 0, sizeof buf);
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = xs_recvmsg(s, &m, 0);
    CHECKF(n == 4, "recvmsg into 4 bytes: %zd", n);
    CHECK(memcmp(buf, "0123", 4) == 0 && buf[4] == 0);
    CHECKF(m.msg_flags & MSG_TRUNC, "msg_flags %#x", m.msg_flags);
    CHECKF(!(m.msg_flags & XS_MSG_TEXT), "msg_flags %#x", m.msg_flags);

    memset(buf, 0, sizeof buf);
    n = xs_recv(s, buf, 4, MSG_TRUNC);
    CHECKF(n == 10, "recv(4, MSG_TRUNC) of 10 bytes: %zd", n);
    CHECK(memcmp(buf, "abcd", 4) == 0 && buf[4] == 0);
    CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 1);

    memset(buf, 0, sizeof buf);
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
    iov.iov_len = sizeof buf;
    n = xs_recvmsg(s, &m, 0);
    CHECKF(n == 4 && memcmp(buf, "next", 4) == 0, "the next message: %zd '%.*s'", n,
           n > 0 ? (int)n : 0, buf);
    CHECKF(!(m.msg_flags & MSG_TRUNC) && (m.msg_flags & MSG_EOR), "msg_flags %#x", m.msg_flags);

    /* A long message with MSG_TRUNC in both places. */
    iov.iov_len = 100;
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
    char hundred[100];
    iov.iov_base = hundred;
    n = xs_recvmsg(s, &m, MSG_TRUNC);
    CHECKF(n == 65536, "recvmsg(100, MSG_TRUNC) of 65536 bytes: %zd", n);
    CHECKF(m.msg_flags & MSG_TRUNC, "msg_flags %#x", m.msg_flags);
    CHECK(memcmp(hundred, big, 100) == 0);
    memset(buf, 0, sizeof buf);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "last", 4) == 0);
    /* Nothing is left over. */
    XS_FAIL(xs_recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    xs_close(c);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    xs_close(s);
    free(big);
}

SCENARIO(seqpacket_truncation_raw) { truncation(XS_PROTO_WS_RAW); }
SCENARIO(seqpacket_truncation_full) { truncation(XS_PROTO_WS); }

/* ----- SOCK_STREAM: bytes as they come, never across a message end ----- */

struct sender {
    int sid;
    const unsigned char *data;
    size_t n;
    long rc1, rc2;
    int err;
    atomic_int done;
};

/* Sends the big message, then "tail" as text. */
static void *send_big_then_tail(void *arg) {
    struct sender *x = arg;
    x->rc1 = xs_send(x->sid, x->data, x->n, 0);
    x->rc2 = xs_send(x->sid, "tail", 4, XS_MSG_TEXT);
    x->err = errno;
    atomic_store(&x->done, 1);
    return NULL;
}

static void stream_mode(int family, int proto) {
    int c, s;
    if (ws_pair(family, SOCK_STREAM, proto, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(get_int_opt(&XS, s, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
    unsigned char *out = malloc(MIB), *in = malloc(2 * MIB);
    payload(out, MIB, 0);
    /* Round 0: a small buffer, so the message comes in many pieces. Round 1: a buffer
     * bigger than both messages, after the sender is done when the kernel buffers can
     * hold it all (TCP; over Unix the sender waits for us, so we wait only briefly):
     * the receive still stops at the end of the first message. */
    for (int round = 0; round < 2; round++) {
        struct sender x = {.sid = c, .data = out, .n = MIB};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, send_big_then_tail, &x) == 0);
        if (round == 1) wait_flag(&x.done, SCALE(300, 1000));
        size_t chunk = round == 0 ? 10000 : 2 * MIB, off = 0;
        int pieces = 0, eor = 0, text_seen = 0;
        while (!eor && off < MIB + 4) {
            struct iovec iov = {in + off, chunk};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
            ssize_t n = xs_recvmsg(s, &m, 0);
            CHECKF(n > 0, "round %d: piece %d after %zu bytes: %zd (%s)", round, pieces, off, n,
                   n < 0 ? strerror(errno) : "end");
            if (n <= 0) break;
            CHECKF(!(m.msg_flags & MSG_TRUNC), "round %d: msg_flags %#x", round, m.msg_flags);
            text_seen |= m.msg_flags & XS_MSG_TEXT;
            off += (size_t)n;
            pieces++;
            eor = m.msg_flags & MSG_EOR;
        }
        CHECKF(eor && off == MIB, "round %d: %d pieces, %zu bytes up to MSG_EOR (%s), expected %d",
               round, pieces, off, eor ? "seen" : "not seen", MIB);
        CHECK(off < MIB || memcmp(in, out, MIB) == 0);
        CHECK(!text_seen);
        CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 0);
        if (round == 0) CHECKF(pieces > 1, "the 1 MiB message came in %d piece(s)", pieces);
        /* The next message, whole and text. */
        char buf[16] = {0};
        struct iovec iov = {buf, sizeof buf};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = xs_recvmsg(s, &m, 0);
        CHECKF(n == 4 && memcmp(buf, "tail", 4) == 0, "round %d: after the big message: %zd '%.*s'",
               round, n, n > 0 ? (int)n : 0, buf);
        CHECKF((m.msg_flags & (MSG_EOR | XS_MSG_TEXT)) == (MSG_EOR | XS_MSG_TEXT),
               "round %d: msg_flags %#x", round, m.msg_flags);
        CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 1);
        pthread_join(th, NULL);
        CHECKF(x.rc1 == MIB && x.rc2 == 4, "sends returned %ld, %ld (%s)", x.rc1, x.rc2,
               strerror(x.err));
    }
    /* Plain xs_recv: a piece of a message, then the end. */
    CHECK(xs_send(c, "0123456789", 10, 0) == 10);
    char buf[16] = {0};
    CHECK(xs_recv(s, buf, 4, 0) == 4 && memcmp(buf, "0123", 4) == 0);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 6 && memcmp(buf, "456789", 6) == 0);
    xs_close(c);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    CHECK(ws_get_int(s, XS_WS_PEER_CLOSE_CODE) == 1000);
    xs_close(s);
    free(out);
    free(in);
}

SCENARIO(stream_mode_raw_tcp4) { stream_mode(AF_INET, XS_PROTO_WS_RAW); }
SCENARIO(stream_mode_full_unix) { stream_mode(AF_UNIX, XS_PROTO_WS); }

/* ----- XS_WS_FRAGMENT_SIZE: the receiver still gets whole messages ----- */

static void fragment_setup(int l, int c) {
    XS_PASS(ws_int(c, XS_WS_FRAGMENT_SIZE, 1000));
    XS_PASS(ws_int(l, XS_WS_FRAGMENT_SIZE, 7)); /* accepted sockets inherit it */
}

SCENARIO(fragmented_messages) {
    int c, s;
    if (ws_pair(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &c, &s, fragment_setup) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(ws_get_int(c, XS_WS_FRAGMENT_SIZE) == 1000);
    CHECK(ws_get_int(s, XS_WS_FRAGMENT_SIZE) == 7);
    static const size_t sizes[] = {0, 1, 999, 1000, 1001, 3001, 65543};
    unsigned char *out = malloc(65600), *in = malloc(65600);
    for (int text = 0; text < 2; text++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            payload(out, n, text);
            CHECK(xs_send(c, out, n, text ? XS_MSG_TEXT : 0) == (ssize_t)n);
            struct iovec iov = {in, n + 8};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
            ssize_t got = xs_recvmsg(s, &m, 0);
            CHECKF(got == (ssize_t)n && memcmp(in, out, n) == 0,
                   "fragmented %s message of %zu bytes: got %zd (%s)", text ? "text" : "binary",
                   n, got, got < 0 ? xs_last_error() : "");
            CHECKF((m.msg_flags & (MSG_EOR | MSG_TRUNC | XS_MSG_TEXT)) ==
                       (MSG_EOR | (text ? XS_MSG_TEXT : 0)),
                   "%zu bytes: msg_flags %#x", n, m.msg_flags);
            /* The server's echo comes in frames of 7 bytes. */
            CHECK(xs_send(s, in, n, m.msg_flags & XS_MSG_TEXT) == (ssize_t)n);
            memset(in, 0, n);
            got = xs_recv(c, in, n + 8, 0);
            CHECKF(got == (ssize_t)n && memcmp(in, out, n) == 0,
                   "echo in 7-byte frames of %zu bytes: got %zd", n, got);
            CHECK(ws_get_int(c, XS_WS_RECV_TEXT) == text);
        }
    }
    /* A fragmented message truncated: the rest of all its fragments is dropped. */
    payload(out, 3001, 1);
    CHECK(xs_send(c, out, 3001, XS_MSG_TEXT) == 3001);
    CHECK(xs_send(c, "after", 5, 0) == 5);
    CHECK(xs_recv(s, in, 10, MSG_TRUNC) == 3001 && memcmp(in, out, 10) == 0);
    CHECK(xs_recv(s, in, 100, 0) == 5 && memcmp(in, "after", 5) == 0);
    xs_close(c);
    CHECK(xs_recv(s, in, 100, 0) == 0);
    xs_close(s);
    free(out);
    free(in);
}

/* ----- MSG_PEEK ----- */

static void peek(int type) {
    int c, s;
    if (ws_pair(AF_INET, type, XS_PROTO_WS_RAW, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(xs_send(c, "peekaboo", 8, XS_MSG_TEXT) == 8);
    CHECK(xs_send(c, "second", 6, 0) == 6);
    char buf[32] = {0};
    ssize_t n = xs_recv(s, buf, 4, MSG_PEEK);
    CHECKF(n == 4 && memcmp(buf, "peek", 4) == 0, "peek of 4: %zd", n);
    CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 1);
    memset(buf, 0, sizeof buf);
    n = xs_recv(s, buf, sizeof buf, MSG_PEEK);
    CHECKF(n == 8 && memcmp(buf, "peekaboo", 8) == 0, "second peek: %zd '%.*s'", n,
           n > 0 ? (int)n : 0, buf);
    memset(buf, 0, sizeof buf);
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    n = xs_recvmsg(s, &m, 0);
    CHECKF(n == 8 && memcmp(buf, "peekaboo", 8) == 0, "recv after peek: %zd '%.*s'", n,
           n > 0 ? (int)n : 0, buf);
    CHECKF((m.msg_flags & (MSG_EOR | XS_MSG_TEXT)) == (MSG_EOR | XS_MSG_TEXT), "msg_flags %#x",
           m.msg_flags);
    memset(buf, 0, sizeof buf);
    n = xs_recv(s, buf, sizeof buf, MSG_PEEK);
    CHECKF(n == 6 && memcmp(buf, "second", 6) == 0, "peek of the next: %zd", n);
    CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 0);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 6 && memcmp(buf, "second", 6) == 0);
    XS_FAIL(xs_recv(s, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK), EAGAIN);
    xs_close(c);
    xs_close(s);
}

SCENARIO(peek_seqpacket) { peek(SOCK_SEQPACKET); }
SCENARIO(peek_stream) { peek(SOCK_STREAM); }

/* ----- sendmsg gathers, recvmsg scatters ----- */

SCENARIO(iovecs) {
    int c, s;
    if (ws_pair(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    struct iovec out[3] = {{"one-", 4}, {"two-", 4}, {"three", 5}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 3};
    CHECK(xs_sendmsg(c, &m, 0) == 13);
    CHECK(xs_sendmsg(c, &m, XS_MSG_TEXT) == 13);
    CHECK(xs_send(c, "end", 3, 0) == 3);
    char a[5], b[20];
    for (int text = 0; text < 2; text++) {
        memset(a, 0, sizeof a), memset(b, 0, sizeof b);
        struct iovec in[2] = {{a, sizeof a}, {b, sizeof b}};
        struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};
        ssize_t n = xs_recvmsg(s, &r, 0);
        CHECKF(n == 13, "one message of 13 bytes from 3 iovecs: %zd", n);
        CHECK(memcmp(a, "one-t", 5) == 0 && memcmp(b, "wo-three", 8) == 0 && b[8] == 0);
        CHECKF((r.msg_flags & (MSG_EOR | MSG_TRUNC | XS_MSG_TEXT)) ==
                   (MSG_EOR | (text ? XS_MSG_TEXT : 0)),
               "msg_flags %#x", r.msg_flags);
    }
    /* Scattered and truncated. */
    CHECK(xs_sendmsg(c, &m, 0) == 13);
    struct iovec in[2] = {{a, 2}, {b, 2}};
    struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};
    ssize_t e = xs_recvmsg(s, &r, 0); /* "end" came before */
    CHECKF(e == 3 && memcmp(a, "en", 2) == 0 && b[0] == 'd', "scattered 3 bytes: %zd", e);
    r = (struct msghdr){.msg_iov = in, .msg_iovlen = 2};
    ssize_t n = xs_recvmsg(s, &r, 0);
    CHECKF(n == 4 && memcmp(a, "on", 2) == 0 && memcmp(b, "e-", 2) == 0 &&
               (r.msg_flags & MSG_TRUNC),
           "13 bytes into 2+2: %zd, msg_flags %#x", n, r.msg_flags);
    xs_close(c);
    xs_close(s);
}

/* ----- errors on send ----- */

/* Invalid UTF-8 as text is EINVAL and sends nothing; after the peer's close, sending
 * is EPIPE. */
SCENARIO(send_errors) {
    int c, s;
    if (ws_pair(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    XS_FAIL(xs_send(c, "\xff\xfe", 2, XS_MSG_TEXT), EINVAL);
    XS_FAIL(xs_send(c, "ok\xc3", 3, XS_MSG_TEXT), EINVAL);   /* cut inside a character */
    XS_FAIL(xs_send(c, "\xed\xa0\x80", 3, XS_MSG_TEXT), EINVAL); /* a surrogate */
    struct iovec bad[2] = {{"caf", 3}, {"\xc3", 1}};
    struct msghdr m = {.msg_iov = bad, .msg_iovlen = 2};
    XS_FAIL(xs_sendmsg(c, &m, XS_MSG_TEXT), EINVAL);
    /* Split across iovecs, valid UTF-8 is fine. */
    struct iovec good[2] = {{"caf\xc3", 4}, {"\xa9", 1}};
    m = (struct msghdr){.msg_iov = good, .msg_iovlen = 2};
    CHECK(xs_sendmsg(c, &m, XS_MSG_TEXT) == 5);
    CHECK(xs_send(c, "\xff\xfe", 2, 0) == 2); /* the same bytes as binary */
    char buf[16];
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 5 && memcmp(buf, "caf\xc3\xa9", 5) == 0);
    CHECK(ws_get_int(s, XS_WS_RECV_TEXT) == 1);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 2 && ws_get_int(s, XS_WS_RECV_TEXT) == 0);
    XS_PASS(xs_close(s));
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 0);
    CHECK(ws_get_int(c, XS_WS_PEER_CLOSE_CODE) == 1000);
    XS_FAIL(xs_send(c, "late", 4, 0), EPIPE);
    XS_FAIL(xs_send(c, "late", 4, MSG_DONTWAIT), EPIPE);
    xs_close(c);
}

/* ----- the close handshake ----- */

SCENARIO(close_codes) {
    int c, s;
    char buf[16], reason[128];
    /* xs_close: the server reads what was sent before, then 0, code 1000, no reason. */
    if (ws_pair(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(ws_get_int(s, XS_WS_PEER_CLOSE_CODE) == 0); /* open */
    CHECK(xs_send(c, "last", 4, 0) == 4);
    XS_PASS(xs_close(c));
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "last", 4) == 0);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0); /* and stays so */
    int code = ws_get_int(s, XS_WS_PEER_CLOSE_CODE);
    CHECKF(code == 1000, "XS_WS_PEER_CLOSE_CODE %d", code);
    CHECK(ws_get_text(s, XS_WS_PEER_CLOSE_REASON, reason, sizeof reason) == 0);
    xs_close(s);

    /* XS_WS_CLOSE_CODE 4001 and XS_WS_CLOSE_REASON "bye". */
    if (ws_pair(AF_INET6, SOCK_SEQPACKET, XS_PROTO_WS_RAW, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    XS_PASS(ws_int(c, XS_WS_CLOSE_CODE, 4001));
    XS_PASS(ws_text(c, XS_WS_CLOSE_REASON, "bye"));
    CHECK(ws_get_int(c, XS_WS_CLOSE_CODE) == 4001);
    CHECK(ws_get_text(c, XS_WS_CLOSE_REASON, reason, sizeof reason) == 3 &&
          strcmp(reason, "bye") == 0);
    XS_PASS(xs_close(c));
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    code = ws_get_int(s, XS_WS_PEER_CLOSE_CODE);
    ws_get_text(s, XS_WS_PEER_CLOSE_REASON, reason, sizeof reason);
    CHECKF(code == 4001 && strcmp(reason, "bye") == 0, "peer close %d '%s'", code, reason);
    xs_close(s);

    /* xs_shutdown(SHUT_WR): the other side reads 0; it closes; the first side then
     * reads 0 too (and can no longer send). */
    if (ws_pair(AF_UNIX, SOCK_SEQPACKET, XS_PROTO_WS, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    CHECK(xs_send(c, "before", 6, 0) == 6);
    XS_PASS(xs_shutdown(c, SHUT_WR));
    XS_FAIL(xs_send(c, "after", 5, 0), EPIPE);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 6);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    CHECK(ws_get_int(s, XS_WS_PEER_CLOSE_CODE) == 1000);
    XS_PASS(xs_close(s));
    ssize_t n = xs_recv(c, buf, sizeof buf, 0);
    CHECKF(n == 0, "recv after the peer's close answer: %zd (%s)", n, n < 0 ? strerror(errno) : "");
    CHECK(ws_get_int(c, XS_WS_PEER_CLOSE_CODE) == 1000);
    xs_close(c);
}

/* A close from another thread wakes a receive blocked on a WebSocket socket (EBADF),
 * and the peer gets the close frame. */
static void close_wakes(int type, int proto) {
    int c, s;
    if (ws_pair(AF_INET, type, proto, &c, &s, NULL) < 0) {
        CHECK(!"connected pair");
        return;
    }
    XS_PASS(set_timeout_ms(&XS, c, SO_RCVTIMEO, 4000 * slow_factor()));
    struct closer cl = {c, SCALE(100, 500)};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, close_later, &cl) == 0);
    char buf[16];
    long t0 = now_ms();
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EBADF);
    long took = now_ms() - t0;
    CHECKF(took >= cl.after_ms - 20 && took < cl.after_ms + 1000 * slow_factor(),
           "woken after %ld ms (closed after %ld)", took, cl.after_ms);
    pthread_join(th, NULL);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    CHECK(ws_get_int(s, XS_WS_PEER_CLOSE_CODE) == 1000);
    xs_close(s);
}

SCENARIO(close_wakes_recv_full) { close_wakes(SOCK_SEQPACKET, XS_PROTO_WS); }
SCENARIO(close_wakes_recv_raw_stream) { close_wakes(SOCK_STREAM, XS_PROTO_WS_RAW); }

/* ----- a connection lost without a close frame ----- */

/* A kernel "server" (Raw-WS needs no handshake) sends one unmasked frame and closes:
 * the message is delivered, then ECONNRESET and peer close code 1006. */
static void lost(int type) {
    struct sockaddr_storage addr;
    socklen_t len;
    int k = kernel_listener(&addr, &len);
    int c = ws_client(AF_INET, type, XS_PROTO_WS_RAW);
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    int ks = XS_PASS(accept(k, NULL, NULL));
    unsigned char f[16];
    send_all(ks, f, frame(f, 1, 0x2, "hi", 2, 0));
    close(ks);
    char buf[16];
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 2 && memcmp(buf, "hi", 2) == 0);
    CHECK(ws_get_int(c, XS_WS_PEER_CLOSE_CODE) == 0);
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), ECONNRESET);
    int code = ws_get_int(c, XS_WS_PEER_CLOSE_CODE);
    CHECKF(code == 1006, "XS_WS_PEER_CLOSE_CODE %d", code);
    xs_close(c);

    /* The same with nothing sent at all. */
    c = ws_client(AF_INET, type, XS_PROTO_WS_RAW);
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    ks = XS_PASS(accept(k, NULL, NULL));
    close(ks);
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), ECONNRESET);
    code = ws_get_int(c, XS_WS_PEER_CLOSE_CODE);
    CHECKF(code == 1006, "XS_WS_PEER_CLOSE_CODE %d", code);
    xs_close(c);
    close(k);
}

SCENARIO(connection_lost_seqpacket) { lost(SOCK_SEQPACKET); }
SCENARIO(connection_lost_stream) { lost(SOCK_STREAM); }

/* ----- a kernel socket as the client of an xsocket Raw-WS server ----- */

struct raw_server {
    int l;
    pthread_t th;
    int sid;
    long rc[2];
    int err[2];
    char error[2][256];
    int peer_code;
    char peer_reason[128];
    char got[64];
    int got_flags;
};

/* Accepts, then receives twice, recording results. */
static void *raw_serve(void *arg) {
    struct raw_server *r = arg;
    r->sid = xs_accept(r->l, NULL, NULL);
    if (r->sid < 0) {
        r->rc[0] = -100;
        r->err[0] = errno;
        copy_error(r->error[0], sizeof r->error[0]);
        return NULL;
    }
    guard_timeouts(r->sid);
    for (int i = 0; i < 2; i++) {
        struct iovec iov = {r->got, sizeof r->got - 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        r->rc[i] = xs_recvmsg(r->sid, &m, 0);
        r->err[i] = r->rc[i] < 0 ? errno : 0;
        if (r->rc[i] < 0) copy_error(r->error[i], sizeof r->error[i]);
        if (i == 0) r->got_flags = m.msg_flags;
        if (r->rc[i] > 0 && i == 0) r->got[r->rc[i]] = 0;
        if (r->rc[i] <= 0) break;
    }
    r->peer_code = ws_get_int(r->sid, XS_WS_PEER_CLOSE_CODE);
    ws_get_text(r->sid, XS_WS_PEER_CLOSE_REASON, r->peer_reason, sizeof r->peer_reason);
    return NULL;
}

/* Starts an xsocket Raw-WS SOCK_SEQPACKET server thread (XS_WS_MAX_MESSAGE set when
 * max_message is not 0) and connects a kernel client to it. */
static int raw_server_with_kernel_client(struct raw_server *r, int max_message) {
    struct sockaddr_storage addr;
    socklen_t len;
    memset(r, 0, sizeof *r);
    r->l = ws_listener(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS_RAW, &addr, &len);
    if (max_message) XS_PASS(ws_int(r->l, XS_WS_MAX_MESSAGE, max_message));
    if (pthread_create(&r->th, NULL, raw_serve, r) != 0) exit(2);
    return kernel_client(&addr, len);
}

/* What the kernel client reads after a protocol error: one close frame (unmasked)
 * with `code`, then the end of the stream. */
static void expect_close_frame(int k, int want_code, const char *what) {
    unsigned char buf[512];
    int eof;
    size_t n = read_to_end(k, buf, sizeof buf, &eof);
    int fin = 0, opcode = -1;
    const unsigned char *data = NULL;
    size_t dlen = 0;
    size_t flen = unframe(buf, n, &fin, &opcode, &data, &dlen);
    CHECKF(flen > 0 && fin && opcode == 0x8 && dlen >= 2,
           "%s: read %zu bytes (first %02x %02x), not an unmasked close frame", what, n,
           n > 0 ? buf[0] : 0, n > 1 ? buf[1] : 0);
    if (flen > 0 && opcode == 0x8 && dlen >= 2) {
        int code = data[0] << 8 | data[1];
        CHECKF(code == want_code, "%s: close code %d, expected %d (reason '%.*s')", what, code,
               want_code, (int)dlen - 2, (const char *)data + 2);
    }
    CHECKF(flen == n, "%s: %zu bytes after the close frame", what, n - flen);
    CHECKF(eof, "%s: no end of stream after the close frame", what);
}

static void protocol_error(const unsigned char *bytes, size_t n, int max_message, int want_code,
                           const char *want_words, const char *what) {
    struct raw_server r;
    int k = raw_server_with_kernel_client(&r, max_message);
    send_all(k, bytes, n);
    expect_close_frame(k, want_code, what);
    pthread_join(r.th, NULL);
    CHECKF(r.rc[0] == -1 && r.err[0] == EPROTO, "%s: server recv %ld, %s (%s)", what, r.rc[0],
           strerror(r.err[0]), r.error[0]);
    if (want_words)
        CHECKF(strstr(r.error[0], want_words) != NULL, "%s: xs_last_error '%s' lacks '%s'", what,
               r.error[0], want_words);
    else
        CHECKF(r.error[0][0] != 0, "%s: xs_last_error is empty", what);
    close(k);
    if (r.sid >= 0) {
        char buf[8];
        XS_FAIL(xs_recv(r.sid, buf, sizeof buf, 0), EPROTO); /* the failure stays */
        XS_FAIL(xs_send(r.sid, "x", 1, 0), EPROTO);
        xs_close(r.sid);
    }
    xs_close(r.l);
}

SCENARIO(protocol_errors) {
    unsigned char f[512];
    /* An unmasked frame from a client: 1002, "not masked". */
    protocol_error(f, frame(f, 1, 0x2, "\xff", 1, 0), 0, 1002, "not masked", "unmasked frame");
    /* Text that is not UTF-8: 1007. */
    protocol_error(f, frame(f, 1, 0x1, "ok\xff", 3, 1), 0, 1007, NULL, "invalid UTF-8 text");
    /* A message over XS_WS_MAX_MESSAGE (100): 1009. */
    unsigned char big[200];
    memset(big, 'x', sizeof big);
    protocol_error(f, frame(f, 1, 0x2, big, sizeof big, 1), 100, 1009, NULL, "message too big");
    /* A reserved opcode: 1002. */
    protocol_error(f, frame(f, 1, 0x3, "r", 1, 1), 0, 1002, NULL, "reserved opcode");
    /* A continuation with no message started: 1002. */
    protocol_error(f, frame(f, 1, 0x0, "c", 1, 1), 0, 1002, NULL, "stray continuation");
}

/* Frames made by hand: a text message in fragments with a ping between them (answered
 * with a pong of the same payload), and a close with code and reason (echoed). */
SCENARIO(handmade_frames) {
    struct raw_server r;
    int k = raw_server_with_kernel_client(&r, 0);
    unsigned char f[256];
    size_t n = frame(f, 0, 0x1, "h\xc3", 2, 1); /* a character split between fragments */
    n += frame(f + n, 1, 0x9, "p1", 2, 1);
    n += frame(f + n, 0, 0x0, "\xbcllo", 4, 1);
    n += frame(f + n, 1, 0x0, "", 0, 1); /* an empty final fragment */
    send_all(k, f, n);
    /* The pong. */
    unsigned char buf[64];
    size_t got = 0, flen = 0;
    int fin = 0, opcode = -1;
    const unsigned char *data = NULL;
    size_t dlen = 0;
    long t0 = now_ms();
    while (!flen && got < sizeof buf && now_ms() - t0 < GUARD_MS) {
        ssize_t m = recv(k, buf + got, sizeof buf - got, 0);
        if (m <= 0) break;
        got += (size_t)m;
        flen = unframe(buf, got, &fin, &opcode, &data, &dlen);
    }
    CHECKF(flen && opcode == 0xA && dlen == 2 && memcmp(data, "p1", 2) == 0,
           "no pong 'p1' (read %zu bytes, opcode %d)", got, opcode);
    n = frame(f, 1, 0x8, "\x0f\xa2k", 3, 1); /* close 4002 "k" */
    send_all(k, f, n);
    pthread_join(r.th, NULL);
    CHECKF(r.rc[0] == 6 && strcmp(r.got, "h\xc3\xbcllo") == 0, "message: %ld '%s' (%s)", r.rc[0],
           r.got, r.error[0]);
    CHECKF((r.got_flags & (MSG_EOR | XS_MSG_TEXT)) == (MSG_EOR | XS_MSG_TEXT), "msg_flags %#x",
           r.got_flags);
    CHECKF(r.rc[1] == 0, "after the close: %ld (%s)", r.rc[1], r.error[1]);
    CHECKF(r.peer_code == 4002 && strcmp(r.peer_reason, "k") == 0, "peer close %d '%s'",
           r.peer_code, r.peer_reason);
    /* The close is echoed, then the server ends the stream (once the sid is closed). */
    if (r.sid >= 0) xs_close(r.sid);
    expect_close_frame(k, 4002, "close echo");
    close(k);
    xs_close(r.l);
}

/* SOCK_STREAM with frames made by hand: a text message in fragments, with a ping
 * between them and an empty final fragment (as some peers send when they stream a
 * message of unknown length), then a binary message. The end of the first message
 * must show (MSG_EOR, on its last bytes or on an empty piece of xs_recvmsg) before
 * any byte of the next one. */
SCENARIO(stream_mode_empty_final_fragment) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(AF_INET, SOCK_STREAM, XS_PROTO_WS_RAW, &addr, &len);
    int k = kernel_client(&addr, len);
    int s = XS_PASS(xs_accept(l, NULL, NULL)); /* Raw-WS: no handshake to wait for */
    guard_timeouts(s);
    /* All the bytes are sent at once: a receive that waits long has missed the end. */
    XS_PASS(set_timeout_ms(&XS, s, SO_RCVTIMEO, SCALE(1000, 3000)));
    unsigned char f[256];
    size_t n = frame(f, 0, 0x1, "hel", 3, 1);
    n += frame(f + n, 1, 0x9, "p2", 2, 1);
    n += frame(f + n, 0, 0x0, "lo", 2, 1);
    n += frame(f + n, 1, 0x0, "", 0, 1);
    n += frame(f + n, 1, 0x2, "x", 1, 1);
    send_all(k, f, n);
    unsigned char buf[64] = {0};
    int flags, pieces;
    long got = recv_message(s, SOCK_STREAM, buf, sizeof buf - 1, &flags, &pieces);
    CHECKF(got == 5 && memcmp(buf, "hello", 5) == 0,
           "bytes up to MSG_EOR: %ld '%.*s' in %d pieces (%s)", got, got > 0 ? (int)got : 0, buf,
           pieces, got < 0 ? strerror(errno) : "");
    CHECKF((flags & (MSG_EOR | XS_MSG_TEXT)) == (MSG_EOR | XS_MSG_TEXT), "msg_flags %#x", flags);
    memset(buf, 0, sizeof buf);
    got = recv_message(s, SOCK_STREAM, buf, sizeof buf - 1, &flags, &pieces);
    CHECKF(got == 1 && buf[0] == 'x' && (flags & MSG_EOR) && !(flags & XS_MSG_TEXT),
           "the next message: %ld '%s', msg_flags %#x", got, buf, flags);
    /* The ping between the fragments was answered. */
    unsigned char in[64];
    CHECK(wait_for(&KERNEL, k, POLLIN, GUARD_MS) & POLLIN);
    ssize_t r = recv(k, in, sizeof in, MSG_DONTWAIT);
    int fin = 0, opcode = -1;
    const unsigned char *data = NULL;
    size_t dlen = 0;
    CHECKF(r > 0 && unframe(in, (size_t)r, &fin, &opcode, &data, &dlen) && opcode == 0xA &&
               dlen == 2 && memcmp(data, "p2", 2) == 0,
           "no pong 'p2' (read %zd bytes)", r);
    close(k);
    xs_close(s);
    xs_close(l);
}

/* ----- Full-WS handshake refusals and choices ----- */

/* A plain HTTP request without Upgrade gets "HTTP/1.1 426" and the end of the
 * stream; that xs_accept fails with ECONNABORTED and the next one serves a good
 * client. */
SCENARIO(refuse_non_upgrade) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &addr, &len);
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 2);
    int k = kernel_client(&addr, len);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(k, req, strlen(req));
    char answer[1024];
    int eof;
    size_t n = read_to_end(k, (unsigned char *)answer, sizeof answer - 1, &eof);
    answer[n] = 0;
    CHECKF(strncmp(answer, "HTTP/1.1 426", 12) == 0, "answer: '%.60s'", answer);
    CHECKF(strcasestr(answer, "Sec-WebSocket-Version: 13\r\n") != NULL, "answer: '%s'", answer);
    CHECK(eof);
    close(k);
    int c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    char buf[8];
    CHECK(xs_send(c, "good", 4, 0) == 4 && xs_recv(c, buf, sizeof buf, 0) == 4);
    xs_close(c);
    pthread_join(s.th, NULL);
    CHECKF(s.a[0].rc == -1 && s.a[0].err == ECONNABORTED, "first accept: %d, %s (%s)", s.a[0].rc,
           strerror(s.a[0].err), s.a[0].error);
    check_served(&s.a[1], 1, 1000);
    xs_close(l);
}

/* XS_WS_PATH on the listener: another path is refused (client: ECONNREFUSED, "404");
 * the path with a query is accepted and read back whole. */
SCENARIO(path_check) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &addr, &len);
    XS_PASS(ws_text(l, XS_WS_PATH, "/echo"));
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 2);
    int c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
    XS_PASS(ws_text(c, XS_WS_PATH, "/other"));
    XS_FAIL(xs_connect(c, (struct sockaddr *)&addr, len), ECONNREFUSED);
    CHECKF(strstr(xs_last_error(), "404") != NULL, "xs_last_error '%s'", xs_last_error());
    xs_close(c);
    c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
    XS_PASS(ws_text(c, XS_WS_PATH, "/echo?x=1"));
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    char buf[8];
    CHECK(xs_send(c, "p", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
    xs_close(c);
    pthread_join(s.th, NULL);
    CHECKF(s.a[0].rc == -1 && s.a[0].err == ECONNABORTED, "refused accept: %d, %s (%s)",
           s.a[0].rc, strerror(s.a[0].err), s.a[0].error);
    check_served(&s.a[1], 1, 1000);
    CHECKF(strcmp(s.a[1].path, "/echo?x=1") == 0, "XS_WS_REQUEST_PATH '%s'", s.a[1].path);
    xs_close(l);
}

/* Subprotocols: the server speaks "b,a", the client offers "a,c": both read "a"; a
 * client offering only "c" connects with none. */
SCENARIO(subprotocols) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &addr, &len);
    XS_PASS(ws_text(l, XS_WS_SUBPROTOCOLS, "b,a"));
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 2);
    const char *offers[2] = {"a,c", "c"}, *want[2] = {"a", ""};
    for (int i = 0; i < 2; i++) {
        int c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
        XS_PASS(ws_text(c, XS_WS_SUBPROTOCOLS, offers[i]));
        XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
        char got[64];
        CHECK(ws_get_text(c, XS_WS_SUBPROTOCOL, got, sizeof got) >= 0);
        CHECKF(strcmp(got, want[i]) == 0, "offer '%s': client reads '%s'", offers[i], got);
        char buf[8];
        CHECK(xs_send(c, "s", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
        xs_close(c);
    }
    pthread_join(s.th, NULL);
    for (int i = 0; i < 2; i++) {
        check_served(&s.a[i], 1, 1000);
        CHECKF(strcmp(s.a[i].protocol, want[i]) == 0, "offer '%s': server reads '%s'", offers[i],
               s.a[i].protocol);
    }
    xs_close(l);
}

/* XS_WS_ALLOWED_ORIGINS "http://ok": Origin "http://bad" is refused (403), "http://ok"
 * and no Origin at all are served; the server reads XS_WS_REQUEST_ORIGIN and _PATH. */
SCENARIO(origins) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS, &addr, &len);
    XS_PASS(ws_text(l, XS_WS_ALLOWED_ORIGINS, "http://ok"));
    struct server s;
    start_server(&s, l, SOCK_SEQPACKET, 3);
    int c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
    XS_PASS(ws_text(c, XS_WS_ORIGIN, "http://bad"));
    XS_FAIL(xs_connect(c, (struct sockaddr *)&addr, len), ECONNREFUSED);
    CHECKF(strstr(xs_last_error(), "403") != NULL, "xs_last_error '%s'", xs_last_error());
    xs_close(c);
    for (int i = 0; i < 2; i++) {
        c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS);
        if (i == 0) XS_PASS(ws_text(c, XS_WS_ORIGIN, "http://ok"));
        XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
        char buf[8];
        CHECK(xs_send(c, "o", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
        xs_close(c);
    }
    pthread_join(s.th, NULL);
    CHECKF(s.a[0].rc == -1 && s.a[0].err == ECONNABORTED, "refused accept: %d, %s (%s)",
           s.a[0].rc, strerror(s.a[0].err), s.a[0].error);
    check_served(&s.a[1], 1, 1000);
    CHECKF(strcmp(s.a[1].origin, "http://ok") == 0, "XS_WS_REQUEST_ORIGIN '%s'", s.a[1].origin);
    CHECKF(strcmp(s.a[1].path, "/") == 0, "XS_WS_REQUEST_PATH '%s'", s.a[1].path);
    check_served(&s.a[2], 1, 1000);
    CHECKF(strcmp(s.a[2].origin, "") == 0, "XS_WS_REQUEST_ORIGIN '%s'", s.a[2].origin);
    xs_close(l);
}

/* ----- non-blocking sockets and xs_poll ----- */

struct delayed_send {
    int sid;
    long after_ms;
    long rc;
};

static void *send_later(void *arg) {
    struct delayed_send *d = arg;
    msleep(d->after_ms);
    d->rc = xs_send(d->sid, "wake", 4, 0);
    return NULL;
}

/* A non-blocking connect (EINPROGRESS or 0) completes in xs_poll (POLLOUT) while the
 * non-blocking server side's handshake moves on in the same xs_poll; receiving with
 * nothing there is EAGAIN; xs_poll(POLLIN) wakes when a message arrives and the
 * receive then succeeds at once. */
static void nonblocking(int family, int type, int proto) {
    struct sockaddr_storage addr;
    socklen_t len;
    int l = ws_listener(family, type, proto, &addr, &len);
    XS_PASS(xs_fcntl(l, F_SETFL, O_NONBLOCK));
    char buf[16];
    XS_FAIL(xs_accept(l, NULL, NULL), EAGAIN);
    int c = XS_PASS(xs_socket(family, type | SOCK_NONBLOCK, proto));
    if (proto & XS_PROTO_TLS) XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    errno = 0;
    int rc = xs_connect(c, (struct sockaddr *)&addr, len);
    CHECKF(rc == 0 || errno == EINPROGRESS, "non-blocking connect: %d, %s (%s)", rc,
           strerror(errno), xs_last_error());
    struct pollfd p[2] = {{.fd = l, .events = POLLIN}};
    CHECK(xs_poll(p, 1, GUARD_MS) == 1 && (p[0].revents & POLLIN));
    int s = XS_PASS(xs_accept4(l, NULL, NULL, SOCK_NONBLOCK));
    p[0] = (struct pollfd){.fd = s, .events = POLLIN};
    p[1] = (struct pollfd){.fd = c, .events = POLLOUT};
    long t0 = now_ms();
    int ready = 0;
    while (!ready && now_ms() - t0 < GUARD_MS) {
        p[0].revents = p[1].revents = 0;
        XS_PASS(xs_poll(p, 2, 100));
        ready = p[1].revents & (POLLOUT | POLLERR | POLLHUP);
    }
    CHECKF((p[1].revents & POLLOUT) && !(p[1].revents & (POLLERR | POLLHUP)),
           "client revents %#x after %ld ms", p[1].revents, now_ms() - t0);
    CHECK(!(p[0].revents & POLLIN)); /* nothing sent yet */
    CHECK(get_int_opt(&XS, c, SOL_SOCKET, SO_ERROR) == 0);
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EAGAIN);
    XS_FAIL(xs_recv(s, buf, sizeof buf, 0), EAGAIN);
    /* Client to server: poll wakes, recv at once. */
    CHECK(xs_send(c, "hello", 5, XS_MSG_TEXT) == 5);
    p[0].revents = 0;
    CHECK(xs_poll(p, 1, GUARD_MS) == 1 && (p[0].revents & POLLIN));
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = xs_recvmsg(s, &m, 0);
    CHECKF(n == 5 && memcmp(buf, "hello", 5) == 0, "server recv after POLLIN: %zd (%s)", n,
           n < 0 ? strerror(errno) : "");
    CHECKF(m.msg_flags & XS_MSG_TEXT, "msg_flags %#x", m.msg_flags);
    /* Server to client, sent while the client is inside xs_poll. */
    struct delayed_send d = {s, SCALE(100, 300), 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, send_later, &d) == 0);
    struct pollfd pc = {.fd = c, .events = POLLIN};
    t0 = now_ms();
    rc = xs_poll(&pc, 1, GUARD_MS);
    long took = now_ms() - t0;
    CHECKF(rc == 1 && (pc.revents & POLLIN), "client poll: %d, revents %#x", rc, pc.revents);
    CHECKF(took >= d.after_ms - 20 && took < d.after_ms + 1000 * slow_factor(),
           "poll woke after %ld ms", took);
    n = xs_recv(c, buf, sizeof buf, 0);
    CHECKF(n == 4 && memcmp(buf, "wake", 4) == 0, "client recv after POLLIN: %zd (%s)", n,
           n < 0 ? strerror(errno) : "");
    pthread_join(th, NULL);
    CHECK(d.rc == 4);
    pc.revents = 0;
    CHECK(xs_poll(&pc, 1, 0) == 0);
    /* The close shows as POLLIN and a receive of 0. */
    xs_close(c);
    p[0].revents = 0;
    CHECK(xs_poll(p, 1, GUARD_MS) == 1 && (p[0].revents & POLLIN));
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    xs_close(s);
    xs_close(l);
}

SCENARIO(nonblocking_full_tcp4) { nonblocking(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS); }
SCENARIO(nonblocking_raw_unix_stream) { nonblocking(AF_UNIX, SOCK_STREAM, XS_PROTO_WS_RAW); }
SCENARIO(nonblocking_wss) { nonblocking(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS | XS_PROTO_TLS); }

/* ----- heartbeat ----- */

/* A peer that never answers: a receive blocked on the client fails with ETIMEDOUT
 * soon (interval 50 ms, pong time-out 50 ms, 1 miss allowed); the peer saw pings. */
SCENARIO(heartbeat_dead_peer) {
    struct sockaddr_storage addr;
    socklen_t len;
    int k = kernel_listener(&addr, &len);
    int c = ws_client(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS_RAW);
    XS_PASS(ws_int(c, XS_WS_PING_INTERVAL, 50));
    XS_PASS(ws_int(c, XS_WS_PONG_TIMEOUT, 50));
    XS_PASS(ws_int(c, XS_WS_MISSED_PONGS, 1));
    CHECK(ws_get_int(c, XS_WS_PING_INTERVAL) == 50);
    CHECK(ws_get_int(c, XS_WS_PONG_TIMEOUT) == 50);
    CHECK(ws_get_int(c, XS_WS_MISSED_PONGS) == 1);
    XS_PASS(xs_connect(c, (struct sockaddr *)&addr, len));
    int ks = XS_PASS(accept(k, NULL, NULL));
    char buf[16];
    long t0 = now_ms();
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), ETIMEDOUT);
    long took = now_ms() - t0;
    CHECKF(took >= 50 && took < 2000 * slow_factor(), "ETIMEDOUT after %ld ms", took);
    XS_FAIL(xs_send(c, "x", 1, 0), ETIMEDOUT); /* the failure stays */
    /* What the peer got: masked pings first. */
    set_timeout_ms(&KERNEL, ks, SO_RCVTIMEO, 200 * slow_factor());
    unsigned char in[256];
    ssize_t n = recv(ks, in, sizeof in, 0);
    CHECKF(n >= 6 && in[0] == 0x89 && (in[1] & 0x80), "peer read %zd bytes, first %02x %02x", n,
           n > 0 ? in[0] : 0, n > 1 ? in[1] : 0);
    xs_close(c);
    close(ks);
    close(k);
}

struct idle_server {
    int sid;
    long rc;
    int err;
    char got[16];
    long echo;
};

/* Blocks in one receive (answering pings meanwhile), then echoes what came. */
static void *idle_serve(void *arg) {
    struct idle_server *i = arg;
    i->rc = xs_recv(i->sid, i->got, sizeof i->got, 0);
    i->err = errno;
    if (i->rc > 0) i->echo = xs_send(i->sid, i->got, (size_t)i->rc, 0);
    return NULL;
}

/* Ping every 50 ms; a pong may take 100 ms (some slack for a busy machine); one miss
 * allowed: a silent peer would fail the connection after about 300 ms (under
 * valgrind: 200, 400, about 1.2 s). */
#define HB_INTERVAL SCALE(50, 200)
#define HB_PONG SCALE(100, 400)
#define HB_IDLE SCALE(250, 800) /* twice: 500 ms idle in all (1.6 s under valgrind) */

static void heartbeat_setup(int l, int c) {
    XS_PASS(ws_int(c, XS_WS_PING_INTERVAL, HB_INTERVAL));
    XS_PASS(ws_int(c, XS_WS_PONG_TIMEOUT, HB_PONG));
    XS_PASS(ws_int(c, XS_WS_MISSED_PONGS, 1));
}

/* An xsocket peer answers pings while its thread is in xs_recv: an idle connection
 * with a fast heartbeat stays up for 500 ms (the client first idle, then in a receive
 * that times out with EAGAIN, not ETIMEDOUT), and then works. */
SCENARIO(heartbeat_live_peer) {
    int c, s;
    if (ws_pair(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS_RAW, &c, &s, heartbeat_setup) < 0) {
        CHECK(!"connected pair");
        return;
    }
    struct idle_server i = {.sid = s};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, idle_serve, &i) == 0);
    msleep(HB_IDLE); /* no call on the client at all */
    XS_PASS(set_timeout_ms(&XS, c, SO_RCVTIMEO, HB_IDLE));
    char buf[16];
    long t0 = now_ms();
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EAGAIN);
    CHECKF(now_ms() - t0 >= HB_IDLE - 50, "recv time-out after %ld ms", now_ms() - t0);
    CHECK(ws_get_int(c, XS_WS_PEER_CLOSE_CODE) == 0);
    XS_PASS(set_timeout_ms(&XS, c, SO_RCVTIMEO, GUARD_MS));
    CHECK(xs_send(c, "alive", 5, 0) == 5);
    ssize_t n = xs_recv(c, buf, sizeof buf, 0);
    CHECKF(n == 5 && memcmp(buf, "alive", 5) == 0, "echo: %zd (%s)", n,
           n < 0 ? xs_last_error() : "");
    pthread_join(th, NULL);
    CHECKF(i.rc == 5 && i.echo == 5, "server: recv %ld (%s), echo %ld", i.rc, strerror(i.err),
           i.echo);
    xs_close(c);
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 0);
    xs_close(s);
}

/* ----- bad arguments ----- */

SCENARIO(bad_arguments) {
    XS_FAIL(xs_socket(AF_INET, SOCK_DGRAM, XS_PROTO_WS), EINVAL);
    XS_FAIL(xs_socket(AF_INET, SOCK_DGRAM, XS_PROTO_WS_RAW), EINVAL);
    XS_FAIL(xs_socket(AF_UNIX, SOCK_DGRAM, XS_PROTO_WS), EINVAL);
    XS_FAIL(xs_socket(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS | XS_PROTO_WS_RAW), EPROTONOSUPPORT);
    XS_FAIL(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_WS | XS_PROTO_WS_RAW | XS_PROTO_TLS),
            EPROTONOSUPPORT);

    /* XS_SOL_WS options on a socket without the layer. */
    int k = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(ws_text(k, XS_WS_PATH, "/x"), ENOPROTOOPT);
    XS_FAIL(ws_int(k, XS_WS_PING_INTERVAL, 10), ENOPROTOOPT);
    int v;
    socklen_t vlen = sizeof v;
    XS_FAIL(xs_getsockopt(k, XS_SOL_WS, XS_WS_PEER_CLOSE_CODE, &v, &vlen), ENOPROTOOPT);
    xs_close(k);

    int w = XS_PASS(xs_socket(AF_INET, SOCK_SEQPACKET, XS_PROTO_WS));
    CHECK(get_int_opt(&XS, w, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET);
    int ws = XS_PASS(xs_socket(AF_INET6, SOCK_STREAM, XS_PROTO_WS_RAW));
    CHECK(get_int_opt(&XS, ws, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
    xs_close(ws);
    /* Header injection and other bad values. */
    XS_FAIL(ws_text(w, XS_WS_HOST, "evil\r\nX-Injected: 1"), EINVAL);
    XS_FAIL(ws_text(w, XS_WS_ORIGIN, "http://a\r\nb"), EINVAL);
    XS_FAIL(ws_text(w, XS_WS_PATH, "no-slash"), EINVAL);
    XS_FAIL(ws_text(w, XS_WS_PATH, "/a b"), EINVAL);
    XS_FAIL(ws_int(w, XS_WS_CLOSE_CODE, 1005), EINVAL);
    XS_FAIL(ws_int(w, XS_WS_CLOSE_CODE, 5000), EINVAL);
    XS_FAIL(ws_int(w, XS_WS_PING_INTERVAL, -1), EINVAL);
    XS_FAIL(ws_int(w, XS_WS_MAX_MESSAGE, 0), EINVAL);
    char reason[130];
    memset(reason, 'r', sizeof reason - 1);
    reason[124] = 0;
    XS_FAIL(ws_text(w, XS_WS_CLOSE_REASON, reason), EINVAL);
    reason[123] = 0;
    XS_PASS(ws_text(w, XS_WS_CLOSE_REASON, reason));
    short s16 = 5;
    XS_FAIL(xs_setsockopt(w, XS_SOL_WS, XS_WS_FRAGMENT_SIZE, &s16, sizeof s16), EINVAL);
    XS_FAIL(ws_int(w, 999, 1), ENOPROTOOPT);
    /* Read-only options cannot be set. */
    XS_FAIL(ws_int(w, XS_WS_PEER_CLOSE_CODE, 1000), ENOPROTOOPT);
    /* Good values read back; state options read as "nothing yet". */
    XS_PASS(ws_text(w, XS_WS_HOST, "example.com:80"));
    XS_PASS(ws_text(w, XS_WS_SUBPROTOCOLS, "chat, superchat"));
    char text[64];
    CHECK(ws_get_text(w, XS_WS_HOST, text, sizeof text) > 0 && strcmp(text, "example.com:80") == 0);
    CHECK(ws_get_text(w, XS_WS_SUBPROTOCOLS, text, sizeof text) > 0 &&
          strcmp(text, "chat,superchat") == 0);
    CHECK(ws_get_int(w, XS_WS_CLOSE_CODE) == 1000);
    CHECK(ws_get_int(w, XS_WS_MISSED_PONGS) == 2);
    CHECK(ws_get_int(w, XS_WS_CLOSE_TIMEOUT) == 5000);
    CHECK(ws_get_int(w, XS_WS_MAX_MESSAGE) == 16 << 20);
    CHECK(ws_get_int(w, XS_WS_PEER_CLOSE_CODE) == 0);
    CHECK(ws_get_text(w, XS_WS_SUBPROTOCOL, text, sizeof text) == 0);
    /* Not connected. */
    char buf[4];
    XS_FAIL(xs_send(w, "x", 1, 0), ENOTCONN);
    XS_FAIL(xs_recv(w, buf, sizeof buf, MSG_DONTWAIT), ENOTCONN);
    xs_close(w);
}

int main(void) {
    make_certificates();
    RUN_ONCE(echo_raw_tcp4);
    RUN_ONCE(echo_raw_tcp6);
    RUN_ONCE(echo_raw_unix);
    RUN_ONCE(echo_full_tcp4);
    RUN_ONCE(echo_full_tcp6);
    RUN_ONCE(echo_full_unix);
    RUN_ONCE(echo_wss);
    RUN_ONCE(echo_wsraw_tls);
    RUN_ONCE(urls);
    RUN_ONCE(seqpacket_truncation_raw);
    RUN_ONCE(seqpacket_truncation_full);
    RUN_ONCE(stream_mode_raw_tcp4);
    RUN_ONCE(stream_mode_full_unix);
    RUN_ONCE(fragmented_messages);
    RUN_ONCE(peek_seqpacket);
    RUN_ONCE(peek_stream);
    RUN_ONCE(iovecs);
    RUN_ONCE(send_errors);
    RUN_ONCE(close_codes);
    RUN_ONCE(close_wakes_recv_full);
    RUN_ONCE(close_wakes_recv_raw_stream);
    RUN_ONCE(connection_lost_seqpacket);
    RUN_ONCE(connection_lost_stream);
    RUN_ONCE(protocol_errors);
    RUN_ONCE(handmade_frames);
    RUN_ONCE(stream_mode_empty_final_fragment);
    RUN_ONCE(refuse_non_upgrade);
    RUN_ONCE(path_check);
    RUN_ONCE(subprotocols);
    RUN_ONCE(origins);
    RUN_ONCE(nonblocking_full_tcp4);
    RUN_ONCE(nonblocking_raw_unix_stream);
    RUN_ONCE(nonblocking_wss);
    RUN_ONCE(heartbeat_dead_peer);
    RUN_ONCE(heartbeat_live_peer);
    RUN_ONCE(bad_arguments);
    cert_remove_all();
    return harness_finish();
}
