/*
 * echo_server.h: what tests/ws/ws_echo_server.c and tests/smux/smux_echo_server.c
 * share: log lines, argument helpers, the shutdown on stdin EOF or SIGTERM, the
 * listener on 127.0.0.1 port 0 or a Unix path, and the accept loop.
 *
 * Before including it, a server defines ECHO_SERVER_NAME (the prefix of its stderr
 * lines, e.g. "ws_echo_server"); after it, the server defines usage(), which prints
 * its usage line and exits 2. All functions are static: each server compiles its own
 * copy.
 */
#ifndef XSOCKET_TESTS_ECHO_SERVER_H
#define XSOCKET_TESTS_ECHO_SERVER_H

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

#ifndef ECHO_SERVER_NAME
#error "define ECHO_SERVER_NAME before including echo_server.h"
#endif

/* --unix PATH: listen there instead of 127.0.0.1 port 0 (NULL: TCP). */
static const char *unix_path;

/* Prints the usage line to stderr and exits 2 (defined by the including server). */
static void usage(void) __attribute__((noreturn));

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* One line "ECHO_SERVER_NAME: text" on stderr; lines from threads do not interleave. */
static void __attribute__((format(printf, 1, 2))) logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, ECHO_SERVER_NAME ": %s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

/* Prints "ECHO_SERVER_NAME: text" on stderr and exits 1. */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, ECHO_SERVER_NAME ": %s\n", line);
    exit(1);
}

/* A whole number from 0 to INT32_MAX for option what; anything else ends the program. */
static long parse_num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 0 || v > INT32_MAX)
        die("bad number for %s: '%s'", what, s);
    return v;
}

/* The argument after argv[*i] (and *i moves to it), or usage() when there is none. */
static const char *next_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        usage();
    return argv[++*i];
}

/* The options both servers take: --tls CERT KEY (into *cert, *key) and --unix PATH
 * (into unix_path). Returns 1 when argv[*i] was one of them (its values consumed). */
static int parse_common_arg(int argc, char **argv, int *i, const char **cert, const char **key)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--tls")) {
        *cert = next_arg(argc, argv, i);
        *key = next_arg(argc, argv, i);
        return 1;
    }
    if (!strcmp(a, "--unix")) {
        unix_path = next_arg(argc, argv, i);
        return 1;
    }
    return 0;
}

/* Sets a text option (name: for the message); a failure ends the program. */
static void set_text(int sid, int level, int opt, const char *name, const char *value)
{
    if (xs_setsockopt(sid, level, opt, value, (socklen_t)strlen(value)) < 0)
        die("setsockopt %s '%s': %s (%s)", name, value, strerror(errno), xs_last_error());
}

/* Sets an int option (name: for the message); a failure ends the program. */
static void set_int(int sid, int level, int opt, const char *name, int value)
{
    if (xs_setsockopt(sid, level, opt, &value, sizeof value) < 0)
        die("setsockopt %s %d: %s (%s)", name, value, strerror(errno), xs_last_error());
}

/* --tls: the listener's certificate chain and key (nothing when cert is NULL). */
static void set_tls_files(int lsid, const char *cert, const char *key)
{
    if (cert) {
        set_text(lsid, XS_SOL_TLS, XS_TLS_CERT_FILE, "XS_TLS_CERT_FILE", cert);
        set_text(lsid, XS_SOL_TLS, XS_TLS_KEY_FILE, "XS_TLS_KEY_FILE", key);
    }
}

/* Removes the --unix socket file, if any, and ends the program (exit 0). */
static void __attribute__((noreturn)) stop_server(void)
{
    if (unix_path)
        unlink(unix_path);
    _exit(0);
}

/* A thread that reads stdin until EOF (or an error), then stops the server. */
static void *stdin_watch(void *arg)
{
    (void)arg;
    char b[256];
    for (;;) {
        ssize_t n = read(0, b, sizeof b);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    stop_server();
}

/* SIGTERM, SIGINT: stop the server. */
static void on_term(int sig)
{
    (void)sig;
    stop_server();
}

/* Installs on_term for SIGTERM and SIGINT. */
static void stop_on_term_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Binds lsid to unix_path or to 127.0.0.1 port 0 (with SO_REUSEADDR), listens, and
 * prints "unix PATH" or "port N" on stdout. A failure ends the program. */
static void listen_and_announce(int lsid)
{
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
}

/* Starts the stdin watcher, then accepts on lsid forever, running
 * handler((void *)(intptr_t)sid) on a detached thread for each accepted sid. With
 * accepted_what set, logs "<accepted_what> N accepted" first. A failed xs_accept is
 * logged with errno_text(errno) (strerror when errno_text is NULL) and the loop goes on,
 * after a pause when out of descriptors; an unusable listener ends the program. */
static void __attribute__((noreturn))
serve_forever(int lsid, void *(*handler)(void *), const char *(*errno_text)(int),
              const char *accepted_what)
{
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
            logmsg("xs_accept failed: errno %d (%s): %s", e, errno_text ? errno_text(e) : strerror(e),
                   xs_last_error());
            if (e == EBADF || e == EINVAL)
                die("listener unusable");
            if (e == EMFILE || e == ENFILE)
                usleep(100 * 1000);
            continue;
        }
        if (accepted_what)
            logmsg("%s %d accepted", accepted_what, sid);
        int rc = pthread_create(&t, &attr, handler, (void *)(intptr_t)sid);
        if (rc != 0) {
            logmsg("pthread_create: %s", strerror(rc));
            xs_close(sid);
        }
    }
}

#endif
