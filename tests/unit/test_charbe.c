/* Host character backends: real ptys, files, unix sockets and pipes, pumped
 * through the real event loop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/charbe.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"

#define BIG (1u << 20)

struct frontend {
    uint8_t *buf;
    size_t len;
    size_t credits; /* what can_receive reports */
    unsigned calls_while_empty;
};

struct fixture {
    struct loop *loop;
    char dir[64];
    char path[128];
    struct frontend fe;
    struct charbe_ops ops;
};

static size_t fe_can_receive(void *opaque)
{
    struct frontend *fe = opaque;
    size_t space = BIG - fe->len;

    return fe->credits < space ? fe->credits : space;
}

static void fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct frontend *fe = opaque;

    /* The backend must never hand over more than was offered. */
    assert_true(len <= fe->credits);
    assert_true(len > 0);
    memcpy(fe->buf + fe->len, buf, len);
    fe->len += len;
    fe->credits -= len;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(loop_create(&f->loop), 0);
    strcpy(f->dir, "/tmp/test_charbe.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    f->fe.buf = malloc(BIG);
    assert_non_null(f->fe.buf);
    f->fe.credits = SIZE_MAX;
    f->ops = (struct charbe_ops){fe_can_receive, fe_receive, &f->fe};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    loop_destroy(f->loop);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f->fe.buf);
    free(f);
    return 0;
}

/* Runs the loop until fe has at least want bytes or timeout_ms passed. */
static void pump_until_received(struct fixture *f, size_t want, int timeout_ms)
{
    uint64_t end = loop_now_ns() + (uint64_t)timeout_ms * 1000000;

    while (f->fe.len < want && loop_now_ns() < end)
        loop_run_once(f->loop, 10);
}

static void pump_for(struct fixture *f, int ms)
{
    uint64_t end = loop_now_ns() + (uint64_t)ms * 1000000;

    while (loop_now_ns() < end)
        loop_run_once(f->loop, 5);
}

/* An idle loop must sleep: nothing the backend watches may be ready
 * forever (a pending client, a hang-up, input nobody takes). */
static void assert_loop_idles(struct fixture *f)
{
    uint64_t t0 = loop_now_ns();

    assert_int_equal(loop_run_once(f->loop, 50), 0);
    assert_true(loop_now_ns() - t0 >= 40 * 1000000ull);
}

static void pump_until_connected(struct fixture *f, struct charbe *be,
                                 bool want, int timeout_ms)
{
    uint64_t end = loop_now_ns() + (uint64_t)timeout_ms * 1000000;

    while (charbe_connected(be) != want && loop_now_ns() < end)
        loop_run_once(f->loop, 10);
    assert_int_equal(charbe_connected(be), want);
}

/* Reads exactly len bytes from fd (waiting up to a second per chunk). */
static void read_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        assert_int_equal(poll(&p, 1, 1000), 1);
        n = read(fd, (char *)buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static bool nothing_to_read(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    strcpy(sa.sun_path, path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 7 + i / 251) & 0xff);
}

/* ---- specs ---- */

static void test_bad_specs_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "", "bogus", "pty:x", "file:", "unix:", "unix:,server",
        "unix:/tmp/x,bogus", "unix:/tmp/x,server=maybe", "unix:/tmp/x,nowait=on",
        "tcp:localhost:4555", "vc", "stdio,signal=off", "nul",
        ("unix:/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,server,nowait"),
    };
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logs = open_memstream(&logbuf, &loglen);

    log_set_stream(logs);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct charbe *be = (struct charbe *)1;

        assert_int_equal(charbe_open(f->loop, bad[i], &f->ops, &be), -EINVAL);
        assert_null(be);
    }
    log_set_stream(NULL);
    fclose(logs);
    /* Each rejection says which spec was wrong. */
    assert_non_null(strstr(logbuf, "'bogus'"));
    assert_non_null(strstr(logbuf, "'unix:/tmp/x,bogus'"));
    assert_non_null(strstr(logbuf, "too long"));
    free(logbuf);
}

static void test_none_is_no_device(void **state)
{
    struct fixture *f = *state;
    struct charbe *be = (struct charbe *)1;
    struct charbe_stats st;

    assert_int_equal(charbe_open(f->loop, "none", &f->ops, &be), 0);
    assert_null(be);
    /* Everything tolerates the absent backend. */
    assert_int_equal(charbe_write(NULL, (const uint8_t *)"x", 1), 0);
    assert_string_equal(charbe_filename(NULL), "none");
    assert_null(charbe_pty_path(NULL));
    assert_false(charbe_connected(NULL));
    charbe_accept_input(NULL);
    charbe_get_stats(NULL, &st);
    assert_int_equal(st.written + st.dropped + st.received, 0);
    charbe_close(NULL);
}

static void test_null_discards(void **state)
{
    struct fixture *f = *state;
    struct charbe *be;
    struct charbe_stats st;

    assert_int_equal(charbe_open(f->loop, "null", &f->ops, &be), 0);
    assert_string_equal(charbe_filename(be), "null");
    assert_null(charbe_pty_path(be));
    assert_true(charbe_connected(be));
    assert_int_equal(charbe_write(be, (const uint8_t *)"hello", 5), 5);
    pump_for(f, 20);
    charbe_get_stats(be, &st);
    assert_int_equal(st.written, 5);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(f->fe.len, 0);
    charbe_close(be);
}

/* ---- file ---- */

static void test_file_appends(void **state)
{
    struct fixture *f = *state;
    char path[160], spec[170], buf[64];
    struct charbe *be;
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "%s/out.log", f->dir);
    fp = fopen(path, "w");
    fputs("old\n", fp);
    fclose(fp);
    snprintf(spec, sizeof(spec), "file:%s", path);
    assert_int_equal(charbe_open(f->loop, spec, &f->ops, &be), 0);
    assert_string_equal(charbe_filename(be), spec);
    assert_true(charbe_connected(be));
    assert_int_equal(charbe_write(be, (const uint8_t *)"abc", 3), 3);
    assert_int_equal(charbe_write(be, (const uint8_t *)"\0\xff\r\n", 4), 4);
    pump_for(f, 10);
    charbe_close(be);

    fp = fopen(path, "r");
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "old\nabc\0\xff\r\n", 11);
}

static void test_file_created_and_errors(void **state)
{
    struct fixture *f = *state;
    char path[160], spec[170];
    struct charbe *be;
    struct stat st;
    FILE *logs = fopen("/dev/null", "w");

    snprintf(path, sizeof(path), "%s/new.log", f->dir);
    snprintf(spec, sizeof(spec), "file:%s", path);
    assert_int_equal(charbe_open(f->loop, spec, NULL, &be), 0);
    assert_int_equal(charbe_write(be, (const uint8_t *)"12345", 5), 5);
    charbe_close(be);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);

    log_set_stream(logs);
    snprintf(spec, sizeof(spec), "file:%s/missing/dir/x", f->dir);
    assert_int_equal(charbe_open(f->loop, spec, NULL, &be), -ENOENT);
    log_set_stream(NULL);
    fclose(logs);
}

/* ---- pty ---- */

static int open_slave(struct charbe *be)
{
    int fd = open(charbe_pty_path(be), O_RDWR | O_NOCTTY | O_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

static void test_pty_round_trip(void **state)
{
    struct fixture *f = *state;
    struct charbe *be;
    const char *path;
    char buf[16];
    int slave;

    assert_int_equal(charbe_open(f->loop, "pty", &f->ops, &be), 0);
    path = charbe_pty_path(be);
    assert_non_null(path);
    assert_int_equal(strncmp(path, "/dev/pts/", 9), 0);
    assert_int_equal(strncmp(charbe_filename(be), "pty:", 4), 0);
    assert_string_equal(charbe_filename(be) + 4, path);

    slave = open_slave(be);
    assert_int_equal(charbe_write(be, (const uint8_t *)"hello", 5), 5);
    read_exact(slave, buf, 5);
    assert_memory_equal(buf, "hello", 5);
    /* Raw: no CR added to LF, control characters pass untouched. */
    assert_int_equal(charbe_write(be, (const uint8_t *)"a\nb\x03\x7f", 5), 5);
    read_exact(slave, buf, 5);
    assert_memory_equal(buf, "a\nb\x03\x7f", 5);
    assert_true(nothing_to_read(slave, 20));

    /* And no echo of what the reader types back to it. */
    write_all(slave, "typed\r", 6);
    pump_until_received(f, 6, 1000);
    assert_int_equal(f->fe.len, 6);
    assert_memory_equal(f->fe.buf, "typed\r", 6);
    assert_true(nothing_to_read(slave, 20));

    close(slave);
    charbe_close(be);
}

static void test_pty_reader_leaves_and_returns(void **state)
{
    struct fixture *f = *state;
    struct charbe *be;
    struct charbe_stats st;
    char buf[8];
    int slave;

    assert_int_equal(charbe_open(f->loop, "pty", &f->ops, &be), 0);
    slave = open_slave(be);
    assert_int_equal(charbe_write(be, (const uint8_t *)"one", 3), 3);
    read_exact(slave, buf, 3);
    close(slave);

    /* The hang-up is noticed; writes are then dropped without blocking. */
    pump_until_connected(f, be, false, 1000);
    assert_int_equal(charbe_write(be, (const uint8_t *)"lost", 4), 0);
    charbe_get_stats(be, &st);
    assert_int_equal(st.dropped, 4);
    assert_int_equal(st.written, 3);
    /* No busy loop on the hung-up master. */
    assert_loop_idles(f);

    /* A new reader: output reaches it at once. */
    slave = open_slave(be);
    assert_int_equal(charbe_write(be, (const uint8_t *)"two", 3), 3);
    assert_true(charbe_connected(be));
    read_exact(slave, buf, 3);
    assert_memory_equal(buf, "two", 3);
    write_all(slave, "in", 2);
    pump_until_received(f, 2, 1000);
    assert_int_equal(f->fe.len, 2);
    assert_memory_equal(f->fe.buf, "in", 2);
    close(slave);
    charbe_close(be);
}

static void test_pty_input_reader_found_by_poll(void **state)
{
    struct fixture *f = *state;
    struct charbe *be;
    int slave;

    assert_int_equal(charbe_open(f->loop, "pty", &f->ops, &be), 0);
    slave = open_slave(be);
    close(slave);
    pump_until_connected(f, be, false, 1000);
    /* The reader comes back and only types: found by the periodic check. */
    slave = open_slave(be);
    write_all(slave, "k", 1);
    pump_until_received(f, 1, 3000);
    assert_int_equal(f->fe.len, 1);
    assert_int_equal(f->fe.buf[0], 'k');
    assert_true(charbe_connected(be));
    close(slave);
    charbe_close(be);
}

static void test_pty_without_reader_never_blocks(void **state)
{
    struct fixture *f = *state;
    struct charbe *be;
    struct charbe_stats st;
    uint8_t chunk[1024];
    uint8_t *expect = malloc(256 * 1024), *got;
    size_t accepted = 0, total = 0, have = 0;
    int slave;

    assert_non_null(expect);
    assert_int_equal(charbe_open(f->loop, "pty", &f->ops, &be), 0);
    for (int c = 0; c < 256; c++) {
        size_t n;

        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = pattern(total + i);
        n = charbe_write(be, chunk, sizeof(chunk));
        memcpy(expect + accepted, chunk, n);
        accepted += n;
        total += sizeof(chunk);
    }
    charbe_get_stats(be, &st);
    assert_true(accepted >= CHARBE_OUT_QUEUE);
    assert_true(accepted < total);
    assert_int_equal(st.dropped, total - accepted);

    /* A reader that attaches later gets what was accepted, in order. */
    slave = open_slave(be);
    fcntl(slave, F_SETFL, O_NONBLOCK);
    got = malloc(accepted);
    assert_non_null(got);
    {
        uint64_t end = loop_now_ns() + 5000000000ull;

        while (have < accepted && loop_now_ns() < end) {
            ssize_t n = read(slave, got + have, accepted - have);

            if (n > 0)
                have += (size_t)n;
            loop_run_once(f->loop, 5);
        }
    }
    assert_int_equal(have, accepted);
    assert_memory_equal(got, expect, accepted);
    assert_true(nothing_to_read(slave, 20));
    close(slave);
    charbe_close(be);
    free(got);
    free(expect);
}

/* ---- unix server ---- */

static struct charbe *open_server(struct fixture *f, const struct charbe_ops *ops)
{
    char spec[200];
    struct charbe *be;

    snprintf(spec, sizeof(spec), "unix:%s,server,nowait", f->path);
    assert_int_equal(charbe_open(f->loop, spec, ops, &be), 0);
    return be;
}

static void test_unix_server_clients_in_turn(void **state)
{
    struct fixture *f = *state;
    char expect_name[200], buf[16];
    struct charbe *be = open_server(f, &f->ops);
    int a, b;

    snprintf(expect_name, sizeof(expect_name), "unix:%s,server", f->path);
    assert_string_equal(charbe_filename(be), expect_name);
    assert_false(charbe_connected(be));
    /* Nobody connected: output is dropped, not queued for later. */
    assert_int_equal(charbe_write(be, (const uint8_t *)"early", 5), 0);

    a = connect_unix(f->path);
    pump_until_connected(f, be, true, 1000);
    write_all(a, "ping", 4);
    pump_until_received(f, 4, 1000);
    assert_int_equal(f->fe.len, 4);
    assert_memory_equal(f->fe.buf, "ping", 4);
    assert_int_equal(charbe_write(be, (const uint8_t *)"pong", 4), 4);
    read_exact(a, buf, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_true(nothing_to_read(a, 10)); /* "early" was never sent */

    /* A second client waits while the first is served. */
    b = connect_unix(f->path);
    write_all(b, "from-b", 6);
    pump_for(f, 50);
    assert_int_equal(f->fe.len, 4);
    assert_loop_idles(f);
    assert_int_equal(charbe_write(be, (const uint8_t *)"to-a", 4), 4);
    read_exact(a, buf, 4);
    assert_memory_equal(buf, "to-a", 4);
    assert_true(nothing_to_read(b, 20));

    /* The first leaves: the second is accepted, its early bytes intact. */
    close(a);
    pump_until_received(f, 10, 1000);
    assert_int_equal(f->fe.len, 10);
    assert_memory_equal(f->fe.buf, "pingfrom-b", 10);
    assert_true(charbe_connected(be));
    assert_int_equal(charbe_write(be, (const uint8_t *)"to-b", 4), 4);
    read_exact(b, buf, 4);
    assert_memory_equal(buf, "to-b", 4);
    close(b);
    pump_until_connected(f, be, false, 1000);
    charbe_close(be);
    /* The socket file goes away with the backend. */
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_unix_server_waits_for_first_client(void **state)
{
    struct fixture *f = *state;
    char spec[200];
    struct charbe *be;
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char reply[2];
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        strcpy(sa.sun_path, f->path);
        for (int i = 0; i < 500; i++) {
            if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                break;
            usleep(10000);
        }
        if (write(fd, "hi", 2) != 2 || read(fd, reply, 2) != 2)
            _exit(2);
        _exit(memcmp(reply, "ok", 2) ? 3 : 0);
    }
    snprintf(spec, sizeof(spec), "unix:%s,server", f->path);
    assert_int_equal(charbe_open(f->loop, spec, &f->ops, &be), 0);
    /* Open returned only once the client was there. */
    assert_true(charbe_connected(be));
    pump_until_received(f, 2, 2000);
    assert_int_equal(f->fe.len, 2);
    assert_memory_equal(f->fe.buf, "hi", 2);
    assert_int_equal(charbe_write(be, (const uint8_t *)"ok", 2), 2);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    charbe_close(be);
}

static void test_unix_client(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char spec[200], buf[8];
    struct charbe *be;
    int lfd, peer;

    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    snprintf(spec, sizeof(spec), "unix:%s", f->path);
    assert_int_equal(charbe_open(f->loop, spec, &f->ops, &be), 0);
    assert_string_equal(charbe_filename(be), spec);
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    assert_true(charbe_connected(be));
    assert_int_equal(charbe_write(be, (const uint8_t *)"out", 3), 3);
    read_exact(peer, buf, 3);
    assert_memory_equal(buf, "out", 3);
    write_all(peer, "back", 4);
    pump_until_received(f, 4, 1000);
    assert_memory_equal(f->fe.buf, "back", 4);
    close(peer);
    pump_until_connected(f, be, false, 1000);
    assert_int_equal(charbe_write(be, (const uint8_t *)"x", 1), 0);
    charbe_close(be);
    close(lfd);
    /* Not ours to unlink: the server's socket file stays. */
    assert_int_equal(access(f->path, F_OK), 0);
}

/* ---- flow control ---- */

static void test_flow_control_loses_nothing(void **state)
{
    struct fixture *f = *state;
    struct charbe *be = open_server(f, &f->ops);
    struct charbe_stats st;
    uint8_t data[1000];
    int c;

    f->fe.credits = 0;
    c = connect_unix(f->path);
    pump_until_connected(f, be, true, 1000);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = pattern(i);
    write_all(c, data, sizeof(data));
    pump_for(f, 50);
    assert_int_equal(f->fe.len, 0);
    assert_loop_idles(f);
    charbe_get_stats(be, &st);
    assert_int_equal(st.received, 0);

    /* Room for 7 at a time: every byte arrives, in order, and no more than
     * offered (fe_receive asserts that). */
    for (int round = 0; round < 200 && f->fe.len < sizeof(data); round++) {
        size_t before = f->fe.len;

        f->fe.credits = 7;
        charbe_accept_input(be);
        pump_until_received(f, before + 7 > sizeof(data) ? sizeof(data)
                                                         : before + 7, 1000);
        /* Without a new accept_input nothing more is read. */
        pump_for(f, 2);
        assert_true(f->fe.len - before <= 7);
    }
    assert_int_equal(f->fe.len, sizeof(data));
    assert_memory_equal(f->fe.buf, data, sizeof(data));
    charbe_get_stats(be, &st);
    assert_int_equal(st.received, sizeof(data));
    close(c);
    charbe_close(be);
}

static void test_hangup_while_paused_drains_first(void **state)
{
    struct fixture *f = *state;
    struct charbe *be = open_server(f, &f->ops);
    uint8_t data[100];
    char buf[4];
    int c, d;

    f->fe.credits = 0;
    c = connect_unix(f->path);
    pump_until_connected(f, be, true, 1000);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    write_all(c, data, sizeof(data));
    close(c);
    pump_for(f, 50);
    assert_int_equal(f->fe.len, 0);
    assert_loop_idles(f);

    while (f->fe.len < sizeof(data)) {
        size_t before = f->fe.len;

        f->fe.credits = 10;
        charbe_accept_input(be);
        pump_until_received(f, before + 10, 1000);
        assert_int_equal(f->fe.len, before + 10);
    }
    assert_memory_equal(f->fe.buf, data, sizeof(data));
    /* After the last byte the client is gone and the next one is served. */
    f->fe.credits = SIZE_MAX;
    charbe_accept_input(be);
    pump_until_connected(f, be, false, 1000);
    d = connect_unix(f->path);
    pump_until_connected(f, be, true, 1000);
    write_all(d, "new", 3);
    pump_until_received(f, sizeof(data) + 3, 1000);
    assert_memory_equal(f->fe.buf + sizeof(data), "new", 3);
    assert_int_equal(charbe_write(be, (const uint8_t *)"ack", 3), 3);
    read_exact(d, buf, 3);
    assert_memory_equal(buf, "ack", 3);
    close(d);
    charbe_close(be);
}

static void test_frontend_attached_later(void **state)
{
    struct fixture *f = *state;
    struct charbe *be = open_server(f, NULL);
    int c = connect_unix(f->path);

    pump_until_connected(f, be, true, 1000);
    write_all(c, "waiting", 7);
    pump_for(f, 30);
    charbe_set_frontend(be, &f->ops);
    pump_until_received(f, 7, 1000);
    assert_int_equal(f->fe.len, 7);
    assert_memory_equal(f->fe.buf, "waiting", 7);

    /* Detached again: input waits. */
    charbe_set_frontend(be, NULL);
    write_all(c, "later", 5);
    pump_for(f, 30);
    assert_int_equal(f->fe.len, 7);
    charbe_set_frontend(be, &f->ops);
    pump_until_received(f, 12, 1000);
    assert_memory_equal(f->fe.buf, "waitinglater", 12);
    close(c);
    charbe_close(be);
}

static void test_output_queue_is_bounded(void **state)
{
    struct fixture *f = *state;
    struct charbe *be = open_server(f, &f->ops);
    struct charbe_stats st;
    const size_t total = 4u << 20, chunk = 4096;
    uint8_t *expect = malloc(total), *got = malloc(total), *buf = malloc(chunk);
    size_t accepted = 0, have = 0;
    int c;

    assert_non_null(expect);
    assert_non_null(got);
    assert_non_null(buf);
    c = connect_unix(f->path);
    pump_until_connected(f, be, true, 1000);
    /* The client reads nothing meanwhile: writes never block, and what
     * does not fit the socket buffer plus the queue is dropped. */
    for (size_t off = 0; off < total; off += chunk) {
        size_t n;

        for (size_t i = 0; i < chunk; i++)
            buf[i] = pattern(off + i);
        n = charbe_write(be, buf, chunk);
        assert_true(n <= chunk);
        memcpy(expect + accepted, buf, n);
        accepted += n;
    }
    charbe_get_stats(be, &st);
    assert_true(accepted < total);
    assert_true(accepted >= CHARBE_OUT_QUEUE);
    assert_int_equal(st.dropped, total - accepted);

    fcntl(c, F_SETFL, O_NONBLOCK);
    {
        uint64_t end = loop_now_ns() + 5000000000ull;

        while (have < accepted && loop_now_ns() < end) {
            ssize_t n = read(c, got + have, accepted - have);

            if (n > 0)
                have += (size_t)n;
            loop_run_once(f->loop, 2);
        }
    }
    assert_int_equal(have, accepted);
    assert_memory_equal(got, expect, accepted);
    charbe_get_stats(be, &st);
    assert_int_equal(st.written, accepted);
    close(c);
    charbe_close(be);
    free(expect);
    free(got);
    free(buf);
}

/* ---- stdio ---- */

struct saved_stdio {
    int in, out;
};

static struct saved_stdio redirect_stdio(int new_in, int new_out)
{
    struct saved_stdio s;

    fflush(stdout);
    s.in = dup(STDIN_FILENO);
    s.out = dup(STDOUT_FILENO);
    dup2(new_in, STDIN_FILENO);
    dup2(new_out, STDOUT_FILENO);
    return s;
}

static void restore_stdio(struct saved_stdio s)
{
    dup2(s.in, STDIN_FILENO);
    dup2(s.out, STDOUT_FILENO);
    close(s.in);
    close(s.out);
}

static void test_stdio_pipes(void **state)
{
    struct fixture *f = *state;
    int in_pipe[2], out_pipe[2];
    struct saved_stdio saved;
    struct charbe *be;
    size_t wrote = 0, got_before_eof = 0;
    char buf[8] = {0};
    ssize_t n = -1;
    int rc;
    bool idle_waits = false;

    assert_int_equal(pipe2(in_pipe, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out_pipe, O_CLOEXEC), 0);
    saved = redirect_stdio(in_pipe[0], out_pipe[1]);
    /* No cmocka assertions while stdout is redirected. */
    rc = charbe_open(f->loop, "stdio", &f->ops, &be);
    if (rc == 0) {
        wrote = charbe_write(be, (const uint8_t *)"out", 3);
        n = read(out_pipe[0], buf, sizeof(buf));
        write_all(in_pipe[1], "key", 3);
        pump_until_received(f, 3, 1000);
        got_before_eof = f->fe.len;
        /* The end of stdin stops input, without spinning; output goes on. */
        close(in_pipe[1]);
        pump_for(f, 20);
        {
            uint64_t t0 = loop_now_ns();

            loop_run_once(f->loop, 50);
            idle_waits = loop_now_ns() - t0 >= 40 * 1000000ull;
        }
        wrote += charbe_write(be, (const uint8_t *)"more", 4);
        charbe_close(be);
    }
    restore_stdio(saved);

    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "out", 3);
    assert_int_equal(got_before_eof, 3);
    assert_memory_equal(f->fe.buf, "key", 3);
    assert_true(idle_waits);
    assert_int_equal(wrote, 7);
    n = read(out_pipe[0], buf, sizeof(buf));
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "more", 4);
    /* The daemon's own descriptors are left as they were. */
    assert_int_equal(fcntl(STDOUT_FILENO, F_GETFD) >= 0, 1);
    close(in_pipe[0]);
    close(out_pipe[0]);
    close(out_pipe[1]);
}

static void test_stdio_regular_files(void **state)
{
    struct fixture *f = *state;
    char in_path[160], out_path[160], buf[16] = {0};
    struct saved_stdio saved;
    struct charbe *be;
    int in_fd, out_fd, rc, flags_before, flags_after;
    size_t wrote = 0;
    FILE *fp;

    /* What libxl gives the daemon: stdin from a file, stdout to the log. */
    snprintf(in_path, sizeof(in_path), "%s/in", f->dir);
    snprintf(out_path, sizeof(out_path), "%s/out", f->dir);
    fp = fopen(in_path, "w");
    fputs("from-file", fp);
    fclose(fp);
    in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    saved = redirect_stdio(in_fd, out_fd);
    flags_before = fcntl(STDIN_FILENO, F_GETFL);
    f->fe.credits = 4;
    rc = charbe_open(f->loop, "stdio", &f->ops, &be);
    if (rc == 0) {
        pump_for(f, 20);
        f->fe.credits = SIZE_MAX;
        charbe_accept_input(be);
        pump_until_received(f, 9, 1000);
        wrote = charbe_write(be, (const uint8_t *)"logged", 6);
        charbe_close(be);
    }
    flags_after = fcntl(STDIN_FILENO, F_GETFL);
    restore_stdio(saved);
    close(in_fd);
    close(out_fd);

    assert_int_equal(rc, 0);
    assert_int_equal(f->fe.len, 9);
    assert_memory_equal(f->fe.buf, "from-file", 9);
    assert_int_equal(wrote, 6);
    assert_int_equal(flags_before, flags_after);
    fp = fopen(out_path, "r");
    assert_int_equal(fread(buf, 1, sizeof(buf), fp), 6);
    fclose(fp);
    assert_memory_equal(buf, "logged", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_specs_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none_is_no_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_created_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pty_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pty_reader_leaves_and_returns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pty_input_reader_found_by_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pty_without_reader_never_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_server_clients_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_server_waits_for_first_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_control_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_while_paused_drains_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frontend_attached_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_pipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_regular_files, setup, teardown),
    };

    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
