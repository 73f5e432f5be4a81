#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int harness_failures;
const char *harness_name = "";
const char *harness_api = "";
static int passed, failed;
static void remove_unix_dir(void);

void harness_fail(const char *file, int line, const char *expr, int err) {
    harness_failures++;
    fprintf(stderr, "FAIL %s [%s] %s:%d: %s", harness_name, harness_api, file, line, expr);
    if (err) fprintf(stderr, ": %s", strerror(err));
    const char *detail = xs_last_error();
    if (detail && *detail) fprintf(stderr, " (last xs error: %s)", detail);
    fprintf(stderr, "\n");
}

void trace_add(struct trace *t, int line, const char *what, long value, int err) {
    if (t->n < TRACE_MAX) t->e[t->n++] = (struct trace_entry){line, value, err, what};
}

uint64_t checksum(const void *buf, size_t n) {
    const unsigned char *p = buf;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ n;
}

/* The scenario watchdog: says which scenario hung, then ends the program. */
static void scenario_timed_out(int sig) {
    (void)sig;
    static const char msg[] = "FAIL watchdog: this scenario did not finish in time: ";
    ssize_t w = write(2, msg, sizeof msg - 1);
    w = write(2, harness_name, strlen(harness_name));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

static int run_with(const char *name, scenario_fn fn, const struct api *A, struct trace *t) {
    harness_name = name;
    harness_api = A->name;
    harness_failures = 0;
    t->n = 0;
    /* Watchdog: a scenario that hangs kills the program (SIGALRM) instead of the suite. */
    struct sigaction sa = {.sa_handler = scenario_timed_out}, old_sa;
    sigaction(SIGALRM, NULL, &old_sa);
    if (old_sa.sa_handler == SIG_DFL) sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(60 * slow_factor()));
    fn(A, t);
    alarm(0);
    return harness_failures;
}

static void report(const char *name, int bad) {
    if (bad) {
        failed++;
        printf("not ok - %s\n", name);
    } else {
        passed++;
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}

void run_compared(const char *name, scenario_fn fn) {
    static struct trace kt, xt;
    int bad = run_with(name, fn, &KERNEL, &kt);
    bad += run_with(name, fn, &XS, &xt);
    int n = kt.n > xt.n ? kt.n : xt.n;
    for (int i = 0; i < n; i++) {
        struct trace_entry *k = i < kt.n ? &kt.e[i] : NULL, *x = i < xt.n ? &xt.e[i] : NULL;
        if (k && x && k->line == x->line && k->value == x->value && k->err == x->err) continue;
        bad++;
        fprintf(stderr, "DIFF %s step %d: kernel ", name, i);
        if (k) fprintf(stderr, "line %d %s = %ld (%s)", k->line, k->what, k->value, k->err ? strerror(k->err) : "ok");
        else fprintf(stderr, "<none>");
        fprintf(stderr, " | xsocket ");
        if (x) fprintf(stderr, "line %d %s = %ld (%s)\n", x->line, x->what, x->value, x->err ? strerror(x->err) : "ok");
        else fprintf(stderr, "<none>\n");
        break;
    }
    report(name, bad);
}

void run_once(const char *name, scenario_fn fn) {
    static struct trace t;
    report(name, run_with(name, fn, &XS, &t));
}

int harness_finish(void) {
    remove_unix_dir();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

socklen_t loopback(int family, int port, struct sockaddr_storage *out) {
    memset(out, 0, sizeof *out);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)port);
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
    return sizeof *a;
}

static char unix_dir[64]; /* made by the first unix_addr, removed by harness_finish */

static void remove_unix_dir(void) {
    if (!unix_dir[0]) return;
    DIR *d = opendir(unix_dir);
    if (d) {
        struct dirent *e;
        char path[sizeof unix_dir + 256];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", unix_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(unix_dir);
    unix_dir[0] = 0;
}

socklen_t unix_addr(int abstract, struct sockaddr_un *out) {
    char *dir = unix_dir;
    static int counter;
    memset(out, 0, sizeof *out);
    out->sun_family = AF_UNIX;
    if (abstract) {
        int n = snprintf(out->sun_path + 1, sizeof out->sun_path - 1, "xsocket-test-%d-%05d",
                         (int)getpid(), counter++);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    }
    if (!dir[0]) {
        snprintf(dir, sizeof unix_dir, "/tmp/xsocket-test-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    snprintf(out->sun_path, sizeof out->sun_path, "%s/s%05d", dir, counter++);
    unlink(out->sun_path);
    return sizeof *out;
}

int bound_port(const struct api *A, int s) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (A->getsockname(s, (struct sockaddr *)&a, &len) < 0) return -1;
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

int listener(const struct api *A, int family, int type, struct sockaddr_storage *addr, socklen_t *len) {
    int s = A->socket(family, type, 0);
    if (s < 0) return -1;
    if (family == AF_UNIX) {
        *len = unix_addr(0, (struct sockaddr_un *)addr);
    } else {
        *len = loopback(family, 0, addr);
    }
    if (A->bind(s, (struct sockaddr *)addr, *len) < 0) return -1;
    if (type != SOCK_DGRAM && A->listen(s, 16) < 0) return -1;
    if (family != AF_UNIX) *len = loopback(family, bound_port(A, s), addr);
    return s;
}

int connected(const struct api *A, int family, int type, const struct sockaddr_storage *addr, socklen_t len) {
    int s = A->socket(family, type, 0);
    if (s < 0) return -1;
    if (A->connect(s, (const struct sockaddr *)addr, len) < 0) return -1;
    return s;
}

long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----- additions for the conformance suite ----- */

int slow_factor(void) {
    const char *slow = getenv("XSOCKET_TEST_SLOW");
    return slow && *slow && strcmp(slow, "0") != 0 ? 10 : 1;
}

int set_timeout_ms(const struct api *A, int s, int optname, long ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return A->setsockopt(s, SOL_SOCKET, optname, &tv, sizeof tv);
}

int set_int_opt(const struct api *A, int s, int level, int name, int value) {
    return A->setsockopt(s, level, name, &value, sizeof value);
}

int get_int_opt(const struct api *A, int s, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    if (A->getsockopt(s, level, name, &value, &len) < 0) return -1;
    return value;
}

int stream_pair(const struct api *A, int family, int type, int *c, int *s) {
    struct sockaddr_storage addr;
    socklen_t len;
    *c = *s = -1;
    int l = listener(A, family, type, &addr, &len);
    if (l < 0) return -1;
    set_timeout_ms(A, l, SO_RCVTIMEO, GUARD_MS);
    *c = connected(A, family, type, &addr, len);
    if (*c >= 0) *s = A->accept(l, NULL, NULL);
    int err = errno;
    A->close(l);
    if (*c < 0 || *s < 0) {
        if (*c >= 0) A->close(*c);
        *c = *s = -1;
        errno = err;
        return -1;
    }
    int fds[2] = {*c, *s};
    for (int i = 0; i < 2; i++) {
        set_timeout_ms(A, fds[i], SO_RCVTIMEO, GUARD_MS);
        set_timeout_ms(A, fds[i], SO_SNDTIMEO, GUARD_MS);
    }
    return 0;
}

int wait_for(const struct api *A, int s, short events, int ms) {
    struct pollfd p = {.fd = s, .events = events};
    int n = A->poll(&p, 1, ms);
    return n < 0 ? -1 : p.revents;
}

int same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
              socklen_t blen) {
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    if (a->ss_family == AF_UNIX) {
        /* Paths compare up to their NUL; abstract names by their exact length. */
        size_t off = offsetof(struct sockaddr_un, sun_path);
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        if (alen <= off || blen <= off) return alen == blen;
        if (x->sun_path[0] == 0 || y->sun_path[0] == 0)
            return alen == blen && memcmp(x->sun_path, y->sun_path, alen - off) == 0;
        return strncmp(x->sun_path, y->sun_path, sizeof x->sun_path) == 0;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* ----- helpers shared by the TLS, WebSocket and smux tests ----- */

void run_shell(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
        exit(2);
    }
}

/* The certificate directory: /tmp/xsocket-<tag>-XXXXXX once cert_make_ca has run. */
static char cert_directory[64];

/* Keeps the openssl command line quiet. */
#define CERT_QUIET ">/dev/null 2>&1"

void cert_make_ca(const char *tag) {
    snprintf(cert_directory, sizeof cert_directory, "/tmp/xsocket-%s-XXXXXX", tag);
    if (!mkdtemp(cert_directory)) exit(2);
    run_shell("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
              "-subj /CN=xsocket-test-ca -keyout ca.key -out ca.pem %s",
              cert_directory, CERT_QUIET);
}

void cert_make_signed(const char *name, const char *san, int days) {
    run_shell("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-subj /CN=%s -keyout %s.key -out %s.csr %s",
              cert_directory, name, name, name, CERT_QUIET);
    run_shell("cd %s && printf 'subjectAltName=%s\\n' > %s.ext && "
              "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days %d "
              "-extfile %s.ext -out %s.pem %s",
              cert_directory, san, name, name, days, name, name, CERT_QUIET);
}

const char *cert_dir(void) {
    return cert_directory;
}

const char *cert_path(const char *name) {
    static char buf[4][128];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", cert_directory, name);
    return p;
}

void cert_remove_all(void) {
    if (cert_directory[0]) run_shell("rm -rf %s", cert_directory);
}

int tls_set_text(int sid, int name, const char *value) {
    return xs_setsockopt(sid, XS_SOL_TLS, name, value, (socklen_t)strlen(value));
}

void *close_later(void *arg) {
    struct closer *c = arg;
    struct timespec ts = {c->after_ms / 1000, (c->after_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    xs_close(c->sid);
    return NULL;
}
