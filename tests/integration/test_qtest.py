"""The qtest socket: QEMU's qtest line protocol against the real daemon."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

import xendm

RAM_MB = 16  # the qtest_daemon fixture runs with -m 16
RAM_END = RAM_MB << 20


def function_at(qmp, slot, function):
    """The query-pci entry for 00:slot.function, or None."""
    for bus in qmp.command("query-pci"):
        if bus["bus"] != 0:
            continue
        for dev in bus["devices"]:
            if dev["slot"] == slot and dev["function"] == function:
                return dev
    return None


# --- reply formats -------------------------------------------------------------


def test_out_replies_plain_ok(qtest_daemon):
    q = qtest_daemon.qtest()
    for cmd in ("outb 0x80 0x1", "outw 0x80 0x1234", "outl 0x80 0x12345678"):
        assert q.cmd(cmd) == "OK"


@pytest.mark.parametrize("cmd", ["inb", "inw", "inl"])
def test_in_reply_format(qtest_daemon, cmd):
    # QEMU prints "OK 0x%04x" whatever the width.
    reply = qtest_daemon.qtest().cmd("%s 0x80" % cmd)
    assert re.fullmatch(r"OK 0x[0-9a-f]{4,8}", reply), reply


@pytest.mark.parametrize("cmd", ["readb", "readw", "readl", "readq"])
def test_read_reply_format(qtest_daemon, cmd):
    # QEMU prints "OK 0x%016x" whatever the width.
    reply = qtest_daemon.qtest().cmd("%s 0x1000" % cmd)
    assert re.fullmatch(r"OK 0x[0-9a-f]{16}", reply), reply


def test_endianness(qtest_daemon):
    assert qtest_daemon.qtest().cmd("endianness") == "OK little"


def test_irq_intercept_in_ioapic(qtest_daemon):
    q = qtest_daemon.qtest()
    assert q.cmd("irq_intercept_in ioapic") == "OK"
    # Nothing raises an interrupt by itself on an idle machine.
    assert q.cmd("endianness") == "OK little"
    assert q.irqs == []


def test_irq_intercept_needs_a_path(qtest_daemon):
    assert qtest_daemon.qtest().cmd("irq_intercept_in").startswith("FAIL")


# --- port I/O -----------------------------------------------------------------


@pytest.mark.parametrize("port", [0x80, 0x2F8, 0x5000, 0xFFF0])
def test_unassigned_ports_read_all_ones(qtest_daemon, port):
    q = qtest_daemon.qtest()
    assert q.cmd("inb 0x%x" % port) == "OK 0x00ff"
    assert q.cmd("inw 0x%x" % port) == "OK 0xffff"
    assert q.cmd("inl 0x%x" % port) == "OK 0xffffffff"


def test_unassigned_port_ignores_writes(qtest_daemon):
    q = qtest_daemon.qtest()
    q.outl(0x5000, 0)
    assert q.inl(0x5000) == 0xFFFFFFFF


def test_port_beyond_64k_is_refused_safely(qtest_daemon):
    q = qtest_daemon.qtest()
    assert q.cmd("inb 0x10000") == "OK 0x00ff"
    assert q.cmd("outl 0xfffe 0x0") == "OK"  # straddles the end of port space
    assert q.inb(0x80) == 0xFF


def test_config_address_register_reads_back(qtest_daemon):
    q = qtest_daemon.qtest()
    q.outl(0xCF8, 0x80000010)
    assert q.inl(0xCF8) == 0x80000010
    q.outl(0xCF8, 0)
    assert q.inl(0xCF8) == 0


def test_host_bridge_or_all_ones(qtest_daemon):
    """00:00.0 answers with the i440FX ID when the chipset exists, and an
    empty bus answers all-ones; query-pci says which one to expect."""
    qmp = qtest_daemon.qmp()
    q = qtest_daemon.qtest()
    host = function_at(qmp, 0, 0)
    assert q.cmd("outl 0xcf8 0x80000000") == "OK"
    reply = q.cmd("inl 0xcfc")
    if host is None:
        assert reply == "OK 0xffffffff"
    else:
        assert reply == "OK 0x%08x" % (host["id"]["device"] << 16 | host["id"]["vendor"])
        assert reply == "OK 0x12378086"


def test_config_cycles_need_the_enable_bit(qtest_daemon):
    q = qtest_daemon.qtest()
    q.outl(0xCF8, 0x00000000)
    assert q.inl(0xCFC) == 0xFFFFFFFF


def test_config_space_of_every_absent_slot_is_all_ones(qtest_daemon):
    qmp = qtest_daemon.qmp()
    q = qtest_daemon.qtest()
    present = {(d["slot"], d["function"]) for b in qmp.command("query-pci") for d in b["devices"]}
    for slot in range(32):
        if (slot, 0) in present:
            continue
        assert q.pci_cfg_read(slot << 3, 0, 4) == 0xFFFFFFFF, "slot %d" % slot
        assert q.pci_cfg_read(slot << 3, 0x0E, 1) == 0xFF
        assert q.pci_cfg_read(slot << 3, 0x02, 2) == 0xFFFF


def test_config_cycle_to_another_bus_is_all_ones(qtest_daemon):
    q = qtest_daemon.qtest()
    q.outl(0xCF8, q.cfg_address(0, 0, bus=1))
    assert q.inl(0xCFC) == 0xFFFFFFFF


# --- guest RAM ----------------------------------------------------------------


def test_ram_starts_zeroed(qtest_daemon):
    q = qtest_daemon.qtest()
    assert q.readq(0) == 0
    assert q.readq(RAM_END - 8) == 0


def test_write_read_each_width(qtest_daemon):
    q = qtest_daemon.qtest()
    q.writeb(0x100, 0xA5)
    q.writew(0x102, 0xBEEF)
    q.writel(0x104, 0x12345678)
    q.writeq(0x108, 0x0123456789ABCDEF)
    assert q.readb(0x100) == 0xA5
    assert q.readw(0x102) == 0xBEEF
    assert q.readl(0x104) == 0x12345678
    assert q.readq(0x108) == 0x0123456789ABCDEF
    # Little-endian layout, as a guest sees it.
    assert q.readq(0x100) == 0x12345678BEEF00A5
    assert q.cmd("readl 0x104") == "OK 0x0000000012345678"


def test_write_truncates_to_width(qtest_daemon):
    q = qtest_daemon.qtest()
    q.writeq(0x200, 0)
    q.writeb(0x200, 0x1FF)
    assert q.readq(0x200) == 0xFF


def test_last_bytes_of_ram(qtest_daemon):
    q = qtest_daemon.qtest()
    q.writeq(RAM_END - 8, 0xFEEDFACECAFEBEEF)
    assert q.readq(RAM_END - 8) == 0xFEEDFACECAFEBEEF
    assert q.readb(RAM_END - 1) == 0xFE


def test_beyond_ram_is_unassigned(qtest_daemon):
    q = qtest_daemon.qtest()
    q.writel(RAM_END, 0)  # ignored
    assert q.readl(RAM_END) == 0xFFFFFFFF
    assert q.readq(0xFFFFFFFF00) == 0xFFFFFFFFFFFFFFFF
    assert q.readb(0xFFFFFFFFFFFFFFFF) == 0xFF
    # An access straddling the end of RAM gets an answer, not a crash.
    assert re.fullmatch(r"OK 0x[0-9a-f]{16}", q.cmd("readq 0x%x" % (RAM_END - 4)))


def test_ram_size_follows_dash_m(start_daemon):
    d = start_daemon(["-m", "2"], qtest=True)
    q = d.qtest()
    q.writel((2 << 20) - 4, 0x11223344)
    assert q.readl((2 << 20) - 4) == 0x11223344
    assert q.readl(2 << 20) == 0xFFFFFFFF


def test_bulk_write_then_read(qtest_daemon):
    q = qtest_daemon.qtest()
    data = bytes(range(256)) * 3
    q.write(0x3000, data)
    assert q.read(0x3000, len(data)) == data
    assert q.cmd("read 0x3000 4") == "OK 0x00010203"
    assert q.readl(0x3000) == 0x03020100


def test_bulk_write_pads_missing_bytes_with_zero(qtest_daemon):
    q = qtest_daemon.qtest()
    q.memset(0x4000, 8, 0xEE)
    assert q.cmd("write 0x4000 4 0xaabb") == "OK"
    assert q.read(0x4000, 8) == bytes([0xAA, 0xBB, 0, 0, 0xEE, 0xEE, 0xEE, 0xEE])


def test_memset(qtest_daemon):
    q = qtest_daemon.qtest()
    q.memset(0x5000, 0x1000, 0x5A)
    assert q.read(0x4FFF, 0x1002) == b"\x00" + b"\x5a" * 0x1000 + b"\x00"


def test_bulk_read_of_one_mib(qtest_daemon):
    q = qtest_daemon.qtest()
    q.memset(0x100000, 1 << 20, 0x33)
    assert q.read(0x100000, 1 << 20) == b"\x33" * (1 << 20)


def test_bulk_read_across_ram_end(qtest_daemon):
    q = qtest_daemon.qtest()
    q.memset(RAM_END - 2, 2, 0x44)
    assert q.read(RAM_END - 2, 4) == b"\x44\x44\xff\xff"


@pytest.mark.parametrize("cmd", [
    "read 0x0 0", "read 0x0 0x100001", "memset 0x0 4 0x100", "write 0x0 4 aabb",
    "write 0x0 2 0xzz", "read 0x0", "memset 0x0 4", "write 0x0 4",
])
def test_bulk_bad_arguments(qtest_daemon, cmd):
    q = qtest_daemon.qtest()
    assert q.cmd(cmd).startswith("FAIL")
    assert q.cmd("endianness") == "OK little"


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["foo", "inq 0x80", "outq 0x80 0x1", "readx 0x0", "INB 0x80",
                                 "in 0x80", "outbw 0x80 0x1", "\xff\xfe garbage"])
def test_unknown_command_fails(qtest_daemon, cmd):
    q = qtest_daemon.qtest()
    reply = q.cmd(cmd)
    assert reply.startswith("FAIL"), reply
    assert q.cmd("inb 0x80") == "OK 0x00ff"


@pytest.mark.parametrize("cmd", [
    "inb", "inb zz", "inb 0x80 0x1", "inb -1", "outb 0x80", "outb 0x80 nope",
    "outl 0x80 0x1ffffffffffffffffff", "readl", "readl 0xg", "writel 0x0", "writel 0x0 1x",
    "inb 0x", "readb 99999999999999999999999",
])
def test_bad_numbers_fail(qtest_daemon, cmd):
    q = qtest_daemon.qtest()
    reply = q.cmd(cmd)
    assert reply.startswith("FAIL"), reply
    assert q.cmd("inb 0x80") == "OK 0x00ff"


def test_numbers_in_decimal_and_octal(qtest_daemon):
    q = qtest_daemon.qtest()
    assert q.cmd("writel 4096 305419896") == "OK"  # strtoull base 0, as QEMU
    assert q.readl(0x1000) == 305419896
    assert q.cmd("writeb 010 7") == "OK"
    assert q.readb(8) == 7


def test_too_many_words_fail(qtest_daemon):
    q = qtest_daemon.qtest()
    assert q.cmd("inb 1 2 3 4 5 6 7 8 9 10").startswith("FAIL")
    assert q.cmd("endianness") == "OK little"


def test_empty_and_blank_lines_get_no_reply(qtest_daemon):
    q = qtest_daemon.qtest()
    q.send_raw(b"\n   \n\t\n")
    assert q.cmd("endianness") == "OK little"


def test_crlf_line_endings(qtest_daemon):
    q = qtest_daemon.qtest()
    q.send_raw(b"inb 0x80\r\n")
    assert q.read_reply() == "OK 0x00ff"


def test_over_long_line_fails_and_connection_survives(qtest_daemon):
    q = qtest_daemon.qtest()
    q.send_raw(b"readb " + b"0" * 5000 + b"1\n")
    assert q.read_reply() == "FAIL line too long"
    assert q.cmd("endianness") == "OK little"
    # A huge line, several times the limit, is one failure.
    q.send_raw(b"x" * 100000 + b"\n")
    assert q.read_reply() == "FAIL line too long"
    assert q.cmd("inb 0x80") == "OK 0x00ff"
    qtest_daemon.wait_log(r"qtest: line longer than 4096 bytes")


def test_line_at_the_limit_is_accepted(qtest_daemon):
    q = qtest_daemon.qtest()
    # 4095 bytes and the newline: padded with blanks, still one command.
    line = b"inb 0x80".ljust(4095) + b"\n"
    q.send_raw(line)
    assert q.read_reply() == "OK 0x00ff"


@pytest.mark.parametrize("noise", [b"\x00", b"\x00\xff\xfe garbage \x01\x02", b"inb\x00 0x80",
                                   b"\xff" * 300, bytes(range(1, 10)) + bytes(range(11, 256))],
                         ids=["nul", "nul-first", "nul-inside", "ff-run", "every-byte"])
def test_binary_noise_fails(qtest_daemon, noise):
    q = qtest_daemon.qtest()
    q.send_raw(noise + b"\n")
    assert q.read_reply().startswith("FAIL")
    assert q.cmd("endianness") == "OK little"


def test_command_split_across_writes(qtest_daemon):
    q = qtest_daemon.qtest()
    for b in b"writel 0x3000 0x1234\n":
        q.send_raw(bytes([b]))
        time.sleep(0.001)  # let the daemon see each byte in its own read
    assert q.read_reply() == "OK"
    assert q.readl(0x3000) == 0x1234


def test_many_commands_in_one_write(qtest_daemon):
    q = qtest_daemon.qtest()
    n = 20000  # the replies overflow the socket buffer: the daemon must queue them
    q.send_raw(b"".join(b"writel 0x%x 0x%x\n" % (0x8000 + 4 * i, i) for i in range(n)))
    for _ in range(n):
        assert q.read_reply() == "OK"
    q.send_raw(b"".join(b"readl 0x%x\n" % (0x8000 + 4 * i) for i in range(n)))
    for i in range(n):
        assert q.read_reply() == "OK 0x%016x" % i


# --- clients ------------------------------------------------------------------


def test_client_library_keeps_irq_lines_apart():
    """IRQ notifications may arrive before any reply (no device raises one on
    today's machine, so a socketpair plays the daemon)."""
    ours, theirs = socket.socketpair()
    q = xendm.QTest(xendm.Stream(ours.fileno(), ours.fileno(), owner=ours))
    theirs.sendall(b"IRQ raise 4\nIRQ lower 4\nOK 0x00ff\nIRQ raise 11\n")
    assert q.inb(0x60) == 0xFF
    assert theirs.recv(100) == b"inb 0x60\n"
    assert q.irqs == [("raise", 4), ("lower", 4)]
    theirs.sendall(b"OK\n")
    q.outb(0x61, 1)
    assert q.irqs == [("raise", 4), ("lower", 4), ("raise", 11)]
    theirs.close()
    ours.close()


def test_sequential_clients(qtest_daemon):
    for i in range(5):
        q = qtest_daemon.qtest()
        if i:
            assert q.readl(0x6000) == i - 1  # state outlives a client
        q.writel(0x6000, i)
        q.close()


def test_two_clients_at_once(qtest_daemon):
    a = qtest_daemon.qtest()
    b = qtest_daemon.qtest()
    a.writel(0x7000, 0xAAAA)
    assert b.readl(0x7000) == 0xAAAA
    b.writel(0x7000, 0xBBBB)
    assert a.readl(0x7000) == 0xBBBB


def test_client_that_vanishes_mid_command(qtest_daemon):
    s = xendm.connect_unix(qtest_daemon.qtest_path)
    s.sendall(b"readl 0x0\nread 0x0 0x100000\nreadl")
    s.close()
    s = xendm.connect_unix(qtest_daemon.qtest_path)
    s.close()
    assert qtest_daemon.qtest().cmd("endianness") == "OK little"


def test_qtest_stdio(start_daemon):
    d = start_daemon(["-m", "4"], qtest="stdio")
    q = d.qtest()
    assert q.cmd("endianness") == "OK little"
    assert q.cmd("inb 0x80") == "OK 0x00ff"
    q.writel(0x10, 0xC0FFEE)
    assert q.cmd("readl 0x10") == "OK 0x0000000000c0ffee"
    assert q.cmd("nonsense").startswith("FAIL")
    # A 1 MiB reply is bigger than a pipe: it must arrive whole.
    assert q.read(0, 1 << 20)[0x10:0x14] == bytes.fromhex("eeffc000")


def test_qtest_and_qmp_see_the_same_machine(qtest_daemon):
    qmp = qtest_daemon.qmp()
    q = qtest_daemon.qtest()
    q.writel(0x9000, 0x600DF00D)
    qmp.command("system_reset")
    # A reset does not clear RAM (the guest's memory is not the DM's to wipe).
    assert q.readl(0x9000) == 0x600DF00D
    q.outl(0xCF8, 0x80000000)
    qmp.command("system_reset")
    assert q.inl(0xCF8) == 0  # the host bridge's address latch is reset


def test_qtest_socket_path_too_long_is_an_error():
    path = "/tmp/" + "x" * 120
    r = xendm.run(["-qtest", "unix:%s,server=on,wait=off" % path], timeout=10)
    assert r.returncode != 0
    assert "qtest" in r.stderr
    assert re.search(r"xen-dm error: ", r.stderr)


def test_qtest_client_mode(start_daemon):
    """-qtest unix:PATH without server=on connects out, as QEMU does for
    libqtest: the test is the listener."""
    sockdir = xendm.short_tempdir()
    path = os.path.join(sockdir, "qtest-listen")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(xendm.CONNECT_TIMEOUT)
    try:
        start_daemon(["-qtest", "unix:%s" % path], wait=False)
        conn, _ = listener.accept()
        q = xendm.QTest(xendm.Stream(conn.fileno(), conn.fileno(), owner=conn))
        assert q.cmd("endianness") == "OK little"
        assert q.cmd("inw 0x80") == "OK 0xffff"
        conn.close()
    finally:
        listener.close()
        os.unlink(path)
        os.rmdir(sockdir)


# --- scripts/qtest-lspci -----------------------------------------------------------------

LSPCI = os.path.join(xendm.REPO_ROOT, "scripts", "qtest-lspci")


def run_lspci(path):
    return subprocess.run([sys.executable, LSPCI, path], capture_output=True, text=True,
                          timeout=xendm.REPLY_TIMEOUT * 3)


def test_lspci_is_an_executable_python3_script():
    assert os.access(LSPCI, os.X_OK)
    with open(LSPCI) as f:
        assert f.readline().rstrip() == "#!/usr/bin/env python3"


def test_lspci_against_the_daemon(qtest_daemon):
    expected = []
    for bus in qtest_daemon.qmp().command("query-pci"):
        for dev in bus["devices"]:
            expected.append("00:%02x.%x %04x: %04x:%04x (rev " % (
                dev["slot"], dev["function"], dev["class_info"]["class"],
                dev["id"]["vendor"], dev["id"]["device"]))
    q = qtest_daemon.qtest()
    q.outl(0xCF8, 0x80001234 & ~3)
    r = run_lspci(qtest_daemon.qtest_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    if not expected:
        assert lines == ["no PCI functions on bus 0"]
    else:
        assert len(lines) == len(expected)
        for line, prefix in zip(lines, sorted(expected)):
            assert line.startswith(prefix), (line, prefix)
    # The guest-visible address latch is left as it was.
    assert q.inl(0xCF8) == 0x80001234 & ~3


def test_lspci_without_a_daemon():
    r = run_lspci("/tmp/no-such-xen-dm-socket")
    assert r.returncode == 1
    assert "no-such-xen-dm-socket" in r.stderr


class FakeQTest(threading.Thread):
    """A qtest server with a scripted bus 0, to check the listing rules
    (multi-function bit, absent functions) that today's empty bus cannot."""

    def __init__(self, path, functions):
        super().__init__(daemon=True)
        self.functions = functions  # devfn -> {register: dword}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.address = 0

    def read(self, port):
        if port == 0xCF8:
            return self.address
        if port == 0xCFC and self.address & 0x80000000 and not self.address & 0xFF0000:
            regs = self.functions.get((self.address >> 8) & 0xFF, {})
            return regs.get(self.address & 0xFC, 0 if regs else 0xFFFFFFFF)
        return 0xFFFFFFFF

    def run(self):
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rwb") as f:
            for raw in f:
                words = raw.decode().split()
                if words[0] == "outl" and int(words[1], 16) == 0xCF8:
                    self.address = int(words[2], 16)
                    f.write(b"IRQ raise 9\nOK\n")  # an interleaved IRQ line must be skipped
                elif words[0] == "inl":
                    f.write(b"OK 0x%04x\n" % self.read(int(words[1], 16)))
                else:
                    f.write(b"OK\n")
                f.flush()


def fn(vendor, device, cls, rev, header=0):
    return {0x00: device << 16 | vendor, 0x08: cls << 16 | rev, 0x0C: header << 16}


def test_lspci_listing_rules():
    sockdir = xendm.short_tempdir()
    path = os.path.join(sockdir, "fake")
    fake = FakeQTest(path, {
        0x00: fn(0x8086, 0x1237, 0x0600, 0x02),
        0x08: fn(0x8086, 0x7000, 0x0601, 0x00, header=0x80),  # multi-function
        0x09: fn(0x8086, 0x7010, 0x0101, 0x00),
        0x0B: fn(0x8086, 0x7113, 0x0680, 0x03),
        0x10: fn(0x1234, 0x1111, 0x0300, 0x02),
        0x18: fn(0x5853, 0x0001, 0xFF80, 0x01),
        0x1A: fn(0x10EC, 0x8139, 0x0200, 0x20),  # 03.2, but 03.0 is single-function
        0x21: fn(0x8086, 0x100E, 0x0200, 0x03),  # 04.1 without an 04.0
        0xF8: fn(0xABCD, 0x0042, 0x1234, 0x7F),  # unknown class: no name
    })
    fake.start()
    try:
        r = run_lspci(path)
    finally:
        fake.listener.close()
        os.unlink(path)
        os.rmdir(sockdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "00:00.0 0600: 8086:1237 (rev 02) Host bridge",
        "00:01.0 0601: 8086:7000 (rev 00) ISA bridge",
        "00:01.1 0101: 8086:7010 (rev 00) IDE interface",
        "00:01.3 0680: 8086:7113 (rev 03) Bridge",
        "00:02.0 0300: 1234:1111 (rev 02) VGA compatible controller",
        "00:03.0 ff80: 5853:0001 (rev 01) Unassigned class",
        "00:1f.0 1234: abcd:0042 (rev 7f)",
    ]
