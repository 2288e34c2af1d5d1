#!/usr/bin/env python3
"""Hot-plug latency through the whole daemon: from sending a QMP device_add
(or device_del) until the SCI (ISA IRQ 9) is reported raised on the qtest
socket, i.e. until a guest would take the GPE. Each round: device_add, wait
for the SCI, acknowledge the GPE, device_del, wait for the SCI, acknowledge,
eject, wait for DEVICE_DELETED. Prints

    hotplug: device_add -> GPE median X us, p99 Y us
    hotplug: device_del -> GPE median X us, p99 Y us
    hotplug: full plug/unplug/eject cycles: N per second

Numbers only; never fails on timing.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import xendm  # noqa: E402

ROUNDS = 300
GPE0_STS, GPE0_EN, B0EJ = 0xAFE0, 0xAFE2, 0xAE08


def wait_sci(q):
    """Reads qtest lines until "IRQ raise 9" arrives."""
    while ("raise", 9) not in q.irqs:
        line = q.stream.read_line()
        text = line.decode().strip()
        if text.startswith("IRQ "):
            kind, n = text.split()[1:]
            q.irqs.append((kind, int(n)))
    q.irqs.clear()


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def main():
    d = xendm.Daemon(["-m", "16"], qtest=True, qmp=True).start()
    try:
        q = d.qtest()
        q.irq_intercept_in("ioapic")
        m = d.qmp()
        q.outb(GPE0_EN, 0x02)
        add, delete = [], []
        t_start = time.perf_counter()
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            m.command("device_add", driver="pci-testdev", id="bench", addr="5")
            wait_sci(q)
            add.append(time.perf_counter() - t0)
            q.outb(GPE0_STS, 0x02)
            t0 = time.perf_counter()
            m.command("device_del", id="bench")
            wait_sci(q)
            delete.append(time.perf_counter() - t0)
            q.outb(GPE0_STS, 0x02)
            q.outl(B0EJ, 1 << 5)
            m.wait_event("DEVICE_DELETED")
        elapsed = time.perf_counter() - t_start
        q.irqs.clear()
    finally:
        d.stop()
    for name, v in (("device_add", add), ("device_del", delete)):
        print("hotplug: %s -> GPE median %.0f us, p99 %.0f us"
              % (name, statistics.median(v) * 1e6, percentile(v, 0.99) * 1e6))
    print("hotplug: full plug/unplug/eject cycles: %.0f per second" % (ROUNDS / elapsed))


if __name__ == "__main__":
    main()
