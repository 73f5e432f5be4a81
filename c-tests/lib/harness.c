#include "harness.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

int harness_failures;
const char *harness_name = "";
const char *harness_api = "";
static int passed, failed;

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

static int run_with(const char *name, scenario_fn fn, const struct api *A, struct trace *t) {
    harness_name = name;
    harness_api = A->name;
    harness_failures = 0;
    t->n = 0;
    fn(A, t);
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

socklen_t unix_addr(int abstract, struct sockaddr_un *out) {
    static char dir[64];
    static int counter;
    memset(out, 0, sizeof *out);
    out->sun_family = AF_UNIX;
    if (abstract) {
        int n = snprintf(out->sun_path + 1, sizeof out->sun_path - 1, "xsocket-test-%d-%d",
                         (int)getpid(), counter++);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    }
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/xsocket-test-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    snprintf(out->sun_path, sizeof out->sun_path, "%s/s%d", dir, counter++);
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
