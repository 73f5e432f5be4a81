/* TLS (XS_PROTO_TLS) against real peers: xsocket with itself, with `openssl s_server`
 * and `openssl s_client`, and with Python's ssl module; certificate checks (names,
 * unknown issuers, pins, mTLS), resumption, a plaintext client at a TLS server, and a
 * peer that closes without close_notify. Certificates are made at test time with
 * the openssl command line, in a temporary directory. */
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>

#include "concurrency.h"

/* A CA, a server certificate for 127.0.0.1/localhost signed by it, a client
 * certificate signed by it, an expired one, and a self-signed server certificate. */
static void make_certificates(void) {
    cert_make_ca("tls");
    cert_make_signed("server", "IP:127.0.0.1,DNS:localhost", 2);
    cert_make_signed("client", "IP:127.0.0.1,DNS:localhost", 2);
    cert_make_signed("expired", "IP:127.0.0.1,DNS:localhost", -1);
    run_shell("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
              "-subj /CN=self -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE -keyout self.key -out self.pem %s",
              cert_dir(), ">/dev/null 2>&1");
}

static int set_flag(int sid, int name, int value) {
    return xs_setsockopt(sid, XS_SOL_TLS, name, &value, sizeof value);
}

/* A TLS listener on 127.0.0.1 with the given certificate ("server" or "self"). */
static int tls_listener(const char *cert, int *port) {
    int l = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_TLS));
    char name[32];
    snprintf(name, sizeof name, "%s.pem", cert);
    XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path(name)));
    snprintf(name, sizeof name, "%s.key", cert);
    XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path(name)));
    struct sockaddr_storage a;
    socklen_t len = loopback(AF_INET, 0, &a);
    XS_PASS(xs_bind(l, (struct sockaddr *)&a, len));
    XS_PASS(xs_listen(l, 16));
    *port = bound_port(&XS, l);
    set_timeout_ms(&XS, l, SO_RCVTIMEO, GUARD_MS);
    return l;
}

/* A TLS client socket trusting our CA (not yet connected). */
static int tls_client(void) {
    int c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_TLS));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    set_timeout_ms(&XS, c, SO_RCVTIMEO, GUARD_MS);
    set_timeout_ms(&XS, c, SO_SNDTIMEO, GUARD_MS);
    return c;
}

static int connect_port(int sid, int port) {
    struct sockaddr_storage a;
    socklen_t len = loopback(AF_INET, port, &a);
    return xs_connect(sid, (struct sockaddr *)&a, len);
}

/* The server side of a test, in a thread: accepts one connection, echoes one
 * message, then reads until the end of the stream. */
struct server {
    int listener;
    int accepted;     /* sid, or -1 */
    int accept_errno; /* when accept failed */
    char error[256];
    long echoed;
    long end; /* what the final recv returned (0: clean close_notify) */
    int end_errno;
};

static void *serve_one(void *arg) {
    struct server *s = arg;
    s->accepted = xs_accept(s->listener, NULL, NULL);
    if (s->accepted < 0) {
        s->accept_errno = errno;
        snprintf(s->error, sizeof s->error, "%s", xs_last_error());
        return NULL;
    }
    char buf[4096];
    long n = xs_recv(s->accepted, buf, sizeof buf, 0);
    if (n > 0) s->echoed = xs_send(s->accepted, buf, (size_t)n, 0);
    s->end = xs_recv(s->accepted, buf, sizeof buf, 0);
    s->end_errno = s->end < 0 ? errno : 0;
    if (s->end < 0) snprintf(s->error, sizeof s->error, "%s", xs_last_error());
    xs_close(s->accepted);
    return NULL;
}

static void start_server(struct server *s, pthread_t *t, int listener) {
    memset(s, 0, sizeof *s);
    s->listener = listener;
    s->accepted = -1;
    if (pthread_create(t, NULL, serve_one, s) != 0) exit(2);
}

static int64_t int64_opt(int sid, int name) {
    int64_t v = -1;
    socklen_t len = sizeof v;
    return xs_getsockopt(sid, XS_SOL_TLS, name, &v, &len) == 0 ? v : -1;
}

static int int_opt(int sid, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    return xs_getsockopt(sid, XS_SOL_TLS, name, &v, &len) == 0 ? v : -1;
}

/* SHA-256 of a PEM certificate file, as 64 hex digits, from the openssl command. */
static void fingerprint_hex(const char *pem, char out[65]) {
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in %s -noout -fingerprint -sha256 | sed 's/.*=//; s/://g'", pem);
    FILE *f = popen(cmd, "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, 65, f)) out[0] = 0;
        pclose(f);
    }
}

/* ----- xsocket with itself ----- */

/* Echo over TLS 1.3, parameters readable, close_notify gives the server a clean 0. */
SCENARIO(echo_with_itself) {
    int port;
    int l = tls_listener("server", &port);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int c = tls_client();
    XS_PASS(connect_port(c, port));
    CHECK(xs_send(c, "hello tls", 9, 0) == 9);
    char buf[16];
    CHECK(xs_recv(c, buf, 9, MSG_WAITALL) == 9 && memcmp(buf, "hello tls", 9) == 0);
    CHECK(int_opt(c, XS_TLS_VERSION) == 0x0304);
    char cipher[64] = {0};
    socklen_t clen = sizeof cipher - 1;
    XS_PASS(xs_getsockopt(c, XS_SOL_TLS, XS_TLS_CIPHER, cipher, &clen));
    CHECK(strncmp(cipher, "TLS13_", 6) == 0);
    unsigned char fp[32];
    socklen_t fplen = sizeof fp;
    XS_PASS(xs_getsockopt(c, XS_SOL_TLS, XS_TLS_PEER_SHA256, fp, &fplen));
    char want[65], got[65];
    fingerprint_hex(cert_path("server.pem"), want);
    for (int i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02X", fp[i]);
    CHECK(fplen == 32 && strcasecmp(want, got) == 0);
    int64_t us = int64_opt(c, XS_TLS_HANDSHAKE_US);
    CHECK(us > 0 && us < 5000000 * (int64_t)slow_factor());
    XS_PASS(xs_close(c));
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 9);
    CHECK(s.end == 0); /* close_notify: a clean end of stream */
    xs_close(l);
}

/* The second connection to the same server resumes the session. */
SCENARIO(resumption) {
    int port;
    int l = tls_listener("server", &port);
    uint64_t resumed0, full0, resumed1, full1;
    XS_PASS(xs_tls_handshake_counts(&resumed0, &full0));
    for (int round = 0; round < 2; round++) {
        pthread_t th;
        struct server s;
        start_server(&s, &th, l);
        int c = tls_client();
        XS_PASS(connect_port(c, port));
        char buf[8];
        CHECK(xs_send(c, "r", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
        CHECK(int_opt(c, XS_TLS_RESUMED) == round);
        xs_close(c);
        pthread_join(th, NULL);
    }
    /* Client and server each count one full and one resumed handshake. */
    XS_PASS(xs_tls_handshake_counts(&resumed1, &full1));
    CHECK(resumed1 - resumed0 == 2 && full1 - full0 == 2);
    xs_close(l);
}

/* A client that checks another name, or trusts no CA for a self-signed server, is
 * refused with EPROTO and words that say why; a pin accepts the self-signed server,
 * a wrong pin does not. */
SCENARIO(certificate_checks) {
    int port;
    int l = tls_listener("server", &port);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int c = tls_client();
    XS_PASS(tls_set_text(c, XS_TLS_SERVER_NAME, "example.com"));
    XS_FAIL(connect_port(c, port), EPROTO);
    CHECK(strstr(xs_last_error(), "not valid for name 'example.com'") != NULL);
    xs_close(c);
    pthread_join(th, NULL);
    CHECK(s.accepted == -1 && s.accept_errno == ECONNABORTED);
    xs_close(l);

    l = tls_listener("self", &port);
    char fp[65];
    fingerprint_hex(cert_path("self.pem"), fp);
    for (int variant = 0; variant < 3; variant++) {
        start_server(&s, &th, l);
        c = tls_client(); /* trusts our CA, which did not sign "self" */
        if (variant == 1) {
            XS_PASS(set_flag(c, XS_TLS_VERIFY, 0));
            XS_PASS(tls_set_text(c, XS_TLS_PIN_SHA256, fp));
        }
        if (variant == 2) {
            XS_PASS(set_flag(c, XS_TLS_VERIFY, 0));
            XS_PASS(tls_set_text(c, XS_TLS_PIN_SHA256, "00" "11223344556677889900112233445566778899001122334455667788990011"));
        }
        int rc = connect_port(c, port);
        int err = errno;
        if (variant == 1) {
            CHECK(rc == 0);
            char buf[4];
            CHECK(xs_send(c, "p", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
        } else {
            CHECK(rc == -1 && err == EPROTO);
            CHECK(strstr(xs_last_error(), variant == 0 ? "not signed by a trusted CA" : "fingerprint mismatch") != NULL);
        }
        xs_close(c);
        pthread_join(th, NULL);
    }
    xs_close(l);
}

/* An expired certificate is refused with words that say so, unless pinned. */
SCENARIO(expired_certificate) {
    int port;
    int l = tls_listener("expired", &port);
    char fp[65];
    fingerprint_hex(cert_path("expired.pem"), fp);
    for (int pinned = 0; pinned < 2; pinned++) {
        pthread_t th;
        struct server s;
        start_server(&s, &th, l);
        int c = tls_client();
        if (pinned) {
            XS_PASS(set_flag(c, XS_TLS_VERIFY, 0));
            XS_PASS(tls_set_text(c, XS_TLS_PIN_SHA256, fp));
            XS_PASS(connect_port(c, port));
            char buf[4];
            CHECK(xs_send(c, "e", 1, 0) == 1 && xs_recv(c, buf, 1, 0) == 1);
        } else {
            XS_FAIL(connect_port(c, port), EPROTO);
            CHECK(strstr(xs_last_error(), "certificate expired") != NULL);
        }
        xs_close(c);
        pthread_join(th, NULL);
    }
    xs_close(l);
}

/* Handshakes that never finish are bounded: a client that connects and says nothing
 * makes the server's accept fail after the listener's XS_SO_CONNECT_TIMEOUT, and a
 * server that never answers makes the client's connect fail with ETIMEDOUT. */
SCENARIO(silent_peers_time_out) {
    int port;
    int l = tls_listener("server", &port);
    int ms = 300 * slow_factor();
    XS_PASS(xs_setsockopt(l, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &ms, sizeof ms));
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int k = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(connect_port(k, port));
    long t0 = now_ms();
    pthread_join(th, NULL);
    CHECK(s.accepted == -1 && s.accept_errno == ECONNABORTED);
    CHECK(strstr(s.error, "timed out") != NULL);
    CHECK(now_ms() - t0 >= ms - 50 && now_ms() - t0 < 3 * ms + 1000);
    xs_close(k);
    xs_close(l);

    /* A plain listener that accepts nothing: the TCP connect succeeds, no TLS reply. */
    int plain = XS_PASS(xs_listen_url("tcp://127.0.0.1:0", 4));
    int c = tls_client();
    XS_PASS(xs_setsockopt(c, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, &ms, sizeof ms));
    t0 = now_ms();
    XS_FAIL(connect_port(c, bound_port(&XS, plain)), ETIMEDOUT);
    CHECK(now_ms() - t0 >= ms - 50 && now_ms() - t0 < 3 * ms + 1000);
    xs_close(c);
    xs_close(plain);
}

/* mTLS: a server that requires a client certificate refuses a client without one
 * (the server's accept says so) and serves a client with one. */
SCENARIO(mutual_tls) {
    int port;
    int l = tls_listener("server", &port);
    XS_PASS(tls_set_text(l, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_PASS(set_flag(l, XS_TLS_REQUIRE_CLIENT_CERT, 1));
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int c = tls_client();
    char buf[8];
    /* TLS 1.3 clients finish their side first: the refusal shows at the first recv. */
    if (connect_port(c, port) == 0) {
        xs_send(c, "x", 1, 0);
        CHECK(xs_recv(c, buf, sizeof buf, 0) == -1 && errno == EPROTO);
    }
    xs_close(c);
    pthread_join(th, NULL);
    CHECK(s.accepted == -1 && s.accept_errno == ECONNABORTED);
    CHECK(strstr(s.error, "client certificate required") != NULL);

    start_server(&s, &th, l);
    c = tls_client();
    XS_PASS(tls_set_text(c, XS_TLS_CERT_FILE, cert_path("client.pem")));
    XS_PASS(tls_set_text(c, XS_TLS_KEY_FILE, cert_path("client.key")));
    XS_PASS(connect_port(c, port));
    CHECK(xs_send(c, "m", 1, 0) == 1 && xs_recv(c, buf, sizeof buf, 0) == 1);
    xs_close(c);
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 1);
    xs_close(l);
}

/* A plaintext client at a TLS server: that accept fails (ECONNABORTED, "does not
 * speak TLS") and the next, real TLS client is served. */
SCENARIO(plaintext_client_at_tls_server) {
    int port;
    int l = tls_listener("server", &port);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int k = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_PASS(connect_port(k, port));
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    CHECK(xs_send(k, req, strlen(req), 0) == (ssize_t)strlen(req));
    pthread_join(th, NULL);
    CHECK(s.accepted == -1 && s.accept_errno == ECONNABORTED);
    CHECK(strstr(s.error, "does not speak TLS") != NULL);
    xs_close(k);

    start_server(&s, &th, l);
    int c = tls_client();
    XS_PASS(connect_port(c, port));
    char buf[4];
    CHECK(xs_send(c, "ok", 2, 0) == 2 && xs_recv(c, buf, 2, MSG_WAITALL) == 2);
    xs_close(c);
    pthread_join(th, NULL);
    xs_close(l);
}

/* Random bytes instead of TLS, many times: each such accept fails cleanly with
 * ECONNABORTED, nothing crashes or leaks, and a real client is served after. */
SCENARIO(random_bytes_at_tls_server) {
    int port;
    int l = tls_listener("server", &port);
    srand(12345);
    int rounds = slow() ? 10 : 50;
    for (int i = 0; i < rounds; i++) {
        pthread_t th;
        struct server s;
        start_server(&s, &th, l);
        int k = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
        XS_PASS(connect_port(k, port));
        unsigned char junk[512];
        size_t n = 1 + (size_t)rand() % sizeof junk;
        for (size_t j = 0; j < n; j++) junk[j] = (unsigned char)rand();
        if (i % 4 == 0) junk[0] = 0x16, junk[1] = 0x03, junk[2] = 0x01; /* looks like a handshake */
        xs_send(k, junk, n, 0);
        xs_shutdown(k, SHUT_WR);
        pthread_join(th, NULL);
        CHECK(s.accepted == -1 && s.accept_errno == ECONNABORTED);
        xs_close(k);
    }
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int c = tls_client();
    XS_PASS(connect_port(c, port));
    char buf[4];
    CHECK(xs_send(c, "ok", 2, 0) == 2 && xs_recv(c, buf, 2, MSG_WAITALL) == 2);
    xs_close(c);
    pthread_join(th, NULL);
    xs_close(l);
}

/* ----- real peers: openssl and Python ----- */

/* A free loopback port (bound once and released). */
static int free_port(void) {
    int l = xs_listen_url("tcp://127.0.0.1:0", 1);
    int port = bound_port(&XS, l);
    xs_close(l);
    return port;
}

/* Connects, retrying while the peer process starts listening. */
static int connect_retry(int port) {
    for (int i = 0; i < 100 * slow_factor(); i++) {
        int c = tls_client();
        if (connect_port(c, port) == 0) return c;
        int err = errno;
        xs_close(c);
        if (err != ECONNREFUSED) return -1;
        msleep(50);
    }
    return -1;
}

/* xsocket client to `openssl s_server`: what we send shows on its stdout, what it is
 * given on stdin arrives here. Then it is killed: the end without close_notify is
 * reported as truncation, not as a clean end of stream. */
SCENARIO(client_to_openssl_server) {
    int port = free_port();
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "(echo from-openssl; sleep %d) | openssl s_server -quiet -naccept 1 "
             "-accept 127.0.0.1:%d -cert %s -key %s > %s 2>/dev/null & echo $!",
             3 * slow_factor(), port, cert_path("server.pem"), cert_path("server.key"), cert_path("s_server.out"));
    FILE *f = popen(cmd, "r");
    int pid = 0;
    CHECK(f && fscanf(f, "%d", &pid) == 1);
    if (f) pclose(f);
    int c = connect_retry(port);
    CHECK(c > 0);
    char buf[64] = {0};
    CHECK(xs_send(c, "from-xsocket\n", 13, 0) == 13);
    CHECK(xs_recv(c, buf, 13, MSG_WAITALL) == 13 && memcmp(buf, "from-openssl\n", 13) == 0);
    msleep(200);
    if (pid > 0) kill(pid, SIGKILL);
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EPROTO);
    CHECK(strstr(xs_last_error(), "without close_notify") != NULL);
    xs_close(c);
    FILE *out = fopen(cert_path("s_server.out"), "r");
    char line[64] = {0};
    CHECK(out && fgets(line, sizeof line, out) && strcmp(line, "from-xsocket\n") == 0);
    if (out) fclose(out);
}

/* `openssl s_client` to an xsocket server, TLS 1.2 and 1.3: it verifies our
 * certificate against the CA, sends a line, and prints our echo. */
static void from_openssl_client(const char *version) {
    int port;
    int l = tls_listener("server", &port);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "(echo from-s_client; sleep %d) | timeout %d openssl s_client %s -quiet "
             "-verify_return_error -CAfile %s -connect 127.0.0.1:%d 2>/dev/null",
             slow_factor(), 20 * slow_factor(), version, cert_path("ca.pem"), port);
    FILE *f = popen(cmd, "r");
    char line[64] = {0};
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "from-s_client\n") == 0);
    if (f) CHECK(pclose(f) == 0);
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 14);
    xs_close(l);
}

SCENARIO(openssl_client_tls13) { from_openssl_client("-tls1_3"); }
SCENARIO(openssl_client_tls12) { from_openssl_client("-tls1_2"); }

/* Python's ssl module as the server (verifying nothing of us) and as the client
 * (verifying our certificate and the name "localhost"). */
SCENARIO(python_ssl_both_ways) {
    int port = free_port();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout %d python3 -c \""
             "import socket, ssl\n"
             "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
             "ctx.load_cert_chain('%s', '%s')\n"
             "srv = socket.create_server(('127.0.0.1', %d))\n"
             "conn, _ = srv.accept()\n"
             "tls = ctx.wrap_socket(conn, server_side=True)\n"
             "tls.sendall(tls.recv(100).upper())\n"
             "tls.unwrap()\n"
             "\" &",
             20 * slow_factor(), cert_path("server.pem"), cert_path("server.key"), port);
    run_shell("%s", cmd);
    int c = connect_retry(port);
    CHECK(c > 0);
    char buf[16] = {0};
    CHECK(xs_send(c, "python", 6, 0) == 6);
    CHECK(xs_recv(c, buf, 6, MSG_WAITALL) == 6 && memcmp(buf, "PYTHON", 6) == 0);
    CHECK(xs_recv(c, buf, sizeof buf, 0) == 0); /* Python sent close_notify (unwrap) */
    xs_close(c);

    int l = tls_listener("server", &port);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    snprintf(cmd, sizeof cmd,
             "timeout %d python3 -c \""
             "import socket, ssl, sys\n"
             "ctx = ssl.create_default_context(cafile='%s')\n"
             "with ctx.wrap_socket(socket.create_connection(('127.0.0.1', %d)), server_hostname='localhost') as t:\n"
             "    t.sendall(b'snake')\n"
             "    sys.stdout.write(t.recv(100).decode())\n"
             "    sys.stdout.write(' ' + t.version())\n"
             "\"",
             20 * slow_factor(), cert_path("ca.pem"), port);
    FILE *f = popen(cmd, "r");
    char line[64] = {0};
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "snake TLSv1.3") == 0);
    if (f) CHECK(pclose(f) == 0);
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 5);
    xs_close(l);
}

/* Non-blocking TLS: connect says EINPROGRESS, xs_poll drives the handshake and reports
 * POLLOUT only once it is done (SO_ERROR 0); a non-blocking accept returns at once and
 * the accepted socket becomes readable when plaintext arrives. A handshake that fails
 * shows as POLLERR, SO_ERROR EPROTO, and the reason on the next call. */
SCENARIO(nonblocking_handshakes) {
    int port;
    int l = tls_listener("server", &port);
    XS_PASS(xs_fcntl(l, F_SETFL, O_NONBLOCK));
    int c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, XS_PROTO_TLS));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_FAIL(connect_port(c, port), EINPROGRESS);
    struct pollfd p[2] = {{.fd = l, .events = POLLIN}, {.fd = c, .events = POLLOUT}};
    CHECK(xs_poll(p, 1, GUARD_MS) == 1 && (p[0].revents & POLLIN));
    int s = XS_PASS(xs_accept(l, NULL, NULL)); /* returns before the handshake */
    char buf[8];
    XS_FAIL(xs_recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* Both sides' handshakes move on inside xs_poll. */
    p[0] = (struct pollfd){.fd = s, .events = POLLIN};
    long t0 = now_ms();
    int client_ready = 0;
    while (!client_ready && now_ms() - t0 < GUARD_MS) {
        p[1].revents = 0;
        XS_PASS(xs_poll(p, 2, 100));
        client_ready = p[1].revents & POLLOUT;
    }
    CHECK(client_ready && !(p[1].revents & POLLERR));
    CHECK(get_int_opt(&XS, c, SOL_SOCKET, SO_ERROR) == 0);
    CHECK(int_opt(c, XS_TLS_VERSION) == 0x0304);
    CHECK(xs_send(c, "nb", 2, 0) == 2);
    p[0].revents = 0;
    CHECK(xs_poll(p, 1, GUARD_MS) == 1 && (p[0].revents & POLLIN));
    CHECK(xs_recv(s, buf, sizeof buf, 0) == 2 && memcmp(buf, "nb", 2) == 0);
    xs_close(s), xs_close(c);

    /* A failing handshake: the client checks a name the certificate does not have. */
    c = XS_PASS(xs_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, XS_PROTO_TLS));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_PASS(tls_set_text(c, XS_TLS_SERVER_NAME, "example.com"));
    XS_FAIL(connect_port(c, port), EINPROGRESS);
    p[0] = (struct pollfd){.fd = l, .events = POLLIN};
    CHECK(xs_poll(p, 1, GUARD_MS) == 1);
    s = XS_PASS(xs_accept(l, NULL, NULL));
    p[0] = (struct pollfd){.fd = s, .events = POLLIN};
    p[1] = (struct pollfd){.fd = c, .events = POLLOUT};
    int failed = 0;
    t0 = now_ms();
    while (!failed && now_ms() - t0 < GUARD_MS) {
        XS_PASS(xs_poll(p, 2, 100));
        failed = p[1].revents & POLLERR;
    }
    CHECK(failed);
    CHECK(get_int_opt(&XS, c, SOL_SOCKET, SO_ERROR) == EPROTO);
    XS_FAIL(xs_send(c, "x", 1, 0), EPROTO);
    CHECK(strstr(xs_last_error(), "not valid for name 'example.com'") != NULL);
    xs_close(s), xs_close(c), xs_close(l);
}

/* TLS over a Unix stream socket (the name to check is set: there is no address),
 * with MSG_PEEK, a receive timeout, and a close from another thread waking a
 * blocked receive, all as on plain sockets. */
SCENARIO(unix_peek_timeout_and_close) {
    struct sockaddr_un ua;
    socklen_t ulen = unix_addr(0, &ua);
    int l = XS_PASS(xs_socket(AF_UNIX, SOCK_STREAM, XS_PROTO_TLS));
    XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path("server.pem")));
    XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path("server.key")));
    XS_PASS(xs_bind(l, (struct sockaddr *)&ua, ulen));
    XS_PASS(xs_listen(l, 4));
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    int c = XS_PASS(xs_socket(AF_UNIX, SOCK_STREAM, XS_PROTO_TLS));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_PASS(tls_set_text(c, XS_TLS_SERVER_NAME, "localhost"));
    XS_PASS(xs_connect(c, (struct sockaddr *)&ua, ulen));
    CHECK(xs_send(c, "peekaboo", 8, 0) == 8);
    char buf[16] = {0};
    CHECK(xs_recv(c, buf, 4, MSG_PEEK | MSG_WAITALL) == 4 && memcmp(buf, "peek", 4) == 0);
    CHECK(xs_recv(c, buf, 8, MSG_WAITALL) == 8 && memcmp(buf, "peekaboo", 8) == 0);
    /* Nothing more comes: SO_RCVTIMEO gives EAGAIN after about its time. */
    set_timeout_ms(&XS, c, SO_RCVTIMEO, 200 * slow_factor());
    long t0 = now_ms();
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EAGAIN);
    CHECK(now_ms() - t0 >= 150 * slow_factor());
    /* A receive blocked with no timeout is woken by xs_close from another thread. */
    set_timeout_ms(&XS, c, SO_RCVTIMEO, 0);
    struct closer cl = {c, 100};
    pthread_t ct;
    CHECK(pthread_create(&ct, NULL, close_later, &cl) == 0);
    t0 = now_ms();
    XS_FAIL(xs_recv(c, buf, sizeof buf, 0), EBADF);
    CHECK(now_ms() - t0 < 2000 * slow_factor());
    pthread_join(ct, NULL);
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 8 && s.end == 0); /* close sent close_notify */
    xs_close(l);
    unlink(ua.sun_path);
}

/* mTLS with openssl on the other end, both ways: xsocket's client certificate
 * accepted by `openssl s_server -Verify`, and `openssl s_client -cert` accepted by an
 * xsocket server that requires one; a client certificate from another CA refused. */
SCENARIO(mutual_tls_with_openssl) {
    int port = free_port();
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "(echo verified; sleep %d) | openssl s_server -quiet -naccept 1 -Verify 1 "
             "-verify_return_error -CAfile %s -accept 127.0.0.1:%d -cert %s -key %s "
             ">/dev/null 2>&1 & echo $!",
             3 * slow_factor(), cert_path("ca.pem"), port, cert_path("server.pem"), cert_path("server.key"));
    FILE *f = popen(cmd, "r");
    int pid = 0;
    CHECK(f && fscanf(f, "%d", &pid) == 1);
    if (f) pclose(f);
    int c = -1;
    for (int i = 0; i < 100 * slow_factor() && c < 0; i++) {
        c = tls_client();
        XS_PASS(tls_set_text(c, XS_TLS_CERT_FILE, cert_path("client.pem")));
        XS_PASS(tls_set_text(c, XS_TLS_KEY_FILE, cert_path("client.key")));
        if (connect_port(c, port) != 0) {
            xs_close(c), c = -1;
            msleep(50);
        }
    }
    CHECK(c > 0);
    char buf[16] = {0};
    CHECK(xs_recv(c, buf, 9, MSG_WAITALL) == 9 && memcmp(buf, "verified\n", 9) == 0);
    xs_close(c);
    if (pid > 0) kill(pid, SIGKILL);

    int l = tls_listener("server", &port);
    XS_PASS(tls_set_text(l, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_PASS(set_flag(l, XS_TLS_REQUIRE_CLIENT_CERT, 1));
    for (int good = 1; good >= 0; good--) {
        pthread_t th;
        struct server s;
        start_server(&s, &th, l);
        snprintf(cmd, sizeof cmd,
                 "(echo mtls; sleep %d) | timeout %d openssl s_client -quiet -CAfile %s "
                 "-cert %s -key %s -connect 127.0.0.1:%d 2>/dev/null",
                 slow_factor(), 20 * slow_factor(), cert_path("ca.pem"),
                 cert_path(good ? "client.pem" : "self.pem"), cert_path(good ? "client.key" : "self.key"),
                 port);
        f = popen(cmd, "r");
        char line[32] = {0};
        int echoed = f && fgets(line, sizeof line, f) && strcmp(line, "mtls\n") == 0;
        if (f) pclose(f);
        pthread_join(th, NULL);
        if (good) {
            CHECK(echoed && s.accepted > 0);
        } else {
            CHECK(!echoed && s.accepted == -1 && s.accept_errno == ECONNABORTED);
        }
    }
    xs_close(l);
}

/* The URL calls: xs_socket_url + options + xs_bind_url/xs_connect_url. The client
 * checks the certificate against the URL's host ("localhost" is in its names). */
SCENARIO(urls) {
    int l = XS_PASS(xs_socket_url("tls://127.0.0.1:0"));
    XS_PASS(tls_set_text(l, XS_TLS_CERT_FILE, cert_path("server.pem")));
    XS_PASS(tls_set_text(l, XS_TLS_KEY_FILE, cert_path("server.key")));
    XS_PASS(xs_bind_url(l, "tls://127.0.0.1:0"));
    XS_PASS(xs_listen(l, 4));
    int port = bound_port(&XS, l);
    pthread_t th;
    struct server s;
    start_server(&s, &th, l);
    char url[64];
    snprintf(url, sizeof url, "tls://localhost:%d", port);
    int c = XS_PASS(xs_socket_url(url));
    XS_PASS(tls_set_text(c, XS_TLS_CA_FILE, cert_path("ca.pem")));
    XS_PASS(xs_connect_url(c, url));
    char buf[4];
    CHECK(xs_send(c, "u", 1, 0) == 1 && xs_recv(c, buf, 1, 0) == 1);
    xs_close(c);
    pthread_join(th, NULL);
    CHECK(s.accepted > 0 && s.echoed == 1);
    /* xs_dial uses the system's CAs, which did not sign our test certificate. */
    start_server(&s, &th, l);
    XS_FAIL(xs_dial(url), EPROTO);
    CHECK(strstr(xs_last_error(), "not signed by a trusted CA") != NULL);
    pthread_join(th, NULL);
    xs_close(l);
}

/* Bad arguments get clear errors: TLS needs a stream socket; a server needs a
 * certificate (xs_listen says so); a missing file fails at xs_setsockopt. */
SCENARIO(setup_errors) {
    XS_FAIL(xs_socket(AF_INET, SOCK_DGRAM, XS_PROTO_TLS), EINVAL);
    XS_FAIL(xs_socket(AF_INET, SOCK_STREAM, 0x4000), EPROTONOSUPPORT);
    int l = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, XS_PROTO_TLS));
    XS_FAIL(tls_set_text(l, XS_TLS_CERT_FILE, "/no/such/cert.pem"), ENOENT);
    CHECK(strstr(xs_last_error(), "/no/such/cert.pem") != NULL);
    struct sockaddr_storage a;
    socklen_t len = loopback(AF_INET, 0, &a);
    XS_PASS(xs_bind(l, (struct sockaddr *)&a, len));
    XS_FAIL(xs_listen(l, 1), EINVAL);
    CHECK(strstr(xs_last_error(), "certificate and key are needed") != NULL);
    xs_close(l);
    int k = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    XS_FAIL(tls_set_text(k, XS_TLS_SERVER_NAME, "x"), ENOPROTOOPT);
    xs_close(k);
}

int main(void) {
    make_certificates();
    RUN_ONCE(echo_with_itself);
    RUN_ONCE(resumption);
    RUN_ONCE(certificate_checks);
    RUN_ONCE(expired_certificate);
    RUN_ONCE(silent_peers_time_out);
    RUN_ONCE(mutual_tls);
    RUN_ONCE(plaintext_client_at_tls_server);
    RUN_ONCE(random_bytes_at_tls_server);
    RUN_ONCE(client_to_openssl_server);
    RUN_ONCE(openssl_client_tls13);
    RUN_ONCE(openssl_client_tls12);
    RUN_ONCE(python_ssl_both_ways);
    RUN_ONCE(nonblocking_handshakes);
    RUN_ONCE(unix_peek_timeout_and_close);
    RUN_ONCE(mutual_tls_with_openssl);
    RUN_ONCE(urls);
    RUN_ONCE(setup_errors);
    cert_remove_all();
    return harness_finish();
}
