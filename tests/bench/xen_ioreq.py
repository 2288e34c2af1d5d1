#!/usr/bin/env python3
"""Ioreq round trips under the Xen test double (tests/xendouble/README.md).

A device model attached to the double's domain gets, from the harness's C
loop (harness_bench.c, so Python is not in the measured path):
  * N synchronous PIO reads on vCPU 0, back to back: round trips per second
    and the median / p99 round-trip time (request written -> answer seen);
  * M buffered 4-byte writes as fast as the ring drains: items per second.
Prints

    xen ioreq: sync N round trips, X/s, median Y us, p99 Z us; buffered M writes, W/s

The numbers are reported, never judged. The device model is
tests-bin/xendouble_selftest (the double's own client, so the numbers are
the double's floor), or with --dm "COMMAND ..." any command line, where
{domid} stands for the domain id: for xen-dm, once it can attach,
    --dm "$XEN_DM -xen-domid {domid} -m 16 ..." --port 0xcf8 --size 4
measures the daemon itself (pick a port its devices answer without side
effects).
"""

import argparse
import math
import os
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import xendouble  # noqa: E402

DOMID = 1


def percentile(sorted_values, p):
    return sorted_values[max(math.ceil(p * len(sorted_values)) - 1, 0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dm", help="device model command line ({domid} = domain id)")
    ap.add_argument("--port", type=lambda v: int(v, 0), default=0x510, help="port read by the sync requests")
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--sync", type=int, default=20000, help="synchronous round trips")
    ap.add_argument("--buffered", type=int, default=200000, help="buffered writes")
    args = ap.parse_args()

    with xendouble.XenDouble(domid=DOMID, vcpus=1) as xen:
        argv = shlex.split(args.dm.replace("{domid}", str(DOMID))) if args.dm else \
            [xendouble.selftest_binary(), str(DOMID)]
        env = dict(os.environ, **xen.env())
        dm = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env)
        try:
            xen.wait_attached()
            # One request through the Python path first: the events of the
            # fresh bindings are handled before its answer comes.
            xen.send_ioreq(0, xendouble.IOREQ_TYPE_PIO, args.port, args.size)
            lat = sorted(xen.bench_sync(args.sync, 0, xendouble.IOREQ_TYPE_PIO, args.port, args.size))
            secs = xen.bench_buffered(args.buffered)
        finally:
            dm.terminate()
            _, err = dm.communicate(timeout=10)
        if dm.returncode not in (0, -15):
            print("device model exited with %d:\n%s" % (dm.returncode, err.decode(errors="replace")), file=sys.stderr)
            return 1
    total = sum(lat) / 1e9
    print("xen ioreq: sync %d round trips, %.0f/s, median %.1f us, p99 %.1f us; buffered %d writes, %.0f/s" % (
        len(lat), len(lat) / total, statistics.median(lat) / 1e3, percentile(lat, 0.99) / 1e3,
        args.buffered, args.buffered / secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
