#!/usr/bin/env python3
"""Start-up time of xen-dm: from spawning the process until its QMP socket
accepts a connection and the greeting has arrived (what libxl waits for
before it can talk to a device model). 20 runs; prints

    startup: median X ms, p90 Y ms

The numbers are reported, never judged: this never fails on timing. The
binary is $XEN_DM, else ./xen-dm at the repository root.
"""

import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import xendm  # noqa: E402

RUNS = 20


def one_run():
    sockdir = xendm.short_tempdir()
    path = os.path.join(sockdir, "qmp")
    start = time.perf_counter()
    proc = subprocess.Popen([xendm.binary(), "-qmp", "unix:%s,server=on,wait=off" % path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sock = xendm.connect_unix(path, poll=0.0005, alive=lambda: proc.poll() is None)
        stream = xendm.Stream(sock.fileno(), sock.fileno(), owner=sock)
        greeting = stream.read_line()
        elapsed = time.perf_counter() - start
        if b'"QMP"' not in greeting:
            raise RuntimeError("unexpected greeting %r" % greeting)
        sock.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=xendm.EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        shutil.rmtree(sockdir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError("xen-dm exited with %d:\n%s" % (proc.returncode, err.decode(errors="replace")))
    return elapsed


def main():
    times_ms = sorted(one_run() * 1000 for _ in range(RUNS))
    median = statistics.median(times_ms)
    p90 = times_ms[math.ceil(0.9 * len(times_ms)) - 1]  # nearest rank
    print("startup: median %.1f ms, p90 %.1f ms" % (median, p90))
    return 0


if __name__ == "__main__":
    sys.exit(main())
