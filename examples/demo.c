/*
 * demo.c: a short loopback tour of xsocket's C API.
 *
 * xsocket gives you the BSD socket calls you already know, with an "xs_" prefix,
 * over integer socket ids ("sids") instead of file descriptors:
 *
 *     kernel                      xsocket
 *     fd = socket(...)            sid = xs_socket(...)
 *     connect(fd, ...)            xs_connect(sid, ...)
 *     send(fd, ...)               xs_send(sid, ...)        (never raises SIGPIPE)
 *     poll(fds, ...)              xs_poll(fds, ...)        (fds[i].fd holds a sid)
 *     close(fd)                   xs_close(sid)
 *
 * Errors work as they do for the kernel: -1 and errno. xs_strerror(errno) and
 * xs_last_error() add xsocket's own detail. With protocol 0, as below, every call goes
 * straight to a kernel socket in the calling thread.
 *
 * The tour, all over loopback:
 *   1. TCP echo: a server thread accepts one connection and echoes it back.
 *   2. UDP echo: sendto/recvfrom, with the sender's address, plus xs_poll.
 *   3. Unix stream echo over a socket path in a temporary directory.
 *   4. TLS echo: the TCP echo again with protocol XS_PROTO_TLS, a certificate made by
 *      the openssl tool, and the connection's TLS parameters read back.
 *   5. WebSocket echo: ws:// URLs (HTTP Upgrade, RFC 6455 frames) with SOCK_SEQPACKET
 *      delivery, one message per xs_send/xs_recv, text and binary, and the close code.
 *   6. smux: several streams on one connection. A session (smux+tcp:// URL) carries
 *      three streams at once; each is a sid of its own, and they share one TCP
 *      connection.
 *   7. An error: connecting to a closed port gives ECONNREFUSED, and its detail.
 *
 * Build and run:  make demo
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "xsocket.h"

/* ----- error handling ----------------------------------------------------------- */

/* Stops the demo with a clear message. */
static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "demo: FAILED: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(EXIT_FAILURE);
}

/*
 * TRY(call) runs an xs_ call and stops the demo if it returns -1, printing errno,
 * xs_strerror(errno) and xs_last_error(). It returns the call's result otherwise.
 * (errno and xs_last_error() belong to the calling thread, so TRY works in any thread.)
 */
#define TRY(call) try_call((call), #call, __LINE__)

static long try_call(long rc, const char *what, int line) {
    if (rc < 0) {
        int err = errno; /* save it before anything else can change it */
        fprintf(stderr, "demo: FAILED at line %d: %s\n", line, what);
        fprintf(stderr, "  errno %d: %s\n", err, xs_strerror(err));
        fprintf(stderr, "  xs_last_error(): %s\n", xs_last_error());
        exit(EXIT_FAILURE);
    }
    return rc;
}

/* ----- small helpers ------------------------------------------------------------- */

/* Formats an IPv4, IPv6 or Unix socket address as "host:port" or a path. */
static const char *addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const char *path = ((const struct sockaddr_un *)ss)->sun_path;
        snprintf(out, outlen, "%s", path[0] ? path : "an unnamed socket");
    } else {
        snprintf(out, outlen, "(family %d)", ss->ss_family);
    }
    return out;
}

/* 127.0.0.1 with the given port (0: let the kernel pick one when binding). */
static struct sockaddr_in loopback4(unsigned port) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return in;
}

/* A stream send may take fewer bytes than asked for: loop until all are sent. */
static void send_all(int sid, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = TRY(xs_send(sid, p, len, 0));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes from a stream; stops the demo on an early end of stream. */
static void recv_all(int sid, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = TRY(xs_recv(sid, p, len, 0));
        if (n == 0)
            die("%s", "end of stream before the whole echo arrived");
        p += n;
        len -= (size_t)n;
    }
}

/* ----- stream echo (TCP and Unix) ------------------------------------------------ */

/* What the server thread did, printed by the main thread once it has finished. */
struct server {
    int listener;                /* in: the listening sid */
    int conn;                    /* out: the accepted sid */
    struct sockaddr_storage peer; /* out: the client's address */
    socklen_t peerlen;
    size_t echoed;               /* out: bytes echoed before the client's end of stream */
};

/* Server thread: accepts one connection and echoes everything until end of stream. */
static void *echo_server(void *arg) {
    struct server *srv = arg;
    srv->peerlen = sizeof srv->peer;
    /* xs_accept blocks until a client connects and returns a new sid for it. */
    srv->conn = TRY(xs_accept(srv->listener, (struct sockaddr *)&srv->peer, &srv->peerlen));

    char buf[512];
    ssize_t n;
    /* xs_recv returns 0 once the client has shut down its sending side. */
    while ((n = TRY(xs_recv(srv->conn, buf, sizeof buf, 0))) > 0) {
        send_all(srv->conn, buf, (size_t)n);
        srv->echoed += (size_t)n;
    }
    TRY(xs_close(srv->conn));
    return NULL;
}

/* ----- TLS: the same calls with protocol XS_PROTO_TLS and a few options -------- */

static char certdir[64];

/* A CA and a certificate for 127.0.0.1 signed by it, made with the openssl tool. */
static int make_certificates(void) {
    snprintf(certdir, sizeof certdir, "/tmp/xsocket-demo-tls-XXXXXX");
    if (!mkdtemp(certdir))
        return 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 1 -subj /CN=demo-ca -keyout ca.key -out ca.pem && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=demo "
             "-keyout server.key -out server.csr && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
             "-extfile ext -out server.pem",
             certdir);
    char quiet[1200];
    snprintf(quiet, sizeof quiet, "(%s) >/dev/null 2>&1", cmd);
    return system(quiet) == 0;
}

static void set_file(int sid, int option, const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", certdir, name);
    TRY(xs_setsockopt(sid, XS_SOL_TLS, option, path, (socklen_t)strlen(path)));
}

/* The server presents its certificate and key (accepted sockets inherit them). */
static void tls_server_options(int listener) {
    set_file(listener, XS_TLS_CERT_FILE, "server.pem");
    set_file(listener, XS_TLS_KEY_FILE, "server.key");
}

/* The client trusts our CA; the name checked is the address connected to. */
static void tls_client_options(int client) { set_file(client, XS_TLS_CA_FILE, "ca.pem"); }

static void print_tls(const char *tag, int sid) {
    int version = 0;
    socklen_t len = sizeof version;
    TRY(xs_getsockopt(sid, XS_SOL_TLS, XS_TLS_VERSION, &version, &len));
    char cipher[64] = {0};
    len = sizeof cipher - 1;
    TRY(xs_getsockopt(sid, XS_SOL_TLS, XS_TLS_CIPHER, cipher, &len));
    int64_t us = 0;
    len = sizeof us;
    TRY(xs_getsockopt(sid, XS_SOL_TLS, XS_TLS_HANDSHAKE_US, &us, &len));
    printf("%s: TLS 1.%d, %s, handshake %lld us, server certificate verified\n", tag,
           version == 0x0304 ? 3 : 2, cipher, (long long)us);
}

static void remove_certificates(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "demo: could not remove %s\n", certdir);
}

/*
 * Listens on `addr` (a TCP port 0 gets a free port), connects a client to it, sends a
 * message, reads the echo back and closes both ends. `tag` prefixes every line.
 */
static void stream_echo(const char *tag, const struct sockaddr *addr, socklen_t addrlen,
                        int protocol) {
    char a[128], b[128];
    const char msg[] = "hello xsocket";

    /* The server: socket, bind, listen, exactly as with the kernel. */
    struct server srv = {0};
    srv.listener = TRY(xs_socket(addr->sa_family, SOCK_STREAM, protocol));
    if (protocol == XS_PROTO_TLS)
        tls_server_options(srv.listener);
    TRY(xs_bind(srv.listener, addr, addrlen));
    TRY(xs_listen(srv.listener, 16));

    /* Ask where it listens: for TCP this is how we learn the port the kernel chose. */
    struct sockaddr_storage where;
    socklen_t wherelen = sizeof where;
    TRY(xs_getsockname(srv.listener, (struct sockaddr *)&where, &wherelen));
    printf("%s: server sid %d listening on %s\n", tag, srv.listener, addr_str(&where, a, sizeof a));

    /* Any thread may use any sid; here a second thread runs the server side. */
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, echo_server, &srv);
    if (rc != 0)
        die("pthread_create: %s", strerror(rc));

    /* The client: socket and connect. */
    int client = TRY(xs_socket(addr->sa_family, SOCK_STREAM, protocol));
    if (protocol == XS_PROTO_TLS)
        tls_client_options(client);
    TRY(xs_connect(client, (struct sockaddr *)&where, wherelen));
    printf("%s: client sid %d connected\n", tag, client);
    if (protocol == XS_PROTO_TLS)
        print_tls(tag, client);

    /* Send the message and read the same number of bytes back. */
    char reply[sizeof msg];
    send_all(client, msg, strlen(msg));
    recv_all(client, reply, strlen(msg));
    reply[strlen(msg)] = '\0';
    if (strcmp(reply, msg) != 0)
        die("echo came back different: '%s'", reply);
    printf("%s: echoed '%s' (%zu bytes)\n", tag, reply, strlen(reply));

    /* Half-close: the server reads end of stream, closes its side, and we read 0. */
    TRY(xs_shutdown(client, SHUT_WR));
    if (TRY(xs_recv(client, reply, sizeof reply, 0)) != 0)
        die("%s", "expected end of stream after the echo");
    pthread_join(thread, NULL);
    printf("%s: server accepted sid %d from %s, echoed %zu bytes, closed at end of stream\n",
           tag, srv.conn, addr_str(&srv.peer, b, sizeof b), srv.echoed);

    TRY(xs_close(client));
    TRY(xs_close(srv.listener));
}

/* ----- UDP echo ------------------------------------------------------------------ */

static void udp_echo(void) {
    char a[128];
    const char msg[] = "hello udp";
    char buf[64];

    /* A datagram "server" is just a bound socket. */
    int server = TRY(xs_socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in any = loopback4(0);
    TRY(xs_bind(server, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_storage srvaddr;
    socklen_t srvlen = sizeof srvaddr;
    TRY(xs_getsockname(server, (struct sockaddr *)&srvaddr, &srvlen));
    printf("udp: server sid %d bound to %s\n", server, addr_str(&srvaddr, a, sizeof a));

    /* The client bounds its wait for the reply with SO_RCVTIMEO, as with the kernel. */
    int client = TRY(xs_socket(AF_INET, SOCK_DGRAM, 0));
    struct timeval tv = {.tv_sec = 1};
    TRY(xs_setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));

    TRY(xs_sendto(client, msg, strlen(msg), 0, (struct sockaddr *)&srvaddr, srvlen));
    printf("udp: client sid %d sent '%s' (%zu bytes)\n", client, msg, strlen(msg));

    /* xs_poll works like poll(2), with sids in the fd field. Wait up to 1 s. */
    struct pollfd pfd = {.fd = server, .events = POLLIN};
    if (TRY(xs_poll(&pfd, 1, 1000)) == 0)
        die("%s", "no datagram arrived within 1 s");
    printf("udp: xs_poll: server sid %d is readable\n", server);

    /* recvfrom tells who sent the datagram; reply to that address. */
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = TRY(xs_recvfrom(server, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen));
    buf[n] = '\0';
    printf("udp: server received '%s' (%zd bytes) from %s\n", buf, n, addr_str(&from, a, sizeof a));
    TRY(xs_sendto(server, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen));

    fromlen = sizeof from;
    n = TRY(xs_recvfrom(client, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen));
    buf[n] = '\0';
    if (strcmp(buf, msg) != 0)
        die("udp echo came back different: '%s'", buf);
    printf("udp: client received echo '%s' (%zd bytes) from %s\n", buf, n,
           addr_str(&from, a, sizeof a));

    TRY(xs_close(client));
    TRY(xs_close(server));
}

/* ----- Unix stream echo ---------------------------------------------------------- */

/* The temporary directory and socket path, removed at exit even after a failure. */
static char tmpdir[64];
static char sockpath[sizeof ((struct sockaddr_un *)0)->sun_path];

static void remove_tmp(void) {
    if (sockpath[0])
        unlink(sockpath);
    if (tmpdir[0])
        rmdir(tmpdir);
}

static void unix_echo(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xsocket-demo-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    atexit(remove_tmp);
    snprintf(sockpath, sizeof sockpath, "%s/echo.sock", tmpdir);

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path, sockpath, sizeof un.sun_path);
    stream_echo("unix", (struct sockaddr *)&un, sizeof un, 0);
    /* remove_tmp() deletes the socket file and the directory when the demo exits. */
}

/* ----- WebSocket: ws:// URLs, one message per call ------------------------------ */

/* Server thread: accepts one WebSocket client and echoes each message with its type. */
static void *ws_echo_server(void *arg) {
    int listener = *(int *)arg;
    /* The HTTP Upgrade handshake is done when xs_accept returns. */
    int conn = TRY(xs_accept(listener, NULL, NULL));
    char path[64] = {0};
    socklen_t pathlen = sizeof path - 1;
    TRY(xs_getsockopt(conn, XS_SOL_WS, XS_WS_REQUEST_PATH, path, &pathlen));
    printf("ws: server: client asked for %s\n", path);
    char buf[512];
    for (;;) {
        /* SOCK_SEQPACKET: one xs_recvmsg is one whole message; msg_flags tells text. */
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = TRY(xs_recvmsg(conn, &msg, 0));
        if (n == 0) break; /* the client's close frame */
        int text = msg.msg_flags & XS_MSG_TEXT;
        TRY(xs_send(conn, buf, (size_t)n, text ? XS_MSG_TEXT : 0));
    }
    int code = 0;
    socklen_t len = sizeof code;
    TRY(xs_getsockopt(conn, XS_SOL_WS, XS_WS_PEER_CLOSE_CODE, &code, &len));
    printf("ws: server: client closed with code %d\n", code);
    TRY(xs_close(conn));
    return NULL;
}

static void ws_echo(void) {
    /* ws:// URLs make SOCK_SEQPACKET sockets: whole messages in and out. */
    int listener = TRY(xs_listen_url("ws://127.0.0.1:0", 4));
    struct sockaddr_storage where;
    socklen_t wherelen = sizeof where;
    TRY(xs_getsockname(listener, (struct sockaddr *)&where, &wherelen));
    pthread_t thread;
    if (pthread_create(&thread, NULL, ws_echo_server, &listener) != 0) die("%s", "pthread_create");

    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/echo",
             ntohs(((struct sockaddr_in *)&where)->sin_port));
    int sid = TRY(xs_dial(url)); /* TCP connect + HTTP Upgrade */
    printf("ws: client: connected to %s\n", url);

    const char *text = "hello, websocket \xe2\x9c\x93"; /* UTF-8 */
    TRY(xs_send(sid, text, strlen(text), XS_MSG_TEXT));
    char buf[512];
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = TRY(xs_recvmsg(sid, &msg, 0));
    buf[n] = 0;
    printf("ws: client: echo of %zd bytes, %s: \"%s\"\n", n,
           msg.msg_flags & XS_MSG_TEXT ? "text" : "binary", buf);
    if ((size_t)n != strlen(text) || !(msg.msg_flags & XS_MSG_TEXT)) die("%s", "ws text echo wrong");

    const unsigned char blob[3] = {0x00, 0xff, 0x7f};
    TRY(xs_send(sid, blob, sizeof blob, 0));
    msg.msg_flags = 0;
    n = TRY(xs_recvmsg(sid, &msg, 0));
    printf("ws: client: echo of %zd bytes, %s\n", n, msg.msg_flags & XS_MSG_TEXT ? "text" : "binary");
    if (n != 3 || memcmp(buf, blob, 3) != 0 || (msg.msg_flags & XS_MSG_TEXT)) die("%s", "ws binary echo wrong");

    /* xs_close sends the close frame (code 1000 unless XS_WS_CLOSE_CODE says otherwise). */
    TRY(xs_close(sid));
    pthread_join(thread, NULL);
    TRY(xs_close(listener));
}

/* ----- smux: several streams on one connection ------------------------------------ */

#define SMUX_STREAMS 3

/* Server thread: accepts one session, then echoes each of its streams until the client
 * half-closes it, and waits for the client to end the session. */
static void *smux_echo_server(void *arg) {
    int listener = *(int *)arg;
    /* On an smux listener, xs_accept returns a session: one connection. */
    int session = TRY(xs_accept(listener, NULL, NULL));
    for (int i = 0; i < SMUX_STREAMS; i++) {
        /* On a session, xs_accept returns the next stream the peer opened. */
        int stream = TRY(xs_accept(session, NULL, NULL));
        int id = 0;
        socklen_t len = sizeof id;
        TRY(xs_getsockopt(stream, XS_SOL_SMUX, XS_SMUX_STREAM_ID, &id, &len));
        char buf[512];
        ssize_t n;
        size_t echoed = 0;
        /* A stream reads like TCP: 0 once the peer half-closed it (its FIN). */
        while ((n = TRY(xs_recv(stream, buf, sizeof buf, 0))) > 0) {
            send_all(stream, buf, (size_t)n);
            echoed += (size_t)n;
        }
        printf("smux: server: stream %d (sid %d) echoed %zu bytes\n", id, stream, echoed);
        TRY(xs_close(stream)); /* our FIN: the client reads 0 after the echo */
    }
    /* The client closing its session ends ours: xs_accept fails with ECONNRESET. */
    if (xs_accept(session, NULL, NULL) >= 0 || errno != ECONNRESET)
        die("%s", "expected the session to end with ECONNRESET");
    printf("smux: server: session ended (%s)\n", xs_last_error());
    TRY(xs_close(session));
    return NULL;
}

static unsigned local_port(int sid) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    TRY(xs_getsockname(sid, (struct sockaddr *)&ss, &len));
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void smux_echo(void) {
    /* An smux listener (also smux+tls://, smux+unix://): xs_accept gives sessions. */
    int listener = TRY(xs_listen_url("smux+tcp://127.0.0.1:0", 4));
    char url[128];
    snprintf(url, sizeof url, "smux+tcp://127.0.0.1:%u", local_port(listener));
    pthread_t thread;
    if (pthread_create(&thread, NULL, smux_echo_server, &listener) != 0)
        die("%s", "pthread_create");

    /* One TCP connection: the session. Streams are opened on it with xs_smux_open. */
    int session = TRY(xs_dial(url));
    printf("smux: client: session sid %d connected to %s (local port %u)\n", session, url,
           local_port(session));
    const char *msgs[SMUX_STREAMS] = {"first stream", "second stream, a longer one", "third"};
    int streams[SMUX_STREAMS], ids[SMUX_STREAMS];
    for (int i = 0; i < SMUX_STREAMS; i++) {
        streams[i] = TRY(xs_smux_open(session)); /* SYN; the stream is usable at once */
        /* The stream's wire id (1, 2, 3, ...; 0 once it is closed both ways). */
        socklen_t idlen = sizeof ids[i];
        TRY(xs_getsockopt(streams[i], XS_SOL_SMUX, XS_SMUX_STREAM_ID, &ids[i], &idlen));
        printf("smux: client: opened stream %d (sid %d)\n", ids[i], streams[i]);
        send_all(streams[i], msgs[i], strlen(msgs[i]));
        TRY(xs_shutdown(streams[i], SHUT_WR)); /* FIN: half-close, as on TCP */
    }
    for (int i = 0; i < SMUX_STREAMS; i++) {
        char buf[64];
        size_t len = strlen(msgs[i]);
        recv_all(streams[i], buf, len);
        buf[len] = '\0';
        if (strcmp(buf, msgs[i]) != 0) die("smux echo came back different: '%s'", buf);
        if (TRY(xs_recv(streams[i], buf, sizeof buf, 0)) != 0)
            die("%s", "expected the end of the stream after the echo");
        /* xs_getsockname on a stream gives its session's connection's address. */
        unsigned port = local_port(streams[i]);
        printf("smux: client: stream %d (sid %d) echoed '%s', local port %u\n", ids[i],
               streams[i], buf, port);
        if (port != local_port(session)) die("%s", "a stream is not on the session's connection");
    }
    printf("smux: client: %d streams shared one TCP connection (local port %u)\n", SMUX_STREAMS,
           local_port(session));

    for (int i = 0; i < SMUX_STREAMS; i++)
        TRY(xs_close(streams[i]));
    TRY(xs_close(session)); /* ends the connection: the server's session ends too */
    pthread_join(thread, NULL);
    TRY(xs_close(listener));
}

/* ----- an error ------------------------------------------------------------------ */

static void error_example(void) {
    /* Find a port nobody listens on: let the kernel pick a free one, then close it. */
    struct sockaddr_in any = loopback4(0);
    struct sockaddr_storage closed;
    socklen_t closedlen = sizeof closed;
    int probe = TRY(xs_socket(AF_INET, SOCK_STREAM, 0));
    TRY(xs_bind(probe, (struct sockaddr *)&any, sizeof any));
    TRY(xs_getsockname(probe, (struct sockaddr *)&closed, &closedlen));
    TRY(xs_close(probe));

    char a[128];
    int sid = TRY(xs_socket(AF_INET, SOCK_STREAM, 0));
    if (xs_connect(sid, (struct sockaddr *)&closed, closedlen) == 0)
        die("connect to closed port %s succeeded", addr_str(&closed, a, sizeof a));

    /* The failure is reported the BSD way, with detail on top. */
    int err = errno;
    printf("error: xs_connect(sid %d, %s) returned -1, errno %d (%s)\n", sid,
           addr_str(&closed, a, sizeof a), err, err == ECONNREFUSED ? "ECONNREFUSED" : "?");
    printf("error: xs_strerror(errno) = \"%s\"\n", xs_strerror(err));
    printf("error: xs_last_error()    = \"%s\"\n", xs_last_error());
    if (err != ECONNREFUSED)
        die("expected ECONNREFUSED, got %s", xs_strerror(err));
    TRY(xs_close(sid));
}

int main(void) {
    /* Lines in order even when stdout is a pipe and the demo stops early. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sockaddr_in tcp = loopback4(0); /* port 0: any free port */
    stream_echo("tcp", (struct sockaddr *)&tcp, sizeof tcp, 0);
    udp_echo();
    unix_echo();
    if (make_certificates()) {
        stream_echo("tls", (struct sockaddr *)&tcp, sizeof tcp, XS_PROTO_TLS);
        remove_certificates();
    } else {
        printf("tls: skipped (the openssl command could not make certificates)\n");
    }
    ws_echo();
    smux_echo();
    error_example();

    printf("demo: all steps passed\n");
    return EXIT_SUCCESS;
}
