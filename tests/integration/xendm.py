"""A small client library for driving a real xen-dm over its sockets.

Daemon  starts the binary with a qtest socket and/or QMP sockets, waits until
        they accept, and on stop() checks that the daemon exited cleanly and
        logged nothing at error level (nor anything that is not a log line,
        such as a sanitizer report).
QTest   speaks QEMU's qtest line protocol; asynchronous "IRQ raise/lower N"
        lines are collected apart from command replies.
QMP     speaks QMP: greeting, commands with id checking, queued events.

Only the Python standard library is used, so the bench script can share it.
"""

import collections
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Generous: these only bound how long a broken daemon can hang a test.
CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0

# "HH:MM:SS.mmm xen-dm <level>: message"; trace lines carry "trace NAME".
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} xen-dm (error|warning|info|debug|trace \S+): (.*)$")

# libxl numbers its QMP commands from here (libxl_qmp.c).
LIBXL_FIRST_ID = 0x786C7100


def binary():
    """The daemon under test: $XEN_DM, else ./xen-dm at the repository root."""
    path = os.environ.get("XEN_DM") or os.path.join(REPO_ROOT, "xen-dm")
    return os.path.abspath(path)


def short_tempdir():
    """A private directory with a short path: AF_UNIX paths stop at 108 bytes,
    and pytest's own tmp_path can be longer than that."""
    return tempfile.mkdtemp(prefix="xdm", dir="/tmp")


def connect_unix(path, timeout=CONNECT_TIMEOUT, poll=0.005, alive=None):
    """Connects to a listening UNIX socket, retrying while it does not exist
    yet or does not listen yet. alive() returning False aborts early."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if alive is not None and not alive():
                raise DaemonError("daemon exited before %s accepted connections" % path)
            if time.monotonic() >= deadline:
                raise TimeoutError("nothing accepts connections on %s after %.0f s" % (path, timeout))
            time.sleep(poll)


class DaemonError(Exception):
    pass


class QTestError(Exception):
    """A qtest command answered FAIL (or something else than OK)."""


class QMPError(Exception):
    """A QMP command answered with an error object."""

    def __init__(self, cls, desc, reply):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc
        self.reply = reply


def parse_log(text):
    """[(level, message)] for log lines, (None, line) for anything else."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        out.append((m.group(1), m.group(2)) if m else (None, line))
    return out


class Stream:
    """A byte stream over a read fd and a write fd (one socket, or two pipes),
    with timeouts on both directions and line reading. Complete lines are
    split off as they arrive, so reading many short replies stays linear."""

    def __init__(self, rfd, wfd, owner=None):
        self.rfd = rfd
        self.wfd = wfd
        self.owner = owner  # keeps the socket or pipe objects (and fds) alive
        self.lines = collections.deque()
        self.partial = []  # chunks of a line whose newline has not come yet
        self.eof = False
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)

    def send(self, data, timeout=REPLY_TIMEOUT):
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("peer stopped reading (%d bytes unsent)" % len(view))
            select.select([], [self.wfd], [], remaining)
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def _feed(self, data):
        if b"\n" not in data:
            self.partial.append(data)
            return
        parts = data.split(b"\n")
        parts[0] = b"".join(self.partial) + parts[0]
        last = parts.pop()
        self.partial = [last] if last else []
        self.lines.extend(p + b"\n" for p in parts)

    def fill(self, timeout):
        """Reads what is available, waiting at most timeout; False on EOF."""
        if self.eof:
            return False
        r, _, _ = select.select([self.rfd], [], [], max(timeout, 0))
        if not r:
            return True
        try:
            data = os.read(self.rfd, 1 << 16)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._feed(data)
        return True

    def read_line(self, timeout=REPLY_TIMEOUT):
        """The next line with its terminator, or what is left (b"" if
        nothing) once the peer has closed."""
        deadline = time.monotonic() + timeout
        while not self.lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                have = b"".join(self.partial)
                raise TimeoutError("no complete line after %.0f s (have %r)" % (timeout, have[:200]))
            if not self.fill(remaining) and not self.lines:
                rest, self.partial = b"".join(self.partial), []
                return rest
        return self.lines.popleft()

    def wait_eof(self, timeout=REPLY_TIMEOUT):
        """Reads until the peer closes; returns everything unread."""
        deadline = time.monotonic() + timeout
        while self.fill(deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                raise TimeoutError("peer did not close the connection")
        rest = b"".join(self.lines) + b"".join(self.partial)
        self.lines.clear()
        self.partial = []
        return rest


class QTest:
    """A qtest client: cmd() sends one line and returns the reply line;
    "IRQ raise N" / "IRQ lower N" lines are appended to self.irqs as
    ("raise"|"lower", N) whenever they arrive."""

    def __init__(self, stream):
        self.stream = stream
        self.irqs = []

    @classmethod
    def connect(cls, path, timeout=CONNECT_TIMEOUT):
        s = connect_unix(path, timeout)
        return cls(Stream(s.fileno(), s.fileno(), owner=s))

    @classmethod
    def over_pipes(cls, to_daemon, from_daemon):
        """For -qtest stdio: to_daemon is the daemon's stdin pipe, from_daemon
        its stdout pipe (file objects)."""
        return cls(Stream(from_daemon.fileno(), to_daemon.fileno(), owner=(to_daemon, from_daemon)))

    def close(self):
        if isinstance(self.stream.owner, socket.socket):
            self.stream.owner.close()

    def send_raw(self, data):
        self.stream.send(data)

    def read_reply(self, timeout=REPLY_TIMEOUT):
        """The next line that is not an IRQ notification, without "\\n"."""
        while True:
            raw = self.stream.read_line(timeout)
            if not raw:
                raise EOFError("qtest connection closed")
            line = raw.decode("ascii", "replace").rstrip("\n")
            m = re.fullmatch(r"IRQ (raise|lower) (\d+)", line)
            if m:
                self.irqs.append((m.group(1), int(m.group(2))))
                continue
            return line

    def cmd(self, line):
        self.send_raw(line.encode() + b"\n")
        return self.read_reply()

    def ok(self, line):
        """Runs a command that must succeed; returns the text after "OK"."""
        reply = self.cmd(line)
        if reply == "OK":
            return ""
        if reply.startswith("OK "):
            return reply[3:]
        raise QTestError("%s -> %s" % (line, reply))

    def _value(self, line):
        return int(self.ok(line), 16)

    # Port I/O.
    def outb(self, port, value):
        self.ok("outb 0x%x 0x%x" % (port, value))

    def outw(self, port, value):
        self.ok("outw 0x%x 0x%x" % (port, value))

    def outl(self, port, value):
        self.ok("outl 0x%x 0x%x" % (port, value))

    def inb(self, port):
        return self._value("inb 0x%x" % port)

    def inw(self, port):
        return self._value("inw 0x%x" % port)

    def inl(self, port):
        return self._value("inl 0x%x" % port)

    # Guest-physical memory.
    def readb(self, addr):
        return self._value("readb 0x%x" % addr)

    def readw(self, addr):
        return self._value("readw 0x%x" % addr)

    def readl(self, addr):
        return self._value("readl 0x%x" % addr)

    def readq(self, addr):
        return self._value("readq 0x%x" % addr)

    def writeb(self, addr, value):
        self.ok("writeb 0x%x 0x%x" % (addr, value))

    def writew(self, addr, value):
        self.ok("writew 0x%x 0x%x" % (addr, value))

    def writel(self, addr, value):
        self.ok("writel 0x%x 0x%x" % (addr, value))

    def writeq(self, addr, value):
        self.ok("writeq 0x%x 0x%x" % (addr, value))

    def read(self, addr, size):
        text = self.ok("read 0x%x 0x%x" % (addr, size))
        if not text.startswith("0x"):
            raise QTestError("read reply lacks 0x: %r" % text)
        return bytes.fromhex(text[2:])

    def write(self, addr, data):
        self.ok("write 0x%x 0x%x 0x%s" % (addr, len(data), data.hex()))

    def memset(self, addr, size, value):
        self.ok("memset 0x%x 0x%x 0x%x" % (addr, size, value))

    def irq_intercept_in(self, path="ioapic"):
        self.ok("irq_intercept_in %s" % path)

    # PCI configuration mechanism #1 (ports 0xCF8/0xCFC).
    @staticmethod
    def cfg_address(devfn, reg, bus=0):
        return 0x80000000 | (bus << 16) | (devfn << 8) | (reg & 0xFC)

    def pci_cfg_read(self, devfn, reg, size):
        self.outl(0xCF8, self.cfg_address(devfn, reg))
        port = 0xCFC + (reg & 3)
        return {1: self.inb, 2: self.inw, 4: self.inl}[size](port)

    def pci_cfg_write(self, devfn, reg, size, value):
        self.outl(0xCF8, self.cfg_address(devfn, reg))
        port = 0xCFC + (reg & 3)
        {1: self.outb, 2: self.outw, 4: self.outl}[size](port, value)


class QMP:
    """A QMP client. cmd() returns the parsed reply (checking that it echoes
    the id); command() returns its "return" value or raises QMPError. Events
    that arrive meanwhile are queued in self.events."""

    def __init__(self, sock, read_greeting=True):
        self.sock = sock
        self.stream = Stream(sock.fileno(), sock.fileno(), owner=sock)
        self.events = []
        self.next_id = LIBXL_FIRST_ID
        self.greeting = self.recv_msg() if read_greeting else None

    @classmethod
    def connect(cls, path, negotiate=True, timeout=CONNECT_TIMEOUT):
        q = cls(connect_unix(path, timeout))
        if "QMP" not in q.greeting:
            raise QMPError("Protocol", "no greeting: %r" % q.greeting, q.greeting)
        if negotiate:
            q.negotiate()
        return q

    def close(self):
        self.sock.close()

    def send_raw(self, data, timeout=REPLY_TIMEOUT):
        self.stream.send(data, timeout)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\r\n")

    def recv_line(self, timeout=REPLY_TIMEOUT):
        """The next raw line including its terminator; b"" at EOF."""
        return self.stream.read_line(timeout)

    def recv_msg(self, timeout=REPLY_TIMEOUT):
        """The next message of any kind (reply, event, greeting)."""
        line = self.recv_line(timeout)
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line.decode("utf-8"))

    def recv_reply(self, timeout=REPLY_TIMEOUT):
        """The next reply; events met on the way are queued."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv_msg(max(deadline - time.monotonic(), 0))
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, cmd_id=None, **args):
        """Sends {"execute": name, "arguments": args, "id": ...}; returns the
        reply after checking it carries the same id."""
        if cmd_id is None:
            cmd_id = self.next_id
            self.next_id += 1
        msg = {"execute": name, "id": cmd_id}
        if args:
            msg["arguments"] = args
        self.send(msg)
        reply = self.recv_reply()
        if reply.get("id") != cmd_id:
            raise QMPError("Protocol", "reply id %r, sent %r" % (reply.get("id"), cmd_id), reply)
        return reply

    def command(self, name, **args):
        reply = self.cmd(name, **args)
        if "error" in reply:
            raise QMPError(reply["error"].get("class"), reply["error"].get("desc"), reply)
        if "return" not in reply:
            raise QMPError("Protocol", "reply lacks return: %r" % reply, reply)
        return reply["return"]

    def negotiate(self):
        return self.command("qmp_capabilities")

    def wait_event(self, name, timeout=REPLY_TIMEOUT):
        """Removes and returns the first queued or arriving event called name."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            msg = self.recv_msg(max(deadline - time.monotonic(), 0))
            if "event" not in msg:
                raise QMPError("Protocol", "unexpected reply while waiting for %s: %r" % (name, msg), msg)
            self.events.append(msg)


class Daemon:
    """One xen-dm process.

    qtest=True adds "-qtest unix:DIR/qtest,server=on,wait=off" (or
    qtest="stdio" for "-qtest stdio" with pipes); qmp=True adds
    "-qmp unix:DIR/qmp,server=on,wait=off"; libxl=True adds libxl's two
    monitors (-chardev socket,id=libxl-cmd,... -mon ... and libxenstat-cmd).
    DIR is a fresh short directory; "{dir}" in args and extra_sockets (other
    server sockets the args create) stands for it. start() returns once
    every socket accepts connections.

    stop() sends SIGTERM (unless the daemon already exited, which must have
    been announced with expect_exit()), waits, and checks the exit code and
    that stderr holds only log lines and none at error level, except those
    matching patterns given to allow_errors()."""

    def __init__(self, args=(), qtest=False, qmp=False, libxl=False, env=None, pass_fds=(),
                 extra_sockets=()):
        self.dir = short_tempdir()
        # "{dir}" in an argument or extra socket path stands for self.dir.
        self.args = [a.replace("{dir}", self.dir) for a in args]
        self.extra_sockets = [p.replace("{dir}", self.dir) for p in extra_sockets]
        self.qtest_path = None
        self.qmp_path = None
        self.libxl_path = None
        self.libxenstat_path = None
        self.stdio = qtest == "stdio"
        self.stdio_client = None
        self.env = env
        self.pass_fds = tuple(pass_fds)
        self.proc = None
        self.stderr_file = None
        self.allowed = []
        self.exit_expected = False
        self.stopped = False
        extra = []
        if qtest == "stdio":
            extra += ["-qtest", "stdio"]
        elif qtest:
            self.qtest_path = os.path.join(self.dir, "qtest")
            extra += ["-qtest", "unix:%s,server=on,wait=off" % self.qtest_path]
        if qmp:
            self.qmp_path = os.path.join(self.dir, "qmp")
            extra += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if libxl:
            self.libxl_path = os.path.join(self.dir, "qmp-libxl")
            self.libxenstat_path = os.path.join(self.dir, "qmp-libxenstat")
            extra += ["-chardev", "socket,id=libxl-cmd,path=%s,server=on,wait=off" % self.libxl_path,
                      "-mon", "chardev=libxl-cmd,mode=control",
                      "-chardev", "socket,id=libxenstat-cmd,path=%s,server=on,wait=off" % self.libxenstat_path,
                      "-mon", "chardev=libxenstat-cmd,mode=control"]
        self.argv = [binary()] + extra + self.args

    @property
    def sockets(self):
        return [p for p in (self.qtest_path, self.qmp_path, self.libxl_path, self.libxenstat_path) if p] + \
            self.extra_sockets

    def start(self, wait=True):
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_file = open(self.stderr_path, "wb")
        stdout = subprocess.PIPE if self.stdio else open(self.stdout_path, "wb")
        env = dict(os.environ)
        env.pop("XEN_DM_TRACE", None)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE if self.stdio else subprocess.DEVNULL,
                                     stdout=stdout, stderr=self.stderr_file, env=env,
                                     pass_fds=self.pass_fds)
        if stdout is not subprocess.PIPE:
            stdout.close()
        if wait:
            self.wait_ready()
        return self

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=CONNECT_TIMEOUT):
        """Waits until every socket accepts a connection (the probe connection
        is closed again at once)."""
        deadline = time.monotonic() + timeout
        for path in self.sockets:
            try:
                s = connect_unix(path, max(deadline - time.monotonic(), 0.1), alive=self.alive)
            except DaemonError:
                raise DaemonError("daemon exited with %s before listening:\n%s" % (self.proc.returncode, self.stderr()))
            s.close()

    # Clients.
    def qtest(self):
        """A new client on the qtest socket; with -qtest stdio, the one
        client there is (the daemon's stdin and stdout)."""
        if self.stdio:
            if self.stdio_client is None:
                self.stdio_client = QTest.over_pipes(self.proc.stdin, self.proc.stdout)
            return self.stdio_client
        return QTest.connect(self.qtest_path)

    def qmp(self, negotiate=True, path=None):
        return QMP.connect(path or self.qmp_path or self.libxl_path, negotiate=negotiate)

    # Output.
    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log(self):
        return parse_log(self.stderr())

    def wait_log(self, pattern, timeout=REPLY_TIMEOUT):
        """Waits until a log message matches the regex; returns the match."""
        deadline = time.monotonic() + timeout
        while True:
            for level, msg in self.log():
                m = re.search(pattern, msg)
                if level and m:
                    return m
            if time.monotonic() >= deadline:
                raise TimeoutError("no log line matches %r:\n%s" % (pattern, self.stderr()))
            time.sleep(0.01)

    def allow_errors(self, *patterns):
        self.allowed += [re.compile(p) for p in patterns]

    def expect_exit(self):
        """The test made the daemon exit by itself (QMP quit)."""
        self.exit_expected = True

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        return self.proc.wait(timeout)

    def bad_stderr_lines(self):
        bad = []
        for level, msg in self.log():
            if level is None or level == "error":
                if not any(p.search(msg) for p in self.allowed):
                    bad.append(msg if level is None else "error: " + msg)
        return bad

    def stop(self, expect_rc=0):
        """Stops the daemon and checks how it went; returns its exit code.
        Raises AssertionError describing every problem found."""
        if self.stopped:
            return self.proc.returncode if self.proc else None
        self.stopped = True
        if self.proc is None:  # never started
            if self.stderr_file:
                self.stderr_file.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            return None
        problems = []
        try:
            if self.proc.poll() is not None and not self.exit_expected:
                problems.append("daemon had exited (code %s) before it was stopped" % self.proc.returncode)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(EXIT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    problems.append("daemon ignored SIGTERM for %.0f s" % EXIT_TIMEOUT)
            rc = self.proc.returncode
            if rc != expect_rc:
                problems.append("exit code %s, expected %s" % (rc, expect_rc))
            problems += ["unexpected stderr: " + l for l in self.bad_stderr_lines()]
            if rc == 0:
                problems += ["socket %s left behind" % p for p in self.sockets if os.path.exists(p)]
            if problems:
                raise AssertionError("xen-dm %s:\n  %s\n--- stderr ---\n%s" % (
                    " ".join(self.argv[1:]), "\n  ".join(problems), self.stderr()))
            return rc
        finally:
            for f in (self.proc.stdin, self.proc.stdout):
                if f:
                    f.close()
            self.stderr_file.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run(args, timeout=EXIT_TIMEOUT, **kw):
    """Runs the binary to completion (for options that exit at once)."""
    return subprocess.run([binary()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, **kw)
