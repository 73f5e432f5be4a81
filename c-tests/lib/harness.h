/* A small test harness for xsocket's C tests.
 *
 * CHECK(cond)            the condition must hold.
 * XS_PASS(expr)          expr must not return a negative value.
 * XS_FAIL(expr, ERRNO)   expr must return -1 with errno == ERRNO.
 * REC(t, expr)           evaluates expr and records its value and errno in trace t,
 *                        so runs against the kernel and against xsocket can be compared.
 * REC_BYTES(t, buf, n)   records n bytes (as a checksum) in trace t.
 *
 * A test program defines scenarios with SCENARIO(name) { ... } taking (const struct
 * api *A, struct trace *t) and lists them in main with RUN_COMPARED / RUN_ONCE.
 * Failures print file:line, the expression, errno text and xs_last_error().
 * The program ends with "N passed, M failed" and exits non-zero on any failure. */
#ifndef XS_TEST_HARNESS_H
#define XS_TEST_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "xsocket.h"

#define TRACE_MAX 512

struct trace_entry {
    int line;
    long value;
    int err;
    const char *what;
};

struct trace {
    struct trace_entry e[TRACE_MAX];
    int n;
};

extern int harness_failures;      /* failed checks in the current scenario */
extern const char *harness_name;  /* current scenario, for messages */
extern const char *harness_api;   /* current api name */

void harness_fail(const char *file, int line, const char *expr, int err);
void trace_add(struct trace *t, int line, const char *what, long value, int err);
uint64_t checksum(const void *buf, size_t n);

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) harness_fail(__FILE__, __LINE__, #cond, 0);                          \
    } while (0)

#define XS_PASS(expr)                                                                     \
    ({                                                                                    \
        errno = 0;                                                                        \
        long xs_v_ = (long)(expr);                                                        \
        if (xs_v_ < 0) harness_fail(__FILE__, __LINE__, #expr, errno);                    \
        xs_v_;                                                                            \
    })

#define XS_FAIL(expr, want)                                                               \
    do {                                                                                  \
        errno = 0;                                                                        \
        long xs_v_ = (long)(expr);                                                        \
        int xs_e_ = errno;                                                                \
        if (xs_v_ != -1 || xs_e_ != (want)) {                                             \
            fprintf(stderr, "  expected -1 with %s, got %ld with errno %d (%s)\n", #want,  \
                    xs_v_, xs_e_, strerror(xs_e_));                                       \
            harness_fail(__FILE__, __LINE__, #expr, xs_e_);                               \
        }                                                                                 \
    } while (0)

#define REC(t, expr)                                                                      \
    ({                                                                                    \
        errno = 0;                                                                        \
        long rec_v_ = (long)(expr);                                                       \
        trace_add((t), __LINE__, #expr, rec_v_, rec_v_ < 0 ? errno : 0);                 \
        rec_v_;                                                                           \
    })

#define REC_BYTES(t, buf, n) trace_add((t), __LINE__, "bytes " #buf, (long)checksum((buf), (n)), 0)

typedef void (*scenario_fn)(const struct api *A, struct trace *t);

#define SCENARIO(name) static void name(const struct api *A, struct trace *t)

/* Runs a scenario against the kernel and against xsocket; both must pass their checks
 * and record the same trace. Each run has a watchdog: alarm(60 s, x10 when slow); a
 * scenario still running then ends the program with "FAIL watchdog: ..." (exit 3). */
void run_compared(const char *name, scenario_fn fn);
/* Runs a scenario once, against xsocket. */
void run_once(const char *name, scenario_fn fn);
#define RUN_COMPARED(fn) run_compared(#fn, fn)
#define RUN_ONCE(fn) run_once(#fn, fn)
/* Prints the summary line and returns the exit status. */
int harness_finish(void);

/* Loopback helpers. */
#include <netinet/in.h>
#include <sys/un.h>
/* 127.0.0.1 (AF_INET) or ::1 (AF_INET6) with the given port (host order). */
socklen_t loopback(int family, int port, struct sockaddr_storage *out);
/* A fresh Unix path in a private temp dir (abstract: a unique "@name" when abstract=1). */
socklen_t unix_addr(int abstract, struct sockaddr_un *out);
/* The port of a bound socket. */
int bound_port(const struct api *A, int s);
/* A listening socket on loopback (family AF_INET/AF_INET6/AF_UNIX); fills its address. */
int listener(const struct api *A, int family, int type, struct sockaddr_storage *addr, socklen_t *len);
/* Connects a new socket of the given type to addr (blocking). */
int connected(const struct api *A, int family, int type, const struct sockaddr_storage *addr, socklen_t len);
/* Milliseconds on a monotonic clock. */
long now_ms(void);


/* ----- additions for the conformance suite ----- */

/* REC_EQ(t, expr, want)     records expr and checks that it returned want.
 * REC_FAIL(t, expr, ERRNO)  records expr and checks that it returned -1 with errno ERRNO.
 * Both evaluate to expr's value, so the result can be used further. */
#define REC_EQ(t, expr, want)                                                             \
    ({                                                                                    \
        long rq_v_ = REC((t), (expr));                                                    \
        int rq_e_ = errno;                                                                \
        if (rq_v_ != (long)(want)) {                                                      \
            fprintf(stderr, "  expected %ld, got %ld (%s)\n", (long)(want), rq_v_,        \
                    rq_v_ < 0 ? strerror(rq_e_) : "ok");                                  \
            harness_fail(__FILE__, __LINE__, #expr, rq_v_ < 0 ? rq_e_ : 0);               \
        }                                                                                 \
        rq_v_;                                                                            \
    })

#define REC_FAIL(t, expr, want)                                                           \
    ({                                                                                    \
        long rq_v_ = REC((t), (expr));                                                    \
        int rq_e_ = errno;                                                                \
        if (rq_v_ != -1 || rq_e_ != (want)) {                                             \
            fprintf(stderr, "  expected -1 with %s, got %ld (%s)\n", #want, rq_v_,        \
                    rq_v_ < 0 ? strerror(rq_e_) : "ok");                                  \
            harness_fail(__FILE__, __LINE__, #expr, rq_v_ < 0 ? rq_e_ : 0);               \
        }                                                                                 \
        rq_v_;                                                                            \
    })

/* The errno of the last recorded step (0 when it succeeded). */
#define LAST_ERR(t) ((t)->n > 0 ? (t)->e[(t)->n - 1].err : 0)

/* 1 normally; larger when XSOCKET_TEST_SLOW is set (valgrind): scale time limits by it. */
int slow_factor(void);
/* A bound on waits that should never be reached: calls made through stream_pair and
 * wait_for give up after it, so a broken library fails a test instead of hanging it. */
#define GUARD_MS (5000 * slow_factor())
/* Sets SO_RCVTIMEO or SO_SNDTIMEO (optname) to ms milliseconds. */
int set_timeout_ms(const struct api *A, int s, int optname, long ms);
/* Sets / reads an int option; get_int_opt returns -1 on failure. */
int set_int_opt(const struct api *A, int s, int level, int name, int value);
int get_int_opt(const struct api *A, int s, int level, int name);
/* A connected stream or seqpacket pair on loopback (family AF_INET/AF_INET6/AF_UNIX):
 * *c is the connecting side, *s the accepted side. Both get GUARD_MS receive and send
 * timeouts. Returns 0, or -1 (nothing left open). */
int stream_pair(const struct api *A, int family, int type, int *c, int *s);
/* Polls one socket for events for at most ms milliseconds; returns revents (0 on
 * time-out, -1 on error). */
int wait_for(const struct api *A, int s, short events, int ms);
/* Whether two socket addresses are the same (family, address, port or path). */
int same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
              socklen_t blen);


/* ----- helpers shared by the TLS, WebSocket and smux tests ----- */

/* CHECKF(cond, fmt, ...): CHECK with a line of context (printf-style) printed when it
 * fails. */
#define CHECKF(cond, ...)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "  ");                                                        \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            harness_fail(__FILE__, __LINE__, #cond, 0);                                   \
        }                                                                                 \
    } while (0)

/* Runs a shell command made from fmt (printf-style); the program stops (exit 2) if it
 * does not exit 0. */
void run_shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Test certificates, made with the openssl command line (P-256 keys) in one temporary
 * directory per program. */
/* Makes the directory /tmp/xsocket-<tag>-XXXXXX and in it a CA (ca.pem, ca.key,
 * CN=xsocket-test-ca, valid 2 days). */
void cert_make_ca(const char *tag);
/* Makes <name>.key and <name>.pem: a certificate with CN=<name> and the given
 * subjectAltName (e.g. "IP:127.0.0.1,DNS:localhost"), signed by the CA, valid for
 * days days (a negative number: already expired). */
void cert_make_signed(const char *name, const char *san, int days);
/* The certificate directory (after cert_make_ca). */
const char *cert_dir(void);
/* The path of a file in the certificate directory; the result stays valid for the
 * next three calls (four rotating buffers). */
const char *cert_path(const char *name);
/* Removes the certificate directory and everything in it. */
void cert_remove_all(void);

/* Sets a text option (its length from strlen) of level XS_SOL_TLS. */
int tls_set_text(int sid, int name, const char *value);

/* A close from another thread: pthread_create(&t, NULL, close_later, &closer) sleeps
 * after_ms milliseconds, then closes sid with xs_close. */
struct closer {
    int sid;
    long after_ms;
};
void *close_later(void *arg);


/* BAD_PTR(expr): evaluates expr, a call that hands the kernel a bad pointer on purpose
 * (to check for EFAULT), with valgrind's error reporting off for its duration. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HARNESS_HAVE_VALGRIND 1
#endif
#endif
#ifdef HARNESS_HAVE_VALGRIND
#define BAD_PTR(expr)                                                                     \
    ({                                                                                    \
        VALGRIND_DISABLE_ERROR_REPORTING;                                                 \
        errno = 0;                                                                        \
        long bp_v_ = (long)(expr);                                                        \
        int bp_e_ = errno;                                                                \
        VALGRIND_ENABLE_ERROR_REPORTING;                                                  \
        errno = bp_e_;                                                                    \
        bp_v_;                                                                            \
    })
#else
#define BAD_PTR(expr) ((long)(expr))
#endif

#endif
