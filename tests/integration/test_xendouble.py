"""Tests of the Xen test double itself (tests/xendouble/), without xen-dm.

Two clients drive it:
  * tests-bin/xendouble_selftest, a small C device model linked against the
    real Xen libraries and run under LD_PRELOAD: the whole start-up, service
    and tear-down sequence, against the harness playing Xen;
  * tests/xendouble/puppet.py, which performs single library calls through
    ctypes, for the exact semantics of each call.
"""

import errno as E
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

import xendouble as X
from xendouble import IOREQ_READ, IOREQ_WRITE, IOREQ_TYPE_PIO, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG

PUPPET = os.path.join(X.REPO_ROOT, "tests", "xendouble", "puppet.py")
DOMID = 1
SCRATCH = 0x510
MMIO = 0xFEBF0000
SELFTEST_SBDF = X.pci_sbdf(0, 0, 3, 0)


@pytest.fixture(scope="module", autouse=True)
def _double_built():
    for path in (X.preload_library(), X.selftest_binary(), os.path.join(X.libdir(), "libxendouble_harness.so")):
        if not os.path.exists(path):
            pytest.fail("%s is missing (make check builds it)" % path, pytrace=False)


@pytest.fixture
def xen():
    with X.XenDouble(domid=DOMID, vcpus=2) as x:
        yield x


class Selftest:
    """The C client under the double."""

    def __init__(self, xen, *args):
        self.xen = xen
        self.log_path = os.path.join(xen.dir, "selftest.log")
        env = dict(os.environ)
        env.update(xen.env())
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([X.selftest_binary(), str(xen.domid)] + list(args),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def quit(self):
        """Asks it to detach (a write to port 0x514) and checks it did."""
        self.xen.guest_out(0x514, 4, 1)
        return self.wait()

    def wait(self, rc=0):
        got = self.proc.wait(10)
        assert got == rc, "selftest exited %d:\n%s" % (got, self.log())
        self.xen.wait_exit(self.proc.pid)
        return got

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def selftest(xen):
    started = []

    def start(*args):
        st = Selftest(xen, *args)
        started.append(st)
        return st
    yield start
    for st in started:
        st.kill()


class Puppet:
    """A device model made of single library calls (tests/xendouble/puppet.py)."""

    def __init__(self, xen):
        env = dict(os.environ)
        env.update(xen.env())
        env["XEN_DOUBLE_LIB"] = X.preload_library()
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        self.xen = xen
        self.proc = subprocess.Popen([sys.executable, PUPPET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True)
        self.pid = self.proc.pid

    def request(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "puppet died"
        return json.loads(line)

    def call(self, name, *args):
        """(ret, errno, outputs)."""
        r = self.request({"call": name, "args": list(args)})
        return r["ret"], r["errno"], r["out"]

    def ok(self, name, *args):
        ret, err, out = self.call(name, *args)
        assert ret is not None and ret >= 0, "%s%s failed: %s" % (name, args, E.errorcode.get(err, err))
        return (ret, out) if out else ret

    def fails(self, name, *args):
        """The errno of a call that must fail."""
        ret, err, _ = self.call(name, *args)
        assert ret is None or ret < 0, "%s%s succeeded (%r)" % (name, args, ret)
        return err

    def peek(self, addr, length):
        return bytes.fromhex(self.request({"peek": addr, "len": length})["data"])

    def poke(self, addr, data):
        self.request({"poke": addr, "data": bytes(data).hex()})

    def readable(self, fd, timeout=0.2):
        return self.request({"poll": fd, "timeout": timeout})["readable"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"exit": 0}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stdin.close()

    # Shorthands.
    def open_all(self):
        self.dm = self.ok("xendevicemodel_open", None, 0)
        self.fmem = self.ok("xenforeignmemory_open", None, 0)
        self.xce = self.ok("xenevtchn_open", None, 0)
        self.xch = self.ok("xc_interface_open", None, None, 0)
        return self

    def create(self, mode=X.HVM_IOREQSRV_BUFIOREQ_ATOMIC):
        _, (sid,) = self.ok("xendevicemodel_create_ioreq_server", self.dm, DOMID, mode, {"out": "u16"})
        return sid

    def map_resource(self, sid, frame=0, nr=2):
        """(resource handle, address)."""
        fres, (addr,) = self.ok("xenforeignmemory_map_resource", self.fmem, DOMID, X.XENMEM_resource_ioreq_server,
                                sid, frame, nr, {"out": "ptr"}, X.PROT_READ | X.PROT_WRITE, 0)
        return fres, addr


@pytest.fixture
def puppet(xen):
    made = []

    def make():
        p = Puppet(xen)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def u32s(hexdata):
    raw = bytes.fromhex(hexdata)
    return list(struct.unpack("<%di" % (len(raw) // 4), raw))


# ---- the C client through its whole life ------------------------------------

SETUP_OPS = [
    "xc_interface_open", "xenforeignmemory_open", "xendevicemodel_open", "xenevtchn_open", "xc_domain_getinfo", "xendevicemodel_nr_vcpus", "xendevicemodel_create_ioreq_server",
    "xenforeignmemory_map_resource", "xendevicemodel_get_ioreq_server_info",
    "xendevicemodel_map_io_range_to_ioreq_server", "xendevicemodel_map_io_range_to_ioreq_server",
    "xendevicemodel_map_io_range_to_ioreq_server", "xendevicemodel_map_pcidev_to_ioreq_server",
    "xendevicemodel_set_ioreq_server_state", "xenevtchn_bind_interdomain", "xenevtchn_bind_interdomain",
    "xenevtchn_bind_interdomain",
]
TEARDOWN_OPS = [
    "xendevicemodel_set_ioreq_server_state", "xenevtchn_unbind", "xenevtchn_unbind", "xenevtchn_unbind",
    "xenforeignmemory_unmap_resource", "xendevicemodel_destroy_ioreq_server", "xenevtchn_close",
    "xendevicemodel_close", "xenforeignmemory_close", "xc_interface_close",
]


def test_selftest_attaches_serves_and_detaches_in_order(xen, selftest):
    st = selftest()
    s = xen.wait_attached()
    assert xen.ops() == SETUP_OPS
    create = xen.calls("xendevicemodel_create_ioreq_server")[0]
    assert create["handle_bufioreq"] == X.HVM_IOREQSRV_BUFIOREQ_ATOMIC and create.out == {"id": 0}
    res = xen.calls("xenforeignmemory_map_resource")[0]
    assert (res["type"], res["id"], res["frame"], res["nr_frames"]) == (0, 0, 0, 2)
    info = xen.calls("xendevicemodel_get_ioreq_server_info")[0]
    assert info["want_gfns"] is False and info.out["bufioreq_port"] == s.buf_port.port
    assert s.port_ranges == [(0x510, 0x52F)]
    assert s.mmio_ranges == [(0xA0000, 0xBFFFF), (MMIO, MMIO + 0xFFF)]
    assert s.pci_devices == [SELFTEST_SBDF]
    binds = xen.calls("xenevtchn_bind_interdomain")
    assert [b["remote_port"] for b in binds] == [p.port for p in s.vcpu_ports] + [s.buf_port.port]
    assert [b.ret for b in binds] == [1000, 1001, 1002]
    assert xen.vp_eports() == [3, 4]

    mark = xen.mark()
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_WRITE, 0xCAFEF00D)
    assert xen.send_ioreq(1, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_READ) == 0xCAFEF00D
    assert xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH + 2, 2, 1, IOREQ_READ) == 0xCAFE
    # Each answer was announced on the answering vCPU's own channel.
    notifies = xen.calls("xenevtchn_notify", since=mark)
    assert [(n.out["vcpu"], n.out["remote_port"]) for n in notifies] == [(0, 3), (1, 4), (0, 3)]
    assert xen.read_slot(0)["state"] == X.STATE_IOREQ_NONE

    mark = xen.mark()
    st.quit()
    assert xen.ops(since=mark) == TEARDOWN_OPS
    assert xen.calls("xendevicemodel_set_ioreq_server_state")[-1]["enabled"] == 0
    assert not xen.servers
    xen.assert_clean()


def test_selftest_pointer_transfers_both_directions(xen, selftest):
    st = selftest()
    xen.wait_attached()
    # rep outsw from guest RAM, ascending: the port sees each element.
    xen.ram_write(0x3000, struct.pack("<4H", 0x1111, 0x2222, 0x3333, 0x4444))
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 2, 4, IOREQ_WRITE, 0x3000, data_is_ptr=True)
    assert xen.guest_in(SCRATCH, 2) == 0x4444
    # rep outsw descending (df): the last element is the lowest address.
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 2, 4, IOREQ_WRITE, 0x3006, data_is_ptr=True, df=True)
    assert xen.guest_in(SCRATCH, 2) == 0x1111
    # rep insl into RAM, both directions.
    xen.guest_out(SCRATCH, 4, 0xA5A5F00F)
    xen.ram_write(0x5000, bytes(32))
    xen.send_ioreq(1, IOREQ_TYPE_PIO, SCRATCH, 4, 3, IOREQ_READ, 0x5004, data_is_ptr=True)
    assert xen.ram_read(0x5000, 20) == bytes(4) + struct.pack("<I", 0xA5A5F00F) * 3 + bytes(4)
    xen.ram_write(0x5000, bytes(32))
    xen.send_ioreq(1, IOREQ_TYPE_PIO, SCRATCH, 4, 3, IOREQ_READ, 0x5008, data_is_ptr=True, df=True)
    assert xen.ram_read(0x5000, 16) == struct.pack("<I", 0xA5A5F00F) * 3 + bytes(4)
    # MMIO <-> RAM (rep movsq), both ways, df both ways.
    xen.ram_write(0x6000, struct.pack("<4Q", 1, 2, 3, 4))
    xen.send_ioreq(0, IOREQ_TYPE_COPY, MMIO + 0x100, 8, 4, IOREQ_WRITE, 0x6000, data_is_ptr=True)
    assert [xen.guest_mmio_read(MMIO + 0x100 + 8 * i, 8) for i in range(4)] == [1, 2, 3, 4]
    xen.send_ioreq(0, IOREQ_TYPE_COPY, MMIO + 0x118, 8, 4, IOREQ_READ, 0x7018, data_is_ptr=True, df=True)
    assert struct.unpack("<4Q", xen.ram_read(0x7000, 32)) == (1, 2, 3, 4)
    # One element straddling two guest pages.
    xen.guest_out(SCRATCH, 4, 0x44332211)
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_READ, 0x8FFE, data_is_ptr=True)
    assert xen.ram_read(0x8FFE, 4) == bytes([0x11, 0x22, 0x33, 0x44])
    maps = xen.calls("xenforeignmemory_map")
    assert maps[-1]["gfns"] == [8, 9]
    assert len(xen.calls("xenforeignmemory_unmap")) == len(maps)
    # rep stosl (no pointer): every element written.
    xen.send_ioreq(1, IOREQ_TYPE_COPY, MMIO + 0x200, 4, 4, IOREQ_WRITE, 0x5A5A5A5A)
    assert [xen.guest_mmio_read(MMIO + 0x200 + 4 * i, 4) for i in range(5)] == [0x5A5A5A5A] * 4 + [0]
    st.quit()
    xen.assert_clean()


def test_selftest_pointer_to_missing_guest_frame(xen, selftest):
    st = selftest()
    xen.wait_attached()
    outside = xen.ram_size + 0x10000
    xen.guest_out(SCRATCH, 4, 0x12345678)
    # The vCPU still gets its answer; nothing mapped stays behind.
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_READ, outside, data_is_ptr=True)
    m = xen.calls("xenforeignmemory_map")[-1]
    assert m["gfns"] == [outside // X.PAGE] and m.out["err"] == [-E.EINVAL]
    xen.fail_gfn(0x20, E.EFAULT)
    xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_READ, 0x20000, data_is_ptr=True)
    assert xen.calls("xenforeignmemory_map")[-1].out["err"] == [-E.EFAULT]
    assert xen.ram_read(0x20000, 4) == bytes(4)
    st.quit()
    xen.assert_clean()


def test_selftest_pci_config_through_cf8(xen, selftest):
    st = selftest()
    xen.wait_attached()
    xen.guest_out(0xCF8, 4, 0x80000000 | (3 << 11))
    assert xen.guest_in(0xCFC, 4) == 0xC0DE5853
    assert xen.guest_in(0xCFE, 2) == 0xC0DE
    req = xen.ioreq_log[-1][0]
    assert (req["type"], req["addr"], req["size"]) == (IOREQ_TYPE_PCI_CONFIG, (SELFTEST_SBDF << 32) | 2, 2)
    xen.guest_out(0xCF8, 4, 0x80000000 | (3 << 11) | 0x40)
    xen.guest_out(0xCFD, 1, 0x9A)
    assert xen.guest_in(0xCFC, 4) == 0x9A00
    # Functions nobody registered never reach the device model.
    n = len(xen.ioreq_log)
    xen.guest_out(0xCF8, 4, 0x80000000 | (4 << 11))
    assert xen.guest_in(0xCFC, 4) == 0xFFFFFFFF
    assert len(xen.ioreq_log) == n
    # Nor do ports and MMIO nobody registered.
    assert xen.guest_in(0x600, 2) == 0xFFFF
    assert xen.guest_mmio_read(0xFEC00000, 4) == 0xFFFFFFFF
    assert len(xen.ioreq_log) == n
    st.quit()
    xen.assert_clean()


def test_selftest_buffered_writes_drained_in_order(xen, selftest):
    st = selftest()
    s = xen.wait_attached()
    for i in range(5):
        assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000 + 4 * i, 4, 0x100 + i) == "queued"
    assert xen.send_buffered(IOREQ_TYPE_COPY, 0xB8000, 8, 0x1122334455667788) == "queued"
    # A synchronous read sees every earlier buffered write done.
    assert xen.guest_in(0x514, 4) == 6
    assert xen.guest_in(0x518, 4) == 0xB8000
    assert (xen.guest_in(0x520, 4) << 32) | xen.guest_in(0x51C, 4) == 0x1122334455667788
    assert xen.guest_in(0x524, 4) == 8
    assert xen.buffered_pointers() == (7, 7)
    # Not encodable: dropped as Xen drops them.
    assert xen.send_buffered(IOREQ_TYPE_COPY, 0x100000, 4, 1) == "dropped"
    assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 4, 1, count=2) == "dropped"
    # Many more items than slots: Xen keeps both pointers below 511.
    total = 7
    for i in range(700):
        size = 8 if i % 7 == 0 else 2
        assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000 + i, size, i) == "queued"
        total += 2 if size == 8 else 1
        if i % 50 == 0:
            xen.wait_buffered_drained()
    xen.wait_buffered_drained()
    rp, wp = xen.buffered_pointers()
    # Both pointers were brought down by multiples of 511 on the way.
    assert rp == wp and rp < total and (total - rp) % X.IOREQ_BUFFER_SLOT_NUM == 0
    assert s.buf_pushed == total
    assert xen.guest_in(0x514, 4) == 6 + 700
    st.quit()
    xen.assert_clean()


class stopped:
    """The process stays stopped (SIGSTOP) inside the with block."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while True:
            with open("/proc/%d/stat" % self.pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    return
            assert time.monotonic() < deadline, "process %d does not stop" % self.pid
            time.sleep(0.001)

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


def test_selftest_full_ring(xen, selftest):
    st = selftest()
    xen.wait_attached()
    with stopped(st.proc.pid):
        for i in range(511):
            assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 1, i & 0xFF) == "queued"
        assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 1, 0) == "full"
    assert xen.guest_in(0x514, 4) == 511
    with stopped(st.proc.pid):
        for i in range(510):
            assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 1, 0) == "queued"
        # One slot left: an 8-byte write needs two.
        assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 8, 0) == "full"
        assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 4, 0) == "queued"
    assert xen.guest_in(0x514, 4) == 1022
    st.quit()
    xen.assert_clean()


def test_selftest_invalidate_and_timeoffset(xen, selftest):
    st = selftest()
    xen.wait_attached()
    [slot] = xen.send_invalidate(vcpu=1)
    assert (slot["type"], slot["count"], slot["size"], slot["dir"]) == (X.IOREQ_TYPE_INVALIDATE, 0, 4, IOREQ_WRITE)
    assert xen.guest_in(0x528, 4) == 1
    assert xen.send_timeoffset(-3600) == ["queued"]
    assert xen.guest_in(0x52C, 4) == (-3600) & X.M32
    assert xen.send_timeoffset(0) == []
    st.quit()
    xen.assert_clean()


def test_selftest_irq_through_dm_op(xen, selftest):
    st = selftest()
    xen.wait_attached()
    xen.guest_out(0x52C, 4, 0x104)
    assert xen.isa_irq[4] == 1
    xen.guest_out(0x52C, 4, 0x004)
    assert xen.isa_irq_events == [(4, 1), (4, 0)]
    # Refused by Xen: the client logs and carries on.
    xen.guest_out(0x52C, 4, 0x110)
    assert xen.calls("xendevicemodel_set_isa_irq_level")[-1].errno == E.EINVAL
    st.quit()
    xen.assert_clean()


def test_selftest_falls_back_to_gfns_without_resource_mapping(xen, selftest):
    xen.inject("xenforeignmemory_map_resource", E.EOPNOTSUPP)
    st = selftest()
    s = xen.wait_attached()
    assert s.backing == "gfn" and (s.ioreq_gfn, s.bufioreq_gfn) == (0xFEFF0, 0xFEFF1)
    info = xen.calls("xendevicemodel_get_ioreq_server_info")
    assert len(info) == 1 and info[0]["want_gfns"] is True
    assert [m["gfns"] for m in xen.calls("xenforeignmemory_map")] == [[0xFEFF1], [0xFEFF0]]
    xen.send_buffered(IOREQ_TYPE_COPY, 0xA0008, 4, 0xBEEF)
    assert xen.guest_in(0x51C, 4) == 0xBEEF
    # While enabled, Xen keeps those frames out of the guest's p2m.
    st.quit()
    assert xen.calls("xenforeignmemory_map_resource")[0].injected
    xen.assert_clean()


def test_selftest_four_vcpus_at_once():
    with X.XenDouble(domid=DOMID, vcpus=4) as xen:
        st = Selftest(xen)
        try:
            xen.wait_attached()
            errors = []

            def vcpu_loop(v):
                try:
                    for i in range(100):
                        addr = MMIO + 0x400 * v + 8 * (i % 16)
                        xen.send_ioreq(v, IOREQ_TYPE_COPY, addr, 8, 1, IOREQ_WRITE, (v << 32) | i)
                        got = xen.send_ioreq(v, IOREQ_TYPE_COPY, addr, 8, 1, IOREQ_READ)
                        if got != (v << 32) | i:
                            errors.append("vCPU %d: %#x" % (v, got))
                except Exception as e:  # reported below
                    errors.append("vCPU %d: %r" % (v, e))
            threads = [threading.Thread(target=vcpu_loop, args=(v,)) for v in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
            assert len(xen.ioreq_log) == 800
            assert len(xen.calls("xenevtchn_bind_interdomain")) == 5
            st.quit()
            xen.assert_clean()
        finally:
            st.kill()


def test_selftest_survives_hostile_values(xen, selftest):
    st = selftest()
    s = xen.wait_attached()
    xen.guest_out(SCRATCH, 4, 7)
    # A request rewritten after READY: whatever was read, one answer comes.
    slot = xen.send_ioreq_and_change({"size": 3, "addr": 0xFFFF}, vcpu=0, type=IOREQ_TYPE_PIO, addr=SCRATCH,
                                     size=4, dir=IOREQ_READ)
    assert slot["state"] == X.STATE_IORESP_READY
    # Impossible states and sizes are not answered / refused.
    xen.set_slot_state(0, 7, signal=True)
    xen.send_ioreq(1, IOREQ_TYPE_PIO, SCRATCH, 4, 1, IOREQ_READ)  # still serving
    xen.reset_slot(0)
    assert xen.send_ioreq(0, IOREQ_TYPE_PIO, SCRATCH, 3, 1, IOREQ_READ) == X.M64
    assert xen.send_ioreq(0, IOREQ_TYPE_COPY, MMIO, 4, 0xFFFFFFFF, IOREQ_READ) == X.M64
    # Ports nobody bound, and one far out of range.
    xen.deliver_local_port(0x7FFFFFF0)
    xen.deliver_local_port(999)
    # An event for a request in a state the device model did not leave it in.
    xen.write_slot(1, state=X.STATE_IOREQ_INPROCESS)
    xen.signal_vcpu(1)
    xen.reset_slot(1)
    # Garbage in the buffered ring, pointers far apart.
    xen.fill_ring_garbage(seed=5)
    assert xen.guest_in(SCRATCH, 4) == 7
    rp, wp = xen.buffered_pointers()
    assert rp == wp
    xen.fill_ring_garbage(slots=300, seed=6)
    xen.wait_buffered_drained()
    assert "not ours" in st.log() and "impossible" in st.log()
    st.quit()
    assert xen.violations == []
    xen.assert_clean()


def test_selftest_detaches_on_sigterm_and_restricts(xen, selftest):
    st = selftest("--restrict")
    xen.wait_attached()
    call = xen.wait_for("xentoolcore_restrict_all")
    assert call.ok and call["domid"] == DOMID
    assert {h.kind: h.restricted for h in xen.handles.values()} == {
        "xc": None, "xenforeignmemory": DOMID, "xendevicemodel": DOMID, "xenevtchn": DOMID}
    assert [h.dead for h in xen.handles.values() if h.kind == "xc"] == [True]
    assert xen.guest_in(SCRATCH, 4) == 0
    mark = xen.mark()
    st.proc.send_signal(signal.SIGTERM)
    st.wait()
    assert xen.ops(since=mark) == TEARDOWN_OPS
    xen.assert_clean()


def test_selftest_unwinds_a_failed_start(xen, selftest):
    xen.inject("xendevicemodel_set_ioreq_server_state", E.EIO)
    st = selftest()
    st.wait(rc=1)
    ops = xen.ops()
    assert ops[ops.index("xendevicemodel_set_ioreq_server_state"):] == [
        "xendevicemodel_set_ioreq_server_state", "xenforeignmemory_unmap_resource",
        "xendevicemodel_destroy_ioreq_server", "xenevtchn_close", "xendevicemodel_close",
        "xenforeignmemory_close", "xc_interface_close"]
    xen.assert_clean()


def test_selftest_create_failure(xen, selftest):
    xen.inject("xendevicemodel_create_ioreq_server", E.ENOSPC)
    st = selftest()
    st.wait(rc=1)
    assert "No space left" in st.log()
    assert xen.calls("xendevicemodel_create_ioreq_server")[0].injected
    xen.assert_clean()


# ---- call semantics through the puppet -------------------------------------------

def test_server_ids_and_limits(xen, puppet):
    p = puppet().open_all()
    assert [p.create() for _ in range(8)] == list(range(8))
    assert p.fails("xendevicemodel_create_ioreq_server", p.dm, DOMID, 2, {"out": "u16"}) == E.ENOSPC
    assert p.fails("xendevicemodel_create_ioreq_server", p.dm, DOMID, 3, {"out": "u16"}) == E.EINVAL
    assert p.fails("xendevicemodel_create_ioreq_server", p.dm, 7, 2, {"out": "u16"}) == E.ESRCH
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, 3)
    assert p.fails("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, 3) == E.ENOENT
    assert p.create() == 3
    # Ports: one per vCPU plus the buffered one, all different.
    ports = [gp.port for s in xen.servers.values() for gp in s.vcpu_ports + [s.buf_port]]
    assert len(ports) == 24 and len(set(ports)) == 24
    for sid in range(8):
        p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)
    assert "ioreq server" not in " ".join(xen.leaks())


def test_pages_are_shared_and_vp_eports_appear_on_enable(xen, puppet):
    p = puppet().open_all()
    sid = p.create()
    fres, addr = p.map_resource(sid)
    s = xen.server(sid)
    assert xen.vp_eports(s) == [0, 0]
    p.ok("xendevicemodel_set_ioreq_server_state", p.dm, DOMID, sid, 1)
    assert xen.vp_eports(s) == [gp.port for gp in s.vcpu_ports]
    # The device model's view is the harness's page.
    slot1 = p.peek(addr + X.PAGE + 32, 32)
    assert struct.unpack_from("<I", slot1, 24)[0] == s.vcpu_ports[1].port
    xen.write_slot(1, addr=0x1234, state=X.STATE_IOREQ_READY)
    assert struct.unpack_from("<Q", p.peek(addr + X.PAGE + 32, 8))[0] == 0x1234
    p.poke(addr, struct.pack("<I", 5))
    assert xen.buffered_pointers(s) == (5, 0)
    size, err, (nbytes,) = p.call("xenforeignmemory_resource_size", p.fmem, DOMID, 0, sid, {"out": "u64"})
    assert (size, err, nbytes) == (0, 0, 2 * X.PAGE)
    p.ok("xenforeignmemory_unmap_resource", p.fmem, fres)
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)
    # Pages made after enabling carry no ports (Xen writes them on enable).
    sid = p.create()
    p.ok("xendevicemodel_set_ioreq_server_state", p.dm, DOMID, sid, 1)
    fres, addr = p.map_resource(sid, frame=1, nr=1)
    assert struct.unpack_from("<I", p.peek(addr + 24, 4))[0] == 0
    p.ok("xenforeignmemory_unmap_resource", p.fmem, fres)
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)


def test_resource_and_gfn_backing_exclude_each_other(xen, puppet):
    p = puppet().open_all()
    a = p.create()
    fres, _ = p.map_resource(a)
    assert p.fails("xendevicemodel_get_ioreq_server_info", p.dm, DOMID, a, {"out": "u64"}, None,
                   {"out": "u32"}) == E.EPERM
    _, (port,) = p.ok("xendevicemodel_get_ioreq_server_info", p.dm, DOMID, a, None, None, {"out": "u32"})
    assert port == xen.server(a).buf_port.port
    b = p.create(X.HVM_IOREQSRV_BUFIOREQ_OFF)
    _, (gfn, bufgfn, bport) = p.ok("xendevicemodel_get_ioreq_server_info", p.dm, DOMID, b, {"out": "u64"},
                                   {"out": "u64"}, {"out": "u32"})
    assert (gfn, bufgfn, bport) == (0xFEFF0, 0, 0)
    args = (p.fmem, DOMID, 0, b, 1, 1, {"out": "ptr"}, 3, 0)
    assert p.fails("xenforeignmemory_map_resource", *args) == E.EPERM
    # Frame 0 is the ring, which a server without buffering lacks; no frame 2.
    c = p.create(X.HVM_IOREQSRV_BUFIOREQ_OFF)
    assert p.fails("xenforeignmemory_map_resource", p.fmem, DOMID, 0, c, 0, 1, {"out": "ptr"}, 3, 0) == E.ENOENT
    assert p.fails("xenforeignmemory_map_resource", p.fmem, DOMID, 0, c, 1, 2, {"out": "ptr"}, 3, 0) == E.EINVAL
    assert p.fails("xenforeignmemory_map_resource", p.fmem, DOMID, 0, 7, 1, 1, {"out": "ptr"}, 3, 0) == E.ENOENT
    assert p.fails("xenforeignmemory_map_resource", p.fmem, DOMID, 1, c, 0, 1, {"out": "ptr"}, 3, 0) == E.EOPNOTSUPP
    # Flags beyond MAP_SHARED/MAP_PRIVATE are refused by the library itself.
    n = len(xen.calls())
    assert p.fails("xenforeignmemory_map_resource", p.fmem, DOMID, 0, c, 1, 1, {"out": "ptr"}, 3, 0x10) == E.EINVAL
    assert len(xen.calls()) == n
    # gfn-backed pages are foreign-mappable only while the server is disabled.
    mapped, (err,) = p.ok("xenforeignmemory_map", p.fmem, DOMID, 3, 1, {"buf": struct.pack("<Q", gfn).hex()},
                          {"outbuf": 4})
    assert u32s(err) == [0]
    p.ok("xendevicemodel_set_ioreq_server_state", p.dm, DOMID, b, 1)
    assert struct.unpack_from("<I", p.peek(mapped, 4 + 24), 24)[0] == xen.server(b).vcpu_ports[0].port
    assert p.fails("xenforeignmemory_map", p.fmem, DOMID, 3, 1, {"buf": struct.pack("<Q", gfn).hex()},
                   None) == E.EINVAL
    p.ok("xenforeignmemory_unmap", p.fmem, mapped, 1)
    p.ok("xenforeignmemory_unmap_resource", p.fmem, fres)
    for sid in (a, b, c):
        p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)


def test_io_ranges(xen, puppet):
    p = puppet().open_all()
    sid = p.create()
    rng = "xendevicemodel_map_io_range_to_ioreq_server"
    unrng = "xendevicemodel_unmap_io_range_from_ioreq_server"
    p.ok(rng, p.dm, DOMID, sid, 0, 0x3F8, 0x3FF)
    p.ok(rng, p.dm, DOMID, sid, 0, 0x400, 0x40F)
    assert xen.server(sid).port_ranges == [(0x3F8, 0x40F)]
    assert p.fails(rng, p.dm, DOMID, sid, 0, 0x40F, 0x410) == E.EEXIST
    assert p.fails(rng, p.dm, DOMID, sid, 0, 0x20, 0x10) == E.EINVAL
    p.ok(rng, p.dm, DOMID, sid, 1, 0x3F8, 0x3FF)  # another space: no overlap
    p.ok(unrng, p.dm, DOMID, sid, 0, 0x400, 0x403)
    assert xen.server(sid).port_ranges == [(0x3F8, 0x3FF), (0x404, 0x40F)]
    assert p.fails(unrng, p.dm, DOMID, sid, 0, 0x3FC, 0x405) == E.ENOENT
    assert p.fails(rng, p.dm, DOMID, 5, 0, 0x60, 0x60) == E.ENOENT
    p.ok("xendevicemodel_map_pcidev_to_ioreq_server", p.dm, DOMID, sid, 0, 0, 1, 3)
    assert xen.calls("xendevicemodel_map_pcidev_to_ioreq_server")[-1]["start"] == X.pci_sbdf(0, 0, 1, 3)
    assert p.fails("xendevicemodel_map_pcidev_to_ioreq_server", p.dm, DOMID, sid, 0, 0, 1, 3) == E.EEXIST
    n = len(xen.calls())
    assert p.fails("xendevicemodel_map_pcidev_to_ioreq_server", p.dm, DOMID, sid, 0, 0, 32, 0) == E.EINVAL
    assert len(xen.calls()) == n  # refused by the library
    p.ok("xendevicemodel_unmap_pcidev_from_ioreq_server", p.dm, DOMID, sid, 0, 0, 1, 3)
    assert xen.server(sid).pci_devices == []
    for i in range(255):
        p.ok(rng, p.dm, DOMID, sid, 1, 0x100000 + 2 * i, 0x100000 + 2 * i)
    assert p.fails(rng, p.dm, DOMID, sid, 1, 0x200000, 0x200000) == E.ENOSPC
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)


def test_foreign_mappings(xen, puppet):
    p = puppet().open_all()
    xen.ram_write(5 * X.PAGE, b"five")
    xen.ram_write(2 * X.PAGE, b"two!")
    beyond = xen.ram_pages + 3
    gfns = struct.pack("<3Q", 5, 2, beyond).hex()
    addr, (err,) = p.ok("xenforeignmemory_map", p.fmem, DOMID, 3, 3, {"buf": gfns}, {"outbuf": 12})
    assert u32s(err) == [0, 0, -E.EINVAL]
    assert p.peek(addr, 4) == b"five" and p.peek(addr + X.PAGE, 4) == b"two!"
    p.poke(addr + X.PAGE + 8, b"written")
    assert xen.ram_read(2 * X.PAGE + 8, 7) == b"written"
    # Without err[], one bad page fails the whole call: no mapping is left.
    assert p.fails("xenforeignmemory_map", p.fmem, DOMID, 1, 3, {"buf": gfns}, None) == E.EINVAL
    xen.fail_gfn(2, E.ENOENT)
    assert p.fails("xenforeignmemory_map", p.fmem, DOMID, 1, 1, {"buf": struct.pack("<Q", 2).hex()},
                   None) == E.ENOENT
    assert p.fails("xenforeignmemory_map", p.fmem, 9, 1, 1, {"buf": struct.pack("<Q", 2).hex()}, None) == E.ESRCH
    assert p.fails("xenforeignmemory_map", p.fmem, DOMID, 1, 0, {"buf": ""}, None) == E.EINVAL
    assert len(xen.foreign) == 1
    assert any("never unmapped" in l for l in xen.leaks())
    p.ok("xenforeignmemory_unmap", p.fmem, addr, 3)
    assert not any("never unmapped" in l for l in xen.leaks())
    # An unmap of something never mapped is the device model's error.
    p.call("xenforeignmemory_unmap", p.fmem, addr, 3)
    assert xen.violations and "nothing mapped" in xen.violations[-1]
    xen.violations.clear()
    # map2 at a fixed address.
    fixed = addr
    got, _ = p.ok("xenforeignmemory_map2", p.fmem, DOMID, fixed, 1, 0x10, 1,
                  {"buf": struct.pack("<Q", 5).hex()}, {"outbuf": 4})
    assert got == fixed and p.peek(got, 4) == b"five"
    p.ok("xenforeignmemory_unmap", p.fmem, got, 1)


def test_event_channel_masking_and_notify(xen, puppet):
    p = puppet().open_all()
    sid = p.create()
    fres, _ = p.map_resource(sid)
    p.ok("xendevicemodel_set_ioreq_server_state", p.dm, DOMID, sid, 1)
    s = xen.server(sid)
    fd = p.ok("xenevtchn_fd", p.xce)
    local = p.ok("xenevtchn_bind_interdomain", p.xce, DOMID, s.vcpu_ports[0].port)
    # Xen marks a fresh binding pending.
    assert p.readable(fd)
    assert p.ok("xenevtchn_pending", p.xce) == local
    assert not p.readable(fd, 0.05)
    # Masked until unmask: two signals now give one event after unmask.
    xen.signal_vcpu(0)
    xen.signal_vcpu(0)
    assert not p.readable(fd, 0.05)
    p.ok("xenevtchn_unmask", p.xce, local)
    assert p.readable(fd)
    assert p.ok("xenevtchn_pending", p.xce) == local
    p.ok("xenevtchn_unmask", p.xce, local)
    assert not p.readable(fd, 0.05)
    xen.signal_vcpu(0)
    assert p.ok("xenevtchn_pending", p.xce) == local
    # Notify reaches the guest port.
    p.ok("xenevtchn_notify", p.xce, local)
    n = xen.wait_for("xenevtchn_notify")
    assert n.out == {"remote_port": s.vcpu_ports[0].port, "server": sid, "vcpu": 0}
    assert s.vcpu_ports[0].notifies == 1
    # Ports the handle does not own: refused locally (ENOTCONN), as Linux does.
    calls = len(xen.calls())
    assert p.fails("xenevtchn_notify", p.xce, local + 1) == E.ENOTCONN
    assert p.fails("xenevtchn_unbind", p.xce, local + 1) == E.ENOTCONN
    assert len(xen.calls()) == calls
    p.ok("xenevtchn_unbind", p.xce, local)
    assert p.fails("xenevtchn_unbind", p.xce, local) == E.ENOTCONN
    # Unbound, the guest port can be bound again.
    assert p.ok("xenevtchn_bind_interdomain", p.xce, DOMID, s.vcpu_ports[0].port) == local
    p.ok("xenevtchn_unbind", p.xce, local)
    p.ok("xenforeignmemory_unmap_resource", p.fmem, fres)
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)
    for fn, h in (("xenevtchn_close", p.xce), ("xendevicemodel_close", p.dm),
                  ("xenforeignmemory_close", p.fmem), ("xc_interface_close", p.xch)):
        p.ok(fn, h)
    xen.assert_clean()


def test_event_channel_bind_errors(xen, puppet):
    p = puppet().open_all()
    sid = p.create()
    port = xen.server(sid).vcpu_ports[1].port
    assert p.fails("xenevtchn_bind_interdomain", p.xce, DOMID, 77) == E.EINVAL
    local = p.ok("xenevtchn_bind_interdomain", p.xce, DOMID, port)
    assert p.fails("xenevtchn_bind_interdomain", p.xce, DOMID, port) == E.EINVAL
    assert p.fails("xenevtchn_bind_interdomain", p.xce, 4, port) == E.ESRCH
    p.ok("xenevtchn_restrict", p.xce, 4)
    assert p.fails("xenevtchn_restrict", p.xce, DOMID) == E.EACCES
    assert p.fails("xenevtchn_bind_interdomain", p.xce, DOMID, xen.server(sid).vcpu_ports[0].port) == E.EACCES
    # Destroying the server leaves the local port bound until unbound.
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)
    assert any("never unbound" in l for l in xen.leaks())
    p.ok("xenevtchn_unbind", p.xce, local)
    assert not any("never unbound" in l for l in xen.leaks())


def test_restrictions(xen, puppet):
    p = puppet().open_all()
    p.ok("xendevicemodel_restrict", p.dm, DOMID)
    assert p.fails("xendevicemodel_restrict", p.dm, 2) == E.EINVAL
    assert p.fails("xendevicemodel_set_isa_irq_level", p.dm, 2, 1, 1) == E.EPERM
    p.ok("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 1, 1)
    assert p.ok("xentoolcore_restrict_all", DOMID) == 0
    assert {h.kind: h.restricted for h in xen.handles.values()} == {
        "xendevicemodel": DOMID, "xenforeignmemory": DOMID, "xenevtchn": DOMID, "xc": None}
    assert p.fails("xenforeignmemory_map", p.fmem, 3, 1, 1, {"buf": struct.pack("<Q", 1).hex()}, None) == E.EPERM
    # libxenctrl cannot be restricted: its hypercalls stop working.
    assert p.fails("xc_hvm_param_get", p.xch, DOMID, 1, {"out": "u64"}) == E.ENOTTY
    # A second restrict_all trips over the evtchn handle, as on Linux.
    assert p.fails("xentoolcore_restrict_all", DOMID) == E.EACCES
    # Handles opened afterwards are not restricted.
    dm2 = p.ok("xendevicemodel_open", None, 0)
    p.ok("xendevicemodel_set_isa_irq_level", dm2, DOMID, 2, 1)


def test_interrupt_and_misc_dm_ops(xen, puppet):
    p = puppet().open_all()
    p.ok("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 9, 1)
    assert p.fails("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 16, 1) == E.EINVAL
    assert p.fails("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 3, 2) == E.EINVAL
    # The level is narrowed to the dm_op's uint8_t: 0x101 arrives as 1.
    p.ok("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 3, 0x101)
    assert xen.isa_irq[9] == 1 and xen.isa_irq[3] == 1
    p.ok("xendevicemodel_set_pci_intx_level", p.dm, DOMID, 0, 0, 3, 0, 1)
    assert xen.pci_intx == {(3, 0): 1}
    assert p.fails("xendevicemodel_set_pci_intx_level", p.dm, DOMID, 0, 1, 3, 0, 1) == E.EINVAL
    assert p.fails("xendevicemodel_set_pci_intx_level", p.dm, DOMID, 0, 0, 3, 4, 1) == E.EINVAL
    p.ok("xendevicemodel_set_pci_link_route", p.dm, DOMID, 2, 11)
    assert xen.link_route == [0, 0, 11, 0]
    assert p.fails("xendevicemodel_set_pci_link_route", p.dm, DOMID, 4, 11) == E.EINVAL
    assert p.fails("xendevicemodel_set_irq_level", p.dm, DOMID, 5, 1) == E.EOPNOTSUPP
    p.ok("xendevicemodel_inject_msi", p.dm, DOMID, 0xFEE00000, 0x4041)
    assert xen.msis == [(0xFEE00000, 0x4041)]
    p.ok("xendevicemodel_set_mem_type", p.dm, DOMID, X.HVMMEM_ram_ro, 0x100, 2)
    assert p.fails("xendevicemodel_set_mem_type", p.dm, DOMID, X.HVMMEM_unused, 0x100, 2) == E.EINVAL
    p.ok("xendevicemodel_pin_memory_cacheattr", p.dm, DOMID, 0xF0000, 0xF0FFF, 1)
    assert p.fails("xendevicemodel_pin_memory_cacheattr", p.dm, DOMID, 0xF0000, 0xF0FFF, 2) == E.EINVAL
    p.ok("xendevicemodel_relocate_memory", p.dm, DOMID, 16, 0x1000, 0xF0000)
    assert xen.relocations == [(16, 0x1000, 0xF0000)]
    _, (n,) = p.ok("xendevicemodel_nr_vcpus", p.dm, DOMID, {"out": "u32"})
    assert n == 2
    p.ok("xendevicemodel_shutdown", p.dm, DOMID, X.SHUTDOWN_reboot)
    assert xen.shutdown_reason == X.SHUTDOWN_reboot
    sid = p.create()
    p.ok("xendevicemodel_map_mem_type_to_ioreq_server", p.dm, DOMID, sid, X.HVMMEM_ioreq_server, 2)
    assert p.fails("xendevicemodel_map_mem_type_to_ioreq_server", p.dm, DOMID, sid, X.HVMMEM_ram_rw, 2) == E.EINVAL
    p.ok("xendevicemodel_destroy_ioreq_server", p.dm, DOMID, sid)


def test_dirty_tracking(xen, puppet):
    p = puppet().open_all()
    # log-dirty off: accepted, nothing recorded as dirty.
    p.ok("xendevicemodel_modified_memory", p.dm, DOMID, 0x10, 2)
    assert xen.dirty_pfns == set()
    xen.log_dirty = True
    p.ok("xendevicemodel_modified_memory", p.dm, DOMID, 0x10, 2)
    extents = struct.pack("<IIQ", 1, 0, 0x40) + struct.pack("<IIQ", 3, 0, 0x50)
    p.ok("xendevicemodel_modified_memory_bulk", p.dm, DOMID, {"buf": extents.hex()}, 2)
    assert xen.dirty_pfns == {0x10, 0x11, 0x40, 0x50, 0x51, 0x52}
    assert p.fails("xendevicemodel_modified_memory", p.dm, DOMID, 0xFFFFF, 2) == E.EINVAL
    # VRAM tracking: everything dirty on a new range, then what changed.
    args = (p.dm, DOMID, 0x100, 20, {"outbuf": 8})
    _, (bits,) = p.ok("xendevicemodel_track_dirty_vram", *args)
    assert bytes.fromhex(bits)[:3] == b"\xff\xff\x0f"
    _, (bits,) = p.ok("xendevicemodel_track_dirty_vram", *args)
    assert bytes.fromhex(bits)[:3] == bytes(3)
    xen.ram_write(0x109 * X.PAGE + 10, b"x")
    _, (bits,) = p.ok("xendevicemodel_track_dirty_vram", *args)
    assert bytes.fromhex(bits)[:3] == b"\x00\x02\x00"
    assert p.fails("xendevicemodel_track_dirty_vram", p.dm, DOMID, 0, 262145, None) == E.EINVAL


def test_hvm_params_and_domain_info(xen, puppet):
    p = puppet().open_all()
    _, (v,) = p.ok("xc_hvm_param_get", p.xch, DOMID, 5, {"out": "u64"})
    assert v == 0xFEFFD
    assert p.fails("xc_hvm_param_get", p.xch, DOMID, X.HVM_PARAM_BUFIOREQ_EVTCHN, {"out": "u64"}) == E.EINVAL
    assert p.fails("xc_hvm_param_get", p.xch, DOMID, 39, {"out": "u64"}) == E.EINVAL
    assert p.fails("xc_hvm_param_get", p.xch, 5, 1, {"out": "u64"}) == E.ESRCH
    p.ok("xc_hvm_param_set", p.xch, DOMID, 14, 3)
    _, (v,) = p.ok("xc_get_hvm_param", p.xch, DOMID, 14, {"out": "ulong"})
    assert v == 3 and xen.hvm_params[14] == 3
    n, (raw,) = p.ok("xc_domain_getinfolist", p.xch, 0, 4, {"outbuf": 4 * 112})
    assert n == 2
    raw = bytes.fromhex(raw)
    guest = raw[112:224]
    dom, flags = struct.unpack_from("<HxxI", guest)
    tot, = struct.unpack_from("<Q", guest, 8)
    online, maxid = struct.unpack_from("<II", guest, 64)
    assert (dom, flags & 0x23, tot, online, maxid) == (DOMID, 0x22, xen.ram_pages, 2, 1)


def test_passthrough_calls_recorded(xen, puppet):
    p = puppet().open_all()
    _, (pirq,) = p.ok("xc_physdev_map_pirq", p.xch, DOMID, 17, {"out": "int", "init": -1})
    assert pirq == 17
    _, (msi,) = p.ok("xc_physdev_map_pirq_msi", p.xch, DOMID, -1, {"out": "int", "init": -1}, 0x08, 1, 0, 0)
    assert msi >= 64 and msi in xen.pirqs
    p.ok("xc_domain_bind_pt_pci_irq", p.xch, DOMID, 17, 0, 4, 0)
    p.ok("xc_domain_update_msi_irq", p.xch, DOMID, 0x31, msi, 0, 0)
    p.ok("xc_domain_memory_mapping", p.xch, DOMID, 0xF0000, 0xD0000, 16, 1)
    p.ok("xc_domain_ioport_mapping", p.xch, DOMID, 0xC000, 0xE000, 32, 1)
    assert sorted(l.split()[0] for l in xen.leaks() if "handle" not in l) == ["I/O", "MSI", "memory", "pass-through",
                                                                             "pirq", "pirq"]
    assert p.fails("xc_domain_unbind_msi_irq", p.xch, DOMID, 0x31, msi + 1, 0) == E.EINVAL
    p.ok("xc_domain_unbind_msi_irq", p.xch, DOMID, 0x31, msi, 0)
    p.ok("xc_domain_unbind_pt_irq", p.xch, DOMID, 17, 0, 0, 4, 0, 0)
    p.ok("xc_physdev_unmap_pirq", p.xch, DOMID, msi)
    p.ok("xc_physdev_unmap_pirq", p.xch, DOMID, 17)
    assert p.fails("xc_physdev_unmap_pirq", p.xch, DOMID, 17) == E.EINVAL
    p.ok("xc_domain_memory_mapping", p.xch, DOMID, 0xF0000, 0xD0000, 16, 0)
    p.ok("xc_domain_ioport_mapping", p.xch, DOMID, 0xC000, 0xE000, 32, 0)
    assert [l for l in xen.leaks() if "handle" not in l] == []


def test_leaks_injection_and_exit(xen, puppet):
    p = puppet().open_all()
    sid = p.create()
    fres, _ = p.map_resource(sid)
    xen.inject("xendevicemodel_set_isa_irq_level", E.EIO, count=2, irq=5)
    assert p.fails("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 5, 1) == E.EIO
    p.ok("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 6, 1)
    assert p.fails("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 5, 1) == E.EIO
    p.ok("xendevicemodel_set_isa_irq_level", p.dm, DOMID, 5, 1)
    assert [c.injected for c in xen.calls("xendevicemodel_set_isa_irq_level")] == [True, False, True, False]
    assert xen.isa_irq[5] == 1
    p.close()
    xen.wait_exit(p.pid)
    leaks = xen.leaks()
    assert "ioreq server 0 (disabled) was never destroyed" in leaks
    assert any("resource mapping" in l and "released only by exit" in l for l in leaks)
    assert sum("closed only by process exit" in l for l in leaks) == 4
    assert xen.leaks(implicit_ok=True) == ["ioreq server 0 (disabled) was never destroyed"]


def test_xen_side_state_machine(xen, puppet):
    """The harness's half of §1.3 against a device model done by hand."""
    p = puppet().open_all()
    sid = p.create()
    _, addr = p.map_resource(sid)
    s = xen.server(sid)
    seen = []
    xen.hook("xendevicemodel_set_ioreq_server_state", lambda c: seen.append(("before", xen.vp_eports(s))), "before")
    xen.hook("xendevicemodel_set_ioreq_server_state", lambda c: seen.append(("after", xen.vp_eports(s))))
    with pytest.raises(X.XenDoubleError, match="disabled"):
        xen.start_ioreq(0)
    local = p.ok("xenevtchn_bind_interdomain", p.xce, DOMID, s.vcpu_ports[0].port)
    assert p.ok("xenevtchn_pending", p.xce) == local
    p.ok("xenevtchn_unmask", p.xce, local)
    # Hostile: an event on a disabled server's port still arrives.
    xen.signal_vcpu(0, s)
    assert p.ok("xenevtchn_pending", p.xce) == local
    p.ok("xenevtchn_unmask", p.xce, local)
    p.ok("xendevicemodel_set_ioreq_server_state", p.dm, DOMID, sid, 1)
    assert seen == [("before", [0, 0]), ("after", [3, 4])]
    slot0 = addr + X.PAGE

    def dm_state(state, data=None):
        """What a device model writes: data, then the state byte; then notify."""
        if data is not None:
            p.poke(slot0 + 8, struct.pack("<Q", data))
        flags = p.peek(slot0 + 30, 1)[0]
        p.poke(slot0 + 30, bytes([(flags & 0xF0) | state]))
        p.ok("xenevtchn_notify", p.xce, local)

    xen.write_slot(0, state=X.STATE_IOREQ_READY)
    with pytest.raises(X.XenDoubleError, match="bad IO state"):
        xen.start_ioreq(0)
    xen.write_slot(0, state=X.STATE_IOREQ_NONE, vp_eport=99)
    with pytest.raises(X.XenDoubleError, match="bad event channel"):
        xen.start_ioreq(0)
    xen.write_slot(0, vp_eport=s.vcpu_ports[0].port)

    pending = xen.start_ioreq(0, IOREQ_TYPE_PIO, 0x60, 1, 1, IOREQ_READ)
    assert p.ok("xenevtchn_pending", p.xce) == local
    raw = p.peek(slot0, 32)
    assert X.SLOT.unpack(raw) == (0x60, 0, 1, 1, s.vcpu_ports[0].port, 0, (1 << 5) | X.STATE_IOREQ_READY, 0)
    with pytest.raises(X.XenDoubleError, match="already waits"):
        xen.start_ioreq(0)
    dm_state(X.STATE_IOREQ_INPROCESS)  # Xen keeps waiting
    xen.wait_until(lambda: pending.prev == X.STATE_IOREQ_INPROCESS, what="Xen to see INPROCESS")
    assert not pending.done
    dm_state(X.STATE_IORESP_READY, 0x1234AB)
    assert pending.wait()["data"] == 0x1234AB
    assert xen.read_slot(0)["state"] == X.STATE_IOREQ_NONE
    p.ok("xenevtchn_unmask", p.xce, local)

    pending = xen.start_ioreq(0, IOREQ_TYPE_PIO, 0x60, 1, 1, IOREQ_READ)
    dm_state(X.STATE_IOREQ_INPROCESS)
    xen.wait_until(lambda: pending.prev == X.STATE_IOREQ_INPROCESS, what="Xen to see INPROCESS")
    dm_state(X.STATE_IOREQ_READY)  # backwards: Xen crashes the domain
    with pytest.raises(X.DomainCrash, match="went back"):
        pending.wait()
    xen.reset_slot(0)
    pending = xen.start_ioreq(0, IOREQ_TYPE_PIO, 0x60, 1, 1, IOREQ_WRITE, 5)
    dm_state(X.STATE_IOREQ_NONE)  # only Xen writes NONE: completes with ~0
    assert pending.wait()["data"] == X.M64
    assert [v.split(":")[1].strip() for v in xen.violations] == [
        "ioreq state went back from 2 to 1", "the device model set the slot to NONE (only Xen does)"]
    xen.violations.clear()
    # No notify, no completion.
    pending = xen.start_ioreq(0, IOREQ_TYPE_PIO, 0x60, 1, 1, IOREQ_READ)
    with pytest.raises(TimeoutError, match="no answer"):
        pending.wait(0.2)


def test_benchmark_hot_path_hands_back_cleanly(xen, selftest):
    st = selftest()
    s = xen.wait_attached()
    xen.guest_out(SCRATCH, 4, 0x600D)
    lat = xen.bench_sync(300, 1, IOREQ_TYPE_PIO, SCRATCH, 4)
    assert len(lat) == 300 and all(0 < t < 10 ** 10 for t in lat)
    assert xen.read_slot(1)["state"] == X.STATE_IOREQ_NONE
    pushed = s.buf_pushed
    assert xen.bench_buffered(3000) > 0
    assert s.buf_pushed == pushed + 3000
    # The harness thread has the connection back, masks consistent.
    assert xen.guest_in(0x514, 4) == 3000
    assert xen.send_ioreq(1, IOREQ_TYPE_PIO, SCRATCH, 2, 1, IOREQ_READ) == 0x600D
    assert xen.send_buffered(IOREQ_TYPE_COPY, 0xA0000, 2, 0x77) == "queued"
    assert xen.guest_in(0x51C, 4) == 0x77
    st.quit()
    xen.assert_clean()


def test_xen_dm_runs_under_the_double(xen, start_daemon):
    """The production binary loads with the double preloaded (its Xen
    symbols resolve to the double's) and works as before while it opens no
    Xen handle."""
    d = start_daemon(["-m", "16"], qtest=True, env=xen.env())
    q = d.qtest()
    q.outl(0xCF8, 0x80000000)
    assert q.inl(0xCFC) != 0xFFFFFFFF
    with open("/proc/%d/maps" % d.proc.pid) as f:
        assert X.preload_library() in f.read()
    assert xen.calls() == []
