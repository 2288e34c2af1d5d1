"""Malformed QMP input. Each case sends bad input on a negotiated connection,
expects an error reply of the class QEMU would use, and then checks that the
SAME connection still answers query-status. One daemon serves the whole
module: after every case it must still be alive, and at the end it must exit
cleanly on SIGTERM."""

import json
import random
import socket
import struct
import threading
import time

import pytest

import xendm

MAX_MESSAGE = 256 * 1024  # QMP_MAX_MESSAGE in dm/qmp.h


@pytest.fixture(scope="module")
def daemon():
    d = xendm.Daemon(qmp=True)
    d.start()
    yield d
    d.stop()  # fails if it died, exits non-zero or logged an error


@pytest.fixture
def q(daemon):
    assert daemon.alive()
    client = daemon.qmp()
    yield client
    client.close()


def expect_error(q, cls="GenericError", cmd_id=None):
    r = q.recv_reply()
    assert "error" in r, r
    assert r["error"]["class"] == cls, r
    assert isinstance(r["error"]["desc"], str) and r["error"]["desc"], r
    if cmd_id is not None:
        assert r.get("id") == cmd_id, r
    return r


def assert_alive(q):
    """The same connection answers, with nothing stale queued before it."""
    r = q.cmd("query-status", cmd_id="alive-probe")
    assert r["return"]["status"] == "running", r


# --- truncated and unparsable input --------------------------------------------------


def test_truncated_literal_then_newline(q):
    q.send_raw(b'{"execute": "query-status", "id": tru\n')
    expect_error(q)
    assert_alive(q)


@pytest.mark.parametrize("truncated", [
    b'{"execute": "query-status"',
    b'{"execute": "query-status", "id": 1',
    b'{"execute": "query-status", "arguments": {',
    b'{"execute": "query-status", "arguments": {"a": [1, 2',
])
def test_truncated_message_then_newline(q, truncated):
    """A newline does not end a JSON message, so the truncated one is refused
    when the next line shows it cannot go on; the line that showed it is part
    of the refused input. The connection then works again."""
    q.send_raw(truncated + b"\n")
    q.send_raw(b'{"execute": "query-status", "id": "next"}\r\n')
    r = q.recv_reply()
    assert r["error"]["class"] == "GenericError", r
    q.send({"execute": "query-status", "id": "alive-probe"})
    while True:
        r = q.recv_reply()
        if r.get("id") == "alive-probe":
            break
        assert r.get("id") == "next", r  # answered after all: also fine
    assert r["return"]["status"] == "running"


def expect_errors_then_alive(q):
    """Garbage may hold several bad tokens (json-c resumes after a refused
    one, e.g. "01x" is 0, then 1, then x): at least one error, only errors,
    and then the probe is answered."""
    q.send({"execute": "query-status", "id": "alive-probe"})
    errors = 0
    while True:
        r = q.recv_reply()
        if r.get("id") == "alive-probe":
            break
        assert r["error"]["class"] == "GenericError", r
        errors += 1
    assert errors >= 1
    assert r["return"]["status"] == "running"


@pytest.mark.parametrize("garbage", [
    b"this is not json", b"}", b"]]]", b"{]", b'{"execute"::}', b"{execute: query-status}", b"\\",
    b"#", b"@@@@", b"-", b"01x", b"nul", b"tru e", b"+1", b"0x10", b'{"execute" "query-status"}',
    b'{"execute": "query-status" "id": 1}', b"NaNx", b'"\\x41"', b"\x1b[A",
])
def test_garbage(q, garbage):
    q.send_raw(garbage + b"\r\n")
    expect_errors_then_alive(q)


def test_trailing_garbage_after_a_good_command(q):
    q.send_raw(b'{"execute": "query-status", "id": 1} xyz\r\n')
    assert q.recv_reply()["id"] == 1
    expect_error(q)
    assert_alive(q)


@pytest.mark.parametrize("seed", range(6))
def test_binary_noise_with_nul_bytes(q, seed):
    rng = random.Random(seed)
    body = bytes(rng.choice([b for b in range(256) if b != 0x0A]) for _ in range(3000))
    # Starts with bytes that cannot begin JSON, contains NULs, one newline.
    noise = b"\x00\xff" + body.replace(b"\x00", b"\x00\x00") + b"\x00\n"
    assert noise.count(b"\x00") >= 2 and noise.count(b"\n") == 1
    q.send_raw(noise)
    expect_error(q)
    assert_alive(q)


@pytest.mark.parametrize("bad", [
    b'{"execute": "query-\x00status", "id": 1}',
    b'{"execute": "query-status", "id": "\x00"}',
    b'\x00{"execute": "query-status"}',
])
def test_nul_bytes_inside_messages(q, bad):
    q.send_raw(bad + b"\r\n")
    expect_error(q)
    assert_alive(q)


@pytest.mark.parametrize("bad", [
    b"\xff\xfe",          # not UTF-8 at all
    b"\xc3\x28",          # bad continuation byte
    b"\xc3",              # truncated sequence
    b"\x80",              # lone continuation byte
    b"\xc0\xaf",          # overlong "/"
    b"\xe0\x80\x80",      # overlong NUL
    b"\xed\xa0\x80",      # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xf8\x88\x80\x80\x80",
])
@pytest.mark.parametrize("where", ["execute", "id", "argument key", "argument value"])
def test_invalid_utf8(q, bad, where):
    msg = {
        "execute": b'{"execute": "query-status%s", "id": 1}',
        "id": b'{"execute": "query-status", "id": "x%s"}',
        "argument key": b'{"execute": "qmp_capabilities", "arguments": {"k%s": 1}}',
        "argument value": b'{"execute": "query-status", "id": {"k": ["%s"]}}',
    }[where] % bad
    q.send_raw(msg + b"\r\n")
    # Whatever the error, the reply itself must be valid UTF-8 JSON
    # (recv_reply decodes strictly).
    expect_error(q)
    assert_alive(q)


def test_valid_utf8_is_accepted(q):
    for text in ("é", "✓", "\U0001F600", "\uFFFF", "a\u0000b"):
        assert q.cmd("query-status", cmd_id=text)["id"] == text


# --- well-formed JSON that is not a valid QMP command -----------------------------------


@pytest.mark.parametrize("top", [b"[]", b'["execute", "query-status"]', b"42", b"-1.5e3",
                                 b'"query-status"', b"null", b"true", b"false"])
def test_top_level_not_an_object(q, top):
    q.send_raw(top + b"\r\n")
    r = expect_error(q)
    assert "object" in r["error"]["desc"]
    assert_alive(q)


def test_empty_object(q):
    q.send_raw(b"{}\r\n")
    expect_error(q)
    assert_alive(q)


def test_id_without_execute(q):
    q.send({"id": 9})
    expect_error(q, cmd_id=9)
    assert_alive(q)


@pytest.mark.parametrize("execute", [42, None, True, [], {}, ["query-status"], {"name": "query-status"}])
def test_execute_not_a_string(q, execute):
    q.send({"execute": execute, "id": 3})
    expect_error(q, cmd_id=3)
    assert_alive(q)


@pytest.mark.parametrize("args", [[], [1], 1, "x", None, True])
def test_arguments_not_an_object(q, args):
    q.send({"execute": "query-status", "arguments": args, "id": 4})
    expect_error(q, cmd_id=4)
    assert_alive(q)


@pytest.mark.parametrize("member", ["foo", "Execute", "exec-oob-x", "argument", "control"])
def test_unexpected_top_level_member(q, member):
    q.send({"execute": "query-status", member: 1, "id": 5})
    r = expect_error(q, cmd_id=5)
    assert member in r["error"]["desc"]
    assert_alive(q)


@pytest.mark.parametrize("name", ["query-status", "stop", "cont", "system_reset", "quit", "query-pci"])
def test_unexpected_argument_to_a_no_argument_command(q, name):
    q.send({"execute": name, "arguments": {"force": True}, "id": 6})
    r = expect_error(q, cmd_id=6)
    assert "force" in r["error"]["desc"]
    assert_alive(q)  # still running: stop did not stop, quit did not quit
    assert q.events == []


@pytest.mark.parametrize("name", ["", " ", "query-status ", "QUERY-STATUS", "query_status",
                                  "x" * 5000, "query-status\u0000"])
def test_unknown_command_names(q, name):
    q.send({"execute": name, "id": 7})
    expect_error(q, cls="CommandNotFound", cmd_id=7)
    assert_alive(q)


# --- size and nesting limits --------------------------------------------------------------


@pytest.mark.parametrize("shape", ["array", "object", "in arguments", "in id"])
def test_deeply_nested_json(q, shape):
    depth = 10000
    deep = {
        "array": b"[" * depth + b"]" * depth,
        "object": b'{"a":' * depth + b"1" + b"}" * depth,
        "in arguments": b'{"execute": "query-status", "arguments": {"a": ' + b"[" * depth + b"]" * depth + b"}}",
        "in id": b'{"execute": "query-status", "id": ' + b"[" * depth + b"]" * depth + b"}",
    }[shape]
    q.send_raw(deep + b"\r\n")
    r = expect_error(q)
    assert "deep" in r["error"]["desc"] or "nest" in r["error"]["desc"]
    assert_alive(q)


def test_moderate_nesting_is_fine(q):
    nested = 1
    for _ in range(20):
        nested = [nested]
    assert q.cmd("query-status", cmd_id=nested)["id"] == nested


def test_over_long_message_without_end(q, daemon):
    q.send_raw(b'{"execute": "query-status", "id": "' + b"A" * (MAX_MESSAGE + 4096))
    r = expect_error(q)
    assert "too long" in r["error"]["desc"]
    q.send_raw(b'"}\r\n')  # the rest of the refused line is discarded
    assert_alive(q)


def test_over_long_message_that_completes(q):
    # The limit is checked per read (4 KiB), so go well past it.
    q.send_raw(b'{"execute": "query-status", "id": "' + b"B" * (MAX_MESSAGE + 65536) + b'"}\r\n')
    expect_error(q)
    assert_alive(q)


def test_message_just_under_the_limit_is_accepted(q):
    long_id = "C" * (MAX_MESSAGE - 1024)
    assert q.cmd("query-status", cmd_id=long_id)["id"] == long_id


def test_flood_of_10_mb_in_one_message(q):
    q.send_raw(b'{"execute": "query-status", "id": "', timeout=30)
    chunk = b"F" * (1 << 20)
    for _ in range(10):
        q.send_raw(chunk, timeout=30)
    q.send_raw(b'"}\r\n')
    expect_error(q)
    assert_alive(q)


def test_flood_of_10_mb_of_garbage_lines(q):
    line = b"<garbage>" * (1 << 17) + b"\n"  # about 1.1 MiB
    for _ in range(9):
        q.send_raw(line, timeout=30)
    for _ in range(9):
        expect_error(q)
    assert_alive(q)


# --- framing ------------------------------------------------------------------------------


def test_many_commands_in_one_write(q):
    n = 500
    q.send_raw(b"".join(b'{"execute": "query-status", "id": %d}\r\n' % i for i in range(n)))
    for i in range(n):
        r = q.recv_reply()
        assert r["id"] == i and r["return"]["running"] is True
    assert_alive(q)


def test_good_and_bad_commands_in_one_write(q):
    q.send_raw(b'{"execute": "query-status", "id": 1}\r\n'
               b"garbage\r\n"
               b'{"execute": "nope", "id": 2}\r\n'
               b"[1]\r\n"
               b'{"execute": "query-status", "id": 3}\r\n')
    assert "return" in q.recv_reply()
    expect_error(q)
    expect_error(q, cls="CommandNotFound", cmd_id=2)
    expect_error(q)
    assert q.recv_reply()["id"] == 3
    assert_alive(q)


def test_commands_without_separator(q):
    q.send_raw(b'{"execute":"query-status","id":1}{"execute":"query-status","id":2}\r\n')
    assert q.recv_reply()["id"] == 1
    assert q.recv_reply()["id"] == 2
    assert_alive(q)


def test_burst_bigger_than_the_socket_buffer(q):
    """The replies outgrow the socket buffer while the client is still
    sending: the daemon must queue them, not drop the client."""
    n = 20000
    payload = b"".join(b'{"execute": "query-status", "id": %d}\r\n' % i for i in range(n))
    q.send_raw(payload, timeout=30)
    for i in range(n):
        assert q.recv_reply()["id"] == i
    assert_alive(q)


def test_command_split_byte_by_byte(q):
    for b in b'{"execute": "query-status", "id": "split \xc3\xa9"}\r\n':
        q.send_raw(bytes([b]))
        time.sleep(0.001)  # let the daemon see each byte in its own read
    assert q.recv_reply()["id"] == "split é"
    for b in b'{"execute": 12}\r\n':
        q.send_raw(bytes([b]))
        time.sleep(0.001)
    expect_error(q)
    assert_alive(q)


def test_whitespace_between_messages(q):
    q.send_raw(b'\r\n\r\n   \t {"execute":\n"query-status",\r\n"id":\n1}\r\n\r\n')
    assert q.recv_reply()["id"] == 1
    assert_alive(q)


# --- misbehaving clients ------------------------------------------------------------------


def test_connect_and_disconnect_immediately(daemon, q):
    for _ in range(20):
        xendm.connect_unix(daemon.qmp_path).close()
    # Closed while the greeting is being written, mid-message, and right
    # after a command whose reply it will never read.
    for data in (b"", b'{"execute": "qmp_cap', b'{"execute": "qmp_capabilities"}\r\n{"execute": "query-pci"}\r\n'):
        s = xendm.connect_unix(daemon.qmp_path)
        s.sendall(data)
        s.close()
    assert_alive(q)


def test_client_that_never_reads(daemon, q):
    """A client sends many commands and reads nothing. The daemon must keep
    serving others meanwhile, and may drop that client once its unread
    output is too large."""
    hog = daemon.qmp()
    payload = b'{"execute": "query-status", "id": 1}\r\n' * 1000
    dropped = False
    for _ in range(400):
        try:
            hog.send_raw(payload, timeout=10)
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
            break
        assert_alive(q)
    assert dropped, "14 MiB of replies nobody reads were all kept"
    daemon.wait_log(r"does not read its replies")
    assert_alive(q)
    hog.close()


def test_half_closed_socket_still_gets_its_replies(daemon, q):
    s = xendm.connect_unix(daemon.qmp_path)
    s.sendall(b'{"execute": "qmp_capabilities", "id": 1}\r\n{"execute": "query-status", "id": 2}\r\n')
    s.shutdown(socket.SHUT_WR)
    stream = xendm.Stream(s.fileno(), s.fileno(), owner=s)
    lines = stream.wait_eof().splitlines()
    msgs = [json.loads(l) for l in lines]
    assert "QMP" in msgs[0]
    assert [m.get("id") for m in msgs[1:]] == [1, 2]
    assert msgs[2]["return"]["status"] == "running"
    s.close()
    assert_alive(q)


def test_half_closed_mid_message(daemon, q):
    s = xendm.connect_unix(daemon.qmp_path)
    s.sendall(b'{"execute": "qmp_capabilities", "id": 1}\r\n{"execute": "sto')
    s.shutdown(socket.SHUT_WR)
    stream = xendm.Stream(s.fileno(), s.fileno(), owner=s)
    stream.wait_eof()  # the daemon closes its side too
    s.close()
    assert_alive(q)  # and the half message did not stop the machine


def test_reset_by_peer_with_unread_output(daemon, q):
    s = xendm.connect_unix(daemon.qmp_path)
    s.sendall(b'{"execute": "qmp_capabilities"}\r\n' + b'{"execute": "query-pci"}\r\n' * 2000)
    # SO_LINGER 0: close() resets the connection, dropping what is unread.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert_alive(q)


def test_many_clients_at_once(daemon, q):
    clients = [daemon.qmp() for _ in range(50)]
    for i, c in enumerate(clients):
        c.send({"execute": "query-status", "id": i})
    for i, c in enumerate(clients):
        assert c.recv_reply()["id"] == i
    for c in clients:
        c.close()
    assert_alive(q)


def test_concurrent_clients_from_threads(daemon, q):
    errors = []

    def worker(n):
        try:
            c = daemon.qmp()
            for i in range(200):
                assert c.cmd("query-status", cmd_id=[n, i])["id"] == [n, i]
            c.close()
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert_alive(q)


# --- the end ---------------------------------------------------------------------------------


def test_daemon_survived_the_suite(daemon):
    assert daemon.alive()
    q = daemon.qmp()
    assert q.command("query-status")["status"] == "running"
    bad = daemon.bad_stderr_lines()
    assert bad == []
