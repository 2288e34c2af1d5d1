#!/usr/bin/env python3
"""xen-dm attached to a domain of the Xen test double, with a real
xenstored, as libxl starts it (qemu-trad command line):

  * start-up: exec -> xenstore state "running" (what libxl waits for), and
    exec -> ioreq server enabled with every channel bound;
  * ioreq round trips: synchronous PIO reads of 0xCF8 (no side effects)
    driven by the double's C loop, and buffered writes;
  * hot-plug through xenstore: command pci-ins -> state pci-inserted.

Prints numbers only; never fails on timing.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fakesysfs  # noqa: E402
import xendm  # noqa: E402
import xendouble  # noqa: E402
import xenstored as xenstored_mod  # noqa: E402

DOMID = 5
DM = "/local/domain/0/device-model/%d" % DOMID
STARTS = 10


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def wait_state(client, want, timeout=10):
    deadline = time.monotonic() + timeout
    while client.read(DM + "/state") != want:
        if time.monotonic() > deadline:
            raise RuntimeError("no state %r" % want)
        time.sleep(0.0002)


def spawn(xen, xs, sysfs):
    env = dict(os.environ, **xen.env())
    env["XENSTORED_PATH"] = xs.socket
    # pci-ins plugs a real pass-through function: a fake host NIC to read.
    env["XEN_DM_SYSFS_ROOT"] = sysfs
    argv = [xendm.binary(), "-d", str(DOMID), "-domain-name", "bench", "-acpi",
            "-vcpus", "1", "-M", "xenfv"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)


def main():
    try:
        xs = xenstored_mod.Xenstored()
    except xenstored_mod.Unavailable as e:
        print("xen-dm: skipped (%s)" % e)
        return 0
    xs.start()
    client = xs.client()
    sysfs_dir = tempfile.TemporaryDirectory(prefix="xendm-bench-sysfs-")
    fakesysfs.make_nic(sysfs_dir.name)
    to_running, to_attached = [], []
    try:
        for _ in range(STARTS):
            client.mkdir(DM)
            client.write(DM + "/state", "")
            with xendouble.XenDouble(domid=DOMID, vcpus=1, ram_mib=16) as xen:
                t0 = time.perf_counter()
                dm = spawn(xen, xs, sysfs_dir.name)
                xen.wait_attached()
                to_attached.append(time.perf_counter() - t0)
                wait_state(client, "running")
                to_running.append(time.perf_counter() - t0)
                dm.terminate()
                dm.wait(10)
        client.mkdir(DM)
        client.write(DM + "/state", "")
        with xendouble.XenDouble(domid=DOMID, vcpus=1, ram_mib=16) as xen:
            dm = spawn(xen, xs, sysfs_dir.name)
            try:
                xen.wait_attached()
                wait_state(client, "running")
                xen.send_ioreq(0, xendouble.IOREQ_TYPE_PIO, 0xCF8, 4)
                lat = sorted(xen.bench_sync(20000, 0, xendouble.IOREQ_TYPE_PIO, 0xCF8, 4))
                nbuf = 100000
                secs = xen.bench_buffered(nbuf)
                ins = []
                for _ in range(50):
                    client.write(DM + "/parameter", "0000:03:00.0@28,msitranslate=0,power_mgmt=0")
                    t0 = time.perf_counter()
                    client.write(DM + "/command", "pci-ins")
                    wait_state(client, "pci-inserted")
                    ins.append(time.perf_counter() - t0)
                    client.write(DM + "/state", "running")
                    client.write(DM + "/parameter", "0000:03:00.0")
                    client.write(DM + "/command", "pci-rem")
                    xen.guest_out(0x10C2 + 0x28 // 2, 1, 0x01)
                    wait_state(client, "pci-removed")
                    client.write(DM + "/state", "running")
            finally:
                dm.terminate()
                dm.wait(10)
    finally:
        client.close()
        xs.cleanup()
        sysfs_dir.cleanup()
    total = sum(lat) / 1e9
    print("xen-dm: exec -> ioreq server attached: median %.1f ms, p90 %.1f ms"
          % (statistics.median(to_attached) * 1e3, pct(to_attached, 0.9) * 1e3))
    print("xen-dm: exec -> xenstore state running: median %.1f ms, p90 %.1f ms"
          % (statistics.median(to_running) * 1e3, pct(to_running, 0.9) * 1e3))
    print("xen-dm: sync ioreq round trips %.0f/s, median %.1f us, p99 %.1f us"
          % (len(lat) / total, statistics.median(lat) / 1e3, pct(lat, 0.99) / 1e3))
    print("xen-dm: buffered writes %.0f/s" % (nbuf / secs))
    print("xen-dm: pci-ins -> pci-inserted: median %.2f ms, p90 %.2f ms"
          % (statistics.median(ins) * 1e3, pct(ins, 0.9) * 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
