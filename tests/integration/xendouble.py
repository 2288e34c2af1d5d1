"""The hypervisor side of the Xen test double (tests/xendouble/README.md).

A device model started with XenDouble.env() in its environment loads
tests-bin/libxendouble.so in place of the Xen libraries; every call it makes
arrives here, is checked the way Xen and the Linux drivers check it,
answered, and recorded. The harness keeps guest RAM and the ioreq-server
pages in one shared file, and plays Xen's part of the ioreq protocol
(docs/xen-dm-interfaces.md §1): it writes synchronous requests into the
vCPU slots and waits for the answers, fills the buffered ring, signals event
channels, and broadcasts INVALIDATE / TIMEOFFSET.

    with XenDouble(vcpus=2) as xen:
        dm = subprocess.Popen([...], env={**os.environ, **xen.env()})
        server = xen.wait_attached()
        assert xen.guest_in(0xcfc, 4) == 0x12378086
        ...
        xen.assert_clean()          # every create destroyed, map unmapped...

Only the Python standard library is used (ctypes loads the small atomics
helper tests-bin/libxendouble_harness.so).
"""

import ctypes
import errno as E
import json
import mmap
import os
import random
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAGE = 4096
M32 = (1 << 32) - 1
M64 = (1 << 64) - 1

# Public Xen constants ([H] xen/hvm/ioreq.h, dm_op.h, hvm_op.h, memory.h, sched.h, params.h).
IOREQ_TYPE_PIO = 0
IOREQ_TYPE_COPY = 1
IOREQ_TYPE_PCI_CONFIG = 2
IOREQ_TYPE_TIMEOFFSET = 7
IOREQ_TYPE_INVALIDATE = 8
STATE_IOREQ_NONE = 0
STATE_IOREQ_READY = 1
STATE_IOREQ_INPROCESS = 2
STATE_IORESP_READY = 3
IOREQ_READ = 1
IOREQ_WRITE = 0
IOREQ_BUFFER_SLOT_NUM = 511
HVM_IOREQSRV_BUFIOREQ_OFF = 0
HVM_IOREQSRV_BUFIOREQ_LEGACY = 1
HVM_IOREQSRV_BUFIOREQ_ATOMIC = 2
XEN_DMOP_IO_RANGE_PORT = 0
XEN_DMOP_IO_RANGE_MEMORY = 1
XEN_DMOP_IO_RANGE_PCI = 2
XENMEM_resource_ioreq_server = 0
HVMMEM_ram_rw, HVMMEM_ram_ro, HVMMEM_mmio_dm, HVMMEM_unused, HVMMEM_ioreq_server = range(5)
SHUTDOWN_poweroff, SHUTDOWN_reboot, SHUTDOWN_suspend, SHUTDOWN_crash, SHUTDOWN_watchdog, \
    SHUTDOWN_soft_reset = range(6)
MAX_NR_IOREQ_SERVERS = 8
MAX_NR_IO_RANGES = 256
HVM_NR_PARAMS = 39
HVM_PARAM_BUFIOREQ_EVTCHN = 26
PROT_READ, PROT_WRITE = 1, 2
# Pin-cache-attribute types XEN_DOMCTL_MEM_CACHEATTR_* and the delete value.
CACHEATTR_TYPES = {0, 1, 4, 5, 6, 7, 0xFFFFFFFF}

# The ioreq-server gfn pool and special pages ([X] xg_dom_x86.c).
IOREQ_SERVER_PFN = 0xFEFF0
NR_IOREQ_SERVER_PAGES = 8
LEGACY_BUFIOREQ_PFN = 0xFEFFB
LEGACY_IOREQ_PFN = 0xFEFFD
SPECIAL_PAGES_END = 0xFF000

# Plausible values of a freshly built 4.17 HVM guest.
DEFAULT_HVM_PARAMS = {
    0: 0,                      # CALLBACK_IRQ
    1: 0xFEFFC,                # STORE_PFN
    2: 1,                      # STORE_EVTCHN
    4: 1,                      # PAE_ENABLED
    5: LEGACY_IOREQ_PFN,       # IOREQ_PFN
    6: LEGACY_BUFIOREQ_PFN,    # BUFIOREQ_PFN
    10: 1,                     # TIMER_MODE: no_delay_for_missed_ticks
    11: 1,                     # HPET_ENABLED
    14: 0,                     # ACPI_S_STATE
    17: 0xFEFFF,               # CONSOLE_PFN
    18: 2,                     # CONSOLE_EVTCHN
    19: 1,                     # ACPI_IOPORTS_LOCATION
    32: IOREQ_SERVER_PFN,      # IOREQ_SERVER_PFN
    33: NR_IOREQ_SERVER_PAGES,  # NR_IOREQ_SERVER_PAGES
}

# Page pairs (buffered page, synchronous page) for ioreq servers in the
# memory file. More than MAX_NR_IOREQ_SERVERS so a destroyed server's pages
# that the device model still maps are never handed to a new server.
PAGE_PAIRS = 32
# Guest-side ports come from the low numbers as in a fresh domain; the
# device model's local ports from elsewhere, so a DM that confuses the two
# gets caught.
FIRST_GUEST_PORT = 3
FIRST_LOCAL_PORT = 1000

SLOT = struct.Struct("<QQIIIHBB")  # ioreq_t
SLOT_FIELDS = {"addr": (0, "<Q"), "data": (8, "<Q"), "count": (16, "<I"), "size": (20, "<I"),
               "vp_eport": (24, "<I"), "pad": (28, "<H"), "type": (31, "<B")}
SLOT_FLAGS = {"state": (0, 0xF), "data_is_ptr": (4, 1), "dir": (5, 1), "df": (6, 1), "flags_pad": (7, 1)}
BUF_SLOT = struct.Struct("<II")     # buf_ioreq_t as two little-endian words
ONEWAY_OPS = {"xenevtchn_notify", "xenevtchn_unmask", "xenforeignmemory_abort"}
DEFAULT_TIMEOUT = 10.0


def libdir():
    """Where the double's libraries are: $XEN_DOUBLE_LIBDIR, else tests-bin
    next to the daemon under test ($XEN_DM, for out-of-tree builds), else
    tests-bin in the source tree."""
    if os.environ.get("XEN_DOUBLE_LIBDIR"):
        return os.environ["XEN_DOUBLE_LIBDIR"]
    if os.environ.get("XEN_DM"):
        return os.path.join(os.path.dirname(os.path.abspath(os.environ["XEN_DM"])), "tests-bin")
    return os.path.join(REPO_ROOT, "tests-bin")


def preload_library():
    return os.path.join(libdir(), "libxendouble.so")


def selftest_binary():
    return os.path.join(libdir(), "xendouble_selftest")


def pci_sbdf(segment, bus, device, function):
    """XEN_DMOP_PCI_SBDF."""
    return (segment << 16) | (bus << 8) | (device << 3) | function


def size_mask(size):
    return M64 if size >= 8 else (1 << (8 * size)) - 1


class XenError(Exception):
    """A hypercall result: raised by handlers, becomes errno in the reply."""

    def __init__(self, err, why=""):
        super().__init__("%s%s" % (E.errorcode.get(err, err), ": " + why if why else ""))
        self.errno = err


class XenDoubleError(Exception):
    """Something the harness (as Xen) refuses to do or cannot complete."""


class DomainCrash(XenDoubleError):
    """What Xen would answer with domain_crash(): the device model broke the
    ioreq state machine."""


class Call:
    """One recorded library call: op (the library function's name), args
    (what the double sent), ret / errno (the answer), out (values returned),
    pid, seq (harness order), injected (errno came from inject())."""

    __slots__ = ("seq", "op", "args", "ret", "errno", "out", "pid", "injected", "time")

    def __init__(self, seq, op, args, pid):
        self.seq = seq
        self.op = op
        self.args = args
        self.pid = pid
        self.ret = None
        self.errno = 0
        self.out = {}
        self.injected = False
        self.time = time.monotonic()

    def __getitem__(self, key):
        return self.args[key]

    def get(self, key, default=None):
        return self.args.get(key, default)

    @property
    def ok(self):
        return self.errno == 0

    def __repr__(self):
        args = ", ".join("%s=%s" % (k, hex(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 4096 else v)
                         for k, v in self.args.items() if k != "h")
        res = "-> %s" % self.ret if not self.errno else "-> %s%s" % (
            E.errorcode.get(self.errno, self.errno), " (injected)" if self.injected else "")
        return "#%d %s(%s) %s" % (self.seq, self.op, args, res)


class RangeSet:
    """Xen's rangeset as the ioreq server uses it: inclusive ranges, adjacent
    ones merged, at most `limit` separate ranges."""

    def __init__(self, limit=MAX_NR_IO_RANGES):
        self.ranges = []  # sorted, disjoint, non-adjacent [start, end]
        self.limit = limit

    def overlaps(self, start, end):
        return any(s <= end and start <= e for s, e in self.ranges)

    def contains(self, start, end):
        return any(s <= start and end <= e for s, e in self.ranges)

    def add(self, start, end):
        merged = [start, end]
        keep = []
        for s, e in self.ranges:
            if e + 1 >= merged[0] and merged[1] + 1 >= s:
                merged = [min(s, merged[0]), max(e, merged[1])]
            else:
                keep.append([s, e])
        if len(keep) + 1 > self.limit:
            raise XenError(E.ENOSPC, "too many ranges")
        keep.append(merged)
        self.ranges = sorted(keep)

    def remove(self, start, end):
        out = []
        for s, e in self.ranges:
            if e < start or s > end:
                out.append([s, e])
                continue
            if s < start:
                out.append([s, start - 1])
            if e > end:
                out.append([end + 1, e])
        if len(out) > self.limit:
            raise XenError(E.ENOSPC, "too many ranges")
        self.ranges = out

    def __iter__(self):
        return iter([tuple(r) for r in self.ranges])

    def __len__(self):
        return len(self.ranges)

    def __repr__(self):
        return "[%s]" % ", ".join("%#x-%#x" % (s, e) for s, e in self.ranges)


class Handle:
    """A library handle the device model opened."""

    def __init__(self, hid, kind, conn):
        self.id = hid
        self.kind = kind          # xendevicemodel / xenforeignmemory / xenevtchn / xc
        self.conn = conn
        self.pid = conn.pid
        self.restricted = None    # domid the handle is restricted to
        self.closed = None        # None, "explicit", "exit"
        self.dead = False         # xc handle after xentoolcore_restrict_all
        self.stream = None        # xenevtchn: the event connection
        self.bindings = {}        # xenevtchn: local port -> Binding

    def __repr__(self):
        return "%s handle %d (pid %s)" % (self.kind, self.id, self.pid)


class GuestPort:
    """An event channel end in the guest domain that Xen allocated for an
    ioreq server (per vCPU, or the buffered one)."""

    def __init__(self, port, server, vcpu):
        self.port = port
        self.server = server
        self.vcpu = vcpu          # None for the buffered port
        self.binding = None
        self.closed = False
        self.notifies = 0         # notifications from the device model
        self.pending = None       # PendingIoreq the vCPU waits for
        self.signals = 0          # events Xen sent on it

    def __repr__(self):
        what = "buffered" if self.vcpu is None else "vCPU %d" % self.vcpu
        return "guest port %d (server %d %s)" % (self.port, self.server.id, what)


class Binding:
    """A local port of the device model bound to a guest port, with the
    Linux evtchn driver's mask state."""

    def __init__(self, local, handle, remote):
        self.local = local
        self.handle = handle
        self.remote = remote
        self.masked = False
        self.pending = False
        self.delivered = 0
        self.released = None      # None, "explicit", "close", "exit"


class Server:
    """An ioreq server."""

    def __init__(self, sid, bufioreq, pair, handle):
        self.id = sid
        self.bufioreq = bufioreq
        self.pair = pair
        self.handle = handle
        self.enabled = False
        self.destroyed = False
        self.backing = None       # None, "resource", "gfn": how its pages were created
        self.ioreq_gfn = None
        self.bufioreq_gfn = None
        self.vcpu_ports = []
        self.buf_port = None
        self.ranges = {XEN_DMOP_IO_RANGE_PORT: RangeSet(), XEN_DMOP_IO_RANGE_MEMORY: RangeSet(),
                       XEN_DMOP_IO_RANGE_PCI: RangeSet()}
        self.mem_type_flags = 0
        self.buf_pushed = 0       # buffered slots written so far
        self.buf_lock = threading.Lock()

    @property
    def port_ranges(self):
        return list(self.ranges[XEN_DMOP_IO_RANGE_PORT])

    @property
    def mmio_ranges(self):
        return list(self.ranges[XEN_DMOP_IO_RANGE_MEMORY])

    @property
    def pci_devices(self):
        """Registered SBDFs (expanded)."""
        return [s for a, b in self.ranges[XEN_DMOP_IO_RANGE_PCI] for s in range(a, b + 1)]

    def __repr__(self):
        return "ioreq server %d (%s%s)" % (self.id, "enabled" if self.enabled else "disabled",
                                           ", destroyed" if self.destroyed else "")


class Mapping:
    """A foreign mapping or a resource mapping the device model holds."""

    def __init__(self, kind, handle, key, detail):
        self.kind = kind          # "foreign" or "resource"
        self.handle = handle
        self.key = key            # address (foreign) or resource id
        self.detail = detail
        self.released = None      # None, "explicit", "exit", "abort"


class PendingIoreq:
    """A synchronous request written into a vCPU slot. Xen's wait_for_io()
    runs in the harness thread each time the device model notifies the
    vCPU's port (as the vCPU wakes up then); wait() returns its outcome."""

    def __init__(self, xen, server, vcpu, req, buf_pushed):
        self.xen = xen
        self.server = server
        self.vcpu = vcpu
        self.port = server.vcpu_ports[vcpu]
        self.req = req
        self.buf_pushed = buf_pushed
        self.prev = STATE_IOREQ_NONE
        self.slot = None
        self.error = None
        self.done = False

    def __repr__(self):
        return "request %r on vCPU %d" % (self.req, self.vcpu)

    def _notified(self):
        """The vCPU woke up (harness thread, lock held)."""
        xen = self.xen
        off = xen._slot_offset(self.server, self.vcpu)
        state = xen._atomics.load8(off + 30) & 0x0F
        if state == STATE_IOREQ_NONE:
            # Xen takes this as the emulator dying and completes with ~0.
            xen._violation("vCPU %d: the device model set the slot to NONE (only Xen does)" % self.vcpu)
            slot = xen.read_slot(self.vcpu, self.server)
            slot["data"] = M64
            self._finish(slot)
        elif state < self.prev:
            self._fail(DomainCrash("vCPU %d: ioreq state went back from %d to %d" % (self.vcpu, self.prev, state)))
        elif state == STATE_IORESP_READY:
            slot = xen.read_slot(self.vcpu, self.server)
            flags = xen._atomics.load8(off + 30)
            xen._atomics.store8(off + 30, (flags & 0xF0) | STATE_IOREQ_NONE)
            self._finish(slot)
        elif state in (STATE_IOREQ_READY, STATE_IOREQ_INPROCESS):
            self.prev = state  # Xen keeps waiting
        else:
            self._fail(DomainCrash("vCPU %d: impossible ioreq state %d from the device model" % (self.vcpu, state)))

    def _fail(self, error):
        self.xen._violation(str(error))
        self.error = error
        self._complete()

    def _finish(self, slot):
        xen = self.xen
        if slot["vp_eport"] != self.port.port:
            xen._violation("vCPU %d: the device model changed vp_eport from %d to %d" % (
                self.vcpu, self.port.port, slot["vp_eport"]))
        if self.server.bufioreq:
            rp, wp = xen.buffered_pointers(self.server)
            unread = (wp - rp) & M32
            pushed_since = self.server.buf_pushed - self.buf_pushed
            if unread > pushed_since:
                xen._violation("vCPU %d: %r answered while %d buffered slots written before it were unread" % (
                    self.vcpu, self.req, unread - pushed_since))
        self.slot = slot
        xen.ioreq_log.append((self.req, slot))
        self._complete()

    def _complete(self):
        self.done = True
        if self.port.pending is self:
            self.port.pending = None
        self.xen.cond.notify_all()

    def wait(self, timeout=None):
        """Returns the slot as Xen read it at completion (a dict; "data" is
        what the vCPU gets). Raises DomainCrash where Xen would crash the
        guest, TimeoutError when no answer comes."""
        xen = self.xen
        timeout = xen.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with xen.cond:
            while not self.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if self.port.pending is self:
                        self.port.pending = None
                    raise TimeoutError("no answer to %r after %.1f s; slot now %r, %s" % (
                        self, timeout, xen.read_slot(self.vcpu, self.server), xen._port_state(self.port)))
                xen.cond.wait(min(remaining, 0.1))
        if self.error:
            raise self.error
        return self.slot


class _Conn:
    """A connection from a device-model process: its control channel (JSON
    requests) or the event stream of one xenevtchn handle."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.kind = None          # "control" or "event"
        self.pid = None
        self.handle = None
        self.open = True
        self.wlock = threading.Lock()
        sock.settimeout(5.0)

    def send(self, data):
        with self.wlock:
            if self.open:
                self.sock.sendall(data)

    def reply(self, obj):
        self.send(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


class _BenchState(ctypes.Structure):
    """struct xdh_bench (harness_bench.c)."""
    _fields_ = [("ctl_fd", ctypes.c_int), ("evt_fd", ctypes.c_int), ("local_port", ctypes.c_uint32),
                ("masked", ctypes.c_int), ("pending", ctypes.c_int),
                ("leftover", ctypes.c_void_p), ("leftover_len", ctypes.c_size_t), ("leftover_cap", ctypes.c_size_t),
                ("deferred", ctypes.c_void_p), ("deferred_len", ctypes.c_size_t), ("deferred_cap", ctypes.c_size_t),
                ("notifies", ctypes.c_uint64)]


class _Atomics:
    """Ordered and atomic accesses to the shared file (see harness_atomic.c)."""

    def __init__(self, mm):
        path = os.path.join(libdir(), "libxendouble_harness.so")
        if not os.path.exists(path):
            raise XenDoubleError("%s is missing: build it (make check does)" % path)
        lib = ctypes.CDLL(path)
        self._anchor = ctypes.c_char.from_buffer(mm)
        self.base = ctypes.addressof(self._anchor)
        vp = ctypes.c_void_p
        for name, res, args in (("xdh_load8", ctypes.c_uint8, [vp]),
                                ("xdh_store8", None, [vp, ctypes.c_uint8]),
                                ("xdh_load32", ctypes.c_uint32, [vp]),
                                ("xdh_store32", None, [vp, ctypes.c_uint32]),
                                ("xdh_load64", ctypes.c_uint64, [vp]),
                                ("xdh_cmpxchg64", ctypes.c_uint64, [vp, ctypes.c_uint64, ctypes.c_uint64]),
                                ("xdh_fence", None, []),
                                ("xdh_bench_sync", ctypes.c_int, [vp, vp, ctypes.c_uint64, vp, vp]),
                                ("xdh_bench_buffered", ctypes.c_int,
                                 [vp, vp, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int]),
                                ("xdh_bench_feed", ctypes.c_int, [vp, vp, ctypes.c_size_t]),
                                ("xdh_bench_free", None, [vp])):
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        self.lib = lib

    def release(self):
        self._anchor = None

    def load8(self, off):
        return self.lib.xdh_load8(self.base + off)

    def store8(self, off, v):
        self.lib.xdh_store8(self.base + off, v)

    def load32(self, off):
        return self.lib.xdh_load32(self.base + off)

    def store32(self, off, v):
        self.lib.xdh_store32(self.base + off, v & M32)

    def load64(self, off):
        return self.lib.xdh_load64(self.base + off)

    def cmpxchg64(self, off, expected, desired):
        return self.lib.xdh_cmpxchg64(self.base + off, expected, desired)

    def fence(self):
        self.lib.xdh_fence()


class XenDouble:
    """The hypervisor for one HVM guest domain, as seen through the Xen
    libraries.

    domid         the guest's domain id
    vcpus         its vCPUs (an ioreq server gets one channel each)
    ram_mib       guest RAM, gfn 0 up
    dm_domid      the device model's domain (remote end of the channels)
    vcpus_reported  what xc_domain_getinfo / nr_vcpus say, if not vcpus
                    (a hostile mismatch)
    spurious_on_bind  deliver the event Xen raises on every fresh
                      interdomain binding (as Xen does)
    """

    def __init__(self, domid=1, vcpus=1, ram_mib=16, dm_domid=0, vcpus_reported=None,
                 spurious_on_bind=True, timeout=DEFAULT_TIMEOUT, keep_dir=False):
        self.domid = domid
        self.vcpus = vcpus
        self.vcpus_reported = vcpus if vcpus_reported is None else vcpus_reported
        self.ram_size = ram_mib << 20
        self.ram_pages = self.ram_size // PAGE
        self.dm_domid = dm_domid
        self.spurious_on_bind = spurious_on_bind
        self.timeout = timeout
        self.keep_dir = keep_dir
        self.dir = None
        self.mm = None
        self.cond = threading.Condition(threading.RLock())
        self._thread = None
        self._stopping = False

        # What the device model did, and what went wrong.
        self.records = []
        self.violations = []      # protocol rules the device model broke
        self.internal_errors = []  # harness bugs (exceptions in handlers)
        self.ioreq_log = []       # (request, answered slot) for every synchronous request
        self.exited_pids = []

        # Domain state the device model changes.
        self.isa_irq = [0] * 16
        self.isa_irq_events = []  # (irq, level) in order
        self.pci_intx = {}        # (device, intx) -> level
        self.link_route = [0] * 4
        self.msis = []            # (addr, data)
        self.events_injected = []
        self.shutdown_reason = None
        self.hvm_params = dict(DEFAULT_HVM_PARAMS)
        self.log_dirty = False
        self.dirty_pfns = set()
        self.mem_types = []       # (type, first_pfn, nr)
        self.cacheattrs = []      # (start, end, type)
        self.relocations = []     # (size, src, dst)
        self.vram = None          # (first_pfn, nr) tracked
        self.vram_dirty = set()
        self.pirqs = {}           # pirq -> description
        self.pt_irqs = {}         # (machine_irq, bus, device, intx) -> True
        self.msi_binds = {}       # pirq -> (gvec, gflags, gtable)
        self.mem_mappings = set()     # (first_gfn, first_mfn, nr)
        self.ioport_mappings = set()  # (first_gport, first_mport, nr)
        self.cf8 = 0              # Xen's latch of the guest's 0xCF8 writes

        # Hypervisor objects.
        self.handles = {}
        self.servers = {}         # live servers by id
        self.all_servers = []
        self.guest_ports = {}
        self.local_ports = {}     # live local port -> Binding
        self.bindings = []        # every Binding ever made
        self.foreign = {}         # (pid, addr) -> Mapping
        self.resources = {}       # resource id -> Mapping
        self.mappings = []        # every Mapping ever made
        self.injections = []
        self.gfn_errors = {}      # gfn -> errno for foreign maps
        self.hole_errno = E.EINVAL  # foreign map of a gfn without RAM
        self._hooks = {}
        self._next_handle = 1
        self._next_res = 1
        self._next_pirq = 64
        self._seq = 0

    # ---- life cycle -------------------------------------------------------

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="xdbl", dir="/tmp")
        size = self.ram_size + PAGE_PAIRS * 2 * PAGE
        path = os.path.join(self.dir, "mem")
        with open(path, "wb") as f:
            f.truncate(size)
        self._memfd = os.open(path, os.O_RDWR)
        self.mm = mmap.mmap(self._memfd, size)
        self._atomics = _Atomics(self.mm)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.path.join(self.dir, "sock"))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._conns = []
        self._jobs = []
        self._thread = threading.Thread(target=self._loop, name="xendouble", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self._thread = None
        for c in self._conns:
            c.open = False
            c.sock.close()
        self.listener.close()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._atomics.release()
        self.mm.close()
        os.close(self._memfd)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def env(self):
        """Environment variables that make a process use the double."""
        preload = [preload_library()]
        asan = _asan_runtime(preload[0])
        if asan:
            # A sanitized build: the ASan runtime must come first.
            preload.insert(0, asan)
        return {"XEN_DOUBLE_DIR": self.dir, "LD_PRELOAD": " ".join(preload)}

    # ---- the record ---------------------------------------------------------

    def calls(self, op=None, since=0, **match):
        """Recorded calls (optionally of one op, after seq `since`, whose
        args match)."""
        with self.cond:
            return [c for c in self.records if c.seq > since and (op is None or c.op == op)
                    and all(c.args.get(k) == v for k, v in match.items())]

    def ops(self, since=0, exclude=("hello", "xenevtchn_attach", "xenevtchn_notify", "xenevtchn_unmask")):
        """The sequence of op names (without the event-channel chatter)."""
        return [c.op for c in self.calls(since=since) if c.op not in exclude]

    def mark(self):
        """The current record position, for calls(since=...)."""
        with self.cond:
            return self._seq

    def wait_for(self, op, timeout=None, since=0, pred=None, **match):
        """Waits for a call of op (args matching, pred(call) true); returns it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self.cond:
            while True:
                for c in self.calls(op, since=since, **match):
                    if pred is None or pred(c):
                        return c
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no %s%s call; recorded: %s" % (op, match or "", self.calls()[-20:]))
                self.cond.wait(min(remaining, 0.1))

    def wait_until(self, fn, timeout=None, what="condition"):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self.cond:
            while not fn():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out waiting for %s" % what)
                self.cond.wait(min(remaining, 0.05))

    def wait_attached(self, timeout=None, server=None):
        """Waits until an ioreq server is enabled and every one of its
        channels is bound; returns it."""
        def ready():
            for s in ([server] if server else self.servers.values()):
                if s.enabled and s.backing and all(p.binding and not p.binding.released for p in
                                                   s.vcpu_ports + ([s.buf_port] if s.buf_port else [])):
                    return s
            return None
        self.wait_until(lambda: ready() is not None, timeout, "an enabled ioreq server with all channels bound")
        return ready()

    def wait_exit(self, pid, timeout=None):
        self.wait_until(lambda: pid in self.exited_pids, timeout, "process %d to disconnect" % pid)

    # ---- failure injection and hooks ------------------------------------------

    def inject(self, op, err, count=1, pred=None, **match):
        """The next `count` calls of op (None = every one) whose args match
        fail with errno err, before Xen would look at them."""
        with self.cond:
            self.injections.append({"op": op, "err": err, "count": count, "pred": pred, "match": match})

    def fail_gfn(self, gfn, err):
        """Foreign mappings of gfn give err (per page)."""
        with self.cond:
            self.gfn_errors[gfn] = err

    def hook(self, op, fn, when="after"):
        """Calls fn(call) in the harness thread before or after op is handled
        (for looking at the state at an exact point; fn must not block)."""
        with self.cond:
            self._hooks.setdefault((op, when), []).append(fn)

    # ---- checks ----------------------------------------------------------------

    def leaks(self, implicit_ok=False):
        """Everything the device model created and did not release: servers,
        mappings, bindings, handles, pass-through state. With implicit_ok,
        what closing a handle or exiting released is fine."""
        out = []
        released_ok = ("explicit", "abort") + (("close", "exit") if implicit_ok else ())
        with self.cond:
            out += ["%r was never destroyed" % s for s in self.servers.values()]
            for m in self.mappings:
                if m.released not in released_ok:
                    out.append("%s mapping %s by %r %s" % (m.kind, m.detail, m.handle,
                                                          "never unmapped" if not m.released else "released only by " + m.released))
            for b in self.bindings:
                if b.released not in released_ok:
                    out.append("local port %d (%r) of %r %s" % (b.local, b.remote, b.handle,
                                                              "never unbound" if not b.released else "released only by " + b.released))
            for h in self.handles.values():
                if h.closed is None or (h.closed == "exit" and not implicit_ok):
                    out.append("%r %s" % (h, "never closed" if not h.closed else "closed only by process exit"))
            out += ["pirq %d (%s) never unmapped" % (p, d) for p, d in self.pirqs.items()]
            out += ["pass-through IRQ %s never unbound" % (k,) for k in self.pt_irqs]
            out += ["MSI binding of pirq %d never unbound" % p for p in self.msi_binds]
            out += ["memory mapping %s never removed" % (m,) for m in self.mem_mappings]
            out += ["I/O port mapping %s never removed" % (m,) for m in self.ioport_mappings]
        return out

    def problems(self, implicit_ok=False):
        with self.cond:
            return list(self.internal_errors) + list(self.violations) + self.leaks(implicit_ok)

    def assert_clean(self, implicit_ok=False):
        problems = self.problems(implicit_ok)
        assert not problems, "Xen double found:\n  " + "\n  ".join(problems)

    # ---- guest memory ------------------------------------------------------------

    def ram_read(self, gpa, length):
        self._check_ram(gpa, length)
        return bytes(self.mm[gpa:gpa + length])

    def ram_write(self, gpa, data):
        self._check_ram(gpa, len(data))
        self.mm[gpa:gpa + len(data)] = bytes(data)
        with self.cond:
            if self.vram:
                first, nr = self.vram
                for pfn in range(gpa // PAGE, (gpa + len(data) - 1) // PAGE + 1):
                    if first <= pfn < first + nr:
                        self.vram_dirty.add(pfn)

    def _check_ram(self, gpa, length):
        if gpa < 0 or length < 0 or gpa + length > self.ram_size:
            raise ValueError("guest RAM is %#x bytes; %#x+%#x is outside" % (self.ram_size, gpa, length))

    # ---- ioreq pages -----------------------------------------------------------------

    def server(self, sid=None):
        """A live server by id; without an id, the only live one."""
        with self.cond:
            if sid is not None:
                if isinstance(sid, Server):
                    return sid
                return self.servers[sid]
            if len(self.servers) != 1:
                raise XenDoubleError("%d live ioreq servers; say which" % len(self.servers))
            return next(iter(self.servers.values()))

    def _buf_offset(self, s):
        return self.ram_size + s.pair * 2 * PAGE

    def _slot_offset(self, s, vcpu):
        return self._buf_offset(s) + PAGE + 32 * vcpu

    def read_slot(self, vcpu, server=None):
        s = self.server(server)
        addr, data, count, size, port, pad, flags, typ = SLOT.unpack_from(self.mm, self._slot_offset(s, vcpu))
        return {"addr": addr, "data": data, "count": count, "size": size, "vp_eport": port, "pad": pad,
                "state": flags & 0xF, "data_is_ptr": (flags >> 4) & 1, "dir": (flags >> 5) & 1,
                "df": (flags >> 6) & 1, "flags_pad": flags >> 7, "type": typ}

    def write_slot(self, vcpu, server=None, **fields):
        """Overwrites the named slot fields (state included) and nothing else:
        no checks, no signal. The hostile primitive."""
        s = self.server(server)
        off = self._slot_offset(s, vcpu)
        flags = {k: fields.pop(k) for k in list(fields) if k in SLOT_FLAGS}
        for name, value in fields.items():
            where, fmt = SLOT_FIELDS[name]
            struct.pack_into(fmt, self.mm, off + where, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
        if flags:
            self._atomics.fence()
            byte = self._atomics.load8(off + 30)
            for name, value in flags.items():
                shift, mask = SLOT_FLAGS[name]
                byte = (byte & ~(mask << shift)) | ((value & mask) << shift)
            self._atomics.store8(off + 30, byte & 0xFF)

    def set_slot_state(self, vcpu, state, server=None, signal=False):
        s = self.server(server)
        off = self._slot_offset(s, vcpu) + 30
        self._atomics.store8(off, (self._atomics.load8(off) & 0xF0) | (state & 0xF))
        if signal:
            self.signal_vcpu(vcpu, s)

    def reset_slot(self, vcpu, server=None):
        """Puts a slot back to NONE (after a hostile test left it otherwise)."""
        self.set_slot_state(vcpu, STATE_IOREQ_NONE, server)

    def buffered_pointers(self, server=None):
        s = self.server(server)
        off = self._buf_offset(s)
        return self._atomics.load32(off), self._atomics.load32(off + 4)

    def set_buffered_pointers(self, read, write, server=None, signal=True):
        s = self.server(server)
        off = self._buf_offset(s)
        self._atomics.store32(off, read)
        self._atomics.store32(off + 4, write)
        if signal:
            self.signal_buffered(s)

    def vp_eports(self, server=None):
        """The vp_eport of every vCPU slot as the page holds it now."""
        s = self.server(server)
        return [self.read_slot(v, s)["vp_eport"] for v in range(self.vcpus)]

    # ---- Xen's side of the ioreq protocol ------------------------------------------

    def start_ioreq(self, vcpu=0, type=IOREQ_TYPE_PIO, addr=0, size=4, count=1, dir=IOREQ_READ, data=0,
                    data_is_ptr=False, df=False, server=None, force=False):
        """Writes a request into vCPU vcpu's slot as Xen's ioreq_send() does
        (fields with state NONE, barrier, READY) and signals the vCPU's port.
        Refuses what Xen would refuse unless force. Returns a PendingIoreq."""
        with self.cond:
            s = self.server(server)
            if not force:
                if not s.enabled:
                    raise XenDoubleError("%r is disabled: Xen sends it nothing" % s)
                if s.backing is None:
                    raise XenDoubleError("%r has no pages yet" % s)
            if not 0 <= vcpu < len(s.vcpu_ports):
                raise XenDoubleError("the domain has no vCPU %d" % vcpu)
            port = s.vcpu_ports[vcpu]
            if not force and port.pending is not None:
                raise XenDoubleError("vCPU %d already waits for %r" % (vcpu, port.pending))
            slot = self.read_slot(vcpu, s)
            if not force and slot["state"] != STATE_IOREQ_NONE:
                raise XenDoubleError("device model set bad IO state %d on vCPU %d" % (slot["state"], vcpu))
            if not force and slot["vp_eport"] != port.port:
                raise XenDoubleError("device model set bad event channel %d on vCPU %d (expected %d)" % (
                    slot["vp_eport"], vcpu, port.port))
            req = {"type": type, "addr": addr & M64, "size": size, "count": count, "dir": dir,
                   "data": data & M64, "data_is_ptr": int(bool(data_is_ptr)), "df": int(bool(df))}
            pending = PendingIoreq(self, s, vcpu, req, s.buf_pushed)
            port.pending = pending
            flags = (int(bool(data_is_ptr)) << 4) | ((dir & 1) << 5) | (int(bool(df)) << 6)
            off = self._slot_offset(s, vcpu)
            SLOT.pack_into(self.mm, off, addr & M64, data & M64, count & M32, size & M32, port.port, 0,
                           flags | STATE_IOREQ_NONE, type & 0xFF)
            self._atomics.fence()
            self._atomics.store8(off + 30, flags | STATE_IOREQ_READY)
            self._signal(port)
            return pending

    def send_ioreq(self, vcpu=0, type=IOREQ_TYPE_PIO, addr=0, size=4, count=1, dir=IOREQ_READ, data=0,
                   data_is_ptr=False, df=False, server=None, timeout=None, full=False):
        """One synchronous request, start to finish (§1.3). Returns the data
        the vCPU gets (all 64 bits of the slot's data field), or with full
        the whole slot as read at completion."""
        slot = self.start_ioreq(vcpu, type, addr, size, count, dir, data, data_is_ptr, df, server).wait(timeout)
        return slot if full else slot["data"]

    def send_ioreq_and_change(self, change, vcpu=0, delay=0.0, server=None, timeout=None, **req):
        """Hostile: writes a request, marks it READY and signals, then
        rewrites the fields in `change` (after delay seconds) while the
        device model may be reading them. Returns the completed slot."""
        pending = self.start_ioreq(vcpu=vcpu, server=server, **req)
        if delay:
            time.sleep(delay)
        self.write_slot(vcpu, pending.server, **change)
        return pending.wait(timeout)

    def send_buffered(self, type=IOREQ_TYPE_COPY, addr=0, size=4, data=0, dir=IOREQ_WRITE, count=1,
                      data_is_ptr=False, server=None, notify=True):
        """Queues a buffered request as Xen's ioreq_send_buffered() does.
        Returns "queued", "full" (Xen then sends it synchronously) or
        "dropped" (not encodable: Xen reports it handled)."""
        s = self.server(server)
        if not s.bufioreq:
            raise XenDoubleError("%r has no buffered ring" % s)
        if s.backing is None:
            raise XenDoubleError("%r has no pages yet" % s)
        if addr > 0xFFFFF or data_is_ptr or count != 1:
            return "dropped"
        codes = {1: 0, 2: 1, 4: 2, 8: 3}
        if size not in codes:
            raise XenDoubleError("Xen does not buffer size %d" % size)
        qw = 1 if size == 8 else 0
        off = self._buf_offset(s)
        with s.buf_lock:
            rp = self._atomics.load32(off)
            wp = self._atomics.load32(off + 4)
            if ((wp - rp) & M32) >= IOREQ_BUFFER_SLOT_NUM - qw:
                return "full"
            word = (type & 0xFF) | ((dir & 1) << 9) | (codes[size] << 10) | ((addr & 0xFFFFF) << 12)
            BUF_SLOT.pack_into(self.mm, off + 8 + 8 * (wp % IOREQ_BUFFER_SLOT_NUM), word, data & M32)
            if qw:
                BUF_SLOT.pack_into(self.mm, off + 8 + 8 * ((wp + 1) % IOREQ_BUFFER_SLOT_NUM), word,
                                   (data >> 32) & M32)
            self._atomics.fence()
            self._atomics.store32(off + 4, wp + 1 + qw)
            s.buf_pushed += 1 + qw
            # ATOMIC mode: bring both pointers below 511 with one 64-bit
            # compare-and-exchange, racing with the DM's atomic add.
            tries = qw
            while s.bufioreq == HVM_IOREQSRV_BUFIOREQ_ATOMIC and tries < IOREQ_BUFFER_SLOT_NUM:
                tries += 1
                old = self._atomics.load64(off)
                rp, wp = old & M32, old >> 32
                if rp < IOREQ_BUFFER_SLOT_NUM:
                    break
                n = rp // IOREQ_BUFFER_SLOT_NUM
                new = (rp - n * IOREQ_BUFFER_SLOT_NUM) | (((wp - n * IOREQ_BUFFER_SLOT_NUM) & M32) << 32)
                self._atomics.cmpxchg64(off, old, new)
            if notify:
                self.signal_buffered(s)
        return "queued"

    def fill_ring_garbage(self, slots=None, server=None, seed=0, signal=True):
        """Hostile: random bytes in every buffered slot and the write pointer
        moved `slots` ahead of the read pointer (default: beyond the ring)."""
        s = self.server(server)
        rnd = random.Random(seed)
        off = self._buf_offset(s)
        with s.buf_lock:
            self.mm[off + 8:off + 8 + 8 * IOREQ_BUFFER_SLOT_NUM] = bytes(
                rnd.getrandbits(8) for _ in range(8 * IOREQ_BUFFER_SLOT_NUM))
            rp = self._atomics.load32(off)
            self._atomics.fence()
            self._atomics.store32(off + 4, rp + (rnd.randrange(512, 1 << 31) if slots is None else slots))
        if signal:
            self.signal_buffered(s)

    def wait_buffered_drained(self, server=None, timeout=None):
        s = self.server(server)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            rp, wp = self.buffered_pointers(s)
            if rp == wp:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError("buffered ring of %r not drained (read %d, write %d)" % (s, rp, wp))
            time.sleep(0.002)

    def send_invalidate(self, vcpu=0, timeout=None):
        """Xen's map-cache invalidation: a synchronous INVALIDATE (size 4,
        count 0, data ~0) to every enabled server, waited for."""
        with self.cond:
            targets = [s for s in self.servers.values() if s.enabled]
        pending = [self.start_ioreq(vcpu, IOREQ_TYPE_INVALIDATE, 0, 4, 0, IOREQ_WRITE, M64, server=s)
                   for s in targets]
        return [p.wait(timeout) for p in pending]

    def send_timeoffset(self, delta):
        """Xen's RTC offset broadcast: buffered TIMEOFFSET (size 8) to every
        enabled server that has a ring; nothing when delta is 0."""
        if delta == 0:
            return []
        with self.cond:
            targets = [s for s in self.servers.values() if s.enabled and s.bufioreq]
        return [self.send_buffered(IOREQ_TYPE_TIMEOFFSET, 0, 8, delta & M64, server=s) for s in targets]

    # ---- event channels --------------------------------------------------------------

    def signal_vcpu(self, vcpu, server=None):
        """Sends an event on vCPU vcpu's guest port (whatever the slot holds)."""
        with self.cond:
            s = self.server(server)
            self._signal(s.vcpu_ports[vcpu])

    def signal_buffered(self, server=None):
        with self.cond:
            s = self.server(server)
            if s.buf_port:
                self._signal(s.buf_port)

    def signal_port(self, port):
        """Sends an event on a guest port by number."""
        with self.cond:
            self._signal(self.guest_ports[port])

    def deliver_local_port(self, port, handle=None):
        """Hostile: writes an arbitrary port number on an evtchn handle's fd,
        past the masks (as if the driver returned a port it should not)."""
        with self.cond:
            if handle is None:
                live = [h for h in self.handles.values() if h.kind == "xenevtchn" and not h.closed]
                if len(live) != 1:
                    raise XenDoubleError("%d open xenevtchn handles; say which" % len(live))
                handle = live[0]
            handle.stream.send(struct.pack("<I", port & M32))

    def _signal(self, gp):
        gp.signals += 1
        b = gp.binding
        if b is not None and b.released is None:
            self._deliver(b)

    def _deliver(self, b):
        if b.masked:
            b.pending = True
            return
        b.masked = True
        b.delivered += 1
        if b.handle.stream is not None:
            try:
                b.handle.stream.send(struct.pack("<I", b.local))
            except OSError:
                pass

    def _port_state(self, gp):
        b = gp.binding
        if b is None:
            return "%r not bound" % gp
        return "%r bound to local %d (masked %s, pending %s, delivered %d)" % (
            gp, b.local, b.masked, b.pending, b.delivered)

    # ---- benchmarks: the hot path in C ----------------------------------------

    def _bench(self, gp, run):
        """Runs run(state) with the device model's control connection read by
        the C loop (harness_bench.c) instead of the harness thread. Nothing
        else may signal the device model meanwhile; the notify and unmask
        calls of the benchmark's port are not recorded."""
        with self.cond:
            b = gp.binding
            if b is None or b.released:
                raise XenDoubleError("%r is not bound" % gp)
            conn, stream = b.handle.conn, b.handle.stream
        st = _BenchState(ctl_fd=conn.sock.fileno(), evt_fd=stream.sock.fileno(), local_port=b.local)
        lib = self._atomics.lib

        def pause():
            # The mask state is taken here, after the last line the harness
            # thread read, so an unmask it handled is not lost.
            self._sel.unregister(conn.sock)
            with self.cond:
                st.masked, st.pending = int(b.masked), int(b.pending)
            data = bytes(conn.buf)
            conn.buf.clear()
            if data:
                lib.xdh_bench_feed(ctypes.byref(st), data, len(data))
        self._io_run(pause)
        try:
            return run(st)
        finally:
            deferred = ctypes.string_at(st.deferred, st.deferred_len) if st.deferred_len else b""
            leftover = ctypes.string_at(st.leftover, st.leftover_len) if st.leftover_len else b""
            lib.xdh_bench_free(ctypes.byref(st))
            with self.cond:
                b.masked, b.pending = bool(st.masked), bool(st.pending)
                gp.notifies += st.notifies

            def resume():
                conn.buf[:0] = deferred + leftover
                self._sel.register(conn.sock, selectors.EVENT_READ, conn)
                self._process_lines(conn)
            self._io_run(resume)

    def bench_sync(self, n, vcpu=0, type=IOREQ_TYPE_PIO, addr=0, size=4, dir=IOREQ_READ, data=0, server=None):
        """n synchronous requests on one vCPU, back to back, done by the C
        loop; returns the round-trip times (inject -> response) in ns. Use
        a request without side effects: a device model that makes a call
        meanwhile ends the run (XenDoubleError)."""
        s = self.server(server)
        gp = s.vcpu_ports[vcpu]
        if not s.enabled or self.read_slot(vcpu, s)["state"] != STATE_IOREQ_NONE or gp.pending:
            raise XenDoubleError("vCPU %d of %r is not idle" % (vcpu, s))
        flags = ((dir & 1) << 5)
        request = SLOT.pack(addr & M64, data & M64, 1, size, gp.port, 0, flags, type)
        lat = (ctypes.c_uint64 * n)()
        slot = self._atomics.base + self._slot_offset(s, vcpu)

        def run(st):
            rc = self._atomics.lib.xdh_bench_sync(ctypes.byref(st), slot, n, lat, request)
            if rc == -E.EBUSY:
                raise XenDoubleError("the device model made a call during the synchronous benchmark")
            if rc < 0:
                raise XenDoubleError("benchmark failed: %s" % os.strerror(-rc))
            return list(lat)
        return self._bench(gp, run)

    def bench_buffered(self, n, addr=0xA0000, size=4, server=None):
        """n buffered writes as fast as the device model drains them (the C
        loop); returns the seconds from the first write until the ring was
        empty again."""
        s = self.server(server)
        if not s.bufioreq or s.buf_port is None:
            raise XenDoubleError("%r has no buffered ring" % s)
        codes = {1: 0, 2: 1, 4: 2, 8: 3}
        word = IOREQ_TYPE_COPY | (codes[size] << 10) | ((addr & 0xFFFFF) << 12)
        page = self._atomics.base + self._buf_offset(s)
        atomic_mode = int(s.bufioreq == HVM_IOREQSRV_BUFIOREQ_ATOMIC)
        t0 = time.perf_counter()
        left = n
        while left:
            def run(st):
                return self._atomics.lib.xdh_bench_buffered(ctypes.byref(st), page, left, word,
                                                            int(size == 8), atomic_mode)
            done = self._bench(s.buf_port, run)
            if done < 0:
                raise XenDoubleError("benchmark failed: %s" % os.strerror(-done))
            left -= done
            with s.buf_lock:
                s.buf_pushed += done * (2 if size == 8 else 1)
        return time.perf_counter() - t0

    # ---- guest accesses routed as Xen routes them (§1.5) -----------------------

    def select_server(self, kind, addr, size=1, count=1, df=False):
        """The enabled server Xen would pick (newest first), or None."""
        with self.cond:
            for s in sorted(self.servers.values(), key=lambda s: -s.id):
                if not s.enabled:
                    continue
                if kind == XEN_DMOP_IO_RANGE_PCI:
                    if s.ranges[kind].contains(addr, addr):
                        return s
                    continue
                span = (count * size) if kind == XEN_DMOP_IO_RANGE_MEMORY else size
                lo, hi = (addr - span + size, addr + size - 1) if df else (addr, addr + span - 1)
                if s.ranges[kind].contains(lo, hi):
                    return s
        return None

    def guest_in(self, port, size, vcpu=0):
        """A guest IN instruction: Xen's CF8/CFC decoding, then the server
        owning the port; all-ones when nobody does."""
        return self._guest_pio(port, size, IOREQ_READ, 0, vcpu)

    def guest_out(self, port, size, value, vcpu=0):
        self._guest_pio(port, size, IOREQ_WRITE, value, vcpu)

    def _guest_pio(self, port, size, dir, value, vcpu):
        if port == 0xCF8 and size == 4 and dir == IOREQ_WRITE:
            self.cf8 = value & M32
        if 0xCFC <= port <= 0xCFF and self.cf8 & 0x80000000:
            bdf = (self.cf8 >> 8) & 0xFFFF
            sbdf = bdf  # segment 0
            reg = (self.cf8 & 0xFC) | (port & 3)
            s = self.select_server(XEN_DMOP_IO_RANGE_PCI, sbdf)
            if s is None:
                return size_mask(size) if dir == IOREQ_READ else None
            v = self.send_ioreq(vcpu, IOREQ_TYPE_PCI_CONFIG, (sbdf << 32) | reg, size, 1, dir, value, server=s)
            return v & size_mask(size)
        s = self.select_server(XEN_DMOP_IO_RANGE_PORT, port, size)
        if s is None:
            return size_mask(size) if dir == IOREQ_READ else None
        v = self.send_ioreq(vcpu, IOREQ_TYPE_PIO, port, size, 1, dir, value, server=s)
        return v & size_mask(size)

    def guest_mmio_read(self, addr, size, vcpu=0):
        s = self.select_server(XEN_DMOP_IO_RANGE_MEMORY, addr, size)
        if s is None:
            return size_mask(size)
        return self.send_ioreq(vcpu, IOREQ_TYPE_COPY, addr, size, 1, IOREQ_READ, server=s) & size_mask(size)

    def guest_mmio_write(self, addr, size, value, vcpu=0):
        s = self.select_server(XEN_DMOP_IO_RANGE_MEMORY, addr, size)
        if s is not None:
            self.send_ioreq(vcpu, IOREQ_TYPE_COPY, addr, size, 1, IOREQ_WRITE, value, server=s)

    # ---- the harness thread ------------------------------------------------------

    def _io_run(self, fn):
        """Runs fn() in the harness thread between two rounds of reading."""
        done = threading.Event()
        box = []

        def job():
            try:
                box.append(fn())
            except Exception as e:  # re-raised in the caller
                box.append(e)
            done.set()
        self._jobs.append(job)
        os.write(self._wake_w, b"j")
        if not done.wait(self.timeout):
            raise XenDoubleError("the harness thread does not respond")
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def _loop(self):
        while not self._stopping:
            while self._jobs:
                self._jobs.pop(0)()
            for key, _ in self._sel.select(0.5):
                if key.data == "listen":
                    try:
                        sock, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    conn = _Conn(sock)
                    self._conns.append(conn)
                    self._sel.register(sock, selectors.EVENT_READ, conn)
                elif key.data == "wake":
                    os.read(self._wake_r, 64)
                else:
                    self._readable(key.data)

    def _readable(self, conn):
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, socket.timeout):
            return
        except OSError:
            data = b""
        if not data:
            self._disconnected(conn)
            return
        if conn.kind == "event":
            return  # nothing is expected from the device model on an event stream
        conn.buf += data
        self._process_lines(conn)

    def _process_lines(self, conn):
        while True:
            nl = conn.buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(conn.buf[:nl])
            del conn.buf[:nl + 1]
            self._line(conn, line)
            if conn.kind == "event":
                break

    def _disconnected(self, conn):
        self._sel.unregister(conn.sock)
        conn.open = False
        conn.sock.close()
        if conn.kind != "control":
            return
        with self.cond:
            for h in self.handles.values():
                if h.conn is conn and h.closed is None:
                    self._close_handle(h, "exit")
            for m in self.mappings:
                if m.released is None and m.handle.conn is conn:
                    m.released = "exit"
            self.exited_pids.append(conn.pid)
            self.cond.notify_all()

    def _line(self, conn, line):
        try:
            msg = json.loads(line)
            op = msg.pop("op")
        except (ValueError, KeyError, AttributeError):
            self.internal_errors.append("unparsable message from pid %s: %r" % (conn.pid, line[:200]))
            return
        seq = msg.pop("seq", None)
        reply = {"seq": seq}
        with self.cond:
            self._seq += 1
            call = Call(self._seq, op, msg, msg.get("pid") if conn.pid is None else conn.pid)
            for fn in self._hooks.get((op, "before"), []):
                fn(call)
            try:
                err = self._injected(op, msg)
                if err:
                    call.injected = True
                    raise XenError(err)
                handler = getattr(self, "_op_" + op, None)
                if handler is None:
                    raise XenError(E.ENOSYS, "the double does not implement " + op)
                out = handler(conn, msg) or {}
                call.ret = out.pop("ret", 0)
                call.out = out
            except XenError as e:
                call.ret, call.errno = -1, e.errno
            except Exception as e:  # a harness bug: report it, answer EIO
                self.internal_errors.append("%s(%s) raised %r" % (op, msg, e))
                call.ret, call.errno = -1, E.EIO
            self.records.append(call)
            for fn in self._hooks.get((op, "after"), []):
                fn(call)
            self.cond.notify_all()
        if op in ONEWAY_OPS:
            return
        reply.update(call.out)
        reply["ret"] = call.ret
        reply["errno"] = call.errno
        try:
            conn.reply(reply)
        except OSError:
            pass

    def _injected(self, op, args):
        for inj in self.injections:
            if inj["op"] != op or inj["count"] == 0:
                continue
            if any(args.get(k) != v for k, v in inj["match"].items()):
                continue
            if inj["pred"] and not inj["pred"](args):
                continue
            if inj["count"] is not None:
                inj["count"] -= 1
            return inj["err"]
        return 0

    def _violation(self, text):
        with self.cond:
            self.violations.append(text)

    # ---- common checks -------------------------------------------------------------

    def _handle(self, args, kind):
        h = self.handles.get(args.get("h"))
        if h is None or h.kind != kind or h.closed:
            raise XenError(E.EBADF, "no open %s handle %s" % (kind, args.get("h")))
        return h

    def _privcmd_target(self, h, domid):
        """What privcmd and Xen say about an operation on domid."""
        if h.restricted is not None and domid != h.restricted:
            raise XenError(E.EPERM, "handle restricted to domain %d" % h.restricted)
        if domid != self.domid:
            raise XenError(E.ESRCH, "no domain %d" % domid)

    def _server_of(self, args):
        s = self.servers.get(args.get("id"))
        if s is None:
            raise XenError(E.ENOENT, "no ioreq server %s" % args.get("id"))
        return s

    def _max_gpfn(self):
        return max(self.ram_pages, SPECIAL_PAGES_END) - 1

    # ---- process and handles -------------------------------------------------------

    def _op_hello(self, conn, args):
        conn.kind = "control"
        conn.pid = args.get("pid")
        return {"domid": self.domid}

    def _open(self, conn, kind):
        h = Handle(self._next_handle, kind, conn)
        self._next_handle += 1
        self.handles[h.id] = h
        return {"h": h.id}

    def _close_handle(self, h, how):
        h.closed = how
        for b in list(h.bindings.values()):
            self._release_binding(b, "close" if how == "explicit" else how)

    def _close(self, args, kind):
        self._close_handle(self._handle(args, kind), "explicit")

    def _op_xendevicemodel_open(self, conn, args):
        return self._open(conn, "xendevicemodel")

    def _op_xenforeignmemory_open(self, conn, args):
        return self._open(conn, "xenforeignmemory")

    def _op_xenevtchn_open(self, conn, args):
        return self._open(conn, "xenevtchn")

    def _op_xc_interface_open(self, conn, args):
        return self._open(conn, "xc")

    def _op_xendevicemodel_close(self, conn, args):
        self._close(args, "xendevicemodel")

    def _op_xenforeignmemory_close(self, conn, args):
        self._close(args, "xenforeignmemory")

    def _op_xenevtchn_close(self, conn, args):
        self._close(args, "xenevtchn")

    def _op_xc_interface_close(self, conn, args):
        self._close(args, "xc")

    def _op_xenevtchn_attach(self, conn, args):
        h = self._handle(args, "xenevtchn")
        conn.kind = "event"
        conn.pid = args.get("pid")
        conn.handle = h
        h.stream = conn

    def _privcmd_restrict(self, h, domid):
        if h.restricted is not None and h.restricted != domid:
            raise XenError(E.EINVAL, "already restricted to %d" % h.restricted)
        h.restricted = domid

    def _evtchn_restrict(self, h, domid):
        if h.restricted is not None:
            raise XenError(E.EACCES, "already restricted")
        if domid == 0 or domid >= 0x7FF0:
            raise XenError(E.EINVAL)
        h.restricted = domid

    def _op_xendevicemodel_restrict(self, conn, args):
        self._privcmd_restrict(self._handle(args, "xendevicemodel"), args["domid"])

    def _op_xenforeignmemory_restrict(self, conn, args):
        self._privcmd_restrict(self._handle(args, "xenforeignmemory"), args["domid"])

    def _op_xenevtchn_restrict(self, conn, args):
        self._evtchn_restrict(self._handle(args, "xenevtchn"), args["domid"])

    def _op_xentoolcore_restrict_all(self, conn, args):
        domid = args["domid"]
        for h in list(self.handles.values()):
            if h.pid != conn.pid or h.closed:
                continue
            if h.kind == "xenevtchn":
                self._evtchn_restrict(h, domid)
            elif h.kind in ("xendevicemodel", "xenforeignmemory"):
                self._privcmd_restrict(h, domid)
            else:
                # libxenctrl's hypercall fd is replaced with /dev/null.
                h.dead = True

    # ---- ioreq servers ------------------------------------------------------------------

    def _alloc_guest_port(self, server, vcpu):
        port = FIRST_GUEST_PORT
        while port in self.guest_ports:
            port += 1
        gp = GuestPort(port, server, vcpu)
        self.guest_ports[port] = gp
        return gp

    def _op_xendevicemodel_create_ioreq_server(self, conn, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        mode = args["handle_bufioreq"]
        if mode > HVM_IOREQSRV_BUFIOREQ_ATOMIC:
            raise XenError(E.EINVAL, "handle_bufioreq %d" % mode)
        sid = next((i for i in range(MAX_NR_IOREQ_SERVERS) if i not in self.servers), None)
        if sid is None:
            raise XenError(E.ENOSPC, "all %d ioreq servers in use" % MAX_NR_IOREQ_SERVERS)
        busy = {s.pair for s in self.servers.values()} | {
            m.detail["pair"] for m in self.mappings if m.kind == "resource" and m.released is None}
        busy |= {m.detail["pair"] for m in self.mappings
                 if m.kind == "foreign" and m.released is None and "pair" in m.detail}
        pair = next((p for p in range(PAGE_PAIRS) if p not in busy), None)
        if pair is None:
            raise XenError(E.ENOMEM, "no pages left for ioreq servers")
        s = Server(sid, mode, pair, h)
        off = self._buf_offset(s)
        self.mm[off:off + 2 * PAGE] = bytes(2 * PAGE)
        s.vcpu_ports = [self._alloc_guest_port(s, v) for v in range(self.vcpus)]
        if mode:
            s.buf_port = self._alloc_guest_port(s, None)
        self.servers[sid] = s
        self.all_servers.append(s)
        return {"id": sid}

    def _op_xendevicemodel_get_ioreq_server_info(self, conn, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        s = self._server_of(args)
        out = {"ioreq_gfn": 0, "bufioreq_gfn": 0, "bufioreq_port": s.buf_port.port if s.buf_port else 0}
        if args.get("want_gfns"):
            if s.backing == "resource":
                raise XenError(E.EPERM, "pages already allocated for resource mapping")
            if s.backing is None:
                gfns = self._alloc_ioreq_gfns(2 if s.bufioreq else 1)
                s.ioreq_gfn = gfns[0]
                s.bufioreq_gfn = gfns[1] if s.bufioreq else None
                self._create_pages(s, "gfn")
            out["ioreq_gfn"] = s.ioreq_gfn
            out["bufioreq_gfn"] = s.bufioreq_gfn or 0
        return out

    def _alloc_ioreq_gfns(self, n):
        used = {g for s in self.servers.values() for g in (s.ioreq_gfn, s.bufioreq_gfn) if g is not None}
        pool = [IOREQ_SERVER_PFN + i for i in range(NR_IOREQ_SERVER_PAGES)] + [LEGACY_IOREQ_PFN, LEGACY_BUFIOREQ_PFN]
        free = [g for g in pool if g not in used]
        if len(free) < n:
            raise XenError(E.ENOMEM, "ioreq gfn pool exhausted")
        return free[:n]

    def _create_pages(self, s, how):
        # Pages come into existence on first use. vp_eports are written only
        # when the server is enabled, so pages created after enabling do not
        # carry them (map before enabling, as QEMU does).
        s.backing = how

    def _range_args(self, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        s = self._server_of(args)
        kind, start, end = args["type"], args["start"], args["end"]
        if kind not in s.ranges:
            raise XenError(E.EINVAL, "range type %d" % kind)
        if start > end:
            raise XenError(E.EINVAL, "start > end")
        return s.ranges[kind], start, end

    def _op_xendevicemodel_map_io_range_to_ioreq_server(self, conn, args):
        rs, start, end = self._range_args(args)
        if rs.overlaps(start, end):
            raise XenError(E.EEXIST, "overlaps %r" % rs)
        rs.add(start, end)

    def _op_xendevicemodel_unmap_io_range_from_ioreq_server(self, conn, args):
        rs, start, end = self._range_args(args)
        if not rs.contains(start, end):
            raise XenError(E.ENOENT, "not within %r" % rs)
        rs.remove(start, end)

    _op_xendevicemodel_map_pcidev_to_ioreq_server = _op_xendevicemodel_map_io_range_to_ioreq_server
    _op_xendevicemodel_unmap_pcidev_from_ioreq_server = _op_xendevicemodel_unmap_io_range_from_ioreq_server

    def _op_xendevicemodel_map_mem_type_to_ioreq_server(self, conn, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        s = self._server_of(args)
        s.mem_type_flags = args["flags"]

    def _op_xendevicemodel_set_ioreq_server_state(self, conn, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        s = self._server_of(args)
        enable = bool(args["enabled"])
        if enable and not s.enabled and s.backing is not None:
            for v, gp in enumerate(s.vcpu_ports):
                struct.pack_into("<I", self.mm, self._slot_offset(s, v) + 24, gp.port)
        s.enabled = enable

    def _op_xendevicemodel_destroy_ioreq_server(self, conn, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        s = self._server_of(args)
        s.enabled = False
        s.destroyed = True
        for gp in s.vcpu_ports + ([s.buf_port] if s.buf_port else []):
            gp.closed = True
            del self.guest_ports[gp.port]
        del self.servers[s.id]
        off = self._buf_offset(s)
        self.mm[off:off + 2 * PAGE] = bytes(2 * PAGE)

    # ---- interrupts, memory, misc dm_ops ----------------------------------------------

    def _dm(self, args):
        h = self._handle(args, "xendevicemodel")
        self._privcmd_target(h, args["domid"])
        return h

    def _op_xendevicemodel_set_isa_irq_level(self, conn, args):
        self._dm(args)
        irq, level = args["irq"], args["level"]
        if irq > 15 or level > 1:
            raise XenError(E.EINVAL)
        self.isa_irq[irq] = level
        self.isa_irq_events.append((irq, level))

    def _op_xendevicemodel_set_pci_intx_level(self, conn, args):
        self._dm(args)
        if args["segment"] or args["bus"] or args["device"] > 0x1F or args["intx"] > 3 or args["level"] > 1:
            raise XenError(E.EINVAL)
        self.pci_intx[(args["device"], args["intx"])] = args["level"]

    def _op_xendevicemodel_set_irq_level(self, conn, args):
        self._dm(args)
        raise XenError(E.EOPNOTSUPP, "Arm only")

    def _op_xendevicemodel_set_pci_link_route(self, conn, args):
        self._dm(args)
        if args["link"] > 3 or args["irq"] > 15:
            raise XenError(E.EINVAL)
        self.link_route[args["link"]] = args["irq"]

    def _op_xendevicemodel_inject_msi(self, conn, args):
        self._dm(args)
        self.msis.append((args["addr"], args["data"]))

    def _op_xendevicemodel_inject_event(self, conn, args):
        self._dm(args)
        if args["vcpu"] >= self.vcpus:
            raise XenError(E.EINVAL)
        self.events_injected.append(dict(args))

    def _op_xendevicemodel_shutdown(self, conn, args):
        self._dm(args)
        if args["reason"] > SHUTDOWN_soft_reset:
            raise XenError(E.EINVAL)
        self.shutdown_reason = args["reason"]

    def _op_xendevicemodel_nr_vcpus(self, conn, args):
        self._dm(args)
        return {"vcpus": self.vcpus_reported}

    def _op_xendevicemodel_modified_memory_bulk(self, conn, args):
        self._dm(args)
        if not self.log_dirty:
            return
        top = self._max_gpfn()
        pfns = set()
        for i, e in enumerate(args["extents"]):
            first, nr = e["first_pfn"], e["nr"]
            if e["pad"] or first > top or nr > top or first + nr - 1 > top:
                raise XenError(E.EINVAL, "extent %d: %#x+%d" % (i, first, nr))
            pfns.update(range(first, first + nr))
        self.dirty_pfns |= pfns

    def _op_xendevicemodel_set_mem_type(self, conn, args):
        self._dm(args)
        t, first, nr = args["mem_type"], args["first_pfn"], args["nr"]
        if t > HVMMEM_ioreq_server or t == HVMMEM_unused:
            raise XenError(E.EINVAL, "mem type %d" % t)
        if first + nr - 1 < first or first + nr - 1 > self._max_gpfn():
            raise XenError(E.EINVAL)
        self.mem_types.append((t, first, nr))

    def _op_xendevicemodel_track_dirty_vram(self, conn, args):
        self._dm(args)
        first, nr = args["first_pfn"], args["nr"]
        if nr > (1 << 30) // PAGE:
            raise XenError(E.EINVAL)
        if nr == 0:
            self.vram = None
            self.vram_dirty.clear()
            return {"bitmap": ""}
        if self.vram != (first, nr):
            # A new range reports every page dirty first (HAP).
            self.vram = (first, nr)
            dirty = set(range(first, first + nr))
        else:
            dirty = set(self.vram_dirty)
        self.vram_dirty.clear()
        bitmap = bytearray((nr + 7) // 8)
        for pfn in dirty:
            i = pfn - first
            bitmap[i // 8] |= 1 << (i % 8)
        return {"bitmap": bitmap.hex()}

    def _op_xendevicemodel_relocate_memory(self, conn, args):
        self._dm(args)
        self.relocations.append((args["size"], args["src_gfn"], args["dst_gfn"]))

    def _op_xendevicemodel_pin_memory_cacheattr(self, conn, args):
        self._dm(args)
        if args["type"] not in CACHEATTR_TYPES or args["start"] > args["end"]:
            raise XenError(E.EINVAL)
        self.cacheattrs.append((args["start"], args["end"], args["type"]))

    # ---- foreign memory -------------------------------------------------------------

    def _gfn_backing(self, gfn):
        """(file offset or None, errno) of one guest frame."""
        if gfn in self.gfn_errors:
            return None, self.gfn_errors[gfn]
        if 0 <= gfn < self.ram_pages:
            return gfn * PAGE, 0
        for s in self.servers.values():
            if s.backing == "gfn" and gfn in (s.ioreq_gfn, s.bufioreq_gfn):
                if s.enabled:
                    # Xen takes the frames out of the guest's p2m while the
                    # server is enabled.
                    return None, self.hole_errno
                return self._buf_offset(s) + (PAGE if gfn == s.ioreq_gfn else 0), 0
        return None, self.hole_errno

    def _op_xenforeignmemory_map(self, conn, args):
        h = self._handle(args, "xenforeignmemory")
        self._privcmd_target(h, args["domid"])
        offsets, errs = [], []
        for gfn in args["gfns"]:
            off, err = self._gfn_backing(gfn)
            offsets.append(-1 if off is None else off)
            errs.append(-err if err else 0)
        first_bad = next((e for e in errs if e), 0)
        if first_bad and not args["err_array"]:
            raise XenError(-first_bad, "a frame cannot be mapped")
        key = (conn.pid, args["addr"])
        if key in self.foreign and self.foreign[key].released is None:
            self._violation("foreign mapping at %#x made while one is recorded there" % args["addr"])
        detail = {"addr": args["addr"], "pages": len(args["gfns"]), "gfns": args["gfns"], "prot": args["prot"]}
        pairs = {s.pair for s in self.servers.values() if s.backing == "gfn" and
                 (s.ioreq_gfn in args["gfns"] or s.bufioreq_gfn in args["gfns"])}
        if pairs:
            detail["pair"] = pairs.pop()
        m = Mapping("foreign", h, key, detail)
        self.foreign[key] = m
        self.mappings.append(m)
        return {"offsets": offsets, "err": errs}

    def _mapping_handle(self, args):
        """The handle an unmap names: mappings outlive the privcmd fd, so
        a closed handle is fine here."""
        h = self.handles.get(args.get("h"))
        if h is None or h.kind != "xenforeignmemory":
            raise XenError(E.EBADF, "no xenforeignmemory handle %s" % args.get("h"))
        return h

    def _op_xenforeignmemory_unmap(self, conn, args):
        h = self._mapping_handle(args)
        key = (conn.pid, args["addr"])
        m = self.foreign.get(key)
        if m is None or m.released is not None:
            self._violation("xenforeignmemory_unmap of %#x (%d pages): nothing mapped there" % (
                args["addr"], args["pages"]))
            return
        if m.detail["pages"] != args["pages"]:
            self._violation("xenforeignmemory_unmap of %#x: %d pages, mapped %d" % (
                args["addr"], args["pages"], m.detail["pages"]))
        if m.handle is not h:
            self._violation("foreign mapping at %#x unmapped through another handle" % args["addr"])
        m.released = "explicit"
        del self.foreign[key]

    def _op_xenforeignmemory_map_resource(self, conn, args):
        h = self._handle(args, "xenforeignmemory")
        self._privcmd_target(h, args["domid"])
        if args["type"] != XENMEM_resource_ioreq_server:
            raise XenError(E.EOPNOTSUPP, "the double knows only ioreq-server resources")
        if args["size_query"]:
            # One frame for the ring, one per 128 vCPUs.
            return {"nr_frames": 1 + (self.vcpus * 32 + PAGE - 1) // PAGE, "res": 0}
        s = self._server_of(args)
        frame, nr = args["frame"], args["nr_frames"]
        if nr == 0:
            raise XenError(E.EINVAL)
        for f in range(frame, frame + nr):
            if f == 0 and not s.bufioreq:
                raise XenError(E.ENOENT, "no buffered page")
            if f > 1:
                raise XenError(E.EINVAL, "frame %d" % f)
        if s.backing == "gfn":
            raise XenError(E.EPERM, "pages already mapped into the guest by gfn")
        if s.backing is None:
            self._create_pages(s, "resource")
        rid = self._next_res
        self._next_res += 1
        m = Mapping("resource", h, rid, {"server": s.id, "frame": frame, "nr_frames": nr, "pair": s.pair})
        self.resources[rid] = m
        self.mappings.append(m)
        return {"res": rid, "offset": self._buf_offset(s) + frame * PAGE, "nr_frames": nr}

    def _op_xenforeignmemory_resource_size(self, conn, args):
        return self._op_xenforeignmemory_map_resource(conn, args)

    def _op_xenforeignmemory_unmap_resource(self, conn, args):
        self._mapping_handle(args)
        m = self.resources.get(args["res"])
        if m is None or m.released is not None:
            self._violation("xenforeignmemory_unmap_resource of unknown mapping %s" % args["res"])
            return
        m.released = "explicit"

    def _op_xenforeignmemory_abort(self, conn, args):
        what = args.get("what", {})
        if "res" in what:
            m = self.resources.get(what["res"])
        else:
            m = self.foreign.pop((conn.pid, what.get("addr")), None)
        if m is not None:
            m.released = "abort"

    # ---- event channels ----------------------------------------------------------

    def _op_xenevtchn_bind_interdomain(self, conn, args):
        h = self._handle(args, "xenevtchn")
        domid, rport = args["domid"], args["remote_port"]
        if h.restricted is not None and domid != h.restricted:
            raise XenError(E.EACCES, "handle restricted to domain %d" % h.restricted)
        if domid != self.domid:
            raise XenError(E.ESRCH, "no domain %d" % domid)
        gp = self.guest_ports.get(rport)
        if gp is None or gp.closed or (gp.binding is not None and gp.binding.released is None):
            raise XenError(E.EINVAL, "guest port %d is not an unbound port for domain %d" % (rport, self.dm_domid))
        local = FIRST_LOCAL_PORT
        while local in self.local_ports:
            local += 1
        b = Binding(local, h, gp)
        gp.binding = b
        h.bindings[local] = b
        self.local_ports[local] = b
        self.bindings.append(b)
        if self.spurious_on_bind:
            # Xen sets the new local port pending in case the remote end
            # signalled before the binding existed.
            self._deliver(b)
        return {"ret": local}

    def _release_binding(self, b, how):
        b.released = how
        b.handle.bindings.pop(b.local, None)
        self.local_ports.pop(b.local, None)
        if b.remote.binding is b:
            b.remote.binding = None

    def _op_xenevtchn_unbind(self, conn, args):
        h = self._handle(args, "xenevtchn")
        b = h.bindings.get(args["port"])
        if b is None:
            raise XenError(E.ENOTCONN)
        self._release_binding(b, "explicit")

    def _op_xenevtchn_notify(self, conn, args):
        h = self._handle(args, "xenevtchn")
        b = h.bindings.get(args["port"])
        if b is None:
            raise XenError(E.ENOTCONN)
        gp = b.remote
        if not gp.closed:
            gp.notifies += 1
            if gp.pending is not None:
                gp.pending._notified()
        return {"remote_port": gp.port, "server": gp.server.id, "vcpu": gp.vcpu}

    def _op_xenevtchn_unmask(self, conn, args):
        h = self._handle(args, "xenevtchn")
        b = h.bindings.get(args["port"])
        if b is None or not b.masked:
            return
        b.masked = False
        if b.pending:
            b.pending = False
            self._deliver(b)

    # ---- libxenctrl --------------------------------------------------------------

    def _xc(self, args, target=True):
        h = self._handle(args, "xc")
        if h.dead:
            raise XenError(E.ENOTTY, "the hypercall fd was closed by xentoolcore_restrict_all")
        if target and args["domid"] != self.domid:
            raise XenError(E.ESRCH, "no domain %d" % args["domid"])
        return h

    def _op_xc_hvm_param_get(self, conn, args):
        self._xc(args)
        p = args["param"]
        if p >= HVM_NR_PARAMS or p == HVM_PARAM_BUFIOREQ_EVTCHN:
            raise XenError(E.EINVAL, "param %d" % p)
        return {"value": self.hvm_params.get(p, 0)}

    def _op_xc_domain_maximum_gpfn(self, conn, args):
        """The highest frame of guest RAM (this double's RAM is one block
        from guest-physical 0)."""
        self._xc(args)
        return {"gpfn": self.ram_pages - 1}

    def _op_xc_hvm_param_set(self, conn, args):
        self._xc(args)
        p = args["param"]
        if p >= HVM_NR_PARAMS or p == HVM_PARAM_BUFIOREQ_EVTCHN:
            raise XenError(E.EINVAL, "param %d" % p)
        self.hvm_params[p] = args["value"]

    def domains(self):
        """Domain descriptions for xc_domain_getinfo: the device model's and
        the guest."""
        guest = {"domid": self.domid, "hvm": 1, "hap": 1, "running": 1, "paused": 0, "blocked": 0,
                 "dying": 0, "crashed": 0, "shutdown": int(self.shutdown_reason is not None),
                 "shutdown_reason": self.shutdown_reason or 0, "nr_pages": self.ram_pages,
                 "max_memkb": self.ram_size >> 10, "nr_online_vcpus": self.vcpus_reported,
                 "max_vcpu_id": self.vcpus_reported - 1, "cpu_time": 0, "gpaddr_bits": 52}
        dm = {"domid": self.dm_domid, "hvm": 0, "hap": 0, "running": 1, "nr_online_vcpus": os.cpu_count() or 1,
              "max_vcpu_id": (os.cpu_count() or 1) - 1, "nr_pages": 262144, "max_memkb": 1 << 20,
              "gpaddr_bits": 52}
        return sorted([dm, guest], key=lambda d: d["domid"])

    def _getinfo(self, args):
        self._xc(args, target=False)
        return {"domains": [d for d in self.domains() if d["domid"] >= args["domid"]][:args["max"]]}

    def _op_xc_domain_getinfo(self, conn, args):
        out = self._getinfo(args)
        out["ret"] = len(out["domains"])
        return out

    _op_xc_domain_getinfolist = _op_xc_domain_getinfo

    def _op_xc_domain_memory_mapping(self, conn, args):
        self._xc(args)
        key = (args["first_gfn"], args["first_mfn"], args["nr_mfns"])
        if args["add_mapping"]:
            self.mem_mappings.add(key)
        elif key in self.mem_mappings:
            self.mem_mappings.discard(key)
        else:
            self._violation("xc_domain_memory_mapping removes %s, which was never added" % (key,))

    def _op_xc_domain_ioport_mapping(self, conn, args):
        self._xc(args)
        key = (args["first_gport"], args["first_mport"], args["nr_ports"])
        if args["add_mapping"]:
            self.ioport_mappings.add(key)
        elif key in self.ioport_mappings:
            self.ioport_mappings.discard(key)
        else:
            self._violation("xc_domain_ioport_mapping removes %s, which was never added" % (key,))

    def _op_xc_physdev_map_pirq(self, conn, args):
        self._xc(args)
        pirq = args["pirq"]
        self.pirqs[pirq] = "GSI %d" % args["index"]
        return {"pirq": pirq}

    def _op_xc_physdev_map_pirq_msi(self, conn, args):
        self._xc(args)
        pirq = args["pirq"]
        if pirq < 0:
            while self._next_pirq in self.pirqs:
                self._next_pirq += 1
            pirq = self._next_pirq
        self.pirqs[pirq] = "MSI %02x:%02x entry %d" % (args["bus"], args["devfn"], args["entry_nr"])
        return {"pirq": pirq}

    def _op_xc_physdev_unmap_pirq(self, conn, args):
        self._xc(args)
        if self.pirqs.pop(args["pirq"], None) is None:
            raise XenError(E.EINVAL, "pirq %d not mapped" % args["pirq"])

    def _op_xc_domain_bind_pt_pci_irq(self, conn, args):
        self._xc(args)
        self.pt_irqs[(args["machine_irq"], args["bus"], args["device"], args["intx"])] = True

    def _op_xc_domain_unbind_pt_irq(self, conn, args):
        self._xc(args)
        key = (args["machine_irq"], args["bus"], args["device"], args["intx"])
        if self.pt_irqs.pop(key, None) is None:
            raise XenError(E.EINVAL, "IRQ %s not bound" % (key,))

    def _op_xc_domain_update_msi_irq(self, conn, args):
        self._xc(args)
        if args["pirq"] not in self.pirqs:
            raise XenError(E.EINVAL, "pirq %d not mapped" % args["pirq"])
        self.msi_binds[args["pirq"]] = (args["gvec"], args["gflags"], args["gtable"])

    def _op_xc_domain_unbind_msi_irq(self, conn, args):
        self._xc(args)
        if self.msi_binds.pop(args["pirq"], None) is None:
            raise XenError(E.EINVAL, "pirq %d not bound" % args["pirq"])


_asan_cache = {}


def _asan_runtime(library):
    """The ASan runtime a sanitized build of the double needs preloaded
    first, or None."""
    if library not in _asan_cache:
        found = None
        try:
            out = subprocess.run(["ldd", library], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                parts = line.split()
                if parts and parts[0].startswith("libasan.so") and len(parts) >= 3 and parts[1] == "=>":
                    found = parts[2]
        except (OSError, subprocess.SubprocessError):
            pass
        _asan_cache[library] = found
    return _asan_cache[library]
