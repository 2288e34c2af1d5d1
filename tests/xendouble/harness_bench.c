/* The harness's hot path in C, for benchmarks (loaded with ctypes; see
 * XenDouble.bench_sync / bench_buffered in tests/integration/xendouble.py).
 *
 * While a benchmark runs, the Python harness stops reading the device
 * model's control connection and hands its fd to these loops, which play
 * Xen for one vCPU (or the buffered ring) at C speed: write the request,
 * deliver the event (with the driver's masking), read the device model's
 * one-way notify/unmask lines, complete the request. Any other line ends
 * the loop early and is handed back to Python unread, so the harness stays
 * the only place that answers requests. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE 32
#define SLOT_STATE_BYTE 30
#define STATE_NONE 0
#define STATE_READY 1
#define STATE_INPROCESS 2
#define STATE_RESP_READY 3
#define RING_SLOTS 511u
#define WAIT_MS 10000

/* What the loops share with the Python side. */
struct xdh_bench {
    int ctl_fd;           /* control connection of the device model */
    int evt_fd;           /* event connection of its xenevtchn handle */
    uint32_t local_port;  /* the device model's end of the channel */
    int masked, pending;  /* the driver's mask state for that port (in/out) */
    char *leftover;       /* bytes read past the point where the loop stopped */
    size_t leftover_len, leftover_cap;
    char *deferred;       /* one-way lines about other ports, for Python */
    size_t deferred_len, deferred_cap;
    uint64_t notifies;    /* notify lines seen for local_port */
};

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*cap - *len < n) {
        size_t ncap = (*cap + n) * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

int xdh_bench_feed(struct xdh_bench *b, const char *data, size_t n);

int xdh_bench_sync(struct xdh_bench *b, uint8_t *slot, uint64_t n, uint64_t *latency_ns,
                   const uint8_t *request);
int xdh_bench_buffered(struct xdh_bench *b, uint8_t *page, uint64_t n, uint32_t word, uint32_t size8,
                       int atomic_mode);
void xdh_bench_free(struct xdh_bench *b);

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int send_event(struct xdh_bench *b)
{
    if (b->masked) {
        b->pending = 1;
        return 0;
    }
    b->masked = 1;
    for (;;) {
        ssize_t w = write(b->evt_fd, &b->local_port, sizeof(b->local_port));
        if (w == (ssize_t)sizeof(b->local_port))
            return 0;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = { .fd = b->evt_fd, .events = POLLOUT };
            if (poll(&p, 1, WAIT_MS) <= 0)
                return -ETIMEDOUT;
            continue;
        }
        return w < 0 ? -errno : -EIO;
    }
}

/* What a line from the double is: 1 a notify and 2 an unmask of this
 * benchmark's port, 3 another one-way line (Python takes it afterwards),
 * 0 a request only Python can answer. */
static int classify(const struct xdh_bench *b, const char *line, size_t len)
{
    const char *port;
    char tmp[256];
    int kind;

    if (len >= sizeof(tmp))
        return 0;
    memcpy(tmp, line, len);
    tmp[len] = '\0';
    if (strstr(tmp, "\"op\":\"xenevtchn_notify\""))
        kind = 1;
    else if (strstr(tmp, "\"op\":\"xenevtchn_unmask\""))
        kind = 2;
    else
        return strstr(tmp, "\"op\":\"xenforeignmemory_abort\"") ? 3 : 0;
    port = strstr(tmp, "\"port\":");
    if (!port || strtoul(port + 7, NULL, 10) != b->local_port)
        return 3;
    return kind;
}

/* Reads control lines until a notify of the port arrives (returns 1), the
 * time runs out, or a line for the harness comes (returns 0: it and what
 * follows are kept in b->leftover). With wait_ms 0 it only takes what is
 * there. */
static int pump(struct xdh_bench *b, int wait_ms, bool want_notify)
{
    char buf[4096];

    for (;;) {
        char *nl;
        while (b->leftover_len && (nl = memchr(b->leftover, '\n', b->leftover_len))) {
            size_t len = (size_t)(nl - b->leftover);
            int kind = classify(b, b->leftover, len);
            if (kind == 0)
                return 0; /* not ours: Python handles it and the rest */
            if (kind == 3) {
                int rc = append(&b->deferred, &b->deferred_len, &b->deferred_cap, b->leftover, len + 1);
                if (rc < 0)
                    return rc;
            }
            memmove(b->leftover, nl + 1, b->leftover_len - len - 1);
            b->leftover_len -= len + 1;
            if (kind == 3) {
                continue;
            } else if (kind == 2) {
                b->masked = 0;
                if (b->pending) {
                    b->pending = 0;
                    int rc = send_event(b);
                    if (rc < 0)
                        return rc;
                }
            } else {
                b->notifies++;
                if (want_notify)
                    return 1;
            }
        }
        struct pollfd p = { .fd = b->ctl_fd, .events = POLLIN };
        int r = poll(&p, 1, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return wait_ms ? -ETIMEDOUT : 0;
        ssize_t got = read(b->ctl_fd, buf, sizeof(buf));
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EPIPE;
        int rc = append(&b->leftover, &b->leftover_len, &b->leftover_cap, buf, (size_t)got);
        if (rc < 0)
            return rc;
    }
}

static bool foreign_line_waiting(const struct xdh_bench *b)
{
    /* pump() consumes every line of ours; a complete line left is not. */
    return b->leftover_len && memchr(b->leftover, '\n', b->leftover_len);
}

/* n synchronous requests on one vCPU slot: request is the 32-byte slot
 * image to write (flags in its state byte; the state is set here).
 * Returns n, or a negative errno (-EBUSY: the device model made a call
 * meanwhile, which only the Python harness can answer). */
int xdh_bench_sync(struct xdh_bench *b, uint8_t *slot, uint64_t n, uint64_t *latency_ns,
                   const uint8_t *request)
{
    uint8_t flags = request[SLOT_STATE_BYTE] & 0xf0;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t t0;
        int rc;

        memcpy(slot, request, SLOT_STATE_BYTE);
        slot[SLOT_STATE_BYTE + 1] = request[SLOT_STATE_BYTE + 1];
        __atomic_store_n(slot + SLOT_STATE_BYTE, (uint8_t)(flags | STATE_READY), __ATOMIC_RELEASE);
        t0 = now_ns();
        rc = send_event(b);
        if (rc < 0)
            return rc;
        for (;;) {
            rc = pump(b, WAIT_MS, true);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return -EBUSY;
            uint8_t state = __atomic_load_n(slot + SLOT_STATE_BYTE, __ATOMIC_ACQUIRE) & 0x0f;
            if (state == STATE_RESP_READY)
                break;
            if (state != STATE_READY && state != STATE_INPROCESS)
                return -EPROTO;
        }
        latency_ns[i] = now_ns() - t0;
        __atomic_store_n(slot + SLOT_STATE_BYTE, (uint8_t)(flags | STATE_NONE), __ATOMIC_RELEASE);
    }
    return (int)n;
}

/* Up to n buffered writes (word: the first 32-bit half of buf_ioreq_t;
 * size8: two slots each), as fast as the ring takes them, then waits until
 * the device model has read them all. Returns how many were written, fewer
 * than n when the device model made a call the Python harness must answer
 * first, or a negative errno. */
int xdh_bench_buffered(struct xdh_bench *b, uint8_t *page, uint64_t n, uint32_t word, uint32_t size8,
                       int atomic_mode)
{
    uint32_t *rp = (uint32_t *)page, *wp = rp + 1;
    uint64_t *pair = (uint64_t *)page;
    uint32_t *slots = (uint32_t *)(page + 8);
    uint32_t qw = size8 ? 1 : 0;
    int rc;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t since = now_ns();
        for (;;) {
            uint32_t r = __atomic_load_n(rp, __ATOMIC_ACQUIRE), w = __atomic_load_n(wp, __ATOMIC_RELAXED);
            if (w - r < RING_SLOTS - qw)
                break;
            rc = pump(b, 0, false);
            if (rc < 0)
                return rc;
            if (foreign_line_waiting(b))
                return (int)i;
            if (now_ns() - since > (uint64_t)WAIT_MS * 1000000u)
                return -ETIMEDOUT;
        }
        uint32_t w = __atomic_load_n(wp, __ATOMIC_RELAXED);
        slots[2 * (w % RING_SLOTS)] = word;
        slots[2 * (w % RING_SLOTS) + 1] = (uint32_t)i;
        if (qw) {
            slots[2 * ((w + 1) % RING_SLOTS)] = word;
            slots[2 * ((w + 1) % RING_SLOTS) + 1] = (uint32_t)(i >> 32);
        }
        __atomic_store_n(wp, w + 1 + qw, __ATOMIC_RELEASE);
        /* Xen's ATOMIC-mode canonicalisation of the pointer pair. */
        for (uint32_t tries = qw; atomic_mode && tries < RING_SLOTS; tries++) {
            uint64_t old = __atomic_load_n(pair, __ATOMIC_ACQUIRE);
            uint32_t r = (uint32_t)old, wv = (uint32_t)(old >> 32), k;
            if (r < RING_SLOTS)
                break;
            k = r / RING_SLOTS;
            uint64_t nv = (uint64_t)(r - k * RING_SLOTS) | ((uint64_t)(wv - k * RING_SLOTS) << 32);
            __atomic_compare_exchange_n(pair, &old, nv, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        }
        rc = send_event(b);
        if (rc < 0)
            return rc;
        rc = pump(b, 0, false);
        if (rc < 0)
            return rc;
        if (foreign_line_waiting(b))
            return (int)i + 1;
    }
    for (uint64_t since = now_ns();;) {
        if (__atomic_load_n(rp, __ATOMIC_ACQUIRE) == __atomic_load_n(wp, __ATOMIC_ACQUIRE))
            break;
        rc = pump(b, 0, false);
        if (rc < 0)
            return rc;
        if (foreign_line_waiting(b))
            return (int)n;
        if (now_ns() - since > (uint64_t)WAIT_MS * 1000000u)
            return -ETIMEDOUT;
    }
    return (int)n;
}

/* Bytes the Python side had already read from the control connection. */
int xdh_bench_feed(struct xdh_bench *b, const char *data, size_t n)
{
    return append(&b->leftover, &b->leftover_len, &b->leftover_cap, data, n);
}

void xdh_bench_free(struct xdh_bench *b)
{
    free(b->leftover);
    free(b->deferred);
    b->leftover = b->deferred = NULL;
    b->leftover_len = b->leftover_cap = b->deferred_len = b->deferred_cap = 0;
}
