/* Many threads on many sids at once, and many threads on one sid: every byte and
 * every record arrives once, whole and in order; sids stay unique under concurrent
 * xs_socket / xs_close and are never handed out again.
 *
 * Worker threads never call CHECK (the harness counters are not thread-safe): they
 * record what went wrong, and the main thread checks after joining them. */
#include <unistd.h>

#include "concurrency.h"

#define MAX_ERR 160

struct result {
    int failed;
    char why[MAX_ERR];
};

#define FAILED(r, ...)                                                                     \
    do {                                                                                   \
        if (!(r)->failed) snprintf((r)->why, MAX_ERR, __VA_ARGS__);                        \
        (r)->failed = 1;                                                                   \
    } while (0)

static void check_result(const char *who, int i, const struct result *r) {
    if (r->failed) fprintf(stderr, "  %s %d: %s\n", who, i, r->why);
    CHECK(!r->failed);
}

static const int families[] = {AF_INET, AF_UNIX, AF_INET6};

/* ----- one thread per direction and end: blocking send / recv on shared sids ----- */

struct flow {
    int sid;
    uint32_t seed;
    long total;
    long moved;
    struct result r;
};

/* Sends `total` pattern bytes in chunks of varying size, then shuts down for writing. */
static void *flow_send(void *arg) {
    struct flow *f = arg;
    unsigned char *buf = malloc(65536);
    uint32_t rnd = f->seed;
    while (f->moved < f->total) {
        rnd = rnd * 1103515245u + 12345u;
        long n = 1 + (long)((rnd >> 8) % 65536);
        if (n > f->total - f->moved) n = f->total - f->moved;
        pattern_fill(buf, (size_t)n, f->seed, (uint64_t)f->moved);
        ssize_t w = xs_send(f->sid, buf, (size_t)n, 0);
        if (w <= 0) {
            FAILED(&f->r, "send at %ld: %s", f->moved, strerror(errno));
            break;
        }
        f->moved += w;
    }
    if (xs_shutdown(f->sid, SHUT_WR) < 0) FAILED(&f->r, "shutdown: %s", strerror(errno));
    free(buf);
    return NULL;
}

/* Receives until end of stream, checking every byte against the pattern. */
static void *flow_recv(void *arg) {
    struct flow *f = arg;
    unsigned char *buf = malloc(65536);
    uint32_t rnd = f->seed ^ 0x5a5a;
    for (;;) {
        rnd = rnd * 1103515245u + 12345u;
        size_t want = 1 + (rnd >> 8) % 65536;
        ssize_t n = xs_recv(f->sid, buf, want, 0);
        if (n == 0) break;
        if (n < 0) {
            FAILED(&f->r, "recv at %ld: %s", f->moved, strerror(errno));
            break;
        }
        long bad = pattern_check(buf, (size_t)n, f->seed, (uint64_t)f->moved);
        if (bad >= 0) {
            FAILED(&f->r, "wrong byte at offset %ld", f->moved + bad);
            break;
        }
        f->moved += n;
    }
    if (f->moved != f->total) FAILED(&f->r, "received %ld of %ld bytes", f->moved, f->total);
    free(buf);
    return NULL;
}

/* P pairs, each moving data both ways at once: 4 threads per pair (a sender and a
 * receiver on each end), all running together. */
SCENARIO(full_duplex_many_pairs) {
    int fds0 = fd_count();
    enum { MAXP = 8 };
    int P = SCALE(8, 3);
    long total = SCALE(4L << 20, 256L << 10);
    int c[MAXP], s[MAXP];
    struct flow f[MAXP][4];
    pthread_t th[MAXP][4];
    memset(f, 0, sizeof f);
    for (int p = 0; p < P; p++) {
        XS_PASS(stream_pair(A, families[p % 3], SOCK_STREAM, &c[p], &s[p]));
        int sids[4] = {c[p], s[p], s[p], c[p]};
        for (int k = 0; k < 4; k++) {
            f[p][k].sid = sids[k];
            f[p][k].seed = (uint32_t)(p * 2 + k / 2 + 1); /* sender and receiver share it */
            f[p][k].total = total;
        }
    }
    for (int p = 0; p < P; p++)
        for (int k = 0; k < 4; k++)
            CHECK(pthread_create(&th[p][k], NULL, k % 2 ? flow_recv : flow_send, &f[p][k]) == 0);
    for (int p = 0; p < P; p++)
        for (int k = 0; k < 4; k++) pthread_join(th[p][k], NULL);
    for (int p = 0; p < P; p++) {
        for (int k = 0; k < 4; k++) {
            check_result(k % 2 ? "receiver" : "sender", p, &f[p][k].r);
            CHECK(f[p][k].moved == total);
        }
        XS_PASS(A->close(c[p]));
        XS_PASS(A->close(s[p]));
    }
    CHECK(fd_count() == fds0);
}

/* ----- worker threads multiplexing several non-blocking pairs with xs_poll ----- */

struct end {
    int sid;
    uint32_t out_seed, in_seed;
    long sent, received;
    int shut, eof;
};

struct worker {
    int id, npairs;
    long total;
    struct end ends[6];
    struct result r;
};

static void *worker_run(void *arg) {
    struct worker *w = arg;
    int n = w->npairs * 2;
    unsigned char *buf = malloc(32768);
    long idle_until = now_ms() + GUARD_MS;
    for (;;) {
        struct pollfd p[6];
        int open = 0;
        for (int i = 0; i < n; i++) {
            struct end *e = &w->ends[i];
            p[i] = (struct pollfd){e->sid, 0, 0};
            if (!e->eof) p[i].events |= POLLIN;
            if (e->sent < w->total) p[i].events |= POLLOUT;
            open += !e->eof;
        }
        if (!open) break;
        int rc = xs_poll(p, (nfds_t)n, 1000);
        if (rc < 0) {
            FAILED(&w->r, "xs_poll: %s", strerror(errno));
            break;
        }
        if (rc == 0 && now_ms() > idle_until) {
            FAILED(&w->r, "stalled: nothing moved for %d ms", GUARD_MS);
            break;
        }
        if (rc > 0) idle_until = now_ms() + GUARD_MS;
        for (int i = 0; i < n && !w->r.failed; i++) {
            struct end *e = &w->ends[i];
            if (p[i].revents & POLLNVAL) FAILED(&w->r, "POLLNVAL on an open sid");
            if (p[i].revents & POLLOUT && e->sent < w->total) {
                long k = w->total - e->sent < 32768 ? w->total - e->sent : 32768;
                pattern_fill(buf, (size_t)k, e->out_seed, (uint64_t)e->sent);
                ssize_t m = xs_send(e->sid, buf, (size_t)k, 0);
                if (m > 0) e->sent += m;
                else if (m < 0 && errno != EAGAIN) FAILED(&w->r, "send: %s", strerror(errno));
                if (e->sent == w->total && xs_shutdown(e->sid, SHUT_WR) < 0)
                    FAILED(&w->r, "shutdown: %s", strerror(errno));
            }
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR) && !e->eof) {
                ssize_t m = xs_recv(e->sid, buf, 32768, 0);
                if (m == 0) {
                    e->eof = 1;
                } else if (m > 0) {
                    long bad = pattern_check(buf, (size_t)m, e->in_seed, (uint64_t)e->received);
                    if (bad >= 0) FAILED(&w->r, "wrong byte at %ld", e->received + bad);
                    e->received += m;
                } else if (errno != EAGAIN) {
                    FAILED(&w->r, "recv: %s", strerror(errno));
                }
            }
        }
        if (w->r.failed) break;
    }
    for (int i = 0; i < n && !w->r.failed; i++)
        if (w->ends[i].received != w->total || w->ends[i].sent != w->total)
            FAILED(&w->r, "end %d: sent %ld, received %ld of %ld", i, w->ends[i].sent,
                   w->ends[i].received, w->total);
    free(buf);
    return NULL;
}

/* W threads, each pumping 3 pairs (TCP/IPv4, Unix, TCP/IPv6) both ways through
 * xs_poll on non-blocking sids. */
SCENARIO(poll_workers) {
    int fds0 = fd_count();
    enum { MAXW = 8 };
    int W = SCALE(8, 2);
    struct worker w[MAXW];
    pthread_t th[MAXW];
    memset(w, 0, sizeof w);
    for (int i = 0; i < W; i++) {
        w[i].id = i;
        w[i].npairs = 3;
        w[i].total = SCALE(2L << 20, 128L << 10);
        for (int k = 0; k < 3; k++) {
            int c, s;
            XS_PASS(stream_pair(A, families[k], SOCK_STREAM, &c, &s));
            XS_PASS(A->fcntl(c, F_SETFL, O_NONBLOCK));
            XS_PASS(A->fcntl(s, F_SETFL, O_NONBLOCK));
            uint32_t a = (uint32_t)(1000 + i * 10 + k * 2), b = a + 1;
            w[i].ends[2 * k] = (struct end){.sid = c, .out_seed = a, .in_seed = b};
            w[i].ends[2 * k + 1] = (struct end){.sid = s, .out_seed = b, .in_seed = a};
        }
    }
    for (int i = 0; i < W; i++) CHECK(pthread_create(&th[i], NULL, worker_run, &w[i]) == 0);
    for (int i = 0; i < W; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < W; i++) {
        check_result("worker", i, &w[i].r);
        for (int k = 0; k < 6; k++) XS_PASS(A->close(w[i].ends[k].sid));
    }
    CHECK(fd_count() == fds0);
}

/* ----- several threads sharing one sid: whole records, counted ----- */

struct record_hdr {
    uint16_t sender;
    uint16_t len; /* whole record, header included */
    uint32_t seq;
};

#define MAX_SENDERS 8
#define REC_MAX 512

struct shared {
    int send_sid, recv_sid;
    int senders, per_sender;
    int window; /* UDP only: records a sender may have in flight; 0 = no limit */
    atomic_int received[MAX_SENDERS];
    atomic_uchar *seen; /* senders * per_sender */
    atomic_int order_errors;
};

struct sender {
    struct shared *sh;
    int id;
    struct result r;
};

static size_t record_len(int sender, uint32_t seq) {
    return sizeof(struct record_hdr) + 1 + (size_t)((seq * 37u + (unsigned)sender * 11u) % 400u);
}

static void *record_send(void *arg) {
    struct sender *sd = arg;
    struct shared *sh = sd->sh;
    unsigned char buf[REC_MAX];
    for (int seq = 0; seq < sh->per_sender; seq++) {
        if (sh->window) { /* no flow control on UDP: wait for the receiver to catch up */
            long until = now_ms() + GUARD_MS;
            while (seq - atomic_load(&sh->received[sd->id]) >= sh->window && now_ms() < until)
                sched_yield();
            if (seq - atomic_load(&sh->received[sd->id]) >= sh->window) {
                FAILED(&sd->r, "record %d: the receiver stopped at %d", seq,
                       atomic_load(&sh->received[sd->id]));
                return NULL;
            }
        }
        size_t len = record_len(sd->id, (uint32_t)seq);
        struct record_hdr h = {(uint16_t)sd->id, (uint16_t)len, (uint32_t)seq};
        memcpy(buf, &h, sizeof h);
        pattern_fill(buf + sizeof h, len - sizeof h, (uint32_t)(sd->id << 20 | seq), 0);
        ssize_t n = xs_send(sh->send_sid, buf, len, 0);
        if (n != (ssize_t)len) {
            FAILED(&sd->r, "record %d: send returned %zd (%s)", seq, n, strerror(errno));
            return NULL;
        }
    }
    return NULL;
}

struct receiver {
    struct shared *sh;
    int last_seq[MAX_SENDERS]; /* order check when this is the only receiver */
    long records;
    struct result r;
};

/* Receives records until end of stream (seqpacket) or until all have come (UDP). */
static void *record_recv(void *arg) {
    struct receiver *rv = arg;
    struct shared *sh = rv->sh;
    unsigned char buf[REC_MAX + 64];
    int expected = sh->senders * sh->per_sender;
    for (int i = 0; i < MAX_SENDERS; i++) rv->last_seq[i] = -1;
    for (;;) {
        if (sh->window) { /* UDP: no end of stream, stop when everything came */
            int got = 0;
            for (int i = 0; i < sh->senders; i++) got += atomic_load(&sh->received[i]);
            if (got == expected) break;
        }
        ssize_t n = xs_recv(sh->recv_sid, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n < 0) {
            FAILED(&rv->r, "recv: %s", strerror(errno));
            break;
        }
        struct record_hdr h;
        if ((size_t)n < sizeof h) {
            FAILED(&rv->r, "short record of %zd bytes", n);
            break;
        }
        memcpy(&h, buf, sizeof h);
        if (h.sender >= sh->senders || (int)h.seq >= sh->per_sender || h.len != n ||
            (size_t)n != record_len(h.sender, h.seq) ||
            pattern_check(buf + sizeof h, (size_t)n - sizeof h, (uint32_t)(h.sender << 20 | h.seq), 0) >= 0) {
            FAILED(&rv->r, "mixed or damaged record (%zd bytes, sender %u, seq %u, len %u)", n,
                   h.sender, h.seq, h.len);
            break;
        }
        if ((int)h.seq <= rv->last_seq[h.sender]) atomic_fetch_add(&sh->order_errors, 1);
        rv->last_seq[h.sender] = (int)h.seq;
        atomic_fetch_add(&sh->seen[h.sender * sh->per_sender + (int)h.seq], 1);
        atomic_fetch_add(&sh->received[h.sender], 1);
        rv->records++;
    }
    return NULL;
}

/* Runs `senders` threads sending on sh->send_sid and `receivers` threads receiving
 * on sh->recv_sid; checks every record came exactly once (and in order per sender
 * when there is one receiver). `eof` ends the receivers by a shutdown. */
static void run_records(struct shared *sh, int receivers, int eof) {
    enum { MAXR = 4 };
    struct sender sd[MAX_SENDERS];
    struct receiver rv[MAXR];
    pthread_t ts[MAX_SENDERS], tr[MAXR];
    memset(sd, 0, sizeof sd);
    memset(rv, 0, sizeof rv);
    int total = sh->senders * sh->per_sender;
    sh->seen = calloc((size_t)total, sizeof *sh->seen);
    for (int i = 0; i < receivers; i++) {
        rv[i].sh = sh;
        CHECK(pthread_create(&tr[i], NULL, record_recv, &rv[i]) == 0);
    }
    for (int i = 0; i < sh->senders; i++) {
        sd[i] = (struct sender){.sh = sh, .id = i};
        CHECK(pthread_create(&ts[i], NULL, record_send, &sd[i]) == 0);
    }
    for (int i = 0; i < sh->senders; i++) pthread_join(ts[i], NULL);
    if (eof) XS_PASS(xs_shutdown(sh->send_sid, SHUT_WR));
    for (int i = 0; i < receivers; i++) pthread_join(tr[i], NULL);
    long records = 0;
    for (int i = 0; i < sh->senders; i++) check_result("sender", i, &sd[i].r);
    for (int i = 0; i < receivers; i++) {
        check_result("receiver", i, &rv[i].r);
        records += rv[i].records;
        if (receivers > 1) CHECK(rv[i].records > 0); /* every receiver took part */
    }
    CHECK(records == total);
    int missing = 0, twice = 0;
    for (int i = 0; i < total; i++) {
        missing += sh->seen[i] == 0;
        twice += sh->seen[i] > 1;
    }
    if (missing || twice) fprintf(stderr, "  %d records missing, %d seen twice\n", missing, twice);
    CHECK(missing == 0 && twice == 0);
    if (receivers == 1) CHECK(atomic_load(&sh->order_errors) == 0);
    free(sh->seen);
}

static void seqpacket_shared(int receivers) {
    int fds0 = fd_count();
    struct shared sh = {.senders = SCALE(6, 3), .per_sender = SCALE(3000, 300)};
    XS_PASS(stream_pair(&XS, AF_UNIX, SOCK_SEQPACKET, &sh.send_sid, &sh.recv_sid));
    run_records(&sh, receivers, 1);
    XS_PASS(xs_close(sh.send_sid));
    XS_PASS(xs_close(sh.recv_sid));
    CHECK(fd_count() == fds0);
}

/* Six threads send records on ONE seqpacket sid; one receiver sees them whole, each
 * once, and in each sender's order. */
SCENARIO(seqpacket_shared_senders) { seqpacket_shared(1); }
/* The same with three receivers sharing the other sid. */
SCENARIO(seqpacket_shared_senders_and_receivers) { seqpacket_shared(3); }

/* Four threads send datagrams on ONE connected UDP sid (with a small window each,
 * since UDP has no flow control); the receiver sees every datagram whole, once, in
 * each sender's order. */
SCENARIO(udp_shared_senders) {
    int fds0 = fd_count();
    struct shared sh = {.senders = 4, .per_sender = SCALE(2000, 200), .window = 16};
    struct sockaddr_storage addr;
    socklen_t len;
    sh.recv_sid = XS_PASS(listener(&XS, AF_INET, SOCK_DGRAM, &addr, &len));
    XS_PASS(set_timeout_ms(&XS, sh.recv_sid, SO_RCVTIMEO, GUARD_MS));
    sh.send_sid = XS_PASS(xs_socket(AF_INET, SOCK_DGRAM, 0));
    XS_PASS(xs_connect(sh.send_sid, (struct sockaddr *)&addr, len));
    run_records(&sh, 1, 0);
    XS_PASS(xs_close(sh.send_sid));
    XS_PASS(xs_close(sh.recv_sid));
    CHECK(fd_count() == fds0);
}

/* ----- sid churn ----- */

struct churn {
    int id, rounds;
    int *sids; /* every sid this thread got */
    int n;
    struct result r;
};

static void *churn_run(void *arg) {
    struct churn *ch = arg;
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_STREAM | SOCK_NONBLOCK};
    int open[4];
    for (int round = 0; round < ch->rounds && !ch->r.failed; round++) {
        int k = 1 + round % 4; /* hold up to four open at once */
        for (int i = 0; i < k; i++) {
            open[i] = xs_socket(families[(ch->id + i) % 3], types[(round + i) % 3], 0);
            if (open[i] <= 0) {
                FAILED(&ch->r, "xs_socket returned %d (%s)", open[i], strerror(errno));
                k = i;
                break;
            }
            ch->sids[ch->n++] = open[i];
        }
        for (int i = 0; i < k; i++) {
            if (xs_close(open[i]) != 0) FAILED(&ch->r, "close %d: %s", open[i], strerror(errno));
            errno = 0;
            if (xs_close(open[i]) != -1 || errno != EBADF)
                FAILED(&ch->r, "second close of %d did not fail with EBADF", open[i]);
        }
    }
    return NULL;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Eight threads create and close sockets as fast as they can: no sid is ever handed
 * out twice (neither while open nor after close), a closed sid is EBADF, and no
 * descriptor leaks. */
SCENARIO(socket_close_churn) {
    int fds0 = fd_count();
    enum { MAXT = 8 };
    int T = SCALE(8, 3), rounds = SCALE(1000, 100);
    struct churn ch[MAXT];
    pthread_t th[MAXT];
    memset(ch, 0, sizeof ch);
    for (int i = 0; i < T; i++) {
        ch[i].id = i;
        ch[i].rounds = rounds;
        ch[i].sids = malloc(sizeof(int) * (size_t)rounds * 4);
        CHECK(pthread_create(&th[i], NULL, churn_run, &ch[i]) == 0);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    int total = 0;
    for (int i = 0; i < T; i++) {
        check_result("churn thread", i, &ch[i].r);
        total += ch[i].n;
    }
    int *all = malloc(sizeof(int) * (size_t)total);
    for (int i = 0, k = 0; i < T; i++) {
        memcpy(all + k, ch[i].sids, sizeof(int) * (size_t)ch[i].n);
        k += ch[i].n;
        free(ch[i].sids);
    }
    qsort(all, (size_t)total, sizeof(int), cmp_int);
    int dups = 0;
    for (int i = 1; i < total; i++) dups += all[i] == all[i - 1];
    if (dups) fprintf(stderr, "  %d sids handed out twice\n", dups);
    CHECK(dups == 0);
    CHECK(total > 0 && all[0] > 0);
    /* A fresh socket gets a sid never seen before. */
    int s = XS_PASS(xs_socket(AF_INET, SOCK_STREAM, 0));
    CHECK(bsearch(&s, all, (size_t)total, sizeof(int), cmp_int) == NULL);
    XS_PASS(xs_close(s));
    free(all);
    CHECK(fd_count() == fds0);
}

/* ----- using a sid while another thread closes it ----- */

struct racer {
    int sid;
    atomic_int stop, done;
    long ok, ebadf, other;
    int other_errno;
};

static void *race_use(void *arg) {
    struct racer *r = arg;
    char buf[512] = {0};
    while (!atomic_load(&r->stop)) {
        ssize_t n = xs_send(r->sid, buf, sizeof buf, MSG_DONTWAIT);
        if (n >= 0 || errno == EAGAIN) {
            n = xs_recv(r->sid, buf, sizeof buf, MSG_DONTWAIT);
            if (n >= 0 || errno == EAGAIN) {
                r->ok++;
                continue;
            }
        }
        if (errno == EBADF) {
            r->ebadf++;
            break; /* closed: it stays EBADF */
        }
        r->other++;
        r->other_errno = errno;
        break;
    }
    atomic_store(&r->done, 1);
    return NULL;
}

/* A thread keeps sending and receiving on a sid that the main thread closes at a
 * random moment: every call either works or fails with EBADF, nothing else (and
 * ASan/valgrind see no use after free); the thread always sees the close. */
SCENARIO(use_while_closing) {
    int fds0 = fd_count();
    int rounds = SCALE(300, 40), missed = 0, other = 0;
    for (int i = 0; i < rounds; i++) {
        int c, s;
        XS_PASS(stream_pair(&XS, families[i % 3], SOCK_STREAM, &c, &s));
        struct racer r = {.sid = c};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, race_use, &r) == 0);
        for (volatile int spin = (i * 7919) % 20000; spin > 0; spin--) {
        }
        XS_PASS(xs_close(c));
        if (!wait_flag(&r.done, GUARD_MS)) atomic_store(&r.stop, 1);
        pthread_join(th, NULL);
        if (r.other) {
            other++;
            fprintf(stderr, "  round %d: unexpected %s\n", i, strerror(r.other_errno));
        }
        missed += r.ebadf != 1;
        XS_PASS(xs_close(s));
    }
    CHECK(other == 0);
    CHECK(missed == 0);
    CHECK(fd_count() == fds0);
}

int main(void) {
    RUN_ONCE(full_duplex_many_pairs);
    RUN_ONCE(poll_workers);
    RUN_ONCE(seqpacket_shared_senders);
    RUN_ONCE(seqpacket_shared_senders_and_receivers);
    RUN_ONCE(udp_shared_senders);
    RUN_ONCE(socket_close_churn);
    RUN_ONCE(use_while_closing);
    return harness_finish();
}
