"""A real xenstored for integration tests.

Debian's C xenstored (from xen-utils-4.17, downloaded and unpacked by
tests/xenstored/fetch-xenstored, never installed) runs without a hypervisor
under the LD_PRELOAD shim tests/xenstored/shim.c. Each Xenstored gets its own
fresh directory (XENSTORED_RUNDIR), so tests never share a store; clients
reach it with XENSTORED_PATH=<dir>/socket and are treated as dom0.

Xenstored   starts/stops/restarts the daemon (only its own pid, always
            reaped), runs the xenstore-* tools against it (read, write, rm,
            ls, chmod, ...) and hands out Client connections.
Client      a small ctypes binding to libxenstore for what the tools cannot
            do well: watches with timeouts, permissions as data, several
            concurrent connections, introducing domains.

The pytest fixture `xenstored` (conftest.py) yields a started Xenstored and
skips the test, saying why, only if the daemon cannot be fetched at all.
"""

import ctypes
import errno
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FETCH_SCRIPT = os.path.join(REPO_ROOT, "tests", "xenstored", "fetch-xenstored")
XENSTORED_REL = "usr/lib/xen-4.17/bin/xenstored"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
EVENT_TIMEOUT = 5.0

# enum xs_perm_type (xenstore_lib.h)
PERM_NONE = 0
PERM_READ = 1
PERM_WRITE = 2
PERM_BOTH = PERM_READ | PERM_WRITE


class Unavailable(Exception):
    """The daemon cannot be fetched (no network, not Debian, ...)."""


def xenstored_dir():
    """Where the unpacked package lives: $XEN_DM_XENSTORED_DIR (set by make)
    or tests-bin/xenstored at the repository root."""
    return os.path.abspath(os.environ.get("XEN_DM_XENSTORED_DIR")
                           or os.path.join(REPO_ROOT, "tests-bin", "xenstored"))


def shim_path():
    return os.path.abspath(os.environ.get("XEN_DM_XSSHIM")
                           or os.path.join(REPO_ROOT, "tests-bin", "libxsshim.so"))


def binary():
    """The xenstored binary, fetched on first use. Raises Unavailable with
    fetch-xenstored's explanation if that is impossible."""
    path = os.path.join(xenstored_dir(), XENSTORED_REL)
    if os.access(path, os.X_OK):
        return path
    r = subprocess.run([FETCH_SCRIPT, xenstored_dir()], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0 or not os.access(path, os.X_OK):
        raise Unavailable("cannot fetch Debian's xenstored (xen-utils-4.17):\n"
                          + r.stdout.strip())
    return path


def _accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class XenstoredError(Exception):
    pass


class Xenstored:
    def __init__(self):
        self.bin = binary()
        self.shim = shim_path()
        if not os.access(self.shim, os.R_OK):
            raise XenstoredError("no hypervisor shim at %s (build it: make %s)"
                                 % (self.shim, "tests-bin/libxsshim.so"))
        # Short: AF_UNIX paths stop at 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="xsd", dir="/tmp")
        self.socket = os.path.join(self.dir, "socket")
        self.log_path = os.path.join(self.dir, "log")
        self.proc = None
        self.clients = []

    # --- lifetime ---------------------------------------------------------

    def start(self):
        assert self.proc is None, "already running"
        env = {k: v for k, v in os.environ.items()
               if k != "LD_PRELOAD" and not k.startswith("XENSTORED_")}
        env["XENSTORED_RUNDIR"] = self.dir
        env["LD_PRELOAD"] = self.shim
        # -N: stay in the foreground (our child, so we can reap it);
        # -P: print the pid; -F: pid file. Never -D, it crashes.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.bin, "-N", "-P", "-F", os.path.join(self.dir, "pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.socket):
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise XenstoredError("xenstored exited during start-up (%s):\n%s"
                                     % (rc, self.log()))
            if time.monotonic() >= deadline:
                self.stop(signal.SIGKILL)
                raise XenstoredError("xenstored does not accept on %s" % self.socket)
            time.sleep(0.005)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stops the daemon this object started (never anything else) and
        reaps it; returns its exit status, or None if it was not running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def restart(self, sig=signal.SIGTERM):
        """Stops and starts again in the same directory: same socket path,
        empty store (what a crashed and restarted xenstored looks like)."""
        self.stop(sig)
        return self.start()

    def cleanup(self):
        for c in self.clients:
            c.close()
        self.clients = []
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- the xenstore-* tools -------------------------------------------

    @property
    def env(self):
        """Environment for any xenstore client (tool, xen-dm) of this daemon."""
        env = dict(os.environ)
        env.pop("XENSTORED_RUNDIR", None)
        env["XENSTORED_PATH"] = self.socket
        return env

    def tool(self, name, *args, check=True):
        """Runs xenstore-<name> ARGS; returns its stdout. With check=False,
        returns the CompletedProcess instead."""
        r = subprocess.run(["xenstore-" + name] + [str(a) for a in args],
                           env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=10)
        if not check:
            return r
        if r.returncode != 0:
            raise XenstoredError("xenstore-%s %s failed (%d): %s"
                                 % (name, " ".join(map(str, args)), r.returncode,
                                    r.stderr.strip()))
        return r.stdout

    def read(self, path):
        """The value, or None if the node does not exist."""
        r = self.tool("read", path, check=False)
        if r.returncode != 0:
            return None
        return r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout

    def write(self, path, value):
        self.tool("write", path, value)

    def rm(self, path):
        self.tool("rm", path)

    def exists(self, path):
        return self.tool("exists", path, check=False).returncode == 0

    def ls(self, path):
        """The names of path's children (sorted), or None if it does not exist."""
        r = self.tool("list", path, check=False)
        if r.returncode != 0:
            return None
        return sorted(r.stdout.split())

    def chmod(self, path, *modes):
        """xenstore-chmod modes: "n0" (owner dom0, others none), "r5" ..."""
        self.tool("chmod", path, *modes)

    def client(self):
        c = Client(self.socket)
        self.clients.append(c)
        return c


# --- libxenstore through ctypes ------------------------------------------

class _Perm(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint), ("perms", ctypes.c_int)]


def _lib():
    lib = ctypes.CDLL("libxenstore.so.4", use_errno=True)
    vp, cp, u = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint
    lib.xs_open.restype = vp
    lib.xs_open.argtypes = [ctypes.c_ulong]
    lib.xs_close.argtypes = [vp]
    lib.xs_fileno.argtypes = [vp]
    lib.xs_read.restype = vp
    lib.xs_read.argtypes = [vp, u, cp, ctypes.POINTER(u)]
    lib.xs_write.restype = ctypes.c_bool
    lib.xs_write.argtypes = [vp, u, cp, cp, u]
    lib.xs_mkdir.restype = ctypes.c_bool
    lib.xs_mkdir.argtypes = [vp, u, cp]
    lib.xs_rm.restype = ctypes.c_bool
    lib.xs_rm.argtypes = [vp, u, cp]
    lib.xs_directory.restype = ctypes.POINTER(cp)
    lib.xs_directory.argtypes = [vp, u, cp, ctypes.POINTER(u)]
    lib.xs_watch.restype = ctypes.c_bool
    lib.xs_watch.argtypes = [vp, cp, cp]
    lib.xs_unwatch.restype = ctypes.c_bool
    lib.xs_unwatch.argtypes = [vp, cp, cp]
    lib.xs_check_watch.restype = ctypes.POINTER(cp)
    lib.xs_check_watch.argtypes = [vp]
    lib.xs_get_permissions.restype = ctypes.POINTER(_Perm)
    lib.xs_get_permissions.argtypes = [vp, u, cp, ctypes.POINTER(u)]
    lib.xs_set_permissions.restype = ctypes.c_bool
    lib.xs_set_permissions.argtypes = [vp, u, cp, ctypes.POINTER(_Perm), u]
    lib.xs_introduce_domain.restype = ctypes.c_bool
    lib.xs_introduce_domain.argtypes = [vp, u, ctypes.c_ulong, u]
    lib.xs_release_domain.restype = ctypes.c_bool
    lib.xs_release_domain.argtypes = [vp, u]
    lib.xs_is_domain_introduced.restype = ctypes.c_bool
    lib.xs_is_domain_introduced.argtypes = [vp, u]
    lib.xs_get_domain_path.restype = vp
    lib.xs_get_domain_path.argtypes = [vp, u]
    return lib


_LIB = None
_LIBC = ctypes.CDLL(None)
_LIBC.free.argtypes = [ctypes.c_void_p]
XBT_NULL = 0


class ClientError(OSError):
    pass


def _fail(what, path):
    err = ctypes.get_errno()
    raise ClientError(err, "%s %s: %s" % (what, path, os.strerror(err)))


def _b(s):
    return s.encode() if isinstance(s, str) else s


class Client:
    """One connection to a daemon (dom0's view). Values are bytes in, str
    out (bytes with raw=True)."""

    def __init__(self, socket_path):
        global _LIB
        if _LIB is None:
            _LIB = _lib()
        self.lib = _LIB
        # libxenstore takes the socket from the environment at open time.
        old = os.environ.get("XENSTORED_PATH")
        os.environ["XENSTORED_PATH"] = socket_path
        try:
            self.h = self.lib.xs_open(0)
        finally:
            if old is None:
                del os.environ["XENSTORED_PATH"]
            else:
                os.environ["XENSTORED_PATH"] = old
        if not self.h:
            _fail("xs_open", socket_path)
        # Before any watch: libxenstore only signals a pipe that exists.
        self.fd = self.lib.xs_fileno(self.h)

    def close(self):
        if self.h:
            self.lib.xs_close(self.h)
            self.h = None

    def read(self, path, raw=False):
        n = ctypes.c_uint()
        p = self.lib.xs_read(self.h, XBT_NULL, _b(path), ctypes.byref(n))
        if not p:
            if ctypes.get_errno() == errno.ENOENT:
                return None
            _fail("read", path)
        data = ctypes.string_at(p, n.value)
        _LIBC.free(p)
        return data if raw else data.decode(errors="replace")

    def write(self, path, value):
        data = _b(value)
        if not self.lib.xs_write(self.h, XBT_NULL, _b(path), data, len(data)):
            _fail("write", path)

    def mkdir(self, path):
        if not self.lib.xs_mkdir(self.h, XBT_NULL, _b(path)):
            _fail("mkdir", path)

    def rm(self, path):
        if not self.lib.xs_rm(self.h, XBT_NULL, _b(path)):
            _fail("rm", path)

    def ls(self, path):
        n = ctypes.c_uint()
        p = self.lib.xs_directory(self.h, XBT_NULL, _b(path), ctypes.byref(n))
        if not p:
            if ctypes.get_errno() == errno.ENOENT:
                return None
            _fail("directory", path)
        names = sorted(p[i].decode() for i in range(n.value))
        _LIBC.free(ctypes.cast(p, ctypes.c_void_p))
        return names

    def get_perms(self, path):
        """[(domid, PERM_*)], the first entry being the owner."""
        n = ctypes.c_uint()
        p = self.lib.xs_get_permissions(self.h, XBT_NULL, _b(path), ctypes.byref(n))
        if not p:
            _fail("get_permissions", path)
        perms = [(p[i].id, p[i].perms) for i in range(n.value)]
        _LIBC.free(ctypes.cast(p, ctypes.c_void_p))
        return perms

    def set_perms(self, path, perms):
        arr = (_Perm * len(perms))(*[_Perm(d, m) for d, m in perms])
        if not self.lib.xs_set_permissions(self.h, XBT_NULL, _b(path), arr, len(perms)):
            _fail("set_permissions", path)

    def watch(self, path, token):
        if not self.lib.xs_watch(self.h, _b(path), _b(token)):
            _fail("watch", path)

    def unwatch(self, path, token):
        if not self.lib.xs_unwatch(self.h, _b(path), _b(token)):
            _fail("unwatch", path)

    def event(self, timeout=EVENT_TIMEOUT):
        """The next watch event as (path, token), or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.lib.xs_check_watch(self.h)
            if p:
                ev = (p[0].decode(), p[1].decode())
                _LIBC.free(ctypes.cast(p, ctypes.c_void_p))
                return ev
            if ctypes.get_errno() != errno.EAGAIN:
                _fail("check_watch", "")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([self.fd], [], [], left)

    def events(self, quiet=0.15):
        """Every event that arrives until none has come for `quiet` seconds."""
        out = []
        while True:
            ev = self.event(quiet)
            if ev is None:
                return out
            out.append(ev)

    def introduce(self, domid, mfn=0x1000, port=5):
        if not self.lib.xs_introduce_domain(self.h, domid, mfn, port):
            _fail("introduce", str(domid))

    def release(self, domid):
        if not self.lib.xs_release_domain(self.h, domid):
            _fail("release", str(domid))

    def is_introduced(self, domid):
        return bool(self.lib.xs_is_domain_introduced(self.h, domid))

    def domain_path(self, domid):
        p = self.lib.xs_get_domain_path(self.h, domid)
        if not p:
            _fail("get_domain_path", str(domid))
        s = ctypes.string_at(p).decode()
        _LIBC.free(p)
        return s
